//! The task state word: six flag bits and a reference count in one `AtomicUsize`.
//!
//! | bit            | set by                                  | cleared by                          |
//! |----------------|-----------------------------------------|-------------------------------------|
//! | `RUNNING`      | the thread that claims the task to poll or cancel it | that thread, when it parks or completes the task |
//! | `COMPLETE`     | the runner, once the output (or error) is stored | never                          |
//! | `SCHEDULED`    | a waker or abort that hands the task to a queue, or that marks a running task for re-queueing | the runner, when it claims the task |
//! | `CANCELLED`    | `abort`, shutdown                       | never                               |
//! | `JOIN_INTEREST`| spawn (a `JoinHandle` exists)           | dropping the `JoinHandle`           |
//! | `JOIN_WAKER`   | the `JoinHandle`, after writing its waker | the `JoinHandle` (before replacing it) or the runner after completing |
//!
//! The count sits above the flags: one reference for each `JoinHandle`, `Notified` (a task in
//! a queue), waker and for the live-task registry. The last reference frees the task.
//!
//! At most one `Notified` exists for a task at a time: `SCHEDULED` is set by whoever creates
//! it, and a wake that finds `SCHEDULED` or `RUNNING` creates none (for `RUNNING` it only sets
//! `SCHEDULED`, and the runner re-queues the task after its poll).

use crate::loom::{AtomicUsize, Ordering};

pub(super) const RUNNING: usize = 1 << 0;
pub(super) const COMPLETE: usize = 1 << 1;
pub(super) const SCHEDULED: usize = 1 << 2;
pub(super) const CANCELLED: usize = 1 << 3;
pub(super) const JOIN_INTEREST: usize = 1 << 4;
pub(super) const JOIN_WAKER: usize = 1 << 5;
const REF_SHIFT: u32 = 6;
const REF_ONE: usize = 1 << REF_SHIFT;
const FLAGS: usize = REF_ONE - 1;

/// The atomic state word of one task.
pub(crate) struct State(AtomicUsize);

/// A copy of the state word taken at one instant.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("running", &self.is(RUNNING))
            .field("complete", &self.is(COMPLETE))
            .field("scheduled", &self.is(SCHEDULED))
            .field("cancelled", &self.is(CANCELLED))
            .field("join_interest", &self.is(JOIN_INTEREST))
            .field("join_waker", &self.is(JOIN_WAKER))
            .field("refs", &self.refs())
            .finish()
    }
}

impl Snapshot {
    pub(super) fn is(self, flag: usize) -> bool {
        self.0 & flag == flag
    }
    pub(crate) fn refs(self) -> usize {
        self.0 >> REF_SHIFT
    }
    pub(crate) fn is_complete(self) -> bool {
        self.is(COMPLETE)
    }
    pub(crate) fn is_cancelled(self) -> bool {
        self.is(CANCELLED)
    }
    pub(crate) fn has_join_interest(self) -> bool {
        self.is(JOIN_INTEREST)
    }
    pub(crate) fn has_join_waker(self) -> bool {
        self.is(JOIN_WAKER)
    }
}

/// What a runner holding a `Notified` may do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToRunning {
    /// Poll the future.
    Poll,
    /// The task was aborted: drop the future and complete it as cancelled.
    Cancel,
    /// Another thread completes (or completed) the task: just drop the reference.
    Skip,
}

/// What the runner does after a poll returned `Pending`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToIdle {
    /// Idle: drop the runner's reference.
    Idle,
    /// Woken during the poll: queue it again, handing over the runner's reference.
    Requeue,
    /// Aborted during the poll: drop the future and complete it as cancelled.
    Cancel,
}

/// What a waker (or abort) must do after marking the task.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToScheduled {
    /// Nothing to queue (already queued, running or complete).
    Nothing,
    /// Queue a new `Notified`; the transition added (or kept) its reference.
    Submit,
    /// Nothing to queue, and the waker's own reference must be dropped by the caller
    /// (only from `transition_to_scheduled_by_val`).
    DropRef,
}

impl State {
    /// A new task: scheduled, with a `JoinHandle`, and `refs` references.
    pub(crate) fn new(refs: usize) -> State {
        State(AtomicUsize::new(
            SCHEDULED | JOIN_INTEREST | (refs * REF_ONE),
        ))
    }

    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Acquire))
    }

    fn update<R>(&self, mut f: impl FnMut(usize) -> (Option<usize>, R)) -> R {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let (next, out) = f(cur);
            let Some(next) = next else { return out };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return out,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The holder of a `Notified` claims the task.
    pub(crate) fn transition_to_running(&self) -> ToRunning {
        self.update(|cur| {
            if cur & (RUNNING | COMPLETE) != 0 {
                // Shutdown claimed it (or finished it) while the Notified sat in a queue.
                return (Some(cur & !SCHEDULED), ToRunning::Skip);
            }
            debug_assert!(cur & SCHEDULED != 0, "a Notified for an unscheduled task");
            let next = (cur & !SCHEDULED) | RUNNING;
            let action = if cur & CANCELLED != 0 {
                ToRunning::Cancel
            } else {
                ToRunning::Poll
            };
            (Some(next), action)
        })
    }

    /// The runner ends a poll that returned `Pending`.
    pub(crate) fn transition_to_idle(&self) -> ToIdle {
        self.update(|cur| {
            debug_assert!(cur & RUNNING != 0);
            if cur & CANCELLED != 0 {
                return (None, ToIdle::Cancel);
            }
            let next = cur & !(RUNNING | SCHEDULED);
            if cur & SCHEDULED != 0 {
                // Keep SCHEDULED: the runner's reference becomes the new Notified.
                (Some(next | SCHEDULED), ToIdle::Requeue)
            } else {
                (Some(next), ToIdle::Idle)
            }
        })
    }

    /// The runner stored the output: mark the task complete. Returns the state before.
    pub(crate) fn transition_to_complete(&self) -> Snapshot {
        let prev = Snapshot(self.0.fetch_xor(RUNNING | COMPLETE, Ordering::AcqRel));
        debug_assert!(prev.is(RUNNING) && !prev.is(COMPLETE));
        prev
    }

    /// A waker that gives up its reference (`wake`).
    pub(crate) fn transition_to_scheduled_by_val(&self) -> ToScheduled {
        self.update(|cur| {
            if cur & RUNNING != 0 {
                // The runner re-queues; our reference goes (the runner holds one, so it is
                // not the last).
                debug_assert!(cur >> REF_SHIFT >= 2);
                (Some((cur | SCHEDULED) - REF_ONE), ToScheduled::Nothing)
            } else if cur & (COMPLETE | SCHEDULED) != 0 {
                // Our reference is dropped by the caller (it may be the last one).
                (None, ToScheduled::DropRef)
            } else {
                // Our reference becomes the Notified's.
                (Some(cur | SCHEDULED), ToScheduled::Submit)
            }
        })
    }

    /// A waker that keeps its reference (`wake_by_ref`).
    pub(crate) fn transition_to_scheduled_by_ref(&self) -> ToScheduled {
        self.update(|cur| {
            if cur & RUNNING != 0 {
                if cur & SCHEDULED != 0 {
                    (None, ToScheduled::Nothing)
                } else {
                    (Some(cur | SCHEDULED), ToScheduled::Nothing)
                }
            } else if cur & (COMPLETE | SCHEDULED) != 0 {
                (None, ToScheduled::Nothing)
            } else {
                (Some((cur | SCHEDULED) + REF_ONE), ToScheduled::Submit)
            }
        })
    }

    /// `abort()`: mark cancelled; an idle task is queued (with a new reference) so that a
    /// worker drops its future.
    #[cfg(all(test, not(ringleader_loom)))]
    pub(crate) fn transition_to_aborted(&self) -> ToScheduled {
        self.transition_to_aborted_checked().0
    }

    /// [`transition_to_aborted`](Self::transition_to_aborted), also telling whether the
    /// task had already completed (read in the same atomic step): asyncio's `cancel()`
    /// returns false then.
    pub(crate) fn transition_to_aborted_checked(&self) -> (ToScheduled, bool) {
        let mut was_complete = false;
        let next = self.update(|cur| {
            was_complete = cur & COMPLETE != 0;
            if cur & (COMPLETE | CANCELLED) != 0 {
                (None, ToScheduled::Nothing)
            } else if cur & (RUNNING | SCHEDULED) != 0 {
                // The runner sees CANCELLED after its poll, or when it claims the task.
                (Some(cur | CANCELLED | SCHEDULED), ToScheduled::Nothing)
            } else {
                (
                    Some((cur | CANCELLED | SCHEDULED) + REF_ONE),
                    ToScheduled::Submit,
                )
            }
        });
        (next, was_complete)
    }

    /// Shutdown: mark cancelled and, if nobody runs the task, claim it so the caller drops
    /// its future now. Returns true if the caller claimed it.
    pub(crate) fn transition_to_shutdown(&self) -> bool {
        self.update(|cur| {
            if cur & COMPLETE != 0 {
                (None, false)
            } else if cur & RUNNING != 0 {
                (Some(cur | CANCELLED), false)
            } else {
                (Some(cur | CANCELLED | RUNNING), true)
            }
        })
    }

    /// The `JoinHandle` publishes the waker it just wrote. Fails (returning the state) if
    /// the task completed first; the slot then still belongs to the handle.
    pub(crate) fn set_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.update(|cur| {
            debug_assert!(cur & JOIN_INTEREST != 0 && cur & JOIN_WAKER == 0);
            if cur & COMPLETE != 0 {
                (None, Err(Snapshot(cur)))
            } else {
                (Some(cur | JOIN_WAKER), Ok(Snapshot(cur | JOIN_WAKER)))
            }
        })
    }

    /// The `JoinHandle` takes its published waker back to replace it. Fails if the task
    /// completed (the runner may be reading the slot).
    pub(crate) fn unset_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.update(|cur| {
            if cur & COMPLETE != 0 {
                // The runner may already have handed the slot back (cleared JOIN_WAKER).
                return (None, Err(Snapshot(cur)));
            }
            debug_assert!(cur & JOIN_INTEREST != 0 && cur & JOIN_WAKER != 0);
            (Some(cur & !JOIN_WAKER), Ok(Snapshot(cur & !JOIN_WAKER)))
        })
    }

    /// The runner, after completing and waking the join waker, hands the slot back. Returns
    /// the state after: without `JOIN_INTEREST` the runner drops the waker itself.
    pub(crate) fn unset_join_waker_after_complete(&self) -> Snapshot {
        let prev = self.0.fetch_and(!JOIN_WAKER, Ordering::AcqRel);
        debug_assert!(prev & COMPLETE != 0 && prev & JOIN_WAKER != 0);
        Snapshot(prev & !JOIN_WAKER)
    }

    /// The `JoinHandle` is dropped. Before completion this also takes the waker slot back
    /// (the runner will then neither touch the slot nor hand over the output). Returns the
    /// state before.
    pub(crate) fn drop_join_interest(&self) -> Snapshot {
        self.update(|cur| {
            debug_assert!(cur & JOIN_INTEREST != 0);
            let next = if cur & COMPLETE != 0 {
                cur & !JOIN_INTEREST
            } else {
                cur & !(JOIN_INTEREST | JOIN_WAKER)
            };
            (Some(next), Snapshot(cur))
        })
    }

    /// The `JoinHandle` is dropped before completion with no waker published: clears
    /// `JOIN_INTEREST` and drops the handle's reference in one step. `None` (nothing changed)
    /// if the task is complete or `JOIN_WAKER` is set: the caller takes the slow path
    /// ([`drop_join_interest`](Self::drop_join_interest), then `ref_dec`). `Some(last)`:
    /// done, and whether that was the last reference.
    pub(crate) fn drop_join_handle_fast(&self) -> Option<bool> {
        self.update(|cur| {
            debug_assert!(cur & JOIN_INTEREST != 0);
            if cur & (COMPLETE | JOIN_WAKER) != 0 {
                return (None, None);
            }
            debug_assert!(cur >> REF_SHIFT >= 1, "task reference count underflow");
            let next = (cur & !JOIN_INTEREST) - REF_ONE;
            (Some(next), Some(cur & !FLAGS == REF_ONE))
        })
    }

    pub(crate) fn ref_inc(&self) {
        let prev = self.0.fetch_add(REF_ONE, Ordering::Relaxed);
        // A count this large means references leak; abort rather than wrap.
        if prev > usize::MAX / 2 {
            std::process::abort();
        }
    }

    /// Drops one reference; true if it was the last.
    pub(crate) fn ref_dec(&self) -> bool {
        let prev = self.0.fetch_sub(REF_ONE, Ordering::AcqRel);
        debug_assert!(prev >> REF_SHIFT >= 1, "task reference count underflow");
        prev & !FLAGS == REF_ONE
    }

    /// Drops two references at once (the runner's and the registry's); true if last.
    pub(crate) fn ref_dec_twice(&self) -> bool {
        let prev = self.0.fetch_sub(2 * REF_ONE, Ordering::AcqRel);
        debug_assert!(prev >> REF_SHIFT >= 2, "task reference count underflow");
        prev & !FLAGS == 2 * REF_ONE
    }
}

#[cfg(all(test, not(ringleader_loom)))]
mod tests {
    use super::*;

    #[test]
    fn wake_while_running_requeues() {
        let s = State::new(3);
        assert_eq!(s.transition_to_running(), ToRunning::Poll);
        assert_eq!(s.transition_to_scheduled_by_ref(), ToScheduled::Nothing);
        assert_eq!(s.transition_to_idle(), ToIdle::Requeue);
        assert!(s.load().is(SCHEDULED));
        assert_eq!(s.transition_to_running(), ToRunning::Poll);
        assert_eq!(s.transition_to_idle(), ToIdle::Idle);
        assert_eq!(s.transition_to_scheduled_by_ref(), ToScheduled::Submit);
        assert_eq!(s.load().refs(), 4);
    }

    #[test]
    fn abort_paths() {
        let s = State::new(3);
        // Scheduled: abort only marks.
        assert_eq!(s.transition_to_aborted(), ToScheduled::Nothing);
        assert_eq!(s.transition_to_running(), ToRunning::Cancel);
        let s = State::new(3);
        assert_eq!(s.transition_to_running(), ToRunning::Poll);
        assert_eq!(s.transition_to_idle(), ToIdle::Idle);
        assert_eq!(s.transition_to_aborted(), ToScheduled::Submit);
        assert_eq!(s.transition_to_aborted(), ToScheduled::Nothing);
        assert_eq!(s.transition_to_running(), ToRunning::Cancel);
        s.transition_to_complete();
        assert!(!s.transition_to_shutdown());
    }

    #[test]
    fn abort_reports_whether_the_task_had_completed() {
        let s = State::new(3);
        assert_eq!(
            s.transition_to_aborted_checked(),
            (ToScheduled::Nothing, false)
        );
        // Already cancelled, not complete: still "requested" (asyncio's cancel() is True).
        assert_eq!(
            s.transition_to_aborted_checked(),
            (ToScheduled::Nothing, false)
        );
        let s = State::new(3);
        assert_eq!(s.transition_to_running(), ToRunning::Poll);
        s.transition_to_complete();
        let before = s.load();
        assert_eq!(
            s.transition_to_aborted_checked(),
            (ToScheduled::Nothing, true)
        );
        assert_eq!(
            s.load().0,
            before.0,
            "aborting a completed task changes nothing"
        );
    }

    #[test]
    fn join_waker_protocol() {
        let s = State::new(3);
        assert!(s.set_join_waker().is_ok());
        assert!(s.unset_join_waker().is_ok());
        assert!(s.set_join_waker().is_ok());
        assert_eq!(s.transition_to_running(), ToRunning::Poll);
        let prev = s.transition_to_complete();
        assert!(prev.has_join_waker() && prev.has_join_interest());
        assert!(s.unset_join_waker().is_err());
        let after = s.unset_join_waker_after_complete();
        assert!(after.has_join_interest() && !after.has_join_waker());
        let before = s.drop_join_interest();
        assert!(before.is_complete());
    }
}
