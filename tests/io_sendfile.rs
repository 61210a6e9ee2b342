//! sendfile: 100 MiB arrive intact over loopback TCP (every byte compared on the receiving
//! side),
//! offset and count are respected, a Unix stream works too, and bad input (a file not
//! open for reading, a peer that hung up) is an error, with no fd left behind.
//!
//! The tests take a lock so the fd counts are not disturbed by each other.

mod support;

use std::io::{self, Read};
use std::path::PathBuf;

use ringleader::fs::File;
use ringleader::io::sendfile;
use ringleader::net::{TcpListener, TcpStream, UnixStream};
use support::{open_fds, rt2, serial};

/// A pseudo-random pattern (xorshift), so misplaced or repeated bytes change the checksum.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

struct TempFile(PathBuf);

/// The file's contents repeat a block whose length (1 MiB + 7) shares no factor with the
/// pipe and socket buffer sizes, so a chunk sent twice, skipped or misplaced shows.
const BLOCK: usize = (1 << 20) + 7;

impl TempFile {
    /// A file of `len` bytes: `block` repeated (and cut).
    fn new(name: &str, len: usize, block: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("ringleader-sendfile-{name}-{}", std::process::id()));
        let mut file = std::fs::File::create(&path).unwrap();
        let mut written = 0;
        while written < len {
            let part = &block[..block.len().min(len - written)];
            io::Write::write_all(&mut file, part).unwrap();
            written += part.len();
        }
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A connected pair: ours (ringleader) and the peer as a std stream for a plain thread.
async fn tcp_pair() -> (TcpStream, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().await.unwrap();
    (ours, peer)
}

/// Reads the peer to end of stream on a thread, comparing every byte with the file's
/// contents (`block` repeated); gives the number of bytes received.
fn drain(
    mut peer: impl Read + Send + 'static,
    block: std::sync::Arc<Vec<u8>>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut received = 0;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match peer.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("receiver: {e}"),
            };
            let mut got = &buf[..n];
            while !got.is_empty() {
                let at = received % block.len();
                let take = got.len().min(block.len() - at);
                assert!(
                    got[..take] == block[at..at + take],
                    "wrong bytes at offset {received}"
                );
                got = &got[take..];
                received += take;
            }
        }
        received
    })
}

/// Asserts that the open fds come back to `before`. A dropped operation's pipe closes when
/// the kernel completes it: give it a moment.
fn assert_fds_settle_at(before: usize) {
    for _ in 0..100 {
        if open_fds() == before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(open_fds(), before, "sendfile leaked fds");
}

#[test]
fn a_100_mib_file_arrives_intact() {
    let _serial = serial();
    const LEN: usize = 100 << 20;
    let block = std::sync::Arc::new(pattern(BLOCK, 7));
    let tmp = TempFile::new("big", LEN, &block);
    let before = open_fds();
    rt2().block_on(async {
        let file = File::open(&tmp.0).await.unwrap();
        let (ours, peer) = tcp_pair().await;
        let receiver = drain(peer, block);
        let sent = sendfile(&file, &ours, 0, None).await.unwrap();
        assert_eq!(sent, LEN);
        ours.close().await.unwrap();
        assert_eq!(receiver.join().unwrap(), LEN);
        file.close().await.unwrap();
    });
    assert_eq!(open_fds(), before, "sendfile leaked fds");
}

#[test]
fn offset_and_count_are_respected() {
    let _serial = serial();
    let tmp = TempFile::new("window", 1000, &pattern(1000, 3));
    let contents = std::fs::read(&tmp.0).unwrap();
    let before = open_fds();
    rt2().block_on(async {
        let mut file = File::open(&tmp.0).await.unwrap();
        let cases: [(u64, Option<usize>, std::ops::Range<usize>); 6] = [
            (0, None, 0..1000),
            (100, Some(250), 100..350),
            (900, Some(500), 900..1000), // the file ends first
            (999, None, 999..1000),
            (1000, None, 1000..1000), // at the end: nothing
            (5000, Some(10), 1000..1000),
        ];
        for (offset, count, range) in cases {
            let (ours, mut peer) = tcp_pair().await;
            let sent = sendfile(&file, &ours, offset, count).await.unwrap();
            assert_eq!(sent, range.len(), "offset {offset} count {count:?}");
            ours.close().await.unwrap();
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            assert_eq!(
                got,
                &contents[range.clone()],
                "offset {offset} count {count:?}"
            );
        }
        // An offset no file can have is refused, not misread as "the current position".
        let (ours, _peer) = tcp_pair().await;
        let err = sendfile(&file, &ours, u64::MAX, Some(10))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // Count zero sends nothing; the file's own position is untouched throughout.
        let (ours, _peer) = tcp_pair().await;
        assert_eq!(sendfile(&file, &ours, 0, Some(0)).await.unwrap(), 0);
        let (res, buf) = file.read(Vec::with_capacity(10)).await;
        assert_eq!(res.unwrap(), 10);
        assert_eq!(buf, &contents[..10]);
    });
    assert_eq!(open_fds(), before, "sendfile leaked fds");
}

#[test]
fn sendfile_to_a_unix_stream() {
    let _serial = serial();
    let block = std::sync::Arc::new(pattern(BLOCK, 11));
    let tmp = TempFile::new("unix", 3 << 20, &block);
    rt2().block_on(async {
        let file = File::open(&tmp.0).await.unwrap();
        let (ours, theirs) = UnixStream::pair().unwrap();
        let theirs = theirs.into_std().unwrap();
        theirs.set_nonblocking(false).unwrap();
        let receiver = drain(theirs, block);
        assert_eq!(sendfile(&file, &ours, 0, None).await.unwrap(), 3 << 20);
        drop(ours);
        assert_eq!(receiver.join().unwrap(), 3 << 20);
    });
}

#[test]
fn bad_input_is_an_error_and_leaks_nothing() {
    let _serial = serial();
    let tmp = TempFile::new("bad", 16 << 20, &pattern(BLOCK, 5));
    let before = open_fds();
    rt2().block_on(async {
        // A file open for writing only cannot be read.
        let write_only = File::create(tmp.0.with_extension("w")).await.unwrap();
        let (ours, _peer) = tcp_pair().await;
        let err = sendfile(&write_only, &ours, 0, Some(100))
            .await
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        write_only.close().await.unwrap();
        std::fs::remove_file(tmp.0.with_extension("w")).unwrap();

        // The peer hangs up: an error (never a panic or a SIGPIPE death).
        let file = File::open(&tmp.0).await.unwrap();
        let (ours, peer) = tcp_pair().await;
        drop(peer);
        let err = sendfile(&file, &ours, 0, None).await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err}"
        );
        drop(ours);

        // A dropped sendfile (cancelled mid-transfer) leaves nothing open either.
        let (ours, _peer) = tcp_pair().await;
        let transfer = sendfile(&file, &ours, 0, None);
        let out =
            ringleader::taskgroup::timeout(std::time::Duration::from_millis(20), transfer).await;
        assert!(
            out.is_err(),
            "16 MiB to a peer that never reads cannot finish"
        );
        drop(ours);
        file.close().await.unwrap();
    });
    assert_fds_settle_at(before);
}

#[test]
fn files_splice_cannot_read_go_through_the_read_write_fallback() {
    let _serial = serial();
    // /proc/self/environ has no splice support (splice gives EINVAL), so this exercises the
    // fallback: positioned reads and socket writes.
    let contents = std::fs::read("/proc/self/environ").unwrap();
    assert!(contents.len() > 1, "an empty environment");
    rt2().block_on(async {
        let file = File::open("/proc/self/environ").await.unwrap();
        let (ours, mut peer) = tcp_pair().await;
        let sent = sendfile(&file, &ours, 1, None).await.unwrap();
        assert_eq!(sent, contents.len() - 1);
        ours.close().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, &contents[1..]);
    });
}

/// Reads the peer to end of stream on a thread; gives every byte received.
fn collect(mut peer: std::net::TcpStream) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        peer.read_to_end(&mut all).unwrap();
        all
    })
}

#[test]
fn stream_writer_sendfile_keeps_the_order_of_writes_around_it() {
    let _serial = serial();
    const LEN: usize = 3 << 20;
    let block = pattern(BLOCK, 11);
    let tmp = TempFile::new("writer-order", LEN, &block);
    let before = open_fds();
    rt2().block_on(async {
        let file = File::open(&tmp.0).await.unwrap();
        let (ours, peer) = tcp_pair().await;
        let receiver = collect(peer);
        let (_reader, writer) = ringleader::streams::split(ours);
        // More than the high-water mark is buffered before: it all goes first.
        let head = pattern(200 * 1024, 3);
        writer.write(&head);
        let sent = writer.sendfile(&file, 5, Some(LEN - 10)).await.unwrap();
        assert_eq!(sent, LEN - 10);
        // A write made while the file is being sent (by a second future of this task,
        // polled after the transfer started: nothing was left to flush, so the first poll
        // took the turn) waits in the buffer and follows the file.
        writer.flush().await.unwrap();
        let during = async {
            ringleader::task::yield_now().await;
            writer.write(b"written during the transfer");
        };
        let (sent, ()) = ringleader::join!(writer.sendfile(&file, 0, Some(LEN)), during);
        assert_eq!(sent.unwrap(), LEN);
        writer.write(b"|tail");
        writer.close();
        writer.wait_closed().await.unwrap();
        let got = receiver.join().unwrap();
        let mut want = head.clone();
        let contents: Vec<u8> = block.iter().copied().cycle().take(LEN).collect();
        want.extend_from_slice(&contents[5..LEN - 5]);
        want.extend_from_slice(&contents);
        want.extend_from_slice(b"written during the transfer|tail");
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes out of order or wrong");

        // At end of file it sends what there is.
        let (ours, peer) = tcp_pair().await;
        let receiver = collect(peer);
        let (_reader, writer) = ringleader::streams::split(ours);
        let sent = writer
            .sendfile(&file, (LEN - 3) as u64, Some(100))
            .await
            .unwrap();
        assert_eq!(sent, 3);
        assert_eq!(writer.sendfile(&file, LEN as u64, None).await.unwrap(), 0);
        writer.close();
        writer.wait_closed().await.unwrap();
        assert_eq!(receiver.join().unwrap(), contents[LEN - 3..]);
        file.close().await.unwrap();
    });
    assert_eq!(open_fds(), before, "leaked fds");
}

#[test]
fn stream_writer_sendfile_errors_leave_the_writer_in_a_clear_state() {
    let _serial = serial();
    let tmp = TempFile::new("writer-errors", 16 << 20, &pattern(BLOCK, 13));
    let before = open_fds();
    rt2().block_on(async {
        let file = File::open(&tmp.0).await.unwrap();

        // A file error: the writer stays usable.
        let write_only = File::create(tmp.0.with_extension("w")).await.unwrap();
        let (ours, peer) = tcp_pair().await;
        let receiver = collect(peer);
        let (_reader, writer) = ringleader::streams::split(ours);
        writer.write(b"before ");
        let err = writer.sendfile(&write_only, 0, Some(10)).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        assert!(!writer.is_closing());
        writer.write(b"after");
        writer.close();
        writer.wait_closed().await.unwrap();
        assert_eq!(receiver.join().unwrap(), b"before after");
        write_only.close().await.unwrap();
        std::fs::remove_file(tmp.0.with_extension("w")).unwrap();

        // After close: refused, nothing sent.
        let (ours, peer) = tcp_pair().await;
        let receiver = collect(peer);
        let (_reader, writer) = ringleader::streams::split(ours);
        writer.write(b"bye");
        writer.close();
        let err = writer.sendfile(&file, 0, None).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
        writer.wait_closed().await.unwrap();
        assert_eq!(receiver.join().unwrap(), b"bye");

        // The peer hangs up mid-file: the connection's error becomes the writer's.
        let (ours, peer) = tcp_pair().await;
        let (_reader, writer) = ringleader::streams::split(ours);
        drop(peer);
        let err = writer.sendfile(&file, 0, None).await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err}"
        );
        assert!(writer.is_closing(), "a lost connection counts as closing");
        assert_eq!(writer.drain().await.unwrap_err().kind(), err.kind());
        assert!(writer.wait_closed().await.is_err());

        // Cancelled mid-file (the peer does not read): the turn is given back, and what is
        // written afterwards follows the prefix that went out.
        let (ours, peer) = tcp_pair().await;
        let (_reader, writer) = ringleader::streams::split(ours);
        let out = ringleader::taskgroup::timeout(
            std::time::Duration::from_millis(20),
            writer.sendfile(&file, 0, None),
        )
        .await;
        assert!(
            out.is_err(),
            "16 MiB to a peer that never reads cannot finish"
        );
        writer.write(b"<after the cancelled transfer>");
        let reader = collect(peer);
        writer.close();
        writer.wait_closed().await.unwrap();
        let got = reader.join().unwrap();
        assert!(got.ends_with(b"<after the cancelled transfer>"));
        let prefix = got.len() - b"<after the cancelled transfer>".len();
        let contents = std::fs::read(&tmp.0).unwrap();
        assert!(prefix < contents.len());
        assert!(
            got[..prefix] == contents[..prefix],
            "the prefix is the file's"
        );
        file.close().await.unwrap();
    });
    assert_fds_settle_at(before);
}
