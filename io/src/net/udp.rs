//! UDP sockets (asyncio's datagram endpoints stand on them).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use ringleader_runtime::driver::{ops, IoBuf, IoBufMut, SharedFd, SockAddrBuf};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::addr::{resolve, ToSocketAddrs};
use super::tcp::{close, in_use, local_addr, peer_addr, ttl_arg};
use crate::BufResult;

/// A UDP socket: unconnected (`send_to` / `recv_from`) or connected (`send` / `recv`).
#[derive(Debug)]
pub struct UdpSocket {
    fd: SharedFd,
}

impl UdpSocket {
    /// Binds to the first address that works (port 0: the kernel picks).
    ///
    /// # Errors
    /// The last address's error, or the resolver's.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let mut last = None;
        for addr in resolve(addr).await? {
            let attempt = (|| {
                let socket = Socket::new(
                    Domain::for_address(addr),
                    Type::DGRAM.nonblocking().cloexec(),
                    Some(Protocol::UDP),
                )?;
                socket.bind(&addr.into())?;
                io::Result::Ok(socket)
            })();
            match attempt {
                Ok(socket) => {
                    return Ok(UdpSocket {
                        fd: Arc::new(OwnedFd::from(socket)),
                    })
                }
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
    }

    /// Sets the default peer: `send` goes there and only its datagrams are received.
    ///
    /// # Errors
    /// The resolver's or `connect(2)`'s error.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let mut last = None;
        for addr in resolve(addr).await? {
            match SockRef::from(&*self.fd).connect(&addr.into()) {
                Ok(()) => return Ok(()),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
    }

    /// Sends one datagram to the connected peer.
    ///
    /// # Errors
    /// Without a peer, the kernel's `EDESTADDRREQ` (kept as is, as std does: its
    /// `raw_os_error()` is `EDESTADDRREQ`, its kind is not `NotConnected`);
    /// `ConnectionRefused` after an ICMP unreachable.
    ///
    /// # Cancel safety
    /// A dropped send may still go out.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        ops::send_ref(&self.fd, buf).await
    }

    /// Receives one datagram from the connected peer into `buf` (truncated to its
    /// capacity).
    ///
    /// # Errors
    /// `ConnectionRefused` after an ICMP unreachable.
    ///
    /// # Cancel safety
    /// A dropped receive may have taken a datagram, which is lost.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        ops::recv(self.fd.clone(), buf).await
    }

    /// Receives the next datagram from the connected peer into `buf` without taking it off
    /// the queue: the next receive or peek returns it again (in full, even if `buf` was
    /// too small for it here).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped peek consumes nothing.
    pub async fn peek<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        ops::recv_peek(self.fd.clone(), buf).await
    }

    /// Sends one datagram to `target`. Of several resolved addresses, the first of the
    /// socket's family is used (the first of all if none is).
    ///
    /// # Errors
    /// The resolver's or the socket's error.
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    pub async fn send_to<B: IoBuf>(
        &self,
        buf: B,
        target: impl ToSocketAddrs,
    ) -> BufResult<usize, B> {
        let addr = match resolve(target).await {
            Ok(addrs) => self.pick_target(&addrs),
            Err(err) => return (Err(err), buf),
        };
        ops::send_to(self.fd.clone(), buf, SockAddrBuf::from_socket_addr(addr)).await
    }

    /// The first of `addrs` of this socket's family (as CPython's `sendto` resolves a name
    /// for the socket's family), else the first: a resolver that lists `::1` before
    /// `127.0.0.1` must not make an IPv4 socket's send fail. `addrs` is never empty.
    fn pick_target(&self, addrs: &[SocketAddr]) -> SocketAddr {
        if addrs.len() > 1 {
            if let Ok(local) = self.local_addr() {
                if let Some(same) = addrs.iter().find(|a| a.is_ipv4() == local.is_ipv4()) {
                    return *same;
                }
            }
        }
        addrs[0]
    }

    /// Receives one datagram and its sender's address.
    ///
    /// # Errors
    /// The socket's error.
    ///
    /// # Cancel safety
    /// As [`recv`](Self::recv).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (res, buf) = ops::recv_from(self.fd.clone(), buf).await;
        let res = res.and_then(|(n, addr)| {
            addr.map(|a| (n, a))
                .ok_or_else(|| io::Error::other("datagram without a source address"))
        });
        (res, buf)
    }

    /// As [`recv_from`](Self::recv_from) without taking the datagram off the queue: the
    /// next receive or peek returns it again (in full, even if `buf` was too small for it
    /// here).
    ///
    /// # Errors
    /// As [`recv_from`](Self::recv_from).
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped peek consumes nothing.
    pub async fn peek_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (res, buf) = ops::recv_from_peek(self.fd.clone(), buf).await;
        let res = res.and_then(|(n, addr)| {
            addr.map(|a| (n, a))
                .ok_or_else(|| io::Error::other("datagram without a source address"))
        });
        (res, buf)
    }

    /// The bound address.
    ///
    /// # Errors
    /// The `getsockname` error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(&self.fd)
    }

    /// The connected peer's address.
    ///
    /// # Errors
    /// `NotConnected` without a peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        peer_addr(&self.fd)
    }

    /// Sets `SO_BROADCAST` (needed to send to a broadcast address).
    ///
    /// # Errors
    /// The `setsockopt` error.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        SockRef::from(&*self.fd).set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    ///
    /// # Errors
    /// The `getsockopt` error.
    pub fn broadcast(&self) -> io::Result<bool> {
        SockRef::from(&*self.fd).broadcast()
    }

    /// Sets `IP_TTL` (the hop limit of outgoing datagrams), as std's `set_ttl`.
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

    /// Takes the pending socket error (`SO_ERROR`), clearing it: `Ok(None)` if there is
    /// none. On a connected socket an ICMP "port unreachable" from the peer leaves
    /// `ConnectionRefused` here (and fails the next send or receive if not taken).
    ///
    /// # Errors
    /// The `getsockopt` error (the pending error itself is the `Ok(Some(..))` value).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        SockRef::from(&*self.fd).take_error()
    }

    super::socket_buffer_methods!();

    /// Joins the IPv4 multicast group `multiaddr` (`IP_ADD_MEMBERSHIP`) on the interface
    /// with address `interface`; `Ipv4Addr::UNSPECIFIED` lets the kernel pick it from the
    /// routing table.
    ///
    /// # Errors
    /// The `setsockopt` error: `InvalidInput` if `multiaddr` is not a multicast address,
    /// `ENODEV` if no interface fits (no multicast route), `EADDRINUSE` if already joined.
    pub fn join_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        SockRef::from(&*self.fd).join_multicast_v4(&multiaddr, &interface)
    }

    /// Leaves a group joined with [`join_multicast_v4`](Self::join_multicast_v4) (same
    /// arguments).
    ///
    /// # Errors
    /// The `setsockopt` error: `EADDRNOTAVAIL` if this socket is not in the group.
    pub fn leave_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        SockRef::from(&*self.fd).leave_multicast_v4(&multiaddr, &interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` (`IPV6_ADD_MEMBERSHIP`) on the interface
    /// with index `interface` (0: the kernel picks).
    ///
    /// # Errors
    /// The `setsockopt` error: `InvalidInput` if `multiaddr` is not a multicast address,
    /// `ENODEV` if no interface fits, an error on an IPv4 socket.
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        SockRef::from(&*self.fd).join_multicast_v6(multiaddr, interface)
    }

    /// Leaves a group joined with [`join_multicast_v6`](Self::join_multicast_v6) (same
    /// arguments).
    ///
    /// # Errors
    /// The `setsockopt` error: `EADDRNOTAVAIL` if this socket is not in the group.
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        SockRef::from(&*self.fd).leave_multicast_v6(multiaddr, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`: whether this host's own members of a group receive the
    /// IPv4 multicast datagrams this socket sends (on by default).
    ///
    /// # Errors
    /// The `setsockopt` error.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        SockRef::from(&*self.fd).set_multicast_loop_v4(on)
    }

    /// Whether `IP_MULTICAST_LOOP` is set.
    ///
    /// # Errors
    /// The `getsockopt` error.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        SockRef::from(&*self.fd).multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`, the hop limit of outgoing IPv4 multicast datagrams (1 by
    /// default: they stay on the local network).
    ///
    /// # Errors
    /// The `setsockopt` error: `InvalidInput` above 255.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        SockRef::from(&*self.fd).set_multicast_ttl_v4(ttl_arg(ttl))
    }

    /// The `IP_MULTICAST_TTL` value.
    ///
    /// # Errors
    /// The `getsockopt` error.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        SockRef::from(&*self.fd).multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`: whether this host's own members of a group receive the
    /// IPv6 multicast datagrams this socket sends (on by default).
    ///
    /// # Errors
    /// The `setsockopt` error (an error on an IPv4 socket).
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        SockRef::from(&*self.fd).set_multicast_loop_v6(on)
    }

    /// Whether `IPV6_MULTICAST_LOOP` is set.
    ///
    /// # Errors
    /// The `getsockopt` error (an error on an IPv4 socket).
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        SockRef::from(&*self.fd).multicast_loop_v6()
    }

    /// Takes a std socket (set non-blocking here).
    ///
    /// # Errors
    /// If the socket cannot be made non-blocking.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            fd: Arc::new(socket.into()),
        })
    }

    /// Gives the socket back as a std socket, once no operation uses it.
    ///
    /// # Errors
    /// `WouldBlock` with the socket back if an operation is still in flight.
    pub fn into_std(self) -> Result<std::net::UdpSocket, (io::Error, UdpSocket)> {
        match Arc::try_unwrap(self.fd) {
            Ok(fd) => Ok(fd.into()),
            Err(fd) => Err((in_use(), UdpSocket { fd })),
        }
    }

    /// Closes the socket through the ring.
    ///
    /// # Errors
    /// `close(2)`'s error.
    pub async fn close(self) -> io::Result<()> {
        close(self.fd).await
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
