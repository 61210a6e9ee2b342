//! `Mutex<T>`: asyncio's `Lock` with the data inside, handed off in FIFO order.
//!
//! # Protocol
//!
//! A `Mutex<T>` is a [`Semaphore`] of one permit plus the data in a `crate::loom::UnsafeCell`.
//! Holding the permit is holding the lock; a guard owns the permit and gives it back when
//! dropped. Because the semaphore is strictly FIFO, the unlock of a contended mutex hands the
//! lock straight to the first queued waiter (it is never "free" in between), and an
//! uncontended `lock` takes a free lock directly without queueing: the bounded-unfairness
//! fast path never barges past a queued waiter. A cancelled waiter that had already been
//! handed the lock passes it on (the semaphore's cancel path).
//!
//! The semaphore is never closed, so an acquire never fails.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::loom::UnsafeCell;
use crate::semaphore::{Semaphore, TryAcquireError};

/// An async mutual-exclusion lock protecting a `T` (asyncio's `Lock`).
///
/// `Mutex<T>` is `Sync` when `T: Send`; a `T` that cannot move between threads keeps it
/// `!Sync`:
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<ringleader_sync::Mutex<std::rc::Rc<u8>>>();
/// ```
///
/// Waiters get the lock strictly in the order they started waiting; an uncontended `lock`
/// takes it without queueing.
///
/// ```
/// use ringleader_sync::Mutex;
///
/// let m = Mutex::new(0);
/// futures::executor::block_on(async {
///     *m.lock().await += 1;
///     let g = m.lock().await;
///     assert!(m.try_lock().is_err());
///     assert_eq!(*g, 1);
/// });
/// ```
pub struct Mutex<T> {
    sem: Semaphore,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `T` only through guards, one at a time (the single
// semaphore permit), so sharing a `Mutex<T>` only ever moves `T` between threads: `T: Send`
// suffices, as for `std::sync::Mutex`.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            sem: Semaphore::new(1),
            data: UnsafeCell::new(value),
        }
    }

    /// An unlocked mutex usable in `static`s. Not available under `--cfg ringleader_loom`.
    #[cfg(not(ringleader_loom))]
    pub const fn const_new(value: T) -> Mutex<T> {
        Mutex {
            sem: Semaphore::const_new(1),
            data: UnsafeCell::new(value),
        }
    }

    /// Waits for the lock.
    ///
    /// # Cancel safety
    /// Cancel safe and fair: dropping the future gives up its place in the queue, and a lock
    /// that had already been handed to it passes to the next waiter.
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        match self.sem.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => unreachable!("a mutex's semaphore is never closed"),
        }
        MutexGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    /// [`lock`](Mutex::lock) on an `Arc`, giving a guard that owns its `Arc` (`'static`).
    ///
    /// # Cancel safety
    /// Cancel safe, as [`lock`](Mutex::lock).
    pub async fn lock_owned(self: Arc<Self>) -> OwnedMutexGuard<T> {
        match self.sem.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => unreachable!("a mutex's semaphore is never closed"),
        }
        OwnedMutexGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    /// Takes the lock if it is free and nobody is queued for it.
    ///
    /// # Errors
    /// [`TryLockError`] if the lock is held or waited for.
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        self.try_take()?;
        Ok(MutexGuard {
            lock: self,
            _marker: PhantomData,
        })
    }

    /// [`try_lock`](Mutex::try_lock) on an `Arc`.
    ///
    /// # Errors
    /// [`TryLockError`] if the lock is held or waited for.
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError> {
        self.try_take()?;
        Ok(OwnedMutexGuard {
            lock: self,
            _marker: PhantomData,
        })
    }

    fn try_take(&self) -> Result<(), TryLockError> {
        match self.sem.try_acquire() {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(TryLockError(())),
        }
    }

    /// Locks from synchronous code, blocking the calling thread until the lock is handed to
    /// it (in FIFO order with async waiters).
    ///
    /// Blocking a runtime worker thread stalls every task on it, and deadlocks if the holder
    /// of the lock runs on that worker: call it from plain threads or blocking-pool closures.
    pub fn blocking_lock(&self) -> MutexGuard<'_, T> {
        crate::waitlist::block_on(self.lock())
    }

    /// Whether the lock is held (or handed to a waiter).
    pub fn is_locked(&self) -> bool {
        self.sem.available_permits() == 0
    }

    /// The data, through a unique borrow: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` proves no guard exists (guards borrow or own the mutex), so
        // this is the only access.
        self.data.with_mut(|p| unsafe { &mut *p })
    }

    /// The data, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    fn unlock(&self) {
        self.sem.give_back(1);
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(g) => d.field("data", &&*g),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Access to the data of a locked [`Mutex`]; dropping it unlocks (handing the lock to the
/// next waiter, if any).
///
/// The guard is `Send` when `T: Send` and `Sync` only when `T` is `Send + Sync` too (it
/// derefs to `&T`):
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<ringleader_sync::MutexGuard<'static, std::cell::Cell<u8>>>();
/// ```
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
    /// Makes the guard `Sync` only when `T: Sync` (it derefs to `&T`).
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T> MutexGuard<'a, T> {
    /// The mutex this guard locks (for [`Condition`](crate::Condition), or to lock again
    /// later).
    pub fn mutex(this: &Self) -> &'a Mutex<T> {
        this.lock
    }

    /// Narrows the guard to a part of the data; the lock stays held until the returned
    /// guard is dropped.
    ///
    /// # Panics
    /// If `f` panics, the lock is released and the panic goes on.
    ///
    /// ```
    /// use ringleader_sync::{MutexGuard, Mutex};
    ///
    /// let m = Mutex::new((1, String::from("a")));
    /// let mut s = MutexGuard::map(m.try_lock().unwrap(), |pair| &mut pair.1);
    /// s.push('b');
    /// assert!(m.try_lock().is_err());
    /// drop(s);
    /// assert_eq!(m.try_lock().unwrap().1, "ab");
    /// ```
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> MappedMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let lock: &'a Mutex<T> = this.lock;
        // The permit moves from `this` to the mapped guard (or, if `f` panics, to `unlock`).
        std::mem::forget(this);
        let unlock = Unlock(&lock.sem);
        // SAFETY: the lock's only permit is held until the mapped guard (or `unlock`, if `f`
        // panics) is dropped. The `&'a mut T` lives only inside `f` and, narrowed, inside that
        // guard, whose `Deref` lends it for no longer than the guard itself: no access to the
        // data outlives the permit, and no other guard exists meanwhile.
        let data: &'a mut T = lock.data.with_mut(|p| unsafe { &mut *p });
        let data = f(data);
        std::mem::forget(unlock);
        MappedMutexGuard {
            sem: &lock.sem,
            data,
        }
    }
}

/// Releases a mutex's permit on drop (a panicking `map` closure).
struct Unlock<'a>(&'a Semaphore);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        self.0.give_back(1);
    }
}

/// A [`MutexGuard`] narrowed by [`MutexGuard::map`] to a part of the data; dropping it
/// unlocks the mutex.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct MappedMutexGuard<'a, U: ?Sized> {
    sem: &'a Semaphore,
    data: &'a mut U,
}

impl<U: ?Sized> Deref for MappedMutexGuard<'_, U> {
    type Target = U;
    fn deref(&self) -> &U {
        self.data
    }
}

impl<U: ?Sized> DerefMut for MappedMutexGuard<'_, U> {
    fn deref_mut(&mut self) -> &mut U {
        self.data
    }
}

impl<U: ?Sized> Drop for MappedMutexGuard<'_, U> {
    fn drop(&mut self) {
        self.sem.give_back(1);
    }
}

impl<U: ?Sized + fmt::Debug> fmt::Debug for MappedMutexGuard<'_, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.data, f)
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the mutex's only permit, so no other guard exists and
        // nobody writes the data while this shared borrow lives.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds the mutex's only permit and is borrowed uniquely, so this
        // is the only access to the data while the borrow lives.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A guard of an `Arc<Mutex<T>>` from [`Mutex::lock_owned`]; `'static` if `T` is.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct OwnedMutexGuard<T> {
    lock: Arc<Mutex<T>>,
    /// Makes the guard `Sync` only when `T: Sync` (it derefs to `&T`).
    _marker: PhantomData<T>,
}

impl<T> OwnedMutexGuard<T> {
    /// The mutex this guard locks.
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.lock
    }
}

impl<T> Deref for OwnedMutexGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: as for `MutexGuard::deref`: this guard holds the only permit.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T> DerefMut for OwnedMutexGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `MutexGuard::deref_mut`: the only permit, uniquely borrowed.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T> Drop for OwnedMutexGuard<T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: fmt::Debug> fmt::Debug for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A `try_lock` ([`Mutex::try_lock`], [`RwLock::try_read`](crate::RwLock::try_read),
/// [`RwLock::try_write`](crate::RwLock::try_write)) failed: the lock is held, or waited for,
/// in a conflicting mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryLockError(());

impl TryLockError {
    pub(crate) fn new() -> TryLockError {
        TryLockError(())
    }
}

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("lock is held or waited for")
    }
}

impl std::error::Error for TryLockError {}
