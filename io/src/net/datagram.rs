//! Datagram endpoints (asyncio's `loop.create_datagram_endpoint`): a UDP or Unix datagram
//! socket bound, connected and configured in one call.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, Socket, Type};

use super::addr::{Deferred, ToSocketAddrs};
use super::{UdpSocket, UnixDatagram};

/// asyncio's `create_datagram_endpoint`, as builders: [`udp`](Self::udp) gives a
/// [`UdpSocket`], [`unix`](Self::unix) a [`UnixDatagram`].
///
/// asyncio's arguments map as: `local_addr` → `local`, `remote_addr` → `remote` (the
/// socket is connected: `send`/`recv` talk to that peer only), `reuse_port`,
/// `allow_broadcast`. The protocol object's callbacks become the socket's `recv_from` /
/// `send_to` (or `recv` / `send` when connected) awaited in a task.
///
/// ```
/// use ringleader_io::net::DatagramEndpoint;
///
/// ringleader_runtime::run(async {
///     // Unconnected: receives from anyone.
///     let server = DatagramEndpoint::udp().local("127.0.0.1:0").bind().await?;
///     // Connected to the server, on a port the kernel picks.
///     let client = DatagramEndpoint::udp()
///         .remote(server.local_addr()?)
///         .bind()
///         .await?;
///     client.send(b"ping".to_vec()).await.0?;
///     let (res, buf) = server.recv_from(vec![0u8; 16]).await;
///     let (n, from) = res?;
///     assert_eq!(&buf[..n], b"ping");
///     assert_eq!(from, client.local_addr()?);
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DatagramEndpoint {
    _private: (),
}

impl DatagramEndpoint {
    /// A UDP endpoint builder.
    pub fn udp() -> UdpEndpoint {
        UdpEndpoint::default()
    }

    /// A Unix datagram endpoint builder.
    pub fn unix() -> UnixDatagramEndpoint {
        UnixDatagramEndpoint::default()
    }
}

/// Options for a UDP endpoint: see [`DatagramEndpoint`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `bind` is awaited"]
pub struct UdpEndpoint {
    local: Option<Deferred>,
    remote: Option<Deferred>,
    reuse_port: bool,
    allow_broadcast: bool,
}

impl UdpEndpoint {
    /// The local address to bind (asyncio's `local_addr`; port 0: the kernel picks).
    /// Without it, the socket is bound to the unspecified address of the remote's family,
    /// port 0.
    pub fn local(mut self, addr: impl ToSocketAddrs) -> Self {
        self.local = Some(Deferred::new(addr));
        self
    }

    /// The peer to connect to (asyncio's `remote_addr`): `send` goes there, and only its
    /// datagrams are received.
    pub fn remote(mut self, addr: impl ToSocketAddrs) -> Self {
        self.remote = Some(Deferred::new(addr));
        self
    }

    /// `SO_REUSEPORT`: several sockets (each with it set) share the local address; the
    /// kernel spreads incoming datagrams between them.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// `SO_BROADCAST`: allows sending to broadcast addresses (asyncio's
    /// `allow_broadcast`).
    pub fn allow_broadcast(mut self, on: bool) -> Self {
        self.allow_broadcast = on;
        self
    }

    /// Resolves the addresses and creates the socket: the first (local, remote) pair of the
    /// same family that binds and connects wins.
    ///
    /// # Errors
    /// `InvalidInput` if neither a local nor a remote address was given, or no local and
    /// remote address share a family; the resolver's error; the last pair's socket error
    /// (`AddrInUse`, `PermissionDenied`...).
    ///
    /// # Cancel safety
    /// Dropping it during a name lookup abandons the lookup; no socket is left behind.
    pub async fn bind(mut self) -> io::Result<UdpSocket> {
        let locals = match self.local.take() {
            Some(local) => Some(local.resolve().await?),
            None => None,
        };
        let remotes = match self.remote.take() {
            Some(remote) => Some(remote.resolve().await?),
            None => None,
        };
        let pairs: Vec<(SocketAddr, Option<SocketAddr>)> = match (locals, remotes) {
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a datagram endpoint needs a local or a remote address",
                ))
            }
            (Some(locals), None) => locals.into_iter().map(|l| (l, None)).collect(),
            (None, Some(remotes)) => remotes
                .into_iter()
                .map(|r| (unspecified_like(&r), Some(r)))
                .collect(),
            (Some(locals), Some(remotes)) => locals
                .iter()
                .flat_map(|l| {
                    remotes
                        .iter()
                        .filter(|r| r.is_ipv4() == l.is_ipv4())
                        .map(|r| (*l, Some(*r)))
                })
                .collect(),
        };
        let mut last = None;
        for (local, remote) in pairs {
            match self.open(local, remote) {
                Ok(socket) => return UdpSocket::from_std(socket.into()),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "no local and remote address of the same family",
            )
        }))
    }

    fn open(&self, local: SocketAddr, remote: Option<SocketAddr>) -> io::Result<Socket> {
        let socket = Socket::new(
            Domain::for_address(local),
            Type::DGRAM.nonblocking().cloexec(),
            Some(Protocol::UDP),
        )?;
        if self.reuse_port {
            socket.set_reuse_port(true)?;
        }
        if self.allow_broadcast {
            socket.set_broadcast(true)?;
        }
        socket.bind(&local.into())?;
        if let Some(remote) = remote {
            // A UDP connect only records the peer: it never blocks.
            socket.connect(&remote.into())?;
        }
        Ok(socket)
    }
}

fn unspecified_like(addr: &SocketAddr) -> SocketAddr {
    let ip = match addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// Options for a Unix datagram endpoint: see [`DatagramEndpoint`]. With neither address
/// the socket is unbound and unconnected (it can `send_to` bound sockets, and receives
/// nothing: nobody can address it); [`UnixDatagram::pair`] gives two connected unbound
/// sockets.
#[derive(Debug, Default, Clone)]
#[must_use = "a builder does nothing until `bind` is called"]
pub struct UnixDatagramEndpoint {
    local: Option<PathBuf>,
    remote: Option<PathBuf>,
}

impl UnixDatagramEndpoint {
    /// The path (or abstract name: first byte NUL) to bind; it must not exist.
    pub fn local(mut self, path: impl AsRef<Path>) -> Self {
        self.local = Some(path.as_ref().to_path_buf());
        self
    }

    /// The bound socket to connect to.
    pub fn remote(mut self, path: impl AsRef<Path>) -> Self {
        self.remote = Some(path.as_ref().to_path_buf());
        self
    }

    /// Creates the socket, binds and connects it as asked.
    ///
    /// # Errors
    /// `AddrInUse` if the local path exists; `NotFound` / `ConnectionRefused` if nothing is
    /// bound at the remote path; `InvalidInput` for a path too long for a socket address.
    pub fn bind(self) -> io::Result<UnixDatagram> {
        let socket = match &self.local {
            Some(local) => UnixDatagram::bind(local)?,
            None => UnixDatagram::unbound()?,
        };
        if let Some(remote) = &self.remote {
            socket.connect(remote)?;
        }
        Ok(socket)
    }
}
