//! Task-local values: [`task_local!`](crate::task_local) and [`LocalKey`].
//!
//! A value is in scope for a future (and everything it awaits), not for a thread: a task
//! moves between workers, so a `thread_local!` would show it another task's value, or
//! none. [`LocalKey::scope`] wraps a future; each poll points the key's per-thread slot at
//! the value the wrapper owns, and points it back when the poll ends (also on a panic).
//! The slot holds only a pointer, so entering a nested scope never conflicts with a
//! reference handed out by [`LocalKey::with`], and a read costs one thread-local load.
//!
//! This is tokio's model: a value set around a piece of async code and read anywhere
//! inside it, borrowed (no `Clone` needed). A task spawned inside a scope does not inherit
//! the value; pass it on by wrapping the spawned future in its own `scope`. For asyncio's
//! `contextvars`, which every spawned task inherits, use
//! [`ContextVar`](crate::task::ContextVar).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// Declares task-local keys: `static`s of type [`LocalKey<T>`](LocalKey), each with a value
/// only inside a [`scope`](LocalKey::scope) or [`sync_scope`](LocalKey::sync_scope).
///
/// ```
/// ringleader_runtime::task_local! {
///     /// The id of the request being served.
///     static REQUEST_ID: u64;
/// }
///
/// async fn log(msg: &str) -> String {
///     format!("[{}] {msg}", REQUEST_ID.get())
/// }
///
/// let line = ringleader_runtime::run(REQUEST_ID.scope(7, async { log("hello").await }));
/// assert_eq!(line, "[7] hello");
/// assert!(REQUEST_ID.try_get().is_err()); // out of scope
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
        $crate::task_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
    };
}

/// One key of [`task_local!`]: its per-thread slot and the `static` around it.
#[doc(hidden)]
#[macro_export]
macro_rules! __task_local_key {
    ($(#[$attr:meta])* $vis:vis $name:ident, $t:ty) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = {
            ::std::thread_local! {
                static SLOT: ::std::cell::Cell<*const $t> =
                    const { ::std::cell::Cell::new(::std::ptr::null()) };
            }
            $crate::task::LocalKey::__new(&SLOT)
        };
    };
}

/// A task-local key, declared with [`task_local!`](crate::task_local).
///
/// Values are set for the duration of a future ([`scope`](Self::scope)) or of a closure
/// ([`sync_scope`](Self::sync_scope)) and read with [`with`](Self::with) or
/// [`get`](Self::get). Scopes nest: an inner scope hides the outer value until it ends.
/// The value is shared, never handed out mutably; put a `Cell` or a lock inside for state
/// that changes.
pub struct LocalKey<T: 'static> {
    slot: &'static std::thread::LocalKey<Cell<*const T>>,
}

/// Reading a [`LocalKey`] outside every scope of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessError {
    _private: (),
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task-local value read outside a scope that sets it")
    }
}

impl std::error::Error for AccessError {}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn __new(slot: &'static std::thread::LocalKey<Cell<*const T>>) -> LocalKey<T> {
        LocalKey { slot }
    }

    /// Runs `future` with this key set to `value`, in every poll and in its drop. The
    /// value is dropped after the future, once the returned future is dropped.
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture {
            key: self,
            value,
            future: Some(future),
            _pinned: PhantomPinned,
        }
    }

    /// Runs `f` with this key set to `value` (for synchronous code, and for tests).
    pub fn sync_scope<R>(&'static self, value: T, f: impl FnOnce() -> R) -> R {
        let _entered = self.enter(&value);
        f()
    }

    /// Points the slot at `value` until the guard drops (also when unwinding).
    fn enter<'a>(&'static self, value: &'a T) -> Entered<'a, T> {
        let previous = self.slot.with(|slot| slot.replace(value));
        Entered {
            key: self,
            previous,
            _value: std::marker::PhantomData,
        }
    }

    /// Calls `f` with the value in scope.
    ///
    /// # Errors
    /// [`AccessError`] outside every scope of this key.
    pub fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Result<R, AccessError> {
        let ptr = self.slot.try_with(Cell::get).unwrap_or(std::ptr::null());
        if ptr.is_null() {
            return Err(AccessError { _private: () });
        }
        // SAFETY: a non-null slot points at the value of the innermost scope entered on
        // this thread and not yet left. That scope's owner (a `TaskLocalFuture` being
        // polled or dropped, or a `sync_scope` frame) is below us on this stack and neither
        // moves (pinned, or a local) nor drops the value before its guard has restored
        // the slot; the value is never accessed mutably while in scope.
        Ok(f(unsafe { &*ptr }))
    }

    /// Calls `f` with the value in scope.
    ///
    /// # Panics
    /// Outside every scope of this key: reading a value nobody set is a bug in the caller
    /// (use [`try_with`](Self::try_with) where being out of scope is expected).
    #[track_caller]
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        match self.try_with(f) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// A copy of the value in scope.
    ///
    /// # Errors
    /// [`AccessError`] outside every scope of this key.
    pub fn try_get(&'static self) -> Result<T, AccessError>
    where
        T: Clone,
    {
        self.try_with(T::clone)
    }

    /// A copy of the value in scope.
    ///
    /// # Panics
    /// Outside every scope of this key, as [`with`](Self::with).
    #[track_caller]
    pub fn get(&'static self) -> T
    where
        T: Clone,
    {
        self.with(T::clone)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

/// Restores the slot to the enclosing scope's value.
struct Entered<'a, T: 'static> {
    key: &'static LocalKey<T>,
    previous: *const T,
    _value: std::marker::PhantomData<&'a T>,
}

impl<T: 'static> Drop for Entered<'_, T> {
    fn drop(&mut self) {
        // `try_with`: a scope left while the thread's locals are being destroyed has no
        // slot to restore.
        let _ = self.key.slot.try_with(|slot| slot.set(self.previous));
    }
}

pin_project! {
    /// A future run with a task-local value in scope: [`LocalKey::scope`].
    pub struct TaskLocalFuture<T: 'static, F> {
        key: &'static LocalKey<T>,
        // Lent to the slot during each poll: must not move, hence `_pinned`.
        value: T,
        #[pin]
        future: Option<F>,
        #[pin]
        _pinned: PhantomPinned,
    }

    impl<T: 'static, F> PinnedDrop for TaskLocalFuture<T, F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.future.is_some() {
                // The future's own drop may read the value (a guard that logs, say).
                let _entered = this.key.enter(this.value);
                this.future.set(None);
            }
        }
    }
}

impl<T: 'static, F> TaskLocalFuture<T, F> {
    /// The value this future runs with.
    pub fn value(&self) -> &T {
        &self.value
    }
}

impl<T: 'static, F: Future> Future for TaskLocalFuture<T, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.key.enter(this.value);
        match this.future.as_pin_mut() {
            Some(future) => future.poll(cx),
            // Only our drop empties it, and nothing polls a future being dropped.
            None => Poll::Pending,
        }
    }
}

impl<T: 'static + fmt::Debug, F> fmt::Debug for TaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLocalFuture")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}
