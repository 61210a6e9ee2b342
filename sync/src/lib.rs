//! Async synchronisation primitives for ringleader, usable under any executor.
//!
//! Names follow asyncio where asyncio has the thing (`Lock` is [`Mutex`](mutex), `Queue`,
//! `Event`, `Condition`, `Semaphore`, `BoundedSemaphore`, `Barrier`) and tokio where it
//! does not (`Notify`, `oneshot`, `mpsc`, `broadcast`, `watch`).

mod loom;

pub mod barrier;
pub mod condition;
pub mod event;
pub mod mutex;
pub mod notify;
pub mod once_cell;
pub mod rwlock;
pub mod semaphore;

pub mod broadcast;
pub mod mpsc;
pub mod oneshot;
pub mod queue;
pub mod watch;
