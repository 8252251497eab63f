//! Neighbor Discovery over IPv6 ([RFC 4861]): the IPv6 header fields NDP depends on, and
//! Neighbor Solicitation ([§4.3]) and Advertisement ([§4.4]) with their link-layer address
//! options ([§4.6.1]).
//!
//! ```text
//! Neighbor Solicitation (type 135)        Neighbor Advertisement (type 136)
//! +--------+--------+----------------+    +--------+--------+----------------+
//! | Type   | Code 0 | Checksum       |    | Type   | Code 0 | Checksum       |
//! +--------+--------+----------------+    +-+-+-+--+--------+----------------+
//! | Reserved                         |    |R|S|O| Reserved                   |
//! +----------------------------------+    +----------------------------------+
//! | Target Address (16)              |    | Target Address (16)              |
//! +----------------------------------+    +----------------------------------+
//! | Options: Source Link-Layer Addr  |    | Options: Target Link-Layer Addr  |
//! ```
//!
//! Parsing verifies the ICMPv6 checksum and walks the options itself: unknown options are
//! skipped, an option of length 0 is malformed (§4.6) and ends parsing.
//!
//! [RFC 4861]: https://www.rfc-editor.org/rfc/rfc4861
//! [§4.3]: https://www.rfc-editor.org/rfc/rfc4861#section-4.3
//! [§4.4]: https://www.rfc-editor.org/rfc/rfc4861#section-4.4
//! [§4.6.1]: https://www.rfc-editor.org/rfc/rfc4861#section-4.6.1

use std::net::Ipv6Addr;

use pnet_packet::icmpv6::{checksum, Icmpv6Packet};
use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};

use super::{MacAddr, WireError};

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// ICMPv6 next-header value.
const ICMPV6: u8 = 58;
/// ICMPv6 type of a Neighbor Solicitation.
const TYPE_NS: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
const TYPE_NA: u8 = 136;
/// Option type: Source Link-Layer Address (§4.6.1).
const OPT_SOURCE_LLADDR: u8 = 1;
/// Option type: Target Link-Layer Address (§4.6.1).
const OPT_TARGET_LLADDR: u8 = 2;

/// Neighbor Advertisement flags (§4.4).
pub mod flags {
    /// R: the sender is a router.
    pub const ROUTER: u8 = 0b1000_0000;
    /// S: sent in response to a Neighbor Solicitation.
    pub const SOLICITED: u8 = 0b0100_0000;
    /// O: override an existing cache entry.
    pub const OVERRIDE: u8 = 0b0010_0000;
}

/// The all-nodes multicast address (ff02::1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The solicited-node multicast address of `ip` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// The Ethernet multicast address of an IPv6 multicast address (RFC 2464 §7): 33:33 + low 32 bits.
pub fn multicast_mac(ip: Ipv6Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr::new(0x33, 0x33, o[12], o[13], o[14], o[15])
}

/// The IPv6 header fields NDP checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Hop limit (NDP requires 255: the packet cannot have been forwarded).
    pub hop_limit: u8,
}

/// A Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NdiscRepr {
    /// Neighbor Solicitation (§4.3).
    NeighborSolicit {
        /// The address whose link-layer address is asked for.
        target: Ipv6Addr,
        /// Source Link-Layer Address option, if present.
        lladdr: Option<MacAddr>,
    },
    /// Neighbor Advertisement (§4.4).
    NeighborAdvert {
        /// R, S, O flags (see [`flags`]).
        flags: u8,
        /// The address advertised.
        target: Ipv6Addr,
        /// Target Link-Layer Address option, if present.
        lladdr: Option<MacAddr>,
    },
}

/// Parses an IPv6 packet carrying an NS or NA; checks version, length and checksum.
pub fn parse_ipv6(bytes: &[u8]) -> Result<(Ipv6Repr, NdiscRepr), WireError> {
    let p = Ipv6Packet::new(bytes).ok_or(WireError::Truncated)?;
    if p.get_version() != 6 {
        return Err(WireError::Malformed("IP version"));
    }
    // NDP messages carry no extension headers; anything else is not for us.
    if p.get_next_header() != IpNextHeaderProtocol(ICMPV6) {
        return Err(WireError::Unsupported);
    }
    let len = usize::from(p.get_payload_length());
    let body = bytes.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + len).ok_or(WireError::Truncated)?;
    let ip = Ipv6Repr { src: p.get_source(), dst: p.get_destination(), hop_limit: p.get_hop_limit() };
    let icmp = Icmpv6Packet::new(body).ok_or(WireError::Truncated)?;
    if checksum(&icmp, &ip.src, &ip.dst) != icmp.get_checksum() {
        return Err(WireError::Malformed("ICMPv6 checksum"));
    }
    Ok((ip, NdiscRepr::parse(body)?))
}

fn mac_at(b: &[u8]) -> Option<MacAddr> {
    let m = b.get(..6)?;
    Some(MacAddr::new(m[0], m[1], m[2], m[3], m[4], m[5]))
}

fn addr_at(b: &[u8]) -> Option<Ipv6Addr> {
    let a: [u8; 16] = b.get(..16)?.try_into().ok()?;
    Some(Ipv6Addr::from(a))
}

/// Walks NDP options; returns the source and target link-layer addresses found.
fn parse_options(mut rest: &[u8]) -> Result<(Option<MacAddr>, Option<MacAddr>), WireError> {
    let (mut source, mut target) = (None, None);
    while !rest.is_empty() {
        let (&kind, &units) = match rest {
            [k, u, ..] => (k, u),
            _ => return Err(WireError::Truncated),
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            // §4.6: "Nodes MUST silently discard an ND packet that contains an option with length zero."
            return Err(WireError::Malformed("NDP option of length 0"));
        }
        let opt = rest.get(..len).ok_or(WireError::Truncated)?;
        match kind {
            OPT_SOURCE_LLADDR => source = mac_at(opt.get(2..).unwrap_or_default()),
            OPT_TARGET_LLADDR => target = mac_at(opt.get(2..).unwrap_or_default()),
            _ => {} // §4.6: unknown options are skipped.
        }
        rest = rest.get(len..).unwrap_or_default();
    }
    Ok((source, target))
}

impl NdiscRepr {
    /// Parses an ICMPv6 body (checksum already verified).
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let (&kind, &code) = match body {
            [k, c, ..] => (k, c),
            _ => return Err(WireError::Truncated),
        };
        if !matches!(kind, TYPE_NS | TYPE_NA) {
            return Err(WireError::Unsupported);
        }
        if code != 0 {
            return Err(WireError::Malformed("ICMP code"));
        }
        let target = addr_at(body.get(8..).unwrap_or_default()).ok_or(WireError::Truncated)?;
        let (source_ll, target_ll) = parse_options(body.get(24..).unwrap_or_default())?;
        Ok(if kind == TYPE_NS {
            NdiscRepr::NeighborSolicit { target, lladdr: source_ll }
        } else {
            NdiscRepr::NeighborAdvert { flags: body.get(4).copied().unwrap_or(0), target, lladdr: target_ll }
        })
    }

    /// Bytes needed by [`NdiscRepr::emit`].
    pub fn buffer_len(&self) -> usize {
        let lladdr = match self {
            NdiscRepr::NeighborSolicit { lladdr, .. } | NdiscRepr::NeighborAdvert { lladdr, .. } => lladdr,
        };
        24 + if lladdr.is_some() { 8 } else { 0 }
    }

    /// Writes the ICMPv6 message into `buf`, with its checksum for `ip`'s addresses.
    pub fn emit(&self, ip: &Ipv6Repr, buf: &mut [u8]) -> Result<(), WireError> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len).ok_or(WireError::Truncated)?;
        buf.fill(0);
        let (kind, flag_byte, target, opt, lladdr) = match *self {
            NdiscRepr::NeighborSolicit { target, lladdr } => (TYPE_NS, 0, target, OPT_SOURCE_LLADDR, lladdr),
            NdiscRepr::NeighborAdvert { flags, target, lladdr } => (TYPE_NA, flags, target, OPT_TARGET_LLADDR, lladdr),
        };
        buf[0] = kind;
        buf[4] = flag_byte;
        buf[8..24].copy_from_slice(&target.octets());
        if let Some(mac) = lladdr {
            buf[24] = opt;
            buf[25] = 1;
            buf[26..32].copy_from_slice(&mac.octets());
        }
        let sum = Icmpv6Packet::new(buf).map(|p| checksum(&p, &ip.src, &ip.dst)).ok_or(WireError::Truncated)?;
        buf[2..4].copy_from_slice(&sum.to_be_bytes());
        Ok(())
    }
}

/// An IPv6 packet (header and ICMPv6 body) carrying `nd`.
pub fn ipv6_packet(ip: &Ipv6Repr, nd: &NdiscRepr) -> Vec<u8> {
    let body_len = nd.buffer_len();
    let mut buf = vec![0u8; IPV6_HEADER_LEN + body_len];
    if let Some(mut p) = MutableIpv6Packet::new(&mut buf) {
        p.set_version(6);
        p.set_payload_length(body_len as u16);
        p.set_next_header(IpNextHeaderProtocol(ICMPV6));
        p.set_hop_limit(ip.hop_limit);
        p.set_source(ip.src);
        p.set_destination(ip.dst);
    }
    // Cannot fail: the buffer was sized from buffer_len.
    let _ = nd.emit(ip, &mut buf[IPV6_HEADER_LEN..]);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ns_packet() -> (Ipv6Repr, NdiscRepr) {
        let ip = Ipv6Repr { src: a("fe80::1"), dst: solicited_node(a("2001:db8::5")), hop_limit: 255 };
        (ip, NdiscRepr::NeighborSolicit { target: a("2001:db8::5"), lladdr: Some(MacAddr::new(2, 0, 0, 0, 0, 1)) })
    }

    #[test]
    fn multicast_addresses() {
        assert_eq!(solicited_node(a("2001:db8::1234:5678")), a("ff02::1:ff34:5678"));
        assert_eq!(multicast_mac(a("ff02::1:ff34:5678")), MacAddr::new(0x33, 0x33, 0xff, 0x34, 0x56, 0x78));
    }

    #[test]
    fn round_trip_with_checksum() {
        let (ip, ns) = ns_packet();
        let bytes = ipv6_packet(&ip, &ns);
        assert_eq!(bytes.len(), 40 + 32);
        assert_eq!(bytes[6], 58);
        assert_eq!(parse_ipv6(&bytes), Ok((ip, ns)));
        let na = NdiscRepr::NeighborAdvert {
            flags: flags::SOLICITED | flags::OVERRIDE,
            target: a("2001:db8::5"),
            lladdr: Some(MacAddr::new(2, 0, 0, 0, 0, 2)),
        };
        let reply = Ipv6Repr { src: a("2001:db8::5"), dst: a("fe80::1"), hop_limit: 255 };
        assert_eq!(parse_ipv6(&ipv6_packet(&reply, &na)), Ok((reply, na)));
    }

    #[test]
    fn checksum_matches_an_independent_computation() {
        let (ip, ns) = ns_packet();
        let bytes = ipv6_packet(&ip, &ns);
        // RFC 2460 §8.1 pseudo-header sum, computed by hand.
        let body = &bytes[40..];
        let mut sum: u32 = 0;
        let mut add = |b: &[u8]| {
            for c in b.chunks(2) {
                sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
        };
        add(&ip.src.octets());
        add(&ip.dst.octets());
        add(&(body.len() as u32).to_be_bytes());
        add(&[0, 0, 0, 58]);
        add(body);
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff, "a correct checksum makes the one's-complement sum all ones");
    }

    #[test]
    fn rejects_malformed_messages() {
        let (ip, ns) = ns_packet();
        let good = ipv6_packet(&ip, &ns);
        let mut bad_sum = good.clone();
        bad_sum[42] ^= 1;
        assert_eq!(parse_ipv6(&bad_sum), Err(WireError::Malformed("ICMPv6 checksum")));
        assert_eq!(parse_ipv6(&good[..60]), Err(WireError::Truncated));
        // An option of length 0, with a correct checksum.
        let mut zero_opt = good.clone();
        zero_opt[40 + 25] = 0;
        let sum = Icmpv6Packet::new(&zero_opt[40..]).map(|p| checksum(&p, &ip.src, &ip.dst)).unwrap();
        zero_opt[42..44].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_ipv6(&zero_opt), Err(WireError::Malformed("NDP option of length 0")));
        let mut udp = good.clone();
        udp[6] = 17;
        assert_eq!(parse_ipv6(&udp), Err(WireError::Unsupported));
    }

    #[test]
    fn unknown_options_are_skipped() {
        let mut body = vec![TYPE_NS, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&a("2001:db8::5").octets());
        body.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]); // nonce option (RFC 3971)
        body.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 9]);
        let parsed = NdiscRepr::parse(&body).unwrap();
        assert_eq!(
            parsed,
            NdiscRepr::NeighborSolicit { target: a("2001:db8::5"), lladdr: Some(MacAddr::new(2, 0, 0, 0, 0, 9)) }
        );
    }
}
