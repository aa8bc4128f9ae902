//! The lab's network: an L2 segment with N nodes, routers (BIRD, FRR, GoBGP, a multihop BIRD behind
//! FRR), an L2 client, a routed client, and a management network to the control-plane namespace —
//! every piece a network namespace named with the run's [`RunPrefix`].
//!
//! ```text
//!                      management 198.51.100.0/26            <p>cp (API server .1)
//!              +---------------------+---------------------+  bridge <p>mgbr
//!              |                     |                     |
//!          <p>n1 .11             <p>n2 .12    ...      <p>nN
//!   192.0.2.11 / ::11        192.0.2.12 / ::12        (backend :8080, DNAT :80 of LB ranges)
//!              |                     |                     |
//!   ===========+=========+===========+==========+==========+========  <p>seg: bridge <p>br
//!       |          |          |          |                            192.0.2.0/24, 2001:db8:2::/64
//!   <p>bird .2  <p>frr .3  <p>gobgp .4  <p>cl2 .100 (L2 client)
//!       |          |    \        |
//!       |          |     transit 198.51.100.128/26, 2001:db8:4::/64
//!       |          |       \
//!       |          |      <p>mh .130 / ::2  (BIRD, eBGP multihop target)
//!   ====+==========+=========+=====  upstream bridge <p>upbr in <p>clr
//!     .66        .67       .68        198.51.100.64/26, 2001:db8:5::/64
//!                 <p>clr .100 (routed client, default route via FRR)
//! ```
//!
//! Contract: [`Topology::up`] builds everything or, on the first failure, removes what it built;
//! [`Topology::destroy`] (also run on drop, so a panicking test cleans up) stops every process by pid
//! and deletes every namespace by name; afterwards nothing with the prefix remains. The kernel of a
//! node never owns a LoadBalancer address (DNAT instead), so only ferrolb's speaker answers ARP/NDP
//! for them. The address plan is in `docs/lab.md` and in [`plan`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::capture::{Capture, CaptureError};
use crate::netns::{self, NetNs, NetnsError, NsProcess, RunPrefix, wait_for};
use crate::routers::{
    Family, Peer, PeerRole, Router, RouterConfig, RouterError, RouterKind, RouterOptions,
};

/// The address plan: documentation ranges only (RFC 5737, RFC 3849), ASNs from RFC 5398.
pub mod plan {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use ipnet::IpNet;

    use crate::routers::RouterKind;

    /// First three groups of the segment, upstream and transit IPv6 networks.
    const SEG6: [u16; 3] = [0x2001, 0xdb8, 2];
    const UP6: [u16; 3] = [0x2001, 0xdb8, 5];
    const TR6: [u16; 3] = [0x2001, 0xdb8, 4];

    /// Prefix lengths of the segment.
    pub const SEGMENT_V4_LEN: u8 = 24;
    pub const SEGMENT_V6_LEN: u8 = 64;
    /// LoadBalancer pool reserved for layer-2 mode, inside the segment.
    pub const L2_POOL_V4: &str = "192.0.2.192/27";
    pub const L2_POOL_V6: &str = "2001:db8:2::1:0/112";
    /// LoadBalancer range reserved for BGP mode (announced by the speakers).
    pub const BGP_POOL_V4: &str = "203.0.113.0/24";
    pub const BGP_POOL_V6: &str = "2001:db8:3::/64";
    /// Management network between the nodes and the control-plane namespace.
    pub const MGMT_LEN: u8 = 26;
    pub const API_SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    /// Upstream network of the routed client.
    pub const UPSTREAM_V4: &str = "198.51.100.64/26";
    pub const UPSTREAM_V6: &str = "2001:db8:5::/64";
    /// Transit link FRR — multihop router.
    pub const TRANSIT_V4: &str = "198.51.100.128/26";
    pub const TRANSIT_V6: &str = "2001:db8:4::/64";
    /// The ASN nodes use unless the options say otherwise.
    pub const NODE_ASN: u32 = 64500;
    /// Most nodes the plan has room for (management .11–.60).
    pub const MAX_NODES: usize = 50;

    /// Node `i` (1-based) on the segment.
    pub fn node_v4(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 10 + i as u8)
    }

    /// Node `i` on the segment: `2001:db8:2::11` for node 1 (same digits as IPv4).
    pub fn node_v6(i: usize) -> Ipv6Addr {
        v6_with_digits(SEG6, 10 + i)
    }

    /// Node `i` on the management network.
    pub fn node_mgmt_v4(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, 10 + i as u8)
    }

    pub const CLIENT_L2_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    pub fn client_l2_v6() -> Ipv6Addr {
        v6_with_digits(SEG6, 100)
    }
    pub const CLIENT_ROUTED_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
    pub fn client_routed_v6() -> Ipv6Addr {
        v6_with_digits(UP6, 100)
    }

    /// Last octet (and IPv6 last group digits) of a segment router: BIRD 2, FRR 3, GoBGP 4.
    fn router_host(kind: RouterKind) -> usize {
        match kind {
            RouterKind::Bird => 2,
            RouterKind::Frr => 3,
            RouterKind::Gobgp => 4,
            RouterKind::Multihop => 5,
        }
    }

    /// A segment router's address on the segment (`None` for the multihop router).
    pub fn router_segment(kind: RouterKind) -> Option<(Ipv4Addr, Ipv6Addr)> {
        (kind != RouterKind::Multihop).then(|| {
            let h = router_host(kind);
            (Ipv4Addr::new(192, 0, 2, h as u8), v6_with_digits(SEG6, h))
        })
    }

    /// A segment router's address on the upstream network (.66/.67/.68, ::2/::3/::4).
    pub fn router_upstream(kind: RouterKind) -> Option<(Ipv4Addr, Ipv6Addr)> {
        (kind != RouterKind::Multihop).then(|| {
            let h = router_host(kind);
            (
                Ipv4Addr::new(198, 51, 100, 64 + h as u8),
                v6_with_digits(UP6, h),
            )
        })
    }

    /// FRR's and the multihop router's ends of the transit link.
    pub const TRANSIT_FRR_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 129);
    pub const TRANSIT_MH_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 130);
    pub fn transit_frr_v6() -> Ipv6Addr {
        v6_with_digits(TR6, 1)
    }
    pub fn transit_mh_v6() -> Ipv6Addr {
        v6_with_digits(TR6, 2)
    }

    /// The router's own address used as router id and for router-to-router sessions.
    pub fn router_addresses(kind: RouterKind) -> (Ipv4Addr, Ipv6Addr) {
        router_segment(kind).unwrap_or((TRANSIT_MH_V4, transit_mh_v6()))
    }

    /// Default AS of each router (RFC 5398 documentation ASNs).
    pub fn router_asn(kind: RouterKind) -> u32 {
        64500 + router_host(kind) as u32
    }

    /// Test prefixes a router originates: a /28 of 198.51.100.192/26 and a /64 of 2001:db8:6::/48.
    pub fn router_announce(kind: RouterKind) -> (IpNet, IpNet) {
        let h = router_host(kind);
        (
            IpNet::new_assert(
                IpAddr::V4(Ipv4Addr::new(198, 51, 100, (192 + 16 * (h - 2)) as u8)),
                28,
            ),
            IpNet::new_assert(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 6, h as u16, 0, 0, 0, 0)),
                64,
            ),
        )
    }

    /// The segment networks, for routes towards them.
    pub const SEGMENT_V4: IpNet =
        IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0)), SEGMENT_V4_LEN);
    pub const SEGMENT_V6: IpNet = IpNet::new_assert(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0)),
        SEGMENT_V6_LEN,
    );

    /// `base` with a last group that reads like the decimal `n` (node 1 is `::11` as it is `.11`).
    fn v6_with_digits(base: [u16; 3], n: usize) -> Ipv6Addr {
        let mut group = 0u16;
        for (place, digit) in n.to_string().bytes().rev().enumerate() {
            group |= u16::from(digit - b'0') << (4 * place);
        }
        Ipv6Addr::new(base[0], base[1], base[2], 0, 0, 0, 0, group)
    }
}

/// Failures of building, using or tearing down the topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(transparent)]
    Command(#[from] NetnsError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("invalid topology options: {detail}")]
    Options { detail: String },
    #[error("lab-backend binary not found at {path} (build it with `cargo build -p ferrolb-lab`)")]
    BackendMissing { path: PathBuf },
    #[error("topology has no {what}")]
    Missing { what: String },
    #[error("router {router} did not converge within {after:?}: {detail}")]
    NotConverged {
        router: String,
        after: Duration,
        detail: String,
    },
    #[error("`{command}` in {namespace} printed unexpected output: {detail}")]
    Parse {
        namespace: String,
        command: String,
        detail: String,
    },
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyOptions {
    /// Number of node namespaces (1..=50).
    pub nodes: usize,
    /// Routers to start; the multihop router needs FRR (it sits behind it).
    pub routers: Vec<RouterKind>,
    /// The AS the nodes' speakers use; a router with the same AS makes iBGP sessions.
    pub node_asn: u32,
    /// Per-router options, applied to the routers' sessions with nodes.
    pub bird: RouterOptions,
    pub frr: RouterOptions,
    pub gobgp: RouterOptions,
    pub multihop: RouterOptions,
    /// Run prefix; a fresh random one when `None`.
    pub prefix: Option<RunPrefix>,
    /// The `lab-backend` binary; found next to the running executable when `None`.
    pub backend: Option<PathBuf>,
}

impl Default for TopologyOptions {
    fn default() -> Self {
        let options = |kind| RouterOptions {
            asn: plan::router_asn(kind),
            password: None,
            bfd: false,
        };
        Self {
            nodes: 3,
            routers: RouterKind::ALL.to_vec(),
            node_asn: plan::NODE_ASN,
            bird: options(RouterKind::Bird),
            frr: options(RouterKind::Frr),
            gobgp: options(RouterKind::Gobgp),
            multihop: options(RouterKind::Multihop),
            prefix: None,
            backend: None,
        }
    }
}

impl TopologyOptions {
    pub fn router_options(&self, kind: RouterKind) -> &RouterOptions {
        match kind {
            RouterKind::Bird => &self.bird,
            RouterKind::Frr => &self.frr,
            RouterKind::Gobgp => &self.gobgp,
            RouterKind::Multihop => &self.multihop,
        }
    }
}

/// The `lab-backend` binary next to the running executable (or one directory up, where cargo puts
/// bins relative to test executables in `deps/`).
pub fn default_backend_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let beside = dir.join("lab-backend");
    if beside.exists() {
        return beside;
    }
    dir.parent()
        .map(|up| up.join("lab-backend"))
        .filter(|p| p.exists())
        .unwrap_or(beside)
}

/// One node namespace.
#[derive(Debug)]
pub struct Node {
    /// 1-based index.
    pub index: usize,
    /// The Kubernetes Node name (`node-1`, …), also what its backend answers.
    pub name: String,
    pub ns: NetNs,
    /// Interface on the segment (inside the node namespace).
    pub segment_if: String,
    /// Interface on the management network (inside the node namespace).
    pub mgmt_if: String,
    /// The segment bridge's port for this node (inside the segment namespace).
    pub segment_port: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    pub mgmt_v4: Ipv4Addr,
    backend: Option<NsProcess>,
}

/// The two clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// On the segment: reaches L2-mode LoadBalancer IPs via ARP/NDP.
    L2,
    /// Behind the routers: reaches BGP-mode LoadBalancer IPs via its gateway router.
    Routed,
}

/// One entry of a namespace's neighbour table (`ip -j neigh`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Neighbour {
    pub dst: IpAddr,
    pub dev: String,
    #[serde(default)]
    pub lladdr: Option<String>,
    #[serde(default)]
    pub state: Vec<String>,
}

/// A built lab network. Dropping it destroys it.
#[derive(Debug)]
pub struct Topology {
    prefix: RunPrefix,
    dir: PathBuf,
    /// Every namespace, in creation order (deleted in reverse).
    namespaces: Vec<NetNs>,
    segment: Option<NetNs>,
    bridge: String,
    control_plane: Option<NetNs>,
    nodes: Vec<Node>,
    routers: Vec<Router>,
    client_l2: Option<NetNs>,
    client_routed: Option<NetNs>,
    /// True once destroyed or detached: drop does nothing then.
    done: bool,
}

impl Topology {
    /// Builds the whole topology; on failure, removes whatever was built and returns the error.
    pub fn up(options: TopologyOptions) -> Result<Self, TopologyError> {
        validate(&options)?;
        let backend = options.backend.clone().unwrap_or_else(default_backend_path);
        if !backend.exists() {
            return Err(TopologyError::BackendMissing { path: backend });
        }
        let prefix = options.prefix.clone().unwrap_or_else(RunPrefix::random);
        let dir = prefix.claim()?;
        let mut topo = Self {
            bridge: prefix.name("br")?,
            prefix,
            dir,
            namespaces: Vec::new(),
            segment: None,
            control_plane: None,
            nodes: Vec::new(),
            routers: Vec::new(),
            client_l2: None,
            client_routed: None,
            done: false,
        };
        // Any `?` below drops `topo`, whose Drop removes what exists so far.
        topo.build(&options, &backend)?;
        Ok(topo)
    }

    /// Creates a namespace of this run. IPv6 duplicate address detection is off in every lab
    /// namespace (the plan never assigns a duplicate): with it, link-local addresses stay tentative
    /// for a while after a link comes up, and FRR and BIRD hold back IPv6 sessions until then.
    fn create_ns(&mut self, role: &str) -> Result<NetNs, TopologyError> {
        let ns = NetNs::create(&self.prefix.name(role)?)?;
        self.namespaces.push(ns.clone());
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
        Ok(ns)
    }

    fn name(&self, role: &str) -> Result<String, TopologyError> {
        Ok(self.prefix.name(role)?)
    }

    fn build(&mut self, options: &TopologyOptions, backend: &Path) -> Result<(), TopologyError> {
        let seg = self.create_ns("seg")?;
        seg.add_bridge(&self.bridge)?;
        seg.set_up(&self.bridge)?;
        self.segment = Some(seg.clone());

        let cp = self.create_ns("cp")?;
        let mgmt_bridge = self.name("mgbr")?;
        cp.add_bridge(&mgmt_bridge)?;
        cp.add_addr(
            &mgmt_bridge,
            &format!("{}/{}", plan::API_SERVER, plan::MGMT_LEN),
        )?;
        cp.set_up(&mgmt_bridge)?;
        self.control_plane = Some(cp.clone());

        let has = |k| options.routers.contains(&k);
        // The nodes' and clients' way to the networks behind the routers.
        let gateway = [RouterKind::Frr, RouterKind::Bird, RouterKind::Gobgp]
            .into_iter()
            .find(|&k| has(k));

        for i in 1..=options.nodes {
            self.add_node(i, &cp, &mgmt_bridge, gateway, backend)?;
        }

        // L2 client on the segment; `arp_accept` stays at its default 0 on purpose (LAB-NOTES).
        let cl2 = self.create_ns("cl2")?;
        self.attach_to_segment(
            &cl2,
            "cl2",
            plan::CLIENT_L2_V4.into(),
            plan::client_l2_v6().into(),
        )?;
        self.client_l2 = Some(cl2);

        // Routed client with the upstream bridge the segment routers attach to.
        let clr = match gateway {
            Some(_) => {
                let clr = self.create_ns("clr")?;
                let up = self.name("upbr")?;
                clr.add_bridge(&up)?;
                clr.add_addr(&up, &format!("{}/26", plan::CLIENT_ROUTED_V4))?;
                clr.add_addr(&up, &format!("{}/64", plan::client_routed_v6()))?;
                clr.set_up(&up)?;
                self.client_routed = Some(clr.clone());
                Some((clr, up))
            }
            None => None,
        };

        let mut configs = Vec::new();
        // RouterKind::ALL puts FRR before the multihop router, which links to it.
        let mut frr_ns: Option<NetNs> = None;
        for kind in RouterKind::ALL.into_iter().filter(|&k| has(k)) {
            let ns = self.create_ns(kind.role())?;
            if kind == RouterKind::Frr {
                frr_ns = Some(ns.clone());
            }
            ns.sysctl("net.ipv4.ip_forward", "1")?;
            ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
            if let Some((v4, v6)) = plan::router_segment(kind) {
                self.attach_to_segment(&ns, kind.role(), v4.into(), v6.into())?;
            }
            if let (Some((clr, up)), Some((v4, v6))) = (&clr, plan::router_upstream(kind)) {
                let (inside, port) = (self.name("up")?, self.name(kind.role())?);
                ns.add_veth(&inside, clr, &port)?;
                clr.set_master(&port, up)?;
                clr.set_up(&port)?;
                ns.add_addr(&inside, &format!("{v4}/26"))?;
                ns.add_addr(&inside, &format!("{v6}/64"))?;
                ns.set_up(&inside)?;
            }
            if kind == RouterKind::Multihop {
                let frr = frr_ns.clone().ok_or_else(|| TopologyError::Missing {
                    what: "FRR namespace for the transit link".into(),
                })?;
                let tr = self.name("tr")?;
                ns.add_veth(&tr, &frr, &tr)?;
                frr.add_addr(&tr, &format!("{}/26", plan::TRANSIT_FRR_V4))?;
                frr.add_addr(&tr, &format!("{}/64", plan::transit_frr_v6()))?;
                frr.set_up(&tr)?;
                ns.add_addr(&tr, &format!("{}/26", plan::TRANSIT_MH_V4))?;
                ns.add_addr(&tr, &format!("{}/64", plan::transit_mh_v6()))?;
                ns.set_up(&tr)?;
                ns.add_route("default", &plan::TRANSIT_FRR_V4.to_string())?;
                ns.add_route("default", &plan::transit_frr_v6().to_string())?;
            }
            configs.push((router_config(options, kind, &ns), ns));
        }
        if let (Some((clr, _)), Some(gw)) = (&clr, gateway)
            && let Some((v4, v6)) = plan::router_upstream(gw)
        {
            clr.add_route("default", &v4.to_string())?;
            clr.add_route("default", &v6.to_string())?;
        }
        // FRR (the hub) starts after BIRD and GoBGP and before the multihop router, so each
        // first connection attempt between routers finds its peer listening.
        let start_rank = |kind: RouterKind| match kind {
            RouterKind::Bird | RouterKind::Gobgp => 0,
            RouterKind::Frr => 1,
            RouterKind::Multihop => 2,
        };
        configs.sort_by_key(|(config, _)| start_rank(config.kind));
        for (config, ns) in configs {
            let dir = self.dir.join(config.kind.role());
            self.routers.push(Router::start(config, ns, &dir)?);
        }
        for node in &self.nodes {
            let url = format!("http://{}:8080/", node.v4);
            wait_for(
                &format!("backend of {} to listen", node.name),
                Duration::from_secs(5),
                || curl(&node.ns, &url).ok(),
            )?;
        }
        Ok(())
    }

    /// Veth from `ns` (`<p>seg` inside) to the segment bridge (`<p><port_role>` port).
    fn attach_to_segment(
        &self,
        ns: &NetNs,
        port_role: &str,
        v4: IpAddr,
        v6: IpAddr,
    ) -> Result<(), TopologyError> {
        let seg = self.segment_ns()?;
        let (inside, port) = (self.name("seg")?, self.name(port_role)?);
        ns.add_veth(&inside, seg, &port)?;
        seg.set_master(&port, &self.bridge)?;
        seg.set_up(&port)?;
        ns.add_addr(&inside, &format!("{v4}/{}", plan::SEGMENT_V4_LEN))?;
        ns.add_addr(&inside, &format!("{v6}/{}", plan::SEGMENT_V6_LEN))?;
        ns.set_up(&inside)?;
        Ok(())
    }

    fn add_node(
        &mut self,
        i: usize,
        cp: &NetNs,
        mgmt_bridge: &str,
        gateway: Option<RouterKind>,
        backend: &Path,
    ) -> Result<(), TopologyError> {
        let role = format!("n{i}");
        let ns = self.create_ns(&role)?;
        // Keep IPv6 addresses when a test takes the link down (the default flushes them).
        ns.sysctl("net.ipv6.conf.all.keep_addr_on_down", "1")?;
        ns.sysctl("net.ipv6.conf.default.keep_addr_on_down", "1")?;
        let (v4, v6) = (plan::node_v4(i), plan::node_v6(i));
        self.attach_to_segment(&ns, &role, v4.into(), v6.into())?;
        let (mgmt_if, port) = (self.name("mgmt")?, self.name(&role)?);
        ns.add_veth(&mgmt_if, cp, &port)?;
        cp.set_master(&port, mgmt_bridge)?;
        cp.set_up(&port)?;
        let mgmt_v4 = plan::node_mgmt_v4(i);
        ns.add_addr(&mgmt_if, &format!("{mgmt_v4}/{}", plan::MGMT_LEN))?;
        ns.set_up(&mgmt_if)?;
        if let Some((gw4, gw6)) = gateway.and_then(plan::router_segment) {
            for net in [plan::UPSTREAM_V4, plan::TRANSIT_V4] {
                ns.add_route(net, &gw4.to_string())?;
            }
            for net in [plan::UPSTREAM_V6, plan::TRANSIT_V6] {
                ns.add_route(net, &gw6.to_string())?;
            }
        }
        ns.nft_apply(
            &kube_proxy_ruleset(v4, v6),
            &self.dir.join(format!("{role}.nft")),
        )?;
        let name = format!("node-{i}");
        let process = ns.spawn(
            &[
                backend.to_string_lossy().as_ref(),
                "--node",
                &name,
                "--listen",
                &format!("{v4}:8080"),
                "--listen",
                &format!("[{v6}]:8080"),
            ],
            &self.dir.join(format!("{role}-backend.log")),
        )?;
        self.nodes.push(Node {
            index: i,
            name,
            ns,
            segment_if: self.name("seg")?,
            mgmt_if,
            segment_port: self.name(&role)?,
            v4,
            v6,
            mgmt_v4,
            backend: Some(process),
        });
        Ok(())
    }

    pub fn prefix(&self) -> &RunPrefix {
        &self.prefix
    }

    /// The run directory: router configs, logs, sockets, captures.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment_ns(&self) -> Result<&NetNs, TopologyError> {
        self.segment.as_ref().ok_or_else(|| TopologyError::Missing {
            what: "segment namespace".into(),
        })
    }

    /// The segment bridge's name (inside [`Topology::segment_ns`]).
    pub fn segment_bridge(&self) -> &str {
        &self.bridge
    }

    /// The namespace the control plane (etcd, kube-apiserver) runs in.
    pub fn control_plane_ns(&self) -> Result<&NetNs, TopologyError> {
        self.control_plane
            .as_ref()
            .ok_or_else(|| TopologyError::Missing {
                what: "control-plane namespace".into(),
            })
    }

    /// The API server's address on the management network, reachable from every node.
    pub fn api_address(&self) -> Ipv4Addr {
        plan::API_SERVER
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node by 1-based index.
    pub fn node(&self, index: usize) -> Result<&Node, TopologyError> {
        self.nodes
            .iter()
            .find(|n| n.index == index)
            .ok_or_else(|| TopologyError::Missing {
                what: format!("node {index}"),
            })
    }

    /// Node by its Kubernetes Node name.
    pub fn node_named(&self, name: &str) -> Result<&Node, TopologyError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| TopologyError::Missing {
                what: format!("node named {name}"),
            })
    }

    pub fn routers(&self) -> &[Router] {
        &self.routers
    }

    pub fn router(&self, kind: RouterKind) -> Result<&Router, TopologyError> {
        self.routers
            .iter()
            .find(|r| r.kind() == kind)
            .ok_or_else(|| TopologyError::Missing {
                what: format!("{kind} router"),
            })
    }

    pub fn client_ns(&self, client: Client) -> Result<&NetNs, TopologyError> {
        match client {
            Client::L2 => self.client_l2.as_ref(),
            Client::Routed => self.client_routed.as_ref(),
        }
        .ok_or_else(|| TopologyError::Missing {
            what: format!("{client:?} client"),
        })
    }

    /// `curl` from a client; returns the response body.
    pub fn curl(&self, client: Client, url: &str) -> Result<String, TopologyError> {
        Ok(curl(self.client_ns(client)?, url)?)
    }

    /// Points the routed client's default routes at another segment router.
    pub fn route_client_via(&self, kind: RouterKind) -> Result<(), TopologyError> {
        let clr = self.client_ns(Client::Routed)?;
        self.router(kind)?;
        let (v4, v6) = plan::router_upstream(kind).ok_or_else(|| TopologyError::Options {
            detail: format!("the {kind} router is not on the upstream network"),
        })?;
        clr.replace_route("default", &v4.to_string())?;
        clr.replace_route("default", &v6.to_string())?;
        Ok(())
    }

    /// Takes node `index`'s segment link down (`up = false`) or back up, at the bridge port: the
    /// node sees carrier loss and keeps its addresses and routes.
    pub fn set_node_link(&self, index: usize, up: bool) -> Result<(), TopologyError> {
        let port = &self.node(index)?.segment_port;
        let seg = self.segment_ns()?;
        if up {
            seg.set_up(port)?;
        } else {
            seg.set_down(port)?;
        }
        Ok(())
    }

    /// Freezes node `index` on the segment: every frame in and out of its segment interface is
    /// dropped at the netdev hooks (ingress and egress), which also catches raw-socket ARP/NDP,
    /// while the link itself stays up — a hung node, as its neighbours see it.
    pub fn freeze_node(&self, index: usize) -> Result<(), TopologyError> {
        let node = self.node(index)?;
        self.drop_frames(node, FREEZE_TABLE, &[&node.segment_if])
    }

    /// Undoes [`Topology::freeze_node`].
    pub fn thaw_node(&self, index: usize) -> Result<(), TopologyError> {
        let node = self.node(index)?;
        node.ns
            .exec(&["nft", "delete", "table", "netdev", FREEZE_TABLE])?;
        Ok(())
    }

    /// Cuts node `index` off entirely: as [`Topology::freeze_node`], on the segment *and* the
    /// management interface, so its speaker neither hears its peers nor reaches the API server
    /// while it keeps running and believing what it last knew.
    pub fn isolate_node(&self, index: usize) -> Result<(), TopologyError> {
        let node = self.node(index)?;
        self.drop_frames(node, ISOLATE_TABLE, &[&node.segment_if, &node.mgmt_if])
    }

    /// The name of the segment interface: the same in every namespace attached to the segment,
    /// the nodes', the routers' and the L2 client's.
    pub fn segment_interface(&self) -> Result<String, TopologyError> {
        self.name("seg")
    }

    /// True while node `index` is cut off by [`Topology::isolate_node`].
    pub fn is_isolated(&self, index: usize) -> Result<bool, TopologyError> {
        let tables = self.node(index)?.ns.exec(&["nft", "list", "tables"])?;
        Ok(tables.contains(ISOLATE_TABLE))
    }

    /// Undoes [`Topology::isolate_node`].
    pub fn reconnect_node(&self, index: usize) -> Result<(), TopologyError> {
        let node = self.node(index)?;
        node.ns
            .exec(&["nft", "delete", "table", "netdev", ISOLATE_TABLE])?;
        Ok(())
    }

    /// One netdev table `table` in the node's namespace whose ingress and egress chains drop every
    /// frame of each of `devices`.
    fn drop_frames(&self, node: &Node, table: &str, devices: &[&str]) -> Result<(), TopologyError> {
        let mut rules = format!("table netdev {table} {{\n");
        for (i, device) in devices.iter().enumerate() {
            for hook in ["ingress", "egress"] {
                rules.push_str(&format!(
                    "  chain {hook}{i} {{ type filter hook {hook} device \"{device}\" priority -500; policy drop; }}\n"
                ));
            }
        }
        rules.push_str("}\n");
        node.ns.nft_apply(
            &rules,
            &self.dir.join(format!("n{}-{table}.nft", node.index)),
        )?;
        Ok(())
    }

    /// Starts a packet capture (ARP and ICMPv6) on the segment bridge; `label` names the file.
    pub fn capture_segment(&self, label: &str) -> Result<Capture, TopologyError> {
        let file = self.dir.join(format!("capture-{label}.pcap"));
        Ok(Capture::start(self.segment_ns()?, &self.bridge, &file)?)
    }

    /// Waits until every router's sessions with the other routers are established and its RIB
    /// holds the other routers' test prefixes (both families).
    pub fn wait_routers_converged(&self, timeout: Duration) -> Result<(), TopologyError> {
        for router in &self.routers {
            let expected: Vec<IpNet> = self
                .routers
                .iter()
                .filter(|r| r.kind() != router.kind())
                .flat_map(|r| {
                    let (a, b) = r.config().announce;
                    [a, b]
                })
                .collect();
            let mut last = String::new();
            let ok = wait_for(
                router.config().name.as_str(),
                timeout,
                || match missing_routes(router, &expected) {
                    Ok(missing) if missing.is_empty() => Some(()),
                    Ok(missing) => {
                        last = format!("missing {missing:?}");
                        None
                    }
                    Err(e) => {
                        last = e.to_string();
                        None
                    }
                },
            );
            if ok.is_err() {
                return Err(TopologyError::NotConverged {
                    router: router.config().name.clone(),
                    after: timeout,
                    detail: last,
                });
            }
        }
        Ok(())
    }

    /// Stops every process and deletes every namespace and the run directory. Idempotent; keeps
    /// going past failures and returns the first one.
    pub fn destroy(&mut self) -> Result<(), TopologyError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        for node in &mut self.nodes {
            if let Some(mut backend) = node.backend.take() {
                backend.stop();
            }
        }
        for router in &mut self.routers {
            router.stop();
        }
        self.routers.clear();
        let mut first: Option<TopologyError> = None;
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = ns.delete() {
                first.get_or_insert(e.into());
            }
        }
        // Anything else left with this prefix (e.g. created by a caller in our namespaces' names).
        if let Err(e) = netns::sweep(&format!("{}*", self.prefix)) {
            first.get_or_insert(e.into());
        }
        first.map_or(Ok(()), Err)
    }

    /// Leaves the topology running (for `lab up`): the run is marked as owned by no process, so
    /// only an explicit `netns::sweep("<prefix>*")` (`lab down`) removes it.
    pub fn detach(mut self) -> Result<RunPrefix, TopologyError> {
        self.prefix.detach()?;
        self.done = true;
        for node in &mut self.nodes {
            if let Some(backend) = node.backend.take() {
                backend.detach();
            }
        }
        for router in self.routers.drain(..) {
            router.detach();
        }
        Ok(self.prefix.clone())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Errors cannot be returned from drop; `destroy` already tried every object.
        let _ = self.destroy();
    }
}

fn validate(options: &TopologyOptions) -> Result<(), TopologyError> {
    if options.nodes == 0 || options.nodes > plan::MAX_NODES {
        return Err(TopologyError::Options {
            detail: format!(
                "nodes = {}, the address plan has room for 1..={}",
                options.nodes,
                plan::MAX_NODES
            ),
        });
    }
    for kind in RouterKind::ALL {
        if let Some(password) = &options.router_options(kind).password {
            // The password is written into three config languages: keep it to characters that
            // need no quoting in any of them. RFC 2385 keys are at most 80 bytes.
            let plain =
                |c: char| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '#' | '!');
            if password.is_empty() || password.len() > 80 || !password.chars().all(plain) {
                return Err(TopologyError::Options {
                    detail: format!(
                        "{kind}.password must be 1-80 printable ASCII characters without quotes, \
                         backslash, `#` or `!`"
                    ),
                });
            }
        }
    }
    if options.routers.contains(&RouterKind::Multihop)
        && !options.routers.contains(&RouterKind::Frr)
    {
        return Err(TopologyError::Options {
            detail: "the multihop router sits behind FRR: add RouterKind::Frr".into(),
        });
    }
    Ok(())
}

/// nftables tables of [`Topology::freeze_node`] and [`Topology::isolate_node`].
const FREEZE_TABLE: &str = "lab_freeze";
const ISOLATE_TABLE: &str = "lab_isolate";

/// The stand-in for kube-proxy: TCP 80 to any LoadBalancer address goes to the node's backend.
fn kube_proxy_ruleset(v4: Ipv4Addr, v6: Ipv6Addr) -> String {
    format!(
        "table inet lab_kube_proxy {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    ip daddr {{ {l2v4}, {bgpv4} }} tcp dport 80 dnat ip to {v4}:8080\n    ip6 daddr {{ {l2v6}, {bgpv6} }} tcp dport 80 dnat ip6 to [{v6}]:8080\n  }}\n}}\n",
        l2v4 = plan::L2_POOL_V4,
        bgpv4 = plan::BGP_POOL_V4,
        l2v6 = plan::L2_POOL_V6,
        bgpv6 = plan::BGP_POOL_V6,
    )
}

/// Builds a router's config: sessions with every node (both families) and with the other routers.
fn router_config(options: &TopologyOptions, kind: RouterKind, ns: &NetNs) -> RouterConfig {
    let has = |k| options.routers.contains(&k);
    let own = plan::router_addresses(kind);
    let own = [IpAddr::from(own.0), IpAddr::from(own.1)];
    let mut peers = Vec::new();
    for i in 1..=options.nodes {
        for (family, address, local) in [
            ("v4", IpAddr::from(plan::node_v4(i)), own[0]),
            ("v6", plan::node_v6(i).into(), own[1]),
        ] {
            peers.push(Peer {
                name: format!("node{i}_{family}"),
                address,
                local,
                asn: options.node_asn,
                role: PeerRole::Node,
                multihop: kind == RouterKind::Multihop,
            });
        }
    }
    // FRR is the hub: it peers with every other router; the others peer with FRR only.
    let router_peers: Vec<RouterKind> = match kind {
        RouterKind::Frr => RouterKind::ALL
            .into_iter()
            .filter(|&k| k != RouterKind::Frr && has(k))
            .collect(),
        _ if has(RouterKind::Frr) => vec![RouterKind::Frr],
        _ => Vec::new(),
    };
    for other in router_peers {
        let addresses: (IpAddr, IpAddr) = match (kind, other) {
            (RouterKind::Frr, RouterKind::Multihop) => {
                (plan::TRANSIT_MH_V4.into(), plan::transit_mh_v6().into())
            }
            (RouterKind::Multihop, RouterKind::Frr) => {
                (plan::TRANSIT_FRR_V4.into(), plan::transit_frr_v6().into())
            }
            _ => {
                let (a, b) = plan::router_addresses(other);
                (a.into(), b.into())
            }
        };
        for (family, address, local) in [("v4", addresses.0, own[0]), ("v6", addresses.1, own[1])] {
            peers.push(Peer {
                name: format!("{}_{family}", other.role()),
                address,
                local,
                asn: options.router_options(other).asn,
                role: PeerRole::Router,
                multihop: false,
            });
        }
    }
    let reach = if kind == RouterKind::Multihop {
        vec![
            (plan::SEGMENT_V4, IpAddr::from(plan::TRANSIT_FRR_V4)),
            (plan::SEGMENT_V6, IpAddr::from(plan::transit_frr_v6())),
        ]
    } else {
        Vec::new()
    };
    RouterConfig {
        kind,
        name: ns.name().to_owned(),
        router_id: plan::router_addresses(kind).0,
        options: options.router_options(kind).clone(),
        announce: plan::router_announce(kind),
        reach,
        peers,
    }
}

fn missing_routes(router: &Router, expected: &[IpNet]) -> Result<Vec<IpNet>, TopologyError> {
    let mut routes = router.routes(Family::Ipv4)?;
    routes.extend(router.routes(Family::Ipv6)?);
    Ok(expected
        .iter()
        .filter(|p| !routes.iter().any(|r| &r.prefix == *p && r.from_bgp))
        .copied()
        .collect())
}

/// `curl` inside `ns` (5 s limit, no proxy, IPv6 literals allowed); returns the body.
pub fn curl(ns: &NetNs, url: &str) -> Result<String, NetnsError> {
    curl_within(ns, url, "5")
}

/// `curl` from `ns` giving up after `max_time` seconds (curl's `--max-time`, fractions allowed):
/// short timeouts let failover tests poll.
pub fn curl_within(ns: &NetNs, url: &str, max_time: &str) -> Result<String, NetnsError> {
    ns.exec(&[
        "curl",
        "-sS",
        "-g",
        "--noproxy",
        "*",
        "--max-time",
        max_time,
        url,
    ])
}

/// The neighbour table of a namespace (`ip -j neigh show`), parsed.
pub fn neighbours(ns: &NetNs) -> Result<Vec<Neighbour>, TopologyError> {
    let out = ns.ip(&["-j", "neigh", "show"])?;
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&out).map_err(|e| TopologyError::Parse {
        namespace: ns.name().to_owned(),
        command: "ip -j neigh show".into(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_addresses_follow_the_documented_scheme() {
        assert_eq!(plan::node_v4(1).to_string(), "192.0.2.11");
        assert_eq!(plan::node_v6(3).to_string(), "2001:db8:2::13");
        assert_eq!(plan::node_mgmt_v4(2).to_string(), "198.51.100.12");
        assert_eq!(
            plan::router_segment(RouterKind::Frr).map(|(a, b)| (a.to_string(), b.to_string())),
            Some(("192.0.2.3".into(), "2001:db8:2::3".into()))
        );
        assert_eq!(
            plan::router_announce(RouterKind::Multihop),
            (
                "198.51.100.240/28".parse().expect("net"),
                "2001:db8:6:5::/64".parse().expect("net")
            )
        );
        assert_eq!(plan::router_asn(RouterKind::Gobgp), 64504);
    }

    #[test]
    fn multihop_without_frr_is_refused() {
        let options = TopologyOptions {
            routers: vec![RouterKind::Bird, RouterKind::Multihop],
            ..TopologyOptions::default()
        };
        assert!(matches!(
            validate(&options),
            Err(TopologyError::Options { .. })
        ));
        let zero = TopologyOptions {
            nodes: 0,
            ..TopologyOptions::default()
        };
        assert!(matches!(
            validate(&zero),
            Err(TopologyError::Options { .. })
        ));
    }

    #[test]
    fn password_that_needs_quoting_is_refused_naming_the_router() {
        let mut options = TopologyOptions::default();
        options.frr.password = Some("has space".into());
        let err = validate(&options).expect_err("refused");
        assert!(err.to_string().contains("frr.password"), "{err}");
        options.frr.password = Some("Plain-Secret_1".into());
        assert!(validate(&options).is_ok());
    }

    #[test]
    fn frr_peers_with_every_router_and_the_others_with_frr_only() {
        let options = TopologyOptions::default();
        let ns = NetNs::adopt("flb0000frr");
        let frr = router_config(&options, RouterKind::Frr, &ns);
        let router_peers: Vec<_> = frr
            .peers
            .iter()
            .filter(|p| p.role == PeerRole::Router)
            .map(|p| p.address.to_string())
            .collect();
        assert_eq!(
            router_peers,
            [
                "192.0.2.2",
                "2001:db8:2::2",
                "192.0.2.4",
                "2001:db8:2::4",
                "198.51.100.130",
                "2001:db8:4::2"
            ]
        );
        assert_eq!(
            frr.peers
                .iter()
                .filter(|p| p.role == PeerRole::Node)
                .count(),
            6
        );
        let mh = router_config(&options, RouterKind::Multihop, &ns);
        assert!(
            mh.peers
                .iter()
                .filter(|p| p.role == PeerRole::Node)
                .all(|p| p.multihop)
        );
        assert_eq!(mh.reach.len(), 2);
    }
}
