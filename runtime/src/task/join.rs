//! Handles to a spawned task: [`JoinHandle`], [`AbortHandle`] and the [`JoinError`] they report.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use super::id::Id;
use super::raw::{DoneCallback, RawTask};
use super::{CancelReason, TaskOutcome};

/// Awaits a spawned task's output: `Ok(value)`, or a [`JoinError`] if it panicked or was
/// cancelled.
///
/// Dropping the handle detaches the task: it keeps running and its output is dropped on the
/// runtime when it finishes (asyncio's fire-and-forget `create_task`, without the garbage
/// collection hazard: the runtime keeps the task alive).
///
/// # Cancel safety
/// Awaiting is cancel safe: a dropped `JoinHandle` future loses nothing, and polling the
/// handle again (it is `Unpin`) still returns the output.
///
/// Awaiting it from any runtime, or polling it from a plain thread, works: the task's
/// waker is whichever the last poll gave.
///
/// # Panics
/// Polled again after it returned `Ready` (as tokio's "JoinHandle polled after
/// completion"): the output is handed out once. Stop polling it, or wrap it in a fused
/// future.
#[must_use = "dropping a JoinHandle detaches the task; await it to get its output"]
pub struct JoinHandle<T> {
    raw: RawTask,
    _output: PhantomData<T>,
}

// SAFETY: the handle only moves the output (T: Send) across threads; the task's shared state
// is synchronised by its state word.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: &JoinHandle allows only `abort`, `is_finished` and `id`, which touch atomics.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// # Safety
    /// `raw`'s output type is `T`, and the caller gives the handle one reference with
    /// `JOIN_INTEREST` set on its behalf.
    pub(crate) unsafe fn new(raw: RawTask) -> JoinHandle<T> {
        JoinHandle {
            raw,
            _output: PhantomData,
        }
    }

    /// Cancels the task: its future is dropped on the runtime (at its next poll if it is
    /// running now), and awaiting the handle gives a cancelled [`JoinError`]. A task that
    /// already finished is unaffected.
    pub fn abort(&self) {
        abort(self.raw, CancelReason::Aborted);
    }

    /// [`abort`](Self::abort) with a reason, which the [`JoinError`] reports.
    pub fn abort_with(&self, reason: CancelReason) {
        abort(self.raw, reason);
    }

    /// asyncio's `Task.cancel()`: [`abort`](Self::abort), returning `false` if the task had
    /// already finished (nothing changes then: its value or panic stays) and `true` if the
    /// cancellation was requested (also when it had been requested before).
    pub fn cancel(&self) -> bool {
        abort(self.raw, CancelReason::Aborted)
    }

    /// asyncio's `Task.cancel(msg)`: [`cancel`](Self::cancel) with a reason, which the
    /// [`JoinError`] reports (the first reason given wins).
    pub fn cancel_with(&self, reason: CancelReason) -> bool {
        abort(self.raw, reason)
    }

    /// Whether the task has finished (with a value, a panic or cancellation).
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// Blocks the calling thread until the task finishes and returns what awaiting the
    /// handle would: for code that is not async (a thread of its own, a
    /// [`to_thread`](crate::task::to_thread) closure) that hands work to the runtime.
    /// `handle.spawn(coro).blocking_wait()` is asyncio's
    /// `asyncio.run_coroutine_threadsafe(coro, loop).result()`.
    ///
    /// It never outwaits the runtime: a task still alive when its runtime shuts down is
    /// cancelled, and this then returns the cancellation.
    ///
    /// ```
    /// use ringleader_runtime::runtime::Builder;
    ///
    /// let rt = Builder::new_multi_thread().worker_threads(1).build()?;
    /// let handle = rt.handle().clone();
    /// let answer = std::thread::spawn(move || {
    ///     // A plain thread: runs the future on the runtime and waits for it.
    ///     handle.spawn(async { 6 * 7 }).blocking_wait()
    /// });
    /// assert_eq!(answer.join().unwrap().unwrap(), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As awaiting the handle: the task panicked or was cancelled.
    ///
    /// # Panics
    /// When called from async code: on a worker thread, or inside
    /// [`block_on`](crate::runtime::Runtime::block_on) (including a task of a
    /// current-thread runtime), where blocking would stall the tasks it waits for. Await
    /// the handle there instead. Also if the handle was already awaited to completion.
    #[track_caller]
    pub fn blocking_wait(self) -> Result<T, JoinError> {
        crate::runtime::assert_may_block("JoinHandle::blocking_wait");
        ringleader_coop::block_on_parked(self)
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.raw.header().id
    }

    /// How the task finished (returned, panicked or was cancelled), or `None` while it has
    /// not (asyncio's `Task.done()` with `cancelled()`, without consuming the output).
    pub fn outcome(&self) -> Option<TaskOutcome> {
        self.raw.outcome()
    }

    /// The task's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.raw.header().name.as_deref()
    }

    /// Runs `callback` once when the task finishes, with how it finished (asyncio's
    /// `Task.add_done_callback`). If it has already finished, `callback` is scheduled with
    /// [`call_soon`](crate::runtime::Handle::call_soon) on the current runtime, as asyncio
    /// does, so it never runs inside this call (it runs now only when called outside any
    /// runtime, with nothing to schedule on). Otherwise it runs on the thread that completes
    /// the task, once its output is stored and just before it is marked finished (never
    /// under its locks): when
    /// [`is_finished`](Self::is_finished) is true or the handle's `await` has returned,
    /// every callback registered before has run (inside a callback, `is_finished` is still
    /// false). A panicking callback is caught. Callbacks run in the order they were
    /// registered, each exactly once, whether the task returned, panicked or was cancelled.
    ///
    /// Returns a key for [`remove_done_callback`](Self::remove_done_callback).
    pub fn add_done_callback(
        &self,
        callback: impl FnOnce(TaskOutcome) + Send + 'static,
    ) -> DoneCallbackKey {
        DoneCallbackKey(
            self.raw
                .add_done_callback(DoneCallback::Boxed(Box::new(callback))),
        )
    }

    /// Unregisters a done callback that has not run yet (asyncio's
    /// `Task.remove_done_callback`); `true` if it was removed, `false` if it had already run
    /// (or is running) or was removed before. The callback is dropped unrun.
    pub fn remove_done_callback(&self, key: DoneCallbackKey) -> bool {
        self.raw.remove_done_callback(key.0)
    }

    /// A cloneable handle that can abort the task without awaiting it.
    pub fn abort_handle(&self) -> AbortHandle {
        self.raw.header().state.ref_inc();
        AbortHandle { raw: self.raw }
    }

    fn register_waker(&self, waker: &Waker) -> Result<(), ()> {
        let state = &self.raw.header().state;
        let snapshot = state.load();
        if snapshot.is_complete() {
            return Err(());
        }
        if snapshot.has_join_waker() {
            let same = self.raw.with_join_waker_ref(|slot| {
                // SAFETY: JOIN_WAKER is set, so the runner only reads the slot; so do we.
                unsafe { (*slot).as_ref() }.is_some_and(|w| w.will_wake(waker))
            });
            if same {
                return Ok(());
            }
            // Take the slot back before writing a new waker.
            if state.unset_join_waker().is_err() {
                return Err(());
            }
        }
        self.raw.with_join_waker(|slot| {
            // SAFETY: JOIN_WAKER is clear and we hold JOIN_INTEREST: the slot is ours.
            unsafe { *slot = Some(waker.clone()) };
        });
        state.set_join_waker().map(drop).map_err(drop)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let progress = std::task::ready!(ringleader_coop::poll_proceed(cx));
        if self.register_waker(cx.waker()).is_ok() {
            return Poll::Pending;
        }
        let mut out = Poll::Pending;
        // SAFETY: the task is complete and we hold JOIN_INTEREST; T is its output type.
        unsafe { self.raw.try_read_output(&mut out) };
        progress.made_progress();
        out
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        let state = &self.raw.header().state;
        if !state.load().has_join_waker() {
            // Most handles are dropped unpolled before their task completes (a detached
            // spawn): one state transition then, instead of two. The slot is ours while
            // JOIN_WAKER is clear, and only this handle sets that bit, so empty the slot
            // first, while our reference still keeps the task alive.
            // SAFETY: JOIN_WAKER is clear and only we could set it: the slot is ours.
            let stale = self.raw.with_join_waker(|slot| unsafe { (*slot).take() });
            drop(stale);
            if let Some(last) = state.drop_join_handle_fast() {
                if last {
                    // SAFETY: our reference was the last one; dropping it frees the task.
                    unsafe { self.raw.dealloc() };
                }
                return;
            }
        }
        let prev = state.drop_join_interest();
        if prev.is_complete() {
            // SAFETY: the output was left to us at completion.
            unsafe { self.raw.drop_output() };
        }
        // Before completion we took the slot back with JOIN_INTEREST; after it, the slot is
        // ours unless the runner still had it published.
        if !prev.is_complete() || !prev.has_join_waker() {
            // SAFETY: per the above the slot is ours.
            let waker = self.raw.with_join_waker(|slot| unsafe { (*slot).take() });
            drop(waker);
        }
        // SAFETY: the handle owns one reference.
        unsafe { self.raw.drop_reference() };
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .finish()
    }
}

/// Requests cancellation; false if the task had already completed.
fn abort(raw: RawTask, reason: CancelReason) -> bool {
    use super::state::ToScheduled;
    raw.set_cancel_reason(reason);
    let (next, was_complete) = raw.header().state.transition_to_aborted_checked();
    if next == ToScheduled::Submit {
        // SAFETY: the transition took a reference for the Notified.
        unsafe { raw.schedule() };
    }
    !was_complete
}

/// Identifies a done callback registered with [`JoinHandle::add_done_callback`], for
/// [`JoinHandle::remove_done_callback`]. Keys are per task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DoneCallbackKey(u64);

/// Aborts a task without owning its output; cloneable, and dropping it does nothing.
pub struct AbortHandle {
    raw: RawTask,
}

// SAFETY: only atomics of the task are touched through this handle.
unsafe impl Send for AbortHandle {}
// SAFETY: as above.
unsafe impl Sync for AbortHandle {}

impl AbortHandle {
    /// Cancels the task; see [`JoinHandle::abort`].
    pub fn abort(&self) {
        abort(self.raw, CancelReason::Aborted);
    }

    /// [`JoinHandle::abort_with`].
    pub fn abort_with(&self, reason: CancelReason) {
        abort(self.raw, reason);
    }

    /// [`JoinHandle::cancel`]: `false` if the task had already finished.
    pub fn cancel(&self) -> bool {
        abort(self.raw, CancelReason::Aborted)
    }

    /// [`JoinHandle::cancel_with`].
    pub fn cancel_with(&self, reason: CancelReason) -> bool {
        abort(self.raw, reason)
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.raw.header().id
    }

    /// See [`JoinHandle::outcome`].
    pub fn outcome(&self) -> Option<TaskOutcome> {
        self.raw.outcome()
    }

    /// See [`JoinHandle::add_done_callback`].
    pub fn add_done_callback(
        &self,
        callback: impl FnOnce(TaskOutcome) + Send + 'static,
    ) -> DoneCallbackKey {
        DoneCallbackKey(
            self.raw
                .add_done_callback(DoneCallback::Boxed(Box::new(callback))),
        )
    }

    /// See [`JoinHandle::remove_done_callback`].
    pub fn remove_done_callback(&self, key: DoneCallbackKey) -> bool {
        self.raw.remove_done_callback(key.0)
    }
}

impl Clone for AbortHandle {
    fn clone(&self) -> Self {
        self.raw.header().state.ref_inc();
        AbortHandle { raw: self.raw }
    }
}

impl Drop for AbortHandle {
    fn drop(&mut self) {
        // SAFETY: the handle owns one reference.
        unsafe { self.raw.drop_reference() }
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id())
            .finish()
    }
}

/// Why a task produced no value: it was cancelled, or it panicked.
pub struct JoinError {
    id: Id,
    repr: Repr,
}

enum Repr {
    Cancelled(CancelReason),
    // A Mutex makes the payload Sync, so JoinError can be a std::error::Error.
    Panic(Mutex<Box<dyn Any + Send + 'static>>),
}

impl JoinError {
    pub(crate) fn cancelled(id: Id, reason: CancelReason) -> JoinError {
        JoinError {
            id,
            repr: Repr::Cancelled(reason),
        }
    }

    /// Why the task was cancelled (`None` if it panicked).
    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        match &self.repr {
            Repr::Cancelled(reason) => Some(reason),
            Repr::Panic(_) => None,
        }
    }

    pub(crate) fn panic(id: Id, payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            id,
            repr: Repr::Panic(Mutex::new(payload)),
        }
    }

    /// The task was cancelled (aborted, or its runtime shut down).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled(_))
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The id of the task that failed.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The panic payload.
    ///
    /// # Panics
    /// If the task was cancelled rather than panicking; see [`try_into_panic`](Self::try_into_panic).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("JoinError::into_panic called on a cancelled task's error")
    }

    /// The panic payload, or the error back if the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(payload) => Ok(payload.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled(_) => Err(self),
        }
    }

    /// Runs `f` on the panic payload, if the task panicked.
    pub(crate) fn with_panic_payload<R>(
        &self,
        f: impl FnOnce(&(dyn Any + Send)) -> R,
    ) -> Option<R> {
        match &self.repr {
            Repr::Panic(payload) => {
                let payload = payload.lock().unwrap_or_else(|e| e.into_inner());
                Some(f(&**payload))
            }
            Repr::Cancelled(_) => None,
        }
    }

    /// The panic message, if the task panicked with a string.
    pub fn panic_message(&self) -> Option<String> {
        match &self.repr {
            Repr::Panic(payload) => {
                let payload = payload.lock().unwrap_or_else(|e| e.into_inner());
                payload
                    .downcast_ref::<&'static str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
            }
            Repr::Cancelled(_) => None,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled(reason) => write!(f, "task {} was cancelled: {reason}", self.id),
            Repr::Panic(_) => match self.panic_message() {
                Some(msg) => write!(f, "task {} panicked: {msg}", self.id),
                None => write!(f, "task {} panicked", self.id),
            },
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled(reason) => {
                write!(f, "JoinError::Cancelled({:?}, {reason:?})", self.id)
            }
            Repr::Panic(_) => write!(
                f,
                "JoinError::Panic({:?}, {:?})",
                self.id,
                self.panic_message()
            ),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(err: JoinError) -> std::io::Error {
        std::io::Error::other(err.to_string())
    }
}
