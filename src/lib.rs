//! ringleader: Python asyncio's complete model of concurrent I/O, in Rust, on a
//! work-stealing, io_uring runtime, with structured concurrency as the default.
//!
//! ```
//! let greeting = ringleader::run(async {
//!     let task = ringleader::spawn(async { "hello from a task" });
//!     task.await.expect("the task neither panicked nor was cancelled")
//! });
//! assert_eq!(greeting, "hello from a task");
//! ```
//!
//! The model, in asyncio's terms:
//! - [`run`] is `asyncio.run`: it starts a runtime, runs the future to completion, then
//!   cancels whatever is still alive and shuts down.
//! - [`spawn`] is `asyncio.create_task`; [`task::JoinHandle`] is the task (await it,
//!   [`abort`](task::JoinHandle::abort) it, read its id and name).
//! - [`task::yield_now`] is `await asyncio.sleep(0)`.
//! - [`runtime::Builder`] configures worker threads; [`runtime::Handle`] spawns from any thread.
//! - [`taskgroup`] is `asyncio.TaskGroup`, `timeout()`, `gather`, `wait`, `as_completed` and
//!   `shield`, with Trio's cancel scopes: no task outlives its group.
//! - [`net`] and [`fs`] are the sockets and files under asyncio's transports, completed on
//!   each worker's io_uring with owned buffers ([`io`]); [`io::AsyncFd`] and
//!   [`runtime::Handle::add_reader`] are `loop.add_reader` / `add_writer`.
//! - [`process`] is `asyncio.create_subprocess_exec` / `create_subprocess_shell`
//!   ([`process::Command`], [`process::Command::shell`]): pipes on the ring, `communicate`,
//!   and waits through the child's pidfd with no thread per child.
//! - [`streams`] is asyncio's streams: `open_connection` / `start_server` with a
//!   `StreamReader` (`readline`, `readuntil`, `readexactly`, limits) and a `StreamWriter`
//!   (`write` + `drain` with water marks), a `Server` whose handlers run in its own task
//!   group, `copy` / `copy_bidirectional`, and the futures-io adapter `Compat`.
//! - [`sync`] is `asyncio.Lock`, `Event`, `Condition`, `Semaphore`, `BoundedSemaphore`,
//!   `Barrier` and `Queue` (plus channels), usable under any executor.
//! - [`runtime::Builder::on_task_panic`] is `loop.set_exception_handler` for panics nobody
//!   awaited.
//! - [`#[ringleader::main]`](macro@main) makes `async fn main()` the program's entry point,
//!   and [`#[ringleader::test]`](macro@test) makes an `async fn` a test, each on a runtime
//!   built for it.
#![forbid(unsafe_code)]

pub use ringleader_io::{fs, net, process, streams};
pub use ringleader_runtime::{run, runtime, spawn, task, time, try_run, CallbackHandle};
pub use ringleader_sync as sync;

/// Owned buffers for I/O (every read and write takes its buffer by value and gives it
/// back, so a cancelled operation can never let the kernel write into freed memory), and
/// readiness on fds that other libraries own ([`AsyncFd`](io::AsyncFd)).
pub mod io {
    pub use ringleader_io::{AsyncFd, BufResult, IoBuf, IoBufMut, ReadyGuard, Slice, TryIoError};
}
pub use ringleader_taskgroup as taskgroup;
pub use ringleader_taskgroup::{cancelled, is_cancelled, task_group};

// The attribute macros (their docs are on the items). Their expansion names this crate as
// `::ringleader`, so users need no other dependency. Note that this import shadows the
// built-in `#[test]` for code written directly in this root module (none is); submodules
// are unaffected.
pub use ringleader_macros::{main, test};

/// The cooperative budget: see [`coop::consume_budget`] for loops that never touch a
/// ringleader leaf future.
pub mod coop {
    pub use ringleader_coop::{consume_budget, has_budget_remaining, unconstrained};
}

/// The README's Rust snippets, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
