//! `lb explain -c FILE... NAMESPACE/SERVICE`: why a Service has (or has not) an address,
//! and who announces it. The question users ask most in MetalLB's issues.
//!
//! It loads the files as `lb run` does, allocates as `lb check` does, then walks the same
//! decisions the planner makes (`lbcore::plan`), keeping the reason of each: every pool and
//! why it was or was not used, every advertisement and whether it covers each address,
//! every node and why it may or may not answer, the L2 owner, and the BGP peers with the
//! prefix and attributes each gets.
//!
//! Nodes are the files' `kind: Node` entries (their labels, their `Ready` condition when
//! given, the exclusion label), or this node alone (`--node`, `--node-labels`). As in `lb
//! run`, every node counts as having a ready local endpoint. With no claims known, the L2
//! owner is the first in the ranking; a running group keeps its current owner instead.
//! Reading a live cluster (`--kubeconfig`) is not there yet.

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

const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Arguments of `lb explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A configuration file or directory; repeat for more.
    #[arg(short = 'c', long = "config", required = true, value_name = "FILE|DIR")]
    pub config: Vec<PathBuf>,
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
}

struct NodeInfo {
    node: plan::Node,
    ready: Option<bool>,
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

/// Works out the explanation.
pub fn explain(args: &Args) -> Result<Explanation> {
    let (ns, name) = match args.service.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => ("default".to_string(), args.service.clone()),
    };
    let mut res = config::load_paths(&args.config);
    let nodes: Vec<NodeInfo> = if res.nodes.is_empty() {
        let host = args.node.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
        });
        vec![NodeInfo { node: plan::Node::new(host, parse_labels(&args.node_labels)?), ready: None }]
    } else {
        res.nodes
            .iter()
            .map(|n| NodeInfo {
                node: plan::Node::new(
                    n.object.metadata.name.clone().unwrap_or_default(),
                    n.object.metadata.labels.clone(),
                ),
                ready: n.object.status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status == "True"),
            })
            .collect()
    };
    let validated = config::validate(&res).map_err(Error::Config)?;
    let services = service::load_balancer_services(&mut res).map_err(Error::Config)?;
    let key = format!("{ns}/{name}");
    let mut out = Explanation { service: key.clone(), ..Default::default() };
    let Some(index) = services.iter().position(|s| s.key.namespace == ns && s.key.name == name) else {
        out.handled = Verdict {
            name: key,
            ok: false,
            why: "no Service of type LoadBalancer by this name in the files (lb only handles type LoadBalancer)".into(),
        };
        return Ok(out);
    };
    let svc = &services[index];
    if svc.class.as_deref() != args.lb_class.as_deref() {
        let theirs = svc.class.as_deref().unwrap_or("none");
        let ours = args.lb_class.as_deref().unwrap_or("none");
        out.handled = Verdict {
            name: key,
            ok: false,
            why: format!("its spec.loadBalancerClass is {theirs:?}, and lb serves {ours:?} (--lb-class)"),
        };
        return Ok(out);
    }
    out.handled = Verdict { name: key, ok: true, why: "a LoadBalancer Service of lb's class".into() };
    let (_, outcomes) = batch::assign_all(&validated.config.pools, &services, args.lb_class.as_deref());
    let o = &outcomes[index];
    out.addresses = o.ips.iter().map(IpAddr::to_string).collect();
    out.error = o.error.clone();
    out.note = o.note.clone();
    out.pools = pool_verdicts(&validated.config, svc, &o.pools);
    let request = svc.restore_request();
    for (ip, pool) in o.ips.iter().zip(&o.pools) {
        out.announce.push(announce(&validated.config, &nodes, &request.labels, *ip, pool));
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
            } else {
                (false, "usable, but another pool came first (priority, then name) or it had no free address of the family".to_string())
            };
            Verdict { name: p.name.clone(), ok, why }
        })
        .collect()
}

fn announce(config: &Config, nodes: &[NodeInfo], labels: &Labels, ip: IpAddr, pool_name: &str) -> AddressView {
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
        let (ok, why) = if n.node.labels.contains_key(EXCLUDE_LABEL) {
            (false, format!("labelled {EXCLUDE_LABEL}"))
        } else if n.ready == Some(false) {
            (false, "not Ready".to_string())
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
    v.l2_owner = plan::owner(ip, &eligible, None).map(str::to_string);
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
    for n in nodes.iter().filter(|n| !n.node.labels.contains_key(EXCLUDE_LABEL) && n.ready != Some(false)) {
        for (peer, session) in plan::bgp(config, &n.node, &assigned) {
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
                v.bgp_routes.push(format!("{peer} from {}: {}{attrs}", n.node.name, IpNet::trunc(net)));
            }
        }
    }
    v
}

impl Explanation {
    /// Writes it for people (aligned, no colours) or as JSON.
    pub fn write(&self, out: &mut impl Write, format: Format) -> Result<()> {
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
        section(out, "Pools", &self.pools)?;
        for a in &self.announce {
            writeln!(out, "\nAddress {} (pool {})", a.ip, a.pool)?;
            section(out, "  L2Advertisements", &a.l2_advertisements)?;
            section(out, "  Nodes (L2)", &a.l2_nodes)?;
            match &a.l2_owner {
                Some(o) => writeln!(
                    out,
                    "  answers ARP/NDP: {o} (first in the ranking; a running group keeps its current owner)"
                )?,
                None => writeln!(out, "  answers ARP/NDP: nobody")?,
            }
            section(out, "  BGPAdvertisements", &a.bgp_advertisements)?;
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

fn section(out: &mut impl Write, title: &str, items: &[Verdict]) -> Result<()> {
    if items.is_empty() {
        writeln!(out, "{title}: none")?;
        return Ok(());
    }
    writeln!(out, "{title}:")?;
    let indent = " ".repeat(title.len() - title.trim_start().len() + 2);
    let width = items.iter().map(|v| v.name.len()).max().unwrap_or(0);
    for v in items {
        let mark = if v.ok { "yes" } else { "no " };
        writeln!(out, "{indent}{mark}  {:<width$}  {}", v.name, v.why)?;
    }
    Ok(())
}
