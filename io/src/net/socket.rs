//! A TCP socket configured before it connects or listens (tokio's `TcpSocket`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use ringleader_runtime::driver::{ops, SharedFd, SockAddrBuf};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::tcp::{local_addr, TcpListener, TcpStream};

/// A TCP socket that is neither connected nor listening yet: set its options, maybe
/// [`bind`](Self::bind) it, then turn it into a [`TcpStream`] with
/// [`connect`](Self::connect) or into a [`TcpListener`] with [`listen`](Self::listen).
///
/// Prefer it over [`TcpStream::connect`] when an option has to be in place before the
/// handshake: a local address or port to connect from, or a receive buffer size (the window
/// scale is agreed in the SYN, so setting it on the connected stream is too late). Prefer it
/// over [`TcpListener::builder`] for the options the builder does not have: `SO_REUSEADDR`
/// off, `TCP_NODELAY` or buffer sizes that accepted connections inherit, an explicit
/// backlog on a socket you bound yourself. For a plain connection or listener, the
/// one-call constructors are shorter and try every resolved address.
///
/// The socket is created non-blocking and close-on-exec, like every ringleader socket.
/// Dropping it closes its fd.
///
/// ```
/// use std::net::SocketAddr;
/// use ringleader_io::net::TcpSocket;
///
/// ringleader_runtime::run(async {
///     // A listener that can rebind its port at once after a restart.
///     let listener = TcpSocket::new_v4()?;
///     listener.set_reuseaddr(true)?;
///     listener.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
///     let listener = listener.listen(1024)?;
///     let server_addr = listener.local_addr()?;
///
///     // A client that connects from a local address of its choosing.
///     let client = TcpSocket::new_v4()?;
///     client.set_nodelay(true)?;
///     client.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
///     let client_addr = client.local_addr()?;
///     let stream = client.connect(server_addr).await?;
///
///     let (_, peer) = listener.accept().await?;
///     assert_eq!(peer, client_addr);
///     assert_eq!(stream.local_addr()?, client_addr);
///     assert!(stream.nodelay()?);
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct TcpSocket {
    /// Never cloned while the `TcpSocket` lives (only [`connect`](Self::connect) and
    /// [`listen`](Self::listen), which consume it, hand it on), so this is its only owner:
    /// dropping the socket closes the fd.
    fd: SharedFd,
}

impl TcpSocket {
    /// A new IPv4 TCP socket.
    ///
    /// # Errors
    /// `socket(2)`'s error (`EMFILE` when out of fds, ...).
    pub fn new_v4() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV4)
    }

    /// A new IPv6 TCP socket (`IPV6_V6ONLY` as the system default has it).
    ///
    /// # Errors
    /// `socket(2)`'s error (`EAFNOSUPPORT` without IPv6 support, `EMFILE`, ...).
    pub fn new_v6() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV6)
    }

    fn new(domain: Domain) -> io::Result<TcpSocket> {
        let socket = Socket::new(
            domain,
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )?;
        Ok(TcpSocket {
            fd: Arc::new(OwnedFd::from(socket)),
        })
    }

    /// Sets `SO_REUSEADDR`: bind to a port that connections in `TIME_WAIT` still use (a
    /// server restarting at once). Two listening sockets still cannot share a port; see
    /// [`set_reuseport`](Self::set_reuseport).
    ///
    /// # Errors
    /// The `setsockopt` error.
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        SockRef::from(&*self.fd).set_reuse_address(on)
    }

    /// Whether `SO_REUSEADDR` is set.
    ///
    /// # Errors
    /// The `getsockopt` error.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        SockRef::from(&*self.fd).reuse_address()
    }

    /// Sets `SO_REUSEPORT`: several sockets of the same user, each with it set before
    /// `bind`, may bind and listen on the same address; the kernel spreads incoming
    /// connections between the listeners.
    ///
    /// # Errors
    /// The `setsockopt` error.
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        SockRef::from(&*self.fd).set_reuse_port(on)
    }

    /// Whether `SO_REUSEPORT` is set.
    ///
    /// # Errors
    /// The `getsockopt` error.
    pub fn reuseport(&self) -> io::Result<bool> {
        SockRef::from(&*self.fd).reuse_port()
    }

    super::tcp_option_methods!();

    /// Binds the socket to `addr` (port 0: the kernel picks one; see
    /// [`local_addr`](Self::local_addr)).
    ///
    /// # Errors
    /// `InvalidInput` if `addr` is of the other family than the socket (an IPv6 address for
    /// a [`new_v4`](Self::new_v4) socket, or the reverse); `AddrInUse` if another socket has
    /// the address and the reuse options do not allow sharing it; `AddrNotAvailable` for an
    /// address that is not this host's; `PermissionDenied` for a privileged port.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.check_family("bind", &addr)?;
        SockRef::from(&*self.fd).bind(&addr.into())
    }

    /// The bound address (`0.0.0.0:0` or `[::]:0` before `bind`).
    ///
    /// # Errors
    /// The `getsockname` error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(&self.fd)
    }

    /// Connects to `addr` through the ring, giving the connected stream. An unbound socket
    /// gets a local address from the kernel, as [`TcpStream::connect`] does.
    ///
    /// # Errors
    /// `InvalidInput` if `addr` is of the other family than the socket (see
    /// [`bind`](Self::bind)); the connect error otherwise (`ConnectionRefused`, `TimedOut`,
    /// `NetworkUnreachable`, `AddrNotAvailable` when no local port is free...). The socket is
    /// closed either way.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the attempt: the connect is cancelled and the socket is
    /// closed once the kernel has let go of it; a connection that completed anyway is
    /// closed, never handed out.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        self.check_family("connect", &addr)?;
        // The operation holds its own reference until its completion is reaped (even when
        // this future is dropped first), so the fd closes after the kernel is done with it:
        // here on error, with the last reference otherwise.
        let fd = self.fd;
        ops::connect(fd.clone(), SockAddrBuf::from_socket_addr(addr)).await?;
        Ok(TcpStream { fd })
    }

    /// Starts listening with an accept queue of `backlog` connections (the kernel caps it
    /// at `net.core.somaxconn`), giving the listener. An unbound socket is bound to the
    /// wildcard address and a port of the kernel's choosing.
    ///
    /// # Errors
    /// `listen(2)`'s error: `AddrInUse` if another socket already listens on the address
    /// (both may have bound it with `SO_REUSEADDR`, but only one may listen unless both set
    /// `SO_REUSEPORT`). The socket is closed on error.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        // listen(2) takes an `int`: clamped, a huge backlog means "as long as allowed"
        // instead of wrapping to a negative one.
        let backlog = backlog.min(i32::MAX as u32) as i32;
        SockRef::from(&*self.fd).listen(backlog)?;
        Ok(TcpListener { fd: self.fd })
    }

    /// `InvalidInput` unless `addr` has the socket's address family: the kernel would say
    /// `EINVAL` or `EAFNOSUPPORT` without naming the mismatch.
    fn check_family(&self, action: &str, addr: &SocketAddr) -> io::Result<()> {
        let domain = SockRef::from(&*self.fd).domain()?;
        if domain == Domain::for_address(*addr) {
            return Ok(());
        }
        let socket = if domain == Domain::IPV4 {
            "an IPv4"
        } else if domain == Domain::IPV6 {
            "an IPv6"
        } else {
            "a non-IP"
        };
        let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot {action} {socket} socket to the {family} address {addr}"),
        ))
    }
}

impl AsRawFd for TcpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl FromRawFd for TcpSocket {
    /// Takes ownership of a TCP socket's fd that is neither connected nor listening. Its
    /// flags are left as they are (ringleader's own sockets are non-blocking and
    /// close-on-exec). An fd of another kind of socket is no memory hazard, but its
    /// operations fail (`connect` to an IP address gives `InvalidInput` for a Unix socket).
    ///
    /// # Safety
    /// `fd` must be an open file descriptor that the caller owns and gives up: nothing else
    /// may use or close it afterwards, since dropping the `TcpSocket` closes it.
    unsafe fn from_raw_fd(fd: RawFd) -> TcpSocket {
        // SAFETY: the caller owns the open fd `fd` and hands it over (this fn's contract).
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        TcpSocket { fd: Arc::new(fd) }
    }
}
