//! `sendfile`: a 1 GiB file to a loopback TCP socket (issue #7).
//!
//! Guards `ringleader::io::sendfile` (splice file → pipe → socket through the ring) against
//! what a tokio program writes for the same job: `tokio::io::copy` from a `tokio::fs::File`
//! to a `TcpStream` (file reads on the blocking pool, socket writes on the reactor). The
//! shape is asyncio's `loop.sendfile` benchmark: one big file, one connection.
//!
//! One iteration: connect, send the whole file, close; the receiver is a plain std thread
//! that drains the socket to end of stream (the same for both runtimes, owing nothing to
//! either), and the iteration ends when it has every byte. The file is created once in
//! the temp dir (so it is in the page cache for every iteration of both runtimes) and
//! deleted at the end. Both runtimes have 2 worker threads. Target: ringleader ≤ tokio.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use criterion::{Criterion, Throughput};

const LEN: u64 = 1 << 30;

/// Accepts one connection on a std thread and drains it; gives the byte count.
fn receiver() -> (SocketAddr, JoinHandle<u64>) {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("receiver: {e}"),
            }
        }
    });
    (addr, handle)
}

fn make_file() -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("ringleader-bench-sendfile-{}", std::process::id()));
    let mut file = std::fs::File::create(&path).expect("create the bench file");
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    for _ in 0..LEN / chunk.len() as u64 {
        file.write_all(&chunk).expect("write the bench file");
    }
    file.sync_all().expect("sync the bench file");
    path
}

/// One ringleader iteration: a connection, a sendfile of the whole file, the receiver's count.
fn ringleader_once(rt: &ringleader::runtime::Runtime, path: &std::path::Path) {
    let (addr, rx) = receiver();
    rt.block_on(async {
        let file = ringleader::fs::File::open(path).await.expect("open");
        let stream = ringleader::net::TcpStream::connect(addr)
            .await
            .expect("connect");
        let sent = ringleader::io::sendfile(&file, &stream, 0, None)
            .await
            .expect("sendfile");
        assert_eq!(sent as u64, LEN);
        stream.close().await.expect("close");
    });
    assert_eq!(rx.join().expect("receiver"), LEN);
}

/// One tokio iteration: `tokio::io::copy` from the file to a connection.
fn tokio_once(rt: &tokio::runtime::Runtime, path: &std::path::Path) {
    let (addr, rx) = receiver();
    rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::open(path).await.expect("open");
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let sent = tokio::io::copy(&mut file, &mut stream).await.expect("copy");
        assert_eq!(sent, LEN);
        stream.shutdown().await.expect("shutdown");
    });
    assert_eq!(rx.join().expect("receiver"), LEN);
}

pub(crate) fn bench(c: &mut Criterion) {
    let path = make_file();
    if let Some(pairs) = crate::common::paired_pairs() {
        // Both runtimes up at once, measured interleaved (`common::paired`).
        let (rl, tk) = (crate::common::ringleader_rt(2), crate::common::tokio_rt(2));
        crate::common::paired(
            "sendfile",
            pairs,
            || ringleader_once(&rl, &path),
            || tokio_once(&tk, &path),
        );
        let _ = std::fs::remove_file(&path);
        return;
    }
    let mut group = c.benchmark_group("sendfile");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(LEN));

    let rt = crate::common::ringleader_rt(2);
    group.bench_function("ringleader", |b| b.iter(|| ringleader_once(&rt, &path)));
    drop(rt);

    let rt = crate::common::tokio_rt(2);
    group.bench_function("tokio", |b| b.iter(|| tokio_once(&rt, &path)));
    drop(rt);
    group.finish();
    let _ = std::fs::remove_file(&path);
}
