//! Responder behaviour, one test per rule, on frames as they come off the wire.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::*;
use crate::wire::{ndisc, parse_frame};

const OURS: MacAddr = MacAddr(2, 0, 0, 0, 0, 0xaa);
const CLIENT: MacAddr = MacAddr(2, 0, 0, 0, 0, 1);

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn responder() -> Responder {
    let mut r = Responder::new(OURS, 0);
    r.set_ips([IpAddr::V4(v4("192.0.2.10")), IpAddr::V6(v6("2001:db8::10"))].into());
    r
}

fn arp_request(spa: &str, tpa: &str) -> Vec<u8> {
    let arp = ArpRepr {
        operation: ArpOp::Request,
        source_hardware_addr: CLIENT,
        source_protocol_addr: v4(spa),
        target_hardware_addr: MacAddr::zero(),
        target_protocol_addr: v4(tpa),
    };
    EthernetRepr { src: CLIENT, dst: MacAddr::broadcast(), ethertype: ETHERTYPE_ARP }.frame(&arp.to_bytes())
}

fn ns(src: &str, dst: Ipv6Addr, target: &str, lladdr: Option<MacAddr>, hop_limit: u8) -> Vec<u8> {
    let ip = Ipv6Repr { src: v6(src), dst, hop_limit };
    let nd = NdiscRepr::NeighborSolicit { target: v6(target), lladdr };
    let eth_dst = if dst.is_multicast() { ndisc::multicast_mac(dst) } else { OURS };
    EthernetRepr { src: CLIENT, dst: eth_dst, ethertype: ETHERTYPE_IPV6 }.frame(&ndisc::ipv6_packet(&ip, &nd))
}

/// Feeds raw bytes through the parser and the responder, and parses the answer back.
fn answer(r: &mut Responder, bytes: &[u8]) -> Option<Frame> {
    let frame = parse_frame(bytes).ok()?;
    let out = r.on_frame(Instant::now(), &frame)?;
    Some(parse_frame(&out.to_bytes()).expect("our own frames parse"))
}

#[test]
fn arp_request_for_an_owned_ip_gets_our_mac() {
    let got = answer(&mut responder(), &arp_request("192.0.2.1", "192.0.2.10")).unwrap();
    let Frame::Arp(eth, arp) = got else { panic!("{got:?}") };
    assert_eq!((eth.src, eth.dst), (OURS, CLIENT));
    assert_eq!(arp.operation, ArpOp::Reply);
    assert_eq!((arp.source_hardware_addr, arp.source_protocol_addr), (OURS, v4("192.0.2.10")));
    assert_eq!((arp.target_hardware_addr, arp.target_protocol_addr), (CLIENT, v4("192.0.2.1")));
}

#[test]
fn arp_requests_for_other_ips_replies_and_announcements_are_ignored() {
    let mut r = responder();
    assert!(answer(&mut r, &arp_request("192.0.2.1", "192.0.2.11")).is_none());
    assert!(answer(&mut r, &arp_request("192.0.2.3", "192.0.2.3")).is_none(), "someone else's announcement");
    let mut reply = arp_request("192.0.2.1", "192.0.2.10");
    reply[21] = 2;
    assert!(answer(&mut r, &reply).is_none());
    r.set_ips(Default::default());
    assert!(answer(&mut r, &arp_request("192.0.2.1", "192.0.2.10")).is_none(), "an address given up is not answered");
}

#[test]
fn a_conflicting_claim_is_defended_once_per_interval() {
    let mut r = responder();
    let claim = parse_frame(&arp_request("192.0.2.10", "192.0.2.10")).unwrap();
    let t0 = Instant::now();
    let Some(defense) = r.on_frame(t0, &claim) else { panic!("not defended") };
    let Frame::Arp(eth, arp) = parse_frame(&defense.to_bytes()).unwrap() else { panic!() };
    assert_eq!(
        (eth.dst, arp.source_hardware_addr, arp.source_protocol_addr),
        (MacAddr::broadcast(), OURS, v4("192.0.2.10"))
    );
    assert!(r.on_frame(t0 + Duration::from_secs(3), &claim).is_none(), "at most once per 10 s (RFC 5227 §2.4)");
    assert!(r.on_frame(t0 + Duration::from_secs(11), &claim).is_some());
}

#[test]
fn arp_probe_is_answered_to_defend_the_address() {
    let got = answer(&mut responder(), &arp_request("0.0.0.0", "192.0.2.10")).unwrap();
    let Frame::Arp(_, arp) = got else { panic!() };
    assert_eq!((arp.target_hardware_addr, arp.target_protocol_addr), (CLIENT, v4("0.0.0.0")));
}

#[test]
fn frames_from_our_own_mac_are_ignored() {
    let mut own = arp_request("192.0.2.1", "192.0.2.10");
    own[6..12].copy_from_slice(&OURS.octets());
    assert!(answer(&mut responder(), &own).is_none());
}

#[test]
fn multicast_ns_gets_a_solicited_override_advert_with_our_mac() {
    let bytes = ns("2001:db8::1", ndisc::solicited_node(v6("2001:db8::10")), "2001:db8::10", Some(CLIENT), 255);
    let got = answer(&mut responder(), &bytes).unwrap();
    let Frame::Ndisc(eth, ip, NdiscRepr::NeighborAdvert { flags: f, target, lladdr }) = got else { panic!("{got:?}") };
    assert_eq!((eth.src, eth.dst), (OURS, CLIENT));
    assert_eq!((ip.src, ip.dst, ip.hop_limit), (v6("2001:db8::10"), v6("2001:db8::1"), 255));
    assert_eq!(f, flags::SOLICITED | flags::OVERRIDE);
    assert_eq!((target, lladdr), (v6("2001:db8::10"), Some(OURS)));
}

#[test]
fn unicast_nud_probe_without_source_lladdr_is_answered_to_the_frame_source() {
    let bytes = ns("2001:db8::1", v6("2001:db8::10"), "2001:db8::10", None, 255);
    let Some(Frame::Ndisc(eth, ip, NdiscRepr::NeighborAdvert { flags: f, .. })) = answer(&mut responder(), &bytes)
    else {
        panic!("unicast NUD probe not answered")
    };
    assert_eq!(eth.dst, CLIENT);
    assert_eq!(ip.dst, v6("2001:db8::1"));
    assert_eq!(f, flags::SOLICITED | flags::OVERRIDE);
}

#[test]
fn multicast_ns_from_a_unicast_source_without_source_lladdr_is_dropped() {
    let bytes = ns("2001:db8::1", ndisc::solicited_node(v6("2001:db8::10")), "2001:db8::10", None, 255);
    assert!(answer(&mut responder(), &bytes).is_none());
}

#[test]
fn ns_with_hop_limit_below_255_is_dropped() {
    let bytes = ns("2001:db8::1", ndisc::solicited_node(v6("2001:db8::10")), "2001:db8::10", Some(CLIENT), 254);
    assert!(answer(&mut responder(), &bytes).is_none());
}

#[test]
fn ns_to_another_multicast_group_is_dropped() {
    let bytes = ns("2001:db8::1", ndisc::ALL_NODES, "2001:db8::10", Some(CLIENT), 255);
    assert!(answer(&mut responder(), &bytes).is_none());
}

#[test]
fn dad_probe_for_an_owned_ip_is_defended_to_all_nodes_without_solicited() {
    let bytes = ns("::", ndisc::solicited_node(v6("2001:db8::10")), "2001:db8::10", None, 255);
    let got = answer(&mut responder(), &bytes).unwrap();
    let Frame::Ndisc(eth, ip, NdiscRepr::NeighborAdvert { flags: f, .. }) = got else { panic!() };
    assert_eq!(eth.dst, MacAddr(0x33, 0x33, 0, 0, 0, 1));
    assert_eq!(ip.dst, ndisc::ALL_NODES);
    assert_eq!(f, flags::OVERRIDE, "Solicited is clear (RFC 4861 §7.2.4)");
    let with_option = ns("::", ndisc::solicited_node(v6("2001:db8::10")), "2001:db8::10", Some(CLIENT), 255);
    assert!(answer(&mut responder(), &with_option).is_none(), "a DAD probe never carries a source lladdr");
}

#[test]
fn ns_for_an_address_we_do_not_own_is_ignored() {
    let bytes = ns("2001:db8::1", ndisc::solicited_node(v6("2001:db8::11")), "2001:db8::11", Some(CLIENT), 255);
    assert!(answer(&mut responder(), &bytes).is_none());
}

#[test]
fn announcements_are_gratuitous_arp_in_both_forms_and_unsolicited_na() {
    let r = responder();
    let arps = r.announcements(IpAddr::V4(v4("192.0.2.10")));
    assert_eq!(arps.len(), 2);
    for (o, op) in arps.iter().zip([ArpOp::Request, ArpOp::Reply]) {
        let Frame::Arp(eth, arp) = parse_frame(&o.to_bytes()).unwrap() else { panic!() };
        assert_eq!(eth.dst, MacAddr::broadcast());
        assert_eq!(arp.operation, op);
        assert_eq!(arp.source_protocol_addr, arp.target_protocol_addr, "sender IP = target IP");
        assert_eq!(arp.source_hardware_addr, OURS);
    }
    let na = r.announcements(IpAddr::V6(v6("2001:db8::10")));
    let Frame::Ndisc(eth, ip, NdiscRepr::NeighborAdvert { flags: f, lladdr, .. }) =
        parse_frame(&na[0].to_bytes()).unwrap()
    else {
        panic!()
    };
    assert_eq!((eth.dst, ip.dst, ip.hop_limit), (MacAddr(0x33, 0x33, 0, 0, 0, 1), ndisc::ALL_NODES, 255));
    assert_eq!((f, lladdr), (flags::OVERRIDE, Some(OURS)));
}

#[test]
fn replies_are_rate_bounded() {
    let mut r = Responder::new(OURS, 10);
    r.set_ips([IpAddr::V4(v4("192.0.2.10"))].into());
    let frame = parse_frame(&arp_request("192.0.2.1", "192.0.2.10")).unwrap();
    let t0 = Instant::now();
    let sent = (0..100).filter(|_| r.on_frame(t0, &frame).is_some()).count();
    assert_eq!(sent, 10, "one second's worth");
    assert_eq!(r.limited, 90);
    assert!(r.on_frame(t0 + Duration::from_millis(200), &frame).is_some(), "tokens come back over time");
}

#[test]
fn garbage_is_never_answered() {
    let mut r = responder();
    for len in 0..80 {
        for fill in [0u8, 0xff, 0x86, 0x08] {
            let mut bytes = vec![fill; len];
            if len > 13 {
                bytes[12] = 0x08;
                bytes[13] = 0x06;
            }
            assert!(answer(&mut r, &bytes).is_none());
        }
    }
}
