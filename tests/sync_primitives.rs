//! The synchronisation primitives through the facade, on the multi-thread runtime with two
//! workers: exact totals under contention, barrier rounds, permit bounds, and tasks aborted
//! while waiting.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;

use ringleader::sync::{Barrier, Condition, Event, Mutex, Notify, RwLock, Semaphore};
use support::{rt2, scaled};

#[test]
fn mutex_8_tasks_exact_total() {
    let rt = rt2();
    let per_task = scaled(100_000);
    let total = rt.block_on(async move {
        let m = Arc::new(Mutex::new(0usize));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let m = m.clone();
                ringleader::spawn(async move {
                    for _ in 0..per_task {
                        *m.lock().await += 1;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let v = *m.lock().await;
        v
    });
    assert_eq!(total, 8 * per_task);
}

#[test]
fn barrier_100_tasks_rounds() {
    let rt = rt2();
    let parties = 100;
    let rounds = scaled(1_000);
    rt.block_on(async move {
        let barrier = Arc::new(Barrier::new(parties));
        let arrivals = Arc::new(AtomicUsize::new(0));
        let leaders = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..parties)
            .map(|_| {
                let (barrier, arrivals, leaders) =
                    (barrier.clone(), arrivals.clone(), leaders.clone());
                ringleader::spawn(async move {
                    for round in 0..rounds {
                        arrivals.fetch_add(1, Ordering::SeqCst);
                        let r = barrier.wait().await.expect("barrier not broken");
                        if r.is_leader() {
                            leaders.fetch_add(1, Ordering::SeqCst);
                            // Everyone of this round arrived; nobody passed the next one.
                            let seen = arrivals.load(Ordering::SeqCst);
                            assert!(seen >= parties * (round + 1), "round {round}: {seen}");
                            assert!(seen < parties * (round + 2), "round {round}: {seen}");
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(leaders.load(Ordering::SeqCst), rounds);
        assert_eq!(barrier.n_waiting(), 0);
    });
}

#[test]
fn semaphore_never_exceeds_permits() {
    let rt = rt2();
    let iterations = scaled(20_000);
    rt.block_on(async move {
        let sem = Arc::new(Semaphore::new(3));
        let in_use = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (sem, in_use, max) = (sem.clone(), in_use.clone(), max.clone());
                ringleader::spawn(async move {
                    for j in 0..iterations {
                        let n = 1 + (i + j) % 2; // mix of 1- and 2-permit requests
                        let permit = sem.acquire_many(n).await.unwrap();
                        let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                        max.fetch_max(now, Ordering::SeqCst);
                        if j % 8 == 0 {
                            ringleader::task::yield_now().await;
                        }
                        in_use.fetch_sub(n, Ordering::SeqCst);
                        drop(permit);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let max = max.load(Ordering::SeqCst);
        assert!((1..=3).contains(&max), "max in use {max}");
        assert_eq!(sem.available_permits(), 3);
    });
}

#[test]
fn rwlock_readers_never_see_a_writer() {
    let rt = rt2();
    let iterations = scaled(20_000);
    rt.block_on(async move {
        let lock = Arc::new(RwLock::new(0usize));
        let writing = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..6 {
            let (lock, writing) = (lock.clone(), writing.clone());
            let writer = w < 2;
            tasks.push(ringleader::spawn(async move {
                for _ in 0..iterations {
                    if writer {
                        let mut g = lock.write().await;
                        assert!(!writing.swap(true, Ordering::SeqCst));
                        *g += 1;
                        writing.store(false, Ordering::SeqCst);
                    } else {
                        let g = lock.read().await;
                        assert!(!writing.load(Ordering::SeqCst));
                        std::hint::black_box(*g);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*lock.read().await, 2 * iterations);
    });
}

#[test]
fn aborted_lock_waiters_lose_nothing() {
    let rt = rt2();
    let rounds = scaled(2_000);
    rt.block_on(async move {
        let m = Arc::new(Mutex::new(0usize));
        for _ in 0..rounds {
            let holder = m.clone().lock_owned().await;
            let waiters: Vec<_> = (0..4)
                .map(|_| {
                    let m = m.clone();
                    ringleader::spawn(async move {
                        *m.lock().await += 1;
                    })
                })
                .collect();
            ringleader::task::yield_now().await;
            drop(holder);
            // Abort half of them at whatever point they are at (queued or handed the lock).
            waiters[0].abort();
            waiters[2].abort();
            let mut done = 0;
            for w in waiters {
                if w.await.is_ok() {
                    done += 1;
                }
            }
            assert!(done >= 2);
            assert!(m.try_lock().is_ok(), "the lock was passed on, not lost");
        }
    });
}

#[test]
fn notify_ping_pong() {
    let rt = rt2();
    let rounds = scaled(20_000);
    rt.block_on(async move {
        let ping = Arc::new(Notify::new());
        let pong = Arc::new(Notify::new());
        let (p2, q2) = (ping.clone(), pong.clone());
        let t = ringleader::spawn(async move {
            for _ in 0..rounds {
                p2.notified().await;
                q2.notify_one();
            }
        });
        for _ in 0..rounds {
            ping.notify_one();
            pong.notified().await;
        }
        t.await.unwrap();
    });
}

#[test]
fn event_releases_every_waiter() {
    let rt = rt2();
    rt.block_on(async {
        let ev = Arc::new(Event::new());
        let woken = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (ev, woken, waiting) = (ev.clone(), woken.clone(), waiting.clone());
                ringleader::spawn(async move {
                    let mut wait = std::pin::pin!(ev.wait());
                    // Poll once so the task is queued before counting itself as waiting.
                    let first = std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx)));
                    assert!(first.await.is_pending());
                    waiting.fetch_add(1, Ordering::SeqCst);
                    wait.await;
                    woken.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        while waiting.load(Ordering::SeqCst) < 50 {
            ringleader::task::yield_now().await;
        }
        // asyncio: set() releases every waiting task even if clear() follows at once.
        ev.set();
        ev.clear();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 50);
    });
}

#[test]
fn condition_producer_consumer() {
    let rt = rt2();
    let items = scaled(10_000);
    rt.block_on(async move {
        let state = Arc::new((Mutex::new(Vec::<usize>::new()), Condition::new()));
        let s2 = state.clone();
        let consumer = ringleader::spawn(async move {
            let (m, c) = &*s2;
            let mut got = 0;
            let mut next = 0;
            while got < items {
                let mut g = c.wait_for(m.lock().await, |q| !q.is_empty()).await;
                for v in g.drain(..) {
                    assert_eq!(v, next);
                    next += 1;
                    got += 1;
                }
            }
        });
        let (m, c) = &*state;
        for i in 0..items {
            m.lock().await.push(i);
            c.notify(1);
            if i % 64 == 0 {
                ringleader::task::yield_now().await;
            }
        }
        consumer.await.unwrap();
    });
}

#[test]
fn aborted_semaphore_waiters_return_permits() {
    let rt = rt2();
    let rounds = scaled(2_000);
    rt.block_on(async move {
        let sem = Arc::new(Semaphore::new(4));
        for round in 0..rounds {
            let all = sem.clone().acquire_many_owned(4).await.unwrap();
            let waiters: Vec<_> = (0..4)
                .map(|i| {
                    let sem = sem.clone();
                    ringleader::spawn(async move {
                        drop(sem.acquire_many(1 + i % 3).await.unwrap());
                    })
                })
                .collect();
            if round % 2 == 0 {
                ringleader::task::yield_now().await;
            }
            drop(all);
            waiters[1].abort();
            waiters[3].abort();
            for w in waiters {
                let _ = w.await;
            }
            assert_eq!(sem.available_permits(), 4, "round {round}");
        }
    });
}
