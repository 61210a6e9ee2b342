//! The handler for panics nobody observed, and `UnhandledPanic::ShutdownRuntime` on both
//! flavours.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringleader::runtime::{Builder, UnhandledPanic};
use ringleader::task;
use support::DropCounter;

/// A reported panic: the task's name and the panic message.
type Report = (Option<String>, Option<String>);

#[test]
fn the_handler_sees_exactly_the_panics_nobody_awaited() {
    let seen: Arc<Mutex<Vec<Report>>> = Arc::default();
    let sink = seen.clone();
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .on_task_panic(move |p| {
            sink.lock()
                .unwrap()
                .push((p.name().map(str::to_owned), p.message().map(str::to_owned)));
        })
        .build()
        .unwrap();
    rt.block_on(async {
        // Detached before it panics: reported.
        drop(
            task::Builder::new()
                .name("detached")
                .spawn(async { panic!("lost 1") }),
        );
        // Awaited: the awaiting code gets it; not reported.
        let awaited = task::Builder::new()
            .name("awaited")
            .spawn(async { panic!("seen by the caller") });
        let err = awaited.await.unwrap_err();
        assert!(err.is_panic());
        // Finished, then its handle dropped without being awaited: reported at the drop.
        let late = task::Builder::new()
            .name("dropped-late")
            .spawn(async { panic!("lost 2") });
        while !late.is_finished() {
            task::yield_now().await;
        }
        drop(late);
        // A task that succeeds is never reported.
        drop(ringleader::spawn(async { 1 }));
        for _ in 0..100 {
            if seen.lock().unwrap().len() >= 2 {
                break;
            }
            ringleader::time::sleep(Duration::from_millis(5)).await;
        }
    });
    drop(rt);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (Some("detached".into()), Some("lost 1".into())),
            (Some("dropped-late".into()), Some("lost 2".into())),
        ]
    );
}

#[test]
fn shutdown_runtime_stops_a_busy_multi_thread_runtime_and_block_on_panics() {
    let busy = DropCounter::new();
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .unhandled_panic(UnhandledPanic::ShutdownRuntime)
        .on_task_panic(|_| {})
        .build()
        .unwrap();
    let tokens: Vec<_> = (0..4).map(|_| busy.token()).collect();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async move {
            // Tasks that never finish on their own, keeping both workers busy.
            for token in tokens {
                drop(ringleader::spawn(async move {
                    let _token = token;
                    loop {
                        task::yield_now().await;
                    }
                }));
            }
            drop(
                task::Builder::new()
                    .name("doomed")
                    .spawn(async { panic!("fatal") }),
            );
            // block_on's own future would wait forever.
            std::future::pending::<()>().await;
        })
    }));
    let payload = result.expect_err("block_on panics once the runtime shut down");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("ShutdownRuntime"), "{message}");
    assert!(
        message.contains("doomed") && message.contains("fatal"),
        "{message}"
    );
    drop(rt);
    assert_eq!(busy.count(), 4, "every busy task was cancelled and dropped");
}

#[test]
fn shutdown_runtime_on_the_current_thread_flavour() {
    let rt = Builder::new_current_thread()
        .unhandled_panic(UnhandledPanic::ShutdownRuntime)
        .on_task_panic(|_| {})
        .build()
        .unwrap();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            drop(ringleader::spawn(async { panic!("fatal") }));
            std::future::pending::<()>().await;
        })
    }));
    assert!(result.is_err());
    // An awaited panic does not shut a runtime down.
    let rt = Builder::new_current_thread()
        .unhandled_panic(UnhandledPanic::ShutdownRuntime)
        .build()
        .unwrap();
    let out = rt.block_on(async {
        let err = ringleader::spawn(async { panic!("observed") })
            .await
            .unwrap_err();
        assert!(err.is_panic());
        7
    });
    assert_eq!(out, 7);
}
