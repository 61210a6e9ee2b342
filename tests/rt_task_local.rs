//! Task-local values (`task_local!`): a value set around a future is seen by that future
//! wherever it runs, never by another task interleaved on the same worker; scopes nest and
//! unwind; spawned tasks do not inherit; the future's own drop still sees the value.

mod support;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringleader::task;
use support::{paused, rt2};

ringleader::task_local! {
    /// The request a task serves.
    static REQUEST: u64;
    static NAME: String;
}

ringleader::task_local! {
    pub(crate) static SEEN_ON_DROP: Arc<AtomicUsize>
}

#[test]
fn many_tasks_each_see_their_own_value_across_awaits_and_workers() {
    let rt = rt2();
    let mismatches = rt.block_on(async {
        let tasks: Vec<_> = (0..64u64)
            .map(|i| {
                ringleader::spawn(REQUEST.scope(i, async move {
                    let mut wrong = 0;
                    for round in 0..200 {
                        if round % 7 == 0 {
                            ringleader::time::sleep(Duration::from_micros(50)).await;
                        } else {
                            task::yield_now().await;
                        }
                        if REQUEST.get() != i {
                            wrong += 1;
                        }
                    }
                    wrong
                }))
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(mismatches, 0);
    assert!(REQUEST.try_get().is_err());
}

#[test]
fn scopes_nest_and_the_outer_value_comes_back() {
    paused().block_on(REQUEST.scope(1, async {
        assert_eq!(REQUEST.get(), 1);
        let inner = REQUEST
            .scope(2, async {
                task::yield_now().await;
                REQUEST.get()
            })
            .await;
        assert_eq!(inner, 2);
        assert_eq!(REQUEST.get(), 1);
        // Two keys are independent.
        NAME.scope("a".to_string(), async {
            assert_eq!(NAME.with(|n| n.clone()), "a");
            assert_eq!(REQUEST.get(), 1);
        })
        .await;
        assert!(NAME.try_with(|_| ()).is_err());
    }));
}

#[test]
fn out_of_scope_reads_fail_and_with_panics_with_a_message() {
    assert!(REQUEST.try_get().is_err());
    let err = REQUEST.try_with(|v| *v).unwrap_err();
    assert_eq!(
        err.to_string(),
        "task-local value read outside a scope that sets it"
    );
    let panic = catch_unwind(|| REQUEST.get()).unwrap_err();
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("outside a scope"), "{msg}");
}

#[test]
fn a_spawned_task_does_not_inherit_unless_given_a_scope() {
    let rt = rt2();
    rt.block_on(REQUEST.scope(9, async {
        let plain = ringleader::spawn(async { REQUEST.try_get() });
        assert!(plain.await.unwrap().is_err());
        let passed = REQUEST.get();
        let scoped = ringleader::spawn(REQUEST.scope(passed, async { REQUEST.get() }));
        assert_eq!(scoped.await.unwrap(), 9);
        assert_eq!(REQUEST.get(), 9);
    }));
}

#[test]
fn sync_scope_restores_the_slot_after_a_panic() {
    REQUEST.sync_scope(1, || {
        let r = catch_unwind(|| REQUEST.sync_scope(2, || panic!("boom")));
        assert!(r.is_err());
        assert_eq!(REQUEST.get(), 1);
    });
    assert!(REQUEST.try_get().is_err());
}

#[test]
fn a_panicking_poll_leaves_no_value_behind() {
    let rt = rt2();
    let r = rt.block_on(async {
        ringleader::spawn(REQUEST.scope(5, async {
            task::yield_now().await;
            panic!("inside the scope")
        }))
        .await
    });
    assert!(r.unwrap_err().is_panic());
    // The worker that ran it must not show 5 to the next task.
    let leaked = rt.block_on(async {
        let mut leaked = 0;
        for _ in 0..32 {
            if ringleader::spawn(async { REQUEST.try_get() })
                .await
                .unwrap()
                .is_ok()
            {
                leaked += 1;
            }
        }
        leaked
    });
    assert_eq!(leaked, 0);
}

#[test]
fn entering_a_scope_inside_with_is_allowed() {
    REQUEST.sync_scope(1, || {
        REQUEST.with(|outer| {
            let inner = REQUEST.sync_scope(2, || REQUEST.get());
            assert_eq!((*outer, inner), (1, 2));
        });
    });
}

struct ReadsOnDrop;

impl Drop for ReadsOnDrop {
    fn drop(&mut self) {
        let _ = SEEN_ON_DROP.try_with(|n| n.fetch_add(1, Ordering::SeqCst));
    }
}

#[test]
fn the_future_is_dropped_inside_its_scope_and_the_value_after_it() {
    let seen = Arc::new(AtomicUsize::new(0));
    // Cancelled mid-way: the future holds a guard whose drop reads the key.
    let rt = rt2();
    rt.block_on(async {
        let fut = SEEN_ON_DROP.scope(seen.clone(), async {
            let _guard = ReadsOnDrop;
            std::future::pending::<()>().await;
        });
        let r = ringleader::time::timeout(Duration::from_millis(10), fut).await;
        assert!(r.is_err());
    });
    assert_eq!(seen.load(Ordering::SeqCst), 1, "drop ran outside the scope");
    // The value itself (a clone of `seen`) is gone with the future.
    assert_eq!(Arc::strong_count(&seen), 1);
}

#[test]
fn join_and_select_branches_see_the_scope() {
    paused().block_on(REQUEST.scope(3, async {
        let (a, b) = ringleader::join!(async { REQUEST.get() }, async {
            task::yield_now().await;
            REQUEST.get()
        });
        assert_eq!((a, b), (3, 3));
        let picked = ringleader::select! {
            v = async { REQUEST.get() * 10 } => v,
            () = std::future::pending::<()>() => 0,
        };
        assert_eq!(picked, 30);
    }));
}

#[test]
fn values_need_not_be_send_for_sync_scope_and_can_hold_cells() {
    ringleader::task_local! {
        static COUNTER: Cell<u32>;
    }
    COUNTER.sync_scope(Cell::new(0), || {
        for _ in 0..3 {
            COUNTER.with(|c| c.set(c.get() + 1));
        }
        assert_eq!(COUNTER.with(Cell::get), 3);
    });
}

#[test]
fn a_scope_future_is_send_when_its_parts_are() {
    fn assert_send<T: Send>(_: &T) {}
    let fut = REQUEST.scope(1, async { task::yield_now().await });
    assert_send(&fut);
    assert_eq!(*fut.value(), 1);
    let caught = catch_unwind(AssertUnwindSafe(|| paused().block_on(fut)));
    assert!(caught.is_ok());
}
