//! futures-io's poll-based traits over owned-buffer sockets.
//!
//! # Protocol
//! Reads go through a [`RecvBuf`]: the receive in flight and its buffer live in the
//! adapter, so a `poll_read` that returned `Pending` and is never polled again loses no
//! byte; the next poll (of any read method) takes the same receive up.
//!
//! Writes copy into `pending` (at most [`MAX_BUFFERED`] bytes with the one in flight) and
//! return at once; a send of `pending` is started as soon as none is in flight, and kept
//! in `inflight` across polls. A write with nothing buffered first tries a non-blocking
//! `send(2)` directly. `poll_flush` drives the sends until nothing is buffered;
//! `poll_close` flushes, then shuts the write direction down.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ringleader_runtime::driver::{ops, SharedFd};
use socket2::SockRef;

use super::readbuf::{RecvBuf, CHUNK};
use super::StreamSocket;

type SendFuture = Pin<Box<dyn Future<Output = (io::Result<usize>, Vec<u8>)> + Send>>;

/// Bytes a [`Compat`] accepts before `poll_write` waits for sends to finish.
const MAX_BUFFERED: usize = 64 * 1024;

/// A [`TcpStream`](crate::net::TcpStream) or [`UnixStream`](crate::net::UnixStream) as
/// futures-io's [`AsyncRead`](futures_io::AsyncRead),
/// [`AsyncBufRead`](futures_io::AsyncBufRead) and [`AsyncWrite`](futures_io::AsyncWrite),
/// for crates written against those traits.
///
/// ```
/// use futures_io::{AsyncRead, AsyncWrite};
/// use ringleader_io::net::UnixStream;
/// use ringleader_io::streams::Compat;
/// use std::future::poll_fn;
/// use std::pin::Pin;
///
/// # ringleader_runtime::run(async {
/// let (a, b) = UnixStream::pair()?;
/// let (mut a, mut b) = (Compat::new(a), Compat::new(b));
/// let n = poll_fn(|cx| Pin::new(&mut a).poll_write(cx, b"ping")).await?;
/// poll_fn(|cx| Pin::new(&mut a).poll_flush(cx)).await?;
/// let mut buf = [0u8; 4];
/// let got = poll_fn(|cx| Pin::new(&mut b).poll_read(cx, &mut buf)).await?;
/// assert_eq!(&buf[..got], &b"ping"[..n]);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
///
/// Writes are buffered (up to 64 KiB): flush (or close) before dropping, or the bytes not
/// yet sent may be lost. Reads are buffered too ([`AsyncBufRead`](futures_io::AsyncBufRead)).
pub struct Compat<S> {
    stream: S,
    recv: RecvBuf,
    send: SendBuf,
}

impl<S: fmt::Debug> fmt::Debug for Compat<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compat")
            .field("stream", &self.stream)
            .field("read_buffered", &self.recv.data().len())
            .field(
                "write_buffered",
                &(self.send.pending.len() + self.send.inflight_len),
            )
            .finish()
    }
}

impl<S: StreamSocket> Compat<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Compat<S> {
        let fd = stream.shared_fd().clone();
        Compat {
            stream,
            recv: RecvBuf::new(fd.clone()),
            send: SendBuf {
                fd,
                pending: Vec::new(),
                spare: Vec::new(),
                inflight: None,
                inflight_len: 0,
            },
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Gives the socket back. Buffered received bytes and unsent writes are dropped (and
    /// an in-flight operation cancelled): flush first.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

// Nothing is pinned structurally: the socket is only used by reference, and the
// operations' futures are boxed.
impl<S> Unpin for Compat<S> {}

impl<S: StreamSocket> From<S> for Compat<S> {
    fn from(stream: S) -> Compat<S> {
        Compat::new(stream)
    }
}

struct SendBuf {
    fd: SharedFd,
    /// Accepted bytes not yet handed to a send.
    pending: Vec<u8>,
    spare: Vec<u8>,
    inflight: Option<SendFuture>,
    inflight_len: usize,
}

impl SendBuf {
    /// Drives the sends: `Ready(Ok)` once nothing is buffered, `Pending` while a send is in
    /// flight (its completion wakes the caller).
    fn poll_progress(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(op) = self.inflight.as_mut() {
                let (res, mut buf) = ready!(op.as_mut().poll(cx));
                self.inflight = None;
                self.inflight_len = 0;
                match res {
                    Ok(0) => {
                        self.pending.clear();
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Ok(n) if n < buf.len() => {
                        // A partial send: the rest goes first.
                        buf.drain(..n);
                        buf.extend_from_slice(&self.pending);
                        self.pending.clear();
                        std::mem::swap(&mut self.pending, &mut buf);
                        self.spare = buf;
                    }
                    Ok(_) => {
                        buf.clear();
                        if buf.capacity() <= MAX_BUFFERED {
                            self.spare = buf;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        buf.extend_from_slice(&self.pending);
                        self.pending = buf;
                    }
                    Err(e) => {
                        self.pending.clear();
                        return Poll::Ready(Err(e));
                    }
                }
            }
            if self.pending.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let buf = std::mem::replace(&mut self.pending, std::mem::take(&mut self.spare));
            self.inflight_len = buf.len();
            self.inflight = Some(Box::pin(ops::send(self.fd.clone(), buf)));
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.inflight.is_none() && self.pending.is_empty() {
            match SockRef::from(&*self.fd).send_with_flags(data, libc::MSG_NOSIGNAL) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if let Poll::Ready(Err(e)) = self.poll_progress(cx) {
            return Poll::Ready(Err(e));
        }
        let buffered = self.pending.len() + self.inflight_len;
        if buffered >= MAX_BUFFERED {
            // A send is in flight (anything pending is submitted whenever none is) and its
            // completion wakes us.
            return Poll::Pending;
        }
        let n = data.len().min(MAX_BUFFERED - buffered);
        self.pending.extend_from_slice(&data[..n]);
        // Start the send now; its outcome is reported by the next poll.
        if let Poll::Ready(Err(e)) = self.poll_progress(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }
}

impl<S: StreamSocket> futures_io::AsyncRead for Compat<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        let data = ready!(poll_fill_buf(&mut this.recv, cx))?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        this.recv.consume(n);
        Poll::Ready(Ok(n))
    }
}

fn poll_fill_buf<'a>(recv: &'a mut RecvBuf, cx: &mut Context<'_>) -> Poll<io::Result<&'a [u8]>> {
    if recv.data().is_empty() && !recv.eof() {
        ready!(recv.poll_fill(cx, CHUNK))?;
    }
    Poll::Ready(Ok(recv.data()))
}

impl<S: StreamSocket> futures_io::AsyncBufRead for Compat<S> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        poll_fill_buf(&mut self.get_mut().recv, cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().recv.consume(amt);
    }
}

impl<S: StreamSocket> futures_io::AsyncWrite for Compat<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().send.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().send.poll_progress(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.send.poll_progress(cx))?;
        match SockRef::from(&*this.send.fd).shutdown(Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}
