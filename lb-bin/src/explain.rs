//! `lb explain -c FILE... NAMESPACE/SERVICE`: why a Service has (or has not) an address,
//! and who announces it. The question users ask most in MetalLB's issues.
//!
//! It loads the files as `lb run` does, allocates as `lb check` does, then walks the same
//! decisions the planner makes (`lbcore::plan`), keeping the reason of each: every pool and
//! why it was or was not used, every advertisement and whether it covers each address,
//! every node and why it may or may not answer, the L2 owner, and the BGP peers with the
//! prefix and attributes each gets.
//!
//! From files (`-c`): nodes are the files' `kind: Node` entries (their labels, their `Ready`
//! condition when given, the exclusion label), or this node alone (`--node`,
//! `--node-labels`). As in `lb run`, every node counts as having a ready local endpoint.
//! With no claims known, the L2 owner is the first in the ranking.
//!
//! From a cluster (`--kubeconfig`): everything is read once from the API, as the speakers
//! see it. The addresses are the Service's status; a node must also have a live speaker
//! (its `lb-speaker-NODE` Lease renewed within 10 s) and, for `externalTrafficPolicy:
//! Local`, a ready endpoint; the L2 owner is the one the ServiceL2Status objects name, by the
//! speakers' own rule when several do (the oldest claim of a live speaker that may answer:
//! see [`crate::claims`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use lbcore::config::{self, selector::any_matches, Config, Labels};
use lbcore::ipam::batch;
use lbcore::plan;
use lbcore::service;
use serde::Serialize;

use crate::check::Format;
use crate::{Error, Result};

use crate::run::{host_name, parse_labels};
use crate::speaker::{node_unfit, serving, unfit_reason, Serving};

/// Arguments of `lb explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A configuration file or directory; repeat for more.
    #[arg(short = 'c', long = "config", value_name = "FILE|DIR", required_unless_present = "kubeconfig")]
    pub config: Vec<PathBuf>,
    /// Read a live cluster instead of files.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the metallb.io objects and the speakers' Leases (with --kubeconfig).
    #[arg(long, env = "LB_NAMESPACE", default_value = "metallb-system")]
    pub namespace: String,
    /// The Service, as NAMESPACE/NAME (NAME alone: namespace `default`).
    #[arg(value_name = "NAMESPACE/SERVICE")]
    pub service: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Format,
    /// This node's name, when the files list no `kind: Node` (default: the host name).
    #[arg(long, env = "LB_NODE")]
    pub node: Option<String>,
    /// This node's labels, for nodeSelectors: k=v,k2=v2.
    #[arg(long, env = "LB_NODE_LABELS", default_value = "")]
    pub node_labels: String,
    /// Serve only services of this spec.loadBalancerClass (default: services without one).
    #[arg(long, env = "LB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// As the speakers' flag: nodes labelled exclude-from-external-load-balancers count too.
    #[arg(long = "ignore-exclude-lb", env = "LB_IGNORE_EXCLUDE_LB")]
    pub ignore_exclude_lb: bool,
}

/// A verdict with its reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The object (pool, advertisement, node, peer) it is about.
    pub name: String,
    /// Whether it applies.
    pub ok: bool,
    /// Why.
    pub why: String,
}

/// How one address is announced.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AddressView {
    /// The address.
    pub ip: String,
    /// Its pool.
    pub pool: String,
    /// L2Advertisements, and whether each covers the address.
    pub l2_advertisements: Vec<Verdict>,
    /// Nodes, and whether each may answer ARP/NDP for it.
    pub l2_nodes: Vec<Verdict>,
    /// The node that answers, if any.
    pub l2_owner: Option<String>,
    /// BGPAdvertisements, and whether each covers the address.
    pub bgp_advertisements: Vec<Verdict>,
    /// Nodes, and whether each announces a route for it (to which peers, or why to none).
    pub bgp_nodes: Vec<Verdict>,
    /// Peers that get a route for it: "peer from node: prefix (attributes)".
    pub bgp_routes: Vec<String>,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Explanation {
    /// NAMESPACE/NAME.
    pub service: String,
    /// Whether lb handles it at all, and if not why.
    pub handled: Verdict,
    /// Its addresses, and what the allocator said.
    pub addresses: Vec<String>,
    /// Why it has no (or not every requested) address.
    pub error: Option<String>,
    /// A note from the allocator.
    pub note: Option<String>,
    /// Every pool, and whether the Service may take addresses from it.
    pub pools: Vec<Verdict>,
    /// Per address: who announces it.
    pub announce: Vec<AddressView>,
    /// What the speakers report they do now (from a cluster: ServiceL2Status and
    /// ServiceBGPStatus), to compare with what the configuration says.
    pub reported: Vec<String>,
    /// lb's Events on the Service (from a cluster), oldest first: "TYPE REASON (FROM): NOTE".
    pub events: Vec<String>,
}

/// A node, and why it cannot serve this Service at all, if it cannot.
struct NodeInfo {
    node: plan::Node,
    unfit: Option<String>,
}

fn split_key(s: &str) -> (String, String) {
    match s.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => ("default".to_string(), s.to_string()),
    }
}

/// An invalid configuration: every problem, then what keeps running meanwhile.
fn invalid(problems: Vec<config::Diagnostic>, meanwhile: &str) -> Error {
    let mut lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.push(format!("the configuration is invalid ({} problem(s)): {meanwhile}", problems.len()));
    Error::Invalid(lines.join("\n"))
}

/// Works out the explanation from files.
pub fn explain(args: &Args) -> Result<Explanation> {
    let (ns, name) = split_key(&args.service);
    let mut res = config::load_paths(&args.config);
    let nodes: Vec<NodeInfo> = if res.nodes.is_empty() {
        let host = args.node.clone().unwrap_or_else(host_name);
        let labels = parse_labels(&args.node_labels)?;
        let unfit = unfit_reason(&labels, args.ignore_exclude_lb, None, Some("True"));
        vec![NodeInfo { unfit, node: plan::Node::new(host, labels) }]
    } else {
        res.nodes
            .iter()
            .map(|n| {
                let cond =
                    |t: &str| n.object.status.conditions.iter().find(|c| c.type_ == t).map(|c| c.status.as_str());
                // A file's node without a Ready condition counts as ready (standalone hosts
                // seldom say).
                let ready = Some(cond("Ready").unwrap_or("True"));
                let labels = &n.object.metadata.labels;
                NodeInfo {
                    node: plan::Node::new(n.object.metadata.name.clone().unwrap_or_default(), labels.clone()),
                    unfit: unfit_reason(labels, args.ignore_exclude_lb, cond("NetworkUnavailable"), ready),
                }
            })
            .collect()
    };
    let validated = config::validate(&res).map_err(|d| {
        invalid(d, "`lb run` keeps serving its last valid configuration when a reload is invalid; at start it refuses")
    })?;
    let services = service::load_balancer_services(&mut res).map_err(Error::Config)?;
    build(&validated.config, &services, &ns, &name, args.lb_class.as_deref(), &nodes, &BTreeMap::new())
}

/// The explanation for `ns/name` among `services`: `nodes` with their fitness for this
/// Service; `claims` the nodes claiming each address in L2 mode, oldest claim first.
fn build(
    config: &Config,
    services: &[service::Service],
    ns: &str,
    name: &str,
    class: Option<&str>,
    nodes: &[NodeInfo],
    claims: &BTreeMap<IpAddr, Vec<String>>,
) -> Result<Explanation> {
    let key = format!("{ns}/{name}");
    let mut out = Explanation { service: key.clone(), ..Default::default() };
    let Some(index) = services.iter().position(|s| *s.key.namespace == *ns && *s.key.name == *name) else {
        out.handled = Verdict {
            name: key,
            ok: false,
            why: "no Service of type LoadBalancer by this name in the files (lb only handles type LoadBalancer)".into(),
        };
        return Ok(out);
    };
    let svc = &services[index];
    if svc.class() != class {
        let theirs = svc.class().unwrap_or("none");
        let ours = class.unwrap_or("none");
        out.handled = Verdict {
            name: key,
            ok: false,
            why: format!("its spec.loadBalancerClass is {theirs:?}, and lb serves {ours:?} (--lb-class)"),
        };
        return Ok(out);
    }
    out.handled = Verdict { name: key, ok: true, why: "a LoadBalancer Service of lb's class".into() };
    let (alloc, outcomes) = batch::assign_all(&config.pools, services, class);
    let held = alloc.assignment(&svc.key);
    out.addresses = held.iter().map(|(ip, _)| ip.to_string()).collect();
    out.error = outcomes.error(index).map(str::to_string);
    out.note = outcomes.note(index).map(str::to_string);
    let used: Vec<String> = held.iter().map(|(_, p)| p.to_string()).collect();
    out.pools = pool_verdicts(config, svc, &used);
    let request = svc.restore_request();
    for (ip, pool) in &held {
        out.announce.push(announce(
            config,
            nodes,
            &request.labels,
            *ip,
            pool,
            claims.get(ip).map(Vec::as_slice).unwrap_or_default(),
        ));
    }
    Ok(out)
}

fn pool_verdicts(config: &Config, svc: &service::Service, used: &[String]) -> Vec<Verdict> {
    let r = svc.restore_request();
    config
        .pools
        .iter()
        .map(|p| {
            let (ok, why) = if used.contains(&p.name) {
                (true, "its address comes from here".to_string())
            } else if r.pool.as_deref().is_some_and(|want| want != p.name) {
                (false, format!("the Service asks for pool {:?} (metallb.io/address-pool)", r.pool.as_deref().unwrap_or("")))
            } else if !r.ips.is_empty() && !r.ips.iter().any(|ip| p.ranges.iter().any(|range| range.contains(*ip))) {
                (false, "none of the addresses the Service asks for is in it".to_string())
            } else if !p.auto_assign && r.pool.is_none() && r.ips.is_empty() {
                (false, "autoAssign is false, and the Service does not ask for it by name or address".to_string())
            } else if p.allocation.as_ref().is_some_and(|a| !a.admits(&svc.key.namespace, &r.namespace_labels, &r.labels)) {
                (false, "its serviceAllocation (namespaces, namespaceSelectors, serviceSelectors) does not admit the Service".to_string())
            } else if used.is_empty() {
                (false, "it admits the Service, but the allocator found no address for it here (the reason is above)".to_string())
            } else {
                (false, "it admits the Service, but another pool came first (priority, then name), or it had no free address of the family".to_string())
            };
            Verdict { name: p.name.clone(), ok, why }
        })
        .collect()
}

fn announce(
    config: &Config,
    nodes: &[NodeInfo],
    labels: &Labels,
    ip: IpAddr,
    pool_name: &str,
    claims: &[String],
) -> AddressView {
    let mut v = AddressView { ip: ip.to_string(), pool: pool_name.to_string(), ..Default::default() };
    let Some(pool) = config.pool(pool_name) else { return v };
    if !config.is_advertised(pool) {
        v.l2_advertisements.push(Verdict {
            name: "(none)".into(),
            ok: false,
            why: format!("no L2Advertisement or BGPAdvertisement selects pool {pool_name}: the address is assigned but nobody announces it"),
        });
    }
    // L2: advertisements, then nodes.
    let mut l2_nodes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for adv in &config.l2_advertisements {
        let (ok, why) = if !adv.pools.selects(pool) {
            (false, format!("does not select pool {pool_name}"))
        } else if !any_matches(&adv.service_selectors, labels) {
            (false, "its serviceSelectors do not match the Service's labels".to_string())
        } else {
            for n in nodes.iter().filter(|n| any_matches(&adv.node_selectors, &n.node.labels)) {
                l2_nodes.entry(n.node.name.clone()).or_default().push(adv.name.clone());
            }
            let ifs = if adv.interfaces.is_empty() {
                "every suitable interface".to_string()
            } else {
                adv.interfaces.join(", ")
            };
            (true, format!("covers it, on {ifs}"))
        };
        v.l2_advertisements.push(Verdict { name: adv.name.clone(), ok, why });
    }
    let mut eligible: Vec<&str> = Vec::new();
    for n in nodes {
        let name = n.node.name.as_str();
        let (ok, why) = if let Some(unfit) = &n.unfit {
            (false, unfit.clone())
        } else if let Some(advs) = l2_nodes.get(name) {
            eligible.push(name);
            (true, format!("selected by {}", advs.join(", ")))
        } else if v.l2_advertisements.iter().any(|a| a.ok) {
            (false, "no L2Advertisement that covers the address selects it (nodeSelectors)".to_string())
        } else {
            (false, "no L2Advertisement covers the address".to_string())
        };
        v.l2_nodes.push(Verdict { name: name.to_string(), ok, why });
    }
    // As the speakers decide: the oldest claim of a node that may answer keeps it.
    let owner = claims.iter().find(|c| eligible.contains(&c.as_str()));
    v.l2_owner = plan::owner(ip, &eligible, owner.map(String::as_str)).map(str::to_string);
    for c in claims.iter().filter(|c| !eligible.contains(&c.as_str())) {
        v.l2_nodes.push(Verdict {
            name: c.clone(),
            ok: false,
            why: "claims the address (ServiceL2Status) but may not answer for it: it will be moved".into(),
        });
    }
    // BGP.
    for adv in &config.bgp_advertisements {
        let (ok, why) = if !adv.pools.selects(pool) {
            (false, format!("does not select pool {pool_name}"))
        } else if !any_matches(&adv.service_selectors, labels) {
            (false, "its serviceSelectors do not match the Service's labels".to_string())
        } else {
            let peers = if adv.peers.is_empty() {
                "every peer".to_string()
            } else {
                adv.peers.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            (true, format!("covers it, to {peers}"))
        };
        v.bgp_advertisements.push(Verdict { name: adv.name.clone(), ok, why });
    }
    let assigned = [plan::Assigned { labels: labels.clone(), ips: vec![(ip, pool_name.into())] }];
    let covering: Vec<_> = config
        .bgp_advertisements
        .iter()
        .filter(|a| a.pools.selects(pool) && any_matches(&a.service_selectors, labels))
        .collect();
    for n in nodes {
        let name = n.node.name.clone();
        if let Some(unfit) = &n.unfit {
            v.bgp_nodes.push(Verdict { name, ok: false, why: unfit.clone() });
            continue;
        }
        let sessions = plan::bgp(config, &n.node, &assigned);
        let covered: Vec<(&str, Option<String>)> = sessions
            .iter()
            .filter(|(_, s)| s.routes.covers(ip))
            .map(|(p, s)| (p.as_str(), announcer_bgp::peer_problem(&s.peer)))
            .collect();
        let to: Vec<&str> = covered.iter().filter(|(_, problem)| problem.is_none()).map(|(p, _)| *p).collect();
        let refused: Vec<String> =
            covered.iter().filter_map(|(p, problem)| Some(format!("{p}: {}", problem.as_ref()?))).collect();
        let (ok, why) = if !to.is_empty() {
            let mut why = format!("announces it to {}", to.join(", "));
            if !refused.is_empty() {
                why.push_str(&format!("; not to {} (the speaker refuses the peer)", refused.join("; ")));
            }
            (true, why)
        } else if !refused.is_empty() {
            (false, format!("its peers are refused by the speaker: {}", refused.join("; ")))
        } else if covering.is_empty() {
            (false, "no BGPAdvertisement covers the address".to_string())
        } else if !covering.iter().any(|a| any_matches(&a.node_selectors, &n.node.labels)) {
            (false, "no BGPAdvertisement that covers the address selects it (nodeSelectors)".to_string())
        } else if !config.peers.iter().any(|p| any_matches(&p.node_selectors, &n.node.labels)) {
            (false, "no BGPPeer peers from it (the peers' nodeSelectors)".to_string())
        } else {
            (false, "the advertisements' peers lists name none of the peers it has".to_string())
        };
        v.bgp_nodes.push(Verdict { name, ok, why });
        for (peer, session) in sessions {
            for (net, attrs) in &session.routes {
                if !net.contains(&ip) {
                    continue;
                }
                let mut extra = Vec::new();
                if !attrs.communities.is_empty() {
                    let c: Vec<String> = attrs.communities.iter().map(ToString::to_string).collect();
                    extra.push(format!("communities {}", c.join(" ")));
                }
                if let Some(lp) = attrs.local_pref {
                    extra.push(format!("local-pref {lp}"));
                }
                let attrs = if extra.is_empty() { String::new() } else { format!(" ({})", extra.join(", ")) };
                v.bgp_routes.push(format!("{peer} from {}: {}{attrs}", n.node.name, IpNet::trunc(&net)));
            }
        }
    }
    v
}

impl Explanation {
    /// Writes it for people (aligned, no colours) or as JSON.
    pub fn write(&self, out: &mut impl Write, format: Format) -> Result<()> {
        self.write_styled(out, format, false)
    }

    /// As [`Explanation::write`], with "yes" in green and "no" in red when `color` (for a
    /// terminal: the caller checks that stdout is one and `NO_COLOR` is unset).
    pub fn write_styled(&self, out: &mut impl Write, format: Format, color: bool) -> Result<()> {
        if format == Format::Json {
            serde_json::to_writer_pretty(&mut *out, self).map_err(|e| Error::Io(e.into()))?;
            writeln!(out)?;
            return Ok(());
        }
        writeln!(out, "Service {}", self.service)?;
        if !self.handled.ok {
            writeln!(out, "  not handled by lb: {}", self.handled.why)?;
            return Ok(());
        }
        if self.addresses.is_empty() {
            writeln!(out, "  no address: {}", self.error.as_deref().unwrap_or("(no reason given)"))?;
        } else {
            writeln!(out, "  addresses: {}", self.addresses.join(", "))?;
            if let Some(e) = &self.error {
                writeln!(out, "  but: {e}")?;
            }
        }
        if let Some(n) = &self.note {
            writeln!(out, "  note: {n}")?;
        }
        section(out, "Pools", &self.pools, color)?;
        if !self.reported.is_empty() {
            writeln!(out, "Reported by the speakers:")?;
            for r in &self.reported {
                writeln!(out, "  {r}")?;
            }
        }
        if !self.events.is_empty() {
            writeln!(out, "Events from lb (oldest first):")?;
            for e in &self.events {
                writeln!(out, "  {e}")?;
            }
        }
        for a in &self.announce {
            writeln!(out, "\nAddress {} (pool {})", a.ip, a.pool)?;
            section(out, "  L2Advertisements", &a.l2_advertisements, color)?;
            section(out, "  Nodes (L2)", &a.l2_nodes, color)?;
            match &a.l2_owner {
                Some(o) => writeln!(
                    out,
                    "  answers ARP/NDP: {o} (first in the ranking; a running group keeps its current owner)"
                )?,
                None => writeln!(out, "  answers ARP/NDP: nobody")?,
            }
            section(out, "  BGPAdvertisements", &a.bgp_advertisements, color)?;
            if !bgp_plays_no_part(a) {
                section(out, "  Nodes (BGP)", &a.bgp_nodes, color)?;
            }
            if a.bgp_routes.is_empty() {
                writeln!(out, "  BGP: announced to no peer")?;
            } else {
                writeln!(out, "  BGP routes:")?;
                for r in &a.bgp_routes {
                    writeln!(out, "    {r}")?;
                }
            }
        }
        Ok(())
    }
}

/// Whether BGP plays no part at all for the address (no advertisement covers it), in
/// which case the per-node BGP lines would only repeat that.
fn bgp_plays_no_part(a: &AddressView) -> bool {
    !a.bgp_advertisements.iter().any(|v| v.ok) && a.bgp_routes.is_empty()
}

fn section(out: &mut impl Write, title: &str, items: &[Verdict], color: bool) -> Result<()> {
    if items.is_empty() {
        writeln!(out, "{title}: none")?;
        return Ok(());
    }
    writeln!(out, "{title}:")?;
    let indent = " ".repeat(title.len() - title.trim_start().len() + 2);
    let width = items.iter().map(|v| v.name.len()).max().unwrap_or(0);
    for v in items {
        let mark = match (v.ok, color) {
            (true, false) => "yes",
            (false, false) => "no ",
            (true, true) => "\x1b[32myes\x1b[0m",
            (false, true) => "\x1b[31mno \x1b[0m",
        };
        writeln!(out, "{indent}{mark}  {:<width$}  {}", v.name, v.why)?;
    }
    Ok(())
}

/// The last 20 Events lb's controller and speakers published about Service `ns/name`, oldest
/// first (none when they cannot be read).
async fn service_events(client: &kube::Client, ns: &str, name: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    let api: kube::Api<Event> = kube::Api::namespaced(client.clone(), ns);
    let Ok(list) = api.list(&Default::default()).await else { return Vec::new() };
    let mut events: Vec<(String, String)> = list
        .items
        .into_iter()
        .filter(|e| {
            let r = e.regarding.as_ref();
            r.and_then(|r| r.kind.as_deref()) == Some("Service")
                && r.and_then(|r| r.name.as_deref()) == Some(name)
                && e.reporting_controller.as_deref().is_some_and(|c| c.starts_with("lb-"))
        })
        .map(|e| {
            let at = e
                .event_time
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()))
                .unwrap_or_default();
            let from = e.reporting_instance.as_deref().or(e.reporting_controller.as_deref()).unwrap_or("?");
            let line = format!(
                "{} {} ({from}): {}",
                e.type_.as_deref().unwrap_or("Normal"),
                e.reason.as_deref().unwrap_or("?"),
                e.note.as_deref().unwrap_or("")
            );
            (at, line)
        })
        .collect();
    // By instant, not by text: fractions of a second are written with varying digits.
    events.sort_by_key(|(at, line)| (lbcore::service::parse_rfc3339(at).unwrap_or_default(), line.clone()));
    let skip = events.len().saturating_sub(20);
    events.into_iter().skip(skip).map(|(_, l)| l).collect()
}

/// Works out the explanation from a live cluster, read once as the speakers see it.
pub async fn explain_cluster(args: &Args, kubeconfig: &std::path::Path) -> Result<Explanation> {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::{Namespace, Service};
    use kube::api::Api;

    use crate::cluster::{Stores, Update};

    let bad = |e: String| Error::Invalid(format!("--kubeconfig {}: {e}", kubeconfig.display()));
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| bad(e.to_string()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.map_err(|e| bad(e.to_string()))?;
    let client = kube::Client::try_from(cfg).map_err(|e| bad(e.to_string()))?;
    let ns = args.namespace.as_str();
    let mut stores = Stores::default();
    let mut watches = stores.watch_config(&client, ns);
    watches.push(stores.watch(Api::<Namespace>::all(client.clone()), Update::Namespace));
    watches.push(stores.watch(Api::<Service>::all(client.clone()), Update::Service));
    watches.push(stores.watch(Api::all(client.clone()), Update::Node));
    watches.push(stores.watch(Api::all(client.clone()), Update::Slice));
    watches.push(stores.watch(Api::namespaced(client.clone(), ns), Update::L2Status));
    watches.push(stores.watch(Api::namespaced(client.clone(), ns), Update::BgpStatus));
    watches.push(stores.watch(Api::namespaced(client.clone(), ns), Update::Lease));
    let mut updates = futures::stream::select_all(watches);
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !stores.ready() {
            match updates.next().await {
                Some(u) => stores.apply(u),
                None => break,
            }
        }
    });
    if read.await.is_err() || !stores.ready() {
        return Err(bad("could not read every kind lb needs within 30 s (RBAC? the API server?)".into()));
    }
    drop(updates);

    let mut res = stores.resources();
    let validated = config::validate(&res).map_err(|d| {
        invalid(
            d,
            "the controller and the speakers keep running the last valid configuration, if one ever loaded, \
             until it is fixed (their logs say so; metallb_k8s_client_config_stale_bool is 1, and \
             metallb_k8s_client_config_loaded_bool says whether one loaded); what they do now cannot be \
             worked out from this one",
        )
    })?;
    let services = service::load_balancer_services(&mut res).map_err(Error::Config)?;
    let (svc_ns, svc_name) = split_key(&args.service);

    let k8s_svc = stores.services.items.values().find(|s| {
        s.metadata.namespace.as_deref() == Some(svc_ns.as_str())
            && s.metadata.name.as_deref() == Some(svc_name.as_str())
    });
    let status_ips: Vec<IpAddr> = k8s_svc
        .map(crate::controller::status_ips)
        .unwrap_or_default()
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    let ours = |ns: &Option<String>, name: &Option<String>| {
        ns.as_deref() == Some(svc_ns.as_str()) && name.as_deref() == Some(svc_name.as_str())
    };
    let mut reported = Vec::new();
    for st in stores.l2_statuses.items.values() {
        let Some(s) = &st.status else { continue };
        if let (true, Some(node)) = (ours(&s.service_namespace, &s.service_name), &s.node) {
            reported.push(format!("{node} answers ARP/NDP for it (ServiceL2Status)"));
        }
    }
    // The claims in force on each of the Service's addresses, oldest first, as the speakers
    // order them (a claim from before its speaker's start does not count). As for the
    // speakers, a claim on a shared address counts whichever of its Services it was made for.
    let starts = crate::claims::starts(stores.leases.items.values());
    let starts = starts.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let mut per_ip: BTreeMap<IpAddr, Vec<(crate::claims::ClaimAge, String)>> = BTreeMap::new();
    for c in crate::claims::in_force(stores.l2_statuses.items.values(), &starts) {
        let Some(holder) = stores.services.items.get(&(c.namespace.to_string(), c.name.to_string())) else { continue };
        for ip in crate::controller::status_ips(holder).iter().filter_map(|ip| ip.parse::<IpAddr>().ok()) {
            if status_ips.contains(&ip) {
                per_ip.entry(ip).or_default().push((c.age, c.node.to_string()));
            }
        }
    }
    let claims: BTreeMap<IpAddr, Vec<String>> = per_ip
        .into_iter()
        .map(|(ip, mut c)| {
            c.sort();
            (ip, c.into_iter().map(|(_, n)| n).collect())
        })
        .collect();
    for st in stores.bgp_statuses.items.values() {
        let Some(s) = &st.status else { continue };
        if ours(&s.service_namespace, &s.service_name) {
            let node = s.node.as_deref().unwrap_or("?");
            reported.push(format!("{node} announces it over BGP to {} (ServiceBGPStatus)", s.peers.join(", ")));
        }
    }
    reported.sort();
    let local =
        k8s_svc.and_then(|s| s.spec.as_ref()).and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local");
    let Serving { any: any_endpoint, nodes: ready_endpoints } =
        serving(stores.slices.items.values(), &svc_ns, &svc_name);
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let nodes: Vec<NodeInfo> = stores
        .nodes
        .items
        .values()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let labels: Labels = n.metadata.labels.clone().unwrap_or_default();
            let lease = stores
                .leases
                .items
                .values()
                .find(|l| l.metadata.name.as_deref() == Some(&format!("lb-speaker-{name}")));
            let renewed = lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| now - t.0.as_second()));
            let unfit = node_unfit(n, args.ignore_exclude_lb).or_else(|| match renewed {
                None => Some("no speaker runs there (no Lease lb-speaker-NODE)".to_string()),
                Some(age) if age > 10 => Some(format!("its speaker's Lease was last renewed {age} s ago")),
                // As MetalLB, a Service with no endpoint that can serve is announced nowhere.
                Some(_) if !any_endpoint => {
                    Some("no endpoint of the Service is ready or serving, on any node".to_string())
                }
                Some(_) if local && !ready_endpoints.contains(&name) => Some(
                    "externalTrafficPolicy: Local, and no endpoint of the Service that is ready or serving there"
                        .to_string(),
                ),
                Some(_) => None,
            });
            NodeInfo { node: plan::Node::new(name, labels), unfit }
        })
        .collect();
    // The speakers read a BGPPeer's passwordSecret from their namespace; explain may not be
    // allowed to read Secrets, and does not check it: such a peer counts as resolved.
    let mut config = validated.config;
    for p in &mut config.peers {
        if let Some(config::Password::Secret { .. }) = p.password {
            p.password = Some(config::Password::Inline(String::new()));
        }
    }
    let mut out = build(&config, &services, &svc_ns, &svc_name, args.lb_class.as_deref(), &nodes, &claims)?;
    out.reported = reported;
    out.events = service_events(&client, &svc_ns, &svc_name).await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_aligned_and_coloured_only_when_asked() {
        let items = [
            Verdict { name: "lan".into(), ok: true, why: "here".into() },
            Verdict { name: "reserved".into(), ok: false, why: "autoAssign".into() },
        ];
        let mut plain = Vec::new();
        section(&mut plain, "Pools", &items, false).unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), "Pools:\n  yes  lan       here\n  no   reserved  autoAssign\n");
        let mut coloured = Vec::new();
        section(&mut coloured, "Pools", &items, true).unwrap();
        let text = String::from_utf8(coloured).unwrap();
        assert!(text.contains("\x1b[32myes\x1b[0m  lan       here"), "{text:?}");
        assert!(text.contains("\x1b[31mno \x1b[0m  reserved  autoAssign"), "{text:?}");
    }
}
