//! ferrolb's [`PeerSet`] in node 1 of a lab topology, configured from CRD YAML the way the speaker
//! is: YAML → `model::build` → `desired::compute` (one LoadBalancer Service with a ready endpoint)
//! → `PeerSet::apply`. Shared by the `bgp_peer_set` e2e test and the `bgp_scale` benchmark;
//! `mod node_runtime;` must be declared next to it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ferrolb_config::crd;
use ferrolb_config::crd::speaker_status::{BfdSessionStatus, BgpSessionStatus};
use ferrolb_config::model::{self, Config, Objects, SecretRef};
use ferrolb_lab::routers::RouterKind;
use ferrolb_lab::topology::{Topology, plan};
use ferrolb_speaker::bgp::driver::Speaker;
use ferrolb_speaker::bgp::peer_set::{PeerSet, PeerSetInputs};
use ferrolb_speaker::bgp::rib_out::Routes;
use ferrolb_speaker::desired::{self, Endpoint, InterfaceExclusions, Node, Service, TrafficPolicy};
use serde::de::DeserializeOwned;

use super::node_runtime::NodeRuntime;

pub const NODE: usize = 1;
pub const NODE_NAME: &str = "node1";

/// The CRD objects of a multi-document YAML text (ferrolb kinds only).
pub fn objects(yaml: &str) -> Objects {
    fn typed<T: DeserializeOwned>(doc: serde_json::Value) -> T {
        serde_json::from_value(doc).expect("a valid ferrolb object")
    }
    let mut objects = Objects::default();
    for doc in serde_saphyr::from_multiple::<serde_json::Value>(yaml).expect("YAML") {
        match doc["kind"].as_str().expect("kind") {
            "IPAddressPool" => objects.pools.push(typed(doc)),
            "BGPAdvertisement" => objects.bgp_advertisements.push(typed(doc)),
            "BGPPeer" => objects.peers.push(typed::<crd::BGPPeer>(doc)),
            "BFDProfile" => objects.bfd_profiles.push(typed(doc)),
            other => panic!("unexpected kind {other}"),
        }
    }
    objects
}

/// The validated snapshot of `yaml`; any diagnostic fails the caller.
pub fn config(yaml: &str) -> Config {
    let (config, diagnostics) = model::build(&objects(yaml));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    config
}

/// `Desired::bgp` of node 1 with one Service holding `ips`, served by a ready endpoint on it.
pub fn desired_bgp(config: &Config, ips: &[IpAddr]) -> BTreeMap<String, Routes> {
    let nodes = BTreeMap::from([(
        NODE_NAME.to_owned(),
        Node {
            name: NODE_NAME.to_owned(),
            labels: BTreeMap::from([("kubernetes.io/hostname".into(), NODE_NAME.into())]),
            network_unavailable: false,
            interfaces: None,
        },
    )]);
    let endpoint = Endpoint::from_conditions(Some(NODE_NAME.into()), None, None, None);
    let services = [Service {
        namespace: "default",
        name: "web",
        labels: &[],
        ips,
        traffic_policy: TrafficPolicy::Cluster,
        sharing_key: None,
        endpoints: vec![&endpoint],
    }];
    let inputs = desired::Inputs {
        config,
        node: NODE_NAME,
        nodes: &nodes,
        interfaces: &[],
        exclusions: &InterfaceExclusions::default(),
        services: &services,
        live: &BTreeSet::new(),
    };
    desired::compute(&inputs).bgp
}

/// A BGPPeer document: `peerASN` when given, else `dynamicASN: external`.
pub fn peer_yaml(name: &str, address: IpAddr, peer_asn: Option<u32>, extra: &str) -> String {
    let asn = peer_asn.map_or_else(
        || "dynamicASN: external".to_owned(),
        |asn| format!("peerASN: {asn}"),
    );
    format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata:\n  name: {name}\nspec:\n  \
         myASN: {}\n  {asn}\n  peerAddress: \"{address}\"\n  connectTime: 1s\n{extra}",
        plan::NODE_ASN
    )
}

/// Where a router peers with node 1 in one family: its segment address, or for the multihop
/// router (behind FRR) its transit address.
pub fn router_address(kind: RouterKind, v4: bool) -> IpAddr {
    let (a, b) = plan::router_addresses(kind);
    if v4 { a.into() } else { b.into() }
}

pub fn node_addresses() -> Vec<IpAddr> {
    vec![plan::node_v4(NODE).into(), plan::node_v6(NODE).into()]
}

/// Node 1's peer set, on a runtime inside the node's namespace (every socket, BGP and BFD,
/// belongs to the node). Fields drop in order: the set (its sessions), then the runtime.
pub struct NodePeerSet {
    set: Option<PeerSet>,
    runtime: NodeRuntime,
}

impl NodePeerSet {
    pub fn start(topo: &Topology) -> Self {
        let runtime = NodeRuntime::enter(topo.node(NODE).expect("node").ns.name());
        let listen = [
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 179),
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 179),
        ];
        let set = runtime
            .run(async move { Speaker::listen(&listen).map(PeerSet::new) })
            .expect("listen in the node");
        NodePeerSet {
            set: Some(set),
            runtime,
        }
    }

    /// `PeerSet::apply` on the node's runtime; the errors as text.
    pub fn apply(
        &mut self,
        config: &Config,
        routes: &BTreeMap<String, Routes>,
        passwords: &BTreeMap<SecretRef, String>,
    ) -> Vec<String> {
        let mut set = self.set.take().expect("peer set");
        let (config, routes, passwords) = (config.clone(), routes.clone(), passwords.clone());
        let (set, errors) = self.runtime.run(async move {
            let addresses = node_addresses();
            let inputs = PeerSetInputs {
                config: &config,
                routes: &routes,
                passwords: &passwords,
                node_addresses: &addresses,
            };
            let errors = set.apply(&inputs).await;
            (set, errors.iter().map(ToString::to_string).collect())
        });
        self.set = Some(set);
        errors
    }

    pub fn status(&self) -> (Vec<BgpSessionStatus>, Vec<BfdSessionStatus>) {
        self.set.as_ref().expect("peer set").status()
    }

    /// The session of BGPPeer `peer`, as `SpeakerStatus` would show it.
    pub fn session(&self, peer: &str) -> Option<BgpSessionStatus> {
        self.status().0.into_iter().find(|s| s.peer == peer)
    }

    pub fn shutdown(mut self) {
        if let Some(set) = self.set.take() {
            self.runtime.run(set.shutdown());
        }
    }
}
