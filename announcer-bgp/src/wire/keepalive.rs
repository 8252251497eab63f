//! KEEPALIVE ([RFC 4271 §4.4]): a header alone.
//!
//! [RFC 4271 §4.4]: https://www.rfc-editor.org/rfc/rfc4271#section-4.4

use bytes::BytesMut;

use super::header;
use super::iana::MessageType;

/// Encodes a KEEPALIVE.
pub fn encode(buf: &mut BytesMut) {
    let at = header::start(buf, MessageType::Keepalive);
    header::finish(buf, at);
}
