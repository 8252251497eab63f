//! `lb run`: the whole job on one host, without Kubernetes.
//!
//! Loads the same YAML as `lb check`, restores the assignments in the state file, allocates,
//! prints the assignment table, and announces every assigned address for which this node is
//! selected: in L2 mode by an L2Advertisement, in BGP mode to every BGPPeer that selects the
//! node, as BGPAdvertisements say. It keeps running: SIGHUP or a change of any
//! configuration file reloads; an invalid new configuration is reported and the last good one
//! keeps running; SIGINT/SIGTERM withdraw everything and exit 0.
//!
//! Every service counts as having a ready local endpoint (the host is the backend), and the
//! host is made to accept traffic for its addresses (see [`crate::host`]).
//!
//! Several hosts: with `--memberlist-key`, the hosts listed as `kind: Node` entries in the
//! shared configuration (and `--peers`) form a group, and each address is answered for in L2
//! mode by one of them, chosen as [`crate::group`] says; BGP is announced by every host a
//! BGPPeer selects. Without the key, this host answers for everything it is selected for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use announcer_bgp::BgpAnnouncer;
use announcer_l2::{L2Announcer, L2Settings};
use lbcore::announcer::{Announcer, Desired};
use lbcore::config::{self, duration, Config, Labels};
use lbcore::ipam::{batch, Allocator};
use lbcore::plan::{self, Assigned, Node};
use lbcore::service;

use crate::check;
use crate::group;
use crate::host::HostVips;
use crate::state::{self, State};
use crate::{Error, Result};

/// Arguments of `lb run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A configuration file or directory; repeat for more.
    #[arg(short = 'c', long = "config", required = true, value_name = "FILE|DIR")]
    pub config: Vec<PathBuf>,
    /// This node's name (default: the host name).
    #[arg(long, env = "LB_NODE")]
    pub node: Option<String>,
    /// This node's labels, for nodeSelectors: k=v,k2=v2 (kubernetes.io/hostname is added).
    #[arg(long, env = "LB_NODE_LABELS", default_value = "")]
    pub node_labels: String,
    /// Where assignments are kept across restarts.
    #[arg(long, env = "LB_STATE_FILE", default_value = "/var/lib/lb/state.json")]
    pub state_file: PathBuf,
    /// Serve only services of this spec.loadBalancerClass (default: services without one).
    #[arg(long, env = "LB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// Where to accept BGP connections from peers ("off": only connect to them).
    #[arg(long, env = "LB_BGP_LISTEN", default_value = "[::]:179")]
    pub bgp_listen: String,
    /// GTSM (RFC 5082) on every single-hop eBGP session: send with TTL 255, take only
    /// segments that arrive with 254 or more (the routers must be set up the same way).
    #[arg(long = "bgp-gtsm", env = "LB_BGP_GTSM")]
    pub bgp_gtsm: bool,
    /// Where to serve /metrics, /healthz and /readyz (default: nowhere).
    #[arg(long, env = "LB_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Do not put the announced addresses on the local `lb-vips` dummy interface.
    #[arg(long, env = "LB_NO_HOST_ADDRESSES")]
    pub no_host_addresses: bool,
    /// Shared key (16 bytes or more) of the hosts' membership (SWIM over UDP, every datagram
    /// authenticated with it). With it, the hosts running `lb run` on one configuration (its
    /// `kind: Node` entries, and --peers) choose one host per address in L2 mode and fail
    /// over in under a second; without it, this host answers as if alone.
    #[arg(long, env = "LB_MEMBERLIST_KEY", hide_env_values = true)]
    pub memberlist_key: Option<String>,
    /// UDP port of the membership, on every host.
    #[arg(long, env = "LB_MEMBERLIST_PORT", default_value_t = 7946)]
    pub memberlist_port: u16,
    /// This host's membership address (default: the InternalIP of its `kind: Node` entry).
    #[arg(long, env = "LB_MEMBERLIST_ADDR")]
    pub memberlist_addr: Option<IpAddr>,
    /// Other hosts' membership addresses (IP, or IP:port), beside the `kind: Node` entries.
    #[arg(long, env = "LB_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// L2 settings.
    #[command(flatten)]
    pub l2: L2Flags,
}

/// `--peers` values as socket addresses (`port` when none is given).
fn parse_peers(peers: &[String], port: u16) -> Result<Vec<SocketAddr>> {
    peers
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<SocketAddr>()
                .or_else(|_| p.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, port)))
                .map_err(|_| Error::Invalid(format!("--peers: {p:?} is not an IP address or IP:port")))
        })
        .collect()
}

/// L2 settings MetalLB has no field for.
#[derive(Debug, clap::Args)]
pub struct L2Flags {
    /// Interface name patterns (`*` wildcards) not answered on unless an L2Advertisement
    /// names them (default: container and tunnel interfaces such as veth*, docker*, cni*).
    #[arg(long = "l2-exclude-interfaces", env = "LB_L2_EXCLUDE_INTERFACES", value_delimiter = ',')]
    pub exclude: Option<Vec<String>>,
    /// Repeat gratuitous ARP / unsolicited NA this often while an address is held (Go
    /// duration; default: only when it is taken).
    #[arg(long = "garp-refresh", env = "LB_GARP_REFRESH")]
    pub garp_refresh: Option<String>,
    /// Bound on ARP/NDP replies a second per interface (0: unbounded).
    #[arg(long = "arp-reply-rate", env = "LB_ARP_REPLY_RATE", default_value_t = 100_000)]
    pub reply_rate: u32,
    /// How often interfaces are re-listed (Go duration).
    #[arg(long = "interface-rescan", env = "LB_INTERFACE_RESCAN", default_value = "1s")]
    pub rescan: String,
}

impl L2Flags {
    pub(crate) fn settings(&self) -> Result<L2Settings> {
        let dur = |flag: &str, v: &str| duration::parse(v).map_err(|e| Error::Invalid(format!("--{flag} {v:?}: {e}")));
        let mut s = L2Settings::default();
        s.reply_rate = self.reply_rate;
        s.rescan = dur("interface-rescan", &self.rescan)?;
        if let Some(ex) = &self.exclude {
            s.exclude = ex.iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
        }
        if let Some(r) = &self.garp_refresh {
            s.garp_refresh = Some(dur("garp-refresh", r)?).filter(|d| !d.is_zero());
        }
        if s.rescan.is_zero() {
            return Err(Error::Invalid("--interface-rescan must be more than 0".into()));
        }
        Ok(s)
    }
}

/// `--node-labels` (k=v,k2=v2) as labels.
pub(crate) fn parse_labels(s: &str) -> Result<Labels> {
    let mut labels = Labels::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) =
            pair.split_once('=').ok_or_else(|| Error::Invalid(format!("--node-labels: {pair:?} is not key=value")))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(labels)
}

/// This host's name (the default node name).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Modification times of the configuration files (directories: of their entries too).
fn fingerprint(paths: &[PathBuf]) -> BTreeMap<PathBuf, Option<SystemTime>> {
    let mut out = BTreeMap::new();
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    for p in paths {
        out.insert(p.clone(), mtime(p));
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    out.insert(e.path(), mtime(&e.path()));
                }
            }
        }
    }
    out
}

struct Standalone {
    args: Args,
    node: Node,
    /// This host's labels from the flags (they win over its Node entry's).
    flag_labels: Labels,
    announcer: L2Announcer,
    bgp: BgpAnnouncer,
    host: HostVips,
    /// The assignments, only while the state file cannot be written.
    unsaved: Option<State>,
    /// Whether the last write of the state file recorded at least one assignment (so that
    /// finding it empty or missing later means it was lost, not that nothing was assigned).
    wrote_state: bool,
    running: Option<Config>,
    seen: BTreeMap<PathBuf, Option<SystemTime>>,
    /// The configuration's `kind: Node` entries: labels and membership address.
    nodes: BTreeMap<String, (Labels, Option<IpAddr>)>,
    peers: Vec<SocketAddr>,
    group: Option<group::Runtime>,
    /// The assigned services (kept only in a group: owners are worked out again as members
    /// come and go).
    assigned: Vec<Assigned>,
    /// Addresses covered by a route announced over BGP, in order (kept only when the host
    /// takes the announced addresses: they are put on `lb-vips`).
    bgp_vips: Vec<IpAddr>,
    /// Addresses answered for in L2 mode now.
    l2_now: BTreeSet<IpAddr>,
    /// Metrics, when served.
    metrics: Option<crate::metrics::SpeakerMetrics>,
}

impl Standalone {
    /// Loads the configuration and converges to it. An invalid configuration is an error at
    /// start; later it is reported and the running one stays.
    async fn reload(&mut self) -> Result<()> {
        self.seen = fingerprint(&self.args.config);
        let mut res = config::load_paths(&self.args.config);
        let nodes: BTreeMap<String, (Labels, Option<IpAddr>)> = res
            .nodes
            .iter()
            .map(|n| {
                let n = &n.object;
                (n.metadata.name.clone().unwrap_or_default(), (n.metadata.labels.clone(), n.internal_ip()))
            })
            .collect();
        let validated = config::validate(&res).map_err(Error::Config);
        let services =
            validated.and_then(|v| service::load_balancer_services(&mut res).map(|s| (v, s)).map_err(Error::Config));
        // Every step below frees what the next one no longer needs, so that the peak is one
        // stage's worth of memory, not the sum of all (this matters with 100k services).
        drop(res);
        let (validated, mut services) = match services {
            Ok(ok) => ok,
            Err(e) if self.running.is_some() => {
                for line in e.lines() {
                    tracing::error!("{line}");
                }
                tracing::error!("the new configuration is invalid; the last good configuration keeps running");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for w in &validated.warnings {
            tracing::warn!("{w}");
        }
        // The state file is the record of the assignments (as Service status is in
        // Kubernetes), read at each reload rather than kept in memory, and entry by entry
        // into the services rather than into a map (100k entries as a map cost about 13 MB).
        // Only when it could not be written does a copy stay here.
        let order = key_order(&services);
        let mut applied = Applied::new(services.len());
        let mut apply = |key: &str, ips: &[IpAddr]| {
            let found = order.binary_search_by(|&i| key_text(&services[i as usize].key).cmp(key.bytes()));
            if let Ok(at) = found {
                applied.set(&mut services, order[at] as usize, ips.into());
            }
        };
        match self.unsaved.take() {
            Some(kept) => {
                for (key, ips) in &kept.services {
                    apply(key, ips);
                }
            }
            // At start, a missing or broken file is an empty state (as for a first start).
            None if self.running.is_none() => {
                if let Err(e) = state::read_entries(&self.args.state_file, &mut apply) {
                    // A file rewritten in place while it was read can fail after some of
                    // its entries were applied: none of them stays.
                    applied.undo(&mut services);
                    tracing::warn!(path = %self.args.state_file.display(), error = %e, "the state file cannot be read; starting without it");
                }
            }
            // Later, this process wrote the file after the last reload: if it is gone or
            // cannot be read now, allocating without it could move every address and then
            // overwrite the record. The running configuration stays until it reads again
            // (and the services read from the file now, with whatever was applied to them,
            // are dropped).
            None => match state::read_entries(&self.args.state_file, &mut apply) {
                Ok(0) if self.wrote_state => {
                    tracing::error!(path = %self.args.state_file.display(), "the state file lb wrote is empty or gone; the running configuration stays (restore the file and send SIGHUP, or restart lb to allocate afresh)");
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(path = %self.args.state_file.display(), error = %e, "cannot read the state file; the running configuration stays (fix or restore the file and send SIGHUP, or restart lb to allocate afresh)");
                    return Ok(());
                }
            },
        }
        drop(order);
        let (alloc, outcomes) = batch::assign_all(&validated.config.pools, &services, self.args.lb_class.as_deref());
        self.save_state(&services, &alloc);
        check::print_notes(&services, &outcomes);
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        if let Err(e) = check::write_tables(&mut out, &alloc.stats(), &services, &alloc, &outcomes)
            .and_then(|()| std::io::Write::flush(&mut out).map_err(Error::from))
        {
            tracing::warn!(error = %e, "cannot print the assignment table");
        }
        drop(outcomes);
        // This host's labels: its Node entry's, then the flags'.
        let mut labels = nodes.get(&self.node.name).map(|n| n.0.clone()).unwrap_or_default();
        labels.extend(self.flag_labels.clone());
        self.node = Node::new(self.node.name.clone(), labels);
        self.nodes = nodes;
        // The services become what planning needs of them, in place (the standard library
        // reuses the buffer of a vector consumed into a smaller element type), before the
        // allocator goes: with 100k services, holding these beside the allocator would be
        // the peak of the process.
        let pools = &validated.config.pools;
        let index: HashMap<&str, u32> = pools.iter().enumerate().map(|(i, p)| (p.name.as_str(), i as u32)).collect();
        let mut held: Vec<Held> = services.into_iter().filter_map(|s| Held::of(s, &alloc, &index)).collect();
        held.shrink_to_fit();
        drop(index);
        drop(alloc);
        let names: Vec<Arc<str>> = pools.iter().map(|p| Arc::from(p.name.as_str())).collect();
        let bgp = Desired {
            l2: BTreeMap::new(),
            bgp: plan::bgp(&validated.config, &self.node, held.iter().map(|h| h.assigned(&names))),
        };
        for (peer, s) in &bgp.bgp {
            tracing::info!(%peer, routes = s.routes.len(), node = %self.node.name, "BGP session planned");
        }
        self.bgp_vips.clear();
        if !self.args.no_host_addresses && !bgp.bgp.is_empty() {
            let covered = |ip: &IpAddr| bgp.bgp.values().any(|b| b.routes.covers(*ip));
            self.bgp_vips.extend(held.iter().flat_map(Held::ips).filter(covered));
            self.bgp_vips.sort_unstable();
            self.bgp_vips.dedup();
            self.bgp_vips.shrink_to_fit();
        }
        if self.args.memberlist_key.is_some() {
            // In a group, which addresses this host answers for changes with the group: the
            // services are kept to work it out again.
            self.join_group().await?;
            // (In place: a Held and an Assigned are the same size.)
            self.assigned = held.into_iter().map(|h| h.assigned(&names)).collect();
            self.running = Some(validated.config);
            self.apply_l2().await?;
        } else {
            if self.nodes.keys().any(|n| *n != self.node.name) {
                tracing::warn!("the configuration lists other Nodes but --memberlist-key is not set: this host answers for every address it is selected for, as if alone");
            }
            let l2 = plan::l2(&validated.config, &self.node, held.iter().map(|h| h.assigned(&names)));
            drop(held);
            self.announce_l2(l2).await?;
            self.running = Some(validated.config);
        }
        self.bgp.reconcile(&bgp).await.map_err(Error::Announce)?;
        Ok(())
    }

    /// Writes the assignments to the state file, in key order; when it cannot be written, keeps
    /// them for the next reload.
    fn save_state(&mut self, services: &[service::Service], alloc: &Allocator) {
        let ips = |i: u32| alloc.assigned(&services[i as usize].key).unwrap_or_default();
        let mut order = key_order(services);
        order.retain(|&i| !ips(i).is_empty());
        let entries = order.iter().map(|&i| (services[i as usize].key.to_string(), ips(i)));
        let result = crate::state::save_entries(&self.args.state_file, entries);
        self.wrote_state = result.is_ok() && !order.is_empty();
        if let Err(e) = result {
            tracing::warn!(path = %self.args.state_file.display(), error = %e, "cannot write the state file; the assignments are kept in memory until it can be");
            let services = order.iter().map(|&i| (services[i as usize].key.to_string(), ips(i))).collect();
            self.unsaved = Some(State { services });
        }
    }

    /// Starts this host's membership once (its address from the flag or its Node entry), and
    /// keeps its seeds (the other Node entries and --peers) up to date.
    async fn join_group(&mut self) -> Result<()> {
        let port = self.args.memberlist_port;
        let me = self.node.name.clone();
        let mut seeds: Vec<SocketAddr> = self
            .nodes
            .iter()
            .filter(|(n, _)| **n != me)
            .filter_map(|(_, (_, ip))| ip.map(|ip| SocketAddr::new(ip, port)))
            .collect();
        seeds.extend(self.peers.iter().copied());
        if let Some(rt) = &mut self.group {
            rt.set_seeds(seeds);
            return Ok(());
        }
        let Some(ip) = self.args.memberlist_addr.or_else(|| self.nodes.get(&me).and_then(|n| n.1)) else {
            return Err(Error::Invalid(format!("--memberlist-key is set but this host's membership address is unknown: add a `kind: Node` entry named {me:?} with an InternalIP, or pass --memberlist-addr")));
        };
        let key = self.args.memberlist_key.clone().unwrap_or_default().into_bytes();
        let settings = group::Settings { name: me, addr: SocketAddr::new(ip, port), seeds, key };
        let rt = group::Runtime::start(settings).await.map_err(|e| Error::Invalid(format!("membership: {e}")))?;
        self.group = Some(rt);
        Ok(())
    }

    /// Works out, with the group, which addresses this host answers for in L2 mode now.
    async fn apply_l2(&mut self) -> Result<()> {
        let (Some(rt), Some(config)) = (self.group.as_mut(), self.running.as_ref()) else { return Ok(()) };
        let counted = rt.counted();
        let mut eligible: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
        let mut targets = BTreeMap::new();
        for name in &counted {
            let node = if *name == self.node.name {
                self.node.clone()
            } else {
                Node::new(name.clone(), self.nodes.get(name).map(|n| n.0.clone()).unwrap_or_default())
            };
            let l2 = plan::l2(config, &node, &self.assigned);
            for ip in l2.keys() {
                eligible.entry(*ip).or_default().push(name.as_str());
            }
            if *name == self.node.name {
                targets = l2;
            }
        }
        let mine = rt.decide(&eligible);
        let settled = rt.take_settled();
        targets.retain(|ip, _| mine.contains(ip));
        self.announce_l2(targets).await?;
        if !settled.is_empty() {
            tracing::info!(ips = ?settled, "another host has stopped answering for these: announcing them again");
            self.announcer.announce_again(&settled);
        }
        Ok(())
    }

    /// Answers for exactly `l2` in L2 mode (the host accepting traffic for each address
    /// before anyone is told to send it here).
    async fn announce_l2(&mut self, l2: BTreeMap<IpAddr, lbcore::announcer::L2Target>) -> Result<()> {
        let now: BTreeSet<IpAddr> = l2.keys().copied().collect();
        for ip in now.difference(&self.l2_now) {
            tracing::info!(%ip, node = %self.node.name, "announcing in L2 mode");
        }
        for ip in self.l2_now.difference(&now) {
            tracing::info!(%ip, node = %self.node.name, "no longer announcing in L2 mode");
        }
        if !self.args.no_host_addresses {
            self.host.sync(&now.iter().chain(&self.bgp_vips).copied().collect());
        }
        self.l2_now = now;
        self.announcer.reconcile(&Desired { l2, bgp: BTreeMap::new() }).await.map_err(Error::Announce)
    }

    async fn shutdown(&mut self) -> Result<()> {
        // Make before break: the group learns at once that this host leaves and the next
        // owners take its addresses (gratuitous ARP / unsolicited NA); this host stops
        // answering (it must not defend the addresses against them) but still accepts the
        // traffic clients send it until they have switched.
        let mut held = false;
        if let Some(rt) = self.group.take() {
            held = !rt.mine().is_empty();
            rt.leave().await;
        }
        self.bgp.shutdown().await.map_err(Error::Announce)?;
        self.announcer.shutdown().await.map_err(Error::Announce)?;
        if held {
            tokio::time::sleep(HANDOVER).await;
        }
        // With graceful restart the routers keep forwarding here for the restart time (we
        // advertise forwarding state as preserved), so the host keeps accepting the traffic.
        let graceful = self.running.as_ref().is_some_and(|c| c.peers.iter().any(|p| p.graceful_restart));
        if graceful {
            tracing::info!("graceful restart: keeping the service addresses on this host for the restart");
        } else if !self.args.no_host_addresses {
            self.host.clear();
        }
        tracing::info!("withdrawn everything; exiting");
        Ok(())
    }
}

/// Which services the state file has given addresses so far, and the status addresses it
/// replaced (a file given to `lb run` may carry `status`), so that a read that fails halfway
/// can be undone. A bit a service, and a record only where a status was replaced.
struct Applied {
    touched: Vec<u64>,
    replaced: Vec<(u32, service::StatusIps)>,
}

impl Applied {
    fn new(services: usize) -> Self {
        Applied { touched: vec![0; services.div_ceil(64)], replaced: Vec::new() }
    }

    /// Sets service `i`'s status addresses, keeping what it had before the first time.
    fn set(&mut self, services: &mut [service::Service], i: usize, ips: service::StatusIps) {
        let old = std::mem::replace(&mut services[i].status_ips, ips);
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.touched[word] & bit == 0 {
            self.touched[word] |= bit;
            if !old.is_empty() {
                self.replaced.push((i as u32, old));
            }
        }
    }

    /// Gives every service it set back the status addresses it had before.
    fn undo(self, services: &mut [service::Service]) {
        for (word, bits) in self.touched.iter().enumerate() {
            for b in (0..64).filter(|b| bits & (1 << b) != 0) {
                services[word * 64 + b].status_ips = service::StatusIps::default();
            }
        }
        for (i, old) in self.replaced {
            services[i as usize].status_ips = old;
        }
    }
}

/// The indices of `services` in the order of their keys as text ("namespace/name"), as the
/// state file has them. As u32 (400 kB for 100k services, not 800): no process holds 4 billion.
fn key_order(services: &[service::Service]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..services.len() as u32).collect();
    order.sort_by(|&a, &b| key_text(&services[a as usize].key).cmp(key_text(&services[b as usize].key)));
    order
}

/// A key as the text the state file has ("namespace/name"), octet by octet.
fn key_text(k: &service::ServiceKey) -> impl Iterator<Item = u8> + '_ {
    k.namespace.bytes().chain(std::iter::once(b'/')).chain(k.name.bytes())
}

/// A service as planning needs it once the allocator is gone: its request (for its labels)
/// and its addresses, each with the index of its pool in the configuration. 48 octets and no
/// heap allocation of its own (the request is shared).
struct Held {
    request: Arc<service::Request>,
    v4: Option<(Ipv4Addr, u32)>,
    v6: Option<(Ipv6Addr, u32)>,
}

impl Held {
    /// `s` with its addresses in `alloc` (`index` gives each pool's index by name); None
    /// when it has none.
    fn of(s: service::Service, alloc: &Allocator, index: &HashMap<&str, u32>) -> Option<Held> {
        let (mut v4, mut v6) = (None, None);
        for (ip, pool) in alloc.assignment(&s.key) {
            let Some(&p) = index.get(pool) else { continue };
            match ip {
                IpAddr::V4(a) => v4 = v4.or(Some((a, p))),
                IpAddr::V6(a) => v6 = v6.or(Some((a, p))),
            }
        }
        if v4.is_none() && v6.is_none() {
            return None;
        }
        // What restoring went by: the request, or the parts of a malformed one.
        let request = match s.request {
            Ok(r) => r,
            Err(m) => Arc::new(m.fallback),
        };
        Some(Held { request, v4, v6 })
    }

    /// Each address with its pool's index.
    fn pairs(&self) -> impl Iterator<Item = (IpAddr, u32)> + use<> {
        let v4 = self.v4.map(|(a, p)| (IpAddr::V4(a), p));
        v4.into_iter().chain(self.v6.map(|(a, p)| (IpAddr::V6(a), p)))
    }

    fn ips(&self) -> impl Iterator<Item = IpAddr> + use<> {
        self.pairs().map(|(ip, _)| ip)
    }

    /// The planners' view of it, given the pools' names.
    fn assigned(&self, names: &[Arc<str>]) -> Assigned {
        let ips = self.pairs().filter_map(|(ip, p)| Some((ip, names.get(p as usize)?.clone()))).collect();
        Assigned { labels: self.request.labels.clone(), ips }
    }
}

/// How long a leaving host keeps accepting traffic for its addresses after telling the
/// group, so that clients have switched to the next owner before it stops.
const HANDOVER: Duration = Duration::from_millis(100);

/// The BGP speaker, also accepting connections on `listen` (an address:port, or "off"). A
/// socket that cannot be bound is a warning: the speaker still connects to its peers.
pub(crate) fn bgp_announcer(listen: &str, gtsm: bool) -> Result<BgpAnnouncer> {
    let bgp = BgpAnnouncer::new();
    bgp.set_gtsm(gtsm);
    if listen != "off" {
        let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
            Error::Invalid(format!(
                "--bgp-listen {listen:?}: not an address:port (for example [::]:179 for both families, or off)"
            ))
        })?;
        if let Err(e) = bgp.listen(addr) {
            tracing::warn!(%addr, error = %e, "cannot listen for BGP connections; connecting to peers only");
        }
    }
    Ok(bgp)
}

/// Runs until SIGINT or SIGTERM. Every way out (a signal, an invalid first configuration, an
/// announcer failure) withdraws everything first.
pub async fn run(args: Args) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let settings = args.l2.settings()?;
    let flag_labels = parse_labels(&args.node_labels)?;
    let node = Node::new(args.node.clone().unwrap_or_else(host_name), flag_labels.clone());
    let peers = parse_peers(&args.peers, args.memberlist_port)?;
    if args.memberlist_key.as_ref().is_some_and(|k| k.len() < 16) {
        return Err(Error::Invalid("--memberlist-key must be at least 16 bytes".into()));
    }
    // Signals first: a SIGTERM during start-up must still withdraw, not kill the process.
    let sig = |k: SignalKind| signal(k).map_err(|e| Error::Invalid(format!("cannot install a signal handler: {e}")));
    let (mut term, mut int, mut hup) =
        (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?, sig(SignalKind::hangup())?);
    let announcer = L2Announcer::start(settings).map_err(Error::Announce)?;
    let bgp = bgp_announcer(&args.bgp_listen, args.bgp_gtsm)?;
    let mut me = Standalone {
        args,
        node,
        flag_labels,
        announcer,
        bgp,
        host: HostVips::default(),
        unsaved: None,
        wrote_state: false,
        running: None,
        seen: BTreeMap::new(),
        nodes: BTreeMap::new(),
        peers,
        group: None,
        assigned: Vec::new(),
        bgp_vips: Vec::new(),
        l2_now: BTreeSet::new(),
        metrics: None,
    };
    if let Some(addr) = me.args.metrics_addr {
        let registry = prometheus::Registry::new();
        me.metrics = Some(crate::metrics::SpeakerMetrics::new(&registry));
        let ready = crate::metrics::start(addr, &registry).await?;
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let result = serve(&mut me, &mut term, &mut int, &mut hup).await;
    let down = me.shutdown().await;
    result.and(down)
}

async fn serve(
    me: &mut Standalone,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
    hup: &mut tokio::signal::unix::Signal,
) -> Result<()> {
    tokio::select! {
        r = me.reload() => r?,
        _ = term.recv() => return Ok(()),
        _ = int.recv() => return Ok(()),
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                me.reload().await?;
            }
            replan = step(&mut me.group) => {
                if replan {
                    me.apply_l2().await?;
                }
            }
            _ = tick.tick() => {
                if let Some(m) = &me.metrics {
                    m.layer2(&me.announcer.counters());
                    m.bgp(&me.bgp.stats());
                }
                if fingerprint(&me.args.config) != me.seen {
                    tracing::info!("configuration files changed: reloading");
                    me.reload().await?;
                }
            }
        }
    }
}

/// The group's next event (never, without a group).
async fn step(g: &mut Option<group::Runtime>) -> bool {
    match g {
        Some(g) => g.step().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_read_that_fails_halfway_is_undone_to_the_statuses_before_it() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let mk = |name: &str, status: &[IpAddr]| service::Service {
            key: service::ServiceKey::new("ns", name),
            created: service::Created::UNKNOWN,
            request: Ok(Arc::default()),
            status_ips: status.into(),
        };
        let mut services: Vec<service::Service> = (0..70).map(|i| mk(&format!("s{i}"), &[])).collect();
        services[3].status_ips = [ip("192.0.2.3")][..].into(); // from the file's own `status`
        let before: Vec<service::StatusIps> = services.iter().map(|s| s.status_ips.clone()).collect();
        let mut applied = Applied::new(services.len());
        for i in [3, 65, 65, 7] {
            applied.set(&mut services, i, [ip("198.51.100.1"), ip("2001:db8::1")][..].into());
        }
        assert_eq!(&*services[65].status_ips, [ip("198.51.100.1"), ip("2001:db8::1")]);
        applied.undo(&mut services);
        let after: Vec<service::StatusIps> = services.iter().map(|s| s.status_ips.clone()).collect();
        assert_eq!(after, before);
    }

    #[test]
    fn peers() {
        let p =
            parse_peers(&["10.0.0.2".into(), " 10.0.0.3:8000".into(), "[fd00::1]:7".into(), "".into()], 7946).unwrap();
        let want: Vec<SocketAddr> =
            ["10.0.0.2:7946", "10.0.0.3:8000", "[fd00::1]:7"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(p, want);
        assert!(parse_peers(&["node-b".into()], 7946).unwrap_err().to_string().contains("node-b"));
    }

    #[test]
    fn node_labels() {
        let l = parse_labels("rack=r1, zone = a").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l["zone"], "a");
        assert!(parse_labels("rack").is_err());
        assert!(parse_labels("").unwrap().is_empty());
    }
}
