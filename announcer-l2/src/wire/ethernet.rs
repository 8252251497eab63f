//! Ethernet II headers.

use pnet_packet::ethernet::{EtherType, EthernetPacket, MutableEthernetPacket};
use pnet_packet::Packet;

use super::{MacAddr, WireError};

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of an Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Minimum frame length without the FCS; shorter frames are padded with zeros.
pub const MIN_FRAME_LEN: usize = 60;

/// An Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source MAC.
    pub src: MacAddr,
    /// Destination MAC.
    pub dst: MacAddr,
    /// EtherType.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Parses the header; returns it and the payload.
    pub fn parse(bytes: &[u8]) -> Result<(Self, &[u8]), WireError> {
        let p = EthernetPacket::new(bytes).ok_or(WireError::Truncated)?;
        let repr = EthernetRepr { src: p.get_source(), dst: p.get_destination(), ethertype: p.get_ethertype().0 };
        let payload = bytes.get(HEADER_LEN..).ok_or(WireError::Truncated)?;
        // Keep the view's notion of the payload in step with ours (pnet's is the same slice).
        debug_assert_eq!(p.payload().len(), payload.len());
        Ok((repr, payload))
    }

    /// A frame with this header and `payload`, padded to the minimum frame length.
    pub fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; (HEADER_LEN + payload.len()).max(MIN_FRAME_LEN)];
        if let Some(mut p) = MutableEthernetPacket::new(&mut buf) {
            p.set_source(self.src);
            p.set_destination(self.dst);
            p.set_ethertype(EtherType(self.ethertype));
        }
        if let Some(dst) = buf.get_mut(HEADER_LEN..HEADER_LEN + payload.len()) {
            dst.copy_from_slice(payload);
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_padding() {
        let h =
            EthernetRepr { src: MacAddr::new(2, 0, 0, 0, 0, 1), dst: MacAddr::broadcast(), ethertype: ETHERTYPE_ARP };
        let f = h.frame(&[1, 2, 3]);
        assert_eq!(f.len(), MIN_FRAME_LEN);
        assert_eq!(&f[..14], &[255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        let (back, payload) = EthernetRepr::parse(&f).unwrap();
        assert_eq!(back, h);
        assert_eq!(&payload[..3], &[1, 2, 3]);
        assert_eq!(EthernetRepr::parse(&f[..13]), Err(WireError::Truncated));
    }
}
