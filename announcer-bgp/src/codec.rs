//! Framing: splits a byte stream into whole BGP messages, separately from decoding them.
//!
//! [`Codec`] implements `tokio_util::codec::{Decoder, Encoder}`: it peeks the header length,
//! splits the message off the buffer (zero-copy) and hands it to [`Message::decode`] with the
//! session's negotiated [`DecodeCx`], which [`Codec::negotiate`] sets after the OPENs.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::wire::header::{self, MAX_EXTENDED_LEN, MAX_LEN};
use crate::wire::{Capability, DecodeCx, DecodeError, Message, Open};

/// The BGP codec of one session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Codec {
    /// What decoding and encoding depend on.
    pub cx: DecodeCx,
}

impl Codec {
    /// Sets the negotiated state from both OPENs (RFC 6793 §4, RFC 8654 §3).
    pub fn negotiate(&mut self, local: &Open, remote: &Open, ibgp: bool) {
        let both =
            |f: &dyn Fn(&Capability) -> bool| local.capabilities.iter().any(f) && remote.capabilities.iter().any(f);
        self.cx = DecodeCx {
            four_octet_as: both(&|c| matches!(c, Capability::FourOctetAs(_))),
            extended_message: both(&|c| matches!(c, Capability::ExtendedMessage)),
            ibgp,
        };
    }

    /// The largest message this session may carry.
    pub fn max_len(&self) -> usize {
        if self.cx.extended_message {
            MAX_EXTENDED_LEN
        } else {
            MAX_LEN
        }
    }
}

/// An error from the stream: I/O, or a message that must end the session.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Reading or writing failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A message could not be decoded.
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

impl Decoder for Codec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let Some(len) = header::message_len(src, self.max_len()).map_err(DecodeError::from)? else {
            return Ok(None);
        };
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let msg = src.split_to(len).freeze();
        Ok(Some(Message::decode(msg, &self.cx)?))
    }
}

impl Encoder<Message> for Codec {
    type Error = CodecError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst, self.cx.four_octet_as);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Notification;

    #[test]
    fn frames_arbitrary_chunks() {
        let mut stream = BytesMut::new();
        Message::Keepalive.encode(&mut stream, true);
        Message::Notification(Notification::admin_shutdown("bye")).encode(&mut stream, true);
        let bytes = stream.freeze();
        for chunk in 1..bytes.len() {
            let mut codec = Codec::default();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for piece in bytes.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(m) = codec.decode(&mut buf).unwrap() {
                    out.push(m);
                }
            }
            assert_eq!(out.len(), 2, "chunk size {chunk}");
            assert_eq!(out[0], Message::Keepalive);
        }
    }
}
