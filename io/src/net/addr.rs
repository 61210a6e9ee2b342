//! Address resolution: literal addresses at once, host names on the blocking pool.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// What a socket can be bound or connected to: a socket address, an `(ip, port)` pair, or a
/// `"host:port"` string / `(host, port)` pair resolved with `getaddrinfo` on the blocking
/// pool (asyncio's `getaddrinfo`), never on a worker.
///
/// Sealed: implemented for the std types that `std::net::ToSocketAddrs` takes.
pub trait ToSocketAddrs: sealed::Sealed {}

mod sealed {
    use super::*;

    /// Either addresses at hand or a name to resolve.
    pub enum Resolve {
        Ready(Vec<SocketAddr>),
        Lookup(String),
        /// Not an address: why, for the caller's `InvalidInput` error.
        Invalid(String),
    }

    pub trait Sealed {
        fn resolve(self) -> Resolve;
    }

    macro_rules! ready {
        ($($t:ty),*) => {$(
            impl Sealed for $t {
                fn resolve(self) -> Resolve {
                    Resolve::Ready(vec![SocketAddr::from(self)])
                }
            }
            impl ToSocketAddrs for $t {}
        )*};
    }
    ready!(
        SocketAddr,
        SocketAddrV4,
        SocketAddrV6,
        (IpAddr, u16),
        (Ipv4Addr, u16),
        (Ipv6Addr, u16)
    );

    impl Sealed for &[SocketAddr] {
        fn resolve(self) -> Resolve {
            Resolve::Ready(self.to_vec())
        }
    }
    impl ToSocketAddrs for &[SocketAddr] {}

    impl Sealed for &str {
        fn resolve(self) -> Resolve {
            match self.parse::<SocketAddr>() {
                Ok(addr) => Resolve::Ready(vec![addr]),
                // A host or IP without a port: say so, rather than getaddrinfo's
                // "invalid socket address" (asyncio takes the port separately).
                Err(_) if !self.contains(':') || self.parse::<IpAddr>().is_ok() => {
                    Resolve::Invalid(format!(
                        "{self:?} has no port: give \"host:port\" or a (host, port) pair \
                         (port 0 to only look the host up)"
                    ))
                }
                Err(_) => Resolve::Lookup(self.to_owned()),
            }
        }
    }
    impl ToSocketAddrs for &str {}

    impl Sealed for String {
        fn resolve(self) -> Resolve {
            self.as_str().resolve()
        }
    }
    impl ToSocketAddrs for String {}

    impl Sealed for &String {
        fn resolve(self) -> Resolve {
            self.as_str().resolve()
        }
    }
    impl ToSocketAddrs for &String {}

    impl Sealed for (&str, u16) {
        fn resolve(self) -> Resolve {
            match self.0.parse::<IpAddr>() {
                Ok(ip) => Resolve::Ready(vec![SocketAddr::new(ip, self.1)]),
                Err(_) => Resolve::Lookup(format!("{}:{}", self.0, self.1)),
            }
        }
    }
    impl ToSocketAddrs for (&str, u16) {}

    impl Sealed for (String, u16) {
        fn resolve(self) -> Resolve {
            (self.0.as_str(), self.1).resolve()
        }
    }
    impl ToSocketAddrs for (String, u16) {}
}

pub(crate) async fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs = match sealed::Sealed::resolve(addr) {
        sealed::Resolve::Ready(addrs) => addrs,
        sealed::Resolve::Invalid(why) => {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why))
        }
        sealed::Resolve::Lookup(name) => {
            let lookup = ringleader_runtime::task::spawn_blocking(move || {
                std::net::ToSocketAddrs::to_socket_addrs(&name).map(|a| a.collect::<Vec<_>>())
            });
            match lookup.await {
                Ok(res) => res?,
                Err(err) => return Err(io::Error::other(err)),
            }
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        ));
    }
    Ok(addrs)
}

/// Resolves `host` to socket addresses (asyncio's `getaddrinfo`): literals at once, names
/// with `getaddrinfo` on the blocking pool.
///
/// A string needs its port (`"example.org:443"`); to look up a bare host, as asyncio's
/// `getaddrinfo(host, None)`, pass `(host, 0)`.
///
/// # Errors
/// The resolver's error (an unknown host), or `InvalidInput` if nothing was found or a
/// string has no port.
///
/// # Cancel safety
/// Dropping it abandons the lookup, which finishes on the blocking pool.
pub async fn lookup_host(host: impl ToSocketAddrs) -> io::Result<impl Iterator<Item = SocketAddr>> {
    Ok(resolve(host).await?.into_iter())
}

/// An address kept unresolved until it is needed (builders store one).
pub(crate) struct Deferred(sealed::Resolve);

impl Deferred {
    pub(crate) fn new(addr: impl ToSocketAddrs) -> Deferred {
        Deferred(sealed::Sealed::resolve(addr))
    }

    pub(crate) async fn resolve(self) -> io::Result<Vec<SocketAddr>> {
        resolve(self).await
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            sealed::Resolve::Ready(addrs) => f.debug_tuple("Deferred").field(addrs).finish(),
            sealed::Resolve::Lookup(name) | sealed::Resolve::Invalid(name) => {
                f.debug_tuple("Deferred").field(name).finish()
            }
        }
    }
}

impl sealed::Sealed for Deferred {
    fn resolve(self) -> sealed::Resolve {
        self.0
    }
}
impl ToSocketAddrs for Deferred {}
