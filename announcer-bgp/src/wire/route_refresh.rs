//! ROUTE-REFRESH ([RFC 2918 §3], subtype field of [RFC 7313]).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |              AFI              |  Subtype      |     SAFI      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [RFC 2918 §3]: https://www.rfc-editor.org/rfc/rfc2918#section-3
//! [RFC 7313]: https://www.rfc-editor.org/rfc/rfc7313

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::DecodeError;
use super::header;
use super::iana::MessageType;

/// A ROUTE-REFRESH request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    /// Address family.
    pub afi: u16,
    /// Subtype (0: normal request; 1, 2: enhanced route refresh markers).
    pub subtype: u8,
    /// Subsequent address family.
    pub safi: u8,
}

impl RouteRefresh {
    /// Decodes the body (after the header).
    pub fn decode(body: &mut Bytes) -> Result<Self, DecodeError> {
        if body.len() != 4 {
            return Err(DecodeError::RouteRefreshLength((header::HEADER_LEN + body.len()) as u16));
        }
        Ok(RouteRefresh { afi: body.get_u16(), subtype: body.get_u8(), safi: body.get_u8() })
    }

    /// Encodes the whole message.
    pub fn encode(&self, buf: &mut BytesMut) {
        let at = header::start(buf, MessageType::RouteRefresh);
        buf.put_u16(self.afi);
        buf.put_u8(self.subtype);
        buf.put_u8(self.safi);
        header::finish(buf, at);
    }
}
