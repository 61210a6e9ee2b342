//! Files through the ring: a 100 MiB round trip in random 4 KiB blocks, the path
//! operations, and every kind of bad input.

mod support;

use std::io;
use std::path::PathBuf;

use ringleader::fs::{self, File, OpenOptions};
use support::{rt2, scaled};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringleader-fs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// FNV-1a, enough to compare two byte streams.
fn checksum(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[test]
fn a_large_file_written_and_read_back_in_random_4k_blocks_matches() {
    let rt = rt2();
    let dir = scratch("large");
    // 100 MiB in release; 10 MiB in debug builds.
    let size = scaled(100 << 20);
    const BLOCK: usize = 4096;
    let blocks = size / BLOCK;
    let path = dir.join("big");
    rt.block_on(async {
        // A random permutation of block indices (xorshift, fixed seed).
        let mut order: Vec<usize> = (0..blocks).collect();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let block_bytes = |i: usize| -> Vec<u8> {
            (0..BLOCK)
                .map(|j| (i.wrapping_mul(7919) ^ j.wrapping_mul(13)) as u8)
                .collect()
        };
        let expected = (0..blocks).fold(0xcbf2_9ce4_8422_2325, |h, i| checksum(h, &block_bytes(i)));

        let file = std::sync::Arc::new(File::create(&path).await.unwrap());
        // Writes in random order, 32 in flight at a time.
        for chunk in order.chunks(32) {
            let writes: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let file = file.clone();
                    let data = block_bytes(i);
                    ringleader::spawn(async move {
                        let (res, _) = file.write_all_at(data, (i * BLOCK) as u64).await;
                        res
                    })
                })
                .collect();
            for w in writes {
                w.await.unwrap().unwrap();
            }
        }
        file.sync_all().await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), size as u64);
        drop(file);

        let file = std::sync::Arc::new(File::open(&path).await.unwrap());
        let mut got = vec![Vec::new(); blocks];
        for chunk in order.chunks(32) {
            let reads: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let file = file.clone();
                    ringleader::spawn(async move {
                        let (res, buf) = file
                            .read_exact_at(Vec::with_capacity(BLOCK), (i * BLOCK) as u64)
                            .await;
                        res.map(|()| (i, buf))
                    })
                })
                .collect();
            for r in reads {
                let (i, buf) = r.await.unwrap().unwrap();
                got[i] = buf;
            }
        }
        let actual = got
            .iter()
            .fold(0xcbf2_9ce4_8422_2325, |h, b| checksum(h, b));
        assert_eq!(
            actual, expected,
            "the file read back differs from what was written"
        );
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn path_operations_metadata_and_cursor_io() {
    let rt = rt2();
    let dir = scratch("paths");
    rt.block_on(async {
        let nested = dir.join("a/b/c");
        fs::create_dir_all(&nested).await.unwrap();
        fs::create_dir_all(&nested).await.unwrap();
        assert!(fs::metadata(&nested).await.unwrap().is_dir());

        let file = nested.join("f.txt");
        fs::write(&file, "hello ring").await.unwrap();
        assert_eq!(fs::read_to_string(&file).await.unwrap(), "hello ring");
        let meta = fs::metadata(&file).await.unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.len(), 10);

        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .await
            .unwrap();
        f.seek(6);
        let (res, _) = f.write_all(b"RING".to_vec()).await;
        res.unwrap();
        assert_eq!(f.position(), 10);
        f.seek(0);
        let (res, buf) = f.read(Vec::with_capacity(64)).await;
        assert_eq!(res.unwrap(), 10);
        assert_eq!(buf, b"hello RING");
        f.set_len(5).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 5);
        f.sync_data().await.unwrap();
        f.close().await.unwrap();

        let mut appender = OpenOptions::new().append(true).open(&file).await.unwrap();
        let (res, _) = appender.write_all(b"!!".to_vec()).await;
        res.unwrap();
        drop(appender);
        assert_eq!(fs::read(&file).await.unwrap(), b"hello!!");

        let renamed = nested.join("g.txt");
        fs::rename(&file, &renamed).await.unwrap();
        assert!(!fs::try_exists(&file).await.unwrap());
        fs::hard_link(&renamed, nested.join("h.txt")).await.unwrap();
        assert_eq!(fs::metadata(&renamed).await.unwrap().nlink(), 2);
        fs::symlink(&renamed, nested.join("link")).await.unwrap();
        assert!(fs::symlink_metadata(nested.join("link"))
            .await
            .unwrap()
            .is_symlink());
        assert!(fs::metadata(nested.join("link")).await.unwrap().is_file());

        let mut listing = fs::read_dir(&nested).await.unwrap();
        let mut names = Vec::new();
        while let Some(e) = listing.next_entry().await.unwrap() {
            names.push(e.file_name().into_string().unwrap());
        }
        names.sort();
        assert_eq!(names, ["g.txt", "h.txt", "link"]);

        for name in ["g.txt", "h.txt", "link"] {
            fs::remove_file(nested.join(name)).await.unwrap();
        }
        fs::remove_dir(&nested).await.unwrap();
        fs::remove_dir_all(dir.join("a")).await.unwrap();
        assert!(!fs::try_exists(dir.join("a")).await.unwrap());
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_gives_io_errors_with_os_codes() {
    let rt = rt2();
    let dir = scratch("bad");
    rt.block_on(async {
        let missing = dir.join("missing");
        let err = File::open(&missing).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            fs::read(&missing).await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs::remove_file(&missing).await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs::metadata(&missing).await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs::create_dir(missing.join("child"))
                .await
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );

        // A directory opened as a file: opening read-only works (as open(2)); reading fails
        // with EISDIR, and opening for writing fails at once.
        let d = File::open(&dir).await.unwrap();
        let (res, _) = d.read_at(Vec::with_capacity(16), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EISDIR));
        let err = OpenOptions::new().write(true).open(&dir).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR));

        // Writing to a read-only file: EBADF.
        let path = dir.join("ro");
        fs::write(&path, b"x").await.unwrap();
        let ro = File::open(&path).await.unwrap();
        let (res, _) = ro.write_at(b"y".to_vec(), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));

        // create_new on an existing file; impossible option sets; a NUL in the path.
        let err = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let err = OpenOptions::new().open(&path).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = File::open("bad\0path").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        // Reading past the end: Ok(0), and read_exact reports UnexpectedEof.
        let (res, _) = ro.read_at(Vec::with_capacity(8), 100).await;
        assert_eq!(res.unwrap(), 0);
        let (res, buf) = ro.read_exact_at(Vec::with_capacity(8), 0).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(buf, b"x", "the bytes read before EOF are kept");
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn vectored_file_io_at_offsets() {
    let rt = rt2();
    let dir = scratch("vectored");
    rt.block_on(async {
        let path = dir.join("v");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&path)
            .await
            .unwrap();
        let (res, _) = f
            .writev_at(vec![b"hello ".to_vec(), b"world".to_vec()], 3)
            .await;
        assert_eq!(res.unwrap(), 11);
        let (res, bufs) = f
            .readv_at(vec![Vec::with_capacity(5), Vec::with_capacity(100)], 4)
            .await;
        assert_eq!(res.unwrap(), 10);
        assert_eq!(bufs[0], b"ello ");
        assert_eq!(bufs[1], b"world");
        assert_eq!(fs::read(&path).await.unwrap(), b"\0\0\0hello world");
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A directory of `n` files named `f0000`… (and one subdirectory and one symlink).
fn populated(name: &str, n: usize) -> PathBuf {
    let dir = scratch(name);
    for i in 0..n {
        std::fs::write(dir.join(format!("f{i:04}")), b"x").unwrap();
    }
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::os::unix::fs::symlink("f0000", dir.join("link")).unwrap();
    dir
}

#[test]
fn read_dir_streams_a_directory_larger_than_one_chunk() {
    let rt = rt2();
    let dir = populated("read-dir-large", 1000);
    rt.block_on(async {
        let mut listing = fs::read_dir(&dir).await.unwrap();
        let mut names = Vec::new();
        while let Some(entry) = listing.next_entry().await.unwrap() {
            assert_eq!(entry.path(), dir.join(entry.file_name()));
            let kind = entry.file_type().unwrap();
            let name = entry.file_name().into_string().unwrap();
            match name.as_str() {
                "sub" => assert!(kind.is_dir()),
                "link" => {
                    assert!(kind.is_symlink(), "the listing does not follow symlinks");
                    assert!(entry.metadata().await.unwrap().is_symlink());
                }
                _ => {
                    assert!(kind.is_file());
                    let meta = entry.metadata().await.unwrap();
                    assert_eq!((meta.len(), meta.ino()), (1, entry.ino()));
                }
            }
            names.push(name);
        }
        assert!(listing.next_entry().await.unwrap().is_none());
        names.sort();
        let mut want: Vec<String> = (0..1000).map(|i| format!("f{i:04}")).collect();
        want.extend(["link".into(), "sub".into()]);
        want.sort();
        assert_eq!(names, want);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn read_dir_is_a_stream_and_a_cancelled_next_entry_loses_nothing() {
    use futures_util::StreamExt;
    let rt = rt2();
    let dir = populated("read-dir-cancel", 300);
    rt.block_on(async {
        let mut listing = fs::read_dir(&dir).await.unwrap();
        let mut names = std::collections::HashSet::new();
        // Start (and drop) a next_entry before every real one: whether the dropped one was
        // reading a chunk or had one at hand, no entry may go missing or come twice.
        loop {
            {
                let next = std::pin::pin!(listing.next_entry());
                // Ready at once: the entry was handed over, so it counts. (Pending: it is
                // dropped while a chunk is being read.)
                if let Some(entry) = support::poll_once(next).await {
                    match entry.unwrap() {
                        Some(entry) => assert!(names.insert(entry.file_name())),
                        None => break,
                    }
                }
            }
            match listing.next().await {
                Some(entry) => {
                    let name = entry.unwrap().file_name();
                    assert!(names.insert(name.clone()), "{name:?} came twice");
                }
                None => break,
            }
        }
        assert_eq!(names.len(), 302);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn read_dir_of_a_missing_path_or_a_file_fails_with_the_os_code() {
    let rt = rt2();
    let dir = scratch("read-dir-errors");
    std::fs::write(dir.join("file"), b"").unwrap();
    rt.block_on(async {
        let e = fs::read_dir(dir.join("missing")).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let e = fs::read_dir(dir.join("file")).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
