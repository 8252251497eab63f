//! `announcer-bgp`: the BGP speaker of `lb`. It holds one session per selected BGPPeer and
//! announces service addresses as host (or aggregated) routes, sending only differences.
//!
//! ```text
//!  reconcile(Desired.bgp) ──> BgpAnnouncer ──(per peer: routes, stop)──> Peer task (driver.rs)
//!                                                                          │
//!        TCP stream ──bytes──> codec::Codec ──Message──> session::fsm::Session (pure)
//!                                                                          │ Outputs
//!        TCP stream <──bytes── wire::*::encode <── rib::AdjRibOut <────────┘ (send, timers, close)
//! ```
//!
//! Layers: [`wire`] encodes and decodes messages (total, typed errors mapped to
//! NOTIFICATIONs), [`codec`] frames the stream, [`session::fsm`] is the RFC 4271 state
//! machine (pure), [`rib`] computes the UPDATEs, [`session::driver`] is the thin tokio task
//! per peer, and [`BgpAnnouncer`] implements [`lbcore::Announcer`].
#![warn(missing_docs)]

pub mod codec;
pub mod rib;
pub mod session;
mod sockopt;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lbcore::announcer::{AnnounceError, Announcer, AnnouncerStatus, BgpSession, Desired, SessionStatus};
use lbcore::config::{BgpPeer, Password, PeerAddress, PeerAsn};

use session::driver::{Peer, PeerSpec};
use session::fsm::{self, PeerAs, State};
use wire::Notification;

/// Default hold time when a BGPPeer sets none (MetalLB's).
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
/// Default longest wait between connection attempts.
pub const DEFAULT_CONNECT_TIME: Duration = Duration::from_secs(30);

/// The session settings for a BGPPeer, or why it cannot be run.
pub fn spec_of(peer: &BgpPeer) -> Result<PeerSpec, String> {
    let ip = match &peer.address {
        PeerAddress::Ip(ip) => *ip,
        PeerAddress::Interface(i) => return Err(format!("BGP unnumbered (interface {i:?}) is not supported yet")),
    };
    let secs = |d: Duration| u16::try_from(d.as_secs()).unwrap_or(u16::MAX);
    let hold = match (peer.hold_time, peer.keepalive_time) {
        (Some(h), _) => secs(h),
        // Only a keepalive: the hold time follows (MetalLB: 3 × keepalive).
        (None, Some(k)) => secs(k).saturating_mul(3),
        (None, None) => secs(DEFAULT_HOLD_TIME),
    };
    if let Some(v) = &peer.vrf {
        // Peering from the default VRF instead would send the routes to the wrong table.
        return Err(format!("vrf {v:?} is not supported yet; this peer is not started"));
    }
    if peer.disable_mp || peer.dual_stack_address_family {
        tracing::warn!(peer = %peer.name, "disableMP / dualStackAddressFamily are not supported yet: IPv4 routes go to IPv4 sessions and IPv6 routes to IPv6 sessions");
    }
    if peer.bfd_profile.is_some() {
        tracing::warn!(peer = %peer.name, "BFD is not supported yet: the session runs without it");
    }
    let password = match &peer.password {
        Some(Password::Inline(p)) => Some(p.clone()),
        Some(Password::Secret { name, .. }) => {
            return Err(format!("passwordSecret {name:?} needs Kubernetes; in files use password"))
        }
        None => None,
    };
    Ok(PeerSpec {
        name: peer.name.clone(),
        remote: SocketAddr::new(ip, peer.port),
        source: peer.source_address,
        password,
        ebgp_multihop: peer.ebgp_multi_hop,
        fsm: fsm::Config {
            local_as: peer.my_asn,
            peer_as: match peer.peer_asn {
                PeerAsn::Fixed(a) => PeerAs::Fixed(a),
                PeerAsn::Internal => PeerAs::Internal,
                PeerAsn::External => PeerAs::External,
            },
            router_id: peer.router_id.map(u32::from).unwrap_or(0),
            hold_time: hold,
            keepalive: peer.keepalive_time.map(secs).filter(|k| *k > 0),
            connect_retry: peer.connect_time.unwrap_or(DEFAULT_CONNECT_TIME),
            graceful_restart: peer.graceful_restart,
        },
    })
}

struct Running {
    spec: PeerSpec,
    peer: Peer,
    graceful: bool,
}

/// The BGP announcer: one session task per BGPPeer this node peers with.
#[derive(Default)]
pub struct BgpAnnouncer {
    peers: tokio::sync::Mutex<BTreeMap<String, Running>>,
    errors: Mutex<BTreeMap<String, String>>,
}

impl BgpAnnouncer {
    /// An announcer with no sessions (they start on the first reconcile).
    pub fn new() -> Self {
        Self::default()
    }

    fn start(&self, name: &str, s: &BgpSession) -> Option<Running> {
        match spec_of(&s.peer) {
            Ok(spec) => {
                if let Ok(mut e) = self.errors.lock() {
                    e.remove(name);
                }
                let peer = Peer::spawn(spec.clone(), Arc::new(s.routes.clone()));
                Some(Running { spec, peer, graceful: s.peer.graceful_restart })
            }
            Err(why) => {
                tracing::error!(peer = %name, "{why}");
                if let Ok(mut e) = self.errors.lock() {
                    e.insert(name.to_string(), why);
                }
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl Announcer for BgpAnnouncer {
    async fn reconcile(&self, desired: &Desired) -> Result<(), AnnounceError> {
        let mut peers = self.peers.lock().await;
        let gone: Vec<String> = peers.keys().filter(|n| !desired.bgp.contains_key(*n)).cloned().collect();
        for name in gone {
            if let Some(r) = peers.remove(&name) {
                r.peer.stop(Some(Notification::admin_shutdown("peer removed from the configuration"))).await;
            }
        }
        for (name, s) in &desired.bgp {
            let same = peers.get(name).is_some_and(|r| spec_of(&s.peer).is_ok_and(|spec| spec == r.spec));
            if same {
                if let Some(r) = peers.get(name) {
                    r.peer.set_routes(Arc::new(s.routes.clone()));
                }
                continue;
            }
            if let Some(r) = peers.remove(name) {
                r.peer.stop(Some(Notification::admin_shutdown("peer configuration changed"))).await;
            }
            if let Some(r) = self.start(name, s) {
                peers.insert(name.clone(), r);
            }
        }
        Ok(())
    }

    fn status(&self) -> AnnouncerStatus {
        let mut sessions = BTreeMap::new();
        if let Ok(peers) = self.peers.try_lock() {
            for (name, r) in peers.iter() {
                let st = r.peer.status.borrow();
                let s = match st.state {
                    State::Established => SessionStatus::Established(st.since),
                    _ => SessionStatus::Down(st.last_error.clone()),
                };
                sessions.insert(name.clone(), s);
            }
        }
        if let Ok(errors) = self.errors.lock() {
            for (name, why) in errors.iter() {
                sessions.insert(name.clone(), SessionStatus::Down(Some(why.clone())));
            }
        }
        AnnouncerStatus { ips: BTreeMap::new(), sessions }
    }

    /// Withdraws everything with Cease / Administrative Shutdown, except toward peers with
    /// graceful restart, where the connection closes without a NOTIFICATION so the router
    /// keeps the routes for the restart time (RFC 4724).
    async fn shutdown(&self) -> Result<(), AnnounceError> {
        let mut peers = self.peers.lock().await;
        for (_, r) in std::mem::take(&mut *peers) {
            let notify = (!r.graceful).then(|| Notification::admin_shutdown("lb is shutting down"));
            r.peer.stop(notify).await;
        }
        Ok(())
    }
}
