//! The blocking pool: volume from concurrent spawners, shutdown, abort of queued jobs.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ringleader::runtime::Builder;
use ringleader::task;
use support::{rt2, DropCounter};

#[test]
fn ten_thousand_closures_from_eight_tasks_all_run() {
    let rt = rt2();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let sum = rt.block_on(async move {
        let spawners: Vec<_> = (0..8)
            .map(|t| {
                let r = r.clone();
                ringleader::spawn(async move {
                    let handles: Vec<_> = (0..1_250u64)
                        .map(|i| {
                            let r = r.clone();
                            task::spawn_blocking(move || {
                                r.fetch_add(1, Ordering::Relaxed);
                                t * 10_000 + i
                            })
                        })
                        .collect();
                    let mut sum = 0;
                    for h in handles {
                        sum += h.await.unwrap();
                    }
                    sum
                })
            })
            .collect();
        let mut sum = 0;
        for s in spawners {
            sum += s.await.unwrap();
        }
        sum
    });
    assert_eq!(ran.load(Ordering::Relaxed), 10_000);
    let expected: u64 = (0..8u64)
        .map(|t| t * 10_000 * 1_250 + (0..1_250).sum::<u64>())
        .sum();
    assert_eq!(sum, expected);
}

#[test]
fn to_thread_returns_the_value_and_reports_panics() {
    let rt = rt2();
    rt.block_on(async {
        assert_eq!(task::to_thread(|| 6 * 7).await.unwrap(), 42);
        let err = task::to_thread(|| panic!("blocking boom"))
            .await
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message().as_deref(), Some("blocking boom"));
    });
    // From outside the runtime, through the handle.
    let h = rt.handle().spawn_blocking(|| "outside");
    assert_eq!(rt.block_on(h).unwrap(), "outside");
}

#[test]
fn shutdown_timeout_bounds_the_wait_for_long_blocking_work_and_drops_queued_jobs() {
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let _long = rt.handle().spawn_blocking(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(Duration::from_secs(30));
    });
    started_rx.recv().unwrap();
    // Queued behind the only thread: never starts.
    let queued = DropCounter::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let queued_handles: Vec<_> = (0..5)
        .map(|_| {
            let token = queued.token();
            let ran = ran.clone();
            rt.handle().spawn_blocking(move || {
                let _t = token;
                ran.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let begun = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(100));
    let waited = begun.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "shutdown waited {waited:?}"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0, "queued jobs must not start");
    assert_eq!(queued.count(), 5, "queued closures are dropped");
    for h in queued_handles {
        assert!(h.is_finished());
    }
    drop(release_tx);
}

#[test]
fn aborting_a_queued_blocking_job_drops_it_unrun() {
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    let blocker = rt.handle().spawn_blocking(move || {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    started_rx.recv().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let queued = rt
        .handle()
        .spawn_blocking(move || r.fetch_add(1, Ordering::SeqCst));
    queued.abort();
    release_tx.send(()).unwrap();
    rt.block_on(blocker).unwrap();
    assert!(rt.block_on(queued).unwrap_err().is_cancelled());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn idle_blocking_threads_exit_after_keep_alive() {
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_millis(20))
        .build()
        .unwrap();
    rt.block_on(async {
        let hs: Vec<_> = (0..4)
            .map(|_| task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(5))))
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    let metrics = rt.handle().metrics();
    let start = Instant::now();
    while metrics.blocking_threads_idle() > 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(metrics.blocking_threads_idle(), 0);
    // And the pool starts threads again afterwards.
    assert_eq!(
        rt.block_on(async { task::spawn_blocking(|| 1).await.unwrap() }),
        1
    );
}

#[test]
fn blocking_wait_hands_work_to_the_runtime_from_plain_threads() {
    let rt = rt2();
    let handle = rt.handle().clone();
    // A thread of its own.
    let h = handle.clone();
    let answer = std::thread::spawn(move || h.spawn(async { 6 * 7 }).blocking_wait())
        .join()
        .unwrap();
    assert_eq!(answer.unwrap(), 42);
    // A to_thread closure whose work needs the runtime's timers.
    let slept = rt.block_on(async move {
        ringleader::task::to_thread(move || {
            handle
                .spawn(async {
                    ringleader::time::sleep(Duration::from_millis(5)).await;
                    "slept"
                })
                .blocking_wait()
        })
        .await
        .unwrap()
    });
    assert_eq!(slept.unwrap(), "slept");
    // A panic comes back as the JoinError, not as a panic of the waiting thread.
    let err = rt
        .handle()
        .spawn(async { panic!("boom") })
        .blocking_wait()
        .unwrap_err();
    assert!(err.is_panic());
}

#[test]
fn blocking_wait_returns_when_the_runtime_shuts_down_under_it() {
    let rt = rt2();
    let forever = rt.handle().spawn(std::future::pending::<()>());
    let waiter = std::thread::spawn(move || forever.blocking_wait());
    std::thread::sleep(Duration::from_millis(20));
    drop(rt);
    let err = waiter.join().unwrap().unwrap_err();
    assert!(err.is_cancelled(), "{err}");
}

#[test]
fn blocking_wait_in_async_code_panics_with_advice() {
    let rt = rt2();
    // Inside a task on a worker: the task panics, the handle reports it.
    let err = rt.block_on(async {
        ringleader::spawn(async {
            let inner = ringleader::spawn(async { 1 });
            inner.blocking_wait()
        })
        .await
        .unwrap_err()
    });
    assert!(err.is_panic());
    // Inside block_on.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { ringleader::spawn(async { 1 }).blocking_wait() })
    }));
    let message = caught.unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(message.contains("await instead"), "{message}");
    // The runtime is still usable.
    assert_eq!(
        rt.block_on(async { ringleader::spawn(async { 2 }).await.unwrap() }),
        2
    );
}

#[test]
fn handle_block_on_runs_async_code_from_a_blocking_closure_and_a_plain_thread() {
    let rt = rt2();
    // From a to_thread closure: timers and spawns work, and the future may borrow.
    let words = rt.block_on(async {
        task::to_thread(|| {
            let local = String::from("borrowed");
            ringleader::runtime::Handle::current().block_on(async {
                ringleader::time::sleep(Duration::from_millis(2)).await;
                let spawned = ringleader::spawn(async { "spawned" }).await.unwrap();
                format!("{local} {spawned}")
            })
        })
        .await
        .unwrap()
    });
    assert_eq!(words, "borrowed spawned");
    // From a thread of its own, with I/O.
    let handle = rt.handle().clone();
    let read = std::thread::spawn(move || {
        handle.block_on(async {
            let path =
                std::env::temp_dir().join(format!("rl-handle-block-on-{}", std::process::id()));
            ringleader::fs::write(&path, b"through the ring")
                .await
                .unwrap();
            let back = ringleader::fs::read(&path).await.unwrap();
            ringleader::fs::remove_file(&path).await.unwrap();
            back
        })
    })
    .join()
    .unwrap();
    assert_eq!(read, b"through the ring");
}

#[test]
fn handle_block_on_drives_a_current_thread_runtime_nobody_else_drives() {
    let rt = Builder::new_current_thread().build().unwrap();
    let handle = rt.handle().clone();
    let out = std::thread::spawn(move || {
        handle.block_on(async {
            let task = ringleader::spawn(async { 7 });
            ringleader::time::sleep(Duration::from_millis(1)).await;
            task.await.unwrap()
        })
    })
    .join()
    .unwrap();
    assert_eq!(out, 7);
    drop(rt);
}

#[test]
fn handle_block_on_panics_if_the_runtime_shuts_down_under_it() {
    let rt = rt2();
    let handle = rt.handle().clone();
    let waiter = std::thread::spawn(move || {
        // Created inside (an async block): `sleep` needs the runtime's context.
        handle.block_on(async { ringleader::time::sleep(Duration::from_secs(3600)).await });
    });
    std::thread::sleep(Duration::from_millis(20));
    drop(rt);
    let panic = waiter.join().unwrap_err();
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.contains("shut down"), "{message}");
}
