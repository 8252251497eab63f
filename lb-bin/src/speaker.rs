//! `lb speaker`: one per node. Announces the addresses the controller assigned, as
//! `lbcore::plan` says this node should: in L2 mode when this node is the owner of an
//! address, over BGP to every BGPPeer that selects the node.
//!
//! What it reads: Services (their status addresses), EndpointSlices (ready endpoints per
//! node, for `externalTrafficPolicy: Local`), Nodes (labels for nodeSelectors, readiness,
//! `node.kubernetes.io/exclude-from-external-load-balancers`), the config kinds, the other
//! speakers' liveness Leases and the ServiceL2Status objects (who owns what now).
//!
//! Liveness: each speaker holds a Lease `lb-speaker-NODE` in the config namespace, renewed
//! every `--liveness-renew`; a speaker whose Lease has not changed for `--liveness-timeout`
//! (judged by our own clock), or is gone (deleted on SIGTERM), is not alive. A node may own
//! an address in L2 mode only when it is Ready, not excluded, its speaker is alive, it is
//! selected by an L2Advertisement, and (for `Local`) it has a ready endpoint; among those,
//! [`lbcore::plan::owner`] keeps the current owner (read from ServiceL2Status) and otherwise
//! ranks. Every speaker computes the same owner from the same objects.
//!
//! What it reports: a ServiceL2Status / ServiceBGPStatus per Service it announces (labels
//! `metallb.io/node`, `metallb.io/service-name`, `metallb.io/service-namespace`, as
//! MetalLB's), deleted when it stops, and an Event `nodeAssigned` on the Service when it
//! starts announcing it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use announcer_bgp::BgpAnnouncer;
use announcer_l2::L2Announcer;
use futures::{stream, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, Resource};
use lbcore::announcer::{Announcer, Desired};
use lbcore::config::{Config, Labels, Password};
use lbcore::plan::{self, Assigned};
use serde_json::json;
use tokio::time::Instant;

use crate::claims::{ClaimAge, Stamp, CLAIMED_AT, LEASE_PREFIX};
use crate::cluster::{key, LastGood, Stores, Update};
use crate::crds;
use crate::events::Recorder;
use crate::membership::{self, Membership};
use crate::metrics::SpeakerMetrics;
use crate::run::L2Flags;
use crate::{Error, Result};

/// Arguments of `lb speaker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Namespace of the metallb.io objects and of the speakers' Leases.
    #[arg(long, env = "LB_NAMESPACE", default_value = "metallb-system")]
    pub namespace: String,
    /// The node this speaker runs on (the pod's spec.nodeName).
    #[arg(long = "node-name", env = "NODE_NAME")]
    pub node_name: String,
    /// Serve only Services of this spec.loadBalancerClass (default: Services without one).
    #[arg(long, env = "LB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// Where to accept BGP connections from peers ("off": only connect to them).
    #[arg(long, env = "LB_BGP_LISTEN", default_value = "off")]
    pub bgp_listen: String,
    /// GTSM (RFC 5082) on every single-hop eBGP session: send with TTL 255, take only
    /// segments that arrive with 254 or more (the routers must be set up the same way).
    #[arg(long = "bgp-gtsm", env = "LB_BGP_GTSM")]
    pub bgp_gtsm: bool,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "LB_METRICS_ADDR", default_value = "0.0.0.0:7472")]
    pub metrics_addr: std::net::SocketAddr,
    /// How often this speaker renews its liveness Lease (Go duration).
    #[arg(long, env = "LB_LIVENESS_RENEW", default_value = "2s")]
    pub liveness_renew: String,
    /// A speaker whose Lease has not been renewed for this long is not alive (Go duration).
    #[arg(long, env = "LB_LIVENESS_TIMEOUT", default_value = "10s")]
    pub liveness_timeout: String,
    /// Shared key (16 bytes or more) of the speakers' membership: SWIM over UDP, every
    /// datagram authenticated with it, which notices a dead speaker in under a second.
    /// Without it, liveness comes from the speakers' Leases alone (--liveness-timeout).
    #[arg(long, env = "LB_MEMBERLIST_KEY", hide_env_values = true)]
    pub memberlist_key: Option<String>,
    /// UDP port of the membership, on every node's InternalIP.
    #[arg(long, env = "LB_MEMBERLIST_PORT", default_value_t = 7946)]
    pub memberlist_port: u16,
    /// Announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers
    /// too (MetalLB's flag of the same name).
    #[arg(long = "ignore-exclude-lb", env = "LB_IGNORE_EXCLUDE_LB")]
    pub ignore_exclude_lb: bool,
    /// L2 settings.
    #[command(flatten)]
    pub l2: L2Flags,
}

/// The label that takes a node out of every load balancer (Kubernetes's own).
pub(crate) const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
const MANAGER: &str = "lb-speaker";

/// A Service as the planner sees it.
struct Svc {
    key: (String, String),
    assigned: Assigned,
    local: bool,
    ready_nodes: BTreeSet<String>,
}

/// What this node announces, per Service: L2 interfaces (empty: every suitable one), and BGP
/// peers.
#[derive(Default, PartialEq)]
struct Announced {
    l2: BTreeMap<(String, String), BTreeSet<String>>,
    bgp: BTreeMap<(String, String), BTreeSet<String>>,
}

struct Speaker {
    args: Args,
    client: Client,
    recorder: Recorder,
    stores: Stores,
    leases: BTreeMap<String, (Option<String>, Instant)>,
    timeout: Duration,
    membership: Option<Membership>,
    /// Nodes membership has seen alive at least once (for the others, the Lease decides).
    seen: BTreeSet<String>,
    /// When membership last saw each node go down.
    down_since: BTreeMap<String, Instant>,
    /// When this process started (its own earlier claims do not count).
    started: Stamp,
    /// While this speaker cannot see its own Lease renewed (the API server is out of reach,
    /// for it at least), and for one timeout after it sees it again: the instant its own
    /// Lease was last seen renewed. Lease ages are then judged as of that instant, so an
    /// outage of the API server moves nothing.
    frozen: Option<Instant>,
    /// When its own Lease was seen renewed again after a freeze.
    regained: Option<Instant>,
    joined: BTreeMap<String, Instant>,
    /// When this node began answering for each Service it announces in L2 mode (RFC 3339,
    /// written as the `CLAIMED_AT` annotation of its status object).
    claims: BTreeMap<(String, String), String>,
    /// The addresses this node should answer for but has no interface for (reported once).
    unanswerable: BTreeSet<IpAddr>,
    config: LastGood,
    l2: Option<L2Announcer>,
    bgp: BgpAnnouncer,
    announced: Announced,
    metrics: SpeakerMetrics,
}

/// Why no speaker may announce from node `n`, if none may: it is not Ready, the API says its
/// network is unavailable (condition `NetworkUnavailable`), or it carries the exclusion label
/// (unless `ignore_exclude`). The same rules as MetalLB's speaker, plus Ready.
pub(crate) fn node_unfit(n: &Node, ignore_exclude: bool) -> Option<String> {
    let conditions = n.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let condition = |t: &str| conditions.iter().find(|c| c.type_ == t).map(|c| c.status.as_str());
    let labels = n.metadata.labels.clone().unwrap_or_default();
    unfit_reason(&labels, ignore_exclude, condition("NetworkUnavailable"), condition("Ready"))
}

/// The rule of [`node_unfit`] on a node's labels and the status of its `NetworkUnavailable`
/// and `Ready` conditions (None: the condition is absent).
pub(crate) fn unfit_reason(
    labels: &Labels,
    ignore_exclude: bool,
    network_unavailable: Option<&str>,
    ready: Option<&str>,
) -> Option<String> {
    if !ignore_exclude && labels.contains_key(EXCLUDE_LABEL) {
        Some(format!("labelled {EXCLUDE_LABEL} (the speakers' --ignore-exclude-lb overrides it)"))
    } else if network_unavailable == Some("True") {
        Some("the API reports NetworkUnavailable on it".to_string())
    } else if ready != Some("True") {
        Some(format!("not Ready (condition Ready is {})", ready.unwrap_or("absent")))
    } else {
        None
    }
}

/// Where a Service's endpoints can serve: whether any can at all, and the nodes that hold one
/// (as MetalLB counts them: `ready` unset or true, or `serving` true).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Serving {
    /// Some endpoint can serve, wherever it runs.
    pub any: bool,
    /// The nodes with an endpoint that can serve.
    pub nodes: BTreeSet<String>,
}

/// The endpoints of Service `ns/name` among `slices`.
pub(crate) fn serving<'a>(
    slices: impl IntoIterator<Item = &'a k8s_openapi::api::discovery::v1::EndpointSlice>,
    ns: &str,
    name: &str,
) -> Serving {
    serving_index(slices).remove(&(ns.to_string(), name.to_string())).unwrap_or_default()
}

/// The endpoints of every Service among `slices`, by (namespace, name): one pass over them.
pub(crate) fn serving_index<'a>(
    slices: impl IntoIterator<Item = &'a k8s_openapi::api::discovery::v1::EndpointSlice>,
) -> BTreeMap<(String, String), Serving> {
    let mut out: BTreeMap<(String, String), Serving> = BTreeMap::new();
    for slice in slices {
        let owner = slice.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name"));
        let (Some(ns), Some(name)) = (&slice.metadata.namespace, owner) else { continue };
        let entry = out.entry((ns.clone(), name.clone())).or_default();
        for ep in &slice.endpoints {
            let c = ep.conditions.as_ref();
            let can = c.and_then(|c| c.ready).unwrap_or(true) || c.and_then(|c| c.serving).unwrap_or(false);
            if can {
                entry.any = true;
                entry.nodes.extend(ep.node_name.clone());
            }
        }
    }
    out
}

fn status_name(kind: &str, svc: &(String, String), node: &str) -> String {
    let name = format!("{kind}-{}.{}.{node}", svc.0, svc.1);
    if name.len() <= 253 {
        name
    } else {
        format!(
            "{kind}-{:x}",
            name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
        )
    }
}

impl Speaker {
    /// Notes when each speaker's Lease last changed, by our clock.
    fn observe_leases(&mut self, leases: &BTreeMap<String, Option<String>>) {
        self.leases.retain(|n, _| leases.contains_key(n));
        for (node, renew) in leases {
            match self.leases.get(node) {
                Some((r, _)) if r == renew => {}
                _ => {
                    self.leases.insert(node.clone(), (renew.clone(), Instant::now()));
                }
            }
        }
    }

    /// Freezes Lease-based liveness while this speaker cannot see its own Lease renewed, and
    /// thaws it one timeout after it can again (the others renew within that time).
    fn watch_own_lease(&mut self) {
        let Some((_, own)) = self.leases.get(&self.args.node_name).cloned() else { return };
        if own.elapsed() >= self.timeout {
            if self.frozen.is_none() {
                tracing::warn!(
                    "this speaker has not seen its own Lease renewed for {:?}: the API server is out of reach; every node's liveness stays as it was (membership still notices dead speakers)",
                    self.timeout
                );
                self.frozen = Some(own);
            }
            self.regained = None;
        } else if self.frozen.is_some() {
            let back = *self.regained.get_or_insert_with(Instant::now);
            if back.elapsed() >= self.timeout {
                tracing::info!("the API server is reachable again: liveness from Leases resumes");
                self.frozen = None;
                self.regained = None;
            }
        }
    }

    /// Whether a Lease last seen renewed at `since` says its speaker is alive.
    fn lease_alive(&self, since: Instant) -> bool {
        since.elapsed() < self.timeout || self.frozen.is_some_and(|at| since + self.timeout > at)
    }

    /// Whether `node`'s speaker is alive.
    ///
    /// Once membership has seen a node, it is alive while membership says so (a dead member
    /// is noticed in under a second), and also when membership says it is down but its Lease
    /// has been renewed since: then it is not dead but cut off from us (a split), and it
    /// keeps what it announces. So two nodes answer for one address at most for one renew
    /// interval. Before membership has seen a node, its Lease alone decides.
    fn speaker_alive(&self, node: &str) -> bool {
        let lease = self.leases.get(node);
        if let Some(m) = &self.membership {
            if self.seen.contains(node) {
                if m.alive().contains_key(node) {
                    return true;
                }
                let renewed_since_down = match (lease, self.down_since.get(node)) {
                    (Some((_, renewed)), Some(down)) => renewed > down && renewed.elapsed() < self.timeout,
                    _ => false,
                };
                return renewed_since_down;
            }
        }
        lease.is_some_and(|(_, since)| self.lease_alive(*since))
    }

    /// Starts membership once this node's InternalIP is known, and asks every other node's
    /// speaker that is not a member to let us in (every 5 s at most per node).
    async fn membership(&mut self) {
        let Some(key) = self.args.memberlist_key.clone() else { return };
        let port = self.args.memberlist_port;
        let ip_of = |n: &Node| -> Option<IpAddr> {
            let addrs = n.status.as_ref()?.addresses.as_ref()?;
            addrs.iter().find(|a| a.type_ == "InternalIP").and_then(|a| a.address.parse().ok())
        };
        let me = self.args.node_name.clone();
        if self.membership.is_none() {
            let mine = self.stores.nodes.items.values().find(|n| n.metadata.name.as_deref() == Some(me.as_str()));
            let Some(ip) = mine.and_then(ip_of) else { return };
            let bind = SocketAddr::new(if ip.is_ipv4() { [0u8; 4].into() } else { [0u16; 8].into() }, port);
            let mut s = membership::Settings::new(me.clone(), bind, Vec::new(), key.into_bytes());
            s.advertise = Some(SocketAddr::new(ip, port));
            match Membership::start(s).await {
                Ok(m) => {
                    tracing::info!(addr = %m.addr, "membership started");
                    self.membership = Some(m);
                }
                Err(e) => {
                    tracing::error!(error = %e, "membership cannot start; liveness comes from Leases only");
                    self.args.memberlist_key = None;
                    return;
                }
            }
        }
        let Some(m) = &self.membership else { return };
        let alive = m.alive();
        for node in &self.seen {
            if alive.contains_key(node) {
                self.down_since.remove(node);
            } else {
                self.down_since.entry(node.clone()).or_insert_with(Instant::now);
            }
        }
        self.seen.extend(alive.keys().cloned());
        for n in self.stores.nodes.items.values() {
            let Some(name) = n.metadata.name.clone() else { continue };
            if alive.contains_key(&name) || node_unfit(n, self.args.ignore_exclude_lb).is_some() {
                continue;
            }
            let due = self.joined.get(&name).is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
            if let (true, Some(ip)) = (due, ip_of(n)) {
                m.join(SocketAddr::new(ip, port));
                self.joined.insert(name, Instant::now());
            }
        }
    }

    fn services(&self, config: &Config) -> Vec<Svc> {
        let class = self.args.lb_class.as_deref();
        let mut out = Vec::new();
        let mut endpoints = serving_index(self.stores.slices.items.values());
        for svc in self.stores.services.items.values() {
            let Some(spec) = &svc.spec else { continue };
            if spec.type_.as_deref() != Some("LoadBalancer") || spec.load_balancer_class.as_deref() != class {
                continue;
            }
            let k = key(svc);
            // Only addresses inside a pool are ever announced (a status written by anyone
            // else, to anything else, is ignored).
            let ips: Vec<(IpAddr, Arc<str>)> = crate::controller::status_ips(svc)
                .iter()
                .filter_map(|s| s.parse::<IpAddr>().ok())
                .filter_map(|ip| config.pool_of(ip).map(|p| (ip, Arc::from(p.name.as_str()))))
                .collect();
            if ips.is_empty() {
                continue;
            }
            let labels: Labels = svc.metadata.labels.clone().unwrap_or_default();
            let local = spec.external_traffic_policy.as_deref() == Some("Local");
            // As MetalLB: a Service no endpoint can serve is announced nowhere.
            let Serving { any, nodes: ready_nodes } = endpoints.remove(&k).unwrap_or_default();
            if !any {
                continue;
            }
            out.push(Svc { key: k, assigned: Assigned { labels, ips }, local, ready_nodes });
        }
        out
    }

    /// This node's desired announcements, and what they mean per Service.
    fn plan(&self, config: &Config) -> (Desired, Announced) {
        let me = self.args.node_name.as_str();
        let services = self.services(config);
        let for_node = |n: &str| -> Vec<Assigned> {
            services.iter().filter(|s| !s.local || s.ready_nodes.contains(n)).map(|s| s.assigned.clone()).collect()
        };
        let mut eligible: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
        let mut mine = BTreeMap::new();
        let mut me_alive = false;
        for n in self.stores.nodes.items.values() {
            let name = n.metadata.name.as_deref().unwrap_or_default();
            if node_unfit(n, self.args.ignore_exclude_lb).is_some() || !self.speaker_alive(name) {
                continue;
            }
            let node = plan::Node::new(name, n.metadata.labels.clone().unwrap_or_default());
            let l2 = plan::l2(config, &node, for_node(name));
            for ip in l2.keys() {
                eligible.entry(*ip).or_default().push(name);
            }
            if name == me {
                me_alive = true;
                mine = l2;
            }
        }
        // Who answers for each address now, as the status objects say: (claimed since, node).
        // A claim counts only if made by the node's current speaker process (not before the
        // start its Lease records): a speaker that restarts has lost what it held.
        let mut started = crate::claims::starts(self.stores.leases.items.values());
        // For this node, its own start is known without waiting for its Lease to say so.
        started.insert(me.to_string(), self.started);
        let started: BTreeMap<&str, Stamp> = started.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let mut current: BTreeMap<IpAddr, Vec<(ClaimAge, &str)>> = BTreeMap::new();
        for c in crate::claims::in_force(self.stores.l2_statuses.items.values(), &started) {
            if let Some(svc) = services.iter().find(|v| v.key.0 == c.namespace && v.key.1 == c.name) {
                for (ip, _) in &svc.assigned.ips {
                    current.entry(*ip).or_default().push((c.age, c.node));
                }
            }
        }
        let mut desired = Desired::default();
        for (ip, target) in mine {
            let nodes = &eligible[&ip];
            // Of several eligible claimants (after a split), the oldest claim keeps it: both
            // sides read the same objects, so they agree.
            let claimed = current.get_mut(&ip).and_then(|c| crate::claims::holder(c, nodes));
            if plan::owner(ip, nodes, claimed) == Some(me) {
                desired.l2.insert(ip, target);
            }
        }
        let me_node = self.stores.nodes.items.values().find(|n| n.metadata.name.as_deref() == Some(me));
        let labels = me_node.and_then(|n| n.metadata.labels.clone()).unwrap_or_default();
        let routed = if me_alive { for_node(me) } else { Vec::new() };
        desired.bgp = plan::bgp(config, &plan::Node::new(me, labels), &routed);
        self.resolve_passwords(&mut desired.bgp);

        let mut announced = Announced::default();
        for s in &services {
            for (ip, _) in &s.assigned.ips {
                if let Some(t) = desired.l2.get(ip) {
                    announced.l2.entry(s.key.clone()).or_default().extend(t.interfaces.iter().cloned());
                }
                for (peer, session) in &desired.bgp {
                    // A peer the BGP announcer refuses gets nothing: do not report it.
                    let runs = announcer_bgp::peer_problem(&session.peer).is_none();
                    if runs && session.routes.covers(*ip) {
                        announced.bgp.entry(s.key.clone()).or_default().insert(peer.clone());
                    }
                }
            }
        }
        (desired, announced)
    }

    async fn pass(&mut self) -> Result<()> {
        let leases: BTreeMap<String, Option<String>> = self
            .stores
            .leases
            .items
            .values()
            .filter_map(|l| {
                let name = l.metadata.name.as_deref()?.strip_prefix(LEASE_PREFIX)?;
                Some((name.to_string(), l.spec.as_ref().and_then(|s| s.renew_time.as_ref()).map(|t| t.0.to_string())))
            })
            .collect();
        self.observe_leases(&leases);
        self.watch_own_lease();
        self.membership().await;
        self.config.update(&self.stores.resources());
        let Some(config) = self.config.config.clone() else { return Ok(()) };
        let (desired, announced) = self.plan(&config);
        if let Some(l2) = &self.l2 {
            l2.reconcile(&desired).await.map_err(Error::Announce)?;
            let unanswerable = if desired.l2.is_empty() { BTreeSet::new() } else { l2.unanswerable(&desired) };
            self.report_unanswerable(&desired, unanswerable).await;
        } else if !desired.l2.is_empty() {
            tracing::error!("this node should answer ARP/NDP but the L2 announcer could not start (CAP_NET_RAW?)");
        }
        self.bgp.reconcile(&desired).await.map_err(Error::Announce)?;
        let mut items = Vec::new();
        for k in announced.l2.keys() {
            let svc = format!("{}/{}", k.0, k.1);
            for ip in self.stores.services.items.get(k).map(crate::controller::status_ips).unwrap_or_default() {
                items.push((svc.clone(), "layer2", ip));
            }
        }
        for k in announced.bgp.keys() {
            let svc = format!("{}/{}", k.0, k.1);
            for ip in self.stores.services.items.get(k).map(crate::controller::status_ips).unwrap_or_default() {
                items.push((svc.clone(), "bgp", ip));
            }
        }
        self.metrics.announced(&self.args.node_name, &items);
        if let Some(l2) = &self.l2 {
            self.metrics.layer2(&l2.counters());
        }
        self.metrics.bgp(&self.bgp.stats());
        if announced != self.announced {
            self.report(&announced).await;
            self.announced = announced;
        } else {
            // Nothing new this pass: the stores have caught up with what was written.
            self.collect_stale().await;
        }
        Ok(())
    }

    /// BGPPeer `passwordSecret`, resolved from the Secrets of the configuration namespace
    /// (key `password`, as MetalLB reads it). A Secret that is missing, elsewhere, or without
    /// that key leaves the peer unresolved: the BGP announcer refuses it and says why.
    fn resolve_passwords(&self, sessions: &mut BTreeMap<String, lbcore::announcer::BgpSession>) {
        let ns = self.args.namespace.as_str();
        for s in sessions.values_mut() {
            let Some(Password::Secret { name, namespace }) = &s.peer.password else { continue };
            if namespace.as_deref().is_some_and(|n| n != ns) {
                continue;
            }
            let secret = self.stores.secrets.items.get(&(ns.to_string(), name.clone()));
            let value =
                secret.and_then(|x| x.data.as_ref()?.get("password")).and_then(|b| String::from_utf8(b.0.clone()).ok());
            if let Some(v) = value {
                s.peer.password = Some(Password::Inline(v));
            }
        }
    }

    /// Says so, once (a log line and a Warning Event `announceFailed` on the Service, as
    /// MetalLB does), when an address this node should answer for has no interface to be
    /// answered on.
    async fn report_unanswerable(&mut self, desired: &Desired, now: BTreeSet<IpAddr>) {
        let new: Vec<IpAddr> = now.difference(&self.unanswerable).copied().collect();
        for ip in new {
            let named = desired
                .l2
                .get(&ip)
                .map(|t| t.interfaces.iter().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let why = if named.is_empty() {
                "no interface is eligible (up, with a MAC, not excluded by --l2-exclude-interfaces)".to_string()
            } else {
                format!("the L2Advertisement names {named}, and none of them exists here up and with a MAC")
            };
            let note = format!("no interface on node \"{}\" can answer ARP/NDP for {ip}: {why}", self.args.node_name);
            tracing::warn!("{note}");
            let svc = self
                .stores
                .services
                .items
                .values()
                .find(|s| crate::controller::status_ips(s).iter().any(|i| i.parse::<IpAddr>().ok() == Some(ip)));
            if let Some(svc) = svc {
                let ev = Event {
                    type_: EventType::Warning,
                    reason: "announceFailed".into(),
                    note: Some(note),
                    action: "Announce".into(),
                    secondary: None,
                };
                if let Err(e) = self.recorder.publish(&ev, &svc.object_ref(&())).await {
                    tracing::debug!(error = %e, "cannot publish an event");
                }
            }
        }
        self.unanswerable = now;
    }

    /// Status objects and Events for what changed.
    async fn report(&mut self, now: &Announced) {
        let me = self.args.node_name.clone();
        for (k, ifaces) in &now.l2 {
            match self.announced.l2.get(k) {
                Some(before) if before == ifaces => continue,
                Some(_) => {}
                None => {
                    tracing::info!(service = %format!("{}/{}", k.0, k.1), "announcing in L2 mode from this node");
                    self.claims.insert(k.clone(), Timestamp::now().to_string());
                    self.node_assigned(k, "layer2").await;
                }
            }
            let status = json!({"node": me, "serviceName": k.1, "serviceNamespace": k.0,
                "interfaces": ifaces.iter().map(|i| json!({"name": i})).collect::<Vec<_>>()});
            self.put_status::<crds::ServiceL2Status>("l2", k, status).await;
        }
        for (k, peers) in &now.bgp {
            match self.announced.bgp.get(k) {
                Some(before) if before == peers => continue,
                Some(_) => {}
                None => {
                    tracing::info!(service = %format!("{}/{}", k.0, k.1), "announcing over BGP from this node");
                    self.node_assigned(k, "bgp").await;
                }
            }
            let status = json!({"node": me, "serviceName": k.1, "serviceNamespace": k.0, "peers": peers});
            self.put_status::<crds::ServiceBGPStatus>("bgp", k, status).await;
        }
        let gone_l2: Vec<_> = self.announced.l2.keys().filter(|k| !now.l2.contains_key(*k)).cloned().collect();
        for k in gone_l2 {
            self.claims.remove(&k);
            self.delete_status::<crds::ServiceL2Status>(&status_name("l2", &k, &me)).await;
        }
        let gone_bgp: Vec<_> = self.announced.bgp.keys().filter(|k| !now.bgp.contains_key(*k)).cloned().collect();
        for k in gone_bgp {
            self.delete_status::<crds::ServiceBGPStatus>(&status_name("bgp", &k, &me)).await;
        }
    }

    /// Makes the status objects say the truth: this node's exist for what it announces (they
    /// are written again if someone deleted them), and are deleted for what it does not (left
    /// over from before a restart); for a Service this node answers for in L2 mode, other
    /// nodes' are deleted once their Lease says they are dead.
    async fn collect_stale(&self) {
        let me = self.args.node_name.as_str();
        let missing = |kind: &str, k: &(String, String)| {
            let name = status_name(kind, k, me);
            let in_store = |ns_name: &(String, String)| ns_name.1 == name;
            match kind {
                "l2" => !self.stores.l2_statuses.items.keys().any(in_store),
                _ => !self.stores.bgp_statuses.items.keys().any(in_store),
            }
        };
        for (k, ifaces) in &self.announced.l2 {
            if missing("l2", k) {
                let status = json!({"node": me, "serviceName": k.1, "serviceNamespace": k.0,
                    "interfaces": ifaces.iter().map(|i| json!({"name": i})).collect::<Vec<_>>()});
                self.put_status::<crds::ServiceL2Status>("l2", k, status).await;
            }
        }
        for (k, peers) in &self.announced.bgp {
            if missing("bgp", k) {
                let status = json!({"node": me, "serviceName": k.1, "serviceNamespace": k.0, "peers": peers});
                self.put_status::<crds::ServiceBGPStatus>("bgp", k, status).await;
            }
        }
        let of = |labels: &Option<BTreeMap<String, String>>| {
            let l = labels.as_ref()?;
            let k = (l.get("metallb.io/service-namespace")?.clone(), l.get("metallb.io/service-name")?.clone());
            Some((l.get("metallb.io/node")?.clone(), k))
        };
        // Another node's claim goes only when its Lease says it is dead: membership alone
        // cannot tell a dead node from one cut off from us, which must keep its claim.
        let lease_dead = |node: &str| self.leases.get(node).is_none_or(|(_, since)| !self.lease_alive(*since));
        let mut stale_l2 = Vec::new();
        for st in self.stores.l2_statuses.items.values() {
            let Some((node, k)) = of(&st.metadata.labels) else { continue };
            let mine_and_gone = node == me && !self.announced.l2.contains_key(&k);
            let theirs_and_mine = node != me && self.announced.l2.contains_key(&k) && lease_dead(&node);
            if mine_and_gone || theirs_and_mine {
                stale_l2.extend(st.metadata.name.clone());
            }
        }
        let mut stale_bgp = Vec::new();
        for st in self.stores.bgp_statuses.items.values() {
            let Some((node, k)) = of(&st.metadata.labels) else { continue };
            if node == me && !self.announced.bgp.contains_key(&k) {
                stale_bgp.extend(st.metadata.name.clone());
            }
        }
        for name in stale_l2 {
            self.delete_status::<crds::ServiceL2Status>(&name).await;
        }
        for name in stale_bgp {
            self.delete_status::<crds::ServiceBGPStatus>(&name).await;
        }
    }

    async fn node_assigned(&self, k: &(String, String), protocol: &str) {
        let Some(svc) = self.stores.services.items.get(k) else { return };
        let ev = Event {
            type_: EventType::Normal,
            reason: "nodeAssigned".into(),
            note: Some(format!("announcing from node \"{}\" with protocol \"{protocol}\"", self.args.node_name)),
            action: "Announce".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &svc.object_ref(&())).await {
            tracing::debug!(error = %e, "cannot publish an event");
        }
    }

    async fn put_status<K>(&self, kind: &str, k: &(String, String), status: serde_json::Value)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.args.namespace);
        let name = status_name(kind, k, &self.args.node_name);
        let mut obj = json!({
            "apiVersion": K::api_version(&()), "kind": K::kind(&()),
            "metadata": {"name": name, "labels": {
                "metallb.io/node": self.args.node_name, "metallb.io/service-name": k.1,
                "metallb.io/service-namespace": k.0}},
            "spec": {},
        });
        if let Some(at) = self.claims.get(k).filter(|_| kind == "l2") {
            obj["metadata"]["annotations"] = json!({ CLAIMED_AT: at });
        }
        let pp = PatchParams::apply(MANAGER).force();
        let result = match api.patch(&name, &pp, &Patch::Apply(&obj)).await {
            Ok(_) => api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(%name, error = %e, "cannot write a status object");
        }
    }

    async fn delete_status<K>(&self, name: &str)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.args.namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(%name, error = %e, "cannot delete a status object"),
        }
    }
}

/// Keeps this speaker's liveness Lease renewed until `stop`; then deletes it, so that the
/// other speakers take this node's addresses over at once.
async fn liveness(api: Api<Lease>, node: String, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let name = format!("{LEASE_PREFIX}{node}");
    // When this process started: its claims count from then on (see `Speaker::plan`).
    let started = MicroTime(Timestamp::now());
    loop {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(node.clone()),
                acquire_time: Some(started.clone()),
                renew_time: Some(MicroTime(Timestamp::now())),
                lease_duration_seconds: Some(i32::try_from(every.as_secs() * 5).unwrap_or(i32::MAX)),
                ..Default::default()
            }),
        };
        let r = match api.get_opt(&name).await {
            Ok(Some(mut old)) => {
                old.spec = lease.spec;
                api.replace(&name, &PostParams::default(), &old).await.map(drop)
            }
            Ok(None) => api.create(&PostParams::default(), &lease).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::warn!(lease = %name, error = %e, "cannot renew this speaker's liveness lease");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|&v| v) => break,
        }
    }
    let _ = api.delete(&name, &DeleteParams::default()).await;
}

/// Runs the speaker until SIGINT or SIGTERM; then withdraws everything.
pub async fn run(args: Args) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let sig = |k: SignalKind| signal(k).map_err(|e| Error::Invalid(format!("cannot install a signal handler: {e}")));
    let (mut term, mut int) = (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?);
    let dur = |flag: &str, v: &str| {
        lbcore::config::duration::parse(v).map_err(|e| Error::Invalid(format!("--{flag} {v:?}: {e}")))
    };
    let renew = dur("liveness-renew", &args.liveness_renew)?;
    let timeout = dur("liveness-timeout", &args.liveness_timeout)?;
    if renew.is_zero() || timeout <= renew {
        return Err(Error::Invalid("need 0 < --liveness-renew < --liveness-timeout".into()));
    }
    let settings = args.l2.settings()?;
    let client =
        Client::try_default().await.map_err(|e| Error::Invalid(format!("cannot reach the Kubernetes API: {e}")))?;
    let l2 = match L2Announcer::start(settings) {
        Ok(l2) => Some(l2),
        Err(e) => {
            tracing::warn!(error = %e, "L2 mode is off on this node");
            None
        }
    };
    let bgp = crate::run::bgp_announcer(&args.bgp_listen, args.bgp_gtsm)?;
    let ns = args.namespace.clone();
    let reporter = Reporter { controller: "lb-speaker".into(), instance: Some(args.node_name.clone()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let live = tokio::spawn(liveness(Api::namespaced(client.clone(), &ns), args.node_name.clone(), renew, stop));

    let registry = prometheus::Registry::new();
    let metrics = SpeakerMetrics::new(&registry);
    let ready = crate::metrics::start(args.metrics_addr, &registry).await?;
    let mut stores = Stores::default();
    let mut watches = stores.watch_config(&client, &ns);
    watches.push(stores.watch(Api::<Service>::all(client.clone()), Update::Service));
    watches.push(stores.watch(Api::all(client.clone()), Update::Node));
    watches.push(stores.watch(Api::all(client.clone()), Update::Slice));
    watches.push(stores.watch(Api::namespaced(client.clone(), &ns), Update::L2Status));
    watches.push(stores.watch(Api::namespaced(client.clone(), &ns), Update::BgpStatus));
    watches.push(stores.watch(Api::namespaced(client.clone(), &ns), Update::Lease));
    watches.push(stores.watch(Api::namespaced(client.clone(), &ns), Update::Secret));
    let mut updates = stream::select_all(watches);
    tracing::info!(node = %args.node_name, namespace = %ns, "speaker started");
    let mut me = Speaker {
        args,
        client,
        recorder,
        stores,
        leases: BTreeMap::new(),
        timeout,
        membership: None,
        seen: BTreeSet::new(),
        down_since: BTreeMap::new(),
        frozen: None,
        regained: None,
        started: lbcore::service::parse_rfc3339(&Timestamp::now().to_string()).unwrap_or_default(),
        joined: BTreeMap::new(),
        claims: BTreeMap::new(),
        unanswerable: BTreeSet::new(),
        config: LastGood::with_metrics(crate::metrics::ConfigMetrics::new(&registry)),
        l2,
        bgp,
        announced: Announced::default(),
        metrics,
    };
    let settle = Duration::from_millis(50);
    let mut next_pass = Instant::now();
    let mut dirty = true;
    // Liveness is judged by time passing too, not only by events.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut members = None;
    let result = loop {
        let can_pass = dirty && me.stores.ready();
        if members.is_none() {
            members = me.membership.as_ref().map(Membership::watch);
        }
        let member_change = async {
            match members.as_mut() {
                Some(w) => w.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => break Ok(()),
            _ = int.recv() => break Ok(()),
            _ = tick.tick() => dirty = true,
            true = member_change => {
                // A member came or went: decide at once.
                dirty = true;
                next_pass = Instant::now();
            }
            u = updates.next() => match u {
                Some(u) => {
                    me.stores.apply(u);
                    if !dirty {
                        next_pass = Instant::now() + settle;
                    }
                    dirty = true;
                }
                None => break Err(Error::Invalid("every watch ended".into())),
            },
            _ = tokio::time::sleep_until(next_pass), if can_pass => {
                dirty = false;
                if let Err(e) = me.pass().await {
                    break Err(e);
                }
                ready.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    };
    tracing::info!("stopping: withdrawing everything");
    if let Some(l2) = &me.l2 {
        let _ = l2.shutdown().await;
    }
    // Stopped answering first, then leave: the next owner takes over as soon as it hears.
    if let Some(m) = me.membership.take() {
        m.leave().await;
    }
    let _ = me.bgp.shutdown().await;
    let _ = stop_tx.send(true);
    let _ = live.await;
    let gone = Announced::default();
    me.report(&gone).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};

    #[test]
    fn a_node_is_unfit_when_excluded_network_unavailable_or_not_ready() {
        let plain = Labels::new();
        let excluded = Labels::from([(EXCLUDE_LABEL.to_string(), String::new())]);
        assert_eq!(unfit_reason(&plain, false, Some("False"), Some("True")), None);
        assert_eq!(unfit_reason(&plain, false, None, Some("True")), None);
        assert!(unfit_reason(&excluded, false, None, Some("True")).is_some_and(|r| r.contains(EXCLUDE_LABEL)));
        assert_eq!(unfit_reason(&excluded, true, None, Some("True")), None, "--ignore-exclude-lb");
        assert!(
            unfit_reason(&plain, false, Some("True"), Some("True")).is_some_and(|r| r.contains("NetworkUnavailable"))
        );
        assert!(unfit_reason(&plain, false, None, Some("Unknown")).is_some_and(|r| r.contains("not Ready")));
        assert!(unfit_reason(&plain, false, None, None).is_some_and(|r| r.contains("absent")));
    }

    fn slice(ns: &str, svc: &str, eps: &[(Option<&str>, Option<bool>, Option<bool>)]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                labels: Some(BTreeMap::from([("kubernetes.io/service-name".to_string(), svc.to_string())])),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps
                .iter()
                .map(|(node, ready, serving)| Endpoint {
                    addresses: vec!["10.0.0.1".into()],
                    node_name: node.map(str::to_string),
                    conditions: Some(EndpointConditions { ready: *ready, serving: *serving, terminating: None }),
                    ..Default::default()
                })
                .collect(),
            ports: None,
        }
    }

    #[test]
    fn endpoints_serve_when_ready_or_unset_or_serving_and_only_their_service_counts() {
        let slices = [
            slice("web", "www", &[(Some("n1"), Some(false), Some(false)), (Some("n2"), None, None)]),
            slice("web", "www", &[(Some("n3"), Some(false), Some(true)), (None, Some(true), None)]),
            slice("web", "other", &[(Some("n4"), Some(true), None)]),
            slice("db", "www", &[(Some("n5"), Some(true), None)]),
        ];
        let s = serving(&slices, "web", "www");
        assert!(s.any);
        assert_eq!(s.nodes, BTreeSet::from(["n2".to_string(), "n3".to_string()]));
        let first = serving(&slices[..1], "web", "www");
        assert_eq!(first.nodes, BTreeSet::from(["n2".to_string()]));
        let down = [slice("web", "www", &[(Some("n1"), Some(false), Some(false))])];
        assert_eq!(serving(&down, "web", "www"), Serving::default(), "nothing can serve");
        assert_eq!(serving(&[], "web", "www"), Serving::default());
    }
}
