//! Address allocation with MetalLB's semantics, fast at any pool size.
//!
//! The [`Allocator`] gives each LoadBalancer service addresses from the configured pools:
//! requested addresses (`loadBalancerIPs`), a named pool (`address-pool`), or automatic
//! assignment from the pools that admit the service, tried in a defined order (see
//! [`Allocator::auto_order`]). Services with the same sharing key, the same backend key and no
//! common port may share an address. Single-stack, PreferDualStack and RequireDualStack
//! services are served; a dual-stack service takes both addresses from one pool when a pool
//! can give both, otherwise from the first pool of each family.
//!
//! Invariants:
//! - Every assigned address lies in exactly one pool (pools never overlap, see
//!   [`crate::config::validate`]) and is recorded in that pool's used set.
//! - Two services hold the same address only if their sharing keys are equal and non-empty,
//!   their backend keys are equal and their ports are disjoint.
//! - Nothing depends on hash-map iteration order: the same calls in the same order give the
//!   same addresses on every run.
//!
//! Cost: finding a free address is one ordered-map lookup per range of a pool (`O(log n)` in
//! the number of used intervals), and memory grows with what is allocated, never with the
//! size of a pool (see [`intervals`]). With `avoidBuggyIPs`, IPv4 addresses are mapped to an
//! ordinal space without the `.0` and `.255` addresses, so skipping them costs nothing either.

pub mod batch;
pub mod intervals;
pub mod range;
mod table;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

pub use intervals::IntervalSet;
pub use range::{AddrRange, Family, RangeError};

use crate::config::Pool;
use crate::service::{FamilyPolicy, Request, ServiceKey};
use table::{Addrs, Entry, Share, Table};

/// Why a service got no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The `address-pool` annotation names a pool that does not exist.
    #[error("pool {0:?} (annotation metallb.io/address-pool) does not exist")]
    UnknownPool(String),
    /// The pool's `serviceAllocation` does not admit the service.
    #[error("pool {0:?} does not admit this service (its serviceAllocation namespaces or selectors do not match)")]
    PoolNotAllowed(String),
    /// A requested address is in no pool.
    #[error("requested address {0} is not in any pool")]
    NotInPool(IpAddr),
    /// A requested address is in another pool than the one the service names.
    #[error("requested address {ip} is in pool {pool:?}, not in pool {wanted:?} named by metallb.io/address-pool")]
    WrongPool {
        /// The address.
        ip: IpAddr,
        /// The pool it is in.
        pool: String,
        /// The pool the service asks for.
        wanted: String,
    },
    /// A requested address is one `avoidBuggyIPs` excludes.
    #[error("requested address {ip} ends in .0 or .255, which pool {pool:?} avoids (avoidBuggyIPs)")]
    Buggy {
        /// The address.
        ip: IpAddr,
        /// Its pool.
        pool: String,
    },
    /// A requested address is held by a service it may not share with.
    #[error("address {ip} is already in use by {by} and cannot be shared: {reason}")]
    InUse {
        /// The address.
        ip: IpAddr,
        /// A service holding it.
        by: ServiceKey,
        /// Why sharing is refused.
        reason: String,
    },
    /// No pool may serve the service automatically.
    #[error("no pool with autoAssign admits this service")]
    NoPool,
    /// The admitting pools hold no address of a family the service needs.
    #[error("no admitting pool has {0} addresses")]
    NoFamily(Family),
    /// Every admitting pool of the family is full.
    #[error("no free {family} address in pool(s) {}", pools.join(", "))]
    Exhausted {
        /// The family.
        family: Family,
        /// The pools tried.
        pools: Vec<String>,
    },
}

/// Why an existing assignment (from Service status or a state file) cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The address left every pool (the configuration changed): allocate anew.
    #[error("address {0} is no longer in any pool")]
    NotInPool(IpAddr),
    /// Another restored service holds the address and sharing is not allowed. The earlier
    /// claim is kept; this one is refused, never silently moved.
    #[error("address {ip} is also claimed by {by}, and they may not share it: {reason}")]
    Conflict {
        /// The address.
        ip: IpAddr,
        /// The service already holding it.
        by: ServiceKey,
        /// Why they may not share.
        reason: String,
    },
}

/// Size and use of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// Pool name.
    pub name: String,
    /// Usable addresses (saturating at `u128::MAX`).
    pub size: u128,
    /// Addresses in use.
    pub assigned: u128,
}

/// One contiguous span of a pool, in ordinal space.
#[derive(Debug, Clone, Copy)]
struct Span {
    family: Family,
    lo: u128,
    hi: u128,
}

#[derive(Debug, Clone)]
struct PoolState {
    pool: Pool,
    spans: Vec<Span>,
    /// Used ordinals, IPv4 then IPv6.
    used: [IntervalSet; 2],
    size: u128,
}

fn fam_idx(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl PoolState {
    fn new(pool: Pool) -> Self {
        let avoid = pool.avoid_buggy_ips;
        let mut spans = Vec::new();
        let mut size: u128 = 0;
        for r in &pool.ranges {
            let fam = r.family();
            let (s, e) = (range::to_u128(r.start()), range::to_u128(r.end()));
            let span = if avoid && fam == Family::V4 {
                // First usable at or after s, last usable at or before e.
                let lo = match s & 0xff {
                    0 => s + 1,
                    255 => s + 2,
                    _ => s,
                };
                let hi = match e & 0xff {
                    255 => e.checked_sub(1),
                    0 => e.checked_sub(2),
                    _ => Some(e),
                };
                match hi {
                    Some(hi) if lo <= hi && lo <= u128::from(u32::MAX) => {
                        Some(Span { family: fam, lo: to_ord(true, fam, lo), hi: to_ord(true, fam, hi) })
                    }
                    _ => None,
                }
            } else {
                Some(Span { family: fam, lo: s, hi: e })
            };
            if let Some(sp) = span {
                size = size.saturating_add((sp.hi - sp.lo).saturating_add(1));
                spans.push(sp);
            }
        }
        PoolState { pool, spans, used: [IntervalSet::new(), IntervalSet::new()], size }
    }

    fn avoid(&self) -> bool {
        self.pool.avoid_buggy_ips
    }

    /// The ordinal of `ip` in this pool, or None if the pool does not use it.
    fn ord_of(&self, ip: IpAddr) -> Option<u128> {
        let fam = Family::of(ip);
        let v = range::to_u128(ip);
        if self.avoid() && fam == Family::V4 && matches!(v & 0xff, 0 | 255) {
            return None;
        }
        let o = to_ord(self.avoid(), fam, v);
        self.spans.iter().any(|s| s.family == fam && s.lo <= o && o <= s.hi).then_some(o)
    }

    fn ip_of(&self, fam: Family, o: u128) -> IpAddr {
        range::from_u128(fam, from_ord(self.avoid(), fam, o))
    }

    fn has_family(&self, fam: Family) -> bool {
        self.spans.iter().any(|s| s.family == fam)
    }

    /// The first free address of `fam`, in range order then address order.
    fn first_free(&self, fam: Family) -> Option<IpAddr> {
        let used = &self.used[fam_idx(fam)];
        self.spans
            .iter()
            .filter(|s| s.family == fam)
            .find_map(|s| used.first_free_from(s.lo).filter(|&o| o <= s.hi))
            .map(|o| self.ip_of(fam, o))
    }
}

/// IPv4 addresses of an `avoidBuggyIPs` pool map to `(addr >> 8) * 254 + (last octet - 1)`,
/// which is monotonic and skips exactly the `.0` and `.255` addresses. Everything else maps
/// to itself.
fn to_ord(avoid: bool, fam: Family, v: u128) -> u128 {
    if avoid && fam == Family::V4 {
        (v >> 8) * 254 + (v & 0xff) - 1
    } else {
        v
    }
}

fn from_ord(avoid: bool, fam: Family, o: u128) -> u128 {
    if avoid && fam == Family::V4 {
        ((o / 254) << 8) | (o % 254 + 1)
    } else {
        o
    }
}

/// The address allocator. See the module documentation for its semantics and invariants.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pools: Vec<PoolState>,
    by_name: HashMap<String, usize>,
    auto_order: Vec<usize>,
    /// (family, first address of a range) → (last address, pool index), for address → pool.
    range_index: BTreeMap<(Family, u128), (u128, usize)>,
    /// Services, their addresses and the holders of each address.
    table: Table,
    /// Addresses held by services with each sharing key.
    by_sharing_key: HashMap<String, BTreeSet<IpAddr>>,
}

impl Allocator {
    /// An allocator over `pools` (which must come from a validated [`crate::Config`]).
    pub fn new(pools: &[Pool]) -> Self {
        let mut a = Allocator::default();
        a.set_pools(pools);
        a
    }

    fn set_pools(&mut self, pools: &[Pool]) {
        self.pools = pools.iter().cloned().map(PoolState::new).collect();
        self.by_name = self.pools.iter().enumerate().map(|(i, p)| (p.pool.name.clone(), i)).collect();
        self.range_index.clear();
        for (i, p) in self.pools.iter().enumerate() {
            for r in &p.pool.ranges {
                self.range_index.insert((r.family(), range::to_u128(r.start())), (range::to_u128(r.end()), i));
            }
        }
        let mut order: Vec<usize> = (0..self.pools.len()).filter(|&i| self.pools[i].pool.auto_assign).collect();
        order.sort_by(|&a, &b| {
            let key = |i: usize| {
                let p = &self.pools[i].pool;
                // As MetalLB: pools with a serviceAllocation first (priority > 0 lowest first,
                // then unset priority), then pools without one; ties by name (MetalLB leaves
                // them to Go's map order).
                let class = match p.allocation.as_ref().map(|a| a.priority) {
                    Some(prio) if prio > 0 => (0, prio),
                    Some(_) => (1, 0),
                    None => (2, 0),
                };
                (class, p.name.clone())
            };
            key(a).cmp(&key(b))
        });
        self.auto_order = order;
    }

    /// Replaces the pools (a configuration change). Assignments whose addresses are still in
    /// a pool stay where they are; services whose addresses left every pool are released and
    /// returned, in key order, to be allocated anew.
    pub fn update_pools(&mut self, pools: &[Pool]) -> Vec<ServiceKey> {
        let all = self.table.drain_sorted();
        self.by_sharing_key.clear();
        self.set_pools(pools);
        let mut evicted = Vec::new();
        for e in all {
            let moved: Option<Vec<(IpAddr, usize)>> =
                e.addrs.ips().map(|ip| self.pool_of(ip).map(|p| (ip, p))).collect();
            match moved {
                Some(addrs) => self.commit(&e.key, &addrs, e.share),
                None => evicted.push((*e.key).clone()),
            }
        }
        evicted
    }

    /// The auto-assign pool order: pools with a `serviceAllocation` first (those with a
    /// priority, lowest number first, then those without), then pools without one; ties by
    /// name. Pools with `autoAssign: false` are not in it. A service tries, in this order,
    /// the pools that admit it.
    pub fn auto_order(&self) -> Vec<&str> {
        self.auto_order.iter().map(|&i| self.pools[i].pool.name.as_str()).collect()
    }

    /// Per-pool size and use, in pool name order.
    pub fn stats(&self) -> Vec<PoolStats> {
        self.pools
            .iter()
            .map(|p| PoolStats { name: p.pool.name.clone(), size: p.size, assigned: p.used[0].len() + p.used[1].len() })
            .collect()
    }

    /// The addresses of `key`, if it has any.
    pub fn assigned(&self, key: &ServiceKey) -> Option<Vec<IpAddr>> {
        self.table.get(key).map(|e| e.addrs.ips().collect())
    }

    /// The pool names of `key`'s addresses, one per address.
    pub fn assigned_pools(&self, key: &ServiceKey) -> Vec<&str> {
        self.table
            .get(key)
            .map(|e| e.addrs.iter().map(|(_, p)| self.pools[p].pool.name.as_str()).collect())
            .unwrap_or_default()
    }

    /// The services holding `ip`, in key order.
    pub fn holders(&self, ip: IpAddr) -> Vec<&ServiceKey> {
        let mut v: Vec<&ServiceKey> = self.table.holders(ip).map(|e| &*e.key).collect();
        v.sort();
        v
    }

    /// Number of services with addresses.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no service has an address.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// The pool index whose ranges hold `ip` and that uses it (not skipped by avoidBuggyIPs).
    fn pool_of(&self, ip: IpAddr) -> Option<usize> {
        let fam = Family::of(ip);
        let v = range::to_u128(ip);
        let (_, &(end, idx)) = self.range_index.range(..=(fam, v)).next_back()?;
        let (&(f, _), _) = self.range_index.range(..=(fam, v)).next_back()?;
        (f == fam && v <= end && self.pools[idx].ord_of(ip).is_some()).then_some(idx)
    }

    /// Why `share` may not join the current holders of `ip` (other than `key`).
    fn sharing_refused(&self, key: &ServiceKey, ip: IpAddr, share: &Share) -> Option<(ServiceKey, String)> {
        let mut others: Vec<&Entry> = self.table.holders(ip).filter(|e| *e.key != *key).collect();
        others.sort_by(|a, b| a.key.cmp(&b.key));
        others.into_iter().find_map(|e| share.refuses(&e.share).map(|r| ((*e.key).clone(), r)))
    }

    fn commit(&mut self, key: &ServiceKey, addrs: &[(IpAddr, usize)], share: Share) {
        let sharing_key = share.key.clone();
        let addrs = Addrs::new(addrs);
        for ip in self.table.insert(key, addrs, share) {
            if let Some((_, p)) = addrs.iter().find(|&(a, _)| a == ip) {
                let pool = &mut self.pools[p];
                if let Some(o) = pool.ord_of(ip) {
                    pool.used[fam_idx(Family::of(ip))].insert(o);
                }
            }
        }
        if let Some(k) = sharing_key {
            let set = self.by_sharing_key.entry(k.into()).or_default();
            set.extend(addrs.ips());
        }
    }

    /// Releases `key`'s addresses. Returns them (empty if it had none).
    pub fn release(&mut self, key: &ServiceKey) -> Vec<IpAddr> {
        let Some((entry, freed)) = self.table.remove(key) else {
            return Vec::new();
        };
        for (ip, p) in entry.addrs.iter().filter(|(ip, _)| freed.contains(ip)) {
            let pool = &mut self.pools[p];
            if let Some(o) = pool.ord_of(ip) {
                pool.used[fam_idx(Family::of(ip))].remove(o);
            }
            if let Some(k) = &entry.share.key {
                if let Some(set) = self.by_sharing_key.get_mut(&**k) {
                    set.remove(&ip);
                    if set.is_empty() {
                        self.by_sharing_key.remove(&**k);
                    }
                }
            }
        }
        entry.addrs.ips().collect()
    }

    /// Restores an existing assignment (from Service status or a state file) without
    /// choosing anything: the addresses must be in a pool and shareable with their current
    /// holders. On error nothing changes for `key`.
    pub fn restore(&mut self, key: &ServiceKey, req: &Request, ips: &[IpAddr]) -> Result<(), RestoreError> {
        let share = Share::of(req);
        let mut addrs = Vec::with_capacity(ips.len());
        for &ip in ips {
            let p = self.pool_of(ip).ok_or(RestoreError::NotInPool(ip))?;
            if let Some((by, reason)) = self.sharing_refused(key, ip, &share) {
                return Err(RestoreError::Conflict { ip, by, reason });
            }
            addrs.push((ip, p));
        }
        self.release(key);
        self.commit(key, &addrs, share);
        Ok(())
    }

    /// Gives `key` addresses for `req`, or keeps the ones it has if they still satisfy `req`.
    /// When a new allocation fails, the service keeps its previous addresses (if it had any)
    /// and the error says why the new request cannot be met.
    pub fn allocate(&mut self, key: &ServiceKey, req: &Request) -> Result<Vec<IpAddr>, AllocError> {
        let share = Share::of(req);
        let old = self.table.get(key).map(|e| (e.addrs, e.share.clone()));
        if let Some((addrs, _)) = &old {
            if self.satisfies(key, addrs, req, &share) {
                let mut kept: Vec<(IpAddr, usize)> = addrs.iter().collect();
                self.release(key);
                // As MetalLB: a PreferDualStack service with one address gains the other
                // family from the same pool as soon as that pool can give it.
                if let (FamilyPolicy::PreferDualStack, &[(ip, p)]) = (req.policy, kept.as_slice()) {
                    let other = match Family::of(ip) {
                        Family::V4 => Family::V6,
                        Family::V6 => Family::V4,
                    };
                    if let Some(more) = self.pick_in(p, other, key, &share) {
                        kept.push((more, p));
                        let first = req.families.first().copied().unwrap_or(Family::V4);
                        kept.sort_by_key(|(ip, _)| Family::of(*ip) != first);
                    }
                }
                self.commit(key, &kept, share);
                return Ok(kept.into_iter().map(|(ip, _)| ip).collect());
            }
        }
        self.release(key);
        let picked =
            if req.ips.is_empty() { self.pick_auto(key, req, &share) } else { self.pick_requested(key, req, &share) };
        match picked {
            Ok(picks) => {
                self.commit(key, &picks, share);
                Ok(picks.into_iter().map(|(ip, _)| ip).collect())
            }
            Err(e) => {
                if let Some((addrs, share)) = old {
                    let kept: Vec<(IpAddr, usize)> = addrs.iter().collect();
                    self.commit(key, &kept, share);
                }
                Err(e)
            }
        }
    }

    /// Whether the current assignment still meets the request (so the service keeps it).
    fn satisfies(&self, key: &ServiceKey, cur: &Addrs, req: &Request, share: &Share) -> bool {
        let mut ips: Vec<IpAddr> = cur.ips().collect();
        ips.sort();
        if !req.ips.is_empty() {
            let mut want = req.ips.clone();
            want.sort();
            if ips != want {
                return false;
            }
        }
        if let Some(want) = &req.pool {
            if cur.iter().any(|(_, p)| &self.pools[p].pool.name != want) {
                return false;
            }
        }
        let fams: BTreeSet<Family> = ips.iter().map(|&ip| Family::of(ip)).collect();
        let families_ok = match req.policy {
            FamilyPolicy::SingleStack => cur.len() == 1 && req.families.first().is_none_or(|f| fams.contains(f)),
            FamilyPolicy::PreferDualStack => cur.len() > 0 && fams.len() == cur.len(),
            FamilyPolicy::RequireDualStack => cur.len() == 2 && fams.len() == 2,
        };
        families_ok && ips.iter().all(|&ip| self.sharing_refused(key, ip, share).is_none())
    }

    fn admits(&self, p: usize, key: &ServiceKey, req: &Request) -> bool {
        self.pools[p]
            .pool
            .allocation
            .as_ref()
            .is_none_or(|a| a.admits(&key.namespace, &req.namespace_labels, &req.labels))
    }

    fn pick_requested(
        &self,
        key: &ServiceKey,
        req: &Request,
        share: &Share,
    ) -> Result<Vec<(IpAddr, usize)>, AllocError> {
        let mut out = Vec::new();
        for &ip in &req.ips {
            let p = match self.pool_of(ip) {
                Some(p) => p,
                None => {
                    // In a pool's ranges but skipped by avoidBuggyIPs?
                    let fam = Family::of(ip);
                    let v = range::to_u128(ip);
                    let buggy = self
                        .range_index
                        .range(..=(fam, v))
                        .next_back()
                        .filter(|((f, _), (end, _))| *f == fam && v <= *end);
                    return Err(match buggy {
                        Some((_, &(_, idx))) => AllocError::Buggy { ip, pool: self.pools[idx].pool.name.clone() },
                        None => AllocError::NotInPool(ip),
                    });
                }
            };
            let name = &self.pools[p].pool.name;
            if let Some(want) = &req.pool {
                if want != name {
                    return Err(AllocError::WrongPool { ip, pool: name.clone(), wanted: want.clone() });
                }
            }
            if !self.admits(p, key, req) {
                return Err(AllocError::PoolNotAllowed(name.clone()));
            }
            if let Some((by, reason)) = self.sharing_refused(key, ip, share) {
                return Err(AllocError::InUse { ip, by, reason });
            }
            out.push((ip, p));
        }
        Ok(out)
    }

    /// The first address of `fam` in pool `p` that `key` may take: an address already
    /// shared under its sharing key (so sharing services really share), else a free one.
    fn pick_in(&self, p: usize, fam: Family, key: &ServiceKey, share: &Share) -> Option<IpAddr> {
        if let Some(k) = &share.key {
            if let Some(ips) = self.by_sharing_key.get(&**k) {
                let shared = ips.iter().copied().find(|&ip| {
                    Family::of(ip) == fam
                        && self.pool_of(ip) == Some(p)
                        && self.sharing_refused(key, ip, share).is_none()
                });
                if shared.is_some() {
                    return shared;
                }
            }
        }
        self.pools[p].first_free(fam)
    }

    fn pick_auto(&self, key: &ServiceKey, req: &Request, share: &Share) -> Result<Vec<(IpAddr, usize)>, AllocError> {
        let candidates: Vec<usize> = match &req.pool {
            Some(name) => {
                let &p = self.by_name.get(name).ok_or_else(|| AllocError::UnknownPool(name.clone()))?;
                if !self.admits(p, key, req) {
                    return Err(AllocError::PoolNotAllowed(name.clone()));
                }
                vec![p]
            }
            None => self.auto_order.iter().copied().filter(|&p| self.admits(p, key, req)).collect(),
        };
        if candidates.is_empty() {
            return Err(AllocError::NoPool);
        }
        let first_of = |fam: Family| -> Result<(IpAddr, usize), AllocError> {
            let with_fam: Vec<usize> = candidates.iter().copied().filter(|&p| self.pools[p].has_family(fam)).collect();
            if with_fam.is_empty() {
                return Err(AllocError::NoFamily(fam));
            }
            with_fam.iter().find_map(|&p| self.pick_in(p, fam, key, share).map(|ip| (ip, p))).ok_or_else(|| {
                AllocError::Exhausted {
                    family: fam,
                    pools: with_fam.iter().map(|&p| self.pools[p].pool.name.clone()).collect(),
                }
            })
        };
        match req.policy {
            FamilyPolicy::SingleStack => match req.families.first() {
                Some(&fam) => Ok(vec![first_of(fam)?]),
                None => {
                    // Unspecified family (a file without ipFamilies): the first pool that has
                    // a free address, IPv4 before IPv6 within a pool.
                    for &p in &candidates {
                        for fam in [Family::V4, Family::V6] {
                            if let Some(ip) = self.pick_in(p, fam, key, share) {
                                return Ok(vec![(ip, p)]);
                            }
                        }
                    }
                    let fam = if candidates.iter().any(|&p| self.pools[p].has_family(Family::V4)) {
                        Family::V4
                    } else {
                        Family::V6
                    };
                    Err(first_of(fam).err().unwrap_or(AllocError::NoPool))
                }
            },
            FamilyPolicy::PreferDualStack | FamilyPolicy::RequireDualStack => {
                let order = match req.families.as_slice() {
                    [a, b] => [*a, *b],
                    [Family::V6] => [Family::V6, Family::V4],
                    _ => [Family::V4, Family::V6],
                };
                // One pool with both families first.
                for &p in &candidates {
                    if let (Some(a), Some(b)) =
                        (self.pick_in(p, order[0], key, share), self.pick_in(p, order[1], key, share))
                    {
                        return Ok(vec![(a, p), (b, p)]);
                    }
                }
                let (a, b) = (first_of(order[0]), first_of(order[1]));
                match (req.policy, a, b) {
                    (_, Ok(a), Ok(b)) => Ok(vec![a, b]),
                    (FamilyPolicy::PreferDualStack, Ok(a), Err(_)) | (FamilyPolicy::PreferDualStack, Err(_), Ok(a)) => {
                        Ok(vec![a])
                    }
                    (_, Err(e), _) | (_, _, Err(e)) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
