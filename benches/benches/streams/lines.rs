//! `lines`: a line echo server over loopback. Guards the streams layer (issue #7):
//! `start_server` + `StreamReader::readline_into` + `StreamWriter::write` + `drain` against
//! tokio's `TcpListener` + `BufReader::read_until` + `BufWriter::write_all`, flushed
//! whenever the reader's buffer is empty (before a read that may wait). That is tokio's
//! best shape for a line server: one send per batch of received lines, which is what
//! ringleader's writer does on its own (its flush runs when the handler task yields). A
//! tokio server that flushes after every line is ~20x slower here (one send per line).
//!
//! Both handlers read each line into one reused buffer (`line.clear()` then
//! `readline_into` / `read_until`), so both do the same work per line: a copy out of the
//! receive buffer and a copy into the write buffer. `ringleader_readline` is the same
//! server with the plain asyncio loop (`line = reader.readline()`, a new vector per line),
//! measured to keep that path honest too; the goal ratio is `ringleader` / `tokio`.
//!
//! The client owes nothing to either runtime: 2 std threads with blocking sockets, 10
//! connections (connection `i` belongs to thread `i % 2`). One criterion iteration is one
//! round: each thread writes a batch of 100 lines of 64 bytes on each of its connections
//! (one `write_all` per batch), then reads each batch's echo back in full. Throughput is
//! lines per second. All servers run on 2 worker threads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};

const THREADS: usize = 2;
const CONNS: usize = 10;
const LINES: usize = 100;
const LINE: usize = 64;

struct Client {
    per_thread: Vec<Vec<StdStream>>,
    batch: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let mut per_thread: Vec<Vec<StdStream>> = (0..THREADS).map(|_| Vec::new()).collect();
        for i in 0..CONNS {
            let s = StdStream::connect(addr).expect("connect");
            s.set_nodelay(true).unwrap();
            per_thread[i % THREADS].push(s);
        }
        let mut batch = Vec::with_capacity(LINES * LINE);
        for l in 0..LINES {
            let mut line = vec![b'a' + (l % 26) as u8; LINE - 1];
            line.push(b'\n');
            batch.extend_from_slice(&line);
        }
        Client { per_thread, batch }
    }

    fn rounds(&mut self, n: u64) -> Duration {
        let batch = &self.batch;
        let start = Instant::now();
        std::thread::scope(|s| {
            for conns in &mut self.per_thread {
                s.spawn(move || {
                    let mut back = vec![0u8; batch.len()];
                    for _ in 0..n {
                        for c in conns.iter_mut() {
                            c.write_all(batch).expect("client write");
                        }
                        for c in conns.iter_mut() {
                            c.read_exact(&mut back).expect("client read");
                        }
                    }
                    assert!(back == *batch, "the echo differs");
                });
            }
        });
        start.elapsed()
    }
}

fn ringleader_server() -> (ringleader::runtime::Runtime, ringleader::streams::Server) {
    use ringleader::streams::{StreamReader, StreamWriter};
    ringleader_server_with(
        |mut reader: StreamReader, writer: StreamWriter| async move {
            let mut line = Vec::with_capacity(LINE);
            loop {
                line.clear();
                if reader.readline_into(&mut line).await? == 0 {
                    return std::io::Result::Ok(());
                }
                writer.write(&line);
                writer.drain().await?;
            }
        },
    )
}

fn ringleader_server_readline() -> (ringleader::runtime::Runtime, ringleader::streams::Server) {
    use ringleader::streams::{StreamReader, StreamWriter};
    ringleader_server_with(
        |mut reader: StreamReader, writer: StreamWriter| async move {
            loop {
                let line = reader.readline().await?;
                if line.is_empty() {
                    return std::io::Result::Ok(());
                }
                writer.write(&line);
                writer.drain().await?;
            }
        },
    )
}

/// A 2-worker runtime with a `start_server` on a loopback port running `handler` per
/// connection.
fn ringleader_server_with<H, Fut>(
    handler: H,
) -> (ringleader::runtime::Runtime, ringleader::streams::Server)
where
    H: Fn(ringleader::streams::StreamReader, ringleader::streams::StreamWriter) -> Fut
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let rt = ringleader::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .build()
        .expect("ringleader runtime");
    let server = rt.block_on(async {
        ringleader::streams::start_server(handler, "127.0.0.1:0")
            .await
            .expect("start_server")
    });
    (rt, server)
}

fn tokio_server() -> (tokio::runtime::Runtime, SocketAddr) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let listener = rt.block_on(async {
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
    });
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            // asyncio (and so ringleader's streams) sets TCP_NODELAY; so does this server.
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (read, write) = stream.into_split();
                let mut reader = BufReader::new(read);
                let mut writer = BufWriter::new(write);
                let mut line = Vec::with_capacity(LINE);
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if writer.write_all(&line).await.is_err() {
                        return;
                    }
                    if reader.buffer().is_empty() && writer.flush().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (rt, addr)
}

/// CPU time (ns, from `schedstat`: finer than the tick counts of `stat`) and context
/// switches (voluntary + involuntary, from `status`) of this process's threads whose name
/// starts with `prefix`.
fn thread_counters(prefix: &str) -> (u64, u64) {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    let mut cpu = 0;
    let mut switches = 0;
    for entry in dir.flatten() {
        let path = entry.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        if let Ok(sched) = std::fs::read_to_string(path.join("schedstat")) {
            cpu += sched
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(status) = std::fs::read_to_string(path.join("status")) {
            switches += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    (cpu, switches)
}

fn run(c: &mut Criterion, name: &str, threads: &str, addr: SocketAddr) {
    let mut client = Client::connect(addr);
    client.rounds(1);
    let (cpu0, switches0) = thread_counters(threads);
    let rounds = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut group = c.benchmark_group("lines");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .throughput(Throughput::Elements((CONNS * LINES) as u64));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rounds.fetch_add(iters, std::sync::atomic::Ordering::Relaxed);
            client.rounds(iters)
        })
    });
    group.finish();
    let (cpu1, switches1) = thread_counters(threads);
    let cpu = (cpu1 - cpu0) as f64;
    let switches = (switches1 - switches0) as f64;
    let lines = rounds.load(std::sync::atomic::Ordering::Relaxed) * (CONNS * LINES) as u64;
    if lines > 0 {
        // Per batch (100 lines of one connection) the context switches say how often a
        // server thread slept and was woken.
        eprintln!(
            "lines/{name}: server CPU {:.1} ns/line, {:.3} context switches per batch \
             ({lines} lines, {:.2} s)",
            cpu / lines as f64,
            switches * LINES as f64 / lines as f64,
            cpu / 1e9
        );
    }
}

/// `RINGLEADER_BENCH_PAIRED=<pairs>`: both servers up at once, each with its own client,
/// measured interleaved (`common::paired_custom`) instead of by criterion.
fn bench_paired(pairs: usize) {
    let (rl_rt, rl_server) = ringleader_server();
    let (tk_rt, tk_addr) = tokio_server();
    let rl_addr = rl_server.local_addrs()[0].as_inet().expect("a TCP server");
    let mut rl_client = Client::connect(rl_addr);
    let mut tk_client = Client::connect(tk_addr);
    rl_client.rounds(1);
    tk_client.rounds(1);
    crate::common::paired_custom(
        "lines",
        pairs,
        ("ringleader", &mut |n| rl_client.rounds(n)),
        ("tokio", &mut |n| tk_client.rounds(n)),
    );
    drop((rl_client, tk_client));
    rl_rt.block_on(rl_server.shutdown(Duration::from_secs(1)));
    drop((rl_rt, tk_rt));
}

pub(crate) fn bench(c: &mut Criterion) {
    if let Some(pairs) = crate::common::paired_pairs() {
        bench_paired(pairs);
        return;
    }
    let (rt, server) = ringleader_server();
    let addr = server.local_addrs()[0].as_inet().expect("a TCP server");
    run(c, "ringleader", "ringleader-work", addr);
    rt.block_on(server.shutdown(Duration::from_secs(1)));
    drop(rt);

    let (rt, server) = ringleader_server_readline();
    let addr = server.local_addrs()[0].as_inet().expect("a TCP server");
    run(c, "ringleader_readline", "ringleader-work", addr);
    rt.block_on(server.shutdown(Duration::from_secs(1)));
    drop(rt);

    let (rt, addr) = tokio_server();
    run(c, "tokio", "tokio-rt-worker", addr);
    drop(rt);
}
