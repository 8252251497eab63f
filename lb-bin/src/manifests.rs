//! `lb manifests`: a complete install manifest, in MetalLB's shape (a controller Deployment
//! and a speaker DaemonSet in `metallb-system`), so `lb manifests | kubectl apply -f -`
//! installs lb, and a cluster's existing `metallb.io` objects keep working.
//!
//! Least privilege: no wildcard anywhere; cluster-wide rules only for what is cluster-wide
//! (Services, Namespaces, Nodes, EndpointSlices, Events), everything else in a Role in the
//! install namespace; the speaker's container gets NET_RAW only when L2 mode is installed,
//! and no other capability (it does not listen on port 179 unless told to); the controller
//! runs as a non-root user with nothing at all.
//!
//! Invariant: every object refers only to objects in the same manifest or built into
//! Kubernetes, and every container's arguments parse with `lb`'s own command line (the tests
//! check both).

use serde_json::{json, Value};

use crate::crds;
use crate::{Error, Result};

/// What to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// L2 mode only (ARP/NDP): the speaker gets NET_RAW.
    L2,
    /// BGP mode only: the speaker gets no capability.
    Bgp,
    /// Both.
    Both,
}

/// Arguments of `lb manifests`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which modes the speakers serve.
    #[arg(long, value_enum, default_value = "both")]
    pub mode: Mode,
    /// Namespace to install into (MetalLB's, so its config objects are found there).
    #[arg(long, default_value = "metallb-system")]
    pub namespace: String,
    /// Container image of lb (build it with the repository's Dockerfile).
    #[arg(long, default_value = concat!("lb:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
}

/// The port of /metrics, /healthz and /readyz in both pods.
pub const METRICS_PORT: u16 = 7472;

const CONFIG_KINDS: [&str; 6] =
    ["ipaddresspools", "l2advertisements", "bgpadvertisements", "bgppeers", "communities", "bfdprofiles"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn binding(kind: &str, name: &str, ns: &str) -> Value {
    let role_kind = kind.strip_suffix("Binding").unwrap_or(kind);
    let mut meta = json!({"name": name});
    if kind == "RoleBinding" {
        meta["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    })
}

fn role(kind: &str, name: &str, ns: &str, rules: Vec<Value>) -> Value {
    let mut meta = json!({"name": name});
    if kind == "Role" {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, "rules": rules})
}

fn probes() -> Value {
    let get = |path: &str| json!({"httpGet": {"path": path, "port": "monitoring"}, "periodSeconds": 10});
    json!({"livenessProbe": get("/healthz"), "readinessProbe": get("/readyz")})
}

fn env_from(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

/// Every object of the install, in apply order.
pub fn objects(args: &Args) -> Vec<Value> {
    let ns = args.namespace.as_str();
    let labels = |component: &str| json!({"app.kubernetes.io/name": "lb", "app.kubernetes.io/component": component});
    let mut out = vec![json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {
            // The speaker needs the host network and NET_RAW.
            "pod-security.kubernetes.io/enforce": "privileged",
            "pod-security.kubernetes.io/audit": "privileged",
            "pod-security.kubernetes.io/warn": "privileged"}},
    })];
    out.extend(crds::all().into_iter().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)));
    for sa in ["lb-controller", "lb-speaker"] {
        out.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}}));
    }
    let read = ["get", "list", "watch"];
    let events = rule(&["events.k8s.io"], &["events"], &["create", "patch"]);
    out.push(role(
        "ClusterRole",
        "lb-controller",
        ns,
        vec![
            rule(&[""], &["services"], &["get", "list", "watch", "patch"]),
            rule(&[""], &["services/status"], &["patch"]),
            rule(&[""], &["namespaces"], &read),
            events.clone(),
        ],
    ));
    out.push(role(
        "Role",
        "lb-controller",
        ns,
        vec![
            rule(&["metallb.io"], &CONFIG_KINDS, &read),
            rule(&["coordination.k8s.io"], &["leases"], &["get", "create", "update"]),
        ],
    ));
    out.push(role(
        "ClusterRole",
        "lb-speaker",
        ns,
        vec![
            rule(&[""], &["services", "nodes"], &read),
            rule(&["discovery.k8s.io"], &["endpointslices"], &read),
            events,
        ],
    ));
    out.push(role(
        "Role",
        "lb-speaker",
        ns,
        vec![
            rule(&["metallb.io"], &CONFIG_KINDS, &read),
            rule(
                &["metallb.io"],
                &["servicel2statuses", "servicebgpstatuses"],
                &["get", "list", "watch", "create", "patch", "delete"],
            ),
            rule(&["metallb.io"], &["servicel2statuses/status", "servicebgpstatuses/status"], &["patch"]),
            rule(&["coordination.k8s.io"], &["leases"], &["get", "list", "watch", "create", "update", "delete"]),
            // BGPPeer passwordSecret, as MetalLB's speaker reads it (this namespace only).
            rule(&[""], &["secrets"], &["get", "list", "watch"]),
        ],
    ));
    for name in ["lb-controller", "lb-speaker"] {
        out.push(binding("ClusterRoleBinding", name, ns));
        out.push(binding("RoleBinding", name, ns));
    }
    let port = json!([{"name": "monitoring", "containerPort": METRICS_PORT}]);
    let metrics_arg = format!("--metrics-addr=0.0.0.0:{METRICS_PORT}");
    let mut controller = json!({
        "name": "controller", "image": args.image, "args": ["controller", metrics_arg],
        "env": [env_from("POD_NAME", "metadata.name"), env_from("LB_NAMESPACE", "metadata.namespace")],
        "ports": port,
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}},
    });
    merge(&mut controller, probes());
    out.push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "lb-controller", "namespace": ns, "labels": labels("controller")},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels("controller")},
            "template": {
                "metadata": {"labels": labels("controller")},
                "spec": {
                    "serviceAccountName": "lb-controller",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 10,
                    "containers": [controller],
                },
            },
        },
    }));
    // Raw sockets need NET_RAW in the effective set, which Kubernetes gives only to root
    // (there are no ambient capabilities): the L2 speaker runs as root with that one
    // capability; a BGP-only speaker needs none and runs as nobody.
    let (caps, user): (Vec<&str>, u32) = if args.mode == Mode::Bgp { (vec![], 65534) } else { (vec!["NET_RAW"], 0) };
    // The membership key comes from a Secret the user creates (see the README); without it
    // the speakers still work, with Lease-based liveness only.
    let key = json!({"name": "LB_MEMBERLIST_KEY", "valueFrom": {"secretKeyRef":
        {"name": "lb-memberlist", "key": "secretkey", "optional": true}}});
    let speaker_ports = json!([
        {"name": "monitoring", "containerPort": METRICS_PORT},
        {"name": "memberlist-udp", "containerPort": 7946, "protocol": "UDP"},
    ]);
    let mut speaker = json!({
        "name": "speaker", "image": args.image, "args": ["speaker", metrics_arg],
        "env": [env_from("NODE_NAME", "spec.nodeName"), env_from("LB_NAMESPACE", "metadata.namespace"), key],
        "ports": speaker_ports,
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                            "runAsUser": user, "capabilities": {"drop": ["ALL"], "add": caps}},
    });
    merge(&mut speaker, probes());
    out.push(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "lb-speaker", "namespace": ns, "labels": labels("speaker")},
        "spec": {
            "selector": {"matchLabels": labels("speaker")},
            "template": {
                "metadata": {"labels": labels("speaker")},
                "spec": {
                    "serviceAccountName": "lb-speaker",
                    "hostNetwork": true,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [
                        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
                    ],
                    "terminationGracePeriodSeconds": 5,
                    "containers": [speaker],
                },
            },
        },
    }));
    out
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// `lb manifests`: the objects as YAML documents.
pub fn print(args: &Args, out: &mut impl std::io::Write) -> Result<()> {
    for o in objects(args) {
        let yaml =
            serde_saphyr::to_string(&o).map_err(|e| Error::Invalid(format!("cannot print the manifest: {e}")))?;
        writeln!(out, "---\n{}", yaml.trim_end())?;
    }
    Ok(())
}
