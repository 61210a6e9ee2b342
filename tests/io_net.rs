//! TCP, UDP and Unix sockets on the ring: echo under load, fd accounting, every kind of bad
//! input, and operations from threads that drive no worker.

mod support;

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use ringleader::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use ringleader::runtime::Builder;
use support::{rt2, scaled};

/// A pattern that differs per client and per byte, so misplaced bytes are caught.
fn pattern(client: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ client.wrapping_mul(131)) as u8)
        .collect()
}

async fn echo_server(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        drop(ringleader::spawn(async move {
            let mut buf = Vec::with_capacity(16 * 1024);
            loop {
                let (res, b) = stream.read(buf).await;
                buf = b;
                match res {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let (res, b) = stream.write_all(buf).await;
                buf = b;
                if res.is_err() {
                    return;
                }
                buf.clear();
            }
        }));
    }
}

#[test]
fn echo_with_many_concurrent_clients_checks_every_byte() {
    let rt = rt2();
    let clients = scaled(1000).max(100);
    const MESSAGE: usize = 64 * 1024;
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ringleader::spawn(echo_server(listener));
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                ringleader::spawn(async move {
                    let stream = TcpStream::connect(addr).await?;
                    let (reader, writer) = stream.into_split();
                    let expected = pattern(c, MESSAGE);
                    // Write and read concurrently: a 64 KiB message exceeds socket buffers.
                    let write = ringleader::spawn(async move {
                        let (res, _) = writer.write_all(pattern(c, MESSAGE)).await;
                        res.map(|()| writer)
                    });
                    let (res, echoed) = reader.read_exact(Vec::with_capacity(MESSAGE)).await;
                    res?;
                    let _writer = write.await.expect("writer task")?;
                    assert_eq!(echoed.len(), MESSAGE);
                    assert!(echoed == expected, "client {c} got different bytes back");
                    io::Result::Ok(())
                })
            })
            .collect();
        for h in handles {
            h.await.expect("client task").expect("client I/O");
        }
        server.abort();
    });
}

#[test]
fn read_returns_zero_at_eof_and_write_to_a_closed_peer_is_an_error() {
    let rt = rt2();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
        client.shutdown(Shutdown::Write).await.unwrap();
        let (res, _) = server.read(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), 0, "EOF reads as Ok(0)");
        drop(client);
        // The peer is gone: writes fail with EPIPE or ECONNRESET, and the process survives
        // (MSG_NOSIGNAL: no SIGPIPE).
        let mut failed = None;
        for _ in 0..100 {
            let (res, _) = server.write(vec![7u8; 65536]).await;
            if let Err(e) = res {
                failed = Some(e);
                break;
            }
            ringleader::time::sleep(Duration::from_millis(1)).await;
        }
        let err = failed.expect("writing to a closed peer fails");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err:?}"
        );
    });
}

#[test]
fn reset_peer_is_an_error_with_its_os_code() {
    let rt = rt2();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // SO_LINGER 0: close sends RST.
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client);
        let (res, _) = server.read(Vec::with_capacity(16)).await;
        let err = res.expect_err("reading from a reset connection fails");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
    });
}

#[test]
fn refused_connection_and_bad_addresses_are_errors() {
    let rt = rt2();
    rt.block_on(async {
        // A port nobody listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));

        // Not an address at all: the resolver's error, not a panic.
        TcpStream::connect("not an address").await.unwrap_err();
        // A host without its port says so (and a bare host is looked up as (host, 0)).
        for no_port in ["localhost", "127.0.0.1", "::1"] {
            let Err(err) = ringleader::net::lookup_host(no_port).await else {
                panic!("{no_port} resolved without a port");
            };
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{no_port}");
            assert!(err.to_string().contains("no port"), "{no_port}: {err}");
        }
        let found: Vec<_> = ringleader::net::lookup_host(("localhost", 0))
            .await
            .unwrap()
            .collect();
        assert!(found.iter().any(|a| a.ip().is_loopback()), "{found:?}");
        let err = TcpStream::connect("no-such-host.invalid:80")
            .await
            .unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");

        // Binding an address in use.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let err = TcpListener::bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        // An address this host does not have.
        let err = TcpListener::bind("192.0.2.1:0").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
    });
}

#[test]
fn io_outside_a_runtime_is_an_error_not_a_panic() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = TcpListener::from_std(listener).unwrap();
    let err = futures_lite_block_on(listener.accept()).unwrap_err();
    assert!(err.to_string().contains("no ringleader runtime"), "{err}");
}

/// A minimal executor of our own, to poll outside any runtime.
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn operations_from_block_on_and_blocking_pool_threads_complete() {
    let rt = rt2();
    // block_on's own thread drives no worker on a multi-thread runtime.
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = async { listener.accept().await.unwrap().0 };
        let connect = async { TcpStream::connect(addr).await.unwrap() };
        let (server, client) = join2(accept, connect).await;
        let (res, _) = client.write_all(b"from block_on".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.read_exact(Vec::with_capacity(13)).await;
        res.unwrap();
        assert_eq!(buf, b"from block_on");
    });
    // A blocking-pool thread runs its own future with I/O inside.
    let handle = rt.handle().clone();
    let probe = rt
        .handle()
        .spawn_blocking(move || handle.block_on_io_probe());
    let out = rt.block_on(probe);
    assert!(out.unwrap());
}

trait Probe {
    fn block_on_io_probe(&self) -> bool;
}

impl Probe for ringleader::runtime::Handle {
    fn block_on_io_probe(&self) -> bool {
        let _enter = self.enter();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = UnixStream::from_std(a).unwrap();
        let b = UnixStream::from_std(b).unwrap();
        futures_lite_block_on(async move {
            let (res, _) = a.write_all(b"x".to_vec()).await;
            res.unwrap();
            let (res, buf) = b.read(Vec::with_capacity(1)).await;
            res.unwrap() == 1 && buf == b"x"
        })
    }
}

async fn join2<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    use std::task::Poll;
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let mut out_a = None;
    let mut out_b = None;
    std::future::poll_fn(|cx| {
        if out_a.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                out_b = Some(v);
            }
        }
        if out_a.is_some() && out_b.is_some() {
            Poll::Ready((out_a.take().unwrap(), out_b.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}

#[test]
fn current_thread_runtime_does_io_on_its_own_ring() {
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ringleader::spawn(echo_server(listener));
        let client = TcpStream::connect(addr).await.unwrap();
        for round in 0..50usize {
            let msg = pattern(round, 100 + round);
            let (res, _) = client.write_all(msg.clone()).await;
            res.unwrap();
            let (res, got) = client.read_exact(Vec::with_capacity(msg.len())).await;
            res.unwrap();
            assert_eq!(got, msg);
        }
        server.abort();
    });
}

#[test]
fn a_tiny_submission_queue_fills_and_everything_still_completes() {
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .io_ring_entries(8)
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ringleader::spawn(echo_server(listener));
        // Far more concurrent operations than entries in the queue.
        let handles: Vec<_> = (0..200usize)
            .map(|c| {
                ringleader::spawn(async move {
                    let client = TcpStream::connect(addr).await.unwrap();
                    let msg = pattern(c, 512);
                    let (res, _) = client.write_all(msg.clone()).await;
                    res.unwrap();
                    let (res, got) = client.read_exact(Vec::with_capacity(512)).await;
                    res.unwrap();
                    assert_eq!(got, msg);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        server.abort();
    });
}

#[test]
fn dropping_a_pending_read_cancels_it_and_the_socket_stays_usable() {
    let rt = rt2();
    rt.block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        // Cancelled by a timeout while in flight.
        let res =
            ringleader::time::timeout(Duration::from_millis(20), a.read(Vec::with_capacity(4096)))
                .await;
        assert!(res.is_err(), "nothing was written, so the read timed out");
        // Data written after the cancellation is read by the next read.
        let (res, _) = b.write_all(b"after".to_vec()).await;
        res.unwrap();
        // Bounded, so a lost wake-up or swallowed data fails the test instead of hanging it.
        let (res, buf) =
            ringleader::time::timeout(Duration::from_secs(10), a.read_exact(Vec::with_capacity(5)))
                .await
                .expect("the data written after the cancellation reaches the next read");
        res.unwrap();
        assert_eq!(buf, b"after");
    });
}

#[test]
fn udp_send_to_recv_from_and_connected_send_recv() {
    let rt = rt2();
    rt.block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a_addr = a.local_addr().unwrap();
        let b_addr = b.local_addr().unwrap();
        let (res, _) = a.send_to(b"hello".to_vec(), b_addr).await;
        assert_eq!(res.unwrap(), 5);
        let (res, buf) = b.recv_from(Vec::with_capacity(64)).await;
        let (n, from) = res.unwrap();
        assert_eq!((n, from), (5, a_addr));
        assert_eq!(buf, b"hello");

        a.connect(b_addr).await.unwrap();
        b.connect(a_addr).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
        let (res, _) = b.send(b"reply".to_vec()).await;
        res.unwrap();
        let (res, buf) = a.recv(Vec::with_capacity(64)).await;
        assert_eq!(res.unwrap(), 5);
        assert_eq!(buf, b"reply");

        a.set_broadcast(true).unwrap();
        assert!(a.broadcast().unwrap());
        let unconnected = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (res, _) = unconnected.send(b"x".to_vec()).await;
        assert_eq!(
            res.unwrap_err().raw_os_error(),
            Some(libc::EDESTADDRREQ),
            "send without a peer"
        );
    });
}

#[test]
fn unix_streams_datagrams_paths_and_abstract_names() {
    let rt = rt2();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("ringleader-unix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_deref(),
            Some(path.as_path())
        );
        let client = UnixStream::connect(&path).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, None, "an unbound client has no path");
        let (res, _) = client.write_all(b"over unix".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.read_exact(Vec::with_capacity(9)).await;
        res.unwrap();
        assert_eq!(buf, b"over unix");

        let err = UnixStream::connect(dir.join("missing")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);

        // Abstract names: a leading NUL byte, no file.
        let name = format!("\0ringleader-test-{}", std::process::id());
        let abstract_listener = UnixListener::bind(&name).unwrap();
        let c = UnixStream::connect(&name).await.unwrap();
        let (s, _) = abstract_listener.accept().await.unwrap();
        let (res, _) = c.write_all(b"abs".to_vec()).await;
        res.unwrap();
        let (res, buf) = s.read_exact(Vec::with_capacity(3)).await;
        res.unwrap();
        assert_eq!(buf, b"abs");

        let d1 = UnixDatagram::bind(dir.join("d1")).unwrap();
        let d2 = UnixDatagram::bind(dir.join("d2")).unwrap();
        let (res, _) = d1.send_to(b"dgram".to_vec(), dir.join("d2")).await;
        assert_eq!(res.unwrap(), 5);
        let (res, buf) = d2.recv_from(Vec::with_capacity(16)).await;
        let (n, from) = res.unwrap();
        assert_eq!(n, 5);
        assert_eq!(from.as_deref(), Some(dir.join("d1").as_path()));
        assert_eq!(buf, b"dgram");
        let (p1, p2) = UnixDatagram::pair().unwrap();
        let (res, _) = p1.send(b"p".to_vec()).await;
        res.unwrap();
        let (res, buf) = p2.recv(Vec::with_capacity(4)).await;
        assert_eq!(res.unwrap(), 1);
        assert_eq!(buf, b"p");
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn split_halves_work_from_two_tasks_and_reunite() {
    let rt = rt2();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let server = ringleader::spawn(echo_server(listener));
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        assert!(stream.nodelay().unwrap());
        let (r, w) = stream.into_split();
        let writer = ringleader::spawn(async move {
            for i in 0..100u8 {
                let (res, _) = w.write_all(vec![i; 10]).await;
                res.unwrap();
            }
            w
        });
        let mut all = Vec::new();
        while all.len() < 1000 {
            let (res, buf) = r.read(Vec::with_capacity(256)).await;
            assert!(res.unwrap() > 0);
            all.extend_from_slice(&buf);
        }
        let w = writer.await.unwrap();
        let expected: Vec<u8> = (0..100u8).flat_map(|i| [i; 10]).collect();
        assert_eq!(all, expected);
        let stream = r.reunite(w).unwrap();
        stream.close().await.unwrap();
        server.abort();
    });
}

#[test]
fn rings_report_the_flags_the_kernel_accepted() {
    let rt = rt2();
    let metrics = rt.handle().metrics();
    for worker in 0..2 {
        let flags = metrics.io_ring_flags(worker).expect("a ring per worker");
        assert!(
            ["SINGLE_ISSUER|DEFER_TASKRUN", "COOP_TASKRUN", "none"].contains(&flags),
            "{flags}"
        );
    }
    assert_eq!(metrics.io_ring_flags(2), None);
    // The current-thread flavour's core moves between block_on callers: never SINGLE_ISSUER.
    let ct = Builder::new_current_thread().build().unwrap();
    assert_ne!(
        ct.handle().metrics().io_ring_flags(0),
        Some("SINGLE_ISSUER|DEFER_TASKRUN")
    );
}

#[test]
fn vectored_reads_and_writes_keep_buffer_order() {
    let rt = rt2();
    rt.block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (res, bufs) = a
            .writev(vec![b"abc".to_vec(), b"".to_vec(), b"defgh".to_vec()])
            .await;
        assert_eq!(res.unwrap(), 8);
        assert_eq!(bufs.len(), 3, "the buffers come back");
        let (res, bufs) = b
            .readv(vec![
                Vec::with_capacity(2),
                Vec::with_capacity(4),
                Vec::with_capacity(8),
            ])
            .await;
        assert_eq!(res.unwrap(), 8);
        assert_eq!(bufs[0], b"ab");
        assert_eq!(bufs[1], b"cdef");
        assert_eq!(bufs[2], b"gh");
        // writev to a closed peer: EPIPE as an error, no SIGPIPE.
        drop(b);
        let (res, _) = a.writev(vec![b"x".to_vec()]).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    });
}
