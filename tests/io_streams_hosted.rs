//! A server handler's writer is *hosted* by its task (see `io/src/streams/writer.rs`): the
//! handler's writes in one poll are staged without the lock and handed to the flush task
//! at the poll's end. These tests pin down what must not change with it: order against
//! writes made meanwhile from elsewhere, a close from elsewhere, the high-water mark within
//! one poll, and a writer dropped mid-poll.
//!
//! The "meanwhile" cases need a second party acting *inside* one poll of the handler, so
//! the handler waits for a plain thread with a blocking spin (no `.await` in between).

mod support;

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringleader::streams::{open_connection, start_server, Server, StreamReader, StreamWriter};
use ringleader::time::timeout;
use support::rt2;

/// Every test body runs under this bound, so a bug shows as a failure, not a hang.
const LIMIT: Duration = Duration::from_secs(60);

/// Connections per test: each one repeats the interleaving on a fresh writer.
const ROUNDS: usize = 20;

fn port_of(server: &Server) -> u16 {
    server.local_addrs()[0]
        .as_inet()
        .expect("a TCP server")
        .port()
}

/// Blocks the calling thread until `step` reaches `want` (a hand-shake between the handler,
/// inside one poll, and a plain thread).
fn wait_for(step: &AtomicU8, want: u8) {
    while step.load(Ordering::Acquire) < want {
        std::thread::yield_now();
    }
}

/// Connects, sends one line to start the handler's script, and reads until end of stream.
async fn run_client(port: u16) -> Vec<u8> {
    let (mut reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
    writer.write(b"go\n");
    writer.drain().await.unwrap();
    let got = reader.read_to_end().await.unwrap();
    writer.close();
    got
}

/// Runs `handler` as a server and `ROUNDS` clients one after another; gives what each read.
fn serve<H, Fut>(handler: H) -> Vec<Vec<u8>>
where
    H: Fn(StreamReader, StreamWriter) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    serve_n(ROUNDS, handler)
}

/// As [`serve`], with `rounds` clients.
fn serve_n<H, Fut>(rounds: usize, handler: H) -> Vec<Vec<u8>>
where
    H: Fn(StreamReader, StreamWriter) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    rt2().block_on(async {
        timeout(LIMIT, async {
            let server = start_server(handler, "127.0.0.1:0").await.unwrap();
            let port = port_of(&server);
            let mut all = Vec::new();
            for _ in 0..rounds {
                all.push(run_client(port).await);
            }
            server.close();
            server.wait_closed().await;
            let stats = server.stats();
            assert_eq!(
                stats.failed + stats.panicked,
                0,
                "a handler failed: {stats:?}"
            );
            all
        })
        .await
        .unwrap()
    })
}

#[test]
fn a_write_from_another_thread_between_two_staged_writes_stays_between_them() {
    let got = serve(
        |mut reader: StreamReader, writer: StreamWriter| async move {
            assert_eq!(reader.readline().await?, b"go\n");
            let writer = Arc::new(writer);
            let step = Arc::new(AtomicU8::new(0));
            let other = {
                let (writer, step) = (writer.clone(), step.clone());
                std::thread::spawn(move || {
                    wait_for(&step, 1);
                    writer.write(b"between\n");
                    step.store(2, Ordering::Release);
                })
            };
            // One poll: no await from here to the last write.
            writer.write(b"first\n");
            step.store(1, Ordering::Release);
            wait_for(&step, 2);
            writer.write(b"after\n");
            other.join().unwrap();
            writer.drain().await?;
            writer.close();
            writer.wait_closed().await
        },
    );
    for echo in got {
        assert_eq!(String::from_utf8_lossy(&echo), "first\nbetween\nafter\n");
    }
}

#[test]
fn a_close_from_another_thread_mid_poll_sends_the_earlier_writes_and_fails_later_ones() {
    let got = serve(
        |mut reader: StreamReader, writer: StreamWriter| async move {
            assert_eq!(reader.readline().await?, b"go\n");
            let writer = Arc::new(writer);
            let step = Arc::new(AtomicU8::new(0));
            let other = {
                let (writer, step) = (writer.clone(), step.clone());
                std::thread::spawn(move || {
                    wait_for(&step, 1);
                    writer.close();
                    step.store(2, Ordering::Release);
                })
            };
            writer.write(b"before the close\n");
            step.store(1, Ordering::Release);
            wait_for(&step, 2);
            // Follows the close (the other thread closed before signalling): dropped, and
            // drain reports it.
            writer.write(b"after the close\n");
            other.join().unwrap();
            let err = writer.drain().await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            assert!(writer.is_closing());
            // The close itself succeeds: the late write was only dropped.
            writer.wait_closed().await?;
            Ok(())
        },
    );
    // A write after a close is dropped (and reported by drain), as without hosting; what
    // was written before the close is still sent.
    for echo in got {
        assert_eq!(String::from_utf8_lossy(&echo), "before the close\n");
    }
}

#[test]
fn one_poll_writing_far_past_the_high_water_mark_keeps_every_byte_in_order() {
    const CHUNK: usize = 1000;
    const CHUNKS: usize = 1000;
    let got = serve(
        |mut reader: StreamReader, writer: StreamWriter| async move {
            assert_eq!(reader.readline().await?, b"go\n");
            writer.set_write_buffer_limits(4096, 1024)?;
            for i in 0..CHUNKS {
                writer.write(&[(i % 251) as u8; CHUNK]);
                // The size counts the staged bytes (at most what was written).
                if i == 2 {
                    assert!(writer.write_buffer_size() <= 3 * CHUNK);
                }
            }
            writer.drain().await?;
            writer.close();
            writer.wait_closed().await
        },
    );
    let expected: Vec<u8> = (0..CHUNKS).flat_map(|i| [(i % 251) as u8; CHUNK]).collect();
    for echo in got {
        assert_eq!(echo.len(), expected.len());
        assert!(echo == expected, "the bytes differ");
    }
}

#[test]
fn a_writer_dropped_mid_poll_still_sends_what_it_staged() {
    let got = serve(
        |mut reader: StreamReader, writer: StreamWriter| async move {
            assert_eq!(reader.readline().await?, b"go\n");
            writer.write(b"one\n");
            writer.write(b"two\n");
            drop(writer);
            // The reader goes too when the handler returns: the connection closes once the
            // flush task has sent the bytes.
            Ok(())
        },
    );
    for echo in got {
        assert_eq!(String::from_utf8_lossy(&echo), "one\ntwo\n");
    }
}

#[test]
fn write_eof_and_flush_in_a_hosted_poll_see_the_staged_writes() {
    let got = serve(
        |mut reader: StreamReader, writer: StreamWriter| async move {
            assert_eq!(reader.readline().await?, b"go\n");
            writer.write(b"a\n");
            writer.write(b"b\n");
            writer.flush().await?;
            assert_eq!(writer.write_buffer_size(), 0);
            writer.write(b"c\n");
            writer.write_eof();
            // Performed once "c" is sent: flush waits for both.
            writer.flush().await?;
            writer.write(b"late\n");
            assert_eq!(
                writer.drain().await.unwrap_err().kind(),
                io::ErrorKind::BrokenPipe
            );
            Ok(())
        },
    );
    for echo in got {
        assert_eq!(String::from_utf8_lossy(&echo), "a\nb\nc\n");
    }
}

#[test]
fn a_poll_staging_more_than_the_socket_takes_at_once_sends_the_rest_in_order() {
    // 16 MiB staged in one poll (the marks raised so it all fits the room): the poll's end
    // sends what the socket takes at once, and the flush task the rest, before anything
    // written later.
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 256;
    let got = serve_n(
        3,
        |mut reader: StreamReader, writer: StreamWriter| async move {
            assert_eq!(reader.readline().await?, b"go\n");
            writer.set_write_buffer_limits(64 << 20, 16 << 20)?;
            for i in 0..CHUNKS {
                writer.write(&[(i % 251) as u8; CHUNK]);
            }
            writer.drain().await?;
            writer.write(b"end\n");
            writer.flush().await?;
            writer.close();
            writer.wait_closed().await
        },
    );
    let mut expected: Vec<u8> = (0..CHUNKS).flat_map(|i| [(i % 251) as u8; CHUNK]).collect();
    expected.extend_from_slice(b"end\n");
    for echo in got {
        assert_eq!(echo.len(), expected.len());
        assert!(echo == expected, "the bytes differ");
    }
}

#[test]
fn a_handler_writing_to_a_peer_that_hung_up_gets_the_error_from_drain() {
    // Each poll's end sends with one send(2): its error must reach drain, wait_closed and
    // later writes as the flush task's does.
    rt2().block_on(async {
        timeout(LIMIT, async {
            let (tx, rx) = std::sync::mpsc::channel::<io::ErrorKind>();
            let tx = std::sync::Mutex::new(tx);
            let server = start_server(
                move |mut reader: StreamReader, writer: StreamWriter| {
                    let tx = tx.lock().unwrap().clone();
                    async move {
                        assert_eq!(reader.readline().await?, b"go\n");
                        let chunk = vec![7u8; 16 * 1024];
                        let mut kind = None;
                        for _ in 0..10_000 {
                            writer.write(&chunk);
                            if let Err(e) = writer.drain().await {
                                kind = Some(e.kind());
                                break;
                            }
                            ringleader::time::sleep(Duration::from_millis(1)).await;
                        }
                        let kind = kind.expect("drain reported the hang-up");
                        writer.write(b"more");
                        assert!(writer.drain().await.is_err());
                        writer.close();
                        assert!(writer.wait_closed().await.is_err());
                        tx.send(kind).unwrap();
                        io::Result::Ok(())
                    }
                },
                "127.0.0.1:0",
            )
            .await
            .unwrap();
            let port = port_of(&server);
            for _ in 0..3 {
                let (_reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
                writer.write(b"go\n");
                writer.flush().await.unwrap();
                // Hang up (both halves dropped: the fd closes once the flush is done).
                drop(writer);
                drop(_reader);
                let kind = loop {
                    if let Ok(kind) = rx.try_recv() {
                        break kind;
                    }
                    ringleader::time::sleep(Duration::from_millis(1)).await;
                };
                assert!(
                    matches!(
                        kind,
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ),
                    "{kind:?}"
                );
            }
            server.close();
            server.wait_closed().await;
            let stats = server.stats();
            assert_eq!(
                stats.failed + stats.panicked,
                0,
                "a handler failed: {stats:?}"
            );
        })
        .await
        .unwrap();
    });
}

/// `sendfile` in a server handler, whose writes are staged: what the handler wrote before,
/// in the same poll, goes first; what a second future of the handler writes (staged, in a
/// later poll) while the file is being sent follows it, and so does what another task
/// writes meanwhile through a shared handle.
#[test]
fn sendfile_in_a_hosted_handler_keeps_staged_and_side_writes_in_order() {
    const LEN: usize = 2 << 20;
    let contents: Arc<Vec<u8>> = Arc::new((0..LEN).map(|i| (i * 7 % 251) as u8).collect());
    let path =
        std::env::temp_dir().join(format!("ringleader-hosted-sendfile-{}", std::process::id()));
    std::fs::write(&path, &contents[..]).unwrap();
    let served = path.clone();
    let all = serve_n(5, move |mut reader: StreamReader, writer: StreamWriter| {
        let path = served.clone();
        async move {
            assert_eq!(reader.readline().await.unwrap(), b"go\n");
            let file = ringleader::fs::File::open(&path).await?;
            let writer = Arc::new(writer);
            // Staged in the same poll as the transfer's first: it goes first.
            writer.write(b"<head>");
            assert_eq!(writer.sendfile(&file, 0, None).await?, LEN);
            // Nothing left to flush: the next transfer takes the turn at its first poll,
            // before the second future below writes anything.
            writer.flush().await?;
            let during = async {
                ringleader::task::yield_now().await;
                writer.write(b"<staged during>");
                let side = writer.clone();
                ringleader::spawn(async move { side.write(b"<side during>") })
                    .await
                    .unwrap();
            };
            let (sent, ()) = ringleader::join!(writer.sendfile(&file, 0, None), during);
            assert_eq!(sent?, LEN);
            writer.write(b"<tail>");
            writer.close();
            writer.wait_closed().await?;
            file.close().await
        }
    });
    std::fs::remove_file(&path).unwrap();
    let mut want = b"<head>".to_vec();
    want.extend_from_slice(&contents);
    want.extend_from_slice(&contents);
    want.extend_from_slice(b"<staged during><side during><tail>");
    for got in all {
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes out of order around the file");
    }
}
