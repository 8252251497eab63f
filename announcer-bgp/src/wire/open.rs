//! OPEN ([RFC 4271 §4.2]) with capabilities in optional parameters ([RFC 5492]).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [RFC 4271 §4.2]: https://www.rfc-editor.org/rfc/rfc4271#section-4.2
//! [RFC 5492]: https://www.rfc-editor.org/rfc/rfc5492

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::capability::Capability;
use super::error::{DecodeError, OpenError};
use super::header;
use super::iana::{MessageType, AS_TRANS};

/// Optional parameter type: capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// Version (4).
    pub version: u8,
    /// The 2-octet AS field (AS_TRANS when the real AS needs 4 octets).
    pub my_as: u16,
    /// Proposed hold time, seconds.
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: u32,
    /// Capabilities, in order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The sender's AS: the 4-octet capability's value when present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// The 2-octet AS field for `asn` (RFC 6793 §4.1).
    pub fn as_field(asn: u32) -> u16 {
        u16::try_from(asn).unwrap_or(AS_TRANS)
    }

    /// Decodes the body (after the header). Checks what needs no session context (version,
    /// hold time, identifier, parameters); the session checks the AS.
    pub fn decode(body: &mut Bytes) -> Result<Self, DecodeError> {
        let short = || DecodeError::Open(OpenError::Malformed);
        let version = body.try_get_u8().map_err(|_| short())?;
        let my_as = body.try_get_u16().map_err(|_| short())?;
        let hold_time = body.try_get_u16().map_err(|_| short())?;
        let bgp_id = body.try_get_u32().map_err(|_| short())?;
        let opt_len = usize::from(body.try_get_u8().map_err(|_| short())?);
        if version != 4 {
            return Err(OpenError::UnsupportedVersion(version).into());
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(OpenError::UnacceptableHoldTime(hold_time).into());
        }
        if bgp_id == 0 {
            return Err(OpenError::BadBgpId(bgp_id).into());
        }
        if body.remaining() != opt_len {
            return Err(short());
        }
        let mut capabilities = Vec::new();
        while body.has_remaining() {
            let kind = body.try_get_u8().map_err(|_| short())?;
            let len = usize::from(body.try_get_u8().map_err(|_| short())?);
            if body.remaining() < len {
                return Err(short());
            }
            let mut param = body.split_to(len);
            if kind != PARAM_CAPABILITIES {
                return Err(OpenError::UnsupportedOptParam(kind).into());
            }
            while param.has_remaining() {
                capabilities.push(Capability::decode(&mut param)?);
            }
        }
        Ok(Open { version, my_as, hold_time, bgp_id, capabilities })
    }

    /// Encodes the whole message (all capabilities in one optional parameter).
    pub fn encode(&self, buf: &mut BytesMut) {
        let at = header::start(buf, MessageType::Open);
        buf.put_u8(self.version);
        buf.put_u16(self.my_as);
        buf.put_u16(self.hold_time);
        buf.put_u32(self.bgp_id);
        let mut caps = BytesMut::new();
        for c in &self.capabilities {
            c.encode(&mut caps);
        }
        if caps.is_empty() {
            buf.put_u8(0);
        } else {
            buf.put_u8((caps.len() + 2) as u8);
            buf.put_u8(PARAM_CAPABILITIES);
            buf.put_u8(caps.len() as u8);
            buf.put_slice(&caps);
        }
        header::finish(buf, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::capability::GrFamily;
    use crate::wire::iana::{AFI_IPV4, AFI_IPV6, SAFI_UNICAST};
    use crate::wire::{DecodeCx, Message};

    fn open() -> Open {
        Open {
            version: 4,
            my_as: Open::as_field(4_200_000_000),
            hold_time: 90,
            bgp_id: 0x0a00_0001,
            capabilities: vec![
                Capability::Multiprotocol { afi: AFI_IPV4, safi: SAFI_UNICAST },
                Capability::Multiprotocol { afi: AFI_IPV6, safi: SAFI_UNICAST },
                Capability::RouteRefresh,
                Capability::FourOctetAs(4_200_000_000),
                Capability::GracefulRestart {
                    restarting: false,
                    notification: false,
                    time: 120,
                    families: vec![GrFamily { afi: AFI_IPV4, safi: SAFI_UNICAST, forwarding: true }],
                },
                Capability::Unknown { code: 73, value: Bytes::from_static(b"\x02lb\x00") },
            ],
        }
    }

    fn decode(b: BytesMut) -> Result<Message, DecodeError> {
        Message::decode(b.freeze(), &DecodeCx::default())
    }

    #[test]
    fn round_trip_with_capabilities_and_as_trans() {
        let mut b = BytesMut::new();
        open().encode(&mut b);
        let Ok(Message::Open(o)) = decode(b) else { panic!() };
        assert_eq!(o, open());
        assert_eq!(o.my_as, AS_TRANS);
        assert_eq!(o.asn(), 4_200_000_000);
    }

    #[test]
    fn rejects_bad_versions_hold_times_and_identifiers() {
        let enc = |f: &dyn Fn(&mut Open)| {
            let mut o = open();
            f(&mut o);
            let mut b = BytesMut::new();
            o.encode(&mut b);
            decode(b)
        };
        assert_eq!(enc(&|o| o.version = 3), Err(OpenError::UnsupportedVersion(3).into()));
        assert_eq!(enc(&|o| o.hold_time = 2), Err(OpenError::UnacceptableHoldTime(2).into()));
        assert_eq!(enc(&|o| o.bgp_id = 0), Err(OpenError::BadBgpId(0).into()));
        assert!(enc(&|o| o.hold_time = 0).is_ok(), "hold time 0 disables keepalives (§4.2)");
    }

    #[test]
    fn rejects_malformed_parameters() {
        let mut b = BytesMut::new();
        open().encode(&mut b);
        let mut bad = b.clone();
        bad[28] = bad[28].wrapping_add(1); // optional parameters length one too long
        assert_eq!(decode(bad), Err(OpenError::Malformed.into()));
        let mut other = b;
        other[29] = 3; // an optional parameter that is not capabilities
        assert_eq!(decode(other), Err(OpenError::UnsupportedOptParam(3).into()));
    }
}
