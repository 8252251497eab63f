//! Socket options std, socket2 and tokio do not offer: TCP MD5 signatures (RFC 2385) and the
//! minimum TTL / hop limit of GTSM (RFC 5082).
//!
//! This is the only module of the workspace with `unsafe` code: `setsockopt` calls with the
//! kernel's `struct tcp_md5sig`, defined here (216 octets on Linux), and with an int.
#![allow(unsafe_code)] // the one audited exception (see the workspace lints)

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// `TCP_MD5SIG` from linux/tcp.h.
const TCP_MD5SIG: libc::c_int = 14;
/// Longest key the kernel accepts.
pub const MAX_KEY_LEN: usize = 80;
/// `IP_MINTTL` from linux/in.h.
const IP_MINTTL: libc::c_int = 21;
/// `IPV6_MINHOPCOUNT` from linux/in6.h.
const IPV6_MINHOPCOUNT: libc::c_int = 73;

/// GTSM (RFC 5082 §3): drops every segment that arrives with a TTL (hop limit) below `min`,
/// so that only a directly connected peer, which sends with 255, can reach the session.
pub fn set_min_ttl(sock: &impl AsRawFd, v6: bool, min: u8) -> io::Result<()> {
    let value = libc::c_int::from(min);
    let (level, name) = if v6 { (libc::IPPROTO_IPV6, IPV6_MINHOPCOUNT) } else { (libc::IPPROTO_IP, IP_MINTTL) };
    // SAFETY: the pointer and length describe `value`, which lives across the call; the
    // kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `struct tcp_md5sig` (linux/tcp.h).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_KEY_LEN],
}

/// Sets the TCP MD5 key for segments to and from `peer` on `sock` (before `connect`).
pub fn set_md5(sock: &impl AsRawFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "TCP MD5 password longer than 80 octets"));
    }
    // SAFETY: sockaddr_storage and the rest of TcpMd5Sig are plain data for which all-zero
    // bytes are a valid value.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    match peer {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in (that is
            // its purpose); we write only within it.
            let sin = unsafe { &mut *(&mut sig.addr as *mut libc::sockaddr_storage as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
        }
        IpAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut sig.addr as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
        }
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: the pointer and length describe `sig`, which lives across the call; the
    // kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_MD5SIG,
            &sig as *const TcpMd5Sig as *const libc::c_void,
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_struct_has_the_kernels_size() {
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn overlong_keys_are_refused_before_the_kernel() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            set_md5(&sock, "127.0.0.1".parse().unwrap(), &[0; 81]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
