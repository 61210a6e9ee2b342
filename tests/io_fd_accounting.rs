//! fd accounting of sockets: every test here counts `/proc/self/fd`, so they hold one lock
//! (tests of one binary run in parallel threads of one process), and each runs its body on a
//! thread of its own that it joins before it lets the lock go: a thread's `block_on` ring is
//! drained by the thread's exit (thread-local destructors), which closes the fds its last
//! cancelled operations held (a listener's, say). Without the join, that drain ran after
//! the test had released the lock, while the next test counted (seen as a count one fd
//! lower at the end than at the start, about 1 run in 30).

mod support;

use std::sync::Arc;
use std::time::Duration;

use ringleader::net::{TcpListener, TcpStream};
use support::{open_fds, poll_once, rt2, scaled, serial_on_thread};

#[test]
fn ten_thousand_connections_opened_and_dropped_leave_no_fd() {
    serial_on_thread(|| {
        let rt = rt2();
        let n = scaled(10_000).max(1000);
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let before = open_fds();
            let acceptor = ringleader::spawn(async move {
                for _ in 0..n {
                    let (stream, _) = listener.accept().await.unwrap();
                    drop(stream);
                }
                listener
            });
            for _ in 0..n {
                let stream = TcpStream::connect(addr).await.unwrap();
                drop(stream);
            }
            let listener = acceptor.await.unwrap();
            // Drops close synchronously once no operation holds the fd.
            assert_eq!(open_fds(), before, "fds leaked by {n} connections");
            drop(listener);
        });
    });
}

#[test]
fn dropping_the_runtime_with_operations_in_flight_cancels_them_and_leaks_nothing() {
    serial_on_thread(|| {
        // This thread's own block_on ring lives as long as the thread: make it exist first, so
        // the count below covers the runtime's rings and eventfds exactly.
        rt2().block_on(async {});
        let before = support::open_fds_all();
        {
            let rt = rt2();
            rt.block_on(async {
                let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
                let addr = listener.local_addr().unwrap();
                // Pending accepts and pending reads, alive when the runtime goes.
                for _ in 0..4 {
                    let l = listener.clone();
                    drop(ringleader::spawn(async move { l.accept().await }));
                }
                let client = TcpStream::connect(addr).await.unwrap();
                drop(ringleader::spawn(async move {
                    let _ = client.read(Vec::with_capacity(64)).await;
                }));
                ringleader::time::sleep(Duration::from_millis(20)).await;
            });
        }
        assert_eq!(
            support::open_fds_all(),
            before,
            "runtime drop released every fd it made, its rings included"
        );
    });
}

#[test]
fn a_cancelled_accept_that_completed_closes_its_connection() {
    serial_on_thread(|| {
        let rt = rt2();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let before = open_fds();
            for _ in 0..50 {
                // Race a connect against the accept's cancellation: the accept is in flight
                // (polled once) when the client connects, and dropped right after.
                let mut accept = Box::pin(listener.accept());
                let _ = poll_once(accept.as_mut()).await;
                let connect = std::net::TcpStream::connect(addr).unwrap();
                drop(accept);
                drop(connect);
            }
            // Every connection the kernel had queued is accepted and dropped, or closed by the
            // driver: wait for the cancellations to settle, then drain the backlog.
            ringleader::time::sleep(Duration::from_millis(50)).await;
            while let Ok(Ok((s, _))) =
                ringleader::time::timeout(Duration::from_millis(20), listener.accept()).await
            {
                drop(s);
            }
            assert_eq!(open_fds(), before);
        });
    });
}

#[test]
fn refused_connections_and_failed_binds_leak_no_fd() {
    serial_on_thread(|| {
        let rt = rt2();
        rt.block_on(async {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let taken = listener.local_addr().unwrap();
            let before = open_fds();
            for _ in 0..100 {
                TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
                TcpListener::bind(taken).await.unwrap_err();
            }
            assert_eq!(open_fds(), before);
        });
    });
}

#[test]
fn async_fds_dropped_with_a_poll_in_flight_leak_no_fd() {
    serial_on_thread(|| {
        let rt = rt2();
        rt.block_on(async {
            let before = open_fds();
            for _ in 0..100 {
                let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
                let fd = ringleader::io::AsyncFd::new(a).unwrap();
                let res = ringleader::time::timeout(Duration::from_millis(1), fd.readable()).await;
                assert!(
                    res.is_err(),
                    "nothing to read: the poll was in flight when cancelled"
                );
                drop((fd, b));
            }
            assert_eq!(open_fds(), before);
        });
    });
}

#[test]
fn directory_listings_dropped_midway_close_their_fds() {
    serial_on_thread(|| {
        let dir = std::env::temp_dir().join(format!("rl-fd-read-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..500 {
            std::fs::write(dir.join(format!("f{i}")), b"").unwrap();
        }
        let rt = rt2();
        let listed = dir.clone();
        rt.block_on(async move {
            let before = open_fds();
            for round in 0..50 {
                let mut listing = ringleader::fs::read_dir(&listed).await.unwrap();
                // Some rounds stop within the first chunk, some with the next being read.
                for _ in 0..round * 3 {
                    let next = std::pin::pin!(listing.next_entry());
                    if poll_once(next).await.is_none() {
                        break;
                    }
                }
                drop(listing);
            }
            // A chunk read when its listing was dropped closes its directory when done.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while open_fds() != before && std::time::Instant::now() < deadline {
                ringleader::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(open_fds(), before);
        });
        drop(rt);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}
