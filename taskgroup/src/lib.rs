//! Structured concurrency for ringleader: task groups, cancel scopes, deadlines, shields and
//! error groups.
//!
//! ```
//! use std::time::Duration;
//! use ringleader_taskgroup::{task_group, BoxError};
//!
//! let result = ringleader_runtime::run(async {
//!     task_group(|tg| async move {
//!         tg.spawn_named("fast", async { Ok::<_, BoxError>(1) })?;
//!         tg.spawn_named("slow", async {
//!             ringleader_runtime::time::sleep(Duration::from_secs(3600)).await;
//!             Ok::<_, BoxError>(())
//!         })?;
//!         // Spawned last: once a child has failed, the group refuses new children (as
//!         // asyncio's does), and a body that failed to spawn would fail the group too.
//!         tg.spawn_named("broken", async { Err::<(), BoxError>("disk full".into()) })?;
//!         Ok::<_, BoxError>(())
//!     })
//!     .await
//! });
//! // "broken" failed, so "slow" was cancelled at once; the group reports the failure.
//! let errors = result.unwrap_err();
//! assert_eq!(errors.len(), 1);
//! assert!(errors.to_string().contains("disk full"));
//! ```
//!
//! # The model
//! - **No task outlives its group.** [`task_group`] returns only when its body and every
//!   child have finished.
//! - **The first failure cancels the rest** (policy [`Policy::FailFast`], the default): an
//!   error or panic in a child or in the body cancels the siblings and the body.
//! - **Every failure comes back** in one [`ErrorGroup`], panics included; cancellations are
//!   never members.
//! - **Cancellation is drop, with a cooperative phase on top.** A cancelled group or scope
//!   first tells its code ([`cancelled()`] resolves, [`is_cancelled()`] is true), and when
//!   the grace period (default zero) runs out, drops its futures.
//! - **Scopes nest.** [`CancelScope`]s and groups form a tree; deadlines inherit (the
//!   earliest wins), shields stop outer cancellation, and an inner timeout never swallows an
//!   outer cancellation.
//!
//! # Why children are `Send + 'static`
//! A scope that lets children borrow from the caller's stack can have at most two of
//! concurrency, parallelism and borrowing: `mem::forget` on a half-polled scope future would
//! skip the destructor that waits for children, leaving parallel children with dangling
//! borrows. ringleader's groups run children in parallel on the work-stealing pool, so they
//! own their data. For children that borrow, [`scoped`] gives up parallelism instead: its
//! children run concurrently inside the caller's task (see its module docs).
//!
//! # Seeing the tree
//! [`dump_tree`] lists the runtime's tasks by group and scope, with names, spawn locations,
//! states, cancel reasons and deadlines, and prints as an indented tree.

#[macro_use]
mod loom;

mod combinators;
mod error;
mod group;
mod introspect;
mod scope;
mod scoped;

#[cfg(all(test, ringleader_loom))]
mod loom_models;

pub use combinators::{
    as_completed, fail_after, first_ok, gather, gather_settled, move_on_after, race, shield,
    timeout, timeout_at, wait, AsCompleted, Elapsed, ReturnWhen, Settled, Timeout,
};
pub use error::{
    BoxError, ChildError, ErrorGroup, Failure, FailureKind, GroupClosed, PanicPayload,
};
pub use group::{
    task_group, ChildHandle, ChildResult, GroupConfig, GroupFuture, Policy, Ready, TaskGroup,
};
pub use introspect::{dump_tree, dump_tree_of, TaskTree, TreeNode, TreeNodeKind, TreeNodeState};
pub use scope::{
    cancel_reason, cancelled, current_deadline, is_cancelled, CancelScope, Cancelled, ScopeFuture,
};
pub use scoped::{scoped, LocalGroup, LocalHandle, ScopedFuture, POLL_BUDGET};
