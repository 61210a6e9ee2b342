//! A TCP echo server written the asyncio way: `start_server` with a
//! `StreamReader` / `StreamWriter` handler (`readline`, `write`, `drain`), and a graceful
//! shutdown on Ctrl-C.
//!
//! ```sh
//! cargo run --release --example echo_server -- --serve 127.0.0.1:8888   # until Ctrl-C
//! cargo run --release --example echo_server                             # self-check
//! ```
//!
//! `--serve ADDR` echoes every line back until Ctrl-C. Then it stops accepting and gives
//! the open connections a grace period to finish before cancelling them
//! (`Server::shutdown`), and exits 0; a second Ctrl-C cuts them off at once.
//!
//! With no arguments it checks itself: it serves on 127.0.0.1:0, runs a few hundred
//! clients at once (`open_connection`, bounded by a `Semaphore`, in one task group under
//! a timeout), each checking every byte echoed back; then it shuts the server down with
//! one client still finishing and one idle, and checks that the first is let finish and
//! the second is cut off. It prints a summary and exits 0, or non-zero with the reason.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use ringleader::signal::{signal, SignalKind};
use ringleader::streams::{
    open_connection, start_server, ReadError, Server, StreamReader, StreamWriter,
};
use ringleader::sync::Semaphore;
use ringleader::taskgroup::{task_group, timeout, BoxError};

/// How long open connections get to finish once the server stops accepting.
const SERVE_GRACE: Duration = Duration::from_secs(5);

/// The self-check's shape: `CLIENTS` clients, at most `IN_FLIGHT` connected at once (well
/// below the default `ulimit -n` of 1024), each sending `LINES` lines.
const CLIENTS: usize = 300;
const IN_FLIGHT: usize = 64;
const LINES: usize = 8;
/// Generous for a loaded 2-core machine; the check takes a fraction of a second.
const CHECK_DEADLINE: Duration = Duration::from_secs(20);
/// The self-check's grace period: long enough for the lingering client's last line,
/// short enough not to slow the check down.
const CHECK_GRACE: Duration = Duration::from_millis(500);

/// One connection: echo each line until the client hangs up.
async fn echo(mut reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    // One buffer for the whole connection: `readline_into` appends, we clear.
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match reader.readline_into(&mut line).await {
            Ok(0) => break, // end of stream: the client is done
            Ok(_) => {}
            Err(ReadError::LimitOverrun(_)) => {
                // A line over 64 KiB: tell the client instead of buffering without bound.
                writer.write(b"error: line too long\n");
                break;
            }
            Err(e) => return Err(e.into()),
        }
        writer.write(&line);
        // Backpressure: a client that sends but does not read stops being read from.
        writer.drain().await?;
    }
    writer.close();
    writer.wait_closed().await
}

/// Starts the echo server. Handler errors (a client resetting its connection...) are
/// reported on stderr when `report` is set; the server counts them either way.
async fn start(addr: &str, report: bool) -> io::Result<Server> {
    start_server(
        move |reader: StreamReader, writer: StreamWriter| async move {
            let peer = reader.peer_addr().map(|a| a.to_string());
            let result = echo(reader, writer).await;
            if let (Err(e), true) = (&result, report) {
                eprintln!("{}: {e}", peer.as_deref().unwrap_or("(unknown peer)"));
            }
            result
        },
        addr,
    )
    .await
}

/// `--serve ADDR`: serves until Ctrl-C, then shuts down gracefully; a second Ctrl-C cuts
/// the open connections off at once.
async fn serve(addr: &str) -> Result<(), String> {
    // Without a listener of our own, `run` would turn the first Ctrl-C into a cancellation
    // of `main` (seen through `ringleader::cancelled()`) and a second into an abort. Listening
    // for SIGINT makes it ours (`run` then leaves it alone), so the shutdown below can be
    // two-staged (graceful, then immediate) and still print its stats.
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot listen for Ctrl-C: {e}"))?;
    let server = start(addr, true)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    for a in server.local_addrs() {
        println!("echo server listening on {a} (Ctrl-C to stop)");
    }
    // Until Ctrl-C, or an accept error that stops the server.
    let interrupted = first(ringleader::cancelled(), sigint.recv());
    let failed = match first(server.serve_forever(), interrupted).await {
        Either::Left(result) => result.err(),
        Either::Right(_) => None,
    };
    if let Some(e) = &failed {
        eprintln!("the server stopped accepting: {e}");
    }
    let active = server.stats().active;
    println!("shutting down: {active} connection(s) open, giving them up to {SERVE_GRACE:?}");
    // `shutdown` stops accepting, waits up to the grace period for the handlers, then
    // cancels the rest. Impatient users press Ctrl-C again.
    if let Either::Right(_) = first(server.shutdown(SERVE_GRACE), sigint.recv()).await {
        println!("second Ctrl-C: closing every connection now");
        server.shutdown(Duration::ZERO).await;
    }
    let stats = server.stats();
    println!(
        "served {} connection(s): {} finished, {} failed, {} cut off at shutdown",
        stats.accepted, stats.completed, stats.failed, stats.cancelled
    );
    match failed {
        Some(e) => Err(format!("accept failed: {e}")),
        None => Ok(()),
    }
}

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Waits for whichever of `a` and `b` finishes first (`a` if both are ready) and drops the
/// other: a two-armed `select` (asyncio's `wait(..., return_when=FIRST_COMPLETED)` plus
/// cancelling the loser).
async fn first<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        b.as_mut().poll(cx).map(Either::Right)
    })
    .await
}

/// Line `k` of client `id`: deterministic bytes of every value but `\n`, of varied length
/// (1 to ~2 KiB), so that short, long and binary lines all go through.
fn line_of(id: usize, k: usize) -> Vec<u8> {
    // A 64-bit LCG (Knuth's MMIX constants): reproducible, no dependency.
    let mut x = (id as u64) << 32 | k as u64;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as u32
    };
    let len = 1 + (next() % 2048) as usize;
    let mut line: Vec<u8> = (0..len)
        .map(|_| match next() as u8 {
            b'\n' => b'\r', // the only byte a line cannot hold
            b => b,
        })
        .collect();
    line.push(b'\n');
    line
}

/// One self-check client: a ping-pong line, then the rest pipelined; every echoed byte is
/// compared, and the server must close after our close. Returns the lines echoed.
async fn client(id: usize, port: u16, limit: Arc<Semaphore>) -> Result<usize, BoxError> {
    let _permit = limit.acquire_owned().await?;
    let (mut reader, writer) = open_connection("127.0.0.1", port).await?;
    let check = |k: usize, got: Vec<u8>| {
        let want = line_of(id, k);
        if got == want {
            return Ok(());
        }
        let at = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        Err(format!(
            "client {id}, line {k}: got {} bytes back, sent {}; first difference at byte {at}",
            got.len(),
            want.len()
        ))
    };
    writer.write(&line_of(id, 0));
    writer.drain().await?;
    check(0, reader.readline().await?)?;
    for k in 1..LINES {
        writer.write(&line_of(id, k));
    }
    writer.drain().await?;
    for k in 1..LINES {
        check(k, reader.readline().await?)?;
    }
    // Our end of stream ends the handler's loop; it then closes its side.
    writer.write_eof();
    let rest = reader.read_to_end().await?;
    if !rest.is_empty() {
        return Err(format!(
            "client {id}: {} unexpected bytes after the echoes",
            rest.len()
        )
        .into());
    }
    Ok(LINES)
}

/// The self-check; `Err` says what went wrong.
async fn self_check() -> Result<(), BoxError> {
    let server = start("127.0.0.1:0", false).await?;
    let addr = server.local_addrs()[0]
        .as_inet()
        .ok_or("the server has no IP address")?;
    let port = addr.port();
    println!(
        "echo server on {addr}: {CLIENTS} clients, at most {IN_FLIGHT} at once, {LINES} lines each"
    );

    // 1. The clients, gathered in a task group under one deadline: the first failure
    //    cancels the rest and comes back in the error group.
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let lines = timeout(
        CHECK_DEADLINE,
        task_group(|tg| async move {
            let mut handles = Vec::with_capacity(CLIENTS);
            for id in 0..CLIENTS {
                handles
                    .push(tg.spawn_named(format!("client {id}"), client(id, port, limit.clone()))?);
            }
            let mut lines = 0;
            for h in handles {
                lines += h.await?;
            }
            Ok::<_, BoxError>(lines)
        }),
    )
    .await
    .map_err(|_| format!("the clients did not finish within {CHECK_DEADLINE:?}"))??;
    let elapsed = started.elapsed();
    println!(
        "  ok: {CLIENTS} clients, {lines} lines echoed byte for byte in {:.0?}",
        elapsed
    );

    // 2. Graceful shutdown: one client still talking when the server closes, one idle.
    let (mut idle_r, idle_w) = open_connection("127.0.0.1", port).await?;
    let (mut late_r, late_w) = open_connection("127.0.0.1", port).await?;
    for w in [&idle_w, &late_w] {
        w.write(b"hello\n");
        w.drain().await?;
    }
    for r in [&mut idle_r, &mut late_r] {
        expect_eq(r.readline().await?, b"hello\n", "the first echo")?;
    }
    let lingering = ringleader::spawn(async move {
        // Starts talking again after the server stopped accepting, within the grace.
        ringleader::time::sleep(CHECK_GRACE / 5).await;
        late_w.write(b"one more\n");
        late_w.drain().await?;
        expect_eq(late_r.readline().await?, b"one more\n", "the late echo")?;
        late_w.write_eof();
        expect_eq(
            late_r.read_to_end().await?,
            b"",
            "end of stream after the late echo",
        )?;
        Ok::<_, BoxError>(())
    });
    let closing = Instant::now();
    server.shutdown(CHECK_GRACE).await;
    let took = closing.elapsed();
    lingering.await??;
    let refused = open_connection("127.0.0.1", port).await;
    if refused.is_ok() {
        return Err("a connection was accepted after the shutdown".into());
    }
    // The idle connection was cut off: its handler dropped, so its socket is closed.
    let cut = timeout(Duration::from_secs(5), idle_r.read_to_end())
        .await
        .map_err(|_| "the idle connection stayed open after the shutdown")?;
    drop(idle_w);
    if cut.is_ok_and(|rest| !rest.is_empty()) {
        return Err("the idle connection got bytes it did not ask for".into());
    }
    let stats = server.stats();
    println!(
        "  ok: shutdown took {took:.0?} (grace {CHECK_GRACE:?}); the lingering client finished, the idle one was cut off"
    );
    let want = (CLIENTS as u64 + 2, CLIENTS as u64 + 1, 0, 0, 1);
    let got = (
        stats.accepted,
        stats.completed,
        stats.failed,
        stats.panicked,
        stats.cancelled,
    );
    if got != want {
        return Err(format!(
            "server stats (accepted, completed, failed, panicked, cancelled): got {got:?}, want {want:?}"
        )
        .into());
    }
    println!(
        "summary: {CLIENTS} clients, {lines} lines, {:.0?} of echoing; {} connections accepted, {} completed, {} cut off at shutdown",
        elapsed, stats.accepted, stats.completed, stats.cancelled
    );
    Ok(())
}

fn expect_eq(got: Vec<u8>, want: &[u8], what: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {:?}, want {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want)
        ))
    }
}

#[ringleader::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => self_check().await.map_err(|e| e.to_string()),
        ["--serve", addr] => serve(addr).await,
        _ => Err("usage: echo_server [--serve ADDR]".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("echo_server: {msg}");
            ExitCode::FAILURE
        }
    }
}
