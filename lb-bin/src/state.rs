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

use serde::Serialize;

/// Assignments by `namespace/name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Addresses of each service.
    pub services: BTreeMap<String, Vec<IpAddr>>,
}

impl State {
    /// Reads the state file into a map: a missing file is an empty state; one that cannot be
    /// read or parsed is an error saying why.
    pub fn read(path: &Path) -> Result<State, String> {
        let mut services = BTreeMap::new();
        read_entries(path, |key, ips| {
            services.insert(key.to_string(), ips.to_vec());
        })?;
        Ok(State { services })
    }
}

/// Reads the state file entry by entry into `apply`, without building a map of it (100k
/// entries as a map cost about 13 MB) or holding its text (49 octets an entry): it is read
/// through a small buffer, twice, from one open handle. The first pass checks it, so a file
/// that does not parse applies nothing; `lb` replaces the file by renaming a new one over it,
/// which leaves the open handle reading the version it opened. Returns the number of entries;
/// a missing file has none.
pub fn read_entries(path: &Path, mut apply: impl FnMut(&str, &[IpAddr])) -> Result<usize, String> {
    use std::io::Seek;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.to_string()),
    };
    let count = parse(&file, &mut |_, _| {})?;
    file.rewind().map_err(|e| e.to_string())?;
    let applied = parse(&file, &mut apply)?;
    if applied != count {
        return Err(format!("the file changed while it was read ({count} entries, then {applied})"));
    }
    Ok(count)
}

/// Parses the whole file, giving each entry to `apply`.
fn parse(file: &std::fs::File, apply: &mut dyn FnMut(&str, &[IpAddr])) -> Result<usize, String> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(16 * 1024, file));
    let count = FileSeed(apply).deserialize(&mut de).and_then(|n| de.end().map(|()| n));
    count.map_err(|e| format!("unreadable JSON: {e}"))
}

/// The file: an object whose `services` member is the map of entries (other members are
/// passed over).
struct FileSeed<'a>(&'a mut dyn FnMut(&str, &[IpAddr]));

impl<'de> serde::de::DeserializeSeed<'de> for FileSeed<'_> {
    type Value = usize;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FileSeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with a `services` member")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut count = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "services" && count.is_none() {
                count = Some(map.next_value_seed(EntriesSeed(&mut *self.0))?);
            } else if key == "services" {
                return Err(serde::de::Error::duplicate_field("services"));
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        count.ok_or_else(|| serde::de::Error::missing_field("services"))
    }
}

/// The map of `"namespace/name": [addresses]`, each entry given to the function as it comes.
struct EntriesSeed<'a>(&'a mut dyn FnMut(&str, &[IpAddr]));

impl<'de> serde::de::DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = usize;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EntriesSeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map of service names to lists of addresses")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut count = 0;
        while let Some((key, ips)) = map.next_entry::<String, Vec<IpAddr>>()? {
            (self.0)(&key, &ips);
            count += 1;
        }
        Ok(count)
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
        assert_eq!(State::read(&path), Ok(s.clone()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.find("ns/a").unwrap() < text.find("ns/b").unwrap(), "keys in order: {text}");
        save_entries(&path, std::iter::empty::<(&str, &[IpAddr])>()).unwrap();
        assert_eq!(State::read(&path), Ok(State::default()));
        assert!(!path.with_extension("tmp").exists(), "the temporary file is renamed over the state");
        assert_eq!(State::read(&dir.join("missing.json")), Ok(State::default()));
        // Other members are passed over; escaped keys are read as their text.
        std::fs::write(&path, br#"{"version": [1, {"x": null}], "services": {"ns\/c": ["192.0.2.3"]}}"#).unwrap();
        let got = State::read(&path).unwrap();
        assert_eq!(got.services.keys().collect::<Vec<_>>(), ["ns/c"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_does_not_parse_applies_nothing() {
        let dir = std::env::temp_dir().join(format!("lb-state-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        for bad in [
            &br#"{not json"#[..],
            br#"{"services": {"ns/a": ["192.0.2.1"], "ns/b": ["not an address"]}}"#,
            br#"{"services": {"ns/a": ["192.0.2.1"]}} trailing"#,
            br#"{"services": {"ns/a": ["192.0.2.1"]}, "services": {}}"#,
            br#"{"other": {}}"#,
            br#"[]"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let mut applied = Vec::new();
            let got = read_entries(&path, |k, ips| applied.push((k.to_string(), ips.to_vec())));
            assert!(got.is_err(), "{}: {got:?}", String::from_utf8_lossy(bad));
            assert!(applied.is_empty(), "{}: applied {applied:?}", String::from_utf8_lossy(bad));
        }
        std::fs::write(&path, br#"{"services": {"ns/a": ["192.0.2.1"], "ns/b": []}}"#).unwrap();
        let mut applied = Vec::new();
        assert_eq!(read_entries(&path, |k, ips| applied.push((k.to_string(), ips.len()))), Ok(2));
        assert_eq!(applied, [("ns/a".to_string(), 1), ("ns/b".to_string(), 0)], "each entry once, in file order");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_replaced_by_rename_while_read_is_read_as_opened_and_one_rewritten_in_place_fails() {
        let dir = std::env::temp_dir().join(format!("lb-state-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        // Larger than the read buffer, so that the second pass reads the file again.
        let many = |n: u32| (0..n).map(|i| (format!("ns/s{i:05}"), [IpAddr::from([192, 0, (i >> 8) as u8, i as u8])]));
        let write_many = |n| save_entries(&path, many(n).map(|(k, v)| (k, v.to_vec()))).unwrap();
        write_many(2000);
        assert!(std::fs::metadata(&path).unwrap().len() > 64 * 1024);
        let (mut calls, mut seen) = (0, 0);
        let got = read_entries(&path, |_, _| {
            if calls == 0 {
                write_many(10); // as lb writes it: a new file renamed over the old one
            }
            calls += 1;
            seen += 1;
        });
        assert_eq!((got, seen), (Ok(2000), 2000), "the open handle keeps the version it opened");
        write_many(2000);
        let mut calls = 0;
        let got = read_entries(&path, |_, _| {
            if calls == 0 {
                std::fs::write(&path, b"{\"services\": {}}").unwrap(); // truncated and rewritten in place
            }
            calls += 1;
        });
        assert!(got.is_err(), "a file changed under the reader is an error, not a silent half: {got:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
