//! Loop callbacks (call_soon) and done callbacks (add_done_callback).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::Poll;

use ringleader::task::TaskOutcome;
use support::rt2;

#[test]
fn call_soon_runs_callbacks_in_fifo_order_per_caller() {
    let rt = rt2();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    let callers: Vec<_> = (0..3)
        .map(|caller| {
            let handle = rt.handle().clone();
            let log = log.clone();
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                for i in 0..1_000 {
                    let log = log.clone();
                    let done_tx = done_tx.clone();
                    handle.call_soon(move || {
                        log.lock().unwrap().push((caller, i));
                        if i == 999 {
                            done_tx.send(()).unwrap();
                        }
                    });
                }
            })
        })
        .collect();
    for c in callers {
        c.join().unwrap();
    }
    for _ in 0..3 {
        done_rx.recv().unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3_000);
    for caller in 0..3 {
        let seq: Vec<_> = log
            .iter()
            .filter(|(c, _)| *c == caller)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(
            seq,
            (0..1_000).collect::<Vec<_>>(),
            "caller {caller} out of order"
        );
    }
}

#[test]
fn a_cancelled_call_soon_never_runs() {
    let rt = rt2();
    let ran = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    // Hold the drainer busy so the cancel lands before the callback is reached.
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    rt.handle().call_soon(move || {
        gate_rx.recv().unwrap();
    });
    let r = ran.clone();
    let cancelled = rt.handle().call_soon(move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    rt.handle().call_soon(move || tx.send(()).unwrap());
    cancelled.cancel();
    assert!(cancelled.cancelled());
    gate_tx.send(()).unwrap();
    rx.recv().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn a_done_callback_runs_once_with_the_outcome() {
    let rt = rt2();
    rt.block_on(async {
        let (tx, rx) = mpsc::channel();
        let ok = ringleader::spawn(async { 1 });
        let t = tx.clone();
        ok.add_done_callback(move |o| t.send(("ok", o)).unwrap());
        ok.await.unwrap();

        let panicked = ringleader::spawn(async { panic!("x") });
        let t = tx.clone();
        panicked.add_done_callback(move |o| t.send(("panic", o)).unwrap());
        let _ = panicked.await;

        let cancelled = ringleader::spawn(std::future::pending::<()>());
        let t = tx.clone();
        cancelled.add_done_callback(move |o| t.send(("cancel", o)).unwrap());
        cancelled.abort();
        let _ = cancelled.await;

        // Registered after completion: scheduled with call_soon (as asyncio), so it runs
        // on a worker while this thread waits below.
        let finished = ringleader::spawn(async {});
        while !finished.is_finished() {
            ringleader::task::yield_now().await;
        }
        let t = tx.clone();
        finished.add_done_callback(move |o| t.send(("late", o)).unwrap());
        drop(tx);
        let mut got: Vec<_> = rx.iter().collect();
        got.sort_by_key(|(name, _)| *name);
        assert_eq!(
            got,
            vec![
                ("cancel", TaskOutcome::Cancelled),
                ("late", TaskOutcome::Completed),
                ("ok", TaskOutcome::Completed),
                ("panic", TaskOutcome::Panicked),
            ]
        );
    });
}

/// A hook that records each task's outcome and whether the task had left the task list and
/// was not yet finished when it ran.
struct Recorder {
    handle: ringleader::runtime::Handle,
    seen: Mutex<Vec<(ringleader::task::Id, TaskOutcome, bool)>>,
}

impl ringleader::task::DoneHook for Recorder {
    fn task_done(&self, id: ringleader::task::Id, outcome: TaskOutcome) {
        let listed = self.handle.tasks().iter().any(|t| t.id == id);
        self.seen.lock().unwrap().push((id, outcome, listed));
    }
}

#[test]
fn a_done_hook_runs_once_per_task_before_the_handle_sees_it_finished() {
    let rt = rt2();
    let hook = Arc::new(Recorder {
        handle: rt.handle().clone(),
        seen: Mutex::new(Vec::new()),
    });
    rt.block_on(async {
        let builder = || ringleader::task::Builder::new().done_hook(hook.clone());
        let ok = builder().spawn(async { 1 });
        let panicked = builder().name("p").spawn(async { panic!("x") });
        let cancelled = builder().spawn(std::future::pending::<()>());
        let ids = [ok.id(), panicked.id(), cancelled.id()];
        cancelled.abort();
        assert_eq!(ok.await.unwrap(), 1);
        assert!(panicked.await.unwrap_err().is_panic());
        assert!(cancelled.await.unwrap_err().is_cancelled());
        // Every handle saw its task finished, so every hook call has happened, each once.
        let mut seen = hook.seen.lock().unwrap().clone();
        seen.sort_by_key(|(id, _, _)| *id);
        let mut expected = vec![
            (ids[0], TaskOutcome::Completed, false),
            (ids[1], TaskOutcome::Panicked, false),
            (ids[2], TaskOutcome::Cancelled, false),
        ];
        expected.sort_by_key(|(id, _, _)| *id);
        assert_eq!(seen, expected);
    });
    // Each finished task dropped its clone of the hook.
    assert_eq!(Arc::strong_count(&hook), 1);
}

#[test]
fn a_done_callback_registered_from_another_thread_while_completing_runs_exactly_once() {
    let rt = rt2();
    for _ in 0..support::scaled(2_000) {
        let calls = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let mut go_rx = Some(go_rx);
        let h = rt.spawn(std::future::poll_fn(move |cx| {
            // Finish on the first poll after the go signal.
            if let Some(rx) = &go_rx {
                if rx.lock().unwrap().try_recv().is_ok() {
                    go_rx = None;
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }));
        let abort = h.abort_handle();
        let c = calls.clone();
        let registrar = std::thread::spawn(move || {
            abort.add_done_callback(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            })
        });
        go_tx.send(()).unwrap();
        registrar.join().unwrap();
        rt.block_on(h).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn call_later_runs_after_its_delay_and_a_cancelled_one_never_runs() {
    let rt = ringleader::runtime::Builder::new_current_thread()
        .start_paused(true)
        .build()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let handle = rt.handle().clone();
    rt.block_on(async move {
        let start = ringleader::time::Instant::now();
        let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
        handle.call_later(std::time::Duration::from_secs(2), move || {
            l1.lock().unwrap().push("two")
        });
        handle.call_later(std::time::Duration::from_secs(1), move || {
            l2.lock().unwrap().push("one")
        });
        let cancelled = handle.call_later(std::time::Duration::from_secs(1), move || {
            l3.lock().unwrap().push("cancelled")
        });
        cancelled.cancel();
        handle.call_at(start + std::time::Duration::from_secs(3), {
            let log = log.clone();
            move || log.lock().unwrap().push("three")
        });
        ringleader::time::sleep(std::time::Duration::from_secs(4)).await;
        assert_eq!(*log.lock().unwrap(), vec!["one", "two", "three"]);
    });
    // The cancelled callback's timer was freed at once, not left to fire.
    assert_eq!(rt.handle().metrics().timers_armed(), 0);
}

#[test]
fn outcome_is_none_until_the_task_finishes_then_says_how() {
    let rt = rt2();
    rt.block_on(async {
        let (go_tx, go_rx) = ringleader::sync::oneshot::channel::<()>();
        let waiting = ringleader::spawn(async move { go_rx.await.is_ok() });
        assert_eq!(waiting.outcome(), None);
        let abort = waiting.abort_handle();
        go_tx.send(()).unwrap();
        assert!(waiting.await.unwrap());
        assert_eq!(abort.outcome(), Some(TaskOutcome::Completed));

        let panicked = ringleader::spawn(async { panic!("x") });
        let abort = panicked.abort_handle();
        let _ = panicked.await;
        assert_eq!(abort.outcome(), Some(TaskOutcome::Panicked));

        let cancelled = ringleader::spawn(std::future::pending::<()>());
        let abort = cancelled.abort_handle();
        cancelled.abort();
        let _ = cancelled.await;
        assert_eq!(abort.outcome(), Some(TaskOutcome::Cancelled));
    });
}

/// asyncio schedules a callback added to a finished task with `call_soon`: it never runs
/// inside `add_done_callback` (so a caller holding a lock the callback takes is safe).
#[test]
fn a_late_done_callback_does_not_run_inside_its_caller_on_either_flavour() {
    thread_local!(static INSIDE_THE_CALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    let current = ringleader::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for rt in [rt2(), current] {
        rt.block_on(async {
            let finished = ringleader::spawn(async {});
            let abort = finished.abort_handle();
            finished.await.unwrap();
            let (tx, rx) = ringleader::sync::oneshot::channel();
            INSIDE_THE_CALL.with(|i| i.set(true));
            abort.add_done_callback(move |o| {
                let _ = tx.send((o, INSIDE_THE_CALL.with(|i| i.get())));
            });
            INSIDE_THE_CALL.with(|i| i.set(false));
            let (outcome, inside) = rx.await.unwrap();
            assert_eq!(outcome, TaskOutcome::Completed);
            assert!(!inside, "the late callback ran inside add_done_callback");
        });
    }
}
