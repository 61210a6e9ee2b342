//! Socket addresses in the kernel's layout, owned by the operation that passes them.

use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A `sockaddr_storage` and its length: room for any address family.
#[derive(Clone, Copy)]
pub struct SockAddrBuf {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl std::fmt::Debug for SockAddrBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockAddrBuf")
            .field("family", &self.storage.ss_family)
            .field("len", &self.len)
            .finish()
    }
}

impl SockAddrBuf {
    /// Room for an address the kernel fills in.
    pub fn empty() -> SockAddrBuf {
        SockAddrBuf {
            // SAFETY: sockaddr_storage is plain data; zero is valid.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// No address at all (a connected socket's send).
    pub fn none() -> SockAddrBuf {
        SockAddrBuf {
            len: 0,
            ..SockAddrBuf::empty()
        }
    }

    /// Whether this holds no address.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An IP address in the kernel's layout.
    pub fn from_socket_addr(addr: SocketAddr) -> SockAddrBuf {
        let mut buf = SockAddrBuf::empty();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe {
                    std::ptr::write(
                        (&mut buf.storage as *mut libc::sockaddr_storage).cast(),
                        sin,
                    )
                };
                buf.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe {
                    std::ptr::write(
                        (&mut buf.storage as *mut libc::sockaddr_storage).cast(),
                        sin6,
                    )
                };
                buf.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        buf
    }

    /// A Unix address from the raw bytes of a path (a leading NUL byte makes it abstract).
    ///
    /// # Errors
    /// `InvalidInput` if the path does not fit `sun_path` (108 bytes with its NUL).
    pub fn from_unix_path(path: &[u8]) -> std::io::Result<SockAddrBuf> {
        // SAFETY: plain data; zero is valid.
        let mut sun: libc::sockaddr_un = unsafe { mem::zeroed() };
        let abstract_name = path.first() == Some(&0);
        let room = sun.sun_path.len() - usize::from(!abstract_name);
        if path.len() > room {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "Unix socket path is longer than sun_path allows",
            ));
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &src) in sun.sun_path.iter_mut().zip(path) {
            *dst = src as libc::c_char;
        }
        let base = mem::size_of::<libc::sa_family_t>();
        let len = base + path.len() + usize::from(!abstract_name && !path.is_empty());
        let mut buf = SockAddrBuf::empty();
        // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_un.
        unsafe {
            std::ptr::write(
                (&mut buf.storage as *mut libc::sockaddr_storage).cast(),
                sun,
            )
        };
        buf.len = len as libc::socklen_t;
        Ok(buf)
    }

    /// The IP address held, if it is one.
    pub fn to_socket_addr(&self) -> Option<SocketAddr> {
        match self.storage.ss_family as libc::c_int {
            libc::AF_INET if self.len as usize >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin: libc::sockaddr_in = unsafe {
                    std::ptr::read((&self.storage as *const libc::sockaddr_storage).cast())
                };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if self.len as usize >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6: libc::sockaddr_in6 = unsafe {
                    std::ptr::read((&self.storage as *const libc::sockaddr_storage).cast())
                };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// The path bytes of a Unix address (empty for an unnamed one; a leading NUL for an
    /// abstract one), or `None` if this is not a Unix address.
    pub fn unix_path_bytes(&self) -> Option<Vec<u8>> {
        if self.storage.ss_family as libc::c_int != libc::AF_UNIX {
            return None;
        }
        // SAFETY: the family says the storage holds a sockaddr_un.
        let sun: libc::sockaddr_un =
            unsafe { std::ptr::read((&self.storage as *const libc::sockaddr_storage).cast()) };
        let base = mem::size_of::<libc::sa_family_t>();
        let n = (self.len as usize)
            .saturating_sub(base)
            .min(sun.sun_path.len());
        let mut bytes: Vec<u8> = sun.sun_path[..n].iter().map(|&c| c as u8).collect();
        if bytes.first() != Some(&0) {
            // A pathname: stop at its NUL.
            if let Some(end) = bytes.iter().position(|&b| b == 0) {
                bytes.truncate(end);
            }
        }
        Some(bytes)
    }

    /// Pointers for the kernel to fill the address and its length.
    pub(crate) fn as_mut_ptrs(&mut self) -> (*mut libc::sockaddr, *mut libc::socklen_t) {
        (
            (&mut self.storage as *mut libc::sockaddr_storage).cast(),
            &mut self.len,
        )
    }

    /// The address for the kernel to read.
    pub(crate) fn as_ptr_len(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        (
            (&self.storage as *const libc::sockaddr_storage).cast(),
            self.len,
        )
    }

    pub(crate) fn set_len(&mut self, len: libc::socklen_t) {
        self.len = len;
    }

    /// The raw pointer and length, for `bind(2)` and friends.
    pub fn as_raw(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        self.as_ptr_len()
    }
}
