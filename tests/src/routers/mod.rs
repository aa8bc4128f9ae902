//! The lab's BGP routers — BIRD 2, FRR (zebra + bgpd + bfdd) and GoBGP — each in its own namespace,
//! configured from `tests/templates/`, started as LAB-NOTES describes and stopped by pid.
//!
//! Every router is ready to peer with every node over IPv4 and IPv6 (the sessions come up once
//! ferrolb's speakers run) and peers with the other routers so its RIB holds real routes from the
//! start: each router announces its own test prefixes from 198.51.100.192/26 and 2001:db8:6::/48,
//! and only those travel between routers; nodes receive no routes.
//!
//! The readers turn each router's own output into one [`Route`], [`Session`] and [`BfdSession`]
//! model: JSON for FRR (`vtysh … json`) and GoBGP (`gobgp -j`), a small parser for BIRD's text.

pub mod bird;
pub mod frr;
pub mod gobgp;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::netns::{Daemon, NetNs, NetnsError, NsProcess};

/// Failures of starting or reading a router; each names the router (namespace) involved.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Command(#[from] NetnsError),
    #[error("template {template} uses `{{{{{key}}}}}`, which the lab does not provide")]
    Template { template: &'static str, key: String },
    #[error("writing {path} for router {router}: {source}")]
    Write {
        router: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("router {router}: cannot read `{command}` output: {detail}")]
    Parse {
        router: String,
        command: String,
        detail: String,
    },
    #[error("router {router} ({kind}) has no {what}")]
    Unsupported {
        router: String,
        kind: RouterKind,
        what: &'static str,
    },
}

/// Which router implementation (and role) a router is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouterKind {
    /// BIRD 2 on the segment.
    Bird,
    /// FRR on the segment; the routed client's default gateway and the way to the multihop router.
    Frr,
    /// GoBGP on the segment (no BFD, no kernel routes).
    Gobgp,
    /// A second BIRD behind FRR, one hop away from the nodes (eBGP multihop target).
    Multihop,
}

impl RouterKind {
    pub const ALL: [RouterKind; 4] = [Self::Bird, Self::Frr, Self::Gobgp, Self::Multihop];

    /// Role suffix of its namespace name.
    pub fn role(self) -> &'static str {
        match self {
            Self::Bird => "bird",
            Self::Frr => "frr",
            Self::Gobgp => "gobgp",
            Self::Multihop => "mh",
        }
    }
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.role())
    }
}

/// Address family of a RIB query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// Per-router choices of a lab run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterOptions {
    /// The router's own AS; equal to the nodes' AS makes the node sessions iBGP.
    pub asn: u32,
    /// TCP-MD5 password (RFC 2385) on the sessions with nodes.
    pub password: Option<String>,
    /// BFD (RFC 5880) on the sessions with nodes (BIRD and FRR; GoBGP has none).
    pub bfd: bool,
}

/// Whom a session is with: nodes get nothing exported and carry the password/BFD options; routers
/// exchange the test prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    Node,
    Router,
}

/// One BGP neighbour in a router's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Identifier usable as a BIRD protocol name / description (`node1_v4`, `frr_v6`).
    pub name: String,
    pub address: IpAddr,
    /// This router's own address for the session (BIRD needs it for multihop BFD, RFC 5883).
    pub local: IpAddr,
    pub asn: u32,
    pub role: PeerRole,
    /// The peer is not on a shared link (eBGP multihop, RFC 4271 §5.1.3 next hop via a router).
    pub multihop: bool,
}

/// Everything a router's template needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    pub kind: RouterKind,
    /// Namespace name; also the router's hostname.
    pub name: String,
    pub router_id: Ipv4Addr,
    pub options: RouterOptions,
    /// The test prefixes this router originates (one IPv4, one IPv6).
    pub announce: (IpNet, IpNet),
    /// Static routes (destination, gateway) that only resolve BGP next hops (BIRD).
    pub reach: Vec<(IpNet, IpAddr)>,
    pub peers: Vec<Peer>,
}

/// A route as any of the three routers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpNet,
    /// Next hops of this path (several for a merged multipath route).
    pub next_hops: Vec<IpAddr>,
    /// AS path, in order, sets flattened.
    pub as_path: Vec<u32>,
    pub local_pref: Option<u32>,
    /// RFC 1997 communities as (AS, value).
    pub communities: Vec<(u16, u16)>,
    /// RFC 8092 large communities as (global admin, data 1, data 2).
    pub large_communities: Vec<(u32, u32, u32)>,
    /// The router selected this path as best.
    pub best: bool,
    /// Learned over BGP (as opposed to the router's own static/connected routes).
    pub from_bgp: bool,
}

/// A BGP session as the router sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub peer: IpAddr,
    /// The router's own state name (`Established`, `Active`, `Connect`, …).
    pub state: String,
    pub established: bool,
}

/// A BFD session as the router sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdSession {
    pub peer: IpAddr,
    /// The router's own state name (`Up`, `Down`, `Init`, …).
    pub state: String,
    pub up: bool,
}

/// How the router's processes are held and stopped.
#[derive(Debug)]
enum Processes {
    /// Self-daemonizing processes known by their pid files (BIRD, FRR).
    Daemons(Vec<Daemon>),
    /// A foreground process we spawned (GoBGP).
    Child(NsProcess),
}

/// A started router. Stopped (by pid) by [`Router::stop`] or on drop; its namespace belongs to the
/// topology.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    ns: NetNs,
    /// The router's files: config, log, control socket, pid files.
    dir: PathBuf,
    processes: Processes,
    /// Left running on purpose ([`Router::detach`]): drop does not stop it.
    detached: bool,
}

impl Router {
    /// Writes the config into `dir` and starts the router inside `ns`.
    pub fn start(config: RouterConfig, ns: NetNs, dir: &Path) -> Result<Self, RouterError> {
        let dir = dir.to_owned();
        std::fs::create_dir_all(&dir).map_err(|source| RouterError::Write {
            router: config.name.clone(),
            path: dir.clone(),
            source,
        })?;
        let processes = match config.kind {
            RouterKind::Bird | RouterKind::Multihop => {
                Processes::Daemons(vec![bird::start(&config, &ns, &dir)?])
            }
            RouterKind::Frr => Processes::Daemons(frr::start(&config, &ns, &dir)?),
            RouterKind::Gobgp => Processes::Child(gobgp::start(&config, &ns, &dir)?),
        };
        Ok(Self {
            config,
            ns,
            dir,
            processes,
            detached: false,
        })
    }

    pub fn kind(&self) -> RouterKind {
        self.config.kind
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    pub fn namespace(&self) -> &NetNs {
        &self.ns
    }

    /// Directory with the router's config, log and control socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pids of the router's processes.
    pub fn pids(&self) -> Vec<u32> {
        match &self.processes {
            Processes::Daemons(daemons) => daemons.iter().map(Daemon::pid).collect(),
            Processes::Child(child) => vec![child.pid()],
        }
    }

    /// The router's RIB for one family, parsed.
    pub fn routes(&self, family: Family) -> Result<Vec<Route>, RouterError> {
        match self.config.kind {
            RouterKind::Bird | RouterKind::Multihop => bird::routes(self, family),
            RouterKind::Frr => frr::routes(self, family),
            RouterKind::Gobgp => gobgp::routes(self, family),
        }
    }

    /// The router's BGP sessions, parsed.
    pub fn sessions(&self) -> Result<Vec<Session>, RouterError> {
        match self.config.kind {
            RouterKind::Bird | RouterKind::Multihop => bird::sessions(self),
            RouterKind::Frr => frr::sessions(self),
            RouterKind::Gobgp => gobgp::sessions(self),
        }
    }

    /// The router's BFD sessions, parsed (GoBGP has no BFD).
    pub fn bfd_sessions(&self) -> Result<Vec<BfdSession>, RouterError> {
        match self.config.kind {
            RouterKind::Bird | RouterKind::Multihop => bird::bfd_sessions(self),
            RouterKind::Frr => frr::bfd_sessions(self),
            RouterKind::Gobgp => Err(RouterError::Unsupported {
                router: self.config.name.clone(),
                kind: self.config.kind,
                what: "BFD",
            }),
        }
    }

    /// Stops the router's processes by pid (SIGTERM, then SIGKILL after the grace period).
    pub fn stop(&mut self) {
        match &mut self.processes {
            Processes::Daemons(daemons) => {
                let pids: Vec<u32> = daemons.iter().map(Daemon::pid).collect();
                crate::netns::stop_pids(&pids, crate::netns::STOP_GRACE);
            }
            Processes::Child(child) => child.stop(),
        }
        if self.config.kind == RouterKind::Frr {
            // FRR's per-namespace runtime dir (sockets, pid files) outlives the daemons otherwise.
            let _ = std::fs::remove_dir_all(frr::runtime_dir(&self.config.name));
        }
    }

    /// Gives up ownership without stopping the processes (a lab left running by `lab up`; deleting
    /// the namespace stops them later).
    pub fn detach(mut self) {
        self.detached = true;
        if let Processes::Child(child) =
            std::mem::replace(&mut self.processes, Processes::Daemons(Vec::new()))
        {
            child.detach();
        }
    }

    fn parse_error(&self, command: &str, detail: impl Into<String>) -> RouterError {
        RouterError::Parse {
            router: self.config.name.clone(),
            command: command.to_owned(),
            detail: detail.into(),
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if !self.detached {
            self.stop();
        }
    }
}

/// Fills `{{key}}` placeholders of a template; a placeholder without a value is an error (so a
/// template edit cannot silently produce a broken config).
pub fn render(
    template_name: &'static str,
    template: &str,
    vars: &[(&str, String)],
) -> Result<String, RouterError> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(RouterError::Template {
                template: template_name,
                key: after.chars().take(20).collect(),
            });
        };
        let key = &after[..end];
        let Some((_, value)) = vars.iter().find(|(k, _)| *k == key) else {
            return Err(RouterError::Template {
                template: template_name,
                key: key.to_owned(),
            });
        };
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn write_file(config: &RouterConfig, path: &Path, text: &str) -> Result<(), RouterError> {
    std::fs::write(path, text).map_err(|source| RouterError::Write {
        router: config.name.clone(),
        path: path.to_owned(),
        source,
    })
}

fn family_of(address: IpAddr) -> Family {
    if address.is_ipv4() {
        Family::Ipv4
    } else {
        Family::Ipv6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_every_placeholder() {
        let text = render(
            "t",
            "as {{asn}}; id {{id}};",
            &[("asn", "64500".into()), ("id", "x".into())],
        );
        assert_eq!(text.ok().as_deref(), Some("as 64500; id x;"));
    }

    #[test]
    fn render_refuses_an_unknown_placeholder() {
        let err = render("bird.conf", "as {{asn}}; {{bogus}}", &[("asn", "1".into())]);
        assert!(matches!(err, Err(RouterError::Template { key, .. }) if key == "bogus"));
    }
}
