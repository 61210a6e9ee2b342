//! The operations: each kind owns what the kernel uses and turns the result into a
//! `std::io::Result`.

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use io_uring::{opcode, squeue::Entry, types};

use super::buf::{IoBuf, IoBufMut};
use super::op::{Op, OpKind};
use super::sockaddr::SockAddrBuf;

/// An fd shared by a handle (socket, file) and its in-flight operations, so it is closed
/// only once no operation can still refer to its number.
pub type SharedFd = Arc<OwnedFd>;

fn result(res: i32) -> io::Result<u32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as u32)
    }
}

fn close_raw(fd: RawFd) {
    // SAFETY: `fd` was produced by the kernel for an operation nobody observed; we are its
    // only owner.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

/// Converts an offset for the kernel: `None` means the file's current position.
fn offset(pos: Option<u64>) -> u64 {
    pos.unwrap_or(u64::MAX)
}

/// A read into the start of a buffer: `read(2)` at a position, or `recv(2)` on a socket.
struct ReadKind<B> {
    fd: SharedFd,
    buf: B,
    pos: Option<u64>,
    socket: bool,
    /// `recv(2)` flags (`MSG_PEEK`); only used with `socket`.
    flags: i32,
}

// SAFETY: the entry points into `buf`'s stable memory, within its capacity; `fd` is kept.
unsafe impl<B: IoBufMut> OpKind for ReadKind<B> {
    type Output = (io::Result<usize>, B);

    fn entry(&mut self) -> Entry {
        let len = self.buf.bytes_total().min(u32::MAX as usize) as u32;
        let ptr = self.buf.stable_mut_ptr();
        let fd = types::Fd(self.fd.as_raw_fd());
        if self.socket {
            opcode::Recv::new(fd, ptr, len).flags(self.flags).build()
        } else {
            opcode::Read::new(fd, ptr, len)
                .offset(offset(self.pos))
                .build()
        }
    }

    fn complete(mut self, res: i32, _flags: u32) -> Self::Output {
        match result(res) {
            Ok(n) => {
                // SAFETY: the kernel wrote the first `n` bytes.
                unsafe { self.buf.set_init(n as usize) };
                (Ok(n as usize), self.buf)
            }
            Err(e) => (Err(e), self.buf),
        }
    }

    fn failed(self, err: io::Error) -> Self::Output {
        (Err(err), self.buf)
    }
}

/// Reads into the start of `buf` (up to its capacity), at `pos` or the current position;
/// the bytes read are `buf[..n]` (a `Vec`'s length grows to `n` if it was shorter). To append,
/// read into `vec.slice(vec.len()..)`.
pub fn read<B: IoBufMut>(
    fd: SharedFd,
    buf: B,
    pos: Option<u64>,
) -> impl std::future::Future<Output = (io::Result<usize>, B)> + Send {
    Op::new(ReadKind {
        fd,
        buf,
        pos,
        socket: false,
        flags: 0,
    })
}

struct WriteKind<B> {
    fd: SharedFd,
    buf: B,
    pos: Option<u64>,
}

// SAFETY: the entry points into `buf`'s initialised, stable memory; `fd` is kept.
unsafe impl<B: IoBuf> OpKind for WriteKind<B> {
    type Output = (io::Result<usize>, B);

    fn entry(&mut self) -> Entry {
        let len = self.buf.bytes_init().min(u32::MAX as usize) as u32;
        opcode::Write::new(types::Fd(self.fd.as_raw_fd()), self.buf.stable_ptr(), len)
            .offset(offset(self.pos))
            .build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        (result(res).map(|n| n as usize), self.buf)
    }

    fn failed(self, err: io::Error) -> Self::Output {
        (Err(err), self.buf)
    }
}

/// Writes the initialised bytes of `buf`, at `pos` or the current position.
pub fn write<B: IoBuf>(
    fd: SharedFd,
    buf: B,
    pos: Option<u64>,
) -> impl std::future::Future<Output = (io::Result<usize>, B)> + Send {
    Op::new(WriteKind { fd, buf, pos })
}

struct SendKind<B> {
    fd: SharedFd,
    buf: B,
}

// SAFETY: the entry points into `buf`'s initialised, stable memory; `fd` is kept.
unsafe impl<B: IoBuf> OpKind for SendKind<B> {
    type Output = (io::Result<usize>, B);

    fn entry(&mut self) -> Entry {
        let len = self.buf.bytes_init().min(u32::MAX as usize) as u32;
        // MSG_NOSIGNAL: a closed peer is an EPIPE error, never a SIGPIPE.
        opcode::Send::new(types::Fd(self.fd.as_raw_fd()), self.buf.stable_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        (result(res).map(|n| n as usize), self.buf)
    }

    fn failed(self, err: io::Error) -> Self::Output {
        (Err(err), self.buf)
    }
}

/// Sends on a socket (never raising SIGPIPE).
///
/// Tries a non-blocking `send(2)` first: a socket with room in its buffer (the usual case
/// for a reply) completes in the same poll, without a ring round trip and a second wake-up
/// of the task; only a full buffer goes through the ring.
pub fn send<B: IoBuf>(
    fd: SharedFd,
    buf: B,
) -> impl std::future::Future<Output = (io::Result<usize>, B)> + Send {
    SendFuture {
        state: SendState::Start(Some((FdArg::Owned(fd), buf))),
    }
}

/// As [`send`], borrowing the fd: the immediate `send(2)` (the usual case) then costs no
/// reference count traffic on the fd; only a send that goes through the ring takes a
/// reference (the operation keeps the fd open until its completion).
pub fn send_ref<'a, B: IoBuf>(
    fd: &'a SharedFd,
    buf: B,
) -> impl std::future::Future<Output = (io::Result<usize>, B)> + Send + 'a {
    SendFuture {
        state: SendState::Start(Some((FdArg::Borrowed(fd), buf))),
    }
}

/// The fd a send starts with.
enum FdArg<'a> {
    Owned(SharedFd),
    Borrowed(&'a SharedFd),
}

impl FdArg<'_> {
    fn raw(&self) -> RawFd {
        match self {
            FdArg::Owned(fd) => fd.as_raw_fd(),
            FdArg::Borrowed(fd) => fd.as_raw_fd(),
        }
    }

    fn into_shared(self) -> SharedFd {
        match self {
            FdArg::Owned(fd) => fd,
            FdArg::Borrowed(fd) => fd.clone(),
        }
    }
}

struct SendFuture<'a, B: IoBuf> {
    state: SendState<'a, B>,
}

enum SendState<'a, B: IoBuf> {
    Start(Option<(FdArg<'a>, B)>),
    Ring(Op<SendKind<B>>),
}

// Nothing is pinned structurally: the buffer moves into the op's heap cell when submitted.
impl<B: IoBuf> Unpin for SendFuture<'_, B> {}

impl<B: IoBuf> std::future::Future for SendFuture<'_, B> {
    type Output = (io::Result<usize>, B);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let this = &mut *self;
        if let SendState::Start(start) = &mut this.state {
            // An immediate completion spends budget, so a task that only ever sends still
            // yields to others.
            let progress = std::task::ready!(ringleader_coop::poll_proceed(cx));
            let Some((fd, buf)) = start.take() else {
                panic!("a send was polled after it completed");
            };
            let len = buf.bytes_init();
            // SAFETY: `buf` is ours for the duration of the call and holds `len` initialised
            // bytes at its stable pointer; the fd is kept open by `fd` (owned, or borrowed
            // from a handle that outlives this future).
            let n = unsafe { sendto_raw(fd.raw(), buf.stable_ptr(), len) };
            if n >= 0 {
                progress.made_progress();
                return Poll::Ready((Ok(n as usize), buf));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    this.state = SendState::Ring(Op::new(SendKind {
                        fd: fd.into_shared(),
                        buf,
                    }));
                }
                _ => {
                    progress.made_progress();
                    return Poll::Ready((Err(err), buf));
                }
            }
        }
        match &mut this.state {
            SendState::Ring(op) => std::pin::Pin::new(op).poll(cx),
            SendState::Start(_) => unreachable!("moved to the ring above"),
        }
    }
}

/// One `send(2)` that never waits and never raises SIGPIPE, through the raw system call:
/// libc's `send` is a thread-cancellation point, and glibc brackets it with two atomic
/// updates of the thread's cancel state (about 2 % of an echo server's CPU in a profile);
/// ringleader never cancels its threads. Returns the bytes taken or `-1` with `errno` set.
///
/// # Safety
/// `ptr` points to `len` initialised bytes that stay valid for the call.
unsafe fn sendto_raw(fd: RawFd, ptr: *const u8, len: usize) -> isize {
    // SAFETY: sendto(2) with no address reads `len` bytes at `ptr` (the caller's contract)
    // and touches nothing else of ours; a bad fd is an error return, not undefined behaviour.
    unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            ptr,
            len,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        ) as isize
    }
}

/// One non-blocking `send(2)` of `data` on `fd`, without SIGPIPE (EPIPE is an error) and
/// without libc's cancellation-point bracketing; retried on EINTR. `Ok(0)` when the
/// socket's buffer is full (EAGAIN), so callers that keep their own buffer (the stream
/// writer) can tell "wait for room" from an error.
pub fn send_nonblocking(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `data` is borrowed, initialised and valid for the call.
        let n = unsafe { sendto_raw(fd, data.as_ptr(), data.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => return Ok(0),
            _ => return Err(err),
        }
    }
}

/// Receives from a socket into the start of `buf`, as [`read`].
pub fn recv<B: IoBufMut>(
    fd: SharedFd,
    buf: B,
) -> impl std::future::Future<Output = (io::Result<usize>, B)> + Send {
    recv_flags(fd, buf, 0)
}

/// As [`recv`] with `MSG_PEEK`: the bytes are copied into `buf` but stay queued on the
/// socket, so the next receive returns them again.
pub fn recv_peek<B: IoBufMut>(
    fd: SharedFd,
    buf: B,
) -> impl std::future::Future<Output = (io::Result<usize>, B)> + Send {
    recv_flags(fd, buf, libc::MSG_PEEK)
}

fn recv_flags<B: IoBufMut>(fd: SharedFd, buf: B, flags: i32) -> Op<ReadKind<B>> {
    Op::new(ReadKind {
        fd,
        buf,
        pos: None,
        socket: true,
        flags,
    })
}

struct AcceptKind {
    fd: SharedFd,
    addr: Box<SockAddrBuf>,
}

// SAFETY: the entry points into the boxed address buffer; `fd` is kept.
unsafe impl OpKind for AcceptKind {
    type Output = io::Result<(OwnedFd, Option<SocketAddr>)>;

    fn entry(&mut self) -> Entry {
        let (addr, len) = self.addr.as_mut_ptrs();
        opcode::Accept::new(types::Fd(self.fd.as_raw_fd()), addr, len)
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        let fd = result(res)? as RawFd;
        // SAFETY: the kernel returned a new fd that we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok((fd, self.addr.to_socket_addr()))
    }

    fn abandoned(self, res: i32) {
        if res >= 0 {
            close_raw(res);
        }
    }

    fn failed(self, err: io::Error) -> Self::Output {
        Err(err)
    }
}

/// Accepts a connection; the new fd is non-blocking and close-on-exec. The address is
/// `None` for unnamed Unix peers.
pub fn accept(
    fd: SharedFd,
) -> impl std::future::Future<Output = io::Result<(OwnedFd, Option<SocketAddr>)>> + Send {
    Op::new(AcceptKind {
        fd,
        addr: Box::new(SockAddrBuf::empty()),
    })
}

/// Accepts a connection on a Unix listener, giving the raw peer address bytes back.
pub fn accept_unix(
    fd: SharedFd,
) -> impl std::future::Future<Output = io::Result<(OwnedFd, SockAddrBuf)>> + Send {
    struct AcceptUnix(AcceptKind);
    // SAFETY: as AcceptKind.
    unsafe impl OpKind for AcceptUnix {
        type Output = io::Result<(OwnedFd, SockAddrBuf)>;
        fn entry(&mut self) -> Entry {
            self.0.entry()
        }
        fn complete(self, res: i32, _flags: u32) -> Self::Output {
            let fd = result(res)? as RawFd;
            // SAFETY: the kernel returned a new fd that we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok((fd, *self.0.addr))
        }
        fn abandoned(self, res: i32) {
            self.0.abandoned(res)
        }
        fn failed(self, err: io::Error) -> Self::Output {
            Err(err)
        }
    }
    Op::new(AcceptUnix(AcceptKind {
        fd,
        addr: Box::new(SockAddrBuf::empty()),
    }))
}

struct ConnectKind {
    fd: SharedFd,
    addr: Box<SockAddrBuf>,
}

// SAFETY: the entry points into the boxed address; `fd` is kept.
unsafe impl OpKind for ConnectKind {
    type Output = io::Result<()>;

    fn entry(&mut self) -> Entry {
        let (addr, len) = self.addr.as_ptr_len();
        opcode::Connect::new(types::Fd(self.fd.as_raw_fd()), addr, len).build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        result(res).map(drop)
    }

    fn failed(self, err: io::Error) -> Self::Output {
        Err(err)
    }
}

/// Connects a socket to `addr`.
pub fn connect(
    fd: SharedFd,
    addr: SockAddrBuf,
) -> impl std::future::Future<Output = io::Result<()>> + Send {
    Op::new(ConnectKind {
        fd,
        addr: Box::new(addr),
    })
}

/// A message header with the memory it points at, all inside the operation's cell.
struct MsgKind<B> {
    fd: SharedFd,
    buf: B,
    addr: SockAddrBuf,
    iov: libc::iovec,
    msg: libc::msghdr,
    send: bool,
    /// `recvmsg(2)` flags (`MSG_PEEK`); sends always use `MSG_NOSIGNAL` alone.
    recv_flags: u32,
}

// SAFETY: `msg` points at `iov` and `addr` in the same (heap, unmoving) cell, and `iov` at
// `buf`'s stable memory; `fd` is kept.
unsafe impl<B: IoBufMut> OpKind for MsgKind<B> {
    type Output = (io::Result<(usize, SockAddrBuf)>, B);

    fn entry(&mut self) -> Entry {
        if self.send {
            self.iov = libc::iovec {
                iov_base: self.buf.stable_mut_ptr().cast(),
                iov_len: self.buf.bytes_init(),
            };
        } else {
            self.iov = libc::iovec {
                iov_base: self.buf.stable_mut_ptr().cast(),
                iov_len: self.buf.bytes_total(),
            };
        }
        // SAFETY: msghdr is plain data; zero is a valid empty header.
        self.msg = unsafe { mem::zeroed() };
        self.msg.msg_iov = &mut self.iov;
        self.msg.msg_iovlen = 1;
        let (name, len) = self.addr.as_mut_ptrs();
        self.msg.msg_name = name.cast();
        // SAFETY: `len` points at the address buffer's length field.
        self.msg.msg_namelen = unsafe { *len };
        let fd = types::Fd(self.fd.as_raw_fd());
        if self.send {
            if self.addr.is_empty() {
                self.msg.msg_name = std::ptr::null_mut();
                self.msg.msg_namelen = 0;
            }
            opcode::SendMsg::new(fd, &self.msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        } else {
            opcode::RecvMsg::new(fd, &mut self.msg)
                .flags(self.recv_flags)
                .build()
        }
    }

    fn complete(mut self, res: i32, _flags: u32) -> Self::Output {
        match result(res) {
            Ok(n) => {
                if self.send {
                    (Ok((n as usize, SockAddrBuf::none())), self.buf)
                } else {
                    // SAFETY: the kernel wrote the first `n` bytes.
                    unsafe { self.buf.set_init(n as usize) };
                    self.addr.set_len(self.msg.msg_namelen);
                    (Ok((n as usize, self.addr)), self.buf)
                }
            }
            Err(e) => (Err(e), self.buf),
        }
    }

    fn failed(self, err: io::Error) -> Self::Output {
        (Err(err), self.buf)
    }
}

fn recv_msg<B: IoBufMut>(fd: SharedFd, buf: B, recv_flags: u32) -> Op<MsgKind<B>> {
    Op::new(MsgKind {
        fd,
        buf,
        addr: SockAddrBuf::empty(),
        // SAFETY: plain data, overwritten by `entry` before use.
        iov: unsafe { mem::zeroed() },
        // SAFETY: as above.
        msg: unsafe { mem::zeroed() },
        send: false,
        recv_flags,
    })
}

/// Receives one datagram and its source IP address.
pub fn recv_from<B: IoBufMut>(
    fd: SharedFd,
    buf: B,
) -> impl std::future::Future<Output = (io::Result<(usize, Option<SocketAddr>)>, B)> + Send {
    recv_from_flags(fd, buf, 0)
}

/// As [`recv_from`] with `MSG_PEEK`: the datagram stays queued, so the next receive
/// returns it again.
pub fn recv_from_peek<B: IoBufMut>(
    fd: SharedFd,
    buf: B,
) -> impl std::future::Future<Output = (io::Result<(usize, Option<SocketAddr>)>, B)> + Send {
    recv_from_flags(fd, buf, libc::MSG_PEEK as u32)
}

fn recv_from_flags<B: IoBufMut>(
    fd: SharedFd,
    buf: B,
    flags: u32,
) -> impl std::future::Future<Output = (io::Result<(usize, Option<SocketAddr>)>, B)> + Send {
    let op = recv_msg(fd, buf, flags);
    async move {
        let (res, buf) = op.await;
        (res.map(|(n, addr)| (n, addr.to_socket_addr())), buf)
    }
}

/// Receives one datagram and its source address in the kernel's layout (Unix sockets).
pub fn recv_from_unix<B: IoBufMut>(
    fd: SharedFd,
    buf: B,
) -> impl std::future::Future<Output = (io::Result<(usize, SockAddrBuf)>, B)> + Send {
    recv_msg(fd, buf, 0)
}

/// A buffer that is only read from, adapted to the message kind (which is generic over
/// writable buffers so one kind serves both directions).
struct ReadOnly<B>(B);

// SAFETY: forwards to `B`'s IoBuf contract.
unsafe impl<B: IoBuf> IoBuf for ReadOnly<B> {
    fn stable_ptr(&self) -> *const u8 {
        self.0.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.0.bytes_total()
    }
}

// SAFETY: the kernel only reads through this pointer (SendMsg); `set_init` never claims
// more than the inner buffer already has.
unsafe impl<B: IoBuf> IoBufMut for ReadOnly<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.stable_ptr().cast_mut()
    }
    unsafe fn set_init(&mut self, _len: usize) {}
}

/// Sends one datagram to `addr` (or the connected peer if `addr` is empty).
pub fn send_to<B: IoBuf>(
    fd: SharedFd,
    buf: B,
    addr: SockAddrBuf,
) -> impl std::future::Future<Output = (io::Result<usize>, B)> + Send {
    let op = Op::new(MsgKind {
        fd,
        buf: ReadOnly(buf),
        addr,
        // SAFETY: plain data, overwritten by `entry` before use.
        iov: unsafe { mem::zeroed() },
        // SAFETY: as above.
        msg: unsafe { mem::zeroed() },
        send: true,
        recv_flags: 0,
    });
    async move {
        let (res, buf) = op.await;
        (res.map(|(n, _)| n), buf.0)
    }
}

// SAFETY: the raw pointers inside iovec/msghdr point into the same cell; they are only
// dereferenced by the kernel while the cell is alive.
unsafe impl<B: Send> Send for MsgKind<B> {}

struct OpenKind {
    path: CString,
    flags: i32,
    mode: u32,
}

// SAFETY: the entry points into the owned C string.
unsafe impl OpKind for OpenKind {
    type Output = io::Result<OwnedFd>;

    fn entry(&mut self) -> Entry {
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags | libc::O_CLOEXEC)
            .mode(self.mode)
            .build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        let fd = result(res)? as RawFd;
        // SAFETY: a new fd from the kernel that we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn abandoned(self, res: i32) {
        if res >= 0 {
            close_raw(res);
        }
    }

    fn failed(self, err: io::Error) -> Self::Output {
        Err(err)
    }
}

/// Opens `path` (openat relative to the working directory) with `flags` and `mode`;
/// O_CLOEXEC is always added.
pub fn open(
    path: CString,
    flags: i32,
    mode: u32,
) -> impl std::future::Future<Output = io::Result<OwnedFd>> + Send {
    Op::new(OpenKind { path, flags, mode })
}

struct FsyncKind {
    fd: SharedFd,
    data_only: bool,
}

// SAFETY: refers to no memory; `fd` is kept.
unsafe impl OpKind for FsyncKind {
    type Output = io::Result<()>;

    fn entry(&mut self) -> Entry {
        let mut op = opcode::Fsync::new(types::Fd(self.fd.as_raw_fd()));
        if self.data_only {
            op = op.flags(types::FsyncFlags::DATASYNC);
        }
        op.build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        result(res).map(drop)
    }

    fn failed(self, err: io::Error) -> Self::Output {
        Err(err)
    }
}

/// fsync (or fdatasync with `data_only`).
pub fn fsync(
    fd: SharedFd,
    data_only: bool,
) -> impl std::future::Future<Output = io::Result<()>> + Send {
    Op::new(FsyncKind { fd, data_only })
}

struct StatxKind {
    fd: Option<SharedFd>,
    path: CString,
    flags: i32,
    statx: Box<libc::statx>,
}

// SAFETY: the entry points into the owned path and boxed statx buffer; `fd` is kept.
unsafe impl OpKind for StatxKind {
    type Output = io::Result<libc::statx>;

    fn entry(&mut self) -> Entry {
        let dirfd = self.fd.as_ref().map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd());
        opcode::Statx::new(
            types::Fd(dirfd),
            self.path.as_ptr(),
            (&mut *self.statx as *mut libc::statx).cast(),
        )
        .flags(self.flags)
        .mask(libc::STATX_ALL)
        .build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        result(res)?;
        Ok(*self.statx)
    }

    fn failed(self, err: io::Error) -> Self::Output {
        Err(err)
    }
}

/// statx of an open fd (`AT_EMPTY_PATH`) or of a path (following symlinks unless
/// `follow` is false).
pub fn statx(
    fd: Option<SharedFd>,
    path: CString,
    follow: bool,
) -> impl std::future::Future<Output = io::Result<libc::statx>> + Send {
    let mut flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    if fd.is_some() {
        flags |= libc::AT_EMPTY_PATH;
    }
    Op::new(StatxKind {
        fd,
        path,
        flags,
        // SAFETY: statx is plain data; zero is valid.
        statx: Box::new(unsafe { mem::zeroed() }),
    })
}

/// Path operations that take one or two C strings and return nothing.
enum PathOp {
    Unlink { path: CString, dir: bool },
    Mkdir { path: CString, mode: u32 },
    Rename { from: CString, to: CString },
    Link { from: CString, to: CString },
    Symlink { target: CString, link: CString },
}

// SAFETY: the entries point into owned C strings.
unsafe impl OpKind for PathOp {
    type Output = io::Result<()>;

    fn entry(&mut self) -> Entry {
        let cwd = types::Fd(libc::AT_FDCWD);
        match self {
            PathOp::Unlink { path, dir } => opcode::UnlinkAt::new(cwd, path.as_ptr())
                .flags(if *dir { libc::AT_REMOVEDIR } else { 0 })
                .build(),
            PathOp::Mkdir { path, mode } => {
                opcode::MkDirAt::new(cwd, path.as_ptr()).mode(*mode).build()
            }
            PathOp::Rename { from, to } => {
                opcode::RenameAt::new(cwd, from.as_ptr(), cwd, to.as_ptr()).build()
            }
            PathOp::Link { from, to } => {
                opcode::LinkAt::new(cwd, from.as_ptr(), cwd, to.as_ptr()).build()
            }
            PathOp::Symlink { target, link } => {
                opcode::SymlinkAt::new(cwd, target.as_ptr(), link.as_ptr()).build()
            }
        }
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        result(res).map(drop)
    }

    fn failed(self, err: io::Error) -> Self::Output {
        Err(err)
    }
}

/// unlink(2), or rmdir(2) with `dir`.
pub fn unlink(
    path: CString,
    dir: bool,
) -> impl std::future::Future<Output = io::Result<()>> + Send {
    Op::new(PathOp::Unlink { path, dir })
}

/// mkdir(2).
pub fn mkdir(path: CString, mode: u32) -> impl std::future::Future<Output = io::Result<()>> + Send {
    Op::new(PathOp::Mkdir { path, mode })
}

/// rename(2).
pub fn rename(
    from: CString,
    to: CString,
) -> impl std::future::Future<Output = io::Result<()>> + Send {
    Op::new(PathOp::Rename { from, to })
}

/// link(2).
pub fn hard_link(
    from: CString,
    to: CString,
) -> impl std::future::Future<Output = io::Result<()>> + Send {
    Op::new(PathOp::Link { from, to })
}

/// symlink(2): `link` will point at `target`.
pub fn symlink(
    target: CString,
    link: CString,
) -> impl std::future::Future<Output = io::Result<()>> + Send {
    Op::new(PathOp::Symlink { target, link })
}

struct ShutdownKind {
    fd: SharedFd,
    how: i32,
}

// SAFETY: refers to no memory; `fd` is kept.
unsafe impl OpKind for ShutdownKind {
    type Output = io::Result<()>;

    fn entry(&mut self) -> Entry {
        opcode::Shutdown::new(types::Fd(self.fd.as_raw_fd()), self.how).build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        result(res).map(drop)
    }

    fn failed(self, err: io::Error) -> Self::Output {
        Err(err)
    }
}

/// shutdown(2) of a socket (`libc::SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`).
pub fn shutdown(
    fd: SharedFd,
    how: i32,
) -> impl std::future::Future<Output = io::Result<()>> + Send {
    Op::new(ShutdownKind { fd, how })
}

struct CloseKind {
    fd: Option<OwnedFd>,
}

// SAFETY: refers to no memory; the fd number stays reserved until the completion because
// nothing else owns it.
unsafe impl OpKind for CloseKind {
    type Output = io::Result<()>;

    fn entry(&mut self) -> Entry {
        let fd = self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        opcode::Close::new(types::Fd(fd)).build()
    }

    fn complete(mut self, res: i32, _flags: u32) -> Self::Output {
        // The kernel closed it (or failed to, in which case the number is still ours but
        // closing again is wrong on Linux: close always releases the number).
        if let Some(fd) = self.fd.take() {
            mem::forget(fd);
        }
        result(res).map(drop)
    }

    fn abandoned(mut self, _res: i32) {
        if let Some(fd) = self.fd.take() {
            mem::forget(fd);
        }
    }

    fn failed(mut self, err: io::Error) -> Self::Output {
        // Not submitted: close it here.
        drop(self.fd.take());
        Err(err)
    }
}

/// Closes `fd` through the ring, reporting the error close(2) gives (asyncio's and std's
/// drop-close discard it).
pub fn close(fd: OwnedFd) -> impl std::future::Future<Output = io::Result<()>> + Send {
    Op::new(CloseKind { fd: Some(fd) })
}

/// Vectored read or write: the buffers and their iovec array, inside the cell.
struct VectoredKind<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    pos: Option<u64>,
    write: bool,
    /// A socket write goes as sendmsg with MSG_NOSIGNAL: writev would raise SIGPIPE on a
    /// closed peer.
    socket: bool,
    msg: libc::msghdr,
}

// SAFETY: the iovecs point into each buffer's stable memory (within its capacity for reads,
// its initialised bytes for writes) and the iovec array is a heap Vec of the kind; `fd` is
// kept.
unsafe impl<B: IoBufMut> OpKind for VectoredKind<B> {
    type Output = (io::Result<usize>, Vec<B>);

    fn entry(&mut self) -> Entry {
        let write = self.write;
        self.iovecs = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.stable_mut_ptr().cast(),
                iov_len: if write {
                    b.bytes_init()
                } else {
                    b.bytes_total()
                },
            })
            .collect();
        let fd = types::Fd(self.fd.as_raw_fd());
        let n = self.iovecs.len().min(libc::UIO_MAXIOV as usize) as u32;
        if write && self.socket {
            // SAFETY: msghdr is plain data; zero is a valid empty header.
            self.msg = unsafe { mem::zeroed() };
            self.msg.msg_iov = self.iovecs.as_mut_ptr();
            self.msg.msg_iovlen = n as _;
            opcode::SendMsg::new(fd, &self.msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        } else if write {
            opcode::Writev::new(fd, self.iovecs.as_ptr(), n)
                .offset(offset(self.pos))
                .build()
        } else {
            opcode::Readv::new(fd, self.iovecs.as_ptr(), n)
                .offset(offset(self.pos))
                .build()
        }
    }

    fn complete(mut self, res: i32, _flags: u32) -> Self::Output {
        match result(res) {
            Ok(n) => {
                if !self.write {
                    // Spread the bytes read over the buffers in order.
                    let mut left = n as usize;
                    for b in &mut self.bufs {
                        let take = left.min(b.bytes_total());
                        // SAFETY: the kernel filled the first `take` bytes of this buffer.
                        unsafe { b.set_init(take) };
                        left -= take;
                    }
                }
                (Ok(n as usize), self.bufs)
            }
            Err(e) => (Err(e), self.bufs),
        }
    }

    fn failed(self, err: io::Error) -> Self::Output {
        (Err(err), self.bufs)
    }
}

// SAFETY: the raw pointers in the iovecs point into buffers owned by the same kind.
unsafe impl<B: Send> Send for VectoredKind<B> {}

/// Reads into several buffers in order (readv), at `pos` or the current position (`None`;
/// sockets have none); each buffer is filled from its start, the next only once the
/// previous is full.
pub fn readv<B: IoBufMut>(
    fd: SharedFd,
    bufs: Vec<B>,
    pos: Option<u64>,
) -> impl std::future::Future<Output = (io::Result<usize>, Vec<B>)> + Send {
    Op::new(VectoredKind {
        fd,
        bufs,
        iovecs: Vec::new(),
        pos,
        write: false,
        socket: false,
        // SAFETY: plain data, unused for reads.
        msg: unsafe { mem::zeroed() },
    })
}

/// Writes the initialised bytes of several buffers in order, at `pos` or the current
/// position (writev), or on a socket (`socket`: sendmsg with MSG_NOSIGNAL, so a closed
/// peer is an EPIPE error, never a SIGPIPE).
pub fn writev<B: IoBuf>(
    fd: SharedFd,
    bufs: Vec<B>,
    pos: Option<u64>,
    socket: bool,
) -> impl std::future::Future<Output = (io::Result<usize>, Vec<B>)> + Send {
    let op = Op::new(VectoredKind {
        fd,
        bufs: bufs.into_iter().map(ReadOnly).collect(),
        iovecs: Vec::new(),
        pos,
        write: true,
        socket,
        // SAFETY: plain data, overwritten by `entry` before use.
        msg: unsafe { mem::zeroed() },
    });
    async move {
        let (res, bufs) = op.await;
        (res, bufs.into_iter().map(|b| b.0).collect())
    }
}

struct PollKind {
    fd: RawFd,
    events: u32,
}

// SAFETY: refers to no memory. The fd is a number the caller keeps open (the kernel takes
// its own reference to the file when the entry is issued).
unsafe impl OpKind for PollKind {
    type Output = io::Result<u32>;

    fn entry(&mut self) -> Entry {
        opcode::PollAdd::new(types::Fd(self.fd), self.events).build()
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        result(res)
    }

    fn failed(self, err: io::Error) -> Self::Output {
        Err(err)
    }
}

/// Waits until `fd` has one of `events` (`libc::POLLIN`, `POLLOUT`...) and returns the
/// events it has (single-shot `IORING_OP_POLL_ADD`). The fd is borrowed: keep it open while
/// the future lives (dropping the future cancels the poll; polls touch no memory).
pub fn poll(fd: RawFd, events: u32) -> impl std::future::Future<Output = io::Result<u32>> + Send {
    Op::new(PollKind { fd, events })
}
