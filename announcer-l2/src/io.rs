//! Raw-socket I/O: one worker thread per interface, owning a packet socket (through pnet's
//! datalink channel) and the interface's solicited-node multicast memberships.
//!
//! The socket is opened non-promiscuous with a classic BPF filter that lets through only ARP
//! and ICMPv6 Neighbor Solicitations, so the kernel drops every other frame before it is
//! copied to us. The receive call times out every 10 ms so the worker notices new addresses
//! and its stop flag; the address set is re-read before every frame is handled, so an
//! address given up is not answered again.
//!
//! Invariant: the worker's responder answers exactly for the addresses last stored in
//! [`WorkerShared`]; multicast groups joined are exactly the solicited-node groups of those
//! IPv6 addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use crate::responder::Responder;
use crate::wire::{ndisc, parse_frame, MacAddr};
use crate::L2Settings;

/// Classic BPF: drop frames that carried a VLAN tag (the kernel moves the tag out of the
/// frame before packet sockets see it, so a tagged request would otherwise be answered
/// untagged on the native VLAN) and frames we sent ourselves; accept ARP, and IPv6 whose
/// next header is ICMPv6 with type 135 (Neighbor Solicitation); drop the rest. Offsets are
/// from the start of the Ethernet frame; 0xfffff0xx are the kernel's ancillary fields.
const FILTER: [SockFilter; 13] = [
    SockFilter::new(0x20, 0, 0, 0xffff_f030), //  0: ld vlan_tag_present
    SockFilter::new(0x15, 0, 10, 0),          //  1: jeq 0 else -> 12
    SockFilter::new(0x20, 0, 0, 0xffff_f004), //  2: ld pkttype
    SockFilter::new(0x15, 8, 0, 4),           //  3: jeq PACKET_OUTGOING -> 12
    SockFilter::new(0x28, 0, 0, 12),          //  4: ldh [12]          EtherType
    SockFilter::new(0x15, 5, 0, 0x0806),      //  5: jeq ARP -> 11
    SockFilter::new(0x15, 0, 5, 0x86dd),      //  6: jeq IPv6 else -> 12
    SockFilter::new(0x30, 0, 0, 20),          //  7: ldb [20]          IPv6 next header
    SockFilter::new(0x15, 0, 3, 58),          //  8: jeq ICMPv6 else -> 12
    SockFilter::new(0x30, 0, 0, 54),          //  9: ldb [54]          ICMPv6 type
    SockFilter::new(0x15, 0, 1, 135),         // 10: jeq NS else -> 12
    SockFilter::new(0x06, 0, 0, 0xffff),      // 11: ret accept
    SockFilter::new(0x06, 0, 0, 0),           // 12: ret drop
];

/// Opens a packet socket, which needs CAP_NET_RAW. Used at start to fail early and clearly.
pub fn probe_capability() -> io::Result<()> {
    Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0))).map(drop)
}

type Pair = (Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>);

/// How long a worker blocks reading before it looks at its owned set again.
const READ_TIMEOUT: Duration = Duration::from_millis(10);

/// A filtered, non-promiscuous packet channel on `iface`.
fn open(iface: &NetworkInterface) -> io::Result<Pair> {
    // Protocol 0: the socket receives nothing until pnet binds it to the interface (with
    // ETH_P_ALL), so no frame from another interface is ever queued on it.
    let sock = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
    sock.attach_filter(&FILTER)?;
    let config = pnet_datalink::Config {
        // The worker notices a new owned set between frames, at the latest when a read times
        // out: this bounds how long taking an address over (and its gratuitous ARP) waits.
        read_timeout: Some(READ_TIMEOUT),
        promiscuous: false,
        socket_fd: Some(std::os::fd::IntoRawFd::into_raw_fd(sock)),
        ..Default::default()
    };
    match pnet_datalink::channel(iface, config)? {
        Channel::Ethernet(tx, rx) => Ok((tx, rx)),
        _ => Err(io::Error::other("not an Ethernet channel")),
    }
}

/// What the manager shares with a worker.
#[derive(Debug, Default)]
pub struct WorkerShared {
    ips: Mutex<BTreeSet<IpAddr>>,
    /// Addresses to announce again (a burst, as when taken).
    again: Mutex<BTreeSet<IpAddr>>,
    version: AtomicU64,
    stop: AtomicBool,
    /// Addresses the worker answers for now (for status).
    pub answering: Mutex<BTreeSet<IpAddr>>,
}

/// Frames counted per address, for metrics (kept for the life of the announcer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2Counts {
    /// ARP requests and Neighbor Solicitations received for the address.
    pub requests: u64,
    /// Replies (ARP replies, Neighbor Advertisements) sent for it.
    pub responses: u64,
    /// Gratuitous ARPs and unsolicited Neighbor Advertisements sent for it.
    pub gratuitous: u64,
    /// Replies not sent because the reply rate bound (`--arp-reply-rate`) was reached.
    pub dropped: u64,
}

/// Counters shared by every worker.
pub type Counters = Arc<Mutex<BTreeMap<IpAddr, L2Counts>>>;

fn count(c: &Counters, ip: IpAddr, f: impl FnOnce(&mut L2Counts)) {
    if let Ok(mut m) = c.lock() {
        f(m.entry(ip).or_default());
    }
}

impl WorkerShared {
    /// Replaces the addresses to answer for.
    pub fn set_ips(&self, ips: BTreeSet<IpAddr>) {
        if let Ok(mut cur) = self.ips.lock() {
            if *cur != ips {
                *cur = ips;
                self.version.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Sends the gratuitous ARP / unsolicited NA burst again for those of `ips` this worker
    /// answers for.
    pub fn announce_again(&self, ips: &BTreeSet<IpAddr>) {
        if let Ok(mut again) = self.again.lock() {
            again.extend(ips.iter().copied());
            self.version.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A running worker.
pub struct Worker {
    /// Shared state.
    pub shared: Arc<WorkerShared>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// Opens the interface and starts answering (for nothing yet).
    pub fn start(
        iface: &NetworkInterface,
        mac: MacAddr,
        settings: &L2Settings,
        counters: Counters,
    ) -> io::Result<Worker> {
        let (tx, rx) = open(iface)?;
        let shared = Arc::new(WorkerShared::default());
        let state = Loop {
            name: iface.name.clone(),
            index: iface.index,
            tx,
            rx,
            responder: Responder::new(mac, settings.reply_rate),
            shared: Arc::clone(&shared),
            settings: settings.clone(),
            seen: u64::MAX,
            schedule: BTreeMap::new(),
            groups: Groups::default(),
            counters,
        };
        let handle = std::thread::Builder::new().name(format!("l2-{}", iface.name)).spawn(move || state.run())?;
        Ok(Worker { shared, handle: Some(handle) })
    }

    /// Stops answering at once and ends the thread.
    pub fn stop(mut self) {
        self.shared.set_ips(BTreeSet::new());
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }

    /// Whether the thread ended by itself (the interface went away).
    pub fn finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }
}

/// Solicited-node groups: those wanted (for the owned IPv6 addresses) and those joined.
/// A join that fails (IPv6 briefly disabled, a membership limit) is retried on every
/// [`Groups::retry`] until it succeeds.
#[derive(Default)]
struct Groups {
    socket: Option<Socket>,
    want: BTreeSet<Ipv6Addr>,
    joined: BTreeSet<Ipv6Addr>,
}

impl Groups {
    fn set(&mut self, index: u32, ips: &BTreeSet<IpAddr>) {
        self.want = ips
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(ndisc::solicited_node(*v6)),
                IpAddr::V4(_) => None,
            })
            .collect();
        self.retry(index);
    }

    /// Joins what is wanted and not joined, leaves what is joined and not wanted.
    fn retry(&mut self, index: u32) {
        if self.want == self.joined {
            return;
        }
        if self.socket.is_none() {
            match Socket::new(Domain::IPV6, Type::DGRAM, None) {
                Ok(s) => self.socket = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a socket to join solicited-node groups");
                    return;
                }
            }
        }
        let Some(sock) = &self.socket else { return };
        for g in self.joined.difference(&self.want).copied().collect::<Vec<_>>() {
            let _ = sock.leave_multicast_v6(&g, index);
            self.joined.remove(&g);
        }
        for g in self.want.difference(&self.joined).copied().collect::<Vec<_>>() {
            match sock.join_multicast_v6(&g, index) {
                Ok(()) => {
                    self.joined.insert(g);
                }
                Err(e) => tracing::warn!(group = %g, error = %e, "cannot join solicited-node group; will retry"),
            }
        }
    }
}

/// Announcements still to send for one address.
struct Pending {
    next: Instant,
    left: u32,
}

struct Loop {
    name: String,
    index: u32,
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    responder: Responder,
    shared: Arc<WorkerShared>,
    settings: L2Settings,
    seen: u64,
    schedule: BTreeMap<IpAddr, Pending>,
    groups: Groups,
    counters: Counters,
}

impl Loop {
    fn run(mut self) {
        tracing::info!(interface = %self.name, "answering ARP/NDP");
        let mut last_retry = Instant::now();
        while !self.shared.stop.load(Ordering::SeqCst) {
            self.refresh();
            self.announce(Instant::now());
            if last_retry.elapsed() >= Duration::from_secs(1) {
                self.groups.retry(self.index);
                last_retry = Instant::now();
            }
            let frame = match self.rx.next() {
                Ok(bytes) => parse_frame(bytes).ok(),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    None
                }
                Err(e) => {
                    tracing::warn!(interface = %self.name, error = %e, "receive failed; stopping this interface");
                    break;
                }
            };
            if let Some(frame) = frame {
                // Re-read the owned set first: an address given up a moment ago is not answered.
                self.refresh();
                let asked = self.responder.asked(&frame);
                if let Some(ip) = asked {
                    count(&self.counters, ip, |c| c.requests += 1);
                }
                let limited = self.responder.limited;
                let reply = self.responder.on_frame(Instant::now(), &frame);
                if let (Some(ip), true) = (asked, self.responder.limited > limited) {
                    count(&self.counters, ip, |c| c.dropped += 1);
                }
                if let Some(out) = reply {
                    self.send(&out.to_bytes());
                    if let Some(ip) = asked {
                        count(&self.counters, ip, |c| c.responses += 1);
                    }
                }
            }
        }
        self.groups.set(self.index, &BTreeSet::new());
        tracing::info!(interface = %self.name, "stopped answering");
    }

    fn again_take(&self) -> BTreeSet<IpAddr> {
        self.shared.again.lock().map(|mut a| std::mem::take(&mut *a)).unwrap_or_default()
    }

    fn refresh(&mut self) {
        let v = self.shared.version.load(Ordering::SeqCst);
        if v == self.seen {
            return;
        }
        self.seen = v;
        let ips = self.shared.ips.lock().map(|i| i.clone()).unwrap_or_default();
        let now = Instant::now();
        for ip in ips.difference(self.responder.ips()) {
            tracing::info!(interface = %self.name, %ip, "taking address");
            self.schedule.insert(*ip, Pending { next: now, left: self.settings.announce_count });
        }
        for ip in self.responder.ips().difference(&ips) {
            tracing::info!(interface = %self.name, %ip, "giving address up");
        }
        let again = self.again_take();
        for ip in again.intersection(&ips) {
            tracing::info!(interface = %self.name, %ip, "announcing address again");
            self.schedule.insert(*ip, Pending { next: now, left: self.settings.announce_count });
        }
        self.schedule.retain(|ip, _| ips.contains(ip));
        self.groups.set(self.index, &ips);
        if let Ok(mut a) = self.shared.answering.lock() {
            a.clone_from(&ips);
        }
        self.responder.set_ips(ips);
    }

    /// Sends due gratuitous ARP / unsolicited NA: a burst when an address is taken, then
    /// (if configured) one every refresh period.
    fn announce(&mut self, now: Instant) {
        let due: Vec<IpAddr> = self.schedule.iter().filter(|(_, p)| p.next <= now).map(|(ip, _)| *ip).collect();
        for ip in due {
            for out in self.responder.announcements(ip) {
                self.send(&out.to_bytes());
                count(&self.counters, ip, |c| c.gratuitous += 1);
            }
            let refresh = self.settings.garp_refresh;
            let interval = self.settings.announce_interval;
            match self.schedule.get_mut(&ip) {
                Some(p) if p.left > 1 => {
                    p.left -= 1;
                    p.next = now + interval;
                }
                Some(p) => match refresh {
                    Some(r) => p.next = now + r,
                    None => {
                        self.schedule.remove(&ip);
                    }
                },
                None => {}
            }
        }
    }

    fn send(&mut self, frame: &[u8]) {
        match self.tx.send_to(frame, None) {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::debug!(interface = %self.name, error = %e, "send failed"),
            None => tracing::debug!(interface = %self.name, "send failed: no buffer"),
        }
    }
}
