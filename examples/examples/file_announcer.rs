//! A user's own announcer, plugged into lb's planner: it implements `lbcore::Announcer` and
//! writes the desired state to a file, one line per address, instead of touching the
//! network. A cloud API, a static route, a firewall rule or a webhook plugs in the same way.
//!
//! Run: `cargo run -p lb-examples --example file_announcer -- examples/homelab-l2.yaml node-1 /tmp/announced.txt`
//! (configuration, this node's name, the file to write).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use lbcore::announcer::{AnnounceError, Announcer, AnnouncerStatus, Desired, IpStatus};
use lbcore::config::{self, Labels, Resources};
use lbcore::ipam::batch;
use lbcore::plan::{self, Assigned, Node};
use lbcore::service;

/// Writes what it is told to announce to a file, and reports it as announced.
struct FileAnnouncer {
    path: PathBuf,
    current: Mutex<BTreeMap<IpAddr, SystemTime>>,
}

#[async_trait]
impl Announcer for FileAnnouncer {
    async fn reconcile(&self, desired: &Desired) -> Result<(), AnnounceError> {
        let mut lines = Vec::new();
        for (ip, target) in &desired.l2 {
            let on = if target.interfaces.is_empty() {
                "every interface".to_string()
            } else {
                target.interfaces.iter().cloned().collect::<Vec<_>>().join(",")
            };
            lines.push(format!("l2 {ip} on {on}"));
        }
        for (peer, session) in &desired.bgp {
            for net in session.routes.prefixes() {
                lines.push(format!("bgp {net} to {peer}"));
            }
        }
        // Level-triggered: the whole desired state every time, written atomically.
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, lines.join("\n") + "\n")
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| AnnounceError::Fatal(format!("cannot write {}: {e}", self.path.display())))?;
        let mut cur = self.current.lock().map_err(|_| AnnounceError::Fatal("state lock poisoned".into()))?;
        cur.retain(|ip, _| desired.l2.contains_key(ip));
        for ip in desired.l2.keys() {
            cur.entry(*ip).or_insert_with(SystemTime::now);
        }
        Ok(())
    }

    fn status(&self) -> AnnouncerStatus {
        let cur = self.current.lock().map(|c| c.clone()).unwrap_or_default();
        AnnouncerStatus {
            ips: cur
                .into_iter()
                .map(|(ip, since)| (ip, IpStatus::Announced { since, via: ["file".to_string()].into() }))
                .collect(),
            sessions: BTreeMap::new(),
        }
    }

    async fn shutdown(&self) -> Result<(), AnnounceError> {
        self.reconcile(&Desired::default()).await
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), AnnounceError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config_path = args.first().cloned().unwrap_or_else(|| "examples/homelab-l2.yaml".into());
    let node = Node::new(args.get(1).cloned().unwrap_or_else(|| "node-1".into()), Labels::new());
    let out = PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "announced.txt".into()));

    // The same steps as `lb run`: load, validate, allocate, plan for this node.
    let mut res = Resources::default();
    res.load_path(config_path.as_ref());
    let validated = config::validate(&res).map_err(|e| AnnounceError::Fatal(config::Diagnostics(e).to_string()))?;
    let services = service::load_balancer_services(&mut res).map_err(|e| AnnounceError::Fatal(format!("{e:?}")))?;
    let (alloc, _) = batch::assign_all(&validated.config.pools, &services, None);
    let assigned: Vec<Assigned> = services
        .iter()
        .map(|s| (s, alloc.assignment(&s.key)))
        .filter(|(_, held)| !held.is_empty())
        .map(|(s, held)| Assigned {
            labels: s.restore_request().labels.clone(),
            ips: held.into_iter().map(|(ip, pool)| (ip, pool.into())).collect(),
        })
        .collect();
    let desired = Desired {
        l2: plan::l2(&validated.config, &node, &assigned),
        bgp: plan::bgp(&validated.config, &node, &assigned),
    };

    let announcer: Box<dyn Announcer> = Box::new(FileAnnouncer { path: out.clone(), current: Mutex::default() });
    announcer.reconcile(&desired).await?;
    println!("{} address(es) announced; see {}", announcer.status().ips.len(), out.display());
    Ok(())
}
