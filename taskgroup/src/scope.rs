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
//! # Whose grace period
//! A node cancelled for its own reason (an explicit cancel, its deadline, a failing child)
//! is the *origin* of that cancellation, and its grace period, counted from when the first
//! dropper asks ([`poll_drop`](ScopeNode::poll_drop)), fixes when its futures are dropped.
//! A node cancelled because its parent was (reason `ParentCancelled`) follows the origin's
//! schedule: the enclosing owner drops everything inside it when that grace runs out, so a
//! nested group, whose children are separate tasks it must drop itself, drops them then too,
//! not at once (Trio nests the effect of a cancel scope the same way). A group with a grace
//! period of its own set explicitly drops its children on an inherited cancellation after
//! the earlier of its own period and what remains of the enclosing one, as nested deadlines
//! combine (see [`GroupConfig::grace_period`](crate::GroupConfig::grace_period)). Shields
//! hold a drop while any runs below the node whose schedule it follows.
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
    /// The grace period of this node's own cancellation. Set by the owner before anything
    /// runs inside the node (see [`ScopeNode::set_grace`]).
    grace: Duration,
    /// Whether `grace` also bounds a cancellation inherited from an ancestor (a group's
    /// explicit grace period); otherwise the node follows the ancestor's schedule.
    grace_caps_inherited: bool,
    /// When the grace period of this node's cancellation ends: fixed by the first dropper
    /// that asks after the cancellation, so every dropper of it agrees. Unused while
    /// `grace` is zero (drops are due at once).
    grace_ends: Option<Instant>,
}

/// When a dropper may drop, as [`ScopeNode::drop_plan`] works it out.
struct DropPlan<'a> {
    /// `None`: at once.
    at: Option<Instant>,
    /// The node whose active shields hold the drop off.
    shields: &'a ScopeNode,
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
                grace: Duration::ZERO,
                grace_caps_inherited: false,
                grace_ends: None,
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

    /// Sets the grace period of this node's own cancellation; with `caps_inherited`, it
    /// also bounds a cancellation inherited from an ancestor (see the module docs). Called
    /// by the owner right after creating the node, before anything runs inside it.
    pub(crate) fn set_grace(&self, grace: Duration, caps_inherited: bool) {
        let mut state = lock(&self.state);
        state.grace = grace;
        state.grace_caps_inherited = caps_inherited;
    }

    /// When the grace period of this node's cancellation ends (`None`: it is zero, so
    /// drops are due at once), and whether the node follows its parent's schedule (it was
    /// cancelled because its parent was) and bounds it by its own (`caps_inherited`).
    fn own_grace_end(&self) -> (Option<Instant>, bool, bool) {
        let mut state = lock(&self.state);
        let inherited = matches!(state.reason, Some(CancelReason::ParentCancelled(_)));
        let caps = state.grace_caps_inherited;
        if state.grace.is_zero() {
            return (None, inherited, caps);
        }
        let grace = state.grace;
        let end = *state
            .grace_ends
            .get_or_insert_with(|| Instant::now().saturating_add(grace));
        (Some(end), inherited, caps)
    }

    /// When futures dropped for this node's cancellation are due, and whose shields hold
    /// them off: the origin's schedule, walking up through nodes cancelled because their
    /// parent was, bounded by any such node's own explicit grace period on the way (the
    /// earliest wins). One node lock at a time.
    fn drop_plan(&self) -> DropPlan<'_> {
        let mut best: Option<DropPlan<'_>> = None;
        let mut node = self;
        loop {
            let (end, inherited, caps) = node.own_grace_end();
            // A node cancelled because its parent was: the parent (still cancelled, reasons
            // are never cleared) holds the schedule. `GroupFuture`'s drop cancels its node
            // with a `ParentCancelled` reason of its own while the parent may run on: then
            // the node is the origin.
            let parent = node
                .parent
                .as_deref()
                .filter(|p| inherited && !node.shielded && p.is_cancelled());
            if parent.is_none() || caps {
                let earlier = match &best {
                    None => true,
                    Some(b) => match (end, b.at) {
                        (_, None) => false,
                        (None, Some(_)) => true,
                        (Some(e), Some(b)) => e < b,
                    },
                };
                if earlier {
                    best = Some(DropPlan {
                        at: end,
                        shields: node,
                    });
                }
            }
            match parent {
                // Due at once already: nothing above can make it earlier.
                Some(_) if best.as_ref().is_some_and(|b| b.at.is_none()) => break,
                Some(parent) => node = parent,
                None => break,
            }
        }
        best.unwrap_or(DropPlan {
            at: None,
            shields: self,
        })
    }

    /// For whoever drops a future because this node was cancelled: `Ready` once it must be
    /// dropped (the grace period of the cancellation is over, see the module docs, and no
    /// shield below the node whose schedule it follows is running); otherwise `Pending`,
    /// with a wake-up arranged for when that changes. `grace_timer` is the caller's timer,
    /// kept between calls.
    pub(crate) fn poll_drop(
        &self,
        grace_timer: &mut Option<Pin<Box<Sleep>>>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        debug_assert!(self.is_cancelled());
        let plan = self.drop_plan();
        if let Some(at) = plan.at {
            let timer = grace_timer.get_or_insert_with(|| Box::pin(sleep_until(at)));
            if timer.deadline() != at {
                // The schedule changed (an ancestor was cancelled after a group's drop
                // cancelled its node): follow it.
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        if plan.shields.wait_for_shields(cx.waker()) {
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

/// What is current on this thread while a scope's future is polled.
#[derive(Clone, Copy)]
enum Frame {
    /// A node, kept alive by the caller of [`enter`] for the whole call.
    Node(*const ScopeNode),
    /// A cancel scope on its first poll that has no node yet (see [`LazyScope`]).
    Lazy(*const LazyScope),
}

tg_thread_local! {
    /// The scope whose future is being polled on this thread.
    static CURRENT: Cell<Option<Frame>> = const { Cell::new(None) };
}

/// A cancel scope's first poll, before it has a node. Most scopes around a ready future
/// (`timeout(d, ready)`) finish on that poll without anything inside asking for their scope;
/// those never build a node. Whatever does ask ([`current`]: `cancelled()`, a group opened
/// inside, `is_cancelled()`) materialises the node, and its parent's if that is lazy too,
/// exactly as an eager start would have built it. Lives on the stack of the poll that set
/// it current.
struct LazyScope {
    /// What was current when the scope started (its parent).
    parent: Option<Frame>,
    location: &'static Location<'static>,
    deadline: Option<Instant>,
    /// The scope's grace period, given to the node as soon as it is built.
    grace: Duration,
    /// The shared scope's handle, if it has one: the node, built during the poll, carries
    /// the deadline a `set_deadline` on it stored before.
    shared: Option<CancelScope>,
    node: std::cell::OnceCell<Arc<ScopeNode>>,
}

impl LazyScope {
    fn node(&self) -> Arc<ScopeNode> {
        self.node
            .get_or_init(|| {
                let parent = self.parent.map(resolve);
                let node = ScopeNode::new_child_of_kind(
                    parent.as_ref(),
                    false,
                    NodeKind::CancelScope,
                    Some(self.location),
                    None,
                );
                // A shared scope's deadline as `set_deadline` left it during this poll (the
                // entry deadline otherwise). The node is published after the poll
                // (`first_poll_lazy`), which applies later moves and a parked cancel.
                let deadline = match &self.shared {
                    Some(scope) => *lock(&scope.inner.deadline),
                    None => self.deadline,
                };
                node.set_deadline(deadline);
                // A scope's grace period is for its own cancellation only: on an inherited
                // one it leaves dropping to the enclosing scope (see `on_cancelled`).
                node.set_grace(self.grace, false);
                node
            })
            .clone()
    }
}

/// The node of `frame`, materialising a lazy one.
fn resolve(frame: Frame) -> Arc<ScopeNode> {
    match frame {
        Frame::Node(ptr) => {
            // SAFETY: CURRENT (and a lazy scope's `parent`, copied from it) holds a node
            // pointer only while `enter` runs, and `enter`'s caller holds an Arc to that node
            // for the whole call, so the node is alive; incrementing the count before
            // building a second Arc from the pointer keeps the counts balanced.
            unsafe {
                Arc::increment_strong_count(ptr);
                Arc::from_raw(ptr)
            }
        }
        Frame::Lazy(ptr) => {
            // SAFETY: a lazy scope is current only while `enter_frame` runs inside the poll
            // whose stack holds it, and every frame above it on this thread (whose `parent`
            // may point at it) is current within that same call; so it is alive here.
            unsafe { &*ptr }.node()
        }
    }
}

/// Whether `frame` is cancelled, without materialising anything: a lazy scope that has no
/// node yet cannot have been cancelled itself, so it answers for its parent.
fn frame_is_cancelled(frame: Frame) -> bool {
    match frame {
        Frame::Node(_) => resolve(frame).is_cancelled(),
        Frame::Lazy(ptr) => {
            // SAFETY: as in `resolve`.
            let lazy = unsafe { &*ptr };
            match lazy.node.get() {
                Some(node) => node.is_cancelled(),
                None => lazy.parent.is_some_and(frame_is_cancelled),
            }
        }
    }
}

/// Makes `frame` current while `f` runs (one poll), restoring the previous scope after.
fn enter_frame<R>(frame: Frame, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Frame>);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            let previous = self.0;
            let _ = CURRENT.try_with(|c| c.set(previous));
        }
    }
    let previous = CURRENT.with(|c| c.replace(Some(frame)));
    let _restore = Restore(previous);
    f()
}

/// Makes `node` current while `f` runs (one poll), restoring the previous scope after.
pub(crate) fn enter<R>(node: &Arc<ScopeNode>, f: impl FnOnce() -> R) -> R {
    enter_frame(Frame::Node(Arc::as_ptr(node)), f)
}

/// The current scope, if code is running inside one (materialising a lazy one).
pub(crate) fn current() -> Option<Arc<ScopeNode>> {
    CURRENT.try_with(|c| c.get()).ok().flatten().map(resolve)
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
        ScopeFuture::new(
            Some(self.clone()),
            self.inner.shield,
            self.inner.timeout,
            self.inner.grace,
            future,
        )
    }
}

/// A scope that nobody else can reach (`timeout`, `move_on_after`...): no [`CancelScope`]
/// is allocated for it, and a body that completes on its first poll builds no node.
#[track_caller]
pub(crate) fn run_private<F: Future>(
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    future: F,
) -> ScopeFuture<F> {
    let mut fut = ScopeFuture::new(None, false, timeout, Duration::ZERO, future);
    fut.state.deadline = deadline;
    fut
}

pin_project_lite::pin_project! {
    /// The future of a cancel scope, returned by [`CancelScope::run`] and
    /// [`move_on_after`](crate::move_on_after): `Some(output)` if the body completes, `None`
    /// if the scope's own cancellation (its deadline, or a `cancel`) stopped it.
    #[must_use = "futures do nothing unless awaited"]
    pub struct ScopeFuture<F> {
        state: ScopeState,
        // Inline, so a scope costs no allocation for its body; `None` once finished.
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for ScopeFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Drop the inner future first: it is still "inside" the shield while it drops.
            this.state.finish(this.future);
        }
    }
}

/// Everything of a [`ScopeFuture`] but its body.
struct ScopeState {
    /// The scope handle shared with the user; `None` for a private scope.
    scope: Option<CancelScope>,
    shield: bool,
    timeout: Option<Duration>,
    /// A private scope's absolute deadline (a shared scope keeps its own).
    deadline: Option<Instant>,
    grace: Duration,
    location: &'static Location<'static>,
    node: Option<Arc<ScopeNode>>,
    /// Our waker's key in the node's waiter list.
    waiter: Option<usize>,
    /// For a shielded scope: the node whose ancestors count us as an active shield.
    shield_parent: Option<Arc<ScopeNode>>,
    timer: Option<(Instant, Pin<Box<Sleep>>)>,
    grace_timer: Option<Pin<Box<Sleep>>>,
}

impl<F> ScopeFuture<F> {
    #[track_caller]
    fn new(
        scope: Option<CancelScope>,
        shield: bool,
        timeout: Option<Duration>,
        grace: Duration,
        future: F,
    ) -> ScopeFuture<F> {
        ScopeFuture {
            state: ScopeState {
                scope,
                shield,
                timeout,
                deadline: None,
                grace,
                location: Location::caller(),
                node: None,
                waiter: None,
                shield_parent: None,
                timer: None,
                grace_timer: None,
            },
            future: Some(future),
        }
    }
}

/// Polls the body, if it is still there, with `frame` current.
fn poll_body<F: Future>(
    future: Pin<&mut Option<F>>,
    frame: Frame,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    match future.as_pin_mut() {
        Some(future) => enter_frame(frame, || future.poll(cx)),
        None => Poll::Pending,
    }
}

impl ScopeState {
    /// Drops the body, then leaves the node and the shield count.
    #[inline]
    fn finish<F>(&mut self, mut future: Pin<&mut Option<F>>) {
        future.set(None);
        if let (Some(node), Some(key)) = (&self.node, self.waiter.take()) {
            node.deregister(key);
        }
        if let Some(parent) = self.shield_parent.take() {
            parent.shield_ended();
        }
    }

    /// The deadline fixed at entry: the scope's absolute one, or `timeout` from now,
    /// whichever is earlier. A shared scope records it, so `deadline()` reads it back.
    #[inline]
    fn entry_deadline(&self) -> Option<Instant> {
        let absolute = match &self.scope {
            Some(scope) => *lock(&scope.inner.deadline),
            None => self.deadline,
        };
        let Some(timeout) = self.timeout else {
            return absolute;
        };
        let relative = Instant::now().saturating_add(timeout);
        let deadline = Some(absolute.map_or(relative, |a| a.min(relative)));
        if let Some(scope) = &self.scope {
            *lock(&scope.inner.deadline) = deadline;
        }
        deadline
    }

    /// Whether a cancel was asked for before the scope started.
    #[inline]
    fn cancel_pending(&self) -> bool {
        self.scope
            .as_ref()
            .is_some_and(|s| lock(&s.inner.pending_cancel).is_some())
    }

    /// Our node is cancelled. `Ready(output)` if the future was just dropped for our own
    /// cancellation; `Pending` to go on polling it: while the grace period or a shield holds
    /// the drop off, and for an enclosing scope's cancellation, which is that scope's to
    /// enforce (its grace period lets our future clean up; then it drops us).
    fn on_cancelled<F, T>(
        &mut self,
        node: &Arc<ScopeNode>,
        future: Pin<&mut Option<F>>,
        cx: &mut Context<'_>,
    ) -> Poll<Poll<Option<T>>> {
        if matches!(node.reason(), Some(CancelReason::ParentCancelled(_))) {
            return Poll::Pending;
        }
        if node.poll_drop(&mut self.grace_timer, cx).is_pending() {
            return Poll::Pending;
        }
        self.finish(future);
        if let Some(scope) = &self.scope {
            scope.inner.caught.store(true, Ordering::Release);
        }
        Poll::Ready(Poll::Ready(None))
    }

    /// Builds the node eagerly (a shielded scope, a pending cancel, a cancelled parent).
    fn start(&mut self) -> Arc<ScopeNode> {
        let parent = current();
        let node = ScopeNode::new_child_of_kind(
            parent.as_ref(),
            self.shield,
            NodeKind::CancelScope,
            Some(self.location),
            None,
        );
        if self.shield {
            if let Some(parent) = &parent {
                parent.shield_started();
                self.shield_parent = Some(parent.clone());
            }
        }
        node.set_deadline(self.entry_deadline());
        self.adopt(&node);
        node
    }

    /// Makes `node` this scope's: published to the shared scope, which may have parked a
    /// cancel before it existed.
    fn adopt(&mut self, node: &Arc<ScopeNode>) {
        // Before the node is published or anything runs inside it (a lazily built node got
        // it already, see `LazyScope::node`).
        node.set_grace(self.grace, false);
        if let Some(scope) = &self.scope {
            *lock(&scope.inner.node) = Some(node.clone());
            if let Some(reason) = lock(&scope.inner.pending_cancel).take() {
                node.cancel(reason);
            }
        }
        self.node = Some(node.clone());
    }

    /// The first poll of an unshielded scope whose parent is not cancelled: runs the body
    /// under a [`LazyScope`], so a body that finishes at once builds no node. `Err` if the
    /// body is pending: the scope then has its node (built now if nothing inside asked).
    fn first_poll_lazy<F: Future>(
        &mut self,
        parent: Option<Frame>,
        mut future: Pin<&mut Option<F>>,
        cx: &mut Context<'_>,
    ) -> Result<F::Output, Arc<ScopeNode>> {
        let lazy = LazyScope {
            parent,
            location: self.location,
            deadline: self.entry_deadline(),
            grace: self.grace,
            shared: self.scope.clone(),
            node: std::cell::OnceCell::new(),
        };
        if let Poll::Ready(out) = poll_body(future.as_mut(), Frame::Lazy(&lazy), cx) {
            self.finish(future);
            return Ok(out);
        }
        // Built under the same parent an eager start would have used (still current).
        let node = lazy.node();
        if let Some(scope) = &self.scope {
            // `set_deadline` during that poll reached only the shared scope.
            node.set_deadline(*lock(&scope.inner.deadline));
        }
        self.adopt(&node);
        Err(node)
    }
}

impl<F: Future> Future for ScopeFuture<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.project();
        let state = this.state;
        let mut future = this.future;
        // First poll: run the body before arming the deadline timer or registering for
        // cancellation, so a body that finishes without waiting costs neither (the common
        // `timeout` around a ready future). Trio's and asyncio's semantics agree: a body
        // that never suspends completes even if its deadline has already passed, since
        // cancellation is only delivered where it waits.
        let mut body_polled = false;
        let node = match &state.node {
            Some(node) => node.clone(),
            None => {
                let parent = CURRENT.try_with(|c| c.get()).ok().flatten();
                if !state.shield
                    && !state.cancel_pending()
                    && !parent.is_some_and(frame_is_cancelled)
                {
                    match state.first_poll_lazy(parent, future.as_mut(), cx) {
                        Ok(out) => return Poll::Ready(Some(out)),
                        Err(node) => {
                            body_polled = true;
                            node
                        }
                    }
                } else {
                    let node = state.start();
                    if !node.is_cancelled() && future.is_some() {
                        let frame = Frame::Node(Arc::as_ptr(&node));
                        if let Poll::Ready(out) = poll_body(future.as_mut(), frame, cx) {
                            state.finish(future);
                            return Poll::Ready(Some(out));
                        }
                        body_polled = true;
                    }
                    node
                }
            }
        };
        // Arm (or re-arm, after set_deadline) the deadline timer.
        if let Some(deadline) = node.own_deadline() {
            if !node.is_cancelled() {
                let rearm = state.timer.as_ref().is_none_or(|(d, _)| *d != deadline);
                if rearm {
                    state.timer = Some((deadline, Box::pin(sleep_until(deadline))));
                }
                if let Some((_, timer)) = &mut state.timer {
                    if timer.as_mut().poll(cx).is_ready() {
                        node.cancel(CancelReason::Deadline);
                    }
                }
            }
        }
        if node.is_cancelled() {
            if let Poll::Ready(out) = state.on_cancelled(&node, future.as_mut(), cx) {
                return out;
            }
        } else {
            // Be woken on cancellation (explicit, inherited, or a moved deadline).
            node.keep_registered(&mut state.waiter, cx.waker());
            if body_polled {
                // Cancelled between the body's poll and our registration: no waiter will
                // wake us for it, so handle it now.
                if node.is_cancelled() {
                    if let Poll::Ready(out) = state.on_cancelled(&node, future.as_mut(), cx) {
                        return out;
                    }
                }
                return Poll::Pending;
            }
        }
        if body_polled || future.is_none() {
            // The body was polled this time already (the cancellation above decides), or
            // it is gone.
            return Poll::Pending;
        }
        match poll_body(future.as_mut(), Frame::Node(Arc::as_ptr(&node)), cx) {
            Poll::Ready(out) => {
                state.finish(future);
                Poll::Ready(Some(out))
            }
            Poll::Pending => {
                // Cancelled during the poll (or before we could register): arrange the
                // drop now, since no node waiter will wake us for it.
                if node.is_cancelled() {
                    if let Poll::Ready(out) = state.on_cancelled(&node, future, cx) {
                        return out;
                    }
                }
                Poll::Pending
            }
        }
    }
}
