//! The message header ([RFC 4271 §4.1]) and framing lengths.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                           Marker (16 octets of 1)             +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [RFC 4271 §4.1]: https://www.rfc-editor.org/rfc/rfc4271#section-4.1

use bytes::{BufMut, BytesMut};

use super::error::HeaderError;
use super::iana::MessageType;

/// Header length.
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended message capability (RFC 4271).
pub const MAX_LEN: usize = 4096;
/// Largest message with the extended message capability (RFC 8654).
pub const MAX_EXTENDED_LEN: usize = 65535;

/// Reads the length of the message at the start of `buf`, if its header is there, checking
/// the marker and the length bounds (`max` depends on the extended message capability).
pub fn message_len(buf: &[u8], max: usize) -> Result<Option<usize>, HeaderError> {
    let Some(head) = buf.get(..HEADER_LEN) else { return Ok(None) };
    if head[..16].iter().any(|&b| b != 0xff) {
        return Err(HeaderError::NotSynchronized);
    }
    let len = u16::from_be_bytes([head[16], head[17]]);
    if usize::from(len) < HEADER_LEN || usize::from(len) > max {
        return Err(HeaderError::BadLength(len));
    }
    Ok(Some(usize::from(len)))
}

/// Writes a header with a placeholder length; returns the offset to patch with [`finish`].
pub fn start(buf: &mut BytesMut, kind: MessageType) -> usize {
    let at = buf.len();
    buf.put_bytes(0xff, 16);
    buf.put_u16(0);
    buf.put_u8(kind.into());
    at
}

/// Back-patches the length of the message that starts at `at`.
pub fn finish(buf: &mut BytesMut, at: usize) {
    let len = (buf.len() - at) as u16;
    buf[at + 16..at + 18].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_marker() {
        let mut b = BytesMut::new();
        let at = start(&mut b, MessageType::Keepalive);
        finish(&mut b, at);
        assert_eq!(message_len(&b, MAX_LEN), Ok(Some(19)));
        assert_eq!(message_len(&b[..18], MAX_LEN), Ok(None));
        let mut bad = b.clone();
        bad[3] = 0;
        assert_eq!(message_len(&bad, MAX_LEN), Err(HeaderError::NotSynchronized));
        let mut short = b.clone();
        short[17] = 18;
        assert_eq!(message_len(&short, MAX_LEN), Err(HeaderError::BadLength(18)));
        let mut long = b;
        long[16] = 0x10;
        long[17] = 0x01;
        assert_eq!(message_len(&long, MAX_LEN), Err(HeaderError::BadLength(4097)));
        assert_eq!(message_len(&long, MAX_EXTENDED_LEN), Ok(Some(4097)));
    }
}
