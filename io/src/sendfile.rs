//! `sendfile`: a file's bytes to a stream socket without passing through user memory
//! (asyncio's `loop.sendfile(transport, file, offset, count)`).
//!
//! # How
//! Linux's zero-copy path from a file to a socket is `splice(2)` through a pipe: file →
//! pipe moves page references, pipe → socket hands them to the network stack. Both steps
//! run as `IORING_OP_SPLICE` on the ring (the kernel runs them on its io-wq workers, so a
//! slow disk blocks no ringleader thread); our sockets are non-blocking, so a full socket
//! buffer makes the second step fail with `EAGAIN`, and the call then waits for room with
//! a ring poll (`POLLOUT`) before splicing the rest of the pipe. Each call creates its own pipe (close-
//! on-exec, enlarged to 1 MiB where the system allows: 16 times fewer operations than the
//! default 64 KiB) and closes it when done: one `pipe2` per call is small next to the file
//! transfer it serves, and a pool would have to be emptied of a failed call's stray bytes.
//!
//! # Fallback
//! Where splice cannot serve (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`: a file system without
//! splice support, a kernel without the ring opcode), the transfer goes on with positioned
//! reads into a buffer and socket writes, both through the ring; bytes already in the pipe
//! are read back out of it first, so nothing is lost or repeated.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use ringleader_runtime::driver::ops;
use ringleader_runtime::driver::ops_splice::{splice, SPLICE_F_MORE, SPLICE_F_MOVE};
use ringleader_runtime::driver::{IoBuf, SharedFd};

use crate::fs::File;
use crate::net::{TcpStream, UnixStream};

/// The pipe size asked for (Linux's default `pipe-max-size` for unprivileged processes).
const PIPE_SIZE: usize = 1 << 20;
/// The fallback's buffer size.
const FALLBACK_BUF: usize = 256 * 1024;

mod sealed {
    use ringleader_runtime::driver::SharedFd;

    pub trait Sealed {
        fn stream_fd(&self) -> &SharedFd;
    }
}

/// A stream socket [`sendfile`] can send to: [`TcpStream`] and [`UnixStream`]. Sealed.
pub trait SendfileTarget: sealed::Sealed {}

impl sealed::Sealed for TcpStream {
    fn stream_fd(&self) -> &SharedFd {
        self.shared_fd()
    }
}
impl SendfileTarget for TcpStream {}

impl sealed::Sealed for UnixStream {
    fn stream_fd(&self) -> &SharedFd {
        self.shared_fd()
    }
}
impl SendfileTarget for UnixStream {}

/// Sends `count` bytes of `file` (all of it up to end of file if `None`) starting at
/// `offset`, to `socket`; returns how many bytes were sent (fewer than `count` only if
/// the file ended first).
///
/// The file's own position (the one [`File::read`] uses) is neither used nor moved.
///
/// ```
/// use ringleader_io::{fs::File, net::{TcpListener, TcpStream}, sendfile};
///
/// ringleader_runtime::run(async {
///     let path = std::env::temp_dir().join(format!("sendfile-doc-{}", std::process::id()));
///     std::fs::write(&path, b"hello, sendfile")?;
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///
///     let file = File::open(&path).await?;
///     let sent = sendfile(&file, &server, 7, None).await?;
///     assert_eq!(sent, 8);
///     let (res, buf) = client.read_exact(vec![0u8; 8]).await;
///     res?;
///     assert_eq!(buf, b"sendfile");
///     std::fs::remove_file(&path)
/// })
/// .unwrap();
/// ```
///
/// # Errors
/// `InvalidInput` for an offset above `i64::MAX`; the file's read error (`EBADF` for a file
/// not opened for reading, `EISDIR`...), the socket's error (`BrokenPipe` if the peer
/// closed: never a SIGPIPE in a Rust program, which ignores SIGPIPE), or `pipe2`'s. Bytes
/// may have been sent before an error.
///
/// # Cancel safety
/// Not cancel safe: a dropped call has sent an unknown prefix. The pipe and the operations'
/// fds stay open until the kernel lets go of them, then close: nothing leaks.
pub async fn sendfile<S: SendfileTarget>(
    file: &File,
    socket: &S,
    offset: u64,
    count: Option<usize>,
) -> io::Result<usize> {
    sendfile_to(file, socket.stream_fd(), offset, count).await
}

/// [`sendfile`] to a stream socket's fd (also `StreamWriter::sendfile`'s transfer).
pub(crate) async fn sendfile_to(
    file: &File,
    sock_fd: &SharedFd,
    offset: u64,
    count: Option<usize>,
) -> io::Result<usize> {
    let file_fd = file.shared_fd().clone();
    let sock_fd = sock_fd.clone();
    if offset > i64::MAX as u64 {
        // The kernel's offsets are signed; larger ones would be read as "no offset".
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sendfile offset {offset} is beyond any file"),
        ));
    }
    let count = count.unwrap_or(usize::MAX);
    if count == 0 {
        return Ok(0);
    }
    let (pipe_r, pipe_w, pipe_size) = new_pipe()?;
    let mut sent = 0usize;
    while sent < count {
        let want = (count - sent).min(pipe_size) as u32;
        let pos = offset + sent as u64;
        let filled = match splice(
            file_fd.clone(),
            Some(pos),
            pipe_w.clone(),
            None,
            want,
            SPLICE_F_MOVE,
        )
        .await
        {
            Ok(0) => return Ok(sent),
            Ok(n) => n,
            Err(err) if splice_unsupported(&err) => {
                return fallback(&file_fd, &sock_fd, offset, count, sent).await;
            }
            Err(err) => return Err(err),
        };
        // Empty the pipe into the socket.
        let mut in_pipe = filled;
        while in_pipe > 0 {
            let more = sent + filled < count;
            let flags = SPLICE_F_MOVE | if more { SPLICE_F_MORE } else { 0 };
            match splice(
                pipe_r.clone(),
                None,
                sock_fd.clone(),
                None,
                in_pipe as u32,
                flags,
            )
            .await
            {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("the socket took nothing after {sent} bytes"),
                    ))
                }
                Ok(n) => {
                    in_pipe -= n;
                    sent += n;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // The socket is non-blocking and its buffer is full: splice does not
                    // wait for room (unlike the ring's send), so wait for it here.
                    ops::poll(sock_fd.as_raw_fd(), libc::POLLOUT as u32).await?;
                }
                Err(err) if splice_unsupported(&err) => {
                    // Send what is in the pipe by hand, then go on without splice.
                    let (res, buf) =
                        ops::read(pipe_r.clone(), Vec::with_capacity(in_pipe), None).await;
                    let n = res?;
                    write_all(&sock_fd, buf).await?;
                    sent += n;
                    return fallback(&file_fd, &sock_fd, offset, count, sent).await;
                }
                Err(err) => return Err(err),
            }
        }
    }
    Ok(sent)
}

/// Errors that mean "splice cannot do this", not "this transfer failed".
fn splice_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
    )
}

/// A close-on-exec pipe (blocking: the ring's workers may wait on it), enlarged if the
/// system allows; its read end, write end and capacity.
fn new_pipe() -> io::Result<(SharedFd, SharedFd, usize)> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two fds into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both fds are new and ours alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on an fd we own; F_SETPIPE_SZ takes an int and returns the new size.
    let size = unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
    let size = if size > 0 {
        size as usize
    } else {
        // SAFETY: as above; F_GETPIPE_SZ takes no argument.
        let current = unsafe { libc::fcntl(fds[1], libc::F_GETPIPE_SZ) };
        if current > 0 {
            current as usize
        } else {
            64 * 1024
        }
    };
    Ok((Arc::new(read), Arc::new(write), size))
}

/// Sends every byte of `buf` on the socket.
async fn write_all(sock: &SharedFd, buf: Vec<u8>) -> io::Result<()> {
    let (res, _) = crate::fd::write_all(buf, |b, _| ops::send(sock.clone(), b)).await;
    res
}

/// The read/write path, from `sent` bytes into the transfer on.
async fn fallback(
    file: &SharedFd,
    sock: &SharedFd,
    offset: u64,
    count: usize,
    mut sent: usize,
) -> io::Result<usize> {
    let mut buf = Vec::with_capacity(FALLBACK_BUF.min(count - sent));
    while sent < count {
        let want = (count - sent).min(FALLBACK_BUF);
        buf.clear();
        let (res, b) =
            ops::read(file.clone(), buf.slice(0..want), Some(offset + sent as u64)).await;
        buf = b.into_inner();
        let n = res?;
        if n == 0 {
            break;
        }
        let (res, b) = crate::fd::write_all(buf, |b, _| ops::send(sock.clone(), b)).await;
        buf = b;
        res?;
        sent += n;
    }
    Ok(sent)
}
