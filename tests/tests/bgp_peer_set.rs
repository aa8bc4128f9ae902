//! The speaker's peer set (`speaker/src/bgp/peer_set.rs`) against the lab's BIRD, FRR and GoBGP,
//! run as root, no Kubernetes: CRD YAML → validated config → desired state → `PeerSet::apply` in
//! node 1's namespace (see `peer_set_lab`). SPEC §6: routes go out as UPDATE/withdraw on the
//! running sessions, a session is reset only when a parameter fixed at OPEN changes, a BFD profile
//! change never resets BGP, a removed BGPPeer's session is closed.

mod bfd_lab;
mod node_runtime;
mod peer_set_lab;
mod rib_wait;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_config::crd::speaker_status::{BfdState, BgpState};
use ferrolb_config::model::SecretRef;
use ferrolb_lab::netns;
use ferrolb_lab::routers::{RouterKind, RouterOptions};
use ferrolb_lab::topology::{Topology, TopologyOptions, plan};
use ferrolb_speaker::bgp::peer_set::PeerSet;
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use peer_set_lab::{NODE, NodePeerSet, config, desired_bgp, peer_yaml, router_address};
use rib_wait::{
    assert_lb_routes, frr_connections_established, frr_neighbor, rib, wait_gone, wait_route,
    wait_sessions_down,
};

const SESSION_UP: Duration = Duration::from_secs(30);
const ROUTERS: [RouterKind; 3] = [RouterKind::Bird, RouterKind::Frr, RouterKind::Gobgp];

fn topology(routers: &[RouterKind], bfd: bool, frr_password: Option<&str>) -> Topology {
    let defaults = TopologyOptions::default();
    let options = TopologyOptions {
        nodes: 1,
        routers: routers.to_vec(),
        backend: Some(PathBuf::from(env!("CARGO_BIN_EXE_lab-backend"))),
        // BIRD shares the nodes' AS: its sessions are iBGP, so LOCAL_PREF reaches it.
        bird: RouterOptions {
            asn: plan::NODE_ASN,
            bfd,
            ..defaults.bird.clone()
        },
        frr: RouterOptions {
            bfd,
            password: frr_password.map(str::to_owned),
            ..defaults.frr.clone()
        },
        ..defaults
    };
    Topology::up(options).expect("topology up")
}

fn asn(topo: &Topology, kind: RouterKind) -> u32 {
    topo.router(kind).expect("router").config().options.asn
}

/// What changes between the steps of the scenario.
struct Knobs<'a> {
    /// `holdTime` of frr-v4.
    frr_v4_hold: &'a str,
    /// `bfdProfile` of bird-v4 and frr-v4, if any.
    bfd: Option<&'a str>,
    /// The GoBGP peers exist.
    gobgp: bool,
}

/// Pool, advertisement (communities, LOCAL_PREF 200), BFD profiles and one BGPPeer per router
/// and family.
fn manifests(topo: &Topology, knobs: &Knobs<'_>) -> String {
    let mut yaml = format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: lb\nspec:\n  \
         addresses: [\"{}\", \"{}\"]\n---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\n\
         metadata:\n  name: lb\nspec:\n  ipAddressPools: [lb]\n  localPref: 200\n  \
         communities: [\"64500:100\", \"large:64500:1:2\"]\n",
        plan::BGP_POOL_V4,
        plan::BGP_POOL_V6
    );
    for (name, ms) in [("fast", 100), ("slow", 300)] {
        yaml.push_str(&format!(
            "---\napiVersion: ferrolb.io/v1beta1\nkind: BFDProfile\nmetadata:\n  name: {name}\n\
             spec:\n  receiveInterval: {ms}\n  transmitInterval: {ms}\n  detectMultiplier: 3\n"
        ));
    }
    let bfd = knobs
        .bfd
        .map(|profile| format!("  bfdProfile: {profile}\n"))
        .unwrap_or_default();
    let frr_v4 = format!("  holdTime: {}\n{bfd}", knobs.frr_v4_hold);
    let frr_v6 = format!(
        "  holdTime: 9s\n  sourceAddress: \"{}\"\n",
        plan::node_v6(NODE)
    );
    let hold = "  holdTime: 9s\n".to_owned();
    let mut peers = vec![
        (RouterKind::Bird, true, format!("{hold}{bfd}")),
        (RouterKind::Bird, false, hold.clone()),
        (RouterKind::Frr, true, frr_v4),
        (RouterKind::Frr, false, frr_v6),
    ];
    // Behind FRR: eBGP multihop (RFC 4271 §5.1.3), IPv4 only.
    peers.push((
        RouterKind::Multihop,
        true,
        format!("{hold}  ebgpMultiHop: 4\n"),
    ));
    if knobs.gobgp {
        peers.push((RouterKind::Gobgp, true, hold.clone()));
        peers.push((RouterKind::Gobgp, false, hold));
    }
    for (kind, v4, extra) in peers {
        let name = peer_name(kind, v4);
        let address = router_address(kind, v4);
        // The GoBGP IPv6 peer takes whatever external AS GoBGP announces.
        let peer_asn = (kind != RouterKind::Gobgp || v4).then(|| asn(topo, kind));
        yaml.push_str(&peer_yaml(&name, address, peer_asn, &extra));
    }
    yaml
}

fn peer_name(kind: RouterKind, v4: bool) -> String {
    format!("{kind}-{}", if v4 { "v4" } else { "v6" })
}

fn node_ip(v4: bool) -> IpAddr {
    if v4 {
        plan::node_v4(NODE).into()
    } else {
        plan::node_v6(NODE).into()
    }
}

fn prefix(text: &str) -> IpNet {
    text.parse().expect("prefix")
}

/// BIRD's "Since" of the protocol talking to node 1 over `v4`, in milliseconds of the day (it
/// moves on every reset).
fn bird_since(topo: &Topology, v4: bool) -> u64 {
    let bird = topo.router(RouterKind::Bird).expect("bird");
    let socket = bird.dir().join("bird.ctl").to_string_lossy().into_owned();
    let out = bird
        .namespace()
        .exec(&["birdc", "-s", &socket, "show", "protocols"])
        .expect("birdc");
    let protocol = format!("node{NODE}_{}", if v4 { "v4" } else { "v6" });
    let since = out
        .lines()
        .find(|line| line.split_whitespace().next() == Some(protocol.as_str()))
        .and_then(|line| line.split_whitespace().nth(4))
        .unwrap_or_else(|| panic!("no protocol {protocol} in {out}"));
    // `HH:MM:SS.mmm`
    let parts: Vec<f64> = since
        .split(':')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("Since `{since}`")))
        .collect();
    let [h, m, s] = parts[..] else {
        panic!("Since `{since}`")
    };
    ((h * 3600.0 + m * 60.0 + s) * 1000.0).round() as u64
}

/// Waits until every BGPPeer of `peers` is Established on the node; returns since when.
fn wait_established(node: &NodePeerSet, peers: &[String]) -> BTreeMap<String, Option<Time>> {
    peers
        .iter()
        .map(|peer| {
            let since = netns::wait_for(&format!("{peer} Established"), SESSION_UP, || {
                let session = node.session(peer)?;
                (session.state == BgpState::Established).then_some(session.since)
            })
            .unwrap_or_else(|e| panic!("{e}: {:?}", node.session(peer)));
            (peer.clone(), since)
        })
        .collect()
}

/// How the routers see node 1's sessions: FRR's established counts (IPv4, IPv6) and BIRD's
/// "Since" (IPv4, IPv6); both move on every reset.
#[derive(Debug)]
struct RouterView {
    frr: (u64, u64),
    bird: (u64, u64),
}

impl RouterView {
    fn read(topo: &Topology) -> Self {
        RouterView {
            frr: (
                frr_connections_established(topo, node_ip(true)),
                frr_connections_established(topo, node_ip(false)),
            ),
            bird: (bird_since(topo, true), bird_since(topo, false)),
        }
    }

    /// The same sessions: BIRD converts its monotonic clock to the time of day when it prints
    /// "Since", so one timestamp reads 1 ms apart from one query to the next; a reset moves it by
    /// the time re-peering takes, far more than the tolerance.
    fn same_sessions(&self, other: &RouterView) -> bool {
        let close = |a: u64, b: u64| a.abs_diff(b) <= 20;
        self.frr == other.frr
            && close(self.bird.0, other.bird.0)
            && close(self.bird.1, other.bird.1)
    }
}

/// Every session is still the one that came up first, on the node and on the routers.
fn assert_no_reset(
    node: &NodePeerSet,
    topo: &Topology,
    since: &BTreeMap<String, Option<Time>>,
    before: &RouterView,
) {
    let peers: Vec<String> = since.keys().cloned().collect();
    assert_eq!(
        &wait_established(node, &peers),
        since,
        "a session was reset: {:?}",
        node.status().0
    );
    let now = RouterView::read(topo);
    assert!(
        now.same_sessions(before),
        "a router saw a session restart: {before:?} then {now:?}"
    );
}

/// Waits until bird-v4 and frr-v4 report BFD Up on the node.
fn wait_bfd_up(node: &NodePeerSet) {
    for bfd_peer in ["bird-v4", "frr-v4"] {
        netns::wait_for(&format!("{bfd_peer} BFD Up"), SESSION_UP, || {
            let (_, bfd) = node.status();
            bfd.iter()
                .any(|s| s.peer == bfd_peer && s.state == BfdState::Up)
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {:?}", node.status().1));
    }
}

fn all_peers(gobgp: bool) -> Vec<String> {
    let mut peers: Vec<String> = ["bird-v4", "bird-v6", "frr-v4", "frr-v6", "mh-v4"]
        .map(str::to_owned)
        .to_vec();
    if gobgp {
        peers.extend(["gobgp-v4".to_owned(), "gobgp-v6".to_owned()]);
    }
    peers
}

#[test]
fn peer_set_announces_hitlessly_resets_only_for_open_changes_and_closes_removed_peers() {
    let topo = topology(
        &[ROUTERS.as_slice(), &[RouterKind::Multihop]].concat(),
        true,
        None,
    );
    let mut knobs = Knobs {
        frr_v4_hold: "9s",
        bfd: None,
        gobgp: true,
    };
    let v4 = prefix("203.0.113.10/32");
    let v4_more = prefix("203.0.113.11/32");
    let v6 = prefix("2001:db8:3::10/128");
    let ips = |nets: &[IpNet]| nets.iter().map(IpNet::addr).collect::<Vec<_>>();
    let no_passwords = BTreeMap::new();

    // Sessions up, routes with the node as next hop and the advertisement's attributes.
    let mut cfg = config(&manifests(&topo, &knobs));
    let mut routes = desired_bgp(&cfg, &ips(&[v4, v6]));
    assert_eq!(routes.len(), 7, "{routes:?}");
    let mut node = NodePeerSet::start(&topo);
    assert_eq!(
        node.apply(&cfg, &routes, &no_passwords),
        Vec::<String>::new()
    );
    let since = wait_established(&node, &all_peers(true));
    for kind in ROUTERS {
        assert_lb_routes(
            &topo,
            kind,
            &[(v4, node_ip(true)), (v6, node_ip(false))],
            200,
        );
    }
    assert_lb_routes(&topo, RouterKind::Multihop, &[(v4, node_ip(true))], 200);
    // No routerID in the BGPPeers: the node's IPv4 address is the BGP identifier on both families.
    for v4_session in [true, false] {
        let neighbor = frr_neighbor(&topo, node_ip(v4_session));
        assert_eq!(
            neighbor["remoteRouterId"],
            plan::node_v4(NODE).to_string(),
            "{neighbor}"
        );
    }
    let before = RouterView::read(&topo);

    // New and withdrawn routes: UPDATEs on the running sessions, no reset anywhere.
    routes = desired_bgp(&cfg, &ips(&[v4, v4_more]));
    assert_eq!(
        node.apply(&cfg, &routes, &no_passwords),
        Vec::<String>::new()
    );
    wait_route(&topo, RouterKind::Multihop, v4_more);
    for kind in ROUTERS {
        wait_route(&topo, kind, v4_more);
        wait_gone(&topo, kind, v6);
        assert!(
            !rib(&topo, kind, v4).unwrap_or_default().is_empty(),
            "{kind}"
        );
    }
    assert_no_reset(&node, &topo, &since, &before);

    // BFD added to the running sessions (the routers have it configured for the node all along):
    // the BFD sessions come up, BGP stays.
    knobs.bfd = Some("fast");
    cfg = config(&manifests(&topo, &knobs));
    assert_eq!(
        node.apply(&cfg, &routes, &no_passwords),
        Vec::<String>::new()
    );
    wait_bfd_up(&node);
    for kind in [RouterKind::Bird, RouterKind::Frr] {
        netns::wait_for(&format!("{kind}: BFD Up with node 1"), SESSION_UP, || {
            bfd_lab::router_bfd_up(&topo, kind).ok()?.then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_no_reset(&node, &topo, &since, &before);

    // A new BFD profile is polled through (RFC 5880 §6.8.3); BGP stays.
    knobs.bfd = Some("slow");
    cfg = config(&manifests(&topo, &knobs));
    assert_eq!(
        node.apply(&cfg, &routes, &no_passwords),
        Vec::<String>::new()
    );
    netns::wait_for("FRR sees 300 ms from node 1", SESSION_UP, || {
        (bfd_lab::frr_remote_intervals(&topo).ok()? == (300, 300)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", bfd_lab::frr_remote_intervals(&topo)));
    // A few slow intervals for anything that would reset to show.
    std::thread::sleep(Duration::from_secs(2));
    assert_no_reset(&node, &topo, &since, &before);
    for kind in [RouterKind::Bird, RouterKind::Frr] {
        assert_eq!(bfd_lab::router_bfd_up(&topo, kind), Ok(true), "{kind} BFD");
    }

    // The hold time is fixed at OPEN: that session (only) is reset and comes back with its routes.
    knobs.frr_v4_hold = "6s";
    cfg = config(&manifests(&topo, &knobs));
    assert_eq!(
        node.apply(&cfg, &routes, &no_passwords),
        Vec::<String>::new()
    );
    netns::wait_for("FRR re-established the IPv4 session", SESSION_UP, || {
        (frr_connections_established(&topo, node_ip(true)) > before.frr.0).then_some(())
    })
    .expect("hold time change resets the session");
    let after = wait_established(&node, &all_peers(true));
    assert_ne!(after["frr-v4"], since["frr-v4"], "frr-v4 was not reset");
    for peer in all_peers(true).iter().filter(|p| *p != "frr-v4") {
        assert_eq!(after[peer], since[peer], "{peer} was reset");
    }
    assert_eq!(
        frr_connections_established(&topo, node_ip(false)),
        before.frr.1
    );
    wait_route(&topo, RouterKind::Frr, v4_more);

    // BGPPeers removed: their sessions close and GoBGP drops the routes.
    knobs.gobgp = false;
    cfg = config(&manifests(&topo, &knobs));
    routes = desired_bgp(&cfg, &ips(&[v4, v4_more]));
    assert_eq!(
        node.apply(&cfg, &routes, &no_passwords),
        Vec::<String>::new()
    );
    wait_sessions_down(&topo, RouterKind::Gobgp, &[node_ip(true), node_ip(false)]);
    wait_gone(&topo, RouterKind::Gobgp, v4);
    let (bgp, _) = node.status();
    let listed: Vec<&str> = bgp.iter().map(|s| s.peer.as_str()).collect();
    assert_eq!(listed, all_peers(false));

    node.shutdown();
    wait_sessions_down(&topo, RouterKind::Frr, &[node_ip(true), node_ip(false)]);
}

#[test]
fn peer_without_its_password_secret_is_not_started_until_the_password_is_there() {
    let password = "lab-s3cret";
    let topo = topology(&[RouterKind::Frr], false, Some(password));
    let secret = SecretRef {
        namespace: "ferrolb".into(),
        name: "frr-md5".into(),
    };
    let extra = "  holdTime: 9s\n  passwordSecret:\n    namespace: ferrolb\n    name: frr-md5\n";
    let address = router_address(RouterKind::Frr, true);
    let yaml = format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: lb\nspec:\n  \
         addresses: [\"{}\"]\n---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\n\
         metadata:\n  name: lb\nspec:\n  ipAddressPools: [lb]\n{}",
        plan::BGP_POOL_V4,
        peer_yaml("frr-v4", address, Some(asn(&topo, RouterKind::Frr)), extra)
    );
    let cfg = config(&yaml);
    let v4 = prefix("203.0.113.10/32");
    let routes = desired_bgp(&cfg, &[v4.addr()]);
    assert_eq!(
        PeerSet::referenced_secrets(&cfg, &routes),
        BTreeSet::from([secret.clone()])
    );
    let mut node = NodePeerSet::start(&topo);

    let errors = node.apply(&cfg, &routes, &BTreeMap::new());
    assert_eq!(
        errors,
        vec![
            "BGPPeer frr-v4: spec.passwordSecret: Secret ferrolb/frr-md5 is missing or has no key \
             `password`; not started without its password"
        ]
    );
    let session = node.session("frr-v4").expect("listed");
    assert_eq!(session.state, BgpState::Idle);
    assert_eq!(session.last_error.as_deref(), Some(errors[0].as_str()));

    let passwords = BTreeMap::from([(secret, password.to_owned())]);
    assert_eq!(node.apply(&cfg, &routes, &passwords), Vec::<String>::new());
    wait_established(&node, &["frr-v4".to_owned()]);
    wait_route(&topo, RouterKind::Frr, v4);
    node.shutdown();
}
