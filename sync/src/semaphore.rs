//! A strictly FIFO counting semaphore, with asyncio's `BoundedSemaphore` as a mode.
//!
//! # Protocol
//!
//! `state` is an `AtomicUsize` packing `permits << 2 | WAITERS | CLOSED`; the waiter list and
//! the bounded mode's count of forgotten permits sit in a `crate::loom::Mutex<Inner>`.
//!
//! - `permits`: available permits. **Invariant: while `WAITERS` is set, `permits == 0`.**
//! - `WAITERS`: the waiter list may be non-empty. Set and cleared only under the lock. A
//!   queueing acquirer sets it with a compare-exchange that also takes every available
//!   permit as a partial grant (so the word goes to `0 | WAITERS`); it is cleared, together
//!   with adding the surplus, by the lock holder that leaves the list empty.
//! - `CLOSED`: set once by [`Semaphore::close`], under the lock.
//!
//! Fast paths (no lock): an acquire takes permits with one compare-exchange while `WAITERS`
//! is clear and enough permits are available; a release adds its permits with one
//! compare-exchange while `WAITERS` is clear. Because the queueing acquirer sets `WAITERS`
//! by a compare-exchange on the same word, a racing release either lands first (and the
//! acquirer sees its permits) or sees the bit and takes the lock. With the lock, a release
//! tops up the head request; a request whose `acquired == needed` is notified (unlinked),
//! and the surplus moves on to the next one, then to `permits` once the list is empty. A
//! newcomer therefore never barges past a queued waiter (strict FIFO: a large request at
//! the head blocks later small ones, as in tokio; nobody starves).
//!
//! A closed semaphore notifies every queued request with its partial grant taken back into
//! `permits`; a notified request with `acquired < needed` means "closed". A cancelled
//! [`Acquire`] removes its entry and gives back whatever it had been granted (partially or
//! fully) through the locked release path, so the next waiter gets it. Wake-ups are
//! collected in a [`WakeList`] and issued after the lock is released.
//!
//! Bounded mode counts forgotten permits (`Inner::forgotten`, under the lock): a
//! permit-less [`Semaphore::release`] returns one of them, and fails when there is none.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::loom::{lock, AtomicUsize, Mutex, Ordering};
use crate::waitlist::{WaitList, WakeList};

const CLOSED: usize = 0b01;
const WAITERS: usize = 0b10;
const SHIFT: usize = 2;
/// The most permits the state word holds; additions saturate here.
const MAX_WORD_PERMITS: usize = usize::MAX >> SHIFT;

fn permits_of(word: usize) -> usize {
    word >> SHIFT
}

/// A counting semaphore: [`acquire`](Semaphore::acquire) waits for a permit, dropping the
/// permit gives it back. asyncio's `Semaphore` and (with [`Semaphore::bounded`])
/// `BoundedSemaphore`.
///
/// Waiters are served strictly in arrival order, whatever the size of their requests.
///
/// ```
/// use ringleader_sync::Semaphore;
///
/// let sem = Semaphore::new(2);
/// futures::executor::block_on(async {
///     let a = sem.acquire().await.unwrap();
///     let _b = sem.acquire().await.unwrap();
///     assert_eq!(sem.available_permits(), 0);
///     assert!(sem.try_acquire().is_err());
///     drop(a);
///     assert!(sem.try_acquire().is_ok());
/// });
/// ```
pub struct Semaphore {
    state: AtomicUsize,
    inner: Mutex<Inner>,
    bounded: bool,
}

#[derive(Debug)]
struct Inner {
    waiters: WaitList<Request>,
    /// Bounded mode: permits forgotten and not yet given back by `release`.
    forgotten: usize,
}

#[derive(Debug)]
struct Request {
    needed: usize,
    acquired: usize,
}

enum TryTake {
    Taken,
    Closed,
    /// Not enough permits without queueing.
    Short,
}

impl Semaphore {
    /// Takes `n` permits without the lock if nobody waits and enough are available.
    fn try_take_fast(&self, n: usize) -> TryTake {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & CLOSED != 0 {
                return TryTake::Closed;
            }
            if n == 0 {
                return TryTake::Taken;
            }
            if cur & WAITERS != 0 || permits_of(cur) < n {
                return TryTake::Short;
            }
            match self.state.compare_exchange_weak(
                cur,
                cur - (n << SHIFT),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return TryTake::Taken,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Adds `n` permits to the word and clears `WAITERS`; call under the lock, with the
    /// waiter list empty.
    fn add_clearing_waiters(&self, n: usize) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                let permits = permits_of(cur).saturating_add(n).min(MAX_WORD_PERMITS);
                Some(permits << SHIFT | (cur & CLOSED))
            });
    }

    /// Gives `n` permits back under the lock: to queued requests first, in order; the rest
    /// to `permits`, clearing `WAITERS` once the list is empty.
    fn release_locked(&self, inner: &mut Inner, mut n: usize, wakes: &mut WakeList) {
        while n > 0 {
            let Some(key) = inner.waiters.front() else {
                break;
            };
            let req = inner.waiters.data_mut(key);
            let give = n.min(req.needed - req.acquired);
            req.acquired += give;
            n -= give;
            if req.acquired == req.needed {
                inner.waiters.notify(key, wakes);
            }
        }
        if inner.waiters.is_empty() {
            if n > 0 || self.state.load(Ordering::Acquire) & WAITERS != 0 {
                self.add_clearing_waiters(n);
            }
        } else {
            debug_assert_eq!(n, 0, "a surplus with requests still queued");
        }
    }

    /// Gives `n` permits back (a permit's drop, `add_permits`, `release`).
    fn release_n(&self, n: usize) {
        if n == 0 {
            return;
        }
        // Fast path: nobody waits, add with one compare-exchange.
        let mut cur = self.state.load(Ordering::Acquire);
        while cur & WAITERS == 0 {
            let permits = permits_of(cur).saturating_add(n).min(MAX_WORD_PERMITS);
            match self.state.compare_exchange_weak(
                cur,
                permits << SHIFT | (cur & CLOSED),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
        let mut wakes = WakeList::new();
        let mut inner = lock(&self.inner);
        self.release_locked(&mut inner, n, &mut wakes);
        drop(inner);
        wakes.wake_all();
    }
}

impl Semaphore {
    /// The largest number of permits worth asking for: [`RwLock`](crate::RwLock) uses this many
    /// for a writer. (Up to `usize::MAX >> 2` can be stored; additions saturate there.)
    pub const MAX_PERMITS: usize = usize::MAX >> 3;

    /// A semaphore with `permits` permits (at most `usize::MAX >> 2`; more are clamped).
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            state: AtomicUsize::new(Self::word(permits)),
            inner: Mutex::new(Inner {
                waiters: WaitList::new(),
                forgotten: 0,
            }),
            bounded: false,
        }
    }

    /// A semaphore with `permits` permits, usable in `static`s.
    ///
    /// Not available when model checking with `--cfg ringleader_loom`.
    #[cfg(not(ringleader_loom))]
    pub const fn const_new(permits: usize) -> Semaphore {
        Semaphore {
            state: AtomicUsize::new(Self::word(permits)),
            inner: Mutex::new(Inner {
                waiters: WaitList::new(),
                forgotten: 0,
            }),
            bounded: false,
        }
    }

    const fn word(permits: usize) -> usize {
        let permits = if permits > MAX_WORD_PERMITS {
            MAX_WORD_PERMITS
        } else {
            permits
        };
        permits << SHIFT
    }

    /// asyncio's `BoundedSemaphore`: a semaphore with `permits` permits whose permit-less
    /// [`release`](Semaphore::release) fails rather than raise the count above what was
    /// handed out. Permits are handed out by the `acquire`s and kept out by
    /// [`SemaphorePermit::forget`]; `release` gives one forgotten permit back.
    /// [`add_permits`](Semaphore::add_permits) still adds (it raises the bound).
    ///
    /// ```
    /// use ringleader_sync::Semaphore;
    ///
    /// let sem = Semaphore::bounded(1);
    /// assert!(sem.release().is_err()); // nothing was acquired
    /// sem.try_acquire().unwrap().forget(); // asyncio-style: acquire() ...
    /// assert!(sem.release().is_ok()); // ... then release()
    /// assert!(sem.release().is_err());
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn bounded(permits: usize) -> Semaphore {
        Semaphore {
            bounded: true,
            ..Semaphore::new(permits)
        }
    }

    /// Whether this semaphore was made with [`Semaphore::bounded`].
    pub fn is_bounded(&self) -> bool {
        self.bounded
    }

    /// Permits available right now (0 whenever someone is waiting).
    pub fn available_permits(&self) -> usize {
        permits_of(self.state.load(Ordering::Acquire))
    }

    /// asyncio's `locked()`: whether an `acquire` would have to wait (no permit available,
    /// or someone already waiting).
    pub fn locked(&self) -> bool {
        let word = self.state.load(Ordering::Acquire);
        permits_of(word) == 0 || word & WAITERS != 0
    }

    /// Whether [`close`](Semaphore::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Adds `n` permits, waking the waiters they satisfy, in order. Counts saturate at
    /// `usize::MAX >> 2`.
    pub fn add_permits(&self, n: usize) {
        self.release_n(n);
    }

    /// asyncio's `release()`: gives one permit back without a permit object (pair it with
    /// [`SemaphorePermit::forget`]).
    ///
    /// # Errors
    /// In bounded mode, [`ReleaseError`] if no forgotten permit is out (asyncio raises
    /// `ValueError`); the count is left unchanged. A semaphore made with [`Semaphore::new`]
    /// always accepts the permit, as asyncio's `Semaphore` does.
    pub fn release(&self) -> Result<(), ReleaseError> {
        if self.bounded {
            let mut inner = lock(&self.inner);
            if inner.forgotten == 0 {
                return Err(ReleaseError(()));
            }
            inner.forgotten -= 1;
            let mut wakes = WakeList::new();
            // Under the lock, so a concurrent release cannot pass the same check.
            self.release_locked(&mut inner, 1, &mut wakes);
            drop(inner);
            wakes.wake_all();
            return Ok(());
        }
        self.release_n(1);
        Ok(())
    }

    /// A permit object of a bounded semaphore was forgotten: count it as out.
    fn forgotten(&self, n: usize) {
        if self.bounded && n > 0 {
            let mut inner = lock(&self.inner);
            inner.forgotten = inner.forgotten.saturating_add(n);
        }
    }

    /// Closes the semaphore: every queued and future `acquire` fails with [`AcquireError`],
    /// every `try_acquire` with [`TryAcquireError::Closed`]. Permits already held stay valid
    /// and still come back when dropped; an acquire that had been fully granted before the
    /// close still succeeds.
    pub fn close(&self) {
        let mut wakes = WakeList::new();
        let mut inner = lock(&self.inner);
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        let mut returned = 0usize;
        inner.waiters.notify_all(&mut wakes, |req| {
            returned = returned.saturating_add(req.acquired);
            req.acquired = 0;
        });
        self.release_locked(&mut inner, returned, &mut wakes);
        drop(inner);
        wakes.wake_all();
    }

    /// Waits for one permit.
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is (or gets) closed first.
    ///
    /// # Cancel safety
    /// Cancel safe, and fair: dropping the future gives back any permits it had been granted
    /// (to the next waiter) and gives up its place in the queue.
    pub fn acquire(&self) -> Acquire<'_> {
        self.acquire_many(1)
    }

    /// Waits for `n` permits, taken all at once: while it waits at the head of the queue,
    /// later requests wait behind it (no starvation of large requests). `n == 0` succeeds at
    /// once unless the semaphore is closed. A request larger than a bounded semaphore's
    /// bound waits until the semaphore is closed.
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is (or gets) closed first.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`acquire`](Semaphore::acquire).
    pub fn acquire_many(&self, n: usize) -> Acquire<'_> {
        Acquire {
            sem: self,
            waiter: Waiter::new(n),
        }
    }

    /// [`acquire`](Semaphore::acquire) on an `Arc`, giving a permit that owns its `Arc`.
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is (or gets) closed first.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`acquire`](Semaphore::acquire).
    pub fn acquire_owned(self: Arc<Self>) -> AcquireOwned {
        self.acquire_many_owned(1)
    }

    /// [`acquire_many`](Semaphore::acquire_many) on an `Arc`.
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is (or gets) closed first.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`acquire`](Semaphore::acquire).
    pub fn acquire_many_owned(self: Arc<Self>, n: usize) -> AcquireOwned {
        AcquireOwned {
            sem: self,
            waiter: Waiter::new(n),
        }
    }

    /// Takes one permit if one is available and nobody is queued.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are available and nobody is queued.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_take(n)?;
        Ok(SemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    /// [`try_acquire`](Semaphore::try_acquire) on an `Arc`.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire_owned(self: Arc<Self>) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_acquire_many_owned(1)
    }

    /// [`try_acquire_many`](Semaphore::try_acquire_many) on an `Arc`.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire_many_owned(
        self: Arc<Self>,
        n: usize,
    ) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_take(n)?;
        Ok(OwnedSemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    fn try_take(&self, n: usize) -> Result<(), TryAcquireError> {
        match self.try_take_fast(n) {
            TryTake::Taken => Ok(()),
            TryTake::Closed => Err(TryAcquireError::Closed),
            TryTake::Short => Err(TryAcquireError::NoPermits),
        }
    }

    /// Gives back `n` permits handed out earlier (a permit's drop).
    pub(crate) fn give_back(&self, n: usize) {
        self.release_n(n);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.state.load(Ordering::Acquire);
        f.debug_struct("Semaphore")
            .field("permits", &permits_of(word))
            .field("waiters", &(word & WAITERS != 0))
            .field("bounded", &self.bounded)
            .field("closed", &(word & CLOSED != 0))
            .finish()
    }
}

impl Default for Semaphore {
    /// A semaphore with one permit, as asyncio's `Semaphore()`.
    fn default() -> Self {
        Semaphore::new(1)
    }
}

/// The per-future part of an acquire: its request and its key while queued.
#[derive(Debug)]
pub(crate) struct Waiter {
    needed: usize,
    key: Option<usize>,
    done: bool,
}

impl Waiter {
    pub(crate) fn new(needed: usize) -> Waiter {
        Waiter {
            needed,
            key: None,
            done: false,
        }
    }

    /// Polls for the permits (without the coop budget). On `Ready(Ok)`, the permits are
    /// handed to the caller, who must give them back with [`Semaphore::give_back`].
    pub(crate) fn poll_acquire(
        &mut self,
        sem: &Semaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), AcquireError>> {
        if self.done {
            // Polled after completion: behave as a fused future that never resolves again.
            return Poll::Pending;
        }
        let result = match self.key {
            None => match sem.try_take_fast(self.needed) {
                TryTake::Taken => Ok(()),
                TryTake::Closed => Err(AcquireError(())),
                TryTake::Short => match self.enqueue(sem, cx) {
                    Some(result) => result,
                    None => return Poll::Pending,
                },
            },
            Some(key) => {
                let mut inner = lock(&sem.inner);
                if inner.waiters.is_queued(key) {
                    inner.waiters.set_waker(key, cx.waker());
                    return Poll::Pending;
                }
                self.key = None;
                let req = inner.waiters.remove(key).data;
                if req.acquired == req.needed {
                    Ok(())
                } else {
                    // Closed; `close` already took the partial grant back.
                    debug_assert_eq!(req.acquired, 0);
                    Err(AcquireError(()))
                }
            }
        };
        self.done = true;
        Poll::Ready(result)
    }

    /// The slow path of a first poll: under the lock, takes the permits if they turned up,
    /// or takes what is available as a partial grant, sets `WAITERS` and queues. `None`:
    /// queued.
    fn enqueue(
        &mut self,
        sem: &Semaphore,
        cx: &mut Context<'_>,
    ) -> Option<Result<(), AcquireError>> {
        let mut inner = lock(&sem.inner);
        let mut cur = sem.state.load(Ordering::Acquire);
        let acquired = loop {
            if cur & CLOSED != 0 {
                return Some(Err(AcquireError(())));
            }
            if cur & WAITERS == 0 && permits_of(cur) >= self.needed {
                match sem.state.compare_exchange_weak(
                    cur,
                    cur - (self.needed << SHIFT),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Some(Ok(())),
                    Err(actual) => cur = actual,
                }
                continue;
            }
            // Take every available permit (only possible while nobody queues: the
            // invariant) and announce a waiter, in one step.
            match sem.state.compare_exchange_weak(
                cur,
                (cur & CLOSED) | WAITERS,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break permits_of(cur),
                Err(actual) => cur = actual,
            }
        };
        let key = inner.waiters.push_back(
            Request {
                needed: self.needed,
                acquired,
            },
            Some(cx.waker().clone()),
        );
        self.key = Some(key);
        None
    }

    /// Leaves the queue, giving back whatever had been granted. Call from `Drop`.
    pub(crate) fn cancel(&mut self, sem: &Semaphore) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut wakes = WakeList::new();
        let mut inner = lock(&sem.inner);
        let req = inner.waiters.remove(key).data;
        // Also clears `WAITERS` if that was the last queued request.
        sem.release_locked(&mut inner, req.acquired, &mut wakes);
        drop(inner);
        wakes.wake_all();
    }
}

fn poll_with_budget(
    waiter: &mut Waiter,
    sem: &Semaphore,
    cx: &mut Context<'_>,
) -> Poll<Result<(), AcquireError>> {
    let progress = std::task::ready!(ringleader_coop::poll_proceed(cx));
    let res = std::task::ready!(waiter.poll_acquire(sem, cx));
    progress.made_progress();
    Poll::Ready(res)
}

/// The future of [`Semaphore::acquire`] and [`Semaphore::acquire_many`].
///
/// `Unpin`; polled again after it returned `Ready`, it stays `Pending`.
#[must_use = "futures do nothing unless polled; dropping it gives up its place in the queue"]
#[derive(Debug)]
pub struct Acquire<'a> {
    sem: &'a Semaphore,
    waiter: Waiter,
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<SemaphorePermit<'a>, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sem = this.sem;
        poll_with_budget(&mut this.waiter, sem, cx).map(|r| {
            r.map(|()| SemaphorePermit {
                sem,
                permits: this.waiter.needed,
            })
        })
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.waiter.cancel(self.sem);
    }
}

/// The future of [`Semaphore::acquire_owned`] and [`Semaphore::acquire_many_owned`].
#[must_use = "futures do nothing unless polled; dropping it gives up its place in the queue"]
#[derive(Debug)]
pub struct AcquireOwned {
    sem: Arc<Semaphore>,
    waiter: Waiter,
}

impl Future for AcquireOwned {
    type Output = Result<OwnedSemaphorePermit, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        poll_with_budget(&mut this.waiter, &this.sem, cx).map(|r| {
            r.map(|()| OwnedSemaphorePermit {
                sem: this.sem.clone(),
                permits: this.waiter.needed,
            })
        })
    }
}

impl Drop for AcquireOwned {
    fn drop(&mut self) {
        self.waiter.cancel(&self.sem);
    }
}

/// Permits borrowed from a [`Semaphore`]; dropping it gives them back.
#[must_use = "dropping the permit gives it back at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    permits: usize,
}

impl SemaphorePermit<'_> {
    /// Keeps the permits out of the semaphore for good: a plain semaphore loses them; a
    /// bounded one still counts them as out, so [`Semaphore::release`] may return them.
    pub fn forget(mut self) {
        self.sem.forgotten(std::mem::take(&mut self.permits));
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// Moves the permits of `other` (from the same semaphore) into `self`. Permits of another
    /// semaphore are left where they are and returned as `Err(other)`.
    ///
    /// # Errors
    /// `Err(other)` if `other` belongs to another semaphore.
    pub fn merge<'b>(&mut self, mut other: SemaphorePermit<'b>) -> Result<(), SemaphorePermit<'b>> {
        if !std::ptr::eq(self.sem, other.sem) {
            return Err(other);
        }
        self.permits += std::mem::take(&mut other.permits);
        Ok(())
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.give_back(self.permits);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}

/// Permits of an `Arc<Semaphore>`; dropping it gives them back.
#[must_use = "dropping the permit gives it back at once"]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
    permits: usize,
}

impl OwnedSemaphorePermit {
    /// As [`SemaphorePermit::forget`].
    pub fn forget(mut self) {
        self.sem.forgotten(std::mem::take(&mut self.permits));
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// The semaphore these permits belong to.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.give_back(self.permits);
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}

/// The semaphore was closed: [`Semaphore::acquire`] and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireError(());

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore closed")
    }
}

impl std::error::Error for AcquireError {}

/// Why [`Semaphore::try_acquire`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryAcquireError {
    /// The semaphore was closed.
    Closed,
    /// Not enough permits are available, or someone is queued ahead.
    NoPermits,
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::Closed => f.write_str("semaphore closed"),
            TryAcquireError::NoPermits => f.write_str("no permits available"),
        }
    }
}

impl std::error::Error for TryAcquireError {}

/// [`Semaphore::release`] on a bounded semaphore with no permit out (asyncio's
/// `ValueError: BoundedSemaphore released too many times`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseError(());

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bounded semaphore released too many times")
    }
}

impl std::error::Error for ReleaseError {}
