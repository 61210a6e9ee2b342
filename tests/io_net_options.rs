//! Socket options and peeking: `peek` / `peek_from` leave the data queued, every option
//! reads back what was set (within what the kernel does to it), `SO_LINGER` 0 really resets
//! the peer, and out-of-range values are errors, never panics or silent resets.

mod support;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ringleader::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use support::rt2;

/// A connected pair on loopback: (client, server).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// `future`'s output, or a panic naming `what` if it takes 10 s: a peek that consumed the
/// data would leave the following receive waiting forever.
async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match ringleader::time::timeout(Duration::from_secs(10), future).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish in 10 s"),
    }
}

/// Peeks until at least `want` bytes are queued (a write may arrive in pieces; peeking
/// again is harmless since it takes nothing).
async fn peek_at_least(stream: &TcpStream, want: usize) -> Vec<u8> {
    for _ in 0..500 {
        let (res, buf) = within("peek", stream.peek(Vec::with_capacity(64))).await;
        if res.unwrap() >= want {
            return buf;
        }
        ringleader::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{want} bytes never arrived");
}

#[test]
fn tcp_peek_leaves_the_bytes_for_the_next_read() {
    rt2().block_on(async {
        let (client, server) = tcp_pair().await;
        let (res, _) = client.write_all(b"hello world".to_vec()).await;
        res.unwrap();

        assert_eq!(peek_at_least(&server, 11).await, b"hello world");
        // Again, and into a smaller buffer: still from the start of the queue.
        let (res, buf) = within("second peek", server.peek(Vec::with_capacity(5))).await;
        assert_eq!(res.unwrap(), 5);
        assert_eq!(buf, b"hello");

        // The read gets every byte the peeks saw.
        let (res, buf) = within("read after peek", server.read(Vec::with_capacity(64))).await;
        assert_eq!(res.unwrap(), 11);
        assert_eq!(buf, b"hello world");

        // The read half of a split stream peeks the same way.
        let (client_read, _client_write) = client.into_split();
        let (res, _) = server.write_all(b"back".to_vec()).await;
        res.unwrap();
        let mut seen = Vec::new();
        for _ in 0..500 {
            let (res, buf) = within("peek", client_read.peek(Vec::with_capacity(16))).await;
            if res.unwrap() == 4 {
                seen = buf;
                break;
            }
            ringleader::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(seen, b"back");
        let read = client_read.read(Vec::with_capacity(16));
        let (res, buf) = within("read after peek", read).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"back");
    });
}

#[test]
fn tcp_peek_with_an_empty_buffer_returns_at_once() {
    rt2().block_on(async {
        let (_client, server) = tcp_pair().await;
        // Nothing is queued: a zero-length receive through the ring would wait for data.
        let (res, buf) = within("an empty peek", server.peek(Vec::new())).await;
        assert_eq!(res.unwrap(), 0);
        assert!(buf.is_empty());
    });
}

#[test]
fn tcp_peek_on_a_closed_peer_is_end_of_stream() {
    rt2().block_on(async {
        let (client, server) = tcp_pair().await;
        drop(client);
        for _ in 0..2 {
            let (res, buf) = server.peek(Vec::with_capacity(16)).await;
            assert_eq!(res.unwrap(), 0);
            assert!(buf.is_empty());
        }
        let (res, _) = server.read(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), 0);
    });
}

#[test]
fn tcp_stream_options_round_trip() {
    rt2().block_on(async {
        let (client, server) = tcp_pair().await;

        assert!(!client.keepalive().unwrap());
        client.set_keepalive(true).unwrap();
        assert!(client.keepalive().unwrap());
        client.set_keepalive(false).unwrap();
        assert!(!client.keepalive().unwrap());

        assert_eq!(client.linger().unwrap(), None);
        client.set_linger(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(5)));
        // Whole seconds: a non-zero linger rounds up, never down to the zero that resets.
        client.set_linger(Some(Duration::from_millis(500))).unwrap();
        assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(1)));
        client
            .set_linger(Some(Duration::from_millis(2500)))
            .unwrap();
        assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(3)));
        // Beyond an int of seconds: capped, not wrapped (2^32 s would wrap to 0).
        for huge in [Duration::from_secs(1 << 32), Duration::MAX] {
            client.set_linger(Some(huge)).unwrap();
            assert_eq!(
                client.linger().unwrap(),
                Some(Duration::from_secs(i32::MAX as u64))
            );
        }
        client.set_linger(Some(Duration::ZERO)).unwrap();
        assert_eq!(client.linger().unwrap(), Some(Duration::ZERO));
        client.set_linger(None).unwrap();
        assert_eq!(client.linger().unwrap(), None);

        // Linux doubles the size asked for (and caps it at rmem_max / wmem_max, which are
        // far above this by default).
        const SIZE: usize = 32 * 1024;
        client.set_recv_buffer_size(SIZE).unwrap();
        assert!(client.recv_buffer_size().unwrap() >= SIZE);
        client.set_send_buffer_size(SIZE).unwrap();
        assert!(client.send_buffer_size().unwrap() >= SIZE);
        // Sizes that do not fit an int mean "as large as allowed", not a wrapped value.
        for huge in [usize::MAX, 1 << 32, i32::MAX as usize + 1] {
            client.set_recv_buffer_size(huge).unwrap();
            assert!(client.recv_buffer_size().unwrap() >= SIZE, "{huge}");
            client.set_send_buffer_size(huge).unwrap();
            assert!(client.send_buffer_size().unwrap() >= SIZE, "{huge}");
        }

        client.set_ttl(77).unwrap();
        assert_eq!(client.ttl().unwrap(), 77);
        // Out of range: an error, and the TTL is unchanged (u32::MAX must not wrap to the
        // -1 that means "reset to the default").
        for bad in [256, i32::MAX as u32, u32::MAX] {
            let err = client.set_ttl(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert_eq!(client.ttl().unwrap(), 77);
        }

        assert!(client.take_error().unwrap().is_none());
        assert!(server.take_error().unwrap().is_none());
    });
}

#[test]
fn tcp_listener_options_round_trip() {
    rt2().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        assert!(listener.take_error().unwrap().is_none());
        listener.set_ttl(42).unwrap();
        assert_eq!(listener.ttl().unwrap(), 42);
        let err = listener.set_ttl(u32::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(listener.ttl().unwrap(), 42);

        // Accepted connections inherit it.
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        assert_eq!(server.ttl().unwrap(), 42);
    });
}

#[test]
fn tcp_linger_zero_resets_the_peer_and_the_default_closes_cleanly() {
    rt2().block_on(async {
        // Default: the peer reads end of stream.
        let (client, server) = tcp_pair().await;
        drop(client);
        let (res, _) = server.read(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), 0);

        // SO_LINGER 0: closing sends a reset instead.
        let (client, server) = tcp_pair().await;
        client.set_linger(Some(Duration::ZERO)).unwrap();
        drop(client);
        let (res, _) = server.read(Vec::with_capacity(16)).await;
        let err = res.expect_err("reading from a reset connection fails");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
    });
}

#[test]
fn udp_peek_from_and_peek_leave_the_datagram_queued() {
    rt2().block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a_addr = a.local_addr().unwrap();
        let b_addr = b.local_addr().unwrap();

        let (res, _) = a.send_to(b"ping".to_vec(), b_addr).await;
        assert_eq!(res.unwrap(), 4);
        let (res, buf) = b.peek_from(Vec::with_capacity(64)).await;
        assert_eq!(res.unwrap(), (4, a_addr));
        assert_eq!(buf, b"ping");
        // A buffer too small for it gets the start; the datagram stays whole in the queue.
        let (res, buf) = within("second peek", b.peek_from(Vec::with_capacity(2))).await;
        assert_eq!(res.unwrap(), (2, a_addr));
        assert_eq!(buf, b"pi");
        let (res, buf) = within("recv after peek", b.recv_from(Vec::with_capacity(64))).await;
        assert_eq!(res.unwrap(), (4, a_addr));
        assert_eq!(buf, b"ping");

        // Connected: peek, then recv, see the same datagram.
        b.connect(a_addr).await.unwrap();
        let (res, _) = a.send_to(b"pong".to_vec(), b_addr).await;
        res.unwrap();
        let (res, buf) = b.peek(Vec::with_capacity(64)).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"pong");
        let (res, buf) = within("recv after peek", b.recv(Vec::with_capacity(64))).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"pong");
    });
}

#[test]
fn udp_options_round_trip() {
    rt2().block_on(async {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();

        const SIZE: usize = 32 * 1024;
        socket.set_recv_buffer_size(SIZE).unwrap();
        assert!(socket.recv_buffer_size().unwrap() >= SIZE);
        socket.set_send_buffer_size(SIZE).unwrap();
        assert!(socket.send_buffer_size().unwrap() >= SIZE);
        socket.set_recv_buffer_size(usize::MAX).unwrap();
        assert!(socket.recv_buffer_size().unwrap() >= SIZE);

        assert!(socket.multicast_loop_v4().unwrap());
        socket.set_multicast_loop_v4(false).unwrap();
        assert!(!socket.multicast_loop_v4().unwrap());
        socket.set_multicast_loop_v4(true).unwrap();
        assert!(socket.multicast_loop_v4().unwrap());

        assert_eq!(socket.multicast_ttl_v4().unwrap(), 1);
        socket.set_multicast_ttl_v4(5).unwrap();
        assert_eq!(socket.multicast_ttl_v4().unwrap(), 5);
        // u32::MAX must not wrap to the -1 that means "reset to the default".
        for bad in [256, u32::MAX] {
            let err = socket.set_multicast_ttl_v4(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert_eq!(socket.multicast_ttl_v4().unwrap(), 5);
        }

        socket.set_ttl(9).unwrap();
        assert_eq!(socket.ttl().unwrap(), 9);
        assert!(socket.set_ttl(u32::MAX).is_err());
        assert_eq!(socket.ttl().unwrap(), 9);

        assert!(socket.take_error().unwrap().is_none());

        // IPv6 options on an IPv4 socket: errors, not panics.
        assert!(socket.multicast_loop_v6().is_err());
        assert!(socket.set_multicast_loop_v6(false).is_err());

        // On an IPv6 socket, where the machine has IPv6.
        if let Ok(v6) = UdpSocket::bind("[::1]:0").await {
            assert!(v6.multicast_loop_v6().unwrap());
            v6.set_multicast_loop_v6(false).unwrap();
            assert!(!v6.multicast_loop_v6().unwrap());
            v6.set_multicast_loop_v6(true).unwrap();
            assert!(v6.multicast_loop_v6().unwrap());
        }
    });
}

#[test]
fn udp_take_error_reports_an_icmp_refusal_once() {
    rt2().block_on(async {
        // A port nobody listens on: bind one, note it, close it.
        let closed: SocketAddr = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(closed).await.unwrap();
        let (res, _) = socket.send(b"anyone?".to_vec()).await;
        res.unwrap();
        // The ICMP "port unreachable" comes back through loopback; give it time.
        let mut taken = None;
        for _ in 0..1000 {
            if let Some(err) = socket.take_error().unwrap() {
                taken = Some(err);
                break;
            }
            ringleader::time::sleep(Duration::from_millis(2)).await;
        }
        let err = taken.expect("the refusal is left in SO_ERROR");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        // Taking it cleared it.
        assert!(socket.take_error().unwrap().is_none());
    });
}

#[test]
fn udp_multicast_membership() {
    rt2().block_on(async {
        let group = Ipv4Addr::new(239, 255, 77, 77);
        let lo = Ipv4Addr::LOCALHOST;
        let socket = UdpSocket::bind("0.0.0.0:0").await.unwrap();

        // Leaving a group never joined: an error naming the missing membership. With an
        // explicit interface address the kernel needs no multicast route to say so.
        let err = socket.leave_multicast_v4(group, lo).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{err:?}");
        // Not a multicast address: rejected.
        let err = socket.join_multicast_v4(lo, lo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        // Joining depends on the machine's interfaces (a sandbox may have no multicast
        // route); where it works, membership is tracked exactly.
        match socket.join_multicast_v4(group, lo) {
            Ok(()) => {
                let err = socket.join_multicast_v4(group, lo).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE), "{err:?}");
                // A datagram sent to the group out of loopback reaches the member.
                let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                socket2::SockRef::from(&sender)
                    .set_multicast_if_v4(&lo)
                    .unwrap();
                let port = socket.local_addr().unwrap().port();
                let (res, _) = sender.send_to(b"to all".to_vec(), (group, port)).await;
                res.unwrap();
                let recv = socket.recv_from(Vec::with_capacity(64));
                let (res, buf) = within("the group member's receive", recv).await;
                assert_eq!(res.unwrap(), (6, sender.local_addr().unwrap()));
                assert_eq!(buf, b"to all");
                socket.leave_multicast_v4(group, lo).unwrap();
                let err = socket.leave_multicast_v4(group, lo).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{err:?}");
            }
            Err(err) => eprintln!("joining {group} on {lo} is not possible here: {err}"),
        }
        // The options a multicast sender sets work either way.
        socket.set_multicast_loop_v4(false).unwrap();
        assert!(!socket.multicast_loop_v4().unwrap());
        socket.set_multicast_ttl_v4(2).unwrap();
        assert_eq!(socket.multicast_ttl_v4().unwrap(), 2);

        // IPv6 calls on an IPv4 socket: errors, not panics.
        let group6: Ipv6Addr = "ff02::1:77".parse().unwrap();
        assert!(socket.join_multicast_v6(&group6, 0).is_err());
        assert!(socket.leave_multicast_v6(&group6, 0).is_err());

        if let Ok(v6) = UdpSocket::bind("[::]:0").await {
            let err = v6.leave_multicast_v6(&group6, 0).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{err:?}");
            let err = v6.join_multicast_v6(&Ipv6Addr::LOCALHOST, 0).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            // An interface index that does not exist.
            assert!(v6.join_multicast_v6(&group6, u32::MAX).is_err());
        }
    });
}

#[test]
fn unix_peek_leaves_the_bytes_for_the_next_read() {
    rt2().block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (res, _) = a.write_all(b"over unix".to_vec()).await;
        res.unwrap();
        // A Unix stream's write is queued whole on the peer before it returns.
        let (res, buf) = within("unix peek", b.peek(Vec::with_capacity(4))).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"over");
        let (res, buf) = within("unix read", b.read(Vec::with_capacity(64))).await;
        assert_eq!(res.unwrap(), 9);
        assert_eq!(buf, b"over unix");
        drop(a);
        let (res, _) = within("unix peek at eof", b.peek(Vec::with_capacity(4))).await;
        assert_eq!(res.unwrap(), 0);
    });
}
