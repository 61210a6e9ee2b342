//! The borrowing flavour of task groups; the user-facing story is on [`scoped`].
//!
//! # Protocol
//! Handles: the [`ScopedFuture`] (owns the body, the children's slab, and polls them all);
//! [`LocalGroup`]s (push new children into `Incoming` under its mutex); one [`ChildWake`]
//! per child and one for the body (push `(key, generation)` onto the `ReadyQueue` once,
//! guarded by their `queued` flag); [`LocalHandle`]s (read a child's `Slot`).
//! - Only the scope's future touches the slab and the body, so the children need no lock
//!   and no `'static`: everything that crosses threads (wakers) is `'static` and holds
//!   keys, never futures.
//! - `queued` is cleared just before a poll; a wake-up during the poll queues the child
//!   again, at the back. A waker that pushes onto an empty queue wakes the scope's task; a
//!   poll that ends with a non-empty queue (budget spent) wakes its own task.
//! - `Incoming::in_poll` tells spawners that the poll loop will take their child in
//!   before it returns (no wake-up needed); closing (`accepting = false`) happens under
//!   the same lock that spawns take, once the body and every child are done.
//!
//! Its locks and flags come from [`crate::loom`]; `loom_models.rs` checks a child woken
//! from another thread, and a spawn from another thread, against the poll loop's end.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use ringleader_runtime::task::CancelReason;
use slab::Slab;

use crate::error::{
    BoxError, ChildError, ErrorGroup, Failure, FailureKind, GroupClosed, PanicPayload,
};
use crate::group::ChildResult;
use crate::loom::{lock, AtomicBool, Mutex, Ordering};
use crate::scope::{self, NodeKind, ScopeNode};

/// How many children (the body counts as one) one poll of a [`ScopedFuture`] polls at most
/// before it yields to the runtime. A guess: tokio's task budget is 128 leaf operations, and
/// a child poll usually does a few.
pub const POLL_BUDGET: usize = 64;

/// The body's key on the ready queue (children's keys are slab keys).
const BODY: usize = usize::MAX;

/// Keys of woken children, in wake order, and the scope's task waker. Wakers can fire on
/// any thread (a timer, an I/O driver), so this part is `Send + Sync + 'static`; the
/// children themselves are not in it.
struct ReadyQueue {
    inner: Mutex<ReadyInner>,
}

struct ReadyInner {
    /// `(key, generation)`: a slab key is reused, the generation tells a stale wake-up of a
    /// finished child from one of the child now holding the key.
    queue: VecDeque<(usize, u64)>,
    waker: Option<Waker>,
}

impl ReadyQueue {
    fn new() -> ReadyQueue {
        ReadyQueue {
            inner: Mutex::new(ReadyInner {
                queue: VecDeque::new(),
                waker: None,
            }),
        }
    }
    fn pop(&self) -> Option<(usize, u64)> {
        lock(&self.inner).queue.pop_front()
    }
    fn is_empty(&self) -> bool {
        lock(&self.inner).queue.is_empty()
    }
}

/// One child's (or the body's) waker: queues its key once until it is next polled.
struct ChildWake {
    key: usize,
    gen: u64,
    /// On the ready queue, not yet polled. Cleared just before each poll, so a wake-up
    /// during the poll queues it again, at the back.
    queued: AtomicBool,
    ready: Arc<ReadyQueue>,
}

impl Wake for ChildWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let waker = {
            let mut ready = lock(&self.ready.inner);
            ready.queue.push_back((self.key, self.gen));
            // Only the first entry needs to wake the task: a non-empty queue means a
            // wake-up is pending or the scope is being polled, and a poll leaves the queue
            // empty or wakes its own task.
            if ready.queue.len() == 1 {
                ready.waker.clone()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A type-erased child: its future and the slot its handle reads.
trait LocalChild: Send {
    fn poll_child(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>;
    /// The child's poll panicked: its handle reports a failure.
    fn panicked(&mut self);
}

struct ChildCell<F: Future>
where
    F::Output: ChildResult,
{
    future: Pin<Box<F>>,
    slot: Arc<Mutex<Slot<<F::Output as ChildResult>::Value>>>,
    node: Arc<ScopeNode>,
}

struct Slot<T> {
    result: Option<Result<T, ChildError>>,
    finished: bool,
    waker: Option<Waker>,
}

fn fill<T>(slot: &Mutex<Slot<T>>, result: Result<T, ChildError>) {
    let waker = {
        let mut slot = lock(slot);
        if slot.finished {
            return;
        }
        slot.finished = true;
        slot.result = Some(result);
        slot.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

impl<F> LocalChild for ChildCell<F>
where
    F: Future + Send,
    F::Output: ChildResult,
{
    fn poll_child(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let out = std::task::ready!(self.future.as_mut().poll(cx));
        Poll::Ready(match out.into_result() {
            Ok(value) => {
                fill(&self.slot, Ok(value));
                Ok(())
            }
            Err(error) => {
                fill(&self.slot, Err(ChildError::Failed));
                Err(error)
            }
        })
    }
    fn panicked(&mut self) {
        fill(&self.slot, Err(ChildError::Failed));
    }
}

impl<F: Future> Drop for ChildCell<F>
where
    F::Output: ChildResult,
{
    fn drop(&mut self) {
        // Dropped before it finished: the scope failed, was cancelled, or was dropped
        // (its node carries the reason in each case).
        let reason = self.node.reason().unwrap_or(CancelReason::Aborted);
        fill(&self.slot, Err(ChildError::Cancelled(reason)));
    }
}

type ErasedChild<'env> = Box<dyn LocalChild + 'env>;

/// A child spawned but not yet taken in by the scope's future.
struct NewChild<'env> {
    child: ErasedChild<'env>,
    name: String,
    location: &'static Location<'static>,
}

/// The names and spawn locations of a scoped group's live children, by generation (spawn
/// order), for task dumps: the children themselves are not `'static`, so the scope node
/// holds this instead.
pub(crate) struct Roster {
    pub(crate) children: Mutex<BTreeMap<u64, (String, &'static Location<'static>)>>,
}

impl Roster {
    fn new() -> Roster {
        Roster {
            children: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Children spawned but not yet taken in by the scope's future.
struct Incoming<'env> {
    accepting: bool,
    queue: Vec<NewChild<'env>>,
    spawned: usize,
    /// The scope's future is running its poll loop and will take new children in before
    /// it returns: no wake-up needed.
    in_poll: bool,
    waker: Option<Waker>,
}

/// A handle to a borrowing group: spawns children that run inside the scope's task. Given
/// to the body of [`scoped`]; cloneable, so children can spawn siblings while the scope is
/// open.
pub struct LocalGroup<'env> {
    incoming: Arc<Mutex<Incoming<'env>>>,
    node: Arc<ScopeNode>,
}

impl Clone for LocalGroup<'_> {
    fn clone(&self) -> Self {
        LocalGroup {
            incoming: self.incoming.clone(),
            node: self.node.clone(),
        }
    }
}

impl std::fmt::Debug for LocalGroup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let incoming = lock(&self.incoming);
        f.debug_struct("LocalGroup")
            .field("accepting", &incoming.accepting)
            .field("spawned", &incoming.spawned)
            .finish()
    }
}

impl<'env> LocalGroup<'env> {
    /// Spawns `future` as a child polled by the scope's future, in the caller's task. It
    /// may borrow anything that outlives the `scoped` call.
    ///
    /// # Errors
    /// [`GroupClosed`] once the scope has finished, failed or been cancelled.
    #[track_caller]
    pub fn spawn<F>(
        &self,
        future: F,
    ) -> Result<LocalHandle<<F::Output as ChildResult>::Value>, GroupClosed>
    where
        F: Future + Send + 'env,
        F::Output: ChildResult,
    {
        self.spawn_inner(future, None)
    }

    /// [`spawn`](Self::spawn) with a name, shown in the [`ErrorGroup`] and task dumps.
    /// Unnamed children are called `child N`, in spawn order.
    ///
    /// # Errors
    /// [`GroupClosed`] once the scope has finished, failed or been cancelled.
    #[track_caller]
    pub fn spawn_named<F>(
        &self,
        name: impl Into<String>,
        future: F,
    ) -> Result<LocalHandle<<F::Output as ChildResult>::Value>, GroupClosed>
    where
        F: Future + Send + 'env,
        F::Output: ChildResult,
    {
        self.spawn_inner(future, Some(name.into()))
    }

    #[track_caller]
    fn spawn_inner<F>(
        &self,
        future: F,
        name: Option<String>,
    ) -> Result<LocalHandle<<F::Output as ChildResult>::Value>, GroupClosed>
    where
        F: Future + Send + 'env,
        F::Output: ChildResult,
    {
        let slot = Arc::new(Mutex::new(Slot {
            result: None,
            finished: false,
            waker: None,
        }));
        let cell = ChildCell {
            future: Box::pin(future),
            slot: slot.clone(),
            node: self.node.clone(),
        };
        let (name, waker) = {
            let mut incoming = lock(&self.incoming);
            if !incoming.accepting {
                drop(incoming);
                // Dropped outside the lock: its drop may try to spawn.
                drop(cell);
                return Err(GroupClosed);
            }
            incoming.spawned += 1;
            let name = name.unwrap_or_else(|| format!("child {}", incoming.spawned));
            incoming.queue.push(NewChild {
                child: Box::new(cell),
                name: name.clone(),
                location: Location::caller(),
            });
            let waker = if incoming.in_poll {
                None
            } else {
                incoming.waker.clone()
            };
            (name, waker)
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(LocalHandle { slot, name })
    }

    /// Cancels the scope: the body and every child are dropped at the scope's next poll,
    /// and [`scoped`] returns a cancelled [`ErrorGroup`] with this reason (unless everything
    /// had already finished).
    pub fn cancel(&self, reason: CancelReason) {
        self.node.cancel(reason);
    }

    /// Whether the scope (or an enclosing one) has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.node.is_cancelled()
    }
}

/// Awaits one child of a [`LocalGroup`]: its value, or why there is none.
///
/// # Cancel safety
/// Cancel safe: dropping it does not cancel the child, and a value not yet read stays in
/// the handle for the next poll.
pub struct LocalHandle<T> {
    slot: Arc<Mutex<Slot<T>>>,
    name: String,
}

impl<T> std::fmt::Debug for LocalHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalHandle")
            .field("name", &self.name)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> LocalHandle<T> {
    /// The child's name (given, or `child N`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Whether the child has finished (completed, failed or been dropped).
    pub fn is_finished(&self) -> bool {
        lock(&self.slot).finished
    }
}

impl<T> Future for LocalHandle<T> {
    type Output = Result<T, ChildError>;

    /// # Panics
    /// If polled again after it returned `Ready`.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.slot);
        if let Some(result) = slot.result.take() {
            return Poll::Ready(result);
        }
        assert!(!slot.finished, "LocalHandle polled after completion");
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

struct Entry<'env> {
    child: ErasedChild<'env>,
    wake: Arc<ChildWake>,
    waker: Waker,
    name: String,
}

/// Runs `body` with a [`LocalGroup`] whose children may borrow from the caller's stack; they
/// run concurrently with the body inside the caller's task, never in parallel. Returns when
/// the body and every child are done.
///
/// The closure receives the group by value (an owned, cloneable handle), so the body can
/// be an `async move` block that keeps it. Children must be `Send`, so that the scope's
/// future is `Send` too and can run inside a task on the work-stealing pool; they still all
/// run on whichever thread polls that task.
///
/// ```compile_fail
/// use ringleader_taskgroup::{scoped, BoxError};
///
/// ringleader_runtime::run(async {
///     let shared = std::rc::Rc::new(1);
///     scoped(|s| async move {
///         // error: future cannot be sent between threads safely (it holds an `Rc`)
///         s.spawn(async move { drop(shared) })?;
///         Ok::<_, BoxError>(())
///     })
///     .await
///     .unwrap();
/// });
/// ```
///
/// ```
/// use ringleader_taskgroup::{scoped, BoxError};
///
/// let words = vec!["alpha", "beta", "gamma"];
/// let mut lengths = vec![0; words.len()];
/// ringleader_runtime::run(async {
///     scoped(|s| {
///         // The children borrow `words` and each borrows its own slot of `lengths`.
///         let jobs: Vec<_> = words.iter().zip(lengths.iter_mut()).collect();
///         async move {
///             for (word, slot) in jobs {
///                 s.spawn(async move {
///                     ringleader_runtime::task::yield_now().await;
///                     *slot = word.len();
///                 })?;
///             }
///             Ok::<_, BoxError>(())
///         }
///     })
///     .await
///     .unwrap();
/// });
/// assert_eq!(lengths, [5, 4, 5]);
/// ```
///
/// # Why it cannot also be parallel
/// A scope can have at most two of concurrency, parallelism and borrowing (the scoped-task
/// trilemma). Parallel children that borrow would run on other threads while the scope's
/// future waits for them; but a future can be leaked with `mem::forget` (safe code) half-way
/// through, and then no destructor runs to wait for the children: the caller's stack frame
/// returns and frees the borrowed data while other threads still use it. A blocking scope
/// (`std::thread::scope`) can wait in its own frame; an async scope cannot, because its
/// "frame" is a future that may be forgotten. So the borrowing flavour gives up parallelism:
/// its children are polled by the scope's own future, inside the caller's task, and if that
/// future is forgotten they are simply never polled again. No thread ever holds a borrow
/// the compiler has not checked, and the module needs no unsafe code. Parallel children are
/// [`TaskGroup`](crate::TaskGroup)'s, and they own their data (`Send + 'static`).
///
/// # Semantics, as [`task_group`](crate::task_group)'s fail-fast policy
/// - [`scoped`] returns when the body and every child are done: the body's value, or an
///   [`ErrorGroup`].
/// - The first child error or panic (or the body's) drops the body and every other child
///   at once (there is no cooperative grace period: the children live in this future, so
///   dropping them is immediate); the result is an [`ErrorGroup`] with the failure (and any
///   panic raised while dropping the others).
/// - [`LocalGroup::cancel`] drops everything the same way; the result is a cancelled
///   [`ErrorGroup`] with the reason.
/// - Children run inside the scope's cancel node, a child of the caller's scope:
///   [`cancelled()`](crate::cancelled) resolves in them when an enclosing scope is
///   cancelled, and the enclosing scope drops the whole scoped future when its grace ends.
/// - Children can borrow anything that outlives the `scoped(..)` call, but not the body's
///   own locals (the body is itself a future the scope owns):
///
/// ```compile_fail
/// use ringleader_taskgroup::{scoped, BoxError};
///
/// ringleader_runtime::run(async {
///     scoped(|s| async move {
///         let local = String::from("owned by the body");
///         // error[E0373]: the child may outlive `local`, which the body owns
///         s.spawn(async { println!("{}", &local) })?;
///         Ok::<_, BoxError>(())
///     })
///     .await
///     .unwrap();
/// });
/// ```
///
/// # Fairness
/// `FuturesUnordered` once polled, in one call, every future that was woken, including
/// those woken during that same call: a future that always wakes itself kept the call from
/// returning and starved the rest of the task and the runtime (futures-rs #2387). Here:
/// - each child (and the body) has its own waker, which puts it on a ready queue once;
///   only children on the queue are polled, so a child that was not woken costs nothing;
/// - the queue is first in, first out, and a child woken while it is polled goes to the
///   back, behind every sibling already waiting;
/// - one poll of the scope polls at most [`POLL_BUDGET`] children; with more ready, it wakes
///   its own task and returns `Pending`, so the runtime runs other tasks in between.
///
/// # Errors
/// An [`ErrorGroup`] with the first failure (a child's or the body's error or panic, and
/// any panic while dropping the rest), or a cancelled one after [`LocalGroup::cancel`].
///
/// # Cancel safety
/// Dropping the returned future drops the body and every child at once; their handles
/// report [`ChildError::Cancelled`].
#[track_caller]
pub fn scoped<'env, B, Fut, R>(body: B) -> ScopedFuture<'env, B, Fut, R::Value>
where
    B: FnOnce(LocalGroup<'env>) -> Fut,
    Fut: Future<Output = R>,
    R: ChildResult,
{
    let ready = Arc::new(ReadyQueue::new());
    let body_wake = Arc::new(ChildWake {
        key: BODY,
        gen: 0,
        queued: AtomicBool::new(true),
        ready: ready.clone(),
    });
    lock(&ready.inner).queue.push_back((BODY, 0));
    ScopedFuture {
        body_fn: Some(body),
        body: None,
        value: None,
        incoming: Arc::new(Mutex::new(Incoming {
            accepting: true,
            queue: Vec::new(),
            spawned: 0,
            in_poll: false,
            waker: None,
        })),
        children: Slab::new(),
        ready,
        roster: Arc::new(Roster::new()),
        body_waker: Waker::from(body_wake.clone()),
        body_wake,
        next_gen: 1,
        failures: Vec::new(),
        failed: false,
        node: None,
        waiter: None,
        location: Location::caller(),
        finished: false,
    }
}

/// The future returned by [`scoped`].
///
/// # Panics
/// If polled again after it completed.
#[must_use = "a scoped group does nothing unless awaited; dropping it drops its children"]
pub struct ScopedFuture<'env, B, Fut, V> {
    body_fn: Option<B>,
    body: Option<Pin<Box<Fut>>>,
    value: Option<V>,
    incoming: Arc<Mutex<Incoming<'env>>>,
    children: Slab<Entry<'env>>,
    ready: Arc<ReadyQueue>,
    roster: Arc<Roster>,
    body_waker: Waker,
    body_wake: Arc<ChildWake>,
    next_gen: u64,
    failures: Vec<Failure>,
    /// The body and children were dropped (a failure or our own cancellation).
    failed: bool,
    node: Option<Arc<ScopeNode>>,
    waiter: Option<usize>,
    location: &'static Location<'static>,
    finished: bool,
}

// Nothing is structurally pinned: the body is boxed.
impl<B, Fut, V> Unpin for ScopedFuture<'_, B, Fut, V> {}

impl<'env, B, Fut, R> ScopedFuture<'env, B, Fut, R::Value>
where
    B: FnOnce(LocalGroup<'env>) -> Fut,
    Fut: Future<Output = R>,
    R: ChildResult,
{
    fn start(&mut self) -> Arc<ScopeNode> {
        let parent = scope::current();
        let node = ScopeNode::new_child_of_kind(
            parent.as_ref(),
            false,
            NodeKind::Scoped,
            Some(self.location),
            None,
        );
        let _ = node.roster.set(self.roster.clone());
        self.node = Some(node.clone());
        let group = LocalGroup {
            incoming: self.incoming.clone(),
            node: node.clone(),
        };
        let body = self.body_fn.take().expect("the body is taken once");
        let fut = scope::enter(&node, || body(group));
        self.body = Some(Box::pin(fut));
        node
    }

    fn poll_body(&mut self, node: &Arc<ScopeNode>) {
        let Some(body) = self.body.as_mut() else {
            return;
        };
        self.body_wake.queued.store(false, Ordering::Release);
        let mut cx = Context::from_waker(&self.body_waker);
        let polled = scope::enter(node, || {
            catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(&mut cx)))
        });
        let kind = match polled {
            Ok(Poll::Pending) => return,
            Ok(Poll::Ready(out)) => match out.into_result() {
                Ok(value) => {
                    self.body = None;
                    self.value = Some(value);
                    return;
                }
                Err(e) => Failure::kind_from_error(e, true),
            },
            Err(payload) => FailureKind::BodyPanic(PanicPayload::new(payload)),
        };
        self.body = None;
        self.fail(
            node,
            Failure {
                task_id: None,
                name: None,
                kind,
            },
        );
    }
}

impl<B, Fut, V> ScopedFuture<'_, B, Fut, V> {
    /// Moves newly spawned children into the slab and queues each for its first poll.
    fn take_in(&mut self) {
        let new = std::mem::take(&mut lock(&self.incoming).queue);
        for NewChild {
            child,
            name,
            location,
        } in new
        {
            let gen = self.next_gen;
            self.next_gen += 1;
            lock(&self.roster.children).insert(gen, (name.clone(), location));
            let entry = self.children.vacant_entry();
            let wake = Arc::new(ChildWake {
                key: entry.key(),
                gen,
                queued: AtomicBool::new(false),
                ready: self.ready.clone(),
            });
            let waker = Waker::from(wake.clone());
            entry.insert(Entry {
                child,
                wake: wake.clone(),
                waker,
                name,
            });
            wake.wake_by_ref();
        }
    }

    fn poll_child(&mut self, node: &Arc<ScopeNode>, key: usize, gen: u64) {
        let Some(entry) = self.children.get_mut(key) else {
            return;
        };
        if entry.wake.gen != gen {
            return; // A stale wake-up of a finished child whose key was reused.
        }
        entry.wake.queued.store(false, Ordering::Release);
        let Entry { child, waker, .. } = entry;
        let mut cx = Context::from_waker(waker);
        let polled = scope::enter(node, || {
            catch_unwind(AssertUnwindSafe(|| child.poll_child(&mut cx)))
        });
        let kind = match polled {
            Ok(Poll::Pending) => return,
            Ok(Poll::Ready(Ok(()))) => {
                self.children.remove(key);
                lock(&self.roster.children).remove(&gen);
                return;
            }
            Ok(Poll::Ready(Err(e))) => Failure::kind_from_error(e, false),
            Err(payload) => {
                child.panicked();
                FailureKind::Panic(PanicPayload::new(payload))
            }
        };
        let Entry { child, name, .. } = self.children.remove(key);
        lock(&self.roster.children).remove(&gen);
        self.drop_catching(child, name.clone());
        self.fail(
            node,
            Failure {
                task_id: None,
                name: Some(name),
                kind,
            },
        );
    }

    /// Records a failure; the first one cancels the node (reason `SiblingFailed`) and drops
    /// the body and every child.
    fn fail(&mut self, node: &Arc<ScopeNode>, failure: Failure) {
        self.failures.push(failure);
        if !self.failed {
            node.cancel(CancelReason::SiblingFailed);
            self.drop_all();
        }
    }

    /// Closes the group and drops the body and every child, recording panics raised by
    /// their destructors.
    fn drop_all(&mut self) {
        self.failed = true;
        let queued = {
            let mut incoming = lock(&self.incoming);
            incoming.accepting = false;
            std::mem::take(&mut incoming.queue)
        };
        if let Some(body) = self.body.take() {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(body))) {
                self.failures.push(Failure {
                    task_id: None,
                    name: None,
                    kind: FailureKind::BodyPanic(PanicPayload::new(payload)),
                });
            }
        }
        for NewChild { child, name, .. } in queued {
            self.drop_catching(child, name);
        }
        lock(&self.roster.children).clear();
        for (_, Entry { child, name, .. }) in std::mem::take(&mut self.children) {
            self.drop_catching(child, name);
        }
    }

    fn drop_catching(&mut self, child: ErasedChild<'_>, name: String) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(child))) {
            self.failures.push(Failure {
                task_id: None,
                name: Some(name),
                kind: FailureKind::Panic(PanicPayload::new(payload)),
            });
        }
    }

    /// Sets `waker` where child wake-ups and spawns find it; marks the poll loop running.
    fn enter_poll(&mut self, waker: &Waker) {
        {
            let mut ready = lock(&self.ready.inner);
            if !ready.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                ready.waker = Some(waker.clone());
            }
        }
        let mut incoming = lock(&self.incoming);
        incoming.in_poll = true;
        if !incoming.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            incoming.waker = Some(waker.clone());
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        lock(&self.incoming).accepting = false;
        if let (Some(node), Some(key)) = (&self.node, self.waiter.take()) {
            node.deregister(key);
        }
    }
}

impl<'env, B, Fut, R> Future for ScopedFuture<'env, B, Fut, R::Value>
where
    B: FnOnce(LocalGroup<'env>) -> Fut,
    Fut: Future<Output = R>,
    R: ChildResult,
{
    type Output = Result<R::Value, ErrorGroup>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(!this.finished, "ScopedFuture polled after completion");
        let node = match &this.node {
            Some(node) => node.clone(),
            None => this.start(),
        };
        this.enter_poll(cx.waker());
        // Woken by our own cancellation (LocalGroup::cancel).
        node.keep_registered(&mut this.waiter, cx.waker());
        let mut budget = POLL_BUDGET;
        while !this.failed {
            // Our own cancellation (LocalGroup::cancel, possibly from a child just polled)
            // drops everything; an enclosing scope's is that scope's to enforce (it drops
            // this future after its grace period), so we run on meanwhile.
            if node.is_cancelled()
                && !matches!(node.reason(), Some(CancelReason::ParentCancelled(_)))
            {
                this.drop_all();
                break;
            }
            this.take_in();
            if budget == 0 {
                break;
            }
            let Some((key, gen)) = this.ready.pop() else {
                break;
            };
            budget -= 1;
            if key == BODY {
                this.poll_body(&node);
            } else {
                this.poll_child(&node, key, gen);
            }
        }

        if this.failed {
            this.finish();
            let failures = std::mem::take(&mut this.failures);
            return Poll::Ready(Err(ErrorGroup::new(failures, node.reason())));
        }
        let done = this.body.is_none() && this.children.is_empty();
        let spawned_meanwhile = {
            let mut incoming = lock(&this.incoming);
            incoming.in_poll = false;
            if done && incoming.queue.is_empty() {
                // Closed under the same lock that spawns take: no child slips in after.
                incoming.accepting = false;
            }
            !incoming.queue.is_empty()
        };
        if done && !spawned_meanwhile {
            this.finish();
            let value = this.value.take().expect("the body finished with a value");
            return Poll::Ready(Ok(value));
        }
        if spawned_meanwhile || !this.ready.is_empty() {
            // Budget spent with work left: yield to the runtime, and come back.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<B, Fut, V> Drop for ScopedFuture<'_, B, Fut, V> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(node) = self.node.clone() {
            node.cancel(CancelReason::ParentCancelled(Arc::new(
                CancelReason::Aborted,
            )));
            if let Some(key) = self.waiter.take() {
                node.deregister(key);
            }
        }
        // The body, then the children, all outside any lock. Panics in their destructors
        // are caught (drop must not unwind twice) and, with no one to report to, dropped.
        self.drop_all();
    }
}
