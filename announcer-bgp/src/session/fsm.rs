//! The BGP session state machine ([RFC 4271 §8]) as a pure function:
//! `Session::process(input) -> outputs`. No sockets, no clock, no tokio: the driver feeds it
//! inputs (connection events, expired timers, decoded messages) and carries out its outputs
//! (connect, send, close, arm and disarm timers).
//!
//! States follow §8.2.2. The speaker connects actively; connect retries back off
//! exponentially from 1 s up to the configured connect time, with ±25% jitter from a small
//! deterministic generator. The hold time is the smaller of both proposals (0, or at least
//! 3 s); keepalives go every third of it, or as configured when that is shorter. Every error
//! that ends a session in the RFC sends its NOTIFICATION first.
//!
//! [RFC 4271 §8]: https://www.rfc-editor.org/rfc/rfc4271#section-8

use std::time::Duration;

use crate::wire::capability::GrFamily;
use crate::wire::iana::{ErrorCode, AFI_IPV4, AFI_IPV6, SAFI_UNICAST};
use crate::wire::{Capability, DecodeError, Message, Notification, Open, OpenError};

/// The peer's AS: fixed, or any within iBGP / eBGP (MetalLB's `dynamicASN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAs {
    /// Exactly this AS.
    Fixed(u32),
    /// Our own AS.
    Internal,
    /// Any AS but ours.
    External,
}

/// What the session needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our AS.
    pub local_as: u32,
    /// The peer's AS.
    pub peer_as: PeerAs,
    /// Our BGP identifier.
    pub router_id: u32,
    /// Proposed hold time, seconds (0 or ≥ 3).
    pub hold_time: u16,
    /// Keepalive interval, seconds (None: a third of the negotiated hold time).
    pub keepalive: Option<u16>,
    /// Longest wait between connection attempts.
    pub connect_retry: Duration,
    /// Advertise graceful restart as a restarting speaker (RFC 4724) for both families.
    pub graceful_restart: bool,
}

/// Session states (§8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not connecting.
    Idle,
    /// A TCP connection is being opened.
    Connect,
    /// Waiting to retry the connection.
    Active,
    /// Our OPEN is sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for a KEEPALIVE.
    OpenConfirm,
    /// Routes can be exchanged.
    Established,
}

/// The session's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Time to retry a connection.
    ConnectRetry,
    /// The peer has been silent too long.
    Hold,
    /// Time to send a KEEPALIVE.
    Keepalive,
}

/// Inputs, each covering RFC 4271 events.
// Inputs live for one event, one at a time; boxing messages would cost an allocation per
// message received.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Events 1/3: start the session.
    Start,
    /// Event 2: stop it, with a NOTIFICATION (Cease) when it is up.
    Stop(Notification),
    /// Events 16/17: the TCP connection is up.
    TcpConnected,
    /// Event 18: the connection attempt failed.
    TcpFailed(String),
    /// The connection closed under us.
    TcpClosed,
    /// Events 9, 10, 11: a timer expired.
    Timer(Timer),
    /// Events 19-27: a message arrived.
    Message(Message),
    /// Events 21/22/28: a message could not be decoded.
    DecodeError(DecodeError),
}

/// What the session negotiated with its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS.
    pub peer_as: u32,
    /// The peer's BGP identifier.
    pub peer_id: u32,
    /// Hold time, seconds (0: none).
    pub hold_time: u16,
    /// Keepalive interval, seconds (0: none).
    pub keepalive: u16,
    /// An iBGP session.
    pub ibgp: bool,
    /// The peer supports route refresh.
    pub route_refresh: bool,
    /// Address families both sides announced (RFC 4760 §8; a peer announcing none has
    /// IPv4 unicast only). Routes of other families must not be sent.
    pub families: Vec<(u16, u8)>,
    /// Our OPEN and theirs (the codec negotiates from them).
    pub opens: (Open, Open),
}

/// What the driver must do.
// Outputs live for one event and come a few at a time; boxing messages would cost more
// allocations than the variant sizes cost memory.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer.
    Connect,
    /// Send a message.
    Send(Message),
    /// Close the TCP connection.
    Close,
    /// Start (or restart) a timer.
    Arm(Timer, Duration),
    /// Stop a timer.
    Disarm(Timer),
    /// OPENs exchanged: set up the codec.
    Negotiated(Box<Negotiated>),
    /// The session is established: send the whole table, then End-of-RIB.
    Established,
    /// The peer asked for a refresh: send the whole table again.
    ResendAll,
    /// The session went down, and why.
    Down(String),
}

/// RFC 4271 §8.2.2: the large hold timer while waiting for the peer's OPEN.
const OPEN_HOLD: Duration = Duration::from_secs(240);

/// One BGP session's state machine.
#[derive(Debug, Clone)]
pub struct Session {
    cfg: Config,
    state: State,
    negotiated: Option<Negotiated>,
    attempts: u32,
    rng: u64,
    stopped: bool,
}

impl Session {
    /// A session in Idle. `seed` feeds the retry jitter.
    pub fn new(cfg: Config, seed: u64) -> Self {
        Session { cfg, state: State::Idle, negotiated: None, attempts: 0, rng: seed | 1, stopped: false }
    }

    /// Sets our BGP identifier (taken from the local address when none is configured);
    /// used for the next OPEN.
    pub fn set_router_id(&mut self, id: u32) {
        self.cfg.router_id = id;
    }

    /// Our BGP identifier.
    pub fn router_id(&self) -> u32 {
        self.cfg.router_id
    }

    /// A connection collision was resolved in favour of the peer's connection (§6.8): the
    /// current one is dropped without a reconnect wait, so the other can be taken up at once.
    pub fn collision_lost(&mut self) -> Vec<Output> {
        let mut out = vec![Output::Send(Message::Notification(Notification::new(ErrorCode::Cease, 7)))];
        out.extend(self.reset("connection collision: keeping the peer's connection".into()));
        out
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What was negotiated, once OPENs are exchanged (the driver reads it from the
    /// outputs; the tests ask).
    #[cfg(test)]
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Processes one input.
    pub fn process(&mut self, input: Input) -> Vec<Output> {
        match input {
            Input::Start => self.on_start(),
            Input::Stop(n) => self.on_stop(n),
            Input::TcpConnected => self.on_connected(),
            Input::TcpFailed(why) => self.on_connect_failed(why),
            // A close after the session already went down (a NOTIFICATION that could not be
            // written) changes nothing.
            Input::TcpClosed if matches!(self.state, State::Idle | State::Active | State::Connect) => Vec::new(),
            Input::TcpClosed => self.down("connection closed by the peer".into(), None),
            Input::Timer(t) => self.on_timer(t),
            Input::Message(m) => self.on_message(m),
            Input::DecodeError(e) => {
                let n = Notification::from(&e);
                self.down(format!("malformed message from the peer: {e}"), Some(n))
            }
        }
    }

    /// Our OPEN.
    pub fn open(&self) -> Open {
        let mut capabilities = vec![
            Capability::Multiprotocol { afi: AFI_IPV4, safi: SAFI_UNICAST },
            Capability::Multiprotocol { afi: AFI_IPV6, safi: SAFI_UNICAST },
            Capability::RouteRefresh,
            Capability::FourOctetAs(self.cfg.local_as),
            // RFC 8654: we take messages up to 65535 octets (a peer's long AS_PATH fits).
            Capability::ExtendedMessage,
        ];
        // Graceful restart (RFC 4724): as a receiving speaker at least; as a restarting
        // speaker, with forwarding preserved for both families, when configured.
        let families = if self.cfg.graceful_restart {
            [AFI_IPV4, AFI_IPV6].iter().map(|&afi| GrFamily { afi, safi: SAFI_UNICAST, forwarding: true }).collect()
        } else {
            Vec::new()
        };
        capabilities.push(Capability::GracefulRestart { restarting: false, notification: false, time: 120, families });
        Open {
            version: 4,
            my_as: Open::as_field(self.cfg.local_as),
            hold_time: self.cfg.hold_time,
            bgp_id: self.cfg.router_id,
            capabilities,
        }
    }

    fn on_start(&mut self) -> Vec<Output> {
        self.stopped = false;
        if self.state != State::Idle {
            return Vec::new();
        }
        self.state = State::Connect;
        vec![Output::Connect]
    }

    fn on_stop(&mut self, n: Notification) -> Vec<Output> {
        self.stopped = true;
        let up = matches!(self.state, State::OpenSent | State::OpenConfirm | State::Established);
        let mut out = if up { vec![Output::Send(Message::Notification(n.clone()))] } else { Vec::new() };
        out.extend(self.reset("stopped".into()));
        out.push(Output::Disarm(Timer::ConnectRetry));
        out
    }

    fn on_connected(&mut self) -> Vec<Output> {
        // Our own connection (Connect), or one the peer opened while we waited to retry
        // (Active, or Idle between attempts): events 16/17.
        if self.stopped || !matches!(self.state, State::Connect | State::Active | State::Idle) {
            return vec![Output::Close];
        }
        self.state = State::OpenSent;
        vec![
            Output::Disarm(Timer::ConnectRetry),
            Output::Send(Message::Open(self.open())),
            Output::Arm(Timer::Hold, OPEN_HOLD),
        ]
    }

    /// The next retry delay: 1 s, doubling, capped at the connect time, ±25% jitter.
    fn retry_delay(&mut self) -> Duration {
        let base =
            Duration::from_secs(1u64 << self.attempts.min(16)).min(self.cfg.connect_retry.max(Duration::from_secs(1)));
        self.attempts = self.attempts.saturating_add(1);
        // xorshift64: deterministic, no dependency, good enough for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let factor = 0.75 + (self.rng % 1000) as f64 / 2000.0;
        base.mul_f64(factor)
    }

    fn on_connect_failed(&mut self, why: String) -> Vec<Output> {
        if self.state != State::Connect {
            return Vec::new();
        }
        self.state = State::Active;
        let d = self.retry_delay();
        vec![Output::Down(format!("cannot connect: {why}")), Output::Arm(Timer::ConnectRetry, d)]
    }

    fn on_timer(&mut self, t: Timer) -> Vec<Output> {
        match (t, self.state) {
            (Timer::ConnectRetry, State::Active | State::Idle) if !self.stopped => {
                self.state = State::Connect;
                vec![Output::Connect]
            }
            (Timer::Hold, State::OpenSent | State::OpenConfirm | State::Established) => {
                // Event 10: send NOTIFICATION Hold Timer Expired and drop the session.
                let n = Notification::new(ErrorCode::HoldTimerExpired, 0);
                self.down("hold timer expired: the peer went silent".into(), Some(n))
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                let k = self.negotiated.as_ref().map_or(0, |n| n.keepalive);
                let mut out = vec![Output::Send(Message::Keepalive)];
                if k > 0 {
                    out.push(Output::Arm(Timer::Keepalive, Duration::from_secs(u64::from(k))));
                }
                out
            }
            _ => Vec::new(),
        }
    }

    fn on_message(&mut self, m: Message) -> Vec<Output> {
        match (self.state, m) {
            (_, Message::Notification(n)) => self.down(format!("the peer sent NOTIFICATION {n}"), None),
            (State::OpenSent, Message::Open(o)) => self.on_open(o),
            (State::OpenConfirm, Message::Keepalive) => {
                self.state = State::Established;
                self.attempts = 0;
                let mut out = self.restart_hold();
                out.push(Output::Established);
                out
            }
            (State::Established, Message::Keepalive | Message::Update(_)) => self.restart_hold(),
            (State::Established, Message::RouteRefresh(_)) => {
                let mut out = self.restart_hold();
                out.push(Output::ResendAll);
                out
            }
            (state, _) => {
                // RFC 6608: an unexpected message is a Finite State Machine Error.
                let sub = match state {
                    State::OpenSent => 1,
                    State::OpenConfirm => 2,
                    _ => 3,
                };
                let n = Notification::new(ErrorCode::FiniteStateMachine, sub);
                self.down(format!("unexpected message in state {state:?}"), Some(n))
            }
        }
    }

    fn on_open(&mut self, o: Open) -> Vec<Output> {
        let remote_as = o.asn();
        let as_ok = match self.cfg.peer_as {
            PeerAs::Fixed(a) => remote_as == a,
            PeerAs::Internal => remote_as == self.cfg.local_as,
            PeerAs::External => remote_as != self.cfg.local_as,
        };
        let ibgp = remote_as == self.cfg.local_as;
        let error = if !as_ok {
            Some(OpenError::BadPeerAs(remote_as))
        } else if ibgp && o.bgp_id == self.cfg.router_id {
            // RFC 6286 §2.1: identifiers are unique within an AS.
            Some(OpenError::BadBgpId(o.bgp_id))
        } else {
            None
        };
        if let Some(e) = error {
            let n = Notification::from(&DecodeError::Open(e.clone()));
            // Say what to change, not only what the RFC calls it.
            let ours = self.cfg.local_as;
            let why = match (&e, self.cfg.peer_as) {
                (OpenError::BadPeerAs(got), PeerAs::Fixed(want)) => format!(
                    "the peer says it is AS {got}, but the BGPPeer's peerASN is {want}: fix peerASN, or the router's local AS"
                ),
                (OpenError::BadPeerAs(got), PeerAs::Internal) => {
                    format!("the peer says it is AS {got}, but dynamicASN internal wants our AS {ours}")
                }
                (OpenError::BadPeerAs(got), _) => {
                    format!("the peer says it is AS {got}, our own AS, but dynamicASN external wants another")
                }
                (OpenError::BadBgpId(id), _) => format!(
                    "the peer's router ID {} is ours, on an iBGP session: give this speaker a distinct routerID",
                    std::net::Ipv4Addr::from(*id)
                ),
                _ => e.to_string(),
            };
            return self.down(format!("OPEN refused ({e}): {why}"), Some(n));
        }
        let hold = self.cfg.hold_time.min(o.hold_time);
        let keepalive = match (hold, self.cfg.keepalive) {
            (0, _) => 0,
            (h, Some(k)) if k > 0 => k.min(h / 3).max(1),
            (h, _) => (h / 3).max(1),
        };
        let route_refresh = o.capabilities.iter().any(|c| matches!(c, Capability::RouteRefresh));
        let theirs: Vec<(u16, u8)> = o
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol { afi, safi } => Some((*afi, *safi)),
                _ => None,
            })
            .collect();
        let theirs = if theirs.is_empty() { vec![(AFI_IPV4, SAFI_UNICAST)] } else { theirs };
        let families: Vec<(u16, u8)> =
            [(AFI_IPV4, SAFI_UNICAST), (AFI_IPV6, SAFI_UNICAST)].into_iter().filter(|f| theirs.contains(f)).collect();
        let n = Negotiated {
            peer_as: remote_as,
            peer_id: o.bgp_id,
            hold_time: hold,
            keepalive,
            ibgp,
            route_refresh,
            families,
            opens: (self.open(), o),
        };
        self.state = State::OpenConfirm;
        self.negotiated = Some(n.clone());
        let mut out = vec![Output::Negotiated(Box::new(n)), Output::Send(Message::Keepalive)];
        if keepalive > 0 {
            out.push(Output::Arm(Timer::Keepalive, Duration::from_secs(u64::from(keepalive))));
        }
        out.extend(self.restart_hold());
        out
    }

    fn restart_hold(&self) -> Vec<Output> {
        match self.negotiated.as_ref().map(|n| n.hold_time) {
            Some(0) | None => vec![Output::Disarm(Timer::Hold)],
            Some(h) => vec![Output::Arm(Timer::Hold, Duration::from_secs(u64::from(h)))],
        }
    }

    /// Ends the session (sending `notify` first), and schedules a reconnect unless stopped.
    fn down(&mut self, why: String, notify: Option<Notification>) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(n) = notify {
            out.push(Output::Send(Message::Notification(n)));
        }
        out.extend(self.reset(why));
        if !self.stopped {
            self.state = State::Active;
            let d = self.retry_delay();
            out.push(Output::Arm(Timer::ConnectRetry, d));
        }
        out
    }

    fn reset(&mut self, why: String) -> Vec<Output> {
        let was = self.state;
        self.state = State::Idle;
        self.negotiated = None;
        let mut out = vec![Output::Close, Output::Disarm(Timer::Hold), Output::Disarm(Timer::Keepalive)];
        if was != State::Idle {
            out.push(Output::Down(why));
        }
        out
    }
}

/// RFC 4271 §6.8: which of two connections between the same speakers survives a collision.
/// The one initiated by the speaker with the higher BGP identifier is kept.
pub fn keep_our_connection(local_id: u32, remote_id: u32) -> bool {
    local_id > remote_id
}

#[cfg(test)]
mod tests;
