//! Patches: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

use serde_json::Value;

/// Applies a JSON merge patch: objects merge recursively, `null` removes, anything else
/// replaces (lists included).
pub fn merge(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else { return patch.clone() };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => serde_json::Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// Unescapes one JSON pointer token (RFC 6901).
fn token(t: &str) -> String {
    t.replace("~1", "/").replace("~0", "~")
}

fn parent_and_key<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let mut parts: Vec<String> = path.split('/').skip(1).map(token).collect();
    let last = parts.pop().ok_or_else(|| format!("path {path:?} has no target"))?;
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get_mut(&p).ok_or_else(|| format!("path {path:?}: {p:?} does not exist"))?,
            Value::Array(a) => {
                let i: usize = p.parse().map_err(|_| format!("path {path:?}: {p:?} is not an index"))?;
                a.get_mut(i).ok_or_else(|| format!("path {path:?}: index {i} is out of range"))?
            }
            _ => return Err(format!("path {path:?}: {p:?} is not in an object or list")),
        };
    }
    Ok((cur, last))
}

fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    doc.pointer(path)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = parent_and_key(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(key, value);
        }
        Value::Array(a) if key == "-" => a.push(value),
        Value::Array(a) => {
            let i: usize = key.parse().map_err(|_| format!("path {path:?}: not an index"))?;
            if i > a.len() {
                return Err(format!("path {path:?}: index {i} is out of range"));
            }
            a.insert(i, value);
        }
        _ => return Err(format!("path {path:?}: the parent is not an object or list")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, key) = parent_and_key(doc, path)?;
    match parent {
        Value::Object(m) => m.remove(&key).ok_or_else(|| format!("path {path:?} does not exist")),
        Value::Array(a) => {
            let i: usize = key.parse().map_err(|_| format!("path {path:?}: not an index"))?;
            if i >= a.len() {
                return Err(format!("path {path:?}: index {i} is out of range"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("path {path:?}: the parent is not an object or list")),
    }
}

/// Applies a JSON patch: a list of `add`, `remove`, `replace`, `move`, `copy` and `test`
/// operations, all or nothing.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, String> {
    let Value::Array(ops) = ops else { return Err("a JSON patch must be a list of operations".into()) };
    let mut doc = target.clone();
    for op in ops {
        let path = op.get("path").and_then(Value::as_str).ok_or("an operation needs a path")?;
        let value = || op.get("value").cloned().ok_or_else(|| format!("{path}: the operation needs a value"));
        let from = || op.get("from").and_then(Value::as_str).ok_or_else(|| format!("{path}: the operation needs from"));
        match op.get("op").and_then(Value::as_str) {
            Some("add") => add(&mut doc, path, value()?)?,
            Some("remove") => drop(remove(&mut doc, path)?),
            Some("replace") => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            Some("move") => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            Some("copy") => {
                let v = get(&doc, from()?).cloned().ok_or_else(|| format!("{path}: from does not exist"))?;
                add(&mut doc, path, v)?;
            }
            Some("test") => {
                if get(&doc, path) != Some(&value()?) {
                    return Err(format!("test failed at {path}"));
                }
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        let p = json!({"a": "z", "c": {"f": null}, "l": [3]});
        assert_eq!(merge(&t, &p), json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn json_patch_is_all_or_nothing() {
        let t = json!({"metadata": {"labels": {"a": "1"}}, "l": [1]});
        let ops = json!([
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "add", "path": "/l/-", "value": 2},
            {"op": "test", "path": "/l/1", "value": 2},
        ]);
        assert_eq!(json_patch(&t, &ops).unwrap(), json!({"metadata": {"labels": {"a": "1", "b/c": "2"}}, "l": [1, 2]}));
        let failing =
            json!([{"op": "remove", "path": "/metadata/labels/a"}, {"op": "test", "path": "/l/0", "value": 9}]);
        assert!(json_patch(&t, &failing).is_err());
    }
}
