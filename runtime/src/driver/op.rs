#![cfg_attr(all(ringleader_loom, not(test)), allow(dead_code))]
//! One in-flight operation: the heap cell the kernel's `user_data` points at, and the
//! future that owns it.
//!
//! # Protocol
//! A [`Cell`] is one `Box` shared by two parties: the owner (the [`Op`] future, through a
//! [`CellPtr`]) and the ring (from the push of its entry until its completion is reaped).
//! `user_data` is the cell's address. There is no reference count: the state word says who
//! goes last, and that party frees the cell. Until the entry is pushed the owner has the cell
//! to itself (it builds the entry from the kind's memory at its final heap address, and takes
//! the cell back if the push fails).
//!
//! State bits (one `AtomicUsize`, all zero while in flight):
//! - `REGISTERING`: the owner is replacing the stored waker (a poll with a waker that would
//!   not wake the stored one's task). Set and cleared by the owner only.
//! - `NOTIFYING`: the reaper is taking the stored waker out. Set and cleared by the reaper.
//! - `COMPLETE`: the result is stored; the reaper will not touch the cell again.
//! - `ABANDONED`: the owner dropped its future; it will not touch the cell again.
//!
//! Who touches what:
//! - `kind` (what the kernel may use): the owner until the push; nobody while in flight;
//!   then whoever frees the cell (the owner turns it into the output, or whoever goes last
//!   after an abandon hands it to [`OpKind::abandoned`]).
//! - `res`: written by the reaper before it publishes `COMPLETE` (or before it sees
//!   `ABANDONED`); read by the owner only after it saw `COMPLETE`.
//! - `waker`: written at creation; afterwards by the owner only while it holds
//!   `REGISTERING`, taken by the reaper only while it holds `NOTIFYING`. The two bits are
//!   never set together: each is taken by a compare-exchange from a state without the other.
//!
//! Transitions:
//! - reaper, state 0: `0 → NOTIFYING`, take the waker, then `NOTIFYING → COMPLETE` in one
//!   `fetch_xor`, then wake. If that `fetch_xor` shows `ABANDONED` (the owner left while it
//!   notified), it frees the cell instead of waking.
//! - reaper, `REGISTERING`: sets `COMPLETE` and leaves; the owner sees it when it tries to
//!   clear `REGISTERING`, and takes the output in the same poll.
//! - reaper, `ABANDONED`: the owner is gone: frees the cell.
//! - owner poll: `COMPLETE` → takes the output and frees the cell (one load, no
//!   read-modify-write: the usual poll after a wake-up); `NOTIFYING` → a wake-up is on its
//!   way to the stored waker; wakes its own waker too (the stored one may be stale) and
//!   returns `Pending`; `0` → `REGISTERING`, stores its waker if it differs, clears the bit
//!   (or, if `COMPLETE` arrived meanwhile, takes the output).
//! - owner drop: `fetch_or(ABANDONED)`. If `COMPLETE` was set, the owner frees the cell
//!   (after [`OpKind::abandoned`]); if it was 0, the operation is in flight: the owner sends
//!   an `AsyncCancel` (the address is only a key: the cell may already be freed) and the
//!   reaper frees the cell at the completion.
//!
//! Memory the kernel may touch is owned by `kind`, inside the cell, on the heap: it never
//! moves and is freed only after the completion, whichever party goes last. The kernel posts
//! exactly one completion per (non-multishot) entry, so the reaper runs once per cell.

#[cfg(not(ringleader_loom))]
use std::future::Future;
use std::io;
use std::mem::ManuallyDrop;
#[cfg(not(ringleader_loom))]
use std::pin::Pin;
use std::ptr::NonNull;
#[cfg(not(ringleader_loom))]
use std::task::Poll;
use std::task::{Context, Waker};

use io_uring::squeue::Entry;

#[cfg(not(ringleader_loom))]
use super::ring::{self, RingShared};
use crate::loom::{AtomicUsize, Ordering, UnsafeCell};

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

const REGISTERING: usize = 1;
const NOTIFYING: usize = 2;
const COMPLETE: usize = 4;
const ABANDONED: usize = 8;

/// The header every cell starts with, so the reaper can complete a cell of any kind from a
/// thin `user_data` pointer.
#[repr(C)]
pub(crate) struct Header {
    complete: unsafe fn(*const Header, i32, u32),
}

/// `repr(C)` with the header first: a pointer to the cell is a pointer to its header.
#[repr(C)]
pub(crate) struct Cell<K> {
    header: Header,
    state: AtomicUsize,
    /// Taken exactly once, by whoever frees the cell (or by the owner if never pushed).
    kind: UnsafeCell<ManuallyDrop<K>>,
    /// The completion's result and flags.
    res: UnsafeCell<(i32, u32)>,
    waker: UnsafeCell<Option<Waker>>,
}

/// Completes the cell behind `user_data` with `res`. Called by the reaper, once per cell.
///
/// # Safety
/// `user_data` is the [`CellPtr::user_data`] of a cell whose entry was pushed to a ring, and
/// this is the one completion of that entry.
pub(crate) unsafe fn complete(user_data: u64, res: i32, flags: u32) {
    let header = user_data as usize as *const Header;
    // SAFETY: the caller guarantees `header` points at a live cell (the owner cannot free
    // it before `COMPLETE`), whose header was written at construction and never changes.
    let complete = unsafe { (*header).complete };
    // SAFETY: `complete` is the function of the cell's own kind; caller's guarantees pass on.
    unsafe { complete(header, res, flags) }
}

/// # Safety
/// As [`complete`], and `header` is the header of a `Cell<K>`.
unsafe fn complete_cell<K: OpKind>(header: *const Header, res: i32, flags: u32) {
    // SAFETY: `Cell` is repr(C) with the header first, so the pointers coincide; the cell is
    // alive until this function publishes `COMPLETE` or frees it (module docs).
    let ptr = unsafe { NonNull::new_unchecked(header.cast::<Cell<K>>().cast_mut()) };
    // SAFETY: as above.
    let cell = unsafe { ptr.as_ref() };
    // SAFETY: only the reaper writes `res`, and the owner reads it only after `COMPLETE`.
    cell.res.with_mut(|r| unsafe { *r = (res, flags) });
    let mut cur = cell.state.load(Ordering::Acquire);
    loop {
        if cur & ABANDONED != 0 {
            // SAFETY: the owner is gone and the kernel is done: we are the last party.
            unsafe { free_abandoned(ptr) };
            return;
        }
        let next = if cur & REGISTERING != 0 {
            cur | COMPLETE
        } else {
            cur | NOTIFYING
        };
        match cell
            .state
            .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => break,
            Err(actual) => cur = actual,
        }
    }
    if cur & REGISTERING != 0 {
        // The registering owner takes the output when it clears its bit; the cell is its.
        return;
    }
    // SAFETY: we hold NOTIFYING, so the owner does not touch the waker slot.
    let waker = cell.waker.with_mut(|w| unsafe { (*w).take() });
    let prev = cell.state.fetch_xor(NOTIFYING | COMPLETE, Ordering::AcqRel);
    if prev & ABANDONED != 0 {
        drop(waker);
        // SAFETY: the owner left while we notified (it saw no COMPLETE, so it left the cell
        // to us), and the kernel is done.
        unsafe { free_abandoned(ptr) };
        return;
    }
    // COMPLETE is published: the owner may free the cell at any time; we only wake.
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Frees a cell whose owner left, handing the result to [`OpKind::abandoned`].
///
/// # Safety
/// The caller is the last party (module docs) and the completion was stored in `res`.
unsafe fn free_abandoned<K: OpKind>(ptr: NonNull<Cell<K>>) {
    // SAFETY: the cell was made by `Box::new` in `CellPtr::new`; nobody else refers to it.
    let cell = unsafe { Box::from_raw(ptr.as_ptr()) };
    // SAFETY: exclusive access (above).
    let (res, _) = cell.res.with(|r| unsafe { *r });
    // SAFETY: exclusive access; the kind is taken once, here, and the box's drop does not
    // drop it again (ManuallyDrop).
    let kind = cell
        .kind
        .with_mut(|k| unsafe { ManuallyDrop::take(&mut *k) });
    drop(cell);
    kind.abandoned(res);
}

/// The owner's handle on a cell: polls it, takes its output, or abandons it (on drop).
pub(crate) struct CellPtr<K: OpKind> {
    ptr: NonNull<Cell<K>>,
}

// SAFETY: the cell's shared fields are synchronised by its state word (module docs); the
// kind is Send (OpKind: Send) and wakers are Send + Sync.
unsafe impl<K: OpKind> Send for CellPtr<K> {}
// SAFETY: `&CellPtr` gives access to nothing (every method takes `&mut self` or `self`).
unsafe impl<K: OpKind> Sync for CellPtr<K> {}

impl<K: OpKind> CellPtr<K> {
    /// A new cell holding `kind`, to wake `waker` at completion, and the entry describing
    /// its operation (its memory is inside the cell, at its final heap address), `user_data`
    /// set. No atomic operation: the cell is not shared yet.
    pub(crate) fn new(kind: K, waker: Waker) -> (CellPtr<K>, Entry) {
        let cell = Box::new(Cell {
            header: Header {
                complete: complete_cell::<K>,
            },
            state: AtomicUsize::new(0),
            kind: UnsafeCell::new(ManuallyDrop::new(kind)),
            res: UnsafeCell::new((0, 0)),
            waker: UnsafeCell::new(Some(waker)),
        });
        let ptr = NonNull::from(Box::leak(cell));
        let this = CellPtr { ptr };
        // SAFETY: the cell is not shared yet: we have it to ourselves.
        let entry = this.cell().kind.with_mut(|k| unsafe { (*k).entry() });
        let entry = entry.user_data(this.user_data());
        (this, entry)
    }

    fn cell(&self) -> &Cell<K> {
        // SAFETY: the owner's handle keeps the cell alive: nobody else frees it before the
        // owner sets ABANDONED (which consumes the handle).
        unsafe { self.ptr.as_ref() }
    }

    /// The key the kernel knows the operation by: the cell's address.
    pub(crate) fn user_data(&self) -> u64 {
        self.ptr.as_ptr() as usize as u64
    }

    /// Takes the kind back from a cell whose entry never reached a ring.
    #[cfg_attr(ringleader_loom, allow(dead_code))]
    pub(crate) fn unpushed(self) -> K {
        let this = ManuallyDrop::new(self);
        // SAFETY: not pushed, so never shared: the box is ours alone.
        let cell = unsafe { Box::from_raw(this.ptr.as_ptr()) };
        // SAFETY: exclusive access; taken once.
        cell.kind
            .with_mut(|k| unsafe { ManuallyDrop::take(&mut *k) })
    }

    /// The owner's poll: the output once completed (the cell is freed), else the handle back
    /// with `cx`'s waker stored.
    pub(crate) fn poll(self, cx: &mut Context<'_>) -> Result<K::Output, CellPtr<K>> {
        let cell = self.cell();
        let mut cur = cell.state.load(Ordering::Acquire);
        loop {
            if cur & COMPLETE != 0 {
                return Ok(self.take_output());
            }
            if cur & NOTIFYING != 0 {
                // The stored waker is being woken; ours may differ (a moved future): be
                // polled again to find the output.
                cx.waker().wake_by_ref();
                return Err(self);
            }
            match cell.state.compare_exchange(
                cur,
                cur | REGISTERING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        // SAFETY: we hold REGISTERING, so the reaper does not touch the waker slot.
        cell.waker.with_mut(|w| unsafe {
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        });
        match cell
            .state
            .compare_exchange(REGISTERING, 0, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Err(self),
            // The completion arrived while we registered (the reaper set COMPLETE and left).
            Err(_) => Ok(self.take_output()),
        }
    }

    /// Turns a completed cell into the output and frees it.
    fn take_output(self) -> K::Output {
        let this = ManuallyDrop::new(self);
        // SAFETY: COMPLETE was seen (Acquire): the reaper is done with the cell, and the
        // owner is the last party.
        let cell = unsafe { Box::from_raw(this.ptr.as_ptr()) };
        // SAFETY: exclusive access; `res` was written before COMPLETE was published.
        let (res, flags) = cell.res.with(|r| unsafe { *r });
        // SAFETY: exclusive access; the kind is taken once, here.
        let kind = cell
            .kind
            .with_mut(|k| unsafe { ManuallyDrop::take(&mut *k) });
        drop(cell);
        kind.complete(res, flags)
    }

    /// This handle, type-erased, to be abandoned on the ring's owner thread.
    #[cfg(not(ringleader_loom))]
    pub(crate) fn into_remote(self) -> RemoteAbandon {
        /// # Safety
        /// `cell` is the pointer of a `CellPtr<K>` given up by `into_remote`; called once.
        unsafe fn abandon_erased<K: OpKind>(cell: NonNull<()>) -> Option<u64> {
            CellPtr::<K> { ptr: cell.cast() }.abandon()
        }
        let this = ManuallyDrop::new(self);
        RemoteAbandon {
            cell: this.ptr.cast(),
            abandon: abandon_erased::<K>,
        }
    }

    /// The owner gives up. A completed operation's result is released now
    /// ([`OpKind::abandoned`]); one in flight is left to the reaper, and its key is returned
    /// so that a cancellation can be sent.
    pub(crate) fn abandon(self) -> Option<u64> {
        let this = ManuallyDrop::new(self);
        let user_data = this.user_data();
        let prev = this.cell().state.fetch_or(ABANDONED, Ordering::AcqRel);
        if prev & COMPLETE != 0 {
            // SAFETY: the reaper published COMPLETE, so it is done; we are the last party.
            unsafe { free_abandoned(this.ptr) };
            None
        } else if prev & NOTIFYING != 0 {
            // Completed; the reaper frees the cell when it sees ABANDONED. Nothing to cancel.
            None
        } else {
            Some(user_data)
        }
    }
}

/// A dropped operation's cell on its way to its ring's owner thread, which abandons it there
/// (see `RingShared::abandon`). Type-erased, so that the ring's request queue can hold
/// cells of any kind.
#[cfg(not(ringleader_loom))]
pub(crate) struct RemoteAbandon {
    cell: NonNull<()>,
    abandon: unsafe fn(NonNull<()>) -> Option<u64>,
}

// SAFETY: it stands for one `CellPtr<K>`, which is Send.
#[cfg(not(ringleader_loom))]
unsafe impl Send for RemoteAbandon {}

#[cfg(not(ringleader_loom))]
impl RemoteAbandon {
    /// Abandons the cell ([`CellPtr::abandon`]): the key to cancel if it is in flight.
    pub(crate) fn run(self) -> Option<u64> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `cell` and `abandon` were made together from one `CellPtr<K>` by
        // `CellPtr::into_remote`, and this is their only use (self is consumed and its
        // `Drop` skipped).
        unsafe { (this.abandon)(this.cell) }
    }
}

#[cfg(not(ringleader_loom))]
impl Drop for RemoteAbandon {
    fn drop(&mut self) {
        // Never reached the ring's owner (the ring shut down): abandon here, with no cancel;
        // the shutdown cancels and reaps whatever is still in flight.
        // SAFETY: as in `run`; `drop` runs only when `run` did not.
        let _ = unsafe { (self.abandon)(self.cell) };
    }
}

impl<K: OpKind> Drop for CellPtr<K> {
    fn drop(&mut self) {
        // Only reached if a holder forgot to call `abandon`: do its work, minus the cancel
        // (the operation then runs to its end; nothing is freed under the kernel).
        let this = CellPtr { ptr: self.ptr };
        let _ = this.abandon();
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
enum State<K: OpKind> {
    Unsubmitted(K),
    Submitted {
        cell: CellPtr<K>,
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
        match std::mem::replace(&mut this.state, State::Finished) {
            State::Unsubmitted(kind) => {
                let ring = match ring::for_this_thread() {
                    Ok(ring) => ring,
                    Err(err) => return Poll::Ready(kind.failed(err)),
                };
                let (cell, entry) = CellPtr::new(kind, cx.waker().clone());
                // SAFETY: the entry's memory is owned by the kind inside the cell (OpKind's
                // contract), and the cell stays alive until its completion (the owner frees it
                // only after COMPLETE; an abandoned one is freed by the reaper).
                match unsafe { ring.push(entry) } {
                    Ok(()) => {
                        this.state = State::Submitted { cell, ring };
                        Poll::Pending
                    }
                    Err(err) => Poll::Ready(cell.unpushed().failed(err)),
                }
            }
            State::Submitted { cell, ring } => match cell.poll(cx) {
                Ok(out) => Poll::Ready(out),
                Err(cell) => {
                    this.state = State::Submitted { cell, ring };
                    Poll::Pending
                }
            },
            // As every future (and `async fn`), polling after completion is a caller bug.
            State::Finished => panic!("an I/O operation was polled after it completed"),
        }
    }
}

#[cfg(not(ringleader_loom))]
impl<K: OpKind> Drop for Op<K> {
    fn drop(&mut self) {
        if let State::Submitted { cell, ring } = std::mem::replace(&mut self.state, State::Finished)
        {
            ring.abandon(cell);
        }
    }
}
