//! `process`: spawn and wait of `/bin/true` × 1,000 per iteration, ringleader::process
//! against tokio::process, both runtimes with 2 workers, driven from `block_on`.
//!
//! Guards: waiting through the ring (a pidfd and `IORING_OP_WAITID`, no SIGCHLD handler, no
//! thread per child) costing no more than tokio's pidfd-in-epoll (or SIGCHLD) reaper. The
//! shape, the same on both sides: batches of 100 children spawned back to back (spawning is
//! std's fork/exec on the calling thread, as in every runtime), then each waited for by a
//! task of its own, all awaited before the next batch.

use std::time::Duration;

use criterion::Criterion;

const CHILDREN: usize = 1_000;
const BATCH: usize = 100;
const PROGRAM: &str = "/bin/true";

async fn ringleader_batches() {
    for _ in 0..CHILDREN / BATCH {
        let mut waits = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let mut child = ringleader::process::Command::new(PROGRAM)
                .spawn()
                .expect("spawn /bin/true");
            waits.push(ringleader::spawn(async move { child.wait().await }));
        }
        for wait in waits {
            let status = wait.await.expect("wait task").expect("wait");
            assert!(status.success());
        }
    }
}

async fn tokio_batches() {
    for _ in 0..CHILDREN / BATCH {
        let mut waits = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let mut child = tokio::process::Command::new(PROGRAM)
                .spawn()
                .expect("spawn /bin/true");
            waits.push(tokio::spawn(async move { child.wait().await }));
        }
        for wait in waits {
            let status = wait.await.expect("wait task").expect("wait");
            assert!(status.success());
        }
    }
}

/// `RINGLEADER_BENCH_PAIRED=<pairs>`: both runtimes up at once, measured interleaved
/// (`common::paired`) instead of by criterion.
fn bench_paired(pairs: usize) {
    let (rl, tk) = (crate::common::ringleader_rt(2), crate::common::tokio_rt(2));
    crate::common::paired(
        "process",
        pairs,
        || rl.block_on(ringleader_batches()),
        || tk.block_on(tokio_batches()),
    );
}

pub(crate) fn bench(c: &mut Criterion) {
    if let Some(pairs) = crate::common::paired_pairs() {
        bench_paired(pairs);
        return;
    }
    let mut group = c.benchmark_group("process");
    // One iteration is ~1,000 fork/execs: few, long samples.
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));

    let rt = ringleader::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("ringleader runtime");
    group.bench_function("ringleader", |b| {
        b.iter(|| rt.block_on(ringleader_batches()))
    });
    drop(rt);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    group.bench_function("tokio", |b| b.iter(|| rt.block_on(tokio_batches())));
    drop(rt);

    group.finish();
}
