//! The work-stealing scheduler.
//!
//! # Structure
//! Each worker owns a FIFO local queue (crossbeam-deque `Worker`), a LIFO slot and a
//! [`Core`] (tick counter, random source, parker). All workers share the `Injector` (spawns
//! and wakes from threads that are not workers of this runtime), every worker's `Stealer`,
//! the [`Idle`](idle::Idle) bookkeeping, and the live-task registry. The current-thread
//! flavour is the same machinery with one core and no threads: `block_on` drives the core.
//!
//! # Where a task goes when it becomes runnable
//! - spawned or woken on a worker of its runtime: into the LIFO slot; the slot's previous
//!   occupant moves to the back of the local queue (message passing then runs the receiver
//!   next, while its data is hot in cache);
//! - woken by itself while running (`yield_now`, budget exhaustion): back of the local queue;
//! - from anywhere else: the injector, and a sleeping worker is notified.
//!
//! A task *pinned* to a worker (`task::Builder::pin_to_worker`) never enters a stealable
//! queue: on its worker it goes to that worker's pinned queue (FIFO, not stealable, no LIFO
//! slot); from anywhere else to the worker's inbox, and that worker is unparked. The worker
//! alternates its pinned and local queues tick by tick, and moves its inbox into the pinned
//! queue whenever it looks at it. This is the thread-per-core placement (monoio, glommio)
//! inside the work-stealing runtime: a connection's task, its ring and its cache stay on one
//! core; the price is that an idle worker cannot take over a busy worker's pinned tasks.
//!
//! Completions reaped from a worker's ring wake their tasks on that worker (LIFO slot and
//! local queue) as one batch, with one notification of a sleeper for the batch, sent after
//! it. A worker whose queues are empty dispatches its ring's completions, if any are
//! already there, before it steals from peers: tasks stay with the ring their I/O is on.
//!
//! # Fairness guarantee
//! If the number of tasks is bounded and every poll returns in bounded time, every runnable
//! task is polled within a bounded delay. Argument: a worker takes the LIFO slot at most
//! [`MAX_LIFO_POLLS`] times in a row, then moves it to the back of its FIFO local queue; it
//! checks the injector first every [`GLOBAL_QUEUE_INTERVAL`] ticks even while its local
//! queue is busy; its local queue is FIFO, so a task in it waits for at most the tasks ahead
//! of it (bounded) plus the injector and LIFO interleavings (bounded by the two rules above);
//! tasks in an idle worker's queues are stolen by searching workers. ringleader's leaf futures
//! spend a per-poll budget (`ringleader-coop`) so that an always-ready task still returns
//! within bounded work. crossbeam's local queue is unbounded, so the bound is on *delay
//! in polls*, not on queue length.
//!
//! # Shutdown order
//! The runtime's owner sets `shutdown` and unparks every worker. Each worker, at its next
//! iteration, closes the registry and cancels every task still in it (dropping each future
//! exactly once, on that worker), drops the references in its own queues, and exits. The owner
//! joins the workers, then drains the injector.

pub(crate) mod idle;
pub(crate) mod queue;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::ptr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::blocking::BlockingPool;
use crate::callbacks::CallSoonQueue;
use crate::loom::{lock, Arc, AtomicBool, Condvar, Mutex, Ordering};
use crate::park::{BlockOnActivity, Park, Unpark};
use crate::task::{Notified, RawTask, Registry, Schedule, Task};
use crate::time::driver::TimeDriver;
use idle::Idle;
use queue::{Injector, Local, Steal, Stealer};

/// How often (in ticks) a worker first checks the injector before its own queues, until
/// the interval is tuned. A prime so that it does not fall into step with periodic
/// workloads; 61 as in common practice.
pub(crate) const GLOBAL_QUEUE_INTERVAL: u32 = 61;
/// The tuned interval aims to visit the injector about this often, whatever the poll
/// length: a guess that keeps remote spawns' latency low without checking the shared queue
/// on every tick.
const GLOBAL_QUEUE_TARGET: std::time::Duration = std::time::Duration::from_micros(100);
const MIN_GLOBAL_INTERVAL: u32 = 2;
const MAX_GLOBAL_INTERVAL: u32 = 127;
/// Consecutive polls of the LIFO slot before its task goes to the back of the queue.
pub(crate) const MAX_LIFO_POLLS: u8 = 3;

/// Runtime settings the scheduler reads.
pub(crate) struct Config {
    pub(crate) lifo_slot: bool,
    /// `Some`: a fixed injector-check interval; `None`: tuned from measured poll times.
    pub(crate) global_queue_interval: Option<u32>,
    /// Debug mode: log polls longer than this.
    pub(crate) slow_poll_threshold: Option<Duration>,
    /// The clock starts paused (tests).
    pub(crate) start_paused: bool,
    /// Called for panics nobody observed; `None`: log them.
    pub(crate) on_task_panic: Option<TaskPanicHandler>,
    /// Whether such a panic shuts the runtime down.
    pub(crate) unhandled_panic: crate::runtime::UnhandledPanic,
    /// The current-thread flavour: its one core is driven by whichever `block_on` takes it.
    pub(crate) current_thread: bool,
}

/// Watchers of fds for readability or writability.
#[cfg(not(ringleader_loom))]
pub(crate) type FdWatchers = std::collections::HashMap<
    (std::os::fd::RawFd, bool),
    (
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        crate::task::AbortHandle,
    ),
>;

/// The user's handler for unobserved task panics.
#[derive(Clone)]
pub(crate) struct TaskPanicHandler(
    pub(crate) std::sync::Arc<dyn Fn(&crate::task::UnhandledTaskPanic<'_>) + Send + Sync + 'static>,
);

impl std::fmt::Debug for TaskPanicHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskPanicHandler(..)")
    }
}

/// Ticks between checks for due timers while a worker is busy.
const TIMER_INTERVAL: u32 = 16;

/// Per-worker counters: relaxed, written only by their worker.
#[derive(Default)]
pub(crate) struct WorkerStats {
    pub(crate) polls: AtomicU64,
    pub(crate) steal_ops: AtomicU64,
    pub(crate) stolen: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) lifo_hits: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    // Only the owning worker writes: a load and a store avoid a locked instruction.
    counter.store(
        counter.load(std::sync::atomic::Ordering::Relaxed) + n,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// The state every worker and handle of one runtime shares.
pub(crate) struct Shared {
    injector: Injector<Notified>,
    /// Per worker: its pinned tasks woken or spawned on other threads.
    inboxes: Box<[Injector<Notified>]>,
    stealers: Box<[Stealer<Notified>]>,
    unparkers: Box<[std::sync::Arc<dyn Unpark>]>,
    pub(crate) idle: Idle,
    pub(crate) registry: Registry,
    pub(crate) blocking: BlockingPool,
    pub(crate) call_soon: CallSoonQueue,
    pub(crate) time: TimeDriver,
    shutdown: AtomicBool,
    pub(crate) config: Config,
    pub(crate) stats: Box<[CachePadded<WorkerStats>]>,
    /// Cores not currently claimed by a thread.
    cores: Mutex<Vec<Option<Box<Core>>>>,
    /// Each core's io_uring (empty under loom), for operations started on threads that
    /// drive no core.
    #[cfg(not(ringleader_loom))]
    pub(crate) rings: Box<[std::sync::Arc<crate::driver::ring::RingShared>]>,
    /// `Handle::add_reader` / `add_writer` watchers by (fd, is_writer): the flag that
    /// stops new callbacks, and the watching task.
    #[cfg(not(ringleader_loom))]
    pub(crate) fd_watchers: Mutex<FdWatchers>,
    /// Set (with the report) when an unobserved panic shut the runtime down.
    pub(crate) panic_shutdown: Mutex<Option<String>>,
    /// Threads inside `block_on` on this runtime that drive no core: woken by a panic
    /// shutdown, and waited for by the paused clock's auto-advance.
    block_on_waiters: Mutex<Vec<BlockOnThread>>,
    /// Workers that have finished their shutdown work, for `shutdown_timeout`.
    exited: Mutex<usize>,
    exited_cv: Condvar,
}

/// A thread inside `block_on` that drives no core.
struct BlockOnThread {
    key: u64,
    unpark: std::sync::Arc<dyn Unpark>,
    activity: std::sync::Arc<BlockOnActivity>,
}

/// What one worker owns: handed to the thread that drives it.
pub(crate) struct Core {
    index: usize,
    local: Local<Notified>,
    /// Runnable tasks pinned to this worker (moved into the `WorkerCtx` while driven).
    pinned: VecDeque<Notified>,
    tick: u32,
    /// Injector-check interval in ticks, and where the last check happened.
    global_interval: u32,
    last_global_check: (u32, Option<std::time::Instant>),
    lifo_streak: u8,
    searching: bool,
    rng: u64,
    parker: Box<dyn Park>,
}

/// The thread-local view of the core a thread is driving.
pub(crate) struct WorkerCtx {
    shared: Arc<Shared>,
    index: usize,
    local: Local<Notified>,
    /// Runnable tasks pinned to this worker, queued on this thread.
    pinned: RefCell<VecDeque<Notified>>,
    lifo: Cell<Option<Notified>>,
    /// Set while this worker's parker dispatches a batch of I/O completions: a push then
    /// records in `notify_deferred` that a sleeper is owed a notification instead of sending
    /// it, and the batch's end sends one for all (see `batch`).
    batching: Cell<bool>,
    notify_deferred: Cell<bool>,
}

rl_thread_local! {
    static WORKER: Cell<*const WorkerCtx> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with the core this thread drives, if it drives one.
fn with_worker<R>(f: impl FnOnce(Option<&WorkerCtx>) -> R) -> R {
    let ctx = WORKER.try_with(|w| w.get()).unwrap_or(ptr::null());
    // SAFETY: WORKER points at a WorkerCtx on the stack of `drive`, set for exactly the time
    // that frame lives, on this thread only.
    f(unsafe { ctx.as_ref() })
}

/// Runs `f` with the runtime the calling thread is in: the one whose core it drives, else
/// the one whose context it entered.
pub(crate) fn with_current_shared<R>(f: impl FnOnce(Option<&Arc<Shared>>) -> R) -> R {
    let mut f = Some(f);
    let done = with_worker(|w| w.map(|w| (f.take().expect("called once"))(Some(&w.shared))));
    match done {
        Some(out) => out,
        None => crate::runtime::Handle::with_current(|handle| {
            (f.take().expect("called once"))(handle.map(|h| &h.shared))
        }),
    }
}

/// Whether the calling thread is driving a core of some runtime (a worker, or a
/// current-thread `block_on`).
pub(crate) fn on_worker_thread() -> bool {
    with_worker(|w| w.is_some())
}

/// Index of the worker the calling thread drives, for `shared`.
pub(crate) fn current_worker_index(shared: &Shared) -> Option<usize> {
    with_worker(|w| w.filter(|w| ptr::eq(&*w.shared, shared)).map(|w| w.index))
}

impl Shared {
    pub(crate) fn new(
        num_cores: usize,
        parkers: Vec<Box<dyn Park>>,
        config: Config,
        blocking: BlockingPool,
    ) -> Arc<Shared> {
        debug_assert_eq!(parkers.len(), num_cores);
        let mut stealers = Vec::with_capacity(num_cores);
        let mut unparkers = Vec::with_capacity(num_cores);
        let mut cores = Vec::with_capacity(num_cores);
        #[cfg(not(ringleader_loom))]
        let rings: Box<[_]> = parkers.iter().filter_map(|p| p.ring()).collect();
        for (index, parker) in parkers.into_iter().enumerate() {
            let local = Local::new_fifo();
            stealers.push(local.stealer());
            unparkers.push(parker.unparker());
            cores.push(Some(Box::new(Core {
                index,
                local,
                pinned: VecDeque::new(),
                tick: 0,
                global_interval: config
                    .global_queue_interval
                    .unwrap_or(GLOBAL_QUEUE_INTERVAL),
                last_global_check: (0, None),
                lifo_streak: 0,
                searching: false,
                rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
                parker,
            })));
        }
        Arc::new(Shared {
            injector: Injector::new(),
            inboxes: (0..num_cores).map(|_| Injector::new()).collect(),
            stealers: stealers.into(),
            unparkers: unparkers.into(),
            idle: Idle::new(num_cores),
            // One shard under loom: a shard picked by a (process-global) task id would make
            // the model's exploration depend on earlier iterations.
            registry: Registry::new(if crate::loom::MODEL_SCALE {
                1
            } else {
                num_cores * 16
            }),
            blocking,
            call_soon: CallSoonQueue::new(),
            time: TimeDriver::new(num_cores, config.start_paused),
            shutdown: AtomicBool::new(false),
            config,
            stats: (0..num_cores).map(|_| CachePadded::default()).collect(),
            cores: Mutex::new(cores),
            #[cfg(not(ringleader_loom))]
            fd_watchers: Mutex::new(std::collections::HashMap::new()),
            panic_shutdown: Mutex::new(None),
            block_on_waiters: Mutex::new(Vec::new()),
            #[cfg(not(ringleader_loom))]
            rings,
            exited: Mutex::new(0),
            exited_cv: Condvar::new(),
        })
    }

    pub(crate) fn num_workers(&self) -> usize {
        self.stealers.len()
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn injector_depth(&self) -> usize {
        self.injector.len()
    }

    pub(crate) fn local_queue_depth(&self, worker: usize) -> usize {
        self.stealers.get(worker).map_or(0, |s| s.len())
    }

    pub(crate) fn take_core(&self, index: usize) -> Option<Box<Core>> {
        lock(&self.cores)[index].take()
    }

    fn return_core(&self, core: Box<Core>) {
        let index = core.index;
        lock(&self.cores)[index] = Some(core);
    }

    /// Binds a new task to the registry and queues it (on `worker` only, if given); a task
    /// spawned after shutdown is cancelled at once (its JoinHandle reports cancellation).
    pub(crate) fn bind_and_schedule(
        this: &Arc<Shared>,
        task: Task,
        notified: Notified,
        worker: Option<usize>,
    ) {
        match this.registry.bind(task) {
            Ok(()) => {
                tracing::trace!(task.id = notified.id().as_u64(), ?worker, "spawn");
                match worker {
                    Some(worker) => this.schedule_pinned(worker, notified),
                    None => this.schedule(notified),
                }
            }
            Err(task) => {
                task.shutdown();
                drop(notified);
            }
        }
    }

    /// Queues a new blocking task (its reference is the Notified's).
    pub(crate) fn blocking_schedule(this: &Arc<Shared>, task: Notified) {
        this.blocking.push(task, this)
    }

    /// Queues a task pinned to `worker`: its pinned queue when called on that worker, else
    /// its inbox, and that worker is unparked (its unpark is stored if it is not parked, so
    /// a worker about to park sees the inbox's task; see `Core::park`).
    fn schedule_pinned(&self, worker: usize, task: Notified) {
        with_worker(|w| match w {
            Some(w) if w.index == worker && ptr::eq(&*w.shared, self) => {
                // This worker is awake (it is running a task or dispatching completions)
                // and nobody else may run the task: no notification.
                w.pinned.borrow_mut().push_back(task)
            }
            _ => {
                self.inboxes[worker].push(task);
                self.unparkers[worker].unpark();
            }
        })
    }

    fn push_remote(&self, task: Notified) {
        self.injector.push(task);
        self.notify_parked();
    }

    /// Ends `worker`'s current or next park (its timers need a look).
    pub(crate) fn unpark_worker(&self, worker: usize) {
        self.unparkers[worker].unpark();
    }

    /// Wakes a sleeping worker if nobody is searching (see `idle`).
    pub(crate) fn notify_parked(&self) {
        if let Some(index) = self.idle.worker_to_notify() {
            tracing::trace!(worker = index, "unpark");
            self.unparkers[index].unpark();
        }
    }

    fn has_stealable_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// Starts shutdown: every worker leaves its loop at its next iteration.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        for unparker in self.unparkers.iter() {
            unparker.unpark();
        }
        // A `Handle::block_on` on another thread must learn of it (see `park_on_thread`).
        for waiter in lock(&self.block_on_waiters).iter() {
            waiter.unpark.unpark();
        }
    }

    /// Drops the references left in the injector and the inboxes (after the workers are
    /// gone).
    pub(crate) fn drain_injector(&self) {
        for queue in std::iter::once(&self.injector).chain(self.inboxes.iter()) {
            while let Some(task) = steal_one(|| queue.steal()) {
                drop(task);
            }
        }
    }

    /// Whether no inbox holds a task.
    fn inboxes_empty(&self) -> bool {
        self.inboxes.iter().all(|inbox| inbox.is_empty())
    }

    /// Waits until `n` workers have finished shutting down, or `timeout` passes.
    pub(crate) fn wait_exited(&self, n: usize, timeout: Option<Duration>) -> bool {
        let mut exited = lock(&self.exited);
        // An overflowing timeout (`Duration::MAX`) is no bound.
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        while *exited < n {
            match deadline {
                None => {
                    exited = self
                        .exited_cv
                        .wait(exited)
                        .unwrap_or_else(|e| e.into_inner())
                }
                Some(deadline) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    #[cfg(not(ringleader_loom))]
                    {
                        exited = self
                            .exited_cv
                            .wait_timeout(exited, deadline - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    #[cfg(ringleader_loom)]
                    {
                        exited = self
                            .exited_cv
                            .wait(exited)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                }
            }
        }
        true
    }

    fn mark_exited(&self) {
        *lock(&self.exited) += 1;
        self.exited_cv.notify_all();
    }
}

impl Schedule for Arc<Shared> {
    fn schedule(&self, task: Notified) {
        with_worker(|worker| match worker {
            Some(w) if ptr::eq(&*w.shared, &**self) => w.push_local(task, false),
            _ => self.push_remote(task),
        })
    }

    fn yield_now(&self, task: Notified) {
        with_worker(|worker| match worker {
            Some(w) if ptr::eq(&*w.shared, &**self) => w.push_local(task, true),
            _ => self.push_remote(task),
        })
    }

    fn release(&self, task: RawTask) -> Option<Task> {
        self.registry.remove(task)
    }

    fn slow_poll_threshold(&self) -> Option<Duration> {
        self.config.slow_poll_threshold
    }

    fn unhandled_panic(&self, panic: &crate::task::UnhandledTaskPanic<'_>) {
        match &self.config.on_task_panic {
            Some(handler) => {
                let call = std::panic::AssertUnwindSafe(|| (handler.0)(panic));
                if std::panic::catch_unwind(call).is_err() {
                    tracing::error!("the on_task_panic handler panicked; the panic was caught");
                }
            }
            None => crate::task::log_unhandled_panic(panic),
        }
        if self.config.unhandled_panic == crate::runtime::UnhandledPanic::ShutdownRuntime {
            self.shut_down_for_panic(panic.to_string());
        }
    }
}

/// The scheduler of a task pinned to one worker (see the module docs).
pub(crate) struct PinnedSchedule {
    pub(crate) shared: Arc<Shared>,
    pub(crate) worker: usize,
}

impl Schedule for PinnedSchedule {
    fn schedule(&self, task: Notified) {
        self.shared.schedule_pinned(self.worker, task)
    }

    fn yield_now(&self, task: Notified) {
        // The pinned queue is FIFO: the back is behind every other pinned task.
        self.shared.schedule_pinned(self.worker, task)
    }

    fn release(&self, task: RawTask) -> Option<Task> {
        self.shared.release(task)
    }

    fn slow_poll_threshold(&self) -> Option<Duration> {
        self.shared.slow_poll_threshold()
    }

    fn unhandled_panic(&self, panic: &crate::task::UnhandledTaskPanic<'_>) {
        self.shared.unhandled_panic(panic)
    }
}

impl Shared {
    /// `UnhandledPanic::ShutdownRuntime`: records the first report, stops the workers and
    /// wakes every `block_on`, which then panics with the report.
    fn shut_down_for_panic(&self, report: String) {
        {
            let mut slot = lock(&self.panic_shutdown);
            if slot.is_none() {
                *slot = Some(report);
            }
        }
        self.begin_shutdown();
        for waiter in lock(&self.block_on_waiters).iter() {
            waiter.unpark.unpark();
        }
    }

    /// The report of the panic that shut the runtime down, if one did.
    pub(crate) fn panic_shutdown_report(&self) -> Option<String> {
        lock(&self.panic_shutdown).clone()
    }

    /// Registers a `block_on` thread's unparker and activity; returns its key for
    /// `remove_block_on`.
    pub(crate) fn add_block_on(
        &self,
        unpark: std::sync::Arc<dyn Unpark>,
        activity: std::sync::Arc<BlockOnActivity>,
    ) -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let key = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.block_on_waiters).push(BlockOnThread {
            key,
            unpark,
            activity,
        });
        key
    }

    pub(crate) fn remove_block_on(&self, key: u64) {
        lock(&self.block_on_waiters).retain(|t| t.key != key);
        self.block_on_went_idle();
    }

    /// Whether every `block_on` thread without a core waits with nothing to do.
    fn block_on_threads_idle(&self) -> bool {
        lock(&self.block_on_waiters)
            .iter()
            .all(|t| t.activity.is_idle())
    }

    /// A `block_on` thread went idle or left. On a paused clock the workers may have parked
    /// without advancing because it was busy: one of them re-checks whether every task now
    /// waits (its unpark is stored, so a worker about to park sees it too).
    pub(crate) fn block_on_went_idle(&self) {
        if self.time.clock.is_paused() {
            self.unpark_worker(0);
        }
    }
}

impl WorkerCtx {
    fn push_local(&self, task: Notified, is_yield: bool) {
        if is_yield || !self.shared.config.lifo_slot {
            self.local.push(task);
        } else {
            match self.lifo.replace(Some(task)) {
                // Only the LIFO slot changed: nothing another worker could steal.
                None => return,
                Some(previous) => self.local.push(previous),
            }
        }
        if self.batching.get() {
            self.notify_deferred.set(true);
        } else {
            self.shared.notify_parked();
        }
    }

    /// Runs `f` (the parker's non-blocking turn: completions wake tasks) with the wake-ups'
    /// notifications folded into one, sent at the end if any push owed one. A ring reaps
    /// tens of completions at once; notifying per push would wake (through its ring) a
    /// sleeping peer per task, and each would steal from this worker's queue. No wake-up is
    /// lost: until the batch ends this worker is awake, and it will run the tasks itself.
    fn batch<R>(&self, f: impl FnOnce() -> R) -> R {
        let out = self.with_batching(f);
        self.send_deferred_notify();
        out
    }

    /// Runs `f` with `batching` set, cleared afterwards even if a waker panics.
    fn with_batching<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Clear<'a>(&'a Cell<bool>);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        self.batching.set(true);
        let _clear = Clear(&self.batching);
        f()
    }

    /// The next pinned task: moves the inbox's tasks to the back of the pinned queue first.
    fn pop_pinned(&self) -> Option<Notified> {
        let inbox = &self.shared.inboxes[self.index];
        let mut pinned = self.pinned.borrow_mut();
        if !inbox.is_empty() {
            while let Some(task) = steal_one(|| inbox.steal()) {
                pinned.push_back(task);
            }
        }
        pinned.pop_front()
    }

    fn send_deferred_notify(&self) {
        if self.notify_deferred.replace(false) {
            self.shared.notify_parked();
        }
    }
}

impl Core {
    /// The next task from this worker's own queues (and the injector, periodically or when
    /// the local queue is empty).
    fn next_task(&mut self, ctx: &WorkerCtx) -> Option<Notified> {
        self.tick = self.tick.wrapping_add(1);
        if self.tick % TIMER_INTERVAL == 0 {
            self.fire_timers(ctx);
            // Once per round of this many polls: dispatch completions, submit queued I/O.
            ctx.batch(|| self.parker.maintain_busy());
        }
        if self.tick.wrapping_sub(self.last_global_check.0) >= self.global_interval {
            self.tune_global_interval(ctx);
            // A batch, not one task: under a steady local load (yielding or chained tasks)
            // one task per interval would leave remote spawns waiting for ages.
            if let Some(task) = steal_from_injector(ctx) {
                return Some(task);
            }
        }
        if let Some(task) = ctx.lifo.take() {
            if self.lifo_streak < MAX_LIFO_POLLS {
                self.lifo_streak += 1;
                bump(&ctx.shared.stats[self.index].lifo_hits, 1);
                return Some(task);
            }
            // The slot has had its turns: to the back of the queue, behind older work.
            // If there is none, the pop below takes this very task: nothing is left for a
            // peer, so no peer is woken (a wake-up that finds nothing costs both threads
            // a context switch, and a chain of spawns would pay one every few links).
            let older_work = !ctx.local.is_empty();
            ctx.local.push(task);
            if older_work {
                ctx.shared.notify_parked();
            }
        }
        self.lifo_streak = 0;
        // Pinned and local queues take turns being first, so neither starves the other.
        let pinned_first = self.tick % 2 == 1;
        if pinned_first {
            if let Some(task) = ctx.pop_pinned() {
                return Some(task);
            }
        }
        if let Some(task) = ctx.local.pop() {
            return Some(task);
        }
        if !pinned_first {
            if let Some(task) = ctx.pop_pinned() {
                return Some(task);
            }
        }
        steal_from_injector(ctx)
    }

    /// Steals from peers, at most half the workers searching at once.
    fn search(&mut self, ctx: &WorkerCtx) -> Option<Notified> {
        if !self.searching {
            if !ctx.shared.idle.try_start_searching() {
                return None;
            }
            self.searching = true;
        }
        let n = ctx.shared.stealers.len();
        // xorshift64: cheap, and only picks a starting victim.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let start = (self.rng % n as u64) as usize;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            let before = ctx.local.len();
            if let Some(task) =
                steal_one(|| ctx.shared.stealers[victim].steal_batch_and_pop(&ctx.local))
            {
                let stats = &ctx.shared.stats[self.index];
                bump(&stats.steal_ops, 1);
                bump(&stats.stolen, (ctx.local.len() - before) as u64 + 1);
                tracing::trace!(worker = self.index, victim, "steal");
                return Some(task);
            }
        }
        steal_from_injector(ctx)
    }

    fn stop_searching(&mut self, ctx: &WorkerCtx) {
        if self.searching {
            self.searching = false;
            if ctx.shared.idle.stop_searching() {
                ctx.shared.notify_parked();
            }
        }
    }

    /// Re-derives the injector-check interval from the time the last interval took, so the
    /// injector is visited about every `GLOBAL_QUEUE_TARGET` whether polls are short or long.
    fn tune_global_interval(&mut self, ctx: &WorkerCtx) {
        let (last_tick, last_time) = self.last_global_check;
        let ticks = self.tick.wrapping_sub(last_tick).max(1);
        // loom models must not depend on wall-clock time.
        if ctx.shared.config.global_queue_interval.is_some() || crate::loom::MODEL_SCALE {
            self.last_global_check = (self.tick, None);
            return;
        }
        let now = std::time::Instant::now();
        if let Some(last) = last_time {
            let per_poll = now.duration_since(last) / ticks;
            let wanted = if per_poll.is_zero() {
                MAX_GLOBAL_INTERVAL
            } else {
                (GLOBAL_QUEUE_TARGET.as_nanos() / per_poll.as_nanos().max(1)).min(u32::MAX as u128)
                    as u32
            };
            // Halfway towards the measurement: one odd interval does not swing it.
            let smoothed =
                (self.global_interval + wanted.clamp(MIN_GLOBAL_INTERVAL, MAX_GLOBAL_INTERVAL)) / 2;
            self.global_interval = smoothed.clamp(MIN_GLOBAL_INTERVAL, MAX_GLOBAL_INTERVAL);
        }
        self.last_global_check = (self.tick, Some(now));
    }

    /// Fires this worker's and the shared shard's due timers; returns how many fired.
    fn fire_timers(&mut self, ctx: &WorkerCtx) -> usize {
        let time = &ctx.shared.time;
        let now = time.clock.now_ms();
        time.process(self.index, now) + time.process(time.external_shard(), now)
    }

    fn run_task(&mut self, ctx: &WorkerCtx, task: Notified) {
        self.stop_searching(ctx);
        bump(&ctx.shared.stats[self.index].polls, 1);
        task.run();
    }

    /// Parks until notified, `timeout` passes, or `has_other_work` says there is something
    /// (a current-thread `block_on`'s own future).
    fn park(
        &mut self,
        ctx: &WorkerCtx,
        timeout: Option<Duration>,
        has_other_work: &dyn Fn() -> bool,
    ) {
        let shared = &ctx.shared;
        if self.searching {
            self.searching = false;
            if shared.idle.stop_searching() && shared.has_stealable_work() {
                // The last searcher must not sleep on work it has not looked at.
                return;
            }
        }
        if self.fire_timers(ctx) > 0 {
            return;
        }
        shared.idle.register_sleeper(self.index);
        if shared.has_stealable_work()
            || !shared.inboxes[self.index].is_empty()
            || shared.is_shutdown()
            || has_other_work()
        {
            self.leave_sleepers(ctx);
            return;
        }
        let time = &shared.time;
        time.parking(self.index);
        let timeout = if time.clock.is_paused() {
            // Paused clock: when every task waits (every worker is idle, no blocking job
            // runs, no `block_on` future is being polled or was woken), jump to the next
            // deadline instead of sleeping.
            if shared.idle.num_sleeping() == shared.num_workers()
                && shared.blocking.num_busy() == 0
                && shared.block_on_threads_idle()
                && shared.inboxes_empty()
            {
                if let Some(next) = time.earliest_expiry_ms() {
                    time.clock.advance_to_ms(next);
                    time.unparked(self.index);
                    self.leave_sleepers(ctx);
                    time.process_all(time.clock.now_ms());
                    return;
                }
            }
            // Real time means nothing to a paused clock: wait to be woken.
            timeout
        } else {
            match (timeout, time.park_timeout(self.index)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        if !time.clock.is_paused() {
            time.parked_until(
                self.index,
                timeout.map(|t| time.clock.now_ms() + t.as_millis() as u64),
            );
        }
        bump(&shared.stats[self.index].parks, 1);
        tracing::trace!(worker = self.index, ?timeout, "park");
        // The completions that end the wait wake their tasks as one batch; its notification
        // goes out once this worker has left the sleepers (or it could pick itself).
        ctx.with_batching(|| self.parker.park(timeout));
        time.unparked(self.index);
        // Time spent parked is not poll time.
        self.last_global_check.1 = None;
        self.leave_sleepers(ctx);
        ctx.send_deferred_notify();
        self.fire_timers(ctx);
    }

    fn leave_sleepers(&mut self, ctx: &WorkerCtx) {
        if !ctx.shared.idle.unregister_sleeper(self.index) {
            // A notifier picked us and counted us as searching.
            self.searching = true;
        }
    }

    /// Shutdown work of one core: cancel every live task, drop what its queues hold.
    fn shutdown(&mut self, ctx: &WorkerCtx) {
        self.stop_searching(ctx);
        ctx.shared.registry.close_and_cancel_all(self.index * 16);
        drop(ctx.lifo.take());
        while let Some(task) = ctx.local.pop() {
            drop(task);
        }
        drop(std::mem::take(&mut *ctx.pinned.borrow_mut()));
        while let Some(task) = steal_one(|| ctx.shared.inboxes[self.index].steal()) {
            drop(task);
        }
        // Every task of this core is gone: cancel the I/O still in flight and wait for it.
        self.parker.shutdown();
    }
}

/// Tasks a worker moves from the injector to its own queue in one visit, at most.
///
/// The injector hands out at most one of its blocks (under 64 tasks) per steal, so a long
/// remote queue (a thread spawning thousands of tasks) would take many visits, each a
/// `GLOBAL_QUEUE_INTERVAL` apart on a worker that also runs local work: a visit tops the
/// batch up to this many. Peers steal from the local queue as from any other.
const INJECTOR_BATCH: usize = 128;

/// One task from the injector, with a batch of up to `INJECTOR_BATCH - 1` more moved to the
/// local queue, in at most three more steals (a bound even while a remote spawner refills
/// the injector and peers drain this queue).
fn steal_from_injector(ctx: &WorkerCtx) -> Option<Notified> {
    let before = ctx.local.len();
    let task = steal_one(|| ctx.shared.injector.steal_batch_and_pop(&ctx.local))?;
    for _ in 0..3 {
        let taken = ctx.local.len().saturating_sub(before) + 1;
        if taken >= INJECTOR_BATCH {
            break;
        }
        match ctx
            .shared
            .injector
            .steal_batch_with_limit(&ctx.local, INJECTOR_BATCH - taken)
        {
            Steal::Success(()) => {}
            Steal::Retry => std::hint::spin_loop(),
            Steal::Empty => break,
        }
    }
    Some(task)
}

fn steal_one(mut f: impl FnMut() -> Steal<Notified>) -> Option<Notified> {
    loop {
        match f() {
            Steal::Success(task) => return Some(task),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
}

/// Installs `core` as this thread's worker for the duration of `f`.
fn drive<R>(
    shared: &Arc<Shared>,
    core: &mut Core,
    f: impl FnOnce(&mut Core, &WorkerCtx) -> R,
) -> R {
    let ctx = WorkerCtx {
        shared: shared.clone(),
        index: core.index,
        // The Local moves into the context for the drive (the context is what wakes reach);
        // it goes back into the core afterwards.
        local: std::mem::replace(&mut core.local, Local::new_fifo()),
        pinned: RefCell::new(std::mem::take(&mut core.pinned)),
        lifo: Cell::new(None),
        batching: Cell::new(false),
        notify_deferred: Cell::new(false),
    };
    struct Reset<'a> {
        previous: *const WorkerCtx,
        ctx: &'a WorkerCtx,
    }
    impl Drop for Reset<'_> {
        fn drop(&mut self) {
            let _ = WORKER.try_with(|w| w.set(self.previous));
            // The LIFO slot is not stealable: its task goes back to the queue.
            if let Some(task) = self.ctx.lifo.take() {
                self.ctx.local.push(task);
            }
        }
    }
    let previous = WORKER.with(|w| w.replace(&ctx as *const WorkerCtx));
    // Operations started on this thread go to this core's ring.
    #[cfg(not(ringleader_loom))]
    let _ring = crate::driver::ring::set_current(core.parker.ring());
    let reset = Reset {
        previous,
        ctx: &ctx,
    };
    let out = f(core, &ctx);
    drop(reset);
    core.local = ctx.local;
    core.pinned = ctx.pinned.into_inner();
    out
}

/// A worker thread's whole life.
pub(crate) fn run_worker(shared: Arc<Shared>, index: usize) {
    let Some(mut core) = shared.take_core(index) else {
        return;
    };
    drive(&shared, &mut core, |core, ctx| {
        while !ctx.shared.is_shutdown() {
            let mut task = core.next_task(ctx);
            if task.is_none() && ctx.batch(|| core.parker.poll_ready()) {
                // This worker's own completions before its peers' queues: their tasks stay
                // where their I/O is (and their cache), instead of being stolen.
                task = core.next_task(ctx);
            }
            if let Some(task) = task.or_else(|| core.search(ctx)) {
                core.run_task(ctx, task);
                continue;
            }
            core.park(ctx, None, &|| false);
        }
        core.shutdown(ctx);
    });
    shared.return_core(core);
    shared.mark_exited();
}

/// The current-thread flavour's `block_on`: drives core 0 on this thread between polls of
/// `future`. Returns `Err(future)` if another thread is driving the core.
pub(crate) fn block_on_core<F: Future>(shared: &Arc<Shared>, future: F) -> Result<F::Output, F> {
    use std::pin::pin;
    use std::sync::atomic::AtomicBool as StdBool;
    use std::task::{Context, Poll, Wake, Waker};

    let Some(mut core) = shared.take_core(0) else {
        return Err(future);
    };
    struct MainWaker {
        woken: StdBool,
        unpark: std::sync::Arc<dyn Unpark>,
    }
    impl Wake for MainWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref()
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.woken.store(true, std::sync::atomic::Ordering::SeqCst);
            self.unpark.unpark();
        }
    }
    let main = std::sync::Arc::new(MainWaker {
        woken: StdBool::new(true),
        unpark: core.parker.unparker(),
    });
    let waker = Waker::from(main.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let out = drive(shared, &mut core, |core, ctx| loop {
        if ctx.shared.panic_shutdown_report().is_some() {
            return None;
        }
        if main.woken.swap(false, std::sync::atomic::Ordering::SeqCst) {
            if let Poll::Ready(out) = ringleader_coop::with_budget(|| future.as_mut().poll(&mut cx))
            {
                return Some(out);
            }
        }
        let mut ran = 0;
        while ran < core.global_interval {
            match core.next_task(ctx) {
                Some(task) => {
                    core.run_task(ctx, task);
                    ran += 1;
                }
                None => break,
            }
        }
        if ran == 0 && !main.woken.load(std::sync::atomic::Ordering::SeqCst) {
            core.park(ctx, None, &|| {
                main.woken.load(std::sync::atomic::Ordering::SeqCst)
            });
        }
    });
    shared.return_core(core);
    match out {
        Some(out) => Ok(out),
        None => panic_for_shutdown(shared),
    }
}

/// `block_on`'s end when an unobserved task panic shut the runtime down.
pub(crate) fn panic_for_shutdown(shared: &Shared) -> ! {
    let report = shared.panic_shutdown_report().unwrap_or_default();
    panic!("the runtime shut down on an unhandled task panic (UnhandledPanic::ShutdownRuntime): {report}")
}

/// Shutdown of a runtime whose cores are not driven by threads (current-thread flavour):
/// runs each core's shutdown on the calling thread.
pub(crate) fn shutdown_undriven_cores(shared: &Arc<Shared>) {
    for index in 0..shared.num_workers() {
        if let Some(mut core) = shared.take_core(index) {
            drive(shared, &mut core, |core, ctx| core.shutdown(ctx));
            shared.return_core(core);
        }
    }
    // Tasks bound to no core (never queued locally) are cancelled here too.
    shared.registry.close_and_cancel_all(0);
}
