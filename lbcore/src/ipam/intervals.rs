//! A set of `u128` values stored as coalesced inclusive intervals.
//!
//! This is what makes allocation independent of pool size: a pool's used addresses are kept
//! as intervals, so "the first free address at or after `x`" is one ordered-map lookup
//! (`O(log n)` in the number of intervals), and memory grows with what is allocated, not
//! with the size of the pool. A `/8` or a `/48` costs nothing until it is used.
//!
//! Invariant: intervals are disjoint, non-empty and never adjacent (`end + 1 < next start`),
//! so the value after an interval's end is always free.

use std::collections::BTreeMap;

/// A set of `u128` values kept as coalesced intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalSet {
    /// start → end (inclusive).
    map: BTreeMap<u128, u128>,
    len: u128,
}

impl IntervalSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of values in the set (saturating).
    pub fn len(&self) -> u128 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of intervals (a measure of memory use).
    pub fn intervals(&self) -> usize {
        self.map.len()
    }

    /// The interval containing `x`, if any.
    fn containing(&self, x: u128) -> Option<(u128, u128)> {
        let (&s, &e) = self.map.range(..=x).next_back()?;
        (x <= e).then_some((s, e))
    }

    /// Whether `x` is in the set.
    pub fn contains(&self, x: u128) -> bool {
        self.containing(x).is_some()
    }

    /// Adds `x`; returns false if it was already present.
    pub fn insert(&mut self, x: u128) -> bool {
        let below = self.map.range(..=x).next_back().map(|(&s, &e)| (s, e));
        if let Some((_, e)) = below {
            if x <= e {
                return false;
            }
        }
        let joins_below = below.filter(|&(_, e)| e.checked_add(1) == Some(x));
        let above = x.checked_add(1).and_then(|n| self.map.get(&n).map(|&e| (n, e)));
        match (joins_below, above) {
            (Some((s, _)), Some((n, e))) => {
                self.map.remove(&n);
                self.map.insert(s, e);
            }
            (Some((s, _)), None) => {
                self.map.insert(s, x);
            }
            (None, Some((n, e))) => {
                self.map.remove(&n);
                self.map.insert(x, e);
            }
            (None, None) => {
                self.map.insert(x, x);
            }
        }
        self.len = self.len.saturating_add(1);
        true
    }

    /// Removes `x`; returns false if it was not present.
    pub fn remove(&mut self, x: u128) -> bool {
        let Some((s, e)) = self.containing(x) else {
            return false;
        };
        self.map.remove(&s);
        if s < x {
            self.map.insert(s, x - 1);
        }
        if x < e {
            self.map.insert(x + 1, e);
        }
        self.len -= 1;
        true
    }

    /// The smallest value `>= x` that is not in the set, if any (`None` only past `u128::MAX`).
    pub fn first_free_from(&self, x: u128) -> Option<u128> {
        match self.containing(x) {
            Some((_, e)) => e.checked_add(1),
            None => Some(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn coalesces_and_splits() {
        let mut s = IntervalSet::new();
        for x in [5, 7, 6, 1, 2] {
            assert!(s.insert(x));
        }
        assert!(!s.insert(6));
        assert_eq!(s.intervals(), 2);
        assert_eq!(s.len(), 5);
        assert_eq!(s.first_free_from(0), Some(0));
        assert_eq!(s.first_free_from(1), Some(3));
        assert_eq!(s.first_free_from(5), Some(8));
        assert!(s.remove(6));
        assert_eq!(s.intervals(), 3);
        assert_eq!(s.first_free_from(5), Some(6));
        assert!(!s.remove(6));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn handles_the_top_of_the_space() {
        let mut s = IntervalSet::new();
        assert!(s.insert(u128::MAX));
        assert!(s.insert(u128::MAX - 1));
        assert_eq!(s.first_free_from(u128::MAX - 1), None);
        assert!(s.remove(u128::MAX));
        assert_eq!(s.first_free_from(u128::MAX - 1), Some(u128::MAX));
    }

    proptest! {
        /// The interval set behaves exactly like a plain set of values, and stays coalesced.
        #[test]
        fn matches_a_btreeset(ops in proptest::collection::vec((any::<bool>(), 0u128..64), 0..200)) {
            let mut s = IntervalSet::new();
            let mut model = BTreeSet::new();
            for (add, x) in ops {
                if add {
                    prop_assert_eq!(s.insert(x), model.insert(x));
                } else {
                    prop_assert_eq!(s.remove(x), model.remove(&x));
                }
                prop_assert_eq!(s.len(), model.len() as u128);
                for q in 0u128..66 {
                    prop_assert_eq!(s.contains(q), model.contains(&q));
                    let want = (q..).find(|v| !model.contains(v));
                    prop_assert_eq!(s.first_free_from(q), want);
                }
                let ivs: Vec<_> = s.map.iter().map(|(&a, &b)| (a, b)).collect();
                for w in ivs.windows(2) {
                    prop_assert!(w[0].1 + 1 < w[1].0, "adjacent or overlapping intervals {:?}", w);
                }
            }
        }
    }
}
