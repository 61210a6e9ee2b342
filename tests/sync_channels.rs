//! Channels through the facade, on the multi-thread runtime: volume, ordering, wake-ups
//! across workers, and the cooperative budget.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ringleader::sync::{broadcast, mpsc, oneshot, watch};
use support::{rt2, scaled, DropCounter};

#[test]
fn mpsc_five_producers_deliver_each_message_once_in_order() {
    const PRODUCERS: usize = 5;
    let n = scaled(1_000_000) as u64;
    let rt = rt2();
    let counts = rt.block_on(async move {
        let (tx, mut rx) = mpsc::channel::<(usize, u64)>(1024);
        for p in 0..PRODUCERS {
            let tx = tx.clone();
            drop(ringleader::spawn(async move {
                for i in 0..n {
                    tx.send((p, i)).await.expect("receiver alive");
                }
            }));
        }
        drop(tx);
        let consumer = ringleader::spawn(async move {
            let mut next = [0u64; PRODUCERS];
            while let Some((p, i)) = rx.recv().await {
                assert_eq!(next[p], i, "producer {p}: out of order or duplicated");
                next[p] += 1;
            }
            next
        });
        consumer.await.expect("consumer completes")
    });
    assert_eq!(counts, [n; PRODUCERS]);
}

#[test]
fn mpsc_unbounded_five_producers_in_order() {
    const PRODUCERS: usize = 5;
    let n = scaled(200_000) as u64;
    let rt = rt2();
    let counts = rt.block_on(async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, u64)>();
        for p in 0..PRODUCERS {
            let tx = tx.clone();
            drop(ringleader::spawn(async move {
                for i in 0..n {
                    tx.send((p, i)).expect("receiver alive");
                    if i % 1024 == 0 {
                        ringleader::task::yield_now().await;
                    }
                }
            }));
        }
        drop(tx);
        let mut next = [0u64; PRODUCERS];
        let mut buf = Vec::with_capacity(64);
        while rx.recv_many(&mut buf, 64).await > 0 {
            for (p, i) in buf.drain(..) {
                assert_eq!(next[p], i);
                next[p] += 1;
            }
        }
        next
    });
    assert_eq!(counts, [n; PRODUCERS]);
}

#[test]
fn mpsc_messages_left_in_a_dropped_channel_are_dropped() {
    let drops = DropCounter::new();
    let rt = rt2();
    let d = drops.clone();
    rt.block_on(async move {
        let (tx, rx) = mpsc::channel(16);
        for _ in 0..10 {
            tx.send(d.token()).await.unwrap();
        }
        drop(rx);
        assert!(tx.send(d.token()).await.is_err());
    });
    assert_eq!(drops.count(), 11);
}

#[test]
fn oneshot_request_reply_between_tasks() {
    let rt = rt2();
    let n = scaled(20_000);
    let total = rt.block_on(async move {
        let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(64);
        let server = ringleader::spawn(async move {
            while let Some((v, reply)) = rx.recv().await {
                let _ = reply.send(v * 2);
            }
        });
        let mut total = 0;
        for i in 0..n as u64 {
            let (rtx, rrx) = oneshot::channel();
            tx.send((i, rtx)).await.unwrap();
            total += rrx.await.unwrap();
        }
        drop(tx);
        server.await.unwrap();
        total
    });
    assert_eq!(total, (0..n as u64).map(|i| i * 2).sum::<u64>());
}

#[test]
fn broadcast_many_receivers_on_workers() {
    let rt = rt2();
    let n = scaled(50_000) as u64;
    let rt_ok = rt.block_on(async move {
        let (tx, _) = broadcast::channel::<u64>(128);
        let seen = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..4 {
            let mut rx = tx.subscribe();
            let seen = seen.clone();
            handles.push(ringleader::spawn(async move {
                let mut last = None::<u64>;
                loop {
                    match rx.recv().await {
                        Ok(v) => {
                            assert!(last.is_none_or(|l| v > l), "out of order");
                            last = Some(v);
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return last,
                    }
                }
            }));
        }
        for i in 0..n {
            tx.send(i).unwrap();
            if i % 64 == 0 {
                ringleader::task::yield_now().await;
            }
        }
        drop(tx);
        for h in handles {
            assert_eq!(
                h.await.unwrap(),
                Some(n - 1),
                "every receiver sees the last"
            );
        }
        true
    });
    assert!(rt_ok);
}

#[test]
fn watch_receivers_see_the_final_value() {
    let rt = rt2();
    let n = scaled(100_000) as u64;
    rt.block_on(async move {
        let (tx, rx) = watch::channel(0u64);
        let mut handles = Vec::new();
        for _ in 0..4 {
            let mut rx = rx.clone();
            handles.push(ringleader::spawn(async move {
                let mut last = 0;
                while rx.changed().await.is_ok() {
                    let v = *rx.borrow_and_update();
                    assert!(v >= last);
                    last = v;
                }
                *rx.borrow()
            }));
        }
        drop(rx);
        for i in 1..=n {
            tx.send(i).unwrap();
            if i % 256 == 0 {
                ringleader::task::yield_now().await;
            }
        }
        drop(tx);
        for h in handles {
            assert_eq!(h.await.unwrap(), n);
        }
    });
}

#[test]
fn a_busy_receiver_yields_to_other_tasks() {
    // The receiver's channel never empties; the coop budget still lets the flag-setting
    // task run on a single worker.
    let rt = ringleader::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    rt.block_on(async {
        ringleader::spawn(async {
            let (tx, mut rx) = mpsc::unbounded_channel();
            for i in 0..1_000u32 {
                tx.send(i).unwrap();
            }
            let flag = Arc::new(AtomicUsize::new(0));
            let f2 = flag.clone();
            drop(ringleader::spawn(async move {
                f2.store(1, Ordering::SeqCst);
            }));
            let mut polls = 0u32;
            while flag.load(Ordering::SeqCst) == 0 {
                let v = rx.recv().await.unwrap();
                tx.send(v).unwrap();
                polls += 1;
                assert!(polls < 100_000, "the receiver never yielded");
            }
        })
        .await
        .unwrap();
    });
}

#[test]
fn mpsc_receivers_are_streams_that_end_with_the_senders() {
    use futures_util::StreamExt;
    rt2().block_on(async {
        let (tx, rx) = mpsc::channel::<u32>(4);
        let producer = ringleader::spawn(async move {
            for n in 0..10 {
                tx.send(n).await.unwrap();
            }
        });
        // Bounded: the stream drains while the producer waits for room.
        let got: Vec<u32> = rx.collect().await;
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        producer.await.unwrap();

        let (tx, rx) = mpsc::unbounded_channel::<&str>();
        tx.send("a").unwrap();
        tx.send("b").unwrap();
        drop(tx);
        let got: Vec<String> = rx.map(str::to_uppercase).collect().await;
        assert_eq!(got, ["A", "B"]);
    });
}

#[test]
fn broadcast_receivers_are_streams_of_messages_and_lags() {
    use futures_util::StreamExt;
    rt2().block_on(async {
        let (tx, rx) = broadcast::channel::<u32>(4);
        // Receivers on workers, read as streams while the sender runs: each sees an
        // increasing run of messages ending with the last, and a lag (if any) accounts
        // for exactly the messages it skipped.
        let n = 10_000u32;
        let mut readers = Vec::new();
        for _ in 0..3 {
            let mut stream = tx.subscribe();
            readers.push(ringleader::spawn(async move {
                let (mut expected, mut lagged) = (0u32, 0u64);
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(v) => {
                            assert_eq!(v, expected, "a message out of order");
                            expected += 1;
                        }
                        Err(broadcast::Lagged(missed)) => {
                            lagged += missed;
                            expected += missed as u32;
                        }
                    }
                }
                (expected, lagged)
            }));
        }
        drop(rx);
        for i in 0..n {
            tx.send(i).unwrap();
            if i % 64 == 0 {
                ringleader::task::yield_now().await;
            }
        }
        drop(tx);
        for r in readers {
            let (end, _lagged) = r.await.unwrap();
            assert_eq!(end, n, "the stream ended before the last message");
        }

        // A lag is reported in place, then the oldest kept message follows.
        let (tx, rx) = broadcast::channel::<u32>(2);
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        drop(tx);
        let items: Vec<_> = rx.collect().await;
        assert_eq!(items, [Err(broadcast::Lagged(3)), Ok(3), Ok(4)]);
    });
}

#[test]
fn a_pending_broadcast_stream_wakes_on_send_and_is_dropped_cleanly() {
    use futures_util::StreamExt;
    rt2().block_on(async {
        let (tx, mut rx) = broadcast::channel::<u32>(4);
        // Left pending with a registration, then dropped: later sends still work.
        assert!(
            ringleader::time::timeout(std::time::Duration::from_millis(20), rx.next())
                .await
                .is_err()
        );
        let mut other = tx.subscribe();
        let waiter = ringleader::spawn(async move { other.next().await });
        ringleader::time::sleep(std::time::Duration::from_millis(10)).await;
        drop(rx);
        tx.send(7).unwrap();
        assert_eq!(waiter.await.unwrap(), Some(Ok(7)));
    });
}

#[test]
fn watch_streams_yield_changes_and_end_with_the_senders() {
    use futures_util::StreamExt;
    let n = scaled(50_000) as u64;
    rt2().block_on(async move {
        let (tx, rx) = watch::channel(0u64);
        // `new` yields the current value first; `from_changes` only later values.
        let mut first = watch::WatchStream::new(rx.clone());
        assert_eq!(first.next().await, Some(0));
        let mut changes = watch::WatchStream::from_changes(rx.clone());
        assert!(
            ringleader::time::timeout(std::time::Duration::from_millis(20), changes.next())
                .await
                .is_err(),
            "from_changes yielded a value that did not change"
        );
        tx.send(5).unwrap();
        assert_eq!(changes.next().await, Some(5));
        drop((first, changes));

        let mut readers = Vec::new();
        for _ in 0..3 {
            let stream = watch::WatchStream::new(rx.clone());
            readers.push(ringleader::spawn(async move {
                let values: Vec<u64> = stream.collect().await;
                assert!(
                    values.windows(2).all(|w| w[0] < w[1]),
                    "a value yielded twice or out of order"
                );
                values.last().copied()
            }));
        }
        drop(rx);
        for i in 1..=n {
            tx.send(i).unwrap();
            if i % 256 == 0 {
                ringleader::task::yield_now().await;
            }
        }
        drop(tx);
        for r in readers {
            assert_eq!(r.await.unwrap(), Some(n), "the last value was not yielded");
        }
    });
}
