//! ringleader's runtime core: tasks, the work-stealing scheduler and its entry points.
//!
//! Most users reach this through the `ringleader` facade crate.
//!
//! ```
//! use ringleader_runtime::{run, spawn, task};
//!
//! let total = run(async {
//!     let handles: Vec<_> = (0..10u64).map(|i| spawn(async move {
//!         task::yield_now().await;
//!         i * i
//!     })).collect();
//!     let mut total = 0;
//!     for handle in handles {
//!         total += handle.await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 285);
//! ```
#![deny(rustdoc::broken_intra_doc_links)]

#[macro_use]
mod loom;
mod blocking;
mod callbacks;
#[doc(hidden)]
pub mod driver;
mod park;
mod scheduler;

#[cfg(all(test, ringleader_loom))]
mod loom_models;

pub mod runtime;
pub mod task;
#[path = "timer/mod.rs"]
pub mod time;

pub use callbacks::CallbackHandle;
pub use runtime::{run, try_run};
pub use task::{spawn, spawn_blocking, to_thread, yield_now};
