//! A test-and-set lock for the [`StreamWriter`](super::StreamWriter)'s state.
//!
//! # Why not `std::sync::Mutex`
//! The writer takes its lock once per `write` (one line of a line server), and the lock is
//! almost never contended: the only other party is the flush task, which takes it a few
//! times per flushed batch. std's futex mutex spends two atomic read-modify-writes per
//! round trip (a compare-exchange to lock, a swap to unlock: the swap learns whether a
//! sleeper must be woken). This lock spends one: it never sleeps in the kernel, so unlocking
//! is a plain release store. The `lines` benchmark measured the two RMWs at ~80 % of `write`.
//!
//! # Protocol
//! `locked` is the whole state. `lock` succeeds by changing it from `false` to `true`
//! (acquire: the holder sees everything the previous holder wrote); the guard's drop stores
//! `false` (release: the next holder sees this holder's writes). A waiter spins briefly,
//! then yields its thread to the OS between attempts, so a preempted holder gets the CPU
//! back. Critical sections must be short and never wait (no `.await`, no blocking call):
//! the writer's append to or swap of a buffer, flag changes, taking the wakers out (they are
//! woken after the release). No user code runs under the lock. If a section ever panicked,
//! the guard's drop still unlocks (the state is then whatever the section left, as with a
//! poisoned mutex recovered with `into_inner`).
//!
//! # Model
//! The lock is written once, generic over its two primitives ([`Prims`]): std's atomic and
//! cell in the crate ([`Std`]), loom's in the `loom_models` test module, which checks
//! mutual exclusion and the visibility of the protected value between holders (loom
//! tracks every access to the cell) for two contenders, each locking once or twice. It runs in the normal
//! `cargo test -p ringleader-io` (loom is a dev-dependency; the model does not need the
//! crate built with `--cfg ringleader_loom`, which the driver does not support).

use std::marker::PhantomData;

/// The primitives the lock is built from.
pub(crate) trait Prims {
    /// The lock flag.
    type Flag: Flag;
    /// The cell holding the value.
    type Cell<T>: Cell<T>;
    /// Called between failed attempts while the lock is held by another.
    fn relax(spins: &mut u32);
}

/// An atomic boolean with the three operations the lock needs.
pub(crate) trait Flag {
    fn new(v: bool) -> Self;
    /// `false` → `true` with acquire ordering; whether it succeeded.
    fn try_set(&self) -> bool;
    fn is_set(&self) -> bool;
    /// Stores `false` with release ordering.
    fn clear(&self);
}

/// An `UnsafeCell` and the pointer a guard holds while it has the lock.
pub(crate) trait Cell<T> {
    type Ptr;
    fn new(value: T) -> Self;
    fn ptr(&self) -> Self::Ptr;
    /// # Safety
    /// No other reference to the value may be live while the returned one is.
    // An `UnsafeCell` accessor: the exclusivity is the caller's contract (the lock's).
    #[allow(clippy::mut_from_ref)]
    unsafe fn deref(ptr: &Self::Ptr) -> &mut T;
}

/// std's primitives: the lock the crate uses.
pub(crate) struct Std;

impl Prims for Std {
    type Flag = std::sync::atomic::AtomicBool;
    type Cell<T> = std::cell::UnsafeCell<T>;

    #[inline]
    fn relax(spins: &mut u32) {
        if *spins < 64 {
            *spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

impl Flag for std::sync::atomic::AtomicBool {
    #[inline]
    fn new(v: bool) -> Self {
        std::sync::atomic::AtomicBool::new(v)
    }
    #[inline]
    fn try_set(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }
    #[inline]
    fn is_set(&self) -> bool {
        self.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[inline]
    fn clear(&self) {
        self.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl<T> Cell<T> for std::cell::UnsafeCell<T> {
    type Ptr = *mut T;
    #[inline]
    fn new(value: T) -> Self {
        std::cell::UnsafeCell::new(value)
    }
    #[inline]
    fn ptr(&self) -> *mut T {
        self.get()
    }
    #[inline]
    #[allow(clippy::mut_from_ref)]
    unsafe fn deref(ptr: &*mut T) -> &mut T {
        // SAFETY: the pointer comes from a live cell (the guard borrows the lock), and the
        // caller guarantees no other reference to the value is live.
        unsafe { &mut **ptr }
    }
}

pub(crate) struct SpinLock<T, P: Prims = Std> {
    locked: P::Flag,
    value: P::Cell<T>,
}

// SAFETY: the value is only reached through a `SpinGuard`, and at most one guard exists at
// a time (the `locked` flag, see the module's protocol), so sharing the lock between
// threads hands the value from thread to thread, never to two at once: `T: Send` suffices.
unsafe impl<T: Send, P: Prims> Sync for SpinLock<T, P>
where
    P::Flag: Sync,
    P::Cell<T>: Send,
{
}

impl<T, P: Prims> SpinLock<T, P> {
    pub(crate) fn new(value: T) -> Self {
        SpinLock {
            locked: P::Flag::new(false),
            value: P::Cell::new(value),
        }
    }

    /// Takes the lock, spinning (then yielding the thread) while another holder has it.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T, P> {
        if !self.locked.try_set() {
            self.lock_contended();
        }
        SpinGuard {
            lock: self,
            ptr: self.value.ptr(),
            _not_send: PhantomData,
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0;
        loop {
            P::relax(&mut spins);
            if !self.locked.is_set() && self.locked.try_set() {
                return;
            }
        }
    }
}

/// The held lock; dropping it unlocks.
pub(crate) struct SpinGuard<'a, T, P: Prims = Std> {
    lock: &'a SpinLock<T, P>,
    ptr: <P::Cell<T> as Cell<T>>::Ptr,
    /// Unlocked on the thread that locked it, as std's guard.
    _not_send: PhantomData<*const ()>,
}

impl<T, P: Prims> std::ops::Deref for SpinGuard<'_, T, P> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (the lock is held until it drops), and the
        // reference borrows the guard, so no `&mut` to the value can be live beside it.
        unsafe { P::Cell::<T>::deref(&self.ptr) }
    }
}

impl<T, P: Prims> std::ops::DerefMut for SpinGuard<'_, T, P> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one, and it is borrowed mutably: this is the only
        // reference to the value.
        unsafe { P::Cell::<T>::deref(&self.ptr) }
    }
}

impl<T, P: Prims> Drop for SpinGuard<'_, T, P> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.clear();
    }
}

#[cfg(test)]
pub(crate) mod loom_models {
    use super::{Cell, Flag, Prims, SpinLock};
    use loom::sync::Arc;

    /// loom's primitives: every access to the cell is checked against the happens-before
    /// order the flag creates.
    pub(crate) struct Loom;

    impl Prims for Loom {
        type Flag = loom::sync::atomic::AtomicBool;
        type Cell<T> = loom::cell::UnsafeCell<T>;
        fn relax(_spins: &mut u32) {
            loom::thread::yield_now();
        }
    }

    impl Flag for loom::sync::atomic::AtomicBool {
        fn new(v: bool) -> Self {
            loom::sync::atomic::AtomicBool::new(v)
        }
        fn try_set(&self) -> bool {
            use loom::sync::atomic::Ordering;
            self.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        }
        fn is_set(&self) -> bool {
            self.load(loom::sync::atomic::Ordering::Relaxed)
        }
        fn clear(&self) {
            self.store(false, loom::sync::atomic::Ordering::Release);
        }
    }

    impl<T> Cell<T> for loom::cell::UnsafeCell<T> {
        type Ptr = loom::cell::MutPtr<T>;
        fn new(value: T) -> Self {
            loom::cell::UnsafeCell::new(value)
        }
        fn ptr(&self) -> Self::Ptr {
            // loom checks this access against every other from here until the pointer drops.
            self.get_mut()
        }
        #[allow(clippy::mut_from_ref)]
        unsafe fn deref(ptr: &Self::Ptr) -> &mut T {
            // SAFETY: the caller guarantees exclusivity; loom verifies it.
            unsafe { ptr.deref() }
        }
    }

    /// Every increment lands: no two holders at once, and each sees the previous one's
    /// write. Two threads, each taking the lock `rounds` times (so the lock is handed over
    /// in both directions and retaken after a release).
    fn contenders(rounds: usize) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(move || {
            let lock = Arc::new(SpinLock::<usize, Loom>::new(0));
            let other = {
                let lock = lock.clone();
                loom::thread::spawn(move || {
                    for _ in 0..rounds {
                        let mut g = lock.lock();
                        let seen = *g;
                        *g = seen + 1;
                    }
                })
            };
            for _ in 0..rounds {
                let mut g = lock.lock();
                *g += 1;
            }
            other.join().unwrap();
            assert_eq!(*lock.lock(), 2 * rounds);
        });
    }

    #[test]
    fn spin_lock_one_round_each() {
        contenders(1);
    }

    #[test]
    fn spin_lock_two_rounds_each() {
        contenders(2);
    }
}
