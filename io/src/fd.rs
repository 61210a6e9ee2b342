//! Loops shared by sockets and files: exact reads, whole writes, read to end.

use std::future::Future;
use std::io;

use ringleader_runtime::driver::{IoBuf, IoBufMut, Slice};

use crate::BufResult;

/// Calls `read` on successive tails of `buf` until it is full; EOF first is
/// `UnexpectedEof` (the bytes read so far stay in the buffer).
pub(crate) async fn read_exact<B, F, Fut>(mut buf: B, mut read: F) -> BufResult<(), B>
where
    B: IoBufMut,
    F: FnMut(Slice<B>, u64) -> Fut,
    Fut: Future<Output = BufResult<usize, Slice<B>>>,
{
    let total = buf.bytes_total();
    let mut filled = 0;
    while filled < total {
        let (res, slice) = read(buf.slice(filled..total), filled as u64).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                return (
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("end of stream after {filled} of {total} bytes"),
                    )),
                    buf,
                )
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// Calls `write` on successive tails of `buf` until every initialised byte is written.
pub(crate) async fn write_all<B, F, Fut>(mut buf: B, mut write: F) -> BufResult<(), B>
where
    B: IoBuf,
    F: FnMut(Slice<B>, u64) -> Fut,
    Fut: Future<Output = BufResult<usize, Slice<B>>>,
{
    let total = buf.bytes_init();
    let mut written = 0;
    while written < total {
        let (res, slice) = write(buf.slice(written..total), written as u64).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                return (
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("wrote 0 bytes after {written} of {total}"),
                    )),
                    buf,
                )
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// Appends to `buf` until `read` returns 0; gives the number of bytes appended.
pub(crate) async fn read_to_end<F, Fut>(mut buf: Vec<u8>, mut read: F) -> BufResult<usize, Vec<u8>>
where
    F: FnMut(Slice<Vec<u8>>, u64) -> Fut,
    Fut: Future<Output = BufResult<usize, Slice<Vec<u8>>>>,
{
    let start = buf.len();
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(buf.capacity().max(8192));
        }
        let len = buf.len();
        let cap = buf.capacity();
        let (res, slice) = read(buf.slice(len..cap), (len - start) as u64).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => return (Ok(buf.len() - start), buf),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
}
