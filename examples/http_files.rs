//! A small HTTP/1.1 static file server written the asyncio way: `start_server`, each
//! request head read with `readuntil` under a keep-alive timeout, file bodies sent with
//! `StreamWriter::sendfile` (zero copy, in order with the headers written before them),
//! single byte ranges, and a graceful shutdown on Ctrl-C.
//!
//! ```sh
//! cargo run --release --example http_files -- --serve 127.0.0.1:8080 DIR   # until Ctrl-C
//! cargo run --release --example http_files                                # self-check
//! ```
//!
//! It serves `GET` and `HEAD` for the files under `DIR` (a directory's `index.html`), with
//! keep-alive (HTTP/1.1's default; HTTP/1.0 closes unless asked), pipelined requests, and
//! one `Range: bytes=...` range. Bad input gets its status: 400 (a malformed request, a
//! path that leaves the root, a request body), 404, 405, 416, 431 (a head over 16 KiB),
//! 505; the connection is closed where the stream can no longer be trusted. Symbolic
//! links under `DIR` are followed.
//!
//! With no arguments it checks itself against a temporary directory: concurrent clients
//! fetch a multi-MiB file over keep-alive connections with every byte compared, then
//! ranges, `HEAD`, pipelining, every error status and the idle timeout are checked, and
//! the server is shut down gracefully. It prints a summary and exits 0, or non-zero with
//! the reason.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringleader::fs::File;
use ringleader::signal::{signal, SignalKind};
use ringleader::streams::{
    open_connection, start_server, ReadError, Server, StreamReader, StreamWriter,
};
use ringleader::taskgroup::{task_group, timeout, BoxError};

/// The longest request head accepted (request line and headers).
const HEAD_LIMIT: usize = 16 * 1024;
/// How long a keep-alive connection may sit idle between requests when serving.
const SERVE_IDLE: Duration = Duration::from_secs(15);
/// How long open connections get to finish once the server stops accepting.
const SERVE_GRACE: Duration = Duration::from_secs(5);

/// What the handlers share: where the files are, and the idle timeout.
struct Site {
    root: PathBuf,
    idle: Duration,
}

/// A response status: code and reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Status(u16, &'static str);

const OK: Status = Status(200, "OK");
const PARTIAL: Status = Status(206, "Partial Content");
const BAD_REQUEST: Status = Status(400, "Bad Request");
const FORBIDDEN: Status = Status(403, "Forbidden");
const NOT_FOUND: Status = Status(404, "Not Found");
const NOT_ALLOWED: Status = Status(405, "Method Not Allowed");
const NOT_SATISFIABLE: Status = Status(416, "Range Not Satisfiable");
const HEAD_TOO_LARGE: Status = Status(431, "Request Header Fields Too Large");
const BAD_VERSION: Status = Status(505, "HTTP Version Not Supported");

/// One connection: requests one after the other until the client closes, asks to close,
/// goes idle, or sends something the stream cannot be trusted after.
async fn connection(
    site: Arc<Site>,
    mut reader: StreamReader,
    writer: StreamWriter,
) -> io::Result<()> {
    reader.set_limit(HEAD_LIMIT);
    loop {
        let head = match timeout(site.idle, reader.readuntil(b"\r\n\r\n")).await {
            // Idle between requests: close, as servers do.
            Err(_elapsed) => break,
            Ok(Ok(head)) => head,
            // The client closed (between requests, or half-way through a head).
            Ok(Err(ReadError::IncompleteRead(_))) => break,
            Ok(Err(ReadError::LimitOverrun(_))) => {
                error_response(&writer, HEAD_TOO_LARGE, false, &[]);
                break;
            }
            Ok(Err(ReadError::Io(e))) => return Err(e),
        };
        let keep_alive = respond(&site, &head, &writer).await?;
        // Backpressure: a client that pipelines without reading is not read from.
        writer.drain().await?;
        if !keep_alive {
            break;
        }
    }
    writer.close();
    writer.wait_closed().await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    Http10,
    Http11,
}

/// A parsed request head.
struct Request<'a> {
    method: &'a str,
    target: &'a str,
    version: Version,
    headers: Vec<(&'a str, &'a str)>,
}

impl Request<'_> {
    /// A header's value (names are case-insensitive), the first if repeated.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Parses a request head (ending in the blank line).
fn parse(head: &[u8]) -> Result<Request<'_>, Status> {
    let text = std::str::from_utf8(head).map_err(|_| BAD_REQUEST)?;
    let mut lines = text.trim_end_matches("\r\n").split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_REQUEST);
    };
    let version = match version {
        "HTTP/1.1" => Version::Http11,
        "HTTP/1.0" => Version::Http10,
        v if v.starts_with("HTTP/") => return Err(BAD_VERSION),
        _ => return Err(BAD_REQUEST),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(BAD_REQUEST);
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(BAD_REQUEST)?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(BAD_REQUEST);
        }
        headers.push((name, value.trim()));
    }
    Ok(Request {
        method,
        target,
        version,
        headers,
    })
}

/// Answers one request; whether the connection may carry another.
async fn respond(site: &Site, head: &[u8], writer: &StreamWriter) -> io::Result<bool> {
    let req = match parse(head) {
        Ok(req) => req,
        Err(status) => {
            error_response(writer, status, false, &[]);
            return Ok(false);
        }
    };
    let keep_alive = match (req.version, req.header("connection")) {
        (_, Some(v)) if v.eq_ignore_ascii_case("close") => false,
        (Version::Http10, Some(v)) => v.eq_ignore_ascii_case("keep-alive"),
        (Version::Http10, None) => false,
        (Version::Http11, _) => true,
    };
    // A body we would have to skip: refuse it rather than misread it as the next request.
    let has_body = req.header("transfer-encoding").is_some()
        || req.header("content-length").is_some_and(|v| v != "0");
    if has_body {
        error_response(writer, BAD_REQUEST, false, &[]);
        return Ok(false);
    }
    let head_only = match req.method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            error_response(writer, NOT_ALLOWED, keep_alive, &[("Allow", "GET, HEAD")]);
            return Ok(keep_alive);
        }
    };
    let (file, len, path) = match open_target(&site.root, req.target).await {
        Ok(found) => found,
        Err(status) => {
            error_response(writer, status, keep_alive, &[]);
            return Ok(keep_alive);
        }
    };
    let (status, start, count) = match req.header("range").and_then(|r| byte_range(r, len)) {
        None => (OK, 0, len),
        Some(Ok((start, end))) => (PARTIAL, start, end - start + 1),
        Some(Err(())) => {
            let unsatisfied = format!("bytes */{len}");
            error_response(
                writer,
                NOT_SATISFIABLE,
                keep_alive,
                &[("Content-Range", &unsatisfied)],
            );
            return Ok(keep_alive);
        }
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {count}\r\nAccept-Ranges: bytes\r\n",
        status.0,
        status.1,
        content_type(&path)
    );
    if status == PARTIAL {
        head.push_str(&format!(
            "Content-Range: bytes {start}-{}/{len}\r\n",
            start + count - 1
        ));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    writer.write(head.as_bytes());
    if head_only || count == 0 {
        return Ok(keep_alive);
    }
    // The headers are buffered; sendfile sends them first, then the file, zero copy.
    let sent = writer.sendfile(&file, start, Some(count as usize)).await?;
    if sent as u64 != count {
        // The file shrank under us: the response is short, so the stream is out of step.
        return Ok(false);
    }
    Ok(keep_alive)
}

/// Opens the file a request target names under `root`: the file, its length and its path,
/// or the status to answer with.
async fn open_target(root: &Path, target: &str) -> Result<(File, u64, PathBuf), Status> {
    let mut path = resolve(root, target)?;
    let not_found = |e: io::Error| match e.kind() {
        io::ErrorKind::PermissionDenied => FORBIDDEN,
        _ => NOT_FOUND,
    };
    if ringleader::fs::metadata(&path)
        .await
        .map_err(not_found)?
        .is_dir()
    {
        path.push("index.html");
    }
    let file = File::open(&path).await.map_err(not_found)?;
    let meta = file.metadata().await.map_err(not_found)?;
    if !meta.is_file() {
        return Err(NOT_FOUND);
    }
    Ok((file, meta.len(), path))
}

/// Maps a request target (`/a/b%20c?query`) to a path under `root`. Refuses what could
/// leave it (`..`) and what no file name holds (NUL).
fn resolve(root: &Path, target: &str) -> Result<PathBuf, Status> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(BAD_REQUEST);
    }
    let mut out = root.to_path_buf();
    for segment in path.split('/') {
        let name = percent_decode(segment).ok_or(BAD_REQUEST)?;
        match &name[..] {
            b"" | b"." => {}
            b".." => return Err(BAD_REQUEST),
            name if name.contains(&0) || name.contains(&b'/') => return Err(BAD_REQUEST),
            name => out.push(std::ffi::OsStr::from_bytes(name)),
        }
    }
    Ok(out)
}

/// `%XX` escapes decoded; `None` if one is malformed.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// One `bytes=` range of a `len`-byte file: `None` to ignore the header (not one range we
/// understand: the whole file is sent, as the standard allows), `Some(Err(()))` if it is
/// unsatisfiable, else the first and last byte.
fn byte_range(header: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let range = match (first.trim(), last.trim()) {
        ("", "") => return None,
        // The last `n` bytes.
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len - 1)
        }
        (a, b) => {
            let a: u64 = a.parse().ok()?;
            let b: u64 = if b.is_empty() {
                u64::MAX
            } else {
                b.parse().ok()?
            };
            if b < a {
                return None;
            }
            if a >= len {
                return Some(Err(()));
            }
            (a, b.min(len - 1))
        }
    };
    Some(Ok(range))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Writes an error response with a short text body and `extra` headers.
fn error_response(writer: &StreamWriter, status: Status, keep_alive: bool, extra: &[(&str, &str)]) {
    let body = format!("{} {}\n", status.0, status.1);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
        status.0,
        status.1,
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    writer.write(head.as_bytes());
    writer.write(body.as_bytes());
}

/// Starts serving `site` on `addr`. Handler errors (a client resetting its connection...)
/// are reported on stderr when `report` is set; the server counts them either way.
async fn start(site: Arc<Site>, addr: &str, report: bool) -> io::Result<Server> {
    start_server(
        move |reader: StreamReader, writer: StreamWriter| {
            let site = site.clone();
            async move {
                let peer = reader.peer_addr().map(|a| a.to_string());
                let result = connection(site, reader, writer).await;
                if let (Err(e), true) = (&result, report) {
                    eprintln!("{}: {e}", peer.as_deref().unwrap_or("(unknown peer)"));
                }
                result
            }
        },
        addr,
    )
    .await
}

/// `--serve ADDR DIR`: serves until Ctrl-C, then shuts down gracefully; a second Ctrl-C
/// cuts the open connections off at once.
async fn serve(addr: &str, dir: &str) -> Result<(), String> {
    let root = PathBuf::from(dir);
    match ringleader::fs::metadata(&root).await {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("{dir} is not a directory")),
        Err(e) => return Err(format!("{dir}: {e}")),
    }
    // Listening for SIGINT makes it ours: `run` then leaves it alone, so the shutdown can
    // be two-staged (see examples/echo_server.rs).
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot listen for Ctrl-C: {e}"))?;
    let site = Arc::new(Site {
        root,
        idle: SERVE_IDLE,
    });
    let server = start(site, addr, true)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    for a in server.local_addrs() {
        println!("serving {dir} on http://{a}/ (Ctrl-C to stop)");
    }
    let failed = ringleader::select! {
        result = server.serve_forever() => result.err(),
        _ = sigint.recv() => None,
        _ = ringleader::cancelled() => None,
    };
    if let Some(e) = &failed {
        eprintln!("the server stopped accepting: {e}");
    }
    println!(
        "shutting down: {} connection(s) open, giving them up to {SERVE_GRACE:?}",
        server.stats().active
    );
    ringleader::select! {
        () = server.shutdown(SERVE_GRACE) => {}
        _ = sigint.recv() => {
            println!("second Ctrl-C: closing every connection now");
            server.shutdown(Duration::ZERO).await;
        }
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

// ---- the self-check ----

/// The self-check's shape.
const CLIENTS: usize = 32;
const ROUNDS: usize = 3;
const BIG: usize = (3 << 20) + 13;
const CHECK_IDLE: Duration = Duration::from_millis(300);
const CHECK_DEADLINE: Duration = Duration::from_secs(30);

/// A response as a client sees it.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (its body too, unless it answers a `HEAD`).
async fn read_response(reader: &mut StreamReader, head_only: bool) -> Result<Response, BoxError> {
    let head = reader.readuntil(b"\r\n\r\n").await?;
    let text = String::from_utf8(head)?;
    let mut lines = text.trim_end_matches("\r\n").split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (n, v) = line.split_once(':').ok_or("bad header line")?;
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = response
        .header("content-length")
        .ok_or("no Content-Length")?
        .parse()?;
    if !head_only {
        response.body = reader.readexactly(len).await?;
    }
    Ok(response)
}

/// Sends `raw` and reads the response.
async fn exchange(
    reader: &mut StreamReader,
    writer: &StreamWriter,
    raw: &str,
) -> Result<Response, BoxError> {
    writer.write(raw.as_bytes());
    writer.drain().await?;
    read_response(reader, raw.starts_with("HEAD ")).await
}

fn expect(what: &str, ok: bool) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: not as expected").into())
    }
}

/// Deterministic bytes (a 64-bit LCG), so a misplaced chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

/// One client: `ROUNDS` full fetches of the big file, a range, `HEAD` and the index, all
/// on one keep-alive connection.
async fn client(port: u16, big: Arc<Vec<u8>>) -> Result<usize, BoxError> {
    let (mut r, w) = open_connection("127.0.0.1", port).await?;
    let mut bytes = 0;
    for _ in 0..ROUNDS {
        let res = exchange(&mut r, &w, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        expect("GET /big.bin status", res.status == 200)?;
        expect("GET /big.bin body, byte for byte", res.body[..] == big[..])?;
        bytes += res.body.len();
    }
    let res = exchange(
        &mut r,
        &w,
        "GET /big.bin HTTP/1.1\r\nRange: bytes=1000000-1999999\r\n\r\n",
    )
    .await?;
    expect("a range's status", res.status == 206)?;
    expect("a range's body", res.body[..] == big[1_000_000..2_000_000])?;
    let want = format!("bytes 1000000-1999999/{}", big.len());
    expect(
        "Content-Range",
        res.header("content-range") == Some(want.as_str()),
    )?;
    let res = exchange(
        &mut r,
        &w,
        "GET /big.bin HTTP/1.1\r\nRange: bytes=-10\r\n\r\n",
    )
    .await?;
    expect(
        "a suffix range",
        res.status == 206 && res.body[..] == big[big.len() - 10..],
    )?;
    let res = exchange(&mut r, &w, "HEAD /big.bin HTTP/1.1\r\n\r\n").await?;
    let len = big.len().to_string();
    expect(
        "HEAD",
        res.status == 200 && res.header("content-length") == Some(len.as_str()),
    )?;
    let res = exchange(&mut r, &w, "GET / HTTP/1.1\r\n\r\n").await?;
    expect(
        "GET / (the index)",
        res.status == 200
            && res.body == b"<h1>ringleader</h1>\n"
            && res.header("content-type") == Some("text/html; charset=utf-8"),
    )?;
    w.close();
    w.wait_closed().await?;
    Ok(bytes)
}

/// Sends `raw` on a fresh connection; the response, and whether the server then closed.
async fn one_shot(port: u16, raw: &[u8]) -> Result<(Response, bool), BoxError> {
    let (mut r, w) = open_connection("127.0.0.1", port).await?;
    w.write(raw);
    w.drain().await?;
    let res = read_response(&mut r, false).await?;
    // Closed by the server: end of stream at once. Kept alive: the idle timeout closes it
    // later, so wait a little less than that.
    let closed = matches!(
        timeout(CHECK_IDLE / 2, r.read(1)).await,
        Ok(Ok(ref rest)) if rest.is_empty()
    );
    Ok((res, closed))
}

/// The self-check; `Err` says what went wrong.
async fn self_check() -> Result<(), BoxError> {
    let root = std::env::temp_dir().join(format!("ringleader-http-files-{}", std::process::id()));
    let result = check_in(&root).await;
    let _ = ringleader::fs::remove_dir_all(&root).await;
    result
}

async fn check_in(root: &Path) -> Result<(), BoxError> {
    let big = Arc::new(pattern(BIG));
    ringleader::fs::create_dir_all(root.join("sub")).await?;
    ringleader::fs::write(root.join("big.bin"), big.to_vec()).await?;
    ringleader::fs::write(root.join("index.html"), b"<h1>ringleader</h1>\n".to_vec()).await?;
    ringleader::fs::write(root.join("sub/a note.txt"), b"hello\n".to_vec()).await?;
    let site = Arc::new(Site {
        root: root.to_path_buf(),
        idle: CHECK_IDLE,
    });
    let server = start(site, "127.0.0.1:0", false).await?;
    let addr = server.local_addrs()[0].as_inet().ok_or("no IP address")?;
    let port = addr.port();
    println!("http_files on http://{addr}/ serving {}", root.display());

    // 1. Concurrent keep-alive clients, in one task group under one deadline.
    let started = Instant::now();
    let bytes = timeout(
        CHECK_DEADLINE,
        task_group(|tg| async move {
            let handles = (0..CLIENTS)
                .map(|_| tg.spawn(client(port, big.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            let mut bytes = 0;
            for h in handles {
                bytes += h.await?;
            }
            Ok::<_, BoxError>(bytes)
        }),
    )
    .await
    .map_err(|_| format!("the clients did not finish within {CHECK_DEADLINE:?}"))??;
    let elapsed = started.elapsed();
    println!(
        "  ok: {CLIENTS} keep-alive clients, {} MiB of files compared byte for byte in {elapsed:.0?} (+ ranges, HEAD, the index)",
        bytes >> 20
    );

    // 2. Bad input: each gets its status; the stream is closed where it cannot go on.
    let cases: [(&str, &[u8], u16, bool); 9] = [
        ("a missing file", b"GET /nope HTTP/1.1\r\n\r\n", 404, false),
        (
            "a path leaving the root",
            b"GET /sub/../../etc/passwd HTTP/1.1\r\n\r\n",
            400,
            false,
        ),
        ("a bad escape", b"GET /%zz HTTP/1.1\r\n\r\n", 400, false),
        (
            "POST",
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            405,
            false,
        ),
        (
            "a request body",
            b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            400,
            true,
        ),
        (
            "an unsatisfiable range",
            b"GET /big.bin HTTP/1.1\r\nRange: bytes=99999999-\r\n\r\n",
            416,
            false,
        ),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\n\r\n", 505, true),
        ("garbage", b"hello there\r\n\r\n", 400, true),
        (
            "HTTP/1.0 without keep-alive",
            b"GET /sub/a%20note.txt HTTP/1.0\r\n\r\n",
            200,
            true,
        ),
    ];
    for (what, raw, status, closes) in cases {
        let (res, closed) = one_shot(port, raw).await?;
        if res.status != status || closed != closes {
            return Err(format!(
                "{what}: got {} (connection {}), want {status} (connection {})",
                res.status,
                if closed { "closed" } else { "kept" },
                if closes { "closed" } else { "kept" },
            )
            .into());
        }
    }
    let mut huge = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..1000 {
        huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(20)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let (res, closed) = one_shot(port, &huge).await?;
    expect(
        "a 30 KiB head gets 431 and a close",
        res.status == 431 && closed,
    )?;
    println!("  ok: 404, 400 (x4), 405, 416, 431, 505, and HTTP/1.0's close");

    // 3. Pipelining: three requests in one write, three responses in order.
    let (mut r, w) = open_connection("127.0.0.1", port).await?;
    w.write(b"GET /sub/a%20note.txt HTTP/1.1\r\n\r\nHEAD /big.bin HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    w.drain().await?;
    let first = read_response(&mut r, false).await?;
    let second = read_response(&mut r, true).await?;
    let third = read_response(&mut r, false).await?;
    expect(
        "pipelined responses in order",
        first.body == b"hello\n" && second.status == 200 && third.body == b"<h1>ringleader</h1>\n",
    )?;
    expect(
        "Connection: close honoured",
        r.read_to_end().await?.is_empty(),
    )?;
    println!("  ok: 3 pipelined requests answered in order, then closed as asked");

    // 4. An idle keep-alive connection is closed after the idle timeout.
    let (mut r, _w) = open_connection("127.0.0.1", port).await?;
    let idle_started = Instant::now();
    let rest = timeout(Duration::from_secs(10), r.read_to_end())
        .await
        .map_err(|_| "an idle connection stayed open")??;
    let idled = idle_started.elapsed();
    expect(
        "the idle connection closed silently",
        rest.is_empty() && idled >= CHECK_IDLE,
    )?;
    println!("  ok: an idle connection closed after {idled:.0?} (timeout {CHECK_IDLE:?})");

    // 5. Graceful shutdown: nothing open, so it is immediate; then no new connections.
    server.shutdown(Duration::from_secs(1)).await;
    expect(
        "no connection accepted after the shutdown",
        open_connection("127.0.0.1", port).await.is_err(),
    )?;
    let stats = server.stats();
    expect(
        "no handler failed or panicked",
        stats.failed == 0 && stats.panicked == 0,
    )?;
    println!(
        "summary: {} connections served, {} MiB sent with sendfile in {elapsed:.0?}; every check passed",
        stats.accepted,
        bytes >> 20
    );
    Ok(())
}

#[ringleader::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => self_check().await.map_err(|e| e.to_string()),
        ["--serve", addr, dir] => serve(addr, dir).await,
        _ => Err("usage: http_files [--serve ADDR DIR]".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("http_files: {msg}");
            ExitCode::FAILURE
        }
    }
}
