//! [`ErrorGroup`]: every failure of a task group, never only the first.

use std::any::Any;
use std::fmt;

use ringleader_runtime::task::{CancelReason, Id};

/// A boxed error, the error type children and bodies return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in one member of a group.
#[derive(Debug)]
#[non_exhaustive]
pub enum FailureKind {
    /// A child returned `Err`.
    Error(BoxError),
    /// A child panicked; the payload is kept (see [`Failure::resume_panic`]).
    Panic(PanicPayload),
    /// The group's body returned `Err`.
    Body(BoxError),
    /// The body panicked.
    BodyPanic(PanicPayload),
    /// A nested group failed.
    Group(ErrorGroup),
}

/// A caught panic's payload. Kept behind a lock so that an [`ErrorGroup`] is `Sync` and
/// can itself be a `BoxError` (nested groups).
pub struct PanicPayload(std::sync::Mutex<Box<dyn Any + Send + 'static>>);

impl PanicPayload {
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>) -> PanicPayload {
        PanicPayload(std::sync::Mutex::new(payload))
    }

    /// The payload, to re-raise with `std::panic::resume_unwind` or to inspect.
    pub fn into_inner(self) -> Box<dyn Any + Send + 'static> {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// The panic message, if the payload is a string.
    pub fn message(&self) -> Option<String> {
        let payload = self.0.lock().unwrap_or_else(|e| e.into_inner());
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PanicPayload({:?})", self.message())
    }
}

/// One failure: which task, and what.
#[derive(Debug)]
pub struct Failure {
    /// The failing child's task id (`None` for the body, and for a child of a
    /// [`scoped`](crate::scoped) group, which is not a task).
    pub task_id: Option<Id>,
    /// The failing child's name, if it had one (a `scoped` child always has one).
    pub name: Option<String>,
    /// What went wrong.
    pub kind: FailureKind,
}

impl Failure {
    /// Whether this failure is a panic (of a child or of the body).
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, FailureKind::Panic(_) | FailureKind::BodyPanic(_))
    }

    /// Re-raises a panic failure on this thread; returns the failure back otherwise.
    pub fn resume_panic(self) -> Failure {
        match self.kind {
            FailureKind::Panic(p) | FailureKind::BodyPanic(p) => {
                std::panic::resume_unwind(p.into_inner())
            }
            _ => self,
        }
    }

    /// The error, for `Error`, `Body` failures.
    pub fn error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &self.kind {
            FailureKind::Error(e) | FailureKind::Body(e) => Some(&**e),
            _ => None,
        }
    }

    /// Files an error as a failure: an [`ErrorGroup`] (a nested group failing) keeps its
    /// structure as [`FailureKind::Group`].
    pub(crate) fn kind_from_error(error: BoxError, body: bool) -> FailureKind {
        match error.downcast::<ErrorGroup>() {
            Ok(group) => FailureKind::Group(*group),
            Err(error) if body => FailureKind::Body(error),
            Err(error) => FailureKind::Error(error),
        }
    }

    fn label(&self) -> String {
        match (&self.task_id, &self.name) {
            (Some(id), Some(name)) => format!("task {id} ({name})"),
            (Some(id), None) => format!("task {id}"),
            (None, Some(name)) => format!("child ({name})"),
            (None, None) => "body".to_owned(),
        }
    }
}

/// Every failure of a task group (Python's `ExceptionGroup`), plus why the group was
/// cancelled if it was. A cancellation is never a member: a group cancelled with no failure
/// has no members and [`is_cancelled`](Self::is_cancelled) true.
#[derive(Debug, Default)]
pub struct ErrorGroup {
    failures: Vec<Failure>,
    cancelled: Option<CancelReason>,
}

impl ErrorGroup {
    pub(crate) fn new(failures: Vec<Failure>, cancelled: Option<CancelReason>) -> ErrorGroup {
        ErrorGroup {
            failures,
            cancelled,
        }
    }

    /// The direct members.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// The direct members, owned.
    pub fn into_failures(self) -> Vec<Failure> {
        self.failures
    }

    /// Number of direct members.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// No member failed (the group was only cancelled).
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }

    /// Why the group was cancelled, if it was.
    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        self.cancelled.as_ref()
    }

    /// The group was cancelled and nothing in it failed.
    pub fn is_cancelled(&self) -> bool {
        self.failures.is_empty() && self.cancelled.is_some()
    }

    /// Every leaf failure, nested groups flattened, depth first.
    pub fn iter_flat(&self) -> impl Iterator<Item = &Failure> + '_ {
        let mut stack: Vec<std::slice::Iter<'_, Failure>> = vec![self.failures.iter()];
        std::iter::from_fn(move || loop {
            let top = stack.last_mut()?;
            match top.next() {
                None => {
                    stack.pop();
                }
                Some(Failure {
                    kind: FailureKind::Group(inner),
                    ..
                }) => stack.push(inner.failures.iter()),
                Some(leaf) => return Some(leaf),
            }
        })
    }

    /// Splits by a predicate on leaf failures (Python's `ExceptionGroup.split`): the
    /// matching part and the rest, each keeping the nesting, `None` where empty.
    pub fn split(
        self,
        pred: &mut dyn FnMut(&Failure) -> bool,
    ) -> (Option<ErrorGroup>, Option<ErrorGroup>) {
        let mut matched = Vec::new();
        let mut rest = Vec::new();
        for failure in self.failures {
            match failure.kind {
                FailureKind::Group(inner) => {
                    let (m, r) = inner.split(pred);
                    if let Some(m) = m {
                        matched.push(Failure {
                            task_id: failure.task_id,
                            name: failure.name.clone(),
                            kind: FailureKind::Group(m),
                        });
                    }
                    if let Some(r) = r {
                        rest.push(Failure {
                            task_id: failure.task_id,
                            name: failure.name,
                            kind: FailureKind::Group(r),
                        });
                    }
                }
                _ if pred(&failure) => matched.push(failure),
                _ => rest.push(failure),
            }
        }
        let wrap = |f: Vec<Failure>, c: Option<CancelReason>| {
            (!f.is_empty()).then(|| ErrorGroup::new(f, c))
        };
        (
            wrap(matched, self.cancelled.clone()),
            wrap(rest, self.cancelled),
        )
    }

    /// The part whose leaf failures match `pred` (Python's `ExceptionGroup.subgroup`).
    pub fn subgroup(self, pred: &mut dyn FnMut(&Failure) -> bool) -> Option<ErrorGroup> {
        self.split(pred).0
    }

    /// Splits by error type: failures whose error downcasts to `E`, and the rest.
    pub fn split_by_type<E: std::error::Error + 'static>(
        self,
    ) -> (Option<ErrorGroup>, Option<ErrorGroup>) {
        self.split(&mut |f| f.error().is_some_and(|e| e.is::<E>()))
    }

    fn fmt_tree(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let pad = "  ".repeat(depth);
        for failure in &self.failures {
            let label = failure.label();
            match &failure.kind {
                FailureKind::Error(e) => writeln!(f, "{pad}- {label}: error: {e}")?,
                FailureKind::Body(e) => writeln!(f, "{pad}- {label}: error: {e}")?,
                FailureKind::Panic(p) | FailureKind::BodyPanic(p) => {
                    let msg = p
                        .message()
                        .unwrap_or_else(|| "non-string panic payload".into());
                    writeln!(f, "{pad}- {label}: panic: {msg}")?
                }
                FailureKind::Group(inner) => {
                    writeln!(f, "{pad}- {label}: group of {}:", inner.len())?;
                    inner.fmt_tree(f, depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for ErrorGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.cancelled, self.failures.len()) {
            (Some(reason), 0) => write!(f, "task group cancelled: {reason}"),
            (_, n) => {
                writeln!(
                    f,
                    "task group failed ({n} failure{}):",
                    if n == 1 { "" } else { "s" }
                )?;
                self.fmt_tree(f, 1)
            }
        }
    }
}

impl std::error::Error for ErrorGroup {}

/// Returned when spawning into a group that no longer accepts children (it finished, or
/// it is shutting down after a cancellation), as asyncio's `RuntimeError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupClosed;

impl fmt::Display for GroupClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the task group is closed or shutting down and accepts no new tasks")
    }
}

impl std::error::Error for GroupClosed {}

/// Why awaiting one child gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildError {
    /// The child failed (returned `Err` or panicked); the failure itself is in the group's
    /// [`ErrorGroup`].
    Failed,
    /// The child was cancelled.
    Cancelled(CancelReason),
    /// The group accepted no new child ([`GroupClosed`]).
    Closed,
    /// A child started with `TaskGroup::start` finished without calling `started`.
    NeverStarted,
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::Failed => {
                f.write_str("the child task failed (see the group's error group)")
            }
            ChildError::Cancelled(reason) => write!(f, "the child task was cancelled: {reason}"),
            ChildError::Closed => GroupClosed.fmt(f),
            ChildError::NeverStarted => {
                f.write_str("the child finished without signalling that it started")
            }
        }
    }
}

impl std::error::Error for ChildError {}
