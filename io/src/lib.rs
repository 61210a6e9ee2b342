//! Cancellation-safe, owned-buffer I/O for ringleader: sockets, files, pipes, processes,
//! signals and asyncio-style streams.
//!
//! This crate is being built; its operations land with the io_uring driver.
