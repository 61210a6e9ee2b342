//! Unix-domain sockets: streams, listeners and datagrams, on paths or abstract names (a
//! name whose first byte is NUL).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringleader_runtime::driver::{ops, IoBuf, IoBufMut, SharedFd, SockAddrBuf};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::tcp::{close, in_use};
use crate::BufResult;

/// `path` as a socket address, in the ring's layout and socket2's.
///
/// # Errors
/// `InvalidInput` if the path is too long, or if a path (not an abstract name) holds a NUL
/// byte: the kernel would silently use the path up to it, so std rejects it ("paths must
/// not contain interior null bytes") and so do we.
fn sock_addr(path: &Path) -> io::Result<(SockAddrBuf, SockAddr)> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.first() != Some(&0) && bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "paths must not contain interior null bytes",
        ));
    }
    let buf = SockAddrBuf::from_unix_path(bytes)?;
    let addr = if bytes.first() == Some(&0) {
        SockAddr::unix(OsStr::from_bytes(bytes))?
    } else {
        SockAddr::unix(path)?
    };
    Ok((buf, addr))
}

fn new_socket(ty: Type) -> io::Result<Socket> {
    Socket::new(Domain::UNIX, ty.nonblocking().cloexec(), None)
}

fn path_of(addr: io::Result<SockAddr>) -> io::Result<Option<PathBuf>> {
    let addr = addr?;
    if let Some(path) = addr.as_pathname() {
        return Ok(Some(path.to_path_buf()));
    }
    if let Some(name) = addr.as_abstract_namespace() {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(name);
        return Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(bytes))));
    }
    Ok(None)
}

/// A Unix stream listener.
///
/// As std's, dropping (or [`close`](Self::close)-ing) it leaves its path on disk: a later
/// [`bind`](Self::bind) to the same path fails with `AddrInUse` until the file is removed,
/// and [`UnixStream::connect`] to it fails with `ConnectionRefused`. Abstract names vanish
/// with the socket.
#[derive(Debug)]
pub struct UnixListener {
    pub(crate) fd: SharedFd,
}

impl UnixListener {
    /// Binds to `path` (a leading NUL byte: an abstract name) and listens.
    ///
    /// # Errors
    /// `AddrInUse` if the path exists, `InvalidInput` if it is too long.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let (_, addr) = sock_addr(path.as_ref())?;
        let socket = new_socket(Type::STREAM)?;
        socket.bind(&addr)?;
        socket.listen(1024)?;
        Ok(UnixListener {
            fd: Arc::new(socket.into()),
        })
    }

    /// Waits for a connection; gives the stream and the peer's path (`None` for unnamed
    /// peers, the usual case).
    ///
    /// # Errors
    /// The accept error.
    ///
    /// # Cancel safety
    /// Cancel safe: a connection accepted after the drop is closed.
    pub async fn accept(&self) -> io::Result<(UnixStream, Option<PathBuf>)> {
        let (fd, addr) = ops::accept_unix(self.fd.clone()).await?;
        let path = addr
            .unix_path_bytes()
            .filter(|b| !b.is_empty())
            .map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)));
        Ok((UnixStream { fd: Arc::new(fd) }, path))
    }

    /// The bound path.
    ///
    /// # Errors
    /// The `getsockname` error.
    pub fn local_addr(&self) -> io::Result<Option<PathBuf>> {
        path_of(SockRef::from(&*self.fd).local_addr())
    }

    /// Takes a std listener (set non-blocking here).
    ///
    /// # Errors
    /// If the socket cannot be made non-blocking.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            fd: Arc::new(listener.into()),
        })
    }

    /// Closes the listener through the ring (the path stays: remove it yourself).
    ///
    /// # Errors
    /// `close(2)`'s error.
    pub async fn close(self) -> io::Result<()> {
        close(self.fd).await
    }
}

/// A Unix stream connection.
#[derive(Debug)]
pub struct UnixStream {
    pub(crate) fd: SharedFd,
}

impl UnixStream {
    super::stream_io_methods!();

    /// Connects to the listener at `path`.
    ///
    /// # Errors
    /// `NotFound` if nothing is there, `ConnectionRefused` if nobody listens.
    ///
    /// # Cancel safety
    /// Dropping it abandons the attempt and closes the socket.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let (buf, _) = sock_addr(path.as_ref())?;
        let fd: SharedFd = Arc::new(new_socket(Type::STREAM)?.into());
        ops::connect(fd.clone(), buf).await?;
        Ok(UnixStream { fd })
    }

    /// A connected pair.
    ///
    /// # Errors
    /// The `socketpair(2)` error.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
        Ok((
            UnixStream {
                fd: Arc::new(a.into()),
            },
            UnixStream {
                fd: Arc::new(b.into()),
            },
        ))
    }

    /// The peer's path, if it has one.
    ///
    /// # Errors
    /// The `getpeername` error.
    pub fn peer_addr(&self) -> io::Result<Option<PathBuf>> {
        path_of(SockRef::from(&*self.fd).peer_addr())
    }

    /// This end's path, if bound.
    ///
    /// # Errors
    /// The `getsockname` error.
    pub fn local_addr(&self) -> io::Result<Option<PathBuf>> {
        path_of(SockRef::from(&*self.fd).local_addr())
    }

    /// Takes a std stream (set non-blocking here).
    ///
    /// # Errors
    /// If the socket cannot be made non-blocking.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream {
            fd: Arc::new(stream.into()),
        })
    }

    /// Gives the socket back as a std stream, once no operation uses it.
    ///
    /// # Errors
    /// `WouldBlock` with the stream back if an operation is still in flight.
    pub fn into_std(self) -> Result<std::os::unix::net::UnixStream, (io::Error, UnixStream)> {
        match Arc::try_unwrap(self.fd) {
            Ok(fd) => Ok(fd.into()),
            Err(fd) => Err((in_use(), UnixStream { fd })),
        }
    }

    /// Closes the connection through the ring.
    ///
    /// # Errors
    /// `close(2)`'s error.
    pub async fn close(self) -> io::Result<()> {
        close(self.fd).await
    }
}

/// A Unix datagram socket. As a listener's, a bound path stays on disk after the socket is
/// dropped.
#[derive(Debug)]
pub struct UnixDatagram {
    fd: SharedFd,
}

impl UnixDatagram {
    /// Binds to `path` (or an abstract name).
    ///
    /// # Errors
    /// `AddrInUse` if the path exists.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let (_, addr) = sock_addr(path.as_ref())?;
        let socket = new_socket(Type::DGRAM)?;
        socket.bind(&addr)?;
        Ok(UnixDatagram {
            fd: Arc::new(socket.into()),
        })
    }

    /// A socket bound to nothing (it can send, and receive replies only if connected).
    ///
    /// # Errors
    /// The `socket(2)` error.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            fd: Arc::new(OwnedFd::from(new_socket(Type::DGRAM)?)),
        })
    }

    /// A connected pair.
    ///
    /// # Errors
    /// The `socketpair(2)` error.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM.nonblocking().cloexec(), None)?;
        Ok((
            UnixDatagram {
                fd: Arc::new(a.into()),
            },
            UnixDatagram {
                fd: Arc::new(b.into()),
            },
        ))
    }

    /// Sets the default peer.
    ///
    /// # Errors
    /// `NotFound` / `ConnectionRefused` if nothing is bound there.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let (_, addr) = sock_addr(path.as_ref())?;
        SockRef::from(&*self.fd).connect(&addr)
    }

    /// Sends a datagram to the connected peer.
    ///
    /// # Errors
    /// `NotConnected` without a peer.
    ///
    /// # Cancel safety
    /// A dropped send may still go out.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        ops::send_ref(&self.fd, buf).await
    }

    /// Receives a datagram.
    ///
    /// # Errors
    /// The socket's error.
    ///
    /// # Cancel safety
    /// A dropped receive may have taken a datagram, which is lost.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        ops::recv(self.fd.clone(), buf).await
    }

    /// Sends a datagram to `path`.
    ///
    /// # Errors
    /// `NotFound` / `ConnectionRefused` if nothing is bound there.
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        let addr = match sock_addr(path.as_ref()) {
            Ok((addr, _)) => addr,
            Err(err) => return (Err(err), buf),
        };
        ops::send_to(self.fd.clone(), buf, addr).await
    }

    /// Receives a datagram and its sender's path (`None` if the sender is unbound).
    ///
    /// # Errors
    /// The socket's error.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, Option<PathBuf>), B> {
        let (res, buf) = ops::recv_from_unix(self.fd.clone(), buf).await;
        let res = res.map(|(n, addr)| {
            let path = addr
                .unix_path_bytes()
                .filter(|b| !b.is_empty())
                .map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)));
            (n, path)
        });
        (res, buf)
    }

    /// This socket's path, if bound.
    ///
    /// # Errors
    /// The `getsockname` error.
    pub fn local_addr(&self) -> io::Result<Option<PathBuf>> {
        path_of(SockRef::from(&*self.fd).local_addr())
    }

    /// The connected peer's path (`None` for an unbound peer, as a [`pair`](Self::pair)'s).
    ///
    /// # Errors
    /// `NotConnected` without a peer.
    pub fn peer_addr(&self) -> io::Result<Option<PathBuf>> {
        path_of(SockRef::from(&*self.fd).peer_addr())
    }

    /// Takes a std socket (set non-blocking here).
    ///
    /// # Errors
    /// If the socket cannot be made non-blocking.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram {
            fd: Arc::new(socket.into()),
        })
    }

    /// Closes the socket through the ring.
    ///
    /// # Errors
    /// `close(2)`'s error.
    pub async fn close(self) -> io::Result<()> {
        close(self.fd).await
    }
}

macro_rules! fd_traits {
    ($($t:ty),*) => {$(
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.as_raw_fd()
            }
        }
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }
    )*};
}
fd_traits!(UnixListener, UnixStream, UnixDatagram);

impl UnixStream {
    /// The shared fd, for this crate's operations that take several handles (sendfile).
    pub(crate) fn shared_fd(&self) -> &SharedFd {
        &self.fd
    }
}
