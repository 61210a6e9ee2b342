//! Structured-concurrency benchmarks: a task group against tokio's `JoinSet`.
//! - `taskgroup_spawn_10000`: spawn and join 10,000 children in one group;
//! - `taskgroup_1000_groups_of_10`: 1,000 groups of 10 children, one after another;
//! - `taskgroup_timeout_ready`: a cancel-scope timeout around a ready future, vs
//!   `tokio::time::timeout`;
//! - `taskgroup_scoped_1000x10`: `scoped` children borrowing from the stack, vs the
//!   `Arc` + `JoinSet` program tokio needs for the same job.
//!
//! Guards: the per-child cost of group bookkeeping (scope node, failure table, wake-ups).

use std::time::Duration;

mod common;

use common::{ringleader_rt, tokio_rt};
use criterion::{criterion_group, criterion_main, Criterion};
use ringleader::taskgroup::{task_group, BoxError};

const WORKERS: usize = 2;

async fn rl_group(children: usize) {
    task_group(|tg| async move {
        for i in 0..children {
            tg.spawn(async move { Ok::<_, BoxError>(std::hint::black_box(i)) })?;
        }
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

async fn tk_group(children: usize) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..children {
        set.spawn(async move { std::hint::black_box(i) });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

fn spawn_10000(c: &mut Criterion) {
    let mut g = c.benchmark_group("taskgroup_spawn_10000");
    let rt = ringleader_rt(WORKERS);
    g.bench_function("ringleader", |b| {
        b.iter(|| rt.block_on(rt.spawn(rl_group(10_000))).unwrap())
    });
    let rt = tokio_rt(WORKERS);
    g.bench_function("tokio", |b| {
        b.iter(|| rt.block_on(rt.spawn(tk_group(10_000))).unwrap())
    });
}

fn groups_of_10(c: &mut Criterion) {
    let mut g = c.benchmark_group("taskgroup_1000_groups_of_10");
    let rt = ringleader_rt(WORKERS);
    g.bench_function("ringleader", |b| {
        b.iter(|| {
            rt.block_on(rt.spawn(async {
                for _ in 0..1000 {
                    rl_group(10).await;
                }
            }))
            .unwrap()
        })
    });
    let rt = tokio_rt(WORKERS);
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rt.block_on(rt.spawn(async {
                for _ in 0..1000 {
                    tk_group(10).await;
                }
            }))
            .unwrap()
        })
    });
}

fn timeout_ready(c: &mut Criterion) {
    let mut g = c.benchmark_group("taskgroup_timeout_ready");
    let rt = ringleader_rt(WORKERS);
    g.bench_function("ringleader", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..1000u32 {
                    let v =
                        ringleader::taskgroup::timeout(Duration::from_secs(1), async { i }).await;
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

/// 1,000 rounds of 10 children summing chunks of one 10,000-element vector: ringleader's
/// `scoped` children borrow their chunk from the caller's stack and run inside the caller's
/// task; the tokio program a user would write instead moves the data into an `Arc` and
/// spawns 10 `'static` tasks into a `JoinSet` (tokio has no borrowing scope).
fn scoped_10(c: &mut Criterion) {
    const CHILDREN: usize = 10;
    let data: Vec<u64> = (0..10_000).collect();
    let expected: u64 = data.iter().sum();
    let mut g = c.benchmark_group("taskgroup_scoped_1000x10");
    let rt = ringleader_rt(WORKERS);
    g.bench_function("ringleader", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..1000 {
                    let mut sums = [0u64; CHILDREN];
                    ringleader::taskgroup::scoped(|s| {
                        let jobs: Vec<_> = data
                            .chunks(data.len() / CHILDREN)
                            .zip(sums.iter_mut())
                            .collect();
                        async move {
                            for (chunk, slot) in jobs {
                                s.spawn(async move {
                                    *slot = chunk.iter().sum();
                                })?;
                            }
                            Ok::<_, BoxError>(())
                        }
                    })
                    .await
                    .unwrap();
                    assert_eq!(sums.iter().sum::<u64>(), expected);
                }
            })
        })
    });
    let rt = tokio_rt(WORKERS);
    let shared = std::sync::Arc::new(data.clone());
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..1000 {
                    let mut set = tokio::task::JoinSet::new();
                    let chunk = shared.len() / CHILDREN;
                    for i in 0..CHILDREN {
                        let data = shared.clone();
                        set.spawn(
                            async move { data[i * chunk..(i + 1) * chunk].iter().sum::<u64>() },
                        );
                    }
                    let mut total = 0;
                    while let Some(r) = set.join_next().await {
                        total += r.unwrap();
                    }
                    assert_eq!(total, expected);
                }
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = spawn_10000, groups_of_10, timeout_ready, scoped_10
}
criterion_main!(benches);
