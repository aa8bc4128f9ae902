//! FRR: zebra, bfdd and bgpd started directly in the namespace (`-d -N <ns>`), all reading one
//! config rendered from `templates/frr.conf` (each daemon applies its own sections and skips the
//! others'); queried with `vtysh -N <ns> … json`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{
    BfdSession, Family, PeerRole, Route, Router, RouterConfig, RouterError, Session, family_of,
    render, write_file,
};
use crate::netns::{Daemon, NetNs, run};

const TEMPLATE: &str = include_str!("../../templates/frr.conf");

/// BFD transmit/receive interval (ms) of the lab profile: 100 ms x 3.
const BFD_INTERVAL_MS: u32 = 100;

/// FRR's daemons run as user `frr` and keep their sockets and pid files in `/var/run/frr/<ns>`.
pub fn runtime_dir(ns: &str) -> PathBuf {
    Path::new("/var/run/frr").join(ns)
}

/// Renders the full FRR configuration.
pub fn render_config(config: &RouterConfig, log: &Path) -> Result<String, RouterError> {
    let mut neighbors = String::new();
    let (mut activate4, mut activate6) = (String::new(), String::new());
    for peer in &config.peers {
        let a = peer.address;
        neighbors.push_str(&format!(
            " neighbor {a} remote-as {}\n neighbor {a} description {}\n neighbor {a} timers connect 2\n neighbor {a} advertisement-interval 0\n",
            peer.asn, peer.name
        ));
        if peer.multihop {
            neighbors.push_str(&format!(" neighbor {a} ebgp-multihop 4\n"));
        }
        let activate = match family_of(a) {
            Family::Ipv4 => &mut activate4,
            Family::Ipv6 => &mut activate6,
        };
        activate.push_str(&format!("  neighbor {a} activate\n"));
        match peer.role {
            PeerRole::Node => {
                if let Some(pw) = &config.options.password {
                    neighbors.push_str(&format!(" neighbor {a} password {pw}\n"));
                }
                if config.options.bfd {
                    neighbors.push_str(&format!(" neighbor {a} bfd profile lab\n"));
                }
                activate.push_str(&format!("  neighbor {a} route-map nothing out\n"));
            }
            PeerRole::Router => {
                let list = if a.is_ipv4() {
                    "lab-prefixes"
                } else {
                    "lab-prefixes6"
                };
                activate.push_str(&format!(
                    "  neighbor {a} prefix-list {list} in\n  neighbor {a} prefix-list {list} out\n"
                ));
            }
        }
    }
    render(
        "frr.conf",
        TEMPLATE,
        &[
            ("name", config.name.clone()),
            ("log", log.to_string_lossy().into_owned()),
            ("bfd_interval", BFD_INTERVAL_MS.to_string()),
            ("asn", config.options.asn.to_string()),
            ("router_id", config.router_id.to_string()),
            ("neighbors", neighbors.trim_end().to_owned()),
            ("announce4", config.announce.0.to_string()),
            ("announce6", config.announce.1.to_string()),
            ("activate4", activate4.trim_end().to_owned()),
            ("activate6", activate6.trim_end().to_owned()),
        ],
    )
}

/// Writes the config and starts zebra, bfdd and bgpd; returns them in start order.
pub(super) fn start(
    config: &RouterConfig,
    ns: &NetNs,
    dir: &Path,
) -> Result<Vec<Daemon>, RouterError> {
    let runtime = runtime_dir(ns.name());
    std::fs::create_dir_all(&runtime).map_err(|source| RouterError::Write {
        router: config.name.clone(),
        path: runtime.clone(),
        source,
    })?;
    let conf = dir.join("frr.conf");
    write_file(config, &conf, &render_config(config, &dir.join("frr.log"))?)?;
    // The daemons drop to user frr: they must be able to write their runtime dir and the log.
    for path in [&runtime, &dir.to_path_buf()] {
        run(&["chown", "-R", "frr:frr", &path.to_string_lossy()])?;
    }
    let conf = conf.to_string_lossy().into_owned();
    let bfdctl = runtime.join("bfdd.sock").to_string_lossy().into_owned();
    let mut daemons = Vec::new();
    for (daemon, extra) in [
        ("zebra", vec![]),
        // bfdd ignores -N for its control socket (LAB-NOTES).
        ("bfdd", vec!["--bfdctl", bfdctl.as_str()]),
        ("bgpd", vec![]),
    ] {
        let program = format!("/usr/lib/frr/{daemon}");
        let mut argv = vec![
            program.as_str(),
            "-d",
            "-N",
            ns.name(),
            "-A",
            "127.0.0.1",
            "-f",
            conf.as_str(),
        ];
        argv.extend(extra);
        ns.exec(&argv)?;
        daemons.push(Daemon::from_pid_file(
            &format!("{daemon} in {}", ns.name()),
            &runtime.join(format!("{daemon}.pid")),
            Duration::from_secs(5),
        )?);
    }
    Ok(daemons)
}

fn vtysh<T: for<'de> Deserialize<'de>>(router: &Router, command: &str) -> Result<T, RouterError> {
    let out =
        router
            .namespace()
            .exec(&["vtysh", "-N", router.namespace().name(), "-c", command])?;
    serde_json::from_str(&out).map_err(|e| router.parse_error(command, e.to_string()))
}

/// `show bgp <afi> unicast json`: only used for the list of prefixes (FRR 8.4 has no `detail json`
/// for a whole table, and this summary omits communities).
#[derive(Debug, Deserialize)]
struct RibTable {
    #[serde(default)]
    routes: BTreeMap<String, serde_json::Value>,
}

/// `show bgp <afi> unicast <prefix> json`: every path with all its attributes.
#[derive(Debug, Deserialize)]
struct PrefixDetail {
    prefix: String,
    #[serde(default)]
    paths: Vec<DetailPath>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DetailPath {
    /// `{"overall": true, …}` on the best path, absent otherwise.
    #[serde(default)]
    bestpath: Option<BestPath>,
    #[serde(default)]
    aspath: Option<TextForm>,
    #[serde(default)]
    loc_prf: Option<u32>,
    #[serde(default)]
    community: Option<TextForm>,
    #[serde(default)]
    large_community: Option<TextForm>,
    #[serde(default)]
    nexthops: Vec<NextHop>,
    #[serde(default)]
    peer: Option<PeerDetail>,
}

#[derive(Debug, Deserialize)]
struct BestPath {
    #[serde(default)]
    overall: bool,
}

/// FRR prints AS paths and communities as `{"string": "…", …}`; the string form is complete.
#[derive(Debug, Deserialize)]
struct TextForm {
    #[serde(default)]
    string: String,
}

#[derive(Debug, Deserialize)]
struct NextHop {
    ip: String,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PeerDetail {
    #[serde(default)]
    peer_id: Option<String>,
}

/// Prefixes per vtysh invocation when fetching details (each is one `-c`).
const DETAIL_BATCH: usize = 200;

pub(super) fn routes(router: &Router, family: Family) -> Result<Vec<Route>, RouterError> {
    let afi = match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    };
    let table: RibTable = vtysh(router, &format!("show bgp {afi} unicast json"))?;
    let prefixes: Vec<&String> = table.routes.keys().collect();
    let mut routes = Vec::new();
    for batch in prefixes.chunks(DETAIL_BATCH) {
        let commands: Vec<String> = batch
            .iter()
            .map(|p| format!("show bgp {afi} unicast {p} json"))
            .collect();
        let mut argv = vec!["vtysh", "-N", router.namespace().name()];
        for c in &commands {
            argv.extend(["-c", c.as_str()]);
        }
        let out = router.namespace().exec(&argv)?;
        let what = format!("show bgp {afi} unicast <prefix> json (x{})", batch.len());
        // One JSON document per command, back to back.
        for detail in serde_json::Deserializer::from_str(&out).into_iter::<PrefixDetail>() {
            let detail = detail.map_err(|e| router.parse_error(&what, e.to_string()))?;
            routes.extend(convert_detail(detail).map_err(|e| router.parse_error(&what, e))?);
        }
    }
    Ok(routes)
}

fn convert_detail(detail: PrefixDetail) -> Result<Vec<Route>, String> {
    let prefix = detail.prefix;
    let net = prefix
        .parse()
        .map_err(|_| format!("`{prefix}` is not a prefix"))?;
    let mut routes = Vec::new();
    for path in detail.paths {
        let as_path = path
            .aspath
            .as_ref()
            .map_or("", |a| a.string.as_str())
            .split(|c: char| c.is_whitespace() || "{}(),".contains(c))
            .filter(|t| !t.is_empty() && *t != "Local")
            .map(|t| t.parse().map_err(|_| format!("AS `{t}` of {prefix}")))
            .collect::<Result<Vec<u32>, String>>()?;
        // Link-local next hops accompany global ones on IPv6 sessions; the model keeps the global.
        let next_hops = path
            .nexthops
            .iter()
            .filter(|h| h.scope.as_deref() != Some("link-local"))
            .map(|h| {
                h.ip.parse::<IpAddr>()
                    .map_err(|_| format!("next hop `{}` of {prefix}", h.ip))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let communities = split_community(path.community.as_ref(), 2, &prefix)?
            .into_iter()
            .map(|p| {
                let part = |v: u32| {
                    u16::try_from(v).map_err(|_| format!("community part {v} of {prefix}"))
                };
                Ok((part(p[0])?, part(p[1])?))
            })
            .collect::<Result<_, String>>()?;
        let large_communities = split_community(path.large_community.as_ref(), 3, &prefix)?
            .into_iter()
            .map(|p| (p[0], p[1], p[2]))
            .collect();
        // Locally originated paths name peer 0.0.0.0 (or ::).
        let from_bgp = path
            .peer
            .as_ref()
            .and_then(|p| p.peer_id.as_deref())
            .is_some_and(|id| id != "0.0.0.0" && id != "::");
        routes.push(Route {
            prefix: net,
            next_hops,
            as_path,
            local_pref: path.loc_prf,
            communities,
            large_communities,
            best: path.bestpath.is_some_and(|b| b.overall),
            from_bgp,
        });
    }
    Ok(routes)
}

/// `"64500:1 64500:2"` → `[[64500,1],[64500,2]]`, each with `parts` numbers.
fn split_community(
    list: Option<&TextForm>,
    parts: usize,
    prefix: &str,
) -> Result<Vec<Vec<u32>>, String> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    list.string
        .split_whitespace()
        .map(|c| {
            let nums = c
                .split(':')
                .map(|n| n.parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| format!("community `{c}` of {prefix}"))?;
            if nums.len() == parts {
                Ok(nums)
            } else {
                Err(format!(
                    "community `{c}` of {prefix}: expected {parts} parts"
                ))
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Neighbor {
    bgp_state: String,
}

pub(super) fn sessions(router: &Router) -> Result<Vec<Session>, RouterError> {
    let command = "show bgp neighbors json";
    let neighbors: BTreeMap<String, Neighbor> = vtysh(router, command)?;
    neighbors
        .into_iter()
        .map(|(peer, n)| {
            let peer = peer
                .parse()
                .map_err(|_| router.parse_error(command, format!("`{peer}` is not an address")))?;
            Ok(Session {
                peer,
                established: n.bgp_state == "Established",
                state: n.bgp_state,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct BfdPeer {
    peer: String,
    status: String,
}

pub(super) fn bfd_sessions(router: &Router) -> Result<Vec<BfdSession>, RouterError> {
    let command = "show bfd peers json";
    let peers: Vec<BfdPeer> = vtysh(router, command)?;
    peers
        .into_iter()
        .map(|p| {
            let peer = p.peer.parse().map_err(|_| {
                router.parse_error(command, format!("`{}` is not an address", p.peer))
            })?;
            Ok(BfdSession {
                peer,
                up: p.status == "up",
                state: p.status,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_detail_paths_become_routes() {
        let json = r#"{"prefix":"198.51.100.240/28","paths":[{"aspath":{"string":"64505 {64506,64507}"},
            "locPrf":150,"community":{"string":"64500:1 65535:65281"},
            "largeCommunity":{"string":"64500:7:9"},"bestpath":{"overall":true},
            "nexthops":[{"ip":"2001:db8:2::2","scope":"global"},{"ip":"fe80::1","scope":"link-local"}],
            "peer":{"peerId":"198.51.100.130"}},
            {"aspath":{"string":"Local"},"nexthops":[{"ip":"0.0.0.0"}],"peer":{"peerId":"0.0.0.0"}}]}"#;
        let detail: PrefixDetail = serde_json::from_str(json).expect("json");
        let routes = convert_detail(detail).expect("converts");
        let learned = &routes[0];
        assert_eq!(learned.as_path, vec![64505, 64506, 64507]);
        assert_eq!(learned.local_pref, Some(150));
        assert_eq!(learned.communities, vec![(64500, 1), (65535, 65281)]);
        assert_eq!(learned.large_communities, vec![(64500, 7, 9)]);
        assert_eq!(
            learned.next_hops,
            vec!["2001:db8:2::2".parse::<IpAddr>().expect("ip")]
        );
        assert!(learned.best && learned.from_bgp);
        let own = &routes[1];
        assert!(!own.from_bgp && !own.best && own.as_path.is_empty());
    }

    #[test]
    fn community_with_wrong_arity_is_an_error() {
        let json = r#"{"prefix":"192.0.2.0/24","paths":[{"community":{"string":"1:2:3"}}]}"#;
        let detail: PrefixDetail = serde_json::from_str(json).expect("json");
        assert!(convert_detail(detail).is_err_and(|e| e.contains("1:2:3")));
    }
}
