//! `RwLock<T>`: many readers or one writer, FIFO, so writers never starve.
//!
//! # Protocol
//!
//! As tokio's `RwLock`: a [`Semaphore`] of [`MAX_READS`] permits and the data in a
//! `crate::loom::UnsafeCell`. A reader holds one permit, a writer all of them. The semaphore
//! is strictly FIFO and a queued request at its head blocks everyone behind it, so a writer
//! waiting for readers to leave stops new readers from joining (writer preference without
//! writer starvation), and the readers queued behind a writer get in together once it
//! leaves. Cancellation goes through the semaphore's cancel path: whatever a cancelled
//! writer had collected goes to the next waiter.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::loom::UnsafeCell;
use crate::mutex::TryLockError;
use crate::semaphore::Semaphore;

/// Readers that may hold the lock at once; a writer takes this many permits.
const MAX_READS: usize = Semaphore::MAX_PERMITS;

/// An async reader-writer lock protecting a `T`.
///
/// Requests are served in arrival order: a waiting writer holds back readers that came after
/// it, so writers never starve, and readers that arrive together share the lock.
///
/// ```
/// use ringleader_sync::RwLock;
///
/// let lock = RwLock::new(5);
/// futures::executor::block_on(async {
///     {
///         let r1 = lock.read().await;
///         let r2 = lock.read().await;
///         assert_eq!(*r1 + *r2, 10);
///         assert!(lock.try_write().is_err());
///     }
///     *lock.write().await += 1;
///     assert_eq!(*lock.read().await, 6);
/// });
/// ```
pub struct RwLock<T> {
    sem: Semaphore,
    data: UnsafeCell<T>,
}

// SAFETY: readers on several threads share `&T` (needs `T: Sync`), a writer on any thread gets
// `&mut T` (needs `T: Send`); the semaphore keeps writers exclusive.
unsafe impl<T: Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub fn new(value: T) -> RwLock<T> {
        RwLock {
            sem: Semaphore::new(MAX_READS),
            data: UnsafeCell::new(value),
        }
    }

    /// An unlocked lock usable in `static`s. Not available under `--cfg ringleader_loom`.
    #[cfg(not(ringleader_loom))]
    pub const fn const_new(value: T) -> RwLock<T> {
        RwLock {
            sem: Semaphore::const_new(MAX_READS),
            data: UnsafeCell::new(value),
        }
    }

    /// Waits for shared read access, behind every request queued before it.
    ///
    /// # Cancel safety
    /// Cancel safe and fair: dropping the future gives up its place in the queue.
    pub async fn read(&self) -> RwLockReadGuard<'_, T> {
        self.acquire(1).await;
        RwLockReadGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    /// Waits for exclusive write access, behind every request queued before it; readers
    /// arriving after it wait for it.
    ///
    /// # Cancel safety
    /// Cancel safe and fair: dropping the future gives up its place in the queue and hands
    /// whatever share of the lock it had collected to the next waiter.
    pub async fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.acquire(MAX_READS).await;
        RwLockWriteGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    /// [`read`](RwLock::read) on an `Arc`, giving a `'static` guard.
    ///
    /// # Cancel safety
    /// As [`read`](RwLock::read).
    pub async fn read_owned(self: Arc<Self>) -> OwnedRwLockReadGuard<T> {
        self.acquire(1).await;
        OwnedRwLockReadGuard { lock: self }
    }

    /// [`write`](RwLock::write) on an `Arc`, giving a `'static` guard.
    ///
    /// # Cancel safety
    /// As [`write`](RwLock::write).
    pub async fn write_owned(self: Arc<Self>) -> OwnedRwLockWriteGuard<T> {
        self.acquire(MAX_READS).await;
        OwnedRwLockWriteGuard { lock: self }
    }

    /// Takes read access if no writer holds or waits for the lock.
    ///
    /// # Errors
    /// [`TryLockError`] otherwise.
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        self.try_take(1)?;
        Ok(RwLockReadGuard {
            lock: self,
            _marker: PhantomData,
        })
    }

    /// Takes write access if the lock is free and nobody waits.
    ///
    /// # Errors
    /// [`TryLockError`] otherwise.
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        self.try_take(MAX_READS)?;
        Ok(RwLockWriteGuard {
            lock: self,
            _marker: PhantomData,
        })
    }

    /// Read access from synchronous code, blocking the thread (see
    /// [`Mutex::blocking_lock`](crate::Mutex::blocking_lock) for the caveats).
    pub fn blocking_read(&self) -> RwLockReadGuard<'_, T> {
        crate::waitlist::block_on(self.read())
    }

    /// Write access from synchronous code, blocking the thread (see
    /// [`Mutex::blocking_lock`](crate::Mutex::blocking_lock) for the caveats).
    pub fn blocking_write(&self) -> RwLockWriteGuard<'_, T> {
        crate::waitlist::block_on(self.write())
    }

    /// The data, through a unique borrow: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` proves no guard exists, so this is the only access.
        self.data.with_mut(|p| unsafe { &mut *p })
    }

    /// The data, consuming the lock.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    async fn acquire(&self, n: usize) {
        match self.sem.acquire_many(n).await {
            Ok(permit) => permit.forget(),
            Err(_) => unreachable!("an rwlock's semaphore is never closed"),
        }
    }

    fn try_take(&self, n: usize) -> Result<(), TryLockError> {
        match self.sem.try_acquire_many(n) {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(_) => Err(TryLockError::new()),
        }
    }

    fn read_ref(&self) -> &T {
        // SAFETY: called only by guards, which hold at least one permit; writers need all of
        // them, so nobody writes while a guard lives and this borrow is tied to the guard.
        self.data.with(|p| unsafe { &*p })
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(g) => d.field("data", &&*g),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Shared access to the data of an [`RwLock`]; dropping it releases the read lock.
#[must_use = "dropping the guard releases the read lock at once"]
pub struct RwLockReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    _marker: PhantomData<&'a T>,
}

impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.lock.read_ref()
    }
}

impl<T> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.give_back(1);
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access to the data of an [`RwLock`]; dropping it releases the write lock.
#[must_use = "dropping the guard releases the write lock at once"]
pub struct RwLockWriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    _marker: PhantomData<&'a mut T>,
}

impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.lock.read_ref()
    }
}

impl<T> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds every permit and is borrowed uniquely: the only access.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.give_back(MAX_READS);
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Shared access through an `Arc<RwLock<T>>`, from [`RwLock::read_owned`].
#[must_use = "dropping the guard releases the read lock at once"]
pub struct OwnedRwLockReadGuard<T> {
    /// `Send` and `Sync` exactly when `T: Send + Sync`, through the `Arc`.
    lock: Arc<RwLock<T>>,
}

impl<T> Deref for OwnedRwLockReadGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.lock.read_ref()
    }
}

impl<T> Drop for OwnedRwLockReadGuard<T> {
    fn drop(&mut self) {
        self.lock.sem.give_back(1);
    }
}

impl<T: fmt::Debug> fmt::Debug for OwnedRwLockReadGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access through an `Arc<RwLock<T>>`, from [`RwLock::write_owned`].
#[must_use = "dropping the guard releases the write lock at once"]
pub struct OwnedRwLockWriteGuard<T> {
    /// `Send` and `Sync` exactly when `T: Send + Sync`, through the `Arc`.
    lock: Arc<RwLock<T>>,
}

impl<T> Deref for OwnedRwLockWriteGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.lock.read_ref()
    }
}

impl<T> DerefMut for OwnedRwLockWriteGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds every permit and is borrowed uniquely: the only access.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T> Drop for OwnedRwLockWriteGuard<T> {
    fn drop(&mut self) {
        self.lock.sem.give_back(MAX_READS);
    }
}

impl<T: fmt::Debug> fmt::Debug for OwnedRwLockWriteGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
