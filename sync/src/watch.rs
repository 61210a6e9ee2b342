//! A single-value channel: receivers see the latest value and wait for changes.
//!
//! [`channel`] makes a [`Sender`] holding an initial value and a [`Receiver`]. Receivers
//! [`borrow`](Receiver::borrow) the current value and wait with
//! [`changed`](Receiver::changed) for the next one; intermediate values may be skipped.
//! [`WatchStream`] reads a receiver as a stream of values.
//!
//! ```
//! # futures::executor::block_on(async {
//! let (tx, mut rx) = ringleader_sync::watch::channel("hello");
//! assert_eq!(*rx.borrow(), "hello");
//! tx.send("world").unwrap();
//! rx.changed().await.unwrap();
//! assert_eq!(*rx.borrow_and_update(), "world");
//! drop(tx);
//! assert!(rx.changed().await.is_err());
//! # });
//! ```
//!
//! # Design
//!
//! The value sits behind a reader-writer lock. `state` packs `version << 1 | CLOSED`; the version is
//! bumped (by 2) under the value's lock, so a receiver that reads the value and the version
//! under that lock sees them agree. Each receiver remembers the version it last marked
//! seen. Waiting receivers register in `rx_waiters` (a `FanOut`: woken all at once, no
//! per-waiter clean-up); a sender bumps the version, then takes the waiters' lock and wakes
//! them all, and a receiver rechecks the version after registering, so no change is missed.
//! `CLOSED` is set when the last sender goes; `tx_waiters` holds senders waiting in
//! [`Sender::closed`] for the last receiver to go.

use std::fmt;
use std::ops::Deref;
use std::task::{Context, Poll};

use crate::loom::{read, write, Arc, AtomicU64, AtomicUsize, Ordering, RwLock, RwLockReadGuard};
use crate::waitlist::{FanOut, FanOutKey};

const CLOSED: u64 = 1;
const STEP: u64 = 2;

/// The error types of the watch channel.
pub mod error {
    use std::fmt;

    send_error!(
        /// No receiver exists; holds the value back.
        "value",
        "no watch receivers"
    );

    /// Every sender is gone (and, for `changed`, no unseen value remains).
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub struct RecvError(pub(crate) ());

    impl fmt::Display for RecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("watch sender dropped")
        }
    }

    impl std::error::Error for RecvError {}
}

pub use error::{RecvError, SendError};

struct Shared<T> {
    value: RwLock<T>,
    /// `version << 1 | CLOSED`; the version changes only under `value`'s write lock.
    state: AtomicU64,
    rx_count: AtomicUsize,
    tx_count: AtomicUsize,
    /// Receivers waiting in `changed`.
    rx_waiters: FanOut,
    /// Senders waiting in `closed`.
    tx_waiters: FanOut,
}

impl<T> Shared<T> {
    fn version(&self) -> u64 {
        self.state.load(Ordering::Acquire) & !CLOSED
    }

    fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    fn notify_rx(&self) {
        self.rx_waiters.notify_all();
    }

    fn notify_tx(&self) {
        self.tx_waiters.notify_all();
    }
}

/// Creates a watch channel holding `init`.
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: RwLock::new(init),
        state: AtomicU64::new(0),
        rx_count: AtomicUsize::new(1),
        tx_count: AtomicUsize::new(1),
        rx_waiters: FanOut::new(),
        tx_waiters: FanOut::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared, seen: 0 },
    )
}

/// The sending half; clone it for more senders.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// A receiving half; clone it for more receivers.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The version this receiver last marked seen.
    seen: u64,
}

/// A borrow of the current value; holds the channel's read lock, so keep it short and
/// never hold it across an `.await` (senders block until it is dropped).
#[must_use = "a Ref holds the channel's read lock until dropped"]
pub struct Ref<'a, T> {
    guard: RwLockReadGuard<'a, T>,
    has_changed: bool,
}

impl<T> Ref<'_, T> {
    /// Whether the value was unseen by the receiver when borrowed.
    pub fn has_changed(&self) -> bool {
        self.has_changed
    }
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T> Sender<T> {
    /// Replaces the value and notifies receivers.
    ///
    /// # Errors
    /// [`SendError`] with the value if there is no receiver (the value is not stored).
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.shared.rx_count.load(Ordering::Acquire) == 0 {
            return Err(SendError(value));
        }
        self.send_replace(value);
        Ok(())
    }

    /// Replaces the value whether or not receivers exist; returns the old one.
    pub fn send_replace(&self, value: T) -> T {
        let mut value = value;
        self.send_modify(|v| std::mem::swap(v, &mut value));
        value
    }

    /// Modifies the value in place and notifies receivers.
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        self.send_if_modified(|v| {
            modify(v);
            true
        });
    }

    /// Modifies the value in place; notifies receivers only if `modify` returns `true`.
    /// Returns what `modify` returned.
    ///
    /// `modify` runs under the channel's write lock: it must not use this channel (a
    /// `borrow` inside it would deadlock).
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        {
            let mut v = write(&self.shared.value);
            if !modify(&mut v) {
                return false;
            }
            self.shared.state.fetch_add(STEP, Ordering::AcqRel);
        }
        self.shared.notify_rx();
        true
    }

    /// Borrows the current value.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: read(&self.shared.value),
            has_changed: false,
        }
    }

    /// A new receiver that has seen the current value.
    pub fn subscribe(&self) -> Receiver<T> {
        self.shared.rx_count.fetch_add(1, Ordering::AcqRel);
        let seen = {
            let _v = read(&self.shared.value);
            self.shared.version()
        };
        Receiver {
            shared: self.shared.clone(),
            seen,
        }
    }

    /// How many receivers exist.
    pub fn receiver_count(&self) -> usize {
        self.shared.rx_count.load(Ordering::Acquire)
    }

    /// How many senders exist.
    pub fn sender_count(&self) -> usize {
        self.shared.tx_count.load(Ordering::Acquire)
    }

    /// Whether every receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.receiver_count() == 0
    }

    /// Waits until every receiver is gone.
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches.
    pub async fn closed(&self) {
        struct Guard<'a, T>(&'a Shared<T>, Option<FanOutKey>);
        impl<T> Drop for Guard<'_, T> {
            fn drop(&mut self) {
                if let Some(k) = self.1.take() {
                    self.0.tx_waiters.cancel(k);
                }
            }
        }
        let mut g = Guard(&self.shared, None);
        std::future::poll_fn(|cx| {
            let shared = g.0;
            if let Some(k) = &g.1 {
                if !shared.tx_waiters.is_notified(k)
                    && shared.rx_count.load(Ordering::Acquire) != 0
                    && shared.tx_waiters.update(k, cx.waker())
                {
                    return Poll::Pending;
                }
            }
            if let Some(k) = g.1.take() {
                shared.tx_waiters.cancel(k);
            }
            if shared.rx_count.load(Ordering::Acquire) == 0 {
                return Poll::Ready(());
            }
            let k = shared.tx_waiters.register(cx.waker());
            if shared.rx_count.load(Ordering::Acquire) == 0 {
                shared.tx_waiters.cancel(k);
                return Poll::Ready(());
            }
            g.1 = Some(k);
            Poll::Pending
        })
        .await
    }

    /// Whether both senders feed the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.tx_count.fetch_add(1, Ordering::AcqRel);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.tx_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.state.fetch_or(CLOSED, Ordering::AcqRel);
            self.shared.notify_rx();
        }
    }
}

impl<T> Receiver<T> {
    /// Borrows the current value without marking it seen.
    pub fn borrow(&self) -> Ref<'_, T> {
        let guard = read(&self.shared.value);
        let has_changed = self.shared.version() != self.seen;
        Ref { guard, has_changed }
    }

    /// Borrows the current value and marks it seen.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = read(&self.shared.value);
        let version = self.shared.version();
        let has_changed = version != self.seen;
        self.seen = version;
        Ref { guard, has_changed }
    }

    /// Whether a value unseen by this receiver is there.
    ///
    /// # Errors
    /// [`RecvError`] if every sender is gone.
    pub fn has_changed(&self) -> Result<bool, RecvError> {
        if self.shared.is_closed() {
            return Err(RecvError(()));
        }
        Ok(self.shared.version() != self.seen)
    }

    /// Marks the current value unseen, so the next `changed` returns at once.
    pub fn mark_changed(&mut self) {
        self.seen = self.shared.version().wrapping_sub(STEP);
    }

    /// Marks the current value seen.
    pub fn mark_unchanged(&mut self) {
        self.seen = self.shared.version();
    }

    /// Waits for a value unseen by this receiver, then marks it seen.
    ///
    /// Returns at once if the current value is unseen.
    ///
    /// # Errors
    /// [`RecvError`] if every sender is gone and no unseen value remains.
    ///
    /// # Cancel safety
    /// Cancel safe: the receiver's seen mark changes only when the future completes.
    pub async fn changed(&mut self) -> Result<(), RecvError> {
        /// Cancels the registration of a `changed` future dropped while it waits.
        struct Registration<'a, T> {
            shared: &'a Shared<T>,
            key: Option<FanOutKey>,
        }
        impl<T> Drop for Registration<'_, T> {
            fn drop(&mut self) {
                if let Some(k) = self.key.take() {
                    self.shared.rx_waiters.cancel(k);
                }
            }
        }
        // Borrow the shared state rather than clone the `Arc`: its counts share a cache
        // line with `state`, which every waiting receiver reads.
        let Receiver { shared, seen } = self;
        let mut reg = Registration {
            shared: &**shared,
            key: None,
        };
        std::future::poll_fn(|cx| poll_changed(reg.shared, seen, &mut reg.key, cx)).await
    }

    /// Waits until the value satisfies `f` (checking the current value first), marks it
    /// seen and borrows it.
    ///
    /// # Errors
    /// [`RecvError`] if every sender is gone before a value satisfies `f`.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`changed`](Self::changed).
    pub async fn wait_for(
        &mut self,
        mut f: impl FnMut(&T) -> bool,
    ) -> Result<Ref<'_, T>, RecvError> {
        loop {
            {
                let r = self.borrow_and_update();
                if f(&r) {
                    break;
                }
            }
            self.changed().await?;
        }
        Ok(self.borrow())
    }

    /// Whether both receivers watch the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// One poll of a wait for a version other than `*seen`: marks it seen and gives `Ok`, or
/// `Err` once every sender is gone with nothing unseen. `key` keeps the registration
/// between polls; its owner cancels it if it stops polling.
fn poll_changed<T>(
    shared: &Shared<T>,
    seen: &mut u64,
    key: &mut Option<FanOutKey>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), RecvError>> {
    let check = |seen: &mut u64| {
        let state = shared.state.load(Ordering::Acquire);
        if state & !CLOSED != *seen {
            *seen = state & !CLOSED;
            Some(Ok(()))
        } else if state & CLOSED != 0 {
            Some(Err(RecvError(())))
        } else {
            None
        }
    };
    let coop = std::task::ready!(ringleader_coop::poll_proceed(cx));
    if let Some(r) = check(seen) {
        if let Some(k) = key.take() {
            shared.rx_waiters.cancel(k);
        }
        coop.made_progress();
        return Poll::Ready(r);
    }
    if let Some(k) = &*key {
        if !shared.rx_waiters.is_notified(k) && shared.rx_waiters.update(k, cx.waker()) {
            return Poll::Pending;
        }
        // Notified (the key is spent) but nothing new: wait again.
        *key = None;
    }
    let k = shared.rx_waiters.register(cx.waker());
    // Recheck after registering: a send that missed the registration bumped the version
    // before taking the waiters' lock, so it is visible now.
    if let Some(r) = check(seen) {
        shared.rx_waiters.cancel(k);
        coop.made_progress();
        return Poll::Ready(r);
    }
    *key = Some(k);
    Poll::Pending
}

/// A watch receiver read as a [`Stream`](futures_core::Stream) of values: a clone of the
/// value each time it changes (values replaced before the stream is polled are skipped, as
/// with [`Receiver::changed`]), ending once every sender is gone and the last value was
/// yielded.
///
/// ```
/// use futures::StreamExt;
/// # futures::executor::block_on(async {
/// let (tx, rx) = ringleader_sync::watch::channel(0);
/// let mut values = ringleader_sync::watch::WatchStream::new(rx);
/// assert_eq!(values.next().await, Some(0)); // `new` yields the current value first
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// assert_eq!(values.next().await, Some(2)); // 1 was replaced before the poll
/// drop(tx);
/// assert_eq!(values.next().await, None);
/// # });
/// ```
pub struct WatchStream<T> {
    rx: Receiver<T>,
    key: Option<FanOutKey>,
}

impl<T> WatchStream<T> {
    /// A stream that yields the current value first, then each change.
    pub fn new(mut rx: Receiver<T>) -> WatchStream<T> {
        rx.mark_changed();
        WatchStream { rx, key: None }
    }

    /// A stream that yields only values the receiver has not seen: a change made before
    /// this call (and not marked seen) comes first; otherwise the next change.
    pub fn from_changes(rx: Receiver<T>) -> WatchStream<T> {
        WatchStream { rx, key: None }
    }
}

impl<T: Clone> futures_core::Stream for WatchStream<T> {
    type Item = T;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let Receiver { shared, seen } = &mut this.rx;
        match std::task::ready!(poll_changed(shared, seen, &mut this.key, cx)) {
            // Read the value and its version together: a value sent since the check is
            // yielded now and not again.
            Ok(()) => Poll::Ready(Some(this.rx.borrow_and_update().clone())),
            Err(RecvError(())) => Poll::Ready(None),
        }
    }
}

impl<T> Drop for WatchStream<T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.rx.shared.rx_waiters.cancel(k);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for WatchStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream")
            .field("rx", &self.rx)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.rx_count.fetch_add(1, Ordering::AcqRel);
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.shared.rx_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.notify_tx();
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T: fmt::Debug> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}
