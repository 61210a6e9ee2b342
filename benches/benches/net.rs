//! Echo over loopback (issue #4): the shape of monoio's and glommio's ping-pong benchmarks,
//! with 1, 10 and 100 connections and 64 B / 4 KiB messages.
//!
//! Guards: ringleader's io_uring driver on the socket path (submit once per round, wake-ups,
//! completions reaching tasks a worker may have stolen) against tokio's epoll reactor, monoio
//! (one io_uring runtime per thread, no stealing) and `bare_uring`, an echo loop written
//! directly on the `io-uring` crate with no runtime: one ring per core thread, COOP_TASKRUN.
//! The bare ring is the ceiling; the targets are ≥ 1.3× tokio at 100 connections and
//! ≥ 0.85× the bare ring.
//!
//! The load generator is the same for every server and owes nothing to the runtime under
//! test: 2 plain std threads with blocking sockets (connection `i` belongs to thread
//! `i % 2`). One criterion iteration is one round: each thread writes one message on each of
//! its connections, then reads each echo back in full. So a round has `conns` messages in
//! flight, and criterion's throughput is messages per second. Every server runs on 2
//! threads, on the same 2 cores as the clients.
//!
//! After each function the bench prints CPU time per message: the server's threads (by
//! name, from `/proc/self/task`), the client's threads (each reads its own thread clock) and
//! their sum. On these 2 shared cores the client's figure matters too: a server that wakes
//! the client once per reply costs the client more than one that replies in batches.
//!
//! `ringleader_per_thread` is ringleader's I/O path placed as the bare ring and monoio are
//! (a current-thread runtime per server thread, handed its sockets): not the server,
//! a measure of what placement is worth.
//!
//! Placement: ringleader and tokio accept on one listener and spawn a task per connection
//! (their schedulers place it). `bare_uring` and `monoio` are handed the accepted sockets
//! round-robin (connection `i` to thread `i % 2`) before timing starts, the even split that
//! SO_REUSEPORT hashing only gives by luck; so they get the best-case placement. It is
//! best-case in a second way too: connection `i` also belongs to client thread `i % 2`, so
//! each server thread serves exactly one client thread's connections and is woken by one
//! client's bursts only. `RINGLEADER_BENCH_CROSSED=1` hands them out crossed instead
//! (server thread `(i / 2) % 2`: half of each client thread's connections on each server
//! thread, the mix that accept-and-spawn servers get), to measure what the alignment is worth.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::fd::IntoRawFd;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod common;

use common::{paired_custom, paired_pairs, thread_cpu_ticks, ticks_per_sec};

const THREADS: usize = 2;
/// Server read buffer (every server).
const BUF: usize = 4096;

/// The runtime-independent client: `conns` blocking connections split over 2 threads.
struct Client {
    per_thread: Vec<Vec<StdStream>>,
    size: usize,
    /// Messages echoed so far (for the `RINGLEADER_BENCH_METRICS` report).
    messages: u64,
    /// CPU time the client threads spent so far, ns (their threads end with each call of
    /// `rounds`, so each adds its own figure).
    cpu_ns: u64,
}

/// CPU time of the calling thread, ns.
fn own_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Client {
    fn connect(addr: SocketAddr, conns: usize, size: usize) -> Client {
        let mut per_thread: Vec<Vec<StdStream>> = (0..THREADS).map(|_| Vec::new()).collect();
        for i in 0..conns {
            let s = StdStream::connect(addr).expect("connect");
            s.set_nodelay(true).unwrap();
            per_thread[i % THREADS].push(s);
        }
        per_thread.retain(|v| !v.is_empty());
        Client {
            per_thread,
            size,
            messages: 0,
            cpu_ns: 0,
        }
    }

    /// `n` rounds on every connection; returns the elapsed time.
    fn rounds(&mut self, n: u64) -> Duration {
        let size = self.size;
        self.messages += n * self.per_thread.iter().map(|v| v.len() as u64).sum::<u64>();
        let start = Instant::now();
        let cpu_ns = std::thread::scope(|s| {
            let threads: Vec<_> = self
                .per_thread
                .iter_mut()
                .map(|conns| {
                    s.spawn(move || {
                        let cpu0 = own_cpu_ns();
                        let out = vec![0xA5u8; size];
                        let mut back = vec![0u8; size];
                        for _ in 0..n {
                            for c in conns.iter_mut() {
                                c.write_all(&out).expect("client write");
                            }
                            for c in conns.iter_mut() {
                                c.read_exact(&mut back).expect("client read");
                            }
                        }
                        assert_eq!(back[size - 1], 0xA5);
                        own_cpu_ns() - cpu0
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("client thread"))
                .sum::<u64>()
        });
        let elapsed = start.elapsed();
        self.cpu_ns += cpu_ns;
        elapsed
    }
}

/// A server under test: it runs until dropped after its clients closed.
trait Server {
    fn addr(&self) -> SocketAddr;

    /// Scheduler counters per worker, for `report` (servers without any: none).
    fn counters(&self) -> Vec<[u64; 4]> {
        Vec::new()
    }

    /// Prints the server's own counters per message (RINGLEADER_BENCH_METRICS).
    fn report(&self, msgs: u64, before: &[[u64; 4]]) {
        let _ = (msgs, before);
    }
}

// ---------------------------------------------------------------- ringleader

struct RingleaderServer {
    addr: SocketAddr,
    _rt: ringleader::runtime::Runtime,
}

impl RingleaderServer {
    /// `pinned`: each connection's task pinned to a worker, round-robin in accept order
    /// (`task::Builder::pin_to_worker`), the placement the hand-off servers get (crossed
    /// too under `RINGLEADER_BENCH_CROSSED`); else spawned and balanced by stealing.
    fn start(pinned: bool) -> RingleaderServer {
        use ringleader::net::TcpListener;
        let rt = ringleader::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .build()
            .expect("ringleader runtime");
        let listener = rt.block_on(async {
            TcpListener::builder()
                .backlog(1024)
                .bind("127.0.0.1:0")
                .await
                .expect("bind")
        });
        let addr = listener.local_addr().unwrap();
        let crossed = std::env::var_os("RINGLEADER_BENCH_CROSSED").is_some();
        drop(rt.handle().spawn(async move {
            for i in 0usize.. {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                stream.set_nodelay(true).unwrap();
                let mut task = ringleader::task::Builder::new();
                if pinned {
                    task = task.pin_to_worker(if crossed { i / THREADS } else { i });
                }
                drop(task.spawn(async move {
                    let mut buf = Vec::with_capacity(BUF);
                    loop {
                        let (res, b) = stream.read(buf).await;
                        match res {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let (res, b) = stream.write_all(b).await;
                        if res.is_err() {
                            return;
                        }
                        buf = b;
                    }
                }));
            }
        }));
        RingleaderServer { addr, _rt: rt }
    }
}

impl Server for RingleaderServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// RINGLEADER_BENCH_METRICS=1: the scheduler's counters, per message echoed in the timed
    /// part, to relate polls, parks (each park is at least one io_uring_enter) and steals to
    /// the work done.
    fn report(&self, msgs: u64, before: &[[u64; 4]]) {
        let m = self._rt.handle().metrics();
        for w in 0..m.num_workers() {
            let now = worker_counters(&m, w);
            let d: Vec<f64> = (0..4)
                .map(|i| (now[i] - before.get(w).map_or(0, |b| b[i])) as f64 / msgs as f64)
                .collect();
            eprintln!(
                "  ringleader worker {w} ({}), per message: polls {:.3} parks {:.3} stolen {:.3} (steal ops {:.3})",
                m.io_ring_flags(w).unwrap_or("no ring"),
                d[0],
                d[1],
                d[2],
                d[3],
            );
        }
    }

    fn counters(&self) -> Vec<[u64; 4]> {
        let m = self._rt.handle().metrics();
        (0..m.num_workers())
            .map(|w| worker_counters(&m, w))
            .collect()
    }
}

fn worker_counters(m: &ringleader::runtime::RuntimeMetrics, w: usize) -> [u64; 4] {
    [
        m.worker_poll_count(w),
        m.worker_park_count(w),
        m.worker_steal_count(w),
        m.worker_steal_operations(w),
    ]
}

// ---------------------------------------------------------------- tokio

struct TokioServer {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

impl TokioServer {
    fn start() -> TokioServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = rt.block_on(async {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.set_reuseaddr(true).unwrap();
            sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            sock.listen(1024).unwrap()
        });
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                stream.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; BUF];
                    loop {
                        let n = match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TokioServer { addr, _rt: rt }
    }
}

impl Server for TokioServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

// ------------------------------------- servers handed accepted sockets (bare_uring, monoio)

/// A std listener whose accepted sockets go round-robin to `THREADS` server threads, each
/// started by `serve` with its connections once all `conns` are accepted.
struct HandOffServer {
    addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl HandOffServer {
    fn start(
        conns: usize,
        name: &'static str,
        serve: fn(Vec<StdStream>),
    ) -> (HandOffServer, mpsc::Receiver<()>) {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        let acceptor = std::thread::spawn(move || {
            let mut per_thread: Vec<Vec<StdStream>> = (0..THREADS).map(|_| Vec::new()).collect();
            let crossed = std::env::var_os("RINGLEADER_BENCH_CROSSED").is_some();
            for i in 0..conns {
                let (s, _) = listener.accept().expect("accept");
                s.set_nodelay(true).unwrap();
                s.set_nonblocking(true).unwrap();
                // Aligned (the default): server thread `i % 2` serves exactly the
                // connections of client thread `i % 2`. Crossed: each server thread serves
                // half of each client thread's connections, as a scheduler that places
                // tasks without knowing the client ends up doing.
                let slot = if crossed {
                    (i / THREADS) % THREADS
                } else {
                    i % THREADS
                };
                per_thread[slot].push(s);
            }
            let threads: Vec<_> = per_thread
                .into_iter()
                .filter(|v| !v.is_empty())
                .map(|v| {
                    std::thread::Builder::new()
                        .name(name.into())
                        .spawn(move || serve(v))
                        .unwrap()
                })
                .collect();
            ready_tx.send(()).unwrap();
            for t in threads {
                t.join().unwrap();
            }
        });
        (
            HandOffServer {
                addr,
                threads: vec![acceptor],
            },
            ready_rx,
        )
    }
}

impl Server for HandOffServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HandOffServer {
    fn drop(&mut self) {
        // Called after the client is dropped: every connection sees EOF and its thread ends.
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The ceiling: one io_uring (COOP_TASKRUN) per thread, recv → send → recv per connection.
fn bare_uring_serve(conns: Vec<StdStream>) {
    use io_uring::{opcode, types, IoUring};
    let mut ring: IoUring = IoUring::builder()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(256)
        .expect("io_uring");
    struct Conn {
        fd: i32,
        buf: Vec<u8>,
        len: usize,
        sent: usize,
    }
    let mut conns: Vec<Conn> = conns
        .into_iter()
        .map(|s| Conn {
            fd: s.into_raw_fd(),
            buf: vec![0u8; BUF],
            len: 0,
            sent: 0,
        })
        .collect();
    // user_data: index * 2 (+1 for a send).
    let recv = |c: &mut Conn, i: usize| {
        opcode::Recv::new(types::Fd(c.fd), c.buf.as_mut_ptr(), BUF as u32)
            .build()
            .user_data((i * 2) as u64)
    };
    let send = |c: &Conn, i: usize| {
        // SAFETY: `sent < len <= BUF`.
        let ptr = unsafe { c.buf.as_ptr().add(c.sent) };
        opcode::Send::new(types::Fd(c.fd), ptr, (c.len - c.sent) as u32)
            .build()
            .user_data((i * 2 + 1) as u64)
    };
    let mut open = conns.len();
    for (i, c) in conns.iter_mut().enumerate() {
        let e = recv(c, i);
        // SAFETY: the buffer and fd live until the loop below ends with every connection
        // closed (no entry in flight).
        unsafe { ring.submission().push(&e).expect("sq") };
    }
    let mut ready = Vec::with_capacity(256);
    while open > 0 {
        ring.submit_and_wait(1).expect("submit_and_wait");
        ready.clear();
        ready.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &ready {
            let i = (ud / 2) as usize;
            let c = &mut conns[i];
            let e = if ud % 2 == 0 {
                if res <= 0 {
                    // SAFETY: our fd, nothing in flight on it.
                    unsafe { libc::close(c.fd) };
                    open -= 1;
                    continue;
                }
                c.len = res as usize;
                c.sent = 0;
                send(c, i)
            } else {
                if res < 0 {
                    panic!("send: {}", std::io::Error::from_raw_os_error(-res));
                }
                c.sent += res as usize;
                if c.sent < c.len {
                    send(c, i)
                } else {
                    recv(c, i)
                }
            };
            // SAFETY: as above; at most one entry per connection is in flight, so the
            // queue (256) never overflows with ≤ 100 connections per ring.
            unsafe { ring.submission().push(&e).expect("sq") };
        }
    }
}

/// `ringleader_per_thread`: ringleader's I/O path with the bare ring's and monoio's placement:
/// one current-thread runtime per server thread (thread-per-core, as monoio), handed its
/// sockets the same way. Not the server (that is `ringleader`, the multi-thread
/// runtime placing tasks itself); it separates what ringleader's operations cost from what
/// the placement of connections on threads costs.
fn ringleader_per_thread_serve(conns: Vec<StdStream>) {
    let rt = ringleader::runtime::Builder::new_current_thread()
        .build()
        .expect("ringleader runtime");
    rt.block_on(async move {
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|s| {
                let stream = ringleader::net::TcpStream::from_std(s).expect("from_std");
                ringleader::spawn(async move {
                    let mut buf = Vec::with_capacity(BUF);
                    loop {
                        let (res, b) = stream.read(buf).await;
                        match res {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let (res, b) = stream.write_all(b).await;
                        if res.is_err() {
                            return;
                        }
                        buf = b;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// monoio: one runtime per thread, a task per connection.
fn monoio_serve(conns: Vec<StdStream>) {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(256)
        .build()
        .expect("monoio runtime");
    rt.block_on(async move {
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|s| {
                let mut stream = monoio::net::TcpStream::from_std(s).expect("from_std");
                monoio::spawn(async move {
                    let mut buf = Vec::with_capacity(BUF);
                    loop {
                        let (res, b) = stream.read(buf).await;
                        match res {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let (res, b) = stream.write_all(b).await;
                        if res.is_err() {
                            return;
                        }
                        buf = b;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    });
}

// ---------------------------------------------------------------- the benchmark

/// Connects the client, waits for a hand-off server to hold every connection (`ready`),
/// checks one round of echoes, then times rounds.
fn run<S: Server>(
    c: &mut Criterion,
    (conns, size): (usize, usize),
    (name, threads): (&str, &str),
    (server, addr, ready): (S, SocketAddr, Option<mpsc::Receiver<()>>),
) {
    let mut client = Client::connect(addr, conns, size);
    if let Some(ready) = ready {
        ready.recv().expect("server threads");
    }
    client.rounds(1);
    let (cpu0, msgs0, client0) = (thread_cpu_ticks(threads), client.messages, client.cpu_ns);
    let counters0 = server.counters();
    let mut group = c.benchmark_group(format!("echo/{conns}x{size}"));
    group.throughput(Throughput::Elements(conns as u64));
    group.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter_custom(|iters| client.rounds(iters))
    });
    group.finish();
    let cpu = (thread_cpu_ticks(threads) - cpu0) as f64 / ticks_per_sec();
    let msgs = client.messages - msgs0;
    if msgs > 0 {
        let client_cpu = (client.cpu_ns - client0) as f64 / 1e9;
        eprintln!(
            "echo/{conns}x{size}/{name}: server CPU {:.2} µs/message, client {:.2}, total {:.2} ({msgs} messages, {cpu:.2} s)",
            cpu * 1e6 / msgs as f64,
            client_cpu * 1e6 / msgs as f64,
            (cpu + client_cpu) * 1e6 / msgs as f64,
        );
        if std::env::var_os("RINGLEADER_BENCH_METRICS").is_some() {
            server.report(msgs, &counters0);
        }
    }
    // Closing the connections ends the server's connection tasks and threads.
    drop(client);
    drop(server);
}

/// `RINGLEADER_BENCH_PAIRED=<pairs>`: every server of a shape up at once, each with its own
/// client, and ringleader measured interleaved against tokio, then against the bare ring
/// (`common::paired_custom`), instead of by criterion. The idle servers' threads sleep
/// while another is measured.
fn echo_paired(pairs: usize) {
    for conns in [1usize, 10, 100] {
        for size in [64usize, 4096] {
            let rl = RingleaderServer::start(true);
            let tk = TokioServer::start();
            let (bare, ready) = HandOffServer::start(conns, "bare-uring-srv", bare_uring_serve);
            let mut rl_client = Client::connect(rl.addr(), conns, size);
            let mut tk_client = Client::connect(tk.addr(), conns, size);
            let mut bare_client = Client::connect(bare.addr(), conns, size);
            ready.recv().expect("server threads");
            for client in [&mut rl_client, &mut tk_client, &mut bare_client] {
                client.rounds(1);
            }
            let name = format!("echo/{conns}x{size}");
            paired_custom(
                &name,
                pairs,
                ("ringleader", &mut |n| rl_client.rounds(n)),
                ("tokio", &mut |n| tk_client.rounds(n)),
            );
            paired_custom(
                &name,
                pairs,
                ("ringleader", &mut |n| rl_client.rounds(n)),
                ("bare_uring", &mut |n| bare_client.rounds(n)),
            );
            // Closing the connections ends the servers' tasks and threads.
            drop((rl_client, tk_client, bare_client));
            drop((rl, tk, bare));
        }
    }
}

fn echo(c: &mut Criterion) {
    if let Some(pairs) = paired_pairs() {
        echo_paired(pairs);
        return;
    }
    for conns in [1usize, 10, 100] {
        for size in [64usize, 4096] {
            let shape = (conns, size);
            let s = RingleaderServer::start(true);
            let addr = s.addr();
            run(c, shape, ("ringleader", "ringleader-work"), (s, addr, None));
            let s = RingleaderServer::start(false);
            let addr = s.addr();
            run(
                c,
                shape,
                ("ringleader_stealing", "ringleader-work"),
                (s, addr, None),
            );
            let s = TokioServer::start();
            let addr = s.addr();
            run(c, shape, ("tokio", "tokio-rt-worker"), (s, addr, None));
            let (s, ready) = HandOffServer::start(conns, "bare-uring-srv", bare_uring_serve);
            let addr = s.addr();
            run(
                c,
                shape,
                ("bare_uring", "bare-uring-srv"),
                (s, addr, Some(ready)),
            );
            let (s, ready) = HandOffServer::start(conns, "monoio-srv", monoio_serve);
            let addr = s.addr();
            run(c, shape, ("monoio", "monoio-srv"), (s, addr, Some(ready)));
            let (s, ready) =
                HandOffServer::start(conns, "rl-thread-srv", ringleader_per_thread_serve);
            let addr = s.addr();
            run(
                c,
                shape,
                ("ringleader_per_thread", "rl-thread-srv"),
                (s, addr, Some(ready)),
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = echo
}
criterion_main!(benches);
