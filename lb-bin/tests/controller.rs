//! `lb controller` end to end: the real binary against the fake API server (the real HTTP
//! API, in memory; see the `fakeapi` crate), through a kubeconfig. No root needed.

mod support;

use std::time::Duration;

use serde_json::json;
use support::cluster::{http_get, metrics_addr, Cluster, NS};
use support::eventually;

fn wait_ips(c: &Cluster, name: &str, want: &[&str]) {
    let ok = eventually(Duration::from_secs(15), || c.ips("web", name) == want);
    assert!(ok, "web/{name}: status holds {:?}, expected {want:?}", c.ips("web", name));
}

#[test]
fn services_get_addresses_pinned_and_shared_as_metallb_gives_them() {
    let c = Cluster::new("ctl");
    c.pool("default", json!({"addresses": ["192.0.2.0/29"]}));
    c.pool("pinned", json!({"addresses": ["198.51.100.10-198.51.100.11"], "autoAssign": false}));
    c.service("plain", json!({}), json!([{"port": 80}]));
    c.service("from-pinned", json!({"metallb.io/address-pool": "pinned"}), json!([{"port": 80}]));
    c.service("asks", json!({"metallb.io/loadBalancerIPs": "192.0.2.5"}), json!([{"port": 80}]));
    let shared = |k: &str| json!({"metallb.io/allow-shared-ip": k, "metallb.io/loadBalancerIPs": "192.0.2.6"});
    c.service("dns-udp", shared("dns"), json!([{"port": 53, "protocol": "UDP"}]));
    c.service("dns-tcp", shared("dns"), json!([{"port": 53, "protocol": "TCP"}]));
    c.service("z-clash", shared("dns"), json!([{"port": 53, "protocol": "UDP"}]));
    let mut ctl = c.controller("c1");

    wait_ips(&c, "plain", &["192.0.2.0"]);
    wait_ips(&c, "from-pinned", &["198.51.100.10"]);
    wait_ips(&c, "asks", &["192.0.2.5"]);
    wait_ips(&c, "dns-udp", &["192.0.2.6"]);
    wait_ips(&c, "dns-tcp", &["192.0.2.6"]);
    let svc = c.get("services", "web", "plain");
    assert_eq!(svc["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"], "default");
    assert_eq!(svc["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
    assert_eq!(
        c.get("services", "web", "from-pinned")["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"],
        "pinned"
    );
    // The clashing service (created in the same second, so later by name) gets nothing,
    // and an Event says why.
    let clash_event = eventually(Duration::from_secs(10), || {
        c.events("web").iter().any(|e| {
            e["reason"] == "AllocationFailed"
                && e["regarding"]["name"] == "z-clash"
                && e["note"].as_str().is_some_and(|n| n.contains("web/dns-udp") && n.contains("53/UDP"))
        })
    });
    assert!(clash_event, "events: {:#?}", c.events("web"));
    assert!(c.ips("web", "z-clash").is_empty());
    let allocated = c.events("web").iter().any(|e| e["reason"] == "IPAllocated" && e["regarding"]["name"] == "plain");
    assert!(allocated, "an IPAllocated event for web/plain");

    // Metrics with MetalLB's names, and readiness.
    let addr = metrics_addr(&ctl).expect("the metrics address in the log");
    for path in ["/readyz", "/healthz"] {
        let (code, _) = http_get(&addr, path).expect("an answer");
        assert_eq!(code, 200, "{path}");
    }
    let (_, metrics) = http_get(&addr, "/metrics").expect("metrics");
    for line in [
        "metallb_allocator_addresses_in_use_total{pool=\"default\"} 3",
        "metallb_allocator_addresses_in_use_total{pool=\"pinned\"} 1",
        "metallb_allocator_addresses_total{pool=\"default\"} 8",
        "metallb_allocator_addresses_total{pool=\"pinned\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in:\n{metrics}");
    }

    // Deleting a Service frees its address for the next one.
    c.delete("services", "web", "plain");
    c.service("next", json!({}), json!([{"port": 80}]));
    wait_ips(&c, "next", &["192.0.2.0"]);
    ctl.signal("TERM");
    assert_eq!(ctl.wait(Duration::from_secs(10)), Some(0), "{}", ctl.stderr());

    // Everything it asked of the API is allowed by the RBAC of `lb manifests`.
    let accesses = c.api.shared.accesses();
    assert!(accesses.iter().any(|a| a.user == "lb-controller" && a.verb == "patch"));
    assert_eq!(support::rbac::denied(&accesses, "lb-controller", "lb-controller"), Vec::<String>::new());
}

#[test]
fn a_restart_rewrites_nothing_and_an_invalid_config_keeps_the_last_good_one() {
    let c = Cluster::new("ctr");
    c.pool("default", json!({"addresses": ["192.0.2.0/28"]}));
    for i in 0..5 {
        c.service(&format!("s{i}"), json!({}), json!([{"port": 80}]));
    }
    let mut first = c.controller("r1");
    for i in 0..5 {
        let ip = format!("192.0.2.{i}");
        wait_ips(&c, &format!("s{i}"), &[ip.as_str()]);
    }
    first.signal("TERM");
    assert_eq!(first.wait(Duration::from_secs(10)), Some(0));
    let before = (c.writes("PATCH services/status"), c.writes("PATCH services"));

    // A new controller restores every address and writes nothing.
    let second = c.controller("r2");
    assert!(eventually(Duration::from_secs(10), || c.holder().as_deref() == Some("r2")), "r2 never led");
    c.service("late", json!({}), json!([{"port": 80}]));
    wait_ips(&c, "late", &["192.0.2.5"]);
    for i in 0..5 {
        assert_eq!(c.ips("web", &format!("s{i}")), [format!("192.0.2.{i}")]);
    }
    let after = (c.writes("PATCH services/status"), c.writes("PATCH services"));
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1), "only web/late was written");

    // An invalid change is refused: an Event names the field, the last good pool serves.
    c.patch("metallb.io", "ipaddresspools", NS, "default", json!({"spec": {"addresses": ["192.0.2.0/33"]}}));
    let refused = eventually(Duration::from_secs(10), || {
        c.events(NS).iter().any(|e| {
            e["reason"] == "InvalidConfiguration"
                && e["regarding"]["name"] == "default"
                && e["note"].as_str().is_some_and(|n| n.contains("spec.addresses[0]"))
        })
    });
    assert!(refused, "events: {:#?}", c.events(NS));
    c.service("during", json!({}), json!([{"port": 80}]));
    wait_ips(&c, "during", &["192.0.2.6"]);
    assert_eq!(c.ips("web", "s0"), ["192.0.2.0"], "nothing is withdrawn for a typo");
    // MetalLB's gauges say a configuration is loaded and that the latest one is stale.
    let addr = metrics_addr(&second).expect("the metrics address in the log");
    let gauges = |want_stale: &str| {
        let (_, m) = http_get(&addr, "/metrics").expect("metrics");
        m.lines().any(|l| l == "metallb_k8s_client_config_loaded_bool 1")
            && m.lines().any(|l| l == format!("metallb_k8s_client_config_stale_bool {want_stale}"))
    };
    assert!(gauges("1"), "stale while the pool is invalid");
    c.patch("metallb.io", "ipaddresspools", NS, "default", json!({"spec": {"addresses": ["192.0.2.0/28"]}}));
    assert!(eventually(Duration::from_secs(10), || gauges("0")), "fresh once it is fixed");
    drop(second);
}

#[test]
fn two_controllers_elect_one_leader_and_the_other_takes_over() {
    let c = Cluster::new("cle");
    c.pool("default", json!({"addresses": ["192.0.2.0/28"]}));
    let a = c.controller("a");
    let b = c.controller("b");
    c.service("one", json!({}), json!([{"port": 80}]));
    wait_ips(&c, "one", &["192.0.2.0"]);
    let leader = c.holder().expect("a lease holder");
    let (mut leader_proc, follower) = if leader == "a" { (a, b) } else { (b, a) };
    assert!(leader_proc.stderr().contains("status written"), "the leader wrote");
    assert!(!follower.stderr().contains("status written"), "the follower never writes");

    // The leader dies without releasing its lease: the other takes over once it expires.
    leader_proc.signal("KILL");
    leader_proc.wait(Duration::from_secs(5));
    c.service("two", json!({}), json!([{"port": 80}]));
    wait_ips(&c, "two", &["192.0.2.1"]);
    assert_ne!(c.holder().as_deref(), Some(leader.as_str()));
    assert!(follower.stderr().contains("became the leader"), "{}", follower.stderr());
}

#[test]
fn a_type_change_releases_and_a_moved_pool_reallocates_with_an_event() {
    let c = Cluster::new("ctm");
    c.pool("default", json!({"addresses": ["192.0.2.0/30"]}));
    c.service("a", json!({}), json!([{"port": 80}]));
    c.service("b", json!({}), json!([{"port": 80}]));
    let _ctl = c.controller("m1");
    wait_ips(&c, "a", &["192.0.2.0"]);
    wait_ips(&c, "b", &["192.0.2.1"]);

    // No longer a LoadBalancer: its address and annotation go, and the address is free.
    c.patch("", "services", "web", "a", json!({"spec": {"type": "ClusterIP"}}));
    let released = eventually(Duration::from_secs(10), || {
        let svc = c.get("services", "web", "a");
        c.ips("web", "a").is_empty() && svc["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"].is_null()
    });
    assert!(released, "{}", c.get("services", "web", "a"));
    c.service("c", json!({}), json!([{"port": 80}]));
    wait_ips(&c, "c", &["192.0.2.0"]);

    // The pool moves: every service whose address left it gets a new one, and is told why.
    c.patch("metallb.io", "ipaddresspools", NS, "default", json!({"spec": {"addresses": ["198.51.100.0/30"]}}));
    wait_ips(&c, "b", &["198.51.100.0"]);
    wait_ips(&c, "c", &["198.51.100.1"]);
    let told = c.events("web").iter().any(|e| {
        e["reason"] == "IPAllocated"
            && e["regarding"]["name"] == "b"
            && e["note"].as_str().is_some_and(|n| n.contains("198.51.100.0") && n.contains("no longer in any pool"))
    });
    assert!(told, "events: {:#?}", c.events("web"));
}

#[test]
fn a_frozen_leader_that_wakes_up_writes_nothing() {
    let c = Cluster::new("clf");
    c.pool("default", json!({"addresses": ["192.0.2.0/28"]}));
    let a = c.controller("a");
    let b = c.controller("b");
    c.service("one", json!({}), json!([{"port": 80}]));
    wait_ips(&c, "one", &["192.0.2.0"]);
    let leader = c.holder().expect("a lease holder");
    let (old, new) = if leader == "a" { (&a, &b) } else { (&b, &a) };
    let written = |p: &support::Proc| p.stderr().matches("status written").count();

    // Frozen past its lease: the other takes over.
    old.signal("STOP");
    c.service("two", json!({}), json!([{"port": 80}]));
    wait_ips(&c, "two", &["192.0.2.1"]);
    let before = written(old);

    // Woken up, it finds its renew deadline passed and the lease taken: it writes nothing,
    // even as Services keep coming.
    old.signal("CONT");
    c.service("three", json!({}), json!([{"port": 80}]));
    wait_ips(&c, "three", &["192.0.2.2"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(written(old), before, "the old leader wrote after it lost the lease:\n{}", old.stderr());
    assert!(written(new) >= 2);
    assert_eq!(c.writes("PATCH services/status"), 3, "one status write per Service, by one writer");
    assert_ne!(c.holder().as_deref(), Some(leader.as_str()));
}
