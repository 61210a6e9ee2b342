//! `ringleader::fs` against the documented behaviour of `std::fs` (and `tokio::fs` where it
//! agrees): open options and their errors, cursor against positioned I/O, append mode,
//! seeking, `set_len`, metadata, close and drop, the path functions, and concurrent
//! positioned reads. Where std and tokio differ the tests follow std and say so.
//!
//! Every test holds the serial lock (`support::serial`): one test counts `/proc/self/fd` and one closes a raw fd
//! behind a `File`'s back, which is only safe while no other test opens fds.

mod support;

use std::io::{self, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ringleader::fs::{self, File, OpenOptions};
use support::{open_fds, rt2, serial};

/// A fresh scratch directory under the temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ringleader-fs-audit-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Undo any chmod 000 first so the removal works for a non-root user.
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kind_and_code<T: std::fmt::Debug>(r: io::Result<T>) -> (io::ErrorKind, Option<i32>) {
    let e = r.expect_err("expected an error");
    (e.kind(), e.raw_os_error())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and touches no memory.
    unsafe { libc::geteuid() }
}

// ---------------------------------------------------------------------------------------
// OpenOptions
// ---------------------------------------------------------------------------------------

#[test]
fn open_option_combinations_fail_as_std_documents() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("opts");
    let existing = dir.join("existing");
    std::fs::write(&existing, b"hello").unwrap();
    rt.block_on(async {
        // Each row: the options, the path, and whether std accepts them; ours must agree on
        // the outcome and, for errors, on kind and OS code.
        type Set = fn(&mut OpenOptions) -> &mut OpenOptions;
        type StdSet = fn(&mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions;
        let cases: Vec<(&str, Set, StdSet, &str)> = vec![
            ("nothing", |o| o, |o| o, "existing"),
            (
                "read+create",
                |o| o.read(true).create(true),
                |o| o.read(true).create(true),
                "existing",
            ),
            (
                "read+truncate",
                |o| o.read(true).truncate(true),
                |o| o.read(true).truncate(true),
                "existing",
            ),
            (
                "read+create_new",
                |o| o.read(true).create_new(true),
                |o| o.read(true).create_new(true),
                "new1",
            ),
            (
                "append+truncate",
                |o| o.append(true).truncate(true),
                |o| o.append(true).truncate(true),
                "existing",
            ),
            (
                "append+truncate+create_new",
                |o| o.append(true).truncate(true).create_new(true),
                |o| o.append(true).truncate(true).create_new(true),
                "new2",
            ),
            (
                "append+create",
                |o| o.append(true).create(true),
                |o| o.append(true).create(true),
                "new3",
            ),
            (
                "write+create_new on existing",
                |o| o.write(true).create_new(true),
                |o| o.write(true).create_new(true),
                "existing",
            ),
            (
                "read missing",
                |o| o.read(true),
                |o| o.read(true),
                "missing",
            ),
            (
                "write+create missing parent",
                |o| o.write(true).create(true),
                |o| o.write(true).create(true),
                "nodir/f",
            ),
            (
                "write on a directory",
                |o| o.write(true),
                |o| o.write(true),
                ".",
            ),
            ("read a directory", |o| o.read(true), |o| o.read(true), "."),
        ];
        for (name, ours, theirs, rel) in cases {
            // std runs on a copy of the directory's state: a path of its own for creations.
            let ours_path = dir.join(rel);
            let std_path = if rel.starts_with("new") {
                dir.join(&format!("std-{rel}"))
            } else {
                ours_path.clone()
            };
            let got = ours(&mut OpenOptions::new()).open(&ours_path).await;
            let want = theirs(&mut std::fs::OpenOptions::new()).open(&std_path);
            match (&got, &want) {
                (Ok(_), Ok(_)) => {}
                (Err(g), Err(w)) => {
                    assert_eq!(g.kind(), w.kind(), "{name}: {g} vs std {w}");
                    assert_eq!(g.raw_os_error(), w.raw_os_error(), "{name}: {g} vs std {w}");
                }
                _ => panic!("{name}: ours {got:?}, std {want:?}"),
            }
        }
        // The concrete expectations, spelled out.
        let err = OpenOptions::new()
            .read(true)
            .create(true)
            .open(&existing)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = OpenOptions::new()
            .append(true)
            .truncate(true)
            .open(&existing)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&existing)
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.raw_os_error()),
            (io::ErrorKind::AlreadyExists, Some(libc::EEXIST))
        );
        let err = OpenOptions::new()
            .write(true)
            .open(dir.path())
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.raw_os_error()),
            (io::ErrorKind::IsADirectory, Some(libc::EISDIR))
        );
        let err = File::open(dir.join("missing")).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.raw_os_error()),
            (io::ErrorKind::NotFound, Some(libc::ENOENT))
        );
        let err = File::create(dir.join("nodir/f")).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.raw_os_error()),
            (io::ErrorKind::NotFound, Some(libc::ENOENT))
        );
        // A failed open left nothing behind.
        assert!(!dir.join("new1").exists());
        assert_eq!(
            std::fs::read(&existing).unwrap(),
            b"hello",
            "no option set truncated it"
        );
    });
}

#[test]
fn create_new_ignores_truncate_and_create_truncates() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("create");
    rt.block_on(async {
        let p = dir.join("f");
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .truncate(true)
            .open(&p)
            .await
            .unwrap();
        f.write_all_at(b"abc".to_vec(), 0).await.0.unwrap();
        drop(f);
        // create without truncate keeps the contents; create+truncate empties.
        drop(
            OpenOptions::new()
                .write(true)
                .create(true)
                .open(&p)
                .await
                .unwrap(),
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        drop(File::create(&p).await.unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"");
        // The default mode (0o666 before the umask) matches std's.
        let std_p = dir.join("std");
        drop(std::fs::File::create(&std_p).unwrap());
        assert_eq!(
            std::fs::metadata(&p).unwrap().mode(),
            std::fs::metadata(&std_p).unwrap().mode()
        );
        // An explicit mode.
        let q = dir.join("q");
        drop(
            OpenOptions::new()
                .write(true)
                .create(true)
                .mode(0o600)
                .open(&q)
                .await
                .unwrap(),
        );
        assert_eq!(std::fs::metadata(&q).unwrap().mode() & 0o777, 0o600);
    });
}

#[test]
fn custom_flags_cannot_change_the_access_mode() {
    // std masks O_ACCMODE out of custom_flags: read(true) + custom O_WRONLY is read-only.
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("custom");
    let p = dir.join("f");
    std::fs::write(&p, b"data").unwrap();
    rt.block_on(async {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_WRONLY)
            .open(&p)
            .await
            .unwrap();
        let (res, buf) = f.read_at(Vec::with_capacity(8), 0).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"data");
        let (res, _) = f.write_at(b"x".to_vec(), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        // Non-access flags still apply: O_NOFOLLOW on a symlink is ELOOP.
        let link = dir.join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let err = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&link)
            .await
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    });
}

#[test]
fn permission_denied_on_a_mode_000_file() {
    let _g = serial();
    if euid() == 0 {
        // Root bypasses file permission bits (CAP_DAC_OVERRIDE): EACCES cannot happen.
        eprintln!("skipped: running as root, EACCES does not happen for files");
        return;
    }
    let rt = rt2();
    let dir = Scratch::new("perm");
    let p = dir.join("locked");
    std::fs::write(&p, b"secret").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    rt.block_on(async {
        let err = File::open(&p).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.raw_os_error()),
            (io::ErrorKind::PermissionDenied, Some(libc::EACCES))
        );
        let err = fs::read(&p).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES));
        let err = fs::write(&p, b"x").await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    });
}

// ---------------------------------------------------------------------------------------
// Append mode
// ---------------------------------------------------------------------------------------

#[test]
fn append_writes_go_to_the_end_and_the_cursor_follows_as_in_std() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("append");
    let p = dir.join("f");
    std::fs::write(&p, b"hello").unwrap();
    rt.block_on(async {
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&p)
            .await
            .unwrap();
        assert_eq!(f.position(), 0);
        // std: after an append write the cursor is at the end of the file (7 here).
        f.write_all(b"!!".to_vec()).await.0.unwrap();
        assert_eq!(
            f.position(),
            7,
            "the cursor follows the append, as std's does"
        );
        // A seek back does not change where the data goes.
        f.seek(0);
        let (res, _) = f.write(b"??".to_vec()).await;
        assert_eq!(res.unwrap(), 2);
        assert_eq!(f.position(), 9);
        // A positioned write on an append file appends too (std's FileExt::write_at, "Bug"
        // section: pwrite with O_APPEND ignores the offset on Linux), and leaves the cursor.
        f.seek(1);
        let (res, _) = f.write_at(b"@".to_vec(), 0).await;
        assert_eq!(res.unwrap(), 1);
        assert_eq!(f.position(), 1, "write_at must not move the cursor");
        // The cursor read from where it was left.
        let (res, buf) = f.read(Vec::with_capacity(64)).await;
        assert_eq!(res.unwrap(), 9);
        assert_eq!(buf, b"ello!!??@");
        assert_eq!(f.position(), 10);
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"hello!!??@");

        // The same sequence through std, for reference.
        let q = dir.join("std");
        std::fs::write(&q, b"hello").unwrap();
        let mut s = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&q)
            .unwrap();
        io::Write::write_all(&mut s, b"!!").unwrap();
        assert_eq!(io::Seek::stream_position(&mut s).unwrap(), 7);
        io::Seek::seek(&mut s, SeekFrom::Start(0)).unwrap();
        io::Write::write_all(&mut s, b"??").unwrap();
        assert_eq!(io::Seek::stream_position(&mut s).unwrap(), 9);
        std::os::unix::fs::FileExt::write_at(&s, b"@", 0).unwrap();
        drop(s);
        assert_eq!(std::fs::read(&q).unwrap(), b"hello!!??@");

        // from_std keeps append mode.
        let s = std::fs::OpenOptions::new().append(true).open(&q).unwrap();
        let mut f = File::from_std(s);
        f.write_all(b"#".to_vec()).await.0.unwrap();
        assert_eq!(f.position(), 11);
        drop(f);
        assert_eq!(std::fs::read(&q).unwrap(), b"hello!!??@#");
    });
}

// ---------------------------------------------------------------------------------------
// Cursor, positioned I/O, seek, set_len
// ---------------------------------------------------------------------------------------

#[test]
fn positioned_io_leaves_the_cursor_and_cursor_io_advances_by_what_moved() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("cursor");
    let p = dir.join("f");
    rt.block_on(async {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&p)
            .await
            .unwrap();
        let (res, _) = f.write(b"0123456789".to_vec()).await;
        assert_eq!(res.unwrap(), 10);
        assert_eq!(f.position(), 10);
        // Positioned ops do not move the cursor.
        f.write_all_at(b"AB".to_vec(), 2).await.0.unwrap();
        let (res, buf) = f.read_at(Vec::with_capacity(4), 1).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"1AB4");
        f.read_exact_at(Vec::with_capacity(3), 0).await.0.unwrap();
        assert_eq!(f.position(), 10);
        // A cursor read at the end gives 0 and leaves the cursor.
        let (res, _) = f.read(Vec::with_capacity(4)).await;
        assert_eq!(res.unwrap(), 0);
        assert_eq!(f.position(), 10);
        // A short read at EOF advances by what was read.
        f.seek(7);
        let (res, buf) = f.read(Vec::with_capacity(100)).await;
        assert_eq!(res.unwrap(), 3);
        assert_eq!(buf, b"789");
        assert_eq!(f.position(), 10);
        // Writing past the end leaves a hole of zeros (std: "the file is extended").
        f.seek(12);
        f.write_all(b"Z".to_vec()).await.0.unwrap();
        assert_eq!(f.position(), 13);
        assert_eq!(std::fs::read(&p).unwrap(), b"01AB456789\0\0Z");
        // Zero-byte writes succeed and move nothing.
        let (res, _) = f.write(Vec::new()).await;
        assert_eq!(res.unwrap(), 0);
        f.write_all(Vec::new()).await.0.unwrap();
        let (res, _) = f.write_at(Vec::new(), 100).await;
        assert_eq!(res.unwrap(), 0);
        f.write_all_at(Vec::new(), 100).await.0.unwrap();
        assert_eq!(f.position(), 13);
        assert_eq!(f.metadata().await.unwrap().len(), 13);
        // read_exact_at past the end: UnexpectedEof, and the bytes read are kept.
        let (res, buf) = f.read_exact_at(Vec::with_capacity(5), 10).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(buf, b"\0\0Z");
        // read_to_end_at appends to what is in the buffer.
        let (res, buf) = f.read_to_end_at(b"<".to_vec(), 10).await;
        assert_eq!(res.unwrap(), 3);
        assert_eq!(buf, b"<\0\0Z");
    });
}

#[test]
fn seek_from_follows_std_seek() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("seek");
    let p = dir.join("f");
    std::fs::write(&p, b"0123456789").unwrap();
    rt.block_on(async {
        let mut f = File::open(&p).await.unwrap();
        let mut s = std::fs::File::open(&p).unwrap();
        for pos in [
            SeekFrom::Start(3),
            SeekFrom::Current(2),
            SeekFrom::Current(-4),
            SeekFrom::End(-1),
            SeekFrom::End(5),
            SeekFrom::Start(0),
        ] {
            let ours = f.seek_from(pos).await.unwrap();
            let std = io::Seek::seek(&mut s, pos).unwrap();
            assert_eq!(ours, std, "{pos:?}");
            assert_eq!(f.position(), std);
        }
        f.seek_from(SeekFrom::End(-1)).await.unwrap();
        let (res, buf) = f.read(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), 1);
        assert_eq!(buf, b"9");
        // Before the start: InvalidInput with EINVAL, as std's lseek; the cursor stays.
        f.seek(4);
        for bad in [SeekFrom::Current(-5), SeekFrom::End(-11)] {
            let std_err = kind_and_code(io::Seek::seek(&mut s, bad));
            let ours = kind_and_code(f.seek_from(bad).await);
            assert_eq!(ours, std_err, "{bad:?}");
            assert_eq!(ours, (io::ErrorKind::InvalidInput, Some(libc::EINVAL)));
            assert_eq!(f.position(), 4);
        }
        // Past i64::MAX cannot be an off_t.
        let (kind, _) = kind_and_code(f.seek_from(SeekFrom::Start(u64::MAX)).await);
        assert_eq!(kind, io::ErrorKind::InvalidInput);
        assert_eq!(f.position(), 4);
    });
}

#[test]
fn set_len_grows_and_shrinks_and_leaves_the_cursor() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("setlen");
    let p = dir.join("f");
    rt.block_on(async {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&p)
            .await
            .unwrap();
        f.write_all(b"abcdef".to_vec()).await.0.unwrap();
        assert_eq!(f.position(), 6);
        f.set_len(10).await.unwrap();
        assert_eq!(f.position(), 6);
        assert_eq!(std::fs::read(&p).unwrap(), b"abcdef\0\0\0\0");
        f.set_len(2).await.unwrap();
        assert_eq!(f.position(), 6, "set_len never moves the cursor (std)");
        assert_eq!(f.metadata().await.unwrap().len(), 2);
        // A read past the new end gives 0; a write there leaves a hole.
        let (res, _) = f.read(Vec::with_capacity(4)).await;
        assert_eq!(res.unwrap(), 0);
        f.write_all(b"X".to_vec()).await.0.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"ab\0\0\0\0X");
        f.sync_all().await.unwrap();
        f.sync_data().await.unwrap();
        // On a read-only file: std gives InvalidInput (EINVAL from ftruncate).
        let ro = File::open(&p).await.unwrap();
        let want = kind_and_code(std::fs::File::open(&p).unwrap().set_len(1));
        assert_eq!(kind_and_code(ro.set_len(1).await), want);
        assert_eq!(want, (io::ErrorKind::InvalidInput, Some(libc::EINVAL)));
        // fsync works on a read-only fd too, as in std.
        ro.sync_all().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------

#[test]
fn metadata_agrees_with_std() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("meta");
    let p = dir.join("f");
    std::fs::write(&p, b"twelve bytes").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    rt.block_on(async {
        let f = File::open(&p).await.unwrap();
        for (what, ours, std) in [
            (
                "file by path",
                fs::metadata(&p).await.unwrap(),
                std::fs::metadata(&p).unwrap(),
            ),
            (
                "file by fd",
                f.metadata().await.unwrap(),
                std::fs::File::open(&p).unwrap().metadata().unwrap(),
            ),
            (
                "dir",
                fs::metadata(dir.path()).await.unwrap(),
                std::fs::metadata(dir.path()).unwrap(),
            ),
            (
                "link followed",
                fs::metadata(&link).await.unwrap(),
                std::fs::metadata(&link).unwrap(),
            ),
            (
                "link itself",
                fs::symlink_metadata(&link).await.unwrap(),
                std::fs::symlink_metadata(&link).unwrap(),
            ),
        ] {
            assert_eq!(ours.len(), std.len(), "{what}");
            assert_eq!(ours.is_file(), std.is_file(), "{what}");
            assert_eq!(ours.is_dir(), std.is_dir(), "{what}");
            assert_eq!(ours.is_symlink(), std.is_symlink(), "{what}");
            assert_eq!(ours.modified(), std.modified().unwrap(), "{what}");
            assert_eq!(ours.permissions(), std.permissions(), "{what}");
            assert_eq!(ours.mode(), std.mode(), "{what}");
            assert_eq!(ours.ino(), std.ino(), "{what}");
            assert_eq!(u64::from(ours.nlink()), std.nlink(), "{what}");
        }
        let m = fs::metadata(&p).await.unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o640);
        assert!(
            m.permissions().readonly() == std::fs::metadata(&p).unwrap().permissions().readonly()
        );
        assert!(fs::symlink_metadata(&link).await.unwrap().is_symlink());
        assert!(!fs::metadata(&link).await.unwrap().is_symlink());
        // set_permissions round-trips.
        fs::set_permissions(&p, std::fs::Permissions::from_mode(0o604))
            .await
            .unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o604);
        let err = fs::set_permissions(dir.join("missing"), std::fs::Permissions::from_mode(0o600))
            .await
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        // A dangling symlink: metadata fails with NotFound, symlink_metadata works, and
        // try_exists says false (std's documented behaviour).
        let dangling = dir.join("dangling");
        std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
        assert_eq!(
            kind_and_code(fs::metadata(&dangling).await),
            (io::ErrorKind::NotFound, Some(libc::ENOENT))
        );
        assert!(fs::symlink_metadata(&dangling).await.unwrap().is_symlink());
        assert!(!fs::try_exists(&dangling).await.unwrap());
        assert_eq!(
            fs::try_exists(&dangling).await.unwrap(),
            std::fs::exists(&dangling).unwrap()
        );
    });
}

// ---------------------------------------------------------------------------------------
// close and drop
// ---------------------------------------------------------------------------------------

#[test]
fn drop_and_close_release_the_fd_and_close_reports_errors() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("close");
    let p = dir.join("f");
    std::fs::write(&p, b"x").unwrap();
    rt.block_on(async {
        // Warm up anything lazily opened by the first file operation.
        drop(File::open(&p).await.unwrap());
        let before = open_fds();
        let files: Vec<File> = {
            let mut v = Vec::new();
            for _ in 0..16 {
                v.push(File::open(&p).await.unwrap());
            }
            v
        };
        assert_eq!(open_fds(), before + 16);
        drop(files);
        assert_eq!(open_fds(), before, "dropping a File closes its fd");

        let f = File::open(&p).await.unwrap();
        assert_eq!(open_fds(), before + 1);
        f.close().await.unwrap();
        assert_eq!(open_fds(), before, "close().await closes the fd");

        // close reports close(2)'s error: close the fd behind the File's back, then close()
        // must say EBADF. (Safe only because the serial lock keeps other tests from opening fds now.)
        let f = File::open(&p).await.unwrap();
        let raw = f.as_raw_fd();
        // SAFETY: `raw` is f's fd; f is closed right after and never used for I/O, and no
        // other test can reuse the number meanwhile (the serial lock is held).
        assert_eq!(unsafe { libc::close(raw) }, 0);
        let err = f.close().await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        assert_eq!(open_fds(), before);

        // Failed opens leak nothing.
        for _ in 0..8 {
            File::open(dir.join("missing")).await.unwrap_err();
            OpenOptions::new()
                .write(true)
                .open(dir.path())
                .await
                .unwrap_err();
        }
        assert_eq!(open_fds(), before);
        // Nor do the whole-file helpers.
        fs::write(dir.join("w"), b"abc").await.unwrap();
        assert_eq!(fs::read(dir.join("w")).await.unwrap(), b"abc");
        assert_eq!(fs::read_to_string(dir.join("w")).await.unwrap(), "abc");
        assert_eq!(open_fds(), before);
    });
}

// ---------------------------------------------------------------------------------------
// Free functions
// ---------------------------------------------------------------------------------------

#[test]
fn read_write_and_read_to_string_as_std() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("rw");
    rt.block_on(async {
        let p = dir.join("f");
        // write creates, then truncates.
        fs::write(&p, b"a longer first version").await.unwrap();
        fs::write(&p, "short").await.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"short");
        assert_eq!(fs::read(&p).await.unwrap(), std::fs::read(&p).unwrap());
        // Empty file and empty write.
        let e = dir.join("empty");
        fs::write(&e, b"").await.unwrap();
        assert_eq!(std::fs::metadata(&e).unwrap().len(), 0);
        assert_eq!(fs::read(&e).await.unwrap(), b"");
        assert_eq!(fs::read_to_string(&e).await.unwrap(), "");
        let f = File::open(&e).await.unwrap();
        let (res, _) = f.read_at(Vec::with_capacity(16), 0).await;
        assert_eq!(res.unwrap(), 0);
        assert!(f.metadata().await.unwrap().is_empty());
        // Invalid UTF-8: InvalidData, nothing partial.
        let bad = dir.join("bad");
        std::fs::write(&bad, [b'o', b'k', 0xff, 0xfe]).unwrap();
        let err = fs::read_to_string(&bad).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.kind(),
            std::fs::read_to_string(&bad).unwrap_err().kind()
        );
        // A file bigger than one read, with bytes that are not a repeat of a small pattern.
        let big: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs::write(dir.join("big"), &big).await.unwrap();
        assert_eq!(fs::read(dir.join("big")).await.unwrap(), big);
        assert_eq!(std::fs::read(dir.join("big")).unwrap(), big);
        // Errors keep their OS codes and match std's.
        for (what, ours, std) in [
            (
                "read missing",
                kind_and_code(fs::read(dir.join("missing")).await),
                kind_and_code(std::fs::read(dir.join("missing"))),
            ),
            (
                "read a dir",
                kind_and_code(fs::read(dir.path()).await),
                kind_and_code(std::fs::read(dir.path())),
            ),
            (
                "write into a missing dir",
                kind_and_code(fs::write(dir.join("nodir/f"), b"x").await),
                kind_and_code(std::fs::write(dir.join("nodir/f"), b"x")),
            ),
            (
                "write over a dir",
                kind_and_code(fs::write(dir.path(), b"x").await),
                kind_and_code(std::fs::write(dir.path(), b"x")),
            ),
        ] {
            assert_eq!(ours, std, "{what}");
            assert!(ours.1.is_some(), "{what}: an OS code");
        }
    });
}

#[test]
fn directories_create_remove_and_list_as_std() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("dirs");
    rt.block_on(async {
        let d = dir.join("d");
        fs::create_dir(&d).await.unwrap();
        assert_eq!(
            kind_and_code(fs::create_dir(&d).await),
            (io::ErrorKind::AlreadyExists, Some(libc::EEXIST))
        );
        assert_eq!(
            kind_and_code(fs::create_dir(dir.join("x/y")).await),
            (io::ErrorKind::NotFound, Some(libc::ENOENT))
        );

        // create_dir_all: idempotent, and "" is fine (std).
        let deep = dir.join("a/b/c/d");
        fs::create_dir_all(&deep).await.unwrap();
        fs::create_dir_all(&deep).await.unwrap();
        fs::create_dir_all(dir.join("a/b")).await.unwrap();
        fs::create_dir_all("").await.unwrap();
        assert!(std::fs::metadata(&deep).unwrap().is_dir());
        // A component that is a file: std's errors, OS codes included.
        let file = dir.join("file");
        std::fs::write(&file, b"x").unwrap();
        let ours = kind_and_code(fs::create_dir_all(&file).await);
        assert_eq!(ours, kind_and_code(std::fs::create_dir_all(&file)));
        assert_eq!(ours, (io::ErrorKind::AlreadyExists, Some(libc::EEXIST)));
        let ours = kind_and_code(fs::create_dir_all(file.join("sub/deeper")).await);
        assert_eq!(
            ours,
            kind_and_code(std::fs::create_dir_all(file.join("sub/deeper")))
        );
        assert_eq!(ours, (io::ErrorKind::NotADirectory, Some(libc::ENOTDIR)));

        // remove_file on a directory; remove_dir on a non-empty one and on a file.
        let ours = kind_and_code(fs::remove_file(&d).await);
        assert_eq!(ours, kind_and_code(std::fs::remove_file(&d)));
        assert_eq!(ours.1, Some(libc::EISDIR));
        let ours = kind_and_code(fs::remove_dir(dir.join("a")).await);
        assert_eq!(ours, kind_and_code(std::fs::remove_dir(dir.join("a"))));
        assert_eq!(
            ours,
            (io::ErrorKind::DirectoryNotEmpty, Some(libc::ENOTEMPTY))
        );
        let ours = kind_and_code(fs::remove_dir(&file).await);
        assert_eq!(ours, kind_and_code(std::fs::remove_dir(&file)));
        assert_eq!(ours.1, Some(libc::ENOTDIR));
        assert_eq!(
            kind_and_code(fs::remove_file(dir.join("missing")).await).1,
            Some(libc::ENOENT)
        );
        fs::remove_dir(&d).await.unwrap();
        assert!(!d.exists());

        // read_dir: every entry, no "." or "..", errors on a missing dir or a file.
        let listed = dir.join("listed");
        std::fs::create_dir(&listed).unwrap();
        let mut want = Vec::new();
        for i in 0..50 {
            let name = format!("entry-{i:02}");
            if i % 5 == 0 {
                std::fs::create_dir(listed.join(&name)).unwrap();
            } else {
                std::fs::write(listed.join(&name), b"").unwrap();
            }
            want.push(name);
        }
        let mut listing = fs::read_dir(&listed).await.unwrap();
        let mut entries = Vec::new();
        while let Some(entry) = listing.next_entry().await.unwrap() {
            entries.push(entry);
        }
        assert!(
            listing.next_entry().await.unwrap().is_none(),
            "stays at the end"
        );
        let mut got: Vec<String> = entries
            .iter()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, want);
        for e in &entries {
            let is_dir = e.file_type().unwrap().is_dir();
            assert_eq!(
                is_dir,
                e.file_name().to_str().unwrap().ends_with('0')
                    || e.file_name().to_str().unwrap().ends_with('5')
            );
        }
        assert!(fs::read_dir(dir.join("empty-dir-missing")).await.is_err());
        let ours = kind_and_code(fs::read_dir(dir.join("missing")).await);
        assert_eq!(ours, kind_and_code(std::fs::read_dir(dir.join("missing"))));
        assert_eq!(ours.1, Some(libc::ENOENT));
        let ours = kind_and_code(fs::read_dir(&file).await);
        assert_eq!(ours.1, Some(libc::ENOTDIR));
        std::fs::create_dir(dir.join("empty")).unwrap();
        let mut empty = fs::read_dir(dir.join("empty")).await.unwrap();
        assert!(empty.next_entry().await.unwrap().is_none());

        fs::remove_dir_all(&listed).await.unwrap();
        assert!(!listed.exists());
        assert_eq!(
            kind_and_code(fs::remove_dir_all(&listed).await).1,
            Some(libc::ENOENT)
        );
    });
}

#[test]
fn rename_links_and_canonicalize_as_std() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("links");
    rt.block_on(async {
        let a = dir.join("a");
        let b = dir.join("b");
        std::fs::write(&a, b"from a").unwrap();
        std::fs::write(&b, b"old b").unwrap();
        // rename replaces an existing file.
        fs::rename(&a, &b).await.unwrap();
        assert!(!a.exists());
        assert_eq!(std::fs::read(&b).unwrap(), b"from a");
        // Into a missing directory, and from a missing file: ENOENT, as std.
        let ours = kind_and_code(fs::rename(&b, dir.join("nodir/b")).await);
        assert_eq!(
            ours,
            kind_and_code(std::fs::rename(&b, dir.join("nodir/b")))
        );
        assert_eq!(ours, (io::ErrorKind::NotFound, Some(libc::ENOENT)));
        assert_eq!(
            kind_and_code(fs::rename(&a, dir.join("c")).await).1,
            Some(libc::ENOENT)
        );
        // A file over a directory: EISDIR, as std.
        std::fs::create_dir(dir.join("sub")).unwrap();
        let ours = kind_and_code(fs::rename(&b, dir.join("sub")).await);
        assert_eq!(ours, kind_and_code(std::fs::rename(&b, dir.join("sub"))));

        // hard_link: a second name for the same inode; an existing name is EEXIST.
        let h = dir.join("h");
        fs::hard_link(&b, &h).await.unwrap();
        assert_eq!(
            std::fs::metadata(&h).unwrap().ino(),
            std::fs::metadata(&b).unwrap().ino()
        );
        assert_eq!(std::fs::metadata(&b).unwrap().nlink(), 2);
        assert_eq!(
            kind_and_code(fs::hard_link(&b, &h).await),
            (io::ErrorKind::AlreadyExists, Some(libc::EEXIST))
        );
        assert_eq!(
            kind_and_code(fs::hard_link(dir.join("missing"), dir.join("h2")).await).1,
            Some(libc::ENOENT)
        );
        // hard_link to a symlink links the symlink itself (std on Linux: linkat, flags 0).
        let s = dir.join("s");
        fs::symlink(&b, &s).await.unwrap();
        let hs = dir.join("hs");
        fs::hard_link(&s, &hs).await.unwrap();
        assert!(std::fs::symlink_metadata(&hs)
            .unwrap()
            .file_type()
            .is_symlink());
        // symlink: the target is stored as given, and may dangle.
        assert_eq!(std::fs::read_link(&s).unwrap(), b);
        fs::symlink("does-not-exist", dir.join("dangling"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_link(dir.join("dangling")).unwrap(),
            Path::new("does-not-exist")
        );
        assert_eq!(
            kind_and_code(fs::symlink(&b, &s).await),
            (io::ErrorKind::AlreadyExists, Some(libc::EEXIST))
        );
        // remove_file removes the link, not the target.
        fs::remove_file(&s).await.unwrap();
        assert!(b.exists());

        // canonicalize resolves symlinks and "..", as std; a missing path is ENOENT.
        fs::symlink(dir.join("sub"), dir.join("to-sub"))
            .await
            .unwrap();
        let through = dir.join("to-sub/../b");
        assert_eq!(
            fs::canonicalize(&through).await.unwrap(),
            std::fs::canonicalize(&through).unwrap()
        );
        assert_eq!(
            kind_and_code(fs::canonicalize(dir.join("missing")).await).1,
            Some(libc::ENOENT)
        );
    });
}

// ---------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------

#[test]
fn concurrent_read_at_from_many_tasks_gets_the_right_bytes() {
    let _g = serial();
    let rt = rt2();
    let dir = Scratch::new("concurrent");
    let p = dir.join("f");
    const CHUNK: usize = 4096 + 17; // not a multiple of a page
    const CHUNKS: usize = 64;
    let data: Vec<u8> = (0..CHUNK * CHUNKS)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect();
    std::fs::write(&p, &data).unwrap();
    let data = Arc::new(data);
    rt.block_on(async {
        let f = Arc::new(File::open(&p).await.unwrap());
        let tasks: Vec<_> = (0..CHUNKS * 4)
            .map(|k| {
                let f = f.clone();
                let data = data.clone();
                ringleader::spawn(async move {
                    let i = (k * 7) % CHUNKS;
                    let off = i * CHUNK;
                    let (res, buf) = f.read_exact_at(Vec::with_capacity(CHUNK), off as u64).await;
                    res.unwrap();
                    assert_eq!(&buf[..], &data[off..off + CHUNK], "chunk {i}");
                    // A read straddling the end is short.
                    let (res, buf) = f
                        .read_at(Vec::with_capacity(CHUNK), (data.len() - 5) as u64)
                        .await;
                    assert_eq!(res.unwrap(), 5);
                    assert_eq!(&buf[..], &data[data.len() - 5..]);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            Arc::try_unwrap(f).unwrap().position(),
            0,
            "read_at never moved the cursor"
        );
    });
}
