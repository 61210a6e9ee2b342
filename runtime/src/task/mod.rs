//! Tasks: spawning, joining, aborting, ids and names.
//!
//! # The task protocol
//! A task is one allocation (see `raw.rs`) shared by handles that each own one reference:
//!
//! | handle         | how many           | what it may do                                     |
//! |----------------|--------------------|----------------------------------------------------|
//! | `Notified`     | 0 or 1 (in a queue)| run the task once (poll, or cancel if aborted)     |
//! | `JoinHandle`   | 0 or 1             | read the output after completion, abort, detach    |
//! | `AbortHandle`  | any                | abort                                              |
//! | `Waker`        | any                | create the `Notified` (wake)                       |
//! | registry entry | 1 until completion | cancel at shutdown, list live tasks                |
//!
//! The state word (`state.rs`) holds the flags and the count; every transition is a named
//! method returning what the caller must do next. The rules that matter:
//! - only the thread holding `RUNNING` touches the future; a wake during a poll only sets
//!   `SCHEDULED`, and the runner re-queues the task when the poll ends;
//! - `abort` sets `CANCELLED`; an idle task is queued so that a worker drops its future (never
//!   the aborting thread, which may be anywhere);
//! - completion stores the output, then sets `COMPLETE`; from then on the output belongs to
//!   the `JoinHandle` if it still exists at that instant, otherwise the runner drops it;
//! - the join waker slot is the handle's while `JOIN_WAKER` is clear and the runner's (read
//!   only) while it is set; whoever clears the bit last after completion drops the waker,
//!   so no waker cycle survives a completed task.
//!
//! Panics while polling, while dropping the future and while dropping the output are caught
//! at the harness: the worker survives and the `JoinHandle` reports the panic.
//!
//! Futures that are not `Send` run as local tasks of a [`LocalSet`] (`local_set.rs`): an
//! executor of their own, on one thread, outside this protocol.

mod cancel;
pub(crate) mod context;
mod id;
mod join;
mod local;
mod local_set;
mod raw;
mod registry;
mod state;

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub use cancel::CancelReason;
pub use context::{ContextToken, ContextVar, ResetError};
pub use id::Id;
pub use join::{AbortHandle, DoneCallbackKey, JoinError, JoinHandle};
pub use local::{AccessError, LocalKey, TaskLocalFuture};
pub use local_set::{
    spawn_local, try_spawn_local, LocalJoinHandle, LocalSet, RunUntil, RunUntilEmpty,
    SpawnLocalError,
};
pub(crate) use raw::{Notified, RawTask, Task};
pub(crate) use registry::Registry;

use crate::runtime::Handle;

/// What a task needs from the scheduler that owns it.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// Queue a task woken or aborted (from any thread).
    fn schedule(&self, task: Notified);
    /// Queue a task that woke itself while running: behind the other runnable tasks.
    fn yield_now(&self, task: Notified);
    /// The task completed: take back the registry's reference, if it still holds one.
    fn release(&self, task: RawTask) -> Option<Task>;
    /// Debug mode: polls longer than this are logged.
    fn slow_poll_threshold(&self) -> Option<std::time::Duration> {
        None
    }
    /// A task panicked and nobody will read its JoinHandle.
    fn unhandled_panic(&self, panic: &UnhandledTaskPanic<'_>) {
        log_unhandled_panic(panic);
    }
}

/// A panic in a task whose `JoinHandle` nobody awaited (asyncio's "Task exception was never
/// retrieved"), as handed to [`Builder::on_task_panic`](crate::runtime::Builder::on_task_panic):
/// the task was detached when it panicked, or its handle was dropped without being awaited.
#[derive(Debug)]
pub struct UnhandledTaskPanic<'a> {
    pub(crate) id: Id,
    pub(crate) name: Option<&'a str>,
    pub(crate) spawned_at: &'static Location<'static>,
    pub(crate) payload: &'a (dyn std::any::Any + Send),
}

impl UnhandledTaskPanic<'_> {
    /// The task's id.
    pub fn id(&self) -> Id {
        self.id
    }
    /// The task's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name
    }
    /// Where the task was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.spawned_at
    }
    /// The panic payload (`resume_unwind` takes it from a `JoinError` instead).
    pub fn payload(&self) -> &(dyn std::any::Any + Send) {
        self.payload
    }
    /// The panic message, if the payload is a string.
    pub fn message(&self) -> Option<&str> {
        self.payload
            .downcast_ref::<&'static str>()
            .copied()
            .or_else(|| self.payload.downcast_ref::<String>().map(String::as_str))
    }
}

impl std::fmt::Display for UnhandledTaskPanic<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "task {} ({}) spawned at {} panicked and nobody awaited its JoinHandle: {}",
            self.id,
            self.name.unwrap_or("unnamed"),
            self.spawned_at,
            self.message().unwrap_or("non-string panic payload"),
        )
    }
}

/// The default report of an unhandled panic: one error through tracing.
pub(crate) fn log_unhandled_panic(panic: &UnhandledTaskPanic<'_>) {
    tracing::error!(
        task.id = panic.id.as_u64(),
        task.name = panic.name.unwrap_or(""),
        spawned_at = %panic.spawned_at,
        "{panic}"
    );
}

/// How a task finished, as seen by a done callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The future returned a value (which the `JoinHandle` holds).
    Completed,
    /// The future panicked (or its drop did).
    Panicked,
    /// The task was cancelled before finishing.
    Cancelled,
}

/// A done callback shared by many tasks and given to each when it is spawned
/// ([`Builder::done_hook`]).
///
/// It is called exactly as a callback registered with
/// [`JoinHandle::add_done_callback`] first thing after the spawn would be (before any
/// other done callback of the task, on the thread that completes it, after the task has
/// left the runtime's task list and before [`JoinHandle::is_finished`] turns true; a panic
/// is caught), but it costs the task no allocation and no lock: the task holds one clone of
/// the `Arc`. Task groups count their children with one.
pub trait DoneHook: Send + Sync + 'static {
    /// Task `id` finished with `outcome`. Called once per task spawned with the hook.
    fn task_done(&self, id: Id, outcome: TaskOutcome);
}

/// Allocates a task with its three first references: the registry's, the queue's and the
/// join handle's.
pub(crate) fn new_task<F, S>(
    future: F,
    scheduler: S,
    name: Option<Box<str>>,
    spawned_at: &'static Location<'static>,
    hook: Option<Arc<dyn DoneHook>>,
) -> (Task, Notified, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let context = context::snapshot();
    let raw = RawTask::new(future, scheduler, name, spawned_at, hook, context, 3);
    // SAFETY: the three references created above are handed out once each; `State::new`
    // set SCHEDULED (for the Notified) and JOIN_INTEREST (for the JoinHandle), and the
    // JoinHandle's output type is F::Output.
    unsafe {
        (
            Task::from_raw(raw),
            Notified::from_raw(raw),
            JoinHandle::new(raw),
        )
    }
}

/// Spawns a task onto the current runtime (asyncio's `create_task`).
///
/// The task starts running in the background at once; the returned [`JoinHandle`] awaits its
/// output. Dropping the handle detaches the task.
///
/// # Panics
/// When called outside a ringleader runtime (neither in a task nor inside `block_on`); use
/// [`Handle::spawn`] from other threads.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match Handle::try_current() {
        Ok(handle) => handle.spawn_named(future, None, Location::caller()),
        Err(_) => panic!(
            "ringleader::spawn called outside a ringleader runtime: call it from a task or \
             inside Runtime::block_on / ringleader::run, or use Handle::spawn"
        ),
    }
}

/// Configures a task before spawning it: its name, and the runtime it goes to.
///
/// ```
/// let rt = ringleader_runtime::runtime::Builder::new_current_thread().build().unwrap();
/// let handle = ringleader_runtime::task::Builder::new()
///     .name("fetcher")
///     .spawn_on(async { ringleader_runtime::task::name() }, rt.handle());
/// assert_eq!(rt.block_on(handle).unwrap().as_deref(), Some("fetcher"));
/// ```
#[derive(Default)]
pub struct Builder {
    name: Option<Box<str>>,
    hook: Option<Arc<dyn DoneHook>>,
    worker: Option<usize>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("done_hook", &self.hook.is_some())
            .field("pin_to_worker", &self.worker)
            .finish()
    }
}

impl Builder {
    /// A builder with no name set.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task (asyncio's `create_task(name=...)`). The name shows in
    /// [`JoinHandle::name`], [`name()`], task dumps and tracing events.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into().into_boxed_str());
        self
    }

    /// Gives the task `hook`, called when it finishes (see [`DoneHook`]): a done callback
    /// shared by many tasks that, unlike [`JoinHandle::add_done_callback`], allocates
    /// nothing per task.
    pub fn done_hook(mut self, hook: Arc<dyn DoneHook>) -> Builder {
        self.hook = Some(hook);
        self
    }

    /// Pins the task to one worker thread: worker `index % num_workers`, so that a counter
    /// spreads tasks round-robin without knowing the worker count.
    ///
    /// A pinned task is polled only by its worker: it is never stolen, its I/O is always on
    /// that worker's ring, and its data stays in that core's cache. This is the placement of
    /// thread-per-core runtimes (monoio, glommio) inside the work-stealing one, for tasks
    /// that each carry a similar share of the load (a server's connections, handed out
    /// round-robin as they are accepted). The cost: when one worker has more pinned work
    /// than the others, nobody takes it over. Unpinned tasks keep being balanced by
    /// stealing around them. On a current-thread runtime pinning changes nothing.
    ///
    /// ```
    /// let rt = ringleader_runtime::runtime::Builder::new_multi_thread()
    ///     .worker_threads(2)
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(async {
    ///     let tasks: Vec<_> = (0..4)
    ///         .map(|i| {
    ///             ringleader_runtime::task::Builder::new()
    ///                 .pin_to_worker(i)
    ///                 .spawn(async move { i * 10 })
    ///         })
    ///         .collect();
    ///     for (i, task) in tasks.into_iter().enumerate() {
    ///         assert_eq!(task.await.unwrap(), i * 10);
    ///     }
    /// });
    /// ```
    pub fn pin_to_worker(mut self, index: usize) -> Builder {
        self.worker = Some(index);
        self
    }

    /// Spawns onto the current runtime.
    ///
    /// # Panics
    /// Outside a ringleader runtime, as [`spawn`].
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match Handle::try_current() {
            Ok(handle) => handle.spawn_with(
                future,
                self.name,
                self.hook,
                self.worker,
                Location::caller(),
            ),
            Err(_) => panic!("task::Builder::spawn called outside a ringleader runtime"),
        }
    }

    /// Spawns onto the runtime of `handle`, from any thread.
    #[track_caller]
    pub fn spawn_on<F>(self, future: F, handle: &Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        handle.spawn_with(
            future,
            self.name,
            self.hook,
            self.worker,
            Location::caller(),
        )
    }
}

/// The id of the task being polled on this thread.
///
/// # Panics
/// Outside a task; see [`try_id`].
pub fn id() -> Id {
    try_id().expect("task::id called outside a ringleader task")
}

/// The id of the task being polled on this thread, or `None` outside a task.
///
/// Inside a [`LocalSet`]'s task, that local task's id (its
/// [`LocalJoinHandle::id`]), not the id of the task that drives the set.
pub fn try_id() -> Option<Id> {
    id::current_local().or_else(|| id::with_current(|h| h.map(|h| h.id)))
}

/// The name of the task being polled on this thread (`None` outside a task or if unnamed;
/// a [`LocalSet`]'s tasks are unnamed).
pub fn name() -> Option<String> {
    if id::current_local().is_some() {
        return None;
    }
    id::with_current(|h| h.and_then(|h| h.name.as_deref().map(str::to_owned)))
}

/// Runs `f` on a blocking-pool thread and returns a handle to its result (asyncio's
/// `loop.run_in_executor(None, f)`; see also [`to_thread`]).
///
/// Use it for code that blocks: file system calls without an async form, CPU-heavy work,
/// foreign libraries. The pool grows to `max_blocking_threads` and shrinks after
/// `thread_keep_alive` of idleness.
///
/// Aborting the handle before the closure starts drops it unrun; once started it runs to
/// the end (a thread cannot be interrupted), and shutdown waits for it up to the shutdown
/// timeout.
///
/// # Panics
/// Outside a ringleader runtime; use [`Handle::spawn_blocking`] from other threads.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(f),
        Err(_) => {
            panic!("spawn_blocking called outside a ringleader runtime; use Handle::spawn_blocking")
        }
    }
}

/// asyncio's `to_thread`: runs `f` on the blocking pool; the same as [`spawn_blocking`].
///
/// ```
/// let len = ringleader_runtime::run(async {
///     ringleader_runtime::task::to_thread(|| std::fs::read_dir(".").map(|d| d.count()))
///         .await
///         .expect("the closure did not panic")
/// });
/// assert!(len.is_ok());
/// ```
///
/// # Panics
/// Outside a ringleader runtime.
#[track_caller]
pub fn to_thread<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    spawn_blocking(f)
}

/// A live task, as listed by [`Handle::tasks`].
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// The task's id.
    pub id: Id,
    /// The task's name, if any.
    pub name: Option<String>,
    /// Where it was spawned.
    pub spawned_at: &'static Location<'static>,
    /// Whether it has been asked to cancel.
    pub cancelled: bool,
}

// Kept here, beside `TaskInfo`, with the other introspection helpers: task dumps built
// outside the runtime (ringleader-taskgroup's task tree) need to tell runtimes apart.
impl crate::runtime::Handle {
    /// Whether `self` and `other` are handles of the same runtime.
    pub fn same_runtime(&self, other: &crate::runtime::Handle) -> bool {
        crate::loom::Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// Yields once to the scheduler: the task goes to the back of its worker's queue, so every
/// other runnable task there runs before it continues (asyncio's `await asyncio.sleep(0)`).
///
/// # Cancel safety
/// Cancel safe.
pub async fn yield_now() {
    YieldNow { yielded: false }.await
}

struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // A wake during our own poll re-queues us behind the others when the poll ends.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
