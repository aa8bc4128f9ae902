//! BGP mode end to end (SPEC §6) with the real binaries against the lab's real kube-apiserver:
//! the controller assigns an IP, three `ferrolb-speaker` processes announce it to FRR and BIRD,
//! the routed client reaches the Service through the routers, and `SpeakerStatus` shows the
//! sessions. The peer set's protocol details (communities per router, hold-time resets, BFD,
//! passwords, multihop, GoBGP) are proven in `bgp_peer_set`; this test proves the wiring:
//! Kubernetes objects → speaker binary → routers' RIBs.
//!
//! There is no kube-controller-manager in the lab, so the test writes the EndpointSlice itself.

mod common;
mod rib_wait;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_config::crd::speaker_status::BgpState;
use ferrolb_config::crd::{BGPAdvertisement, BGPPeer, IPAddressPool, SpeakerStatus};
use ferrolb_lab::binaries::{self, SpeakerOptions};
use ferrolb_lab::cluster::{self, Manifest, Persist};
use ferrolb_lab::lab::Lab;
use ferrolb_lab::netns::{self, NsProcess};
use ferrolb_lab::routers::RouterKind;
use ferrolb_lab::topology::{Client, Node, plan};
use ferrolb_lab::workload;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};

const NAMESPACE: &str = "default";
const TEST_LABEL: &str = "ferrolb.io/e2e-bgp";
const POOL: &str = "bgp-e2e";
/// Inside the lab's BGP range, so the routers accept it.
const POOL_ADDRESSES: &str = "203.0.113.200/29";
const SERVICE: &str = "web-bgp";
const SECRET: &str = "ferrolb-membership";
const KEY: &[u8] = b"speaker-bgp-e2e-heartbeat-key-0123456789";
const WAIT: Duration = Duration::from_secs(30);
const ROUTERS: [RouterKind; 2] = [RouterKind::Frr, RouterKind::Bird];
const NODES: [usize; 3] = [1, 2, 3];

fn peer_name(kind: RouterKind) -> String {
    format!("{kind}-v4")
}

/// Pool, advertisement with communities and LOCAL_PREF, one BGPPeer per router (IPv4).
fn manifests(lab: &Lab) -> Vec<Value> {
    let topology = lab.topology().expect("topology");
    let mut objects = vec![
        json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": POOL},
            "spec": {"addresses": [POOL_ADDRESSES]},
        }),
        json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": POOL},
            "spec": {
                "ipAddressPools": [POOL],
                "localPref": 200,
                "communities": ["64500:100", "large:64500:1:2"],
            },
        }),
    ];
    for kind in ROUTERS {
        let asn = topology.router(kind).expect("router").config().options.asn;
        let (address, _) = plan::router_addresses(kind);
        objects.push(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "BGPPeer",
            "metadata": {"name": peer_name(kind)},
            "spec": {
                "myASN": plan::NODE_ASN,
                "peerASN": asn,
                "peerAddress": address.to_string(),
                "holdTime": "9s",
                "connectTime": "1s",
            },
        }));
    }
    objects
}

async fn clear(client: &kube::Client) {
    let labelled = ListParams::default().labels(TEST_LABEL);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let _ = services.delete(SERVICE, &DeleteParams::default()).await;
    let _ = Api::<EndpointSlice>::namespaced(client.clone(), NAMESPACE)
        .delete_collection(&DeleteParams::default(), &labelled)
        .await;
    let _ = Api::<BGPAdvertisement>::all(client.clone())
        .delete(POOL, &DeleteParams::default())
        .await;
    for kind in ROUTERS {
        let _ = Api::<BGPPeer>::all(client.clone())
            .delete(&peer_name(kind), &DeleteParams::default())
            .await;
    }
    let _ = Api::<IPAddressPool>::all(client.clone())
        .delete(POOL, &DeleteParams::default())
        .await;
}

async fn apply_service(client: &kube::Client, policy: &str) {
    let service = workload::load_balancer(
        NAMESPACE,
        SERVICE,
        json!({TEST_LABEL: "true"}),
        json!({
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"],
            "externalTrafficPolicy": policy,
        }),
    );
    apply(client, &service).await;
}

/// The Service's one EndpointSlice: a ready endpoint on each node of `nodes`.
async fn set_endpoints(lab: &Lab, client: &kube::Client, nodes: &[usize]) {
    let topology = lab.topology().expect("topology");
    let nodes: Vec<&Node> = nodes
        .iter()
        .map(|i| topology.node(*i).expect("node"))
        .collect();
    let slice = workload::endpoint_slice(
        NAMESPACE,
        SERVICE,
        "e2e",
        "IPv4",
        &nodes,
        json!({TEST_LABEL: "true"}),
    );
    apply(client, &slice).await;
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

/// Waits until `kind`'s paths for `prefix` have exactly these next hops (the announcing nodes).
fn wait_next_hops(lab: &Lab, kind: RouterKind, prefix: IpNet, nodes: &[usize]) {
    let topology = lab.topology().expect("topology");
    let wanted: BTreeSet<IpAddr> = nodes.iter().map(|i| plan::node_v4(*i).into()).collect();
    let mut last = BTreeSet::new();
    let found = netns::wait_for(
        &format!("{prefix} at {kind} via {wanted:?}"),
        rib_wait::RIB_CHANGE,
        || {
            let routes = rib_wait::rib(topology, kind, prefix)?;
            last = routes.iter().flat_map(|r| r.next_hops.clone()).collect();
            (last == wanted).then_some(())
        },
    );
    if let Err(error) = found {
        panic!("{error}; last seen next hops {last:?}");
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

#[tokio::test]
async fn service_routes_reach_the_routers_from_its_endpoint_nodes_without_session_resets() {
    let mut lab = common::shared_lab().await;
    let client = lab.client().expect("client");
    clear(&client).await;
    binaries::write_membership_secret(&client, NAMESPACE, SECRET, KEY)
        .await
        .expect("membership Secret");
    for object in manifests(&lab) {
        apply(&client, &object).await;
    }
    let _controller = binaries::start_controller(&mut lab, "bgp-e2e", NAMESPACE, "ferrolb-bgp-e2e")
        .expect("controller");
    let options = SpeakerOptions {
        namespace: NAMESPACE.into(),
        membership_secret: SECRET.into(),
        ..SpeakerOptions::default()
    };
    let speakers: Vec<NsProcess> = NODES
        .iter()
        .map(|i| binaries::start_speaker(&mut lab, *i, "bgp-e2e", &options).expect("speaker"))
        .collect();
    let guard = LogsOnPanic(&speakers);

    // Cluster policy: every node announces, each router sees all three as next hops.
    apply_service(&client, "Cluster").await;
    set_endpoints(&lab, &client, &[1]).await;
    let ip = workload::wait_ingress_ip(&client, NAMESPACE, SERVICE, WAIT)
        .await
        .expect("the Service gets an IP");
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
    let answer = netns::wait_for("the routed client reaches the Service", WAIT, || {
        topology
            .curl(Client::Routed, &workload::url(ip))
            .ok()
            .filter(|body| !body.trim().is_empty())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = NODES
        .iter()
        .map(|i| topology.node(*i).expect("node").name.clone())
        .collect();
    assert!(names.contains(&answer.trim().to_owned()), "{answer}");

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
    apply_service(&client, "Local").await;
    set_endpoints(&lab, &client, &[2]).await;
    for kind in ROUTERS {
        wait_next_hops(&lab, kind, prefix, &[2]);
    }
    let after: Vec<u64> = NODES
        .iter()
        .map(|i| rib_wait::frr_connections_established(topology, plan::node_v4(*i).into()))
        .collect();
    assert_eq!(established, after, "a Service change reset a session");

    drop(guard);
    drop(speakers);
    clear(&client).await;
}

/// Prints the speakers' logs when the test fails.
struct LogsOnPanic<'a>(&'a [NsProcess]);

impl Drop for LogsOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            speaker_logs(self.0);
        }
    }
}
