//! asyncio's streams: StreamReader / StreamWriter semantics (limits, partial reads, cancel
//! safety, hung-up peers), Server lifecycles (close, wait_closed, shutdown, panicking
//! handlers), a 200-client chat server, the futures-io adapter, and copy.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use futures_util::StreamExt;
use ringleader::net::{TcpListener, TcpStream, UnixStream};
use ringleader::streams::{
    copy, copy_bidirectional, open_connection, open_unix_connection, split, start_server,
    start_unix_server, Compat, IncompleteReadError, ReadError, Server, StreamReader, StreamWriter,
    DEFAULT_LIMIT,
};
use ringleader::time::{sleep, timeout};
use support::rt2;

/// Every test body runs under this bound, so a bug shows as a failure, not a hang.
const LIMIT: Duration = Duration::from_secs(60);

fn port_of(server: &Server) -> u16 {
    server.local_addrs()[0]
        .as_inet()
        .expect("a TCP server")
        .port()
}

/// Echoes lines until end of stream.
async fn echo_lines(mut reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    loop {
        let line = reader.readline().await?;
        if line.is_empty() {
            break;
        }
        writer.write(&line);
        writer.drain().await?;
    }
    writer.close();
    writer.wait_closed().await
}

#[test]
fn chat_server_broadcasts_every_message_to_every_other_client() {
    const CLIENTS: usize = 200;
    rt2().block_on(async {
        timeout(LIMIT, async {
            type Room = Arc<Mutex<HashMap<u64, Arc<StreamWriter>>>>;
            let room: Room = Arc::default();
            let next_id = Arc::new(AtomicUsize::new(0));
            let server = {
                let room = room.clone();
                start_server(
                    move |mut reader: StreamReader, writer: StreamWriter| {
                        let room = room.clone();
                        let id = next_id.fetch_add(1, Ordering::Relaxed) as u64;
                        async move {
                            let writer = Arc::new(writer);
                            // Join: registered before the welcome, so a client that has its
                            // welcome is sure to receive every later broadcast.
                            assert_eq!(reader.readline().await?, b"JOIN\n");
                            room.lock().unwrap().insert(id, writer.clone());
                            writer.write(b"WELCOME\n");
                            writer.drain().await?;
                            loop {
                                let line = reader.readline().await?;
                                if line.is_empty() {
                                    break;
                                }
                                let others: Vec<_> = room
                                    .lock()
                                    .unwrap()
                                    .iter()
                                    .filter(|(other, _)| **other != id)
                                    .map(|(_, w)| w.clone())
                                    .collect();
                                for other in &others {
                                    other.write(&line);
                                }
                                for other in &others {
                                    // A peer that left is its own handler's business.
                                    let _ = other.drain().await;
                                }
                            }
                            room.lock().unwrap().remove(&id);
                            io::Result::Ok(())
                        }
                    },
                    "127.0.0.1:0",
                )
                .await
                .unwrap()
            };
            let port = port_of(&server);

            // Phase 1: everyone joins.
            let joins: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    ringleader::spawn(async move {
                        let (mut reader, writer) = open_connection("127.0.0.1", port).await?;
                        writer.write(b"JOIN\n");
                        writer.drain().await?;
                        assert_eq!(reader.readline().await?, b"WELCOME\n");
                        io::Result::Ok((reader, writer))
                    })
                })
                .collect();
            let mut clients = Vec::new();
            for j in joins {
                clients.push(j.await.unwrap().unwrap());
            }
            assert_eq!(room.lock().unwrap().len(), CLIENTS);

            // Phase 2: everyone speaks once and hears everyone else exactly once.
            let talks: Vec<_> = clients
                .into_iter()
                .enumerate()
                .map(|(i, (mut reader, writer))| {
                    ringleader::spawn(async move {
                        writer.write(format!("message from {i}\n").as_bytes());
                        writer.drain().await?;
                        let mut heard = BTreeSet::new();
                        for _ in 0..CLIENTS - 1 {
                            let line = reader.readline().await?;
                            let text = String::from_utf8(line).unwrap();
                            let from: usize = text
                                .strip_prefix("message from ")
                                .and_then(|t| t.strip_suffix('\n'))
                                .unwrap()
                                .parse()
                                .unwrap();
                            assert!(heard.insert(from), "client {i} heard {from} twice");
                        }
                        io::Result::Ok((i, heard, reader, writer))
                    })
                })
                .collect();
            let mut done = Vec::new();
            for t in talks {
                let (i, heard, reader, writer) = t.await.unwrap().unwrap();
                let expected: BTreeSet<usize> = (0..CLIENTS).filter(|&c| c != i).collect();
                assert_eq!(heard, expected);
                done.push((reader, writer));
            }
            for (_, writer) in &done {
                writer.close();
            }
            for (mut reader, _) in done {
                // Nothing more was sent to anyone.
                assert_eq!(reader.readline().await.unwrap(), b"");
            }
            server.close();
            server.wait_closed().await;
            let stats = server.stats();
            assert_eq!(stats.accepted, CLIENTS as u64);
            assert_eq!(stats.completed, CLIENTS as u64);
            assert_eq!(stats.active, 0);
        })
        .await
        .expect("the chat finished in time");
    });
}

#[test]
fn readuntil_past_its_limit_keeps_the_data() {
    rt2().block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut reader, _keep) = split(a);
        let (_r, writer) = split(b);
        let body = vec![b'a'; 100];
        writer.write(&body);
        writer.write(b"|end");
        writer.close();
        reader.set_limit(50);

        let err = reader.readuntil(b"|").await.unwrap_err();
        let overrun = err.limit_overrun().expect("a limit overrun").clone();
        assert_eq!(overrun.limit, 50);
        assert!(overrun.consumed > 50 && overrun.consumed <= 100);
        // Everything is still there: the caller decides. Here: read the long part out.
        let first = reader.readexactly(overrun.consumed).await.unwrap();
        assert!(first.iter().all(|&b| b == b'a'));
        let rest = reader.readuntil(b"|").await.unwrap();
        assert_eq!(first.len() + rest.len(), 101);
        assert_eq!(rest.last(), Some(&b'|'));
        // read(n) gives what is buffered (or one receive's worth), as asyncio's.
        assert_eq!(reader.read_to_end().await.unwrap(), b"end");
        assert_eq!(reader.read(100).await.unwrap(), b"");
        assert!(reader.at_eof());

        // Or raise the limit and try again.
        let (a, b) = UnixStream::pair().unwrap();
        let (mut reader, _keep) = split(a);
        let (_r, writer) = split(b);
        writer.write(&body);
        writer.write(b"\r\n");
        reader.set_limit(10);
        let err = reader.readuntil(b"\r\n").await.unwrap_err();
        assert!(matches!(err, ReadError::LimitOverrun(_)));
        let as_io: io::Error = err.into();
        assert_eq!(as_io.kind(), io::ErrorKind::InvalidData);
        reader.set_limit(1000);
        let line = reader.readuntil(b"\r\n").await.unwrap();
        assert_eq!(line.len(), 102);
        assert!(line.ends_with(b"\r\n"));
    });
}

#[test]
fn an_endless_line_hits_the_limit_and_memory_stays_bounded() {
    rt2().block_on(async {
        timeout(LIMIT, async {
            let (a, b) = UnixStream::pair().unwrap();
            let (mut reader, _keep) = split(a);
            let (_r, writer) = split(b);
            const TOTAL: usize = 8 * 1024 * 1024;
            let sender = ringleader::spawn(async move {
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..TOTAL / chunk.len() {
                    writer.write(&chunk);
                    writer.drain().await?;
                }
                writer.write(b"\ntail\n");
                writer.close();
                writer.wait_closed().await
            });
            let mut overruns = 0;
            let mut max_capacity = 0;
            let mut discarded_total = 0;
            let last = loop {
                match reader.readline().await {
                    Err(ReadError::LimitOverrun(e)) => {
                        overruns += 1;
                        discarded_total += e.consumed;
                    }
                    Ok(line) => break line,
                    Err(e) => panic!("unexpected {e}"),
                }
                max_capacity = max_capacity.max(reader.buffer_capacity());
                assert!(reader.buffered() <= DEFAULT_LIMIT + 1);
            };
            // The line's remainder (under the limit) ends at the newline.
            assert!(last.ends_with(b"x\n"));
            assert!(
                overruns >= TOTAL / (DEFAULT_LIMIT + 1) - 1,
                "{overruns} overruns"
            );
            assert!(discarded_total + last.len() >= TOTAL - DEFAULT_LIMIT);
            assert!(
                max_capacity <= 2 * DEFAULT_LIMIT,
                "the buffer grew to {max_capacity} bytes"
            );
            assert_eq!(reader.readline().await.unwrap(), b"tail\n");
            assert_eq!(reader.readline().await.unwrap(), b"");
            sender.await.unwrap().unwrap();
        })
        .await
        .unwrap();
    });
}

#[test]
fn readexactly_at_eof_gives_the_partial_bytes() {
    rt2().block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut reader, _keep) = split(a);
        let (_r, writer) = split(b);
        writer.write(b"abc");
        writer.write_eof();
        let err = reader.readexactly(5).await.unwrap_err();
        assert_eq!(
            err.incomplete(),
            Some(&IncompleteReadError {
                partial: b"abc".to_vec(),
                expected: Some(5),
            })
        );
        let io_err: io::Error = err.into();
        assert_eq!(io_err.kind(), io::ErrorKind::UnexpectedEof);
        let inner = io_err.into_inner().unwrap();
        let inner = inner.downcast::<IncompleteReadError>().unwrap();
        assert_eq!(inner.partial, b"abc");
        // readuntil at EOF: the rest, no expected length.
        let err = reader.readuntil(b"\n").await.unwrap_err();
        assert_eq!(err.incomplete().unwrap().expected, None);
        assert!(reader.at_eof());
    });
}

#[test]
fn a_cancelled_read_loses_no_bytes() {
    rt2().block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut reader, _keep) = split(a);
        let (_r, writer) = split(b);
        // Each timed-out readline left its receive in flight in the reader.
        for _ in 0..3 {
            assert!(timeout(Duration::from_millis(5), reader.readline())
                .await
                .is_err());
        }
        writer.write(b"first line\nsecond");
        writer.write(b" line\n");
        assert_eq!(reader.readline().await.unwrap(), b"first line\n");
        assert_eq!(reader.readline().await.unwrap(), b"second line\n");

        // Bytes buffered before a cancelled call stay readable at once, while the receive
        // it started is still in flight.
        writer.write(b"abc");
        assert!(timeout(Duration::from_millis(5), reader.readexactly(10))
            .await
            .is_err());
        let got = timeout(LIMIT, reader.read(3)).await.unwrap().unwrap();
        assert_eq!(got, b"abc");
        writer.write(b"defg\n");
        assert_eq!(reader.readline().await.unwrap(), b"defg\n");
    });
}

#[test]
fn lines_stream_yields_each_line_then_ends() {
    rt2().block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut reader, _keep) = split(a);
        let (_r, writer) = split(b);
        writer.writelines([&b"one\n"[..], b"two\n", b"three"]);
        writer.write_eof();
        let lines: Vec<_> = reader.lines().map(Result::unwrap).collect().await;
        assert_eq!(lines, [&b"one\n"[..], b"two\n", b"three"]);
    });
}

#[test]
fn readline_into_appends_each_line_and_discards_an_overlong_one() {
    rt2().block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut reader, _keep) = split(a);
        let (_r, writer) = split(b);
        reader.set_limit(8);
        writer.write(b"one\nthis line is too long\ntwo\nend");
        writer.write_eof();
        let mut line = b"kept:".to_vec();
        assert_eq!(reader.readline_into(&mut line).await.unwrap(), 4);
        assert_eq!(line, b"kept:one\n");
        // As readline: each overrun discards what was buffered of the overlong line, and
        // nothing is appended on an error; its tail, once short enough, comes as a line.
        let mut overruns = 0;
        let tail = loop {
            line.clear();
            match reader.readline_into(&mut line).await {
                Err(ReadError::LimitOverrun(_)) => {
                    assert!(line.is_empty(), "nothing is appended on an error");
                    overruns += 1;
                }
                Ok(n) => break n,
                Err(e) => panic!("unexpected {e}"),
            }
        };
        assert!(overruns >= 1);
        assert_eq!(tail, line.len());
        assert!(b"this line is too long\n".ends_with(&line), "{line:?}");
        line.clear();
        assert_eq!(reader.readline_into(&mut line).await.unwrap(), 4);
        assert_eq!(line, b"two\n");
        line.clear();
        // The last line lacks a newline; then the end of stream gives 0.
        assert_eq!(reader.readline_into(&mut line).await.unwrap(), 3);
        assert_eq!(line, b"end");
        assert_eq!(reader.readline_into(&mut line).await.unwrap(), 0);
        assert_eq!(line, b"end");
    });
}

#[test]
fn a_writer_shared_by_tasks_on_both_workers_keeps_each_write_whole() {
    const TASKS: usize = 8;
    let per_task = support::scaled(2_000);
    rt2().block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut reader, _keep) = split(a);
        let (_r, writer) = split(b);
        let writer = Arc::new(writer);
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let writer = writer.clone();
            tasks.push(ringleader::spawn(async move {
                for i in 0..per_task {
                    writer.write(format!("{t} {i}\n").as_bytes());
                    writer.drain().await?;
                    if i % 64 == 0 {
                        ringleader::task::yield_now().await;
                    }
                }
                io::Result::Ok(())
            }));
        }
        let mut next = [0usize; TASKS];
        for _ in 0..TASKS * per_task {
            let line = reader.readline().await.unwrap();
            let line = std::str::from_utf8(&line).unwrap();
            let (t, i) = line.trim_end().split_once(' ').expect("a whole line");
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            // Each task's lines arrive whole and in its order.
            assert_eq!(i, next[t], "task {t}");
            next[t] += 1;
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        writer.flush().await.unwrap();
        assert_eq!(writer.write_buffer_size(), 0);
    });
}

#[test]
fn dropping_both_halves_sends_the_buffer_then_closes_the_fd() {
    rt2().block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (reader, writer) = split(a);
        let (mut peer, _peer_writer) = split(b);
        writer.write(b"first\n");
        // Everything is handed to the kernel: the flush task now waits for more.
        writer.flush().await.unwrap();
        writer.write(b"last\n");
        drop(writer);
        drop(reader);
        assert_eq!(peer.readline().await.unwrap(), b"first\n");
        assert_eq!(peer.readline().await.unwrap(), b"last\n");
        // End of stream: no flush task kept the fd open once the writer was gone.
        let eof = timeout(LIMIT, peer.readline())
            .await
            .expect("the fd was closed");
        assert_eq!(eof.unwrap(), b"");
    });
}

#[test]
fn drain_to_a_peer_that_closed_returns_an_error() {
    rt2().block_on(async {
        timeout(LIMIT, async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let accept = ringleader::spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                drop(stream); // hangs up at once
            });
            let (_reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
            accept.await.unwrap();
            let chunk = vec![7u8; 16 * 1024];
            let mut error = None;
            for _ in 0..10_000 {
                writer.write(&chunk);
                if let Err(e) = writer.drain().await {
                    error = Some(e);
                    break;
                }
                sleep(Duration::from_millis(1)).await;
            }
            let error = error.expect("drain reported the hang-up");
            assert!(
                matches!(
                    error.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ),
                "{error:?}"
            );
            // It stays reported; writes are dropped, never a panic.
            writer.write(b"more");
            assert!(writer.drain().await.is_err());
            writer.close();
            assert!(writer.wait_closed().await.is_err());
        })
        .await
        .unwrap();
    });
}

#[test]
fn a_panicking_handler_is_reported_and_the_server_keeps_serving() {
    rt2().block_on(async {
        let server = start_server(
            |mut reader: StreamReader, writer: StreamWriter| async move {
                let line = reader.readline().await?;
                match &line[..] {
                    b"panic\n" => panic!("the handler was told to panic"),
                    b"fail\n" => return Err(io::Error::other("the handler was told to fail")),
                    _ => {}
                }
                writer.write(&line);
                writer.drain().await?;
                echo_lines(reader, writer).await
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let port = port_of(&server);
        for word in [&b"panic\n"[..], b"fail\n"] {
            let (mut reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
            writer.write(word);
            writer.drain().await.unwrap();
            // The handler is gone and its connection closed with it.
            assert_eq!(reader.read(10).await.unwrap_or_default(), b"");
        }
        let (mut reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
        writer.write(b"still here\nand here\n");
        assert_eq!(reader.readline().await.unwrap(), b"still here\n");
        assert_eq!(reader.readline().await.unwrap(), b"and here\n");
        writer.close();
        assert_eq!(reader.readline().await.unwrap(), b"");
        server.close();
        server.wait_closed().await;
        let stats = server.stats();
        assert_eq!(stats.accepted, 3);
        assert_eq!(stats.panicked, 1);
        assert_eq!(stats.failed, 1);
        assert_eq!(stats.completed, 1);
        assert_eq!(stats.active, 0);
    });
}

#[test]
fn close_stops_accepting_and_wait_closed_waits_for_handlers() {
    rt2().block_on(async {
        let server = start_server(echo_lines, "127.0.0.1:0").await.unwrap();
        let port = port_of(&server);
        assert!(server.is_serving());
        let (mut reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
        writer.write(b"ping\n");
        assert_eq!(reader.readline().await.unwrap(), b"ping\n");

        server.close();
        assert!(!server.is_serving());
        let refused = open_connection("127.0.0.1", port).await;
        assert!(refused.is_err(), "a closed server accepted a connection");
        // A handler is still running: wait_closed cannot finish.
        assert!(timeout(Duration::from_millis(50), server.wait_closed())
            .await
            .is_err());
        // The running handler still serves.
        writer.write(b"pong\n");
        assert_eq!(reader.readline().await.unwrap(), b"pong\n");
        writer.close();
        server.wait_closed().await;
        assert_eq!(server.stats().completed, 1);
        assert_eq!(server.stats().accepted, 1);
    });
}

#[test]
fn shutdown_cancels_handlers_still_running_after_the_grace_period() {
    rt2().block_on(async {
        timeout(LIMIT, async {
            let finished = Arc::new(AtomicUsize::new(0));
            let server = {
                let finished = finished.clone();
                start_server(
                    move |mut reader: StreamReader, writer: StreamWriter| {
                        let finished = finished.clone();
                        async move {
                            let line = reader.readline().await?;
                            if line == b"quick\n" {
                                sleep(Duration::from_millis(10)).await;
                                writer.write(b"bye\n");
                                writer.drain().await?;
                                finished.fetch_add(1, Ordering::SeqCst);
                                return Ok(());
                            }
                            // "slow": never ends on its own.
                            sleep(Duration::from_secs(3600)).await;
                            finished.fetch_add(1, Ordering::SeqCst);
                            io::Result::Ok(())
                        }
                    },
                    "127.0.0.1:0",
                )
                .await
                .unwrap()
            };
            let port = port_of(&server);
            let (mut quick_r, quick_w) = open_connection("127.0.0.1", port).await.unwrap();
            let (mut slow_r, slow_w) = open_connection("127.0.0.1", port).await.unwrap();
            quick_w.write(b"quick\n");
            slow_w.write(b"slow\n");
            while server.stats().accepted < 2 {
                sleep(Duration::from_millis(1)).await;
            }
            server.shutdown(Duration::from_millis(200)).await;
            let stats = server.stats();
            assert_eq!(stats.completed, 1);
            assert_eq!(stats.cancelled, 1);
            assert_eq!(stats.active, 0);
            assert_eq!(finished.load(Ordering::SeqCst), 1);
            assert_eq!(quick_r.readline().await.unwrap(), b"bye\n");
            // The cancelled handler's connection is closed.
            assert_eq!(slow_r.read(10).await.unwrap_or_default(), b"");
            assert_eq!(quick_r.read(10).await.unwrap_or_default(), b"");
        })
        .await
        .unwrap();
    });
}

#[test]
fn serve_forever_returns_once_another_task_closes_the_server() {
    rt2().block_on(async {
        let server = start_server(echo_lines, "127.0.0.1:0").await.unwrap();
        let port = port_of(&server);
        let serving = {
            let server = server.clone();
            ringleader::spawn(async move { server.serve_forever().await })
        };
        let (mut reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
        writer.write(b"x\n");
        assert_eq!(reader.readline().await.unwrap(), b"x\n");
        writer.close();
        assert_eq!(reader.readline().await.unwrap(), b"");
        server.close();
        serving.await.unwrap().unwrap();
        assert_eq!(server.stats().completed, 1);
    });
}

#[test]
fn unix_server_serves_and_removes_its_socket_file() {
    rt2().block_on(async {
        let dir = std::env::temp_dir().join(format!("ringleader-streams-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("echo.sock");
        let server = start_unix_server(echo_lines, &path).await.unwrap();
        assert_eq!(server.local_addrs()[0].as_unix_path(), Some(path.as_path()));
        let (mut reader, writer) = open_unix_connection(&path).await.unwrap();
        assert!(writer.peer_addr().unwrap().as_unix_path().is_some());
        writer.write(b"over unix\n");
        assert_eq!(reader.readline().await.unwrap(), b"over unix\n");
        writer.close();
        server.close();
        server.wait_closed().await;
        assert!(!path.exists(), "the socket file was removed at close");
        // A stale socket file does not stop a new server.
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(listener);
        // A handler may return `()` too.
        let again = start_unix_server(
            |reader: StreamReader, writer: StreamWriter| async move {
                writer.write(b"hi\n");
                drop(reader);
            },
            &path,
        )
        .await
        .unwrap();
        let (mut reader, _writer) = open_unix_connection(&path).await.unwrap();
        assert_eq!(reader.readline().await.unwrap(), b"hi\n");
        assert_eq!(reader.readline().await.unwrap(), b"");
        again.close();
        again.wait_closed().await;
        assert_eq!(again.stats().completed, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn writer_addresses_and_backpressure() {
    rt2().block_on(async {
        timeout(LIMIT, async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (_reader, writer) = open_connection("127.0.0.1", addr.port()).await.unwrap();
            let (peer, _) = listener.accept().await.unwrap();
            assert_eq!(writer.peer_addr().unwrap().as_inet(), Some(addr));
            assert!(writer.local_addr().unwrap().as_inet().is_some());
            writer.set_write_buffer_limits(4096, 1024).unwrap();
            assert!(writer.set_write_buffer_limits(1, 2).is_err());
            // Nobody reads: once the socket's buffers are full, what is written stays in the
            // writer's buffer and drain waits. No timing is asserted: if drain never waited,
            // this loop would run until LIMIT fails the test.
            let chunk = vec![1u8; 256 * 1024];
            let mut written = 0;
            loop {
                writer.write(&chunk);
                written += chunk.len();
                if timeout(Duration::from_millis(20), writer.drain())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            // The peer reads everything: drain finishes.
            let reading = ringleader::spawn(async move {
                let (res, buf) = peer.read_to_end(Vec::new()).await;
                res.unwrap();
                buf.len()
            });
            writer.drain().await.unwrap();
            writer.close();
            writer.wait_closed().await.unwrap();
            assert!(writer.is_closing());
            assert_eq!(reading.await.unwrap(), written);
        })
        .await
        .unwrap();
    });
}

#[test]
fn futures_io_adapter_works_with_futures_extension_traits() {
    rt2().block_on(async {
        timeout(LIMIT, async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
            let expected = payload.clone();
            let server = ringleader::spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                let mut s = Compat::new(stream);
                let mut got = vec![0u8; expected.len()];
                s.read_exact(&mut got).await.unwrap();
                assert!(got == expected);
                let mut line = String::new();
                s.read_line(&mut line).await.unwrap();
                assert_eq!(line, "a line\n");
                s.write_all(b"reply\n").await.unwrap();
                s.close().await.unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).await.unwrap();
                rest
            });
            let mut client = Compat::new(TcpStream::connect(addr).await.unwrap());
            // A read raced against a timeout and dropped: its receive stays in the adapter.
            let mut buf = [0u8; 16];
            assert!(timeout(Duration::from_millis(5), client.read(&mut buf))
                .await
                .is_err());
            client.write_all(&payload).await.unwrap();
            client.write_all(b"a line\n").await.unwrap();
            client.flush().await.unwrap();
            let mut reply = String::new();
            client.read_line(&mut reply).await.unwrap();
            assert_eq!(reply, "reply\n");
            client.write_all(b"trailer").await.unwrap();
            client.close().await.unwrap();
            let mut tail = Vec::new();
            client.read_to_end(&mut tail).await.unwrap();
            assert!(tail.is_empty());
            assert_eq!(server.await.unwrap(), b"trailer");
        })
        .await
        .unwrap();
    });
}

#[test]
fn copy_bidirectional_moves_data_both_ways() {
    rt2().block_on(async {
        timeout(LIMIT, async {
            let (c1, p1) = UnixStream::pair().unwrap();
            let (p2, c2) = tcp_pair().await;
            let proxy = ringleader::spawn(async move { copy_bidirectional(&p1, &p2).await });
            let x: Vec<u8> = (0..1_000_000).map(|i| (i % 253) as u8).collect();
            let y: Vec<u8> = (0..300_000).map(|i| (i % 241) as u8).collect();
            let (x2, y2) = (x.clone(), y.clone());
            let side1 = ringleader::spawn(async move {
                let (res, _) = c1.write_all(x2).await;
                res.unwrap();
                c1.shutdown(std::net::Shutdown::Write).await.unwrap();
                let (res, got) = c1.read_to_end(Vec::new()).await;
                res.unwrap();
                got
            });
            let side2 = ringleader::spawn(async move {
                let (res, _) = c2.write_all(y2).await;
                res.unwrap();
                c2.shutdown(std::net::Shutdown::Write).await.unwrap();
                let (res, got) = c2.read_to_end(Vec::new()).await;
                res.unwrap();
                got
            });
            assert!(side1.await.unwrap() == y);
            assert!(side2.await.unwrap() == x);
            assert_eq!(
                proxy.await.unwrap().unwrap(),
                (x.len() as u64, y.len() as u64)
            );

            // One way.
            let (a, b) = UnixStream::pair().unwrap();
            let (c, d) = UnixStream::pair().unwrap();
            let (res, _) = a.write_all(b"one way".to_vec()).await;
            res.unwrap();
            a.shutdown(std::net::Shutdown::Write).await.unwrap();
            assert_eq!(copy(&b, &c).await.unwrap(), 7);
            let (res, got) = d.read_to_end(Vec::new()).await;
            res.unwrap();
            assert_eq!(got, b"one way");
        })
        .await
        .unwrap();
    });
}

/// A connected pair of TCP streams over loopback.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connect = ringleader::spawn(async move { TcpStream::connect(addr).await.unwrap() });
    let (server_side, _) = listener.accept().await.unwrap();
    (connect.await.unwrap(), server_side)
}

#[test]
fn futures_io_adapter_survives_a_full_socket_and_keeps_byte_order() {
    rt2().block_on(async {
        timeout(LIMIT, async {
            let (a, b) = UnixStream::pair().unwrap();
            let payload: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
            let expected = payload.clone();
            let writer = ringleader::spawn(async move {
                let mut a = Compat::new(a);
                // Far more than the socket holds: poll_write waits on sends in flight,
                // and partial sends must keep the order.
                for chunk in payload.chunks(100_003) {
                    a.write_all(chunk).await.unwrap();
                }
                a.close().await.unwrap();
            });
            // Let the writer fill the socket before anyone reads.
            sleep(Duration::from_millis(20)).await;
            let mut b = Compat::new(b);
            // (futures' read_to_end zero-fills byte by byte: slow in debug builds.)
            let mut got = Vec::with_capacity(expected.len());
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = b.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            writer.await.unwrap();
            assert_eq!(got.len(), expected.len());
            assert!(got == expected, "bytes reordered or lost");
        })
        .await
        .unwrap();
    });
}

#[test]
fn a_runtime_shutdown_releases_the_waiters_of_writers_and_servers() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let rt = rt2();
    let (server, writer) = rt.block_on(async {
        let server = start_server(echo_lines, "127.0.0.1:0").await.unwrap();
        let (_reader, writer) = split(UnixStream::from_std(a).unwrap());
        // More than the socket holds, and nobody reads: the flush task is still sending
        // when the runtime goes.
        writer.write(&vec![0u8; 8 << 20]);
        sleep(Duration::from_millis(10)).await;
        (server, writer)
    });
    drop(rt);
    rt2().block_on(async {
        let flushed = timeout(LIMIT, writer.flush()).await.expect("no hang");
        assert!(flushed.is_err(), "the unsent buffer is reported");
        timeout(LIMIT, server.wait_closed()).await.expect("no hang");
    });
    drop(b);
}

#[test]
fn a_flush_task_dropped_before_it_ever_ran_still_reports_the_unsent_buffer() {
    let (a, b) = UnixStream::pair().unwrap();
    let rt = ringleader::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // block_on returns without yielding: the flush task is spawned but never polled.
    let writer = rt.block_on(async {
        let (_reader, writer) = split(a);
        writer.write(b"never sent\n");
        writer
    });
    drop(rt);
    rt2().block_on(async {
        let flushed = timeout(LIMIT, writer.flush()).await.expect("no hang");
        assert!(flushed.is_err(), "the unsent buffer is reported");
    });
    drop(b);
}

#[test]
fn start_server_on_a_host_name_binds_each_of_its_addresses() {
    rt2().block_on(async {
        let server = start_server(echo_lines, "localhost:0").await.unwrap();
        assert!(!server.local_addrs().is_empty());
        for addr in server.local_addrs() {
            let addr = addr.as_inet().unwrap();
            assert!(addr.ip().is_loopback());
            let (mut reader, writer) = open_connection(&addr.ip().to_string(), addr.port())
                .await
                .unwrap();
            writer.write(b"hello\n");
            assert_eq!(reader.readline().await.unwrap(), b"hello\n");
            writer.close();
        }
        server.close();
        server.wait_closed().await;
    });
}
