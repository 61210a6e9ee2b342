//! Panics are contained per task; shutdown cancels every task exactly once.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use ringleader::runtime::Builder;
use ringleader::task::CancelReason;
use support::{rt2, DropCounter};

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("boom in drop");
        }
    }
}

#[test]
fn a_panic_in_poll_is_reported_and_the_runtime_keeps_working() {
    let rt = rt2();
    rt.block_on(async {
        let err = ringleader::spawn(async { panic!("boom in poll") })
            .await
            .unwrap_err();
        assert!(err.is_panic() && !err.is_cancelled());
        assert_eq!(err.panic_message().as_deref(), Some("boom in poll"));
        let payload = err.into_panic();
        assert_eq!(*payload.downcast::<&str>().unwrap(), "boom in poll");
        // Both workers still run tasks.
        let handles: Vec<_> = (0..1000)
            .map(|i| ringleader::spawn(async move { i }))
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), i);
        }
    });
}

#[test]
fn a_panic_while_dropping_a_cancelled_future_is_reported() {
    let rt = rt2();
    let err = rt.block_on(async {
        let guard = PanicOnDrop;
        let h = ringleader::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        ringleader::task::yield_now().await;
        h.abort();
        h.await
    });
    let err = err.unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(err.panic_message().as_deref(), Some("boom in drop"));
}

#[test]
fn a_panic_while_dropping_an_unread_output_leaves_the_worker_alive() {
    let rt = rt2();
    rt.block_on(async {
        // Detached: nobody reads the output, so the runtime drops it.
        drop(ringleader::spawn(async { PanicOnDrop }));
        // Awaited then dropped by us: the panic surfaces at our drop, as with any value.
        for _ in 0..100 {
            let h = ringleader::spawn(async { 1 });
            assert_eq!(h.await.unwrap(), 1);
        }
    });
}

#[test]
fn dropping_a_runtime_with_10_000_pending_tasks_drops_each_future_once() {
    let rt = rt2();
    let drops = DropCounter::new();
    let polled = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..10_000 {
        let token = drops.token();
        let polled = polled.clone();
        handles.push(rt.spawn(std::future::poll_fn(move |_| {
            let _keep = &token;
            polled.fetch_add(1, Ordering::Relaxed);
            Poll::<()>::Pending
        })));
    }
    // Let some of them be polled (others may still sit in queues) — both must be dropped.
    std::thread::sleep(Duration::from_millis(10));
    drop(rt);
    assert_eq!(drops.count(), 10_000);
    for h in handles {
        assert!(h.is_finished());
    }
}

#[test]
fn join_handles_report_cancellation_after_shutdown() {
    let rt = rt2();
    let h = rt.spawn(std::future::pending::<()>());
    let handle = rt.handle().clone();
    drop(rt);
    let rt2 = Builder::new_current_thread().build().unwrap();
    let err = rt2.block_on(h).unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.cancel_reason(), Some(&CancelReason::Shutdown));
    // Spawning onto a shut-down runtime cancels at once instead of hanging or panicking.
    let late = handle.spawn(async { 1 });
    assert!(rt2.block_on(late).unwrap_err().is_cancelled());
}

#[test]
fn shutdown_timeout_returns_while_a_task_blocks_its_worker() {
    let rt = rt2();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let _h = rt.spawn(async move {
        s.store(1, Ordering::SeqCst);
        // Blocks its worker until the test lets it go.
        let _ = rx.recv_timeout(Duration::from_secs(30));
    });
    while started.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let begun = std::time::Instant::now();
    rt.shutdown_timeout(Duration::from_millis(50));
    assert!(begun.elapsed() < Duration::from_secs(20));
    drop(tx);
}

#[test]
fn abort_cancels_running_and_idle_tasks() {
    let rt = rt2();
    rt.block_on(async {
        let drops = DropCounter::new();
        let token = drops.token();
        let idle = ringleader::spawn(async move {
            let _t = token;
            std::future::pending::<()>().await
        });
        ringleader::task::yield_now().await;
        let abort = idle.abort_handle();
        abort.clone().abort();
        let err = idle.await.unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(err.cancel_reason(), Some(&CancelReason::Aborted));
        assert_eq!(drops.count(), 1);
        // A reason given to abort reaches the JoinError.
        let explained = ringleader::spawn(std::future::pending::<()>());
        explained.abort_with(CancelReason::explicit("no longer needed"));
        let err = explained.await.unwrap_err();
        assert_eq!(
            err.cancel_reason(),
            Some(&CancelReason::explicit("no longer needed"))
        );
        assert!(err.to_string().contains("no longer needed"));
        assert!(abort.is_finished());
        // Aborting a finished task changes nothing.
        let done = ringleader::spawn(async { 3 });
        while !done.is_finished() {
            ringleader::task::yield_now().await;
        }
        done.abort();
        assert_eq!(done.await.unwrap(), 3);
    });
}

#[test]
fn a_task_that_awaits_another_and_both_are_cancelled_leaves_no_cycle() {
    // A awaits B's handle (B holds A's waker); shutdown must free both.
    let drops = DropCounter::new();
    let rt = rt2();
    let (ta, tb) = (drops.token(), drops.token());
    let b = rt.spawn(async move {
        let _t = tb;
        std::future::pending::<()>().await
    });
    let _a = rt.spawn(async move {
        let _t = ta;
        let _ = b.await;
    });
    std::thread::sleep(Duration::from_millis(10));
    drop(rt);
    assert_eq!(drops.count(), 2);
}

/// `block_on` keeps its parker and waker on the thread between calls: a waker kept from an
/// earlier call, a call that panicked, and calls on two runtimes (one on a paused clock)
/// must leave each later call waiting exactly for its own future.
#[test]
fn repeated_block_on_calls_on_one_thread_each_wait_for_their_own_future() {
    use std::future::Future;
    use std::sync::Mutex;
    use std::task::Waker;

    let rt = rt2();
    // 1. A call that leaves its waker behind, then returns at once.
    let stale: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
    let slot = stale.clone();
    rt.block_on(std::future::poll_fn(move |cx| {
        *slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::Ready(())
    }));
    // 2. The next call waits for a value sent later, while the stale waker fires over and
    //    over: spurious wake-ups, never an early return.
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let waker = stale.lock().unwrap().take().unwrap();
    let nagger = std::thread::spawn(move || {
        while done_rx.try_recv().is_err() {
            waker.wake_by_ref();
            std::thread::yield_now();
        }
    });
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        tx.send(7).unwrap();
    });
    let polls = AtomicUsize::new(0);
    let (value, registered) = rt.block_on(async {
        let (otx, orx) = ringleader::sync::oneshot::channel();
        let forward = ringleader::task::spawn_blocking(move || otx.send(rx.recv().unwrap()));
        let mut orx = std::pin::pin!(orx);
        let v = std::future::poll_fn(|cx| {
            polls.fetch_add(1, Ordering::Relaxed);
            orx.as_mut().poll(cx)
        })
        .await
        .unwrap();
        forward.await.unwrap().unwrap();
        (v, true)
    });
    done_tx.send(()).unwrap();
    nagger.join().unwrap();
    sender.join().unwrap();
    assert_eq!((value, registered), (7, true));
    assert!(polls.load(Ordering::Relaxed) >= 1);

    // 3. A call that panics; the next one still works.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { panic!("inside block_on") })
    }));
    assert!(caught.is_err());
    assert_eq!(rt.block_on(async { 5 }), 5);

    // 4. Another runtime on the same thread, on a paused clock: auto-advance needs this
    //    thread's activity registered with that runtime and seen idle.
    let paused = Builder::new_multi_thread()
        .worker_threads(1)
        .start_paused(true)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    paused.block_on(async { ringleader::time::sleep(Duration::from_secs(3600)).await });
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "auto-advance did not happen"
    );
    assert_eq!(rt.block_on(async { 6 }), 6);
}
