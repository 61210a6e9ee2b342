//! API misuse gets a clear, documented outcome: an `Err` where the API returns a
//! `Result`, otherwise a panic whose message names the misuse and the fix. Never a hang.
//!
//! Anything that could hang runs on its own thread behind a 30 s `recv_timeout`, so a
//! regression fails the test instead of blocking CI.

mod support;

use std::any::Any;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use ringleader::runtime::{Builder, Handle, Runtime};
use support::rt2;

const HANG_LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a fresh thread; fails the test if it does not finish within 30 s.
fn within_limit<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let out = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(out);
    });
    match rx.recv_timeout(HANG_LIMIT) {
        Ok(Ok(out)) => out,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: hung for more than {HANG_LIMIT:?}"),
    }
}

fn message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// Runs `f` within the time limit and returns the message it panicked with.
fn panic_message(what: &str, f: impl FnOnce() + Send + 'static) -> String {
    let label = what.to_owned();
    within_limit(what, move || match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => panic!("{label}: expected a panic, returned normally"),
        Err(panic) => message(&*panic),
    })
}

/// Makes a runtime of one flavour.
type MakeRuntime = fn() -> Runtime;

fn current() -> Runtime {
    Builder::new_current_thread()
        .build()
        .expect("runtime builds")
}

fn assert_contains(msg: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            msg.contains(needle),
            "panic message {msg:?} does not mention {needle:?}"
        );
    }
}

// ---------------------------------------------------------------- block_on nesting

#[test]
fn block_on_inside_a_task_panics_with_advice() {
    for (name, rt) in [("multi", rt2()), ("current", current())] {
        let inner = Arc::new(current());
        let msg = panic_message(name, move || {
            let err = rt
                .block_on(rt.spawn(async move {
                    inner.block_on(async {});
                }))
                .unwrap_err();
            std::panic::resume_unwind(err.into_panic());
        });
        assert_contains(&msg, &["block_on", "inside", "instead"]);
    }
}

#[test]
fn block_on_inside_block_on_panics_with_advice() {
    let flavours: [(&str, MakeRuntime); 2] = [("multi", rt2), ("current", current)];
    for (outer_name, outer) in flavours {
        for (inner_name, inner) in flavours {
            let msg = panic_message(&format!("{outer_name} in {inner_name}"), move || {
                let outer = outer();
                let inner = inner();
                outer.block_on(async { inner.block_on(async {}) });
            });
            assert_contains(&msg, &["block_on", "inside", "instead"]);
        }
    }
}

#[test]
fn block_on_the_same_runtime_inside_its_block_on_panics() {
    for rt in [rt2(), current()] {
        let msg = panic_message("same runtime", move || {
            rt.block_on(async { rt.block_on(async {}) });
        });
        assert_contains(&msg, &["block_on", "instead"]);
    }
}

#[test]
fn block_on_works_again_after_a_nested_call_panicked() {
    within_limit("reuse after panic", || {
        let rt = rt2();
        let inner = current();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async { inner.block_on(async {}) })
        }));
        assert!(caught.is_err());
        assert_eq!(rt.block_on(async { 1 }), 1);
        assert_eq!(inner.block_on(async { 2 }), 2);
    });
}

#[test]
fn sequential_block_on_calls_work() {
    within_limit("sequential", || {
        let a = rt2();
        let b = current();
        for i in 0..3 {
            assert_eq!(a.block_on(async move { i }), i);
            assert_eq!(b.block_on(async move { i }), i);
        }
    });
}

// ---------------------------------------------------------------- outside any runtime

#[test]
fn spawn_outside_a_runtime_panics_with_advice() {
    let msg = panic_message("spawn", || drop(ringleader::spawn(async {})));
    assert_contains(&msg, &["outside", "Handle::spawn"]);
}

#[test]
fn spawn_blocking_outside_a_runtime_panics_with_advice() {
    let msg = panic_message("spawn_blocking", || {
        drop(ringleader::task::spawn_blocking(|| {}))
    });
    assert_contains(&msg, &["outside", "Handle::spawn_blocking"]);
}

#[test]
fn sleep_outside_a_runtime_panics_with_advice() {
    let msg = panic_message("sleep", || {
        drop(ringleader::time::sleep(Duration::from_millis(1)))
    });
    assert_contains(&msg, &["sleep", "inside a ringleader runtime"]);
}

#[test]
fn handle_current_outside_a_runtime_panics_and_try_current_errs() {
    let msg = panic_message("Handle::current", || drop(Handle::current()));
    assert_contains(
        &msg,
        &["Handle::current", "not inside a ringleader runtime"],
    );
    let err = within_limit("try_current", || Handle::try_current().unwrap_err());
    assert!(err.to_string().contains("not inside a ringleader runtime"));
}

#[test]
fn the_context_is_left_after_block_on_returns_or_panics() {
    within_limit("context left", || {
        let rt = rt2();
        rt.block_on(async {});
        assert!(Handle::try_current().is_err());
        let _ = catch_unwind(AssertUnwindSafe(|| rt.block_on(async { panic!("x") })));
        assert!(Handle::try_current().is_err());
    });
}

// ---------------------------------------------------------------- dropping / shutdown in async context

#[test]
fn dropping_a_runtime_inside_a_task_does_not_hang() {
    for outer in [rt2(), current()] {
        within_limit("drop inside task", move || {
            let victim = rt2();
            let h =
                victim.spawn(async { ringleader::time::sleep(Duration::from_secs(3600)).await });
            outer
                .block_on(outer.spawn(async move { drop(victim) }))
                .expect("dropping a runtime inside a task returns");
            let err = outer.block_on(h).unwrap_err();
            assert!(err.is_cancelled());
        });
    }
}

#[test]
fn dropping_a_runtime_inside_block_on_does_not_hang() {
    within_limit("drop inside block_on", || {
        let outer = current();
        let victim = rt2();
        outer.block_on(async move { drop(victim) });
    });
}

#[test]
fn a_runtime_dropping_itself_from_its_own_task_does_not_hang() {
    let flavours: [MakeRuntime; 2] = [rt2, current];
    for make in flavours {
        within_limit("self drop", move || {
            let rt = Arc::new(make());
            let (tx, rx) = mpsc::channel();
            let me = rt.clone();
            let h = rt.spawn(async move {
                tx.send(()).unwrap();
                // Last reference dropped on the runtime's own thread.
                drop(me);
            });
            // Drive a current-thread runtime until the task ran.
            rt.block_on(async {
                while rx.try_recv().is_err() {
                    ringleader::task::yield_now().await;
                }
            });
            drop(rt);
            drop(h);
        });
    }
}

#[test]
fn shutdown_timeout_and_background_inside_a_task_do_not_hang() {
    within_limit("shutdown in task", || {
        let outer = rt2();
        let a = rt2();
        let b = rt2();
        outer
            .block_on(outer.spawn(async move {
                a.shutdown_timeout(Duration::from_millis(100));
                b.shutdown_background();
            }))
            .unwrap();
    });
}

// ---------------------------------------------------------------- Builder validation

#[test]
fn builder_rejects_zero_worker_threads_naming_it() {
    let err = Builder::new_multi_thread()
        .worker_threads(0)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("worker thread"), "{err}");
}

#[test]
fn builder_rejects_zero_max_blocking_threads_naming_it() {
    let err = Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(0)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("max_blocking_threads"), "{err}");
}

#[test]
fn builder_rejects_zero_global_queue_interval_naming_it() {
    let err = Builder::new_multi_thread()
        .worker_threads(1)
        .global_queue_interval(0)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("global_queue_interval"), "{err}");
}

#[test]
fn builder_rejects_absurd_io_ring_entries_naming_it() {
    for entries in [0, 32_769, u32::MAX] {
        let err = within_limit("ring entries", move || {
            Builder::new_current_thread()
                .io_ring_entries(entries)
                .build()
                .unwrap_err()
        });
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{entries}");
        assert!(err.to_string().contains("io_ring_entries"), "{err}");
    }
}

#[test]
fn builder_accepts_small_and_maximal_io_ring_entries() {
    for entries in [1, 8, 32_768] {
        within_limit("ring entries ok", move || {
            let rt = Builder::new_current_thread()
                .io_ring_entries(entries)
                .build()
                .expect("builds");
            assert_eq!(rt.block_on(async { 3 }), 3);
        });
    }
}

// ---------------------------------------------------------------- after shutdown

#[test]
fn spawning_on_a_shut_down_runtime_reports_cancellation() {
    let flavours: [MakeRuntime; 2] = [rt2, current];
    for make in flavours {
        within_limit("spawn after shutdown", move || {
            let rt = make();
            let handle = rt.handle().clone();
            drop(rt);
            let task = handle.spawn(async { 1 });
            let blocking = handle.spawn_blocking(|| 2);
            let other = current();
            assert!(other.block_on(task).unwrap_err().is_cancelled());
            assert!(other.block_on(blocking).unwrap_err().is_cancelled());
        });
    }
}

#[test]
fn spawning_after_shutdown_timeout_reports_cancellation() {
    within_limit("spawn after shutdown_timeout", || {
        let rt = rt2();
        let handle = rt.handle().clone();
        rt.shutdown_timeout(Duration::from_secs(5));
        let other = current();
        assert!(other
            .block_on(handle.spawn(async {}))
            .unwrap_err()
            .is_cancelled());
    });
}

// ---------------------------------------------------------------- JoinHandle

/// Polls the inner future once more after it returned `Ready`: the misuse under test.
struct PollTwice<F>(F);

impl<F: Future + Unpin> Future for PollTwice<F> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Pin::new(&mut self.0).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let _ = Pin::new(&mut self.0).poll(cx);
        Poll::Ready(())
    }
}

#[test]
fn join_handle_polled_after_completion_panics_clearly() {
    let msg = panic_message("poll after completion", || {
        let rt = rt2();
        let h = rt.spawn(async { 5 });
        rt.block_on(PollTwice(h));
    });
    assert_contains(
        &msg,
        &["JoinHandle polled after completion", "stop polling"],
    );
}

#[test]
fn join_handle_polled_after_completion_outside_a_runtime_panics_clearly() {
    let msg = panic_message("poll after completion, no runtime", || {
        let rt = rt2();
        let mut h = rt.spawn(async { 5 });
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = Pin::new(&mut h).poll(&mut cx) {
                assert_eq!(out.unwrap(), 5);
                break;
            }
            thread::yield_now();
        }
        let _ = Pin::new(&mut h).poll(&mut cx);
    });
    assert_contains(
        &msg,
        &["JoinHandle polled after completion", "stop polling"],
    );
}

#[test]
fn join_handle_awaited_from_another_runtime() {
    within_limit("cross-runtime join", || {
        let a = rt2();
        let b = current();
        let c = rt2();
        let from_a = a.spawn(async {
            ringleader::time::sleep(Duration::from_millis(10)).await;
            "a"
        });
        assert_eq!(b.block_on(from_a).unwrap(), "a");
        let from_b = b.spawn(async { "b" });
        // A current-thread runtime runs tasks only while driven: drive it once.
        b.block_on(ringleader::task::yield_now());
        assert_eq!(c.block_on(c.spawn(from_b)).unwrap().unwrap(), "b");
        let from_c = c.spawn(async { 7 });
        assert_eq!(a.block_on(a.spawn(from_c)).unwrap().unwrap(), 7);
    });
}
