//! Task groups: structured concurrency on the work-stealing pool.
//!
//! # Protocol
//! A group owns a [`ScopeNode`](crate::scope), a count word and a list of its children's
//! abort handles. Handles:
//! - the group future (returned by [`task_group`] / [`GroupConfig::run`]) polls the body
//!   inline, inside the group's scope, and finishes only when the body is done and the
//!   live-child count is zero;
//! - each child is a runtime task whose future is wrapped in `Child`, which runs the user's
//!   future inside the group's scope, catches its panic, and reports exactly once to the
//!   group: on completion from `poll`, or from `Drop` if it was cancelled (aborted, shut down);
//!   the child stops counting as live only when its task has completed (the task's
//!   [`DoneHook`], which the group is);
//! - the cancel hook on the node (held weakly) stops new spawns and, once the grace period
//!   is over, aborts every live child.
//!
//! The live count and the closed/any-success/adopted flags are one atomic word (see
//! [`GroupInner`]); failures, the join waker and the adoption are behind one mutex, and the
//! abort handles behind another. Aborts, wake-ups and node cancellation happen after the
//! locks are released. Lock order: node state, then group state, then an adopting group's
//! state, never the reverse (the hook is called with no node lock held).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::{
    BoxError, ChildError, ErrorGroup, Failure, FailureKind, GroupClosed, PanicPayload,
};
use crate::loom::{lock, AtomicUsize, Mutex, Ordering};
use crate::scope::{self, NodeKind, ScopeNode};
use ringleader_runtime::runtime::Handle;
use ringleader_runtime::task::{
    self, AbortHandle, CancelReason, DoneHook, Id, JoinHandle, TaskOutcome,
};
use ringleader_runtime::time::{sleep_until, Instant, Sleep};

/// What a group does when a child finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Policy {
    /// The first child failure (error or panic) cancels the siblings and the body; the group
    /// fails with every failure (asyncio's and Trio's behaviour). The default.
    #[default]
    FailFast,
    /// Failures are collected, nothing is cancelled; the group fails at the end if any
    /// child failed (Kotlin's `supervisorScope`).
    Supervise,
    /// The first child that succeeds aborts the other children (not the body); failures
    /// cancel nothing. The group fails only if no child succeeded and some failed (Java's
    /// any-successful joiner).
    FirstOk,
    /// Nothing is cancelled and child failures do not fail the group: read each child's
    /// outcome from its handle (Java's await-all).
    AllSettled,
}

/// The result a child (or the body) produces: `()` or a `Result` whose error converts into
/// a [`BoxError`].
pub trait ChildResult: Send + 'static {
    /// The success value.
    type Value: Send + 'static;
    /// Splits into success and failure.
    fn into_result(self) -> Result<Self::Value, BoxError>;
}

impl ChildResult for () {
    type Value = ();
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<T: Send + 'static, E: Into<BoxError> + Send + 'static> ChildResult for Result<T, E> {
    type Value = T;
    fn into_result(self) -> Result<T, BoxError> {
        self.map_err(Into::into)
    }
}

/// A group's state, shared by its future, its [`TaskGroup`] handles and its children's
/// wrappers. It needs no runtime (the spawning handle lives in [`TaskGroup`]), so the loom
/// models drive it directly.
///
/// # The count word
/// `word` holds the live-child count (above [`LIVE_SHIFT`]) and three flags:
/// - [`CLOSED`]: no more children are accepted (set by the join once the count is zero, by
///   the node's cancellation, by the first success under [`Policy::FirstOk`], by a drop);
/// - [`ANY_OK`]: some child succeeded;
/// - [`ADOPTED`]: the group future was dropped inside another group, which took over the
///   count; set together with `CLOSED`, under the state lock, with `adopted_by` stored first.
///
/// A spawn counts its child with one compare-and-swap that fails if `CLOSED` is set, and the
/// join closes with one compare-and-swap that fails while the count is non-zero, so a spawn
/// either is counted before the close (and waited for) or is refused. A child that succeeds
/// takes no lock: it sets `ANY_OK` (only the first one writes) and its task's done hook
/// decrements the count. Only the last child (to wake the join), a failure, a child stopped
/// by the cancellation, and a group that was adopted take the state lock. Whatever a child
/// records under the lock it records before its decrement, and the join reads it after
/// seeing the count at zero (acquire on the word), so nothing recorded is missed.
pub(crate) struct GroupInner {
    /// The group's node; it also holds the grace period (see `ScopeNode::set_grace`).
    pub(crate) node: Arc<ScopeNode>,
    policy: Policy,
    word: AtomicUsize,
    /// Abort handles of the children spawned so far, for cancelling them when the group is
    /// dropped, for [`Policy::FirstOk`] and for task dumps. Finished children are pruned by
    /// the spawn that finds the list at a power-of-two length (32 or more), so the list
    /// stays within a small multiple of the most children live at once, at amortised O(1)
    /// per spawn. Until pruned (or until the group ends) a finished child's handle keeps
    /// its task block, not its future or output. Taken once per spawn, by the spawner, on
    /// the common path; the finishing side never takes it.
    children: Mutex<Vec<AbortHandle>>,
    state: Mutex<GroupState>,
}

/// Set once the group accepts no more children.
const CLOSED: usize = 1;
/// Set once some child succeeded.
const ANY_OK: usize = 1 << 1;
/// Set once an enclosing group took over waiting for the children (see `GroupFuture`'s drop).
const ADOPTED: usize = 1 << 2;
/// The live-child count sits above the flags.
const LIVE_SHIFT: u32 = 3;
const ONE_LIVE: usize = 1 << LIVE_SHIFT;

fn live(word: usize) -> usize {
    word >> LIVE_SHIFT
}

struct GroupState {
    /// Something (a child or the body) was stopped by the group's cancellation.
    interrupted: bool,
    failures: Vec<Failure>,
    /// The group future's waker.
    waker: Option<Waker>,
    /// The group future was dropped before finishing: late failures go to tracing.
    abandoned: bool,
    /// Set (before the `ADOPTED` bit) when abandoned inside another group: that group took
    /// over waiting for our live children, and each one's completion is forwarded to it.
    adopted_by: Option<Arc<GroupInner>>,
}

/// What [`GroupInner::try_close`] hands back once no child is live.
pub(crate) struct Closed {
    pub(crate) failures: Vec<Failure>,
    pub(crate) any_ok: bool,
    pub(crate) interrupted: bool,
}

pub(crate) enum ChildOutcome {
    Ok,
    Failed(Failure),
    Cancelled,
}

impl GroupInner {
    /// A group on `node`: links the node back to the group and installs the cancel hook
    /// that closes the group and wakes its future.
    pub(crate) fn new(node: Arc<ScopeNode>, policy: Policy) -> Arc<GroupInner> {
        let inner = Arc::new(GroupInner {
            node: node.clone(),
            policy,
            word: AtomicUsize::new(0),
            children: Mutex::new(Vec::new()),
            state: Mutex::new(GroupState {
                interrupted: false,
                failures: Vec::new(),
                waker: None,
                abandoned: false,
                adopted_by: None,
            }),
        });
        let weak: Weak<GroupInner> = Arc::downgrade(&inner);
        let _ = node.group.set(weak.clone());
        node.set_hook(Box::new(move |_reason| {
            if let Some(inner) = weak.upgrade() {
                inner.on_cancel();
            }
        }));
        inner
    }

    /// Counts a new child as live; [`GroupClosed`] once the group accepts no more children.
    /// The caller then spawns the child, which reports to [`child_done`](Self::child_done)
    /// and whose task's completion calls [`child_finished`](Self::child_finished).
    pub(crate) fn reserve(&self) -> Result<(), GroupClosed> {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & CLOSED != 0 {
                return Err(GroupClosed);
            }
            match self.word.compare_exchange_weak(
                word,
                word + ONE_LIVE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => word = now,
            }
        }
    }

    /// Lists a spawned child's abort handle (pruning finished ones when the list doubled).
    fn push_child(&self, handle: AbortHandle) {
        let mut children = lock(&self.children);
        if children.len() >= 32 && children.len().is_power_of_two() {
            children.retain(|c| !c.is_finished());
        }
        children.push(handle);
    }

    /// The live children's abort handles.
    fn live_children(&self) -> Vec<AbortHandle> {
        lock(&self.children)
            .iter()
            .filter(|c| !c.is_finished())
            .cloned()
            .collect()
    }

    /// The number of live children.
    fn live(&self) -> usize {
        live(self.word.load(Ordering::Acquire))
    }

    /// The group future's waker, woken when the last child finishes, on cancellation and
    /// on a failure.
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut state = lock(&self.state);
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
    }

    /// If no child is live: closes the group (no more spawns) and hands back its outcome.
    /// `None` while children live; the waker set by [`set_waker`](Self::set_waker) is woken
    /// when the last one finishes. The check and the close are one compare-and-swap on the
    /// count word, so a spawn either counted before it (and is waited for) or is refused.
    pub(crate) fn try_close(&self) -> Option<Closed> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if live(word) > 0 {
                return None;
            }
            if word & CLOSED != 0 {
                break;
            }
            match self.word.compare_exchange_weak(
                word,
                word | CLOSED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        let mut state = lock(&self.state);
        state.waker = None;
        Some(Closed {
            failures: std::mem::take(&mut state.failures),
            any_ok: word & ANY_OK != 0,
            interrupted: state.interrupted,
        })
    }

    /// What task dumps show of the group: its live children's task ids, whether it still
    /// accepts children, its policy.
    pub(crate) fn snapshot(&self) -> (Vec<Id>, bool, Policy) {
        let ids = self.live_children().iter().map(AbortHandle::id).collect();
        let accepting = self.word.load(Ordering::Acquire) & CLOSED == 0;
        (ids, accepting, self.policy)
    }

    /// A child's task has completed (its done hook, which runs after the task left the
    /// runtime's registry): only now does it stop counting as live, so a group never
    /// returns while a task of it still exists.
    pub(crate) fn child_finished(&self) {
        let prev = self.word.fetch_sub(ONE_LIVE, Ordering::AcqRel);
        debug_assert!(live(prev) > 0, "a group child finished twice");
        if live(prev) == 1 {
            let waker = lock(&self.state).waker.clone();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        if prev & ADOPTED != 0 {
            // The adopter counted us when the bit was set (our decrement comes after it),
            // and it finished adopting before releasing the lock it set the bit under.
            let adopter = lock(&self.state).adopted_by.clone();
            if let Some(adopter) = adopter {
                adopter.child_finished();
            }
        }
    }

    /// Takes over waiting for `n` tasks of an abandoned inner group. If this group was
    /// abandoned too, the credit goes on up, since completions are forwarded up the same way.
    fn adopt(&self, n: usize) {
        let prev = self.word.fetch_add(n * ONE_LIVE, Ordering::AcqRel);
        if prev & ADOPTED != 0 {
            let up = lock(&self.state).adopted_by.clone();
            if let Some(up) = up {
                up.adopt(n);
            }
        }
    }

    /// The group future was dropped before finishing: stop accepting, send late failures
    /// to tracing, and hand the wait for the live children to `adopter`, if any.
    pub(crate) fn abandon(&self, adopter: Option<Arc<GroupInner>>) {
        let mut state = lock(&self.state);
        state.abandoned = true;
        match adopter {
            Some(adopter) => {
                state.adopted_by = Some(adopter.clone());
                // Under the lock, so a child that sees the bit waits (on the lock) until
                // the adopter has counted it.
                let prev = self.word.fetch_or(CLOSED | ADOPTED, Ordering::AcqRel);
                if live(prev) > 0 {
                    adopter.adopt(live(prev));
                }
            }
            None => {
                self.word.fetch_or(CLOSED, Ordering::AcqRel);
            }
        }
    }

    /// A child's future ended (from its wrapper, before the task completes): record how.
    pub(crate) fn child_done(&self, outcome: ChildOutcome) {
        match outcome {
            ChildOutcome::Ok => {
                if self.policy == Policy::FirstOk {
                    let prev = self.word.fetch_or(ANY_OK | CLOSED, Ordering::AcqRel);
                    if prev & ANY_OK == 0 {
                        for child in self.live_children() {
                            child.abort_with(CancelReason::explicit(
                                "another child of the group succeeded first",
                            ));
                        }
                    }
                } else if self.word.load(Ordering::Relaxed) & ANY_OK == 0 {
                    // Only the first success writes the shared word.
                    self.word.fetch_or(ANY_OK, Ordering::AcqRel);
                }
            }
            ChildOutcome::Failed(failure) => {
                let mut cancel = false;
                let waker = {
                    let mut state = lock(&self.state);
                    if state.abandoned {
                        tracing::error!(
                            "a child of a dropped task group failed: {:?} {:?}",
                            failure.task_id,
                            failure.kind
                        );
                    } else {
                        cancel = self.policy == Policy::FailFast;
                        state.failures.push(failure);
                    }
                    if cancel {
                        state.waker.clone()
                    } else {
                        None
                    }
                };
                if cancel {
                    self.node.cancel(CancelReason::SiblingFailed);
                }
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            ChildOutcome::Cancelled => {
                if self.node.is_cancelled() {
                    lock(&self.state).interrupted = true;
                }
            }
        }
    }

    /// The node was cancelled: stop accepting and wake the group future. Children learn of
    /// it through the node (their wrappers are woken by it and drop their futures after the
    /// grace period, once no shield inside the group is running).
    fn on_cancel(&self) {
        self.word.fetch_or(CLOSED, Ordering::AcqRel);
        let waker = lock(&self.state).waker.clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn abort_all(&self, reason: &CancelReason) {
        for child in self.live_children() {
            child.abort_with(reason.clone());
        }
    }
}

impl DoneHook for GroupInner {
    fn task_done(&self, _id: Id, _outcome: TaskOutcome) {
        self.child_finished();
    }
}

/// A handle to a running task group: spawn children, cancel the group. Cloneable, so
/// children can spawn siblings while the group is open.
#[derive(Clone)]
pub struct TaskGroup {
    inner: Arc<GroupInner>,
    handle: Handle,
}

impl std::fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = self.inner.word.load(Ordering::Acquire);
        f.debug_struct("TaskGroup")
            .field("policy", &self.inner.policy)
            .field("live", &live(word))
            .field("accepting", &(word & CLOSED == 0))
            .finish()
    }
}

impl TaskGroup {
    /// Spawns `future` as a child on the work-stealing pool.
    ///
    /// The child runs inside the group's scope: [`cancelled()`](crate::cancelled) tells it
    /// when the group is cancelled. It returns `()` or a `Result`; an `Err` (or a panic) is a
    /// failure of the group.
    ///
    /// # Errors
    /// [`GroupClosed`] once the group has finished or is shutting down.
    #[track_caller]
    pub fn spawn<F>(
        &self,
        future: F,
    ) -> Result<ChildHandle<<F::Output as ChildResult>::Value>, GroupClosed>
    where
        F: Future + Send + 'static,
        F::Output: ChildResult,
    {
        self.spawn_inner(future, None, None)
    }

    /// [`spawn`](Self::spawn) with the child pinned to worker `worker % num_workers` (see
    /// `task::Builder::pin_to_worker`): only that worker polls it, so its I/O stays on that
    /// worker's ring. For children that each carry a like share of the load, handed out
    /// round-robin (a server's connections).
    ///
    /// # Errors
    /// [`GroupClosed`] once the group has finished or is shutting down.
    #[track_caller]
    pub fn spawn_pinned<F>(
        &self,
        worker: usize,
        future: F,
    ) -> Result<ChildHandle<<F::Output as ChildResult>::Value>, GroupClosed>
    where
        F: Future + Send + 'static,
        F::Output: ChildResult,
    {
        self.spawn_inner(future, None, Some(worker))
    }

    /// [`spawn`](Self::spawn) with a task name (shown in errors and task dumps).
    ///
    /// # Errors
    /// [`GroupClosed`] once the group has finished or is shutting down.
    #[track_caller]
    pub fn spawn_named<F>(
        &self,
        name: impl Into<String>,
        future: F,
    ) -> Result<ChildHandle<<F::Output as ChildResult>::Value>, GroupClosed>
    where
        F: Future + Send + 'static,
        F::Output: ChildResult,
    {
        self.spawn_inner(future, Some(name.into()), None)
    }

    /// Caller-tracked through to the runtime's spawn, so the task's spawn location (shown
    /// in task dumps) is the user's `spawn` call.
    #[track_caller]
    fn spawn_inner<F>(
        &self,
        future: F,
        name: Option<String>,
        worker: Option<usize>,
    ) -> Result<ChildHandle<<F::Output as ChildResult>::Value>, GroupClosed>
    where
        F: Future + Send + 'static,
        F::Output: ChildResult,
    {
        self.inner.reserve()?;
        let child = Child::new(future, self.inner.clone(), name.clone());
        // The done hook (one more reference to the group, no allocation) counts the child
        // finished once its task has completed; a runtime that is shutting down completes
        // the task (cancelled) inside this spawn, which is fine: the child is counted.
        let mut builder = task::Builder::new().done_hook(self.inner.clone());
        if let Some(name) = name {
            builder = builder.name(name);
        }
        if let Some(worker) = worker {
            builder = builder.pin_to_worker(worker);
        }
        let join = builder.spawn_on(child, &self.handle);
        self.inner.push_child(join.abort_handle());
        Ok(ChildHandle { join })
    }

    /// Cancels the group: children and body see [`cancelled()`](crate::cancelled) resolve,
    /// and after the grace period they are dropped. The group then returns an
    /// [`ErrorGroup`] with this reason (and any failures).
    pub fn cancel(&self, reason: CancelReason) {
        self.inner.node.cancel(reason);
    }

    /// Whether the group has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.node.is_cancelled()
    }

    /// Number of children still running.
    pub fn live_children(&self) -> usize {
        self.inner.live()
    }

    /// Spawns a child and waits until it signals readiness through its [`Ready`] (Trio's
    /// `nursery.start`): a server calls `ready.started(addr)` once it listens, and the caller
    /// goes on knowing that.
    ///
    /// # Errors
    /// [`ChildError::Failed`] or [`ChildError::Cancelled`] if the child ends before calling
    /// `started`; [`ChildError::Closed`] if the group accepts no new children.
    #[track_caller]
    pub fn start<F, Fut, V>(
        &self,
        f: F,
    ) -> impl Future<Output = Result<V, ChildError>> + Send + 'static
    where
        F: FnOnce(Ready<V>) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: ChildResult,
        V: Send + 'static,
    {
        let slot = Arc::new(Mutex::new(ReadySlot {
            value: None,
            waker: None,
        }));
        let ready = Ready { slot: slot.clone() };
        let spawned = self.spawn(f(ready));
        StartFuture {
            slot,
            child: spawned.ok(),
        }
    }
}

struct ReadySlot<V> {
    value: Option<V>,
    waker: Option<Waker>,
}

/// Given to a child started with [`TaskGroup::start`]; call [`started`](Ready::started) once
/// it is ready.
pub struct Ready<V> {
    slot: Arc<Mutex<ReadySlot<V>>>,
}

impl<V> Ready<V> {
    /// Signals readiness with a value for the starter.
    pub fn started(self, value: V) {
        let waker = {
            let mut slot = lock(&self.slot);
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<V> std::fmt::Debug for Ready<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ready")
    }
}

struct StartFuture<V, T> {
    slot: Arc<Mutex<ReadySlot<V>>>,
    child: Option<ChildHandle<T>>,
}

impl<V, T> Unpin for StartFuture<V, T> {}

impl<V: Send + 'static, T: Send + 'static> Future for StartFuture<V, T> {
    type Output = Result<V, ChildError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        {
            let mut slot = lock(&self.slot);
            if let Some(v) = slot.value.take() {
                return Poll::Ready(Ok(v));
            }
            slot.waker = Some(cx.waker().clone());
        }
        let Some(child) = self.child.as_mut() else {
            return Poll::Ready(Err(ChildError::Closed));
        };
        match Pin::new(child).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                // The child may have called `started` just before finishing.
                if let Some(v) = lock(&self.slot).value.take() {
                    return Poll::Ready(Ok(v));
                }
                Poll::Ready(Err(match result {
                    Ok(_) => ChildError::NeverStarted,
                    Err(e) => e,
                }))
            }
        }
    }
}

/// Awaits one child of a group: its value, or why there is none. Dropping it does not
/// cancel the child; the group still waits for it.
pub struct ChildHandle<T> {
    join: JoinHandle<Result<T, NoValue>>,
}

impl<T> std::fmt::Debug for ChildHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildHandle")
            .field("id", &self.join.id())
            .finish()
    }
}

impl<T> ChildHandle<T> {
    /// The child's task id.
    pub fn id(&self) -> Id {
        self.join.id()
    }
    /// The child's name, if any.
    pub fn name(&self) -> Option<&str> {
        self.join.name()
    }
    /// Cancels only this child (hard cancel: its future is dropped). This is not a failure.
    pub fn abort(&self) {
        self.join.abort()
    }
    /// Whether the child has finished.
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }
}

impl<T> Future for ChildHandle<T> {
    type Output = Result<T, ChildError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.join).poll(cx).map(|r| match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(NoValue::Failed)) => Err(ChildError::Failed),
            // Dropped by the group's cancellation: asyncio's siblings are `cancelled()`, with
            // the group's reason (a failing sibling, `cancel(msg)`, a deadline...).
            Ok(Err(NoValue::Cancelled(reason))) => Err(ChildError::Cancelled(reason)),
            Err(e) if e.is_cancelled() => Err(ChildError::Cancelled(
                e.cancel_reason().cloned().unwrap_or(CancelReason::Aborted),
            )),
            Err(_) => Err(ChildError::Failed),
        })
    }
}

/// Why a child's task ended without a value (its handle turns it into a [`ChildError`]).
pub(crate) enum NoValue {
    /// It returned `Err` or panicked (the failure is in the group's error group).
    Failed,
    /// The group's cancellation dropped it, for this reason.
    Cancelled(CancelReason),
}

/// A child's future: runs the user's future in the group's scope, drops it when the group
/// is cancelled (after the grace period, once no shield is running), and reports exactly once.
///
/// The user's future is held inline (the task block is its only allocation) and is
/// structurally pinned: it is polled through `Pin::new_unchecked` and only ever dropped in
/// place (by setting `future` to `None`), never moved out; every other field is unpinned.
pub(crate) struct Child<F> {
    future: Option<F>,
    group: Arc<GroupInner>,
    name: Option<String>,
    reported: bool,
    waiter: Option<usize>,
    grace_timer: Option<Pin<Box<Sleep>>>,
}

impl<F> Child<F> {
    /// The wrapper of a child counted by [`GroupInner::reserve`].
    pub(crate) fn new(future: F, group: Arc<GroupInner>, name: Option<String>) -> Child<F> {
        Child {
            future: Some(future),
            group,
            name,
            reported: false,
            waiter: None,
            grace_timer: None,
        }
    }

    /// If the group is cancelled and the drop is due (grace over, no shield running), drops
    /// the future (in place) and reports how that went: `Cancelled(reason)`, or `Failed` if
    /// the drop panicked. Otherwise arranges the wake-up for it and returns `None`.
    fn drop_if_due(&mut self, cx: &mut Context<'_>) -> Option<NoValue> {
        let node = &self.group.node;
        if node.is_cancelled() && node.poll_drop(&mut self.grace_timer, cx).is_ready() {
            let reason = node.reason().unwrap_or(CancelReason::Aborted);
            return Some(match self.drop_and_report() {
                Dropped::Cleanly => NoValue::Cancelled(reason),
                Dropped::Panicked => NoValue::Failed,
            });
        }
        None
    }

    /// Drops the future (in place, inside the group's scope) and reports the child
    /// cancelled, or failed with the panic if its drop panicked: cleanup code that panics
    /// while being cancelled is a failure of the group like any other (as an exception
    /// raised during cancellation joins asyncio's and Trio's exception groups), never lost
    /// and never unwinding into the runtime.
    fn drop_and_report(&mut self) -> Dropped {
        let future = &mut self.future;
        // Dropping in place (`*future = None`) leaves `None` behind even if the drop
        // panics, so the future is never dropped twice.
        let dropped = scope::enter(&self.group.node, || {
            catch_unwind(AssertUnwindSafe(|| *future = None))
        });
        match dropped {
            Ok(()) => {
                self.report(ChildOutcome::Cancelled);
                Dropped::Cleanly
            }
            Err(payload) => {
                self.report(ChildOutcome::Failed(Failure {
                    task_id: task::try_id(),
                    name: self.name.clone(),
                    kind: FailureKind::Panic(PanicPayload::new(payload)),
                }));
                Dropped::Panicked
            }
        }
    }

    fn report(&mut self, outcome: ChildOutcome) {
        self.reported = true;
        if let Some(key) = self.waiter.take() {
            self.group.node.deregister(key);
        }
        self.group.child_done(outcome);
    }
}

impl<F> Future for Child<F>
where
    F: Future,
    F::Output: ChildResult,
{
    type Output = Result<<F::Output as ChildResult>::Value, NoValue>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: only `future` is structurally pinned (see the type's docs); it is pinned
        // again below and otherwise only dropped in place, never moved.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(no_value) = this.drop_if_due(cx) {
            return Poll::Ready(Err(no_value));
        }
        let Some(future) = this.future.as_mut() else {
            // Not polled again after it finished; answer as a dropped child would.
            let reason = this.group.node.reason().unwrap_or(CancelReason::Aborted);
            return Poll::Ready(Err(NoValue::Cancelled(reason)));
        };
        // SAFETY: `future` lives inside the pinned `Child` and is never moved out of it.
        let future = unsafe { Pin::new_unchecked(future) };
        let node = &this.group.node;
        let polled = scope::enter(node, || catch_unwind(AssertUnwindSafe(|| future.poll(cx))));
        let failure = |name: &Option<String>, kind| Failure {
            task_id: task::try_id(),
            name: name.clone(),
            kind,
        };
        match polled {
            Ok(Poll::Pending) => {
                if this.waiter.is_none() && !node.is_cancelled() {
                    // Woken when the group is cancelled, to drop the future.
                    this.waiter = node.register(cx.waker());
                }
                // Cancelled during the poll or before we registered: no node waiter will
                // wake us, so arrange the drop (or drop) now.
                if let Some(no_value) = this.drop_if_due(cx) {
                    return Poll::Ready(Err(no_value));
                }
                Poll::Pending
            }
            Ok(Poll::Ready(out)) => match out.into_result() {
                Ok(value) => {
                    this.report(ChildOutcome::Ok);
                    Poll::Ready(Ok(value))
                }
                Err(error) => {
                    let f = failure(&this.name, Failure::kind_from_error(error, false));
                    this.report(ChildOutcome::Failed(f));
                    Poll::Ready(Err(NoValue::Failed))
                }
            },
            Err(payload) => {
                let f = failure(&this.name, FailureKind::Panic(PanicPayload::new(payload)));
                this.report(ChildOutcome::Failed(f));
                Poll::Ready(Err(NoValue::Failed))
            }
        }
    }
}

/// How [`Child::drop_and_report`] went.
enum Dropped {
    Cleanly,
    Panicked,
}

impl<F> Drop for Child<F> {
    fn drop(&mut self) {
        if !self.reported {
            // Aborted through the runtime (a single child, a dropped group, `FirstOk`,
            // shutdown): drop the future first (in place), then report. A panic in that
            // drop goes to the group as this child's failure, so the runtime sees a clean
            // cancellation (and the child's handle says `Cancelled`): the panic is the
            // group's to report, not the runtime's unhandled-panic handler's.
            let _ = self.drop_and_report();
        }
    }
}

/// Settings for a task group; [`run`](Self::run) starts it.
#[derive(Debug, Clone, Default)]
pub struct GroupConfig {
    name: Option<String>,
    policy: Policy,
    /// `None` until set: the group then has no grace period of its own.
    grace: Option<Duration>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
}

impl GroupConfig {
    /// Fail-fast, no grace period, no deadline.
    pub fn new() -> GroupConfig {
        GroupConfig::default()
    }
    /// A name for the group, shown in task dumps ([`dump_tree`](crate::dump_tree)).
    pub fn name(mut self, name: impl Into<String>) -> GroupConfig {
        self.name = Some(name.into());
        self
    }
    /// The failure policy (default [`Policy::FailFast`]).
    pub fn policy(mut self, policy: Policy) -> GroupConfig {
        self.policy = policy;
        self
    }
    /// How long children and body may run on after the group's own cancellation (an
    /// explicit [`cancel`](TaskGroup::cancel), its deadline, a failure in it), seeing
    /// [`cancelled()`](crate::cancelled) resolve, before they are dropped. Unset, zero.
    ///
    /// # Inherited cancellation
    /// When the group is cancelled because an enclosing group or cancel scope was, the
    /// cancellation is the enclosing one's, and so is its schedule: the enclosing owner
    /// drops everything inside it when *its* grace period runs out. Unless this method was
    /// called, the group drops its children and body at that same moment, not at once, so
    /// nested work gets the cleanup time the outer cancellation grants (as a Trio cancel
    /// scope's effect nests). A period set here bounds that: the group drops them after the
    /// earlier of its own period (counted from when it learns of the cancellation) and what
    /// remains of the enclosing one, as nested deadlines combine. Setting zero explicitly
    /// thus drops them at once on any cancellation ([`gather_settled`](crate::gather_settled)
    /// does, to report every outcome within the enclosing grace period).
    pub fn grace_period(mut self, grace: Duration) -> GroupConfig {
        self.grace = Some(grace);
        self
    }
    /// Cancels the group (reason `Deadline`) this long after it starts.
    pub fn timeout(mut self, timeout: Duration) -> GroupConfig {
        self.timeout = Some(timeout);
        self
    }
    /// Cancels the group (reason `Deadline`) at `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> GroupConfig {
        self.deadline = Some(deadline);
        self
    }

    /// Runs `body` with a fresh group and returns once the body and every child are done:
    /// the body's value, or an [`ErrorGroup`] with every failure (and the cancel reason, if
    /// the group was cancelled).
    ///
    /// # Panics
    /// When first polled outside a ringleader runtime.
    #[track_caller]
    pub fn run<B, Fut, R>(self, body: B) -> GroupFuture<B, Fut, R::Value>
    where
        B: FnOnce(TaskGroup) -> Fut,
        Fut: Future<Output = R>,
        R: ChildResult,
    {
        GroupFuture {
            location: Location::caller(),
            config: self,
            body: BodyState::NotStarted(Some(body)),
            inner: None,
            handle: None,
            deadline_timer: None,
            grace_timer: None,
            finished: false,
        }
    }
}

/// Runs `body` in a new fail-fast task group (asyncio's `async with TaskGroup() as tg`,
/// Trio's nursery). See [`GroupConfig::run`] for other policies, grace periods and deadlines.
///
/// ```
/// use ringleader_taskgroup::{task_group, BoxError};
///
/// let sum = ringleader_runtime::run(async {
///     task_group(|tg| async move {
///         let a = tg.spawn(async { Ok::<_, BoxError>(20) })?;
///         let b = tg.spawn(async { Ok::<_, BoxError>(22) })?;
///         Ok::<_, BoxError>(a.await? + b.await?)
///     })
///     .await
/// });
/// assert_eq!(sum.unwrap(), 42);
/// ```
#[track_caller]
pub fn task_group<B, Fut, R>(body: B) -> GroupFuture<B, Fut, R::Value>
where
    B: FnOnce(TaskGroup) -> Fut,
    Fut: Future<Output = R>,
    R: ChildResult,
{
    GroupConfig::new().run(body)
}

enum BodyState<B, Fut, V> {
    NotStarted(Option<B>),
    Running(Pin<Box<Fut>>),
    Done(Option<V>),
}

/// The future of a running task group; see [`task_group`].
#[must_use = "a task group does nothing unless awaited; dropping it cancels its children"]
pub struct GroupFuture<B, Fut, V> {
    config: GroupConfig,
    /// Where the group was opened, for task dumps.
    location: &'static Location<'static>,
    body: BodyState<B, Fut, V>,
    inner: Option<Arc<GroupInner>>,
    /// The runtime children are spawned on, found when first polled.
    handle: Option<Handle>,
    deadline_timer: Option<Pin<Box<Sleep>>>,
    grace_timer: Option<Pin<Box<Sleep>>>,
    finished: bool,
}

impl<B, Fut, V> Unpin for GroupFuture<B, Fut, V> {}

impl<B, Fut, R> GroupFuture<B, Fut, R::Value>
where
    B: FnOnce(TaskGroup) -> Fut,
    Fut: Future<Output = R>,
    R: ChildResult,
{
    fn start(&mut self) -> Arc<GroupInner> {
        let handle = Handle::current();
        let parent = scope::current();
        let node = ScopeNode::new_child_of_kind(
            parent.as_ref(),
            false,
            NodeKind::Group,
            Some(self.location),
            self.config.name.clone(),
        );
        // Before the body or any child runs inside the node. Only an explicit grace period
        // bounds an inherited cancellation (see `grace_period`).
        node.set_grace(
            self.config.grace.unwrap_or(Duration::ZERO),
            self.config.grace.is_some(),
        );
        let inner = GroupInner::new(node.clone(), self.config.policy);
        self.handle = Some(handle);
        let deadline = match (self.config.deadline, self.config.timeout) {
            (Some(d), Some(t)) => Some(d.min(Instant::now().saturating_add(t))),
            (Some(d), None) => Some(d),
            (None, Some(t)) => Some(Instant::now().saturating_add(t)),
            (None, None) => None,
        };
        node.set_deadline(deadline);
        if let Some(d) = deadline {
            self.deadline_timer = Some(Box::pin(sleep_until(d)));
        }
        self.inner = Some(inner.clone());
        inner
    }
}

impl<B, Fut, V> GroupFuture<B, Fut, V> {
    /// Polls the group's own deadline timer; cancels the group (reason `Deadline`) once it
    /// fires.
    fn poll_deadline(&mut self, node: &ScopeNode, cx: &mut Context<'_>) {
        if let Some(timer) = &mut self.deadline_timer {
            if timer.as_mut().poll(cx).is_ready() {
                self.deadline_timer = None;
                node.cancel(CancelReason::Deadline);
            }
        }
    }

    /// If the group is cancelled and the drop is due (grace over, no shield running), drops
    /// a still-running body: the cancellation interrupted it. Called before the body's poll
    /// and again after (a child may have failed meanwhile). A panic while dropping the body
    /// is a failure of the group (a body panic), not an unwind out of the group future,
    /// which must still wait for its children.
    fn drop_body_if_due(&mut self, inner: &GroupInner, cx: &mut Context<'_>) {
        if inner.node.is_cancelled()
            && matches!(self.body, BodyState::Running(_))
            && inner.node.poll_drop(&mut self.grace_timer, cx).is_ready()
        {
            let body = &mut self.body;
            // The assignment leaves `Done(None)` behind even if the drop panics.
            let dropped = scope::enter(&inner.node, || {
                catch_unwind(AssertUnwindSafe(|| *body = BodyState::Done(None)))
            });
            let mut state = lock(&inner.state);
            state.interrupted = true;
            if let Err(payload) = dropped {
                state.failures.push(Failure {
                    task_id: None,
                    name: None,
                    kind: FailureKind::BodyPanic(PanicPayload::new(payload)),
                });
            }
        }
    }
}

impl<B, Fut, R> Future for GroupFuture<B, Fut, R::Value>
where
    B: FnOnce(TaskGroup) -> Fut,
    Fut: Future<Output = R>,
    R: ChildResult,
{
    type Output = Result<R::Value, ErrorGroup>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = match &this.inner {
            Some(inner) => inner.clone(),
            None => this.start(),
        };
        let node = inner.node.clone();
        inner.set_waker(cx.waker());

        // The deadline is checked before the body runs, except on the first poll: like a
        // cancel scope's (asyncio's `timeout(0)`, Trio's `move_on_after(0)`), an expired
        // deadline is delivered where the body first waits, so the body runs up to there.
        let first_poll = matches!(this.body, BodyState::NotStarted(_));
        if !first_poll {
            this.poll_deadline(&node, cx);
        }

        if let BodyState::NotStarted(body) = &mut this.body {
            let body = body.take().expect("the body is taken once");
            let group = TaskGroup {
                inner: inner.clone(),
                handle: this.handle.clone().expect("set by start"),
            };
            let fut = scope::enter(&node, || body(group));
            this.body = BodyState::Running(Box::pin(fut));
        }

        this.drop_body_if_due(&inner, cx);

        if let BodyState::Running(fut) = &mut this.body {
            let polled = scope::enter(&node, || {
                catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)))
            });
            let body_failure = match polled {
                Ok(Poll::Pending) => None,
                Ok(Poll::Ready(out)) => match out.into_result() {
                    Ok(value) => {
                        this.body = BodyState::Done(Some(value));
                        None
                    }
                    Err(e) => Some(Failure::kind_from_error(e, true)),
                },
                Err(payload) => Some(FailureKind::BodyPanic(PanicPayload::new(payload))),
            };
            if let Some(kind) = body_failure {
                this.body = BodyState::Done(None);
                lock(&inner.state).failures.push(Failure {
                    task_id: None,
                    name: None,
                    kind,
                });
                // A failing body cancels the children under every policy (asyncio's rule).
                node.cancel(CancelReason::SiblingFailed);
            }
        }

        if first_poll {
            this.poll_deadline(&node, cx);
        }
        this.drop_body_if_due(&inner, cx);
        let BodyState::Done(value) = &mut this.body else {
            return Poll::Pending;
        };
        let Some(Closed {
            failures,
            any_ok,
            interrupted,
        }) = inner.try_close()
        else {
            return Poll::Pending;
        };
        this.finished = true;
        let cancelled = node.reason();
        let fail = match inner.policy {
            Policy::FailFast | Policy::Supervise => !failures.is_empty(),
            Policy::FirstOk => !failures.is_empty() && !any_ok,
            Policy::AllSettled => failures.iter().any(|f| f.task_id.is_none()),
        };
        if fail {
            return Poll::Ready(Err(ErrorGroup::new(failures, cancelled)));
        }
        // A cancellation counts only if it stopped something (Trio's `cancelled_caught`):
        // a body and children that all finished anyway give the body's value.
        match value.take() {
            Some(v) if !interrupted => Poll::Ready(Ok(v)),
            _ => Poll::Ready(Err(ErrorGroup::new(Vec::new(), cancelled))),
        }
    }
}

impl<B, Fut, V> Drop for GroupFuture<B, Fut, V> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(inner) = &self.inner {
            // Dropped early (an enclosing scope dropped us). Drop cannot wait, so the
            // enclosing group, if any, takes over waiting for our children: it does not
            // return until they are gone. (Without one, the runtime still cancels and
            // reaps them, at the latest at shutdown.)
            inner.abandon(inner.node.enclosing_group());
            let reason = CancelReason::ParentCancelled(Arc::new(CancelReason::Aborted));
            inner.node.cancel(reason.clone());
            inner.abort_all(&reason);
        }
    }
}
