//! Socket sends: the immediate `send(2)` with a borrowed fd, and the fall-back through the
//! ring (which then takes its own reference to the fd) when the socket buffer is full.

mod support;

use ringleader::net::{TcpListener, TcpStream};
use ringleader::runtime::{Builder, Runtime};
use support::{open_fds, poll_once, rt2, serial};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn a_write_larger_than_the_socket_buffer_completes_through_the_ring_in_order() {
    // Its sockets and runtime would move the others' fd counts.
    let _serial = serial();
    let rt = rt2();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // 8 MiB: far more than a loopback socket buffer, so the first send(2) is short or
        // EAGAIN and the rest waits in the ring until the reader makes room.
        let len = 8 << 20;
        let writer = ringleader::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (res, buf) = stream.write_all(pattern(len)).await;
            res.unwrap();
            assert_eq!(buf.len(), len, "write_all gives the whole buffer back");
            // Then a small write on the same stream: it follows the large one in order.
            let (res, _) = stream.write_all(b"end".to_vec()).await;
            res.unwrap();
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let (res, got) = stream.read_exact(vec![0u8; len + 3]).await;
        res.unwrap();
        assert!(got[..len] == pattern(len)[..], "bytes arrive in order");
        assert_eq!(&got[len..], b"end");
        writer.await.unwrap();
    });
}

#[test]
fn a_send_dropped_while_waiting_in_the_ring_releases_the_fd_after_the_stream() {
    send_dropped_while_waiting(rt2());
}

/// The same on a current-thread runtime (the flavour valgrind can run: `ci/valgrind.sh`).
#[test]
fn a_send_dropped_while_waiting_in_the_ring_on_one_thread_releases_the_fd() {
    send_dropped_while_waiting(Builder::new_current_thread().build().unwrap());
}

fn send_dropped_while_waiting(rt: Runtime) {
    let _serial = serial();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let before = open_fds();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // Nobody reads `client`: fill the socket buffers until a write has to wait in the
        // ring, then drop that write and the stream while the operation still holds the fd.
        let mut waiting = None;
        for _ in 0..64 {
            let mut write = Box::pin(server.write_all(vec![1u8; 1 << 20]));
            if poll_once(write.as_mut()).await.is_none() {
                waiting = Some(write);
                break;
            }
        }
        let waiting = waiting.expect("a write waits once the socket buffers are full");
        drop(waiting);
        drop(server);
        drop(client);
        // The cancelled send completes on the ring; then its reference closes the fd.
        for _ in 0..200 {
            if open_fds() == before {
                break;
            }
            ringleader::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(open_fds(), before, "the sockets' fds are closed");
    });
}
