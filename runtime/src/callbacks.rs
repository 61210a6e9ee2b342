//! asyncio's loop callbacks: `call_soon`, `call_later`, `call_at` (all callable from any
//! thread, so `call_soon_threadsafe` is the same as `call_soon` here).
//!
//! Callbacks go to one lock-free FIFO queue per runtime, drained by at most one task at a
//! time, so they run one after another in the order they were queued, from whichever
//! thread. A drainer yields to the scheduler every [`DRAIN_BATCH`] callbacks so a flood of
//! callbacks cannot monopolise a worker.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_deque::{Injector, Steal};

use crate::runtime::Handle;
use crate::task::AbortHandle;
use crate::time::Instant;

const DRAIN_BATCH: usize = 64;

struct Callback {
    f: Box<dyn FnOnce() + Send + 'static>,
    cancelled: Arc<AtomicBool>,
}

pub(crate) struct CallSoonQueue {
    queue: Injector<Callback>,
    /// A drainer task exists (spawned and not yet finished).
    draining: AtomicBool,
}

impl CallSoonQueue {
    pub(crate) fn new() -> CallSoonQueue {
        CallSoonQueue {
            queue: Injector::new(),
            draining: AtomicBool::new(false),
        }
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
}

impl CallbackHandle {
    pub(crate) fn new() -> CallbackHandle {
        CallbackHandle {
            cancelled: Arc::new(AtomicBool::new(false)),
            timer: None,
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
}

pub(crate) fn call_soon(handle: &Handle, f: Box<dyn FnOnce() + Send + 'static>) -> CallbackHandle {
    let cb = CallbackHandle::new();
    enqueue(handle, f, cb.cancelled.clone());
    cb
}

/// `call_at`: a task sleeps until `when`, then queues `f` like `call_soon` (so callbacks due
/// at the same time run in the order their timers fire).
pub(crate) fn call_at(
    handle: &Handle,
    when: Instant,
    f: Box<dyn FnOnce() + Send + 'static>,
) -> CallbackHandle {
    let mut cb = CallbackHandle::new();
    let cancelled = cb.cancelled.clone();
    let h = handle.clone();
    let timer = handle.spawn(async move {
        crate::time::sleep_until(when).await;
        if !cancelled.load(Ordering::SeqCst) {
            enqueue(&h, f, cancelled);
        }
    });
    cb.timer = Some(timer.abort_handle());
    cb
}

fn enqueue(handle: &Handle, f: Box<dyn FnOnce() + Send + 'static>, cancelled: Arc<AtomicBool>) {
    let queue = &handle.shared.call_soon;
    queue.queue.push(Callback { f, cancelled });
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
            if !cb.cancelled.load(Ordering::SeqCst) && catch_unwind(AssertUnwindSafe(cb.f)).is_err()
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
