//! A receive buffer whose in-flight receive belongs to the buffer, not to the call that
//! started it: the poll-based core of [`StreamReader`](super::StreamReader) and
//! [`Compat`](super::Compat).
//!
//! # Protocol
//! The unread bytes are `buf[pos..]`. To get more, [`RecvBuf::poll_fill`] starts a receive
//! and keeps its boxed future in `inflight`, so a caller that stops polling (its future was
//! dropped) loses nothing: the next `poll_fill` polls the same operation. Two modes:
//! - **direct**, when nothing is unread: `buf` itself is lent to the receive (on its spare
//!   capacity) and comes back with the bytes in place; no copy. Meanwhile `buf` is an empty
//!   placeholder, which is right: there is nothing to read.
//! - **side**, when bytes are unread: the receive gets `rx`, a second buffer, and its bytes
//!   are appended to `buf` on completion. The unread bytes stay readable meanwhile, so a
//!   read after a cancelled one is served from them at once.

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
    /// `buf[pos..]` is unread. An empty placeholder while a direct receive is in flight.
    buf: Vec<u8>,
    pos: usize,
    /// The side receive's buffer, kept for reuse.
    rx: Vec<u8>,
    inflight: Option<RecvFuture>,
    /// The receive in flight was given `buf` itself.
    direct: bool,
    eof: bool,
}

impl RecvBuf {
    pub(crate) fn new(fd: SharedFd) -> RecvBuf {
        RecvBuf {
            fd,
            buf: Vec::new(),
            pos: 0,
            rx: Vec::new(),
            inflight: None,
            direct: false,
            eof: false,
        }
    }

    pub(crate) fn fd(&self) -> &SharedFd {
        &self.fd
    }

    /// The unread bytes.
    #[inline]
    pub(crate) fn data(&self) -> &[u8] {
        if self.inflight.is_some() && self.direct {
            return &[];
        }
        &self.buf[self.pos..]
    }

    /// Whether the peer's end of stream has been received.
    #[inline]
    pub(crate) fn eof(&self) -> bool {
        self.eof
    }

    /// Drops the first `n` unread bytes.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.data().len());
        if n == 0 {
            return;
        }
        self.pos += n;
        if self.pos == self.buf.len() {
            self.pos = 0;
            self.buf.clear();
        }
    }

    /// Takes the first `n` unread bytes out.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.data().len());
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.consume(n);
        out
    }

    /// Appends the first `n` unread bytes to `out` and drops them from the buffer.
    #[inline]
    pub(crate) fn take_into(&mut self, n: usize, out: &mut Vec<u8>) {
        let n = n.min(self.data().len());
        out.extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.consume(n);
    }

    /// Receives at most `want` (at least 1) more bytes into the buffer: `Ok(0)` at end of
    /// stream. The unread bytes then number at most `data().len() + want`.
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
                let unread = self.buf.len() - self.pos;
                // The room this receive gets: what the caller wants, up to a chunk, or up
                // to the unread size for large reads (so a big readexactly grows
                // geometrically, not a chunk at a time).
                let goal = want.min(CHUNK.max(unread));
                if unread == 0 {
                    self.buf.clear();
                    self.pos = 0;
                    if self.buf.capacity() < goal {
                        // Exact: callers rely on the buffer holding at most `data + want`.
                        self.buf.reserve_exact(goal);
                    }
                    let n = want.min(self.buf.capacity());
                    let buf = std::mem::take(&mut self.buf);
                    self.direct = true;
                    self.inflight = Some(Box::pin(ops::recv(self.fd.clone(), buf.slice(0..n))));
                } else {
                    let mut rx = std::mem::take(&mut self.rx);
                    rx.clear();
                    if rx.capacity() < goal {
                        rx.reserve_exact(goal);
                    }
                    let n = want.min(rx.capacity());
                    self.direct = false;
                    self.inflight = Some(Box::pin(ops::recv(self.fd.clone(), rx.slice(0..n))));
                }
            }
            let Some(op) = self.inflight.as_mut() else {
                unreachable!("set above");
            };
            let (res, slice) = ready!(op.as_mut().poll(cx));
            self.inflight = None;
            let received = slice.into_inner();
            if self.direct {
                self.buf = received;
            } else {
                if let Ok(n) = res {
                    if self.pos > 0 {
                        self.buf.drain(..self.pos);
                        self.pos = 0;
                    }
                    // Exact: keeps the memory bound (at most `data + want`).
                    self.buf.reserve_exact(n);
                    self.buf.extend_from_slice(&received[..n]);
                }
                // A side buffer grown for one large read is not kept.
                if received.capacity() <= 4 * CHUNK {
                    self.rx = received;
                }
            }
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

    /// Bytes allocated for receiving (the buffer and the side buffer), for memory bounds.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity() + self.rx.capacity()
    }
}
