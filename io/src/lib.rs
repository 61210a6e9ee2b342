//! Cancellation-safe, owned-buffer I/O for ringleader: TCP, UDP and Unix sockets, files,
//! [`sendfile`], and subprocesses' pipes and waits, all completed on the worker's io_uring;
//! asyncio's streams and servers over them ([`streams`]); and Unix [`signal`]s.
//!
//! ```
//! use ringleader_io::net::{TcpListener, TcpStream};
//!
//! ringleader_runtime::run(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let server = ringleader_runtime::spawn(async move {
//!         let (stream, _) = listener.accept().await?;
//!         let (res, buf) = stream.read(Vec::with_capacity(64)).await;
//!         res?;
//!         let (res, _) = stream.write_all(buf).await;
//!         res
//!     });
//!     let client = TcpStream::connect(addr).await?;
//!     let (res, _) = client.write_all(b"ping".to_vec()).await;
//!     res?;
//!     let (res, echo) = client.read_exact(vec![0u8; 4]).await;
//!     res?;
//!     assert_eq!(echo, b"ping");
//!     server.await.unwrap()?;
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # Owned buffers
//! An operation takes its buffer by value and gives it back with the result:
//! `let (res, buf) = stream.read(buf).await;`. The kernel writes into the buffer after the
//! call returned, possibly after the future was dropped; owning the buffer is what lets the
//! runtime keep it alive until the kernel is done (see [`IoBuf`]). Reads fill the buffer
//! from its start (`buf[..n]`); to append, read into `vec.slice(vec.len()..)`.
//!
//! # Cancellation
//! Dropping an I/O future cancels the operation: the runtime sends the kernel a cancellation
//! and keeps the buffer, fd and address until the kernel confirms. The operation may still
//! have happened: a cancelled read may have consumed bytes from a socket (they are lost with
//! the buffer), a cancelled write may have sent some. A cancelled accept or open that
//! succeeded anyway has its new fd closed. So a read is not cancel safe in the sense of
//! `select!`: race reads against timeouts only when losing the data is acceptable (a
//! connection you then close).
//!
//! # Descriptors
//! Sockets and files hold their fd in a shared handle: every in-flight operation holds it
//! too, so the fd number is closed (by `close(2)`, at drop) only when no operation can still
//! refer to it. `close().await` closes through the ring and reports close's error.
//!
//! # Model checking
//! This crate has no build under `--cfg ringleader_loom`: the runtime leaves its io_uring
//! driver out of loom builds (the kernel is not a loom thread), and everything here runs on
//! that driver. The lock-free protocols it stands on (task state, wakers, park/unpark, the
//! queues, group join and cancel, the sync primitives) are modelled in `ringleader-runtime`,
//! `ringleader-taskgroup` and `ringleader-sync`.

// One clear message instead of a cascade of unresolved imports from the configured-out driver.
#[cfg(ringleader_loom)]
compile_error!(
    "ringleader-io does not build under --cfg ringleader_loom (its io_uring driver is left out \
     of loom builds); model-check ringleader-runtime, ringleader-taskgroup and ringleader-sync"
);

use std::io;

pub use async_fd::{AsyncFd, ReadyGuard, TryIoError};
pub use ringleader_runtime::driver::{IoBuf, IoBufMut, Slice};
pub use sendfile::{sendfile, SendfileTarget};

mod async_fd;
mod fd;
pub mod fs;
pub mod net;
pub mod process;
mod sendfile;
pub mod signal;
pub mod streams;

/// The result of an owned-buffer operation: the outcome and the buffer, given back either
/// way.
pub type BufResult<T, B> = (io::Result<T>, B);
