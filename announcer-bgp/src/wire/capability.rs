//! Capabilities advertised in OPEN ([RFC 5492]).
//!
//! ```text
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! +------------------------------+
//! ```
//!
//! [RFC 5492]: https://www.rfc-editor.org/rfc/rfc5492

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::OpenError;
use super::iana::CapabilityCode;

/// Per-family flags of the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrFamily {
    /// AFI.
    pub afi: u16,
    /// SAFI.
    pub safi: u8,
    /// Forwarding state preserved (F bit).
    pub forwarding: bool,
}

/// One capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions (RFC 4760 §8).
    Multiprotocol {
        /// AFI.
        afi: u16,
        /// SAFI.
        safi: u8,
    },
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// Extended messages up to 65535 octets (RFC 8654).
    ExtendedMessage,
    /// Graceful restart (RFC 4724 §3).
    GracefulRestart {
        /// Restart State (R) bit.
        restarting: bool,
        /// Notification (N) bit (RFC 8538).
        notification: bool,
        /// Restart time in seconds (12 bits).
        time: u16,
        /// Families with forwarding-state flags.
        families: Vec<GrFamily>,
    },
    /// 4-octet AS numbers (RFC 6793), with our AS.
    FourOctetAs(u32),
    /// Anything else, kept as received.
    Unknown {
        /// Code.
        code: u8,
        /// Value.
        value: Bytes,
    },
}

impl Capability {
    /// Decodes one capability (code, length, value) from `buf`.
    pub fn decode(buf: &mut Bytes) -> Result<Self, OpenError> {
        let code = buf.try_get_u8().map_err(|_| OpenError::Malformed)?;
        let len = usize::from(buf.try_get_u8().map_err(|_| OpenError::Malformed)?);
        if buf.remaining() < len {
            return Err(OpenError::Malformed);
        }
        let mut v = buf.split_to(len);
        // RFC 4271 §6.2: a recognized parameter that is malformed is Unspecific (subcode 0).
        let bad = || OpenError::Malformed;
        Ok(match CapabilityCode::from(code) {
            CapabilityCode::Multiprotocol => {
                if len != 4 {
                    return Err(bad());
                }
                let afi = v.get_u16();
                v.advance(1);
                Capability::Multiprotocol { afi, safi: v.get_u8() }
            }
            CapabilityCode::RouteRefresh if len == 0 => Capability::RouteRefresh,
            CapabilityCode::ExtendedMessage if len == 0 => Capability::ExtendedMessage,
            CapabilityCode::FourOctetAs => {
                if len != 4 {
                    return Err(bad());
                }
                Capability::FourOctetAs(v.get_u32())
            }
            CapabilityCode::GracefulRestart => {
                if len < 2 || !(len - 2).is_multiple_of(4) {
                    return Err(bad());
                }
                let head = v.get_u16();
                let mut families = Vec::new();
                while v.remaining() >= 4 {
                    let afi = v.get_u16();
                    let safi = v.get_u8();
                    let flags = v.get_u8();
                    families.push(GrFamily { afi, safi, forwarding: flags & 0x80 != 0 });
                }
                Capability::GracefulRestart {
                    restarting: head & 0x8000 != 0,
                    notification: head & 0x4000 != 0,
                    time: head & 0x0fff,
                    families,
                }
            }
            _ => Capability::Unknown { code, value: v },
        })
    }

    /// Encodes code, length and value.
    pub fn encode(&self, buf: &mut BytesMut) {
        let mut v = BytesMut::new();
        let code = match self {
            Capability::Multiprotocol { afi, safi } => {
                v.put_u16(*afi);
                v.put_u8(0);
                v.put_u8(*safi);
                CapabilityCode::Multiprotocol
            }
            Capability::RouteRefresh => CapabilityCode::RouteRefresh,
            Capability::ExtendedMessage => CapabilityCode::ExtendedMessage,
            Capability::FourOctetAs(asn) => {
                v.put_u32(*asn);
                CapabilityCode::FourOctetAs
            }
            Capability::GracefulRestart { restarting, notification, time, families } => {
                let mut head = time & 0x0fff;
                if *restarting {
                    head |= 0x8000;
                }
                if *notification {
                    head |= 0x4000;
                }
                v.put_u16(head);
                for f in families {
                    v.put_u16(f.afi);
                    v.put_u8(f.safi);
                    v.put_u8(if f.forwarding { 0x80 } else { 0 });
                }
                CapabilityCode::GracefulRestart
            }
            Capability::Unknown { code, value } => {
                v.put_slice(value);
                CapabilityCode::from(*code)
            }
        };
        buf.put_u8(code.into());
        buf.put_u8(v.len() as u8);
        buf.put_slice(&v);
    }
}
