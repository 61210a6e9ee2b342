//! Conformance of `ringleader::sync` with the documented behaviour of asyncio's
//! synchronisation primitives and queues (Python 3.13), Trio's FIFO fairness and tokio's
//! channels, in the cases the other test files leave out. Futures are polled by hand, so
//! every assertion is about order and outcome, never about time.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use ringleader::sync::queue::{
    LifoQueue, PriorityQueue, PutError, Queue, QueueShutDown, TaskDoneError, TryGetError,
    TryPutError,
};
use ringleader::sync::{mpsc, Barrier, Condition, Event, Mutex, Semaphore};

fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

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

/// Counts drops of its tokens.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Token(u32, #[allow(dead_code)] DropMark);

#[derive(Debug)]
struct DropMark(Arc<AtomicUsize>);

impl PartialEq for DropMark {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for DropMark {}
impl PartialOrd for DropMark {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DropMark {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl Drop for DropMark {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drops {
    fn token(&self, n: u32) -> Token {
        Token(n, DropMark(self.0.clone()))
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

// ------------------------------------------------------------------ LifoQueue / PriorityQueue

#[test]
fn lifo_waiting_getter_gets_the_last_item_put_before_it_runs() {
    // asyncio: a woken getter pops from the stack when it runs, so it gets the top.
    let q = LifoQueue::new(0);
    let mut g = pin!(q.get());
    assert!(poll_once(g.as_mut()).is_pending());
    q.put_nowait(1).unwrap();
    q.put_nowait(2).unwrap();
    q.put_nowait(3).unwrap();
    assert_eq!(q.qsize(), 3);
    assert_eq!(poll_once(g.as_mut()), Poll::Ready(Ok(3)));
    assert_eq!(q.get_nowait(), Ok(2));
    assert_eq!(q.get_nowait(), Ok(1));
    assert_eq!(q.get_nowait(), Err(TryGetError::Empty));
}

#[test]
fn priority_waiting_getters_get_the_smallest_items_when_they_run() {
    let q = PriorityQueue::new(0);
    let mut g1 = pin!(q.get());
    let mut g2 = pin!(q.get());
    assert!(poll_once(g1.as_mut()).is_pending());
    assert!(poll_once(g2.as_mut()).is_pending());
    q.put_nowait(9).unwrap(); // claimed by g1
    q.put_nowait(4).unwrap(); // claimed by g2

    // Every queued item is claimed by a waiting getter: a newcomer cannot take one.
    assert_eq!(q.get_nowait(), Err(TryGetError::Empty));
    assert!(!q.empty());
    q.put_nowait(1).unwrap(); // unclaimed
    assert_eq!(
        q.get_nowait(),
        Ok(1),
        "a newcomer takes only unclaimed items"
    );
    assert_eq!(poll_once(g1.as_mut()), Poll::Ready(Ok(4)));
    assert_eq!(poll_once(g2.as_mut()), Poll::Ready(Ok(9)));
    assert!(q.empty());
}

#[test]
fn priority_single_waiting_getter_gets_smallest_of_several_puts() {
    let q = PriorityQueue::new(0);
    let mut g = pin!(q.get());
    assert!(poll_once(g.as_mut()).is_pending());
    for v in [5, 1, 3] {
        q.put_nowait(v).unwrap();
    }
    assert_eq!(poll_once(g.as_mut()), Poll::Ready(Ok(1)));
    assert_eq!(q.get_nowait(), Ok(3));
    assert_eq!(q.get_nowait(), Ok(5));
}

#[test]
fn priority_dropped_claimant_passes_its_claim_to_the_next_getter() {
    let q = PriorityQueue::new(0);
    let (c2, w2) = counter();
    let mut g1 = Box::pin(q.get());
    let mut g2 = pin!(q.get());
    assert!(poll_once(g1.as_mut()).is_pending());
    assert!(poll_with(g2.as_mut(), &w2).is_pending());
    q.put_nowait(7).unwrap();
    assert_eq!(wakes(&c2), 0, "only the longest waiter is woken");
    drop(g1);
    assert_eq!(wakes(&c2), 1, "the claim passed on");
    assert_eq!(q.get_nowait(), Err(TryGetError::Empty), "still claimed");
    assert_eq!(poll_once(g2.as_mut()), Poll::Ready(Ok(7)));
    assert_eq!(q.unfinished_tasks(), 1);
}

#[test]
fn lifo_claimed_item_is_dropped_by_immediate_shutdown() {
    let drops = Drops::default();
    let q = LifoQueue::new(0);
    let mut g = pin!(q.get());
    assert!(poll_once(g.as_mut()).is_pending());
    q.put_nowait(drops.token(1)).unwrap();
    q.put_nowait(drops.token(2)).unwrap();
    let mut join = pin!(q.join());
    assert!(poll_once(join.as_mut()).is_pending());
    q.shutdown(true);
    assert_eq!(drops.count(), 2);
    assert_eq!(q.qsize(), 0);
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(poll_once(join.as_mut()).is_ready());
    assert!(matches!(
        poll_once(g.as_mut()),
        Poll::Ready(Err(QueueShutDown))
    ));
    assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
}

#[test]
fn graceful_shutdown_drains_lifo_and_priority_in_their_order() {
    let lifo = LifoQueue::new(0);
    let prio = PriorityQueue::new(0);
    for v in [2, 3, 1] {
        lifo.put_nowait(v).unwrap();
        prio.put_nowait(v).unwrap();
    }
    lifo.shutdown(false);
    prio.shutdown(false);
    assert!(matches!(lifo.put_nowait(9), Err(TryPutError::ShutDown(9))));
    let lifo_out: Vec<_> = (0..3).map(|_| lifo.get_nowait().unwrap()).collect();
    let prio_out: Vec<_> = (0..3)
        .map(|_| match poll_once(pin!(prio.get())) {
            Poll::Ready(Ok(v)) => v,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(lifo_out, [1, 3, 2]);
    assert_eq!(prio_out, [1, 2, 3]);
    assert_eq!(lifo.get_nowait(), Err(TryGetError::ShutDown));
    assert!(matches!(
        poll_once(pin!(prio.get())),
        Poll::Ready(Err(QueueShutDown))
    ));
}

// ------------------------------------------------------------------ Queue

#[test]
fn immediate_shutdown_fails_blocked_putters_with_their_items() {
    let q = Queue::new(1);
    q.put_nowait("queued").unwrap();
    let (c1, w1) = counter();
    let (c2, w2) = counter();
    let mut p1 = pin!(q.put("p1"));
    let mut p2 = pin!(q.put("p2"));
    assert!(poll_with(p1.as_mut(), &w1).is_pending());
    assert!(poll_with(p2.as_mut(), &w2).is_pending());
    let mut join = pin!(q.join());
    assert!(poll_once(join.as_mut()).is_pending());
    q.shutdown(true);
    assert_eq!(
        (wakes(&c1), wakes(&c2)),
        (1, 1),
        "every blocked putter is woken"
    );
    assert!(q.empty());
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(poll_once(join.as_mut()).is_ready());
    // The queue has room now, but it is shut down: the items come back.
    assert!(matches!(
        poll_once(p2.as_mut()),
        Poll::Ready(Err(PutError("p2")))
    ));
    assert!(matches!(
        poll_once(p1.as_mut()),
        Poll::Ready(Err(PutError("p1")))
    ));
    assert!(q.empty());
    assert!(matches!(
        poll_once(pin!(q.get())),
        Poll::Ready(Err(QueueShutDown))
    ));
}

#[test]
fn shutdown_fails_a_putter_already_granted_room() {
    let q = Queue::new(1);
    q.put_nowait(0).unwrap();
    let mut p1 = pin!(q.put(1));
    let mut p2 = pin!(q.put(2));
    assert!(poll_once(p1.as_mut()).is_pending());
    assert!(poll_once(p2.as_mut()).is_pending());
    assert_eq!(q.get_nowait(), Ok(0)); // room reserved for p1, which has not run
    q.shutdown(false);
    assert!(matches!(
        poll_once(p1.as_mut()),
        Poll::Ready(Err(PutError(1)))
    ));
    assert!(matches!(
        poll_once(p2.as_mut()),
        Poll::Ready(Err(PutError(2)))
    ));
    assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
    assert_eq!(
        q.unfinished_tasks(),
        1,
        "the item taken still awaits task_done"
    );
    q.task_done().unwrap();
    assert_eq!(q.task_done(), Err(TaskDoneError));
}

#[test]
fn shutdown_is_reported_before_full() {
    // asyncio's put_nowait checks shutdown first: a full, shut-down queue says ShutDown.
    let q = Queue::new(1);
    q.put_nowait(1).unwrap();
    q.shutdown(false);
    assert!(matches!(q.put_nowait(2), Err(TryPutError::ShutDown(2))));
    assert!(matches!(
        poll_once(pin!(q.put(3))),
        Poll::Ready(Err(PutError(3)))
    ));
    assert_eq!(q.get_nowait(), Ok(1));
}

#[test]
fn task_done_to_zero_releases_every_joiner_and_a_later_put_rearms_join() {
    let q = Queue::new(0);
    q.put_nowait('a').unwrap();
    let (c1, w1) = counter();
    let (c2, w2) = counter();
    let mut j1 = pin!(q.join());
    let mut j2 = pin!(q.join());
    assert!(poll_with(j1.as_mut(), &w1).is_pending());
    assert!(poll_with(j2.as_mut(), &w2).is_pending());
    assert_eq!(q.get_nowait(), Ok('a'));
    assert_eq!(
        wakes(&c1) + wakes(&c2),
        0,
        "taking an item is not finishing it"
    );
    q.task_done().unwrap();
    assert_eq!((wakes(&c1), wakes(&c2)), (1, 1));
    // A put after the wake-up does not take back a join that was released.
    q.put_nowait('b').unwrap();
    assert!(poll_once(j1.as_mut()).is_ready());
    assert!(poll_once(j2.as_mut()).is_ready());
    let mut j3 = pin!(q.join());
    assert!(poll_once(j3.as_mut()).is_pending());
    assert_eq!(q.get_nowait(), Ok('b'));
    q.task_done().unwrap();
    assert!(poll_once(j3.as_mut()).is_ready());
}

#[test]
fn unbounded_put_never_waits() {
    let q = Queue::new(0);
    assert_eq!(q.maxsize(), 0);
    for i in 0..10_000 {
        assert!(matches!(poll_once(pin!(q.put(i))), Poll::Ready(Ok(()))));
    }
    assert!(!q.full());
    assert_eq!(q.qsize(), 10_000);
    assert_eq!(q.get_nowait(), Ok(0));
}

#[test]
fn get_nowait_after_graceful_shutdown_drains_then_fails() {
    let q = Queue::new(0);
    q.put_nowait(1).unwrap();
    q.shutdown(false);
    assert_eq!(q.get_nowait(), Ok(1));
    assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
    q.task_done().unwrap();
    assert!(poll_once(pin!(q.join())).is_ready());
}

// ------------------------------------------------------------------ Semaphore

#[test]
fn semaphore_zero_waits_for_a_release_and_bounded_zero_refuses_one() {
    let sem = Semaphore::new(0);
    assert!(sem.locked());
    let mut a = pin!(sem.acquire());
    assert!(poll_once(a.as_mut()).is_pending());
    sem.release().unwrap();
    assert!(matches!(poll_once(a.as_mut()), Poll::Ready(Ok(_))));

    let bounded = Semaphore::bounded(0);
    assert!(bounded.locked());
    assert!(bounded.release().is_err(), "BoundedSemaphore(0).release()");
    assert_eq!(bounded.available_permits(), 0);
}

#[test]
fn bounded_semaphore_over_release_leaves_waiters_untouched() {
    let sem = Semaphore::bounded(1);
    let held = sem.try_acquire().unwrap();
    let mut w = pin!(sem.acquire());
    assert!(poll_once(w.as_mut()).is_pending());
    assert!(sem.release().is_err(), "the held permit is not forgotten");
    assert!(
        poll_once(w.as_mut()).is_pending(),
        "a failed release hands out nothing"
    );
    drop(held);
    assert!(matches!(poll_once(w.as_mut()), Poll::Ready(Ok(_))));
}

// ------------------------------------------------------------------ Mutex

#[test]
fn mutex_newcomers_queue_behind_waiters_in_arrival_order() {
    // Trio's strict FIFO: after every unlock the lock goes to the longest waiter, and a
    // lock() started later never gets it first, nor does try_lock.
    let m = Mutex::new(Vec::new());
    let g = m.try_lock().unwrap();
    let mut a = pin!(async { m.lock().await.push('a') });
    assert!(poll_once(a.as_mut()).is_pending());
    drop(g);
    let mut b = pin!(async { m.lock().await.push('b') });
    assert!(poll_once(b.as_mut()).is_pending(), "the lock is a's");
    assert!(m.try_lock().is_err());
    assert!(poll_once(a.as_mut()).is_ready());
    assert!(poll_once(b.as_mut()).is_ready());
    assert_eq!(*m.try_lock().unwrap(), ['a', 'b']);
}

// ------------------------------------------------------------------ Event

#[test]
fn event_set_releases_all_waiters_even_if_cleared_before_they_run() {
    let ev = Event::new();
    let (c, w) = counter();
    let mut waiters: Vec<_> = (0..3).map(|_| Box::pin(ev.wait())).collect();
    for f in &mut waiters {
        assert!(poll_with(f.as_mut(), &w).is_pending());
    }
    ev.set();
    ev.clear();
    assert!(!ev.is_set());
    assert_eq!(wakes(&c), 3);
    let mut late = pin!(ev.wait());
    assert!(
        poll_once(late.as_mut()).is_pending(),
        "cleared for newcomers"
    );
    for f in &mut waiters {
        assert!(poll_once(f.as_mut()).is_ready());
    }
    ev.set();
    ev.set(); // idempotent
    assert!(poll_once(late.as_mut()).is_ready());
    assert!(
        poll_once(pin!(ev.wait())).is_ready(),
        "set: returns at once"
    );
}

// ------------------------------------------------------------------ Condition

#[test]
fn condition_wait_for_checks_first_and_rechecks_after_each_notify() {
    let m = Mutex::new(0);
    let cond = Condition::new();
    let calls = AtomicUsize::new(0);
    // Already true: no wait, one evaluation.
    *m.try_lock().unwrap() = 1;
    let g = match poll_once(pin!(cond.wait_for(m.try_lock().unwrap(), |v| {
        calls.fetch_add(1, Ordering::SeqCst);
        *v == 1
    }))) {
        Poll::Ready(g) => g,
        Poll::Pending => panic!("the predicate already held"),
    };
    assert_eq!(*g, 1);
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1);
    drop(g);
    let mut w = pin!(async {
        let g = cond
            .wait_for(m.lock().await, |v| {
                calls.fetch_add(1, Ordering::SeqCst);
                *v >= 3
            })
            .await;
        *g
    });
    assert!(poll_once(w.as_mut()).is_pending());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    *m.try_lock().unwrap() = 2;
    assert_eq!(cond.notify(1), 1);
    assert!(poll_once(w.as_mut()).is_pending(), "2 < 3: waits again");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    *m.try_lock().unwrap() = 3;
    assert_eq!(cond.notify_all(), 1);
    assert_eq!(poll_once(w.as_mut()), Poll::Ready(3));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn condition_notify_without_the_lock_is_allowed_and_wakes_in_fifo_order() {
    // asyncio raises RuntimeError here; ours is documented not to check (it is not tied to
    // one lock) and simply wakes the longest waiters.
    let m = Mutex::new(Vec::new());
    let cond = Condition::new();
    let mut a = pin!(async { cond.wait(m.lock().await).await.push('a') });
    let mut b = pin!(async { cond.wait(m.lock().await).await.push('b') });
    let mut c = pin!(async { cond.wait(m.lock().await).await.push('c') });
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(c.as_mut()).is_pending());
    assert!(!m.is_locked());
    assert_eq!(cond.notify(1), 1);
    assert!(poll_once(c.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(a.as_mut()).is_ready());
    assert_eq!(
        cond.notify(5),
        2,
        "notify(n) wakes at most the waiters there are"
    );
    assert!(poll_once(c.as_mut()).is_ready());
    assert!(poll_once(b.as_mut()).is_ready());
    assert_eq!(*m.try_lock().unwrap(), ['a', 'c', 'b']);
    assert_eq!(cond.notify(1), 0);
}

// ------------------------------------------------------------------ Barrier

#[test]
fn barrier_wait_returns_distinct_indices_in_arrival_order() {
    let b = Barrier::new(3);
    for _round in 0..2 {
        let mut x = pin!(b.wait());
        let mut y = pin!(b.wait());
        assert!(poll_once(x.as_mut()).is_pending());
        assert!(poll_once(y.as_mut()).is_pending());
        assert_eq!(b.n_waiting(), 2);
        let Poll::Ready(Ok(z)) = poll_once(pin!(b.wait())) else {
            panic!("the third party trips the barrier")
        };
        assert!(z.is_leader());
        assert_eq!(z.index(), 2, "the last to arrive gets parties - 1");
        assert_eq!(b.n_waiting(), 0);
        let Poll::Ready(Ok(y)) = poll_once(y.as_mut()) else {
            panic!()
        };
        let Poll::Ready(Ok(x)) = poll_once(x.as_mut()) else {
            panic!()
        };
        assert_eq!((x.index(), y.index()), (0, 1));
        assert!(!x.is_leader() && !y.is_leader());
    }
}

#[test]
fn barrier_indices_stay_distinct_when_a_waiter_gives_up() {
    let b = Barrier::new(3);
    let mut gone = Box::pin(b.wait());
    let mut x = pin!(b.wait());
    assert!(poll_once(gone.as_mut()).is_pending());
    assert!(poll_once(x.as_mut()).is_pending());
    drop(gone);
    assert_eq!(b.n_waiting(), 1);
    let mut y = pin!(b.wait());
    assert!(poll_once(y.as_mut()).is_pending());
    let Poll::Ready(Ok(z)) = poll_once(pin!(b.wait())) else {
        panic!("trips")
    };
    let Poll::Ready(Ok(x)) = poll_once(x.as_mut()) else {
        panic!()
    };
    let Poll::Ready(Ok(y)) = poll_once(y.as_mut()) else {
        panic!()
    };
    assert_eq!([x.index(), y.index(), z.index()], [0, 1, 2]);
}

#[test]
fn barrier_abort_breaks_waiters_and_later_arrivals_until_reset() {
    let b = Barrier::new(2);
    let (c, w) = counter();
    let mut x = pin!(b.wait());
    assert!(poll_with(x.as_mut(), &w).is_pending());
    b.abort();
    assert_eq!(wakes(&c), 1);
    assert!(b.is_broken());
    assert_eq!(b.n_waiting(), 0);
    assert!(matches!(poll_once(x.as_mut()), Poll::Ready(Err(_))));
    for _ in 0..3 {
        assert!(matches!(poll_once(pin!(b.wait())), Poll::Ready(Err(_))));
        assert_eq!(b.n_waiting(), 0, "a broken barrier counts nobody");
    }
    b.reset();
    let mut y = pin!(b.wait());
    assert!(poll_once(y.as_mut()).is_pending());
    let Poll::Ready(Ok(z)) = poll_once(pin!(b.wait())) else {
        panic!("usable again after reset")
    };
    assert_eq!(z.index(), 1);
    assert!(matches!(poll_once(y.as_mut()), Poll::Ready(Ok(r)) if r.index() == 0));
}

// ------------------------------------------------------------------ tokio mpsc

#[test]
fn mpsc_try_send_does_not_overtake_a_waiting_sender() {
    let (tx, mut rx) = mpsc::channel(1);
    tx.try_send(1).unwrap();
    let mut s2 = pin!(tx.send(2));
    assert!(poll_once(s2.as_mut()).is_pending());
    assert_eq!(rx.try_recv(), Ok(1)); // the slot goes to s2
    assert!(matches!(tx.try_send(3), Err(mpsc::TrySendError::Full(3))));
    assert!(poll_once(s2.as_mut()).is_ready());
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
}
