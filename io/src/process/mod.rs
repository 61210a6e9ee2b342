//! Subprocesses (asyncio's `create_subprocess_exec` and `create_subprocess_shell`): spawn a
//! program with piped, inherited or null stdio, talk to it through pipes on the ring, and
//! wait for it without a thread.
//!
//! ```
//! use ringleader_io::process::{Command, Stdio};
//!
//! ringleader_runtime::run(async {
//!     // asyncio.create_subprocess_exec("tr", "a-z", "A-Z", stdin=PIPE, stdout=PIPE)
//!     let mut child = Command::new("tr")
//!         .args(["a-z", "A-Z"])
//!         .stdin(Stdio::piped())
//!         .stdout(Stdio::piped())
//!         .spawn()?;
//!     let out = child.communicate(Some(b"hello".to_vec())).await?;
//!     assert_eq!(out.stdout, b"HELLO");
//!     assert!(out.status.success());
//!
//!     // asyncio.create_subprocess_shell("echo oops >&2; exit 3", stdout=PIPE, stderr=PIPE)
//!     let out = Command::shell("echo oops >&2; exit 3").output().await?;
//!     assert_eq!(out.stderr, b"oops\n");
//!     assert_eq!(out.status.code(), Some(3));
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # In asyncio's terms
//! - `create_subprocess_exec(program, *args, stdin=, stdout=, stderr=, cwd=, env=)` is
//!   [`Command::new`] with [`args`](Command::args), [`stdin`](Command::stdin)...,
//!   [`current_dir`](Command::current_dir), [`env`](Command::env), then
//!   [`spawn`](Command::spawn). `create_subprocess_shell(cmd)` is [`Command::shell`]
//!   (`/bin/sh -c cmd`). `PIPE`, `DEVNULL` and inheriting are [`Stdio::piped`],
//!   [`Stdio::null`] and [`Stdio::inherit`] (std's type).
//! - `Process.communicate(input)` is [`Child::communicate`]; `Process.wait`, `kill`, `pid`
//!   are [`Child::wait`], [`Child::start_kill`] (or [`Child::kill`], which also waits) and
//!   [`Child::id`]. `subprocess.run(..., capture_output=True)` is [`Command::output`].
//! - The pipes ([`ChildStdin`], [`ChildStdout`], [`ChildStderr`]) read and write with owned
//!   buffers, like the sockets: `let (res, buf) = stdout.read(buf).await;`.
//!
//! # Waiting without threads
//! Right after spawning, the child's pidfd is opened (`pidfd_open(2)`; Linux 5.3). A wait is
//! an `IORING_OP_WAITID` on that pidfd (Linux 6.7), or, on kernels without it, a poll of the
//! pidfd through the ring followed by a non-blocking `waitid(2)`. No thread blocks per child,
//! and no SIGCHLD handler is installed. Which of the two works is learnt from the first wait.
//!
//! # Dropped children
//! Dropping a [`Child`] whose process still runs sends it SIGKILL if
//! [`kill_on_drop`](Command::kill_on_drop) was set, and leaves it running otherwise; either
//! way it is reaped when it exits: by a detached task on the current runtime, or, when
//! dropped outside any runtime (or if that runtime shuts down first), by the next
//! [`spawn`](Command::spawn) of this process after it exits. So a program that keeps
//! spawning accumulates no zombies.
//!
//! # Limits
//! A process that sets SIGCHLD to `SIG_IGN`, or calls `waitpid(-1)` elsewhere, lets the
//! kernel (or that code) reap our children: waits then fail with `ECHILD`. Spawning itself
//! (fork and exec, by std) is a short blocking call on the calling thread, as in every
//! runtime.

mod child;
mod pipe;
mod reaper;

use std::ffi::OsStr;
use std::io;
use std::path::Path;

pub use child::Child;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};

/// A program to run, and how (std's `Command`, with an async [`output`](Self::output) and
/// [`status`](Self::status), [`kill_on_drop`](Self::kill_on_drop) and
/// [`shell`](Self::shell)). Builder methods take and return `&mut Self`, so one `Command`
/// can spawn many children.
#[derive(Debug)]
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    /// Which stdio the caller set: [`output`](Self::output) uses its own defaults for the
    /// others.
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
}

impl Command {
    /// A command running `program` (looked up in `PATH` if it has no `/`), with no
    /// arguments, the parent's environment, working directory and stdio.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// A command running `cmdline` through `/bin/sh -c` (asyncio's
    /// `create_subprocess_shell`). Quoting is the caller's job: never build `cmdline` from
    /// untrusted input.
    pub fn shell(cmdline: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(cmdline);
        command
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, value);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what [`env`](Self::env) adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory. A relative program path is then looked up
    /// relative to it (std's rule, platform-specific): prefer absolute paths.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's stdin: [`Stdio::piped`] (then [`Child::stdin`] is its write end),
    /// [`Stdio::inherit`] (the default for [`spawn`](Self::spawn)) or [`Stdio::null`].
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// The child's stdout, as [`stdin`](Self::stdin).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// The child's stderr, as [`stdin`](Self::stdin).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// Whether dropping a [`Child`] spawned from now on whose process still runs kills it
    /// (SIGKILL). Default `false`: it keeps running. It is reaped when it exits either way
    /// (see the [module docs](self)).
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// std's command, to read its settings or use its Unix extensions (`uid`, `pre_exec`...).
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// std's command, to change settings this type does not wrap. Stdio set here counts as
    /// unset for [`output`](Self::output)'s defaults.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Starts the program (asyncio's `create_subprocess_exec`), returning at once.
    ///
    /// Spawning is a short blocking call (fork and exec, done by std), as in every
    /// runtime; the child's pipes and its wait then go through the ring. Must be called
    /// inside a runtime for the pipes and waits to work.
    ///
    /// # Errors
    /// `NotFound` if the program does not exist, `PermissionDenied` if it is not
    /// executable, std's other spawn errors (`EMFILE`...), or `pidfd_open`'s (the child is
    /// then killed and reaped).
    pub fn spawn(&mut self) -> io::Result<Child> {
        reaper::sweep();
        let child = self.std.spawn()?;
        Child::from_std(child, self.kill_on_drop)
    }

    /// Runs the program to completion with stdout and stderr captured (unless set
    /// otherwise) and stdin null (unless set otherwise), as std's `output` and Python's
    /// `subprocess.run(capture_output=True)`.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn) and [`Child::communicate`]. A non-zero exit is not an
    /// error: read [`Output::status`].
    ///
    /// # Cancel safety
    /// Dropping the future drops the child: it is killed if
    /// [`kill_on_drop`](Self::kill_on_drop) was set, left running otherwise (and reaped
    /// when it exits).
    pub async fn output(&mut self) -> io::Result<Output> {
        let (stdin_set, stdout_set, stderr_set) =
            (self.stdin_set, self.stdout_set, self.stderr_set);
        if !stdin_set {
            self.std.stdin(Stdio::null());
        }
        if !stdout_set {
            self.std.stdout(Stdio::piped());
        }
        if !stderr_set {
            self.std.stderr(Stdio::piped());
        }
        let spawned = self.spawn();
        // Back to spawn's defaults for later spawns.
        if !stdin_set {
            self.std.stdin(Stdio::inherit());
        }
        if !stdout_set {
            self.std.stdout(Stdio::inherit());
        }
        if !stderr_set {
            self.std.stderr(Stdio::inherit());
        }
        spawned?.communicate(None).await
    }

    /// Runs the program to completion with the configured stdio (inherited by default) and
    /// gives its exit status.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn) and [`Child::wait`].
    ///
    /// # Cancel safety
    /// As [`output`](Self::output).
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait().await
    }
}

impl From<std::process::Command> for Command {
    /// Wraps std's command; its stdio settings count as unset for
    /// [`output`](Command::output)'s defaults.
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            kill_on_drop: false,
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
        }
    }
}
