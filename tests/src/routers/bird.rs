//! BIRD 2: config from `templates/bird.conf` (+ `bird-session.conf` per neighbour), one control
//! socket per instance (`bird -s`), and parsers for `birdc` text output (`show route all`,
//! `show protocols all`, `show bfd sessions`).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use super::{
    BfdSession, Family, PeerRole, Route, Router, RouterConfig, RouterError, Session, render,
    write_file,
};
use crate::netns::{Daemon, NetNs};

const TEMPLATE: &str = include_str!("../../templates/bird.conf");
const SESSION_TEMPLATE: &str = include_str!("../../templates/bird-session.conf");

/// BFD timers of the lab: 100 ms x 3 keeps failure detection well under a second.
const BFD_BLOCK: &str = "protocol bfd {\n  interface \"*\" { interval 100 ms; multiplier 3; };\n  multihop { interval 100 ms; multiplier 3; };\n}";

fn socket(dir: &Path) -> String {
    dir.join("bird.ctl").to_string_lossy().into_owned()
}

/// Renders the full BIRD configuration.
pub fn render_config(config: &RouterConfig, log: &Path) -> Result<String, RouterError> {
    let mut sessions = String::new();
    for peer in &config.peers {
        let node = peer.role == PeerRole::Node;
        let family = if peer.address.is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        };
        let password = match (&config.options.password, node) {
            (Some(pw), true) => format!("password \"{pw}\";"),
            _ => String::new(),
        };
        let bfd = if node && config.options.bfd {
            "bfd on;"
        } else {
            ""
        };
        sessions.push_str(&render(
            "bird-session.conf",
            SESSION_TEMPLATE,
            &[
                ("session", peer.name.clone()),
                ("description", format!("{:?} {}", peer.role, peer.address)),
                ("local", peer.local.to_string()),
                ("local_asn", config.options.asn.to_string()),
                ("peer", peer.address.to_string()),
                ("peer_asn", peer.asn.to_string()),
                (
                    "hops",
                    if peer.multihop {
                        "multihop 4;"
                    } else {
                        "direct;"
                    }
                    .into(),
                ),
                ("password", password),
                ("bfd", bfd.into()),
                ("family", family.into()),
                (
                    "export",
                    if node {
                        "none".to_owned()
                    } else {
                        format!("filter lab_prefixes_{family}")
                    },
                ),
            ],
        )?);
        sessions.push('\n');
    }
    let reach = |v4: bool| -> String {
        config
            .reach
            .iter()
            .filter(|(net, _)| matches!(net, IpNet::V4(_)) == v4)
            .map(|(net, via)| format!("route {net} via {via}; "))
            .collect()
    };
    render(
        "bird.conf",
        TEMPLATE,
        &[
            ("name", config.name.clone()),
            ("router_id", config.router_id.to_string()),
            ("log", log.to_string_lossy().into_owned()),
            ("announce4", config.announce.0.to_string()),
            ("announce6", config.announce.1.to_string()),
            ("reach4", reach(true)),
            ("reach6", reach(false)),
            (
                "bfd",
                if config.options.bfd { BFD_BLOCK } else { "" }.into(),
            ),
            ("sessions", sessions),
        ],
    )
}

/// Writes the config and starts BIRD (it daemonizes; we keep the pid from its pid file).
pub(super) fn start(config: &RouterConfig, ns: &NetNs, dir: &Path) -> Result<Daemon, RouterError> {
    let conf = dir.join("bird.conf");
    let pid_file = dir.join("bird.pid");
    write_file(
        config,
        &conf,
        &render_config(config, &dir.join("bird.log"))?,
    )?;
    ns.exec(&[
        "bird",
        "-c",
        &conf.to_string_lossy(),
        "-s",
        &socket(dir),
        "-P",
        &pid_file.to_string_lossy(),
    ])?;
    Ok(Daemon::from_pid_file(
        &format!("bird in {}", ns.name()),
        &pid_file,
        Duration::from_secs(5),
    )?)
}

fn birdc(router: &Router, args: &[&str]) -> Result<(String, String), RouterError> {
    let sock = socket(router.dir());
    let mut argv = vec!["birdc", "-s", &sock];
    argv.extend_from_slice(args);
    let out = router.namespace().exec(&argv)?;
    Ok((format!("birdc {}", args.join(" ")), out))
}

pub(super) fn routes(router: &Router, family: Family) -> Result<Vec<Route>, RouterError> {
    let table = match family {
        Family::Ipv4 => "master4",
        Family::Ipv6 => "master6",
    };
    let (command, out) = birdc(router, &["show", "route", "all", "table", table])?;
    parse_routes(&out).map_err(|detail| router.parse_error(&command, detail))
}

pub(super) fn sessions(router: &Router) -> Result<Vec<Session>, RouterError> {
    let (command, out) = birdc(router, &["show", "protocols", "all"])?;
    parse_protocols(&out).map_err(|detail| router.parse_error(&command, detail))
}

pub(super) fn bfd_sessions(router: &Router) -> Result<Vec<BfdSession>, RouterError> {
    let (command, out) = birdc(router, &["show", "bfd", "sessions"])?;
    parse_bfd_sessions(&out).map_err(|detail| router.parse_error(&command, detail))
}

/// Parses `show route all`: a route header line per path (the prefix only on the first path of a
/// network), followed by tab-indented `via …` next hops and `Name: value` attributes.
pub fn parse_routes(text: &str) -> Result<Vec<Route>, String> {
    let mut routes: Vec<Route> = Vec::new();
    let mut current_prefix: Option<IpNet> = None;
    for line in text.lines() {
        if line.trim().is_empty()
            || line.starts_with("BIRD ")
            || line.starts_with("Table ")
            || line.starts_with("Network not found")
        {
            continue;
        }
        if let Some(attr) = line.strip_prefix('\t') {
            let Some(route) = routes.last_mut() else {
                return Err(format!("attribute before any route: `{line}`"));
            };
            parse_attribute(route, attr.trim())?;
            continue;
        }
        // A path header: `PREFIX  TYPE [PROTO SINCE] * (PREF) [ASi]`, or indented without PREFIX.
        let Some(bracket) = line.find('[') else {
            return Err(format!("unrecognised line `{line}`"));
        };
        if !line.starts_with(' ') {
            let token = line.split_whitespace().next().unwrap_or("");
            current_prefix = Some(
                token
                    .parse()
                    .map_err(|_| format!("`{token}` is not a prefix in `{line}`"))?,
            );
        }
        let Some(prefix) = current_prefix else {
            return Err(format!("path without a prefix: `{line}`"));
        };
        let after_proto = line[bracket..].split_once(']').map_or("", |(_, rest)| rest);
        routes.push(Route {
            prefix,
            next_hops: Vec::new(),
            as_path: Vec::new(),
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            best: after_proto.trim_start().starts_with('*'),
            from_bgp: false,
        });
    }
    Ok(routes)
}

fn parse_attribute(route: &mut Route, attr: &str) -> Result<(), String> {
    if let Some(rest) = attr.strip_prefix("via ") {
        let hop = rest.split_whitespace().next().unwrap_or("");
        let hop: IpAddr = hop
            .parse()
            .map_err(|_| format!("next hop `{hop}` is not an address"))?;
        route.next_hops.push(hop);
        return Ok(());
    }
    let Some((name, value)) = attr.split_once(':') else {
        // Other lines (`dev eth0`, `blackhole`) carry nothing the model holds.
        return Ok(());
    };
    let value = value.trim();
    match name.trim() {
        "Type" => route.from_bgp = value.starts_with("BGP"),
        // The model's next hop is the BGP NEXT_HOP (RFC 4271 §5.1.3), as FRR and GoBGP report it;
        // the `via` lines above it are the resolved gateways, which differ for multihop routes.
        // IPv6 routes also carry the link-local next hop, which the model leaves out.
        "BGP.next_hop" => {
            route.next_hops = value
                .split_whitespace()
                .map(|h| {
                    h.parse::<IpAddr>()
                        .map_err(|_| format!("BGP next hop `{h}` is not an address"))
                })
                .filter(|h| !matches!(h, Ok(IpAddr::V6(v6)) if v6.is_unicast_link_local()))
                .collect::<Result<_, _>>()?;
        }
        "BGP.as_path" => {
            route.as_path = value
                .split(|c: char| c.is_whitespace() || c == '{' || c == '}' || c == ',')
                .filter(|t| !t.is_empty())
                .map(|t| t.parse().map_err(|_| format!("AS `{t}` in `{attr}`")))
                .collect::<Result<_, _>>()?;
        }
        "BGP.local_pref" => {
            route.local_pref = Some(
                value
                    .parse()
                    .map_err(|_| format!("local pref `{value}` is not a number"))?,
            );
        }
        "BGP.community" => {
            route.communities = tuples(value)?
                .into_iter()
                .map(|t| match t.as_slice() {
                    [a, b] => Ok((to_u16(*a)?, to_u16(*b)?)),
                    _ => Err(format!("community `{t:?}` in `{attr}`")),
                })
                .collect::<Result<_, _>>()?;
        }
        "BGP.large_community" => {
            route.large_communities = tuples(value)?
                .into_iter()
                .map(|t| match t.as_slice() {
                    [a, b, c] => Ok((*a, *b, *c)),
                    _ => Err(format!("large community `{t:?}` in `{attr}`")),
                })
                .collect::<Result<_, _>>()?;
        }
        _ => {}
    }
    Ok(())
}

fn to_u16(value: u32) -> Result<u16, String> {
    u16::try_from(value).map_err(|_| format!("community part {value} exceeds 16 bits"))
}

/// `(1,2) (3, 4, 5)` → `[[1,2],[3,4,5]]`.
fn tuples(value: &str) -> Result<Vec<Vec<u32>>, String> {
    value
        .split(')')
        .map(|chunk| chunk.trim().trim_start_matches('('))
        .filter(|chunk| !chunk.is_empty())
        .map(|chunk| {
            chunk
                .split(',')
                .map(|n| {
                    n.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("`{n}` in `({chunk})` is not a number"))
                })
                .collect()
        })
        .collect()
}

/// Parses `show protocols all`: per BGP protocol, its `Neighbor address` and `BGP state`.
pub fn parse_protocols(text: &str) -> Result<Vec<Session>, String> {
    let mut sessions = Vec::new();
    let mut is_bgp = false;
    let mut peer: Option<IpAddr> = None;
    let mut state: Option<String> = None;
    let mut flush = |peer: &mut Option<IpAddr>, state: &mut Option<String>| {
        if let (Some(p), Some(s)) = (peer.take(), state.take()) {
            sessions.push(Session {
                peer: p,
                established: s == "Established",
                state: s,
            });
        }
    };
    for line in text.lines() {
        if line.starts_with("BIRD ") || line.starts_with("Name ") || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') && !line.starts_with('\t') {
            flush(&mut peer, &mut state);
            is_bgp = line.split_whitespace().nth(1) == Some("BGP");
            continue;
        }
        if !is_bgp {
            continue;
        }
        let Some((name, value)) = line.trim().split_once(':') else {
            continue;
        };
        match name.trim() {
            "BGP state" => state = Some(value.trim().to_owned()),
            "Neighbor address" => {
                let v = value.trim();
                // `192.0.2.11%eth0` for link-local neighbours.
                let v = v.split('%').next().unwrap_or(v);
                peer = Some(
                    v.parse()
                        .map_err(|_| format!("neighbor address `{v}` is not an address"))?,
                );
            }
            _ => {}
        }
    }
    flush(&mut peer, &mut state);
    Ok(sessions)
}

/// Parses `show bfd sessions`: rows `ADDRESS INTERFACE STATE SINCE INTERVAL TIMEOUT`.
pub fn parse_bfd_sessions(text: &str) -> Result<Vec<BfdSession>, String> {
    let mut sessions = Vec::new();
    for line in text.lines() {
        let mut tokens = line.split_whitespace();
        let Some(Ok(peer)) = tokens.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        let Some(state) = tokens.find(|t| matches!(*t, "Up" | "Down" | "Init" | "AdminDown"))
        else {
            return Err(format!("no BFD state in `{line}`"));
        };
        sessions.push(BfdSession {
            peer,
            up: state == "Up",
            state: state.to_owned(),
        });
    }
    Ok(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW_ROUTE: &str = "BIRD 2.0.12 ready.
Table master4:
198.51.100.240/28    unicast [frr_v4 11:20:01.123] * (100) [AS64505i]
\tvia 198.51.100.67 on flb0001up
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64503 64505
\tBGP.next_hop: 198.51.100.130
\tBGP.local_pref: 100
\tBGP.community: (64500,1) (65535,65281)
\tBGP.large_community: (64500, 7, 9)
                     unicast [gobgp_v4 11:20:02.000] (100) [AS64504?]
\tvia 198.51.100.68 on flb0001up
\tType: BGP univ
\tBGP.as_path: 64504 {64505, 64506}
2001:db8:6:3::/64    unicast [frr_v6 11:23:26.128] * (100) [AS64503i]
\tvia 2001:db8:2::3 on flb0001seg
\tType: BGP univ
\tBGP.next_hop: 2001:db8:2::3 fe80::874:faff:fe35:8f7b
198.51.100.192/28    blackhole [announce4 11:20:00.000] * (200)
\tType: static univ
";

    #[test]
    fn route_paths_carry_next_hops_path_attributes_and_best_flag() {
        let routes = parse_routes(SHOW_ROUTE).expect("parses");
        assert_eq!(routes.len(), 4);
        let best = &routes[0];
        assert_eq!(best.prefix.to_string(), "198.51.100.240/28");
        assert!(best.best && best.from_bgp);
        assert_eq!(
            best.next_hops,
            vec!["198.51.100.130".parse::<IpAddr>().expect("ip")],
            "the BGP next hop, not the resolved gateway"
        );
        assert_eq!(
            routes[1].next_hops,
            vec!["198.51.100.68".parse::<IpAddr>().expect("ip")],
            "the gateway when no BGP next hop is shown"
        );
        assert_eq!(best.as_path, vec![64503, 64505]);
        assert_eq!(best.local_pref, Some(100));
        assert_eq!(best.communities, vec![(64500, 1), (65535, 65281)]);
        assert_eq!(best.large_communities, vec![(64500, 7, 9)]);
        let second = &routes[1];
        assert_eq!(second.prefix, best.prefix);
        assert!(!second.best);
        assert_eq!(second.as_path, vec![64504, 64505, 64506]);
        assert_eq!(
            routes[2].next_hops,
            vec!["2001:db8:2::3".parse::<IpAddr>().expect("ip")],
            "link-local next hop left out"
        );
        assert!(!routes[3].from_bgp && routes[3].best);
    }

    #[test]
    fn malformed_route_line_is_an_error_naming_it() {
        let err = parse_routes("Table master4:\nnot-a-prefix unicast [x 1] * (100)\n");
        assert!(err.is_err_and(|e| e.contains("not-a-prefix")));
    }

    #[test]
    fn protocols_yield_bgp_sessions_with_neighbor_and_state() {
        let text = "BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     11:20:00.000
node1_v4   BGP        ---        start  11:20:00.000  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 192.0.2.11
    Neighbor AS:      64500
frr_v6     BGP        ---        up     11:20:01.000  Established
  BGP state:          Established
    Neighbor address: 2001:db8:5::3
";
        let sessions = parse_protocols(text).expect("parses");
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].peer.to_string(), "192.0.2.11");
        assert!(!sessions[0].established);
        assert!(sessions[1].established);
    }

    #[test]
    fn bfd_rows_yield_peer_and_state() {
        let text = "BIRD 2.0.12 ready.
bfd1:
IP address                Interface  State      Since         Interval  Timeout
192.0.2.11                flb0001seg Up         11:20:00.000    0.100    0.300
2001:db8:2::12            flb0001seg Down       11:20:00.000    1.000    0.000
";
        let s = parse_bfd_sessions(text).expect("parses");
        assert_eq!(s.len(), 2);
        assert!(s[0].up && !s[1].up);
    }
}
