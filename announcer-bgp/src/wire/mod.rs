//! BGP-4 messages on bytes: one file per message, each with its RFC diagram, a `decode`
//! from a `Bytes` body (only `try_get_*` on data from the network) and an `encode` into a
//! `BytesMut` that back-patches its length.
//!
//! Invariant: decoding is total. Any input gives a message or a typed [`DecodeError`]
//! whose NOTIFICATION (code, subcode, data) is fixed by the table in [`error`]; nothing here
//! panics on bytes from the network.

pub mod capability;
pub mod error;
pub mod header;
pub mod iana;
pub mod keepalive;
pub mod notification;
pub mod open;
pub mod route_refresh;
pub mod update;

use bytes::{Bytes, BytesMut};

pub use capability::Capability;
pub use error::{AttrAction, DecodeError, HeaderError, OpenError, UpdateError};
pub use notification::Notification;
pub use open::Open;
pub use route_refresh::RouteRefresh;
pub use update::{Attrs, DecodeCx, Update};

use iana::MessageType;

/// A BGP message.
// Messages are decoded and handled one at a time; boxing UPDATEs would cost an allocation
// per message for no memory saved.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// Decodes one whole message (header included; framing already checked the marker and
    /// the length bounds, see [`header::message_len`]).
    pub fn decode(mut msg: Bytes, cx: &DecodeCx) -> Result<Message, DecodeError> {
        if msg.len() < header::HEADER_LEN {
            return Err(HeaderError::BadLength(msg.len() as u16).into());
        }
        let len = msg.len() as u16;
        let kind = msg[18];
        let mut body = msg.split_off(header::HEADER_LEN);
        // §6.1: per-type minimum lengths.
        let min = match MessageType::from(kind) {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            MessageType::RouteRefresh => 23,
            MessageType::Unknown(t) => return Err(HeaderError::BadType(t).into()),
        };
        if len < min || (kind == u8::from(MessageType::Keepalive) && len != 19) {
            return Err(HeaderError::BadLength(len).into());
        }
        Ok(match MessageType::from(kind) {
            MessageType::Open => Message::Open(Open::decode(&mut body)?),
            MessageType::Update => Message::Update(Update::decode(&mut body, cx)?),
            MessageType::Notification => Message::Notification(Notification::decode(&mut body)?),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => Message::RouteRefresh(RouteRefresh::decode(&mut body)?),
            MessageType::Unknown(t) => return Err(HeaderError::BadType(t).into()),
        })
    }

    /// Encodes the message.
    pub fn encode(&self, buf: &mut BytesMut, four_octet_as: bool) {
        match self {
            Message::Open(o) => o.encode(buf),
            Message::Update(u) => u.encode(buf, four_octet_as),
            Message::Notification(n) => n.encode(buf),
            Message::Keepalive => keepalive::encode(buf),
            Message::RouteRefresh(r) => r.encode(buf),
        }
    }
}
