//! Blocking-pool benchmarks: tokio's `spawn_blocking` shape. N concurrent spawners each
//! submit 100 batches of 16 trivial closures and await them; N = 1, 2, 4, 8.
//!
//! Guards: that concurrent spawners do not serialise on one lock (tokio measured 8
//! spawners 8.4x slower than 1, tokio#2528).

use std::time::Duration;

mod common;

use common::{ringleader_rt, tokio_rt};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const WORKERS: usize = 2;

fn spawn_blocking(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_blocking");
    g.sample_size(20);
    let rl = ringleader_rt(WORKERS);
    let tk = tokio_rt(WORKERS);
    for spawners in [1usize, 2, 4, 8] {
        g.bench_with_input(
            BenchmarkId::new("ringleader", spawners),
            &spawners,
            |b, &n| {
                b.iter(|| {
                    rl.block_on(async {
                        let tasks: Vec<_> = (0..n)
                            .map(|_| {
                                ringleader::spawn(async {
                                    for _ in 0..100 {
                                        let batch: Vec<_> = (0..16)
                                            .map(|i| ringleader::task::spawn_blocking(move || i))
                                            .collect();
                                        for h in batch {
                                            std::hint::black_box(h.await.unwrap());
                                        }
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    })
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("tokio", spawners), &spawners, |b, &n| {
            b.iter(|| {
                tk.block_on(async {
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            tokio::spawn(async {
                                for _ in 0..100 {
                                    let batch: Vec<_> = (0..16)
                                        .map(|i| tokio::task::spawn_blocking(move || i))
                                        .collect();
                                    for h in batch {
                                        std::hint::black_box(h.await.unwrap());
                                    }
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = spawn_blocking
}
criterion_main!(benches);
