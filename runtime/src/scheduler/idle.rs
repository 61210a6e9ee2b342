//! Which workers search for work and which sleep, and the rule that loses no wake-up.
//!
//! Protocol:
//! - A worker with nothing local *searches* (steals from the injector and its peers) only if
//!   fewer than half the workers already search; otherwise it goes to park at once.
//! - A notifier (whoever pushed work another worker could take) first issues a SeqCst fence,
//!   then: if anyone searches, does nothing (a searcher will find the work); else if anyone
//!   sleeps, pops one sleeper, counts it as searching and unparks it.
//! - A searcher that finds work stops searching; if it was the last searcher it notifies
//!   (so the rest of a burst gets another worker).
//! - A worker that parks: stops searching (if it was), registers as a sleeper, issues a
//!   SeqCst fence, then checks every queue once more; only if all are empty does it park.
//!
//! Why no wake-up is lost: the notifier's push → fence → read of the counters and the
//! parker's counter update → fence → read of the queues are a Dekker pair, so at least one
//! side sees the other. If the notifier sees a searcher, that searcher's own decrement comes
//! later in the SeqCst order, and the last searcher re-checks the queues after it.

use crate::loom::{fence, lock, AtomicUsize, Mutex, Ordering};

pub(crate) struct Idle {
    num_searching: AtomicUsize,
    num_sleeping: AtomicUsize,
    sleepers: Mutex<Vec<usize>>,
    num_workers: usize,
}

impl Idle {
    pub(crate) fn new(num_workers: usize) -> Idle {
        Idle {
            num_searching: AtomicUsize::new(0),
            num_sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
            num_workers,
        }
    }

    /// Becomes a searcher unless half the workers already search.
    pub(crate) fn try_start_searching(&self) -> bool {
        let searching = self.num_searching.load(Ordering::SeqCst);
        if 2 * searching >= self.num_workers.max(2) {
            return false;
        }
        self.num_searching.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Stops searching; true if this was the last searcher.
    pub(crate) fn stop_searching(&self) -> bool {
        self.num_searching.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// Picks a sleeper to wake, counting it as searching. Call after publishing work.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        fence(Ordering::SeqCst);
        if self.num_searching.load(Ordering::SeqCst) != 0
            || self.num_sleeping.load(Ordering::SeqCst) == 0
        {
            return None;
        }
        let mut sleepers = lock(&self.sleepers);
        // Re-checked under the lock so that a burst of notifies wakes one worker, not all.
        if self.num_searching.load(Ordering::SeqCst) != 0 {
            return None;
        }
        let index = sleepers.pop()?;
        self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
        self.num_searching.fetch_add(1, Ordering::SeqCst);
        Some(index)
    }

    /// Registers `index` as sleeping; the caller re-checks the queues afterwards.
    pub(crate) fn register_sleeper(&self, index: usize) {
        let mut sleepers = lock(&self.sleepers);
        sleepers.push(index);
        self.num_sleeping.fetch_add(1, Ordering::SeqCst);
        drop(sleepers);
        fence(Ordering::SeqCst);
    }

    /// Removes `index` from the sleepers. `false` means a notifier already took it out and
    /// counted it as searching.
    pub(crate) fn unregister_sleeper(&self, index: usize) -> bool {
        let mut sleepers = lock(&self.sleepers);
        match sleepers.iter().position(|&i| i == index) {
            Some(pos) => {
                sleepers.swap_remove(pos);
                self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    pub(crate) fn num_searching(&self) -> usize {
        self.num_searching.load(Ordering::Relaxed)
    }

    pub(crate) fn num_sleeping(&self) -> usize {
        self.num_sleeping.load(Ordering::Relaxed)
    }
}
