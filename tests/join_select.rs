//! `join!`, `try_join!` and `select!`: concurrency on one task, cancellation of the losers,
//! patterns, preconditions, `else`, fairness, and handlers' control flow.

use std::cell::Cell;
use std::future::{pending, ready};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringleader::sync::{mpsc, oneshot, Event};
use ringleader::time::{sleep, Instant};
use ringleader::{join, select, try_join};

/// Sets its flag when dropped: tells whether a future was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A future that never finishes and records its drop.
fn never(dropped: &Arc<AtomicBool>) -> impl std::future::Future<Output = ()> {
    let flag = DropFlag(dropped.clone());
    async move {
        let _flag = flag;
        pending::<()>().await
    }
}

#[ringleader::test]
async fn join_runs_its_futures_concurrently_and_keeps_their_order_and_types() {
    // Each future waits for the other's event: run one after the other, they deadlock.
    let (a, b) = (Event::new(), Event::new());
    let (left, right) = join!(
        async {
            a.set();
            b.wait().await;
            "left"
        },
        async {
            b.set();
            a.wait().await;
            2u8
        },
    );
    assert_eq!((left, right), ("left", 2));
}

#[ringleader::test]
async fn join_of_nothing_and_of_one() {
    let () = join!();
    let (one,) = join!(ready(1));
    assert_eq!(one, 1);
}

#[ringleader::test]
async fn join_needs_neither_send_nor_static() {
    // An Rc and a borrow of a local: fine on one task.
    let local = Rc::new(Cell::new(0));
    let counter = &local;
    join!(async { counter.set(counter.get() + 1) }, async {
        counter.set(counter.get() + 10)
    },);
    assert_eq!(local.get(), 11);
}

#[ringleader::test(start_paused = true)]
async fn join_waits_for_the_slowest() {
    let start = Instant::now();
    let (a, b, c) = join!(
        async {
            sleep(Duration::from_secs(3)).await;
            'a'
        },
        async {
            sleep(Duration::from_secs(1)).await;
            'b'
        },
        async {
            sleep(Duration::from_secs(2)).await;
            'c'
        },
    );
    assert_eq!((a, b, c), ('a', 'b', 'c'));
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[ringleader::test(start_paused = true)]
async fn try_join_returns_the_values_when_all_succeed() {
    let both: Result<(u8, &str), String> = try_join!(
        async {
            sleep(Duration::from_secs(1)).await;
            Ok(1)
        },
        async { Ok("two") },
    );
    assert_eq!(both, Ok((1, "two")));
}

#[ringleader::test(start_paused = true)]
async fn try_join_returns_the_first_error_at_once_and_cancels_the_others() {
    let dropped = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let result: Result<((), u8), &str> = try_join!(
        async {
            never(&dropped).await;
            Ok(())
        },
        async {
            sleep(Duration::from_secs(1)).await;
            Err("boom")
        },
    );
    assert_eq!(result, Err("boom"));
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "did not wait for the rest"
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the pending future was dropped"
    );
}

#[ringleader::test(start_paused = true)]
async fn select_runs_the_first_to_finish_and_drops_the_others() {
    let dropped = Arc::new(AtomicBool::new(false));
    let winner = select! {
        _ = never(&dropped) => "never",
        v = async {
            sleep(Duration::from_secs(1)).await;
            7
        } => {
            assert_eq!(v, 7);
            "sleeper"
        }
    };
    assert_eq!(winner, "sleeper");
    assert!(dropped.load(Ordering::SeqCst), "the loser was dropped");
}

#[ringleader::test]
async fn a_refused_pattern_disables_its_branch_and_the_others_go_on() {
    let (tx, rx) = oneshot::channel::<u32>();
    drop(ringleader::spawn(async move {
        sleep(Duration::from_millis(5)).await;
        let _ = tx.send(5);
    }));
    let got = select! {
        // Finishes at once, but with None: refused, so the other branch decides.
        Some(n) = ready(None::<u32>) => n,
        Ok(n) = rx => n * 10,
    };
    assert_eq!(got, 50);
}

#[ringleader::test]
async fn else_runs_once_every_branch_is_disabled() {
    let run = Cell::new(false);
    let got = select! {
        Some(n) = ready(None::<u8>) => n,
        Ok(n) = ready(Err::<u8, ()>(())) => n,
        _ = async { run.set(true) }, if false => 99,
        else => 0,
    };
    assert_eq!(got, 0);
    assert!(
        !run.get(),
        "a branch disabled by its precondition is never polled"
    );
}

#[ringleader::test]
async fn a_false_precondition_disables_a_ready_branch() {
    let got = select! {
        n = ready(1), if 1 + 1 == 3 => n,
        n = ready(2) => n,
    };
    assert_eq!(got, 2);
}

#[ringleader::test]
async fn preconditions_and_futures_are_evaluated_in_order() {
    let order = std::cell::RefCell::new(Vec::new());
    let note = |what: &'static str| order.borrow_mut().push(what);
    select! {
        _ = { note("future 1"); ready(()) }, if { note("condition 1"); true } => {}
        _ = { note("future 2"); ready(()) }, if { note("condition 2"); true } => {}
    }
    assert_eq!(
        *order.borrow(),
        ["condition 1", "condition 2", "future 1", "future 2"]
    );
}

#[ringleader::test]
#[should_panic(expected = "every branch is disabled")]
async fn without_else_every_branch_disabled_panics() {
    select! {
        Some(n) = ready(None::<u8>) => { let _ = n; }
    }
}

#[ringleader::test]
async fn biased_polls_in_the_order_written() {
    for _ in 0..100 {
        let first = select! {
            biased;
            _ = ready(()) => 1,
            _ = ready(()) => 2,
            _ = ready(()) => 3,
        };
        assert_eq!(first, 1);
    }
}

#[ringleader::test]
async fn unbiased_select_gives_every_ready_branch_a_share() {
    let mut wins = [0u32; 3];
    for _ in 0..3000 {
        let i = select! {
            _ = ready(()) => 0,
            _ = ready(()) => 1,
            _ = ready(()) => 2,
        };
        wins[i] += 1;
    }
    // Uniform would be 1000 each; 500 is more than 20 standard deviations away.
    assert!(wins.iter().all(|&w| w > 500), "{wins:?}");
}

#[ringleader::test]
async fn handlers_break_continue_and_use_question_mark_on_the_enclosing_code() {
    async fn parse_all(inputs: &[&str]) -> Result<u32, std::num::ParseIntError> {
        let mut sum = 0;
        let mut i = 0;
        loop {
            i += 1;
            if i > inputs.len() {
                break;
            }
            select! {
                s = ready(inputs[i - 1]) => {
                    if s.is_empty() {
                        continue;
                    }
                    sum += s.parse::<u32>()?;
                }
            }
        }
        Ok(sum)
    }
    assert_eq!(parse_all(&["1", "", "2"]).await, Ok(3));
    assert!(parse_all(&["1", "x"]).await.is_err());
}

#[ringleader::test]
async fn bindings_keep_their_mut_and_patterns_can_be_nested() {
    struct Point {
        x: i32,
        y: i32,
    }
    let got = select! {
        (Some(mut v), Point { x, y: yy }) = ready((Some(vec![1]), Point { x: 2, y: 3 })) => {
            v.push(x + yy);
            v
        }
    };
    assert_eq!(got, [1, 5]);
    let or = select! {
        Ok(n) | Err(n) = ready(Err::<u8, u8>(4)) => n,
    };
    assert_eq!(or, 4);
}

#[ringleader::test(start_paused = true)]
async fn a_future_selected_by_mut_reference_survives_the_loop() {
    let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
    drop(ringleader::spawn(async move {
        for n in 0.. {
            if tx.send(n).is_err() {
                return;
            }
            sleep(Duration::from_millis(300)).await;
        }
    }));
    let mut deadline = std::pin::pin!(sleep(Duration::from_secs(1)));
    let mut received = Vec::new();
    loop {
        select! {
            Some(n) = rx.recv() => received.push(n),
            _ = &mut deadline => break,
        }
    }
    // Sends at 0, 0.3, 0.6 and 0.9 s land before the one deadline at 1 s.
    assert_eq!(received, [0, 1, 2, 3]);
}

#[test]
fn select_works_across_workers() {
    let rt = ringleader::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let (tx, rx) = oneshot::channel();
        let worker = ringleader::spawn(async move {
            let _ = tx.send(std::thread::current().id());
        });
        let got = select! {
            Ok(id) = rx => Some(id),
            _ = sleep(Duration::from_secs(30)) => None,
        };
        assert!(got.is_some());
        worker.await.unwrap();
    });
}

#[ringleader::test(worker_threads = 2)]
async fn the_macros_keep_a_task_send() {
    // `spawn` needs a Send future: the expansions hold nothing that is not.
    let task = ringleader::spawn(async {
        let (tx, rx) = oneshot::channel::<u8>();
        let (sent, got) = join!(async { tx.send(3) }, async {
            select! {
                Ok(n) = rx => n,
                _ = sleep(Duration::from_secs(30)) => 0,
            }
        });
        let both: Result<(u8, u8), ()> = try_join!(async { Ok(got) }, async { Ok(1) });
        (sent.is_ok(), both)
    });
    assert_eq!(task.await.unwrap(), (true, Ok((3, 1))));
}
