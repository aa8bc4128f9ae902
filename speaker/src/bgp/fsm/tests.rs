//! One test per RFC 4271 §8.2.2 event the machine handles, plus OPEN validation, timers,
//! collisions (§6.8), and a property: no input sequence makes it panic.

use proptest::prelude::*;

use super::*;
use crate::bgp::packet::{
    HeaderSubcode, MpUnreach, PathAttribute, RouteRefresh, UpdateError, UpdateSubcode,
};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const C1: ConnectionId = ConnectionId(1);
const C2: ConnectionId = ConnectionId(2);

fn config() -> PeerConfig {
    PeerConfig {
        local_as: 65000,
        peer_as: PeerAs::Fixed(65001),
        bgp_identifier: LOCAL_ID,
        hold_time: 90,
        keepalive: None,
        connect_retry: Duration::from_secs(2),
        connect_retry_max: Duration::from_secs(60),
        passive: false,
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        graceful_restart: Some(GracefulRestartConfig {
            restart_time: 120,
            restarted: false,
        }),
        jitter_seed: 7,
    }
}

fn peer_open(asn: u32, hold_time: u16, identifier: [u8; 4]) -> Open {
    Open::new(
        asn,
        hold_time,
        Ipv4Addr::from(identifier),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    )
}

fn received(connection: ConnectionId, message: Message) -> Input {
    Input::Received {
        connection,
        message,
    }
}

fn outbound(connection: ConnectionId) -> Input {
    Input::Connected {
        connection,
        direction: Direction::Outbound,
    }
}

fn inbound(connection: ConnectionId) -> Input {
    Input::Connected {
        connection,
        direction: Direction::Inbound,
    }
}

/// The NOTIFICATION (code, subcode) sent on `connection`, if any.
fn notification_sent(actions: &[Action], connection: ConnectionId) -> Option<(u8, u8)> {
    actions.iter().find_map(|a| match a {
        Action::Send {
            connection: c,
            message: Message::Notification(n),
        } if *c == connection => Some(n.code.to_wire()),
        _ => None,
    })
}

fn closes(actions: &[Action], connection: ConnectionId) -> bool {
    actions.contains(&Action::Close { connection })
}

fn sends(actions: &[Action], connection: ConnectionId, message: &Message) -> bool {
    actions.contains(&Action::Send {
        connection,
        message: message.clone(),
    })
}

/// Drives a session to OpenSent over outbound connection C1.
fn open_sent(config: PeerConfig, t0: Instant) -> Fsm {
    let mut fsm = Fsm::new(config).unwrap();
    fsm.handle(t0, Input::Start);
    fsm.handle(t0, outbound(C1));
    assert_eq!(fsm.state(), State::OpenSent);
    fsm
}

fn open_confirm(config: PeerConfig, t0: Instant) -> Fsm {
    let mut fsm = open_sent(config, t0);
    fsm.handle(
        t0,
        received(C1, Message::Open(peer_open(65001, 90, [192, 0, 2, 20]))),
    );
    assert_eq!(fsm.state(), State::OpenConfirm);
    fsm
}

fn established(config: PeerConfig, t0: Instant) -> Fsm {
    let mut fsm = open_confirm(config, t0);
    fsm.handle(t0, received(C1, Message::Keepalive));
    assert_eq!(fsm.state(), State::Established);
    fsm
}

/// The (code, subcode) the session answers `open` with in OpenSent; asserts it went Idle.
fn refusal_of(config: PeerConfig, open: Open) -> (u8, u8) {
    let t0 = Instant::now();
    let mut fsm = open_sent(config, t0);
    let actions = fsm.handle(t0, received(C1, Message::Open(open)));
    assert!(closes(&actions, C1));
    assert_eq!(fsm.state(), State::Idle);
    notification_sent(&actions, C1).expect("a NOTIFICATION")
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn manual_start_connects_and_arms_jittered_connect_retry() {
    let t0 = Instant::now();
    let mut fsm = Fsm::new(config()).unwrap();
    assert_eq!(fsm.handle(t0, Input::Start), vec![Action::Connect]);
    assert_eq!(fsm.state(), State::Connect);
    let retry = fsm.next_deadline().unwrap() - t0;
    assert!(retry >= secs(1.5) && retry <= secs(2.0), "{retry:?}");
}

#[test]
fn passive_start_waits_in_active_without_connecting() {
    let mut fsm = Fsm::new(PeerConfig {
        passive: true,
        ..config()
    })
    .unwrap();
    assert_eq!(fsm.handle(Instant::now(), Input::Start), vec![]);
    assert_eq!(fsm.state(), State::Active);
    assert_eq!(fsm.next_deadline(), None);
}

#[test]
fn outbound_connection_sends_open_and_waits_four_minutes() {
    let t0 = Instant::now();
    let mut fsm = Fsm::new(config()).unwrap();
    fsm.handle(t0, Input::Start);
    let actions = fsm.handle(t0, outbound(C1));
    assert_eq!(
        actions,
        vec![Action::Send {
            connection: C1,
            message: Message::Open(fsm.local_open())
        }]
    );
    assert_eq!(fsm.state(), State::OpenSent);
    assert_eq!(fsm.next_deadline(), Some(t0 + Duration::from_secs(240)));
}

#[test]
fn inbound_connection_in_active_sends_open() {
    let t0 = Instant::now();
    let mut fsm = Fsm::new(PeerConfig {
        passive: true,
        ..config()
    })
    .unwrap();
    fsm.handle(t0, Input::Start);
    let actions = fsm.handle(t0, inbound(C1));
    assert!(sends(&actions, C1, &Message::Open(fsm.local_open())));
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn inbound_connection_in_connect_cancels_the_outbound_attempt() {
    let t0 = Instant::now();
    let mut fsm = Fsm::new(config()).unwrap();
    fsm.handle(t0, Input::Start);
    let actions = fsm.handle(t0, inbound(C1));
    assert_eq!(actions[0], Action::CancelConnect);
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn local_open_advertises_families_four_octet_as_route_refresh_and_graceful_restart() {
    let fsm = Fsm::new(PeerConfig {
        local_as: 4_200_000_001,
        ..config()
    })
    .unwrap();
    let open = fsm.local_open();
    assert_eq!(open.my_as, crate::bgp::packet::AS_TRANS);
    assert_eq!(open.hold_time, 90);
    let caps: Vec<_> = open.capabilities().cloned().collect();
    assert_eq!(
        caps[..4],
        [
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
        ]
    );
    assert!(
        matches!(&caps[4], Capability::GracefulRestart(gr) if gr.restart_time == 120 && !gr.restarting)
    );
}

#[test]
fn connect_retry_expiry_retries_with_doubling_capped_backoff() {
    let t0 = Instant::now();
    let mut fsm = Fsm::new(PeerConfig {
        connect_retry_max: Duration::from_secs(6),
        ..config()
    })
    .unwrap();
    fsm.handle(t0, Input::Start);
    let mut now = t0;
    let mut intervals = Vec::new();
    for _ in 0..4 {
        let deadline = fsm.next_deadline().unwrap();
        intervals.push(deadline - now);
        now = deadline;
        assert_eq!(fsm.handle(now, Input::Tick), vec![Action::Connect]);
        assert_eq!(fsm.state(), State::Connect);
    }
    // 2 s, 4 s, then capped at 6 s; each scaled by a jitter factor in [0.75, 1].
    let bounds = [(1.5, 2.0), (3.0, 4.0), (4.5, 6.0), (4.5, 6.0)];
    for (interval, (low, high)) in intervals.iter().zip(bounds) {
        assert!(
            *interval >= secs(low) && *interval <= secs(high),
            "{intervals:?}"
        );
    }
}

#[test]
fn failed_connection_waits_in_active_then_retries() {
    let t0 = Instant::now();
    let mut fsm = Fsm::new(config()).unwrap();
    fsm.handle(t0, Input::Start);
    assert_eq!(fsm.handle(t0, Input::ConnectFailed), vec![]);
    assert_eq!(fsm.state(), State::Active);
    let retry = fsm.next_deadline().unwrap();
    assert!(retry - t0 >= secs(3.0), "second attempt backs off to ~4 s");
    assert_eq!(fsm.handle(retry - secs(0.1), Input::Tick), vec![]);
    assert_eq!(fsm.handle(retry, Input::Tick), vec![Action::Connect]);
    assert_eq!(fsm.state(), State::Connect);
}

#[test]
fn valid_open_sends_keepalive_and_negotiates_the_smaller_hold_time() {
    let t0 = Instant::now();
    let mut fsm = open_sent(config(), t0);
    let mut open = peer_open(65001, 30, [192, 0, 2, 20]);
    open.parameters[0].capabilities.remove(1); // the peer speaks IPv4 only
    let actions = fsm.handle(t0, received(C1, Message::Open(open)));
    assert_eq!(
        actions,
        vec![Action::Send {
            connection: C1,
            message: Message::Keepalive
        }]
    );
    assert_eq!(fsm.state(), State::OpenConfirm);
    let negotiated = fsm.negotiated().unwrap();
    assert_eq!(negotiated.hold_time, 30);
    assert_eq!(negotiated.keepalive, 10);
    assert_eq!(negotiated.families, vec![Family::IPV4_UNICAST]);
    assert!(negotiated.four_octet_as && negotiated.route_refresh && !negotiated.internal);
    assert_eq!(negotiated.peer_graceful_restart, None);
    // Hold timer at 30 s, keepalive in [7.5, 10] s.
    let next = fsm.next_deadline().unwrap() - t0;
    assert!(next >= secs(7.5) && next <= secs(10.0), "{next:?}");
}

#[test]
fn keepalive_in_open_confirm_establishes_and_reports_the_negotiation() {
    let t0 = Instant::now();
    let mut fsm = open_confirm(config(), t0);
    let negotiated = fsm.negotiated().cloned().unwrap();
    let actions = fsm.handle(t0, received(C1, Message::Keepalive));
    assert_eq!(actions, vec![Action::Established(negotiated)]);
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn open_with_hold_time_of_two_seconds_is_unacceptable_hold_time() {
    assert_eq!(
        refusal_of(config(), peer_open(65001, 2, [192, 0, 2, 20])),
        (2, 6)
    );
}

#[test]
fn open_from_another_as_is_bad_peer_as() {
    assert_eq!(
        refusal_of(config(), peer_open(65002, 90, [192, 0, 2, 20])),
        (2, 2)
    );
}

#[test]
fn dynamic_peer_as_accepts_internal_or_external_as_configured() {
    let internal = PeerConfig {
        peer_as: PeerAs::Internal,
        ..config()
    };
    assert_eq!(
        refusal_of(internal.clone(), peer_open(65001, 90, [192, 0, 2, 20])),
        (2, 2)
    );
    let t0 = Instant::now();
    let mut fsm = open_sent(internal, t0);
    fsm.handle(
        t0,
        received(C1, Message::Open(peer_open(65000, 90, [192, 0, 2, 20]))),
    );
    assert!(fsm.negotiated().unwrap().internal);

    let external = PeerConfig {
        peer_as: PeerAs::External,
        ..config()
    };
    assert_eq!(
        refusal_of(external.clone(), peer_open(65000, 90, [192, 0, 2, 20])),
        (2, 2)
    );
    let mut fsm = open_sent(external, t0);
    fsm.handle(
        t0,
        received(
            C1,
            Message::Open(peer_open(4_200_000_001, 90, [192, 0, 2, 20])),
        ),
    );
    assert_eq!(fsm.negotiated().unwrap().peer_as, 4_200_000_001);
}

#[test]
fn zero_or_own_internal_identifier_is_bad_bgp_identifier() {
    assert_eq!(
        refusal_of(config(), peer_open(65001, 90, [0, 0, 0, 0])),
        (2, 3)
    );
    let internal = PeerConfig {
        peer_as: PeerAs::Fixed(65000),
        ..config()
    };
    assert_eq!(
        refusal_of(internal, peer_open(65000, 90, LOCAL_ID.octets())),
        (2, 3)
    );
}

#[test]
fn open_without_a_common_family_is_unsupported_capability() {
    let v6_only = PeerConfig {
        families: vec![Family::IPV6_UNICAST],
        ..config()
    };
    // No MP capability at all means IPv4 unicast only (RFC 4760 §8).
    let bare = Open::new(65001, 90, Ipv4Addr::new(192, 0, 2, 20), vec![]);
    assert_eq!(refusal_of(v6_only, bare), (2, 7));
}

#[test]
fn malformed_message_sends_its_notification_goes_idle_and_restarts_after_backoff() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let error = DecodeError::BadMessageLength { length: 5000 };
    let actions = fsm.handle(
        t0,
        Input::Malformed {
            connection: C1,
            error: error.clone(),
        },
    );
    let notification = Notification::with_data(
        ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength),
        vec![0x13, 0x88],
    );
    assert_eq!(
        actions,
        vec![
            Action::Send {
                connection: C1,
                message: Message::Notification(notification)
            },
            Action::Close { connection: C1 },
            Action::Down(SessionError::Malformed(error)),
        ]
    );
    assert_eq!(fsm.state(), State::Idle);
    let restart = fsm.next_deadline().unwrap();
    assert_eq!(fsm.handle(restart, Input::Tick), vec![Action::Connect]);
    assert_eq!(fsm.state(), State::Connect);
}

#[test]
fn malformed_update_is_answered_with_its_update_error() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let error = DecodeError::Update(UpdateError::MalformedAttributeList { reason: "test" });
    let actions = fsm.handle(
        t0,
        Input::Malformed {
            connection: C1,
            error,
        },
    );
    assert_eq!(
        notification_sent(&actions, C1),
        Some((3, u8::from(UpdateSubcode::MalformedAttributeList)))
    );
}

#[test]
fn hold_timer_expiry_sends_hold_timer_expired_and_goes_down() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    // Keepalives do not keep the session up: only the peer's messages do.
    let mut now = t0;
    while let Some(deadline) = fsm
        .next_deadline()
        .filter(|d| *d < t0 + Duration::from_secs(90))
    {
        now = deadline;
        let actions = fsm.handle(now, Input::Tick);
        assert_eq!(
            actions,
            vec![Action::Send {
                connection: C1,
                message: Message::Keepalive
            }]
        );
    }
    assert!(now > t0);
    let actions = fsm.handle(t0 + Duration::from_secs(90), Input::Tick);
    assert_eq!(notification_sent(&actions, C1), Some((4, 0)));
    assert!(closes(&actions, C1));
    assert!(actions.contains(&Action::Down(SessionError::HoldTimerExpired)));
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn keepalive_timer_sends_keepalive_at_a_jittered_third_of_hold() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let deadline = fsm.next_deadline().unwrap();
    assert!(deadline - t0 >= secs(22.5) && deadline - t0 <= secs(30.0));
    assert_eq!(
        fsm.handle(deadline, Input::Tick),
        vec![Action::Send {
            connection: C1,
            message: Message::Keepalive
        }]
    );
}

#[test]
fn configured_keepalive_is_used_but_never_beyond_a_third_of_hold() {
    let t0 = Instant::now();
    let fsm = open_confirm(
        PeerConfig {
            keepalive: Some(5),
            ..config()
        },
        t0,
    );
    assert_eq!(fsm.negotiated().unwrap().keepalive, 5);
    let fsm = open_confirm(
        PeerConfig {
            keepalive: Some(60),
            ..config()
        },
        t0,
    );
    assert_eq!(fsm.negotiated().unwrap().keepalive, 30);
}

#[test]
fn update_restarts_hold_timer_and_is_passed_on() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let later = t0 + Duration::from_secs(80);
    let update = Update::end_of_rib(Family::IPV6_UNICAST);
    let actions = fsm.handle(later, received(C1, Message::Update(update.clone())));
    assert_eq!(actions, vec![Action::UpdateReceived(update)]);
    let actions = fsm.handle(t0 + Duration::from_secs(91), Input::Tick);
    assert_eq!(
        notification_sent(&actions, C1),
        None,
        "hold timer restarted at 80 s"
    );
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn hold_time_zero_disables_hold_and_keepalive_timers() {
    let t0 = Instant::now();
    let mut fsm = open_sent(config(), t0);
    fsm.handle(
        t0,
        received(C1, Message::Open(peer_open(65001, 0, [192, 0, 2, 20]))),
    );
    fsm.handle(t0, received(C1, Message::Keepalive));
    assert_eq!(fsm.state(), State::Established);
    assert_eq!(
        (
            fsm.negotiated().unwrap().hold_time,
            fsm.negotiated().unwrap().keepalive
        ),
        (0, 0)
    );
    assert_eq!(fsm.next_deadline(), None);
}

#[test]
fn notification_from_peer_drops_the_session() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let cease = Notification::new(ErrorCode::Cease(CeaseSubcode::AdministrativeReset));
    let actions = fsm.handle(t0, received(C1, Message::Notification(cease.clone())));
    assert_eq!(
        actions,
        vec![
            Action::Close { connection: C1 },
            Action::Down(SessionError::NotificationReceived(cease)),
        ]
    );
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn unexpected_messages_get_fsm_error_naming_the_state() {
    let t0 = Instant::now();
    let mut fsm = open_sent(config(), t0);
    let actions = fsm.handle(t0, received(C1, Message::Keepalive));
    assert_eq!(notification_sent(&actions, C1), Some((5, 1)));

    let mut fsm = open_confirm(config(), t0);
    let actions = fsm.handle(t0, received(C1, Message::Update(Update::default())));
    assert_eq!(notification_sent(&actions, C1), Some((5, 2)));

    let mut fsm = established(config(), t0);
    let actions = fsm.handle(
        t0,
        received(C1, Message::Open(peer_open(65001, 90, [192, 0, 2, 20]))),
    );
    assert_eq!(notification_sent(&actions, C1), Some((5, 3)));
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn manual_stop_sends_cease_and_stays_idle() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let actions = fsm.handle(t0, Input::Stop(CeaseSubcode::AdministrativeShutdown));
    assert_eq!(notification_sent(&actions, C1), Some((6, 2)));
    assert!(closes(&actions, C1));
    assert!(actions.contains(&Action::Down(SessionError::Stopped(
        CeaseSubcode::AdministrativeShutdown
    ))));
    assert_eq!(fsm.state(), State::Idle);
    assert_eq!(
        fsm.next_deadline(),
        None,
        "a stopped session does not restart"
    );
}

#[test]
fn manual_stop_in_connect_cancels_the_attempt() {
    let t0 = Instant::now();
    let mut fsm = Fsm::new(config()).unwrap();
    fsm.handle(t0, Input::Start);
    assert_eq!(
        fsm.handle(t0, Input::Stop(CeaseSubcode::PeerDeconfigured)),
        vec![Action::CancelConnect]
    );
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn closed_connection_in_established_goes_down_and_restarts() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let actions = fsm.handle(t0, Input::Closed { connection: C1 });
    assert_eq!(actions, vec![Action::Down(SessionError::ConnectionClosed)]);
    assert_eq!(fsm.last_error(), Some(&SessionError::ConnectionClosed));
    let restart = fsm.next_deadline().unwrap();
    assert_eq!(fsm.handle(restart, Input::Tick), vec![Action::Connect]);
}

#[test]
fn connection_closed_in_open_sent_listens_in_active_until_retry() {
    let t0 = Instant::now();
    let mut fsm = open_sent(config(), t0);
    assert_eq!(fsm.handle(t0, Input::Closed { connection: C1 }), vec![]);
    assert_eq!(fsm.state(), State::Active);
    let actions = fsm.handle(t0, inbound(C2));
    assert!(sends(&actions, C2, &Message::Open(fsm.local_open())));
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn open_with_unsupported_version_is_answered_with_version_4() {
    let t0 = Instant::now();
    let mut fsm = open_sent(config(), t0);
    let error = DecodeError::UnsupportedVersion { version: 5 };
    let actions = fsm.handle(
        t0,
        Input::Malformed {
            connection: C1,
            error,
        },
    );
    let expected = Notification::with_data(
        ErrorCode::Open(OpenSubcode::UnsupportedVersionNumber),
        vec![0, 4],
    );
    assert!(sends(&actions, C1, &Message::Notification(expected)));
    assert!(closes(&actions, C1));
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn configuration_the_protocol_cannot_carry_is_refused() {
    assert_eq!(
        Fsm::new(PeerConfig {
            hold_time: 2,
            ..config()
        })
        .unwrap_err(),
        ConfigError::HoldTime { hold_time: 2 }
    );
    assert_eq!(
        Fsm::new(PeerConfig {
            connect_retry: Duration::ZERO,
            ..config()
        })
        .unwrap_err(),
        ConfigError::ConnectRetry
    );
    assert_eq!(
        Fsm::new(PeerConfig {
            families: vec![],
            ..config()
        })
        .unwrap_err(),
        ConfigError::NoFamily
    );
    let gr = Some(GracefulRestartConfig {
        restart_time: 4096,
        restarted: false,
    });
    assert_eq!(
        Fsm::new(PeerConfig {
            graceful_restart: gr,
            ..config()
        })
        .unwrap_err(),
        ConfigError::RestartTime { restart_time: 4096 }
    );
}

#[test]
fn timer_changes_apply_without_disturbing_the_session() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let calmer = PeerConfig {
        connect_retry: Duration::from_secs(10),
        keepalive: Some(5),
        passive: true,
        ..config()
    };
    assert_eq!(fsm.reconfigure(t0, calmer).unwrap(), vec![]);
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn changing_what_open_fixed_resets_with_other_configuration_change() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let actions = fsm
        .reconfigure(
            t0,
            PeerConfig {
                hold_time: 30,
                ..config()
            },
        )
        .unwrap();
    assert_eq!(notification_sent(&actions, C1), Some((6, 6)));
    assert!(closes(&actions, C1));
    assert!(actions.contains(&Action::Down(SessionError::Stopped(
        CeaseSubcode::OtherConfigurationChange
    ))));
    assert_eq!(
        actions.last(),
        Some(&Action::Connect),
        "the new session starts at once"
    );
    assert_eq!(fsm.local_open().hold_time, 30);
    assert!(
        fsm.reconfigure(
            t0,
            PeerConfig {
                hold_time: 1,
                ..config()
            }
        )
        .is_err()
    );
}

#[test]
fn local_pref_from_an_external_peer_is_discarded() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let update = Update {
        attributes: vec![
            PathAttribute::LocalPref(500),
            PathAttribute::MultiExitDisc(5),
        ],
        ..Update::default()
    };
    let actions = fsm.handle(t0, received(C1, Message::Update(update)));
    assert_eq!(
        actions,
        vec![Action::UpdateReceived(Update {
            attributes: vec![PathAttribute::MultiExitDisc(5)],
            ..Update::default()
        })]
    );
}

#[test]
fn route_refresh_for_a_negotiated_family_asks_for_the_routes_again() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let request = |family| received(C1, Message::RouteRefresh(RouteRefresh::request(family)));
    assert_eq!(
        fsm.handle(t0, request(Family::IPV6_UNICAST)),
        vec![Action::RouteRefreshRequested(Family::IPV6_UNICAST)]
    );
    assert_eq!(fsm.handle(t0, request(Family { afi: 1, safi: 2 })), vec![]);
}

#[test]
fn collision_with_higher_remote_identifier_keeps_the_peers_connection() {
    let t0 = Instant::now();
    let mut fsm = open_sent(config(), t0);
    let actions = fsm.handle(t0, inbound(C2));
    assert!(sends(&actions, C2, &Message::Open(fsm.local_open())));
    let actions = fsm.handle(
        t0,
        received(C2, Message::Open(peer_open(65001, 90, [192, 0, 2, 20]))),
    );
    assert_eq!(notification_sent(&actions, C1), Some((6, 7)));
    assert!(closes(&actions, C1));
    assert!(sends(&actions, C2, &Message::Keepalive));
    assert_eq!(fsm.state(), State::OpenConfirm);
    fsm.handle(t0, received(C2, Message::Keepalive));
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn collision_with_lower_remote_identifier_keeps_our_connection() {
    let t0 = Instant::now();
    let mut fsm = open_confirm(config(), t0);
    fsm.handle(t0, inbound(C2));
    let actions = fsm.handle(
        t0,
        received(C2, Message::Open(peer_open(65001, 90, [192, 0, 2, 5]))),
    );
    assert_eq!(notification_sent(&actions, C2), Some((6, 7)));
    assert!(closes(&actions, C2));
    assert_eq!(fsm.state(), State::OpenConfirm);
    fsm.handle(t0, received(C1, Message::Keepalive));
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn passive_peer_reconnecting_during_open_confirm_keeps_the_newer_connection() {
    let t0 = Instant::now();
    let mut fsm = Fsm::new(PeerConfig {
        passive: true,
        ..config()
    })
    .unwrap();
    fsm.handle(t0, Input::Start);
    fsm.handle(t0, inbound(C1));
    fsm.handle(
        t0,
        received(C1, Message::Open(peer_open(65001, 90, [192, 0, 2, 5]))),
    );
    fsm.handle(t0, inbound(C2));
    let actions = fsm.handle(
        t0,
        received(C2, Message::Open(peer_open(65001, 90, [192, 0, 2, 5]))),
    );
    assert!(closes(&actions, C1));
    assert_eq!(fsm.state(), State::OpenConfirm);
    fsm.handle(t0, received(C2, Message::Keepalive));
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn new_connection_while_established_is_rejected() {
    let t0 = Instant::now();
    let mut fsm = established(config(), t0);
    let actions = fsm.handle(t0, inbound(C2));
    assert_eq!(notification_sent(&actions, C2), Some((6, 5)));
    assert!(closes(&actions, C2));
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn idle_refuses_connections() {
    let mut fsm = Fsm::new(config()).unwrap();
    assert_eq!(
        fsm.handle(Instant::now(), inbound(C1)),
        vec![Action::Close { connection: C1 }]
    );
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn restarted_speaker_sets_the_restart_bit_only_until_established() {
    let t0 = Instant::now();
    let gr = Some(GracefulRestartConfig {
        restart_time: 120,
        restarted: true,
    });
    let restart_bit = |fsm: &Fsm| {
        fsm.local_open().capabilities().any(|c| {
            matches!(c, Capability::GracefulRestart(gr) if gr.restarting && gr.families.iter().all(|f| f.forwarding_preserved))
        })
    };
    let mut fsm = open_confirm(
        PeerConfig {
            graceful_restart: gr,
            ..config()
        },
        t0,
    );
    assert!(restart_bit(&fsm));
    fsm.handle(t0, received(C1, Message::Keepalive));
    assert!(!restart_bit(&fsm));
}

#[test]
fn peer_graceful_restart_is_exposed_when_both_advertise_it() {
    let t0 = Instant::now();
    let mut fsm = open_sent(config(), t0);
    let mut open = peer_open(65001, 90, [192, 0, 2, 20]);
    let gr = GracefulRestart {
        restarting: false,
        notification: true,
        restart_time: 90,
        families: vec![],
    };
    open.parameters[0]
        .capabilities
        .push(Capability::GracefulRestart(gr.clone()));
    fsm.handle(t0, received(C1, Message::Open(open)));
    assert_eq!(fsm.negotiated().unwrap().peer_graceful_restart, Some(gr));
}

fn any_input() -> impl Strategy<Value = Input> {
    let connection = (1u64..=3).prop_map(ConnectionId);
    let open = (
        prop_oneof![Just(65000u32), Just(65001)],
        0u16..=5,
        any::<[u8; 4]>(),
    )
        .prop_map(|(asn, hold, id)| peer_open(asn, hold * 30 / 5, id));
    let message = prop_oneof![
        open.prop_map(Message::Open),
        Just(Message::Keepalive),
        Just(Message::Update(Update {
            attributes: vec![PathAttribute::MpUnreach(MpUnreach::Ipv6Unicast(vec![]))],
            ..Update::default()
        })),
        Just(Message::Notification(Notification::new(
            ErrorCode::HoldTimerExpired
        ))),
        Just(Message::RouteRefresh(RouteRefresh::request(
            Family::IPV4_UNICAST
        ))),
    ];
    let direction = prop_oneof![Just(Direction::Inbound), Just(Direction::Outbound)];
    prop_oneof![
        Just(Input::Start),
        Just(Input::Stop(CeaseSubcode::AdministrativeShutdown)),
        (connection.clone(), direction).prop_map(|(connection, direction)| Input::Connected {
            connection,
            direction
        }),
        Just(Input::ConnectFailed),
        connection
            .clone()
            .prop_map(|connection| Input::Closed { connection }),
        (connection.clone(), message).prop_map(|(connection, message)| Input::Received {
            connection,
            message
        }),
        connection.prop_map(|connection| Input::Malformed {
            connection,
            error: DecodeError::ConnectionNotSynchronized
        }),
        Just(Input::Tick),
    ]
}

proptest! {
    #[test]
    fn no_input_sequence_panics_or_breaks_invariants(
        config_passive in any::<bool>(),
        steps in proptest::collection::vec((0u64..120, any_input()), 1..60),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut fsm = Fsm::new(PeerConfig { passive: config_passive, ..config() }).unwrap();
        let mut up = false;
        for (advance, input) in steps {
            now += Duration::from_secs(advance);
            for action in fsm.handle(now, input) {
                match action {
                    Action::Established(_) => { prop_assert!(!up); up = true; }
                    Action::Down(_) => { prop_assert!(up); up = false; }
                    _ => {}
                }
            }
            prop_assert_eq!(up, fsm.state() == State::Established);
            if matches!(fsm.state(), State::OpenConfirm | State::Established) {
                prop_assert!(fsm.negotiated().is_some());
            }
        }
    }
}
