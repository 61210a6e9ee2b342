//! asyncio's high-level I/O (issue #7), side by side with tokio: line echo through
//! `StreamReader`/`StreamWriter` (`lines`), spawn and wait of `/bin/true` × 1,000
//! (`process`), and sendfile of a large file (`sendfile`). Each group has the functions
//! `ringleader` and `tokio`; each lives in a module of its own under `streams/`.

use criterion::{criterion_group, criterion_main};

mod common;

#[path = "streams/lines.rs"]
mod lines;
#[path = "streams/process.rs"]
mod process;
#[path = "streams/sendfile.rs"]
mod sendfile;

criterion_group!(benches, lines::bench, process::bench, sendfile::bench);
criterion_main!(benches);
