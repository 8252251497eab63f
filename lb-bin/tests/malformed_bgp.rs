//! The malformed-BGP catalogue: a broken peer (tests/broken_peer.py, a raw TCP client) plays
//! each case against `lb run`, and lb must answer with the exact NOTIFICATION the RFCs name,
//! or keep the session where RFC 7606 says so, while its session with a real router (BIRD)
//! and its announcements there are unaffected, its memory stays bounded under a flood, and
//! it never panics.
//!
//! Needs root, python3, bird2 (installed by ./scripts/test as root).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::{eventually, prerequisites, veth, Netns, Proc, Scratch};

const TOOLS: &[&str] = &["ip", "python3", "bird", "birdc"];

/// What lb must do in each case: a NOTIFICATION (code, subcode, and data when the RFC fixes
/// it), keep the session ("up"), or close after the peer's own NOTIFICATION ("closed").
fn expected() -> BTreeMap<&'static str, (&'static str, u8, u8, Option<&'static str>)> {
    let n = |code, subcode, data| ("notification", code, subcode, data);
    let up = ("up", 0, 0, None);
    BTreeMap::from([
        // RFC 4271 §6.1: the data of Bad Message Length is the length field, of Bad Message
        // Type the type.
        ("bad-marker", n(1, 1, None)),
        ("length-0", n(1, 2, Some("0000"))),
        ("length-18", n(1, 2, Some("0012"))),
        ("length-4097", n(1, 2, Some("1001"))),
        ("keepalive-length-20", n(1, 2, Some("0014"))),
        ("unknown-type", n(1, 3, Some("09"))),
        // RFC 4271 §6.2: Unsupported Version carries the largest version supported (4); a
        // recognized parameter that is malformed is Unspecific (0).
        ("open-version-3", n(2, 1, Some("0004"))),
        ("open-as-0", n(2, 2, None)),
        ("open-hold-1", n(2, 6, None)),
        ("open-hold-2", n(2, 6, None)),
        ("open-wrong-as-2-octet", n(2, 2, None)),
        ("open-wrong-as-4-octet", n(2, 2, None)),
        ("open-as-trans-without-capability", n(2, 2, None)),
        ("open-capability-length-0", n(2, 0, None)),
        ("open-capability-past-parameter", n(2, 0, None)),
        ("open-rfc9072-truncated", n(2, 0, None)),
        // RFC 6608: an UPDATE in OpenSent.
        ("update-before-open", n(5, 1, None)),
        // RFC 7606 §4: an attribute that overruns the attribute field is treat-as-withdraw
        // (the total length still locates the NLRI); lengths that cannot locate the NLRI, and
        // a second MP_REACH_NLRI (§3 g), reset with Malformed Attribute List.
        ("update-attribute-overruns", up),
        ("update-lengths-disagree", n(3, 1, None)),
        ("update-duplicate-mp-reach", n(3, 1, None)),
        // Unknown optional transitive attributes are passed over (RFC 4271 §5).
        ("update-only-unknown-transitive", up),
        ("update-unknown-255", up),
        ("update-unknown-35", up),
        ("update-unknown-23", up),
        // RFC 6793 §4.2.3: an AS4_PATH longer than the AS_PATH is ignored.
        ("update-as4-path-length-differs", up),
        // RFC 7606 §7.2: an empty AS_PATH from an external peer is treat-as-withdraw.
        ("update-as-path-empty", up),
        ("update-as-path-5000", up),
        ("end-of-rib-ipv4", up),
        ("end-of-rib-ipv6", up),
        ("cease-shutdown-overclaims", ("closed", 0, 0, None)),
        ("cease-shutdown-not-utf8", ("closed", 0, 0, None)),
        ("silent-peer-hold-timer", n(4, 0, None)),
        ("update-flood", up),
    ])
}

fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn a_broken_peer_gets_the_right_notification_and_nothing_else_is_disturbed() {
    if !prerequisites(TOOLS) {
        return;
    }
    let (spk, rtr, dir) = (Netns::new("msp"), Netns::new("mrt"), Scratch::new("mbgp"));
    veth(&spk, &rtr, "eth0");
    spk.ip(&["addr", "add", "10.9.0.1/24", "dev", "eth0"]);
    rtr.ip(&["addr", "add", "10.9.0.2/24", "dev", "eth0"]);
    rtr.ip(&["addr", "add", "10.9.0.3/24", "dev", "eth0"]);
    // The broken peer's port 1790 has no listener: only its own connections reach lb.
    let cfg = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.16/29, \"2001:db8:5::/125\"]}\n---\n\
        apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: broken}\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 10.9.0.2, peerPort: 1790}\n---\n\
        apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: bird}\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 10.9.0.3}\n---\n\
        apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: all}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\nspec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ports: [{port: 80}]}\n";
    std::fs::write(dir.path("lb.yaml"), cfg).unwrap();
    let bird_conf = dir.path("bird.conf");
    std::fs::write(
        &bird_conf,
        "router id 10.9.0.3;\nprotocol device {}\nprotocol bgp lb {\n  local 10.9.0.3 as 64500;\n  neighbor 10.9.0.1 as 64512;\n  passive on;\n  ipv4 { import all; export none; };\n}\n",
    )
    .unwrap();
    let (sock, pid) = (dir.path("bird.ctl"), dir.path("bird.pid"));
    let args = ["-f", "-c", bird_conf.to_str().unwrap(), "-s", sock.to_str().unwrap(), "-P", pid.to_str().unwrap()];
    let _bird = Proc::spawn(rtr.cmd("bird", &args), &dir.0, "bird");
    let birdc = |cmd: &str| {
        let mut a = vec!["-s", sock.to_str().unwrap()];
        a.extend(cmd.split(' '));
        String::from_utf8_lossy(&support::run("birdc", &a).stdout).into_owned()
    };
    let (state, config) = (dir.path("state.json"), dir.path("lb.yaml"));
    let lb_args = [
        "run",
        "-c",
        config.to_str().unwrap(),
        "--node",
        "spk",
        "--state-file",
        state.to_str().unwrap(),
        "--no-host-addresses",
    ];
    let mut cmd = spk.cmd(env!("CARGO_BIN_EXE_lb"), &lb_args);
    cmd.env("RUST_LOG", "info");
    let lb = Proc::spawn(cmd, &dir.0, "lb");
    let up = eventually(Duration::from_secs(20), || {
        birdc("show protocols lb").contains("Established")
            && birdc("show route 192.0.2.16/32").contains("192.0.2.16/32")
    });
    assert!(up, "BIRD never got the route:\n{}\n{}", birdc("show protocols all lb"), lb.stderr());
    let since = support::bird_session(&birdc("show protocols lb"), "lb");
    assert!(since.0.contains("Established"), "{since:?}");
    let rss_before = rss_kib(&lb.pid());

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/broken_peer.py");
    let mut peer = Proc::spawn(rtr.cmd("python3", &[script]), &dir.0, "broken-peer");
    let done = peer.wait(Duration::from_secs(300));
    assert_eq!(done, Some(0), "the broken peer did not finish:\n{}\n{}", peer.stdout(), peer.stderr());
    let rss_after = rss_kib(&lb.pid());

    let mut failures = Vec::new();
    let results: BTreeMap<String, Value> = peer
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| (v["case"].as_str().unwrap_or_default().to_string(), v))
        .collect();
    for (case, (result, code, subcode, data)) in expected() {
        let Some(got) = results.get(case) else {
            failures.push(format!("{case}: no result"));
            continue;
        };
        let ok = got["result"] == result
            && (result != "notification"
                || (got["code"] == u64::from(code)
                    && got["subcode"] == u64::from(subcode)
                    && data.is_none_or(|d| got["data"] == d)));
        if !ok {
            failures.push(format!("{case}: expected {result} {code}/{subcode} {data:?}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}\n--- lb:\n{}", failures.join("\n"), lb.stderr());
    assert_eq!(results.len(), expected().len(), "a case without an expectation: {:?}", results.keys());

    // Nothing else was disturbed: the BIRD session never went down (same state line, with
    // its since time), BIRD still has the routes, and lb neither panicked nor grew without
    // bound under the flood of 100,000 UPDATEs.
    let now = support::bird_session(&birdc("show protocols lb"), "lb");
    assert!(support::same_bird_session(&since, &now), "the BIRD session was disturbed: {since:?} {now:?}");
    assert!(birdc("show route 192.0.2.16/32").contains("192.0.2.16/32"));
    assert!(!lb.stderr().contains("panicked"), "{}", lb.stderr());
    assert!(rss_after < rss_before + 32 * 1024, "lb grew from {rss_before} KiB to {rss_after} KiB");
    eprintln!("lb RSS {rss_before} KiB before the catalogue, {rss_after} KiB after");
}
