//! A line-protocol chat server written the asyncio way: `start_server` handlers, one
//! `broadcast` channel as the room, and a two-armed select per connection (read the
//! client's lines, forward the room's), with slow readers disconnected and a graceful
//! shutdown on Ctrl-C.
//!
//! ```sh
//! cargo run --release --example chat -- --serve 127.0.0.1:7777   # until Ctrl-C
//! cargo run --release --example chat                             # self-check
//! ```
//!
//! The protocol (try it with `nc 127.0.0.1 7777`): a client sends `NICK name`, then lines;
//! each line goes to every other client as `name: text`. `/quit` leaves. Lines from the
//! server start with `*`: the welcome (who is here), join and leave notices, errors.
//! A client that stops reading is disconnected once its socket and write buffer are full
//! and stay full (or once it falls a whole channel behind), with a notice to it and to the
//! room. On Ctrl-C the server stops accepting, tells everyone it is shutting down, and
//! exits 0 once every connection is closed (a second Ctrl-C cuts them off at once).
//!
//! With no arguments it checks itself: it serves on 127.0.0.1:0 and runs five scripted
//! clients in one task group under a timeout. alice, bob, carol and dave join one after
//! another, chat at the same time, and check that each receives exactly the join notices,
//! the others' lines (in each sender's order) and the leave notices the protocol says;
//! then sloth joins and stops reading while dave floods the room, until the server
//! disconnects sloth. It prints a transcript and exits 0, or non-zero with the mismatch.

use std::collections::{BTreeSet, HashMap};
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use ringleader::signal::{signal, SignalKind};
use ringleader::streams::{open_connection, start_server, ReadError, StreamReader, StreamWriter};
use ringleader::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use ringleader::sync::{Barrier, Event};
use ringleader::taskgroup::{task_group, timeout, BoxError};

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// What goes through the room's channel: a line for everyone but its sender, ready to
/// send (an `Arc`: every member's receiver clones it).
#[derive(Clone)]
struct Note {
    from: u64,
    line: Arc<str>,
}

/// The room: the channel every member subscribes to, and the nicks in use.
struct Room {
    notes: broadcast::Sender<Note>,
    nicks: Mutex<BTreeSet<String>>,
    next_id: AtomicU64,
    /// Set on shutdown: every session says goodbye and ends.
    closing: Event,
    /// How long a member's socket may refuse our writes before it counts as too slow.
    slow_after: Duration,
    /// How long a new connection has to send its `NICK`.
    login_within: Duration,
}

impl Room {
    /// `capacity` is how many lines a member may fall behind before it is dropped.
    fn new(capacity: usize, slow_after: Duration, login_within: Duration) -> Room {
        // The first receiver is not needed: members subscribe (sending with nobody
        // subscribed is an error we ignore).
        let (notes, _) = broadcast::channel(capacity);
        Room {
            notes,
            nicks: Mutex::new(BTreeSet::new()),
            next_id: AtomicU64::new(1),
            closing: Event::new(),
            slow_after,
            login_within,
        }
    }

    fn say(&self, from: u64, line: String) {
        // An error only means nobody else is here.
        let _ = self.notes.send(Note {
            from,
            line: line.into(),
        });
    }

    fn nicks(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // No code panics while holding it; if some did, the set is still consistent.
        self.nicks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A logged-in member; dropping it frees the nick, however the session ends.
struct Member<'a> {
    room: &'a Room,
    id: u64,
    nick: String,
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        self.room.nicks().remove(&self.nick);
    }
}

/// How a member's session ended.
enum End {
    /// The client sent `/quit`.
    Quit,
    /// The client hung up (or the connection failed).
    Gone(Option<io::Error>),
    /// The client does not read: its socket stayed full, or it fell a channel behind.
    TooSlow,
}

/// One connection, from `NICK` to goodbye.
async fn session(
    room: Arc<Room>,
    mut reader: StreamReader,
    writer: StreamWriter,
) -> io::Result<()> {
    let result = match first(room.closing.wait(), chat(&room, &mut reader, &writer)).await {
        Either::Left(()) => {
            writer.write(b"* server shutting down\n");
            Ok(())
        }
        Either::Right(result) => result,
    };
    // Sends what is buffered, then shuts the socket down. A client that does not read
    // does not hold the handler: after a while we stop waiting (the socket goes once the
    // peer reads or goes away; `writer.abort()` would drop it at once, with the notice).
    writer.close();
    match timeout(room.slow_after, writer.wait_closed()).await {
        Ok(closed) => result.and(closed),
        Err(_) => result,
    }
}

/// Logs the client in, then relays until it leaves; what the room hears about it.
async fn chat(room: &Room, reader: &mut StreamReader, writer: &StreamWriter) -> io::Result<()> {
    let Ok(login) = timeout(room.login_within, login(room, reader, writer)).await else {
        writer.write(b"* error: no NICK in time\n");
        return Ok(());
    };
    let Some(member) = login? else {
        return Ok(()); // gone before logging in
    };
    // Subscribed before the join notice goes out and before the welcome is written: every
    // line sent after the client sees its welcome reaches it.
    let mut notes = room.notes.subscribe();
    let others = {
        let nicks = room.nicks();
        let others: Vec<&str> = nicks
            .iter()
            .map(String::as_str)
            .filter(|n| *n != member.nick)
            .collect();
        if others.is_empty() {
            "nobody else".to_string()
        } else {
            others.join(", ")
        }
    };
    room.say(member.id, format!("* {} joined\n", member.nick));
    writer.write(format!("* welcome, {}! here: {others}\n", member.nick).as_bytes());

    // The select at the heart of a chat server: whichever side ends first ends the session
    // (the other is dropped; both are cancel safe).
    let end = match first(
        relay_in(room, &member, reader, writer),
        relay_out(room, &member, &mut notes, writer),
    )
    .await
    {
        Either::Left(end) | Either::Right(end) => end,
    };
    let nick = &member.nick;
    match end {
        End::Quit => {
            // Whatever the room said before the `/quit` still reaches the client.
            loop {
                match notes.try_recv() {
                    Ok(Note { from, line }) if from != member.id => {
                        writer.write(line.as_bytes());
                    }
                    Ok(_) => {}
                    Err(TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
            writer.write(b"* bye\n");
            room.say(member.id, format!("* {nick} left\n"));
            Ok(())
        }
        End::Gone(err) => {
            room.say(member.id, format!("* {nick} left\n"));
            err.map_or(Ok(()), Err)
        }
        End::TooSlow => {
            writer.write(b"* disconnected: too slow to read\n");
            room.say(member.id, format!("* {nick} was disconnected (too slow)\n"));
            Ok(())
        }
    }
}

/// Waits for a valid, free `NICK`; `None` if the client leaves first.
async fn login<'r>(
    room: &'r Room,
    reader: &mut StreamReader,
    writer: &StreamWriter,
) -> io::Result<Option<Member<'r>>> {
    loop {
        let Some(line) = read_text(reader, writer).await? else {
            return Ok(None);
        };
        let Some(nick) = line.strip_prefix("NICK ").map(str::trim) else {
            writer.write(b"* error: say NICK <name> first\n");
            continue;
        };
        let valid = (1..=16).contains(&nick.len())
            && nick
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            writer.write(b"* error: a nick is 1 to 16 letters, digits, '_' or '-'\n");
            continue;
        }
        if !room.nicks().insert(nick.to_string()) {
            writer.write(format!("* error: nick {nick} is taken\n").as_bytes());
            continue;
        }
        return Ok(Some(Member {
            room,
            id: room.next_id.fetch_add(1, Ordering::Relaxed),
            nick: nick.to_string(),
        }));
    }
}

/// The next line as text, without its line ending; `None` at end of stream. An overlong
/// line is refused (and skipped) here.
async fn read_text(reader: &mut StreamReader, writer: &StreamWriter) -> io::Result<Option<String>> {
    loop {
        match reader.readline().await {
            Ok(line) if line.is_empty() => return Ok(None),
            Ok(line) => {
                let text = String::from_utf8_lossy(&line);
                return Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()));
            }
            Err(ReadError::LimitOverrun(_)) => writer.write(b"* error: line too long\n"),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The client's lines, to the room.
async fn relay_in(
    room: &Room,
    member: &Member<'_>,
    reader: &mut StreamReader,
    writer: &StreamWriter,
) -> End {
    loop {
        let text = match read_text(reader, writer).await {
            Ok(Some(text)) => text,
            Ok(None) => return End::Gone(None),
            Err(e) => return End::Gone(Some(e)),
        };
        match text.as_str() {
            "/quit" => return End::Quit,
            "" => {}
            text => room.say(member.id, format!("{}: {text}\n", member.nick)),
        }
        // A burst of buffered lines is read without waiting; yielding now and then lets
        // this session's own `relay_out` (and everyone else's) keep up with the channel.
        ringleader::coop::consume_budget().await;
    }
}

/// The room's lines, to the client.
async fn relay_out(
    room: &Room,
    member: &Member<'_>,
    notes: &mut broadcast::Receiver<Note>,
    writer: &StreamWriter,
) -> End {
    loop {
        match notes.recv().await {
            Ok(Note { from, line }) => {
                if from == member.id {
                    continue;
                }
                writer.write(line.as_bytes());
                // `drain` waits only while the write buffer is above its high-water mark,
                // that is, when the client's socket has been full for a while.
                match timeout(room.slow_after, writer.drain()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return End::Gone(Some(e)),
                    Err(_) => return End::TooSlow,
                }
            }
            // A whole channel behind: it would miss lines; better to say so and drop it.
            Err(RecvError::Lagged(_)) => return End::TooSlow,
            // The room's sender lives as long as the server.
            Err(RecvError::Closed) => return End::Gone(None),
        }
    }
}

/// `--serve ADDR`: serves until Ctrl-C, then says goodbye to everyone and exits.
async fn serve(addr: &str) -> Result<(), String> {
    // Without a listener of our own, `run` would turn the first Ctrl-C into a cancellation
    // of `main` (seen through `ringleader::cancelled()`) and a second into an abort. Listening
    // for SIGINT makes it ours (`run` then leaves it alone), so the shutdown below can be
    // two-staged (graceful, then immediate) and still print its stats.
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot listen for Ctrl-C: {e}"))?;
    let room = Arc::new(Room::new(
        1024,
        Duration::from_secs(10),
        Duration::from_secs(60),
    ));
    let server = start_chat_server(addr, room.clone(), true)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    for a in server.local_addrs() {
        println!("chat server listening on {a} (Ctrl-C to stop)");
    }
    let interrupted = first(ringleader::cancelled(), sigint.recv());
    let failed = match first(server.serve_forever(), interrupted).await {
        Either::Left(result) => result.err(),
        Either::Right(_) => None,
    };
    if let Some(e) = &failed {
        eprintln!("the server stopped accepting: {e}");
    }
    println!(
        "shutting down: telling {} connection(s) goodbye",
        server.stats().active
    );
    // Every session sees `closing`, says goodbye and closes its connection; the grace
    // period only matters for clients that do not read their goodbye.
    room.closing.set();
    if let Either::Right(_) = first(server.shutdown(Duration::from_secs(5)), sigint.recv()).await {
        println!("second Ctrl-C: closing every connection now");
        server.shutdown(Duration::ZERO).await;
    }
    let stats = server.stats();
    println!(
        "served {} connection(s): {} finished, {} failed, {} cut off at shutdown",
        stats.accepted, stats.completed, stats.failed, stats.cancelled
    );
    failed.map_or(Ok(()), |e| Err(format!("accept failed: {e}")))
}

async fn start_chat_server(
    addr: &str,
    room: Arc<Room>,
    report: bool,
) -> io::Result<ringleader::streams::Server> {
    start_server(
        move |reader: StreamReader, writer: StreamWriter| {
            let room = room.clone();
            async move {
                let peer = reader.peer_addr().map(|a| a.to_string());
                let result = session(room, reader, writer).await;
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

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Waits for whichever of `a` and `b` finishes first (`a` if both are ready) and drops the
/// other: a two-armed `select` (asyncio's `wait(..., return_when=FIRST_COMPLETED)` plus
/// cancelling the loser), polled inside the calling task.
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

// ---------------------------------------------------------------------------------------
// The self-check
// ---------------------------------------------------------------------------------------

const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// Lines each of them says while all four are in the room.
const SAYS: usize = 5;
/// The whole check's deadline: it takes well under a second when all is well.
const CHECK_DEADLINE: Duration = Duration::from_secs(20);
/// The self-check server's patience with a client that does not read.
const CHECK_SLOW_AFTER: Duration = Duration::from_millis(200);
/// dave's flood: lines per batch (below the channel's capacity), and the most batches
/// before we decide the server never disconnects sloth (~50 MB).
const FLOOD_BATCH: usize = 500;
const FLOOD_MAX_BATCHES: usize = 1000;

/// A scripted client: sends lines, and checks each line it receives against the script.
struct Peer {
    name: &'static str,
    reader: StreamReader,
    writer: StreamWriter,
    /// Every line received, for the transcript.
    seen: Vec<String>,
}

impl Peer {
    async fn connect(name: &'static str, port: u16) -> Result<Peer, BoxError> {
        let (reader, writer) = open_connection("127.0.0.1", port).await?;
        Ok(Peer {
            name,
            reader,
            writer,
            seen: Vec::new(),
        })
    }

    async fn send(&mut self, line: &str) -> Result<(), BoxError> {
        self.writer.write(format!("{line}\n").as_bytes());
        Ok(self.writer.drain().await?)
    }

    /// The next line, without its newline; an error at end of stream.
    async fn recv(&mut self) -> Result<String, BoxError> {
        let line = self.reader.readline().await?;
        let Some(text) = line.strip_suffix(b"\n") else {
            return Err(format!("{}: the server closed the connection early", self.name).into());
        };
        let text = String::from_utf8(text.to_vec())?;
        self.seen.push(text.clone());
        Ok(text)
    }

    async fn expect(&mut self, want: &str) -> Result<(), BoxError> {
        let got = self.recv().await?;
        if got != want {
            return Err(format!("{} got {got:?}, expected {want:?}", self.name).into());
        }
        Ok(())
    }

    async fn expect_eof(&mut self) -> Result<(), BoxError> {
        let rest = self.reader.read_to_end().await?;
        if !rest.is_empty() {
            let rest = String::from_utf8_lossy(&rest);
            return Err(
                format!("{} got {rest:?}, expected the end of the stream", self.name).into(),
            );
        }
        self.seen.push("(connection closed)".into());
        Ok(())
    }
}

/// The points where the scripted clients wait for each other, so that what each must
/// receive is exactly known.
struct Script {
    port: u16,
    /// `join[i]` is set when client `i` may join (they join in turn).
    join: Vec<Event>,
    /// All four are in.
    joined: Barrier,
    /// All four heard everything said.
    heard: Barrier,
    /// `quit[i]` is set when client `i` may quit (they quit in turn; dave stays).
    quit: Vec<Event>,
    /// dave heard the others leave: sloth may join.
    sloth_may_join: Event,
    /// dave saw sloth disconnected: sloth may read what it was sent.
    sloth_may_read: Event,
}

/// The script of alice, bob, carol and dave (`i` 0 to 3).
async fn member(i: usize, s: Arc<Script>) -> Result<Vec<String>, BoxError> {
    let name = NAMES[i];
    s.join[i].wait().await;
    let mut me = Peer::connect(name, s.port).await?;
    if name == "bob" {
        me.send("hello?").await?;
        me.expect("* error: say NICK <name> first").await?;
    }
    if name == "dave" {
        me.send("NICK alice").await?;
        me.expect("* error: nick alice is taken").await?;
    }
    me.send(&format!("NICK {name}")).await?;
    let here = if i == 0 {
        "nobody else".to_string()
    } else {
        NAMES[..i].join(", ")
    };
    me.expect(&format!("* welcome, {name}! here: {here}"))
        .await?;
    if let Some(next) = s.join.get(i + 1) {
        next.set();
    }
    // Those after us joined while we listened.
    for later in &NAMES[i + 1..] {
        me.expect(&format!("* {later} joined")).await?;
    }
    s.joined.wait().await?;

    // Everyone talks at once; each must hear every other's lines, in each sender's order.
    for k in 0..SAYS {
        me.send(&format!("line {k} from {name}")).await?;
    }
    let mut next: HashMap<&str, usize> = NAMES.iter().map(|n| (*n, 0)).collect();
    for _ in 0..SAYS * (NAMES.len() - 1) {
        let got = me.recv().await?;
        let Some((from, text)) = got.split_once(": ") else {
            return Err(format!("{name} got {got:?}, expected a chat line").into());
        };
        let want = next.get_mut(from).filter(|_| from != name).map(|k| {
            *k += 1;
            format!("line {} from {from}", *k - 1)
        });
        if want.as_deref() != Some(text) {
            return Err(format!("{name} got {got:?} out of order or from nowhere").into());
        }
    }
    s.heard.wait().await?;

    // They leave in turn; each hears those who left before it.
    s.quit[i].wait().await;
    for earlier in &NAMES[..i] {
        me.expect(&format!("* {earlier} left")).await?;
    }
    if name != "dave" {
        me.send("/quit").await?;
        me.expect("* bye").await?;
        me.expect_eof().await?;
        s.quit[i + 1].set();
        return Ok(me.seen);
    }

    // dave floods the room while sloth does not read, until the server drops sloth.
    s.sloth_may_join.set();
    me.expect("* sloth joined").await?;
    let pad = "x".repeat(80);
    let mut flooded = 0;
    let dropped = loop {
        if flooded == FLOOD_BATCH * FLOOD_MAX_BATCHES {
            break false;
        }
        let batch: Vec<String> = (flooded..flooded + FLOOD_BATCH)
            .map(|k| format!("flood {k} {pad}\n"))
            .collect();
        me.writer.writelines(&batch);
        me.writer.drain().await?;
        flooded += FLOOD_BATCH;
        // Nothing else comes to dave now: any line is the notice (readline is cancel safe).
        if let Ok(line) = timeout(Duration::from_millis(5), me.recv()).await {
            let line = line?;
            if line != "* sloth was disconnected (too slow)" {
                return Err(format!("dave got {line:?} during the flood").into());
            }
            break true;
        }
    };
    if !dropped {
        return Err(format!("sloth was not disconnected after {flooded} flood lines").into());
    }
    me.seen.push(format!("(dave flooded {flooded} lines)"));
    s.sloth_may_read.set();
    me.send("/quit").await?;
    me.expect("* bye").await?;
    me.expect_eof().await?;
    Ok(me.seen)
}

/// sloth joins, stops reading, and once disconnected reads what it was sent: a prefix of
/// dave's flood, in order, then the notice.
async fn sloth(s: Arc<Script>) -> Result<Vec<String>, BoxError> {
    s.sloth_may_join.wait().await;
    let mut me = Peer::connect("sloth", s.port).await?;
    me.send("NICK sloth").await?;
    me.expect("* welcome, sloth! here: dave").await?;
    s.sloth_may_read.wait().await;
    let mut k = 0;
    loop {
        let line = me.recv().await?;
        if line == "* disconnected: too slow to read" {
            break;
        }
        if !line.starts_with(&format!("dave: flood {k} ")) {
            return Err(format!("sloth got {line:?}, expected flood line {k}").into());
        }
        k += 1;
    }
    me.expect_eof().await?;
    // The transcript keeps the notice, not the thousands of flood lines.
    me.seen.retain(|l| !l.starts_with("dave: flood "));
    me.seen.insert(
        1,
        format!("(dave: flood 0 .. flood {} in order)", k.max(1) - 1),
    );
    if k == 0 {
        return Err("sloth got none of the flood before being disconnected".into());
    }
    Ok(me.seen)
}

async fn self_check() -> Result<(), BoxError> {
    let room = Arc::new(Room::new(1024, CHECK_SLOW_AFTER, CHECK_DEADLINE));
    let server = start_chat_server("127.0.0.1:0", room, false).await?;
    let addr = server.local_addrs()[0]
        .as_inet()
        .ok_or("the server has no IP address")?;
    println!("chat server on {addr}; five scripted clients");
    let n = NAMES.len();
    let script = Arc::new(Script {
        port: addr.port(),
        join: (0..n).map(|_| Event::new()).collect(),
        joined: Barrier::new(n),
        heard: Barrier::new(n),
        quit: (0..n).map(|_| Event::new()).collect(),
        sloth_may_join: Event::new(),
        sloth_may_read: Event::new(),
    });
    script.join[0].set();
    script.quit[0].set();

    let started = Instant::now();
    // One task group: the first client to fail cancels the others, and the timeout
    // cancels all of them if anything hangs.
    let transcripts = timeout(
        CHECK_DEADLINE,
        task_group(|tg| async move {
            let mut handles = Vec::new();
            for (i, name) in NAMES.iter().enumerate() {
                handles.push(tg.spawn_named(*name, member(i, script.clone()))?);
            }
            handles.push(tg.spawn_named("sloth", sloth(script.clone()))?);
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await?);
            }
            Ok::<_, BoxError>(out)
        }),
    )
    .await
    .map_err(|_| format!("the clients did not finish within {CHECK_DEADLINE:?}"))??;
    let elapsed = started.elapsed();

    for (name, seen) in NAMES.iter().chain(["sloth"].iter()).zip(&transcripts) {
        println!("{name} received:");
        // A run of chat lines shows its first two and a count.
        let mut run = 0;
        for line in seen {
            if line.contains(": line ") {
                run += 1;
                if run <= 2 {
                    println!("    {line}");
                }
                continue;
            }
            if run > 2 {
                println!("    ... ({run} chat lines in all, each sender's in order)");
            }
            run = 0;
            println!("    {line}");
        }
    }
    server.shutdown(Duration::from_secs(1)).await;
    let stats = server.stats();
    if stats.failed + stats.panicked + stats.cancelled != 0 {
        return Err(format!("some sessions did not end cleanly: {stats:?}").into());
    }
    println!(
        "ok: {} connections, every line as the protocol says, in {elapsed:.0?}",
        stats.accepted
    );
    Ok(())
}

#[ringleader::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => self_check().await.map_err(|e| e.to_string()),
        ["--serve", addr] => serve(addr).await,
        _ => Err("usage: chat [--serve ADDR]".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("chat: {msg}");
            ExitCode::FAILURE
        }
    }
}
