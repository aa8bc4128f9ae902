//! Two BFD drivers talk over real loopback sockets (IPv4 and IPv6): the session comes Up, and
//! when one driver stops the other declares Down with "Control Detection Time Expired".
//! Bounds are generous: this checks behaviour, not speed.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::num::NonZeroU8;
use std::time::Duration;

use ferrolb_speaker::bfd::driver::{
    Counters, DriverConfig, DriverHandle, DropReason, HopMode, PeerSpec, SessionEvent,
};
use ferrolb_speaker::bfd::packet::{ControlPacket, Diagnostic, SessionState};
use ferrolb_speaker::bfd::session::{Cause, SessionConfig};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

fn fast() -> SessionConfig {
    SessionConfig::new(
        Duration::from_millis(50),
        Duration::from_millis(50),
        NonZeroU8::MIN.saturating_add(2),
        false,
    )
    .expect("valid timers")
}

fn driver_on(ip: IpAddr) -> (DriverHandle, UnboundedReceiver<SessionEvent>) {
    DriverHandle::start(&DriverConfig {
        single_hop_listen: vec![SocketAddr::new(ip, 0)],
        multihop_listen: vec![],
    })
    .expect("loopback listener opens")
}

async fn wait_for(
    events: &mut UnboundedReceiver<SessionEvent>,
    to: SessionState,
    within: Duration,
) -> SessionEvent {
    timeout(within, async {
        loop {
            let event = events.recv().await.expect("driver stopped");
            if event.change.to == to {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no transition to {to:?} within {within:?}"))
}

async fn up_then_down_when_peer_stops(ip: IpAddr) {
    let (a, mut a_events) = driver_on(ip);
    let (b, mut b_events) = driver_on(ip);
    let spec = |peer: &DriverHandle| PeerSpec {
        peer: peer.listening()[0],
        local: ip,
        hops: HopMode::SingleHop,
    };
    a.add_session(spec(&b), fast())
        .await
        .expect("session a added");
    b.add_session(spec(&a), fast())
        .await
        .expect("session b added");

    // Down sessions send once a second (RFC 5880 §6.8.3), so Up takes at most a few seconds.
    wait_for(&mut a_events, SessionState::Up, Duration::from_secs(5)).await;
    wait_for(&mut b_events, SessionState::Up, Duration::from_secs(5)).await;
    let status = a.sessions().await.expect("driver a running");
    assert_eq!(status[0].state, SessionState::Up);
    assert!(status[0].remote_discriminator.is_some());

    drop(b);
    // Detection time is 3 x 50 ms; allow plenty for a loaded machine.
    let down = wait_for(&mut a_events, SessionState::Down, Duration::from_secs(3)).await;
    assert_eq!(down.change.diag, Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(down.change.cause, Cause::DetectionTimeExpired);
    assert!(down.change.signals_path_failure());

    let counters: Counters = a.counters().await.expect("driver a running");
    assert!(counters.packets_in >= 3, "{counters:?}");
    assert!(counters.packets_out >= 3, "{counters:?}");
    assert!(counters.state_changes >= 2, "{counters:?}");
}

#[tokio::test]
async fn sessions_come_up_and_detect_a_stopped_peer_over_ipv4() {
    up_then_down_when_peer_stops("127.0.0.1".parse().unwrap()).await;
}

#[tokio::test]
async fn sessions_come_up_and_detect_a_stopped_peer_over_ipv6() {
    up_then_down_when_peer_stops("::1".parse().unwrap()).await;
}

#[tokio::test]
async fn packets_below_ttl_255_and_malformed_packets_are_dropped_and_counted() {
    let (driver, _events) = driver_on("127.0.0.1".parse().unwrap());
    let listener = driver.listening()[0];
    let a_down_packet = [
        0x20, 0x40, 0x03, 0x18, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40, 0, 0x0f, 0x42, 0x40,
        0, 0, 0, 0,
    ];
    assert!(ControlPacket::decode(&a_down_packet).is_ok());

    let low_ttl = UdpSocket::bind("127.0.0.1:0").unwrap();
    low_ttl.set_ttl(64).unwrap();
    low_ttl.send_to(&a_down_packet, listener).unwrap();

    let full_ttl = UdpSocket::bind("127.0.0.1:0").unwrap();
    full_ttl.set_ttl(255).unwrap();
    full_ttl.send_to(&a_down_packet[..10], listener).unwrap();
    // Valid and at TTL 255, but no session is configured for this peer.
    full_ttl.send_to(&a_down_packet, listener).unwrap();

    let counters = timeout(Duration::from_secs(5), async {
        loop {
            let counters = driver.counters().await.unwrap();
            if counters.packets_in == 3 {
                return counters;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("three datagrams received");
    let dropped = |reason| counters.dropped.get(&reason).copied();
    assert_eq!(dropped(DropReason::TtlNot255), Some(1));
    assert_eq!(
        dropped(DropReason::Invalid("length_exceeds_payload")),
        Some(1)
    );
    assert_eq!(dropped(DropReason::NoSession), Some(1));
}
