//! MetalLB's legacy configuration (before 0.13): one ConfigMap whose `config` key holds YAML with
//! `peers`, `address-pools` (each with a `protocol`), `bgp-communities` and `bfd-profiles`.
//!
//! It is read into the same MetalLB objects the CRs give, so one conversion serves both:
//! - a `layer2` pool becomes an `IPAddressPool` and an `L2Advertisement` of the same name (every
//!   node, every interface, as the legacy format had no selectors);
//! - a `bgp` pool becomes an `IPAddressPool` and one `BGPAdvertisement` per entry of its
//!   `bgp-advertisements` (`<pool>`, or `<pool>-1`, `<pool>-2`… for several), or one with the
//!   defaults when it has none, to every peer from every node, as the legacy format did;
//! - `bgp-communities` becomes one `Community` named `bgp-communities`;
//! - peers are named `peer-<address>` (`-2`, `-3`… for a repeated address).
//!
//! Names that are not valid Kubernetes names are rewritten (with a note). Notes on these objects
//! name the legacy key (`config.peers[0].ebgp-multihop`).

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde::Deserialize;

use super::convert::alias_name;
use super::metallb::{self, Object, Spec, Unknown};
use super::{ImportError, Input, Note, Origin};
use crate::model::ObjectKind;

/// Where the community aliases live in the legacy format.
const COMMUNITIES_PATH: &str = "config.bgp-communities";

/// ferrolb-side field names (as the CRs spell them) and the legacy keys they come from.
const LEGACY_KEYS: &[(&str, &str)] = &[
    ("myASN", "my-asn"),
    ("peerASN", "peer-asn"),
    ("peerAddress", "peer-address"),
    ("sourceAddress", "source-address"),
    ("peerPort", "peer-port"),
    ("holdTime", "hold-time"),
    ("keepaliveTime", "keepalive-time"),
    ("routerID", "router-id"),
    ("nodeSelectors", "node-selectors"),
    ("bfdProfile", "bfd-profile"),
    ("ebgpMultiHop", "ebgp-multihop"),
    ("autoAssign", "auto-assign"),
    ("avoidBuggyIPs", "avoid-buggy-ips"),
    ("aggregationLength", "aggregation-length"),
    ("aggregationLengthV6", "aggregation-length-v6"),
    ("localPref", "localpref"),
    ("receiveInterval", "receive-interval"),
    ("transmitInterval", "transmit-interval"),
    ("detectMultiplier", "detect-multiplier"),
    ("echoInterval", "echo-interval"),
    ("echoMode", "echo-mode"),
    ("passiveMode", "passive-mode"),
    ("minimumTtl", "minimum-ttl"),
    // An L2 advertisement's interfaces follow from the pool's protocol in the legacy format.
    ("interfaces", "protocol"),
];

/// The legacy key path of `spec.<field>` of an object made from the entry at `path`.
pub(super) fn field_path(path: &str, field: &str) -> String {
    let rest = field.strip_prefix("spec.").unwrap_or(field);
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    let (head, tail) = rest.split_at(end);
    let key = LEGACY_KEYS
        .iter()
        .find(|(cr, _)| *cr == head)
        .map_or(head, |(_, legacy)| legacy);
    if field == "metadata.name" {
        return format!("{path}.name");
    }
    if path == COMMUNITIES_PATH {
        // A map from alias to value: the note names the alias.
        return path.to_owned();
    }
    format!("{path}.{key}{tail}")
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "kebab-case")]
struct Config {
    peers: Vec<Peer>,
    bgp_communities: BTreeMap<String, String>,
    address_pools: Vec<Pool>,
    bfd_profiles: Vec<BfdProfile>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "kebab-case")]
struct Peer {
    my_asn: i64,
    peer_asn: i64,
    peer_address: String,
    source_address: String,
    peer_port: i64,
    hold_time: String,
    keepalive_time: String,
    router_id: String,
    node_selectors: Vec<NodeSelector>,
    password: String,
    bfd_profile: String,
    ebgp_multihop: bool,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "kebab-case")]
struct NodeSelector {
    match_labels: BTreeMap<String, String>,
    match_expressions: Vec<Requirement>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
struct Requirement {
    key: String,
    operator: String,
    values: Vec<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "kebab-case")]
struct Pool {
    name: String,
    protocol: String,
    addresses: Vec<String>,
    avoid_buggy_ips: bool,
    auto_assign: Option<bool>,
    bgp_advertisements: Vec<BgpAdvertisement>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "kebab-case")]
struct BgpAdvertisement {
    aggregation_length: Option<i64>,
    aggregation_length_v6: Option<i64>,
    localpref: i64,
    communities: Vec<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "kebab-case")]
struct BfdProfile {
    name: String,
    receive_interval: Option<i64>,
    transmit_interval: Option<i64>,
    detect_multiplier: Option<i64>,
    echo_interval: Option<i64>,
    echo_mode: bool,
    passive_mode: bool,
    minimum_ttl: Option<i64>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// Reads the `config` text of the ConfigMap at `origin`.
pub(super) fn read(
    origin: &Origin,
    namespace: &str,
    text: &str,
) -> Result<(Vec<Input>, Vec<Note>), ImportError> {
    let value: serde_json::Value = serde_saphyr::from_str(text)
        .map_err(|err| origin.error("data.config", format!("not valid YAML: {err}")))?;
    let config: Config = if value.is_null() {
        Config::default()
    } else {
        serde_path_to_error::deserialize(value).map_err(|err| {
            origin.error(&format!("config.{}", err.path()), err.inner().to_string())
        })?
    };
    let mut legacy = Legacy {
        origin,
        namespace,
        inputs: Vec::new(),
        notes: Vec::new(),
        names: HashSet::new(),
    };
    legacy.unknown("config", &config.unknown);
    legacy.communities(&config.bgp_communities);
    for (i, profile) in config.bfd_profiles.into_iter().enumerate() {
        legacy.bfd_profile(i, profile);
    }
    for (i, pool) in config.address_pools.into_iter().enumerate() {
        legacy.pool(i, pool);
    }
    for (i, peer) in config.peers.into_iter().enumerate() {
        legacy.peer(i, peer);
    }
    Ok((legacy.inputs, legacy.notes))
}

struct Legacy<'a> {
    origin: &'a Origin,
    namespace: &'a str,
    inputs: Vec<Input>,
    notes: Vec<Note>,
    /// Generated names per kind, to keep them apart.
    names: HashSet<(ObjectKind, String)>,
}

impl Legacy<'_> {
    /// A note at `field`, a legacy key path (the ConfigMap's origin has no legacy path).
    fn note(&mut self, field: &str, message: impl Into<String>) {
        self.notes.push(self.origin.note(field, message));
    }

    fn unknown(&mut self, path: &str, unknown: &Unknown) {
        for key in unknown.keys() {
            self.note(
                &format!("{path}.{key}"),
                "not a legacy MetalLB key this converter knows; dropped",
            );
        }
    }

    /// A valid, unused name of `kind` for `wanted`; a note at `field` when it had to change.
    fn name(&mut self, kind: ObjectKind, field: &str, wanted: &str) -> String {
        let name = self.unique(kind, wanted);
        if name != wanted {
            self.note(
                field,
                format!(
                    "{wanted:?} is not a valid or unique Kubernetes name; the {} is named {name:?}",
                    kind.as_str()
                ),
            );
        }
        name
    }

    /// `wanted` as a valid name of `kind` not generated before (`-2`, `-3`… appended).
    fn unique(&mut self, kind: ObjectKind, wanted: &str) -> String {
        let base = alias_name(wanted);
        let mut name = base.clone();
        let mut n = 1;
        while !self.names.insert((kind, name.clone())) {
            n += 1;
            name = format!("{base}-{n}");
        }
        name
    }

    fn push(&mut self, path: String, name: String, spec: Spec) {
        let origin = Origin {
            legacy_path: Some(path),
            ..self.origin.clone()
        };
        self.inputs.push(Input {
            origin,
            object: Object {
                name,
                namespace: self.namespace.to_owned(),
                labels: BTreeMap::new(),
                spec,
            },
        });
    }

    fn communities(&mut self, communities: &BTreeMap<String, String>) {
        if communities.is_empty() {
            return;
        }
        let spec = metallb::CommunitySpec {
            communities: communities
                .iter()
                .map(|(name, value)| metallb::CommunityAlias {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            unknown: Unknown::new(),
        };
        let name = self.name(ObjectKind::Community, COMMUNITIES_PATH, "bgp-communities");
        self.push(COMMUNITIES_PATH.to_owned(), name, Spec::Community(spec));
    }

    fn bfd_profile(&mut self, index: usize, profile: BfdProfile) {
        let path = format!("config.bfd-profiles[{index}]");
        self.unknown(&path, &profile.unknown);
        let name = self.name(
            ObjectKind::BFDProfile,
            &format!("{path}.name"),
            &profile.name,
        );
        let spec = metallb::BfdSpec {
            receive_interval: profile.receive_interval,
            transmit_interval: profile.transmit_interval,
            detect_multiplier: profile.detect_multiplier,
            echo_interval: profile.echo_interval,
            echo_mode: profile.echo_mode,
            passive_mode: profile.passive_mode,
            minimum_ttl: profile.minimum_ttl,
            unknown: Unknown::new(),
        };
        self.push(path, name, Spec::BFDProfile(spec));
    }

    fn pool(&mut self, index: usize, pool: Pool) {
        let path = format!("config.address-pools[{index}]");
        self.unknown(&path, &pool.unknown);
        let name = self.name(
            ObjectKind::IPAddressPool,
            &format!("{path}.name"),
            &pool.name,
        );
        let spec = metallb::PoolSpec {
            addresses: pool.addresses,
            auto_assign: pool.auto_assign,
            avoid_buggy_ips: pool.avoid_buggy_ips,
            service_allocation: None,
            unknown: Unknown::new(),
        };
        self.push(path.clone(), name.clone(), Spec::IPAddressPool(spec));
        match pool.protocol.as_str() {
            "layer2" => {
                if !pool.bgp_advertisements.is_empty() {
                    self.note(
                        &format!("{path}.bgp-advertisements"),
                        "a layer2 pool has no BGP advertisements (MetalLB ignores them); dropped",
                    );
                }
                let adv_name = self.name(ObjectKind::L2Advertisement, &path, &name);
                let spec = metallb::L2Spec {
                    ip_address_pools: vec![name],
                    ..metallb::L2Spec::default()
                };
                self.push(path, adv_name, Spec::L2Advertisement(spec));
            }
            "bgp" => {
                let defaulted = pool.bgp_advertisements.is_empty();
                let advertisements = if defaulted {
                    vec![BgpAdvertisement::default()]
                } else {
                    pool.bgp_advertisements
                };
                let several = advertisements.len() > 1;
                for (i, advertisement) in advertisements.into_iter().enumerate() {
                    let adv_path = format!("{path}.bgp-advertisements[{i}]");
                    self.unknown(&adv_path, &advertisement.unknown);
                    let wanted = if several {
                        format!("{name}-{}", i + 1)
                    } else {
                        name.clone()
                    };
                    let adv_name = self.name(ObjectKind::BGPAdvertisement, &adv_path, &wanted);
                    let spec = metallb::BgpAdvertisementSpec {
                        aggregation_length: advertisement.aggregation_length,
                        aggregation_length_v6: advertisement.aggregation_length_v6,
                        local_pref: advertisement.localpref,
                        communities: advertisement.communities,
                        ip_address_pools: vec![name.clone()],
                        ..metallb::BgpAdvertisementSpec::default()
                    };
                    // Without entries the path names the pool, where the default comes from.
                    let origin_path = if defaulted { path.clone() } else { adv_path };
                    self.push(origin_path, adv_name, Spec::BGPAdvertisement(spec));
                }
            }
            other => self.note(
                &format!("{path}.protocol"),
                format!(
                    "protocol {other:?} is neither layer2 nor bgp; the pool is converted without \
                     an advertisement, so its addresses are assigned but not announced"
                ),
            ),
        }
    }

    fn peer(&mut self, index: usize, peer: Peer) {
        let path = format!("config.peers[{index}]");
        self.unknown(&path, &peer.unknown);
        let name = self.unique(
            ObjectKind::BGPPeer,
            &format!("peer-{}", peer.peer_address.replace([':', '.'], "-")),
        );
        let node_selectors = peer
            .node_selectors
            .into_iter()
            .enumerate()
            .map(|(i, selector)| {
                self.unknown(&format!("{path}.node-selectors[{i}]"), &selector.unknown);
                label_selector(selector)
            })
            .collect();
        let spec = metallb::PeerSpec {
            my_asn: peer.my_asn,
            peer_asn: peer.peer_asn,
            peer_address: peer.peer_address,
            source_address: peer.source_address,
            peer_port: peer.peer_port,
            hold_time: peer.hold_time,
            keepalive_time: peer.keepalive_time,
            router_id: peer.router_id,
            node_selectors,
            password: peer.password,
            bfd_profile: peer.bfd_profile,
            ebgp_multi_hop: peer.ebgp_multihop,
            ..metallb::PeerSpec::default()
        };
        self.push(path, name, Spec::BGPPeer(Box::new(spec)));
    }
}

fn label_selector(selector: NodeSelector) -> LabelSelector {
    LabelSelector {
        match_labels: (!selector.match_labels.is_empty()).then_some(selector.match_labels),
        match_expressions: (!selector.match_expressions.is_empty()).then(|| {
            selector
                .match_expressions
                .into_iter()
                .map(|r| LabelSelectorRequirement {
                    key: r.key,
                    operator: r.operator,
                    values: (!r.values.is_empty()).then_some(r.values),
                })
                .collect()
        }),
    }
}
