//! loom models of the task and scheduler protocols, run by `ci/loom.sh`:
//! `RUSTFLAGS="--cfg ringleader_loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=2
//! cargo test -p ringleader-runtime --release --lib loom_models`.
//!
//! Each model checks the real code (state word, harness, registry, idle protocol, parker)
//! under every interleaving loom explores, and that nothing leaks (loom fails a model that
//! leaks a loom `Arc`, and we assert every future and task is dropped exactly once).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::loom::{lock, thread, Arc, AtomicUsize, Mutex, Ordering};
use crate::park::{BlockOnActivity, Park, ThreadParker};
use crate::scheduler::{self, Config, Shared};
use crate::task::{new_task, Notified, RawTask, Registry, Schedule, Task};

/// A scheduler for task-only models: a queue the model drains by hand, and a registry.
#[derive(Clone)]
struct TestSched(Arc<TestInner>);

struct TestInner {
    queue: Mutex<VecDeque<Notified>>,
    registry: Registry,
}

impl TestSched {
    fn new() -> TestSched {
        TestSched(Arc::new(TestInner {
            queue: Mutex::new(VecDeque::new()),
            registry: Registry::new(1),
        }))
    }
    fn pop(&self) -> Option<Notified> {
        lock(&self.0.queue).pop_front()
    }
    fn run_all(&self) {
        while let Some(task) = self.pop() {
            task.run();
        }
    }
}

impl Schedule for TestSched {
    fn schedule(&self, task: Notified) {
        lock(&self.0.queue).push_back(task);
    }
    fn yield_now(&self, task: Notified) {
        lock(&self.0.queue).push_back(task);
    }
    fn release(&self, task: RawTask) -> Option<Task> {
        self.0.registry.remove(task)
    }
}

/// Counts drops.
struct Token(Arc<AtomicUsize>);
impl Drop for Token {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Pending until polled `polls_needed` times; publishes its waker each time.
struct Steps {
    polls_left: usize,
    waker: Arc<Mutex<Option<Waker>>>,
    _token: Token,
}

impl Future for Steps {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        if self.polls_left == 0 {
            return Poll::Ready(7);
        }
        self.polls_left -= 1;
        *lock(&self.waker) = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Another thread wakes the task parked on `waker` and runs the scheduler to completion.
fn wake_and_run_elsewhere(
    sched: &TestSched,
    waker: &Arc<Mutex<Option<Waker>>>,
) -> thread::JoinHandle<()> {
    let (s, w) = (sched.clone(), waker.clone());
    thread::spawn(move || {
        if let Some(w) = lock(&w).take() {
            w.wake();
        }
        s.run_all();
    })
}

fn spawn_steps(
    sched: &TestSched,
    polls: usize,
) -> (
    crate::task::JoinHandle<usize>,
    Arc<Mutex<Option<Waker>>>,
    Arc<AtomicUsize>,
) {
    let waker = Arc::new(Mutex::new(None));
    let drops = Arc::new(AtomicUsize::new(0));
    let future = Steps {
        polls_left: polls,
        waker: waker.clone(),
        _token: Token(drops.clone()),
    };
    let (task, notified, join) = new_task(future, sched.clone(), None, Location::caller(), None);
    assert!(sched.0.registry.bind(task).is_ok(), "registry open");
    sched.schedule(notified);
    (join, waker, drops)
}

#[test]
fn complete_vs_abort_vs_join_drop_vs_remote_wake() {
    loom::model(|| {
        let sched = TestSched::new();
        let (join, waker, drops) = spawn_steps(&sched, 1);
        sched.run_all(); // first poll: Pending, waker published
        let abort = join.abort_handle();

        let w = waker.clone();
        let waker_thread = thread::spawn(move || {
            if let Some(w) = lock(&w).take() {
                w.wake();
            }
        });
        let abort_thread = thread::spawn(move || abort.abort());
        sched.run_all();
        drop(join);
        waker_thread.join().unwrap();
        abort_thread.join().unwrap();
        sched.run_all();

        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "future dropped exactly once"
        );
        assert_eq!(sched.0.registry.len(), 0);
        drop(lock(&waker).take());
        // Every task reference is gone: only our handle to the scheduler remains.
        assert_eq!(Arc::strong_count(&sched.0), 1);
    });
}

#[test]
fn join_waker_registration_races_completion() {
    loom::model(|| {
        let sched = TestSched::new();
        let (join, waker, drops) = spawn_steps(&sched, 1);
        sched.run_all();
        // Another thread wakes and runs the task to completion while we await the handle.
        let runner = wake_and_run_elsewhere(&sched, &waker);
        let out = loom::future::block_on(join);
        runner.join().unwrap();
        assert_eq!(out.unwrap(), 7);
        sched.run_all();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(Arc::strong_count(&sched.0), 1);
    });
}

#[test]
fn join_handle_dropped_while_task_completes() {
    loom::model(|| {
        let sched = TestSched::new();
        let (join, waker, drops) = spawn_steps(&sched, 1);
        sched.run_all();
        let runner = wake_and_run_elsewhere(&sched, &waker);
        // Register a join waker, then drop the handle, racing completion.
        let mut join = join;
        let mut cx = Context::from_waker(Waker::noop());
        let _ = Pin::new(&mut join).poll(&mut cx);
        drop(join);
        runner.join().unwrap();
        sched.run_all();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(Arc::strong_count(&sched.0), 1);
    });
}

#[test]
fn unpolled_join_handle_dropped_while_task_completes_or_is_aborted() {
    // The JoinHandle's one-step drop (interest and reference together) races the runner
    // completing the task and an abort: the future and the output are dropped exactly once
    // and every reference goes, whichever side finishes last frees the task.
    loom::model(|| {
        let sched = TestSched::new();
        let (join, waker, drops) = spawn_steps(&sched, 1);
        sched.run_all();
        let abort = join.abort_handle();
        let runner = wake_and_run_elsewhere(&sched, &waker);
        drop(join);
        abort.abort();
        drop(abort);
        runner.join().unwrap();
        sched.run_all();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(sched.0.registry.len(), 0);
        drop(lock(&waker).take());
        assert_eq!(Arc::strong_count(&sched.0), 1);
    });
}

#[test]
fn unpark_is_never_lost() {
    loom::model(|| {
        let mut parker = ThreadParker::new();
        let unparker = parker.unparker();
        let flag = Arc::new(AtomicUsize::new(0));
        let f = flag.clone();
        let t = thread::spawn(move || {
            f.store(1, Ordering::SeqCst);
            unparker.unpark();
        });
        // Park until the flag is seen: a lost unpark would deadlock the model.
        while flag.load(Ordering::SeqCst) == 0 {
            parker.park(None);
        }
        t.join().unwrap();
    });
}

/// A `block_on` thread that drives no core, woken while it goes idle: once the waker has
/// run, the thread never looks idle to the paused clock until it has polled again (else a
/// worker could auto-advance the clock under a future about to run), and the wake-up is
/// not lost.
#[test]
fn a_woken_block_on_thread_never_looks_idle_before_it_polls() {
    loom::model(|| {
        let activity = std::sync::Arc::new(BlockOnActivity::new());
        let mut parker = ThreadParker::new();
        let unparker = parker.unparker();
        let ready = Arc::new(AtomicUsize::new(0));
        // The block_on loop of `park_on_thread`: "poll" reads `ready`.
        let thread_activity = activity.clone();
        let thread_ready = ready.clone();
        let block_on = thread::spawn(move || loop {
            if thread_ready.load(Ordering::SeqCst) == 1 {
                break;
            }
            if thread_activity.try_idle() {
                parker.park(None);
            }
            thread_activity.running();
        });
        // The waker: the future's event, then the block_on waker's two steps.
        ready.store(1, Ordering::SeqCst);
        activity.woken();
        unparker.unpark();
        assert!(
            !activity.is_idle(),
            "a woken block_on thread looked idle before its next poll"
        );
        block_on.join().unwrap();
        assert!(!activity.is_idle());
    });
}

fn default_pool() -> crate::blocking::BlockingPool {
    crate::blocking::BlockingPool::new(
        1,
        std::time::Duration::from_secs(1),
        "blocking".into(),
        Default::default(),
    )
}

fn model_runtime(workers: usize) -> Arc<Shared> {
    model_runtime_with(workers, default_pool())
}

fn model_runtime_with(workers: usize, pool: crate::blocking::BlockingPool) -> Arc<Shared> {
    let parkers: Vec<Box<dyn Park>> = (0..workers)
        .map(|_| Box::new(ThreadParker::new()) as Box<dyn Park>)
        .collect();
    model_runtime_with_parkers(parkers, pool)
}

fn model_runtime_with_parkers(
    parkers: Vec<Box<dyn Park>>,
    pool: crate::blocking::BlockingPool,
) -> Arc<Shared> {
    let workers = parkers.len();
    Shared::new(
        workers,
        parkers,
        Config {
            lifo_slot: true,
            global_queue_interval: Some(61),
            slow_poll_threshold: None,
            start_paused: false,
            on_task_panic: None,
            unhandled_panic: crate::runtime::UnhandledPanic::Ignore,
            current_thread: false,
        },
        pool,
    )
}

fn spawn_on(
    shared: &Arc<Shared>,
    future: impl Future<Output = usize> + Send + 'static,
) -> crate::task::JoinHandle<usize> {
    let (task, notified, join) = new_task(future, shared.clone(), None, Location::caller(), None);
    Shared::bind_and_schedule(shared, task, notified, None);
    join
}

#[test]
fn remote_spawn_into_a_parked_pool() {
    loom::model(|| {
        let shared = model_runtime(1);
        let s = shared.clone();
        let worker = thread::spawn(move || scheduler::run_worker(s, 0));
        let join = spawn_on(&shared, async { 3 });
        assert_eq!(loom::future::block_on(join).unwrap(), 3);
        shared.begin_shutdown();
        worker.join().unwrap();
        shared.drain_injector();
    });
}

#[test]
fn shutdown_races_a_wake() {
    loom::model(|| {
        let shared = model_runtime(1);
        let waker = Arc::new(Mutex::new(None));
        let drops = Arc::new(AtomicUsize::new(0));
        let join = spawn_on(
            &shared,
            Steps {
                polls_left: 2,
                waker: waker.clone(),
                _token: Token(drops.clone()),
            },
        );
        let s = shared.clone();
        let worker = thread::spawn(move || scheduler::run_worker(s, 0));
        let w = waker.clone();
        let waker_thread = thread::spawn(move || {
            if let Some(w) = lock(&w).take() {
                w.wake();
            }
        });
        shared.begin_shutdown();
        worker.join().unwrap();
        waker_thread.join().unwrap();
        shared.drain_injector();
        // The task either finished or was cancelled; its future was dropped exactly once.
        let result = loom::future::block_on(join);
        assert!(result.is_ok() || result.unwrap_err().is_cancelled());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        drop(lock(&waker).take());
    });
}

/// Models with two worker threads and the main thread explore far more interleavings: a
/// preemption bound of 1 keeps them to seconds while still covering every single-preemption
/// schedule of the idle protocol.
fn model_three_threads(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(1);
    builder.check(f);
}

#[test]
fn two_workers_remote_spawns_lose_no_wakeup() {
    model_three_threads(|| {
        let shared = model_runtime(2);
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let s = shared.clone();
                thread::spawn(move || scheduler::run_worker(s, i))
            })
            .collect();
        let a = spawn_on(&shared, async { 1 });
        let b = spawn_on(&shared, async { 2 });
        let sum = loom::future::block_on(async move { a.await.unwrap() + b.await.unwrap() });
        assert_eq!(sum, 3);
        shared.begin_shutdown();
        for w in workers {
            w.join().unwrap();
        }
        shared.drain_injector();
    });
}

#[test]
fn a_child_spawned_on_a_worker_runs_with_a_second_worker_parked() {
    model_three_threads(|| {
        let shared = model_runtime(2);
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let s = shared.clone();
                thread::spawn(move || scheduler::run_worker(s, i))
            })
            .collect();
        let inner = shared.clone();
        let parent = spawn_on(&shared, async move {
            // Spawned from a worker: goes to that worker's LIFO slot / local queue.
            let child = spawn_on(&inner, async { 5 });
            child.await.unwrap()
        });
        assert_eq!(loom::future::block_on(parent).unwrap(), 5);
        shared.begin_shutdown();
        for w in workers {
            w.join().unwrap();
        }
        shared.drain_injector();
    });
}

fn spawn_pinned_on(
    shared: &Arc<Shared>,
    worker: usize,
    future: impl Future<Output = usize> + Send + 'static,
) -> crate::task::JoinHandle<usize> {
    let scheduler = scheduler::PinnedSchedule {
        shared: shared.clone(),
        worker,
    };
    let (task, notified, join) = new_task(future, scheduler, None, Location::caller(), None);
    Shared::bind_and_schedule(shared, task, notified, Some(worker));
    join
}

/// A task pinned to a worker, spawned from a thread that is no worker (its inbox), runs
/// whether its worker is parked, parking or awake, and whatever the other worker does.
#[test]
fn a_pinned_remote_spawn_reaches_its_worker() {
    model_three_threads(|| {
        let shared = model_runtime(2);
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let s = shared.clone();
                thread::spawn(move || scheduler::run_worker(s, i))
            })
            .collect();
        let join = spawn_pinned_on(&shared, 1, async { 4 });
        assert_eq!(loom::future::block_on(join).unwrap(), 4);
        shared.begin_shutdown();
        for w in workers {
            w.join().unwrap();
        }
        shared.drain_injector();
    });
}

/// A pinned task woken from another thread (into its worker's inbox, then a targeted
/// unpark) while its worker checks its queues and parks: the wake-up is never lost.
#[test]
fn a_remote_wake_of_a_pinned_task_is_never_lost() {
    loom::model(|| {
        let shared = model_runtime(1);
        let waker = Arc::new(Mutex::new(None));
        let drops = Arc::new(AtomicUsize::new(0));
        let join = spawn_pinned_on(
            &shared,
            0,
            Steps {
                polls_left: 1,
                waker: waker.clone(),
                _token: Token(drops.clone()),
            },
        );
        let s = shared.clone();
        let worker = thread::spawn(move || scheduler::run_worker(s, 0));
        let w = waker.clone();
        let waker_thread = thread::spawn(move || loop {
            if let Some(w) = lock(&w).take() {
                w.wake();
                return;
            }
            thread::yield_now();
        });
        assert_eq!(loom::future::block_on(join).unwrap(), 7);
        waker_thread.join().unwrap();
        shared.begin_shutdown();
        worker.join().unwrap();
        shared.drain_injector();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// Shutdown racing a remote wake of a pinned task: the task's reference in the inbox or
/// the pinned queue is dropped, and its future exactly once.
#[test]
fn shutdown_races_a_pinned_wake() {
    loom::model(|| {
        let shared = model_runtime(1);
        let waker = Arc::new(Mutex::new(None));
        let drops = Arc::new(AtomicUsize::new(0));
        let join = spawn_pinned_on(
            &shared,
            0,
            Steps {
                polls_left: 2,
                waker: waker.clone(),
                _token: Token(drops.clone()),
            },
        );
        let s = shared.clone();
        let worker = thread::spawn(move || scheduler::run_worker(s, 0));
        let w = waker.clone();
        let waker_thread = thread::spawn(move || {
            if let Some(w) = lock(&w).take() {
                w.wake();
            }
        });
        shared.begin_shutdown();
        worker.join().unwrap();
        waker_thread.join().unwrap();
        shared.drain_injector();
        let result = loom::future::block_on(join);
        assert!(result.is_ok() || result.unwrap_err().is_cancelled());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        drop(lock(&waker).take());
    });
}

/// "Completions" posted by tasks: the wakers a ring's reaping would wake.
type Completions = Arc<Mutex<Vec<Waker>>>;

/// A parker standing in for a worker's ring: it wakes the posted completions' tasks in the
/// worker's batch, from `poll_ready` (before the worker steals) and from `park` (without
/// blocking while any is posted), as the ring's turn does.
struct CompletionParker {
    inner: ThreadParker,
    completions: Completions,
}

impl CompletionParker {
    fn dispatch(&self) -> bool {
        let ready = std::mem::take(&mut *lock(&self.completions));
        let any = !ready.is_empty();
        for waker in ready {
            waker.wake();
        }
        any
    }
}

impl Park for CompletionParker {
    fn park(&mut self, timeout: Option<std::time::Duration>) {
        if !self.dispatch() {
            self.inner.park(timeout);
            self.dispatch();
        }
    }

    fn unparker(&self) -> std::sync::Arc<dyn crate::park::Unpark> {
        self.inner.unparker()
    }

    fn poll_ready(&mut self) -> bool {
        self.dispatch()
    }
}

/// A task whose first poll "submits an operation" (posts its waker as a completion) and
/// whose second poll, after the completion woke it, finishes.
struct IoTask {
    submitted: bool,
    completions: Completions,
}

impl Future for IoTask {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        if self.submitted {
            return Poll::Ready(1);
        }
        self.submitted = true;
        lock(&self.completions).push(cx.waker().clone());
        Poll::Pending
    }
}

/// Completions dispatched as a batch (one notification for the batch, sent after it, not
/// one per woken task; dispatched before the worker would steal or sleep) are never
/// stranded: every woken task runs.
#[test]
fn completions_woken_in_a_batch_all_run() {
    const WORKERS: usize = 1;
    loom::model(|| {
        let completions: Completions = Arc::new(Mutex::new(Vec::new()));
        let parkers: Vec<Box<dyn Park>> = (0..WORKERS)
            .map(|_| {
                Box::new(CompletionParker {
                    inner: ThreadParker::new(),
                    completions: completions.clone(),
                }) as Box<dyn Park>
            })
            .collect();
        let shared = model_runtime_with_parkers(parkers, default_pool());
        let workers: Vec<_> = (0..WORKERS)
            .map(|i| {
                let s = shared.clone();
                thread::spawn(move || scheduler::run_worker(s, i))
            })
            .collect();
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                spawn_on(
                    &shared,
                    IoTask {
                        submitted: false,
                        completions: completions.clone(),
                    },
                )
            })
            .collect();
        let sum = loom::future::block_on(async move {
            let mut sum = 0;
            for t in tasks {
                sum += t.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, 2);
        shared.begin_shutdown();
        for w in workers {
            w.join().unwrap();
        }
        shared.drain_injector();
        assert!(lock(&completions).is_empty());
    });
}

/// Counts wakes (std atomics: the count is checked after the model's threads joined).
struct CountWake(std::sync::atomic::AtomicUsize);
impl std::task::Wake for CountWake {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_sleep_dropped_while_its_shard_fires_it() {
    use crate::time::driver::TimeDriver;
    loom::model(|| {
        let driver = std::sync::Arc::new(TimeDriver::new(1, true));
        let count = std::sync::Arc::new(CountWake(std::sync::atomic::AtomicUsize::new(0)));
        let (filed, _) = driver.register(0, 5, Waker::from(count.clone()));
        let d2 = driver.clone();
        // The shard's worker fires everything due at 10 ms...
        let firer = thread::spawn(move || {
            d2.process(0, 10);
        });
        // ...while the Sleep is dropped on another thread (what `Sleep::drop` does).
        driver.deregister(&filed);
        firer.join().unwrap();
        // Fired or removed, never both, never left behind; woken at most once.
        assert_eq!(driver.armed(), 0);
        assert!(count.0.load(std::sync::atomic::Ordering::SeqCst) <= 1);
        assert_eq!(driver.next_expiry_ms(0), None);
    });
}

#[test]
fn a_waker_registered_while_the_shard_fires_is_not_lost() {
    use crate::time::driver::TimeDriver;
    loom::model(|| {
        let driver = std::sync::Arc::new(TimeDriver::new(1, true));
        let first = std::sync::Arc::new(CountWake(std::sync::atomic::AtomicUsize::new(0)));
        let count = std::sync::Arc::new(CountWake(std::sync::atomic::AtomicUsize::new(0)));
        let (filed, _) = driver.register(0, 5, Waker::from(first.clone()));
        let d2 = driver.clone();
        let firer = thread::spawn(move || {
            d2.process(0, 10);
        });
        // A re-poll of the Sleep from another worker (after a steal): store the new waker,
        // or learn that it fired.
        let seen_fired = driver.poll_filed(&filed, &Waker::from(count.clone()));
        firer.join().unwrap();
        // Either the poll saw it fired, or the firer woke the waker it stored.
        let woken = count.0.load(std::sync::atomic::Ordering::SeqCst);
        assert!(seen_fired || woken == 1, "lost wake-up");
        assert!(driver.is_fired(&filed));
        // The stale filing never removes a later timer that reuses its slot.
        let (later, _) = driver.register(0, 50, Waker::from(first.clone()));
        driver.deregister(&filed);
        assert!(!driver.is_fired(&later));
        assert_eq!(driver.armed(), 1);
    });
}

/// How the only worker's park ended in [`the_paused_clock_has_a_worker_to_advance_it`].
enum ParkOutcome {
    /// Parked on the running clock, until this ms (a real-time promise) or no deadline.
    Parked(Option<u64>),
    /// Took the paused-clock path and, being idle, auto-advanced to this expiry (if any).
    Advanced(Option<u64>),
}

/// The scheduler's park (`Core::park`) for the only worker, cut to its timer steps: the
/// paused clock auto-advances (every worker is idle); the running clock parks until the
/// next expiry. `notified` is the worker's sticky unpark token: a park that finds it set
/// returns at once and the worker parks again (at most `rounds` times).
fn park_only_worker(
    driver: &crate::time::driver::TimeDriver,
    notified: &crate::loom::AtomicBool,
    rounds: usize,
) -> ParkOutcome {
    let mut outcome = ParkOutcome::Parked(None);
    for _ in 0..rounds {
        driver.parking(0);
        if driver.clock.is_paused() {
            return ParkOutcome::Advanced(driver.earliest_expiry_ms());
        }
        let until = driver
            .park_timeout(0)
            .map(|t| driver.clock.now_ms() + t.as_millis() as u64);
        if !driver.clock.is_paused() {
            driver.parked_until(0, until);
        }
        outcome = ParkOutcome::Parked(until);
        if !notified.swap(false, Ordering::AcqRel) {
            return outcome;
        }
        driver.unparked(0);
    }
    outcome
}

/// The parker's unpark: sets the sticky token with a swap, as `RingShared::unpark` does.
/// (A plain store here lets loom 0.7.3 report a racing swap reading the value from before
/// the store while ordering its write after it: the store must be an RMW.)
fn unpark(notified: &crate::loom::AtomicBool) {
    notified.swap(true, Ordering::AcqRel);
}

#[test]
fn the_paused_clock_has_a_worker_to_advance_it() {
    use crate::loom::AtomicBool;
    use crate::time::driver::TimeDriver;
    // The hang of issue #3 (the wheel-slot timer, reverted in 8c88db9): a worker parked in
    // real time until a shard's expiry, the clock paused, a later sleep was filed, and no
    // worker passed through park again to auto-advance. The expiry is a stale hint (its
    // timer cancelled) or a live timer (then the filing is not earlier and wakes nobody:
    // only the pause's unpark of every worker moves the clock).
    for cancelled in [true, false] {
        loom::model(move || {
            let driver = std::sync::Arc::new(TimeDriver::new(1, false));
            let notified = std::sync::Arc::new(AtomicBool::new(false));
            let noop = Waker::noop();
            let shard = driver.external_shard();
            let far = driver.clock.now_ms() + 1_000_000;
            let (first, _) = driver.register(shard, far, noop.clone());
            if cancelled {
                driver.deregister(&first);
            }
            let (d2, n2) = (driver.clone(), notified.clone());
            // The worker parks on the running clock (or, if the pause is first, on the
            // paused one), racing the pause and the filing.
            let worker = thread::spawn(move || park_only_worker(&d2, &n2, 2));
            // `time::pause`: exact expiries, then every worker unparked (sticky).
            driver.pause();
            unpark(&notified);
            // A later sleep from a thread that is not a worker (`Sleep::poll`).
            let later = far + 10;
            let (_filed, earlier) = driver.register(shard, later, noop.clone());
            if earlier && driver.worker_to_wake_for(later).is_some() {
                unpark(&notified);
            }
            let outcome = worker.join().unwrap();
            // A pending unpark makes the worker park again, on the paused clock, where it
            // auto-advances; otherwise it must have auto-advanced to a live expiry.
            let pending = notified.load(Ordering::Acquire);
            match outcome {
                ParkOutcome::Advanced(Some(ms)) => assert!(ms <= later),
                ParkOutcome::Advanced(None) => assert!(pending, "paused clock stuck: no expiry"),
                ParkOutcome::Parked(until) => {
                    assert!(
                        pending,
                        "paused clock stuck: parked until {until:?} real time"
                    )
                }
            }
        });
    }
}

#[test]
fn a_filing_on_the_paused_clock_wakes_a_worker_parked_until_a_real_time_deadline() {
    use crate::time::driver::TimeDriver;
    loom::model(|| {
        // Without the pause's unpark: the worker is parked until a stale real-time expiry
        // when the clock pauses, then re-parks (woken for another reason) while a later
        // sleep is filed. The filing must not take the real-time promise as covering it.
        let driver = std::sync::Arc::new(TimeDriver::new(1, false));
        let noop = Waker::noop();
        let shard = driver.external_shard();
        let far = driver.clock.now_ms() + 1_000_000;
        let (cancelled, _) = driver.register(shard, far, noop.clone());
        driver.deregister(&cancelled);
        driver.parking(0);
        let until = driver
            .park_timeout(0)
            .map(|t| driver.clock.now_ms() + t.as_millis() as u64);
        assert!(until.is_some_and(|u| u <= far), "parked on the hint");
        driver.parked_until(0, until);
        driver.pause();
        let d2 = driver.clone();
        let worker = thread::spawn(move || {
            d2.unparked(0);
            d2.parking(0);
            d2.earliest_expiry_ms()
        });
        let later = far + 10;
        let (_filed, earlier) = driver.register(shard, later, noop.clone());
        let woken = earlier && driver.worker_to_wake_for(later).is_some();
        let advanced_to = worker.join().unwrap();
        assert!(
            woken || advanced_to.is_some_and(|ms| ms <= later),
            "paused clock stuck"
        );
        // And a worker still parked on the real-time promise is woken by the filing.
        driver.parked_until(0, until);
        assert_eq!(driver.worker_to_wake_for(later + 1), Some(0));
    });
}

#[test]
fn a_filing_behind_a_stale_expiry_still_has_a_worker_to_fire_it() {
    use crate::time::driver::TimeDriver;
    loom::model(|| {
        // Real time: a removal leaves the non-worker shard's published expiry early.
        let driver = std::sync::Arc::new(TimeDriver::new(1, false));
        let noop = Waker::noop();
        let shard = driver.external_shard();
        let far = driver.clock.now_ms() + 1_000_000;
        let (cancelled, _) = driver.register(shard, far, noop.clone());
        driver.deregister(&cancelled);
        // (The wheel publishes its slot's start, which is at or before the deadline.)
        assert!(driver.next_expiry_ms(shard).is_some_and(|ms| ms <= far));
        let d2 = driver.clone();
        // The only worker parks, computing its timeout as the scheduler does...
        let parker = thread::spawn(move || {
            d2.parking(0);
            let until = d2
                .park_timeout(0)
                .map(|t| d2.clock.now_ms() + t.as_millis() as u64);
            d2.parked_until(0, until);
            until
        });
        // ...while a thread that is not a worker files a later timer.
        let later = far + 10;
        let (_filed, earlier) = driver.register(shard, later, noop.clone());
        let woken = earlier && driver.worker_to_wake_for(later).is_some();
        let until = parker.join().unwrap();
        // The worker wakes by the new deadline on its own, or the filing woke it.
        assert!(
            woken || until.is_some_and(|u| u <= later),
            "timer with no worker"
        );
    });
}

/// An operation kind for the cell models: counts what the protocol does with it.
struct ModelOp {
    /// Completions turned into output, abandoned results, and drops of the kind.
    counts: Arc<[AtomicUsize; 3]>,
}

// SAFETY: the model's entry is a NOP that refers to no memory.
unsafe impl crate::driver::op::OpKind for ModelOp {
    type Output = i32;
    fn entry(&mut self) -> io_uring::squeue::Entry {
        io_uring::opcode::Nop::new().build()
    }
    fn complete(self, res: i32, _flags: u32) -> i32 {
        self.counts[0].fetch_add(1, Ordering::SeqCst);
        res
    }
    fn abandoned(self, _res: i32) {
        self.counts[1].fetch_add(1, Ordering::SeqCst);
    }
    fn failed(self, _err: std::io::Error) -> i32 {
        -1
    }
}

impl Drop for ModelOp {
    fn drop(&mut self) {
        self.counts[2].fetch_add(1, Ordering::SeqCst);
    }
}

fn model_op() -> (ModelOp, Arc<[AtomicUsize; 3]>) {
    let counts = Arc::new([
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ]);
    (
        ModelOp {
            counts: counts.clone(),
        },
        counts,
    )
}

/// Hands a cell's completion to a reaper thread, as the ring's worker would.
fn spawn_reaper(user_data: u64, res: i32) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        // SAFETY: `user_data` is the key of a cell the caller treats as pushed; this is its
        // one completion.
        unsafe { crate::driver::op::complete(user_data, res, 0) };
    })
}

#[test]
fn an_operation_dropped_while_its_completion_arrives_is_released_exactly_once() {
    use crate::driver::op::CellPtr;
    loom::model(|| {
        let (kind, counts) = model_op();
        let (cell, _entry) = CellPtr::new(kind, Waker::noop().clone());
        let reaper = spawn_reaper(cell.user_data(), 3);
        // The owner drops its future meanwhile.
        let cancel = cell.abandon();
        reaper.join().unwrap();
        // Whoever came second released the result; nobody turned it into an output; the
        // kind (buffers, fds) was dropped once, after the kernel was done with it.
        assert_eq!(counts[0].load(Ordering::SeqCst), 0);
        assert_eq!(counts[1].load(Ordering::SeqCst), 1);
        assert_eq!(counts[2].load(Ordering::SeqCst), 1);
        let _ = cancel;
    });
}

#[test]
fn a_completion_racing_a_poll_is_never_lost() {
    use crate::driver::op::CellPtr;
    loom::model(|| {
        let (kind, counts) = model_op();
        // Created with a waker that wakes nobody: the owner's first poll must replace it
        // (as after a steal, or a future moved to another task) while the completion races.
        let (cell, _entry) = CellPtr::new(kind, Waker::noop().clone());
        let reaper = spawn_reaper(cell.user_data(), 7);
        let mut cell = Some(cell);
        let out = loom::future::block_on(std::future::poll_fn(|cx| {
            match cell.take().expect("polled after ready").poll(cx) {
                Ok(out) => Poll::Ready(out),
                Err(back) => {
                    cell = Some(back);
                    // A task woken by itself goes back through the scheduler's queue before
                    // its next poll: a yield, which loom needs to see to let the reaper on.
                    thread::yield_now();
                    Poll::Pending
                }
            }
        }));
        reaper.join().unwrap();
        assert_eq!(out, 7);
        assert_eq!(counts[0].load(Ordering::SeqCst), 1);
        assert_eq!(counts[1].load(Ordering::SeqCst), 0);
        assert_eq!(counts[2].load(Ordering::SeqCst), 1);
    });
}

#[test]
fn an_operation_polled_then_dropped_while_its_completion_arrives_is_released_once() {
    use crate::driver::op::CellPtr;
    loom::model(|| {
        let (kind, counts) = model_op();
        let (cell, _entry) = CellPtr::new(kind, Waker::noop().clone());
        let reaper = spawn_reaper(cell.user_data(), 5);
        // One poll with a new waker (it may register, or find the output), then the drop.
        let woken = std::sync::Arc::new(CountWake(std::sync::atomic::AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let outcome = match cell.poll(&mut cx) {
            Ok(out) => Some(out),
            Err(cell) => {
                let _ = cell.abandon();
                None
            }
        };
        reaper.join().unwrap();
        match outcome {
            Some(out) => {
                assert_eq!(out, 5);
                assert_eq!(counts[0].load(Ordering::SeqCst), 1);
                assert_eq!(counts[1].load(Ordering::SeqCst), 0);
            }
            None => {
                assert_eq!(counts[0].load(Ordering::SeqCst), 0);
                assert_eq!(counts[1].load(Ordering::SeqCst), 1);
            }
        }
        assert_eq!(counts[2].load(Ordering::SeqCst), 1);
    });
}

/// A runtime whose blocking pool has `cap` threads at most and no keep-alive, so a thread
/// leaves as soon as it finds no work: the race with a spawner at the cap.
fn model_runtime_with_blocking_cap(cap: usize) -> Arc<Shared> {
    model_runtime_with(
        1,
        crate::blocking::BlockingPool::new(
            cap,
            std::time::Duration::ZERO,
            "blocking".into(),
            Default::default(),
        ),
    )
}

#[test]
fn a_job_pushed_while_the_last_thread_leaves_is_run() {
    loom::model(|| {
        let shared = model_runtime_with_blocking_cap(1);
        let handle = crate::runtime::Handle {
            shared: shared.clone(),
        };
        // The first job starts the pool's only thread; it runs the job, finds the queue
        // empty and leaves at once (no keep-alive), racing the second spawn.
        let first = handle.spawn_blocking(|| 1usize);
        let second = handle.spawn_blocking(|| 2usize);
        assert_eq!(loom::future::block_on(first).unwrap(), 1);
        assert_eq!(loom::future::block_on(second).unwrap(), 2);
        assert!(shared.blocking.shutdown(None));
        let threads = std::mem::take(&mut *lock(&shared.blocking.model_threads));
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn an_idle_thread_claimed_by_a_spawner_runs_the_job_and_counts_stay_balanced() {
    // Main, spawner and up to two pool threads: a preemption bound of 1 (see
    // `model_three_threads`) keeps it to seconds.
    model_three_threads(|| {
        let shared = model_runtime_with_blocking_cap(2);
        let handle = crate::runtime::Handle {
            shared: shared.clone(),
        };
        let first = handle.spawn_blocking(|| 1usize);
        assert_eq!(loom::future::block_on(first).unwrap(), 1);
        // The thread may be idle, leaving, or gone: a spawn from another thread must be
        // served in every case.
        let h = handle.clone();
        let spawner = thread::spawn(move || loom::future::block_on(h.spawn_blocking(|| 2usize)));
        assert_eq!(spawner.join().unwrap().unwrap(), 2);
        assert!(shared.blocking.shutdown(None));
        let threads = std::mem::take(&mut *lock(&shared.blocking.model_threads));
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(shared.blocking.num_busy(), 0);
    });
}

/// A local task parked on a flag that another thread sets, then wakes twice: the set's
/// ready queue and driver wake-up (`task/local_set.rs`) lose no wake (loom's `block_on`
/// would deadlock), the duplicate wake is harmless, and the future is dropped once.
#[test]
fn local_set_remote_wake_is_never_lost() {
    loom::model(|| {
        let set = crate::task::LocalSet::new();
        let flag = Arc::new(crate::loom::AtomicBool::new(false));
        let parked: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
        let drops = Arc::new(AtomicUsize::new(0));
        let token = Token(drops.clone());
        let (f, p) = (flag.clone(), parked.clone());
        let handle = set.spawn_local(std::future::poll_fn(move |cx| {
            let _ = &token;
            *lock(&p) = Some(cx.waker().clone());
            if f.load(Ordering::Acquire) {
                Poll::Ready(5)
            } else {
                Poll::Pending
            }
        }));
        let (f, p) = (flag.clone(), parked.clone());
        let remote = thread::spawn(move || {
            f.store(true, Ordering::Release);
            let waker = lock(&p).take();
            if let Some(waker) = waker {
                waker.wake_by_ref();
                waker.wake();
            }
        });
        assert_eq!(loom::future::block_on(set.run_until(handle)).unwrap(), 5);
        remote.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(set.is_empty());
    });
}

/// Another thread wakes a local task while its set is being dropped: the wake is either
/// queued before the set closes or dropped after, never a panic; the future goes with the
/// set, and loom's leak check sees the ready queue freed once the waker is.
#[test]
fn local_set_dropped_while_another_thread_wakes_its_task() {
    loom::model(|| {
        let set = crate::task::LocalSet::new();
        let parked: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
        let drops = Arc::new(AtomicUsize::new(0));
        let token = Token(drops.clone());
        let p = parked.clone();
        drop(set.spawn_local(std::future::poll_fn(move |cx| {
            let _ = &token;
            *lock(&p) = Some(cx.waker().clone());
            Poll::<()>::Pending
        })));
        // One drive: the future yields once, so the task is polled and parks.
        loom::future::block_on(set.run_until(crate::task::yield_now()));
        let waker = lock(&parked).take().expect("the task was polled");
        let remote = thread::spawn(move || {
            waker.wake_by_ref();
            waker.wake();
        });
        drop(set);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        remote.join().unwrap();
    });
}
