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
/// Cease subcode: Administrative Reset (RFC 4486).
pub const CEASE_ADMIN_RESET: u8 = 4;
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

/// The names of an error code and subcode, as the IANA "BGP Error (Notification) Codes" and
/// "... Subcodes" registries give them (RFC 4271, 4486, 5492, 6608, 7313, 8538, 9234, 9384).
pub fn names(code: ErrorCode, subcode: u8) -> (&'static str, Option<&'static str>) {
    let (code_name, subcodes): (&str, &[&str]) = match code {
        ErrorCode::MessageHeader => {
            ("Message Header Error", &["Connection Not Synchronized", "Bad Message Length", "Bad Message Type"])
        }
        ErrorCode::OpenMessage => (
            "OPEN Message Error",
            &[
                "Unsupported Version Number",
                "Bad Peer AS",
                "Bad BGP Identifier",
                "Unsupported Optional Parameter",
                "Authentication Failure",
                "Unacceptable Hold Time",
                "Unsupported Capability",
                "",
                "",
                "",
                "Role Mismatch",
            ],
        ),
        ErrorCode::UpdateMessage => (
            "UPDATE Message Error",
            &[
                "Malformed Attribute List",
                "Unrecognized Well-known Attribute",
                "Missing Well-known Attribute",
                "Attribute Flags Error",
                "Attribute Length Error",
                "Invalid ORIGIN Attribute",
                "AS Routing Loop",
                "Invalid NEXT_HOP Attribute",
                "Optional Attribute Error",
                "Invalid Network Field",
                "Malformed AS_PATH",
            ],
        ),
        ErrorCode::HoldTimerExpired => ("Hold Timer Expired", &[]),
        ErrorCode::FiniteStateMachine => (
            "Finite State Machine Error",
            &[
                "Receive Unexpected Message in OpenSent State",
                "Receive Unexpected Message in OpenConfirm State",
                "Receive Unexpected Message in Established State",
            ],
        ),
        ErrorCode::Cease => (
            "Cease",
            &[
                "Maximum Number of Prefixes Reached",
                "Administrative Shutdown",
                "Peer De-configured",
                "Administrative Reset",
                "Connection Rejected",
                "Other Configuration Change",
                "Connection Collision Resolution",
                "Out of Resources",
                "Hard Reset",
                "BFD Down",
            ],
        ),
        ErrorCode::RouteRefreshMessage => ("ROUTE-REFRESH Message Error", &["Invalid Message Length"]),
        ErrorCode::Unknown(_) => ("unknown error code", &[]),
    };
    let sub = usize::from(subcode).checked_sub(1).and_then(|i| subcodes.get(i)).copied().filter(|n| !n.is_empty());
    (code_name, sub)
}

impl fmt::Display for Notification {
    /// As `Cease / Administrative Shutdown (6/2) "text"`: names first, numbers after.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, sub) = names(self.code, self.subcode);
        match sub {
            Some(sub) => write!(f, "{code} / {sub}")?,
            None if self.subcode == 0 => write!(f, "{code}")?,
            None => write!(f, "{code} / subcode {}", self.subcode)?,
        }
        write!(f, " ({}/{})", u8::from(self.code), self.subcode)?;
        // RFC 9003: a shutdown communication with Administrative Shutdown or Reset.
        if self.code == ErrorCode::Cease && matches!(self.subcode, CEASE_ADMIN_SHUTDOWN | CEASE_ADMIN_RESET) {
            if let Some((&n, rest)) = self.data.split_first() {
                if let Some(text) = rest.get(..usize::from(n)).and_then(|t| std::str::from_utf8(t).ok()) {
                    write!(f, " {text:?}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_read_by_name_then_number() {
        let shut = Notification::admin_shutdown("maintenance");
        assert_eq!(shut.to_string(), "Cease / Administrative Shutdown (6/2) \"maintenance\"");
        assert_eq!(Notification::new(ErrorCode::HoldTimerExpired, 0).to_string(), "Hold Timer Expired (4/0)");
        assert_eq!(Notification::new(ErrorCode::OpenMessage, 2).to_string(), "OPEN Message Error / Bad Peer AS (2/2)");
        assert_eq!(
            Notification::new(ErrorCode::UpdateMessage, 11).to_string(),
            "UPDATE Message Error / Malformed AS_PATH (3/11)"
        );
        assert_eq!(Notification::new(ErrorCode::Cease, 99).to_string(), "Cease / subcode 99 (6/99)");
        let mut reset = Notification::admin_shutdown("new key");
        reset.subcode = CEASE_ADMIN_RESET;
        assert_eq!(reset.to_string(), "Cease / Administrative Reset (6/4) \"new key\"");
        assert_eq!(Notification::new(ErrorCode::OpenMessage, 8).to_string(), "OPEN Message Error / subcode 8 (2/8)");
        assert_eq!(Notification::new(ErrorCode::from(42), 1).to_string(), "unknown error code / subcode 1 (42/1)");
    }
}
