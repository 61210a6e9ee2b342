//! A concurrent TCP connect scanner, written the asyncio way: every connect is a child of one
//! task group, a semaphore bounds the connects in flight, and each connect has its own
//! timeout (asyncio's `async with sem:` + `asyncio.timeout()` around `open_connection`).
//!
//! ```text
//! cargo run --release --example port_scan -- 127.0.0.1 1-1024
//! cargo run --release --example port_scan -- localhost 8000-8100 --concurrency 50 --timeout-ms 300
//! cargo run --release --example port_scan      # no arguments: the self-check
//! ```
//!
//! With no host and range it checks itself: it listens on a few ephemeral ports of
//! 127.0.0.1, keeps a few ports it knows are closed (bound, then dropped) and one whose
//! accept queue is full (so a connect to it can only time out), scans exactly those ports and
//! checks every verdict, and that each listener accepted the scanner's connection.
//!
//! Exit status: 0 on success, 1 if the scan or the self-check fails, 2 on bad input.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringleader::net::{lookup_host, TcpListener, TcpStream};
use ringleader::sync::Semaphore;
use ringleader::taskgroup::{task_group, timeout, BoxError};

const USAGE: &str = "usage: port_scan [HOST START-END] [--concurrency N] [--timeout-ms N]
  HOST         a name or an address (resolved with ringleader::net::lookup_host)
  START-END    the ports to scan, 1-65535 (a single PORT is fine too)
  with no HOST and range: a self-check against listeners of its own on 127.0.0.1";

/// What one connect attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Open,
    Refused,
    TimedOut,
    /// Any other failure, with the OS's message (unreachable network, out of fds...).
    Error(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Open => f.write_str("open"),
            Verdict::Refused => f.write_str("refused"),
            Verdict::TimedOut => f.write_str("timed out"),
            Verdict::Error(msg) => write!(f, "error: {msg}"),
        }
    }
}

/// Settings shared by a real scan and the self-check.
#[derive(Debug, Clone, Copy)]
struct Limits {
    concurrency: usize,
    connect_timeout: Duration,
}

#[derive(Debug)]
enum Mode {
    Scan {
        host: String,
        first: u16,
        last: u16,
        limits: Limits,
    },
    SelfCheck(Limits),
    Help,
}

/// Parses `START-END` (or one `PORT`) into an inclusive range of valid ports.
fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let port = |s: &str| -> Result<u16, String> {
        match s.trim().parse::<u16>() {
            Ok(0) => Err(format!(
                "port 0 is not a port you can connect to (in {text:?})"
            )),
            Ok(p) => Ok(p),
            Err(_) => Err(format!("{s:?} is not a port number 1-65535 (in {text:?})")),
        }
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(text)?;
            (p, p)
        }
    };
    if first > last {
        return Err(format!("the range {text:?} runs backwards"));
    }
    Ok((first, last))
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Mode, String> {
    let mut limits = Limits {
        concurrency: 100,
        connect_timeout: Duration::from_millis(1000),
    };
    let mut positional = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Both `--opt N` and `--opt=N`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<u64, String> {
            let v = inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs {what}"))?;
            match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{name} needs {what}, not {v:?}")),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Mode::Help),
            "--concurrency" => {
                let n = value("a positive number of connects")?;
                limits.concurrency =
                    usize::try_from(n).map_err(|_| "--concurrency is too large")?;
            }
            "--timeout-ms" => {
                limits.connect_timeout = Duration::from_millis(value("milliseconds > 0")?)
            }
            s if s.starts_with('-') && s.len() > 1 => return Err(format!("unknown option {s:?}")),
            _ => positional.push(arg),
        }
    }
    match positional.as_slice() {
        [] => Ok(Mode::SelfCheck(limits)),
        [host, range] => {
            let (first, last) = parse_range(range)?;
            Ok(Mode::Scan {
                host: host.clone(),
                first,
                last,
                limits,
            })
        }
        [_] => Err("a HOST needs a port range (START-END)".to_owned()),
        _ => Err(format!("too many arguments: {positional:?}")),
    }
}

/// One connect, bounded by its own timeout.
async fn probe(addr: SocketAddr, limit: Duration) -> Verdict {
    match timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            // Connecting to a closed port in the ephemeral range on the same host can, rarely,
            // pick that very port as the source and "connect" to itself (TCP simultaneous
            // open). Nothing listens there, so it is closed, not open.
            let to_itself = stream.local_addr().ok() == Some(addr);
            // Close through the ring; an error closing a probe says nothing about the port.
            let _ = stream.close().await;
            if to_itself {
                Verdict::Refused
            } else {
                Verdict::Open
            }
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Verdict::Refused,
        Ok(Err(e)) => Verdict::Error(e.to_string()),
        Err(_elapsed) => Verdict::TimedOut,
    }
}

/// Scans `ports` of `ip`: one child task per port in one task group, at most
/// `limits.concurrency` of them alive at once. The verdicts come back sorted by port.
async fn scan(ip: IpAddr, ports: Vec<u16>, limits: Limits) -> Result<Vec<(u16, Verdict)>, String> {
    let permits = Arc::new(Semaphore::new(limits.concurrency));
    task_group(|tg| async move {
        let mut probes = Vec::with_capacity(ports.len());
        for port in ports {
            // Taking the permit before spawning bounds the live tasks as well as the connects
            // in flight: a 65535-port scan never holds more than `concurrency` sockets or tasks.
            let permit = permits.clone().acquire_owned().await?;
            probes.push(tg.spawn_named(format!("probe {port}"), async move {
                let verdict = probe(SocketAddr::new(ip, port), limits.connect_timeout).await;
                drop(permit); // the next probe may start
                Ok::<_, BoxError>((port, verdict))
            })?);
        }
        let mut verdicts = Vec::with_capacity(probes.len());
        for probe in probes {
            verdicts.push(probe.await?);
        }
        verdicts.sort_by_key(|&(port, _)| port);
        Ok::<_, BoxError>(verdicts)
    })
    .await
    .map_err(|errors| format!("the scan failed: {errors}"))
}

/// Prints the verdicts as a table, consecutive ports with the same verdict on one row (a
/// scan of 1-65535 is a few rows, not 65535), then the counts.
fn print_report(target: &str, verdicts: &[(u16, Verdict)], elapsed: Duration) {
    println!("{:<13} STATE", "PORT");
    let mut i = 0;
    while i < verdicts.len() {
        let (first, ref verdict) = verdicts[i];
        let mut j = i;
        while j + 1 < verdicts.len()
            && verdicts[j + 1].1 == *verdict
            && verdicts[j + 1].0 == verdicts[j].0 + 1
        {
            j += 1;
        }
        let ports = if j == i {
            first.to_string()
        } else {
            format!("{first}-{}", verdicts[j].0)
        };
        println!("{ports:<13} {verdict}");
        i = j + 1;
    }
    let count = |f: fn(&Verdict) -> bool| verdicts.iter().filter(|(_, v)| f(v)).count();
    println!(
        "{target}: {} ports in {:.0?}: {} open, {} refused, {} timed out, {} other errors",
        verdicts.len(),
        elapsed,
        count(|v| *v == Verdict::Open),
        count(|v| *v == Verdict::Refused),
        count(|v| *v == Verdict::TimedOut),
        count(|v| matches!(v, Verdict::Error(_))),
    );
}

/// Resolves `host` (names on the blocking pool, literals at once); IPv4 first, as most
/// hosts that resolve to both are scanned on IPv4.
async fn resolve(host: &str) -> Result<IpAddr, String> {
    let addrs: Vec<SocketAddr> = lookup_host((host, 0))
        .await
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(SocketAddr::ip)
        .ok_or_else(|| format!("{host:?} resolved to no address"))
}

/// A real scan. Bad input is `Err((2, ...))`, a failed scan `Err((1, ...))`.
async fn run_scan(host: String, first: u16, last: u16, limits: Limits) -> Result<(), (u8, String)> {
    let ip = resolve(&host).await.map_err(|msg| (2, msg))?;
    println!(
        "scanning {host} ({ip}) ports {first}-{last}, {} connects at a time, {:?} each",
        limits.concurrency, limits.connect_timeout
    );
    let started = Instant::now();
    let verdicts = scan(ip, (first..=last).collect(), limits)
        .await
        .map_err(|msg| (1, msg))?;
    print_report(&host, &verdicts, started.elapsed());
    Ok(())
}

/// The self-check: scans listeners of its own and ports it knows are closed.
async fn self_check(limits: Limits) -> Result<(), String> {
    // A short timeout keeps the check quick (the full port below can only end by it), yet
    // leaves a loaded machine ample time for the loopback connects that must not time out.
    let limits = Limits {
        connect_timeout: limits.connect_timeout.min(Duration::from_millis(500)),
        ..limits
    };
    let ip = resolve("127.0.0.1").await?;
    let bind = || async {
        TcpListener::bind((ip, 0))
            .await
            .map_err(|e| format!("cannot listen on {ip}: {e}"))
    };
    let port_of = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.port())
            .map_err(|e| format!("no local address: {e}"))
    };

    let mut listeners = Vec::new();
    for _ in 0..4 {
        listeners.push(bind().await?);
    }
    let open: Vec<u16> = listeners.iter().map(port_of).collect::<Result<_, _>>()?;
    let mut closed = Vec::new();
    for _ in 0..3 {
        let listener = bind().await?;
        closed.push(port_of(&listener)?);
        drop(listener); // closed now: a connect to it is refused
    }
    // A listener with a backlog of 0 takes one connection into its accept queue; with that
    // slot held and nobody accepting, Linux drops further SYNs, so the scanner's connect
    // can only time out.
    let full = TcpListener::builder()
        .backlog(0)
        .bind((ip, 0))
        .await
        .map_err(|e| format!("cannot listen on {ip}: {e}"))?;
    let full_port = port_of(&full)?;
    let _holder = TcpStream::connect((ip, full_port))
        .await
        .map_err(|e| format!("cannot fill the accept queue of port {full_port}: {e}"))?;
    // The connection joins the accept queue when the listener's side handles our final ACK,
    // in the kernel's loopback softirq, which may run just after our connect completes.
    // Nothing reports that moment to user space (short of TCP_INFO), so give it ample time.
    ringleader::time::sleep(Duration::from_millis(20)).await;

    let mut ports: Vec<u16> = open.iter().chain(&closed).copied().collect();
    ports.push(full_port);
    println!(
        "self-check: listening on {open:?}, closed {closed:?}, accept queue full on {full_port}"
    );

    let started = Instant::now();
    // Each listener accepts in a child of its own while the scan runs beside it, so a
    // connect that the scanner reports open is also seen arriving at the listener.
    let (verdicts, accepted) = task_group(|tg| async move {
        let mut acceptors = Vec::new();
        for listener in listeners {
            acceptors.push(tg.spawn(async move {
                let port = listener.local_addr()?.port();
                match timeout(Duration::from_secs(5), listener.accept()).await {
                    Ok(accepted) => Ok::<_, BoxError>((port, accepted?.1)),
                    Err(_) => Err(format!("port {port} accepted nothing within 5 s").into()),
                }
            })?);
        }
        let verdicts = scan(ip, ports, limits).await?;
        let mut accepted = Vec::new();
        for acceptor in acceptors {
            accepted.push(acceptor.await?);
        }
        Ok::<_, BoxError>((verdicts, accepted))
    })
    .await
    .map_err(|errors| format!("the self-check's task group failed: {errors}"))?;
    print_report("self-check", &verdicts, started.elapsed());

    let verdict_of = |port: u16| verdicts.iter().find(|(p, _)| *p == port).map(|(_, v)| v);
    let mut failures = Vec::new();
    let mut expect = |port: u16, want: &Verdict| match verdict_of(port) {
        Some(got) if got == want => {}
        Some(got) => failures.push(format!("port {port}: expected {want}, got {got}")),
        None => failures.push(format!("port {port}: missing from the results")),
    };
    for &port in &open {
        expect(port, &Verdict::Open);
    }
    for &port in &closed {
        expect(port, &Verdict::Refused);
    }
    expect(full_port, &Verdict::TimedOut);
    if verdicts.len() != open.len() + closed.len() + 1 {
        failures.push(format!(
            "{} verdicts for {} ports",
            verdicts.len(),
            open.len() + closed.len() + 1
        ));
    }
    for (port, peer) in &accepted {
        if !peer.ip().is_loopback() {
            failures.push(format!("port {port} accepted a connection from {peer}"));
        }
    }
    drop(full);
    if failures.is_empty() {
        println!(
            "self-check passed: {} open, {} refused, 1 timed out, each listener saw its connect",
            open.len(),
            closed.len()
        );
        Ok(())
    } else {
        Err(format!("self-check FAILED:\n  {}", failures.join("\n  ")))
    }
}

fn main() -> ExitCode {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(msg) => {
            eprintln!("port_scan: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // ringleader::try_run is asyncio.run: a runtime for the root future, and Ctrl-C cancels it.
    let outcome = ringleader::try_run(async move {
        match mode {
            Mode::Help => {
                println!("{USAGE}");
                Ok(())
            }
            Mode::Scan {
                host,
                first,
                last,
                limits,
            } => run_scan(host, first, last, limits).await,
            Mode::SelfCheck(limits) => self_check(limits).await.map_err(|msg| (1, msg)),
        }
    });
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err((code, msg))) => {
            eprintln!("port_scan: {msg}");
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("port_scan: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
