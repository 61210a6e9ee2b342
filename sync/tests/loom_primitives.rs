//! loom models of the synchronisation primitives (run by `ci/loom.sh`): each has two threads
//! and checks that no interleaving loses a hand-off, a permit or a notification. A lost
//! wake-up shows up as loom's deadlock report (every thread parked in `block_on`).
#![cfg(ringleader_loom)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;
use ringleader_sync::{Barrier, Condition, Event, Mutex, Notify, OnceCell, RwLock, Semaphore};

fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// The holder unlocks while a queued waiter is cancelled: the lock reaches the other waiter.
#[test]
fn loom_mutex_hand_off_with_cancelled_waiter() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(0));
        let guard = m.try_lock().unwrap();
        let m2 = m.clone();
        let t = thread::spawn(move || {
            *block_on(m2.lock()) += 1;
        });
        {
            let mut cancelled = pin!(m.lock());
            let _ = poll_once(cancelled.as_mut()); // queued, before or after `t`
            drop(guard); // hands the lock to the first queued waiter
        } // `cancelled` dropped: passes the lock on if it had it
        t.join().unwrap();
        assert_eq!(*m.try_lock().expect("lock free at the end"), 1);
    });
}

/// Two lockers race for the lock: each gets it once, the total is exact.
#[test]
fn loom_mutex_two_lockers() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(0));
        let m2 = m.clone();
        let t = thread::spawn(move || {
            *block_on(m2.lock()) += 1;
        });
        *block_on(m.lock()) += 1;
        t.join().unwrap();
        assert_eq!(*m.try_lock().unwrap(), 2);
    });
}

/// acquire, release and close race: the acquirer either gets a permit or an error, never
/// hangs, and every permit is back at the end.
#[test]
fn loom_semaphore_acquire_release_close() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let first = sem.try_acquire().unwrap();
        let s2 = sem.clone();
        let t = thread::spawn(move || {
            if let Ok(p) = block_on(s2.acquire()) {
                drop(p);
            }
        });
        drop(first);
        sem.close();
        t.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
        assert!(sem.is_closed());
    });
}

/// A waiter of two permits, partially granted, is cancelled while the other thread releases:
/// no permit is lost.
#[test]
fn loom_semaphore_cancel_partial_grant() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let p = sem.try_acquire().unwrap();
        p.forget(); // 1 available, 1 issued
        let s2 = sem.clone();
        let t = thread::spawn(move || {
            s2.add_permits(1); // returns the forgotten one
        });
        {
            let mut big = pin!(sem.acquire_many(2));
            if let Poll::Ready(r) = poll_once(big.as_mut()) {
                drop(r.unwrap());
            }
        }
        t.join().unwrap();
        assert_eq!(sem.available_permits(), 2);
    });
}

/// notify_one before or after `notified` starts waiting: the waiter always completes.
#[test]
fn loom_notify_one_permit() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let n2 = n.clone();
        let t = thread::spawn(move || n2.notify_one());
        block_on(n.notified());
        t.join().unwrap();
    });
}

/// A waiter chosen by notify_one is dropped: the notification reaches the next waiter.
#[test]
fn loom_notify_dropped_waiter_passes_on() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let mut first = Box::pin(n.notified());
        assert!(poll_once(first.as_mut()).is_pending());
        let n2 = n.clone();
        let t = thread::spawn(move || n2.notify_one());
        drop(first);
        block_on(n.notified());
        t.join().unwrap();
    });
}

/// A queued waiter, a notify_one from another thread and a notify_waiters here race, then
/// the waiter is dropped unpolled: whichever notified it, exactly the notify_one survives
/// (as the permit). Checks the per-waiter flag carries the right kind.
#[test]
fn loom_notify_one_vs_waiters_then_drop() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let mut w = Box::pin(n.notified());
        assert!(poll_once(w.as_mut()).is_pending());
        let n2 = n.clone();
        let t = thread::spawn(move || n2.notify_one());
        n.notify_waiters();
        drop(w);
        t.join().unwrap();
        assert!(poll_once(pin!(n.notified())).is_ready(), "notify_one lost");
        assert!(poll_once(pin!(n.notified())).is_pending(), "two permits");
    });
}

/// A waiter is woken twice in a row by a notifier on another thread: the first wake-up is
/// read from the waiter's flag without the lock, and the second registration reuses the
/// flag (and perhaps the slot). No wake-up is lost.
#[test]
fn loom_notify_woken_waiter_registers_again() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let done = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let (n2, done2) = (n.clone(), done.clone());
        let t = thread::spawn(move || {
            for _ in 0..2 {
                block_on(n2.notified());
                done2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        while done.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            n.notify_one();
            thread::yield_now();
        }
        t.join().unwrap();
    });
}

/// Three queued waiters; another thread calls notify_one twice while the middle one is
/// dropped (unlinking its node from the middle of the intrusive list, or passing on a
/// notify_one that already chose it): the other two both end notified, and no permit is
/// left over.
#[test]
fn loom_notify_middle_waiter_dropped_vs_notify_one() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let mut a = Box::pin(n.notified());
        let mut b = Box::pin(n.notified());
        let mut c = Box::pin(n.notified());
        for f in [a.as_mut(), b.as_mut(), c.as_mut()] {
            assert!(poll_once(f).is_pending());
        }
        let n2 = n.clone();
        let t = thread::spawn(move || {
            n2.notify_one();
            n2.notify_one();
        });
        drop(b);
        t.join().unwrap();
        assert!(poll_once(a.as_mut()).is_ready(), "a missed");
        assert!(poll_once(c.as_mut()).is_ready(), "c missed");
        assert!(
            poll_once(pin!(n.notified())).is_pending(),
            "a permit was left"
        );
    });
}

/// notify_waiters races with a waiter registering: a future created before the call
/// completes, whether it registered before the call or after.
#[test]
fn loom_notify_waiters_vs_register() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let fut = n.notified(); // created before the call: must receive it
        let n2 = n.clone();
        let t = thread::spawn(move || n2.notify_waiters());
        block_on(fut);
        t.join().unwrap();
    });
}

/// A notify_waiters on another thread races with a waiter that queues and a notify_one that
/// may find it queued or store the permit: the waiter completes, and at most one permit is
/// left stored.
#[test]
fn loom_notify_waiters_bump_vs_queue_and_permit() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let mut fut = Box::pin(n.notified()); // created before the call: must receive it
        let n2 = n.clone();
        let t = thread::spawn(move || n2.notify_waiters());
        let queued = poll_once(fut.as_mut()).is_pending(); // queues, or sees the bump
        n.notify_one(); // to the queued waiter, or stored
        if queued {
            block_on(fut.as_mut());
        }
        t.join().unwrap();
        let first = poll_once(pin!(n.notified())).is_ready();
        let second = poll_once(pin!(n.notified())).is_ready();
        assert!(!(first && second), "two permits");
    });
}

/// notify_waiters on another thread (its lock-free bump while nobody is queued, or its
/// bump and wake-ups under the lock once a waiter is) races with a waiter created before
/// it, which queues, and one created after it returned, which must not be woken by it.
#[test]
fn loom_notify_waiters_lock_free_bump_is_exact() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let mut before = Box::pin(n.notified()); // must receive the call
        let n2 = n.clone();
        let t = thread::spawn(move || n2.notify_waiters());
        let early = poll_once(before.as_mut()).is_ready(); // queues, or sees the bump
        t.join().unwrap();
        let mut after = Box::pin(n.notified()); // created after the call returned
        assert!(
            poll_once(after.as_mut()).is_pending(),
            "woken by an earlier call"
        );
        assert!(
            early || poll_once(before.as_mut()).is_ready(),
            "missed the call"
        );
        n.notify_waiters();
        assert!(
            poll_once(after.as_mut()).is_ready(),
            "missed the second call"
        );
    });
}

/// Two waiters queue on one thread while another calls notify_waiters twice: the bumps and
/// the `WAITERS` flag never disagree (no waiter stranded behind a lock-free bump).
#[test]
fn loom_notify_waiters_twice_vs_two_waiters() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let mut a = Box::pin(n.notified());
        let mut b = Box::pin(n.notified());
        let n2 = n.clone();
        let t = thread::spawn(move || {
            n2.notify_waiters();
            n2.notify_waiters();
        });
        let a_early = poll_once(a.as_mut()).is_ready();
        let b_early = poll_once(b.as_mut()).is_ready();
        t.join().unwrap();
        assert!(a_early || poll_once(a.as_mut()).is_ready(), "a missed");
        assert!(b_early || poll_once(b.as_mut()).is_ready(), "b missed");
        assert!(
            poll_once(pin!(n.notified())).is_pending(),
            "a permit appeared"
        );
    });
}

/// A notify_one that finds the permit already stored still publishes what its caller wrote
/// before it: the waiter that takes the permit after it sees the write (the permit's second
/// store is a read-modify-write, so the waiter's take synchronises with it).
#[test]
fn loom_notify_one_on_stored_permit_publishes() {
    use loom::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::atomic::Ordering::Relaxed;
    loom::model(|| {
        let n = Arc::new(Notify::new());
        n.notify_one(); // a permit nobody took yet
        let data = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicBool::new(false));
        let (n2, data2, sent2) = (n.clone(), data.clone(), sent.clone());
        let t = thread::spawn(move || {
            data2.store(1, Relaxed);
            n2.notify_one(); // coalesces with the stored permit
            sent2.store(true, Relaxed);
        });
        while !sent.load(Relaxed) {
            thread::yield_now();
        }
        block_on(n.notified());
        assert_eq!(
            data.load(Relaxed),
            1,
            "the second notify_one published nothing"
        );
        t.join().unwrap();
    });
}

/// A waiter that spins for a streamed permit (the `streaming` hint, set by a permit taken
/// without queueing) while another thread streams `notify_one`s: it takes each permit
/// once, or queues and is woken; no wake-up is lost and no permit is left doubled.
#[test]
fn loom_notify_streamed_permits_reach_a_spinning_waiter() {
    use loom::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::SeqCst;
    loom::model(|| {
        let n = Arc::new(Notify::new());
        n.notify_one();
        block_on(n.notified()); // a lock-free take: sets the hint
        let done = Arc::new(AtomicUsize::new(0));
        let (n2, done2) = (n.clone(), done.clone());
        let t = thread::spawn(move || {
            for _ in 0..2 {
                block_on(n2.notified());
                done2.fetch_add(1, SeqCst);
            }
        });
        while done.load(SeqCst) < 2 {
            n.notify_one();
            thread::yield_now();
        }
        t.join().unwrap();
        let _ = poll_once(pin!(n.notified()));
        assert!(poll_once(pin!(n.notified())).is_pending(), "two permits");
    });
}

/// One `notify_one` from another thread while the waiter spins for a streamed permit:
/// the waiter completes, and the permit is consumed (not left behind for another waiter).
#[test]
fn loom_notify_spinning_waiter_consumes_the_permit() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        n.notify_one();
        block_on(n.notified()); // a lock-free take: sets the hint
        let n2 = n.clone();
        let t = thread::spawn(move || n2.notify_one());
        block_on(n.notified());
        t.join().unwrap();
        assert!(
            poll_once(pin!(n.notified())).is_pending(),
            "the permit was used twice"
        );
    });
}

/// A `notify_one` and a `notify_waiters` race with a waiter spinning for a streamed
/// permit: the waiter completes (through the permit, the queue or the moved `calls`), and
/// at most the one permit of `notify_one` is left.
#[test]
fn loom_notify_spinning_waiter_vs_notify_one_and_waiters() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        n.notify_one();
        block_on(n.notified()); // sets the hint
        let fut = n.notified(); // created before notify_waiters: it must complete
        let n2 = n.clone();
        let t = thread::spawn(move || {
            n2.notify_one();
            n2.notify_waiters();
        });
        block_on(fut);
        t.join().unwrap();
        let _ = poll_once(pin!(n.notified()));
        assert!(poll_once(pin!(n.notified())).is_pending(), "two permits");
    });
}

/// Event::set races with wait: the waiter always completes.
#[test]
fn loom_event_set_wait() {
    loom::model(|| {
        let ev = Arc::new(Event::new());
        let e2 = ev.clone();
        let t = thread::spawn(move || e2.set());
        block_on(ev.wait());
        t.join().unwrap();
    });
}

/// Two parties meet: both pass, exactly one leads.
#[test]
fn loom_barrier_two_parties() {
    loom::model(|| {
        let b = Arc::new(Barrier::new(2));
        let b2 = b.clone();
        let t = thread::spawn(move || block_on(b2.wait()).unwrap().is_leader());
        let me = block_on(b.wait()).unwrap().is_leader();
        let other = t.join().unwrap();
        assert!(me != other);
    });
}

/// A notify under the lock after setting the flag always reaches `wait_for`.
#[test]
fn loom_condition_notify_not_lost() {
    loom::model(|| {
        let state = Arc::new((Mutex::new(false), Condition::new()));
        let s2 = state.clone();
        let t = thread::spawn(move || {
            let (m, c) = &*s2;
            *block_on(m.lock()) = true;
            c.notify(1);
        });
        let (m, c) = &*state;
        let g = block_on(async { c.wait_for(m.lock().await, |ready| *ready).await });
        assert!(*g);
        drop(g);
        t.join().unwrap();
    });
}

/// Two initializers race: one runs, both see its value.
#[test]
fn loom_once_cell_racing_init() {
    loom::model(|| {
        let cell = Arc::new(OnceCell::new());
        let c2 = cell.clone();
        let t = thread::spawn(move || *block_on(c2.get_or_init(|| async { 1 })));
        let mine = *block_on(cell.get_or_init(|| async { 2 }));
        let theirs = t.join().unwrap();
        assert_eq!(mine, theirs);
        assert_eq!(cell.get(), Some(&mine));
    });
}

/// A writer and a reader race: the reader sees the value before or after the write, and
/// the lock is free at the end.
#[test]
fn loom_rwlock_writer_reader() {
    loom::model(|| {
        let lock = Arc::new(RwLock::new(0));
        let l2 = lock.clone();
        let t = thread::spawn(move || *block_on(l2.write()) += 1);
        let seen = *block_on(lock.read());
        assert!(seen == 0 || seen == 1);
        t.join().unwrap();
        assert_eq!(*lock.try_write().expect("free at the end"), 1);
    });
}

/// A release's lock-free path races an acquirer that is about to queue: the permit is
/// either seen by the acquirer or handed to it, never stranded.
#[test]
fn loom_semaphore_release_races_enqueue() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let s2 = sem.clone();
        let t = thread::spawn(move || s2.add_permits(1));
        drop(block_on(sem.acquire()).unwrap());
        t.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

/// A request for two permits collects them from two releases, one per thread.
#[test]
fn loom_semaphore_partial_grants_complete() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let s2 = sem.clone();
        let t = thread::spawn(move || s2.add_permits(1));
        let p = block_on(sem.acquire_many(2)).unwrap();
        assert_eq!(sem.available_permits(), 0);
        drop(p);
        t.join().unwrap();
        assert_eq!(sem.available_permits(), 2);
    });
}
