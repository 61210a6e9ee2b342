//! Debug mode's slow-poll warning and the report of panics nobody observed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringleader::runtime::Builder;
use ringleader::task;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Records (level, message) of every event.
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

fn captured<R>(f: impl FnOnce() -> R) -> (R, Vec<(Level, String)>) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let out = tracing::subscriber::with_default(subscriber, f);
    let events = capture.0.lock().unwrap().clone();
    (out, events)
}

#[test]
fn a_task_blocking_200ms_gives_exactly_one_warning_naming_it() {
    let ((), events) = captured(|| {
        // Workers inherit no thread-local subscriber: use a current-thread runtime, whose
        // tasks run on this thread.
        let rt = Builder::new_current_thread().debug(true).build().unwrap();
        rt.block_on(async {
            task::Builder::new()
                .name("sluggish")
                .spawn(async { std::thread::sleep(Duration::from_millis(200)) })
                .await
                .unwrap();
            // A fast task gives no warning.
            task::Builder::new()
                .name("brisk")
                .spawn(async {})
                .await
                .unwrap();
        });
    });
    let warnings: Vec<_> = events.iter().filter(|(l, _)| *l == Level::WARN).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].1.contains("sluggish"), "{}", warnings[0].1);
    assert!(
        warnings[0].1.contains("rt_debug.rs"),
        "names the spawn location: {}",
        warnings[0].1
    );
}

#[test]
fn without_debug_mode_slow_polls_are_not_reported() {
    let ((), events) = captured(|| {
        let rt = Builder::new_current_thread().debug(false).build().unwrap();
        rt.block_on(async {
            task::spawn(async { std::thread::sleep(Duration::from_millis(150)) })
                .await
                .unwrap();
        });
    });
    assert!(events.iter().all(|(l, _)| *l != Level::WARN), "{events:?}");
}

#[test]
fn a_panic_whose_handle_was_dropped_is_reported_once() {
    let ((), events) = captured(|| {
        let rt = Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            drop(
                task::Builder::new()
                    .name("forgotten")
                    .spawn(async { panic!("lost failure") }),
            );
            // An awaited panic is not reported: its handle saw it.
            let _ = task::spawn(async { panic!("seen failure") }).await;
            for _ in 0..10 {
                task::yield_now().await;
            }
        });
    });
    let errors: Vec<_> = events.iter().filter(|(l, _)| *l == Level::ERROR).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].1.contains("forgotten") && errors[0].1.contains("lost failure"),
        "{}",
        errors[0].1
    );
}
