//! Faults the controller must ride out without losing anything: restarts (graceful, killed,
//! during a burst of creates) with a full pool, and a status a user wrote by hand outside
//! every pool. The real `lb controller` against the fake API server; no root needed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use support::cluster::Cluster;
use support::eventually;

/// Every Service's addresses, by name.
fn assignments(c: &Cluster) -> BTreeMap<String, Vec<String>> {
    c.list("", "services", "web")
        .iter()
        .map(|s| {
            let name = s["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let ips = s["status"]["loadBalancer"]["ingress"]
                .as_array()
                .map(|a| a.iter().filter_map(|i| i["ip"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            (name, ips)
        })
        .collect()
}

/// Fails if one address is on two Services.
fn no_address_twice(map: &BTreeMap<String, Vec<String>>) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, ips) in map {
        for ip in ips {
            if let Some(other) = seen.insert(ip, name) {
                panic!("{ip} is on {other} and on {name}");
            }
        }
    }
}

/// Creates a Service in the auto-assign-off `barrier` pool and waits for its address: once
/// it has one, the controller has finished a whole pass over everything.
fn barrier(c: &Cluster, round: usize) {
    let name = format!("barrier-{round}");
    c.service(&name, json!({"metallb.io/address-pool": "barrier"}), json!([{"port": 80}]));
    let done = eventually(Duration::from_secs(60), || !c.ips("web", &name).is_empty());
    assert!(done, "round {round}: the controller never finished a pass");
}

#[test]
fn restarts_keep_every_assignment_write_nothing_and_leave_pending_pending() {
    let c = Cluster::new("rst");
    // 1005 addresses: 1000 Services take one each, 5 pin theirs, and 20 more find none.
    c.pool("big", json!({"addresses": ["10.200.0.0-10.200.3.236"]}));
    c.pool("barrier", json!({"addresses": ["192.0.2.0/28"], "autoAssign": false}));
    for i in 0..5 {
        let ip = format!("10.200.3.{}", 232 + i);
        c.service(&format!("pinned-{i}"), json!({"metallb.io/loadBalancerIPs": ip}), json!([{"port": 80}]));
    }
    for i in 0..1000 {
        c.service(&format!("s-{i:04}"), json!({}), json!([{"port": 80}]));
    }
    let mut ctl = c.controller("c0");
    let all_in =
        eventually(Duration::from_secs(120), || assignments(&c).values().filter(|ips| !ips.is_empty()).count() == 1005);
    assert!(all_in, "only {} assigned", assignments(&c).values().filter(|ips| !ips.is_empty()).count());
    for i in 0..20 {
        c.service(&format!("pending-{i:02}"), json!({}), json!([{"port": 80}]));
    }
    barrier(&c, 0);
    let before = assignments(&c);
    no_address_twice(&before);
    for i in 0..5 {
        assert_eq!(before[&format!("pinned-{i}")], [format!("10.200.3.{}", 232 + i)]);
    }
    for i in 0..20 {
        assert!(before[&format!("pending-{i:02}")].is_empty(), "pending-{i:02} got an address from a full pool");
    }
    let mut writes = c.writes("PATCH services/status");

    for round in 1..=5 {
        // Rounds 1-3 stop gracefully; round 4 kills the leader (the next one waits for its
        // Lease to expire); round 5 starts the new one during a burst of creates.
        if round == 4 {
            ctl.signal("KILL");
        } else {
            ctl.signal("TERM");
        }
        ctl.wait(Duration::from_secs(10));
        if round == 5 {
            // The new controller starts while Services keep coming.
            for i in 0..50 {
                c.service(&format!("burst-{i:02}"), json!({}), json!([{"port": 80}]));
                if i == 10 {
                    ctl = c.controller(&format!("c{round}"));
                }
            }
        } else {
            ctl = c.controller(&format!("c{round}"));
        }
        barrier(&c, round);
        let now = assignments(&c);
        no_address_twice(&now);
        for (name, ips) in &before {
            assert_eq!(now.get(name), Some(ips), "round {round}: {name} changed");
        }
        for (name, ips) in &now {
            if name.starts_with("burst-") {
                assert!(ips.is_empty(), "round {round}: {name} got {ips:?} from a full pool");
            }
        }
        // One status write: the barrier's. Nothing unchanged was written again.
        let w = c.writes("PATCH services/status");
        assert_eq!(w, writes + 1, "round {round}: {} status writes besides the barrier's", w - writes - 1);
        writes = w;
    }
    ctl.signal("TERM");
    ctl.wait(Duration::from_secs(10));
}

#[test]
fn a_status_written_by_hand_outside_every_pool_is_corrected() {
    let c = Cluster::new("cve");
    c.pool("lan", json!({"addresses": ["192.0.2.0/29"]}));
    c.service("web", json!({}), json!([{"port": 80}]));
    let _ctl = c.controller("c");
    let ok = eventually(Duration::from_secs(15), || c.ips("web", "web") == ["192.0.2.0"]);
    assert!(ok, "{:?}", c.ips("web", "web"));
    // A user with rights on services/status points the Service at someone else's address
    // (the CVE-2020-8554 class: traffic for 203.0.113.50 would come to this Service).
    c.patch_status(
        "services",
        "web",
        "web",
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.50", "ipMode": "VIP"}]}}}),
    );
    let fixed = eventually(Duration::from_secs(15), || c.ips("web", "web") == ["192.0.2.0"]);
    assert!(fixed, "the status still holds {:?}", c.ips("web", "web"));
    let outside: BTreeSet<String> =
        assignments(&c).into_values().flatten().filter(|ip| ip.starts_with("203.")).collect();
    assert!(outside.is_empty());
}
