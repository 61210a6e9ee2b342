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

use std::future::Future;
use std::io;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use io_uring::squeue::Entry;

use super::ring::{self, RingShared};

/// An operation's owned resources and how to describe it to the kernel.
///
/// # Safety
/// `entry` may only produce an entry whose pointers refer to memory owned by `self` (heap or
/// inline: `self` lives in a heap cell that does not move while the kernel may use it) or
/// `'static`, and whose fds are kept open by `self` until `self` is dropped.
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
struct Cell<K> {
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
    let mut slot = cell.slot.lock().unwrap_or_else(|e| e.into_inner());
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

/// A future for one kernel operation: submitted on the ring of the thread that first polls
/// it (or handed to a worker's ring from other threads), completed wherever it is polled.
///
/// # Cancel safety
/// Dropping it before completion cancels the operation (an `AsyncCancel` is sent); the
/// driver keeps its buffers and fds until the kernel lets go of them. The operation may
/// still have taken effect: a cancelled read may have consumed bytes, a write sent them.
#[must_use = "an operation does nothing unless awaited; dropping it cancels it"]
pub(crate) struct Op<K: OpKind> {
    state: State<K>,
}

enum State<K> {
    Unsubmitted(K),
    Submitted {
        cell: Arc<Cell<K>>,
        ring: Arc<RingShared>,
    },
    Finished,
}

impl<K: OpKind> Op<K> {
    pub(crate) fn new(kind: K) -> Op<K> {
        Op {
            state: State::Unsubmitted(kind),
        }
    }
}

// The cell, not the future, holds what the kernel uses: moving an Op is always fine.
impl<K: OpKind> Unpin for Op<K> {}

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
                let cell = Arc::new(Cell {
                    header: Header {
                        complete: complete_cell::<K>,
                    },
                    slot: Mutex::new(Slot::InFlight {
                        kind,
                        waker: Some(cx.waker().clone()),
                    }),
                });
                let entry = {
                    let mut slot = cell.slot.lock().unwrap_or_else(|e| e.into_inner());
                    match &mut *slot {
                        Slot::InFlight { kind, .. } => kind.entry(),
                        _ => unreachable!("a new cell is in flight"),
                    }
                };
                let user_data = Arc::into_raw(cell.clone()) as usize as u64;
                // SAFETY: the entry's memory is owned by the kind inside the cell (OpKind's
                // contract), and the cell stays alive until its completion: `user_data` is the
                // ring's reference, given back only by `complete`.
                match unsafe { ring.push(entry.user_data(user_data)) } {
                    Ok(()) => {
                        this.state = State::Submitted { cell, ring };
                        Poll::Pending
                    }
                    Err(err) => {
                        // SAFETY: the entry never reached the ring, so no completion will
                        // take back this reference; it is taken back here instead, once.
                        drop(unsafe { Arc::from_raw(user_data as usize as *const Cell<K>) });
                        let mut slot = cell.slot.lock().unwrap_or_else(|e| e.into_inner());
                        match mem::replace(&mut *slot, Slot::Empty) {
                            Slot::InFlight { kind, .. } => Poll::Ready(kind.failed(err)),
                            _ => unreachable!("an unpushed cell is in flight"),
                        }
                    }
                }
            }
            State::Submitted { cell, ring } => {
                let mut slot = cell.slot.lock().unwrap_or_else(|e| e.into_inner());
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
                        drop(slot);
                        this.state = State::Submitted { cell, ring };
                        Poll::Pending
                    }
                    other => {
                        *slot = other;
                        drop(slot);
                        this.state = State::Submitted { cell, ring };
                        Poll::Pending
                    }
                }
            }
            // As every future (and `async fn`), polling after completion is a caller bug.
            State::Finished => panic!("an I/O operation was polled after it completed"),
        }
    }
}

impl<K: OpKind> Drop for Op<K> {
    fn drop(&mut self) {
        if let State::Submitted { cell, ring } = mem::replace(&mut self.state, State::Finished) {
            let mut slot = cell.slot.lock().unwrap_or_else(|e| e.into_inner());
            match mem::replace(&mut *slot, Slot::Empty) {
                Slot::InFlight { kind, .. } => {
                    *slot = Slot::Abandoned(kind);
                    drop(slot);
                    ring.cancel(Arc::as_ptr(&cell) as usize as u64);
                }
                Slot::Done { kind, res, .. } => {
                    drop(slot);
                    kind.abandoned(res);
                }
                other => *slot = other,
            }
        }
    }
}
