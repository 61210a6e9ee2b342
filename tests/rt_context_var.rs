//! Context variables (asyncio's `contextvars`): every spawned task, task-group child,
//! blocking closure and `call_soon` callback starts with a copy of its spawner's context;
//! a set changes only the setter's context; a task's context follows it across workers.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringleader::sync::{oneshot, Barrier};
use ringleader::task::{self, ContextVar};
use ringleader::taskgroup::{task_group, BoxError};
use support::rt2;

#[test]
fn a_child_inherits_a_copy_and_the_two_then_diverge() {
    static VAR: ContextVar<&'static str> = ContextVar::new("diverge");
    rt2().block_on(async {
        VAR.set("parent");
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let child = ringleader::spawn(async move {
            let inherited = VAR.get();
            VAR.set("child");
            // The parent sets a new value meanwhile: a copy made at spawn does not see it.
            go_rx.await.unwrap();
            (inherited, VAR.get())
        });
        ringleader::task::yield_now().await;
        VAR.set("parent, later");
        go_tx.send(()).unwrap();
        let (inherited, after) = child.await.unwrap();
        assert_eq!(inherited, Some("parent"));
        assert_eq!(
            after,
            Some("child"),
            "the parent's later set reached the child"
        );
        assert_eq!(
            VAR.get(),
            Some("parent, later"),
            "the child's set reached the parent"
        );
    });
}

#[test]
fn unset_default_and_with() {
    static PLAIN: ContextVar<u32> = ContextVar::new("plain");
    static DEFAULTED: ContextVar<String> = ContextVar::with_default("defaulted", String::new());
    rt2().block_on(async {
        assert_eq!(PLAIN.get(), None);
        assert_eq!(DEFAULTED.get(), Some(String::new()));
        DEFAULTED.set("set".to_string());
        assert_eq!(DEFAULTED.with(|v| v.map(String::len)), Some(3));
        assert_eq!(PLAIN.name(), "plain");
        ringleader::spawn(async {
            assert_eq!(PLAIN.get(), None);
            assert_eq!(DEFAULTED.get().as_deref(), Some("set"));
        })
        .await
        .unwrap();
    });
}

#[test]
fn each_task_keeps_its_own_value_across_awaits_on_every_worker() {
    static VAR: ContextVar<u64> = ContextVar::new("per_task");
    rt2().block_on(async {
        let barrier = Arc::new(Barrier::new(64));
        let tasks: Vec<_> = (0..64u64)
            .map(|i| {
                let barrier = barrier.clone();
                ringleader::spawn(async move {
                    VAR.set(i);
                    barrier.wait().await.unwrap();
                    for _ in 0..200 {
                        ringleader::task::yield_now().await;
                        assert_eq!(VAR.get(), Some(i), "task {i} saw another task's value");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(VAR.get(), None, "a task's set leaked into the root");
    });
}

#[test]
fn a_set_does_not_leak_into_the_next_task_on_the_same_worker() {
    static VAR: ContextVar<u32> = ContextVar::new("leak");
    let rt = ringleader::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    rt.block_on(async {
        let setter = ringleader::spawn(async {
            VAR.set(1);
            ringleader::task::yield_now().await;
            VAR.get()
        });
        let reader = ringleader::spawn(async {
            let first = VAR.get();
            ringleader::task::yield_now().await;
            (first, VAR.get())
        });
        assert_eq!(setter.await.unwrap(), Some(1));
        assert_eq!(reader.await.unwrap(), (None, None));
    });
}

#[test]
fn grandchildren_group_children_and_blocking_closures_inherit() {
    static VAR: ContextVar<u32> = ContextVar::new("chain");
    rt2().block_on(async {
        VAR.set(1);
        let grandchild = ringleader::spawn(async {
            VAR.set(2);
            ringleader::spawn(async { VAR.get() }).await.unwrap()
        });
        assert_eq!(grandchild.await.unwrap(), Some(2));

        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        task_group(|tg| async move {
            for _ in 0..3 {
                let s = s.clone();
                tg.spawn(async move {
                    s.lock().unwrap().push(VAR.get());
                })?;
            }
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
        assert_eq!(*seen.lock().unwrap(), [Some(1); 3]);

        assert_eq!(task::spawn_blocking(|| VAR.get()).await.unwrap(), Some(1));
        assert_eq!(task::to_thread(|| VAR.get()).await.unwrap(), Some(1));
    });
}

#[test]
fn reset_restores_the_previous_value_and_refuses_foreign_tokens() {
    static VAR: ContextVar<u32> = ContextVar::new("reset");
    static OTHER: ContextVar<u32> = ContextVar::new("other");
    rt2().block_on(async {
        let first = VAR.set(1);
        let second = VAR.set(2);
        VAR.reset(second).unwrap();
        assert_eq!(VAR.get(), Some(1));
        VAR.reset(first).unwrap();
        assert_eq!(VAR.get(), None, "reset to 'never set'");

        // A token of another variable, or made in another task, changes nothing.
        let other = OTHER.set(5);
        let err = VAR.reset(other).unwrap_err();
        assert!(err.to_string().contains("\"reset\""), "{err}");
        let token = VAR.set(3);
        let foreign = ringleader::spawn(async move { VAR.reset(token).is_err() });
        assert!(
            foreign.await.unwrap(),
            "a token used in another task was accepted"
        );
        assert_eq!(VAR.get(), Some(3));
    });
}

#[test]
fn call_soon_callbacks_run_in_the_context_they_were_scheduled_from() {
    static VAR: ContextVar<u32> = ContextVar::new("callback");
    rt2().block_on(async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handle = ringleader::runtime::Handle::current();
        let mut done = Vec::new();
        // Scheduled in one go, each from a context of its own: one drainer task (spawned
        // in the first one's context) runs several, and timers due together fire together.
        for i in 0..8u32 {
            let (tx, rx) = oneshot::channel();
            let seen = seen.clone();
            VAR.set(i);
            let f = move || {
                seen.lock().unwrap().push((i, VAR.get()));
                let _ = tx.send(());
            };
            if i < 4 {
                handle.call_soon(f);
            } else {
                handle.call_later(Duration::from_millis(5), f);
            }
            done.push(rx);
        }
        let last = VAR.set(100);
        for rx in done {
            rx.await.unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, (0..8).map(|i| (i, Some(i))).collect::<Vec<_>>());
        // The callbacks did not leak their contexts into ours.
        assert_eq!(VAR.get(), Some(100));
        VAR.reset(last).unwrap();
        assert_eq!(VAR.get(), Some(7));
    });
}

#[test]
fn values_are_released_when_no_context_holds_them() {
    static VAR: ContextVar<Arc<()>> = ContextVar::new("release");
    let value = Arc::new(());
    rt2().block_on({
        let value = value.clone();
        async move {
            let task = ringleader::spawn(async move {
                VAR.set(value);
                let children: Vec<_> = (0..8)
                    .map(|_| ringleader::spawn(async { VAR.get().is_some() }))
                    .collect();
                for c in children {
                    assert!(c.await.unwrap());
                }
            });
            task.await.unwrap();
        }
    });
    assert_eq!(
        Arc::strong_count(&value),
        1,
        "a finished task's context kept the value alive"
    );
}

#[test]
fn threads_outside_tasks_have_contexts_of_their_own() {
    static VAR: ContextVar<u32> = ContextVar::new("thread");
    let rt = rt2();
    rt.block_on(async {
        VAR.set(1);
    });
    // The block_on thread's context outlives the call; another plain thread has its own.
    assert_eq!(VAR.get(), Some(1));
    let other = std::thread::spawn(|| VAR.get()).join().unwrap();
    assert_eq!(other, None);
    // A task spawned from a plain thread inherits that thread's context.
    let handle = rt.handle().clone();
    let inherited = std::thread::spawn(move || {
        VAR.set(9);
        handle.spawn(async { VAR.get() }).blocking_wait()
    })
    .join()
    .unwrap();
    assert_eq!(inherited.unwrap(), Some(9));
}

#[test]
fn local_tasks_inherit_and_keep_contexts_of_their_own() {
    use std::cell::RefCell;
    use std::rc::Rc;
    static VAR: ContextVar<u32> = ContextVar::new("local");
    struct ReadOnDrop(Rc<RefCell<Vec<Option<u32>>>>);
    impl Drop for ReadOnDrop {
        fn drop(&mut self) {
            self.0.borrow_mut().push(VAR.get());
        }
    }
    rt2().block_on(async {
        let set = task::LocalSet::new();
        let seen = Rc::new(RefCell::new(Vec::new()));
        VAR.set(1);
        for i in 10..13u32 {
            let seen = seen.clone();
            drop(set.spawn_local(async move {
                let inherited = VAR.get();
                VAR.set(i);
                // Interleaved with the other local tasks, each keeps its own value.
                ringleader::task::yield_now().await;
                seen.borrow_mut().push(inherited);
                seen.borrow_mut().push(VAR.get());
            }));
        }
        VAR.set(2); // after the spawns: not seen by them
        set.run_until(async {
            ringleader::task::yield_now().await;
            // The driving future's own context is untouched by its tasks' sets.
            assert_eq!(VAR.get(), Some(2));
        })
        .await;
        set.run_until_empty().await;
        assert_eq!(
            *seen.borrow(),
            [Some(1), Some(10), Some(1), Some(11), Some(1), Some(12)]
        );

        // A pending local task's drop (the set dropped) runs in the task's context.
        let dropped = Rc::new(RefCell::new(Vec::new()));
        let guard = ReadOnDrop(dropped.clone());
        drop(set.spawn_local(async move {
            VAR.set(5);
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
        set.run_until(ringleader::task::yield_now()).await;
        drop(set);
        assert_eq!(*dropped.borrow(), [Some(5)]);
        assert_eq!(VAR.get(), Some(2));
    });
}

#[test]
fn done_callbacks_run_in_the_task_context_and_keep_their_sets() {
    static VAR: ContextVar<u32> = ContextVar::new("done");
    rt2().block_on(async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let task = ringleader::spawn(async move {
            VAR.set(5);
            go_rx.await.unwrap();
        });
        let s = seen.clone();
        task.add_done_callback(move |_| {
            s.lock().unwrap().push(VAR.get());
            VAR.set(6); // only the callback's copy
        });
        let s = seen.clone();
        task.add_done_callback(move |_| s.lock().unwrap().push(VAR.get()));
        go_tx.send(()).unwrap();
        task.await.unwrap();
        // Every later spawn on the workers starts without the callback's value.
        let later: Vec<_> = (0..8)
            .map(|_| ringleader::spawn(async { VAR.get() }))
            .collect();
        for t in later {
            assert_eq!(t.await.unwrap(), None, "a done callback's set leaked");
        }
        assert_eq!(*seen.lock().unwrap(), [Some(5), Some(5)]);
    });
}
