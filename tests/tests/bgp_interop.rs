//! ferrolb's BGP driver against the lab's real routers (BIRD 2, FRR, GoBGP and the multihop BIRD
//! behind FRR), run as root. The driver runs inside node 1's network namespace: a thread enters it
//! with `setns(2)` and drives a current-thread tokio runtime there, so every socket the driver
//! opens belongs to the node. Each test builds its own topology (run-unique prefix); its Drop
//! removes everything even when an assertion fails.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, SystemTime};

use ferrolb_lab::netns;
use ferrolb_lab::routers::{RouterKind, RouterOptions};
use ferrolb_lab::topology::{Topology, TopologyOptions, plan};
use ferrolb_speaker::bgp::driver::{PeerHandle, PeerSpec, PeerStatus, Speaker};
use ferrolb_speaker::bgp::fsm::{GracefulRestartConfig, PeerAs, PeerConfig, State};
use ferrolb_speaker::bgp::packet::{CeaseSubcode, Community, Family, LargeCommunity};
use ferrolb_speaker::bgp::rib_out::{NextHops, RouteAttributes, Routes};
use ipnet::IpNet;

const SESSION_UP: Duration = Duration::from_secs(30);
const NODE: usize = 1;

mod node_runtime;
mod rib_wait;
use node_runtime::NodeRuntime;
use rib_wait::{
    RIB_CHANGE, assert_lb_routes, frr_connections_established, rib, wait_gone, wait_route,
    wait_sessions_down,
};

fn options(routers: &[RouterKind]) -> TopologyOptions {
    TopologyOptions {
        nodes: 1,
        routers: routers.to_vec(),
        backend: Some(PathBuf::from(env!("CARGO_BIN_EXE_lab-backend"))),
        ..TopologyOptions::default()
    }
}

/// Where a router listens for node 1, per transport family.
fn router_address(kind: RouterKind, v4: bool) -> IpAddr {
    match (plan::router_segment(kind), v4) {
        (Some((a, _)), true) => a.into(),
        (Some((_, b)), false) => b.into(),
        (None, true) => plan::TRANSIT_MH_V4.into(),
        (None, false) => plan::transit_mh_v6().into(),
    }
}

fn peer_spec(
    topo: &Topology,
    kind: RouterKind,
    v4: bool,
    password: Option<&str>,
    graceful_restart: Option<GracefulRestartConfig>,
) -> PeerSpec {
    let router = topo.router(kind).expect("router");
    let peer_as = router.config().options.asn;
    let address = router_address(kind, v4);
    PeerSpec {
        address: SocketAddr::new(address, 179),
        local_address: Some(if v4 {
            plan::node_v4(NODE).into()
        } else {
            plan::node_v6(NODE).into()
        }),
        session: PeerConfig {
            local_as: plan::NODE_ASN,
            peer_as: PeerAs::Fixed(peer_as),
            bgp_identifier: plan::node_v4(NODE),
            hold_time: 9,
            keepalive: None,
            connect_retry: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(4),
            passive: false,
            families: vec![if v4 {
                Family::IPV4_UNICAST
            } else {
                Family::IPV6_UNICAST
            }],
            graceful_restart,
            jitter_seed: u64::from(peer_as) * 2 + u64::from(v4),
        },
        next_hops: NextHops {
            ipv4: Some(plan::node_v4(NODE)),
            ipv6: Some(plan::node_v6(NODE)),
            ipv6_link_local: None,
        },
        password: password.map(str::to_owned),
        // The multihop router sits behind FRR: eBGP multihop needs more than the default TTL 1.
        ttl: (kind == RouterKind::Multihop).then_some(4),
        bfd: None,
    }
}

struct Session {
    kind: RouterKind,
    v4: bool,
    handle: PeerHandle,
}

impl Session {
    fn status(&self) -> PeerStatus {
        self.handle.status().borrow().clone()
    }
}

/// The node's speaker: listening on port 179 in the node, one session per router and family.
struct NodeSpeaker {
    sessions: Vec<Session>,
    speaker: Speaker,
    runtime: NodeRuntime,
}

impl NodeSpeaker {
    fn start(topo: &Topology, peers: &[(RouterKind, Option<&str>)]) -> Self {
        Self::start_with(topo, peers, None, &Routes::new())
    }

    /// Starts with graceful restart configured and `routes` announced from the first sync.
    fn start_with(
        topo: &Topology,
        peers: &[(RouterKind, Option<&str>)],
        graceful_restart: Option<GracefulRestartConfig>,
        routes: &Routes,
    ) -> Self {
        let node = topo.node(NODE).expect("node");
        let runtime = NodeRuntime::enter(node.ns.name());
        let listen = [
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 179),
            SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), 179),
        ];
        let speaker = runtime
            .run(async move { Speaker::listen(&listen) })
            .expect("listen in the node");
        let mut sessions = Vec::new();
        for &(kind, password) in peers {
            for v4 in [true, false] {
                let spec = peer_spec(topo, kind, v4, password, graceful_restart);
                let handle = runtime
                    .handle
                    .block_on(async { speaker.add_peer(spec, routes.clone()) });
                sessions.push(Session {
                    kind,
                    v4,
                    handle: handle.expect("add peer"),
                });
            }
        }
        NodeSpeaker {
            sessions,
            speaker,
            runtime,
        }
    }

    fn set_routes(&self, routes: &Routes) {
        for session in &self.sessions {
            session.handle.set_routes(routes.clone());
        }
    }

    fn wait_established(&self) -> Vec<SystemTime> {
        self.sessions
            .iter()
            .map(|s| {
                let what = format!("{} over {} Established", s.kind, family_name(s.v4));
                netns::wait_for(&what, SESSION_UP, || {
                    let status = s.status();
                    (status.state == State::Established).then_some(status.since)
                })
                .unwrap_or_else(|_| panic!("{what}: {:?}", s.status()))
            })
            .collect()
    }
}

fn family_name(v4: bool) -> &'static str {
    if v4 { "IPv4" } else { "IPv6" }
}

fn lb_routes(addresses: &[&str], local_pref: u32) -> Routes {
    let attributes = RouteAttributes {
        communities: BTreeSet::from([Community::new(64500, 100)]),
        large_communities: BTreeSet::from([LargeCommunity {
            global_admin: 64500,
            local_data_1: 1,
            local_data_2: 2,
        }]),
        local_pref: Some(local_pref),
    };
    addresses
        .iter()
        .map(|a| (a.parse::<IpNet>().expect("prefix"), attributes.clone()))
        .collect()
}

#[test]
fn routes_reach_bird_frr_gobgp_and_multihop_with_attributes_and_changes_never_reset_sessions() {
    let kinds = [
        RouterKind::Bird,
        RouterKind::Frr,
        RouterKind::Gobgp,
        RouterKind::Multihop,
    ];
    let mut options = options(&kinds);
    // BIRD shares the nodes' AS: its sessions are iBGP (LOCAL_PREF sent); the others eBGP.
    options.bird = RouterOptions {
        asn: plan::NODE_ASN,
        ..options.bird
    };
    let topo = Topology::up(options).expect("topology up");
    let peers: Vec<(RouterKind, Option<&str>)> = kinds.iter().map(|&k| (k, None)).collect();
    let node = NodeSpeaker::start(&topo, &peers);
    let up_since = node.wait_established();
    for session in &node.sessions {
        let status = session.status();
        assert!(status.end_of_rib_sent, "{status:?}");
        assert_eq!(status.prefixes_sent, 0);
    }

    let v4: IpNet = "203.0.113.10/32".parse().expect("v4");
    let v6: IpNet = "2001:db8:3::10/128".parse().expect("v6");
    node.set_routes(&lb_routes(&["203.0.113.10/32", "2001:db8:3::10/128"], 200));
    for kind in kinds {
        let routes = [
            (v4, IpAddr::from(plan::node_v4(NODE))),
            (v6, IpAddr::from(plan::node_v6(NODE))),
        ];
        assert_lb_routes(&topo, kind, &routes, 200);
    }
    let frr_v4 = frr_connections_established(&topo, plan::node_v4(NODE).into());

    // A second address and a new LOCAL_PREF: UPDATEs on the running sessions.
    let extra: IpNet = "203.0.113.11/32".parse().expect("v4");
    node.set_routes(&lb_routes(
        &["203.0.113.10/32", "203.0.113.11/32", "2001:db8:3::10/128"],
        300,
    ));
    for kind in kinds {
        wait_route(&topo, kind, extra);
    }
    netns::wait_for("BIRD sees LOCAL_PREF 300", RIB_CHANGE, || {
        rib(&topo, RouterKind::Bird, v4)?
            .iter()
            .any(|r| r.local_pref == Some(300))
            .then_some(())
    })
    .expect("LOCAL_PREF change");

    // Withdraw everything.
    node.set_routes(&Routes::new());
    for kind in kinds {
        for prefix in [v4, v6, extra] {
            wait_gone(&topo, kind, prefix);
        }
    }
    for (session, since) in node.sessions.iter().zip(&up_since) {
        let status = session.status();
        assert_eq!(status.state, State::Established, "{status:?}");
        assert_eq!(status.since, *since, "{} session was reset", session.kind);
        assert_eq!(status.prefixes_sent, 0);
    }
    assert_eq!(
        frr_connections_established(&topo, plan::node_v4(NODE).into()),
        frr_v4,
        "FRR saw the session re-established"
    );
    for session in &topo
        .router(RouterKind::Bird)
        .expect("bird")
        .sessions()
        .expect("sessions")
    {
        if session.peer == IpAddr::from(plan::node_v4(NODE)) {
            assert!(session.established, "{session:?}");
        }
    }

    // A clean stop sends Cease; the routers see the session go down.
    let NodeSpeaker {
        sessions,
        speaker: _speaker,
        runtime,
    } = node;
    for session in sessions {
        runtime.run(session.handle.stop(CeaseSubcode::AdministrativeShutdown));
    }
    wait_sessions_down(&topo, RouterKind::Frr, &[plan::node_v4(NODE).into()]);
}

#[test]
fn md5_password_establishes_and_a_wrong_one_keeps_the_session_down_with_a_clear_status() {
    let password = "lab-s3cret";
    let mut options = options(&[RouterKind::Frr, RouterKind::Gobgp]);
    options.frr.password = Some(password.to_owned());
    options.gobgp.password = Some(password.to_owned());
    let topo = Topology::up(options).expect("topology up");
    let node = NodeSpeaker::start(
        &topo,
        &[
            (RouterKind::Frr, Some(password)),
            (RouterKind::Gobgp, Some("not-the-password")),
        ],
    );
    let (right, wrong): (Vec<&Session>, Vec<&Session>) = node
        .sessions
        .iter()
        .partition(|s| s.kind == RouterKind::Frr);
    for session in &right {
        let what = format!("FRR over {} with TCP-MD5", family_name(session.v4));
        netns::wait_for(&what, SESSION_UP, || {
            (session.status().state == State::Established).then_some(())
        })
        .unwrap_or_else(|_| panic!("{what}: {:?}", session.status()));
    }
    node.set_routes(&lb_routes(&["203.0.113.10/32"], 100));
    wait_route(
        &topo,
        RouterKind::Frr,
        "203.0.113.10/32".parse().expect("v4"),
    );

    // The FRR sessions took seconds; GoBGP has had as long to fail. Give it a few connect rounds.
    for session in &wrong {
        let what = format!(
            "GoBGP over {} reports the failed TCP",
            family_name(session.v4)
        );
        let status = netns::wait_for(&what, SESSION_UP, || {
            let status = session.status();
            status
                .last_error
                .as_ref()
                .is_some_and(|e| e.to_string().contains("TCP-MD5"))
                .then_some(status)
        })
        .unwrap_or_else(|_| panic!("{what}: {:?}", session.status()));
        assert!(
            matches!(status.state, State::Connect | State::Active),
            "{status:?}"
        );
    }
    let gobgp = topo.router(RouterKind::Gobgp).expect("gobgp");
    assert!(
        gobgp
            .sessions()
            .expect("GoBGP sessions")
            .iter()
            .filter(|s| s.peer == IpAddr::from(plan::node_v4(NODE))
                || s.peer == IpAddr::from(plan::node_v6(NODE)))
            .all(|s| !s.established),
        "GoBGP established a session with a wrong password"
    );
    for session in &wrong {
        assert_ne!(session.status().state, State::Established);
    }
}

/// Whether FRR holds `prefix` from a node as stale (RFC 4724 §4.2); `None` when it has no path.
fn frr_stale(topo: &Topology, prefix: IpNet) -> Option<bool> {
    let frr = topo.router(RouterKind::Frr).ok()?;
    let ns = frr.namespace().name().to_owned();
    let command = format!("show bgp ipv4 unicast {prefix} json");
    let out = frr
        .namespace()
        .exec(&["vtysh", "-N", &ns, "-c", &command])
        .ok()?;
    let json: serde_json::Value = serde_json::from_str(&out).ok()?;
    let path = json["paths"].as_array()?.first()?.clone();
    Some(path["stale"].as_bool().unwrap_or(false))
}

#[test]
fn graceful_restart_keeps_routes_at_frr_as_stale_until_end_of_rib_after_the_restart() {
    let topo = Topology::up(options(&[RouterKind::Frr])).expect("topology up");
    let kept: IpNet = "203.0.113.10/32".parse().expect("v4");
    let dropped: IpNet = "203.0.113.11/32".parse().expect("v4");
    let graceful_restart = |restarted| {
        Some(GracefulRestartConfig {
            restart_time: 120,
            restarted,
        })
    };
    let peers = [(RouterKind::Frr, None)];
    let before = NodeSpeaker::start_with(
        &topo,
        &peers,
        graceful_restart(false),
        &lb_routes(&["203.0.113.10/32", "203.0.113.11/32"], 100),
    );
    before.wait_established();
    wait_route(&topo, RouterKind::Frr, kept);
    wait_route(&topo, RouterKind::Frr, dropped);
    assert_eq!(frr_stale(&topo, kept), Some(false));

    // The speaker dies: connections close without a NOTIFICATION.
    let NodeSpeaker {
        sessions,
        speaker,
        runtime,
    } = before;
    for session in sessions {
        runtime.run(session.handle.abort());
    }
    // The listening sockets go too, so the restarted speaker can bind port 179 again.
    drop(speaker);
    drop(runtime);
    for prefix in [kept, dropped] {
        netns::wait_for(&format!("{prefix} stale at FRR"), RIB_CHANGE, || {
            frr_stale(&topo, prefix)?.then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: stale = {:?}", frr_stale(&topo, prefix)));
    }

    // Back with one of the two routes: End-of-RIB ends the restart, the other route goes.
    let after = NodeSpeaker::start_with(
        &topo,
        &peers,
        graceful_restart(true),
        &lb_routes(&["203.0.113.10/32"], 100),
    );
    after.wait_established();
    wait_gone(&topo, RouterKind::Frr, dropped);
    netns::wait_for("fresh route at FRR", RIB_CHANGE, || {
        (!frr_stale(&topo, kept)?).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: stale = {:?}", frr_stale(&topo, kept)));
}

#[test]
fn multihop_peer_stays_down_with_the_single_hop_ttl_of_one() {
    let topo =
        Topology::up(options(&[RouterKind::Frr, RouterKind::Multihop])).expect("topology up");
    let node = topo.node(NODE).expect("node");
    let runtime = NodeRuntime::enter(node.ns.name());
    let mut multihop = peer_spec(&topo, RouterKind::Multihop, true, None, None);
    // eBGP without a configured TTL: 1, right for a directly connected peer (RFC 4271 §5.1.3),
    // so nothing we send survives FRR's forwarding to the router behind it.
    multihop.ttl = None;
    let frr = peer_spec(&topo, RouterKind::Frr, true, None, None);
    let (_speaker, to_multihop, to_frr) = runtime.run(async move {
        let speaker = Speaker::listen(&[SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 179)])
            .expect("listen in the node");
        let to_multihop = speaker.add_peer(multihop, Routes::new()).expect("multihop");
        let to_frr = speaker.add_peer(frr, Routes::new()).expect("frr");
        (speaker, to_multihop, to_frr)
    });
    netns::wait_for("FRR Established", SESSION_UP, || {
        (to_frr.status().borrow().state == State::Established).then_some(())
    })
    .expect("the directly connected peer comes up with TTL 1");
    // Several connect rounds of both sides (2 s for BIRD, 1-4 s for us).
    thread::sleep(Duration::from_secs(5));
    let status = to_multihop.status().borrow().clone();
    assert_ne!(status.state, State::Established, "{status:?}");
    let mh = topo.router(RouterKind::Multihop).expect("multihop");
    let node_v4 = IpAddr::from(plan::node_v4(NODE));
    assert!(
        mh.sessions()
            .expect("sessions")
            .iter()
            .filter(|s| s.peer == node_v4)
            .all(|s| !s.established),
        "the multihop router established a session through a TTL of 1"
    );
}
