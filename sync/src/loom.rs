//! The swap module: every atomic, cell and lock of this crate comes from here, so that
//! `--cfg ringleader_loom` model-checks the real code (the same cfg name the runtime uses).

#[cfg(ringleader_loom)]
mod imp {
    #[allow(unused_imports)]
    pub(crate) use loom::cell::UnsafeCell;
    /// A pause in a spin loop (under loom, a yield to the other modelled threads).
    #[allow(unused_imports)]
    pub(crate) use loom::hint::spin_loop;
    #[allow(unused_imports)]
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
    #[allow(unused_imports)]
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    #[allow(unused_imports)]
    pub(crate) use loom::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

    /// Locks, treating a poisoned lock as usable: critical sections restore their
    /// invariants before anything that can panic.
    #[allow(dead_code)]
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read-locks, treating a poisoned lock as usable (as [`lock`]).
    pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
        l.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write-locks, treating a poisoned lock as usable (as [`lock`]).
    pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
        l.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(not(ringleader_loom))]
mod imp {
    /// A pause in a spin loop.
    #[allow(unused_imports)]
    pub(crate) use std::hint::spin_loop;
    #[allow(unused_imports)]
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
    #[allow(unused_imports)]
    pub(crate) use std::sync::Arc;
    // parking_lot's locks: a contended lock spins briefly before it parks (std's parks
    // sooner), which matters for the short critical sections of every primitive here,
    // taken at once by a waker on one thread and a re-registering waiter on another.
    #[allow(unused_imports)]
    pub(crate) use parking_lot::{Mutex, MutexGuard};
    #[allow(unused_imports)]
    pub(crate) use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

    /// Locks (parking_lot's locks are never poisoned; see the loom build's `lock`).
    #[allow(dead_code)]
    #[inline]
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock()
    }

    /// Read-locks.
    #[inline]
    pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
        l.read()
    }

    /// Write-locks.
    #[inline]
    pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
        l.write()
    }

    /// `std::cell::UnsafeCell` with loom's closure-based access API, so the same code
    /// compiles under both cfgs and loom can track every access.
    #[derive(Debug)]
    #[allow(dead_code)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[allow(dead_code)]
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner()
        }

        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[allow(unused_imports)] // Until the skeleton's primitives take their atomics from here.
pub(crate) use imp::*;
