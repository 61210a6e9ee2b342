//! The operation cell's protocol seen from the outside: a read future polled in one task and
//! finished in another (its waker is replaced while the read is in flight), and reads dropped
//! while their data arrives (the completion races the drop: the buffer is released exactly
//! once, by whichever side goes last, and no byte is delivered twice).

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringleader::io::{IoBuf, IoBufMut};
use ringleader::net::UnixStream;
use support::{open_fds, poll_once, rt2, scaled, serial_on_thread, DropCounter, DropToken};

/// A heap buffer whose drop is counted.
struct CountedBuf {
    bytes: Vec<u8>,
    _token: DropToken,
}

// SAFETY: the pointer is the Vec's heap memory, which does not move while the buffer is owned
// by an operation (the Vec is never resized while lent out); lengths are the Vec's.
unsafe impl IoBuf for CountedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.bytes.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.bytes.len()
    }
    fn bytes_total(&self) -> usize {
        self.bytes.capacity()
    }
}

// SAFETY: as above; `set_init` is called with the number of bytes the kernel wrote.
unsafe impl IoBufMut for CountedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, len: usize) {
        if len > self.bytes.len() {
            // SAFETY: the caller guarantees the first `len` bytes are initialised.
            unsafe { self.bytes.set_len(len) };
        }
    }
}

#[test]
fn a_read_polled_in_one_task_completes_in_another() {
    serial_on_thread(|| {
        let rt = rt2();
        rt.block_on(async {
            for round in 0..scaled(50) {
                let (a, b) = UnixStream::pair().unwrap();
                let mut read = Box::pin(async move {
                    let out = a.read(Vec::with_capacity(64)).await;
                    (out, a)
                });
                // In flight, with block_on's waker stored.
                assert!(poll_once(read.as_mut()).await.is_none());
                // Finished by a task: its waker replaces block_on's while the read is in flight
                // (or the completion races the replacement).
                let handle = ringleader::spawn(read);
                if round % 2 == 0 {
                    ringleader::task::yield_now().await;
                }
                let (res, _) = b.write_all(vec![round as u8; 16]).await;
                res.unwrap();
                // Bounded, so a lost wake-up fails the test instead of hanging it.
                let ((res, buf), _a) = ringleader::time::timeout(Duration::from_secs(10), handle)
                    .await
                    .expect("the moved read is woken in its new task")
                    .unwrap();
                assert_eq!(res.unwrap(), 16);
                assert_eq!(buf, vec![round as u8; 16]);
            }
        });
    });
}

#[test]
fn reads_dropped_as_their_data_arrives_release_their_buffers_once() {
    serial_on_thread(|| {
        let fds_before = open_fds();
        let drops = DropCounter::new();
        let rounds = scaled(300);
        let rt = rt2();
        rt.block_on(async {
            for round in 0..rounds {
                let (a, b) = UnixStream::pair().unwrap();
                let a = Arc::new(a);
                let buf = CountedBuf {
                    bytes: Vec::with_capacity(32),
                    _token: drops.token(),
                };
                let reader = a.clone();
                let mut read = Box::pin(async move { reader.read(buf).await });
                // Submitted on this thread's ring, whose completions this thread reaps.
                assert!(poll_once(read.as_mut()).await.is_none());
                // The data arrives while a worker drops the read: the drop there races the
                // reap here (this thread turns its ring while it waits for the dropper), or
                // comes after it (the completion was reaped but never observed), or the
                // worker observes the output first.
                let (res, _) = b.write_all(vec![7u8; 32]).await;
                res.unwrap();
                let spin = round % 7;
                let dropper = ringleader::spawn(async move {
                    for _ in 0..spin * 50 {
                        std::hint::spin_loop();
                    }
                    match spin {
                        // Dropped after the completion was reaped, never observed.
                        6 => ringleader::time::sleep(Duration::from_millis(2)).await,
                        // Dropped at once: in flight, or racing the reap.
                        1 | 3 | 5 => {}
                        // Polled once from here (its waker replaced, or its output taken).
                        _ => {
                            if let Some((res, _buf)) = poll_once(read.as_mut()).await {
                                return res.unwrap();
                            }
                        }
                    }
                    drop(read);
                    0
                });
                let consumed = dropper.await.unwrap();
                // What the dropped read did not take is read next; nothing arrives twice. (A
                // cancelled read may have consumed bytes: they are gone, never delivered again.)
                drop(b);
                let (res, rest) = ringleader::time::timeout(
                    Duration::from_secs(10),
                    a.read(Vec::with_capacity(64)),
                )
                .await
                .expect("the next read completes");
                let n = res.unwrap();
                assert!(
                    consumed + n <= 32,
                    "{consumed} + {n} bytes from a 32-byte write"
                );
                assert!(rest.iter().all(|&x| x == 7));
            }
        });
        // Shutdown waits for every completion: each buffer was dropped exactly once.
        drop(rt);
        assert_eq!(drops.count(), rounds);
        assert_eq!(open_fds(), fds_before, "no fd leaked");
    });
}

#[test]
fn many_reads_in_flight_dropped_with_the_runtime_release_everything() {
    serial_on_thread(|| {
        let fds_before = open_fds();
        let drops = DropCounter::new();
        let polled = Arc::new(AtomicUsize::new(0));
        let n = scaled(200);
        let rt = rt2();
        let mut peers = Vec::new();
        for _ in 0..n {
            let (a, b) = UnixStream::pair().unwrap();
            peers.push(b);
            let buf = CountedBuf {
                bytes: Vec::with_capacity(128),
                _token: drops.token(),
            };
            let polled = polled.clone();
            drop(rt.spawn(async move {
                let mut read = std::pin::pin!(a.read(buf));
                polled.fetch_add(1, Ordering::SeqCst);
                // Never written to: in flight until shutdown cancels it.
                let _ = std::future::poll_fn(|cx| read.as_mut().poll(cx)).await;
            }));
        }
        while polled.load(Ordering::SeqCst) < n {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Shutdown drops every task (abandoning its read in flight), cancels what the rings
        // still have and waits for the completions before it frees anything.
        drop(rt);
        assert_eq!(drops.count(), n, "every buffer released exactly once");
        drop(peers);
        assert_eq!(open_fds(), fds_before, "no fd leaked");
    });
}
