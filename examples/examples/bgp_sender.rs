//! Embedding the BGP speaker: announce N host routes to one peer, without Kubernetes or
//! YAML. Used by `bench/bgp-convergence.sh` to measure the speaker alone.
//!
//! Run: `cargo run --release -p lb-examples --example bgp_sender -- 10.8.0.2 64512 64500 100000`
//! (peer address, our AS, the peer's AS, number of /32 routes from 10.0.0.0), until SIGTERM.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use announcer_bgp::BgpAnnouncer;
use lbcore::announcer::{Announcer, BgpSession, Desired, RouteAttrs};
use lbcore::config::{BgpPeer, PeerAsn};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let peer_ip: IpAddr = arg(0, "10.8.0.2").parse().expect("peer address");
    let my_asn: u32 = arg(1, "64512").parse().expect("our AS");
    let peer_asn: u32 = arg(2, "64500").parse().expect("peer AS");
    let n: u32 = arg(3, "1000").parse().expect("route count");
    let peer = BgpPeer::new("peer", my_asn, PeerAsn::Fixed(peer_asn), peer_ip);
    let routes = (0..n).map(|i| (IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)).into(), RouteAttrs::default())).collect();
    let desired =
        Desired { l2: BTreeMap::new(), bgp: BTreeMap::from([("peer".to_string(), BgpSession { peer, routes })]) };
    let speaker = BgpAnnouncer::new();
    speaker.reconcile(&desired).await.expect("reconcile");
    drop(desired);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    speaker.shutdown().await.expect("shutdown");
}
