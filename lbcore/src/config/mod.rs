//! MetalLB-compatible configuration: raw resources, loading, and validation into [`Config`].
//!
//! The pipeline is `files → Resources (raw, per document) → validate → Config`:
//! - [`raw`] holds the serde shapes of the `metallb.io` resources and of the `v1` objects
//!   `lb` reads. Deserializing them never fails on meaning, only on shape.
//! - [`load`] reads multi-document YAML (and `kind: List`), sorts documents by kind, warns on
//!   unknown fields and skips kinds `lb` does not read.
//! - [`validate()`] checks everything MetalLB checks and more, and either returns a typed
//!   [`Config`] with warnings, or every error found, each naming file, kind, object, field
//!   and value. It never stops at the first error.
//!
//! Invariant: a [`Config`] exists only if validation passed, so its pools have parsed,
//! non-overlapping ranges, its communities are resolved and its durations parsed. Code
//! downstream trusts it and does not re-check.

pub mod community;
pub mod duration;
pub mod load;
pub mod raw;
pub mod selector;
mod types;
pub mod validate;

use std::fmt;

pub use community::Community;
pub use load::{load_paths, Loaded, Resources, Source};
pub use selector::{Labels, Selector, SelectorError};
pub use types::*;
pub use validate::{validate, Validated};

/// A problem found in the configuration: an error (the configuration is refused) or a
/// warning (it is accepted, but probably not what the user meant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the object was read from, if from a file.
    pub source: Option<Source>,
    /// The object's kind (`IPAddressPool`), or empty for a file-level problem.
    pub kind: String,
    /// The object's name, or empty.
    pub name: String,
    /// The field, as a JSON path (`spec.addresses[1]`), or empty.
    pub field: String,
    /// The offending value, or empty.
    pub value: String,
    /// What is wrong, and where it helps, what to do.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic about a whole file or document (YAML syntax, unreadable file).
    pub fn file(source: Source, message: impl Into<String>) -> Self {
        Diagnostic {
            source: Some(source),
            kind: String::new(),
            name: String::new(),
            field: String::new(),
            value: String::new(),
            message: message.into(),
        }
    }
}

/// So that a diagnostic can travel in `Box<dyn Error>` and `?` (one per error; `validate`
/// returns them all).
impl std::error::Error for Diagnostic {}

/// Every problem [`validate()`] found, as one error: one per line when displayed. For `?`:
///
/// ```
/// use lbcore::config::{validate, Diagnostics, Resources};
///
/// fn load(yaml: &str) -> Result<lbcore::Config, Box<dyn std::error::Error>> {
///     let mut res = Resources::default();
///     res.load_str("lb.yaml", yaml);
///     Ok(validate(&res).map_err(Diagnostics)?.config)
/// }
/// let bad = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/33]}\n";
/// let err = load(bad).unwrap_err().to_string();
/// assert!(err.contains("IPAddressPool \"p\"") && err.contains("spec.addresses[0]"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

/// A value in MetalLB's text formats that does not read (a community, a Go duration): what
/// is wrong with it, as a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl From<String> for ParseError {
    fn from(s: String) -> Self {
        ParseError(s)
    }
}

impl From<&str> for ParseError {
    fn from(s: &str) -> Self {
        ParseError(s.to_string())
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(src) = &self.source {
            write!(f, "{src}: ")?;
        }
        if !self.kind.is_empty() {
            write!(f, "{} {:?}: ", self.kind, self.name)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}", self.field)?;
            if !self.value.is_empty() {
                write!(f, " {:?}", self.value)?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}
