//! A user's own announcer: implements `lbcore::Announcer` and only logs what it is told.
//! A cloud API, a static route or a firewall rule would plug in the same way.
//!
//! Run: `cargo run -p lb-examples --example log_announcer`

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use lbcore::announcer::{AnnounceError, Announcer, AnnouncerStatus, Desired, IpStatus, L2Target};

/// Remembers the last desired state and reports every IP as announced.
#[derive(Default)]
struct LogAnnouncer {
    current: Mutex<BTreeMap<IpAddr, SystemTime>>,
}

#[async_trait]
impl Announcer for LogAnnouncer {
    async fn reconcile(&self, desired: &Desired) -> Result<(), AnnounceError> {
        let mut cur = self.current.lock().map_err(|_| AnnounceError::Fatal("state lock poisoned".into()))?;
        cur.retain(|ip, _| {
            let keep = desired.l2.contains_key(ip);
            if !keep {
                println!("withdraw {ip}");
            }
            keep
        });
        for ip in desired.l2.keys() {
            cur.entry(*ip).or_insert_with(|| {
                println!("announce {ip}");
                SystemTime::now()
            });
        }
        Ok(())
    }

    fn status(&self) -> AnnouncerStatus {
        let cur = self.current.lock().map(|c| c.clone()).unwrap_or_default();
        AnnouncerStatus {
            ips: cur
                .into_iter()
                .map(|(ip, since)| (ip, IpStatus::Announced { since, via: ["log".to_string()].into() }))
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
    let a: Box<dyn Announcer> = Box::new(LogAnnouncer::default());
    let mut desired = Desired::default();
    for ip in ["10.10.1.33", "10.10.1.34"] {
        desired.l2.insert(ip.parse().expect("literal address"), L2Target::default());
    }
    a.reconcile(&desired).await?;
    a.reconcile(&desired).await?; // level-triggered: a repeat changes nothing
    desired.l2.remove(&"10.10.1.33".parse().expect("literal address"));
    a.reconcile(&desired).await?;
    println!("status: {} IP(s) announced", a.status().ips.len());
    a.shutdown().await
}
