//! Conformance audit of subprocesses, signals, datagrams, sendfile and copy against the
//! documented behaviour of Python asyncio (and std / tokio where ours follows them): the
//! cases the other `io_*` tests leave out, and bad input (a clear `io::Error`, no panic,
//! no leaked fd, no zombie).
//!
//! Every test holds one lock: some count this process's fds, which the others would
//! disturb. Only SIGUSR1, SIGUSR2, SIGCHLD and SIGINT (once a listener exists) are
//! delivered here.

mod support;

use std::future::poll_fn;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::task::Poll;
use std::time::Duration;

use ringleader::fs::File;
use ringleader::io::sendfile;
use ringleader::net::{
    DatagramEndpoint, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixStream,
};
use ringleader::process::{Command, Stdio};
use ringleader::signal::{self, SignalKind};
use ringleader::streams::{copy, copy_bidirectional};
use ringleader::taskgroup::timeout;
use support::{open_fds, rt2, serial};

/// A bound on waits that must end, so a regression fails instead of hanging the suite.
const LIMIT: Duration = Duration::from_secs(30);

/// Whether `pid` is gone for good (a zombie still has its /proc entry).
fn reaped(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` has exited but not been reaped yet.
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Waits (bounded) until `f` holds; false if it never did.
async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..2000 {
        if f() {
            return true;
        }
        ringleader::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

/// Waits (bounded) until the fd count is back to `before`; the count then.
async fn fds_back_to(before: usize) -> usize {
    eventually(|| open_fds() == before).await;
    open_fds()
}

// ---------------------------------------------------------------------------------------
// Subprocesses (asyncio-subprocess.html)
// ---------------------------------------------------------------------------------------

#[test]
fn spawn_errors_are_clear_and_leak_no_fd_or_child() {
    let _serial = serial();
    let not_executable =
        std::env::temp_dir().join(format!("rl-audit-noexec-{}", std::process::id()));
    std::fs::write(&not_executable, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        &not_executable,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    rt2().block_on(async {
        Command::new("/bin/true").output().await.unwrap();
        let before = open_fds();
        for _ in 0..20 {
            // A working directory that does not exist.
            let err = Command::new("/bin/true")
                .current_dir("/nonexistent/ringleader-audit-dir")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
            // A missing program, with pipes asked for.
            let err = Command::new("/nonexistent/ringleader-audit-program")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .output()
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
            // A file that is not executable.
            let err = Command::new(&not_executable).spawn().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        }
        assert_eq!(
            fds_back_to(before).await,
            before,
            "failed spawns leaked fds"
        );
    });
    std::fs::remove_file(&not_executable).unwrap();
}

#[test]
fn writing_to_the_stdin_of_an_exited_child_is_broken_pipe_not_sigpipe() {
    let _serial = serial();
    rt2().block_on(async {
        let mut child = Command::new("/bin/true")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        assert!(child.wait().await.unwrap().success());
        let (res, _) = stdin.write(b"too late".to_vec()).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        let (res, _) = stdin.write_all(vec![1u8; 1 << 20]).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        // Still alive, and closing the dead pipe is fine.
        stdin.close().await.unwrap();
    });
}

#[test]
fn communicate_closes_stdin_after_the_input_and_without_input() {
    let _serial = serial();
    rt2().block_on(async {
        timeout(LIMIT, async {
            // `done` is printed only after cat saw the end of its input.
            let mut child = Command::shell("cat; echo done")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = child.communicate(Some(b"input\n".to_vec())).await.unwrap();
            assert_eq!(out.stdout, b"input\ndone\n");
            assert!(out.status.success());

            // No input: a piped stdin is still closed (asyncio: communicate() sends EOF).
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = child.communicate(None).await.unwrap();
            assert!(out.stdout.is_empty());
            assert!(out.status.success());
            assert!(child.stdin.is_none() && child.stdout.is_none());

            // Empty input: the same.
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = child.communicate(Some(Vec::new())).await.unwrap();
            assert!(out.stdout.is_empty());
            assert!(out.status.success());
        })
        .await
        .unwrap();
    });
}

#[test]
fn communicate_without_pipes_gives_empty_outputs_and_the_status() {
    let _serial = serial();
    rt2().block_on(async {
        let mut child = Command::shell("echo hidden; exit 4")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.communicate(None).await.unwrap();
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
        assert_eq!(out.status.code(), Some(4));
        assert_eq!(child.id(), None, "reaped by communicate");
        // Only stderr piped.
        let mut child = Command::shell("echo out; echo err >&2")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.communicate(None).await.unwrap();
        assert!(out.stdout.is_empty());
        assert_eq!(out.stderr, b"err\n");
    });
}

#[test]
fn wait_closes_stdin_so_a_reader_of_its_input_finishes() {
    let _serial = serial();
    rt2().block_on(async {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let status = timeout(LIMIT, child.wait()).await.unwrap().unwrap();
        assert!(status.success());
        assert!(child.stdin.is_none());
    });
}

#[test]
fn kill_after_exit_is_not_an_error_and_keeps_the_real_status() {
    let _serial = serial();
    rt2().block_on(async {
        // Exited but not yet waited for: std's Child::kill returns Ok here too.
        let mut child = Command::shell("exit 3").spawn().unwrap();
        let pid = child.id().unwrap();
        assert!(eventually(|| zombie(pid)).await, "{pid} never exited");
        child.start_kill().unwrap();
        let status = child.kill().await.unwrap();
        assert_eq!(
            status.code(),
            Some(3),
            "the exit on its own is what is reported"
        );
        assert_eq!(status.signal(), None);
        assert!(reaped(pid));
        // After the reap: still Ok, still the same status, the pid not reused by us.
        child.start_kill().unwrap();
        assert_eq!(child.kill().await.unwrap().code(), Some(3));
        assert_eq!(child.id(), None);

        // The same scenario with std, to check we agree.
        let mut std_child = std::process::Command::new("/bin/true").spawn().unwrap();
        let std_pid = std_child.id();
        assert!(eventually(|| zombie(std_pid)).await);
        std_child.kill().unwrap();
        assert!(std_child.wait().unwrap().success());
    });
}

#[test]
fn a_signal_exit_reports_the_signal_as_asyncio_a_negative_returncode() {
    let _serial = serial();
    rt2().block_on(async {
        let mut child = Command::new("/bin/cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.start_kill().unwrap();
        let out = child.communicate(None).await.unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGKILL));
        assert_eq!(out.status.code(), None);
    });
}

#[test]
fn a_childs_stdout_can_feed_another_childs_stdin() {
    let _serial = serial();
    rt2().block_on(async {
        // Warm up (the first spawn initialises what std and the runtime keep open).
        Command::new("/bin/true").output().await.unwrap();
        let before = open_fds();
        let mut first = Command::new("printf")
            .arg("chained\\n")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe: OwnedFd = first
            .stdout
            .take()
            .unwrap()
            .into_owned_fd()
            .map_err(|(e, _)| e)
            .unwrap();
        let out = Command::new("/bin/cat")
            .stdin(Stdio::from(pipe))
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"chained\n");
        assert!(first.wait().await.unwrap().success());
        // The Child keeps its pidfd until dropped.
        drop(first);
        assert_eq!(fds_back_to(before).await, before);
    });
}

#[test]
fn a_dropped_output_future_with_kill_on_drop_leaves_no_zombie() {
    let _serial = serial();
    rt2().block_on(async {
        let before = open_fds();
        let res = timeout(
            Duration::from_millis(50),
            Command::new("/bin/sleep")
                .arg("1000")
                .kill_on_drop(true)
                .output(),
        )
        .await;
        assert!(res.is_err(), "sleep 1000 finished");
        // No child of ours is left, running or zombie.
        assert!(
            eventually(|| children_of_self().is_empty()).await,
            "children left: {:?}",
            children_of_self()
        );
        assert_eq!(fds_back_to(before).await, before);
    });
}

/// This process's child processes (running or zombie), from /proc.
fn children_of_self() -> Vec<u32> {
    let me = std::process::id();
    let mut kids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path().join("children");
        if let Ok(list) = std::fs::read_to_string(path) {
            kids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    kids.retain(|&p| p != me);
    kids
}

// ---------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------

fn raise(signum: libc::c_int) {
    // SAFETY: raise with a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::raise(signum) }, 0);
}

/// Whether `recv` would return at once.
async fn ready(s: &mut signal::Signals) -> bool {
    poll_fn(|cx| Poll::Ready(s.poll_recv(cx).is_ready())).await
}

#[test]
fn listeners_of_different_signals_are_independent_and_drops_do_not_disturb_others() {
    let _serial = serial();
    rt2().block_on(async {
        let mut one = signal::signal(SignalKind::user_defined1()).unwrap();
        let mut two = signal::signal(SignalKind::user_defined2()).unwrap();
        let dropped = signal::signal(SignalKind::user_defined2()).unwrap();
        drop(dropped);
        raise(libc::SIGUSR2);
        assert_eq!(timeout(LIMIT, two.recv()).await.unwrap(), Some(()));
        assert!(!ready(&mut one).await, "SIGUSR1 listener woke for SIGUSR2");
        raise(libc::SIGUSR1);
        assert_eq!(timeout(LIMIT, one.recv()).await.unwrap(), Some(()));
        assert!(!ready(&mut two).await, "SIGUSR2 listener woke twice");
    });
}

#[test]
fn sigchld_listeners_see_a_child_exit_and_waits_still_work() {
    let _serial = serial();
    rt2().block_on(async {
        let mut chld = signal::signal(SignalKind::child()).unwrap();
        let status = Command::shell("exit 9").status().await.unwrap();
        assert_eq!(status.code(), Some(9));
        assert_eq!(timeout(LIMIT, chld.recv()).await.unwrap(), Some(()));
    });
}

#[test]
fn ctrl_c_futures_all_resolve_on_one_sigint() {
    let _serial = serial();
    rt2().block_on(async {
        let mut a = std::pin::pin!(signal::ctrl_c());
        let mut b = std::pin::pin!(signal::ctrl_c());
        // The first poll installs the handler: SIGINT is ours from then on.
        assert!(support::poll_once(a.as_mut()).await.is_none());
        assert!(support::poll_once(b.as_mut()).await.is_none());
        raise(libc::SIGINT);
        timeout(LIMIT, a).await.unwrap().unwrap();
        timeout(LIMIT, b).await.unwrap().unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Datagrams (create_datagram_endpoint)
// ---------------------------------------------------------------------------------------

#[test]
fn a_udp_datagram_larger_than_the_buffer_is_truncated_and_the_rest_dropped() {
    let _serial = serial();
    rt2().block_on(async {
        let server = DatagramEndpoint::udp()
            .local("127.0.0.1:0")
            .bind()
            .await
            .unwrap();
        let client = DatagramEndpoint::udp()
            .remote(server.local_addr().unwrap())
            .bind()
            .await
            .unwrap();
        client.send(b"0123456789".to_vec()).await.0.unwrap();
        client.send(b"next".to_vec()).await.0.unwrap();
        let (res, buf) = server.recv_from(vec![0u8; 4]).await;
        let (n, from) = res.unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"0123"[..], client.local_addr().unwrap())
        );
        // The tail of the first datagram is gone: the next receive is the next datagram.
        let (res, buf) = server.recv_from(vec![0u8; 64]).await;
        assert_eq!(&buf[..res.unwrap().0], b"next");

        // The same on a connected socket's recv.
        server
            .send_to(b"abcdefgh".to_vec(), client.local_addr().unwrap())
            .await
            .0
            .unwrap();
        server
            .send_to(b"ij".to_vec(), client.local_addr().unwrap())
            .await
            .0
            .unwrap();
        let (res, buf) = client.recv(vec![0u8; 3]).await;
        assert_eq!(&buf[..res.unwrap()], b"abc");
        let (res, buf) = client.recv(vec![0u8; 64]).await;
        assert_eq!(&buf[..res.unwrap()], b"ij");
    });
}

#[test]
fn a_unix_datagram_larger_than_the_buffer_is_truncated_and_the_rest_dropped() {
    let _serial = serial();
    rt2().block_on(async {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(b"0123456789".to_vec()).await.0.unwrap();
        a.send(b"next".to_vec()).await.0.unwrap();
        let (res, buf) = b.recv(vec![0u8; 4]).await;
        assert_eq!(&buf[..res.unwrap()], b"0123");
        let (res, buf) = b.recv_from(vec![0u8; 64]).await;
        let (n, from) = res.unwrap();
        assert_eq!((&buf[..n], from), (&b"next"[..], None));
    });
}

#[test]
fn empty_datagrams_are_delivered_as_empty() {
    let _serial = serial();
    rt2().block_on(async {
        let server = DatagramEndpoint::udp()
            .local("127.0.0.1:0")
            .bind()
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (res, _) = client
            .send_to(Vec::new(), server.local_addr().unwrap())
            .await;
        assert_eq!(res.unwrap(), 0);
        client
            .send_to(b"after".to_vec(), server.local_addr().unwrap())
            .await
            .0
            .unwrap();
        let (res, _) = server.recv_from(vec![0u8; 16]).await;
        assert_eq!(res.unwrap(), (0, client.local_addr().unwrap()));
        let (res, buf) = server.recv_from(vec![0u8; 16]).await;
        assert_eq!(&buf[..res.unwrap().0], b"after");

        let (a, b) = UnixDatagram::pair().unwrap();
        assert_eq!(a.send(Vec::new()).await.0.unwrap(), 0);
        let (res, _) = b.recv(vec![0u8; 16]).await;
        assert_eq!(res.unwrap(), 0);
    });
}

#[test]
fn sending_to_a_closed_udp_port_is_reported_as_connection_refused() {
    let _serial = serial();
    rt2().block_on(async {
        // A port nothing listens on (bound, then closed).
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = DatagramEndpoint::udp().remote(port).bind().await.unwrap();
        // asyncio: the protocol's error_received(ConnectionRefusedError). The ICMP error
        // arrives after the send; the next receive (or send) reports it.
        let (res, _) = client.send(b"anyone?".to_vec()).await;
        res.unwrap();
        let (res, _) = timeout(LIMIT, client.recv(vec![0u8; 16])).await.unwrap();
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn udp_bad_destinations_are_errors_not_panics() {
    let _serial = serial();
    rt2().block_on(async {
        let v4 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // An IPv6 destination on an IPv4 socket.
        let (res, buf) = v4.send_to(b"x".to_vec(), "[::1]:9").await;
        assert!(res.is_err());
        assert_eq!(buf, b"x", "the buffer comes back");
        // A name that does not resolve.
        let (res, _) = v4
            .send_to(b"x".to_vec(), "ringleader-no-such-host.invalid:9")
            .await;
        assert!(res.is_err());
        // Port 0 is no destination.
        let (res, _) = v4.send_to(b"x".to_vec(), "127.0.0.1:0").await;
        assert!(res.is_err());
        // An unconnected socket's send has no peer.
        let (res, _) = v4.send(b"x".to_vec()).await;
        assert!(res.is_err());
    });
}

#[test]
fn udp_send_to_several_addresses_uses_one_of_the_sockets_family() {
    let _serial = serial();
    rt2().block_on(async {
        // asyncio (and CPython's sendto) resolve a name for the socket's family; a
        // resolver answer that lists an IPv6 address first must not make an IPv4
        // socket's send fail.
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let targets: [std::net::SocketAddr; 2] = [
            format!("[::1]:{port}").parse().unwrap(),
            format!("127.0.0.1:{port}").parse().unwrap(),
        ];
        let (res, _) = client.send_to(b"v4".to_vec(), &targets[..]).await;
        assert_eq!(res.unwrap(), 2);
        let (res, buf) = server.recv_from(vec![0u8; 16]).await;
        assert_eq!(&buf[..res.unwrap().0], b"v4");
    });
}

// ---------------------------------------------------------------------------------------
// sendfile (loop.sendfile)
// ---------------------------------------------------------------------------------------

async fn tcp_pair() -> (TcpStream, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().await.unwrap();
    (ours, peer)
}

#[test]
fn sendfile_from_non_regular_files_is_an_error_and_leaks_nothing() {
    let _serial = serial();
    rt2().block_on(async {
        let (warm, _p) = tcp_pair().await;
        drop(warm);
        let before = open_fds();
        let (ours, _peer) = tcp_pair().await;
        // A directory.
        let dir = File::open(std::env::temp_dir()).await.unwrap();
        let err = timeout(LIMIT, sendfile(&dir, &ours, 0, None))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
        drop(dir);
        // A pipe: it has no offsets.
        let (r, w) = std::io::pipe().unwrap();
        std::io::Write::write_all(&mut &w, b"piped").unwrap();
        drop(w);
        let pipe = File::from_std(std::fs::File::from(OwnedFd::from(r)));
        let res = timeout(LIMIT, sendfile(&pipe, &ours, 0, None))
            .await
            .unwrap();
        assert!(res.is_err(), "sendfile from a pipe: {res:?}");
        drop(pipe);
        drop(ours);
        drop(_peer);
        assert_eq!(fds_back_to(before).await, before, "sendfile leaked fds");
    });
}

#[test]
fn sendfile_of_an_empty_file_or_past_its_end_sends_nothing() {
    let _serial = serial();
    let path = std::env::temp_dir().join(format!("rl-audit-empty-{}", std::process::id()));
    std::fs::write(&path, b"").unwrap();
    rt2().block_on(async {
        let file = File::open(&path).await.unwrap();
        let (ours, mut peer) = tcp_pair().await;
        assert_eq!(sendfile(&file, &ours, 0, None).await.unwrap(), 0);
        assert_eq!(sendfile(&file, &ours, 10, Some(5)).await.unwrap(), 0);
        drop(ours);
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut peer, &mut got).unwrap();
        assert!(got.is_empty());
    });
    std::fs::remove_file(&path).unwrap();
}

// ---------------------------------------------------------------------------------------
// copy / copy_bidirectional (tokio's semantics)
// ---------------------------------------------------------------------------------------

#[test]
fn copy_of_an_empty_stream_returns_zero_and_shuts_the_writer_down() {
    let _serial = serial();
    rt2().block_on(async {
        timeout(LIMIT, async {
            let (a, b) = UnixStream::pair().unwrap();
            let (c, d) = UnixStream::pair().unwrap();
            a.shutdown(std::net::Shutdown::Write).await.unwrap();
            assert_eq!(copy(&b, &c).await.unwrap(), 0);
            let (res, got) = d.read_to_end(Vec::new()).await;
            assert_eq!(res.unwrap(), 0);
            assert!(got.is_empty());
        })
        .await
        .unwrap();
    });
}

#[test]
fn copy_to_a_closed_peer_is_an_error_not_sigpipe() {
    let _serial = serial();
    rt2().block_on(async {
        timeout(LIMIT, async {
            let (a, b) = UnixStream::pair().unwrap();
            let (c, d) = UnixStream::pair().unwrap();
            drop(d);
            a.write_all(b"nobody reads this".to_vec()).await.0.unwrap();
            a.shutdown(std::net::Shutdown::Write).await.unwrap();
            let err = copy(&b, &c).await.unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ),
                "{err}"
            );
        })
        .await
        .unwrap();
    });
}

#[test]
fn copy_bidirectional_propagates_each_half_close_in_order() {
    let _serial = serial();
    rt2().block_on(async {
        timeout(LIMIT, async {
            let (c1, p1) = UnixStream::pair().unwrap();
            let (p2, c2) = UnixStream::pair().unwrap();
            let proxy = ringleader::spawn(async move { copy_bidirectional(&p1, &p2).await });
            // Side 1 sends nothing and half-closes: side 2 reads end of stream while the
            // other direction is still open.
            c1.shutdown(std::net::Shutdown::Write).await.unwrap();
            let (res, got) = c2.read_to_end(Vec::new()).await;
            assert_eq!(res.unwrap(), 0);
            assert!(got.is_empty());
            // The other direction still works afterwards.
            c2.write_all(b"late reply".to_vec()).await.0.unwrap();
            c2.shutdown(std::net::Shutdown::Write).await.unwrap();
            let (res, got) = c1.read_to_end(Vec::new()).await;
            res.unwrap();
            assert_eq!(got, b"late reply");
            assert_eq!(proxy.await.unwrap().unwrap(), (0, 10));
        })
        .await
        .unwrap();
    });
}

#[test]
fn copy_bidirectional_reports_a_reset_as_an_error() {
    let _serial = serial();
    rt2().block_on(async {
        timeout(LIMIT, async {
            let (p1, c1) = {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let c = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (p, _) = listener.accept().await.unwrap();
                (p, c)
            };
            let (_c2, p2) = UnixStream::pair().unwrap();
            let proxy = ringleader::spawn(async move { copy_bidirectional(&p1, &p2).await });
            // An abortive close (RST): the proxy's read of side 1 fails.
            socket2::SockRef::from(&c1)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(c1);
            let err = proxy.await.unwrap().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        })
        .await
        .unwrap();
    });
}
