//! The parent's ends of a child's stdio pipes.
//!
//! std creates the pipes (close-on-exec, blocking); their reads and writes go through the
//! ring, where the kernel waits for readiness itself (pipes support non-blocking attempts),
//! so no thread blocks on them. A write to a pipe whose reader has gone is a `BrokenPipe`
//! error: Rust programs ignore SIGPIPE unless they ask otherwise.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use ringleader_runtime::driver::{ops, IoBuf, IoBufMut, SharedFd};

use crate::net::close_shared;
use crate::BufResult;

/// The methods every pipe end has, over its `fd` field (a `SharedFd`).
macro_rules! pipe_common_methods {
    ($name:ident) => {
        /// Closes the pipe through the ring, reporting close's error (dropping the handle
        /// closes it too, silently).
        ///
        /// # Errors
        /// `close(2)`'s error. If an operation still holds the fd, it closes when that ends.
        pub async fn close(self) -> io::Result<()> {
            close_shared(self.fd).await
        }

        /// Gives the fd back (to pass it to another child as
        /// [`Stdio`](std::process::Stdio), say), once no operation uses it.
        ///
        /// # Errors
        /// `WouldBlock` with the handle back if an operation is still in flight.
        pub fn into_owned_fd(self) -> Result<OwnedFd, (io::Error, $name)> {
            Arc::try_unwrap(self.fd).map_err(|fd| {
                (
                    io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "the pipe is still used by an operation in flight",
                    ),
                    $name { fd },
                )
            })
        }
    };
}

/// The methods of the read ends (stdout, stderr).
macro_rules! pipe_read_methods {
    ($name:ident) => {
        /// Reads into `buf` (from its start): `Ok(0)` is end of stream (the child closed
        /// its end, usually by exiting).
        ///
        /// # Errors
        /// The pipe's read error.
        ///
        /// # Cancel safety
        /// Not cancel safe: a dropped read may have consumed bytes, lost with its buffer.
        pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
            ops::read(self.fd.clone(), buf, None).await
        }

        /// Reads until `buf` is full (its capacity).
        ///
        /// # Errors
        /// `UnexpectedEof` if the stream ends first (the bytes read are in the buffer).
        ///
        /// # Cancel safety
        /// Not cancel safe, as [`read`](Self::read).
        pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
            let fd = &self.fd;
            crate::fd::read_exact(buf, |b, _| ops::read(fd.clone(), b, None)).await
        }

        /// Reads until end of stream, appending to `buf`; gives the number of bytes
        /// appended.
        ///
        /// # Errors
        /// The pipe's read error; the bytes read so far stay in the buffer.
        ///
        /// # Cancel safety
        /// Not cancel safe, as [`read`](Self::read).
        pub async fn read_to_end(&self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
            let fd = &self.fd;
            crate::fd::read_to_end(buf, |b, _| ops::read(fd.clone(), b, None)).await
        }

        pipe_common_methods!($name);
    };
}

/// Implements the fd traits and the conversion from std's handle.
macro_rules! pipe_impls {
    ($name:ident, $std:ty) => {
        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.as_raw_fd()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }

        impl From<$std> for $name {
            /// Takes std's pipe end (from a `std::process::Child`) onto the ring.
            fn from(pipe: $std) -> $name {
                $name {
                    fd: Arc::new(OwnedFd::from(pipe)),
                }
            }
        }
    };
}

/// The write end of a child's stdin pipe ([`Child::stdin`](super::Child::stdin)). The child
/// sees end of input once this is closed (dropped).
#[derive(Debug)]
pub struct ChildStdin {
    fd: SharedFd,
}

impl ChildStdin {
    /// Writes some of `buf`'s bytes; returns how many.
    ///
    /// # Errors
    /// `BrokenPipe` if the child closed its stdin (or exited).
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped write may have written some bytes.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        ops::write(self.fd.clone(), buf, None).await
    }

    /// Writes every byte of `buf`.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    ///
    /// # Cancel safety
    /// Not cancel safe: an unknown prefix may have been written.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let fd = &self.fd;
        crate::fd::write_all(buf, |b, _| ops::write(fd.clone(), b, None)).await
    }

    pipe_common_methods!(ChildStdin);
}

/// The read end of a child's stdout pipe ([`Child::stdout`](super::Child::stdout)).
#[derive(Debug)]
pub struct ChildStdout {
    fd: SharedFd,
}

impl ChildStdout {
    pipe_read_methods!(ChildStdout);
}

/// The read end of a child's stderr pipe ([`Child::stderr`](super::Child::stderr)).
#[derive(Debug)]
pub struct ChildStderr {
    fd: SharedFd,
}

impl ChildStderr {
    pipe_read_methods!(ChildStderr);
}

pipe_impls!(ChildStdin, std::process::ChildStdin);
pipe_impls!(ChildStdout, std::process::ChildStdout);
pipe_impls!(ChildStderr, std::process::ChildStderr);
