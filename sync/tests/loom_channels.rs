//! loom models of the channels and queues. Run by `ci/loom.sh`:
//! `RUSTFLAGS="--cfg ringleader_loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=2 \
//!  cargo test -p ringleader-sync --release --test loom_channels -- --test-threads=1`
#![cfg(ringleader_loom)]

use loom::future::block_on;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use ringleader_sync::{broadcast, mpsc, oneshot, queue, watch};

/// Counts drops, so a model can assert that a value was neither lost nor dropped twice.
#[derive(Debug)]
struct Token(Arc<AtomicUsize>);
impl Drop for Token {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn oneshot_send_vs_recv() {
    loom::model(|| {
        let (tx, rx) = oneshot::channel();
        let t = thread::spawn(move || tx.send(1u8).is_ok());
        assert_eq!(block_on(rx), Ok(1));
        assert!(t.join().unwrap());
    });
}

#[test]
fn oneshot_send_vs_receiver_drop() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = oneshot::channel();
        let token = Token(drops.clone());
        let t = thread::spawn(move || {
            // Either sent (the receiver drops it) or given back (we drop it): once.
            let _ = tx.send(token);
        });
        drop(rx);
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn oneshot_sender_drop_vs_recv() {
    loom::model(|| {
        let (tx, rx) = oneshot::channel::<u8>();
        let t = thread::spawn(move || drop(tx));
        assert!(block_on(rx).is_err());
        t.join().unwrap();
    });
}

#[test]
fn oneshot_closed_vs_receiver_close() {
    loom::model(|| {
        let (mut tx, mut rx) = oneshot::channel::<u8>();
        let t = thread::spawn(move || {
            block_on(tx.closed());
            tx.send(1).is_err()
        });
        rx.close();
        assert!(t.join().unwrap());
        assert!(rx.try_recv().is_err());
    });
}

#[test]
fn oneshot_recv_poll_then_send() {
    // The receiver registers its waker while the sender completes: the wake-up or the
    // value is seen, never neither.
    loom::model(|| {
        let (tx, mut rx) = oneshot::channel::<u8>();
        let t = thread::spawn(move || {
            let _ = tx.send(3);
        });
        let r = block_on(async {
            let v = (&mut rx).await;
            v
        });
        assert_eq!(r, Ok(3));
        t.join().unwrap();
    });
}

#[test]
fn mpsc_close_while_sending() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = mpsc::channel(1);
        let d = drops.clone();
        let t = thread::spawn(move || {
            let mut sent = 0;
            for _ in 0..2 {
                match block_on(tx.send(Token(d.clone()))) {
                    Ok(()) => sent += 1,
                    Err(e) => drop(e.0),
                }
            }
            sent
        });
        let mut received = 0;
        if let Some(v) = block_on(rx.recv()) {
            received += 1;
            drop(v);
        }
        rx.close();
        while let Some(v) = block_on(rx.recv()) {
            received += 1;
            drop(v);
        }
        let sent = t.join().unwrap();
        assert_eq!(sent, received, "a message sent with Ok was lost");
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn mpsc_unbounded_order_and_end() {
    loom::model(|| {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        assert_eq!(block_on(rx.recv()), Some(1));
        assert_eq!(block_on(rx.recv()), Some(2));
        assert_eq!(block_on(rx.recv()), None);
        t.join().unwrap();
    });
}

#[test]
fn mpsc_bounded_capacity_handoff() {
    // A sender blocked on a full channel gets the slot the receiver frees.
    loom::model(|| {
        let (tx, mut rx) = mpsc::channel(1);
        let t = thread::spawn(move || {
            block_on(tx.send(1)).unwrap();
            block_on(tx.send(2)).unwrap();
        });
        assert_eq!(block_on(rx.recv()), Some(1));
        assert_eq!(block_on(rx.recv()), Some(2));
        assert_eq!(block_on(rx.recv()), None);
        t.join().unwrap();
    });
}

#[test]
fn broadcast_lag() {
    loom::model(|| {
        let (tx, mut rx) = broadcast::channel(1);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        let mut seen = Vec::new();
        loop {
            match block_on(rx.recv()) {
                Ok(v) => seen.push(v),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    assert_eq!(n, 1);
                    seen.push(0);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        t.join().unwrap();
        // Either both, or a lag of one then the last.
        assert!(seen == [1, 2] || seen == [0, 2], "{seen:?}");
    });
}

/// A send wakes a receiver waiting (or about to wait) while a sender stays alive, so the
/// close path cannot rescue a lost wake-up: the receiver's lock-free "nothing new" check
/// (the tail hint) and its registration race with the send's publish and notify.
#[test]
fn broadcast_send_wakes_waiting_recv() {
    loom::model(|| {
        let (tx, mut rx) = broadcast::channel(2);
        let tx2 = tx.clone();
        let t = thread::spawn(move || {
            tx2.send(1).unwrap();
        });
        assert_eq!(block_on(rx.recv()), Ok(1));
        t.join().unwrap();
        drop(tx);
    });
}

/// Two receivers wait on two threads while a send happens, with the sender kept alive so
/// closing cannot rescue a lost wake-up: both wake.
#[test]
fn watch_send_wakes_two_waiting_receivers() {
    loom::model(|| {
        let (tx, mut rx) = watch::channel(0);
        let mut rx2 = tx.subscribe();
        drop(rx.borrow_and_update());
        let t = thread::spawn(move || {
            block_on(rx2.changed()).unwrap();
        });
        let t2 = thread::spawn(move || {
            block_on(rx.changed()).unwrap();
        });
        tx.send(1).unwrap();
        t.join().unwrap();
        t2.join().unwrap();
        drop(tx);
    });
}

#[test]
fn watch_changed_vs_send() {
    loom::model(|| {
        let (tx, mut rx) = watch::channel(0);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
        });
        block_on(rx.changed()).unwrap();
        assert_eq!(*rx.borrow_and_update(), 1);
        t.join().unwrap();
    });
}

#[test]
fn queue_join_task_done() {
    loom::model(|| {
        let q = Arc::new(queue::Queue::new(1));
        let q2 = q.clone();
        let t = thread::spawn(move || {
            let v = block_on(q2.get()).unwrap();
            q2.task_done().unwrap();
            v
        });
        block_on(q.put(7)).unwrap();
        block_on(q.join());
        assert_eq!(q.unfinished_tasks(), 0);
        assert_eq!(t.join().unwrap(), 7);
    });
}

#[test]
fn queue_get_vs_shutdown() {
    loom::model(|| {
        let q = Arc::new(queue::Queue::<u8>::new(0));
        let q2 = q.clone();
        let t = thread::spawn(move || block_on(q2.get()));
        q.put_nowait(1).unwrap();
        q.shutdown(false);
        // Graceful shutdown: the queued item is still handed out.
        assert_eq!(t.join().unwrap(), Ok(1));
        assert!(block_on(q.get()).is_err());
    });
}

#[test]
fn queue_put_vs_get_full() {
    loom::model(|| {
        let q = Arc::new(queue::Queue::new(1));
        q.put_nowait(1).unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || block_on(q2.put(2)).is_ok());
        assert_eq!(block_on(q.get()), Ok(1));
        assert!(t.join().unwrap());
        assert_eq!(q.get_nowait(), Ok(2));
    });
}

/// Polls `f` once with a no-op waker.
fn poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

#[test]
fn mpsc_cancelled_send_vs_release() {
    // A blocked sender's future is dropped while the receiver frees the slot: the slot
    // is either granted and passed back, or never granted; either way it is not lost.
    loom::model(|| {
        let (tx, mut rx) = mpsc::channel(1);
        tx.try_send(1).unwrap();
        let tx2 = tx.clone();
        let t = thread::spawn(move || {
            let mut f = Box::pin(tx2.send(2));
            let r = poll_once(f.as_mut());
            drop(f);
            r.is_ready()
        });
        assert_eq!(rx.try_recv(), Ok(1));
        let sent = t.join().unwrap();
        if sent {
            assert_eq!(rx.try_recv(), Ok(2));
        }
        assert_eq!(tx.capacity(), 1);
        tx.try_send(3).unwrap();
    });
}

#[test]
fn watch_cancelled_changed_vs_send() {
    loom::model(|| {
        let (tx, mut rx) = watch::channel(0);
        let mut rx2 = rx.clone();
        let t = thread::spawn(move || {
            let mut f = Box::pin(rx2.changed());
            let _ = poll_once(f.as_mut());
            drop(f);
            rx2
        });
        tx.send(1).unwrap();
        block_on(rx.changed()).unwrap();
        let rx2 = t.join().unwrap();
        // The dropped `changed` may have completed (marking 1 seen) or not; the list is
        // consistent either way and a new wait works.
        drop(rx2);
        tx.send(2).unwrap();
        block_on(rx.changed()).unwrap();
        assert_eq!(*rx.borrow(), 2);
    });
}

#[test]
fn broadcast_recv_vs_sender_drop() {
    loom::model(|| {
        let (tx, mut rx) = broadcast::channel(2);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
        });
        assert_eq!(block_on(rx.recv()), Ok(1));
        assert_eq!(
            block_on(rx.recv()),
            Err(broadcast::error::RecvError::Closed)
        );
        t.join().unwrap();
    });
}

#[test]
fn queue_cancelled_get_vs_put() {
    // A getter is dropped while an item arrives for it: the item stays in the queue.
    loom::model(|| {
        let q = Arc::new(queue::Queue::new(0));
        let mut g = Box::pin(q.get());
        assert!(poll_once(g.as_mut()).is_pending());
        let q2 = q.clone();
        let t = thread::spawn(move || q2.put_nowait(5).unwrap());
        drop(g);
        t.join().unwrap();
        assert_eq!(q.get_nowait(), Ok(5));
    });
}

#[test]
fn priority_queue_cancelled_claimant_vs_put_and_getter() {
    // A waiting getter is dropped while another thread puts: the put's claim either goes
    // to the second getter (the dropped one passes it on) or to nobody; either way the
    // second getter gets the item and the queue ends empty.
    loom::model(|| {
        let q = Arc::new(queue::PriorityQueue::new(0));
        let mut g1 = Box::pin(q.get());
        let mut g2 = Box::pin(q.get());
        assert!(poll_once(g1.as_mut()).is_pending());
        assert!(poll_once(g2.as_mut()).is_pending());
        let q2 = q.clone();
        let t = thread::spawn(move || q2.put_nowait(5).unwrap());
        drop(g1);
        t.join().unwrap();
        assert_eq!(block_on(g2), Ok(5));
        assert!(q.empty());
    });
}

#[test]
fn mpsc_permit_vs_close() {
    // A permit reserved before the close still delivers; the closed receiver waits for it
    // and then ends.
    loom::model(|| {
        let (tx, mut rx) = mpsc::channel(1);
        let t = thread::spawn(move || match tx.try_reserve() {
            Ok(p) => {
                p.send(1);
                true
            }
            Err(_) => false,
        });
        rx.close();
        let mut got = 0;
        while let Some(v) = block_on(rx.recv()) {
            assert_eq!(v, 1);
            got += 1;
        }
        let sent = t.join().unwrap();
        assert_eq!(got, usize::from(sent));
    });
}

/// A watch receiver read as a stream while another thread sends twice and closes: the
/// stream yields increasing values, the last one sent among them, and then ends.
#[test]
fn watch_stream_vs_sends_and_close() {
    use futures::StreamExt;
    loom::model(|| {
        let (tx, rx) = watch::channel(0);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        let values: Vec<i32> = block_on(watch::WatchStream::from_changes(rx).collect());
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
        assert_eq!(values.last(), Some(&2), "{values:?}");
        t.join().unwrap();
    });
}

/// A broadcast receiver read as a stream while another thread sends twice and closes:
/// both messages, in order, then the end.
#[test]
fn broadcast_stream_vs_sends_and_close() {
    use futures::StreamExt;
    loom::model(|| {
        let (tx, rx) = broadcast::channel(2);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        let items: Vec<_> = block_on(rx.collect());
        assert_eq!(items, [Ok(1), Ok(2)]);
        t.join().unwrap();
    });
}
