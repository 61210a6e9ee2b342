//! Why a task or scope was cancelled.

use std::fmt;
use std::sync::Arc;

/// Why a task or a cancel scope was cancelled; carried by [`JoinError`](super::JoinError)
/// and by ringleader's cancel scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelReason {
    /// `abort()` on the task's handle.
    Aborted,
    /// A sibling in the same task group failed (fail-fast).
    SiblingFailed,
    /// A deadline or timeout ran out.
    Deadline,
    /// Cancelled explicitly, with a message (asyncio's `cancel(msg)`, Trio's
    /// `cancel(reason)`).
    Explicit(Arc<str>),
    /// An enclosing scope or group was cancelled for the reason inside.
    ParentCancelled(Arc<CancelReason>),
    /// The runtime shut down.
    Shutdown,
    /// A signal (Ctrl-C) cancelled the root.
    Signal,
}

impl CancelReason {
    /// An explicit cancellation with a message.
    pub fn explicit(message: impl Into<Arc<str>>) -> CancelReason {
        CancelReason::Explicit(message.into())
    }

    /// The innermost cause: follows `ParentCancelled` links.
    pub fn root_cause(&self) -> &CancelReason {
        match self {
            CancelReason::ParentCancelled(inner) => inner.root_cause(),
            other => other,
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelReason::Aborted => f.write_str("aborted"),
            CancelReason::SiblingFailed => f.write_str("a sibling task failed"),
            CancelReason::Deadline => f.write_str("deadline exceeded"),
            CancelReason::Explicit(msg) => write!(f, "cancelled: {msg}"),
            CancelReason::ParentCancelled(inner) => {
                write!(f, "enclosing scope cancelled ({inner})")
            }
            CancelReason::Shutdown => f.write_str("runtime shut down"),
            CancelReason::Signal => f.write_str("interrupted by a signal"),
        }
    }
}
