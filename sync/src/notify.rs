//! `Notify`: wake one task or all waiting tasks, with one stored permit (tokio's shape).
//!
//! # Protocol
//!
//! One `crate::loom::Mutex<State>` holds:
//!
//! - `permit`: one stored [`Notify::notify_one`] that nobody was waiting for. At most one.
//! - `generation`: how many times [`Notify::notify_waiters`] ran. A [`Notified`] captures it
//!   when created (from the `calls` atomic, which is written only under the lock), and on its
//!   first poll completes if it has changed: a notification sent after `notified()` reached
//!   it even if it had not been polled yet.
//! - `waiters`: a [`WaitList`] whose payload records what notified the waiter: `One`
//!   (chosen by `notify_one`, which must not be lost) or `All`.
//!
//! `summary` mirrors `permit` and "some waiter is queued" as two bits, stored at the end of
//! every critical section that changes either. `notify_one` reads it without the lock: when
//! it says "permit stored, nobody queued" the call is a no-op (permits do not accumulate), so
//! it returns at once; linearised at that load, this is the same as taking the lock. A
//! notifier spinning on a stored permit thus never contends with the waiters for the lock.
//!
//! A [`Notified`] dropped after `notify_one` chose it but before it returned `Ready` passes
//! the notification on (to the next waiter, or into the stored permit), so `notify_one`
//! never vanishes with a cancelled task. Wake-ups are issued after the lock is released.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::loom::{lock, AtomicUsize, Mutex, Ordering};
use crate::waitlist::{WaitList, WakeList};

/// Wakes one waiting task ([`notify_one`](Notify::notify_one), storing a permit if nobody
/// waits) or every waiting task ([`notify_waiters`](Notify::notify_waiters)).
///
/// ```
/// use ringleader_sync::Notify;
///
/// let notify = Notify::new();
/// notify.notify_one(); // stored: nobody waits yet
/// futures::executor::block_on(notify.notified()); // takes the stored permit at once
/// ```
pub struct Notify {
    state: Mutex<State>,
    /// Mirror of `State::generation`, readable without the lock by `notified()`.
    calls: AtomicUsize,
    /// `PERMIT | WAITERS` bits mirroring `State`, written under the lock (see the protocol).
    summary: AtomicUsize,
}

const PERMIT: usize = 1;
const WAITERS: usize = 2;

#[derive(Debug)]
struct State {
    permit: bool,
    generation: usize,
    waiters: WaitList<Option<Kind>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    One,
    All,
}

impl State {
    fn notify_one(&mut self, wakes: &mut WakeList) {
        if self
            .waiters
            .notify_front(wakes, |k| *k = Some(Kind::One))
            .is_none()
        {
            self.permit = true;
        }
    }
}

impl Notify {
    /// A `Notify` with no stored permit.
    pub fn new() -> Notify {
        Notify {
            state: Mutex::new(State {
                permit: false,
                generation: 0,
                waiters: WaitList::new(),
            }),
            calls: AtomicUsize::new(0),
            summary: AtomicUsize::new(0),
        }
    }

    /// A `Notify` usable in `static`s. Not available under `--cfg ringleader_loom`.
    #[cfg(not(ringleader_loom))]
    pub const fn const_new() -> Notify {
        Notify {
            state: Mutex::new(State {
                permit: false,
                generation: 0,
                waiters: WaitList::new(),
            }),
            calls: AtomicUsize::new(0),
            summary: AtomicUsize::new(0),
        }
    }

    /// Wakes the longest-waiting task, or, if none waits, stores a permit that the next
    /// [`notified`](Notify::notified) takes at once. Permits do not accumulate: several calls
    /// with nobody waiting store one.
    pub fn notify_one(&self) {
        if self.summary.load(Ordering::SeqCst) == PERMIT {
            return; // a permit is stored and nobody waits: this one coalesces with it
        }
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        st.notify_one(&mut wakes);
        self.publish(&st);
        drop(st);
        wakes.wake_all();
    }

    /// Wakes every task currently waiting, including [`Notified`] futures created but not yet
    /// polled. Stores no permit.
    pub fn notify_waiters(&self) {
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        st.generation = st.generation.wrapping_add(1);
        self.calls.store(st.generation, Ordering::SeqCst);
        st.waiters.notify_all(&mut wakes, |k| *k = Some(Kind::All));
        self.publish(&st);
        drop(st);
        wakes.wake_all();
    }

    /// Stores the `summary` bits for `st`; call under the lock after changing it.
    fn publish(&self, st: &State) {
        let bits =
            if st.permit { PERMIT } else { 0 } | if st.waiters.is_empty() { 0 } else { WAITERS };
        self.summary.store(bits, Ordering::SeqCst);
    }

    /// A future that completes at the next notification.
    ///
    /// It takes a stored permit on its first poll (or at [`Notified::enable`]); it queues
    /// for `notify_one` from that point, and receives every `notify_waiters` called after
    /// this method returned.
    ///
    /// # Cancel safety
    /// Cancel safe: a future dropped after `notify_one` chose it passes the notification on
    /// to the next waiter (or stores it as the permit), so nothing is lost.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            generation: self.calls.load(Ordering::SeqCst),
            state: NotifiedState::Init,
        }
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("Notify")
            .field("permit", &st.permit)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

#[derive(Debug)]
enum NotifiedState {
    Init,
    Waiting(usize),
    /// Notified by `notify_one` (or a permit) during `enable`, not yet returned.
    ReadyOne,
    /// Notified by `notify_waiters`, not yet returned.
    ReadyAll,
    Done,
}

/// The future of [`Notify::notified`].
#[must_use = "futures do nothing unless polled; dropping it passes on a notify_one it was chosen by"]
pub struct Notified<'a> {
    notify: &'a Notify,
    generation: usize,
    state: NotifiedState,
}

impl Notified<'_> {
    /// Registers for notifications without a waker, as the first poll would: from here on
    /// `notify_one` may choose this future. Returns `true` if it is already notified (the
    /// next poll returns `Ready`).
    pub fn enable(self: Pin<&mut Self>) -> bool {
        let this = self.get_mut();
        this.register(None)
    }

    /// Moves `Init` to `Waiting` or to a ready state; returns whether it is notified.
    fn register(&mut self, waker: Option<&std::task::Waker>) -> bool {
        match self.state {
            NotifiedState::Init => {}
            NotifiedState::Waiting(key) => {
                let mut st = lock(&self.notify.state);
                if st.waiters.is_queued(key) {
                    if let Some(w) = waker {
                        st.waiters.set_waker(key, w);
                    }
                    return false;
                }
                let kind = st.waiters.remove(key).data;
                self.notify.publish(&st);
                self.state = match kind {
                    Some(Kind::All) => NotifiedState::ReadyAll,
                    _ => NotifiedState::ReadyOne,
                };
                return true;
            }
            NotifiedState::ReadyOne | NotifiedState::ReadyAll => return true,
            NotifiedState::Done => return false,
        }
        let mut st = lock(&self.notify.state);
        if st.generation != self.generation {
            self.state = NotifiedState::ReadyAll;
            return true;
        }
        if st.permit {
            st.permit = false;
            self.notify.publish(&st);
            self.state = NotifiedState::ReadyOne;
            return true;
        }
        let key = st.waiters.push_back(None, waker.cloned());
        self.notify.publish(&st);
        self.state = NotifiedState::Waiting(key);
        false
    }
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if matches!(this.state, NotifiedState::Done) {
            return Poll::Pending;
        }
        let progress = std::task::ready!(ringleader_coop::poll_proceed(cx));
        if this.register(Some(cx.waker())) {
            this.state = NotifiedState::Done;
            progress.made_progress();
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let forward = match self.state {
            NotifiedState::Waiting(key) => {
                let mut wakes = WakeList::new();
                let mut st = lock(&self.notify.state);
                let removed = st.waiters.remove(key);
                if !removed.was_queued && removed.data == Some(Kind::One) {
                    st.notify_one(&mut wakes);
                }
                self.notify.publish(&st);
                drop(st);
                wakes.wake_all();
                false
            }
            NotifiedState::ReadyOne => true,
            _ => false,
        };
        if forward {
            self.notify.notify_one();
        }
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
