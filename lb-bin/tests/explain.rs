//! `lb explain` on files: the reasons it gives for pools, advertisements, nodes, the L2 owner
//! and BGP peers, in text and JSON. No root, no network.

mod support;

use serde_json::Value;
use support::Scratch;

const CONFIG: &str = "\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec: {addresses: [192.0.2.10-192.0.2.11]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: reserved}
spec: {addresses: [198.51.100.0/30], autoAssign: false}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: team-a}
spec:
  addresses: [203.0.113.0/30]
  serviceAllocation: {namespaces: [team-a]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: racks}
spec:
  ipAddressPools: [lan]
  nodeSelectors: [{matchLabels: {l2: \"yes\"}}]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1, nodeSelectors: [{matchLabels: {rack: r1}}]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: agg}
spec: {ipAddressPools: [lan], aggregationLength: 31, communities: [\"64512:7\"], localPref: 120}
---
apiVersion: v1
kind: Node
metadata: {name: a, labels: {l2: \"yes\", rack: r1}}
---
apiVersion: v1
kind: Node
metadata: {name: b, labels: {l2: \"yes\", node.kubernetes.io/exclude-from-external-load-balancers: \"\"}}
---
apiVersion: v1
kind: Node
metadata: {name: c, labels: {l2: \"yes\"}}
status: {conditions: [{type: Ready, status: \"False\"}]}
---
apiVersion: v1
kind: Node
metadata: {name: d, labels: {rack: r1}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {type: LoadBalancer, ports: [{port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: late, namespace: shop}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: shop}
spec: {type: LoadBalancer, loadBalancerClass: example.com/other, ports: [{port: 80}]}
";

fn explain(dir: &Scratch, service: &str, json: bool) -> (i32, String) {
    let cfg = dir.path("lb.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut args = vec!["explain", "-c", cfg.to_str().unwrap(), service];
    if json {
        args.extend(["--output", "json"]);
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lb")).args(&args).output().expect("lb runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn verdict<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("{name} in {list}"))
}

#[test]
fn an_assigned_service_shows_its_pool_nodes_owner_and_bgp_peers_with_reasons() {
    let dir = Scratch::new("exp");
    let (code, text) = explain(&dir, "shop/web", true);
    assert_eq!(code, 0, "{text}");
    let e: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(e["addresses"], serde_json::json!(["192.0.2.10"]));
    let pools = &e["pools"];
    assert_eq!(verdict(pools, "lan")["ok"], true);
    assert!(verdict(pools, "reserved")["why"].as_str().unwrap().contains("autoAssign is false"));
    assert!(verdict(pools, "team-a")["why"].as_str().unwrap().contains("serviceAllocation"));
    let a = &e["announce"][0];
    assert_eq!(verdict(&a["l2_advertisements"], "racks")["ok"], true);
    let nodes = &a["l2_nodes"];
    assert_eq!(verdict(nodes, "a")["ok"], true);
    assert!(verdict(nodes, "b")["why"].as_str().unwrap().contains("exclude-from-external-load-balancers"));
    assert!(verdict(nodes, "c")["why"].as_str().unwrap().contains("not Ready"));
    assert!(verdict(nodes, "d")["why"].as_str().unwrap().contains("nodeSelectors"));
    assert_eq!(a["l2_owner"], "a", "the only eligible node");
    // BGP: the peer selects nodes of rack r1 (a and d); the route is the /31 aggregate.
    let routes: Vec<&str> = a["bgp_routes"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(
        routes,
        [
            "tor from a: 192.0.2.10/31 (communities 64512:7, local-pref 120)",
            "tor from d: 192.0.2.10/31 (communities 64512:7, local-pref 120)"
        ]
    );
    let bgp = &a["bgp_nodes"];
    assert_eq!(verdict(bgp, "a")["why"], "announces it to tor");
    assert!(verdict(bgp, "b")["why"].as_str().unwrap().contains("exclude-from-external-load-balancers"));
    assert!(verdict(bgp, "c")["why"].as_str().unwrap().contains("not Ready"));
    assert_eq!(verdict(bgp, "d")["ok"], true);
}

#[test]
fn a_node_no_peer_selects_says_so() {
    let dir = Scratch::new("exn");
    let cfg = dir.path("lb.yaml");
    let extra = "---\napiVersion: v1\nkind: Node\nmetadata: {name: e}\n";
    std::fs::write(&cfg, format!("{CONFIG}{extra}")).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lb"))
        .args(["explain", "-c", cfg.to_str().unwrap(), "shop/web", "--output", "json"])
        .output()
        .expect("lb runs");
    let e: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let why = verdict(&e["announce"][0]["bgp_nodes"], "e")["why"].as_str().unwrap().to_string();
    assert!(why.contains("no BGPPeer peers from it"), "{why}");
    // --ignore-exclude-lb, as the speakers' flag: b counts again.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lb"))
        .args(["explain", "-c", cfg.to_str().unwrap(), "shop/web", "-o", "json", "--ignore-exclude-lb"])
        .output()
        .expect("lb runs");
    let e: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(verdict(&e["announce"][0]["l2_nodes"], "b")["ok"], true);
}

#[test]
fn a_service_without_an_address_says_why_and_text_output_is_aligned() {
    let dir = Scratch::new("exp");
    // Two addresses in `lan`, and three Services that want one: late finds none.
    let (code, text) = explain(&dir, "shop/late", false);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no address:"), "{text}");
    assert!(text.contains("no free IPv4 address in pool(s) lan"), "the allocator's reason: {text}");
    assert!(!text.contains('\x1b'), "no colours when stdout is not a terminal: {text:?}");
    let (_, text) = explain(&dir, "shop/other", false);
    assert!(text.contains("not handled by lb") && text.contains("example.com/other"), "{text}");
    let (_, text) = explain(&dir, "shop/missing", false);
    assert!(text.contains("no Service of type LoadBalancer"), "{text}");
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = Scratch::new("exj");
    let cfg = dir.path("lb.yaml");
    std::fs::write(&cfg, format!("{CONFIG}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: unrelated}}\n"))
        .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lb"))
        .args(["--log-format", "json", "explain", "-c", cfg.to_str().unwrap(), "shop/web"])
        .env("LB_LOG", "debug")
        .output()
        .expect("lb runs");
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<Value> =
        err.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    let skipped = lines.iter().find(|v| v["message"] == "skipping a kind lb does not read").expect("the debug line");
    assert_eq!((&skipped["level"], &skipped["kind"]), (&Value::from("DEBUG"), &Value::from("ConfigMap")));
    assert!(skipped["timestamp"].is_string());
}

#[test]
fn from_a_cluster_it_reads_owners_speakers_and_readiness_from_the_api() {
    use serde_json::json;
    use support::cluster::{Cluster, NS};
    let c = Cluster::new("exk");
    c.node("n1", json!({}));
    c.node("n2", json!({}));
    c.node("n3", json!({}));
    c.node_ready("n3", false);
    c.node("n4", json!({}));
    c.node_network("n4", true);
    c.pool("lan", json!({"addresses": ["10.0.0.1-10.0.0.9"]}));
    c.create("metallb.io", "l2advertisements", NS, json!({"metadata": {"name": "lan"}}));
    c.service("www", json!({}), json!([{"port": 80}]));
    c.patch_status("services", "web", "www", json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.5"}]}}}));
    // n1's speaker is alive; n2 runs none. n2 ranks... whatever it ranks: the status says n1.
    let now = fakeapi::store::now_rfc3339();
    c.create(
        "coordination.k8s.io",
        "leases",
        NS,
        json!({"metadata": {"name": "lb-speaker-n1"}, "spec": {"holderIdentity": "n1", "renewTime": now, "acquireTime": now}}),
    );
    let labels =
        json!({"metallb.io/node": "n1", "metallb.io/service-name": "www", "metallb.io/service-namespace": "web"});
    // Written as the speaker writes it: the object, then its status subresource. No spec:
    // an object without one must not stop anyone from reading the others.
    c.create("metallb.io", "servicel2statuses", NS, json!({"metadata": {"name": "l2-www", "labels": labels}}));
    let res = fakeapi::store::resource("metallb.io", "servicel2statuses").unwrap();
    let status = json!({"status": {"node": "n1", "serviceName": "www", "serviceNamespace": "web"}});
    c.api
        .shared
        .with(|s| s.patch(res, NS, "l2-www", fakeapi::store::Part::Status, "application/merge-patch+json", &status))
        .expect("status");
    // An Event a speaker published on the Service, and one from someone else.
    for (name, controller, reason) in [("e1", "lb-speaker", "announceFailed"), ("e2", "kubelet", "Other")] {
        c.create(
            "events.k8s.io",
            "events",
            "web",
            json!({"metadata": {"name": name}, "eventTime": now, "type": "Warning", "reason": reason,
                "note": "no interface on node \"n1\" can answer ARP/NDP for 10.0.0.5", "action": "Announce",
                "reportingController": controller, "reportingInstance": "n1",
                "regarding": {"kind": "Service", "namespace": "web", "name": "www"}}),
        );
    }
    let kubeconfig = c.dir.path("kubeconfig");
    let explain = |output: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_lb"))
            .args(["explain", "--kubeconfig", kubeconfig.to_str().unwrap(), "web/www", "--output", output])
            .output()
            .expect("lb runs");
        let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        (o.status.success(), text)
    };
    let (ok, text) = explain("json");
    assert!(ok, "{text}");
    let e: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(e["addresses"], json!(["10.0.0.5"]), "the status's address, restored");
    let a = &e["announce"][0];
    assert_eq!(a["l2_owner"], "n1");
    assert_eq!(verdict(&a["l2_nodes"], "n1")["ok"], true);
    assert!(verdict(&a["l2_nodes"], "n2")["why"].as_str().unwrap().contains("no speaker"), "{a}");
    assert!(verdict(&a["l2_nodes"], "n3")["why"].as_str().unwrap().contains("not Ready"), "{a}");
    assert!(verdict(&a["l2_nodes"], "n4")["why"].as_str().unwrap().contains("NetworkUnavailable"), "{a}");
    assert_eq!(e["reported"], json!(["n1 answers ARP/NDP for it (ServiceL2Status)"]));
    assert_eq!(
        e["events"],
        json!(["Warning announceFailed (n1): no interface on node \"n1\" can answer ARP/NDP for 10.0.0.5"])
    );

    // No endpoint can serve: announced nowhere, and each node says why.
    c.endpoint("www", Some("n1"), json!({"ready": false, "serving": false}));
    let (ok, text) = explain("json");
    assert!(ok, "{text}");
    let e: Value = serde_json::from_str(&text).expect("JSON");
    let a = &e["announce"][0];
    assert_eq!(a["l2_owner"], Value::Null, "{a}");
    assert!(verdict(&a["l2_nodes"], "n1")["why"].as_str().unwrap().contains("no endpoint"), "{a}");

    // An invalid configuration: every problem, and that the last valid one keeps running.
    c.pool("clash", json!({"addresses": ["10.0.0.5/32"]}));
    let (ok, text) = explain("text");
    assert!(!ok, "{text}");
    assert!(text.contains("clash") && text.contains("keep running the last valid configuration"), "{text}");
}

#[test]
fn from_a_cluster_the_owner_after_a_split_is_the_oldest_claim_of_a_live_speaker() {
    use serde_json::json;
    use support::cluster::{Cluster, NS};
    let c = Cluster::new("exs");
    c.node("n1", json!({}));
    c.node("n2", json!({}));
    c.pool("lan", json!({"addresses": ["10.0.0.1-10.0.0.9"]}));
    c.create("metallb.io", "l2advertisements", NS, json!({"metadata": {"name": "lan"}}));
    // Two Services share 10.0.0.5.
    for (name, port) in [("www", 80), ("www2", 81)] {
        c.service(name, json!({}), json!([{"port": port}]));
        c.patch_status("services", "web", name, json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.5"}]}}}));
    }
    let now = fakeapi::store::now_rfc3339();
    let lease = |node: &str, acquired: &str| {
        json!({"metadata": {"name": format!("lb-speaker-{node}")},
               "spec": {"holderIdentity": node, "renewTime": now, "acquireTime": acquired}})
    };
    c.create("coordination.k8s.io", "leases", NS, lease("n1", "2020-01-01T00:00:00Z"));
    c.create("coordination.k8s.io", "leases", NS, lease("n2", "2020-01-01T00:00:00Z"));
    // Claims after a split, in the order written (creation seconds never decrease, so a claim
    // written earlier is never younger): n2 for www2 at .600, n2 for www at .200, n1 for www
    // at .700. The object names sort so that a reader taking the last one for www would name
    // n1.
    let res = fakeapi::store::resource("metallb.io", "servicel2statuses").unwrap();
    let second = now.trim_end_matches('Z');
    for (object, node, svc, at) in
        [("l2-0", "n2", "www2", ".600Z"), ("l2-a", "n2", "www", ".200Z"), ("l2-b", "n1", "www", ".700Z")]
    {
        let meta = json!({"name": object, "annotations": {"lb/claimed-at": format!("{second}{at}")}});
        c.create("metallb.io", "servicel2statuses", NS, json!({"metadata": meta}));
        let status = json!({"status": {"node": node, "serviceName": svc, "serviceNamespace": "web"}});
        c.api
            .shared
            .with(|s| s.patch(res, NS, object, fakeapi::store::Part::Status, "application/merge-patch+json", &status))
            .expect("status");
    }
    let kubeconfig = c.dir.path("kubeconfig");
    let owner = || {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_lb"))
            .args(["explain", "--kubeconfig", kubeconfig.to_str().unwrap(), "web/www", "--output", "json"])
            .output()
            .expect("lb runs");
        let e: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        e["announce"][0]["l2_owner"].clone()
    };
    assert_eq!(owner(), "n2", "the oldest claim keeps the address, as the speakers decide");

    // n2's speaker restarted at .500: its claim for www (.200) is void, but the one it made
    // for www2 (.600) still counts for the shared address, and is older than n1's.
    let leases = fakeapi::store::resource("coordination.k8s.io", "leases").unwrap();
    let restart = |at: &str| {
        let restarted = json!({"spec": {"acquireTime": format!("{second}{at}")}});
        c.api
            .shared
            .with(|s| {
                s.patch(
                    leases,
                    NS,
                    "lb-speaker-n2",
                    fakeapi::store::Part::Main,
                    "application/merge-patch+json",
                    &restarted,
                )
            })
            .expect("lease");
    };
    restart(".500Z");
    assert_eq!(owner(), "n2", "claims count per address, whichever Service they were made for");
    // Restarted again at .650: none of n2's claims counts; n1's holds.
    restart(".650Z");
    assert_eq!(owner(), "n1");
}
