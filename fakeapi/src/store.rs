//! The fake API server's state: objects by resource, the global resourceVersion, the event
//! history that watches replay, and counters of writes.
//!
//! Invariants: every stored object's `metadata.resourceVersion` is the global version at its
//! last change; history events are in increasing version order; a write that changes nothing
//! bumps no version and emits no event (as the real API server does); watches that start
//! below `floor` are answered 410 Gone.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use crate::patch;

/// A resource the server knows: where it lives in the API and how it behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group ("" for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Plural (the path segment).
    pub plural: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Has a status subresource (status is written only through `/status`).
    pub status: bool,
}

impl Resource {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

macro_rules! res {
    ($g:literal, $v:literal, $p:literal, $k:literal, $ns:literal, $st:literal) => {
        Resource { group: $g, version: $v, plural: $p, kind: $k, namespaced: $ns, status: $st }
    };
}

/// Every resource served.
pub const RESOURCES: &[Resource] = &[
    res!("", "v1", "services", "Service", true, true),
    res!("", "v1", "namespaces", "Namespace", false, true),
    res!("", "v1", "nodes", "Node", false, true),
    res!("", "v1", "pods", "Pod", true, true),
    res!("", "v1", "secrets", "Secret", true, false),
    res!("", "v1", "configmaps", "ConfigMap", true, false),
    res!("", "v1", "events", "Event", true, false),
    res!("events.k8s.io", "v1", "events", "Event", true, false),
    res!("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, false),
    res!("coordination.k8s.io", "v1", "leases", "Lease", true, false),
    res!("metallb.io", "v1beta1", "ipaddresspools", "IPAddressPool", true, false),
    res!("metallb.io", "v1beta1", "l2advertisements", "L2Advertisement", true, false),
    res!("metallb.io", "v1beta1", "bgpadvertisements", "BGPAdvertisement", true, false),
    res!("metallb.io", "v1beta2", "bgppeers", "BGPPeer", true, false),
    res!("metallb.io", "v1beta1", "communities", "Community", true, false),
    res!("metallb.io", "v1beta1", "bfdprofiles", "BFDProfile", true, false),
    res!("metallb.io", "v1beta1", "servicel2statuses", "ServiceL2Status", true, true),
    res!("metallb.io", "v1beta1", "servicebgpstatuses", "ServiceBGPStatus", true, true),
];

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Change {
    /// Index into [`RESOURCES`].
    pub res: usize,
    /// The version the change created.
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object after the change (before it, for a deletion).
    pub object: Value,
    /// The object before a modification (selector watches compare both).
    pub old: Option<Value>,
}

/// An API error: HTTP code, reason and message, sent as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes' reason (`NotFound`, `Conflict`, `AlreadyExists`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into() }
    }

    /// The `Status` object the API server sends for this error.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        })
    }
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: everything but status (for resources with a status subresource).
    Main,
    /// The `/status` subresource: only status.
    Status,
}

/// How many history events are kept for watches to replay.
const HISTORY: usize = 200_000;

/// The whole state.
pub struct Store {
    rv: u64,
    uid: u64,
    objects: Vec<BTreeMap<(String, String), Value>>,
    history: VecDeque<Change>,
    /// Watches from a version below this get 410 Gone.
    pub floor: u64,
    tx: broadcast::Sender<Change>,
    writes: BTreeMap<String, u64>,
    /// The field manager of the write in progress (set by the HTTP layer around each write),
    /// recorded in `metadata.managedFields` as the API server does.
    pub manager: Option<String>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            rv: 1,
            uid: 0,
            objects: vec![BTreeMap::new(); RESOURCES.len()],
            history: VecDeque::new(),
            floor: 0,
            tx: broadcast::channel(1 << 16).0,
            writes: BTreeMap::new(),
            manager: None,
        }
    }
}

/// The current time as RFC 3339 in UTC, whole seconds (as `creationTimestamp` is written).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

impl Store {
    /// The current resourceVersion.
    pub fn version(&self) -> u64 {
        self.rv
    }

    /// Subscribes to every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Changes of `res` after version `since`, or None when history no longer reaches back
    /// that far.
    pub fn changes_since(&self, res: usize, since: u64) -> Option<Vec<Change>> {
        if since < self.floor {
            return None;
        }
        Some(self.history.iter().filter(|c| c.res == res && c.rv > since).cloned().collect())
    }

    /// Objects of `res` (in `ns`, or every namespace), in namespace/name order.
    pub fn list(&self, res: usize, ns: Option<&str>) -> Vec<Value> {
        self.objects[res].iter().filter(|((n, _), _)| ns.is_none_or(|ns| ns == n)).map(|(_, v)| v.clone()).collect()
    }

    /// One object.
    pub fn get(&self, res: usize, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects[res].get(&(ns.to_string(), name.to_string())).cloned().ok_or_else(|| not_found(res, name))
    }

    /// Write counters, by verb and resource (`PATCH services/status`).
    pub fn writes(&self) -> Value {
        json!(self.writes)
    }

    fn count(&mut self, verb: &str, res: usize, part: Part) {
        let sub = if part == Part::Status { "/status" } else { "" };
        *self.writes.entry(format!("{verb} {}{sub}", RESOURCES[res].plural)).or_default() += 1;
    }

    fn record(&mut self, res: usize, kind: &'static str, object: Value, old: Option<Value>) {
        let change = Change { res, rv: self.rv, kind, object, old };
        if self.history.len() == HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.floor = old.rv;
            }
        }
        self.history.push_back(change.clone());
        let _ = self.tx.send(change);
    }

    /// Drops the whole history: every watch from an older version gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.floor = self.rv;
    }

    /// Creates an object (POST).
    pub fn create(&mut self, res: usize, ns: &str, obj: Value) -> Result<Value, ApiError> {
        self.count("POST", res, Part::Main);
        self.insert_new(res, ns, obj, false)
    }

    fn insert_new(&mut self, res: usize, ns: &str, mut obj: Value, apply: bool) -> Result<Value, ApiError> {
        let r = RESOURCES[res];
        if !obj.is_object() {
            return Err(ApiError::new(400, "BadRequest", "the body must be an object"));
        }
        let m = obj.as_object_mut().and_then(|o| {
            o.entry("metadata").or_insert_with(|| json!({}));
            o.get_mut("metadata").and_then(Value::as_object_mut)
        });
        let Some(m) = m else { return Err(ApiError::new(400, "BadRequest", "metadata must be an object")) };
        let mut name = m.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            match m.get("generateName").and_then(Value::as_str) {
                Some(prefix) => name = format!("{prefix}{:05x}", (self.uid * 2_654_435_761) % 0xfffff),
                None => return Err(ApiError::new(422, "Invalid", "metadata.name: Required value")),
            }
        }
        let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or_default();
        if r.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "the namespace of the object does not match the namespace of the request",
            ));
        }
        let key = (if r.namespaced { ns.to_string() } else { String::new() }, name.clone());
        if self.objects[res].contains_key(&key) {
            return Err(ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", r.plural)));
        }
        self.rv += 1;
        self.uid += 1;
        m.insert("name".into(), json!(name));
        if r.namespaced {
            m.insert("namespace".into(), json!(ns));
        }
        m.insert("uid".into(), json!(format!("00000000-0000-4000-8000-{:012x}", self.uid)));
        m.insert("resourceVersion".into(), json!(self.rv.to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.insert("generation".into(), json!(1));
        m.remove("managedFields");
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".into(), json!(r.api_version()));
            o.insert("kind".into(), json!(r.kind));
            if r.status {
                o.remove("status");
            }
        }
        let written = obj.clone();
        self.track(res, &mut obj, &written, Part::Main, apply);
        self.objects[res].insert(key, obj.clone());
        self.record(res, "ADDED", obj.clone(), None);
        Ok(obj)
    }

    /// Replaces an object (PUT) with `new`, which must carry the current resourceVersion if
    /// it carries one.
    pub fn replace(&mut self, res: usize, ns: &str, name: &str, part: Part, new: Value) -> Result<Value, ApiError> {
        self.count("PUT", res, part);
        let old = self.get(res, ns, name)?;
        check_version(&new, &old, res, name)?;
        let fields = new.clone();
        self.commit(res, ns, name, part, old, new, (&fields, false))
    }

    /// Patches an object. `kind` is the Content-Type. Server-side apply creates the object
    /// when it does not exist.
    pub fn patch(
        &mut self,
        res: usize,
        ns: &str,
        name: &str,
        part: Part,
        kind: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        self.count("PATCH", res, part);
        let apply = kind.starts_with("application/apply-patch");
        let old = match self.get(res, ns, name) {
            Ok(o) => o,
            Err(e) if apply && part == Part::Main => {
                let mut obj = body.clone();
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("name".into(), json!(name));
                } else {
                    return Err(e);
                }
                return self.insert_new(res, ns, obj, true);
            }
            Err(e) => return Err(e),
        };
        let new = if kind.starts_with("application/json-patch") {
            patch::json_patch(&old, body).map_err(|m| ApiError::new(422, "Invalid", m))?
        } else {
            // Merge patch; strategic merge and apply are read as merge patches (lists are
            // replaced, not merged by key).
            check_version(body, &old, res, name)?;
            patch::merge(&old, body)
        };
        check_version(&new, &old, res, name)?;
        self.commit(res, ns, name, part, old, new, (body, apply))
    }

    /// Records the write in progress in `obj`'s `metadata.managedFields`, as the API server
    /// does for every create, update and patch: one entry per manager, operation and
    /// subresource, listing the fields the write set (`written`), time-stamped. Without a
    /// manager (a write made by a test directly on the store) nothing is recorded.
    fn track(&self, res: usize, obj: &mut Value, written: &Value, part: Part, apply: bool) {
        let Some(manager) = self.manager.clone() else { return };
        let mut fields = field_set(written);
        if let Some(m) = fields.get_mut("f:metadata").and_then(Value::as_object_mut) {
            for f in [
                "f:name",
                "f:namespace",
                "f:uid",
                "f:resourceVersion",
                "f:creationTimestamp",
                "f:generation",
                "f:managedFields",
            ] {
                m.remove(f);
            }
            if m.is_empty() {
                fields.as_object_mut().map(|o| o.remove("f:metadata"));
            }
        }
        if let Some(o) = fields.as_object_mut() {
            for f in ["f:apiVersion", "f:kind"] {
                o.remove(f);
            }
            match part {
                Part::Main if RESOURCES[res].status => drop(o.remove("f:status")),
                Part::Status => o.retain(|k, _| k == "f:status"),
                Part::Main => {}
            }
        }
        let operation = if apply { "Apply" } else { "Update" };
        let mut entry = json!({
            "manager": manager, "operation": operation, "apiVersion": RESOURCES[res].api_version(),
            "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": fields,
        });
        if part == Part::Status {
            entry["subresource"] = json!("status");
        }
        let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
        let list = m.entry("managedFields").or_insert_with(|| json!([]));
        if !list.is_array() {
            *list = json!([]);
        }
        if let Some(list) = list.as_array_mut() {
            let same = |e: &Value| {
                e["manager"] == entry["manager"]
                    && e["operation"] == entry["operation"]
                    && e.get("subresource") == entry.get("subresource")
            };
            list.retain(|e| !same(e));
            list.push(entry);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        res: usize,
        ns: &str,
        name: &str,
        part: Part,
        old: Value,
        new: Value,
        (written, apply): (&Value, bool),
    ) -> Result<Value, ApiError> {
        let r = RESOURCES[res];
        let mut out = old.clone();
        match part {
            Part::Status => match new.get("status") {
                Some(s) => set(&mut out, "status", s.clone()),
                None => remove(&mut out, "status"),
            },
            Part::Main => {
                let keep_status = old.get("status").cloned();
                out = new;
                if r.status {
                    match keep_status {
                        Some(s) => set(&mut out, "status", s),
                        None => remove(&mut out, "status"),
                    }
                }
                // Identity fields are the server's.
                for f in ["name", "namespace", "uid", "creationTimestamp", "generation"] {
                    match meta(&old).and_then(|m| m.get(f)) {
                        Some(v) => set_meta(&mut out, f, v.clone()),
                        None => remove_meta(&mut out, f),
                    }
                }
                set(&mut out, "apiVersion", json!(r.api_version()));
                set(&mut out, "kind", json!(r.kind));
                // managedFields are the server's record; a client's copy is not taken.
                match meta(&old).and_then(|m| m.get("managedFields")) {
                    Some(v) => set_meta(&mut out, "managedFields", v.clone()),
                    None => remove_meta(&mut out, "managedFields"),
                }
            }
        }
        set_meta(&mut out, "resourceVersion", old["metadata"]["resourceVersion"].clone());
        if out == old {
            return Ok(old);
        }
        self.track(res, &mut out, written, part, apply);
        if part == Part::Main && out.get("spec") != old.get("spec") {
            let g = old["metadata"]["generation"].as_u64().unwrap_or(1) + 1;
            set_meta(&mut out, "generation", json!(g));
        }
        self.rv += 1;
        set_meta(&mut out, "resourceVersion", json!(self.rv.to_string()));
        let key = (if r.namespaced { ns.to_string() } else { String::new() }, name.to_string());
        self.objects[res].insert(key, out.clone());
        self.record(res, "MODIFIED", out.clone(), Some(old));
        Ok(out)
    }

    /// Deletes an object.
    pub fn delete(&mut self, res: usize, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.count("DELETE", res, Part::Main);
        let r = RESOURCES[res];
        let key = (if r.namespaced { ns.to_string() } else { String::new() }, name.to_string());
        let Some(mut old) = self.objects[res].remove(&key) else { return Err(not_found(res, name)) };
        self.rv += 1;
        set_meta(&mut old, "resourceVersion", json!(self.rv.to_string()));
        self.record(res, "DELETED", old.clone(), None);
        Ok(old)
    }
}

fn not_found(res: usize, name: &str) -> ApiError {
    let r = RESOURCES[res];
    let what = if r.group.is_empty() { r.plural.to_string() } else { format!("{}.{}", r.plural, r.group) };
    ApiError::new(404, "NotFound", format!("{what} \"{name}\" not found"))
}

/// A write that names a resourceVersion must name the current one (optimistic concurrency).
fn check_version(new: &Value, old: &Value, res: usize, name: &str) -> Result<(), ApiError> {
    match (meta_str(new, "resourceVersion"), meta_str(old, "resourceVersion")) {
        (Some(n), Some(o)) if !n.is_empty() && n != o => Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                RESOURCES[res].plural
            ),
        )),
        _ => Ok(()),
    }
}

fn set(obj: &mut Value, field: &str, v: Value) {
    if let Some(o) = obj.as_object_mut() {
        o.insert(field.into(), v);
    }
}

fn remove(obj: &mut Value, field: &str) {
    if let Some(o) = obj.as_object_mut() {
        o.remove(field);
    }
}

fn set_meta(obj: &mut Value, field: &str, v: Value) {
    if let Some(o) = obj.as_object_mut() {
        let m = o.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = m.as_object_mut() {
            m.insert(field.into(), v);
        }
    }
}

fn remove_meta(obj: &mut Value, field: &str) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove(field);
    }
}

/// The index in [`RESOURCES`] of a group's plural (the newest version when several).
pub fn resource(group: &str, plural: &str) -> Option<usize> {
    RESOURCES.iter().position(|r| r.group == group && r.plural == plural)
}

/// The field set of an object as `fieldsV1` writes it: each key of a mapping as `f:KEY`,
/// nested; anything else (a list, a scalar) is a leaf `{}`.
fn field_set(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (format!("f:{k}"), field_set(v))).collect()),
        _ => json!({}),
    }
}
