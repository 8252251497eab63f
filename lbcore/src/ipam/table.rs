//! Who holds what: the allocator's table of services and address holders, stored compactly.
//!
//! Memory per assigned service is what limits a million-service allocator, so each service
//! is one slot (its key once, behind an `Arc` shared with the index; at most two addresses
//! inline; its sharing data without heap allocations when empty), and each address records
//! its holders inline when there is one (the common case), as slot numbers.
//!
//! Invariants: `index` and the live slots describe the same services; an address is in
//! `holders` exactly when at least one live slot lists it, and then it lists exactly those.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

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

/// Up to two addresses (one per family), each with its pool index, inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Addrs {
    len: u8,
    items: [(IpAddr, u32); 2],
}

impl Addrs {
    const EMPTY: (IpAddr, u32) = (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

    /// At most two `(address, pool)` pairs; further ones are ignored (a service has at most
    /// one address per family, which the callers guarantee).
    pub fn new(items: &[(IpAddr, usize)]) -> Self {
        let mut a = Addrs { len: 0, items: [Self::EMPTY; 2] };
        for &(ip, p) in items.iter().take(2) {
            a.items[a.len as usize] = (ip, p as u32);
            a.len += 1;
        }
        a
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, usize)> + '_ {
        self.items[..self.len as usize].iter().map(|&(ip, p)| (ip, p as usize))
    }

    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.iter().map(|(ip, _)| ip)
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }
}

/// One service's assignment.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub key: Arc<ServiceKey>,
    pub addrs: Addrs,
    pub share: Share,
}

/// Holders of one address: one slot inline, or several when shared.
#[derive(Debug, Clone)]
enum Holders {
    One(u32),
    Many(Vec<u32>),
}

impl Holders {
    fn slots(&self) -> &[u32] {
        match self {
            Holders::One(s) => std::slice::from_ref(s),
            Holders::Many(v) => v,
        }
    }
}

/// Services by key, and holders by address.
#[derive(Debug, Clone, Default)]
pub(super) struct Table {
    index: HashMap<Arc<ServiceKey>, u32>,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    holders: HashMap<IpAddr, Holders>,
}

impl Table {
    /// Makes room for `additional` more services (each with one address) at once.
    pub fn reserve(&mut self, additional: usize) {
        let more = additional.saturating_sub(self.free.len());
        self.slots.reserve_exact(more);
        self.index.reserve(additional);
        self.holders.reserve(additional);
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn get(&self, key: &ServiceKey) -> Option<&Entry> {
        let &slot = self.index.get(key)?;
        self.slots.get(slot as usize)?.as_ref()
    }

    /// The services holding `ip`.
    pub fn holders(&self, ip: IpAddr) -> impl Iterator<Item = &Entry> + '_ {
        let slots = self.holders.get(&ip).map(Holders::slots).unwrap_or_default();
        slots.iter().filter_map(|&s| self.slots.get(s as usize)?.as_ref())
    }

    /// Records `key`'s assignment (replacing any previous one, which the caller has removed).
    /// Returns the addresses that had no holder before (the caller marks them used).
    pub fn insert(&mut self, key: &ServiceKey, addrs: Addrs, share: Share) -> Vec<IpAddr> {
        let key = Arc::new(key.clone());
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let mut newly = Vec::new();
        for ip in addrs.ips() {
            match self.holders.get_mut(&ip) {
                None => {
                    self.holders.insert(ip, Holders::One(slot));
                    newly.push(ip);
                }
                Some(h) => {
                    let mut v = h.slots().to_vec();
                    v.push(slot);
                    *h = Holders::Many(v);
                }
            }
        }
        self.index.insert(Arc::clone(&key), slot);
        self.slots[slot as usize] = Some(Entry { key, addrs, share });
        newly
    }

    /// Removes `key`'s assignment; returns it and the addresses that no longer have a holder.
    pub fn remove(&mut self, key: &ServiceKey) -> Option<(Entry, Vec<IpAddr>)> {
        let slot = self.index.remove(key)?;
        let entry = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        let mut freed = Vec::new();
        for ip in entry.addrs.ips() {
            let now_empty = match self.holders.get_mut(&ip) {
                Some(Holders::Many(v)) => {
                    v.retain(|&s| s != slot);
                    match v.as_slice() {
                        [] => true,
                        &[one] => {
                            self.holders.insert(ip, Holders::One(one));
                            false
                        }
                        _ => false,
                    }
                }
                Some(Holders::One(_)) | None => true,
            };
            if now_empty {
                self.holders.remove(&ip);
                freed.push(ip);
            }
        }
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
        self.holders.len()
    }

    /// Removes every entry and returns them in key order.
    pub fn drain_sorted(&mut self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.slots.drain(..).flatten().collect();
        self.index.clear();
        self.free.clear();
        self.holders.clear();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }
}
