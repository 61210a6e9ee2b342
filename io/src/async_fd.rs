//! Readiness on any fd: asyncio's `add_reader` / `add_writer`, tokio's `AsyncFd`.
//!
//! For libraries that own a non-blocking fd and do their own reads and writes (a database
//! driver, an inotify or timerfd, a pipe from another library). Readiness comes from the
//! ring's poll operation (single-shot `IORING_OP_POLL_ADD`): each `readable()` asks the
//! kernel once, so no stale readiness is cached; a guard's `try_io` says whether the
//! operation found the fd ready after all.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use ringleader_runtime::driver::ops;

/// A non-blocking fd (or anything holding one) registered for readiness.
///
/// It does not close the fd itself: dropping the `AsyncFd` drops `T`, which closes the fd
/// if `T` owns it (an `OwnedFd`, a `File`) and not otherwise (a `RawFd` wrapper). Set the fd
/// non-blocking yourself, or `try_io` would block the worker.
///
/// ```
/// use std::io::{Read, Write};
/// use ringleader_io::AsyncFd;
///
/// ringleader_runtime::run(async {
///     let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
///     b.set_nonblocking(true)?;
///     let reader = AsyncFd::new(b)?;
///     a.write_all(b"ready")?;
///     let mut buf = [0u8; 5];
///     loop {
///         let guard = reader.readable().await?;
///         match guard.try_io(|mut s| s.read(&mut buf)) {
///             Ok(n) => break assert_eq!(n?, 5),
///             Err(_would_block) => continue,
///         }
///     }
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct AsyncFd<T: AsRawFd> {
    inner: T,
}

/// Proof that the fd was ready when the guard was made; `try_io` runs an operation on it.
#[derive(Debug)]
pub struct ReadyGuard<'a, T: AsRawFd> {
    fd: &'a AsyncFd<T>,
    events: u32,
}

/// The operation would have blocked: the readiness was stale; wait again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryIoError(());

impl std::fmt::Display for TryIoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the operation would block; wait for readiness again")
    }
}

impl std::error::Error for TryIoError {}

impl<T: AsRawFd> AsyncFd<T> {
    /// Wraps `inner`.
    ///
    /// # Errors
    /// `InvalidInput` for a negative fd.
    pub fn new(inner: T) -> io::Result<AsyncFd<T>> {
        if inner.as_raw_fd() < 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a negative fd"));
        }
        Ok(AsyncFd { inner })
    }

    /// Waits until the fd is readable (or hung up, or in error: then the operation tells).
    ///
    /// # Errors
    /// The poll's error (`EBADF` if the fd was closed under us).
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is consumed by waiting.
    pub async fn readable(&self) -> io::Result<ReadyGuard<'_, T>> {
        self.ready(libc::POLLIN as u32).await
    }

    /// Waits until the fd is writable.
    ///
    /// # Errors
    /// As [`readable`](Self::readable).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn writable(&self) -> io::Result<ReadyGuard<'_, T>> {
        self.ready(libc::POLLOUT as u32).await
    }

    /// Waits for any of `events` (`libc::POLLIN`, `POLLOUT`, `POLLPRI`...).
    ///
    /// # Errors
    /// As [`readable`](Self::readable).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn ready(&self, events: u32) -> io::Result<ReadyGuard<'_, T>> {
        let events = ops::poll(self.inner.as_raw_fd(), events).await?;
        Ok(ReadyGuard { fd: self, events })
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped value, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Gives the wrapped value back.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsRawFd> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl<'a, T: AsRawFd> ReadyGuard<'a, T> {
    /// The events the kernel reported (`POLLIN`, `POLLOUT`, `POLLHUP`, `POLLERR`...).
    pub fn events(&self) -> u32 {
        self.events
    }

    /// Runs `f` on the wrapped value. `Err(TryIoError)` if it returned `WouldBlock`: the
    /// readiness was stale (another reader got there first); wait again. Any other result,
    /// success or error, is returned in `Ok`.
    ///
    /// # Errors
    /// `TryIoError` on `WouldBlock`.
    pub fn try_io<R>(
        self,
        f: impl FnOnce(&'a T) -> io::Result<R>,
    ) -> Result<io::Result<R>, TryIoError> {
        match f(&self.fd.inner) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(TryIoError(())),
            other => Ok(other),
        }
    }
}
