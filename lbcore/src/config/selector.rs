//! Label selectors, checked once and then matched (Kubernetes' `LabelSelector` semantics).
//!
//! Invariant of [`Selector`]: every requirement has a known operator and a value list that
//! fits it (`In`/`NotIn` non-empty, `Exists`/`DoesNotExist` empty), as the API server
//! requires. An empty selector matches every label set.

use std::collections::{BTreeMap, BTreeSet};

use super::raw;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// A checked label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: Labels,
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
}

/// Why a label selector is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SelectorError {
    /// The sub-field, relative to the selector (`matchExpressions[0].operator`).
    pub field: String,
    /// The offending value, or empty.
    pub value: String,
    /// What is wrong.
    pub message: String,
}

impl Selector {
    /// Checks a raw selector. The error names the sub-field and says what is wrong.
    pub fn from_raw(raw: &raw::LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::with_capacity(raw.match_expressions.len());
        for (i, e) in raw.match_expressions.iter().enumerate() {
            let err = |f: &str, value: String, message: String| SelectorError {
                field: format!("matchExpressions[{i}].{f}"),
                value,
                message,
            };
            if e.key.is_empty() {
                return Err(err("key", String::new(), "must not be empty".into()));
            }
            let values: BTreeSet<String> = e.values.iter().cloned().collect();
            let op = match e.operator.as_str() {
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    let msg = "must be one of In, NotIn, Exists, DoesNotExist".into();
                    return Err(err("operator", other.to_string(), msg));
                }
            };
            match &op {
                Op::In(v) | Op::NotIn(v) if v.is_empty() => {
                    return Err(err("values", String::new(), format!("must not be empty for operator {}", e.operator)))
                }
                Op::Exists | Op::DoesNotExist if !e.values.is_empty() => {
                    return Err(err("values", e.values.join(","), format!("must be empty for operator {}", e.operator)))
                }
                _ => {}
            }
            requirements.push(Requirement { key: e.key.clone(), op });
        }
        Ok(Selector { labels: raw.match_labels.clone(), requirements })
    }

    /// A selector requiring exactly these labels.
    pub fn from_labels(labels: Labels) -> Self {
        Selector { labels, requirements: Vec::new() }
    }

    /// Whether `labels` satisfy every part of the selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.requirements.iter().all(|r| {
                let got = labels.get(&r.key);
                match &r.op {
                    Op::In(vs) => got.is_some_and(|v| vs.contains(v)),
                    Op::NotIn(vs) => got.is_none_or(|v| !vs.contains(v)),
                    Op::Exists => got.is_some(),
                    Op::DoesNotExist => got.is_none(),
                }
            })
    }
}

/// Whether any selector of a list matches; an empty list matches everything (MetalLB's
/// rule for `nodeSelectors`, `ipAddressPoolSelectors` and the like).
pub fn any_matches(selectors: &[Selector], labels: &Labels) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn sel(yaml_like: raw::LabelSelector) -> Selector {
        Selector::from_raw(&yaml_like).unwrap()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> raw::LabelSelectorRequirement {
        raw::LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn match_labels_and_expressions() {
        let s = sel(raw::LabelSelector {
            match_labels: labels(&[("zone", "a")]),
            match_expressions: vec![req("tier", "In", &["web", "api"]), req("legacy", "DoesNotExist", &[])],
        });
        assert!(s.matches(&labels(&[("zone", "a"), ("tier", "web")])));
        assert!(!s.matches(&labels(&[("zone", "b"), ("tier", "web")])));
        assert!(!s.matches(&labels(&[("zone", "a"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("zone", "a"), ("tier", "web"), ("legacy", "")])));
        let not_in =
            sel(raw::LabelSelector { match_expressions: vec![req("env", "NotIn", &["dev"])], ..Default::default() });
        assert!(not_in.matches(&labels(&[])));
        assert!(!not_in.matches(&labels(&[("env", "dev")])));
        assert!(Selector::default().matches(&labels(&[])));
        assert!(any_matches(&[], &labels(&[])));
    }

    #[test]
    fn rejects_malformed_requirements() {
        let bad_op = raw::LabelSelector { match_expressions: vec![req("a", "Equals", &["x"])], ..Default::default() };
        let err = Selector::from_raw(&bad_op).unwrap_err();
        assert_eq!((err.field.as_str(), err.value.as_str()), ("matchExpressions[0].operator", "Equals"));
        let no_values = raw::LabelSelector { match_expressions: vec![req("a", "In", &[])], ..Default::default() };
        assert_eq!(Selector::from_raw(&no_values).unwrap_err().field, "matchExpressions[0].values");
    }
}
