//! ferrolb's speaker engine in node 1 with BGP sessions (IPv4) to the lab's BFD-capable routers,
//! optionally protected by BFD (RFC 5880/5881): shared by the BFD e2e test and the failover
//! benchmark. `mod node_runtime;` must be declared next to it.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU8;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ferrolb_lab::netns;
use ferrolb_lab::routers::{Family as RibFamily, RouterKind, RouterOptions};
use ferrolb_lab::topology::{Topology, TopologyOptions, plan};
use ferrolb_speaker::bfd::driver::DriverConfig;
use ferrolb_speaker::bgp::driver::{BfdProfile, PeerHandle, PeerSpec, PeerStatus, Speaker};
use ferrolb_speaker::bgp::fsm::{PeerAs, PeerConfig, State};
use ferrolb_speaker::bgp::packet::Family;
use ferrolb_speaker::bgp::rib_out::{NextHops, RouteAttributes, Routes};
use ipnet::IpNet;

use super::node_runtime::NodeRuntime;

pub const NODE: usize = 1;
/// The LoadBalancer prefix node 1 announces.
pub const PREFIX: &str = "203.0.113.10/32";

/// BFD at `interval_ms` both ways, multiplier 3 (the lab routers run 100 ms x 3).
pub fn profile(interval_ms: u64) -> BfdProfile {
    let multiplier = NonZeroU8::new(3).expect("nonzero");
    BfdProfile::symmetric(Duration::from_millis(interval_ms), multiplier)
}

/// One node and `routers`, with BFD on the routers' node sessions when `bfd`.
pub fn topology_options(routers: &[RouterKind], bfd: bool, backend: PathBuf) -> TopologyOptions {
    let defaults = TopologyOptions::default();
    let with_bfd = |options: RouterOptions| RouterOptions { bfd, ..options };
    TopologyOptions {
        nodes: 1,
        routers: routers.to_vec(),
        backend: Some(backend),
        bird: with_bfd(defaults.bird.clone()),
        frr: with_bfd(defaults.frr.clone()),
        ..defaults
    }
}

fn router_v4(kind: RouterKind) -> IpAddr {
    plan::router_segment(kind)
        .map(|(v4, _)| v4.into())
        .expect("a router on the segment")
}

fn peer_spec(topo: &Topology, kind: RouterKind, bfd: Option<BfdProfile>, hold: u16) -> PeerSpec {
    let router = topo.router(kind).expect("router");
    let peer_as = router.config().options.asn;
    PeerSpec {
        address: SocketAddr::new(router_v4(kind), 179),
        local_address: Some(plan::node_v4(NODE).into()),
        session: PeerConfig {
            local_as: plan::NODE_ASN,
            peer_as: PeerAs::Fixed(peer_as),
            bgp_identifier: plan::node_v4(NODE),
            hold_time: hold,
            keepalive: Some((hold / 3).max(1)),
            connect_retry: Duration::from_millis(500),
            connect_retry_max: Duration::from_secs(2),
            passive: false,
            families: vec![Family::IPV4_UNICAST],
            graceful_restart: None,
            jitter_seed: u64::from(peer_as),
        },
        next_hops: NextHops {
            ipv4: Some(plan::node_v4(NODE)),
            ipv6: None,
            ipv6_link_local: None,
        },
        password: None,
        ttl: None,
        bfd,
    }
}

/// Node 1's speaker: BGP (and BFD when given a profile) to each router, announcing [`PREFIX`].
/// Fields drop in order: sessions, then the speaker, then the runtime that drives them.
pub struct BfdNode {
    pub sessions: Vec<(RouterKind, PeerHandle)>,
    speaker: Speaker,
    runtime: NodeRuntime,
}

impl BfdNode {
    /// `hold` is the proposed BGP hold time in seconds (keepalive a third of it).
    pub fn start(
        topo: &Topology,
        routers: &[RouterKind],
        bfd: Option<BfdProfile>,
        hold: u16,
    ) -> Self {
        let node = topo.node(NODE).expect("node");
        let runtime = NodeRuntime::enter(node.ns.name());
        let listen = [SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 179)];
        let speaker = runtime
            .run(async move {
                let mut speaker = Speaker::listen(&listen)?;
                speaker.start_bfd(&DriverConfig::default())?;
                Ok::<_, ferrolb_speaker::bgp::driver::DriverError>(speaker)
            })
            .expect("BGP and BFD in the node");
        let prefix: IpNet = PREFIX.parse().expect("prefix");
        let routes = Routes::from([(prefix, RouteAttributes::default())]);
        let sessions = routers
            .iter()
            .map(|&kind| {
                let spec = peer_spec(topo, kind, bfd, hold);
                let handle = runtime
                    .handle
                    .block_on(async { speaker.add_peer(spec, routes.clone()) })
                    .expect("add peer");
                (kind, handle)
            })
            .collect();
        BfdNode {
            sessions,
            speaker,
            runtime,
        }
    }

    pub fn handle(&self, kind: RouterKind) -> &PeerHandle {
        self.sessions
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, h)| h)
            .expect("a session with the router")
    }

    pub fn status(&self, kind: RouterKind) -> PeerStatus {
        self.handle(kind).status().borrow().clone()
    }

    /// Waits until every session is Established (and, with `bfd`, its BFD session Up); returns
    /// when each entered Established.
    pub fn wait_up(&self, bfd: bool, timeout: Duration) -> Result<Vec<SystemTime>, String> {
        self.sessions
            .iter()
            .map(|(kind, handle)| {
                let what = format!("{kind} Established{}", if bfd { ", BFD Up" } else { "" });
                netns::wait_for(&what, timeout, || {
                    let status = handle.status().borrow().clone();
                    let bfd_up = status.bfd.as_ref().is_some_and(|b| b.state_name() == "Up");
                    (status.state == State::Established && (bfd_up || !bfd)).then_some(status.since)
                })
                .map_err(|e| format!("{e}: {:?}", handle.status().borrow()))
            })
            .collect()
    }
}

/// FRR's answer to `command` (a `… json` show command), parsed.
fn frr_json(topo: &Topology, command: &str) -> Result<serde_json::Value, String> {
    let frr = topo.router(RouterKind::Frr).map_err(|e| e.to_string())?;
    let ns = frr.namespace().name().to_owned();
    let out = frr
        .namespace()
        .exec(&["vtysh", "-N", &ns, "-c", command])
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&out).map_err(|e| format!("FRR JSON `{out}` of `{command}`: {e}"))
}

/// Whether `kind` holds node 1's [`PREFIX`] from BGP, with one query of the router: FRR's JSON
/// for that prefix, BIRD's IPv4 table.
pub fn router_has_prefix(topo: &Topology, kind: RouterKind) -> Result<bool, String> {
    let router = topo.router(kind).map_err(|e| e.to_string())?;
    match kind {
        RouterKind::Frr => {
            let json = frr_json(topo, &format!("show bgp ipv4 unicast {PREFIX} json"))?;
            Ok(json["paths"].as_array().is_some_and(|p| !p.is_empty()))
        }
        _ => {
            let prefix: IpNet = PREFIX.parse().expect("prefix");
            let routes = router.routes(RibFamily::Ipv4).map_err(|e| e.to_string())?;
            Ok(routes.iter().any(|r| r.prefix == prefix && r.from_bgp))
        }
    }
}

/// Whether `kind` reports its BFD session with node 1 Up.
pub fn router_bfd_up(topo: &Topology, kind: RouterKind) -> Result<bool, String> {
    let node: IpAddr = plan::node_v4(NODE).into();
    let sessions = topo
        .router(kind)
        .map_err(|e| e.to_string())?
        .bfd_sessions()
        .map_err(|e| e.to_string())?;
    Ok(sessions.iter().any(|s| s.peer == node && s.up))
}

/// FRR's count of sessions established with node 1: it grows on every reset.
pub fn frr_connections_established(topo: &Topology) -> Result<u64, String> {
    let node = plan::node_v4(NODE).to_string();
    let json = frr_json(topo, &format!("show bgp neighbors {node} json"))?;
    json[&node]["connectionsEstablished"]
        .as_u64()
        .ok_or_else(|| format!("no connectionsEstablished in {json}"))
}

/// The intervals (ms) FRR's bfdd says node 1 asked for: (remote receive, remote transmit).
pub fn frr_remote_intervals(topo: &Topology) -> Result<(u64, u64), String> {
    let node = plan::node_v4(NODE).to_string();
    let json = frr_json(topo, "show bfd peers json")?;
    let peer = json
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["peer"] == node.as_str()))
        .ok_or_else(|| format!("no BFD peer {node} in {json}"))?;
    match (
        peer["remote-receive-interval"].as_u64(),
        peer["remote-transmit-interval"].as_u64(),
    ) {
        (Some(rx), Some(tx)) => Ok((rx, tx)),
        _ => Err(format!("no remote intervals in {peer}")),
    }
}
