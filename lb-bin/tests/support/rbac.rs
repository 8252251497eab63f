//! Whether the RBAC rules of `lb manifests` allow every request a process really made (the
//! fake API server records them, by bearer token): the stand-in for a real API server's
//! authorizer, so that a missing permission fails a test here rather than a user's install.

use fakeapi::Access;
use serde_json::Value;

fn allows(rule: &Value, a: &Access) -> bool {
    let has = |field: &str, v: &str| rule[field].as_array().is_some_and(|l| l.iter().any(|x| x == v));
    has("apiGroups", a.group) && has("resources", &a.resource) && has("verbs", a.verb)
}

/// The requests made with token `user` that the roles bound to ServiceAccount `sa` in the
/// manifest do not allow (empty: all allowed).
pub fn denied(accesses: &[Access], user: &str, sa: &str) -> Vec<String> {
    let args = lb_bin::manifests::Args {
        mode: lb_bin::manifests::Mode::Both,
        namespace: super::cluster::NS.into(),
        image: "lb:test".into(),
    };
    let objs = lb_bin::manifests::objects(&args);
    let bound = |kind: &str| -> Vec<&Value> {
        objs.iter()
            .filter(|b| b["kind"] == format!("{kind}Binding").as_str())
            .filter(|b| b["subjects"].as_array().is_some_and(|s| s.iter().any(|s| s["name"] == sa)))
            .filter_map(|b| objs.iter().find(|r| r["kind"] == kind && r["metadata"]["name"] == b["roleRef"]["name"]))
            .collect()
    };
    let (cluster, local) = (bound("ClusterRole"), bound("Role"));
    let mut out: Vec<String> = accesses
        .iter()
        .filter(|a| a.user == user)
        .filter(|a| {
            let by_cluster =
                cluster.iter().any(|r| r["rules"].as_array().is_some_and(|rs| rs.iter().any(|x| allows(x, a))));
            let by_local = a.namespace.as_deref() == Some(super::cluster::NS)
                && local.iter().any(|r| r["rules"].as_array().is_some_and(|rs| rs.iter().any(|x| allows(x, a))));
            !(by_cluster || by_local)
        })
        .map(|a| format!("{} {}/{} in {:?}", a.verb, a.group, a.resource, a.namespace))
        .collect();
    out.sort();
    out.dedup();
    out
}
