//! Signals as async events: several listeners of one signal each see every delivery, the
//! Stream impl, and the kinds that are refused. Only SIGUSR1/SIGUSR2 are sent here (other
//! tests of this binary run concurrently; nothing else uses those two). SIGINT and `run`'s
//! Ctrl-C behaviour are tested in `io_signal_sigint.rs`, in child processes.

mod support;

use std::future::poll_fn;
use std::io;
use std::pin::Pin;

use futures_core::Stream;
use ringleader::signal::{self, SignalKind};
use support::rt2;

/// Sends `signum` to this thread: delivered (its handler has run) when this returns.
fn raise(signum: libc::c_int) {
    // SAFETY: raise with a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::raise(signum) }, 0);
}

/// Sends `signum` to the process: any thread that does not block it runs the handler.
fn kill_self(signum: libc::c_int) {
    // SAFETY: kill with our own pid and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(libc::getpid(), signum) };
    assert_eq!(rc, 0);
}

#[test]
fn every_listener_sees_every_delivery() {
    rt2().block_on(async {
        let mut a = signal::signal(SignalKind::user_defined1()).unwrap();
        let mut b = signal::signal(SignalKind::user_defined1()).unwrap();
        // A listener in another task, waiting before the signal is sent.
        let mut c = signal::signal(SignalKind::user_defined1()).unwrap();
        let (ready_tx, ready_rx) = ringleader::sync::oneshot::channel::<()>();
        let waiter = ringleader::spawn(async move {
            let _ = ready_tx.send(());
            c.recv().await
        });
        ready_rx.await.unwrap();
        for _ in 0..3 {
            kill_self(libc::SIGUSR1);
            assert_eq!(a.recv().await, Some(()));
            assert_eq!(b.recv().await, Some(()));
        }
        assert_eq!(waiter.await.unwrap(), Some(()));
    });
}

#[test]
fn deliveries_coalesce_and_a_new_listener_sees_only_later_ones() {
    rt2().block_on(async {
        let mut old = signal::signal(SignalKind::user_defined2()).unwrap();
        raise(libc::SIGUSR2);
        raise(libc::SIGUSR2);
        let mut new = signal::signal(SignalKind::user_defined2()).unwrap();
        // `old` saw deliveries: at least one wake-up.
        assert_eq!(old.recv().await, Some(()));
        // `new` came after them: nothing is ready for it until the next delivery.
        let ready_now = poll_fn(|cx| std::task::Poll::Ready(new.poll_recv(cx).is_ready())).await;
        assert!(
            !ready_now,
            "a listener saw a delivery from before it existed"
        );
        raise(libc::SIGUSR2);
        assert_eq!(new.recv().await, Some(()));
    });
}

#[test]
fn signals_is_a_stream() {
    rt2().block_on(async {
        let mut s = signal::signal(SignalKind::from_raw(libc::SIGUSR1)).unwrap();
        assert_eq!(s.kind(), SignalKind::user_defined1());
        raise(libc::SIGUSR1);
        let item = poll_fn(|cx| Pin::new(&mut s).poll_next(cx)).await;
        assert_eq!(item, Some(()));
    });
}

#[test]
fn unhandleable_signals_are_refused() {
    for signum in [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGBUS,
        0,
        -1,
        1000,
    ] {
        let err = signal::signal(SignalKind::from_raw(signum)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "signal {signum}");
    }
}

#[test]
fn recv_outside_a_runtime_ends_the_stream() {
    // A real-time signal nobody sends, so no delivery can make the listener ready.
    let mut s = signal::signal(SignalKind::from_raw(libc::SIGRTMIN() + 3)).unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert_eq!(s.poll_recv(&mut cx), std::task::Poll::Ready(None));
}
