//! The task allocation and the one unsafe door to it.
//!
//! A task is one heap block, `Cell<F, S>`: the [`Header`] (state word, vtable, id, name,
//! join-waker slot, registry key), the scheduler handle `S`, and the [`Stage`] (the future,
//! then its output). Everything outside this file holds the block through [`RawTask`]
//! (a pointer that owns nothing) or the owning handles built on it ([`Task`], [`Notified`],
//! `JoinHandle`, `AbortHandle`, wakers), each of which owns one reference.
//!
//! Who may touch what:
//! - `stage`: the thread holding `RUNNING` (it polls or drops the future and stores the output);
//!   after `COMPLETE`, the `JoinHandle` (it takes or drops the output) if `JOIN_INTEREST` was set
//!   at completion, else nobody (the runner dropped the output while completing).
//! - `join_waker`: the `JoinHandle` while `JOIN_WAKER` is clear; the runner reads it while the
//!   bit is set; after completion see `state.rs`.
//! - `registry_key`: only under the registry shard's lock.
//! - `context`: the thread polling the task (through the current-task thread-local), and
//!   the spawner before the task is shared; see `context.rs`.
//! - everything else is immutable after spawn.

use std::any::Any;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::context::Snapshot;
use super::id::{CurrentGuard, Id};
use super::join::JoinError;
use super::state::{State, ToIdle, ToRunning, ToScheduled};
use super::Schedule;
use super::{CancelReason, DoneHook, TaskOutcome};
use crate::loom::{lock, Mutex, UnsafeCell};

type DoneFn = Box<dyn FnOnce(TaskOutcome) + Send + 'static>;

/// One done callback: a boxed closure (`add_done_callback`) or a shared hook given at spawn
/// (`Builder::done_hook`), which costs no allocation of its own.
pub(crate) enum DoneCallback {
    Boxed(DoneFn),
    Hook(std::sync::Arc<dyn DoneHook>),
}

impl DoneCallback {
    fn call(self, id: Id, outcome: TaskOutcome) {
        match self {
            DoneCallback::Boxed(f) => f(outcome),
            DoneCallback::Hook(hook) => hook.task_done(id, outcome),
        }
    }
}

enum DoneCallbacks {
    /// Not finished yet: the callbacks in registration order, each with its key (0 for
    /// the spawn's hook, which cannot be removed). The first is held inline, so the common
    /// single callback (a task group's hook) allocates no list.
    Waiting {
        first: Option<(u64, DoneCallback)>,
        more: Vec<(u64, DoneCallback)>,
        /// The key of the last boxed callback registered.
        last_key: u64,
    },
    Ran(TaskOutcome),
}

/// Rarely used per-task state, behind one lock.
struct Extras {
    done: DoneCallbacks,
    /// The first reason given to cancel the task.
    cancel_reason: Option<CancelReason>,
}

/// The type-erased part of every task.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) state: State,
    vtable: &'static Vtable,
    pub(crate) id: Id,
    pub(crate) name: Option<Box<str>>,
    pub(crate) spawned_at: &'static Location<'static>,
    join_waker: UnsafeCell<Option<Waker>>,
    /// Done callbacks (asyncio's `add_done_callback`) and the cancel reason.
    extras: Mutex<Extras>,
    /// The task's slot in the live-task registry. Written and read only under the lock of
    /// the registry shard the task's id maps to.
    pub(crate) registry_key: UnsafeCell<usize>,
    /// The task's context variables (see `context.rs`).
    context: UnsafeCell<Snapshot>,
}

impl Header {
    /// Runs `f` on the task's context slot.
    ///
    /// Only for the thread holding `RUNNING`: the one polling this task (reaching it
    /// through the current-task thread-local, `context.rs`) or completing it. `f` runs no
    /// user code, so it cannot re-enter.
    pub(crate) fn with_context<R>(&self, f: impl FnOnce(&mut Snapshot) -> R) -> R {
        self.context.with_mut(|slot| {
            // SAFETY: the thread holding RUNNING alone reaches the slot (see above), and `f`
            // does not re-enter, so this is the only reference to it.
            f(unsafe { &mut *slot })
        })
    }
}

/// The functions that need the concrete future and scheduler types.
struct Vtable {
    run: unsafe fn(NonNull<Header>),
    schedule: unsafe fn(NonNull<Header>),
    dealloc: unsafe fn(NonNull<Header>),
    try_read_output: unsafe fn(NonNull<Header>, *mut ()),
    drop_output: unsafe fn(NonNull<Header>),
    shutdown: unsafe fn(NonNull<Header>),
}

pub(crate) enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

/// `repr(C)` so the header comes first (the type-erased pointer is a pointer to it). No
/// over-alignment: a 128-byte-aligned block goes through glibc's slow `memalign` path on
/// every spawn and free, which cost more (measured on the spawn benchmarks) than the false
/// sharing it would prevent between neighbouring task blocks; a block is larger than a
/// cache line, so neighbours share at most the line at each boundary.
#[repr(C)]
struct Cell<F: Future, S> {
    header: Header,
    scheduler: S,
    stage: UnsafeCell<Stage<F>>,
}

/// A pointer to a task that owns no reference. Copyable; whoever uses it must know the task
/// is alive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct RawTask(NonNull<Header>);

// SAFETY: a task's shared fields are synchronised by its state word and the registry locks,
// and spawned futures and outputs are Send (enforced by the spawn functions' bounds).
unsafe impl Send for RawTask {}
// SAFETY: as above; &RawTask only gives access to the header's synchronised fields.
unsafe impl Sync for RawTask {}

impl RawTask {
    /// Allocates a task with a fresh id, holding `refs` references, all owned by the caller.
    pub(crate) fn new<F, S>(
        future: F,
        scheduler: S,
        name: Option<Box<str>>,
        spawned_at: &'static Location<'static>,
        hook: Option<std::sync::Arc<dyn DoneHook>>,
        context: Snapshot,
        refs: usize,
    ) -> RawTask
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        S: Schedule,
    {
        let cell = Box::new(Cell {
            header: Header {
                state: State::new(refs),
                vtable: vtable::<F, S>(),
                id: Id::next(),
                name,
                spawned_at,
                join_waker: UnsafeCell::new(None),
                extras: Mutex::new(Extras {
                    done: DoneCallbacks::Waiting {
                        first: hook.map(|hook| (0, DoneCallback::Hook(hook))),
                        more: Vec::new(),
                        last_key: 0,
                    },
                    cancel_reason: None,
                }),
                registry_key: UnsafeCell::new(usize::MAX),
                context: UnsafeCell::new(context),
            },
            scheduler,
            stage: UnsafeCell::new(Stage::Running(future)),
        });
        RawTask(NonNull::from(Box::leak(cell)).cast())
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: RawTask is only used while some reference keeps the block alive.
        unsafe { self.0.as_ref() }
    }

    /// # Safety
    /// The caller holds one reference to the task and gives it up here.
    pub(crate) unsafe fn drop_reference(self) {
        if self.header().state.ref_dec() {
            // SAFETY: that was the last reference.
            unsafe { (self.header().vtable.dealloc)(self.0) }
        }
    }

    /// Frees the task.
    ///
    /// # Safety
    /// The caller's reference was the last one, and its count is already gone from the
    /// state word.
    pub(crate) unsafe fn dealloc(self) {
        // SAFETY: forwarded duties.
        unsafe { (self.header().vtable.dealloc)(self.0) }
    }

    /// # Safety
    /// The caller holds one reference (kept).
    pub(crate) unsafe fn try_read_output<T>(self, dst: &mut Poll<Result<T, JoinError>>) {
        // SAFETY: the caller guarantees T is the task's output type (JoinHandle<T> was built
        // for this task) and that the task is alive.
        unsafe { (self.header().vtable.try_read_output)(self.0, dst as *mut _ as *mut ()) }
    }

    /// Drops the output after the join handle lost interest in a completed task.
    ///
    /// # Safety
    /// The caller is the join handle, `drop_join_interest` saw the task complete.
    pub(crate) unsafe fn drop_output(self) {
        // SAFETY: forwarded duties.
        unsafe { (self.header().vtable.drop_output)(self.0) }
    }

    /// Submits a `Notified` built from one reference the caller gives up.
    ///
    /// # Safety
    /// The caller owns one reference and has set `SCHEDULED`.
    pub(crate) unsafe fn schedule(self) {
        // SAFETY: forwarded duties.
        unsafe { (self.header().vtable.schedule)(self.0) }
    }

    /// Shutdown: cancels the task now if nobody runs it.
    ///
    /// # Safety
    /// The caller holds one reference (kept).
    pub(crate) unsafe fn shutdown(self) {
        // SAFETY: forwarded duties.
        unsafe { (self.header().vtable.shutdown)(self.0) }
    }

    /// Runs `f` with the task's outcome once it finishes; at once (on this thread) if it
    /// already has. Never called with the callback list locked. Returns the key that
    /// [`remove_done_callback`](Self::remove_done_callback) takes (0 if `f` already ran).
    pub(crate) fn add_done_callback(&self, f: DoneCallback) -> u64 {
        let mut extras = lock(&self.header().extras);
        match &mut extras.done {
            DoneCallbacks::Waiting {
                first,
                more,
                last_key,
            } => {
                *last_key += 1;
                let key = *last_key;
                match first {
                    None => *first = Some((key, f)),
                    Some(_) => more.push((key, f)),
                }
                key
            }
            DoneCallbacks::Ran(outcome) => {
                let outcome = *outcome;
                drop(extras);
                let id = self.header().id;
                // As asyncio: a callback added to a finished task is scheduled with
                // `call_soon`, never run inside its caller, which may hold a lock the
                // callback takes. Without a runtime to schedule on, it runs now.
                match crate::runtime::Handle::try_current() {
                    Ok(handle) => {
                        handle.call_soon(move || run_callback(f, id, outcome));
                    }
                    Err(_) => run_callback(f, id, outcome),
                }
                0
            }
        }
    }

    /// How the task finished, once it is finished (COMPLETE published; the outcome was
    /// recorded before that, when the done callbacks ran).
    pub(crate) fn outcome(&self) -> Option<TaskOutcome> {
        if !self.header().state.load().is_complete() {
            return None;
        }
        match lock(&self.header().extras).done {
            DoneCallbacks::Ran(outcome) => Some(outcome),
            DoneCallbacks::Waiting { .. } => None,
        }
    }

    /// Unregisters the done callback `key` if it has not run; true if it was removed.
    pub(crate) fn remove_done_callback(&self, key: u64) -> bool {
        if key == 0 {
            return false;
        }
        let removed = {
            let mut extras = lock(&self.header().extras);
            let DoneCallbacks::Waiting { first, more, .. } = &mut extras.done else {
                return false;
            };
            if first.as_ref().is_some_and(|(k, _)| *k == key) {
                // Keep registration order: the next callback moves up to the inline slot.
                let next = if more.is_empty() {
                    None
                } else {
                    Some(more.remove(0))
                };
                std::mem::replace(first, next)
            } else {
                more.iter()
                    .position(|(k, _)| *k == key)
                    .map(|i| more.remove(i))
            }
        };
        // The closure is dropped outside the lock: its drop may run arbitrary code.
        removed.is_some()
    }

    /// Records why the task is being cancelled; the first reason given wins.
    pub(crate) fn set_cancel_reason(&self, reason: CancelReason) {
        let mut extras = lock(&self.header().extras);
        if extras.cancel_reason.is_none() {
            extras.cancel_reason = Some(reason);
        }
    }

    /// Writes to the join-waker slot; see the module docs for who may call it when.
    pub(crate) fn with_join_waker<R>(&self, f: impl FnOnce(*mut Option<Waker>) -> R) -> R {
        self.header().join_waker.with_mut(f)
    }

    /// Reads the join-waker slot (shared with other readers while `JOIN_WAKER` is set).
    pub(crate) fn with_join_waker_ref<R>(&self, f: impl FnOnce(*const Option<Waker>) -> R) -> R {
        self.header().join_waker.with(f)
    }
}

/// An owned reference to a task (the registry's).
#[derive(Debug)]
pub(crate) struct Task(RawTask);

impl Task {
    /// # Safety
    /// The caller gives this handle one reference it owns.
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Task {
        Task(raw)
    }
    pub(crate) fn raw(&self) -> RawTask {
        self.0
    }
    pub(crate) fn id(&self) -> Id {
        self.0.header().id
    }
    /// Cancels the task if nobody is running it; see `State::transition_to_shutdown`.
    pub(crate) fn shutdown(&self) {
        // SAFETY: we hold a reference.
        unsafe { self.0.shutdown() }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // SAFETY: this handle owns one reference.
        unsafe { self.0.drop_reference() }
    }
}

/// A task in a run queue; owns one reference. Running it consumes it.
#[derive(Debug)]
pub(crate) struct Notified(RawTask);

impl Notified {
    /// # Safety
    /// The caller gives one owned reference, and `SCHEDULED` is set on its behalf.
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Notified {
        Notified(raw)
    }
    pub(crate) fn id(&self) -> Id {
        self.0.header().id
    }
    /// Polls (or cancels) the task, consuming this reference.
    pub(crate) fn run(self) {
        let raw = ManuallyDrop::new(self).0;
        // SAFETY: we own a Notified reference, which `run` consumes.
        unsafe { (raw.header().vtable.run)(raw.0) }
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        // A Notified dropped without running (a queue drained at shutdown): its task is
        // cancelled through the registry; only the reference goes here.
        // SAFETY: this handle owns one reference.
        unsafe { self.0.drop_reference() }
    }
}

fn vtable<F, S>() -> &'static Vtable
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    &Vtable {
        run: run::<F, S>,
        schedule: schedule::<F, S>,
        dealloc: dealloc::<F, S>,
        try_read_output: try_read_output::<F, S>,
        drop_output: drop_output::<F, S>,
        shutdown: shutdown::<F, S>,
    }
}

/// # Safety
/// `ptr` points to a live `Cell<F, S>`.
unsafe fn cell<'a, F: Future, S>(ptr: NonNull<Header>) -> &'a Cell<F, S> {
    // SAFETY: Header is the first field of the repr(C) Cell, and the vtable that led here was
    // built for exactly these F and S.
    unsafe { ptr.cast::<Cell<F, S>>().as_ref() }
}

unsafe fn schedule<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the caller owns a reference, so the cell is alive; that reference becomes the
    // Notified's (SCHEDULED is set by the caller's transition).
    unsafe {
        let cell = cell::<F, S>(ptr);
        cell.scheduler.schedule(Notified::from_raw(RawTask(ptr)));
    }
}

unsafe fn dealloc<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the last reference is gone, so nobody else can reach the block; it was
    // allocated by Box in RawTask::new with this exact type.
    let cell = unsafe { Box::from_raw(ptr.cast::<Cell<F, S>>().as_ptr()) };
    // Normally the stage is Consumed here; a panic in a leftover drop must not unwind into
    // whatever dropped the last reference (a waker, a queue).
    if panic::catch_unwind(AssertUnwindSafe(move || drop(cell))).is_err() {
        tracing::error!("a panic while freeing a task was caught and ignored");
    }
}

unsafe fn run<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the caller gave us a Notified reference: the cell is alive until we drop it.
    let cell = unsafe { cell::<F, S>(ptr) };
    let header = &cell.header;
    match header.state.transition_to_running() {
        ToRunning::Skip => {
            // SAFETY: we own the Notified reference.
            unsafe { RawTask(ptr).drop_reference() };
            return;
        }
        ToRunning::Cancel => {
            cancel_and_complete(cell, ptr);
            return;
        }
        ToRunning::Poll => {}
    }

    // The poll's waker borrows the runner's reference; clones take their own.
    // SAFETY: the data pointer is a live task header, as WAKER_VTABLE requires.
    let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw_waker(ptr)) });
    let mut cx = Context::from_waker(&waker);
    tracing::trace!(task.id = header.id.as_u64(), "poll");
    let slow_poll = cell.scheduler.slow_poll_threshold();
    let poll_started = slow_poll.map(|_| std::time::Instant::now());
    let polled = {
        let _current = CurrentGuard::enter(ptr);
        panic::catch_unwind(AssertUnwindSafe(|| {
            ringleader_coop::with_budget(|| {
                cell.stage.with_mut(|stage| {
                    // SAFETY: we hold RUNNING, so we alone access the stage; the future is
                    // never moved out of its heap cell while Running.
                    match unsafe { &mut *stage } {
                        Stage::Running(future) => {
                            // SAFETY: the future is dropped in place, never moved out.
                            unsafe { Pin::new_unchecked(future) }.poll(&mut cx)
                        }
                        _ => unreachable!("a task polled after it completed"),
                    }
                })
            })
        }))
    };
    if let (Some(threshold), Some(started)) = (slow_poll, poll_started) {
        let took = started.elapsed();
        if took > threshold {
            tracing::warn!(
                task.id = header.id.as_u64(),
                task.name = header.name.as_deref().unwrap_or(""),
                spawned_at = %header.spawned_at,
                took_ms = took.as_millis() as u64,
                "slow poll: task {} ({}) spawned at {} blocked its worker for {:?}",
                header.id,
                header.name.as_deref().unwrap_or("unnamed"),
                header.spawned_at,
                took,
            );
        }
    }
    match polled {
        Ok(Poll::Pending) => match header.state.transition_to_idle() {
            // SAFETY: we own the runner's reference.
            ToIdle::Idle => unsafe { RawTask(ptr).drop_reference() },
            ToIdle::Requeue => {
                // SAFETY: the runner's reference becomes the new Notified; SCHEDULED is set.
                let task = unsafe { Notified::from_raw(RawTask(ptr)) };
                cell.scheduler.yield_now(task);
            }
            ToIdle::Cancel => cancel_and_complete(cell, ptr),
        },
        Ok(Poll::Ready(output)) => {
            let result = match drop_future(cell) {
                None => Ok(output),
                Some(payload) => {
                    drop_caught(output);
                    Err(JoinError::panic(header.id, payload))
                }
            };
            complete(cell, ptr, result);
        }
        Err(payload) => {
            // The panicking future is dropped too; a second panic from its drop is dropped.
            if let Some(second) = drop_future(cell) {
                drop_caught(second);
            }
            complete(cell, ptr, Err(JoinError::panic(header.id, payload)));
        }
    }
}

/// Drops a value whose destructor may panic, swallowing the panic.
fn drop_caught<T>(value: T) {
    if panic::catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
        tracing::warn!("a panic while dropping a task's value was caught and ignored");
    }
}

/// Drops the future (we hold RUNNING). Returns the panic payload if its drop panicked.
fn drop_future<F: Future, S>(cell: &Cell<F, S>) -> Option<Box<dyn Any + Send>> {
    let _current = CurrentGuard::enter(NonNull::from(&cell.header));
    panic::catch_unwind(AssertUnwindSafe(|| {
        cell.stage.with_mut(|stage| {
            // SAFETY: the caller holds RUNNING, so the stage is ours.
            let old = std::mem::replace(unsafe { &mut *stage }, Stage::Consumed);
            drop(old);
        })
    }))
    .err()
}

fn cancel_and_complete<F: Future, S: Schedule>(cell: &Cell<F, S>, ptr: NonNull<Header>)
where
    F::Output: Send + 'static,
{
    let id = cell.header.id;
    let reason = lock(&cell.header.extras)
        .cancel_reason
        .clone()
        .unwrap_or(CancelReason::Aborted);
    let result = match drop_future(cell) {
        None => Err(JoinError::cancelled(id, reason)),
        Some(payload) => Err(JoinError::panic(id, payload)),
    };
    complete(cell, ptr, result);
}

/// Stores the result, publishes completion, wakes the joiner and gives up the runner's and
/// the registry's references.
fn complete<F: Future, S: Schedule>(
    cell: &Cell<F, S>,
    ptr: NonNull<Header>,
    result: Result<F::Output, JoinError>,
) {
    let header = &cell.header;
    tracing::trace!(task.id = header.id.as_u64(), "complete");
    let outcome = match &result {
        Ok(_) => TaskOutcome::Completed,
        Err(e) if e.is_panic() => TaskOutcome::Panicked,
        Err(_) => TaskOutcome::Cancelled,
    };
    cell.stage.with_mut(|stage| {
        // SAFETY: we hold RUNNING; the stage is Consumed (the future was dropped).
        unsafe { *stage = Stage::Finished(result) };
    });
    // Done callbacks run before COMPLETE is published, not merely before the joiner is
    // woken: a handle polled (or `is_finished` read) without a wake-up sees COMPLETE as soon
    // as it is set, so running them after it let `handle.await` return before the callbacks
    // had run (seen as a flaky `rt_callbacks` test). Now once the handle sees the task
    // finished, every callback registered before has run.
    // Leave the registry before the done callbacks run and before COMPLETE is published:
    // whoever learns that the task finished (a done callback such as a task group's, or a
    // handle that sees COMPLETE) never finds it still listed as live. (Our runner's
    // reference keeps it alive meanwhile; shutdown no longer finds it, which is fine: its
    // future is already gone.)
    let released = cell.scheduler.release(RawTask(ptr));
    run_done_callbacks(header, outcome);
    let prev = header.state.transition_to_complete();
    if !prev.has_join_interest() {
        // Nobody will read the output: drop it here, on the runtime.
        cell.stage.with_mut(|stage| {
            // SAFETY: without JOIN_INTEREST nobody else touches the stage after completion.
            let old = std::mem::replace(unsafe { &mut *stage }, Stage::Consumed);
            report_unobserved(&cell.scheduler, header, &old);
            drop_caught(old);
        });
    } else if prev.has_join_waker() {
        let raw = RawTask(ptr);
        raw.with_join_waker_ref(|slot| {
            // SAFETY: JOIN_WAKER is set, so the handle does not write the slot; reads are
            // shared.
            if let Some(waker) = unsafe { &*slot } {
                waker.wake_by_ref();
            }
        });
        let after = header.state.unset_join_waker_after_complete();
        if !after.has_join_interest() {
            // The handle went away while we woke it: the slot is ours to clear.
            // SAFETY: no JOIN_INTEREST, complete: nobody else touches the slot.
            let waker = raw.with_join_waker(|slot| unsafe { (*slot).take() });
            drop_caught(waker);
        }
    }
    if let Some(task) = released {
        // Drop the registry's and the runner's references together.
        std::mem::forget(task);
        if header.state.ref_dec_twice() {
            // SAFETY: those were the last references.
            unsafe { dealloc::<F, S>(ptr) }
        }
    } else {
        // SAFETY: we own the runner's reference.
        unsafe { RawTask(ptr).drop_reference() }
    }
}

unsafe fn try_read_output<F: Future, S>(ptr: NonNull<Header>, dst: *mut ()) {
    // SAFETY: the caller (JoinHandle<F::Output>) passes a `Poll<Result<F::Output, JoinError>>`
    // and holds a reference.
    let (cell, dst) = unsafe {
        (
            cell::<F, S>(ptr),
            &mut *(dst as *mut Poll<Result<F::Output, JoinError>>),
        )
    };
    cell.stage.with_mut(|stage| {
        // SAFETY: the handle saw COMPLETE with JOIN_INTEREST: the stage is the handle's.
        match std::mem::replace(unsafe { &mut *stage }, Stage::Consumed) {
            Stage::Finished(result) => *dst = Poll::Ready(result),
            _ => panic!(
                "JoinHandle polled after completion: it already returned its output, which \
                 is handed out once; stop polling it (or fuse it) after it is Ready"
            ),
        }
    });
}

unsafe fn drop_output<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the caller holds a reference.
    let cell = unsafe { cell::<F, S>(ptr) };
    cell.stage.with_mut(|stage| {
        // SAFETY: the handle saw COMPLETE with JOIN_INTEREST when dropping: the stage is ours.
        let old = std::mem::replace(unsafe { &mut *stage }, Stage::Consumed);
        report_unobserved(&cell.scheduler, &cell.header, &old);
        drop_caught(old);
    });
}

/// asyncio's "Task exception was never retrieved": a panic whose JoinHandle was dropped
/// without reading it goes to the runtime's handler (by default, one error log) when its
/// output is dropped.
fn report_unobserved<F: Future, S: Schedule>(scheduler: &S, header: &Header, stage: &Stage<F>) {
    if let Stage::Finished(Err(err)) = stage {
        err.with_panic_payload(|payload| {
            scheduler.unhandled_panic(&super::UnhandledTaskPanic {
                id: header.id,
                name: header.name.as_deref(),
                spawned_at: header.spawned_at,
                payload,
            })
        });
    }
}

fn run_done_callbacks(header: &Header, outcome: TaskOutcome) {
    let (first, more) = {
        let mut extras = lock(&header.extras);
        match std::mem::replace(&mut extras.done, DoneCallbacks::Ran(outcome)) {
            DoneCallbacks::Waiting { first, more, .. } => (first, more),
            DoneCallbacks::Ran(_) => (None, Vec::new()),
        }
    };
    for (_, f) in first.into_iter().chain(more) {
        match f {
            // A spawn hook (a task group's count) is runtime code: no context needed.
            DoneCallback::Hook(_) => run_callback(f, header.id, outcome),
            // A user's callback runs in the task's context variables, as asyncio's done
            // callbacks do; a `set` in it stays there instead of reaching this thread's.
            DoneCallback::Boxed(_) => {
                // We complete the task, so we hold RUNNING: the slot is ours to read.
                let context = header.with_context(|slot| slot.clone());
                super::context::run_in(context, || run_callback(f, header.id, outcome));
            }
        }
    }
}

fn run_callback(f: DoneCallback, id: Id, outcome: TaskOutcome) {
    if panic::catch_unwind(AssertUnwindSafe(move || f.call(id, outcome))).is_err() {
        tracing::error!("a done callback panicked; the panic was caught and ignored");
    }
}

unsafe fn shutdown<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the caller holds a reference.
    let cell = unsafe { cell::<F, S>(ptr) };
    RawTask(ptr).set_cancel_reason(CancelReason::Shutdown);
    if cell.header.state.transition_to_shutdown() {
        // We claimed RUNNING; complete with a runner's reference of our own, which
        // `complete` gives up.
        cell.header.state.ref_inc();
        cancel_and_complete(cell, ptr);
    }
}

// ----- wakers -------------------------------------------------------------------------

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

fn raw_waker(ptr: NonNull<Header>) -> RawWaker {
    RawWaker::new(ptr.as_ptr() as *const (), &WAKER_VTABLE)
}

unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: the waker being cloned holds (or borrows) a reference, so the header is live.
    let header = unsafe { &*(data as *const Header) };
    header.state.ref_inc();
    raw_waker(NonNull::from(header))
}

unsafe fn waker_wake(data: *const ()) {
    // SAFETY: this waker owns a reference.
    let raw = RawTask(unsafe { NonNull::new_unchecked(data as *mut Header) });
    match raw.header().state.transition_to_scheduled_by_val() {
        // SAFETY: our reference became the Notified's.
        ToScheduled::Submit => unsafe { raw.schedule() },
        ToScheduled::Nothing => {}
        // SAFETY: we own the reference.
        ToScheduled::DropRef => unsafe { raw.drop_reference() },
    }
}

unsafe fn waker_wake_by_ref(data: *const ()) {
    // SAFETY: the waker holds or borrows a reference.
    let raw = RawTask(unsafe { NonNull::new_unchecked(data as *mut Header) });
    if raw.header().state.transition_to_scheduled_by_ref() == ToScheduled::Submit {
        // SAFETY: the transition took a new reference for the Notified.
        unsafe { raw.schedule() }
    }
}

unsafe fn waker_drop(data: *const ()) {
    // SAFETY: this waker owns a reference.
    unsafe { RawTask(NonNull::new_unchecked(data as *mut Header)).drop_reference() }
}
