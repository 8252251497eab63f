//! Wire formats the L2 announcer reads and writes: Ethernet, ARP (RFC 826) and the NDP
//! messages of RFC 4861 that matter here (Neighbor Solicitation and Advertisement).
//!
//! Each format has a `Repr`, our own typed value, with `parse` from received bytes (through
//! pnet's packet views) and `emit` into a buffer. Nothing above this module sees a pnet
//! type except [`MacAddr`]. Invariants: parsing never panics and never indexes unchecked;
//! anything the responder does not handle (hardware other than Ethernet, protocols other
//! than IPv4 in ARP, ICMPv6 messages other than NS/NA, a bad checksum, a malformed option)
//! is an error from `parse`, so it never reaches the responder.

pub mod arp;
pub mod ethernet;
pub mod ndisc;

pub use pnet_datalink::MacAddr;

/// Why received bytes are not a frame the responder handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than its headers say.
    #[error("truncated")]
    Truncated,
    /// A well-formed packet of a kind or variant the responder does not handle.
    #[error("unsupported")]
    Unsupported,
    /// A malformed packet (bad checksum, bad option, bad field).
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

/// A received frame the responder may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An ARP packet.
    Arp(ethernet::EthernetRepr, arp::ArpRepr),
    /// An NDP message over IPv6.
    Ndisc(ethernet::EthernetRepr, ndisc::Ipv6Repr, ndisc::NdiscRepr),
}

/// Parses an Ethernet frame into a [`Frame`], looking at the EtherType before anything else.
pub fn parse_frame(bytes: &[u8]) -> Result<Frame, WireError> {
    let (eth, payload) = ethernet::EthernetRepr::parse(bytes)?;
    match eth.ethertype {
        ethernet::ETHERTYPE_ARP => Ok(Frame::Arp(eth, arp::ArpRepr::parse(payload)?)),
        ethernet::ETHERTYPE_IPV6 => {
            let (ip, nd) = ndisc::parse_ipv6(payload)?;
            Ok(Frame::Ndisc(eth, ip, nd))
        }
        _ => Err(WireError::Unsupported),
    }
}
