//! `#[ringleader::main]` and `#[ringleader::test]`: an `async fn` as a program's entry point
//! or as a test, on a ringleader runtime built for it.
//!
//! Use them through the `ringleader` crate (`#[ringleader::main]`), not from here: the
//! expansion names the runtime as `::ringleader::runtime::Builder`, so a crate only needs
//! `ringleader` among its dependencies. A crate that renamed it says so with
//! `crate = "name"`.
//!
//! Both attributes turn
//!
//! ```
//! #[ringleader::main(flavor = "current_thread")]
//! async fn main() {
//!     println!("hello");
//! }
//! ```
//!
//! into (roughly)
//!
//! ```
//! fn main() {
//!     async fn main() {
//!         println!("hello");
//!     }
//!     ringleader::runtime::Builder::new_current_thread()
//!         .build()
//!         .expect("failed to build the ringleader runtime")
//!         .block_on(main())
//! }
//! ```
//!
//! so the body is an ordinary `async fn` body: `return`, `?` and the return type behave as
//! written. The runtime is dropped when the function returns, which cancels every task still
//! alive, as [`ringleader::run`](https://docs.rs/ringleader) does. (`main` goes through
//! `ringleader::__main`, which also gives it `run`'s Ctrl-C handling.)
//!
//! # Options
//!
//! | option | values | default for `main` | default for `test` |
//! |---|---|---|---|
//! | `flavor` | `"multi_thread"`, `"current_thread"` | `"multi_thread"` | `"current_thread"` |
//! | `worker_threads` | an integer ≥ 1 (multi-thread only; implies it when `flavor` is not given) | one per CPU | one per CPU |
//! | `start_paused` | `true`, `false` | `false` | `false` |
//! | `debug` | `true`, `false` | the `RINGLEADER_DEBUG` environment variable | the same |
//! | `crate` | the path of the `ringleader` crate, as a string | `"::ringleader"` | the same |
//!
//! Each option maps to the `runtime::Builder` method of the same name; an option not given
//! leaves the builder's default.
//!
//! # Errors at compile time
//!
//! Each misuse is reported at the tokens at fault: a function that is not `async`, that takes
//! arguments, is generic, `const`, `unsafe` or `extern`; an unknown option, a repeated one, a
//! value of the wrong type, `worker_threads = 0`, `worker_threads` with
//! `flavor = "current_thread"`; and, for `test`, a second `#[test]` on the same function.
//! The crate's `tests/ui/` holds one case of each with the message it gives.
#![doc(test(attr(deny(warnings))))]
// The examples are about `main`: they show it, expanded or beside a renamed entry point.
#![allow(clippy::needless_doctest_main)]

use proc_macro::TokenStream;

mod entry;
mod select;

/// Runs an `async fn` on a new ringleader runtime: `async fn main()` as a program's entry
/// point.
///
/// The function becomes a synchronous one of the same name, signature and attributes that
/// builds a runtime (multi-thread, one worker per CPU, unless options say otherwise), blocks
/// the calling thread on the body, returns its output and then shuts the runtime down,
/// cancelling every task still alive (asyncio's `asyncio.run(main())`). Ctrl-C is handled as
/// `ringleader::run` handles it: on the main thread, the first SIGINT cancels the body
/// cooperatively (`ringleader::cancelled()` resolves in it, with reason `Signal`), the
/// process then exits as killed by SIGINT once the body has finished, and a second SIGINT
/// ends it at once.
///
/// ```
/// use std::time::Duration;
///
/// #[ringleader::main]
/// async fn main() {
///     let task = ringleader::spawn(async { 6 * 7 });
///     ringleader::time::sleep(Duration::from_millis(1)).await;
///     assert_eq!(task.await.unwrap(), 42);
/// }
/// ```
///
/// `main` may return anything `fn main` may, such as a `Result`, and use `?`:
///
/// ```
/// #[ringleader::main(worker_threads = 2)]
/// async fn main() -> Result<(), std::num::ParseIntError> {
///     let n: u64 = "41".parse()?;
///     let next = ringleader::spawn(async move { n + 1 }).await.unwrap();
///     assert_eq!(next, 42);
///     Ok(())
/// }
/// ```
///
/// The function may have any name; it is still an ordinary function, callable (from outside
/// any runtime) like the one it replaced:
///
/// ```
/// #[ringleader::main(flavor = "current_thread", start_paused = true)]
/// async fn simulate() -> u64 {
///     ringleader::time::sleep(std::time::Duration::from_secs(60)).await; // instant
///     60
/// }
///
/// fn main() {
///     assert_eq!(simulate(), 60);
/// }
/// ```
///
/// # Options
///
/// - `flavor = "multi_thread"` (default) or `"current_thread"`: the latter runs every task on
///   the thread that called the function.
/// - `worker_threads = N`: worker threads of the multi-thread flavour (default: one per CPU);
///   given alone it implies `flavor = "multi_thread"`, and it is an error with
///   `"current_thread"`.
/// - `start_paused = true`: the runtime's clock starts paused, and jumps to the next timer
///   whenever every task waits (virtual time).
/// - `debug = true | false`: asyncio's debug mode (slow polls are logged); default: the
///   `RINGLEADER_DEBUG` environment variable.
/// - `crate = "path"`: where to find the `ringleader` crate if it was renamed in
///   `Cargo.toml` (default `::ringleader`).
///
/// # Panics
///
/// The generated function panics with "failed to build the ringleader runtime" (and the
/// I/O error) if the runtime cannot start, for instance when the OS refuses a thread; and
/// like `Runtime::block_on`, if it is called from inside a ringleader task.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` as a test, on a runtime of its own.
///
/// The function becomes a `#[test]` that builds a runtime, blocks on the body and shuts the
/// runtime down; it takes the same options as [`macro@main`]. `#[should_panic]`,
/// `#[ignore]` and a `Result<(), E>` return type work as on any test.
///
/// **The default is a current-thread runtime**: the test's own thread runs every task, so
///
/// - a test that spawns nothing pays for no thread, and the test harness's parallelism is not
///   multiplied by a worker pool per test;
/// - the order in which tasks run is the same on every run, and with `start_paused = true`
///   so is every timer, which makes failures reproducible;
/// - thread-locals set by the test (a `tracing` subscriber, say) are seen by its tasks, and a
///   panic in the body fails the test on its own thread.
///
/// Ask for `flavor = "multi_thread"` (or simply `worker_threads = N`) to test behaviour across
/// threads: work stealing, `Send` bounds, blocking.
///
/// Write it path-qualified, `#[ringleader::test]`: `use ringleader::test;` would shadow the
/// built-in `#[test]` in that module. Put no second `#[test]` on the function (one written
/// after this attribute is reported as an error).
///
/// ```
/// #[ringleader::test]
/// async fn spawned_tasks_run_on_the_test_thread() {
///     let here = std::thread::current().id();
///     let there = ringleader::spawn(async { std::thread::current().id() }).await.unwrap();
///     assert_eq!(here, there);
/// }
///
/// #[ringleader::test(worker_threads = 2)]
/// async fn two_workers() {
///     let workers = ringleader::runtime::Handle::current().metrics().num_workers();
///     assert_eq!(workers, 2);
/// }
///
/// #[ringleader::test(start_paused = true)]
/// async fn an_hour_passes_at_once() {
///     let start = ringleader::time::Instant::now();
///     ringleader::time::sleep(std::time::Duration::from_secs(3600)).await;
///     assert!(start.elapsed().as_secs() >= 3600);
/// }
///
/// #[ringleader::test]
/// async fn may_return_a_result() -> Result<(), std::num::ParseIntError> {
///     assert_eq!("42".parse::<u32>()?, 42);
///     Ok(())
/// }
///
/// #[ringleader::test]
/// #[should_panic(expected = "boom")]
/// async fn may_panic() {
///     ringleader::task::yield_now().await;
///     panic!("boom");
/// }
/// # fn main() {}
/// ```
///
/// # Panics
///
/// As for [`macro@main`]: if the runtime cannot start.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Test, args.into(), item.into()).into()
}

/// The expansion of `ringleader::join!` (input: `<crate path> ; <futures>`). Use the
/// facade's macro, not this.
#[doc(hidden)]
#[proc_macro]
pub fn join_impl(input: TokenStream) -> TokenStream {
    select::join(input.into(), false).into()
}

/// The expansion of `ringleader::try_join!`. Use the facade's macro, not this.
#[doc(hidden)]
#[proc_macro]
pub fn try_join_impl(input: TokenStream) -> TokenStream {
    select::join(input.into(), true).into()
}

/// The expansion of `ringleader::select!`. Use the facade's macro, not this.
#[doc(hidden)]
#[proc_macro]
pub fn select_impl(input: TokenStream) -> TokenStream {
    select::select(input.into()).into()
}
