//! Readiness on foreign fds: AsyncFd from two tasks, add_reader / remove_reader.

mod support;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringleader::io::AsyncFd;
use support::rt2;

/// A non-blocking pipe, as a library would hand over its own fds.
fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array we pass; checked before use.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    // SAFETY: both fds are new and owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

/// A non-blocking eventfd.
fn eventfd() -> std::fs::File {
    // SAFETY: eventfd with valid flags; checked before use.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd");
    // SAFETY: a new fd owned by nobody else.
    unsafe { std::fs::File::from_raw_fd(fd) }
}

#[test]
fn a_pipe_driven_through_async_fd_from_two_tasks() {
    let rt = rt2();
    rt.block_on(async {
        let (reader, writer) = pipe();
        let r = Arc::new(AsyncFd::new(reader).unwrap());
        let w = AsyncFd::new(writer).unwrap();
        let consumer = ringleader::spawn({
            let r = r.clone();
            async move {
                let mut got = Vec::new();
                while got.len() < 1000 {
                    let guard = r.readable().await.unwrap();
                    let mut buf = [0u8; 256];
                    if let Ok(res) = guard.try_io(|mut p| p.read(&mut buf)) {
                        let n = res.unwrap();
                        got.extend_from_slice(&buf[..n]);
                    }
                }
                got
            }
        });
        let producer = ringleader::spawn(async move {
            for chunk in 0..10u8 {
                let guard = w.writable().await.unwrap();
                guard
                    .try_io(|mut p| p.write_all(&[chunk; 100]))
                    .unwrap()
                    .unwrap();
                ringleader::time::sleep(Duration::from_millis(1)).await;
            }
        });
        producer.await.unwrap();
        let got = consumer.await.unwrap();
        let expected: Vec<u8> = (0..10u8).flat_map(|c| [c; 100]).collect();
        assert_eq!(got, expected);
    });
}

#[test]
fn an_eventfd_driven_through_async_fd_from_two_tasks() {
    let rt = rt2();
    rt.block_on(async {
        let efd = Arc::new(AsyncFd::new(eventfd()).unwrap());
        let waiter = ringleader::spawn({
            let efd = efd.clone();
            async move {
                let mut total = 0u64;
                while total < 10 {
                    let guard = efd.readable().await.unwrap();
                    let mut buf = [0u8; 8];
                    match guard.try_io(|mut f| f.read(&mut buf)) {
                        Ok(n) => {
                            assert_eq!(n.unwrap(), 8);
                            total += u64::from_ne_bytes(buf);
                        }
                        // Stale readiness: another read drained the counter first.
                        Err(_) => continue,
                    }
                }
                total
            }
        });
        for _ in 0..10 {
            let guard = efd.writable().await.unwrap();
            guard
                .try_io(|mut f| f.write_all(&1u64.to_ne_bytes()))
                .unwrap()
                .unwrap();
            ringleader::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(waiter.await.unwrap(), 10);
    });
}

#[test]
fn add_reader_calls_back_until_removed() {
    let rt = rt2();
    let handle = rt.handle().clone();
    rt.block_on(async move {
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, g) = (calls.clone(), got.clone());
        let mut b2 = b.try_clone().unwrap();
        handle.add_reader(b.as_raw_fd(), move || {
            c.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 64];
            if let Ok(n) = b2.read(&mut buf) {
                g.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        a.write_all(b"one").unwrap();
        while got.lock().unwrap().len() < 3 {
            ringleader::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(&*got.lock().unwrap(), b"one");
        assert!(handle.remove_reader(b.as_raw_fd()));
        assert!(!handle.remove_reader(b.as_raw_fd()), "removed once");
        let after_removal = calls.load(Ordering::SeqCst);
        a.write_all(b"two").unwrap();
        ringleader::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            after_removal,
            "no callback after removal"
        );
        assert!(
            got.lock().unwrap().len() == 3,
            "the second write was not read"
        );

        // A writer on a socket with room is called, then removed.
        let w = Arc::new(AtomicUsize::new(0));
        let w2 = w.clone();
        handle.add_writer(a.as_raw_fd(), move || {
            w2.fetch_add(1, Ordering::SeqCst);
        });
        while w.load(Ordering::SeqCst) == 0 {
            ringleader::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(handle.remove_writer(a.as_raw_fd()));
        drop(b);
    });
}

#[test]
fn dropping_an_async_fd_with_a_poll_in_flight_leaks_nothing() {
    let rt = rt2();
    rt.block_on(async {
        for _ in 0..100 {
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            let fd = AsyncFd::new(a).unwrap();
            // In flight (nothing to read), cancelled by the timeout, then the fd dropped.
            let res = ringleader::time::timeout(Duration::from_millis(1), fd.readable()).await;
            assert!(res.is_err());
            drop(fd);
        }
    });
}
