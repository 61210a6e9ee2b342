//! Copying between stream sockets, one way or both ways.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::task::Poll;

use ringleader_runtime::driver::{ops, SharedFd};

use super::StreamSocket;

/// Size of each direction's copy buffer.
const COPY_BUF: usize = 64 * 1024;

async fn copy_fd(from: &SharedFd, to: &SharedFd) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(COPY_BUF);
    let mut total = 0u64;
    loop {
        buf.clear();
        let (res, b) = ops::recv(from.clone(), buf).await;
        buf = b;
        let n = match res {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (res, b) = crate::fd::write_all(buf, |b, _| ops::send(to.clone(), b)).await;
        buf = b;
        res?;
        total += n as u64;
    }
    match ops::shutdown(to.clone(), libc::SHUT_WR).await {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
        _ => Ok(total),
    }
}

/// Copies everything `reader` receives to `writer` until `reader`'s end of stream, then
/// shuts `writer`'s sending direction down (its peer reads end of stream). Returns the
/// number of bytes copied.
///
/// # Errors
/// Either socket's error; what was copied before it is not reported.
///
/// # Cancel safety
/// Not cancel safe: a dropped copy may have received bytes it has not sent.
pub async fn copy<R: StreamSocket, W: StreamSocket>(reader: &R, writer: &W) -> io::Result<u64> {
    copy_fd(reader.shared_fd(), writer.shared_fd()).await
}

/// Copies both ways between `a` and `b` at once (a proxy's inner loop): `a`'s bytes to
/// `b`, `b`'s to `a`. Each direction ends at its reader's end of stream by shutting its
/// writer's sending direction down; the call returns when both have, giving the bytes
/// copied `(a to b, b to a)`.
///
/// # Errors
/// The first error of either direction; the other direction is then abandoned.
///
/// # Cancel safety
/// Not cancel safe, as [`copy`].
pub async fn copy_bidirectional<A: StreamSocket, B: StreamSocket>(
    a: &A,
    b: &B,
) -> io::Result<(u64, u64)> {
    let (a, b) = (a.shared_fd(), b.shared_fd());
    let mut forth = pin!(copy_fd(a, b));
    let mut back = pin!(copy_fd(b, a));
    let mut forth_done = None;
    let mut back_done = None;
    poll_fn(|cx| {
        if forth_done.is_none() {
            if let Poll::Ready(res) = forth.as_mut().poll(cx) {
                forth_done = Some(res?);
            }
        }
        if back_done.is_none() {
            if let Poll::Ready(res) = back.as_mut().poll(cx) {
                back_done = Some(res?);
            }
        }
        match (forth_done, back_done) {
            (Some(x), Some(y)) => Poll::Ready(Ok((x, y))),
            _ => Poll::Pending,
        }
    })
    .await
}
