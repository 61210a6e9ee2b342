//! The paused clock against timers that were cancelled, or that workers were parked on in
//! real time, when it paused (or resumed): auto-advance must still reach every live
//! deadline, on every shard. The wheel keeps a removed timer's expiry as an early hint
//! while the clock runs, so workers park in real time until deadlines nobody waits for;
//! each test here is one shape of "the paused clock never moved because no worker passed
//! through park" (issue #3).
//!
//! Each test runs under a watchdog, so a regression fails with a message instead of hanging
//! the suite.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Waker};
use std::time::Duration;

use ringleader::runtime::Runtime;
use ringleader::time::{self, sleep, sleep_until, Instant};
use support::rt2;

/// Generous: real time the slowest shape needs on a loaded CI machine is well under a
/// second; this only turns a hang into a failure.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `test` on its own thread and fails if it has not finished within the watchdog.
fn within_watchdog(name: &str, test: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let runner = std::thread::spawn(move || {
        test();
        let _ = done.send(());
    });
    match finished.recv_timeout(WATCHDOG) {
        Ok(()) => runner.join().expect("test thread"),
        // The test thread panicked: re-raise its panic here.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = runner.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: hung (the paused clock never reached a live deadline)")
        }
    }
}

/// Polls once with a no-op waker: files a sleep's timer without awaiting it.
fn file<F: Future + Unpin>(f: &mut F) {
    let _ = Pin::new(f).poll(&mut Context::from_waker(Waker::noop()));
}

/// Files and drops `n` far sleeps on the current thread's shard.
fn file_and_cancel_far_sleeps(n: usize) {
    for _ in 0..n {
        let mut far = Box::pin(sleep(Duration::from_secs(3600)));
        file(&mut far);
    }
}

/// Gives the workers real time to park on whatever they saw last (a timer's real-time
/// deadline, or none). Not a timing assertion: every outcome of the race must pass.
fn let_workers_park() {
    std::thread::sleep(Duration::from_millis(20));
}

/// `d` from now on the runtime's clock.
fn after(d: Duration) -> Instant {
    Instant::now() + d
}

/// Sleeps until `deadline` on the paused clock and checks it woke on the deadline's
/// millisecond: auto-advance neither stopped short of it nor jumped past it (to a cancelled
/// timer's expiry, say). Deadlines are taken before any await: the thread of a
/// multi-thread runtime's `block_on` is not a worker, so the clock may auto-advance to
/// other timers while it runs, and a duration measured from a later `now` would drift.
async fn sleep_lands_on(deadline: Instant) {
    sleep_until(deadline).await;
    let now = Instant::now();
    assert!(now >= deadline, "woke {:?} early", deadline - now);
    assert!(
        now < deadline + Duration::from_secs(1),
        "woke {:?} past the deadline",
        now - deadline
    );
}

fn assert_no_timer_left(rt: Runtime) {
    let metrics = rt.handle().metrics();
    drop(rt);
    assert_eq!(metrics.timers_armed(), 0);
}

#[test]
fn timers_cancelled_on_every_worker_shard_then_a_pause_still_auto_advance() {
    within_watchdog("worker shards", || {
        let rt = rt2();
        rt.block_on(async {
            // Cancelled far timers on the worker shards (tasks run on either worker) and
            // on the shared shard (this thread is not a worker).
            let tasks: Vec<_> = (0..8)
                .map(|_| ringleader::spawn(async { file_and_cancel_far_sleeps(20) }))
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            file_and_cancel_far_sleeps(20);
            let_workers_park();
            time::pause();
            // A sleep on the shared shard lands exactly (nothing else wakes a worker: no
            // spawn before it), then one on a worker shard.
            sleep_lands_on(after(Duration::from_secs(7200))).await;
            ringleader::spawn(sleep_lands_on(after(Duration::from_secs(7200))))
                .await
                .unwrap();
        });
        assert_no_timer_left(rt);
    });
}

#[test]
fn pausing_while_workers_wait_for_live_real_time_timers_still_auto_advances() {
    // The workers park until live timers (not hints) in real time; the sleep filed after the
    // pause is later than them, so its filing alone wakes nobody: the pause must.
    within_watchdog("live timers", || {
        let rt = rt2();
        rt.block_on(async {
            let mut held = Box::pin(sleep(Duration::from_secs(3600)));
            file(&mut held);
            let on_worker = ringleader::spawn(async {
                let start = Instant::now();
                sleep(Duration::from_secs(3600)).await;
                start.elapsed()
            });
            let_workers_park();
            time::pause();
            sleep_lands_on(after(Duration::from_secs(7200))).await;
            assert!(held.is_elapsed());
            let waited = on_worker.await.unwrap();
            assert!(waited >= Duration::from_secs(3600), "{waited:?}");
        });
        assert_no_timer_left(rt);
    });
}

#[test]
fn timers_cancelled_after_the_pause_are_skipped_by_auto_advance() {
    // Pause first, then cancel: the published expiry is exact, so the clock lands on the
    // short live sleep, not on (or past) the cancelled deadlines.
    within_watchdog("cancelled after pause", || {
        let rt = rt2();
        rt.block_on(async {
            time::pause();
            let tasks: Vec<_> = (0..4)
                .map(|_| ringleader::spawn(async { file_and_cancel_far_sleeps(20) }))
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            file_and_cancel_far_sleeps(20);
            sleep_lands_on(after(Duration::from_secs(10))).await;
            let on_worker = ringleader::spawn(sleep_lands_on(after(Duration::from_secs(10))));
            on_worker.await.unwrap();
        });
        assert_no_timer_left(rt);
    });
}

#[test]
fn a_cancelled_timer_whose_deadline_had_passed_leaves_no_stale_expiry() {
    within_watchdog("passed deadline", || {
        let rt = rt2();
        rt.block_on(async {
            // Running clock: filed, its deadline passes unfired (this thread blocks), then
            // it is dropped: the published expiry is now in the past.
            let mut passed = Box::pin(sleep(Duration::from_millis(1)));
            file(&mut passed);
            std::thread::sleep(Duration::from_millis(5));
            drop(passed);
            time::pause();
            sleep_lands_on(after(Duration::from_secs(7200))).await;
            // Paused clock: a sleep made, then the clock advanced past its deadline before
            // its first poll files it (in the past, due at once), then dropped.
            let mut late = Box::pin(sleep(Duration::from_secs(5)));
            time::advance(Duration::from_secs(6)).await;
            file(&mut late);
            drop(late);
            sleep_lands_on(after(Duration::from_secs(7200))).await;
        });
        assert_no_timer_left(rt);
    });
}

#[test]
fn resuming_the_clock_wakes_workers_parked_without_a_timeout() {
    // Paused, with a blocking job running (so no auto-advance), the workers park with no
    // timeout. Resuming must make them take up the sleep's real deadline.
    within_watchdog("resume", || {
        let rt = rt2();
        rt.block_on(async {
            time::pause();
            let (release, hold) = mpsc::channel::<()>();
            let blocker = ringleader::task::spawn_blocking(move || {
                let _ = hold.recv();
            });
            let sleeper = ringleader::spawn(sleep(Duration::from_millis(50)));
            let_workers_park();
            time::resume();
            sleeper.await.unwrap();
            release.send(()).unwrap();
            blocker.await.unwrap();
        });
        assert_no_timer_left(rt);
    });
}

#[test]
fn pausing_with_no_timers_and_resuming_leaves_sleeps_working() {
    // The unparks of pause and resume find workers in every state; sleeps then still fire
    // on both clocks.
    within_watchdog("pause and resume", || {
        let rt = rt2();
        rt.block_on(async {
            for _ in 0..20 {
                time::pause();
                let deadline = after(Duration::from_secs(60));
                let on_worker = ringleader::spawn(sleep_lands_on(deadline));
                sleep_lands_on(deadline).await;
                on_worker.await.unwrap();
                time::resume();
                sleep(Duration::from_millis(1)).await;
                ringleader::spawn(sleep(Duration::from_millis(1)))
                    .await
                    .unwrap();
            }
        });
        assert_no_timer_left(rt);
    });
}

#[test]
fn the_paused_clock_stands_still_while_a_block_on_future_runs() {
    // asyncio's and tokio's paused-clock tests rely on this: time jumps only when *every*
    // task is waiting, and the `block_on` future is one of them even on a thread that
    // drives no worker. Here both workers go idle on a task's 1 s sleep while the block_on
    // future is still busy; the clock must not move until the future itself waits.
    within_watchdog("block_on busy", || {
        let rt = ringleader::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .start_paused(true)
            .build()
            .expect("runtime");
        for _ in 0..5 {
            rt.block_on(async {
                let start = Instant::now();
                let sleeper = ringleader::spawn(async { sleep(Duration::from_secs(1)).await });
                // Busy on this thread (not awaiting) long enough for the workers to poll the
                // sleeper and park.
                std::thread::sleep(Duration::from_millis(30));
                assert_eq!(
                    Instant::now(),
                    start,
                    "the clock moved under a running block_on"
                );
                assert!(!sleeper.is_finished());
                sleep(Duration::from_millis(500)).await;
                let at = Instant::now() - start;
                assert!(
                    at >= Duration::from_millis(500) && at < Duration::from_millis(501),
                    "{at:?}"
                );
                assert!(
                    !sleeper.is_finished(),
                    "the 1 s sleep ended before the 500 ms one"
                );
                sleeper.await.expect("sleeper");
                let at = Instant::now() - start;
                assert!(
                    at >= Duration::from_secs(1) && at < Duration::from_millis(1001),
                    "{at:?}"
                );
            });
        }
    });
}
