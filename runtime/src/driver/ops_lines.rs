//! A socket receive that skips its first attempt (`IORING_RECVSEND_POLL_FIRST`), for a
//! reader that has just drained the socket: the kernel arms its poll at once instead of
//! first trying a receive that would fail with `EAGAIN` (a socket lock and an unlock per
//! receive on a request-reply connection). Only a hint: if data is already there, the
//! armed poll fires at once and the receive completes as usual.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::buf::IoBufMut;
use super::op::{Op, OpKind};
use super::ops::SharedFd;

/// The kernel's `IORING_RECVSEND_POLL_FIRST` (recv's `ioprio` flags), Linux 5.19.
const RECVSEND_POLL_FIRST: u16 = 1;

struct RecvPollFirstKind<B> {
    fd: SharedFd,
    buf: B,
}

// SAFETY: the entry points into `buf`'s stable memory, within its capacity; `fd` is kept.
unsafe impl<B: IoBufMut> OpKind for RecvPollFirstKind<B> {
    type Output = (io::Result<usize>, B);

    fn entry(&mut self) -> Entry {
        let len = self.buf.bytes_total().min(u32::MAX as usize) as u32;
        opcode::Recv::new(
            types::Fd(self.fd.as_raw_fd()),
            self.buf.stable_mut_ptr(),
            len,
        )
        .ioprio(RECVSEND_POLL_FIRST)
        .build()
    }

    fn complete(mut self, res: i32, _flags: u32) -> Self::Output {
        if res < 0 {
            return (Err(io::Error::from_raw_os_error(-res)), self.buf);
        }
        // SAFETY: the kernel wrote the first `res` bytes.
        unsafe { self.buf.set_init(res as usize) };
        (Ok(res as usize), self.buf)
    }

    fn failed(self, err: io::Error) -> Self::Output {
        (Err(err), self.buf)
    }
}

/// Receives from a socket into the start of `buf`, as [`ops::recv`](super::ops::recv),
/// waiting for readiness before the first attempt (see the module's docs). Kernels before
/// 5.19 ignore the hint.
pub fn recv_poll_first<B: IoBufMut>(
    fd: SharedFd,
    buf: B,
) -> impl std::future::Future<Output = (io::Result<usize>, B)> + Send {
    Op::new(RecvPollFirstKind { fd, buf })
}
