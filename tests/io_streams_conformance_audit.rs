//! asyncio-stream conformance over loopback TCP: each test checks one behaviour that
//! Python 3.13's asyncio streams document (or do), and fails if ours differs. Order and
//! outcomes are asserted, never durations.

mod support;

use std::future::Future;
use std::io;
use std::time::Duration;

use futures_util::StreamExt;
use ringleader::net::TcpListener;
use ringleader::streams::{
    open_connection, split, start_server, ReadError, Server, StreamReader, StreamWriter,
};
use ringleader::time::{sleep, timeout};
use support::rt2;

/// Every test body runs under this bound, so a bug shows as a failure, not a hang.
const LIMIT: Duration = Duration::from_secs(60);

fn run<F: Future<Output = ()>>(body: F) {
    rt2().block_on(async {
        timeout(LIMIT, body)
            .await
            .expect("the test finished in time");
    });
}

fn port_of(server: &Server) -> u16 {
    server.local_addrs()[0]
        .as_inet()
        .expect("a TCP server")
        .port()
}

/// A loopback TCP connection: (client reader, client writer, server reader, server writer).
async fn tcp() -> (StreamReader, StreamWriter, StreamReader, StreamWriter) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (cr, cw) = open_connection("127.0.0.1", port).await.unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let (sr, sw) = split(stream);
    (cr, cw, sr, sw)
}

/// Gets at least `n` bytes into `reader`'s buffer without taking any out: each timed-out
/// `readexactly` leaves its receive in the reader (cancel safety), the bytes stay buffered.
async fn buffer_at_least(reader: &mut StreamReader, n: usize) {
    while reader.buffered() < n {
        let _ = timeout(Duration::from_millis(2), reader.readexactly(n + 1_000_000)).await;
    }
}

#[test]
fn read_n_gives_at_most_n_bytes_and_empty_only_at_eof() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        // read(0) returns at once, data or not, EOF or not.
        assert_eq!(reader.read(0).await.unwrap(), b"");
        sw.write(b"hello world");
        sw.flush().await.unwrap();
        assert_eq!(reader.read(5).await.unwrap(), b"hello");
        assert_eq!(reader.read(0).await.unwrap(), b"");
        let mut rest = Vec::new();
        while rest.len() < 6 {
            let got = reader.read(100).await.unwrap();
            assert!(!got.is_empty() && got.len() <= 100, "{got:?}");
            rest.extend_from_slice(&got);
        }
        assert_eq!(rest, b" world");
        assert!(!reader.at_eof(), "no EOF was received");
        sw.write_eof();
        assert_eq!(reader.read(100).await.unwrap(), b"");
        assert!(reader.at_eof());
        assert_eq!(reader.read(100).await.unwrap(), b"");
    });
}

#[test]
fn read_to_end_reads_everything_past_the_limit() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        let payload: Vec<u8> = (0..300 * 1024).map(|i| (i % 253) as u8).collect();
        let sender = {
            let payload = payload.clone();
            ringleader::spawn(async move {
                for chunk in payload.chunks(7 * 1024) {
                    sw.write(chunk);
                    sw.drain().await?;
                }
                sw.close();
                sw.wait_closed().await
            })
        };
        let got = reader.read_to_end().await.unwrap();
        assert_eq!(got.len(), payload.len());
        assert!(got == payload, "the bytes differ");
        assert!(reader.at_eof());
        sender.await.unwrap().unwrap();
    });
}

#[test]
fn at_eof_is_false_while_bytes_remain_after_the_peer_ended() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        sw.write(b"ab\ncd");
        sw.write_eof();
        assert_eq!(reader.readline().await.unwrap(), b"ab\n");
        assert!(!reader.at_eof());
        assert_eq!(reader.readline().await.unwrap(), b"cd");
        assert!(reader.at_eof());
        assert_eq!(reader.readline().await.unwrap(), b"");
        assert_eq!(reader.readexactly(0).await.unwrap(), b"");
    });
}

#[test]
fn readline_at_eof_gives_the_partial_line_then_empty() {
    run(async {
        let (mut reader, cw, _sr, sw) = tcp().await;
        sw.write(b"first\nno newline");
        sw.close();
        assert_eq!(reader.readline().await.unwrap(), b"first\n");
        assert_eq!(reader.readline().await.unwrap(), b"no newline");
        assert_eq!(reader.readline().await.unwrap(), b"");
        assert!(reader.at_eof());
        drop(cw);
    });
}

#[test]
fn readline_overrun_with_the_newline_buffered_past_the_limit_drops_the_line_through_it() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        let mut data = vec![b'x'; 40];
        data.extend_from_slice(b"\nnext\n");
        sw.write(&data);
        sw.flush().await.unwrap();
        buffer_at_least(&mut reader, data.len()).await;
        reader.set_limit(10);
        // asyncio: ValueError; the buffer is cut through the overlong line's newline.
        let err = reader.readline().await.unwrap_err();
        let overrun = err.limit_overrun().expect("a limit overrun");
        assert_eq!(overrun.consumed, 40);
        assert_eq!(reader.buffered(), 5);
        assert_eq!(reader.readline().await.unwrap(), b"next\n");
    });
}

#[test]
fn readline_overrun_without_a_newline_clears_what_was_buffered() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        sw.write(&[b'x'; 30]);
        sw.flush().await.unwrap();
        buffer_at_least(&mut reader, 30).await;
        reader.set_limit(10);
        let err = reader.readline().await.unwrap_err();
        assert!(matches!(err, ReadError::LimitOverrun(_)), "{err:?}");
        // As asyncio: the buffered part is dropped; what comes next is a new line.
        assert_eq!(reader.buffered(), 0);
        sw.write(b"y\n");
        assert_eq!(reader.readline().await.unwrap(), b"y\n");
        // And the error converts into InvalidData for `?` in io::Result code.
        let as_io: io::Error = err.into();
        assert_eq!(as_io.kind(), io::ErrorKind::InvalidData);
    });
}

#[test]
fn readuntil_overrun_with_the_separator_past_the_limit_keeps_the_data() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        let mut data = vec![b'x'; 30];
        data.extend_from_slice(b"|rest|");
        sw.write(&data);
        sw.flush().await.unwrap();
        buffer_at_least(&mut reader, data.len()).await;
        reader.set_limit(10);
        let err = reader.readuntil(b"|").await.unwrap_err();
        let overrun = err.limit_overrun().expect("a limit overrun");
        assert_eq!(overrun.consumed, 30);
        assert_eq!(overrun.limit, 10);
        assert_eq!(reader.buffered(), data.len(), "readuntil keeps the data");
        assert_eq!(reader.readexactly(30).await.unwrap(), [b'x'; 30]);
        assert_eq!(reader.readuntil(b"|").await.unwrap(), b"|");
        assert_eq!(reader.readuntil(b"|").await.unwrap(), b"rest|");
    });
}

#[test]
fn readuntil_with_an_empty_separator_is_an_error_and_takes_nothing() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        sw.write(b"abc|");
        sw.flush().await.unwrap();
        let err = reader.readuntil(b"").await.unwrap_err();
        let err: io::Error = err.into();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = reader.readuntil_any(&[]).await.unwrap_err();
        assert!(matches!(err, ReadError::Io(ref e) if e.kind() == io::ErrorKind::InvalidInput));
        let err = reader.readuntil_any(&[b"|", b""]).await.unwrap_err();
        assert!(matches!(err, ReadError::Io(ref e) if e.kind() == io::ErrorKind::InvalidInput));
        assert_eq!(reader.readuntil(b"|").await.unwrap(), b"abc|");
    });
}

#[test]
fn readuntil_at_eof_gives_the_partial_data_and_empties_the_buffer() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        sw.write(b"one;two");
        sw.close();
        assert_eq!(reader.readuntil(b";").await.unwrap(), b"one;");
        let err = reader.readuntil(b";").await.unwrap_err();
        let inc = err.incomplete().expect("an incomplete read");
        assert_eq!(inc.partial, b"two");
        assert_eq!(inc.expected, None);
        assert!(reader.at_eof());
        let err = reader.readuntil(b";").await.unwrap_err();
        assert_eq!(err.incomplete().unwrap().partial, b"");
    });
}

#[test]
fn readuntil_any_returns_the_shortest_data_ending_with_any_separator() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        sw.write(b"a\nb\r\ncXYd--e");
        sw.close();
        let seps: [&[u8]; 3] = [b"\r\n", b"\n", b"--"];
        assert_eq!(reader.readuntil_any(&seps).await.unwrap(), b"a\n");
        assert_eq!(reader.readuntil_any(&seps).await.unwrap(), b"b\r\n");
        // Whichever ends first wins, even if a longer separator starts earlier.
        assert_eq!(reader.readuntil_any(&[b"XYZ", b"Y"]).await.unwrap(), b"cXY");
        assert_eq!(reader.readuntil_any(&seps).await.unwrap(), b"d--");
        let err = reader.readuntil_any(&seps).await.unwrap_err();
        assert_eq!(err.incomplete().unwrap().partial, b"e");
    });
}

#[test]
fn readuntil_any_reports_an_overrun_at_the_match_and_keeps_the_data() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        let mut data = vec![b'x'; 20];
        data.extend_from_slice(b"\r\n");
        sw.write(&data);
        sw.flush().await.unwrap();
        buffer_at_least(&mut reader, data.len()).await;
        reader.set_limit(5);
        let err = reader.readuntil_any(&[b"\r\n", b"\n"]).await.unwrap_err();
        // Both matches end at the same byte: the shorter separator is the one that
        // matched, as asyncio's (its start is the overrun's `consumed`).
        assert_eq!(err.limit_overrun().unwrap().consumed, 21);
        assert_eq!(reader.buffered(), data.len());
        reader.set_limit(100);
        assert_eq!(reader.readuntil_any(&[b"\r\n", b"\n"]).await.unwrap(), data);
    });
}

#[test]
fn readexactly_waits_for_every_byte_and_reports_a_short_stream() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        // readexactly(0) returns at once, with nothing sent yet.
        assert_eq!(reader.readexactly(0).await.unwrap(), b"");
        let sender = ringleader::spawn(async move {
            for part in [&b"12"[..], b"34", b"5", b"678"] {
                sw.write(part);
                sw.flush().await?;
                sleep(Duration::from_millis(1)).await;
            }
            sw.close();
            sw.wait_closed().await
        });
        assert_eq!(reader.readexactly(5).await.unwrap(), b"12345");
        let err = reader.readexactly(10).await.unwrap_err();
        let inc = err.incomplete().expect("an incomplete read");
        assert_eq!(inc.partial, b"678");
        assert_eq!(inc.expected, Some(10));
        assert!(reader.at_eof());
        assert_eq!(reader.readexactly(0).await.unwrap(), b"");
        sender.await.unwrap().unwrap();
    });
}

#[test]
fn lines_iterate_until_eof_and_report_an_overlong_line() {
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        let mut data = b"one\n".to_vec();
        data.extend_from_slice(&[b'x'; 50]);
        data.extend_from_slice(b"\ntwo\nlast");
        sw.write(&data);
        sw.flush().await.unwrap();
        buffer_at_least(&mut reader, data.len()).await;
        sw.close();
        reader.set_limit(20);
        let items: Vec<Result<Vec<u8>, ReadError>> = reader.lines().collect().await;
        assert_eq!(items.len(), 4, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap(), b"one\n");
        assert!(matches!(items[1], Err(ReadError::LimitOverrun(_))));
        assert_eq!(items[2].as_ref().unwrap(), b"two\n");
        assert_eq!(items[3].as_ref().unwrap(), b"last");
    });
}

#[test]
fn write_and_writelines_are_buffered_and_arrive_in_order() {
    // One thread, as asyncio's loop: the flush task that the first write starts cannot run
    // before this task yields. (On several workers it may start sending at once.)
    let rt = ringleader::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (_cr, cw, mut sr, _sw) = tcp().await;
        cw.write(b"a");
        cw.writelines([&b"b"[..], b"", b"cd"]);
        cw.write(b"e\n");
        // Nothing was sent yet: this task has not yielded.
        assert_eq!(cw.write_buffer_size(), 6);
        cw.drain().await.unwrap();
        assert_eq!(sr.readline().await.unwrap(), b"abcde\n");
        cw.flush().await.unwrap();
        assert_eq!(cw.write_buffer_size(), 0);
    });
}

#[test]
fn write_eof_half_closes_the_peer_reads_eof_and_we_still_read() {
    run(async {
        let (mut cr, cw, mut sr, sw) = tcp().await;
        assert!(cw.can_write_eof());
        cw.write(b"request");
        cw.write_eof();
        assert!(!cw.is_closing(), "write_eof is not close");
        assert_eq!(sr.read_to_end().await.unwrap(), b"request");
        assert!(sr.at_eof());
        // The other direction is still open, both ways of looking at it.
        sw.write(b"response\n");
        sw.drain().await.unwrap();
        assert_eq!(cr.readline().await.unwrap(), b"response\n");
        sw.write(b"more");
        sw.close();
        sw.wait_closed().await.unwrap();
        assert_eq!(cr.read_to_end().await.unwrap(), b"more");
        // Writing after write_eof fails (asyncio raises); drain reports it.
        cw.write(b"late");
        let err = cw.drain().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    });
}

#[test]
fn close_sends_the_buffer_and_the_peer_reads_eof() {
    run(async {
        let (mut cr, cw, mut sr, _sw) = tcp().await;
        assert!(!cw.is_closing());
        cw.write(b"bye\n");
        cw.close();
        assert!(cw.is_closing());
        cw.wait_closed().await.unwrap();
        // Waiting again returns at once.
        cw.wait_closed().await.unwrap();
        assert_eq!(sr.readline().await.unwrap(), b"bye\n");
        assert_eq!(sr.readline().await.unwrap(), b"");
        assert!(sr.at_eof());
        // Our own reader sees the end too.
        assert_eq!(cr.read(10).await.unwrap_or_default(), b"");
    });
}

#[test]
fn write_and_drain_after_close_are_errors_not_panics_nor_silent() {
    run(async {
        let (_cr, cw, mut sr, _sw) = tcp().await;
        cw.write(b"before\n");
        cw.close();
        // asyncio's drain after close raises (the connection is going away).
        let err = cw.drain().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        cw.write(b"after\n");
        let err = cw.drain().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        // The close itself went through: what was written before it is sent, then the
        // peer reads the end; the late bytes never leave.
        cw.wait_closed().await.unwrap();
        assert_eq!(sr.read_to_end().await.unwrap(), b"before\n");
    });
}

/// Connects and has the server side reset the connection (SO_LINGER 0, then close).
async fn reset_by_peer() -> (StreamReader, StreamWriter) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
    (reader, writer)
}

#[test]
fn a_reset_by_the_peer_is_a_read_error() {
    run(async {
        let (mut reader, _writer) = reset_by_peer().await;
        let err = reader.read(100).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err:?}");
        // Later reads do not panic or hang.
        let _ = reader.readline().await;
        let _ = reader.read(100).await;
    });
}

#[test]
fn a_reset_by_the_peer_fails_drain_and_closes_the_writer() {
    run(async {
        let (_reader, writer) = reset_by_peer().await;
        let chunk = vec![1u8; 16 * 1024];
        let mut error = None;
        for _ in 0..10_000 {
            writer.write(&chunk);
            if let Err(e) = writer.drain().await {
                error = Some(e);
                break;
            }
            sleep(Duration::from_millis(1)).await;
        }
        let error = error.expect("drain reported the reset");
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{error:?}"
        );
        // As asyncio's transport after a fatal error: closing, and wait_closed returns
        // (with the error) without anyone calling close.
        assert!(writer.is_closing());
        let err = writer.wait_closed().await.unwrap_err();
        assert_eq!(err.kind(), error.kind());
        writer.write(b"dropped");
        assert!(writer.drain().await.is_err());
    });
}

#[test]
fn open_connection_to_a_closed_port_is_refused() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = open_connection("127.0.0.1", port).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");
    });
}

#[test]
fn peer_and_local_addresses_match_on_both_ends() {
    run(async {
        let server = start_server(
            |reader: StreamReader, writer: StreamWriter| async move {
                let peer = reader.peer_addr()?;
                assert_eq!(writer.peer_addr()?, peer);
                assert_eq!(writer.local_addr()?, reader.local_addr()?);
                writer.write(format!("{peer}\n{}\n", writer.local_addr()?).as_bytes());
                writer.close();
                writer.wait_closed().await
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let (mut reader, writer) = open_connection("127.0.0.1", port_of(&server))
            .await
            .unwrap();
        let peer_seen = reader.readline().await.unwrap();
        let local_seen = reader.readline().await.unwrap();
        let ours = writer.local_addr().unwrap();
        assert_eq!(String::from_utf8(peer_seen).unwrap(), format!("{ours}\n"));
        assert_eq!(
            String::from_utf8(local_seen).unwrap(),
            format!("{}\n", writer.peer_addr().unwrap())
        );
        assert_eq!(writer.peer_addr().unwrap(), server.local_addrs()[0]);
        assert_eq!(reader.peer_addr().unwrap(), server.local_addrs()[0]);
        server.close();
        server.wait_closed().await;
    });
}

#[test]
fn server_wait_closed_waits_for_a_close_not_yet_asked_and_then_for_handlers() {
    run(async {
        let server = start_server(
            |mut reader: StreamReader, writer: StreamWriter| async move {
                let line = reader.readline().await?;
                writer.write(&line);
                writer.drain().await?;
                // Waits for the client's end before finishing.
                reader.read_to_end().await?;
                io::Result::Ok(())
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let port = port_of(&server);
        assert!(server.is_serving());
        let waiter = {
            let server = server.clone();
            ringleader::spawn(async move { server.wait_closed().await })
        };
        let (mut reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
        writer.write(b"hi\n");
        assert_eq!(reader.readline().await.unwrap(), b"hi\n");
        assert!(!waiter.is_finished(), "wait_closed returned before close");
        server.close();
        assert!(!server.is_serving());
        assert!(open_connection("127.0.0.1", port).await.is_err());
        // The handler still runs: it waits for our end of stream.
        writer.write_eof();
        waiter.await.unwrap();
        assert_eq!(server.stats().active, 0);
        assert_eq!(server.stats().completed, 1);
    });
}

#[test]
fn close_clients_closes_the_connections_being_served() {
    run(async {
        let server = start_server(
            |mut reader: StreamReader, writer: StreamWriter| async move {
                writer.write(b"hello\n");
                writer.drain().await?;
                // Ends when the server closes the connection.
                let rest = reader.read_to_end().await?;
                assert!(rest.is_empty());
                io::Result::Ok(())
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let port = port_of(&server);
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (mut reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
            assert_eq!(reader.readline().await.unwrap(), b"hello\n");
            clients.push((reader, writer));
        }
        server.close();
        server.close_clients();
        server.wait_closed().await;
        for (reader, _writer) in &mut clients {
            assert_eq!(reader.read(10).await.unwrap_or_default(), b"");
        }
        let stats = server.stats();
        assert_eq!(stats.completed, 3, "{stats:?}");
        assert_eq!(stats.active, 0);
    });
}

#[test]
fn abort_clients_drops_the_buffers_and_ends_the_connections() {
    run(async {
        type Outcome = Result<(), io::ErrorKind>;
        let (tx, rx) = std::sync::mpsc::channel::<Outcome>();
        let tx = std::sync::Mutex::new(tx);
        let server = start_server(
            move |mut reader: StreamReader, writer: StreamWriter| {
                let tx = tx.lock().unwrap().clone();
                async move {
                    writer.write(b"hello\n");
                    // The abort may land in any of these awaits: each reports it.
                    let res: io::Result<()> = async {
                        writer.flush().await?;
                        // The abort's shutdown ends the stream for our reader too.
                        let rest = reader.read_to_end().await?;
                        assert!(rest.is_empty());
                        writer.write(b"lost");
                        writer.drain().await
                    }
                    .await;
                    tx.send(res.map_err(|e| e.kind())).unwrap();
                    assert!(writer.is_closing());
                    assert!(writer.wait_closed().await.is_err());
                    io::Result::Ok(())
                }
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let port = port_of(&server);
        let (mut reader, _writer) = open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(reader.readline().await.unwrap(), b"hello\n");
        server.close();
        server.abort_clients();
        server.wait_closed().await;
        assert_eq!(rx.recv().unwrap(), Err(io::ErrorKind::ConnectionAborted));
        assert_eq!(reader.read(10).await.unwrap_or_default(), b"");
        assert_eq!(server.stats().completed, 1);
    });
}

/// asyncio's `writer.transport.abort()`: with a peer that stopped reading, `close()` would
/// wait for it forever; `abort()` drops the buffer, ends the connection for both sides and
/// fails the writer's waits with `ConnectionAborted`.
#[test]
fn abort_ends_a_connection_whose_peer_stopped_reading() {
    run(async {
        let (mut cr, _cw, mut sr, sw) = tcp().await;
        // Fill the socket buffers and then ours: the client never reads.
        let chunk = vec![b'x'; 1 << 20];
        while timeout(Duration::from_millis(50), async {
            sw.write(&chunk);
            sw.drain().await
        })
        .await
        .is_ok()
        {}
        assert!(
            sw.write_buffer_size() > 0,
            "a backlog that close() could not send"
        );
        sw.abort();
        assert!(sw.is_closing());
        assert_eq!(
            sw.wait_closed().await.unwrap_err().kind(),
            io::ErrorKind::ConnectionAborted
        );
        assert_eq!(
            sw.drain().await.unwrap_err().kind(),
            io::ErrorKind::ConnectionAborted
        );
        // Our side's reader sees the end of the stream (the socket is shut down both ways).
        assert_eq!(sr.read(10).await.unwrap(), b"");
        // The peer reads what had reached it, then the end (or a reset): never a hang.
        loop {
            match cr.read(1 << 20).await {
                Ok(b) if b.is_empty() => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
}

#[test]
fn serve_forever_returns_after_close_and_its_handlers() {
    run(async {
        let server = start_server(
            |mut reader: StreamReader, writer: StreamWriter| async move {
                let line = reader.readline().await?;
                writer.write(&line);
                writer.close();
                writer.wait_closed().await
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let port = port_of(&server);
        let serving = {
            let server = server.clone();
            ringleader::spawn(async move { server.serve_forever().await })
        };
        let (mut reader, writer) = open_connection("127.0.0.1", port).await.unwrap();
        writer.write(b"one\n");
        assert_eq!(reader.readline().await.unwrap(), b"one\n");
        assert!(server.is_serving());
        server.close();
        serving.await.unwrap().unwrap();
        assert!(!server.is_serving());
        assert_eq!(server.stats().completed, 1);
    });
}

/// A task working through buffered lines still shares its thread: each completed read
/// spends the cooperative budget, so a sibling runs at least every budget's worth of lines
/// (here a receive of 16 KiB holds ~2,000 of these lines: without the budget the sibling
/// would wait for all of them).
#[test]
fn reading_buffered_lines_spends_the_budget_and_lets_a_sibling_run() {
    let rt = ringleader::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (a, b) = ringleader::net::UnixStream::pair().unwrap();
        let (mut reader, _aw) = split(a);
        let (_br, writer) = split(b);
        for i in 0..4_000u32 {
            writer.write(format!("{:06}\n", i % 1_000_000).as_bytes());
        }
        writer.close();
        writer.wait_closed().await.unwrap();
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sibling = {
            let (read, seen) = (read.clone(), seen.clone());
            ringleader::spawn(async move {
                loop {
                    seen.lock()
                        .unwrap()
                        .push(read.load(std::sync::atomic::Ordering::SeqCst));
                    ringleader::task::yield_now().await;
                }
            })
        };
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.readline_into(&mut line).await.unwrap() == 0 {
                break;
            }
            read.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        sibling.abort();
        assert_eq!(read.load(std::sync::atomic::Ordering::SeqCst), 4_000);
        let seen = seen.lock().unwrap();
        let widest = seen.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        assert!(
            widest <= 2 * ringleader::coop::INITIAL_BUDGET as usize,
            "the reader took {widest} lines between two runs of its sibling"
        );
    });
}

/// Both halves are `Send + Sync`: a spawned task can hold `&reader` (or an `Arc` of it)
/// across an `.await`, which needs `Sync` for its future to be `Send`.
#[test]
fn stream_halves_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<StreamReader>();
    send_sync::<StreamWriter>();
    run(async {
        let (mut reader, _cw, _sr, sw) = tcp().await;
        sw.write(b"shared\n");
        assert_eq!(reader.readline().await.unwrap(), b"shared\n");
        let reader = std::sync::Arc::new(reader);
        let r = reader.clone();
        let at_eof = ringleader::spawn(async move {
            let held: &StreamReader = &r;
            ringleader::task::yield_now().await;
            held.at_eof()
        })
        .await
        .unwrap();
        assert!(!at_eof);
    });
}
