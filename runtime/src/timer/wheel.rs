//! A hierarchical timing wheel: 6 levels of 64 slots, 1 ms resolution.
//!
//! Level `l` slots are `64^l` ms wide, so the wheel spans 63 top-level slots (about 2.1
//! years); farther deadlines are parked in the last level and re-filed as time approaches
//! them.
//! Entries live in a slab and each slot is an intrusive doubly linked list of slab keys,
//! so insert and cancel are O(1). A 64-bit occupancy mask per level finds the next
//! non-empty slot with one rotate and one count of trailing zeros.
//!
//! An entry is filed by the highest 6-bit group in which its deadline differs from the
//! wheel's current time. When time reaches a slot of level `l > 0`, its entries are re-filed
//! (they now land on lower levels); entries of a level-0 slot, and any entry whose deadline
//! has passed, expire. The idea is the classic one (Varghese and Lauck, "Hashed and
//! hierarchical timing wheels", 1987).

use slab::Slab;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: u64 = 1 << SLOT_BITS;
/// Largest distance from the current time that the wheel files exactly: 63 top-level
/// slots, so a capped entry never lands in the top level's current slot (where it would be
/// taken as due and re-filed over and over).
const MAX_SPAN: u64 = (SLOTS - 1) << (SLOT_BITS * (LEVELS as u32 - 1));

/// A slab key or none, in 4 bytes: the levels' 768 list ends fit in 3 KiB instead of 12,
/// and an entry's links in 8 bytes. (A wheel would need 4 billion timers, hundreds of GB,
/// before a key reached `NIL`.)
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Link(u32);

impl Link {
    const NIL: Link = Link(u32::MAX);

    fn to(key: usize) -> Link {
        debug_assert!(key < u32::MAX as usize, "timer slab key out of range");
        Link(key as u32)
    }

    fn get(self) -> Option<usize> {
        (self != Link::NIL).then_some(self.0 as usize)
    }
}

struct Entry<T> {
    deadline: u64,
    prev: Link,
    next: Link,
    level: u8,
    slot: u8,
    value: T,
}

#[derive(Clone, Copy)]
struct Level {
    occupied: u64,
    heads: [Link; SLOTS as usize],
    /// Each slot's list is FIFO (appended at the tail), so timers due in the same
    /// millisecond fire in the order they were filed, as asyncio's do.
    tails: [Link; SLOTS as usize],
}

/// A timing wheel holding values of type `T` keyed by a deadline in ms.
pub(crate) struct Wheel<T> {
    /// The wheel's current time, in ms; nothing expires before it.
    elapsed: u64,
    levels: [Level; LEVELS],
    entries: Slab<Entry<T>>,
}

#[inline]
fn level_for(elapsed: u64, deadline: u64) -> usize {
    let capped = deadline.min(elapsed + MAX_SPAN);
    let masked = (elapsed ^ capped) | (SLOTS - 1);
    let significant = 63 - masked.leading_zeros();
    ((significant / SLOT_BITS) as usize).min(LEVELS - 1)
}

#[inline]
fn slot_for(elapsed: u64, deadline: u64, level: usize) -> usize {
    let capped = deadline.min(elapsed + MAX_SPAN);
    ((capped >> (level as u32 * SLOT_BITS)) & (SLOTS - 1)) as usize
}

impl<T> Wheel<T> {
    pub(crate) fn new(start: u64) -> Wheel<T> {
        Wheel {
            elapsed: start,
            levels: [Level {
                occupied: 0,
                heads: [Link::NIL; SLOTS as usize],
                tails: [Link::NIL; SLOTS as usize],
            }; LEVELS],
            entries: Slab::new(),
        }
    }

    /// Entries filed.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Files `value` to expire at `deadline`. A deadline already past expires at the next
    /// `poll_expired`. Returns the key, and when the slot it landed in is due: the wheel's
    /// next expiration is now the earlier of that and the one before the insert.
    #[inline]
    pub(crate) fn insert(&mut self, deadline: u64, value: T) -> (usize, u64) {
        let key = self.entries.insert(Entry {
            deadline,
            prev: Link::NIL,
            next: Link::NIL,
            level: 0,
            slot: 0,
            value,
        });
        let (level, slot) = self.link(key);
        (key, self.slot_time(level, slot))
    }

    /// When slot `slot` of `level` is next due (never earlier than `elapsed`).
    #[inline]
    fn slot_time(&self, level: usize, slot: usize) -> u64 {
        let shift = level as u32 * SLOT_BITS;
        let slot_width = 1u64 << shift;
        let level_width = slot_width << SLOT_BITS;
        let now_slot = (self.elapsed >> shift) & (SLOTS - 1);
        let slot = slot as u64;
        let level_start = self.elapsed & !(level_width - 1);
        let mut when = level_start + slot * slot_width;
        // A slot behind the current one comes round in the next turn of this level.
        if slot < now_slot {
            when += level_width;
        }
        when.max(self.elapsed)
    }

    #[inline]
    fn link(&mut self, key: usize) -> (usize, usize) {
        let deadline = self.entries[key].deadline.max(self.elapsed);
        let level = level_for(self.elapsed, deadline);
        let slot = slot_for(self.elapsed, deadline, level);
        let tail = self.levels[level].tails[slot];
        {
            let entry = &mut self.entries[key];
            entry.level = level as u8;
            entry.slot = slot as u8;
            entry.prev = tail;
            entry.next = Link::NIL;
        }
        match tail.get() {
            Some(t) => self.entries[t].next = Link::to(key),
            None => self.levels[level].heads[slot] = Link::to(key),
        }
        self.levels[level].tails[slot] = Link::to(key);
        self.levels[level].occupied |= 1 << slot;
        (level, slot)
    }

    /// Unlinks `key`; returns whether its slot became empty (only then can the next
    /// expiration change).
    #[inline]
    fn unlink(&mut self, key: usize) -> bool {
        let (prev, next, level, slot) = {
            let e = &self.entries[key];
            (e.prev, e.next, e.level as usize, e.slot as usize)
        };
        match prev.get() {
            Some(p) => self.entries[p].next = next,
            None => self.levels[level].heads[slot] = next,
        }
        match next.get() {
            Some(n) => self.entries[n].prev = prev,
            None => self.levels[level].tails[slot] = prev,
        }
        if self.levels[level].heads[slot] == Link::NIL {
            self.levels[level].occupied &= !(1 << slot);
            return true;
        }
        false
    }

    /// Removes an entry, returning its value and whether the next expiration may have
    /// moved (its slot emptied); `None` if `key` is not filed.
    #[inline]
    pub(crate) fn remove(&mut self, key: usize) -> Option<(T, bool)> {
        if !self.entries.contains(key) {
            return None;
        }
        let emptied = self.unlink(key);
        Some((self.entries.remove(key).value, emptied))
    }

    /// Access to a filed value (to check that a key still belongs to its owner, and to
    /// update it in place).
    #[inline]
    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.entries.get_mut(key).map(|e| &mut e.value)
    }

    /// The time (ms) at which the next slot is due, or `None` if the wheel is empty. Never
    /// earlier than `elapsed`.
    pub(crate) fn next_expiration(&self) -> Option<u64> {
        self.next_slot().map(|(_, _, when)| when)
    }

    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        let mut best: Option<(usize, usize, u64)> = None;
        for level in 0..LEVELS {
            let occupied = self.levels[level].occupied;
            if occupied == 0 {
                continue;
            }
            let shift = level as u32 * SLOT_BITS;
            let now_slot = (self.elapsed >> shift) & (SLOTS - 1);
            let distance = occupied.rotate_right(now_slot as u32).trailing_zeros() as u64;
            let slot = ((now_slot + distance) & (SLOTS - 1)) as usize;
            let when = self.slot_time(level, slot);
            if best.is_none_or(|(_, _, b)| when < b) {
                best = Some((level, slot, when));
            }
        }
        best
    }

    /// Advances to `now` and hands every entry whose deadline is `<= now` to `expired`.
    pub(crate) fn poll_expired(&mut self, now: u64, mut expired: impl FnMut(T)) {
        while let Some((level, slot, when)) = self.next_slot() {
            if when > now {
                break;
            }
            self.elapsed = self.elapsed.max(when);
            // Take the whole slot, then expire or re-file each entry.
            let mut cursor =
                std::mem::replace(&mut self.levels[level].heads[slot], Link::NIL).get();
            self.levels[level].tails[slot] = Link::NIL;
            self.levels[level].occupied &= !(1 << slot);
            while let Some(key) = cursor {
                cursor = self.entries[key].next.get();
                if self.entries[key].deadline <= self.elapsed || level == 0 {
                    expired(self.entries.remove(key).value);
                } else {
                    self.link(key);
                }
            }
        }
        self.elapsed = self.elapsed.max(now);
    }
}

#[cfg(all(test, not(ringleader_loom)))]
mod tests {
    use super::*;

    /// A small deterministic generator for the tests.
    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn entries_expire_in_deadline_order_never_early() {
        let mut wheel = Wheel::new(0);
        let mut seed = 7;
        let mut deadlines = Vec::new();
        for i in 0..100_000u64 {
            let d = lcg(&mut seed) % 5_000_000; // up to ~1.4 hours, across levels
            deadlines.push(d);
            wheel.insert(d, (d, i));
        }
        let mut fired = Vec::with_capacity(deadlines.len());
        let mut now = 0;
        while wheel.len() > 0 {
            let next = wheel.next_expiration().unwrap();
            assert!(next >= now);
            now = next;
            wheel.poll_expired(now, |(d, i)| {
                assert!(d <= now, "entry {i} with deadline {d} fired early at {now}");
                fired.push((now, d));
            });
        }
        assert_eq!(fired.len(), 100_000);
        // Each fires exactly at its deadline (1 ms resolution), so firing order is deadline
        // order.
        for (at, d) in &fired {
            assert_eq!(at, d);
        }
        assert!(fired.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn insert_reports_how_the_next_expiration_moves() {
        let mut wheel = Wheel::new(0);
        let mut seed = 3;
        let mut now = 0;
        for round in 0..2_000u64 {
            let before = wheel.next_expiration().unwrap_or(u64::MAX);
            let d = now + lcg(&mut seed) % 300_000;
            let (_, when) = wheel.insert(d, round);
            assert_eq!(wheel.next_expiration(), Some(before.min(when)));
            if round % 7 == 0 {
                now += lcg(&mut seed) % 5_000;
                wheel.poll_expired(now, |_| {});
            }
        }
    }

    #[test]
    fn removal_of_random_subsets_leaves_the_rest() {
        let mut wheel = Wheel::new(1_000);
        let mut seed = 11;
        let keys: Vec<_> = (0..10_000u64)
            .map(|i| {
                let d = 1_000 + lcg(&mut seed) % 100_000;
                (wheel.insert(d, i).0, i)
            })
            .collect();
        let mut kept = std::collections::HashSet::new();
        for (key, i) in keys {
            if lcg(&mut seed) % 2 == 0 {
                assert_eq!(wheel.remove(key).map(|(v, _)| v), Some(i));
                assert_eq!(wheel.remove(key), None);
            } else {
                kept.insert(i);
            }
        }
        let mut fired = std::collections::HashSet::new();
        wheel.poll_expired(u64::MAX / 2, |i| {
            fired.insert(i);
        });
        assert_eq!(fired, kept);
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn past_and_far_deadlines() {
        let mut wheel = Wheel::new(500);
        wheel.insert(10, "past");
        wheel.insert(500 + MAX_SPAN * 3, "far");
        let mut out = Vec::new();
        wheel.poll_expired(500, |v| out.push(v));
        assert_eq!(out, vec!["past"]);
        wheel.poll_expired(500 + MAX_SPAN * 3 - 1, |v| out.push(v));
        assert_eq!(out.len(), 1);
        wheel.poll_expired(500 + MAX_SPAN * 3, |v| out.push(v));
        assert_eq!(out, vec!["past", "far"]);
    }

    #[test]
    fn equal_deadlines_expire_in_insertion_order_even_after_cascading() {
        let mut wheel = Wheel::new(0);
        // Filed far ahead (a higher level), then near (level 0 once time has moved), all
        // due at the same millisecond: they must come out in filing order.
        for i in 0..5u64 {
            wheel.insert(5_000, i);
        }
        let mut out = Vec::new();
        wheel.poll_expired(4_990, |v| out.push(v));
        assert!(out.is_empty());
        for i in 5..10u64 {
            wheel.insert(5_000, i);
        }
        // Removing from the middle and the ends keeps the rest in order.
        let (k, _) = wheel.insert(5_000, 99);
        assert_eq!(wheel.remove(k).map(|(v, _)| v), Some(99));
        wheel.poll_expired(5_000, |v| out.push(v));
        assert_eq!(out, (0..10).collect::<Vec<_>>());
    }
}
