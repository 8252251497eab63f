//! Membership among speakers: SWIM (the `foca` crate) over UDP, with every datagram
//! authenticated by an HMAC-SHA256 over a shared key, and timers tuned to notice a dead
//! member in well under a second.
//!
//! ```text
//!   UDP socket ──open(key)──> foca.handle_data ─┐           ┌──> seal(key) ──> UDP send_to
//!   timer tasks ───────────> foca.handle_timer ─┼─> runtime ┼──> timer tasks (tokio sleep)
//!   leave()      ──────────> foca.leave_cluster ┘           └──> alive set (watch channel)
//! ```
//!
//! One task owns the `Foca` instance; nothing else touches it. Wire format of a datagram:
//! `[version 1][sent at, ms since the Unix epoch, u64 BE][kind][payload][HMAC-SHA256 tag, 32]`,
//! the tag over everything before it. Kind 0 carries SWIM; kind 1 a message of the
//! application's own ([`Membership::send`], [`Membership::messages`]), authenticated the
//! same way.
//!
//! Invariants:
//! - A datagram whose tag does not verify, or that was sent more than [`REPLAY_WINDOW`] away
//!   from our clock, is dropped and counted before foca sees a byte of it: without the key
//!   nobody can declare a member dead, and an old message cannot be replayed later. (This
//!   assumes the members' clocks agree within the window, as NTP gives.)
//! - The alive set always holds this member, and otherwise exactly the members foca holds
//!   as active (up or suspect).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foca::{AccumulatingRuntime, Config, Foca, Identity, PeriodicParams, PostcardCodec, Timer};
use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

/// How far a datagram's send time may be from our clock.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(10);
const VERSION: u8 = 1;
const TAG: usize = 32;
const HEADER: usize = 10;
/// Datagram kind: SWIM.
pub const KIND_SWIM: u8 = 0;
/// Datagram kind: an application message.
pub const KIND_APP: u8 = 1;
/// Application messages waiting to be read; more are dropped (and counted as rejected).
const APP_QUEUE: usize = 1024;

/// A member: its name (the node name), where it listens, and a counter that grows each time
/// it rejoins after being declared down.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// Address its membership socket listens on.
    pub addr: SocketAddr,
    /// Rejoin counter.
    pub bump: u16,
}

impl Identity for Member {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Member { bump: self.bump.wrapping_add(1), ..self.clone() })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// How a member takes part.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name.
    pub name: String,
    /// Where to listen (UDP).
    pub bind: SocketAddr,
    /// The address the others reach this member at (default: the bound address; needed
    /// when binding a wildcard address).
    pub advertise: Option<SocketAddr>,
    /// Members to join through (any one that answers is enough).
    pub seeds: Vec<SocketAddr>,
    /// The shared key (at least 16 bytes).
    pub key: Vec<u8>,
    /// How often a member is probed.
    pub probe_period: Duration,
    /// How long a probe waits for its answer before asking others to probe.
    pub probe_rtt: Duration,
    /// How long a suspect member has to refute before it is declared down.
    pub suspect_to_down: Duration,
}

impl Settings {
    /// Defaults tuned for fast detection on a LAN: probe every 200 ms, answer within 100 ms,
    /// down 300 ms after suspicion.
    pub fn new(name: impl Into<String>, bind: SocketAddr, seeds: Vec<SocketAddr>, key: Vec<u8>) -> Self {
        Settings {
            name: name.into(),
            bind,
            advertise: None,
            seeds,
            key,
            probe_period: Duration::from_millis(200),
            probe_rtt: Duration::from_millis(100),
            suspect_to_down: Duration::from_millis(300),
        }
    }

    fn foca(&self) -> Config {
        Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            max_transmissions: NonZeroU8::new(10).unwrap_or(NonZeroU8::MIN),
            suspect_to_down_after: self.suspect_to_down,
            remove_down_after: Duration::from_secs(60),
            max_packet_size: NonZeroUsize::new(1400).unwrap_or(NonZeroUsize::MIN),
            notify_down_members: true,
            // Gossip often (updates spread in a few tens of ms) and re-announce now and then
            // (two halves of a split find each other again).
            periodic_gossip: Some(PeriodicParams {
                frequency: Duration::from_millis(100),
                num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            }),
            periodic_announce: Some(PeriodicParams {
                frequency: Duration::from_secs(5),
                num_members: NonZeroUsize::MIN,
            }),
            periodic_announce_to_down_members: Some(PeriodicParams {
                frequency: Duration::from_secs(5),
                num_members: NonZeroUsize::MIN,
            }),
        }
    }
}

/// Membership errors.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The key is too short to authenticate anything.
    #[error("the membership key must be at least 16 bytes (it is {0})")]
    ShortKey(usize),
    /// The socket cannot be opened.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// `payload` of `kind`, framed and tagged for sending.
pub fn seal(key: &[u8], sent_ms: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len() + TAG);
    out.push(VERSION);
    out.extend_from_slice(&sent_ms.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    let mut m = mac(key);
    m.update(&out);
    out.extend_from_slice(&m.finalize().into_bytes());
    out
}

/// The kind and payload of a datagram that verifies and is fresh at `now_ms`, or None.
pub fn open<'a>(key: &[u8], now_ms: u64, datagram: &'a [u8]) -> Option<(u8, &'a [u8])> {
    if datagram.len() < HEADER + TAG || datagram[0] != VERSION {
        return None;
    }
    let (body, tag) = datagram.split_at(datagram.len() - TAG);
    let mut m = mac(key);
    m.update(body);
    m.verify_slice(tag).ok()?;
    let sent = u64::from_be_bytes(body[1..HEADER - 1].try_into().ok()?);
    let window = REPLAY_WINDOW.as_millis() as u64;
    (sent.abs_diff(now_ms) <= window).then_some((body[HEADER - 1], &body[HEADER..]))
}

/// A running member.
pub struct Membership {
    alive: watch::Receiver<BTreeMap<String, SocketAddr>>,
    rejected: Arc<AtomicU64>,
    leave: Option<tokio::sync::oneshot::Sender<()>>,
    join: mpsc::UnboundedSender<SocketAddr>,
    outbox: mpsc::UnboundedSender<(SocketAddr, Vec<u8>)>,
    inbox: Option<mpsc::Receiver<(SocketAddr, Vec<u8>)>>,
    task: tokio::task::JoinHandle<()>,
    /// The address the socket is bound to.
    pub addr: SocketAddr,
}

impl Membership {
    /// Joins (or starts) the group.
    pub async fn start(s: Settings) -> Result<Membership, MembershipError> {
        if s.key.len() < 16 {
            return Err(MembershipError::ShortKey(s.key.len()));
        }
        let socket = UdpSocket::bind(s.bind).await.map_err(|e| MembershipError::Bind(s.bind, e))?;
        let bound = socket.local_addr().map_err(|e| MembershipError::Bind(s.bind, e))?;
        let addr = s.advertise.unwrap_or(bound);
        let me = Member { name: s.name.clone(), addr, bump: 0 };
        let (alive_tx, alive) = watch::channel(BTreeMap::from([(me.name.clone(), addr)]));
        let rejected = Arc::new(AtomicU64::new(0));
        let (leave_tx, leave_rx) = tokio::sync::oneshot::channel();
        let (join, join_rx) = mpsc::unbounded_channel();
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox) = mpsc::channel(APP_QUEUE);
        let worker = Worker {
            inbox: inbox_tx,
            foca: Foca::new(me.clone(), s.foca(), StdRng::from_os_rng(), PostcardCodec),
            runtime: AccumulatingRuntime::new(),
            socket,
            key: s.key.clone(),
            me,
            alive: alive_tx,
            rejected: rejected.clone(),
        };
        let task = tokio::spawn(worker.run(s.seeds, leave_rx, join_rx, outbox_rx));
        Ok(Membership { alive, rejected, leave: Some(leave_tx), join, outbox, inbox: Some(inbox), task, addr })
    }

    /// Asks the member at `addr` to let this one in (harmless when it already is).
    pub fn join(&self, addr: SocketAddr) {
        let _ = self.join.send(addr);
    }

    /// Sends `payload` to the member at `to`, sealed with the key like SWIM's own datagrams
    /// (it must fit one datagram: keep it under 1400 bytes).
    pub fn send(&self, to: SocketAddr, payload: Vec<u8>) {
        let _ = self.outbox.send((to, payload));
    }

    /// The application messages other members [`send`](Self::send), with the address they
    /// came from; only those that verified and were fresh. Can be taken once.
    pub fn messages(&mut self) -> Option<mpsc::Receiver<(SocketAddr, Vec<u8>)>> {
        self.inbox.take()
    }

    /// The members alive now, by name (this one included).
    pub fn alive(&self) -> BTreeMap<String, SocketAddr> {
        self.alive.borrow().clone()
    }

    /// Changes of the alive set.
    pub fn watch(&self) -> watch::Receiver<BTreeMap<String, SocketAddr>> {
        self.alive.clone()
    }

    /// Datagrams dropped because they did not verify or were stale.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Leaves the group: the others learn it at once rather than by detecting a failure.
    pub async fn leave(mut self) {
        if let Some(tx) = self.leave.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.task).await;
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Worker {
    foca: Foca<Member, PostcardCodec, StdRng, foca::NoCustomBroadcast>,
    runtime: AccumulatingRuntime<Member>,
    socket: UdpSocket,
    key: Vec<u8>,
    me: Member,
    alive: watch::Sender<BTreeMap<String, SocketAddr>>,
    rejected: Arc<AtomicU64>,
    inbox: mpsc::Sender<(SocketAddr, Vec<u8>)>,
}

impl Worker {
    fn announce(&mut self, seed: SocketAddr) {
        if seed == self.me.addr {
            return;
        }
        // A seed's name is not known yet: foca learns the real identity from its answer.
        let placeholder = Member { name: String::new(), addr: seed, bump: 0 };
        if let Err(e) = self.foca.announce(placeholder, &mut self.runtime) {
            tracing::warn!(%seed, error = %e, "cannot announce to a seed");
        }
    }

    async fn run(
        mut self,
        seeds: Vec<SocketAddr>,
        mut leave: tokio::sync::oneshot::Receiver<()>,
        mut join: mpsc::UnboundedReceiver<SocketAddr>,
        mut outbox: mpsc::UnboundedReceiver<(SocketAddr, Vec<u8>)>,
    ) {
        let (timer_tx, mut timers) = mpsc::unbounded_channel::<Timer<Member>>();
        for seed in seeds {
            self.announce(seed);
        }
        self.drain(&timer_tx).await;
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    match open(&self.key, now_ms(), &buf[..n]) {
                        Some((KIND_SWIM, payload)) => {
                            if let Err(e) = self.foca.handle_data(payload, &mut self.runtime) {
                                tracing::debug!(%from, error = %e, "membership message refused");
                            }
                        }
                        Some((KIND_APP, payload)) => {
                            if self.inbox.try_send((from, payload.to_vec())).is_err() {
                                self.rejected.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Some((kind, _)) => tracing::debug!(%from, kind, "membership datagram of an unknown kind"),
                        None => {
                            self.rejected.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%from, "membership datagram dropped: bad tag, or stale");
                        }
                    }
                }
                Some(addr) = join.recv() => self.announce(addr),
                Some((to, payload)) = outbox.recv() => {
                    let datagram = seal(&self.key, now_ms(), KIND_APP, &payload);
                    if let Err(e) = self.socket.send_to(&datagram, to).await {
                        tracing::debug!(%to, error = %e, "cannot send a membership datagram");
                    }
                }
                Some(t) = timers.recv() => {
                    if let Err(e) = self.foca.handle_timer(t, &mut self.runtime) {
                        tracing::debug!(error = %e, "membership timer");
                    }
                }
                _ = &mut leave => {
                    let _ = self.foca.leave_cluster(&mut self.runtime);
                    self.drain(&timer_tx).await;
                    return;
                }
            }
            self.drain(&timer_tx).await;
        }
    }

    /// Carries out what foca asked for: datagrams, timers, and the alive set.
    async fn drain(&mut self, timer_tx: &mpsc::UnboundedSender<Timer<Member>>) {
        while let Some((to, data)) = self.runtime.to_send() {
            let datagram = seal(&self.key, now_ms(), KIND_SWIM, &data);
            if let Err(e) = self.socket.send_to(&datagram, to.addr).await {
                tracing::debug!(to = %to.addr, error = %e, "cannot send a membership datagram");
            }
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let tx = timer_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(timer);
            });
        }
        let mut changed = false;
        while let Some(n) = self.runtime.to_notify() {
            match &n {
                foca::OwnedNotification::MemberUp(m) => tracing::info!(member = %m.name, addr = %m.addr, "member up"),
                foca::OwnedNotification::MemberDown(m) => {
                    tracing::info!(member = %m.name, addr = %m.addr, "member down")
                }
                _ => {}
            }
            changed = true;
        }
        if changed {
            let mut alive: BTreeMap<String, SocketAddr> =
                self.foca.iter_members().map(|m| (m.id().name.clone(), m.id().addr)).collect();
            alive.remove("");
            alive.insert(self.me.name.clone(), self.me.addr);
            self.alive.send_if_modified(|a| {
                let differs = *a != alive;
                if differs {
                    *a = alive;
                }
                differs
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sealed_datagram_opens_only_with_the_key_unaltered_and_fresh() {
        let now = 1_800_000_000_000;
        let d = seal(KEY, now, KIND_APP, b"swim");
        assert_eq!(open(KEY, now, &d), Some((KIND_APP, &b"swim"[..])));
        assert_eq!(open(KEY, now + 9_000, &d), Some((KIND_APP, &b"swim"[..])), "within the window");
        assert_eq!(open(KEY, now + 11_000, &d), None, "replayed too late");
        assert_eq!(open(b"another key of 32 bytes.........", now, &d), None);
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 1;
            assert_eq!(open(KEY, now, &bad), None, "byte {i} flipped");
        }
        assert_eq!(open(KEY, now, &d[..d.len() - 1]), None);
        assert_eq!(open(KEY, now, &[]), None);
    }
}
