//! Subprocesses (`ringleader::process`): pipes through the ring, waits through pidfds, no
//! thread per child, kill_on_drop, and bad input.
//!
//! Every test here holds one lock: some count this process's threads and fds, which the
//! other tests of the binary (running in parallel threads) would disturb.

mod support;

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use ringleader::process::{Command, Stdio};
use support::{open_fds, rt2, serial};

/// Threads of this process, from /proc/self/task.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .count()
}

/// Whether `pid` is gone for good: killed and reaped (a zombie still has its /proc entry).
fn reaped(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits (bounded, yielding to the runtime) until `pid` is reaped; false if it never was.
async fn eventually_reaped(pid: u32) -> bool {
    for _ in 0..1000 {
        if reaped(pid) {
            return true;
        }
        ringleader::time::sleep(Duration::from_millis(10)).await;
    }
    reaped(pid)
}

#[test]
fn communicate_moves_ten_mib_each_way_without_deadlock() {
    let _serial = serial();
    rt2().block_on(async {
        // `cat` writes as it reads: with 10 MiB each way, both pipes fill many times over,
        // so writing all the input before reading would deadlock.
        let input: Vec<u8> = (0..10 << 20).map(|i: u32| (i % 251) as u8).collect();
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.communicate(Some(input.clone())).await.unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        assert_eq!(out.stdout.len(), input.len());
        assert!(out.stdout == input, "cat's output differs from its input");
        assert!(out.stderr.is_empty());
        assert!(child.stdin.is_none() && child.stdout.is_none() && child.stderr.is_none());
    });
}

#[test]
fn a_thousand_children_are_waited_for_without_a_thread_each() {
    let _serial = serial();
    let rt = rt2();
    // The runtime's own threads exist before the count starts.
    rt.block_on(async {});
    let before = threads();
    let (peak, exited) = rt.block_on(async {
        let mut peak = 0;
        let mut exited = 0;
        // Batches of 100 keep the fds (one pidfd per child) bounded.
        for _ in 0..10 {
            let mut waits = Vec::new();
            for _ in 0..100 {
                let mut child = Command::new("/bin/true").spawn().unwrap();
                waits.push(ringleader::spawn(async move { child.wait().await }));
            }
            // 100 children and 100 waiting tasks are alive now.
            ringleader::task::yield_now().await;
            peak = peak.max(threads());
            for wait in waits {
                let status = wait.await.unwrap().unwrap();
                assert_eq!(status.code(), Some(0));
                exited += 1;
            }
        }
        (peak, exited)
    });
    let after = threads();
    assert_eq!(exited, 1000);
    // A thread per waiting child would add ~100 per batch; a few may come and go for other
    // reasons (the blocking pool, say).
    assert!(
        peak < before + 20 && after < before + 20,
        "threads grew: {before} before, {peak} at peak, {after} after"
    );
}

#[test]
fn kill_on_drop_kills_and_the_child_is_reaped() {
    let _serial = serial();
    rt2().block_on(async {
        let child = Command::new("sleep")
            .arg("1000")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        assert!(!reaped(pid));
        drop(child);
        assert!(
            eventually_reaped(pid).await,
            "sleep {pid} was not killed and reaped"
        );
    });
}

#[test]
fn a_dropped_child_is_reaped_when_it_exits() {
    let _serial = serial();
    rt2().block_on(async {
        let mut pids = Vec::new();
        for _ in 0..20 {
            let child = Command::new("/bin/true").spawn().unwrap();
            pids.push(child.id().unwrap());
            drop(child);
        }
        for pid in pids {
            assert!(eventually_reaped(pid).await, "{pid} left as a zombie");
        }
    });
}

#[test]
fn kill_gives_a_signal_exit_status_and_waits_return_it_again() {
    let _serial = serial();
    rt2().block_on(async {
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        assert!(child.try_wait().unwrap().is_none());
        let status = child.kill().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(status.code(), None);
        assert!(!status.success());
        // Reaped: the pid is no longer ours; the status is cached.
        assert_eq!(child.id(), None);
        assert_eq!(child.wait().await.unwrap(), status);
        assert_eq!(child.try_wait().unwrap(), Some(status));
        // Killing a reaped child has nothing to do.
        child.start_kill().unwrap();
        assert_eq!(child.kill().await.unwrap(), status);
    });
}

#[test]
fn a_dropped_wait_is_resumed_by_the_next() {
    let _serial = serial();
    rt2().block_on(async {
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        {
            let mut wait = std::pin::pin!(child.wait());
            // Poll once (submitting the wait), then drop it.
            let polled = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(wait.as_mut().poll(cx).is_ready())
            })
            .await;
            assert!(!polled, "sleep 1000 exited at once");
        }
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));

        // A wait dropped in flight that then reaps the child: try_wait finds its status.
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        {
            let mut wait = std::pin::pin!(child.wait());
            let polled = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(wait.as_mut().poll(cx).is_ready())
            })
            .await;
            assert!(!polled, "sleep 1000 exited at once");
        }
        child.start_kill().unwrap();
        let mut status = None;
        for _ in 0..1000 {
            status = child.try_wait().unwrap();
            if status.is_some() {
                break;
            }
            ringleader::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGKILL));
        assert_eq!(child.wait().await.unwrap(), status.unwrap());
    });
}

#[test]
fn try_wait_sees_the_exit() {
    let _serial = serial();
    rt2().block_on(async {
        let mut child = Command::shell("exit 3").spawn().unwrap();
        let pid = child.id().unwrap();
        let mut status = None;
        for _ in 0..1000 {
            status = child.try_wait().unwrap();
            if status.is_some() {
                break;
            }
            ringleader::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(status.and_then(|s| s.code()), Some(3));
        assert!(reaped(pid));
    });
}

#[test]
fn a_missing_program_is_not_found() {
    let _serial = serial();
    rt2().block_on(async {
        let err = Command::new("/nonexistent/ringleader-no-such-program")
            .spawn()
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
        let err = Command::new("ringleader-no-such-program-in-path")
            .output()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    });
}

#[test]
fn output_captures_stdout_and_stderr_separately_with_the_exit_code() {
    let _serial = serial();
    rt2().block_on(async {
        let out = Command::shell("echo out; echo err >&2; exit 7")
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(7));

        // output's stdin is null: `cat` sees end of input at once.
        let out = Command::new("cat").output().await.unwrap();
        assert!(out.status.success());
        assert!(out.stdout.is_empty());

        // A stream set to null by the caller stays null (empty output).
        let out = Command::shell("echo out; echo err >&2")
            .stderr(Stdio::null())
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert!(out.stderr.is_empty());

        assert!(Command::new("/bin/true").status().await.unwrap().success());
        assert_eq!(
            Command::new("/bin/false").status().await.unwrap().code(),
            Some(1)
        );
        // A child killed by a signal it sent itself.
        let status = Command::shell("kill -TERM $$").status().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert_eq!(status.code(), None);
    });
}

#[test]
fn env_and_current_dir_are_honoured() {
    let _serial = serial();
    rt2().block_on(async {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let out = Command::new("/bin/sh")
            .args(["-c", "echo \"$RL_A|$RL_B|${HOME-unset}\"; pwd"])
            .env("RL_A", "one")
            .envs([("RL_B", "two"), ("HOME", "/nowhere")])
            .env_remove("HOME")
            .current_dir(&dir)
            .output()
            .await
            .unwrap();
        let expected = format!("one|two|unset\n{}\n", dir.display());
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

        let out = Command::new("/usr/bin/env")
            .env_clear()
            .env("ONLY", "this")
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"ONLY=this\n");
    });
}

#[test]
fn pipes_read_and_write_with_owned_buffers() {
    let _serial = serial();
    rt2().block_on(async {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (res, _) = stdin.write_all(b"ping".to_vec()).await;
        res.unwrap();
        let (res, buf) = stdout.read_exact(vec![0u8; 4]).await;
        res.unwrap();
        assert_eq!(buf, b"ping");
        stdin.close().await.unwrap();
        let (res, rest) = stdout.read_to_end(Vec::new()).await;
        assert_eq!(res.unwrap(), 0);
        assert!(rest.is_empty());
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn communicate_tolerates_a_child_that_ignores_its_input() {
    let _serial = serial();
    rt2().block_on(async {
        // The child exits without reading: writing 1 MiB meets a broken pipe, which is
        // not an error (asyncio's behaviour).
        let mut child = Command::shell("exit 0")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.communicate(Some(vec![7u8; 1 << 20])).await.unwrap();
        assert!(out.status.success());

        // Input without a stdin pipe is a usage error, reported before anything happens.
        let mut child = Command::new("/bin/true").spawn().unwrap();
        let err = child.communicate(Some(b"x".to_vec())).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn children_leave_no_fd_behind() {
    let _serial = serial();
    rt2().block_on(async {
        // Warm up (first spawn initialises whatever std and the runtime keep open).
        Command::new("/bin/true").output().await.unwrap();
        let before = open_fds();
        for i in 0..50 {
            let mut cmd = Command::new("cat");
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            if i % 2 == 0 {
                let out = child.communicate(Some(b"x".to_vec())).await.unwrap();
                assert_eq!(out.stdout, b"x");
            } else {
                // Dropped with its pipes: cat sees end of input and exits; reaped behind.
                let pid = child.id().unwrap();
                drop(child);
                assert!(eventually_reaped(pid).await);
            }
        }
        // The background reapers hold a pidfd until their child is reaped; give them a
        // bounded time to finish.
        let mut now = open_fds();
        for _ in 0..500 {
            if now == before {
                break;
            }
            ringleader::time::sleep(Duration::from_millis(10)).await;
            now = open_fds();
        }
        assert_eq!(now, before, "fds leaked by 50 children");
    });
}

#[test]
fn a_child_left_in_a_shut_down_runtime_is_killed_and_reaped_by_a_later_spawn() {
    let _serial = serial();
    let rt = rt2();
    let pid = rt.block_on(async {
        let mut child = Command::new("sleep")
            .arg("1000")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        // A task waits for it; the runtime shuts down under it, dropping the child.
        drop(ringleader::spawn(async move {
            let _ = child.wait().await;
        }));
        ringleader::task::yield_now().await;
        pid
    });
    drop(rt);
    // Killed at the drop; reaped by the sweep every spawn starts with.
    rt2().block_on(async {
        for _ in 0..1000 {
            if reaped(pid) {
                break;
            }
            Command::new("/bin/true").status().await.unwrap();
            ringleader::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(reaped(pid), "sleep {pid} was left behind");
    });
}
