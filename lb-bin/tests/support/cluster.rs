//! A fake Kubernetes API server (the `fakeapi` crate, in this process) for end-to-end tests
//! of `lb controller` and `lb speaker`, with helpers to create and read objects directly.

use std::process::Command;

use fakeapi::store::resource;
use fakeapi::FakeApi;
use serde_json::{json, Value};

use super::{Proc, Scratch};

/// The config namespace.
pub const NS: &str = "metallb-system";

/// A fake API server with a scratch directory holding its kubeconfig.
pub struct Cluster {
    pub api: FakeApi,
    pub dir: Scratch,
}

impl Cluster {
    pub fn new(tag: &str) -> Cluster {
        let api = FakeApi::start_background().expect("fake API server");
        let dir = Scratch::new(tag);
        std::fs::write(dir.path("kubeconfig"), api.kubeconfig_for("lb-controller")).unwrap();
        std::fs::write(dir.path("kubeconfig-speaker"), api.kubeconfig_for("lb-speaker")).unwrap();
        let c = Cluster { api, dir };
        c.create("", "namespaces", "", json!({"metadata": {"name": NS}}));
        c.create("", "namespaces", "", json!({"metadata": {"name": "web", "labels": {"team": "web"}}}));
        c
    }

    pub fn create(&self, group: &str, plural: &str, ns: &str, obj: Value) -> Value {
        let res = resource(group, plural).expect("a known resource");
        self.api.shared.with(|s| s.create(res, ns, obj)).expect("create")
    }

    /// Deletes a core (v1) object.
    pub fn delete(&self, plural: &str, ns: &str, name: &str) {
        let res = resource("", plural).unwrap();
        self.api.shared.with(|s| s.delete(res, ns, name)).expect("delete");
    }

    /// A merge patch of an object's main resource.
    pub fn patch(&self, group: &str, plural: &str, ns: &str, name: &str, p: Value) {
        let res = resource(group, plural).unwrap();
        self.api
            .shared
            .with(|s| s.patch(res, ns, name, fakeapi::store::Part::Main, "application/merge-patch+json", &p))
            .expect("patch");
    }

    /// A merge patch of a core object's status subresource, as `kubectl patch --subresource
    /// status` sends it.
    pub fn patch_status(&self, plural: &str, ns: &str, name: &str, p: Value) {
        let res = resource("", plural).unwrap();
        self.api
            .shared
            .with(|s| s.patch(res, ns, name, fakeapi::store::Part::Status, "application/merge-patch+json", &p))
            .expect("status patch");
    }

    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Value {
        let res = resource("", plural).unwrap();
        self.api.shared.with(|s| s.get(res, ns, name)).unwrap_or(Value::Null)
    }

    pub fn ips(&self, ns: &str, name: &str) -> Vec<String> {
        let svc = self.get("services", ns, name);
        svc["status"]["loadBalancer"]["ingress"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["ip"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    pub fn writes(&self, what: &str) -> u64 {
        self.api.shared.with(|s| s.writes())[what].as_u64().unwrap_or(0)
    }

    pub fn events(&self, ns: &str) -> Vec<Value> {
        let res = resource("events.k8s.io", "events").unwrap();
        self.api.shared.with(|s| s.list(res, Some(ns)))
    }

    pub fn pool(&self, name: &str, spec: Value) {
        self.create("metallb.io", "ipaddresspools", NS, json!({"metadata": {"name": name}, "spec": spec}));
    }

    /// A LoadBalancer Service in namespace `web`, with one ready endpoint (EndpointSlice
    /// `NAME-x`, on no particular node), as a Service with a running pod has.
    pub fn service(&self, name: &str, annotations: Value, ports: Value) {
        self.create(
            "",
            "services",
            "web",
            json!({"metadata": {"name": name, "annotations": annotations},
                   "spec": {"type": "LoadBalancer", "ports": ports}}),
        );
        self.endpoint(name, None, json!({"ready": true}));
    }

    /// Sets the one endpoint of Service `web/NAME` (EndpointSlice `NAME-x`): on `node`, with
    /// `conditions` (ready, serving, terminating).
    pub fn endpoint(&self, svc: &str, node: Option<&str>, conditions: Value) {
        let slice = format!("{svc}-x");
        let mut ep = json!({"addresses": ["10.244.0.9"], "conditions": conditions});
        if let Some(n) = node {
            ep["nodeName"] = json!(n);
        }
        let obj = json!({
            "metadata": {"name": slice, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "endpoints": [ep]});
        let res = resource("discovery.k8s.io", "endpointslices").unwrap();
        let exists = self.api.shared.with(|s| s.get(res, "web", &slice)).is_ok();
        if exists {
            self.patch("discovery.k8s.io", "endpointslices", "web", &slice, json!({"endpoints": obj["endpoints"]}));
        } else {
            self.create("discovery.k8s.io", "endpointslices", "web", obj);
        }
    }

    /// Sets a Node's conditions (Ready True, and NetworkUnavailable as given).
    pub fn node_network(&self, name: &str, unavailable: bool) {
        let st = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "NetworkUnavailable", "status": if unavailable { "True" } else { "False" }}]}});
        self.patch_status("nodes", "", name, st);
    }

    pub fn controller(&self, identity: &str) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lb"));
        cmd.args([
            "controller",
            "--identity",
            identity,
            "--lease-duration",
            "3s",
            "--renew-deadline",
            "2s",
            "--lease-retry",
            "500ms",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", self.dir.path("kubeconfig"))
        .env("RUST_LOG", "info");
        Proc::spawn(cmd, &self.dir.0, identity)
    }

    pub fn holder(&self) -> Option<String> {
        let res = resource("coordination.k8s.io", "leases").unwrap();
        let lease = self.api.shared.with(|s| s.get(res, NS, "lb-controller")).ok()?;
        lease["spec"]["holderIdentity"].as_str().map(str::to_string)
    }

    /// A Ready Node with `labels`.
    pub fn node(&self, name: &str, labels: Value) {
        self.create("", "nodes", "", json!({"metadata": {"name": name, "labels": labels}}));
        let res = resource("", "nodes").unwrap();
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        self.api
            .shared
            .with(|s| s.patch(res, "", name, fakeapi::store::Part::Status, "application/merge-patch+json", &status))
            .expect("node status");
    }

    /// Sets a Node's Ready condition, as its kubelet would.
    pub fn node_ready(&self, name: &str, ready: bool) {
        let res = resource("", "nodes").unwrap();
        let status = if ready { "True" } else { "False" };
        let st = json!({"status": {"conditions": [{"type": "Ready", "status": status}]}});
        self.api
            .shared
            .with(|s| s.patch(res, "", name, fakeapi::store::Part::Status, "application/merge-patch+json", &st))
            .expect("node status");
    }

    /// A Ready Node whose InternalIP is `ip`.
    pub fn node_at(&self, name: &str, ip: &str) {
        self.create("", "nodes", "", json!({"metadata": {"name": name}}));
        let res = resource("", "nodes").unwrap();
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}],
                                       "addresses": [{"type": "InternalIP", "address": ip}]}});
        self.api
            .shared
            .with(|s| s.patch(res, "", name, fakeapi::store::Part::Status, "application/merge-patch+json", &status))
            .expect("node status");
    }

    /// Objects of a namespaced resource.
    pub fn list(&self, group: &str, plural: &str, ns: &str) -> Vec<Value> {
        let res = resource(group, plural).unwrap();
        self.api.shared.with(|s| s.list(res, Some(ns)))
    }
}

/// The address a process said it serves /metrics on (from its log).
pub fn metrics_addr(p: &Proc) -> Option<String> {
    let log = p.stderr();
    let line = log.lines().find(|l| l.contains("serving /metrics"))?;
    let at = line.split_whitespace().find_map(|w| w.strip_prefix("addr="))?;
    Some(at.trim_matches('"').to_string())
}

/// `GET path` over plain HTTP/1.0: the status code and the body.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}
