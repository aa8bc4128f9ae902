//! Layer-2 mode end to end (SPEC §5), against the lab's real kube-apiserver: the controller assigns
//! an IP, three `ferrolb-speaker` processes (one per node namespace) elect an owner, and the L2
//! client reaches the Service through it (the lab backend answers with its node name).
//!
//! There is no kube-controller-manager in the lab, so the tests write the EndpointSlices
//! themselves. Tests share one lab and hold its lock; each starts its own controller and speakers,
//! waits until every speaker is ready, and stops them all before it gives the lock up (see
//! [`Harness`]'s `Drop`), and clears what earlier tests left. A failed test prints its processes'
//! logs, since the lab's run directory goes with the lab.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_config::crd::{IPAddressPool, L2Advertisement, SpeakerStatus};
use ferrolb_lab::binaries::{self, SpeakerOptions};
use ferrolb_lab::lab::Lab;
use ferrolb_lab::netns::NsProcess;
use ferrolb_lab::topology::{self, Client, Node, plan};
use ferrolb_lab::workload;
use ferrolb_speaker::membership::packet::{Heartbeat, HeartbeatKey};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::MutexGuard;

const NAMESPACE: &str = "default";
/// Every object a test creates carries this label, so the next test can clear leftovers.
const TEST_LABEL: &str = "ferrolb.io/e2e-l2";
const POOL: &str = "l2-e2e";
const ADVERTISEMENT: &str = "l2-e2e";
const SECRET: &str = "ferrolb-membership";
const KEY: &[u8] = b"speaker-l2-e2e-heartbeat-key-0123456789";
const MEMBERSHIP_PORT: u16 = 7946;
const WAIT: Duration = Duration::from_secs(30);
/// SPEC §9 target for the client-measured failover after an owner dies.
const FAILOVER_BOUND: Duration = Duration::from_secs(1);
const NODES: [usize; 3] = [1, 2, 3];
/// Heartbeats every second, a peer down after three missed. For the tests not about failover
/// timing: on a machine so loaded that a speaker goes 300 ms (the default detection) without
/// running, the others would count it dead and the IP would move mid-test.
const SLOW_HEARTBEATS: [&str; 4] = ["--heartbeat-interval", "1s", "--detect-multiplier", "3"];
/// Lines of each process log a failed test prints.
const LOG_TAIL: usize = 80;

/// One test's view of the lab: the client, the controller and the speakers by node index.
struct Harness {
    lab: MutexGuard<'static, Lab>,
    client: kube::Client,
    controller: NsProcess,
    speakers: BTreeMap<usize, NsProcess>,
    /// The log of every process this test started, killed ones included, for a failure.
    logs: Vec<PathBuf>,
    test: &'static str,
    starts: u32,
}

/// Stops this test's speakers and controller while it still holds the lab's lock (`Drop::drop`
/// runs before the fields drop). Left to the fields, the guard in `lab` would drop first: the next
/// test would take the lock and start its own speakers while these still stop, and a new speaker
/// finding its node's admin or membership port still taken exits at once. On a failure, prints the
/// logs.
impl Drop for Harness {
    fn drop(&mut self) {
        for process in self.speakers.values_mut() {
            process.stop();
        }
        self.speakers.clear();
        self.controller.stop();
        if std::thread::panicking() {
            for log in &self.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("== {} (last lines)", log.display());
                for line in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
                    eprintln!("  {line}");
                }
            }
        }
    }
}

impl Harness {
    /// Clears leftovers, writes the membership Secret and starts the controller and a speaker on
    /// every node with `speaker_args`; returns once every speaker is ready.
    async fn start(test: &'static str, speaker_args: &[&str]) -> Harness {
        let mut lab = common::shared_lab().await;
        // A test that failed while the API server was stopped left it so.
        lab.control_plane_mut()
            .expect("control plane")
            .start_api_server()
            .await
            .expect("API server");
        let client = lab.client().expect("client");
        clear(&client).await;
        // Earlier tests used the same IPs: the client must resolve them afresh.
        lab.topology()
            .expect("topology")
            .client_ns(Client::L2)
            .expect("client")
            .ip(&["neigh", "flush", "all"])
            .expect("flush neighbours");
        binaries::write_membership_secret(&client, NAMESPACE, SECRET, KEY)
            .await
            .expect("membership Secret");
        let controller = binaries::start_controller(
            &mut lab,
            &format!("l2-{test}"),
            NAMESPACE,
            &format!("ferrolb-l2-{test}"),
        )
        .expect("controller starts");
        let mut harness = Harness {
            lab,
            client,
            logs: vec![controller.log().to_owned()],
            controller,
            speakers: BTreeMap::new(),
            test,
            starts: 0,
        };
        for index in NODES {
            harness.start_speaker(index, speaker_args);
        }
        harness.wait_speakers_ready().await;
        // Until a speaker is heard and has published its interfaces the others elect without it,
        // and an owner seen then moves once it is known: the tests start from a settled cluster.
        harness.wait_members_alive().await;
        harness.wait_interfaces_published().await;
        harness.create_pool_and_advertisement().await;
        harness
    }

    /// Waits until every running speaker's SpeakerStatus lists its interfaces.
    async fn wait_interfaces_published(&self) {
        let api: Api<SpeakerStatus> = Api::all(self.client.clone());
        let deadline = Instant::now() + WAIT;
        for index in self.speakers.keys() {
            let node = self.node_name(*index);
            while !api
                .get(&node)
                .await
                .is_ok_and(|status| status.status.is_some_and(|s| !s.interfaces.is_empty()))
            {
                assert!(
                    Instant::now() < deadline,
                    "the SpeakerStatus of {node} lists no interfaces within {WAIT:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until every speaker answers `/readyz` on its admin port; fails at once when one
    /// exited (its log is printed).
    async fn wait_speakers_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        for (index, process) in &mut self.speakers {
            let node = self
                .lab
                .topology()
                .expect("topology")
                .node(*index)
                .expect("node");
            loop {
                assert!(process.is_running(), "the speaker of {} exited", node.name);
                if binaries::speaker_ready(&self.lab, *index).is_ok() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the speaker of {} not ready within {WAIT:?}",
                    node.name
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    fn start_speaker(&mut self, index: usize, args: &[&str]) {
        self.starts += 1;
        let options = SpeakerOptions {
            namespace: NAMESPACE.into(),
            membership_secret: SECRET.into(),
            membership_port: MEMBERSHIP_PORT,
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..SpeakerOptions::default()
        };
        let label = format!("{}-{}", self.test, self.starts);
        let process = binaries::start_speaker(&mut self.lab, index, &label, &options)
            .expect("speaker starts");
        self.logs.push(process.log().to_owned());
        self.speakers.insert(index, process);
    }

    fn node_name(&self, index: usize) -> String {
        self.lab
            .topology()
            .expect("topology")
            .node(index)
            .expect("node")
            .name
            .clone()
    }

    fn node_index(&self, name: &str) -> usize {
        NODES
            .into_iter()
            .find(|i| self.node_name(*i) == name)
            .unwrap_or_else(|| panic!("{name} is no lab node"))
    }

    async fn create_pool_and_advertisement(&self) {
        let params = apply_params();
        let pool = json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": POOL, "labels": {TEST_LABEL: "true"}},
            "spec": {"addresses": [plan::L2_POOL_V4, plan::L2_POOL_V6]},
        });
        Api::<IPAddressPool>::all(self.client.clone())
            .patch(POOL, &params, &Patch::Apply(&pool))
            .await
            .expect("pool");
        let advertisement = json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": ADVERTISEMENT, "labels": {TEST_LABEL: "true"}},
            "spec": {"ipAddressPools": [POOL]},
        });
        Api::<L2Advertisement>::all(self.client.clone())
            .patch(ADVERTISEMENT, &params, &Patch::Apply(&advertisement))
            .await
            .expect("advertisement");
    }

    /// Creates a LoadBalancer Service of one family and waits for its IP.
    async fn create_service(&self, name: &str, family: &str, local: bool) -> IpAddr {
        let service = workload::load_balancer(
            NAMESPACE,
            name,
            json!({TEST_LABEL: "true"}),
            json!({
                "ipFamilyPolicy": "SingleStack",
                "ipFamilies": [family],
                "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
            }),
        );
        Api::<Service>::namespaced(self.client.clone(), NAMESPACE)
            .patch(name, &apply_params(), &Patch::Apply(&service))
            .await
            .expect("Service");
        workload::wait_ingress_ip(&self.client, NAMESPACE, name, WAIT)
            .await
            .unwrap_or_else(|| panic!("{name} got no IP within {WAIT:?}"))
    }

    /// Writes the Service's one EndpointSlice: a ready endpoint on each node of `nodes`.
    async fn set_endpoints(&self, service: &str, nodes: &[usize]) {
        let topology = self.lab.topology().expect("topology");
        let nodes: Vec<&Node> = nodes
            .iter()
            .map(|index| topology.node(*index).expect("node"))
            .collect();
        let slice = workload::endpoint_slice(
            NAMESPACE,
            service,
            "e2e",
            "IPv4",
            &nodes,
            json!({TEST_LABEL: "true"}),
        );
        Api::<EndpointSlice>::namespaced(self.client.clone(), NAMESPACE)
            .patch(
                &format!("{service}-e2e"),
                &apply_params(),
                &Patch::Apply(&slice),
            )
            .await
            .expect("EndpointSlice");
    }

    /// One short request from the L2 client: the answering node's name, or `None`.
    fn answering_node(&self, ip: IpAddr, timeout: &str) -> Option<String> {
        let topology = self.lab.topology().expect("topology");
        let client = topology.client_ns(Client::L2).expect("client");
        topology::curl_within(client, &workload::url(ip), timeout)
            .ok()
            .map(|body| body.trim().to_owned())
            .filter(|body| !body.is_empty())
    }

    /// Waits until the client reaches `ip`, and returns the answering node.
    async fn wait_reachable(&self, ip: IpAddr) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(node) = self.answering_node(ip, "1") {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "{ip} unreachable within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the node answering `ip` is the one whose SpeakerStatus announces it, and
    /// returns it.
    async fn wait_owner(&self, ip: IpAddr) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let claimed = self.status_owner(ip).await;
            let answering = self.wait_reachable(ip).await;
            if claimed == answering {
                return claimed;
            }
            assert!(
                Instant::now() < deadline,
                "{answering} answers {ip}, but {claimed} announces it"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until another node than `old` answers; returns it and the time since `since`.
    async fn wait_moved(&self, ip: IpAddr, old: &str, since: Instant, within: Duration) -> String {
        loop {
            if let Some(node) = self.answering_node(ip, "0.3")
                && node != old
            {
                println!("{ip} moved from {old} to {node} in {:?}", since.elapsed());
                return node;
            }
            assert!(
                since.elapsed() < within,
                "{ip} still answered by {old} (or not at all) {within:?} after the change"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The node whose SpeakerStatus lists `ip` as announced, once exactly one does.
    async fn status_owner(&self, ip: IpAddr) -> String {
        let api: Api<SpeakerStatus> = Api::all(self.client.clone());
        let deadline = Instant::now() + WAIT;
        loop {
            let owners: Vec<String> =
                api.list(&ListParams::default())
                    .await
                    .map(|list| list.items)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|status| {
                        self.speakers
                            .keys()
                            .any(|i| self.node_name(*i) == status.spec.node_name)
                    })
                    .filter(|status| {
                        status.status.as_ref().is_some_and(|s| {
                            s.l2_announcements.iter().any(|a| a.ip == ip.to_string())
                        })
                    })
                    .map(|status| status.spec.node_name)
                    .collect();
            if let [owner] = &owners[..] {
                return owner.clone();
            }
            assert!(
                Instant::now() < deadline,
                "SpeakerStatus owners of {ip}: {owners:?} after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The message of the Service's `ferrolb.io/L2Announced` condition, once it names `node`.
    async fn wait_condition_names(&self, service: &str, node: &str) -> String {
        let api: Api<Service> = Api::namespaced(self.client.clone(), NAMESPACE);
        let deadline = Instant::now() + WAIT;
        loop {
            let message = api
                .get(service)
                .await
                .ok()
                .and_then(|s| s.status?.conditions)
                .and_then(|conditions| {
                    conditions
                        .into_iter()
                        .find(|c| c.type_ == "ferrolb.io/L2Announced" && c.status == "True")
                })
                .map(|c| c.message)
                .unwrap_or_default();
            if message.contains(&format!("node {node} ")) {
                return message;
            }
            assert!(
                Instant::now() < deadline,
                "L2Announced of {service} is {message:?}, not naming {node}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for a speaker Event with `reason` on `service` whose note starts with `note_start`.
    async fn wait_event(&self, service: &str, reason: &str, note_start: &str) {
        let api: Api<Event> = Api::namespaced(self.client.clone(), NAMESPACE);
        let names_node = |event: &Event| {
            event.reporting_controller.as_deref() == Some("ferrolb-speaker")
                && event.reason.as_deref() == Some(reason)
                && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(service)
                && event
                    .note
                    .as_deref()
                    .is_some_and(|note| note.starts_with(note_start))
        };
        let deadline = Instant::now() + WAIT;
        while !api
            .list(&ListParams::default())
            .await
            .is_ok_and(|list| list.items.iter().any(names_node))
        {
            assert!(
                Instant::now() < deadline,
                "no {reason} Event {note_start:?}… for {service}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The client's neighbour entry for `ip`, as a MAC.
    fn client_neighbour_mac(&self, ip: IpAddr) -> Option<String> {
        let topology = self.lab.topology().expect("topology");
        let client = topology.client_ns(Client::L2).expect("client");
        topology::neighbours(client)
            .expect("neighbours")
            .into_iter()
            .find(|n| n.dst == ip)
            .and_then(|n| n.lladdr)
    }

    fn segment_mac(&self, index: usize) -> String {
        let node = self
            .lab
            .topology()
            .expect("topology")
            .node(index)
            .expect("node");
        binaries::mac_of(&node.ns, &node.segment_if).expect("MAC")
    }

    /// Kills node `index`'s speaker with `signal` and forgets the process.
    fn signal_speaker(&mut self, index: usize, signal: nix::sys::signal::Signal) {
        let process = self.speakers.remove(&index).expect("speaker running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(process.pid()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal");
        // Dropping reaps it (SIGTERM to a process already gone is harmless).
        drop(process);
    }

    /// Waits until every running speaker sees every other running one alive.
    async fn wait_members_alive(&self) {
        let others = self.speakers.len() as f64 - 1.0;
        let deadline = Instant::now() + WAIT;
        while self
            .speakers
            .keys()
            .any(|i| self.metric(*i, "ferrolb_members_alive") < others)
        {
            assert!(Instant::now() < deadline, "members never all alive");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn metric(&self, index: usize, series: &str) -> f64 {
        let text = binaries::speaker_metrics(&self.lab, index).expect("metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// Server-side apply as the tests' own field manager.
fn apply_params() -> PatchParams {
    PatchParams::apply("ferrolb-e2e").force()
}

/// Removes what earlier tests left (no speaker runs now): Services, EndpointSlices, the pool, the
/// advertisement, and the SpeakerStatuses, which a killed speaker leaves claiming its IPs until
/// its node's next speaker publishes.
async fn clear(client: &kube::Client) {
    let labelled = ListParams::default().labels(TEST_LABEL);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    if let Ok(list) = services.list(&labelled).await {
        for service in list.items {
            if let Some(name) = service.metadata.name {
                let _ = services.delete(&name, &DeleteParams::default()).await;
            }
        }
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let _ = slices
        .delete_collection(&DeleteParams::default(), &labelled)
        .await;
    let _ = Api::<L2Advertisement>::all(client.clone())
        .delete(ADVERTISEMENT, &DeleteParams::default())
        .await;
    let _ = Api::<IPAddressPool>::all(client.clone())
        .delete(POOL, &DeleteParams::default())
        .await;
    let _ = Api::<SpeakerStatus>::all(client.clone())
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
}

/// Reach, owner agreement (wire, SpeakerStatus, condition) and SIGKILL failover for one family.
async fn reach_and_sigkill_failover(test: &'static str, family: &str) {
    let mut harness = Harness::start(test, &[]).await;
    let service = format!("web-{}", family.to_lowercase());
    let ip = harness.create_service(&service, family, false).await;
    harness.set_endpoints(&service, &NODES).await;

    let owner = harness.wait_owner(ip).await;
    let message = harness.wait_condition_names(&service, &owner).await;
    assert!(message.contains(&ip.to_string()), "{message}");
    let owner_index = harness.node_index(&owner);
    assert_eq!(
        harness.client_neighbour_mac(ip),
        Some(harness.segment_mac(owner_index)),
        "the client resolved {ip} to the owner's MAC"
    );

    harness.wait_members_alive().await;
    let killed = Instant::now();
    harness.signal_speaker(owner_index, nix::sys::signal::Signal::SIGKILL);
    let next = harness.wait_moved(ip, &owner, killed, FAILOVER_BOUND).await;
    let next_index = harness.node_index(&next);
    assert_eq!(
        harness.client_neighbour_mac(ip),
        Some(harness.segment_mac(next_index))
    );
    assert_eq!(harness.status_owner(ip).await, next);
    harness.wait_condition_names(&service, &next).await;
    harness
        .wait_event(&service, "Announcing", &format!("node {next} "))
        .await;
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
    let mut harness = Harness::start("sigterm", &SLOW_HEARTBEATS).await;
    let ip = harness.create_service("web-term", "IPv4", false).await;
    harness.set_endpoints("web-term", &NODES).await;
    let owner = harness.wait_owner(ip).await;
    // Every speaker must see the others alive before the test means anything.
    harness.wait_members_alive().await;
    let stopped = Instant::now();
    harness.signal_speaker(
        harness.node_index(&owner),
        nix::sys::signal::Signal::SIGTERM,
    );
    harness
        .wait_moved(ip, &owner, stopped, Duration::from_millis(1500))
        .await;
}

#[tokio::test]
async fn local_traffic_policy_follows_the_endpoints() {
    let harness = Harness::start("local", &[]).await;
    let ip = harness.create_service("web-local", "IPv4", true).await;
    harness.set_endpoints("web-local", &[2]).await;
    let first = harness.wait_owner(ip).await;
    assert_eq!(first, harness.node_name(2), "only node 2 has an endpoint");
    harness.set_endpoints("web-local", &[3]).await;
    let moved = harness
        .wait_moved(ip, &first, Instant::now(), Duration::from_secs(10))
        .await;
    assert_eq!(moved, harness.node_name(3));
}

#[tokio::test]
async fn owner_killed_while_the_api_server_is_down_still_moves_the_ip() {
    let mut harness = Harness::start("apidown", &[]).await;
    let ip = harness.create_service("web-apidown", "IPv4", false).await;
    harness.set_endpoints("web-apidown", &NODES).await;
    let owner = harness.wait_owner(ip).await;
    harness.wait_members_alive().await;
    harness
        .lab
        .control_plane_mut()
        .expect("control plane")
        .stop_api_server();
    let killed = Instant::now();
    harness.signal_speaker(
        harness.node_index(&owner),
        nix::sys::signal::Signal::SIGKILL,
    );
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
    let harness = Harness::start("forged", &SLOW_HEARTBEATS).await;
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
                "cat {} > /dev/udp/{node_v4}/{MEMBERSHIP_PORT}",
                file.display()
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
    let harness = Harness::start("conflict", &SLOW_HEARTBEATS).await;
    let ip = harness.create_service("web-conflict", "IPv4", false).await;
    harness.set_endpoints("web-conflict", &NODES).await;
    let owner = harness.wait_owner(ip).await;
    let owner_index = harness.node_index(&owner);
    let topology = harness.lab.topology().expect("topology");
    let client = topology.client_ns(Client::L2).expect("client");
    let interface = client_segment_interface(client);
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

    let api: Api<SpeakerStatus> = Api::all(harness.client.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        let reported = api.get(&owner).await.ok().and_then(|status| {
            status
                .status?
                .l2_announcements
                .into_iter()
                .find(|a| a.ip == ip.to_string())?
                .conflicting_mac
        });
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
    let message = harness.wait_condition_names("web-conflict", &owner).await;
    let deadline = Instant::now() + WAIT;
    let mut message = message;
    while !message.contains(&client_mac) {
        assert!(
            Instant::now() < deadline,
            "condition does not name the conflict: {message}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        message = harness.wait_condition_names("web-conflict", &owner).await;
    }
}

/// The client's interface on the segment: the one holding the L2 client address.
fn client_segment_interface(client: &ferrolb_lab::netns::NetNs) -> String {
    let out = client.ip(&["-j", "-4", "addr", "show"]).expect("ip addr");
    let links: Vec<Value> = serde_json::from_str(&out).expect("ip -j output");
    let wanted = plan::CLIENT_L2_V4.to_string();
    links
        .iter()
        .find(|link| {
            link["addr_info"]
                .as_array()
                .is_some_and(|infos| infos.iter().any(|i| i["local"] == wanted.as_str()))
        })
        .and_then(|link| link["ifname"].as_str())
        .expect("client segment interface")
        .to_owned()
}
