//! The standalone state file: the assignments `lb run` made, the analogue of Service status
//! in Kubernetes. It is read before anything is allocated, so a restart or a configuration
//! edit never moves an address.
//!
//! Format (JSON): `{"services": {"namespace/name": ["192.0.2.10", "2001:db8::10"]}}`, keys
//! in order. Written atomically (temporary file, then rename), and streamed: with 100k
//! services neither the file's text nor a map of it is built in memory to write it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Assignments by `namespace/name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Addresses of each service.
    pub services: BTreeMap<String, Vec<IpAddr>>,
}

impl State {
    /// Reads the state file: a missing file is an empty state; one that cannot be read or
    /// parsed is an error saying why (the caller decides whether to go on without it).
    pub fn read(path: &Path) -> Result<State, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("unreadable JSON: {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reads the state file; a missing file is an empty state, a corrupt one is reported and
    /// treated as empty (the configuration is still served).
    pub fn load(path: &Path) -> State {
        State::read(path).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "the state file cannot be read; starting without it");
            State::default()
        })
    }
}

/// A map written as its entries come, without collecting them.
struct Streamed<I>(std::cell::Cell<Option<I>>);

impl<K: Serialize, V: Serialize, I: Iterator<Item = (K, V)>> Serialize for Streamed<I> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let entries = self.0.take().ok_or_else(|| serde::ser::Error::custom("written twice"))?;
        s.collect_map(entries)
    }
}

/// Writes the state file atomically from `(namespace/name, addresses)` entries, which the
/// caller gives in key order.
pub fn save_entries<K: Serialize, V: Serialize>(
    path: &Path,
    entries: impl Iterator<Item = (K, V)>,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct File<T> {
        services: T,
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = PathBuf::from(path);
    tmp.set_extension("tmp");
    {
        let f = std::fs::File::create(&tmp)?;
        let mut out = std::io::BufWriter::new(f);
        serde_json::to_writer_pretty(&mut out, &File { services: Streamed(std::cell::Cell::new(Some(entries))) })
            .map_err(std::io::Error::from)?;
        let f = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        // Durable before it replaces the old file: a power cut leaves the old or the new state,
        // never an empty one (which would move every address).
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("lb-state-{}", std::process::id()));
        let path = dir.join("sub/state.json");
        let mut s = State::default();
        s.services.insert("ns/a".into(), vec!["192.0.2.1".parse().unwrap()]);
        s.services.insert("ns/b".into(), vec!["192.0.2.2".parse().unwrap(), "2001:db8::2".parse().unwrap()]);
        save_entries(&path, s.services.iter().map(|(k, v)| (k, v.as_slice()))).unwrap();
        assert_eq!(State::load(&path), s);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.find("ns/a").unwrap() < text.find("ns/b").unwrap(), "keys in order: {text}");
        save_entries(&path, std::iter::empty::<(&str, &[IpAddr])>()).unwrap();
        assert_eq!(State::load(&path), State::default());
        assert!(!path.with_extension("tmp").exists(), "the temporary file is renamed over the state");
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(State::load(&path), State::default());
        assert_eq!(State::load(&dir.join("missing.json")), State::default());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
