//! Embedding the L2 announcer: answer ARP/NDP for one address on one interface, with
//! gratuitous ARP / unsolicited NA when it is taken, until the time is up or Ctrl-C.
//! Needs CAP_NET_RAW. Run it only in a network namespace of your own (it talks to the
//! network it is on).
//!
//! Run: `sudo ip netns exec NS cargo run -p lb-examples --example l2_announce -- eth0 192.0.2.10 30`
//! (interface, address, seconds).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use announcer_l2::{L2Announcer, L2Settings};
use lbcore::announcer::{AnnounceError, Announcer, Desired, L2Target};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), AnnounceError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let iface = args.first().cloned().unwrap_or_else(|| "eth0".into());
    let ip: IpAddr = args
        .get(1)
        .map_or("192.0.2.10", String::as_str)
        .parse()
        .map_err(|e| AnnounceError::Fatal(format!("address: {e}")))?;
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);

    let announcer = L2Announcer::start(L2Settings::default())?;
    let target = L2Target { interfaces: BTreeSet::from([iface.clone()]) };
    announcer.reconcile(&Desired { l2: BTreeMap::from([(ip, target)]), bgp: BTreeMap::new() }).await?;
    println!("answering for {ip} on {iface} for {seconds} s");
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("status: {:?}", announcer.status().ips.get(&ip));
    announcer.shutdown().await
}
