//! BFD protecting a BGP session on loopback: speaker A runs BGP with a BFD profile; its peer is a
//! plain speaker B plus a bare BFD driver on B's address, so the test can fail, silence or
//! administratively disable B's BFD while B's BGP carries on. Each test has its own loopback
//! addresses: the BFD listeners use the RFC 5881 port.

use std::num::NonZeroU8;
use std::time::Instant;

use super::*;
use crate::bfd::driver::{
    DriverConfig, DriverHandle, HopMode, PeerSpec as BfdPeerSpec, SINGLE_HOP_PORT, SessionKey,
};
use crate::bfd::packet::SessionState;
use crate::bfd::session::SessionConfig;

fn profile(interval_ms: u64) -> BfdProfile {
    let multiplier = NonZeroU8::new(3).expect("nonzero");
    BfdProfile::symmetric(Duration::from_millis(interval_ms), multiplier)
}

fn single_hop_listener(address: IpAddr) -> DriverConfig {
    DriverConfig {
        single_hop_listen: vec![SocketAddr::new(address, SINGLE_HOP_PORT)],
        multihop_listen: Vec::new(),
    }
}

struct Protected {
    a: Speaker,
    to_b: PeerHandle,
    _b: Speaker,
    to_a: PeerHandle,
    /// B's BFD, driven by the test.
    b_bfd: DriverHandle,
    b_spec: BfdPeerSpec,
    b_config: SessionConfig,
}

impl Protected {
    /// A (BGP + BFD 50 ms x 3) and B, both Established with BFD Up.
    async fn up(a: IpAddr, b: IpAddr) -> Self {
        let mut speaker_a = Speaker::listen(&[SocketAddr::new(a, 0)]).expect("listen a");
        speaker_a
            .start_bfd(&single_hop_listener(a))
            .expect("BFD on a");
        let speaker_b = Speaker::listen(&[SocketAddr::new(b, 0)]).expect("listen b");
        let (b_bfd, _) = DriverHandle::start(&single_hop_listener(b)).expect("BFD on b");
        let b_spec = BfdPeerSpec {
            peer: SocketAddr::new(a, SINGLE_HOP_PORT),
            local: b,
            hops: HopMode::SingleHop,
        };
        let b_config = profile(50).session_config().expect("valid");
        b_bfd
            .add_session(b_spec, b_config)
            .await
            .expect("b session");

        let mut spec_a = spec(
            speaker_b.local_addresses()[0],
            a,
            session(64500, 64502, Ipv4Addr::new(192, 0, 2, 1), 1),
            None,
        );
        // A directly connected eBGP peer: single-hop BFD (RFC 5881).
        spec_a.ttl = None;
        spec_a.bfd = Some(profile(50));
        let to_b = speaker_a.add_peer(spec_a, Routes::new()).expect("peer b");
        let mut spec_b = spec(
            speaker_a.local_addresses()[0],
            b,
            session(64502, 64500, Ipv4Addr::new(192, 0, 2, 2), 2),
            None,
        );
        spec_b.ttl = None;
        let to_a = speaker_b.add_peer(spec_b, Routes::new()).expect("peer a");
        let fixture = Protected {
            a: speaker_a,
            to_b,
            _b: speaker_b,
            to_a,
            b_bfd,
            b_spec,
            b_config,
        };
        wait_for(&mut fixture.to_b.status(), "a established, BFD up", |s| {
            s.state == State::Established && bfd_state(s) == Some(SessionState::Up)
        })
        .await;
        wait_for(&mut fixture.to_a.status(), "b established", |s| {
            s.state == State::Established
        })
        .await;
        fixture
    }

    fn b_key(&self) -> SessionKey {
        self.b_spec.key()
    }
}

fn bfd_state(status: &PeerStatus) -> Option<SessionState> {
    status.bfd.as_ref().map(|b| b.state)
}

#[tokio::test]
async fn bfd_path_failure_closes_the_bgp_session_at_once_and_bgp_returns_with_the_path() {
    let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 61));
    let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 62));
    let pair = Protected::up(a, b).await;

    // B's BFD falls silent while B's BGP stays healthy: only BFD can tell A the path failed.
    let silenced = Instant::now();
    pair.b_bfd
        .remove_session(pair.b_key())
        .await
        .expect("remove");
    let down = wait_for(&mut pair.to_b.status(), "a left Established", |s| {
        s.state != State::Established
    })
    .await;
    // Hold time is 9 s; detection is 3 x 50 ms. Generous bound for a shared machine.
    assert!(
        silenced.elapsed() < Duration::from_secs(3),
        "BGP went down only after {:?}",
        silenced.elapsed()
    );
    let bfd = down.bfd.clone().expect("BFD status");
    assert_eq!(bfd.state, SessionState::Down);
    assert_eq!(bfd.path_failures, 1);
    assert!(
        matches!(down.last_error, Some(PeerError::BfdDown { .. })),
        "{:?}",
        down.last_error
    );

    // The path "returns": BFD comes Up again and the FSM's connect retry re-establishes BGP.
    pair.b_bfd
        .add_session(pair.b_spec, pair.b_config)
        .await
        .expect("re-add");
    wait_for(&mut pair.to_b.status(), "a re-established, BFD up", |s| {
        s.state == State::Established && bfd_state(s) == Some(SessionState::Up)
    })
    .await;
}

#[tokio::test]
async fn peer_admin_down_leaves_the_bgp_session_established() {
    let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 63));
    let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 64));
    let pair = Protected::up(a, b).await;
    let since = pair.to_b.status().borrow().since;

    pair.b_bfd
        .set_admin_up(pair.b_key(), false)
        .await
        .expect("admin down");
    wait_for(&mut pair.to_b.status(), "a's BFD down", |s| {
        bfd_state(s) == Some(SessionState::Down)
    })
    .await;
    // Well past a detection time: nothing may have taken BGP down meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = pair.to_b.status().borrow().clone();
    assert_eq!(status.state, State::Established);
    assert_eq!(status.since, since, "the session was reset");
    assert_eq!(status.bfd.expect("BFD status").path_failures, 0);
}

#[tokio::test]
async fn profile_change_retimes_bfd_without_resetting_bgp_or_bfd() {
    let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 65));
    let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66));
    let pair = Protected::up(a, b).await;
    let before = pair.to_b.status().borrow().clone();
    let bfd_since = before.bfd.as_ref().expect("BFD status").since;

    pair.to_b
        .set_bfd_profile(Some(profile(150)))
        .expect("new profile");
    // A Poll Sequence needs a few packets; give it many intervals.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = pair.to_b.status().borrow().clone();
    assert_eq!(after.state, State::Established);
    assert_eq!(after.since, before.since, "the BGP session was reset");
    let bfd = after.bfd.expect("BFD status");
    assert_eq!(bfd.state, SessionState::Up);
    assert_eq!(bfd.since, bfd_since, "the BFD session went through Down");
    assert_eq!(after.last_error, before.last_error);

    // The re-timed session still protects BGP.
    pair.b_bfd
        .remove_session(pair.b_key())
        .await
        .expect("remove");
    wait_for(&mut pair.to_b.status(), "a left Established", |s| {
        s.state != State::Established
    })
    .await;
}

/// A's counters of its session with B, polled every 50 ms until `done` holds (10 s at most).
async fn wait_counters(
    pair: &Protected,
    what: &str,
    done: impl Fn(Option<&BfdSessionCounters>) -> bool,
) -> Option<BfdSessionCounters> {
    let key = pair.to_b.bfd_session().expect("bound to BFD");
    for _ in 0..200 {
        let counters = pair
            .a
            .bfd_counters()
            .await
            .expect("the driver answers")
            .expect("BFD started");
        let session = counters.sessions.get(&key).copied();
        if done(session.as_ref()) {
            return session;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn speaker_counts_each_bfd_session_under_the_peers_key_from_zero_when_replaced() {
    let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 69));
    let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 70));
    let pair = Protected::up(a, b).await;
    let up = wait_counters(&pair, "packets both ways", |s| {
        s.is_some_and(|s| s.counters.packets_in > 0 && s.counters.packets_out > 0)
    })
    .await
    .expect("session");
    // Down, then Init or Up, then Up: the way up is at least one change.
    assert!(up.counters.state_changes >= 1, "{up:?}");
    assert_eq!(up.counters.send_errors, 0, "{up:?}");
    // Ten more intervals of 50 ms.
    let grown = wait_counters(&pair, "more packets received", |s| {
        s.is_some_and(|s| s.counters.packets_in > up.counters.packets_in + 10)
    })
    .await
    .expect("session");
    assert_eq!(grown.discriminator, up.discriminator, "the same session");

    // BFD off: the session leaves the driver; on again: a new session, counting from zero.
    pair.to_b.set_bfd_profile(None).expect("BFD off");
    wait_counters(&pair, "the session removed", |s| s.is_none()).await;
    pair.to_b
        .set_bfd_profile(Some(profile(50)))
        .expect("BFD on");
    let again = wait_counters(&pair, "a new session", |s| s.is_some())
        .await
        .expect("session");
    assert_ne!(again.discriminator, up.discriminator);
    assert!(
        again.counters.packets_out < grown.counters.packets_out,
        "{again:?} counts on from {grown:?}"
    );
}

#[tokio::test]
async fn bfd_profile_refused_without_bfd_running_or_a_local_address() {
    let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 67));
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 68)), 179);
    let mut speaker = Speaker::listen(&[]).expect("speaker");
    let mut protected = spec(
        peer,
        a,
        session(64500, 64502, Ipv4Addr::new(192, 0, 2, 1), 1),
        None,
    );
    protected.bfd = Some(profile(100));
    assert_eq!(
        speaker.bfd_counters().await.expect("no driver to ask"),
        None
    );
    let refused = speaker.add_peer(protected.clone(), Routes::new());
    assert!(
        matches!(
            refused,
            Err(DriverError::Bfd(BfdLinkError::NotStarted { peer: p })) if p == peer.ip()
        ),
        "{refused:?}"
    );

    speaker.start_bfd(&single_hop_listener(a)).expect("BFD");
    protected.local_address = None;
    let refused = speaker.add_peer(protected, Routes::new());
    assert!(
        matches!(
            refused,
            Err(DriverError::Bfd(BfdLinkError::NoLocalAddress { peer: p })) if p == peer.ip()
        ),
        "{refused:?}"
    );
}
