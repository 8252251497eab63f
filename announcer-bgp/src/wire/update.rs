//! UPDATE ([RFC 4271 §4.3]) with the path attributes a load balancer sends and must survive
//! receiving: ORIGIN, AS_PATH (2- or 4-octet, [RFC 6793]), NEXT_HOP, MULTI_EXIT_DISC,
//! LOCAL_PREF, COMMUNITIES ([RFC 1997]), LARGE_COMMUNITY ([RFC 8092]), MP_REACH_NLRI and
//! MP_UNREACH_NLRI ([RFC 4760]), AS4_PATH; unknown optional attributes are passed over.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//!
//! Errors follow [RFC 7606]: a malformed attribute is discarded or makes the UPDATE count as
//! a withdrawal ([`Update::withdraw_all`]); only errors that make the message unparseable
//! reset the session.
//!
//! [RFC 4271 §4.3]: https://www.rfc-editor.org/rfc/rfc4271#section-4.3
//! [RFC 6793]: https://www.rfc-editor.org/rfc/rfc6793
//! [RFC 1997]: https://www.rfc-editor.org/rfc/rfc1997
//! [RFC 8092]: https://www.rfc-editor.org/rfc/rfc8092
//! [RFC 4760]: https://www.rfc-editor.org/rfc/rfc4760
//! [RFC 7606]: https://www.rfc-editor.org/rfc/rfc7606

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::error::{AttrAction, AttrError, DecodeError, UpdateError};
use super::header;
use super::iana::{AttrType, MessageType, AFI_IPV4, AFI_IPV6, AS_TRANS};

/// Attribute flag: optional.
pub const FLAG_OPTIONAL: u8 = 0x80;
/// Attribute flag: transitive.
pub const FLAG_TRANSITIVE: u8 = 0x40;
/// Attribute flag: partial.
pub const FLAG_PARTIAL: u8 = 0x20;
/// Attribute flag: extended (2-octet) length.
pub const FLAG_EXTENDED: u8 = 0x10;

/// AS_PATH segment type: AS_SET.
pub const AS_SET: u8 = 1;
/// AS_PATH segment type: AS_SEQUENCE.
pub const AS_SEQUENCE: u8 = 2;

/// What decoding needs to know about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeCx {
    /// Both sides announced 4-octet AS support.
    pub four_octet_as: bool,
    /// Both sides announced extended messages.
    pub extended_message: bool,
    /// An internal (iBGP) session.
    pub ibgp: bool,
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsSegment {
    /// Segment type (1 set, 2 sequence, 3/4 confederation).
    pub kind: u8,
    /// The AS numbers.
    pub asns: Vec<u32>,
}

/// MP_REACH_NLRI contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    /// AFI.
    pub afi: u16,
    /// SAFI.
    pub safi: u8,
    /// Next hop(s): one address, or for IPv6 a global and a link-local one.
    pub next_hops: Vec<IpAddr>,
    /// Reachable prefixes.
    pub nlri: Vec<IpNet>,
}

/// MP_UNREACH_NLRI contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    /// AFI.
    pub afi: u16,
    /// SAFI.
    pub safi: u8,
    /// Withdrawn prefixes.
    pub withdrawn: Vec<IpNet>,
}

/// The path attributes of an UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attrs {
    /// ORIGIN (0 IGP, 1 EGP, 2 INCOMPLETE).
    pub origin: Option<u8>,
    /// AS_PATH, with 4-octet numbers (AS4_PATH already merged in when received).
    pub as_path: Option<Vec<AsSegment>>,
    /// NEXT_HOP (IPv4 NLRI).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (iBGP only).
    pub local_pref: Option<u32>,
    /// COMMUNITIES.
    pub communities: Vec<u32>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<(u32, u32, u32)>,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
}

/// An UPDATE message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Withdrawn IPv4 routes.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes.
    pub attrs: Attrs,
    /// Reachable IPv4 routes.
    pub nlri: Vec<Ipv4Net>,
    /// Set when RFC 7606 says to treat the whole UPDATE as a withdrawal, with why.
    pub withdraw_all: Option<UpdateError>,
}

/// Size of a prefix in NLRI encoding.
pub fn prefix_len(p: &IpNet) -> usize {
    1 + usize::from(p.prefix_len()).div_ceil(8)
}

fn put_prefix(buf: &mut BytesMut, p: &IpNet) {
    buf.put_u8(p.prefix_len());
    let n = usize::from(p.prefix_len()).div_ceil(8);
    match p.network() {
        IpAddr::V4(a) => buf.put_slice(&a.octets()[..n]),
        IpAddr::V6(a) => buf.put_slice(&a.octets()[..n]),
    }
}

/// Reads prefixes of `afi` until `buf` is empty.
fn get_prefixes(mut buf: Bytes, afi: u16) -> Result<Vec<IpNet>, UpdateError> {
    let bad = UpdateError::InvalidNetworkField;
    let mut out = Vec::new();
    while buf.has_remaining() {
        let len = buf.try_get_u8().map_err(|_| bad.clone())?;
        let n = usize::from(len).div_ceil(8);
        if buf.remaining() < n {
            return Err(bad);
        }
        let bytes = buf.split_to(n);
        let net = match afi {
            AFI_IPV4 if len <= 32 => {
                let mut o = [0u8; 4];
                o[..n].copy_from_slice(&bytes);
                Ipv4Net::new(Ipv4Addr::from(o), len).map(|n| IpNet::V4(n.trunc()))
            }
            AFI_IPV6 if len <= 128 => {
                let mut o = [0u8; 16];
                o[..n].copy_from_slice(&bytes);
                Ipv6Net::new(Ipv6Addr::from(o), len).map(|n| IpNet::V6(n.trunc()))
            }
            _ => return Err(bad),
        }
        .map_err(|_| UpdateError::InvalidNetworkField)?;
        out.push(net);
    }
    Ok(out)
}

fn v4_only(nets: Vec<IpNet>) -> Vec<Ipv4Net> {
    nets.into_iter()
        .filter_map(|n| match n {
            IpNet::V4(v) => Some(v),
            IpNet::V6(_) => None,
        })
        .collect()
}

fn withdraw(e: UpdateError) -> AttrError {
    AttrError { action: AttrAction::Withdraw, error: e }
}

fn discard(e: UpdateError) -> AttrError {
    AttrError { action: AttrAction::Discard, error: e }
}

fn reset(e: UpdateError) -> AttrError {
    AttrError { action: AttrAction::Reset, error: e }
}

fn get_as_path(mut v: Bytes, four: bool) -> Result<Vec<AsSegment>, UpdateError> {
    let width = if four { 4 } else { 2 };
    let mut segs = Vec::new();
    while v.has_remaining() {
        let (Ok(kind), Ok(count)) = (v.try_get_u8(), v.try_get_u8()) else {
            return Err(UpdateError::MalformedAsPath);
        };
        if !(1..=4).contains(&kind) || count == 0 || v.remaining() < usize::from(count) * width {
            return Err(UpdateError::MalformedAsPath);
        }
        let asns = (0..count).map(|_| if four { v.get_u32() } else { u32::from(v.get_u16()) }).collect();
        segs.push(AsSegment { kind, asns });
    }
    Ok(segs)
}

/// RFC 6793 §4.2.3: rebuild the path from AS_PATH (2-octet, with AS_TRANS) and AS4_PATH.
fn merge_as4(as_path: Vec<AsSegment>, as4: Vec<AsSegment>) -> Vec<AsSegment> {
    // Path length as RFC 4271 §9.1.2.2 and RFC 5065 count it: a set counts one,
    // confederation segments nothing.
    let count = |p: &[AsSegment]| -> usize {
        p.iter()
            .map(|s| match s.kind {
                AS_SET => 1,
                AS_SEQUENCE => s.asns.len(),
                _ => 0,
            })
            .sum()
    };
    let (n, n4) = (count(&as_path), count(&as4));
    if n4 > n {
        // The AS4_PATH is longer: ignore it (§4.2.3).
        return as_path;
    }
    let mut keep = n - n4;
    let mut out = Vec::new();
    for s in as_path {
        if keep == 0 {
            break;
        }
        if s.kind == AS_SET {
            keep -= 1;
            out.push(s);
        } else {
            let take = keep.min(s.asns.len());
            keep -= take;
            out.push(AsSegment { kind: s.kind, asns: s.asns[..take].to_vec() });
        }
    }
    out.extend(as4);
    out
}

impl Update {
    /// Decodes the body (after the header).
    pub fn decode(body: &mut Bytes, cx: &DecodeCx) -> Result<Self, DecodeError> {
        let framing = || DecodeError::Update(UpdateError::MalformedAttributeList);
        let wlen = usize::from(body.try_get_u16().map_err(|_| framing())?);
        if body.remaining() < wlen {
            return Err(framing());
        }
        let withdrawn = v4_only(get_prefixes(body.split_to(wlen), AFI_IPV4)?);
        let alen = usize::from(body.try_get_u16().map_err(|_| framing())?);
        if body.remaining() < alen {
            return Err(framing());
        }
        let attr_bytes = body.split_to(alen);
        let nlri = v4_only(get_prefixes(body.split_off(0), AFI_IPV4)?);
        let mut u = Update { withdrawn, nlri, ..Default::default() };
        u.decode_attrs(attr_bytes, cx)?;
        // §3 (d): a route without its mandatory attributes is withdrawn, not an error.
        let announces = !u.nlri.is_empty() || u.attrs.mp_reach.as_ref().is_some_and(|m| !m.nlri.is_empty());
        if announces && u.withdraw_all.is_none() {
            let missing = if u.attrs.origin.is_none() {
                Some(AttrType::Origin)
            } else if u.attrs.as_path.is_none() {
                Some(AttrType::AsPath)
            } else if !u.nlri.is_empty() && u.attrs.next_hop.is_none() {
                Some(AttrType::NextHop)
            } else {
                None
            };
            u.withdraw_all = missing.map(|t| UpdateError::MissingWellKnown(t.into()));
        }
        Ok(u)
    }

    fn decode_attrs(&mut self, mut buf: Bytes, cx: &DecodeCx) -> Result<(), DecodeError> {
        let mut seen = [false; 256];
        let mut as4: Option<Vec<AsSegment>> = None;
        while buf.has_remaining() {
            let (Ok(flags), Ok(kind)) = (buf.try_get_u8(), buf.try_get_u8()) else {
                // §4: the attribute field cannot be parsed: treat-as-withdraw.
                self.withdraw_all.get_or_insert(UpdateError::MalformedAttributeList);
                break;
            };
            let len = if flags & FLAG_EXTENDED != 0 {
                buf.try_get_u16().ok().map(usize::from)
            } else {
                buf.try_get_u8().ok().map(usize::from)
            };
            let Some(len) = len.filter(|&l| l <= buf.remaining()) else {
                self.withdraw_all.get_or_insert(UpdateError::AttributeLength(kind));
                break;
            };
            let value = buf.split_to(len);
            let t = AttrType::from(kind);
            if seen[usize::from(kind)] {
                // §3 (g): a repeated MP_(UN)REACH resets, other repeats are discarded.
                if matches!(t, AttrType::MpReachNlri | AttrType::MpUnreachNlri) {
                    return Err(UpdateError::MalformedAttributeList.into());
                }
                continue;
            }
            seen[usize::from(kind)] = true;
            match self.decode_attr(flags, t, value, cx, &mut as4) {
                Ok(()) => {}
                Err(AttrError { action: AttrAction::Discard, error }) => {
                    tracing::debug!(%error, "discarding a malformed attribute (RFC 7606)");
                }
                Err(AttrError { action: AttrAction::Withdraw, error }) => {
                    self.withdraw_all.get_or_insert(error);
                }
                Err(AttrError { action: AttrAction::Reset, error }) => return Err(error.into()),
            }
        }
        // RFC 6793 §4.2.3: only a 2-octet session merges AS4_PATH in (a 4-octet one ignores it).
        if let (false, Some(as4)) = (cx.four_octet_as, as4) {
            if let Some(path) = self.attrs.as_path.take() {
                self.attrs.as_path = Some(merge_as4(path, as4));
            }
        }
        Ok(())
    }

    fn decode_attr(
        &mut self,
        flags: u8,
        t: AttrType,
        mut v: Bytes,
        cx: &DecodeCx,
        as4: &mut Option<Vec<AsSegment>>,
    ) -> Result<(), AttrError> {
        let kind = u8::from(t);
        let optional = flags & FLAG_OPTIONAL != 0;
        let transitive = flags & FLAG_TRANSITIVE != 0;
        // §3 (c): flags in conflict with the type make the attribute malformed.
        let well_known = |want_transitive: bool| {
            if optional || transitive != want_transitive {
                Err(withdraw(UpdateError::AttributeFlags(kind)))
            } else {
                Ok(())
            }
        };
        let opt = |want_transitive: bool| {
            if !optional || transitive != want_transitive {
                Err(withdraw(UpdateError::AttributeFlags(kind)))
            } else {
                Ok(())
            }
        };
        match t {
            AttrType::Origin => {
                well_known(true)?;
                // §7.1
                match v.as_ref() {
                    [o] if *o <= 2 => self.attrs.origin = Some(*o),
                    [_] => return Err(withdraw(UpdateError::InvalidOrigin)),
                    _ => return Err(withdraw(UpdateError::AttributeLength(kind))),
                }
            }
            AttrType::AsPath => {
                well_known(true)?;
                // §7.2. RFC 5065 §5: confederation segments from a peer outside our
                // confederation make the AS_PATH malformed, and lb is never in one.
                let path = get_as_path(v, cx.four_octet_as).map_err(withdraw)?;
                if path.iter().any(|s| s.kind > AS_SEQUENCE) {
                    return Err(withdraw(UpdateError::MalformedAsPath));
                }
                self.attrs.as_path = Some(path);
            }
            AttrType::NextHop => {
                well_known(true)?;
                // §7.3
                let a =
                    v.try_get_u32().map(Ipv4Addr::from).map_err(|_| withdraw(UpdateError::AttributeLength(kind)))?;
                if v.has_remaining() {
                    return Err(withdraw(UpdateError::AttributeLength(kind)));
                }
                if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
                    return Err(withdraw(UpdateError::InvalidNextHop));
                }
                self.attrs.next_hop = Some(a);
            }
            AttrType::MultiExitDisc => {
                opt(false)?;
                // §7.4
                if v.len() != 4 {
                    return Err(withdraw(UpdateError::AttributeLength(kind)));
                }
                self.attrs.med = Some(v.get_u32());
            }
            AttrType::LocalPref => {
                if !cx.ibgp {
                    // §7.5: on eBGP it is discarded.
                    return Err(discard(UpdateError::AttributeFlags(kind)));
                }
                well_known(true)?;
                if v.len() != 4 {
                    return Err(withdraw(UpdateError::AttributeLength(kind)));
                }
                self.attrs.local_pref = Some(v.get_u32());
            }
            AttrType::AtomicAggregate | AttrType::Aggregator | AttrType::As4Aggregator => {
                // §7.6, §7.7: discarded when malformed; we keep no use for them.
            }
            AttrType::Communities => {
                opt(true)?;
                // §7.8
                if v.is_empty() || !v.len().is_multiple_of(4) {
                    return Err(withdraw(UpdateError::OptionalAttribute(kind)));
                }
                while v.has_remaining() {
                    self.attrs.communities.push(v.get_u32());
                }
            }
            AttrType::LargeCommunities => {
                opt(true)?;
                // RFC 8092 §5
                if v.is_empty() || !v.len().is_multiple_of(12) {
                    return Err(withdraw(UpdateError::OptionalAttribute(kind)));
                }
                while v.has_remaining() {
                    self.attrs.large_communities.push((v.get_u32(), v.get_u32(), v.get_u32()));
                }
            }
            AttrType::MpReachNlri => {
                opt(false).map_err(|e| reset(e.error))?;
                self.attrs.mp_reach = Some(decode_mp_reach(v)?);
            }
            AttrType::MpUnreachNlri => {
                opt(false).map_err(|e| reset(e.error))?;
                let (Ok(afi), Ok(safi)) = (v.try_get_u16(), v.try_get_u8()) else {
                    return Err(reset(UpdateError::OptionalAttribute(kind)));
                };
                let withdrawn = get_prefixes(v, afi).map_err(reset)?;
                self.attrs.mp_unreach = Some(MpUnreach { afi, safi, withdrawn });
            }
            AttrType::As4Path => {
                // RFC 6793 §6: a malformed AS4_PATH, or one with confederation segments, is
                // discarded.
                let path = get_as_path(v, true).map_err(discard)?;
                if path.iter().any(|s| s.kind > AS_SEQUENCE) {
                    return Err(discard(UpdateError::MalformedAsPath));
                }
                *as4 = Some(path);
            }
            AttrType::Unknown(_) if optional => {
                // Unknown optional attributes are passed over (we never propagate routes).
            }
            AttrType::Unknown(k) => {
                let mut attr = BytesMut::new();
                put_attr(&mut attr, flags & !FLAG_EXTENDED, t, &v);
                return Err(reset(UpdateError::UnrecognizedWellKnown(k, attr.freeze())));
            }
        }
        Ok(())
    }

    /// Encodes the whole message with 4-octet AS numbers when `four_octet_as`, else with
    /// AS_TRANS and an AS4_PATH (RFC 6793 §4.2.2).
    pub fn encode(&self, buf: &mut BytesMut, four_octet_as: bool) {
        let at = header::start(buf, MessageType::Update);
        let mut w = BytesMut::new();
        for p in &self.withdrawn {
            put_prefix(&mut w, &IpNet::V4(*p));
        }
        buf.put_u16(w.len() as u16);
        buf.put_slice(&w);
        let mut a = BytesMut::new();
        self.attrs.encode(&mut a, four_octet_as);
        buf.put_u16(a.len() as u16);
        buf.put_slice(&a);
        for p in &self.nlri {
            put_prefix(buf, &IpNet::V4(*p));
        }
        header::finish(buf, at);
    }
}

fn decode_mp_reach(mut v: Bytes) -> Result<MpReach, AttrError> {
    let kind = u8::from(AttrType::MpReachNlri);
    let (Ok(afi), Ok(safi), Ok(nh_len)) = (v.try_get_u16(), v.try_get_u8(), v.try_get_u8()) else {
        return Err(reset(UpdateError::OptionalAttribute(kind)));
    };
    let nh_len = usize::from(nh_len);
    if v.remaining() < nh_len + 1 {
        return Err(reset(UpdateError::OptionalAttribute(kind)));
    }
    let mut nh = v.split_to(nh_len);
    v.advance(1); // reserved
    let nlri = get_prefixes(v, afi).map_err(reset)?;
    let mut next_hops = Vec::new();
    match (afi, nh_len) {
        (AFI_IPV6, 16 | 32) => {
            while nh.remaining() >= 16 {
                let mut o = [0u8; 16];
                nh.copy_to_slice(&mut o);
                next_hops.push(IpAddr::V6(Ipv6Addr::from(o)));
            }
        }
        (AFI_IPV4, 4) => next_hops.push(IpAddr::V4(Ipv4Addr::from(nh.get_u32()))),
        // RFC 7606 §7.11: a next hop of the wrong length makes the routes withdrawn.
        _ => return Err(withdraw(UpdateError::OptionalAttribute(kind))),
    }
    Ok(MpReach { afi, safi, next_hops, nlri })
}

fn put_attr(buf: &mut BytesMut, flags: u8, t: AttrType, value: &[u8]) {
    if value.len() > 255 {
        buf.put_u8(flags | FLAG_EXTENDED);
        buf.put_u8(t.into());
        buf.put_u16(value.len() as u16);
    } else {
        buf.put_u8(flags);
        buf.put_u8(t.into());
        buf.put_u8(value.len() as u8);
    }
    buf.put_slice(value);
}

fn put_as_path(v: &mut BytesMut, segs: &[AsSegment], four: bool) {
    for s in segs {
        for chunk in s.asns.chunks(255) {
            v.put_u8(s.kind);
            v.put_u8(chunk.len() as u8);
            for a in chunk {
                if four {
                    v.put_u32(*a);
                } else {
                    v.put_u16(u16::try_from(*a).unwrap_or(AS_TRANS));
                }
            }
        }
    }
}

impl Attrs {
    /// Encodes the attributes: MP_REACH_NLRI / MP_UNREACH_NLRI first (RFC 7606 §5.1), the
    /// others in type order.
    pub fn encode(&self, buf: &mut BytesMut, four_octet_as: bool) {
        if let Some(m) = &self.mp_reach {
            let mut v = BytesMut::new();
            v.put_u16(m.afi);
            v.put_u8(m.safi);
            let mut nh = BytesMut::new();
            for a in &m.next_hops {
                match a {
                    IpAddr::V4(a) => nh.put_slice(&a.octets()),
                    IpAddr::V6(a) => nh.put_slice(&a.octets()),
                }
            }
            v.put_u8(nh.len() as u8);
            v.put_slice(&nh);
            v.put_u8(0);
            for p in &m.nlri {
                put_prefix(&mut v, p);
            }
            put_attr(buf, FLAG_OPTIONAL, AttrType::MpReachNlri, &v);
        }
        if let Some(m) = &self.mp_unreach {
            let mut v = BytesMut::new();
            v.put_u16(m.afi);
            v.put_u8(m.safi);
            for p in &m.withdrawn {
                put_prefix(&mut v, p);
            }
            put_attr(buf, FLAG_OPTIONAL, AttrType::MpUnreachNlri, &v);
        }
        if let Some(o) = self.origin {
            put_attr(buf, FLAG_TRANSITIVE, AttrType::Origin, &[o]);
        }
        if let Some(path) = &self.as_path {
            let mut v = BytesMut::new();
            put_as_path(&mut v, path, four_octet_as);
            put_attr(buf, FLAG_TRANSITIVE, AttrType::AsPath, &v);
        }
        if let Some(nh) = self.next_hop {
            put_attr(buf, FLAG_TRANSITIVE, AttrType::NextHop, &nh.octets());
        }
        if let Some(m) = self.med {
            put_attr(buf, FLAG_OPTIONAL, AttrType::MultiExitDisc, &m.to_be_bytes());
        }
        if let Some(lp) = self.local_pref {
            put_attr(buf, FLAG_TRANSITIVE, AttrType::LocalPref, &lp.to_be_bytes());
        }
        if !self.communities.is_empty() {
            let v: Vec<u8> = self.communities.iter().flat_map(|c| c.to_be_bytes()).collect();
            put_attr(buf, FLAG_OPTIONAL | FLAG_TRANSITIVE, AttrType::Communities, &v);
        }
        if !four_octet_as {
            if let Some(path) = &self.as_path {
                // RFC 6793 §3: no confederation segments in AS4_PATH.
                let path: Vec<AsSegment> = path.iter().filter(|s| s.kind <= AS_SEQUENCE).cloned().collect();
                if path.iter().any(|s| s.asns.iter().any(|a| *a > 0xffff)) {
                    let mut v = BytesMut::new();
                    put_as_path(&mut v, &path, true);
                    put_attr(buf, FLAG_OPTIONAL | FLAG_TRANSITIVE, AttrType::As4Path, &v);
                }
            }
        }
        if !self.large_communities.is_empty() {
            let v: Vec<u8> = self
                .large_communities
                .iter()
                .flat_map(|(a, b, c)| [a.to_be_bytes(), b.to_be_bytes(), c.to_be_bytes()])
                .flatten()
                .collect();
            put_attr(buf, FLAG_OPTIONAL | FLAG_TRANSITIVE, AttrType::LargeCommunities, &v);
        }
    }
}

#[cfg(test)]
mod tests;
