//! Two drivers on loopback addresses talk to each other: sessions, routes, stop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::*;
use crate::bgp::fsm::State;
use crate::bgp::packet::{Community, Family};
use crate::bgp::rib_out::RouteAttributes;

mod bfd_coupling;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn session(local_as: u32, peer_as: u32, id: Ipv4Addr, seed: u64) -> PeerConfig {
    PeerConfig {
        local_as,
        peer_as: PeerAs::Fixed(peer_as),
        bgp_identifier: id,
        hold_time: 9,
        keepalive: None,
        connect_retry: Duration::from_millis(200),
        connect_retry_max: Duration::from_secs(1),
        passive: false,
        families: vec![Family::IPV4_UNICAST],
        graceful_restart: None,
        jitter_seed: seed,
    }
}

fn spec(peer: SocketAddr, local: IpAddr, config: PeerConfig, password: Option<&str>) -> PeerSpec {
    PeerSpec {
        address: peer,
        local_address: Some(local),
        session: config,
        next_hops: NextHops {
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 11)),
            ..NextHops::default()
        },
        password: password.map(str::to_owned),
        ttl: Some(64),
        bfd: None,
    }
}

async fn wait_for(
    status: &mut watch::Receiver<PeerStatus>,
    what: &str,
    done: impl Fn(&PeerStatus) -> bool,
) -> PeerStatus {
    let waited = tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| done(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    if let Ok(Ok(reached)) = waited {
        return reached;
    }
    panic!("{what}: last status {:?}", *status.borrow())
}

/// Two speakers on 127.0.0.1 (AS 64500) and 127.0.0.2 (AS 64502), each listening on a port of its
/// own; `adjust` changes their session parameters.
fn pair_with(
    adjust: impl Fn(&mut PeerConfig, &mut PeerConfig),
    password_a: Option<&str>,
    password_b: Option<&str>,
) -> (Speaker, PeerHandle, Speaker, PeerHandle) {
    let a = Speaker::listen(&[SocketAddr::new(A, 0)]).expect("listen a");
    let b = Speaker::listen(&[SocketAddr::new(B, 0)]).expect("listen b");
    let port_a = a.local_addresses()[0];
    let port_b = b.local_addresses()[0];
    let mut config_a = session(64500, 64502, Ipv4Addr::new(192, 0, 2, 1), 1);
    let mut config_b = session(64502, 64500, Ipv4Addr::new(192, 0, 2, 2), 2);
    adjust(&mut config_a, &mut config_b);
    let to_b = a
        .add_peer(spec(port_b, A, config_a, password_a), Routes::new())
        .expect("peer b");
    let to_a = b
        .add_peer(spec(port_a, B, config_b, password_b), Routes::new())
        .expect("peer a");
    (a, to_b, b, to_a)
}

fn pair(
    password_a: Option<&str>,
    password_b: Option<&str>,
) -> (Speaker, PeerHandle, Speaker, PeerHandle) {
    pair_with(|_, _| {}, password_a, password_b)
}

fn error_text(status: &PeerStatus) -> String {
    status
        .last_error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn route(prefix: &str, community: u16) -> Routes {
    let mut attributes = RouteAttributes::default();
    attributes
        .communities
        .insert(Community::new(64500, community));
    Routes::from([(prefix.parse().expect("prefix"), attributes)])
}

#[tokio::test]
async fn sessions_come_up_and_route_changes_keep_them_up() {
    let (_a, to_b, _b, to_a) = pair(None, None);
    let mut status = to_b.status();
    let up = wait_for(&mut status, "a established", |s| {
        s.state == State::Established
    })
    .await;
    wait_for(&mut to_a.status(), "b established", |s| {
        s.state == State::Established
    })
    .await;
    assert_eq!(up.prefixes_sent, 0);
    assert!(up.end_of_rib_sent);

    to_b.set_routes(route("203.0.113.10/32", 1));
    let sent = wait_for(&mut status, "route sent", |s| s.prefixes_sent == 1).await;
    assert_eq!(sent.since, up.since, "a route change reset the session");
    to_b.set_routes(Routes::new());
    let withdrawn = wait_for(&mut status, "route withdrawn", |s| s.prefixes_sent == 0).await;
    assert_eq!(withdrawn.state, State::Established);
    assert_eq!(withdrawn.since, up.since);
}

#[tokio::test]
async fn stop_sends_cease_that_the_peer_reports_as_text() {
    let (_a, to_b, _b, to_a) = pair(None, None);
    let mut status_b = to_a.status();
    wait_for(&mut status_b, "b established", |s| {
        s.state == State::Established
    })
    .await;
    to_b.stop(CeaseSubcode::AdministrativeShutdown).await;
    let down = wait_for(&mut status_b, "b sees the Cease", |s| {
        s.state != State::Established
    })
    .await;
    let error = down.last_error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.contains("NOTIFICATION received: Cease(AdministrativeShutdown) (6/2)"),
        "{error}"
    );
}

#[tokio::test]
async fn wrong_md5_password_keeps_the_session_down_with_a_clear_error() {
    let (_a, to_b, _b, _to_a) = pair(Some("s3cret"), Some("wrong"));
    let mut status = to_b.status();
    let failed = wait_for(&mut status, "connect timeout reported", |s| {
        matches!(s.last_error, Some(PeerError::ConnectTimeout { .. }))
    })
    .await;
    assert_ne!(failed.state, State::Established);
    let text = failed.last_error.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("TCP-MD5"), "{text}");
}

#[tokio::test]
async fn matching_md5_passwords_establish() {
    let (_a, to_b, _b, _to_a) = pair(Some("s3cret"), Some("s3cret"));
    wait_for(&mut to_b.status(), "established", |s| {
        s.state == State::Established
    })
    .await;
}

#[tokio::test]
async fn passive_peer_establishes_when_the_other_side_connects() {
    let (_a, to_b, _b, to_a) = pair_with(|a, _| a.passive = true, None, None);
    wait_for(&mut to_b.status(), "passive side established", |s| {
        s.state == State::Established
    })
    .await;
    wait_for(&mut to_a.status(), "active side established", |s| {
        s.state == State::Established
    })
    .await;
}

#[tokio::test]
async fn dynamic_external_peer_as_accepts_any_other_as() {
    let (_a, to_b, _b, _to_a) = pair_with(|a, _| a.peer_as = PeerAs::External, None, None);
    wait_for(&mut to_b.status(), "established", |s| {
        s.state == State::Established
    })
    .await;
}

#[tokio::test]
async fn wrong_peer_as_is_refused_and_both_sides_say_why() {
    let (_a, to_b, _b, to_a) = pair_with(|a, _| a.peer_as = PeerAs::Fixed(64999), None, None);
    let refused = wait_for(&mut to_b.status(), "refusal sent", |s| {
        error_text(s).starts_with("NOTIFICATION sent")
    })
    .await;
    assert_eq!(
        error_text(&refused),
        "NOTIFICATION sent: Open(BadPeerAs) (2/2)"
    );
    let told = wait_for(&mut to_a.status(), "refusal received", |s| {
        error_text(s).starts_with("NOTIFICATION received")
    })
    .await;
    assert_eq!(
        error_text(&told),
        "NOTIFICATION received: Open(BadPeerAs) (2/2)"
    );
    assert_ne!(told.state, State::Established);
}

#[tokio::test]
async fn routes_given_at_start_are_sent_with_the_initial_sync() {
    let a = Speaker::listen(&[SocketAddr::new(A, 0)]).expect("listen a");
    let b = Speaker::listen(&[SocketAddr::new(B, 0)]).expect("listen b");
    let config_a = session(64500, 64502, Ipv4Addr::new(192, 0, 2, 1), 1);
    let config_b = session(64502, 64500, Ipv4Addr::new(192, 0, 2, 2), 2);
    let to_b = a
        .add_peer(
            spec(b.local_addresses()[0], A, config_a, None),
            route("203.0.113.10/32", 1),
        )
        .expect("peer b");
    let _to_a = b
        .add_peer(
            spec(a.local_addresses()[0], B, config_b, None),
            Routes::new(),
        )
        .expect("peer a");
    let up = wait_for(&mut to_b.status(), "established", |s| {
        s.state == State::Established
    })
    .await;
    assert_eq!(up.prefixes_sent, 1);
}

#[tokio::test]
async fn outbound_connection_carries_the_configured_ttl_and_source() {
    let listener = tokio::net::TcpListener::bind((A, 0)).await.expect("listen");
    let stream = socket::connect(socket::ConnectSpec {
        peer: listener.local_addr().expect("address"),
        local: Some(B),
        password: None,
        ttl: Some(1),
    })
    .await
    .expect("connect");
    assert_eq!(SockRef::from(&stream).ttl_v4().expect("ttl"), 1);
    assert_eq!(stream.local_addr().expect("local").ip(), B);
}

#[tokio::test]
async fn reconfiguration_resets_the_session_only_when_open_parameters_change() {
    let mut config = session(64500, 64502, Ipv4Addr::new(192, 0, 2, 1), 1);
    let (_a, to_b, _b, to_a) = pair(None, None);
    let mut status = to_b.status();
    let up = wait_for(&mut status, "established", |s| {
        s.state == State::Established
    })
    .await;

    // The connect timers are not part of the OPEN: the session stays.
    config.connect_retry = Duration::from_millis(300);
    to_b.reconfigure(config.clone())
        .expect("reconfigure timers");
    to_b.set_routes(route("203.0.113.10/32", 1));
    let after = wait_for(&mut status, "route sent", |s| s.prefixes_sent == 1).await;
    assert_eq!(after.since, up.since, "timer change reset the session");

    // The hold time is: Cease / Other Configuration Change, then a new session.
    config.hold_time = 30;
    to_b.reconfigure(config).expect("reconfigure hold time");
    let reset = wait_for(&mut to_a.status(), "peer told of the reset", |s| {
        error_text(s).contains("Cease(OtherConfigurationChange)")
    })
    .await;
    assert_eq!(
        error_text(&reset),
        "NOTIFICATION received: Cease(OtherConfigurationChange) (6/6)"
    );
    let again = wait_for(&mut status, "established again", |s| {
        s.state == State::Established && s.since != up.since
    })
    .await;
    assert_eq!(
        again.prefixes_sent, 1,
        "routes are sent again on the new session"
    );
}
