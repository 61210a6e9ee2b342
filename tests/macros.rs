//! `#[ringleader::main]` and `#[ringleader::test]` at run time: each option reaches the
//! runtime, and the function keeps its signature. (The compile errors are tested in
//! `macros/tests/ui/`.)

use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

mod support;

use ringleader::runtime::Handle;
use ringleader::time::{self, Instant};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use support::DropCounter;

fn num_workers() -> usize {
    Handle::current().metrics().num_workers()
}

// ---- #[ringleader::main] on functions called like any other ----

#[ringleader::main]
async fn main_like() -> (usize, u64) {
    let tasks: Vec<_> = (1..=10u64)
        .map(|i| ringleader::spawn(async move { i * i }))
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    (num_workers(), total)
}

#[test]
fn main_builds_a_multi_thread_runtime_runs_the_body_and_returns_its_output() {
    let (workers, total) = main_like();
    assert_eq!(total, 385);
    // The builder's default: one worker per CPU.
    let default = ringleader::runtime::Runtime::new().unwrap();
    assert_eq!(workers, default.handle().metrics().num_workers());
    // The runtime is gone once the function returns.
    assert!(Handle::try_current().is_err());
}

#[ringleader::main(flavor = "current_thread", start_paused = true, debug = false)]
async fn main_current_thread_paused() -> (thread::ThreadId, usize, Duration) {
    let start = Instant::now();
    time::sleep(Duration::from_secs(3600)).await;
    let id = ringleader::spawn(async { thread::current().id() })
        .await
        .unwrap();
    (id, num_workers(), start.elapsed())
}

#[test]
fn main_with_options_runs_tasks_on_the_calling_thread_on_a_paused_clock() {
    let wall = std::time::Instant::now();
    let (task_thread, workers, elapsed) = main_current_thread_paused();
    assert_eq!(task_thread, thread::current().id());
    assert_eq!(workers, 1);
    assert!(elapsed >= Duration::from_secs(3600), "{elapsed:?}");
    assert!(wall.elapsed() < Duration::from_secs(60));
}

#[ringleader::main(worker_threads = 3)]
async fn main_fallible_ok() -> Result<usize, std::num::ParseIntError> {
    let n: usize = "39".parse()?;
    Ok(n + num_workers())
}

#[ringleader::main(worker_threads = 1)]
async fn main_fallible_err() -> Result<usize, std::num::ParseIntError> {
    let n: usize = "forty".parse()?;
    Ok(n)
}

#[test]
fn main_may_return_a_result_and_use_the_question_mark() {
    assert_eq!(main_fallible_ok(), Ok(42));
    assert!(main_fallible_err().is_err());
}

/// Drops of the task `main_leaving_a_task_behind` leaves pending (a `main` takes no
/// arguments, so its counter is a static).
static LEFT_BEHIND: OnceLock<DropCounter> = OnceLock::new();

#[ringleader::main(worker_threads = 2)]
async fn main_leaving_a_task_behind() -> usize {
    let token = LEFT_BEHIND.get_or_init(DropCounter::new).token();
    // Dropping the handle detaches the task; it stays alive until the runtime goes.
    drop(ringleader::spawn(async move {
        let _token = token;
        std::future::pending::<()>().await
    }));
    Handle::current().metrics().num_alive_tasks()
}

#[test]
fn main_shuts_its_runtime_down_on_return_cancelling_tasks_still_alive() {
    assert_eq!(main_leaving_a_task_behind(), 1);
    let dropped = LEFT_BEHIND.get().unwrap();
    assert_eq!(dropped.count(), 1, "the pending task's future was dropped");
}

#[ringleader::test(worker_threads = 2)]
async fn a_main_fn_called_inside_a_task_panics_like_block_on() {
    let err = ringleader::spawn(async { main_like() }).await.unwrap_err();
    let payload = err.into_panic();
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(message.contains("block_on called from inside"), "{message}");
}

// ---- #[ringleader::test] with each option ----

#[ringleader::test]
async fn test_defaults_to_current_thread_on_the_test_thread() {
    let here = thread::current().id();
    let there = ringleader::spawn(async { thread::current().id() })
        .await
        .unwrap();
    assert_eq!(here, there);
    assert_eq!(num_workers(), 1);
}

#[ringleader::test(flavor = "current_thread")]
async fn test_flavor_current_thread() {
    assert_eq!(num_workers(), 1);
}

#[ringleader::test(worker_threads = 2)]
async fn test_worker_threads_two_gives_two_workers_off_the_test_thread() {
    assert_eq!(num_workers(), 2);
    let here = thread::current().id();
    let (id, name) = ringleader::spawn(async {
        let me = thread::current();
        (me.id(), me.name().map(str::to_owned))
    })
    .await
    .unwrap();
    assert_ne!(id, here);
    assert!(
        name.as_deref()
            .is_some_and(|n| n.starts_with("ringleader-worker-")),
        "{name:?}"
    );
}

#[ringleader::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_flavor_multi_thread_with_worker_threads() {
    assert_eq!(num_workers(), 2);
}

#[ringleader::test(worker_threads = 2)]
async fn the_body_need_not_be_send_even_on_a_multi_thread_runtime() {
    // The body runs on the test thread (`block_on`), never on a worker.
    let local = std::rc::Rc::new(5);
    ringleader::task::yield_now().await;
    assert_eq!(*local + ringleader::spawn(async { 1 }).await.unwrap(), 6);
}

#[ringleader::test(start_paused = true)]
async fn test_start_paused_makes_an_hour_pass_at_once() {
    let wall = std::time::Instant::now();
    let start = Instant::now();
    time::sleep(Duration::from_secs(3600)).await;
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(3600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3601), "{elapsed:?}");
    assert!(wall.elapsed() < Duration::from_secs(10));
}

#[ringleader::test(start_paused = true, worker_threads = 2)]
async fn test_start_paused_on_a_multi_thread_runtime() {
    let start = Instant::now();
    let sleeper = ringleader::spawn(async {
        time::sleep(Duration::from_secs(3600)).await;
        Instant::now()
    });
    let woke = sleeper.await.unwrap();
    assert!(woke.duration_since(start) >= Duration::from_secs(3600));
}

#[ringleader::test(start_paused = false)]
async fn test_start_paused_false_keeps_the_real_clock() {
    let wall = std::time::Instant::now();
    time::sleep(Duration::from_millis(20)).await;
    assert!(wall.elapsed() >= Duration::from_millis(20));
}

/// Records the level and message of every event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(Level, String)>>>);

struct MessageVisitor(String);
impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = MessageVisitor(String::new());
        event.record(&mut visitor);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), visitor.0));
    }
}

/// Spawns a task that blocks for 150 ms and returns the warnings logged on this thread
/// meanwhile. On a current-thread runtime the task runs here, so a thread-local subscriber
/// sees the slow-poll report.
async fn warnings_for_a_slow_task() -> Vec<String> {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    ringleader::task::Builder::new()
        .name("sluggish")
        .spawn(async { thread::sleep(Duration::from_millis(150)) })
        .await
        .unwrap();
    let events = capture.0.lock().unwrap();
    events
        .iter()
        .filter(|(level, _)| *level == Level::WARN)
        .map(|(_, message)| message.clone())
        .collect()
}

#[ringleader::test(debug = true)]
async fn test_debug_true_reports_slow_polls() {
    let warnings = warnings_for_a_slow_task().await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("sluggish"), "{}", warnings[0]);
}

#[ringleader::test(debug = false)]
async fn test_debug_false_does_not() {
    assert_eq!(warnings_for_a_slow_task().await, Vec::<String>::new());
}

#[ringleader::test]
async fn test_may_return_ok() -> Result<(), std::num::ParseIntError> {
    let n: u32 = "41".parse()?;
    assert_eq!(ringleader::spawn(async move { n + 1 }).await.unwrap(), 42);
    Ok(())
}

#[ringleader::test]
#[should_panic(expected = "panicked in the body")]
async fn test_should_panic_sees_a_panic_in_the_body() {
    ringleader::task::yield_now().await;
    panic!("panicked in the body");
}

#[should_panic(expected = "a task's panic, resumed")]
#[ringleader::test(worker_threads = 2)]
async fn test_should_panic_written_before_the_attribute() {
    let err = ringleader::spawn(async { panic!("a task's panic, resumed") })
        .await
        .unwrap_err();
    std::panic::resume_unwind(err.into_panic());
}

mod renamed {
    // The `crate` option: the expansion names the facade by the path given.
    use ringleader as rl;

    #[rl::test(crate = "rl")]
    async fn crate_option_finds_a_renamed_facade() {
        assert_eq!(rl::spawn(async { 1 }).await.unwrap(), 1);
    }

    #[rl::test(crate = "::ringleader")]
    async fn crate_option_takes_an_absolute_path() {
        assert_eq!(rl::spawn(async { 2 }).await.unwrap(), 2);
    }
}
