//! A receive buffer whose in-flight receive belongs to the buffer, not to the call that
//! started it: the poll-based core of [`StreamReader`](super::StreamReader) and
//! [`Compat`](super::Compat).
//!
//! # Protocol
//! The unread bytes are `buf[pos..]`. To get more, [`RecvBuf::poll_fill`] moves `buf` into a
//! receive operation on its spare capacity (`buf.slice(len..len + n)`), boxes the future and
//! keeps it in `inflight`. While it is in flight `buf` is an empty placeholder and
//! [`data`](RecvBuf::data) is empty; the bytes are inside the operation. When the operation
//! completes, on whichever poll sees it, `buf` comes back with the new bytes appended. So a
//! caller that stops polling (its future was dropped) loses nothing: the next `poll_fill`
//! polls the same operation.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ringleader_runtime::driver::{ops, IoBuf, SharedFd, Slice};

type RecvFuture = Pin<Box<dyn Future<Output = (io::Result<usize>, Slice<Vec<u8>>)> + Send>>;

/// Spare room a receive gets at least (unless its caller wants less): 16 KiB, a guess
/// between tokio's 8 KiB `BufReader` and asyncio's 256 KiB reads.
pub(crate) const CHUNK: usize = 16 * 1024;

pub(crate) struct RecvBuf {
    fd: SharedFd,
    /// `buf[pos..]` is unread. Empty placeholder while a receive is in flight.
    buf: Vec<u8>,
    pos: usize,
    inflight: Option<RecvFuture>,
    eof: bool,
}

impl RecvBuf {
    pub(crate) fn new(fd: SharedFd) -> RecvBuf {
        RecvBuf {
            fd,
            buf: Vec::new(),
            pos: 0,
            inflight: None,
            eof: false,
        }
    }

    pub(crate) fn fd(&self) -> &SharedFd {
        &self.fd
    }

    /// The unread bytes (none while a receive is in flight: they are inside it).
    pub(crate) fn data(&self) -> &[u8] {
        if self.inflight.is_some() {
            return &[];
        }
        &self.buf[self.pos..]
    }

    /// Whether the peer's end of stream has been received.
    pub(crate) fn eof(&self) -> bool {
        self.eof
    }

    /// Drops the first `n` unread bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.data().len());
        self.pos += n;
        if self.pos == self.buf.len() {
            self.pos = 0;
            self.buf.clear();
        }
    }

    /// Takes the first `n` unread bytes out.
    pub(crate) fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.data().len());
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.consume(n);
        out
    }

    /// Receives at most `want` (at least 1) more bytes into the buffer: `Ok(0)` at end of
    /// stream. The buffer then holds at most `data().len() + want` bytes.
    pub(crate) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.inflight.is_none() {
                if self.eof {
                    return Poll::Ready(Ok(0));
                }
                let want = want.max(1);
                // The spare room this receive should have: what the caller wants, up to a
                // chunk, or up to the buffer's size for large reads (so a big readexactly
                // grows the buffer geometrically, not a chunk at a time).
                let goal = want.min(CHUNK.max(self.buf.len()));
                // Make room: move the unread bytes to the front when the tail is short.
                if self.pos > 0 && self.buf.capacity() - self.buf.len() < goal {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                }
                if self.buf.capacity() - self.buf.len() < goal {
                    // Exact: callers rely on the buffer holding at most `data + want`.
                    self.buf.reserve_exact(goal);
                }
                let len = self.buf.len();
                let n = want.min(self.buf.capacity() - len);
                let buf = std::mem::take(&mut self.buf);
                let slice = buf.slice(len..len + n);
                self.inflight = Some(Box::pin(ops::recv(self.fd.clone(), slice)));
            }
            let Some(op) = self.inflight.as_mut() else {
                unreachable!("set above");
            };
            let (res, slice) = ready!(op.as_mut().poll(cx));
            self.inflight = None;
            self.buf = slice.into_inner();
            match res {
                Ok(0) => {
                    self.eof = true;
                    return Poll::Ready(Ok(0));
                }
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Capacity of the buffer (for memory bounds in tests and docs).
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}
