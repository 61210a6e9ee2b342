//! One io_uring per worker: setup, submission, the wait that parks the worker, wake-ups
//! from other threads, and shutdown.
//!
//! # When the ring is entered
//! A busy worker reaps every 16 polls, entering the ring only when the kernel flags
//! completions (IORING_SQ_TASKRUN) or every fourth time (to submit what is queued); a
//! worker with nothing to run reaps what is already there before it steals, and parks in
//! one `io_uring_enter` that submits and waits. Entries are pushed without a syscall.
//!
//! # Who touches what
//! - `local` (the ring itself, its in-flight count, the wake-up read's buffer) is locked
//!   only by the owning thread: the worker the ring belongs to (or, for the current-thread
//!   flavour, whichever thread drives the core). The lock is never contended; it exists so
//!   that ops polled on that thread and the parker share the ring without raw pointers. It
//!   is never held while a waker runs or an op is dropped.
//! - `remote` (requests from other threads: entries to submit, cancellations) is a small
//!   mutex-protected vector, swapped out whole by the owner at each round. It is the only
//!   cross-thread path, and it is per ring, never global.
//! - `state` is the park/unpark word (EMPTY, PARKED, NOTIFIED), as the condvar parker's:
//!   an unpark that finds PARKED ends the owner's `io_uring_enter` wait; one that finds EMPTY
//!   only leaves NOTIFIED, which the owner consumes before its next wait. A worker wakes
//!   another worker's ring with IORING_OP_MSG_RING from its own ring (one enter, the
//!   completion lands straight in the target's queue); any other thread, or a kernel without
//!   MSG_RING, writes the target's eventfd, whose pending read ends the wait. A wake-up
//!   message that fails is retried through the eventfd when its failure is reaped.
//!
//! # Shutdown
//! The owner closes `remote` (later remote requests fail with an error), cancels every
//! in-flight entry (`AsyncCancel` with the ANY flag) and reaps until the in-flight count is
//! zero, within a bound. Only then may the ring be unmapped; if the bound passes (a kernel
//! that never completes a cancelled entry) the ring is leaked rather than freed under the
//! kernel's feet.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue::Entry, types, IoUring};

use super::op::{CellPtr, OpKind, RemoteAbandon};
use crate::park::{Park, Unpark};

/// `user_data` of the eventfd read that ends a wait; never a cell address (those are
/// aligned to 8).
const WAKE_TOKEN: u64 = 1;
/// `user_data` of cancellation entries, whose completions need nothing.
const CANCEL_TOKEN: u64 = 2;
/// `user_data` of the message another worker's ring posts to end this ring's wait.
const MSG_WAKE_TOKEN: u64 = 3;
/// `user_data` of a wake-up message this ring sent to ring `i`: `MSG_SENT_BASE + 8 * i`
/// (only failures post a completion). Below 4096, so never a cell's address.
const MSG_SENT_BASE: u64 = 16;
/// Rings with an index past this use the eventfd only (their token would pass 4096).
const MSG_MAX_RINGS: usize = 500;

const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;

/// How long shutdown waits for cancelled entries to complete before leaking the ring.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// The setup flags a ring got, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RingFlavor {
    /// SINGLE_ISSUER + DEFER_TASKRUN: completions run only when the owner enters the ring.
    DeferTaskrun,
    /// COOP_TASKRUN: no interrupt of the owner to run completions.
    CoopTaskrun,
    /// No optional flags (older kernels).
    Plain,
}

impl RingFlavor {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            RingFlavor::DeferTaskrun => "SINGLE_ISSUER|DEFER_TASKRUN",
            RingFlavor::CoopTaskrun => "COOP_TASKRUN",
            RingFlavor::Plain => "none",
        }
    }
}

/// Ring setup options from the runtime builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingConfig {
    pub(crate) entries: u32,
    /// Whether the ring will be entered by one thread for its whole life (a worker); the
    /// current-thread flavour's core moves between `block_on` callers, so it may not use
    /// SINGLE_ISSUER.
    pub(crate) single_thread: bool,
    /// The building runtime's id, shared by its rings.
    pub(crate) runtime: usize,
}

enum Request {
    Submit(Entry),
    /// An operation dropped on another thread: abandoned (and cancelled if in flight) by the
    /// owner, where its completion is reaped (see [`RingShared::abandon`]).
    Abandon(RemoteAbandon),
}

struct Remote {
    requests: Vec<Request>,
    closed: bool,
}

struct Local {
    uring: IoUring,
    /// Entries pushed whose completion is not reaped yet (wake-up reads and cancellations
    /// not counted).
    in_flight: usize,
    wake_armed: bool,
    /// Eight bytes the eventfd read writes into; never read by us. Its heap memory is
    /// stable and lives as long as the ring.
    wake_buf: Vec<u8>,
    /// Completions reaped while the lock was held by a push, dispatched at the next round.
    backlog: Vec<(u64, i32, u32)>,
    /// Rings whose wake-up message failed, to be woken by eventfd after this round.
    failed_messages: Vec<usize>,
    /// Set once the ring was enabled on its owning thread (rings start disabled so that
    /// SINGLE_ISSUER binds to the worker, not to the builder's thread).
    enabled: bool,
}

/// The part of a ring other threads may reach.
pub(crate) struct RingShared {
    local: Mutex<Local>,
    remote: Mutex<Remote>,
    has_remote: AtomicBool,
    state: AtomicUsize,
    eventfd: OwnedFd,
    /// The ring's own fd, for other rings' MSG_RING wake-ups (read without `local`'s lock:
    /// the owner holds that lock while it waits).
    ring_fd: RawFd,
    /// Whether the kernel has IORING_OP_MSG_RING (probed at setup).
    msg_ring: bool,
    flavor: RingFlavor,
    index: usize,
    /// Which runtime the ring belongs to (a process-wide build counter).
    runtime: usize,
}

impl std::fmt::Debug for RingShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingShared")
            .field("index", &self.index)
            .field("flavor", &self.flavor)
            .finish()
    }
}

thread_local! {
    /// The ring of the core this thread drives, if any.
    static CURRENT: RefCell<Option<Arc<RingShared>>> = const { RefCell::new(None) };
}

/// The ring an operation started on this thread goes to: this thread's own, or, on a
/// thread inside a runtime that drives no core (block_on's, the blocking pool's), one of
/// the runtime's rings, picked by thread so one thread's operations stay in order.
pub(crate) fn for_this_thread() -> io::Result<Arc<RingShared>> {
    if let Some(ring) = CURRENT.with(|c| c.borrow().clone()) {
        return Ok(ring);
    }
    let handle = crate::runtime::Handle::try_current().map_err(|_| {
        io::Error::other(
            "no ringleader runtime: I/O must run inside one (block_on, a task, or a thread that entered it)",
        )
    })?;
    let rings = &handle.shared.rings;
    if rings.is_empty() {
        return Err(io::Error::other("this runtime has no io_uring driver"));
    }
    Ok(rings[thread_slot() % rings.len()].clone())
}

fn thread_slot() -> usize {
    thread_local! {
        static SLOT: usize = {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            NEXT.fetch_add(1, Ordering::Relaxed)
        };
    }
    SLOT.with(|s| *s)
}

/// Installs `ring` as this thread's ring until the guard drops, enabling it on this
/// thread first if it was created disabled (SINGLE_ISSUER binds to the enabling thread).
pub(crate) fn set_current(ring: Option<Arc<RingShared>>) -> CurrentGuard {
    if let Some(ring) = &ring {
        ring.lock_local().enable();
    }
    let previous = CURRENT.with(|c| c.replace(ring));
    CurrentGuard { previous }
}

/// Restores the previous current ring.
pub(crate) struct CurrentGuard {
    previous: Option<Arc<RingShared>>,
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| c.replace(previous));
    }
}

impl RingShared {
    /// Creates a ring with the best flags the kernel accepts.
    ///
    /// # Errors
    /// The OS error of `io_uring_setup` when no flavour can be set up (ENOSYS: no io_uring;
    /// EPERM: a seccomp profile or `kernel.io_uring_disabled`), with the cause named.
    pub(crate) fn new(index: usize, config: RingConfig) -> io::Result<Arc<RingShared>> {
        let entries = config.entries.max(8).next_power_of_two();
        let cq_entries = entries.saturating_mul(4);
        let mut last_err = None;
        let mut attempts = Vec::with_capacity(3);
        // RINGLEADER_IO_URING_FLAGS=coop|none caps the flags, so the fallbacks are tested
        // on kernels that accept the best ones (and tools that mishandle deferred task
        // work, such as valgrind, can run the runtime).
        let cap = std::env::var("RINGLEADER_IO_URING_FLAGS").unwrap_or_default();
        if config.single_thread && cap.is_empty() {
            attempts.push(RingFlavor::DeferTaskrun);
        }
        if cap != "none" {
            attempts.push(RingFlavor::CoopTaskrun);
        }
        attempts.push(RingFlavor::Plain);
        for flavor in attempts {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(cq_entries).setup_clamp();
            match flavor {
                RingFlavor::DeferTaskrun => {
                    builder
                        .setup_single_issuer()
                        .setup_defer_taskrun()
                        .setup_taskrun_flag()
                        .setup_r_disabled();
                }
                RingFlavor::CoopTaskrun => {
                    builder.setup_coop_taskrun().setup_taskrun_flag();
                }
                RingFlavor::Plain => {}
            }
            match builder.build(entries) {
                Ok(uring) => {
                    if !uring.params().is_feature_ext_arg() {
                        // Timed waits need EXT_ARG (5.11); older kernels are not supported.
                        return Err(io::Error::new(
                            io::ErrorKind::Unsupported,
                            "io_uring lacks IORING_FEAT_EXT_ARG (Linux 5.11 or later is needed)",
                        ));
                    }
                    tracing::debug!(worker = index, ?flavor, entries, "io_uring ring set up");
                    // SAFETY: eventfd(2) with valid flags; the fd is checked before use.
                    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // SAFETY: `fd` is a new, valid eventfd that nothing else owns.
                    let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
                    let mut probe = io_uring::Probe::new();
                    let msg_ring = uring.submitter().register_probe(&mut probe).is_ok()
                        && probe.is_supported(opcode::MsgRingData::CODE)
                        && index < MSG_MAX_RINGS;
                    let ring_fd = uring.as_raw_fd();
                    return Ok(Arc::new(RingShared {
                        local: Mutex::new(Local {
                            uring,
                            in_flight: 0,
                            wake_armed: false,
                            wake_buf: Vec::with_capacity(8),
                            backlog: Vec::new(),
                            failed_messages: Vec::new(),
                            enabled: flavor != RingFlavor::DeferTaskrun,
                        }),
                        remote: Mutex::new(Remote {
                            requests: Vec::new(),
                            closed: false,
                        }),
                        has_remote: AtomicBool::new(false),
                        state: AtomicUsize::new(EMPTY),
                        eventfd,
                        ring_fd,
                        msg_ring,
                        flavor,
                        index,
                        runtime: config.runtime,
                    }));
                }
                Err(err) => {
                    tracing::debug!(worker = index, ?flavor, %err, "io_uring setup refused");
                    last_err = Some(err);
                }
            }
        }
        let err = last_err.unwrap_or_else(|| io::Error::other("io_uring setup failed"));
        let cause = match err.raw_os_error() {
            Some(libc::ENOSYS) => "this kernel has no io_uring (ENOSYS)",
            Some(libc::EPERM) => {
                "io_uring is forbidden here (EPERM: a seccomp profile, such as Docker's and \
                 containerd's defaults, or the sysctl kernel.io_uring_disabled); allow the \
                 io_uring_setup, io_uring_enter and io_uring_register system calls"
            }
            Some(libc::ENOMEM) => {
                "io_uring rings could not be allocated (ENOMEM: check RLIMIT_MEMLOCK)"
            }
            _ => "io_uring setup failed",
        };
        Err(io::Error::new(err.kind(), format!("{cause}: {err}")))
    }

    /// The flags this ring was set up with.
    pub(crate) fn flavor(&self) -> RingFlavor {
        self.flavor
    }

    fn lock_local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_owner(self: &Arc<Self>) -> bool {
        // `try_with`: an operation may be dropped while this thread's locals are torn down.
        CURRENT
            .try_with(|c| c.borrow().as_ref().is_some_and(|r| Arc::ptr_eq(r, self)))
            .unwrap_or(false)
    }

    /// Queues `entry` (its `user_data` set to a cell's address) on this ring.
    ///
    /// # Safety
    /// The memory and fds the entry refers to stay valid until its completion is reaped.
    pub(crate) unsafe fn push(self: &Arc<Self>, entry: Entry) -> io::Result<()> {
        if self.is_owner() {
            let mut local = self.lock_local();
            // SAFETY: passed on from the caller.
            unsafe { local.push(&entry)? };
            local.in_flight += 1;
            Ok(())
        } else {
            self.remote_request(Request::Submit(entry))
        }
    }

    /// The future owning `cell` was dropped: abandons the cell and, if its operation is in
    /// flight, asks the kernel to cancel it (best effort: it may complete first, which the
    /// cell handles).
    ///
    /// The cancellation names its target by address, so it must reach the kernel while that
    /// address still means this operation. Only this ring's owner thread reaps completions
    /// (and so frees abandoned cells): on it, the abandon and the cancel run with no reap in
    /// between. Another thread hands the cell to the owner instead of abandoning it itself;
    /// otherwise the owner could reap the completion and free the cell, a new operation
    /// could be allocated at the same address (the allocator hands a just-freed block out
    /// first), and the late cancel would hit it.
    pub(crate) fn abandon<K: OpKind>(self: &Arc<Self>, cell: CellPtr<K>) {
        if !self.is_owner() {
            // Err: the ring shut down; the request's drop abandons the cell (no cancel
            // needed: the shutdown cancels and reaps all that is in flight).
            if let Err(err) = self.remote_request(Request::Abandon(cell.into_remote())) {
                tracing::trace!(%err, "operation dropped after its ring shut down");
            }
            return;
        }
        let Some(target) = cell.abandon() else {
            return;
        };
        let mut local = self.lock_local();
        local.push_cancel(target);
        // Submitted now, not at the end of the round: until the kernel sees it, a cancelled
        // read can still take data that arrives meanwhile (the next read's).
        if let Err(err) = local.uring.submit() {
            tracing::trace!(%err, "io_uring cancel submission deferred to the next round");
        }
    }

    fn remote_request(&self, request: Request) -> io::Result<()> {
        {
            let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
            if remote.closed {
                return Err(io::Error::other("the runtime is shutting down"));
            }
            remote.requests.push(request);
            self.has_remote.store(true, Ordering::Release);
        }
        self.unpark();
        Ok(())
    }

    fn unpark(&self) {
        if self.state.swap(NOTIFIED, Ordering::SeqCst) == PARKED && !self.wake_by_message() {
            self.wake_by_eventfd();
        }
    }

    /// Sends a MSG_RING wake-up from this thread's own ring, if it has one that is not this
    /// ring, both rings support it, and its lock is free (never re-entered). Returns whether
    /// the message went out.
    fn wake_by_message(&self) -> bool {
        if !self.msg_ring {
            return false;
        }
        let Some(mine) = CURRENT.with(|c| c.borrow().clone()) else {
            return false;
        };
        // Same runtime only: a failed message is retried by looking the target up by index
        // among this runtime's rings.
        if !mine.msg_ring || std::ptr::eq(&*mine, self) || mine.runtime != self.runtime {
            return false;
        }
        let Ok(mut local) = mine.local.try_lock() else {
            return false;
        };
        let entry = opcode::MsgRingData::new(types::Fd(self.ring_fd), 0, MSG_WAKE_TOKEN, None)
            .build()
            .flags(io_uring::squeue::Flags::SKIP_SUCCESS)
            .user_data(MSG_SENT_BASE + 8 * self.index as u64);
        // SAFETY: a message refers to no memory; the target ring's fd stays open while its
        // RingShared lives, and we hold an Arc to it through our caller.
        if unsafe { local.push(&entry) }.is_err() {
            return false;
        }
        // Sent now, not at the end of our round: the target is waiting.
        local.uring.submit().is_ok()
    }

    fn wake_by_eventfd(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        let n = unsafe {
            libc::write(
                self.eventfd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        // EAGAIN: the counter is saturated, so a wake-up is pending anyway.
        debug_assert!(n == 8 || io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN));
    }

    /// Moves other threads' requests into the submission queue (owner only).
    fn drain_remote(&self, local: &mut Local) {
        if !self.has_remote.swap(false, Ordering::Acquire) {
            return;
        }
        let requests = {
            let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut remote.requests)
        };
        for request in requests {
            match request {
                Request::Submit(entry) => {
                    // SAFETY: the remote pusher's `push` caller guaranteed the entry's memory
                    // for as long as it is in flight.
                    match unsafe { local.push(&entry) } {
                        Ok(()) => local.in_flight += 1,
                        Err(err) => {
                            // Complete it with the error instead of losing it.
                            let errno = -err.raw_os_error().unwrap_or(libc::EIO);
                            local.backlog.push((entry.get_user_data(), errno, 0));
                        }
                    }
                }
                Request::Abandon(cell) => {
                    // On the owner thread, before this round reaps: the key still names the
                    // operation (see `abandon`). A completed cell is freed here, which may
                    // close an fd it was holding (an accepted connection): no ring access.
                    if let Some(target) = cell.run() {
                        local.push_cancel(target);
                    }
                }
            }
        }
    }

    /// Whether completions are waiting: posted, or flagged as deferred task work (which an
    /// enter runs). Entries merely queued do not count: submitting them alone would cost an
    /// enter that the wait which follows (when nothing else turns up) makes anyway. Owner
    /// only; no syscall.
    fn has_completions(&self) -> bool {
        let mut local = self.lock_local();
        !local.backlog.is_empty()
            || local.uring.submission().taskrun()
            || local.uring.submission().cq_overflow()
            || !local.uring.completion().is_empty()
    }

    /// One round: submit what is queued, wait up to `timeout` (None: until woken) for a
    /// completion, then dispatch every completion. Returns how many operations it completed.
    /// Owner only.
    fn turn(self: &Arc<Self>, timeout: Option<Duration>) -> usize {
        let mut local = self.lock_local();
        local.enable();
        let may_block = timeout != Some(Duration::ZERO)
            && self
                .state
                .compare_exchange(EMPTY, PARKED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
        self.drain_remote(&mut local);
        if may_block && !local.wake_armed {
            let ptr = local.wake_buf.as_mut_ptr();
            let entry = opcode::Read::new(types::Fd(self.eventfd.as_raw_fd()), ptr, 8)
                .build()
                .user_data(WAKE_TOKEN);
            // SAFETY: `wake_buf` has 8 bytes of capacity on the heap and lives as long as
            // the ring (which outlives the entry: shutdown reaps before freeing); the
            // eventfd is owned by this ring.
            if unsafe { local.push(&entry) }.is_ok() {
                local.wake_armed = true;
            }
        }
        let result = if may_block && local.backlog.is_empty() {
            match timeout {
                None => local.uring.submit_and_wait(1),
                Some(d) => {
                    let ts = types::Timespec::new()
                        .sec(d.as_secs())
                        .nsec(d.subsec_nanos());
                    let args = types::SubmitArgs::new().timespec(&ts);
                    local.uring.submitter().submit_with_args(1, &args)
                }
            }
        } else if !local.uring.submission().is_empty()
            || local.uring.submission().taskrun()
            || local.uring.submission().cq_overflow()
        {
            // With deferred (or cooperative) task work, completions only appear after an
            // enter with GETEVENTS, which `submit` does when the kernel flags pending work
            // (IORING_SQ_TASKRUN: both flavours set up the flag). With nothing to submit and
            // nothing flagged, no syscall: what is already posted is reaped below.
            local.uring.submit()
        } else {
            Ok(0)
        };
        if may_block {
            self.state.store(EMPTY, Ordering::SeqCst);
        } else {
            // A token consumed by not blocking.
            let _ =
                self.state
                    .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst);
        }
        match result {
            Ok(_) => {}
            Err(err) => match err.raw_os_error() {
                // Timed out, interrupted, or completions to reap first: all end this wait.
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => {}
                _ => tracing::warn!(%err, "io_uring_enter failed"),
            },
        }
        let mut ready = std::mem::take(&mut local.backlog);
        local.reap(&mut ready);
        let failed = std::mem::take(&mut local.failed_messages);
        drop(local);
        if !failed.is_empty() {
            self.retry_wakeups(&failed);
        }
        dispatch(&ready);
        let completed = ready.len();
        // Keep the allocation for the next round.
        ready.clear();
        let mut local = self.lock_local();
        if local.backlog.is_empty() {
            local.backlog = ready;
        }
        completed
    }

    /// Wakes by eventfd the rings whose wake-up message failed.
    fn retry_wakeups(&self, targets: &[usize]) {
        let Ok(handle) = crate::runtime::Handle::try_current() else {
            return;
        };
        for &index in targets {
            if let Some(ring) = handle.shared.rings.get(index) {
                tracing::debug!(
                    target_ring = index,
                    "MSG_RING wake-up failed; using the eventfd"
                );
                ring.wake_by_eventfd();
            }
        }
    }

    /// Shutdown of the ring by its owner: refuse new remote work, cancel what is in flight
    /// and wait for it (see the module docs).
    pub(crate) fn shutdown(self: &Arc<Self>) {
        {
            let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
            remote.closed = true;
        }
        let deadline = Instant::now() + SHUTDOWN_DRAIN;
        loop {
            {
                let mut local = self.lock_local();
                self.drain_remote(&mut local);
                if local.in_flight == 0 {
                    break;
                }
                let entry = opcode::AsyncCancel2::new(types::CancelBuilder::any())
                    .build()
                    .user_data(CANCEL_TOKEN);
                // SAFETY: a cancellation refers to no memory.
                let _ = unsafe { local.push(&entry) };
            }
            if Instant::now() >= deadline {
                let local = self.lock_local();
                tracing::error!(
                    in_flight = local.in_flight,
                    "io_uring entries did not complete after cancellation; leaking the ring"
                );
                drop(local);
                // Never unmap memory the kernel may still write: leak this ring.
                std::mem::forget(self.clone());
                return;
            }
            self.turn(Some(Duration::from_millis(10)));
        }
    }
}

impl Local {
    /// Enables a ring created disabled, on the thread that will submit to it.
    fn enable(&mut self) {
        if !self.enabled {
            if let Err(err) = self.uring.submitter().register_enable_rings() {
                tracing::error!(%err, "io_uring ring could not be enabled");
            }
            self.enabled = true;
        }
    }

    /// Queues a cancellation of the in-flight entry whose `user_data` is `target`.
    fn push_cancel(&mut self, target: u64) {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(CANCEL_TOKEN);
        // SAFETY: a cancellation refers to no memory; its target is only a key.
        if let Err(err) = unsafe { self.push(&entry) } {
            tracing::debug!(%err, "io_uring cancel could not be queued");
        }
    }

    /// Pushes one entry, making room by submitting when the queue is full.
    ///
    /// # Safety
    /// As [`RingShared::push`].
    unsafe fn push(&mut self, entry: &Entry) -> io::Result<()> {
        loop {
            // SAFETY: passed on from the caller.
            if unsafe { self.uring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            match self.uring.submit() {
                Ok(_) => {}
                Err(err) => match err.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EBUSY | libc::EAGAIN) => {
                        // The completion queue is full: make room by reaping into the
                        // backlog, dispatched at the next round.
                        let mut backlog = std::mem::take(&mut self.backlog);
                        self.reap(&mut backlog);
                        self.backlog = backlog;
                    }
                    _ => return Err(err),
                },
            }
        }
    }

    /// Moves every completion out of the completion queue.
    fn reap(&mut self, out: &mut Vec<(u64, i32, u32)>) {
        let mut cq = self.uring.completion();
        cq.sync();
        for cqe in &mut cq {
            match cqe.user_data() {
                WAKE_TOKEN => self.wake_armed = false,
                CANCEL_TOKEN | MSG_WAKE_TOKEN => {}
                token @ MSG_SENT_BASE..4096 => {
                    // A wake-up message failed (only failures post): retry by eventfd.
                    self.failed_messages
                        .push(((token - MSG_SENT_BASE) / 8) as usize);
                }
                user_data => {
                    self.in_flight -= 1;
                    out.push((user_data, cqe.result(), cqe.flags()));
                }
            }
        }
    }
}

fn dispatch(ready: &[(u64, i32, u32)]) {
    for &(user_data, res, flags) in ready {
        // SAFETY: every user_data other than the tokens is a cell pushed by `Op::poll`,
        // and each completion is reaped once.
        unsafe { super::op::complete(user_data, res, flags) };
    }
}

/// The ring of a thread that drives no core but waits in `block_on` (a multi-thread
/// runtime's caller): created on the thread's first `block_on`, kept for the thread's life
/// so its operations complete on a ring it waits on itself instead of being handed to a
/// worker, and drained (cancel, then wait) when the thread exits. `None` if no ring can be
/// set up: the caller then parks on a condvar and hands its operations to a worker.
pub(crate) fn block_on_parker() -> Option<RingParker> {
    struct OwnRing(Arc<RingShared>);
    impl Drop for OwnRing {
        fn drop(&mut self) {
            self.0.shutdown();
        }
    }
    thread_local! {
        static OWN: RefCell<Option<OwnRing>> = const { RefCell::new(None) };
    }
    OWN.try_with(|own| {
        let mut own = own.borrow_mut();
        if own.is_none() {
            let config = RingConfig {
                entries: 64,
                // Never SINGLE_ISSUER: shutdown may run in the thread-exit destructor.
                single_thread: false,
                // A runtime id no worker ring has: wake-ups to and from it use the eventfd.
                runtime: usize::MAX,
            };
            match RingShared::new(usize::MAX, config) {
                Ok(ring) => *own = Some(OwnRing(ring)),
                Err(err) => {
                    tracing::debug!(%err, "no ring for a block_on thread; using a worker's");
                    return None;
                }
            }
        }
        own.as_ref().map(|r| RingParker::new(r.0.clone()))
    })
    .ok()
    .flatten()
}

/// The parker of a core with a ring: parking is waiting on the ring.
pub(crate) struct RingParker {
    ring: Arc<RingShared>,
    /// `maintain_busy` calls since the last one that turned the ring.
    maintains_since_submit: u32,
}

/// A busy worker's `maintain_busy` (every 16 polls) submits queued entries at least every this
/// many calls: about every 64 polls, the interval at which an epoll runtime polls its
/// reactor when busy.
const SUBMIT_EVERY: u32 = 4;

impl RingParker {
    pub(crate) fn new(ring: Arc<RingShared>) -> RingParker {
        RingParker {
            ring,
            maintains_since_submit: 0,
        }
    }
}

struct RingUnparker(Arc<RingShared>);

impl Unpark for RingUnparker {
    fn unpark(&self) {
        self.0.unpark();
    }
}

impl Park for RingParker {
    fn park(&mut self, timeout: Option<Duration>) {
        self.ring.turn(timeout);
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        Arc::new(RingUnparker(self.ring.clone()))
    }

    fn maintain(&mut self) {
        self.maintains_since_submit = 0;
        self.ring.turn(Some(Duration::ZERO));
    }

    fn maintain_busy(&mut self) {
        // Completions waiting: reap them now. Entries only queued: submit them every
        // SUBMIT_EVERY-th call; until then they ride on the next enter this worker makes
        // anyway (a dispatch, or its wait when it runs out of work), so a busy worker does
        // not pay an enter per few polls just to submit.
        self.maintains_since_submit += 1;
        if self.maintains_since_submit >= SUBMIT_EVERY
            || self.ring.has_remote.load(Ordering::Relaxed)
            || self.ring.has_completions()
        {
            self.maintains_since_submit = 0;
            self.ring.turn(Some(Duration::ZERO));
        }
    }

    fn poll_ready(&mut self) -> bool {
        self.ring.has_completions() && self.ring.turn(Some(Duration::ZERO)) > 0
    }

    fn ring(&self) -> Option<Arc<RingShared>> {
        Some(self.ring.clone())
    }

    fn shutdown(&mut self) {
        self.ring.shutdown();
    }
}
