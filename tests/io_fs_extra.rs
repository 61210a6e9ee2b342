//! `fs::copy`, `fs::read_link` and `fs::remove_dir_all`: std's semantics and error kinds,
//! through the runtime's blocking pool.

mod support;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ringleader::fs;
use support::rt2;

/// A fresh, empty directory of this process for the test `name`.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ringleader-fs-extra-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 1 MiB of a pattern that repeats only every 251 bytes (a prime), so a block copied to
/// the wrong offset shows.
fn mebibyte() -> Vec<u8> {
    (0..1 << 20).map(|i: u32| (i % 251) as u8).collect()
}

#[test]
fn copy_of_a_mebibyte_matches_byte_for_byte_and_keeps_the_permissions() {
    let dir = scratch("copy");
    let (from, to) = (dir.join("from"), dir.join("to"));
    let data = mebibyte();
    std::fs::write(&from, &data).unwrap();
    std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o640)).unwrap();
    rt2().block_on(async {
        let copied = fs::copy(&from, &to).await.unwrap();
        assert_eq!(copied, data.len() as u64);
    });
    assert!(std::fs::read(&to).unwrap() == data, "the copy differs");
    let mode = std::fs::metadata(&to).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn copy_onto_an_existing_file_overwrites_it() {
    let dir = scratch("copy-over");
    let (from, to) = (dir.join("from"), dir.join("to"));
    std::fs::write(&from, b"short").unwrap();
    // Longer than the source: the tail must go, not survive past the copied bytes.
    std::fs::write(&to, b"a much longer old content").unwrap();
    rt2().block_on(async {
        assert_eq!(fs::copy(&from, &to).await.unwrap(), 5);
    });
    assert_eq!(std::fs::read(&to).unwrap(), b"short");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn copy_from_a_missing_file_is_not_found_and_creates_nothing() {
    let dir = scratch("copy-missing");
    let to = dir.join("to");
    rt2().block_on(async {
        let err = fs::copy(dir.join("missing"), &to).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    });
    assert!(!to.exists(), "a failed copy created its destination");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn read_link_gives_the_target_and_the_right_error_kinds() {
    let dir = scratch("read-link");
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    std::os::unix::fs::symlink(&file, dir.join("absolute")).unwrap();
    // Relative and dangling: read_link returns what is stored, resolving nothing.
    std::os::unix::fs::symlink("nowhere/else", dir.join("relative")).unwrap();
    rt2().block_on(async {
        assert_eq!(fs::read_link(dir.join("absolute")).await.unwrap(), file);
        assert_eq!(
            fs::read_link(dir.join("relative")).await.unwrap(),
            Path::new("nowhere/else")
        );

        let err = fs::read_link(&file).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));

        let err = fs::read_link(dir.join("missing")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn remove_dir_all_removes_a_tree_without_following_symlinks_out_of_it() {
    let dir = scratch("remove-tree");
    let tree = dir.join("tree");
    let outside = dir.join("outside");
    std::fs::create_dir_all(tree.join("a/b/c")).unwrap();
    std::fs::create_dir_all(tree.join("d")).unwrap();
    for file in ["top", "a/one", "a/b/two", "a/b/c/three", "d/four"] {
        std::fs::write(tree.join(file), file.as_bytes()).unwrap();
    }
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"must survive").unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("a/b/link-out")).unwrap();

    rt2().block_on(async {
        fs::remove_dir_all(&tree).await.unwrap();
        assert!(!fs::try_exists(&tree).await.unwrap(), "the tree is gone");
    });
    // The symlink was removed as a link: what it pointed at is untouched.
    assert_eq!(
        std::fs::read(outside.join("keep")).unwrap(),
        b"must survive"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn remove_dir_all_of_a_missing_path_is_not_found() {
    let dir = scratch("remove-missing");
    rt2().block_on(async {
        let err = fs::remove_dir_all(dir.join("missing")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
