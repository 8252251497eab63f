//! The responder: what to answer to an ARP request or a Neighbor Solicitation, and what to
//! announce when an address is taken. Pure: no sockets, no clock (time is passed in).
//!
//! Rules (each drop is an early `return None` with its reason):
//! - ARP ([RFC 826], [RFC 5227]): answer requests for an owned IPv4 address with our MAC,
//!   including ARP probes (sender 0.0.0.0), which is how an owner defends its address;
//!   ignore replies, requests for other addresses and non-unicast senders. An ARP packet
//!   from another MAC whose *sender* is an owned address is a conflict (RFC 5227 §2.4): it
//!   is logged and the address defended with one announcement, at most every 10 seconds.
//! - NDP ([RFC 4861] §7.1.1, §7.2.3–§7.2.4): drop solicitations whose hop limit is not 255 or
//!   whose multicast destination is not the target's solicited-node group; answer an owned
//!   target with a solicited advertisement (S and O set, Target Link-Layer Address option)
//!   to the sender (never to a multicast source), including unicast NUD probes without a
//!   Source Link-Layer Address option
//!   (the Ethernet source is the sender's MAC); defend an owned address against a Duplicate
//!   Address Detection probe (source `::`) with an advertisement to all-nodes, S clear.
//! - Frames from our own MAC are ignored (a packet socket also sees what we send).
//! - Replies are bounded by a token bucket, a safety net set far above any sane rate.
//!
//! [RFC 826]: https://www.rfc-editor.org/rfc/rfc826
//! [RFC 5227]: https://www.rfc-editor.org/rfc/rfc5227
//! [RFC 4861]: https://www.rfc-editor.org/rfc/rfc4861

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::wire::arp::{ArpOp, ArpRepr};
use crate::wire::ethernet::{EthernetRepr, ETHERTYPE_ARP, ETHERTYPE_IPV6};
use crate::wire::ndisc::{self, flags, Ipv6Repr, NdiscRepr, ALL_NODES};
use crate::wire::{Frame, MacAddr};

/// A frame to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Ethernet header.
    pub eth: EthernetRepr,
    /// What it carries.
    pub body: Body,
}

/// The payload of an [`Outgoing`] frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// ARP.
    Arp(ArpRepr),
    /// NDP over IPv6.
    Ndisc(Ipv6Repr, NdiscRepr),
}

impl Outgoing {
    /// The frame's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::Arp(a) => self.eth.frame(&a.to_bytes()),
            Body::Ndisc(ip, nd) => self.eth.frame(&ndisc::ipv6_packet(ip, nd)),
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `rate` banked. Rate 0: unlimited.
#[derive(Debug, Clone)]
struct Bucket {
    rate: u32,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let cap = f64::from(self.rate);
        let elapsed = self.last.map_or(1.0, |l| now.saturating_duration_since(l).as_secs_f64());
        self.tokens = (self.tokens + elapsed * cap).min(cap);
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// RFC 5227 §2.4 (b): defend an address at most once per DEFEND_INTERVAL.
pub const DEFEND_INTERVAL: Duration = Duration::from_secs(10);

/// Answers for a set of owned addresses on one interface.
#[derive(Debug, Clone)]
pub struct Responder {
    mac: MacAddr,
    ips: BTreeSet<IpAddr>,
    bucket: Bucket,
    /// When each address was last defended against a conflicting claim.
    defended: BTreeMap<IpAddr, Instant>,
    /// Replies not sent because of the rate bound.
    pub limited: u64,
}

fn is_unicast(mac: MacAddr) -> bool {
    mac.0 & 1 == 0 && mac != MacAddr::zero()
}

impl Responder {
    /// A responder for an interface with `mac`, replying at most `rate` times a second
    /// (0: unbounded), owning nothing yet.
    pub fn new(mac: MacAddr, rate: u32) -> Self {
        Responder {
            mac,
            ips: BTreeSet::new(),
            bucket: Bucket { rate, tokens: 0.0, last: None },
            defended: BTreeMap::new(),
            limited: 0,
        }
    }

    /// Replaces the owned addresses.
    pub fn set_ips(&mut self, ips: BTreeSet<IpAddr>) {
        self.defended.retain(|ip, _| ips.contains(ip));
        self.ips = ips;
    }

    /// The owned addresses.
    pub fn ips(&self) -> &BTreeSet<IpAddr> {
        &self.ips
    }

    /// The owned address a frame asks about (an ARP request or a Neighbor Solicitation for
    /// it), if any: what counts as a request received, per address.
    pub fn asked(&self, frame: &Frame) -> Option<IpAddr> {
        let ip = match frame {
            Frame::Arp(_, arp) if arp.operation == ArpOp::Request => IpAddr::V4(arp.target_protocol_addr),
            Frame::Ndisc(_, _, NdiscRepr::NeighborSolicit { target, .. }) => IpAddr::V6(*target),
            _ => return None,
        };
        self.ips.contains(&ip).then_some(ip)
    }

    /// What to send in answer to `frame`, if anything.
    pub fn on_frame(&mut self, now: Instant, frame: &Frame) -> Option<Outgoing> {
        let eth = match frame {
            Frame::Arp(eth, _) | Frame::Ndisc(eth, _, _) => eth,
        };
        if eth.src == self.mac {
            // Our own frame (another local socket, or ours on its way out).
            return None;
        }
        let reply = match frame {
            Frame::Arp(_, arp) => match self.conflict(now, arp) {
                Some(defense) => defense,
                None => self.on_arp(arp),
            },
            Frame::Ndisc(eth, ip, nd) => self.on_ndisc(eth, ip, nd),
        }?;
        if !self.bucket.take(now) {
            self.limited += 1;
            tracing::debug!("reply rate bound reached; dropping a reply");
            return None;
        }
        Some(reply)
    }

    /// Whether `arp` claims one of our addresses from another MAC (RFC 5227 §2.4); if so,
    /// `Some` with the defense to send (one announcement, at most every [`DEFEND_INTERVAL`]).
    fn conflict(&mut self, now: Instant, arp: &ArpRepr) -> Option<Option<Outgoing>> {
        let ip = IpAddr::V4(arp.source_protocol_addr);
        if arp.source_hardware_addr == self.mac || !self.ips.contains(&ip) {
            return None;
        }
        let recently = self.defended.get(&ip).is_some_and(|t| now.saturating_duration_since(*t) < DEFEND_INTERVAL);
        if recently {
            return Some(None);
        }
        tracing::warn!(%ip, mac = %arp.source_hardware_addr, "another host claims an address we announce; defending it");
        self.defended.insert(ip, now);
        Some(self.announcements(ip).into_iter().next())
    }

    /// The answer to an ARP packet.
    pub fn on_arp(&self, arp: &ArpRepr) -> Option<Outgoing> {
        if arp.operation != ArpOp::Request {
            // Replies (gratuitous or not) and unknown operations need no answer.
            return None;
        }
        if !self.ips.contains(&IpAddr::V4(arp.target_protocol_addr)) {
            tracing::trace!(target = %arp.target_protocol_addr, "ARP request for an address we do not own");
            return None;
        }
        if !is_unicast(arp.source_hardware_addr) {
            tracing::debug!(sender = %arp.source_hardware_addr, "ARP request from a non-unicast sender");
            return None;
        }
        if arp.source_protocol_addr == arp.target_protocol_addr {
            // An announcement (gratuitous ARP), not a question.
            return None;
        }
        let reply = ArpRepr {
            operation: ArpOp::Reply,
            source_hardware_addr: self.mac,
            source_protocol_addr: arp.target_protocol_addr,
            target_hardware_addr: arp.source_hardware_addr,
            target_protocol_addr: arp.source_protocol_addr,
        };
        let eth = EthernetRepr { src: self.mac, dst: arp.source_hardware_addr, ethertype: ETHERTYPE_ARP };
        Some(Outgoing { eth, body: Body::Arp(reply) })
    }

    /// The answer to an NDP message.
    pub fn on_ndisc(&self, eth: &EthernetRepr, ip: &Ipv6Repr, nd: &NdiscRepr) -> Option<Outgoing> {
        let NdiscRepr::NeighborSolicit { target, lladdr } = *nd else {
            // Advertisements from others need no answer.
            return None;
        };
        if ip.hop_limit != 255 {
            // §7.1.1: it may have been forwarded by a router.
            tracing::debug!(%target, hop_limit = ip.hop_limit, "NS with hop limit other than 255");
            return None;
        }
        if !self.ips.contains(&IpAddr::V6(target)) {
            tracing::trace!(%target, "NS for an address we do not own");
            return None;
        }
        if ip.dst.is_multicast() && ip.dst != ndisc::solicited_node(target) {
            // §7.1.1: a multicast NS goes to the target's solicited-node group.
            tracing::debug!(%target, dst = %ip.dst, "NS to the wrong multicast group");
            return None;
        }
        if ip.src.is_multicast() {
            // §7.1.1 (RFC 4291): a source address is never multicast.
            return None;
        }
        if ip.src.is_unspecified() {
            // §7.1.1: a DAD probe has no source link-layer address and goes to the group.
            if lladdr.is_some() || !ip.dst.is_multicast() {
                tracing::debug!(%target, "malformed DAD probe");
                return None;
            }
            // §7.2.4: defend the address: advertise to all-nodes, Solicited clear.
            return Some(self.advert(target, ALL_NODES, ndisc::multicast_mac(ALL_NODES), flags::OVERRIDE));
        }
        if ip.dst.is_multicast() && lladdr.is_none() {
            // §4.3 / §7.2.2: a multicast NS from a unicast source must carry the sender's
            // link-layer address; without it there is nobody known to answer to.
            tracing::debug!(%target, "multicast NS without a source link-layer address");
            return None;
        }
        // The sender's MAC: its option, or (unicast NUD probes may omit it) the frame's source.
        let to = lladdr.unwrap_or(eth.src);
        if !is_unicast(to) {
            tracing::debug!(%target, "NS from a non-unicast link-layer address");
            return None;
        }
        Some(self.advert(target, ip.src, to, flags::SOLICITED | flags::OVERRIDE))
    }

    fn advert(&self, target: Ipv6Addr, dst: Ipv6Addr, dst_mac: MacAddr, flag_bits: u8) -> Outgoing {
        let ip = Ipv6Repr { src: target, dst, hop_limit: 255 };
        let nd = NdiscRepr::NeighborAdvert { flags: flag_bits, target, lladdr: Some(self.mac) };
        Outgoing {
            eth: EthernetRepr { src: self.mac, dst: dst_mac, ethertype: ETHERTYPE_IPV6 },
            body: Body::Ndisc(ip, nd),
        }
    }

    /// What to send when taking `ip`, so neighbours and switches update at once: gratuitous
    /// ARP in both forms (an RFC 5227 announcement request with target MAC zero, and a
    /// broadcast reply with target MAC our own, which some devices only heed), or an
    /// unsolicited NA to all-nodes with Override (§7.2.6).
    pub fn announcements(&self, ip: IpAddr) -> Vec<Outgoing> {
        match ip {
            IpAddr::V4(v4) => {
                let bcast = EthernetRepr { src: self.mac, dst: MacAddr::broadcast(), ethertype: ETHERTYPE_ARP };
                let garp = |operation, target_hardware_addr| ArpRepr {
                    operation,
                    source_hardware_addr: self.mac,
                    source_protocol_addr: v4,
                    target_hardware_addr,
                    target_protocol_addr: v4,
                };
                vec![
                    Outgoing { eth: bcast, body: Body::Arp(garp(ArpOp::Request, MacAddr::zero())) },
                    Outgoing { eth: bcast, body: Body::Arp(garp(ArpOp::Reply, self.mac)) },
                ]
            }
            IpAddr::V6(v6) => vec![self.advert(v6, ALL_NODES, ndisc::multicast_mac(ALL_NODES), flags::OVERRIDE)],
        }
    }
}

#[cfg(test)]
mod tests;
