#![cfg_attr(all(ringleader_loom, not(test)), allow(dead_code))]
//! One in-flight operation: the heap cell the kernel's `user_data` points at, and the
//! future that owns it.
//!
//! # Protocol
//! A [`Cell`] is shared by two owners, counted by its `Arc`: the [`Op`] future, and the ring
//! (from the push of its entry until its completion is reaped). `user_data` is the cell's
//! address, produced by `Arc::into_raw` for the ring's reference; the reaper turns it back
//! with `Arc::from_raw` exactly once, because the kernel posts exactly one completion per
//! (non-multishot) entry.
//!
//! The slot moves, under the cell's mutex, through:
//! - `InFlight { kind, waker }`: pushed; the kernel may be using memory owned by `kind`.
//! - `Done { kind, res }`: the completion arrived (reaper) and the waker was taken; the
//!   future turns it into its output.
//! - `Abandoned(kind)`: the future was dropped while in flight; the driver keeps `kind` (its
//!   buffers, fd, address) until the completion, then gives it to [`OpKind::abandoned`] (which
//!   closes an fd the operation produced) and drops it.
//! - `Empty`: consumed.
//!
//! Memory the kernel may touch is owned by `kind`, inside the cell, on the heap: it never
//! moves and is freed only after the completion, whichever owner goes last.

#[cfg(not(ringleader_loom))]
use std::future::Future;
use std::io;
use std::mem;
#[cfg(not(ringleader_loom))]
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use io_uring::squeue::Entry;

#[cfg(not(ringleader_loom))]
use super::ring::{self, RingShared};
use crate::loom::{lock, Arc, Mutex};

/// An operation's owned resources and how to describe it to the kernel.
///
/// # Safety
/// `entry` may only produce an entry whose pointers refer to memory owned by `self` (heap or
/// inline: `self` lives in a heap cell that does not move while the kernel may use it) or
/// `'static`, and whose fds are kept open by `self` until `self` is dropped.
#[cfg_attr(ringleader_loom, allow(dead_code))]
pub(crate) unsafe trait OpKind: Send + 'static {
    /// What the future resolves to.
    type Output;

    /// The submission entry, `user_data` left unset.
    fn entry(&mut self) -> Entry;

    /// Turns the kernel's result (`res` >= 0, or a negated errno) into the output.
    fn complete(self, res: i32, flags: u32) -> Self::Output;

    /// The future was dropped before observing the completion: release what the operation
    /// produced (an accepted or opened fd). `res` is as for `complete`.
    fn abandoned(self, res: i32)
    where
        Self: Sized,
    {
        let _ = res;
    }

    /// The output for an operation that never reached a ring.
    fn failed(self, err: io::Error) -> Self::Output;
}

/// The header every cell starts with, so the reaper can complete a cell of any kind from a
/// thin `user_data` pointer.
#[repr(C)]
pub(crate) struct Header {
    complete: unsafe fn(*const Header, i32, u32),
}

#[repr(C)]
pub(crate) struct Cell<K> {
    /// First field: a pointer to the cell is a pointer to its header.
    header: Header,
    slot: Mutex<Slot<K>>,
}

enum Slot<K> {
    InFlight { kind: K, waker: Option<Waker> },
    Done { kind: K, res: i32, flags: u32 },
    Abandoned(K),
    Empty,
}

/// Completes the cell behind `user_data` with `res`. Called by the reaper, once per cell.
///
/// # Safety
/// `user_data` was produced by [`Op::poll`] from `Arc::into_raw` of a `Cell`, its entry was
/// pushed to a ring, and this is the one completion of that entry.
pub(crate) unsafe fn complete(user_data: u64, res: i32, flags: u32) {
    let header = user_data as usize as *const Header;
    // SAFETY: the caller guarantees `header` points at a live cell (the ring's reference
    // keeps it alive), whose header was written at construction and never changes.
    let complete = unsafe { (*header).complete };
    // SAFETY: `complete` is the function of the cell's own kind; caller's guarantees pass on.
    unsafe { complete(header, res, flags) }
}

/// # Safety
/// As [`complete`], and `header` is the header of a `Cell<K>`.
unsafe fn complete_cell<K: OpKind>(header: *const Header, res: i32, flags: u32) {
    // SAFETY: `Cell` is repr(C) with the header first, so the pointers coincide; this takes
    // back the ring's reference, produced by `Arc::into_raw` and not yet taken back.
    let cell: Arc<Cell<K>> = unsafe { Arc::from_raw(header.cast::<Cell<K>>()) };
    let mut slot = lock(&cell.slot);
    match mem::replace(&mut *slot, Slot::Empty) {
        Slot::InFlight { kind, waker } => {
            *slot = Slot::Done { kind, res, flags };
            drop(slot);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        Slot::Abandoned(kind) => {
            drop(slot);
            kind.abandoned(res);
        }
        other => {
            // Not reachable by the protocol (one completion per entry); keep the state.
            *slot = other;
        }
    }
}

/// A new cell holding `kind`, in flight, to wake `waker` at completion.
pub(crate) fn new_cell<K: OpKind>(kind: K, waker: Waker) -> Arc<Cell<K>> {
    Arc::new(Cell {
        header: Header {
            complete: complete_cell::<K>,
        },
        slot: Mutex::new(Slot::InFlight {
            kind,
            waker: Some(waker),
        }),
    })
}

/// A new cell as [`new_cell`], and the entry describing its operation (its memory is inside
/// the cell, at its final heap address). The entry is built while the cell has one owner,
/// through `get_mut`: no lock is taken.
#[cfg_attr(ringleader_loom, allow(dead_code))]
pub(crate) fn new_cell_with_entry<K: OpKind>(kind: K, waker: Waker) -> (Arc<Cell<K>>, Entry) {
    let mut cell = new_cell(kind, waker);
    let entry = match Arc::get_mut(&mut cell).map(|c| c.slot.get_mut()) {
        Some(Ok(Slot::InFlight { kind, .. })) => Some(kind.entry()),
        // Not reachable: a new cell has one owner, is not poisoned, and is in flight.
        _ => None,
    };
    let entry = entry.unwrap_or_else(|| cell_entry(&cell));
    (cell, entry)
}

/// The entry describing the cell's operation (its memory is inside the cell), under the
/// cell's lock.
#[cfg_attr(ringleader_loom, allow(dead_code))]
pub(crate) fn cell_entry<K: OpKind>(cell: &Arc<Cell<K>>) -> Entry {
    let mut slot = lock(&cell.slot);
    match &mut *slot {
        Slot::InFlight { kind, .. } => kind.entry(),
        _ => unreachable!("a new cell is in flight"),
    }
}

/// Hands one reference to the ring: the `user_data` of the cell's entry.
pub(crate) fn ring_reference<K: OpKind>(cell: &Arc<Cell<K>>) -> u64 {
    Arc::into_raw(cell.clone()) as usize as u64
}

/// Takes back the ring's reference of an entry that never reached a ring, and the kind.
///
/// # Safety
/// `user_data` came from [`ring_reference`] of `cell` and its entry was not pushed.
#[cfg_attr(ringleader_loom, allow(dead_code))]
pub(crate) unsafe fn unpushed<K: OpKind>(cell: Arc<Cell<K>>, user_data: u64) -> K {
    // SAFETY: no completion will take this reference back; it is taken back here, once.
    drop(unsafe { Arc::from_raw(user_data as usize as *const Cell<K>) });
    let mut slot = lock(&cell.slot);
    match mem::replace(&mut *slot, Slot::Empty) {
        Slot::InFlight { kind, .. } => kind,
        _ => unreachable!("an unpushed cell is in flight"),
    }
}

/// The owner's poll: the output once completed, else `Pending` with `cx`'s waker stored.
pub(crate) fn poll_cell<K: OpKind>(cell: &Cell<K>, cx: &mut Context<'_>) -> Poll<K::Output> {
    let mut slot = lock(&cell.slot);
    match mem::replace(&mut *slot, Slot::Empty) {
        Slot::Done { kind, res, flags } => {
            drop(slot);
            Poll::Ready(kind.complete(res, flags))
        }
        Slot::InFlight { kind, waker } => {
            let waker = match waker {
                Some(w) if w.will_wake(cx.waker()) => w,
                _ => cx.waker().clone(),
            };
            *slot = Slot::InFlight {
                kind,
                waker: Some(waker),
            };
            Poll::Pending
        }
        other => {
            *slot = other;
            Poll::Pending
        }
    }
}

/// The owner gives up: a completed operation's result is released now (`abandoned`); one in
/// flight is left to the driver. Returns whether it was in flight (so a cancellation should
/// be sent).
pub(crate) fn abandon_cell<K: OpKind>(cell: &Cell<K>) -> bool {
    let mut slot = lock(&cell.slot);
    match mem::replace(&mut *slot, Slot::Empty) {
        Slot::InFlight { kind, .. } => {
            *slot = Slot::Abandoned(kind);
            true
        }
        Slot::Done { kind, res, .. } => {
            drop(slot);
            kind.abandoned(res);
            false
        }
        other => {
            *slot = other;
            false
        }
    }
}

/// A future for one kernel operation: submitted on the ring of the thread that first polls
/// it (or handed to a worker's ring from other threads), completed wherever it is polled.
///
/// # Cancel safety
/// Dropping it before completion cancels the operation (an `AsyncCancel` is sent); the
/// driver keeps its buffers and fds until the kernel lets go of them. The operation may
/// still have taken effect: a cancelled read may have consumed bytes, a write sent them.
#[cfg(not(ringleader_loom))]
#[must_use = "an operation does nothing unless awaited; dropping it cancels it"]
pub(crate) struct Op<K: OpKind> {
    state: State<K>,
}

#[cfg(not(ringleader_loom))]
enum State<K> {
    Unsubmitted(K),
    Submitted {
        cell: Arc<Cell<K>>,
        ring: std::sync::Arc<RingShared>,
    },
    Finished,
}

#[cfg(not(ringleader_loom))]
impl<K: OpKind> Op<K> {
    pub(crate) fn new(kind: K) -> Op<K> {
        Op {
            state: State::Unsubmitted(kind),
        }
    }
}

// The cell, not the future, holds what the kernel uses: moving an Op is always fine.
#[cfg(not(ringleader_loom))]
impl<K: OpKind> Unpin for Op<K> {}

#[cfg(not(ringleader_loom))]
impl<K: OpKind> Future for Op<K> {
    type Output = K::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<K::Output> {
        let this = &mut *self;
        match mem::replace(&mut this.state, State::Finished) {
            State::Unsubmitted(kind) => {
                let ring = match ring::for_this_thread() {
                    Ok(ring) => ring,
                    Err(err) => return Poll::Ready(kind.failed(err)),
                };
                let (cell, entry) = new_cell_with_entry(kind, cx.waker().clone());
                let user_data = ring_reference(&cell);
                // SAFETY: the entry's memory is owned by the kind inside the cell (OpKind's
                // contract), and the cell stays alive until its completion: `user_data` is the
                // ring's reference, given back only by `complete`.
                match unsafe { ring.push(entry.user_data(user_data)) } {
                    Ok(()) => {
                        this.state = State::Submitted { cell, ring };
                        Poll::Pending
                    }
                    Err(err) => {
                        // SAFETY: `user_data` is this cell's ring reference; not pushed.
                        let kind = unsafe { unpushed(cell, user_data) };
                        Poll::Ready(kind.failed(err))
                    }
                }
            }
            State::Submitted { cell, ring } => {
                let out = poll_cell(&cell, cx);
                if out.is_pending() {
                    this.state = State::Submitted { cell, ring };
                }
                out
            }
            // As every future (and `async fn`), polling after completion is a caller bug.
            State::Finished => panic!("an I/O operation was polled after it completed"),
        }
    }
}

#[cfg(not(ringleader_loom))]
impl<K: OpKind> Drop for Op<K> {
    fn drop(&mut self) {
        if let State::Submitted { cell, ring } = mem::replace(&mut self.state, State::Finished) {
            if abandon_cell(&cell) {
                ring.cancel(Arc::as_ptr(&cell) as usize as u64);
            }
        }
    }
}
