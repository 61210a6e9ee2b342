//! Ordering on the current-thread runtime, against asyncio's event loop: tasks start in the
//! order they were created, a woken task runs after those already ready, `call_soon`
//! callbacks share that FIFO order, and timers due together fire in the order they were set.

use std::sync::{Arc, Mutex};

#[ringleader::test]
async fn tasks_start_in_the_order_they_were_created() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..5)
        .map(|i| {
            let log = log.clone();
            ringleader::spawn(async move {
                log.lock().unwrap().push(i);
                ringleader::task::yield_now().await;
                log.lock().unwrap().push(10 + i);
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let got = log.lock().unwrap().clone();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 10, 11, 12, 13, 14]);
}

#[ringleader::test]
async fn a_woken_task_runs_after_those_already_ready() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = ringleader::sync::oneshot::channel::<()>();
    let l = log.clone();
    let waiter = ringleader::spawn(async move {
        rx.await.unwrap();
        l.lock().unwrap().push("woken");
    });
    ringleader::task::yield_now().await; // waiter parks on rx
    let l = log.clone();
    let ready = ringleader::spawn(async move {
        l.lock().unwrap().push("ready");
    });
    tx.send(()).unwrap();
    waiter.await.unwrap();
    ready.await.unwrap();
    let got = log.lock().unwrap().clone();
    assert_eq!(got, vec!["ready", "woken"]);
}

#[ringleader::test]
async fn call_soon_callbacks_and_tasks_share_one_fifo_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let handle = ringleader::runtime::Handle::current();
    let l = log.clone();
    let a = ringleader::spawn(async move { l.lock().unwrap().push("task a") });
    let l = log.clone();
    let _cb = handle.call_soon(move || l.lock().unwrap().push("callback"));
    let l = log.clone();
    let b = ringleader::spawn(async move { l.lock().unwrap().push("task b") });
    a.await.unwrap();
    b.await.unwrap();
    ringleader::task::yield_now().await;
    let got = log.lock().unwrap().clone();
    assert_eq!(got, vec!["task a", "callback", "task b"]);
}

#[ringleader::test(start_paused = true)]
async fn sleepers_with_the_same_deadline_wake_in_the_order_they_slept() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let deadline = ringleader::time::Instant::now() + std::time::Duration::from_millis(10);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let log = log.clone();
            ringleader::spawn(async move {
                ringleader::time::sleep_until(deadline).await;
                log.lock().unwrap().push(i);
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(*log.lock().unwrap(), (0..8).collect::<Vec<_>>());
}
