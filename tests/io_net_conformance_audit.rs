//! Conformance audit of `ringleader::net` sockets against the documented behaviour of
//! `std::net`, `std::os::unix::net` and `tokio::net`: errors (kind and OS code), addresses,
//! shutdown, end of stream, truncation of datagrams, and fd accounting on error paths.
//! Owned-buffer I/O is a deliberate difference of signature; behaviour is what is checked.
//! Where std and tokio differ, these tests follow std.
//!
//! Every test holds one lock: some count this process's fds, and one changes the SIGPIPE
//! disposition, which the others would disturb.

mod support;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ringleader::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use ringleader::taskgroup::timeout;
use support::{open_fds, rt2, serial};

/// A bound on waits that must end, so a regression fails instead of hanging the suite.
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a fresh two-worker runtime, failing (not hanging) after [`LIMIT`].
fn run<F: Future>(f: F) -> F::Output {
    rt2()
        .block_on(timeout(LIMIT, f))
        .expect("the test timed out: an operation never completed")
}

/// A socket path in the temp dir that no other test (or run) uses.
fn temp_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("rl-netaudit-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// An abstract Unix socket name (leading NUL), unique to this process.
fn abstract_name(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(format!("rl-netaudit-{}-{name}-{n}", std::process::id()).as_bytes());
    PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))
}

/// A loopback address nobody listens on (a listener's port, freed).
async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Waits (bounded) until the fd count is back to `before`; the count then.
async fn fds_back_to(before: usize) -> usize {
    for _ in 0..2000 {
        if open_fds() == before {
            break;
        }
        ringleader::time::sleep(Duration::from_millis(5)).await;
    }
    open_fds()
}

fn assert_os(err: &io::Error, kind: io::ErrorKind, code: i32) {
    assert_eq!(err.kind(), kind, "{err:?}");
    assert_eq!(err.raw_os_error(), Some(code), "{err:?}");
}

/// A connected pair: (client, server side, server side's view of the client's address).
async fn tcp_pair() -> (TcpStream, TcpStream, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = ringleader::spawn(async move { TcpStream::connect(addr).await.unwrap() });
    let (server, peer) = listener.accept().await.unwrap();
    (client.await.unwrap(), server, peer)
}

// ---------------------------------------------------------------------------------------
// TcpListener
// ---------------------------------------------------------------------------------------

#[test]
fn tcp_listener_bind_errors_keep_kind_and_os_code() {
    let _serial = serial();
    run(async {
        let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = first.local_addr().unwrap();
        assert_ne!(addr.port(), 0, "port 0 must give the kernel's port");
        assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
        let err = TcpListener::bind(addr).await.unwrap_err();
        assert_os(&err, io::ErrorKind::AddrInUse, libc::EADDRINUSE);

        // TEST-NET-1 is never a local address (unless ip_nonlocal_bind is on).
        let nonlocal = std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind")
            .map(|s| s.trim() == "1")
            .unwrap_or(false);
        if !nonlocal {
            let err = TcpListener::bind("192.0.2.1:0").await.unwrap_err();
            assert_os(&err, io::ErrorKind::AddrNotAvailable, libc::EADDRNOTAVAIL);
        }
    });
}

#[test]
fn tcp_accept_returns_the_peer_address_and_views_agree() {
    let _serial = serial();
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (client, server, peer) = {
            let addr = listener.local_addr().unwrap();
            let client = ringleader::spawn(async move { TcpStream::connect(addr).await.unwrap() });
            let (server, peer) = listener.accept().await.unwrap();
            (client.await.unwrap(), server, peer)
        };
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
        assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
        assert_eq!(client.peer_addr().unwrap(), listener.local_addr().unwrap());
    });
}

#[test]
fn tcp_listener_std_round_trip_keeps_working() {
    let _serial = serial();
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let std_listener = listener.into_std().unwrap();
        assert_eq!(std_listener.local_addr().unwrap(), addr);
        // As tokio's into_std: the socket comes back non-blocking; std can make it blocking.
        std_listener.set_nonblocking(false).unwrap();
        let c1 = std::net::TcpStream::connect(addr).unwrap();
        let (s1, p1) = std_listener.accept().unwrap();
        assert_eq!(p1, c1.local_addr().unwrap());
        drop((c1, s1));

        let listener = TcpListener::from_std(std_listener).unwrap();
        let client = ringleader::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (server, _) = listener.accept().await.unwrap();
        let client = client.await.unwrap();
        let (res, _) = client.write_all(b"hello".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.read_exact(vec![0u8; 5]).await;
        res.unwrap();
        assert_eq!(buf, b"hello");

        // And a stream's round trip.
        let std_client = client.into_std().unwrap();
        std_client.set_nonblocking(false).unwrap();
        std::io::Write::write_all(&mut &std_client, b"std").unwrap();
        let client = TcpStream::from_std(std_client).unwrap();
        let (res, buf) = server.read_exact(vec![0u8; 3]).await;
        res.unwrap();
        assert_eq!(buf, b"std");
        let (res, _) = client.write_all(b"back".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.read_exact(vec![0u8; 4]).await;
        res.unwrap();
        assert_eq!(buf, b"back");
    });
}

#[test]
fn tcp_listener_drop_closes_its_fd() {
    let _serial = serial();
    run(async {
        let before = open_fds();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(open_fds(), before + 1);
        drop(listener);
        assert_eq!(fds_back_to(before).await, before);
        // The port is free again: connecting is refused.
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_os(&err, io::ErrorKind::ConnectionRefused, libc::ECONNREFUSED);
    });
}

// ---------------------------------------------------------------------------------------
// TcpStream
// ---------------------------------------------------------------------------------------

#[test]
fn tcp_connect_refused_keeps_the_os_code() {
    let _serial = serial();
    run(async {
        let addr = refused_addr().await;
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_os(&err, io::ErrorKind::ConnectionRefused, libc::ECONNREFUSED);
    });
}

#[test]
fn tcp_connect_tries_each_address_in_order() {
    let _serial = serial();
    run(async {
        let refused = refused_addr().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        let addrs = [refused, good];
        let client = ringleader::spawn(async move {
            let addrs = addrs;
            TcpStream::connect(&addrs[..]).await
        });
        let (_server, _) = listener.accept().await.unwrap();
        let client = client.await.unwrap().unwrap();
        assert_eq!(client.peer_addr().unwrap(), good);

        // All refused: the last error, with its code.
        let other = refused_addr().await;
        let err = TcpStream::connect(&[refused, other][..]).await.unwrap_err();
        assert_os(&err, io::ErrorKind::ConnectionRefused, libc::ECONNREFUSED);
    });
}

#[test]
fn tcp_shutdown_write_sends_eof_and_keeps_reading() {
    let _serial = serial();
    run(async {
        let (client, server, _) = tcp_pair().await;
        client.shutdown(Shutdown::Write).await.unwrap();
        let (res, _) = server.read(vec![0u8; 8]).await;
        assert_eq!(res.unwrap(), 0, "the peer reads EOF after shutdown(Write)");
        let (res, _) = server.write_all(b"still".to_vec()).await;
        res.unwrap();
        let (res, buf) = client.read_exact(vec![0u8; 5]).await;
        res.unwrap();
        assert_eq!(buf, b"still");
        // Writing after shutdown(Write) is EPIPE, as std.
        let (res, _) = client.write(b"x".to_vec()).await;
        assert_os(&res.unwrap_err(), io::ErrorKind::BrokenPipe, libc::EPIPE);
    });
}

#[test]
fn tcp_shutdown_read_and_both() {
    let _serial = serial();
    run(async {
        let (client, server, _) = tcp_pair().await;
        client.shutdown(Shutdown::Read).await.unwrap();
        // Linux: reads after SHUT_RD give end of stream.
        let (res, _) = client.read(vec![0u8; 8]).await;
        assert_eq!(res.unwrap(), 0);
        // Writing still works.
        let (res, _) = client.write_all(b"w".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.read_exact(vec![0u8; 1]).await;
        res.unwrap();
        assert_eq!(buf, b"w");

        let (client, server, _) = tcp_pair().await;
        client.shutdown(Shutdown::Both).await.unwrap();
        let (res, _) = server.read(vec![0u8; 8]).await;
        assert_eq!(res.unwrap(), 0);
        let (res, _) = client.read(vec![0u8; 8]).await;
        assert_eq!(res.unwrap(), 0);
        let (res, _) = client.write(b"x".to_vec()).await;
        assert_os(&res.unwrap_err(), io::ErrorKind::BrokenPipe, libc::EPIPE);
    });
}

#[test]
fn tcp_read_after_peer_close_is_zero() {
    let _serial = serial();
    run(async {
        let (client, server, _) = tcp_pair().await;
        let (res, _) = server.write_all(b"last".to_vec()).await;
        res.unwrap();
        drop(server);
        let (res, buf) = client.read_to_end(Vec::new()).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"last");
        let (res, _) = client.read(vec![0u8; 8]).await;
        assert_eq!(res.unwrap(), 0, "reads after EOF stay at 0");
    });
}

/// Restores SIGPIPE's disposition when dropped.
struct SigpipeDefault(libc::sighandler_t);

impl SigpipeDefault {
    fn set() -> Self {
        // SAFETY: signal(2) with SIG_DFL installs no handler of ours; the previous
        // disposition is restored on drop. Every test holds the serial lock, so none runs meanwhile.
        SigpipeDefault(unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) })
    }
}

impl Drop for SigpipeDefault {
    fn drop(&mut self) {
        // SAFETY: restores the disposition saved in `set`.
        unsafe { libc::signal(libc::SIGPIPE, self.0) };
    }
}

#[test]
fn tcp_write_after_peer_reset_is_an_error_not_sigpipe() {
    let _serial = serial();
    // The test harness ignores SIGPIPE; with the default action a missing MSG_NOSIGNAL
    // would kill this process, failing the test run.
    let _sigpipe = SigpipeDefault::set();
    run(async {
        for how in 0..3 {
            let (client, server, _) = tcp_pair().await;
            // Abortive close: RST, not FIN.
            let std_server = server.into_std().unwrap();
            socket2::SockRef::from(&std_server)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(std_server);
            let mut err = None;
            for _ in 0..100 {
                let res = match how {
                    0 => client.write(vec![1u8; 1024]).await.0.map(drop),
                    1 => client.write_all(vec![1u8; 1024]).await.0,
                    _ => client
                        .writev(vec![vec![1u8; 512], vec![2u8; 512]])
                        .await
                        .0
                        .map(drop),
                };
                if let Err(e) = res {
                    err = Some(e);
                    break;
                }
                ringleader::time::sleep(Duration::from_millis(2)).await;
            }
            let err = err.expect("writes after a reset must fail");
            assert!(
                matches!(err.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)),
                "{err:?}"
            );
        }
    });
}

#[test]
fn tcp_nodelay_and_zero_length_io() {
    let _serial = serial();
    run(async {
        let (client, server, _) = tcp_pair().await;
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        client.set_nodelay(false).unwrap();
        assert!(!client.nodelay().unwrap());
        client.set_ttl(17).unwrap();
        assert_eq!(client.ttl().unwrap(), 17);
        let err = client.set_ttl(1000).unwrap_err();
        assert_os(&err, io::ErrorKind::InvalidInput, libc::EINVAL);

        // Zero-length write and read: Ok(0) at once, as std, and nothing is lost.
        let (res, _) = client.write(Vec::new()).await;
        assert_eq!(res.unwrap(), 0);
        let (res, _) = client.write_all(Vec::new()).await;
        res.unwrap();
        let (res, _) = server.read(Vec::new()).await;
        assert_eq!(res.unwrap(), 0);
        let (res, _) = server.read_exact(Vec::new()).await;
        res.unwrap();
        let (res, _) = server.readv(vec![Vec::<u8>::new(), Vec::new()]).await;
        assert_eq!(res.unwrap(), 0);
        let (res, _) = client.write_all(b"ab".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.read_exact(vec![0u8; 2]).await;
        res.unwrap();
        assert_eq!(buf, b"ab");
    });
}

#[test]
fn tcp_split_halves_work_from_two_tasks_and_reunite_checks_origin() {
    let _serial = serial();
    run(async {
        let (client, server, _) = tcp_pair().await;
        let (read, write) = client.into_split();
        let (res, _) = read.read(Vec::new()).await;
        assert_eq!(
            res.unwrap(),
            0,
            "a zero-length read of a half returns at once"
        );
        let reader = ringleader::spawn(async move {
            let (res, buf) = read.read_exact(vec![0u8; 4]).await;
            res.unwrap();
            assert_eq!(buf, b"pong");
            read
        });
        let writer = ringleader::spawn(async move {
            let (res, _) = write.write_all(b"ping".to_vec()).await;
            res.unwrap();
            write
        });
        let (res, buf) = server.read_exact(vec![0u8; 4]).await;
        res.unwrap();
        assert_eq!(buf, b"ping");
        let (res, _) = server.write_all(b"pong".to_vec()).await;
        res.unwrap();
        let read = reader.await.unwrap();
        let write = writer.await.unwrap();

        let (other, _other_server, _) = tcp_pair().await;
        let (other_read, other_write) = other.into_split();
        let (read, other_write) = read.reunite(other_write).unwrap_err();
        let (other_read, write) = other_read.reunite(write).unwrap_err();
        let client = read.reunite(write).unwrap();
        let _other = other_read.reunite(other_write).unwrap();
        let (res, _) = client.write_all(b"!".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.read_exact(vec![0u8; 1]).await;
        res.unwrap();
        assert_eq!(buf, b"!");
    });
}

// ---------------------------------------------------------------------------------------
// UdpSocket
// ---------------------------------------------------------------------------------------

#[test]
fn udp_send_to_recv_from_and_truncation() {
    let _serial = serial();
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let (res, _) = a.send_to(b"hello".to_vec(), b_addr).await;
        assert_eq!(res.unwrap(), 5);
        let (res, buf) = b.recv_from(vec![0u8; 64]).await;
        assert_eq!(res.unwrap(), (5, a_addr));
        assert_eq!(&buf[..5], b"hello");

        // Larger than the buffer: truncated to it, the rest discarded (as std).
        let big: Vec<u8> = (0..100u8).collect();
        let (res, _) = a.send_to(big.clone(), b_addr).await;
        assert_eq!(res.unwrap(), 100);
        let (res, _) = a.send_to(b"next".to_vec(), b_addr).await;
        res.unwrap();
        let (res, buf) = b.recv_from(Vec::with_capacity(10)).await;
        assert_eq!(res.unwrap(), (10, a_addr));
        assert_eq!(&buf[..10], &big[..10]);
        let (res, buf) = b.recv_from(vec![0u8; 64]).await;
        assert_eq!(
            res.unwrap().0,
            4,
            "the truncated rest must not be delivered"
        );
        assert_eq!(&buf[..4], b"next");

        // An empty datagram is a datagram.
        let (res, _) = a.send_to(Vec::new(), b_addr).await;
        assert_eq!(res.unwrap(), 0);
        let (res, _) = a.send_to(b"after".to_vec(), b_addr).await;
        res.unwrap();
        let (res, _) = b.recv_from(vec![0u8; 64]).await;
        assert_eq!(res.unwrap(), (0, a_addr));
        let (res, buf) = b.recv_from(vec![0u8; 64]).await;
        assert_eq!(res.unwrap(), (5, a_addr));
        assert_eq!(&buf[..5], b"after");
    });
}

#[test]
fn udp_connected_send_recv_filters_other_peers() {
    let _serial = serial();
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a_addr = a.local_addr().unwrap();
        let b_addr = b.local_addr().unwrap();

        let err = a.peer_addr().unwrap_err();
        assert_os(&err, io::ErrorKind::NotConnected, libc::ENOTCONN);
        // send without a peer: the kernel's EDESTADDRREQ, kept as is (std does the same).
        let (res, _) = a.send(b"x".to_vec()).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EDESTADDRREQ));

        a.connect(b_addr).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
        let (res, _) = stranger.send_to(b"noise".to_vec(), a_addr).await;
        res.unwrap();
        let (res, _) = b.send_to(b"from b".to_vec(), a_addr).await;
        res.unwrap();
        let (res, buf) = a.recv(vec![0u8; 64]).await;
        assert_eq!(
            res.unwrap(),
            6,
            "only the connected peer's datagram is received"
        );
        assert_eq!(&buf[..6], b"from b");

        let (res, _) = a.send(b"to b".to_vec()).await;
        assert_eq!(res.unwrap(), 4);
        let (res, buf) = b.recv_from(vec![0u8; 64]).await;
        assert_eq!(res.unwrap(), (4, a_addr));
        assert_eq!(&buf[..4], b"to b");

        // Truncation applies to recv too.
        let (res, _) = b.send_to(vec![7u8; 50], a_addr).await;
        res.unwrap();
        let (res, _) = a.recv(Vec::with_capacity(3)).await;
        assert_eq!(res.unwrap(), 3);

        let err = UdpSocket::bind(a_addr).await.unwrap_err();
        assert_os(&err, io::ErrorKind::AddrInUse, libc::EADDRINUSE);
    });
}

#[test]
fn udp_broadcast_and_ttl_options() {
    let _serial = serial();
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert!(!a.broadcast().unwrap());
        a.set_broadcast(true).unwrap();
        assert!(a.broadcast().unwrap());
        a.set_broadcast(false).unwrap();
        assert!(!a.broadcast().unwrap());
        a.set_ttl(9).unwrap();
        assert_eq!(a.ttl().unwrap(), 9);
    });
}

// ---------------------------------------------------------------------------------------
// Unix sockets
// ---------------------------------------------------------------------------------------

#[test]
fn unix_listener_errors_and_path_left_on_drop() {
    let _serial = serial();
    run(async {
        let path = temp_path("listener");
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_deref(),
            Some(path.as_path())
        );
        let err = UnixListener::bind(&path).unwrap_err();
        assert_os(&err, io::ErrorKind::AddrInUse, libc::EADDRINUSE);

        let client = ringleader::spawn({
            let path = path.clone();
            async move { UnixStream::connect(path).await.unwrap() }
        });
        let (server, peer) = listener.accept().await.unwrap();
        let client = client.await.unwrap();
        assert_eq!(peer, None, "an unnamed client has no path");
        assert_eq!(client.local_addr().unwrap(), None);
        assert_eq!(client.peer_addr().unwrap().as_deref(), Some(path.as_path()));
        assert_eq!(server.peer_addr().unwrap(), None);

        // As std: dropping the listener leaves the path; nobody listens there any more.
        drop(listener);
        assert!(
            path.exists(),
            "the socket file stays after the listener is dropped"
        );
        let err = UnixStream::connect(&path).await.unwrap_err();
        assert_os(&err, io::ErrorKind::ConnectionRefused, libc::ECONNREFUSED);
        std::fs::remove_file(&path).unwrap();

        let err = UnixStream::connect(&path).await.unwrap_err();
        assert_os(&err, io::ErrorKind::NotFound, libc::ENOENT);
    });
}

#[test]
fn unix_paths_with_interior_nul_are_rejected_as_std() {
    let _serial = serial();
    run(async {
        let path = temp_path("nul");
        let mut bytes = path.as_os_str().as_bytes().to_vec();
        bytes.extend_from_slice(b"\0tail");
        let bad = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
        // std: "paths must not contain interior null bytes" (InvalidInput); the kernel
        // would otherwise bind the truncated path silently.
        let err = UnixListener::bind(&bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(!path.exists(), "nothing may be bound at the truncated path");
        let err = UnixDatagram::bind(&bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(!path.exists());
        let err = UnixStream::connect(&bad).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let sock = UnixDatagram::unbound().unwrap();
        let (res, _) = sock.send_to(b"x".to_vec(), &bad).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            sock.connect(&bad).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    });
}

#[test]
fn unix_abstract_names() {
    let _serial = serial();
    run(async {
        let name = abstract_name("stream");
        let listener = UnixListener::bind(&name).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_deref(),
            Some(name.as_path())
        );
        let err = UnixListener::bind(&name).unwrap_err();
        assert_os(&err, io::ErrorKind::AddrInUse, libc::EADDRINUSE);
        let client = ringleader::spawn({
            let name = name.clone();
            async move { UnixStream::connect(name).await.unwrap() }
        });
        let (server, _) = listener.accept().await.unwrap();
        let client = client.await.unwrap();
        assert_eq!(client.peer_addr().unwrap().as_deref(), Some(name.as_path()));
        let (res, _) = client.write_all(b"abs".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.read_exact(vec![0u8; 3]).await;
        res.unwrap();
        assert_eq!(buf, b"abs");
        drop(listener);
        let err = UnixStream::connect(&name).await.unwrap_err();
        assert_os(&err, io::ErrorKind::ConnectionRefused, libc::ECONNREFUSED);

        // Datagrams between abstract names report the sender's name.
        let (an, bn) = (abstract_name("dga"), abstract_name("dgb"));
        let a = UnixDatagram::bind(&an).unwrap();
        let b = UnixDatagram::bind(&bn).unwrap();
        let (res, _) = a.send_to(b"hi".to_vec(), &bn).await;
        assert_eq!(res.unwrap(), 2);
        let (res, _) = b.recv_from(vec![0u8; 8]).await;
        assert_eq!(res.unwrap(), (2, Some(an.clone())));
    });
}

#[test]
fn unix_stream_pair_and_shutdown() {
    let _serial = serial();
    run(async {
        let (a, b) = UnixStream::pair().unwrap();
        assert_eq!(a.peer_addr().unwrap(), None, "an unnamed peer has no path");
        assert_eq!(a.local_addr().unwrap(), None);
        let (res, _) = b.read(Vec::new()).await;
        assert_eq!(res.unwrap(), 0, "a zero-length read returns at once");
        let (res, _) = a.write_all(b"ab".to_vec()).await;
        res.unwrap();
        let (res, buf) = b.read_exact(vec![0u8; 2]).await;
        res.unwrap();
        assert_eq!(buf, b"ab");
        a.shutdown(Shutdown::Write).await.unwrap();
        let (res, _) = b.read(vec![0u8; 4]).await;
        assert_eq!(res.unwrap(), 0);
        let (res, _) = b.write_all(b"c".to_vec()).await;
        res.unwrap();
        let (res, buf) = a.read_exact(vec![0u8; 1]).await;
        res.unwrap();
        assert_eq!(buf, b"c");
        drop(b);
        let (res, _) = a.read(vec![0u8; 4]).await;
        assert_eq!(res.unwrap(), 0);
    });
}

#[test]
fn unix_datagram_conformance() {
    let _serial = serial();
    run(async {
        let (pa, pb) = (temp_path("dga"), temp_path("dgb"));
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        let err = UnixDatagram::bind(&pa).unwrap_err();
        assert_os(&err, io::ErrorKind::AddrInUse, libc::EADDRINUSE);

        let (res, _) = a.send_to(b"hello".to_vec(), &pb).await;
        assert_eq!(res.unwrap(), 5);
        let (res, buf) = b.recv_from(vec![0u8; 16]).await;
        assert_eq!(res.unwrap(), (5, Some(pa.clone())));
        assert_eq!(&buf[..5], b"hello");

        // Truncation, as UDP and std.
        let (res, _) = a.send_to(vec![9u8; 40], &pb).await;
        res.unwrap();
        let (res, _) = a.send_to(b"z".to_vec(), &pb).await;
        res.unwrap();
        let (res, _) = b.recv_from(Vec::with_capacity(4)).await;
        assert_eq!(res.unwrap().0, 4);
        let (res, buf) = b.recv_from(vec![0u8; 16]).await;
        assert_eq!(res.unwrap().0, 1);
        assert_eq!(buf[0], b'z');

        // Empty datagram.
        let (res, _) = a.send_to(Vec::new(), &pb).await;
        assert_eq!(res.unwrap(), 0);
        let (res, _) = b.recv_from(vec![0u8; 16]).await;
        assert_eq!(res.unwrap(), (0, Some(pa.clone())));

        // Unconnected: no peer.
        let err = a.peer_addr().unwrap_err();
        assert_os(&err, io::ErrorKind::NotConnected, libc::ENOTCONN);
        let (res, _) = a.send(b"x".to_vec()).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ENOTCONN));

        // Connected.
        a.connect(&pb).unwrap();
        assert_eq!(a.peer_addr().unwrap(), Some(pb.clone()));
        let (res, _) = a.send(b"conn".to_vec()).await;
        assert_eq!(res.unwrap(), 4);
        let (res, buf) = b.recv(vec![0u8; 16]).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(&buf[..4], b"conn");

        // Connecting to nothing.
        let missing = temp_path("dgmissing");
        let err = a.connect(&missing).unwrap_err();
        assert_os(&err, io::ErrorKind::NotFound, libc::ENOENT);
        let (res, _) = b.send_to(b"x".to_vec(), &missing).await;
        assert_os(&res.unwrap_err(), io::ErrorKind::NotFound, libc::ENOENT);

        // Pair: connected, unnamed.
        let (x, y) = UnixDatagram::pair().unwrap();
        assert_eq!(x.peer_addr().unwrap(), None);
        let (res, _) = x.send(b"pair".to_vec()).await;
        res.unwrap();
        let (res, buf) = y.recv_from(vec![0u8; 16]).await;
        assert_eq!(res.unwrap(), (4, None));
        assert_eq!(&buf[..4], b"pair");

        drop((a, b));
        assert!(
            pa.exists() && pb.exists(),
            "as std, dropping leaves the paths"
        );
        std::fs::remove_file(&pa).unwrap();
        std::fs::remove_file(&pb).unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Error paths leak nothing
// ---------------------------------------------------------------------------------------

#[test]
fn failing_operations_leak_no_fd() {
    let _serial = serial();
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taken = listener.local_addr().unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let udp_taken = udp.local_addr().unwrap();
        let refused = refused_addr().await;
        let path = temp_path("leak");
        let unix = UnixListener::bind(&path).unwrap();
        let missing = temp_path("leakmissing");
        let long = PathBuf::from("/tmp/".to_owned() + &"x".repeat(200));

        let before = open_fds();
        for _ in 0..50 {
            assert!(TcpListener::bind(taken).await.is_err());
            assert!(TcpStream::connect(refused).await.is_err());
            assert!(UdpSocket::bind(udp_taken).await.is_err());
            assert!(UnixListener::bind(&path).is_err());
            assert!(UnixListener::bind(&long).is_err());
            assert!(UnixStream::connect(&missing).await.is_err());
            assert!(UnixStream::connect(&long).await.is_err());
            assert!(UnixDatagram::bind(&path).is_err());
            let d = UnixDatagram::unbound().unwrap();
            assert!(d.connect(&missing).is_err());
        }
        assert_eq!(fds_back_to(before).await, before);
        drop((listener, udp, unix));
        std::fs::remove_file(&path).unwrap();
    });
}
