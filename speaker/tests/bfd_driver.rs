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

/// A driver listening on `ip` with an OS-chosen port, for one hop mode.
fn driver_on(ip: IpAddr, hops: HopMode) -> (DriverHandle, UnboundedReceiver<SessionEvent>) {
    let listen = vec![SocketAddr::new(ip, 0)];
    let config = match hops {
        HopMode::SingleHop => DriverConfig {
            single_hop_listen: listen,
            multihop_listen: vec![],
        },
        HopMode::Multihop { .. } => DriverConfig {
            single_hop_listen: vec![],
            multihop_listen: listen,
        },
    };
    DriverHandle::start(&config).expect("loopback listener opens")
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

async fn up_then_down_when_peer_stops(ip: IpAddr, hops: HopMode) {
    let (a, mut a_events) = driver_on(ip, hops);
    let (b, mut b_events) = driver_on(ip, hops);
    let spec = |peer: &DriverHandle| PeerSpec {
        peer: peer.listening()[0],
        local: ip,
        hops,
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
    assert!(status[0].counters.packets_in >= 1 && status[0].counters.packets_out >= 1);
    assert!(status[0].counters.state_changes >= 1);

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
    up_then_down_when_peer_stops("127.0.0.1".parse().unwrap(), HopMode::SingleHop).await;
}

#[tokio::test]
async fn sessions_come_up_and_detect_a_stopped_peer_over_ipv6() {
    up_then_down_when_peer_stops("::1".parse().unwrap(), HopMode::SingleHop).await;
}

#[tokio::test]
async fn multihop_sessions_come_up_and_detect_a_stopped_peer() {
    let hops = HopMode::Multihop { min_ttl: 254 };
    up_then_down_when_peer_stops("127.0.0.1".parse().unwrap(), hops).await;
}

/// Polls the counters until `received` datagrams have been processed.
async fn counters_after(driver: &DriverHandle, received: u64) -> Counters {
    timeout(Duration::from_secs(5), async {
        loop {
            let counters = driver.counters().await.expect("driver running");
            if counters.packets_in >= received {
                return counters;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("datagrams received")
}

fn sender(ip: &str, ttl: u32) -> UdpSocket {
    let socket = UdpSocket::bind((ip, 0)).expect("loopback socket");
    socket.set_ttl(ttl).expect("TTL set");
    socket
}

/// A Down packet from discriminator 9, addressed to `your` (0: not yet known).
fn down_packet(your: u32) -> [u8; 24] {
    let mut packet = [
        0x20, 0x40, 0x03, 0x18, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40, 0, 0x0f, 0x42, 0x40,
        0, 0, 0, 0,
    ];
    packet[8..12].copy_from_slice(&your.to_be_bytes());
    packet
}

#[tokio::test]
async fn multihop_packets_below_the_minimum_ttl_are_dropped() {
    let (driver, mut events) = driver_on(
        "127.0.0.1".parse().unwrap(),
        HopMode::Multihop { min_ttl: 250 },
    );
    let listener = driver.listening()[0];
    let near = sender("127.0.0.1", 252);
    let spec = PeerSpec {
        peer: near.local_addr().unwrap(),
        local: "127.0.0.1".parse().unwrap(),
        hops: HopMode::Multihop { min_ttl: 250 },
    };
    driver.add_session(spec, fast()).await.unwrap();

    sender("127.0.0.1", 200)
        .send_to(&down_packet(0), listener)
        .unwrap();
    let counters = counters_after(&driver, 1).await;
    assert_eq!(counters.dropped.get(&DropReason::TtlBelowMinimum), Some(&1));

    near.send_to(&down_packet(0), listener).unwrap();
    let event = timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.change.to, SessionState::Init);
}

#[tokio::test]
async fn packet_for_a_session_from_another_address_is_dropped() {
    let (driver, mut events) = driver_on("127.0.0.1".parse().unwrap(), HopMode::SingleHop);
    let listener = driver.listening()[0];
    // The session's own packets go to a socket of this test, not to a port someone may use.
    let peer = sender("127.0.0.1", 255);
    let spec = PeerSpec {
        peer: peer.local_addr().unwrap(),
        local: "127.0.0.1".parse().unwrap(),
        hops: HopMode::SingleHop,
    };
    driver.add_session(spec, fast()).await.unwrap();
    let ours = driver.sessions().await.unwrap()[0]
        .local_discriminator
        .get();

    sender("127.0.0.2", 255)
        .send_to(&down_packet(ours), listener)
        .unwrap();
    let counters = counters_after(&driver, 1).await;
    assert_eq!(
        counters.dropped.get(&DropReason::WrongPeerAddress),
        Some(&1)
    );
    assert!(events.try_recv().is_err(), "the session saw nothing");
}

#[tokio::test]
async fn packets_below_ttl_255_and_malformed_packets_are_dropped_and_counted() {
    let (driver, _events) = driver_on("127.0.0.1".parse().unwrap(), HopMode::SingleHop);
    let listener = driver.listening()[0];
    let packet = down_packet(0);
    assert!(ControlPacket::decode(&packet).is_ok());

    sender("127.0.0.1", 64).send_to(&packet, listener).unwrap();
    let full_ttl = sender("127.0.0.1", 255);
    full_ttl.send_to(&packet[..10], listener).unwrap();
    // Valid and at TTL 255, but no session is configured for this peer.
    full_ttl.send_to(&packet, listener).unwrap();

    let counters = counters_after(&driver, 3).await;
    let dropped = |reason| counters.dropped.get(&reason).copied();
    assert_eq!(dropped(DropReason::TtlNot255), Some(1));
    assert_eq!(
        dropped(DropReason::Invalid("length_exceeds_payload")),
        Some(1)
    );
    assert_eq!(dropped(DropReason::NoSession), Some(1));
}
