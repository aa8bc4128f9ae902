//! The lab topology on real namespaces (run as root). Each test builds its own topology with its own
//! run prefix, so the tests run in parallel threads; the topology's Drop removes everything even
//! when an assertion fails.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_lab::capture::FrameKind;
use ferrolb_lab::netns::{self, NetNs};
use ferrolb_lab::routers::{Family, RouterKind};
use ferrolb_lab::topology::{self, Client, Topology, TopologyOptions, plan};

fn options(nodes: usize, routers: &[RouterKind]) -> TopologyOptions {
    TopologyOptions {
        nodes,
        routers: routers.to_vec(),
        backend: Some(PathBuf::from(env!("CARGO_BIN_EXE_lab-backend"))),
        ..TopologyOptions::default()
    }
}

fn names_with_prefix(prefix: &str) -> Vec<String> {
    netns::list_namespaces()
        .expect("ip netns list")
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn destroy_leaves_no_namespace_process_or_run_dir() {
    let mut topo = Topology::up(options(2, &RouterKind::ALL)).expect("topology up");
    let prefix = topo.prefix().to_string();
    let mut pids: Vec<u32> = topo.routers().iter().flat_map(|r| r.pids()).collect();
    for ns in names_with_prefix(&prefix) {
        pids.extend(NetNs::adopt(&ns).pids().expect("pids"));
    }
    // BIRD x2, zebra+bfdd+bgpd, gobgpd, two backends at least.
    assert!(pids.len() >= 8, "processes found: {pids:?}");
    assert!(pids.iter().all(|&p| netns::pid_alive(p)));
    let frr_runtime = PathBuf::from("/var/run/frr").join(format!("{prefix}frr"));
    assert!(frr_runtime.exists());

    topo.destroy().expect("destroy");
    assert_eq!(names_with_prefix(&prefix), Vec::<String>::new());
    let alive: Vec<u32> = pids.into_iter().filter(|&p| netns::pid_alive(p)).collect();
    assert!(alive.is_empty(), "processes left: {alive:?}");
    assert!(
        !topo.dir().exists(),
        "run dir left: {}",
        topo.dir().display()
    );
    assert!(!frr_runtime.exists(), "FRR runtime dir left");
}

#[test]
fn l2_client_reaches_each_node_backend_over_ipv4_and_ipv6() {
    let topo = Topology::up(options(3, &[])).expect("topology up");
    for node in topo.nodes() {
        for url in [
            format!("http://{}:8080/", node.v4),
            format!("http://[{}]:8080/", node.v6),
        ] {
            let body = topo.curl(Client::L2, &url).expect("curl");
            assert_eq!(body.trim(), node.name, "{url}");
        }
    }
    // The kube-proxy stand-in: node 2 delivers TCP 80 of LoadBalancer addresses it does not own
    // to its backend. The client routes them via node 2 (what ARP/BGP will do later).
    let node = topo.node(2).expect("node 2");
    let cl2 = topo.client_ns(Client::L2).expect("client");
    for (lb, via) in [
        ("203.0.113.7", node.v4.to_string()),
        ("192.0.2.200", node.v4.to_string()),
        ("2001:db8:3::7", node.v6.to_string()),
    ] {
        let host = if lb.contains(':') {
            format!("[{lb}]")
        } else {
            lb.to_owned()
        };
        let prefix = if lb.contains(':') { "/128" } else { "/32" };
        cl2.add_route(&format!("{lb}{prefix}"), &via)
            .expect("route to LB via node 2");
        let body = topo
            .curl(Client::L2, &format!("http://{host}/"))
            .expect("DNAT to backend");
        assert_eq!(body.trim(), node.name, "{lb}");
    }
    let own = node.ns.ip(&["-j", "addr", "show"]).expect("addresses");
    assert!(!own.contains("203.0.113.7") && !own.contains("192.0.2.200"));
}

#[test]
fn routers_are_up_and_exchange_their_test_prefixes() {
    let topo = Topology::up(options(2, &RouterKind::ALL)).expect("topology up");
    topo.wait_routers_converged(Duration::from_secs(30))
        .expect("routers converge");
    for router in topo.routers() {
        let mut routes = router.routes(Family::Ipv4).expect("ipv4 rib");
        routes.extend(router.routes(Family::Ipv6).expect("ipv6 rib"));
        for other in topo.routers().iter().filter(|o| o.kind() != router.kind()) {
            let (v4, v6) = other.config().announce;
            for prefix in [v4, v6] {
                let route = routes
                    .iter()
                    .find(|r| r.prefix == prefix && r.best)
                    .unwrap_or_else(|| panic!("{} lacks {prefix}: {routes:?}", router.kind()));
                assert!(!route.next_hops.is_empty(), "{prefix} has a next hop");
                assert_eq!(
                    route.as_path.last().copied(),
                    Some(other.config().options.asn),
                    "{prefix} at {} originates in {}",
                    router.kind(),
                    other.kind()
                );
            }
        }
        let sessions = router.sessions().expect("sessions");
        let nodes = sessions
            .iter()
            .filter(|s| topo.nodes().iter().any(|n| s.peer == IpAddr::from(n.v4)))
            .count();
        assert_eq!(nodes, 2, "{} is configured for every node", router.kind());
        assert!(sessions.iter().any(|s| s.established));
    }
    // The multihop router's prefix reaches BIRD through FRR: AS path FRR then multihop router.
    let bird = topo.router(RouterKind::Bird).expect("bird");
    let mh_prefix = topo
        .router(RouterKind::Multihop)
        .expect("mh")
        .config()
        .announce
        .0;
    let via_frr = bird
        .routes(Family::Ipv4)
        .expect("rib")
        .into_iter()
        .find(|r| r.prefix == mh_prefix)
        .expect("mh prefix at BIRD");
    assert_eq!(via_frr.as_path, vec![64503, 64505]);
}

#[test]
fn routed_client_and_multihop_router_reach_nodes_through_frr() {
    let topo =
        Topology::up(options(2, &[RouterKind::Frr, RouterKind::Multihop])).expect("topology up");
    for node in topo.nodes() {
        let body = topo
            .curl(Client::Routed, &format!("http://{}:8080/", node.v4))
            .expect("curl v4 via FRR");
        assert_eq!(body.trim(), node.name);
        let body = topo
            .curl(Client::Routed, &format!("http://[{}]:8080/", node.v6))
            .expect("curl v6 via FRR");
        assert_eq!(body.trim(), node.name);
    }
    let node = topo.node(1).expect("node 1");
    node.ns
        .exec(&["ping", "-c1", "-W2", &plan::TRANSIT_MH_V4.to_string()])
        .expect("node reaches the multihop router via FRR");
    node.ns
        .exec(&["ping", "-c1", "-W2", &plan::transit_mh_v6().to_string()])
        .expect("node reaches the multihop router via FRR (IPv6)");
    let trace = node
        .ns
        .ip(&["route", "get", &plan::TRANSIT_MH_V4.to_string()])
        .expect("route get");
    assert!(trace.contains("via 192.0.2.3"), "{trace}");
}

#[test]
fn neighbour_table_and_segment_capture_show_real_arp_and_ndp() {
    let topo = Topology::up(options(2, &[])).expect("topology up");
    let capture = topo.capture_segment("arp").expect("capture");
    let node = topo.node(1).expect("node 1");
    let cl2 = topo.client_ns(Client::L2).expect("client");
    cl2.exec(&["ping", "-c1", "-W2", &node.v4.to_string()])
        .expect("ping v4");
    cl2.exec(&["ping", "-c1", "-W2", &node.v6.to_string()])
        .expect("ping v6");
    let frames = capture.stop().expect("capture read back");

    let table = topology::neighbours(cl2).expect("neighbours");
    let entry = |ip: IpAddr| table.iter().find(|n| n.dst == ip);
    let v4 = entry(node.v4.into()).expect("client has node 1's IPv4 neighbour entry");
    let v6 = entry(node.v6.into()).expect("client has node 1's IPv6 neighbour entry");
    let mac = node
        .ns
        .exec(&[
            "cat",
            &format!("/sys/class/net/{}/address", node.segment_if),
        ])
        .expect("node MAC");
    assert_eq!(v4.lladdr.as_deref(), Some(mac.trim()));
    assert_eq!(v6.lladdr.as_deref(), Some(mac.trim()));

    let arp_reply = frames
        .iter()
        .any(|f| matches!(f.kind, FrameKind::Arp { op: 2, sender_ip, .. } if sender_ip == node.v4));
    assert!(arp_reply, "ARP reply from node 1 captured: {frames:?}");
    let na = frames.iter().any(|f| {
        matches!(f.kind, FrameKind::NeighborAdvertisement { target, solicited: true, .. } if target == node.v6)
    });
    assert!(na, "solicited NA from node 1 captured: {frames:?}");
}

#[test]
fn frozen_or_unplugged_node_is_unreachable_until_restored() {
    let topo = Topology::up(options(1, &[])).expect("topology up");
    let node = topo.node(1).expect("node 1");
    let url = format!("http://{}:8080/", node.v4);
    topo.curl(Client::L2, &url).expect("reachable first");
    topo.freeze_node(1).expect("freeze");
    assert!(
        topo.curl(Client::L2, &format!("http://[{}]:8080/", node.v6))
            .is_err()
    );
    topo.thaw_node(1).expect("thaw");
    topo.curl(Client::L2, &url).expect("reachable after thaw");
    topo.set_node_link(1, false).expect("link down");
    assert!(topo.curl(Client::L2, &url).is_err());
    topo.set_node_link(1, true).expect("link up");
    let body = netns::wait_for("node back", Duration::from_secs(5), || {
        topo.curl(Client::L2, &url).ok()
    })
    .expect("reachable after link up");
    assert_eq!(body.trim(), node.name);
}

#[test]
fn md5_and_bfd_options_reach_the_running_routers() {
    let mut opts = options(1, &[RouterKind::Bird, RouterKind::Frr, RouterKind::Gobgp]);
    for r in [&mut opts.bird, &mut opts.frr, &mut opts.gobgp] {
        r.password = Some("lab-secret".into());
        r.bfd = true;
    }
    // iBGP towards the nodes on BIRD: the same AS as the nodes.
    opts.bird.asn = opts.node_asn;
    let topo = Topology::up(opts).expect("topology up");
    // Sessions between routers carry neither option and still come up.
    topo.wait_routers_converged(Duration::from_secs(30))
        .expect("routers converge");
    let node = topo.node(1).expect("node 1");
    for kind in [RouterKind::Bird, RouterKind::Frr] {
        let router = topo.router(kind).expect("router");
        // The routers track a BFD session per node session (down until a speaker answers).
        let bfd = netns::wait_for("BFD sessions", Duration::from_secs(10), || {
            router
                .bfd_sessions()
                .ok()
                .filter(|s| s.iter().any(|b| b.peer == IpAddr::from(node.v4)))
        })
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(
            bfd.iter().all(|b| !b.up),
            "{kind}: no node runs BFD yet: {bfd:?}"
        );
    }
    let bird_conf =
        std::fs::read_to_string(topo.dir().join("bird/bird.conf")).expect("bird config");
    assert!(bird_conf.contains("password \"lab-secret\";") && bird_conf.contains("bfd on;"));
    assert!(bird_conf.contains("local 192.0.2.2 as 64500;\n  neighbor 192.0.2.11 as 64500;"));
    let gobgp = std::fs::read_to_string(topo.dir().join("gobgp/gobgpd.toml")).expect("gobgp");
    assert!(gobgp.contains("auth-password = \"lab-secret\""));
    assert!(
        topo.router(RouterKind::Gobgp)
            .expect("gobgp")
            .bfd_sessions()
            .is_err(),
        "GoBGP has no BFD"
    );
}

#[test]
fn detached_lab_keeps_running_until_swept_by_prefix() {
    let topo = Topology::up(options(1, &[RouterKind::Bird, RouterKind::Gobgp])).expect("up");
    let mut pids: Vec<u32> = topo.routers().iter().flat_map(|r| r.pids()).collect();
    let backend_ns = topo.node(1).expect("node 1").ns.clone();
    pids.extend(backend_ns.pids().expect("node pids"));
    let prefix = topo.detach().expect("detach");
    let glob = format!("{prefix}*");

    assert!(pids.iter().all(|&p| netns::pid_alive(p)), "still running");
    let run = netns::runs()
        .expect("runs")
        .into_iter()
        .find(|r| r.prefix == prefix)
        .expect("run listed");
    assert_eq!(run.owner, Some(netns::Owner::Detached));
    assert!(
        netns::sweep_stale(&glob)
            .expect("sweep stale")
            .namespaces
            .is_empty(),
        "a detached lab is not stale"
    );

    let report = netns::sweep(&glob).expect("sweep");
    assert!(report.namespaces.len() >= 6, "{report:?}");
    assert_eq!(names_with_prefix(prefix.as_str()), Vec::<String>::new());
    let alive: Vec<u32> = pids.into_iter().filter(|&p| netns::pid_alive(p)).collect();
    assert!(alive.is_empty(), "processes left: {alive:?}");
    assert!(!prefix.run_dir().exists());
}

/// A stand-in for ferrolb's speaker on node 1: BIRD announcing one LoadBalancer address per family
/// with a community and a large community, to every router, with TCP-MD5 and (where the router has
/// it) BFD. It proves the routers' node sessions, the readers on learned routes and the whole BGP
/// data path before the real speaker exists.
fn start_stand_in_speaker(topo: &Topology, password: &str) -> netns::Daemon {
    let node = topo.node(1).expect("node 1");
    let mut sessions = String::new();
    for router in topo.routers() {
        let kind = router.kind();
        let asn = router.config().options.asn;
        let (v4, v6): (IpAddr, IpAddr) = match plan::router_segment(kind) {
            Some((a, b)) => (a.into(), b.into()),
            None => (plan::TRANSIT_MH_V4.into(), plan::transit_mh_v6().into()),
        };
        let hops = if kind == RouterKind::Multihop {
            "multihop 4;"
        } else {
            "direct;"
        };
        let bfd = if kind == RouterKind::Gobgp {
            ""
        } else {
            "bfd on;"
        };
        for (family, addr, local) in [
            ("ipv4", v4, IpAddr::from(node.v4)),
            ("ipv6", v6, node.v6.into()),
        ] {
            sessions.push_str(&format!(
                "protocol bgp {kind}_{family} {{ local {local} as {node_asn}; neighbor {addr} as {asn}; {hops} {bfd}\n  password \"{password}\"; connect retry time 2; error wait time 1, 5;\n  {family} {{ import none; export all; }}; }}\n",
                node_asn = plan::NODE_ASN,
            ));
        }
    }
    let conf = format!(
        "router id {id};\nprotocol device {{ }}\n\
         protocol static lb4 {{ ipv4; route 203.0.113.10/32 blackhole {{ bgp_community.add((64500,100)); bgp_large_community.add((64500,1,2)); }}; }}\n\
         protocol static lb6 {{ ipv6; route 2001:db8:3::10/128 blackhole {{ bgp_community.add((64500,100)); bgp_large_community.add((64500,1,2)); }}; }}\n\
         protocol bfd {{ interface \"*\" {{ interval 100 ms; multiplier 3; }}; multihop {{ interval 100 ms; multiplier 3; }}; }}\n{sessions}",
        id = node.v4
    );
    let dir = topo.dir().join("stand-in");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("bird.conf"), conf).expect("config");
    let arg = |f: &str| dir.join(f).to_string_lossy().into_owned();
    node.ns
        .exec(&[
            "bird",
            "-c",
            &arg("bird.conf"),
            "-s",
            &arg("bird.ctl"),
            "-P",
            &arg("bird.pid"),
        ])
        .expect("stand-in speaker starts");
    netns::Daemon::from_pid_file(
        "stand-in speaker",
        &dir.join("bird.pid"),
        Duration::from_secs(5),
    )
    .expect("stand-in pid")
}

#[test]
fn every_router_peers_with_a_node_and_routes_its_loadbalancer_address() {
    let password = "lab-secret";
    let mut opts = options(1, &RouterKind::ALL);
    for r in [
        &mut opts.bird,
        &mut opts.frr,
        &mut opts.gobgp,
        &mut opts.multihop,
    ] {
        r.password = Some(password.into());
        r.bfd = true;
    }
    // BIRD shares the nodes' AS: its node sessions are iBGP, the others eBGP.
    opts.bird.asn = opts.node_asn;
    let topo = Topology::up(opts).expect("topology up");
    let speaker = start_stand_in_speaker(&topo, password);
    let node = topo.node(1).expect("node 1");
    let (lb4, lb6): (ipnet::IpNet, ipnet::IpNet) = (
        "203.0.113.10/32".parse().expect("net"),
        "2001:db8:3::10/128".parse().expect("net"),
    );

    for router in topo.routers() {
        let kind = router.kind();
        netns::wait_for(
            &format!("{kind} sessions with node 1"),
            Duration::from_secs(30),
            || {
                let sessions = router.sessions().ok()?;
                let up = |peer: IpAddr| sessions.iter().any(|s| s.peer == peer && s.established);
                (up(node.v4.into()) && up(node.v6.into())).then_some(())
            },
        )
        .expect("node sessions established (TCP-MD5 on both ends)");
        for (family, lb, hop) in [
            (Family::Ipv4, lb4, IpAddr::from(node.v4)),
            (Family::Ipv6, lb6, IpAddr::from(node.v6)),
        ] {
            let route =
                netns::wait_for(&format!("{lb} at {kind}"), Duration::from_secs(10), || {
                    router
                        .routes(family)
                        .ok()?
                        .into_iter()
                        .find(|r| r.prefix == lb && r.best)
                })
                .unwrap_or_else(|e| panic!("{e}: {kind} RIB {:?}", router.routes(family)));
            assert!(route.from_bgp, "{kind}: {route:?}");
            if kind == RouterKind::Bird {
                assert_eq!(route.as_path, Vec::<u32>::new(), "iBGP adds no AS");
                assert_eq!(route.local_pref, Some(100), "iBGP carries LOCAL_PREF");
            } else {
                assert_eq!(route.as_path, vec![plan::NODE_ASN], "{kind}");
            }
            assert_eq!(route.next_hops, vec![hop], "{kind}: next hop is the node");
            assert_eq!(route.communities, vec![(64500, 100)], "{kind}");
            assert_eq!(route.large_communities, vec![(64500, 1, 2)], "{kind}");
        }
    }
    for kind in [RouterKind::Bird, RouterKind::Frr, RouterKind::Multihop] {
        let router = topo.router(kind).expect("router");
        netns::wait_for(
            &format!("{kind} BFD up with node 1"),
            Duration::from_secs(10),
            || {
                let sessions = router.bfd_sessions().ok()?;
                sessions
                    .iter()
                    .any(|b| b.peer == IpAddr::from(node.v4) && b.up)
                    .then_some(())
            },
        )
        .expect("BFD session up");
    }

    // The data path: routed client -> router (kernel route from BGP) -> node -> DNAT -> backend.
    for via in [RouterKind::Frr, RouterKind::Bird] {
        topo.route_client_via(via).expect("switch gateway");
        for url in ["http://203.0.113.10/", "http://[2001:db8:3::10]/"] {
            let body = netns::wait_for(&format!("{url} via {via}"), Duration::from_secs(5), || {
                topo.curl(Client::Routed, url).ok()
            })
            .expect("LoadBalancer address reachable through the router");
            assert_eq!(body.trim(), node.name);
        }
    }
    speaker.stop();
}

#[test]
fn no_node_kernel_answers_arp_or_ndp_for_a_loadbalancer_address() {
    let topo = Topology::up(options(2, &[])).expect("topology up");
    let cl2 = topo.client_ns(Client::L2).expect("client");
    let seg_if = topo.prefix().name("seg").expect("name");
    // Control: a node address is answered, so silence below means something.
    let node = topo.node(1).expect("node 1");
    cl2.exec(&["arping", "-c1", "-w2", "-I", &seg_if, &node.v4.to_string()])
        .expect("node answers ARP for its own address");
    cl2.exec(&[
        "ndisc6",
        "-1",
        "-r1",
        "-w1000",
        &node.v6.to_string(),
        &seg_if,
    ])
    .expect("node answers NDP for its own address");
    for lb in ["192.0.2.200", "203.0.113.7"] {
        let answer = cl2.exec(&["arping", "-c2", "-w2", "-I", &seg_if, lb]);
        assert!(answer.is_err(), "ARP for {lb} answered: {answer:?}");
    }
    let answer = cl2.exec(&["ndisc6", "-1", "-r2", "-w500", "2001:db8:2::1:5", &seg_if]);
    assert!(
        answer.is_err(),
        "NDP for an L2 pool address answered: {answer:?}"
    );
}

#[test]
fn failed_start_removes_everything_it_built() {
    let prefix = netns::RunPrefix::random();
    let mut opts = options(2, &RouterKind::ALL);
    opts.prefix = Some(prefix.clone());
    // AS 0 is reserved (RFC 7607): the multihop BIRD, started last, refuses its config.
    opts.multihop.asn = 0;
    let err = Topology::up(opts).expect_err("start fails");
    assert!(
        err.to_string().contains("mh"),
        "error names the router: {err}"
    );
    assert_eq!(names_with_prefix(prefix.as_str()), Vec::<String>::new());
    assert!(!prefix.run_dir().exists());
    assert!(
        !PathBuf::from("/var/run/frr")
            .join(format!("{prefix}frr"))
            .exists()
    );
}
