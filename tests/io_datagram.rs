//! Datagram endpoints (asyncio's `create_datagram_endpoint`): UDP connected and
//! unconnected, reuse_port, broadcast, and Unix datagram pairs and paths, with bad input.

mod support;

use std::io;
use std::net::SocketAddr;

use ringleader::net::{DatagramEndpoint, UdpSocket, UnixDatagram};
use support::rt2;

async fn udp_local() -> UdpSocket {
    DatagramEndpoint::udp()
        .local("127.0.0.1:0")
        .bind()
        .await
        .expect("bind on loopback")
}

#[test]
fn udp_connected_client_and_unconnected_server_round_trip() {
    rt2().block_on(async {
        let server = udp_local().await;
        let client = DatagramEndpoint::udp()
            .remote(server.local_addr().unwrap())
            .bind()
            .await
            .unwrap();
        assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
        assert!(server.peer_addr().is_err(), "the server is unconnected");

        let (res, _) = client.send(b"ping".to_vec()).await;
        assert_eq!(res.unwrap(), 4);
        let (res, buf) = server.recv_from(vec![0u8; 64]).await;
        let (n, from) = res.unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(from, client.local_addr().unwrap());

        let (res, _) = server.send_to(b"pong".to_vec(), from).await;
        assert_eq!(res.unwrap(), 4);
        let (res, buf) = client.recv(vec![0u8; 64]).await;
        assert_eq!(&buf[..res.unwrap()], b"pong");
    });
}

#[test]
fn udp_unconnected_round_trip_between_two_endpoints() {
    rt2().block_on(async {
        let a = udp_local().await;
        let b = udp_local().await;
        let b_addr = b.local_addr().unwrap();
        for i in 0..10u8 {
            let (res, _) = a.send_to(vec![i; 100], b_addr).await;
            assert_eq!(res.unwrap(), 100);
            let (res, buf) = b.recv_from(vec![0u8; 200]).await;
            let (n, from) = res.unwrap();
            assert_eq!(n, 100);
            assert!(buf[..n].iter().all(|&x| x == i));
            assert_eq!(from, a.local_addr().unwrap());
        }
    });
}

#[test]
fn udp_local_and_remote_together_connect_both_ways() {
    rt2().block_on(async {
        let a = udp_local().await;
        let b = DatagramEndpoint::udp()
            .local("127.0.0.1:0")
            .remote(a.local_addr().unwrap())
            .bind()
            .await
            .unwrap();
        a.connect(b.local_addr().unwrap()).await.unwrap();
        let (res, _) = b.send(b"hello".to_vec()).await;
        res.unwrap();
        let (res, buf) = a.recv(vec![0u8; 16]).await;
        assert_eq!(&buf[..res.unwrap()], b"hello");
        // A connected socket ignores datagrams from others.
        let stranger = udp_local().await;
        let (res, _) = stranger
            .send_to(b"spam".to_vec(), a.local_addr().unwrap())
            .await;
        res.unwrap();
        let (res, _) = b.send(b"second".to_vec()).await;
        res.unwrap();
        let (res, buf) = a.recv(vec![0u8; 16]).await;
        assert_eq!(&buf[..res.unwrap()], b"second");
    });
}

#[test]
fn reuse_port_lets_two_endpoints_share_an_address() {
    rt2().block_on(async {
        let first = DatagramEndpoint::udp()
            .local("127.0.0.1:0")
            .reuse_port(true)
            .bind()
            .await
            .unwrap();
        let addr = first.local_addr().unwrap();
        let second = DatagramEndpoint::udp()
            .local(addr)
            .reuse_port(true)
            .bind()
            .await
            .unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        let err = DatagramEndpoint::udp()
            .local(addr)
            .bind()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    });
}

#[test]
fn allow_broadcast_sets_the_option_and_broadcast_sends_are_permitted() {
    rt2().block_on(async {
        let plain = DatagramEndpoint::udp()
            .local("0.0.0.0:0")
            .bind()
            .await
            .unwrap();
        assert!(!plain.broadcast().unwrap());
        let caster = DatagramEndpoint::udp()
            .local("0.0.0.0:0")
            .allow_broadcast(true)
            .bind()
            .await
            .unwrap();
        assert!(caster.broadcast().unwrap());

        let target: SocketAddr = "255.255.255.255:9".parse().unwrap();
        let (res, _) = caster.send_to(b"hello all".to_vec(), target).await;
        let routed = match res {
            Ok(n) => {
                assert_eq!(n, 9);
                true
            }
            // A sandbox without a broadcast route: the option is all we can check.
            Err(err) => {
                assert_ne!(
                    err.kind(),
                    io::ErrorKind::PermissionDenied,
                    "SO_BROADCAST was set, yet the send was refused: {err}"
                );
                false
            }
        };
        // Without the option the kernel refuses (EACCES) where it has a route at all.
        let (res, _) = plain.send_to(b"hello all".to_vec(), target).await;
        let err = res.expect_err("a broadcast without SO_BROADCAST went out");
        if routed {
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        }

        caster.set_broadcast(false).unwrap();
        assert!(!caster.broadcast().unwrap());
    });
}

#[test]
fn udp_endpoint_without_addresses_or_with_mismatched_families_is_refused() {
    rt2().block_on(async {
        let err = DatagramEndpoint::udp().bind().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = DatagramEndpoint::udp()
            .local("127.0.0.1:0")
            .remote("[::1]:9")
            .bind()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn unix_datagram_pair_round_trip() {
    rt2().block_on(async {
        let (a, b) = UnixDatagram::pair().unwrap();
        assert_eq!(a.peer_addr().unwrap(), None, "pair peers are unbound");
        let (res, _) = a.send(b"over".to_vec()).await;
        assert_eq!(res.unwrap(), 4);
        let (res, buf) = b.recv(vec![0u8; 16]).await;
        assert_eq!(&buf[..res.unwrap()], b"over");
        let (res, _) = b.send(b"back".to_vec()).await;
        res.unwrap();
        let (res, buf) = a.recv(vec![0u8; 16]).await;
        assert_eq!(&buf[..res.unwrap()], b"back");
    });
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ringleader-dgram-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn unix_datagram_endpoints_on_paths_round_trip() {
    let dir = temp_dir("paths");
    let server_path = dir.join("server.sock");
    let client_path = dir.join("client.sock");
    rt2().block_on(async {
        let server = DatagramEndpoint::unix().local(&server_path).bind().unwrap();
        let client = DatagramEndpoint::unix()
            .local(&client_path)
            .remote(&server_path)
            .bind()
            .unwrap();
        assert_eq!(client.peer_addr().unwrap().as_deref(), Some(&*server_path));
        let (res, _) = client.send(b"request".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.recv_from(vec![0u8; 64]).await;
        let (n, from) = res.unwrap();
        assert_eq!(&buf[..n], b"request");
        assert_eq!(from.as_deref(), Some(&*client_path));
        let (res, _) = server.send_to(b"reply".to_vec(), from.unwrap()).await;
        res.unwrap();
        let (res, buf) = client.recv(vec![0u8; 64]).await;
        assert_eq!(&buf[..res.unwrap()], b"reply");

        // An unbound, unconnected endpoint can still send to a bound one.
        let anonymous = DatagramEndpoint::unix().bind().unwrap();
        let (res, _) = anonymous.send_to(b"hi".to_vec(), &server_path).await;
        res.unwrap();
        let (res, buf) = server.recv_from(vec![0u8; 64]).await;
        let (n, from) = res.unwrap();
        assert_eq!((&buf[..n], from), (&b"hi"[..], None));
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unix_datagram_bad_input_is_an_error_not_a_panic() {
    let dir = temp_dir("bad");
    let path = dir.join("taken.sock");
    rt2().block_on(async {
        // A closed peer.
        let (a, b) = UnixDatagram::pair().unwrap();
        drop(b);
        let (res, _) = a.send(b"anyone?".to_vec()).await;
        assert!(res.is_err(), "sent to a closed peer");

        // Nothing bound at the remote path.
        let err = DatagramEndpoint::unix()
            .remote(dir.join("missing.sock"))
            .bind()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);

        // The local path is taken.
        let _first = DatagramEndpoint::unix().local(&path).bind().unwrap();
        let err = DatagramEndpoint::unix().local(&path).bind().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);

        // A bound peer that went away.
        let gone = DatagramEndpoint::unix()
            .local(dir.join("gone.sock"))
            .bind()
            .unwrap();
        let sender = DatagramEndpoint::unix()
            .remote(dir.join("gone.sock"))
            .bind()
            .unwrap();
        drop(gone);
        let (res, _) = sender.send(b"late".to_vec()).await;
        assert!(res.is_err(), "sent to a closed bound peer");
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
