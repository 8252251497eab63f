//! Adj-RIB-Out: what has been announced to one peer, and the UPDATEs that move it to what
//! should be announced.
//!
//! The speaker is told the whole desired set of routes; [`AdjRibOut::diff`] sends only the
//! difference. Routes that share attributes go in one UPDATE, as many as fit in the message
//! size limit (IPv4 in the NLRI field, IPv6 in MP_REACH_NLRI); withdrawals are packed the
//! same way. Invariant: after the UPDATEs returned by `diff` or `full` are sent, the peer
//! holds exactly the desired routes, and `sent` says so.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use ipnet::IpNet;
use lbcore::announcer::RouteAttrs;
use lbcore::config::Community;

use crate::wire::iana::{AFI_IPV6, SAFI_UNICAST};
use crate::wire::update::{prefix_len, AsSegment, MpReach, MpUnreach, AS_SEQUENCE};
use crate::wire::{Attrs, Update};
use lbcore::announcer::Routes;

/// LOCAL_PREF sent on iBGP when an advertisement sets none (RFC 4271 §5.1.5 requires one).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What building UPDATEs for one session depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCtx {
    /// Our AS.
    pub local_as: u32,
    /// An iBGP session.
    pub ibgp: bool,
    /// 4-octet AS numbers negotiated.
    pub four_octet_as: bool,
    /// Next hop for IPv4 routes (the session's local address) when the route sets none.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Largest message.
    pub max_len: usize,
    /// IPv4 unicast negotiated.
    pub ipv4: bool,
    /// IPv6 unicast negotiated.
    pub ipv6: bool,
}

/// The routes announced to one peer.
#[derive(Debug, Clone, Default)]
pub struct AdjRibOut {
    /// Exactly the routes of the last desired table this session can carry: the desired
    /// table itself (shared) when it carries them all.
    sent: Routes,
}

fn is_v4(p: &IpNet) -> bool {
    matches!(p, IpNet::V4(_))
}

impl AdjRibOut {
    /// What the peer holds from us.
    pub fn sent(&self) -> &Routes {
        &self.sent
    }

    /// Forgets everything (the session went down: the peer dropped our routes).
    pub fn clear(&mut self) {
        self.sent = Routes::default();
    }

    /// The UPDATEs that take the peer from what was sent to `desired`.
    pub fn diff(&mut self, desired: &Routes, cx: &PeerCtx) -> Vec<Update> {
        if self.sent.ptr_eq(desired) {
            return Vec::new();
        }
        // Per attribute set and family: whether its attributes leave room for a prefix in a
        // message (thousands of communities may not: such routes are never sent, and do
        // not count as sent).
        let fits: Vec<[bool; 2]> =
            desired.attrs().iter().map(|a| [room(a, false, cx) >= 17, room(a, true, cx) >= 17]).collect();
        let ok = |p: &IpNet, i: u32| {
            let v6 = usize::from(!is_v4(p));
            carries(p, &desired.attrs()[i as usize], cx) && fits.get(i as usize).is_some_and(|f| f[v6])
        };
        // Both tables are in prefix order: one merge walk finds the withdrawn routes (sent,
        // and no longer desired or no longer carried) and the changed ones (desired and
        // carried, and not sent with the same attributes).
        let mut withdrawn: Vec<IpNet> = Vec::new();
        let mut changed: Vec<(IpNet, u32)> = Vec::new();
        let mut all_carried = true;
        let (old, new) = (self.sent.indexed(), desired.indexed());
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            let order = match (old.get(i), new.get(j)) {
                (Some(o), Some(n)) => o.0.cmp(&n.0),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    withdrawn.push(old[i].0);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let (p, a) = new[j];
                    if ok(&p, a) {
                        changed.push((p, a));
                    } else {
                        all_carried = false;
                    }
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (p, a) = new[j];
                    let attrs = &desired.attrs()[a as usize];
                    if !ok(&p, a) {
                        all_carried = false;
                        withdrawn.push(p);
                    } else if self.sent.attrs()[old[i].1 as usize] != *attrs {
                        changed.push((p, a));
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        let mut out = withdrawals(&withdrawn, cx);
        out.extend(announcements(&changed, desired, cx));
        let too_large = desired
            .indexed()
            .iter()
            .filter(|(p, i)| carries(p, &desired.attrs()[*i as usize], cx) && !ok(p, *i))
            .count();
        if too_large > 0 {
            tracing::error!(routes = too_large, "path attributes too large for a BGP message; routes not announced");
        }
        self.sent = if all_carried { desired.clone() } else { desired.filtered(ok) };
        out
    }

    /// Everything in `desired`, as for a new session or a ROUTE-REFRESH.
    pub fn full(&mut self, desired: &Routes, cx: &PeerCtx) -> Vec<Update> {
        self.clear();
        self.diff(desired, cx)
    }
}

/// Whether this session can carry the route: its family negotiated, and a next hop of its
/// family.
fn carries(p: &IpNet, a: &RouteAttrs, cx: &PeerCtx) -> bool {
    match p {
        IpNet::V4(_) => cx.ipv4 && (cx.next_hop_v4.is_some() || matches!(a.next_hop, Some(IpAddr::V4(_)))),
        IpNet::V6(_) => cx.ipv6 && (cx.next_hop_v6.is_some() || matches!(a.next_hop, Some(IpAddr::V6(_)))),
    }
}

/// End-of-RIB markers for the negotiated families (RFC 4724 §2).
pub fn end_of_rib(cx: &PeerCtx) -> Vec<Update> {
    let v6 = Update {
        attrs: Attrs {
            mp_unreach: Some(MpUnreach { afi: AFI_IPV6, safi: SAFI_UNICAST, withdrawn: Vec::new() }),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut out = Vec::new();
    if cx.ipv4 {
        out.push(Update::default());
    }
    if cx.ipv6 {
        out.push(v6);
    }
    out
}

/// Octets left for prefixes in a message carrying `a` on this session (two fewer for IPv6,
/// whose MP_REACH_NLRI may need an extended length).
fn room(a: &RouteAttrs, v6: bool, cx: &PeerCtx) -> usize {
    let base = encoded_len(&Update { attrs: path_attrs(a, v6, cx), ..Default::default() }, cx);
    cx.max_len.saturating_sub(base + if v6 { 2 } else { 0 })
}

fn encoded_len(u: &Update, cx: &PeerCtx) -> usize {
    let mut b = BytesMut::new();
    u.encode(&mut b, cx.four_octet_as);
    b.len()
}

/// Splits `prefixes` into chunks that fit in `room` octets each.
fn chunks(prefixes: &[IpNet], room: usize) -> Vec<Vec<IpNet>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut used = 0;
    for p in prefixes {
        let n = prefix_len(p);
        if used + n > room && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            used = 0;
        }
        cur.push(*p);
        used += n;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn withdrawals(prefixes: &[IpNet], cx: &PeerCtx) -> Vec<Update> {
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes.iter().partition(|p| is_v4(p));
    let mut out = Vec::new();
    let base4 = encoded_len(&Update::default(), cx);
    for c in chunks(&v4, cx.max_len - base4) {
        let withdrawn = c.into_iter().filter_map(|p| if let IpNet::V4(v) = p { Some(v) } else { None }).collect();
        out.push(Update { withdrawn, ..Default::default() });
    }
    let empty6 = MpUnreach { afi: AFI_IPV6, safi: SAFI_UNICAST, withdrawn: Vec::new() };
    let base6 = encoded_len(
        &Update { attrs: Attrs { mp_unreach: Some(empty6.clone()), ..Default::default() }, ..Default::default() },
        cx,
    );
    // Two more octets when the attribute needs an extended length.
    for c in chunks(&v6, cx.max_len - base6 - 2) {
        let attrs = Attrs { mp_unreach: Some(MpUnreach { withdrawn: c, ..empty6.clone() }), ..Default::default() };
        out.push(Update { attrs, ..Default::default() });
    }
    out
}

/// The path attributes of a route on this session (without NLRI).
fn path_attrs(a: &RouteAttrs, v6: bool, cx: &PeerCtx) -> Attrs {
    let mut communities = Vec::new();
    let mut large = Vec::new();
    for c in &a.communities {
        match *c {
            Community::Standard(hi, lo) => communities.push((u32::from(hi) << 16) | u32::from(lo)),
            Community::Large(x, y, z) => large.push((x, y, z)),
        }
    }
    let next_hop_v4 = match a.next_hop {
        Some(IpAddr::V4(n)) => Some(n),
        _ => cx.next_hop_v4,
    };
    let next_hop_v6 = match a.next_hop {
        Some(IpAddr::V6(n)) => Some(n),
        _ => cx.next_hop_v6,
    };
    Attrs {
        origin: Some(0),
        // RFC 4271 §5.1.2: our AS is prepended on eBGP; an iBGP path is empty.
        as_path: Some(if cx.ibgp {
            Vec::new()
        } else {
            vec![AsSegment { kind: AS_SEQUENCE, asns: vec![cx.local_as] }]
        }),
        next_hop: if v6 { None } else { next_hop_v4 },
        local_pref: cx.ibgp.then(|| a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
        communities,
        large_communities: large,
        mp_reach: if v6 {
            next_hop_v6.map(|nh| MpReach {
                afi: AFI_IPV6,
                safi: SAFI_UNICAST,
                next_hops: vec![IpAddr::V6(nh)],
                nlri: Vec::new(),
            })
        } else {
            None
        },
        ..Default::default()
    }
}

fn announcements(routes: &[(IpNet, u32)], table: &Routes, cx: &PeerCtx) -> Vec<Update> {
    // Group by (family, attributes as encoded on this session) in a deterministic order:
    // two sets that differ only where this session does not look (LOCAL_PREF on eBGP, a
    // next hop equal to the local address) go in the same UPDATEs. Each set of the table is
    // encoded once per family.
    let mut keys: HashMap<(bool, u32), (bool, Vec<u8>)> = HashMap::new();
    let mut groups: BTreeMap<(bool, Vec<u8>), (Attrs, Vec<IpNet>)> = BTreeMap::new();
    for &(p, a) in routes {
        let v6 = !is_v4(&p);
        let key = keys
            .entry((v6, a))
            .or_insert_with(|| {
                let attrs = path_attrs(&table.attrs()[a as usize], v6, cx);
                let mut key = BytesMut::new();
                attrs.encode(&mut key, true);
                let key = (v6, key.to_vec());
                groups.entry(key.clone()).or_insert_with(|| (attrs, Vec::new()));
                key
            })
            .clone();
        if let Some(g) = groups.get_mut(&key) {
            g.1.push(p);
        }
    }
    let mut out = Vec::new();
    for ((v6, _), (attrs, prefixes)) in groups {
        // `diff` passes only routes whose attributes leave room for a prefix (see `room`).
        let base = encoded_len(&Update { attrs: attrs.clone(), ..Default::default() }, cx);
        let room = cx.max_len.saturating_sub(base + if v6 { 2 } else { 0 });
        for c in chunks(&prefixes, room) {
            let mut u = Update { attrs: attrs.clone(), ..Default::default() };
            if v6 {
                if let Some(m) = u.attrs.mp_reach.as_mut() {
                    m.nlri = c;
                }
            } else {
                u.nlri = c.into_iter().filter_map(|p| if let IpNet::V4(v) = p { Some(v) } else { None }).collect();
            }
            out.push(u);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DecodeCx, Message};
    use std::collections::BTreeSet;

    fn cx(ibgp: bool) -> PeerCtx {
        PeerCtx {
            local_as: 64512,
            ibgp,
            four_octet_as: true,
            next_hop_v4: Some("192.0.2.1".parse().unwrap()),
            next_hop_v6: Some("2001:db8::1".parse().unwrap()),
            max_len: 4096,
            ipv4: true,
            ipv6: true,
        }
    }

    fn routes(n: u32, v6: bool, attrs: &RouteAttrs) -> BTreeMap<IpNet, RouteAttrs> {
        (0..n)
            .map(|i| {
                let p: IpNet = if v6 {
                    format!("2001:db8:100::{:x}/128", i + 1).parse().unwrap()
                } else {
                    IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
                };
                (p, attrs.clone())
            })
            .collect()
    }

    fn t(routes: &BTreeMap<IpNet, RouteAttrs>) -> Routes {
        Routes::from(routes.clone())
    }

    fn decode_all(updates: &[Update], c: &PeerCtx) -> Vec<Update> {
        updates
            .iter()
            .map(|u| {
                let mut b = BytesMut::new();
                u.encode(&mut b, c.four_octet_as);
                assert!(b.len() <= c.max_len, "{} octets", b.len());
                match Message::decode(
                    b.freeze(),
                    &DecodeCx { four_octet_as: true, ibgp: c.ibgp, extended_message: false },
                ) {
                    Ok(Message::Update(u)) => u,
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn many_routes_sharing_attributes_are_packed_to_the_size_limit() {
        let c = cx(false);
        let desired = routes(10_000, false, &RouteAttrs::default());
        let ups = AdjRibOut::default().diff(&t(&desired), &c);
        // 5 octets per /32; about 810 per 4096-octet message.
        assert_eq!(ups.len(), 10_000usize.div_ceil((4096 - 48 + 5) / 5).max(13));
        let back = decode_all(&ups, &c);
        let n: usize = back.iter().map(|u| u.nlri.len()).sum();
        assert_eq!(n, 10_000);
        assert!(back.iter().all(|u| u.attrs.as_path == Some(vec![AsSegment { kind: AS_SEQUENCE, asns: vec![64512] }])));
        let v6 = AdjRibOut::default().diff(&t(&routes(1000, true, &RouteAttrs::default())), &c);
        let back6 = decode_all(&v6, &c);
        assert_eq!(back6.iter().map(|u| u.attrs.mp_reach.as_ref().unwrap().nlri.len()).sum::<usize>(), 1000);
        assert!(v6.len() <= 5, "{} UPDATEs for 1000 /128s", v6.len());
    }

    #[test]
    fn only_differences_are_sent() {
        let c = cx(true);
        let mut rib = AdjRibOut::default();
        let mut desired = routes(3, false, &RouteAttrs::default());
        assert_eq!(rib.diff(&t(&desired), &c).len(), 1);
        assert!(rib.diff(&t(&desired), &c).is_empty(), "nothing changed, nothing sent");
        let gone = *desired.keys().next().unwrap();
        desired.remove(&gone);
        let ups = rib.diff(&t(&desired), &c);
        assert_eq!(ups.len(), 1);
        assert_eq!(
            ups[0].withdrawn,
            vec![match gone {
                IpNet::V4(v) => v,
                _ => unreachable!(),
            }]
        );
        let p = *desired.keys().next().unwrap();
        desired.insert(p, RouteAttrs { local_pref: Some(300), ..Default::default() });
        let ups = decode_all(&rib.diff(&t(&desired), &c), &c);
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].attrs.local_pref, Some(300));
        assert_eq!(ups[0].nlri.len(), 1, "only the changed route");
    }

    #[test]
    fn ibgp_carries_local_pref_and_an_empty_path_ebgp_neither() {
        let attrs = RouteAttrs {
            local_pref: None,
            communities: BTreeSet::from([Community::Standard(65535, 65281), Community::Large(64512, 1, 2)]),
            next_hop: None,
        };
        let i = decode_all(&AdjRibOut::default().diff(&t(&routes(1, false, &attrs)), &cx(true)), &cx(true));
        assert_eq!(i[0].attrs.local_pref, Some(DEFAULT_LOCAL_PREF));
        assert_eq!(i[0].attrs.as_path, Some(vec![]));
        assert_eq!(i[0].attrs.communities, vec![0xffff_ff01]);
        assert_eq!(i[0].attrs.large_communities, vec![(64512, 1, 2)]);
        let e = decode_all(&AdjRibOut::default().diff(&t(&routes(1, false, &attrs)), &cx(false)), &cx(false));
        assert_eq!(e[0].attrs.local_pref, None);
        assert_eq!(e[0].attrs.next_hop, Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn withdrawals_are_packed_too_and_ipv6_uses_mp_unreach() {
        let c = cx(false);
        let mut rib = AdjRibOut::default();
        rib.diff(&t(&routes(2000, false, &RouteAttrs::default())), &c);
        let ups = rib.diff(&t(&BTreeMap::new()), &c);
        assert_eq!(ups.len(), 3);
        assert_eq!(ups.iter().map(|u| u.withdrawn.len()).sum::<usize>(), 2000);
        let mut rib6 = AdjRibOut::default();
        rib6.diff(&t(&routes(10, true, &RouteAttrs::default())), &c);
        let w = decode_all(&rib6.diff(&t(&BTreeMap::new()), &c), &c);
        assert_eq!(w[0].attrs.mp_unreach.as_ref().unwrap().withdrawn.len(), 10);
    }

    #[test]
    fn routes_of_families_not_negotiated_are_never_sent() {
        let c = PeerCtx { ipv6: false, ..cx(false) };
        let mut rib = AdjRibOut::default();
        let mut both = routes(2, true, &RouteAttrs::default());
        both.extend(routes(2, false, &RouteAttrs::default()));
        let ups = decode_all(&rib.diff(&t(&both), &c), &c);
        assert!(ups.iter().all(|u| u.attrs.mp_reach.is_none() && u.attrs.mp_unreach.is_none()));
        assert_eq!(rib.sent().len(), 2);
    }

    #[test]
    fn routes_without_a_next_hop_of_their_family_are_held_back() {
        let c = PeerCtx { next_hop_v6: None, ..cx(false) };
        let mut rib = AdjRibOut::default();
        let ups = rib.diff(&t(&routes(2, true, &RouteAttrs::default())), &c);
        assert!(ups.is_empty());
        assert_eq!(rib.sent().len(), 0);
    }

    #[test]
    fn sets_that_differ_only_where_the_session_does_not_look_share_updates() {
        // LOCAL_PREF is not sent on eBGP, and a next hop equal to the local address is the
        // default one: all three sets encode alike on this session.
        let c = cx(false);
        let mut desired = routes(3, false, &RouteAttrs::default());
        let mut keys = desired.keys().copied();
        let (a, b) = (keys.next().unwrap(), keys.next().unwrap());
        desired.insert(a, RouteAttrs { local_pref: Some(300), ..Default::default() });
        desired.insert(b, RouteAttrs { next_hop: c.next_hop_v4.map(IpAddr::V4), ..Default::default() });
        let table = t(&desired);
        assert_eq!(table.attrs().len(), 3);
        let ups = decode_all(&AdjRibOut::default().diff(&table, &c), &c);
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].nlri.len(), 3);
        // On iBGP LOCAL_PREF is sent: the route with 300 goes apart.
        let i = decode_all(&AdjRibOut::default().diff(&table, &cx(true)), &cx(true));
        assert_eq!(i.len(), 2);
        assert_eq!(i.iter().map(|u| u.nlri.len()).sum::<usize>(), 3);
    }

    #[test]
    fn a_table_the_session_carries_whole_is_shared_not_copied() {
        let c = cx(false);
        let table = t(&routes(5, false, &RouteAttrs::default()));
        let mut rib = AdjRibOut::default();
        rib.diff(&table, &c);
        assert!(rib.sent().ptr_eq(&table), "the sent table is the desired one");
        assert!(rib.diff(&table, &c).is_empty());
        let v4_only = PeerCtx { ipv6: false, ..c };
        let mut both = routes(2, true, &RouteAttrs::default());
        both.extend(routes(2, false, &RouteAttrs::default()));
        let both = t(&both);
        let mut rib = AdjRibOut::default();
        rib.diff(&both, &v4_only);
        assert_eq!(rib.sent().len(), 2, "only what the session carries counts as sent");
        assert!(!rib.sent().ptr_eq(&both));
    }

    #[test]
    fn routes_whose_attributes_cannot_fit_in_a_message_are_neither_sent_nor_counted() {
        let c = cx(false);
        // 1,100 communities: 4,400 octets of attribute, more than a 4,096-octet message.
        let huge = RouteAttrs {
            communities: (0..1100u16).map(|i| Community::Standard(64512, i)).collect(),
            ..Default::default()
        };
        let mut desired = routes(2, false, &RouteAttrs::default());
        let big: IpNet = "10.1.0.1/32".parse().unwrap();
        desired.insert(big, huge);
        let mut rib = AdjRibOut::default();
        let ups = decode_all(&rib.diff(&t(&desired), &c), &c);
        assert_eq!(ups.iter().map(|u| u.nlri.len()).sum::<usize>(), 2, "only the two that fit");
        assert_eq!(rib.sent().len(), 2, "the one that cannot be sent is not counted as sent");
        assert!(rib.diff(&t(&desired), &c).is_empty(), "and it is not retried in vain");
        // With extended messages it fits.
        let ext = PeerCtx { max_len: 65535, ..c };
        let ups = rib.diff(&t(&desired), &ext);
        assert_eq!(ups.len(), 1);
        assert_eq!(rib.sent().len(), 3);
    }

    #[test]
    fn end_of_rib_markers() {
        let eor = decode_all(&end_of_rib(&cx(false)), &cx(false));
        assert_eq!(eor[0], Update::default());
        assert_eq!(eor[1].attrs.mp_unreach.as_ref().map(|m| (m.afi, m.withdrawn.len())), Some((AFI_IPV6, 0)));
        let v4_only = PeerCtx { ipv6: false, ..cx(false) };
        assert_eq!(end_of_rib(&v4_only), vec![Update::default()], "no marker for a family the peer did not announce");
    }
}
