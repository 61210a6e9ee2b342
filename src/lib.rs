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
//! - [`task::LocalSet`] runs futures that are not `Send` (holding an `Rc`, a `RefCell`) as
//!   tasks on one thread, as every asyncio task runs: [`task::spawn_local`] is
//!   `create_task` for them.
//! - [`task::ContextVar`] is `contextvars.ContextVar`: a value per task that every task
//!   spawned from it inherits by copy; [`task_local!`] is tokio's scoped variant, a value
//!   set around a future ([`task::LocalKey::scope`]) and not inherited.
//! - [`runtime::Builder`] configures worker threads; [`runtime::Handle`] spawns from any
//!   thread, and [`JoinHandle::blocking_wait`](task::JoinHandle::blocking_wait) waits for
//!   the task from code that is not async (`asyncio.run_coroutine_threadsafe(...).result()`).
//! - [`taskgroup`] is `asyncio.TaskGroup`, `timeout()`, `gather`, `wait`, `as_completed` and
//!   `shield`, with Trio's cancel scopes: no task outlives its group.
//! - [`net`] and [`fs`] are the sockets and files under asyncio's transports, completed on
//!   each worker's io_uring with owned buffers ([`io`]); [`io::AsyncFd`] and
//!   [`runtime::Handle::add_reader`] are `loop.add_reader` / `add_writer`;
//!   [`net::DatagramEndpoint`] is `loop.create_datagram_endpoint`, and [`io::sendfile`]
//!   (on a socket) and [`streams::StreamWriter::sendfile`] (on a stream's writer) are
//!   `loop.sendfile`.
//! - [`process`] is `asyncio.create_subprocess_exec` / `create_subprocess_shell`
//!   ([`process::Command`], [`process::Command::shell`]): pipes on the ring, `communicate`,
//!   and waits through the child's pidfd with no thread per child.
//! - [`streams`] is asyncio's streams: `open_connection` / `start_server` with a
//!   `StreamReader` (`readline`, `readuntil`, `readexactly`, limits) and a `StreamWriter`
//!   (`write` + `drain` with water marks), a `Server` whose handlers run in its own task
//!   group, `copy` / `copy_bidirectional`, and the futures-io adapter `Compat`.
//! - [`join!`] is `asyncio.gather` for futures of different types on one task, [`try_join!`]
//!   stops at the first error, and [`select!`] is `asyncio.wait(return_when=FIRST_COMPLETED)`
//!   that cancels the rest.
//! - [`signal`] is `loop.add_signal_handler`: [`signal::ctrl_c`] and streams of deliveries;
//!   [`run`] turns the first Ctrl-C into a cancellation of the root, as `asyncio.run` does.
//! - [`sync`] is `asyncio.Lock`, `Event`, `Condition`, `Semaphore`, `BoundedSemaphore`,
//!   `Barrier` and `Queue` (plus channels), usable under any executor.
//! - [`runtime::Builder::on_task_panic`] is `loop.set_exception_handler` for panics nobody
//!   awaited.
//! - [`#[ringleader::main]`](macro@main) makes `async fn main()` the program's entry point,
//!   and [`#[ringleader::test]`](macro@test) makes an `async fn` a test, each on a runtime
//!   built for it.
#![forbid(unsafe_code)]

use std::future::Future;
use std::time::Duration;

pub use ringleader_io::{fs, net, process, signal, streams};
pub use ringleader_runtime::{runtime, spawn, task, task_local, time, CallbackHandle};
pub use ringleader_sync as sync;

/// Owned buffers for I/O (every read and write takes its buffer by value and gives it
/// back, so a cancelled operation can never let the kernel write into freed memory), and
/// readiness on fds that other libraries own ([`AsyncFd`](io::AsyncFd)), and
/// [`sendfile`](io::sendfile) (asyncio's `loop.sendfile`).
pub mod io {
    pub use ringleader_io::{
        sendfile, AsyncFd, BufResult, IoBuf, IoBufMut, ReadyGuard, SendfileTarget, Slice,
        TryIoError,
    };
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
    pub use ringleader_coop::{
        consume_budget, has_budget_remaining, unconstrained, INITIAL_BUDGET,
    };
}

/// The README's Rust snippets, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Runs `future` (the root) to completion on a new multi-thread runtime, then cancels
/// every task still alive and shuts the runtime down (asyncio's `asyncio.run`).
///
/// ```
/// let answer = ringleader::run(async {
///     let task = ringleader::spawn(async { 21 * 2 });
///     task.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
///
/// # Ctrl-C (SIGINT)
/// As `asyncio.run` does, when `run` is called on the process's main thread and SIGINT's
/// disposition is the default (nobody installed a handler or ignored it):
/// - **The first SIGINT cancels the root cooperatively**, with
///   [`CancelReason::Signal`](task::CancelReason::Signal): the root runs inside a
///   [`CancelScope`](taskgroup::CancelScope) whose cancellation makes
///   [`cancelled()`](crate::cancelled) resolve and [`is_cancelled()`](crate::is_cancelled)
///   turn true in the root, and cancels the task groups it runs (their children see
///   `ParentCancelled(Signal)`). The root is never dropped for it: it may take as long as
///   it needs to clean up (asyncio's `CancelledError` handlers).
/// - **When the root has finished** (its output is discarded: a program interrupted by
///   Ctrl-C has no result), `run` shuts the runtime down as usual and then ends the
///   process as killed by SIGINT (default disposition, re-raised: exit status 130 in a
///   shell), as an uncaught `KeyboardInterrupt` does in Python. `run` does not return.
/// - **A second SIGINT aborts at once**: the handler restores the default disposition and
///   re-raises the signal, so the process dies even if the root ignores cancellation or
///   is stuck in blocking code.
/// - If `run` returns normally, SIGINT's previous (default) disposition is restored.
///
/// Off the main thread (every `#[test]`, for example), or when SIGINT already has a
/// handler or is ignored, `run` installs nothing and SIGINT does whatever it did before.
/// While the program listens for SIGINT itself ([`signal::ctrl_c`], or
/// [`signal::signal`] of `SignalKind::interrupt()`), SIGINT is the listener's: `run`
/// neither cancels nor aborts for deliveries in that time, and the listener's handler
/// stays installed after `run` (see [`signal`]). [`#[ringleader::main]`](macro@main) runs
/// its `async fn main` the same way, on the runtime its options describe.
///
/// # Panics
/// If the runtime cannot be started (see [`try_run`] for an error instead), or if called
/// from inside a task.
#[track_caller]
pub fn run<F: Future>(future: F) -> F::Output {
    match try_run(future) {
        Ok(out) => out,
        Err(e) => panic!("ringleader::run: failed to start the runtime: {e}"),
    }
}

/// [`run`], returning an error if the runtime cannot be started; the same Ctrl-C
/// behaviour.
///
/// # Errors
/// As [`runtime::Builder::build`].
///
/// # Panics
/// If called from inside a task.
#[track_caller]
pub fn try_run<F: Future>(future: F) -> std::io::Result<F::Output> {
    let rt = runtime::Builder::new_multi_thread().build()?;
    Ok(run_root(rt, future))
}

mod join_select;

/// What the expansions of [`join!`], [`try_join!`] and [`select!`] call. Not public API.
#[doc(hidden)]
pub mod __private {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};

    pub use ringleader_macros::{join_impl, select_impl, try_join_impl};

    /// Takes a finished future's output out of its slot.
    pub fn take_output<T>(slot: &mut Option<T>) -> T {
        match slot.take() {
            Some(value) => value,
            // The expansion reads the slots only once every future has finished.
            None => unreachable!("join!: an output was taken twice"),
        }
    }

    /// The `i`-th of `n` slots counted from slot `start` (wrapping).
    pub fn nth_from(start: usize, i: usize, n: usize) -> usize {
        start.wrapping_add(i) % n.max(1)
    }

    std::thread_local! {
        /// xorshift64* state: this thread's source of `select!`'s starting branch.
        static SELECT_RNG: Cell<u64> = Cell::new(
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1,
        );
    }

    /// A branch index in `0..branches` to start polling from, uniform enough that no
    /// branch of a `select!` always comes first.
    pub fn select_start(branches: usize) -> usize {
        SELECT_RNG.with(|rng| {
            let mut x = rng.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            rng.set(x);
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % branches.max(1)
        })
    }
}

/// The body of `#[ringleader::main]`: builds the runtime the attribute configured and runs
/// `future` on it as [`run`] does (Ctrl-C included). Not public API.
#[doc(hidden)]
#[track_caller]
pub fn __main<F: Future>(builder: runtime::Builder, future: F) -> F::Output {
    let rt = builder
        .build()
        .expect("failed to build the ringleader runtime");
    run_root(rt, future)
}

/// Runs the program's root future on `rt`, with [`run`]'s Ctrl-C behaviour, then shuts
/// `rt` down.
fn run_root<F: Future>(rt: runtime::Runtime, future: F) -> F::Output {
    let Some(interrupt) = signal::RootInterrupt::arm() else {
        let out = rt.block_on(future);
        drop(rt);
        return out;
    };
    // The root may clean up for as long as it likes: a second Ctrl-C is the way out.
    let scope = taskgroup::CancelScope::new().with_grace_period(Duration::MAX);
    let watcher = {
        let scope = scope.clone();
        let first_sigint = interrupt.wait();
        rt.spawn(async move {
            first_sigint.await;
            scope.cancel(task::CancelReason::Signal);
        })
    };
    let out = rt.block_on(scope.run(future));
    watcher.abort();
    drop(rt);
    match out {
        Some(out) if !interrupt.interrupted() => {
            drop(interrupt);
            out
        }
        _ => interrupt.reraise(),
    }
}
