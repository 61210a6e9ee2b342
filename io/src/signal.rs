//! Unix signals as async events (asyncio's `loop.add_signal_handler`, tokio's
//! `signal::unix`): [`ctrl_c`] waits for the next SIGINT, [`signal`] gives a [`Signals`]
//! stream of deliveries of one signal.
//!
//! ```no_run
//! use ringleader_io::signal::{self, SignalKind};
//!
//! ringleader_runtime::run(async {
//!     let mut hangups = signal::signal(SignalKind::hangup())?;
//!     while hangups.recv().await.is_some() {
//!         println!("reloading the configuration");
//!     }
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # Delivery
//! Every listener sees every delivery of its signal that happens while it exists, whoever
//! else listens: two [`Signals`] of SIGUSR1 are both woken by one `kill -USR1`. Deliveries
//! coalesce per listener: several signals arriving before a listener looks again wake it
//! once (the kernel coalesces pending signals too, so a count would be a lie anyway). A
//! listener only sees deliveries that happen after it was created.
//!
//! # The protocol
//! - **Handler.** The first listener of a signal installs, with `sigaction` (`SA_RESTART`),
//!   a process-wide handler. Its body is async-signal-safe: it bumps the signal's counter
//!   (an atomic, one per signal number) and writes one byte to a self-pipe (non-blocking,
//!   close-on-exec, created once and never closed; a full pipe drops the byte, which is fine
//!   since the counter carries the news).
//! - **Listeners.** A listener remembers the counter value it last reported. To wait, it
//!   puts its waker in a process-wide list, then compares the counter with what it saw
//!   (changed: report a delivery), then waits for the pipe's readability through the ring
//!   (`IORING_OP_POLL_ADD`). Whoever sees the pipe readable drains it and wakes every
//!   listed waker. A listener registers *before* it reads the counter and the handler bumps
//!   the counter *before* it writes the byte, so a delivery is either seen in the counter
//!   or followed by a drain that wakes the listener: none is missed, however listeners race
//!   to drain.
//! - **Ownership.** While any listener of a signal has existed, ringleader owns that
//!   signal's disposition: the handler is never uninstalled (restoring a previous handler
//!   races with deliveries in flight on other threads; tokio does not either), and a
//!   handler installed by other code for that signal is replaced, not chained.
//!
//! # Why not signalfd
//! `signalfd` reports only signals that are blocked in *every* thread of the process
//! (otherwise the kernel delivers them to a thread that does not block them, through the
//! default action). A library cannot block a signal in threads it did not create (threads
//! started before it, or by other libraries, keep their masks), so a signalfd would
//! silently miss deliveries, or the default action (termination for SIGINT) would run.
//! The self-pipe needs nothing from other threads.
//!
//! # `ringleader::run` and SIGINT
//! [`RootInterrupt`] is the machinery behind `ringleader::run`'s Ctrl-C behaviour (the
//! first SIGINT cancels the root, a second kills the process). While a SIGINT listener of
//! this module exists, SIGINT belongs to it: `run` neither cancels nor aborts on it.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use ringleader_runtime::driver::ops;

/// Signal numbers are below this (Linux's `_NSIG`).
const NSIG: usize = 65;

/// Deliveries per signal number, bumped by the handler.
static COUNTS: [AtomicU64; NSIG] = [const { AtomicU64::new(0) }; NSIG];

/// The self-pipe's write end for the handler (-1 until the pipe exists).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// `ringleader::run`'s SIGINT behaviour is active (a [`RootInterrupt`] is alive).
static RUN_ARMED: AtomicBool = AtomicBool::new(false);
/// SIGINTs counted for `run` (only those arriving while no SIGINT listener exists).
static RUN_INTERRUPTS: AtomicU64 = AtomicU64::new(0);
/// Live [`Signals`] of SIGINT: while non-zero, SIGINT is theirs, not `run`'s.
static SIGINT_LISTENERS: AtomicUsize = AtomicUsize::new(0);

/// The self-pipe (read end, write end): created once, never closed, since a handler may
/// write to it at any moment.
static PIPE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();

/// Which signals have ringleader's handler installed, and how.
struct Registry {
    installed: [bool; NSIG],
    /// A listener was created for this signal: the handler stays for good.
    listened: [bool; NSIG],
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    installed: [false; NSIG],
    listened: [false; NSIG],
});

/// Wakers of listeners waiting for the pipe; each listener keeps one entry.
static WAITERS: Mutex<Waiters> = Mutex::new(Waiters {
    slots: Vec::new(),
    free: Vec::new(),
});

struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent at every await-free step: poisoning says nothing.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A signal to listen for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignalKind(i32);

impl SignalKind {
    /// Any signal number; [`signal`] rejects the ones that cannot be handled.
    pub const fn from_raw(signum: i32) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// SIGINT (Ctrl-C in a terminal).
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// SIGTERM (a polite request to stop: `kill`, systemd, Kubernetes).
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// SIGHUP (terminal closed; daemons reload their configuration).
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// SIGQUIT (Ctrl-\ in a terminal).
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// SIGUSR1.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// SIGUSR2.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// SIGCHLD (a child stopped or exited).
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }

    /// SIGWINCH (the terminal was resized).
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }

    /// `InvalidInput` for numbers that cannot be listened for: out of range, SIGKILL and
    /// SIGSTOP (the kernel forbids handlers), the synchronous fault signals (SIGSEGV,
    /// SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS: returning from their handler re-runs the
    /// faulting instruction), and the real-time signals the C library reserves.
    fn check(self) -> io::Result<usize> {
        let n = self.0;
        let forbidden = [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGSYS,
        ];
        let reserved = n > 31 && n < libc::SIGRTMIN();
        if n < 1 || n > libc::SIGRTMAX() || n as usize >= NSIG || reserved {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{n} is not a signal number that can be listened for"),
            ));
        }
        if forbidden.contains(&n) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {n} cannot be handled asynchronously"),
            ));
        }
        Ok(n as usize)
    }
}

/// The handler: async-signal-safe (atomics, `write(2)`, `sigaction(2)`, `raise(3)`), and
/// keeps `errno` for the interrupted code.
extern "C" fn on_signal(signum: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno slot, valid for the thread.
    let errno = unsafe { *libc::__errno_location() };
    if signum == libc::SIGINT
        && RUN_ARMED.load(Ordering::SeqCst)
        && SIGINT_LISTENERS.load(Ordering::SeqCst) == 0
        && RUN_INTERRUPTS.fetch_add(1, Ordering::SeqCst) >= 1
    {
        // The second Ctrl-C under `run`: die now, as killed by SIGINT. SIGINT is blocked
        // while this handler runs, so the raised signal is delivered (with the default
        // action) as soon as the handler returns.
        default_and_raise_sigint();
    }
    if let Some(count) = COUNTS.get(signum as usize) {
        count.fetch_add(1, Ordering::SeqCst);
    }
    let fd = WRITE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signum as u8;
        // SAFETY: writes one byte from a live local to the pipe's write end, which is never
        // closed. A full pipe (EAGAIN) loses the byte, not the delivery (the counter has it).
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Sets SIGINT's default disposition and raises it in this thread (async-signal-safe).
fn default_and_raise_sigint() {
    // SAFETY: sigaction is plain data; zero with SIG_DFL (0) is the default disposition
    // with an empty mask; passing a null old-action pointer is allowed.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::raise(libc::SIGINT);
    }
}

/// The self-pipe, created on first use.
fn pipe() -> io::Result<RawFd> {
    if let Some((read, _)) = PIPE.get() {
        return Ok(read.as_raw_fd());
    }
    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two fds into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both fds are new and ours.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A racing thread may have set it first: then ours is dropped (closed) here.
    let (read, write) = PIPE.get_or_init(|| pair);
    WRITE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
    Ok(read.as_raw_fd())
}

/// Installs ringleader's handler for `signum` unless it already is. Call with the
/// registry locked.
fn install(registry: &mut Registry, signum: usize) -> io::Result<()> {
    if registry.installed[signum] {
        return Ok(());
    }
    pipe()?;
    // SAFETY: a zeroed sigaction is valid plain data; the handler is an `extern "C" fn(i32)`
    // as `sa_handler` expects (no SA_SIGINFO), and its body is async-signal-safe.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signum as libc::c_int, &action, std::ptr::null_mut())
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    registry.installed[signum] = true;
    Ok(())
}

/// Drains the pipe (non-blocking) and wakes every waiting listener.
fn drain_and_wake() {
    if let Some((read, _)) = PIPE.get() {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a live local buffer of its length.
            let n = unsafe { libc::read(read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
    }
    let wakers: Vec<Waker> = lock(&WAITERS).slots.iter().flatten().cloned().collect();
    for waker in wakers {
        waker.wake();
    }
}

/// Waits for changes of one counter (see the module's protocol).
struct Watch {
    counter: &'static AtomicU64,
    seen: u64,
    /// Our entry in `WAITERS`.
    slot: Option<usize>,
    /// The pending poll of the pipe.
    poll: Option<Pin<Box<dyn Future<Output = io::Result<u32>> + Send>>>,
    read_fd: RawFd,
}

impl Watch {
    fn new(counter: &'static AtomicU64, read_fd: RawFd) -> Watch {
        Watch {
            counter,
            seen: counter.load(Ordering::SeqCst),
            slot: None,
            poll: None,
            read_fd,
        }
    }

    fn register(&mut self, waker: &Waker) {
        let mut waiters = lock(&WAITERS);
        match self.slot {
            Some(i) => match &mut waiters.slots[i] {
                Some(w) if w.will_wake(waker) => {}
                other => *other = Some(waker.clone()),
            },
            None => {
                let i = match waiters.free.pop() {
                    Some(i) => {
                        waiters.slots[i] = Some(waker.clone());
                        i
                    }
                    None => {
                        waiters.slots.push(Some(waker.clone()));
                        waiters.slots.len() - 1
                    }
                };
                self.slot = Some(i);
            }
        }
    }

    fn deregister(&mut self) {
        if let Some(i) = self.slot.take() {
            let mut waiters = lock(&WAITERS);
            waiters.slots[i] = None;
            waiters.free.push(i);
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        loop {
            // Register before reading the counter: see the module's protocol.
            self.register(cx.waker());
            let now = self.counter.load(Ordering::SeqCst);
            if now != self.seen {
                self.seen = now;
                self.poll = None;
                self.deregister();
                return Poll::Ready(Some(()));
            }
            let fd = self.read_fd;
            let poll = self
                .poll
                .get_or_insert_with(|| Box::pin(ops::poll(fd, libc::POLLIN as u32)));
            match poll.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(_)) => {
                    self.poll = None;
                    drain_and_wake();
                }
                Poll::Ready(Err(_)) => {
                    // No ring to wait on (outside a runtime, or it is shutting down).
                    self.poll = None;
                    self.deregister();
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.deregister();
    }
}

/// A stream of deliveries of one signal: see the [module docs](self) for what is seen.
///
/// `recv().await` (or the [`Stream`](futures_core::Stream) impl) yields `Some(())` once per
/// wake-up: at least once after each delivery since the previous one.
#[must_use = "a listener sees nothing unless awaited; dropping it stops listening"]
pub struct Signals {
    watch: Watch,
    kind: SignalKind,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").field("kind", &self.kind).finish()
    }
}

/// Listens for `kind`: installs ringleader's handler for it (once per process; see the
/// module docs: it replaces any other handler and stays installed) and returns a stream of
/// the deliveries from now on.
///
/// # Errors
/// `InvalidInput` for a signal that cannot be listened for (SIGKILL, SIGSTOP, the fault
/// signals SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGTRAP/SIGSYS, numbers out of range or reserved by
/// the C library); the `pipe2` or `sigaction` error.
pub fn signal(kind: SignalKind) -> io::Result<Signals> {
    let signum = kind.check()?;
    let read_fd = pipe()?;
    {
        let mut registry = lock(&REGISTRY);
        install(&mut registry, signum)?;
        registry.listened[signum] = true;
    }
    if signum == libc::SIGINT as usize {
        SIGINT_LISTENERS.fetch_add(1, Ordering::SeqCst);
    }
    Ok(Signals {
        watch: Watch::new(&COUNTS[signum], read_fd),
        kind,
    })
}

impl Signals {
    /// Waits for the next delivery (one that happens after the previous `recv` returned, or
    /// after the listener was created).
    ///
    /// Returns `None` only if it cannot wait: called outside a ringleader runtime, or the
    /// runtime is shutting down.
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery not reported by a dropped `recv` is reported by the next.
    pub async fn recv(&mut self) -> Option<()> {
        std::future::poll_fn(|cx| self.watch.poll_next(cx)).await
    }

    /// [`recv`](Self::recv) as a poll function.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.watch.poll_next(cx)
    }

    /// The signal listened for.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }
}

impl futures_core::Stream for Signals {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.get_mut().watch.poll_next(cx)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        if self.kind.0 == libc::SIGINT {
            SIGINT_LISTENERS.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Waits for the next SIGINT (Ctrl-C) delivered from the first poll on.
///
/// While it waits, SIGINT is the caller's: `ringleader::run` does not cancel its root for
/// it (see [`RootInterrupt`]).
///
/// ```no_run
/// ringleader_runtime::run(async {
///     ringleader_io::signal::ctrl_c().await?;
///     println!("interrupted, shutting down");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
///
/// # Errors
/// As [`signal`]; `Other` if the runtime is shutting down (or none is running).
///
/// # Cancel safety
/// Cancel safe; a SIGINT arriving while no `ctrl_c` future exists is not seen by the next
/// one.
pub async fn ctrl_c() -> io::Result<()> {
    let mut listener = signal(SignalKind::interrupt())?;
    listener
        .recv()
        .await
        .ok_or_else(|| io::Error::other("cannot wait for SIGINT: no running ringleader runtime"))
}

/// `ringleader::run`'s SIGINT behaviour, for the facade (which has no unsafe code).
///
/// Armed by [`arm`](Self::arm) only on the process's main thread while SIGINT's disposition
/// is the default. While armed, and while no SIGINT listener of this module exists:
/// - the first SIGINT resolves [`wait`](Self::wait) (run cancels its root with it);
/// - a second SIGINT restores the default disposition and re-raises it from the handler:
///   the process dies at once, as killed by SIGINT, whatever the runtime is doing.
///
/// Dropping it disarms it and restores the previous disposition, unless a listener of
/// SIGINT was created meanwhile (then ringleader keeps the handler, as for any listener).
#[derive(Debug)]
#[must_use = "dropping it disarms the SIGINT behaviour at once"]
pub struct RootInterrupt {
    previous: Box<libc::sigaction>,
    read_fd: RawFd,
}

impl RootInterrupt {
    /// Arms the behaviour: `None` (nothing installed) off the main thread, when SIGINT's
    /// disposition is not the default (ignored, or someone's handler, ringleader's own
    /// listeners' included), or if the handler cannot be installed.
    pub fn arm() -> Option<RootInterrupt> {
        // SAFETY: getpid and gettid have no preconditions.
        let main_thread = unsafe { libc::getpid() == libc::gettid() };
        if !main_thread {
            return None;
        }
        let read_fd = pipe().ok()?;
        let mut registry = lock(&REGISTRY);
        if registry.installed[libc::SIGINT as usize] {
            return None;
        }
        // SAFETY: sigaction with a null new action only reads the current one into `old`.
        let mut previous: Box<libc::sigaction> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: as above; `previous` is a live, writable sigaction.
        if unsafe { libc::sigaction(libc::SIGINT, std::ptr::null(), &mut *previous) } < 0
            || previous.sa_sigaction != libc::SIG_DFL
        {
            return None;
        }
        RUN_INTERRUPTS.store(0, Ordering::SeqCst);
        RUN_ARMED.store(true, Ordering::SeqCst);
        if install(&mut registry, libc::SIGINT as usize).is_err() {
            RUN_ARMED.store(false, Ordering::SeqCst);
            return None;
        }
        Some(RootInterrupt { previous, read_fd })
    }

    /// Resolves at the first SIGINT counted for `run` (one arriving while no SIGINT
    /// listener exists); never resolves if it cannot wait (no runtime).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut watch = Watch {
            counter: &RUN_INTERRUPTS,
            seen: 0,
            slot: None,
            poll: None,
            read_fd: self.read_fd,
        };
        async move {
            if watch.recv_once().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether a SIGINT was counted for `run` since [`arm`](Self::arm).
    pub fn interrupted(&self) -> bool {
        RUN_INTERRUPTS.load(Ordering::SeqCst) > 0
    }

    /// Ends the process as killed by SIGINT (exit status 130 in a shell), as an uncaught
    /// `KeyboardInterrupt` does: restores the default disposition, unblocks SIGINT in this
    /// thread and raises it. If the process survives that (SIGINT is ignored by an
    /// inherited disposition race), exits with status 130.
    pub fn reraise(self) -> ! {
        RUN_ARMED.store(false, Ordering::SeqCst);
        // SAFETY: a zeroed sigset is valid storage for sigemptyset/sigaddset, and
        // pthread_sigmask reads it; a null old-set pointer is allowed.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
        default_and_raise_sigint();
        std::process::exit(130)
    }
}

impl Watch {
    async fn recv_once(&mut self) -> Option<()> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

impl Drop for RootInterrupt {
    fn drop(&mut self) {
        RUN_ARMED.store(false, Ordering::SeqCst);
        let mut registry = lock(&REGISTRY);
        let sigint = libc::SIGINT as usize;
        if registry.installed[sigint] && !registry.listened[sigint] {
            // SAFETY: `previous` is the disposition read at `arm` (the default); restoring
            // it is a plain sigaction call.
            if unsafe { libc::sigaction(libc::SIGINT, &*self.previous, std::ptr::null_mut()) } == 0
            {
                registry.installed[sigint] = false;
            }
        }
    }
}
