//! BGP mode end to end (SPEC §6, issue 6's acceptance) with the real binaries against the lab's
//! real kube-apiserver: the controller assigns an IP, `ferrolb-speaker` processes announce it to FRR
//! and BIRD, the routed client reaches the Service through the routers, and `SpeakerStatus` shows
//! the sessions. The peer set's protocol details (communities per router, hold-time resets, BFD,
//! a missing password, multihop, GoBGP) are proven in `bgp_peer_set`; these tests prove what goes
//! through the binary: Kubernetes objects → speaker → routers' RIBs, TCP-MD5 passwords read from
//! Secrets (FRR's sessions with the nodes carry a password in this lab), aggregation, IPv6 Services
//! over IPv6 sessions, the routed client through each router, graceful restart of a speaker
//! process, and BFD sessions with FRR and BIRD reported with their counters in `SpeakerStatus` and
//! the speaker's metrics.
//!
//! There is no kube-controller-manager in the lab, so the tests write the EndpointSlices
//! themselves.

mod common;
mod rib_wait;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_config::crd::speaker_status::{BfdSessionStatus, BfdState, BgpState};
use ferrolb_config::crd::{BFDProfile, BGPAdvertisement, BGPPeer, IPAddressPool, SpeakerStatus};
use ferrolb_lab::binaries::{self, SpeakerOptions};
use ferrolb_lab::cluster::{self, Manifest, Persist};
use ferrolb_lab::lab::Lab;
use ferrolb_lab::netns::{self, NsProcess};
use ferrolb_lab::routers::RouterKind;
use ferrolb_lab::topology::{Client, Node, plan};
use ferrolb_lab::workload;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};

use ferrolb_config::crd::speaker_status::BgpSessionStatus;
use ferrolb_lab::lab::LabOptions;
use ferrolb_lab::topology::Topology;

const NAMESPACE: &str = "default";
/// Every object a test here writes carries it; [`clear`] removes them by it.
const TEST_LABEL: &str = "ferrolb.io/e2e-bgp";
const SECRET: &str = "ferrolb-membership";
const KEY: &[u8] = b"speaker-bgp-e2e-heartbeat-key-0123456789";
/// FRR's TCP-MD5 password on its sessions with the nodes in this lab (RFC 2385).
const FRR_PASSWORD: &str = "e2e-md5-secret";
/// The Secret holding [`FRR_PASSWORD`] under key `password`.
const FRR_SECRET: &str = "e2e-frr-md5";
const WAIT: Duration = Duration::from_secs(30);
const ROUTERS: [RouterKind; 2] = [RouterKind::Frr, RouterKind::Bird];
const NODES: [usize; 3] = [1, 2, 3];

/// The default lab, with a TCP-MD5 password on FRR's sessions with the nodes, and BFD on FRR's
/// and BIRD's (a BGP session comes up whether or not the node runs BFD, so only the tests whose
/// BGPPeers have a `bfdProfile` use it).
fn lab_options() -> LabOptions {
    let mut options = common::lab_options();
    options.topology.frr.password = Some(FRR_PASSWORD.into());
    options.topology.frr.bfd = true;
    options.topology.bird.bfd = true;
    options
}

/// What one test deploys: a pool and a BGPAdvertisement named `name`, one BGPPeer per router of
/// [`ROUTERS`] in the pool's family (FRR's with its password read from `frr_secret`), and a Service
/// `name`.
struct Scenario {
    name: &'static str,
    addresses: &'static str,
    v6: bool,
    /// Extra BGPAdvertisement spec entries.
    advertisement: Value,
    /// Extra spec entries of every BGPPeer.
    peer: Value,
    frr_secret: &'static str,
}

impl Scenario {
    fn family(&self) -> &'static str {
        if self.v6 { "IPv6" } else { "IPv4" }
    }

    fn peer_name(&self, kind: RouterKind) -> String {
        format!("{}-{kind}", self.name)
    }

    fn objects(&self, lab: &Lab) -> Vec<Value> {
        let topology = lab.topology().expect("topology");
        let labels = json!({TEST_LABEL: "true"});
        let mut advertisement = json!({"ipAddressPools": [self.name]});
        extend(&mut advertisement, &self.advertisement);
        let mut objects = vec![
            json!({
                "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
                "metadata": {"name": self.name, "labels": labels},
                "spec": {"addresses": [self.addresses]},
            }),
            json!({
                "apiVersion": "ferrolb.io/v1beta1", "kind": "BGPAdvertisement",
                "metadata": {"name": self.name, "labels": labels},
                "spec": advertisement,
            }),
        ];
        for kind in ROUTERS {
            let asn = topology.router(kind).expect("router").config().options.asn;
            let (v4, v6) = plan::router_addresses(kind);
            let address: IpAddr = if self.v6 { v6.into() } else { v4.into() };
            let mut spec = json!({
                "myASN": plan::NODE_ASN,
                "peerASN": asn,
                "peerAddress": address.to_string(),
                "holdTime": "9s",
                "connectTime": "1s",
            });
            if kind == RouterKind::Frr {
                spec["passwordSecret"] = json!({"namespace": NAMESPACE, "name": self.frr_secret});
            }
            extend(&mut spec, &self.peer);
            objects.push(json!({
                "apiVersion": "ferrolb.io/v1beta1", "kind": "BGPPeer",
                "metadata": {"name": self.peer_name(kind), "labels": labels},
                "spec": spec,
            }));
        }
        objects
    }

    /// Clears what earlier tests left, writes the Secrets and this scenario's objects.
    async fn deploy(&self, lab: &Lab, client: &kube::Client) {
        clear(client).await;
        binaries::write_membership_secret(client, NAMESPACE, SECRET, KEY)
            .await
            .expect("membership Secret");
        write_password(client, FRR_SECRET, FRR_PASSWORD).await;
        for object in self.objects(lab) {
            apply(client, &object).await;
        }
    }

    async fn apply_service(&self, client: &kube::Client, policy: &str) {
        let service = workload::load_balancer(
            NAMESPACE,
            self.name,
            json!({TEST_LABEL: "true"}),
            json!({
                "ipFamilyPolicy": "SingleStack",
                "ipFamilies": [self.family()],
                "externalTrafficPolicy": policy,
            }),
        );
        apply(client, &service).await;
    }

    /// The Service's one EndpointSlice: a ready endpoint on each node of `nodes`.
    async fn set_endpoints(&self, lab: &Lab, client: &kube::Client, nodes: &[usize]) {
        let topology = lab.topology().expect("topology");
        let nodes: Vec<&Node> = nodes
            .iter()
            .map(|i| topology.node(*i).expect("node"))
            .collect();
        let slice = workload::endpoint_slice(
            NAMESPACE,
            self.name,
            "e2e",
            self.family(),
            &nodes,
            json!({TEST_LABEL: "true"}),
        );
        apply(client, &slice).await;
    }

    /// The Service (policy `policy`, endpoints on `endpoints`) and the IP it gets.
    async fn service(
        &self,
        lab: &Lab,
        client: &kube::Client,
        policy: &str,
        endpoints: &[usize],
    ) -> IpAddr {
        self.apply_service(client, policy).await;
        self.set_endpoints(lab, client, endpoints).await;
        workload::wait_ingress_ip(client, NAMESPACE, self.name, WAIT)
            .await
            .expect("the Service gets an IP")
    }
}

/// Adds `extra`'s entries to the object `base`.
fn extend(base: &mut Value, extra: &Value) {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
}

/// Removes every object a test here wrote (by [`TEST_LABEL`]).
async fn clear(client: &kube::Client) {
    let labelled = ListParams::default().labels(TEST_LABEL);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    for service in services
        .list(&labelled)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if let Some(name) = service.metadata.name {
            let _ = services.delete(&name, &DeleteParams::default()).await;
        }
    }
    let all = DeleteParams::default();
    let _ = Api::<EndpointSlice>::namespaced(client.clone(), NAMESPACE)
        .delete_collection(&all, &labelled)
        .await;
    let _ = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .delete_collection(&all, &labelled)
        .await;
    let _ = Api::<BGPAdvertisement>::all(client.clone())
        .delete_collection(&all, &labelled)
        .await;
    let _ = Api::<BGPPeer>::all(client.clone())
        .delete_collection(&all, &labelled)
        .await;
    let _ = Api::<BFDProfile>::all(client.clone())
        .delete_collection(&all, &labelled)
        .await;
    let _ = Api::<IPAddressPool>::all(client.clone())
        .delete_collection(&all, &labelled)
        .await;
}

/// A password Secret (key `password`) as a BGPPeer's `passwordSecret` names it.
async fn write_password(client: &kube::Client, name: &str, password: &str) {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {TEST_LABEL: "true"}},
        "stringData": {"password": password},
    });
    apply(client, &secret).await;
}

async fn apply(client: &kube::Client, object: &Value) {
    let manifest = Manifest {
        source: PathBuf::from("speaker_bgp.rs"),
        object: object.clone(),
    };
    cluster::apply_manifest(client, &manifest, Persist::Store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Node `i`'s address in `prefix`'s family: its next hop at the routers.
fn node_address(prefix: IpNet, i: usize) -> IpAddr {
    match prefix {
        IpNet::V4(_) => plan::node_v4(i).into(),
        IpNet::V6(_) => plan::node_v6(i).into(),
    }
}

/// Waits until `kind`'s paths for `prefix` have exactly these global next hops (the announcing
/// nodes; FRR also lists IPv6 link-local next hops, which are left out).
fn wait_next_hops(lab: &Lab, kind: RouterKind, prefix: IpNet, nodes: &[usize]) {
    let topology = lab.topology().expect("topology");
    let wanted: BTreeSet<IpAddr> = nodes.iter().map(|i| node_address(prefix, *i)).collect();
    let mut last = BTreeSet::new();
    let found = netns::wait_for(
        &format!("{prefix} at {kind} via {wanted:?}"),
        rib_wait::RIB_CHANGE,
        || {
            let routes = rib_wait::rib(topology, kind, prefix)?;
            last = routes
                .iter()
                .flat_map(|r| r.next_hops.clone())
                .filter(|hop| !is_link_local(*hop))
                .collect();
            (last == wanted).then_some(())
        },
    );
    if let Err(error) = found {
        panic!("{error}; last seen next hops {last:?}");
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

/// The routed client's answer from the Service at `ip` (a node name), within [`WAIT`].
fn wait_reached(topology: &Topology, ip: IpAddr, via: &str) -> String {
    let answer = netns::wait_for(
        &format!("the routed client reaches {ip} via {via}"),
        WAIT,
        || {
            topology
                .curl(Client::Routed, &workload::url(ip))
                .ok()
                .filter(|body| !body.trim().is_empty())
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    answer.trim().to_owned()
}

/// The routed client reaches `ip` through FRR and through BIRD (its default route pointed at each),
/// answered by one of `nodes`; the client is left routed via FRR, the lab's default.
fn assert_reached_through_each_router(lab: &Lab, ip: IpAddr, nodes: &[usize]) {
    let topology = lab.topology().expect("topology");
    let names: Vec<String> = nodes
        .iter()
        .map(|i| topology.node(*i).expect("node").name.clone())
        .collect();
    for kind in [RouterKind::Bird, RouterKind::Frr] {
        topology.route_client_via(kind).expect("client route");
        let answer = wait_reached(topology, ip, &kind.to_string());
        assert!(
            names.contains(&answer),
            "{answer} via {kind}, wanted one of {names:?}"
        );
    }
}

/// The controller and the speakers of one test; the speakers' logs are printed if it fails.
struct Running {
    _controller: Option<NsProcess>,
    speakers: Vec<NsProcess>,
}

impl Running {
    /// The controller (when `controller`) and a speaker on each node of `nodes`.
    fn start(lab: &mut Lab, label: &str, controller: bool, nodes: &[usize]) -> Running {
        let controller = controller.then(|| {
            binaries::start_controller(lab, label, NAMESPACE, &format!("ferrolb-{label}"))
                .expect("controller")
        });
        let speakers = nodes
            .iter()
            .map(|i| binaries::start_speaker(lab, *i, label, &speaker_options()).expect("speaker"))
            .collect();
        Running {
            _controller: controller,
            speakers,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            speaker_logs(&self.speakers);
        }
    }
}

fn speaker_options() -> SpeakerOptions {
    SpeakerOptions {
        namespace: NAMESPACE.into(),
        membership_secret: SECRET.into(),
        ..SpeakerOptions::default()
    }
}

fn speaker_logs(speakers: &[NsProcess]) {
    for process in speakers {
        let log = std::fs::read_to_string(process.log()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("speaker log {} (last lines):", process.log().display());
        for line in tail.into_iter().rev() {
            eprintln!("  {line}");
        }
    }
}

/// Node `node`'s SpeakerStatus entry for `peer`.
async fn session(client: &kube::Client, node: &str, peer: &str) -> Option<BgpSessionStatus> {
    let statuses: Api<SpeakerStatus> = Api::all(client.clone());
    let status = statuses.get(node).await.ok()?.status?;
    status.bgp_sessions.into_iter().find(|s| s.peer == peer)
}

/// Node `node`'s SpeakerStatus BFD entry for `peer` once `done` holds for it, within `within`.
async fn wait_bfd_session(
    client: &kube::Client,
    node: &str,
    peer: &str,
    within: Duration,
    done: impl Fn(&BfdSessionStatus) -> bool,
) -> BfdSessionStatus {
    let statuses: Api<SpeakerStatus> = Api::all(client.clone());
    let deadline = Instant::now() + within;
    loop {
        let status = statuses.get(node).await.ok().and_then(|s| s.status);
        let session = status
            .as_ref()
            .and_then(|s| s.bfd_sessions.iter().find(|b| b.peer == peer));
        if let Some(session) = session.filter(|s| done(s)) {
            return session.clone();
        }
        assert!(
            Instant::now() < deadline,
            "SpeakerStatus {node}: BFD session {peer} not as expected within {within:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The value of the series `name{peer="peer"}` in a metrics exposition.
fn peer_series(text: &str, name: &str, peer: &str) -> Option<f64> {
    let prefix = format!("{name}{{peer=\"{peer}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

/// Pool, advertisement with communities and LOCAL_PREF, one IPv4 BGPPeer per router.
const WEB: Scenario = Scenario {
    name: "web-bgp",
    addresses: "203.0.113.200/29",
    v6: false,
    advertisement: Value::Null,
    peer: Value::Null,
    frr_secret: FRR_SECRET,
};

#[tokio::test]
async fn service_routes_reach_the_routers_from_its_endpoint_nodes_without_session_resets() {
    let mut lab = common::shared_lab_with(lab_options).await;
    let client = lab.client().expect("client");
    let scenario = Scenario {
        advertisement: json!({
            "localPref": 200,
            "communities": ["64500:100", "large:64500:1:2"],
        }),
        ..WEB
    };
    scenario.deploy(&lab, &client).await;
    let running = Running::start(&mut lab, "bgp-e2e", true, &NODES);

    // Cluster policy: every node announces, each router sees all three as next hops (FRR's
    // sessions are up, so the TCP-MD5 password read from the Secret works).
    let ip = scenario.service(&lab, &client, "Cluster", &[1]).await;
    let prefix = IpNet::new(ip, 32).expect("host prefix");
    for kind in ROUTERS {
        wait_next_hops(&lab, kind, prefix, &NODES);
    }
    let topology = lab.topology().expect("topology");
    let route = rib_wait::wait_route(topology, RouterKind::Frr, prefix);
    assert!(route.communities.contains(&(64500, 100)), "{route:?}");
    assert!(
        route.large_communities.contains(&(64500, 1, 2)),
        "{route:?}"
    );

    // The routed client gets through the routers to a node's backend.
    let answer = wait_reached(topology, ip, "its default router");
    let names: Vec<String> = NODES
        .iter()
        .map(|i| topology.node(*i).expect("node").name.clone())
        .collect();
    assert!(names.contains(&answer), "{answer}");

    // SpeakerStatus shows both sessions up with the prefix sent.
    let statuses: Api<SpeakerStatus> = Api::all(client.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        let status = statuses.get(&names[0]).await.ok().and_then(|s| s.status);
        let up = status.as_ref().map_or(0, |status| {
            status
                .bgp_sessions
                .iter()
                .filter(|s| s.state == BgpState::Established && s.prefixes_sent >= 1)
                .count()
        });
        let summary_up = status.as_ref().map_or(0, |s| s.summary.bgp_sessions_up);
        if up == ROUTERS.len() && summary_up == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SpeakerStatus of {} does not show both sessions up: {status:?}",
            names[0]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Owned by its Node, so the garbage collector removes it with the Node.
    let object = statuses.get(&names[0]).await.expect("SpeakerStatus");
    let owners = object.metadata.owner_references.unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|o| o.kind == "Node" && o.name == names[0]),
        "{owners:?}"
    );

    // Local policy: only the endpoint's node announces; the sessions are not reset.
    let established: Vec<u64> = NODES
        .iter()
        .map(|i| rib_wait::frr_connections_established(topology, plan::node_v4(*i).into()))
        .collect();
    scenario.apply_service(&client, "Local").await;
    scenario.set_endpoints(&lab, &client, &[2]).await;
    for kind in ROUTERS {
        wait_next_hops(&lab, kind, prefix, &[2]);
    }
    let after: Vec<u64> = NODES
        .iter()
        .map(|i| rib_wait::frr_connections_established(topology, plan::node_v4(*i).into()))
        .collect();
    assert_eq!(established, after, "a Service change reset a session");

    drop(running);
    clear(&client).await;
}

#[tokio::test]
async fn wrong_md5_password_keeps_the_session_down_with_a_clear_status_until_it_is_fixed() {
    let mut lab = common::shared_lab_with(lab_options).await;
    let client = lab.client().expect("client");
    let scenario = Scenario {
        name: "md5-bgp",
        frr_secret: "e2e-frr-wrong",
        ..WEB
    };
    scenario.deploy(&lab, &client).await;
    write_password(&client, "e2e-frr-wrong", "not-the-password").await;
    let running = Running::start(&mut lab, "bgp-md5", false, &[1]);
    let topology = lab.topology().expect("topology");
    let node = topology.node(1).expect("node").name.clone();
    let node_v4: IpAddr = plan::node_v4(1).into();
    let frr_peer = scenario.peer_name(RouterKind::Frr);

    // BIRD (no password) comes up: the speaker runs and its sessions work.
    let bird_up = || {
        let sessions = topology.router(RouterKind::Bird).ok()?.sessions().ok()?;
        sessions
            .iter()
            .any(|s| s.peer == node_v4 && s.established)
            .then_some(())
    };
    netns::wait_for("BIRD's session with node 1 up", WAIT, bird_up)
        .unwrap_or_else(|e| panic!("{e}"));

    // FRR drops the wrongly signed SYNs: the status says so, and FRR never sees the session up.
    let deadline = Instant::now() + WAIT;
    let status = loop {
        let status = session(&client, &node, &frr_peer).await;
        if let Some(status) = &status
            && status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("TCP-MD5"))
        {
            break status.clone();
        }
        assert!(Instant::now() < deadline, "no TCP-MD5 error in {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(status.state, BgpState::Established, "{status:?}");
    for _ in 0..10 {
        let sessions = topology
            .router(RouterKind::Frr)
            .expect("frr")
            .sessions()
            .expect("FRR sessions");
        assert!(
            !sessions.iter().any(|s| s.peer == node_v4 && s.established),
            "FRR established a session with a wrong password: {sessions:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Pointing the peer at the right Secret brings the session up (a password is fixed at OPEN, so
    // the speaker starts the session again).
    let fixed = Scenario {
        frr_secret: FRR_SECRET,
        ..scenario
    };
    for object in fixed.objects(&lab) {
        apply(&client, &object).await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let status = session(&client, &node, &frr_peer).await;
        if status
            .as_ref()
            .is_some_and(|s| s.state == BgpState::Established)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "FRR session not up with the right password: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let frr_up = || {
        let sessions = topology.router(RouterKind::Frr).ok()?.sessions().ok()?;
        sessions
            .iter()
            .any(|s| s.peer == node_v4 && s.established)
            .then_some(())
    };
    netns::wait_for("FRR's session with node 1 up", WAIT, frr_up).unwrap_or_else(|e| panic!("{e}"));

    drop(running);
    clear(&client).await;
}

#[tokio::test]
async fn aggregation_announces_the_aggregate_instead_of_the_service_ip() {
    let mut lab = common::shared_lab_with(lab_options).await;
    let client = lab.client().expect("client");
    let scenario = Scenario {
        name: "agg-bgp",
        // The aggregate may not reach outside the pool: a /28 pool, announced as /29s.
        addresses: "203.0.113.208/28",
        advertisement: json!({"aggregationLength": 29}),
        ..WEB
    };
    scenario.deploy(&lab, &client).await;
    let running = Running::start(&mut lab, "bgp-agg", true, &NODES);
    let ip = scenario.service(&lab, &client, "Cluster", &[1]).await;
    let host = IpNet::new(ip, 32).expect("host prefix");
    let aggregate = IpNet::new(ip, 29).expect("aggregate").trunc();
    let topology = lab.topology().expect("topology");
    for kind in ROUTERS {
        wait_next_hops(&lab, kind, aggregate, &NODES);
        let hosts = rib_wait::rib(topology, kind, host).expect("RIB");
        assert!(hosts.is_empty(), "{kind} holds the host route: {hosts:?}");
    }
    assert_reached_through_each_router(&lab, ip, &[1, 2, 3]);

    drop(running);
    clear(&client).await;
}

#[tokio::test]
async fn ipv6_service_over_ipv6_sessions_reaches_the_client_through_each_router() {
    let mut lab = common::shared_lab_with(lab_options).await;
    let client = lab.client().expect("client");
    let scenario = Scenario {
        name: "v6-bgp",
        addresses: "2001:db8:3::e2e:0/125",
        v6: true,
        ..WEB
    };
    scenario.deploy(&lab, &client).await;
    let running = Running::start(&mut lab, "bgp-v6", true, &NODES);
    let ip = scenario.service(&lab, &client, "Cluster", &[1]).await;
    assert!(ip.is_ipv6(), "{ip}");
    let prefix = IpNet::new(ip, 128).expect("host prefix");
    for kind in ROUTERS {
        wait_next_hops(&lab, kind, prefix, &NODES);
    }
    assert_reached_through_each_router(&lab, ip, &[1, 2, 3]);

    drop(running);
    clear(&client).await;
}

#[tokio::test]
async fn graceful_restart_keeps_the_prefix_and_the_traffic_while_the_speaker_restarts() {
    let mut lab = common::shared_lab_with(lab_options).await;
    let client = lab.client().expect("client");
    let scenario = Scenario {
        name: "gr-bgp",
        addresses: "203.0.113.232/29",
        peer: json!({"gracefulRestart": {"restartTime": "120s"}}),
        ..WEB
    };
    scenario.deploy(&lab, &client).await;
    let mut running = Running::start(&mut lab, "bgp-gr", true, &NODES);
    // Local policy with the one endpoint on node 1: only node 1 announces, so without graceful
    // restart the prefix would leave both routers while its speaker is away.
    let ip = scenario.service(&lab, &client, "Local", &[1]).await;
    let prefix = IpNet::new(ip, 32).expect("host prefix");
    for kind in ROUTERS {
        wait_next_hops(&lab, kind, prefix, &[1]);
    }
    let topology = lab.topology().expect("topology");
    wait_reached(topology, ip, "FRR");
    let node_v4: IpAddr = plan::node_v4(1).into();
    let before = rib_wait::frr_connections_established(topology, node_v4);

    // SIGTERM: with graceful restart the speaker closes its sessions without a NOTIFICATION.
    running.speakers[0].stop();
    let down_since = Instant::now();
    let mut saw_stale = false;
    while down_since.elapsed() < Duration::from_secs(5) {
        let paths = rib_wait::frr_prefix_paths(topology, prefix);
        assert!(
            !paths.is_empty(),
            "FRR dropped {prefix} while node 1's speaker restarts"
        );
        saw_stale |= paths.iter().all(|p| p["stale"].as_bool() == Some(true));
        let at_bird = rib_wait::rib(topology, RouterKind::Bird, prefix).unwrap_or_default();
        assert!(
            !at_bird.is_empty(),
            "BIRD dropped {prefix} while node 1's speaker restarts"
        );
        let body = topology
            .curl(Client::Routed, &workload::url(ip))
            .unwrap_or_else(|e| panic!("the routed client lost {ip} during the restart: {e}"));
        assert!(!body.trim().is_empty(), "empty answer during the restart");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        saw_stale,
        "FRR never marked {prefix} stale: the session did not go down"
    );

    // The new process re-peers, re-sends the prefix and ends with End-of-RIB: FRR clears the stale
    // mark.
    let restarted =
        binaries::start_speaker(&mut lab, 1, "bgp-gr-2", &speaker_options()).expect("speaker");
    running.speakers[0] = restarted;
    let topology = lab.topology().expect("topology");
    netns::wait_for("FRR re-peers with node 1", WAIT, || {
        (rib_wait::frr_connections_established(topology, node_v4) > before).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    netns::wait_for("FRR's path for the prefix no longer stale", WAIT, || {
        let paths = rib_wait::frr_prefix_paths(topology, prefix);
        (!paths.is_empty() && paths.iter().all(|p| p["stale"].as_bool() != Some(true)))
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", rib_wait::frr_prefix_paths(topology, prefix)));
    for kind in ROUTERS {
        wait_next_hops(&lab, kind, prefix, &[1]);
    }
    wait_reached(topology, ip, "FRR");

    drop(running);
    clear(&client).await;
}

#[tokio::test]
async fn bfd_sessions_report_growing_packet_counters_in_speaker_status_and_metrics() {
    let mut lab = common::shared_lab_with(lab_options).await;
    let client = lab.client().expect("client");
    let scenario = Scenario {
        name: "bfd-bgp",
        addresses: "203.0.113.240/29",
        peer: json!({"bfdProfile": "bfd-bgp"}),
        ..WEB
    };
    scenario.deploy(&lab, &client).await;
    // 300 ms x 3 both ways: robust on a loaded machine; the routers ask for 100 ms, and the
    // slower side sets the pace (RFC 5880 §6.8.7).
    apply(
        &client,
        &json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "BFDProfile",
            "metadata": {"name": "bfd-bgp", "labels": {TEST_LABEL: "true"}},
            "spec": {"receiveInterval": 300, "transmitInterval": 300, "detectMultiplier": 3},
        }),
    )
    .await;
    // The peers select every node and need no Service: one speaker is enough.
    let running = Running::start(&mut lab, "bgp-bfd", false, &[1]);
    let node = lab
        .topology()
        .expect("topology")
        .node(1)
        .expect("node")
        .name
        .clone();

    let mut first = Vec::new();
    for kind in ROUTERS {
        let peer = scenario.peer_name(kind);
        let session = wait_bfd_session(&client, &node, &peer, WAIT, |s| {
            s.state == BfdState::Up && s.packets_received > 0 && s.packets_sent > 0
        })
        .await;
        // Down, then Init or Up, then Up.
        assert!(session.state_changes >= 1, "{session:?}");
        first.push((peer, session));
    }
    // A change of the counters alone reaches the status within the counters interval (30 s).
    for (peer, before) in &first {
        let later = wait_bfd_session(&client, &node, peer, Duration::from_secs(45), |s| {
            s.packets_received > before.packets_received
        })
        .await;
        assert_eq!(later.state, BfdState::Up, "{later:?}");
        assert!(later.packets_sent > before.packets_sent, "{later:?}");
    }

    let text = binaries::speaker_metrics(&lab, 1).expect("speaker metrics");
    for (peer, before) in &first {
        let value = |name| {
            peer_series(&text, name, peer)
                .unwrap_or_else(|| panic!("{name}{{peer={peer:?}}} missing from:\n{text}"))
        };
        assert_eq!(value("ferrolb_bfd_session_up"), 1.0);
        // The metrics are read every second, the status much less often: they are ahead.
        let received = value("ferrolb_bfd_packets_received_total");
        assert!(
            received > before.packets_received as f64,
            "{peer}: {received}"
        );
        let sent = value("ferrolb_bfd_packets_sent_total");
        assert!(sent > before.packets_sent as f64, "{peer}: {sent}");
        assert!(
            value("ferrolb_bfd_session_state_changes_total") >= 1.0,
            "{peer}"
        );
        assert_eq!(value("ferrolb_bfd_send_errors_total"), 0.0, "{peer}");
    }

    drop(running);
    clear(&client).await;
}
