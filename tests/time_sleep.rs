//! Timers: order and resolution, cancellation, timeouts, intervals, the paused clock.

mod support;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringleader::time::{self, interval, sleep, sleep_until, timeout, Instant, MissedTickBehavior};
use support::{paused, rt2, DropCounter};

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[test]
fn a_hundred_thousand_random_sleeps_fire_in_deadline_order_within_resolution() {
    let rt = paused();
    let n = support::scaled(100_000);
    let log = Arc::new(Mutex::new(Vec::with_capacity(n)));
    rt.block_on(async {
        let start = Instant::now();
        let mut seed = 42;
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let d = Duration::from_micros(lcg(&mut seed) % 10_000_000);
                let log = log.clone();
                ringleader::spawn(async move {
                    let deadline = start + d;
                    sleep_until(deadline).await;
                    log.lock().unwrap().push((Instant::now(), deadline));
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    let log = log.lock().unwrap();
    assert_eq!(log.len(), n);
    for (woke, deadline) in log.iter() {
        assert!(woke >= deadline, "fired early");
        assert!(
            *woke - *deadline <= Duration::from_millis(1),
            "fired {:?} late",
            *woke - *deadline
        );
    }
    // Wake order is deadline order, up to the 1 ms resolution.
    for pair in log.windows(2) {
        assert!(
            pair[1].1 + Duration::from_millis(1) >= pair[0].1,
            "out of order: {pair:?}"
        );
    }
}

#[test]
fn sleeps_on_a_multi_thread_runtime_never_fire_early() {
    let rt = rt2();
    rt.block_on(async {
        let handles: Vec<_> = (0..200u64)
            .map(|i| {
                ringleader::spawn(async move {
                    let d = Duration::from_millis(i % 20);
                    let start = Instant::now();
                    sleep(d).await;
                    assert!(start.elapsed() >= d);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
}

#[test]
fn dropped_sleeps_free_their_timers() {
    let rt = rt2();
    let metrics = rt.handle().metrics();
    rt.block_on(async {
        // Unpolled: never filed at all.
        for _ in 0..support::scaled(1_000_000) {
            drop(sleep(Duration::from_secs(60)));
        }
        // Polled once (filed), then dropped: removed at once.
        for _ in 0..10_000 {
            let mut s = Box::pin(sleep(Duration::from_secs(60)));
            let waker = std::task::Waker::noop();
            let _ = s.as_mut().poll(&mut std::task::Context::from_waker(waker));
        }
    });
    assert_eq!(metrics.timers_armed(), 0);
}

use std::future::Future;

#[test]
fn a_sleep_moved_to_another_task_still_fires() {
    let rt = rt2();
    rt.block_on(async {
        let mut s = Box::pin(sleep(Duration::from_millis(20)));
        // File it here (on this thread's shard)...
        let _ = futures_poll_once(s.as_mut());
        // ...then finish it in a task on a worker.
        ringleader::spawn(s).await.unwrap();
    });
}

fn futures_poll_once<F: Future>(f: Pin<&mut F>) -> std::task::Poll<F::Output> {
    f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

#[ringleader::test(start_paused = true)]
async fn timeout_returns_elapsed_and_drops_the_inner_future() {
    let dropped = DropCounter::new();
    let token = dropped.token();
    let result = timeout(Duration::from_secs(3600), async move {
        let _t = token;
        std::future::pending::<()>().await
    })
    .await;
    assert!(result.is_err());
    assert_eq!(dropped.count(), 1);
    assert_eq!(timeout(Duration::from_secs(1), async { 3 }).await, Ok(3));
}

#[test]
fn a_one_hour_timeout_on_the_paused_clock_finishes_quickly_and_the_same_every_time() {
    let real = std::time::Instant::now();
    for _ in 0..3 {
        paused().block_on(async {
            let start = Instant::now();
            let r = timeout(Duration::from_secs(3600), sleep(Duration::from_secs(7200))).await;
            assert!(r.is_err());
            assert_eq!(start.elapsed(), Duration::from_secs(3600));
        });
    }
    // Generous: this guards against sleeping in real time, not a timing target.
    assert!(real.elapsed() < Duration::from_secs(30));
}

#[ringleader::test(start_paused = true)]
async fn interval_policies_keep_their_cadence() {
    let period = Duration::from_millis(100);
    for (policy, expected) in [
        // Busy for 350 ms after the first tick, then tick 4 more times. `tick` returns
        // each tick's scheduled time: the late one (due at 100) still says 100.
        (MissedTickBehavior::Burst, vec![0, 100, 200, 300, 400]),
        (MissedTickBehavior::Delay, vec![0, 100, 450, 550, 650]),
        (MissedTickBehavior::Skip, vec![0, 100, 400, 500, 600]),
    ] {
        let start = Instant::now();
        let mut iv = interval(period);
        iv.set_missed_tick_behavior(policy);
        let mut ticks = vec![iv.tick().await];
        time::advance(Duration::from_millis(350)).await;
        for _ in 0..4 {
            ticks.push(iv.tick().await);
        }
        let got: Vec<u64> = ticks
            .iter()
            .map(|t| (*t - start).as_millis() as u64)
            .collect();
        assert_eq!(got, expected, "{policy:?}");
    }
}

#[ringleader::test(start_paused = true)]
async fn advance_fires_due_timers() {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let h = ringleader::spawn(async move {
        sleep(Duration::from_secs(10)).await;
        f.fetch_add(1, Ordering::SeqCst);
    });
    ringleader::task::yield_now().await;
    time::advance(Duration::from_secs(5)).await;
    assert_eq!(fired.load(Ordering::SeqCst), 0);
    time::advance(Duration::from_secs(5)).await;
    h.await.unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 1);
}

#[test]
fn sleep_outside_a_runtime_panics_with_a_clear_message() {
    let err = std::panic::catch_unwind(|| drop(sleep(Duration::from_secs(1)))).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("inside a ringleader runtime"), "{msg}");
}

#[ringleader::test(start_paused = true)]
async fn a_timeout_counts_from_its_first_poll_and_timeout_at_from_its_instant() {
    let start = Instant::now();
    let relative = timeout(Duration::from_secs(10), std::future::pending::<()>());
    let absolute = time::timeout_at(
        start + Duration::from_secs(12),
        std::future::pending::<()>(),
    );
    // Neither is polled for 5 s.
    sleep(Duration::from_secs(5)).await;
    assert!(absolute.await.is_err());
    assert_eq!(Instant::now() - start, Duration::from_secs(12));
    assert!(relative.await.is_err());
    // First polled at 12 s, so it elapsed at 22 s, not at 10 s.
    assert_eq!(Instant::now() - start, Duration::from_secs(22));
}

#[ringleader::test(start_paused = true)]
async fn a_timeout_around_a_ready_future_returns_its_value_even_with_a_zero_duration() {
    assert_eq!(timeout(Duration::ZERO, async { 7 }).await.ok(), Some(7));
    let out = timeout(Duration::ZERO, sleep(Duration::from_millis(1))).await;
    assert!(out.is_err(), "a zero timeout elapses at the first wait");
}

#[ringleader::test]
async fn a_sleep_first_polled_after_its_deadline_completes_at_once() {
    let late = sleep(Duration::from_millis(2));
    // Block the thread past the deadline before the first poll: the timer is filed in the
    // past and must fire at the wheel's next look, not wait for anything else.
    std::thread::sleep(Duration::from_millis(20));
    let out = timeout(Duration::from_secs(30), late).await;
    assert!(out.is_ok(), "the late sleep never fired");
}

#[test]
fn timers_filed_behind_cancelled_ones_fire_on_a_running_and_a_paused_clock() {
    // Filed and dropped on a running clock (the wheel may keep their expiry as an early
    // hint), then shorter and longer sleeps: each fires, and the paused clock lands on the
    // live deadline.
    let rt = rt2();
    let metrics = rt.handle().metrics();
    rt.block_on(async {
        for _ in 0..100 {
            let mut far = Box::pin(sleep(Duration::from_secs(3600)));
            let _ = futures_poll_once(far.as_mut());
        }
        sleep(Duration::from_millis(5)).await;
        let mut far = Box::pin(sleep(Duration::from_secs(3600)));
        let _ = futures_poll_once(far.as_mut());
        drop(far);
        time::pause();
        let start = Instant::now();
        sleep(Duration::from_secs(7200)).await;
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(7200), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(7201), "{elapsed:?}");
    });
    assert_eq!(metrics.timers_armed(), 0);
}

#[test]
fn an_interval_is_a_stream_of_its_ticks() {
    use futures_util::StreamExt;
    paused().block_on(async {
        let start = Instant::now();
        let ticks: Vec<Duration> = interval(Duration::from_secs(2))
            .take(3)
            .map(|at| at - start)
            .collect()
            .await;
        assert_eq!(
            ticks,
            [
                Duration::ZERO,
                Duration::from_secs(2),
                Duration::from_secs(4)
            ]
        );
    });
}
