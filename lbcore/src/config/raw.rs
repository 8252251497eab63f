//! Raw `metallb.io` resources and the parts of `v1` objects that `lb` reads, as serde types.
//!
//! These mirror MetalLB's CRDs field for field (JSON names, camelCase) and are the one
//! definition of their shape in the project: the Kubernetes binary wraps them in
//! `CustomResource`s, files are read straight into them.
//!
//! Invariant: deserializing never fails on a *semantically* bad object. Addresses, durations
//! and communities stay strings, every field is optional or defaulted; only a type mismatch
//! the API server's schema would also refuse (a string where a list belongs) fails here.
//! Meaning is checked later, by [`super::validate()`], which can name the field and value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The parts of Kubernetes' `ObjectMeta` that `lb` reads. Other metadata is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.creationTimestamp` (RFC 3339, as the API server writes it).
    pub creation_timestamp: Option<String>,
}

/// Kubernetes' `LabelSelector`, with the same JSON shape (`matchLabels`, `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    /// Labels that must all be present with these values.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements, all of which must hold.
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based requirement of a [`LabelSelector`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values for `In` and `NotIn`.
    pub values: Vec<String>,
}

/// `IPAddressPool.spec` (`metallb.io/v1beta1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct IpAddressPoolSpec {
    /// CIDRs (`10.0.0.0/24`) and ranges (`10.0.0.10-10.0.0.20`) of the pool.
    pub addresses: Vec<String>,
    /// Whether services may get addresses from the pool without asking for it (default true).
    #[serde(deserialize_with = "yaml_opt_bool")]
    pub auto_assign: Option<bool>,
    /// Skip IPv4 addresses ending in `.0` or `.255`.
    #[serde(deserialize_with = "yaml_bool")]
    #[serde(rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Which services may take addresses from the pool, and its priority.
    pub service_allocation: Option<ServiceAllocation>,
}

/// `IPAddressPool.spec.serviceAllocation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceAllocation {
    /// Lower numbers are tried first; 0 (unset) comes after every set priority.
    pub priority: i64,
    /// Namespaces whose services may use the pool.
    pub namespaces: Vec<String>,
    /// Selectors on namespace labels.
    pub namespace_selectors: Vec<LabelSelector>,
    /// Selectors on service labels.
    pub service_selectors: Vec<LabelSelector>,
}

/// `L2Advertisement.spec` (`metallb.io/v1beta1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct L2AdvertisementSpec {
    /// Pools announced by name (none and no selectors: every pool).
    pub ip_address_pools: Vec<String>,
    /// Pools announced by label.
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that may announce (none: every node).
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to answer on (none: every suitable interface).
    pub interfaces: Vec<String>,
    /// Services announced (none: every service of the selected pools).
    pub service_selectors: Vec<LabelSelector>,
    /// Soft preferences for the announcing node, by weight.
    pub preferred_node_selectors: Vec<PreferredNodeSelector>,
}

/// One weighted node preference of an L2Advertisement (like `PreferredSchedulingTerm`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct PreferredNodeSelector {
    /// Weight, 1 to 100.
    pub weight: i64,
    /// The nodes preferred.
    pub preference: LabelSelector,
}

/// `BGPAdvertisement.spec` (`metallb.io/v1beta1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct BgpAdvertisementSpec {
    /// Prefix length of the IPv4 routes announced (default 32).
    pub aggregation_length: Option<i64>,
    /// Prefix length of the IPv6 routes announced (default 128).
    #[serde(rename = "aggregationLengthV6")]
    pub aggregation_length_v6: Option<i64>,
    /// LOCAL_PREF of the routes (iBGP only).
    pub local_pref: Option<i64>,
    /// Communities: `AA:NN`, `large:A:B:C` or the name of a `Community` alias.
    pub communities: Vec<String>,
    /// Pools announced by name (none and no selectors: every pool).
    pub ip_address_pools: Vec<String>,
    /// Pools announced by label.
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that announce (none: every node).
    pub node_selectors: Vec<LabelSelector>,
    /// Peers (BGPPeer names) to announce to (none: every peer).
    pub peers: Vec<String>,
    /// Services announced (none: every service of the selected pools).
    pub service_selectors: Vec<LabelSelector>,
}

/// `BGPPeer.spec` (`metallb.io/v1beta2`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct BgpPeerSpec {
    /// Our AS number.
    #[serde(rename = "myASN")]
    pub my_asn: Option<u32>,
    /// The peer's AS number.
    #[serde(rename = "peerASN")]
    pub peer_asn: Option<u32>,
    /// `internal` or `external`, instead of `peerASN`.
    #[serde(rename = "dynamicASN")]
    pub dynamic_asn: Option<String>,
    /// The peer's address.
    pub peer_address: Option<String>,
    /// The peer's TCP port (default 179).
    pub peer_port: Option<u32>,
    /// Local address to connect from.
    pub source_address: Option<String>,
    /// Interface for BGP unnumbered (instead of `peerAddress`).
    pub interface: Option<String>,
    /// BGP router ID (an IPv4 address).
    #[serde(rename = "routerID")]
    pub router_id: Option<String>,
    /// Proposed hold time (Go duration, default 90s).
    #[serde(deserialize_with = "string_or_number")]
    pub hold_time: Option<String>,
    /// Keepalive interval (Go duration, default hold time / 3).
    #[serde(deserialize_with = "string_or_number")]
    pub keepalive_time: Option<String>,
    /// Connect retry interval (Go duration).
    #[serde(deserialize_with = "string_or_number")]
    pub connect_time: Option<String>,
    /// Nodes that peer (none: every node).
    pub node_selectors: Vec<LabelSelector>,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<String>,
    /// Secret holding the TCP MD5 password.
    pub password_secret: Option<SecretReference>,
    /// BFD profile name.
    pub bfd_profile: Option<String>,
    /// Act as an RFC 4724 restarting speaker.
    #[serde(deserialize_with = "yaml_bool")]
    pub enable_graceful_restart: bool,
    /// Allow a multi-hop eBGP session.
    #[serde(deserialize_with = "yaml_bool")]
    pub ebgp_multi_hop: bool,
    /// VRF to peer from.
    pub vrf: Option<String>,
    /// Disable multiprotocol BGP (one session per address family).
    #[serde(deserialize_with = "yaml_bool")]
    #[serde(rename = "disableMP")]
    pub disable_mp: bool,
    /// Announce both families over this session.
    #[serde(deserialize_with = "yaml_bool")]
    pub dual_stack_address_family: bool,
}

/// A reference to a Secret (`name`, `namespace`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct SecretReference {
    /// Secret name.
    pub name: Option<String>,
    /// Secret namespace.
    pub namespace: Option<String>,
}

/// `Community.spec` (`metallb.io/v1beta1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct CommunitySpec {
    /// Named community values.
    pub communities: Vec<CommunityAlias>,
}

/// One alias of a [`CommunitySpec`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct CommunityAlias {
    /// Alias name, used in `BGPAdvertisement.spec.communities`.
    pub name: String,
    /// `AA:NN` or `large:A:B:C`.
    pub value: String,
}

/// `BFDProfile.spec` (`metallb.io/v1beta1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct BfdProfileSpec {
    /// Minimum receive interval, ms (10..=60000, default 300).
    pub receive_interval: Option<i64>,
    /// Minimum transmit interval, ms (10..=60000, default 300).
    pub transmit_interval: Option<i64>,
    /// Detection multiplier (2..=255, default 3).
    pub detect_multiplier: Option<i64>,
    /// Echo interval, ms (10..=60000, default 50).
    pub echo_interval: Option<i64>,
    /// Enable echo mode.
    #[serde(deserialize_with = "yaml_opt_bool")]
    pub echo_mode: Option<bool>,
    /// Passive mode.
    #[serde(deserialize_with = "yaml_opt_bool")]
    pub passive_mode: Option<bool>,
    /// Minimum incoming TTL (1..=254, default 254).
    pub minimum_ttl: Option<i64>,
}

/// A `v1 Service`, reduced to what `lb` reads. Unknown fields are ignored (a Service has many).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: ServiceSpec,
    /// Status (holds the assigned ingress IPs).
    pub status: ServiceStatus,
}

/// `v1 Service.spec`, reduced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalName` (default `ClusterIP`).
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Pod selector.
    pub selector: BTreeMap<String, String>,
    /// Deprecated single requested address.
    #[serde(rename = "loadBalancerIP")]
    pub load_balancer_ip: Option<String>,
    /// Which load balancer implementation serves the service.
    pub load_balancer_class: Option<String>,
    /// `Cluster` or `Local`.
    pub external_traffic_policy: Option<String>,
    /// `IPv4` / `IPv6`, in order of preference.
    pub ip_families: Vec<String>,
    /// `SingleStack`, `PreferDualStack` or `RequireDualStack`.
    pub ip_family_policy: Option<String>,
}

/// One `v1 ServicePort`, reduced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePort {
    /// Port name.
    pub name: Option<String>,
    /// `TCP` (default), `UDP` or `SCTP`.
    pub protocol: Option<String>,
    /// Port number.
    pub port: i64,
}

/// `v1 Service.status`, reduced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceStatus {
    /// `status.loadBalancer`.
    pub load_balancer: LoadBalancerStatus,
}

/// `v1 LoadBalancerStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadBalancerStatus {
    /// Assigned addresses.
    pub ingress: Vec<LoadBalancerIngress>,
}

/// `v1 LoadBalancerIngress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadBalancerIngress {
    /// The address.
    pub ip: Option<String>,
    /// `VIP` or `Proxy`.
    pub ip_mode: Option<String>,
}

/// A `v1 Namespace`, reduced to its metadata (labels feed `namespaceSelectors`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Namespace {
    /// Metadata.
    pub metadata: ObjectMeta,
}

/// A `v1 Node`, reduced to what standalone mode reads: its name and labels (for
/// `nodeSelectors`) and its addresses (the `InternalIP` is where its membership listens).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Node {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Status, reduced.
    pub status: NodeStatus,
}

/// `v1 NodeStatus`, reduced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeStatus {
    /// `status.addresses`.
    pub addresses: Vec<NodeAddress>,
    /// `status.conditions` (`Ready` is the one lb reads).
    pub conditions: Vec<NodeCondition>,
}

/// `v1 NodeCondition`, reduced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeCondition {
    /// `Ready`, `MemoryPressure`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
}

/// `v1 NodeAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP`, `Hostname`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// The address.
    pub address: String,
}

impl Node {
    /// The first `InternalIP`, when it is an IP address.
    pub fn internal_ip(&self) -> Option<std::net::IpAddr> {
        self.status.addresses.iter().find(|a| a.type_ == "InternalIP").and_then(|a| a.address.trim().parse().ok())
    }
}

/// A `metallb.io` object: its metadata and raw spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Object<S> {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: S,
}

/// Reads a string, or a bare number as its text, so that `holdTime: 90` reaches validation,
/// which can then say that a unit is missing, rather than failing as a type error.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|r| match r {
        Raw::S(s) => s,
        Raw::I(i) => i.to_string(),
        Raw::F(f) => f.to_string(),
    }))
}

/// Reads a boolean, also in the YAML 1.1 spellings Kubernetes' decoder accepts for boolean
/// fields (`yes`/`no`, `on`/`off`, `y`/`n`, any case), since the loader parses YAML 1.2
/// booleans only (see `load`).
pub(crate) fn yaml_opt_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        B(bool),
        S(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::B(b)) => Ok(Some(b)),
        Some(Raw::S(s)) => match s.to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "true" => Ok(Some(true)),
            "n" | "no" | "off" | "false" => Ok(Some(false)),
            _ => Err(serde::de::Error::invalid_value(serde::de::Unexpected::Str(&s), &"a boolean (true or false)")),
        },
    }
}

fn yaml_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(yaml_opt_bool(d)?.unwrap_or(false))
}
