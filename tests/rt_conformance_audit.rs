//! The runtime's task, callback and timer APIs against the documented behaviour of
//! asyncio (`asyncio-task`, `asyncio-eventloop`) and of tokio where the name is tokio's.
//! Time-based tests use the paused clock and assert order and outcomes, never durations.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ringleader::runtime::{Builder, Runtime};
use ringleader::task::{self, CancelReason, TaskOutcome};
use ringleader::time::{self, Instant, MissedTickBehavior};

mod support;

use support::{paused, paused_mt_with};

type Log<T> = Arc<Mutex<Vec<T>>>;

fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

// ----- loop callbacks -------------------------------------------------------------------

/// asyncio: "Callbacks are called in the order in which they are registered."
#[test]
fn call_soon_from_one_thread_runs_in_fifo_order_on_a_multi_thread_runtime() {
    let rt = Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let order = log();
    let (tx, rx) = mpsc::channel();
    for i in 0..500 {
        let order = order.clone();
        let tx = tx.clone();
        rt.handle().call_soon(move || {
            order.lock().unwrap().push(i);
            if i == 499 {
                tx.send(()).unwrap();
            }
        });
    }
    rx.recv().unwrap();
    assert_eq!(*order.lock().unwrap(), (0..500).collect::<Vec<_>>());
}

/// `call_soon` from a thread outside the runtime (asyncio's `call_soon_threadsafe`) runs.
#[test]
fn call_soon_from_a_foreign_thread_runs_on_both_flavours() {
    for rt in [paused(), paused_mt_with(2)] {
        let handle = rt.handle().clone();
        let (tx, rx) = ringleader::sync::oneshot::channel();
        std::thread::spawn(move || {
            handle.call_soon(move || {
                let _ = tx.send(std::thread::current().name().map(str::to_owned));
            });
        })
        .join()
        .unwrap();
        let ran = rt.block_on(async { time::timeout(Duration::from_secs(5), rx).await });
        assert!(
            matches!(ran, Ok(Ok(_))),
            "the callback scheduled from another thread never ran"
        );
    }
}

/// Equal deadlines run in the order they were scheduled, on every flavour and from
/// whichever worker scheduled them; earlier deadlines first.
#[test]
fn call_later_and_call_at_with_equal_deadlines_run_in_scheduling_order() {
    for rt in [paused(), paused_mt_with(4)] {
        let order: Log<usize> = log();
        let handle = rt.handle().clone();
        rt.block_on(async {
            let start = Instant::now();
            for i in 0..200 {
                let order = order.clone();
                if i % 2 == 0 {
                    handle.call_later(Duration::from_secs(1), move || {
                        order.lock().unwrap().push(i)
                    });
                } else {
                    handle.call_at(start + Duration::from_secs(1), move || {
                        order.lock().unwrap().push(i)
                    });
                }
            }
            // One due earlier, scheduled last: it still runs first.
            let o = order.clone();
            handle.call_later(Duration::from_millis(500), move || {
                o.lock().unwrap().push(1000)
            });
            time::sleep(Duration::from_secs(2)).await;
        });
        let got = order.lock().unwrap().clone();
        let mut want = vec![1000];
        want.extend(0..200);
        assert_eq!(got, want);
    }
}

/// Timers scheduled from tasks on different workers (different timer shards) with one
/// deadline still run in the order they were scheduled.
#[test]
fn call_later_from_tasks_on_several_workers_keeps_scheduling_order() {
    let rt = paused_mt_with(4);
    let order: Log<usize> = log();
    let handle = rt.handle().clone();
    let when = rt.block_on(async { Instant::now() + Duration::from_secs(5) });
    rt.block_on(async {
        let next = Arc::new(Mutex::new(0usize));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (handle, order, next) = (handle.clone(), order.clone(), next.clone());
            tasks.push(ringleader::spawn(async move {
                for _ in 0..25 {
                    // Take the sequence number and schedule under one lock, so the
                    // scheduling order is the sequence order.
                    {
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        let order = order.clone();
                        handle.call_at(when, move || order.lock().unwrap().push(i));
                    }
                    task::yield_now().await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        time::sleep_until(when + Duration::from_secs(1)).await;
    });
    assert_eq!(*order.lock().unwrap(), (0..200).collect::<Vec<_>>());
}

/// A cancelled `TimerHandle` never runs, whether cancelled at once, from another thread,
/// or from a callback due at the same time and scheduled before it.
#[test]
fn a_cancelled_timer_handle_never_runs() {
    for rt in [paused(), paused_mt_with(2)] {
        let ran = Arc::new(AtomicUsize::new(0));
        let handle = rt.handle().clone();
        rt.block_on(async {
            let r = ran.clone();
            let victim_slot: Arc<Mutex<Option<ringleader::CallbackHandle>>> = Arc::default();
            let slot = victim_slot.clone();
            // Due together with the victim and scheduled first: cancels it.
            handle.call_later(Duration::from_secs(1), move || {
                slot.lock().unwrap().take().unwrap().cancel();
            });
            let victim = handle.call_later(Duration::from_secs(1), move || {
                r.fetch_add(1, Ordering::SeqCst);
            });
            assert!(!victim.cancelled());
            *victim_slot.lock().unwrap() = Some(victim.clone());
            let r = ran.clone();
            let other = handle.call_later(Duration::from_secs(1), move || {
                r.fetch_add(100, Ordering::SeqCst);
            });
            assert_eq!(
                other.when(),
                Some(victim.when().unwrap()),
                "asyncio's TimerHandle.when(): the two are due together"
            );
            assert!(handle.call_soon(|| ()).when().is_none());
            std::thread::spawn(move || other.cancel()).join().unwrap();
            time::sleep(Duration::from_secs(3)).await;
            assert!(victim.cancelled());
        });
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}

// ----- yielding -------------------------------------------------------------------------

/// asyncio: "`sleep()` always suspends the current task, allowing other tasks to run";
/// `sleep(0)` is the documented way to yield.
#[test]
fn sleep_zero_and_yield_now_let_other_ready_tasks_run_first() {
    for rt in [paused(), paused_mt_with(1)] {
        rt.block_on(async {
            for how in ["sleep0", "yield_now"] {
                let order: Log<&str> = log();
                let o = order.clone();
                let main = ringleader::spawn(async move {
                    let other = {
                        let o = o.clone();
                        ringleader::spawn(async move { o.lock().unwrap().push("other") })
                    };
                    match how {
                        "sleep0" => time::sleep(Duration::ZERO).await,
                        _ => task::yield_now().await,
                    }
                    o.lock().unwrap().push("main");
                    other.await.unwrap();
                });
                main.await.unwrap();
                assert_eq!(*order.lock().unwrap(), vec!["other", "main"], "{how}");
            }
        });
    }
}

/// tokio: `sleep_until` a deadline in the past completes at once; so does a zero timeout
/// around a ready future, and `sleep(0)` completes (after its yield).
#[test]
fn past_deadlines_complete_without_waiting_for_the_clock() {
    let rt = paused();
    rt.block_on(async {
        let start = Instant::now();
        time::sleep_until(start - Duration::from_secs(10)).await;
        time::sleep(Duration::ZERO).await;
        let mut s = std::pin::pin!(time::sleep_until(start));
        assert!(s.is_elapsed());
        s.as_mut().await;
        assert_eq!(Instant::now(), start, "no time passed on the paused clock");
        assert!(time::timeout(Duration::ZERO, std::future::pending::<()>())
            .await
            .is_err());
    });
}

// ----- tasks: ids and names -------------------------------------------------------------

#[test]
fn task_ids_are_unique_and_agree_between_handle_task_and_error() {
    let rt = paused_mt_with(2);
    rt.block_on(async {
        let handles: Vec<_> = (0..500)
            .map(|_| ringleader::spawn(async { task::id() }))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for h in handles {
            let id = h.id();
            assert_eq!(h.abort_handle().id(), id);
            assert_eq!(h.await.unwrap(), id);
            assert!(seen.insert(id), "duplicate id {id:?}");
        }
        let unnamed = ringleader::spawn(async { task::name() });
        assert_eq!(unnamed.name(), None);
        assert_eq!(unnamed.await.unwrap(), None);
        let failing = task::Builder::new()
            .name("failing")
            .spawn(async { panic!("boom") });
        let id = failing.id();
        assert_eq!(failing.name(), Some("failing"));
        assert_eq!(failing.await.unwrap_err().id(), id);
        let pending = ringleader::spawn(std::future::pending::<()>());
        let id = pending.id();
        pending.abort();
        assert_eq!(pending.await.unwrap_err().id(), id);
    });
}

// ----- done callbacks -------------------------------------------------------------------

#[test]
fn done_callbacks_run_once_in_registration_order_for_every_outcome() {
    let rt = paused_mt_with(2);
    rt.block_on(async {
        for (case, want) in [
            ("value", TaskOutcome::Completed),
            ("panic", TaskOutcome::Panicked),
            ("cancel", TaskOutcome::Cancelled),
        ] {
            let (go_tx, go_rx) = ringleader::sync::oneshot::channel::<()>();
            let h = ringleader::spawn(async move {
                let _ = go_rx.await;
                if case == "panic" {
                    panic!("boom");
                }
                if case == "cancel" {
                    std::future::pending::<()>().await;
                }
            });
            let calls: Log<(usize, TaskOutcome)> = log();
            for i in 0..5 {
                let calls = calls.clone();
                h.add_done_callback(move |o| calls.lock().unwrap().push((i, o)));
            }
            if case == "cancel" {
                h.abort();
            } else {
                go_tx.send(()).unwrap();
            }
            let out = h.await;
            assert_eq!(out.is_ok(), case == "value");
            let got = calls.lock().unwrap().clone();
            let expected: Vec<_> = (0..5).map(|i| (i, want)).collect();
            assert_eq!(got, expected, "{case}");
        }
    });
}

#[test]
fn a_done_callback_added_after_the_task_finished_still_runs_once_with_its_outcome() {
    let rt = paused_mt_with(2);
    rt.block_on(async {
        let ok = ringleader::spawn(async { 1 });
        let boom = ringleader::spawn(async { panic!("boom") });
        let cancelled = ringleader::spawn(std::future::pending::<()>());
        cancelled.abort();
        let abort_ok = ok.abort_handle();
        let abort_boom = boom.abort_handle();
        let abort_cancelled = cancelled.abort_handle();
        assert_eq!(ok.await.unwrap(), 1);
        assert!(boom.await.unwrap_err().is_panic());
        assert!(cancelled.await.unwrap_err().is_cancelled());
        let calls: Log<TaskOutcome> = log();
        for h in [&abort_ok, &abort_boom, &abort_cancelled] {
            let (tx, rx) = ringleader::sync::oneshot::channel();
            let calls = calls.clone();
            h.add_done_callback(move |o| {
                calls.lock().unwrap().push(o);
                let _ = tx.send(());
            });
            rx.await.unwrap();
        }
        task::yield_now().await;
        assert_eq!(
            *calls.lock().unwrap(),
            vec![
                TaskOutcome::Completed,
                TaskOutcome::Panicked,
                TaskOutcome::Cancelled
            ]
        );
    });
}

// ----- cancellation ---------------------------------------------------------------------

#[test]
fn abort_reports_cancelled_and_a_panic_reports_panicked_never_the_other() {
    let rt = paused_mt_with(2);
    rt.block_on(async {
        let p = ringleader::spawn(async {
            task::yield_now().await;
            panic!("kaboom")
        });
        let err = p.await.unwrap_err();
        assert!(err.is_panic() && !err.is_cancelled());
        assert_eq!(err.cancel_reason(), None);
        assert_eq!(err.panic_message().as_deref(), Some("kaboom"));

        let c = ringleader::spawn(std::future::pending::<()>());
        c.abort_with(CancelReason::explicit("stop"));
        // A second reason does not replace the first.
        c.abort_with(CancelReason::Deadline);
        let err = c.await.unwrap_err();
        assert!(err.is_cancelled() && !err.is_panic());
        assert_eq!(err.cancel_reason(), Some(&CancelReason::explicit("stop")));
        let err = err.try_into_panic().unwrap_err();
        assert!(err.is_cancelled());
    });
}

/// tokio: aborting a task that is being polled on another worker takes effect when it next
/// yields; the code after that await never runs.
#[test]
fn abort_of_a_task_running_on_another_worker_takes_effect_at_its_next_await() {
    let rt = paused_mt_with(2);
    rt.block_on(async {
        let started = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let after_await = Arc::new(AtomicBool::new(false));
        let (s, r, a) = (started.clone(), release.clone(), after_await.clone());
        let h = ringleader::spawn(async move {
            s.store(true, Ordering::SeqCst);
            while !r.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            task::yield_now().await;
            a.store(true, Ordering::SeqCst);
        });
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        h.abort();
        assert!(!h.is_finished(), "the abort waits for the running poll");
        release.store(true, Ordering::SeqCst);
        let err = h.await.unwrap_err();
        assert!(err.is_cancelled());
        assert!(!after_await.load(Ordering::SeqCst));
    });
}

/// A task that finishes during the poll in which it was aborted keeps its value (tokio).
#[test]
fn a_task_aborted_during_its_last_poll_keeps_its_value() {
    let rt = paused_mt_with(2);
    rt.block_on(async {
        let started = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let (s, r) = (started.clone(), release.clone());
        let h = ringleader::spawn(async move {
            s.store(true, Ordering::SeqCst);
            while !r.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            5
        });
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        h.abort();
        release.store(true, Ordering::SeqCst);
        assert_eq!(h.await.unwrap(), 5);
    });
}

// ----- run / block_on -------------------------------------------------------------------

struct OnDrop(Option<mpsc::Sender<&'static str>>, &'static str);
impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(self.1);
        }
    }
}

/// asyncio.run: when the main coroutine ends, the tasks still alive are cancelled and the
/// loop closes; their handles report cancellation.
#[test]
fn run_cancels_the_tasks_left_when_main_returns() {
    let (tx, rx) = mpsc::channel();
    let (left, answer) = ringleader::runtime::run(async move {
        let guard = OnDrop(Some(tx), "left-over task dropped");
        let left = ringleader::spawn(async move {
            let _g = guard;
            std::future::pending::<()>().await
        });
        task::yield_now().await;
        (left, 42)
    });
    assert_eq!(answer, 42);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok("left-over task dropped")
    );
    assert!(left.is_finished());
    let err = Runtime::new().unwrap().block_on(left).unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.cancel_reason(), Some(&CancelReason::Shutdown));
}

/// A panic in the main future propagates out of `run` with its payload, and the other
/// tasks are still cancelled.
#[test]
fn a_panic_in_main_is_reported_by_run_and_the_rest_is_cancelled() {
    let (tx, rx) = mpsc::channel();
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ringleader::runtime::run(async move {
            let guard = OnDrop(Some(tx), "dropped");
            drop(ringleader::spawn(async move {
                let _g = guard;
                std::future::pending::<()>().await
            }));
            task::yield_now().await;
            panic!("main failed");
        })
    }));
    let payload = out.unwrap_err();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned());
    assert_eq!(msg.as_deref(), Some("main failed"));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("dropped"));
}

// ----- blocking -------------------------------------------------------------------------

#[test]
fn spawn_blocking_returns_its_value_and_reports_its_panic() {
    let rt = paused_mt_with(2);
    rt.block_on(async {
        let v = task::spawn_blocking(|| std::thread::current().name().map(str::to_owned));
        assert!(v.await.is_ok());
        let boom = rt_panic_blocking();
        let err = boom.await.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message().as_deref(), Some("blocking boom"));
        let v = task::to_thread(|| 6 * 7).await.unwrap();
        assert_eq!(v, 42);
    });
    // From outside the runtime, through the handle.
    let h = rt.handle().spawn_blocking(|| "outside");
    assert_eq!(rt.block_on(h).unwrap(), "outside");
}

fn rt_panic_blocking() -> ringleader::task::JoinHandle<()> {
    task::spawn_blocking(|| panic!("blocking boom"))
}

// ----- time -----------------------------------------------------------------------------

/// tokio's `MissedTickBehavior`, with ticks late by less than a period: `Delay` counts
/// the period from the late tick, `Skip` returns to the start's cadence, `Burst` catches up.
#[test]
fn interval_policies_after_a_short_delay() {
    let rt = paused();
    rt.block_on(async {
        let period = Duration::from_millis(100);
        for (policy, expected) in [
            // `tick` returns the late tick's scheduled time (200) in every policy.
            (MissedTickBehavior::Burst, vec![0, 100, 200, 300, 400]),
            (MissedTickBehavior::Delay, vec![0, 100, 200, 330, 430]),
            (MissedTickBehavior::Skip, vec![0, 100, 200, 300, 400]),
        ] {
            let start = Instant::now();
            let mut iv = time::interval(period);
            iv.set_missed_tick_behavior(policy);
            let mut ticks = vec![iv.tick().await];
            ticks.push(iv.tick().await); // at 100
            time::advance(Duration::from_millis(130)).await; // 230: the tick at 200 is late
            ticks.push(iv.tick().await);
            ticks.push(iv.tick().await);
            ticks.push(iv.tick().await);
            let got: Vec<u64> = ticks
                .iter()
                .map(|t| (*t - start).as_millis() as u64)
                .collect();
            assert_eq!(got, expected, "{policy:?}");
            assert_eq!(iv.period(), period);
        }
    });
}

/// Auto-advance on a multi-thread runtime: sleepers in several tasks wake in deadline
/// order, and the clock lands on each deadline.
#[test]
fn auto_advance_wakes_sleepers_in_deadline_order_on_a_multi_thread_runtime() {
    let rt = paused_mt_with(4);
    let order: Log<u64> = log();
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = [5u64, 1, 4, 2, 3]
            .into_iter()
            .map(|s| {
                let order = order.clone();
                ringleader::spawn(async move {
                    time::sleep(Duration::from_secs(s * 60)).await;
                    assert!(start.elapsed() >= Duration::from_secs(s * 60));
                    order.lock().unwrap().push(s);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(*order.lock().unwrap(), vec![1, 2, 3, 4, 5]);
}

/// asyncio's `Task.cancel()`: `False` if the task is already done (and nothing changes),
/// `True` otherwise, also for a second request; the message reaches the error.
#[test]
fn cancel_returns_false_for_a_finished_task_and_true_otherwise() {
    // Current-thread: nothing completes the cancelled task between the two requests.
    let rt = paused();
    rt.block_on(async {
        let done = ringleader::spawn(async { 3 });
        let abort = done.abort_handle();
        while !done.is_finished() {
            task::yield_now().await;
        }
        assert!(!done.cancel());
        assert!(!abort.cancel());
        assert!(!done.cancel_with(CancelReason::explicit("too late")));
        assert_eq!(done.await.unwrap(), 3);

        let panicked = ringleader::spawn(async { panic!("first") });
        while !panicked.is_finished() {
            task::yield_now().await;
        }
        assert!(!panicked.cancel());
        assert!(panicked.await.unwrap_err().is_panic());

        let pending = ringleader::spawn(std::future::pending::<()>());
        let abort = pending.abort_handle();
        assert!(pending.cancel_with(CancelReason::explicit("shutting down")));
        assert!(
            abort.cancel(),
            "a second request on an unfinished task is still true"
        );
        let err = pending.await.unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(
            err.cancel_reason(),
            Some(&CancelReason::explicit("shutting down"))
        );
        assert!(!abort.cancel(), "finished now");
    });
}

/// asyncio's `remove_done_callback`: a removed callback never runs, the others still run
/// in registration order; removing twice, or after it ran, reports false.
#[test]
fn a_removed_done_callback_never_runs_and_the_rest_keep_their_order() {
    let rt = paused_mt_with(2);
    rt.block_on(async {
        let (go_tx, go_rx) = ringleader::sync::oneshot::channel::<()>();
        let h = ringleader::spawn(async move {
            let _ = go_rx.await;
        });
        let calls: Log<usize> = log();
        let keys: Vec<_> = (0..5)
            .map(|i| {
                let calls = calls.clone();
                h.add_done_callback(move |_| calls.lock().unwrap().push(i))
            })
            .collect();
        // Remove the first (held inline) and one in the middle.
        assert!(h.remove_done_callback(keys[0]));
        assert!(!h.remove_done_callback(keys[0]));
        assert!(h.abort_handle().remove_done_callback(keys[3]));
        // Registered after the removals: runs last.
        let c = calls.clone();
        let late = h.add_done_callback(move |_| c.lock().unwrap().push(5));
        go_tx.send(()).unwrap();
        let abort = h.abort_handle();
        h.await.unwrap();
        assert_eq!(*calls.lock().unwrap(), vec![1, 2, 4, 5]);
        assert!(!abort.remove_done_callback(late), "it already ran");
        // Added after the task finished: scheduled with call_soon (not run inside the
        // call, as asyncio), runs once, and cannot be removed.
        thread_local!(static INSIDE_THE_CALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        let c = calls.clone();
        let (ran_tx, ran_rx) = ringleader::sync::oneshot::channel();
        INSIDE_THE_CALL.with(|i| i.set(true));
        let after = abort.add_done_callback(move |_| {
            c.lock().unwrap().push(6);
            let _ = ran_tx.send(INSIDE_THE_CALL.with(|i| i.get()));
        });
        INSIDE_THE_CALL.with(|i| i.set(false));
        assert!(!abort.remove_done_callback(after));
        assert!(!ran_rx.await.unwrap(), "a late callback ran inside add_done_callback");
        assert_eq!(*calls.lock().unwrap(), vec![1, 2, 4, 5, 6]);
    });
}
