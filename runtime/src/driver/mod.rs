//! The io_uring driver: one ring per worker, operations as futures over heap cells.
//!
//! This module is the boundary between ringleader's I/O types (in `ringleader-io`) and the
//! kernel interface. It is public for that crate only: its API is not stable.
//!
//! - [`buf`]: owned buffers ([`IoBuf`], [`IoBufMut`], [`Slice`]).
//! - [`ops`]: each operation as a function returning a future; the future owns the
//!   operation's buffers, fds and addresses, and if it is dropped while the kernel still uses
//!   them the driver keeps them until the completion (see `op.rs` for the protocol).
//! - [`ops_process`]: waiting for a child through its pidfd (`IORING_OP_WAITID`, and the
//!   non-blocking `waitid` the poll fallback uses).
//! - [`ops_splice`]: `splice(2)` between an fd and a pipe, for `sendfile`.
//! - ring.rs: the per-worker ring: submission once per scheduler round, parking in one
//!   `io_uring_enter` bounded by the next timer, wake-ups from other threads by eventfd,
//!   shutdown that cancels and waits.
//!
//! # Which ring an operation uses
//! On a worker (or the current-thread flavour's `block_on`), the worker's own ring: the entry
//! is pushed without a syscall and submitted at the end of the round. A multi-thread
//! runtime's `block_on` caller gets a ring of its own (created on its first `block_on`, kept
//! for the thread's life, drained when the thread exits) and waits on it. On any other
//! thread inside the runtime (the blocking pool, a thread that entered the runtime), the
//! entry is handed to one worker's ring (the same one for every operation of that thread, so
//! they stay in order) through that ring's request queue, and the worker is woken. The
//! completion wakes the future's task wherever it runs now: a task stolen by another worker
//! after submitting still completes, because the cell, not the worker, holds the state.
//! Outside any runtime an operation fails with an error naming the cause.

// Under loom only the operation cell's protocol is compiled, for its models: rings need a
// kernel, not a model checker.
pub mod buf;
pub(crate) mod op;
#[cfg(not(ringleader_loom))]
pub mod ops;
#[cfg(not(ringleader_loom))]
pub mod ops_lines;
#[cfg(not(ringleader_loom))]
pub mod ops_process;
#[cfg(not(ringleader_loom))]
pub mod ops_splice;
#[cfg(not(ringleader_loom))]
pub(crate) mod ring;
#[cfg(not(ringleader_loom))]
pub mod sockaddr;

pub use buf::{IoBuf, IoBufMut, Slice};
#[cfg(not(ringleader_loom))]
pub use ops::SharedFd;
#[cfg(not(ringleader_loom))]
pub use sockaddr::SockAddrBuf;
