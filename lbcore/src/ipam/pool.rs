//! One pool's address space and use, for the allocator.
//!
//! A pool's ranges become spans in an *ordinal* space: IPv4 addresses of an
//! `avoidBuggyIPs` pool are numbered without the `.0` and `.255` addresses (so skipping
//! them costs nothing), every other address is its own number. Used addresses are kept per
//! family as an [`IntervalSet`] of ordinals.
//!
//! Invariants: spans are non-empty and in the pool's range order; `used` holds only ordinals
//! inside some span; `size` is the number of usable addresses (saturating).

use std::net::IpAddr;

use super::{range, Family, IntervalSet};
use crate::config::Pool;

/// One contiguous span of a pool, in ordinal space.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    family: Family,
    lo: u128,
    hi: u128,
}

#[derive(Debug, Clone)]
pub(super) struct PoolState {
    pub pool: Pool,
    spans: Vec<Span>,
    /// Used ordinals, IPv4 then IPv6.
    pub used: [IntervalSet; 2],
    pub size: u128,
}

pub(super) fn fam_idx(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl PoolState {
    pub fn new(pool: Pool) -> Self {
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
    pub fn ord_of(&self, ip: IpAddr) -> Option<u128> {
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

    /// Whether the pool has ranges of `fam` (even if `avoidBuggyIPs` leaves none usable).
    pub fn has_family(&self, fam: Family) -> bool {
        self.pool.ranges.iter().any(|r| r.family() == fam)
    }

    /// The first free address of `fam`, in range order then address order.
    pub fn first_free(&self, fam: Family) -> Option<IpAddr> {
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

/// The number of addresses of `pool` the allocator can give out (after `avoidBuggyIPs`).
pub fn usable_size(pool: &Pool) -> u128 {
    PoolState::new(pool.clone()).size
}
