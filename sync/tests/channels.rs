//! Executor-independent tests of the channels and queues: driven by hand with noop and
//! counting wakers, by `futures::executor::block_on`, and by plain threads.
#![cfg(not(ringleader_loom))]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::executor::block_on;
use ringleader_sync::{broadcast, mpsc, oneshot, queue, watch};

/// Counts wake-ups.
#[derive(Default)]
struct CountWaker(AtomicUsize);

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<CountWaker>, Waker) {
    let c = Arc::new(CountWaker::default());
    (c.clone(), Waker::from(c))
}

fn poll_with<F: Future + ?Sized>(f: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(waker))
}

fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    poll_with(f, Waker::noop())
}

/// Counts drops of its tokens.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);
#[derive(Debug)]
struct Token(Arc<AtomicUsize>, u32);
impl Drops {
    fn token(&self, n: u32) -> Token {
        Token(self.0.clone(), n)
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
impl Drop for Token {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------- oneshot

#[test]
fn oneshot_send_then_recv() {
    let (tx, rx) = oneshot::channel();
    assert!(!tx.is_closed());
    tx.send(5).unwrap();
    assert_eq!(block_on(rx), Ok(5));
}

#[test]
fn oneshot_recv_waits_and_is_woken() {
    let (tx, rx) = oneshot::channel();
    let mut rx = Box::pin(rx);
    let (count, waker) = counting();
    assert!(poll_with(rx.as_mut(), &waker).is_pending());
    tx.send("x").unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(rx.as_mut()), Poll::Ready(Ok("x")));
    // Polled again after completion: an error, not a panic.
    assert!(matches!(poll_once(rx.as_mut()), Poll::Ready(Err(_))));
}

#[test]
fn oneshot_sender_dropped() {
    let (tx, rx) = oneshot::channel::<u8>();
    drop(tx);
    assert!(block_on(rx).is_err());
    let (tx, mut rx) = oneshot::channel::<u8>();
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Empty));
    drop(tx);
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Closed));
}

#[test]
fn oneshot_receiver_dropped_gives_value_back() {
    let drops = Drops::default();
    let (tx, rx) = oneshot::channel();
    drop(rx);
    assert!(tx.is_closed());
    let back = tx.send(drops.token(1)).unwrap_err();
    assert_eq!(back.1, 1);
    drop(back);
    assert_eq!(drops.count(), 1);
}

#[test]
fn oneshot_value_dropped_with_receiver() {
    let drops = Drops::default();
    let (tx, rx) = oneshot::channel();
    tx.send(drops.token(1)).unwrap();
    assert_eq!(drops.count(), 0);
    drop(rx);
    assert_eq!(drops.count(), 1);
}

#[test]
fn oneshot_close_keeps_sent_value() {
    let (tx, mut rx) = oneshot::channel();
    tx.send(3).unwrap();
    rx.close();
    assert_eq!(rx.try_recv(), Ok(3));
    let (tx, mut rx) = oneshot::channel();
    rx.close();
    assert_eq!(tx.send(4), Err(4));
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Closed));
}

#[test]
fn oneshot_closed_wakes_sender() {
    let (mut tx, rx) = oneshot::channel::<()>();
    let (count, waker) = counting();
    {
        let mut closed = Box::pin(tx.closed());
        assert!(poll_with(closed.as_mut(), &waker).is_pending());
        // Re-polling with another waker replaces it.
        assert!(poll_with(closed.as_mut(), &waker).is_pending());
        drop(rx);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll_once(closed.as_mut()).is_ready());
    }
    assert!(tx.is_closed());
}

#[test]
fn oneshot_dropped_recv_poll_then_send_fails_cleanly() {
    let (tx, rx) = oneshot::channel::<u32>();
    let mut rx = Box::pin(rx);
    assert!(poll_once(rx.as_mut()).is_pending());
    drop(rx);
    assert_eq!(tx.send(1), Err(1));
}

#[test]
fn oneshot_across_threads() {
    for _ in 0..1000 {
        let (tx, rx) = oneshot::channel();
        let t = std::thread::spawn(move || tx.send(7u64).unwrap());
        assert_eq!(block_on(rx), Ok(7));
        t.join().unwrap();
    }
}

#[test]
fn oneshot_blocking_recv() {
    let (tx, rx) = oneshot::channel();
    let t = std::thread::spawn(move || rx.blocking_recv());
    tx.send(1).unwrap();
    assert_eq!(t.join().unwrap(), Ok(1));
}

// ---------------------------------------------------------------- mpsc

#[test]
fn mpsc_bounded_order_and_end() {
    let (tx, mut rx) = mpsc::channel(4);
    block_on(async {
        for i in 0..4 {
            tx.send(i).await.unwrap();
        }
        assert!(matches!(tx.try_send(9), Err(mpsc::TrySendError::Full(9))));
        assert_eq!(tx.capacity(), 0);
        assert_eq!(tx.max_capacity(), 4);
        assert_eq!(rx.len(), 4);
        for i in 0..4 {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert_eq!(tx.capacity(), 4);
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
        drop(tx);
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    });
}

#[test]
fn mpsc_send_after_receiver_dropped() {
    let (tx, rx) = mpsc::channel::<u8>(1);
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(block_on(tx.send(1)).unwrap_err().0, 1);
    assert!(matches!(tx.try_send(2), Err(mpsc::TrySendError::Closed(2))));
    let (tx, rx) = mpsc::unbounded_channel::<u8>();
    drop(rx);
    assert_eq!(tx.send(3).unwrap_err().into_inner(), 3);
}

#[test]
fn mpsc_receiver_drop_drops_buffered() {
    let drops = Drops::default();
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..3 {
        tx.send(drops.token(i)).unwrap();
    }
    drop(rx);
    assert_eq!(drops.count(), 3);
}

#[test]
fn mpsc_close_keeps_buffered_and_fails_senders() {
    let (tx, mut rx) = mpsc::channel(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    // A sender blocked on a full channel fails when the receiver closes.
    let mut blocked = Box::pin(tx.send(3));
    assert!(poll_once(blocked.as_mut()).is_pending());
    rx.close();
    assert!(matches!(
        poll_once(blocked.as_mut()),
        Poll::Ready(Err(mpsc::SendError(3)))
    ));
    assert!(tx.is_closed());
    assert!(matches!(tx.try_send(4), Err(mpsc::TrySendError::Closed(4))));
    block_on(async {
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
    });
}

#[test]
fn mpsc_permit_reserved_before_close_still_sends() {
    let (tx, mut rx) = mpsc::channel(2);
    let permit = tx.try_reserve().unwrap();
    rx.close();
    let mut recv = Box::pin(rx.recv());
    // The receiver waits for the outstanding permit instead of ending early.
    assert!(poll_once(recv.as_mut()).is_pending());
    permit.send(10);
    assert_eq!(poll_once(recv.as_mut()), Poll::Ready(Some(10)));
    drop(recv);
    assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
}

#[test]
fn mpsc_permits_and_capacity() {
    let (tx, mut rx) = mpsc::channel(2);
    let p1 = tx.try_reserve().unwrap();
    let p2 = block_on(tx.reserve()).unwrap();
    assert_eq!(tx.capacity(), 0);
    assert!(tx.try_reserve().is_err());
    drop(p1); // gives the slot back
    assert_eq!(tx.capacity(), 1);
    p2.send("a");
    let owned = block_on(tx.clone().reserve_owned()).unwrap();
    let tx2 = owned.send("b");
    assert!(tx2.same_channel(&tx));
    assert_eq!(rx.try_recv(), Ok("a"));
    assert_eq!(rx.try_recv(), Ok("b"));
    assert_eq!(tx.capacity(), 2);
}

#[test]
fn mpsc_dropped_send_future_gives_slot_to_next() {
    let (tx, mut rx) = mpsc::channel(1);
    tx.try_send(0).unwrap();
    let (count_b, waker_b) = counting();
    let (count_c, waker_c) = counting();
    let mut b = Box::pin(tx.send(1));
    let mut c = Box::pin(tx.send(2));
    assert!(poll_with(b.as_mut(), &waker_b).is_pending());
    assert!(poll_with(c.as_mut(), &waker_c).is_pending());
    // Receiving frees the slot: it goes to b, the longest waiter.
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!(count_b.0.load(Ordering::SeqCst), 1);
    assert_eq!(count_c.0.load(Ordering::SeqCst), 0);
    // b is dropped before it runs: its slot passes to c.
    drop(b);
    assert_eq!(count_c.0.load(Ordering::SeqCst), 1);
    assert!(poll_once(c.as_mut()).is_ready());
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
    assert_eq!(tx.capacity(), 1);
}

#[test]
fn mpsc_dropped_waiting_send_future_leaves_no_trace() {
    let (tx, mut rx) = mpsc::channel(1);
    tx.try_send(0).unwrap();
    let mut b = Box::pin(tx.send(1));
    assert!(poll_once(b.as_mut()).is_pending());
    drop(b);
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!(tx.capacity(), 1);
    tx.try_send(5).unwrap();
    assert_eq!(rx.try_recv(), Ok(5));
}

#[test]
fn mpsc_dropped_recv_future_loses_nothing() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (count, waker) = counting();
    {
        let mut r = Box::pin(rx.recv());
        assert!(poll_with(r.as_mut(), &waker).is_pending());
    }
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert!(count.0.load(Ordering::SeqCst) <= 1);
    {
        // Poll the future once more only after dropping a first one that saw the data.
        let mut r = Box::pin(rx.recv());
        assert_eq!(poll_once(r.as_mut()), Poll::Ready(Some(1)));
    }
    {
        let r = Box::pin(rx.recv());
        drop(r); // never polled
    }
    assert_eq!(rx.try_recv(), Ok(2));
}

#[test]
fn mpsc_recv_many() {
    let (tx, mut rx) = mpsc::channel(8);
    for i in 0..5 {
        tx.try_send(i).unwrap();
    }
    let mut buf = Vec::new();
    block_on(async {
        assert_eq!(rx.recv_many(&mut buf, 3).await, 3);
        assert_eq!(rx.recv_many(&mut buf, 0).await, 0);
        assert_eq!(rx.recv_many(&mut buf, 10).await, 2);
        drop(tx);
        assert_eq!(rx.recv_many(&mut buf, 10).await, 0);
    });
    assert_eq!(buf, vec![0, 1, 2, 3, 4]);
}

#[test]
fn mpsc_recv_woken_by_last_sender_drop() {
    let (tx, mut rx) = mpsc::channel::<u8>(1);
    let tx2 = tx.clone();
    let (count, waker) = counting();
    let mut r = Box::pin(rx.recv());
    assert!(poll_with(r.as_mut(), &waker).is_pending());
    drop(tx);
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    drop(tx2);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(r.as_mut()), Poll::Ready(None));
}

#[test]
fn mpsc_sender_closed_future() {
    let (tx, rx) = mpsc::channel::<u8>(1);
    let (count, waker) = counting();
    let mut c1 = Box::pin(tx.closed());
    let mut c2 = Box::pin(tx.closed());
    assert!(poll_with(c1.as_mut(), &waker).is_pending());
    assert!(poll_with(c2.as_mut(), &waker).is_pending());
    drop(c2); // a dropped waiter leaves the list
    drop(rx);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(poll_once(c1.as_mut()).is_ready());
}

#[test]
fn mpsc_per_producer_fifo_across_threads() {
    const PRODUCERS: u64 = 4;
    const N: u64 = 20_000;
    let (tx, mut rx) = mpsc::channel(16);
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    tx.blocking_send((p, i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut next = [0u64; PRODUCERS as usize];
    while let Some((p, i)) = rx.blocking_recv() {
        assert_eq!(next[p as usize], i, "producer {p} out of order");
        next[p as usize] += 1;
    }
    assert!(next.iter().all(|&n| n == N));
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn mpsc_unbounded_across_threads() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let threads: Vec<_> = (0..3u64)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u64 {
                    tx.send((p, i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut next = [0u64; 3];
    block_on(async {
        while let Some((p, i)) = rx.recv().await {
            assert_eq!(next[p as usize], i);
            next[p as usize] += 1;
        }
    });
    assert_eq!(next, [10_000; 3]);
    for t in threads {
        t.join().unwrap();
    }
}

// ---------------------------------------------------------------- broadcast

#[test]
fn broadcast_every_receiver_sees_every_message() {
    let (tx, mut a) = broadcast::channel(4);
    let mut b = tx.subscribe();
    assert_eq!(tx.receiver_count(), 2);
    assert_eq!(tx.send(1).unwrap(), 2);
    tx.send(2).unwrap();
    block_on(async {
        assert_eq!(a.recv().await, Ok(1));
        assert_eq!(a.recv().await, Ok(2));
        assert_eq!(b.recv().await, Ok(1));
        assert_eq!(b.recv().await, Ok(2));
    });
    // A late subscriber sees only what comes after.
    let mut c = tx.subscribe();
    assert_eq!(c.try_recv(), Err(broadcast::error::TryRecvError::Empty));
    tx.send(3).unwrap();
    assert_eq!(c.try_recv(), Ok(3));
}

#[test]
fn broadcast_lag_then_continue_from_oldest() {
    let (tx, mut rx) = broadcast::channel(3);
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.len(), 10);
    assert_eq!(
        block_on(rx.recv()),
        Err(broadcast::error::RecvError::Lagged(7))
    );
    assert_eq!(block_on(rx.recv()), Ok(7));
    assert_eq!(rx.try_recv(), Ok(8));
    assert_eq!(rx.try_recv(), Ok(9));
    assert_eq!(rx.try_recv(), Err(broadcast::error::TryRecvError::Empty));
}

#[test]
fn broadcast_closed_after_draining() {
    let (tx, mut rx) = broadcast::channel(2);
    tx.send(1).unwrap();
    drop(tx);
    assert!(rx.is_closed());
    assert_eq!(block_on(rx.recv()), Ok(1));
    assert_eq!(
        block_on(rx.recv()),
        Err(broadcast::error::RecvError::Closed)
    );
}

#[test]
fn broadcast_send_without_receivers_gives_value_back() {
    let (tx, rx) = broadcast::channel::<u8>(2);
    drop(rx);
    assert_eq!(tx.send(5).unwrap_err().0, 5);
    let _rx = tx.subscribe();
    assert!(tx.send(6).is_ok());
}

#[test]
fn broadcast_waiting_receivers_woken_and_dropped_recv_loses_nothing() {
    let (tx, mut a) = broadcast::channel(2);
    let mut b = tx.subscribe();
    let (count, waker) = counting();
    {
        let mut ra = Box::pin(a.recv());
        assert!(poll_with(ra.as_mut(), &waker).is_pending());
        let mut rb = Box::pin(b.recv());
        assert!(poll_with(rb.as_mut(), &waker).is_pending());
        tx.send(1).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(poll_once(rb.as_mut()), Poll::Ready(Ok(1)));
        // `ra` is dropped without being polled again.
    }
    assert_eq!(a.try_recv(), Ok(1));
    drop(tx);
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
}

#[test]
fn broadcast_across_threads() {
    let (tx, rx) = broadcast::channel(1024);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut rx = rx.resubscribe();
            std::thread::spawn(move || {
                let mut expect = 0u32;
                loop {
                    match rx.blocking_recv() {
                        Ok(v) => {
                            assert_eq!(v, expect);
                            expect += 1;
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => expect += n as u32,
                        Err(broadcast::error::RecvError::Closed) => return expect,
                    }
                }
            })
        })
        .collect();
    drop(rx);
    for i in 0..10_000u32 {
        tx.send(i).unwrap();
    }
    drop(tx);
    for r in readers {
        assert_eq!(r.join().unwrap(), 10_000);
    }
}

// ---------------------------------------------------------------- watch

#[test]
fn watch_borrow_changed_and_close() {
    let (tx, mut rx) = watch::channel(0);
    assert_eq!(*rx.borrow(), 0);
    assert_eq!(rx.has_changed(), Ok(false));
    tx.send(1).unwrap();
    assert_eq!(rx.has_changed(), Ok(true));
    assert!(rx.borrow().has_changed());
    block_on(rx.changed()).unwrap();
    assert_eq!(*rx.borrow_and_update(), 1);
    assert_eq!(rx.has_changed(), Ok(false));
    tx.send(2).unwrap();
    tx.send(3).unwrap();
    assert_eq!(*rx.borrow_and_update(), 3);
    drop(tx);
    assert!(rx.has_changed().is_err());
    assert!(block_on(rx.changed()).is_err());
    assert_eq!(*rx.borrow(), 3);
}

#[test]
fn watch_changed_returns_unseen_value_even_after_close() {
    let (tx, mut rx) = watch::channel(0);
    tx.send(1).unwrap();
    drop(tx);
    assert!(block_on(rx.changed()).is_ok());
    assert!(block_on(rx.changed()).is_err());
}

#[test]
fn watch_wakes_every_waiter_and_dropped_changed_is_clean() {
    let (tx, mut a) = watch::channel(0);
    let mut b = a.clone();
    let (count, waker) = counting();
    {
        let mut ca = Box::pin(a.changed());
        assert!(poll_with(ca.as_mut(), &waker).is_pending());
        let mut cb = Box::pin(b.changed());
        assert!(poll_with(cb.as_mut(), &waker).is_pending());
        drop(cb);
        tx.send(1).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll_once(ca.as_mut()).is_ready());
    }
    // b's dropped `changed` did not mark anything seen.
    assert_eq!(b.has_changed(), Ok(true));
    assert_eq!(a.has_changed(), Ok(false));
}

#[test]
fn watch_sender_api() {
    let (tx, rx) = watch::channel(vec![1]);
    assert_eq!(tx.send_replace(vec![2]), vec![1]);
    tx.send_modify(|v| v.push(3));
    assert_eq!(*tx.borrow(), vec![2, 3]);
    let rx2 = tx.subscribe();
    assert_eq!(rx2.has_changed(), Ok(false));
    assert!(!tx.send_if_modified(|_| false));
    assert_eq!(rx2.has_changed(), Ok(false));
    assert!(tx.send_if_modified(|v| {
        v.clear();
        true
    }));
    assert_eq!(rx2.has_changed(), Ok(true));
    assert_eq!(tx.receiver_count(), 2);
    drop(rx);
    drop(rx2);
    assert!(tx.is_closed());
    assert_eq!(tx.send(vec![9]).unwrap_err().0, vec![9]);
    block_on(tx.closed());
}

#[test]
fn watch_sender_closed_waits_for_last_receiver() {
    let (tx, rx) = watch::channel(());
    let rx2 = rx.clone();
    let (count, waker) = counting();
    let mut closed = Box::pin(tx.closed());
    assert!(poll_with(closed.as_mut(), &waker).is_pending());
    drop(rx);
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    drop(rx2);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(poll_once(closed.as_mut()).is_ready());
}

#[test]
fn watch_wait_for() {
    let (tx, mut rx) = watch::channel(0);
    let t = std::thread::spawn(move || {
        for i in 1..=10 {
            tx.send(i).unwrap();
        }
    });
    block_on(async {
        let v = rx.wait_for(|v| *v == 10).await.unwrap();
        assert_eq!(*v, 10);
    });
    t.join().unwrap();
}

// ---------------------------------------------------------------- queues

#[test]
fn queue_orders() {
    let fifo = queue::Queue::new(0);
    let lifo = queue::LifoQueue::new(0);
    let prio = queue::PriorityQueue::new(0);
    for v in [3, 1, 2] {
        fifo.put_nowait(v).unwrap();
        lifo.put_nowait(v).unwrap();
        prio.put_nowait(v).unwrap();
    }
    let drain = |f: &dyn Fn() -> Result<i32, queue::TryGetError>| {
        std::iter::from_fn(|| f().ok()).collect::<Vec<_>>()
    };
    assert_eq!(drain(&|| fifo.get_nowait()), vec![3, 1, 2]);
    assert_eq!(drain(&|| lifo.get_nowait()), vec![2, 1, 3]);
    assert_eq!(drain(&|| prio.get_nowait()), vec![1, 2, 3]);
}

#[test]
fn queue_nowait_errors_give_items_back() {
    let q = queue::Queue::new(1);
    assert_eq!(q.maxsize(), 1);
    assert!(q.empty());
    q.put_nowait("a").unwrap();
    assert!(q.full());
    assert_eq!(q.qsize(), 1);
    match q.put_nowait("b") {
        Err(queue::TryPutError::Full(v)) => assert_eq!(v, "b"),
        other => panic!("{other:?}"),
    }
    assert_eq!(q.get_nowait(), Ok("a"));
    assert_eq!(q.get_nowait(), Err(queue::TryGetError::Empty));
    let unbounded = queue::Queue::new(0);
    for i in 0..1000 {
        unbounded.put_nowait(i).unwrap();
    }
    assert!(!unbounded.full());
}

#[test]
fn queue_task_done_and_join() {
    let q = queue::Queue::new(0);
    assert_eq!(q.task_done(), Err(queue::TaskDoneError));
    block_on(q.join()); // nothing unfinished: returns at once
    q.put_nowait(1).unwrap();
    q.put_nowait(2).unwrap();
    let mut join = Box::pin(q.join());
    let (count, waker) = counting();
    assert!(poll_with(join.as_mut(), &waker).is_pending());
    q.get_nowait().unwrap();
    q.task_done().unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    assert!(poll_with(join.as_mut(), &waker).is_pending());
    q.get_nowait().unwrap();
    q.task_done().unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(poll_once(join.as_mut()).is_ready());
    assert_eq!(q.task_done(), Err(queue::TaskDoneError));
    assert_eq!(q.unfinished_tasks(), 0);
}

#[test]
fn queue_getters_served_in_arrival_order() {
    let q = queue::Queue::new(0);
    let mut g1 = Box::pin(q.get());
    let mut g2 = Box::pin(q.get());
    let mut g3 = Box::pin(q.get());
    assert!(poll_once(g1.as_mut()).is_pending());
    assert!(poll_once(g2.as_mut()).is_pending());
    assert!(poll_once(g3.as_mut()).is_pending());
    q.put_nowait(1).unwrap();
    // The item is handed to g1: it still counts as queued (as in asyncio until g1 runs),
    // but a newcomer cannot take it, and g3 keeps waiting.
    assert_eq!(q.qsize(), 1);
    assert!(!q.empty());
    assert_eq!(q.get_nowait(), Err(queue::TryGetError::Empty));
    assert!(poll_once(g3.as_mut()).is_pending());
    q.put_nowait(2).unwrap();
    // Whatever order the woken getters run in, the n-th to wait gets the n-th item.
    assert_eq!(poll_once(g2.as_mut()), Poll::Ready(Ok(2)));
    assert_eq!(poll_once(g1.as_mut()), Poll::Ready(Ok(1)));
    assert_eq!(q.qsize(), 0);
    q.put_nowait(3).unwrap();
    assert_eq!(poll_once(g3.as_mut()), Poll::Ready(Ok(3)));
}

#[test]
fn queue_handed_items_count_toward_full() {
    let q = queue::Queue::new(1);
    let mut g = Box::pin(q.get());
    assert!(poll_once(g.as_mut()).is_pending());
    q.put_nowait("a").unwrap();
    // "a" is handed to the waiting getter but, as in asyncio, still fills the queue.
    assert!(q.full());
    assert!(matches!(
        q.put_nowait("b"),
        Err(queue::TryPutError::Full("b"))
    ));
    let mut p = Box::pin(q.put("b"));
    assert!(poll_once(p.as_mut()).is_pending());
    assert_eq!(poll_once(g.as_mut()), Poll::Ready(Ok("a")));
    assert!(poll_once(p.as_mut()).is_ready());
    assert_eq!(q.get_nowait(), Ok("b"));
}

#[test]
fn queue_dropped_get_passes_its_item_to_the_next_getter() {
    let q = queue::Queue::new(0);
    let (c2, w2) = counting();
    let mut g1 = Box::pin(q.get());
    let mut g2 = Box::pin(q.get());
    assert!(poll_once(g1.as_mut()).is_pending());
    assert!(poll_with(g2.as_mut(), &w2).is_pending());
    q.put_nowait("x").unwrap();
    assert_eq!(c2.0.load(Ordering::SeqCst), 0);
    drop(g1); // handed "x" but dropped before running
    assert_eq!(c2.0.load(Ordering::SeqCst), 1);
    assert_eq!(q.qsize(), 1);
    assert_eq!(poll_once(g2.as_mut()), Poll::Ready(Ok("x")));
}

#[test]
fn queue_dropped_get_item_stays_at_front() {
    let q = queue::Queue::new(0);
    let mut g1 = Box::pin(q.get());
    assert!(poll_once(g1.as_mut()).is_pending());
    q.put_nowait(1).unwrap();
    q.put_nowait(2).unwrap();
    drop(g1);
    assert_eq!(q.get_nowait(), Ok(1));
    assert_eq!(q.get_nowait(), Ok(2));
}

#[test]
fn queue_putters_served_in_arrival_order_and_cancel() {
    let q = queue::Queue::new(1);
    q.put_nowait(0).unwrap();
    let (c1, w1) = counting();
    let mut p1 = Box::pin(q.put(1));
    let mut p2 = Box::pin(q.put(2));
    let mut p3 = Box::pin(q.put(3));
    assert!(poll_with(p1.as_mut(), &w1).is_pending());
    assert!(poll_once(p2.as_mut()).is_pending());
    assert!(poll_once(p3.as_mut()).is_pending());
    assert_eq!(q.get_nowait(), Ok(0));
    assert_eq!(c1.0.load(Ordering::SeqCst), 1);
    // Room is reserved for p1: a newcomer sees the queue full.
    assert!(matches!(q.put_nowait(9), Err(queue::TryPutError::Full(9))));
    drop(p1); // its room passes to p2; its item was never put
    assert!(poll_once(p3.as_mut()).is_pending());
    assert!(poll_once(p2.as_mut()).is_ready());
    assert_eq!(q.get_nowait(), Ok(2));
    assert!(poll_once(p3.as_mut()).is_ready());
    assert_eq!(q.get_nowait(), Ok(3));
    assert_eq!(q.unfinished_tasks(), 3);
}

#[test]
fn queue_shutdown_graceful() {
    let q = queue::Queue::new(2);
    q.put_nowait(1).unwrap();
    q.put_nowait(2).unwrap();
    let mut blocked_put = Box::pin(q.put(3));
    assert!(poll_once(blocked_put.as_mut()).is_pending());
    q.shutdown(false);
    assert!(q.is_shutdown());
    match poll_once(blocked_put.as_mut()) {
        Poll::Ready(Err(queue::PutError(3))) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        q.put_nowait(4),
        Err(queue::TryPutError::ShutDown(4))
    ));
    assert_eq!(block_on(q.put(5)).unwrap_err().into_inner(), 5);
    // Items already queued are still handed out, then gets fail.
    assert_eq!(block_on(q.get()), Ok(1));
    assert_eq!(q.get_nowait(), Ok(2));
    assert_eq!(block_on(q.get()), Err(queue::QueueShutDown));
    assert_eq!(q.get_nowait(), Err(queue::TryGetError::ShutDown));
    // join still waits for task_done on the two items taken.
    let mut join = Box::pin(q.join());
    assert!(poll_once(join.as_mut()).is_pending());
    q.task_done().unwrap();
    q.task_done().unwrap();
    assert!(poll_once(join.as_mut()).is_ready());
}

#[test]
fn queue_shutdown_wakes_getters() {
    let q = queue::Queue::<u8>::new(0);
    let (count, waker) = counting();
    let mut g = Box::pin(q.get());
    assert!(poll_with(g.as_mut(), &waker).is_pending());
    q.shutdown(false);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        poll_once(g.as_mut()),
        Poll::Ready(Err(queue::QueueShutDown))
    );
}

#[test]
fn queue_shutdown_immediate_drains_and_releases_join() {
    let drops = Drops::default();
    let q = queue::Queue::new(0);
    for i in 0..3 {
        q.put_nowait(drops.token(i)).unwrap();
    }
    let mut join = Box::pin(q.join());
    assert!(poll_once(join.as_mut()).is_pending());
    q.shutdown(true);
    assert_eq!(drops.count(), 3);
    assert!(q.empty());
    assert!(poll_once(join.as_mut()).is_ready());
    assert!(matches!(block_on(q.get()), Err(queue::QueueShutDown)));
    assert_eq!(q.task_done(), Err(queue::TaskDoneError));
}

#[test]
fn queue_shutdown_immediate_counts_only_queued_items() {
    let q = queue::Queue::new(0);
    q.put_nowait(1).unwrap();
    q.put_nowait(2).unwrap();
    assert_eq!(q.get_nowait(), Ok(1)); // taken, not yet done
    q.shutdown(true);
    assert_eq!(q.unfinished_tasks(), 1);
    let mut join = Box::pin(q.join());
    assert!(poll_once(join.as_mut()).is_pending());
    q.task_done().unwrap();
    assert!(poll_once(join.as_mut()).is_ready());
}

#[test]
fn queue_shutdown_immediate_voids_handed_items() {
    let q = queue::Queue::new(0);
    let mut g = Box::pin(q.get());
    assert!(poll_once(g.as_mut()).is_pending());
    q.put_nowait(1).unwrap(); // reserved for g
    q.shutdown(true); // ... but dropped by the immediate shutdown
    assert_eq!(
        poll_once(g.as_mut()),
        Poll::Ready(Err(queue::QueueShutDown))
    );
}

#[test]
fn queue_priority_with_tuples() {
    let q = queue::PriorityQueue::new(0);
    block_on(async {
        q.put((2, "b")).await.unwrap();
        q.put((1, "a")).await.unwrap();
        q.put((3, "c")).await.unwrap();
        assert_eq!(q.get().await, Ok((1, "a")));
        assert_eq!(q.get().await, Ok((2, "b")));
        assert_eq!(q.get().await, Ok((3, "c")));
    });
}

#[test]
fn queue_threads_pipeline() {
    let q = Arc::new(queue::Queue::new(4));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut sum = 0u64;
                while let Ok(v) = block_on(q.get()) {
                    sum += v;
                    q.task_done().unwrap();
                }
                sum
            })
        })
        .collect();
    block_on(async {
        for i in 0..10_000u64 {
            q.put(i).await.unwrap();
        }
        q.join().await;
    });
    q.shutdown(false);
    let total: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(total, (0..10_000u64).sum());
}

/// Every await point of every waiting op, dropped after one poll: nothing is lost and the
/// primitives keep working.
#[test]
fn drop_at_every_await_point() {
    // mpsc bounded: send blocked, recv blocked, reserve blocked.
    let (tx, mut rx) = mpsc::channel(1);
    tx.try_send(1).unwrap();
    for _ in 0..3 {
        let mut s = Box::pin(tx.send(2));
        assert!(poll_once(s.as_mut()).is_pending());
        drop(s);
        let mut r = Box::pin(tx.reserve());
        assert!(poll_once(r.as_mut()).is_pending());
        drop(r);
    }
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(tx.capacity(), 1);
    for _ in 0..3 {
        let mut r = Box::pin(rx.recv());
        assert!(poll_once(r.as_mut()).is_pending());
        drop(r);
    }
    tx.try_send(3).unwrap();
    assert_eq!(rx.try_recv(), Ok(3));

    // broadcast recv, watch changed, oneshot closed.
    let (btx, mut brx) = broadcast::channel(1);
    let mut r = Box::pin(brx.recv());
    assert!(poll_once(r.as_mut()).is_pending());
    drop(r);
    btx.send(1).unwrap();
    assert_eq!(brx.try_recv(), Ok(1));

    let (wtx, mut wrx) = watch::channel(0);
    let mut c = Box::pin(wrx.changed());
    assert!(poll_once(c.as_mut()).is_pending());
    drop(c);
    wtx.send(1).unwrap();
    assert_eq!(wrx.has_changed(), Ok(true));

    // queue get / put / join.
    let q = queue::Queue::new(1);
    let mut g = Box::pin(q.get());
    assert!(poll_once(g.as_mut()).is_pending());
    drop(g);
    q.put_nowait(1).unwrap();
    let mut p = Box::pin(q.put(2));
    assert!(poll_once(p.as_mut()).is_pending());
    drop(p);
    let mut j = Box::pin(q.join());
    assert!(poll_once(j.as_mut()).is_pending());
    drop(j);
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get_nowait(), Ok(1));
    q.task_done().unwrap();
    block_on(q.join());
}

#[test]
fn mpsc_weak_sender() {
    let (tx, mut rx) = mpsc::channel::<u8>(2);
    let weak = tx.downgrade();
    let tx2 = weak.upgrade().unwrap();
    tx2.try_send(1).unwrap();
    drop(tx);
    drop(tx2);
    // Only weak senders remain: the channel is finished.
    assert!(weak.upgrade().is_none());
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    assert!(rx.is_closed());
    let (tx, _rx) = mpsc::unbounded_channel::<u8>();
    let weak = tx.downgrade();
    assert!(weak.upgrade().unwrap().same_channel(&tx));
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<oneshot::Sender<u8>>();
    send_sync::<oneshot::Receiver<u8>>();
    send_sync::<mpsc::Sender<u8>>();
    send_sync::<mpsc::Receiver<u8>>();
    send_sync::<mpsc::UnboundedSender<u8>>();
    send_sync::<mpsc::UnboundedReceiver<u8>>();
    send_sync::<mpsc::WeakSender<u8>>();
    send_sync::<mpsc::Permit<'static, u8>>();
    send_sync::<mpsc::OwnedPermit<u8>>();
    send_sync::<broadcast::Sender<u8>>();
    send_sync::<broadcast::Receiver<u8>>();
    send_sync::<watch::Sender<u8>>();
    send_sync::<watch::Receiver<u8>>();
    send_sync::<queue::Queue<u8>>();
    send_sync::<queue::PriorityQueue<u8>>();
    send_sync::<queue::LifoQueue<u8>>();
    fn send<T: Send>(_: &T) {}
    let (tx, mut rx) = mpsc::channel::<u8>(1);
    send(&tx.send(1));
    send(&tx.reserve());
    send(&rx.recv());
    let q = queue::Queue::<u8>::new(0);
    send(&q.get());
    send(&q.put(1));
    send(&q.join());
    let (_btx, mut brx) = broadcast::channel::<u8>(1);
    send(&brx.recv());
    let (_wtx, mut wrx) = watch::channel(0u8);
    send(&wrx.changed());
}

#[test]
fn mpsc_granted_then_dropped_sender_lets_closed_receiver_end() {
    let (tx, mut rx) = mpsc::channel(1);
    tx.try_send(1).unwrap();
    let mut s = Box::pin(tx.send(2));
    assert!(poll_once(s.as_mut()).is_pending());
    assert_eq!(rx.try_recv(), Ok(1)); // the slot is granted to `s`
    rx.close();
    let (count, waker) = counting();
    let mut r = Box::pin(rx.recv());
    // `s` holds a granted slot: the receiver waits for it.
    assert!(poll_with(r.as_mut(), &waker).is_pending());
    drop(s);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(r.as_mut()), Poll::Ready(None));
}

#[test]
fn queue_lifo_and_priority_give_back_handed_items() {
    let lifo = queue::LifoQueue::new(0);
    let mut g = Box::pin(lifo.get());
    assert!(poll_once(g.as_mut()).is_pending());
    lifo.put_nowait(1).unwrap(); // claimed by g
    lifo.put_nowait(2).unwrap();
    drop(g); // the claim lapses; the stack is untouched (as asyncio: 2 is on top)
    assert_eq!(lifo.get_nowait(), Ok(2));
    assert_eq!(lifo.get_nowait(), Ok(1));

    let prio = queue::PriorityQueue::new(0);
    let mut g = Box::pin(prio.get());
    assert!(poll_once(g.as_mut()).is_pending());
    prio.put_nowait(5).unwrap(); // claimed by g
    prio.put_nowait(3).unwrap();
    drop(g);
    assert_eq!(prio.get_nowait(), Ok(3));
    assert_eq!(prio.get_nowait(), Ok(5));
}

#[test]
fn queue_dropped_handed_getter_after_immediate_shutdown_drops_item() {
    let drops = Drops::default();
    let q = queue::Queue::new(0);
    let mut g = Box::pin(q.get());
    assert!(poll_once(g.as_mut()).is_pending());
    q.put_nowait(drops.token(1)).unwrap();
    q.shutdown(true);
    assert_eq!(drops.count(), 0);
    drop(g);
    assert_eq!(drops.count(), 1);
    assert_eq!(q.qsize(), 0);
}

#[test]
fn queue_waiting_putters_items_enter_in_arrival_order() {
    let q = queue::Queue::new(2);
    q.put_nowait(0).unwrap();
    q.put_nowait(0).unwrap();
    let mut p1 = Box::pin(q.put(1));
    let mut p2 = Box::pin(q.put(2));
    assert!(poll_once(p1.as_mut()).is_pending());
    assert!(poll_once(p2.as_mut()).is_pending());
    // Two slots free up at once; p2 runs first but must wait for p1.
    assert_eq!(q.get_nowait(), Ok(0));
    assert_eq!(q.get_nowait(), Ok(0));
    assert!(poll_once(p2.as_mut()).is_pending());
    // A newcomer does not jump the queue either.
    assert!(matches!(q.put_nowait(9), Err(queue::TryPutError::Full(9))));
    assert!(poll_once(p1.as_mut()).is_ready());
    assert!(poll_once(p2.as_mut()).is_ready());
    assert_eq!(q.get_nowait(), Ok(1));
    assert_eq!(q.get_nowait(), Ok(2));
    // With nobody waiting, newcomers put freely again.
    q.put_nowait(3).unwrap();
}
