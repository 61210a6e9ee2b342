//! Waiting for a child process through its pidfd: `IORING_OP_WAITID` (Linux 6.7), and the
//! non-blocking `waitid(2)` that completes the fallback (a pidfd polled for `POLLIN` through
//! the ring, see [`ops::poll`](super::ops::poll)) and `try_wait`.
//!
//! Both reap the child (`WEXITED` without `WNOWAIT`): whoever gets the status must keep it,
//! because the kernel will not give it twice.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use io_uring::{opcode, squeue::Entry};

use super::op::{Op, OpKind};
use super::ops::SharedFd;

/// The wait status (as `waitpid(2)` encodes it) that a `waitid(2)` siginfo describes.
fn wait_status(info: &libc::siginfo_t) -> i32 {
    // SAFETY: the kernel filled `info` for a child state change (SIGCHLD layout), where
    // `si_status` is the member in use.
    let status = unsafe { info.si_status() };
    match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        // Not requested (no WSTOPPED / WCONTINUED), encoded as waitpid would for
        // completeness.
        libc::CLD_STOPPED | libc::CLD_TRAPPED => ((status & 0xff) << 8) | 0x7f,
        _ => 0xffff,
    }
}

/// A siginfo the kernel has not written: `si_pid` reads 0 (what `WNOHANG` leaves when no
/// child has changed state).
fn zeroed_siginfo() -> libc::siginfo_t {
    // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

/// `IORING_OP_WAITID` on a pidfd, for `WEXITED`.
struct WaitIdKind {
    /// Kept open until the completion (the kernel resolves it at issue time).
    pidfd: SharedFd,
    /// Written by the kernel at completion: boxed so it stays put and outlives a dropped
    /// future (the driver keeps the kind until the completion).
    info: Box<libc::siginfo_t>,
}

// SAFETY: the entry points into the boxed siginfo owned by the kind; the pidfd is kept open
// by `pidfd`.
unsafe impl OpKind for WaitIdKind {
    type Output = io::Result<ExitStatus>;

    fn entry(&mut self) -> Entry {
        let info: *mut libc::siginfo_t = &mut *self.info;
        opcode::WaitId::new(
            libc::P_PIDFD,
            self.pidfd.as_raw_fd() as libc::id_t,
            libc::WEXITED,
        )
        .infop(info.cast_const())
        .build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        if res < 0 {
            return Err(io::Error::from_raw_os_error(-res));
        }
        Ok(ExitStatus::from_raw(wait_status(&self.info)))
    }

    // An abandoned wait that reaped the child loses the status: the caller that drops a
    // wait future accepts that (see `waitid`).

    fn failed(self, err: io::Error) -> Self::Output {
        Err(err)
    }
}

// SAFETY: the siginfo is plain data owned by the kind (its raw pointer members are only
// written by the kernel, never dereferenced here).
unsafe impl Send for WaitIdKind {}

// SAFETY: as for Send: a shared reference gives only reads of plain data (no interior
// mutability), so the future holding the kind can be shared.
unsafe impl Sync for WaitIdKind {}

/// Waits for the child behind `pidfd` to exit and reaps it (`IORING_OP_WAITID` with
/// `P_PIDFD`, `WEXITED`), giving its exit status.
///
/// # Errors
/// `EINVAL` or `EOPNOTSUPP` (as `io::Error`s) on kernels without the opcode (before 6.7):
/// fall back to polling the pidfd and [`waitid_nohang`]. `ECHILD` if the child was reaped by
/// someone else.
///
/// # Cancel safety
/// Not cancel safe: a dropped future whose operation completed anyway reaped the child, and
/// the status is lost. Keep the future (not the call) alive across cancellations to avoid
/// this.
pub fn waitid(pidfd: SharedFd) -> impl std::future::Future<Output = io::Result<ExitStatus>> + Send {
    Op::new(WaitIdKind {
        pidfd,
        info: Box::new(zeroed_siginfo()),
    })
}

/// A non-blocking `waitid(P_PIDFD, pidfd, WEXITED | WNOHANG)`: the child's status if it has
/// exited (reaping it), `None` if it still runs.
///
/// # Errors
/// `ECHILD` if the child was already reaped (by someone else, or an abandoned wait), `EBADF`
/// or `EINVAL` for an fd that is not a pidfd of a child of this process.
pub fn waitid_nohang(pidfd: RawFd) -> io::Result<Option<ExitStatus>> {
    let mut info = zeroed_siginfo();
    loop {
        // SAFETY: `info` is a valid siginfo_t the call may write; the call does not keep it.
        let rc = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        if rc == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    // SAFETY: after a successful waitid the SIGCHLD layout is in use; `si_pid` is 0 when no
    // child changed state (WNOHANG), as `info` started zeroed.
    if unsafe { info.si_pid() } == 0 {
        return Ok(None);
    }
    Ok(Some(ExitStatus::from_raw(wait_status(&info))))
}
