//! Standalone mode on several hosts: `lb run` on each, one shared configuration, and SWIM
//! membership ([`crate::membership`]) among them to choose, per address, the one host that
//! answers for it in L2 mode (BGP needs no choice: every selected host announces).
//!
//! The hosts are the configuration's `kind: Node` entries (name, labels for nodeSelectors,
//! `InternalIP` where membership listens) plus any `--peers`; a member without an entry has
//! only its `kubernetes.io/hostname` label.
//!
//! Who owns an address: every member sends its *claims* (the addresses it answers for, each
//! with when it took it) to every other member, on every change and every second, over the
//! membership socket (authenticated by the same key). A member counts for owner choice when
//! SWIM says it is alive *and* its claims since its current start have arrived. Among the
//! counted members the L2Advertisements select for an address, [`lbcore::plan::owner`] keeps
//! the oldest claimant and otherwise ranks: every member computes the same owner from the
//! same claims.
//!
//! Invariants and rules (the README's failover model):
//! - No flap-back: a member that (re)starts holds no claims, and takes no address until it
//!   counts every configured member or the join grace ([`JOIN_GRACE`]) is over; the others'
//!   claims keep their addresses.
//! - Split: SWIM cannot tell a dead member from one cut off, and a two-host group must still
//!   fail over, so a majority rule is not used. The tie-breaker is the announcing link's own
//!   health: a host whose membership link is down gives up every address and its claims (it
//!   could not answer anyway), and restarts the join grace when the link returns. Two hosts
//!   cut off from each other with both links up both answer until they meet again; then the
//!   older claim keeps the address and the other gives it up within one claims exchange.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use lbcore::plan;

use crate::membership::{self, Membership};

/// How long a member that (re)starts, or whose link comes back, waits to hear the others
/// before it takes addresses nobody it can hear holds.
pub const JOIN_GRACE: Duration = Duration::from_secs(2);
/// How often claims are sent again without a change (a lost datagram costs at most this).
const RESEND: Duration = Duration::from_secs(1);
/// How often the link is looked at, and the seeds asked again while alone.
const TICK: Duration = Duration::from_millis(50);
const REJOIN: Duration = Duration::from_secs(2);

/// Claims per datagram (an IPv6 claim is at most 27 bytes with postcard: 40 fit in 1400).
const PER_PART: usize = 40;
/// Bounds on what a member may send (memory stays bounded whatever arrives).
const MAX_PARTS: u16 = 4096;

/// One datagram of a member's claims: part `part` of `parts` of its claim set number `seq`
/// of the process started at `started_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimsPart {
    /// The member's node name.
    pub node: String,
    /// When its process started (ms since the Unix epoch).
    pub started_ms: u64,
    /// Numbers its claim sets; a new set has a higher number.
    pub seq: u64,
    /// This part's index.
    pub part: u16,
    /// How many parts the set has.
    pub parts: u16,
    /// Addresses, each with when the member took it (ms since the Unix epoch).
    pub claims: Vec<(IpAddr, u64)>,
}

impl ClaimsPart {
    /// The datagram payload.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// A payload back; None for anything that is not a well-formed part.
    pub fn decode(bytes: &[u8]) -> Option<ClaimsPart> {
        let p: ClaimsPart = postcard::from_bytes(bytes).ok()?;
        (p.parts > 0 && p.parts <= MAX_PARTS && p.part < p.parts && p.claims.len() <= PER_PART).then_some(p)
    }
}

/// Another member's claims: the last complete set, and the set being assembled.
#[derive(Debug, Default)]
struct Peer {
    version: (u64, u64),
    assembling: Vec<Option<Vec<(IpAddr, u64)>>>,
    complete: Option<BTreeMap<IpAddr, u64>>,
}

/// The claims this member holds and has heard. Pure state: no sockets, no clocks.
#[derive(Debug)]
pub struct Group {
    me: String,
    started_ms: u64,
    seq: u64,
    mine: BTreeMap<IpAddr, u64>,
    peers: BTreeMap<String, Peer>,
    /// Held addresses another member claims too (it is about to give them up).
    contested: BTreeSet<IpAddr>,
    /// Held addresses that were contested and no longer are.
    settled: BTreeSet<IpAddr>,
}

impl Group {
    /// A member named `me` whose process started at `started_ms`, holding nothing.
    pub fn new(me: impl Into<String>, started_ms: u64) -> Group {
        Group {
            me: me.into(),
            started_ms,
            seq: 0,
            mine: BTreeMap::new(),
            peers: BTreeMap::new(),
            contested: BTreeSet::new(),
            settled: BTreeSet::new(),
        }
    }

    /// This member's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The addresses this member answers for.
    pub fn mine(&self) -> BTreeSet<IpAddr> {
        self.mine.keys().copied().collect()
    }

    /// Takes a part another member sent. True when that member's complete claim set changed
    /// (or became known), which may change owners.
    pub fn receive(&mut self, p: ClaimsPart) -> bool {
        if p.node == self.me {
            return false;
        }
        let peer = self.peers.entry(p.node.clone()).or_default();
        let version = (p.started_ms, p.seq);
        if version < peer.version {
            return false;
        }
        let mut changed = false;
        if version > peer.version {
            // A new start means the old process's claims are void at once.
            if p.started_ms > peer.version.0 && peer.complete.is_some() {
                peer.complete = None;
                changed = true;
            }
            peer.version = version;
            peer.assembling = vec![None; usize::from(p.parts)];
        }
        if peer.assembling.len() != usize::from(p.parts) {
            return changed;
        }
        let i = usize::from(p.part);
        peer.assembling[i] = Some(p.claims);
        if peer.assembling.iter().all(Option::is_some) {
            let set: BTreeMap<IpAddr, u64> = peer.assembling.iter().flatten().flatten().copied().collect();
            changed |= peer.complete.as_ref() != Some(&set);
            peer.complete = Some(set);
        }
        changed
    }

    /// Forgets what `node` claimed (SWIM says it is down).
    pub fn forget(&mut self, node: &str) -> bool {
        self.peers.remove(node).is_some_and(|p| p.complete.is_some())
    }

    /// Whether `node`'s claims since its current start are known.
    pub fn knows(&self, node: &str) -> bool {
        node == self.me || self.peers.get(node).is_some_and(|p| p.complete.is_some())
    }

    /// Gives up every address (the link is down).
    pub fn clear(&mut self) -> bool {
        let had = !self.mine.is_empty();
        if had {
            self.mine.clear();
            self.seq += 1;
        }
        had
    }

    /// Decides what this member answers for, given, per address, the counted members that
    /// may answer for it (this one included where it may). `may_take`: whether it may take
    /// an address it does not hold yet (false during the join grace). Returns whether the
    /// set changed.
    pub fn decide(&mut self, eligible: &BTreeMap<IpAddr, Vec<&str>>, may_take: bool, now_ms: u64) -> bool {
        let mut next = BTreeMap::new();
        for (ip, nodes) in eligible {
            if !nodes.contains(&self.me.as_str()) {
                continue;
            }
            let mut claims: Vec<(u64, &str)> = nodes
                .iter()
                .filter_map(|n| {
                    let since = if *n == self.me {
                        self.mine.get(ip)
                    } else {
                        self.peers.get(*n).and_then(|p| p.complete.as_ref()).and_then(|c| c.get(ip))
                    };
                    since.map(|s| (*s, *n))
                })
                .collect();
            claims.sort();
            let claimed = claims.first().map(|(_, n)| *n);
            if plan::owner(*ip, nodes, claimed) == Some(self.me.as_str()) {
                match self.mine.get(ip) {
                    Some(since) => {
                        next.insert(*ip, *since);
                    }
                    None if may_take => {
                        next.insert(*ip, now_ms);
                    }
                    None => {}
                }
            }
        }
        let changed = next.keys().ne(self.mine.keys());
        if changed {
            self.seq += 1;
        }
        self.mine = next;
        let contested: BTreeSet<IpAddr> = self
            .mine
            .keys()
            .filter(|ip| self.peers.values().any(|p| p.complete.as_ref().is_some_and(|c| c.contains_key(ip))))
            .copied()
            .collect();
        self.settled.extend(self.contested.difference(&contested).filter(|ip| self.mine.contains_key(ip)));
        self.contested = contested;
        changed
    }

    /// Held addresses another member also answered for until a moment ago (after a split):
    /// clients may have followed its announcements, so this member announces them again.
    pub fn take_settled(&mut self) -> BTreeSet<IpAddr> {
        std::mem::take(&mut self.settled)
    }

    /// This member's claims, as datagram payloads.
    pub fn parts(&self) -> Vec<Vec<u8>> {
        let claims: Vec<(IpAddr, u64)> = self.mine.iter().map(|(ip, s)| (*ip, *s)).collect();
        let chunks: Vec<&[(IpAddr, u64)]> =
            if claims.is_empty() { vec![&[]] } else { claims.chunks(PER_PART).collect() };
        let parts = u16::try_from(chunks.len()).unwrap_or(MAX_PARTS).min(MAX_PARTS);
        chunks
            .iter()
            .take(usize::from(parts))
            .enumerate()
            .map(|(i, c)| {
                ClaimsPart {
                    node: self.me.clone(),
                    started_ms: self.started_ms,
                    seq: self.seq,
                    part: i as u16,
                    parts,
                    claims: c.to_vec(),
                }
                .encode()
            })
            .collect()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The health of the link that carries this member's membership address: up while the
/// interface holding the address is operationally up (or reports `unknown`, as dummy and
/// some virtual interfaces do).
#[derive(Debug)]
struct Link {
    ip: IpAddr,
    name: Option<String>,
    ok: bool,
    warned: bool,
    /// When the address was last looked for with `ip` (at most once a second while the
    /// link is down: this runs every tick).
    searched: Option<Instant>,
}

impl Link {
    /// The interface holding `ip`, from `ip -o addr` (iproute2).
    fn find(ip: IpAddr) -> Option<String> {
        let out = std::process::Command::new("ip").args(["-o", "addr", "show"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let addr = f.get(3)?.split('/').next()?.parse::<IpAddr>().ok()?;
            (addr == ip).then(|| f[1].split('@').next().unwrap_or(f[1]).trim_end_matches(':').to_string())
        })
    }

    fn up(name: &str) -> bool {
        let state = std::fs::read_to_string(format!("/sys/class/net/{name}/operstate")).unwrap_or_default();
        matches!(state.trim(), "up" | "unknown")
    }

    /// Looks again; Some(new state) when it changed.
    fn check(&mut self) -> Option<bool> {
        let ok = match self.name.as_deref().filter(|n| Self::up(n)) {
            Some(_) => true,
            None if self.searched.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) => false,
            None => {
                // Down, or the interface was renamed or recreated: find the address again.
                self.searched = Some(Instant::now());
                self.name = Self::find(self.ip);
                self.name.as_deref().is_some_and(Self::up)
            }
        };
        if self.name.is_none() && !self.warned {
            tracing::warn!(ip = %self.ip, "the membership address is on no interface: answering for nothing");
            self.warned = true;
        }
        (ok != self.ok).then(|| {
            self.ok = ok;
            ok
        })
    }
}

/// How this member joins its group.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name.
    pub name: String,
    /// This node's membership address.
    pub addr: SocketAddr,
    /// The other members' addresses.
    pub seeds: Vec<SocketAddr>,
    /// The shared key.
    pub key: Vec<u8>,
}

/// A running member of a standalone group: membership, the claims exchange, the link watch
/// and the join grace. [`Runtime::step`] says when owners may have changed; the caller then
/// works out who may answer for what and calls [`Runtime::decide`].
pub struct Runtime {
    membership: Membership,
    inbox: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
    alive: watch::Receiver<BTreeMap<String, SocketAddr>>,
    group: Group,
    seeds: Vec<SocketAddr>,
    link: Link,
    grace_until: Instant,
    grace_over: bool,
    last_sent: Instant,
    last_join: Instant,
    tick: tokio::time::Interval,
}

impl Runtime {
    /// Starts membership on `s.addr` and joins through the seeds.
    pub async fn start(s: Settings) -> Result<Runtime, membership::MembershipError> {
        let mut ms = membership::Settings::new(s.name.clone(), s.addr, s.seeds.clone(), s.key);
        ms.advertise = Some(s.addr);
        let mut membership = Membership::start(ms).await?;
        let inbox = membership.messages().ok_or_else(|| {
            membership::MembershipError::Bind(s.addr, std::io::Error::other("membership inbox already taken"))
        })?;
        let alive = membership.watch();
        let mut link = Link { ip: s.addr.ip(), name: None, ok: false, warned: false, searched: None };
        link.check();
        let now = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(addr = %s.addr, seeds = s.seeds.len(), link_up = link.ok, "membership started");
        Ok(Runtime {
            membership,
            inbox,
            alive,
            group: Group::new(s.name, now_ms()),
            seeds: s.seeds,
            link,
            grace_until: now + JOIN_GRACE,
            grace_over: false,
            last_sent: now,
            last_join: now,
            tick,
        })
    }

    /// This member's name.
    pub fn me(&self) -> &str {
        self.group.me()
    }

    /// The other members' addresses (the configuration changed).
    pub fn set_seeds(&mut self, seeds: Vec<SocketAddr>) {
        self.seeds = seeds;
    }

    /// Members that count for owner choice: alive, with their claims known; this one only
    /// while its link is up.
    pub fn counted(&self) -> Vec<String> {
        let alive = self.alive.borrow();
        alive.keys().filter(|n| self.group.knows(n) && (self.link.ok || *n != self.group.me())).cloned().collect()
    }

    /// The addresses this member answers for.
    pub fn mine(&self) -> BTreeSet<IpAddr> {
        self.group.mine()
    }

    /// See [`Group::take_settled`].
    pub fn take_settled(&mut self) -> BTreeSet<IpAddr> {
        self.group.take_settled()
    }

    /// Decides what this member answers for (see [`Group::decide`]), with the link and the
    /// join grace applied, and tells the others at once when it changed.
    pub fn decide(&mut self, eligible: &BTreeMap<IpAddr, Vec<&str>>) -> BTreeSet<IpAddr> {
        let changed = if self.link.ok {
            let may_take = self.heard_all() || self.grace_over;
            self.group.decide(eligible, may_take, now_ms())
        } else {
            self.group.clear()
        };
        if changed {
            self.publish();
        }
        self.group.mine()
    }

    /// Whether every configured member counts (then the join grace is over early: nobody
    /// else could hold an address).
    fn heard_all(&self) -> bool {
        let alive = self.alive.borrow();
        let counted: BTreeSet<SocketAddr> =
            alive.iter().filter(|(n, _)| self.group.knows(n)).map(|(_, a)| *a).collect();
        self.seeds.iter().all(|s| counted.contains(s))
    }

    fn publish(&mut self) {
        let targets: Vec<SocketAddr> =
            self.alive.borrow().iter().filter(|(n, _)| *n != self.group.me()).map(|(_, a)| *a).collect();
        let parts = self.group.parts();
        for to in targets {
            for p in &parts {
                self.membership.send(to, p.clone());
            }
        }
        self.last_sent = Instant::now();
    }

    /// Waits for something that may change owners: a member up or down, claims that
    /// changed, the link going down or up, the end of the join grace. Returns true then.
    pub async fn step(&mut self) -> bool {
        tokio::select! {
            Some((from, bytes)) = self.inbox.recv() => {
                let Some(p) = ClaimsPart::decode(&bytes) else {
                    tracing::debug!(%from, "a membership message that is not a claims part");
                    return false;
                };
                let new = !self.group.knows(&p.node);
                let changed = self.group.receive(p);
                // A member we did not know yet learns our claims at once, not in a second.
                if new && changed {
                    for part in self.group.parts() {
                        self.membership.send(from, part);
                    }
                }
                changed
            }
            Ok(()) = self.alive.changed() => {
                let alive: BTreeSet<String> = self.alive.borrow_and_update().keys().cloned().collect();
                let gone: Vec<String> =
                    self.group.peers.keys().filter(|n| !alive.contains(*n)).cloned().collect();
                for n in gone {
                    self.group.forget(&n);
                }
                self.publish();
                true
            }
            _ = self.tick.tick() => {
                let now = Instant::now();
                let mut replan = false;
                if let Some(up) = self.link.check() {
                    tracing::warn!(interface = ?self.link.name, up, "membership link changed");
                    if up {
                        self.grace_until = now + JOIN_GRACE;
                        self.grace_over = false;
                    }
                    replan = true;
                }
                if self.counted().len() <= 1 && now.duration_since(self.last_join) >= REJOIN {
                    for s in &self.seeds {
                        self.membership.join(*s);
                    }
                    self.last_join = now;
                }
                if now.duration_since(self.last_sent) >= RESEND {
                    self.publish();
                }
                // The grace ends: what nobody we hear holds may be taken now.
                if !self.grace_over && now >= self.grace_until {
                    self.grace_over = true;
                    replan = true;
                }
                replan
            }
        }
    }

    /// Leaves the group: the others take over at once.
    pub async fn leave(self) {
        self.membership.leave().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn deliver(from: &Group, to: &mut Group) -> bool {
        let mut changed = false;
        for p in from.parts() {
            changed |= to.receive(ClaimsPart::decode(&p).expect("decodes"));
        }
        changed
    }

    fn all<'a>(ips: &[IpAddr], nodes: &[&'a str]) -> BTreeMap<IpAddr, Vec<&'a str>> {
        ips.iter().map(|i| (*i, nodes.to_vec())).collect()
    }

    #[test]
    fn members_that_agree_on_the_claims_pick_exactly_one_owner_per_address() {
        let ips: Vec<IpAddr> = (1..=30).map(|i| ip(&format!("10.0.0.{i}"))).collect();
        let mut g: Vec<Group> = ["a", "b", "c"].iter().map(|n| Group::new(*n, 1)).collect();
        for m in &mut g {
            m.decide(&all(&ips, &["a", "b", "c"]), true, 10);
        }
        let mut owners = BTreeMap::new();
        for m in &g {
            for i in m.mine() {
                assert!(owners.insert(i, m.me().to_string()).is_none(), "{i} taken twice");
            }
        }
        assert_eq!(owners.len(), 30);
        assert!(g.iter().all(|m| !m.mine().is_empty()), "spread over every member");
    }

    #[test]
    fn a_member_that_comes_back_takes_nothing_back() {
        let ips = [ip("10.0.0.7")];
        let (mut a, mut b) = (Group::new("a", 1), Group::new("b", 1));
        let both = all(&ips, &["a", "b"]);
        a.decide(&both, true, 10);
        b.decide(&both, true, 10);
        let first = if a.mine().is_empty() { "b" } else { "a" };
        let (owner, other) = if first == "a" { (&mut a, &mut b) } else { (&mut b, &mut a) };
        // The owner dies; the other is alone and takes it.
        let other_name = other.me().to_string();
        assert!(other.decide(&all(&ips, &[other_name.as_str()]), true, 20));
        // The owner restarts: during the grace it takes nothing; once it hears the other's
        // claim, it still takes nothing, though it ranks first.
        let mut back = Group::new(owner.me(), 30);
        let back_name = back.me().to_string();
        back.decide(&all(&ips, &[back_name.as_str()]), false, 31);
        assert!(back.mine().is_empty(), "nothing taken during the grace");
        assert!(deliver(other, &mut back));
        back.decide(&both, true, 32);
        assert!(back.mine().is_empty(), "flapped back");
        deliver(&back, other);
        other.decide(&both, true, 33);
        assert_eq!(other.mine(), BTreeSet::from(ips));
    }

    #[test]
    fn after_a_split_the_older_claim_keeps_the_address() {
        let ips = [ip("10.0.0.7")];
        let (mut a, mut b) = (Group::new("a", 1), Group::new("b", 1));
        a.decide(&all(&ips, &["a"]), true, 10);
        b.decide(&all(&ips, &["b"]), true, 20);
        assert!(deliver(&a, &mut b) && deliver(&b, &mut a));
        a.decide(&all(&ips, &["a", "b"]), true, 30);
        b.decide(&all(&ips, &["a", "b"]), true, 30);
        assert_eq!((a.mine().len(), b.mine().len()), (1, 0), "a claimed first");
        assert!(a.take_settled().is_empty(), "b has not given it up yet");
        deliver(&b, &mut a);
        a.decide(&all(&ips, &["a", "b"]), true, 31);
        assert_eq!(a.take_settled(), BTreeSet::from(ips), "settled: a announces it again");
        assert!(a.take_settled().is_empty());
    }

    #[test]
    fn a_restart_voids_the_old_claims_and_parts_assemble_in_any_order() {
        let ips: Vec<IpAddr> = (0..100u32).map(|i| IpAddr::from([10, 1, (i >> 8) as u8, i as u8])).collect();
        let mut a = Group::new("a", 1);
        a.decide(&all(&ips, &["a"]), true, 5);
        let parts = a.parts();
        assert_eq!(parts.len(), 3, "100 claims in parts of 40");
        assert!(parts.iter().all(|p| p.len() < 1400));
        let mut b = Group::new("b", 1);
        for p in parts.iter().rev() {
            b.receive(ClaimsPart::decode(p).unwrap());
        }
        assert!(b.knows("a"));
        // A stale part (an older set) changes nothing.
        assert!(!b.receive(ClaimsPart { node: "a".into(), started_ms: 1, seq: 0, part: 0, parts: 1, claims: vec![] }));
        // a restarts: the old claims are void before the new set is complete.
        let restarted = ClaimsPart { node: "a".into(), started_ms: 9, seq: 0, part: 0, parts: 2, claims: vec![] };
        assert!(b.receive(restarted));
        assert!(!b.knows("a"));
        assert!(ClaimsPart::decode(&[0xff; 40]).is_none());
        assert!(ClaimsPart::decode(&[]).is_none());
    }
}
