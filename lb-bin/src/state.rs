//! The standalone state file: the assignments `lb run` made, the analogue of Service status
//! in Kubernetes. It is read before anything is allocated, so a restart or a configuration
//! edit never moves an address.
//!
//! Format (JSON): `{"services": {"namespace/name": ["192.0.2.10", "2001:db8::10"]}}`.
//! Written atomically (temporary file, then rename).

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
    /// Reads the state file; a missing file is an empty state, a corrupt one is reported and
    /// treated as empty (the configuration is still served).
    pub fn load(path: &Path) -> State {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "state file is unreadable; starting without it");
                State::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the state file");
                State::default()
            }
        }
    }

    /// Writes the state file atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut tmp = PathBuf::from(path);
        tmp.set_extension("tmp");
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::from)?;
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &json)?;
        // Durable before it replaces the old file: a power cut leaves the old or the new state,
        // never an empty one (which would move every address).
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
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
        s.save(&path).unwrap();
        assert_eq!(State::load(&path), s);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(State::load(&path), State::default());
        assert_eq!(State::load(&dir.join("missing.json")), State::default());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
