//! The CRDs `lb crds` prints: structural by Kubernetes' rules, and accepting MetalLB's own
//! documented objects (the stand-in for a real API server, which cannot be installed here).

use std::path::Path;
use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use lb_bin::crds;
use serde_json::{Map, Value};

/// Kubernetes' structural-schema rules (apiextensions `ValidateStructural` and friends), plus
/// ours: no defaults, only known formats.
fn structural_problems(s: &Value, path: &str, root: bool, out: &mut Vec<String>) {
    let Some(m) = s.as_object() else {
        out.push(format!("{path}: a schema must be an object"));
        return;
    };
    for banned in ["$ref", "definitions", "$defs", "$schema", "default"] {
        if m.contains_key(banned) {
            out.push(format!("{path}: {banned} is not allowed"));
        }
    }
    let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    match m.get("type").and_then(Value::as_str) {
        Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
        Some(t) => out.push(format!("{path}: unknown type {t:?}")),
        None if preserve || int_or_string => {}
        None => out.push(format!("{path}: every schema needs a type")),
    }
    if let Some(f) = m.get("format").and_then(Value::as_str) {
        if !["int32", "int64", "float", "double", "date-time", "byte"].contains(&f) {
            out.push(format!("{path}: format {f:?} is unknown to Kubernetes"));
        }
    }
    if m.contains_key("properties") && m.contains_key("additionalProperties") {
        out.push(format!("{path}: properties and additionalProperties are mutually exclusive"));
    }
    if m.get("type").and_then(Value::as_str) == Some("array") && !m.contains_key("items") {
        out.push(format!("{path}: an array needs items"));
    }
    for j in ["allOf", "anyOf", "oneOf", "not"] {
        let subs: Vec<&Value> = match m.get(j) {
            Some(Value::Array(v)) => v.iter().collect(),
            Some(one) => vec![one],
            None => continue,
        };
        for sub in subs {
            for k in ["type", "default", "additionalProperties", "nullable", "description"] {
                if sub.get(k).is_some() {
                    out.push(format!("{path}.{j}: {k} is not allowed inside a logical junctor"));
                }
            }
        }
    }
    if let Some(Value::Object(props)) = m.get("properties") {
        for (k, v) in props {
            if root && k == "metadata" {
                let only_type = v.as_object().is_some_and(|o| o.keys().all(|k| k == "type"));
                if !only_type {
                    out.push(format!("{path}.metadata: only name and generateName may be restricted"));
                }
                continue;
            }
            structural_problems(v, &format!("{path}.{k}"), false, out);
        }
    }
    if let Some(items) = m.get("items") {
        structural_problems(items, &format!("{path}[]"), false, out);
    }
    if let Some(add @ Value::Object(_)) = m.get("additionalProperties") {
        structural_problems(add, &format!("{path}{{}}"), false, out);
    }
}

/// What the API server would refuse or prune in `v` under schema `s`: type mismatches,
/// nulls where not nullable, missing required fields, unknown fields.
fn validate(v: &Value, s: &Value, path: &str, out: &mut Vec<String>) {
    let nullable = s.get("nullable") == Some(&Value::Bool(true));
    if v.is_null() {
        if !nullable {
            out.push(format!("{path}: null is not allowed"));
        }
        return;
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or_default();
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !ok {
        out.push(format!("{path}: {v} is not of type {ty}"));
        return;
    }
    match v {
        Value::Object(obj) => {
            let props = s.get("properties").and_then(Value::as_object);
            for req in s.get("required").and_then(Value::as_array).into_iter().flatten() {
                if !obj.contains_key(req.as_str().unwrap_or_default()) {
                    out.push(format!("{path}: {req} is required"));
                }
            }
            for (k, child) in obj {
                match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                    (Some(cs), _) => validate(child, cs, &format!("{path}.{k}"), out),
                    (None, Some(add @ Value::Object(_))) => validate(child, add, &format!("{path}.{k}"), out),
                    _ if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) => {}
                    _ => out.push(format!("{path}.{k}: unknown field (the API server would drop it)")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item, is, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn schemas() -> Vec<(String, String, String, Value)> {
    let mut out = Vec::new();
    for crd in crds::all() {
        let json = serde_json::to_value(&crd).unwrap();
        for v in json["spec"]["versions"].as_array().unwrap().iter().filter(|v| v["served"] == true) {
            let group = json["spec"]["group"].as_str().unwrap();
            out.push((
                format!("{group}/{}", v["name"].as_str().unwrap()),
                json["spec"]["names"]["kind"].as_str().unwrap().to_string(),
                json["metadata"]["name"].as_str().unwrap().to_string(),
                v["schema"]["openAPIV3Schema"].clone(),
            ));
        }
    }
    out
}

#[test]
fn every_crd_schema_is_structural() {
    let all = schemas();
    assert_eq!(all.len(), 8, "six config kinds and two status kinds");
    let mut problems = Vec::new();
    for (_, kind, _, schema) in &all {
        structural_problems(schema, kind, true, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn names_versions_and_scope_are_metallbs() {
    let got: Vec<(String, String, String)> =
        schemas().into_iter().map(|(api, kind, name, _)| (api, kind, name)).collect();
    let want = [
        ("metallb.io/v1beta1", "IPAddressPool", "ipaddresspools.metallb.io"),
        ("metallb.io/v1beta1", "L2Advertisement", "l2advertisements.metallb.io"),
        ("metallb.io/v1beta1", "BGPAdvertisement", "bgpadvertisements.metallb.io"),
        ("metallb.io/v1beta2", "BGPPeer", "bgppeers.metallb.io"),
        ("metallb.io/v1beta1", "Community", "communities.metallb.io"),
        ("metallb.io/v1beta1", "BFDProfile", "bfdprofiles.metallb.io"),
        ("metallb.io/v1beta1", "ServiceL2Status", "servicel2statuses.metallb.io"),
        ("metallb.io/v1beta1", "ServiceBGPStatus", "servicebgpstatuses.metallb.io"),
    ];
    let want: Vec<(String, String, String)> =
        want.iter().map(|(a, k, n)| (a.to_string(), k.to_string(), n.to_string())).collect();
    assert_eq!(got, want);
    for crd in crds::all() {
        assert_eq!(crd.spec.scope, "Namespaced", "{}", crd.spec.names.kind);
        let v = crd.spec.versions.iter().find(|v| v.served).unwrap();
        assert!(v.served && v.storage, "{}", crd.spec.names.kind);
        let status = v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some();
        assert_eq!(status, crd.spec.names.kind.starts_with("Service"), "{}: status subresource", crd.spec.names.kind);
        assert_eq!(crd.spec.versions.iter().filter(|v| v.served).count(), 1, "one served version");
        assert_eq!(crd.spec.versions.iter().filter(|v| v.storage).count(), 1, "one storage version");
    }
    // MetalLB's old storage version of BGPPeer is listed, unserved, so that a CRD that has
    // stored it can be replaced in place.
    let peer = crds::all().into_iter().find(|c| c.spec.names.kind == "BGPPeer").unwrap();
    let old = peer.spec.versions.iter().find(|v| v.name == "v1beta1").expect("v1beta1 listed");
    assert!(!old.served && !old.storage);
}

/// Every metallb.io object in MetalLB's documentation examples passes the schema lb serves
/// (nothing refused, nothing pruned) and reads into lb's typed resource.
#[test]
fn metallb_documentation_objects_are_accepted() {
    let all = schemas();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lbcore/tests/fixtures/metallb-docs");
    let mut checked = 0;
    let mut problems = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for doc in docs.into_iter().filter(|d| d.is_object()) {
            let api = doc["apiVersion"].as_str().unwrap_or_default().to_string();
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            if !api.starts_with("metallb.io/") {
                continue;
            }
            // MetalLB still serves BGPPeer v1beta1 (same fields); lb serves v1beta2 only.
            let api = if kind == "BGPPeer" { "metallb.io/v1beta2".to_string() } else { api };
            let Some((_, _, _, schema)) = all.iter().find(|(a, k, _, _)| *a == api && *k == kind) else {
                problems.push(format!("{}: no CRD serves {api} {kind}", file.display()));
                continue;
            };
            // The API server checks apiVersion, kind and metadata itself; an empty status (as
            // MetalLB's migration tool writes) is pruned and loses nothing.
            let mut body = doc.as_object().cloned().unwrap_or_default();
            for k in ["apiVersion", "kind", "metadata"] {
                body.remove(k);
            }
            if body.get("status") == Some(&Value::Object(Map::new())) {
                body.remove("status");
            }
            let mut found = Vec::new();
            validate(&Value::Object(body), schema, &kind, &mut found);
            problems.extend(found.into_iter().map(|p| format!("{}: {p}", file.display())));
            let typed = match kind.as_str() {
                "IPAddressPool" => serde_json::from_value::<crds::IPAddressPool>(doc).map(drop),
                "L2Advertisement" => serde_json::from_value::<crds::L2Advertisement>(doc).map(drop),
                "BGPAdvertisement" => serde_json::from_value::<crds::BGPAdvertisement>(doc).map(drop),
                "BGPPeer" => serde_json::from_value::<crds::BGPPeer>(doc).map(drop),
                "Community" => serde_json::from_value::<crds::Community>(doc).map(drop),
                "BFDProfile" => serde_json::from_value::<crds::BFDProfile>(doc).map(drop),
                _ => Ok(()),
            };
            if let Err(e) = typed {
                problems.push(format!("{}: {kind} does not read as lb's type: {e}", file.display()));
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(checked >= 45, "only {checked} objects checked");
}

/// The wrong types are refused, as the API server would refuse them.
#[test]
fn the_schema_refuses_what_metallb_refuses() {
    let all = schemas();
    let peer = &all.iter().find(|(_, k, _, _)| k == "BGPPeer").unwrap().3;
    let mut found = Vec::new();
    let bad = serde_json::json!({"spec": {"myASN": "64512", "peerAddress": ["10.0.0.1"], "holdTme": "90s"}});
    validate(&bad, peer, "BGPPeer", &mut found);
    assert_eq!(found.len(), 3, "{found:#?}");
}

/// `lb crds` prints exactly these CRDs, as YAML that reads back.
#[test]
fn lb_crds_prints_them() {
    let out = Command::new(env!("CARGO_BIN_EXE_lb")).arg("crds").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&text).unwrap();
    assert_eq!(printed, crds::all());
}
