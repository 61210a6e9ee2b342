//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ringleader::runtime::{Builder, Runtime};

/// A multi-thread runtime with two workers, the size of the machines CI runs on.
pub fn rt2() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime builds")
}

/// A current-thread runtime on a paused clock (virtual time: sleeps end at once, in order).
pub fn paused() -> Runtime {
    Builder::new_current_thread()
        .start_paused(true)
        .build()
        .expect("runtime builds")
}

/// A multi-thread runtime of `workers` workers on a paused clock.
pub fn paused_mt_with(workers: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .start_paused(true)
        .build()
        .expect("runtime builds")
}

/// A two-worker runtime on a paused clock.
pub fn paused_mt() -> Runtime {
    paused_mt_with(2)
}

/// Scales an iteration count down in debug builds, where everything runs ~10x slower.
pub fn scaled(n: usize) -> usize {
    if cfg!(debug_assertions) {
        (n / 10).max(1)
    } else {
        n
    }
}

/// Counts drops of the values it hands out.
#[derive(Clone, Default)]
pub struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Increments its counter once when dropped.
pub struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Resident set size of this process in KiB, from /proc/self/status.
pub fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Open file descriptors of this process, from /proc/self/fd, not counting runtimes' own
/// rings and eventfds (a thread's `block_on` ring is created on its first `block_on` and
/// closed when the thread exits, which for a finished test's thread may be at any moment).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(Result::ok)
        .filter(|entry| {
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            let target = target.to_string_lossy();
            target != "anon_inode:[io_uring]" && target != "anon_inode:[eventfd]"
        })
        .count()
}

/// Every open file descriptor of this process, rings and eventfds included.
pub fn open_fds_all() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// Polls `f` once, returning its output if it was ready.
pub async fn poll_once<F: std::future::Future>(mut f: std::pin::Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match f.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// A plain error for tests whose tasks fail on purpose; its message is the text given.
#[derive(Debug)]
pub struct Boom(pub &'static str);

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Boom {}

/// Held by the tests of one binary that count fds, processes or threads: such counts must
/// not see another test's sockets or children.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes this binary's serial lock (see [`SERIAL`]); a test that panicked with it held
/// does not poison it for the others.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `body` on a new thread, holding the serial lock until that thread has exited (its
/// `block_on` ring, drained at thread exit, closes fds that cancelled operations held; see
/// `io_fd_accounting.rs`).
pub fn serial_on_thread(body: impl FnOnce() + Send + 'static) {
    let _serial = serial();
    let result = std::thread::spawn(body).join();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
