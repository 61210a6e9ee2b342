//! loom models of the task group protocols, run by `ci/loom.sh`:
//! `RUSTFLAGS="--cfg ringleader_loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=2
//! cargo test -p ringleader-taskgroup --release --lib loom_models`.
//!
//! A task group needs a runtime to spawn its children, and the runtime cannot run under
//! loom, so the models drive the runtime-free parts of the real types, two threads each:
//! - the group: [`GroupInner`]'s live-child count, failures, accepting flag and join
//!   waker, and the real [`Child`] wrapper that each child task runs (polled here with
//!   `block_on` on a model thread, followed by `child_finished`, which is what the task's
//!   done hook calls): join vs completion, vs cancel, vs a late spawn;
//! - the scope tree: [`ScopeNode`] cancellation against waiter registration, through the
//!   real [`cancelled()`] future polled inside [`scope::enter`], and [`CancelScope::run`]
//!   against [`CancelScope::cancel`], and the last shield ending against a dropper waiting
//!   for the shields below a cancelled node.
//!
//! - the borrowing flavour: [`scoped`]'s ready queue and spawn queue, against a child
//!   woken, a child spawned, and the group cancelled, from another thread while the
//!   scope's future polls;
//! - a scope's future polled under one waker and then another (it moved task): the cancel
//!   must wake the current waker, not only the first (this model found that cancel scopes,
//!   `cancelled()` and scoped groups kept the first waker they saw).
//!
//! A lost wake-up shows up as a deadlock, which loom reports; every model also asserts the
//! outcome that must hold under each interleaving.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use loom::future::block_on;
use loom::thread;
use ringleader_runtime::task::CancelReason;

use crate::error::{BoxError, GroupClosed};
use crate::group::{Child, Closed, GroupInner, Policy};
use crate::scope::{self, cancelled, is_cancelled, CancelScope, ScopeNode};
use crate::scoped::{scoped, LocalGroup};

/// Waits for the group the way its future does: set the waker, then try to close.
fn join(group: &GroupInner) -> Closed {
    block_on(std::future::poll_fn(|cx| {
        group.set_waker(cx.waker());
        match group.try_close() {
            Some(closed) => Poll::Ready(closed),
            None => Poll::Pending,
        }
    }))
}

/// Runs one reserved child to its end on the calling thread, then reports the task's
/// completion, as the runtime's done callback does.
fn run_child<F>(group: Arc<GroupInner>, future: F)
where
    F: Future,
    F::Output: crate::group::ChildResult,
{
    let child = Child::new(future, group.clone(), Some("child".into()));
    let _ = block_on(child);
    group.child_finished();
}

fn new_group() -> Arc<GroupInner> {
    GroupInner::new(ScopeNode::new_child(None, false), Policy::FailFast)
}

#[test]
fn group_join_vs_child_completion() {
    loom::model(|| {
        let group = new_group();
        group.reserve().expect("open");
        let g = group.clone();
        let t = thread::spawn(move || run_child(g, async { Ok::<_, BoxError>(1) }));
        let closed = join(&group);
        t.join().unwrap();
        assert!(closed.failures.is_empty() && closed.any_ok && !closed.interrupted);
        assert_eq!(
            group.reserve(),
            Err(GroupClosed),
            "a joined group is closed"
        );
    });
}

#[test]
fn group_cancel_vs_pending_child_registering() {
    // The child never finishes by itself: only the group's cancellation, racing the
    // child's waiter registration on the node, can end it, and then the join must see it.
    loom::model(|| {
        let group = new_group();
        group.reserve().expect("open");
        let g = group.clone();
        let t = thread::spawn(move || run_child(g, std::future::pending::<()>()));
        group.node.cancel(CancelReason::explicit("stop"));
        assert_eq!(group.reserve(), Err(GroupClosed), "cancelled groups refuse");
        let closed = join(&group);
        t.join().unwrap();
        assert!(closed.failures.is_empty() && !closed.any_ok);
        assert!(
            closed.interrupted,
            "the child was stopped by the cancellation"
        );
    });
}

#[test]
fn group_child_failure_vs_explicit_cancel_vs_join() {
    loom::model(|| {
        let group = new_group();
        group.reserve().expect("open");
        let g = group.clone();
        let t = thread::spawn(move || run_child(g, async { Err::<(), BoxError>("boom".into()) }));
        group.node.cancel(CancelReason::explicit("stop"));
        let closed = join(&group);
        t.join().unwrap();
        // Either the child ran and failed (a failure, which the already-cancelled node
        // keeps reason "stop" for, or which cancelled it first with SiblingFailed), or
        // the cancellation dropped it before its first poll: never both, never neither.
        assert_eq!(closed.failures.len() + usize::from(closed.interrupted), 1);
        let reason = group.node.reason().expect("cancelled");
        if closed.failures.is_empty() {
            assert_eq!(reason, CancelReason::explicit("stop"));
        } else {
            assert!(matches!(
                reason,
                CancelReason::SiblingFailed | CancelReason::Explicit(_)
            ));
        }
    });
}

#[test]
fn group_child_success_vs_explicit_cancel_vs_join() {
    loom::model(|| {
        let group = new_group();
        group.reserve().expect("open");
        let g = group.clone();
        let t = thread::spawn(move || run_child(g, async { Ok::<_, BoxError>(()) }));
        group.node.cancel(CancelReason::explicit("stop"));
        let closed = join(&group);
        t.join().unwrap();
        // The child either finished (a success) or was dropped by the cancellation.
        assert!(closed.failures.is_empty());
        assert!(closed.any_ok != closed.interrupted);
    });
}

#[test]
fn late_spawn_vs_group_close() {
    // A sibling spawned while the group closes is either refused or waited for: the
    // close never returns while a child it accepted is still running.
    loom::model(|| {
        let group = new_group();
        let ran = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let (g, r) = (group.clone(), ran.clone());
        let spawner = thread::spawn(move || {
            let Ok(()) = g.reserve() else {
                return false;
            };
            let flag = r.clone();
            run_child(g, async move {
                flag.store(true, crate::loom::Ordering::SeqCst);
            });
            true
        });
        let closed = join(&group);
        let accepted_before_close = ran.load(crate::loom::Ordering::SeqCst);
        let accepted = spawner.join().unwrap();
        assert!(closed.failures.is_empty());
        // Accepted means waited for: the child had run when the join returned.
        assert_eq!(accepted, accepted_before_close);
        assert_eq!(accepted, closed.any_ok);
    });
}

#[test]
fn two_children_finishing_vs_join() {
    // Only the last of the two decrements wakes the join; whichever order they finish in,
    // the join returns with both counted, both successes seen and the group closed.
    loom::model(|| {
        let group = new_group();
        group.reserve().expect("open");
        group.reserve().expect("open");
        let (g1, g2) = (group.clone(), group.clone());
        let a = thread::spawn(move || run_child(g1, async { Ok::<_, BoxError>(1) }));
        let b = thread::spawn(move || run_child(g2, async { Ok::<_, BoxError>(2) }));
        let closed = join(&group);
        a.join().unwrap();
        b.join().unwrap();
        assert!(closed.failures.is_empty() && closed.any_ok && !closed.interrupted);
        assert_eq!(group.reserve(), Err(GroupClosed));
    });
}

#[test]
fn abandoned_group_adopted_vs_child_finishing() {
    // An inner group dropped inside an outer one hands its live child to the outer group,
    // racing that child's completion: the outer join returns only once the child is done,
    // and no count goes below zero (debug assertions check every decrement).
    loom::model(|| {
        let outer = new_group();
        let inner = GroupInner::new(
            ScopeNode::new_child(Some(&outer.node), false),
            Policy::FailFast,
        );
        inner.reserve().expect("open");
        let done = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let (g, d) = (inner.clone(), done.clone());
        let t = thread::spawn(move || {
            run_child(g, async move {
                d.store(true, crate::loom::Ordering::SeqCst);
                Ok::<_, BoxError>(())
            })
        });
        inner.abandon(Some(outer.clone()));
        assert_eq!(inner.reserve(), Err(GroupClosed), "a dropped group refuses");
        let closed = join(&outer);
        assert!(closed.failures.is_empty());
        assert!(
            done.load(crate::loom::Ordering::SeqCst),
            "the outer group waited for the adopted child"
        );
        t.join().unwrap();
    });
}

/// Polls `future` inside `node`, as a group child or a scope's future is.
struct InScope<F> {
    node: Arc<ScopeNode>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InScope<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        scope::enter(&this.node, || this.future.as_mut().poll(cx))
    }
}

#[test]
fn scope_cancel_vs_task_awaiting_cancelled() {
    loom::model(|| {
        let root = ScopeNode::new_child(None, false);
        let inner = ScopeNode::new_child(Some(&root), false);
        let observer = {
            let node = inner.clone();
            thread::spawn(move || {
                block_on(InScope {
                    node,
                    future: Box::pin(async {
                        // A waiter that registers and leaves must not disturb the other.
                        let mut early = cancelled();
                        let _ = std::future::poll_fn(|cx| {
                            let _ = Pin::new(&mut early).poll(cx);
                            Poll::Ready(())
                        })
                        .await;
                        drop(early);
                        let reason = cancelled().await;
                        (reason, is_cancelled())
                    }),
                })
            })
        };
        root.cancel(CancelReason::explicit("stop"));
        let (reason, seen) = observer.join().unwrap();
        assert!(seen, "is_cancelled agrees with cancelled()");
        assert_eq!(
            reason,
            CancelReason::ParentCancelled(Arc::new(CancelReason::explicit("stop")))
        );
        assert_eq!(inner.reason(), Some(reason));
    });
}

#[test]
fn cancel_scope_cancel_vs_run_start() {
    // `cancel` before the scope's node exists parks the reason for `run` to apply at
    // entry; racing the entry, it must never be lost (the future here never finishes, so
    // a lost cancel deadlocks).
    loom::model(|| {
        let scope = CancelScope::new();
        let s = scope.clone();
        let runner = thread::spawn(move || block_on(s.run(std::future::pending::<()>())));
        scope.cancel(CancelReason::explicit("stop"));
        assert_eq!(runner.join().unwrap(), None);
        assert!(scope.cancel_called() && scope.cancelled_caught());
        assert_eq!(scope.cancel_reason(), Some(CancelReason::explicit("stop")));
    });
}

#[test]
fn shield_end_vs_dropper_waiting_for_shields() {
    // A cancelled group's dropper waits for the shields running below it; the last shield
    // ending must wake it (the decrement and the waiter list meet under the node's lock).
    loom::model(|| {
        let root = ScopeNode::new_child(None, false);
        root.shield_started();
        root.cancel(CancelReason::explicit("stop"));
        let r = root.clone();
        let shield = thread::spawn(move || r.shield_ended());
        let mut grace_timer = None;
        block_on(std::future::poll_fn(|cx| {
            root.poll_drop(&mut grace_timer, cx)
        }));
        shield.join().unwrap();
    });
}

/// Pending until `flag` is set; publishes its waker for whoever sets it.
struct WaitFlag {
    flag: Arc<crate::loom::AtomicBool>,
    waker: Arc<crate::loom::Mutex<Option<std::task::Waker>>>,
}

impl WaitFlag {
    fn new() -> WaitFlag {
        WaitFlag {
            flag: Arc::new(crate::loom::AtomicBool::new(false)),
            waker: Arc::new(crate::loom::Mutex::new(None)),
        }
    }
    fn setter(&self) -> impl FnOnce() + Send + 'static {
        let (flag, waker) = (self.flag.clone(), self.waker.clone());
        move || {
            flag.store(true, crate::loom::Ordering::SeqCst);
            if let Some(w) = crate::loom::lock(&waker).take() {
                w.wake();
            }
        }
    }
}

impl Future for WaitFlag {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.flag.load(crate::loom::Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *crate::loom::lock(&self.waker) = Some(cx.waker().clone());
        if self.flag.load(crate::loom::Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[test]
fn scoped_child_woken_from_another_thread_vs_poll_end() {
    // The child's waker queues it and wakes the scope's task only when the ready queue was
    // empty; the scope's poll ends by checking the queue. No interleaving may lose the wake.
    loom::model(|| {
        let wait = WaitFlag::new();
        let waker = thread::spawn(wait.setter());
        let out = block_on(scoped(|s| async move {
            s.spawn(wait)?;
            Ok::<_, BoxError>(7)
        }));
        waker.join().unwrap();
        assert_eq!(out.unwrap(), 7);
    });
}

#[test]
fn scoped_spawn_from_another_thread_vs_poll_end() {
    // A spawn while the scope's future polls is taken in before that poll returns (no
    // wake needed); one after it wakes the scope. Either way the child runs and the body,
    // which waits for it, finishes.
    loom::model(|| {
        let wait = WaitFlag::new();
        let set = wait.setter();
        let shared: Arc<crate::loom::Mutex<Option<LocalGroup<'static>>>> =
            Arc::new(crate::loom::Mutex::new(None));
        let s2 = shared.clone();
        let mut fut = scoped(move |s| {
            *crate::loom::lock(&s2) = Some(s);
            async move {
                wait.await;
                Ok::<_, BoxError>(())
            }
        });
        // One poll: the body starts, hands the group out, and waits.
        block_on(std::future::poll_fn(|cx| {
            assert!(Pin::new(&mut fut).poll(cx).is_pending());
            Poll::Ready(())
        }));
        let group = crate::loom::lock(&shared).take().expect("handed out");
        let spawner = thread::spawn(move || {
            group
                .spawn(async move {
                    set();
                })
                .map(|_| ())
        });
        assert!(block_on(fut).is_ok());
        assert!(spawner.join().unwrap().is_ok(), "the scope was open");
    });
}

#[test]
fn scoped_cancel_from_another_thread_vs_poll() {
    // `LocalGroup::cancel` wakes the scope through its node; the scope's future is polled
    // here by two different `block_on`s (two wakers), so a waiter registered once with the
    // first waker would never wake the second.
    loom::model(|| {
        let shared: Arc<crate::loom::Mutex<Option<LocalGroup<'static>>>> =
            Arc::new(crate::loom::Mutex::new(None));
        let s2 = shared.clone();
        let mut fut = scoped(move |s| {
            *crate::loom::lock(&s2) = Some(s);
            async move {
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(())
            }
        });
        block_on(std::future::poll_fn(|cx| {
            assert!(Pin::new(&mut fut).poll(cx).is_pending());
            Poll::Ready(())
        }));
        let group = crate::loom::lock(&shared).take().expect("handed out");
        let canceller = thread::spawn(move || group.cancel(CancelReason::explicit("stop")));
        let err = block_on(fut).unwrap_err();
        canceller.join().unwrap();
        assert!(err.is_cancelled());
        assert_eq!(err.cancel_reason(), Some(&CancelReason::explicit("stop")));
    });
}

#[test]
fn cancel_scope_polled_by_two_wakers_vs_cancel() {
    // A scope's future (and the `cancelled()` inside it) polled first under one waker,
    // then under another (moved to another task): the cancel must wake the current one.
    loom::model(|| {
        let scope = CancelScope::new();
        let mut fut = Box::pin(scope.run(async {
            cancelled().await;
            std::future::pending::<()>().await;
        }));
        block_on(std::future::poll_fn(|cx| {
            assert!(fut.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        }));
        let s = scope.clone();
        let canceller = thread::spawn(move || s.cancel(CancelReason::explicit("stop")));
        assert_eq!(block_on(fut), None);
        canceller.join().unwrap();
        assert!(scope.cancelled_caught());
    });
}
