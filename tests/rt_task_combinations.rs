//! Every combination of how a task ends and how its handles are used drops each thing once.
//!
//! The product of: the task panics in poll / panics while dropping its future / neither;
//! its output panics on drop / not; the JoinHandle is awaited / dropped before completion /
//! dropped after completion; abort through the JoinHandle / an AbortHandle / none.

mod support;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use support::{rt2, DropCounter, DropToken};

#[derive(Clone, Copy, Debug, PartialEq)]
enum TaskEnd {
    PanicInPoll,
    PanicInDrop,
    Normal,
}
#[derive(Clone, Copy, Debug, PartialEq)]
enum Join {
    Awaited,
    DroppedBefore,
    DroppedAfter,
}
#[derive(Clone, Copy, Debug, PartialEq)]
enum Abort {
    ViaJoinHandle,
    ViaAbortHandle,
    None,
}

/// Opens once; wakes whoever waits.
#[derive(Clone, Default)]
struct Gate(Arc<(AtomicBool, Mutex<Option<Waker>>)>);
impl Gate {
    fn open(&self) {
        self.0 .0.store(true, Ordering::SeqCst);
        if let Some(w) = self.0 .1.lock().unwrap().take() {
            w.wake();
        }
    }
}
impl Future for Gate {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0 .1.lock().unwrap() = Some(cx.waker().clone());
        if self.0 .0.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

struct Guard {
    _token: DropToken,
    panic: bool,
}
impl Drop for Guard {
    fn drop(&mut self) {
        if self.panic && !std::thread::panicking() {
            panic!("guard panics on drop");
        }
    }
}

/// A future that owns a guard beside the future it polls.
struct WithGuard<F> {
    inner: Pin<Box<F>>,
    _guard: Guard,
}
impl<F: Future> Future for WithGuard<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn every_combination_drops_the_future_and_output_exactly_once() {
    let rt = rt2();
    let ends = [TaskEnd::PanicInPoll, TaskEnd::PanicInDrop, TaskEnd::Normal];
    let joins = [Join::Awaited, Join::DroppedBefore, Join::DroppedAfter];
    let aborts = [Abort::ViaJoinHandle, Abort::ViaAbortHandle, Abort::None];
    let mut cases = 0;
    for end in ends {
        for output_panics in [true, false] {
            for join in joins {
                for abort in aborts {
                    run_case(&rt, end, output_panics, join, abort);
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 54);
}

fn run_case(
    rt: &ringleader::runtime::Runtime,
    end: TaskEnd,
    output_panics: bool,
    join: Join,
    abort: Abort,
) {
    let case = format!("{end:?} output_panics={output_panics} {join:?} abort={abort:?}");
    let future_drops = DropCounter::new();
    let output_drops = DropCounter::new();
    let gate = Gate::default();
    let (g, ft, oc) = (gate.clone(), future_drops.token(), output_drops.clone());
    // The guard lives in the future itself (not in an async block's locals), so it is dropped
    // when the runtime drops the future.
    let handle = rt.spawn(WithGuard {
        inner: Box::pin(async move {
            g.await;
            if end == TaskEnd::PanicInPoll {
                panic!("task panics in poll");
            }
            Guard {
                _token: oc.token(),
                panic: output_panics,
            }
        }),
        _guard: Guard {
            _token: ft,
            panic: end == TaskEnd::PanicInDrop,
        },
    });
    let abort_handle = handle.abort_handle();

    // Aborts happen while the task waits at the gate, so they always win.
    let aborted = abort != Abort::None && join != Join::DroppedAfter;
    let do_abort = |h: Option<&ringleader::task::JoinHandle<Guard>>| match abort {
        Abort::ViaJoinHandle => h.expect("join handle present").abort(),
        Abort::ViaAbortHandle => abort_handle.abort(),
        Abort::None => {}
    };

    match join {
        Join::Awaited => {
            do_abort(Some(&handle));
            gate.open();
            let result = rt.block_on(handle);
            match (&result, aborted, end) {
                // Cancelling drops the future, whose guard panics: the panic wins.
                (Err(e), true, TaskEnd::PanicInDrop) => assert!(e.is_panic(), "{case}: {e:?}"),
                (Err(e), true, _) => assert!(e.is_cancelled(), "{case}: {e:?}"),
                (Err(e), false, TaskEnd::PanicInPoll | TaskEnd::PanicInDrop) => {
                    assert!(e.is_panic(), "{case}: {e:?}")
                }
                (Ok(_), false, TaskEnd::Normal) => {}
                _ => panic!(
                    "{case}: unexpected result {:?}",
                    result.as_ref().map(|_| ())
                ),
            }
            // Dropping the output may panic (output_panics): that is the caller's drop.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(result)));
        }
        Join::DroppedBefore => {
            do_abort(Some(&handle));
            drop(handle);
            gate.open();
            wait_until(&case, || abort_handle.is_finished());
        }
        Join::DroppedAfter => {
            gate.open();
            wait_until(&case, || handle.is_finished());
            do_abort(Some(&handle));
            let _ = catch_unwind(AssertUnwindSafe(move || drop(handle)));
        }
    }
    let output_made = !aborted && end != TaskEnd::PanicInPoll;
    wait_until(&case, || {
        future_drops.count() >= 1 && output_drops.count() >= usize::from(output_made)
    });
    // Give any double drop a chance to show.
    std::thread::sleep(Duration::from_micros(500));
    assert_eq!(future_drops.count(), 1, "{case}: future drops");
    assert_eq!(
        output_drops.count(),
        usize::from(output_made),
        "{case}: output drops"
    );
}
