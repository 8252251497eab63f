//! [`Routes`]: the routes of one BGP session, stored compactly.
//!
//! A load balancer's routes are many host routes that nearly all share a few attribute sets,
//! so a route is kept as its prefix and the index of its attribute set in a table of the
//! distinct sets: 24 octets a route, where a map entry with its own attributes costs about a
//! hundred (100,000 routes: 2.4 MB instead of about 10). The table is immutable once built,
//! and clones share it, so a plan, the announcer and each session's Adj-RIB-Out can all hold
//! the same routes at the price of one.
//!
//! Invariants: the routes are sorted by prefix with no prefix twice; every attribute index is
//! below the number of sets; no set appears twice and every set is used by some route; the
//! length masks have a bit for exactly the prefix lengths present.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::announcer::RouteAttrs;

/// Routes in prefix order, each with its attributes. Build one with [`RoutesBuilder`], or
/// collect `(prefix, attributes)` pairs; a prefix given twice gets the two sets merged
/// ([`RouteAttrs::merge`]).
///
/// ```
/// use lbcore::announcer::{RouteAttrs, Routes};
///
/// let pref = RouteAttrs { local_pref: Some(200), ..Default::default() };
/// let routes: Routes = [
///     ("192.0.2.2/32".parse().unwrap(), RouteAttrs::default()),
///     ("192.0.2.0/24".parse().unwrap(), pref.clone()),
///     ("192.0.2.1/32".parse().unwrap(), RouteAttrs::default()),
/// ]
/// .into_iter()
/// .collect();
/// assert_eq!(routes.len(), 3);
/// assert_eq!(routes.attrs().len(), 2, "three routes, two distinct attribute sets");
/// assert_eq!(routes.get(&"192.0.2.0/24".parse().unwrap()), Some(&pref));
/// assert!(routes.covers("192.0.2.77".parse().unwrap()), "inside 192.0.2.0/24");
/// assert!(!routes.covers("198.51.100.1".parse().unwrap()));
/// ```
#[derive(Clone, Default)]
pub struct Routes(Arc<Table>);

#[derive(Default)]
struct Table {
    attrs: Vec<RouteAttrs>,
    routes: Vec<(IpNet, u32)>,
    /// Bit `n` for an IPv4 prefix of length `n`, bit `64 + n` for an IPv6 one.
    lens: [u64; 4],
}

impl Routes {
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.0.routes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.routes.is_empty()
    }

    /// The routes, in prefix order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (IpNet, &RouteAttrs)> + '_ {
        self.0.routes.iter().map(|&(p, i)| (p, &self.0.attrs[i as usize]))
    }

    /// The prefixes, in order.
    pub fn prefixes(&self) -> impl ExactSizeIterator<Item = IpNet> + '_ {
        self.0.routes.iter().map(|&(p, _)| p)
    }

    /// The attributes of `prefix`, if it is a route.
    pub fn get(&self, prefix: &IpNet) -> Option<&RouteAttrs> {
        let i = self.0.routes.binary_search_by(|(p, _)| p.cmp(prefix)).ok()?;
        Some(&self.0.attrs[self.0.routes[i].1 as usize])
    }

    /// Whether `prefix` is a route.
    pub fn contains(&self, prefix: &IpNet) -> bool {
        self.get(prefix).is_some()
    }

    /// Whether some route's prefix contains `ip`.
    pub fn covers(&self, ip: IpAddr) -> bool {
        let (max, base) = if ip.is_ipv4() { (32, 0) } else { (128, 64) };
        (0..=max)
            .rev()
            .filter(|&len| has_bit(&self.0.lens, base + len))
            .any(|len| IpNet::new(ip, len as u8).is_ok_and(|n| self.contains(&n.trunc())))
    }

    /// The routes with the index of their attribute set (into [`Routes::attrs`]), in prefix
    /// order.
    pub fn indexed(&self) -> &[(IpNet, u32)] {
        &self.0.routes
    }

    /// The distinct attribute sets.
    pub fn attrs(&self) -> &[RouteAttrs] {
        &self.0.attrs
    }

    /// The routes that `keep` keeps (given each prefix and the index of its attribute set).
    pub fn filtered(&self, keep: impl Fn(&IpNet, u32) -> bool) -> Self {
        let mut b = RoutesBuilder::new();
        for &(p, i) in self.0.routes.iter().filter(|(p, i)| keep(p, *i)) {
            b.push(p, &self.0.attrs[i as usize]);
        }
        b.build()
    }

    /// Whether `self` and `other` share one table (a clone of one another): then they are
    /// equal without comparing routes.
    pub fn ptr_eq(&self, other: &Routes) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

fn has_bit(mask: &[u64; 4], bit: usize) -> bool {
    mask[bit / 64] & (1 << (bit % 64)) != 0
}

impl PartialEq for Routes {
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other) || (self.len() == other.len() && self.iter().eq(other.iter()))
    }
}

impl Eq for Routes {}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl std::ops::Index<&IpNet> for Routes {
    type Output = RouteAttrs;

    /// The attributes of a route; panics when `prefix` is not one (as a map's index does).
    fn index(&self, prefix: &IpNet) -> &RouteAttrs {
        self.get(prefix).unwrap_or_else(|| panic!("{prefix} is not a route"))
    }
}

impl<'a> IntoIterator for &'a Routes {
    type Item = (IpNet, &'a RouteAttrs);
    type IntoIter = Box<dyn ExactSizeIterator<Item = (IpNet, &'a RouteAttrs)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl FromIterator<(IpNet, RouteAttrs)> for Routes {
    fn from_iter<I: IntoIterator<Item = (IpNet, RouteAttrs)>>(iter: I) -> Self {
        let mut b = RoutesBuilder::new();
        for (p, a) in iter {
            b.push(p, &a);
        }
        b.build()
    }
}

impl From<BTreeMap<IpNet, RouteAttrs>> for Routes {
    fn from(map: BTreeMap<IpNet, RouteAttrs>) -> Self {
        map.into_iter().collect()
    }
}

/// Builds [`Routes`] from routes in any order. Attribute sets are shared as they come in, so
/// the builder holds each distinct set (twice: as a set and as its lookup key) and 24 octets a
/// route. A route equal to the one pushed just before is not held again (services in one
/// aggregate come one after the other, each giving the same route).
#[derive(Debug, Default)]
pub struct RoutesBuilder {
    index: HashMap<RouteAttrs, u32>,
    attrs: Vec<RouteAttrs>,
    routes: Vec<(IpNet, u32)>,
}

impl RoutesBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route (its prefix with the host bits cleared: `192.0.2.7/24` is
    /// `192.0.2.0/24`). A prefix added twice ends up once, with the two sets merged.
    pub fn push(&mut self, prefix: IpNet, attrs: &RouteAttrs) {
        let route = (prefix.trunc(), self.intern(attrs));
        if self.routes.last() != Some(&route) {
            self.routes.push(route);
        }
    }

    fn intern(&mut self, attrs: &RouteAttrs) -> u32 {
        if let Some(&i) = self.index.get(attrs) {
            return i;
        }
        // More distinct sets than routes is impossible, and 4 billion routes do not fit in
        // memory: the index always fits.
        let i = u32::try_from(self.attrs.len()).unwrap_or(u32::MAX);
        self.attrs.push(attrs.clone());
        self.index.insert(attrs.clone(), i);
        i
    }

    /// The routes, in prefix order, each prefix once.
    pub fn build(mut self) -> Routes {
        let mut routes = std::mem::take(&mut self.routes);
        routes.sort_unstable();
        // Merge each run of one prefix in place. The result does not depend on the order the
        // routes came in (which numbers the sets): merging is commutative and associative.
        let (mut w, mut k) = (0, 0);
        while k < routes.len() {
            let (p, first) = routes[k];
            let end = k + routes[k..].iter().take_while(|(q, _)| *q == p).count();
            let mut i = first;
            if routes[k + 1..end].iter().any(|&(_, j)| j != first) {
                let mut merged = self.attrs[first as usize].clone();
                for &(_, j) in &routes[k + 1..end] {
                    merged.merge(&self.attrs[j as usize]);
                }
                i = self.intern(&merged);
            }
            routes[w] = (p, i);
            w += 1;
            k = end;
        }
        routes.truncate(w);
        drop(self.index);
        // Keep only the sets some route uses, renumbered in order of first use.
        let mut renumber = vec![u32::MAX; self.attrs.len()];
        let mut attrs = Vec::new();
        let mut lens = [0u64; 4];
        for (p, i) in &mut routes {
            let new = &mut renumber[*i as usize];
            if *new == u32::MAX {
                *new = u32::try_from(attrs.len()).unwrap_or(u32::MAX);
                attrs.push(std::mem::take(&mut self.attrs[*i as usize]));
            }
            *i = *new;
            let bit = usize::from(p.prefix_len()) + if p.addr().is_ipv4() { 0 } else { 64 };
            lens[bit / 64] |= 1 << (bit % 64);
        }
        routes.shrink_to_fit();
        Routes(Arc::new(Table { attrs, routes, lens }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Community;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn community(s: &str) -> RouteAttrs {
        RouteAttrs { communities: [s.parse::<Community>().unwrap()].into(), ..Default::default() }
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
        let t = Routes::from(map.clone());
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

    #[test]
    fn a_prefix_pushed_twice_is_one_route_with_the_sets_merged_in_any_order() {
        let a = community("64512:1");
        let mut b = community("64512:2");
        b.local_pref = Some(300);
        let mut want = a.clone();
        want.merge(&b);
        assert_eq!(want.communities.len(), 2);
        assert_eq!(want.local_pref, Some(300));
        for order in [[&a, &b], [&b, &a]] {
            let mut builder = RoutesBuilder::new();
            builder.push(p("10.0.0.9/32"), &RouteAttrs::default());
            for attrs in order {
                builder.push(p("10.0.0.1/32"), attrs);
            }
            let routes = builder.build();
            assert_eq!(routes.prefixes().collect::<Vec<_>>(), [p("10.0.0.1/32"), p("10.0.0.9/32")]);
            assert_eq!(routes.get(&p("10.0.0.1/32")), Some(&want));
            assert_eq!(routes.attrs().len(), 2, "the sets only the merge used are gone: {routes:?}");
        }
    }

    #[test]
    fn prefixes_are_stored_without_host_bits_and_repeats_are_held_once() {
        let mut b = RoutesBuilder::new();
        for _ in 0..1000 {
            b.push(p("192.0.2.7/24"), &RouteAttrs::default());
        }
        assert_eq!(b.routes.len(), 1, "a route repeated back to back is held once");
        let routes = b.build();
        assert_eq!(routes.prefixes().collect::<Vec<_>>(), [p("192.0.2.0/24")]);
        assert!(routes.covers("192.0.2.200".parse().unwrap()));
    }

    #[test]
    fn covers_finds_the_prefixes_holding_an_address() {
        let routes: Routes = [(p("10.1.0.0/16"), RouteAttrs::default()), (p("2001:db8::5/128"), RouteAttrs::default())]
            .into_iter()
            .collect();
        assert!(routes.covers("10.1.200.3".parse().unwrap()));
        assert!(!routes.covers("10.2.0.1".parse().unwrap()));
        assert!(routes.covers("2001:db8::5".parse().unwrap()));
        assert!(!routes.covers("2001:db8::6".parse().unwrap()));
        assert!(!Routes::new().covers("10.1.0.1".parse().unwrap()));
    }

    #[test]
    fn equality_is_by_content_not_by_numbering() {
        let (a, b) = (community("64512:1"), community("64512:2"));
        let one: Routes = [(p("10.0.0.1/32"), a.clone()), (p("10.0.0.2/32"), b.clone())].into_iter().collect();
        let two: Routes = [(p("10.0.0.2/32"), b.clone()), (p("10.0.0.1/32"), a.clone())].into_iter().collect();
        assert_eq!(one, two);
        assert_ne!(one, [(p("10.0.0.1/32"), a), (p("10.0.0.2/32"), RouteAttrs::default())].into_iter().collect());
        assert!(one.clone().ptr_eq(&one));
    }
}
