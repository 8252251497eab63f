//! Choosing addresses for a request, without changing anything: the allocator's read-only
//! half. [`Allocator::allocate`] calls these and commits what they return.
//!
//! Order of preference, as MetalLB: requested addresses as asked; otherwise the pinned pool
//! or the admitting auto-assign pools in [`Allocator::auto_order`]; within a pool, an
//! address already shared under the service's sharing key, else the first free address.

use std::net::IpAddr;

use super::table::Share;
use super::{range, AllocError, Allocator, Family};
use crate::service::{FamilyPolicy, Request, ServiceKey};

/// At most this many addresses of a sharing key are examined for a place to share. A key
/// normally groups a handful of services; the bound keeps a pathological key (thousands of
/// services that can never share, e.g. all on the same port) from making each allocation
/// linear. Past it, a service gets a free address instead: never an unsafe share.
const MAX_SHARE_SCAN: usize = 256;

/// `(address, pool index)` choices.
pub(super) type Picks = Vec<(IpAddr, usize)>;

fn other(f: Family) -> Family {
    match f {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}

impl Allocator {
    pub(super) fn admits(&self, p: usize, key: &ServiceKey, req: &Request) -> bool {
        self.pools[p]
            .pool
            .allocation
            .as_ref()
            .is_none_or(|a| a.admits(&key.namespace, &req.namespace_labels, &req.labels))
    }

    /// The requested addresses, each checked: in a pool, in the named pool if any, admitted,
    /// and shareable with its current holders.
    pub(super) fn pick_requested(&self, key: &ServiceKey, req: &Request, share: &Share) -> Result<Picks, AllocError> {
        let mut out = Vec::new();
        for &ip in &req.ips {
            let Some(p) = self.pool_of(ip) else {
                // In a pool's ranges but skipped by avoidBuggyIPs, or in no pool at all.
                return Err(match self.range_owner(ip) {
                    Some(idx) => AllocError::Buggy { ip, pool: self.pools[idx].pool.name.clone() },
                    None => AllocError::NotInPool(ip),
                });
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

    /// The pool whose ranges contain `ip`, usable or not.
    pub(super) fn range_owner(&self, ip: IpAddr) -> Option<usize> {
        let fam = Family::of(ip);
        let v = range::to_u128(ip);
        let (&(f, _), &(end, idx)) = self.range_index.range(..=(fam, v)).next_back()?;
        (f == fam && v <= end).then_some(idx)
    }

    /// The first address of `fam` in pool `p` that `key` may take: an address already
    /// shared under its sharing key (so sharing services really share), else a free one.
    pub(super) fn pick_in(&self, p: usize, fam: Family, key: &ServiceKey, share: &Share) -> Option<IpAddr> {
        let shared = share.key().and_then(|k| self.by_sharing_key.get(k)).and_then(|ips| {
            ips.iter().take(MAX_SHARE_SCAN).copied().find(|&ip| {
                Family::of(ip) == fam && self.pool_of(ip) == Some(p) && self.sharing_refused(key, ip, share).is_none()
            })
        });
        shared.or_else(|| self.pools[p].first_free(fam))
    }

    /// The pools a service may get addresses from automatically, in order.
    pub(super) fn candidates(&self, key: &ServiceKey, req: &Request) -> Result<Vec<usize>, AllocError> {
        let c: Vec<usize> = match &req.pool {
            Some(name) => {
                let &p = self.by_name.get(name).ok_or_else(|| AllocError::UnknownPool(name.clone()))?;
                if !self.admits(p, key, req) {
                    return Err(AllocError::PoolNotAllowed(name.clone()));
                }
                vec![p]
            }
            None => self.auto_order.iter().copied().filter(|&p| self.admits(p, key, req)).collect(),
        };
        if c.is_empty() {
            return Err(AllocError::NoPool);
        }
        Ok(c)
    }

    /// One address of `fam` from the first candidate pool that has one.
    pub(super) fn first_of(
        &self,
        candidates: &[usize],
        fam: Family,
        key: &ServiceKey,
        share: &Share,
    ) -> Result<(IpAddr, usize), AllocError> {
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
    }

    /// Addresses for a service without requested addresses.
    pub(super) fn pick_auto(&self, key: &ServiceKey, req: &Request, share: &Share) -> Result<Picks, AllocError> {
        let candidates = self.candidates(key, req)?;
        match req.policy {
            FamilyPolicy::SingleStack => self.pick_single(&candidates, req, key, share),
            FamilyPolicy::PreferDualStack | FamilyPolicy::RequireDualStack => {
                self.pick_dual(&candidates, req, key, share)
            }
        }
    }

    fn pick_single(
        &self,
        candidates: &[usize],
        req: &Request,
        key: &ServiceKey,
        share: &Share,
    ) -> Result<Picks, AllocError> {
        if let Some(&fam) = req.families.first() {
            return Ok(vec![self.first_of(candidates, fam, key, share)?]);
        }
        // Unspecified family (a file without ipFamilies): the first pool that has a free
        // address, IPv4 before IPv6 within a pool.
        for &p in candidates {
            for fam in [Family::V4, Family::V6] {
                if let Some(ip) = self.pick_in(p, fam, key, share) {
                    return Ok(vec![(ip, p)]);
                }
            }
        }
        let has_v4 = candidates.iter().any(|&p| self.pools[p].has_family(Family::V4));
        let fam = if has_v4 { Family::V4 } else { Family::V6 };
        Err(self.first_of(candidates, fam, key, share).err().unwrap_or(AllocError::NoPool))
    }

    /// The families of a dual-stack request, in order of preference.
    pub(super) fn dual_order(req: &Request) -> [Family; 2] {
        match req.families.first() {
            Some(&f) => [f, other(f)],
            None => [Family::V4, Family::V6],
        }
    }

    fn pick_dual(
        &self,
        candidates: &[usize],
        req: &Request,
        key: &ServiceKey,
        share: &Share,
    ) -> Result<Picks, AllocError> {
        let [a, b] = Self::dual_order(req);
        // One pool with both families first.
        for &p in candidates {
            if let (Some(x), Some(y)) = (self.pick_in(p, a, key, share), self.pick_in(p, b, key, share)) {
                return Ok(vec![(x, p), (y, p)]);
            }
        }
        match (req.policy, self.first_of(candidates, a, key, share), self.first_of(candidates, b, key, share)) {
            (_, Ok(x), Ok(y)) => Ok(vec![x, y]),
            (FamilyPolicy::PreferDualStack, Ok(x), Err(_)) | (FamilyPolicy::PreferDualStack, Err(_), Ok(x)) => {
                Ok(vec![x])
            }
            (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        }
    }

    /// Completes a still-valid assignment that lacks a family its policy wants: the other
    /// family from the same pool first, then from the candidate pools. Returns None when a
    /// RequireDualStack service cannot be completed (the caller allocates anew).
    pub(super) fn complete(&self, key: &ServiceKey, mut kept: Picks, req: &Request, share: &Share) -> Option<Picks> {
        let wants_two = !matches!(req.policy, FamilyPolicy::SingleStack);
        // Requested addresses are exactly what the service gets (MetalLB does the same).
        if !wants_two || kept.len() != 1 || !req.ips.is_empty() {
            return Some(kept);
        }
        let (ip, p) = kept[0];
        let fam = other(Family::of(ip));
        let more = self.pick_in(p, fam, key, share).map(|x| (x, p)).or_else(|| {
            let candidates = self.candidates(key, req).ok()?;
            self.first_of(&candidates, fam, key, share).ok()
        });
        match more {
            Some(m) => {
                kept.push(m);
                let first = Self::dual_order(req)[0];
                kept.sort_by_key(|(ip, _)| Family::of(*ip) != first);
                Some(kept)
            }
            None if req.policy == FamilyPolicy::PreferDualStack => Some(kept),
            None => None,
        }
    }
}
