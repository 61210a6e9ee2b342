//! The one place the task group protocols take their concurrency primitives from.
//!
//! Under `--cfg ringleader_loom` (the runtime's cfg name, set by `ci/loom.sh`) the atomics
//! and locks of the scope tree ([`ScopeNode`](crate::scope)) and of the group's child
//! tracking ([`GroupInner`](crate::group)) are loom's, so the models in `loom_models.rs`
//! explore the real code. `Arc`/`Weak` stay std's: loom's `Arc` has no `Weak`, and the
//! protocols under test are the locks and flags, not the reference counts.

#[cfg(ringleader_loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Mutex, MutexGuard};
}

#[cfg(not(ringleader_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Mutex, MutexGuard};
}

pub(crate) use imp::*;

/// Locks, treating a poisoned lock as usable: the critical sections of the scope tree and
/// the group restore their invariants before anything that can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `thread_local!` from std (with a const initialiser) or, under loom, loom's: loom runs
/// every model thread on one OS thread, so std thread-locals would be shared between them.
#[cfg(not(ringleader_loom))]
macro_rules! tg_thread_local {
    ($(#[$attr:meta])* static $name:ident: $t:ty = const { $init:expr };) => {
        std::thread_local! { $(#[$attr])* static $name: $t = const { $init }; }
    };
}

#[cfg(ringleader_loom)]
macro_rules! tg_thread_local {
    ($(#[$attr:meta])* static $name:ident: $t:ty = const { $init:expr };) => {
        loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
    };
}
