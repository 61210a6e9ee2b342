//! `Condition`: asyncio's `Condition`, a condition variable over this crate's [`Mutex`].
//!
//! # Protocol
//!
//! One `crate::loom::Mutex<WaitList<()>>` of waiters. [`Condition::wait`] queues its waiter
//! *while it still holds the mutex guard*, then unlocks, so a `notify` issued by anyone who
//! locks the mutex after that point finds it queued: no lost wake-up. `notify(n)` unlinks the
//! first `n` queued waiters; each then re-locks the mutex (FIFO behind other lockers) before
//! `wait` returns.
//!
//! Cancellation follows asyncio 3.13 (gh-112202): a `wait` dropped after a `notify` chose it,
//! before it got the lock back, passes one notification on to the next waiter, so a `notify`
//! is never swallowed by a cancelled task. (As in asyncio this can make a spurious wake-up,
//! which condition-variable code must tolerate anyway: wait in a loop, or use
//! [`Condition::wait_for`].)

use std::fmt;
use std::task::{Context, Poll};

use crate::loom::{lock, Mutex as StdMutex};
use crate::mutex::{MutexGuard, OwnedMutexGuard};
use crate::waitlist::{WaitList, WakeList};

/// A condition variable for tasks (asyncio's `Condition`), used with a
/// [`Mutex`](crate::Mutex): wait for a change of the protected data; notify after changing it.
///
/// As in asyncio, call [`notify`](Condition::notify) while holding the mutex whose data
/// changed (or right after changing it under the lock): a waiter that checked the data under
/// that lock is queued by then.
///
/// Unlike asyncio's, a `Condition` is not tied to one lock (each `wait` is given the guard
/// of the mutex it uses), so it cannot check that the notifier holds that lock:
/// [`notify`](Condition::notify) and [`notify_all`](Condition::notify_all) never fail, where
/// asyncio raises `RuntimeError` if the lock is not held. Notifying without the lock is
/// safe (no waiter is corrupted, and a waiter queued before the call is woken), but a
/// waiter that checked the data and has not queued yet can miss it: hold the lock.
///
/// ```
/// use std::sync::Arc;
/// use ringleader_sync::{Condition, Mutex};
///
/// let state = Arc::new((Mutex::new(false), Condition::new()));
/// futures::executor::block_on(async {
///     let s = state.clone();
///     let waiter = async move {
///         let (m, c) = &*s;
///         let guard = c.wait_for(m.lock().await, |ready| *ready).await;
///         assert!(*guard);
///     };
///     let notifier = async {
///         let (m, c) = &*state;
///         *m.lock().await = true;
///         c.notify_all();
///     };
///     futures::join!(waiter, notifier);
/// });
/// ```
pub struct Condition {
    waiters: StdMutex<WaitList<()>>,
}

impl Condition {
    /// A condition with no waiters.
    pub fn new() -> Condition {
        Condition {
            waiters: StdMutex::new(WaitList::new()),
        }
    }

    /// Wakes up to `n` waiting tasks, longest-waiting first; returns how many. Does nothing
    /// (stores nothing) if nobody waits.
    pub fn notify(&self, n: usize) -> usize {
        let mut wakes = WakeList::new();
        let mut wl = lock(&self.waiters);
        let mut woken = 0;
        while woken < n && wl.notify_front(&mut wakes, |_| {}).is_some() {
            woken += 1;
        }
        drop(wl);
        wakes.wake_all();
        woken
    }

    /// Wakes every waiting task; returns how many.
    pub fn notify_all(&self) -> usize {
        self.notify(usize::MAX)
    }

    /// Unlocks `guard`'s mutex, waits for a notification, locks the mutex again and returns
    /// the new guard. As with any condition variable, re-check the data: another task may
    /// have changed it first ([`wait_for`](Condition::wait_for) does the loop).
    ///
    /// # Cancel safety
    /// Dropping the future drops the guard (the mutex stays unlocked) and leaves the queue;
    /// if a `notify` had already chosen it, that notification goes to the next waiter.
    pub async fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let mutex = MutexGuard::mutex(&guard);
        let mut waiter = self.enqueue();
        drop(guard);
        std::future::poll_fn(|cx| waiter.poll_notified(cx)).await;
        let guard = mutex.lock().await;
        waiter.notified = false; // consumed: nothing to pass on from here
        guard
    }

    /// Queues a waiter, before the guard is released, so a `notify` that follows the
    /// release reaches it.
    fn enqueue(&self) -> CondWaiter<'_> {
        CondWaiter {
            cond: self,
            key: Some(lock(&self.waiters).push_back((), None)),
            notified: false,
        }
    }

    /// [`wait`](Condition::wait) with an [`OwnedMutexGuard`] (for `'static` tasks).
    ///
    /// # Cancel safety
    /// As [`wait`](Condition::wait).
    pub async fn wait_owned<T>(&self, guard: OwnedMutexGuard<T>) -> OwnedMutexGuard<T> {
        let mutex = OwnedMutexGuard::mutex(&guard).clone();
        let mut waiter = self.enqueue();
        drop(guard);
        std::future::poll_fn(|cx| waiter.poll_notified(cx)).await;
        let guard = mutex.lock_owned().await;
        waiter.notified = false; // consumed: nothing to pass on from here
        guard
    }

    /// Waits until `predicate` holds for the protected data, as asyncio's `wait_for`:
    /// checks first (without waiting if it already holds), then [`wait`](Condition::wait)s
    /// and re-checks after each notification. Returns the guard under which it held.
    ///
    /// asyncio's `wait_for` returns the predicate's last (truthy) value; here the predicate
    /// is a `bool`, so that value is always `true`, and the guard is returned instead: read
    /// whatever made the predicate true through it, still under the lock.
    ///
    /// # Cancel safety
    /// As [`wait`](Condition::wait).
    pub async fn wait_for<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut predicate: F,
    ) -> MutexGuard<'a, T>
    where
        F: FnMut(&mut T) -> bool,
    {
        while !predicate(&mut guard) {
            guard = self.wait(guard).await;
        }
        guard
    }

    /// Number of tasks waiting for a notification.
    pub fn waiters(&self) -> usize {
        lock(&self.waiters).len()
    }
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("waiters", &self.waiters())
            .finish()
    }
}

/// One `wait`'s queue entry; awaiting it waits for the notification.
struct CondWaiter<'a> {
    cond: &'a Condition,
    /// `Some` until the notification is observed (or the waiter is dropped).
    key: Option<usize>,
    /// Notified, and the notification not yet consumed by re-locking: pass it on if dropped.
    notified: bool,
}

impl CondWaiter<'_> {
    fn poll_notified(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(key) = self.key else {
            return Poll::Ready(());
        };
        let progress = std::task::ready!(ringleader_coop::poll_proceed(cx));
        let mut wl = lock(&self.cond.waiters);
        if wl.is_queued(key) {
            wl.set_waker(key, cx.waker());
            return Poll::Pending;
        }
        wl.remove(key);
        self.key = None;
        self.notified = true;
        progress.made_progress();
        Poll::Ready(())
    }
}

impl Drop for CondWaiter<'_> {
    fn drop(&mut self) {
        let mut forward = self.notified;
        if let Some(key) = self.key.take() {
            let removed = lock(&self.cond.waiters).remove(key);
            forward |= !removed.was_queued;
        }
        if forward {
            self.cond.notify(1);
        }
    }
}
