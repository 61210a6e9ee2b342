//! `Barrier`: asyncio's `Barrier`, n parties that wait for each other, with abort and reset.
//!
//! # Protocol
//!
//! One `crate::loom::Mutex<State>`: `arrived` (parties waiting in the current round),
//! `broken`, and a [`WaitList`] whose payload is the outcome a waiter was released with.
//! The party whose arrival makes `arrived == parties` is the leader: under the lock it
//! resets `arrived` to 0 and notifies every queued waiter with `Passed(index)`, numbering
//! them `0..parties - 1` in arrival order (the leader takes `parties - 1`, as asyncio's
//! last arrival does; cancelled waiters are not queued, so the indices are dense and
//! distinct), so the next round
//! starts at once and later arrivals never mix with the released ones. A waiter dropped
//! while still queued decrements `arrived` (as if it never came); one dropped after release
//! changes nothing. [`Barrier::abort`] and [`Barrier::reset`] notify every queued waiter with
//! `Broken`; `abort` also leaves the barrier broken for later waiters until `reset`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::loom::{lock, Mutex};
use crate::waitlist::{WaitList, WakeList};

/// A barrier for `parties` tasks (asyncio's `Barrier`): each [`wait`](Barrier::wait)s until
/// all have arrived, then all proceed; one of them is told it is the leader.
///
/// ```
/// use ringleader_sync::Barrier;
///
/// let barrier = Barrier::new(2);
/// futures::executor::block_on(async {
///     let (a, b) = futures::join!(barrier.wait(), barrier.wait());
///     let (a, b) = (a.unwrap(), b.unwrap());
///     assert!(a.is_leader() != b.is_leader());
/// });
/// ```
pub struct Barrier {
    parties: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    arrived: usize,
    broken: bool,
    waiters: WaitList<Option<Outcome>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Released by the leader, with this party's index in the round.
    Passed(usize),
    Broken,
}

impl Barrier {
    /// A barrier for `parties` tasks. `0` is treated as `1` (every wait passes at once).
    pub fn new(parties: usize) -> Barrier {
        Barrier {
            parties: parties.max(1),
            state: Mutex::new(State {
                arrived: 0,
                broken: false,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Number of parties needed to pass the barrier.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// Number of parties waiting in the current round.
    pub fn n_waiting(&self) -> usize {
        lock(&self.state).arrived
    }

    /// Whether the barrier is broken (after [`abort`](Barrier::abort), until
    /// [`reset`](Barrier::reset)).
    pub fn is_broken(&self) -> bool {
        lock(&self.state).broken
    }

    /// Waits until `parties` tasks are waiting, then releases them all. The last to arrive is
    /// the leader. Each party of a round gets a distinct
    /// [`index`](BarrierWaitResult::index) in `0..parties`, its arrival order (asyncio's
    /// return value of `wait()`).
    ///
    /// # Errors
    /// [`BrokenBarrier`] if the barrier is broken, or gets aborted or reset while waiting.
    ///
    /// # Cancel safety
    /// Cancel safe: a waiter dropped before the barrier trips is uncounted, as if it never
    /// arrived; dropped after, it changes nothing.
    pub fn wait(&self) -> BarrierWait<'_> {
        BarrierWait {
            barrier: self,
            key: None,
            done: false,
        }
    }

    /// Breaks the barrier: every current and future `wait` fails with [`BrokenBarrier`]
    /// until [`reset`](Barrier::reset).
    pub fn abort(&self) {
        self.break_waiters(true);
    }

    /// Returns the barrier to its empty, unbroken state; tasks waiting now fail with
    /// [`BrokenBarrier`] (asyncio's `reset`).
    pub fn reset(&self) {
        self.break_waiters(false);
    }

    fn break_waiters(&self, broken: bool) {
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        st.broken = broken;
        st.arrived = 0;
        st.waiters
            .notify_all(&mut wakes, |o| *o = Some(Outcome::Broken));
        drop(st);
        wakes.wake_all();
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("n_waiting", &st.arrived)
            .field("broken", &st.broken)
            .finish()
    }
}

/// The future of [`Barrier::wait`].
#[must_use = "futures do nothing unless polled; a party arrives when first polled"]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    key: Option<usize>,
    done: bool,
}

impl Future for BarrierWait<'_> {
    type Output = Result<BarrierWaitResult, BrokenBarrier>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return Poll::Pending;
        }
        let progress = std::task::ready!(ringleader_coop::poll_proceed(cx));
        let mut wakes = WakeList::new();
        let mut st = lock(&this.barrier.state);
        let result = match this.key {
            None => {
                if st.broken {
                    Err(BrokenBarrier(()))
                } else {
                    st.arrived += 1;
                    if st.arrived >= this.barrier.parties {
                        st.arrived = 0;
                        // Queued waiters are the other parties of this round, in arrival
                        // order.
                        let mut index = 0;
                        st.waiters.notify_all(&mut wakes, |o| {
                            *o = Some(Outcome::Passed(index));
                            index += 1;
                        });
                        debug_assert_eq!(index, this.barrier.parties - 1);
                        Ok(BarrierWaitResult {
                            is_leader: true,
                            index,
                        })
                    } else {
                        let key = st.waiters.push_back(None, Some(cx.waker().clone()));
                        this.key = Some(key);
                        return Poll::Pending;
                    }
                }
            }
            Some(key) => {
                if st.waiters.is_queued(key) {
                    st.waiters.set_waker(key, cx.waker());
                    return Poll::Pending;
                }
                this.key = None;
                match st.waiters.remove(key).data {
                    Some(Outcome::Passed(index)) => Ok(BarrierWaitResult {
                        is_leader: false,
                        index,
                    }),
                    _ => Err(BrokenBarrier(())),
                }
            }
        };
        drop(st);
        wakes.wake_all();
        this.done = true;
        progress.made_progress();
        Poll::Ready(result)
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut st = lock(&self.barrier.state);
            if st.waiters.remove(key).was_queued {
                st.arrived = st.arrived.saturating_sub(1);
            }
        }
    }
}

impl fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait")
            .field("queued", &self.key.is_some())
            .field("done", &self.done)
            .finish()
    }
}

/// What [`Barrier::wait`] returns on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    is_leader: bool,
    index: usize,
}

impl BarrierWaitResult {
    /// Whether this party was the leader of its round (the last to arrive); exactly one
    /// party per round is.
    pub fn is_leader(&self) -> bool {
        self.is_leader
    }

    /// This party's place in its round, `0..parties`, distinct for each party of the
    /// round: the order in which the parties arrived (parties that gave up before the
    /// barrier tripped do not count). The leader, the last to arrive, gets `parties - 1`.
    /// This is the value asyncio's `Barrier.wait()` returns.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// The barrier was broken (aborted or reset) before or while waiting: asyncio's
/// `BrokenBarrierError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenBarrier(());

impl fmt::Display for BrokenBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("barrier is broken")
    }
}

impl std::error::Error for BrokenBarrier {}
