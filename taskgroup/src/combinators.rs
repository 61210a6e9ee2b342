//! asyncio's combinators, built on task groups and scopes.
//!
//! | ringleader | asyncio | difference |
//! |---|---|---|
//! | [`gather`] | `gather(*aws)` | fail-fast: the first failure cancels the others (asyncio lets them run) and every failure is reported, not only the first |
//! | [`gather_settled`] | `gather(*aws, return_exceptions=True)` | the same: nothing is cancelled; each slot holds its value or its failure |
//! | [`wait`] | `wait(tasks, return_when=..., timeout=...)` | the same: never cancels; returns the finished and the pending handles; `FirstException` means a panic (a returned `Err` is a value) |
//! | [`as_completed`] | `as_completed(aws)` | a `Stream` of outputs in completion order |
//! | [`race`] | — (`wait(FIRST_COMPLETED)` + cancel) | the first to finish wins, success or failure; the rest are cancelled and awaited |
//! | [`first_ok`] | — (Java's any-successful) | the first success wins; fails only when all fail |
//! | [`timeout`], [`timeout_at`] | `wait_for`, `timeout()` | `Err(Elapsed)` and the future dropped; an outer cancellation is never turned into `Elapsed` |
//! | [`move_on_after`], [`fail_after`] | Trio's | `None` / `Err(Elapsed)` on the scope's own deadline |
//! | [`shield`] | `shield(aw)` | the shielded future runs in a task of its own, outside the caller's scope; cancelling the caller does not stop it |

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use ringleader_runtime::task::{CancelReason, JoinError, JoinHandle, TaskOutcome};
use ringleader_runtime::time::Instant;

use crate::error::{BoxError, ChildError, ErrorGroup};
use crate::group::{task_group, ChildResult, GroupConfig, Policy};
use crate::scope::{run_private, CancelScope, ScopeFuture};

/// Runs every future as a child of a fail-fast group and returns their values in order.
///
/// The futures share one type and run as tasks (on any worker). For a few futures of
/// different types polled on the calling task, the `ringleader` crate has `join!` and
/// `try_join!`.
///
/// # Errors
/// An [`ErrorGroup`] with every failure if any future fails (returns `Err` or panics); the
/// others are cancelled at the first failure.
pub async fn gather<I, F, T>(futures: I) -> Result<Vec<T>, ErrorGroup>
where
    I: IntoIterator<Item = F>,
    F: Future + Send + 'static,
    F::Output: ChildResult<Value = T>,
    T: Send + 'static,
{
    let futures: Vec<F> = futures.into_iter().collect();
    task_group(|tg| async move {
        let mut handles = Vec::with_capacity(futures.len());
        for f in futures {
            handles.push(tg.spawn(f)?);
        }
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await?);
        }
        Ok::<_, BoxError>(out)
    })
    .await
}

/// How one future of [`gather_settled`] ended without a value.
#[derive(Debug)]
#[non_exhaustive]
pub enum Settled {
    /// It returned this error.
    Error(BoxError),
    /// It panicked.
    Panicked,
    /// It was cancelled.
    Cancelled(CancelReason),
}

/// Runs every future to the end, cancelling nothing, and returns each outcome in order
/// (asyncio's `gather(..., return_exceptions=True)`).
///
/// An enclosing scope's cancellation stops the futures at once (they do not run out the
/// enclosing grace period, unlike the children of a nested [`task_group`]); if this call is
/// still polled meanwhile (during that grace period), the ones it stopped come back as
/// [`Settled::Cancelled`] with its reason.
pub async fn gather_settled<I, F, T>(futures: I) -> Vec<Result<T, Settled>>
where
    I: IntoIterator<Item = F>,
    F: Future + Send + 'static,
    F::Output: ChildResult<Value = T>,
    T: Send + 'static,
{
    let futures: Vec<F> = futures.into_iter().collect();
    // The handles are kept outside the body: if an enclosing cancellation stops the group
    // while this future is still polled (an enclosing grace period), the body is dropped,
    // and the children's handles still tell each slot's outcome (cancelled ones included).
    let handles = Arc::new(Mutex::new(Vec::with_capacity(futures.len())));
    let spawned = handles.clone();
    let result = GroupConfig::new()
        .policy(Policy::AllSettled)
        // An explicit zero: on an enclosing cancellation the futures are stopped at once
        // instead of running out the enclosing grace period with the rest of the code
        // inside it (the default for nested groups), so that this call can still hand
        // back every outcome within that grace period.
        .grace_period(Duration::ZERO)
        .run(|tg| async move {
            let mut spawned = spawned.lock().unwrap_or_else(|e| e.into_inner());
            for f in futures {
                let child = async move { Ok::<_, BoxError>(f.await.into_result()) };
                // A group cancelled before it started refuses children: their slots are
                // cancelled.
                spawned.push(tg.spawn(child).map_err(|_| crate::scope::cancel_reason()));
            }
            Ok::<_, BoxError>(())
        })
        .await;
    // Only the body can fail an all-settled group, and ours does not.
    debug_assert!(
        result.as_ref().err().is_none_or(|e| e.is_empty()),
        "gather_settled's group failed: {result:?}"
    );
    let handles = std::mem::take(&mut *handles.lock().unwrap_or_else(|e| e.into_inner()));
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        // The group has ended, so every child has: these do not wait.
        out.push(match h {
            Ok(h) => match h.await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(Settled::Error(e)),
                Err(ChildError::Cancelled(r)) => Err(Settled::Cancelled(r)),
                Err(_) => Err(Settled::Panicked),
            },
            Err(reason) => Err(Settled::Cancelled(reason.unwrap_or(CancelReason::Aborted))),
        });
    }
    out
}

/// When [`wait`] returns (asyncio's `return_when`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any handle finishes.
    FirstCompleted,
    /// As soon as any handle's task panics (asyncio: raises), or when all finish. A task
    /// that was cancelled does not count, as in asyncio, where a cancelled task's
    /// exception is not looked at; a task that returns `Err` returned a value.
    FirstException,
    /// When all finish.
    AllCompleted,
}

struct WaitShared {
    outcomes: Mutex<(Vec<Option<TaskOutcome>>, Option<Waker>)>,
}

/// Waits for tasks without cancelling any (asyncio's `wait`): returns `(done, pending)`,
/// each in the order given. With a timeout, returns what is done when it runs out.
pub async fn wait<T: Send + 'static>(
    handles: Vec<JoinHandle<T>>,
    when: ReturnWhen,
    timeout: Option<Duration>,
) -> (Vec<JoinHandle<T>>, Vec<JoinHandle<T>>) {
    let shared = Arc::new(WaitShared {
        outcomes: Mutex::new((vec![None; handles.len()], None)),
    });
    for (i, h) in handles.iter().enumerate() {
        // Already finished: recorded now (a done callback added now would only be
        // scheduled, and a zero timeout must still see the task done).
        if let Some(outcome) = h.outcome() {
            shared.outcomes.lock().unwrap_or_else(|e| e.into_inner()).0[i] = Some(outcome);
            continue;
        }
        let shared = shared.clone();
        h.add_done_callback(move |outcome| {
            let waker = {
                let mut g = shared.outcomes.lock().unwrap_or_else(|e| e.into_inner());
                g.0[i] = Some(outcome);
                g.1.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
    }
    let ready = std::future::poll_fn(|cx| {
        let mut g = shared.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        let done = g.0.iter().filter(|o| o.is_some()).count();
        let failed = g.0.iter().any(|o| matches!(o, Some(TaskOutcome::Panicked)));
        let finished = match when {
            ReturnWhen::FirstCompleted => done > 0 || handles.is_empty(),
            ReturnWhen::FirstException => failed || done == g.0.len(),
            ReturnWhen::AllCompleted => done == g.0.len(),
        };
        if finished {
            Poll::Ready(())
        } else {
            g.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    });
    match timeout {
        Some(d) => {
            let _ = ringleader_runtime::time::timeout(d, ready).await;
        }
        None => ready.await,
    }
    let outcomes = shared
        .outcomes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .0
        .clone();
    let mut done = Vec::new();
    let mut pending = Vec::new();
    for (h, o) in handles.into_iter().zip(outcomes) {
        if o.is_some() {
            done.push(h);
        } else {
            pending.push(h);
        }
    }
    (done, pending)
}

/// The outputs of tasks in the order they finish (asyncio's `as_completed`), as a `Stream`.
pub fn as_completed<T: Send + 'static>(handles: Vec<JoinHandle<T>>) -> AsCompleted<T> {
    let shared = Arc::new(Mutex::new((
        std::collections::VecDeque::new(),
        None::<Waker>,
    )));
    for (i, h) in handles.iter().enumerate() {
        // Already finished: first in line, in the order given.
        if h.is_finished() {
            shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .push_back(i);
            continue;
        }
        let shared = shared.clone();
        h.add_done_callback(move |_| {
            let waker = {
                let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
                g.0.push_back(i);
                g.1.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
    }
    AsCompleted {
        handles: handles.into_iter().map(Some).collect(),
        order: shared,
        current: None,
        remaining: 0,
    }
    .init()
}

type CompletionOrder = Arc<Mutex<(std::collections::VecDeque<usize>, Option<Waker>)>>;

/// The stream returned by [`as_completed`].
pub struct AsCompleted<T> {
    handles: Vec<Option<JoinHandle<T>>>,
    order: CompletionOrder,
    current: Option<JoinHandle<T>>,
    remaining: usize,
}

impl<T> AsCompleted<T> {
    fn init(mut self) -> Self {
        self.remaining = self.handles.len();
        self
    }
}

impl<T> Unpin for AsCompleted<T> {}

impl<T> Stream for AsCompleted<T> {
    type Item = Result<T, JoinError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(current) = self.current.as_mut() {
                let out = std::task::ready!(Pin::new(current).poll(cx));
                self.current = None;
                self.remaining -= 1;
                return Poll::Ready(Some(out));
            }
            if self.remaining == 0 {
                return Poll::Ready(None);
            }
            let next = {
                let mut g = self.order.lock().unwrap_or_else(|e| e.into_inner());
                match g.0.pop_front() {
                    Some(i) => i,
                    None => {
                        g.1 = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            };
            self.current = self.handles[next].take();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// Runs the futures concurrently; the first to finish, success or failure, gives the
/// result and the others are cancelled (and awaited before this returns).
///
/// For futures of different types polled on the calling task, with a handler per
/// branch, the `ringleader` crate has `select!`.
///
/// # Errors
/// The winner's error, or an [`ErrorGroup`] if it panicked.
pub async fn race<I, F, T>(futures: I) -> Result<T, ErrorGroup>
where
    I: IntoIterator<Item = F>,
    F: Future + Send + 'static,
    F::Output: ChildResult<Value = T>,
    T: Send + 'static,
{
    let futures: Vec<F> = futures.into_iter().collect();
    let slot: Arc<Mutex<Option<Result<_, BoxError>>>> = Arc::new(Mutex::new(None));
    let result = task_group(|tg| {
        let slot = slot.clone();
        async move {
            for f in futures {
                let slot = slot.clone();
                let group = tg.clone();
                tg.spawn(async move {
                    let out = f.await.into_result();
                    let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
                    if s.is_none() {
                        *s = Some(out);
                        group.cancel(CancelReason::explicit("race won"));
                    }
                })?;
            }
            Ok::<_, BoxError>(())
        }
    })
    .await;
    let winner = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    match (winner, result) {
        (Some(Ok(v)), _) => Ok(v),
        (Some(Err(e)), _) => Err(ErrorGroup::new(
            vec![crate::error::Failure {
                task_id: None,
                name: None,
                kind: crate::error::FailureKind::Error(e),
            }],
            None,
        )),
        (None, Err(group)) => Err(group),
        (None, Ok(())) => Err(ErrorGroup::new(
            Vec::new(),
            Some(CancelReason::explicit("race of no futures")),
        )),
    }
}

/// Runs the futures concurrently; the first success wins and the others are cancelled.
///
/// # Errors
/// An [`ErrorGroup`] with every failure if none succeeds.
pub async fn first_ok<I, F, T>(futures: I) -> Result<T, ErrorGroup>
where
    I: IntoIterator<Item = F>,
    F: Future + Send + 'static,
    F::Output: ChildResult<Value = T>,
    T: Send + 'static,
{
    let futures: Vec<F> = futures.into_iter().collect();
    let slot = Arc::new(Mutex::new(None));
    let s2 = slot.clone();
    let result = GroupConfig::new()
        .policy(Policy::FirstOk)
        .run(|tg| async move {
            for f in futures {
                let slot = s2.clone();
                tg.spawn(async move {
                    let v = f.await.into_result()?;
                    let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
                    if s.is_none() {
                        *s = Some(v);
                    }
                    Ok::<_, BoxError>(())
                })?;
            }
            Ok::<_, BoxError>(())
        })
        .await;
    let winner = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    match (winner, result) {
        (Some(v), _) => Ok(v),
        (None, Err(group)) => Err(group),
        (None, Ok(())) => Err(ErrorGroup::new(
            Vec::new(),
            Some(CancelReason::explicit("no future succeeded")),
        )),
    }
}

/// A timeout ran out (asyncio's `TimeoutError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `future` with a deadline `d` from now, in a cancel scope: `Err(Elapsed)` (and the
/// future dropped) if the deadline passes first (asyncio's `wait_for` / `timeout()`).
///
/// Only this scope's own deadline becomes `Elapsed`: if an enclosing scope is cancelled at
/// the same time, the enclosing scope's cancellation wins (CPython #116720).
///
/// The deadline is fixed when the returned future is first polled (entering the scope).
///
/// # Cancel safety
/// Dropping the returned future drops `future`.
#[track_caller]
pub fn timeout<F: Future>(d: Duration, future: F) -> Timeout<F> {
    Timeout {
        scope: run_private(Some(d), None, future),
    }
}

/// [`timeout`] with an absolute deadline.
#[track_caller]
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        scope: run_private(None, Some(deadline), future),
    }
}

/// Trio's `move_on_after`: `None` if the deadline passes first.
#[track_caller]
pub fn move_on_after<F: Future>(d: Duration, future: F) -> ScopeFuture<F> {
    run_private(Some(d), None, future)
}

/// Trio's `fail_after`: the same as [`timeout`].
#[track_caller]
pub fn fail_after<F: Future>(d: Duration, future: F) -> Timeout<F> {
    timeout(d, future)
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`], [`timeout_at`] and [`fail_after`]: a private cancel scope
    /// whose deadline becomes [`Elapsed`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Timeout<F> {
        #[pin]
        scope: ScopeFuture<F>,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().scope.poll(cx).map(|out| out.ok_or(Elapsed))
    }
}

impl<F> std::fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout").finish_non_exhaustive()
    }
}

/// Runs `future` to completion even if the caller's scope is cancelled (asyncio's
/// `shield`). It runs in a task of its own inside a shielded scope; if the caller is
/// cancelled, the task keeps running to the end.
///
/// # Errors
/// The task's [`JoinError`] if it panicked.
pub async fn shield<F>(future: F) -> Result<F::Output, JoinError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let scope = CancelScope::new().shielded();
    let handle = ringleader_runtime::spawn(async move { scope.run(future).await });
    match handle.await {
        Ok(Some(v)) => Ok(v),
        Ok(None) => unreachable!("a shielded scope with no deadline is never cancelled"),
        Err(e) => Err(e),
    }
}
