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
