//! The [`Announcer`] trait: how a node makes service addresses reachable.
//!
//! Why it looks this way:
//! - **Level-triggered.** An announcer is handed the *whole* desired state of this node
//!   ([`Desired`]) every time, never a stream of add/remove events. It converges to exactly
//!   that state, so a missed or repeated call is harmless and a restarted process needs no
//!   history: it is told what should be, and makes it so.
//! - **No policy inside.** The planner (in `lbcore`) has already chosen which IPs this node
//!   announces, on which interfaces, to which peers, with which attributes, deduplicated
//!   shared IPs and applied aggregation. An announcer only carries it out, so the L2
//!   responder, the BGP speaker and a user's own announcer (a cloud API, a static route, a
//!   log line) behave the same way for the same plan.
//! - **Status is read, not pushed.** [`Announcer::status`] reports what is really announced
//!   now (and why not, where something failed), for Service status, metrics and `lb explain`.
//! - **Narrow.** Three methods, object safe (`dyn Announcer`), `Send + Sync`, so a binary can
//!   hold a list of announcers and drive them alike.
//!
//! Invariant of [`Desired`]: it is a plain value with ordered maps and route tables
//! ([`Routes`], sorted by prefix), so two equal plans compare equal and iterate in the same
//! order.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::SystemTime;

use crate::config::{BgpPeer, Community};
pub use crate::routes::{Routes, RoutesBuilder};

/// The whole desired announcement state of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// L2 mode: the IPs this node answers ARP/NDP for, and where.
    pub l2: BTreeMap<IpAddr, L2Target>,
    /// BGP mode: the sessions to hold (by BGPPeer name) and the routes for each.
    pub bgp: BTreeMap<String, BgpSession>,
}

/// Where an IP is answered for in L2 mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Target {
    /// Interfaces to answer on; empty means every suitable interface (up, with a MAC, not
    /// loopback, not excluded).
    pub interfaces: BTreeSet<String>,
}

/// One BGP session to hold, and the routes to announce over it. A session with no routes is
/// still held (the router sees the node as up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpSession {
    /// The peer's settings, as validated from its BGPPeer.
    pub peer: BgpPeer,
    /// Routes (prefix after aggregation) and their attributes.
    pub routes: Routes,
}

/// Path attributes of one announced route, merged from every advertisement that covers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// LOCAL_PREF (sent on iBGP sessions only).
    pub local_pref: Option<u32>,
    /// Standard and large communities.
    pub communities: BTreeSet<Community>,
    /// Next hop; None means the session's local address.
    pub next_hop: Option<IpAddr>,
}

impl RouteAttrs {
    /// Adds `other`'s attributes, as for a route that two advertisements cover: the
    /// communities of both, the higher LOCAL_PREF, and of two next hops the lower: merging
    /// is commutative and associative, so the order of merging does not matter.
    pub fn merge(&mut self, other: &RouteAttrs) {
        self.communities.extend(other.communities.iter().copied());
        self.local_pref = self.local_pref.max(other.local_pref);
        self.next_hop = match (self.next_hop, other.next_hop) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// What an announcer really announces now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnouncerStatus {
    /// Per IP: its state.
    pub ips: BTreeMap<IpAddr, IpStatus>,
    /// Per BGP session (BGPPeer name): whether it is established.
    pub sessions: BTreeMap<String, SessionStatus>,
}

/// The state of one IP in an announcer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpStatus {
    /// Announced since `since`, via these interfaces or peers.
    Announced {
        /// When the announcement started.
        since: SystemTime,
        /// Interfaces (L2) or peer names (BGP).
        via: BTreeSet<String>,
    },
    /// Accepted, not announced yet (e.g. no session established).
    Pending,
    /// Cannot be announced, and why.
    Failed(String),
}

/// The state of one BGP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStatus {
    /// Established since this time.
    Established(SystemTime),
    /// Not established; the last reason, if any.
    Down(Option<String>),
}

/// An announcer failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// The desired state cannot be accepted (e.g. it names an interface that cannot exist).
    #[error("invalid desired state: {0}")]
    Invalid(String),
    /// The announcer cannot work at all (missing capability, socket error).
    #[error("{0}")]
    Fatal(String),
}

/// Something that makes service IPs reachable: the L2 responder, the BGP speaker, or a
/// user's own. See the module documentation for why it is shaped this way.
///
/// Implementing it (with the [`crate::async_trait`] re-export, so no extra dependency):
///
/// ```
/// use std::sync::Mutex;
/// use lbcore::announcer::{AnnounceError, Announcer, AnnouncerStatus, Desired, IpStatus};
///
/// /// Remembers what it is told; a real one would call a cloud API or a webhook.
/// #[derive(Default)]
/// struct Recorder(Mutex<Desired>);
///
/// #[lbcore::async_trait]
/// impl Announcer for Recorder {
///     async fn reconcile(&self, desired: &Desired) -> Result<(), AnnounceError> {
///         *self.0.lock().map_err(|_| AnnounceError::Fatal("poisoned".into()))? = desired.clone();
///         Ok(())
///     }
///     fn status(&self) -> AnnouncerStatus {
///         let d = self.0.lock().map(|d| d.clone()).unwrap_or_default();
///         let ips = d.l2.keys().map(|ip| (*ip, IpStatus::Pending)).collect();
///         AnnouncerStatus { ips, ..Default::default() }
///     }
///     async fn shutdown(&self) -> Result<(), AnnounceError> {
///         self.reconcile(&Desired::default()).await
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Announcer: Send + Sync {
    /// Converge to exactly `desired` (level-triggered, idempotent). Returns once the new
    /// desired state is accepted; convergence is reported by [`Announcer::status`].
    async fn reconcile(&self, desired: &Desired) -> Result<(), AnnounceError>;

    /// What is really announced now.
    fn status(&self) -> AnnouncerStatus;

    /// Planned shutdown. An announcer stops announcing: the L2 responder stops answering at
    /// once, the BGP speaker withdraws its routes (NOTIFICATION Cease / Administrative
    /// Shutdown), except toward a peer with graceful restart enabled, where it closes
    /// without withdrawing so the router keeps the routes for the restart time (RFC 4724).
    async fn shutdown(&self) -> Result<(), AnnounceError>;
}
