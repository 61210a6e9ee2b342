//! Tasks pinned to a worker (`task::Builder::pin_to_worker`): where they run, remote wakes,
//! fairness next to unpinned tasks, the paused clock, and shutdown.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use ringleader::runtime::Builder;
use ringleader::task;
use support::{paused_mt, rt2, DropCounter};

/// The name of the thread polling the caller.
fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

/// Every poll of a pinned task happens on its worker, even while its worker is busy and
/// the other worker is idle (an unpinned task would be stolen).
#[test]
fn pinned_tasks_are_polled_only_by_their_worker() {
    let rt = rt2();
    let seen = rt.block_on(async {
        let tasks: Vec<_> = (0..8usize)
            .map(|i| {
                task::Builder::new().pin_to_worker(i).spawn(async move {
                    let mut names = Vec::new();
                    for round in 0..200 {
                        names.push(thread_name());
                        if round % 3 == 0 {
                            ringleader::time::sleep(Duration::from_micros(50)).await;
                        } else {
                            task::yield_now().await;
                        }
                        // Keep the worker busy so that the other one would steal.
                        std::hint::black_box((0..200).sum::<u64>());
                    }
                    names
                })
            })
            .collect();
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap());
        }
        seen
    });
    for (i, names) in seen.iter().enumerate() {
        let home = format!("ringleader-worker-{}", i % 2);
        assert!(
            names.iter().all(|n| *n == home),
            "task pinned to {i} ran on {:?}",
            names.iter().filter(|n| **n != home).collect::<Vec<_>>()
        );
    }
}

/// A pinned task woken from a plain thread (its inbox) and spawned from a non-worker thread
/// runs on its worker.
#[test]
fn remote_wakes_and_spawns_reach_the_pinned_worker() {
    let rt = rt2();
    let (tx, rx) = ringleader::sync::oneshot::channel::<u32>();
    let waiter = task::Builder::new().pin_to_worker(1).spawn_on(
        async move { (rx.await.unwrap(), thread_name()) },
        rt.handle(),
    );
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(7).unwrap();
    });
    let (value, name) = rt.block_on(waiter).unwrap();
    sender.join().unwrap();
    assert_eq!(value, 7);
    assert_eq!(name, "ringleader-worker-1");
}

/// The index is taken modulo the worker count; on a current-thread runtime every index is
/// the one core.
#[test]
fn any_index_is_valid() {
    let rt = Builder::new_current_thread().build().unwrap();
    let out = rt.block_on(async {
        let a = task::Builder::new()
            .pin_to_worker(usize::MAX)
            .spawn(async { 1 });
        let b = task::Builder::new().pin_to_worker(3).spawn(async { 2 });
        a.await.unwrap() + b.await.unwrap()
    });
    assert_eq!(out, 3);
    let rt = rt2();
    let name = rt.block_on(async {
        task::Builder::new()
            .pin_to_worker(5)
            .spawn(async { thread_name() })
            .await
            .unwrap()
    });
    assert_eq!(name, "ringleader-worker-1");
}

/// A pinned task that yields forever does not starve unpinned tasks on its worker, nor
/// the other way round.
#[test]
fn pinned_and_unpinned_tasks_share_a_worker_fairly() {
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let spins = Arc::new(AtomicUsize::new(0));
        let (s, n) = (stop.clone(), spins.clone());
        let spinner = task::Builder::new().pin_to_worker(0).spawn(async move {
            while !s.load(Ordering::SeqCst) {
                n.fetch_add(1, Ordering::SeqCst);
                task::yield_now().await;
            }
        });
        // An unpinned task that needs a few turns: it gets them while the spinner spins.
        let unpinned = ringleader::spawn(async move {
            for _ in 0..10 {
                task::yield_now().await;
            }
        });
        unpinned.await.unwrap();
        let spun = spins.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        spinner.await.unwrap();
        assert!(spun < 1_000, "the unpinned task waited {spun} spins");

        // And the other way round: an unpinned spinner does not starve a pinned task.
        let stop = Arc::new(AtomicBool::new(false));
        let spins = Arc::new(AtomicUsize::new(0));
        let (s, n) = (stop.clone(), spins.clone());
        let spinner = ringleader::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                n.fetch_add(1, Ordering::SeqCst);
                task::yield_now().await;
            }
        });
        let pinned = task::Builder::new().pin_to_worker(0).spawn(async move {
            for _ in 0..10 {
                task::yield_now().await;
            }
        });
        pinned.await.unwrap();
        let spun = spins.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        spinner.await.unwrap();
        assert!(spun < 1_000, "the pinned task waited {spun} spins");
    });
}

/// On a paused clock the runtime only jumps ahead when every task waits: pinned tasks'
/// sleeps end in deadline order, with the virtual time they asked for.
#[test]
fn pinned_sleeps_on_a_paused_clock_end_in_order() {
    let rt = paused_mt();
    let order = rt.block_on(async {
        let start = ringleader::time::Instant::now();
        let (tx, rx) = mpsc::channel();
        let tasks: Vec<_> = [30u64, 10, 20, 40]
            .into_iter()
            .enumerate()
            .map(|(i, ms)| {
                let tx = tx.clone();
                task::Builder::new().pin_to_worker(i).spawn(async move {
                    ringleader::time::sleep(Duration::from_millis(ms)).await;
                    tx.send((ms, start.elapsed())).unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        drop(tx);
        rx.iter().collect::<Vec<_>>()
    });
    let ms: Vec<u64> = order.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(ms, [10, 20, 30, 40]);
    for (ms, elapsed) in order {
        assert!(
            elapsed >= Duration::from_millis(ms),
            "{ms} ms ended at {elapsed:?}"
        );
    }
}

/// Dropping the runtime cancels pinned tasks that wait, that are queued on their worker,
/// and that sit in an inbox: each future is dropped exactly once.
#[test]
fn shutdown_drops_every_pinned_task_once() {
    let drops = DropCounter::new();
    let rt = rt2();
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let gate_rx = Arc::new(std::sync::Mutex::new(gate_rx));
    let n = 40;
    for i in 0..n {
        let token = drops.token();
        let gate = gate_rx.clone();
        drop(task::Builder::new().pin_to_worker(i).spawn_on(
            async move {
                let _token = token;
                if i == 0 {
                    // Hold worker 0 so that its other pinned tasks stay queued.
                    let _ = gate
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_millis(200));
                }
                std::future::pending::<()>().await;
            },
            rt.handle(),
        ));
    }
    std::thread::sleep(Duration::from_millis(20));
    drop(rt);
    drop(gate_tx);
    assert_eq!(drops.count(), n);
}

/// Pinned tasks spawned after shutdown are cancelled, not lost.
#[test]
fn a_pinned_spawn_after_shutdown_is_cancelled() {
    let rt = rt2();
    let handle = rt.handle().clone();
    rt.shutdown_background();
    let join = task::Builder::new()
        .pin_to_worker(1)
        .spawn_on(async { 1 }, &handle);
    let other = Builder::new_current_thread().build().unwrap();
    let err = other.block_on(join).unwrap_err();
    assert!(err.is_cancelled());
}

/// `start_server` pins each connection's handler to a worker, round-robin in accept order:
/// every handler is polled by one thread only, and the connections are spread over both.
#[test]
fn start_server_spreads_pinned_handlers_over_the_workers() {
    use ringleader::streams::{open_connection, start_server};
    let rt = rt2();
    let names = rt.block_on(async {
        let server = start_server(
            |mut reader: ringleader::streams::StreamReader,
             writer: ringleader::streams::StreamWriter| async move {
                let mut names = std::collections::BTreeSet::new();
                loop {
                    names.insert(thread_name());
                    let line = reader.readline().await?;
                    if line.is_empty() {
                        break;
                    }
                    // Busy enough that an unpinned handler would get stolen now and then.
                    std::hint::black_box((0..2_000).sum::<u64>());
                    writer.write(&line);
                    writer.drain().await?;
                }
                // One line per handler: the set of threads that polled it.
                let all: Vec<_> = names.into_iter().collect();
                writer.write(format!("{}\n", all.join(",")).as_bytes());
                writer.close();
                writer.wait_closed().await
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let port = server.local_addrs()[0]
            .as_inet()
            .expect("a TCP server")
            .port();
        let clients: Vec<_> = (0..6)
            .map(|_| {
                ringleader::spawn(async move {
                    let (mut reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
                    for i in 0..100 {
                        writer.write(format!("line {i}\n").as_bytes());
                        writer.drain().await.unwrap();
                        assert_eq!(
                            reader.readline().await.unwrap(),
                            format!("line {i}\n").as_bytes()
                        );
                        if i % 10 == 0 {
                            ringleader::time::sleep(Duration::from_micros(100)).await;
                        }
                    }
                    writer.write_eof();
                    String::from_utf8(reader.readline().await.unwrap()).unwrap()
                })
            })
            .collect();
        let mut names = Vec::new();
        for c in clients {
            names.push(c.await.unwrap().trim_end().to_owned());
        }
        names
    });
    for n in &names {
        assert!(!n.contains(','), "a handler ran on several threads: {n}");
    }
    let workers: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(workers.len(), 2, "handlers on {names:?}");
}
