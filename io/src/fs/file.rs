//! `File` and `OpenOptions`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ringleader_runtime::driver::{ops, IoBuf, IoBufMut, SharedFd};

use super::{blocking, cstring};
use crate::{fd, BufResult};

/// How to open a file, as std's `OpenOptions`.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Every option off; mode 0o666 (before the umask).
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }
    /// Open for reading.
    pub fn read(&mut self, on: bool) -> &mut Self {
        self.read = on;
        self
    }
    /// Open for writing.
    pub fn write(&mut self, on: bool) -> &mut Self {
        self.write = on;
        self
    }
    /// Writes go to the end (implies write).
    pub fn append(&mut self, on: bool) -> &mut Self {
        self.append = on;
        self
    }
    /// Truncate to zero length.
    pub fn truncate(&mut self, on: bool) -> &mut Self {
        self.truncate = on;
        self
    }
    /// Create if missing.
    pub fn create(&mut self, on: bool) -> &mut Self {
        self.create = on;
        self
    }
    /// Create, failing if it exists.
    pub fn create_new(&mut self, on: bool) -> &mut Self {
        self.create_new = on;
        self
    }
    /// Permission bits for a created file.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }
    /// Extra `open(2)` flags (`O_DIRECT`, `O_NOFOLLOW`...).
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.custom_flags = flags;
        self
    }

    fn flags(&self) -> io::Result<i32> {
        let access = match (self.read, self.write || self.append) {
            (true, false) => libc::O_RDONLY,
            (false, true) => libc::O_WRONLY,
            (true, true) => libc::O_RDWR,
            (false, false) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "open needs read, write or append",
                ))
            }
        };
        let mut flags = access | self.custom_flags;
        if self.append {
            flags |= libc::O_APPEND;
        }
        if self.truncate {
            if !(self.write || self.append) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "truncate needs write access",
                ));
            }
            flags |= libc::O_TRUNC;
        }
        if self.create_new {
            flags |= libc::O_CREAT | libc::O_EXCL;
        } else if self.create {
            flags |= libc::O_CREAT;
        }
        if (self.create || self.create_new) && !(self.write || self.append) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "create needs write access",
            ));
        }
        Ok(flags)
    }

    /// Opens `path` through the ring.
    ///
    /// # Errors
    /// `NotFound`, `PermissionDenied`, `AlreadyExists` (create_new), `InvalidInput` for an
    /// impossible combination of options.
    ///
    /// # Cancel safety
    /// Cancel safe: a file opened after the future was dropped is closed.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let flags = self.flags()?;
        let fd = ops::open(cstring(path.as_ref())?, flags, self.mode).await?;
        Ok(File {
            fd: Arc::new(fd),
            pos: AtomicU64::new(0),
        })
    }
}

/// An open file. Positioned reads and writes (`read_at`, `write_at`) take `&self` and can run
/// concurrently; the cursor methods (`read`, `write`) use and advance a position of ours.
#[derive(Debug)]
pub struct File {
    fd: SharedFd,
    pos: AtomicU64,
}

impl File {
    /// Opens read-only.
    ///
    /// # Errors
    /// `NotFound`, `PermissionDenied`...
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens write-only, creating or truncating.
    ///
    /// # Errors
    /// `NotFound` for a missing directory, `PermissionDenied`...
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Options for opening.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Reads into `buf` from offset `pos`; `Ok(0)` at end of file.
    ///
    /// # Errors
    /// `IsADirectory`, `BadFileDescriptor` for a write-only file...
    pub async fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        ops::read(self.fd.clone(), buf, Some(pos)).await
    }

    /// Reads until `buf` is full, from offset `pos`.
    ///
    /// # Errors
    /// `UnexpectedEof` if the file ends first.
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        let fd = &self.fd;
        fd::read_exact(buf, |b, off| ops::read(fd.clone(), b, Some(pos + off))).await
    }

    /// Reads from offset `pos` to end of file, appending to `buf`.
    ///
    /// # Errors
    /// The read's error; the bytes read stay in the buffer.
    pub async fn read_to_end_at(&self, buf: Vec<u8>, pos: u64) -> BufResult<usize, Vec<u8>> {
        let fd = &self.fd;
        fd::read_to_end(buf, |b, off| ops::read(fd.clone(), b, Some(pos + off))).await
    }

    /// Writes some of `buf` at offset `pos`.
    ///
    /// # Errors
    /// `BadFileDescriptor` for a read-only file, `StorageFull`...
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        ops::write(self.fd.clone(), buf, Some(pos)).await
    }

    /// Writes all of `buf` at offset `pos`.
    ///
    /// # Errors
    /// As [`write_at`](Self::write_at).
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        let fd = &self.fd;
        fd::write_all(buf, |b, off| ops::write(fd.clone(), b, Some(pos + off))).await
    }

    /// Reads into several buffers in order (preadv) from offset `pos`.
    ///
    /// # Errors
    /// As [`read_at`](Self::read_at).
    pub async fn readv_at<B: IoBufMut>(&self, bufs: Vec<B>, pos: u64) -> BufResult<usize, Vec<B>> {
        ops::readv(self.fd.clone(), bufs, Some(pos)).await
    }

    /// Writes several buffers in order (pwritev) at offset `pos`; returns the bytes written.
    ///
    /// # Errors
    /// As [`write_at`](Self::write_at).
    pub async fn writev_at<B: IoBuf>(&self, bufs: Vec<B>, pos: u64) -> BufResult<usize, Vec<B>> {
        ops::writev(self.fd.clone(), bufs, Some(pos), false).await
    }

    /// Reads at the cursor and advances it.
    ///
    /// # Errors
    /// As [`read_at`](Self::read_at).
    pub async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        let pos = *self.pos.get_mut();
        let (res, buf) = self.read_at(buf, pos).await;
        if let Ok(n) = res {
            *self.pos.get_mut() += n as u64;
        }
        (res, buf)
    }

    /// Writes all of `buf` at the cursor and advances it.
    ///
    /// # Errors
    /// As [`write_at`](Self::write_at).
    pub async fn write_all<B: IoBuf>(&mut self, buf: B) -> BufResult<(), B> {
        let pos = *self.pos.get_mut();
        let len = buf.bytes_init() as u64;
        let (res, buf) = self.write_all_at(buf, pos).await;
        if res.is_ok() {
            *self.pos.get_mut() += len;
        }
        (res, buf)
    }

    /// Writes some of `buf` at the cursor and advances it.
    ///
    /// # Errors
    /// As [`write_at`](Self::write_at).
    pub async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        let pos = *self.pos.get_mut();
        let (res, buf) = self.write_at(buf, pos).await;
        if let Ok(n) = res {
            *self.pos.get_mut() += n as u64;
        }
        (res, buf)
    }

    /// Moves the cursor to `pos` (from the start).
    pub fn seek(&mut self, pos: u64) {
        *self.pos.get_mut() = pos;
    }

    /// The cursor's position.
    pub fn position(&self) -> u64 {
        self.pos.load(Ordering::Relaxed)
    }

    /// fsync: data and metadata reach the device.
    ///
    /// # Errors
    /// `EIO` and the like.
    pub async fn sync_all(&self) -> io::Result<()> {
        ops::fsync(self.fd.clone(), false).await
    }

    /// fdatasync: data (and the metadata needed to read it) reach the device.
    ///
    /// # Errors
    /// As [`sync_all`](Self::sync_all).
    pub async fn sync_data(&self) -> io::Result<()> {
        ops::fsync(self.fd.clone(), true).await
    }

    /// Metadata through statx on the open file.
    ///
    /// # Errors
    /// Rare: the statx error.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        ops::statx(Some(self.fd.clone()), c"".to_owned(), true)
            .await
            .map(Metadata::from_statx)
    }

    /// Truncates or extends to `size` bytes (on the blocking pool: the ring's ftruncate is
    /// too new to rely on).
    ///
    /// # Errors
    /// `InvalidInput` for a read-only file...
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        let fd = self.fd.try_clone()?;
        blocking(move || std::fs::File::from(fd).set_len(size)).await
    }

    /// Takes a std file; the cursor starts at 0 (positioned I/O ignores the std cursor).
    pub fn from_std(file: std::fs::File) -> File {
        File {
            fd: Arc::new(file.into()),
            pos: AtomicU64::new(0),
        }
    }

    /// Closes the file through the ring, reporting close's error (which can carry a
    /// delayed write error on network filesystems).
    ///
    /// # Errors
    /// `close(2)`'s error.
    pub async fn close(self) -> io::Result<()> {
        crate::net::close_shared(self.fd).await
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A file's metadata, from statx.
#[derive(Debug, Clone, Copy)]
pub struct Metadata {
    statx: libc::statx,
}

fn time(ts: libc::statx_timestamp) -> SystemTime {
    let d = Duration::new(ts.tv_sec.unsigned_abs(), ts.tv_nsec);
    if ts.tv_sec >= 0 {
        SystemTime::UNIX_EPOCH + d
    } else {
        SystemTime::UNIX_EPOCH - d
    }
}

impl Metadata {
    pub(crate) fn from_statx(statx: libc::statx) -> Metadata {
        Metadata { statx }
    }
    fn kind(&self) -> u32 {
        u32::from(self.statx.stx_mode) & libc::S_IFMT
    }
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.statx.stx_size
    }
    /// Whether the size is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }
    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
    /// A symbolic link (only from `symlink_metadata`).
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }
    /// Permission bits and file type, as `st_mode`.
    pub fn mode(&self) -> u32 {
        u32::from(self.statx.stx_mode)
    }
    /// Last modification.
    pub fn modified(&self) -> SystemTime {
        time(self.statx.stx_mtime)
    }
    /// Last access.
    pub fn accessed(&self) -> SystemTime {
        time(self.statx.stx_atime)
    }
    /// Creation (birth) time, if the filesystem records it.
    pub fn created(&self) -> Option<SystemTime> {
        (self.statx.stx_mask & libc::STATX_BTIME != 0).then(|| time(self.statx.stx_btime))
    }
    /// Inode number.
    pub fn ino(&self) -> u64 {
        self.statx.stx_ino
    }
    /// Hard link count.
    pub fn nlink(&self) -> u32 {
        self.statx.stx_nlink
    }
}

impl File {
    /// The shared fd, for this crate's operations that take several handles (sendfile).
    pub(crate) fn shared_fd(&self) -> &SharedFd {
        &self.fd
    }
}
