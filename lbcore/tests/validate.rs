//! Validation as a user meets it: YAML in, errors (or warnings) that name the file, kind,
//! object, field and value out. One test per rule; every fixture from MetalLB's
//! documentation must pass.

use lbcore::config::{validate, Diagnostic, Resources};

const HEAD: &str = "apiVersion: metallb.io/v1beta1\n";

fn pool(name: &str, addrs: &[&str]) -> String {
    let list = addrs.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
    format!("{HEAD}kind: IPAddressPool\nmetadata: {{name: {name}}}\nspec: {{addresses: [{list}]}}\n---\n")
}

const L2_ALL: &str = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all}\n---\n";

fn load(yaml: &str) -> Resources {
    let mut r = Resources::default();
    r.load_str("cfg.yaml", yaml);
    r
}

fn errors(yaml: &str) -> Vec<Diagnostic> {
    match validate(&load(yaml)) {
        Ok(v) => panic!("accepted; warnings: {:?}", v.warnings),
        Err(e) => e,
    }
}

fn warnings(yaml: &str) -> Vec<Diagnostic> {
    match validate(&load(yaml)) {
        Ok(v) => v.warnings,
        Err(e) => panic!("rejected: {}", e.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")),
    }
}

/// Asserts exactly one diagnostic, about this object, field and value, whose text mentions
/// each of `words`.
fn assert_one(diags: &[Diagnostic], kind: &str, name: &str, field: &str, value: &str, words: &[&str]) {
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!((d.kind.as_str(), d.name.as_str(), d.field.as_str(), d.value.as_str()), (kind, name, field, value));
    let text = d.to_string();
    assert!(text.starts_with("cfg.yaml (document "), "{text}");
    for w in words {
        assert!(text.contains(w), "{text:?} lacks {w:?}");
    }
}

#[test]
fn malformed_addresses() {
    for (addr, why) in [
        ("10.0.0.300/24", "not an IP address"),
        ("10.0.0.0/33", "prefix length"),
        ("10.0.0.9-10.0.0.1", "after its end"),
        ("10.0.0.1-2001:db8::1", "mixes IPv4 and IPv6"),
        ("10.0.0.1", "10.0.0.1/32"),
        ("ten/8", "not an IP address"),
    ] {
        let e = errors(&(pool("p", &[addr]) + L2_ALL));
        assert_one(&e, "IPAddressPool", "p", "spec.addresses[0]", addr, &[why]);
    }
}

#[test]
fn host_bits_are_read_as_metallb_does_with_a_warning() {
    let w = warnings(&(pool("p", &["198.51.100.10/24"]) + L2_ALL));
    assert_one(
        &w,
        "IPAddressPool",
        "p",
        "spec.addresses[0]",
        "198.51.100.10/24",
        &["198.51.100.0/24", "198.51.100.10-198.51.100.255"],
    );
}

#[test]
fn overlapping_pools_name_both() {
    let e = errors(&(pool("a", &["10.0.0.0/24"]) + &pool("b", &["10.0.1.0/24", "10.0.0.128-10.0.0.130"]) + L2_ALL));
    assert_one(
        &e,
        "IPAddressPool",
        "b",
        "spec.addresses[1]",
        "10.0.0.128-10.0.0.130",
        &["overlaps", "\"a\"", "10.0.0.0/24"],
    );
    let e = errors(&(pool("a", &["10.0.0.0/24", "10.0.0.7/32"]) + L2_ALL));
    assert_one(&e, "IPAddressPool", "a", "spec.addresses[1]", "10.0.0.7/32", &["same pool"]);
    // Adjacent ranges and the same numbers in another family do not overlap.
    warnings(&(pool("a", &["10.0.0.0/24"]) + &pool("b", &["10.0.1.0/24", "::a00:0/120"]) + L2_ALL));
}

#[test]
fn duplicate_names() {
    let e = errors(&(pool("a", &["10.0.0.0/24"]) + &pool("a", &["10.0.1.0/24"]) + L2_ALL));
    assert_one(&e, "IPAddressPool", "a", "metadata.name", "a", &["already defined in cfg.yaml (document 1)"]);
}

#[test]
fn references_to_missing_objects_are_warnings() {
    let y = pool("a", &["10.0.0.0/24"])
        + "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: adv}\nspec: {ipAddressPools: [a, ghost], peers: [nobody], communities: [no-such-alias]}\n---\n"
        + "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 192.0.2.1, bfdProfile: fast}\n";
    let w = warnings(&y);
    let fields: Vec<(&str, &str)> = w.iter().map(|d| (d.field.as_str(), d.value.as_str())).collect();
    assert_eq!(
        fields,
        [
            ("spec.bfdProfile", "fast"),
            ("spec.communities[0]", "no-such-alias"),
            ("spec.peers[0]", "nobody"),
            ("spec.ipAddressPools[1]", "ghost")
        ]
    );
}

#[test]
fn malformed_communities() {
    for (c, why) in
        [("65536:1", "0 to 65535"), ("1:2:3", "AA:NN"), ("large:1:2", "three parts"), ("large:1:x:2", "\"x\"")]
    {
        let y = pool("a", &["10.0.0.0/24"])
            + &format!("{HEAD}kind: BGPAdvertisement\nmetadata: {{name: adv}}\nspec: {{communities: [\"{c}\"]}}\n");
        let e = errors(&y);
        assert_one(&e, "BGPAdvertisement", "adv", "spec.communities[0]", c, &[why]);
    }
    let y = format!("{HEAD}kind: Community\nmetadata: {{name: c}}\nspec:\n  communities:\n  - {{name: ok, value: \"65535:65281\"}}\n  - {{name: bad, value: \"65535\"}}\n");
    assert_one(&errors(&y), "Community", "c", "spec.communities[1].value", "65535", &["AA:NN"]);
    let y = format!("{HEAD}kind: Community\nmetadata: {{name: c}}\nspec:\n  communities:\n  - {{name: x, value: \"1:1\"}}\n---\n{HEAD}kind: Community\nmetadata: {{name: d}}\nspec:\n  communities:\n  - {{name: x, value: \"1:2\"}}\n");
    assert_one(&errors(&y), "Community", "d", "spec.communities[0].name", "x", &["already defined by Community \"c\""]);
}

#[test]
fn community_aliases_resolve() {
    let y = pool("a", &["10.0.0.0/24"])
        + &format!("{HEAD}kind: Community\nmetadata: {{name: c}}\nspec: {{communities: [{{name: no-export, value: \"65535:65281\"}}]}}\n---\n")
        + &format!("{HEAD}kind: BGPAdvertisement\nmetadata: {{name: adv}}\nspec: {{communities: [no-export, \"64512:100\", \"large:64512:1:2\"]}}\n");
    let v = validate(&load(&y)).unwrap();
    let got: Vec<String> = v.config.bgp_advertisements[0].communities.iter().map(|c| c.to_string()).collect();
    assert_eq!(got, ["64512:100", "65535:65281", "large:64512:1:2"]);
}

#[test]
fn aggregation_shorter_than_a_pool_prefix() {
    let adv = |len: u8| {
        format!("{HEAD}kind: BGPAdvertisement\nmetadata: {{name: adv}}\nspec: {{aggregationLength: {len}}}\n")
    };
    let e = errors(&(pool("a", &["10.0.0.0/24"]) + &adv(23)));
    assert_one(&e, "BGPAdvertisement", "adv", "spec.aggregationLength", "23", &["/24", "10.0.0.0/24", "\"a\""]);
    warnings(&(pool("a", &["10.0.0.0/24"]) + &adv(24)));
    // A range counts by the widest CIDR covering it (.1/32 .2/31 .4/31 .6/32: /31).
    warnings(&(pool("a", &["10.0.0.1-10.0.0.6"]) + &adv(31)));
    errors(&(pool("a", &["10.0.0.1-10.0.0.6"]) + &adv(30)));
    let e = errors(&(pool("a", &["10.0.0.0/24"]) + &adv(33)));
    assert_one(&e, "BGPAdvertisement", "adv", "spec.aggregationLength", "33", &["between 1 and 32"]);
}

fn peer(extra: &str) -> String {
    format!("apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: tor}}\nspec: {{myASN: 64512, peerASN: 64500, peerAddress: 192.0.2.1{extra}}}\n")
}

#[test]
fn bgp_timers() {
    assert_one(&errors(&peer(", holdTime: 2s")), "BGPPeer", "tor", "spec.holdTime", "2s", &["0 or at least 3s"]);
    assert_one(&errors(&peer(", holdTime: 1s")), "BGPPeer", "tor", "spec.holdTime", "1s", &["RFC 4271"]);
    assert_one(
        &errors(&peer(", holdTime: 30s, keepaliveTime: 31s")),
        "BGPPeer",
        "tor",
        "spec.keepaliveTime",
        "31s",
        &["must not exceed holdTime (30s)"],
    );
    assert_one(&errors(&peer(", holdTime: 90")), "BGPPeer", "tor", "spec.holdTime", "90", &["missing unit"]);
    let ok = validate(&load(&peer(", holdTime: 9m0s, keepaliveTime: 0s"))).unwrap();
    assert_eq!(ok.config.peers[0].hold_time, Some(std::time::Duration::from_secs(540)));
    validate(&load(&peer(", holdTime: 0s"))).unwrap();
    validate(&load(&peer(", keepaliveTime: 120s"))).unwrap();
}

#[test]
fn bgp_peer_fields() {
    let cases = [
        (", peerPort: 70000", "spec.peerPort", "70000"),
        (", routerID: \"2001:db8::1\"", "spec.routerID", "2001:db8::1"),
        (", sourceAddress: nowhere", "spec.sourceAddress", "nowhere"),
        (", dynamicASN: internal", "spec.dynamicASN", "internal"),
        (", password: x, passwordSecret: {name: s}", "spec.passwordSecret", ""),
        // Longer than the kernel's TCP MD5 key (80 octets); the value is never printed.
        (
            ", password: kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
            "spec.password",
            "(hidden)",
        ),
    ];
    for (extra, field, value) in cases {
        let e = errors(&peer(extra));
        assert_one(&e, "BGPPeer", "tor", field, value, &[]);
    }
    validate(&load(&peer(&format!(", password: {}", "k".repeat(80))))).unwrap();
    let ibgp = "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {myASN: 64512, peerASN: 64512, peerAddress: 192.0.2.1, ebgpMultiHop: true}\n";
    assert_one(&errors(ibgp), "BGPPeer", "tor", "spec.ebgpMultiHop", "true", &["iBGP"]);
    let bad =
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerAddress: 192.0.2.300}\n";
    let e = errors(bad);
    let fields: Vec<&str> = e.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["spec.myASN", "spec.peerASN", "spec.peerAddress"], "every error at once");
}

#[test]
fn bfd_profile_ranges() {
    let y = format!(
        "{HEAD}kind: BFDProfile\nmetadata: {{name: fast}}\nspec: {{receiveInterval: 5, detectMultiplier: 3}}\n"
    );
    assert_one(&errors(&y), "BFDProfile", "fast", "spec.receiveInterval", "5", &["between 10 and 60000"]);
}

#[test]
fn selectors_are_checked() {
    let y = pool("a", &["10.0.0.0/24"])
        + &format!("{HEAD}kind: L2Advertisement\nmetadata: {{name: l2}}\nspec:\n  nodeSelectors:\n  - matchExpressions: [{{key: zone, operator: Near, values: [a]}}]\n");
    assert_one(
        &errors(&y),
        "L2Advertisement",
        "l2",
        "spec.nodeSelectors[0].matchExpressions[0].operator",
        "Near",
        &["In, NotIn"],
    );
}

#[test]
fn unknown_fields_and_type_errors() {
    let y = format!("{HEAD}kind: IPAddressPool\nmetadata: {{name: a}}\nspec: {{addresses: [10.0.0.0/24], autoassign: false}}\n---\n") + L2_ALL;
    let w = warnings(&y);
    assert_one(&w, "IPAddressPool", "a", "spec.autoassign", "", &["unknown field"]);
    let y = format!(
        "{HEAD}kind: IPAddressPool\nmetadata: {{name: a}}\nspec: {{addresses: [10.0.0.0/24], autoAssign: maybe}}\n"
    );
    let e = errors(&y);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind.as_str(), e[0].name.as_str(), e[0].field.as_str()),
        ("IPAddressPool", "a", "spec.autoAssign")
    );
}

#[test]
fn lints_for_classic_traps() {
    let y = pool("unannounced", &["10.0.0.0/24"])
        + &pool("single", &["10.0.1.1/32"])
        + &format!("{HEAD}kind: L2Advertisement\nmetadata: {{name: l2}}\nspec: {{ipAddressPools: [single]}}\n");
    let w = warnings(&y);
    let got: Vec<(&str, &str)> = w.iter().map(|d| (d.name.as_str(), d.field.as_str())).collect();
    assert_eq!(got, [("single", "spec.autoAssign"), ("unannounced", "")]);
    assert!(w[1].message.contains("never announced"));
    assert!(w[0].message.contains("autoAssign: false"));
}

#[test]
fn every_metallb_documentation_example_is_accepted() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/metallb-docs");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mut r = Resources::default();
        r.load_path(&path);
        if let Err(e) = validate(&r) {
            panic!("{} rejected:\n{}", path.display(), e.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"));
        }
        n += 1;
    }
    assert!(n >= 25, "only {n} fixtures");
}

#[test]
fn garbage_never_panics() {
    for y in [
        "",
        "---\n---\n",
        ":\n",
        "[",
        "{a: [}",
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n",
        "\u{0}\u{1}",
        "kind: List\napiVersion: v1\nitems: 5\n",
        "*x\n",
    ] {
        let r = load(y);
        match validate(&r) {
            Ok(v) => assert!(v.config.pools.is_empty(), "{y:?} produced pools"),
            Err(e) => assert!(e.iter().all(|d| d.source.is_some()), "{y:?}: an error without its source"),
        }
    }
}

#[test]
fn newer_advertisement_fields() {
    let y = pool("a", &["10.0.0.0/24"])
        + &format!("{HEAD}kind: L2Advertisement\nmetadata: {{name: l2}}\nspec:\n  serviceSelectors: [{{matchLabels: {{app: web}}}}]\n  preferredNodeSelectors:\n  - {{weight: 100, preference: {{matchLabels: {{role: edge}}}}}}\n");
    let v = validate(&load(&y)).unwrap();
    assert_eq!(v.config.l2_advertisements[0].preferred_node_selectors.len(), 1);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let y = pool("a", &["10.0.0.0/24"])
        + &format!("{HEAD}kind: L2Advertisement\nmetadata: {{name: l2}}\nspec:\n  preferredNodeSelectors: [{{weight: 0, preference: {{}}}}]\n");
    assert_one(
        &errors(&y),
        "L2Advertisement",
        "l2",
        "spec.preferredNodeSelectors[0].weight",
        "0",
        &["between 1 and 100"],
    );
    let y = pool("a", &["10.0.0.0/24"])
        + &format!("{HEAD}kind: BGPAdvertisement\nmetadata: {{name: b}}\nspec: {{aggregationLength: 24, serviceSelectors: [{{matchLabels: {{a: b}}}}]}}\n");
    assert_one(&errors(&y), "BGPAdvertisement", "b", "spec.aggregationLength", "24", &["mutually exclusive"]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// Any text, however broken, gives diagnostics with their source, never a panic.
    #[test]
    fn arbitrary_text_never_panics(tail in "[ -~\n]{0,160}", head in 0usize..4) {
        let heads = [
            "",
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec:\n  addresses: ",
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p}\nspec: ",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: LoadBalancer}\n---\n",
        ];
        let r = load(&format!("{}{tail}", heads[head]));
        if let Err(e) = validate(&r) {
            proptest::prop_assert!(e.iter().all(|d| d.source.is_some()));
        }
    }
}

#[test]
fn yaml_11_booleans_only_where_a_boolean_belongs() {
    let y = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24], autoAssign: no, avoidBuggyIPs: yes}\n---\n".to_string()
        + L2_ALL
        + "apiVersion: v1\nkind: Namespace\nmetadata: {name: n, labels: {team: off}}\n";
    let r = load(&y);
    let v = validate(&r).unwrap();
    assert!(!v.config.pools[0].auto_assign);
    assert!(v.config.pools[0].avoid_buggy_ips);
    assert_eq!(r.namespaces[0].object.metadata.name.as_deref(), Some("n"), "`n` is a name, not false");
    assert_eq!(r.namespaces[0].object.metadata.labels["team"], "off");
}

#[test]
fn lists_must_not_repeat_names() {
    let y = pool("a", &["10.0.0.0/24"])
        + &format!("{HEAD}kind: L2Advertisement\nmetadata: {{name: l2}}\nspec: {{ipAddressPools: [a, a]}}\n");
    assert_one(&errors(&y), "L2Advertisement", "l2", "spec.ipAddressPools[1]", "a", &["listed twice"]);
}

#[test]
fn a_pool_avoid_buggy_ips_empties_is_flagged() {
    let y = format!("{HEAD}kind: IPAddressPool\nmetadata: {{name: edge}}\nspec: {{addresses: [10.0.0.255/32, 10.0.1.0/32], avoidBuggyIPs: true}}\n---\n") + L2_ALL;
    assert_one(&warnings(&y), "IPAddressPool", "edge", "spec.addresses", "", &["no usable address"]);
}
