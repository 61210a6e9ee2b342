//! Async synchronisation primitives for ringleader, usable under any executor.
//!
//! Names follow asyncio where asyncio has the thing (`Lock` is `Mutex`, `Queue`,
//! `Event`, `Condition`, `Semaphore`, `BoundedSemaphore`, `Barrier`) and tokio where it
//! does not (`Notify`, `oneshot`, `mpsc`, `broadcast`, `watch`).
//!
//! # Locks and signals
//!
//! Every waiting primitive queues its waiters in arrival order and hands what it guards
//! straight to the first of them, so nobody starves and a newcomer never barges past a
//! queued waiter:
//!
//! - [`Semaphore`] (asyncio's `Semaphore`; [`Semaphore::bounded`] is `BoundedSemaphore`):
//!   permits, acquired one or many at a time, strictly FIFO.
//! - [`Mutex`] (asyncio's `Lock`, holding the data) and [`RwLock`] (writers never starve),
//!   both built on the semaphore.
//! - [`Event`], [`Condition`] (over [`Mutex`]) and [`Barrier`], with asyncio's semantics.
//! - [`Notify`] (tokio's): `notify_one` with one stored permit, `notify_waiters`.
//! - [`OnceCell`]: a value initialised once by an async initializer.
//!
//! Every waiting operation is cancel safe in the same sense: a future dropped at any await
//! point loses nothing it was handed. A lock or permits granted to it go to the next waiter,
//! a `notify_one` or `Condition::notify` that chose it is passed on. Each documents this
//! under `# Cancel safety`. Wake-ups are issued after the internal lock is released, and
//! leaf futures spend ringleader's cooperative budget (a no-op under other executors).
//!
//! ```
//! use std::sync::Arc;
//! use ringleader_sync::{Barrier, Mutex, Semaphore};
//!
//! // Any executor works; this one is futures' block_on.
//! futures::executor::block_on(async {
//!     let counter = Arc::new(Mutex::new(0));
//!     let limit = Semaphore::new(2); // at most two at a time in the section below
//!     let barrier = Barrier::new(3);
//!     let worker = |id: usize| {
//!         let (counter, limit, barrier) = (counter.clone(), &limit, &barrier);
//!         async move {
//!             let _permit = limit.acquire().await.expect("not closed");
//!             *counter.lock().await += id;
//!             drop(_permit);
//!             barrier.wait().await.expect("not aborted").is_leader()
//!         }
//!     };
//!     let (a, b, c) = futures::join!(worker(1), worker(2), worker(3));
//!     assert_eq!([a, b, c].iter().filter(|l| **l).count(), 1); // one leader
//!     assert_eq!(*counter.lock().await, 6);
//! });
//! ```

/// Defines a channel's `SendError<T>`: the message given back, a `Debug` that does not
/// require `T: Debug`, and `Display` with the channel's own wording. One definition for
/// the mpsc, broadcast and watch channels.
macro_rules! send_error {
    ($(#[$doc:meta])* $what:literal, $display:literal) => {
        $(#[$doc])*
        #[derive(PartialEq, Eq, Clone, Copy)]
        pub struct SendError<T>(pub T);

        impl<T> SendError<T> {
            #[doc = concat!("The ", $what, " that was not sent.")]
            pub fn into_inner(self) -> T {
                self.0
            }
        }

        impl<T> std::fmt::Debug for SendError<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("SendError(..)")
            }
        }

        impl<T> std::fmt::Display for SendError<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($display)
            }
        }

        impl<T> std::error::Error for SendError<T> {}
    };
}

mod intrusive;
mod loom;
mod waitlist;

mod barrier;
mod condition;
mod event;
mod mutex;
mod notify;
mod once_cell;
mod rwlock;
mod semaphore;

pub mod broadcast;
pub mod mpsc;
pub mod oneshot;
pub mod queue;
pub mod watch;

pub use barrier::{Barrier, BarrierWait, BarrierWaitResult, BrokenBarrier};
pub use condition::Condition;
pub use event::{Event, EventWait};
pub use mutex::{MappedMutexGuard, Mutex, MutexGuard, OwnedMutexGuard, TryLockError};
pub use notify::{Notified, Notify};
pub use once_cell::{OnceCell, SetError};
pub use queue::{LifoQueue, PriorityQueue, Queue, QueueShutDown};
pub use rwlock::{
    OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
pub use semaphore::{
    Acquire, AcquireError, AcquireOwned, OwnedSemaphorePermit, ReleaseError, Semaphore,
    SemaphorePermit, TryAcquireError,
};
