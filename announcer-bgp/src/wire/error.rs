//! Decoding errors, layered per message, and the one table that maps them to the
//! NOTIFICATION a speaker must send ([RFC 4271 §6], [RFC 7606], [RFC 5492], [RFC 7313]).
//!
//! [RFC 4271 §6]: https://www.rfc-editor.org/rfc/rfc4271#section-6
//! [RFC 7606]: https://www.rfc-editor.org/rfc/rfc7606
//! [RFC 5492]: https://www.rfc-editor.org/rfc/rfc5492
//! [RFC 7313]: https://www.rfc-editor.org/rfc/rfc7313

use bytes::Bytes;

use super::iana::ErrorCode;
use super::notification::Notification;

/// Message header errors (§6.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The marker is not all ones.
    #[error("connection not synchronized (bad marker)")]
    NotSynchronized,
    /// The length is out of range for the message type.
    #[error("bad message length {0}")]
    BadLength(u16),
    /// An unknown message type.
    #[error("bad message type {0}")]
    BadType(u8),
}

/// OPEN message errors (§6.2, RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// A version other than 4.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The peer's AS is not the one configured.
    #[error("bad peer AS {0}")]
    BadPeerAs(u32),
    /// A BGP identifier of 0 (or equal to ours on an iBGP session).
    #[error("bad BGP identifier {}", std::net::Ipv4Addr::from(*.0))]
    BadBgpId(u32),
    /// An optional parameter other than capabilities.
    #[error("unsupported optional parameter {0}")]
    UnsupportedOptParam(u8),
    /// A hold time of 1 or 2 seconds.
    #[error("unacceptable hold time {0} s (it must be 0 or at least 3)")]
    UnacceptableHoldTime(u16),
    /// A capability we require and the peer lacks, or one whose value is unusable.
    #[error("unsupported capability")]
    UnsupportedCapability(Bytes),
    /// Lengths inside the OPEN do not add up.
    #[error("malformed OPEN message")]
    Malformed,
}

/// UPDATE message errors (§6.3), with the subcode each maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// Lengths that do not add up, or an attribute twice (subcode 1).
    #[error("malformed attribute list")]
    MalformedAttributeList,
    /// A well-known attribute we do not know (subcode 2), with the whole attribute (flags,
    /// type, length, value) for the NOTIFICATION's data.
    #[error("unrecognized well-known attribute {0}")]
    UnrecognizedWellKnown(u8, Bytes),
    /// A mandatory attribute missing (subcode 3).
    #[error("missing well-known attribute {0}")]
    MissingWellKnown(u8),
    /// Flags that conflict with the attribute type (subcode 4).
    #[error("attribute flags error (type {0})")]
    AttributeFlags(u8),
    /// A length wrong for the attribute type (subcode 5).
    #[error("attribute length error (type {0})")]
    AttributeLength(u8),
    /// ORIGIN out of range (subcode 6).
    #[error("invalid ORIGIN")]
    InvalidOrigin,
    /// A semantically invalid NEXT_HOP (subcode 8).
    #[error("invalid NEXT_HOP")]
    InvalidNextHop,
    /// A malformed optional attribute (subcode 9).
    #[error("optional attribute error (type {0})")]
    OptionalAttribute(u8),
    /// A malformed prefix in the NLRI or withdrawn routes (subcode 10).
    #[error("invalid network field")]
    InvalidNetworkField,
    /// A malformed AS_PATH (subcode 11).
    #[error("malformed AS_PATH")]
    MalformedAsPath,
}

impl UpdateError {
    fn subcode(&self) -> u8 {
        match self {
            UpdateError::MalformedAttributeList => 1,
            UpdateError::UnrecognizedWellKnown(..) => 2,
            UpdateError::MissingWellKnown(_) => 3,
            UpdateError::AttributeFlags(_) => 4,
            UpdateError::AttributeLength(_) => 5,
            UpdateError::InvalidOrigin => 6,
            UpdateError::InvalidNextHop => 8,
            UpdateError::OptionalAttribute(_) => 9,
            UpdateError::InvalidNetworkField => 10,
            UpdateError::MalformedAsPath => 11,
        }
    }
}

/// What RFC 7606 says to do about a malformed path attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttrAction {
    /// §2 "attribute discard": ignore the attribute, keep the UPDATE.
    Discard,
    /// §2 "treat-as-withdraw": the UPDATE's routes count as withdrawn; the session stays.
    Withdraw,
    /// §2 "session reset": send a NOTIFICATION and close.
    Reset,
}

/// An attribute decoding error with the RFC 7606 action for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrError {
    /// What to do.
    pub action: AttrAction,
    /// The error (for the NOTIFICATION if the action is a reset, and for logs).
    pub error: UpdateError,
}

/// Any decoding error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// In the header.
    #[error("header: {0}")]
    Header(#[from] HeaderError),
    /// In an OPEN.
    #[error("OPEN: {0}")]
    Open(#[from] OpenError),
    /// In an UPDATE, resetting the session.
    #[error("UPDATE: {0}")]
    Update(#[from] UpdateError),
    /// A NOTIFICATION or KEEPALIVE of the wrong length.
    #[error("bad length {0} for this message type")]
    Length(u16),
    /// A ROUTE-REFRESH of the wrong length (RFC 7313 §5).
    #[error("bad ROUTE-REFRESH length {0}")]
    RouteRefreshLength(u16),
}

impl From<&DecodeError> for Notification {
    /// The NOTIFICATION for a decoding error: the whole code/subcode table.
    fn from(e: &DecodeError) -> Notification {
        let (code, subcode, data): (ErrorCode, u8, Bytes) = match e {
            DecodeError::Header(HeaderError::NotSynchronized) => (ErrorCode::MessageHeader, 1, Bytes::new()),
            DecodeError::Header(HeaderError::BadLength(l)) | DecodeError::Length(l) => {
                (ErrorCode::MessageHeader, 2, Bytes::copy_from_slice(&l.to_be_bytes()))
            }
            DecodeError::Header(HeaderError::BadType(t)) => {
                (ErrorCode::MessageHeader, 3, Bytes::copy_from_slice(&[*t]))
            }
            DecodeError::Open(o) => match o {
                // §6.2: the data is the largest version we support.
                OpenError::UnsupportedVersion(_) => (ErrorCode::OpenMessage, 1, Bytes::from_static(&[0, 4])),
                OpenError::BadPeerAs(_) => (ErrorCode::OpenMessage, 2, Bytes::new()),
                OpenError::BadBgpId(_) => (ErrorCode::OpenMessage, 3, Bytes::new()),
                OpenError::UnsupportedOptParam(_) => (ErrorCode::OpenMessage, 4, Bytes::new()),
                OpenError::UnacceptableHoldTime(_) => (ErrorCode::OpenMessage, 6, Bytes::new()),
                OpenError::UnsupportedCapability(caps) => (ErrorCode::OpenMessage, 7, caps.clone()),
                OpenError::Malformed => (ErrorCode::OpenMessage, 0, Bytes::new()),
            },
            // §6.3: a missing well-known attribute's type code goes in the data.
            DecodeError::Update(UpdateError::MissingWellKnown(t)) => {
                (ErrorCode::UpdateMessage, 3, Bytes::copy_from_slice(&[*t]))
            }
            // §6.3: an unrecognized well-known attribute goes in the data.
            DecodeError::Update(UpdateError::UnrecognizedWellKnown(_, attr)) => {
                (ErrorCode::UpdateMessage, 2, attr.clone())
            }
            DecodeError::Update(u) => (ErrorCode::UpdateMessage, u.subcode(), Bytes::new()),
            DecodeError::RouteRefreshLength(_) => (ErrorCode::RouteRefreshMessage, 1, Bytes::new()),
        };
        Notification { code, subcode, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_table() {
        let n = |e: DecodeError| {
            let n = Notification::from(&e);
            (u8::from(n.code), n.subcode, n.data.to_vec())
        };
        assert_eq!(n(HeaderError::NotSynchronized.into()), (1, 1, vec![]));
        assert_eq!(n(HeaderError::BadLength(5000).into()), (1, 2, vec![0x13, 0x88]));
        assert_eq!(n(HeaderError::BadType(9).into()), (1, 3, vec![9]));
        assert_eq!(n(OpenError::UnsupportedVersion(3).into()), (2, 1, vec![0, 4]));
        assert_eq!(n(OpenError::BadPeerAs(1).into()), (2, 2, vec![]));
        assert_eq!(n(OpenError::UnacceptableHoldTime(2).into()), (2, 6, vec![]));
        assert_eq!(n(UpdateError::MalformedAsPath.into()), (3, 11, vec![]));
        assert_eq!(n(UpdateError::MissingWellKnown(3).into()), (3, 3, vec![3]));
        assert_eq!(n(DecodeError::RouteRefreshLength(20)), (7, 1, vec![]));
    }
}
