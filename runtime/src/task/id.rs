//! Task ids and the "current task" of a thread.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use super::raw::Header;

/// A task's id: unique among all tasks of the process, never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

impl Id {
    /// The id as a plain number.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }

    /// A fresh id. Threads take ids from the global counter in blocks, so spawning from
    /// several threads does not contend on one cache line.
    pub(crate) fn next() -> Id {
        const BLOCK: u64 = 1024;
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        RANGE.with(|range| {
            let (mut next, mut end) = range.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
                end = next + BLOCK;
            }
            range.set((next + 1, end));
            Id(NonZeroU64::new(next).expect("task ids start at 1"))
        })
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

rl_thread_local! {
    /// The task this thread is polling, if any.
    static CURRENT: Cell<Option<NonNull<Header>>> = const { Cell::new(None) };
}

/// Marks `header` as the current task until dropped (restoring the previous one, so a
/// nested `block_on` inside a task keeps the outer task's identity afterwards).
pub(crate) struct CurrentGuard(Option<NonNull<Header>>);

impl CurrentGuard {
    pub(crate) fn enter(header: NonNull<Header>) -> CurrentGuard {
        CurrentGuard(CURRENT.with(|c| c.replace(Some(header))))
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.0;
        let _ = CURRENT.try_with(|c| c.set(previous));
    }
}

rl_thread_local! {
    /// The local task (of a `LocalSet`) this thread is polling or dropping, if any. It
    /// shadows `CURRENT` for [`task::id`](super::id): the local task runs inside the poll
    /// of the scheduler task that drives its set.
    static CURRENT_LOCAL: Cell<Option<Id>> = const { Cell::new(None) };
}

/// Marks local task `id` as current until dropped (restoring the previous one, for nested
/// sets and on unwind).
pub(crate) struct LocalGuard(Option<Id>);

impl LocalGuard {
    pub(crate) fn enter(id: Id) -> LocalGuard {
        LocalGuard(CURRENT_LOCAL.with(|c| c.replace(Some(id))))
    }
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        let previous = self.0;
        let _ = CURRENT_LOCAL.try_with(|c| c.set(previous));
    }
}

/// The local task being polled on this thread, if any.
pub(crate) fn current_local() -> Option<Id> {
    CURRENT_LOCAL.try_with(|c| c.get()).ok().flatten()
}

/// Runs `f` with the header of the task being polled on this thread.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Header>) -> R) -> R {
    let current = CURRENT.try_with(|c| c.get()).ok().flatten();
    // SAFETY: CURRENT is set only while the task is being polled by this thread (the runner
    // holds a reference for the whole poll), and the guard clears it before the poll ends.
    f(current.map(|p| unsafe { p.as_ref() }))
}
