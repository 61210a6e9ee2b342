//! Building, entering and shutting down a runtime.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::Location;
use std::pin::pin;
use std::sync::atomic::Ordering as StdOrdering;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle as ThreadHandle;
use std::time::Duration;

use crate::blocking::{BlockingPool, BlockingSchedule, BlockingTask};
use crate::callbacks::{self, CallbackHandle};
use crate::loom::Arc;
use crate::park::{BlockOnActivity, Park, ThreadParker, Unpark};
use crate::scheduler::{self, Config, Shared};
use crate::task::{self, JoinHandle, TaskInfo};

rl_thread_local! {
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

rl_thread_local! {
    /// Set while this thread is inside [`Runtime::block_on`] (of any runtime), so a nested
    /// call panics with advice instead of parking a thread whose outer future, or whose
    /// current-thread core, then never runs again. Thread-local only: no cross-thread
    /// protocol depends on it.
    static IN_BLOCK_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics with advice where blocking the calling thread would stall a runtime: on a
/// worker, or inside `block_on` (whose thread polls the root future, and on the
/// current-thread flavour runs every task). For blocking waits meant for plain threads.
#[track_caller]
pub(crate) fn assert_may_block(what: &str) {
    if scheduler::on_worker_thread() || IN_BLOCK_ON.with(|b| b.get()) {
        panic!(
            "{what} called from async code (on a runtime's worker, or inside block_on): it \
             would block the thread that runs tasks, and could deadlock; await instead"
        );
    }
}

/// Marks this thread as inside `block_on` until dropped (also on unwind).
struct BlockOnGuard;

impl BlockOnGuard {
    #[track_caller]
    fn enter() -> BlockOnGuard {
        if scheduler::on_worker_thread() {
            panic!(
                "block_on called from inside a ringleader task (Runtime::block_on or \
                 Handle::block_on): this would block a worker thread (Cannot start a runtime \
                 from within a runtime); spawn the future and await its JoinHandle instead"
            );
        }
        if IN_BLOCK_ON.with(|b| b.replace(true)) {
            panic!(
                "block_on called from inside another block_on on the same thread \
                 (Cannot start a runtime from within a runtime): the outer future \
                 would stop being polled; await the future instead, or spawn it and await \
                 its JoinHandle"
            );
        }
        BlockOnGuard
    }
}

impl Drop for BlockOnGuard {
    fn drop(&mut self) {
        let _ = IN_BLOCK_ON.try_with(|b| b.set(false));
    }
}

/// Kernel limit on io_uring submission-queue entries (`IORING_MAX_ENTRIES`).
const MAX_IO_RING_ENTRIES: u32 = 32_768;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    MultiThread,
    CurrentThread,
}

/// What a multi-thread or current-thread runtime does when a task panics and nobody awaits
/// its `JoinHandle` (tokio has this for its current-thread flavour only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnhandledPanic {
    /// Report it (see [`Builder::on_task_panic`]) and go on: asyncio's behaviour.
    #[default]
    Ignore,
    /// Report it, then shut the runtime down: every worker stops, every task is cancelled,
    /// and `block_on` (hence [`run`]) panics with the report instead of returning.
    ShutdownRuntime,
}

/// Configures and builds a [`Runtime`].
///
/// ```
/// use ringleader_runtime::runtime::Builder;
///
/// let rt = Builder::new_multi_thread().worker_threads(2).build()?;
/// assert_eq!(rt.block_on(async { 40 + 2 }), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Builder {
    flavor: Flavor,
    worker_threads: Option<usize>,
    thread_name: String,
    thread_stack_size: Option<usize>,
    io_ring_entries: u32,
    lifo_slot: bool,
    global_queue_interval: Option<u32>,
    max_blocking_threads: usize,
    thread_keep_alive: Duration,
    debug: Option<bool>,
    slow_poll_threshold: Duration,
    start_paused: bool,
    on_task_panic: Option<scheduler::TaskPanicHandler>,
    unhandled_panic: UnhandledPanic,
    thread_hooks: ThreadHooks,
}

/// A user callback run on the runtime's own threads.
type ThreadHook = std::sync::Arc<dyn Fn() + Send + Sync>;

/// [`Builder::on_thread_start`] and [`Builder::on_thread_stop`], shared by every thread the
/// runtime starts.
#[derive(Clone, Default)]
pub(crate) struct ThreadHooks {
    start: Option<ThreadHook>,
    stop: Option<ThreadHook>,
}

impl fmt::Debug for ThreadHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadHooks")
            .field("start", &self.start.is_some())
            .field("stop", &self.stop.is_some())
            .finish()
    }
}

/// Runs the stop hook when dropped: at the end of the thread's work, unwinding included.
pub(crate) struct ThreadHooksGuard(Option<ThreadHook>);

impl ThreadHooks {
    /// Runs the start hook on this thread; the guard runs the stop hook.
    pub(crate) fn started(&self) -> ThreadHooksGuard {
        if let Some(start) = &self.start {
            run_hook(start, "on_thread_start");
        }
        ThreadHooksGuard(self.stop.clone())
    }
}

impl Drop for ThreadHooksGuard {
    fn drop(&mut self) {
        if let Some(stop) = &self.0 {
            run_hook(stop, "on_thread_stop");
        }
    }
}

/// Runs a hook, catching a panic: a runtime thread must not die of its user's callback.
fn run_hook(hook: &ThreadHook, which: &'static str) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook())).is_err() {
        tracing::error!(
            hook = which,
            "a runtime thread hook panicked; the thread goes on"
        );
    }
}

impl Builder {
    /// A runtime with one worker thread per CPU that steal work from each other.
    pub fn new_multi_thread() -> Builder {
        Builder::with_flavor(Flavor::MultiThread)
    }

    /// Sets the handler for panics nobody observed (asyncio's `set_exception_handler`): it
    /// is called once per task that panicked and whose `JoinHandle` was detached, or dropped
    /// without being awaited, on the thread that drops the task's output. Panics whose
    /// handles are awaited are not reported here: the awaiting code gets them. Without a
    /// handler, each is logged through `tracing` at error level. A panic in the handler is
    /// caught and logged.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use ringleader_runtime::runtime::Builder;
    ///
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let counter = seen.clone();
    /// let rt = Builder::new_current_thread()
    ///     .on_task_panic(move |panic| {
    ///         assert_eq!(panic.message(), Some("boom"));
    ///         counter.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build()?;
    /// rt.block_on(async {
    ///     drop(ringleader_runtime::spawn(async { panic!("boom") }));
    ///     ringleader_runtime::task::yield_now().await;
    /// });
    /// assert_eq!(seen.load(Ordering::SeqCst), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_task_panic(
        mut self,
        handler: impl Fn(&task::UnhandledTaskPanic<'_>) + Send + Sync + 'static,
    ) -> Builder {
        self.on_task_panic = Some(scheduler::TaskPanicHandler(std::sync::Arc::new(handler)));
        self
    }

    /// What an unobserved task panic does to the runtime: see [`UnhandledPanic`]. Default
    /// `Ignore`.
    pub fn unhandled_panic(mut self, behaviour: UnhandledPanic) -> Builder {
        self.unhandled_panic = behaviour;
        self
    }

    /// Submission-queue entries of each worker's io_uring (rounded up to a power of two,
    /// and to at least 8; the completion queue gets four times as many). Default 256. A full
    /// queue is submitted early, never an error.
    ///
    /// Checked by [`build`](Self::build): it must be between 1 and 32768 (the kernel's
    /// `IORING_MAX_ENTRIES`), or `build` returns `InvalidInput`.
    pub fn io_ring_entries(mut self, entries: u32) -> Builder {
        self.io_ring_entries = entries;
        self
    }

    /// A runtime that runs every task on the thread that calls [`Runtime::block_on`], and
    /// runs nothing while no thread is inside `block_on`.
    ///
    /// Tasks run in the order they became ready, as on asyncio's event loop: tasks start in
    /// the order they were spawned, and a task woken by another runs after the tasks that
    /// were already ready. (The LIFO slot, which the multi-thread flavour uses to run a
    /// just-woken task next for cache locality, is off here; see
    /// [`disable_lifo_slot`](Builder::disable_lifo_slot).)
    pub fn new_current_thread() -> Builder {
        Builder::with_flavor(Flavor::CurrentThread)
    }

    fn with_flavor(flavor: Flavor) -> Builder {
        Builder {
            flavor,
            worker_threads: None,
            thread_name: "ringleader-worker".to_owned(),
            thread_stack_size: None,
            io_ring_entries: 256,
            // FIFO order on one thread, as asyncio's loop; locality across many.
            lifo_slot: flavor == Flavor::MultiThread,
            global_queue_interval: None,
            max_blocking_threads: 512,
            thread_keep_alive: Duration::from_secs(10),
            debug: None,
            slow_poll_threshold: Duration::from_millis(100),
            start_paused: false,
            on_task_panic: None,
            unhandled_panic: UnhandledPanic::Ignore,
            thread_hooks: ThreadHooks::default(),
        }
    }

    /// Starts the clock paused (for tests): time moves only through `time::advance` or when
    /// every worker is idle, when it jumps to the next timer. See [`crate::time`].
    pub fn start_paused(mut self, paused: bool) -> Builder {
        self.start_paused = paused;
        self
    }

    /// Most threads the blocking pool runs at once (default 512). Jobs beyond that wait.
    /// Must be at least 1: [`build`](Self::build) returns `InvalidInput` for 0.
    pub fn max_blocking_threads(mut self, n: usize) -> Builder {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking-pool thread waits for work before exiting (default 10 s).
    pub fn thread_keep_alive(mut self, keep_alive: Duration) -> Builder {
        self.thread_keep_alive = keep_alive;
        self
    }

    /// asyncio's debug mode. When on, a task poll longer than
    /// [`slow_poll_threshold`](Self::slow_poll_threshold) logs one warning through
    /// `tracing`, naming the task (id, name, spawn location). Default: on if the
    /// environment variable `RINGLEADER_DEBUG` is `1`, off otherwise. (Panics nobody
    /// observed are always logged, at error level.)
    pub fn debug(mut self, on: bool) -> Builder {
        self.debug = Some(on);
        self
    }

    /// The poll duration debug mode reports (default 100 ms, asyncio's
    /// `slow_callback_duration`).
    pub fn slow_poll_threshold(mut self, threshold: Duration) -> Builder {
        self.slow_poll_threshold = threshold;
        self
    }

    /// Number of worker threads (multi-thread flavour). Default: the number of CPUs.
    /// Must be at least 1: [`build`](Self::build) returns `InvalidInput` for 0. Ignored by
    /// the current-thread flavour.
    pub fn worker_threads(mut self, n: usize) -> Builder {
        self.worker_threads = Some(n);
        self
    }

    /// Prefix of worker thread names (`{name}-{index}`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = name.into();
        self
    }

    /// Runs `hook` on every thread the runtime starts (its workers and its blocking-pool
    /// threads), on that thread, before it runs any task: to name it for a profiler, set
    /// its CPU affinity or priority, or initialise a thread-local. It runs inside the
    /// runtime's context ([`Handle::current`] works). A panic in it is caught and logged,
    /// and the thread goes on.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use ringleader_runtime::runtime::Builder;
    ///
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let count = started.clone();
    /// let rt = Builder::new_multi_thread()
    ///     .worker_threads(2)
    ///     .on_thread_start(move || {
    ///         count.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build()?;
    /// rt.block_on(async {});
    /// drop(rt); // joins the workers
    /// assert_eq!(started.load(Ordering::SeqCst), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_thread_start(mut self, hook: impl Fn() + Send + Sync + 'static) -> Builder {
        self.thread_hooks.start = Some(std::sync::Arc::new(hook));
        self
    }

    /// Runs `hook` on every thread the runtime started, on that thread, when it stops
    /// working: a worker at shutdown (the runtime's drop waits for it), a blocking-pool
    /// thread when it exits (idle for [`thread_keep_alive`](Self::thread_keep_alive), or
    /// at shutdown, possibly just after the runtime's drop returned). A panic in it is
    /// caught and logged.
    pub fn on_thread_stop(mut self, hook: impl Fn() + Send + Sync + 'static) -> Builder {
        self.thread_hooks.stop = Some(std::sync::Arc::new(hook));
        self
    }

    /// Stack size of worker threads, in bytes.
    pub fn thread_stack_size(mut self, bytes: usize) -> Builder {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// Turns off the LIFO slot of the multi-thread flavour: woken tasks always go to the back
    /// of the local queue. (The current-thread flavour never uses it.)
    pub fn disable_lifo_slot(mut self) -> Builder {
        self.lifo_slot = false;
        self
    }

    /// Ticks between checks of the shared injection queue. By default the interval is
    /// tuned from measured poll times (starting at 61) so the queue is visited about every
    /// 100 µs; setting it fixes it. Must be at least 1: [`build`](Self::build) returns
    /// `InvalidInput` for 0.
    pub fn global_queue_interval(mut self, ticks: u32) -> Builder {
        self.global_queue_interval = Some(ticks);
        self
    }

    /// Builds the runtime and starts its worker threads.
    ///
    /// # Errors
    /// `InvalidInput`, naming the setting, for zero `worker_threads`, zero
    /// `max_blocking_threads`, zero `global_queue_interval`, or `io_ring_entries` outside
    /// 1..=32768; the OS error if an io_uring or a worker thread cannot be set up (the
    /// threads already started are stopped first).
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.flavor {
            Flavor::CurrentThread => 1,
            Flavor::MultiThread => self.worker_threads.unwrap_or_else(num_cpus::get),
        };
        if workers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "worker_threads must be at least 1: a runtime needs at least one worker thread",
            ));
        }
        if self.global_queue_interval == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "global_queue_interval must be at least 1",
            ));
        }
        if self.max_blocking_threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_blocking_threads must be at least 1",
            ));
        }
        if !(1..=MAX_IO_RING_ENTRIES).contains(&self.io_ring_entries) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "io_ring_entries must be between 1 and {MAX_IO_RING_ENTRIES}, got {}",
                    self.io_ring_entries
                ),
            ));
        }
        // Each core parks on its own io_uring; a kernel without one fails the build with
        // the cause named.
        #[cfg(not(ringleader_loom))]
        let parkers: Vec<Box<dyn Park>> = {
            let config = crate::driver::ring::RingConfig {
                entries: self.io_ring_entries,
                single_thread: self.flavor == Flavor::MultiThread,
                runtime: {
                    static NEXT_RUNTIME: std::sync::atomic::AtomicUsize =
                        std::sync::atomic::AtomicUsize::new(0);
                    NEXT_RUNTIME.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                },
            };
            let mut parkers = Vec::with_capacity(workers);
            for index in 0..workers {
                let ring = crate::driver::ring::RingShared::new(index, config)?;
                parkers.push(Box::new(crate::driver::ring::RingParker::new(ring)) as Box<dyn Park>);
            }
            parkers
        };
        #[cfg(ringleader_loom)]
        let parkers: Vec<Box<dyn Park>> = (0..workers)
            .map(|_| Box::new(ThreadParker::new()) as Box<dyn Park>)
            .collect();
        let debug = self
            .debug
            .unwrap_or_else(|| std::env::var_os("RINGLEADER_DEBUG").is_some_and(|v| v == "1"));
        let config = Config {
            lifo_slot: self.lifo_slot,
            global_queue_interval: self.global_queue_interval,
            slow_poll_threshold: debug.then_some(self.slow_poll_threshold),
            start_paused: self.start_paused,
            on_task_panic: self.on_task_panic,
            unhandled_panic: self.unhandled_panic,
            current_thread: self.flavor == Flavor::CurrentThread,
        };
        let blocking = BlockingPool::new(
            self.max_blocking_threads,
            self.thread_keep_alive,
            format!("{}-blocking", self.thread_name),
            self.thread_hooks.clone(),
        );
        let shared = Shared::new(workers, parkers, config, blocking);
        let handle = Handle { shared };
        let mut runtime = Runtime {
            handle,
            flavor: self.flavor,
            threads: Vec::new(),
        };
        if self.flavor == Flavor::MultiThread {
            for index in 0..workers {
                let handle = runtime.handle.clone();
                let mut builder =
                    std::thread::Builder::new().name(format!("{}-{index}", self.thread_name));
                if let Some(size) = self.thread_stack_size {
                    builder = builder.stack_size(size);
                }
                let hooks = self.thread_hooks.clone();
                let thread = builder.spawn(move || {
                    let _enter = handle.enter();
                    let _hooks = hooks.started();
                    scheduler::run_worker(handle.shared.clone(), index);
                })?;
                // On error, `runtime` is dropped here and stops the threads started so far.
                runtime.threads.push(thread);
            }
        }
        Ok(runtime)
    }
}

/// A ringleader runtime: worker threads, their queues and the live tasks.
///
/// Dropping it shuts it down: every task still alive is cancelled (its future dropped once,
/// on a runtime thread), the workers are joined, and nothing is left behind.
///
/// Unlike tokio's, dropping it inside an async context does not panic: on one of its own
/// workers the drop does not wait for the workers (they exit when their polls return);
/// inside another runtime's task or `block_on` it blocks that thread until this runtime's
/// workers finish their current polls, so drop it outside async code, or in
/// `spawn_blocking`, when those polls may be long.
pub struct Runtime {
    handle: Handle,
    flavor: Flavor,
    threads: Vec<ThreadHandle<()>>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("flavor", &self.flavor)
            .field("workers", &self.handle.shared.num_workers())
            .finish()
    }
}

impl Runtime {
    /// A multi-thread runtime with default settings.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::new_multi_thread().build()
    }

    /// The handle: spawn from any thread, enter the runtime context.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task; see [`Handle::spawn`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn_named(future, None, Location::caller())
    }

    /// Runs `future` to completion on the calling thread and returns its output.
    ///
    /// Inside, [`spawn`](crate::spawn) and [`Handle::current`] refer to this runtime. On the
    /// multi-thread flavour the future is polled on the calling thread, which is not a
    /// worker (so spawns from it go through the shared queue); on the current-thread flavour
    /// this thread also runs every task.
    ///
    /// # Panics
    /// - When called from a thread that is running tasks of a runtime (inside a task): that
    ///   would block the worker and could deadlock. Spawn the future and await its handle.
    /// - When called from inside another `block_on` on the same thread (of this or any
    ///   runtime), as tokio's "Cannot start a runtime from within a runtime": the outer
    ///   future would stop being polled. Await the future instead.
    /// - With the runtime's shutdown report, if the runtime was built with
    ///   [`UnhandledPanic::ShutdownRuntime`] and a task panicked unobserved.
    ///
    /// Either way the thread is left outside `block_on` and the runtime stays usable.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Shuts down, waiting at most `timeout` for workers to finish their current polls.
    /// Workers still busy after that are detached (they exit when their poll returns).
    ///
    /// Unlike tokio's, callable (and never panicking) in an async context, as is dropping a
    /// `Runtime` there: called on one of this runtime's own workers it does not wait at all
    /// (that worker could never be joined); elsewhere the caller blocks for up to `timeout`,
    /// stalling the task it runs in, so prefer calling it outside tasks or from
    /// `spawn_blocking`.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(timeout));
    }

    /// Shuts down without waiting for busy workers; see [`shutdown_timeout`](Self::shutdown_timeout).
    pub fn shutdown_background(mut self) {
        self.shutdown(Some(Duration::ZERO));
    }

    fn shutdown(&mut self, timeout: Option<Duration>) {
        let shared = self.handle.shared.clone();
        if shared.is_shutdown() && self.threads.is_empty() {
            return;
        }
        // An overflowing timeout (`Duration::MAX`) is no bound.
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        shared.begin_shutdown();
        match self.flavor {
            Flavor::CurrentThread => scheduler::shutdown_undriven_cores(&shared),
            Flavor::MultiThread => {
                let on_own_worker = scheduler::current_worker_index(&shared).is_some();
                let timeout = if on_own_worker {
                    Some(Duration::ZERO)
                } else {
                    timeout
                };
                let all_exited = shared.wait_exited(self.threads.len(), timeout);
                if all_exited {
                    for thread in self.threads.drain(..) {
                        let _ = thread.join();
                    }
                } else {
                    self.threads.clear();
                }
            }
        }
        // Queued blocking jobs were cancelled with the registry; running ones get what is
        // left of the timeout.
        let remaining = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        shared.blocking.shutdown(remaining);
        shared.drain_injector();
        // The watchers' abort handles reference their tasks, which reference the runtime:
        // break the cycle (the tasks themselves were cancelled with the rest).
        #[cfg(not(ringleader_loom))]
        crate::loom::lock(&shared.fd_watchers).clear();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

/// Wakes a `block_on` thread: marks its activity, then unparks it.
struct ThreadWaker {
    unpark: std::sync::Arc<dyn Unpark>,
    activity: std::sync::Arc<BlockOnActivity>,
}

impl Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        // Marked woken before the unpark, so a paused clock never sees this thread idle
        // between the wake-up and its next poll.
        self.activity.woken();
        self.unpark.unpark()
    }
}

/// What a `block_on` needs on its thread: the parker, its unpark handle, the activity the
/// paused clock reads, and the waker over both. Made at a thread's first `block_on` and
/// kept for the next (`block_on` cannot nest), which spares each call five allocations.
/// A waker kept from an earlier call can only unpark the thread spuriously: the loop
/// polls again and parks again.
struct BlockOnKit {
    parker: Box<dyn Park>,
    /// The thread's own ring, when the parker is one.
    #[cfg(not(ringleader_loom))]
    ring: Option<Arc<crate::driver::ring::RingShared>>,
    unpark: std::sync::Arc<dyn Unpark>,
    activity: std::sync::Arc<BlockOnActivity>,
    waker: Waker,
}

#[cfg(not(ringleader_loom))]
thread_local! {
    static BLOCK_ON_KIT: std::cell::Cell<Option<BlockOnKit>> = const { std::cell::Cell::new(None) };
}

impl BlockOnKit {
    /// The thread's kit, made if it has none (or while its thread-locals are torn down).
    fn take() -> BlockOnKit {
        #[cfg(not(ringleader_loom))]
        if let Some(kit) = BLOCK_ON_KIT.try_with(|k| k.take()).ok().flatten() {
            return kit;
        }
        BlockOnKit::new()
    }

    fn new() -> BlockOnKit {
        // A ring of this thread's own when one can be set up: its I/O completes where it
        // waits; otherwise a condvar, with I/O handed to a worker's ring.
        #[cfg(not(ringleader_loom))]
        let ring_parker = crate::driver::ring::block_on_parker();
        #[cfg(not(ringleader_loom))]
        let ring = ring_parker.as_ref().and_then(|p| p.ring());
        #[cfg(not(ringleader_loom))]
        let parker: Box<dyn Park> = match ring_parker {
            Some(p) => Box::new(p),
            None => Box::new(ThreadParker::new()),
        };
        #[cfg(ringleader_loom)]
        let parker: Box<dyn Park> = Box::new(ThreadParker::new());
        let unpark = parker.unparker();
        let activity = std::sync::Arc::new(BlockOnActivity::new());
        let waker = Waker::from(std::sync::Arc::new(ThreadWaker {
            unpark: unpark.clone(),
            activity: activity.clone(),
        }));
        BlockOnKit {
            parker,
            #[cfg(not(ringleader_loom))]
            ring,
            unpark,
            activity,
            waker,
        }
    }

    /// Keeps the kit for the thread's next `block_on`.
    fn put_back(self) {
        #[cfg(not(ringleader_loom))]
        let _ = BLOCK_ON_KIT.try_with(|k| k.set(Some(self)));
    }
}

/// Polls `future` on this thread, parking the thread between wake-ups.
fn park_on_thread<F: Future>(shared: &Arc<Shared>, future: F) -> F::Output {
    let mut kit = BlockOnKit::take();
    #[cfg(not(ringleader_loom))]
    let _ring = crate::driver::ring::set_current(kit.ring.clone());
    let BlockOnKit {
        parker,
        activity,
        waker,
        unpark,
        ..
    } = &mut kit;
    // A kit kept from an earlier call may have been woken since: start afresh.
    activity.running();
    let mut cx = Context::from_waker(waker);
    struct Registered<'a>(&'a Shared, u64);
    impl Drop for Registered<'_> {
        fn drop(&mut self) {
            self.0.remove_block_on(self.1);
        }
    }
    let registered = Registered(
        shared,
        shared.add_block_on(unpark.clone(), activity.clone()),
    );
    let out = {
        let mut future = pin!(future);
        loop {
            if shared.panic_shutdown_report().is_some() {
                scheduler::panic_for_shutdown(shared);
            }
            if let Poll::Ready(out) = ringleader_coop::with_budget(|| future.as_mut().poll(&mut cx))
            {
                break out;
            }
            if shared.is_shutdown() {
                if shared.panic_shutdown_report().is_some() {
                    scheduler::panic_for_shutdown(shared);
                }
                // Only a `Handle::block_on` can see this (a `Runtime` in `block_on` cannot
                // be dropped meanwhile): the workers and timers it may wait on are gone.
                panic!(
                    "the runtime shut down while Handle::block_on was still waiting on its \
                     future; keep the Runtime alive until block_on returns"
                );
            }
            if activity.try_idle() {
                shared.block_on_went_idle();
                parker.park(None);
            }
            activity.running();
        }
    };
    // The future is gone: submit the cancellations its dropped operations queued.
    parker.maintain();
    drop(registered);
    kit.put_back();
    out
}

/// A cloneable reference to a runtime: spawn onto it from any thread, or enter its context.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.shared.num_workers())
            .finish()
    }
}

/// Returned by [`Handle::try_current`] outside a runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryCurrentError(());

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not inside a ringleader runtime (no task, block_on or Handle::enter)")
    }
}

impl std::error::Error for TryCurrentError {}

/// Keeps a runtime's context entered on this thread until dropped.
#[must_use = "the runtime context is left when the guard is dropped"]
#[derive(Debug)]
pub struct EnterGuard {
    previous: Option<Handle>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}

impl Handle {
    /// The handle of the runtime whose context this thread is in.
    ///
    /// # Panics
    /// Outside a runtime; see [`try_current`](Self::try_current).
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(handle) => handle,
            Err(e) => panic!("Handle::current: {e}"),
        }
    }

    /// The handle of the runtime whose context this thread is in, if any.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        CURRENT
            .try_with(|c| c.borrow().clone())
            .ok()
            .flatten()
            .ok_or(TryCurrentError(()))
    }

    /// Runs `f` with the handle of the runtime whose context this thread is in, borrowed
    /// (no reference count is touched: hot paths such as `sleep` on a `block_on` thread).
    pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
        let mut f = Some(f);
        let out = CURRENT.try_with(|c| (f.take().expect("called once"))(c.borrow().as_ref()));
        match out {
            Ok(out) => out,
            // The thread-local is being destroyed: no context.
            Err(_) => (f.take().expect("called once"))(None),
        }
    }

    /// Runs `future` to completion on the calling thread, as [`Runtime::block_on`] does,
    /// from anywhere a [`Handle`] reaches: a thread of its own, or a
    /// [`to_thread`](crate::task::to_thread) closure that needs async code
    /// (`Handle::current().block_on(...)`). The future need not be `Send` or `'static`.
    ///
    /// On the current-thread flavour, this thread drives the runtime (runs its tasks,
    /// timers and I/O) while no other thread is in `block_on`; if one is, it does that,
    /// and this thread waits on its own future only.
    ///
    /// ```
    /// use ringleader_runtime::runtime::{Builder, Handle};
    /// use std::time::Duration;
    ///
    /// let rt = Builder::new_multi_thread().worker_threads(1).build()?;
    /// let total = rt.block_on(async {
    ///     ringleader_runtime::task::to_thread(|| {
    ///         // Blocking code that needs a bit of async in the middle.
    ///         Handle::current().block_on(async {
    ///             ringleader_runtime::time::sleep(Duration::from_millis(1)).await;
    ///             40 + 2
    ///         })
    ///     })
    ///     .await
    ///     .unwrap()
    /// });
    /// assert_eq!(total, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// - As [`Runtime::block_on`]: inside a task, or inside another `block_on` on the same
    ///   thread.
    /// - If the runtime shuts down (its `Runtime` is dropped) while `future` still waits:
    ///   its timers would never fire again. Keep the `Runtime` alive meanwhile, or spawn
    ///   the work and use [`JoinHandle::blocking_wait`](crate::task::JoinHandle::blocking_wait),
    ///   which returns the task's cancellation instead.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _in_block_on = BlockOnGuard::enter();
        let _enter = self.enter();
        let future = if self.shared.config.current_thread {
            match scheduler::block_on_core(&self.shared, future) {
                Ok(out) => return out,
                // Another thread drives the core: wait on our own future only.
                Err(future) => future,
            }
        } else {
            future
        };
        park_on_thread(&self.shared, future)
    }

    /// Enters this runtime's context on the calling thread: [`spawn`](crate::spawn) and
    /// [`Handle::current`] refer to it until the guard drops.
    pub fn enter(&self) -> EnterGuard {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        EnterGuard { previous }
    }

    /// Spawns a task onto this runtime from any thread (asyncio's `create_task`, and
    /// `run_coroutine_threadsafe` when called from outside).
    ///
    /// A task spawned after the runtime shut down is cancelled at once: its handle returns a
    /// cancelled [`JoinError`](crate::task::JoinError).
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_named(future, None, Location::caller())
    }

    pub(crate) fn spawn_named<F>(
        &self,
        future: F,
        name: Option<Box<str>>,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(future, name, None, None, location)
    }

    /// [`spawn_named`](Self::spawn_named) with a done hook (see `task::Builder::done_hook`)
    /// and, if `worker` is given, pinned to worker `worker % num_workers`.
    pub(crate) fn spawn_with<F>(
        &self,
        future: F,
        name: Option<Box<str>>,
        hook: Option<std::sync::Arc<dyn task::DoneHook>>,
        worker: Option<usize>,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match worker {
            None => {
                let (task, notified, join) =
                    task::new_task(future, self.shared.clone(), name, location, hook);
                Shared::bind_and_schedule(&self.shared, task, notified, None);
                join
            }
            Some(worker) => {
                let worker = worker % self.shared.num_workers();
                let scheduler = crate::scheduler::PinnedSchedule {
                    shared: self.shared.clone(),
                    worker,
                };
                let (task, notified, join) =
                    task::new_task(future, scheduler, name, location, hook);
                Shared::bind_and_schedule(&self.shared, task, notified, Some(worker));
                join
            }
        }
    }

    /// Runs `f` on this runtime's blocking pool; see [`spawn_blocking`](crate::spawn_blocking).
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (task, notified, join) = task::new_task(
            BlockingTask::new(f),
            BlockingSchedule(self.shared.clone()),
            None,
            Location::caller(),
            None,
        );
        match self.shared.registry.bind(task) {
            Ok(()) => Shared::blocking_schedule(&self.shared, notified),
            Err(task) => {
                task.shutdown();
                drop(notified);
            }
        }
        join
    }

    /// Runs `f` on a worker soon (asyncio's `loop.call_soon`, and `call_soon_threadsafe`:
    /// this one is callable from any thread). Callbacks run one at a time in the order they
    /// were queued. The returned handle can cancel it before it runs.
    pub fn call_soon(&self, f: impl FnOnce() + Send + 'static) -> CallbackHandle {
        callbacks::call_soon(self, Box::new(f))
    }

    /// Runs `f` after `delay` (asyncio's `loop.call_later`); callable from any thread. The
    /// returned handle cancels it (and frees its timer) if it has not run yet.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + Send + 'static) -> CallbackHandle {
        let when = {
            let now = crate::time::Instant::from_std(self.shared.time.clock.now());
            now.checked_add(delay).unwrap_or(now)
        };
        callbacks::call_at(self, when, Box::new(f))
    }

    /// Runs `f` at `when` on the runtime's clock (asyncio's `loop.call_at`).
    pub fn call_at(
        &self,
        when: crate::time::Instant,
        f: impl FnOnce() + Send + 'static,
    ) -> CallbackHandle {
        callbacks::call_at(self, when, Box::new(f))
    }

    /// Calls `callback` on a worker whenever `fd` is readable, until
    /// [`remove_reader`](Self::remove_reader) (asyncio's `loop.add_reader`). A reader already
    /// registered for `fd` is replaced. Level-triggered, as asyncio's: a callback that leaves
    /// data unread is called again (after other tasks had their turn).
    ///
    /// The fd is borrowed: keep it open until the reader is removed. If polling it fails (a
    /// closed fd: `EBADF`) the reader is removed and the error logged.
    #[cfg(not(ringleader_loom))]
    pub fn add_reader(&self, fd: std::os::fd::RawFd, callback: impl FnMut() + Send + 'static) {
        self.add_watcher(fd, false, Box::new(callback));
    }

    /// As [`add_reader`](Self::add_reader), for writability (asyncio's `loop.add_writer`).
    #[cfg(not(ringleader_loom))]
    pub fn add_writer(&self, fd: std::os::fd::RawFd, callback: impl FnMut() + Send + 'static) {
        self.add_watcher(fd, true, Box::new(callback));
    }

    /// Stops the reader of `fd`; `true` if there was one. No callback starts after this
    /// returns (one already running on another worker finishes).
    #[cfg(not(ringleader_loom))]
    pub fn remove_reader(&self, fd: std::os::fd::RawFd) -> bool {
        self.remove_watcher(fd, false)
    }

    /// Stops the writer of `fd`; `true` if there was one.
    #[cfg(not(ringleader_loom))]
    pub fn remove_writer(&self, fd: std::os::fd::RawFd) -> bool {
        self.remove_watcher(fd, true)
    }

    #[cfg(not(ringleader_loom))]
    fn add_watcher(
        &self,
        fd: std::os::fd::RawFd,
        write: bool,
        mut callback: Box<dyn FnMut() + Send>,
    ) {
        use std::sync::atomic::AtomicBool as StdBool;
        let active = std::sync::Arc::new(StdBool::new(true));
        let events = if write { libc::POLLOUT } else { libc::POLLIN } as u32;
        let shared = self.shared.clone();
        let flag = active.clone();
        let task = self.spawn(async move {
            while flag.load(StdOrdering::Acquire) {
                match crate::driver::ops::poll(fd, events).await {
                    Ok(_) if flag.load(StdOrdering::Acquire) => callback(),
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(fd, %err, write, "polling a watched fd failed; its watcher is removed");
                        let mut watchers = crate::loom::lock(&shared.fd_watchers);
                        if watchers.get(&(fd, write)).is_some_and(|w| std::sync::Arc::ptr_eq(&w.0, &flag)) {
                            watchers.remove(&(fd, write));
                        }
                        break;
                    }
                }
                // Level-triggered: a callback that left the fd ready runs again, but only
                // after other tasks had their turn.
                crate::task::yield_now().await;
            }
        });
        let previous = crate::loom::lock(&self.shared.fd_watchers)
            .insert((fd, write), (active, task.abort_handle()));
        if let Some((flag, abort)) = previous {
            flag.store(false, StdOrdering::Release);
            abort.abort();
        }
    }

    #[cfg(not(ringleader_loom))]
    fn remove_watcher(&self, fd: std::os::fd::RawFd, write: bool) -> bool {
        let removed = crate::loom::lock(&self.shared.fd_watchers).remove(&(fd, write));
        match removed {
            Some((flag, abort)) => {
                flag.store(false, StdOrdering::Release);
                abort.abort();
                true
            }
            None => false,
        }
    }

    /// The live tasks of this runtime, by id (asyncio's `all_tasks`).
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.shared.registry.snapshot()
    }

    /// Counters of the scheduler.
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics {
            shared: self.shared.clone(),
        }
    }
}

/// Scheduler counters. Per-worker counters are written by their worker only (relaxed) and
/// read here without stopping anything, so a reading is a recent snapshot, not an instant.
#[derive(Clone)]
pub struct RuntimeMetrics {
    shared: Arc<Shared>,
}

impl fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let workers: Vec<_> = (0..self.num_workers())
            .map(|i| {
                (
                    self.worker_poll_count(i),
                    self.worker_steal_count(i),
                    self.worker_park_count(i),
                )
            })
            .collect();
        f.debug_struct("RuntimeMetrics")
            .field("alive_tasks", &self.num_alive_tasks())
            .field("injector_depth", &self.injector_depth())
            .field("workers (polls, stolen, parks)", &workers)
            .finish()
    }
}

impl RuntimeMetrics {
    /// Number of workers.
    pub fn num_workers(&self) -> usize {
        self.shared.num_workers()
    }
    /// Tasks spawned and not yet finished.
    pub fn num_alive_tasks(&self) -> usize {
        self.shared.registry.len()
    }
    /// Tasks waiting in the shared injection queue.
    pub fn injector_depth(&self) -> usize {
        self.shared.injector_depth()
    }
    fn stat(&self, worker: usize, f: impl Fn(&scheduler::WorkerStats) -> u64) -> u64 {
        self.shared.stats.get(worker).map(|s| f(s)).unwrap_or(0)
    }
    /// Task polls by `worker`.
    pub fn worker_poll_count(&self, worker: usize) -> u64 {
        self.stat(worker, |s| s.polls.load(StdOrdering::Relaxed))
    }
    /// Tasks `worker` took from its peers' queues.
    pub fn worker_steal_count(&self, worker: usize) -> u64 {
        self.stat(worker, |s| s.stolen.load(StdOrdering::Relaxed))
    }
    /// Successful steal operations (each moves a batch) by `worker`.
    pub fn worker_steal_operations(&self, worker: usize) -> u64 {
        self.stat(worker, |s| s.steal_ops.load(StdOrdering::Relaxed))
    }
    /// Times `worker` parked.
    pub fn worker_park_count(&self, worker: usize) -> u64 {
        self.stat(worker, |s| s.parks.load(StdOrdering::Relaxed))
    }
    /// Polls of tasks taken from `worker`'s LIFO slot.
    pub fn worker_lifo_hits(&self, worker: usize) -> u64 {
        self.stat(worker, |s| s.lifo_hits.load(StdOrdering::Relaxed))
    }
    /// Tasks in `worker`'s local queue now (the LIFO slot not counted).
    pub fn worker_local_queue_depth(&self, worker: usize) -> usize {
        self.shared.local_queue_depth(worker)
    }
    /// Blocking-pool threads running a job now.
    pub fn blocking_threads_busy(&self) -> usize {
        self.shared.blocking.num_busy()
    }
    /// Blocking-pool threads alive and waiting for a job.
    pub fn blocking_threads_idle(&self) -> usize {
        self.shared.blocking.num_idle()
    }
    /// Blocking jobs queued and not yet started.
    pub fn blocking_queue_depth(&self) -> usize {
        self.shared.blocking.queue_depth()
    }
    /// The io_uring setup flags worker `worker`'s ring got, probed at build time:
    /// `"SINGLE_ISSUER|DEFER_TASKRUN"`, `"COOP_TASKRUN"` or `"none"`; `None` for a worker
    /// index out of range.
    pub fn io_ring_flags(&self, worker: usize) -> Option<&'static str> {
        #[cfg(not(ringleader_loom))]
        return self.shared.rings.get(worker).map(|r| r.flavor().describe());
        #[cfg(ringleader_loom)]
        {
            let _ = worker;
            None
        }
    }
    /// Timers armed (sleeps waiting) across all workers.
    pub fn timers_armed(&self) -> u64 {
        self.shared.time.armed()
    }
    /// Workers searching for work now.
    pub fn num_searching_workers(&self) -> usize {
        self.shared.idle.num_searching()
    }
    /// Workers parked now.
    pub fn num_parked_workers(&self) -> usize {
        self.shared.idle.num_sleeping()
    }
}

/// Runs `future` to completion on a new multi-thread runtime, then cancels every task still
/// alive and shuts the runtime down (asyncio's `asyncio.run`).
///
/// ```
/// let answer = ringleader_runtime::run(async {
///     let task = ringleader_runtime::spawn(async { 21 * 2 });
///     task.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
///
/// # Panics
/// If the runtime cannot be started (see [`try_run`] for an error instead), or if called
/// from inside a task or another `block_on` (see [`Runtime::block_on`]).
#[track_caller]
pub fn run<F: Future>(future: F) -> F::Output {
    match try_run(future) {
        Ok(out) => out,
        Err(e) => panic!("ringleader::run: failed to start the runtime: {e}"),
    }
}

/// [`run`], returning an error if the runtime cannot be started.
///
/// # Errors
/// As [`Builder::build`].
///
/// # Panics
/// As [`Runtime::block_on`]: inside a task or another `block_on`.
#[track_caller]
pub fn try_run<F: Future>(future: F) -> io::Result<F::Output> {
    let rt = Builder::new_multi_thread().build()?;
    let out = rt.block_on(future);
    drop(rt);
    Ok(out)
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Handle>();
    is::<Runtime>();
    is::<JoinHandle<()>>();
    is::<task::AbortHandle>();
    is::<task::JoinError>();
}
