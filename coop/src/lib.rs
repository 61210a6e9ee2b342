//! The cooperative scheduling budget shared by ringleader's runtime and its leaf futures.
//!
//! A task that is always ready (a loop over a channel that never empties, a socket that always
//! has data) would otherwise keep its worker forever. The runtime gives each task poll a budget
//! of [`INITIAL_BUDGET`] units; every leaf future of ringleader (channels, locks, timers, I/O,
//! join handles) spends one unit when it makes progress, and once the budget is spent it wakes
//! its task and returns `Pending`, so the worker moves on to other tasks.
//!
//! The budget lives in a thread local. Outside a ringleader poll (another executor, a plain
//! thread) no budget is set and [`poll_proceed`] always lets the caller proceed, so
//! `ringleader-sync` works the same under any executor.
//!
//! ```
//! use std::task::{Context, Poll, Waker};
//!
//! let mut cx = Context::from_waker(Waker::noop());
//! // Outside a budgeted scope nothing is ever refused.
//! for _ in 0..1_000 {
//!     let Poll::Ready(progress) = ringleader_coop::poll_proceed(&mut cx) else { unreachable!() };
//!     progress.made_progress();
//! }
//! // Inside one, the budget runs out after INITIAL_BUDGET units.
//! let spent = ringleader_coop::with_budget(|| {
//!     let mut n = 0;
//!     while let Poll::Ready(progress) = ringleader_coop::poll_proceed(&mut cx) {
//!         progress.made_progress();
//!         n += 1;
//!     }
//!     n
//! });
//! assert_eq!(spent, ringleader_coop::INITIAL_BUDGET as usize);
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Units of work a task may do in one poll before its leaf futures start returning `Pending`.
///
/// 128 is a guess that matches common practice: large enough that a busy task rarely yields
/// on its own, small enough that a worker returns to its queues within tens of microseconds.
pub const INITIAL_BUDGET: u8 = 128;

thread_local! {
    /// `None`: unconstrained (no budgeted scope is active on this thread).
    static BUDGET: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Runs `f` with a fresh budget of [`INITIAL_BUDGET`], restoring the previous budget after.
///
/// The runtime calls this around every task poll. Restoring (rather than clearing) keeps a
/// nested poll, such as `block_on` inside a blocking closure, from resetting the outer budget.
pub fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    scoped(Some(INITIAL_BUDGET), f)
}

/// Runs `f` with no budget: leaf futures inside never yield for budget reasons.
pub fn unconstrained<R>(f: impl FnOnce() -> R) -> R {
    scoped(None, f)
}

fn scoped<R>(budget: Option<u8>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u8>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0;
            let _ = BUDGET.try_with(|b| b.set(previous));
        }
    }
    let previous = BUDGET.with(|b| b.replace(budget));
    let _restore = Restore(previous);
    f()
}

/// Whether the current task may still do work in this poll.
///
/// Always `true` outside a budgeted scope.
pub fn has_budget_remaining() -> bool {
    BUDGET.with(|b| b.get() != Some(0))
}

/// Asks for one unit of budget before a leaf future does its work.
///
/// Returns `Pending` (having woken the task, so it is polled again soon) when the budget is
/// spent. On `Ready`, the unit is taken; call [`Progress::made_progress`] if the operation
/// completed, otherwise dropping the [`Progress`] gives the unit back, so a future that ends
/// up `Pending` for its own reasons costs nothing.
#[inline]
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<Progress> {
    BUDGET.with(|b| match b.get() {
        None => Poll::Ready(Progress { refund: false }),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            b.set(Some(n - 1));
            Poll::Ready(Progress { refund: true })
        }
    })
}

/// Spends one unit for an operation that completed without being polled (a fast path
/// that returns before its first `.await`): call it only after checking
/// [`has_budget_remaining`], and go through a polled leaf future (which yields) when that
/// says the budget is spent. No-op outside a budgeted scope.
#[inline]
pub fn spend() {
    BUDGET.with(|b| {
        if let Some(n) = b.get() {
            b.set(Some(n.saturating_sub(1)));
        }
    })
}

/// One unit of budget taken by [`poll_proceed`]; given back on drop unless progress was made.
#[must_use = "dropping a Progress without calling made_progress() refunds the budget unit"]
#[derive(Debug)]
pub struct Progress {
    refund: bool,
}

impl Progress {
    /// The operation completed: keep the unit spent.
    #[inline]
    pub fn made_progress(mut self) {
        self.refund = false;
    }
}

impl Drop for Progress {
    #[inline]
    fn drop(&mut self) {
        if self.refund {
            let _ = BUDGET.try_with(|b| {
                if let Some(n) = b.get() {
                    b.set(Some(n.saturating_add(1).min(INITIAL_BUDGET)));
                }
            });
        }
    }
}

/// Spends one unit of budget, yielding to the scheduler first if the budget is spent.
///
/// For loops in user code that never touch a ringleader leaf future but should still share
/// their worker fairly.
///
/// # Cancel safety
/// Cancel safe: it holds nothing.
pub async fn consume_budget() {
    ConsumeBudget.await
}

struct ConsumeBudget;

impl Future for ConsumeBudget {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        poll_proceed(cx).map(Progress::made_progress)
    }
}

/// Runs `future` to completion on the calling thread, parking the thread between polls,
/// with the budget lifted (so a leaf future that would yield to its scheduler keeps
/// going). The executor of the crates' blocking waits (`blocking_recv`,
/// `JoinHandle::blocking_wait`); it touches no runtime.
pub fn block_on_parked<F: Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    unconstrained(|| loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        // A spurious return only polls again.
        std::thread::park();
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn refund_on_drop_and_nesting_restores() {
        let mut cx = Context::from_waker(Waker::noop());
        with_budget(|| {
            let Poll::Ready(p) = poll_proceed(&mut cx) else {
                panic!("budget spent")
            };
            drop(p); // refunded
            assert!(has_budget_remaining());
            for _ in 0..INITIAL_BUDGET {
                let Poll::Ready(p) = poll_proceed(&mut cx) else {
                    panic!("spent early")
                };
                p.made_progress();
            }
            assert!(!has_budget_remaining());
            assert!(poll_proceed(&mut cx).is_pending());
            // A nested scope gets its own budget and restores ours after.
            with_budget(|| assert!(has_budget_remaining()));
            unconstrained(|| assert!(poll_proceed(&mut cx).is_ready()));
            assert!(!has_budget_remaining());
        });
        assert!(has_budget_remaining());
    }
}
