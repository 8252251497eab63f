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
//! Files: `pool.rs` (one pool's address space and use), `table.rs` (services and address
//! holders), `pick.rs` (choosing addresses, read-only), `batch.rs` (restore-then-allocate of
//! a whole service set), `intervals.rs`, `range.rs`.
//!
//! Invariants:
//! - Every assigned address lies in exactly one pool (pools never overlap, see
//!   [`crate::config::validate()`]) and is recorded in that pool's used set.
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
mod pick;
mod pool;
pub mod range;
mod table;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

pub use intervals::IntervalSet;
pub use pool::usable_size;
pub use range::{AddrRange, Family, RangeError};
pub use table::ShareRefusal;

use crate::config::Pool;
use crate::service::{FamilyPolicy, Request, ServiceKey};
use pool::{fam_idx, PoolState};
use table::{Addrs, Entry, Share, Table};

/// Why a service got no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The `address-pool` annotation names a pool that does not exist.
    #[error("pool {0:?} (annotation metallb.io/address-pool) does not exist: fix the annotation, or create the IPAddressPool")]
    UnknownPool(String),
    /// The pool's `serviceAllocation` does not admit the service.
    #[error("pool {0:?} does not admit this service (its serviceAllocation namespaces or selectors do not match)")]
    PoolNotAllowed(String),
    /// A requested address is in no pool.
    #[error("requested address {0} is not in any pool: add it to an IPAddressPool, or ask for one that is")]
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
        reason: ShareRefusal,
    },
    /// No pool may serve the service automatically.
    #[error("no pool with autoAssign admits this service: name a pool (metallb.io/address-pool), or add an IPAddressPool with autoAssign: true whose serviceAllocation admits it")]
    NoPool,
    /// The admitting pools hold no address of a family the service needs.
    #[error("no admitting pool has {0} addresses: add a {0} range to a pool, or change the Service's ipFamilies / ipFamilyPolicy")]
    NoFamily(Family),
    /// Every admitting pool of the family is full.
    #[error("no free {family} address in pool(s) {}: add addresses to a pool, or free one", pools.join(", "))]
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
        reason: ShareRefusal,
    },
    /// The recorded addresses are not one per family.
    #[error("recorded addresses {0:?} are not one per family")]
    Families(Vec<IpAddr>),
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

    /// Makes room for `additional` more services, so that a batch of known size (a start
    /// with 100k services) grows the tables once instead of doubling them, which for a moment
    /// holds the old and the new table.
    pub fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional);
    }

    /// Replaces the pools (a configuration change). Addresses still in a pool stay where
    /// they are. Returns, in key order, the services that lost an address because it left
    /// every pool: they keep their other address, if any, and must be allocated again
    /// ([`Allocator::allocate`] keeps what survives where it can).
    pub fn update_pools(&mut self, pools: &[Pool]) -> Vec<ServiceKey> {
        let all = self.table.drain_sorted();
        self.by_sharing_key.clear();
        self.set_pools(pools);
        let mut lost = Vec::new();
        for e in all {
            let survivors: Vec<(IpAddr, usize)> =
                e.addrs.ips().filter_map(|ip| self.pool_of(ip).map(|p| (ip, p))).collect();
            if survivors.len() < e.addrs.len() {
                lost.push(e.key.clone());
            }
            if !survivors.is_empty() {
                self.commit(&e.key, &survivors, e.share);
            }
        }
        lost
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

    /// `key`'s addresses, each with the name of its pool (empty when it has none).
    pub fn assignment(&self, key: &ServiceKey) -> Vec<(IpAddr, &str)> {
        self.table
            .get(key)
            .map(|e| {
                self.with_pools(&e.addrs).into_iter().map(|(ip, p)| (ip, self.pools[p].pool.name.as_str())).collect()
            })
            .unwrap_or_default()
    }

    /// The pool names of `key`'s addresses, one per address.
    pub fn assigned_pools(&self, key: &ServiceKey) -> Vec<&str> {
        self.assignment(key).into_iter().map(|(_, p)| p).collect()
    }

    /// The services holding `ip`, in key order.
    pub fn holders(&self, ip: IpAddr) -> Vec<&ServiceKey> {
        let mut v: Vec<&ServiceKey> = self.table.holders(ip).map(|e| &e.key).collect();
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
        self.range_owner(ip).filter(|&idx| self.pools[idx].ord_of(ip).is_some())
    }

    /// Each of `addrs` with its pool (every held address is in one: see the invariants).
    fn with_pools(&self, addrs: &Addrs) -> Vec<(IpAddr, usize)> {
        addrs.ips().filter_map(|ip| Some((ip, self.pool_of(ip)?))).collect()
    }

    /// Why `share` may not join the current holders of `ip` (other than `key`).
    fn sharing_refused(&self, key: &ServiceKey, ip: IpAddr, share: &Share) -> Option<(ServiceKey, ShareRefusal)> {
        let mut others: Vec<&Entry> = self.table.holders(ip).filter(|e| e.key != *key).collect();
        others.sort_by(|a, b| a.key.cmp(&b.key));
        others.into_iter().find_map(|e| share.refuses(&e.share).map(|r| (e.key.clone(), r)))
    }

    fn commit(&mut self, key: &ServiceKey, addrs: &[(IpAddr, usize)], share: Share) {
        let sharing_key: Option<String> = share.key().map(str::to_string);
        let pools = addrs;
        let addrs = Addrs::new(pools.iter().map(|&(ip, _)| ip));
        for ip in self.table.insert(key, addrs, share) {
            if let Some(&(_, p)) = pools.iter().find(|&&(a, _)| a == ip) {
                let pool = &mut self.pools[p];
                if let Some(o) = pool.ord_of(ip) {
                    pool.used[fam_idx(Family::of(ip))].insert(o);
                }
            }
        }
        if let Some(k) = sharing_key {
            let set = self.by_sharing_key.entry(k).or_default();
            set.extend(addrs.ips());
        }
    }

    /// Releases `key`'s addresses. Returns them (empty if it had none).
    pub fn release(&mut self, key: &ServiceKey) -> Vec<IpAddr> {
        let Some((entry, freed)) = self.table.remove(key) else {
            return Vec::new();
        };
        for (ip, p) in self.with_pools(&entry.addrs).into_iter().filter(|(ip, _)| freed.contains(ip)) {
            let pool = &mut self.pools[p];
            if let Some(o) = pool.ord_of(ip) {
                pool.used[fam_idx(Family::of(ip))].remove(o);
            }
            if let Some(k) = entry.share.key() {
                if let Some(set) = self.by_sharing_key.get_mut(k) {
                    set.remove(&ip);
                    if set.is_empty() {
                        self.by_sharing_key.remove(k);
                    }
                }
            }
        }
        entry.addrs.ips().collect()
    }

    /// Restores an existing assignment (from Service status or a state file) without
    /// choosing anything: the addresses (one per family) must be in a pool and shareable
    /// with their current holders. On error nothing changes for `key`.
    pub fn restore(&mut self, key: &ServiceKey, req: &Request, ips: &[IpAddr]) -> Result<(), RestoreError> {
        let mut uniq: Vec<IpAddr> = Vec::with_capacity(ips.len());
        for &ip in ips {
            if !uniq.contains(&ip) {
                uniq.push(ip);
            }
        }
        let v4 = uniq.iter().filter(|ip| ip.is_ipv4()).count();
        if v4 > 1 || uniq.len() - v4 > 1 {
            return Err(RestoreError::Families(uniq));
        }
        let share = Share::of(req);
        let mut addrs = Vec::with_capacity(uniq.len());
        for ip in uniq {
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

    /// Gives `key` addresses for `req`. A service keeps the addresses it has while they
    /// still meet the request (completed with a missing family when its policy wants one);
    /// otherwise it gets new ones. When a new allocation fails, the service keeps its
    /// previous addresses (if it had any) and the error says why the request cannot be met.
    pub fn allocate(&mut self, key: &ServiceKey, req: &Request) -> Result<Vec<IpAddr>, AllocError> {
        let share = Share::of(req);
        let old = self.table.get(key).map(|e| (e.addrs, e.share.clone()));
        let kept: Vec<(IpAddr, usize)> = old.as_ref().map(|(a, _)| self.with_pools(a)).unwrap_or_default();
        let keep = !kept.is_empty() && self.still_valid(key, &kept, req, &share);
        self.release(key);
        let completed = if keep { self.complete(key, kept, req, &share) } else { None };
        let picked = match completed {
            Some(picks) => Ok(picks),
            None if req.ips.is_empty() => self.pick_auto(key, req, &share),
            None => self.pick_requested(key, req, &share),
        };
        match picked {
            Ok(picks) => {
                self.commit(key, &picks, share);
                Ok(picks.into_iter().map(|(ip, _)| ip).collect())
            }
            Err(e) => {
                if let Some((addrs, share)) = old {
                    let back = self.with_pools(&addrs);
                    self.commit(key, &back, share);
                }
                Err(e)
            }
        }
    }

    /// Whether the current addresses still meet the request, possibly short of a family:
    /// the requested addresses exactly, the named pool, pools that admit the service, one
    /// address per family and of an allowed family, and sharing still allowed.
    fn still_valid(&self, key: &ServiceKey, cur: &[(IpAddr, usize)], req: &Request, share: &Share) -> bool {
        let mut ips: Vec<IpAddr> = cur.iter().map(|&(ip, _)| ip).collect();
        ips.sort();
        if !req.ips.is_empty() {
            let mut want = req.ips.clone();
            want.sort();
            if ips != want {
                return false;
            }
        }
        if cur.iter().any(|&(_, p)| req.pool.as_ref().is_some_and(|w| *w != self.pools[p].pool.name)) {
            return false;
        }
        if cur.iter().any(|&(_, p)| !self.admits(p, key, req)) {
            return false;
        }
        let fams: BTreeSet<Family> = ips.iter().map(|&ip| Family::of(ip)).collect();
        let families_ok = fams.len() == ips.len()
            && match req.policy {
                FamilyPolicy::SingleStack => ips.len() == 1 && req.families.first().is_none_or(|f| fams.contains(f)),
                _ => req.families.is_empty() || fams.iter().all(|g| req.families.contains(g)),
            };
        families_ok && ips.iter().all(|&ip| self.sharing_refused(key, ip, share).is_none())
    }

    /// Checks every invariant of the allocator's state; panics with what broke. For tests.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        use std::collections::BTreeMap;
        let mut holders: BTreeMap<IpAddr, Vec<&Entry>> = BTreeMap::new();
        for e in self.table.entries() {
            assert_eq!(
                self.table.get(&e.key).map(|x| x.addrs),
                Some(e.addrs),
                "index and slots disagree for {}",
                e.key
            );
            let fams: BTreeSet<Family> = e.addrs.ips().map(Family::of).collect();
            assert_eq!(fams.len(), e.addrs.len(), "{} holds two addresses of one family", e.key);
            for ip in e.addrs.ips() {
                assert!(self.pool_of(ip).is_some(), "{ip} of {} is not in a pool", e.key);
                holders.entry(ip).or_default().push(e);
            }
        }
        assert_eq!(holders.len(), self.table.addresses(), "holder map has stale addresses");
        for (ip, hs) in &holders {
            let mut listed: Vec<&ServiceKey> = self.table.holders(*ip).map(|e| &e.key).collect();
            let mut want: Vec<&ServiceKey> = hs.iter().map(|e| &e.key).collect();
            listed.sort();
            want.sort();
            assert_eq!(listed, want, "holders of {ip}");
            for (i, a) in hs.iter().enumerate() {
                for b in &hs[i + 1..] {
                    assert_eq!(a.share.refuses(&b.share), None, "{} and {} share {ip} illegally", a.key, b.key);
                }
            }
        }
        let used: u128 = self.pools.iter().map(|p| p.used[0].len() + p.used[1].len()).sum();
        assert_eq!(used, holders.len() as u128, "pool used sets disagree with holders");
        let mut by_key: HashMap<String, BTreeSet<IpAddr>> = HashMap::new();
        for (ip, hs) in &holders {
            for e in hs {
                if let Some(k) = e.share.key() {
                    by_key.entry(k.to_string()).or_default().insert(*ip);
                }
            }
        }
        assert_eq!(by_key, self.by_sharing_key, "sharing-key index is stale");
    }
}

#[cfg(test)]
mod tests;
