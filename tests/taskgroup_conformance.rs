//! Task groups and cancel scopes against the documented behaviour of asyncio's TaskGroup
//! and timeout() and of Trio's nurseries and cancel scopes. Each test names the behaviour.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringleader::task::CancelReason;
use ringleader::taskgroup::{
    cancelled, is_cancelled, move_on_after, shield, task_group, timeout, BoxError, CancelScope,
    ChildError, Elapsed, FailureKind, GroupConfig, Policy,
};
use ringleader::time::{sleep, Instant};
use support::{paused, Boom, DropCounter};

fn rt() -> ringleader::runtime::Runtime {
    support::rt2()
}

fn panics(msg: &'static str) {
    panic!("{msg}")
}

#[test]
fn group_waits_for_every_child_before_returning() {
    rt().block_on(async {
        let finished = Arc::new(AtomicUsize::new(0));
        let f = finished.clone();
        let out = task_group(|tg| async move {
            for i in 0..50u64 {
                let f = f.clone();
                tg.spawn(async move {
                    sleep(Duration::from_millis(i % 5)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                })?;
            }
            Ok::<_, BoxError>("body done")
        })
        .await
        .unwrap();
        assert_eq!(out, "body done");
        assert_eq!(finished.load(Ordering::SeqCst), 50);
    });
}

#[test]
fn first_child_failure_cancels_siblings_and_body_and_is_reported() {
    paused().block_on(async {
        let sibling_dropped = DropCounter::new();
        let body_reached_end = Arc::new(AtomicBool::new(false));
        let (token, reached) = (sibling_dropped.token(), body_reached_end.clone());
        let err = task_group(|tg| async move {
            tg.spawn(async move {
                let _t = token;
                sleep(Duration::from_secs(3600)).await;
            })?;
            tg.spawn_named("failing", async {
                sleep(Duration::from_millis(1)).await;
                Err::<(), _>(Boom("child failed"))
            })?;
            sleep(Duration::from_secs(3600)).await;
            reached.store(true, Ordering::SeqCst);
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.len(), 1, "{err}");
        let failure = &err.failures()[0];
        assert_eq!(failure.name.as_deref(), Some("failing"));
        assert!(matches!(failure.kind, FailureKind::Error(_)));
        assert_eq!(sibling_dropped.count(), 1);
        assert!(!body_reached_end.load(Ordering::SeqCst));
    });
}

#[test]
fn every_failure_is_collected_not_only_the_first() {
    rt().block_on(async {
        // Both children fail in the same instant (before either can cancel the other).
        let gate = Arc::new(std::sync::Barrier::new(2));
        let err = task_group(|tg| {
            let gate = gate.clone();
            async move {
                for name in ["a", "b"] {
                    let gate = gate.clone();
                    tg.spawn_named(name, async move {
                        gate.wait();
                        Err::<(), _>(Boom(name))
                    })?;
                }
                Ok::<_, BoxError>(())
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.len(), 2, "{err}");
        let text = err.to_string();
        assert!(text.contains("a") && text.contains("b"));
    });
}

#[test]
fn a_panicking_child_is_a_failure_with_its_payload() {
    rt().block_on(async {
        let err = task_group(|tg| async move {
            tg.spawn(async { panics("child panic") })?;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert!(err.failures()[0].is_panic());
        assert!(err.to_string().contains("child panic"));
        let failure = err.into_failures().pop().unwrap();
        let resumed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| failure.resume_panic()));
        let payload = resumed.unwrap_err();
        assert_eq!(*payload.downcast::<String>().unwrap(), "child panic");
    });
}

#[test]
fn body_error_cancels_children_and_is_in_the_group() {
    paused().block_on(async {
        let child_dropped = DropCounter::new();
        let token = child_dropped.token();
        let err = task_group(|tg| async move {
            tg.spawn(async move {
                let _t = token;
                sleep(Duration::from_secs(3600)).await;
            })?;
            Err::<(), BoxError>("body failed".into())
        })
        .await
        .unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(matches!(err.failures()[0].kind, FailureKind::Body(_)));
        assert_eq!(child_dropped.count(), 1);
    });
}

#[test]
fn a_group_always_reports_a_group_even_of_one() {
    rt().block_on(async {
        let err = task_group(|tg| async move {
            tg.spawn(async { Err::<(), _>(Boom("only")) })?;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(!err.is_cancelled());
    });
}

#[test]
fn a_closed_group_refuses_new_children() {
    rt().block_on(async {
        let saved = Arc::new(Mutex::new(None));
        let s = saved.clone();
        task_group(|tg| async move {
            *s.lock().unwrap() = Some(tg.clone());
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
        let tg = saved.lock().unwrap().take().unwrap();
        assert!(tg.spawn(async {}).is_err());
    });
}

#[test]
fn a_cancelled_group_refuses_new_children() {
    paused().block_on(async {
        let err = task_group(|tg| async move {
            tg.spawn(sleep(Duration::from_secs(3600)))?;
            tg.cancel(CancelReason::explicit("stop"));
            assert!(tg.spawn(async {}).is_err());
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(err.cancel_reason(), Some(&CancelReason::explicit("stop")));
    });
}

#[test]
fn a_cancel_that_interrupts_nothing_leaves_the_result_alone() {
    // Trio: cancelling a scope whose code then finishes without hitting a checkpoint does
    // not count as caught; the body's value comes back.
    rt().block_on(async {
        let out = task_group(|tg| async move {
            tg.cancel(CancelReason::explicit("too late"));
            Ok::<_, BoxError>(5)
        })
        .await
        .unwrap();
        assert_eq!(out, 5);
    });
}

#[test]
fn children_can_spawn_siblings_while_the_group_is_open() {
    rt().block_on(async {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        task_group(|tg| async move {
            let tg2 = tg.clone();
            tg.spawn(async move {
                for _ in 0..10 {
                    let c = c.clone();
                    tg2.spawn(async move {
                        c.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
            })?;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 10);
    });
}

#[test]
fn cancelled_resolves_inside_children_during_the_grace_period() {
    paused().block_on(async {
        let cleaned = Arc::new(Mutex::new(None));
        let c = cleaned.clone();
        // The child handles the cancellation itself and finishes within the grace period,
        // and the body finishes too: nothing was interrupted, so the group succeeds.
        GroupConfig::new()
            .grace_period(Duration::from_secs(1))
            .run(|tg| async move {
                tg.spawn(async move {
                    assert!(!is_cancelled());
                    let reason = cancelled().await;
                    assert!(is_cancelled());
                    sleep(Duration::from_millis(100)).await; // async cleanup
                    *c.lock().unwrap() = Some(reason);
                })?;
                sleep(Duration::from_millis(5)).await;
                tg.cancel(CancelReason::explicit("shutting down"));
                Ok::<_, BoxError>(())
            })
            .await
            .unwrap();
        assert_eq!(
            cleaned.lock().unwrap().clone(),
            Some(CancelReason::explicit("shutting down"))
        );
    });
}

#[test]
fn after_the_grace_period_uncooperative_children_are_dropped() {
    paused().block_on(async {
        let dropped = DropCounter::new();
        let token = dropped.token();
        let started = Instant::now();
        let err = GroupConfig::new()
            .grace_period(Duration::from_secs(2))
            .run(|tg| async move {
                tg.spawn(async move {
                    let _t = token;
                    // Ignores cancellation.
                    sleep(Duration::from_secs(3600)).await;
                })?;
                tg.cancel(CancelReason::explicit("go"));
                Ok::<_, BoxError>(())
            })
            .await
            .unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(dropped.count(), 1);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_secs(3600),
            "{waited:?}"
        );
    });
}

#[test]
fn group_timeout_cancels_with_reason_deadline() {
    paused().block_on(async {
        let err = GroupConfig::new()
            .timeout(Duration::from_secs(10))
            .run(|tg| async move {
                tg.spawn(sleep(Duration::from_secs(3600)))?;
                Ok::<_, BoxError>(())
            })
            .await
            .unwrap_err();
        assert_eq!(err.cancel_reason(), Some(&CancelReason::Deadline));
    });
}

async fn inner_group() -> Result<(), ringleader::taskgroup::ErrorGroup> {
    task_group(|inner| async move {
        inner.spawn(async { Err::<(), _>(Boom("deep")) })?;
        Ok::<_, BoxError>(())
    })
    .await
}

#[test]
fn nested_group_failure_appears_nested_in_the_outer_group() {
    rt().block_on(async {
        let err = task_group(|outer| async move {
            outer.spawn(inner_group())?;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert!(
            matches!(err.failures()[0].kind, FailureKind::Group(_)),
            "{err}"
        );
        let flat: Vec<_> = err.iter_flat().collect();
        assert_eq!(flat.len(), 1);
        assert!(err.to_string().contains("deep"), "{err}");
    });
}

#[test]
fn split_separates_failures_by_type() {
    rt().block_on(async {
        let err = GroupConfig::new()
            .policy(Policy::Supervise)
            .run(|tg| async move {
                tg.spawn(async { Err::<(), _>(Boom("typed")) })?;
                tg.spawn(async { Err::<(), BoxError>("untyped".into()) })?;
                tg.spawn(async { panics("p") })?;
                Ok::<_, BoxError>(())
            })
            .await
            .unwrap_err();
        assert_eq!(err.len(), 3);
        let (booms, rest) = err.split_by_type::<Boom>();
        assert_eq!(booms.unwrap().len(), 1);
        assert_eq!(rest.unwrap().len(), 2);
    });
}

#[test]
fn supervise_policy_lets_siblings_finish() {
    rt().block_on(async {
        let finished = Arc::new(AtomicUsize::new(0));
        let f = finished.clone();
        let err = GroupConfig::new()
            .policy(Policy::Supervise)
            .run(|tg| async move {
                tg.spawn(async { Err::<(), _>(Boom("one")) })?;
                for _ in 0..5 {
                    let f = f.clone();
                    tg.spawn(async move {
                        sleep(Duration::from_millis(5)).await;
                        f.fetch_add(1, Ordering::SeqCst);
                    })?;
                }
                Ok::<_, BoxError>(())
            })
            .await
            .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(finished.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn child_handles_give_values_and_cancellation() {
    paused().block_on(async {
        task_group(|tg| async move {
            let v = tg.spawn(async { Ok::<_, BoxError>(7) })?;
            let slow = tg.spawn(sleep(Duration::from_secs(3600)))?;
            assert_eq!(v.await?, 7);
            slow.abort();
            assert!(matches!(
                slow.await,
                Err(ChildError::Cancelled(CancelReason::Aborted))
            ));
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
    });
}

#[test]
fn start_returns_once_the_child_signals_ready() {
    rt().block_on(async {
        task_group(|tg| async move {
            let port = tg
                .start(|ready| async move {
                    sleep(Duration::from_millis(2)).await;
                    ready.started(8080u16);
                    sleep(Duration::from_millis(2)).await;
                })
                .await?;
            assert_eq!(port, 8080);
            let never = tg
                .start(|_ready: ringleader::taskgroup::Ready<u8>| async {})
                .await;
            assert_eq!(never, Err(ChildError::NeverStarted));
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
    });
}

#[test]
fn dropping_a_group_future_cancels_its_children() {
    let rt = rt();
    let dropped = DropCounter::new();
    let token = dropped.token();
    rt.block_on(async move {
        let group = task_group(|tg| async move {
            tg.spawn(async move {
                let _t = token;
                std::future::pending::<()>().await
            })?;
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(())
        });
        // The group's owner gives up after a moment: the group must take its child along.
        let out = timeout(Duration::from_millis(20), group).await;
        assert!(out.is_err());
    });
    let start = std::time::Instant::now();
    while dropped.count() == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(dropped.count(), 1);
}

#[test]
fn a_dropped_group_aborts_its_live_child_after_hundreds_finished_before_it() {
    // The group prunes finished children from its list as it grows; the live one must
    // still be found. The grace period is an hour, so only the drop's abort stops it soon.
    let rt = rt();
    let dropped = DropCounter::new();
    let token = dropped.token();
    rt.block_on(async move {
        let ready = Arc::new(AtomicBool::new(false));
        let r = ready.clone();
        let mut group = Box::pin(
            GroupConfig::new()
                .grace_period(Duration::from_secs(3600))
                .run(|tg| async move {
                    for i in 0..300 {
                        assert_eq!(tg.spawn(async move { Ok::<_, BoxError>(i) })?.await?, i);
                    }
                    tg.spawn(async move {
                        let _t = token;
                        std::future::pending::<()>().await
                    })?;
                    assert_eq!(tg.live_children(), 1);
                    r.store(true, Ordering::SeqCst);
                    std::future::pending::<()>().await;
                    Ok::<_, BoxError>(())
                }),
        );
        std::future::poll_fn(|cx| {
            assert!(group.as_mut().poll(cx).is_pending());
            if ready.load(Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        drop(group);
    });
    let start = std::time::Instant::now();
    while dropped.count() == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(dropped.count(), 1);
}

/// Sets its flag when dropped, after blocking its thread a moment (a slow destructor).
struct SlowDrop(Arc<AtomicBool>);

impl Drop for SlowDrop {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(30));
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_group_dropped_inside_another_is_waited_for_by_the_enclosing_group() {
    // The inner group is dropped while its child runs: the child is aborted, and the outer
    // group takes over waiting for it, so it returns only once the child's (slow) drop has
    // run and its task is gone.
    let rt = rt();
    rt.block_on(async {
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        task_group(|_outer| async move {
            let inner = task_group(|tg| async move {
                tg.spawn(async move {
                    let _slow = SlowDrop(f);
                    std::future::pending::<()>().await;
                    Ok::<_, BoxError>(())
                })?;
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(())
            });
            assert!(move_on_after(Duration::from_millis(5), inner)
                .await
                .is_none());
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
        assert!(
            finished.load(Ordering::SeqCst),
            "the outer group returned before the adopted child finished"
        );
    });
}

// ----- scopes, timeouts, shields (Trio's cancel scopes, asyncio.timeout) -----

#[test]
fn timeout_returns_elapsed_and_drops_the_inner_future() {
    paused().block_on(async {
        let dropped = DropCounter::new();
        let token = dropped.token();
        let out = timeout(Duration::from_secs(3600), async move {
            let _t = token;
            sleep(Duration::from_secs(7200)).await;
        })
        .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(dropped.count(), 1);
        // A future that finishes in time returns its value.
        assert_eq!(timeout(Duration::from_secs(1), async { 5 }).await, Ok(5));
    });
}

#[test]
fn an_inner_timeout_never_swallows_an_outer_cancellation() {
    // CPython #116720: the outer scope is cancelled while the inner timeout also expires;
    // the outer cancellation must win and the inner must not report it as its own timeout.
    paused().block_on(async {
        let outer = CancelScope::new().with_timeout(Duration::from_secs(1));
        let inner_result = Arc::new(Mutex::new(None));
        let r = inner_result.clone();
        let out = outer
            .run(async move {
                let inner = timeout(Duration::from_secs(1), sleep(Duration::from_secs(10))).await;
                *r.lock().unwrap() = Some(inner);
                // If the inner had swallowed the outer cancel, we would get here and go on.
                sleep(Duration::from_secs(3600)).await;
                "outer body completed"
            })
            .await;
        assert_eq!(out, None, "the outer scope must stop its body");
        assert!(outer.cancelled_caught());
    });
}

#[test]
fn a_group_cancel_never_swallows_an_enclosing_timeout() {
    // CPython #155433: a failing child cancels its group while the enclosing timeout fires;
    // the enclosing timeout must still be reported by the enclosing scope.
    paused().block_on(async {
        let scope = CancelScope::new().with_timeout(Duration::from_secs(5));
        let out = scope
            .run(async {
                let group = task_group(|tg| async move {
                    tg.spawn(async {
                        sleep(Duration::from_secs(5)).await;
                        Err::<(), _>(Boom("at the deadline"))
                    })?;
                    sleep(Duration::from_secs(3600)).await;
                    Ok::<_, BoxError>(())
                })
                .await;
                // Whatever the group says, the enclosing scope's deadline has passed: the
                // code after it must not run on as if nothing happened.
                let _ = group;
                sleep(Duration::from_secs(3600)).await;
            })
            .await;
        assert_eq!(out, None);
        assert!(scope.cancelled_caught());
    });
}

#[test]
fn nested_scopes_the_earliest_deadline_wins_and_is_reported_by_its_owner() {
    paused().block_on(async {
        let outer = CancelScope::new().with_timeout(Duration::from_secs(10));
        let inner = CancelScope::new().with_timeout(Duration::from_secs(1));
        let i2 = inner.clone();
        let out = outer
            .run(async move {
                let r = i2.run(sleep(Duration::from_secs(100))).await;
                assert!(r.is_none());
                "after inner"
            })
            .await;
        assert_eq!(out, Some("after inner"));
        assert!(inner.cancelled_caught());
        assert!(!outer.cancel_called());
    });
}

#[test]
fn an_outer_deadline_shorter_than_the_inner_is_the_outers_catch() {
    paused().block_on(async {
        let outer = CancelScope::new().with_timeout(Duration::from_secs(1));
        let inner = CancelScope::new().with_timeout(Duration::from_secs(10));
        let i2 = inner.clone();
        let out = outer
            .run(async move { i2.run(sleep(Duration::from_secs(100))).await })
            .await;
        assert_eq!(out, None);
        assert!(outer.cancelled_caught());
        assert!(
            inner.cancel_called(),
            "the inner scope is cancelled by its parent"
        );
        assert!(
            !inner.cancelled_caught(),
            "but that is not its own cancellation"
        );
    });
}

#[test]
fn a_relative_deadline_is_fixed_when_the_scope_starts() {
    paused().block_on(async {
        let scope = CancelScope::new().with_timeout(Duration::from_secs(5));
        sleep(Duration::from_secs(100)).await; // created long before it runs
        let started = Instant::now();
        let out = scope.run(sleep(Duration::from_secs(60))).await;
        assert!(out.is_none());
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(6),
            "{took:?}"
        );
    });
}

#[test]
fn deadline_can_be_moved_while_running() {
    paused().block_on(async {
        let scope = CancelScope::new().with_timeout(Duration::from_secs(3600));
        let s2 = scope.clone();
        let started = Instant::now();
        let out = scope
            .run(async move {
                sleep(Duration::from_secs(1)).await;
                s2.set_deadline(Some(Instant::now() + Duration::from_secs(2)));
                sleep(Duration::from_secs(100)).await;
            })
            .await;
        assert!(out.is_none());
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(3) && took < Duration::from_secs(4),
            "{took:?}"
        );
    });
}

#[test]
fn explicit_cancel_before_entry_cancels_at_entry() {
    paused().block_on(async {
        let scope = CancelScope::new();
        scope.cancel(CancelReason::explicit("early"));
        let out = scope.run(async { 1 }).await;
        assert_eq!(out, None);
        assert!(scope.cancel_called() && scope.cancelled_caught());
    });
}

#[test]
fn a_shielded_scope_runs_on_while_its_parent_is_cancelled() {
    paused().block_on(async {
        let outer = CancelScope::new().with_timeout(Duration::from_secs(1));
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        let out = outer
            .run(async move {
                let shielded = CancelScope::new().shielded();
                let r = shielded
                    .run(async {
                        sleep(Duration::from_secs(5)).await;
                        assert!(!is_cancelled(), "a shield hides the outer cancellation");
                        f.store(true, Ordering::SeqCst);
                    })
                    .await;
                assert!(r.is_some());
                // Back outside the shield, the outer cancellation applies again.
                sleep(Duration::from_secs(3600)).await;
            })
            .await;
        assert!(out.is_none());
        assert!(finished.load(Ordering::SeqCst));
    });
}

#[test]
fn shield_keeps_the_inner_task_running_when_the_awaiter_is_cancelled() {
    paused().block_on(async {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let out = move_on_after(Duration::from_secs(1), async move {
            shield(async move {
                sleep(Duration::from_secs(5)).await;
                d.store(true, Ordering::SeqCst);
            })
            .await
        })
        .await;
        assert!(out.is_none(), "the awaiter was cancelled");
        sleep(Duration::from_secs(10)).await;
        assert!(
            done.load(Ordering::SeqCst),
            "the shielded work finished anyway"
        );
    });
}

#[test]
fn cancelled_outside_any_scope_never_resolves_and_is_cancelled_is_false() {
    paused().block_on(async {
        assert!(!is_cancelled());
        let r = move_on_after(Duration::from_secs(1), async {
            // Inside move_on_after's scope, which is cancelled at its deadline.
            cancelled().await
        })
        .await;
        assert!(r.is_none());
    });
}

/// asyncio's `timeout(0)` and Trio's `move_on_after(0)`: cancellation is delivered where the
/// body waits, so a body that never suspends completes with its value even though its
/// deadline has passed, and one that waits is cancelled there.
#[test]
fn an_expired_deadline_cancels_at_the_first_wait_not_before_the_body_runs() {
    paused().block_on(async {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let out = timeout(Duration::ZERO, async move {
            r.store(true, Ordering::SeqCst);
            5
        })
        .await;
        assert_eq!(out, Ok(5));
        assert!(ran.load(Ordering::SeqCst));

        let reached_after_wait = Arc::new(AtomicBool::new(false));
        let r = reached_after_wait.clone();
        let out = move_on_after(Duration::ZERO, async move {
            sleep(Duration::from_millis(1)).await;
            r.store(true, Ordering::SeqCst);
        })
        .await;
        assert_eq!(out, None);
        assert!(!reached_after_wait.load(Ordering::SeqCst));
        // The body still sees its (expired) deadline while it runs.
        let seen = timeout(Duration::ZERO, async {
            ringleader::taskgroup::current_deadline()
        })
        .await
        .unwrap();
        assert!(seen.is_some_and(|d| d <= Instant::now()));
    });
}

// A scope whose body finishes on its first poll builds no node (the fast path of
// `timeout(d, ready)`); these check that whatever asks for the scope during that first poll
// still finds it, linked to the right parent, through any number of such scopes.

#[test]
fn the_deadline_inside_nested_timeouts_is_the_earliest_on_the_first_poll() {
    paused().block_on(async {
        let start = Instant::now();
        let seen = timeout(Duration::from_secs(5), async {
            timeout(Duration::from_secs(3600), async {
                ringleader::taskgroup::current_deadline()
            })
            .await
        })
        .await;
        let deadline = seen.unwrap().unwrap().expect("a deadline applies");
        assert_eq!(deadline - start, Duration::from_secs(5));
    });
}

#[test]
fn an_outer_cancel_reaches_cancelled_two_timeouts_down() {
    rt().block_on(async {
        let outer = CancelScope::new();
        let stopper = outer.clone();
        let reason = outer.run(async move {
            timeout(Duration::from_secs(3600), async move {
                move_on_after(Duration::from_secs(3600), async move {
                    let waiting = cancelled();
                    // Cancelled while the inner scopes are still on their first poll's
                    // lazy path: `cancelled()` above must have linked them to `outer`.
                    stopper.cancel(CancelReason::explicit("stop"));
                    waiting.await
                })
                .await
            })
            .await
        });
        let out = reason.await;
        // The outer scope's own cancel caught it; the inner future saw the reason inherited
        // through both scopes before it was dropped (or it is dropped: either way, None).
        assert!(out.is_none());
        assert!(outer.cancelled_caught());
        assert_eq!(
            outer.cancel_reason().unwrap().root_cause(),
            &CancelReason::explicit("stop")
        );
    });
}

#[test]
fn cancelled_inside_nested_timeouts_reports_the_inherited_reason() {
    rt().block_on(async {
        let outer = CancelScope::new().with_grace_period(Duration::from_secs(10));
        let stopper = outer.clone();
        let seen = Arc::new(Mutex::new(None));
        let seen_in = seen.clone();
        let run = outer.run(async move {
            timeout(Duration::from_secs(3600), async move {
                timeout(Duration::from_secs(3600), async move {
                    drop(ringleader::spawn(async move {
                        sleep(Duration::from_millis(5)).await;
                        stopper.cancel(CancelReason::explicit("stop"));
                    }));
                    let reason = cancelled().await;
                    *seen_in.lock().unwrap() = Some(reason);
                })
                .await
            })
            .await
        });
        // Within the grace period the body finished its cleanup, so the run completed.
        let _ = run.await;
        let reason = seen.lock().unwrap().clone().expect("cancelled() resolved");
        assert!(
            matches!(reason, CancelReason::ParentCancelled(_)),
            "{reason:?}"
        );
        assert_eq!(reason.root_cause(), &CancelReason::explicit("stop"));
    });
}

#[test]
fn a_group_opened_inside_a_timeout_is_cancelled_by_its_deadline() {
    paused().block_on(async {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let out = timeout(Duration::from_secs(10), async move {
            task_group(|tg| async move {
                tg.spawn(async move {
                    sleep(Duration::from_secs(3600)).await;
                    flag.store(true, Ordering::SeqCst);
                    Ok::<_, BoxError>(())
                })?;
                Ok::<_, BoxError>(())
            })
            .await
        })
        .await;
        assert!(out.is_err(), "the deadline cancelled the group");
        assert!(!finished.load(Ordering::SeqCst), "the child was dropped");
    });
}

#[test]
fn is_cancelled_inside_a_timeout_under_a_cancelled_scope_is_true_at_once() {
    rt().block_on(async {
        let outer = CancelScope::new().with_grace_period(Duration::from_secs(10));
        outer.cancel(CancelReason::explicit("early"));
        let seen = outer
            .run(async { timeout(Duration::from_secs(3600), async { is_cancelled() }).await })
            .await;
        // The grace period lets the body run to its end; it saw the inherited cancel.
        assert_eq!(seen, Some(Ok(true)));
    });
}
