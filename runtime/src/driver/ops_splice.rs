//! `splice(2)` through the ring (`IORING_OP_SPLICE`), for sendfile: file → pipe → socket
//! without copying through user memory.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::op::{Op, OpKind};
use super::ops::SharedFd;

/// `SPLICE_F_MOVE`: move pages instead of copying where the kernel can (a hint).
pub const SPLICE_F_MOVE: u32 = libc::SPLICE_F_MOVE;
/// `SPLICE_F_MORE`: more data follows (a socket may hold a partial segment back).
pub const SPLICE_F_MORE: u32 = libc::SPLICE_F_MORE;

struct SpliceKind {
    fd_in: SharedFd,
    off_in: Option<u64>,
    fd_out: SharedFd,
    off_out: Option<u64>,
    len: u32,
    flags: u32,
}

/// The kernel's "no offset" (use the fd's position; required for pipes and sockets).
fn offset(off: Option<u64>) -> i64 {
    off.map_or(-1, |o| o.min(i64::MAX as u64) as i64)
}

// SAFETY: refers to no memory; both fds are kept open by the kind until it is dropped.
unsafe impl OpKind for SpliceKind {
    type Output = io::Result<usize>;

    fn entry(&mut self) -> Entry {
        opcode::Splice::new(
            types::Fd(self.fd_in.as_raw_fd()),
            offset(self.off_in),
            types::Fd(self.fd_out.as_raw_fd()),
            offset(self.off_out),
            self.len,
        )
        .flags(self.flags)
        .build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else {
            Ok(res as usize)
        }
    }

    fn failed(self, err: io::Error) -> Self::Output {
        Err(err)
    }
}

/// Moves up to `len` bytes from `fd_in` (at `off_in`, or its position if `None`) to
/// `fd_out` (likewise); one of them must be a pipe. Returns the bytes moved (0: end of
/// input). The fds are kept open until the kernel is done, even if the future is dropped.
pub fn splice(
    fd_in: SharedFd,
    off_in: Option<u64>,
    fd_out: SharedFd,
    off_out: Option<u64>,
    len: u32,
    flags: u32,
) -> impl Future<Output = io::Result<usize>> + Send {
    Op::new(SpliceKind {
        fd_in,
        off_in,
        fd_out,
        off_out,
        len,
        flags,
    })
}
