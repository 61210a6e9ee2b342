//! Sync benchmarks: tokio's `benches/sync_*.rs` shapes, each run with ringleader's primitive
//! and tokio's, both on the same ringleader runtime (2 workers), so only the primitive
//! differs. Criterion group = shape, function = `ringleader` / `tokio`.
//!
//! Channels (this section) copy tokio's `sync_mpsc.rs` (5 producers × 1,000 messages into
//! one receiver with a 1,000,000 or 100 bound or unbounded; one task sending 5,000 then
//! receiving them), `sync_mpsc_oneshot.rs` (1,000 request/reply round trips through an mpsc
//! of oneshot senders), `sync_broadcast.rs` (N receiver tasks, 100 sends each awaited by
//! all) and `sync_watch.rs` (N tasks waiting on `changed` and borrowing, 100 sends).
//!
//! `RINGLEADER_BENCH_PAIRED=<pairs>` replaces criterion's sequential measurement by a paired,
//! interleaved one (`common::paired`): blocks of ringleader's and tokio's version alternate,
//! and the per-round ratio's quartiles are printed. Most of these shapes cost wake-ups of
//! the shared runtime more than the primitive itself, and on a machine where wake-ups drift,
//! only the paired ratio separates the two.
//!
//! Guards: the mpsc hot path (push under contention, batch receive, capacity semaphore
//! fast path and sender hand-off when full), oneshot wake-up cost, broadcast and watch
//! fan-out wake-ups.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

mod common;

use common::{paired, paired_pairs, ringleader_rt, thread_cpu_ticks, ticks_per_sec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const WORKERS: usize = 2;

/// Workers for `sync_notify`, whose bench thread spins: one core for it, one for the worker.
const NOTIFY_WORKERS: usize = 1;

/// CPU spent by the runtime's workers and by the bench thread while one function ran,
/// printed per iteration when it ends: on this shared machine wall time moves with other
/// load, CPU per iteration much less (both include criterion's warm-up; the iteration count
/// does too).
struct CpuMeter {
    workers: u64,
    bench: Duration,
}

impl CpuMeter {
    fn start() -> CpuMeter {
        CpuMeter {
            workers: thread_cpu_ticks("ringleader-work"),
            bench: bench_thread_cpu(),
        }
    }

    fn report(self, name: &str, iters: u64) {
        if iters == 0 {
            return;
        }
        let workers = (thread_cpu_ticks("ringleader-work") - self.workers) as f64 / ticks_per_sec();
        let bench = (bench_thread_cpu() - self.bench).as_secs_f64();
        eprintln!(
            "{name}: CPU per iteration: workers {:.2} µs, bench thread {:.2} µs ({iters} iterations)",
            workers * 1e6 / iters as f64,
            bench * 1e6 / iters as f64,
        );
    }
}

/// The calling thread's CPU time so far.
fn bench_thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Small, data-dependent work per received message (tokio's benches use a random-length
/// loop; a fixed one keeps runs comparable).
fn do_work(seed: usize) -> usize {
    let mut x = seed;
    for i in 0..64 {
        x = x.wrapping_mul(31).wrapping_add(i);
    }
    std::hint::black_box(x)
}

/// One copy of every channel workload per implementation: `$($p)::+` names a module with
/// `mpsc`, `oneshot`, `broadcast` and `watch` of the same shape (ringleader's or tokio's).
macro_rules! channel_workloads {
    ($name:ident, $($p:ident)::+) => {
        mod $name {
            use super::*;
            use $($p)::+::{broadcast, mpsc, oneshot, watch};
            use ringleader::runtime::Runtime;

            pub(crate) fn contention_bounded(rt: &Runtime, bound: usize) {
                rt.block_on(async move {
                    let (tx, mut rx) = mpsc::channel::<usize>(bound);
                    for _ in 0..5 {
                        let tx = tx.clone();
                        drop(ringleader::spawn(async move {
                            for i in 0..1000 {
                                tx.send(i).await.unwrap();
                            }
                        }));
                    }
                    for _ in 0..1000 * 5 {
                        let _ = rx.recv().await;
                    }
                })
            }

            pub(crate) fn contention_unbounded(rt: &Runtime) {
                rt.block_on(async move {
                    let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
                    for _ in 0..5 {
                        let tx = tx.clone();
                        drop(ringleader::spawn(async move {
                            for i in 0..1000 {
                                tx.send(i).unwrap();
                            }
                        }));
                    }
                    for _ in 0..1000 * 5 {
                        let _ = rx.recv().await;
                    }
                })
            }

            pub(crate) fn uncontended_bounded(rt: &Runtime) {
                rt.block_on(async move {
                    let (tx, mut rx) = mpsc::channel::<usize>(1_000_000);
                    for i in 0..5000 {
                        tx.send(i).await.unwrap();
                    }
                    for _ in 0..5000 {
                        let _ = rx.recv().await;
                    }
                })
            }

            pub(crate) fn uncontended_unbounded(rt: &Runtime) {
                rt.block_on(async move {
                    let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
                    for i in 0..5000 {
                        tx.send(i).unwrap();
                    }
                    for _ in 0..5000 {
                        let _ = rx.recv().await;
                    }
                })
            }

            /// The server task; returns the request sender.
            pub(crate) fn request_reply_server(rt: &Runtime) -> mpsc::Sender<oneshot::Sender<()>> {
                rt.block_on(async move {
                    let (tx, mut rx) = mpsc::channel::<oneshot::Sender<()>>(10);
                    drop(ringleader::spawn(async move {
                        while let Some(reply) = rx.recv().await {
                            reply.send(()).unwrap();
                        }
                    }));
                    tx
                })
            }

            pub(crate) fn request_reply(rt: &Runtime, tx: &mpsc::Sender<oneshot::Sender<()>>) {
                let tx = tx.clone();
                rt.block_on(async move {
                    for _ in 0..1_000 {
                        let (o_tx, o_rx) = oneshot::channel();
                        tx.send(o_tx).await.unwrap();
                        let _ = o_rx.await;
                    }
                })
            }

            /// `n` receiver tasks; returns the sender and the countdown they decrement.
            pub(crate) fn broadcast_setup(
                rt: &Runtime,
                n: usize,
            ) -> (broadcast::Sender<usize>, Arc<(AtomicUsize, tokio::sync::Notify)>) {
                let (tx, _rx) = broadcast::channel::<usize>(1000);
                let wg = Arc::new((AtomicUsize::new(0), tokio::sync::Notify::new()));
                for _ in 0..n {
                    let wg = wg.clone();
                    let mut rx = tx.subscribe();
                    drop(rt.handle().spawn(async move {
                        while let Ok(v) = rx.recv().await {
                            do_work(v);
                            if wg.0.fetch_sub(1, Ordering::AcqRel) == 1 {
                                wg.1.notify_one();
                            }
                        }
                    }));
                }
                (tx, wg)
            }

            pub(crate) fn broadcast_round(
                rt: &Runtime,
                n: usize,
                tx: &broadcast::Sender<usize>,
                wg: &Arc<(AtomicUsize, tokio::sync::Notify)>,
            ) {
                rt.block_on(async move {
                    for i in 0..100 {
                        assert_eq!(wg.0.fetch_add(n, Ordering::AcqRel), 0);
                        tx.send(i).unwrap();
                        while wg.0.load(Ordering::Acquire) > 0 {
                            wg.1.notified().await;
                        }
                    }
                })
            }

            pub(crate) fn watch_setup(
                rt: &Runtime,
                n: usize,
            ) -> (watch::Sender<usize>, Arc<(AtomicUsize, tokio::sync::Notify)>) {
                let (tx, _rx) = watch::channel(0usize);
                let wg = Arc::new((AtomicUsize::new(0), tokio::sync::Notify::new()));
                for _ in 0..n {
                    let wg = wg.clone();
                    let mut rx = tx.subscribe();
                    drop(rt.handle().spawn(async move {
                        while rx.changed().await.is_ok() {
                            let v = *rx.borrow();
                            do_work(v);
                            if wg.0.fetch_sub(1, Ordering::AcqRel) == 1 {
                                wg.1.notify_one();
                            }
                        }
                    }));
                }
                (tx, wg)
            }

            pub(crate) fn watch_round(
                rt: &Runtime,
                n: usize,
                tx: &watch::Sender<usize>,
                wg: &Arc<(AtomicUsize, tokio::sync::Notify)>,
            ) {
                rt.block_on(async move {
                    for i in 0..100 {
                        assert_eq!(wg.0.fetch_add(n, Ordering::AcqRel), 0);
                        let _ = tx.send(i);
                        while wg.0.load(Ordering::Acquire) > 0 {
                            wg.1.notified().await;
                        }
                    }
                })
            }
        }
    };
}

channel_workloads!(rl, ringleader::sync);
channel_workloads!(tk, tokio::sync);

fn channels(c: &mut Criterion) {
    let rt = ringleader_rt(WORKERS);
    if let Some(pairs) = paired_pairs() {
        channels_paired(&rt, pairs);
        return;
    }

    macro_rules! pair {
        ($group:literal, |$r:ident| $body:expr) => {{
            let mut g = c.benchmark_group($group);
            g.bench_function("ringleader", |b| {
                b.iter(|| {
                    use rl as $r;
                    $body
                })
            });
            g.bench_function("tokio", |b| {
                b.iter(|| {
                    use tk as $r;
                    $body
                })
            });
            g.finish();
        }};
    }

    pair!("sync_mpsc/contention_bounded", |m| m::contention_bounded(
        &rt, 1_000_000
    ));
    pair!("sync_mpsc/contention_bounded_full", |m| {
        m::contention_bounded(&rt, 100)
    });
    pair!("sync_mpsc/contention_unbounded", |m| {
        m::contention_unbounded(&rt)
    });
    pair!("sync_mpsc/uncontended_bounded", |m| m::uncontended_bounded(
        &rt
    ));
    pair!("sync_mpsc/uncontended_unbounded", |m| {
        m::uncontended_unbounded(&rt)
    });

    {
        let mut g = c.benchmark_group("sync_mpsc_oneshot/request_reply");
        let tx = rl::request_reply_server(&rt);
        g.bench_function("ringleader", |b| b.iter(|| rl::request_reply(&rt, &tx)));
        drop(tx);
        let tx = tk::request_reply_server(&rt);
        g.bench_function("tokio", |b| b.iter(|| tk::request_reply(&rt, &tx)));
        drop(tx);
        g.finish();
    }

    for n in [10, 100] {
        let mut g = c.benchmark_group("sync_broadcast");
        let (tx, wg) = rl::broadcast_setup(&rt, n);
        g.bench_function(BenchmarkId::new("ringleader", n), |b| {
            b.iter(|| rl::broadcast_round(&rt, n, &tx, &wg))
        });
        drop(tx);
        let (tx, wg) = tk::broadcast_setup(&rt, n);
        g.bench_function(BenchmarkId::new("tokio", n), |b| {
            b.iter(|| tk::broadcast_round(&rt, n, &tx, &wg))
        });
        drop(tx);
        g.finish();
    }

    for n in [10, 100] {
        let mut g = c.benchmark_group("sync_watch");
        let (tx, wg) = rl::watch_setup(&rt, n);
        let (cpu, mut iters) = (CpuMeter::start(), 0);
        g.bench_function(BenchmarkId::new("ringleader", n), |b| {
            b.iter(|| {
                iters += 1;
                rl::watch_round(&rt, n, &tx, &wg)
            })
        });
        cpu.report(&format!("sync_watch/ringleader/{n}"), iters);
        drop(tx);
        let (tx, wg) = tk::watch_setup(&rt, n);
        let (cpu, mut iters) = (CpuMeter::start(), 0);
        g.bench_function(BenchmarkId::new("tokio", n), |b| {
            b.iter(|| {
                iters += 1;
                tk::watch_round(&rt, n, &tx, &wg)
            })
        });
        cpu.report(&format!("sync_watch/tokio/{n}"), iters);
        drop(tx);
        g.finish();
    }
}

// ---------------------------------------------------------------------------------------
// Primitives: tokio's `sync_semaphore.rs` (6 acquire/release pairs in `block_on`; 6 tasks
// on a semaphore of 10 or, contended, of 5), the same with a Mutex as a semaphore of one
// (6 tasks x 100 lock/unlock), `sync_rwlock.rs` (6 reads in `block_on`; 5 reader tasks
// released by a writer), and `sync_notify.rs` (10 waiter tasks in a loop, 500 wake-ups by
// `notify_one` or `notify_waiters` per iteration).
//
// `sync_notify` runs on its own runtime of `NOTIFY_WORKERS` (1) workers: its notifier spins
// on the bench thread, and tokio's file gives it a core of its own (6 workers on a larger
// machine). With 2 workers here, three busy threads share the 2 cores, and the result
// followed which primitive happened to make the spinning notifier sleep (a contended
// lock frees a core for the workers) more than what either primitive costs: it moved by
// ±50 % between runs of the same code.
//
// Guards: the semaphore's uncontended path (one internal lock per acquire and release), the
// FIFO hand-off under contention, and wake-up fan-out. `sync_notify/cycle_*` (ours, not
// tokio's) polls 10 waiters by hand on the bench thread: the primitive's own cost per wait.

/// One copy of every primitive workload per implementation: `$($p)::+` names a module with
/// `Semaphore`, `Mutex`, `RwLock` and `Notify` of the same shape (ringleader's or tokio's).
macro_rules! primitive_workloads {
    ($name:ident, $($p:ident)::+) => {
        mod $name {
            use super::*;
            pub(crate) use $($p)::+::{Mutex, Notify, RwLock, Semaphore};
            use ringleader::runtime::Runtime;

            pub(crate) fn semaphore_uncontended(rt: &Runtime, s: &Arc<Semaphore>) {
                let s = s.clone();
                rt.block_on(async move {
                    for _ in 0..6 {
                        drop(s.acquire().await.unwrap());
                    }
                })
            }

            /// 6 tasks, each acquiring and releasing once, on `s`.
            pub(crate) fn semaphore_tasks(rt: &Runtime, s: &Arc<Semaphore>) {
                let s = s.clone();
                rt.block_on(async move {
                    let tasks: Vec<_> = (0..6)
                        .map(|_| {
                            let s = s.clone();
                            ringleader::spawn(async move {
                                drop(s.acquire().await.unwrap());
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            }

            pub(crate) fn mutex_as_semaphore(rt: &Runtime, m: &Arc<Mutex<usize>>) {
                let m = m.clone();
                rt.block_on(async move {
                    let tasks: Vec<_> = (0..6)
                        .map(|_| {
                            let m = m.clone();
                            ringleader::spawn(async move {
                                for _ in 0..100 {
                                    *m.lock().await += 1;
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            }

            pub(crate) fn rwlock_read_uncontended(rt: &Runtime, l: &Arc<RwLock<()>>) {
                let l = l.clone();
                rt.block_on(async move {
                    for _ in 0..6 {
                        drop(l.read().await);
                    }
                })
            }

            pub(crate) fn rwlock_read_contended(rt: &Runtime, l: &Arc<RwLock<()>>) {
                let l = l.clone();
                rt.block_on(async move {
                    let write = l.write().await;
                    let tasks: Vec<_> = (0..5)
                        .map(|_| {
                            let l = l.clone();
                            ringleader::spawn(async move {
                                drop(l.read().await);
                            })
                        })
                        .collect();
                    drop(write);
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            }

            /// `n` waiter tasks counting their wake-ups; returns the notify and the counter.
            pub(crate) fn notify_setup(rt: &Runtime, n: usize) -> (Arc<Notify>, Arc<Padded>) {
                let notify = Arc::new(Notify::new());
                let counter = Arc::new(Padded(AtomicUsize::new(0)));
                for _ in 0..n {
                    let (notify, counter) = (notify.clone(), counter.clone());
                    drop(rt.handle().spawn(async move {
                        loop {
                            notify.notified().await;
                            counter.0.fetch_add(1, Ordering::SeqCst);
                        }
                    }));
                }
                (notify, counter)
            }

            /// 10 waiters polled by hand on the bench thread (no runtime, no other thread):
            /// all register, then `notify_one` x 10 (or one `notify_waiters`) and all complete.
            /// The primitive's own cost per wait, without the scheduling of `notify_round`.
            pub(crate) fn notify_cycle(notify: &Notify, all: bool) {
                let mut futs = std::pin::pin!(std::array::from_fn::<_, 10, _>(|_| notify.notified()));
                for f in each_pinned(futs.as_mut()) {
                    assert!(poll_noop(f).is_pending());
                }
                if all {
                    notify.notify_waiters();
                } else {
                    (0..10).for_each(|_| notify.notify_one());
                }
                for f in each_pinned(futs.as_mut()) {
                    assert!(poll_noop(f).is_ready());
                }
            }

            pub(crate) fn notify_round(notify: &Notify, counter: &Padded, all: bool) {
                counter.0.store(0, Ordering::SeqCst);
                while counter.0.load(Ordering::SeqCst) < 500 {
                    if all {
                        notify.notify_waiters();
                    } else {
                        notify.notify_one();
                    }
                    std::hint::spin_loop();
                }
            }
        }
    };
}

/// A counter alone on its cache lines: the notifier spins reading it and the waiters bump
/// it, so beside a `Notify` in memory it would add false sharing that depends on where the
/// allocator put the two (and so differ between the two primitives by luck).
#[repr(align(128))]
pub(crate) struct Padded(AtomicUsize);

/// The elements of a pinned array, each pinned in place.
fn each_pinned<T, const N: usize>(a: Pin<&mut [T; N]>) -> impl Iterator<Item = Pin<&mut T>> {
    // SAFETY: the elements are never moved out of the pinned array: each is only re-pinned
    // where it lies.
    unsafe { a.get_unchecked_mut() }
        .iter_mut()
        // SAFETY: as above.
        .map(|x| unsafe { Pin::new_unchecked(x) })
}

/// Polls once with a waker that does nothing.
fn poll_noop<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

primitive_workloads!(rlp, ringleader::sync);
primitive_workloads!(tkp, tokio::sync);

fn primitives(c: &mut Criterion) {
    let rt = ringleader_rt(WORKERS);
    if let Some(pairs) = paired_pairs() {
        primitives_paired(&rt, pairs);
        return;
    }

    macro_rules! pair {
        ($group:literal, |$m:ident| $setup:expr, |$x:ident| $body:expr) => {{
            let mut g = c.benchmark_group($group);
            {
                use rlp as $m;
                let $x = $setup;
                let (cpu, mut iters) = (CpuMeter::start(), 0);
                g.bench_function("ringleader", |b| {
                    b.iter(|| {
                        iters += 1;
                        $body
                    })
                });
                cpu.report(concat!($group, "/ringleader"), iters);
            }
            {
                use tkp as $m;
                let $x = $setup;
                let (cpu, mut iters) = (CpuMeter::start(), 0);
                g.bench_function("tokio", |b| {
                    b.iter(|| {
                        iters += 1;
                        $body
                    })
                });
                cpu.report(concat!($group, "/tokio"), iters);
            }
            g.finish();
        }};
    }

    pair!(
        "sync_semaphore/uncontended",
        |m| Arc::new(m::Semaphore::new(10)),
        |s| m::semaphore_uncontended(&rt, &s)
    );
    pair!(
        "sync_semaphore/uncontended_concurrent",
        |m| Arc::new(m::Semaphore::new(10)),
        |s| m::semaphore_tasks(&rt, &s)
    );
    pair!(
        "sync_semaphore/contended",
        |m| Arc::new(m::Semaphore::new(5)),
        |s| m::semaphore_tasks(&rt, &s)
    );
    pair!(
        "sync_mutex_as_semaphore",
        |m| Arc::new(m::Mutex::new(0usize)),
        |l| m::mutex_as_semaphore(&rt, &l)
    );
    pair!(
        "sync_rwlock/read_uncontended",
        |m| Arc::new(m::RwLock::new(())),
        |l| m::rwlock_read_uncontended(&rt, &l)
    );
    pair!(
        "sync_rwlock/read_contended",
        |m| Arc::new(m::RwLock::new(())),
        |l| m::rwlock_read_contended(&rt, &l)
    );
    pair!("sync_notify/cycle_notify_one", |m| m::Notify::new(), |n| {
        m::notify_cycle(&n, false)
    });
    pair!(
        "sync_notify/cycle_notify_waiters",
        |m| m::Notify::new(),
        |n| m::notify_cycle(&n, true)
    );
    let notify_rt = ringleader_rt(NOTIFY_WORKERS);
    pair!(
        "sync_notify/notify_one",
        |m| m::notify_setup(&notify_rt, 10),
        |n| m::notify_round(&n.0, &n.1, false)
    );
    pair!(
        "sync_notify/notify_waiters",
        |m| m::notify_setup(&notify_rt, 10),
        |n| m::notify_round(&n.0, &n.1, true)
    );
}

/// The channel shapes measured paired and interleaved (`RINGLEADER_BENCH_PAIRED`, see
/// `common::paired`) instead of by criterion.
fn channels_paired(rt: &ringleader::runtime::Runtime, pairs: usize) {
    paired(
        "sync_mpsc/contention_bounded",
        pairs,
        || rl::contention_bounded(rt, 1_000_000),
        || tk::contention_bounded(rt, 1_000_000),
    );
    paired(
        "sync_mpsc/contention_bounded_full",
        pairs,
        || rl::contention_bounded(rt, 100),
        || tk::contention_bounded(rt, 100),
    );
    paired(
        "sync_mpsc/contention_unbounded",
        pairs,
        || rl::contention_unbounded(rt),
        || tk::contention_unbounded(rt),
    );
    paired(
        "sync_mpsc/uncontended_bounded",
        pairs,
        || rl::uncontended_bounded(rt),
        || tk::uncontended_bounded(rt),
    );
    paired(
        "sync_mpsc/uncontended_unbounded",
        pairs,
        || rl::uncontended_unbounded(rt),
        || tk::uncontended_unbounded(rt),
    );
    let (rtx, ttx) = (rl::request_reply_server(rt), tk::request_reply_server(rt));
    paired(
        "sync_mpsc_oneshot/request_reply",
        pairs,
        || rl::request_reply(rt, &rtx),
        || tk::request_reply(rt, &ttx),
    );
    for n in [10, 100] {
        let (rtx, rwg) = rl::broadcast_setup(rt, n);
        let (ttx, twg) = tk::broadcast_setup(rt, n);
        paired(
            &format!("sync_broadcast/{n}"),
            pairs,
            || rl::broadcast_round(rt, n, &rtx, &rwg),
            || tk::broadcast_round(rt, n, &ttx, &twg),
        );
    }
    for n in [10, 100] {
        let (rtx, rwg) = rl::watch_setup(rt, n);
        let (ttx, twg) = tk::watch_setup(rt, n);
        paired(
            &format!("sync_watch/{n}"),
            pairs,
            || rl::watch_round(rt, n, &rtx, &rwg),
            || tk::watch_round(rt, n, &ttx, &twg),
        );
    }
}

/// The primitive shapes measured paired and interleaved (`RINGLEADER_BENCH_PAIRED`).
fn primitives_paired(rt: &ringleader::runtime::Runtime, pairs: usize) {
    let (rs, ts) = (
        Arc::new(rlp::Semaphore::new(10)),
        Arc::new(tkp::Semaphore::new(10)),
    );
    paired(
        "sync_semaphore/uncontended",
        pairs,
        || rlp::semaphore_uncontended(rt, &rs),
        || tkp::semaphore_uncontended(rt, &ts),
    );
    paired(
        "sync_semaphore/uncontended_concurrent",
        pairs,
        || rlp::semaphore_tasks(rt, &rs),
        || tkp::semaphore_tasks(rt, &ts),
    );
    let (rs, ts) = (
        Arc::new(rlp::Semaphore::new(5)),
        Arc::new(tkp::Semaphore::new(5)),
    );
    paired(
        "sync_semaphore/contended",
        pairs,
        || rlp::semaphore_tasks(rt, &rs),
        || tkp::semaphore_tasks(rt, &ts),
    );
    let (rm, tm) = (
        Arc::new(rlp::Mutex::new(0usize)),
        Arc::new(tkp::Mutex::new(0usize)),
    );
    paired(
        "sync_mutex_as_semaphore",
        pairs,
        || rlp::mutex_as_semaphore(rt, &rm),
        || tkp::mutex_as_semaphore(rt, &tm),
    );
    let (rw, tw) = (
        Arc::new(rlp::RwLock::new(())),
        Arc::new(tkp::RwLock::new(())),
    );
    paired(
        "sync_rwlock/read_uncontended",
        pairs,
        || rlp::rwlock_read_uncontended(rt, &rw),
        || tkp::rwlock_read_uncontended(rt, &tw),
    );
    paired(
        "sync_rwlock/read_contended",
        pairs,
        || rlp::rwlock_read_contended(rt, &rw),
        || tkp::rwlock_read_contended(rt, &tw),
    );
    let (rn, tn) = (rlp::Notify::new(), tkp::Notify::new());
    paired(
        "sync_notify/cycle_notify_one",
        pairs,
        || rlp::notify_cycle(&rn, false),
        || tkp::notify_cycle(&tn, false),
    );
    paired(
        "sync_notify/cycle_notify_waiters",
        pairs,
        || rlp::notify_cycle(&rn, true),
        || tkp::notify_cycle(&tn, true),
    );
    let notify_rt = ringleader_rt(NOTIFY_WORKERS);
    let (rn, tn) = (
        rlp::notify_setup(&notify_rt, 10),
        tkp::notify_setup(&notify_rt, 10),
    );
    paired(
        "sync_notify/notify_one",
        pairs,
        || rlp::notify_round(&rn.0, &rn.1, false),
        || tkp::notify_round(&tn.0, &tn.1, false),
    );
    paired(
        "sync_notify/notify_waiters",
        pairs,
        || rlp::notify_round(&rn.0, &rn.1, true),
        || tkp::notify_round(&tn.0, &tn.1, true),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = channels, primitives
}
criterion_main!(benches);
