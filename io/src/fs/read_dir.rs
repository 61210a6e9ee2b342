//! [`read_dir`]: a directory's entries as a stream, read in chunks on the blocking pool (the
//! ring has no getdents).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::fs::FileType;
use std::future::{poll_fn, Future};
use std::io;
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use ringleader_runtime::task::{spawn_blocking, JoinHandle};

use super::Metadata;

/// Entries read per trip to the blocking pool: one trip per entry would cost a thread
/// hand-off each; a whole huge directory at once would hold it all in memory.
const CHUNK: usize = 64;

/// Entries read (or the error met) and the directory handle to go on with (`None` once
/// it is exhausted).
type Chunk = (Option<std::fs::ReadDir>, VecDeque<io::Result<DirEntry>>);

/// Opens the directory `path` for listing: its entries, without `.` and `..`, in the
/// file system's order, through [`ReadDir::next_entry`] or as a
/// [`Stream`](futures_core::Stream).
///
/// Opening and the first entries are read in one trip to the blocking pool, then
/// 64 entries per trip (the ring has no getdents).
///
/// ```
/// # ringleader_runtime::run(async {
/// use ringleader_io::fs;
///
/// let dir = std::env::temp_dir().join(format!("rl-read-dir-doc-{}", std::process::id()));
/// fs::create_dir_all(dir.join("sub")).await?;
/// fs::write(dir.join("file.txt"), b"hi").await?;
///
/// let mut names = Vec::new();
/// let mut entries = fs::read_dir(&dir).await?;
/// while let Some(entry) = entries.next_entry().await? {
///     names.push((entry.file_name(), entry.file_type()?.is_dir()));
/// }
/// names.sort();
/// assert_eq!(names, [("file.txt".into(), false), ("sub".into(), true)]);
/// fs::remove_dir_all(&dir).await?;
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
///
/// # Errors
/// `NotFound`, `NotADirectory`, `PermissionDenied`... when opening; a later error reading
/// the directory comes from `next_entry` (and the listing ends after it).
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref().to_path_buf();
    let (dir, buffered) = super::blocking(move || Ok(read_chunk(std::fs::read_dir(path)?))).await?;
    Ok(ReadDir {
        buffered,
        dir,
        pending: None,
    })
}

/// Reads up to [`CHUNK`] entries from `dir`.
fn read_chunk(mut dir: std::fs::ReadDir) -> Chunk {
    let mut chunk = VecDeque::with_capacity(CHUNK);
    for _ in 0..CHUNK {
        match dir.next() {
            Some(Ok(entry)) => chunk.push_back(Ok(DirEntry::from_std(&entry))),
            Some(Err(e)) => {
                // std's iterator may repeat a failing getdents forever: stop at the first.
                chunk.push_back(Err(e));
                return (None, chunk);
            }
            None => return (None, chunk),
        }
    }
    (Some(dir), chunk)
}

/// The entries of a directory, from [`read_dir`].
///
/// Dropping it closes the directory (at once, or when a chunk being read on the blocking
/// pool is done).
pub struct ReadDir {
    /// Entries read and not yet handed out.
    buffered: VecDeque<io::Result<DirEntry>>,
    /// The open directory while it has more, and no chunk is being read.
    dir: Option<std::fs::ReadDir>,
    /// The chunk being read.
    pending: Option<JoinHandle<Chunk>>,
}

impl ReadDir {
    /// The next entry; `Ok(None)` once every entry was given.
    ///
    /// # Cancel safety
    /// Cancel safe: a chunk being read when the future is dropped stays with the `ReadDir`,
    /// and the next call goes on from it, so no entry is lost.
    ///
    /// # Errors
    /// An error reading the directory (then `Ok(None)` after it).
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        poll_fn(|cx| self.poll_next_entry(cx)).await
    }

    /// Polls for the next entry: the poll form of [`next_entry`](Self::next_entry).
    ///
    /// # Errors
    /// As `next_entry`.
    pub fn poll_next_entry(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<DirEntry>>> {
        loop {
            if let Some(entry) = self.buffered.pop_front() {
                return Poll::Ready(entry.map(Some));
            }
            if let Some(pending) = &mut self.pending {
                let done = ready!(Pin::new(pending).poll(cx));
                self.pending = None;
                match done {
                    Ok((dir, chunk)) => {
                        self.dir = dir;
                        self.buffered = chunk;
                        continue;
                    }
                    // The pool dropped the job (the runtime is shutting down): the
                    // directory went with it.
                    Err(e) => return Poll::Ready(Err(io::Error::other(e))),
                }
            }
            let Some(dir) = self.dir.take() else {
                return Poll::Ready(Ok(None));
            };
            self.pending = Some(spawn_blocking(move || read_chunk(dir)));
        }
    }
}

impl Stream for ReadDir {
    type Item = io::Result<DirEntry>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_next_entry(cx)
            .map(|entry| entry.transpose())
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir")
            .field("buffered", &self.buffered.len())
            .field("reading", &self.pending.is_some())
            .field("exhausted", &(self.dir.is_none() && self.pending.is_none()))
            .finish()
    }
}

/// One entry of a directory, from [`ReadDir`]: its name and type as the listing gave them.
#[derive(Debug)]
pub struct DirEntry {
    path: PathBuf,
    ino: u64,
    /// Found while listing (from the entry's `d_type`, or an lstat on the pool where the
    /// file system gives none); the error's OS code where that failed.
    file_type: Result<FileType, (io::ErrorKind, Option<i32>)>,
}

impl DirEntry {
    fn from_std(entry: &std::fs::DirEntry) -> DirEntry {
        DirEntry {
            path: entry.path(),
            ino: entry.ino(),
            file_type: entry.file_type().map_err(|e| (e.kind(), e.raw_os_error())),
        }
    }

    /// The entry's full path: the directory's path joined with the entry's name.
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The entry's name within its directory.
    pub fn file_name(&self) -> OsString {
        self.path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default()
    }

    /// The entry's inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The entry's type, as listed: a symlink is a symlink (not followed). Known without
    /// a further system call.
    ///
    /// # Errors
    /// The error met finding it out, where the file system's listing gave no type and the
    /// entry was gone by the time it was looked at.
    pub fn file_type(&self) -> io::Result<FileType> {
        self.file_type.map_err(|(kind, code)| match code {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::from(kind),
        })
    }

    /// The entry's metadata, not following a symlink (statx through the ring).
    ///
    /// # Errors
    /// `NotFound` if the entry was removed since it was listed...
    pub async fn metadata(&self) -> io::Result<Metadata> {
        super::symlink_metadata(&self.path).await
    }
}
