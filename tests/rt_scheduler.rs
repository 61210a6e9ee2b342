//! The multi-thread scheduler: volume, stealing, fairness, remote wakes, memory.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Poll, Waker};
use std::time::Duration;

use ringleader::runtime::Builder;
use ringleader::task;
use support::{rt2, scaled};

/// Held by the tests that allocate a million tasks at once, so the memory test's
/// measurements never include another test's peak.
static BIG_ALLOCATIONS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn big_allocations() -> std::sync::MutexGuard<'static, ()> {
    BIG_ALLOCATIONS.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_million_tiny_tasks_spawned_from_a_task_all_complete() {
    let _serial = big_allocations();
    let rt = rt2();
    let n = scaled(1_000_000);
    let total = rt.block_on(async move {
        ringleader::spawn(async move {
            let handles: Vec<_> = (0..n)
                .map(|i| ringleader::spawn(async move { i as u64 }))
                .collect();
            let mut sum = 0u64;
            for h in handles {
                sum += h.await.expect("task completes");
            }
            sum
        })
        .await
        .unwrap()
    });
    let n = n as u64;
    assert_eq!(total, n * (n - 1) / 2);
    assert_eq!(rt.handle().metrics().num_alive_tasks(), 0);
}

#[test]
fn tasks_spawned_on_one_worker_are_stolen_by_the_other() {
    let rt = rt2();
    let ran_on = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let ran = ran_on.clone();
    rt.block_on(async move {
        ringleader::spawn(async move {
            // Each task spins a little so that one worker alone cannot drain the queue
            // before the other comes searching.
            let handles: Vec<_> = (0..2_000)
                .map(|_| {
                    let ran = ran.clone();
                    ringleader::spawn(async move {
                        let start = std::time::Instant::now();
                        while start.elapsed() < Duration::from_micros(20) {
                            std::hint::spin_loop();
                        }
                        let name = std::thread::current().name().unwrap_or("").to_owned();
                        let worker = usize::from(name.ends_with("-1"));
                        ran[worker].fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        })
        .await
        .unwrap();
    });
    let metrics = rt.handle().metrics();
    let stolen = metrics.worker_steal_count(0) + metrics.worker_steal_count(1);
    assert!(stolen > 0, "no task was stolen: {metrics:?}");
    assert!(ran_on[0].load(Ordering::Relaxed) > 0 && ran_on[1].load(Ordering::Relaxed) > 0);
}

#[test]
fn a_task_looping_on_yield_now_does_not_starve_others() {
    // One worker, so the yielding task and the others share it.
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let spinner = rt.spawn(async move {
        let mut yields = 0u64;
        while !stop2.load(Ordering::Acquire) {
            task::yield_now().await;
            yields += 1;
        }
        yields
    });
    let done = rt.block_on(async {
        let handles: Vec<_> = (0..1_000)
            .map(|i| ringleader::spawn(async move { i }))
            .collect();
        let mut n = 0;
        for h in handles {
            h.await.unwrap();
            n += 1;
        }
        n
    });
    stop.store(true, Ordering::Release);
    assert_eq!(done, 1_000);
    assert!(rt.block_on(spinner).unwrap() > 0);
}

#[test]
fn an_always_ready_loop_yields_when_its_budget_is_spent() {
    // On one worker, a task that loops on an always-ready budgeted future must still let a
    // task queued behind it run: the budget runs out and the loop yields.
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let (f1, f2) = (flag.clone(), flag.clone());
    let iterations = rt.block_on(async move {
        ringleader::spawn(async move {
            let spinner = ringleader::spawn(async move {
                let mut n = 0u32;
                while !f1.load(Ordering::SeqCst) && n < 1_000_000 {
                    ringleader::coop::consume_budget().await;
                    n += 1;
                }
                n
            });
            let setter = ringleader::spawn(async move { f2.store(true, Ordering::SeqCst) });
            setter.await.unwrap();
            spinner.await.unwrap()
        })
        .await
        .unwrap()
    });
    assert!(
        iterations < 1_000_000,
        "the other task never ran while the loop spun"
    );
}

#[test]
fn wakes_from_threads_outside_the_runtime_lose_nothing() {
    let rt = rt2();
    let rounds = scaled(100).max(10);
    let per_round = scaled(10_000);
    for _ in 0..rounds {
        // Tasks park their wakers in a shared list; an outside thread wakes them all.
        let wakers: Arc<std::sync::Mutex<Vec<Waker>>> = Arc::default();
        let flags: Arc<Vec<AtomicBool>> =
            Arc::new((0..per_round).map(|_| AtomicBool::new(false)).collect());
        let handles: Vec<_> = (0..per_round)
            .map(|i| {
                let wakers = wakers.clone();
                let flags = flags.clone();
                rt.spawn(std::future::poll_fn(move |cx| {
                    if flags[i].load(Ordering::Acquire) {
                        Poll::Ready(())
                    } else {
                        wakers.lock().unwrap().push(cx.waker().clone());
                        Poll::Pending
                    }
                }))
            })
            .collect();
        let (flags2, wakers2) = (flags.clone(), wakers.clone());
        let waker_thread = std::thread::spawn(move || {
            for f in flags2.iter() {
                f.store(true, Ordering::Release);
            }
            // Keep waking until every registered waker has been woken at least once after
            // its flag was set.
            for _ in 0..10_000 {
                let batch: Vec<Waker> = std::mem::take(&mut *wakers2.lock().unwrap());
                for w in batch {
                    w.wake();
                }
                std::thread::yield_now();
            }
        });
        rt.block_on(async move {
            for h in handles {
                h.await.unwrap();
            }
        });
        waker_thread.join().unwrap();
    }
}

#[test]
fn remote_wakes_of_a_parked_runtime_are_not_lost() {
    // 100 rounds x 10,000 wakes from a foreign thread: each task waits on a oneshot-like
    // flag set by that thread.
    let rt = rt2();
    let rounds = scaled(100).max(10);
    for _ in 0..rounds {
        let (tx, rx) = mpsc::channel::<Waker>();
        let n = 100;
        let counter = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let tx = tx.clone();
                let counter = counter.clone();
                let mut sent = false;
                rt.spawn(std::future::poll_fn(move |cx| {
                    if sent {
                        counter.fetch_add(1, Ordering::SeqCst);
                        Poll::Ready(())
                    } else {
                        sent = true;
                        tx.send(cx.waker().clone()).unwrap();
                        Poll::Pending
                    }
                }))
            })
            .collect();
        drop(tx);
        let t = std::thread::spawn(move || {
            for w in rx {
                w.wake();
            }
        });
        rt.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
        t.join().unwrap();
        assert_eq!(counter.load(Ordering::SeqCst), n);
    }
}

#[test]
fn resident_memory_stays_flat_over_rounds_of_spawn_and_complete() {
    let _serial = big_allocations();
    let rt = rt2();
    let per_round = scaled(1_000_000);
    let round = || {
        rt.block_on(async move {
            ringleader::spawn(async move {
                let mut batch = Vec::with_capacity(1024);
                for i in 0..per_round {
                    batch.push(ringleader::spawn(async move { i }));
                    if batch.len() == 1024 {
                        for h in batch.drain(..) {
                            h.await.unwrap();
                        }
                    }
                }
                for h in batch {
                    h.await.unwrap();
                }
            })
            .await
            .unwrap()
        })
    };
    // Two warm-up rounds let allocator caches and queue buffers reach their steady size.
    round();
    round();
    let base = support::rss_kib();
    for _ in 0..8 {
        round();
    }
    let after = support::rss_kib();
    // 10 rounds of a million tasks at ~200 bytes each would leak ~2 GB if tasks leaked.
    assert!(
        after < base + 32 * 1024,
        "resident memory grew from {base} KiB to {after} KiB"
    );
    assert_eq!(rt.handle().metrics().num_alive_tasks(), 0);
}

#[test]
fn current_thread_runtime_runs_tasks_inside_block_on() {
    let rt = Builder::new_current_thread().build().unwrap();
    let main_thread = std::thread::current().id();
    let (tid, sum) = rt.block_on(async {
        let h = ringleader::spawn(async { (std::thread::current().id(), 5) });
        let (tid, v) = h.await.unwrap();
        (tid, v + 1)
    });
    assert_eq!(tid, main_thread);
    assert_eq!(sum, 6);
    // A spawn from another thread runs at the next block_on.
    let handle = rt.handle().clone();
    let remote = std::thread::spawn(move || handle.spawn(async { 7 }))
        .join()
        .unwrap();
    assert_eq!(rt.block_on(remote).unwrap(), 7);
}

#[test]
fn task_ids_names_and_current_task() {
    let rt = rt2();
    rt.block_on(async {
        assert!(task::try_id().is_none(), "block_on's future is not a task");
        let h = task::Builder::new()
            .name("worker-a")
            .spawn(async { (task::id(), task::name()) });
        let id = h.id();
        assert_eq!(h.name(), Some("worker-a"));
        let (inner_id, name) = h.await.unwrap();
        assert_eq!(inner_id, id);
        assert_eq!(name.as_deref(), Some("worker-a"));
        let a = ringleader::spawn(async { task::id() });
        let b = ringleader::spawn(async { task::id() });
        assert_ne!(a.await.unwrap(), b.await.unwrap());
    });
}

#[test]
fn live_tasks_are_listed() {
    let rt = rt2();
    let (tx, rx) = mpsc::channel::<()>();
    let h = task::Builder::new().name("sleeper").spawn_on(
        std::future::poll_fn(move |_| {
            let _keep = &tx;
            Poll::<()>::Pending
        }),
        rt.handle(),
    );
    let tasks = rt.handle().tasks();
    assert!(tasks
        .iter()
        .any(|t| t.id == h.id() && t.name.as_deref() == Some("sleeper")));
    h.abort();
    let err = rt.block_on(h).unwrap_err();
    assert!(err.is_cancelled());
    // The future was dropped: the channel's sender is gone.
    assert!(rx.recv().is_err());
    assert!(rt.handle().tasks().is_empty());
}

#[test]
fn spawn_outside_a_runtime_panics_with_a_clear_message() {
    let err = std::panic::catch_unwind(|| {
        drop(ringleader::spawn(async {}));
    })
    .unwrap_err();
    let msg = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(msg.contains("outside a ringleader runtime"), "{msg}");
}

#[test]
fn zero_workers_is_an_error_not_a_panic() {
    let err = Builder::new_multi_thread()
        .worker_threads(0)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn thread_hooks_run_on_every_runtime_thread_in_its_context() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    let started = Arc::new(Mutex::new(Vec::<(String, bool)>::new()));
    let stopped = Arc::new(Mutex::new(Vec::<String>::new()));
    let (on_start, on_stop) = (started.clone(), stopped.clone());
    let rt = ringleader::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hooked")
        .on_thread_start(move || {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            let in_context = ringleader::runtime::Handle::try_current().is_ok();
            on_start.lock().unwrap().push((name, in_context));
        })
        .on_thread_stop(move || {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            on_stop.lock().unwrap().push(name);
        })
        .build()
        .unwrap();
    let blocking_thread = rt.block_on(async {
        ringleader::task::spawn_blocking(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap()
    });
    assert_eq!(blocking_thread.as_deref(), Some("hooked-blocking"));
    drop(rt);

    let started = started.lock().unwrap().clone();
    let names: HashSet<&str> = started.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        HashSet::from(["hooked-0", "hooked-1", "hooked-blocking"]),
        "each worker and the blocking thread, each on itself"
    );
    assert!(
        started.iter().all(|(_, ctx)| *ctx),
        "inside the runtime's context"
    );
    // The workers are joined by the drop; the blocking thread stops as it exits.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stopped.lock().unwrap().len() < started.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut stopped = stopped.lock().unwrap().clone();
    stopped.sort();
    assert_eq!(stopped, ["hooked-0", "hooked-1", "hooked-blocking"]);
}

#[test]
fn a_panicking_thread_hook_does_not_kill_the_worker() {
    let rt = ringleader::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| panic!("a broken hook"))
        .on_thread_stop(|| panic!("another broken hook"))
        .build()
        .unwrap();
    let answer = rt.block_on(async { ringleader::spawn(async { 6 * 7 }).await.unwrap() });
    assert_eq!(answer, 42);
}
