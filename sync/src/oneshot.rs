//! A channel for sending a single value between tasks.
//!
//! [`channel`] returns a [`Sender`] and a [`Receiver`]. The sender sends at most once
//! ([`Sender::send`] consumes it); the receiver is a future that resolves to the value, or to
//! [`RecvError`] if the sender was dropped without sending.
//!
//! ```
//! # futures::executor::block_on(async {
//! let (tx, rx) = ringleader_sync::oneshot::channel();
//! tx.send(7).unwrap();
//! assert_eq!(rx.await, Ok(7));
//! # });
//! ```
//!
//! The handles are `Send` only when the value is (a `!Send` value cannot cross threads):
//!
//! ```compile_fail
//! fn assert_send<T: Send>(_: T) {}
//! let (tx, _rx) = ringleader_sync::oneshot::channel::<std::rc::Rc<u8>>();
//! assert_send(tx);
//! ```
//!
//! # Protocol
//!
//! Both handles share one `Inner` behind an `Arc`: a state word and three cells.
//!
//! | bit | name          | set by                        | meaning                                   |
//! |-----|---------------|-------------------------------|-------------------------------------------|
//! | 0   | `RX_TASK_SET` | receiver                      | `rx_task` holds the receiver's waker      |
//! | 1   | `COMPLETE`    | sender (`send` or drop)       | the sender is done; `value` is final      |
//! | 2   | `CLOSED`      | receiver (`close` or drop)    | the receiver will never take a value      |
//! | 3   | `TX_TASK_SET` | sender (`poll_closed`)        | `tx_task` holds the sender's waker        |
//!
//! Cell ownership:
//! - `value`: the sender writes it before setting `COMPLETE` and never touches it after, unless
//!   its `COMPLETE` transition was refused because `CLOSED` was set, in which case it takes the
//!   value back. The receiver reads it only after observing `COMPLETE`.
//! - `rx_task`: the receiver writes it only while `RX_TASK_SET` is clear; the sender reads it
//!   only when its `COMPLETE` transition observed `RX_TASK_SET`. Once `COMPLETE` is set the
//!   receiver never writes it again.
//! - `tx_task`: symmetric, with the sender writing while `TX_TASK_SET` is clear and the
//!   receiver reading when its `CLOSED` transition observed `TX_TASK_SET` and not `COMPLETE`.
//!
//! `COMPLETE` and `CLOSED` are never both set by a successful transition: `complete` refuses
//! once `CLOSED` is set, but `close` may set `CLOSED` after `COMPLETE` (a value sent then
//! closed is still received). Wakers are dropped with `Inner`, when both handles are gone.
//! The same design as tokio's `sync/oneshot.rs`, reduced to what this API needs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::loom::{Arc, AtomicUsize, Ordering, UnsafeCell};

const RX_TASK_SET: usize = 0b0001;
const COMPLETE: usize = 0b0010;
const CLOSED: usize = 0b0100;
const TX_TASK_SET: usize = 0b1000;

/// A snapshot of the state word, as returned by each named transition.
#[derive(Clone, Copy)]
struct State(usize);

impl State {
    fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    fn is_closed(self) -> bool {
        self.0 & CLOSED != 0
    }
    fn is_rx_task_set(self) -> bool {
        self.0 & RX_TASK_SET != 0
    }
    fn is_tx_task_set(self) -> bool {
        self.0 & TX_TASK_SET != 0
    }
}

struct Inner<T> {
    state: AtomicUsize,
    /// Written by the sender before `COMPLETE`; read by the receiver after. See module docs.
    value: UnsafeCell<Option<T>>,
    /// The receiver's waker; valid while `RX_TASK_SET`.
    rx_task: UnsafeCell<Option<Waker>>,
    /// The sender's waker (for `closed`); valid while `TX_TASK_SET`.
    tx_task: UnsafeCell<Option<Waker>>,
}

// SAFETY: the cells are accessed under the state-word protocol above, which gives each cell a
// single writer at a time and orders the hand-over with acquire/release on `state`. `T` moves
// from the sending thread to the receiving thread, hence `T: Send`.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above; `&Inner` only exposes the value by moving it out, never by reference.
unsafe impl<T: Send> Sync for Inner<T> {}

impl<T> Inner<T> {
    /// Transition `complete`: sets `COMPLETE` unless `CLOSED`. Returns the previous state.
    fn complete(&self) -> State {
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            if cur & CLOSED != 0 {
                return State(cur);
            }
            match self.state.compare_exchange_weak(
                cur,
                cur | COMPLETE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return State(cur),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Transition `close`: sets `CLOSED`. Returns the previous state.
    fn close(&self) -> State {
        State(self.state.fetch_or(CLOSED, Ordering::AcqRel))
    }

    /// Transition `set_rx_task`: publishes `rx_task`. Returns the previous state.
    fn set_rx_task(&self) -> State {
        State(self.state.fetch_or(RX_TASK_SET, Ordering::AcqRel))
    }

    /// Transition `unset_rx_task`: takes `rx_task` back. Returns the previous state.
    fn unset_rx_task(&self) -> State {
        State(self.state.fetch_and(!RX_TASK_SET, Ordering::AcqRel))
    }

    fn set_tx_task(&self) -> State {
        State(self.state.fetch_or(TX_TASK_SET, Ordering::AcqRel))
    }

    fn unset_tx_task(&self) -> State {
        State(self.state.fetch_and(!TX_TASK_SET, Ordering::AcqRel))
    }

    fn load(&self) -> State {
        State(self.state.load(Ordering::Acquire))
    }

    /// Takes the value.
    ///
    /// # Safety
    /// The caller is the receiver and has observed `COMPLETE` (so the sender no longer
    /// touches `value`).
    unsafe fn take_value(&self) -> Option<T> {
        // SAFETY: per this function's contract the receiver owns `value` now.
        self.value.with_mut(|v| unsafe { (*v).take() })
    }
}

/// Creates a oneshot channel.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: AtomicUsize::new(0),
        value: UnsafeCell::new(None),
        rx_task: UnsafeCell::new(None),
        tx_task: UnsafeCell::new(None),
    });
    (
        Sender {
            inner: Some(inner.clone()),
        },
        Receiver { inner: Some(inner) },
    )
}

/// Sends one value to the paired [`Receiver`].
///
/// Dropping the sender without sending makes the receiver resolve to [`RecvError`].
pub struct Sender<T> {
    inner: Option<Arc<Inner<T>>>,
}

/// Receives the one value sent by the paired [`Sender`]; await it.
///
/// Dropping the receiver closes the channel: a later [`Sender::send`] returns its value.
///
/// # Cancel safety
/// Awaiting `&mut receiver` is cancel safe: the value is taken only when the await
/// completes, so a dropped `(&mut rx).await` loses nothing and `rx` can be awaited again.
#[must_use = "a oneshot receiver does nothing unless awaited; dropping it closes the channel"]
pub struct Receiver<T> {
    inner: Option<Arc<Inner<T>>>,
}

/// The error types, also at this module's root (the path tokio uses).
pub mod error {
    pub use super::{RecvError, TryRecvError};
}

/// The sender was dropped without sending, or the value was already received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError(());

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot sender dropped without sending")
    }
}

impl std::error::Error for RecvError {}

/// Why [`Receiver::try_recv`] returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No value yet; the sender is still alive.
    Empty,
    /// The sender was dropped without sending, the receiver was closed before a value
    /// arrived, or the value was already taken.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("oneshot channel empty"),
            TryRecvError::Closed => f.write_str("oneshot channel closed"),
        }
    }
}

impl std::error::Error for TryRecvError {}

impl<T> Sender<T> {
    /// Sends `value`, consuming the sender.
    ///
    /// # Errors
    /// Returns `Err(value)` if the receiver was dropped or closed.
    pub fn send(mut self, value: T) -> Result<(), T> {
        let Some(inner) = self.inner.take() else {
            return Err(value);
        };
        // SAFETY: the sender owns `value` until it sets COMPLETE (module docs); `send`
        // consumes the only sender, so nobody else writes it.
        inner.value.with_mut(|v| unsafe { *v = Some(value) });
        let prev = inner.complete();
        if prev.is_closed() {
            // SAFETY: COMPLETE was refused, so the receiver never reads `value`: still ours.
            let value = unsafe { inner.take_value() };
            return Err(value.expect("value written just above"));
        }
        if prev.is_rx_task_set() {
            // SAFETY: RX_TASK_SET was observed by our COMPLETE transition; the receiver no
            // longer writes `rx_task` once COMPLETE is set (module docs).
            inner.rx_task.with(|w| unsafe {
                if let Some(w) = &*w {
                    w.wake_by_ref();
                }
            });
        }
        Ok(())
    }

    /// Whether the receiver was dropped or closed (a send would fail).
    pub fn is_closed(&self) -> bool {
        self.inner.as_ref().is_none_or(|i| i.load().is_closed())
    }

    /// Waits until the receiver is dropped or closed.
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches the channel.
    pub async fn closed(&mut self) {
        std::future::poll_fn(|cx| self.poll_closed(cx)).await
    }

    /// Polls for the receiver's closing; registers `cx`'s waker when not yet closed.
    pub fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(inner) = self.inner.as_ref() else {
            return Poll::Ready(());
        };
        let coop = std::task::ready!(ringleader_coop::poll_proceed(cx));
        let mut state = inner.load();
        if state.is_closed() {
            coop.made_progress();
            return Poll::Ready(());
        }
        if state.is_tx_task_set() {
            // SAFETY: TX_TASK_SET is set, so the receiver may read `tx_task` concurrently,
            // which `with` (a shared read) permits.
            let same = inner
                .tx_task
                .with(|w| unsafe { (*w).as_ref().is_some_and(|w| w.will_wake(cx.waker())) });
            if same {
                return Poll::Pending;
            }
            state = inner.unset_tx_task();
            if state.is_closed() {
                // Restore the bit so the (unread) waker is still accounted for.
                inner.set_tx_task();
                coop.made_progress();
                return Poll::Ready(());
            }
        }
        // SAFETY: TX_TASK_SET is clear, so only the sender (us, `&mut self`) touches `tx_task`.
        inner
            .tx_task
            .with_mut(|w| unsafe { *w = Some(cx.waker().clone()) });
        let state = inner.set_tx_task();
        if state.is_closed() {
            coop.made_progress();
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let prev = inner.complete();
            if !prev.is_closed() && prev.is_rx_task_set() {
                // SAFETY: as in `send`: RX_TASK_SET observed by our COMPLETE transition.
                inner.rx_task.with(|w| unsafe {
                    if let Some(w) = &*w {
                        w.wake_by_ref();
                    }
                });
            }
        }
    }
}

impl<T> Receiver<T> {
    /// Closes the channel without dropping the receiver: a later `send` fails, but a value
    /// already sent can still be taken with [`try_recv`](Self::try_recv) or by awaiting.
    pub fn close(&mut self) {
        if let Some(inner) = &self.inner {
            let prev = inner.close();
            if prev.is_tx_task_set() && !prev.is_complete() {
                // SAFETY: our CLOSED transition observed TX_TASK_SET; the sender no longer
                // writes `tx_task` once CLOSED is set (it sees CLOSED and returns Ready).
                inner.tx_task.with(|w| unsafe {
                    if let Some(w) = &*w {
                        w.wake_by_ref();
                    }
                });
            }
        }
    }

    /// Takes the value if it was sent, without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] while the sender is alive and has not sent;
    /// [`TryRecvError::Closed`] if it was dropped, the channel closed before a value came,
    /// or the value was already taken.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let Some(inner) = &self.inner else {
            return Err(TryRecvError::Closed);
        };
        let state = inner.load();
        if state.is_complete() {
            // SAFETY: COMPLETE observed; we are the receiver.
            let value = unsafe { inner.take_value() };
            self.inner = None;
            value.ok_or(TryRecvError::Closed)
        } else if state.is_closed() {
            self.inner = None;
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Takes the value, blocking the thread until it arrives. For synchronous code only:
    /// calling it from an async task blocks that task's worker.
    ///
    /// # Errors
    /// [`RecvError`] if the sender was dropped without sending.
    pub fn blocking_recv(self) -> Result<T, RecvError> {
        crate::waitlist::block_on(self)
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        let Some(inner) = self.inner.as_ref() else {
            return Poll::Ready(Err(RecvError(())));
        };
        let coop = std::task::ready!(ringleader_coop::poll_proceed(cx));
        let mut state = inner.load();
        if state.is_complete() {
            coop.made_progress();
            // SAFETY: COMPLETE observed; we are the receiver.
            let v = unsafe { inner.take_value() };
            self.inner = None;
            return Poll::Ready(v.ok_or(RecvError(())));
        }
        if state.is_closed() {
            coop.made_progress();
            self.inner = None;
            return Poll::Ready(Err(RecvError(())));
        }
        if state.is_rx_task_set() {
            // SAFETY: RX_TASK_SET set: the sender may read concurrently; this is a read.
            let same = inner
                .rx_task
                .with(|w| unsafe { (*w).as_ref().is_some_and(|w| w.will_wake(cx.waker())) });
            if same {
                return Poll::Pending;
            }
            state = inner.unset_rx_task();
            if state.is_complete() {
                // The sender may be reading `rx_task`: leave it in place, restore the bit.
                inner.set_rx_task();
                coop.made_progress();
                // SAFETY: COMPLETE observed; we are the receiver.
                let v = unsafe { inner.take_value() };
                self.inner = None;
                return Poll::Ready(v.ok_or(RecvError(())));
            }
        }
        // SAFETY: RX_TASK_SET is clear and COMPLETE was not set when we cleared it, so the
        // sender will not read `rx_task` until we set the bit again.
        inner
            .rx_task
            .with_mut(|w| unsafe { *w = Some(cx.waker().clone()) });
        let state = inner.set_rx_task();
        if state.is_complete() {
            coop.made_progress();
            // SAFETY: COMPLETE observed; we are the receiver.
            let v = unsafe { inner.take_value() };
            self.inner = None;
            return Poll::Ready(v.ok_or(RecvError(())));
        }
        Poll::Pending
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    /// # Cancel safety
    /// Cancel safe: dropping the receiver before it completes closes the channel (the
    /// sender gets its value back); a value already sent is dropped with it.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_inner(cx)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
        if let Some(inner) = self.inner.take() {
            if inner.load().is_complete() {
                // SAFETY: COMPLETE observed; we are the receiver. Drop the value now rather
                // than when the last handle goes.
                drop(unsafe { inner.take_value() });
            }
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}
