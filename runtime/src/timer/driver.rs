//! The runtime's timers: one wheel per worker plus one for threads that are not workers,
//! and the clock (real, or paused for tests).
//!
//! # Protocol
//! - A `Sleep` files its entry on the shard of the thread that first polls it (its worker's
//!   own shard, so registration takes an uncontended lock) and remembers (shard, key,
//!   stamp). The entry (waker and stamp) lives in the shard's wheel, in a slab slot that
//!   later filings reuse: filing allocates nothing once the slab has grown, and the `Sleep`
//!   and the wheel share no state outside the shard's lock.
//! - Everything about an entry happens under its shard's lock: filing, a re-poll storing a
//!   new waker (from whichever worker now runs the task), firing (which removes it) and
//!   removal. A `Sleep` learns that it fired from its entry being gone: no filing with
//!   its stamp is left in the wheel.
//! - Each shard publishes its next expiry in an atomic, so a worker checks for due timers
//!   with one load and one clock read, and computes how long it may park without a lock.
//!   The published expiry is never later than the wheel's: filing lowers it, firing sets
//!   it exactly, and removal leaves it alone while the clock runs in real time. An early
//!   value costs one wake-up that finds nothing due (and then publishes the exact value);
//!   it saves the removal a rescan, and the next filing the wake-up check below (a filing
//!   at or after the published expiry needs none: every parked worker wakes by then).
//!   With a paused clock, whose auto-advance jumps to the published expiry, removal
//!   publishes the exact value, and pausing republishes every shard.
//! - A worker fires its own shard's due entries (at maintenance ticks and around parking)
//!   and the shared non-worker shard's. Firing removes the entry, takes its waker, and
//!   wakes it after the lock is released:
//!   the task is woken wherever it now runs, so a sleep that moved to another worker after
//!   a steal still fires on time.
//! - A dropped or reset `Sleep` removes its entry at once under that shard's lock, from
//!   whichever thread; the key is checked against the entry's stamp so a stale key can
//!   never remove someone else's entry.
//! - A registration on the non-worker shard that moves its next expiry earlier unparks a
//!   worker, which recomputes its park timeout, unless some worker is awake or will wake
//!   by the new deadline. A worker's published wake-up (`wake_at`) is a real-time promise:
//!   while the clock is paused it covers no deadline (the paused clock moves only when a
//!   worker passes through park and auto-advances), so then only an awake worker spares
//!   the registrant the unpark.
//! - Pausing or resuming the clock unparks every worker (`time::pause`, `time::resume`):
//!   a worker parked until a real-time deadline must re-park under the paused rules
//!   (auto-advance), and one parked with no timeout on a paused clock must take up its
//!   timers' real deadlines again. The unpark is sticky, so a worker between its clock
//!   check and its park does not miss it.

// The clock's time atomics are plain std: they carry time, not a protocol. Everything the
// register / fire / remove protocol touches comes from the loom swap module, and so does
// the paused flag (the pause / park / filing protocol reads it).
use std::sync::atomic::{AtomicI64, AtomicU64 as StdAtomicU64};
use std::task::Waker;

use crate::loom::{fence, lock, AtomicBool, AtomicU64, Mutex, Ordering};
use std::time::{Duration, Instant as StdInstant};

use crossbeam_utils::CachePadded;

use super::wheel::Wheel;

const NONE: u64 = u64::MAX;

/// What the wheel holds for one filed `Sleep`: its waker, and the stamp that tells this
/// filing apart from a later one that reuses the same slab key.
struct TimerSlot {
    stamp: u64,
    waker: Option<Waker>,
}

/// One shard's wheel and the stamp counter, under the shard's lock.
struct Timers {
    wheel: Wheel<TimerSlot>,
    /// The stamp the next filing gets; never reused within a shard.
    next_stamp: u64,
}

impl Timers {
    /// The slot `filed` names, if it is still filed (not fired, not removed).
    #[inline]
    fn slot_mut(&mut self, filed: &Filed) -> Option<&mut TimerSlot> {
        self.wheel
            .get_mut(filed.key)
            .filter(|slot| slot.stamp == filed.stamp)
    }
}

struct Shard {
    timers: Mutex<Timers>,
    /// Next expiry in clock ms, or NONE.
    next: AtomicU64,
}

impl Shard {
    fn publish(&self, wheel: &Wheel<TimerSlot>) {
        let next = wheel.next_expiration().unwrap_or(NONE);
        // Skip the store when nothing changed (a filing after a later one, a removal that
        // leaves the earliest slot filled): the line stays shared with readers.
        if self.next.load(Ordering::Relaxed) != next {
            self.next.store(next, Ordering::Release);
        }
    }
}

/// Set once any runtime's clock is paused, never cleared. Until then every runtime's clock
/// reads real time, so [`Instant::now`](super::Instant::now) skips looking up the current
/// runtime. A plain std atomic: it only ever goes one way, and a thread that learns of a
/// pause (through whatever synchronisation) also sees this store, which precedes it.
static ANY_CLOCK_PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether some runtime's clock has ever been paused (if not, every clock is real time).
#[inline]
pub(crate) fn any_clock_paused() -> bool {
    ANY_CLOCK_PAUSED.load(std::sync::atomic::Ordering::Relaxed)
}

fn note_clock_paused() {
    ANY_CLOCK_PAUSED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The clock: real time, or a paused virtual time that only `advance` and auto-advance move.
pub(crate) struct Clock {
    base: StdInstant,
    paused: AtomicBool,
    /// Paused: virtual time since `base`, in ns.
    virtual_ns: StdAtomicU64,
    /// Unpaused: ns added to real time (virtual time gained while paused).
    offset_ns: AtomicI64,
}

impl Clock {
    fn new(start_paused: bool) -> Clock {
        if start_paused {
            note_clock_paused();
        }
        Clock {
            base: StdInstant::now(),
            paused: AtomicBool::new(start_paused),
            virtual_ns: StdAtomicU64::new(0),
            offset_ns: AtomicI64::new(0),
        }
    }

    #[inline]
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn now(&self) -> StdInstant {
        if self.is_paused() {
            self.base + Duration::from_nanos(self.virtual_ns.load(Ordering::Acquire))
        } else {
            let offset = self.offset_ns.load(Ordering::Relaxed);
            let real = StdInstant::now();
            if offset == 0 {
                real // never paused: no offset to add (the common case, on every `sleep`)
            } else if offset > 0 {
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
    #[inline]
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
            note_clock_paused();
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
}

/// A filed timer: where it is, and the stamp that proves a slot there is still this
/// filing (the slab key is reused once the timer fired or was removed).
#[derive(Debug)]
pub(crate) struct Filed {
    shard: usize,
    key: usize,
    stamp: u64,
}

impl TimeDriver {
    /// `workers` shards for the workers plus one for every other thread.
    pub(crate) fn new(workers: usize, start_paused: bool) -> TimeDriver {
        let clock = Clock::new(start_paused);
        TimeDriver {
            shards: (0..=workers)
                .map(|_| {
                    CachePadded::new(Shard {
                        timers: Mutex::new(Timers {
                            wheel: Wheel::new(0),
                            next_stamp: 0,
                        }),
                        next: AtomicU64::new(NONE),
                    })
                })
                .collect(),
            clock,
            wake_at: (0..workers)
                .map(|_| CachePadded::new(AtomicU64::new(AWAKE)))
                .collect(),
        }
    }

    /// A worker starts parking: until it publishes a deadline, registrants must wake it.
    ///
    /// The fence pairs with the one in [`TimeDriver::worker_to_wake_for`]: either the
    /// parking worker's next reads of the published expiries see a registrant's filing, or
    /// that registrant sees this worker parking.
    pub(crate) fn parking(&self, worker: usize) {
        self.wake_at[worker].store(UNBOUNDED, Ordering::SeqCst);
        fence(Ordering::SeqCst);
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
    /// worker is parked past that deadline (on a paused clock: if every worker is parked).
    pub(crate) fn worker_to_wake_for(&self, deadline_ms: u64) -> Option<usize> {
        fence(Ordering::SeqCst);
        // A parked worker's wake-up time is real time, which a paused clock never reaches:
        // auto-advance needs a worker to pass through park, so one must be woken.
        let paused = self.clock.is_paused();
        let mut pick = None;
        for (i, slot) in self.wake_at.iter().enumerate() {
            match slot.load(Ordering::SeqCst) {
                // Someone is running: it sees the shard when it next parks or ticks.
                AWAKE => return None,
                at if at <= deadline_ms && !paused => return None,
                _ => pick = pick.or(Some(i)),
            }
        }
        pick
    }

    /// The shard for threads that are not workers.
    #[inline]
    pub(crate) fn external_shard(&self) -> usize {
        self.shards.len() - 1
    }

    /// Timers filed across shards (metrics: takes each shard's lock once).
    pub(crate) fn armed(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| lock(&s.timers).wheel.len() as u64)
            .sum()
    }

    /// Files a timer due at `deadline_ms` on `shard`, to wake `waker`. Returns where it
    /// was filed, and whether the shard's next expiry moved earlier (the caller may need
    /// to wake a worker).
    #[inline]
    pub(crate) fn register(&self, shard: usize, deadline_ms: u64, waker: Waker) -> (Filed, bool) {
        let s = &self.shards[shard];
        let mut timers = lock(&s.timers);
        let stamp = timers.next_stamp;
        timers.next_stamp += 1;
        let (key, due) = timers.wheel.insert(
            deadline_ms,
            TimerSlot {
                stamp,
                waker: Some(waker),
            },
        );
        // The wheel's next expiration is now the earlier of the published one and the new
        // entry's slot (`next` is written only under this lock).
        let earlier = due < s.next.load(Ordering::Relaxed);
        if earlier {
            s.next.store(due, Ordering::Release);
        }
        (Filed { shard, key, stamp }, earlier)
    }

    /// A re-poll of a filed timer: `true` if it has fired; otherwise stores `waker` (unless
    /// the stored one wakes the same task) for the firing to wake.
    pub(crate) fn poll_filed(&self, filed: &Filed, waker: &Waker) -> bool {
        let mut timers = lock(&self.shards[filed.shard].timers);
        match timers.slot_mut(filed) {
            Some(slot) => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    slot.waker = Some(waker.clone());
                }
                false
            }
            None => true,
        }
    }

    /// Whether a filed timer has fired (it is no longer in its wheel).
    pub(crate) fn is_fired(&self, filed: &Filed) -> bool {
        lock(&self.shards[filed.shard].timers)
            .slot_mut(filed)
            .is_none()
    }

    /// Removes a filed timer if it has not fired. Its waker is dropped after the lock is
    /// released.
    #[inline]
    pub(crate) fn deregister(&self, filed: &Filed) {
        let s = &self.shards[filed.shard];
        let mut timers = lock(&s.timers);
        if timers.slot_mut(filed).is_some() {
            let removed = timers.wheel.remove(filed.key);
            // In real time the published expiry may stay early (see the protocol): only a
            // paused clock, whose auto-advance jumps to it, needs it exact.
            if removed.as_ref().is_some_and(|(_, emptied)| *emptied) && self.clock.is_paused() {
                s.publish(&timers.wheel);
            }
            drop(timers);
            drop(removed);
        }
    }

    /// Pauses the clock, and makes every shard's published expiry exact again (auto-advance
    /// jumps to it, so it must not name a removed timer). The caller then unparks every
    /// worker (see the protocol).
    pub(crate) fn pause(&self) {
        self.clock.pause();
        for s in self.shards.iter() {
            let timers = lock(&s.timers);
            s.publish(&timers.wheel);
        }
    }

    /// Resumes real time. The caller then unparks every worker (see the protocol).
    pub(crate) fn resume(&self) {
        self.clock.resume();
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
            let mut timers = lock(&s.timers);
            timers.wheel.poll_expired(now_ms, |slot| {
                fired += 1;
                if let Some(w) = slot.waker {
                    wakers.push(w);
                }
            });
            s.publish(&timers.wheel);
        }
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

#[cfg(all(test, not(ringleader_loom)))]
mod tests {
    use super::*;

    #[test]
    fn removal_keeps_an_early_hint_in_real_time_and_pausing_makes_it_exact() {
        let driver = TimeDriver::new(1, false);
        let shard = driver.external_shard();
        let far = driver.clock.now_ms() + 3_600_000;
        let (filed, earlier) = driver.register(shard, far, Waker::noop().clone());
        assert!(earlier);
        driver.deregister(&filed);
        assert_eq!(driver.armed(), 0);
        // Running clock: the hint stays (at or before the removed deadline).
        let hint = driver.next_expiry_ms(shard).expect("early hint kept");
        assert!(hint <= far);
        // A later filing is not "earlier" than the hint: no wake-up check needed.
        let (later, earlier) = driver.register(shard, far + 10, Waker::noop().clone());
        assert!(!earlier);
        driver.deregister(&later);
        // Paused: auto-advance reads the expiry, so it must name a live timer or none.
        driver.pause();
        assert_eq!(driver.next_expiry_ms(shard), None);
        let (filed, _) = driver.register(shard, far, Waker::noop().clone());
        assert!(driver.next_expiry_ms(shard).is_some());
        driver.deregister(&filed);
        assert_eq!(driver.next_expiry_ms(shard), None);
        // A due timer fires (its waker taken) and a re-poll then sees it fired.
        let now = driver.clock.now_ms();
        let (due, _) = driver.register(shard, now, Waker::noop().clone());
        assert!(!driver.poll_filed(&due, Waker::noop()));
        assert_eq!(driver.process(shard, now), 1);
        assert!(driver.poll_filed(&due, Waker::noop()));
        assert!(driver.is_fired(&due));
    }
}
