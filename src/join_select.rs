//! `join!`, `try_join!` and `select!`: several futures of different types, polled together
//! on the calling task.
//!
//! The macros forward to the proc macros of `ringleader-macros` with `$crate` in front, so
//! they work under a renamed dependency; the expansions call the helpers of
//! [`__private`](crate::__private).

/// Waits for every future at once, on the calling task, and returns their outputs as a
/// tuple in the order written: asyncio's `await asyncio.gather(a(), b())` for futures of
/// different types.
///
/// The futures run concurrently but not in parallel: they share the calling task, so they
/// need neither `Send` nor `'static`, and nothing is spawned. To run them on several
/// workers at once, spawn them into a [`task_group`](crate::task_group) (or use
/// [`taskgroup::gather`](crate::taskgroup::gather) when they have one type). Each future
/// is dropped as soon as it finishes; each poll starts one future further on, so that
/// none is always polled last.
///
/// ```
/// use std::time::Duration;
/// use ringleader::time::sleep;
///
/// # ringleader::run(async {
/// let (name, answer) = ringleader::join!(
///     async {
///         sleep(Duration::from_millis(20)).await;
///         "deep thought"
///     },
///     async {
///         sleep(Duration::from_millis(20)).await;
///         42
///     },
/// );
/// assert_eq!((name, answer), ("deep thought", 42));
/// # });
/// ```
///
/// A panic in one future unwinds through the calling task, dropping the others.
#[macro_export]
macro_rules! join {
    ($($input:tt)*) => {
        $crate::__private::join_impl! { $crate; $($input)* }
    };
}

/// Waits for every future at once, on the calling task, until all return `Ok` or the first
/// returns `Err`: then the others are dropped (cancelled) at once and the error is returned.
///
/// Every future's output is a `Result` with the same error type; the macro's value is
/// `Result<(T1, T2, …), E>`. Like [`join!`], the futures share the calling task. For
/// every error rather than the first, and for children on several workers, use a
/// [`task_group`](crate::task_group), whose [`ErrorGroup`](crate::taskgroup::ErrorGroup)
/// collects them all.
///
/// ```
/// use std::io;
///
/// async fn port() -> io::Result<u16> {
///     Ok(8080)
/// }
/// async fn host() -> io::Result<String> {
///     Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
/// }
///
/// # ringleader::run(async {
/// let both = ringleader::try_join!(port(), host());
/// assert_eq!(both.unwrap_err().kind(), io::ErrorKind::NotFound);
/// # });
/// ```
#[macro_export]
macro_rules! try_join {
    ($($input:tt)*) => {
        $crate::__private::try_join_impl! { $crate; $($input)* }
    };
}

/// Waits for the first of several futures to finish, runs that branch's handler and drops
/// (cancels) the others: asyncio's `asyncio.wait(..., return_when=FIRST_COMPLETED)`
/// followed by cancelling the rest, for futures of different types.
///
/// ```text
/// select! {
///     [biased;]
///     <pattern> = <future> [, if <precondition>] => <handler>,
///     …
///     [else => <handler>,]
/// }
/// ```
///
/// 1. Every precondition is evaluated, in order; a branch whose precondition is false is
///    disabled for this call.
/// 2. Every future expression is evaluated, in order, disabled branches' included (their
///    futures are never polled).
/// 3. The enabled futures are polled on the calling task, starting from a random branch on
///    each poll (so that no branch always wins when several are ready), or in the order
///    written after `biased;`.
/// 4. When one finishes, its output is matched against its branch's pattern. If it matches,
///    the other futures are dropped and the branch's handler runs with the pattern's
///    bindings; the handler's value is the macro's. If it does not, that branch is disabled
///    and the others go on.
/// 5. If every branch is disabled, the `else` handler runs; without one, the macro panics.
///
/// Handlers are ordinary code of the enclosing function: `break`, `continue`, `return` and
/// `?` in a handler act on the loop or function around the macro. Patterns bind by value
/// (`ref` is refused); a bare name that starts with an upper-case letter, as `None`, is
/// read as a constant or unit variant, not a binding.
///
/// A deadline kept across the turns of a loop, and a branch that ends it:
///
/// ```
/// use std::time::Duration;
/// use ringleader::sync::mpsc;
/// use ringleader::time::sleep;
///
/// # ringleader::run(async {
/// let (tx, mut rx) = mpsc::channel::<u32>(8);
/// drop(ringleader::spawn(async move {
///     for n in 1..=3 {
///         tx.send(n).await.unwrap();
///     }
/// }));
/// let mut sum = 0;
/// let mut deadline = std::pin::pin!(sleep(Duration::from_secs(5)));
/// loop {
///     ringleader::select! {
///         message = rx.recv() => match message {
///             Some(n) => sum += n,
///             None => break, // every sender is gone
///         },
///         // `&mut` polls the same deadline on every turn.
///         _ = &mut deadline => panic!("timed out"),
///     }
/// }
/// assert_eq!(sum, 6);
/// # });
/// ```
///
/// Patterns that refuse an output, and `else` once every branch has been refused:
///
/// ```
/// use ringleader::sync::mpsc;
///
/// # ringleader::run(async {
/// let (odd_tx, mut odd) = mpsc::unbounded_channel();
/// let (even_tx, mut even) = mpsc::unbounded_channel();
/// for n in 1..=4 {
///     if n % 2 == 1 { odd_tx.send(n).unwrap() } else { even_tx.send(n).unwrap() }
/// }
/// drop((odd_tx, even_tx));
/// let mut seen = Vec::new();
/// loop {
///     ringleader::select! {
///         Some(n) = odd.recv() => seen.push(n),
///         Some(n) = even.recv() => seen.push(n),
///         else => break, // both channels gave `None`
///     }
/// }
/// seen.sort();
/// assert_eq!(seen, [1, 2, 3, 4]);
/// # });
/// ```
///
/// # Cancel safety
/// The futures that lose are dropped. Whatever a dropped future had not finished is lost,
/// as when any ringleader future is dropped: see each operation's `# Cancel safety`. (I/O
/// on owned buffers never lets the kernel write into a dropped buffer, but a read that
/// completed as it was dropped may have consumed data.) In a loop, keep a future whose
/// progress matters across turns, as `deadline` above, and select on `&mut` it.
///
/// # Panics
/// If every branch is disabled and there is no `else` branch.
#[macro_export]
macro_rules! select {
    ($($input:tt)*) => {
        $crate::__private::select_impl! { $crate; $($input)* }
    };
}
