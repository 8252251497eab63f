//! lb's fuzz targets, as plain functions over bytes: everything that reads input from
//! outside (BGP from peers, ARP/NDP frames from the wire, pool addresses and whole
//! configuration files from users).
//!
//! `fuzz/` runs each under libFuzzer (`cargo fuzz run TARGET`); this crate's test replays
//! every file of `fuzz/corpus/TARGET` and `fuzz/regressions/TARGET` through the same function
//! with plain `cargo test`, so a crash once found stays fixed.
//!
//! A target panics only when lb is wrong: decoding must never panic, and what lb itself
//! encodes must decode back to the same message (encode∘decode is the identity on decoded
//! messages); a frame lb sends must parse; a range lb parses must print and parse back.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use announcer_bgp::codec::Codec;
use announcer_bgp::wire::{DecodeCx, Message, Notification, Open, Update};
use announcer_l2::responder::Responder;
use announcer_l2::wire::{parse_frame, MacAddr};
use bytes::{Bytes, BytesMut};
use lbcore::ipam::range::AddrRange;
use tokio_util::codec::Decoder;

/// A fuzz target: any bytes in, a panic only when lb is wrong.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz/fuzz_targets/*.rs` and of the corpus folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("bgp_stream", bgp_stream),
    ("bgp_open", bgp_open),
    ("bgp_update", bgp_update),
    ("bgp_notification", bgp_notification),
    ("l2_frame", l2_frame),
    ("pool_range", pool_range),
    ("config_yaml", config_yaml),
];

/// Session context from one byte: 4-octet AS, extended messages, iBGP.
fn cx_of(b: u8) -> DecodeCx {
    DecodeCx { four_octet_as: b & 1 != 0, extended_message: b & 2 != 0, ibgp: b & 4 != 0 }
}

/// Encodes `m` and decodes it again: it must come back the same. (An UPDATE that RFC 7606
/// says to treat as a withdrawal is a diagnosis, not a message lb would send: skipped.)
fn round_trip(m: &Message, cx: &DecodeCx) {
    if matches!(m, Message::Update(u) if u.withdraw_all.is_some()) {
        return;
    }
    let mut buf = BytesMut::new();
    m.encode(&mut buf, cx.four_octet_as);
    let again = Message::decode(buf.freeze(), cx);
    assert_eq!(again.as_ref().ok(), Some(m), "encode∘decode changed the message: {again:?}");
}

/// A TCP stream from a peer, cut into chunks: byte 0 is the session context, byte 1 the
/// chunk size, the rest the stream. Framing and decoding go on until the first error (which
/// ends a session); each message decoded must round-trip.
pub fn bgp_stream(data: &[u8]) {
    let [flags, chunk, stream @ ..] = data else { return };
    let mut codec = Codec { cx: cx_of(*flags) };
    let mut buf = BytesMut::new();
    for piece in stream.chunks(usize::from(*chunk).max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(m)) => round_trip(&m, &codec.cx),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// An OPEN body (after the header).
pub fn bgp_open(data: &[u8]) {
    if let Ok(open) = Open::decode(&mut Bytes::copy_from_slice(data)) {
        round_trip(&Message::Open(open), &DecodeCx::default());
    }
}

/// An UPDATE body: byte 0 is the session context.
pub fn bgp_update(data: &[u8]) {
    let [flags, body @ ..] = data else { return };
    let cx = cx_of(*flags);
    if let Ok(u) = Update::decode(&mut Bytes::copy_from_slice(body), &cx) {
        round_trip(&Message::Update(u), &cx);
    }
}

/// A NOTIFICATION body; its text form (which reads an RFC 9003 shutdown communication) too.
pub fn bgp_notification(data: &[u8]) {
    if let Ok(n) = Notification::decode(&mut Bytes::copy_from_slice(data)) {
        let _ = n.to_string();
        round_trip(&Message::Notification(n), &DecodeCx::default());
    }
}

/// An Ethernet frame received on an interface that answers for 192.0.2.1 and 2001:db8::1;
/// whatever the responder sends back must parse.
pub fn l2_frame(data: &[u8]) {
    let Ok(frame) = parse_frame(data) else { return };
    let mut r = Responder::new(MacAddr::new(0x02, 0, 0, 0, 0, 1), 0);
    let ips: BTreeSet<IpAddr> =
        [IpAddr::from([192, 0, 2, 1]), "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 16]))].into_iter().collect();
    r.set_ips(ips);
    if let Some(out) = r.on_frame(Instant::now(), &frame) {
        let bytes = out.to_bytes();
        assert!(parse_frame(&bytes).is_ok(), "lb sent a frame it cannot parse: {out:?}");
    }
}

/// A pool address entry (`A/N` or `A-B`): a range that parses prints and parses back.
pub fn pool_range(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = AddrRange::parse(s) {
        assert!(r.start() <= r.end());
        let again = AddrRange::parse(&format!("{}-{}", r.start(), r.end()));
        assert_eq!(again.ok(), Some(r));
    }
}

/// A whole configuration file: loaded, validated and, when valid, every LoadBalancer
/// Service in it allocated, as `lb check` does.
pub fn config_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut res = lbcore::config::Resources::default();
    res.load_str("fuzz.yaml", text);
    let Ok(v) = lbcore::config::validate(&res) else { return };
    let Ok(services) = lbcore::service::load_balancer_services(&mut res) else { return };
    let (_, outcomes) = lbcore::ipam::batch::assign_all(&v.config.pools, &services, None);
    assert_eq!(outcomes.len(), services.len());
}
