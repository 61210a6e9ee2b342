//! `OnceCell<T>`: a value initialised once, by an async initializer, at most one at a time.
//!
//! # Protocol
//!
//! - `value`: a `crate::loom::UnsafeCell<Option<T>>`, written once, by the holder of the
//!   semaphore's single permit, while `set` is false; never written again through `&self`.
//! - `set`: an `AtomicBool`, stored `true` (Release) after the write; readers load it with
//!   Acquire before reading `value`, so they see the whole write.
//! - `init`: a [`Semaphore`] of one permit that initializers queue on (FIFO). After the value
//!   is stored the semaphore is closed, which releases every queued initializer with an
//!   error meaning "someone else initialised it": they return the stored value.
//!
//! A cancelled initializer drops its permit, and the next queued one gets to try.

use std::fmt;
use std::future::Future;

use crate::loom::{AtomicBool, Ordering, UnsafeCell};
use crate::semaphore::{Semaphore, SemaphorePermit};

/// A cell written at most once, whose initialisation may be async (tokio's `OnceCell`).
///
/// Concurrent [`get_or_init`](OnceCell::get_or_init) calls run one initializer at a time, in
/// arrival order, until one succeeds; the rest then return its value.
///
/// ```
/// use ringleader_sync::OnceCell;
///
/// let cell = OnceCell::new();
/// futures::executor::block_on(async {
///     let v = cell.get_or_init(|| async { 42 }).await;
///     assert_eq!(*v, 42);
///     // Already set: the initializer does not run.
///     assert_eq!(*cell.get_or_init(|| async { 0 }).await, 42);
/// });
/// assert_eq!(cell.get(), Some(&42));
/// ```
pub struct OnceCell<T> {
    set: AtomicBool,
    value: UnsafeCell<Option<T>>,
    init: Semaphore,
}

// SAFETY: `&OnceCell<T>` hands out `&T` on any thread (needs `T: Sync`) and lets any thread
// store a `T` that another thread later drops or takes (needs `T: Send`). The write happens
// once, under the permit, before `set` is published (see the module protocol).
unsafe impl<T: Send + Sync> Sync for OnceCell<T> {}

impl<T> OnceCell<T> {
    /// An empty cell.
    pub fn new() -> OnceCell<T> {
        OnceCell {
            set: AtomicBool::new(false),
            value: UnsafeCell::new(None),
            init: Semaphore::new(1),
        }
    }

    /// An empty cell usable in `static`s. Not available under `--cfg ringleader_loom`.
    #[cfg(not(ringleader_loom))]
    pub const fn const_new() -> OnceCell<T> {
        OnceCell {
            set: AtomicBool::new(false),
            value: UnsafeCell::new(None),
            init: Semaphore::const_new(1),
        }
    }

    /// A cell holding `value` if it is `Some`, empty otherwise.
    pub fn new_with(value: Option<T>) -> OnceCell<T> {
        let cell = OnceCell::new();
        if let Some(v) = value {
            // A fresh cell: nobody else holds the permit, so `set` cannot fail.
            let _ = cell.set(v);
        }
        cell
    }

    /// Whether the value is set.
    pub fn initialized(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// The value, if set.
    pub fn get(&self) -> Option<&T> {
        if !self.initialized() {
            return None;
        }
        // SAFETY: `set` is true (loaded with Acquire, pairing with the Release store that
        // followed the only write), and the value is never written again through `&self`,
        // so a shared borrow for as long as `&self` lives is sound.
        self.value.with(|p| unsafe { (*p).as_ref() })
    }

    /// The value, mutably, if set.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        // SAFETY: `&mut self` is unique: nobody else reads or writes the cell.
        self.value.with_mut(|p| unsafe { (*p).as_mut() })
    }

    /// Stores `value` if the cell is empty and nobody is initialising it.
    ///
    /// # Errors
    /// [`SetError::AlreadyInitialized`] or [`SetError::Initializing`], giving `value` back.
    pub fn set(&self, value: T) -> Result<(), SetError<T>> {
        if self.initialized() {
            return Err(SetError::AlreadyInitialized(value));
        }
        match self.init.try_acquire() {
            Ok(permit) => {
                if self.initialized() {
                    return Err(SetError::AlreadyInitialized(value));
                }
                self.store(permit, value);
                Ok(())
            }
            Err(_) if self.initialized() => Err(SetError::AlreadyInitialized(value)),
            Err(_) => Err(SetError::Initializing(value)),
        }
    }

    /// The value, running `f` to produce it if the cell is empty. Initializers run one at a
    /// time in arrival order; if one is cancelled, the next waiting caller runs its own.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future while it waits leaves the queue; dropping it while
    /// its initializer runs drops that initializer and lets the next caller try.
    pub async fn get_or_init<F, Fut>(&self, f: F) -> &T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        match self
            .get_or_try_init(|| async { Ok::<T, std::convert::Infallible>(f().await) })
            .await
        {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// As [`get_or_init`](OnceCell::get_or_init) with a fallible initializer.
    ///
    /// # Errors
    /// The initializer's error; the cell stays empty and the next waiting caller tries.
    ///
    /// # Cancel safety
    /// As [`get_or_init`](OnceCell::get_or_init).
    pub async fn get_or_try_init<E, F, Fut>(&self, f: F) -> Result<&T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(v) = self.get() {
            return Ok(v);
        }
        match self.init.acquire().await {
            Ok(permit) => {
                if let Some(v) = self.get() {
                    return Ok(v);
                }
                let value = f().await?;
                Ok(self.store(permit, value))
            }
            // Closed: only after the value was stored.
            Err(_) => match self.get() {
                Some(v) => Ok(v),
                None => unreachable!("the init semaphore closes only after the value is set"),
            },
        }
    }

    fn store(&self, permit: SemaphorePermit<'_>, value: T) -> &T {
        // SAFETY: we hold the only permit and `set` is false, so nobody reads or writes the
        // value now (readers wait for `set`).
        self.value.with_mut(|p| unsafe { *p = Some(value) });
        self.set.store(true, Ordering::Release);
        // Release every queued initializer: they will find the value.
        self.init.close();
        permit.forget();
        match self.get() {
            Some(v) => v,
            None => unreachable!("just stored"),
        }
    }

    /// The value, consuming the cell.
    pub fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        std::mem::take(self).into_inner()
    }
}

impl<T> Default for OnceCell<T> {
    fn default() -> Self {
        OnceCell::new()
    }
}

impl<T> From<T> for OnceCell<T> {
    fn from(value: T) -> Self {
        OnceCell::new_with(Some(value))
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceCell")
            .field("value", &self.get())
            .finish()
    }
}

impl<T: Clone> Clone for OnceCell<T> {
    fn clone(&self) -> Self {
        OnceCell::new_with(self.get().cloned())
    }
}

/// Why [`OnceCell::set`] failed; both variants give the value back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError<T> {
    /// The cell already holds a value.
    AlreadyInitialized(T),
    /// Another caller is initialising the cell right now.
    Initializing(T),
}

impl<T> SetError<T> {
    /// The value that was not stored.
    pub fn into_inner(self) -> T {
        match self {
            SetError::AlreadyInitialized(v) | SetError::Initializing(v) => v,
        }
    }
}

impl<T> fmt::Display for SetError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetError::AlreadyInitialized(_) => f.write_str("cell already initialized"),
            SetError::Initializing(_) => f.write_str("cell is being initialized"),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for SetError<T> {}
