//! `TcpSocket`: options set before connect or listen read back and carry over, bind then
//! connect connects from the bound address, listen accepts, the errors are the right kinds
//! (refused, wrong family, address in use), and no path leaks an fd.
//!
//! Every test counts or may disturb `/proc/self/fd`, so all of them hold one lock and run
//! their body on a thread of their own that they join before releasing it (see
//! `tests/io_fd_accounting.rs` for why the join matters).

mod support;

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use ringleader::net::{TcpListener, TcpSocket};
use support::{open_fds, poll_once, rt2, serial_on_thread};

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A port nothing listens on: bound by a std listener that is then dropped.
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind(localhost(0))
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn bind_then_connect_connects_from_the_bound_address_and_echoes() {
    serial_on_thread(|| {
        rt2().block_on(async {
            let listener = TcpListener::bind(localhost(0)).await.unwrap();
            let server_addr = listener.local_addr().unwrap();
            let server = ringleader::spawn(async move {
                let (stream, peer) = listener.accept().await.unwrap();
                let (res, buf) = stream.read(Vec::with_capacity(64)).await;
                res.unwrap();
                let (res, _) = stream.write_all(buf).await;
                res.unwrap();
                peer
            });

            let socket = TcpSocket::new_v4().unwrap();
            socket.bind(localhost(0)).unwrap();
            let bound = socket.local_addr().unwrap();
            assert_ne!(bound.port(), 0, "bind to port 0 picks a port");
            let stream = socket.connect(server_addr).await.unwrap();
            assert_eq!(stream.local_addr().unwrap(), bound);
            assert_eq!(stream.peer_addr().unwrap(), server_addr);

            let (res, _) = stream.write_all(b"ping over a TcpSocket".to_vec()).await;
            res.unwrap();
            let (res, echo) = stream.read_exact(vec![0u8; 21]).await;
            res.unwrap();
            assert_eq!(echo, b"ping over a TcpSocket");
            assert_eq!(
                server.await.unwrap(),
                bound,
                "the server saw the bound address"
            );
        });
    });
}

#[test]
fn listen_with_a_backlog_accepts_connections_that_inherit_its_options() {
    serial_on_thread(|| {
        rt2().block_on(async {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            socket.set_nodelay(true).unwrap();
            socket.bind(localhost(0)).unwrap();
            let listener = socket.listen(16).unwrap();
            let addr = listener.local_addr().unwrap();

            // Connect three before accepting any: they wait in the backlog.
            let mut clients = Vec::new();
            for _ in 0..3 {
                clients.push(TcpSocket::new_v4().unwrap().connect(addr).await.unwrap());
            }
            let mut peers = Vec::new();
            for _ in 0..clients.len() {
                let (accepted, peer) = listener.accept().await.unwrap();
                assert_eq!(accepted.peer_addr().unwrap(), peer);
                // Linux copies TCP_NODELAY from the listener to the connections it accepts.
                assert!(accepted.nodelay().unwrap());
                peers.push(peer);
            }
            let mut expected: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
            expected.sort();
            peers.sort();
            assert_eq!(peers, expected, "each client accepted once");
        });
    });
}

#[test]
fn options_read_back_what_was_set() {
    serial_on_thread(|| {
        let socket = TcpSocket::new_v4().unwrap();

        assert!(!socket.reuseaddr().unwrap());
        socket.set_reuseaddr(true).unwrap();
        assert!(socket.reuseaddr().unwrap());
        socket.set_reuseaddr(false).unwrap();
        assert!(!socket.reuseaddr().unwrap());

        assert!(!socket.reuseport().unwrap());
        socket.set_reuseport(true).unwrap();
        assert!(socket.reuseport().unwrap());
        socket.set_reuseport(false).unwrap();
        assert!(!socket.reuseport().unwrap());

        assert!(!socket.nodelay().unwrap());
        socket.set_nodelay(true).unwrap();
        assert!(socket.nodelay().unwrap());
        socket.set_nodelay(false).unwrap();
        assert!(!socket.nodelay().unwrap());

        assert!(!socket.keepalive().unwrap());
        socket.set_keepalive(true).unwrap();
        assert!(socket.keepalive().unwrap());
        socket.set_keepalive(false).unwrap();
        assert!(!socket.keepalive().unwrap());

        assert_eq!(socket.linger().unwrap(), None);
        socket.set_linger(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(socket.linger().unwrap(), Some(Duration::from_secs(3)));
        // Sub-second parts round up: 1.5 s is 2 s, never truncated.
        socket
            .set_linger(Some(Duration::from_millis(1500)))
            .unwrap();
        assert_eq!(socket.linger().unwrap(), Some(Duration::from_secs(2)));
        socket.set_linger(None).unwrap();
        assert_eq!(socket.linger().unwrap(), None);

        // The kernel doubles buffer sizes (and caps them): at least what was asked, and a
        // larger request gives a larger buffer, so the set really took effect.
        socket.set_recv_buffer_size(8 << 10).unwrap();
        let small = socket.recv_buffer_size().unwrap();
        socket.set_recv_buffer_size(64 << 10).unwrap();
        let large = socket.recv_buffer_size().unwrap();
        assert!(small >= 8 << 10, "{small}");
        assert!(large >= 64 << 10, "{large}");
        assert!(small < large, "{small} < {large}");

        socket.set_send_buffer_size(8 << 10).unwrap();
        let small = socket.send_buffer_size().unwrap();
        socket.set_send_buffer_size(64 << 10).unwrap();
        let large = socket.send_buffer_size().unwrap();
        assert!(small >= 8 << 10, "{small}");
        assert!(large >= 64 << 10, "{large}");
        assert!(small < large, "{small} < {large}");

        assert!(socket.take_error().unwrap().is_none());
    });
}

#[test]
fn connecting_to_a_closed_port_is_refused_and_leaks_no_fd() {
    serial_on_thread(|| {
        rt2().block_on(async {
            let addr = closed_port();
            let before = open_fds();
            for _ in 0..50 {
                let socket = TcpSocket::new_v4().unwrap();
                socket.bind(localhost(0)).unwrap();
                let err = socket.connect(addr).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
            }
            assert_eq!(open_fds(), before, "a failed connect closes its socket");
        });
    });
}

#[test]
fn a_socket_of_the_other_family_is_invalid_input_and_leaks_no_fd() {
    serial_on_thread(|| {
        rt2().block_on(async {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, closed_port().port()));
            let before = open_fds();

            let socket = TcpSocket::new_v4().unwrap();
            let err = socket.bind(v6).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("IPv4 socket"), "{err}");
            let err = socket.connect(v6).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("IPv6 address"), "{err}");

            // The reverse, where the machine has IPv6 at all.
            if let Ok(socket) = TcpSocket::new_v6() {
                let err = socket.connect(localhost(1)).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            }
            assert_eq!(open_fds(), before);
        });
    });
}

#[test]
fn binding_an_address_in_use_without_reuse_is_addr_in_use() {
    serial_on_thread(|| {
        let first = TcpSocket::new_v4().unwrap();
        first.bind(localhost(0)).unwrap();
        let addr = first.local_addr().unwrap();
        let _listener = first.listen(8).unwrap();

        let before = open_fds();
        let second = TcpSocket::new_v4().unwrap();
        let err = second.bind(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        drop(second);
        assert_eq!(open_fds(), before, "dropping the socket closed it");
    });
}

#[test]
fn two_reuseport_listeners_share_a_port_and_both_accept() {
    serial_on_thread(|| {
        rt2().block_on(async {
            let first = TcpSocket::new_v4().unwrap();
            first.set_reuseport(true).unwrap();
            first.bind(localhost(0)).unwrap();
            let addr = first.local_addr().unwrap();
            let first = first.listen(64).unwrap();

            let second = TcpSocket::new_v4().unwrap();
            second.set_reuseport(true).unwrap();
            second.bind(addr).unwrap();
            let second = second.listen(64).unwrap();
            assert_eq!(second.local_addr().unwrap(), addr);

            // The kernel spreads connections by a hash of the peer's address: with a few
            // dozen clients each listener gets some (each has a 2^-32 chance of none).
            let clients: Vec<_> = {
                let mut v = Vec::new();
                for _ in 0..32 {
                    v.push(TcpSocket::new_v4().unwrap().connect(addr).await.unwrap());
                }
                v
            };
            let drain = |listener: TcpListener| async move {
                let mut n = 0;
                while let Ok(Ok(_)) =
                    ringleader::time::timeout(Duration::from_millis(100), listener.accept()).await
                {
                    n += 1;
                }
                n
            };
            let (a, b) = (drain(first).await, drain(second).await);
            assert_eq!(a + b, clients.len());
            assert!(a > 0 && b > 0, "both listeners accepted: {a} and {b}");
        });
    });
}

#[test]
fn a_cancelled_connect_leaks_no_fd() {
    serial_on_thread(|| {
        rt2().block_on(async {
            let listener = TcpListener::bind(localhost(0)).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let refused = closed_port();
            let before = open_fds();
            for i in 0..50 {
                // In flight (polled once) when dropped: the kernel may or may not have
                // connected it by then. Half of them to a closed port, so failed
                // completions of abandoned operations are covered too.
                let target = if i % 2 == 0 { addr } else { refused };
                let mut connect = Box::pin(TcpSocket::new_v4().unwrap().connect(target));
                let _ = poll_once(connect.as_mut()).await;
                drop(connect);
            }
            // Each cancelled connect's fd closes when its completion is reaped; connections
            // that made it into the backlog are accepted and dropped. Wait up to 5 s for
            // both to settle (a loaded machine reaps late), then compare.
            for _ in 0..250 {
                while let Ok(Ok((s, _))) =
                    ringleader::time::timeout(Duration::from_millis(20), listener.accept()).await
                {
                    drop(s);
                }
                if open_fds() == before {
                    break;
                }
            }
            assert_eq!(open_fds(), before);
        });
    });
}
