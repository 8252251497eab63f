//! Session behaviour, one test per rule.

use super::*;
use crate::wire::Update;

fn cfg() -> Config {
    Config {
        local_as: 64512,
        peer_as: PeerAs::Fixed(64500),
        router_id: 0x0a00_0001,
        hold_time: 90,
        keepalive: None,
        connect_retry: Duration::from_secs(30),
        graceful_restart: false,
    }
}

fn has_output(out: &[Output], f: impl Fn(&Output) -> bool) -> bool {
    out.iter().any(f)
}

fn notification(out: &[Output]) -> Option<(u8, u8)> {
    out.iter().find_map(|o| match o {
        Output::Send(Message::Notification(n)) => Some((u8::from(n.code), n.subcode)),
        _ => None,
    })
}

fn peer_open(asn: u32, hold: u16, id: u32) -> Message {
    Message::Open(Open {
        version: 4,
        my_as: Open::as_field(asn),
        hold_time: hold,
        bgp_id: id,
        capabilities: vec![Capability::FourOctetAs(asn), Capability::RouteRefresh],
    })
}

fn open_sent() -> Session {
    let mut s = Session::new(cfg(), 7);
    assert_eq!(s.process(Input::Start), vec![Output::Connect]);
    let out = s.process(Input::TcpConnected);
    assert!(has_output(&out, |o| matches!(o, Output::Send(Message::Open(_)))));
    assert_eq!(s.state(), State::OpenSent);
    s
}

fn established() -> Session {
    let mut s = open_sent();
    s.process(Input::Message(peer_open(64500, 90, 0x0a00_0002)));
    let out = s.process(Input::Message(Message::Keepalive));
    assert!(has_output(&out, |o| *o == Output::Established));
    s
}

#[test]
fn reaches_established_after_open_and_keepalive() {
    let s = established();
    assert_eq!(s.state(), State::Established);
    assert!(s.negotiated().unwrap().route_refresh);
}

#[test]
fn our_open_has_the_capabilities_we_rely_on() {
    let o = Session::new(Config { local_as: 4_200_000_000, ..cfg() }, 1).open();
    assert_eq!(o.my_as, crate::wire::iana::AS_TRANS);
    assert_eq!(o.asn(), 4_200_000_000);
    for want in [
        Capability::Multiprotocol { afi: AFI_IPV4, safi: SAFI_UNICAST },
        Capability::Multiprotocol { afi: AFI_IPV6, safi: SAFI_UNICAST },
        Capability::RouteRefresh,
    ] {
        assert!(o.capabilities.contains(&want), "{want:?}");
    }
    assert!(o.capabilities.iter().any(|c| matches!(c, Capability::GracefulRestart { .. })));
}

#[test]
fn only_families_both_sides_announce_are_used() {
    let s = established();
    assert_eq!(s.negotiated().unwrap().families, vec![(AFI_IPV4, SAFI_UNICAST)], "no MP capability: IPv4 unicast only");
    let mut s = open_sent();
    let mut o = match peer_open(64500, 90, 2) {
        Message::Open(o) => o,
        _ => unreachable!(),
    };
    o.capabilities.push(Capability::Multiprotocol { afi: AFI_IPV6, safi: SAFI_UNICAST });
    s.process(Input::Message(Message::Open(o)));
    assert_eq!(s.negotiated().unwrap().families, vec![(AFI_IPV6, SAFI_UNICAST)]);
}

#[test]
fn holdtime_negotiation_uses_minimum_and_keepalive_a_third() {
    let mut s = open_sent();
    let out = s.process(Input::Message(peer_open(64500, 30, 2)));
    assert!(has_output(&out, |o| *o == Output::Arm(Timer::Keepalive, Duration::from_secs(10))));
    assert!(has_output(&out, |o| *o == Output::Arm(Timer::Hold, Duration::from_secs(30))));
    assert_eq!(s.negotiated().unwrap().hold_time, 30);
}

#[test]
fn configured_keepalive_is_used_when_shorter() {
    let mut s = Session::new(Config { keepalive: Some(5), ..cfg() }, 1);
    s.process(Input::Start);
    s.process(Input::TcpConnected);
    let out = s.process(Input::Message(peer_open(64500, 90, 2)));
    assert!(has_output(&out, |o| *o == Output::Arm(Timer::Keepalive, Duration::from_secs(5))));
}

#[test]
fn zero_holdtime_means_no_keepalives_and_no_hold_timer() {
    let mut s = open_sent();
    let out = s.process(Input::Message(peer_open(64500, 0, 2)));
    assert!(!has_output(&out, |o| matches!(o, Output::Arm(Timer::Keepalive, _))));
    assert!(has_output(&out, |o| *o == Output::Disarm(Timer::Hold)));
}

#[test]
fn open_with_wrong_asn_sends_bad_peer_as() {
    let mut s = open_sent();
    let out = s.process(Input::Message(peer_open(65000, 90, 2)));
    assert_eq!(notification(&out), Some((2, 2)));
    assert!(has_output(&out, |o| *o == Output::Close));
    assert_eq!(s.state(), State::Active, "it retries");
}

#[test]
fn dynamic_asn_accepts_any_external_as_and_rejects_our_own() {
    let mut s = Session::new(Config { peer_as: PeerAs::External, ..cfg() }, 1);
    s.process(Input::Start);
    s.process(Input::TcpConnected);
    assert_eq!(notification(&s.process(Input::Message(peer_open(65123, 90, 2)))), None);
    let mut s = Session::new(Config { peer_as: PeerAs::External, ..cfg() }, 1);
    s.process(Input::Start);
    s.process(Input::TcpConnected);
    assert_eq!(notification(&s.process(Input::Message(peer_open(64512, 90, 2)))), Some((2, 2)));
}

#[test]
fn ibgp_peer_with_our_identifier_sends_bad_bgp_identifier() {
    let mut s = Session::new(Config { peer_as: PeerAs::Fixed(64512), ..cfg() }, 1);
    s.process(Input::Start);
    s.process(Input::TcpConnected);
    assert_eq!(notification(&s.process(Input::Message(peer_open(64512, 90, 0x0a00_0001)))), Some((2, 3)));
}

#[test]
fn hold_timer_expiry_sends_notification_and_resets() {
    let mut s = established();
    let out = s.process(Input::Timer(Timer::Hold));
    assert_eq!(notification(&out), Some((4, 0)));
    assert!(has_output(&out, |o| *o == Output::Close));
    assert!(has_output(&out, |o| matches!(o, Output::Arm(Timer::ConnectRetry, _))));
}

#[test]
fn keepalives_and_updates_restart_the_hold_timer() {
    let mut s = established();
    let arm = Output::Arm(Timer::Hold, Duration::from_secs(90));
    assert!(s.process(Input::Message(Message::Keepalive)).contains(&arm));
    assert!(s.process(Input::Message(Message::Update(Update::default()))).contains(&arm));
}

#[test]
fn keepalive_timer_sends_a_keepalive_and_rearms() {
    let mut s = established();
    let out = s.process(Input::Timer(Timer::Keepalive));
    assert_eq!(out, vec![Output::Send(Message::Keepalive), Output::Arm(Timer::Keepalive, Duration::from_secs(30))]);
}

#[test]
fn route_refresh_asks_for_a_full_resend() {
    let mut s = established();
    let rr = crate::wire::RouteRefresh { afi: AFI_IPV4, subtype: 0, safi: SAFI_UNICAST };
    assert!(s.process(Input::Message(Message::RouteRefresh(rr))).contains(&Output::ResendAll));
}

#[test]
fn malformed_messages_send_the_mapped_notification() {
    let mut s = established();
    let out = s.process(Input::DecodeError(DecodeError::Update(crate::wire::UpdateError::MalformedAsPath)));
    assert_eq!(notification(&out), Some((3, 11)));
}

#[test]
fn unexpected_messages_are_fsm_errors() {
    let mut s = open_sent();
    assert_eq!(notification(&s.process(Input::Message(Message::Keepalive))), Some((5, 1)));
}

#[test]
fn a_notification_from_the_peer_ends_the_session_without_answering() {
    let mut s = established();
    let out = s.process(Input::Message(Message::Notification(Notification::admin_shutdown("maintenance"))));
    assert_eq!(notification(&out), None);
    assert!(has_output(&out, |o| matches!(o, Output::Down(why) if why.contains("maintenance"))));
}

#[test]
fn stop_sends_cease_and_does_not_reconnect() {
    let mut s = established();
    let out = s.process(Input::Stop(Notification::admin_shutdown("lb shutting down")));
    assert_eq!(notification(&out), Some((6, 2)));
    assert!(!has_output(&out, |o| matches!(o, Output::Arm(Timer::ConnectRetry, _))));
    assert!(s.process(Input::Timer(Timer::ConnectRetry)).is_empty());
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn connect_retries_back_off_with_jitter_up_to_the_connect_time() {
    let mut s = Session::new(Config { connect_retry: Duration::from_secs(8), ..cfg() }, 42);
    s.process(Input::Start);
    let mut delays = Vec::new();
    for _ in 0..6 {
        let out = s.process(Input::TcpFailed("refused".into()));
        let d = out.iter().find_map(|o| match o {
            Output::Arm(Timer::ConnectRetry, d) => Some(*d),
            _ => None,
        });
        delays.push(d.expect("a retry is scheduled"));
        assert_eq!(s.process(Input::Timer(Timer::ConnectRetry)), vec![Output::Connect]);
    }
    let secs: Vec<f64> = delays.iter().map(|d| d.as_secs_f64()).collect();
    for (i, want) in [1.0, 2.0, 4.0, 8.0, 8.0, 8.0].iter().enumerate() {
        assert!(secs[i] >= want * 0.75 && secs[i] <= want * 1.25, "attempt {i}: {secs:?}");
    }
    assert!(secs.windows(2).any(|w| w[0] != w[1]), "jitter varies the delays");
}

#[test]
fn collisions_keep_the_connection_of_the_higher_identifier() {
    assert!(keep_our_connection(10, 9));
    assert!(!keep_our_connection(9, 10));
}

#[test]
fn a_connection_from_the_peer_is_taken_up_while_waiting_to_retry() {
    let mut s = Session::new(cfg(), 3);
    s.process(Input::Start);
    s.process(Input::TcpFailed("refused".into()));
    assert_eq!(s.state(), State::Active);
    let out = s.process(Input::TcpConnected);
    assert!(has_output(&out, |o| matches!(o, Output::Send(Message::Open(_)))));
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn losing_a_collision_sends_cease_7_and_leaves_the_session_idle() {
    let mut s = open_sent();
    let out = s.collision_lost();
    assert_eq!(notification(&out), Some((6, 7)));
    assert_eq!(s.state(), State::Idle);
    assert!(!has_output(&out, |o| matches!(o, Output::Arm(Timer::ConnectRetry, _))));
    assert!(has_output(&s.process(Input::TcpConnected), |o| matches!(o, Output::Send(Message::Open(_)))));
}
