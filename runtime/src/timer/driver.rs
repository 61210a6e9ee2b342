//! The runtime's timers: one wheel per worker plus one for threads that are not workers,
//! and the clock (real, or paused for tests).
//!
//! # Protocol
//! - A `Sleep` files its entry on the shard of the thread that first polls it (its worker's
//!   own shard, so registration takes an uncontended lock) and remembers (shard, key).
//! - Each shard publishes its next expiry in an atomic, so a worker checks for due timers
//!   with one load and one clock read, and computes how long it may park without a lock.
//! - A worker fires its own shard's due entries (at maintenance ticks and around parking)
//!   and the shared non-worker shard's. Firing marks the entry fired, then wakes its waker:
//!   the task is woken wherever it now runs, so a sleep that moved to another worker after
//!   a steal still fires on time.
//! - A dropped or reset `Sleep` removes its entry at once under that shard's lock, from
//!   whichever thread; the key is checked against the entry's identity so a stale key can
//!   never remove someone else's entry.
//! - A registration on the non-worker shard that moves its next expiry earlier unparks a
//!   worker, which recomputes its park timeout.

// The clock's atomics are plain std: they carry time, not a protocol. Everything the
// register / fire / remove protocol touches comes from the loom swap module.
use std::sync::atomic::{AtomicBool as StdAtomicBool, AtomicI64, AtomicU64 as StdAtomicU64};
use std::sync::Arc;
use std::task::Waker;

use crate::loom::{fence, lock, AtomicU64, AtomicU8, Mutex, Ordering};
use std::time::{Duration, Instant as StdInstant};

use crossbeam_utils::CachePadded;

use super::wheel::Wheel;

const NONE: u64 = u64::MAX;

const IDLE: u8 = 0;
const FIRED: u8 = 2;

/// State shared between one `Sleep` and the wheel entry that represents it.
pub(crate) struct TimerEntry {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl TimerEntry {
    #[cfg_attr(not(ringleader_loom), allow(dead_code))]
    pub(crate) fn new() -> Arc<TimerEntry> {
        TimerEntry::with_waker(None)
    }

    /// An entry that already holds the waker of the task filing it (no lock taken: nobody
    /// else can see the entry yet).
    pub(crate) fn with_waker(waker: Option<Waker>) -> Arc<TimerEntry> {
        Arc::new(TimerEntry {
            state: AtomicU8::new(IDLE),
            waker: Mutex::new(waker),
        })
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.state.load(Ordering::Acquire) == FIRED
    }

    /// Stores the waker; the caller re-checks `is_fired` afterwards (fire sets the state
    /// before taking the waker, so one of the two sides sees the other).
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut slot = lock(&self.waker);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn fire(&self) -> Option<Waker> {
        self.state.store(FIRED, Ordering::Release);
        lock(&self.waker).take()
    }
}

struct Shard {
    wheel: Mutex<Wheel<Arc<TimerEntry>>>,
    /// Next expiry in clock ms, or NONE.
    next: AtomicU64,
}

impl Shard {
    fn publish(&self, wheel: &Wheel<Arc<TimerEntry>>) {
        self.next
            .store(wheel.next_expiration().unwrap_or(NONE), Ordering::Release);
    }
}

/// The clock: real time, or a paused virtual time that only `advance` and auto-advance move.
pub(crate) struct Clock {
    base: StdInstant,
    paused: StdAtomicBool,
    /// Paused: virtual time since `base`, in ns.
    virtual_ns: StdAtomicU64,
    /// Unpaused: ns added to real time (virtual time gained while paused).
    offset_ns: AtomicI64,
}

impl Clock {
    fn new(start_paused: bool) -> Clock {
        Clock {
            base: StdInstant::now(),
            paused: StdAtomicBool::new(start_paused),
            virtual_ns: StdAtomicU64::new(0),
            offset_ns: AtomicI64::new(0),
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub(crate) fn now(&self) -> StdInstant {
        if self.is_paused() {
            self.base + Duration::from_nanos(self.virtual_ns.load(Ordering::Acquire))
        } else {
            let offset = self.offset_ns.load(Ordering::Relaxed);
            let real = StdInstant::now();
            if offset >= 0 {
                real + Duration::from_nanos(offset as u64)
            } else {
                real - Duration::from_nanos(offset.unsigned_abs())
            }
        }
    }

    /// ms since `base`, rounded down.
    pub(crate) fn now_ms(&self) -> u64 {
        self.instant_to_ms_floor(self.now())
    }

    fn instant_to_ms_floor(&self, t: StdInstant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    /// ms since `base`, rounded up: a deadline never fires before it.
    pub(crate) fn deadline_ms(&self, t: StdInstant) -> u64 {
        let d = t.saturating_duration_since(self.base);
        let ms = d.as_millis() as u64;
        if d > Duration::from_millis(ms) {
            ms + 1
        } else {
            ms
        }
    }

    pub(crate) fn pause(&self) {
        if !self.paused.load(Ordering::Acquire) {
            let now = self.now().saturating_duration_since(self.base);
            self.virtual_ns
                .store(now.as_nanos() as u64, Ordering::Release);
            self.paused.store(true, Ordering::Release);
        }
    }

    pub(crate) fn resume(&self) {
        if self.paused.load(Ordering::Acquire) {
            let virtual_ns = self.virtual_ns.load(Ordering::Acquire) as i64;
            let real_ns = self.base.elapsed().as_nanos() as i64;
            self.offset_ns
                .store(virtual_ns - real_ns, Ordering::Relaxed);
            self.paused.store(false, Ordering::Release);
        }
    }

    /// Moves paused time forward (never backward).
    pub(crate) fn advance_to_ms(&self, ms: u64) {
        let target = ms.saturating_mul(1_000_000);
        self.virtual_ns.fetch_max(target, Ordering::AcqRel);
    }

    pub(crate) fn advance(&self, d: Duration) {
        self.virtual_ns
            .fetch_add(d.as_nanos() as u64, Ordering::AcqRel);
    }
}

/// A worker's published park deadline: not parked.
const AWAKE: u64 = u64::MAX - 1;
/// Parked with no deadline.
const UNBOUNDED: u64 = u64::MAX;

/// All timers of one runtime.
pub(crate) struct TimeDriver {
    pub(crate) clock: Clock,
    shards: Box<[CachePadded<Shard>]>,
    /// Per worker: the clock ms by which it will wake from its current park (`AWAKE`,
    /// `UNBOUNDED`). A registration on the shared shard wakes a worker only if every worker
    /// is parked past the new deadline. A parking worker publishes `UNBOUNDED` before it
    /// reads the shard's next expiry and a registrant publishes the expiry before it reads
    /// these (SeqCst on both sides), so one of them always sees the other.
    wake_at: Box<[CachePadded<AtomicU64>]>,
    /// Armed timers, across shards (metrics).
    armed: StdAtomicU64,
}

/// A filed timer: enough to remove it.
pub(crate) struct Filed {
    shard: usize,
    key: usize,
}

impl TimeDriver {
    /// `workers` shards for the workers plus one for every other thread.
    pub(crate) fn new(workers: usize, start_paused: bool) -> TimeDriver {
        let clock = Clock::new(start_paused);
        TimeDriver {
            shards: (0..=workers)
                .map(|_| {
                    CachePadded::new(Shard {
                        wheel: Mutex::new(Wheel::new(0)),
                        next: AtomicU64::new(NONE),
                    })
                })
                .collect(),
            clock,
            armed: StdAtomicU64::new(0),
            wake_at: (0..workers)
                .map(|_| CachePadded::new(AtomicU64::new(AWAKE)))
                .collect(),
        }
    }

    /// A worker starts parking: until it publishes a deadline, registrants must wake it.
    pub(crate) fn parking(&self, worker: usize) {
        self.wake_at[worker].store(UNBOUNDED, Ordering::SeqCst);
    }

    /// The parking worker will wake by `ms` (None: not by any deadline).
    pub(crate) fn parked_until(&self, worker: usize, ms: Option<u64>) {
        self.wake_at[worker].store(ms.unwrap_or(UNBOUNDED), Ordering::SeqCst);
    }

    /// The worker is running again.
    pub(crate) fn unparked(&self, worker: usize) {
        self.wake_at[worker].store(AWAKE, Ordering::Release);
    }

    /// After a shared-shard registration for `deadline_ms`: the worker to wake, if every
    /// worker is parked past that deadline.
    pub(crate) fn worker_to_wake_for(&self, deadline_ms: u64) -> Option<usize> {
        fence(Ordering::SeqCst);
        let mut pick = None;
        for (i, slot) in self.wake_at.iter().enumerate() {
            match slot.load(Ordering::SeqCst) {
                // Someone is running: it sees the shard when it next parks or ticks.
                AWAKE => return None,
                at if at <= deadline_ms => return None,
                _ => pick = pick.or(Some(i)),
            }
        }
        pick
    }

    /// The shard for threads that are not workers.
    pub(crate) fn external_shard(&self) -> usize {
        self.shards.len() - 1
    }

    pub(crate) fn armed(&self) -> u64 {
        self.armed.load(Ordering::Relaxed)
    }

    /// Files `entry` to fire at `deadline_ms` on `shard`. Returns where it was filed, and
    /// whether the shard's next expiry moved earlier (the caller may need to wake a
    /// worker).
    pub(crate) fn register(
        &self,
        shard: usize,
        deadline_ms: u64,
        entry: Arc<TimerEntry>,
    ) -> (Filed, bool) {
        let s = &self.shards[shard];
        let mut wheel = lock(&s.wheel);
        let before = s.next.load(Ordering::Relaxed);
        let key = wheel.insert(deadline_ms, entry);
        s.publish(&wheel);
        let earlier = s.next.load(Ordering::Relaxed) < before;
        self.armed.fetch_add(1, Ordering::Relaxed);
        (Filed { shard, key }, earlier)
    }

    /// Removes a filed timer if it is still filed for `entry`.
    pub(crate) fn deregister(&self, filed: &Filed, entry: &Arc<TimerEntry>) {
        let s = &self.shards[filed.shard];
        let mut wheel = lock(&s.wheel);
        if wheel.get(filed.key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            wheel.remove(filed.key);
            s.publish(&wheel);
            self.armed.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The next expiry of `shard` in ms, without locking.
    pub(crate) fn next_expiry_ms(&self, shard: usize) -> Option<u64> {
        match self.shards[shard].next.load(Ordering::Acquire) {
            NONE => None,
            ms => Some(ms),
        }
    }

    /// The earliest expiry over all shards.
    pub(crate) fn earliest_expiry_ms(&self) -> Option<u64> {
        (0..self.shards.len())
            .filter_map(|i| self.next_expiry_ms(i))
            .min()
    }

    /// Fires what is due on `shard`; cheap when nothing is. Returns how many fired.
    pub(crate) fn process(&self, shard: usize, now_ms: u64) -> usize {
        let s = &self.shards[shard];
        if s.next.load(Ordering::Acquire) > now_ms {
            return 0;
        }
        let mut wakers = Vec::new();
        let mut fired = 0;
        {
            let mut wheel = lock(&s.wheel);
            wheel.poll_expired(now_ms, |entry| {
                fired += 1;
                if let Some(w) = entry.fire() {
                    wakers.push(w);
                }
            });
            s.publish(&wheel);
        }
        self.armed.fetch_sub(fired as u64, Ordering::Relaxed);
        for w in wakers {
            w.wake();
        }
        fired
    }

    /// Fires what is due on every shard.
    pub(crate) fn process_all(&self, now_ms: u64) -> usize {
        (0..self.shards.len())
            .map(|i| self.process(i, now_ms))
            .sum()
    }

    /// How long a worker that owns `shard` may park: until its own or the shared shard's
    /// next expiry.
    pub(crate) fn park_timeout(&self, shard: usize) -> Option<Duration> {
        let next = [
            self.next_expiry_ms(shard),
            self.next_expiry_ms(self.external_shard()),
        ]
        .into_iter()
        .flatten()
        .min()?;
        let now = self.clock.now_ms();
        Some(Duration::from_millis(next.saturating_sub(now)))
    }
}
