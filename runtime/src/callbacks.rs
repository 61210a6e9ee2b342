//! asyncio's loop callbacks: `call_soon`, `call_later`, `call_at` (all callable from any
//! thread, so `call_soon_threadsafe` is the same as `call_soon` here).
//!
//! Callbacks go to one lock-free FIFO queue per runtime, drained by at most one task at a
//! time, so they run one after another in the order they were queued, from whichever
//! thread. A drainer yields to the scheduler every [`DRAIN_BATCH`] callbacks so a flood of
//! callbacks cannot monopolise a worker.
//!
//! Timed callbacks wait in one map per runtime, ordered by (deadline, scheduling order),
//! each with a task sleeping until its deadline. The first of those tasks to wake moves
//! every callback ordered up to its own into the FIFO queue, in map order and under the
//! map's lock: callbacks due at the same time run in the order they were scheduled, even
//! when their timers sit on different workers' wheels and fire in another order.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_deque::{Injector, Steal};

use crate::runtime::Handle;
use crate::task::context::{self, Snapshot};
use crate::task::AbortHandle;
use crate::time::Instant;

const DRAIN_BATCH: usize = 64;

struct Callback {
    f: Box<dyn FnOnce() + Send + 'static>,
    cancelled: Arc<AtomicBool>,
    /// The context variables current when it was scheduled, which it runs in (asyncio's
    /// callbacks run in a copy of the scheduler's context).
    context: Snapshot,
}

pub(crate) struct CallSoonQueue {
    queue: Injector<Callback>,
    /// A drainer task exists (spawned and not yet finished).
    draining: AtomicBool,
    /// `call_later` / `call_at` callbacks not yet due, by (deadline, scheduling order).
    timed: Mutex<BTreeMap<TimedKey, Callback>>,
    /// The scheduling order of timed callbacks.
    next_timed: AtomicU64,
}

type TimedKey = (Instant, u64);

impl CallSoonQueue {
    pub(crate) fn new() -> CallSoonQueue {
        CallSoonQueue {
            queue: Injector::new(),
            draining: AtomicBool::new(false),
            timed: Mutex::new(BTreeMap::new()),
            next_timed: AtomicU64::new(0),
        }
    }

    fn timed(&self) -> std::sync::MutexGuard<'_, BTreeMap<TimedKey, Callback>> {
        // Nothing that can panic runs under this lock, but a poisoned map is still sound.
        self.timed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pop(&self) -> Option<Callback> {
        loop {
            match self.queue.steal() {
                Steal::Success(cb) => return Some(cb),
                Steal::Empty => return None,
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    }
}

/// Cancels a callback queued with `call_soon`, `call_later` or `call_at` (asyncio's
/// `Handle` / `TimerHandle`). Dropping it does not cancel.
#[derive(Debug, Clone)]
pub struct CallbackHandle {
    pub(crate) cancelled: Arc<AtomicBool>,
    /// For `call_later` / `call_at`: the task waiting for the time, aborted on cancel so
    /// its timer is freed at once.
    timer: Option<AbortHandle>,
    /// For `call_later` / `call_at`: when it is due.
    when: Option<Instant>,
}

impl CallbackHandle {
    pub(crate) fn new() -> CallbackHandle {
        CallbackHandle {
            cancelled: Arc::new(AtomicBool::new(false)),
            timer: None,
            when: None,
        }
    }

    /// Stops the callback from running, if it has not started yet.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(timer) = &self.timer {
            timer.abort();
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// When a `call_later` / `call_at` callback is due, on the runtime's clock (asyncio's
    /// `TimerHandle.when()`); `None` for `call_soon`.
    pub fn when(&self) -> Option<Instant> {
        self.when
    }
}

pub(crate) fn call_soon(handle: &Handle, f: Box<dyn FnOnce() + Send + 'static>) -> CallbackHandle {
    let cb = CallbackHandle::new();
    enqueue(
        handle,
        Callback {
            f,
            cancelled: cb.cancelled.clone(),
            context: context::snapshot(),
        },
    );
    cb
}

/// `call_at`: the callback waits in the timed map while a task sleeps until `when`; then
/// it and every callback ordered before it go to the FIFO queue (see the module docs).
pub(crate) fn call_at(
    handle: &Handle,
    when: Instant,
    f: Box<dyn FnOnce() + Send + 'static>,
) -> CallbackHandle {
    let mut cb = CallbackHandle::new();
    let queue = &handle.shared.call_soon;
    let key = (when, queue.next_timed.fetch_add(1, Ordering::Relaxed));
    queue.timed().insert(
        key,
        Callback {
            f,
            cancelled: cb.cancelled.clone(),
            context: context::snapshot(),
        },
    );
    // Made before the task so that a task dropped unpolled (spawned during shutdown, or
    // aborted at once) still takes its callback out of the map.
    let entry = TimedEntry {
        handle: handle.clone(),
        key,
    };
    let timer = handle.spawn(async move {
        crate::time::sleep_until(when).await;
        entry.fire();
    });
    cb.timer = Some(timer.abort_handle());
    cb.when = Some(when);
    cb
}

/// A timer task's claim on its callback in the timed map; dropping it (the task was
/// cancelled) removes the callback if it is still there.
struct TimedEntry {
    handle: Handle,
    key: TimedKey,
}

impl TimedEntry {
    /// Our deadline passed: queue every callback ordered up to ours, in order. Under the
    /// map's lock, so a timer firing concurrently for a later key queues after us.
    fn fire(&self) {
        let queue = &self.handle.shared.call_soon;
        let mut cancelled = Vec::new();
        let mut timed = queue.timed();
        while let Some(entry) = timed.first_entry() {
            if *entry.key() > self.key {
                break;
            }
            let cb = entry.remove();
            if cb.cancelled.load(Ordering::SeqCst) {
                cancelled.push(cb);
            } else {
                enqueue(&self.handle, cb);
            }
        }
        drop(timed);
        // Closures are dropped outside the lock: their drops may run arbitrary code.
        drop(cancelled);
    }
}

impl Drop for TimedEntry {
    fn drop(&mut self) {
        let removed = self.handle.shared.call_soon.timed().remove(&self.key);
        drop(removed);
    }
}

fn enqueue(handle: &Handle, cb: Callback) {
    let queue = &handle.shared.call_soon;
    queue.queue.push(cb);
    if !queue.draining.swap(true, Ordering::AcqRel) {
        let drainer_handle = handle.clone();
        drop(handle.spawn(async move { drain(drainer_handle).await }));
    }
}

async fn drain(handle: Handle) {
    let queue = &handle.shared.call_soon;
    loop {
        let mut ran = 0;
        while let Some(cb) = queue.pop() {
            if !cb.cancelled.load(Ordering::SeqCst)
                && catch_unwind(AssertUnwindSafe(|| context::run_in(cb.context, cb.f))).is_err()
            {
                tracing::error!("a call_soon callback panicked; the panic was caught");
            }
            ran += 1;
            if ran % DRAIN_BATCH == 0 {
                crate::task::yield_now().await;
            }
        }
        queue.draining.store(false, Ordering::SeqCst);
        // A callback queued after our last pop but before the store saw `draining` set and
        // spawned nobody: take the drainer role back if so.
        if queue.queue.is_empty() || queue.draining.swap(true, Ordering::AcqRel) {
            return;
        }
    }
}
