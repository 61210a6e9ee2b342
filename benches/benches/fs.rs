//! File reads (issue #4): 4 KiB random reads from a 256 MiB file with the page cache warm,
//! and tokio's `benches/fs.rs` shape (1,000 sequential 4 KiB reads of `/dev/zero` from
//! `block_on`, the file opened each iteration).
//!
//! Guards: ringleader's file reads going through the worker's io_uring (no blocking-pool
//! hop) against tokio::fs (every read a `spawn_blocking`), blocking `pread` on 2 threads,
//! and `bare_uring`: 2 threads with one io_uring each, no runtime (the ceiling). The issue's
//! target is ≥ 2× tokio::fs on random reads; the bare ring is the real bar.
//!
//! `fs/random_read_4k`: one criterion iteration is one 4 KiB read at a random 4 KiB-aligned
//! offset; 32 reads are in flight (32 tasks for the runtimes, 2 rings × 16 entries for
//! bare_uring; 2 threads for std, which cannot have more in flight than threads).
//! `fs/tokio_1000x4k`: one iteration is tokio's whole loop of 1,000 reads.
//! `ringleader_on_worker` runs the same loop as a task on a worker (its ring is local there;
//! from `block_on` every read is a cross-thread request to a worker's ring).

use std::fs::File as StdFile;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};

const FILE_SIZE: u64 = 256 << 20;
const BLOCK: usize = 4096;
const IN_FLIGHT: usize = 32;
const THREADS: usize = 2;
const BLOCK_COUNT: usize = 1_000;
const DEV_ZERO: &str = "/dev/zero";

/// Random block-aligned offsets (xorshift, fixed seed), cycled through.
fn offsets() -> Arc<Vec<u64>> {
    let blocks = FILE_SIZE / BLOCK as u64;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    Arc::new(
        (0..65_536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % blocks) * BLOCK as u64
            })
            .collect(),
    )
}

/// Splits `iters` reads over `parts` workers: worker `k` does `share(iters, parts, k)`.
fn share(iters: u64, parts: usize, k: usize) -> u64 {
    iters / parts as u64 + u64::from((k as u64) < iters % parts as u64)
}

fn create_file(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("random_read.bin");
    let mut f = StdFile::create(&path).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for (i, b) in chunk.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    for _ in 0..(FILE_SIZE >> 20) {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    // Warm the page cache.
    let f = StdFile::open(&path).unwrap();
    for i in 0..(FILE_SIZE >> 20) {
        f.read_exact_at(&mut chunk, i << 20).unwrap();
    }
    path
}

fn random_read(c: &mut Criterion, path: &Path) {
    let offs = offsets();
    let mut group = c.benchmark_group("fs/random_read_4k");
    group.throughput(Throughput::Elements(1));

    // ringleader: 32 tasks on a 2-worker runtime, each reading through read_at.
    {
        let rt = ringleader::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .build()
            .unwrap();
        let file = Arc::new(rt.block_on(ringleader::fs::File::open(path)).unwrap());
        group.bench_function("ringleader", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..IN_FLIGHT)
                        .map(|k| {
                            let (file, offs) = (file.clone(), offs.clone());
                            rt.handle().spawn(async move {
                                let mut buf = Vec::with_capacity(BLOCK);
                                let n = share(iters, IN_FLIGHT, k);
                                for i in 0..n {
                                    let off = offs[(k + i as usize * IN_FLIGHT) % offs.len()];
                                    let (res, b) = file.read_at(buf, off).await;
                                    assert_eq!(res.unwrap(), BLOCK);
                                    buf = b;
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
                start.elapsed()
            })
        });
    }

    // tokio::fs: 32 tasks, each with its own File (seek + read_exact, the tokio::fs idiom).
    {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let rt = common_tokio();
        let mut files: Vec<tokio::fs::File> = rt.block_on(async {
            let mut v = Vec::new();
            for _ in 0..IN_FLIGHT {
                v.push(tokio::fs::File::open(path).await.unwrap());
            }
            v
        });
        group.bench_function("tokio", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                files = rt.block_on(async {
                    let tasks: Vec<_> = std::mem::take(&mut files)
                        .into_iter()
                        .enumerate()
                        .map(|(k, mut file)| {
                            let offs = offs.clone();
                            rt.spawn(async move {
                                let mut buf = vec![0u8; BLOCK];
                                let n = share(iters, IN_FLIGHT, k);
                                for i in 0..n {
                                    let off = offs[(k + i as usize * IN_FLIGHT) % offs.len()];
                                    file.seek(std::io::SeekFrom::Start(off)).await.unwrap();
                                    file.read_exact(&mut buf).await.unwrap();
                                }
                                file
                            })
                        })
                        .collect();
                    let mut back = Vec::with_capacity(IN_FLIGHT);
                    for t in tasks {
                        back.push(t.await.unwrap());
                    }
                    back
                });
                start.elapsed()
            })
        });
    }

    // std: blocking pread on 2 threads.
    {
        let file = StdFile::open(path).unwrap();
        group.bench_function("std", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for k in 0..THREADS {
                        let (file, offs) = (&file, &offs);
                        s.spawn(move || {
                            let mut buf = vec![0u8; BLOCK];
                            for i in 0..share(iters, THREADS, k) {
                                let off = offs[(k + i as usize * THREADS) % offs.len()];
                                file.read_exact_at(&mut buf, off).unwrap();
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }

    // bare_uring: 2 threads, one ring each (COOP_TASKRUN), 16 reads in flight per ring.
    {
        let file = StdFile::open(path).unwrap();
        let mut rings: Vec<io_uring::IoUring> = (0..THREADS).map(|_| bare_ring()).collect();
        group.bench_function("bare_uring", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for (k, ring) in rings.iter_mut().enumerate() {
                        let (fd, offs) = (file.as_raw_fd(), &offs);
                        s.spawn(move || {
                            bare_reads(ring, fd, share(iters, THREADS, k), |i| {
                                offs[(k + i as usize * THREADS) % offs.len()]
                            })
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn bare_ring() -> io_uring::IoUring {
    io_uring::IoUring::builder()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(64)
        .expect("io_uring")
}

/// `n` reads of 4 KiB at `offset(i)`, 16 in flight, on `ring`.
fn bare_reads(ring: &mut io_uring::IoUring, fd: i32, n: u64, offset: impl Fn(u64) -> u64) {
    use io_uring::{opcode, types};
    const DEPTH: usize = IN_FLIGHT / THREADS;
    let mut bufs = vec![[0u8; BLOCK]; DEPTH];
    let (mut issued, mut done) = (0u64, 0u64);
    let mut push = |ring: &mut io_uring::IoUring, slot: usize, i: u64| {
        let e = opcode::Read::new(types::Fd(fd), bufs[slot].as_mut_ptr(), BLOCK as u32)
            .offset(offset(i))
            .build()
            .user_data(slot as u64);
        // SAFETY: the buffer and the fd outlive the entry: this function reaps every
        // completion before returning.
        unsafe { ring.submission().push(&e).expect("sq") };
    };
    while issued < n.min(DEPTH as u64) {
        push(ring, issued as usize, issued);
        issued += 1;
    }
    while done < n {
        ring.submit_and_wait(1).expect("submit_and_wait");
        let ready: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (slot, res) in ready {
            assert_eq!(res, BLOCK as i32, "read");
            done += 1;
            if issued < n {
                push(ring, slot as usize, issued);
                issued += 1;
            }
        }
    }
}

fn common_tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_all()
        .build()
        .unwrap()
}

/// tokio's shape: open /dev/zero, read it 1,000 times in 4 KiB blocks, one at a time.
fn tokio_1000x4k(c: &mut Criterion) {
    let mut group = c.benchmark_group("fs/tokio_1000x4k");
    group.throughput(Throughput::Elements(BLOCK_COUNT as u64));
    {
        let rt = ringleader::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .build()
            .unwrap();
        async fn read_loop() {
            let mut file = ringleader::fs::File::open(DEV_ZERO).await.unwrap();
            let mut buf = Vec::with_capacity(BLOCK);
            for _ in 0..BLOCK_COUNT {
                let (res, b) = file.read(buf).await;
                if res.unwrap() == 0 {
                    break;
                }
                buf = b;
            }
        }
        group.bench_function("ringleader", |b| b.iter(|| rt.block_on(read_loop())));
        group.bench_function("ringleader_on_worker", |b| {
            b.iter(|| rt.block_on(rt.handle().spawn(read_loop())).unwrap())
        });
    }
    {
        use tokio::io::AsyncReadExt;
        let rt = common_tokio();
        group.bench_function("tokio", |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut file = tokio::fs::File::open(DEV_ZERO).await.unwrap();
                    let mut buffer = [0u8; BLOCK];
                    for _ in 0..BLOCK_COUNT {
                        let count = file.read(&mut buffer).await.unwrap();
                        if count == 0 {
                            break;
                        }
                    }
                })
            })
        });
    }
    group.bench_function("std", |b| {
        use std::io::Read;
        b.iter(|| {
            let mut file = StdFile::open(DEV_ZERO).unwrap();
            let mut buffer = [0u8; BLOCK];
            for _ in 0..BLOCK_COUNT {
                if file.read(&mut buffer).unwrap() == 0 {
                    break;
                }
            }
        })
    });
    {
        let mut ring = bare_ring();
        group.bench_function("bare_uring", |b| {
            b.iter(|| {
                use io_uring::{opcode, types};
                let file = StdFile::open(DEV_ZERO).unwrap();
                let mut buffer = [0u8; BLOCK];
                for _ in 0..BLOCK_COUNT {
                    let e = opcode::Read::new(
                        types::Fd(file.as_raw_fd()),
                        buffer.as_mut_ptr(),
                        BLOCK as u32,
                    )
                    .offset(u64::MAX) // the file position, as read(2)
                    .build();
                    // SAFETY: the buffer and fd outlive the entry, reaped just below.
                    unsafe { ring.submission().push(&e).expect("sq") };
                    ring.submit_and_wait(1).expect("submit_and_wait");
                    let res = ring.completion().next().expect("cqe").result();
                    assert!(res > 0, "read");
                }
            })
        });
    }
    group.finish();
}

fn main() {
    let dir = std::env::temp_dir().join(format!("ringleader-bench-fs-{}", std::process::id()));
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    // `cargo bench` passes --bench; `cargo test --benches` runs each function once.
    let path = create_file(&dir);
    random_read(&mut c, &path);
    tokio_1000x4k(&mut c);
    c.final_summary();
    let _ = std::fs::remove_dir_all(&dir);
}
