//! `announcer-l2`: the L2 announcer of `lb`. It makes this node answer ARP (IPv4) and
//! Neighbor Solicitations (IPv6) for the service addresses it is told to announce, and
//! announces itself with gratuitous ARP / unsolicited Neighbor Advertisements when it takes
//! an address.
//!
//! ```text
//!   reconcile(Desired) ──> desired set ──(condvar)──> manager thread (every rescan, or at once)
//!                                                        │ interfaces::targets(desired, host interfaces)
//!                                    ┌───────────────────┼────────────────────┐
//!                                    ▼                   ▼                    ▼
//!                              worker "eth0"        worker "eth1"   ...  (one thread per interface)
//!                              packet socket + BPF (ARP, NS only) + solicited-node groups
//!                              frame ──> wire::parse_frame ──> Responder (pure) ──> reply frame
//! ```
//!
//! Layers: `wire` parses and emits frames, `responder` decides (pure, unit-tested without
//! sockets), `interfaces` picks where to answer, `io` owns sockets and threads, and
//! [`L2Announcer`] implements [`lbcore::Announcer`].
//!
//! The API is [`L2Announcer`], [`L2Settings`] and what they return. `wire` and `responder`
//! are public only for the fuzz targets and are hidden from these docs: they may change in
//! any release.
//!
//! ```no_run
//! use announcer_l2::{L2Announcer, L2Settings};
//! use lbcore::announcer::{Announcer, Desired, L2Target};
//!
//! # async fn f() -> Result<(), lbcore::AnnounceError> {
//! // Fails at once, with one line saying what to do, without CAP_NET_RAW.
//! let l2 = L2Announcer::start(L2Settings::default())?;
//! let mut desired = Desired::default();
//! // Answer ARP for 192.0.2.10 on eth0 (an empty set: every suitable interface).
//! let target = L2Target { interfaces: ["eth0".to_string()].into() };
//! desired.l2.insert("192.0.2.10".parse().unwrap(), target);
//! l2.reconcile(&desired).await?; // answers, and sends gratuitous ARP
//! for ip in l2.unanswerable(&desired) {
//!     eprintln!("no interface here can answer for {ip}");
//! }
//! l2.shutdown().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod interfaces;
mod io;

pub use interfaces::DEFAULT_EXCLUDE;
pub use io::L2Counts;
#[doc(hidden)]
pub mod responder;
#[doc(hidden)]
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use lbcore::announcer::{AnnounceError, Announcer, AnnouncerStatus, Desired, IpStatus, L2Target};

/// Settings MetalLB has no field for (process flags in `lb`). Start from
/// [`L2Settings::default`] and set the fields you need: more may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct L2Settings {
    /// Interface name patterns (`*` wildcards) never answered on unless an L2Advertisement
    /// lists them.
    pub exclude: Vec<String>,
    /// How often interfaces are re-listed, to pick up ones that appear, vanish or flap.
    pub rescan: Duration,
    /// Gratuitous ARP / unsolicited NA sent when an address is taken.
    pub announce_count: u32,
    /// Spacing of those.
    pub announce_interval: Duration,
    /// Repeat one every this long while an address is held (None: never).
    pub garp_refresh: Option<Duration>,
    /// At most this many replies a second per interface (0: unbounded). A safety net, far
    /// above any sane request rate.
    pub reply_rate: u32,
}

impl Default for L2Settings {
    fn default() -> Self {
        L2Settings {
            exclude: interfaces::DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect(),
            rescan: Duration::from_secs(1),
            announce_count: 3,
            announce_interval: Duration::from_secs(1),
            garp_refresh: None,
            reply_rate: 100_000,
        }
    }
}

struct Inner {
    settings: L2Settings,
    desired: Mutex<BTreeMap<IpAddr, L2Target>>,
    /// Addresses to announce again on the manager's next pass.
    again: Mutex<BTreeSet<IpAddr>>,
    wake: Condvar,
    dirty: Mutex<bool>,
    stop: AtomicBool,
    status: Mutex<BTreeMap<IpAddr, IpStatus>>,
    counters: io::Counters,
}

/// The L2 announcer. Starting it checks for CAP_NET_RAW and spawns the manager thread.
pub struct L2Announcer {
    inner: Arc<Inner>,
    manager: Mutex<Option<JoinHandle<()>>>,
}

/// The one-line message for a missing capability.
pub const NEED_NET_RAW: &str = "answering ARP/NDP needs CAP_NET_RAW: run as root, or grant the capability to the program (setcap cap_net_raw+ep /path/to/the/program; in Kubernetes, securityContext.capabilities.add: [NET_RAW])";

impl L2Announcer {
    /// Starts the announcer. Fails at once, with one clear line, without CAP_NET_RAW.
    pub fn start(settings: L2Settings) -> Result<Self, AnnounceError> {
        if let Err(e) = io::probe_capability() {
            return Err(AnnounceError::Fatal(if e.kind() == std::io::ErrorKind::PermissionDenied {
                NEED_NET_RAW.to_string()
            } else {
                format!("cannot open a packet socket: {e}")
            }));
        }
        let inner = Arc::new(Inner {
            settings,
            desired: Mutex::new(BTreeMap::new()),
            again: Mutex::new(BTreeSet::new()),
            wake: Condvar::new(),
            dirty: Mutex::new(true),
            stop: AtomicBool::new(false),
            status: Mutex::new(BTreeMap::new()),
            counters: Arc::default(),
        });
        let m = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("l2-manager".into())
            .spawn(move || manager(&m))
            .map_err(|e| AnnounceError::Fatal(format!("cannot start the L2 manager thread: {e}")))?;
        Ok(L2Announcer { inner, manager: Mutex::new(Some(handle)) })
    }

    /// The addresses of `desired` that no interface of this host can answer for now: the
    /// interfaces their L2Advertisement names do not exist, are down or have no MAC, or
    /// (with no names) no interface is eligible. What to tell the user when nothing answers.
    ///
    /// ```no_run
    /// # use announcer_l2::{L2Announcer, L2Settings};
    /// # use lbcore::announcer::Desired;
    /// # fn f(l2: &L2Announcer, desired: &Desired) {
    /// for ip in l2.unanswerable(desired) {
    ///     eprintln!("no interface here can answer for {ip}");
    /// }
    /// # }
    /// ```
    pub fn unanswerable(&self, desired: &Desired) -> BTreeSet<IpAddr> {
        let snapshot: Vec<interfaces::Iface> = pnet_datalink::interfaces().iter().map(interfaces::Iface::of).collect();
        let targets = interfaces::targets(&desired.l2, &snapshot, &self.inner.settings.exclude);
        let answered: BTreeSet<IpAddr> = targets.into_values().flatten().collect();
        desired.l2.keys().filter(|ip| !answered.contains(ip)).copied().collect()
    }

    /// Frames counted per address since start (for metrics).
    pub fn counters(&self) -> BTreeMap<IpAddr, L2Counts> {
        self.inner.counters.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Sends the burst of gratuitous ARP / unsolicited NA again for those of `ips` it answers
    /// for, as when they were taken: for when clients may have followed another host's
    /// announcements (after two hosts both answered, once the other has stopped).
    pub fn announce_again(&self, ips: &BTreeSet<IpAddr>) {
        if let Ok(mut a) = self.inner.again.lock() {
            a.extend(ips.iter().copied());
        }
        self.poke();
    }

    fn poke(&self) {
        if let Ok(mut d) = self.inner.dirty.lock() {
            *d = true;
        }
        self.inner.wake.notify_all();
    }
}

/// The manager: keeps one worker per interface that has something to answer for. A worker
/// is replaced when its interface is recreated or changes MAC, and dropped when its thread
/// ended (the interface went away).
fn manager(inner: &Inner) {
    // name -> (ifindex, MAC, worker)
    let mut workers: BTreeMap<String, (u32, wire::MacAddr, io::Worker)> = BTreeMap::new();
    let mut since: BTreeMap<IpAddr, SystemTime> = BTreeMap::new();
    loop {
        if let Ok(d) = inner.dirty.lock() {
            if let Ok((mut d, _)) = inner.wake.wait_timeout_while(d, inner.settings.rescan, |d| !*d) {
                *d = false;
            }
        }
        if inner.stop.load(Ordering::SeqCst) {
            break;
        }
        let desired = inner.desired.lock().map(|d| d.clone()).unwrap_or_default();
        let host = pnet_datalink::interfaces();
        let snapshot: Vec<interfaces::Iface> = host.iter().map(interfaces::Iface::of).collect();
        let targets = interfaces::targets(&desired, &snapshot, &inner.settings.exclude);
        let stale: Vec<String> = workers
            .iter()
            .filter(|(name, (index, mac, w))| {
                let now = snapshot.iter().find(|i| &i.name == *name);
                !targets.contains_key(*name)
                    || w.finished()
                    || now.is_none_or(|i| i.index != *index || i.mac != Some(*mac))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            if let Some((_, _, w)) = workers.remove(&name) {
                w.stop();
            }
        }
        for (name, ips) in &targets {
            if !workers.contains_key(name) {
                let Some(ni) = host.iter().find(|i| &i.name == name) else { continue };
                let Some(mac) = ni.mac else { continue };
                match io::Worker::start(ni, mac, &inner.settings, Arc::clone(&inner.counters)) {
                    Ok(w) => {
                        workers.insert(name.clone(), (ni.index, mac, w));
                    }
                    Err(e) => tracing::warn!(interface = %name, error = %e, "cannot open interface"),
                }
            }
            if let Some((_, _, w)) = workers.get(name) {
                w.shared.set_ips(ips.clone());
            }
        }
        let again = inner.again.lock().map(|mut a| std::mem::take(&mut *a)).unwrap_or_default();
        if !again.is_empty() {
            for (name, ips) in &targets {
                if let Some((_, _, w)) = workers.get(name) {
                    w.shared.announce_again(&again.intersection(ips).copied().collect());
                }
            }
        }
        let answering: BTreeMap<String, BTreeSet<IpAddr>> = workers
            .iter()
            .map(|(n, (_, _, w))| (n.clone(), w.shared.answering.lock().map(|a| a.clone()).unwrap_or_default()))
            .collect();
        update_status(inner, &desired, &answering, &mut since);
    }
    for (_, (_, _, w)) in std::mem::take(&mut workers) {
        w.stop();
    }
}

/// Status from what the workers really answer for (a worker that failed to open or died
/// answers for nothing).
fn update_status(
    inner: &Inner,
    desired: &BTreeMap<IpAddr, L2Target>,
    answering: &BTreeMap<String, BTreeSet<IpAddr>>,
    since: &mut BTreeMap<IpAddr, SystemTime>,
) {
    since.retain(|ip, _| desired.contains_key(ip));
    let mut status = BTreeMap::new();
    for ip in desired.keys() {
        let via: BTreeSet<String> = answering.iter().filter(|(_, s)| s.contains(ip)).map(|(n, _)| n.clone()).collect();
        let st = if via.is_empty() {
            since.remove(ip);
            IpStatus::Pending
        } else {
            IpStatus::Announced { since: *since.entry(*ip).or_insert_with(SystemTime::now), via }
        };
        status.insert(*ip, st);
    }
    if let Ok(mut s) = inner.status.lock() {
        *s = status;
    }
}

impl Drop for L2Announcer {
    /// Dropping the announcer stops answering (as [`Announcer::shutdown`] does).
    fn drop(&mut self) {
        self.stop_manager();
    }
}

impl L2Announcer {
    fn stop_manager(&self) {
        if let Ok(mut d) = self.inner.desired.lock() {
            d.clear();
        }
        self.inner.stop.store(true, Ordering::SeqCst);
        self.poke();
        let handle = self.manager.lock().ok().and_then(|mut m| m.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

#[async_trait::async_trait]
impl Announcer for L2Announcer {
    async fn reconcile(&self, desired: &Desired) -> Result<(), AnnounceError> {
        if let Ok(mut d) = self.inner.desired.lock() {
            d.clone_from(&desired.l2);
        }
        self.poke();
        Ok(())
    }

    fn status(&self) -> AnnouncerStatus {
        AnnouncerStatus {
            ips: self.inner.status.lock().map(|s| s.clone()).unwrap_or_default(),
            sessions: BTreeMap::new(),
        }
    }

    /// Stops answering everywhere. Blocks for at most one receive timeout (10 ms) while the
    /// workers end.
    async fn shutdown(&self) -> Result<(), AnnounceError> {
        self.stop_manager();
        Ok(())
    }
}
