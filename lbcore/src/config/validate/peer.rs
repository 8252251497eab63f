//! Validation of `BGPPeer` objects, one helper per group of fields.

use std::net::IpAddr;
use std::time::Duration;

use super::{At, Cx};
use crate::config::load::Loaded;
use crate::config::raw::{self, Object};
use crate::config::{BfdProfile, BgpPeer, Password, PeerAddress, PeerAsn};

/// Hold, keepalive and connect times.
struct Timers {
    hold: Option<Duration>,
    keepalive: Option<Duration>,
    connect: Option<Duration>,
}

impl Cx {
    pub(super) fn peers(&mut self, raw: &[Loaded<Object<raw::BgpPeerSpec>>], bfd: &[BfdProfile]) -> Vec<BgpPeer> {
        let mut out = Vec::new();
        for (at, o) in self.unique_objects(raw, "BGPPeer") {
            let errors_before = self.errors.len();
            let peer = self.peer(at, &o.spec, bfd);
            if self.errors.len() == errors_before {
                out.push(peer);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn peer(&mut self, at: At<'_>, s: &raw::BgpPeerSpec, bfd: &[BfdProfile]) -> BgpPeer {
        let (my_asn, peer_asn) = self.asns(at, s);
        let address = self.peer_address(at, s);
        let port = match s.peer_port {
            None => 179,
            Some(p) if (1..=16384).contains(&p) => p as u16,
            Some(p) => {
                self.err(at, "spec.peerPort", p, "must be between 1 and 16384");
                179
            }
        };
        let source_address = self.ip(at, "spec.sourceAddress", &s.source_address);
        let router_id = match self.ip(at, "spec.routerID", &s.router_id) {
            Some(IpAddr::V4(a)) => Some(a),
            Some(IpAddr::V6(a)) => {
                self.err(at, "spec.routerID", a, "a router ID is an IPv4 address");
                None
            }
            None => None,
        };
        let timers = self.timers(at, s);
        let bfd_profile = s.bfd_profile.clone().filter(|b| !b.is_empty());
        if let Some(b) = &bfd_profile {
            if !bfd.iter().any(|p| &p.name == b) {
                self.warn(at, "spec.bfdProfile", b, "no BFDProfile of this name in the loaded files");
            }
        }
        BgpPeer {
            name: at.name.to_string(),
            my_asn,
            peer_asn,
            address,
            port,
            source_address,
            router_id,
            hold_time: timers.hold,
            keepalive_time: timers.keepalive,
            connect_time: timers.connect,
            node_selectors: self.selectors(at, "spec.nodeSelectors", &s.node_selectors),
            password: self.password(at, s),
            bfd_profile,
            graceful_restart: s.enable_graceful_restart,
            ebgp_multi_hop: s.ebgp_multi_hop,
            vrf: s.vrf.clone().filter(|v| !v.is_empty()),
            disable_mp: s.disable_mp,
            dual_stack_address_family: s.dual_stack_address_family,
        }
    }

    /// `myASN`, and `peerASN` or `dynamicASN`; `ebgpMultiHop` only on eBGP.
    fn asns(&mut self, at: At<'_>, s: &raw::BgpPeerSpec) -> (u32, PeerAsn) {
        let my_asn = s.my_asn.unwrap_or(0);
        if my_asn == 0 {
            self.err(at, "spec.myASN", s.my_asn.map(|a| a.to_string()).unwrap_or_default(), "required, and not 0");
        }
        let peer_asn = match (s.peer_asn.filter(|&a| a != 0), s.dynamic_asn.as_deref().filter(|d| !d.is_empty())) {
            (Some(_), Some(d)) => {
                self.err(at, "spec.dynamicASN", d, "set either peerASN or dynamicASN, not both");
                PeerAsn::External
            }
            (Some(a), None) => PeerAsn::Fixed(a),
            (None, Some("internal")) => PeerAsn::Internal,
            (None, Some("external")) => PeerAsn::External,
            (None, Some(d)) => {
                self.err(at, "spec.dynamicASN", d, "must be internal or external");
                PeerAsn::External
            }
            (None, None) => {
                self.err(at, "spec.peerASN", "", "required (or set dynamicASN: internal|external)");
                PeerAsn::External
            }
        };
        let ibgp = matches!(peer_asn, PeerAsn::Fixed(a) if a == my_asn) || peer_asn == PeerAsn::Internal;
        if s.ebgp_multi_hop && ibgp {
            let msg = "eBGP multi-hop makes no sense on an iBGP session (myASN = peerASN)";
            self.err(at, "spec.ebgpMultiHop", "true", msg);
        }
        (my_asn, peer_asn)
    }

    /// `peerAddress` or `interface` (BGP unnumbered), not both.
    fn peer_address(&mut self, at: At<'_>, s: &raw::BgpPeerSpec) -> PeerAddress {
        let ip = self.ip(at, "spec.peerAddress", &s.peer_address);
        match (ip, s.interface.as_deref().filter(|i| !i.is_empty())) {
            (Some(_), Some(i)) => {
                self.err(at, "spec.interface", i, "set either peerAddress or interface, not both");
                PeerAddress::Interface(i.to_string())
            }
            (Some(ip), None) => PeerAddress::Ip(ip),
            (None, Some(i)) => PeerAddress::Interface(i.to_string()),
            (None, None) => {
                if s.peer_address.as_deref().unwrap_or_default().is_empty() {
                    self.err(at, "spec.peerAddress", "", "required (or set interface for BGP unnumbered)");
                }
                PeerAddress::Interface(String::new())
            }
        }
    }

    /// Hold time 0 or at least 3 s (RFC 4271 §4.2), keepalive not above hold, connect time
    /// 1–65535 s. With only one of hold and keepalive set, the other follows from it
    /// (hold = 3 × keepalive, keepalive = hold / 3), so there is nothing to compare.
    fn timers(&mut self, at: At<'_>, s: &raw::BgpPeerSpec) -> Timers {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let hold = self.duration(at, "spec.holdTime", &s.hold_time);
        let keepalive = self.duration(at, "spec.keepaliveTime", &s.keepalive_time);
        let connect = self.duration(at, "spec.connectTime", &s.connect_time);
        if hold.is_some_and(|h| h != Duration::ZERO && h < Duration::from_secs(3)) {
            self.err(at, "spec.holdTime", text(&s.hold_time), "must be 0 or at least 3s (RFC 4271 §4.2)");
        }
        if let (Some(k), Some(h)) = (keepalive, hold) {
            if k > h {
                let msg = format!("keepaliveTime must not exceed holdTime ({})", text(&s.hold_time));
                self.err(at, "spec.keepaliveTime", text(&s.keepalive_time), msg);
            }
        }
        if connect.is_some_and(|c| !(Duration::from_secs(1)..=Duration::from_secs(65535)).contains(&c)) {
            self.err(at, "spec.connectTime", text(&s.connect_time), "must be between 1s and 65535s");
        }
        Timers { hold, keepalive, connect }
    }

    /// `password` or `passwordSecret`, not both. `passwordSecret: {}` (as MetalLB's
    /// configmaptocrs writes it) means none.
    fn password(&mut self, at: At<'_>, s: &raw::BgpPeerSpec) -> Option<Password> {
        match (s.password.as_deref().filter(|p| !p.is_empty()), &s.password_secret) {
            (Some(_), Some(_)) => {
                self.err(at, "spec.passwordSecret", "", "set either password or passwordSecret, not both");
                None
            }
            // The kernel takes TCP MD5 (RFC 2385) keys of at most 80 octets: a longer one
            // could only give a session without authentication, or none.
            (Some(p), None) if p.len() > 80 => {
                let msg = format!("{} octets: a TCP MD5 key is at most 80 octets", p.len());
                self.err(at, "spec.password", "(hidden)", &msg);
                None
            }
            (Some(p), None) => Some(Password::Inline(p.to_string())),
            (None, Some(sec)) => match (sec.name.as_deref().filter(|n| !n.is_empty()), sec.namespace.as_deref()) {
                (Some(n), ns) => Some(Password::Secret { name: n.to_string(), namespace: ns.map(str::to_string) }),
                (None, None) => None,
                (None, Some(_)) => {
                    self.err(at, "spec.passwordSecret.name", "", "required when passwordSecret is set");
                    None
                }
            },
            (None, None) => None,
        }
    }
}
