//! `Notify`'s intrusive waiter list: waiting allocates nothing, a waiter dropped from the
//! middle of the queue leaves the others in order, and on the multi-thread runtime no
//! `notify_one` is lost while waiters are cancelled at every point of their wait.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ringleader::sync::Notify;
use support::{rt2, scaled};

/// Counts the allocations of the calling thread (other threads of the test binary allocate
/// as they like).
struct CountingAlloc;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; the counter is a const thread-local
// without a destructor, so touching it never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn waiting_allocates_nothing() {
    let n = Notify::new();
    let before = allocs();
    for round in 0..100 {
        let mut a = pin!(n.notified());
        let mut b = pin!(n.notified());
        let mut c = pin!(n.notified());
        assert!(poll_once(a.as_mut()).is_pending());
        assert!(poll_once(b.as_mut()).is_pending());
        assert!(!c.as_mut().enable());
        if round % 2 == 0 {
            n.notify_waiters();
        } else {
            (0..3).for_each(|_| n.notify_one());
        }
        assert!(poll_once(a.as_mut()).is_ready());
        assert!(poll_once(b.as_mut()).is_ready());
        assert!(poll_once(c.as_mut()).is_ready());
    }
    assert_eq!(allocs() - before, 0, "a wait allocated");
}

#[test]
fn waiter_dropped_from_the_middle_keeps_the_order() {
    let n = Notify::new();
    let mut a = pin!(n.notified());
    let mut b = Box::pin(n.notified());
    let mut c = pin!(n.notified());
    let mut d = pin!(n.notified());
    for f in [a.as_mut(), b.as_mut(), c.as_mut(), d.as_mut()] {
        assert!(poll_once(f).is_pending());
    }
    drop(b); // never notified: unlinks itself, passes nothing on
    n.notify_one();
    assert!(poll_once(c.as_mut()).is_pending(), "c jumped the queue");
    assert!(poll_once(a.as_mut()).is_ready());
    n.notify_one();
    assert!(poll_once(d.as_mut()).is_pending(), "d jumped the queue");
    assert!(poll_once(c.as_mut()).is_ready());
    n.notify_one();
    assert!(poll_once(d.as_mut()).is_ready());
    assert!(
        poll_once(pin!(n.notified())).is_pending(),
        "a permit was left"
    );
}

#[test]
fn waiter_dropped_at_the_tail_and_head_then_queue_reused() {
    let n = Notify::new();
    {
        let mut a = Box::pin(n.notified());
        let mut b = Box::pin(n.notified());
        assert!(poll_once(a.as_mut()).is_pending());
        assert!(poll_once(b.as_mut()).is_pending());
        drop(b); // the tail
        drop(a); // the head, now the only one
    }
    // The list is empty again: the next notify_one is stored, not handed to a dead node.
    n.notify_one();
    let mut c = pin!(n.notified());
    assert!(poll_once(c.as_mut()).is_ready());
}

/// One `notify_one` outstanding at a time; 8 tasks wait for it, each round first creating,
/// registering and dropping a `Notified` (sometimes after `notify_one` chose it) and then
/// awaiting a fresh one. Every notification must end in exactly one completion: a lost
/// one stops the count (reported after a generous bound instead of hanging).
#[test]
fn notify_one_survives_cancelled_waiters_on_two_workers() {
    let rt = rt2();
    let total = scaled(50_000);
    let n = Arc::new(Notify::new());
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicUsize::new(0));
    for task in 0..8usize {
        let (n, done, stop) = (n.clone(), done.clone(), stop.clone());
        drop(rt.handle().spawn(async move {
            let mut i = task;
            while stop.load(Ordering::SeqCst) == 0 {
                i = i.wrapping_mul(31).wrapping_add(7);
                if i % 3 != 0 {
                    // Registered, perhaps chosen, then cancelled: must pass on what it got.
                    let mut f = Box::pin(n.notified());
                    let ready = std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await;
                    if ready.is_ready() {
                        done.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    if i % 5 == 0 {
                        ringleader::task::yield_now().await; // let a notifier choose it
                    }
                    drop(f);
                }
                n.notified().await;
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for sent in 0..total {
        n.notify_one();
        while done.load(Ordering::SeqCst) <= sent {
            assert!(
                Instant::now() < deadline,
                "notification {sent} lost ({} completions)",
                done.load(Ordering::SeqCst)
            );
            std::thread::yield_now();
        }
        assert_eq!(
            done.load(Ordering::SeqCst),
            sent + 1,
            "one notify_one, two completions"
        );
    }
    stop.store(1, Ordering::SeqCst);
    n.notify_waiters(); // releases the waiting tasks, which then see `stop`
    drop(rt);
}
