//! GoBGP: `gobgpd` from `templates/gobgpd.toml` (+ `gobgpd-neighbor.toml` per neighbour), run in
//! the foreground (it has no daemon mode) with its gRPC API on the namespace's own loopback;
//! queried with `gobgp -j` (JSON).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{
    Family, PeerRole, Route, Router, RouterConfig, RouterError, Session, render, write_file,
};
use crate::netns::{NetNs, NsProcess, wait_for};

const TEMPLATE: &str = include_str!("../../templates/gobgpd.toml");
const NEIGHBOR_TEMPLATE: &str = include_str!("../../templates/gobgpd-neighbor.toml");

/// The gRPC API listens on the router namespace's own loopback, so a fixed port never collides.
pub const API: &str = "127.0.0.1:50051";

/// Renders the full gobgpd configuration.
pub fn render_config(config: &RouterConfig) -> Result<String, RouterError> {
    let mut neighbors = String::new();
    for peer in &config.peers {
        let node = peer.role == PeerRole::Node;
        let password = match (&config.options.password, node) {
            (Some(pw), true) => format!("    auth-password = \"{pw}\""),
            _ => String::new(),
        };
        let multihop = if peer.multihop {
            "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = 4"
        } else {
            ""
        };
        neighbors.push_str(&render(
            "gobgpd-neighbor.toml",
            NEIGHBOR_TEMPLATE,
            &[
                ("peer", peer.address.to_string()),
                ("peer_asn", peer.asn.to_string()),
                ("description", peer.name.clone()),
                ("password", password),
                ("multihop", multihop.into()),
                (
                    "afi_safi",
                    if peer.address.is_ipv4() {
                        "ipv4-unicast"
                    } else {
                        "ipv6-unicast"
                    }
                    .into(),
                ),
                (
                    "export",
                    if node { "reject-route" } else { "accept-route" }.into(),
                ),
            ],
        )?);
        neighbors.push('\n');
    }
    render(
        "gobgpd.toml",
        TEMPLATE,
        &[
            ("name", config.name.clone()),
            ("asn", config.options.asn.to_string()),
            ("router_id", config.router_id.to_string()),
            ("neighbors", neighbors),
        ],
    )
}

/// Writes the config, starts gobgpd, waits for its API and adds the router's test prefixes.
pub(super) fn start(
    config: &RouterConfig,
    ns: &NetNs,
    dir: &Path,
) -> Result<NsProcess, RouterError> {
    let conf = dir.join("gobgpd.toml");
    write_file(config, &conf, &render_config(config)?)?;
    let process = ns.spawn(
        &[
            "gobgpd",
            "-f",
            &conf.to_string_lossy(),
            "-t",
            "toml",
            "--api-hosts",
            API,
            "--pprof-disable",
        ],
        &dir.join("gobgpd.log"),
    )?;
    let (host, port) = API.split_once(':').unwrap_or((API, "50051"));
    let cli = |args: &[&str]| {
        let mut argv = vec!["gobgp", "-u", host, "-p", port];
        argv.extend_from_slice(args);
        ns.exec(&argv)
    };
    wait_for(
        &format!("gobgpd API in {}", ns.name()),
        Duration::from_secs(10),
        || cli(&["global"]).ok(),
    )?;
    let (v4, v6) = (config.announce.0.to_string(), config.announce.1.to_string());
    cli(&["global", "rib", "add", "-a", "ipv4", &v4])?;
    cli(&["global", "rib", "add", "-a", "ipv6", &v6])?;
    Ok(process)
}

fn gobgp_json<T: for<'de> Deserialize<'de>>(
    router: &Router,
    args: &[&str],
) -> Result<T, RouterError> {
    let (host, port) = API.split_once(':').unwrap_or((API, "50051"));
    let mut argv = vec!["gobgp", "-u", host, "-p", port, "-j"];
    argv.extend_from_slice(args);
    let out = router.namespace().exec(&argv)?;
    serde_json::from_str(&out).map_err(|e| router.parse_error(&argv.join(" "), e.to_string()))
}

#[derive(Debug, Deserialize)]
struct RibPath {
    #[serde(default)]
    best: bool,
    #[serde(default)]
    attrs: Vec<serde_json::Value>,
    #[serde(default, rename = "source-id")]
    source_id: Option<String>,
}

pub(super) fn routes(router: &Router, family: Family) -> Result<Vec<Route>, RouterError> {
    let afi = match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    };
    let args = ["global", "rib", "-a", afi];
    let table: BTreeMap<String, Vec<RibPath>> = gobgp_json(router, &args)?;
    convert_table(table)
        .map_err(|detail| router.parse_error(&format!("gobgp -j {}", args.join(" ")), detail))
}

/// Path attribute type codes (RFC 4271 §5.1, RFC 4760, RFC 1997, RFC 8092).
const ATTR_AS_PATH: u64 = 2;
const ATTR_NEXT_HOP: u64 = 3;
const ATTR_LOCAL_PREF: u64 = 5;
const ATTR_COMMUNITIES: u64 = 8;
const ATTR_MP_REACH: u64 = 14;
const ATTR_LARGE_COMMUNITY: u64 = 32;

fn convert_table(table: BTreeMap<String, Vec<RibPath>>) -> Result<Vec<Route>, String> {
    let mut routes = Vec::new();
    for (prefix, paths) in table {
        let net = prefix
            .parse()
            .map_err(|_| format!("`{prefix}` is not a prefix"))?;
        for path in paths {
            let mut route = Route {
                prefix: net,
                next_hops: Vec::new(),
                as_path: Vec::new(),
                local_pref: None,
                communities: Vec::new(),
                large_communities: Vec::new(),
                best: path.best,
                // Locally added paths carry source-id 0.0.0.0 (or none).
                from_bgp: path
                    .source_id
                    .as_deref()
                    .is_some_and(|id| !id.is_empty() && id != "0.0.0.0"),
            };
            for attr in &path.attrs {
                apply_attr(&mut route, attr).map_err(|e| format!("{prefix}: {e}"))?;
            }
            routes.push(route);
        }
    }
    Ok(routes)
}

/// The elements of `value[key]` when it is an array (none otherwise).
fn array<'a>(
    value: &'a serde_json::Value,
    key: &str,
) -> impl Iterator<Item = &'a serde_json::Value> {
    value
        .get(key)
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
}

fn apply_attr(route: &mut Route, attr: &serde_json::Value) -> Result<(), String> {
    let kind = attr
        .get("type")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("attribute without a type: {attr}"))?;
    let number = |v: &serde_json::Value| -> Result<u32, String> {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("`{v}` is not a 32-bit number"))
    };
    match kind {
        ATTR_AS_PATH => {
            for segment in array(attr, "as_paths") {
                for asn in array(segment, "asns") {
                    route.as_path.push(number(asn)?);
                }
            }
        }
        ATTR_NEXT_HOP | ATTR_MP_REACH => {
            if let Some(hop) = attr.get("nexthop").and_then(serde_json::Value::as_str) {
                let hop: IpAddr = hop
                    .parse()
                    .map_err(|_| format!("next hop `{hop}` is not an address"))?;
                if !route.next_hops.contains(&hop) {
                    route.next_hops.push(hop);
                }
            }
        }
        ATTR_LOCAL_PREF => {
            route.local_pref = attr.get("value").map(number).transpose()?;
        }
        ATTR_COMMUNITIES => {
            for c in array(attr, "communities") {
                let c = number(c)?;
                // RFC 1997: the high-order 16 bits are the AS, the low-order 16 bits the value.
                route
                    .communities
                    .push(((c >> 16) as u16, (c & 0xffff) as u16));
            }
        }
        ATTR_LARGE_COMMUNITY => {
            for c in array(attr, "value") {
                let field = |name: &str| {
                    c.get(name)
                        .ok_or_else(|| format!("large community without {name}: {c}"))
                        .and_then(number)
                };
                route.large_communities.push((
                    field("ASN")?,
                    field("LocalData1")?,
                    field("LocalData2")?,
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Neighbor {
    conf: NeighborConf,
    state: NeighborState,
}

#[derive(Debug, Deserialize)]
struct NeighborConf {
    neighbor_address: String,
}

#[derive(Debug, Deserialize)]
struct NeighborState {
    #[serde(default)]
    session_state: Option<serde_json::Value>,
}

/// gRPC `PeerState.SessionState` numbering: 1 idle … 6 established.
fn session_state_name(state: Option<&serde_json::Value>) -> String {
    match state {
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(1) => "Idle",
            Some(2) => "Connect",
            Some(3) => "Active",
            Some(4) => "OpenSent",
            Some(5) => "OpenConfirm",
            Some(6) => "Established",
            _ => "Unknown",
        }
        .to_owned(),
        Some(serde_json::Value::String(s)) => {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        _ => "Unknown".to_owned(),
    }
}

pub(super) fn sessions(router: &Router) -> Result<Vec<Session>, RouterError> {
    let neighbors: Vec<Neighbor> = gobgp_json(router, &["neighbor"])?;
    neighbors
        .into_iter()
        .map(|n| {
            let peer = n.conf.neighbor_address.parse().map_err(|_| {
                router.parse_error(
                    "gobgp -j neighbor",
                    format!("`{}` is not an address", n.conf.neighbor_address),
                )
            })?;
            let state = session_state_name(n.state.session_state.as_ref());
            Ok(Session {
                peer,
                established: state == "Established",
                state,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rib_json_paths_become_routes() {
        let json = r#"{"198.51.100.240/28":[{"nlri":{"prefix":"198.51.100.240/28"},"best":true,
          "source-id":"198.51.100.67","attrs":[{"type":1,"value":0},
          {"type":2,"as_paths":[{"segment_type":2,"num":2,"asns":[64503,64505]}]},
          {"type":3,"nexthop":"198.51.100.67"},{"type":5,"value":120},
          {"type":8,"communities":[4227923969]},
          {"type":32,"value":[{"ASN":64500,"LocalData1":7,"LocalData2":9}]}]}]}"#;
        let table: BTreeMap<String, Vec<RibPath>> = serde_json::from_str(json).expect("json");
        let routes = convert_table(table).expect("converts");
        assert_eq!(routes.len(), 1);
        let r = &routes[0];
        assert_eq!(r.as_path, vec![64503, 64505]);
        assert_eq!(
            r.next_hops,
            vec!["198.51.100.67".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(r.local_pref, Some(120));
        assert_eq!(r.communities, vec![(64513, 1)]);
        assert_eq!(r.large_communities, vec![(64500, 7, 9)]);
        assert!(r.best && r.from_bgp);
    }

    #[test]
    fn numeric_and_named_session_states_normalise() {
        assert_eq!(
            session_state_name(Some(&serde_json::json!(6))),
            "Established"
        );
        assert_eq!(
            session_state_name(Some(&serde_json::json!("active"))),
            "Active"
        );
    }
}
