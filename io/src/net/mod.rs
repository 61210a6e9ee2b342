//! TCP, UDP and Unix-domain sockets on the ring (asyncio's transports' foundations).
//!
//! Every socket is non-blocking and close-on-exec, owns its fd through a shared handle (see
//! the crate docs), and converts from and into its std counterpart.

mod addr;
mod tcp;
mod udp;
mod unix;

pub use addr::{lookup_host, ToSocketAddrs};
pub use tcp::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpListenerBuilder, TcpStream};
pub use udp::UdpSocket;

pub(crate) use tcp::close as close_shared;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
