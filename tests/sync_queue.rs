//! asyncio queues through the facade, on the multi-thread runtime: a producer/consumer
//! pipeline with `join` and `shutdown`, and fairness among waiting getters.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ringleader::sync::queue::{PriorityQueue, TryGetError};
use ringleader::sync::{Queue, QueueShutDown};
use support::{rt2, scaled};

#[test]
fn pipeline_with_join_and_shutdown() {
    let rt = rt2();
    let n = scaled(200_000) as u64;
    let (sum, processed) = rt.block_on(async move {
        let stage1 = Arc::new(Queue::<u64>::new(64));
        let stage2 = Arc::new(Queue::<u64>::new(64));
        let sum = Arc::new(AtomicU64::new(0));
        let processed = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for _ in 0..3 {
            let (s1, s2) = (stage1.clone(), stage2.clone());
            workers.push(ringleader::spawn(async move {
                while let Ok(v) = s1.get().await {
                    s2.put(v * 2)
                        .await
                        .expect("stage 2 open while stage 1 runs");
                    s1.task_done().unwrap();
                }
            }));
        }
        for _ in 0..2 {
            let (s2, sum, processed) = (stage2.clone(), sum.clone(), processed.clone());
            workers.push(ringleader::spawn(async move {
                loop {
                    match s2.get().await {
                        Ok(v) => {
                            sum.fetch_add(v, Ordering::Relaxed);
                            processed.fetch_add(1, Ordering::Relaxed);
                            s2.task_done().unwrap();
                        }
                        Err(QueueShutDown) => return,
                    }
                }
            }));
        }
        for i in 0..n {
            stage1.put(i).await.unwrap();
        }
        stage1.join().await;
        stage2.join().await;
        stage1.shutdown(false);
        stage2.shutdown(false);
        for w in workers {
            w.await.unwrap();
        }
        assert!(stage1.put(0).await.is_err());
        assert_eq!(stage2.get_nowait(), Err(TryGetError::ShutDown));
        (
            sum.load(Ordering::Relaxed),
            processed.load(Ordering::Relaxed),
        )
    });
    assert_eq!(processed, n);
    assert_eq!(sum, (0..n).map(|i| i * 2).sum::<u64>());
}

#[test]
fn immediate_shutdown_releases_join_and_getters() {
    let rt = rt2();
    rt.block_on(async {
        let q = Arc::new(Queue::<u32>::new(0));
        for i in 0..100 {
            q.put_nowait(i).unwrap();
        }
        for _ in 0..10 {
            q.get().await.unwrap();
            q.task_done().unwrap();
        }
        let joiner = {
            let q = q.clone();
            ringleader::spawn(async move { q.join().await })
        };
        // Getters blocked on another, empty queue.
        let empty = Arc::new(Queue::<u32>::new(0));
        let getters: Vec<_> = (0..4)
            .map(|_| {
                let e = empty.clone();
                ringleader::spawn(async move { e.get().await })
            })
            .collect();
        ringleader::time::sleep(std::time::Duration::from_millis(10)).await;
        q.shutdown(true);
        empty.shutdown(true);
        joiner.await.unwrap();
        assert!(q.empty());
        assert_eq!(q.unfinished_tasks(), 0);
        assert!(q.get().await.is_err());
        for g in getters {
            assert_eq!(g.await.unwrap(), Err(QueueShutDown));
        }
    });
}

#[test]
fn waiting_getters_are_served_in_arrival_order() {
    let rt = rt2();
    rt.block_on(async {
        let q = Arc::new(Queue::<u32>::new(0));
        let mut handles = Vec::new();
        for _ in 0..5u32 {
            let q = q.clone();
            handles.push(ringleader::spawn(async move { q.get().await.unwrap() }));
            // Let this getter start waiting before the next one.
            ringleader::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for v in 0..5 {
            q.put(v).await.unwrap();
        }
        for (id, h) in handles.into_iter().enumerate() {
            // The id-th getter to wait got the id-th item.
            assert_eq!(h.await.unwrap(), id as u32);
        }
    });
}

#[test]
fn waiting_putters_items_enter_in_arrival_order() {
    let rt = rt2();
    rt.block_on(async {
        let q = Arc::new(Queue::<u32>::new(3));
        for _ in 0..3 {
            q.put_nowait(0).unwrap();
        }
        let mut handles = Vec::new();
        for v in 1..=5u32 {
            let q = q.clone();
            handles.push(ringleader::spawn(async move { q.put(v).await.unwrap() }));
            // Let this putter start waiting before the next one.
            ringleader::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let mut out = Vec::new();
        for _ in 0..8 {
            out.push(q.get().await.unwrap());
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(out, vec![0, 0, 0, 1, 2, 3, 4, 5]);
    });
}

#[test]
fn priority_queue_on_workers() {
    let rt = rt2();
    rt.block_on(async {
        let q = Arc::new(PriorityQueue::new(0));
        for v in [5, 1, 4, 2, 3] {
            q.put(v).await.unwrap();
        }
        let mut out = Vec::new();
        while let Ok(v) = q.get_nowait() {
            out.push(v);
        }
        assert_eq!(out, vec![1, 2, 3, 4, 5]);
    });
}
