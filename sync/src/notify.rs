//! `Notify`: wake one task or all waiting tasks, with one stored permit (tokio's shape).
//!
//! # Protocol
//!
//! **`word`** (one atomic) holds two bits, `PERMIT` and `WAITERS`, never both set, and above
//! them `calls`, how many times [`Notify::notify_waiters`] ran:
//!
//! - `PERMIT`: one stored [`Notify::notify_one`] that nobody was waiting for (at most one).
//!   It lives only in `word`, so storing and taking it are single CASes that need no lock.
//! - `WAITERS`: the waiter list is non-empty. Set by CAS under the lock (so it never
//!   overwrites a permit stored meanwhile, and fails if `calls` moved) and cleared only under
//!   the lock. While it is set no permit CAS succeeds.
//! - `calls`: bumped by `notify_waiters`. A [`Notified`] captures it when created and
//!   completes on its first poll if it has moved: a notification sent after `notified()`
//!   reached it even if it had not been polled yet. With `WAITERS` clear, `notify_waiters`
//!   bumps it by one CAS without the lock (the common call of a busy notifier); with
//!   `WAITERS` set, only under the lock, where it then wakes the whole list. A waiter queues
//!   only under the lock, through the CAS that sets `WAITERS` with its captured `calls`
//!   unchanged (or finding `WAITERS` set, when `calls` cannot move without the lock): so
//!   a lock-free bump either came first (the waiter sees it and completes) or fails and
//!   takes the lock, and a bump under the lock wakes exactly the waiters queued before it.
//!
//! A waiter is queued only while no permit is stored, and a permit is stored only while no
//! waiter is queued: the permit never barges past a queued waiter, and FIFO order holds.
//!
//! **`streaming`** is a hint outside the protocol. A waiter that takes a permit with its
//! first CAS sets it; a waiter that then finds no permit re-reads `word` a few times
//! before queueing, and takes a permit that arrives meanwhile with the same CAS (never
//! past a queued waiter: `WAITERS` set, or `calls` moved, ends the spin). A notifier
//! storing permits back to back thus keeps its waiters off the queue, where each permit
//! would cost a lock and a cross-thread wake-up. A spin that finds nothing clears the hint.
//!
//! **`state`** (one `crate::loom::Mutex<State>`) holds:
//!
//! - `waiters`: an intrusive [`List`] of the queued waiters' nodes. Each [`Notified`] embeds
//!   its node (the future is `!Unpin`, so the node does not move once polled): queueing
//!   allocates nothing. A notifier, under the lock, unlinks the front node, takes its waker
//!   and stores into the node's state what notified it (`ONE`: chosen by `notify_one`,
//!   which must not be lost; or `ALL`) as its last touch of the node; it wakes the waiter
//!   after unlocking. A woken waiter reads that state with one atomic load and completes
//!   without taking the lock. A waiter that still reads `WAITING` takes the lock and reads
//!   it again before touching its links (the protocol of [`crate::intrusive`]).
//!
//! A [`Notified`] dropped after `notify_one` chose it but before it returned `Ready` passes
//! the notification on (to the next waiter, or into the stored permit), so `notify_one`
//! never vanishes with a cancelled task. Wake-ups are issued after the lock is released.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

use crate::intrusive::{List, Node, WAITING};
use crate::loom::{lock, AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::waitlist::WakeList;

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
    /// `calls << CALLS_SHIFT | PERMIT | WAITERS` (see the protocol).
    word: AtomicUsize,
    /// A hint, never part of the protocol: the last waiter to find no permit was preceded by
    /// one that took a permit without queueing, so a notifier is likely storing permits
    /// back to back. A waiter that finds no permit then watches `word` for a short while
    /// before it queues (see `Notified::await_streamed_permit`).
    streaming: AtomicBool,
}

/// How many times a waiter re-reads `word` for a streamed permit before it queues: about
/// 0.1 µs on current x86, a fraction of the lock, the queueing and the cross-thread wake-up
/// it saves when the permit comes. One under loom, which still explores that path.
#[cfg(not(ringleader_loom))]
const STREAM_SPINS: usize = 24;
#[cfg(ringleader_loom)]
const STREAM_SPINS: usize = 1;

const PERMIT: usize = 1;
const WAITERS: usize = 2;
/// `calls` sits above the two flags; one `notify_waiters` adds `CALL`.
const CALLS_SHIFT: u32 = 2;
const CALL: usize = 1 << CALLS_SHIFT;

/// The `notify_waiters` count held in `word`.
fn calls(word: usize) -> usize {
    word >> CALLS_SHIFT
}

/// What a notifier stored in a waiter's node (besides `intrusive::WAITING`).
const ONE: usize = 1;
const ALL: usize = 2;

#[derive(Debug)]
struct State {
    waiters: List,
}

impl State {
    /// Notifies the first queued waiter with `kind`; returns whether there was one.
    fn notify_front(&mut self, kind: usize, wakes: &mut WakeList) -> bool {
        match self.waiters.pop_front(kind) {
            Some(waker) => {
                if let Some(w) = waker {
                    wakes.push(w);
                }
                true
            }
            None => false,
        }
    }
}

impl Notify {
    /// A `Notify` with no stored permit.
    pub fn new() -> Notify {
        Notify {
            state: Mutex::new(State {
                waiters: List::new(),
            }),
            word: AtomicUsize::new(0),
            streaming: AtomicBool::new(false),
        }
    }

    /// A `Notify` usable in `static`s. Not available under `--cfg ringleader_loom`.
    #[cfg(not(ringleader_loom))]
    pub const fn const_new() -> Notify {
        Notify {
            state: Mutex::new(State {
                waiters: List::new(),
            }),
            word: AtomicUsize::new(0),
            streaming: AtomicBool::new(false),
        }
    }

    /// Wakes the longest-waiting task, or, if none waits, stores a permit that the next
    /// [`notified`](Notify::notified) takes at once. Permits do not accumulate: several calls
    /// with nobody waiting store one.
    pub fn notify_one(&self) {
        if self.store_permit() {
            return;
        }
        let mut st = lock(&self.state);
        let waker = match st.waiters.pop_front(ONE) {
            Some(waker) => {
                if st.waiters.is_empty() {
                    self.clear_waiters();
                }
                waker
            }
            None => {
                let stored = self.store_permit();
                debug_assert!(stored, "WAITERS set with an empty list");
                None
            }
        };
        drop(st);
        // One waker at most: no wake list to build and drain on this hot path.
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Stores the permit (or finds it stored) if no waiter is queued; `false` if one is.
    fn store_permit(&self) -> bool {
        let mut w = self.word.load(Ordering::SeqCst);
        loop {
            if w & WAITERS != 0 {
                return false;
            }
            // Also when the permit is already stored (`w | PERMIT == w`): a plain load would
            // coalesce, but publish nothing; the write makes the waiter that takes the permit
            // synchronise with this call too, so it sees what our caller wrote before it.
            match self
                .word
                .compare_exchange(w, w | PERMIT, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => w = actual, // `calls` moved, a waiter queued or took the permit
            }
        }
    }

    /// Clears `WAITERS` once the list is empty. Under the lock only; `calls` may move
    /// meanwhile, so it keeps whatever is above the flags.
    fn clear_waiters(&self) {
        self.word.fetch_and(!WAITERS, Ordering::SeqCst);
    }

    /// Wakes every task currently waiting, including [`Notified`] futures created but not yet
    /// polled. Stores no permit.
    pub fn notify_waiters(&self) {
        // Nobody queued (the common call of a busy notifier): one CAS, no lock. A waiter that
        // queues later finds `calls` moved in the CAS that would queue it.
        let mut w = self.word.load(Ordering::SeqCst);
        while w & WAITERS == 0 {
            match self
                .word
                .compare_exchange(w, w + CALL, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return,
                Err(actual) => w = actual,
            }
        }
        // Waiters queued: move `calls` under the lock, so that exactly the waiters queued now
        // are woken, not one that queues between the bump and the wake-ups.
        let mut st = lock(&self.state);
        self.word.fetch_add(CALL, Ordering::SeqCst);
        if st.waiters.is_empty() {
            return;
        }
        let mut wakes = WakeList::new();
        while st.notify_front(ALL, &mut wakes) {}
        self.clear_waiters();
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
            generation: calls(self.word.load(Ordering::SeqCst)),
            state: NotifiedState::Init,
            node: Node::new(),
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
            .field("permit", &(self.word.load(Ordering::SeqCst) & PERMIT != 0))
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

#[derive(Debug)]
enum NotifiedState {
    Init,
    /// `node` is (or was, until a notifier stored into it) linked in the waiter list.
    Waiting,
    /// Notified by `notify_one` (or a permit), not yet returned.
    ReadyOne,
    /// Notified by `notify_waiters`, not yet returned.
    ReadyAll,
    Done,
}

/// The future of [`Notify::notified`].
///
/// It is `!Unpin`: while it waits, the waiter list points into it. Pin it to poll it by
/// hand (`std::pin::pin!` or `Box::pin`); `.await` does that for you.
#[must_use = "futures do nothing unless polled; dropping it passes on a notify_one it was chosen by"]
pub struct Notified<'a> {
    notify: &'a Notify,
    generation: usize,
    state: NotifiedState,
    /// This waiter's node in `notify`'s list (linked only in `Waiting`).
    node: Node,
}

// SAFETY: the node's links and waker are touched only under the `Notify`'s lock, whichever
// thread holds it; everything else is plain data or atomics. `Notify` is `Sync`.
unsafe impl Send for Notified<'_> {}
// SAFETY: a shared `&Notified` gives access to nothing (every method takes `Pin<&mut Self>`,
// `Debug` prints the state).
unsafe impl Sync for Notified<'_> {}

impl Notified<'_> {
    /// Registers for notifications without a waker, as the first poll would: from here on
    /// `notify_one` may choose this future. Returns `true` if it is already notified (the
    /// next poll returns `Ready`).
    pub fn enable(self: Pin<&mut Self>) -> bool {
        // SAFETY: nothing is moved out of the future; `node` stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
        this.register(None)
    }

    /// Moves to the ready state a notifier's value names; `false` if it is `WAITING`.
    fn take_state(&mut self, value: usize) -> bool {
        self.state = match value {
            ONE => NotifiedState::ReadyOne,
            ALL => NotifiedState::ReadyAll,
            _ => return false,
        };
        true
    }

    /// Moves `Init` to `Waiting` or to a ready state; returns whether it is notified.
    ///
    /// Adaptive spinning (as a mutex spins before it parks), only while permits stream in:
    /// re-reads `word` up to `STREAM_SPINS` times and takes a permit that arrives with
    /// `calls` unchanged and no waiter queued, by the same CAS as the first take. Without
    /// it, a waiter that loops back a little faster than its notifier would queue for
    /// nearly every permit and cost the notifier a lock and a cross-thread wake-up each.
    /// A spin that finds nothing clears the hint, so a notifier that paused costs later
    /// waiters nothing; `true` with `state` set if the waiter completes.
    fn await_streamed_permit(&mut self) -> bool {
        let notify = self.notify;
        let unchanged = self.generation << CALLS_SHIFT;
        for _ in 0..STREAM_SPINS {
            crate::loom::spin_loop();
            let w = notify.word.load(Ordering::Relaxed);
            if w != unchanged {
                if w == unchanged | PERMIT
                    && notify
                        .word
                        .compare_exchange(w, unchanged, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                {
                    self.state = NotifiedState::ReadyOne;
                    return true;
                }
                // `calls` moved, a waiter queued, or another waiter took the permit: the
                // lock path below sorts these out.
                return false;
            }
        }
        notify.streaming.store(false, Ordering::Relaxed);
        false
    }

    /// Called only through a pinned `self` (poll, enable): `node` does not move once linked.
    fn register(&mut self, waker: Option<&Waker>) -> bool {
        match &self.state {
            NotifiedState::Init => {}
            NotifiedState::Waiting => {
                // The common wake-up: the notifier unlinked our node and stored the kind.
                if self.take_state(self.node.state()) {
                    return true;
                }
                let notify = self.notify;
                let mut st = notify.lock();
                // Under the lock the node's state is final: `WAITING` means still linked.
                if self.take_state(self.node.state()) {
                    return true;
                }
                if let Some(w) = waker {
                    // SAFETY: the node is linked in this list (WAITING under its lock).
                    unsafe { st.waiters.set_waker(NonNull::from(&self.node), w) };
                }
                return false;
            }
            NotifiedState::ReadyOne | NotifiedState::ReadyAll => return true,
            NotifiedState::Done => return false,
        }
        let notify = self.notify;
        // One CAS that expects the permit with `calls` unchanged (and so `WAITERS` clear):
        // it takes the permit, or its failure gives the word to check `calls` in. A load
        // before it would cost a second transfer of the line, which the notifier usually
        // wrote last; measured, the slower take let a busy notifier's permits go untaken
        // more often, queueing waiters that each then needed a wake-up.
        let unchanged = self.generation << CALLS_SHIFT;
        match notify.word.compare_exchange(
            unchanged | PERMIT,
            unchanged,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => {
                // Written only when it changes: a steady stream of takes leaves the line shared.
                if !notify.streaming.load(Ordering::Relaxed) {
                    notify.streaming.store(true, Ordering::Relaxed);
                }
                self.state = NotifiedState::ReadyOne;
                return true;
            }
            Err(w) if calls(w) != self.generation => {
                self.state = NotifiedState::ReadyAll;
                return true;
            }
            // No permit (with `calls` unchanged, a failed CAS means the bit was clear).
            Err(_) => {
                if notify.streaming.load(Ordering::Relaxed) && self.await_streamed_permit() {
                    return true;
                }
            }
        }
        let mut st = notify.lock();
        // Mark the list non-empty with `calls` unchanged, unless a permit arrived meanwhile
        // (then take it) or `calls` moved (then this waiter is notified).
        let mut w = notify.word.load(Ordering::SeqCst);
        loop {
            if calls(w) != self.generation {
                self.state = NotifiedState::ReadyAll;
                return true;
            }
            let to = if w & PERMIT != 0 {
                w & !PERMIT
            } else if w & WAITERS != 0 {
                break; // already set: a `notify_waiters` that moves `calls` takes the lock
            } else {
                w | WAITERS
            };
            match notify
                .word
                .compare_exchange(w, to, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) if w & PERMIT != 0 => {
                    self.state = NotifiedState::ReadyOne;
                    return true;
                }
                Ok(_) => break,
                Err(actual) => w = actual,
            }
        }
        // SAFETY: the future is pinned (see above), so the node stays put; it was never
        // linked (state `Init`); `Drop` unlinks it unless a notifier did.
        unsafe {
            st.waiters
                .push_back(NonNull::from(&self.node), waker.cloned())
        };
        self.state = NotifiedState::Waiting;
        false
    }
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: nothing is moved out of the future; `node` stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
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
            NotifiedState::Waiting => {
                let mut kind = self.node.state();
                if kind == WAITING {
                    let mut st = self.notify.lock();
                    kind = self.node.state(); // final under the lock
                    if kind == WAITING {
                        // SAFETY: still linked (WAITING under the lock); we unlink it before
                        // the node's memory goes away.
                        unsafe { st.waiters.remove(NonNull::from(&self.node)) };
                        if st.waiters.is_empty() {
                            self.notify.clear_waiters();
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
