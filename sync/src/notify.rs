//! `Notify`: wake one task or all waiting tasks, with one stored permit (tokio's shape).
//!
//! # Protocol
//!
//! **`word`** (an atomic) holds two bits, `PERMIT` and `WAITERS`, never both set:
//!
//! - `PERMIT`: one stored [`Notify::notify_one`] that nobody was waiting for (at most one).
//!   It lives only in `word`, so storing it (`0 → PERMIT`) and taking it (`PERMIT → 0`) are
//!   single CASes that need no lock.
//! - `WAITERS`: the waiter list is non-empty. Set (`0 → WAITERS`, by CAS, so a concurrent
//!   lock-free store of a permit is never overwritten) and cleared only under the lock.
//!   While it is set no lock-free CAS can succeed, so under the lock `word` is then stable.
//!
//! A waiter is queued only while no permit is stored, and a permit is stored only while no
//! waiter is queued: the permit never barges past a queued waiter, and FIFO order holds.
//!
//! **`state`** (one `crate::loom::Mutex<State>`) holds:
//!
//! - `generation`: how many times [`Notify::notify_waiters`] ran, mirrored in `calls` (written
//!   only under the lock). A [`Notified`] captures `calls` when created, and on its first
//!   poll completes if it has changed: a notification sent after `notified()` reached it
//!   even if it had not been polled yet.
//! - `waiters`: a [`WaitList`] of queued waiters, each entry carrying the waiter's **flag**,
//!   an `Arc<AtomicUsize>` shared with its [`Notified`]. A notifier, under the lock, stores
//!   into the flag what notified the waiter (`ONE`: chosen by `notify_one`, which must not
//!   be lost; or `ALL`), then removes the entry itself ([`WaitList::pop_front`]) and wakes
//!   the waiter after unlocking. A woken waiter reads its flag with one atomic load and
//!   completes without taking the lock: it has no entry left to free. While its flag says
//!   `WAITING`, its entry (and key) is still in the list; it reads the flag *under the
//!   lock* before touching its key, because after a notification the key may name another
//!   waiter.
//! - `spare`: flags whose waiters were notified. A flag is reused (reset to `WAITING`) only
//!   when `Arc::get_mut` proves its old [`Notified`] has let go of it, which also orders
//!   that future's last read before the reset. So waiting allocates a flag only when the
//!   number of waiters (queued, or notified and not yet completed) reaches a new high.
//!
//! A [`Notified`] dropped after `notify_one` chose it but before it returned `Ready` passes
//! the notification on (to the next waiter, or into the stored permit), so `notify_one`
//! never vanishes with a cancelled task. Wake-ups are issued after the lock is released.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::loom::{lock, Arc, AtomicUsize, Mutex, MutexGuard, Ordering};
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
    /// `PERMIT | WAITERS` (see the protocol).
    word: AtomicUsize,
}

const PERMIT: usize = 1;
const WAITERS: usize = 2;

/// A waiter's flag values.
const WAITING: usize = 0;
const ONE: usize = 1;
const ALL: usize = 2;

/// A waiter's notification flag, shared by its list entry and its [`Notified`].
type Flag = Arc<AtomicUsize>;

/// At most this many spare flags are checked for reuse per registration before a new one is
/// allocated (a guess: a notified waiter usually completes before its successors register).
const SPARE_PROBES: usize = 4;

#[derive(Debug)]
struct State {
    generation: usize,
    waiters: WaitList<Flag>,
    spare: VecDeque<Flag>,
}

impl State {
    /// A flag set to `WAITING` that no other future holds.
    fn fresh_flag(&mut self) -> Flag {
        for _ in 0..SPARE_PROBES.min(self.spare.len()) {
            let Some(mut f) = self.spare.pop_front() else {
                break;
            };
            // `get_mut` succeeds only once the old `Notified` dropped its clone (an Acquire
            // on the count, so its reads of the flag come before this reset).
            if Arc::get_mut(&mut f).is_some() {
                f.store(WAITING, Ordering::Relaxed);
                return f;
            }
            self.spare.push_back(f); // still held by a woken waiter: look at the next one
        }
        Arc::new(AtomicUsize::new(WAITING))
    }

    /// Keeps a used flag for reuse, up to about twice the high-water mark of waiters.
    fn retire(&mut self, flag: Flag) {
        if self.spare.len() < 2 * self.waiters.capacity() + SPARE_PROBES {
            self.spare.push_back(flag);
        }
    }

    /// Notifies the first queued waiter with `kind`; returns whether there was one.
    fn notify_front(&mut self, kind: usize, wakes: &mut WakeList) -> bool {
        let Some((flag, waker)) = self.waiters.pop_front() else {
            return false;
        };
        flag.store(kind, Ordering::Release);
        self.retire(flag);
        if let Some(w) = waker {
            wakes.push(w);
        }
        true
    }
}

impl Notify {
    /// A `Notify` with no stored permit.
    pub fn new() -> Notify {
        Notify {
            state: Mutex::new(State {
                generation: 0,
                waiters: WaitList::new(),
                spare: VecDeque::new(),
            }),
            calls: AtomicUsize::new(0),
            word: AtomicUsize::new(0),
        }
    }

    /// A `Notify` usable in `static`s. Not available under `--cfg ringleader_loom`.
    #[cfg(not(ringleader_loom))]
    pub const fn const_new() -> Notify {
        Notify {
            state: Mutex::new(State {
                generation: 0,
                waiters: WaitList::new(),
                spare: VecDeque::new(),
            }),
            calls: AtomicUsize::new(0),
            word: AtomicUsize::new(0),
        }
    }

    /// Wakes the longest-waiting task, or, if none waits, stores a permit that the next
    /// [`notified`](Notify::notified) takes at once. Permits do not accumulate: several calls
    /// with nobody waiting store one.
    pub fn notify_one(&self) {
        if self.store_permit() {
            return;
        }
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        self.notify_one_locked(&mut st, &mut wakes);
        drop(st);
        wakes.wake_all();
    }

    /// Stores the permit (or finds it stored) if no waiter is queued; `false` if one is.
    fn store_permit(&self) -> bool {
        let mut w = self.word.load(Ordering::SeqCst);
        loop {
            match w {
                PERMIT => return true, // coalesces with the stored permit
                0 => match self
                    .word
                    .compare_exchange(0, PERMIT, Ordering::SeqCst, Ordering::SeqCst)
                {
                    Ok(_) => return true,
                    Err(actual) => w = actual,
                },
                _ => return false,
            }
        }
    }

    /// `notify_one` under the lock: the front waiter, or else the permit.
    fn notify_one_locked(&self, st: &mut State, wakes: &mut WakeList) {
        if st.notify_front(ONE, wakes) {
            if st.waiters.is_empty() {
                self.word.store(0, Ordering::SeqCst); // was WAITERS: stable under the lock
            }
        } else {
            let stored = self.store_permit();
            debug_assert!(stored, "WAITERS set with an empty list");
        }
    }

    /// Takes the stored permit, if any, without the lock.
    fn take_permit(&self) -> bool {
        // Look before the CAS: a failing CAS still takes the line exclusively, away from
        // the notifier that keeps writing beside it.
        self.word.load(Ordering::SeqCst) == PERMIT
            && self
                .word
                .compare_exchange(PERMIT, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// Wakes every task currently waiting, including [`Notified`] futures created but not yet
    /// polled. Stores no permit.
    pub fn notify_waiters(&self) {
        let mut st = lock(&self.state);
        st.generation = st.generation.wrapping_add(1);
        // Release is enough: `calls` is only a hint read outside the lock (a stale value
        // sends the waiter to the lock, where `generation` decides), and a `notified()`
        // ordered after this call by the caller's own synchronisation sees the new value.
        self.calls.store(st.generation, Ordering::Release);
        if st.waiters.is_empty() {
            // Nobody queued: the common call of a busy notifier costs the lock and the
            // store, not a wake list.
            return;
        }
        let mut wakes = WakeList::new();
        while st.notify_front(ALL, &mut wakes) {}
        self.word.store(0, Ordering::SeqCst); // was WAITERS: stable under the lock
        drop(st);
        wakes.wake_all();
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
            generation: self.calls.load(Ordering::Acquire),
            state: NotifiedState::Init,
            flag: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Notify")
            .field("permit", &(self.word.load(Ordering::SeqCst) == PERMIT))
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

#[derive(Debug)]
enum NotifiedState {
    Init,
    /// Queued under this key until `Notified::flag` leaves `WAITING`.
    Waiting(usize),
    /// Notified by `notify_one` (or a permit), not yet returned.
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
    /// This waiter's flag while `Waiting`; dropped as soon as the flag is read as set, which
    /// lets the flag be reused.
    flag: Option<Flag>,
}

impl Notified<'_> {
    /// Registers for notifications without a waker, as the first poll would: from here on
    /// `notify_one` may choose this future. Returns `true` if it is already notified (the
    /// next poll returns `Ready`).
    pub fn enable(self: Pin<&mut Self>) -> bool {
        let this = self.get_mut();
        this.register(None)
    }

    /// The flag's value (`WAITING` if there is no flag).
    fn flag_value(&self) -> usize {
        self.flag
            .as_ref()
            .map_or(WAITING, |f| f.load(Ordering::Acquire))
    }

    /// Moves to the ready state a set flag names, letting go of the flag; `false` if it is
    /// still `WAITING`.
    fn take_flag(&mut self, value: usize) -> bool {
        self.state = match value {
            ONE => NotifiedState::ReadyOne,
            ALL => NotifiedState::ReadyAll,
            _ => return false,
        };
        self.flag = None;
        true
    }

    /// Moves `Init` to `Waiting` or to a ready state; returns whether it is notified.
    fn register(&mut self, waker: Option<&Waker>) -> bool {
        match &self.state {
            NotifiedState::Init => {}
            NotifiedState::Waiting(key) => {
                let key = *key;
                // The common wake-up: the notifier set the flag and removed our entry.
                if self.take_flag(self.flag_value()) {
                    return true;
                }
                let notify = self.notify;
                let mut st = notify.lock();
                // Under the lock the flag is final: `WAITING` means the key is still ours.
                if self.take_flag(self.flag_value()) {
                    return true;
                }
                if let Some(w) = waker {
                    st.waiters.set_waker(key, w);
                }
                return false;
            }
            NotifiedState::ReadyOne | NotifiedState::ReadyAll => return true,
            NotifiedState::Done => return false,
        }
        let notify = self.notify;
        if notify.calls.load(Ordering::Acquire) != self.generation {
            self.state = NotifiedState::ReadyAll;
            return true;
        }
        if notify.take_permit() {
            self.state = NotifiedState::ReadyOne;
            return true;
        }
        let mut st = notify.lock();
        if st.generation != self.generation {
            self.state = NotifiedState::ReadyAll;
            return true;
        }
        // Mark the list non-empty, unless a permit arrived meanwhile: then take it.
        let mut w = notify.word.load(Ordering::SeqCst);
        loop {
            let (from, to) = match w {
                PERMIT => (PERMIT, 0),
                0 => (0, WAITERS),
                _ => break, // WAITERS already set
            };
            match notify
                .word
                .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) if from == PERMIT => {
                    self.state = NotifiedState::ReadyOne;
                    return true;
                }
                Ok(_) => break,
                Err(actual) => w = actual,
            }
        }
        let flag = st.fresh_flag();
        let key = st.waiters.push_back(flag.clone(), waker.cloned());
        self.state = NotifiedState::Waiting(key);
        self.flag = Some(flag);
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
        let kind = match std::mem::replace(&mut self.state, NotifiedState::Done) {
            NotifiedState::Waiting(key) => {
                let mut kind = self.flag_value();
                if kind == WAITING {
                    let mut st = self.notify.lock();
                    kind = self.flag_value(); // final under the lock
                    if kind == WAITING {
                        // Still queued: the entry is ours to remove.
                        let entry = st.waiters.remove(key).data;
                        st.retire(entry);
                        if st.waiters.is_empty() {
                            self.notify.word.store(0, Ordering::SeqCst);
                        }
                    }
                }
                kind
            }
            NotifiedState::ReadyOne => ONE,
            _ => WAITING,
        };
        if kind == ONE {
            self.notify.notify_one(); // chosen but never returned: pass it on
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

#[cfg(all(test, not(ringleader_loom)))]
mod tests {
    use super::*;

    fn poll(f: Pin<&mut Notified<'_>>) -> Poll<()> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn flags_and_slots_are_reused() {
        let n = Notify::new();
        for round in 0..200 {
            let mut futs: Vec<_> = (0..3).map(|_| Box::pin(n.notified())).collect();
            for f in &mut futs {
                assert!(poll(f.as_mut()).is_pending());
            }
            if round % 2 == 0 {
                n.notify_waiters();
            } else {
                (0..3).for_each(|_| n.notify_one());
            }
            for f in &mut futs {
                assert!(poll(f.as_mut()).is_ready());
            }
        }
        let st = n.lock();
        assert!(
            st.waiters.capacity() <= 4,
            "slots grew: {}",
            st.waiters.capacity()
        );
        // Every flag is back and free: no allocation per wait.
        assert!(st.spare.len() <= 3, "flags grew: {}", st.spare.len());
    }
}
