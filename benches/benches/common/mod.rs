//! Shared helpers for the side-by-side benchmarks: one small trait over the runtimes under
//! test, so every workload is written once and runs identically on each.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What a benchmark needs from a runtime.
pub trait BenchRuntime: Clone + Send + Sync + 'static {
    /// A spawned task's handle; resolves to its output (panics propagate as panics).
    type Handle<T: Send + 'static>: Future<Output = T> + Send + 'static;
    /// Spawns onto the runtime, from any thread (from a worker it is a local spawn).
    fn spawn<F>(&self, f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Runs `f` on the calling thread until done.
    fn block_on<F: Future>(&self, f: F) -> F::Output;
    /// Yields once to the scheduler.
    fn yield_now(&self) -> impl Future<Output = ()> + Send + 'static;
}

/// Maps a `Result`-returning join handle to its value, panicking on a join error.
pub struct Unwrap<J>(pub J);

impl<J, T, E> Future for Unwrap<J>
where
    J: Future<Output = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.expect("benchmark task failed"))
    }
}

/// ringleader's multi-thread runtime.
#[derive(Clone)]
pub struct Ringleader(pub Arc<ringleader::runtime::Runtime>);

impl Ringleader {
    /// A runtime with `workers` worker threads.
    pub fn new(workers: usize) -> Ringleader {
        Ringleader(Arc::new(
            ringleader::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .expect("ringleader runtime"),
        ))
    }
}

impl BenchRuntime for Ringleader {
    type Handle<T: Send + 'static> = Unwrap<ringleader::task::JoinHandle<T>>;
    fn spawn<F>(&self, f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrap(self.0.handle().spawn(f))
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }
    fn yield_now(&self) -> impl Future<Output = ()> + Send + 'static {
        ringleader::task::yield_now()
    }
}

/// tokio's multi-thread runtime.
#[derive(Clone)]
pub struct Tokio(pub Arc<tokio::runtime::Runtime>);

impl Tokio {
    /// A runtime with `workers` worker threads.
    pub fn new(workers: usize) -> Tokio {
        Tokio(Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .expect("tokio runtime"),
        ))
    }
}

impl BenchRuntime for Tokio {
    type Handle<T: Send + 'static> = Unwrap<tokio::task::JoinHandle<T>>;
    fn spawn<F>(&self, f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrap(self.0.handle().spawn(f))
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }
    fn yield_now(&self) -> impl Future<Output = ()> + Send + 'static {
        tokio::task::yield_now()
    }
}

/// smol's executor (`async-executor`) run on a fixed number of threads.
#[derive(Clone)]
pub struct Smol(Arc<SmolInner>);

struct SmolInner {
    executor: Arc<async_executor::Executor<'static>>,
    stop: async_channel::Sender<()>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Smol {
    /// An executor driven by `workers` threads.
    pub fn new(workers: usize) -> Smol {
        let executor = Arc::new(async_executor::Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let threads = (0..workers)
            .map(|i| {
                let ex = executor.clone();
                let stopped = stopped.clone();
                std::thread::Builder::new()
                    .name(format!("smol-{i}"))
                    .spawn(move || {
                        futures_lite::future::block_on(ex.run(stopped.recv()))
                            .ok()
                            .unwrap_or(())
                    })
                    .expect("smol thread")
            })
            .collect();
        Smol(Arc::new(SmolInner {
            executor,
            stop,
            threads: std::sync::Mutex::new(threads),
        }))
    }
}

impl Drop for SmolInner {
    fn drop(&mut self) {
        self.stop.close();
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}

/// An `async_executor::Task` that detaches when dropped, as tokio's and ringleader's handles
/// do (smol's own `Task` cancels on drop).
pub struct SmolHandle<T>(Option<async_executor::Task<T>>);

impl<T> Future for SmolHandle<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let task = self.0.as_mut().expect("polled after completion");
        Pin::new(task).poll(cx)
    }
}

impl<T> Drop for SmolHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.detach();
        }
    }
}

impl BenchRuntime for Smol {
    type Handle<T: Send + 'static> = SmolHandle<T>;
    fn spawn<F>(&self, f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        SmolHandle(Some(self.0.executor.spawn(f)))
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        futures_lite::future::block_on(f)
    }
    fn yield_now(&self) -> impl Future<Output = ()> + Send + 'static {
        futures_lite::future::yield_now()
    }
}

/// Spins for `d` without yielding (simulated CPU work).
pub fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Background load that stops when dropped.
pub struct Background {
    stop: Arc<AtomicBool>,
}

impl Background {
    /// A flag the background tasks poll.
    pub fn new() -> Background {
        Background {
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
    /// The flag, for the tasks.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }
}

impl Default for Background {
    fn default() -> Self {
        Background::new()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// A ringleader multi-thread runtime with `workers` threads.
pub fn ringleader_rt(workers: usize) -> ringleader::runtime::Runtime {
    ringleader::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("ringleader runtime")
}

/// A tokio multi-thread runtime with `workers` threads and its drivers enabled.
pub fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// CPU time (user + system, in clock ticks) used so far by this process's threads whose
/// name starts with `prefix`: the server's threads, whatever the wall clock says. On a
/// shared machine the wall-clock throughput moves with other load; CPU per message much
/// less.
pub fn thread_cpu_ticks(prefix: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            // pid (comm) state ... utime stime: fields 14 and 15, counted after the comm.
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1;
            if !comm.starts_with(prefix) {
                return None;
            }
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Clock ticks per second (USER_HZ).
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// `RINGLEADER_BENCH_PAIRED=<pairs>`: the number of interleaved pairs for [`paired`], if set.
pub fn paired_pairs() -> Option<usize> {
    std::env::var("RINGLEADER_BENCH_PAIRED")
        .ok()?
        .parse()
        .ok()
        .filter(|&n: &usize| n > 0)
}

/// Paired, interleaved measurement of one workload's two implementations (see
/// [`paired_custom`]), each given as one iteration's closure.
pub fn paired(name: &str, pairs: usize, mut ringleader: impl FnMut(), mut tokio: impl FnMut()) {
    fn time(f: &mut impl FnMut(), n: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed()
    }
    paired_custom(
        name,
        pairs,
        ("ringleader", &mut |n| time(&mut ringleader, n)),
        ("tokio", &mut |n| time(&mut tokio, n)),
    );
}

/// Paired, interleaved measurement of two implementations `a` and `b` of one workload, each
/// given as criterion's `iter_custom` closure (run `n` iterations, return the time they
/// took): `pairs` rounds, each timing a block of `a` then a block of `b` (the order
/// alternates between rounds), a block being enough iterations for about 50 ms. Prints
/// the median time per iteration of each and the quartiles of the per-round ratio `a / b`.
///
/// `RINGLEADER_BENCH_PAIRED_ONLY=<text>` skips the workloads whose name does not contain it;
/// `RINGLEADER_BENCH_PAIRED_VERBOSE=1` prints every round's two times.
///
/// Why: on a VM where the cost of a wake-up drifts by up to 2x within minutes, criterion's
/// sequential functions (all of `a`'s samples, then all of `b`'s) compare two moments as
/// much as two implementations. Interleaving puts both under the same conditions in each
/// round, so the ratio's spread shows what is a difference and what is drift.
pub fn paired_custom(
    name: &str,
    pairs: usize,
    (a_name, a): (&str, &mut dyn FnMut(u64) -> Duration),
    (b_name, b): (&str, &mut dyn FnMut(u64) -> Duration),
) {
    if std::env::var("RINGLEADER_BENCH_PAIRED_ONLY").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    let per_iter = |f: &mut dyn FnMut(u64) -> Duration, n: u64| f(n) / n as u32;
    // Warm both up, and size the block from the slower of the two.
    let mut n = 1u64;
    let per = loop {
        let per = per_iter(a, n).max(per_iter(b, n));
        if per * n as u32 >= Duration::from_millis(20) || n >= 1 << 20 {
            break per;
        }
        n *= 2;
    };
    let n = (Duration::from_millis(50).as_nanos() / per.as_nanos().max(1)).max(1) as u64;
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..pairs {
        let (x, y) = if round % 2 == 0 {
            let x = per_iter(a, n);
            (x, per_iter(b, n))
        } else {
            let y = per_iter(b, n);
            (per_iter(a, n), y)
        };
        ratios.push(x.as_secs_f64() / y.as_secs_f64().max(1e-12));
        if std::env::var_os("RINGLEADER_BENCH_PAIRED_VERBOSE").is_some() {
            eprintln!("  {name} round {round}: {a_name} {x:?}, {b_name} {y:?}");
        }
        ta.push(x);
        tb.push(y);
    }
    ta.sort();
    tb.sort();
    ratios.sort_by(f64::total_cmp);
    let q = |p: f64| ratios[((ratios.len() - 1) as f64 * p).round() as usize];
    println!(
        "paired {name}: {a_name} {:?}, {b_name} {:?} per iteration (medians); {a_name}/{b_name} median {:.2}, quartiles {:.2}–{:.2}, range {:.2}–{:.2} ({pairs} pairs of {n} iterations)",
        ta[ta.len() / 2],
        tb[tb.len() / 2],
        q(0.5),
        q(0.25),
        q(0.75),
        ratios[0],
        ratios[ratios.len() - 1],
    );
}
