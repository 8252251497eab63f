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
//! Layers: `wire` encodes and decodes messages (total, typed errors mapped to
//! NOTIFICATIONs), `codec` frames the stream, `session::fsm` is the RFC 4271 state machine
//! (pure), `rib` computes the UPDATEs, `session::driver` is the thin tokio task per peer,
//! and [`BgpAnnouncer`] implements [`lbcore::Announcer`].
//!
//! The API is [`BgpAnnouncer`] and what it returns. `wire` and `codec` are public only for
//! the fuzz targets and are hidden from these docs: they may change in any release.
//!
//! ```no_run
//! use announcer_bgp::BgpAnnouncer;
//! use lbcore::announcer::{Announcer, BgpSession, Desired, RouteAttrs};
//! use lbcore::config::{BgpPeer, PeerAsn};
//!
//! # async fn f() -> Result<(), lbcore::AnnounceError> {
//! let bgp = BgpAnnouncer::new();
//! let peer = BgpPeer::new("tor", 64512, PeerAsn::Fixed(64500), "192.0.2.1".parse().unwrap());
//! let mut desired = Desired::default();
//! let routes = [("198.51.100.7/32".parse().unwrap(), RouteAttrs::default())].into_iter().collect();
//! desired.bgp.insert("tor".into(), BgpSession { peer, routes });
//! bgp.reconcile(&desired).await?; // connects, and sends the route once Established
//! bgp.shutdown().await?; // withdraws it: Cease / Administrative Shutdown
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

#[doc(hidden)]
pub mod codec;
mod rib;
mod session;
mod sockopt;
#[doc(hidden)]
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
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

/// Why this announcer cannot run a session for `peer` (a sentence naming what to change),
/// or None when it can: BGP unnumbered, a VRF, a password still in a Secret, a hold time of
/// 1 or 2 s, an MD5 key over 80 octets. For callers that report what will be announced
/// before handing the peer over.
pub fn peer_problem(peer: &BgpPeer) -> Option<String> {
    spec_of(peer).err()
}

/// The session settings for a BGPPeer, or why it cannot be run (a sentence naming what to
/// change). [`BgpAnnouncer::reconcile`] does not fail for such a peer: it leaves it out and
/// reports the reason in its [`Announcer::status`] for that peer, so one bad peer does not
/// stop the others.
pub(crate) fn spec_of(peer: &BgpPeer) -> Result<PeerSpec, String> {
    let ip = match &peer.address {
        PeerAddress::Ip(ip) => *ip,
        PeerAddress::Interface(i) => return Err(format!("BGP unnumbered (interface {i:?}) is not supported yet")),
    };
    let secs = |d: Duration| u16::try_from(d.as_secs()).unwrap_or(u16::MAX);
    let hold = match (peer.hold_time, peer.keepalive_time) {
        (Some(h), _) => secs(h),
        // Only a keepalive: the hold time follows (MetalLB: 3 × keepalive), computed before
        // rounding down to seconds (a 900 ms keepalive is a 2.7 s hold, refused below; not 0).
        (None, Some(k)) => secs(k.saturating_mul(3)),
        (None, None) => secs(DEFAULT_HOLD_TIME),
    };
    // What validation checks, again, for peers built in code rather than read from YAML.
    if (1..3).contains(&hold) {
        return Err(format!("hold time {hold} s: it must be 0 (no keepalives) or at least 3 s (RFC 4271)"));
    }
    if let Some(Password::Inline(p)) = &peer.password {
        if p.len() > 80 {
            return Err(format!(
                "password of {} octets: TCP MD5 keys are at most 80 (RFC 2385, the kernel's limit)",
                p.len()
            ));
        }
    }
    if let Some(v) = &peer.vrf {
        // Peering from the default VRF instead would send the routes to the wrong table.
        return Err(format!("vrf {v:?} is not supported yet; this peer is not started"));
    }
    let password = match &peer.password {
        Some(Password::Inline(p)) => Some(p.clone()),
        Some(Password::Secret { name, .. }) => {
            return Err(format!(
                "passwordSecret {name:?} is not resolved: in Kubernetes the Secret must be in the speaker's namespace with the key password; in files use password"
            ))
        }
        None => None,
    };
    Ok(PeerSpec {
        name: peer.name.clone(),
        remote: SocketAddr::new(ip, peer.port),
        source: peer.source_address,
        password,
        ebgp_multihop: peer.ebgp_multi_hop,
        gtsm: false,
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

type Peers = Arc<tokio::sync::Mutex<BTreeMap<String, Running>>>;

/// The BGP announcer: one session task per BGPPeer this node peers with, and optionally a
/// listener that hands connections from configured peers to their sessions.
///
/// Its methods spawn tokio tasks: call them from within a tokio runtime. A peer it cannot
/// run (an unnumbered or VRF peer, a Secret password, a hold time of 1 or 2 s, a password
/// over 80 octets) does not fail [`Announcer::reconcile`]; it is left out and its
/// reason is in [`Announcer::status`].
#[derive(Default)]
pub struct BgpAnnouncer {
    peers: Peers,
    /// Each running session's status, readable while a reconcile holds `peers` (stopping a
    /// session may take seconds, and status must not go blank meanwhile).
    views: Mutex<BTreeMap<String, tokio::sync::watch::Receiver<session::driver::PeerStatus>>>,
    errors: Mutex<BTreeMap<String, String>>,
    listener: Mutex<Option<(Arc<tokio::net::TcpListener>, tokio::task::JoinHandle<()>)>>,
    /// Peers whose MD5 key is on the listening socket: a connection from a peer with a
    /// password whose key is not there would be unauthenticated, and is refused.
    keyed: Arc<Mutex<BTreeSet<std::net::IpAddr>>>,
    gtsm: std::sync::atomic::AtomicBool,
}

impl Drop for BgpAnnouncer {
    fn drop(&mut self) {
        if let Ok(Some((_, task))) = self.listener.lock().map(|mut l| l.take()) {
            task.abort();
        }
    }
}

impl BgpAnnouncer {
    /// An announcer with no sessions (they start on the first reconcile).
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns GTSM (RFC 5082) on for every single-hop eBGP session started from now on: TTL
    /// 255 out, and only segments with 254 or more taken in (the peer must do the same).
    pub fn set_gtsm(&self, on: bool) {
        self.gtsm.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Listens for connections from peers on `addr` (`[::]:179` takes both families). A
    /// connection from a configured peer goes to its session (taken up, or resolved as a
    /// collision, RFC 4271 §6.8); any other is closed. Needs CAP_NET_BIND_SERVICE for 179.
    pub fn listen(&self, addr: SocketAddr) -> std::io::Result<()> {
        let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
        let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
        if addr.is_ipv6() {
            sock.set_only_v6(false)?;
        }
        sock.set_reuse_address(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        sock.listen(64)?;
        let listener = Arc::new(tokio::net::TcpListener::from_std(sock.into())?);
        let peers = Arc::clone(&self.peers);
        let keyed = Arc::clone(&self.keyed);
        let l = Arc::clone(&listener);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, remote)) = l.accept().await else { continue };
                let ip = remote.ip().to_canonical();
                let guard = peers.lock().await;
                match guard.values().find(|r| r.spec.remote.ip() == ip) {
                    Some(r) if r.spec.password.is_some() && !keyed.lock().is_ok_and(|k| k.contains(&ip)) => {
                        tracing::warn!(peer = %r.spec.name, "refusing a connection from the peer: its MD5 key is not on the listening socket, so the session would be unauthenticated");
                    }
                    Some(r) => r.peer.incoming(stream),
                    None => tracing::debug!(%remote, "connection from an address that is no BGPPeer; closed"),
                }
            }
        });
        if let Ok(mut slot) = self.listener.lock() {
            if let Some((_, old)) = slot.replace((listener, task)) {
                old.abort();
            }
        }
        Ok(())
    }

    /// Sets the TCP MD5 keys of the listening socket for peers with a password.
    fn listener_keys(&self, peers: &BTreeMap<String, Running>) {
        let Some(listener) = self.listener.lock().ok().and_then(|l| l.as_ref().map(|(l, _)| Arc::clone(l))) else {
            return;
        };
        let v6 = listener.local_addr().is_ok_and(|a| a.is_ipv6());
        for r in peers.values() {
            if let Some(pw) = &r.spec.password {
                // On an IPv6 listener an IPv4 peer's key is for its IPv4-mapped address.
                let ip = match r.spec.remote.ip() {
                    std::net::IpAddr::V4(a) if v6 => std::net::IpAddr::V6(a.to_ipv6_mapped()),
                    other => other,
                };
                match sockopt::set_md5(&*listener, ip, pw.as_bytes()) {
                    Ok(()) => {
                        if let Ok(mut k) = self.keyed.lock() {
                            k.insert(r.spec.remote.ip());
                        }
                    }
                    Err(e) => {
                        if let Ok(mut k) = self.keyed.lock() {
                            k.remove(&r.spec.remote.ip());
                        }
                        tracing::error!(peer = %r.spec.name, error = %e, "cannot set the MD5 key on the listening socket: connections from this peer are refused");
                    }
                }
            }
        }
    }

    /// The settings a session for `peer` runs with now: [`spec_of`], plus GTSM when it is
    /// on and the session is single-hop eBGP. What a running session is compared with, so
    /// that an unchanged peer is never restarted.
    fn effective_spec(&self, peer: &BgpPeer) -> Result<PeerSpec, String> {
        let mut spec = spec_of(peer)?;
        let ibgp = matches!(spec.fsm.peer_as, PeerAs::Internal)
            || matches!(spec.fsm.peer_as, PeerAs::Fixed(a) if a == spec.fsm.local_as);
        spec.gtsm = self.gtsm.load(std::sync::atomic::Ordering::Relaxed) && !ibgp && !spec.ebgp_multihop;
        Ok(spec)
    }

    fn start(&self, name: &str, s: &BgpSession) -> Option<Running> {
        match self.effective_spec(&s.peer) {
            Ok(spec) => {
                let peer = &s.peer;
                if peer.disable_mp || peer.dual_stack_address_family {
                    tracing::warn!(peer = %peer.name, "disableMP / dualStackAddressFamily are not supported yet: IPv4 routes go to IPv4 sessions and IPv6 routes to IPv6 sessions");
                }
                if peer.bfd_profile.is_some() {
                    tracing::warn!(peer = %peer.name, "BFD is not supported yet: the session runs without it");
                }
                if let Ok(mut e) = self.errors.lock() {
                    e.remove(name);
                }
                let peer = Peer::spawn(spec.clone(), s.routes.clone());
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

/// Counters of one BGP session, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Whether the session is established.
    pub up: bool,
    /// UPDATE messages sent since the speaker started the session.
    pub updates_sent: u64,
    /// Prefixes announced to the peer now.
    pub prefixes: usize,
}

impl BgpAnnouncer {
    /// Counters per session (BGPPeer name).
    pub fn stats(&self) -> BTreeMap<String, PeerStats> {
        let mut out = BTreeMap::new();
        if let Ok(views) = self.views.lock() {
            for (name, status) in views.iter() {
                let st = status.borrow();
                let up = st.state == State::Established;
                out.insert(name.clone(), PeerStats { up, updates_sent: st.updates_sent, prefixes: st.routes });
            }
        }
        out
    }
}

#[async_trait::async_trait]
impl Announcer for BgpAnnouncer {
    async fn reconcile(&self, desired: &Desired) -> Result<(), AnnounceError> {
        let mut peers = self.peers.lock().await;
        if let Ok(mut e) = self.errors.lock() {
            e.retain(|name, _| desired.bgp.contains_key(name));
        }
        let gone: Vec<String> = peers.keys().filter(|n| !desired.bgp.contains_key(*n)).cloned().collect();
        for name in gone {
            if let Some(r) = peers.remove(&name) {
                r.peer.stop(Some(Notification::admin_shutdown("peer removed from the configuration"))).await;
            }
        }
        for (name, s) in &desired.bgp {
            let same = peers.get(name).is_some_and(|r| self.effective_spec(&s.peer).is_ok_and(|spec| spec == r.spec));
            if same {
                if let Some(r) = peers.get(name) {
                    r.peer.set_routes(s.routes.clone());
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
        self.listener_keys(&peers);
        if let Ok(mut views) = self.views.lock() {
            *views = peers.iter().map(|(n, r)| (n.clone(), r.peer.status.clone())).collect();
        }
        Ok(())
    }

    fn status(&self) -> AnnouncerStatus {
        let mut sessions = BTreeMap::new();
        if let Ok(views) = self.views.lock() {
            for (name, status) in views.iter() {
                let st = status.borrow();
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
        if let Ok(mut views) = self.views.lock() {
            views.clear();
        }
        if let Ok(mut e) = self.errors.lock() {
            e.clear();
        }
        for (_, r) in std::mem::take(&mut *peers) {
            let notify = (!r.graceful).then(|| Notification::admin_shutdown("lb is shutting down"));
            r.peer.stop(notify).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> BgpPeer {
        BgpPeer::new("tor", 64512, PeerAsn::Fixed(64500), "192.0.2.1".parse().unwrap())
    }

    #[test]
    fn peers_built_in_code_are_checked_as_validation_checks_yaml() {
        assert!(spec_of(&peer()).is_ok());
        assert!(spec_of(&peer().with_hold_time(Duration::from_secs(0))).is_ok(), "0: no keepalives");
        assert!(spec_of(&peer().with_hold_time(Duration::from_secs(3))).is_ok());
        let two = spec_of(&peer().with_hold_time(Duration::from_secs(2))).unwrap_err();
        assert!(two.contains("hold time 2 s") && two.contains("at least 3"), "{two}");
        assert!(spec_of(&peer().with_password("x".repeat(80))).is_ok());
        let long = spec_of(&peer().with_password("x".repeat(81))).unwrap_err();
        assert!(long.contains("81 octets") && long.contains("80"), "{long}");
    }

    #[tokio::test]
    async fn an_unchanged_peer_is_not_restarted_with_gtsm_on_and_gone_peers_leave_status() {
        // Loopback, a port nobody listens on: the session only tries to connect.
        let lo = BgpPeer::new("lo", 64512, PeerAsn::Fixed(64500), "127.0.0.1".parse().unwrap()).with_port(9);
        let bgp = BgpAnnouncer::new();
        bgp.set_gtsm(true);
        let mut desired = Desired::default();
        desired.bgp.insert("lo".into(), BgpSession { peer: lo, routes: Default::default() });
        bgp.reconcile(&desired).await.unwrap();
        let first = bgp.views.lock().unwrap()["lo"].clone();
        assert!(bgp.peers.lock().await["lo"].spec.gtsm, "single-hop eBGP with GTSM on");
        bgp.reconcile(&desired).await.unwrap();
        let second = bgp.views.lock().unwrap()["lo"].clone();
        assert!(first.same_channel(&second), "the same session task, not a restarted one");

        // A refused peer, then removed: its reason goes with it.
        let bad = peer().with_hold_time(Duration::from_secs(2));
        desired.bgp.insert("bad".into(), BgpSession { peer: bad, routes: Default::default() });
        bgp.reconcile(&desired).await.unwrap();
        assert!(bgp.status().sessions.contains_key("bad"));
        desired.bgp.remove("bad");
        bgp.reconcile(&desired).await.unwrap();
        assert!(!bgp.status().sessions.contains_key("bad"), "{:?}", bgp.status());
        bgp.shutdown().await.unwrap();
    }

    #[test]
    fn a_sub_second_keepalive_gives_three_times_it_as_hold_time_before_rounding() {
        let k = |ms| peer().with_keepalive_time(Duration::from_millis(ms));
        let refused = spec_of(&k(900)).unwrap_err();
        assert!(refused.contains("hold time 2 s"), "{refused}");
        assert_eq!(spec_of(&k(1000)).unwrap().fsm.hold_time, 3);
    }

    #[tokio::test]
    async fn a_peer_that_cannot_run_is_left_out_and_says_why_in_status() {
        let bgp = BgpAnnouncer::new();
        let mut desired = Desired::default();
        let bad = peer().with_hold_time(Duration::from_secs(1));
        desired.bgp.insert("tor".into(), BgpSession { peer: bad, routes: Default::default() });
        bgp.reconcile(&desired).await.expect("one bad peer does not fail the rest");
        match bgp.status().sessions.get("tor") {
            Some(SessionStatus::Down(Some(why))) => assert!(why.contains("hold time 1 s"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(bgp.stats().is_empty(), "no session was started");
    }
}
