//! Waiter lists: the FIFO queue of parked futures behind every primitive of this crate.
//!
//! # Protocol
//!
//! A primitive keeps one [`WaitList`] inside the same `crate::loom::Mutex` as the rest of its
//! state (permits, flags), so a waiter's whole life is decided under one lock:
//!
//! - **Handles.** A waiting future holds the `usize` key that [`WaitList::push_back`] returned.
//!   The key stays valid from `push_back` until the future itself calls [`WaitList::remove`]
//!   (on completion or in its `Drop`); nobody else removes the entry, so a key never dangles
//!   and is never reused under a live future.
//! - **States.** An entry is *queued* (linked into the FIFO order, waiting) or *notified*
//!   (unlinked by [`WaitList::notify`] / [`WaitList::notify_front`] / [`WaitList::notify_all`],
//!   its waker moved into a [`WakeList`]). The payload `T` says what the notifier handed over
//!   (permits, a kind of notification, an error); the notifier writes it under the lock
//!   before unlinking.
//! - **Who touches what.** Everything is touched only under the primitive's lock. The waiting
//!   future updates its waker ([`WaitList::set_waker`]) and reads its state; notifiers
//!   unlink and fill payloads; only the owner of a key removes it.
//! - **Wake-ups after unlock.** Notifiers push wakers into an on-stack [`WakeList`] and call
//!   [`WakeList::wake_all`] after dropping the lock guard, so a woken task never contends on
//!   the lock its waker was taken under.
//! - **Cancellation.** A future dropped while holding a key calls [`WaitList::remove`]; the
//!   returned [`Removed`] says whether it had already been notified, so the primitive can
//!   pass on what it was handed (a permit, a lock, a `notify_one`).
//!
//! # Cost
//!
//! Entries live in a [`slab::Slab`] linked into a doubly linked list by key: push, notify and
//! remove are O(1), and a slot freed by one waiter is reused by the next, so waiting allocates
//! only when the number of simultaneous waiters reaches a new high. A [`WakeList`] holds 32
//! wakers inline and spills to a `Vec` past that (only `notify_all` on a crowd gets there).

use std::mem::MaybeUninit;
use std::task::Waker;

use slab::Slab;

use crate::loom::{lock, AtomicU64, Mutex, Ordering};

/// One waiter's slot.
#[derive(Debug)]
struct Entry<T> {
    /// `None` while the waiter registered without a waker (`Notified::enable`) or after a
    /// notifier took it.
    waker: Option<Waker>,
    /// Queued (true) or notified (false).
    linked: bool,
    prev: Option<usize>,
    next: Option<usize>,
    data: T,
}

/// A FIFO list of waiters with payload `T`. See the module docs for the protocol.
#[derive(Debug)]
pub(crate) struct WaitList<T> {
    entries: Slab<Entry<T>>,
    head: Option<usize>,
    tail: Option<usize>,
    queued: usize,
}

/// What [`WaitList::remove`] gives back to the owner of a key.
#[derive(Debug)]
pub(crate) struct Removed<T> {
    /// The payload, as the last notifier (or nobody) left it.
    pub(crate) data: T,
    /// `true`: the waiter was still queued (never notified).
    pub(crate) was_queued: bool,
}

impl<T> WaitList<T> {
    /// An empty list; allocates nothing.
    pub(crate) const fn new() -> Self {
        WaitList {
            entries: Slab::new(),
            head: None,
            tail: None,
            queued: 0,
        }
    }

    /// Whether no waiter is queued (notified-but-unremoved entries do not count).
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Number of queued waiters.
    pub(crate) fn len(&self) -> usize {
        self.queued
    }

    /// Queues a waiter at the back; returns its key.
    pub(crate) fn push_back(&mut self, data: T, waker: Option<Waker>) -> usize {
        let key = self.entries.insert(Entry {
            waker,
            linked: true,
            prev: self.tail,
            next: None,
            data,
        });
        match self.tail {
            Some(t) => self.entries[t].next = Some(key),
            None => self.head = Some(key),
        }
        self.tail = Some(key);
        self.queued += 1;
        key
    }

    /// Whether `key` is still queued (not yet notified).
    pub(crate) fn is_queued(&self, key: usize) -> bool {
        self.entries.get(key).is_some_and(|e| e.linked)
    }

    /// The payload of `key`.
    #[allow(dead_code)] // API for the channel modules
    pub(crate) fn data(&self, key: usize) -> &T {
        &self.entries[key].data
    }

    /// The payload of `key`, mutably.
    pub(crate) fn data_mut(&mut self, key: usize) -> &mut T {
        &mut self.entries[key].data
    }

    /// The key of the first queued waiter.
    pub(crate) fn front(&self) -> Option<usize> {
        self.head
    }

    /// Stores `waker` for `key` unless the stored one would wake the same task.
    pub(crate) fn set_waker(&mut self, key: usize, waker: &Waker) {
        let e = &mut self.entries[key];
        match &mut e.waker {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = {
            let e = &mut self.entries[key];
            debug_assert!(e.linked, "unlink of an entry that is not queued");
            e.linked = false;
            (e.prev.take(), e.next.take())
        };
        match prev {
            Some(p) => self.entries[p].next = next,
            None => self.head = next,
        }
        match next {
            Some(n) => self.entries[n].prev = prev,
            None => self.tail = prev,
        }
        self.queued -= 1;
    }

    /// Unlinks queued waiter `key` and moves its waker into `wakes`. No-op if it is not queued.
    pub(crate) fn notify(&mut self, key: usize, wakes: &mut WakeList) {
        if !self.is_queued(key) {
            return;
        }
        self.unlink(key);
        if let Some(w) = self.entries[key].waker.take() {
            wakes.push(w);
        }
    }

    /// Notifies the first queued waiter, after letting `f` fill its payload; returns its key.
    pub(crate) fn notify_front(
        &mut self,
        wakes: &mut WakeList,
        f: impl FnOnce(&mut T),
    ) -> Option<usize> {
        let key = self.head?;
        f(&mut self.entries[key].data);
        self.notify(key, wakes);
        Some(key)
    }

    /// Notifies every queued waiter in FIFO order, letting `f` fill each payload first.
    pub(crate) fn notify_all(&mut self, wakes: &mut WakeList, mut f: impl FnMut(&mut T)) {
        while self.notify_front(wakes, |d| f(d)).is_some() {}
    }

    /// Removes `key` for good (its owner completed or was dropped).
    pub(crate) fn remove(&mut self, key: usize) -> Removed<T> {
        let was_queued = self.entries[key].linked;
        if was_queued {
            self.unlink(key);
        }
        let e = self.entries.remove(key);
        Removed {
            data: e.data,
            was_queued,
        }
    }
}

impl<T> Default for WaitList<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Wakers collected under a lock, to be woken after it is released.
///
/// Holds [`WakeList::INLINE`] wakers on the stack and spills the rest into a `Vec`. Anything
/// still held when it is dropped is woken then, so an early return loses no wake-up; declare
/// it *before* the lock guard so the guard drops first.
pub(crate) struct WakeList {
    /// `inline[..len]` are initialised; the rest is not. Uninitialised rather than
    /// `[Option<Waker>; 32]`, so that making an empty list writes nothing and dropping one
    /// reads nothing past `len`: a notify that wakes one task pays for one slot, not 32.
    inline: [MaybeUninit<Waker>; WakeList::INLINE],
    len: usize,
    spill: Vec<Waker>,
}

impl WakeList {
    /// Wakers kept inline (tokio's `WakeList` uses the same number).
    pub(crate) const INLINE: usize = 32;

    /// An empty list; allocates nothing.
    #[inline]
    pub(crate) fn new() -> Self {
        WakeList {
            inline: [const { MaybeUninit::uninit() }; WakeList::INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Makes room for `n` more wakers in one allocation (none if they fit inline).
    pub(crate) fn reserve(&mut self, n: usize) {
        // `len` counts the inline wakers only; `reserve` counts from the spill's length.
        self.spill
            .reserve((self.len + n).saturating_sub(Self::INLINE));
    }

    /// Adds a waker.
    #[inline]
    pub(crate) fn push(&mut self, waker: Waker) {
        if self.len < Self::INLINE {
            self.inline[self.len].write(waker);
            self.len += 1;
        } else {
            self.spill.push(waker);
        }
    }

    /// Wakes everything collected (call after releasing the lock).
    #[inline]
    pub(crate) fn wake_all(&mut self) {
        let n = std::mem::replace(&mut self.len, 0);
        for slot in &self.inline[..n] {
            // SAFETY: slots below the old `len` were written by `push` and not read since;
            // `len` is already 0, so none is read twice (a panicking wake leaks the rest).
            let waker = unsafe { slot.assume_init_read() };
            waker.wake();
        }
        for w in self.spill.drain(..) {
            w.wake();
        }
    }
}

impl Drop for WakeList {
    fn drop(&mut self) {
        self.wake_all();
    }
}

impl std::fmt::Debug for WakeList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeList")
            .field("len", &(self.len + self.spill.len()))
            .finish()
    }
}

/// Waiters that are only ever woken all together: watch receivers, broadcast receivers.
///
/// Unlike [`WaitList`], a notifier *drains* the list and bumps `epoch`, so a woken
/// waiter learns it was notified from one atomic load and has no entry left to free: the
/// common wait (register, woken, proceed) takes the lock once. A waiter dropped before
/// being notified removes its own entry, checking under the lock that the epoch it
/// registered in is still current (after a drain its key may belong to someone else).
///
/// Aligned to its own cache lines (128 bytes covers adjacent-line prefetch): registering
/// writes its lock, which must not evict the state word the waiters poll.
#[repr(align(128))]
pub(crate) struct FanOut {
    /// Bumped (under `wakers`' lock) by every `notify_all` that drained something.
    epoch: AtomicU64,
    wakers: Mutex<Slab<Waker>>,
}

/// A registration in a [`FanOut`].
#[derive(Debug)]
pub(crate) struct FanOutKey {
    key: usize,
    epoch: u64,
}

impl FanOut {
    pub(crate) fn new() -> FanOut {
        FanOut {
            epoch: AtomicU64::new(0),
            wakers: Mutex::new(Slab::new()),
        }
    }

    /// Registers `waker`. The caller rechecks its condition afterwards: a notifier that
    /// changed it before taking this lock is then visible.
    pub(crate) fn register(&self, waker: &Waker) -> FanOutKey {
        let mut w = lock(&self.wakers);
        let epoch = self.epoch.load(Ordering::Relaxed);
        FanOutKey {
            key: w.insert(waker.clone()),
            epoch,
        }
    }

    /// Whether a `notify_all` drained this registration (the key is then spent).
    pub(crate) fn is_notified(&self, k: &FanOutKey) -> bool {
        self.epoch.load(Ordering::Acquire) != k.epoch
    }

    /// Replaces the waker of a live registration; `false` if it was notified meanwhile.
    pub(crate) fn update(&self, k: &FanOutKey, waker: &Waker) -> bool {
        let mut w = lock(&self.wakers);
        if self.epoch.load(Ordering::Relaxed) != k.epoch {
            return false;
        }
        if let Some(slot) = w.get_mut(k.key) {
            if !slot.will_wake(waker) {
                *slot = waker.clone();
            }
        }
        true
    }

    /// Withdraws a registration that may not have been notified.
    pub(crate) fn cancel(&self, k: FanOutKey) {
        if self.is_notified(&k) {
            return;
        }
        let mut w = lock(&self.wakers);
        if self.epoch.load(Ordering::Relaxed) == k.epoch {
            w.try_remove(k.key);
        }
    }

    /// Wakes every registered waiter (after releasing the lock).
    pub(crate) fn notify_all(&self) {
        let mut wakes = WakeList::new();
        let mut w = lock(&self.wakers);
        if w.is_empty() {
            return;
        }
        self.epoch.fetch_add(1, Ordering::Release);
        // A crowd spills past the inline wakers: one allocation, not one per doubling.
        wakes.reserve(w.len());
        for waker in w.drain() {
            wakes.push(waker);
        }
        drop(w);
        wakes.wake_all();
    }
}

/// Runs `fut` to completion on the calling thread, parking it between polls (for the
/// `blocking_*` methods), with the coop budget lifted.
#[cfg(not(ringleader_loom))]
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    ringleader_coop::block_on_parked(fut)
}

/// Under loom, loom's executor, so the model sees the parking.
#[cfg(ringleader_loom)]
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    loom::future::block_on(fut)
}

#[cfg(all(test, not(ringleader_loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_remove_from_middle() {
        let mut wl = WaitList::new();
        let a = wl.push_back('a', None);
        let b = wl.push_back('b', None);
        let c = wl.push_back('c', None);
        assert_eq!(wl.len(), 3);
        let r = wl.remove(b);
        assert!(r.was_queued);
        assert_eq!(r.data, 'b');
        let mut wakes = WakeList::new();
        assert_eq!(wl.notify_front(&mut wakes, |_| {}), Some(a));
        assert!(!wl.is_queued(a));
        assert_eq!(wl.front(), Some(c));
        assert!(!wl.remove(a).was_queued);
        wl.notify_all(&mut wakes, |d| *d = 'z');
        assert!(wl.is_empty());
        assert_eq!(*wl.data(c), 'z');
        wl.remove(c);
        // Slots are reused: no growth past the high-water mark.
        let cap = wl.entries.capacity();
        for _ in 0..100 {
            let k = wl.push_back('x', None);
            wl.remove(k);
        }
        assert_eq!(wl.entries.capacity(), cap);
    }

    #[test]
    fn wake_list_spills() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let mut wakes = WakeList::new();
        wakes.reserve(40);
        let cap = wakes.spill.capacity();
        assert!(cap >= 8, "reserved {cap}");
        for _ in 0..40 {
            wakes.push(Waker::from(count.clone()));
        }
        assert_eq!(wakes.spill.capacity(), cap, "grew after reserving");
        wakes.wake_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 40);
        wakes.push(Waker::from(count.clone()));
        drop(wakes);
        assert_eq!(count.0.load(Ordering::SeqCst), 41);
    }
}
