//! A compact, immutable set of routes: what one session should announce, or what it has
//! announced.
//!
//! The announcer is given each session's routes as a `BTreeMap<IpNet, RouteAttrs>`; a
//! session keeps them as a [`RouteTable`]: the prefixes in order, each with the index of its
//! attribute set in a table of the distinct sets. A load balancer's routes nearly all share
//! a few attribute sets, so a route costs 24 octets here instead of the hundred or so of a
//! map entry with its own attributes, and the Adj-RIB-Out shares the table it was built from
//! when the session carries every route (100,000 routes: 2.4 MB once, not two 10 MB maps).
//!
//! Invariants: `routes` is sorted by prefix with no prefix twice; every attribute index is
//! below `attrs.len()`; `attrs` holds no set twice and none that no route uses.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use lbcore::announcer::RouteAttrs;

/// Routes in prefix order, each with an index into the distinct attribute sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    attrs: Vec<RouteAttrs>,
    routes: Vec<(IpNet, u32)>,
}

impl RouteTable {
    /// The routes of `map`, attribute sets shared.
    pub fn from_map(map: &BTreeMap<IpNet, RouteAttrs>) -> Self {
        Self::build(map.iter().map(|(p, a)| (*p, a)), map.len())
    }

    /// From routes in strictly increasing prefix order.
    fn build<'a>(sorted: impl Iterator<Item = (IpNet, &'a RouteAttrs)>, len: usize) -> Self {
        let mut index: HashMap<&'a RouteAttrs, u32> = HashMap::new();
        let mut attrs = Vec::new();
        let mut routes = Vec::with_capacity(len);
        for (p, a) in sorted {
            let i = *index.entry(a).or_insert_with(|| {
                attrs.push(a.clone());
                // More distinct sets than routes is impossible; a table of more than 4
                // billion routes does not fit in memory either.
                u32::try_from(attrs.len() - 1).unwrap_or(u32::MAX)
            });
            routes.push((p, i));
        }
        routes.shrink_to_fit();
        RouteTable { attrs, routes }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// The routes, in prefix order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &RouteAttrs)> + '_ {
        self.routes.iter().map(|&(p, i)| (p, &self.attrs[i as usize]))
    }

    /// The routes with their attribute set's index (into [`RouteTable::attrs`]), in prefix
    /// order.
    pub fn indexed(&self) -> &[(IpNet, u32)] {
        &self.routes
    }

    /// The distinct attribute sets.
    pub fn attrs(&self) -> &[RouteAttrs] {
        &self.attrs
    }

    /// The attributes of `prefix`, if it is a route.
    #[cfg(test)]
    pub fn get(&self, prefix: &IpNet) -> Option<&RouteAttrs> {
        let i = self.routes.binary_search_by(|(p, _)| p.cmp(prefix)).ok()?;
        Some(&self.attrs[self.routes[i].1 as usize])
    }

    /// The routes that `keep` keeps (given each prefix and the index of its attribute set).
    pub fn filtered(&self, keep: impl Fn(&IpNet, u32) -> bool) -> Self {
        let kept: Vec<(IpNet, &RouteAttrs)> =
            self.routes.iter().filter(|(p, i)| keep(p, *i)).map(|&(p, i)| (p, &self.attrs[i as usize])).collect();
        Self::build(kept.iter().map(|(p, a)| (*p, *a)), kept.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn routes_sharing_attributes_share_one_set_and_lookups_find_them() {
        let pref = RouteAttrs { local_pref: Some(200), ..Default::default() };
        let map: BTreeMap<IpNet, RouteAttrs> = [
            (p("10.0.0.2/32"), RouteAttrs::default()),
            (p("10.0.0.1/32"), RouteAttrs::default()),
            (p("2001:db8::1/128"), pref.clone()),
            (p("10.0.0.3/32"), pref.clone()),
        ]
        .into();
        let t = RouteTable::from_map(&map);
        assert_eq!(t.len(), 4);
        assert_eq!(t.attrs().len(), 2, "two distinct sets for four routes");
        let back: BTreeMap<IpNet, RouteAttrs> = t.iter().map(|(p, a)| (p, a.clone())).collect();
        assert_eq!(back, map, "nothing lost, in prefix order");
        assert_eq!(t.get(&p("10.0.0.3/32")), Some(&pref));
        assert_eq!(t.get(&p("10.0.0.4/32")), None);
        let v4 = t.filtered(|p, _| matches!(p.addr(), IpAddr::V4(_)));
        assert_eq!(v4.len(), 3);
        assert_eq!(v4.get(&p("2001:db8::1/128")), None);
        let defaults = t.filtered(|_, i| t.attrs()[i as usize].local_pref.is_none());
        assert_eq!(defaults.attrs(), &[RouteAttrs::default()], "a set no route uses is dropped");
    }
}
