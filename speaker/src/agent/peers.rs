//! Where this node's heartbeats go: the other Nodes' addresses (SPEC §5, "speakers find each other
//! through the API").
//!
//! Contract: pure. A peer is every other Node; its address is its `InternalIP` (the address
//! Kubernetes itself uses to reach the kubelet, so it is routable between nodes where any address
//! is). Of a dual-stack node the `InternalIP` of *this node's primary family* (the family of this
//! node's first `InternalIP`) is taken, since a node can be sure only that its own primary family
//! reaches the others; a peer without one falls back to its first `InternalIP`. A Node without an
//! `InternalIP` gets no heartbeats and so is never live: it cannot be elected, which is the safe
//! side (an unreachable owner would black-hole the IP).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use crate::membership::driver::Peer;

/// The `InternalIP`s of a Node, in the order the kubelet reported them.
pub fn internal_ips(node: &Node) -> impl Iterator<Item = IpAddr> + '_ {
    node.status
        .as_ref()
        .and_then(|status| status.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|address| address.type_ == "InternalIP")
        .filter_map(|address| address.address.parse().ok())
}

/// The membership peers of node `own` among `nodes`, on UDP `port`.
pub fn peers(own: &str, nodes: &[Arc<Node>], port: u16) -> Vec<Peer> {
    let primary_v6 = nodes
        .iter()
        .find(|node| node.name_any() == own)
        .and_then(|node| internal_ips(node).next())
        .map(|ip| ip.is_ipv6());
    let mut peers: Vec<Peer> = nodes
        .iter()
        .filter(|node| node.name_any() != own)
        .filter_map(|node| {
            let same_family = internal_ips(node).find(|ip| Some(ip.is_ipv6()) == primary_v6);
            let ip = same_family.or_else(|| internal_ips(node).next())?;
            Some(Peer {
                node: node.name_any(),
                address: SocketAddr::new(ip, port),
            })
        })
        .collect();
    peers.sort_by(|a, b| a.node.cmp(&b.node));
    peers
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, addresses: &[(&str, &str)]) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                addresses: Some(
                    addresses
                        .iter()
                        .map(|(type_, address)| NodeAddress {
                            type_: (*type_).into(),
                            address: (*address).into(),
                        })
                        .collect(),
                ),
                ..NodeStatus::default()
            }),
            ..Node::default()
        })
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    #[test]
    fn peers_are_the_other_nodes_internal_ips_on_the_port() {
        let nodes = [
            node("b", &[("Hostname", "b"), ("InternalIP", "192.0.2.2")]),
            node("a", &[("InternalIP", "192.0.2.1")]),
            node(
                "c",
                &[("ExternalIP", "203.0.113.3"), ("InternalIP", "192.0.2.3")],
            ),
        ];
        assert_eq!(
            peers("a", &nodes, 7946),
            vec![
                Peer {
                    node: "b".into(),
                    address: addr("192.0.2.2:7946")
                },
                Peer {
                    node: "c".into(),
                    address: addr("192.0.2.3:7946")
                },
            ]
        );
    }

    #[test]
    fn dual_stack_peer_is_reached_in_this_nodes_primary_family() {
        let nodes = [
            node(
                "a",
                &[("InternalIP", "2001:db8::1"), ("InternalIP", "192.0.2.1")],
            ),
            node(
                "b",
                &[("InternalIP", "192.0.2.2"), ("InternalIP", "2001:db8::2")],
            ),
            node("c", &[("InternalIP", "192.0.2.3")]),
        ];
        let found = peers("a", &nodes, 7946);
        assert_eq!(found[0].address, addr("[2001:db8::2]:7946"));
        assert_eq!(
            found[1].address,
            addr("192.0.2.3:7946"),
            "fallback: any family"
        );
    }

    #[test]
    fn node_without_internal_ip_is_no_peer() {
        let nodes = [
            node("a", &[("InternalIP", "192.0.2.1")]),
            node("b", &[("Hostname", "b"), ("InternalIP", "not-an-ip")]),
        ];
        assert!(peers("a", &nodes, 7946).is_empty());
    }
}
