//! Where io_uring is refused, as Docker's and containerd's default seccomp profiles refuse
//! it, building a runtime gives an error that names the cause: no panic, no hang.
//!
//! The test re-runs itself in a child process that installs a seccomp filter failing
//! `io_uring_setup` with `EPERM` (the filter cannot be removed, so it must not touch the
//! other tests).

#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use std::io;
use std::process::Command;

use ringleader::runtime::Builder;

const CHILD_ENV: &str = "RINGLEADER_TEST_NO_IO_URING_CHILD";
const TEST_NAME: &str = "a_seccomp_profile_that_refuses_io_uring_gives_a_clear_error";

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
/// `io_uring_setup`'s number, the same in the generic and the x86-64 tables.
const NR_IO_URING_SETUP: u32 = 425;

/// Makes `io_uring_setup` fail with `EPERM` in every thread of this process, now and later.
fn refuse_io_uring() -> io::Result<()> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const RET_ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // seccomp_data: `nr` at offset 0, `arch` at 4.
    let mut filter = [
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 1, 0, AUDIT_ARCH),
        op(RET_K, 0, 0, RET_ALLOW),
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 0, 1, NR_IO_URING_SETUP),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        op(RET_K, 0, 0, RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `prog` points at `filter`, both alive for the call; the kernel copies the
    // program.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The checks, in the filtered child.
fn child() {
    refuse_io_uring().expect("install the seccomp filter");
    let check = |what: &str, err: io::Error| {
        let msg = err.to_string();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{what}: {msg}");
        assert!(
            msg.contains("io_uring is forbidden here") && msg.contains("EPERM"),
            "{what}: the error does not name the cause: {msg}"
        );
    };
    check(
        "multi-thread build",
        Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap_err(),
    );
    check(
        "current-thread build",
        Builder::new_current_thread().build().unwrap_err(),
    );
    check("try_run", ringleader::try_run(async {}).unwrap_err());
    // Still refused on a second attempt (nothing half set up is left behind to trip on).
    check(
        "second build",
        Builder::new_multi_thread().build().unwrap_err(),
    );
    println!("no-io_uring checks passed");
}

#[test]
fn a_seccomp_profile_that_refuses_io_uring_gives_a_clear_error() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("no-io_uring checks passed"),
        "the child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
