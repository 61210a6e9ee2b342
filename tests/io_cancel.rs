//! Operations cancelled in flight: the buffer stays with the driver until the kernel is
//! done, nothing leaks. `.ci/run` runs this binary under valgrind, which reports any write
//! into freed memory and any leak.
//!
//! The runtime here is current-thread: valgrind runs one thread at a time and does not let
//! the others run while one waits in `io_uring_enter`, so a multi-thread runtime (whose
//! workers wake each other) stalls under it. The same cancellations on the multi-thread
//! runtime are tested natively in `io_net.rs`.

mod support;

use std::future::Future;
use std::time::Duration;

use ringleader::net::UnixStream;
use ringleader::runtime::Builder;

#[test]
fn reads_cancelled_by_a_timeout_leave_their_buffers_to_the_driver() {
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        for round in 0..20u8 {
            let (a, b) = UnixStream::pair().unwrap();
            // In flight when the timeout drops it.
            let res =
                ringleader::time::timeout(Duration::from_millis(2), a.read(vec![0u8; 4096])).await;
            assert!(res.is_err(), "nothing was written: the read timed out");
            // Data arriving now must not land in the dropped future's buffer (the driver
            // owns it until the cancellation completes); the next read gets it or the
            // cancelled one consumed it, never both.
            let (res, _) = b.write_all(vec![round; 512]).await;
            res.unwrap();
            let res =
                ringleader::time::timeout(Duration::from_millis(50), a.read(vec![0u8; 4096])).await;
            if let Ok((res, buf)) = res {
                let n = res.unwrap();
                assert!(buf[..n].iter().all(|&x| x == round));
            }
            drop((a, b));
        }
        // Reads dropped while in flight on a socket that is then closed.
        let mut keep = Vec::new();
        for _ in 0..20 {
            let (a, b) = UnixStream::pair().unwrap();
            let read = Box::pin(async move { a.read(Vec::with_capacity(1 << 16)).await });
            keep.push((read, b));
        }
        for (mut read, b) in keep {
            let polled = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(read.as_mut().poll(cx).is_pending())
            })
            .await;
            assert!(polled);
            // Dropping the read drops its socket too: the peer sees the close.
            drop(read);
            let (res, _) = b.write_all(vec![1u8; 1 << 15]).await;
            if let Err(err) = res {
                assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
            }
        }
    });
    drop(rt);
}
