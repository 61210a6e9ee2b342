//! Timer benchmarks: tokio's `time_timeout` shapes (a timeout around a ready future; a
//! sleep created and dropped) and a churn workload (10,000 tasks each doing 100 short
//! sleeps, half of them cancelled by a timeout before they fire). ringleader vs tokio,
//! 2 workers each.
//!
//! Guards: the cost of filing and cancelling a timer, and the per-worker wheels under load.

use std::time::Duration;

mod common;

use common::{ringleader_rt, tokio_rt};
use criterion::{criterion_group, criterion_main, Criterion};

const WORKERS: usize = 2;

fn timeout_ready(c: &mut Criterion) {
    let mut g = c.benchmark_group("time_timeout_ready");
    let rt = ringleader_rt(WORKERS);
    g.bench_function("ringleader", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..1000u32 {
                    let v = ringleader::time::timeout(Duration::from_secs(1), async { i }).await;
                    std::hint::black_box(v.unwrap());
                }
            })
        })
    });
    let rt = tokio_rt(WORKERS);
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..1000u32 {
                    let v = tokio::time::timeout(Duration::from_secs(1), async { i }).await;
                    std::hint::black_box(v.unwrap());
                }
            })
        })
    });
}

fn sleep_create_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("time_sleep_create_drop");
    let rt = ringleader_rt(WORKERS);
    g.bench_function("ringleader", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..1000 {
                    let mut s = std::pin::pin!(ringleader::time::sleep(Duration::from_secs(10)));
                    // Poll once so the timer is filed, then drop it.
                    std::hint::black_box(futures_lite::future::poll_once(&mut s).await);
                }
            })
        })
    });
    let rt = tokio_rt(WORKERS);
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..1000 {
                    let mut s = std::pin::pin!(tokio::time::sleep(Duration::from_secs(10)));
                    std::hint::black_box(futures_lite::future::poll_once(&mut s).await);
                }
            })
        })
    });
}

fn churn(c: &mut Criterion) {
    const TASKS: usize = 10_000;
    const SLEEPS: usize = 100;
    let mut g = c.benchmark_group("time_churn");
    g.sample_size(10);
    let rt = ringleader_rt(WORKERS);
    g.bench_function("ringleader", |b| {
        b.iter(|| {
            rt.block_on(async {
                let handles: Vec<_> = (0..TASKS)
                    .map(|t| {
                        rt.handle().spawn(async move {
                            for i in 0..SLEEPS {
                                if (t + i) % 2 == 0 {
                                    ringleader::time::sleep(Duration::from_micros(500)).await;
                                } else {
                                    // Cancelled before it fires.
                                    let _ = ringleader::time::timeout(
                                        Duration::from_micros(100),
                                        ringleader::time::sleep(Duration::from_secs(5)),
                                    )
                                    .await;
                                }
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.await.unwrap();
                }
            })
        })
    });
    let rt = tokio_rt(WORKERS);
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rt.block_on(async {
                let handles: Vec<_> = (0..TASKS)
                    .map(|t| {
                        tokio::spawn(async move {
                            for i in 0..SLEEPS {
                                if (t + i) % 2 == 0 {
                                    tokio::time::sleep(Duration::from_micros(500)).await;
                                } else {
                                    let _ = tokio::time::timeout(
                                        Duration::from_micros(100),
                                        tokio::time::sleep(Duration::from_secs(5)),
                                    )
                                    .await;
                                }
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.await.unwrap();
                }
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = timeout_ready, sleep_create_drop, churn
}
criterion_main!(benches);
