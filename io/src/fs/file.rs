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

    /// The `open(2)` flags, checked as std's `OpenOptions` checks them (Rust 1.95,
    /// `library/std/src/sys/fs/unix.rs`, `get_access_mode` / `get_creation_mode`):
    /// - no access at all is `InvalidInput`;
    /// - `create`, `create_new` or `truncate` without `write` or `append` is `InvalidInput`;
    /// - `truncate` with `append` is `InvalidInput` unless `create_new` is set;
    /// - `create_new` overrides `create` and `truncate` (`O_CREAT | O_EXCL` only);
    /// - the access-mode bits of `custom_flags` are ignored, so they cannot widen or narrow
    ///   the access asked for with `read` / `write`.
    fn flags(&self) -> io::Result<i32> {
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "must specify at least one of read, write, or append access",
                ))
            }
        };
        let needs_write = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "creating or truncating a file requires write or append access",
            )
        };
        match (self.write, self.append) {
            (true, false) => {}
            (false, false) => {
                if self.truncate || self.create || self.create_new {
                    return Err(needs_write());
                }
            }
            (_, true) => {
                if self.truncate && !self.create_new {
                    return Err(needs_write());
                }
            }
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (false, false, false) => 0,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        };
        Ok(access | creation | (self.custom_flags & !libc::O_ACCMODE))
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
            append: self.append,
        })
    }
}

/// An open file. Positioned reads and writes (`read_at`, `write_at`) take `&self` and can run
/// concurrently and never move the cursor; the cursor methods (`read`, `write`, `write_all`)
/// use a position of ours and advance it by the bytes transferred, as std's `File` does.
///
/// # Append mode
/// As in std on Linux, every write to a file opened with [`OpenOptions::append`] lands at
/// the end of the file, whatever the cursor or the `pos` given to `write_at` (`O_APPEND`;
/// `pwrite(2)`, BUGS). After a cursor write the cursor is at the end of the data written,
/// as std's is; `write_at` leaves it where it was.
#[derive(Debug)]
pub struct File {
    fd: SharedFd,
    /// The cursor. Only `&mut self` methods store it; `position` reads it through `&self`.
    pos: AtomicU64,
    /// Opened with `O_APPEND`: cursor writes use (and then read back) the kernel's file
    /// position, which `O_APPEND` moves to the end of each write.
    append: bool,
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

    /// Writes all of `buf` at the cursor (at the end of the file in append mode) and
    /// advances the cursor. An empty buffer writes nothing and succeeds.
    ///
    /// # Errors
    /// As [`write_at`](Self::write_at); `WriteZero` if a write makes no progress. As std's
    /// `write_all`, the cursor has advanced past whatever was written before the error.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped call may have written a prefix of `buf` without moving
    /// the cursor past it.
    pub async fn write_all<B: IoBuf>(&mut self, mut buf: B) -> BufResult<(), B> {
        let total = buf.bytes_init();
        let mut written = 0;
        while written < total {
            let (res, slice) = self.write(buf.slice(written..total)).await;
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

    /// Writes some of `buf` at the cursor (at the end of the file in append mode) and
    /// advances the cursor by the bytes written.
    ///
    /// # Errors
    /// As [`write_at`](Self::write_at).
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped call may have written bytes without moving the cursor.
    pub async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        if self.append {
            // Offset -1: the kernel's file position, which O_APPEND sets to the end of the
            // file before the write and leaves at the end of the data written.
            let (res, buf) = ops::write(self.fd.clone(), buf, None).await;
            if res.is_ok() {
                match self.kernel_position() {
                    Ok(end) => *self.pos.get_mut() = end,
                    Err(e) => return (Err(e), buf),
                }
            }
            return (res, buf);
        }
        let pos = *self.pos.get_mut();
        let (res, buf) = self.write_at(buf, pos).await;
        if let Ok(n) = res {
            *self.pos.get_mut() += n as u64;
        }
        (res, buf)
    }

    /// The kernel's file position (`lseek(fd, 0, SEEK_CUR)`), for append mode.
    fn kernel_position(&self) -> io::Result<u64> {
        // SAFETY: lseek touches no memory of ours; the fd is open for as long as `self.fd`
        // lives, and `self` holds it.
        let off = unsafe { libc::lseek(self.fd.as_raw_fd(), 0, libc::SEEK_CUR) };
        if off < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(off as u64)
    }

    /// Moves the cursor to `pos` (from the start). Positions past the end are allowed, as
    /// with std: a read there returns 0 bytes and a write there leaves a hole of zeros.
    /// Unlike std's `Seek::seek` this takes a plain offset and cannot fail; see
    /// [`seek_from`](Self::seek_from) for std's `SeekFrom` shape.
    pub fn seek(&mut self, pos: u64) {
        *self.pos.get_mut() = pos;
    }

    /// Moves the cursor as std's `Seek::seek` (and tokio's `AsyncSeekExt::seek`) do and
    /// returns the new position from the start. `SeekFrom::End` reads the file's length
    /// through the ring (statx).
    ///
    /// # Errors
    /// `InvalidInput` (`EINVAL`, as `lseek(2)` gives std) for a position before the start
    /// of the file or past `i64::MAX`; the cursor is then unchanged. For `SeekFrom::End`,
    /// the statx error.
    ///
    /// # Cancel safety
    /// Cancel safe: the cursor only moves once the new position is known.
    pub async fn seek_from(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let new = match pos {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::Current(d) => self.position().checked_add_signed(d),
            io::SeekFrom::End(d) => self.metadata().await?.len().checked_add_signed(d),
        };
        match new {
            Some(n) if i64::try_from(n).is_ok() => {
                *self.pos.get_mut() = n;
                Ok(n)
            }
            _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
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
    /// A file opened in append mode keeps appending (the `O_APPEND` flag is read back).
    pub fn from_std(file: std::fs::File) -> File {
        // SAFETY: F_GETFL reads the fd's status flags and touches no memory; `file` keeps
        // the fd open for the call.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        File {
            fd: Arc::new(file.into()),
            pos: AtomicU64::new(0),
            append: flags >= 0 && flags & libc::O_APPEND != 0,
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

    /// Permissions, as std's `Metadata::permissions` gives them (the mode is the whole
    /// `st_mode`, file type bits included, as std's is).
    pub fn permissions(&self) -> std::fs::Permissions {
        use std::os::unix::fs::PermissionsExt;
        std::fs::Permissions::from_mode(self.mode())
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
