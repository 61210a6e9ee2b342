//! A tour of ringleader: what works today, each step checked.
//!
//! Run with `cargo run --release --example tour`. It prints what happens and exits
//! non-zero if anything does not behave as it says.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringleader::process::{Command, Stdio};
use ringleader::runtime::Builder;
use ringleader::streams::{open_connection, start_server, StreamReader, StreamWriter};
use ringleader::sync::Queue;
use ringleader::taskgroup::{
    dump_tree, gather, scoped, task_group, timeout, BoxError, GroupConfig,
};
use ringleader::{fs, task, time};

/// One client of step 14: connects, sends a line, reads the reply.
async fn line_client(i: usize, port: u16) -> Result<String, BoxError> {
    let (mut reader, writer) = open_connection("127.0.0.1", port).await?;
    writer.write(format!("hello from client {i}\n").as_bytes());
    writer.drain().await?;
    let reply = String::from_utf8(reader.readline().await?.to_vec())?;
    writer.close();
    Ok(reply)
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("FAILED: {what}"))
    }
}

async fn tour() -> Result<(), String> {
    println!("1. tasks: spawn, await, names (asyncio.create_task)");
    let named = task::Builder::new()
        .name("greeter")
        .spawn(async { format!("hello from {}", task::name().unwrap_or_default()) });
    check(
        named.name() == Some("greeter"),
        "the handle knows the task's name",
    )?;
    let greeting = named.await.map_err(|e| e.to_string())?;
    println!("  {greeting}");
    check(
        greeting == "hello from greeter",
        "the task saw its own name",
    )?;

    println!("2. a hundred thousand tasks over the work-stealing pool");
    let started = Instant::now();
    let handles: Vec<_> = (0..100_000u64)
        .map(|i| ringleader::spawn(async move { i % 7 }))
        .collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.map_err(|e| e.to_string())?;
    }
    println!("  joined in {:?}", started.elapsed());
    check(
        sum == (0..100_000u64).map(|i| i % 7).sum::<u64>(),
        "every task ran once",
    )?;

    println!("3. a panic stays in its task (Task.exception())");
    let err = ringleader::spawn(async { panic!("a deliberate failure") })
        .await
        .expect_err("the task panicked");
    println!("  the handle reports: {err}");
    check(err.is_panic(), "the JoinError says it was a panic")?;

    println!("4. cancellation (Task.cancel())");
    let sleeper = ringleader::spawn(std::future::pending::<()>());
    task::yield_now().await;
    sleeper.abort();
    let err = sleeper.await.expect_err("the task was aborted");
    println!("  the handle reports: {err}");
    check(err.is_cancelled(), "the JoinError says it was cancelled")?;

    println!("5. cooperative yielding (await asyncio.sleep(0))");
    let (a, b) = (
        ringleader::spawn(async {
            for _ in 0..1_000 {
                task::yield_now().await;
            }
            "a"
        }),
        ringleader::spawn(async { "b" }),
    );
    check(
        b.await.ok() == Some("b"),
        "a yielding task does not block others",
    )?;
    check(a.await.ok() == Some("a"), "the yielding task finishes too")?;

    println!("6. a task group: a failing child cancels its siblings (asyncio.TaskGroup)");
    let result = task_group(|tg| async move {
        tg.spawn_named("slow", async {
            time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, BoxError>(())
        })?;
        // Spawned last: a group that has failed refuses new children.
        tg.spawn_named("fetch", async {
            time::sleep(Duration::from_millis(5)).await;
            Err::<(), BoxError>("connection refused".into())
        })?;
        Ok::<_, BoxError>(())
    })
    .await;
    let errors = result.err().ok_or("the group should have failed")?;
    print!("  {errors}");
    check(errors.len() == 1, "the error group holds the one failure")?;
    check(
        errors.failures()[0].name.as_deref() == Some("fetch"),
        "it names the failing task",
    )?;

    println!("7. timeouts (asyncio.timeout / wait_for)");
    let started = Instant::now();
    let timed_out = timeout(
        Duration::from_millis(20),
        time::sleep(Duration::from_secs(60)),
    )
    .await;
    println!("  gave up after {:?}", started.elapsed());
    check(timed_out.is_err(), "the timeout returned Elapsed")?;

    println!("8. blocking work on the blocking pool (asyncio.to_thread)");
    let sum = task::to_thread(|| (1..=1_000_000u64).sum::<u64>())
        .await
        .map_err(|e| e.to_string())?;
    check(sum == 500_000_500_000, "the closure ran on a pool thread")?;

    println!("9. children that borrow from the stack (taskgroup::scoped)");
    let words = ["structured", "concurrency", "borrows"];
    let mut lengths = [0usize; 3];
    scoped(|s| {
        let jobs: Vec<_> = words.iter().zip(lengths.iter_mut()).collect();
        async move {
            for (word, slot) in jobs {
                s.spawn(async move {
                    task::yield_now().await;
                    *slot = word.len();
                })?;
            }
            Ok::<_, BoxError>(())
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    check(
        lengths == [10, 11, 7],
        "each child wrote its own slot of a local array",
    )?;

    println!("10. the task tree (asyncio's pstree)");
    let printed = GroupConfig::new()
        .name("crawler")
        .run(|tg| async move {
            let fetch = tg.spawn_named("fetch", std::future::pending::<()>())?;
            let parse = tg.spawn_named("parse", std::future::pending::<()>())?;
            let printed = dump_tree().to_string();
            // Aborting single children is not a failure: the group returns the body's value.
            fetch.abort();
            parse.abort();
            Ok::<_, BoxError>(printed)
        })
        .await
        .map_err(|e| e.to_string())?;
    for line in printed.lines() {
        println!("  {line}");
    }
    check(
        printed.contains("group \"crawler\"") && printed.contains("\"parse\""),
        "the dump shows the group under its task, with its children",
    )?;

    println!("11. a queue pipeline: producer, two workers, join (asyncio.Queue)");
    let jobs = Arc::new(Queue::<u64>::new(4));
    let results = Arc::new(Queue::<u64>::unbounded());
    let total = task_group(|tg| {
        let (jobs, results) = (jobs.clone(), results.clone());
        async move {
            for worker in 0..2 {
                let (jobs, results) = (jobs.clone(), results.clone());
                tg.spawn_named(format!("worker-{worker}"), async move {
                    // Until the queue is shut down (Python 3.13's QueueShutDown).
                    while let Ok(n) = jobs.get().await {
                        results.put_nowait(n * n).map_err(|_| "results full")?;
                        jobs.task_done()?;
                    }
                    Ok::<_, BoxError>(())
                })?;
            }
            // put() waits while the queue holds 4 items: backpressure on the producer.
            for n in 1..=100 {
                jobs.put(n).await.map_err(|_| "jobs shut down")?;
            }
            jobs.join().await; // every job was taken and marked done
            jobs.shutdown(false);
            let mut total = 0;
            while let Ok(square) = results.get_nowait() {
                total += square;
            }
            Ok::<_, BoxError>(total)
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    println!("  sum of squares 1..=100 computed by two workers: {total}");
    check(total == 338_350, "every job went through exactly once")?;

    println!("12. files through the ring (aiofiles-style, but io_uring)");
    let dir = std::env::temp_dir().join(format!("ringleader-tour-{}", std::process::id()));
    fs::create_dir_all(&dir).await.map_err(|e| e.to_string())?;
    let path = dir.join("notes.txt");
    let text = "written by the tour\nread back through io_uring\n";
    fs::write(&path, text).await.map_err(|e| e.to_string())?;
    let back = fs::read_to_string(&path).await.map_err(|e| e.to_string())?;
    let size = fs::metadata(&path).await.map_err(|e| e.to_string())?.len();
    fs::remove_dir_all(&dir).await.map_err(|e| e.to_string())?;
    check(
        back == text && size == text.len() as u64,
        "the file reads back byte for byte",
    )?;
    let missing = fs::read(dir.join("gone")).await;
    check(
        missing.is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound),
        "a missing file is a NotFound error, not a panic",
    )?;

    println!("13. a subprocess, its output read through the ring (create_subprocess_exec)");
    let mut child = Command::new("tr")
        .args(["a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child
        .communicate(Some(b"shouting through a pipe".to_vec()))
        .await
        .map_err(|e| e.to_string())?;
    println!("  tr replied: {}", String::from_utf8_lossy(&out.stdout));
    check(
        out.status.success() && out.stdout == b"SHOUTING THROUGH A PIPE",
        "communicate wrote stdin, read stdout and reaped the child (pidfd wait, no thread)",
    )?;
    let missing = Command::new("/no/such/program").spawn();
    check(
        missing.is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound),
        "a missing program is NotFound",
    )?;

    println!("14. a line server in a task group; clients gathered under a timeout");
    println!("    (start_server, open_connection, readline/drain, gather, wait_for)");
    let (replies, served) = task_group(|tg| async move {
        // Trio's nursery.start: the body goes on once the server listens.
        let server = tg
            .start(|ready| async move {
                let server = start_server(
                    |mut reader: StreamReader, writer: StreamWriter| async move {
                        loop {
                            let line = reader.readline().await?;
                            if line.is_empty() {
                                return std::io::Result::Ok(()); // the client hung up
                            }
                            writer.write(&line.to_ascii_uppercase());
                            writer.drain().await?;
                        }
                    },
                    "127.0.0.1:0",
                )
                .await?;
                ready.started(server.clone());
                // Until the body closes it; then every handler is waited for.
                server.serve_forever().await?;
                server.wait_closed().await;
                Ok::<_, BoxError>(())
            })
            .await?;
        let port = server.local_addrs()[0].as_inet().ok_or("no port")?.port();
        let clients: Vec<_> = (0..10).map(|i| line_client(i, port)).collect();
        let replies = timeout(Duration::from_secs(10), gather(clients)).await??;
        server.close();
        Ok::<_, BoxError>((replies, server))
    })
    .await
    .map_err(|e| e.to_string())?;
    println!("  client 7 got back: {}", replies[7].trim_end());
    check(
        replies.len() == 10
            && replies
                .iter()
                .enumerate()
                .all(|(i, r)| *r == format!("HELLO FROM CLIENT {i}\n")),
        "each client got its own line back, upper-cased, in gather's order",
    )?;
    let stats = served.stats();
    check(
        stats.accepted == 10 && stats.failed == 0 && stats.panicked == 0,
        "the server's task group ran one handler per connection, none failed",
    )?;

    println!("15. futures of different types on one task: join! and select!");
    println!("    (gather of different coroutines; wait(FIRST_COMPLETED), then cancel the rest)");
    let (count, word) = ringleader::join!(
        async {
            time::sleep(Duration::from_millis(5)).await;
            3usize
        },
        async { "three" },
    );
    check(
        count == 3 && word == "three",
        "join! waited for both and gave their outputs in order",
    )?;
    let (reply_tx, reply_rx) = ringleader::sync::oneshot::channel::<&str>();
    let slow_peer = ringleader::spawn(async move {
        time::sleep(Duration::from_secs(3600)).await;
        let _ = reply_tx.send("a reply, too late");
    });
    let outcome = ringleader::select! {
        Ok(reply) = reply_rx => reply,
        _ = time::sleep(Duration::from_millis(10)) => "the deadline won",
    };
    slow_peer.abort();
    println!("  {outcome}");
    check(
        outcome == "the deadline won",
        "select! ran the branch that finished first and dropped the other",
    )?;
    Ok(())
}

fn main() -> ExitCode {
    // Step 3 panics on purpose: print one line for it instead of a backtrace.
    std::panic::set_hook(Box::new(|info| println!("  (a task panicked: {info})")));
    let rt = match Builder::new_multi_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "ringleader tour on {} worker threads",
        rt.handle().metrics().num_workers()
    );
    let result = rt.block_on(async { ringleader::spawn(tour()).await });
    drop(rt);
    match result {
        Ok(Ok(())) => {
            println!("tour complete: everything behaved as described");
            ExitCode::SUCCESS
        }
        Ok(Err(msg)) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("the tour task failed: {e}");
            ExitCode::FAILURE
        }
    }
}
