//! asyncio's streams: [`open_connection`] / [`start_server`] with a buffered
//! [`StreamReader`] and [`StreamWriter`], the futures-io adapter [`Compat`], and [`copy`] /
//! [`copy_bidirectional`] between sockets.
//!
//! ```
//! use ringleader_io::streams::{open_connection, start_server, StreamReader, StreamWriter};
//!
//! ringleader_runtime::run(async {
//!     // An echo server: one handler task per connection, in the server's own task group.
//!     let server = start_server(
//!         |mut reader: StreamReader, writer: StreamWriter| async move {
//!             loop {
//!                 let line = reader.readline().await?;
//!                 if line.is_empty() {
//!                     break; // end of stream
//!                 }
//!                 writer.write(&line);
//!                 writer.drain().await?;
//!             }
//!             writer.close();
//!             writer.wait_closed().await
//!         },
//!         "127.0.0.1:0",
//!     )
//!     .await?;
//!     let port = server.local_addrs()[0].as_inet().unwrap().port();
//!
//!     let (mut reader, writer) = open_connection("127.0.0.1", port).await?;
//!     writer.write(b"hello\n");
//!     writer.drain().await?;
//!     assert_eq!(reader.readline().await?, b"hello\n");
//!
//!     server.close();
//!     writer.close();
//!     server.wait_closed().await;
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # The model, in asyncio's terms
//! - A [`StreamReader`] owns a receive buffer. Every read method takes what it needs from
//!   the buffer and asks the kernel for more only when the buffer cannot serve it. The
//!   receive in flight belongs to the reader, not to the call: a call dropped mid-way
//!   (a timeout, a `select`) loses no byte, the next call picks the receive up.
//! - A [`StreamWriter`] is asyncio's transport plus writer: [`write`](StreamWriter::write)
//!   is synchronous and buffers; a background flush sends the buffer as soon as the
//!   writing task yields, so writes made in one go leave in one send.
//!   [`drain`](StreamWriter::drain) waits while the buffer is above the high-water mark,
//!   until it is at or below the low-water mark, and reports a send error. Methods take
//!   `&self`: share a writer in an `Arc` to write from several tasks. A server handler's
//!   own writes skip the writer's lock: its task collects each poll's writes and sends
//!   them when the poll ends (see [`StreamWriter`]).
//!   [`sendfile`](StreamWriter::sendfile) is `loop.sendfile(writer.transport, file)`: the
//!   file goes out after what was written before it and ahead of what is written while it
//!   is sent (where asyncio's transport refuses such writes).
//! - `TCP_NODELAY` is set on every TCP stream made here, as asyncio does.
//! - A [`Server`] runs each connection's handler as a task of the server's own task group
//!   (supervised: a failing or panicking handler is counted and logged, the others go on).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use ringleader_runtime::driver::SharedFd;
use socket2::{SockAddr, SockRef};

use crate::net::{TcpStream, UnixStream};

mod compat;
mod copy;
mod error;
mod readbuf;
mod reader;
mod server;
mod spin;
mod writer;

pub use compat::Compat;
pub use copy::{copy, copy_bidirectional};
pub use error::{IncompleteReadError, LimitOverrunError, ReadError};
pub use reader::{Lines, StreamReader, DEFAULT_LIMIT};
pub use server::{start_server, start_unix_server, Server, ServerStats};
pub use writer::{StreamWriter, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};

pub(crate) use sealed::Family;

/// A connected stream socket the streams work over: [`TcpStream`] or [`UnixStream`].
///
/// Sealed: the streams need the socket's shared fd, which only this crate's types give.
pub trait StreamSocket: sealed::Sealed + Send + Sync + 'static {}

impl StreamSocket for TcpStream {}
impl StreamSocket for UnixStream {}

pub(crate) mod sealed {
    use super::*;

    /// What the streams need from a socket type.
    pub trait Sealed {
        /// The fd, shared with in-flight operations.
        fn shared_fd(&self) -> &SharedFd;
        /// Gives the fd up.
        fn into_shared_fd(self) -> SharedFd;
        /// Rebuilds the socket around its fd.
        fn from_shared_fd(fd: SharedFd) -> Self;
        /// TCP or Unix, for addresses.
        fn family() -> Family;
    }

    /// Which address family a stream's fd is, for reporting its addresses.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Family {
        /// TCP.
        Inet,
        /// Unix-domain.
        Unix,
    }

    impl Sealed for TcpStream {
        fn shared_fd(&self) -> &SharedFd {
            &self.fd
        }
        fn into_shared_fd(self) -> SharedFd {
            self.fd
        }
        fn from_shared_fd(fd: SharedFd) -> Self {
            TcpStream { fd }
        }
        fn family() -> Family {
            Family::Inet
        }
    }

    impl Sealed for UnixStream {
        fn shared_fd(&self) -> &SharedFd {
            &self.fd
        }
        fn into_shared_fd(self) -> SharedFd {
            self.fd
        }
        fn from_shared_fd(fd: SharedFd) -> Self {
            UnixStream { fd }
        }
        fn family() -> Family {
            Family::Unix
        }
    }
}

/// A stream's address (asyncio's `get_extra_info('peername')` / `'sockname'`): an IP
/// address and port, or a Unix socket's path (`None` for an unnamed socket, the usual
/// client side; an abstract name starts with a NUL byte).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamAddr {
    /// A TCP endpoint.
    Inet(SocketAddr),
    /// A Unix-domain endpoint.
    Unix(Option<PathBuf>),
}

impl StreamAddr {
    /// The IP address and port, if this is a TCP endpoint.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            StreamAddr::Inet(addr) => Some(*addr),
            StreamAddr::Unix(_) => None,
        }
    }

    /// The path, if this is a named Unix endpoint.
    pub fn as_unix_path(&self) -> Option<&Path> {
        match self {
            StreamAddr::Unix(Some(path)) => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for StreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamAddr::Inet(addr) => addr.fmt(f),
            StreamAddr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            StreamAddr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

fn to_stream_addr(addr: SockAddr, family: Family) -> io::Result<StreamAddr> {
    match family {
        Family::Inet => addr
            .as_socket()
            .map(StreamAddr::Inet)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket")),
        Family::Unix => {
            if let Some(path) = addr.as_pathname() {
                return Ok(StreamAddr::Unix(Some(path.to_path_buf())));
            }
            if let Some(name) = addr.as_abstract_namespace() {
                let mut bytes = vec![0u8];
                bytes.extend_from_slice(name);
                return Ok(StreamAddr::Unix(Some(PathBuf::from(
                    std::ffi::OsString::from_vec(bytes),
                ))));
            }
            Ok(StreamAddr::Unix(None))
        }
    }
}

pub(crate) fn peer_addr_of(fd: &SharedFd, family: Family) -> io::Result<StreamAddr> {
    to_stream_addr(SockRef::from(&**fd).peer_addr()?, family)
}

pub(crate) fn local_addr_of(fd: &SharedFd, family: Family) -> io::Result<StreamAddr> {
    to_stream_addr(SockRef::from(&**fd).local_addr()?, family)
}

/// Connects to `host:port` over TCP (asyncio's `open_connection`) and gives the stream's
/// reader and writer. `host` is an IP literal or a name, resolved on the blocking pool;
/// each resolved address is tried in turn. `TCP_NODELAY` is set, as asyncio does.
///
/// # Errors
/// The last address's connect error (`ConnectionRefused`, ...) or the resolver's.
///
/// # Cancel safety
/// Dropping it abandons the attempt; the half-open socket is closed.
pub async fn open_connection(host: &str, port: u16) -> io::Result<(StreamReader, StreamWriter)> {
    let stream = TcpStream::connect((host, port)).await?;
    // As asyncio's transports: small writes (a request line) leave at once. A failure
    // leaves Nagle on, which is slower, not wrong.
    let _ = stream.set_nodelay(true);
    Ok(split(stream))
}

/// Connects to the Unix socket at `path` (asyncio's `open_unix_connection`).
///
/// # Errors
/// `NotFound` if nothing is there, `ConnectionRefused` if nobody listens.
///
/// # Cancel safety
/// Dropping it abandons the attempt and closes the socket.
pub async fn open_unix_connection(
    path: impl AsRef<Path>,
) -> io::Result<(StreamReader, StreamWriter)> {
    let stream = UnixStream::connect(path).await?;
    Ok(split(stream))
}

/// Wraps a connected socket in a reader and a writer (the halves share the fd; it closes
/// once both are dropped and no operation uses it).
pub fn split<S: StreamSocket>(stream: S) -> (StreamReader, StreamWriter) {
    let family = S::family();
    let fd = stream.into_shared_fd();
    (
        StreamReader::new(fd.clone(), family),
        StreamWriter::new(fd, family),
    )
}
