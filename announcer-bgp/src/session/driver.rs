//! The thin I/O driver of one session: a tokio task that owns the TCP connection, the
//! timers and the Adj-RIB-Out, feeds events to the pure [`Session`], and carries out its
//! [`Output`]s. It holds no protocol logic of its own.
//!
//! Connections are opened actively, with the TCP MD5 key (RFC 2385) set before `connect`,
//! the source address bound when configured, and a TTL of 1 on single-hop eBGP (255 with
//! `ebgpMultiHop` and on iBGP). The session's local address is the next hop of its routes.
//!
//! Writing never blocks the session: encoded messages go to a writer task through a queue,
//! so a peer that stops reading cannot stall our timers (its own hold timer, or TCP, ends the
//! session). Reads are polled before timers, so a KEEPALIVE that has arrived always counts.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::fsm::{self, Input, Output, Session, State, Timer};
use crate::codec::{Codec, CodecError};
use crate::rib::{end_of_rib, AdjRibOut, PeerCtx};
use crate::wire::iana::{AFI_IPV4, AFI_IPV6, SAFI_UNICAST};
use crate::wire::{Message, Notification, Open, Update};
use lbcore::announcer::Routes;

/// Everything needed to run one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// The BGPPeer's name (for logs and status).
    pub name: String,
    /// Peer address and port.
    pub remote: SocketAddr,
    /// Local address to connect from.
    pub source: Option<IpAddr>,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// Multi-hop eBGP (TTL 255 instead of 1).
    pub ebgp_multihop: bool,
    /// GTSM (RFC 5082) on this single-hop eBGP session: send with TTL 255 and accept only
    /// segments that arrive with 254 or more.
    pub gtsm: bool,
    /// The session's settings (a router ID of 0 is taken from the local IPv4 address).
    pub fsm: fsm::Config,
}

/// What the session is doing, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// FSM state.
    pub state: State,
    /// Since when.
    pub since: SystemTime,
    /// Why it last went down.
    pub last_error: Option<String>,
    /// Routes the peer holds from us.
    pub routes: usize,
    /// UPDATE messages sent since start.
    pub updates_sent: u64,
}

/// A running session.
pub struct Peer {
    incoming: mpsc::UnboundedSender<TcpStream>,
    routes: watch::Sender<Routes>,
    stop: oneshot::Sender<Option<Notification>>,
    /// Its status.
    pub status: watch::Receiver<PeerStatus>,
    task: JoinHandle<()>,
}

impl Peer {
    /// Starts the session task.
    pub fn spawn(spec: PeerSpec, routes: Routes) -> Peer {
        let (routes_tx, routes_rx) = watch::channel(routes.clone());
        let (stop_tx, stop_rx) = oneshot::channel();
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let status =
            PeerStatus { state: State::Idle, since: SystemTime::now(), last_error: None, routes: 0, updates_sent: 0 };
        let (status_tx, status_rx) = watch::channel(status);
        let seed =
            spec.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let driver = Driver {
            session: Session::new(spec.fsm.clone(), seed),
            spec,
            conn: None,
            connecting: None,
            timers: BTreeMap::new(),
            codec: Codec::default(),
            rib: AdjRibOut::default(),
            desired: routes,
            ctx: None,
            status: status_tx,
        };
        let task = tokio::spawn(driver.run(routes_rx, stop_rx, incoming_rx));
        Peer { incoming: incoming_tx, routes: routes_tx, stop: stop_tx, status: status_rx, task }
    }

    /// Hands over a connection the peer opened to us.
    pub fn incoming(&self, stream: TcpStream) {
        let _ = self.incoming.send(stream);
    }

    /// Replaces the routes to announce.
    /// (Only the latest set matters: a session that is busy skips intermediate ones.)
    pub fn set_routes(&self, routes: Routes) {
        let _ = self.routes.send(routes);
    }

    /// Ends the session: with `notify` (withdrawing everything), or by closing the
    /// connection without a NOTIFICATION (graceful restart: the peer keeps the routes).
    pub async fn stop(self, notify: Option<Notification>) {
        let _ = self.stop.send(notify);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), self.task).await.is_err() {
            abort.abort();
        }
    }
}

struct Conn {
    read: OwnedReadHalf,
    /// Encoded messages for the writer task. A failed write ends the task; the read half
    /// then sees the connection fail too.
    out: mpsc::UnboundedSender<Bytes>,
    writer: JoinHandle<()>,
    buf: BytesMut,
    local: SocketAddr,
}

impl Conn {
    /// Flushes what is queued (at most `wait`), then closes our side.
    async fn close_gracefully(self, wait: Duration) {
        let Conn { out, writer, .. } = self;
        drop(out);
        let abort = writer.abort_handle();
        if tokio::time::timeout(wait, writer).await.is_err() {
            abort.abort();
        }
    }
}

/// Writes queued messages until the queue closes or a write fails; then shuts the
/// connection down for writing.
async fn write_loop(mut write: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    while let Some(b) = rx.recv().await {
        if write.write_all(&b).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

type Connecting = Pin<Box<dyn std::future::Future<Output = std::io::Result<TcpStream>> + Send>>;

struct Driver {
    spec: PeerSpec,
    session: Session,
    conn: Option<Conn>,
    connecting: Option<Connecting>,
    timers: BTreeMap<Timer, Instant>,
    codec: Codec,
    rib: AdjRibOut,
    desired: Routes,
    ctx: Option<PeerCtx>,
    status: watch::Sender<PeerStatus>,
}

/// Opens the connection with the socket options set before `connect`.
async fn connect(spec: PeerSpec) -> std::io::Result<TcpStream> {
    let domain = if spec.remote.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    if let Some(pw) = &spec.password {
        crate::sockopt::set_md5(&sock, spec.remote.ip(), pw.as_bytes())?;
    }
    let ibgp = matches!(spec.fsm.peer_as, fsm::PeerAs::Internal)
        || matches!(spec.fsm.peer_as, fsm::PeerAs::Fixed(a) if a == spec.fsm.local_as);
    let ttl = if spec.ebgp_multihop || ibgp || spec.gtsm { 255 } else { 1 };
    if spec.remote.is_ipv4() {
        sock.set_ttl_v4(ttl)?;
    } else {
        sock.set_unicast_hops_v6(ttl)?;
    }
    if spec.gtsm {
        crate::sockopt::set_min_ttl(&sock, spec.remote.is_ipv6(), 254)?;
    }
    if let Some(src) = spec.source {
        sock.bind(&SocketAddr::new(src, 0).into())?;
    }
    let std_stream: std::net::TcpStream = sock.into();
    let socket = TcpSocket::from_std_stream(std_stream);
    let timeout = spec.fsm.connect_retry.clamp(Duration::from_secs(1), Duration::from_secs(30));
    match tokio::time::timeout(timeout, socket.connect(spec.remote)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// Reads the first message of a connection the peer opened; returns it if it is an OPEN,
/// with the stream and whatever was read after it.
async fn read_open(mut stream: TcpStream) -> Option<(TcpStream, BytesMut, Open)> {
    let mut codec = Codec::default();
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if let Ok(Some(m)) = codec.decode(&mut buf) {
            return match m {
                Message::Open(o) => Some((stream, buf, o)),
                _ => None,
            };
        }
        if stream.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// Closes a connection we do not keep with Cease / Connection Collision Resolution.
async fn refuse(mut stream: TcpStream) {
    let mut b = BytesMut::new();
    Notification::new(crate::wire::iana::ErrorCode::Cease, crate::wire::notification::CEASE_COLLISION).encode(&mut b);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&b)).await;
    let _ = stream.shutdown().await;
}

/// A router ID from a session's local address: an IPv4 address itself; for an IPv6 one,
/// the first IPv4 address of the interface that holds it, so that a dual-stack node shows
/// its routers one identifier on its IPv4 and IPv6 sessions; else (an IPv6-only interface)
/// a hash of the whole address, so that nodes whose addresses share their low bits do not
/// collide.
fn router_id_of(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => ipv4_beside(a).map(u32::from).unwrap_or_else(|| {
            let h = a.octets().iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
            h.max(1)
        }),
    }
}

/// The first (primary) IPv4 address of the interface that holds `v6`, unless that is a
/// loopback interface or `lb-vips`: those hold service addresses, which several nodes may
/// share and which would then be duplicate identifiers.
fn ipv4_beside(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let interfaces = pnet_datalink::interfaces();
    let iface = interfaces.iter().find(|i| i.ips.iter().any(|n| n.ip() == IpAddr::V6(v6)))?;
    if iface.is_loopback() || iface.name == "lb-vips" {
        return None;
    }
    iface.ips.iter().find_map(|n| match n.ip() {
        IpAddr::V4(a) if !a.is_loopback() && !a.is_unspecified() => Some(a),
        _ => None,
    })
}

impl Driver {
    async fn run(
        mut self,
        mut routes: watch::Receiver<Routes>,
        mut stop_rx: oneshot::Receiver<Option<Notification>>,
        mut incoming: mpsc::UnboundedReceiver<TcpStream>,
    ) {
        self.handle(Input::Start).await;
        // Connections the peer opened during ours, with their OPEN once it is read (§6.8).
        let (collide_tx, mut collide_rx) = mpsc::unbounded_channel::<(TcpStream, BytesMut, Open)>();
        loop {
            let deadline = self.timers.values().min().copied();
            tokio::select! {
                biased;
                read = async {
                    match self.conn.as_mut() {
                        Some(c) => c.read.read_buf(&mut c.buf).await,
                        None => std::future::pending().await,
                    }
                }, if self.conn.is_some() => {
                    match read {
                        Ok(0) | Err(_) => self.handle(Input::TcpClosed).await,
                        Ok(_) => self.drain_messages().await,
                    }
                },
                changed = routes.changed() => {
                    if changed.is_err() {
                        // The Peer handle is gone: stop as on shutdown.
                        self.handle(Input::Stop(Notification::admin_shutdown("lb is shutting down"))).await;
                        break;
                    }
                    self.desired = routes.borrow_and_update().clone();
                    if self.session.state() == State::Established {
                        self.send_diff(false).await;
                    }
                },
                Some(stream) = incoming.recv() => {
                    match self.session.state() {
                        State::Idle | State::Connect | State::Active if self.conn.is_none() => {
                            tracing::info!(peer = %self.spec.name, "taking up a connection from the peer");
                            self.connecting = None;
                            self.connected(stream).await;
                        }
                        State::OpenSent | State::OpenConfirm => {
                            // A collision: read the peer's OPEN on the new connection first.
                            let tx = collide_tx.clone();
                            tokio::spawn(async move {
                                if let Ok(Some((s, b, o))) = tokio::time::timeout(Duration::from_secs(5), read_open(stream)).await {
                                    let _ = tx.send((s, b, o));
                                }
                            });
                        }
                        _ => refuse(stream).await,
                    }
                },
                Some((stream, buf, open)) = collide_rx.recv() => {
                    self.resolve_collision(stream, buf, open).await;
                },
                stop = &mut stop_rx => {
                    match stop {
                        Ok(Some(n)) => self.handle(Input::Stop(n)).await,
                        // Close without NOTIFICATION: with graceful restart the peer keeps
                        // our routes for the restart time (RFC 4724).
                        Ok(None) | Err(_) => {
                            if let Some(c) = self.conn.take() {
                                c.writer.abort();
                            }
                        }
                    }
                    break;
                },
                done = async {
                    match self.connecting.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                }, if self.connecting.is_some() => {
                    self.connecting = None;
                    match done {
                        Ok(stream) => self.connected(stream).await,
                        Err(e) => self.handle(Input::TcpFailed(e.to_string())).await,
                    }
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let now = Instant::now();
                    let due: Vec<Timer> = self.timers.iter().filter(|(_, d)| **d <= now).map(|(t, _)| *t).collect();
                    for t in due {
                        self.timers.remove(&t);
                        self.handle(Input::Timer(t)).await;
                    }
                },
            }
        }
        // A NOTIFICATION just queued reaches the peer before the connection closes.
        if let Some(c) = self.conn.take() {
            c.close_gracefully(Duration::from_secs(1)).await;
        }
    }

    /// §6.8: keep the connection opened by the speaker with the higher BGP identifier.
    async fn resolve_collision(&mut self, stream: TcpStream, buf: BytesMut, open: Open) {
        let ours = self.session.router_id();
        let established = self.session.state() == State::Established;
        if established || crate::session::fsm::keep_our_connection(ours, open.bgp_id) || self.conn.is_none() {
            tracing::info!(peer = %self.spec.name, "connection collision: keeping ours");
            return refuse(stream).await;
        }
        tracing::info!(peer = %self.spec.name, "connection collision: keeping the peer's");
        let outs = self.session.collision_lost();
        for o in outs {
            let _ = self.apply(o).await;
        }
        self.connecting = None;
        self.connected(stream).await;
        if let Some(c) = self.conn.as_mut() {
            c.buf = buf;
        }
        self.handle(Input::Message(Message::Open(open))).await;
        self.drain_messages().await;
    }

    async fn connected(&mut self, stream: TcpStream) {
        // A connection the peer opened: its segments from now on must pass GTSM too, and
        // ours go out with 255.
        if self.spec.gtsm {
            // By the peer's family: an IPv4 peer on a dual-stack listener takes IPv4 options.
            let v6 = self.spec.remote.is_ipv6();
            let ttl = if v6 { socket2::SockRef::from(&stream).set_unicast_hops_v6(255) } else { stream.set_ttl(255) };
            if let Err(e) = ttl.and_then(|()| crate::sockopt::set_min_ttl(&stream, v6, 254)) {
                return self.handle(Input::TcpFailed(format!("cannot set up GTSM: {e}"))).await;
            }
        }
        // On a dual-stack listener an IPv4 connection shows IPv4-mapped addresses.
        let local = match stream.local_addr() {
            Ok(l) => SocketAddr::new(l.ip().to_canonical(), l.port()),
            Err(e) => return self.handle(Input::TcpFailed(e.to_string())).await,
        };
        if self.spec.fsm.router_id == 0 {
            self.session.set_router_id(router_id_of(local.ip()));
        }
        let (read, write) = stream.into_split();
        let (out, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(write, rx));
        self.conn = Some(Conn { read, out, writer, buf: BytesMut::with_capacity(4096), local });
        self.codec = Codec::default();
        self.handle(Input::TcpConnected).await;
    }

    async fn drain_messages(&mut self) {
        loop {
            let Some(c) = self.conn.as_mut() else { return };
            match self.codec.decode(&mut c.buf) {
                Ok(Some(m)) => self.handle(Input::Message(m)).await,
                Ok(None) => return,
                Err(CodecError::Decode(e)) => return self.handle(Input::DecodeError(e)).await,
                Err(CodecError::Io(_)) => return self.handle(Input::TcpClosed).await,
            }
        }
    }

    /// Feeds one input to the session and carries out everything it asks, including inputs
    /// that carrying it out produces (a failed write closes the connection).
    async fn handle(&mut self, input: Input) {
        let mut queue = std::collections::VecDeque::from(self.session.process(input));
        while let Some(o) = queue.pop_front() {
            if let Some(next) = self.apply(o).await {
                queue.extend(self.session.process(next));
            }
        }
    }

    async fn apply(&mut self, o: Output) -> Option<Input> {
        match o {
            Output::Connect => {
                self.connecting = Some(Box::pin(connect(self.spec.clone())));
                self.set_state(None);
            }
            Output::Send(m) => return self.send(&[m]).await,
            Output::Close => {
                // Let a NOTIFICATION queued just before reach the peer, without waiting here.
                if let Some(c) = self.conn.take() {
                    tokio::spawn(c.close_gracefully(Duration::from_secs(1)));
                }
                self.connecting = None;
                self.rib.clear();
                self.ctx = None;
            }
            Output::Arm(t, d) => {
                self.timers.insert(t, Instant::now() + d);
            }
            Output::Disarm(t) => {
                self.timers.remove(&t);
            }
            Output::Negotiated(n) => {
                self.codec.negotiate(&n.opens.0, &n.opens.1, n.ibgp);
                let local = self.conn.as_ref().map(|c| c.local.ip());
                self.ctx = Some(PeerCtx {
                    local_as: self.spec.fsm.local_as,
                    ibgp: n.ibgp,
                    four_octet_as: self.codec.cx.four_octet_as,
                    next_hop_v4: match local {
                        Some(IpAddr::V4(a)) => Some(a),
                        _ => None,
                    },
                    // A link-local address is no global next hop (RFC 2545 §3): then IPv6
                    // routes wait for a session with a global address.
                    next_hop_v6: match local {
                        Some(IpAddr::V6(a)) if !a.is_unicast_link_local() => Some(a),
                        _ => None,
                    },
                    max_len: self.codec.max_len(),
                    ipv4: n.families.contains(&(AFI_IPV4, SAFI_UNICAST)),
                    ipv6: n.families.contains(&(AFI_IPV6, SAFI_UNICAST)),
                });
            }
            Output::Established => {
                tracing::info!(peer = %self.spec.name, remote = %self.spec.remote, "BGP session established");
                self.set_state(None);
                return self.send_diff(true).await;
            }
            Output::ResendAll => {
                tracing::info!(peer = %self.spec.name, "ROUTE-REFRESH received: sending the whole table again");
                return self.send_diff(true).await;
            }
            Output::Down(why) => {
                tracing::warn!(peer = %self.spec.name, remote = %self.spec.remote, reason = %why, "BGP session down");
                self.set_state(Some(why));
            }
        }
        self.set_state(None);
        None
    }

    /// Sends what changed (or everything, then End-of-RIB).
    async fn send_diff(&mut self, full: bool) -> Option<Input> {
        let ctx = self.ctx.clone()?;
        let mut updates: Vec<Update> =
            if full { self.rib.full(&self.desired, &ctx) } else { self.rib.diff(&self.desired, &ctx) };
        if full {
            updates.extend(end_of_rib(&ctx));
        }
        let n = updates.len() as u64;
        let msgs: Vec<Message> = updates.into_iter().map(Message::Update).collect();
        let r = self.send(&msgs).await;
        if n > 0 {
            tracing::info!(peer = %self.spec.name, updates = n, routes = self.rib.sent().len(), full, "sent UPDATE messages");
        }
        self.status.send_modify(|s| {
            s.updates_sent += n;
            s.routes = self.rib.sent().len();
        });
        r
    }

    async fn send(&mut self, msgs: &[Message]) -> Option<Input> {
        let conn = self.conn.as_mut()?;
        let mut buf = BytesMut::new();
        for m in msgs {
            m.encode(&mut buf, self.codec.cx.four_octet_as);
        }
        match conn.out.send(buf.freeze()) {
            Ok(()) => None,
            Err(_) => {
                tracing::debug!(peer = %self.spec.name, "write failed");
                Some(Input::TcpClosed)
            }
        }
    }

    fn set_state(&self, error: Option<String>) {
        let state = self.session.state();
        self.status.send_if_modified(|s| {
            let mut changed = false;
            if s.state != state {
                tracing::info!(peer = %self.spec.name, from = ?s.state, to = ?state, "BGP session state");
                s.state = state;
                s.since = SystemTime::now();
                changed = true;
            }
            if let Some(e) = &error {
                s.last_error = Some(e.clone());
                changed = true;
            }
            changed
        });
    }
}
