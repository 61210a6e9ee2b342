//! Scheduler benchmarks: tokio's `benches/rt_multi_threaded.rs` workloads, reproduced with
//! the same shapes for ringleader, tokio and smol (async-executor), all on 2 worker threads.
//!
//! Guards: spawn cost (local and remote), wake-up latency of idle workers, the LIFO slot
//! (ping_pong, chained_spawn), fairness under yield storms, and remote-spawn scaling.
//!
//! As in tokio's file, the plain variants drive from the bench thread's `block_on`, which is
//! not a worker, so "local" spawns there are remote. The `_on_worker` variants run the
//! driving future as a task on a worker, where local spawns and the LIFO slot count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

mod common;

use common::{spin, Background, BenchRuntime, Ringleader, Smol, Tokio};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const WORKERS: usize = 2;
const NUM_SPAWN: usize = 10_000;

fn spawn_many_local<R: BenchRuntime>(rt: &R) {
    let (tx, rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(NUM_SPAWN));
    let r = rt.clone();
    rt.block_on(async move {
        for _ in 0..NUM_SPAWN {
            let (rem, tx) = (rem.clone(), tx.clone());
            drop(r.spawn(async move {
                if rem.fetch_sub(1, Ordering::Relaxed) == 1 {
                    tx.send(()).unwrap();
                }
            }));
        }
        rx.recv().unwrap();
    });
}

fn spawn_many_local_on_worker<R: BenchRuntime>(rt: &R) {
    let r = rt.clone();
    let driver = rt.spawn(async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
        let rem = Arc::new(AtomicUsize::new(NUM_SPAWN));
        for _ in 0..NUM_SPAWN {
            let (rem, tx) = (rem.clone(), tx.clone());
            drop(r.spawn(async move {
                if rem.fetch_sub(1, Ordering::Relaxed) == 1 {
                    let _ = tx.lock().unwrap().take().unwrap().send(());
                }
            }));
        }
        rx.await.unwrap();
    });
    rt.block_on(driver);
}

fn spawn_many_remote<R: BenchRuntime>(rt: &R, n: usize) {
    let handles: Vec<_> = (0..n).map(|_| rt.spawn(async {})).collect();
    rt.block_on(async move {
        for h in handles {
            h.await;
        }
    });
}

fn spawn_many_remote_on_worker<R: BenchRuntime>(rt: &R, n: usize) {
    let r = rt.clone();
    let driver = rt.spawn(async move {
        let handles: Vec<_> = (0..n).map(|_| r.spawn(async {})).collect();
        for h in handles {
            h.await;
        }
    });
    rt.block_on(driver);
}

/// 2 x workers background tasks that yield and spin 10 µs in a loop.
fn busy1<R: BenchRuntime>(rt: &R) -> Background {
    let bg = Background::new();
    for _ in 0..2 * WORKERS {
        let (stop, r) = (bg.flag(), rt.clone());
        drop(rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                r.yield_now().await;
                spin(Duration::from_micros(10));
            }
        }));
    }
    bg
}

/// 4 background chains, each spawning its successor after a 10 µs stall.
fn busy2<R: BenchRuntime>(rt: &R) -> Background {
    fn link<R: BenchRuntime>(rt: R, stop: Arc<std::sync::atomic::AtomicBool>) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let r = rt.clone();
        drop(rt.spawn(async move {
            spin(Duration::from_micros(10));
            link(r, stop);
        }));
    }
    let bg = Background::new();
    for _ in 0..4 {
        link(rt.clone(), bg.flag());
    }
    bg
}

#[allow(clippy::manual_async_fn)] // the explicit `Send + 'static` bound is the point
fn ping_pong_driver<R: BenchRuntime>(
    r: R,
    done: impl FnOnce() + Send + 'static,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    async move {
        let rem = Arc::new(AtomicUsize::new(1000));
        let done = Arc::new(std::sync::Mutex::new(Some(done)));
        for _ in 0..1000 {
            let (rem, done, r2) = (rem.clone(), done.clone(), r.clone());
            drop(r.spawn(async move {
                let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
                let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
                drop(r2.spawn(async move {
                    rx1.await.unwrap();
                    tx2.send(()).unwrap();
                }));
                tx1.send(()).unwrap();
                rx2.await.unwrap();
                if rem.fetch_sub(1, Ordering::Relaxed) == 1 {
                    (done.lock().unwrap().take().unwrap())();
                }
            }));
        }
    }
}

fn ping_pong<R: BenchRuntime>(rt: &R) {
    let (tx, rx) = mpsc::sync_channel(1);
    let r = rt.clone();
    rt.block_on(async move {
        drop(r.spawn(ping_pong_driver(r.clone(), move || tx.send(()).unwrap())));
        rx.recv().unwrap();
    });
}

fn ping_pong_on_worker<R: BenchRuntime>(rt: &R) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let r = rt.clone();
    let driver = rt.spawn(async move {
        ping_pong_driver(r, move || {
            let _ = tx.send(());
        })
        .await;
        rx.await.unwrap();
    });
    rt.block_on(driver);
}

const NUM_YIELD: usize = 1_000;
const TASKS: usize = 200;

fn yield_many<R: BenchRuntime>(rt: &R) {
    let (tx, rx) = mpsc::sync_channel(TASKS);
    for _ in 0..TASKS {
        let (tx, r) = (tx.clone(), rt.clone());
        drop(rt.spawn(async move {
            for _ in 0..NUM_YIELD {
                r.yield_now().await;
            }
            tx.send(()).unwrap();
        }));
    }
    for _ in 0..TASKS {
        rx.recv().unwrap();
    }
}

fn yield_many_on_worker<R: BenchRuntime>(rt: &R) {
    let r = rt.clone();
    let driver = rt.spawn(async move {
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let r2 = r.clone();
                r.spawn(async move {
                    for _ in 0..NUM_YIELD {
                        r2.yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await;
        }
    });
    rt.block_on(driver);
}

fn chain<R: BenchRuntime>(rt: R, n: usize, done: Box<dyn FnOnce() + Send>) {
    if n == 0 {
        done();
    } else {
        let r = rt.clone();
        drop(rt.spawn(async move { chain(r, n - 1, done) }));
    }
}

fn chained_spawn<R: BenchRuntime>(rt: &R) {
    let (tx, rx) = mpsc::sync_channel(1);
    let r = rt.clone();
    rt.block_on(async move {
        let r2 = r.clone();
        drop(r.spawn(async move { chain(r2, 1000, Box::new(move || tx.send(()).unwrap())) }));
        rx.recv().unwrap();
    });
}

fn chained_spawn_on_worker<R: BenchRuntime>(rt: &R) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let r = rt.clone();
    let driver = rt.spawn(async move {
        chain(
            r,
            1000,
            Box::new(move || {
                let _ = tx.send(());
            }),
        );
        rx.await.unwrap();
    });
    rt.block_on(driver);
}

/// 12,800 spawns split over `threads` external threads; waits until all ran.
fn remote_spawn<R: BenchRuntime>(rt: &R, threads: usize) {
    const TOTAL: usize = 12_800;
    let rem = Arc::new(AtomicUsize::new(TOTAL));
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (rem, tx, rt) = (rem.clone(), tx.clone(), rt.clone());
            s.spawn(move || {
                for _ in 0..TOTAL / threads {
                    let (rem, tx) = (rem.clone(), tx.clone());
                    drop(rt.spawn(async move {
                        if rem.fetch_sub(1, Ordering::Relaxed) == 1 {
                            tx.send(()).unwrap();
                        }
                    }));
                }
            });
        }
    });
    rx.recv().unwrap();
}

fn bench_all<R: BenchRuntime>(c: &mut Criterion, name: &str, make: impl Fn() -> R) {
    let rt = make();
    c.benchmark_group("spawn_many_local")
        .bench_function(name, |b| b.iter(|| spawn_many_local(&rt)));
    c.benchmark_group("spawn_many_local_on_worker")
        .bench_function(name, |b| b.iter(|| spawn_many_local_on_worker(&rt)));
    c.benchmark_group("spawn_many_remote_idle")
        .bench_function(name, |b| b.iter(|| spawn_many_remote(&rt, NUM_SPAWN)));
    c.benchmark_group("spawn_many_remote_idle_on_worker")
        .bench_function(name, |b| {
            b.iter(|| spawn_many_remote_on_worker(&rt, NUM_SPAWN))
        });
    {
        let _bg = busy1(&rt);
        c.benchmark_group("spawn_many_remote_busy1")
            .bench_function(name, |b| b.iter(|| spawn_many_remote(&rt, NUM_SPAWN)));
        c.benchmark_group("spawn_many_remote_busy1_on_worker")
            .bench_function(name, |b| {
                b.iter(|| spawn_many_remote_on_worker(&rt, NUM_SPAWN))
            });
    }
    // Let the background tasks notice their flag before the next workload.
    std::thread::sleep(Duration::from_millis(20));
    {
        let _bg = busy2(&rt);
        c.benchmark_group("spawn_many_remote_busy2")
            .bench_function(name, |b| b.iter(|| spawn_many_remote(&rt, 1_000)));
        c.benchmark_group("spawn_many_remote_busy2_on_worker")
            .bench_function(name, |b| b.iter(|| spawn_many_remote_on_worker(&rt, 1_000)));
    }
    std::thread::sleep(Duration::from_millis(20));
    c.benchmark_group("ping_pong")
        .bench_function(name, |b| b.iter(|| ping_pong(&rt)));
    c.benchmark_group("ping_pong_on_worker")
        .bench_function(name, |b| b.iter(|| ping_pong_on_worker(&rt)));
    c.benchmark_group("yield_many")
        .bench_function(name, |b| b.iter(|| yield_many(&rt)));
    c.benchmark_group("yield_many_on_worker")
        .bench_function(name, |b| b.iter(|| yield_many_on_worker(&rt)));
    c.benchmark_group("chained_spawn")
        .bench_function(name, |b| b.iter(|| chained_spawn(&rt)));
    c.benchmark_group("chained_spawn_on_worker")
        .bench_function(name, |b| b.iter(|| chained_spawn_on_worker(&rt)));
    let mut group = c.benchmark_group("remote_spawn");
    for threads in [1, 2] {
        group.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &t| {
            b.iter(|| remote_spawn(&rt, t))
        });
    }
    group.finish();
}

fn scheduler(c: &mut Criterion) {
    bench_all(c, "ringleader", || Ringleader::new(WORKERS));
    bench_all(c, "tokio", || Tokio::new(WORKERS));
    bench_all(c, "smol", || Smol::new(WORKERS));
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(30);
    targets = scheduler
}
criterion_main!(benches);
