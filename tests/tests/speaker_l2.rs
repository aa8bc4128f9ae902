//! Layer-2 mode end to end (SPEC §5), against the lab's real kube-apiserver: the controller assigns
//! an IP, three `ferrolb-speaker` processes (one per node namespace) elect an owner, and the L2
//! client reaches the Service through it (the lab backend answers with its node name).
//!
//! There is no kube-controller-manager in the lab, so the tests write the EndpointSlices
//! themselves. Tests share one lab and hold its lock, each with its own controller and speakers
//! ([`l2_lab`]).

mod common;
mod l2_lab;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_lab::binaries::{self, SpeakerOptions};
use ferrolb_lab::l2_mode;
use ferrolb_lab::topology::Client;
use ferrolb_speaker::membership::packet::{Heartbeat, HeartbeatKey};
use l2_lab::{L2Test, NODES, WAIT};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// Every object a test creates carries this label, so the next test can clear leftovers.
const TEST_LABEL: &str = "ferrolb.io/e2e-l2";
const POOL: &str = "l2-e2e";
const ADVERTISEMENT: &str = "l2-e2e";
/// SPEC §9 target for the client-measured failover after an owner dies.
const FAILOVER_BOUND: Duration = Duration::from_secs(1);
/// Heartbeats every second, a peer down after three missed. For the tests not about failover
/// timing: on a machine so loaded that a speaker goes 300 ms (the default detection) without
/// running, the others would count it dead and the IP would move mid-test.
const SLOW_HEARTBEATS: [&str; 4] = ["--heartbeat-interval", "1s", "--detect-multiplier", "3"];

/// Starts the controller and a speaker with `speaker_args` on every node, the L2 pool advertised.
async fn start(test: &str, speaker_args: &[&str]) -> L2Test {
    let options = SpeakerOptions {
        extra_args: speaker_args.iter().map(|a| (*a).to_owned()).collect(),
        ..SpeakerOptions::default()
    };
    let harness = L2Test::start(test, TEST_LABEL, POOL, options).await;
    harness
        .advertise(ADVERTISEMENT, json!({"ipAddressPools": [POOL]}))
        .await;
    harness
}

/// A single-stack LoadBalancer Service of `family`, `Local` or `Cluster` traffic policy.
fn service_spec(family: &str, local: bool) -> Value {
    json!({
        "ipFamilyPolicy": "SingleStack",
        "ipFamilies": [family],
        "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
    })
}

impl L2Test {
    /// Waits until another node than `old` answers `ip`, at most `within` after `since`.
    async fn wait_moved(&self, ip: IpAddr, old: &str, since: Instant, within: Duration) -> String {
        let (node, after) = l2_mode::wait_moved(&self.lab, ip, old, since, within)
            .await
            .expect("the IP moves");
        println!("{ip} moved from {old} to {node} in {after:?}");
        node
    }

    /// The message of the Service's `L2Announced` condition, once it names `node`.
    async fn condition_naming(&self, service: &str, node: &str) -> String {
        l2_mode::wait_announced_condition(&self.client, service, node, WAIT)
            .await
            .expect("L2Announced condition")
    }

    fn signal_speaker(&mut self, index: usize, signal: Signal) {
        self.install
            .signal_speaker(index, signal)
            .expect("speaker signalled");
    }

    /// The client's neighbour entry for `ip`, as a MAC.
    fn client_neighbour_mac(&self, ip: IpAddr) -> Option<String> {
        l2_mode::client_neighbour_mac(&self.lab, ip).expect("neighbours")
    }

    /// The speaker metric, 0 while it has no sample.
    fn metric(&self, index: usize, series: &str) -> f64 {
        l2_mode::speaker_metric(&self.lab, index, series)
            .expect("metrics")
            .unwrap_or(0.0)
    }
}

/// Reach, owner agreement (wire, SpeakerStatus, condition) and SIGKILL failover for one family.
async fn reach_and_sigkill_failover(test: &'static str, family: &str) {
    let mut harness = start(test, &[]).await;
    let service = format!("web-{}", family.to_lowercase());
    let ip = harness
        .create_service(&service, service_spec(family, false), json!({}))
        .await;
    harness.set_endpoints(&service, family, &NODES).await;

    let owner = harness.owner(ip).await;
    let message = harness.condition_naming(&service, &owner).await;
    assert!(message.contains(&ip.to_string()), "{message}");
    let owner_index = harness.node_index(&owner);
    assert_eq!(
        harness.client_neighbour_mac(ip),
        Some(harness.segment_mac(owner_index)),
        "the client resolved {ip} to the owner's MAC"
    );

    harness.wait_members_alive().await;
    let killed = Instant::now();
    harness.signal_speaker(owner_index, Signal::SIGKILL);
    let next = harness.wait_moved(ip, &owner, killed, FAILOVER_BOUND).await;
    let next_index = harness.node_index(&next);
    assert_eq!(
        harness.client_neighbour_mac(ip),
        Some(harness.segment_mac(next_index))
    );
    assert_eq!(harness.owner(ip).await, next);
    harness.condition_naming(&service, &next).await;
    l2_mode::wait_speaker_event(
        &harness.client,
        &service,
        "Announcing",
        &format!("node {next} "),
        WAIT,
    )
    .await
    .expect("Announcing Event");
    assert!(harness.metric(next_index, "ferrolb_l2_failovers_total") >= 1.0);
}

#[tokio::test]
async fn ipv4_client_reaches_owner_and_sigkill_moves_the_ip_within_a_second() {
    reach_and_sigkill_failover("v4", "IPv4").await;
}

#[tokio::test]
async fn ipv6_client_reaches_owner_and_sigkill_moves_the_ip_within_a_second() {
    reach_and_sigkill_failover("v6", "IPv6").await;
}

#[tokio::test]
async fn clean_stop_hands_over_before_the_detection_time() {
    // Detection after 3 s: a takeover well within it can only come from the leaving heartbeat.
    let mut harness = start("sigterm", &SLOW_HEARTBEATS).await;
    let ip = harness
        .create_service("web-term", service_spec("IPv4", false), json!({}))
        .await;
    harness.set_endpoints("web-term", "IPv4", &NODES).await;
    let owner = harness.owner(ip).await;
    // Every speaker must see the others alive before the test means anything.
    harness.wait_members_alive().await;
    let stopped = Instant::now();
    harness.signal_speaker(harness.node_index(&owner), Signal::SIGTERM);
    harness
        .wait_moved(ip, &owner, stopped, Duration::from_millis(1500))
        .await;
}

#[tokio::test]
async fn local_traffic_policy_follows_the_endpoints() {
    let harness = start("local", &[]).await;
    let ip = harness
        .create_service("web-local", service_spec("IPv4", true), json!({}))
        .await;
    harness.set_endpoints("web-local", "IPv4", &[2]).await;
    let first = harness.owner(ip).await;
    assert_eq!(first, harness.node_name(2), "only node 2 has an endpoint");
    harness.set_endpoints("web-local", "IPv4", &[3]).await;
    let moved = harness
        .wait_moved(ip, &first, Instant::now(), Duration::from_secs(10))
        .await;
    assert_eq!(moved, harness.node_name(3));
}

#[tokio::test]
async fn owner_killed_while_the_api_server_is_down_still_moves_the_ip() {
    let mut harness = start("apidown", &[]).await;
    let ip = harness
        .create_service("web-apidown", service_spec("IPv4", false), json!({}))
        .await;
    harness.set_endpoints("web-apidown", "IPv4", &NODES).await;
    let owner = harness.owner(ip).await;
    harness.wait_members_alive().await;
    harness
        .lab
        .control_plane_mut()
        .expect("control plane")
        .stop_api_server();
    let killed = Instant::now();
    harness.signal_speaker(harness.node_index(&owner), Signal::SIGKILL);
    let moved = harness.wait_moved(ip, &owner, killed, FAILOVER_BOUND).await;
    harness
        .lab
        .control_plane_mut()
        .expect("control plane")
        .start_api_server()
        .await
        .expect("API server back");
    assert_ne!(moved, owner);
}

#[tokio::test]
async fn forged_heartbeat_is_dropped_and_counted() {
    let harness = start("forged", &SLOW_HEARTBEATS).await;
    harness.wait_members_alive().await;
    let target = 1;
    let before = harness.metric(
        target,
        "ferrolb_membership_dropped_total{reason=\"bad_mac\"}",
    );
    // A heartbeat in node 2's name, signed with a key that is not the cluster's.
    let wrong = HeartbeatKey::new(b"not-the-cluster-key-not-the-cluster-key").expect("key");
    let forged = Heartbeat {
        node: harness.node_name(2),
        incarnation: u64::MAX,
        sequence: 1,
        leaving: true,
        timestamp_ms: ferrolb_speaker::membership::driver::wall_clock_ms(),
    }
    .encode(&wrong)
    .expect("encodes");
    let topology = harness.lab.topology().expect("topology");
    let file = topology.dir().join("forged-heartbeat.bin");
    std::fs::write(&file, &forged).expect("write datagram");
    let node_v4 = topology.node(target).expect("node").v4;
    let client = topology.client_ns(Client::L2).expect("client");
    client
        .exec(&[
            "bash",
            "-c",
            &format!(
                "cat {} > /dev/udp/{node_v4}/{}",
                file.display(),
                harness.install.membership_port()
            ),
        ])
        .expect("send datagram");
    let deadline = Instant::now() + WAIT;
    loop {
        let after = harness.metric(
            target,
            "ferrolb_membership_dropped_total{reason=\"bad_mac\"}",
        );
        if after > before {
            break;
        }
        assert!(Instant::now() < deadline, "forged heartbeat not counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The forged leave changed nothing: node 1 still sees both others alive.
    assert_eq!(harness.metric(target, "ferrolb_members_alive"), 2.0);
}

#[tokio::test]
async fn foreign_claim_of_an_owned_ip_is_reported_as_a_conflict() {
    // A speaker wrongly counted dead would take the IP over for a moment, and the owner would then
    // report that speaker's MAC as the latest claim instead of the client's.
    let harness = start("conflict", &SLOW_HEARTBEATS).await;
    let ip = harness
        .create_service("web-conflict", service_spec("IPv4", false), json!({}))
        .await;
    harness.set_endpoints("web-conflict", "IPv4", &NODES).await;
    let owner = harness.owner(ip).await;
    let owner_index = harness.node_index(&owner);
    let topology = harness.lab.topology().expect("topology");
    let client = topology.client_ns(Client::L2).expect("client");
    let interface = topology.segment_interface().expect("segment interface");
    let client_mac = binaries::mac_of(client, &interface).expect("client MAC");
    // The client claims the Service IP with a gratuitous ARP of its own MAC; sending from an
    // address it does not hold needs non-local binding, in the client's namespace only.
    client
        .sysctl("net.ipv4.ip_nonlocal_bind", "1")
        .expect("sysctl");
    let sent = client.exec(&[
        "arping",
        "-U",
        "-c",
        "2",
        "-I",
        &interface,
        "-s",
        &ip.to_string(),
        &ip.to_string(),
    ]);
    client
        .sysctl("net.ipv4.ip_nonlocal_bind", "0")
        .expect("sysctl");
    sent.expect("arping");

    let deadline = Instant::now() + WAIT;
    loop {
        let reported = l2_mode::announcements(&harness.client)
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.node == owner && a.ip == ip.to_string())
            .and_then(|a| a.conflicting_mac);
        if reported.as_deref() == Some(client_mac.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SpeakerStatus of {owner} reports {reported:?}, not the client's {client_mac}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(harness.metric(owner_index, "ferrolb_l2_conflicts_total{family=\"IPv4\"}") >= 1.0);
    let message = harness.condition_naming("web-conflict", &owner).await;
    let deadline = Instant::now() + WAIT;
    let mut message = message;
    while !message.contains(&client_mac) {
        assert!(
            Instant::now() < deadline,
            "condition does not name the conflict: {message}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        message = harness.condition_naming("web-conflict", &owner).await;
    }
}
