//! The blocking pool: threads for closures that block (asyncio's `to_thread` and
//! `run_in_executor`).
//!
//! # Protocol
//! Jobs are tasks (so they have a `JoinHandle`, can be aborted while queued, and are
//! cancelled by shutdown through the registry) queued on a lock-free `Injector`. Spawners
//! never take a lock to queue: only waking an idle thread takes the `wakeups` lock, so
//! concurrent spawners contend only when they each have a sleeping thread to wake.
//!
//! - `idle` counts threads waiting for a wake-up token and not yet claimed. A spawner claims
//!   one by decrementing it (CAS) and then adds one token under `wakeups` and signals the
//!   condvar; any waiting thread may take any token (they are interchangeable).
//! - A thread that finds the queue empty increments `idle`, re-checks the queue (a SeqCst
//!   fence on both sides makes this a Dekker pair with the spawner's push-then-read), and
//!   waits for a token at most `keep_alive`. A thread leaving idle on its own (work seen on
//!   the re-check, keep-alive expired, shutdown) must win the same CAS on `idle`; if it
//!   loses, a spawner claimed it and a token is on its way, which it waits for.
//! - With no idle thread and fewer than `max_threads` alive, the spawner starts a thread.
//!   At the cap, the job waits in the queue for the next thread that finishes a job.
//! - A thread leaving (keep-alive expired) decrements `alive`, then re-checks the queue
//!   (again a SeqCst fence on both sides: a Dekker pair with the spawner's push-then-read of
//!   `alive`). A spawner that counted it as alive at the cap, and so started nobody, queued
//!   a job this re-check sees; the thread then takes its slot back and stays. Without this,
//!   a job pushed while the last thread at the cap was leaving would wait forever (loom
//!   model `a_job_pushed_while_the_last_thread_leaves_is_run`).
//!
//! Shutdown: queued jobs that never started are cancelled through the registry (their
//! closures dropped unrun); the runtime then waits for running jobs up to its shutdown
//! timeout and detaches the threads still busy after that.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crossbeam_deque::Steal;

use crate::loom::{fence, lock, Arc, AtomicBool, AtomicUsize, Condvar, Injector, Mutex, Ordering};
use crate::runtime::Handle;
use crate::scheduler::Shared;
use crate::task::{Notified, RawTask, Schedule, Task};

pub(crate) struct BlockingPool {
    queue: Injector<Notified>,
    idle: AtomicUsize,
    alive: AtomicUsize,
    busy: AtomicUsize,
    max_threads: usize,
    keep_alive: Duration,
    wakeups: Mutex<usize>,
    wakeup_cv: Condvar,
    /// Signalled when a thread exits, for the shutdown wait.
    exited_cv: Condvar,
    shutdown: AtomicBool,
    // Loom's threads have no names.
    #[cfg_attr(ringleader_loom, allow(dead_code))]
    thread_name: String,
    hooks: crate::runtime::ThreadHooks,
    /// Under loom, the pool's threads are loom threads that a model must join.
    #[cfg(ringleader_loom)]
    pub(crate) model_threads: Mutex<Vec<crate::loom::thread::JoinHandle<()>>>,
}

impl BlockingPool {
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        thread_name: String,
        hooks: crate::runtime::ThreadHooks,
    ) -> BlockingPool {
        BlockingPool {
            queue: Injector::new(),
            idle: AtomicUsize::new(0),
            alive: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            max_threads,
            keep_alive,
            wakeups: Mutex::new(0),
            wakeup_cv: Condvar::new(),
            exited_cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
            thread_name,
            hooks,
            #[cfg(ringleader_loom)]
            model_threads: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn num_idle(&self) -> usize {
        self.alive
            .load(Ordering::Relaxed)
            .saturating_sub(self.busy.load(Ordering::Relaxed))
    }

    pub(crate) fn num_busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    pub(crate) fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn push(&self, task: Notified, shared: &Arc<Shared>) {
        self.queue.push(task);
        fence(Ordering::SeqCst);
        // Claim an idle thread: the same decrement-if-positive an idle thread uses to
        // leave by itself, so exactly one side wins each idle slot.
        if self.take_idle() {
            *lock(&self.wakeups) += 1;
            self.wakeup_cv.notify_one();
            return;
        }
        // None idle: start a thread if below the cap.
        if self.reserve_thread_slot() {
            if let Err(e) = self.start_thread(shared) {
                self.alive.fetch_sub(1, Ordering::SeqCst);
                tracing::error!(error = %e, "could not start a blocking-pool thread");
            }
        }
    }

    /// Counts one more thread in `alive` if that stays within the cap.
    fn reserve_thread_slot(&self) -> bool {
        let mut alive = self.alive.load(Ordering::SeqCst);
        while alive < self.max_threads {
            match self.alive.compare_exchange_weak(
                alive,
                alive + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(actual) => alive = actual,
            }
        }
        false
    }

    #[cfg(ringleader_loom)]
    fn start_thread(&self, shared: &Arc<Shared>) -> io::Result<()> {
        let shared = shared.clone();
        let hooks = self.hooks.clone();
        let thread = crate::loom::thread::spawn(move || {
            let handle = Handle {
                shared: shared.clone(),
            };
            let _enter = handle.enter();
            let _hooks = hooks.started();
            shared.blocking.run_thread();
        });
        lock(&self.model_threads).push(thread);
        Ok(())
    }

    #[cfg(not(ringleader_loom))]
    fn start_thread(&self, shared: &Arc<Shared>) -> io::Result<()> {
        let shared = shared.clone();
        let hooks = self.hooks.clone();
        std::thread::Builder::new()
            .name(self.thread_name.clone())
            .spawn(move || {
                let handle = Handle {
                    shared: shared.clone(),
                };
                let _enter = handle.enter();
                let _hooks = hooks.started();
                shared.blocking.run_thread();
            })
            .map(drop)
    }

    fn pop(&self) -> Option<Notified> {
        loop {
            match self.queue.steal() {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    }

    /// Takes one slot from the idle count if any is left. For a spawner, that claims an idle
    /// thread; for an idle thread, it leaves by itself (false: a spawner claimed it first).
    fn take_idle(&self) -> bool {
        let mut idle = self.idle.load(Ordering::SeqCst);
        while idle > 0 {
            match self.idle.compare_exchange_weak(
                idle,
                idle - 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(actual) => idle = actual,
            }
        }
        false
    }

    /// Waits for a wake-up token. Returns false if the keep-alive ran out (or shutdown came)
    /// and we left the idle count ourselves: the thread should exit.
    fn wait_for_token(&self) -> bool {
        let mut tokens = lock(&self.wakeups);
        // A keep-alive of `Duration::MAX` (never exit) must not overflow: ~30 years.
        let deadline = Instant::now()
            .checked_add(self.keep_alive)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365 * 30));
        loop {
            if *tokens > 0 {
                *tokens -= 1;
                return true;
            }
            let now = Instant::now();
            if self.shutdown.load(Ordering::SeqCst) || now >= deadline {
                drop(tokens);
                if self.take_idle() {
                    return false;
                }
                // Claimed meanwhile: the token is coming.
                tokens = lock(&self.wakeups);
                while *tokens == 0 {
                    tokens = self
                        .wakeup_cv
                        .wait(tokens)
                        .unwrap_or_else(|e| e.into_inner());
                }
                *tokens -= 1;
                return true;
            }
            tokens = self
                .wakeup_cv
                .wait_timeout(tokens, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn run_thread(&self) {
        loop {
            if let Some(task) = self.pop() {
                self.busy.fetch_add(1, Ordering::Relaxed);
                task.run();
                self.busy.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            if self.shutdown.load(Ordering::SeqCst) {
                self.alive.fetch_sub(1, Ordering::SeqCst);
                break;
            }
            self.idle.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if !self.queue.is_empty() || self.shutdown.load(Ordering::SeqCst) {
                if self.take_idle() {
                    continue;
                }
                // A spawner claimed us; consume its token so counts stay balanced.
                let mut tokens = lock(&self.wakeups);
                while *tokens == 0 {
                    tokens = self
                        .wakeup_cv
                        .wait(tokens)
                        .unwrap_or_else(|e| e.into_inner());
                }
                *tokens -= 1;
                continue;
            }
            if !self.wait_for_token() && self.leave() {
                break;
            }
        }
        let _guard = lock(&self.wakeups);
        self.exited_cv.notify_all();
    }

    /// Gives up this thread's slot in `alive`. Returns false if it took the slot back
    /// instead, because a job arrived that no other thread may serve (see the protocol).
    fn leave(&self) -> bool {
        self.alive.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.queue.is_empty() || self.shutdown.load(Ordering::SeqCst) {
            return true;
        }
        // Stay unless the pool is full again (those threads serve the queue).
        !self.reserve_thread_slot()
    }

    /// Stops idle threads and waits up to `timeout` (None: no bound) for busy ones.
    /// Returns whether every thread exited.
    pub(crate) fn shutdown(&self, timeout: Option<Duration>) -> bool {
        self.shutdown.store(true, Ordering::SeqCst);
        // An overflowing timeout (`Duration::MAX`) is no bound.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut guard = lock(&self.wakeups);
        self.wakeup_cv.notify_all();
        while self.alive.load(Ordering::SeqCst) > 0 {
            match deadline {
                None => {
                    guard = self
                        .exited_cv
                        .wait(guard)
                        .unwrap_or_else(|e| e.into_inner())
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    guard = self
                        .exited_cv
                        .wait_timeout(guard, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        drop(guard);
        // Everyone is gone: drop the references of jobs cancelled while queued.
        while let Some(task) = self.pop() {
            drop(task);
        }
        true
    }
}

/// The scheduler handle stored in blocking tasks.
pub(crate) struct BlockingSchedule(pub(crate) Arc<Shared>);

impl Schedule for BlockingSchedule {
    fn schedule(&self, task: Notified) {
        self.0.blocking.push(task, &self.0);
    }
    fn yield_now(&self, task: Notified) {
        self.0.blocking.push(task, &self.0);
    }
    fn release(&self, task: RawTask) -> Option<Task> {
        self.0.registry.remove(task)
    }
}

/// A closure run once as a task's only poll.
pub(crate) struct BlockingTask<F>(Option<F>);

impl<F> BlockingTask<F> {
    pub(crate) fn new(f: F) -> BlockingTask<F> {
        BlockingTask(Some(f))
    }
}

impl<F> Unpin for BlockingTask<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingTask<F> {
    type Output = R;
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self
            .0
            .take()
            .expect("a blocking task is polled once: the harness never re-polls a completed task");
        // Blocking code is not budgeted: it may block, and it does not yield anyway.
        Poll::Ready(ringleader_coop::unconstrained(f))
    }
}
