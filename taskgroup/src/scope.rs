//! The cancellation tree: scopes, `cancelled()`, `is_cancelled()`, shields.
//!
//! # Model
//! Every task group and every [`CancelScope`] owns a node of one tree per task family. A node
//! is cancelled at most once, with a [`CancelReason`]; cancelling it cancels every descendant
//! node (reason `ParentCancelled`) except shielded ones, which are where outer cancellation
//! stops. A node created under an already-cancelled parent starts cancelled (unless shielded).
//!
//! Code learns of cancellation in two ways:
//! - cooperatively: [`cancelled()`] resolves and [`is_cancelled()`] turns true for the code
//!   running inside the node (found through a thread-local set while the scope's future is
//!   polled, so it follows the task across workers);
//! - by drop: once the node's grace period (default zero) runs out, the future running inside
//!   the scope is dropped. Rust's drop needs no cooperation, so this always works, even for
//!   code that never checks anything.
//!
//! Because the state lives in the nodes, not in a value that code could catch, an inner
//! scope can never swallow an outer cancellation: the outer scope drops everything inside it
//! when its own node is cancelled, whatever the inner scopes did (CPython #116720 cannot
//! happen), and an inner scope only reports a cancellation as its own (`cancelled_caught`)
//! when its own node was cancelled for its own reason.
//!
//! # Locking
//! One small mutex per node guards the reason, the child list and the waiters. Wake-ups and
//! hooks run after it is released. Cancellation walks down the tree holding one node's lock
//! at a time.
//!
//! # Introspection
//! Each node also records, read-only after creation, what it is (group, cancel scope,
//! scoped group), its name and opening location, and the task that opened it; a cancelled
//! node keeps its child list, so [`dump_tree`](crate::dump_tree) can walk the whole tree.
//! Root nodes go into a registry of weak references (its own mutex, never taken with a
//! node lock held).

use std::cell::Cell;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ringleader_runtime::runtime::Handle;
use ringleader_runtime::task::{self, CancelReason, Id};
use ringleader_runtime::time::{sleep_until, Instant, Sleep};
use slab::Slab;

use crate::loom::{lock, AtomicBool, AtomicUsize, Mutex, Ordering};

type CancelHook = Box<dyn Fn(&CancelReason) + Send + Sync + 'static>;

/// What owns a node, for task dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// A [`TaskGroup`](crate::TaskGroup)'s.
    Group,
    /// A [`CancelScope`]'s (and so every combinator built on one).
    CancelScope,
    /// A [`scoped`](crate::scoped) group's.
    Scoped,
}

pub(crate) struct ScopeNode {
    pub(crate) kind: NodeKind,
    pub(crate) name: Option<String>,
    /// Where the group or scope was opened, when known.
    pub(crate) location: Option<&'static Location<'static>>,
    /// The task that opened it (`None` outside a task: `block_on`, a plain thread).
    pub(crate) owner: Option<Id>,
    /// For a registered root node opened outside a task, the runtime it was opened in
    /// (task dumps list it under that runtime). Held only by root nodes outside tasks, so
    /// it forms no cycle through the runtime's task list.
    pub(crate) runtime: std::sync::OnceLock<Handle>,
    /// Listed in the registry of roots that task dumps start from. Not a protocol flag
    /// (std's atomic, outside the loom models).
    registered: std::sync::atomic::AtomicBool,
    shielded: bool,
    /// Mirrors `state.reason.is_some()` for lock-free reads.
    cancelled: AtomicBool,
    state: Mutex<NodeState>,
    /// Runs once, after the node is cancelled (task groups stop accepting children here).
    hook: Mutex<Option<CancelHook>>,
    parent: Option<Arc<ScopeNode>>,
    /// Shielded scopes running below this node. While any runs, nothing is dropped for this
    /// node's cancellation: the shielded work finishes first.
    active_shields: AtomicUsize,
    /// The task group this node belongs to, if it is a group's node.
    pub(crate) group: std::sync::OnceLock<Weak<crate::group::GroupInner>>,
    /// A scoped group's live children, if it is a scoped group's node.
    pub(crate) roster: std::sync::OnceLock<Arc<crate::scoped::Roster>>,
}

struct NodeState {
    reason: Option<CancelReason>,
    children: Vec<Weak<ScopeNode>>,
    waiters: Slab<Waker>,
    /// Droppers of this (cancelled) node waiting for its active shields to end.
    shield_waiters: Vec<Waker>,
    /// This node's own deadline (not the inherited one).
    deadline: Option<Instant>,
}

impl ScopeNode {
    /// A child of `parent` (or a root if none). Starts cancelled if the parent is and the
    /// child is not shielded.
    #[cfg_attr(not(ringleader_loom), allow(dead_code))]
    pub(crate) fn new_child(parent: Option<&Arc<ScopeNode>>, shielded: bool) -> Arc<ScopeNode> {
        ScopeNode::new_child_of_kind(parent, shielded, NodeKind::CancelScope, None, None)
    }

    /// [`new_child`](Self::new_child) with what task dumps show of it. A root node is
    /// listed in the registry task dumps start from.
    pub(crate) fn new_child_of_kind(
        parent: Option<&Arc<ScopeNode>>,
        shielded: bool,
        kind: NodeKind,
        location: Option<&'static Location<'static>>,
        name: Option<String>,
    ) -> Arc<ScopeNode> {
        let owner = task::try_id();
        let node = Arc::new(ScopeNode {
            kind,
            name,
            location,
            owner,
            runtime: std::sync::OnceLock::new(),
            registered: std::sync::atomic::AtomicBool::new(false),
            shielded,
            cancelled: AtomicBool::new(false),
            state: Mutex::new(NodeState {
                reason: None,
                children: Vec::new(),
                waiters: Slab::new(),
                shield_waiters: Vec::new(),
                deadline: None,
            }),
            hook: Mutex::new(None),
            parent: parent.cloned(),
            active_shields: AtomicUsize::new(0),
            group: std::sync::OnceLock::new(),
            roster: std::sync::OnceLock::new(),
        });
        // Roots are registered for task dumps when they are groups, or once something is
        // opened inside them: a lone `timeout` in a plain task costs no registry entry.
        match parent {
            None if kind != NodeKind::CancelScope => node.register_root(),
            Some(parent) if parent.parent.is_none() => parent.register_root(),
            _ => {}
        }
        if let Some(parent) = parent {
            let inherited = {
                let mut state = lock(&parent.state);
                if state.children.len() >= 32 && state.children.len().is_power_of_two() {
                    state.children.retain(|c| c.strong_count() > 0);
                }
                state.children.push(Arc::downgrade(&node));
                state.reason.clone()
            };
            if let (Some(reason), false) = (inherited, shielded) {
                node.cancel(CancelReason::ParentCancelled(Arc::new(reason)));
            }
        }
        node
    }

    pub(crate) fn set_hook(&self, hook: CancelHook) {
        *lock(&self.hook) = Some(hook);
        // Cancelled before the hook was installed: run it now.
        if let Some(reason) = self.reason() {
            if let Some(hook) = lock(&self.hook).take() {
                hook(&reason);
            }
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub(crate) fn reason(&self) -> Option<CancelReason> {
        lock(&self.state).reason.clone()
    }

    /// Cancels this node and its unshielded descendants. Returns false if it already was.
    pub(crate) fn cancel(&self, reason: CancelReason) -> bool {
        let (waiters, children) = {
            let mut state = lock(&self.state);
            if state.reason.is_some() {
                return false;
            }
            state.reason = Some(reason.clone());
            self.cancelled.store(true, Ordering::Release);
            // Waiters are drained for good: a cancelled node takes no new ones. Children stay
            // listed (task dumps walk them); nodes created from now on start cancelled.
            (std::mem::take(&mut state.waiters), state.children.clone())
        };
        for (_, waker) in waiters {
            waker.wake();
        }
        if let Some(hook) = lock(&self.hook).take() {
            hook(&reason);
        }
        let parent_reason = Arc::new(reason);
        for child in children.iter().filter_map(Weak::upgrade) {
            if !child.shielded {
                child.cancel(CancelReason::ParentCancelled(parent_reason.clone()));
            }
        }
        true
    }

    fn register_root(self: &Arc<Self>) {
        if self
            .registered
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if self.owner.is_none() {
            if let Ok(handle) = Handle::try_current() {
                let _ = self.runtime.set(handle);
            }
        }
        crate::introspect::register_root(self);
    }

    /// The live child nodes, for task dumps.
    pub(crate) fn child_nodes(&self) -> Vec<Arc<ScopeNode>> {
        lock(&self.state)
            .children
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// The nearest enclosing task group (strictly above this node).
    pub(crate) fn enclosing_group(&self) -> Option<Arc<crate::group::GroupInner>> {
        let mut node = self.parent.clone();
        while let Some(n) = node {
            if let Some(group) = n.group.get().and_then(Weak::upgrade) {
                return Some(group);
            }
            node = n.parent.clone();
        }
        None
    }

    /// Registers `waker` to be woken at cancellation (or when a deadline moves or a shield
    /// ends); `None` if already cancelled. Remove it with `deregister` when done.
    pub(crate) fn register(&self, waker: &Waker) -> Option<usize> {
        let mut state = lock(&self.state);
        if state.reason.is_some() {
            return None;
        }
        Some(state.waiters.insert(waker.clone()))
    }

    /// Keeps `waiter` registered with the caller's current `waker`: registers it the first
    /// time, and swaps the stored waker when a poll comes with a different one (the future
    /// moved to another task, or a combinator polls it with its own waker), so a cancel
    /// never wakes a stale waker only. Nothing if already cancelled.
    pub(crate) fn keep_registered(&self, waiter: &mut Option<usize>, waker: &Waker) {
        let mut state = lock(&self.state);
        if state.reason.is_some() {
            return;
        }
        match waiter {
            Some(key) => {
                if let Some(stored) = state.waiters.get_mut(*key) {
                    if !stored.will_wake(waker) {
                        *stored = waker.clone();
                    }
                }
            }
            None => *waiter = Some(state.waiters.insert(waker.clone())),
        }
    }

    pub(crate) fn deregister(&self, key: usize) {
        let mut state = lock(&self.state);
        if state.reason.is_none() {
            state.waiters.try_remove(key);
        }
    }

    /// Wakes the waiters without removing them (a deadline moved, a shield ended).
    fn wake_waiters(&self) {
        let wakers: Vec<Waker> = lock(&self.state)
            .waiters
            .iter()
            .map(|(_, w)| w.clone())
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    /// A shielded scope starts below `self` (its parent): count it on every ancestor.
    pub(crate) fn shield_started(self: &Arc<Self>) {
        let mut node = Some(self.clone());
        while let Some(n) = node {
            n.active_shields.fetch_add(1, Ordering::AcqRel);
            node = n.parent.clone();
        }
    }

    /// The shielded scope below `self` ended: uncount it, and wake the droppers that waited
    /// for the last shield to end.
    pub(crate) fn shield_ended(self: &Arc<Self>) {
        let mut node = Some(self.clone());
        while let Some(n) = node {
            if n.active_shields.fetch_sub(1, Ordering::AcqRel) == 1 {
                // Taking the lock after the decrement pairs with `wait_for_shields`, which
                // reads the count under it: a dropper either saw zero or is in the list.
                let waiters = std::mem::take(&mut lock(&n.state).shield_waiters);
                for w in waiters {
                    w.wake();
                }
            }
            node = n.parent.clone();
        }
    }

    /// Registers `waker` until the last active shield below this node ends. False if none
    /// is active (nothing to wait for).
    fn wait_for_shields(&self, waker: &Waker) -> bool {
        let mut state = lock(&self.state);
        if self.active_shields.load(Ordering::Acquire) == 0 {
            return false;
        }
        if !state.shield_waiters.iter().any(|w| w.will_wake(waker)) {
            state.shield_waiters.push(waker.clone());
        }
        true
    }

    /// For whoever drops a future because this node was cancelled: `Ready` once it must be
    /// dropped (the grace period is over and no shield below is running); otherwise
    /// `Pending`, with a wake-up arranged for when that changes.
    pub(crate) fn poll_drop(
        &self,
        grace: Duration,
        grace_timer: &mut Option<Pin<Box<Sleep>>>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        debug_assert!(self.is_cancelled());
        if !grace.is_zero() {
            let timer =
                grace_timer.get_or_insert_with(|| Box::pin(ringleader_runtime::time::sleep(grace)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        if self.wait_for_shields(cx.waker()) {
            return Poll::Pending;
        }
        Poll::Ready(())
    }

    pub(crate) fn set_deadline(&self, deadline: Option<Instant>) {
        lock(&self.state).deadline = deadline;
    }

    pub(crate) fn own_deadline(&self) -> Option<Instant> {
        lock(&self.state).deadline
    }

    /// The earliest deadline of this node and its ancestors, up to the first shield.
    pub(crate) fn effective_deadline(&self) -> Option<Instant> {
        let mut best = self.own_deadline();
        let mut node = self;
        while !node.shielded {
            let Some(parent) = node.parent.as_deref() else {
                break;
            };
            if let Some(d) = parent.own_deadline() {
                best = Some(best.map_or(d, |b| b.min(d)));
            }
            node = parent;
        }
        best
    }
}

tg_thread_local! {
    /// The scope whose future is being polled on this thread.
    static CURRENT: Cell<Option<*const ScopeNode>> = const { Cell::new(None) };
}

/// Makes `node` current while `f` runs (one poll), restoring the previous scope after.
pub(crate) fn enter<R>(node: &Arc<ScopeNode>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<*const ScopeNode>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0;
            let _ = CURRENT.try_with(|c| c.set(previous));
        }
    }
    let previous = CURRENT.with(|c| c.replace(Some(Arc::as_ptr(node))));
    let _restore = Restore(previous);
    f()
}

/// The current scope, if code is running inside one.
pub(crate) fn current() -> Option<Arc<ScopeNode>> {
    let ptr = CURRENT.try_with(|c| c.get()).ok().flatten()?;
    // SAFETY: CURRENT holds a pointer only while `enter` runs, and `enter`'s caller holds an
    // Arc to that node for the whole call, so the node is alive; incrementing the count
    // before building a second Arc from the pointer keeps the counts balanced.
    unsafe {
        Arc::increment_strong_count(ptr);
        Some(Arc::from_raw(ptr))
    }
}

/// Whether the scope (task group or cancel scope) the caller runs in has been cancelled.
///
/// Outside any scope (a task spawned with plain `spawn`), always false: such a task is
/// cancelled only by dropping it.
pub fn is_cancelled() -> bool {
    current().is_some_and(|n| n.is_cancelled())
}

/// Why the caller's scope was cancelled, if it was.
pub fn cancel_reason() -> Option<CancelReason> {
    current().and_then(|n| n.reason())
}

/// The earliest deadline that applies to the caller: its scope's own and every enclosing
/// scope's, up to the nearest shield (Trio's `current_effective_deadline`). `None` if no
/// deadline applies.
pub fn current_deadline() -> Option<Instant> {
    current().and_then(|n| n.effective_deadline())
}

/// Resolves, with the reason, once the caller's scope is cancelled (never, outside any
/// scope). Use it to run asynchronous cleanup during a group's or scope's grace period:
///
/// ```
/// use std::time::Duration;
/// use ringleader_runtime::task::CancelReason;
/// use ringleader_taskgroup::{cancelled, BoxError, GroupConfig};
///
/// let cleaned = ringleader_runtime::run(async {
///     GroupConfig::new()
///         .grace_period(Duration::from_secs(1))
///         .run(|tg| async move {
///             let worker = tg.spawn(async {
///                 let reason = cancelled().await;
///                 // ... flush, say goodbye: this runs within the grace period ...
///                 Ok::<_, BoxError>(format!("cleaned up after: {reason}"))
///             })?;
///             tg.cancel(CancelReason::explicit("done"));
///             Ok::<_, BoxError>(worker.await?)
///         })
///         .await
/// });
/// // Everything finished within the grace period, so the group returns the body's value.
/// assert_eq!(cleaned.unwrap(), "cleaned up after: cancelled: done");
/// ```
///
/// # Cancel safety
/// Cancel safe.
pub fn cancelled() -> Cancelled {
    Cancelled {
        node: current(),
        registered: false,
        waiter: None,
    }
}

/// The future returned by [`cancelled`].
#[must_use = "futures do nothing unless awaited"]
pub struct Cancelled {
    node: Option<Arc<ScopeNode>>,
    registered: bool,
    waiter: Option<usize>,
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if let (Some(node), Some(key)) = (&self.node, self.waiter.take()) {
            node.deregister(key);
        }
    }
}

impl Future for Cancelled {
    type Output = CancelReason;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CancelReason> {
        if self.node.is_none() && !self.registered {
            // Created outside a poll (e.g. before an await point): look again now.
            self.node = current();
        }
        self.registered = true;
        let Some(node) = self.node.clone() else {
            return Poll::Pending;
        };
        if node.is_cancelled() {
            if let Some(key) = self.waiter.take() {
                node.deregister(key);
            }
            return Poll::Ready(node.reason().unwrap_or(CancelReason::Aborted));
        }
        let mut waiter = self.waiter;
        node.keep_registered(&mut waiter, cx.waker());
        self.waiter = waiter;
        if node.is_cancelled() {
            // Cancelled before we could register: nobody will wake us, so answer now.
            return Poll::Ready(node.reason().unwrap_or(CancelReason::Aborted));
        }
        Poll::Pending
    }
}

/// A cancel scope (Trio's `CancelScope`): runs a future that can be cancelled explicitly or
/// by a deadline, and tells apart its own cancellation from an enclosing one.
///
/// ```
/// use std::time::Duration;
/// use ringleader_taskgroup::CancelScope;
///
/// ringleader_runtime::run(async {
///     let scope = CancelScope::new().with_timeout(Duration::from_millis(10));
///     let out = scope.run(std::future::pending::<()>()).await;
///     assert!(out.is_none());
///     assert!(scope.cancel_called() && scope.cancelled_caught());
/// });
/// ```
#[derive(Clone)]
pub struct CancelScope {
    inner: Arc<ScopeConfig>,
}

struct ScopeConfig {
    /// Set when `run` starts.
    node: Mutex<Option<Arc<ScopeNode>>>,
    shield: bool,
    /// Relative deadline, fixed when `run` starts (Trio's semantics).
    timeout: Option<Duration>,
    deadline: Mutex<Option<Instant>>,
    grace: Duration,
    pending_cancel: Mutex<Option<CancelReason>>,
    caught: AtomicBool,
}

impl Default for CancelScope {
    fn default() -> Self {
        CancelScope::new()
    }
}

impl std::fmt::Debug for CancelScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelScope")
            .field("shield", &self.inner.shield)
            .field("cancel_called", &self.cancel_called())
            .field("cancelled_caught", &self.cancelled_caught())
            .finish()
    }
}

impl CancelScope {
    /// A scope with no deadline, not shielded.
    pub fn new() -> CancelScope {
        CancelScope::build(false, None, None, Duration::ZERO)
    }

    fn build(
        shield: bool,
        timeout: Option<Duration>,
        deadline: Option<Instant>,
        grace: Duration,
    ) -> CancelScope {
        CancelScope {
            inner: Arc::new(ScopeConfig {
                node: Mutex::new(None),
                shield,
                timeout,
                deadline: Mutex::new(deadline),
                grace,
                pending_cancel: Mutex::new(None),
                caught: AtomicBool::new(false),
            }),
        }
    }

    fn rebuild(
        &self,
        f: impl FnOnce(&mut (bool, Option<Duration>, Option<Instant>, Duration)),
    ) -> CancelScope {
        let mut parts = (
            self.inner.shield,
            self.inner.timeout,
            *lock(&self.inner.deadline),
            self.inner.grace,
        );
        f(&mut parts);
        CancelScope::build(parts.0, parts.1, parts.2, parts.3)
    }

    /// Cancels the scope when `instant` passes.
    pub fn with_deadline(self, instant: Instant) -> CancelScope {
        self.rebuild(|p| p.2 = Some(instant))
    }

    /// Cancels the scope `timeout` after it starts running (fixed at entry, as Trio does).
    pub fn with_timeout(self, timeout: Duration) -> CancelScope {
        self.rebuild(|p| p.1 = Some(timeout))
    }

    /// Shields the scope from enclosing cancellation (Trio's `shield=True`): its future runs
    /// on while outer scopes are cancelled; only its own cancel or deadline stops it.
    pub fn shielded(self) -> CancelScope {
        self.rebuild(|p| p.0 = true)
    }

    /// How long the future may keep running, seeing [`cancelled()`] resolve, after the
    /// scope is cancelled, before it is dropped (default zero).
    pub fn with_grace_period(self, grace: Duration) -> CancelScope {
        self.rebuild(|p| p.3 = grace)
    }

    /// Cancels the scope (now if running, at entry otherwise).
    pub fn cancel(&self, reason: CancelReason) {
        // The node lock is held (the guard is a temporary of the scrutinee) until the
        // reason is parked, so `run`'s entry, which sets the node and then takes the parked
        // reason, cannot slip between the two and lose the cancel (loom model
        // `cancel_scope_cancel_vs_run_start`).
        match lock(&self.inner.node).clone() {
            Some(node) => {
                node.cancel(reason);
            }
            None => {
                let mut pending = lock(&self.inner.pending_cancel);
                if pending.is_none() {
                    *pending = Some(reason);
                }
            }
        }
    }

    /// Moves the deadline, while running or before.
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        *lock(&self.inner.deadline) = deadline;
        if let Some(node) = lock(&self.inner.node).clone() {
            node.set_deadline(deadline);
            // Wake the running scope so it re-arms its timer.
            node.wake_waiters();
        }
    }

    /// The scope's own deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        *lock(&self.inner.deadline)
    }

    /// Whether this scope was cancelled (by `cancel`, its deadline, or an enclosing scope
    /// unless shielded). Trio's `cancel_called`, extended to inherited cancellation.
    pub fn cancel_called(&self) -> bool {
        lock(&self.inner.node)
            .as_ref()
            .is_some_and(|n| n.is_cancelled())
            || lock(&self.inner.pending_cancel).is_some()
    }

    /// Whether this scope stopped its future because of its *own* cancellation (Trio's
    /// `cancelled_caught`): false when the future completed, and false when an enclosing
    /// scope's cancellation is what stopped it (that one belongs to the enclosing scope).
    pub fn cancelled_caught(&self) -> bool {
        self.inner.caught.load(Ordering::Acquire)
    }

    /// Why the scope was cancelled.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        lock(&self.inner.node).as_ref().and_then(|n| n.reason())
    }

    /// Runs `future` inside the scope: `Some(output)` if it completes, `None` if the scope's
    /// own cancellation stopped it. If an enclosing scope is cancelled, the returned future
    /// never completes: the enclosing scope drops it.
    ///
    /// # Cancel safety
    /// Dropping the returned future drops `future`.
    #[track_caller]
    pub fn run<F: Future>(&self, future: F) -> ScopeFuture<F> {
        ScopeFuture {
            location: Location::caller(),
            scope: self.clone(),
            future: Some(Box::pin(future)),
            node: None,
            waiter: None,
            shield_parent: None,
            timer: None,
            grace_timer: None,
        }
    }
}

/// The future returned by [`CancelScope::run`].
#[must_use = "futures do nothing unless awaited"]
pub struct ScopeFuture<F> {
    scope: CancelScope,
    location: &'static Location<'static>,
    future: Option<Pin<Box<F>>>,
    node: Option<Arc<ScopeNode>>,
    /// Our waker's key in the node's waiter list.
    waiter: Option<usize>,
    /// For a shielded scope: the node whose ancestors count us as an active shield.
    shield_parent: Option<Arc<ScopeNode>>,
    timer: Option<(Instant, Pin<Box<Sleep>>)>,
    grace_timer: Option<Pin<Box<Sleep>>>,
}

impl<F> ScopeFuture<F> {
    fn finish(&mut self) {
        self.future = None;
        if let (Some(node), Some(key)) = (&self.node, self.waiter.take()) {
            node.deregister(key);
        }
        if let Some(parent) = self.shield_parent.take() {
            parent.shield_ended();
        }
    }
}

impl<F: Future> ScopeFuture<F> {
    /// Our node is cancelled. `Ready(output)` if the future was just dropped for our own
    /// cancellation; `Pending` to go on polling it: while the grace period or a shield holds
    /// the drop off, and for an enclosing scope's cancellation, which is that scope's to
    /// enforce (its grace period lets our future clean up; then it drops us).
    fn on_cancelled(
        &mut self,
        node: &Arc<ScopeNode>,
        cx: &mut Context<'_>,
    ) -> Poll<Poll<Option<F::Output>>> {
        if matches!(node.reason(), Some(CancelReason::ParentCancelled(_))) {
            return Poll::Pending;
        }
        if node
            .poll_drop(self.scope.inner.grace, &mut self.grace_timer, cx)
            .is_pending()
        {
            return Poll::Pending;
        }
        self.finish();
        self.scope.inner.caught.store(true, Ordering::Release);
        Poll::Ready(Poll::Ready(None))
    }
}

impl<F> Drop for ScopeFuture<F> {
    fn drop(&mut self) {
        // Drop the inner future first: it is still "inside" the shield while it drops.
        self.future = None;
        self.finish();
    }
}

impl<F: Future> ScopeFuture<F> {
    fn start(&mut self) -> Arc<ScopeNode> {
        let parent = current();
        let node = ScopeNode::new_child_of_kind(
            parent.as_ref(),
            self.scope.inner.shield,
            NodeKind::CancelScope,
            Some(self.location),
            None,
        );
        if self.scope.inner.shield {
            if let Some(parent) = &parent {
                parent.shield_started();
                self.shield_parent = Some(parent.clone());
            }
        }
        let mut deadline = *lock(&self.scope.inner.deadline);
        if let Some(timeout) = self.scope.inner.timeout {
            let d = Instant::now() + timeout;
            deadline = Some(deadline.map_or(d, |e| e.min(d)));
            *lock(&self.scope.inner.deadline) = deadline;
        }
        node.set_deadline(deadline);
        *lock(&self.scope.inner.node) = Some(node.clone());
        if let Some(reason) = lock(&self.scope.inner.pending_cancel).take() {
            node.cancel(reason);
        }
        self.node = Some(node.clone());
        node
    }
}

impl<F: Future> Future for ScopeFuture<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = &mut *self;
        let (node, first_poll) = match &this.node {
            Some(node) => (node.clone(), false),
            None => (this.start(), true),
        };
        // First poll: run the body before arming the deadline timer or registering for
        // cancellation, so a body that finishes without waiting costs neither (the common
        // `timeout` around a ready future). Trio's and asyncio's semantics agree: a body
        // that never suspends completes even if its deadline has already passed, since
        // cancellation is only delivered where it waits.
        let mut body_polled = false;
        if first_poll && !node.is_cancelled() {
            if let Some(future) = this.future.as_mut() {
                if let Poll::Ready(out) = enter(&node, || future.as_mut().poll(cx)) {
                    this.finish();
                    return Poll::Ready(Some(out));
                }
                body_polled = true;
            }
        }
        // Arm (or re-arm, after set_deadline) the deadline timer.
        if let Some(deadline) = node.own_deadline() {
            if !node.is_cancelled() {
                let rearm = this.timer.as_ref().is_none_or(|(d, _)| *d != deadline);
                if rearm {
                    this.timer = Some((deadline, Box::pin(sleep_until(deadline))));
                }
                if let Some((_, timer)) = &mut this.timer {
                    if timer.as_mut().poll(cx).is_ready() {
                        node.cancel(CancelReason::Deadline);
                    }
                }
            }
        }
        if node.is_cancelled() {
            if let Poll::Ready(out) = this.on_cancelled(&node, cx) {
                return out;
            }
        } else {
            // Be woken on cancellation (explicit, inherited, or a moved deadline).
            node.keep_registered(&mut this.waiter, cx.waker());
            if body_polled {
                // Cancelled between the body's poll and our registration: no waiter will
                // wake us for it, so handle it now.
                if node.is_cancelled() {
                    if let Poll::Ready(out) = this.on_cancelled(&node, cx) {
                        return out;
                    }
                }
                return Poll::Pending;
            }
        }
        if body_polled {
            // The body was polled this time already; the cancellation above decides.
            return Poll::Pending;
        }
        let Some(future) = this.future.as_mut() else {
            return Poll::Pending;
        };
        match enter(&node, || future.as_mut().poll(cx)) {
            Poll::Ready(out) => {
                this.finish();
                Poll::Ready(Some(out))
            }
            Poll::Pending => {
                // Cancelled during the poll (or before we could register): arrange the
                // drop now, since no node waiter will wake us for it.
                if node.is_cancelled() {
                    if let Poll::Ready(out) = this.on_cancelled(&node, cx) {
                        return out;
                    }
                }
                Poll::Pending
            }
        }
    }
}
