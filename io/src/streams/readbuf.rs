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
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{ready, Context, Poll};

use ringleader_runtime::driver::{ops, ops_lines, IoBuf, SharedFd, Slice};

type RecvFuture = Pin<Box<dyn Future<Output = (io::Result<usize>, Slice<Vec<u8>>)> + Send>>;

/// The receive in flight. The future is reached only through `&mut` (polled, replaced,
/// dropped); through `&` one can only ask whether there is one. That keeps the buffer, and
/// so `StreamReader`, `Sync` although the future is not: a handler may hold `&reader`
/// across an `.await` in a spawned task.
struct InFlight(Option<RecvFuture>);

// SAFETY: a shared `&InFlight` only reads whether the option is `Some` (its own pointer
// field), never the future behind it; the future is touched only through `&mut InFlight`,
// which excludes every other access. Sharing `&InFlight` between threads therefore never
// shares the future (which is `Send`, not `Sync`).
unsafe impl Sync for InFlight {}

impl InFlight {
    fn is_some(&self) -> bool {
        self.0.is_some()
    }

    fn is_none(&self) -> bool {
        self.0.is_none()
    }

    fn set(&mut self, op: RecvFuture) {
        self.0 = Some(op);
    }

    fn get_mut(&mut self) -> Option<&mut RecvFuture> {
        self.0.as_mut()
    }

    fn clear(&mut self) {
        self.0 = None;
    }
}

/// Spare room a receive gets at least (unless its caller wants less): 16 KiB, a guess
/// between tokio's 8 KiB `BufReader` and asyncio's 256 KiB reads.
pub(crate) const CHUNK: usize = 16 * 1024;

/// Cleared for the process if the kernel rejects `IORING_RECVSEND_POLL_FIRST` (EINVAL,
/// before Linux 5.19): receives then always try first.
static POLL_FIRST_OK: AtomicBool = AtomicBool::new(true);

/// Starts a receive into `buf`: one that waits for readiness first when the socket was
/// just drained (see [`ops_lines::recv_poll_first`]).
fn start_recv(fd: &SharedFd, buf: Slice<Vec<u8>>, drained: bool) -> (RecvFuture, bool) {
    if drained && POLL_FIRST_OK.load(Ordering::Relaxed) {
        (Box::pin(ops_lines::recv_poll_first(fd.clone(), buf)), true)
    } else {
        (Box::pin(ops::recv(fd.clone(), buf)), false)
    }
}

pub(crate) struct RecvBuf {
    fd: SharedFd,
    /// `buf[pos..]` is unread. An empty placeholder while a direct receive is in flight.
    buf: Vec<u8>,
    pos: usize,
    /// The side receive's buffer, kept for reuse.
    rx: Vec<u8>,
    inflight: InFlight,
    /// The receive in flight was given `buf` itself.
    direct: bool,
    /// The receive in flight waits for readiness first (it may fail where that is unknown).
    poll_first: bool,
    /// The last receive took less than it was offered: the socket is likely empty now, so
    /// the next receive waits for readiness before trying.
    drained: bool,
    eof: bool,
}

impl RecvBuf {
    pub(crate) fn new(fd: SharedFd) -> RecvBuf {
        RecvBuf {
            fd,
            buf: Vec::new(),
            pos: 0,
            rx: Vec::new(),
            inflight: InFlight(None),
            direct: false,
            poll_first: false,
            drained: false,
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

    /// If the unread bytes hold `byte` at most `limit` bytes in, appends them through it
    /// to `out`, drops them from the buffer and gives their length: a whole buffered line
    /// in one pass (one search, one copy).
    #[inline]
    pub(crate) fn take_through_into(
        &mut self,
        byte: u8,
        limit: usize,
        find: impl FnOnce(u8, &[u8]) -> Option<usize>,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        let data = self.data();
        let at = find(byte, data)?;
        if at > limit {
            return None;
        }
        let n = at + 1;
        out.extend_from_slice(&data[..n]);
        self.pos += n;
        if self.pos == self.buf.len() {
            self.pos = 0;
            self.buf.clear();
        }
        Some(n)
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
                    let (op, poll_first) = start_recv(&self.fd, buf.slice(0..n), self.drained);
                    self.inflight.set(op);
                    self.poll_first = poll_first;
                } else {
                    let mut rx = std::mem::take(&mut self.rx);
                    rx.clear();
                    if rx.capacity() < goal {
                        rx.reserve_exact(goal);
                    }
                    let n = want.min(rx.capacity());
                    self.direct = false;
                    let (op, poll_first) = start_recv(&self.fd, rx.slice(0..n), self.drained);
                    self.inflight.set(op);
                    self.poll_first = poll_first;
                }
            }
            let Some(op) = self.inflight.get_mut() else {
                unreachable!("set above");
            };
            let (res, slice) = ready!(op.as_mut().poll(cx));
            self.inflight.clear();
            let offered = slice.bytes_total();
            let received = slice.into_inner();
            if let Ok(n) = res {
                self.drained = n < offered;
            }
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
                Err(e) if self.poll_first && e.raw_os_error() == Some(libc::EINVAL) => {
                    // A kernel without the hint: plain receives from now on.
                    POLL_FIRST_OK.store(false, Ordering::Relaxed);
                    self.drained = false;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Bytes allocated for receiving (the buffer and the side buffer), for memory bounds.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity() + self.rx.capacity()
    }
}
