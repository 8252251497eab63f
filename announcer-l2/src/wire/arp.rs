//! ARP for IPv4 over Ethernet ([RFC 826]), the only combination the responder handles.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Hardware type (1: Ethernet)  |   Protocol type (0x0800)      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | HLEN (6)      | PLEN (4)      |  Operation (1 req, 2 reply)   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Sender hardware address (6) | Sender protocol address (4)   |
//! |  Target hardware address (6) | Target protocol address (4)   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [RFC 826]: https://www.rfc-editor.org/rfc/rfc826

use std::net::Ipv4Addr;

use pnet_packet::arp::{ArpHardwareType, ArpOperation, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::EtherType;

use super::{MacAddr, WireError};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP operation (IANA "Operation Codes"; RFC 826).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// 1, RFC 826.
    Request,
    /// 2, RFC 826.
    Reply,
    /// Any other code.
    Unknown(u16),
}

impl From<u16> for ArpOp {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            n => ArpOp::Unknown(n),
        }
    }
}

impl From<ArpOp> for u16 {
    fn from(op: ArpOp) -> u16 {
        match op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
            ArpOp::Unknown(n) => n,
        }
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOp,
    /// Sender hardware address.
    pub source_hardware_addr: MacAddr,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address.
    pub target_hardware_addr: MacAddr,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses an ARP packet; anything but Ethernet hardware with IPv4 is unsupported.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let p = ArpPacket::new(bytes).ok_or(WireError::Truncated)?;
        if p.get_hardware_type() != ArpHardwareType(1)
            || p.get_protocol_type() != EtherType(0x0800)
            || p.get_hw_addr_len() != 6
            || p.get_proto_addr_len() != 4
        {
            return Err(WireError::Unsupported);
        }
        Ok(ArpRepr {
            operation: ArpOp::from(p.get_operation().0),
            source_hardware_addr: p.get_sender_hw_addr(),
            source_protocol_addr: p.get_sender_proto_addr(),
            target_hardware_addr: p.get_target_hw_addr(),
            target_protocol_addr: p.get_target_proto_addr(),
        })
    }

    /// Bytes needed by [`ArpRepr::emit`].
    pub fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet into `buf` (at least [`ArpRepr::buffer_len`] bytes).
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let mut p = MutableArpPacket::new(buf).ok_or(WireError::Truncated)?;
        p.set_hardware_type(ArpHardwareType(1));
        p.set_protocol_type(EtherType(0x0800));
        p.set_hw_addr_len(6);
        p.set_proto_addr_len(4);
        p.set_operation(ArpOperation(self.operation.into()));
        p.set_sender_hw_addr(self.source_hardware_addr);
        p.set_sender_proto_addr(self.source_protocol_addr);
        p.set_target_hw_addr(self.target_hardware_addr);
        p.set_target_proto_addr(self.target_protocol_addr);
        Ok(())
    }

    /// The packet as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len()];
        // Cannot fail: the buffer has the right length.
        let _ = self.emit(&mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request "who has 10.0.0.5? tell 10.0.0.1" from 02:00:00:00:00:01.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 5,
    ];

    fn request() -> ArpRepr {
        ArpRepr {
            operation: ArpOp::Request,
            source_hardware_addr: MacAddr::new(2, 0, 0, 0, 0, 1),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: MacAddr::zero(),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 5),
        }
    }

    #[test]
    fn deconstruct_and_construct() {
        assert_eq!(ArpRepr::parse(&REQUEST), Ok(request()));
        assert_eq!(request().to_bytes(), REQUEST);
    }

    #[test]
    fn rejects_what_the_responder_does_not_handle() {
        assert_eq!(ArpRepr::parse(&REQUEST[..27]), Err(WireError::Truncated));
        let mut ipx = REQUEST;
        ipx[2] = 0x81;
        assert_eq!(ArpRepr::parse(&ipx), Err(WireError::Unsupported));
        let mut long_hw = REQUEST;
        long_hw[4] = 8;
        assert_eq!(ArpRepr::parse(&long_hw), Err(WireError::Unsupported));
        let mut op = REQUEST;
        op[7] = 9;
        assert_eq!(ArpRepr::parse(&op).map(|r| r.operation), Ok(ArpOp::Unknown(9)));
    }
}
