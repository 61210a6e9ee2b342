//! A data-processing pipeline in the asyncio style: a producer walks a directory tree and
//! puts file paths into a bounded queue; worker tasks in a task group read each file, count
//! its lines and bytes, and checksum it on the blocking pool; a subprocess stage then ranks
//! the files by line count through `sort(1)`.
//!
//! ```text
//! cargo run --release --example pipeline                  # the repository's own sources
//! cargo run --release --example pipeline -- /usr/include --workers 8
//! ```
//!
//! The shapes, in asyncio's terms: `asyncio.Queue(maxsize)` with `put` / `get` /
//! `task_done` / `join` / `shutdown` (Python 3.13), `asyncio.TaskGroup` for the producer and
//! the workers, `asyncio.to_thread` for the CPU-bound checksum, and
//! `create_subprocess_exec(...).communicate(input)` for the sort.
//!
//! It checks its own results with std alone (every file's size and checksum against
//! `std::fs`, the total byte count against the sum of `std::fs::metadata` lengths, the sort's
//! output against the program's own ranking) and exits 1 if anything disagrees, 2 on bad
//! input. A file that changes while the pipeline runs is reported, not counted as a failure.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ringleader::process::{Command, Stdio};
use ringleader::sync::Queue;
use ringleader::taskgroup::{task_group, BoxError};
use ringleader::{fs, task};

const USAGE: &str = "usage: pipeline [PATH...] [--workers N]
  PATH         directories (walked recursively) or files; default: the repository's
               src, io/src and sync/src
  --workers N  worker tasks reading files (default 4)";

/// Room for a few paths per worker: enough to keep them busy, small enough that a huge tree
/// holds the walker back (asyncio.Queue(maxsize) backpressure) instead of filling memory.
const QUEUE_PER_WORKER: usize = 4;

/// What a worker learned about one file.
#[derive(Debug, Clone)]
struct FileReport {
    path: PathBuf,
    bytes: u64,
    lines: u64,
    checksum: u64,
}

/// What the walker found besides the files it queued.
#[derive(Debug, Default)]
struct Walk {
    queued: Vec<PathBuf>,
    /// Entries left out on purpose (not regular files, names the line-based sort would split).
    skipped: Vec<String>,
    /// Directories that could not be read.
    problems: Vec<String>,
}

/// Everything the async part produced, checked afterwards with std alone.
struct Run {
    walk: Walk,
    reports: Vec<FileReport>,
    /// Per-file read failures from the workers.
    failures: Vec<String>,
    /// `sort`'s output: `lines\tpath` records, most lines first.
    sorted: Vec<u8>,
    unfinished_after_join: usize,
    queue_shut_down: bool,
    started: SystemTime,
    elapsed: Duration,
}

/// 64-bit FNV-1a: simple, and enough to notice a byte read wrong.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Lines as `wc -l` counts them: newline characters.
fn count_lines(data: &[u8]) -> u64 {
    data.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The producer: walks `roots` depth first and puts every regular file into `queue`. `put`
/// waits while the queue is full, so the walk never runs far ahead of the workers.
async fn walk(roots: Vec<PathBuf>, queue: Arc<Queue<PathBuf>>) -> Result<Walk, BoxError> {
    let mut found = Walk::default();
    let mut dirs = Vec::new();
    for root in roots {
        // The roots were checked to exist before the pipeline started.
        if fs::metadata(&root).await?.is_dir() {
            dirs.push(root);
        } else {
            found.queued.push(root.clone());
            queue.put(root).await?;
        }
    }
    while let Some(dir) = dirs.pop() {
        let mut listing = match fs::read_dir(&dir).await {
            Ok(listing) => listing,
            Err(e) => {
                found.problems.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        let mut entries = Vec::new();
        loop {
            match listing.next_entry().await {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => break,
                Err(e) => {
                    found.problems.push(format!("{}: {e}", dir.display()));
                    break;
                }
            }
        }
        // Directory order is the file system's whim; sorted, the walk is the same each run.
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            // The type read_dir saw (no symlinks followed, so no loops).
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(e) => {
                    found.problems.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            if kind.is_dir() {
                dirs.push(path);
            } else if !kind.is_file() {
                found
                    .skipped
                    .push(format!("{} (not a regular file)", path.display()));
            } else if path.as_os_str().as_bytes().contains(&b'\n') {
                found
                    .skipped
                    .push(format!("{:?} (a newline in the name)", path));
            } else {
                found.queued.push(path.clone());
                queue.put(path).await?;
            }
        }
    }
    Ok(found)
}

/// Reads one file through the ring and measures it on the blocking pool.
async fn measure(path: PathBuf) -> Result<FileReport, String> {
    let data = fs::read(&path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Counting and hashing touch every byte: CPU work, which would hold up the other tasks
    // of this worker thread, so it runs on the blocking pool (asyncio.to_thread).
    let (bytes, lines, checksum) =
        task::to_thread(move || (data.len() as u64, count_lines(&data), fnv1a(&data)))
            .await
            .map_err(|e| format!("{}: the checksum task failed: {e}", path.display()))?;
    Ok(FileReport {
        path,
        bytes,
        lines,
        checksum,
    })
}

/// A worker: takes paths until the queue is shut down, marking each one done, even when the
/// file could not be read (otherwise `join` would wait forever).
async fn worker(queue: Arc<Queue<PathBuf>>) -> Result<Vec<Result<FileReport, String>>, BoxError> {
    let mut done = Vec::new();
    // get() fails only once the queue is shut down and empty (3.13's QueueShutDown).
    while let Ok(path) = queue.get().await {
        done.push(measure(path).await);
        queue.task_done()?;
    }
    Ok(done)
}

/// The subprocess stage: `lines\tpath` records through `sort`, most lines first, ties by
/// path. `LC_ALL=C` makes `sort` compare bytes, the order Rust's own sort uses.
async fn rank_with_sort(reports: &[FileReport]) -> Result<Vec<u8>, String> {
    let mut input = Vec::new();
    for r in reports {
        input.extend_from_slice(format!("{}\t", r.lines).as_bytes());
        input.extend_from_slice(r.path.as_os_str().as_bytes());
        input.push(b'\n');
    }
    let mut child = Command::new("sort")
        .args(["-t", "\t", "-k1,1nr", "-k2"])
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run sort: {e}"))?;
    let out = child
        .communicate(Some(input))
        .await
        .map_err(|e| format!("talking to sort failed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sort failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

async fn pipeline(roots: Vec<PathBuf>, workers: usize) -> Result<Run, String> {
    let started = SystemTime::now();
    let clock = Instant::now();
    let queue = Arc::new(Queue::new(workers * QUEUE_PER_WORKER));
    let (walk, results) = task_group(|tg| {
        let queue = queue.clone();
        async move {
            let mut handles = Vec::with_capacity(workers);
            for i in 0..workers {
                handles.push(tg.spawn_named(format!("worker-{i}"), worker(queue.clone()))?);
            }
            let walker = tg.spawn_named("walker", walk(roots, queue.clone()))?;
            let walk = walker.await?;
            // Every path put has been taken and marked done...
            queue.join().await;
            // ...so the workers are idle in get(): shutting the queue down ends their loops.
            queue.shutdown(false);
            let mut results = Vec::new();
            for handle in handles {
                results.extend(handle.await?);
            }
            Ok::<_, BoxError>((walk, results))
        }
    })
    .await
    .map_err(|errors| format!("the pipeline's task group failed: {errors}"))?;

    let (mut reports, mut failures) = (Vec::new(), Vec::new());
    for result in results {
        match result {
            Ok(report) => reports.push(report),
            Err(msg) => failures.push(msg),
        }
    }
    let sorted = rank_with_sort(&reports).await?;
    Ok(Run {
        walk,
        reports,
        failures,
        sorted,
        unfinished_after_join: queue.unfinished_tasks(),
        queue_shut_down: queue.is_shutdown(),
        started,
        elapsed: clock.elapsed(),
    })
}

/// Shows `path` relative to the repository when it is inside it.
fn shown(path: &Path) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(repo)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Prints the top 10 (from `sort`'s output) and the totals; then checks everything with std.
/// Returns the list of disagreements.
fn report_and_check(run: &Run) -> Vec<String> {
    let mut bad = Vec::new();
    let by_path: HashMap<&[u8], &FileReport> = run
        .reports
        .iter()
        .map(|r| (r.path.as_os_str().as_bytes(), r))
        .collect();

    // sort's records, parsed back.
    let records: Vec<(&[u8], &[u8])> = run
        .sorted
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let tab = line.iter().position(|&b| b == b'\t').unwrap_or(line.len());
            (&line[..tab], line.get(tab + 1..).unwrap_or_default())
        })
        .collect();
    println!(
        "{:>7} {:>9}  top 10 files by line count (ranked by sort)",
        "LINES", "BYTES"
    );
    for (lines, path) in records.iter().take(10) {
        let bytes = by_path.get(path).map_or(0, |r| r.bytes);
        let path = PathBuf::from(OsString::from_vec(path.to_vec()));
        println!(
            "{:>7} {bytes:>9}  {}",
            String::from_utf8_lossy(lines),
            shown(&path)
        );
    }
    let total_bytes: u64 = run.reports.iter().map(|r| r.bytes).sum();
    let total_lines: u64 = run.reports.iter().map(|r| r.lines).sum();
    println!(
        "{} files, {total_lines} lines, {total_bytes} bytes in {:.0?}",
        run.reports.len(),
        run.elapsed
    );
    // A tree full of symlinks would drown the report: the first few show what was left out.
    for s in run.walk.skipped.iter().take(5) {
        println!("  skipped: {s}");
    }
    if run.walk.skipped.len() > 5 {
        println!("  skipped: ... and {} more", run.walk.skipped.len() - 5);
    }

    // The walk, the workers and the queue agree.
    for p in run.walk.problems.iter().chain(&run.failures) {
        bad.push(format!("could not read {p}"));
    }
    let queued: HashSet<&Path> = run.walk.queued.iter().map(PathBuf::as_path).collect();
    let measured: HashSet<&Path> = run.reports.iter().map(|r| r.path.as_path()).collect();
    if run.reports.len() + run.failures.len() != run.walk.queued.len()
        || measured.len() != run.reports.len()
        || !measured.is_subset(&queued)
    {
        bad.push(format!(
            "{} paths queued, {} measured ({} distinct), {} failed: not each exactly once",
            run.walk.queued.len(),
            run.reports.len(),
            measured.len(),
            run.failures.len()
        ));
    }
    if run.unfinished_after_join != 0 || !run.queue_shut_down {
        bad.push(format!(
            "after join and shutdown the queue has {} unfinished tasks (shut down: {})",
            run.unfinished_after_join, run.queue_shut_down
        ));
    }

    // Each file against std: size and checksum. A file written during the run (the clock
    // granularity of mtimes is coarse, hence the second of slack) may differ honestly.
    let since = run.started - Duration::from_secs(1);
    let (mut std_total, mut our_total, mut changed) = (0u64, 0u64, Vec::new());
    for r in &run.reports {
        let meta = std::fs::metadata(&r.path);
        let fresh = meta
            .as_ref()
            .ok()
            .and_then(|m| m.modified().ok())
            .is_none_or(|t| t >= since);
        let std_len = meta.as_ref().map(|m| m.len()).ok();
        let std_sum = std::fs::read(&r.path).ok().map(|d| fnv1a(&d));
        if std_len == Some(r.bytes) && std_sum == Some(r.checksum) {
            std_total += r.bytes;
            our_total += r.bytes;
        } else if fresh {
            changed.push(shown(&r.path));
        } else {
            let std_says = match (std_len, std_sum) {
                (Some(len), Some(sum)) => format!("{len} bytes, checksum {sum:016x}"),
                _ => "it cannot be read".to_owned(),
            };
            bad.push(format!(
                "{}: read {} bytes, checksum {:016x}; std says {std_says}",
                shown(&r.path),
                r.bytes,
                r.checksum,
            ));
            our_total += r.bytes;
            std_total += std_len.unwrap_or(0);
        }
    }
    for c in &changed {
        println!("  changed during the run, not compared: {c}");
    }
    if our_total != std_total {
        bad.push(format!(
            "total bytes {our_total} but the std::fs::metadata lengths sum to {std_total}"
        ));
    }

    // sort's output: one record per file, in the order the program ranks them itself.
    let mut ours: Vec<&FileReport> = run.reports.iter().collect();
    ours.sort_by(|a, b| {
        b.lines.cmp(&a.lines).then_with(|| {
            a.path
                .as_os_str()
                .as_bytes()
                .cmp(b.path.as_os_str().as_bytes())
        })
    });
    if records.len() != run.reports.len() {
        bad.push(format!(
            "sort printed {} lines for {} files",
            records.len(),
            run.reports.len()
        ));
    } else if let Some(((lines, path), r)) = records.iter().zip(&ours).find(|((lines, path), r)| {
        *path != r.path.as_os_str().as_bytes() || *lines != r.lines.to_string().as_bytes()
    }) {
        bad.push(format!(
            "sort ranked {:?} ({} lines) where the program ranks {} ({} lines)",
            String::from_utf8_lossy(path),
            String::from_utf8_lossy(lines),
            shown(&r.path),
            r.lines
        ));
    }
    if bad.is_empty() {
        println!(
            "checked: {} files each read once, sizes and checksums match std::fs ({std_total} bytes), \
             sort agrees with the program's ranking",
            run.reports.len() - changed.len()
        );
    }
    bad
}

fn parse_args(
    args: impl IntoIterator<Item = String>,
) -> Result<Option<(Vec<PathBuf>, usize)>, String> {
    let mut roots = Vec::new();
    let mut workers = 4;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--workers" => {
                let v = args.next().ok_or("--workers needs a number")?;
                workers = match v.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => n,
                    _ => return Err(format!("--workers needs a number 1-1024, not {v:?}")),
                };
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s:?}")),
            _ => roots.push(PathBuf::from(arg)),
        }
    }
    if roots.is_empty() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        roots = ["src", "io/src", "sync/src"]
            .iter()
            .map(|d| repo.join(d))
            .collect();
    }
    // A missing root is bad input, not a pipeline failure.
    for root in &roots {
        if let Err(e) = std::fs::metadata(root) {
            return Err(format!("{}: {e}", root.display()));
        }
    }
    Ok(Some((roots, workers)))
}

fn main() -> ExitCode {
    let (roots, workers) = match parse_args(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("pipeline: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let shown_roots: Vec<String> = roots.iter().map(|r| shown(r)).collect();
    println!(
        "pipeline: {workers} workers over {}",
        shown_roots.join(", ")
    );
    // ringleader::try_run is asyncio.run: a runtime for the root future, and Ctrl-C cancels it.
    let run = match ringleader::try_run(pipeline(roots, workers)) {
        Ok(Ok(run)) => run,
        Ok(Err(msg)) => {
            eprintln!("pipeline: {msg}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("pipeline: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bad = report_and_check(&run);
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("pipeline: FAILED:\n  {}", bad.join("\n  "));
        ExitCode::FAILURE
    }
}
