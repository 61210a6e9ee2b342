//! A multi-producer, multi-consumer channel where every receiver sees every message.
//!
//! [`channel`] makes a [`Sender`] and a first [`Receiver`]; [`Sender::subscribe`] makes more
//! (each sees the messages sent after it subscribed). The channel keeps the last `cap`
//! messages; a receiver that falls further behind gets [`RecvError::Lagged`] with the
//! number of messages it missed, then continues from the oldest message still kept.
//! A receiver is also a [`Stream`](futures_core::Stream) of `Result<T, Lagged>`.
//!
//! ```
//! use ringleader_sync::broadcast::{self, error::RecvError};
//! # futures::executor::block_on(async {
//! let (tx, mut rx) = broadcast::channel(2);
//! for i in 0..3 {
//!     tx.send(i).unwrap();
//! }
//! assert_eq!(rx.recv().await, Err(RecvError::Lagged(1)));
//! assert_eq!(rx.recv().await, Ok(1));
//! assert_eq!(rx.recv().await, Ok(2));
//! drop(tx);
//! assert_eq!(rx.recv().await, Err(RecvError::Closed));
//! # });
//! ```
//!
//! # Design
//!
//! One mutex (`shared`) guards the position of the next message (`tail`) and the sender and
//! receiver counts. Message `pos` lives in slot `pos % cap` (each slot behind its own
//! reader-writer lock, written only by a sender holding `shared`) until message `pos + cap`
//! overwrites it. Each receiver holds the position it reads next: if its slot holds that
//! position it clones the message under the slot's read lock without touching `shared`;
//! if the slot holds an older message, nothing new has come, and it waits (a `tail_hint`
//! atomic, published after the slot is written, usually says "nothing new" before the
//! slot's lock is touched); only when the
//! slot holds a *newer* message (lagging) or every sender is gone does it take `shared` to
//! learn by how much it lagged or whether anything is left. Messages are `Clone`; keep them
//! cheap to clone (e.g. an `Arc`); `clone` runs under the slot's read lock, so it must not
//! send on this channel. Waiting receivers register in a fan-out list
//! (`waitlist::FanOut`) and look at their slot once more; a send writes the slot, then wakes
//! them all.
//!
//! A message is dropped when overwritten or when the channel goes away, not when the last
//! receiver has read it.

use std::fmt;
use std::task::{Context, Poll};

use crate::loom::{lock, Arc, AtomicBool, AtomicU64, Mutex, Ordering};
use crate::loom::{read, write, RwLock};
use crate::waitlist::{FanOut, FanOutKey};

/// The error types of the broadcast channel.
pub mod error {
    use std::fmt;

    send_error!(
        /// No receiver exists; holds the message back.
        "message",
        "no broadcast receivers"
    );

    /// Why [`Receiver::recv`](super::Receiver::recv) returned no message.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub enum RecvError {
        /// Every sender is gone and every kept message was received.
        Closed,
        /// The receiver fell behind and missed this many messages; the next receive returns
        /// the oldest message still kept.
        Lagged(u64),
    }

    impl fmt::Display for RecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                RecvError::Closed => f.write_str("broadcast channel closed"),
                RecvError::Lagged(n) => write!(f, "broadcast receiver lagged by {n}"),
            }
        }
    }

    impl std::error::Error for RecvError {}

    /// Why [`Receiver::try_recv`](super::Receiver::try_recv) returned no message.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub enum TryRecvError {
        /// No new message now.
        Empty,
        /// Every sender is gone and every kept message was received.
        Closed,
        /// The receiver missed this many messages; see [`RecvError::Lagged`].
        Lagged(u64),
    }

    impl fmt::Display for TryRecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                TryRecvError::Empty => f.write_str("broadcast channel empty"),
                TryRecvError::Closed => f.write_str("broadcast channel closed"),
                TryRecvError::Lagged(n) => write!(f, "broadcast receiver lagged by {n}"),
            }
        }
    }

    impl std::error::Error for TryRecvError {}

    /// The item error of a receiver read as a [`Stream`](futures_core::Stream): it fell
    /// behind and missed this many messages; the next item is the oldest message still kept.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub struct Lagged(pub u64);

    impl fmt::Display for Lagged {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "broadcast receiver lagged by {}", self.0)
        }
    }

    impl std::error::Error for Lagged {}
}

pub use error::{Lagged, RecvError, SendError, TryRecvError};

/// The tail: guarded by `Chan::shared`.
struct Shared {
    /// Position of the next message to send (messages sent so far).
    tail: u64,
    tx_count: usize,
    rx_count: usize,
}

/// One message of the ring.
struct Slot<T> {
    /// The position of the message held (`u64::MAX`: none yet).
    pos: u64,
    val: Option<T>,
}

struct Chan<T> {
    shared: Mutex<Shared>,
    /// `slots[pos % cap]` holds message `pos` for `tail - cap <= pos < tail`. Written (under
    /// the slot's write lock) only while `shared` is held; read under the slot's read lock,
    /// with or without `shared`.
    slots: Box<[RwLock<Slot<T>>]>,
    /// Every sender is gone (set under `shared` with `tx_count` reaching 0, before the
    /// final notify), readable without the lock.
    closed: AtomicBool,
    /// Mirror of `Shared::tail`, stored (Release) by a send after it wrote the slot and
    /// before it notifies. A receiver whose `next` is not below it has nothing new and
    /// says so from this one load, without the slot's read lock (a read-modify-write on a
    /// line every receiver and the sender share). Only ever behind the real tail.
    tail_hint: AtomicU64,
    /// Receivers waiting for a message. A receiver registers, then looks at its slot
    /// again; a send writes the slot, then notifies. So no wake-up is missed.
    waiters: FanOut,
}

/// Creates a broadcast channel keeping the last `cap` messages (a `cap` of 0 is taken as 1).
pub fn channel<T: Clone>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let cap = cap.max(1);
    let chan = Arc::new(Chan {
        shared: Mutex::new(Shared {
            tail: 0,
            tx_count: 1,
            rx_count: 1,
        }),
        slots: (0..cap)
            .map(|_| {
                RwLock::new(Slot {
                    pos: u64::MAX,
                    val: None,
                })
            })
            .collect(),
        closed: AtomicBool::new(false),
        tail_hint: AtomicU64::new(0),
        waiters: FanOut::new(),
    });
    (
        Sender { chan: chan.clone() },
        Receiver {
            chan,
            next: 0,
            key: None,
        },
    )
}

/// The sending half; clone it for more senders.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// A receiving half; each receiver sees every message sent after it subscribed.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    /// Position of the next message to read.
    next: u64,
    /// This receiver's registration in `waiters` while a `recv` waits.
    key: Option<FanOutKey>,
}

impl<T> Sender<T> {
    /// Sends `value` to every current receiver; returns how many there are.
    ///
    /// # Errors
    /// [`SendError`] with the value if there is no receiver.
    pub fn send(&self, value: T) -> Result<usize, SendError<T>> {
        let mut s = lock(&self.chan.shared);
        if s.rx_count == 0 {
            return Err(SendError(value));
        }
        let cap = self.chan.slots.len() as u64;
        let pos = s.tail;
        let old = {
            let mut slot = write(&self.chan.slots[(pos % cap) as usize]);
            slot.pos = pos;
            slot.val.replace(value)
        };
        s.tail += 1;
        self.chan.tail_hint.store(s.tail, Ordering::Release);
        let n = s.rx_count;
        drop(s);
        self.chan.waiters.notify_all();
        // Drop the overwritten message outside the lock.
        drop(old);
        Ok(n)
    }

    /// A new receiver that sees the messages sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        let mut s = lock(&self.chan.shared);
        s.rx_count += 1;
        Receiver {
            chan: self.chan.clone(),
            next: s.tail,
            key: None,
        }
    }

    /// How many receivers exist.
    pub fn receiver_count(&self) -> usize {
        lock(&self.chan.shared).rx_count
    }

    /// How many messages the channel keeps now (at most its capacity). Whether receivers
    /// have read them is not tracked.
    pub fn len(&self) -> usize {
        let s = lock(&self.chan.shared);
        s.tail.min(self.chan.slots.len() as u64) as usize
    }

    /// Whether nothing was sent yet.
    pub fn is_empty(&self) -> bool {
        lock(&self.chan.shared).tail == 0
    }

    /// Whether both senders feed the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        lock(&self.chan.shared).tx_count += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut s = lock(&self.chan.shared);
        s.tx_count -= 1;
        let last = s.tx_count == 0;
        if last {
            self.chan.closed.store(true, Ordering::Release);
        }
        drop(s);
        if last {
            self.chan.waiters.notify_all();
        }
    }
}

/// What a lock-free look at a receiver's next slot found.
enum Fast<T> {
    /// The message (the position advanced).
    Got(T),
    /// The slot still holds an older message (or none): nothing new yet.
    NotYet,
    /// The slot holds a newer message: the receiver lagged (the tail lock tells how far).
    Overwritten,
}

/// Reads message `*next` without the tail lock, if it is in its slot.
fn read_fast<T: Clone>(next: &mut u64, chan: &Chan<T>) -> Fast<T> {
    if chan.tail_hint.load(Ordering::Acquire) <= *next {
        return Fast::NotYet; // not sent yet (or sent and not yet published: as if not sent)
    }
    let cap = chan.slots.len() as u64;
    let slot = read(&chan.slots[(*next % cap) as usize]);
    if slot.pos == u64::MAX || slot.pos < *next {
        return Fast::NotYet;
    }
    if slot.pos > *next {
        return Fast::Overwritten;
    }
    match slot.val.clone() {
        Some(v) => {
            *next += 1;
            Fast::Got(v)
        }
        None => Fast::NotYet,
    }
}

/// Reads message `*next` with the tail lock held (`s`); `Err(Empty)` when there is none yet.
fn read_locked<T: Clone>(next: &mut u64, s: &Shared, chan: &Chan<T>) -> Result<T, TryRecvError> {
    let cap = chan.slots.len() as u64;
    let oldest = s.tail.saturating_sub(cap);
    if *next < oldest {
        let missed = oldest - *next;
        *next = oldest;
        return Err(TryRecvError::Lagged(missed));
    }
    if *next == s.tail {
        return Err(if s.tx_count == 0 {
            TryRecvError::Closed
        } else {
            TryRecvError::Empty
        });
    }
    match read_fast(next, chan) {
        Fast::Got(v) => Ok(v),
        // Unreachable with the lock held (`oldest <= next < tail`); treated as empty.
        Fast::NotYet | Fast::Overwritten => Err(TryRecvError::Empty),
    }
}

impl<T: Clone> Receiver<T> {
    /// Receives the next message without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when no new message is there; `Lagged(n)` when `n` messages
    /// were missed (the next call returns the oldest kept); `Closed` when every sender is
    /// gone and everything was read.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Fast::Got(v) = read_fast(&mut self.next, &self.chan) {
            return Ok(v);
        }
        let s = lock(&self.chan.shared);
        read_locked(&mut self.next, &s, &self.chan)
    }

    /// Receives the next message, waiting for one.
    ///
    /// # Errors
    /// [`RecvError::Lagged`] when messages were missed (the next call returns the oldest
    /// kept); [`RecvError::Closed`] when every sender is gone and everything was read.
    ///
    /// # Cancel safety
    /// Cancel safe: the read position advances only when the future completes.
    pub async fn recv(&mut self) -> Result<T, RecvError> {
        struct Guard<'a, T>(&'a mut Receiver<T>);
        impl<T> Drop for Guard<'_, T> {
            fn drop(&mut self) {
                if let Some(k) = self.0.key.take() {
                    self.0.chan.waiters.cancel(k);
                }
            }
        }
        let g = Guard(self);
        std::future::poll_fn(|cx| g.0.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        let coop = std::task::ready!(ringleader_coop::poll_proceed(cx));
        // Borrow rather than clone the `Arc` (its counts are shared by every receiver).
        let Receiver { chan, next, key } = self;
        let chan: &Chan<T> = chan;
        // Lock-free path: the message is in its slot, or it is not there yet and the
        // channel is open, in which case we register and look once more. A send writes the
        // slot before notifying, so either our registration is seen by its notify or its
        // write is seen by our second look.
        let mut registered = false;
        loop {
            match read_fast(next, chan) {
                Fast::Got(v) => {
                    if let Some(k) = key.take() {
                        chan.waiters.cancel(k);
                    }
                    coop.made_progress();
                    return Poll::Ready(Ok(v));
                }
                Fast::Overwritten => break,
                Fast::NotYet if chan.closed.load(Ordering::Acquire) => break,
                Fast::NotYet if registered => return Poll::Pending,
                Fast::NotYet => {
                    match key {
                        Some(k)
                            if !chan.waiters.is_notified(k)
                                && chan.waiters.update(k, cx.waker()) => {}
                        _ => *key = Some(chan.waiters.register(cx.waker())),
                    }
                    registered = true;
                }
            }
        }
        // Lagged or closed: the tail tells which.
        let s = lock(&chan.shared);
        let r = match read_locked(next, &s, chan) {
            Ok(v) => Ok(v),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Empty) => {
                // Closed flag seen but a message is still due (cannot happen: the flag is
                // set after the last send); wait like an empty channel.
                drop(s);
                if key.is_none() {
                    *key = Some(chan.waiters.register(cx.waker()));
                }
                return Poll::Pending;
            }
        };
        drop(s);
        if let Some(k) = key.take() {
            chan.waiters.cancel(k);
        }
        coop.made_progress();
        Poll::Ready(r)
    }

    /// Receives from synchronous code, blocking the thread.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn blocking_recv(&mut self) -> Result<T, RecvError> {
        crate::waitlist::block_on(self.recv())
    }
}

impl<T> Receiver<T> {
    /// A new receiver at the same channel, seeing messages sent from now on.
    pub fn resubscribe(&self) -> Receiver<T> {
        let mut s = lock(&self.chan.shared);
        s.rx_count += 1;
        Receiver {
            chan: self.chan.clone(),
            next: s.tail,
            key: None,
        }
    }

    /// Messages sent that this receiver has not read yet (lagged ones included).
    pub fn len(&self) -> usize {
        let s = lock(&self.chan.shared);
        (s.tail - self.next.min(s.tail)) as usize
    }

    /// Whether this receiver has read everything sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every sender is gone.
    pub fn is_closed(&self) -> bool {
        lock(&self.chan.shared).tx_count == 0
    }

    /// Whether both receivers read the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

/// The messages as a stream: `Ok` for each message, `Err(Lagged(n))` where `n` were
/// missed, ending when [`recv`](Receiver::recv) would return [`RecvError::Closed`].
///
/// ```
/// use futures::StreamExt;
/// use ringleader_sync::broadcast::{self, Lagged};
/// # futures::executor::block_on(async {
/// let (tx, rx) = broadcast::channel(2);
/// for i in 0..3 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// let items: Vec<_> = rx.collect().await;
/// assert_eq!(items, [Err(Lagged(1)), Ok(1), Ok(2)]);
/// # });
/// ```
///
/// The wait registration made by a pending `poll_next` stays with the receiver until the
/// next poll or its drop; a message sent meanwhile wakes the task that polled last.
impl<T: Clone> futures_core::Stream for Receiver<T> {
    type Item = Result<T, Lagged>;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match std::task::ready!(self.get_mut().poll_recv(cx)) {
            Ok(v) => Poll::Ready(Some(Ok(v))),
            Err(RecvError::Lagged(n)) => Poll::Ready(Some(Err(Lagged(n)))),
            Err(RecvError::Closed) => Poll::Ready(None),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.chan.waiters.cancel(k);
        }
        lock(&self.chan.shared).rx_count -= 1;
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}
