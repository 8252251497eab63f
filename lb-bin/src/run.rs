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

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use announcer_bgp::BgpAnnouncer;
use announcer_l2::{L2Announcer, L2Settings};
use lbcore::announcer::{Announcer, Desired};
use lbcore::config::{self, duration, Config, Labels};
use lbcore::ipam::batch;
use lbcore::plan::{self, Assigned, Node};
use lbcore::service;

use crate::check::Report;
use crate::host::HostVips;
use crate::state::State;
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
    /// Do not put the announced addresses on the local `lb-vips` dummy interface.
    #[arg(long, env = "LB_NO_HOST_ADDRESSES")]
    pub no_host_addresses: bool,
    /// L2 settings.
    #[command(flatten)]
    pub l2: L2Flags,
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
        let mut s = L2Settings {
            reply_rate: self.reply_rate,
            rescan: dur("interface-rescan", &self.rescan)?,
            ..Default::default()
        };
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

fn parse_labels(s: &str) -> Result<Labels> {
    let mut labels = Labels::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) =
            pair.split_once('=').ok_or_else(|| Error::Invalid(format!("--node-labels: {pair:?} is not key=value")))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(labels)
}

fn host_name() -> String {
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
    announcer: L2Announcer,
    bgp: BgpAnnouncer,
    host: HostVips,
    state: State,
    running: Option<Config>,
    seen: BTreeMap<PathBuf, Option<SystemTime>>,
}

impl Standalone {
    /// Loads the configuration and converges to it. An invalid configuration is an error at
    /// start; later it is reported and the running one stays.
    async fn reload(&mut self) -> Result<()> {
        self.seen = fingerprint(&self.args.config);
        let mut res = config::load_paths(&self.args.config);
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
        for s in &mut services {
            if let Some(ips) = self.state.services.get(&s.key.to_string()) {
                s.status_ips.clone_from(ips);
            }
        }
        let (alloc, outcomes) = batch::assign_all(&validated.config.pools, &services, self.args.lb_class.as_deref());
        let pool_stats = alloc.stats();
        drop(alloc);
        let mut assigned = Vec::new();
        let mut pool_names: BTreeMap<&str, Arc<str>> = BTreeMap::new();
        self.state.services.clear();
        for (s, o) in services.iter().zip(&outcomes) {
            if !o.ips.is_empty() {
                self.state.services.insert(s.key.to_string(), o.ips.clone());
                let labels = s.restore_request().labels.clone();
                let pools = o.pools.iter().map(|p| pool_names.entry(p).or_insert_with(|| p.as_str().into()).clone());
                assigned.push(Assigned { labels, ips: o.ips.iter().copied().zip(pools).collect() });
            }
        }
        drop(pool_names);
        if let Err(e) = self.state.save(&self.args.state_file) {
            tracing::warn!(path = %self.args.state_file.display(), error = %e, "cannot write the state file");
        }
        let report = Report::new(pool_stats, &services, outcomes, &validated.warnings);
        drop(services);
        if let Err(e) = report.write(&mut std::io::stdout().lock(), false) {
            tracing::warn!(error = %e, "cannot print the assignment table");
        }
        drop(report);
        let desired = Desired {
            l2: plan::l2(&validated.config, &self.node, &assigned),
            bgp: plan::bgp(&validated.config, &self.node, &assigned),
        };
        for ip in desired.l2.keys() {
            tracing::info!(%ip, node = %self.node.name, "announcing in L2 mode");
        }
        for (peer, s) in &desired.bgp {
            tracing::info!(%peer, routes = s.routes.len(), node = %self.node.name, "BGP session planned");
        }
        // The host accepts traffic for an address before anyone is told to send it here:
        // every address answered in L2 mode or covered by a route announced over BGP.
        if !self.args.no_host_addresses {
            let mut vips: BTreeSet<IpAddr> = desired.l2.keys().copied().collect();
            for a in &assigned {
                for (ip, _) in &a.ips {
                    if desired.bgp.values().any(|s| covered(&s.routes, *ip)) {
                        vips.insert(*ip);
                    }
                }
            }
            self.host.sync(&vips);
        }
        self.announcer.reconcile(&desired).await.map_err(Error::Announce)?;
        self.bgp.reconcile(&desired).await.map_err(Error::Announce)?;
        self.running = Some(validated.config);
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<()> {
        self.bgp.shutdown().await.map_err(Error::Announce)?;
        self.announcer.shutdown().await.map_err(Error::Announce)?;
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

/// Whether `ip` is inside one of the announced prefixes.
fn covered(routes: &BTreeMap<IpNet, lbcore::announcer::RouteAttrs>, ip: IpAddr) -> bool {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (0..=max).rev().any(|len| IpNet::new(ip, len).is_ok_and(|n| routes.contains_key(&n.trunc())))
}

/// The BGP speaker, also accepting connections on `listen` (an address:port, or "off"). A
/// socket that cannot be bound is a warning: the speaker still connects to its peers.
pub(crate) fn bgp_announcer(listen: &str) -> Result<BgpAnnouncer> {
    let bgp = BgpAnnouncer::new();
    if listen != "off" {
        let addr: std::net::SocketAddr =
            listen.parse().map_err(|_| Error::Invalid(format!("--bgp-listen {listen:?}: not an address:port")))?;
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
    let node = Node::new(args.node.clone().unwrap_or_else(host_name), parse_labels(&args.node_labels)?);
    // Signals first: a SIGTERM during start-up must still withdraw, not kill the process.
    let sig = |k: SignalKind| signal(k).map_err(|e| Error::Invalid(format!("cannot install a signal handler: {e}")));
    let (mut term, mut int, mut hup) =
        (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?, sig(SignalKind::hangup())?);
    let announcer = L2Announcer::start(settings).map_err(Error::Announce)?;
    let bgp = bgp_announcer(&args.bgp_listen)?;
    let state = State::load(&args.state_file);
    let mut me = Standalone {
        args,
        node,
        announcer,
        bgp,
        host: HostVips::default(),
        state,
        running: None,
        seen: BTreeMap::new(),
    };
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
            _ = tick.tick() => {
                if fingerprint(&me.args.config) != me.seen {
                    tracing::info!("configuration files changed: reloading");
                    me.reload().await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_labels() {
        let l = parse_labels("rack=r1, zone = a").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l["zone"], "a");
        assert!(parse_labels("rack").is_err());
        assert!(parse_labels("").unwrap().is_empty());
    }
}
