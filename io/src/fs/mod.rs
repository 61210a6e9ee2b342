//! Files and filesystem operations. Reads, writes, opens, fsync, statx, mkdir, unlink,
//! rename and links go through the ring; `read_dir`, `set_len`, `canonicalize`,
//! `read_link`, `copy`, `remove_dir_all` and permission changes, which the ring has no
//! operation for, run on the blocking pool.

mod file;
mod read_dir;

pub use file::{File, Metadata, OpenOptions};
pub use read_dir::{read_dir, DirEntry, ReadDir};

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ringleader_runtime::driver::ops;

pub(crate) fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains an interior NUL byte",
        )
    })
}

/// Reads a whole file.
///
/// # Errors
/// `NotFound`, `PermissionDenied`, `IsADirectory`...
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let file = File::open(path).await?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1).max(64));
    let (res, buf) = file.read_to_end_at(buf, 0).await;
    res?;
    Ok(buf)
}

/// Reads a whole file as UTF-8.
///
/// # Errors
/// As [`read`], and `InvalidData` if it is not UTF-8.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    String::from_utf8(read(path).await?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes `contents` to a file, creating or truncating it.
///
/// # Errors
/// `NotFound` for a missing directory, `PermissionDenied`...
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let file = File::create(path).await?;
    let (res, _) = file.write_all_at(contents.as_ref().to_vec(), 0).await;
    res?;
    file.close().await
}

/// Creates a directory (mode 0o777 before the umask).
///
/// # Errors
/// `AlreadyExists`, `NotFound` for a missing parent...
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    ops::mkdir(cstring(path.as_ref())?, 0o777).await
}

/// Creates a directory and every missing parent; an existing directory is fine.
///
/// # Errors
/// As std's `create_dir_all`: `AlreadyExists` (`EEXIST`) if `path` exists and is not a
/// directory, `NotADirectory` (`ENOTDIR`) if a component above it is not one; others as
/// [`create_dir`].
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    let mut missing: Vec<&Path> = Vec::new();
    let mut cursor = Some(path);
    // Walk up until a component exists, then create downwards.
    while let Some(p) = cursor {
        if p.as_os_str().is_empty() {
            break;
        }
        match metadata(p).await {
            Ok(m) if m.is_dir() => break,
            // std gives mkdir's EEXIST here (kind `AlreadyExists`, os error 17); so do we.
            Ok(_) if p == path => return Err(io::Error::from_raw_os_error(libc::EEXIST)),
            // A file above the last component: mkdir below it would fail with ENOTDIR, which
            // is what std reports.
            Ok(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(p);
                cursor = p.parent();
            }
            Err(e) => return Err(e),
        }
    }
    for p in missing.into_iter().rev() {
        match create_dir(p).await {
            Ok(()) => {}
            // Created concurrently by someone else: fine if it is a directory.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && metadata(p).await?.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes a file (or symlink).
///
/// # Errors
/// `NotFound`, `IsADirectory`...
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    ops::unlink(cstring(path.as_ref())?, false).await
}

/// Removes an empty directory.
///
/// # Errors
/// `NotFound`, `DirectoryNotEmpty`, `NotADirectory`...
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    ops::unlink(cstring(path.as_ref())?, true).await
}

/// Removes a directory and everything in it (on the blocking pool). Symlinks inside are
/// removed as links, never followed.
///
/// # Errors
/// As std's `remove_dir_all`.
pub async fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    blocking(move || std::fs::remove_dir_all(path)).await
}

/// Renames `from` to `to`, replacing `to` if it exists.
///
/// # Errors
/// `NotFound`, `CrossesDevices`...
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    ops::rename(cstring(from.as_ref())?, cstring(to.as_ref())?).await
}

/// Copies the contents of `from` to `to`, creating `to` or truncating and overwriting it,
/// and gives `from`'s permission bits to `to`; returns the number of bytes copied. As
/// std's `copy`, on the blocking pool (the ring has no copy operation): std copies in the
/// kernel with `copy_file_range(2)` where the filesystems allow it, falling back to
/// `sendfile(2)` or reads and writes. As with std, copying a file onto itself truncates it.
///
/// # Errors
/// `NotFound` if `from` is missing (`to` is then not created), `InvalidInput` if `from` is
/// not a regular file (nor a symlink to one), `NotFound` for a missing directory of `to`,
/// `PermissionDenied`...
///
/// # Cancel safety
/// Dropping the future does not stop the copy: it runs to its end on the blocking pool.
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let from = from.as_ref().to_path_buf();
    let to = to.as_ref().to_path_buf();
    blocking(move || std::fs::copy(from, to)).await
}

/// Creates a hard link `link` to `original`.
///
/// # Errors
/// `AlreadyExists`, `NotFound`...
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    ops::hard_link(cstring(original.as_ref())?, cstring(link.as_ref())?).await
}

/// Creates a symbolic link `link` pointing at `original`.
///
/// # Errors
/// `AlreadyExists`...
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    ops::symlink(cstring(original.as_ref())?, cstring(link.as_ref())?).await
}

/// The target a symbolic link points at, as stored in the link (it may be relative, or
/// dangle). On the blocking pool: the ring has no readlink.
///
/// # Errors
/// `NotFound`, and `InvalidInput` (`EINVAL`) if `path` is not a symlink.
pub async fn read_link(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_path_buf();
    blocking(move || std::fs::read_link(path)).await
}

/// Metadata of a path, following symlinks (statx through the ring).
///
/// # Errors
/// `NotFound`, `PermissionDenied`...
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    ops::statx(None, cstring(path.as_ref())?, true)
        .await
        .map(Metadata::from_statx)
}

/// Metadata of a path without following a final symlink.
///
/// # Errors
/// As [`metadata`].
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    ops::statx(None, cstring(path.as_ref())?, false)
        .await
        .map(Metadata::from_statx)
}

/// Whether `path` exists (errors other than `NotFound` are returned).
///
/// # Errors
/// `PermissionDenied` and the like.
pub async fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    match metadata(path).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sets the permissions of `path`, following symlinks (chmod, on the blocking pool: the
/// ring has no chmod).
///
/// # Errors
/// `NotFound`, `PermissionDenied`...
pub async fn set_permissions(path: impl AsRef<Path>, perm: std::fs::Permissions) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    blocking(move || std::fs::set_permissions(path, perm)).await
}

/// The canonical absolute path (on the blocking pool).
///
/// # Errors
/// `NotFound`...
pub async fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_path_buf();
    blocking(move || std::fs::canonicalize(path)).await
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match ringleader_runtime::task::spawn_blocking(f).await {
        Ok(res) => res,
        Err(err) => Err(io::Error::other(err)),
    }
}
