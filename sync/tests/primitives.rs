//! Executor-independent tests of the synchronisation primitives: futures are polled by hand
//! (a noop or counting waker) so every await point can be observed and every future dropped
//! there; `futures::executor::block_on` is the second executor.
#![cfg(not(ringleader_loom))]

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::executor::block_on;
use ringleader_sync::{
    Barrier, Condition, Event, Mutex, Notify, OnceCell, RwLock, Semaphore, SetError,
    TryAcquireError,
};

/// Polls once with a noop waker.
fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// A waker counting its wake-ups.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count::default());
    (c.clone(), Waker::from(c))
}

fn poll_with<F: Future + ?Sized>(fut: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(w))
}

fn wakes(c: &Count) -> usize {
    c.0.load(Ordering::SeqCst)
}

// ---------------------------------------------------------------- Semaphore

#[test]
fn semaphore_basics() {
    let sem = Semaphore::new(3);
    block_on(async {
        let a = sem.acquire_many(2).await.unwrap();
        assert_eq!(a.num_permits(), 2);
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(
            sem.try_acquire_many(2).unwrap_err(),
            TryAcquireError::NoPermits
        );
        let b = sem.try_acquire().unwrap();
        drop(a);
        assert_eq!(sem.available_permits(), 2);
        b.forget();
        assert_eq!(sem.available_permits(), 2);
        sem.add_permits(5);
        assert_eq!(sem.available_permits(), 7);
        assert_eq!(sem.acquire_many(0).await.unwrap().num_permits(), 0);
    });
}

#[test]
fn semaphore_strict_fifo_large_request_blocks_small_ones() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut big = pin!(sem.acquire_many(2));
    let mut small = pin!(sem.acquire());
    assert!(poll_once(big.as_mut()).is_pending());
    assert!(poll_once(small.as_mut()).is_pending());
    drop(held); // one permit goes to `big` (partial), none to `small`
    assert!(poll_once(big.as_mut()).is_pending());
    assert!(poll_once(small.as_mut()).is_pending());
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    sem.add_permits(1);
    let big_permit = match poll_once(big.as_mut()) {
        Poll::Ready(Ok(p)) => p,
        other => panic!("big not granted: {other:?}"),
    };
    assert!(poll_once(small.as_mut()).is_pending());
    drop(big_permit);
    assert!(matches!(poll_once(small.as_mut()), Poll::Ready(Ok(_))));
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn semaphore_no_barging_past_queued_waiter() {
    let sem = Semaphore::new(0);
    let mut waiter = pin!(sem.acquire());
    assert!(poll_once(waiter.as_mut()).is_pending());
    sem.add_permits(1); // handed to the waiter, not made available
    assert_eq!(sem.available_permits(), 0);
    assert!(sem.try_acquire().is_err());
    let mut newcomer = pin!(sem.acquire());
    assert!(poll_once(newcomer.as_mut()).is_pending());
    assert!(matches!(poll_once(waiter.as_mut()), Poll::Ready(Ok(_))));
}

#[test]
fn semaphore_cancelled_partial_grant_goes_to_next() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut big = Box::pin(sem.acquire_many(2));
    let mut small = pin!(sem.acquire());
    let (c, w) = counter();
    assert!(poll_once(big.as_mut()).is_pending());
    assert!(poll_with(small.as_mut(), &w).is_pending());
    drop(held); // big holds 1 of 2
    assert_eq!(wakes(&c), 0);
    drop(big); // its partial permit goes to `small`
    assert_eq!(wakes(&c), 1);
    let p = match poll_once(small.as_mut()) {
        Poll::Ready(Ok(p)) => p,
        other => panic!("small not granted: {other:?}"),
    };
    assert_eq!(sem.available_permits(), 0);
    drop(p);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn semaphore_cancel_at_every_point_returns_permits() {
    // Dropped before the first poll, while queued, after being granted but before observing it.
    let sem = Semaphore::new(1);
    drop(sem.acquire());
    assert_eq!(sem.available_permits(), 1);
    let held = sem.try_acquire().unwrap();
    let mut queued = Box::pin(sem.acquire());
    assert!(poll_once(queued.as_mut()).is_pending());
    drop(queued);
    assert_eq!(sem.available_permits(), 0);
    let mut granted = Box::pin(sem.acquire());
    let mut behind = pin!(sem.acquire());
    assert!(poll_once(granted.as_mut()).is_pending());
    assert!(poll_once(behind.as_mut()).is_pending());
    drop(held); // granted to `granted`
    drop(granted); // passes to `behind`
    assert!(matches!(poll_once(behind.as_mut()), Poll::Ready(Ok(_))));
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn semaphore_close() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut big = pin!(sem.acquire_many(3));
    let (c, w) = counter();
    assert!(poll_with(big.as_mut(), &w).is_pending());
    drop(held); // partial grant of 1
    sem.close();
    assert_eq!(wakes(&c), 1);
    assert!(sem.is_closed());
    assert!(matches!(poll_once(big.as_mut()), Poll::Ready(Err(_))));
    assert_eq!(sem.available_permits(), 1, "partial grant returned");
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    assert!(block_on(sem.acquire()).is_err());
}

#[test]
fn semaphore_release_wakes_one_waiter_only() {
    let sem = Semaphore::new(0);
    let (c1, w1) = counter();
    let (c2, w2) = counter();
    let mut a = pin!(sem.acquire());
    let mut b = pin!(sem.acquire());
    assert!(poll_with(a.as_mut(), &w1).is_pending());
    assert!(poll_with(b.as_mut(), &w2).is_pending());
    sem.add_permits(1);
    assert_eq!((wakes(&c1), wakes(&c2)), (1, 0));
}

#[test]
fn bounded_semaphore_release_errors() {
    let sem = Semaphore::bounded(2);
    assert!(sem.is_bounded());
    assert!(sem.release().is_err());
    let p = sem.try_acquire().unwrap();
    p.forget();
    assert_eq!(sem.available_permits(), 1);
    sem.release().unwrap();
    assert_eq!(sem.available_permits(), 2);
    assert!(sem.release().is_err());
    // A permit object returns itself; release() beyond that fails.
    let p = sem.try_acquire().unwrap();
    drop(p);
    assert!(sem.release().is_err());
    sem.add_permits(1); // the bound grows too
    assert_eq!(sem.available_permits(), 3);
    assert!(sem.release().is_err());
    // A plain semaphore accepts any release, as asyncio's Semaphore.
    let plain = Semaphore::new(0);
    plain.release().unwrap();
    assert_eq!(plain.available_permits(), 1);
}

#[test]
fn semaphore_owned_permits() {
    let sem = Arc::new(Semaphore::new(1));
    let p = block_on(sem.clone().acquire_owned()).unwrap();
    assert!(sem.clone().try_acquire_owned().is_err());
    let mut waiting = pin!(sem.clone().acquire_many_owned(1));
    assert!(poll_once(waiting.as_mut()).is_pending());
    drop(p);
    let p2 = match poll_once(waiting.as_mut()) {
        Poll::Ready(Ok(p)) => p,
        other => panic!("{other:?}"),
    };
    assert!(Arc::ptr_eq(p2.semaphore(), &sem));
    drop(p2);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn semaphore_spends_coop_budget() {
    let sem = Semaphore::new(usize::MAX >> 4);
    let mut cx = Context::from_waker(Waker::noop());
    let ready = ringleader_coop::with_budget(|| {
        let mut n = 0;
        loop {
            let mut fut = pin!(sem.acquire());
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(p) => {
                    p.unwrap().forget();
                    n += 1;
                }
                Poll::Pending => break n,
            }
        }
    });
    assert_eq!(ready, ringleader_coop::INITIAL_BUDGET as usize);
}

#[test]
fn semaphore_locked_and_bounded_owned_forget() {
    let sem = Arc::new(Semaphore::bounded(1));
    assert!(!sem.locked());
    let p = sem.clone().try_acquire_owned().unwrap();
    assert!(sem.locked());
    p.forget();
    assert!(sem.locked());
    sem.release().unwrap();
    assert!(!sem.locked());
    assert!(sem.release().is_err());
    // A queued waiter makes it locked even with permits available to nobody else.
    let _held = sem.try_acquire().unwrap();
    let mut w = pin!(sem.acquire());
    assert!(poll_once(w.as_mut()).is_pending());
    assert!(sem.locked());
}

#[test]
fn semaphore_many_threads_exact_permits() {
    // The lock-free paths under real parallelism: permits never exceed the count and all
    // come back.
    let sem = Arc::new(Semaphore::new(3));
    let in_use = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (sem, in_use) = (sem.clone(), in_use.clone());
            std::thread::spawn(move || {
                block_on(async {
                    for j in 0..5_000 {
                        let n = 1 + (i + j) % 3;
                        let p = sem.acquire_many(n).await.unwrap();
                        let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                        assert!(now <= 3, "{now} permits in use");
                        in_use.fetch_sub(n, Ordering::SeqCst);
                        drop(p);
                    }
                })
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(sem.available_permits(), 3);
    assert!(!sem.locked());
}

// ---------------------------------------------------------------- Notify

#[test]
fn notify_one_stores_a_single_permit() {
    let n = Notify::new();
    n.notify_one();
    n.notify_one();
    let mut a = pin!(n.notified());
    let mut b = pin!(n.notified());
    assert!(poll_once(a.as_mut()).is_ready());
    assert!(poll_once(b.as_mut()).is_pending());
    n.notify_one();
    assert!(poll_once(b.as_mut()).is_ready());
}

#[test]
fn notify_one_wakes_exactly_one_in_fifo_order() {
    let n = Notify::new();
    let (c1, w1) = counter();
    let (c2, w2) = counter();
    let mut a = pin!(n.notified());
    let mut b = pin!(n.notified());
    assert!(poll_with(a.as_mut(), &w1).is_pending());
    assert!(poll_with(b.as_mut(), &w2).is_pending());
    n.notify_one();
    assert_eq!((wakes(&c1), wakes(&c2)), (1, 0));
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(a.as_mut()).is_ready());
}

#[test]
fn notify_waiters_wakes_all_and_stores_nothing() {
    let n = Notify::new();
    let mut a = pin!(n.notified());
    let mut b = pin!(n.notified());
    assert!(poll_once(a.as_mut()).is_pending());
    // `b` was created before the call but never polled: it still receives it.
    n.notify_waiters();
    assert!(poll_once(a.as_mut()).is_ready());
    assert!(poll_once(b.as_mut()).is_ready());
    let mut c = pin!(n.notified());
    assert!(poll_once(c.as_mut()).is_pending(), "no permit stored");
}

#[test]
fn dropped_notified_passes_notify_one_on() {
    let n = Notify::new();
    let mut a = Box::pin(n.notified());
    let mut b = pin!(n.notified());
    let (c, w) = counter();
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_with(b.as_mut(), &w).is_pending());
    n.notify_one(); // chooses `a`
    drop(a); // passes it to `b`
    assert_eq!(wakes(&c), 1);
    assert!(poll_once(b.as_mut()).is_ready());
    // With nobody left, a passed-on notification becomes the stored permit.
    let mut d = Box::pin(n.notified());
    assert!(poll_once(d.as_mut()).is_pending());
    n.notify_one();
    drop(d);
    assert!(poll_once(pin!(n.notified())).is_ready());
    // A notify_waiters notification is not passed on.
    let mut e = Box::pin(n.notified());
    assert!(poll_once(e.as_mut()).is_pending());
    n.notify_waiters();
    drop(e);
    assert!(poll_once(pin!(n.notified())).is_pending());
}

#[test]
fn notify_one_then_notify_waiters_then_drop_passes_on() {
    // Chosen by notify_one, then a notify_waiters: the waiter still holds a notify_one,
    // so dropping it unpolled passes that on (here into the permit).
    let n = Notify::new();
    let mut a = Box::pin(n.notified());
    assert!(poll_once(a.as_mut()).is_pending());
    n.notify_one();
    n.notify_waiters();
    drop(a);
    assert!(poll_once(pin!(n.notified())).is_ready());
    assert!(
        poll_once(pin!(n.notified())).is_pending(),
        "exactly one permit"
    );
}

#[test]
fn notified_waiter_whose_slot_is_reused_keeps_its_notification() {
    // The notifier frees a notified waiter's entry; a new waiter may take the same slot.
    // Neither must see the other's state.
    let n = Notify::new();
    let (c1, w1) = counter();
    let (c2, w2) = counter();
    let mut a = Box::pin(n.notified());
    assert!(poll_with(a.as_mut(), &w1).is_pending());
    n.notify_one(); // notifies `a` and frees its entry
    assert_eq!(wakes(&c1), 1);
    let mut b = pin!(n.notified());
    assert!(
        poll_with(b.as_mut(), &w2).is_pending(),
        "b queues (no permit)"
    );
    drop(a); // notified by notify_one, never returned: passes it to `b`
    assert_eq!(wakes(&c2), 1);
    assert!(poll_once(b.as_mut()).is_ready());

    // Same, but the first waiter completes: `b` stays queued and untouched.
    let mut a = pin!(n.notified());
    assert!(poll_with(a.as_mut(), &w1).is_pending());
    n.notify_one();
    let mut b = pin!(n.notified());
    assert!(poll_with(b.as_mut(), &w2).is_pending());
    assert!(poll_once(a.as_mut()).is_ready());
    assert!(poll_once(b.as_mut()).is_pending());
    n.notify_one();
    assert!(poll_once(b.as_mut()).is_ready());
}

#[test]
fn notify_waiters_then_reused_slot_then_dropped_waiter() {
    // `a` notified by notify_waiters, `b` queued in the freed slot, `a` dropped: nothing is
    // passed on and `b` is still queued for the next notify_one.
    let n = Notify::new();
    let mut a = Box::pin(n.notified());
    assert!(poll_once(a.as_mut()).is_pending());
    n.notify_waiters();
    let mut b = pin!(n.notified());
    assert!(poll_once(b.as_mut()).is_pending());
    drop(a);
    assert!(poll_once(b.as_mut()).is_pending());
    n.notify_one();
    assert!(poll_once(b.as_mut()).is_ready());
    assert!(
        poll_once(pin!(n.notified())).is_pending(),
        "no permit stored"
    );
}

#[test]
fn notify_many_rounds_with_a_crowd() {
    // Waiters queue and are woken in rounds (notify_one and notify_waiters); every round
    // completes, whatever slots and flags are reused.
    let n = Notify::new();
    for round in 0..50 {
        let mut futs: Vec<_> = (0..(round % 7 + 1))
            .map(|_| Box::pin(n.notified()))
            .collect();
        for f in &mut futs {
            assert!(poll_once(f.as_mut()).is_pending());
        }
        if round % 2 == 0 {
            n.notify_waiters();
        } else {
            for _ in 0..futs.len() {
                n.notify_one();
            }
        }
        for f in &mut futs {
            assert!(poll_once(f.as_mut()).is_ready());
        }
    }
    assert!(
        poll_once(pin!(n.notified())).is_pending(),
        "no permit left over"
    );
}

#[test]
fn notify_waiters_with_nobody_queued_reaches_created_futures_only() {
    let n = Notify::new();
    let mut before = pin!(n.notified()); // created, never polled: nothing queued
    n.notify_waiters(); // nobody queued: stores nothing
    let mut after = pin!(n.notified());
    assert!(poll_once(before.as_mut()).is_ready());
    assert!(poll_once(after.as_mut()).is_pending());
    n.notify_waiters(); // `after` is queued now: drained under the lock
    assert!(poll_once(after.as_mut()).is_ready());
    assert!(
        poll_once(pin!(n.notified())).is_pending(),
        "no permit stored"
    );
}

#[test]
fn notified_enable() {
    let n = Notify::new();
    let mut a = pin!(n.notified());
    assert!(!a.as_mut().enable());
    n.notify_one(); // goes to the enabled future, not into the permit
    let mut b = pin!(n.notified());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(a.as_mut()).is_ready());
}

// ---------------------------------------------------------------- Mutex

#[test]
fn mutex_fifo_hand_off() {
    let m = Mutex::new(Vec::new());
    let g = m.try_lock().unwrap();
    let mut a = pin!(m.lock());
    let mut b = pin!(m.lock());
    let mut c = pin!(m.lock());
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(c.as_mut()).is_pending());
    drop(g);
    assert!(m.is_locked(), "handed off, never free");
    assert!(m.try_lock().is_err());
    assert!(poll_once(c.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    let Poll::Ready(mut ga) = poll_once(a.as_mut()) else {
        panic!("a first")
    };
    ga.push('a');
    drop(ga);
    assert!(poll_once(c.as_mut()).is_pending());
    let Poll::Ready(mut gb) = poll_once(b.as_mut()) else {
        panic!("b second")
    };
    gb.push('b');
    drop(gb);
    let Poll::Ready(mut gc) = poll_once(c.as_mut()) else {
        panic!("c third")
    };
    gc.push('c');
    assert_eq!(*gc, vec!['a', 'b', 'c']);
}

#[test]
fn mutex_cancelled_waiter_passes_lock_on() {
    let m = Mutex::new(0);
    let g = m.try_lock().unwrap();
    let mut a = Box::pin(m.lock());
    let mut b = Box::pin(m.lock());
    let mut c = pin!(m.lock());
    let (cc, w) = counter();
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_with(c.as_mut(), &w).is_pending());
    drop(b); // cancelled while queued
    drop(g); // lock handed to `a`
    assert_eq!(wakes(&cc), 0);
    drop(a); // cancelled after being handed the lock: passes it to `c`
    assert_eq!(wakes(&cc), 1);
    assert!(poll_once(c.as_mut()).is_ready());
}

#[test]
fn mutex_uncontended_fast_path_and_misc() {
    let mut m = Mutex::new(1);
    *m.get_mut() += 1;
    assert_eq!(*block_on(m.lock()), 2);
    let m = Arc::new(m);
    let g = m.clone().try_lock_owned().unwrap();
    assert!(m.try_lock().is_err());
    drop(g);
    let g = block_on(m.clone().lock_owned());
    let m2 = m.clone();
    let t = std::thread::spawn(move || *m2.blocking_lock() + 1);
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(g);
    assert_eq!(t.join().unwrap(), 3);
    assert_eq!(format!("{:?}", m), "Mutex { data: 2 }");
}

#[test]
fn mutex_exact_total_across_threads_with_futures_block_on() {
    let m = Arc::new(Mutex::new(0u64));
    let threads = 4;
    let per = 5_000;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                block_on(async {
                    for _ in 0..per {
                        *m.lock().await += 1;
                    }
                })
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(*block_on(m.lock()), threads * per);
}

#[test]
fn mutex_guard_map_and_panicking_map_unlock() {
    use ringleader_sync::MutexGuard;
    let m = Mutex::new(vec![1, 2, 3]);
    {
        let mut last = MutexGuard::map(m.try_lock().unwrap(), |v| v.last_mut().unwrap());
        *last = 30;
        assert!(m.is_locked());
    }
    assert!(!m.is_locked());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _g = MutexGuard::map(m.try_lock().unwrap(), |v| -> &mut i32 {
            panic!("{}", v[0])
        });
    }));
    assert!(r.is_err());
    assert_eq!(
        *m.try_lock().expect("unlocked after the panic"),
        vec![1, 2, 30]
    );
}

// ---------------------------------------------------------------- RwLock

#[test]
fn rwlock_writer_not_starved() {
    let l = RwLock::new(0);
    let r1 = l.try_read().unwrap();
    let mut w = pin!(l.write());
    assert!(poll_once(w.as_mut()).is_pending());
    // A reader arriving after the writer waits for it.
    assert!(l.try_read().is_err());
    let mut r2 = pin!(l.read());
    let mut r3 = pin!(l.read());
    assert!(poll_once(r2.as_mut()).is_pending());
    assert!(poll_once(r3.as_mut()).is_pending());
    drop(r1);
    let Poll::Ready(mut wg) = poll_once(w.as_mut()) else {
        panic!("writer next")
    };
    *wg = 7;
    assert!(poll_once(r2.as_mut()).is_pending());
    drop(wg);
    // Both readers behind the writer get in together.
    let Poll::Ready(g2) = poll_once(r2.as_mut()) else {
        panic!()
    };
    let Poll::Ready(g3) = poll_once(r3.as_mut()) else {
        panic!()
    };
    assert_eq!(*g2 + *g3, 14);
}

#[test]
fn rwlock_cancelled_writer_releases_readers() {
    let l = RwLock::new(());
    let r1 = l.try_read().unwrap();
    let mut w = Box::pin(l.write());
    assert!(poll_once(w.as_mut()).is_pending());
    let mut r2 = pin!(l.read());
    assert!(poll_once(r2.as_mut()).is_pending());
    drop(w); // it had collected almost every permit
    assert!(poll_once(r2.as_mut()).is_ready());
    drop(r1);
    assert!(l.try_read().is_ok());
    assert!(l.try_write().is_ok(), "every guard is gone")
}

#[test]
fn rwlock_owned_and_blocking() {
    let l = Arc::new(RwLock::new(1));
    let r = block_on(l.clone().read_owned());
    let l2 = l.clone();
    let t = std::thread::spawn(move || {
        *l2.blocking_write() += 1;
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(*r, 1);
    drop(r);
    t.join().unwrap();
    assert_eq!(*block_on(l.clone().write_owned()), 2);
    assert_eq!(*l.blocking_read(), 2);
}

// ---------------------------------------------------------------- Event

#[test]
fn event_set_clear_wait() {
    let ev = Event::new();
    let mut a = pin!(ev.wait());
    let mut b = Box::pin(ev.wait());
    let (c, w) = counter();
    assert!(poll_with(a.as_mut(), &w).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    drop(b); // cancelled: leaves quietly
    ev.set();
    ev.clear(); // asyncio: waiters released by set() still complete
    assert_eq!(wakes(&c), 1);
    assert!(poll_once(a.as_mut()).is_ready());
    let mut later = pin!(ev.wait());
    assert!(poll_once(later.as_mut()).is_pending());
    ev.set();
    assert!(ev.is_set());
    assert!(poll_once(pin!(ev.wait())).is_ready());
}

// ---------------------------------------------------------------- Condition

#[test]
fn condition_notify_n_and_all() {
    let m = Mutex::new(0);
    let cond = Condition::new();
    assert_eq!(cond.notify(1), 0, "nothing stored without waiters");
    let mut a = pin!(async { *cond.wait(m.lock().await).await += 1 });
    let mut b = pin!(async { *cond.wait(m.lock().await).await += 10 });
    let mut c = pin!(async { *cond.wait(m.lock().await).await += 100 });
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(cond.waiters(), 3);
    assert_eq!(cond.notify(2), 2);
    assert!(poll_once(c.as_mut()).is_pending());
    assert!(poll_once(a.as_mut()).is_ready());
    assert!(poll_once(b.as_mut()).is_ready());
    assert_eq!(*m.try_lock().unwrap(), 11);
    assert_eq!(cond.notify_all(), 1);
    assert!(poll_once(c.as_mut()).is_ready());
    assert_eq!(*m.try_lock().unwrap(), 111);
}

#[test]
fn condition_wait_holds_lock_until_registered() {
    // A notify issued under the lock right after the waiter unlocked reaches it.
    let m = Mutex::new(false);
    let cond = Condition::new();
    let mut w = pin!(async {
        let g = cond.wait_for(m.lock().await, |ready| *ready).await;
        assert!(*g);
    });
    assert!(poll_once(w.as_mut()).is_pending());
    *m.try_lock().unwrap() = true;
    cond.notify(1);
    assert!(poll_once(w.as_mut()).is_ready());
}

#[test]
fn condition_cancelled_waiter_passes_notification_on() {
    let m = Mutex::new(());
    let cond = Condition::new();
    let mut a = Box::pin(async { drop(cond.wait(m.lock().await).await) });
    let mut b = pin!(async { drop(cond.wait(m.lock().await).await) });
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    cond.notify(1); // chooses `a`
    drop(a); // passes it to `b`
    assert!(poll_once(b.as_mut()).is_ready());
    // Dropped while re-acquiring the lock (after observing the notification): passed on too.
    let mut c = Box::pin(async { drop(cond.wait(m.lock().await).await) });
    let mut d = pin!(async { drop(cond.wait(m.lock().await).await) });
    assert!(poll_once(c.as_mut()).is_pending());
    assert!(poll_once(d.as_mut()).is_pending());
    let g = m.try_lock().unwrap();
    cond.notify(1);
    assert!(poll_once(c.as_mut()).is_pending(), "waits for the lock");
    drop(c);
    drop(g);
    assert!(poll_once(d.as_mut()).is_ready());
}

#[test]
fn condition_wait_owned() {
    let m = Arc::new(Mutex::new(0));
    let cond = Condition::new();
    let mut w = pin!(async {
        let g = m.clone().lock_owned().await;
        let g = cond.wait_owned(g).await;
        *g
    });
    assert!(poll_once(w.as_mut()).is_pending());
    *m.try_lock().unwrap() = 5;
    assert_eq!(cond.notify_all(), 1);
    assert_eq!(poll_once(w.as_mut()), Poll::Ready(5));
}

// ---------------------------------------------------------------- Barrier

#[test]
fn barrier_one_leader_per_round_and_reuse() {
    let b = Barrier::new(3);
    for _ in 0..3 {
        let results = block_on(async { futures::join!(b.wait(), b.wait(), b.wait()) });
        let leaders = [results.0, results.1, results.2]
            .into_iter()
            .filter(|r| r.as_ref().unwrap().is_leader())
            .count();
        assert_eq!(leaders, 1);
    }
}

#[test]
fn barrier_cancelled_waiter_is_uncounted() {
    let b = Barrier::new(2);
    let mut a = Box::pin(b.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    assert_eq!(b.n_waiting(), 1);
    drop(a);
    assert_eq!(b.n_waiting(), 0);
    let mut c = pin!(b.wait());
    assert!(poll_once(c.as_mut()).is_pending(), "needs a second party");
    let Poll::Ready(Ok(r)) = poll_once(pin!(b.wait())) else {
        panic!("trips")
    };
    assert!(r.is_leader());
    assert!(matches!(poll_once(c.as_mut()), Poll::Ready(Ok(r)) if !r.is_leader()));
}

#[test]
fn barrier_abort_and_reset() {
    let b = Barrier::new(3);
    let mut a = pin!(b.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    b.abort();
    assert!(b.is_broken());
    assert!(matches!(poll_once(a.as_mut()), Poll::Ready(Err(_))));
    assert!(matches!(poll_once(pin!(b.wait())), Poll::Ready(Err(_))));
    b.reset();
    assert!(!b.is_broken());
    let mut c = pin!(b.wait());
    assert!(poll_once(c.as_mut()).is_pending());
    b.reset(); // breaks current waiters, leaves the barrier usable
    assert!(matches!(poll_once(c.as_mut()), Poll::Ready(Err(_))));
    assert_eq!(b.n_waiting(), 0);
    let b1 = Barrier::new(1);
    assert!(block_on(b1.wait()).unwrap().is_leader());
}

// ---------------------------------------------------------------- OnceCell

#[test]
fn once_cell_set_get() {
    let cell = OnceCell::new();
    assert!(cell.get().is_none());
    cell.set(1).unwrap();
    assert!(matches!(cell.set(2), Err(SetError::AlreadyInitialized(2))));
    assert_eq!(cell.get(), Some(&1));
    assert!(cell.initialized());
    let mut cell = cell;
    assert_eq!(cell.take(), Some(1));
    assert!(!cell.initialized());
    assert_eq!(OnceCell::from(5).into_inner(), Some(5));
}

#[test]
fn once_cell_cancelled_initializer_lets_next_try() {
    let cell = OnceCell::new();
    let mut first = Box::pin(cell.get_or_init(std::future::pending::<u32>));
    assert!(poll_once(first.as_mut()).is_pending()); // initializing
    assert!(matches!(cell.set(9), Err(SetError::Initializing(9))));
    let mut second = pin!(cell.get_or_init(|| async { 2 }));
    assert!(poll_once(second.as_mut()).is_pending()); // queued behind `first`
    drop(first);
    assert_eq!(poll_once(second.as_mut()), Poll::Ready(&2));
    assert_eq!(cell.get(), Some(&2));
}

#[test]
fn once_cell_failed_initializer_and_waiters_see_value() {
    let cell = OnceCell::new();
    let r: Result<&i32, &str> = block_on(cell.get_or_try_init(|| async { Err("no") }));
    assert_eq!(r, Err("no"));
    assert!(!cell.initialized());
    let mut slow = pin!(cell.get_or_init(|| async { 1 }));
    let mut gate = Box::pin(cell.get_or_init(std::future::pending));
    assert!(poll_once(gate.as_mut()).is_pending());
    assert!(poll_once(slow.as_mut()).is_pending());
    cell.set(3).unwrap_err(); // initializing
    drop(gate);
    assert_eq!(poll_once(slow.as_mut()), Poll::Ready(&1));
    let mut late = pin!(cell.get_or_init(|| async { 99 }));
    assert_eq!(poll_once(late.as_mut()), Poll::Ready(&1));
}

// ---------------------------------------------------------------- Send / Sync promises

#[test]
fn futures_and_guards_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Semaphore>();
    send_sync::<Mutex<Vec<u8>>>();
    send_sync::<RwLock<Vec<u8>>>();
    send_sync::<Notify>();
    send_sync::<Event>();
    send_sync::<Condition>();
    send_sync::<Barrier>();
    send_sync::<OnceCell<Vec<u8>>>();
    send_sync::<ringleader_sync::MutexGuard<'static, Vec<u8>>>();
    send_sync::<ringleader_sync::OwnedMutexGuard<Vec<u8>>>();
    let sem = Semaphore::new(1);
    send(&sem.acquire());
    let m = Mutex::new(0);
    send(&m.lock());
    send(&Arc::new(Mutex::new(0)).lock_owned());
    let l = RwLock::new(0);
    send(&l.read());
    send(&l.write());
    let n = Notify::new();
    send(&n.notified());
    let e = Event::new();
    send(&e.wait());
    let c = Condition::new();
    send(&async { drop(c.wait(m.lock().await).await) });
    let b = Barrier::new(1);
    send(&b.wait());
    let cell = OnceCell::<u8>::new();
    send(&cell.get_or_init(|| async { 1 }));
}
