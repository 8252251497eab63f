//! The typed, validated configuration.
//!
//! Every value here has been checked by [`super::validate`]; nothing downstream re-parses
//! a string or re-checks a range.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{Community, Labels, Selector};
use crate::ipam::AddrRange;

/// A validated configuration: what MetalLB would run with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Address pools, sorted by name.
    pub pools: Vec<Pool>,
    /// L2 advertisements, sorted by name.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// BGP advertisements, sorted by name.
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// BGP peers, sorted by name.
    pub peers: Vec<BgpPeer>,
    /// BFD profiles, sorted by name.
    pub bfd_profiles: Vec<BfdProfile>,
    /// Community aliases (from `Community` objects), by alias name.
    pub communities: BTreeMap<String, Community>,
}

impl Config {
    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The pool holding `ip`, if any (pools do not overlap: validation refuses it).
    pub fn pool_of(&self, ip: std::net::IpAddr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.ranges.iter().any(|r| r.contains(ip)))
    }

    /// Whether any L2 or BGP advertisement selects the pool.
    pub fn is_advertised(&self, pool: &Pool) -> bool {
        self.l2_advertisements.iter().any(|a| a.pools.selects(pool))
            || self.bgp_advertisements.iter().any(|a| a.pools.selects(pool))
    }
}

/// An address pool (`IPAddressPool`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Pool name.
    pub name: String,
    /// The pool object's labels (for `ipAddressPoolSelectors`).
    pub labels: Labels,
    /// Disjoint address ranges, in the order written.
    pub ranges: Vec<AddrRange>,
    /// Whether services get addresses from it without asking for it.
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in `.0` and `.255`.
    pub avoid_buggy_ips: bool,
    /// Restrictions on which services may use it, and its priority.
    pub allocation: Option<PoolAllocation>,
}

impl Pool {
    /// A pool of `ranges` with MetalLB's defaults (autoAssign on, every service admitted):
    /// for embedding without YAML. Pass the pools of a validated [`Config`] to the allocator
    /// when you can: validation also checks that pools do not overlap.
    ///
    /// ```
    /// use lbcore::config::Pool;
    /// use lbcore::ipam::{AddrRange, Allocator};
    ///
    /// let lan = Pool::new("lan", vec![AddrRange::parse("192.0.2.0/24").unwrap()]).with_avoid_buggy_ips();
    /// let vips = Pool::new("vips", vec![AddrRange::parse("198.51.100.7/32").unwrap()]).with_auto_assign(false);
    /// let alloc = Allocator::new(&[lan, vips]);
    /// assert_eq!(alloc.stats().len(), 2);
    /// ```
    pub fn new(name: impl Into<String>, ranges: Vec<AddrRange>) -> Self {
        Pool {
            name: name.into(),
            labels: Labels::new(),
            ranges,
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        }
    }

    /// Whether services get addresses from it without asking for it by name or address.
    pub fn with_auto_assign(mut self, on: bool) -> Self {
        self.auto_assign = on;
        self
    }

    /// Skip IPv4 addresses ending in `.0` and `.255` (for clients that mishandle them).
    pub fn with_avoid_buggy_ips(mut self) -> Self {
        self.avoid_buggy_ips = true;
        self
    }

    /// Which services may use it, and its priority (`serviceAllocation`).
    pub fn with_allocation(mut self, allocation: PoolAllocation) -> Self {
        self.allocation = Some(allocation);
        self
    }

    /// Labels, for advertisements' `ipAddressPoolSelectors`.
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }
}

/// `serviceAllocation` of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolAllocation {
    /// Lower is tried first; 0 means unset and comes after every set priority.
    pub priority: i64,
    /// Namespaces allowed by name.
    pub namespaces: BTreeSet<String>,
    /// Namespaces allowed by label.
    pub namespace_selectors: Vec<Selector>,
    /// Services allowed by label.
    pub service_selectors: Vec<Selector>,
}

impl PoolAllocation {
    /// Whether a service in namespace `ns` (with `ns_labels`) and with `labels` may use the pool.
    ///
    /// As MetalLB: the namespace must be listed or match a selector (when either is given),
    /// and the service must match a selector (when any is given).
    pub fn admits(&self, ns: &str, ns_labels: &Labels, labels: &Labels) -> bool {
        let ns_ok = (self.namespaces.is_empty() && self.namespace_selectors.is_empty())
            || self.namespaces.contains(ns)
            || self.namespace_selectors.iter().any(|s| s.matches(ns_labels));
        ns_ok && super::selector::any_matches(&self.service_selectors, labels)
    }
}

/// Which pools an advertisement covers: by name and by label; neither means every pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSelection {
    /// Pools selected by name.
    pub names: BTreeSet<String>,
    /// Pools selected by label.
    pub selectors: Vec<Selector>,
}

impl PoolSelection {
    /// Whether this selection covers `pool`.
    pub fn selects(&self, pool: &Pool) -> bool {
        (self.names.is_empty() && self.selectors.is_empty())
            || self.names.contains(&pool.name)
            || self.selectors.iter().any(|s| s.matches(&pool.labels))
    }
}

/// An `L2Advertisement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Advertisement {
    /// Name.
    pub name: String,
    /// Pools it announces.
    pub pools: PoolSelection,
    /// Nodes that may announce (empty: all).
    pub node_selectors: Vec<Selector>,
    /// Interfaces to answer on (empty: every suitable one).
    pub interfaces: Vec<String>,
    /// Services announced (empty: all of the selected pools).
    pub service_selectors: Vec<Selector>,
    /// Preferred announcing nodes: (weight 1..=100, selector).
    pub preferred_node_selectors: Vec<(u8, Selector)>,
}

impl L2Advertisement {
    /// An advertisement of every pool, from every node, on every suitable interface (an
    /// `L2Advertisement` with an empty spec).
    ///
    /// ```
    /// let adv = lbcore::config::L2Advertisement::new("lan").with_pools(["lan"]).with_interfaces(["eth0"]);
    /// assert_eq!(adv.interfaces, ["eth0"]);
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        L2Advertisement {
            name: name.into(),
            pools: PoolSelection::default(),
            node_selectors: Vec::new(),
            interfaces: Vec::new(),
            service_selectors: Vec::new(),
            preferred_node_selectors: Vec::new(),
        }
    }

    /// Announce only these pools (by name).
    pub fn with_pools<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.pools.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Answer only on these interfaces.
    pub fn with_interfaces<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.interfaces = names.into_iter().map(Into::into).collect();
        self
    }

    /// Announce only from nodes matching one of these selectors.
    pub fn with_node_selectors(mut self, selectors: Vec<Selector>) -> Self {
        self.node_selectors = selectors;
        self
    }
}

impl BgpAdvertisement {
    /// An advertisement of every pool, from every node, to every peer, as /32 and /128 host
    /// routes with no communities (a `BGPAdvertisement` with an empty spec).
    ///
    /// ```
    /// use lbcore::config::{BgpAdvertisement, Community};
    ///
    /// let adv = BgpAdvertisement::new("agg")
    ///     .with_pools(["public"])
    ///     .with_aggregation_length(24)
    ///     .with_communities([Community::parse("64512:7").unwrap()])
    ///     .with_local_pref(120);
    /// assert_eq!(adv.aggregation_length_v6, 128);
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        BgpAdvertisement {
            name: name.into(),
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: BTreeSet::new(),
            pools: PoolSelection::default(),
            node_selectors: Vec::new(),
            peers: BTreeSet::new(),
            service_selectors: Vec::new(),
        }
    }

    /// Announce only these pools (by name).
    pub fn with_pools<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.pools.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Announce to these peers only (by name).
    pub fn with_peers<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.peers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Aggregate IPv4 routes to this prefix length (32: host routes).
    pub fn with_aggregation_length(mut self, len: u8) -> Self {
        self.aggregation_length = len;
        self
    }

    /// Aggregate IPv6 routes to this prefix length (128: host routes).
    pub fn with_aggregation_length_v6(mut self, len: u8) -> Self {
        self.aggregation_length_v6 = len;
        self
    }

    /// Attach these communities.
    pub fn with_communities(mut self, communities: impl IntoIterator<Item = Community>) -> Self {
        self.communities = communities.into_iter().collect();
        self
    }

    /// LOCAL_PREF (sent on iBGP sessions only).
    pub fn with_local_pref(mut self, local_pref: u32) -> Self {
        self.local_pref = Some(local_pref);
        self
    }

    /// Announce only from nodes matching one of these selectors.
    pub fn with_node_selectors(mut self, selectors: Vec<Selector>) -> Self {
        self.node_selectors = selectors;
        self
    }
}

/// A `BGPAdvertisement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// Name.
    pub name: String,
    /// Prefix length of IPv4 routes.
    pub aggregation_length: u8,
    /// Prefix length of IPv6 routes.
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF, when set.
    pub local_pref: Option<u32>,
    /// Communities, with aliases resolved.
    pub communities: BTreeSet<Community>,
    /// Pools it announces.
    pub pools: PoolSelection,
    /// Nodes that announce (empty: all).
    pub node_selectors: Vec<Selector>,
    /// Peers to announce to by name (empty: all).
    pub peers: BTreeSet<String>,
    /// Services announced (empty: all of the selected pools).
    pub service_selectors: Vec<Selector>,
}

/// The peer's AS: fixed, or "whatever it says" within iBGP or eBGP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAsn {
    /// A fixed AS number.
    Fixed(u32),
    /// Any AS equal to ours (iBGP).
    Internal,
    /// Any AS other than ours (eBGP).
    External,
}

/// How to reach a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddress {
    /// A fixed address.
    Ip(IpAddr),
    /// BGP unnumbered over an interface.
    Interface(String),
}

/// Where the TCP MD5 password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// Written in the BGPPeer.
    Inline(String),
    /// In a Secret (key `password`). Kubernetes only: resolve it to [`Password::Inline`]
    /// before handing the peer to `announcer-bgp`, which refuses it otherwise.
    Secret {
        /// Secret name.
        name: String,
        /// Secret namespace (None: the configuration namespace).
        namespace: Option<String>,
    },
}

/// A `BGPPeer` (`v1beta2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeer {
    /// Name.
    pub name: String,
    /// Our AS.
    pub my_asn: u32,
    /// The peer's AS.
    pub peer_asn: PeerAsn,
    /// Where the peer is.
    pub address: PeerAddress,
    /// TCP port.
    pub port: u16,
    /// Local address to connect from.
    pub source_address: Option<IpAddr>,
    /// The BGP identifier to send; None: derived from the session's local address.
    pub router_id: Option<Ipv4Addr>,
    /// Hold time to propose (None: the speaker's default, 90 s).
    pub hold_time: Option<Duration>,
    /// Keepalive interval (None: a third of the hold time).
    pub keepalive_time: Option<Duration>,
    /// The longest wait between connection attempts (they back off up to it, with
    /// jitter); None: 30 s in `announcer-bgp`.
    pub connect_time: Option<Duration>,
    /// Nodes that peer (empty: all).
    pub node_selectors: Vec<Selector>,
    /// TCP MD5 password source.
    pub password: Option<Password>,
    /// BFD profile name. `announcer-bgp` does not run BFD yet: it warns and peers without.
    pub bfd_profile: Option<String>,
    /// RFC 4724 graceful restart.
    pub graceful_restart: bool,
    /// Multi-hop eBGP.
    pub ebgp_multi_hop: bool,
    /// VRF to peer from. `announcer-bgp` refuses such a peer (peering from the default VRF
    /// would put the routes in the wrong table).
    pub vrf: Option<String>,
    /// No multiprotocol BGP. `announcer-bgp` warns and keeps each family on its own session.
    pub disable_mp: bool,
    /// Both families over one session. `announcer-bgp` warns and keeps each family on its
    /// own session.
    pub dual_stack_address_family: bool,
}

impl BgpPeer {
    /// A peer at `address` with MetalLB's defaults for everything else (port 179, eBGP
    /// single hop, the speaker's timers, no password): for embedding without YAML.
    ///
    /// ```
    /// use lbcore::config::{BgpPeer, PeerAsn};
    /// use std::time::Duration;
    ///
    /// let tor = BgpPeer::new("tor", 64512, PeerAsn::Fixed(64500), "192.0.2.1".parse().unwrap())
    ///     .with_hold_time(Duration::from_secs(9))
    ///     .with_password("s3cret");
    /// assert_eq!(tor.port, 179);
    /// ```
    pub fn new(name: impl Into<String>, my_asn: u32, peer_asn: PeerAsn, address: IpAddr) -> Self {
        BgpPeer {
            name: name.into(),
            my_asn,
            peer_asn,
            address: PeerAddress::Ip(address),
            port: 179,
            source_address: None,
            router_id: None,
            hold_time: None,
            keepalive_time: None,
            connect_time: None,
            node_selectors: Vec::new(),
            password: None,
            bfd_profile: None,
            graceful_restart: false,
            ebgp_multi_hop: false,
            vrf: None,
            disable_mp: false,
            dual_stack_address_family: false,
        }
    }

    /// The TCP port (179 by default).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The hold time to propose (the keepalive interval follows at a third of it).
    pub fn with_hold_time(mut self, hold: Duration) -> Self {
        self.hold_time = Some(hold);
        self
    }

    /// A TCP MD5 password (RFC 2385; at most 80 octets, the kernel's limit).
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Password::Inline(password.into()));
        self
    }

    /// Connect from this local address.
    pub fn with_source_address(mut self, source: IpAddr) -> Self {
        self.source_address = Some(source);
        self
    }

    /// Multi-hop eBGP (TTL 255 instead of 1).
    pub fn with_ebgp_multi_hop(mut self) -> Self {
        self.ebgp_multi_hop = true;
        self
    }

    /// Graceful restart as a restarting speaker (RFC 4724).
    pub fn with_graceful_restart(mut self) -> Self {
        self.graceful_restart = true;
        self
    }

    /// The BGP identifier to send (by default derived from the session's local address).
    pub fn with_router_id(mut self, id: Ipv4Addr) -> Self {
        self.router_id = Some(id);
        self
    }

    /// The keepalive interval (by default a third of the negotiated hold time).
    pub fn with_keepalive_time(mut self, keepalive: Duration) -> Self {
        self.keepalive_time = Some(keepalive);
        self
    }

    /// The longest wait between connection attempts (they back off up to it, with jitter).
    pub fn with_connect_time(mut self, connect: Duration) -> Self {
        self.connect_time = Some(connect);
        self
    }

    /// Peer only from nodes matching one of these selectors.
    pub fn with_node_selectors(mut self, selectors: Vec<Selector>) -> Self {
        self.node_selectors = selectors;
        self
    }
}

/// A `BFDProfile`, with MetalLB's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    /// Name.
    pub name: String,
    /// Minimum receive interval, ms.
    pub receive_interval: u32,
    /// Minimum transmit interval, ms.
    pub transmit_interval: u32,
    /// Detection multiplier.
    pub detect_multiplier: u32,
    /// Echo interval, ms.
    pub echo_interval: u32,
    /// Echo mode.
    pub echo_mode: bool,
    /// Passive mode.
    pub passive_mode: bool,
    /// Minimum incoming TTL.
    pub minimum_ttl: u32,
}
