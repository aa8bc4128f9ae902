//! Behaviour of the heartbeat liveness table: two or three tables exchange real encoded heartbeats.

use std::time::{Duration, Instant};

use ferrolb_speaker::membership::liveness::{
    DownReason, DropReason, Event, Liveness, LivenessConfig, LivenessError, MemberChange,
};
use ferrolb_speaker::membership::packet::HeartbeatKey;

const WALL: u64 = 1_700_000_000_000;

fn key() -> HeartbeatKey {
    HeartbeatKey::new(b"cluster-secret").expect("non-empty")
}

fn table(node: &str, incarnation: u64) -> Liveness {
    let mut table = Liveness::new(node, incarnation, key(), LivenessConfig::default())
        .expect("valid name and config");
    table.set_peers(["node-a", "node-b", "node-c"]);
    table
}

/// The next ordinary heartbeat of `from`, stamped with the common wall clock.
fn beat(from: &mut Liveness) -> Vec<u8> {
    from.heartbeat(WALL, false).expect("encodes")
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn deliver(to: &mut Liveness, now: Instant, bytes: &[u8]) -> Vec<MemberChange> {
    to.handle(
        now,
        Event::Datagram {
            bytes,
            wall_clock_ms: WALL,
        },
    )
}

fn up(node: &str) -> Vec<MemberChange> {
    vec![MemberChange::Up {
        node: node.to_owned(),
    }]
}

fn down(node: &str, reason: DownReason) -> Vec<MemberChange> {
    vec![MemberChange::Down {
        node: node.to_owned(),
        reason,
    }]
}

#[test]
fn default_detection_is_well_under_a_second() {
    let config = LivenessConfig::default();
    assert_eq!(config.interval, ms(100));
    assert_eq!(config.detect_multiplier, 3);
    assert!(config.detect_time() < Duration::from_secs(1));
}

#[test]
fn zero_timers_and_unusable_names_are_refused() {
    let build = |node: &str, config| Liveness::new(node, 1, key(), config).err();
    let zero_interval = LivenessConfig {
        interval: Duration::ZERO,
        ..LivenessConfig::default()
    };
    let zero_multiplier = LivenessConfig {
        detect_multiplier: 0,
        ..LivenessConfig::default()
    };
    assert_eq!(
        build("node-a", zero_interval),
        Some(LivenessError::ZeroInterval)
    );
    assert_eq!(
        build("node-a", zero_multiplier),
        Some(LivenessError::ZeroMultiplier)
    );
    assert_eq!(
        build("", LivenessConfig::default()),
        Some(LivenessError::NodeName { len: 0 })
    );
    assert_eq!(
        build(&"n".repeat(254), LivenessConfig::default()),
        Some(LivenessError::NodeName { len: 254 })
    );
}

#[test]
fn first_heartbeat_brings_peer_up_once() {
    let t0 = Instant::now();
    let (mut a, mut b) = (table("node-a", 1), table("node-b", 1));
    let first = beat(&mut b);
    assert_eq!(deliver(&mut a, t0, &first), up("node-b"));
    let second = beat(&mut b);
    assert!(deliver(&mut a, t0 + ms(100), &second).is_empty());
    assert_eq!(a.alive().collect::<Vec<_>>(), vec!["node-b"]);
    assert_eq!(a.accepted(), 2);
}

#[test]
fn silent_peer_goes_down_after_interval_times_multiplier() {
    let t0 = Instant::now();
    let (mut a, mut b) = (table("node-a", 1), table("node-b", 1));
    deliver(&mut a, t0, &beat(&mut b));
    assert_eq!(a.next_deadline(), Some(t0 + ms(300)));
    assert!(a.handle(t0 + ms(299), Event::Tick).is_empty());
    assert_eq!(
        a.handle(t0 + ms(300), Event::Tick),
        down("node-b", DownReason::Timeout)
    );
    assert_eq!(a.next_deadline(), None);
    assert_eq!(a.alive().count(), 0);
}

#[test]
fn heartbeats_keep_peer_up() {
    let t0 = Instant::now();
    let (mut a, mut b) = (table("node-a", 1), table("node-b", 1));
    for step in 0..20 {
        let beat = beat(&mut b);
        deliver(&mut a, t0 + ms(100 * step), &beat);
    }
    assert!(a.handle(t0 + ms(2_000), Event::Tick).is_empty());
    assert_eq!(a.alive().collect::<Vec<_>>(), vec!["node-b"]);
}

#[test]
fn leaving_heartbeat_marks_peer_down_at_once() {
    let t0 = Instant::now();
    let (mut a, mut b) = (table("node-a", 1), table("node-b", 1));
    deliver(&mut a, t0, &beat(&mut b));
    let leaving = b.heartbeat(WALL, true).expect("encodes");
    assert_eq!(
        deliver(&mut a, t0 + ms(10), &leaving),
        down("node-b", DownReason::Leaving)
    );
    assert_eq!(a.next_deadline(), None);
}

#[test]
fn forged_heartbeat_is_dropped_and_counted() {
    let t0 = Instant::now();
    let mut a = table("node-a", 1);
    let mut forger = Liveness::new(
        "node-b",
        1,
        HeartbeatKey::new(b"guessed").expect("non-empty"),
        LivenessConfig::default(),
    )
    .expect("valid name and config");
    let forged = beat(&mut forger);
    assert!(deliver(&mut a, t0, &forged).is_empty());
    assert_eq!(a.dropped(DropReason::BadMac), 1);
    assert_eq!(a.alive().count(), 0);
}

#[test]
fn replayed_heartbeat_is_dropped_as_duplicate() {
    let t0 = Instant::now();
    let (mut a, mut b) = (table("node-a", 1), table("node-b", 1));
    let beat = beat(&mut b);
    deliver(&mut a, t0, &beat);
    // The peer dies; an attacker replays its last heartbeat to keep it "alive".
    a.handle(t0 + ms(300), Event::Tick);
    assert!(deliver(&mut a, t0 + ms(310), &beat).is_empty());
    assert_eq!(a.dropped(DropReason::Duplicate), 1);
    assert_eq!(a.alive().count(), 0);
}

#[test]
fn reordered_heartbeat_is_dropped_and_later_ones_still_count() {
    let t0 = Instant::now();
    let (mut a, mut b) = (table("node-a", 1), table("node-b", 1));
    let first = beat(&mut b);
    let second = beat(&mut b);
    let third = beat(&mut b);
    assert_eq!(deliver(&mut a, t0, &second), up("node-b"));
    assert!(deliver(&mut a, t0, &first).is_empty());
    assert_eq!(a.dropped(DropReason::OutOfOrder), 1);
    assert!(deliver(&mut a, t0, &third).is_empty());
    assert_eq!(a.accepted(), 2);
}

#[test]
fn late_heartbeat_from_before_leaving_does_not_revive_peer() {
    let t0 = Instant::now();
    let (mut a, mut b) = (table("node-a", 1), table("node-b", 1));
    let ordinary = beat(&mut b);
    let leaving = b.heartbeat(WALL, true).expect("encodes");
    deliver(&mut a, t0, &leaving);
    assert!(deliver(&mut a, t0, &ordinary).is_empty());
    assert_eq!(a.alive().count(), 0);
}

#[test]
fn restarted_peer_with_new_incarnation_is_accepted_and_old_run_rejected() {
    let t0 = Instant::now();
    let mut a = table("node-a", 1);
    let mut old_run = table("node-b", 1_000);
    let old_beat = beat(&mut old_run);
    for _ in 0..50 {
        deliver(&mut a, t0, &beat(&mut old_run));
    }
    let leaving = old_run.heartbeat(WALL, true).expect("encodes");
    deliver(&mut a, t0, &leaving);
    // The restarted process counts from sequence 1 again, in a larger incarnation.
    let mut new_run = table("node-b", 2_000);
    let first = beat(&mut new_run);
    assert_eq!(deliver(&mut a, t0 + ms(50), &first), up("node-b"));
    assert!(deliver(&mut a, t0 + ms(60), &old_beat).is_empty());
    assert_eq!(a.dropped(DropReason::OldIncarnation), 1);
}

#[test]
fn heartbeat_from_unknown_node_or_self_is_dropped() {
    let t0 = Instant::now();
    let mut a = table("node-a", 1);
    let mut stranger = table("node-x", 1);
    assert!(deliver(&mut a, t0, &beat(&mut stranger)).is_empty());
    assert_eq!(a.dropped(DropReason::UnknownPeer), 1);
    let mut impostor = table("node-a", 7);
    assert!(deliver(&mut a, t0, &beat(&mut impostor)).is_empty());
    assert_eq!(a.dropped(DropReason::FromSelf), 1);
}

#[test]
fn heartbeat_with_timestamp_far_from_our_clock_is_dropped() {
    let t0 = Instant::now();
    let (mut a, mut b) = (table("node-a", 1), table("node-b", 1));
    let skew = LivenessConfig::default().max_clock_skew.as_millis() as u64;
    let recorded = b.heartbeat(WALL - skew - 1, false).expect("encodes");
    assert!(deliver(&mut a, t0, &recorded).is_empty());
    assert_eq!(a.dropped(DropReason::ClockSkew), 1);
    let borderline = b.heartbeat(WALL - skew, false).expect("encodes");
    assert_eq!(deliver(&mut a, t0, &borderline), up("node-b"));
}

#[test]
fn garbage_is_dropped_by_reason() {
    let t0 = Instant::now();
    let mut a = table("node-a", 1);
    assert!(deliver(&mut a, t0, &[]).is_empty());
    assert!(deliver(&mut a, t0, &[9; 80]).is_empty());
    assert!(deliver(&mut a, t0, &[1; 80]).is_empty());
    assert_eq!(a.dropped(DropReason::Truncated), 1);
    assert_eq!(a.dropped(DropReason::WrongVersion), 1);
    assert_eq!(a.dropped(DropReason::BadMac), 1);
    assert_eq!(DropReason::BadMac.as_str(), "bad_mac");
}

#[test]
fn removed_peer_goes_down_and_unheard_new_peer_stays_down() {
    let t0 = Instant::now();
    let (mut a, mut b) = (table("node-a", 1), table("node-b", 1));
    deliver(&mut a, t0, &beat(&mut b));
    assert_eq!(
        a.set_peers(["node-c", "node-d"]),
        down("node-b", DownReason::Removed)
    );
    assert_eq!(a.alive().count(), 0);
    assert!(deliver(&mut a, t0, &beat(&mut b)).is_empty());
    assert_eq!(a.dropped(DropReason::UnknownPeer), 1);
}

#[test]
fn three_peers_detect_one_silent_member() {
    let t0 = Instant::now();
    let mut tables = [table("node-a", 1), table("node-b", 1), table("node-c", 1)];
    let mut changes: Vec<Vec<MemberChange>> = vec![Vec::new(); 3];
    for step in 0..10u64 {
        let now = t0 + ms(100 * step);
        // node-c stops sending after step 3.
        let senders = if step <= 3 { 3 } else { 2 };
        let beats: Vec<(usize, Vec<u8>)> =
            (0..senders).map(|i| (i, beat(&mut tables[i]))).collect();
        for (from, beat) in &beats {
            for (to, table) in tables.iter_mut().enumerate() {
                if to != *from {
                    changes[to].extend(deliver(table, now, beat));
                }
            }
        }
        for (to, table) in tables.iter_mut().enumerate() {
            changes[to].extend(table.handle(now, Event::Tick));
        }
    }
    for survivor in 0..2 {
        assert!(
            changes[survivor].contains(&MemberChange::Down {
                node: "node-c".to_owned(),
                reason: DownReason::Timeout,
            }),
            "{:?}",
            changes[survivor]
        );
        assert!(tables[survivor].alive().all(|node| node != "node-c"));
    }
}

#[test]
fn rotated_key_authenticates_new_heartbeats_and_drops_old_ones() {
    let t0 = Instant::now();
    let mut a = table("node-a", 1);
    let mut b = table("node-b", 1);
    let rotated = HeartbeatKey::new(b"rotated-cluster-secret").expect("non-empty");
    b.set_key(rotated.clone());
    // node-a still signs with the old key: dropped as unauthenticated.
    assert!(deliver(&mut b, t0, &beat(&mut a)).is_empty());
    assert_eq!(b.dropped(DropReason::BadMac), 1);
    assert_eq!(b.dropped_by_reason().get(&DropReason::BadMac), Some(&1));
    a.set_key(rotated);
    assert_eq!(deliver(&mut b, t0 + ms(100), &beat(&mut a)), up("node-a"));
}
