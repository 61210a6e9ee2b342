//! Waiting for children through their pidfd, and reaping the ones whose [`Child`] handle
//! was dropped before they exited.
//!
//! # Waiting
//! [`wait_future`] waits through the ring: a `POLLIN` poll of the child's pidfd (readable
//! once the child exits), then a non-blocking `waitid` on it that reaps it. No thread ever
//! blocks in a wait.
//!
//! Why not `IORING_OP_WAITID` (Linux 6.7), which reaps in the completion and saves the
//! `waitid` call: measured on the `process` benchmark (spawn + wait of `/bin/true`, 100
//! children in flight), it cost more CPU per child than the poll, counting every process's
//! CPU (the kernel's exit path included): 461-663 µs against 432-578 µs per child in six
//! paired runs on a busy machine, the poll lower in five of them (by 6-22 %) and 1 % higher
//! in the sixth; wall time likewise. The poll's wait queue is the child's own (`pidfd`),
//! while every pending `IORING_OP_WAITID` sits on the parent's one child-exit queue, woken
//! by each exit.
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
use std::sync::Mutex;

use ringleader_runtime::driver::ops_process::waitid_nohang;
use ringleader_runtime::driver::{ops, SharedFd};
use ringleader_runtime::runtime::Handle;

/// A wait in progress, kept by its [`Child`](super::Child) across cancelled `wait` calls (a
/// wait that reaps must not be lost: the kernel gives the status once).
pub(super) type WaitFuture = Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send + Sync>>;

/// Pidfds of dropped children that no task is waiting for.
static ORPHANS: Mutex<Vec<SharedFd>> = Mutex::new(Vec::new());

/// Waits for the child behind `pidfd` to exit, reaping it.
pub(super) fn wait_future(pidfd: SharedFd) -> WaitFuture {
    Box::pin(async move { wait_by_poll(&pidfd).await })
}

/// A pidfd is readable once its process has exited.
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

/// How many orphans wait for the sweep (for tests).
#[cfg(test)]
pub(super) fn orphans() -> usize {
    ORPHANS.lock().unwrap_or_else(|e| e.into_inner()).len()
}
