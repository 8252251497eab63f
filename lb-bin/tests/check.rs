//! `lb check` as a user runs it: the real binary on files, its exit status, stdout and stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn lb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lb")).args(args).current_dir(root()).output().expect("run lb")
}

/// Writes `text` to `name` in a directory of this test process and test (`tag`), so tests
/// running in parallel never see each other's files.
fn tmp_file(tag: &str, name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lb-check-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn homelab_example_text_and_json() {
    let out = lb(&["check", "examples/homelab-l2.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("web/ingress         10.10.1.64  web"), "{text}");
    assert!(text.contains("monitoring/grafana  10.10.1.33  default-pool"), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning:") && stderr.contains("autoAssign: false"), "{stderr}");

    let v = json(&lb(&["check", "--output", "json", "examples/homelab-l2.yaml"]));
    assert_eq!(
        v["pools"],
        serde_json::json!([
            {"name": "default-pool", "size": 31, "assigned": 1},
            {"name": "dns", "size": 1, "assigned": 1},
            {"name": "web", "size": 1, "assigned": 1},
        ])
    );
    let services: Vec<(String, String, Vec<String>, String)> = v["services"]
        .as_array()
        .expect("services array")
        .iter()
        .map(|s| {
            assert!(s["error"].is_null());
            (
                s["namespace"].as_str().unwrap().to_string(),
                s["name"].as_str().unwrap().to_string(),
                s["ips"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect(),
                s["pool"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect =
        |ns: &str, n: &str, ip: &str, p: &str| (ns.to_string(), n.to_string(), vec![ip.to_string()], p.to_string());
    assert_eq!(
        services,
        [
            expect("web", "ingress", "10.10.1.64", "web"),
            expect("dns", "dns-udp", "10.10.1.65", "dns"),
            expect("dns", "dns-tcp", "10.10.1.65", "dns"),
            expect("monitoring", "grafana", "10.10.1.33", "default-pool"),
        ]
    );
}

#[test]
fn dual_stack_from_two_pools_lists_both() {
    let v = json(&lb(&["check", "-o", "json", "examples/bgp-ecmp.yaml"]));
    let s = &v["services"][0];
    assert_eq!(s["ips"], serde_json::json!(["203.0.113.1", "2001:db8:100::"]), "avoidBuggyIPs skips 203.0.113.0");
    assert_eq!(s["pool"], "public-v4,public-v6");
    assert_eq!(v["pools"][0]["size"], 63);
}

#[test]
fn directories_and_huge_pools() {
    let dir = tmp_file(
        "dir",
        "a.yaml",
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: huge}\nspec: {addresses: [\"2001:db8::/32\"]}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n",
    );
    tmp_file("dir", "b.yml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: LoadBalancer}\n");
    let out = lb(&["check", "-o", "json", dir.parent().unwrap().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(raw.contains("\"size\": 79228162514264337593543950336"), "2^96 printed as a JSON number: {raw}");
    let v = json(&out);
    assert_eq!(v["services"][0]["namespace"], "default");
    assert_eq!(v["services"][0]["ips"][0], "2001:db8::");
}

#[test]
fn unassignable_services_are_reported_not_fatal() {
    let f = tmp_file(
        "pending",
        "pending.yaml",
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/32], autoAssign: false}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x, annotations: {metallb.io/address-pool: nope}}\nspec: {type: LoadBalancer}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: x}\nspec: {type: LoadBalancer, loadBalancerIP: 192.0.2.1}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: c, namespace: x}\nspec: {type: ClusterIP}\n",
    );
    let out = lb(&["check", "-o", "json", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let svcs = v["services"].as_array().unwrap();
    assert_eq!(svcs.len(), 2, "only LoadBalancer services are listed");
    assert_eq!(svcs[0]["ips"], serde_json::json!([]));
    assert!(svcs[0]["pool"].is_null());
    assert!(svcs[0]["error"].as_str().unwrap().contains("pool \"nope\""));
    assert!(svcs[1]["error"].as_str().unwrap().contains("192.0.2.1 is not in any pool"));
}

#[test]
fn invalid_configuration_exits_1_with_every_error_on_stderr() {
    let f = tmp_file(
        "broken",
        "broken.yaml",
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.9-10.0.0.1]}\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, holdTime: 2s}\n",
    );
    let out = lb(&["check", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains("broken.yaml (document 1): IPAddressPool \"p\": spec.addresses[0] \"10.0.0.9-10.0.0.1\": range start 10.0.0.9 is after its end 10.0.0.1"), "{err}");
    assert!(lines[1].contains("broken.yaml (document 2): BGPPeer \"tor\": spec.holdTime \"2s\""), "{err}");
}

#[test]
fn strict_turns_warnings_into_errors() {
    let out = lb(&["check", "--strict", "examples/homelab-l2.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("error: examples/homelab-l2.yaml (document 2): IPAddressPool \"dns\": spec.autoAssign"));
}

#[test]
fn usage_errors_exit_2_and_missing_files_exit_1() {
    assert_eq!(lb(&["check"]).status.code(), Some(2));
    assert_eq!(lb(&["check", "--output", "xml", "examples"]).status.code(), Some(2));
    let out = lb(&["check", "/nonexistent/lb.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/lb.yaml"));
}

#[test]
fn a_typo_in_a_service_keeps_its_address() {
    let f = tmp_file(
        "typo",
        "typo.yaml",
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/31]}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {type: LoadBalancer, ipFamilyPolicy: singlestack}\nstatus: {loadBalancer: {ingress: [{ip: 10.0.0.0}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: x}\nspec: {type: LoadBalancer}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: c, namespace: x, annotations: {metallb.io/address-pool: gone}}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 10.0.0.1}]}}\n",
    );
    let v = json(&lb(&["check", "-o", "json", f.to_str().unwrap()]));
    let s = &v["services"];
    assert_eq!(s[0]["ips"], serde_json::json!(["10.0.0.0"]), "the typo does not free 10.0.0.0");
    assert!(s[0]["error"].as_str().unwrap().contains("singlestack"));
    assert_eq!(s[1]["ips"], serde_json::json!([]), "b finds no free address rather than taking a's");
    assert_eq!(s[2]["ips"], serde_json::json!(["10.0.0.1"]), "c keeps what it holds while its new request fails");
    assert!(s[2]["error"].as_str().unwrap().contains("\"gone\""));
    assert_eq!(v["pools"][0]["assigned"], 2);
}
