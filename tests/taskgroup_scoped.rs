//! The borrowing flavour of task groups (`taskgroup::scoped`): children that borrow from
//! the caller's stack, run concurrently inside one task, fail fast, and are polled fairly.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ringleader::runtime::{Builder, Runtime};
use ringleader::task::{yield_now, CancelReason};
use ringleader::taskgroup::{
    cancelled, scoped, task_group, timeout, BoxError, ChildError, FailureKind, GroupClosed,
    GroupConfig, LocalGroup, POLL_BUDGET,
};
use ringleader::time::sleep;
use support::{paused, Boom, DropCounter};

fn current_thread() -> Runtime {
    Builder::new_current_thread().build().unwrap()
}

#[test]
fn children_borrow_from_the_callers_stack_including_disjoint_mutable_slots() {
    current_thread().block_on(async {
        let inputs = vec![3usize, 1, 4, 1, 5];
        let mut squares = vec![0usize; inputs.len()];
        let total = AtomicUsize::new(0);
        let out = scoped(|s| {
            let (inputs, total) = (&inputs, &total);
            let slots: Vec<&mut usize> = squares.iter_mut().collect();
            async move {
                for (x, slot) in inputs.iter().zip(slots) {
                    s.spawn(async move {
                        yield_now().await;
                        *slot = x * x;
                        total.fetch_add(*x, Ordering::SeqCst);
                    })?;
                }
                Ok::<_, BoxError>("body done")
            }
        })
        .await
        .unwrap();
        assert_eq!(out, "body done");
        assert_eq!(squares, [9, 1, 16, 1, 25]);
        assert_eq!(total.load(Ordering::SeqCst), 14);
    });
}

#[test]
fn handles_return_child_values_and_children_can_spawn_siblings() {
    current_thread().block_on(async {
        let base = 40;
        let sum = scoped(|s: LocalGroup<'_>| {
            let base = &base;
            async move {
                let inner = s.clone();
                let a = s.spawn_named("a", async move {
                    // A child spawns a sibling through its own clone of the group.
                    let b = inner.spawn(async move { Ok::<_, BoxError>(*base) })?;
                    Ok::<_, BoxError>(b.await? + 1)
                })?;
                assert_eq!(a.name(), "a");
                let v = a.await?;
                Ok::<_, BoxError>(v + 1)
            }
        })
        .await
        .unwrap();
        assert_eq!(sum, 42);
    });
}

#[test]
fn the_scope_waits_for_children_that_outlive_the_body() {
    paused().block_on(async {
        let finished = AtomicUsize::new(0);
        scoped(|s| {
            let finished = &finished;
            async move {
                for i in 0..5u64 {
                    s.spawn(async move {
                        sleep(Duration::from_millis(10 * i)).await;
                        finished.fetch_add(1, Ordering::SeqCst);
                    })?;
                }
                Ok::<_, BoxError>(())
            }
        })
        .await
        .unwrap();
        assert_eq!(finished.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn first_child_error_drops_the_siblings_and_the_body_and_is_reported() {
    paused().block_on(async {
        let dropped = DropCounter::new();
        let body_reached_end = AtomicBool::new(false);
        let sibling_outcome = Mutex::new(None);
        let err = scoped(|s| {
            let (dropped, reached, outcome) = (&dropped, &body_reached_end, &sibling_outcome);
            async move {
                let token = dropped.token();
                let sibling = s.spawn_named("sleeper", async move {
                    let _token = token;
                    sleep(Duration::from_secs(3600)).await;
                })?;
                let watcher = s.spawn(async move {
                    *outcome.lock().unwrap() = Some(sibling.await);
                });
                drop(watcher);
                s.spawn_named("failing", async {
                    sleep(Duration::from_millis(1)).await;
                    Err::<(), _>(Boom("child failed"))
                })?;
                let _body_token = dropped.token();
                sleep(Duration::from_secs(3600)).await;
                reached.store(true, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.len(), 1);
        let failure = &err.failures()[0];
        assert_eq!(failure.name.as_deref(), Some("failing"));
        assert!(failure
            .error()
            .unwrap()
            .to_string()
            .contains("child failed"));
        assert_eq!(err.cancel_reason(), Some(&CancelReason::SiblingFailed));
        assert!(!body_reached_end.load(Ordering::SeqCst));
        assert_eq!(dropped.count(), 2, "the sleeper and the body were dropped");
        // The watcher was dropped too, before it could see the sleeper's outcome.
        assert!(sibling_outcome.lock().unwrap().is_none());
    });
}

#[test]
fn a_dropped_childs_handle_reports_the_cancellation() {
    paused().block_on(async {
        let seen = Mutex::new(None);
        let err = scoped(|s| {
            let seen = &seen;
            async move {
                let sleeper = s.spawn(sleep(Duration::from_secs(3600)))?;
                s.spawn(async {
                    sleep(Duration::from_millis(1)).await;
                    Err::<(), _>(Boom("x"))
                })?;
                // Not awaited inside the scope: the body is dropped with it.
                *seen.lock().unwrap() = Some(sleeper);
                Ok::<_, BoxError>(())
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.len(), 1);
        let handle = seen.lock().unwrap().take().unwrap();
        assert!(handle.is_finished());
        assert_eq!(
            handle.await,
            Err(ChildError::Cancelled(CancelReason::SiblingFailed))
        );
    });
}

#[test]
fn a_child_panic_is_caught_and_reported_with_its_payload() {
    current_thread().block_on(async {
        let err = scoped(|s| async move {
            s.spawn_named("panicky", async {
                yield_now().await;
                if true {
                    panic!("child exploded");
                }
            })?;
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.len(), 1);
        let failure = &err.failures()[0];
        assert_eq!(failure.name.as_deref(), Some("panicky"));
        match &failure.kind {
            FailureKind::Panic(p) => assert_eq!(p.message().as_deref(), Some("child exploded")),
            other => panic!("expected a panic, got {other:?}"),
        }
    });
}

#[test]
fn a_body_error_drops_the_children() {
    current_thread().block_on(async {
        let dropped = DropCounter::new();
        let err = scoped(|s| {
            let dropped = &dropped;
            async move {
                let token = dropped.token();
                s.spawn(async move {
                    let _token = token;
                    std::future::pending::<()>().await;
                })?;
                yield_now().await;
                Err::<(), BoxError>("body failed".into())
            }
        })
        .await
        .unwrap_err();
        assert_eq!(dropped.count(), 1);
        assert!(matches!(err.failures()[0].kind, FailureKind::Body(_)));
    });
}

#[test]
fn cancel_drops_everything_and_returns_a_cancelled_group() {
    current_thread().block_on(async {
        let dropped = DropCounter::new();
        let err = scoped(|s| {
            let dropped = &dropped;
            async move {
                let token = dropped.token();
                s.spawn(async move {
                    let _token = token;
                    std::future::pending::<()>().await;
                })?;
                let canceller = s.clone();
                s.spawn(async move {
                    yield_now().await;
                    canceller.cancel(CancelReason::explicit("enough"));
                })?;
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(())
            }
        })
        .await
        .unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(err.cancel_reason(), Some(&CancelReason::explicit("enough")));
        assert_eq!(dropped.count(), 1);
    });
}

#[test]
fn spawning_after_the_scope_finished_is_refused() {
    current_thread().block_on(async {
        let kept: Arc<Mutex<Option<LocalGroup<'static>>>> = Arc::default();
        let k = kept.clone();
        scoped(|s| async move {
            *k.lock().unwrap() = Some(s);
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
        let group = kept.lock().unwrap().take().unwrap();
        assert_eq!(group.spawn(async {}).unwrap_err(), GroupClosed);
    });
}

#[test]
fn dropping_the_scoped_future_drops_its_children() {
    paused().block_on(async {
        let dropped = DropCounter::new();
        let out = timeout(
            Duration::from_millis(5),
            scoped(|s| {
                let dropped = &dropped;
                async move {
                    for _ in 0..3 {
                        let token = dropped.token();
                        s.spawn(async move {
                            let _token = token;
                            std::future::pending::<()>().await;
                        })?;
                    }
                    std::future::pending::<()>().await;
                    Ok::<_, BoxError>(())
                }
            }),
        )
        .await;
        assert!(out.is_err(), "the timeout fired");
        assert_eq!(dropped.count(), 3);
    });
}

#[test]
fn the_scoped_future_is_send_and_runs_inside_a_pool_task() {
    let rt = support::rt2();
    let total = rt.block_on(async {
        ringleader::spawn(async {
            let data: Vec<u64> = (1..=100).collect();
            let sum = AtomicUsize::new(0);
            scoped(|s| {
                let (data, sum) = (&data, &sum);
                async move {
                    for chunk in data.chunks(10) {
                        s.spawn(async move {
                            yield_now().await;
                            let part: u64 = chunk.iter().sum();
                            sum.fetch_add(part as usize, Ordering::SeqCst);
                        })?;
                    }
                    Ok::<_, BoxError>(())
                }
            })
            .await
            .unwrap();
            sum.into_inner()
        })
        .await
        .unwrap()
    });
    assert_eq!(total, 5050);
}

#[test]
fn children_see_an_enclosing_groups_cancellation_and_can_clean_up() {
    paused().block_on(async {
        let reason = Arc::new(Mutex::new(None));
        let r = reason.clone();
        let err = GroupConfig::new()
            .grace_period(Duration::from_secs(1))
            .run(|tg| async move {
                let local = String::from("borrowed");
                let r2 = r.clone();
                tg.spawn(async move {
                    let local = local;
                    scoped(|s| {
                        let local = &local;
                        async move {
                            s.spawn(async move {
                                let why = cancelled().await;
                                *r2.lock().unwrap() = Some(format!("{local}: {why}"));
                            })?;
                            Ok::<_, BoxError>(())
                        }
                    })
                    .await
                })?;
                sleep(Duration::from_millis(1)).await;
                tg.cancel(CancelReason::explicit("stop"));
                Ok::<_, BoxError>(())
            })
            .await;
        // The child finished its cleanup within the grace period.
        assert_eq!(
            reason.lock().unwrap().as_deref(),
            Some("borrowed: enclosing scope cancelled (cancelled: stop)")
        );
        // Everything finished by itself, so the group gives the body's value.
        assert!(err.is_ok(), "{err:?}");
    });
}

/// Wakes itself on every poll, forever or until `stop` is set: the shape that starved
/// `FuturesUnordered`'s siblings and its task (futures-rs #2387).
struct Greedy<'a> {
    polls: &'a AtomicUsize,
    stop: &'a AtomicBool,
    limit: usize,
}

impl Future for Greedy<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.stop.load(Ordering::SeqCst) || n >= self.limit {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn a_child_that_always_wakes_itself_starves_neither_its_siblings_nor_the_runtime() {
    // One thread: if the scope never returned Pending, no other task could run. The greedy
    // child gives up after `LIMIT` polls so that an unfair scope fails the assertions below
    // instead of hanging.
    const LIMIT: usize = 100_000;
    current_thread().block_on(async {
        let polls = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let seen_by_sibling = AtomicUsize::new(usize::MAX);
        let seen_by_task = AtomicUsize::new(usize::MAX);
        let other_task_ran = Arc::new(AtomicBool::new(false));
        let flag = other_task_ran.clone();
        let other = ringleader::spawn(async move { flag.store(true, Ordering::SeqCst) });
        scoped(|s| {
            let (polls, stop) = (&polls, &stop);
            let (seen_by_sibling, seen_by_task) = (&seen_by_sibling, &seen_by_task);
            async move {
                s.spawn(Greedy {
                    polls,
                    stop,
                    limit: LIMIT,
                })?;
                let sibling = s.spawn(async move {
                    for _ in 0..10 {
                        yield_now().await;
                    }
                    seen_by_sibling.store(polls.load(Ordering::SeqCst), Ordering::SeqCst);
                })?;
                let waiter = s.spawn(async move {
                    // Another task of the runtime: it runs only when this task yields.
                    other.await.unwrap();
                    seen_by_task.store(polls.load(Ordering::SeqCst), Ordering::SeqCst);
                })?;
                sibling.await?;
                waiter.await?;
                stop.store(true, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        })
        .await
        .unwrap();
        assert!(other_task_ran.load(Ordering::SeqCst));
        let by_sibling = seen_by_sibling.load(Ordering::SeqCst);
        let by_task = seen_by_task.load(Ordering::SeqCst);
        // Fair: the sibling needed 11 turns, each at most one greedy poll apart; the
        // runtime got the thread back after at most one budget of polls.
        assert!(
            by_sibling <= 20,
            "greedy polled {by_sibling} times before the sibling"
        );
        assert!(
            by_task <= 2 * POLL_BUDGET,
            "greedy polled {by_task} times before the runtime ran another task"
        );
        assert!(polls.load(Ordering::SeqCst) < LIMIT);
    });
}

/// Pending until woken through the waker it publishes; counts its polls.
struct Parked<'a> {
    polls: &'a AtomicUsize,
    waker: &'a Mutex<Option<Waker>>,
    woken: &'a AtomicBool,
}

impl Future for Parked<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.woken.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn only_woken_children_are_polled() {
    current_thread().block_on(async {
        let polls = AtomicUsize::new(0);
        let waker = Mutex::new(None);
        let woken = AtomicBool::new(false);
        scoped(|s| {
            let (polls, waker, woken) = (&polls, &waker, &woken);
            async move {
                s.spawn(Parked {
                    polls,
                    waker,
                    woken,
                })?;
                // A busy sibling: 200 turns, each a wake-up of its own.
                s.spawn(async move {
                    for _ in 0..200 {
                        yield_now().await;
                    }
                    woken.store(true, Ordering::SeqCst);
                    waker.lock().unwrap().take().unwrap().wake();
                })?;
                Ok::<_, BoxError>(())
            }
        })
        .await
        .unwrap();
        // Its first poll, and the one after its wake-up: none for the sibling's 200.
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn scoped_groups_nest_inside_task_groups_and_report_through_them() {
    current_thread().block_on(async {
        let err = task_group(|tg| async move {
            tg.spawn_named("outer child", async {
                let words = ["a", "b"];
                scoped(|s| {
                    let words = &words;
                    async move {
                        s.spawn_named("inner", async move {
                            Err::<(), _>(Boom(if words.len() == 2 {
                                "inner failed"
                            } else {
                                "?"
                            }))
                        })?;
                        Ok::<_, BoxError>(())
                    }
                })
                .await
            })?;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        let leaves: Vec<_> = err.iter_flat().collect();
        assert_eq!(leaves.len(), 1);
        assert_eq!(leaves[0].name.as_deref(), Some("inner"));
        assert!(
            err.to_string()
                .contains("child (inner): error: inner failed"),
            "{err}"
        );
    });
}

/// Counts one child future's life: created when built, dropped once.
struct Life<'a>(&'a AtomicUsize);
impl Drop for Life<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn every_child_future_is_dropped_exactly_once_under_random_failures_and_panics() {
    // Each scope's children yield a few times, then succeed, fail, panic, or cancel the
    // scope and wait forever; some spawn a sibling first. After each scope returns, every child future it ever
    // accepted has been dropped exactly once (completed ones included).
    let scopes = support::scaled(20_000);
    current_thread().block_on(async {
        let mut seed = 0x5eed_u64;
        let (mut failed, mut succeeded) = (0, 0);
        for _ in 0..scopes {
            let created = AtomicUsize::new(0);
            let dropped = AtomicUsize::new(0);
            let children = 1 + splitmix(&mut seed) % 20;
            let plan: Vec<u64> = (0..children).map(|_| splitmix(&mut seed)).collect();
            let out = scoped(|s| {
                let (created, dropped, plan) = (&created, &dropped, &plan);
                async move {
                    for &r in plan {
                        let life = {
                            created.fetch_add(1, Ordering::SeqCst);
                            Life(dropped)
                        };
                        let sibling = s.clone();
                        s.spawn(async move {
                            let _life = life;
                            for _ in 0..r % 4 {
                                yield_now().await;
                            }
                            if r % 5 == 0 {
                                created.fetch_add(1, Ordering::SeqCst);
                                let life = Life(dropped);
                                // May be refused if the scope already failed: then the
                                // future is dropped at once, which the count sees too.
                                let _ = sibling.spawn(async move {
                                    let _life = life;
                                    yield_now().await;
                                });
                            }
                            match (r >> 8) % 50 {
                                0 => Err(Boom("random failure")),
                                1 => panic!("random panic"),
                                2 => {
                                    sibling.cancel(CancelReason::explicit("random cancel"));
                                    std::future::pending().await
                                }
                                _ => Ok(()),
                            }
                        })?;
                    }
                    Ok::<_, BoxError>(())
                }
            })
            .await;
            match out {
                Ok(()) => succeeded += 1,
                Err(_) => failed += 1,
            }
            assert_eq!(
                created.load(Ordering::SeqCst),
                dropped.load(Ordering::SeqCst),
                "a child future leaked or was dropped twice"
            );
        }
        assert!(
            succeeded > 0 && failed > 0,
            "{succeeded} ok, {failed} failed"
        );
    });
}
