//! TCP listeners and streams.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use ringleader_runtime::driver::{ops, IoBuf, IoBufMut, SharedFd, SockAddrBuf};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::addr::{resolve, ToSocketAddrs};
use crate::{fd, BufResult};

fn new_socket(addr: &SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(*addr),
        ty.nonblocking().cloexec(),
        Some(protocol),
    )?;
    Ok(socket)
}

/// Options for a listener: `SO_REUSEPORT` and the backlog (`SO_REUSEADDR` is always on).
#[derive(Debug, Clone)]
pub struct TcpListenerBuilder {
    reuse_port: bool,
    backlog: i32,
    only_v6: Option<bool>,
}

impl Default for TcpListenerBuilder {
    fn default() -> Self {
        TcpListenerBuilder {
            reuse_port: false,
            backlog: 1024,
            only_v6: None,
        }
    }
}

impl TcpListenerBuilder {
    /// Sets `SO_REUSEPORT`: several listeners (one per worker, say) share the port and the
    /// kernel spreads connections between them.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// The accept backlog passed to `listen(2)` (default 1024; the kernel caps it at
    /// `net.core.somaxconn`).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog.min(i32::MAX as u32) as i32;
        self
    }

    /// `IPV6_V6ONLY` for an IPv6 address (the system default otherwise).
    pub fn only_v6(mut self, only: bool) -> Self {
        self.only_v6 = Some(only);
        self
    }

    /// Binds to the first address that works.
    ///
    /// # Errors
    /// The last address's error (`AddrInUse`, `PermissionDenied`, ...) or the resolver's.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let mut last = None;
        for addr in resolve(addr).await? {
            match self.bind_one(&addr) {
                Ok(listener) => return Ok(listener),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
    }

    fn bind_one(&self, addr: &SocketAddr) -> io::Result<TcpListener> {
        let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
        socket.set_reuse_address(true)?;
        if self.reuse_port {
            socket.set_reuse_port(true)?;
        }
        if let (Some(only), SocketAddr::V6(_)) = (self.only_v6, addr) {
            socket.set_only_v6(only)?;
        }
        socket.bind(&(*addr).into())?;
        socket.listen(self.backlog)?;
        Ok(TcpListener {
            fd: Arc::new(OwnedFd::from(socket)),
        })
    }
}

/// A TCP listening socket (asyncio's `start_server` stands on it).
///
/// ```
/// # ringleader_runtime::run(async {
/// let listener = ringleader_io::net::TcpListener::bind("127.0.0.1:0").await?;
/// assert!(listener.local_addr()?.port() != 0);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct TcpListener {
    pub(crate) fd: SharedFd,
}

impl TcpListener {
    /// Binds with `SO_REUSEADDR` and a backlog of 1024; see [`builder`](Self::builder) for
    /// more.
    ///
    /// # Errors
    /// As [`TcpListenerBuilder::bind`].
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListenerBuilder::default().bind(addr).await
    }

    /// Options for binding.
    pub fn builder() -> TcpListenerBuilder {
        TcpListenerBuilder::default()
    }

    /// Waits for a connection.
    ///
    /// # Errors
    /// The accept error (`EMFILE` when out of fds, ...).
    ///
    /// # Cancel safety
    /// Cancel safe: a connection accepted by the kernel after the future was dropped is
    /// closed, not handed to anyone; the peer sees a reset. Call accept again to get the next.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = ops::accept(self.fd.clone()).await?;
        let stream = TcpStream { fd: Arc::new(fd) };
        let addr = match addr {
            Some(addr) => addr,
            None => stream.peer_addr()?,
        };
        Ok((stream, addr))
    }

    /// The bound address (the port the kernel picked for port 0).
    ///
    /// # Errors
    /// The `getsockname` error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(&self.fd)
    }

    /// Takes the pending socket error (`SO_ERROR`), clearing it: `Ok(None)` if there is none.
    ///
    /// # Errors
    /// The `getsockopt` error (the pending error itself is the `Ok(Some(..))` value).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        SockRef::from(&*self.fd).take_error()
    }

    /// Sets `IP_TTL` for the connections this listener accepts, as std's `set_ttl`.
    ///
    /// # Errors
    /// The `setsockopt` error: `InvalidInput` above 255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        SockRef::from(&*self.fd).set_ttl_v4(ttl_arg(ttl))
    }

    /// The `IP_TTL` value.
    ///
    /// # Errors
    /// The `getsockopt` error.
    pub fn ttl(&self) -> io::Result<u32> {
        SockRef::from(&*self.fd).ttl_v4()
    }

    /// Takes a std listener (set non-blocking here).
    ///
    /// # Errors
    /// If the socket cannot be made non-blocking.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            fd: Arc::new(listener.into()),
        })
    }

    /// Gives the socket back as a std listener, once no operation uses it.
    ///
    /// # Errors
    /// `WouldBlock` with the listener back if an operation is still in flight.
    pub fn into_std(self) -> Result<std::net::TcpListener, (io::Error, TcpListener)> {
        match Arc::try_unwrap(self.fd) {
            Ok(fd) => Ok(fd.into()),
            Err(fd) => Err((in_use(), TcpListener { fd })),
        }
    }

    /// Closes the socket through the ring, reporting close's error.
    ///
    /// # Errors
    /// `close(2)`'s error. If an operation still holds the fd, it closes when that ends.
    pub async fn close(self) -> io::Result<()> {
        close(self.fd).await
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

pub(crate) fn in_use() -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        "the socket is still used by an operation in flight",
    )
}

pub(crate) async fn close(fd: SharedFd) -> io::Result<()> {
    match Arc::try_unwrap(fd) {
        Ok(fd) => ops::close(fd).await,
        // An in-flight operation (or a split half) still holds it: it closes with the last.
        Err(_) => Ok(()),
    }
}

pub(crate) fn local_addr(fd: &SharedFd) -> io::Result<SocketAddr> {
    SockRef::from(&**fd)
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
}

/// A TTL for `setsockopt`, which takes an `int`: a value above `i32::MAX` would wrap to a
/// negative number, and -1 means "reset to the default" to the kernel, so `u32::MAX` would
/// succeed silently. Clamped, it is out of range and the kernel says `EINVAL`.
pub(crate) fn ttl_arg(ttl: u32) -> u32 {
    ttl.min(i32::MAX as u32)
}

/// A buffer size for `SO_RCVBUF` / `SO_SNDBUF`, which take an `int`: clamped so a huge
/// request means "as large as allowed" (the kernel caps it at `rmem_max` / `wmem_max`)
/// instead of wrapping to a tiny or negative value.
pub(crate) fn buffer_size_arg(size: usize) -> usize {
    size.min(i32::MAX as usize)
}

/// `SO_LINGER` counts whole seconds in an `int`. A non-zero duration is rounded up, so a
/// linger under a second never becomes the zero that means "reset on close", and capped
/// at `i32::MAX` seconds so a huge one cannot wrap to zero either.
pub(crate) fn linger_arg(linger: Option<Duration>) -> Option<Duration> {
    linger.map(|d| {
        let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
        Duration::from_secs(secs.min(i32::MAX as u64))
    })
}

pub(crate) fn peer_addr(fd: &SharedFd) -> io::Result<SocketAddr> {
    SockRef::from(&**fd)
        .peer_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
}

/// A TCP connection. Reads and writes take owned buffers (see the crate docs); the stream
/// can be shared by reference between a reader and a writer in one task, or split into
/// owned halves for two tasks.
#[derive(Debug)]
pub struct TcpStream {
    pub(crate) fd: SharedFd,
}

impl TcpStream {
    super::stream_io_methods!();

    /// Connects to the first address that accepts, trying each resolved address in turn
    /// (as asyncio's `open_connection`).
    ///
    /// # Errors
    /// The last address's error (`ConnectionRefused`, `TimedOut`, a resolver error...).
    ///
    /// # Cancel safety
    /// Dropping it abandons the attempt; the half-open socket is closed.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in resolve(addr).await? {
            match Self::connect_one(addr).await {
                Ok(stream) => return Ok(stream),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
    }

    async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = new_socket(&addr, Type::STREAM, Protocol::TCP)?;
        let fd: SharedFd = Arc::new(socket.into());
        ops::connect(fd.clone(), SockAddrBuf::from_socket_addr(addr)).await?;
        Ok(TcpStream { fd })
    }

    /// The peer's address.
    ///
    /// # Errors
    /// `NotConnected` once the connection is gone.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        peer_addr(&self.fd)
    }

    /// This end's address.
    ///
    /// # Errors
    /// The `getsockname` error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(&self.fd)
    }

    super::tcp_option_methods!();

    /// Sets `IP_TTL` (the hop limit of outgoing packets), as std's `set_ttl`.
    ///
    /// # Errors
    /// The `setsockopt` error: `InvalidInput` above 255; an IPv6 socket without IPv4
    /// mapping: `EOPNOTSUPP`...
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        SockRef::from(&*self.fd).set_ttl_v4(ttl_arg(ttl))
    }

    /// The `IP_TTL` value.
    ///
    /// # Errors
    /// The `getsockopt` error.
    pub fn ttl(&self) -> io::Result<u32> {
        SockRef::from(&*self.fd).ttl_v4()
    }

    /// Splits into a read half and a write half that two tasks can own.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (
            OwnedReadHalf {
                fd: self.fd.clone(),
            },
            OwnedWriteHalf { fd: self.fd },
        )
    }

    /// Takes a connected std stream (set non-blocking here).
    ///
    /// # Errors
    /// If the socket cannot be made non-blocking.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream {
            fd: Arc::new(stream.into()),
        })
    }

    /// Gives the socket back as a std stream, once no operation uses it.
    ///
    /// # Errors
    /// `WouldBlock` with the stream back if an operation is still in flight.
    pub fn into_std(self) -> Result<std::net::TcpStream, (io::Error, TcpStream)> {
        match Arc::try_unwrap(self.fd) {
            Ok(fd) => Ok(fd.into()),
            Err(fd) => Err((in_use(), TcpStream { fd })),
        }
    }

    /// Closes the connection through the ring, reporting close's error.
    ///
    /// # Errors
    /// `close(2)`'s error.
    pub async fn close(self) -> io::Result<()> {
        close(self.fd).await
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The reading half of a [`TcpStream`], from [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    fd: SharedFd,
}

impl OwnedReadHalf {
    /// As [`TcpStream::read`].
    ///
    /// # Errors
    /// As [`TcpStream::read`].
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        super::recv_stream(&self.fd, buf).await
    }

    /// As [`TcpStream::read_exact`].
    ///
    /// # Errors
    /// As [`TcpStream::read_exact`].
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        let fd = &self.fd;
        fd::read_exact(buf, |b, _| ops::recv(fd.clone(), b)).await
    }

    /// Receives without taking the bytes off the socket, as [`TcpStream::peek`].
    ///
    /// # Errors
    /// As [`TcpStream::peek`].
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped peek consumes nothing.
    pub async fn peek<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        super::peek_stream(&self.fd, buf).await
    }

    /// The peer's address.
    ///
    /// # Errors
    /// As [`TcpStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        peer_addr(&self.fd)
    }

    /// Puts the halves back together.
    ///
    /// # Errors
    /// `InvalidInput` with both halves back if they come from different streams.
    pub fn reunite(
        self,
        write: OwnedWriteHalf,
    ) -> Result<TcpStream, (OwnedReadHalf, OwnedWriteHalf)> {
        if Arc::ptr_eq(&self.fd, &write.fd) {
            drop(write);
            Ok(TcpStream { fd: self.fd })
        } else {
            Err((self, write))
        }
    }
}

/// The writing half of a [`TcpStream`], from [`TcpStream::into_split`]. Dropping it does not
/// shut the connection down; call [`shutdown`](Self::shutdown) to send EOF.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    fd: SharedFd,
}

impl OwnedWriteHalf {
    /// As [`TcpStream::write`].
    ///
    /// # Errors
    /// As [`TcpStream::write`].
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        ops::send_ref(&self.fd, buf).await
    }

    /// As [`TcpStream::write_all`].
    ///
    /// # Errors
    /// As [`TcpStream::write_all`].
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let fd = &self.fd;
        fd::write_all(buf, |b, _| ops::send_ref(fd, b)).await
    }

    /// Sends EOF (shuts down the write direction).
    ///
    /// # Errors
    /// As [`TcpStream::shutdown`].
    pub async fn shutdown(&self) -> io::Result<()> {
        ops::shutdown(self.fd.clone(), libc::SHUT_WR).await
    }
}

impl TcpStream {
    /// The shared fd, for this crate's operations that take several handles (sendfile).
    pub(crate) fn shared_fd(&self) -> &SharedFd {
        &self.fd
    }
}
