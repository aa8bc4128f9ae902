//! The main job of `lab up`: ferrolb running in the lab and serving two demo Services, one in
//! layer-2 mode and one in BGP mode, each checked from its client before `lab up` reports success.
//!
//! What it deploys (all in the lab's own cluster, addresses from the lab's documentation ranges):
//! - the membership Secret, in [`NAMESPACE`];
//! - IPAddressPool `demo-l2` (the segment's layer-2 range, IPv4 and IPv6) with an L2Advertisement,
//!   and IPAddressPool `demo-bgp` (part of the BGP range) with a BGPAdvertisement and one BGPPeer
//!   per segment router and family;
//! - `ferrolb-controller` in the control-plane namespace and `ferrolb-speaker` in every node
//!   namespace, recorded in the lab's state so `lab down` stops them by pid;
//! - Services `demo/demo-l2` (dual stack) and `demo/demo-bgp` (IPv4), each with an EndpointSlice
//!   naming every node (the lab has no kube-controller-manager to write them).
//!
//! Then it waits until the layer-2 client and the routed client each get an answer from a node's
//! backend through the Service's external IP.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binaries::{self, BinaryError, SpeakerOptions};
use crate::cluster::{self, ClusterError, Manifest, Persist};
use crate::lab::{Lab, LabError};
use crate::netns::NsProcess;
use crate::routers::RouterKind;
use crate::topology::{self, Client, Node, TopologyError, plan};
use crate::workload;

/// Where the demo's Services, EndpointSlices and the membership Secret live.
pub const NAMESPACE: &str = "demo";
const MEMBERSHIP_SECRET: &str = "ferrolb-membership";
/// Only for the lab: a fixed key, so a restarted speaker can rejoin.
const MEMBERSHIP_KEY: &[u8] = b"ferrolb-lab-demo-membership-key-not-a-secret";
const L2_SERVICE: &str = "demo-l2";
const BGP_SERVICE: &str = "demo-bgp";
/// Part of [`plan::BGP_POOL_V4`].
const BGP_POOL_V4: &str = "203.0.113.0/28";
/// How long the demo may take to answer after the processes start.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(45);

/// The demo could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error("Service {NAMESPACE}/{service} got no external IP within {after:?}")]
    NoIp {
        service: &'static str,
        after: Duration,
    },
    #[error(
        "the {client} client did not reach Service {NAMESPACE}/{service} at {ip} within {after:?}"
    )]
    Unreachable {
        client: &'static str,
        service: &'static str,
        ip: IpAddr,
        after: Duration,
    },
}

/// One demo Service as the clients reached it.
#[derive(Debug, Clone)]
pub struct Reached {
    pub service: &'static str,
    pub mode: &'static str,
    pub ip: IpAddr,
    /// The client namespace that reached it.
    pub client: String,
    /// The node whose backend answered.
    pub answered_by: String,
}

/// Deploys the demo and waits until both Services answer; see the module docs.
pub async fn deploy(lab: &mut Lab) -> Result<Vec<Reached>, DemoError> {
    let client = lab.client()?;
    for object in objects(lab)? {
        let manifest = Manifest {
            source: PathBuf::from("tests/src/demo.rs"),
            object,
        };
        cluster::apply_manifest(&client, &manifest, Persist::Store).await?;
    }
    binaries::write_membership_secret(&client, NAMESPACE, MEMBERSHIP_SECRET, MEMBERSHIP_KEY)
        .await?;
    let mut processes: Vec<NsProcess> = vec![binaries::start_controller(
        lab,
        "demo",
        NAMESPACE,
        "ferrolb-controller",
    )?];
    let options = SpeakerOptions {
        namespace: NAMESPACE.into(),
        membership_secret: MEMBERSHIP_SECRET.into(),
        log_level: "info".into(),
        ..SpeakerOptions::default()
    };
    let nodes: Vec<usize> = lab.topology()?.nodes().iter().map(|n| n.index).collect();
    for index in &nodes {
        processes.push(binaries::start_speaker(lab, *index, "demo", &options)?);
    }

    let l2_ip = wait_ip(&client, L2_SERVICE).await?;
    let bgp_ip = wait_ip(&client, BGP_SERVICE).await?;
    let reached = vec![
        reach(lab, Client::L2, L2_SERVICE, "layer 2", l2_ip).await?,
        reach(lab, Client::Routed, BGP_SERVICE, "BGP", bgp_ip).await?,
    ];
    // Everything answered: the processes outlive this command (recorded for `lab down`).
    for process in processes {
        process.detach();
    }
    Ok(reached)
}

/// The demo's objects, in the order they must be applied.
fn objects(lab: &Lab) -> Result<Vec<Value>, DemoError> {
    let topology = lab.topology()?;
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "demo-l2"},
            "spec": {"addresses": [plan::L2_POOL_V4, plan::L2_POOL_V6], "autoAssign": false},
        }),
        json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "demo-l2"},
            "spec": {"ipAddressPools": ["demo-l2"]},
        }),
        json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "demo-bgp"},
            "spec": {"addresses": [BGP_POOL_V4], "autoAssign": false, "avoidBuggyIPs": true},
        }),
        json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": "demo-bgp"},
            "spec": {"ipAddressPools": ["demo-bgp"], "communities": ["64500:100"]},
        }),
    ];
    for router in topology.routers() {
        let kind = router.kind();
        if kind == RouterKind::Multihop {
            continue;
        }
        let (v4, _) = plan::router_addresses(kind);
        objects.push(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "BGPPeer",
            "metadata": {"name": format!("{kind}")},
            "spec": {
                "myASN": plan::NODE_ASN,
                "peerASN": router.config().options.asn,
                "peerAddress": v4.to_string(),
                "connectTime": "1s",
            },
        }));
    }
    let nodes: Vec<&Node> = topology.nodes().iter().collect();
    let services = [
        (
            L2_SERVICE,
            "demo-l2",
            "PreferDualStack",
            vec!["IPv4", "IPv6"],
        ),
        (BGP_SERVICE, "demo-bgp", "SingleStack", vec!["IPv4"]),
    ];
    for (name, pool, policy, families) in services {
        let mut service = workload::load_balancer(
            NAMESPACE,
            name,
            json!({}),
            json!({"ipFamilyPolicy": policy, "ipFamilies": families}),
        );
        service["metadata"]["annotations"] = json!({"ferrolb.io/address-pool": pool});
        objects.push(service);
        for family in families {
            objects.push(workload::endpoint_slice(
                NAMESPACE,
                name,
                &family.to_lowercase(),
                family,
                &nodes,
                json!({}),
            ));
        }
    }
    Ok(objects)
}

/// The Service's first external IP, once the controller has written it.
async fn wait_ip(client: &kube::Client, service: &'static str) -> Result<IpAddr, DemoError> {
    workload::wait_ingress_ip(client, NAMESPACE, service, REACH_TIMEOUT)
        .await
        .ok_or(DemoError::NoIp {
            service,
            after: REACH_TIMEOUT,
        })
}

/// Polls from `client` until a node's backend answers through `ip`.
async fn reach(
    lab: &Lab,
    client: Client,
    service: &'static str,
    mode: &'static str,
    ip: IpAddr,
) -> Result<Reached, DemoError> {
    let topology = lab.topology()?;
    let ns = topology.client_ns(client)?;
    let url = workload::url(ip);
    let started = Instant::now();
    while started.elapsed() < REACH_TIMEOUT {
        if let Ok(body) = topology::curl_within(ns, &url, "1") {
            let answered_by = body.trim().to_owned();
            if !answered_by.is_empty() {
                return Ok(Reached {
                    service,
                    mode,
                    ip,
                    client: ns.name().to_owned(),
                    answered_by,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(DemoError::Unreachable {
        client: match client {
            Client::L2 => "layer-2",
            Client::Routed => "routed",
        },
        service,
        ip,
        after: REACH_TIMEOUT,
    })
}
