//! Two edges of group cancellation, checked against Trio and asyncio:
//! - a nested group runs on the schedule of the enclosing cancellation: its children get
//!   what remains of the enclosing grace period (Trio nests a cancel scope's effect), not
//!   an immediate drop; its own cancellations keep its own (default zero) grace;
//! - a child (or body) that panics while being dropped by a cancellation is a panic in the
//!   group's error, next to the failure that caused the cancellation (asyncio and Trio: an
//!   exception raised during cancellation cleanup joins the exception group), while the
//!   group still waits for its other children.
//!
//! Time-based tests run on the paused clock and compare virtual instants with generous
//! bounds, never wall-clock durations.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringleader::runtime::Builder;
use ringleader::task::CancelReason;
use ringleader::taskgroup::{
    cancelled, task_group, BoxError, CancelScope, ChildError, ChildHandle, FailureKind, GroupConfig,
};
use ringleader::time::{sleep, Instant};
use support::{paused, paused_mt, Boom, DropCounter};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

type BoxedUnit =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), BoxError>> + Send + 'static>>;

/// A shared slot for a virtual instant.
type Moment = Arc<Mutex<Option<Instant>>>;

fn moment() -> Moment {
    Arc::new(Mutex::new(None))
}

fn read(m: &Moment) -> Instant {
    m.lock().unwrap().expect("the moment was recorded")
}

/// Records, when dropped, the (runtime clock's) instant it was dropped at.
struct DropAt(Moment);

impl Drop for DropAt {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

/// Panics when dropped (not while already unwinding).
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

// ----- 1. a nested group inherits the enclosing grace period -----

#[test]
fn a_nested_group_lets_cooperative_children_finish_within_the_enclosing_grace_period() {
    paused().block_on(async {
        let cleaned = Arc::new(AtomicBool::new(false));
        let c = cleaned.clone();
        let cancelled_at = moment();
        let ca = cancelled_at.clone();
        let cleaned_at = moment();
        let cd = cleaned_at.clone();
        let out = GroupConfig::new()
            .grace_period(secs(10))
            .run(|tg| async move {
                tg.spawn(async move {
                    // A nested group with the default config: no grace of its own.
                    task_group(|inner| async move {
                        inner.spawn(async move {
                            cancelled().await;
                            // Cleanup that takes a while, within the outer grace period.
                            sleep(secs(2)).await;
                            *cd.lock().unwrap() = Some(Instant::now());
                            c.store(true, Ordering::SeqCst);
                            Ok::<_, BoxError>(())
                        })?;
                        Ok::<_, BoxError>(())
                    })
                    .await?;
                    Ok::<_, BoxError>(())
                })?;
                sleep(secs(1)).await;
                *ca.lock().unwrap() = Some(Instant::now());
                tg.cancel(CancelReason::explicit("stop"));
                Ok::<_, BoxError>("body done")
            })
            .await;
        assert!(
            cleaned.load(Ordering::SeqCst),
            "the nested child was dropped before it could clean up"
        );
        let took = read(&cleaned_at) - read(&cancelled_at);
        assert!(took >= secs(2), "cleanup ended {took:?} after the cancel");
        // Everything finished within the grace period: nothing was interrupted.
        assert_eq!(out.unwrap(), "body done");
    });
}

/// An outer group (grace `grace`) cancelled at t = 1 s; its child opens `depth` nested
/// default groups, the innermost with a child that never cooperates. Returns how long after
/// the cancel that child was dropped.
async fn uncooperative_nested_child_dropped_after(grace: Duration, depth: usize) -> Duration {
    fn nest(depth: usize, drops: DropCounter, at: Moment) -> BoxedUnit {
        Box::pin(async move {
            if depth == 0 {
                let _token = drops.token();
                let _at = DropAt(at);
                sleep(secs(100_000)).await;
                return Ok(());
            }
            task_group(|inner| async move {
                inner.spawn(nest(depth - 1, drops, at))?;
                Ok::<_, BoxError>(())
            })
            .await?;
            Ok(())
        })
    }
    let drops = DropCounter::new();
    let dropped_at = moment();
    let cancelled_at = moment();
    let (d, da, ca) = (drops.clone(), dropped_at.clone(), cancelled_at.clone());
    let err = GroupConfig::new()
        .grace_period(grace)
        .run(|tg| async move {
            tg.spawn(nest(depth, d, da))?;
            sleep(secs(1)).await;
            *ca.lock().unwrap() = Some(Instant::now());
            tg.cancel(CancelReason::explicit("stop"));
            sleep(secs(100_000)).await;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
    assert!(err.is_cancelled(), "only the cancellation: {err}");
    assert_eq!(drops.count(), 1, "the innermost child was dropped once");
    read(&dropped_at) - read(&cancelled_at)
}

#[test]
fn a_nested_group_drops_uncooperative_children_when_the_enclosing_grace_period_ends() {
    for rt in [paused(), paused_mt()] {
        rt.block_on(async {
            let after = uncooperative_nested_child_dropped_after(secs(5), 1).await;
            assert!(
                after >= secs(5) && after < secs(60),
                "dropped {after:?} after the cancel, expected when the 5 s grace ran out"
            );
        });
    }
}

#[test]
fn the_enclosing_grace_period_reaches_through_several_nested_groups() {
    paused().block_on(async {
        let after = uncooperative_nested_child_dropped_after(secs(5), 3).await;
        assert!(
            after >= secs(5) && after < secs(60),
            "dropped {after:?} after the cancel"
        );
    });
}

#[test]
fn without_an_enclosing_grace_period_nested_children_are_still_dropped_at_once() {
    paused().block_on(async {
        let after = uncooperative_nested_child_dropped_after(Duration::ZERO, 2).await;
        assert!(after < secs(1), "dropped {after:?} after the cancel");
    });
}

#[test]
fn a_nested_group_inherits_a_cancel_scopes_grace_period_too() {
    paused().block_on(async {
        let cleaned = Arc::new(AtomicBool::new(false));
        let c = cleaned.clone();
        let scope = CancelScope::new().with_grace_period(secs(10));
        let stopper = scope.clone();
        drop(ringleader::spawn(async move {
            sleep(secs(1)).await;
            stopper.cancel(CancelReason::explicit("stop"));
        }));
        let out = scope
            .run(async move {
                let _ = task_group(|tg| async move {
                    tg.spawn(async move {
                        cancelled().await;
                        sleep(secs(2)).await;
                        c.store(true, Ordering::SeqCst);
                        Ok::<_, BoxError>(())
                    })?;
                    Ok::<_, BoxError>(())
                })
                .await;
                // The scope's grace period would let us run on up to here, and further.
                sleep(secs(100_000)).await;
            })
            .await;
        assert_eq!(out, None);
        assert!(scope.cancelled_caught());
        assert!(
            cleaned.load(Ordering::SeqCst),
            "the group's child inside the scope ran out the scope's grace period"
        );
    });
}

#[test]
fn an_explicit_grace_period_on_the_nested_group_bounds_the_inherited_one() {
    // The earlier of the two wins, as nested deadlines combine: 1 s of its own inside 30 s
    // inherited drops at 1 s; an explicit zero drops at once.
    for (own, lo, hi) in [
        (secs(1), secs(1), secs(10)),
        (Duration::ZERO, secs(0), secs(1)),
    ] {
        paused().block_on(async move {
            let dropped_at = moment();
            let cancelled_at = moment();
            let (da, ca) = (dropped_at.clone(), cancelled_at.clone());
            let err = GroupConfig::new()
                .grace_period(secs(30))
                .run(|tg| async move {
                    tg.spawn(async move {
                        // Cancelled (it interrupted its child) before the outer grace
                        // period ends; then this child waits for the outer drop.
                        let nested = GroupConfig::new()
                            .grace_period(own)
                            .run(|inner| async move {
                                inner.spawn(async move {
                                    let _at = DropAt(da);
                                    sleep(secs(100_000)).await;
                                })?;
                                Ok::<_, BoxError>(())
                            })
                            .await;
                        assert!(nested.unwrap_err().is_cancelled());
                        sleep(secs(100_000)).await;
                    })?;
                    sleep(secs(1)).await;
                    *ca.lock().unwrap() = Some(Instant::now());
                    tg.cancel(CancelReason::explicit("stop"));
                    sleep(secs(100_000)).await;
                    Ok::<_, BoxError>(())
                })
                .await
                .unwrap_err();
            assert!(err.is_cancelled(), "{err}");
            let after = read(&dropped_at) - read(&cancelled_at);
            assert!(
                after >= lo && after < hi,
                "own grace {own:?}: dropped {after:?} after the cancel"
            );
        });
    }
}

#[test]
fn a_nested_groups_own_cancellation_keeps_its_own_zero_grace_period() {
    // Not inherited: the nested group is cancelled by its own failing child, so its other
    // child is dropped at once although the enclosing group has a long grace period.
    paused().block_on(async {
        let dropped_at = moment();
        let failed_at = moment();
        let (da, fa) = (dropped_at.clone(), failed_at.clone());
        let err = GroupConfig::new()
            .grace_period(secs(30))
            .run(|tg| async move {
                tg.spawn(async move {
                    task_group(|inner| async move {
                        inner.spawn(async move {
                            let _at = DropAt(da);
                            sleep(secs(100_000)).await;
                        })?;
                        inner.spawn(async move {
                            sleep(secs(1)).await;
                            *fa.lock().unwrap() = Some(Instant::now());
                            Err::<(), _>(Boom("inner failure"))
                        })?;
                        Ok::<_, BoxError>(())
                    })
                    .await?;
                    Ok::<_, BoxError>(())
                })?;
                Ok::<_, BoxError>(())
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("inner failure"), "{err}");
        let after = read(&dropped_at) - read(&failed_at);
        assert!(after < secs(1), "dropped {after:?} after the failure");
    });
}

// ----- 2. a panic while being cancelled is a panic of the group -----

/// Awaits handles kept out of a group's body, once the group has ended.
async fn outcomes<T: Send + 'static>(
    handles: &Mutex<Vec<(&'static str, ChildHandle<T>)>>,
) -> Vec<(&'static str, Result<T, ChildError>)> {
    let handles = std::mem::take(&mut *handles.lock().unwrap());
    let mut out = Vec::new();
    for (name, h) in handles {
        out.push((name, h.await));
    }
    out
}

#[test]
fn a_child_that_panics_while_dropped_after_a_sibling_failed_is_a_panic_in_the_group() {
    for rt in [paused(), paused_mt()] {
        rt.block_on(async {
            let handles = Arc::new(Mutex::new(Vec::new()));
            let h = handles.clone();
            let bystander_drops = DropCounter::new();
            let token = bystander_drops.token();
            let cleaned = Arc::new(AtomicBool::new(false));
            let c = cleaned.clone();
            let err = GroupConfig::new()
                // The uncooperative children are dropped when it runs out; the cooperative
                // one finishes its cleanup before.
                .grace_period(secs(5))
                .run(|tg| async move {
                    let mut h = h.lock().unwrap();
                    h.push((
                        "dropper",
                        tg.spawn_named("dropper", async move {
                            let _guard = PanicOnDrop("panic in drop");
                            sleep(secs(100_000)).await;
                            Ok::<_, BoxError>(())
                        })?,
                    ));
                    h.push((
                        "bystander",
                        tg.spawn_named("bystander", async move {
                            let _token = token;
                            sleep(secs(100_000)).await;
                            Ok::<_, BoxError>(())
                        })?,
                    ));
                    h.push((
                        "slow-cleanup",
                        tg.spawn_named("slow-cleanup", async move {
                            cancelled().await;
                            sleep(secs(2)).await;
                            c.store(true, Ordering::SeqCst);
                            Ok::<_, BoxError>(())
                        })?,
                    ));
                    h.push((
                        "first",
                        tg.spawn_named("first", async {
                            sleep(secs(1)).await;
                            Err::<(), BoxError>(Box::new(Boom("first failure")))
                        })?,
                    ));
                    Ok::<_, BoxError>(())
                })
                .await
                .unwrap_err();
            let mut members: Vec<_> = err
                .failures()
                .iter()
                .map(|f| (f.name.clone().unwrap(), f.is_panic()))
                .collect();
            members.sort();
            assert_eq!(
                members,
                vec![("dropper".to_owned(), true), ("first".to_owned(), false)],
                "{err}"
            );
            let panic = err.failures().iter().find(|f| f.is_panic()).unwrap();
            match &panic.kind {
                FailureKind::Panic(p) => {
                    assert_eq!(p.message().as_deref(), Some("panic in drop"))
                }
                other => panic!("expected a child panic, got {other:?}"),
            }
            assert!(panic.task_id.is_some());
            assert_eq!(err.cancel_reason(), Some(&CancelReason::SiblingFailed));
            // The group waited for every other child: the cooperative one finished its
            // cleanup, the uncooperative one was dropped (cleanly: cancelled, not failed).
            assert!(cleaned.load(Ordering::SeqCst));
            assert_eq!(bystander_drops.count(), 1);
            for (name, outcome) in outcomes(&handles).await {
                match name {
                    "dropper" | "first" => {
                        assert_eq!(outcome, Err(ChildError::Failed), "{name}")
                    }
                    "bystander" => assert_eq!(
                        outcome,
                        Err(ChildError::Cancelled(CancelReason::SiblingFailed)),
                        "{name}"
                    ),
                    _ => assert_eq!(outcome, Ok(()), "{name}"),
                }
            }
        });
    }
}

#[test]
fn a_child_aborted_through_the_runtime_that_panics_in_drop_fails_the_group() {
    // `ChildHandle::abort` drops the child's future in the runtime's task harness. The
    // panic goes to the group (the group fails and cancels the rest), not to the runtime's
    // unhandled-panic handler.
    let unhandled = Arc::new(AtomicUsize::new(0));
    let u = unhandled.clone();
    let rt = Builder::new_current_thread()
        .start_paused(true)
        .on_task_panic(move |_| {
            u.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    rt.block_on(async {
        let bystander_drops = DropCounter::new();
        let token = bystander_drops.token();
        let result = task_group(|tg| async move {
            let victim = tg.spawn_named("victim", async {
                let _guard = PanicOnDrop("panic in drop after abort");
                sleep(secs(100_000)).await;
            })?;
            // Longer than the body: if the abort's panic were lost, the body would end
            // first and the group would wait for this one, then succeed.
            tg.spawn_named("bystander", async move {
                let _token = token;
                sleep(secs(7_200)).await;
            })?;
            sleep(secs(1)).await;
            victim.abort();
            sleep(secs(3_600)).await;
            Ok::<_, BoxError>(())
        })
        .await;
        let err = result.expect_err("the panic in drop fails the group");
        assert_eq!(err.len(), 1, "{err}");
        let failure = &err.failures()[0];
        assert_eq!(failure.name.as_deref(), Some("victim"));
        match &failure.kind {
            FailureKind::Panic(p) => {
                assert_eq!(p.message().as_deref(), Some("panic in drop after abort"))
            }
            other => panic!("expected a child panic, got {other:?}"),
        }
        assert_eq!(bystander_drops.count(), 1, "the rest was cancelled");
    });
    drop(rt);
    assert_eq!(unhandled.load(Ordering::SeqCst), 0);
}

#[test]
fn a_body_that_panics_while_dropped_by_the_cancellation_is_a_body_panic() {
    paused().block_on(async {
        let cleaned = Arc::new(AtomicBool::new(false));
        let c = cleaned.clone();
        let err = GroupConfig::new()
            .grace_period(secs(5))
            .run(|tg| async move {
                tg.spawn_named("slow-cleanup", async move {
                    cancelled().await;
                    sleep(secs(2)).await;
                    c.store(true, Ordering::SeqCst);
                })?;
                tg.spawn_named("first", async {
                    sleep(secs(1)).await;
                    Err::<(), BoxError>(Box::new(Boom("first failure")))
                })?;
                let _guard = PanicOnDrop("body panic in drop");
                sleep(secs(100_000)).await;
                Ok::<_, BoxError>(())
            })
            .await
            .unwrap_err();
        assert_eq!(err.len(), 2, "{err}");
        assert!(err.failures().iter().any(|f| matches!(
            &f.kind,
            FailureKind::BodyPanic(p) if p.message().as_deref() == Some("body panic in drop")
        )));
        assert!(err
            .failures()
            .iter()
            .any(|f| f.name.as_deref() == Some("first") && !f.is_panic()));
        assert!(cleaned.load(Ordering::SeqCst), "the group waited for it");
    });
}

#[test]
fn a_child_cancelled_cleanly_is_still_only_cancelled() {
    paused().block_on(async {
        let handles = Arc::new(Mutex::new(Vec::new()));
        let h = handles.clone();
        let err = task_group(|tg| async move {
            let clean = tg.spawn(async {
                sleep(secs(100_000)).await;
            })?;
            h.lock().unwrap().push(("clean", clean));
            sleep(secs(1)).await;
            tg.cancel(CancelReason::explicit("stop"));
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        let out = outcomes(&handles).await;
        assert_eq!(
            out[0].1,
            Err(ChildError::Cancelled(CancelReason::explicit("stop")))
        );
    });
}

/// `Duration::MAX` means "no limit" wherever a duration bounds a wait: a grace period, a
/// scope or group timeout, the runtime's shutdown timeout and the blocking pool's
/// keep-alive. None of them may overflow the clock (`run` gives its root scope an endless
/// grace period, so a Ctrl-C used to panic there).
#[test]
fn duration_max_is_no_limit_and_never_overflows() {
    let rt = paused();
    rt.block_on(async {
        // A cancelled scope with an endless grace: its cooperative body still finishes.
        let scope = CancelScope::new().with_grace_period(Duration::MAX);
        let inner = scope.clone();
        let out = scope
            .run(async move {
                inner.cancel(CancelReason::explicit("stop"));
                cancelled().await;
                sleep(secs(5)).await; // cleanup inside the grace period
                7
            })
            .await;
        assert_eq!(out, Some(7));

        // A group cancelled under an endless grace: its child finishes its cleanup.
        let cleaned = Arc::new(AtomicBool::new(false));
        let c = cleaned.clone();
        let result = GroupConfig::new()
            .grace_period(Duration::MAX)
            .timeout(Duration::MAX)
            .run(|tg| async move {
                tg.spawn(async move {
                    cancelled().await;
                    sleep(secs(3)).await;
                    c.store(true, Ordering::SeqCst);
                    Ok::<_, BoxError>(())
                })?;
                tg.cancel(CancelReason::explicit("stop"));
                Ok::<_, BoxError>(())
            })
            .await;
        drop(result); // cancelled on purpose: what matters is no panic, and then
        assert!(cleaned.load(Ordering::SeqCst), "the child ran its cleanup");

        // Timeouts of Duration::MAX never fire.
        let v = ringleader::taskgroup::timeout(Duration::MAX, async { 3 }).await;
        assert_eq!(v.unwrap(), 3);
        let v = CancelScope::new()
            .with_timeout(Duration::MAX)
            .run(async { 4 })
            .await;
        assert_eq!(v, Some(4));
    });
    drop(rt);

    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(Duration::MAX)
        .build()
        .unwrap();
    let v = rt.block_on(async { ringleader::task::spawn_blocking(|| 5).await.unwrap() });
    assert_eq!(v, 5);
    rt.shutdown_timeout(Duration::MAX);
}
