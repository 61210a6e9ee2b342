//! Stress: many groups nested up to 10 deep with random failures, panics and deadlines.
//! After each top-level group returns, no task of it is alive and every child future was
//! dropped exactly once.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringleader::taskgroup::{BoxError, GroupConfig, Policy};
use ringleader::time::sleep;

struct Counters {
    created: AtomicUsize,
    dropped: AtomicUsize,
    groups: AtomicUsize,
}

/// Counts one child future's life.
struct Life(Arc<Counters>);
impl Life {
    fn new(c: &Arc<Counters>) -> Life {
        c.created.fetch_add(1, Ordering::SeqCst);
        Life(c.clone())
    }
}
impl Drop for Life {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

fn next(seed: &AtomicU64) -> u64 {
    // A shared splitmix64 sequence: deterministic in total, interleaving aside.
    let mut z = seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn boom() {
    panic!("stress panic")
}

fn group(
    depth: u32,
    c: Arc<Counters>,
    seed: Arc<AtomicU64>,
) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> {
    Box::pin(async move {
        c.groups.fetch_add(1, Ordering::SeqCst);
        let r = next(&seed);
        let mut config = GroupConfig::new().policy(if r % 4 == 0 {
            Policy::Supervise
        } else {
            Policy::FailFast
        });
        if r % 5 == 0 {
            config = config.timeout(Duration::from_micros(200 + r % 800));
        }
        let children = 1 + (r % 4) as usize;
        let result = config
            .run(|tg| {
                let (c, seed) = (c.clone(), seed.clone());
                async move {
                    for _ in 0..children {
                        let life = Life::new(&c);
                        let (c2, seed2) = (c.clone(), seed.clone());
                        let kind = next(&seed) % 10;
                        tg.spawn(async move {
                            let _life = life;
                            match kind {
                                0 => Err::<(), BoxError>("stress error".into()),
                                1 => {
                                    boom();
                                    Ok(())
                                }
                                2 => {
                                    sleep(Duration::from_millis(5)).await;
                                    Ok(())
                                }
                                3..=6 if depth < 10 => group(depth + 1, c2, seed2).await,
                                _ => {
                                    ringleader::task::yield_now().await;
                                    Ok(())
                                }
                            }
                        })?;
                    }
                    Ok::<_, BoxError>(())
                }
            })
            .await;
        result.map_err(|e| Box::new(e) as BoxError)
    })
}

#[test]
fn nested_groups_leave_nothing_alive_and_drop_every_child_once() {
    let rt = support::rt2();
    let counters = Arc::new(Counters {
        created: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
        groups: AtomicUsize::new(0),
    });
    let seed = Arc::new(AtomicU64::new(7));
    let target_groups = support::scaled(10_000);
    let mut top_level = 0;
    while counters.groups.load(Ordering::SeqCst) < target_groups {
        top_level += 1;
        let (c, s) = (counters.clone(), seed.clone());
        let _ = rt
            .block_on(rt.spawn(group(0, c, s)))
            .expect("no panic escapes a group");
        // The top-level group has returned: every child of every nested group is gone. (The
        // top-level task's handle saw COMPLETE, which a task publishes only after leaving the
        // registry; a group counts a child finished only from its done callback, which also
        // runs after that.)
        assert_eq!(
            rt.handle().metrics().num_alive_tasks(),
            0,
            "after top-level group {top_level}: {:?}",
            rt.handle().tasks()
        );
        assert_eq!(
            counters.created.load(Ordering::SeqCst),
            counters.dropped.load(Ordering::SeqCst),
            "after top-level group {top_level}"
        );
    }
    assert!(counters.groups.load(Ordering::SeqCst) >= target_groups);
}
