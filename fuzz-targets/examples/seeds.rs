//! Writes the seed corpora under `fuzz/corpus/TARGET/`: well-formed messages as lb and common
//! routers send them, every malformed-BGP vector of the project's robustness catalogue,
//! ARP/NDP frames, pool entries, and the configuration files of the repository.
//!
//!     cargo run -p fuzz-targets --example seeds
//!
//! Files are named by content, so running it again adds nothing twice.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use announcer_bgp::wire::capability::GrFamily;
use announcer_bgp::wire::update::{AsSegment, MpReach, MpUnreach, AS_SEQUENCE};
use announcer_bgp::wire::{Attrs, Capability, Message, Notification, Open, RouteRefresh, Update};
use bytes::BytesMut;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    // FNV-1a of the content: stable names, no duplicates.
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    std::fs::write(dir.join(format!("{name}-{h:016x}")), bytes).expect("seed");
}

fn encoded(m: &Message, four: bool) -> Vec<u8> {
    let mut b = BytesMut::new();
    m.encode(&mut b, four);
    b.to_vec()
}

/// A raw message: marker, length, type, body.
fn raw(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    v.push(kind);
    v.extend_from_slice(body);
    v
}

fn stream(flags: u8, chunk: u8, msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![flags, chunk];
    for m in msgs {
        v.extend_from_slice(m);
    }
    v
}

fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, code];
    if flags & 0x10 != 0 {
        v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        v.push(value.len() as u8);
    }
    v.extend_from_slice(value);
    v
}

/// An UPDATE body from withdrawn bytes, attribute bytes and NLRI bytes.
fn update_body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = (withdrawn.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(withdrawn);
    v.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    v.extend_from_slice(attrs);
    v.extend_from_slice(nlri);
    v
}

fn base_attrs_2octet() -> Vec<u8> {
    let mut a = attr(0x40, 1, &[0]);
    a.extend(attr(0x40, 2, &[2, 1, 0xfd, 0xe8]));
    a.extend(attr(0x40, 3, &[192, 0, 2, 1]));
    a
}

fn open_lb() -> Open {
    Open {
        version: 4,
        my_as: 64512,
        hold_time: 90,
        bgp_id: u32::from(Ipv4Addr::new(10, 0, 0, 1)),
        capabilities: vec![
            Capability::Multiprotocol { afi: 1, safi: 1 },
            Capability::Multiprotocol { afi: 2, safi: 1 },
            Capability::RouteRefresh,
            Capability::GracefulRestart {
                restarting: false,
                notification: false,
                time: 120,
                families: vec![GrFamily { afi: 1, safi: 1, forwarding: true }],
            },
            Capability::FourOctetAs(4_200_000_000),
            Capability::ExtendedMessage,
        ],
    }
}

/// An OPEN shaped like BIRD 2's: its capabilities include enhanced route refresh (70),
/// long-lived graceful restart (71) and the hostname (73), which lb keeps as unknown.
fn open_router() -> Open {
    Open {
        version: 4,
        my_as: 23456,
        hold_time: 240,
        bgp_id: u32::from(Ipv4Addr::new(10, 0, 0, 2)),
        capabilities: vec![
            Capability::Multiprotocol { afi: 1, safi: 1 },
            Capability::RouteRefresh,
            Capability::Unknown { code: 70, value: Default::default() },
            Capability::GracefulRestart { restarting: true, notification: true, time: 120, families: vec![] },
            Capability::FourOctetAs(65_550),
            Capability::Unknown { code: 71, value: vec![0, 1, 1, 0, 0, 0, 0].into() },
            Capability::Unknown { code: 73, value: vec![4, b'b', b'i', b'r', b'd', 0].into() },
        ],
    }
}

fn updates() -> Vec<Update> {
    let v4 = Update {
        attrs: Attrs {
            origin: Some(0),
            as_path: Some(vec![AsSegment { kind: AS_SEQUENCE, asns: vec![4_200_000_000, 64512] }]),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            med: Some(10),
            local_pref: Some(100),
            communities: vec![0xfde8_0001, 0xffff_ff01],
            large_communities: vec![(4_200_000_000, 1, 2)],
            ..Default::default()
        },
        nlri: vec!["198.51.100.7/32".parse().unwrap_or_default(), "203.0.113.0/24".parse().unwrap_or_default()],
        ..Default::default()
    };
    let v6 = Update {
        attrs: Attrs {
            origin: Some(0),
            as_path: Some(vec![AsSegment { kind: AS_SEQUENCE, asns: vec![64512] }]),
            mp_reach: Some(MpReach {
                afi: 2,
                safi: 1,
                next_hops: vec![IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))],
                nlri: vec!["2001:db8:5::7/128".parse().unwrap_or_default()],
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let withdraw = Update { withdrawn: vec!["198.51.100.7/32".parse().unwrap_or_default()], ..Default::default() };
    let withdraw6 = Update {
        attrs: Attrs {
            mp_unreach: Some(MpUnreach {
                afi: 2,
                safi: 1,
                withdrawn: vec!["2001:db8:5::7/128".parse().unwrap_or_default()],
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    vec![v4, v6, withdraw, withdraw6, Update::default()]
}

fn bgp() {
    let good: Vec<(Message, bool)> = vec![
        (Message::Open(open_lb()), true),
        (Message::Open(open_router()), true),
        (Message::Keepalive, true),
        (Message::RouteRefresh(RouteRefresh { afi: 1, safi: 1, subtype: 0 }), true),
        (Message::Notification(Notification::admin_shutdown("maintenance: back at 10:00")), true),
    ];
    let mut session: Vec<Vec<u8>> = good.iter().map(|(m, f)| encoded(m, *f)).collect();
    for u in updates() {
        for four in [true, false] {
            let bytes = encoded(&Message::Update(u.clone()), four);
            let flags = u8::from(four) | 4;
            write("bgp_update", "real", &[&[flags][..], &bytes[19..]].concat());
            if four {
                session.push(bytes);
            }
        }
    }
    for (m, _) in &good {
        let bytes = encoded(m, true);
        match m {
            Message::Open(_) => write("bgp_open", "real", &bytes[19..]),
            Message::Notification(_) => write("bgp_notification", "real", &bytes[19..]),
            _ => {}
        }
    }
    for chunk in [1, 7, 19, 255] {
        write("bgp_stream", "session", &stream(5, chunk, &session));
    }

    // The catalogue: framing.
    let mut bad_marker = encoded(&Message::Keepalive, true);
    bad_marker[3] = 0;
    write("bgp_stream", "bad-marker", &stream(1, 255, &[bad_marker]));
    for len in [0u16, 18, 4097] {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&len.to_be_bytes());
        m.push(4);
        m.resize(usize::from(len).max(19), 0);
        write("bgp_stream", &format!("length-{len}"), &stream(1, 255, &[m]));
    }
    write("bgp_stream", "keepalive-20", &stream(1, 255, &[raw(4, &[0])]));
    write("bgp_stream", "unknown-type", &stream(1, 255, &[raw(9, &[1, 2, 3])]));
    write("bgp_stream", "update-before-open", &stream(1, 255, &[raw(2, &update_body(&[], &[], &[]))]));
    // End-of-RIB, both forms (RFC 4724 §2).
    write("bgp_stream", "eor-v4", &stream(1, 255, &[raw(2, &[0, 0, 0, 0])]));
    write("bgp_stream", "eor-v6", &stream(1, 255, &[raw(2, &update_body(&[], &attr(0x80, 15, &[0, 2, 1]), &[]))]));

    // OPEN.
    let open = encoded(&Message::Open(open_lb()), true)[19..].to_vec();
    let mut v3 = open.clone();
    v3[0] = 3;
    write("bgp_open", "version-3", &v3);
    let mut as0 = open.clone();
    as0[1..3].copy_from_slice(&[0, 0]);
    write("bgp_open", "as-0", &as0);
    for hold in [1u16, 2] {
        let mut h = open.clone();
        h[3..5].copy_from_slice(&hold.to_be_bytes());
        write("bgp_open", &format!("hold-{hold}"), &h);
    }
    let head = |params: &[u8]| {
        let mut v = vec![4, 0xfc, 0x00, 0, 90, 10, 0, 0, 1, params.len() as u8];
        v.extend_from_slice(params);
        v
    };
    write("bgp_open", "capability-length-0", &head(&[2, 2, 65, 0]));
    write("bgp_open", "capability-past-parameter", &head(&[2, 4, 65, 4, 0, 0]));
    write("bgp_open", "rfc9072-truncated", &head(&[255, 255, 0]));
    write("bgp_open", "rfc9072", &head(&[255, 255, 0, 6, 2, 0, 3, 65, 1, 0]));
    write("bgp_open", "optional-parameter-length-0", &head(&[]));

    // UPDATE (context byte 0: a 2-octet session, so that AS4_PATH matters; 1: 4-octet).
    let base = base_attrs_2octet();
    let nlri = [32, 198, 51, 100, 7];
    let mut overrun = base.clone();
    overrun.extend([0x40, 5, 200, 0, 0]);
    write("bgp_update", "attribute-overruns", &[&[0][..], &update_body(&[], &overrun, &nlri)].concat());
    let mut disagree = update_body(&[], &base, &nlri);
    disagree[3] = disagree[3].wrapping_add(3);
    write("bgp_update", "lengths-disagree", &[&[0][..], &disagree].concat());
    let mp = attr(
        0x80,
        14,
        &[
            0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 128, 0x20, 1, 0xd, 0xb8, 0, 5, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
        ],
    );
    let mut dup = base.clone();
    dup.extend(mp.clone());
    dup.extend(mp);
    write("bgp_update", "duplicate-mp-reach", &[&[1][..], &update_body(&[], &dup, &[])].concat());
    write(
        "bgp_update",
        "only-unknown-transitive",
        &[&[1][..], &update_body(&[], &attr(0xc0, 99, &[1, 2, 3]), &[])].concat(),
    );
    for code in [255u8, 35, 23] {
        let mut a = base.clone();
        a.extend(attr(0xc0, code, &[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]));
        write("bgp_update", &format!("unknown-{code}"), &[&[0][..], &update_body(&[], &a, &nlri)].concat());
    }
    let mut as4 = base.clone();
    as4.extend(attr(0xc0, 17, &[2, 3, 0, 0, 0xfd, 0xe8, 0, 0, 0xfd, 0xe9, 0, 0, 0xfd, 0xea]));
    write("bgp_update", "as4-path-longer", &[&[0][..], &update_body(&[], &as4, &nlri)].concat());
    let mut empty_path = attr(0x40, 1, &[0]);
    empty_path.extend(attr(0x40, 2, &[]));
    empty_path.extend(attr(0x40, 3, &[192, 0, 2, 1]));
    write("bgp_update", "as-path-empty", &[&[1][..], &update_body(&[], &empty_path, &nlri)].concat());
    let mut long = Vec::new();
    for seg in 0..20 {
        let n = if seg < 19 { 255 } else { 5000 - 19 * 255 };
        long.extend([2u8, n as u8]);
        for i in 0..n {
            long.extend((4_200_000_000u32 + i as u32).to_be_bytes());
        }
    }
    let mut long_path = attr(0x40, 1, &[0]);
    long_path.extend(attr(0x50, 2, &long));
    long_path.extend(attr(0x40, 3, &[192, 0, 2, 1]));
    write("bgp_update", "as-path-5000", &[&[3][..], &update_body(&[], &long_path, &nlri)].concat());

    // NOTIFICATION: a shutdown communication that claims more than it has, or is not UTF-8.
    write("bgp_notification", "shutdown-overclaims", &[6, 2, 40, b'b', b'y', b'e']);
    write("bgp_notification", "shutdown-not-utf8", &[6, 2, 3, 0xff, 0xfe, 0xc0]);
    write("bgp_notification", "empty", &[]);
}

fn l2() {
    let mac = [0x02, 0, 0, 0, 0, 0x10];
    let arp = |op: u8, sender: [u8; 4], target: [u8; 4], dst: [u8; 6]| {
        let mut f = dst.to_vec();
        f.extend(mac);
        f.extend([0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
        f.extend(mac);
        f.extend(sender);
        f.extend([0; 6]);
        f.extend(target);
        f
    };
    write("l2_frame", "arp-request", &arp(1, [192, 0, 2, 9], [192, 0, 2, 1], [0xff; 6]));
    write("l2_frame", "arp-gratuitous", &arp(1, [192, 0, 2, 1], [192, 0, 2, 1], [0xff; 6]));
    write("l2_frame", "arp-probe", &arp(1, [0; 4], [192, 0, 2, 1], [0xff; 6]));
    write("l2_frame", "arp-truncated", &arp(1, [192, 0, 2, 9], [192, 0, 2, 1], [0xff; 6])[..30]);
    // Neighbor Solicitations (checksums are the fuzzer's job to get right or wrong).
    let ns = |src: [u8; 16], dst: [u8; 16], hop: u8, sllao: bool| {
        let mut f = vec![0x33, 0x33, 0xff, 0, 0, 1];
        f.extend(mac);
        f.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
        let plen: u16 = if sllao { 32 } else { 24 };
        f.extend(plen.to_be_bytes());
        f.extend([58, hop]);
        f.extend(src);
        f.extend(dst);
        f.extend([135, 0, 0, 0, 0, 0, 0, 0]);
        f.extend(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
        if sllao {
            f.extend([1, 1]);
            f.extend(mac);
        }
        f
    };
    let client = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9).octets();
    let snm = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1).octets();
    write("l2_frame", "ns", &ns(client, snm, 255, true));
    write("l2_frame", "ns-dad", &ns([0; 16], snm, 255, false));
    write("l2_frame", "ns-hop-254", &ns(client, snm, 254, true));
    write("l2_frame", "ns-no-sllao", &ns(client, snm, 255, false));
}

fn pools() {
    for s in [
        "192.0.2.0/24",
        "10.0.0.1-10.0.0.9",
        "2001:db8::/64",
        "fd00::1-fd00::ff",
        "10.0.0.5",
        "10.0.0.1/33",
        "10.0.0.1/24",
        "::/0",
        "0.0.0.0/0",
        " 10.0.0.0/8 ",
        "10.0.0.9-10.0.0.1",
        "10.0.0.1-fd00::1",
        "::ffff:10.0.0.1/128",
    ] {
        write("pool_range", "entry", s.as_bytes());
    }
}

fn configs() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![repo.join("examples/homelab-l2.yaml"), repo.join("examples/bgp-ecmp.yaml")];
    if let Ok(rd) = std::fs::read_dir(repo.join("lbcore/tests/fixtures/metallb-docs")) {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    for f in files {
        if let Ok(text) = std::fs::read(&f) {
            write("config_yaml", "repo", &text);
        }
    }
    write("config_yaml", "anchors", b"a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nd: [*c, *c, *c]\n");
}

fn main() {
    bgp();
    l2();
    pools();
    configs();
    println!("seeds written under {}", root().display());
}
