//! asyncio's `start_server` / `start_unix_server` and its `Server`.
//!
//! # Protocol
//! [`Server::start`] spawns one background task that runs a supervised task group (nothing
//! in it cancels its siblings). Its body spawns one accept loop per listening socket as a
//! child; each accepted connection's handler becomes another child. The group ends when
//! every accept loop and every handler has finished; the background task then marks the
//! server `done` and wakes the waiters.
//!
//! Shared state (`ServerShared.state`, one mutex): `closing` (set once, by `close`, a fatal
//! accept error or dropping the last handle), `done`, the group's handle (for `shutdown`'s
//! cancellation), the first fatal accept error, and the wakers of accept loops,
//! `serve_forever` and `wait_closed`. Counters are atomics.
//!
//! Close order: `close` sets `closing`, shuts the listening sockets down (new connections
//! are refused at once; a pending accept fails), removes a Unix server's socket file and
//! wakes the accept loops, which return and drop their listeners. Handlers run on.
//! `shutdown(grace)` closes, waits up to `grace` for `done`, then cancels the group: the
//! handlers still running are dropped.
//!
//! Handlers never fail the group: each runs inside a wrapper that catches its panic or
//! error, counts it, logs it with `tracing::error!`, and completes normally. So a failing
//! handler cancels nothing, and a long-lived server does not accumulate failures in the
//! group.

use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ringleader_runtime::driver::SharedFd;
use ringleader_runtime::task::CancelReason;
use ringleader_taskgroup::{BoxError, ChildResult, GroupConfig, Policy, TaskGroup};
use socket2::SockRef;

use super::writer::{Closer, Host};
use super::{Family, StreamAddr, StreamReader, StreamWriter};
use crate::net::{lookup_host, TcpListener, ToSocketAddrs, UnixListener};

/// Reports what a server cannot hand back to anyone (a handler's error, an accept failure).
/// asyncio sends these to its loop's exception handler, which prints them on stderr unless
/// logging is set up; the same here: through `tracing` when a global subscriber is set,
/// else on stderr, so that a failing handler is never silent.
macro_rules! report {
    ($($arg:tt)*) => {
        if tracing::dispatcher::has_been_set() {
            tracing::error!($($arg)*);
        } else {
            eprintln!("ringleader server: {}", format_args!($($arg)*));
        }
    };
}

/// How long an accept loop pauses when the process is out of fds or memory (asyncio pauses
/// a second; a guess that favours recovering quickly).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn fd(&self) -> &SharedFd {
        match self {
            Listener::Tcp(l) => &l.fd,
            Listener::Unix(l) => &l.fd,
        }
    }

    fn local_addr(&self) -> io::Result<StreamAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(StreamAddr::Inet),
            Listener::Unix(l) => l.local_addr().map(StreamAddr::Unix),
        }
    }

    async fn accept(&self) -> io::Result<(SharedFd, Family, StreamAddr)> {
        match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                // As asyncio's transports: small writes (a line, a reply) leave at once.
                // A failure leaves Nagle on, which is slower, not wrong.
                let _ = s.set_nodelay(true);
                Ok((s.fd, Family::Inet, StreamAddr::Inet(addr)))
            }
            Listener::Unix(l) => {
                let (s, path) = l.accept().await?;
                Ok((s.fd, Family::Unix, StreamAddr::Unix(path)))
            }
        }
    }
}

/// Counters of a [`Server`]'s connections, from [`Server::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Handlers running now.
    pub active: u64,
    /// Handlers that returned `()` or `Ok`.
    pub completed: u64,
    /// Handlers that returned an error.
    pub failed: u64,
    /// Handlers that panicked.
    pub panicked: u64,
    /// Handlers cancelled by [`Server::shutdown`] (or the runtime shutting down).
    pub cancelled: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
}

#[derive(Default)]
struct State {
    closing: bool,
    done: bool,
    cancel_requested: bool,
    group: Option<TaskGroup>,
    error: Option<io::Error>,
    /// The listening sockets, kept to shut them down at close.
    listeners: Vec<SharedFd>,
    /// The connections being served, by id: for `close_clients` / `abort_clients`.
    clients: HashMap<u64, Closer>,
    next_client: u64,
    waiters: Vec<Waker>,
}

struct ServerShared {
    state: Mutex<State>,
    counters: Counters,
    addrs: Vec<StreamAddr>,
    unix_path: Option<PathBuf>,
}

impl ServerShared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self) {
        let listeners = {
            let mut st = self.lock();
            if st.closing {
                return;
            }
            st.closing = true;
            for w in st.waiters.drain(..) {
                w.wake();
            }
            std::mem::take(&mut st.listeners)
        };
        for fd in listeners {
            // Stops the listening at once: connections are refused from now on, and a
            // pending accept fails. An error changes nothing (the socket goes anyway).
            let _ = SockRef::from(&*fd).shutdown(std::net::Shutdown::Both);
        }
        if let Some(path) = &self.unix_path {
            remove_socket_file(path);
        }
    }

    fn poll_until(&self, cx: &mut Context<'_>, done: impl Fn(&State) -> bool) -> Poll<()> {
        let mut st = self.lock();
        if done(&st) {
            return Poll::Ready(());
        }
        if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn is_closing(&self) -> bool {
        self.lock().closing
    }

    fn set_group(&self, group: TaskGroup) {
        let cancel = {
            let mut st = self.lock();
            st.group = Some(group.clone());
            st.cancel_requested
        };
        // Outside the lock: a handler dropped by the cancellation takes it (its guard
        // leaves the clients).
        if cancel {
            group.cancel(shutdown_reason());
        }
    }

    fn cancel_handlers(&self) {
        let group = {
            let mut st = self.lock();
            st.cancel_requested = true;
            st.group.clone()
        };
        if let Some(group) = group {
            group.cancel(shutdown_reason());
        }
    }

    /// Registers a connection's writer; its id for [`ActiveGuard`].
    fn add_client(&self, closer: Closer) -> u64 {
        let mut st = self.lock();
        let id = st.next_client;
        st.next_client += 1;
        st.clients.insert(id, closer);
        id
    }

    fn clients(&self) -> Vec<Closer> {
        self.lock()
            .clients
            .values()
            .map(Closer::clone_weak)
            .collect()
    }

    fn fail(&self, err: io::Error) {
        {
            let mut st = self.lock();
            if st.error.is_none() {
                st.error = Some(err);
            }
        }
        self.close();
    }

    fn finish(&self) {
        let mut st = self.lock();
        st.done = true;
        st.closing = true;
        st.group = None;
        for w in st.waiters.drain(..) {
            w.wake();
        }
    }
}

fn shutdown_reason() -> CancelReason {
    CancelReason::explicit("server shutdown: the grace period is over")
}

/// Removes a Unix server's socket file, if it is still a socket (asyncio's cleanup).
fn remove_socket_file(path: &Path) {
    if path.as_os_str().as_bytes().first() == Some(&0) {
        return; // an abstract name: no file
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The handle that closes the server when the last [`Server`] clone is dropped.
struct Owner {
    shared: Arc<ServerShared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// A listening server (asyncio's `Server`), from [`start_server`] or [`start_unix_server`].
///
/// It accepts from the moment it is returned (asyncio's `start_serving=True`). Each
/// connection's handler runs as a task of the server's own task group, supervised: a
/// handler that returns an error or panics is counted ([`stats`](Self::stats)) and reported
/// (with `tracing::error!` when a global `tracing` subscriber is set, else on stderr, as
/// asyncio's default exception handler does), and cancels nothing; the server keeps
/// serving.
///
/// Clones share the server. Dropping the last clone closes it (stops accepting); running
/// handlers finish on their own.
#[derive(Clone)]
#[must_use = "dropping the last Server handle stops accepting connections"]
pub struct Server {
    owner: Arc<Owner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared().lock();
        f.debug_struct("Server")
            .field("addrs", &self.shared().addrs)
            .field("closing", &st.closing)
            .field("done", &st.done)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Starts a TCP server on every address `addr` resolves to (asyncio's `start_server`):
/// each accepted connection's `handler(reader, writer)` runs as a task of the server's
/// task group.
///
/// The handler is an `async` closure taking the connection's [`StreamReader`] and
/// [`StreamWriter`] and returning `()` or a `Result` whose error converts into a
/// [`BoxError`] (`io::Result<()>` is the natural choice: `?` on every read and drain). An
/// error or a panic is counted and logged; other connections are unaffected.
///
/// Handlers are pinned to the runtime's workers round-robin, in accept order (see
/// `task::Builder::pin_to_worker`): each connection is served by one worker thread, whose
/// ring carries all of its I/O, as in thread-per-core servers (and as in asyncio, where a
/// handler never changes threads). Connections are not moved between workers to balance
/// load; a handler with heavy CPU work should hand it to
/// [`spawn`](ringleader_runtime::spawn) (balanced by stealing) or
/// [`to_thread`](ringleader_runtime::task::to_thread).
///
/// Port 0 picks a free port (per address, if several); read it from
/// [`Server::local_addrs`]. IPv6 sockets are bound v6-only, so `"localhost"` can bind both
/// `::1` and `127.0.0.1` on one port. As in asyncio, an address whose family the host has
/// not enabled is skipped if another one binds.
///
/// # Errors
/// The resolver's error, or the first address's bind error (`AddrInUse`,
/// `PermissionDenied`...); `Other` outside a ringleader runtime.
///
/// # Cancel safety
/// Dropping it before it returns closes the listeners bound so far; nothing was served.
pub async fn start_server<H, Fut>(handler: H, addr: impl ToSocketAddrs) -> io::Result<Server>
where
    H: Fn(StreamReader, StreamWriter) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: ChildResult,
{
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in lookup_host(addr).await? {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    let mut listeners = Vec::with_capacity(addrs.len());
    let mut skipped = None;
    for a in addrs {
        match TcpListener::builder().only_v6(true).bind(a).await {
            Ok(l) => listeners.push(Listener::Tcp(l)),
            // As asyncio: an address family the host has not enabled (no IPv6 for
            // "localhost"'s ::1) is skipped, as long as another address binds.
            Err(e)
                if e.kind() == io::ErrorKind::AddrNotAvailable
                    || e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
            {
                tracing::debug!("start_server: skipping {a}: {e}");
                skipped = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    if listeners.is_empty() {
        return Err(skipped
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")));
    }
    Server::start(listeners, handler, None)
}

/// Starts a Unix-socket server at `path` (asyncio's `start_unix_server`); handlers as
/// [`start_server`]'s. A stale socket file at `path` is removed first, and the file is
/// removed again when the server closes (as asyncio does). A path whose first byte is NUL
/// is an abstract name (no file).
///
/// # Errors
/// The bind error (`AddrInUse` if a non-socket file is there, `InvalidInput` if the path is
/// too long...); `Other` outside a ringleader runtime.
///
/// # Cancel safety
/// It completes in its first poll (binding a Unix socket does not wait).
pub async fn start_unix_server<H, Fut>(handler: H, path: impl AsRef<Path>) -> io::Result<Server>
where
    H: Fn(StreamReader, StreamWriter) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: ChildResult,
{
    let path = path.as_ref();
    remove_socket_file(path);
    let listener = UnixListener::bind(path)?;
    let file = (path.as_os_str().as_bytes().first() != Some(&0)).then(|| path.to_path_buf());
    Server::start(vec![Listener::Unix(listener)], handler, file)
}

impl Server {
    fn start<H, Fut>(
        listeners: Vec<Listener>,
        handler: H,
        unix_path: Option<PathBuf>,
    ) -> io::Result<Server>
    where
        H: Fn(StreamReader, StreamWriter) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ChildResult,
    {
        let runtime = ringleader_runtime::runtime::Handle::try_current()
            .map_err(|e| io::Error::other(format!("start_server: {e}")))?;
        let addrs = listeners
            .iter()
            .map(Listener::local_addr)
            .collect::<io::Result<Vec<_>>>()?;
        let shared = Arc::new(ServerShared {
            state: Mutex::new(State {
                listeners: listeners.iter().map(|l| l.fd().clone()).collect(),
                ..State::default()
            }),
            counters: Counters::default(),
            addrs,
            unix_path,
        });
        let handler = Arc::new(handler);
        let bg = shared.clone();
        drop(runtime.spawn(async move {
            // Marks the server done however the task ends: finished, or dropped by a
            // runtime shutting down (so `wait_closed` never waits for a task that is gone).
            struct Finish(Arc<ServerShared>);
            impl Drop for Finish {
                fn drop(&mut self) {
                    self.0.finish();
                }
            }
            let _finish = Finish(bg.clone());
            let group = bg.clone();
            let res = GroupConfig::new()
                .name("server")
                .policy(Policy::Supervise)
                .run(move |tg| async move {
                    group.set_group(tg.clone());
                    for listener in listeners {
                        let accept =
                            accept_loop(listener, tg.clone(), handler.clone(), group.clone());
                        tg.spawn_named("server accept loop", accept)?;
                    }
                    Ok::<(), BoxError>(())
                })
                .await;
            if let Err(errors) = res {
                if !errors.is_empty() {
                    report!("server task group failed: {errors}");
                }
            }
        }));
        Ok(Server {
            owner: Arc::new(Owner { shared }),
        })
    }

    fn shared(&self) -> &ServerShared {
        &self.owner.shared
    }

    /// The bound addresses (asyncio's `server.sockets`' names), one per listening socket.
    pub fn local_addrs(&self) -> &[StreamAddr] {
        &self.shared().addrs
    }

    /// Whether the server still accepts connections (asyncio's `is_serving()`).
    pub fn is_serving(&self) -> bool {
        !self.shared().is_closing()
    }

    /// Stops accepting (asyncio's `close()`): the listening sockets are shut down at once,
    /// so new connections are refused, and a Unix server's socket file is removed. Running
    /// handlers go on; [`wait_closed`](Self::wait_closed) waits for them.
    pub fn close(&self) {
        self.shared().close();
    }

    /// Waits until the server is closed and every handler has finished (asyncio's
    /// `wait_closed()`). Like asyncio's, it waits for a close nobody has asked for yet.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_closed(&self) {
        let shared = self.shared();
        poll_fn(|cx| shared.poll_until(cx, |st| st.done)).await;
    }

    /// Serves until the server is closed (by [`close`](Self::close) from another task, or
    /// a fatal accept error), then waits for every handler (asyncio's `serve_forever()`).
    ///
    /// # Errors
    /// The accept error that stopped the server, if one did.
    ///
    /// # Cancel safety
    /// Dropping it closes the server (as cancelling asyncio's `serve_forever` does); the
    /// running handlers finish on their own.
    pub async fn serve_forever(&self) -> io::Result<()> {
        struct CloseOnDrop<'a>(&'a ServerShared);
        impl Drop for CloseOnDrop<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let guard = CloseOnDrop(self.shared());
        self.wait_closed().await;
        drop(guard);
        match self.shared().lock().error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Graceful shutdown: stops accepting, waits up to `grace` for the handlers to finish,
    /// then cancels the ones still running (their futures are dropped, which closes their
    /// connections) and waits for them to be gone.
    ///
    /// # Cancel safety
    /// Dropping it stops the waiting; the server stays closed, and the cancellation happens
    /// only if the grace period ran out before the drop.
    pub async fn shutdown(&self, grace: Duration) {
        self.close();
        if ringleader_runtime::time::timeout(grace, self.wait_closed())
            .await
            .is_ok()
        {
            return;
        }
        self.shared().cancel_handlers();
        self.wait_closed().await;
    }

    /// Closes every connection being served (asyncio 3.13's `close_clients()`): each
    /// handler's writer is closed as by [`StreamWriter::close`] (what it buffered is sent,
    /// then the socket is shut down in both directions), so the handler's reads see end of
    /// stream and its later `drain` fails. The handlers themselves run on until they
    /// return. Call [`close`](Self::close) first, so that no new connection comes in.
    pub fn close_clients(&self) {
        for client in self.shared().clients() {
            client.close();
        }
    }

    /// Aborts every connection being served (asyncio 3.13's `abort_clients()`): each
    /// connection is shut down at once, what its writer buffered is dropped, and the
    /// writer fails with `ConnectionAborted` (its `drain` and `wait_closed` report it; its
    /// reader sees end of stream). The handlers themselves run on until they return.
    pub fn abort_clients(&self) {
        for client in self.shared().clients() {
            client.abort();
        }
    }

    /// The server's connection counters: accepted, active, and how handlers ended.
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared().counters;
        ServerStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            active: c.active.load(Ordering::Relaxed),
            completed: c.completed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            panicked: c.panicked.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
        }
    }
}

async fn accept_loop<H, Fut>(
    listener: Listener,
    tg: TaskGroup,
    handler: Arc<H>,
    shared: Arc<ServerShared>,
) where
    H: Fn(StreamReader, StreamWriter) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: ChildResult,
{
    let mut next_worker = 0usize;
    loop {
        let accepted = {
            let mut accept = pin!(listener.accept());
            poll_fn(|cx| {
                if shared.poll_until(cx, |st| st.closing).is_ready() {
                    return Poll::Ready(None);
                }
                accept.as_mut().poll(cx).map(Some)
            })
            .await
        };
        let Some(accepted) = accepted else {
            return;
        };
        match accepted {
            Ok((fd, family, peer)) => {
                let counters = &shared.counters;
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                counters.active.fetch_add(1, Ordering::Relaxed);
                let reader = StreamReader::new(fd.clone(), family);
                let writer = StreamWriter::new(fd, family);
                let guard = ActiveGuard {
                    shared: shared.clone(),
                    finished: false,
                    client: shared.add_client(writer.closer()),
                };
                let host = writer.host();
                let fut = match catch_unwind(AssertUnwindSafe(|| handler(reader, writer))) {
                    Ok(fut) => fut,
                    Err(payload) => {
                        handler_panicked(guard, &peer, &*payload);
                        continue;
                    }
                };
                let task = HandlerTask {
                    fut: Box::pin(fut),
                    guard: Some(guard),
                    peer,
                    host,
                };
                // Round-robin over the workers, pinned: the handler's reads and writes
                // stay on one worker's ring (see `start_server`).
                let worker = next_worker;
                next_worker = next_worker.wrapping_add(1);
                if tg.spawn_pinned(worker, task).is_err() {
                    return; // the group is shutting down
                }
            }
            Err(e) => {
                if shared.is_closing() {
                    return;
                }
                match e.raw_os_error() {
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        report!("server accept: {e}; pausing for {ACCEPT_PAUSE:?}");
                        let mut pause = pin!(ringleader_runtime::time::sleep(ACCEPT_PAUSE));
                        poll_fn(|cx| {
                            if shared.poll_until(cx, |st| st.closing).is_ready() {
                                return Poll::Ready(());
                            }
                            pause.as_mut().poll(cx)
                        })
                        .await;
                    }
                    Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM) => {}
                    _ => {
                        report!("server accept failed, closing the server: {e}");
                        shared.fail(e);
                        return;
                    }
                }
            }
        }
    }
}

/// Counts a handler as ended; one that never reported (dropped mid-way) was cancelled.
struct ActiveGuard {
    shared: Arc<ServerShared>,
    finished: bool,
    /// The connection's id among the server's clients.
    client: u64,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.shared.lock().clients.remove(&self.client);
        let c = &self.shared.counters;
        c.active.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            c.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(a non-string panic payload)"
    }
}

fn handler_panicked(
    mut guard: ActiveGuard,
    peer: &StreamAddr,
    payload: &(dyn std::any::Any + Send),
) {
    guard.finished = true;
    guard
        .shared
        .counters
        .panicked
        .fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        "connection handler for {peer} panicked: {}",
        panic_message(payload)
    );
}

/// A handler's future, catching its panic and error (see the module's protocol).
struct HandlerTask<Fut> {
    fut: Pin<Box<Fut>>,
    guard: Option<ActiveGuard>,
    peer: StreamAddr,
    /// The connection's writer is hosted by this task: its writes in a poll are handed to
    /// the flush task once, at the poll's end (see the writer's module).
    host: Host,
}

impl<Fut> Future for HandlerTask<Fut>
where
    Fut: Future,
    Fut::Output: ChildResult,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let fut = &mut this.fut;
        let polled = this
            .host
            .enter(|| catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))));
        let Some(mut guard) = (match &polled {
            Ok(Poll::Pending) => return Poll::Pending,
            _ => this.guard.take(),
        }) else {
            return Poll::Ready(());
        };
        match polled {
            Ok(Poll::Pending) => unreachable!("returned above"),
            Ok(Poll::Ready(out)) => {
                guard.finished = true;
                let c = &guard.shared.counters;
                match out.into_result() {
                    Ok(_) => {
                        c.completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                        report!("connection handler for {} failed: {e}", this.peer);
                    }
                }
            }
            Err(payload) => handler_panicked(guard, &this.peer, &*payload),
        }
        Poll::Ready(())
    }
}
