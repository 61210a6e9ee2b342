//! Multi-producer, single-consumer channels: [`channel`] (bounded) and
//! [`unbounded_channel`].
//!
//! Messages from one sender arrive in the order it sent them. [`Receiver::recv`] returns
//! `None` once every sender is gone and the buffer is drained, or once the receiver was
//! [closed](Receiver::close) and drained. Both receivers are also
//! [`Stream`](futures_core::Stream)s of their messages, ending at that point.
//!
//! ```
//! # futures::executor::block_on(async {
//! let (tx, mut rx) = ringleader_sync::mpsc::channel(8);
//! let tx2 = tx.clone();
//! tx.send(1).await.unwrap();
//! tx2.try_send(2).unwrap();
//! drop((tx, tx2));
//! assert_eq!(rx.recv().await, Some(1));
//! assert_eq!(rx.recv().await, Some(2));
//! assert_eq!(rx.recv().await, None);
//! # });
//! ```
//!
//! # Design
//!
//! Senders push onto a `VecDeque` under a short mutex (`Shared`), taking the receiver's waker
//! out when it is parked and waking it after unlocking. The receiver does not lock per
//! message: when its private batch is empty it swaps the whole shared buffer for its (empty)
//! batch in one critical section, so under contention one lock acquisition moves many
//! messages, and the two buffers' capacities are reused without allocating.
//!
//! A bounded channel's capacity is a counting semaphore (`capacity.rs`) that a sender
//! acquires before pushing and the receiver releases as it takes each message, so at most
//! `cap` messages are buffered or reserved at once. Acquire and release are one
//! compare-exchange while no sender waits; blocked senders queue in a `crate::waitlist` and
//! are handed permits in FIFO order. (The crate's `Semaphore` takes its mutex on every
//! acquire and release; this path avoids that. Not measured against it.)
//!
//! Shut-down order: the receiver's `close` (or drop) marks `Shared::rx_closed` and closes
//! the capacity, failing blocked and later senders; buffered messages stay receivable, and
//! permits reserved before the close may still send, so a closed receiver reports the end
//! only once the buffer is empty and every permit is back. The last sender's drop marks
//! `Shared::tx_gone` and wakes the receiver. On the receiver's drop the buffer is drained
//! and dropped outside the lock.

use std::collections::VecDeque;
use std::fmt;
use std::task::{Context, Poll, Waker};

use crate::loom::{lock, Arc, AtomicUsize, Mutex, Ordering};

mod capacity;

use crate::waitlist::{WaitList, WakeList};
use capacity::{Acquired, Capacity};

pub mod error;
pub use error::{SendError, TryRecvError, TrySendError};

struct Shared<T> {
    queue: VecDeque<T>,
    rx_waker: Option<Waker>,
    /// The receiver closed or dropped: `send` fails.
    rx_closed: bool,
    /// The receiver was dropped: nothing will ever read the buffer again.
    rx_dropped: bool,
    /// Every sender is gone.
    tx_gone: bool,
    /// Senders waiting in `closed()`.
    closed_waiters: WaitList<()>,
}

struct Chan<T> {
    shared: Mutex<Shared<T>>,
    /// Live senders (strong).
    tx_count: AtomicUsize,
    /// `None` for an unbounded channel.
    capacity: Option<Capacity>,
}

impl<T> Chan<T> {
    fn new(capacity: Option<Capacity>) -> Arc<Self> {
        Arc::new(Chan {
            shared: Mutex::new(Shared {
                queue: VecDeque::new(),
                rx_waker: None,
                rx_closed: false,
                rx_dropped: false,
                tx_gone: false,
                closed_waiters: WaitList::new(),
            }),
            tx_count: AtomicUsize::new(1),
            capacity,
        })
    }

    /// Pushes a message. `force`: push even after `close` (a permit reserved before it).
    /// Returns the message back if the receiver is gone (or closed, without `force`).
    fn push(&self, value: T, force: bool) -> Result<(), T> {
        let waker;
        {
            let mut s = lock(&self.shared);
            if s.rx_dropped || (s.rx_closed && !force) {
                return Err(value);
            }
            s.queue.push_back(value);
            waker = s.rx_waker.take();
        }
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    fn wake_rx(&self) {
        let waker = lock(&self.shared).rx_waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn release(&self, n: usize) {
        if let Some(c) = &self.capacity {
            c.release(n);
        }
    }

    fn is_closed(&self) -> bool {
        match &self.capacity {
            Some(c) => c.is_closed(),
            None => lock(&self.shared).rx_closed,
        }
    }
}

/// Creates a bounded channel holding at most `cap` messages (buffered or reserved).
///
/// A `cap` of 0 is treated as 1 (a channel that can never accept a message would only
/// deadlock).
pub fn channel<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Chan::new(Some(Capacity::new(cap.max(1))));
    (
        Sender { chan: chan.clone() },
        Receiver {
            chan,
            batch: VecDeque::new(),
        },
    )
}

/// Creates an unbounded channel: sending never waits.
pub fn unbounded_channel<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let chan = Chan::new(None);
    (
        UnboundedSender { chan: chan.clone() },
        UnboundedReceiver(Receiver {
            chan,
            batch: VecDeque::new(),
        }),
    )
}

/// The sending half of a bounded channel; clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The sending half of an unbounded channel; clone it for more producers.
pub struct UnboundedSender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a bounded channel.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    /// Messages already moved out of `Shared::queue`, in order; owned by the receiver alone.
    batch: VecDeque<T>,
}

/// The receiving half of an unbounded channel; the same operations as [`Receiver`].
pub struct UnboundedReceiver<T>(Receiver<T>);

/// A reserved slot in a bounded channel: [`Permit::send`] uses it without waiting.
///
/// Dropping an unused permit gives the slot back.
#[must_use = "dropping a permit gives its slot back without sending"]
pub struct Permit<'a, T> {
    chan: &'a Chan<T>,
}

/// A reserved slot in a bounded channel that owns its sender ([`Sender::reserve_owned`]).
#[must_use = "dropping a permit gives its slot back without sending"]
pub struct OwnedPermit<T> {
    sender: Option<Sender<T>>,
}

/// A sender that does not keep the channel open: [`recv`](Receiver::recv) returns `None`
/// once every (strong) sender is gone, whatever weak ones remain.
/// [`upgrade`](Self::upgrade) it to send.
pub struct WeakSender<T> {
    chan: Arc<Chan<T>>,
}

/// The weak counterpart of [`UnboundedSender`]; see [`WeakSender`].
pub struct WeakUnboundedSender<T> {
    chan: Arc<Chan<T>>,
}

/// Takes a strong count if one is still held (the channel is not finished).
fn upgrade<T>(chan: &Arc<Chan<T>>) -> Option<Arc<Chan<T>>> {
    let mut n = chan.tx_count.load(Ordering::Acquire);
    loop {
        if n == 0 {
            return None;
        }
        match chan
            .tx_count
            .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some(chan.clone()),
            Err(actual) => n = actual,
        }
    }
}

impl<T> WeakSender<T> {
    /// A strong sender, if any strong sender still exists.
    pub fn upgrade(&self) -> Option<Sender<T>> {
        upgrade(&self.chan).map(|chan| Sender { chan })
    }
}

impl<T> WeakUnboundedSender<T> {
    /// A strong sender, if any strong sender still exists.
    pub fn upgrade(&self) -> Option<UnboundedSender<T>> {
        upgrade(&self.chan).map(|chan| UnboundedSender { chan })
    }
}

impl<T> Clone for WeakSender<T> {
    fn clone(&self) -> Self {
        WeakSender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for WeakUnboundedSender<T> {
    fn clone(&self) -> Self {
        WeakUnboundedSender {
            chan: self.chan.clone(),
        }
    }
}

fn new_sender<T>(chan: &Arc<Chan<T>>) -> Arc<Chan<T>> {
    chan.tx_count.fetch_add(1, Ordering::Relaxed);
    chan.clone()
}

fn drop_sender<T>(chan: &Chan<T>) {
    if chan.tx_count.fetch_sub(1, Ordering::AcqRel) == 1 {
        let waker = {
            let mut s = lock(&chan.shared);
            s.tx_gone = true;
            s.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The reserve future: a wait for one slot of capacity.
struct Reserve<'a, T> {
    chan: &'a Chan<T>,
    key: Option<usize>,
}

impl<T> Reserve<'_, T> {
    fn poll_reserve(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        let Some(cap) = &self.chan.capacity else {
            return Poll::Ready(Err(()));
        };
        if self.key.is_none() {
            if let Some(done) = cap.try_acquire() {
                return Poll::Ready(self.finish(done));
            }
        }
        let coop = std::task::ready!(ringleader_coop::poll_proceed(cx));
        match cap.poll_acquire(cx, &mut self.key) {
            Poll::Ready(done) => {
                coop.made_progress();
                Poll::Ready(self.finish(done))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn finish(&self, done: Acquired) -> Result<(), ()> {
        match done {
            Acquired::Yes => Ok(()),
            Acquired::Closed => Err(()),
        }
    }
}

impl<T> Drop for Reserve<'_, T> {
    fn drop(&mut self) {
        if let (Some(k), Some(cap)) = (self.key.take(), &self.chan.capacity) {
            // A permit granted to us came back: the receiver of a closed channel may be
            // waiting for it before it ends.
            if cap.cancel(k) && cap.is_closed() {
                self.chan.wake_rx();
            }
        }
    }
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for capacity.
    ///
    /// # Errors
    /// [`SendError`] with the value if the receiver is closed or dropped.
    ///
    /// # Cancel safety
    /// If the future is dropped before completing, `value` is dropped unsent and a slot
    /// granted to it in the meantime passes to the next waiting sender; nothing is sent
    /// twice or lost from the channel. Waiting senders are served in FIFO order, and a
    /// dropped one loses its place.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.reserve().await {
            Ok(permit) => permit.send_inner(value).map_err(SendError),
            Err(_) => Err(SendError(value)),
        }
    }

    /// Sends without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] when at capacity, [`TrySendError::Closed`] when the receiver
    /// is closed or dropped; both give the value back.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        match self.try_reserve() {
            Ok(permit) => permit.send_inner(value).map_err(TrySendError::Closed),
            Err(TrySendError::Full(())) => Err(TrySendError::Full(value)),
            Err(TrySendError::Closed(())) => Err(TrySendError::Closed(value)),
        }
    }

    /// Sends from synchronous code, blocking the thread while the channel is full.
    /// Calling it from an async task blocks that task's worker.
    ///
    /// # Errors
    /// [`SendError`] with the value if the receiver is closed or dropped.
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        crate::waitlist::block_on(self.send(value))
    }

    /// Waits for a slot and reserves it.
    ///
    /// # Errors
    /// [`SendError`] if the receiver is closed or dropped.
    ///
    /// # Cancel safety
    /// Cancel safe: a slot granted to a dropped reserve future passes to the next waiter.
    pub async fn reserve(&self) -> Result<Permit<'_, T>, SendError<()>> {
        let mut r = Reserve {
            chan: &self.chan,
            key: None,
        };
        match std::future::poll_fn(|cx| r.poll_reserve(cx)).await {
            Ok(()) => Ok(Permit { chan: &self.chan }),
            Err(()) => Err(SendError(())),
        }
    }

    /// Like [`reserve`](Self::reserve), but the permit owns this sender.
    ///
    /// # Errors
    /// [`SendError`] with the sender back if the receiver is closed or dropped.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`reserve`](Self::reserve); the sender is dropped with the future.
    pub async fn reserve_owned(self) -> Result<OwnedPermit<T>, SendError<Sender<T>>> {
        let ok = {
            let mut r = Reserve {
                chan: &self.chan,
                key: None,
            };
            std::future::poll_fn(|cx| r.poll_reserve(cx)).await
        };
        match ok {
            Ok(()) => Ok(OwnedPermit { sender: Some(self) }),
            Err(()) => Err(SendError(self)),
        }
    }

    /// Reserves a slot without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] at capacity, [`TrySendError::Closed`] if the receiver is gone.
    pub fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError<()>> {
        let Some(cap) = &self.chan.capacity else {
            return Err(TrySendError::Closed(()));
        };
        match cap.try_acquire() {
            Some(Acquired::Yes) => Ok(Permit { chan: &self.chan }),
            Some(Acquired::Closed) => Err(TrySendError::Closed(())),
            None => Err(TrySendError::Full(())),
        }
    }

    /// Whether the receiver was closed or dropped.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Waits until the receiver is closed or dropped.
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches.
    pub async fn closed(&self) {
        closed(&self.chan).await
    }

    /// Slots free now (the channel's bound minus buffered and reserved messages).
    pub fn capacity(&self) -> usize {
        self.chan.capacity.as_ref().map_or(0, Capacity::available)
    }

    /// The bound given to [`channel`].
    pub fn max_capacity(&self) -> usize {
        self.chan.capacity.as_ref().map_or(0, Capacity::max)
    }

    /// A [`WeakSender`] for this channel.
    pub fn downgrade(&self) -> WeakSender<T> {
        WeakSender {
            chan: self.chan.clone(),
        }
    }

    /// Whether both senders feed the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

/// Waits until the receiver is closed, in `Shared::closed_waiters` (freed on drop).
async fn closed<T>(chan: &Chan<T>) {
    struct Closed<'a, T> {
        chan: &'a Chan<T>,
        key: Option<usize>,
    }
    impl<T> Drop for Closed<'_, T> {
        fn drop(&mut self) {
            if let Some(k) = self.key.take() {
                lock(&self.chan.shared).closed_waiters.remove(k);
            }
        }
    }
    let mut c = Closed { chan, key: None };
    std::future::poll_fn(|cx| {
        let mut s = lock(&c.chan.shared);
        if s.rx_closed {
            if let Some(k) = c.key.take() {
                s.closed_waiters.remove(k);
            }
            return Poll::Ready(());
        }
        match c.key {
            Some(k) => s.closed_waiters.set_waker(k, cx.waker()),
            None => c.key = Some(s.closed_waiters.push_back((), Some(cx.waker().clone()))),
        }
        Poll::Pending
    })
    .await
}

impl<T> UnboundedSender<T> {
    /// Sends `value` without waiting.
    ///
    /// # Errors
    /// [`SendError`] with the value if the receiver is closed or dropped.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.push(value, false).map_err(SendError)
    }

    /// Whether the receiver was closed or dropped.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Waits until the receiver is closed or dropped.
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches.
    pub async fn closed(&self) {
        closed(&self.chan).await
    }

    /// Whether both senders feed the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    /// A [`WeakUnboundedSender`] for this channel.
    pub fn downgrade(&self) -> WeakUnboundedSender<T> {
        WeakUnboundedSender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Permit<'_, T> {
    /// Sends `value` in the reserved slot. Never waits; if the receiver was dropped in the
    /// meantime the value is dropped.
    pub fn send(self, value: T) {
        let _ = self.send_inner(value);
    }

    fn send_inner(self, value: T) -> Result<(), T> {
        let chan = self.chan;
        std::mem::forget(self);
        // The permit now travels with the message and comes back when it is received.
        let r = chan.push(value, true);
        if r.is_err() {
            chan.release(1);
        }
        r
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.chan.release(1);
        // The receiver of a closed channel waits for the last permit before it ends.
        if self.chan.is_closed() {
            self.chan.wake_rx();
        }
    }
}

impl<T> OwnedPermit<T> {
    /// Sends `value` in the reserved slot and gives the sender back.
    pub fn send(mut self, value: T) -> Sender<T> {
        let sender = self
            .sender
            .take()
            .expect("permit holds its sender until used");
        let _ = Permit { chan: &sender.chan }.send_inner(value);
        sender
    }

    /// Gives the slot back without sending; returns the sender.
    pub fn release(mut self) -> Sender<T> {
        let sender = self
            .sender
            .take()
            .expect("permit holds its sender until used");
        drop(Permit { chan: &sender.chan });
        sender
    }
}

impl<T> Drop for OwnedPermit<T> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            drop(Permit { chan: &sender.chan });
        }
    }
}

impl<T> Receiver<T> {
    /// Receives the next message, waiting for one.
    ///
    /// Returns `None` once every sender is gone (or the receiver was closed) and the buffer
    /// is drained.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is taken only when the future completes, so dropping it loses
    /// nothing.
    pub async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message; see [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let coop = std::task::ready!(ringleader_coop::poll_proceed(cx));
        if let Some(v) = self.batch.pop_front() {
            coop.made_progress();
            self.chan.release(1);
            return Poll::Ready(Some(v));
        }
        match self.refill(Some(cx.waker())) {
            Ok(()) => {
                coop.made_progress();
                let v = self.batch.pop_front();
                self.chan.release(1);
                Poll::Ready(v)
            }
            Err(TryRecvError::Disconnected) => {
                coop.made_progress();
                Poll::Ready(None)
            }
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// Moves the shared buffer into `batch`; on empty, registers `waker` (if any) and
    /// reports whether the channel is finished.
    fn refill(&mut self, waker: Option<&Waker>) -> Result<(), TryRecvError> {
        let mut s = lock(&self.chan.shared);
        if !s.queue.is_empty() {
            std::mem::swap(&mut s.queue, &mut self.batch);
            return Ok(());
        }
        // Closed: finished once every permit is back (none is reserved for a message still
        // to come). The queue and batch are empty here, so none travels with a message.
        let idle = self.chan.capacity.as_ref().is_none_or(Capacity::is_idle);
        if s.tx_gone || (s.rx_closed && idle) {
            return Err(TryRecvError::Disconnected);
        }
        if let Some(w) = waker {
            match &s.rx_waker {
                Some(old) if old.will_wake(w) => {}
                _ => s.rx_waker = Some(w.clone()),
            }
        }
        Err(TryRecvError::Empty)
    }

    /// Receives without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when nothing is buffered but senders remain;
    /// [`TryRecvError::Disconnected`] when the buffer is drained and every sender is gone
    /// (or the receiver was closed).
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if self.batch.is_empty() {
            self.refill(None)?;
        }
        let v = self.batch.pop_front().ok_or(TryRecvError::Empty)?;
        self.chan.release(1);
        Ok(v)
    }

    /// Receives from synchronous code, blocking the thread until a message or the end.
    /// Calling it from an async task blocks that task's worker.
    pub fn blocking_recv(&mut self) -> Option<T> {
        crate::waitlist::block_on(self.recv())
    }

    /// Waits for at least one message, then moves up to `limit` messages into `buf`;
    /// returns how many. Returns 0 only when `limit` is 0 or the channel is finished (as
    /// `recv` returning `None`).
    ///
    /// # Cancel safety
    /// Cancel safe: messages move into `buf` only when the future completes.
    pub async fn recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        std::future::poll_fn(|cx| {
            let coop = std::task::ready!(ringleader_coop::poll_proceed(cx));
            if self.batch.is_empty() {
                match self.refill(Some(cx.waker())) {
                    Ok(()) => {}
                    Err(TryRecvError::Disconnected) => {
                        coop.made_progress();
                        return Poll::Ready(0);
                    }
                    Err(TryRecvError::Empty) => return Poll::Pending,
                }
            }
            let n = limit.min(self.batch.len());
            buf.extend(self.batch.drain(..n));
            self.chan.release(n);
            coop.made_progress();
            Poll::Ready(n)
        })
        .await
    }

    /// Closes the channel: senders get errors from now on (permits already reserved may
    /// still send), while buffered messages can still be received.
    pub fn close(&mut self) {
        let mut wake = WakeList::new();
        {
            let mut s = lock(&self.chan.shared);
            s.rx_closed = true;
            s.closed_waiters.notify_all(&mut wake, |_| {});
        }
        if let Some(c) = &self.chan.capacity {
            c.close();
        }
        wake.wake_all();
    }

    /// Whether the channel is closed: [`close`](Self::close) was called or every sender
    /// is gone. Buffered messages may still be waiting to be received.
    pub fn is_closed(&self) -> bool {
        let s = lock(&self.chan.shared);
        s.rx_closed || s.tx_gone
    }

    /// Messages buffered now.
    pub fn len(&self) -> usize {
        self.batch.len() + lock(&self.chan.shared).queue.len()
    }

    /// Whether no message is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound of a bounded channel (0 for an unbounded one).
    pub fn max_capacity(&self) -> usize {
        self.chan.capacity.as_ref().map_or(0, Capacity::max)
    }

    /// Slots free now (0 for an unbounded channel).
    pub fn capacity(&self) -> usize {
        self.chan.capacity.as_ref().map_or(0, Capacity::available)
    }

    /// Live senders.
    pub fn sender_strong_count(&self) -> usize {
        self.chan.tx_count.load(Ordering::Acquire)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
        let drained = {
            let mut s = lock(&self.chan.shared);
            s.rx_dropped = true;
            std::mem::take(&mut s.queue)
        };
        // Drop messages outside the lock: their destructors may touch this channel.
        drop(drained);
        self.batch.clear();
    }
}

impl<T> UnboundedReceiver<T> {
    /// Receives the next message; `None` once every sender is gone (or the receiver was
    /// closed) and the buffer is drained.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is taken only when the future completes.
    pub async fn recv(&mut self) -> Option<T> {
        self.0.recv().await
    }

    /// Polls for the next message; see [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }

    /// Receives without waiting.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`].
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv()
    }

    /// Receives from synchronous code, blocking the thread.
    pub fn blocking_recv(&mut self) -> Option<T> {
        self.0.blocking_recv()
    }

    /// Waits for at least one message, then moves up to `limit` into `buf`; returns how many
    /// (0 only when `limit` is 0 or the channel is finished).
    ///
    /// # Cancel safety
    /// Cancel safe: messages move into `buf` only when the future completes.
    pub async fn recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> usize {
        self.0.recv_many(buf, limit).await
    }

    /// Closes the channel: sends fail from now on; buffered messages stay receivable.
    pub fn close(&mut self) {
        self.0.close()
    }

    /// Whether the channel is closed: `close` was called or every sender is gone.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Messages buffered now.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no message is buffered now.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Live senders.
    pub fn sender_strong_count(&self) -> usize {
        self.0.sender_strong_count()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            chan: new_sender(&self.chan),
        }
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        UnboundedSender {
            chan: new_sender(&self.chan),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        drop_sender(&self.chan);
    }
}

impl<T> Drop for UnboundedSender<T> {
    fn drop(&mut self) {
        drop_sender(&self.chan);
    }
}

// Messages are never pinned: they move in and out of the buffers by value.
impl<T> Unpin for Receiver<T> {}
impl<T> Unpin for UnboundedReceiver<T> {}

/// The messages as a stream, ending when [`recv`](Receiver::recv) would return `None`.
impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }
}

/// The messages as a stream, ending when [`recv`](UnboundedReceiver::recv) would return
/// `None`.
impl<T> futures_core::Stream for UnboundedReceiver<T> {
    type Item = T;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }
}

macro_rules! opaque_debug {
    ($($ty:ident),*) => {$(
        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        }
    )*};
}
opaque_debug!(
    Sender,
    UnboundedSender,
    Receiver,
    UnboundedReceiver,
    OwnedPermit
);

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}
