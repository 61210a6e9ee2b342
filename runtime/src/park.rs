//! How a thread with nothing to run waits, and how another thread wakes it.
//!
//! Workers and `block_on` threads park through the [`Park`] trait so that the backend can be
//! swapped: [`ThreadParker`] waits on a condvar; the io_uring driver waits on the worker's ring
//! (completions, timers and cross-thread wake-ups all end the same wait).
//!
//! Contract every backend meets:
//! - `unpark` before `park` is not lost: the next `park` returns at once (a stored token).
//! - `park` may return spuriously; callers re-check their queues.
//! - `park(Some(d))` returns no later than about `d` after it was called.

use crate::loom::{lock, AtomicU8, AtomicUsize, Condvar, Mutex, Ordering};
// Unparkers are trait objects behind std's Arc (loom's Arc cannot coerce to `dyn`); the
// state they touch is loom-visible.
use std::sync::Arc;
use std::time::Duration;

/// Blocks the calling thread until woken. Owned by one thread.
pub(crate) trait Park: Send + 'static {
    /// Waits until unparked or `timeout` elapses (`None`: no bound). `Some(ZERO)` only does
    /// the backend's non-blocking work (reaping completions, for a ring).
    fn park(&mut self, timeout: Option<Duration>);

    /// A handle other threads use to end this parker's wait.
    fn unparker(&self) -> Arc<dyn Unpark>;

    /// Non-blocking backend work done once per scheduler round (a ring submits what was
    /// queued and dispatches completions).
    fn maintain(&mut self) {}

    /// The periodic non-blocking work of a busy owner (every few polls): like `maintain`,
    /// but a backend may skip work that can wait for the next turn it makes anyway.
    fn maintain_busy(&mut self) {
        self.maintain()
    }

    /// Called when the owner's queues are empty, before it looks for work elsewhere:
    /// dispatches the completions already posted or flagged (submitting queued entries with
    /// the enter that collects them), without waiting; does nothing, and makes no syscall,
    /// when there are none. Returns whether any completion was dispatched (tasks may have
    /// been woken).
    fn poll_ready(&mut self) -> bool {
        false
    }

    /// The I/O ring operations started on the owning thread should use.
    #[cfg(not(ringleader_loom))]
    fn ring(&self) -> Option<Arc<crate::driver::ring::RingShared>> {
        None
    }

    /// Final backend work when the core shuts down (a ring cancels what is in flight and
    /// waits for it).
    fn shutdown(&mut self) {}
}

/// Wakes a [`Park`] from any thread.
pub(crate) trait Unpark: Send + Sync + 'static {
    /// Ends the current or next `park` of the paired parker.
    fn unpark(&self);
}

const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;

/// A condvar parker: the backend for threads without a ring and for loom models.
pub(crate) struct ThreadParker {
    inner: Arc<ParkInner>,
}

struct ParkInner {
    /// EMPTY, PARKED (a thread waits or is about to) or NOTIFIED (a token is stored).
    state: AtomicUsize,
    lock: Mutex<()>,
    condvar: Condvar,
}

impl ThreadParker {
    pub(crate) fn new() -> ThreadParker {
        ThreadParker {
            inner: Arc::new(ParkInner {
                state: AtomicUsize::new(EMPTY),
                lock: Mutex::new(()),
                condvar: Condvar::new(),
            }),
        }
    }
}

impl Park for ThreadParker {
    fn park(&mut self, timeout: Option<Duration>) {
        let inner = &*self.inner;
        // Fast path: consume a stored token.
        if inner
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
        if timeout == Some(Duration::ZERO) {
            return;
        }
        let mut guard = lock(&inner.lock);
        match inner
            .state
            .compare_exchange(EMPTY, PARKED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {}
            Err(NOTIFIED) => {
                // The token arrived between the fast path and taking the lock.
                inner.state.store(EMPTY, Ordering::SeqCst);
                return;
            }
            Err(actual) => unreachable!("parker in state {actual} while its owner parks"),
        }
        loop {
            guard = match timeout {
                None => inner.condvar.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    #[cfg(not(ringleader_loom))]
                    let g = inner
                        .condvar
                        .wait_timeout(guard, d)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    // loom has no timed waits; a timed park in a model is a plain wait that
                    // the model's own unparks end.
                    #[cfg(ringleader_loom)]
                    let g = {
                        let _ = d;
                        inner.condvar.wait(guard).unwrap_or_else(|e| e.into_inner())
                    };
                    // Timed out or woken: either way this park ends, and a token that
                    // arrived meanwhile is consumed by ending it.
                    inner.state.swap(EMPTY, Ordering::SeqCst);
                    drop(g);
                    return;
                }
            };
            if inner
                .state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
            // Spurious condvar wake-up: wait again.
        }
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.inner.clone()
    }
}

impl Unpark for ParkInner {
    fn unpark(&self) {
        match self.state.swap(NOTIFIED, Ordering::SeqCst) {
            EMPTY | NOTIFIED => {}
            PARKED => {
                // Taking the lock orders this notify after the parker's wait began: the
                // parker set PARKED while holding the lock and only releases it by waiting.
                drop(lock(&self.lock));
                self.condvar.notify_one();
            }
            actual => unreachable!("parker in state {actual}"),
        }
    }
}

/// Whether a `block_on` thread that drives no core has something to do: its future is being
/// polled or has been woken, or it waits with nothing to do.
///
/// A paused clock jumps to the next deadline only when every task waits, and a `block_on`
/// future counts as a task there (asyncio's and tokio's paused-clock tests rely on time
/// standing still while the test's own body runs). The waker marks the thread woken before
/// it unparks it, and the thread can only go idle from running (a compare-exchange that
/// fails once it was woken), so a woken thread never looks idle until it has polled again.
/// A thread that goes idle while the clock is paused nudges a worker (see
/// `Shared::block_on_went_idle`), which re-checks whether every task now waits.
pub(crate) struct BlockOnActivity {
    /// `RUNNING`, `WOKEN` or `IDLE`.
    state: AtomicU8,
}

const RUNNING: u8 = 0;
const WOKEN: u8 = 1;
const IDLE: u8 = 2;

impl BlockOnActivity {
    /// A thread about to poll its future.
    pub(crate) fn new() -> BlockOnActivity {
        BlockOnActivity {
            state: AtomicU8::new(RUNNING),
        }
    }

    /// The future was woken: called by its waker before the thread is unparked.
    pub(crate) fn woken(&self) {
        // A swap rather than a store (the same `xchg` on x86): loom 0.7 lets a plain store
        // be ordered before another thread's earlier compare-exchange, an outcome the
        // hardware never produces, and its models would report it.
        self.state.swap(WOKEN, Ordering::SeqCst);
    }

    /// After a poll that returned `Pending`: true if the thread may park (it is now idle),
    /// false if it was woken meanwhile and should poll again.
    pub(crate) fn try_idle(&self) -> bool {
        self.state
            .compare_exchange(RUNNING, IDLE, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The thread is about to poll its future again (after a park or a failed `try_idle`).
    ///
    /// A read-modify-write, not a store: when it replaces a `WOKEN` it reads the waker's
    /// write, so the poll that follows sees what the waker published before waking; and a
    /// `WOKEN` written after it makes the next `try_idle` fail.
    pub(crate) fn running(&self) {
        self.state.swap(RUNNING, Ordering::SeqCst);
    }

    /// Whether the thread waits with nothing to do.
    pub(crate) fn is_idle(&self) -> bool {
        self.state.load(Ordering::SeqCst) == IDLE
    }
}
