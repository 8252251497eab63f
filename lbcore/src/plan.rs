//! The desired announcements of one node: a pure function of the configuration, the node,
//! and the services with their assigned addresses.
//!
//! L2: an address is announced when some L2Advertisement selects its pool, selects the node
//! (`nodeSelectors`) and selects the service (`serviceSelectors`). Its interfaces are the
//! union of those advertisements' `interfaces`, or every suitable interface when any of them
//! lists none. Shared addresses appear once.
//!
//! BGP: every BGPPeer that selects the node is a session (held even with no routes). A
//! service address goes to a session when some BGPAdvertisement selects its pool, the node,
//! the service and the peer (`peers`, or none listed); its prefix is the address aggregated
//! to `aggregationLength(V6)`; communities of all such advertisements are merged, and the
//! highest LOCAL_PREF wins.
//!
//! L2 owner: of the nodes eligible for an address, one answers for it ([`owner`]): the
//! current owner while it stays eligible (no flap-back when another node returns), else the
//! first by a ranking on a hash of node name and address, which every node computes alike
//! and which spreads addresses over nodes. Which nodes are eligible (alive, selected, with
//! ready local endpoints for `externalTrafficPolicy: Local`) is the caller's input.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::announcer::{BgpSession, L2Target, RouteAttrs, RoutesBuilder};
use crate::config::selector::any_matches;
use crate::config::{BgpAdvertisement, BgpPeer, Config, L2Advertisement, Labels, Pool, PoolSelection, Selector};

/// The node the plan is for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// Node labels (`kubernetes.io/hostname` included).
    pub labels: Labels,
}

impl Node {
    /// A node with `labels`, plus `kubernetes.io/hostname=<name>` as Kubernetes sets it.
    pub fn new(name: impl Into<String>, mut labels: Labels) -> Self {
        let name = name.into();
        labels.entry("kubernetes.io/hostname".into()).or_insert_with(|| name.clone());
        Node { name, labels }
    }
}

/// A service with its assigned addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// The service's labels (for `serviceSelectors`).
    pub labels: Labels,
    /// Each address with the name of its pool (shared: many services have the same pool).
    pub ips: Vec<(IpAddr, Arc<str>)>,
}

/// Whether an advertisement (its pool, node and service selections) covers `svc`'s address
/// from `pool` on `node`.
fn applies(
    pools: &PoolSelection,
    nodes: &[Selector],
    services: &[Selector],
    pool: &Pool,
    node: &Node,
    svc: &Assigned,
) -> bool {
    pools.selects(pool) && any_matches(nodes, &node.labels) && any_matches(services, &svc.labels)
}

/// The addresses this node is *eligible* to answer for in L2 mode, and on which interfaces.
///
/// Eligible, not chosen: in a group of nodes only one answers for each address. Keep the
/// addresses where [`owner`] (over every eligible node) names this node before handing them
/// to an L2 announcer, or every node will answer ARP/NDP for the same address.
///
/// `services` is read once, in one pass: a slice of [`Assigned`], or an iterator that makes
/// each one as it goes (so that a caller with 100k services need not hold them all).
pub fn l2<A: Borrow<Assigned>>(
    config: &Config,
    node: &Node,
    services: impl IntoIterator<Item = A>,
) -> BTreeMap<IpAddr, L2Target> {
    // None: every suitable interface (some advertisement lists none).
    let mut out: BTreeMap<IpAddr, Option<BTreeSet<String>>> = BTreeMap::new();
    for svc in services {
        let svc = svc.borrow();
        for (ip, pool_name) in &svc.ips {
            let Some(pool) = config.pool(pool_name) else { continue };
            let selected =
                |a: &&L2Advertisement| applies(&a.pools, &a.node_selectors, &a.service_selectors, pool, node, svc);
            for adv in config.l2_advertisements.iter().filter(selected) {
                let entry = out.entry(*ip).or_insert_with(|| Some(BTreeSet::new()));
                match (adv.interfaces.is_empty(), entry.as_mut()) {
                    (true, _) => *entry = None,
                    (false, Some(set)) => set.extend(adv.interfaces.iter().cloned()),
                    (false, None) => {}
                }
            }
        }
    }
    out.into_iter().map(|(ip, ifs)| (ip, L2Target { interfaces: ifs.unwrap_or_default() })).collect()
}

/// The BGP sessions this node holds and the routes on each. Unlike L2, every node that
/// qualifies announces (the routers spread traffic over them, ECMP), so no owner is chosen.
///
/// `services` is read once, as for [`l2`]. Each session's routes are collected as a compact
/// table ([`crate::announcer::Routes`]: 24 octets a route), not a map.
///
/// ```
/// use lbcore::config::{validate, Labels, Resources};
/// use lbcore::plan::{self, Assigned};
///
/// let mut res = Resources::default();
/// res.load_str("lb.yaml", "
/// apiVersion: metallb.io/v1beta1
/// kind: IPAddressPool
/// metadata: {name: public}
/// spec: {addresses: [198.51.100.0/29]}
/// ---
/// apiVersion: metallb.io/v1beta2
/// kind: BGPPeer
/// metadata: {name: tor}
/// spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1}
/// ---
/// apiVersion: metallb.io/v1beta1
/// kind: BGPAdvertisement
/// metadata: {name: all}
/// spec: {communities: [\"64512:7\"]}
/// ");
/// let config = validate(&res).unwrap().config;
/// let assigned = [Assigned { labels: Labels::new(), ips: vec![("198.51.100.1".parse().unwrap(), "public".into())] }];
/// let sessions = plan::bgp(&config, &plan::Node::new("a", Labels::new()), &assigned);
/// let route = sessions["tor"].routes.prefixes().next().unwrap();
/// assert_eq!(route.to_string(), "198.51.100.1/32");
/// ```
pub fn bgp<A: Borrow<Assigned>>(
    config: &Config,
    node: &Node,
    services: impl IntoIterator<Item = A>,
) -> BTreeMap<String, BgpSession> {
    let peers: Vec<&BgpPeer> = config.peers.iter().filter(|p| any_matches(&p.node_selectors, &node.labels)).collect();
    // The advertisements that select this node, each with the attributes it gives.
    let advs: Vec<(&BgpAdvertisement, RouteAttrs)> = config
        .bgp_advertisements
        .iter()
        .filter(|a| any_matches(&a.node_selectors, &node.labels))
        .map(|a| {
            let attrs = RouteAttrs { local_pref: a.local_pref, communities: a.communities.clone(), next_hop: None };
            (a, attrs)
        })
        .collect();
    let mut routes: Vec<RoutesBuilder> = peers.iter().map(|_| RoutesBuilder::new()).collect();
    for svc in services {
        let svc = svc.borrow();
        for (ip, pool_name) in &svc.ips {
            let Some(pool) = config.pool(pool_name) else { continue };
            let selected = |(a, _): &&(&BgpAdvertisement, RouteAttrs)| {
                a.pools.selects(pool) && any_matches(&a.service_selectors, &svc.labels)
            };
            for (adv, attrs) in advs.iter().filter(selected) {
                let len = if ip.is_ipv4() { adv.aggregation_length } else { adv.aggregation_length_v6 };
                let Ok(net) = IpNet::new(*ip, len) else { continue };
                for (peer, routes) in peers.iter().zip(&mut routes) {
                    if adv.peers.is_empty() || adv.peers.contains(&peer.name) {
                        routes.push(net.trunc(), attrs);
                    }
                }
            }
        }
    }
    peers
        .into_iter()
        .zip(routes)
        .map(|(peer, routes)| (peer.name.clone(), BgpSession { peer: peer.clone(), routes: routes.build() }))
        .collect()
}

/// FNV-1a, 64 bits, finished with MurmurHash3's fmix64 so that every bit depends on every
/// input byte (plain FNV ranks similar names badly): a hash every node computes the same
/// way, in every version (the standard library's hasher is not stable across releases).
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The node that answers for `ip` in L2 mode among `eligible`: `current` while it is
/// eligible, else the best ranked. None when no node is eligible.
///
/// Every node computes the same answer from the same inputs, so nodes that agree on who is
/// eligible agree on the owner without talking to each other.
///
/// ```
/// let ip = "192.0.2.10".parse().unwrap();
/// let first = lbcore::plan::owner(ip, &["a", "b", "c"], None).unwrap();
/// // The owner keeps the address when another node comes back (no flap-back)...
/// assert_eq!(lbcore::plan::owner(ip, &["a", "b", "c", "d"], Some(first)), Some(first));
/// // ...and another takes it when it leaves.
/// let rest: Vec<&str> = ["a", "b", "c"].into_iter().filter(|n| *n != first).collect();
/// assert_ne!(lbcore::plan::owner(ip, &rest, Some(first)), Some(first));
/// ```
pub fn owner<'a>(ip: IpAddr, eligible: &[&'a str], current: Option<&str>) -> Option<&'a str> {
    if let Some(c) = current.and_then(|c| eligible.iter().find(|e| **e == c)) {
        return Some(c);
    }
    let addr = ip.to_string();
    eligible.iter().copied().min_by_key(|n| (stable_hash(&[n.as_bytes(), b"#", addr.as_bytes()]), *n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{validate, Resources};

    fn config(yaml: &str) -> Config {
        let mut r = Resources::default();
        r.load_str("t.yaml", yaml);
        validate(&r).unwrap().config
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const POOLS: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [10.0.0.0/24]}\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: b, labels: {tier: edge}}\nspec: {addresses: [10.0.1.0/24]}\n---\n";

    #[test]
    fn advertisements_select_pools_nodes_services_and_interfaces() {
        let c = config(&(POOLS.to_string()
            + "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a-eth0}\nspec: {ipAddressPools: [a], interfaces: [eth0]}\n---\n"
            + "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a-eth1}\nspec: {ipAddressPools: [a], interfaces: [eth1], nodeSelectors: [{matchLabels: {rack: r1}}]}\n---\n"
            + "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: edge}\nspec: {ipAddressPoolSelectors: [{matchLabels: {tier: edge}}], serviceSelectors: [{matchLabels: {app: web}}]}\n"));
        let svc = |labels: &[(&str, &str)], ips: &[(&str, &str)]| Assigned {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ips: ips.iter().map(|(i, p)| (ip(i), (*p).into())).collect(),
        };
        let services = [
            svc(&[], &[("10.0.0.1", "a")]),
            svc(&[("app", "web")], &[("10.0.1.1", "b")]),
            svc(&[("app", "db")], &[("10.0.1.2", "b")]),
        ];
        let plain = Node::new("n1", Labels::new());
        let p = l2(&c, &plain, &services);
        assert_eq!(p.len(), 2);
        assert_eq!(p[&ip("10.0.0.1")].interfaces, ["eth0".to_string()].into());
        assert!(p[&ip("10.0.1.1")].interfaces.is_empty(), "no interfaces listed: every suitable one");
        let r1 = Node::new("n2", [("rack".to_string(), "r1".to_string())].into());
        assert_eq!(l2(&c, &r1, &services)[&ip("10.0.0.1")].interfaces, ["eth0".to_string(), "eth1".to_string()].into());
        assert_eq!(r1.labels["kubernetes.io/hostname"], "n2");
    }

    #[test]
    fn bgp_routes_per_peer_with_aggregation_communities_and_local_pref() {
        let c = config(&(POOLS.to_string()
            + "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: tor1}\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 192.0.2.1}\n---\n"
            + "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: tor2}\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 192.0.2.2, nodeSelectors: [{matchLabels: {rack: r9}}]}\n---\n"
            + "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: host}\nspec: {ipAddressPools: [a], communities: [\"64512:1\"], localPref: 50}\n---\n"
            + "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: agg}\nspec: {ipAddressPools: [a], aggregationLength: 24, communities: [\"large:1:2:3\"], peers: [tor1]}\n"));
        let services =
            [Assigned { labels: Labels::new(), ips: vec![(ip("10.0.0.7"), "a".into()), (ip("10.0.1.1"), "b".into())] }];
        let p = bgp(&c, &Node::new("n1", Labels::new()), &services);
        assert_eq!(p.keys().collect::<Vec<_>>(), ["tor1"], "tor2 selects other nodes");
        let routes = &p["tor1"].routes;
        let host: IpNet = "10.0.0.7/32".parse().unwrap();
        let agg: IpNet = "10.0.0.0/24".parse().unwrap();
        assert_eq!(routes.prefixes().collect::<Vec<_>>(), [agg, host], "pool b is not advertised over BGP");
        assert_eq!(routes[&host].local_pref, Some(50));
        assert_eq!(routes[&host].communities.len(), 1);
        assert_eq!(routes[&agg].communities.iter().map(|c| c.to_string()).collect::<Vec<_>>(), ["large:1:2:3"]);
    }

    #[test]
    fn unadvertised_pools_are_not_announced() {
        let c = config(POOLS);
        let services = [Assigned { labels: Labels::new(), ips: vec![(ip("10.0.0.1"), "a".into())] }];
        assert!(l2(&c, &Node::new("n", Labels::new()), &services).is_empty());
    }

    #[test]
    fn the_owner_is_sticky_and_the_ranking_is_shared_and_spreads() {
        let nodes = ["n1", "n2", "n3"];
        let first = owner(ip("10.0.0.1"), &nodes, None).unwrap();
        // Every node computes the same owner, whatever the order it lists nodes in.
        assert_eq!(owner(ip("10.0.0.1"), &["n3", "n1", "n2"], None), Some(first));
        // A current owner that is still eligible keeps the address, even if ranked lower.
        let other = nodes.iter().copied().find(|n| *n != first).unwrap();
        assert_eq!(owner(ip("10.0.0.1"), &nodes, Some(other)), Some(other));
        // A current owner that is not eligible any more loses it to the ranking.
        let rest: Vec<&str> = nodes.iter().copied().filter(|n| *n != other).collect();
        let next = owner(ip("10.0.0.1"), &rest, Some(other)).unwrap();
        assert_ne!(next, other);
        assert_eq!(owner(ip("10.0.0.1"), &[], Some("n1")), None);
        // Addresses spread over the nodes.
        let owners: BTreeSet<&str> =
            (1..=30).map(|i| owner(ip(&format!("10.0.0.{i}")), &nodes, None).unwrap()).collect();
        assert_eq!(owners.len(), 3, "30 addresses all landed on {owners:?}");
    }
}
