//! Who holds what: the allocator's table of services and address holders, stored compactly.
//!
//! Memory per assigned service is what limits a million-service allocator, so each service
//! is one slot (its key, whose strings are shared with the caller's; at most two addresses
//! inline; its sharing data without heap allocations when empty), and the lookups by key
//! and by address hold slot numbers only.
//!
//! Invariants: `index` and the live slots describe the same services; an address is in
//! `single` or in `shared` (never both) exactly when at least one live slot lists it:
//! `single` when one does, `shared`, with exactly those slots, when two or more do. Every
//! slot an element of these names is live.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;

use hashbrown::HashTable;

use crate::service::{Port, Request, ServiceKey};

/// What a service's sharing depends on. A service without a sharing key shares with nobody,
/// whatever its backend and ports, so for it (the common case) nothing is kept: no heap
/// allocation and one pointer's worth of room in its slot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Share(Option<Box<ShareParts>>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct ShareParts {
    key: Box<str>,
    backend: Box<str>,
    ports: Box<[Port]>,
}

impl Share {
    pub fn of(req: &Request) -> Self {
        Share(req.sharing_key.as_deref().map(|key| {
            Box::new(ShareParts {
                key: key.into(),
                backend: req.backend_key.as_str().into(),
                ports: req.ports.as_slice().into(),
            })
        }))
    }

    /// The sharing key, if any.
    pub fn key(&self) -> Option<&str> {
        self.0.as_deref().map(|p| &*p.key)
    }

    /// Why `self` may not share an address with `other`, if it may not.
    pub fn refuses(&self, other: &Share) -> Option<ShareRefusal> {
        let (Some(a), Some(b)) = (&self.0, &other.0) else { return Some(ShareRefusal::NoKey) };
        if a.key != b.key {
            return Some(ShareRefusal::KeysDiffer { ours: a.key.to_string(), theirs: b.key.to_string() });
        }
        if a.backend != b.backend {
            return Some(ShareRefusal::BackendsDiffer);
        }
        let clash: Vec<Port> = a.ports.iter().filter(|p| b.ports.contains(p)).copied().collect();
        if !clash.is_empty() {
            return Some(ShareRefusal::Ports(clash));
        }
        None
    }
}

/// Why two services may not share an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareRefusal {
    /// One of them has no sharing key.
    #[error("both services need the same metallb.io/allow-shared-ip key")]
    NoKey,
    /// Their sharing keys differ.
    #[error("sharing keys differ ({ours:?} and {theirs:?})")]
    KeysDiffer {
        /// The key of the service asking.
        ours: String,
        /// The key of the service holding the address.
        theirs: String,
    },
    /// Their backend keys differ.
    #[error("externalTrafficPolicy Local services must have the same pod selector, and Cluster ones cannot share with Local ones")]
    BackendsDiffer,
    /// They use the same protocol and port.
    #[error("both use port {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "))]
    Ports(Vec<Port>),
}

/// A service's addresses: at most one per family, in the order given, inline in 21 octets.
/// Their pools are not kept: pools never overlap, so an address names its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Addrs {
    v4: [u8; 4],
    v6: [u8; 16],
    flags: u8,
}

const HAS_V4: u8 = 1;
const HAS_V6: u8 = 2;
const V6_FIRST: u8 = 4;

impl Addrs {
    /// The addresses of `ips`, in order. Of two addresses of one family only the first is
    /// kept (a service has at most one address per family, which the callers guarantee).
    pub fn new(ips: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut a = Addrs { v4: [0; 4], v6: [0; 16], flags: 0 };
        for ip in ips {
            match ip {
                IpAddr::V4(v) if a.flags & HAS_V4 == 0 => {
                    a.v4 = v.octets();
                    a.flags |= HAS_V4;
                }
                IpAddr::V6(v) if a.flags & HAS_V6 == 0 => {
                    a.v6 = v.octets();
                    a.flags |= HAS_V6 | if a.flags & HAS_V4 == 0 { V6_FIRST } else { 0 };
                }
                _ => {}
            }
        }
        a
    }

    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + use<> {
        let v4 = (self.flags & HAS_V4 != 0).then(|| IpAddr::from(self.v4));
        let v6 = (self.flags & HAS_V6 != 0).then(|| IpAddr::from(self.v6));
        let (first, second) = if self.flags & V6_FIRST != 0 { (v6, v4) } else { (v4, v6) };
        first.into_iter().chain(second)
    }

    pub fn len(&self) -> usize {
        usize::from(self.flags & HAS_V4 != 0) + usize::from(self.flags & HAS_V6 != 0)
    }
}

/// One service's assignment.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub key: ServiceKey,
    pub addrs: Addrs,
    pub share: Share,
}

impl Entry {
    /// The `i`th address (callers pass an index below `addrs.len()`).
    fn ip(&self, i: usize) -> Option<IpAddr> {
        self.addrs.ips().nth(i)
    }
}

/// Services by key, and holders by address.
///
/// The two lookups hold only slot numbers (4 octets a service and an address, plus the hash
/// table's control byte): a key or an address is found by its hash and compared against the
/// slot it names. An address held by one service (the common case) is in `single`, as its
/// slot and the address's place in that slot (`slot << 1 | place`); one held by two or more
/// is in `shared` with every holder.
#[derive(Debug, Clone, Default)]
pub(super) struct Table {
    hasher: RandomState,
    index: HashTable<u32>,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    single: HashTable<u32>,
    shared: HashMap<IpAddr, Vec<u32>>,
}

/// The entry in `slot` (every slot a lookup names is live: see the module invariants).
fn live(slots: &[Option<Entry>], slot: u32) -> Option<&Entry> {
    slots.get(slot as usize)?.as_ref()
}

/// The address a `single` element stands for.
fn single_ip(slots: &[Option<Entry>], elem: u32) -> Option<IpAddr> {
    live(slots, elem >> 1)?.ip((elem & 1) as usize)
}

impl Table {
    fn hash<T: Hash + ?Sized>(&self, v: &T) -> u64 {
        self.hasher.hash_one(v)
    }

    /// Makes room for `additional` more services (each with one address) at once.
    pub fn reserve(&mut self, additional: usize) {
        let more = additional.saturating_sub(self.free.len());
        self.slots.reserve_exact(more);
        let Table { hasher, index, slots, single, .. } = self;
        index.reserve(additional, |&s| live(slots, s).map_or(0, |e| hasher.hash_one(&e.key)));
        single.reserve(additional, |&e| single_ip(slots, e).map_or(0, |ip| hasher.hash_one(ip)));
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    fn slot_of(&self, key: &ServiceKey) -> Option<u32> {
        let slots = &self.slots;
        self.index.find(self.hash(key), |&s| live(slots, s).is_some_and(|e| e.key == *key)).copied()
    }

    pub fn get(&self, key: &ServiceKey) -> Option<&Entry> {
        live(&self.slots, self.slot_of(key)?)
    }

    /// The slots of the services holding `ip`.
    fn holder_slots(&self, ip: IpAddr) -> Vec<u32> {
        if let Some(v) = self.shared.get(&ip) {
            return v.clone();
        }
        let slots = &self.slots;
        self.single
            .find(self.hash(&ip), |&e| single_ip(slots, e) == Some(ip))
            .map(|&e| vec![e >> 1])
            .unwrap_or_default()
    }

    /// The services holding `ip`.
    pub fn holders(&self, ip: IpAddr) -> impl Iterator<Item = &Entry> + '_ {
        self.holder_slots(ip).into_iter().filter_map(|s| live(&self.slots, s))
    }

    /// Records `key`'s assignment (replacing any previous one, which the caller has removed).
    /// Returns the addresses that had no holder before (the caller marks them used).
    pub fn insert(&mut self, key: &ServiceKey, addrs: Addrs, share: Share) -> Vec<IpAddr> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let key_hash = self.hash(key);
        let ip_hashes: Vec<(IpAddr, u64)> = addrs.ips().map(|ip| (ip, self.hash(&ip))).collect();
        self.slots[slot as usize] = Some(Entry { key: key.clone(), addrs, share });
        let Table { hasher, index, slots, single, shared, .. } = self;
        index.insert_unique(key_hash, slot, |&s| live(slots, s).map_or(0, |e| hasher.hash_one(&e.key)));
        let mut newly = Vec::new();
        for (place, (ip, h)) in ip_hashes.into_iter().enumerate() {
            if let Some(v) = shared.get_mut(&ip) {
                v.push(slot);
                continue;
            }
            match single.find_entry(h, |&e| single_ip(slots, e) == Some(ip)) {
                Ok(occupied) => {
                    let (other, _) = occupied.remove();
                    shared.insert(ip, vec![other >> 1, slot]);
                }
                Err(_) => {
                    let elem = slot << 1 | place as u32;
                    single.insert_unique(h, elem, |&e| single_ip(slots, e).map_or(0, |ip| hasher.hash_one(ip)));
                    newly.push(ip);
                }
            }
        }
        newly
    }

    /// Removes `key`'s assignment; returns it and the addresses that no longer have a holder.
    pub fn remove(&mut self, key: &ServiceKey) -> Option<(Entry, Vec<IpAddr>)> {
        let key_hash = self.hash(key);
        let Table { hasher, index, slots, single, shared, free } = self;
        let found = index.find_entry(key_hash, |&s| live(slots, s).is_some_and(|e| e.key == *key)).ok()?;
        let (slot, _) = found.remove();
        let ips: Vec<IpAddr> = live(slots, slot)?.addrs.ips().collect();
        let mut freed = Vec::new();
        for ip in ips {
            let h = hasher.hash_one(ip);
            match shared.get_mut(&ip) {
                Some(v) => {
                    v.retain(|&s| s != slot);
                    if let [one] = v.as_slice() {
                        // Back to one holder: into `single`, with the address's place there.
                        let one = *one;
                        shared.remove(&ip);
                        let place = live(slots, one).and_then(|e| e.addrs.ips().position(|x| x == ip)).unwrap_or(0);
                        single.insert_unique(h, one << 1 | place as u32, |&e| {
                            single_ip(slots, e).map_or(0, |ip| hasher.hash_one(ip))
                        });
                    } else if v.is_empty() {
                        shared.remove(&ip);
                        freed.push(ip);
                    }
                }
                None => {
                    if let Ok(e) = single.find_entry(h, |&e| e >> 1 == slot && single_ip(slots, e) == Some(ip)) {
                        e.remove();
                    }
                    freed.push(ip);
                }
            }
        }
        let entry = slots.get_mut(slot as usize)?.take()?;
        free.push(slot);
        Some((entry, freed))
    }

    /// Every live entry, in slot order.
    #[cfg(test)]
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.slots.iter().flatten()
    }

    /// Number of addresses with at least one holder.
    #[cfg(test)]
    pub fn addresses(&self) -> usize {
        self.single.len() + self.shared.len()
    }

    /// Removes every entry and returns them in key order.
    pub fn drain_sorted(&mut self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.slots.drain(..).flatten().collect();
        self.index.clear();
        self.free.clear();
        self.single.clear();
        self.shared.clear();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_stays_within_its_memory_budget() {
        // One per service: with a million services each octet here is a megabyte.
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 64);
    }

    #[test]
    fn addresses_keep_their_order_and_one_per_family() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for order in [[ip("2001:db8::1"), ip("192.0.2.1")], [ip("192.0.2.1"), ip("2001:db8::1")]] {
            let a = Addrs::new(order);
            assert_eq!(a.ips().collect::<Vec<_>>(), order);
            assert_eq!(a.len(), 2);
        }
        let a = Addrs::new([ip("192.0.2.1"), ip("192.0.2.2")]);
        assert_eq!(a.ips().collect::<Vec<_>>(), [ip("192.0.2.1")], "the first of a family is kept");
        assert_eq!(Addrs::new([]).len(), 0);
    }
}
