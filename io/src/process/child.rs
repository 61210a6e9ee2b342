//! A running child: its pidfd, its pipes, and its exit status once reaped.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::pin;
use std::process::{ExitStatus, Output};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use ringleader_runtime::driver::ops_process::waitid_nohang;
use ringleader_runtime::driver::SharedFd;

use super::pipe::{ChildStderr, ChildStdin, ChildStdout};
use super::reaper::{self, WaitFuture};

/// A spawned child process (asyncio's `Process`), from [`Command::spawn`].
///
/// The child is waited for through its pidfd on the ring (see the [module docs](super)):
/// waiting costs no thread. Its exit status, once known, is kept: later waits return it.
///
/// Dropping a `Child` does not kill the process unless
/// [`kill_on_drop`](super::Command::kill_on_drop) was set; either way the process is reaped
/// once it exits (no zombie is left behind, see the module docs).
///
/// [`Command::spawn`]: super::Command::spawn
pub struct Child {
    /// The write end of the child's stdin, if it was [`piped`](std::process::Stdio::piped).
    pub stdin: Option<ChildStdin>,
    /// The read end of the child's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The read end of the child's stderr, if it was piped.
    pub stderr: Option<ChildStderr>,
    pid: u32,
    pidfd: SharedFd,
    /// Set once the child is reaped; from then on the pid may belong to another process.
    status: Option<ExitStatus>,
    /// A wait in flight, kept across dropped `wait` futures (it may reap the child).
    waiting: Option<WaitFuture>,
    kill_on_drop: bool,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish_non_exhaustive()
    }
}

/// `pidfd_open(2)`: an fd that refers to this process (not to its pid number) until closed.
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd (close-on-exec) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pidfd_send_signal(2)`: signals the very process of the pidfd, never a reused pid.
fn pidfd_kill(pidfd: &SharedFd) -> io::Result<()> {
    // SAFETY: integers and a null siginfo (the kernel fills in a default one).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        // ESRCH: it has exited already (its status waits for us): nothing to kill.
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err);
        }
    }
    Ok(())
}

impl Child {
    /// Takes a freshly spawned std child: opens its pidfd and moves its pipes onto the ring.
    /// If the pidfd cannot be opened, the child is killed and reaped, and the error returned.
    pub(super) fn from_std(
        mut child: std::process::Child,
        kill_on_drop: bool,
    ) -> io::Result<Child> {
        let pid = child.id();
        // Nobody else reaps our children (unless SIGCHLD is ignored, see the module docs),
        // so `pid` still names this child, at worst as a zombie, which pidfd_open accepts.
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => Arc::new(fd),
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        Ok(Child {
            stdin: child.stdin.take().map(ChildStdin::from),
            stdout: child.stdout.take().map(ChildStdout::from),
            stderr: child.stderr.take().map(ChildStderr::from),
            pid,
            pidfd,
            status: None,
            waiting: None,
            kill_on_drop,
        })
    }

    /// The process id, or `None` once the child has been reaped (its pid may then belong to
    /// another process).
    pub fn id(&self) -> Option<u32> {
        self.status.is_none().then_some(self.pid)
    }

    /// Waits for the child to exit and gives its exit status (asyncio's `Process.wait`).
    /// Closes [`stdin`](Self::stdin) first, as std does, so a child reading to the end of its
    /// input can finish. To also collect piped output, use [`communicate`](Self::communicate):
    /// a child blocked writing to a full pipe nobody reads never exits.
    ///
    /// Once reaped, the status is kept: every later call returns it at once.
    ///
    /// # Errors
    /// `ECHILD` (`io::Error` with that raw code) if something else in this process reaped the
    /// child (a `waitpid(-1)` elsewhere, or SIGCHLD set to `SIG_IGN`); errors of the ring.
    ///
    /// # Cancel safety
    /// Cancel safe: the wait in flight is kept by the `Child`, so a status the kernel gives
    /// after the future was dropped is returned by the next call (or by
    /// [`try_wait`](Self::try_wait)).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.status {
            return Ok(status);
        }
        let pidfd = &self.pidfd;
        let wait = self
            .waiting
            .get_or_insert_with(|| reaper::wait_future(pidfd.clone()));
        let res = wait.await;
        self.waiting = None;
        let status = res?;
        self.status = Some(status);
        Ok(status)
    }

    /// The exit status if the child has exited (reaping it), `None` if it still runs;
    /// never blocks.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        if let Some(wait) = &mut self.waiting {
            // A wait left by a dropped `wait` future may have completed: no task awaits it
            // now (that takes `&mut self`), so a no-op waker loses nothing; the next `wait`
            // polls it with its own.
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(res) = wait.as_mut().poll(&mut cx) {
                self.waiting = None;
                let status = res?;
                self.status = Some(status);
                return Ok(Some(status));
            }
        }
        match waitid_nohang(self.pidfd.as_raw_fd()) {
            Ok(Some(status)) => {
                // Cancels the wait in flight, if any: it can only find ECHILD now.
                self.waiting = None;
                self.status = Some(status);
                Ok(Some(status))
            }
            Ok(None) => Ok(None),
            // The wait in flight reaped it; its completion, with the status, is on its way.
            Err(err) if err.raw_os_error() == Some(libc::ECHILD) && self.waiting.is_some() => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Sends SIGKILL without waiting (asyncio's `Process.kill`); follow with
    /// [`wait`](Self::wait) to reap the child. The signal goes through the pidfd, so it
    /// reaches this child even if its pid number was reused.
    ///
    /// # Errors
    /// The `pidfd_send_signal` error (`EPERM`...). A child that has exited already is not an
    /// error: there is nothing to kill.
    pub fn start_kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        pidfd_kill(&self.pidfd)
    }

    /// Sends SIGKILL and waits for the child to exit, giving its exit status (a signal exit,
    /// `ExitStatusExt::signal() == Some(9)`, unless it had exited on its own before).
    ///
    /// # Errors
    /// As [`start_kill`](Self::start_kill) and [`wait`](Self::wait).
    ///
    /// # Cancel safety
    /// As [`wait`](Self::wait); the signal is sent at the first poll.
    pub async fn kill(&mut self) -> io::Result<ExitStatus> {
        self.start_kill()?;
        self.wait().await
    }

    /// Writes `input` to the child's stdin (then closes it) while reading its stdout and
    /// stderr to their ends, then waits for it (asyncio's `Process.communicate`). The three
    /// run concurrently in the calling task, so a child that writes more than a pipe holds
    /// before reading all its input cannot deadlock with us.
    ///
    /// Pipes that were not [`piped`](std::process::Stdio::piped) give empty outputs. A child
    /// that exits (or closes its stdin) without reading all of `input` is not an error: the
    /// rest is discarded, as asyncio does. Stdin, if piped, is closed even when `input` is
    /// `None`.
    ///
    /// # Errors
    /// `InvalidInput` if `input` is given but stdin is not piped (nothing is done then); a
    /// read or write error of a pipe (after all three have finished); as
    /// [`wait`](Self::wait).
    ///
    /// # Cancel safety
    /// Not cancel safe: the pipes are taken out of the `Child` at the first poll, and the
    /// output read so far is lost with the future. The child itself stays in the `Child`.
    pub async fn communicate(&mut self, input: Option<Vec<u8>>) -> io::Result<Output> {
        if input.is_some() && self.stdin.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "communicate was given input but the child's stdin is not piped",
            ));
        }
        let stdin = self.stdin.take();
        let stdout = self.stdout.take();
        let stderr = self.stderr.take();
        let feed = async move {
            let Some(stdin) = stdin else { return Ok(()) };
            if let Some(input) = input.filter(|i| !i.is_empty()) {
                let (res, _) = stdin.write_all(input).await;
                match res {
                    Err(err)
                        if matches!(
                            err.kind(),
                            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                        ) => {}
                    other => other?,
                }
            }
            // Dropping closes the pipe: the child sees the end of its input.
            drop(stdin);
            io::Result::Ok(())
        };
        let out = async move {
            match stdout {
                Some(pipe) => pipe.read_to_end(Vec::new()).await,
                None => (Ok(0), Vec::new()),
            }
        };
        let err = async move {
            match stderr {
                Some(pipe) => pipe.read_to_end(Vec::new()).await,
                None => (Ok(0), Vec::new()),
            }
        };
        let (fed, (out_res, stdout), (err_res, stderr)) = join3(feed, out, err).await;
        fed?;
        out_res?;
        err_res?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        if self.kill_on_drop {
            let _ = pidfd_kill(&self.pidfd);
        }
        match waitid_nohang(self.pidfd.as_raw_fd()) {
            Ok(Some(_)) => {}
            // Reaped by someone else (and no wait of ours is in flight): nothing to do.
            Err(err) if err.raw_os_error() == Some(libc::ECHILD) && self.waiting.is_none() => {}
            _ => reaper::adopt(self.pidfd.clone(), self.waiting.take()),
        }
    }
}

/// Runs three futures concurrently in the calling task; gives the three outputs.
async fn join3<A: Future, B: Future, C: Future>(
    a: A,
    b: B,
    c: C,
) -> (A::Output, B::Output, C::Output) {
    let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if rc.is_none() {
            if let Poll::Ready(v) = c.as_mut().poll(cx) {
                rc = Some(v);
            }
        }
        match (ra.take(), rb.take(), rc.take()) {
            (Some(a), Some(b), Some(c)) => Poll::Ready((a, b, c)),
            (a, b, c) => {
                (ra, rb, rc) = (a, b, c);
                Poll::Pending
            }
        }
    })
    .await
}

/// `Child` and the pipes can be shared between tasks and threads.
#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Child>();
    is::<ChildStdin>();
    is::<ChildStdout>();
    is::<ChildStderr>();
    is::<super::Command>();
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::super::reaper;
    use super::super::Command;

    #[test]
    fn the_poll_fallback_waits_and_reaps() {
        ringleader_runtime::run(async {
            let mut child = Command::shell("exit 5").spawn().unwrap();
            let status = reaper::wait_by_poll(&child.pidfd).await.unwrap();
            assert_eq!(status.code(), Some(5));
            // Reaped: a second non-blocking wait finds no child.
            let err = ringleader_runtime::driver::ops_process::waitid_nohang(
                std::os::fd::AsRawFd::as_raw_fd(&*child.pidfd),
            )
            .unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ECHILD));
            child.status = Some(status);

            let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
            child.start_kill().unwrap();
            let status = reaper::wait_by_poll(&child.pidfd).await.unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL));
            child.status = Some(status);
        });
    }

    #[test]
    fn waitid_through_the_ring_is_used_where_the_kernel_has_it_and_the_poll_fallback_works() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
        let major: u32 = parts.next().unwrap().parse().unwrap();
        let minor: u32 = parts.next().unwrap().parse().unwrap();
        ringleader_runtime::run(async {
            let status = Command::shell("exit 4").status().await.unwrap();
            assert_eq!(status.code(), Some(4));
        });
        if (major, minor) >= (6, 7) {
            assert!(
                reaper::uses_waitid(),
                "kernel {major}.{minor} has IORING_OP_WAITID"
            );
        }
        // The whole API on the fallback, as on kernels without the opcode. The switch is
        // process-wide, but both paths work, so tests running meanwhile do not mind.
        reaper::force_poll(true);
        ringleader_runtime::run(async {
            let status = Command::shell("exit 6").status().await.unwrap();
            assert_eq!(status.code(), Some(6));
            let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
            assert_eq!(child.try_wait().unwrap(), None);
            assert_eq!(child.kill().await.unwrap().signal(), Some(libc::SIGKILL));
            let out = Command::new("cat")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
                .communicate(Some(b"fallback".to_vec()))
                .await
                .unwrap();
            assert_eq!(out.stdout, b"fallback");
        });
        assert!(!reaper::uses_waitid());
        reaper::force_poll(false);
    }

    #[test]
    fn a_child_dropped_outside_a_runtime_is_reaped_by_a_later_spawn() {
        let rt = ringleader_runtime::runtime::Runtime::new().unwrap();
        let child = rt.block_on(async { Command::new("/bin/true").spawn().unwrap() });
        let pid = child.id().unwrap();
        // No runtime here: the child goes to the orphan list (unless it has exited and is
        // reaped on the spot).
        drop(child);
        let mut gone = false;
        for _ in 0..1000 {
            // What every spawn does first.
            reaper::sweep();
            if reaper::orphans() == 0 && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                gone = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(gone, "{pid} was not reaped");
    }
}
