//! `lb manifests`: the install manifest parses, refers only to what exists (in the manifest
//! or built into Kubernetes), grants no wildcard, gives the speaker only the capabilities its
//! mode needs, and runs containers whose arguments `lb` itself accepts. (That the RBAC is
//! also enough is checked where the processes run: see tests/support/rbac.rs.)

use std::collections::BTreeSet;
use std::process::Command;

use clap::Parser;
use lb_bin::cli::{Cli, Command as Sub};
use serde_json::Value;

fn manifest(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_lb")).arg("manifests").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn named<'a>(objs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objs.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn containers(o: &Value) -> Vec<&Value> {
    o["spec"]["template"]["spec"]["containers"].as_array().map(|c| c.iter().collect()).unwrap_or_default()
}

/// Resources built into Kubernetes that lb may be granted, by API group.
const BUILT_IN: &[(&str, &str)] = &[
    ("", "services"),
    ("", "services/status"),
    ("", "namespaces"),
    ("", "nodes"),
    ("", "secrets"),
    ("", "pods"),
    ("discovery.k8s.io", "endpointslices"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
];

#[test]
fn the_manifest_refers_only_to_what_exists_and_grants_no_wildcard() {
    let objs = manifest(&[]);
    let ns = objs.iter().find(|o| o["kind"] == "Namespace").expect("a Namespace")["metadata"]["name"].clone();
    assert_eq!(ns, "metallb-system");
    let mut known: BTreeSet<(String, String)> = BUILT_IN.iter().map(|(g, r)| (g.to_string(), r.to_string())).collect();
    for crd in objs.iter().filter(|o| o["kind"] == "CustomResourceDefinition") {
        let (g, plural) = (crd["spec"]["group"].as_str().unwrap(), crd["spec"]["names"]["plural"].as_str().unwrap());
        known.insert((g.into(), plural.into()));
        if crd["spec"]["versions"][0]["subresources"]["status"].is_object() {
            known.insert((g.into(), format!("{plural}/status")));
        }
    }
    assert_eq!(objs.iter().filter(|o| o["kind"] == "CustomResourceDefinition").count(), 8);
    let verbs: BTreeSet<&str> = ["get", "list", "watch", "create", "update", "patch", "delete"].into();
    for o in &objs {
        let kind = o["kind"].as_str().unwrap_or_default();
        assert!(o["apiVersion"].is_string() && o["metadata"]["name"].is_string(), "{o}");
        if matches!(kind, "ServiceAccount" | "Role" | "RoleBinding" | "Deployment" | "DaemonSet") {
            assert_eq!(o["metadata"]["namespace"], ns, "{kind} {} is in the install namespace", o["metadata"]["name"]);
        }
        if matches!(kind, "Role" | "ClusterRole") {
            for r in o["rules"].as_array().unwrap() {
                for (field, v) in
                    [("apiGroups", &r["apiGroups"]), ("resources", &r["resources"]), ("verbs", &r["verbs"])]
                {
                    assert!(!v.as_array().unwrap().iter().any(|x| x == "*"), "a wildcard in {field} of {kind}");
                }
                for g in r["apiGroups"].as_array().unwrap() {
                    for res in r["resources"].as_array().unwrap() {
                        let k = (g.as_str().unwrap().to_string(), res.as_str().unwrap().to_string());
                        assert!(
                            known.contains(&k),
                            "{kind} {} grants an unknown resource {k:?}",
                            o["metadata"]["name"]
                        );
                    }
                }
                for v in r["verbs"].as_array().unwrap() {
                    assert!(verbs.contains(v.as_str().unwrap()), "unknown verb {v}");
                }
            }
        }
        if matches!(kind, "RoleBinding" | "ClusterRoleBinding") {
            let role = &o["roleRef"];
            assert!(named(&objs, role["kind"].as_str().unwrap(), role["name"].as_str().unwrap()).is_some(), "{o}");
            for s in o["subjects"].as_array().unwrap() {
                assert_eq!(s["namespace"], ns);
                assert!(named(&objs, "ServiceAccount", s["name"].as_str().unwrap()).is_some(), "{s}");
            }
        }
        if matches!(kind, "Deployment" | "DaemonSet") {
            let sa = o["spec"]["template"]["spec"]["serviceAccountName"].as_str().unwrap();
            assert!(named(&objs, "ServiceAccount", sa).is_some(), "{kind} runs as {sa}");
            let labels = &o["spec"]["template"]["metadata"]["labels"];
            assert_eq!(&o["spec"]["selector"]["matchLabels"], labels, "the selector matches the pods");
        }
    }
}

#[test]
fn containers_run_arguments_lb_accepts() {
    let objs = manifest(&["--image", "registry.test/lb:1"]);
    let mut seen = BTreeSet::new();
    for o in objs.iter().filter(|o| o["kind"] == "Deployment" || o["kind"] == "DaemonSet") {
        for c in containers(o) {
            assert_eq!(c["image"], "registry.test/lb:1");
            // Environment the kubelet fills in from the pod (fieldRef) gets a stand-in value.
            for e in c["env"].as_array().into_iter().flatten() {
                std::env::set_var(e["name"].as_str().unwrap(), "stand-in");
            }
            let args: Vec<String> =
                c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
            let cli = Cli::try_parse_from(std::iter::once("lb".to_string()).chain(args.clone()))
                .unwrap_or_else(|e| panic!("lb {args:?}: {e}"));
            seen.insert(match cli.command {
                Sub::Controller(_) => "controller",
                Sub::Speaker(_) => "speaker",
                _ => "other",
            });
            let port = c["ports"][0]["containerPort"].as_u64().unwrap();
            assert!(args.iter().any(|a| a.ends_with(&format!(":{port}"))), "metrics served on the declared port");
            assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        }
    }
    assert_eq!(seen, ["controller", "speaker"].into());
}

#[test]
fn each_mode_gets_only_the_capabilities_it_needs() {
    for (mode, caps, user) in [("l2", vec!["NET_RAW"], 0), ("both", vec!["NET_RAW"], 0), ("bgp", vec![], 65534)] {
        let objs = manifest(&["--mode", mode]);
        let speaker = objs.iter().find(|o| o["kind"] == "DaemonSet").unwrap();
        assert_eq!(speaker["spec"]["template"]["spec"]["hostNetwork"], true);
        let sc = &containers(speaker)[0]["securityContext"];
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        let added: Vec<&str> =
            sc["capabilities"]["add"].as_array().into_iter().flatten().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(added, caps, "mode {mode}");
        assert_eq!(sc["runAsUser"], user, "mode {mode}: root only to use NET_RAW");
        let ctl = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert_eq!(ctl["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], true);
        assert!(containers(ctl)[0]["securityContext"]["capabilities"]["add"].is_null());
    }
}

/// Every permission the manifest grants, one line per role, group/resource and verbs. A new
/// permission fails this test until it is added here, on purpose: least privilege is kept
/// by review, and the end-to-end tests check (support::rbac) that each of these is enough.
#[test]
fn every_permission_granted_is_listed_here() {
    let mut got = Vec::new();
    for o in manifest(&[]) {
        let kind = o["kind"].as_str().unwrap_or_default().to_string();
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        for r in o["rules"].as_array().unwrap() {
            let mut verbs: Vec<&str> = r["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            verbs.sort_unstable();
            for g in r["apiGroups"].as_array().unwrap() {
                for res in r["resources"].as_array().unwrap() {
                    let group = g.as_str().filter(|g| !g.is_empty()).unwrap_or("core");
                    got.push(format!(
                        "{kind} {}: {group}/{} {}",
                        o["metadata"]["name"].as_str().unwrap(),
                        res.as_str().unwrap(),
                        verbs.join(",")
                    ));
                }
            }
        }
    }
    let want = "\
ClusterRole lb-controller: core/services get,list,patch,watch
ClusterRole lb-controller: core/services/status patch
ClusterRole lb-controller: core/namespaces get,list,watch
ClusterRole lb-controller: events.k8s.io/events create,patch
Role lb-controller: metallb.io/ipaddresspools get,list,watch
Role lb-controller: metallb.io/l2advertisements get,list,watch
Role lb-controller: metallb.io/bgpadvertisements get,list,watch
Role lb-controller: metallb.io/bgppeers get,list,watch
Role lb-controller: metallb.io/communities get,list,watch
Role lb-controller: metallb.io/bfdprofiles get,list,watch
Role lb-controller: coordination.k8s.io/leases create,get,update
ClusterRole lb-speaker: core/services get,list,watch
ClusterRole lb-speaker: core/nodes get,list,watch
ClusterRole lb-speaker: discovery.k8s.io/endpointslices get,list,watch
ClusterRole lb-speaker: events.k8s.io/events create,patch
Role lb-speaker: metallb.io/ipaddresspools get,list,watch
Role lb-speaker: metallb.io/l2advertisements get,list,watch
Role lb-speaker: metallb.io/bgpadvertisements get,list,watch
Role lb-speaker: metallb.io/bgppeers get,list,watch
Role lb-speaker: metallb.io/communities get,list,watch
Role lb-speaker: metallb.io/bfdprofiles get,list,watch
Role lb-speaker: metallb.io/servicel2statuses create,delete,get,list,patch,watch
Role lb-speaker: metallb.io/servicebgpstatuses create,delete,get,list,patch,watch
Role lb-speaker: metallb.io/servicel2statuses/status patch
Role lb-speaker: metallb.io/servicebgpstatuses/status patch
Role lb-speaker: coordination.k8s.io/leases create,delete,get,list,update,watch
Role lb-speaker: core/secrets get,list,watch";
    assert_eq!(got.join("\n"), want);
}
