//! Waiting for children through their pidfd, and reaping the ones whose [`Child`] handle
//! was dropped before they exited.
//!
//! # Waiting
//! [`wait_future`] waits through the ring: `IORING_OP_WAITID` on the pidfd where the kernel
//! has it (Linux 6.7), else a `POLLIN` poll of the pidfd (readable once the child exits)
//! followed by a non-blocking `waitid`. Which one works is learnt from the first wait and
//! kept for the process (`WAITID`). No thread ever blocks in a wait.
//!
//! # Orphans
//! A [`Child`] dropped while its process still runs is adopted here ([`adopt`]):
//! - inside a runtime, a detached task waits for it (with the wait the handle had in flight,
//!   if any) and so reaps it when it exits;
//! - outside any runtime, or if that task is dropped unfinished (its runtime shut down), the
//!   pidfd goes to the `ORPHANS` list, which every [`spawn`](super::Command::spawn) sweeps
//!   with non-blocking waits.
//!
//! So no zombie accumulates in a program that keeps spawning; one whose last child outlives
//! every runtime leaves at most those children unreaped until it exits.
//!
//! [`Child`]: super::Child

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use ringleader_runtime::driver::ops_process::{waitid, waitid_nohang};
use ringleader_runtime::driver::{ops, SharedFd};
use ringleader_runtime::runtime::Handle;

/// A wait in progress, kept by its [`Child`](super::Child) across cancelled `wait` calls (a
/// wait that reaps must not be lost: the kernel gives the status once).
pub(super) type WaitFuture = Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send + Sync>>;

/// Whether `IORING_OP_WAITID` works here: not yet known, yes, or no (poll the pidfd).
static WAITID: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const SUPPORTED: u8 = 1;
const UNSUPPORTED: u8 = 2;

/// Pidfds of dropped children that no task is waiting for.
static ORPHANS: Mutex<Vec<SharedFd>> = Mutex::new(Vec::new());

/// Waits for the child behind `pidfd` to exit, reaping it.
pub(super) fn wait_future(pidfd: SharedFd) -> WaitFuture {
    Box::pin(async move {
        if WAITID.load(Ordering::Relaxed) != UNSUPPORTED {
            match waitid(pidfd.clone()).await {
                Ok(status) => {
                    WAITID.store(SUPPORTED, Ordering::Relaxed);
                    return Ok(status);
                }
                // An unknown opcode is EINVAL in its completion; a ring that refuses it,
                // EOPNOTSUPP. Once the opcode worked, these are real errors.
                Err(err)
                    if matches!(err.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP))
                        && WAITID.load(Ordering::Relaxed) != SUPPORTED =>
                {
                    WAITID.store(UNSUPPORTED, Ordering::Relaxed);
                }
                Err(err) => return Err(err),
            }
        }
        wait_by_poll(&pidfd).await
    })
}

/// The fallback: a pidfd is readable once its process has exited.
pub(super) async fn wait_by_poll(pidfd: &SharedFd) -> io::Result<ExitStatus> {
    loop {
        // The fd stays open: `pidfd` is borrowed for the whole loop.
        ops::poll(pidfd.as_raw_fd(), libc::POLLIN as u32).await?;
        if let Some(status) = waitid_nohang(pidfd.as_raw_fd())? {
            return Ok(status);
        }
    }
}

/// Takes over a dropped child that has not been reaped; `waiting` is its wait in flight.
pub(super) fn adopt(pidfd: SharedFd, waiting: Option<WaitFuture>) {
    let Ok(handle) = Handle::try_current() else {
        // Dropping the wait cancels it; the sweep reaps the child later.
        drop(waiting);
        orphan(pidfd);
        return;
    };
    let guard = OrphanGuard(Some(pidfd.clone()));
    let task = handle.spawn(async move {
        let wait = waiting.unwrap_or_else(|| wait_future(pidfd));
        match wait.await {
            // Reaped here, or (ECHILD) by a wait that completed after its handle let go.
            Ok(_) => guard.disarm(),
            Err(err) if err.raw_os_error() == Some(libc::ECHILD) => guard.disarm(),
            // Any other failure leaves the child to the sweep (the guard's drop).
            Err(_) => {}
        }
    });
    // Detached: the task finishes on its own.
    drop(task);
}

/// Hands the child to the sweep if the waiting task ends without reaping it.
struct OrphanGuard(Option<SharedFd>);

impl OrphanGuard {
    /// The child was reaped: nothing left to do.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for OrphanGuard {
    fn drop(&mut self) {
        if let Some(pidfd) = self.0.take() {
            orphan(pidfd);
        }
    }
}

/// Reaps the child now if it has exited, else lists it for the sweep.
fn orphan(pidfd: SharedFd) {
    if let Ok(None) = waitid_nohang(pidfd.as_raw_fd()) {
        ORPHANS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pidfd);
    }
}

/// Reaps every listed orphan that has exited (called at each spawn).
pub(super) fn sweep() {
    let mut orphans = ORPHANS.lock().unwrap_or_else(|e| e.into_inner());
    if !orphans.is_empty() {
        orphans.retain(|pidfd| matches!(waitid_nohang(pidfd.as_raw_fd()), Ok(None)));
    }
}

/// Whether waits have gone through `IORING_OP_WAITID` (for tests).
#[cfg(test)]
pub(super) fn uses_waitid() -> bool {
    WAITID.load(Ordering::Relaxed) == SUPPORTED
}

/// Forces the poll fallback (`true`), or forgets what was learnt (`false`), for tests.
#[cfg(test)]
pub(super) fn force_poll(on: bool) {
    WAITID.store(if on { UNSUPPORTED } else { UNKNOWN }, Ordering::Relaxed);
}

/// How many orphans wait for the sweep (for tests).
#[cfg(test)]
pub(super) fn orphans() -> usize {
    ORPHANS.lock().unwrap_or_else(|e| e.into_inner()).len()
}
