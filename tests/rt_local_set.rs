//! Local tasks (`LocalSet`, `spawn_local`): futures that are not `Send` share `Rc` state and
//! run in FIFO order on the set's thread; they are woken from other threads (workers,
//! timers, the blocking pool); abort, panics and dropping the set drop their futures exactly
//! once and report through the handles; misuse panics with a message naming the fix.

mod support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ringleader::runtime::Builder;
use ringleader::task::{self, CancelReason, LocalJoinHandle, LocalSet};
use support::{paused, rt2, scaled, DropCounter};

/// Runs `f` when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Polls `f` once with a no-op waker.
fn poll_now<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

/// The panic message of a caught panic.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn rc_refcell_state_shared_by_100_local_tasks_adds_up_exactly() {
    let rt = rt2();
    let set = LocalSet::new();
    let total = Rc::new(RefCell::new(0u64));
    let handles: Vec<_> = (0..100u64)
        .map(|i| {
            let total = total.clone();
            set.spawn_local(async move {
                for _ in 0..10 {
                    // A borrow held across no await, many times per task, interleaved.
                    *total.borrow_mut() += i;
                    task::yield_now().await;
                }
                i
            })
        })
        .collect();
    assert_eq!(set.len(), 100);
    let returned: u64 = rt.block_on(set.run_until(async {
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    }));
    assert_eq!(returned, 4950);
    assert_eq!(*total.borrow(), 49_500);
    assert!(set.is_empty());
    // Only the test holds the state now: no task future survived.
    assert_eq!(Rc::strong_count(&total), 1);
}

#[test]
fn ready_tasks_run_in_spawn_order_and_a_yielding_task_goes_to_the_back() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let set = LocalSet::new();
    for name in ["a", "b", "c"] {
        let order = order.clone();
        drop(set.spawn_local(async move {
            for round in 0..3 {
                order.borrow_mut().push(format!("{name}{round}"));
                task::yield_now().await;
            }
        }));
    }
    paused().block_on(set.run_until_empty());
    assert_eq!(
        *order.borrow(),
        ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    );
}

#[test]
fn a_local_task_is_woken_by_a_worker_task_over_a_channel() {
    let rt = rt2();
    let set = LocalSet::new();
    let here = std::thread::current().id();
    let received = Rc::new(Cell::new(0u64));
    let (sum, sender_threads) = rt.block_on(set.run_until(async {
        let (tx, mut rx) = ringleader::sync::mpsc::channel::<u64>(4);
        let (done_tx, done_rx) = ringleader::sync::oneshot::channel();
        // A normal task, on a worker thread, feeds the local task.
        let sender = ringleader::spawn(async move {
            for i in 1..=200u64 {
                tx.send(i).await.unwrap();
                if i % 50 == 0 {
                    ringleader::time::sleep(Duration::from_millis(1)).await;
                }
            }
            done_tx.send(std::thread::current().id()).unwrap();
        });
        let seen = received.clone();
        let local = task::spawn_local(async move {
            let mut sum = 0;
            while let Some(i) = rx.recv().await {
                seen.set(seen.get() + 1);
                sum += i;
            }
            assert_eq!(std::thread::current().id(), here, "local tasks stay home");
            sum
        });
        let sender_thread = done_rx.await.unwrap();
        sender.await.unwrap();
        (local.await.unwrap(), sender_thread)
    }));
    assert_eq!(sum, 200 * 201 / 2);
    assert_eq!(received.get(), 200);
    assert_ne!(sender_threads, here, "the sender ran on a worker");
}

#[test]
fn sleeping_local_tasks_wake_in_deadline_order() {
    let set = LocalSet::new();
    let woke = Rc::new(RefCell::new(Vec::new()));
    for ms in [30u64, 10, 20] {
        let woke = woke.clone();
        drop(set.spawn_local(async move {
            ringleader::time::sleep(Duration::from_millis(ms)).await;
            woke.borrow_mut().push(ms);
        }));
    }
    paused().block_on(set.run_until_empty());
    assert_eq!(*woke.borrow(), [10, 20, 30]);

    // And on the real clock, with the timer driven by a multi-thread runtime.
    let set = LocalSet::new();
    let flag = Rc::new(Cell::new(false));
    let f = flag.clone();
    let sleeper = set.spawn_local(async move {
        ringleader::time::sleep(Duration::from_millis(5)).await;
        f.set(true);
    });
    rt2().block_on(set.run_until(sleeper)).unwrap();
    assert!(flag.get());
}

#[test]
fn a_spawn_blocking_result_wakes_a_local_task() {
    let rt = rt2();
    let set = LocalSet::new();
    let state = Rc::new(Cell::new(0));
    let s = state.clone();
    let out = rt.block_on(set.run_until(set.spawn_local(async move {
        let n = task::spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(5));
            21
        })
        .await
        .unwrap();
        s.set(n * 2);
        s.get()
    })));
    assert_eq!(out.unwrap(), 42);
    assert_eq!(state.get(), 42);
}

#[test]
fn aborting_before_the_first_poll_drops_the_future_unpolled() {
    let set = LocalSet::new();
    let drops = DropCounter::new();
    let polls = Rc::new(Cell::new(0));
    let (token, p) = (drops.token(), polls.clone());
    let mut handle = set.spawn_local(async move {
        let _token = token;
        p.set(p.get() + 1);
    });
    assert!(!handle.is_finished());
    handle.abort();
    // Dropped by abort itself: no drive needed.
    assert_eq!(drops.count(), 1);
    assert!(handle.is_finished());
    assert!(set.is_empty());
    let err = match poll_now(&mut handle) {
        Poll::Ready(Err(err)) => err,
        other => panic!("expected a cancelled error, got {other:?}"),
    };
    assert!(err.is_cancelled());
    assert_eq!(err.cancel_reason(), Some(&CancelReason::Aborted));
    assert_eq!(err.id(), handle.id());
    // Its queue entry is stale now: driving the set never polls it.
    paused().block_on(set.run_until_empty());
    assert_eq!(polls.get(), 0);
    assert_eq!(drops.count(), 1);
}

#[test]
fn aborting_a_sleeping_task_runs_its_drop_guard_at_once_and_reports_cancelled() {
    let set = LocalSet::new();
    let drops = DropCounter::new();
    let started = Rc::new(Cell::new(false));
    let (token, s) = (drops.token(), started.clone());
    let sleeper = set.spawn_local(async move {
        let _guard = token;
        s.set(true);
        ringleader::time::sleep(Duration::from_secs(3600)).await;
        unreachable!("aborted while asleep");
    });
    let err = rt2().block_on(set.run_until(async {
        while !started.get() {
            task::yield_now().await;
        }
        assert_eq!(drops.count(), 0);
        sleeper.abort();
        assert_eq!(
            drops.count(),
            1,
            "the future is dropped by abort, on this thread"
        );
        sleeper.await.unwrap_err()
    }));
    assert!(err.is_cancelled());
    assert_eq!(err.cancel_reason(), Some(&CancelReason::Aborted));
    assert!(set.is_empty());
}

#[test]
fn a_task_aborting_itself_is_dropped_when_its_poll_returns() {
    let set = LocalSet::new();
    let drops = DropCounter::new();
    let polls = Rc::new(Cell::new(0));
    let own_handle: Rc<RefCell<Option<LocalJoinHandle<()>>>> = Rc::default();
    let (token, p, slot, counter) = (
        drops.token(),
        polls.clone(),
        own_handle.clone(),
        drops.clone(),
    );
    let handle = set.spawn_local(async move {
        let _token = token;
        p.set(p.get() + 1);
        slot.borrow().as_ref().expect("handle stored").abort();
        // Still running: the future cannot be dropped in the middle of its own poll.
        assert_eq!(counter.count(), 0);
        task::yield_now().await;
        p.set(p.get() + 1);
    });
    *own_handle.borrow_mut() = Some(handle);
    let err = paused().block_on(set.run_until(async {
        let handle = loop {
            if polls.get() > 0 {
                break own_handle.borrow_mut().take().unwrap();
            }
            task::yield_now().await;
        };
        handle.await.unwrap_err()
    }));
    assert!(err.is_cancelled());
    assert_eq!(
        polls.get(),
        1,
        "never polled after the poll that aborted it"
    );
    assert_eq!(drops.count(), 1);
    assert!(set.is_empty());
}

#[test]
fn aborting_a_finished_task_changes_nothing() {
    let set = LocalSet::new();
    let handle = set.spawn_local(async { 5 });
    paused().block_on(set.run_until_empty());
    assert!(handle.is_finished());
    handle.abort();
    assert_eq!(paused().block_on(handle).unwrap(), 5);
}

#[test]
fn a_panicking_task_is_reported_by_its_handle_and_the_others_keep_running() {
    let set = LocalSet::new();
    let drops = DropCounter::new();
    let progress = Rc::new(Cell::new(0));
    let token = drops.token();
    let bad = set.spawn_local(async move {
        let _token = token;
        task::yield_now().await;
        panic!("boom in a local task");
    });
    let goods: Vec<_> = (0..5)
        .map(|i| {
            let progress = progress.clone();
            set.spawn_local(async move {
                for _ in 0..3 {
                    task::yield_now().await;
                }
                progress.set(progress.get() + 1);
                i
            })
        })
        .collect();
    let (err, outputs) = rt2().block_on(set.run_until(async {
        let err = bad.await.unwrap_err();
        let mut outputs = Vec::new();
        for g in goods {
            outputs.push(g.await.unwrap());
        }
        (err, outputs)
    }));
    assert!(err.is_panic());
    assert_eq!(err.panic_message().as_deref(), Some("boom in a local task"));
    assert_eq!(drops.count(), 1, "the panicking future was dropped");
    assert_eq!(outputs, [0, 1, 2, 3, 4]);
    assert_eq!(progress.get(), 5);
    assert!(set.is_empty());
}

#[test]
fn panics_nobody_reads_go_to_the_runtimes_panic_handler() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let rt = Builder::new_current_thread()
        .on_task_panic(move |p| {
            let line = format!(
                "{} at {}",
                p.message().unwrap_or_default(),
                p.spawned_at().file()
            );
            sink.lock().unwrap().push(line);
        })
        .build()
        .unwrap();
    let set = LocalSet::new();
    rt.block_on(set.run_until(async {
        // Detached before it panics.
        drop(task::spawn_local(async { panic!("detached") }));
        // Finished with a panic, then its handle dropped unread.
        let late = task::spawn_local(async { panic!("dropped late") });
        while !late.is_finished() {
            task::yield_now().await;
        }
        drop(late);
        // Awaited: the caller saw it, so it is not reported.
        let awaited = task::spawn_local(async { panic!("awaited") });
        assert!(awaited.await.unwrap_err().is_panic());
    }));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            "detached at tests/rt_local_set.rs",
            "dropped late at tests/rt_local_set.rs"
        ]
    );
}

#[test]
fn dropping_the_set_drops_pending_futures_in_spawn_order_and_handles_report_cancelled() {
    let dropped = Rc::new(RefCell::new(Vec::new()));
    let set = LocalSet::new();
    let mut handles: Vec<_> = (0..3)
        .map(|i| {
            let dropped = dropped.clone();
            let guard = OnDrop(move || dropped.borrow_mut().push(i));
            set.spawn_local(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            })
        })
        .collect();
    // The three start; a fourth is spawned after the drive and never polled.
    paused().block_on(set.run_until(task::yield_now()));
    let unpolled = dropped.clone();
    let guard = OnDrop(move || unpolled.borrow_mut().push(3));
    handles.push(set.spawn_local(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    }));
    assert_eq!(set.len(), 4);
    assert!(dropped.borrow().is_empty());
    drop(set);
    assert_eq!(*dropped.borrow(), [0, 1, 2, 3]);
    for handle in &mut handles {
        let Poll::Ready(Err(err)) = poll_now(handle) else {
            panic!("a dropped set's task reports an error at once")
        };
        assert!(err.is_cancelled());
        assert_eq!(err.cancel_reason(), Some(&CancelReason::Shutdown));
    }
    assert_eq!(Rc::strong_count(&dropped), 1, "every future is gone");
}

#[test]
fn a_future_whose_drop_spawns_aborts_and_wakes_does_not_break_the_set_drop() {
    let set = LocalSet::new();
    let drops = DropCounter::new();
    let spawned_in_drop: Rc<RefCell<Option<LocalJoinHandle<()>>>> = Rc::default();
    let victim_handle: Rc<RefCell<Option<LocalJoinHandle<()>>>> = Rc::default();
    let victim_waker: Rc<RefCell<Option<Waker>>> = Rc::default();

    let (spawned, victim, waker) = (
        spawned_in_drop.clone(),
        victim_handle.clone(),
        victim_waker.clone(),
    );
    let (token, counter) = (drops.token(), drops.clone());
    let first = set.spawn_local(async move {
        let _token = token;
        let _guard = OnDrop(move || {
            // Spawning from a drop during the set's drop: cancelled at once, no panic.
            let late_token = counter.token();
            *spawned.borrow_mut() = Some(task::spawn_local(async move {
                let _late = late_token;
            }));
            // Aborting a sibling and waking it: no double borrow, no deadlock.
            if let Some(h) = victim.borrow().as_ref() {
                h.abort();
            }
            if let Some(w) = waker.borrow_mut().take() {
                w.wake();
            }
        });
        std::future::pending::<()>().await;
    });
    let (token, w) = (drops.token(), victim_waker.clone());
    let second = set.spawn_local(std::future::poll_fn(move |cx| {
        let _ = &token;
        *w.borrow_mut() = Some(cx.waker().clone());
        Poll::<()>::Pending
    }));
    *victim_handle.borrow_mut() = Some(second);
    paused().block_on(set.run_until(task::yield_now()));
    drop(set);
    // first's future, the future spawned in its drop, and second's future.
    assert_eq!(drops.count(), 3);
    let mut first = first;
    assert!(matches!(poll_now(&mut first), Poll::Ready(Err(e)) if e.is_cancelled()));
    let mut late = spawned_in_drop
        .borrow_mut()
        .take()
        .expect("spawned in drop");
    let Poll::Ready(Err(err)) = poll_now(&mut late) else {
        panic!("spawned into a closed set: cancelled at once")
    };
    assert_eq!(err.cancel_reason(), Some(&CancelReason::Shutdown));
    let mut second = victim_handle.borrow_mut().take().unwrap();
    let Poll::Ready(Err(err)) = poll_now(&mut second) else {
        panic!("aborted during the set's drop")
    };
    assert_eq!(err.cancel_reason(), Some(&CancelReason::Aborted));
}

#[test]
fn spawn_local_outside_a_set_panics_naming_the_fix_and_try_spawn_local_gives_the_future_back() {
    let panic = catch_unwind(|| drop(task::spawn_local(async {}))).unwrap_err();
    let msg = message(&*panic);
    assert!(msg.contains("outside a LocalSet"), "{msg}");
    assert!(msg.contains("LocalSet::run_until"), "{msg}");

    // Inside a runtime but outside any set: the same.
    let inside = paused().block_on(async {
        catch_unwind(AssertUnwindSafe(|| drop(task::spawn_local(async {})))).is_err()
    });
    assert!(inside);

    let err = task::try_spawn_local(async { 7 }).unwrap_err();
    assert!(err.to_string().contains("outside a LocalSet"), "{err}");
    let _: &dyn std::error::Error = &err;
    assert_eq!(paused().block_on(err.into_inner()), 7);

    // After a drive the current set is gone again.
    let set = LocalSet::new();
    paused().block_on(set.run_until(async {
        drop(task::try_spawn_local(async {}).expect("inside run_until"));
    }));
    assert!(task::try_spawn_local(async {}).is_err());
}

#[test]
fn local_tasks_spawn_local_tasks_into_the_innermost_set() {
    let outer = LocalSet::new();
    let total = paused().block_on(outer.run_until(async {
        // Three generations through the free function.
        let child = task::spawn_local(async {
            let grandchild = task::spawn_local(async {
                let great = task::spawn_local(async { 1 });
                great.await.unwrap() + 10
            });
            grandchild.await.unwrap() + 100
        });
        let mut total = child.await.unwrap();

        // A set driven inside a local task: spawns inside it go to it, and spawns after it
        // go back to the outer set.
        let inner_runs = task::spawn_local(async {
            let inner = LocalSet::new();
            let in_inner = inner
                .run_until(async {
                    let h = task::spawn_local(async { 1000 });
                    assert_eq!(inner.len(), 1, "spawned into the inner set");
                    h.await.unwrap()
                })
                .await;
            let after = task::spawn_local(async { 10_000 });
            assert_eq!(inner.len(), 0, "spawned into the outer set again");
            (in_inner, after.await.unwrap())
        });
        let (value, after) = inner_runs.await.unwrap();
        total += value + after;
        total
    }));
    assert_eq!(total, 11_111);
    assert!(outer.is_empty());
}

#[test]
fn run_until_empty_and_awaiting_the_set_wait_for_every_task_including_late_spawns() {
    let rt = rt2();
    let set = LocalSet::new();
    let done = Rc::new(Cell::new(0));
    for i in 0..5u64 {
        let done = done.clone();
        drop(set.spawn_local(async move {
            ringleader::time::sleep(Duration::from_millis(i)).await;
            // Spawned while the set is draining: still waited for.
            let done2 = done.clone();
            drop(task::spawn_local(async move {
                task::yield_now().await;
                done2.set(done2.get() + 1);
            }));
            done.set(done.get() + 1);
        }));
    }
    rt.block_on(set.run_until_empty());
    assert_eq!(done.get(), 10);
    assert!(set.is_empty());
    // An empty set is done at once.
    rt.block_on(set.run_until_empty());

    // tokio's shape: awaiting the set itself.
    let set = LocalSet::new();
    let d = done.clone();
    drop(set.spawn_local(async move {
        task::yield_now().await;
        d.set(d.get() + 1);
    }));
    rt.block_on(set);
    assert_eq!(done.get(), 11);
}

#[test]
fn a_waker_woken_by_another_thread_after_the_set_is_dropped_does_nothing() {
    let drops = DropCounter::new();
    let (waker_tx, waker_rx) = std::sync::mpsc::channel::<Waker>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let waker = waker_rx.recv().unwrap();
        go_rx.recv().unwrap();
        let owned = waker.clone();
        waker.wake_by_ref();
        owned.wake();
        drop(waker);
    });
    let set = LocalSet::new();
    let token = drops.token();
    let mut sent = Some(waker_tx);
    drop(set.spawn_local(std::future::poll_fn(move |cx| {
        let _ = &token;
        if let Some(tx) = sent.take() {
            tx.send(cx.waker().clone()).unwrap();
        }
        Poll::<()>::Pending
    })));
    paused().block_on(set.run_until(task::yield_now()));
    drop(set);
    assert_eq!(
        drops.count(),
        1,
        "the future went with the set, not with the waker"
    );
    go_tx.send(()).unwrap();
    holder
        .join()
        .expect("waking a dropped set's task does not panic");
}

#[test]
fn wakes_racing_with_the_driver_are_never_lost() {
    let rt = rt2();
    let set = LocalSet::new();
    let rounds = scaled(2000);
    let got = rt.block_on(set.run_until(async {
        let mut got = 0;
        for i in 0..rounds {
            let (tx, rx) = ringleader::sync::oneshot::channel();
            // The worker sends while the set is anywhere in its drive.
            drop(ringleader::spawn(async move {
                let _ = tx.send(i);
            }));
            let local = task::spawn_local(async move { rx.await.unwrap() });
            got += usize::from(local.await.unwrap() == i);
        }
        got
    }));
    assert_eq!(got, rounds);
}

#[test]
fn each_local_poll_has_a_cooperative_budget_of_its_own() {
    // Two tasks each spend 100 units (under INITIAL_BUDGET): with a fresh budget per
    // local poll each finishes in one poll; sharing the driver's budget, the second would
    // run out and need a second poll.
    let set = LocalSet::new();
    let polls: Vec<Rc<Cell<usize>>> = (0..2).map(|_| Rc::default()).collect();
    for count in &polls {
        let count = count.clone();
        let mut spend = Box::pin(async {
            for _ in 0..100 {
                ringleader::coop::consume_budget().await;
            }
        });
        drop(set.spawn_local(std::future::poll_fn(move |cx| {
            count.set(count.get() + 1);
            spend.as_mut().poll(cx)
        })));
    }
    paused().block_on(set.run_until_empty());
    assert_eq!(polls.iter().map(|p| p.get()).collect::<Vec<_>>(), [1, 1]);

    // And the budget runs out: a task that always finds its channel ready yields, so its
    // neighbour runs before it is done.
    let log = Rc::new(RefCell::new(Vec::new()));
    let (tx, mut rx) = ringleader::sync::mpsc::unbounded_channel::<u32>();
    for i in 0..1000 {
        tx.send(i).unwrap();
    }
    drop(tx);
    let l = log.clone();
    drop(set.spawn_local(async move {
        while rx.recv().await.is_some() {}
        l.borrow_mut().push("drained");
    }));
    let l = log.clone();
    drop(set.spawn_local(async move {
        task::yield_now().await;
        l.borrow_mut().push("neighbour");
    }));
    // Driven from a plain thread's loop, outside any runtime budget.
    let mut drive = set.run_until_empty();
    while poll_now(&mut drive).is_pending() {}
    assert_eq!(*log.borrow(), ["neighbour", "drained"]);
}

#[test]
fn driving_a_set_from_inside_its_own_task_panics_with_a_clear_message() {
    let set = Rc::new(LocalSet::new());
    let again = set.clone();
    let handle = set.spawn_local(async move {
        again.run_until(async {}).await;
    });
    let err = paused().block_on(set.run_until(handle)).unwrap_err();
    let msg = err.panic_message().unwrap_or_default();
    assert!(msg.contains("from inside its own task"), "{msg}");
    assert!(set.is_empty());
    assert_eq!(
        Rc::strong_count(&set),
        1,
        "the task's clone went with its future"
    );
}

#[test]
fn run_until_nests_inside_its_own_future() {
    let set = LocalSet::new();
    let out = paused().block_on(set.run_until(async {
        let a = task::spawn_local(async { 1 });
        let b = set
            .run_until(async {
                let b = task::spawn_local(async { 2 });
                b.await.unwrap()
            })
            .await;
        a.await.unwrap() + b
    }));
    assert_eq!(out, 3);
}

#[test]
fn dropping_run_until_leaves_the_tasks_for_the_next_drive() {
    let set = LocalSet::new();
    let steps = Rc::new(Cell::new(0));
    let s = steps.clone();
    let handle = set.spawn_local(async move {
        for _ in 0..4 {
            s.set(s.get() + 1);
            ringleader::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let rt = paused();
    rt.block_on(async {
        let mut drive = std::pin::pin!(set.run_until(std::future::pending::<()>()));
        assert!(support::poll_once(drive.as_mut()).await.is_none());
    });
    // One step, then the task sleeps; the drive was dropped with it still in the set.
    assert_eq!(steps.get(), 1);
    assert_eq!(set.len(), 1);
    rt.block_on(set.run_until(handle)).unwrap();
    assert_eq!(steps.get(), 4);
}

#[test]
fn local_task_ids_come_from_the_task_id_space() {
    let rt = rt2();
    let set = LocalSet::new();
    rt.block_on(set.run_until(async {
        let local_a = task::spawn_local(async {});
        let global = ringleader::spawn(async {});
        let local_b = task::spawn_local(async {});
        let ids = [local_a.id(), global.id(), local_b.id()];
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        assert!(format!("{local_a:?}").contains("LocalJoinHandle"));
        local_a.await.unwrap();
        local_b.await.unwrap();
        global.await.unwrap();
    }));
    assert!(format!("{set:?}").contains("len: 0"));
}

#[test]
fn inside_a_local_task_task_id_is_its_own_while_polled_and_dropped() {
    struct RecordIdOnDrop(Rc<Cell<Option<task::Id>>>);
    impl Drop for RecordIdOnDrop {
        fn drop(&mut self) {
            self.0.set(task::try_id());
        }
    }
    let rt = rt2();
    let set = LocalSet::new();
    rt.block_on(set.run_until(async {
        // The driving future is block_on's root: no task of its own.
        assert_eq!(task::try_id(), None);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let outer = task::spawn_local(async move {
            s.borrow_mut().push(task::id());
            // The id survives a suspension, and a nested set's task shadows it only
            // while that task runs.
            task::yield_now().await;
            let inner_set = LocalSet::new();
            let s2 = s.clone();
            let inner = inner_set
                .run_until(async move {
                    let h = task::spawn_local(async move { task::id() });
                    let inner_id = h.id();
                    assert_eq!(h.await.unwrap(), inner_id);
                    s2.borrow_mut().push(task::id());
                    inner_id
                })
                .await;
            s.borrow_mut().push(inner);
            s.borrow_mut().push(task::id());
            assert_eq!(task::name(), None);
        });
        let outer_id = outer.id();
        outer.await.unwrap();
        let seen = seen.borrow().clone();
        assert_eq!(seen[0], outer_id);
        assert_eq!(
            seen[1], outer_id,
            "the inner set's driver is the outer local task"
        );
        assert_ne!(seen[2], outer_id);
        assert_eq!(seen[3], outer_id);
        assert_eq!(task::try_id(), None, "restored after the local tasks ran");

        // A local task aborted while suspended is dropped under its own id.
        let dropped_as = Rc::new(Cell::new(None));
        let guard = RecordIdOnDrop(dropped_as.clone());
        let pending = task::spawn_local(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        task::yield_now().await;
        let pending_id = pending.id();
        pending.abort();
        assert!(pending.await.unwrap_err().is_cancelled());
        assert_eq!(dropped_as.get(), Some(pending_id));
    }));

    // Driven from `ringleader::run`'s root, a local task still reports its own id, and
    // the root's identity (whatever it is) comes back afterwards.
    let (before, local, after) = ringleader::run(async {
        let set = LocalSet::new();
        let before = task::try_id();
        let local = set
            .run_until(async { task::spawn_local(async { task::id() }).await.unwrap() })
            .await;
        (before, local, task::try_id())
    });
    assert_eq!(before, after);
    assert_ne!(Some(local), before);
}

#[test]
fn run_until_on_ringleader_run() {
    let out = ringleader::run(async {
        let set = LocalSet::new();
        let shared = Rc::new(RefCell::new(String::new()));
        let s = shared.clone();
        set.run_until(async move {
            task::spawn_local(async move { s.borrow_mut().push_str("ran") })
                .await
                .unwrap();
        })
        .await;
        // The task's clone went with its future.
        Rc::try_unwrap(shared).unwrap().into_inner()
    });
    assert_eq!(out, "ran");
}

#[ringleader::test]
async fn run_until_inside_ringleader_test() {
    let set = LocalSet::new();
    let counter = Rc::new(Cell::new(0));
    let c = counter.clone();
    let worker_value = set
        .run_until(async move {
            let from_worker = ringleader::spawn(async { 40 }).await.unwrap();
            task::spawn_local(async move {
                c.set(c.get() + 2);
                from_worker + c.get()
            })
            .await
            .unwrap()
        })
        .await;
    assert_eq!(worker_value, 42);
    assert_eq!(counter.get(), 2);
}
