//! NOTIFICATION ([RFC 4271 §4.5]), with the Cease subcodes of [RFC 4486] and the shutdown
//! communication of [RFC 9003].
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [RFC 4271 §4.5]: https://www.rfc-editor.org/rfc/rfc4271#section-4.5
//! [RFC 4486]: https://www.rfc-editor.org/rfc/rfc4486
//! [RFC 9003]: https://www.rfc-editor.org/rfc/rfc9003

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::DecodeError;
use super::header;
use super::iana::{ErrorCode, MessageType};

/// Cease subcode: Administrative Shutdown (RFC 4486).
pub const CEASE_ADMIN_SHUTDOWN: u8 = 2;
/// Cease subcode: Connection Collision Resolution (RFC 4486).
pub const CEASE_COLLISION: u8 = 7;

/// A NOTIFICATION message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: ErrorCode,
    /// Error subcode.
    pub subcode: u8,
    /// Data.
    pub data: Bytes,
}

impl Notification {
    /// A NOTIFICATION without data.
    pub fn new(code: ErrorCode, subcode: u8) -> Self {
        Notification { code, subcode, data: Bytes::new() }
    }

    /// Cease / Administrative Shutdown with a shutdown communication (RFC 9003: a length
    /// octet and at most 255 octets of UTF-8).
    pub fn admin_shutdown(message: &str) -> Self {
        let mut text = message.as_bytes();
        while text.len() > 255 || std::str::from_utf8(text).is_err() {
            text = &text[..text.len() - 1];
        }
        let mut data = BytesMut::with_capacity(text.len() + 1);
        data.put_u8(text.len() as u8);
        data.put_slice(text);
        Notification { code: ErrorCode::Cease, subcode: CEASE_ADMIN_SHUTDOWN, data: data.freeze() }
    }

    /// Decodes the body (after the header).
    pub fn decode(body: &mut Bytes) -> Result<Self, DecodeError> {
        let (Ok(code), Ok(subcode)) = (body.try_get_u8(), body.try_get_u8()) else {
            return Err(DecodeError::Length((header::HEADER_LEN + body.len()) as u16));
        };
        Ok(Notification { code: ErrorCode::from(code), subcode, data: body.split_off(0) })
    }

    /// Encodes the whole message.
    pub fn encode(&self, buf: &mut BytesMut) {
        let at = header::start(buf, MessageType::Notification);
        buf.put_u8(self.code.into());
        buf.put_u8(self.subcode);
        buf.put_slice(&self.data);
        header::finish(buf, at);
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{}", self.code, self.subcode)?;
        if self.code == ErrorCode::Cease && self.subcode == CEASE_ADMIN_SHUTDOWN {
            if let Some((&n, rest)) = self.data.split_first() {
                if let Some(text) = rest.get(..usize::from(n)).and_then(|t| std::str::from_utf8(t).ok()) {
                    write!(f, " {text:?}")?;
                }
            }
        }
        Ok(())
    }
}
