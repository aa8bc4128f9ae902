//! MetalLB objects to ferrolb objects, field by field.
//!
//! What differs, and how it is handled (each difference in an input object is one [`Note`]):
//! - names: ferrolb kinds are cluster-scoped; see [`Names`];
//! - `BGPPeer.ebgpMultiHop: true` becomes TTL 255 (what FRR, MetalLB's default BGP backend, uses
//!   for `ebgp-multihop` without a hop count); `enableGracefulRestart: true` becomes
//!   `gracefulRestart.restartTime: 120s` (FRR's default restart time);
//! - `disableMP: false` (MetalLB up to 0.14 in FRR mode: IPv4 and IPv6 over one session) becomes
//!   `dualStackAddressFamily: true`;
//! - a peer in a `vrf` or over an unnumbered `interface` is left out: ferrolb peers from the
//!   default VRF by address, and a session there would reach a different network. References to
//!   it are removed; a `BGPAdvertisement` whose every listed peer was left out is left out too,
//!   since an empty `peers` list would mean "all peers";
//! - BFD echo mode does not exist in ferrolb (asynchronous mode only, RFC 5880 §6.1);
//! - an `L2Advertisement` without `interfaces`: MetalLB answers on every interface, ferrolb only on
//!   interfaces whose subnet holds the address (SPEC §5);
//! - a CIDR with host bits set, which MetalLB widens to its network, is written as that network;
//! - MetalLB's "unset" encodings (priority 0, localPref 0, peerPort 0) become unset fields.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use kube::core::Selector;

use super::metallb::{self, Object, Spec, Unknown};
use super::{Converted, Input, Note, Options, Origin};
use crate::addresses::{AddressError, AddressRange};
use crate::community::CommunityValue;
use crate::crd::{self, bfd_profile, bgp_advertisement, bgp_peer};
use crate::model::ObjectKind;

/// TTL for `ebgpMultiHop: true`: FRR's `ebgp-multihop` without a count allows 255 hops.
const MULTIHOP_TTL: i64 = 255;
/// Restart time for `enableGracefulRestart: true`: FRR's default `graceful-restart restart-time`.
const GRACEFUL_RESTART_TIME: &str = "120s";
/// Label key of the selector that replaces one ferrolb cannot evaluate; nodes never carry it.
pub(super) const UNCONVERTED_SELECTOR_KEY: &str = "ferrolb.io/unconverted-selector";

/// Converts `inputs`, in order; each result carries the origin of the object it was made from.
pub(super) fn convert(
    inputs: &[Input],
    options: &Options,
    notes: &mut Vec<Note>,
) -> Vec<(Origin, Converted)> {
    let mut converter = Converter {
        options,
        names: Names::default(),
        secret_names: HashSet::new(),
        alias_renames: HashMap::new(),
        left_out_peers: HashSet::new(),
        notes,
    };
    converter.plan(inputs);
    let mut out = Vec::new();
    for input in inputs {
        for object in converter.object(input) {
            out.push((input.origin.clone(), object));
        }
    }
    out
}

/// ferrolb names of MetalLB objects. The first object of a kind keeps its name; a later one of the
/// same kind and name from another namespace becomes `<namespace>-<name>` (then `-2`, `-3`…).
#[derive(Default)]
struct Names {
    assigned: HashMap<(ObjectKind, String, String), String>,
    taken: HashSet<(ObjectKind, String)>,
}

impl Names {
    /// Assigns a name; `Some(new)` when it differs from the MetalLB name.
    fn assign(&mut self, kind: ObjectKind, namespace: &str, name: &str) -> Option<String> {
        let key = (kind, namespace.to_owned(), name.to_owned());
        if self.assigned.contains_key(&key) {
            // The same object again: it replaces the first, as `kubectl apply` would.
            return None;
        }
        let mut candidate = name.to_owned();
        let mut n = 1;
        while self.taken.contains(&(kind, candidate.clone())) {
            n += 1;
            candidate = if n == 2 {
                format!("{namespace}-{name}")
            } else {
                format!("{namespace}-{name}-{n}")
            };
        }
        self.taken.insert((kind, candidate.clone()));
        self.assigned.insert(key, candidate.clone());
        (candidate != name).then_some(candidate)
    }

    /// The ferrolb name of a reference from `namespace`; unchanged when no such object was read.
    fn resolve(&self, kind: ObjectKind, namespace: &str, name: &str) -> String {
        self.assigned
            .get(&(kind, namespace.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    }
}

struct Converter<'a> {
    options: &'a Options,
    names: Names,
    secret_names: HashSet<String>,
    /// Community alias names ferrolb refuses, and what they become.
    alias_renames: HashMap<String, String>,
    /// `(namespace, name)` of peers that are not converted.
    left_out_peers: HashSet<(String, String)>,
    notes: &'a mut Vec<Note>,
}

impl Converter<'_> {
    fn note(&mut self, origin: &Origin, field: &str, message: impl Into<String>) {
        self.notes.push(origin.note(field, message));
    }

    /// Decisions that references depend on: peers left out, names, alias renames.
    fn plan(&mut self, inputs: &[Input]) {
        for Input { origin, object } in inputs {
            if let Spec::BGPPeer(spec) = &object.spec
                && let Some((field, message)) = left_out_reason(spec)
            {
                self.note(origin, field, message);
                self.left_out_peers
                    .insert((object.namespace.clone(), object.name.clone()));
                continue;
            }
            let kind = object.kind();
            if let Some(new) = self.names.assign(kind, &object.namespace, &object.name) {
                self.note(
                    origin,
                    "metadata.name",
                    format!(
                        "ferrolb kinds are cluster-scoped and another {} is already named {:?}; \
                         renamed to {new:?} (references from namespace {} follow)",
                        kind.as_str(),
                        object.name,
                        object.namespace
                    ),
                );
            }
            if let Spec::Community(spec) = &object.spec {
                for (i, alias) in spec.communities.iter().enumerate() {
                    if CommunityValue::is_alias_name(&alias.name) {
                        continue;
                    }
                    let new = alias_name(&alias.name);
                    self.note(
                        origin,
                        &format!("spec.communities[{i}].name"),
                        format!(
                            "alias {:?} is not a lowercase name of letters, digits, '-' and '.'; \
                             renamed to {new:?} (advertisements using it follow)",
                            alias.name
                        ),
                    );
                    self.alias_renames.insert(alias.name.clone(), new);
                }
            }
        }
    }

    fn object(&mut self, input: &Input) -> Vec<Converted> {
        let Input { origin, object } = input;
        let name = self
            .names
            .resolve(object.kind(), &object.namespace, &object.name);
        let metadata = ObjectMeta {
            name: Some(name.clone()),
            labels: (!object.labels.is_empty()).then(|| object.labels.clone()),
            ..ObjectMeta::default()
        };
        match &object.spec {
            Spec::IPAddressPool(spec) => {
                vec![Converted::IPAddressPool(crd::IPAddressPool {
                    metadata,
                    spec: self.pool(origin, spec),
                    status: None,
                })]
            }
            Spec::L2Advertisement(spec) => {
                vec![Converted::L2Advertisement(crd::L2Advertisement {
                    metadata,
                    spec: self.l2_advertisement(origin, object, spec),
                    status: None,
                })]
            }
            Spec::BGPAdvertisement(spec) => self
                .bgp_advertisement(origin, object, spec)
                .map(|spec| {
                    Converted::BGPAdvertisement(crd::BGPAdvertisement {
                        metadata,
                        spec,
                        status: None,
                    })
                })
                .into_iter()
                .collect(),
            Spec::BGPPeer(spec) => {
                if self
                    .left_out_peers
                    .contains(&(object.namespace.clone(), object.name.clone()))
                {
                    return Vec::new();
                }
                let (secret, spec) = self.peer(origin, object, &name, spec);
                let peer = Converted::BGPPeer(crd::BGPPeer {
                    metadata,
                    spec,
                    status: None,
                });
                secret
                    .into_iter()
                    .map(Converted::Secret)
                    .chain([peer])
                    .collect()
            }
            Spec::BFDProfile(spec) => vec![Converted::BFDProfile(crd::BFDProfile {
                metadata,
                spec: self.bfd_profile(origin, spec),
                status: None,
            })],
            Spec::Community(spec) => vec![Converted::Community(crd::Community {
                metadata,
                spec: self.community(origin, spec),
                status: None,
            })],
        }
    }

    fn unknown(&mut self, origin: &Origin, prefix: &str, unknown: &Unknown) {
        for key in unknown.keys() {
            self.note(
                origin,
                &format!("{prefix}.{key}"),
                "not a MetalLB field this converter knows (a newer MetalLB?); dropped",
            );
        }
    }

    /// The selectors ferrolb can evaluate; any other is replaced by one that matches nothing.
    fn selectors(
        &mut self,
        origin: &Origin,
        field: &str,
        selectors: &[LabelSelector],
    ) -> Vec<LabelSelector> {
        selectors
            .iter()
            .enumerate()
            .map(|(i, selector)| match Selector::try_from(selector.clone()) {
                Ok(_) => selector.clone(),
                Err(err) => {
                    self.note(
                        origin,
                        &format!("{field}[{i}]"),
                        format!(
                            "not a label selector ferrolb can evaluate ({err}); replaced by one \
                             that matches nothing ({UNCONVERTED_SELECTOR_KEY} Exists), rewrite it"
                        ),
                    );
                    matches_nothing()
                }
            })
            .collect()
    }

    fn pool(&mut self, origin: &Origin, spec: &metallb::PoolSpec) -> crd::IPAddressPoolSpec {
        self.unknown(origin, "spec", &spec.unknown);
        let addresses = spec
            .addresses
            .iter()
            .enumerate()
            .map(|(i, entry)| crd::AddressEntry(self.address(origin, i, entry)))
            .collect();
        let service_allocation = spec.service_allocation.as_ref().and_then(|allocation| {
            self.unknown(origin, "spec.serviceAllocation", &allocation.unknown);
            let converted = crd::ServiceAllocation {
                priority: (allocation.priority != 0).then_some(allocation.priority),
                namespaces: allocation.namespaces.clone(),
                namespace_selectors: self.selectors(
                    origin,
                    "spec.serviceAllocation.namespaceSelectors",
                    &allocation.namespace_selectors,
                ),
                service_selectors: self.selectors(
                    origin,
                    "spec.serviceAllocation.serviceSelectors",
                    &allocation.service_selectors,
                ),
            };
            (converted != crd::ServiceAllocation::default()).then_some(converted)
        });
        crd::IPAddressPoolSpec {
            addresses,
            auto_assign: spec.auto_assign.unwrap_or(true),
            avoid_buggy_ips: spec.avoid_buggy_ips,
            service_allocation,
        }
    }

    /// One address entry as ferrolb writes it: MetalLB tolerates spaces around a range's `-`
    /// and widens a CIDR with host bits set to its network.
    fn address(&mut self, origin: &Origin, index: usize, entry: &str) -> String {
        let compact: String = entry
            .split('-')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("-");
        match AddressRange::parse(&compact) {
            Err(AddressError::HostBitsSet { network, .. }) => {
                self.note(
                    origin,
                    &format!("spec.addresses[{index}]"),
                    format!(
                        "{entry:?} has host bits set; MetalLB uses the whole network, written as \
                         {network:?}"
                    ),
                );
                network
            }
            _ => compact,
        }
    }

    fn pool_names(&self, object: &Object, pools: &[String]) -> Vec<String> {
        pools
            .iter()
            .map(|pool| {
                self.names
                    .resolve(ObjectKind::IPAddressPool, &object.namespace, pool)
            })
            .collect()
    }

    fn l2_advertisement(
        &mut self,
        origin: &Origin,
        object: &Object,
        spec: &metallb::L2Spec,
    ) -> crd::L2AdvertisementSpec {
        self.unknown(origin, "spec", &spec.unknown);
        if spec.interfaces.is_empty() {
            self.note(
                origin,
                "spec.interfaces",
                "no interfaces listed: MetalLB answers ARP/NDP on every interface, ferrolb only on \
                 interfaces whose subnet holds the address; list the interfaces if the pool is \
                 not in a node subnet",
            );
        }
        crd::L2AdvertisementSpec {
            ip_address_pools: self.pool_names(object, &spec.ip_address_pools),
            ip_address_pool_selectors: spec.ip_address_pool_selectors.clone(),
            node_selectors: self.selectors(origin, "spec.nodeSelectors", &spec.node_selectors),
            interfaces: spec.interfaces.clone(),
            service_selectors: Vec::new(),
            preferred_nodes: Vec::new(),
        }
    }

    fn bgp_advertisement(
        &mut self,
        origin: &Origin,
        object: &Object,
        spec: &metallb::BgpAdvertisementSpec,
    ) -> Option<crd::BGPAdvertisementSpec> {
        self.unknown(origin, "spec", &spec.unknown);
        let mut peers = Vec::new();
        for (i, peer) in spec.peers.iter().enumerate() {
            if self
                .left_out_peers
                .contains(&(object.namespace.clone(), peer.clone()))
            {
                self.note(
                    origin,
                    &format!("spec.peers[{i}]"),
                    format!("peer {peer:?} is not converted; removed from the list"),
                );
            } else {
                peers.push(
                    self.names
                        .resolve(ObjectKind::BGPPeer, &object.namespace, peer),
                );
            }
        }
        if !spec.peers.is_empty() && peers.is_empty() {
            self.note(
                origin,
                "spec.peers",
                "none of the listed peers is converted, and an empty list would mean every \
                 peer; advertisement not converted",
            );
            return None;
        }
        let communities = spec
            .communities
            .iter()
            .map(|community| {
                let name = self
                    .alias_renames
                    .get(community)
                    .cloned()
                    .unwrap_or_else(|| community.clone());
                crd::CommunityRef(name)
            })
            .collect();
        Some(crd::BGPAdvertisementSpec {
            ip_address_pools: self.pool_names(object, &spec.ip_address_pools),
            ip_address_pool_selectors: spec.ip_address_pool_selectors.clone(),
            aggregation_length: spec
                .aggregation_length
                .unwrap_or(bgp_advertisement::DEFAULT_AGGREGATION_LENGTH),
            aggregation_length_v6: spec
                .aggregation_length_v6
                .unwrap_or(bgp_advertisement::DEFAULT_AGGREGATION_LENGTH_V6),
            local_pref: (spec.local_pref != 0).then_some(spec.local_pref),
            communities,
            peers,
            node_selectors: self.selectors(origin, "spec.nodeSelectors", &spec.node_selectors),
            service_selectors: Vec::new(),
        })
    }

    /// The peer, and the Secret made from its plain-text password, if any.
    fn peer(
        &mut self,
        origin: &Origin,
        object: &Object,
        name: &str,
        spec: &metallb::PeerSpec,
    ) -> (Option<Secret>, crd::BGPPeerSpec) {
        self.unknown(origin, "spec", &spec.unknown);
        let dynamic_asn = match spec.dynamic_asn.as_str() {
            "" => None,
            "internal" => Some(crd::DynamicAsn::Internal),
            "external" => Some(crd::DynamicAsn::External),
            other => {
                self.note(
                    origin,
                    "spec.dynamicASN",
                    format!("{other:?} is neither internal nor external; dropped"),
                );
                None
            }
        };
        let (secret, password_secret) = self.password(origin, object, name, spec);
        let graceful_restart = spec.enable_graceful_restart.then(|| {
            self.note(
                origin,
                "spec.enableGracefulRestart",
                format!(
                    "true: restart time {GRACEFUL_RESTART_TIME} chosen (FRR's default) for \
                     gracefulRestart.restartTime"
                ),
            );
            crd::GracefulRestart {
                restart_time: crd::DurationString(GRACEFUL_RESTART_TIME.to_owned()),
            }
        });
        let ebgp_multi_hop = spec.ebgp_multi_hop.then(|| {
            self.note(
                origin,
                "spec.ebgpMultiHop",
                format!(
                    "true: TTL {MULTIHOP_TTL} chosen (what FRR sends for ebgp-multihop without a \
                     count); lower it to the real hop count"
                ),
            );
            MULTIHOP_TTL
        });
        if spec.disable_mp == Some(false) {
            self.note(
                origin,
                "spec.disableMP",
                "false: MetalLB (FRR mode, up to 0.14) carries IPv4 and IPv6 on this one session; \
                 dualStackAddressFamily: true keeps that",
            );
        }
        let text = |value: &str| (!value.is_empty()).then(|| value.to_owned());
        let duration = |value: &str| text(value).map(crd::DurationString);
        let address = |value: &str| text(value).map(crd::IpAddressString);
        let bgp_peer_spec = crd::BGPPeerSpec {
            my_asn: spec.my_asn,
            peer_asn: (spec.peer_asn != 0).then_some(spec.peer_asn),
            dynamic_asn,
            peer_address: crd::IpAddressString(spec.peer_address.clone()),
            source_address: address(&spec.source_address),
            peer_port: if spec.peer_port == 0 {
                bgp_peer::DEFAULT_PEER_PORT
            } else {
                spec.peer_port
            },
            hold_time: duration(&spec.hold_time)
                .unwrap_or_else(|| crd::DurationString(bgp_peer::DEFAULT_HOLD_TIME.to_owned())),
            keepalive_time: duration(&spec.keepalive_time),
            connect_time: duration(&spec.connect_time),
            router_id: address(&spec.router_id),
            node_selectors: self.selectors(origin, "spec.nodeSelectors", &spec.node_selectors),
            password_secret,
            bfd_profile: text(&spec.bfd_profile).map(|profile| {
                self.names
                    .resolve(ObjectKind::BFDProfile, &object.namespace, &profile)
            }),
            graceful_restart,
            ebgp_multi_hop,
            dual_stack_address_family: spec.dual_stack_address_family
                || spec.disable_mp == Some(false),
            passive: false,
        };
        (secret, bgp_peer_spec)
    }

    /// `password` becomes a Secret; `passwordSecret` carries over (its namespace defaulting to
    /// MetalLB's, as MetalLB reads it).
    fn password(
        &mut self,
        origin: &Origin,
        object: &Object,
        name: &str,
        spec: &metallb::PeerSpec,
    ) -> (Option<Secret>, Option<crd::SecretReference>) {
        if let Some(reference) = spec.password_secret.as_ref().filter(|r| !r.name.is_empty()) {
            if !spec.password.is_empty() {
                self.note(
                    origin,
                    "spec.password",
                    "both password and passwordSecret are set (MetalLB refuses that); \
                     passwordSecret kept, password dropped",
                );
            }
            let namespace = if reference.namespace.is_empty() {
                object.namespace.clone()
            } else {
                reference.namespace.clone()
            };
            if namespace != self.options.secret_namespace {
                self.note(
                    origin,
                    "spec.passwordSecret",
                    format!(
                        "refers to Secret {namespace}/{}: ferrolb reads key `password` from it \
                         there; copy it to {} and update the reference before removing MetalLB \
                         (deleting its namespace deletes the Secret)",
                        reference.name, self.options.secret_namespace
                    ),
                );
            }
            return (
                None,
                Some(crd::SecretReference {
                    namespace,
                    name: reference.name.clone(),
                }),
            );
        }
        if spec.password.is_empty() {
            return (None, None);
        }
        let mut secret_name = format!("{name}-bgp-password");
        let mut n = 1;
        while !self.secret_names.insert(secret_name.clone()) {
            n += 1;
            secret_name = format!("{name}-bgp-password-{n}");
        }
        let namespace = self.options.secret_namespace.clone();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(secret_name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            string_data: Some([("password".to_owned(), spec.password.clone())].into()),
            ..Secret::default()
        };
        (
            Some(secret),
            Some(crd::SecretReference {
                namespace,
                name: secret_name,
            }),
        )
    }

    fn bfd_profile(&mut self, origin: &Origin, spec: &metallb::BfdSpec) -> crd::BFDProfileSpec {
        self.unknown(origin, "spec", &spec.unknown);
        if spec.echo_mode {
            let interval = spec.echo_interval.map_or_else(String::new, |ms| {
                format!(" (echoInterval {ms} ms dropped too)")
            });
            self.note(
                origin,
                "spec.echoMode",
                format!(
                    "BFD echo is not supported (ferrolb runs asynchronous mode, RFC 5880 section \
                     6.1); failure detection uses receiveInterval x detectMultiplier instead{interval}"
                ),
            );
        }
        crd::BFDProfileSpec {
            receive_interval: spec
                .receive_interval
                .unwrap_or(bfd_profile::DEFAULT_INTERVAL_MS),
            transmit_interval: spec
                .transmit_interval
                .unwrap_or(bfd_profile::DEFAULT_INTERVAL_MS),
            detect_multiplier: spec
                .detect_multiplier
                .unwrap_or(bfd_profile::DEFAULT_DETECT_MULTIPLIER),
            passive_mode: spec.passive_mode,
            minimum_ttl: spec.minimum_ttl.unwrap_or(bfd_profile::DEFAULT_MINIMUM_TTL),
        }
    }

    fn community(&mut self, origin: &Origin, spec: &metallb::CommunitySpec) -> crd::CommunitySpec {
        self.unknown(origin, "spec", &spec.unknown);
        crd::CommunitySpec {
            communities: spec
                .communities
                .iter()
                .map(|alias| crd::CommunityAlias {
                    name: self
                        .alias_renames
                        .get(&alias.name)
                        .cloned()
                        .unwrap_or_else(|| alias.name.clone()),
                    value: crd::CommunityValue(alias.value.clone()),
                })
                .collect(),
        }
    }
}

/// Why a peer is not converted: it would peer somewhere else than MetalLB did.
fn left_out_reason(spec: &metallb::PeerSpec) -> Option<(&'static str, String)> {
    if !spec.vrf.is_empty() {
        return Some((
            "spec.vrf",
            format!(
                "VRF {:?}: ferrolb peers from the default VRF only, where this session would reach \
                 a different network; peer not converted",
                spec.vrf
            ),
        ));
    }
    if !spec.interface.is_empty() {
        return Some((
            "spec.interface",
            format!(
                "BGP unnumbered over interface {:?} is not supported (ferrolb peers by address); \
                 peer not converted",
                spec.interface
            ),
        ));
    }
    None
}

/// A selector no node matches: nodes never carry [`UNCONVERTED_SELECTOR_KEY`].
fn matches_nothing() -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: UNCONVERTED_SELECTOR_KEY.to_owned(),
            operator: "Exists".to_owned(),
            values: None,
        }]),
        match_labels: None,
    }
}

/// `input` as a ferrolb object or alias name: lowercase letters, digits, `-` and `.`, starting
/// and ending with a letter or digit, at most 63 characters.
pub(super) fn alias_name(input: &str) -> String {
    let mapped: String = input
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    let trimmed: String = mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(63)
        .collect();
    let trimmed = trimmed.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "unnamed".to_owned()
    } else {
        trimmed.to_owned()
    }
}
