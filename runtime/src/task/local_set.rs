//! Local tasks: futures that are not `Send`, run by a [`LocalSet`] on the thread that owns it.
//!
//! [`spawn`](crate::spawn) hands a task to the work-stealing scheduler, which may poll it on
//! any worker, so its future must be `Send`. A [`LocalSet`] is a small executor of its own
//! for the futures that cannot be (they hold an `Rc`, a `RefCell` borrow across an await, a
//! `!Send` handle of a C library): it lives in a value on one thread and runs its tasks
//! while a future drives it ([`LocalSet::run_until`], [`LocalSet::run_until_empty`], or
//! awaiting the set itself). The driving future is `!Send` too, so it runs as the root
//! future of [`block_on`](crate::runtime::Runtime::block_on) / [`run`](crate::run), or inside
//! another local task. The scheduler is untouched: to it, the set is one future.
//!
//! In asyncio every task is local: tasks run on the event loop's thread, one at a time, and
//! may share anything. A `LocalSet` gives that model back to the futures that need it, in
//! the middle of a multi-thread runtime. It has the shape of tokio's `LocalSet` (`spawn_local`,
//! `run_until`, awaiting the set); unlike tokio's there is no `LocalSet::block_on`: pass
//! `set.run_until(fut)` to the runtime's `block_on`.
//!
//! # The protocol
//!
//! | piece | lives in | touched by |
//! |-------|----------|------------|
//! | task futures | the set's slab (`Inner::tasks`, a `RefCell`) | the set's thread only |
//! | ready queue, driver's waker | `ReadyQueue`, one `Mutex`, shared by `Arc` | any thread |
//! | `queued` flag | each task's waker (`TaskWaker`) | any thread |
//! | output, join waker, abort flag | `JoinCell`, an `Rc` shared by the task and its handle | the set's thread |
//!
//! - **No borrow spans user code.** A future is taken out of its slot to be polled or dropped
//!   and put back after, so a task may spawn, abort, or inspect the set (and a future's drop
//!   may too) without a `RefCell` double borrow.
//! - **Wakes.** A waker sets its task's `queued` flag; the first wake since the last poll
//!   pushes `(slot, id)` on the ready queue, so duplicate wakes queue the task once. The
//!   driver clears the flag just before polling, so a wake during the poll queues it again,
//!   behind the tasks already ready. A stale entry (its task finished, its slot reused) is
//!   recognised by the id and skipped.
//! - **No lost wake-up.** Before popping, the driver registers its waker and marks the queue
//!   `draining`, both under the queue's lock. A push onto an empty queue while nobody drains
//!   wakes the registered driver; a push while the driver drains is seen by the drain, whose
//!   end re-checks the queue under the lock and has the driver wake itself if it is not empty.
//! - **Fairness.** One drive polls at most `MAX_POLLS_PER_TICK` (61) tasks, then wakes its
//!   own waker and returns `Pending`, so the worker or `block_on` around it is never starved.
//!   A task woken during a drive (one that yields, say) may run again in the same drive, but
//!   only behind every task that was ready before it, as tokio's `LocalSet` does.
//! - **Abort** sets the task's abort flag. A task that is not being polled is removed and its
//!   future dropped at once, by the aborting code; one being polled (it aborted itself, or an
//!   inner set's task aborted it) is dropped by the driver when the poll returns `Pending`.
//! - **Dropping the set** closes the ready queue (later wakes do nothing; the driver's waker is
//!   released), then drops the remaining futures in spawn order with the set entered as the
//!   current one: a future's drop may spawn (the new task is cancelled at once, the set being
//!   closed) or abort. Wakers hold only the ready queue, never a future.
//!
//! Panics while polling or dropping a task's future are caught: the handle reports them, or,
//! if the handle is gone, the runtime reports them as it does for its own tasks
//! ([`Builder::on_task_panic`](crate::runtime::Builder::on_task_panic); by default one
//! `tracing` error).
//!
//! A local task is not a task of the scheduler, but it has an identity of its own: inside
//! it (while it is polled, and while its future is dropped), [`task::id`](super::id) gives
//! its id, the one [`LocalJoinHandle::id`] reports, taken from the same space as every other
//! task's, and [`task::name`](super::name) gives `None` (local tasks are unnamed). Context variables
//! ([`ContextVar`](super::ContextVar)) do follow local tasks: each starts with a copy of
//! its spawner's context and sets only its own, as a scheduler task does.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Wake, Waker};

use pin_project_lite::pin_project;
use slab::Slab;

use super::context::InContext;
use super::id;
use super::{CancelReason, Id, JoinError, Schedule, UnhandledTaskPanic};
use crate::loom::{lock, Arc, AtomicBool, Mutex, Ordering};

/// Task polls per drive of a set before it yields to whatever runs it. Borrowed from
/// tokio's `LocalSet` (61, an odd number so that it does not beat with other periods); a
/// guess that keeps a drive within tens of microseconds, not a measured optimum.
const MAX_POLLS_PER_TICK: usize = 61;

/// An executor of local tasks (tasks whose futures need not be `Send`), run on the thread
/// that owns it while a future drives it.
///
/// Tasks are added with [`spawn_local`](LocalSet::spawn_local) (or the free function
/// [`spawn_local`] from inside the set) and run, on this thread, only while the set is
/// driven: [`run_until`](LocalSet::run_until) runs them alongside a future until that future
/// completes, and [`run_until_empty`](LocalSet::run_until_empty) (or awaiting the set) until
/// every task has finished. Between drives the tasks wait; the next drive resumes them.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// use ringleader_runtime::task::{self, LocalSet};
///
/// let log = ringleader_runtime::run(async {
///     let set = LocalSet::new();
///     // `Rc<RefCell<_>>` is not `Send`: `ringleader::spawn` would not accept these tasks.
///     let log = Rc::new(RefCell::new(Vec::new()));
///     for i in 0..3 {
///         let log = log.clone();
///         // Dropping the handle detaches the task; it still runs.
///         drop(set.spawn_local(async move {
///             log.borrow_mut().push(i);
///             task::yield_now().await;
///             log.borrow_mut().push(i + 10);
///         }));
///     }
///     set.run_until_empty().await;
///     Rc::try_unwrap(log).unwrap().into_inner()
/// });
/// // First come, first served, as in asyncio.
/// assert_eq!(log, [0, 1, 2, 10, 11, 12]);
/// ```
///
/// A `LocalSet` is neither `Send` nor `Sync`, and neither are its handles:
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// assert_send(ringleader_runtime::task::LocalSet::new());
/// ```
///
/// Dropping the set drops every task still in it (on this thread, in spawn order); their
/// handles then report a cancelled [`JoinError`] with [`CancelReason::Shutdown`].
pub struct LocalSet {
    inner: Rc<Inner>,
}

/// The set itself, shared (weakly) by handles and (briefly) by the "current set" slot.
struct Inner {
    /// The live tasks. Borrowed only for short bookkeeping, never across user code.
    tasks: RefCell<Slab<Slot>>,
    /// The ready queue, shared with the tasks' wakers.
    ready: Arc<ReadyQueue>,
    /// The task being polled now, if any: driving the set then would re-enter it.
    polling: Cell<Option<Id>>,
    /// Set when the `LocalSet` is dropped: spawns are cancelled at once.
    closed: Cell<bool>,
}

/// One live task in the slab.
struct Slot {
    id: Id,
    /// `None` while the task is being polled (the driver holds it).
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    /// The task's waker.
    waker: std::sync::Arc<TaskWaker>,
    /// The task's side of its join cell: its abort flag, and where a failure is stored.
    join: Rc<dyn Completion>,
}

/// The part of a set that other threads reach: the queue of tasks to poll and the waker of
/// whoever drives the set.
struct ReadyQueue {
    state: Mutex<ReadyState>,
}

struct ReadyState {
    /// Tasks to poll, as (slab key, id); the id tells a stale entry from a reused slot.
    queue: VecDeque<(usize, Id)>,
    /// The waker of the future that last drove the set.
    driver: Option<Waker>,
    /// The driver is between `begin_drain` and `end_drain`: it will see every push.
    draining: bool,
    /// The set is gone: pushes are dropped.
    closed: bool,
}

impl ReadyQueue {
    fn new() -> ReadyQueue {
        ReadyQueue {
            state: Mutex::new(ReadyState {
                queue: VecDeque::new(),
                driver: None,
                draining: false,
                closed: false,
            }),
        }
    }

    /// Queues a task and wakes the driver if it might otherwise not look at the queue.
    fn push(&self, key: usize, id: Id) {
        let driver = {
            let mut state = lock(&self.state);
            if state.closed {
                return;
            }
            let was_empty = state.queue.is_empty();
            state.queue.push_back((key, id));
            // A non-empty queue already has a wake-up in flight (or a drain that will
            // see it), so only the first push after the queue emptied wakes the driver.
            if was_empty && !state.draining {
                state.driver.clone()
            } else {
                None
            }
        };
        // Woken outside the lock: a waker may run arbitrary code.
        if let Some(driver) = driver {
            driver.wake();
        }
    }

    /// Registers the driver's waker and marks the queue as being drained.
    fn begin_drain(&self, waker: &Waker) {
        let stale = {
            let mut state = lock(&self.state);
            state.draining = true;
            match &state.driver {
                Some(current) if current.will_wake(waker) => None,
                _ => state.driver.replace(waker.clone()),
            }
        };
        drop(stale);
    }

    fn pop(&self) -> Option<(usize, Id)> {
        lock(&self.state).queue.pop_front()
    }

    /// Ends a drain; returns whether tasks are still ready (the driver must wake itself).
    fn end_drain(&self) -> bool {
        let mut state = lock(&self.state);
        state.draining = false;
        !state.queue.is_empty()
    }

    /// Refuses further pushes and releases the driver's waker and the queued entries.
    fn close(&self) {
        let driver = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.queue = VecDeque::new();
            state.driver.take()
        };
        drop(driver);
    }
}

/// Ends a drain when dropped, also if the drive unwinds.
struct Drain<'a> {
    ready: &'a ReadyQueue,
    ended: bool,
}

impl<'a> Drain<'a> {
    fn begin(ready: &'a ReadyQueue, waker: &Waker) -> Drain<'a> {
        ready.begin_drain(waker);
        Drain {
            ready,
            ended: false,
        }
    }

    /// Returns whether tasks are still ready.
    fn end(mut self) -> bool {
        self.ended = true;
        self.ready.end_drain()
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.ready.end_drain();
        }
    }
}

/// A local task's waker: `Send + Sync`, usable from any thread, holding only the ready
/// queue. (A `std` `Arc` because `Wake` requires one; the state inside is `crate::loom`'s.)
struct TaskWaker {
    ready: Arc<ReadyQueue>,
    key: usize,
    id: Id,
    /// Set by the first wake since the task's last poll began; cleared by the driver just
    /// before each poll.
    queued: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        // Release: the waker's writes before the wake happen before the poll that follows
        // (the driver clears the flag with an acquiring swap).
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.key, self.id);
        }
    }
}

rl_thread_local! {
    /// The set whose task (or `run_until` future) this thread is polling: where the free
    /// [`spawn_local`] spawns.
    static CURRENT_SET: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

/// Makes a set the current one until dropped, restoring the previous one (also on unwind),
/// so sets driven inside each other's tasks nest.
struct CurrentSet(Option<Rc<Inner>>);

impl CurrentSet {
    fn enter(inner: &Rc<Inner>) -> CurrentSet {
        // `try_with`: a set may be dropped while this thread's locals are being destroyed.
        let previous = CURRENT_SET.try_with(|c| c.borrow_mut().replace(inner.clone()));
        CurrentSet(previous.ok().flatten())
    }
}

impl Drop for CurrentSet {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT_SET.try_with(|c| *c.borrow_mut() = previous);
    }
}

/// Marks a task as being polled until dropped, restoring the previous mark (also on
/// unwind).
struct Polling<'a> {
    cell: &'a Cell<Option<Id>>,
    previous: Option<Id>,
}

impl<'a> Polling<'a> {
    fn enter(cell: &'a Cell<Option<Id>>, id: Id) -> Polling<'a> {
        Polling {
            cell,
            previous: cell.replace(Some(id)),
        }
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        self.cell.set(self.previous);
    }
}

impl LocalSet {
    /// An empty set.
    pub fn new() -> LocalSet {
        LocalSet {
            inner: Rc::new(Inner {
                tasks: RefCell::new(Slab::new()),
                ready: Arc::new(ReadyQueue::new()),
                polling: Cell::new(None),
                closed: Cell::new(false),
            }),
        }
    }

    /// Spawns `future` as a task of this set and returns its handle. The task first runs
    /// at the set's next drive, after the tasks already ready (FIFO, as asyncio's
    /// `create_task`). Dropping the handle detaches the task: it keeps running.
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> LocalJoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.inner.spawn(future, Location::caller())
    }

    /// Runs `future` to completion on this thread, running the set's tasks meanwhile; returns
    /// its output. Tasks still unfinished then stay in the set.
    ///
    /// Each poll polls `future` first (with this set current, so the free [`spawn_local`]
    /// works inside it), then up to 61 ready tasks; if more remain it wakes itself and
    /// returns `Pending`, so that whatever runs it (a worker, `block_on`) gets to do its other
    /// work. It may be nested inside other sets' tasks, and inside itself (a `run_until` of
    /// the same set inside `future`), but not inside a task of this set.
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// let rt = ringleader_runtime::runtime::Runtime::new()?;
    /// let set = ringleader_runtime::task::LocalSet::new();
    /// let shared = Rc::new(41);
    /// let answer = rt.block_on(set.run_until(async move {
    ///     let task = ringleader_runtime::task::spawn_local(async move { *shared + 1 });
    ///     task.await.unwrap()
    /// }));
    /// assert_eq!(answer, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Cancel safety
    /// Dropping the returned future drops `future` but no task: the tasks stay in the set,
    /// and the next drive resumes them where they were.
    ///
    /// # Panics
    /// When polled from inside one of this set's own tasks (the set cannot poll its tasks
    /// while polling one of them): the panic is that task's, reported by its handle. A panic
    /// of `future` itself propagates; the set is left intact.
    pub fn run_until<F: Future>(&self, future: F) -> RunUntil<'_, F> {
        RunUntil { set: self, future }
    }

    /// Runs the set's tasks until none is left (including tasks they spawn meanwhile).
    ///
    /// Awaiting the set itself does the same (tokio's `local_set.await`).
    ///
    /// # Cancel safety
    /// Dropping the returned future stops the tasks where they are; the next drive resumes
    /// them.
    ///
    /// # Panics
    /// As [`run_until`](Self::run_until), when polled from inside one of this set's tasks.
    pub fn run_until_empty(&self) -> RunUntilEmpty<'_> {
        RunUntilEmpty { set: self }
    }

    /// The number of live tasks: spawned and not yet finished (nor aborted).
    pub fn len(&self) -> usize {
        self.inner.tasks.borrow().len()
    }

    /// Whether no task is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn poll_until_empty(&self, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.inner;
        inner.assert_not_in_own_task();
        let _current = CurrentSet::enter(inner);
        let more_ready = inner.tick(cx);
        if inner.tasks.borrow().is_empty() {
            return Poll::Ready(());
        }
        if more_ready {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Default for LocalSet {
    fn default() -> LocalSet {
        LocalSet::new()
    }
}

impl fmt::Debug for LocalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LocalSet");
        match self.inner.tasks.try_borrow() {
            Ok(tasks) => d.field("len", &tasks.len()),
            Err(_) => d.field("len", &"<borrowed>"),
        };
        d.finish()
    }
}

/// Awaiting the set runs its tasks until none is left, as
/// [`run_until_empty`](LocalSet::run_until_empty), then drops it.
impl Future for LocalSet {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_until_empty(cx)
    }
}

impl Drop for LocalSet {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.closed.set(true);
        inner.ready.close();
        let _current = CurrentSet::enter(inner);
        // Spawn order; a slot whose future is out is being polled (by a drive that cannot
        // be running now, since it borrows the set; kept for robustness): its poller drops
        // it when the poll returns, seeing the set closed.
        let mut remaining: Vec<(Id, usize)> = inner
            .tasks
            .borrow()
            .iter()
            .filter(|(_, slot)| slot.future.is_some())
            .map(|(key, slot)| (slot.id, key))
            .collect();
        remaining.sort_unstable();
        for (id, key) in remaining {
            // A future dropped earlier in this loop may have aborted this one.
            if let Some(slot) = inner.take_idle(key, id) {
                inner.cancel(slot, CancelReason::Shutdown);
            }
        }
    }
}

impl Inner {
    fn assert_not_in_own_task(&self) {
        if let Some(id) = self.polling.get() {
            panic!(
                "a LocalSet was driven (run_until, run_until_empty or awaited) from inside its \
                 own task {id}: a set cannot poll its tasks while polling one of them; spawn \
                 the work onto the set with spawn_local instead of driving it recursively"
            );
        }
    }

    fn spawn<F>(
        self: &Rc<Self>,
        future: F,
        spawned_at: &'static Location<'static>,
    ) -> LocalJoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let id = Id::next();
        let cell = Rc::new(JoinCell::new(id, spawned_at));
        if self.closed.get() {
            // Spawned by a future's drop while the set is being dropped: cancelled unrun.
            let err = match drop_caught(future) {
                None => JoinError::cancelled(id, CancelReason::Shutdown),
                Some(payload) => JoinError::panic(id, payload),
            };
            cell.finish(Err(err));
            return LocalJoinHandle::new(cell, Weak::new(), usize::MAX);
        }
        let completion = cell.clone();
        // In a copy of the spawner's context variables, as a scheduler task is.
        let task: Pin<Box<dyn Future<Output = ()>>> = Box::pin(InContext::new(async move {
            // `.await` drops the user's future as soon as it returns, so the output is
            // stored after the future is gone, as the scheduler's tasks do.
            let output = future.await;
            completion.finish(Ok(output));
        }));
        let key = {
            let mut tasks = self.tasks.borrow_mut();
            let entry = tasks.vacant_entry();
            let key = entry.key();
            entry.insert(Slot {
                id,
                future: Some(task),
                waker: std::sync::Arc::new(TaskWaker {
                    ready: self.ready.clone(),
                    key,
                    id,
                    // The push below is the spawn's wake.
                    queued: AtomicBool::new(true),
                }),
                join: cell.clone(),
            });
            key
        };
        self.ready.push(key, id);
        LocalJoinHandle::new(cell, Rc::downgrade(self), key)
    }

    /// Polls up to `MAX_POLLS_PER_TICK` ready tasks; returns whether ready tasks remain.
    fn tick(self: &Rc<Self>, cx: &Context<'_>) -> bool {
        let drain = Drain::begin(&self.ready, cx.waker());
        for _ in 0..MAX_POLLS_PER_TICK {
            match self.ready.pop() {
                Some((key, id)) => self.poll_task(key, id),
                None => break,
            }
        }
        drain.end()
    }

    /// Polls one task, if it is still the one in slot `key`.
    fn poll_task(self: &Rc<Self>, key: usize, id: Id) {
        let taken = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(key) {
                Some(slot) if slot.id == id => slot
                    .future
                    .take()
                    .map(|future| (future, slot.waker.clone())),
                // Finished, or aborted, since it was woken.
                _ => None,
            }
        };
        let Some((mut future, task_waker)) = taken else {
            return;
        };
        // Acquire: pairs with the waker's swap (see `TaskWaker::wake_by_ref`). From here
        // on a wake queues the task again.
        task_waker.queued.swap(false, Ordering::AcqRel);
        let waker = Waker::from(task_waker);
        let mut cx = Context::from_waker(&waker);
        let polled = {
            let _current = CurrentSet::enter(self);
            let _polling = Polling::enter(&self.polling, id);
            let _task = id::LocalGuard::enter(id);
            panic::catch_unwind(AssertUnwindSafe(|| {
                ringleader_coop::with_budget(|| future.as_mut().poll(&mut cx))
            }))
        };
        match polled {
            Ok(Poll::Pending) => {
                let cancelled = {
                    let mut tasks = self.tasks.borrow_mut();
                    match tasks.get_mut(key) {
                        Some(slot) if slot.id == id => {
                            if !slot.join.abort_requested() && !self.closed.get() {
                                slot.future = Some(future);
                                return;
                            }
                            Some(tasks.remove(key))
                        }
                        _ => None,
                    }
                };
                // Aborted (or its set dropped) during the poll: drop it now.
                let reason = if self.closed.get() {
                    CancelReason::Shutdown
                } else {
                    CancelReason::Aborted
                };
                match cancelled {
                    Some(mut slot) => {
                        slot.future = Some(future);
                        self.cancel(slot, reason);
                    }
                    // Not expected: only the poller removes a slot whose future is out.
                    // The future is dropped as a cancelled one would be, all the same.
                    None => {
                        let _current = CurrentSet::enter(self);
                        let _task = id::LocalGuard::enter(id);
                        drop_logged(future);
                    }
                }
            }
            Ok(Poll::Ready(())) => {
                // The output is already stored (or dropped, if detached).
                let slot = self.remove(key, id);
                drop(future);
                drop(slot);
            }
            Err(payload) => {
                let slot = self.remove(key, id);
                // The panicking future is dropped too; a second panic from its drop is
                // dropped, as the scheduler's harness does.
                {
                    let _current = CurrentSet::enter(self);
                    let _task = id::LocalGuard::enter(id);
                    drop_logged(future);
                }
                if let Some(slot) = slot {
                    slot.join.fail(JoinError::panic(id, payload));
                }
            }
        }
    }

    /// Removes slot `key` if it still holds task `id`.
    fn remove(&self, key: usize, id: Id) -> Option<Slot> {
        let mut tasks = self.tasks.borrow_mut();
        match tasks.get(key) {
            Some(slot) if slot.id == id => Some(tasks.remove(key)),
            _ => None,
        }
    }

    /// Removes slot `key` if it holds task `id` and the task is not being polled.
    fn take_idle(&self, key: usize, id: Id) -> Option<Slot> {
        let mut tasks = self.tasks.borrow_mut();
        match tasks.get(key) {
            Some(slot) if slot.id == id && slot.future.is_some() => Some(tasks.remove(key)),
            _ => None,
        }
    }

    /// Drops a removed task's future (with the set current, so its drop may spawn) and
    /// reports the cancellation, or the panic of that drop, to its handle.
    fn cancel(self: &Rc<Self>, mut slot: Slot, reason: CancelReason) {
        let panicked = match slot.future.take() {
            Some(future) => {
                let _current = CurrentSet::enter(self);
                let _task = id::LocalGuard::enter(slot.id);
                drop_caught(future)
            }
            None => None,
        };
        let err = match panicked {
            None => JoinError::cancelled(slot.id, reason),
            Some(payload) => JoinError::panic(slot.id, payload),
        };
        slot.join.fail(err);
    }
}

/// Drops `value`, returning the panic payload if its drop panicked.
fn drop_caught<T>(value: T) -> Option<Box<dyn Any + Send>> {
    panic::catch_unwind(AssertUnwindSafe(move || drop(value))).err()
}

/// Drops a value whose destructor may panic, logging and swallowing the panic (as the
/// scheduler's harness does for a task's leftovers).
fn drop_logged<T>(value: T) {
    if drop_caught(value).is_some() {
        tracing::warn!("a panic while dropping a local task's value was caught and ignored");
    }
}

/// Spawns `future` onto the [`LocalSet`] being driven on this thread (asyncio's
/// `create_task`, for futures that are not `Send`); see [`LocalSet::spawn_local`].
///
/// "Being driven" means: called from one of the set's tasks, or from the future given to
/// its [`run_until`](LocalSet::run_until); with sets nested, the innermost.
///
/// ```
/// use std::rc::Rc;
///
/// ringleader_runtime::run(async {
///     let set = ringleader_runtime::task::LocalSet::new();
///     set.run_until(async {
///         let name = Rc::new("local".to_string());
///         let task = ringleader_runtime::task::spawn_local(async move { name.len() });
///         assert_eq!(task.await.unwrap(), 5);
///     })
///     .await;
/// });
/// ```
///
/// # Panics
/// When no set is being driven on this thread; [`try_spawn_local`] returns an error
/// instead, and [`LocalSet::spawn_local`] needs no driven set.
#[track_caller]
pub fn spawn_local<F>(future: F) -> LocalJoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match try_spawn_local(future) {
        Ok(handle) => handle,
        Err(_) => panic!(
            "ringleader::task::spawn_local called outside a LocalSet: call it from a local task \
             or from the future given to LocalSet::run_until, or use LocalSet::spawn_local"
        ),
    }
}

/// [`spawn_local`], returning the future in an error when no [`LocalSet`] is being driven on
/// this thread.
///
/// # Errors
/// [`SpawnLocalError`] (holding `future`) outside a set's drive.
#[track_caller]
pub fn try_spawn_local<F>(future: F) -> Result<LocalJoinHandle<F::Output>, SpawnLocalError<F>>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let current = CURRENT_SET.try_with(|c| c.borrow().clone()).ok().flatten();
    match current {
        Some(inner) => Ok(inner.spawn(future, Location::caller())),
        None => Err(SpawnLocalError { future }),
    }
}

/// [`try_spawn_local`] was called with no [`LocalSet`] being driven on this thread; the
/// future is given back.
pub struct SpawnLocalError<F> {
    future: F,
}

impl<F> SpawnLocalError<F> {
    /// The future that was not spawned.
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F> fmt::Debug for SpawnLocalError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnLocalError").finish_non_exhaustive()
    }
}

impl<F> fmt::Display for SpawnLocalError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("spawn_local called outside a LocalSet (no local task, no run_until)")
    }
}

impl<F> std::error::Error for SpawnLocalError<F> {}

pin_project! {
    /// Runs a future and a [`LocalSet`]'s tasks until the future completes:
    /// [`LocalSet::run_until`].
    #[must_use = "futures do nothing unless polled; the set's tasks run only while it is"]
    pub struct RunUntil<'a, F> {
        set: &'a LocalSet,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for RunUntil<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = &this.set.inner;
        inner.assert_not_in_own_task();
        let _current = CurrentSet::enter(inner);
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(output);
        }
        if inner.tick(cx) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for RunUntil<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntil")
            .field("set", &self.set)
            .finish_non_exhaustive()
    }
}

/// Runs a [`LocalSet`]'s tasks until none is left: [`LocalSet::run_until_empty`].
#[must_use = "futures do nothing unless polled; the set's tasks run only while it is"]
pub struct RunUntilEmpty<'a> {
    set: &'a LocalSet,
}

impl Future for RunUntilEmpty<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.set.poll_until_empty(cx)
    }
}

impl fmt::Debug for RunUntilEmpty<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntilEmpty")
            .field("set", &self.set)
            .finish()
    }
}

/// What the set needs from a task's join cell without knowing its output type.
trait Completion {
    fn abort_requested(&self) -> bool;
    /// The task ended without output: cancelled, or panicked.
    fn fail(&self, err: JoinError);
}

/// A task's result, shared by the task and its [`LocalJoinHandle`].
struct JoinCell<T> {
    id: Id,
    spawned_at: &'static Location<'static>,
    abort_requested: Cell<bool>,
    /// Cleared when the handle is dropped: nobody will read the result.
    has_handle: Cell<bool>,
    state: RefCell<JoinState<T>>,
}

enum JoinState<T> {
    /// Not finished; the waker of the last poll of the handle.
    Running(Option<Waker>),
    Finished(Result<T, JoinError>),
    /// The handle took the result (or it was dropped: the handle is gone).
    Taken,
}

impl<T> JoinCell<T> {
    fn new(id: Id, spawned_at: &'static Location<'static>) -> JoinCell<T> {
        JoinCell {
            id,
            spawned_at,
            abort_requested: Cell::new(false),
            has_handle: Cell::new(true),
            state: RefCell::new(JoinState::Running(None)),
        }
    }

    fn is_finished(&self) -> bool {
        !matches!(*self.state.borrow(), JoinState::Running(_))
    }

    /// Stores the result and wakes the handle; without a handle, reports a panic and
    /// drops the result. The first result wins (a later one is a panic while dropping a
    /// detached task's output, already reported).
    fn finish(&self, result: Result<T, JoinError>) {
        if !self.has_handle.get() {
            *self.state.borrow_mut() = JoinState::Taken;
            self.report_unobserved(&result);
            drop_logged(result);
            return;
        }
        let waker = {
            let mut state = self.state.borrow_mut();
            match &mut *state {
                JoinState::Running(waker) => {
                    let waker = waker.take();
                    *state = JoinState::Finished(result);
                    waker
                }
                _ => {
                    drop(state);
                    drop_logged(result);
                    return;
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// A panic nobody will read goes where the runtime sends its own tasks' unobserved
    /// panics (one `tracing` error by default); with no runtime, to the default report.
    fn report_unobserved(&self, result: &Result<T, JoinError>) {
        let Err(err) = result else { return };
        err.with_panic_payload(|payload| {
            let panic = UnhandledTaskPanic {
                id: self.id,
                name: None,
                spawned_at: self.spawned_at,
                payload,
            };
            match crate::runtime::Handle::try_current() {
                Ok(handle) => handle.shared.unhandled_panic(&panic),
                Err(_) => super::log_unhandled_panic(&panic),
            }
        });
    }
}

impl<T> Completion for JoinCell<T> {
    fn abort_requested(&self) -> bool {
        self.abort_requested.get()
    }

    fn fail(&self, err: JoinError) {
        self.finish(Err(err));
    }
}

/// Awaits a local task's output: `Ok(value)`, or a [`JoinError`] if it panicked or was
/// cancelled (aborted, or its [`LocalSet`] dropped). The local counterpart of
/// [`JoinHandle`](super::JoinHandle); like the task, it stays on the set's thread.
///
/// Dropping the handle detaches the task: it keeps running, and a panic of it that nobody
/// reads is reported as the runtime reports its own tasks' (see
/// [`Builder::on_task_panic`](crate::runtime::Builder::on_task_panic)).
///
/// # Cancel safety
/// Awaiting is cancel safe: the handle is `Unpin`, and polling it again after dropping an
/// `.await` on it still returns the output.
///
/// # Panics
/// Polled again after it returned `Ready`: the output is handed out once.
///
/// Like the task, the handle stays on the set's thread:
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// let set = ringleader_runtime::task::LocalSet::new();
/// assert_send(set.spawn_local(async { 1 }));
/// ```
#[must_use = "dropping a LocalJoinHandle detaches the task; await it to get its output"]
pub struct LocalJoinHandle<T> {
    cell: Rc<JoinCell<T>>,
    /// The set, to drop the future at once on abort; dead once the set is dropped.
    set: Weak<Inner>,
    key: usize,
}

impl<T> LocalJoinHandle<T> {
    fn new(cell: Rc<JoinCell<T>>, set: Weak<Inner>, key: usize) -> LocalJoinHandle<T> {
        LocalJoinHandle { cell, set, key }
    }

    /// Cancels the task: its future is dropped now if the task is not being polled, or else
    /// as soon as its poll returns (a task aborting itself), and awaiting the handle gives a
    /// cancelled [`JoinError`] ([`CancelReason::Aborted`]). A task that already finished is
    /// unaffected.
    pub fn abort(&self) {
        if self.cell.is_finished() {
            return;
        }
        self.cell.abort_requested.set(true);
        // A dead set has already cancelled every task (so we returned above).
        if let Some(set) = self.set.upgrade() {
            if let Some(slot) = set.take_idle(self.key, self.cell.id) {
                set.cancel(slot, CancelReason::Aborted);
            }
        }
    }

    /// Whether the task has finished (with a value, a panic, or cancellation).
    pub fn is_finished(&self) -> bool {
        self.cell.is_finished()
    }

    /// The task's id, from the same space as every task's.
    pub fn id(&self) -> Id {
        self.cell.id
    }
}

impl<T> Future for LocalJoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let progress = std::task::ready!(ringleader_coop::poll_proceed(cx));
        let mut state = self.cell.state.borrow_mut();
        match &mut *state {
            JoinState::Running(waker) => {
                let stale = match waker {
                    Some(w) if w.will_wake(cx.waker()) => None,
                    _ => waker.replace(cx.waker().clone()),
                };
                drop(state);
                drop(stale);
                Poll::Pending
            }
            JoinState::Finished(_) => {
                let JoinState::Finished(result) = std::mem::replace(&mut *state, JoinState::Taken)
                else {
                    unreachable!("matched Finished above")
                };
                drop(state);
                progress.made_progress();
                Poll::Ready(result)
            }
            JoinState::Taken => panic!(
                "LocalJoinHandle polled after completion: it already returned its output, \
                 which is handed out once; stop polling it (or fuse it) after it is Ready"
            ),
        }
    }
}

impl<T> Drop for LocalJoinHandle<T> {
    fn drop(&mut self) {
        self.cell.has_handle.set(false);
        let leftover = {
            let mut state = self.cell.state.borrow_mut();
            match &mut *state {
                JoinState::Running(waker) => {
                    let waker = waker.take();
                    drop(state);
                    drop(waker);
                    return;
                }
                _ => std::mem::replace(&mut *state, JoinState::Taken),
            }
        };
        // Finished and never read: a panic in it is unobserved.
        if let JoinState::Finished(result) = leftover {
            self.cell.report_unobserved(&result);
            drop_logged(result);
        }
    }
}

impl<T> fmt::Debug for LocalJoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalJoinHandle")
            .field("id", &self.cell.id)
            .finish()
    }
}

#[cfg(all(test, not(ringleader_loom)))]
mod tests {
    use super::*;

    /// What a `Probe` shows the test: its poll count, its readiness switch, its waker.
    #[derive(Default)]
    struct ProbeState {
        polls: Cell<usize>,
        ready: Cell<bool>,
        waker: RefCell<Option<Waker>>,
    }

    /// Counts polls; Pending until `ready` is set, storing its waker.
    struct Probe(Rc<ProbeState>);

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let state = &self.0;
            state.polls.set(state.polls.get() + 1);
            if state.ready.get() {
                return Poll::Ready(());
            }
            *state.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn probe() -> (Probe, Rc<ProbeState>) {
        let state = Rc::new(ProbeState::default());
        (Probe(state.clone()), state)
    }

    /// A driver's waker that counts its wakes.
    #[derive(Default)]
    struct CountWakes(std::sync::atomic::AtomicUsize);

    impl CountWakes {
        fn waker() -> (std::sync::Arc<CountWakes>, Waker) {
            let wakes = std::sync::Arc::new(CountWakes::default());
            (wakes.clone(), Waker::from(wakes))
        }
        fn count(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl Wake for CountWakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// One poll of `run_until_empty` with a no-op waker.
    fn drive(set: &LocalSet) -> Poll<()> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(&mut set.run_until_empty()).poll(&mut cx)
    }

    #[test]
    fn duplicate_wakes_queue_a_task_once() {
        let set = LocalSet::new();
        let (fut, probe) = probe();
        let _handle = set.spawn_local(fut);
        assert!(drive(&set).is_pending());
        assert_eq!(probe.polls.get(), 1);
        let w = probe.waker.borrow_mut().take().unwrap();
        let owned = w.clone();
        w.wake_by_ref();
        w.wake_by_ref();
        owned.wake();
        assert_eq!(lock(&set.inner.ready.state).queue.len(), 1);
        assert!(drive(&set).is_pending());
        assert_eq!(probe.polls.get(), 2);
        assert!(lock(&set.inner.ready.state).queue.is_empty());
    }

    #[test]
    fn a_wake_during_the_poll_queues_the_task_behind_the_others() {
        let set = LocalSet::new();
        let order = Rc::new(RefCell::new(Vec::new()));
        for name in ["a", "b"] {
            let order = order.clone();
            let _detached = set.spawn_local(async move {
                order.borrow_mut().push(name);
                crate::task::yield_now().await;
                order.borrow_mut().push(name);
            });
        }
        assert!(drive(&set).is_ready());
        assert_eq!(*order.borrow(), ["a", "b", "a", "b"]);
    }

    #[test]
    fn a_drive_polls_a_bounded_number_of_tasks_and_wakes_itself() {
        let (wakes, waker) = CountWakes::waker();
        let set = LocalSet::new();
        let polled = Rc::new(Cell::new(0));
        for _ in 0..MAX_POLLS_PER_TICK + 5 {
            let polled = polled.clone();
            let _detached = set.spawn_local(async move { polled.set(polled.get() + 1) });
        }
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut set.run_until_empty())
            .poll(&mut cx)
            .is_pending());
        assert_eq!(polled.get(), MAX_POLLS_PER_TICK);
        assert_eq!(wakes.count(), 1);
        assert!(Pin::new(&mut set.run_until_empty())
            .poll(&mut cx)
            .is_ready());
        assert_eq!(polled.get(), MAX_POLLS_PER_TICK + 5);
    }

    #[test]
    fn a_stale_wake_of_a_reused_slot_does_not_poll_the_new_task() {
        let set = LocalSet::new();
        let (first, first_probe) = probe();
        let handle = set.spawn_local(first);
        assert!(drive(&set).is_pending());
        let stale = first_probe.waker.borrow_mut().take().unwrap();
        first_probe.ready.set(true);
        stale.wake_by_ref();
        assert!(drive(&set).is_ready());
        assert!(handle.is_finished());
        // The new task takes the freed slot; the old waker must not poll it.
        let (second, second_probe) = probe();
        let _second = set.spawn_local(second);
        assert!(drive(&set).is_pending());
        assert_eq!(second_probe.polls.get(), 1);
        stale.wake_by_ref();
        assert!(drive(&set).is_pending());
        assert_eq!(second_probe.polls.get(), 1);
    }

    #[test]
    fn spawning_wakes_the_registered_driver_once() {
        let (wakes, waker) = CountWakes::waker();
        let set = LocalSet::new();
        let (fut, _) = probe();
        let _pending = set.spawn_local(fut);
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut set.run_until_empty())
            .poll(&mut cx)
            .is_pending());
        assert_eq!(wakes.count(), 0);
        // Outside the drive: the first spawn wakes the driver, the second finds the queue
        // non-empty (a wake-up already in flight).
        let _a = set.spawn_local(async {});
        let _b = set.spawn_local(async {});
        assert_eq!(wakes.count(), 1);
    }
}
