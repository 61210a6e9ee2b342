//! The one place the runtime takes its concurrency primitives from.
//!
//! Under `--cfg ringleader_loom` every atomic, cell, lock, condvar and thread used by the core
//! is loom's, so loom's model checker explores the real code, not a copy. A ringleader-specific
//! cfg name keeps other crates' loom support (smol's concurrent-queue breaks under plain
//! `--cfg loom`) out of our model builds.

#[cfg(ringleader_loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    #[allow(unused_imports)]
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    #[allow(unused_imports)]
    pub(crate) use loom::thread;

    pub(crate) fn fence(order: Ordering) {
        loom::sync::atomic::fence(order)
    }

    /// Locks, treating a poisoned lock as usable: our critical sections restore their
    /// invariants before anything that can panic.
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Capacities shrink under loom so that models reach overflow paths.
    pub(crate) const MODEL_SCALE: bool = true;

    /// crossbeam's `Injector` under loom: a loom mutex around a deque, with the same
    /// methods. crossbeam's own atomics are invisible to loom, so a task handed over through
    /// the real one would look like an unsynchronised access to the model; this stand-in
    /// makes the hand-off's happens-before explicit while the protocol around it (counts,
    /// fences, tokens) is the real code.
    pub(crate) struct Injector<T>(Mutex<std::collections::VecDeque<T>>);

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Injector(Mutex::new(std::collections::VecDeque::new()))
        }
        pub(crate) fn push(&self, value: T) {
            lock(&self.0).push_back(value);
        }
        pub(crate) fn steal(&self) -> crossbeam_deque::Steal<T> {
            match lock(&self.0).pop_front() {
                Some(value) => crossbeam_deque::Steal::Success(value),
                None => crossbeam_deque::Steal::Empty,
            }
        }
        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.0).is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            lock(&self.0).len()
        }
    }
}

#[cfg(not(ringleader_loom))]
mod imp {
    #[allow(unused_imports)]
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    #[allow(unused_imports)]
    pub(crate) use std::thread;

    /// Locks, treating a poisoned lock as usable: our critical sections restore their
    /// invariants before anything that can panic.
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `std::cell::UnsafeCell` with loom's closure-based access API, so the same code
    /// compiles under both cfgs and loom can track every access.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
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

    /// Capacities shrink under loom so that models reach overflow paths.
    pub(crate) const MODEL_SCALE: bool = false;

    pub(crate) use crossbeam_deque::Injector;
}

pub(crate) use imp::*;

/// `thread_local!` from std (with a const initialiser) or, under loom, loom's: loom runs
/// every model thread on one OS thread, so std thread-locals would be shared between them.
#[cfg(not(ringleader_loom))]
macro_rules! rl_thread_local {
    ($(#[$attr:meta])* static $name:ident: $t:ty = const { $init:expr };) => {
        std::thread_local! { $(#[$attr])* static $name: $t = const { $init }; }
    };
}

#[cfg(ringleader_loom)]
macro_rules! rl_thread_local {
    ($(#[$attr:meta])* static $name:ident: $t:ty = const { $init:expr };) => {
        loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
    };
}
