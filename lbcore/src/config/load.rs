//! Reading YAML files of Kubernetes objects into [`Resources`].
//!
//! A file holds any number of YAML documents (`---`); each is one object, or a `kind: List`
//! (as `kubectl get -o yaml` prints) whose items are objects. The `metallb.io` kinds, `v1
//! Service`, `v1 Namespace` and `v1 Node` are kept; other kinds are skipped with a debug log.
//! A file is read as a stream, a line at a time, and a list's items are loaded as they are
//! parsed: neither the text nor a document tree of a 100k-Service dump is ever held whole.
//!
//! Invariants: loading never panics and never stops at the first bad document: problems are
//! collected in [`Resources::errors`] / [`Resources::warnings`] with their source. Unknown
//! fields in a `metallb.io` spec are warnings, as `kubectl` reports them with a strict
//! decoder; a field of the wrong type is an error naming its JSON path.

use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::raw::{self, Object};
use super::Diagnostic;

/// Where a document came from: a file (or other named input) and its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    /// File name as given by the user (shared by every object read from the file).
    pub file: std::sync::Arc<str>,
    /// 1-based document number in the file (items of a List count as their own documents
    /// only through `item`); 0 for the file as a whole.
    pub doc: usize,
    /// 1-based item number inside a `kind: List`, if the object came from one.
    pub item: Option<usize>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.doc == 0 {
            // The file as a whole (it could not be read).
            return write!(f, "{}", self.file);
        }
        write!(f, "{} (document {}", self.file, self.doc)?;
        if let Some(i) = self.item {
            write!(f, ", item {i}")?;
        }
        write!(f, ")")
    }
}

/// An object with the place it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<T> {
    /// Where it was read.
    pub source: Source,
    /// The object.
    pub object: T,
}

/// Everything read from a set of files, by kind, in file order, not yet validated.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// `IPAddressPool` objects.
    pub pools: Vec<Loaded<Object<raw::IpAddressPoolSpec>>>,
    /// `L2Advertisement` objects.
    pub l2_advertisements: Vec<Loaded<Object<raw::L2AdvertisementSpec>>>,
    /// `BGPAdvertisement` objects.
    pub bgp_advertisements: Vec<Loaded<Object<raw::BgpAdvertisementSpec>>>,
    /// `BGPPeer` objects.
    pub peers: Vec<Loaded<Object<raw::BgpPeerSpec>>>,
    /// `Community` objects.
    pub communities: Vec<Loaded<Object<raw::CommunitySpec>>>,
    /// `BFDProfile` objects.
    pub bfd_profiles: Vec<Loaded<Object<raw::BfdProfileSpec>>>,
    /// `v1 Service` objects of type LoadBalancer, read into the allocator's model as they
    /// are loaded (a raw Service is never kept: there may be 100k of them). Their namespace
    /// labels are filled in by [`crate::service::load_balancer_services`], once every
    /// Namespace has been read.
    pub services: Vec<Loaded<crate::service::Service>>,
    /// `v1 Namespace` objects (their labels feed namespace selectors).
    pub namespaces: Vec<Loaded<raw::Namespace>>,
    /// `v1 Node` objects: the hosts of a standalone group (`lb run` on several hosts).
    pub nodes: Vec<Loaded<raw::Node>>,
    /// Documents that could not be read at all.
    pub errors: Vec<Diagnostic>,
    /// Problems that do not stop the configuration from being used.
    pub warnings: Vec<Diagnostic>,
    /// The namespace names and requests of the services read so far, each kept once and
    /// shared by the services that have it (see [`Resources::push_service`]).
    pub interned: crate::service::Interned,
}

/// The `metallb.io` kinds `lb` reads.
pub const METALLB_KINDS: [&str; 6] =
    ["IPAddressPool", "L2Advertisement", "BGPAdvertisement", "BGPPeer", "Community", "BFDProfile"];

/// Reads every file named, expanding directories to their `*.yaml`, `*.yml` and `*.json`
/// files in name order (not recursively).
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Resources {
    let mut res = Resources::default();
    for p in paths {
        res.load_path(p.as_ref());
    }
    res
}

impl Resources {
    /// Adds a service, its namespace name and request shared with the services already added
    /// that have the same (100k services of a few namespaces and templates then hold a few
    /// copies of them, not 100k).
    pub fn push_service(&mut self, source: Source, svc: crate::service::Service) {
        let svc = self.interned.service(svc);
        self.services.push(Loaded { source, object: svc });
    }

    /// Reads a file or a directory of files.
    pub fn load_path(&mut self, path: &Path) {
        let source = Source { file: path.display().to_string().into(), doc: 0, item: None };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.is_file()
                            && p.extension()
                                .and_then(|e| e.to_str())
                                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
                    })
                    .collect(),
                Err(e) => {
                    self.errors.push(Diagnostic::file(source, format!("cannot read directory: {e}")));
                    return;
                }
            };
            files.sort();
            if files.is_empty() {
                self.warnings.push(Diagnostic::file(source, "directory holds no .yaml, .yml or .json file"));
            }
            for f in files {
                self.load_path(&f);
            }
            return;
        }
        match std::fs::File::open(path) {
            Ok(f) => self.load_reader(&source.file, std::io::BufReader::with_capacity(64 * 1024, f)),
            Err(e) => self.errors.push(Diagnostic::file(source, format!("cannot read file: {e}"))),
        }
    }

    /// Reads the YAML documents in `text`, naming them after `file` in diagnostics.
    ///
    /// Documents are read one at a time, and the items of a list one at a time, so a large
    /// `kubectl get -o yaml` dump never exists in memory as one document tree. A document
    /// with a YAML syntax error is reported and skipped; the others are still read.
    pub fn load_str(&mut self, file: &str, text: &str) {
        self.load_reader(file, text.as_bytes());
    }

    /// Reads the YAML documents of a stream, as [`Resources::load_str`] reads a text, holding
    /// no more of the stream than the parser's buffer: a file of 100k Services is never in
    /// memory as text.
    ///
    /// ```
    /// use lbcore::config::Resources;
    ///
    /// let file = std::io::Cursor::new(
    ///     "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.0/28]}\n",
    /// );
    /// let mut res = Resources::default();
    /// res.load_reader("pools.yaml", file);
    /// assert!(res.errors.is_empty());
    /// assert_eq!(res.pools[0].object.metadata.name.as_deref(), Some("p"));
    /// ```
    pub fn load_reader(&mut self, file: &str, reader: impl BufRead) {
        let file: std::sync::Arc<str> = file.into();
        let mut docs = Documents::new(reader);
        let mut doc = 0;
        while let Some((line, mut chunk)) = docs.next() {
            let source = Source { file: file.clone(), doc: doc + 1, item: None };
            let seed = DocSeed { res: self, source: source.clone() };
            let result = serde_saphyr::with_deserializer_from_reader_with_options(&mut chunk, yaml_options(), |de| {
                seed.deserialize(de)
            });
            // What the parser left of the document (after an error) is not the next one's.
            chunk.skip_rest();
            if let Some(bad) = docs.bad_utf8.take() {
                doc += 1;
                let msg = format!("line {bad} is not UTF-8 text (the document starts at line {line})");
                self.errors.push(Diagnostic::file(Source { doc, ..source }, msg));
                continue;
            }
            match result {
                Ok(true) => doc += 1,
                Ok(false) => {} // an empty document (comments only) does not count
                Err(e) => {
                    doc += 1;
                    let msg = format!("invalid YAML (the document starts at line {line}): {e}");
                    self.errors.push(Diagnostic::file(Source { doc, ..source }, msg));
                }
            }
        }
        if let Some(e) = docs.failed {
            let at = Source { file, doc: 0, item: None };
            self.errors.push(Diagnostic::file(at, format!("cannot read file after line {}: {e}", docs.line)));
        }
    }

    fn load_value(&mut self, source: Source, mut value: Value, top: bool) {
        // A `kind: List` (as `kubectl get -o yaml` prints): its items are objects of their
        // own, taken out of the list one at a time (never copied: a list may be large).
        if top && value.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List")) {
            if let Some(Value::Array(items)) = value.as_object_mut().and_then(|m| m.remove("items")) {
                for (j, item) in items.into_iter().enumerate() {
                    let src = Source { item: Some(j + 1), ..source.clone() };
                    self.load_value(src, item, false);
                }
                return;
            }
        }
        let map = match &value {
            Value::Null => return,
            Value::Object(m) => m,
            other => {
                let what = match other {
                    Value::Array(_) => "a list",
                    Value::String(_) => "a string",
                    _ => "a scalar",
                };
                self.errors.push(Diagnostic::file(
                    source,
                    format!("a document must be a Kubernetes object (a mapping), not {what}"),
                ));
                return;
            }
        };
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let api = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let name =
            map.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default().to_string();
        let (group, version) = api.rsplit_once('/').unwrap_or(("", api.as_str()));
        let diag = |field: &str, value: &str, message: String| Diagnostic {
            source: Some(source.clone()),
            kind: kind.clone(),
            name: name.clone(),
            field: field.to_string(),
            value: value.to_string(),
            message,
        };
        if kind.is_empty() || api.is_empty() {
            self.errors.push(diag("", "", "a document must have apiVersion and kind".into()));
            return;
        }
        match (group, kind.as_str()) {
            ("metallb.io", k) if METALLB_KINDS.contains(&k) => {
                let expected = if k == "BGPPeer" { "v1beta2" } else { "v1beta1" };
                if version != expected {
                    if k == "BGPPeer" && version == "v1beta1" {
                        self.warnings.push(diag(
                            "apiVersion",
                            &api,
                            "metallb.io/v1beta1 BGPPeer is deprecated; read as metallb.io/v1beta2 (same fields)".into(),
                        ));
                    } else {
                        self.errors.push(diag(
                            "apiVersion",
                            &api,
                            format!("{k} is served as metallb.io/{expected}"),
                        ));
                        return;
                    }
                }
                match map.get("metadata").and_then(|m| m.get("name")) {
                    None | Some(Value::Null) => {
                        self.errors.push(diag("metadata.name", "", "required".into()));
                        return;
                    }
                    Some(Value::String(n)) if !n.is_empty() => {}
                    Some(Value::String(_)) => {
                        self.errors.push(diag("metadata.name", "", "must not be empty".into()));
                        return;
                    }
                    Some(other) => {
                        let msg = "must be a string (quote it: YAML reads this as a number or boolean)".into();
                        self.errors.push(diag("metadata.name", &other.to_string(), msg));
                        return;
                    }
                }
                self.load_metallb(source.clone(), k, value, &diag);
            }
            ("metallb.io", "AddressPool") => self.errors.push(diag(
                "kind",
                "AddressPool",
                "AddressPool was removed in MetalLB 0.13.x; write an IPAddressPool and an L2Advertisement or BGPAdvertisement".into(),
            )),
            ("metallb.io", other) => {
                self.warnings.push(diag("kind", other, "not a metallb.io kind lb reads; skipped".into()))
            }
            ("", "Service") => match typed::<raw::Service>(value) {
                Ok((svc, _)) => {
                    if let Some(svc) = crate::service::Service::from_raw(&svc, &Default::default()) {
                        self.push_service(source, svc);
                    }
                }
                Err((path, msg)) => self.errors.push(diag(&path, "", msg)),
            },
            ("", "Namespace") => match typed::<raw::Namespace>(value) {
                Ok((ns, _)) => self.namespaces.push(Loaded { source, object: ns }),
                Err((path, msg)) => self.errors.push(diag(&path, "", msg)),
            },
            ("", "Node") => match typed::<raw::Node>(value) {
                Ok((node, _)) => {
                    if node.metadata.name.as_deref().is_none_or(str::is_empty) {
                        self.errors.push(diag("metadata.name", "", "required".into()));
                    } else if let Some((i, a)) = node.status.addresses.iter().enumerate().find(|(_, a)| {
                        a.type_ == "InternalIP" && a.address.trim().parse::<std::net::IpAddr>().is_err()
                    }) {
                        let field = format!("status.addresses[{i}].address");
                        self.errors.push(diag(&field, &a.address, "an InternalIP must be an IP address".into()));
                    } else if self.nodes.iter().any(|n| n.object.metadata.name == node.metadata.name) {
                        self.errors.push(diag("metadata.name", name.as_str(), "a second Node of this name".into()));
                    } else {
                        self.nodes.push(Loaded { source, object: node });
                    }
                }
                Err((path, msg)) => self.errors.push(diag(&path, "", msg)),
            },
            ("", "ConfigMap") if map.get("data").and_then(|d| d.get("config")).is_some() && name == "config" => {
                self.warnings.push(diag(
                    "data.config",
                    "",
                    "this looks like MetalLB's legacy ConfigMap configuration, which lb does not read; convert it to metallb.io resources (MetalLB's configmaptocrs tool does)".into(),
                ))
            }
            _ => tracing::debug!(%source, %api, %kind, "skipping a kind lb does not read"),
        }
    }

    fn load_metallb(
        &mut self,
        source: Source,
        kind: &str,
        value: Value,
        diag: &dyn Fn(&str, &str, String) -> Diagnostic,
    ) {
        macro_rules! read {
            ($field:ident, $spec:ty) => {
                match typed::<Object<$spec>>(value) {
                    Ok((obj, unknown)) => {
                        self.warn_unknown(&unknown, diag);
                        self.$field.push(Loaded { source, object: obj });
                    }
                    Err((path, msg)) => self.errors.push(diag(&path, "", msg)),
                }
            };
        }
        match kind {
            "IPAddressPool" => read!(pools, raw::IpAddressPoolSpec),
            "L2Advertisement" => read!(l2_advertisements, raw::L2AdvertisementSpec),
            "BGPAdvertisement" => read!(bgp_advertisements, raw::BgpAdvertisementSpec),
            "BGPPeer" => read!(peers, raw::BgpPeerSpec),
            "Community" => read!(communities, raw::CommunitySpec),
            "BFDProfile" => read!(bfd_profiles, raw::BfdProfileSpec),
            _ => {}
        }
    }

    fn warn_unknown(&mut self, unknown: &[String], diag: &dyn Fn(&str, &str, String) -> Diagnostic) {
        for path in unknown {
            let top = path.split(['.', '[']).next().unwrap_or_default();
            if matches!(top, "apiVersion" | "kind" | "metadata" | "status") {
                continue;
            }
            self.warnings.push(diag(path, "", "unknown field (ignored, as MetalLB would; check its spelling)".into()));
        }
    }
}

/// Splits a stream of YAML text into documents where YAML does: at a `---` line (which
/// starts the next document) and after a `...` line (which ends one), both at column 0. Each
/// document is handed out as a reader of its lines ([`Document`]); one line is held, in one
/// buffer reused for every line.
struct Documents<R> {
    inner: R,
    /// The line being handed out, or the next document's first line when `pending`.
    buf: Vec<u8>,
    /// `buf` holds the first line of the next document (a `---` that ended the last one).
    pending: bool,
    /// Lines read so far.
    line: usize,
    /// Why the stream could not be read to its end.
    failed: Option<std::io::Error>,
    /// The first line of the current document that is not UTF-8, if one is not.
    bad_utf8: Option<usize>,
}

impl<R: BufRead> Documents<R> {
    fn new(inner: R) -> Self {
        Documents { inner, buf: Vec::new(), pending: false, line: 0, failed: None, bad_utf8: None }
    }

    /// Reads one line, `\n` included, into `buf`; false at the end of the stream or when it
    /// fails.
    fn read_line(&mut self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        self.buf.clear();
        match self.inner.read_until(b'\n', &mut self.buf) {
            Ok(0) => false,
            Ok(_) => {
                self.line += 1;
                true
            }
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }

    /// The next document and the line it starts at, or None when no line is left.
    fn next(&mut self) -> Option<(usize, Document<'_, R>)> {
        if !self.pending {
            if !self.read_line() {
                return None;
            }
            self.pending = true;
        }
        let line = self.line;
        Some((line, Document { docs: self, pos: 0, holding: false, lines: 0, ended: false }))
    }
}

/// Whether `line` is the marker `m` (`---` or `...`) alone or followed by a space or a tab.
fn is_marker(line: &[u8], m: &[u8]) -> bool {
    let bare = line.strip_suffix(b"\n").unwrap_or(line);
    let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
    bare == m || bare.strip_prefix(m).is_some_and(|r| r.starts_with(b" ") || r.starts_with(b"\t"))
}

/// One document of a [`Documents`] stream, read line by line.
struct Document<'d, R> {
    docs: &'d mut Documents<R>,
    /// How much of the line in `docs.buf` has been handed out.
    pos: usize,
    /// `docs.buf` holds a line of this document.
    holding: bool,
    /// Lines of the document so far.
    lines: usize,
    ended: bool,
}

impl<R: BufRead> Document<'_, R> {
    /// Puts the document's next line in `docs.buf`; false at its end.
    fn advance(&mut self) -> bool {
        self.holding = false;
        if self.ended {
            return false;
        }
        if self.docs.pending {
            self.docs.pending = false;
        } else if !self.docs.read_line() {
            self.ended = true;
            return false;
        }
        if is_marker(&self.docs.buf, b"---") && self.lines > 0 {
            // The start of the next document.
            self.docs.pending = true;
            self.ended = true;
            return false;
        }
        if is_marker(&self.docs.buf, b"...") {
            self.ended = true;
            return false;
        }
        if std::str::from_utf8(&self.docs.buf).is_err() {
            // The document fails here (nothing of it past what a list had already given is
            // loaded), and the caller reports the line: the parser would only say "IO error".
            self.docs.bad_utf8.get_or_insert(self.docs.line);
            self.ended = true;
            return false;
        }
        self.lines += 1;
        self.pos = 0;
        self.holding = true;
        true
    }

    /// Reads and drops what is left of the document.
    fn skip_rest(&mut self) {
        while self.advance() {}
    }
}

impl<R: BufRead> std::io::Read for Document<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while !self.holding || self.pos >= self.docs.buf.len() {
            if !self.advance() {
                if self.docs.bad_utf8.is_some() {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"));
                }
                return Ok(0);
            }
        }
        let line = &self.docs.buf[self.pos..];
        let n = out.len().min(line.len());
        out[..n].copy_from_slice(&line[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// The scalar `visit_*` methods of a visitor: each scalar becomes a [`Value`] `$v`, and the
/// method returns `$then` (with the visitor as `$this`).
macro_rules! visit_scalars {
    ($ret:ty, |$this:ident, $v:ident| $then:expr) => {
        visit_scalars!(@one visit_str, &str, $ret, $this, $v, $then);
        visit_scalars!(@one visit_bool, bool, $ret, $this, $v, $then);
        visit_scalars!(@one visit_i64, i64, $ret, $this, $v, $then);
        visit_scalars!(@one visit_u64, u64, $ret, $this, $v, $then);
        visit_scalars!(@one visit_f64, f64, $ret, $this, $v, $then);
    };
    (@one $name:ident, $ty:ty, $ret:ty, $this:ident, $v:ident, $then:expr) => {
        fn $name<E: serde::de::Error>(self, scalar: $ty) -> Result<$ret, E> {
            let $this = self;
            let $v = Value::from(scalar);
            Ok($then)
        }
    };
}

/// Reads one document into [`Resources`]: a mapping is collected and loaded; the `items`
/// of a list are loaded one by one as they are read. Returns false for an empty document.
struct DocSeed<'r> {
    res: &'r mut Resources,
    source: Source,
}

impl<'de> DeserializeSeed<'de> for DocSeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut obj = serde_json::Map::new();
        let mut listed = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" && !listed {
                match map.next_value_seed(ItemsSeed { res: &mut *self.res, source: self.source.clone() })? {
                    None => listed = true,
                    Some(v) => {
                        obj.insert(key, v);
                    }
                }
            } else {
                let v: Value = map.next_value()?;
                obj.insert(key, v);
            }
        }
        if !listed {
            self.res.load_value(self.source, Value::Object(obj), true);
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        let v = Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        self.res.load_value(self.source, v, true);
        Ok(true)
    }

    // A scalar document is loaded too, which reports that it is not an object.
    visit_scalars!(bool, |this, v| {
        this.res.load_value(this.source, v, true);
        true
    });
}

/// Reads the `items` of a list: each item is loaded as soon as it is read (so the whole list
/// never exists as one tree). Anything but a sequence is returned as a plain value.
struct ItemsSeed<'r> {
    res: &'r mut Resources,
    source: Source,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of Kubernetes objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Value>, A::Error> {
        let mut j = 0;
        while let Some(item) = seq.next_element::<Value>()? {
            j += 1;
            self.res.load_value(Source { item: Some(j), ..self.source.clone() }, item, false);
        }
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
        Value::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Option<Value>, E> {
        Ok(Some(Value::Null))
    }

    visit_scalars!(Option<Value>, |_this, v| Some(v));
}

/// Parser options. Limits: the defaults (1,024 documents, 250k nodes) refuse real inputs such as
/// `kubectl get svc -A -o yaml` of a large cluster; these allow 100k documents and 20M
/// nodes, and keep the defaults that stop alias bombs (anchor copies, alias ratio) and deep
/// nesting.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = 100_000;
    budget.max_nodes = 20_000_000;
    budget.max_events = 50_000_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // YAML 1.2 booleans only, so `namespace: n` or `name: off` stay strings (Kubernetes'
    // decoder keeps them strings for string fields); the bool fields of the raw types accept
    // the YAML 1.1 spellings themselves (`raw::yaml_bool`).
    options.strict_booleans = true;
    options
}

/// Deserializes `value` into `T`, returning the paths of fields `T` does not have, or the
/// JSON path and message of the first type error.
fn typed<T: DeserializeOwned>(value: Value) -> Result<(T, Vec<String>), (String, String)> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(value, &mut record);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok((v, unknown)),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            Err((path, e.into_inner().to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Resources {
        let mut r = Resources::default();
        r.load_str("test.yaml", text);
        r
    }

    #[test]
    fn reads_kinds_and_skips_others() {
        let r = load(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [10.0.0.0/24]}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: LoadBalancer, clusterIP: 1.2.3.4}\n---\n",
        );
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.pools.len(), 1);
        assert_eq!(r.pools[0].object.spec.addresses, ["10.0.0.0/24"]);
        assert_eq!(r.services.len(), 1);
        assert_eq!(r.services[0].source.doc, 3);
    }

    #[test]
    fn unknown_spec_fields_are_warnings_with_their_path() {
        let r = load("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, uid: x}\nspec: {addresses: [10.0.0.0/24], autoassign: false}\n");
        assert!(r.errors.is_empty());
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].field, "spec.autoassign");
        assert_eq!(r.pools.len(), 1);
    }

    #[test]
    fn type_errors_name_the_field() {
        let r = load("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: 10.0.0.0/24}\n");
        assert_eq!(r.errors.len(), 1);
        let msg = r.errors[0].to_string();
        assert!(msg.contains("IPAddressPool \"a\"") && msg.contains("spec.addresses"), "{msg}");
    }

    #[test]
    fn documents_split_where_yaml_splits_them() {
        let text = "# comment\na: 1\n---\nb: 2\n--- {c: 3}\n...\n# trailing\n---\nd: |\n  ---x\n";
        let mut split = Documents::new(text.as_bytes());
        let mut docs: Vec<(usize, String)> = Vec::new();
        while let Some((line, mut d)) = split.next() {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut d, &mut s).unwrap();
            docs.push((line, s));
        }
        let docs: Vec<(usize, &str)> = docs.iter().map(|(l, s)| (*l, s.as_str())).collect();
        assert_eq!(docs.len(), 5, "{docs:?}");
        assert_eq!(docs[0], (1, "# comment\na: 1\n"));
        assert_eq!(docs[1], (3, "---\nb: 2\n"));
        assert_eq!(docs[2], (5, "--- {c: 3}\n"));
        assert_eq!(docs[3], (7, "# trailing\n"));
        assert_eq!(docs[4], (8, "---\nd: |\n  ---x\n"), "an indented --- is content");
    }

    #[test]
    fn text_that_is_not_utf8_is_reported_with_its_line_and_the_other_documents_are_read() {
        let mut r = Resources::default();
        let text: &[u8] = b"apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a}\n---\nkind: Service\nmetadata: {name: \"\xff\"}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: b}\n";
        r.load_reader("bad.yaml", text);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(r.errors[0].source.as_ref().map(|s| s.doc), Some(2));
        assert!(r.errors[0].message.contains("line 6 is not UTF-8"), "{}", r.errors[0].message);
        assert_eq!(r.l2_advertisements.len(), 2);
    }

    #[test]
    fn a_file_is_read_as_a_stream_and_a_read_error_is_reported() {
        let dir = std::env::temp_dir().join(format!("lb-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pools.yaml");
        std::fs::write(&path, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24]}\n").unwrap();
        let mut r = Resources::default();
        r.load_path(&path);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.pools.len(), 1);
        // A reader that fails half way: what came before is read, and the failure is said.
        struct Failing(&'static [u8]);
        impl std::io::Read for Failing {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other("device gone"));
                }
                let n = out.len().min(self.0.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = Resources::default();
        let first = b"apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a}\n---\n";
        r.load_reader("failing.yaml", std::io::BufReader::new(Failing(first)));
        assert_eq!(r.l2_advertisements.len(), 1);
        assert!(
            r.errors.iter().any(|e| e.message.contains("cannot read file after line 4: device gone")),
            "{:?}",
            r.errors
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_syntax_error_in_one_document_keeps_the_others() {
        let r = load("apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a}\n---\nkind: [oops\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: b}\n");
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].source.as_ref().map(|s| s.doc), Some(2));
        assert!(r.errors[0].message.contains("starts at line 4"), "{}", r.errors[0].message);
        assert_eq!(r.l2_advertisements.len(), 2);
        assert_eq!(r.l2_advertisements[1].source.doc, 3);
    }

    #[test]
    fn large_files_are_read() {
        let mut text = String::from("apiVersion: v1\nkind: List\nitems:\n");
        for i in 0..30_000 {
            text.push_str(&format!("- {{apiVersion: v1, kind: Service, metadata: {{name: s{i}, namespace: n}}, spec: {{type: LoadBalancer, ports: [{{port: 80}}]}}}}\n"));
        }
        let r = load(&text);
        assert!(r.errors.is_empty(), "{:?}", r.errors.first());
        assert_eq!(r.services.len(), 30_000);
        let docs: String =
            (0..2_000).map(|i| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: n{i}}}\n---\n")).collect();
        assert_eq!(load(&docs).namespaces.len(), 2_000);
    }

    #[test]
    fn nodes_are_read_with_labels_and_internal_ip_and_checked() {
        let node = |name: &str, ip: &str| {
            format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{rack: r1}}}}\nstatus: {{addresses: [{{type: Hostname, address: h}}, {{type: InternalIP, address: \"{ip}\"}}]}}\n---\n")
        };
        let r =
            load(&(node("a", "10.0.0.1") + &node("b", "fd00::2") + &node("c", "10.0.0.x") + &node("a", "10.0.0.4")));
        let got: Vec<_> =
            r.nodes.iter().map(|n| (n.object.metadata.name.clone().unwrap(), n.object.internal_ip())).collect();
        assert_eq!(got, [("a".to_string(), "10.0.0.1".parse().ok()), ("b".to_string(), "fd00::2".parse().ok())]);
        assert_eq!(r.nodes[0].object.metadata.labels["rack"], "r1");
        assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
        assert_eq!((r.errors[0].name.as_str(), r.errors[0].field.as_str()), ("c", "status.addresses[1].address"));
        assert_eq!(r.errors[0].value, "10.0.0.x");
        assert_eq!((r.errors[1].name.as_str(), r.errors[1].field.as_str()), ("a", "metadata.name"));
        assert!(load("apiVersion: v1\nkind: Node\nmetadata: {}\n").errors[0].message.contains("required"));
    }

    #[test]
    fn names_must_be_strings() {
        let r = load("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: 1234}\nspec: {addresses: [10.0.0.0/24]}\n");
        assert_eq!(r.errors.len(), 1);
        assert_eq!((r.errors[0].field.as_str(), r.errors[0].value.as_str()), ("metadata.name", "1234"));
        assert!(r.errors[0].message.contains("must be a string"));
    }

    #[test]
    fn lists_and_syntax_errors() {
        let r = load("apiVersion: v1\nkind: List\nitems:\n- apiVersion: metallb.io/v1beta1\n  kind: L2Advertisement\n  metadata: {name: l2}\n");
        assert_eq!(r.l2_advertisements.len(), 1);
        assert_eq!(r.l2_advertisements[0].source.item, Some(1));
        let r = load("kind: [unclosed\n");
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0].message.starts_with("invalid YAML"));
        let r = load("- just\n- a list\n");
        assert_eq!(r.errors.len(), 1);
    }

    #[test]
    fn removed_and_legacy_formats_are_explained() {
        let r = load(
            "apiVersion: metallb.io/v1beta1\nkind: AddressPool\nmetadata: {name: old}\nspec: {protocol: layer2}\n",
        );
        assert!(r.errors[0].message.contains("IPAddressPool"));
        let r = load("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata: {config: 'address-pools: []'}\n");
        assert!(r.warnings[0].message.contains("legacy ConfigMap"));
    }
}
