//! UPDATE encode/decode: golden bytes, round trips, RFC 7606 handling, arbitrary input.

use std::net::Ipv6Addr;

use proptest::prelude::*;

use super::*;
use crate::wire::Message;

fn cx4() -> DecodeCx {
    DecodeCx { four_octet_as: true, extended_message: false, ibgp: false }
}

fn sample() -> Update {
    Update {
        withdrawn: vec!["192.0.2.9/32".parse().unwrap()],
        attrs: Attrs {
            origin: Some(0),
            as_path: Some(vec![AsSegment { kind: AS_SEQUENCE, asns: vec![4_200_000_001] }]),
            next_hop: Some("192.0.2.1".parse().unwrap()),
            communities: vec![0xffff_ff01, (64512 << 16) | 100],
            large_communities: vec![(64512, 1, 2)],
            ..Default::default()
        },
        nlri: vec!["192.0.2.10/32".parse().unwrap(), "198.51.100.0/24".parse().unwrap()],
        withdraw_all: None,
    }
}

fn round_trip(u: &Update, four: bool, cx: &DecodeCx) -> Update {
    let mut b = BytesMut::new();
    u.encode(&mut b, four);
    match Message::decode(b.freeze(), cx).unwrap() {
        Message::Update(u) => u,
        m => panic!("{m:?}"),
    }
}

#[test]
fn golden_bytes_of_a_minimal_announcement() {
    let u = Update {
        attrs: Attrs {
            origin: Some(0),
            as_path: Some(vec![AsSegment { kind: AS_SEQUENCE, asns: vec![64512] }]),
            next_hop: Some("10.0.0.1".parse().unwrap()),
            ..Default::default()
        },
        nlri: vec!["10.1.2.3/32".parse().unwrap()],
        ..Default::default()
    };
    let mut b = BytesMut::new();
    u.encode(&mut b, true);
    let expect: Vec<u8> = [
        vec![0xff; 16],
        vec![0, 48, 2], // length 48, UPDATE
        vec![0, 0],     // no withdrawn routes
        vec![0, 20],    // 20 octets of attributes
        vec![0x40, 1, 1, 0],
        vec![0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x00],
        vec![0x40, 3, 4, 10, 0, 0, 1],
        vec![32, 10, 1, 2, 3],
    ]
    .concat();
    assert_eq!(b.to_vec(), expect);
}

#[test]
fn round_trips_with_four_octet_as() {
    assert_eq!(round_trip(&sample(), true, &cx4()), sample());
}

#[test]
fn two_octet_sessions_use_as_trans_and_as4_path() {
    let mut b = BytesMut::new();
    sample().encode(&mut b, false);
    let cx2 = DecodeCx { four_octet_as: false, ..cx4() };
    let u = match Message::decode(b.freeze(), &cx2).unwrap() {
        Message::Update(u) => u,
        m => panic!("{m:?}"),
    };
    assert_eq!(u.attrs.as_path, sample().attrs.as_path, "AS4_PATH merged back (RFC 6793 §4.2.3)");
    // The raw AS_PATH carries AS_TRANS.
    let mut b = BytesMut::new();
    sample().attrs.encode(&mut b, false);
    assert!(b.windows(2).any(|w| w == AS_TRANS.to_be_bytes()));
}

#[test]
fn confederation_segments_from_a_peer_make_the_as_path_malformed() {
    // lb is in no confederation, so every peer is outside it (RFC 5065 §5): treat as
    // withdraw (RFC 7606 §7.2). Found by fuzzing: before, such a path was kept, and merged
    // with an AS4_PATH by counting its confederation segments.
    for kind in [3u8, 4] {
        let mut u = sample();
        u.attrs.as_path = Some(vec![
            AsSegment { kind, asns: vec![64600] },
            AsSegment { kind: AS_SEQUENCE, asns: vec![4_200_000_001] },
        ]);
        for four in [true, false] {
            let cx = DecodeCx { four_octet_as: four, ..cx4() };
            assert_eq!(round_trip(&u, four, &cx).withdraw_all, Some(UpdateError::MalformedAsPath), "kind {kind}");
        }
    }
}

#[test]
fn as4_path_merge_counts_a_set_as_one() {
    let path = vec![
        AsSegment { kind: AS_SEQUENCE, asns: vec![64512, u32::from(AS_TRANS)] },
        AsSegment { kind: AS_SET, asns: vec![64513, 64514] },
    ];
    let as4 = vec![
        AsSegment { kind: AS_SEQUENCE, asns: vec![4_200_000_001] },
        AsSegment { kind: AS_SET, asns: vec![64513, 64514] },
    ];
    let merged = merge_as4(path, as4);
    assert_eq!(
        merged,
        [
            AsSegment { kind: AS_SEQUENCE, asns: vec![64512] },
            AsSegment { kind: AS_SEQUENCE, asns: vec![4_200_000_001] },
            AsSegment { kind: AS_SET, asns: vec![64513, 64514] },
        ]
    );
}

#[test]
fn ipv6_routes_go_in_mp_reach_and_mp_unreach() {
    let u = Update {
        attrs: Attrs {
            origin: Some(0),
            as_path: Some(vec![]),
            local_pref: Some(200),
            mp_reach: Some(MpReach {
                afi: AFI_IPV6,
                safi: 1,
                next_hops: vec![IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap())],
                nlri: vec!["2001:db8:100::1/128".parse().unwrap()],
            }),
            mp_unreach: Some(MpUnreach {
                afi: AFI_IPV6,
                safi: 1,
                withdrawn: vec!["2001:db8:100::2/128".parse().unwrap()],
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let ibgp = DecodeCx { ibgp: true, ..cx4() };
    assert_eq!(round_trip(&u, true, &ibgp), u);
    let ebgp = round_trip(&u, true, &cx4());
    assert_eq!(ebgp.attrs.local_pref, None, "LOCAL_PREF from an eBGP peer is discarded (RFC 7606 §7.5)");
}

#[test]
fn mp_attributes_come_first() {
    let mut b = BytesMut::new();
    let attrs = Attrs {
        origin: Some(0),
        as_path: Some(vec![]),
        mp_reach: Some(MpReach {
            afi: AFI_IPV6,
            safi: 1,
            next_hops: vec![IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap())],
            nlri: vec!["2001:db8:100::1/128".parse().unwrap()],
        }),
        ..Default::default()
    };
    attrs.encode(&mut b, true);
    assert_eq!(b[1], u8::from(AttrType::MpReachNlri), "RFC 7606 §5.1: MP_REACH_NLRI is the very first attribute");
}

#[test]
fn malformed_attributes_are_treated_as_withdraw_not_reset() {
    let mut b = BytesMut::new();
    sample().encode(&mut b, true);
    let mut bytes = b.to_vec();
    // ORIGIN value 7 (invalid): the first attribute starts at 19 + 2 + 5 (withdrawn) + 2.
    let at = 19 + 2 + 5 + 2;
    assert_eq!(&bytes[at..at + 3], &[0x40, 1, 1]);
    bytes[at + 3] = 7;
    let u = match Message::decode(Bytes::from(bytes), &cx4()).unwrap() {
        Message::Update(u) => u,
        m => panic!("{m:?}"),
    };
    assert_eq!(u.withdraw_all, Some(UpdateError::InvalidOrigin));
}

#[test]
fn missing_mandatory_attributes_withdraw() {
    let mut u = sample();
    u.attrs.next_hop = None;
    assert_eq!(round_trip(&u, true, &cx4()).withdraw_all, Some(UpdateError::MissingWellKnown(3)));
}

#[test]
fn unknown_optional_attributes_are_passed_over_and_unknown_well_known_reset() {
    let mut b = BytesMut::new();
    let at = header::start(&mut b, MessageType::Update);
    b.put_u16(0);
    let attrs = [0xc0u8, 99, 2, 1, 2, 0x40, 1, 1, 0];
    b.put_u16(attrs.len() as u16);
    b.put_slice(&attrs);
    header::finish(&mut b, at);
    assert!(matches!(Message::decode(b.clone().freeze(), &cx4()), Ok(Message::Update(_))));
    let mut wk = b.to_vec();
    wk[23] = 0x40; // the unknown attribute claims to be well-known
    let err = Message::decode(Bytes::from(wk), &cx4()).unwrap_err();
    let n = crate::wire::Notification::from(&err);
    assert_eq!((u8::from(n.code), n.subcode), (3, 2));
    assert_eq!(n.data.to_vec(), vec![0x40, 99, 2, 1, 2], "the attribute is in the data (RFC 4271 §6.3)");
}

#[test]
fn bad_prefix_lengths_reset() {
    let mut b = BytesMut::new();
    let at = header::start(&mut b, MessageType::Update);
    b.put_u16(2);
    b.put_slice(&[33, 10]);
    b.put_u16(0);
    header::finish(&mut b, at);
    assert_eq!(Message::decode(b.freeze(), &cx4()), Err(DecodeError::Update(UpdateError::InvalidNetworkField)));
}

proptest! {
    /// Any bytes after a valid header decode to a message or an error; never a panic.
    #[test]
    fn arbitrary_bodies_never_panic(kind in 1u8..6, body in proptest::collection::vec(any::<u8>(), 0..300), four in any::<bool>(), ibgp in any::<bool>()) {
        let mut b = BytesMut::new();
        let at = header::start(&mut b, MessageType::from(kind));
        b.put_slice(&body);
        header::finish(&mut b, at);
        let _ = Message::decode(b.freeze(), &DecodeCx { four_octet_as: four, extended_message: false, ibgp });
    }

    /// UPDATEs we build decode back to themselves.
    #[test]
    fn encode_decode_round_trip(n in 0usize..40, comms in proptest::collection::vec(any::<u32>(), 0..5), lp in proptest::option::of(any::<u32>())) {
        let nlri: Vec<Ipv4Net> = (0..n).map(|i| Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i as u32), 32).unwrap()).collect();
        let u = Update {
            attrs: Attrs {
                origin: Some(0),
                as_path: Some(vec![AsSegment { kind: AS_SEQUENCE, asns: vec![65001, 4_200_000_000] }]),
                next_hop: Some("192.0.2.1".parse().unwrap()),
                local_pref: lp,
                communities: comms,
                ..Default::default()
            },
            nlri,
            ..Default::default()
        };
        let cx = DecodeCx { ibgp: true, ..cx4() };
        prop_assert_eq!(round_trip(&u, true, &cx), u);
    }
}
