//! More task group, combinator and cancel scope behaviours checked against what asyncio
//! (TaskGroup, timeout()/timeout_at(), wait_for, wait, as_completed, gather, shield) and Trio
//! (nurseries, cancel scopes, move_on_at/after, fail_after) document. Time-based tests run on
//! the paused clock and assert order and outcomes, never wall-clock durations.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::Stream;
use ringleader::task::CancelReason;
use ringleader::taskgroup::{
    as_completed, cancelled, current_deadline, fail_after, gather, gather_settled, is_cancelled,
    move_on_after, shield, task_group, timeout, timeout_at, wait, BoxError, CancelScope,
    ChildError, Elapsed, FailureKind, GroupConfig, ReturnWhen, Settled,
};
use ringleader::time::{sleep, Instant};
use support::{paused, paused_mt, Boom, DropCounter};

type BoxedU32 =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32, BoxError>> + Send + 'static>>;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Polls a stream to its next item.
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

// ----- gather, gather(return_exceptions=True) -----

#[test]
fn gather_returns_values_in_argument_order_not_completion_order() {
    paused().block_on(async {
        let finished = Arc::new(Mutex::new(Vec::new()));
        let futures = (0..4u64).map(|i| {
            let finished = finished.clone();
            async move {
                // The first argument finishes last.
                sleep(secs(10 - i)).await;
                finished.lock().unwrap().push(i);
                Ok::<_, BoxError>(i * 10)
            }
        });
        let out = gather(futures).await.unwrap();
        assert_eq!(out, vec![0, 10, 20, 30]);
        assert_eq!(*finished.lock().unwrap(), vec![3, 2, 1, 0]);
    });
}

#[test]
fn gather_reports_the_failure_and_cancels_the_others() {
    paused().block_on(async {
        let dropped = DropCounter::new();
        let token = dropped.token();
        let reached = Arc::new(AtomicBool::new(false));
        let r = reached.clone();
        let futures: Vec<BoxedU32> = vec![
            Box::pin(async move {
                let _t = token;
                sleep(secs(3600)).await;
                r.store(true, Ordering::SeqCst);
                Ok::<u32, BoxError>(1)
            }),
            Box::pin(async {
                sleep(secs(1)).await;
                Err::<u32, BoxError>(Box::new(Boom("gather child")))
            }),
        ];
        let err = gather(futures).await.unwrap_err();
        assert_eq!(err.len(), 1, "{err}");
        assert!(err.to_string().contains("gather child"), "{err}");
        assert_eq!(dropped.count(), 1, "the sibling was cancelled and dropped");
        assert!(!reached.load(Ordering::SeqCst));
    });
}

#[test]
fn gather_settled_keeps_order_and_each_outcome_and_cancels_nothing() {
    paused().block_on(async {
        let slow_finished = Arc::new(AtomicBool::new(false));
        let s = slow_finished.clone();
        let futures: Vec<BoxedU32> = vec![
            Box::pin(async move {
                sleep(secs(10)).await;
                s.store(true, Ordering::SeqCst);
                Ok::<u32, BoxError>(1)
            }),
            Box::pin(async { Err::<u32, BoxError>(Box::new(Boom("second"))) }),
            Box::pin(async {
                sleep(secs(1)).await;
                panic!("third panics")
            }),
            Box::pin(async { Ok::<u32, BoxError>(4) }),
        ];
        let out = gather_settled(futures).await;
        assert_eq!(out.len(), 4);
        assert!(matches!(out[0], Ok(1)));
        assert!(
            matches!(&out[1], Err(Settled::Error(e)) if e.to_string() == "second"),
            "{:?}",
            out[1]
        );
        assert!(matches!(out[2], Err(Settled::Panicked)), "{:?}", out[2]);
        assert!(matches!(out[3], Ok(4)));
        assert!(
            slow_finished.load(Ordering::SeqCst),
            "nothing was cancelled"
        );
    });
}

#[test]
fn gather_settled_under_a_cancelled_group_with_a_grace_period_reports_cancelled_slots() {
    // asyncio: cancelling the task awaiting gather(return_exceptions=True) cancels its
    // children. Here the enclosing group's grace period lets the code go on: gather_settled
    // must hand back the cancellations as values, not panic.
    paused().block_on(async {
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let err = GroupConfig::new()
            .grace_period(secs(60))
            .run(|tg| async move {
                let futures: Vec<BoxedU32> = vec![
                    Box::pin(async { Ok::<u32, BoxError>(1) }),
                    Box::pin(async {
                        sleep(secs(3600)).await;
                        Ok::<u32, BoxError>(2)
                    }),
                ];
                tg.spawn(async move {
                    let out = gather_settled(futures).await;
                    *s.lock().unwrap() = Some(out);
                })?;
                sleep(secs(1)).await;
                tg.cancel(CancelReason::explicit("stop"));
                sleep(secs(3600)).await;
                Ok::<_, BoxError>(())
            })
            .await
            .unwrap_err();
        assert!(
            err.is_cancelled(),
            "no failure, only the cancellation: {err}"
        );
        let out = seen
            .lock()
            .unwrap()
            .take()
            .expect("gather_settled returned");
        assert!(matches!(out[0], Ok(1)), "{:?}", out[0]);
        match &out[1] {
            Err(Settled::Cancelled(reason)) => {
                assert_eq!(reason.root_cause(), &CancelReason::explicit("stop"))
            }
            other => panic!("expected a cancelled slot, got {other:?}"),
        }
    });
}

// ----- as_completed, wait -----

#[test]
fn as_completed_yields_in_completion_order() {
    paused().block_on(async {
        let handles: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|s| {
                ringleader::spawn(async move {
                    sleep(secs(s)).await;
                    s
                })
            })
            .collect();
        let mut stream = as_completed(handles);
        let mut order = Vec::new();
        while let Some(out) = next(&mut stream).await {
            order.push(out.unwrap());
        }
        assert_eq!(order, vec![10, 20, 30]);
    });
}

#[test]
fn as_completed_reports_a_panicked_task_in_its_place() {
    paused().block_on(async {
        let handles = vec![
            ringleader::spawn(async {
                sleep(secs(2)).await;
                1u32
            }),
            ringleader::spawn(async {
                sleep(secs(1)).await;
                panic!("as_completed panic")
            }),
        ];
        let mut stream = as_completed(handles);
        let first = next(&mut stream).await.unwrap();
        assert!(first.unwrap_err().is_panic());
        assert_eq!(next(&mut stream).await.unwrap().unwrap(), 1);
        assert!(next(&mut stream).await.is_none());
    });
}

#[test]
fn wait_first_completed_returns_done_and_pending_and_cancels_nothing() {
    paused().block_on(async {
        let handles: Vec<_> = [5u64, 1, 3]
            .into_iter()
            .map(|s| {
                ringleader::spawn(async move {
                    sleep(secs(s)).await;
                    s
                })
            })
            .collect();
        let (done, pending) = wait(handles, ReturnWhen::FirstCompleted, None).await;
        assert_eq!(done.len(), 1);
        assert_eq!(pending.len(), 2);
        assert_eq!(done.into_iter().next().unwrap().await.unwrap(), 1);
        // The pending ones were not cancelled: they finish with their values, in the order given.
        let mut rest = Vec::new();
        for h in pending {
            rest.push(h.await.unwrap());
        }
        assert_eq!(rest, vec![5, 3]);
    });
}

#[test]
fn wait_first_exception_returns_at_the_first_panic() {
    paused().block_on(async {
        let handles = vec![
            ringleader::spawn(async {
                sleep(secs(100)).await;
                1u32
            }),
            ringleader::spawn(async {
                sleep(secs(1)).await;
                2u32
            }),
            ringleader::spawn(async {
                sleep(secs(5)).await;
                panic!("wait panic")
            }),
        ];
        let (done, pending) = wait(handles, ReturnWhen::FirstException, None).await;
        // The success at 1s did not end the wait; the panic at 5s did.
        assert_eq!(done.len(), 2);
        assert_eq!(pending.len(), 1);
        let mut done = done.into_iter();
        assert_eq!(done.next().unwrap().await.unwrap(), 2);
        assert!(done.next().unwrap().await.unwrap_err().is_panic());
        assert_eq!(pending.into_iter().next().unwrap().await.unwrap(), 1);
    });
}

#[test]
fn wait_first_exception_ignores_a_cancelled_task() {
    paused().block_on(async {
        let aborted = ringleader::spawn(async {
            sleep(secs(100)).await;
            0u32
        });
        aborted.abort();
        let handles = vec![
            aborted,
            ringleader::spawn(async {
                sleep(secs(2)).await;
                2u32
            }),
        ];
        // asyncio: a cancelled task is not an exception for FIRST_EXCEPTION, so the wait
        // goes on until the other task finishes too.
        let (done, pending) = wait(handles, ReturnWhen::FirstException, None).await;
        assert_eq!(done.len(), 2);
        assert!(pending.is_empty());
        let mut done = done.into_iter();
        assert!(done.next().unwrap().await.unwrap_err().is_cancelled());
        assert_eq!(done.next().unwrap().await.unwrap(), 2);
    });
}

#[test]
fn wait_first_exception_without_a_failure_waits_for_all() {
    paused().block_on(async {
        let handles: Vec<_> = [3u64, 1, 2]
            .into_iter()
            .map(|s| {
                ringleader::spawn(async move {
                    sleep(secs(s)).await;
                    s
                })
            })
            .collect();
        let (done, pending) = wait(handles, ReturnWhen::FirstException, None).await;
        assert_eq!(done.len(), 3);
        assert!(pending.is_empty());
        let mut values = Vec::new();
        for h in done {
            values.push(h.await.unwrap());
        }
        assert_eq!(values, vec![3, 1, 2], "done keeps the order given");
    });
}

#[test]
fn wait_with_a_timeout_returns_the_unfinished_as_pending_without_cancelling_them() {
    paused().block_on(async {
        let handles: Vec<_> = [1u64, 100]
            .into_iter()
            .map(|s| {
                ringleader::spawn(async move {
                    sleep(secs(s)).await;
                    s
                })
            })
            .collect();
        let (done, pending) = wait(handles, ReturnWhen::AllCompleted, Some(secs(10))).await;
        assert_eq!(done.len(), 1);
        assert_eq!(pending.len(), 1);
        let slow = pending.into_iter().next().unwrap();
        assert!(!slow.is_finished());
        assert_eq!(slow.await.unwrap(), 100, "the timeout cancelled nothing");
    });
}

#[test]
fn wait_with_a_zero_timeout_returns_what_is_already_done() {
    paused().block_on(async {
        let finished = ringleader::spawn(async { 1u32 });
        while !finished.is_finished() {
            ringleader::task::yield_now().await;
        }
        let running = ringleader::spawn(async {
            sleep(secs(10)).await;
            2u32
        });
        let (done, pending) = wait(
            vec![finished, running],
            ReturnWhen::AllCompleted,
            Some(Duration::ZERO),
        )
        .await;
        assert_eq!(done.len(), 1);
        assert_eq!(pending.len(), 1);
        assert_eq!(done.into_iter().next().unwrap().await.unwrap(), 1);
        assert_eq!(pending.into_iter().next().unwrap().await.unwrap(), 2);
    });
}

// ----- wait_for / timeout() / timeout_at() -----

#[test]
fn timeout_on_an_already_finished_task_returns_its_value_even_with_zero_timeout() {
    // asyncio.wait_for(done_future, 0) returns the result.
    paused().block_on(async {
        let handle = ringleader::spawn(async { 7u32 });
        while !handle.is_finished() {
            ringleader::task::yield_now().await;
        }
        let out = timeout(Duration::ZERO, handle).await;
        assert_eq!(out.unwrap().unwrap(), 7);
        let past = Instant::now();
        sleep(secs(1)).await;
        assert_eq!(timeout_at(past, async { 8 }).await, Ok(8));
    });
}

#[test]
fn timeout_zero_on_a_waiting_future_elapses_and_drops_it() {
    paused().block_on(async {
        let dropped = DropCounter::new();
        let token = dropped.token();
        let after_wait = Arc::new(AtomicBool::new(false));
        let a = after_wait.clone();
        let out = timeout(Duration::ZERO, async move {
            let _t = token;
            ringleader::task::yield_now().await;
            sleep(secs(1)).await;
            a.store(true, Ordering::SeqCst);
        })
        .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(dropped.count(), 1);
        assert!(!after_wait.load(Ordering::SeqCst));
    });
}

#[test]
fn timeout_at_a_past_deadline_runs_the_body_to_its_first_wait_then_cancels() {
    paused().block_on(async {
        let past = Instant::now();
        sleep(secs(5)).await;
        let steps = Arc::new(AtomicUsize::new(0));
        let s = steps.clone();
        let out = timeout_at(past, async move {
            s.fetch_add(1, Ordering::SeqCst);
            sleep(secs(1)).await;
            s.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(steps.load(Ordering::SeqCst), 1);
        // Trio's move_on_at with a past deadline: the same, as `None`.
        let scope = CancelScope::new().with_deadline(past);
        assert_eq!(scope.run(sleep(secs(1))).await, None);
        assert!(scope.cancel_called() && scope.cancelled_caught());
    });
}

#[test]
fn nested_timeouts_with_the_inner_later_the_outer_expires_and_reports_elapsed() {
    paused().block_on(async {
        let inner_returned = Arc::new(AtomicBool::new(false));
        let r = inner_returned.clone();
        let out = timeout(secs(1), async move {
            let inner = timeout(secs(10), sleep(secs(100))).await;
            r.store(true, Ordering::SeqCst);
            inner
        })
        .await;
        // The outer expired: it gives Elapsed; the inner never returned (its scope did not
        // expire, so it must not report a timeout of its own).
        assert_eq!(out, Err(Elapsed));
        assert!(!inner_returned.load(Ordering::SeqCst));
    });
}

#[test]
fn an_outer_explicit_cancel_is_not_turned_into_elapsed_by_an_inner_timeout() {
    paused().block_on(async {
        // The grace period lets the inner code run on after the outer cancel: the inner
        // timeout must still not return (neither its value nor Elapsed).
        let outer = CancelScope::new().with_grace_period(secs(30));
        let stopper = outer.clone();
        let inner_result = Arc::new(Mutex::new(None));
        let r = inner_result.clone();
        drop(ringleader::spawn(async move {
            sleep(secs(1)).await;
            stopper.cancel(CancelReason::explicit("outer stop"));
        }));
        let out = outer
            .run(async move {
                let inner = timeout(secs(2), sleep(secs(100))).await;
                *r.lock().unwrap() = Some(inner);
            })
            .await;
        assert_eq!(out, None);
        assert!(outer.cancelled_caught());
        assert_eq!(
            *inner_result.lock().unwrap(),
            None,
            "the inner timeout reported the outer's cancellation as its own"
        );
    });
}

#[test]
fn fail_after_gives_elapsed_and_move_on_after_gives_none_on_their_own_deadline() {
    paused().block_on(async {
        assert_eq!(fail_after(secs(1), sleep(secs(2))).await, Err(Elapsed));
        assert_eq!(fail_after(secs(2), async { 3 }).await, Ok(3));
        assert_eq!(move_on_after(secs(1), sleep(secs(2))).await, None);
        assert_eq!(move_on_after(secs(2), async { 3 }).await, Some(3));
    });
}

// ----- rescheduling (asyncio's Timeout.reschedule/when/expired, Trio's deadline) -----

#[test]
fn rescheduling_to_a_later_deadline_lets_the_body_finish() {
    paused().block_on(async {
        let scope = CancelScope::new().with_timeout(secs(1));
        let s = scope.clone();
        let out = scope
            .run(async move {
                let when = s.deadline().expect("when() is set at entry");
                s.set_deadline(Some(when + secs(10)));
                sleep(secs(5)).await;
                "finished"
            })
            .await;
        assert_eq!(out, Some("finished"));
        assert!(!scope.cancel_called(), "expired() is false");
        assert!(!scope.cancelled_caught());
    });
}

#[test]
fn rescheduling_to_the_past_cancels_at_the_next_checkpoint() {
    paused().block_on(async {
        let scope = CancelScope::new().with_timeout(secs(3600));
        let s = scope.clone();
        let steps = Arc::new(AtomicUsize::new(0));
        let st = steps.clone();
        let out = scope
            .run(async move {
                sleep(secs(1)).await;
                s.set_deadline(Some(Instant::now()));
                st.fetch_add(1, Ordering::SeqCst);
                sleep(secs(1)).await;
                st.fetch_add(1, Ordering::SeqCst);
            })
            .await;
        assert_eq!(out, None);
        assert_eq!(steps.load(Ordering::SeqCst), 1);
        assert!(scope.cancelled_caught());
        assert_eq!(scope.cancel_reason(), Some(CancelReason::Deadline));
    });
}

#[test]
fn rescheduling_to_none_removes_the_deadline() {
    paused().block_on(async {
        let scope = CancelScope::new().with_timeout(secs(1));
        let s = scope.clone();
        let out = scope
            .run(async move {
                s.set_deadline(None);
                assert_eq!(current_deadline(), None);
                sleep(secs(10)).await;
                5
            })
            .await;
        assert_eq!(out, Some(5));
        assert_eq!(scope.deadline(), None);
        assert!(!scope.cancel_called());
    });
}

#[test]
fn rescheduling_from_another_task_is_seen_by_the_running_scope() {
    paused_mt().block_on(async {
        let scope = CancelScope::new();
        let s = scope.clone();
        drop(ringleader::spawn(async move {
            sleep(secs(1)).await;
            s.set_deadline(Some(Instant::now() + secs(1)));
        }));
        let out = scope.run(sleep(secs(3600))).await;
        assert_eq!(out, None);
        assert!(scope.cancelled_caught());
    });
}

// ----- shields -----

#[test]
fn a_shielded_scope_entered_inside_an_already_cancelled_scope_runs_then_the_cancel_applies() {
    // Trio: inside a cancelled scope, `with CancelScope(shield=True): await sleep(..)`
    // completes; the next unshielded checkpoint raises Cancelled.
    paused().block_on(async {
        let outer = CancelScope::new();
        let o = outer.clone();
        let shielded_done = Arc::new(AtomicBool::new(false));
        let after = Arc::new(AtomicBool::new(false));
        let (d, a) = (shielded_done.clone(), after.clone());
        let out = outer
            .run(async move {
                sleep(secs(1)).await;
                o.cancel(CancelReason::explicit("outer"));
                assert!(is_cancelled());
                let r = CancelScope::new()
                    .shielded()
                    .run(async {
                        assert!(!is_cancelled());
                        sleep(secs(5)).await;
                        d.store(true, Ordering::SeqCst);
                    })
                    .await;
                assert!(r.is_some());
                sleep(secs(1)).await;
                a.store(true, Ordering::SeqCst);
            })
            .await;
        assert_eq!(out, None);
        assert!(shielded_done.load(Ordering::SeqCst));
        assert!(!after.load(Ordering::SeqCst));
        assert!(outer.cancelled_caught());
    });
}

#[test]
fn a_shielded_scope_is_still_stopped_by_its_own_deadline() {
    paused().block_on(async {
        let inner = CancelScope::new().shielded().with_timeout(secs(2));
        let i = inner.clone();
        let body_saw = Arc::new(Mutex::new(None));
        let b = body_saw.clone();
        // The outer is cancelled before its body starts; its grace period lets the body
        // run, and the shielded scope inside it keeps only its own deadline.
        let outer = CancelScope::new().with_grace_period(secs(3600));
        outer.cancel(CancelReason::explicit("already"));
        let out = outer
            .run(async move {
                let r = i
                    .run(async {
                        *b.lock().unwrap() = Some(current_deadline());
                        sleep(secs(10)).await
                    })
                    .await;
                assert!(r.is_none());
            })
            .await;
        let _ = out;
        assert!(inner.cancelled_caught());
        assert_eq!(inner.cancel_reason(), Some(CancelReason::Deadline));
        assert!(body_saw.lock().unwrap().unwrap().is_some());
    });
}

#[test]
fn current_deadline_inside_a_shield_ignores_the_outer_deadline() {
    paused().block_on(async {
        let seen = timeout(secs(1), async {
            CancelScope::new()
                .shielded()
                .run(async { current_deadline() })
                .await
        })
        .await;
        assert_eq!(seen, Ok(Some(None)));
    });
}

#[test]
fn shield_returns_the_value_when_not_cancelled_and_the_inner_task_survives_a_dropped_awaiter() {
    paused().block_on(async {
        assert_eq!(shield(async { 9 }).await.unwrap(), 9);
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let scope = CancelScope::new();
        let s = scope.clone();
        drop(ringleader::spawn(async move {
            sleep(secs(1)).await;
            s.cancel(CancelReason::explicit("caller cancelled"));
        }));
        let out = scope
            .run(shield(async move {
                sleep(secs(5)).await;
                d.store(true, Ordering::SeqCst);
            }))
            .await;
        assert!(out.is_none());
        assert!(!done.load(Ordering::SeqCst));
        sleep(secs(10)).await;
        assert!(done.load(Ordering::SeqCst));
    });
}

// ----- task groups -----

#[test]
fn a_child_cancelled_by_its_group_reports_cancelled_with_the_reason_not_failed() {
    // asyncio: the siblings a TaskGroup cancels are `cancelled()`; Task.cancel(msg) carries
    // the message.
    // A handle held outside the body sees the cancellation and its message.
    paused().block_on(async {
        let slot = Arc::new(Mutex::new(None));
        let s = slot.clone();
        let err = task_group(|tg| async move {
            let victim = tg.spawn(async {
                sleep(secs(3600)).await;
                Ok::<_, BoxError>(1)
            })?;
            *s.lock().unwrap() = Some(victim);
            sleep(secs(1)).await;
            tg.cancel(CancelReason::explicit("with a message"));
            sleep(secs(3600)).await;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert!(err.is_cancelled());
        let victim = slot.lock().unwrap().take().unwrap();
        match victim.await {
            Err(ChildError::Cancelled(reason)) => {
                assert_eq!(
                    reason.root_cause(),
                    &CancelReason::explicit("with a message")
                )
            }
            other => panic!("expected Cancelled, got {other:?}"),
        }
    });
}

#[test]
fn a_sibling_cancelled_by_a_failure_reports_cancelled_through_its_handle() {
    paused().block_on(async {
        let slot = Arc::new(Mutex::new(None));
        let s = slot.clone();
        let err = task_group(|tg| async move {
            let victim = tg.spawn(async {
                sleep(secs(3600)).await;
                Ok::<_, BoxError>(1)
            })?;
            *s.lock().unwrap() = Some(victim);
            tg.spawn(async {
                sleep(secs(1)).await;
                Err::<(), _>(Boom("first failure"))
            })?;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.len(), 1, "the cancelled sibling is not a member: {err}");
        let victim = slot.lock().unwrap().take().unwrap();
        assert!(
            matches!(
                victim.await,
                Err(ChildError::Cancelled(CancelReason::SiblingFailed))
            ),
            "a cancelled sibling is not a failed one"
        );
    });
}

#[test]
fn errors_and_panics_raised_while_cancelling_are_collected_too() {
    paused().block_on(async {
        let err = GroupConfig::new()
            .grace_period(secs(60))
            .run(|tg| async move {
                tg.spawn_named("cleanup-error", async {
                    cancelled().await;
                    sleep(secs(1)).await;
                    Err::<(), _>(Boom("error during cleanup"))
                })?;
                tg.spawn_named("cleanup-panic", async {
                    cancelled().await;
                    if !is_cancelled() {
                        return Ok::<(), BoxError>(());
                    }
                    panic!("panic during cleanup");
                })?;
                tg.spawn_named("cooperative", async {
                    cancelled().await;
                    Ok::<_, BoxError>(())
                })?;
                tg.spawn_named("first", async {
                    sleep(secs(1)).await;
                    Err::<(), _>(Boom("first failure"))
                })?;
                sleep(secs(3600)).await;
                Ok::<_, BoxError>(())
            })
            .await
            .unwrap_err();
        let mut names: Vec<_> = err
            .failures()
            .iter()
            .map(|f| f.name.clone().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["cleanup-error", "cleanup-panic", "first"],
            "{err}"
        );
        let panic = err
            .failures()
            .iter()
            .find(|f| f.is_panic())
            .expect("the panic is a member");
        assert!(matches!(panic.kind, FailureKind::Panic(_)));
    });
}

#[test]
fn the_body_error_and_child_failures_are_all_in_the_group() {
    paused().block_on(async {
        let err = GroupConfig::new()
            .grace_period(secs(60))
            .run(|tg| async move {
                tg.spawn(async {
                    cancelled().await;
                    Err::<(), _>(Boom("child after body"))
                })?;
                sleep(secs(1)).await;
                Err::<(), BoxError>(Box::new(Boom("body")))
            })
            .await
            .unwrap_err();
        assert_eq!(err.len(), 2, "{err}");
        assert!(err
            .failures()
            .iter()
            .any(|f| matches!(f.kind, FailureKind::Body(_))));
        assert!(err
            .failures()
            .iter()
            .any(|f| matches!(f.kind, FailureKind::Error(_))));
    });
}

#[test]
fn no_child_task_outlives_a_failed_group() {
    let rt = support::rt2();
    rt.block_on(async {
        let live = Arc::new(AtomicUsize::new(0));
        struct Live(Arc<AtomicUsize>);
        impl Drop for Live {
            fn drop(&mut self) {
                std::thread::sleep(Duration::from_millis(2));
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let l = live.clone();
        let err = task_group(|tg| async move {
            for _ in 0..8 {
                l.fetch_add(1, Ordering::SeqCst);
                let guard = Live(l.clone());
                tg.spawn(async move {
                    let _g = guard;
                    std::future::pending::<()>().await
                })?;
            }
            tg.spawn(async { Err::<(), _>(Boom("fail")) })?;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(live.load(Ordering::SeqCst), 0, "a child outlived its group");
    });
}

#[test]
fn a_group_with_a_zero_timeout_runs_its_body_to_the_first_wait() {
    // asyncio: `async with timeout(0): async with TaskGroup()` runs the body up to its
    // first suspension; Trio's move_on_after(0) likewise cancels at the first checkpoint.
    paused().block_on(async {
        let steps = Arc::new(AtomicUsize::new(0));
        let s = steps.clone();
        let err = GroupConfig::new()
            .timeout(Duration::ZERO)
            .run(|tg| async move {
                s.fetch_add(1, Ordering::SeqCst);
                sleep(secs(1)).await;
                s.fetch_add(1, Ordering::SeqCst);
                let _ = tg;
                Ok::<_, BoxError>(())
            })
            .await
            .unwrap_err();
        assert_eq!(err.cancel_reason(), Some(&CancelReason::Deadline));
        assert_eq!(steps.load(Ordering::SeqCst), 1);
        // A body that never waits completes.
        let out = GroupConfig::new()
            .timeout(Duration::ZERO)
            .run(|_tg| async { Ok::<_, BoxError>(4) })
            .await;
        assert_eq!(out.unwrap(), 4);
    });
}

#[test]
fn a_group_deadline_inside_an_earlier_outer_timeout_is_the_outers_elapsed() {
    paused().block_on(async {
        let group_returned = Arc::new(AtomicBool::new(false));
        let g = group_returned.clone();
        let out = timeout(secs(1), async move {
            let r = GroupConfig::new()
                .timeout(secs(10))
                .run(|tg| async move {
                    tg.spawn(sleep(secs(3600)))?;
                    Ok::<_, BoxError>(())
                })
                .await;
            g.store(true, Ordering::SeqCst);
            r.map_err(|e| e.to_string())
        })
        .await;
        assert_eq!(out, Err(Elapsed));
        assert!(!group_returned.load(Ordering::SeqCst));
    });
}

#[test]
fn the_group_timeout_is_reported_only_by_the_group_whose_deadline_passed() {
    paused().block_on(async {
        let outer_after = Arc::new(AtomicBool::new(false));
        let o = outer_after.clone();
        let out = task_group(|_outer| async move {
            let inner = GroupConfig::new()
                .timeout(secs(1))
                .run(|tg| async move {
                    tg.spawn(sleep(secs(3600)))?;
                    Ok::<_, BoxError>(())
                })
                .await;
            let e = inner.unwrap_err();
            assert_eq!(e.cancel_reason(), Some(&CancelReason::Deadline));
            o.store(true, Ordering::SeqCst);
            Ok::<_, BoxError>("outer fine")
        })
        .await;
        assert_eq!(out.unwrap(), "outer fine");
        assert!(outer_after.load(Ordering::SeqCst));
    });
}

#[test]
fn the_combinators_run_inside_spawned_tasks_with_boxed_errors() {
    // `spawn` needs a `Send` future: gather & co. over futures returning
    // `Result<_, BoxError>` must be usable inside a task, not only at the top of block_on.
    paused().block_on(async {
        fn futures() -> Vec<BoxedU32> {
            vec![
                Box::pin(async {
                    sleep(secs(2)).await;
                    Ok::<u32, BoxError>(1)
                }),
                Box::pin(async {
                    sleep(secs(1)).await;
                    Ok::<u32, BoxError>(2)
                }),
            ]
        }
        let gathered = ringleader::spawn(async { gather(futures()).await.unwrap() });
        let settled = ringleader::spawn(async { gather_settled(futures()).await.len() });
        let raced =
            ringleader::spawn(async { ringleader::taskgroup::race(futures()).await.unwrap() });
        let first =
            ringleader::spawn(async { ringleader::taskgroup::first_ok(futures()).await.unwrap() });
        assert_eq!(gathered.await.unwrap(), vec![1, 2]);
        assert_eq!(settled.await.unwrap(), 2);
        assert_eq!(raced.await.unwrap(), 2, "the first to finish wins");
        assert_eq!(first.await.unwrap(), 2);
    });
}
