//! Context variables: asyncio's `contextvars`, inherited by every task spawned.
//!
//! Each task carries a *context*: the values its [`ContextVar`]s hold. A spawned task
//! (including tasks of a task group, `spawn_blocking` closures, `call_soon` callbacks and
//! [`LocalSet`](super::LocalSet) tasks)
//! starts with a copy of the context of the code that spawned it, as asyncio's
//! `create_task` and Trio's `start_soon` copy `contextvars.copy_context()`. Setting a
//! variable then changes only the setter's own context: the parent does not see a child's
//! changes, and a child does not see the parent's later ones. Code outside every task (a
//! `block_on` root future, a plain thread) has one context per thread.
//!
//! # Design
//! A context is an immutable list of `(variable, value)` pairs behind an `Arc`. Spawning
//! clones the `Arc` (nothing at all when no variable was ever set); a `set` builds a new
//! list (copy on write), so a snapshot held by a child never changes under it. A task's
//! context lives in its header and is touched only by the thread polling the task, found
//! through the same thread-local "current task" that [`id`](super::id) reads. The lists
//! are short (the variables one task has set), so lookups scan them.
//!
//! # Compared with `task_local!`
//! [`task_local!`](crate::task_local) values are scoped to one future (tokio's model) and
//! are not inherited; they can be borrowed, need not be `Clone`, and cost nothing to spawn.
//! Context variables follow asyncio: set anywhere in a task, read by everything it spawns.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use pin_project_lite::pin_project;

use super::id;
use super::Id;

/// A task's context: the values set, by variable address.
pub(crate) struct ContextMap {
    values: Vec<(usize, Arc<dyn Any + Send + Sync>)>,
}

/// A context as a task holds it: `None` until some variable is set.
pub(crate) type Snapshot = Option<Arc<ContextMap>>;

impl ContextMap {
    fn value(&self, var: usize) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.values.iter().find(|(v, _)| *v == var).map(|(_, x)| x)
    }

    /// A copy of `base` with `var` holding `value` (or unset if `None`).
    fn with_value(
        base: Option<&ContextMap>,
        var: usize,
        value: Option<Arc<dyn Any + Send + Sync>>,
    ) -> Snapshot {
        let mut values: Vec<_> = base
            .map(|m| {
                m.values
                    .iter()
                    .filter(|(v, _)| *v != var)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(value) = value {
            values.push((var, value));
        }
        (!values.is_empty()).then(|| Arc::new(ContextMap { values }))
    }
}

rl_thread_local! {
    /// The context of code running outside every task on this thread.
    static THREAD_CONTEXT: RefCell<Snapshot> = const { RefCell::new(None) };
}

/// Runs `f` on the current context's slot: the polled task's, else this thread's. `f` must
/// run no user code (no value's `clone` or `drop`): it may not re-enter.
fn with_slot<R>(f: impl FnOnce(&mut Snapshot) -> R) -> R {
    id::with_current(|task| match task {
        Some(header) => header.with_context(f),
        None => THREAD_CONTEXT.with(|c| f(&mut c.borrow_mut())),
    })
}

/// The current context, for a task about to be spawned (or a callback about to be queued).
pub(crate) fn snapshot() -> Snapshot {
    // A thread being torn down has no context left to give.
    id::with_current(|task| match task {
        Some(header) => header.with_context(|slot| slot.clone()),
        None => THREAD_CONTEXT
            .try_with(|c| c.borrow().clone())
            .ok()
            .flatten(),
    })
}

/// Runs `f` in `context` (a callback queued with `call_soon`), then restores the context
/// that was current, also if `f` panics.
pub(crate) fn run_in<R>(context: Snapshot, f: impl FnOnce() -> R) -> R {
    let mut context = context;
    run_in_own(&mut context, f)
}

/// Runs `f` in `*context` (the context of something that is polled inside another task,
/// such as a `LocalSet`'s task), then stores the context as `f` left it back into
/// `*context` and restores the one that was current, also if `f` panics.
pub(crate) fn run_in_own<R>(context: &mut Snapshot, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        own: &'a mut Snapshot,
        previous: Snapshot,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            *self.own = with_slot(|slot| std::mem::replace(slot, previous));
        }
    }
    let previous = with_slot(|slot| std::mem::replace(slot, context.take()));
    let _restore = Restore {
        own: context,
        previous,
    };
    f()
}

pin_project! {
    /// A future that runs (is polled and dropped) in a context of its own: a `LocalSet`'s
    /// task, which the scheduler does not know as a task.
    pub(crate) struct InContext<F> {
        context: Snapshot,
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for InContext<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut future = this.future;
            // The future's drop may read its variables too.
            run_in_own(this.context, || future.set(None));
        }
    }
}

impl<F> InContext<F> {
    /// `future`, to run in a copy of the current context.
    pub(crate) fn new(future: F) -> InContext<F> {
        InContext {
            context: snapshot(),
            future: Some(future),
        }
    }
}

impl<F: Future> Future for InContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let future = this.future;
        run_in_own(this.context, || match future.as_pin_mut() {
            Some(future) => future.poll(cx),
            // Only after the drop above, which nothing polls.
            None => Poll::Pending,
        })
    }
}

/// Who set a variable: a task, or code outside tasks on a thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setter {
    Task(Id),
    Thread(std::thread::ThreadId),
}

fn current_setter() -> Setter {
    match super::try_id() {
        Some(id) => Setter::Task(id),
        None => Setter::Thread(std::thread::current().id()),
    }
}

/// A context variable (asyncio's `contextvars.ContextVar`): a value per task, inherited by
/// every task spawned from it. Declare it as a `static`.
///
/// ```
/// use ringleader_runtime::task::ContextVar;
///
/// static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id");
///
/// # ringleader_runtime::run(async {
/// REQUEST_ID.set(7);
/// let child = ringleader_runtime::spawn(async {
///     let inherited = REQUEST_ID.get();
///     REQUEST_ID.set(8); // the child's own copy
///     inherited
/// });
/// assert_eq!(child.await.unwrap(), Some(7));
/// assert_eq!(REQUEST_ID.get(), Some(7)); // the parent's value is unchanged
/// # });
/// ```
///
/// A value is shared by every task that inherited it (read through [`with`](Self::with) or
/// cloned by [`get`](Self::get)), so it is `Send + Sync`; wrap a large value in an `Arc` to
/// keep `get` cheap.
pub struct ContextVar<T: 'static> {
    name: &'static str,
    default: Option<T>,
}

impl<T: 'static> ContextVar<T> {
    /// A variable with no default: [`get`](Self::get) gives `None` where it was never set.
    pub const fn new(name: &'static str) -> ContextVar<T> {
        ContextVar {
            name,
            default: None,
        }
    }

    /// A variable whose [`get`](Self::get) gives `default` where it was never set.
    pub const fn with_default(name: &'static str, default: T) -> ContextVar<T> {
        ContextVar {
            name,
            default: Some(default),
        }
    }

    /// The name given at creation (for debugging).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The variable's key in contexts: its address, which a `'static` item keeps forever.
    fn key(&'static self) -> usize {
        self as *const ContextVar<T> as usize
    }
}

impl<T: Send + Sync + 'static> ContextVar<T> {
    /// Runs `f` with the current value (the default if never set here, `None` if there is
    /// no default), without cloning it.
    pub fn with<R>(&'static self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let context = snapshot();
        let set = context
            .as_deref()
            .and_then(|m| m.value(self.key()))
            .and_then(|v| v.downcast_ref::<T>());
        f(set.or(self.default.as_ref()))
    }

    /// Sets the variable in the current context (the current task's, or this thread's
    /// outside tasks). Tasks spawned from now on inherit the value; tasks already spawned
    /// keep theirs. The token restores the previous value through [`reset`](Self::reset).
    pub fn set(&'static self, value: T) -> ContextToken<T> {
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        let key = self.key();
        let (previous, old_context) = with_slot(|slot| {
            let previous = slot.as_deref().and_then(|m| m.value(key)).cloned();
            let new = ContextMap::with_value(slot.as_deref(), key, Some(value));
            (previous, std::mem::replace(slot, new))
        });
        // Values the old context held are dropped here, outside the slot access.
        drop(old_context);
        ContextToken {
            var: key,
            previous,
            setter: current_setter(),
            _value: PhantomData,
        }
    }

    /// Restores the value the variable had before the [`set`](Self::set) that gave `token`
    /// (unset, if it had none), as asyncio's `ContextVar.reset`.
    ///
    /// # Errors
    /// [`ResetError`] if `token` came from another variable, or from a `set` made in another
    /// context (another task, or another thread outside tasks); nothing changes then.
    pub fn reset(&'static self, token: ContextToken<T>) -> Result<(), ResetError> {
        if token.var != self.key() || token.setter != current_setter() {
            return Err(ResetError { var: self.name });
        }
        let key = self.key();
        let old_context = with_slot(|slot| {
            let new = ContextMap::with_value(slot.as_deref(), key, token.previous);
            std::mem::replace(slot, new)
        });
        drop(old_context);
        Ok(())
    }
}

impl<T: Clone + Send + Sync + 'static> ContextVar<T> {
    /// A clone of the current value: the value set in this context or inherited, else the
    /// default, else `None`.
    pub fn get(&'static self) -> Option<T> {
        self.with(|v| v.cloned())
    }
}

impl<T: 'static> fmt::Debug for ContextVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextVar")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What [`ContextVar::set`] gives: restores the previous value through
/// [`ContextVar::reset`] (asyncio's `contextvars.Token`). Dropping it keeps the value set.
pub struct ContextToken<T> {
    var: usize,
    previous: Option<Arc<dyn Any + Send + Sync>>,
    setter: Setter,
    _value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ContextToken<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextToken")
            .field("had_value", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

/// [`ContextVar::reset`] was given a token made by another variable or in another context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetError {
    var: &'static str,
}

impl fmt::Display for ResetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "context variable {:?}: the token was created by another variable or in another \
             context (another task, or another thread)",
            self.var
        )
    }
}

impl std::error::Error for ResetError {}
