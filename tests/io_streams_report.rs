//! A server's handler that fails is never silent: without a `tracing` subscriber the error
//! goes to stderr, as asyncio's default exception handler prints it. Checked in a child
//! process (this test binary run again), whose stderr the parent reads.

mod support;

use std::process::Command;

const CHILD: &str = "RINGLEADER_TEST_REPORT_CHILD";

/// In the child: a server whose handler fails once, and one client.
fn child() {
    support::rt2().block_on(async {
        let server = ringleader::streams::start_server(
            |_r: ringleader::streams::StreamReader, _w: ringleader::streams::StreamWriter| async {
                Err::<(), _>(std::io::Error::other("the handler gave up"))
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let port = server.local_addrs()[0].as_inet().unwrap().port();
        let (mut reader, _writer) = ringleader::streams::open_connection("127.0.0.1", port)
            .await
            .unwrap();
        // The handler ends the connection when it fails.
        let _ = reader.read_to_end().await;
        server.close();
        server.wait_closed().await;
        assert_eq!(server.stats().failed, 1);
    });
}

#[test]
fn a_failing_handler_is_reported_on_stderr_without_a_subscriber() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_failing_handler_is_reported_on_stderr_without_a_subscriber",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child failed: {stderr}");
    assert!(
        stderr.contains("connection handler for") && stderr.contains("the handler gave up"),
        "stderr: {stderr}"
    );
}
