//! Reading and waiting on the lab routers' RIBs and sessions: shared by the BGP e2e tests and
//! benchmarks.
#![allow(dead_code)]

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_lab::netns;
use ferrolb_lab::routers::{Family as RibFamily, Route, RouterKind};
use ferrolb_lab::topology::{Topology, plan};
use ipnet::IpNet;

/// How long a route change may take to show in a router's RIB.
pub const RIB_CHANGE: Duration = Duration::from_secs(15);

/// The router's BGP paths for `prefix`. `None` when the reader failed: FRR's reader lists the
/// table, then asks for each prefix's detail, and a prefix withdrawn in between yields an empty
/// detail it cannot parse; the waits below simply read again.
pub fn rib(topo: &Topology, kind: RouterKind, prefix: IpNet) -> Option<Vec<Route>> {
    let family = match prefix {
        IpNet::V4(_) => RibFamily::Ipv4,
        IpNet::V6(_) => RibFamily::Ipv6,
    };
    let routes = topo.router(kind).ok()?.routes(family).ok()?;
    Some(
        routes
            .into_iter()
            .filter(|r| r.prefix == prefix && r.from_bgp)
            .collect(),
    )
}

pub fn wait_route(topo: &Topology, kind: RouterKind, prefix: IpNet) -> Route {
    netns::wait_for(&format!("{prefix} at {kind}"), RIB_CHANGE, || {
        rib(topo, kind, prefix)?.into_iter().next()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

pub fn wait_gone(topo: &Topology, kind: RouterKind, prefix: IpNet) {
    netns::wait_for(&format!("{prefix} withdrawn at {kind}"), RIB_CHANGE, || {
        rib(topo, kind, prefix)?.is_empty().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", rib(topo, kind, prefix)));
}

/// FRR's view of its neighbour `neighbour` (`show bgp neighbors … json`).
pub fn frr_neighbor(topo: &Topology, neighbour: IpAddr) -> serde_json::Value {
    let frr = topo.router(RouterKind::Frr).expect("frr");
    let ns = frr.namespace().name().to_owned();
    let command = format!("show bgp neighbors {neighbour} json");
    let out = frr
        .namespace()
        .exec(&["vtysh", "-N", &ns, "-c", &command])
        .expect("vtysh");
    let json: serde_json::Value = serde_json::from_str(&out).expect("FRR neighbour JSON");
    json[neighbour.to_string()].clone()
}

/// FRR's count of sessions established with a neighbour: it grows on every reset.
pub fn frr_connections_established(topo: &Topology, neighbour: IpAddr) -> u64 {
    let neighbor = frr_neighbor(topo, neighbour);
    neighbor["connectionsEstablished"]
        .as_u64()
        .unwrap_or_else(|| panic!("no connectionsEstablished in {neighbor}"))
}

/// Waits until `kind` has no established session with any of `addresses`.
pub fn wait_sessions_down(topo: &Topology, kind: RouterKind, addresses: &[IpAddr]) {
    netns::wait_for(
        &format!("{kind}: sessions with {addresses:?} down"),
        RIB_CHANGE,
        || {
            let sessions = topo.router(kind).ok()?.sessions().ok()?;
            sessions
                .iter()
                .filter(|s| addresses.contains(&s.peer))
                .all(|s| !s.established)
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits for each `(prefix, next hop)` at `kind` and checks the path as the BGP tests announce it:
/// the node as next hop, community 64500:100 and large community 64500:1:2; at BIRD, which shares
/// the nodes' AS (iBGP), LOCAL_PREF `local_pref` and an empty AS path; elsewhere AS path
/// [`plan::NODE_ASN`].
pub fn assert_lb_routes(
    topo: &Topology,
    kind: RouterKind,
    routes: &[(IpNet, IpAddr)],
    local_pref: u32,
) {
    for &(prefix, next_hop) in routes {
        let route = wait_route(topo, kind, prefix);
        assert_eq!(
            route.next_hops,
            vec![next_hop],
            "{kind} {prefix}: {route:?}"
        );
        assert!(
            route.communities.contains(&(64500, 100)),
            "{kind}: {route:?}"
        );
        assert!(
            route.large_communities.contains(&(64500, 1, 2)),
            "{kind}: {route:?}"
        );
        if kind == RouterKind::Bird {
            assert_eq!(
                route.local_pref,
                Some(local_pref),
                "iBGP LOCAL_PREF: {route:?}"
            );
            assert_eq!(route.as_path, Vec::<u32>::new(), "{route:?}");
        } else {
            assert_eq!(route.as_path, vec![plan::NODE_ASN], "{kind}: {route:?}");
        }
    }
}

/// `birdc` on the lab's BIRD with `args`; its output.
pub fn birdc(topo: &Topology, args: &[&str]) -> Result<String, ferrolb_lab::netns::NetnsError> {
    let bird = topo.router(RouterKind::Bird).expect("bird");
    let socket = bird.dir().join("bird.ctl").to_string_lossy().into_owned();
    let mut argv = vec!["birdc", "-s", &socket];
    argv.extend_from_slice(args);
    bird.namespace().exec(&argv)
}

/// The route count of a `birdc show route … count` answer ("10000 of 10000 routes for 10000
/// networks in table master6"); 0 when BIRD found no network ("Network not found").
pub fn bird_route_count(out: &str) -> Result<usize, String> {
    match out.lines().find(|l| l.contains(" routes for ")) {
        Some(line) => line
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("no route count in `{line}`")),
        None if out.contains("not found") => Ok(0),
        None => Err(format!("no route count in `{out}`")),
    }
}

/// FRR's paths for exactly `prefix` (`show bgp <afi> unicast <prefix> json`), each as FRR's JSON
/// (with `stale` set while a graceful restart keeps it); empty when FRR has none.
pub fn frr_prefix_paths(topo: &Topology, prefix: IpNet) -> Vec<serde_json::Value> {
    let frr = topo.router(RouterKind::Frr).expect("frr");
    let ns = frr.namespace().name().to_owned();
    let afi = match prefix {
        IpNet::V4(_) => "ipv4",
        IpNet::V6(_) => "ipv6",
    };
    let command = format!("show bgp {afi} unicast {prefix} json");
    let out = frr
        .namespace()
        .exec(&["vtysh", "-N", &ns, "-c", &command])
        .expect("vtysh");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    json["paths"].as_array().cloned().unwrap_or_default()
}
