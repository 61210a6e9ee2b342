//! The capacity of a bounded channel: a counting semaphore with FIFO waiters.
//!
//! # Protocol
//!
//! `state` packs `permits << 2 | WAITERS | CLOSED`:
//! - `CLOSED`: the receiver closed or dropped; acquires fail. Releases still count, so the
//!   receiver of a closed channel can tell when every outstanding permit is back (idle).
//! - `WAITERS`: the waiter list may be non-empty. Set only with the `waiters` lock held, by a
//!   compare-exchange that also observed zero permits; cleared only with the lock held, when
//!   the list is empty.
//!
//! A release that sees `WAITERS` clear adds its permits with a compare-exchange and is done:
//! because a waiter sets `WAITERS` by a compare-exchange on the same word after seeing zero
//! permits, the release either precedes it (the waiter sees the permit) or sees the bit. A
//! release that sees `WAITERS` takes the lock and hands each permit to the longest waiter
//! (marking its slot `Granted`), adding only what is left once the list is empty. So a
//! sender that starts waiting is never overtaken by one that arrives later while it waits.
//!
//! A waiter whose future is dropped after being granted returns the permit through
//! `release`, which passes it to the next waiter.

use std::task::{Context, Poll};

use crate::loom::{lock, AtomicUsize, Mutex, Ordering};
use crate::waitlist::{WaitList, WakeList};

const CLOSED: usize = 0b01;
const WAITERS: usize = 0b10;
const SHIFT: usize = 2;

/// What a waiter's slot says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Wait {
    Waiting,
    Granted,
    Closed,
}

/// The outcome of an acquire attempt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Acquired {
    Yes,
    Closed,
}

pub(crate) struct Capacity {
    state: AtomicUsize,
    waiters: Mutex<WaitList<Wait>>,
    max: usize,
}

impl Capacity {
    pub(crate) fn new(permits: usize) -> Capacity {
        Capacity {
            state: AtomicUsize::new(permits << SHIFT),
            waiters: Mutex::new(WaitList::new()),
            max: permits,
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Permits available now.
    pub(crate) fn available(&self) -> usize {
        self.state.load(Ordering::Acquire) >> SHIFT
    }

    /// Whether every permit is back (nothing buffered, nothing reserved).
    pub(crate) fn is_idle(&self) -> bool {
        self.available() == self.max
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Takes one permit without waiting. `None`: none available.
    pub(crate) fn try_acquire(&self) -> Option<Acquired> {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & CLOSED != 0 {
                return Some(Acquired::Closed);
            }
            if cur >> SHIFT == 0 {
                return None;
            }
            match self.state.compare_exchange_weak(
                cur,
                cur - (1 << SHIFT),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Acquired::Yes),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Polls an acquire whose waiter key (if any) is `*key`.
    ///
    /// On `Ready` the entry is removed and `*key` is `None`.
    pub(crate) fn poll_acquire(
        &self,
        cx: &mut Context<'_>,
        key: &mut Option<usize>,
    ) -> Poll<Acquired> {
        if key.is_none() {
            if let Some(done) = self.try_acquire() {
                return Poll::Ready(done);
            }
        }
        let mut waiters = lock(&self.waiters);
        if let Some(k) = *key {
            if waiters.is_queued(k) {
                waiters.set_waker(k, cx.waker());
                return Poll::Pending;
            }
            *key = None;
            return Poll::Ready(match waiters.remove(k).data {
                Wait::Granted => Acquired::Yes,
                Wait::Waiting | Wait::Closed => Acquired::Closed,
            });
        }
        // First wait: retry under the lock, and set WAITERS only on seeing zero permits.
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & CLOSED != 0 {
                return Poll::Ready(Acquired::Closed);
            }
            let (next, got) = if cur >> SHIFT > 0 {
                (cur - (1 << SHIFT), true)
            } else {
                (cur | WAITERS, false)
            };
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if got => return Poll::Ready(Acquired::Yes),
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        *key = Some(waiters.push_back(Wait::Waiting, Some(cx.waker().clone())));
        Poll::Pending
    }

    /// Cancels a wait: removes the entry and passes on a permit it had been granted.
    /// Returns whether it had been granted one.
    pub(crate) fn cancel(&self, key: usize) -> bool {
        let mut wakes = WakeList::new();
        let mut waiters = lock(&self.waiters);
        let was = waiters.remove(key).data;
        if was == Wait::Granted {
            self.release_locked(1, &mut waiters, &mut wakes);
        } else if waiters.is_empty() {
            self.state.fetch_and(!WAITERS, Ordering::AcqRel);
        }
        drop(waiters);
        wakes.wake_all();
        was == Wait::Granted
    }

    /// Returns `n` permits.
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & WAITERS != 0 {
                break;
            }
            match self.state.compare_exchange_weak(
                cur,
                cur + (n << SHIFT),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
        let mut wakes = WakeList::new();
        let mut waiters = lock(&self.waiters);
        self.release_locked(n, &mut waiters, &mut wakes);
        drop(waiters);
        wakes.wake_all();
    }

    /// Hands `n` permits to the longest waiters; adds what is left to `state` (clearing
    /// `WAITERS`) once the list is empty.
    fn release_locked(&self, mut n: usize, waiters: &mut WaitList<Wait>, wakes: &mut WakeList) {
        while n > 0 {
            if waiters
                .notify_front(wakes, |d| *d = Wait::Granted)
                .is_none()
            {
                break;
            }
            n -= 1;
        }
        if waiters.is_empty() {
            let mut cur = self.state.load(Ordering::Acquire);
            loop {
                let next = (cur & !WAITERS) + (n << SHIFT);
                match self.state.compare_exchange_weak(
                    cur,
                    next,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
        }
    }

    /// Closes: every waiter and later acquire gets `Closed`.
    pub(crate) fn close(&self) {
        let mut wakes = WakeList::new();
        let mut waiters = lock(&self.waiters);
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        waiters.notify_all(&mut wakes, |d| *d = Wait::Closed);
        self.state.fetch_and(!WAITERS, Ordering::AcqRel);
        drop(waiters);
        wakes.wake_all();
    }
}
