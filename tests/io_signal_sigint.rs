//! SIGINT truly delivered to a process running `ringleader::run` (a `harness = false`
//! target: the binary is its own parent and child). The parent re-executes itself with
//! `RINGLEADER_SIGINT_CHILD=<mode>`, waits for the child's "ready" line, sends SIGINT with
//! `kill(2)`, and checks the child's output and how it ended.
//!
//! Modes:
//! - `cancel`: the first SIGINT cancels the root (reason `Signal`); the root cleans up, and
//!   the process then dies by SIGINT.
//! - `second`: the root ignores cancellation; a second SIGINT kills the process at once.
//! - `listeners`: two SIGINT listeners each see a SIGINT the process sends itself, twice;
//!   `run` leaves SIGINT to them and returns normally.
//! - `restore`: `run` returns normally and SIGINT's default disposition is back.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ringleader::signal::{self, SignalKind};

const MODE_VAR: &str = "RINGLEADER_SIGINT_CHILD";

fn main() {
    match std::env::var(MODE_VAR).as_deref() {
        Ok("cancel") => child_cancel(),
        Ok("second") => child_second(),
        Ok("listeners") => child_listeners(),
        Ok("restore") => child_restore(),
        Ok("main") => child_main(),
        Ok(other) => panic!("unknown child mode {other}"),
        Err(_) => parent(),
    }
}

fn child_cancel() {
    ringleader::run(async {
        println!("ready");
        let reason = ringleader::cancelled().await;
        println!("cancelled: {reason:?}");
        // Asynchronous cleanup still works during the cancellation.
        ringleader::time::sleep(Duration::from_millis(20)).await;
        println!("cleanup done");
    });
    println!("run returned");
}

/// The same root as `child_cancel`, through `#[ringleader::main]` (current-thread flavour,
/// to check the attribute's own runtime gets the handling too).
#[ringleader::main(flavor = "current_thread")]
async fn child_main() {
    println!("ready");
    let reason = ringleader::cancelled().await;
    println!("cancelled: {reason:?}");
    ringleader::time::sleep(Duration::from_millis(20)).await;
    println!("cleanup done");
}

fn child_second() {
    ringleader::run(async {
        println!("ready");
        ringleader::cancelled().await;
        println!("ignoring the cancellation");
        std::future::pending::<()>().await;
    });
    println!("run returned");
}

fn child_listeners() {
    ringleader::run(async {
        let mut a = signal::signal(SignalKind::interrupt()).expect("listener a");
        let mut b = signal::signal(SignalKind::interrupt()).expect("listener b");
        for round in 0..2 {
            // SAFETY: kill with our own pid and a valid signal number has no memory effects.
            let rc = unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
            assert_eq!(rc, 0);
            assert_eq!(a.recv().await, Some(()));
            assert_eq!(b.recv().await, Some(()));
            println!("round {round}: both listeners saw SIGINT");
        }
        assert!(!ringleader::is_cancelled(), "run cancelled the root");
    });
    println!("run returned");
}

fn sigint_is_default() -> bool {
    // SAFETY: sigaction with a null new action only writes the current one into `old`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `old` is live and writable.
    let rc = unsafe { libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old) };
    rc == 0 && old.sa_sigaction == libc::SIG_DFL
}

fn child_restore() {
    assert!(sigint_is_default());
    let out = ringleader::run(async { 7 });
    assert_eq!(out, 7);
    assert!(sigint_is_default(), "run left its SIGINT handler installed");
    println!("restored");
}

/// The child's stdout lines arrive on the channel.
struct Spawned {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn spawn(mode: &str) -> Spawned {
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .env(MODE_VAR, mode)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Spawned { child, lines }
}

impl Spawned {
    /// Waits for `want`; every line seen on the way is kept in `seen`. A generous bound
    /// that only a hung child reaches (then the child is killed and the test fails).
    fn expect_line(&mut self, want: &str, seen: &mut Vec<String>) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let done = line == want;
                    seen.push(line);
                    if done {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("the child never printed {want:?}; it printed {seen:?}");
                }
            }
        }
    }

    fn sigint(&self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill with our child's pid (not yet reaped, so not reused) and SIGINT.
        let rc = unsafe { libc::kill(pid, libc::SIGINT) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// The rest of the output and the exit status.
    fn finish(mut self, seen: &mut Vec<String>) -> ExitStatus {
        let status = self.child.wait().expect("wait for the child");
        seen.extend(self.lines.iter());
        status
    }
}

fn first_sigint_cancels_then_the_process_dies_by_sigint() {
    let mut child = spawn("cancel");
    let mut seen = Vec::new();
    child.expect_line("ready", &mut seen);
    child.sigint();
    let status = child.finish(&mut seen);
    assert!(
        seen.iter().any(|l| l == "cancelled: Signal"),
        "root not cancelled with reason Signal: {seen:?}"
    );
    assert!(
        seen.iter().any(|l| l == "cleanup done"),
        "cleanup did not finish: {seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l == "run returned"),
        "run returned after the interrupt: {seen:?}"
    );
    assert_eq!(status.signal(), Some(libc::SIGINT), "status {status:?}");
}

fn the_main_attribute_handles_sigint_as_run_does() {
    let mut child = spawn("main");
    let mut seen = Vec::new();
    child.expect_line("ready", &mut seen);
    child.sigint();
    let status = child.finish(&mut seen);
    assert!(
        seen.iter().any(|l| l == "cancelled: Signal") && seen.iter().any(|l| l == "cleanup done"),
        "the attribute's root was not cancelled and cleaned up: {seen:?}"
    );
    assert_eq!(status.signal(), Some(libc::SIGINT), "status {status:?}");
}

fn second_sigint_kills_a_root_that_ignores_cancellation() {
    let mut child = spawn("second");
    let mut seen = Vec::new();
    child.expect_line("ready", &mut seen);
    child.sigint();
    child.expect_line("ignoring the cancellation", &mut seen);
    child.sigint();
    let status = child.finish(&mut seen);
    assert!(!seen.iter().any(|l| l == "run returned"), "{seen:?}");
    assert_eq!(status.signal(), Some(libc::SIGINT), "status {status:?}");
}

fn sigint_reaches_two_listeners_and_run_leaves_it_to_them() {
    let child = spawn("listeners");
    let mut seen = Vec::new();
    let status = child.finish(&mut seen);
    assert!(status.success(), "status {status:?}, output {seen:?}");
    assert_eq!(
        seen,
        [
            "round 0: both listeners saw SIGINT",
            "round 1: both listeners saw SIGINT",
            "run returned"
        ]
    );
}

fn run_restores_the_default_disposition() {
    let child = spawn("restore");
    let mut seen = Vec::new();
    let status = child.finish(&mut seen);
    assert!(status.success(), "status {status:?}, output {seen:?}");
    assert_eq!(seen, ["restored"]);
}

fn parent() {
    let tests: [(&str, fn()); 5] = [
        (
            "first_sigint_cancels_then_the_process_dies_by_sigint",
            first_sigint_cancels_then_the_process_dies_by_sigint,
        ),
        (
            "second_sigint_kills_a_root_that_ignores_cancellation",
            second_sigint_kills_a_root_that_ignores_cancellation,
        ),
        (
            "sigint_reaches_two_listeners_and_run_leaves_it_to_them",
            sigint_reaches_two_listeners_and_run_leaves_it_to_them,
        ),
        (
            "run_restores_the_default_disposition",
            run_restores_the_default_disposition,
        ),
        (
            "the_main_attribute_handles_sigint_as_run_does",
            the_main_attribute_handles_sigint_as_run_does,
        ),
    ];
    for (name, test) in tests {
        print!("test {name} ... ");
        test();
        println!("ok");
    }
}
