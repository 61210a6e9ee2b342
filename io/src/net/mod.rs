//! TCP, UDP and Unix-domain sockets on the ring (asyncio's transports' foundations).
//!
//! Every socket is non-blocking and close-on-exec, owns its fd through a shared handle (see
//! the crate docs), and converts from and into its std counterpart.

/// The reading, writing and shutdown methods every stream type has, over its `fd` field
/// (a `SharedFd`): one definition for TCP and Unix streams.
macro_rules! stream_io_methods {
    () => {
        /// Reads into `buf` (from its start): `Ok(0)` is end of stream, or `buf` has no
        /// capacity (then at once, without waiting for data, as std's `read(&mut [])`).
        ///
        /// # Errors
        /// The socket's error (`ConnectionReset`...).
        ///
        /// # Cancel safety
        /// Not cancel safe: a dropped read may have consumed bytes, lost with its buffer.
        pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
            $crate::net::recv_stream(&self.fd, buf).await
        }

        /// Receives into `buf` (from its start) without taking the bytes off the socket:
        /// the next `read` or `peek` returns them again. `Ok(0)` is end of stream, or `buf`
        /// has no capacity (then at once). It may return fewer bytes than are queued.
        ///
        /// # Errors
        /// The socket's error (`ConnectionReset`...).
        ///
        /// # Cancel safety
        /// Cancel safe: a dropped peek consumes nothing.
        pub async fn peek<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
            $crate::net::peek_stream(&self.fd, buf).await
        }

        /// Reads until `buf` is full (its capacity).
        ///
        /// # Errors
        /// `UnexpectedEof` if the stream ends first (the bytes read are in the buffer).
        ///
        /// # Cancel safety
        /// Not cancel safe, as [`read`](Self::read).
        pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
            let fd = &self.fd;
            $crate::fd::read_exact(buf, |b, _| ops::recv(fd.clone(), b)).await
        }

        /// Reads until end of stream, appending to `buf`; gives the number of bytes appended.
        ///
        /// # Errors
        /// The socket's error; the bytes read so far stay in the buffer.
        ///
        /// # Cancel safety
        /// Not cancel safe, as [`read`](Self::read).
        pub async fn read_to_end(&self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
            let fd = &self.fd;
            $crate::fd::read_to_end(buf, |b, _| ops::recv(fd.clone(), b)).await
        }

        /// Reads into several buffers in order (readv): each is filled from its start, the
        /// next only once the previous is full. `Ok(0)` at once if they have no capacity.
        ///
        /// # Errors
        /// As [`read`](Self::read).
        ///
        /// # Cancel safety
        /// Not cancel safe, as [`read`](Self::read).
        pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
            if bufs.iter().all(|b| b.bytes_total() == 0) {
                return (Ok(0), bufs);
            }
            ops::readv(self.fd.clone(), bufs, None).await
        }

        /// Writes some of `buf`'s bytes; returns how many.
        ///
        /// # Errors
        /// `BrokenPipe` if the peer closed (never a SIGPIPE), `ConnectionReset`...
        ///
        /// # Cancel safety
        /// Not cancel safe: a dropped write may have sent some bytes.
        pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
            ops::send_ref(&self.fd, buf).await
        }

        /// Writes every byte of `buf`.
        ///
        /// # Errors
        /// As [`write`](Self::write); `WriteZero` if the socket accepts nothing.
        ///
        /// # Cancel safety
        /// Not cancel safe: an unknown prefix may have been sent.
        pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
            let fd = &self.fd;
            $crate::fd::write_all(buf, |b, _| ops::send_ref(fd, b)).await
        }

        /// Writes the bytes of several buffers in order with one call (sendmsg); returns how
        /// many were written in all.
        ///
        /// # Errors
        /// As [`write`](Self::write).
        ///
        /// # Cancel safety
        /// Not cancel safe, as [`write`](Self::write).
        pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
            ops::writev(self.fd.clone(), bufs, None, true).await
        }

        /// Shuts down the read, write or both halves (`write_eof` is `Shutdown::Write`).
        ///
        /// # Errors
        /// `NotConnected` if the socket is not connected.
        pub async fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
            let how = match how {
                std::net::Shutdown::Read => libc::SHUT_RD,
                std::net::Shutdown::Write => libc::SHUT_WR,
                std::net::Shutdown::Both => libc::SHUT_RDWR,
            };
            ops::shutdown(self.fd.clone(), how).await
        }
    };
}
pub(crate) use stream_io_methods;

/// The `SO_RCVBUF` / `SO_SNDBUF` methods every socket type has, over its `fd` field.
macro_rules! socket_buffer_methods {
    () => {
        /// Asks for a receive buffer of `size` bytes (`SO_RCVBUF`). Linux doubles the value
        /// for its bookkeeping and caps it at `net.core.rmem_max`, so
        /// [`recv_buffer_size`](Self::recv_buffer_size) reads back a different number.
        ///
        /// # Errors
        /// The `setsockopt` error.
        pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
            socket2::SockRef::from(&*self.fd)
                .set_recv_buffer_size($crate::net::tcp::buffer_size_arg(size))
        }

        /// The `SO_RCVBUF` value (as the kernel reports it, doubled on Linux).
        ///
        /// # Errors
        /// The `getsockopt` error.
        pub fn recv_buffer_size(&self) -> io::Result<usize> {
            socket2::SockRef::from(&*self.fd).recv_buffer_size()
        }

        /// Asks for a send buffer of `size` bytes (`SO_SNDBUF`); as for
        /// [`set_recv_buffer_size`](Self::set_recv_buffer_size), Linux doubles and caps it
        /// (at `net.core.wmem_max`).
        ///
        /// # Errors
        /// The `setsockopt` error.
        pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
            socket2::SockRef::from(&*self.fd)
                .set_send_buffer_size($crate::net::tcp::buffer_size_arg(size))
        }

        /// The `SO_SNDBUF` value (as the kernel reports it, doubled on Linux).
        ///
        /// # Errors
        /// The `getsockopt` error.
        pub fn send_buffer_size(&self) -> io::Result<usize> {
            socket2::SockRef::from(&*self.fd).send_buffer_size()
        }
    };
}

pub(crate) use socket_buffer_methods;

/// The options every TCP socket type has (`TcpStream`, `TcpSocket`): linger, keepalive,
/// nodelay, the pending error and the buffer sizes, over its `fd` field.
macro_rules! tcp_option_methods {
    () => {
        /// Sets `SO_LINGER`. `Some(d)`: closing waits up to `d` for unsent data to go out
        /// (the kernel counts whole seconds: a non-zero `d` is rounded up).
        /// `Some(Duration::ZERO)`: closing discards unsent data and resets the connection (the
        /// peer reads `ConnectionReset`). `None` (the default): closing returns at once and the
        /// kernel sends the rest in the background.
        ///
        /// # Errors
        /// The `setsockopt` error.
        pub fn set_linger(&self, linger: Option<std::time::Duration>) -> io::Result<()> {
            socket2::SockRef::from(&*self.fd).set_linger($crate::net::tcp::linger_arg(linger))
        }

        /// The `SO_LINGER` value, as [`set_linger`](Self::set_linger) takes it.
        ///
        /// # Errors
        /// The `getsockopt` error.
        pub fn linger(&self) -> io::Result<Option<std::time::Duration>> {
            socket2::SockRef::from(&*self.fd).linger()
        }

        /// Takes the pending socket error (`SO_ERROR`), clearing it: `Ok(None)` if there is none.
        ///
        /// # Errors
        /// The `getsockopt` error (the pending error itself is the `Ok(Some(..))` value).
        pub fn take_error(&self) -> io::Result<Option<io::Error>> {
            socket2::SockRef::from(&*self.fd).take_error()
        }

        /// Sets `SO_KEEPALIVE`: probe an idle connection so a vanished peer turns into an
        /// error (with the system's timings, two hours of idleness by default on Linux).
        ///
        /// # Errors
        /// The `setsockopt` error.
        pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
            socket2::SockRef::from(&*self.fd).set_keepalive(on)
        }

        /// Whether `SO_KEEPALIVE` is set.
        ///
        /// # Errors
        /// The `getsockopt` error.
        pub fn keepalive(&self) -> io::Result<bool> {
            socket2::SockRef::from(&*self.fd).keepalive()
        }

        $crate::net::socket_buffer_methods!();

        /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
        ///
        /// # Errors
        /// The `setsockopt` error.
        pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
            socket2::SockRef::from(&*self.fd).set_tcp_nodelay(on)
        }

        /// Whether `TCP_NODELAY` is set.
        ///
        /// # Errors
        /// The `getsockopt` error.
        pub fn nodelay(&self) -> io::Result<bool> {
            socket2::SockRef::from(&*self.fd).tcp_nodelay()
        }
    };
}

pub(crate) use tcp_option_methods;

/// One `recv` on a stream socket. A buffer without capacity gives `Ok(0)` at once, as
/// `recv(2)` of 0 bytes does: a zero-length receive through the ring would wait for data
/// to arrive instead (found by `tests/io_net_conformance_audit.rs`).
pub(crate) async fn recv_stream<B: IoBufMut>(
    fd: &ringleader_runtime::driver::SharedFd,
    buf: B,
) -> BufResult<usize, B> {
    if buf.bytes_total() == 0 {
        return (Ok(0), buf);
    }
    ringleader_runtime::driver::ops::recv(fd.clone(), buf).await
}

/// `recv(2)` with `MSG_PEEK` through the ring; an empty buffer returns at once (through
/// the ring it would wait for data).
pub(crate) async fn peek_stream<B: IoBufMut>(
    fd: &ringleader_runtime::driver::SharedFd,
    buf: B,
) -> BufResult<usize, B> {
    if buf.bytes_total() == 0 {
        return (Ok(0), buf);
    }
    ringleader_runtime::driver::ops::recv_peek(fd.clone(), buf).await
}

use crate::BufResult;
use ringleader_runtime::driver::IoBufMut;

mod addr;
mod datagram;
mod socket;
mod tcp;
mod udp;
mod unix;

pub use addr::{lookup_host, ToSocketAddrs};
pub use datagram::{DatagramEndpoint, UdpEndpoint, UnixDatagramEndpoint};
pub use socket::TcpSocket;
pub use tcp::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpListenerBuilder, TcpStream};
pub use udp::UdpSocket;

pub(crate) use tcp::close as close_shared;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
