//! Validation: raw resources in, a typed [`Config`] and warnings out, or every error found.
//!
//! Errors are what MetalLB refuses (and a few things it silently accepts but that cannot
//! work, such as a CIDR with host bits set). Warnings are references to objects that are not
//! in the loaded files (a file may hold only part of a configuration, and MetalLB skips
//! unknown names), unknown fields, and lints for MetalLB's classic traps. Each diagnostic
//! names the source, kind, object, field and value.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use super::load::{Loaded, Resources, Source};
use super::raw::{self, Object};
use super::{
    duration, BfdProfile, BgpAdvertisement, BgpPeer, Community, Config, Diagnostic, L2Advertisement, Pool,
    PoolAllocation, PoolSelection, Selector,
};
use crate::ipam::{AddrRange, Family, RangeError};

mod peer;

/// A configuration that passed validation, and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The configuration.
    pub config: Config,
    /// Warnings (load-time ones first).
    pub warnings: Vec<Diagnostic>,
}

/// Validates everything loaded in `res`. Returns all errors at once when there are any.
pub fn validate(res: &Resources) -> Result<Validated, Vec<Diagnostic>> {
    let mut cx = Cx { errors: res.errors.clone(), warnings: res.warnings.clone(), pool_sources: BTreeMap::new() };
    let pools = cx.pools(&res.pools);
    let communities = cx.communities(&res.communities);
    let bfd_profiles = cx.bfd_profiles(&res.bfd_profiles);
    let peers = cx.peers(&res.peers, &bfd_profiles);
    let l2_advertisements = cx.l2_advertisements(&res.l2_advertisements, &pools);
    let bgp_advertisements = cx.bgp_advertisements(&res.bgp_advertisements, &pools, &communities, &peers);
    let config = Config { pools, l2_advertisements, bgp_advertisements, peers, bfd_profiles, communities };
    cx.lint(&config);
    if cx.errors.is_empty() {
        Ok(Validated { config, warnings: cx.warnings })
    } else {
        Err(cx.errors)
    }
}

struct Cx {
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Where each pool was defined, for lints that run on the typed config.
    pool_sources: BTreeMap<String, Source>,
}

/// The object a diagnostic is about.
#[derive(Clone, Copy)]
struct At<'a> {
    source: &'a Source,
    kind: &'static str,
    name: &'a str,
}

impl At<'_> {
    fn diag(&self, field: &str, value: &str, message: String) -> Diagnostic {
        Diagnostic {
            source: Some(self.source.clone()),
            kind: self.kind.to_string(),
            name: self.name.to_string(),
            field: field.to_string(),
            value: value.to_string(),
            message,
        }
    }
}

fn at<'a, S>(o: &'a Loaded<Object<S>>, kind: &'static str) -> At<'a> {
    At { source: &o.source, kind, name: o.object.metadata.name.as_deref().unwrap_or_default() }
}

impl Cx {
    fn err(&mut self, at: At<'_>, field: &str, value: impl ToString, message: impl Into<String>) {
        self.errors.push(at.diag(field, &value.to_string(), message.into()));
    }

    fn warn(&mut self, at: At<'_>, field: &str, value: impl ToString, message: impl Into<String>) {
        self.warnings.push(at.diag(field, &value.to_string(), message.into()));
    }

    /// Reports a name defined twice for one kind; returns false for the duplicate.
    fn unique(&mut self, seen: &mut BTreeMap<String, Source>, at: At<'_>) -> bool {
        if let Some(first) = seen.get(at.name) {
            self.err(at, "metadata.name", at.name, format!("{} {:?} is already defined in {first}", at.kind, at.name));
            return false;
        }
        seen.insert(at.name.to_string(), at.source.clone());
        true
    }

    /// Reports entries listed twice in a list of names (MetalLB refuses them).
    fn no_duplicates(&mut self, at: At<'_>, field: &str, list: &[String]) {
        let mut seen = BTreeSet::new();
        for (i, v) in list.iter().enumerate() {
            if !seen.insert(v) {
                self.err(at, &format!("{field}[{i}]"), v, "listed twice");
            }
        }
    }

    /// The objects of one kind whose name is not taken by an earlier one (duplicates are
    /// reported), with where each was read.
    fn unique_objects<'a, S>(
        &mut self,
        raw: &'a [Loaded<Object<S>>],
        kind: &'static str,
    ) -> Vec<(At<'a>, &'a Object<S>)> {
        let mut seen = BTreeMap::new();
        raw.iter()
            .filter_map(|o| {
                let at = at(o, kind);
                self.unique(&mut seen, at).then_some((at, &o.object))
            })
            .collect()
    }

    fn selectors(&mut self, at: At<'_>, field: &str, raw: &[raw::LabelSelector]) -> Vec<Selector> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, s) in raw.iter().enumerate() {
            match Selector::from_raw(s) {
                Ok(sel) => out.push(sel),
                Err(e) => self.err(at, &format!("{field}[{i}].{}", e.field), e.value, e.message),
            }
        }
        out
    }

    fn pools(&mut self, raw: &[Loaded<Object<raw::IpAddressPoolSpec>>]) -> Vec<Pool> {
        let mut pools = Vec::new();
        // (range, pool name, field) of every entry, for the overlap sweep.
        let mut entries: Vec<(AddrRange, At<'_>, String)> = Vec::new();
        for (at, o) in self.unique_objects(raw, "IPAddressPool") {
            let spec = &o.spec;
            if spec.addresses.is_empty() {
                self.err(at, "spec.addresses", "", "a pool needs at least one CIDR or range");
            }
            let mut ranges = Vec::new();
            for (i, a) in spec.addresses.iter().enumerate() {
                let field = format!("spec.addresses[{i}]");
                match AddrRange::parse(a) {
                    Ok(r) => {
                        entries.push((r, at, field));
                        ranges.push(r);
                    }
                    // MetalLB masks host bits silently, and its own documentation writes
                    // `198.51.100.10/24`; a user keeps such a file working, but is told (and
                    // `--strict` refuses it).
                    Err(RangeError::HostBits { network }) => {
                        let msg = format!(
                            "host bits are set: read as {network}, as MetalLB does (the whole network, not from this address); write {network}, or a range such as {}-{}",
                            a.split('/').next().unwrap_or_default().trim(),
                            network.broadcast()
                        );
                        self.warn(at, &field, a, msg);
                        let r = AddrRange::from_net(network);
                        entries.push((r, at, field));
                        ranges.push(r);
                    }
                    Err(e) => self.err(at, &field, a, e.to_string()),
                }
            }
            let allocation = spec.service_allocation.as_ref().map(|sa| {
                self.no_duplicates(at, "spec.serviceAllocation.namespaces", &sa.namespaces);
                if sa.priority < 0 {
                    self.err(at, "spec.serviceAllocation.priority", sa.priority, "must not be negative");
                }
                PoolAllocation {
                    priority: sa.priority,
                    namespaces: sa.namespaces.iter().cloned().collect(),
                    namespace_selectors: self.selectors(
                        at,
                        "spec.serviceAllocation.namespaceSelectors",
                        &sa.namespace_selectors,
                    ),
                    service_selectors: self.selectors(
                        at,
                        "spec.serviceAllocation.serviceSelectors",
                        &sa.service_selectors,
                    ),
                }
            });
            self.pool_sources.insert(at.name.to_string(), at.source.clone());
            pools.push(Pool {
                name: at.name.to_string(),
                labels: o.metadata.labels.clone(),
                ranges,
                auto_assign: spec.auto_assign.unwrap_or(true),
                avoid_buggy_ips: spec.avoid_buggy_ips,
                allocation,
            });
        }
        // Overlaps, within a pool or across pools: sort by start, compare with the entry that
        // reaches furthest so far. O(n log n) in the number of entries.
        entries.sort_by_key(|(r, _, _)| (r.family(), r.start()));
        let mut reach: Option<usize> = None;
        for i in 0..entries.len() {
            if let Some(j) = reach {
                let (a, b) = (&entries[j], &entries[i]);
                if a.0.overlaps(&b.0) {
                    let (r, at, field) = b;
                    let what = if a.1.name == at.name {
                        format!("overlaps {} ({}) of the same pool", a.0, a.2)
                    } else {
                        format!("overlaps {} of IPAddressPool {:?} ({})", a.0, a.1.name, a.1.source)
                    };
                    self.err(*at, field, r, what);
                }
                if a.0.family() != b.0.family() || b.0.end() > a.0.end() {
                    reach = Some(i);
                }
            } else {
                reach = Some(i);
            }
        }
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        pools
    }

    fn communities(&mut self, raw: &[Loaded<Object<raw::CommunitySpec>>]) -> BTreeMap<String, Community> {
        let mut aliases: BTreeMap<String, (Community, String)> = BTreeMap::new();
        for (at, o) in self.unique_objects(raw, "Community") {
            for (i, alias) in o.spec.communities.iter().enumerate() {
                let field = format!("spec.communities[{i}]");
                if alias.name.is_empty() {
                    self.err(at, &format!("{field}.name"), "", "an alias needs a name");
                    continue;
                }
                if Community::is_literal(&alias.name) {
                    self.err(at, &format!("{field}.name"), &alias.name, "an alias name must not contain ':'");
                    continue;
                }
                match Community::parse(&alias.value) {
                    Ok(c) => {
                        if let Some((_, other)) = aliases.get(&alias.name) {
                            let msg =
                                format!("community alias {:?} is already defined by Community {other:?}", alias.name);
                            self.err(at, &format!("{field}.name"), &alias.name, msg);
                        } else {
                            aliases.insert(alias.name.clone(), (c, at.name.to_string()));
                        }
                    }
                    Err(e) => self.err(at, &format!("{field}.value"), &alias.value, e.0),
                }
            }
        }
        aliases.into_iter().map(|(k, (c, _))| (k, c)).collect()
    }

    fn bfd_profiles(&mut self, raw: &[Loaded<Object<raw::BfdProfileSpec>>]) -> Vec<BfdProfile> {
        let mut out = Vec::new();
        for (at, o) in self.unique_objects(raw, "BFDProfile") {
            let s = &o.spec;
            let mut num = |field: &str, v: Option<i64>, min: i64, max: i64, default: u32| -> u32 {
                match v {
                    None => default,
                    Some(v) if (min..=max).contains(&v) => v as u32,
                    Some(v) => {
                        self.err(at, field, v, format!("must be between {min} and {max}"));
                        default
                    }
                }
            };
            let profile = BfdProfile {
                name: at.name.to_string(),
                receive_interval: num("spec.receiveInterval", s.receive_interval, 10, 60000, 300),
                transmit_interval: num("spec.transmitInterval", s.transmit_interval, 10, 60000, 300),
                detect_multiplier: num("spec.detectMultiplier", s.detect_multiplier, 2, 255, 3),
                echo_interval: num("spec.echoInterval", s.echo_interval, 10, 60000, 50),
                minimum_ttl: num("spec.minimumTtl", s.minimum_ttl, 1, 254, 254),
                echo_mode: s.echo_mode.unwrap_or(false),
                passive_mode: s.passive_mode.unwrap_or(false),
            };
            out.push(profile);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn duration(&mut self, at: At<'_>, field: &str, v: &Option<String>) -> Option<Duration> {
        let s = v.as_ref()?;
        match duration::parse(s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(at, field, s, format!("{e} (a Go duration such as 90s or 1m30s)"));
                None
            }
        }
    }

    fn ip(&mut self, at: At<'_>, field: &str, v: &Option<String>) -> Option<IpAddr> {
        let s = v.as_ref().filter(|s| !s.is_empty())?;
        match s.trim().parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(at, field, s, "not an IP address");
                None
            }
        }
    }

    fn pool_selection(
        &mut self,
        at: At<'_>,
        names: &[String],
        selectors: &[raw::LabelSelector],
        pools: &[Pool],
    ) -> PoolSelection {
        self.no_duplicates(at, "spec.ipAddressPools", names);
        for (i, n) in names.iter().enumerate() {
            if !pools.iter().any(|p| &p.name == n) {
                self.warn(
                    at,
                    &format!("spec.ipAddressPools[{i}]"),
                    n,
                    "no IPAddressPool of this name in the loaded files (MetalLB skips it)",
                );
            }
        }
        PoolSelection {
            names: names.iter().cloned().collect(),
            selectors: self.selectors(at, "spec.ipAddressPoolSelectors", selectors),
        }
    }

    fn l2_advertisements(
        &mut self,
        raw: &[Loaded<Object<raw::L2AdvertisementSpec>>],
        pools: &[Pool],
    ) -> Vec<L2Advertisement> {
        let mut out = Vec::new();
        for (at, o) in self.unique_objects(raw, "L2Advertisement") {
            let s = &o.spec;
            for (i, ifname) in s.interfaces.iter().enumerate() {
                if ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', ' ']) {
                    self.err(
                        at,
                        &format!("spec.interfaces[{i}]"),
                        ifname,
                        "not a valid Linux interface name (1 to 15 characters, no '/' or space)",
                    );
                }
            }
            let mut preferred = Vec::new();
            for (i, p) in s.preferred_node_selectors.iter().enumerate() {
                let field = format!("spec.preferredNodeSelectors[{i}]");
                if !(1..=100).contains(&p.weight) {
                    self.err(at, &format!("{field}.weight"), p.weight, "must be between 1 and 100");
                }
                if let Some(sel) = self.selectors(at, &field, std::slice::from_ref(&p.preference)).pop() {
                    preferred.push((p.weight.clamp(1, 100) as u8, sel));
                }
            }
            out.push(L2Advertisement {
                name: at.name.to_string(),
                pools: self.pool_selection(at, &s.ip_address_pools, &s.ip_address_pool_selectors, pools),
                node_selectors: self.selectors(at, "spec.nodeSelectors", &s.node_selectors),
                interfaces: s.interfaces.clone(),
                service_selectors: self.selectors(at, "spec.serviceSelectors", &s.service_selectors),
                preferred_node_selectors: preferred,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn bgp_advertisements(
        &mut self,
        raw: &[Loaded<Object<raw::BgpAdvertisementSpec>>],
        pools: &[Pool],
        aliases: &BTreeMap<String, Community>,
        peers: &[BgpPeer],
    ) -> Vec<BgpAdvertisement> {
        let mut out = Vec::new();
        for (at, o) in self.unique_objects(raw, "BGPAdvertisement") {
            let s = &o.spec;
            let mut len = |field: &str, v: Option<i64>, min: u8, max: u8| -> u8 {
                match v {
                    None => max,
                    Some(v) if (i64::from(min)..=i64::from(max)).contains(&v) => v as u8,
                    Some(v) => {
                        self.err(at, field, v, format!("must be between {min} and {max}"));
                        max
                    }
                }
            };
            let aggregation_length = len("spec.aggregationLength", s.aggregation_length, 1, 32);
            let aggregation_length_v6 = len("spec.aggregationLengthV6", s.aggregation_length_v6, 0, 128);
            let local_pref = match s.local_pref {
                None => None,
                Some(v) => match u32::try_from(v) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        self.err(at, "spec.localPref", v, "must be between 0 and 4294967295");
                        None
                    }
                },
            };
            let mut communities = BTreeSet::new();
            for (i, c) in s.communities.iter().enumerate() {
                let field = format!("spec.communities[{i}]");
                if Community::is_literal(c) {
                    match Community::parse(c) {
                        Ok(v) => {
                            communities.insert(v);
                        }
                        Err(e) => self.err(at, &field, c, e.0),
                    }
                } else if let Some(v) = aliases.get(c) {
                    communities.insert(*v);
                } else {
                    self.warn(at, &field, c, "neither a community value (AA:NN, large:A:B:C) nor an alias defined by a Community in the loaded files");
                }
            }
            self.no_duplicates(at, "spec.peers", &s.peers);
            self.no_duplicates(at, "spec.communities", &s.communities);
            for (i, p) in s.peers.iter().enumerate() {
                if !peers.iter().any(|x| &x.name == p) {
                    self.warn(at, &format!("spec.peers[{i}]"), p, "no BGPPeer of this name in the loaded files");
                }
            }
            // Aggregating routes of selected services would announce the unselected ones too.
            if !s.service_selectors.is_empty() && (aggregation_length != 32 || aggregation_length_v6 != 128) {
                let field =
                    if aggregation_length != 32 { "spec.aggregationLength" } else { "spec.aggregationLengthV6" };
                let v = if aggregation_length != 32 { aggregation_length } else { aggregation_length_v6 };
                self.err(at, field, v, "serviceSelectors and aggregation are mutually exclusive (an aggregate would announce unselected services too)");
            }
            let selection = self.pool_selection(at, &s.ip_address_pools, &s.ip_address_pool_selectors, pools);
            // An aggregate shorter than a pool's own prefix would announce addresses that are
            // not in the pool; MetalLB refuses it. As MetalLB does, a range entry counts by
            // the widest of the CIDRs that cover it.
            for pool in pools.iter().filter(|p| selection.selects(p)) {
                for r in &pool.ranges {
                    let (agg, field) = match r.family() {
                        Family::V4 => (aggregation_length, "spec.aggregationLength"),
                        Family::V6 => (aggregation_length_v6, "spec.aggregationLengthV6"),
                    };
                    let widest = r.cidrs().into_iter().min_by_key(|n| n.prefix_len());
                    if let Some(net) = widest.filter(|n| agg < n.prefix_len()) {
                        let msg = format!(
                            "shorter than the /{} prefix of {r} in IPAddressPool {:?}: the aggregate route would cover addresses outside the pool",
                            net.prefix_len(),
                            pool.name
                        );
                        self.err(at, field, agg, msg);
                    }
                }
            }
            out.push(BgpAdvertisement {
                name: at.name.to_string(),
                aggregation_length,
                aggregation_length_v6,
                local_pref,
                communities,
                pools: selection,
                node_selectors: self.selectors(at, "spec.nodeSelectors", &s.node_selectors),
                peers: s.peers.iter().cloned().collect(),
                service_selectors: self.selectors(at, "spec.serviceSelectors", &s.service_selectors),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Warnings for configurations that are valid but almost certainly not what was meant.
    fn lint(&mut self, config: &Config) {
        for pool in &config.pools {
            let d = |field: &str, value: String, message: String| Diagnostic {
                source: self.pool_sources.get(&pool.name).cloned(),
                kind: "IPAddressPool".into(),
                name: pool.name.clone(),
                field: field.into(),
                value,
                message,
            };
            if !config.is_advertised(pool) {
                self.warnings.push(d(
                    "",
                    String::new(),
                    "no L2Advertisement or BGPAdvertisement selects this pool: its addresses would be assigned but never announced".into(),
                ));
            }
            let size = crate::ipam::usable_size(pool);
            if size == 0 {
                self.warnings.push(d(
                    "spec.addresses",
                    String::new(),
                    "the pool has no usable address (avoidBuggyIPs skips every address in it)".into(),
                ));
            }
            if size == 1 && pool.auto_assign {
                self.warnings.push(d(
                    "spec.autoAssign",
                    "true".into(),
                    "a one-address pool with autoAssign: true can be taken by any service that asks for no pool; set autoAssign: false so only services that name it get it".into(),
                ));
            }
        }
    }
}
