//! The validated configuration snapshot (SPEC §1, §2).
//!
//! Contract: [`build`] is a pure function from the ferrolb custom resources (plus Namespaces, for
//! pool namespace selectors) to an immutable [`Config`] and a list of [`Diagnostic`]s. No I/O, no
//! clock. The controller and every speaker build the same snapshot from the same objects and share
//! it behind an `Arc`; they never re-parse strings: addresses are interval sets, durations are
//! [`Duration`]s, selectors are typed [`Selector`]s with `matches(labels)`.
//!
//! One bad object never invalidates the others:
//! - an object that breaks a per-object rule ([`objects`]) is reported (`Invalid`) and left out;
//! - of two overlapping pools the older (by `creationTimestamp`, then name) keeps working, the newer
//!   is reported (`Conflict`) and left out;
//! - a reference to a pool, peer, community alias or BFD profile that is missing (or left out) is
//!   reported (`MissingReference`); the referring object keeps working with the references that
//!   resolve (a peer whose BFD profile is missing runs without BFD rather than losing its session);
//! - a community alias defined twice: the older definition wins, the newer is reported;
//! - two advertisements that would send the same prefix to the same peer from the same nodes with
//!   different LOCAL_PREF: the newer is reported (`Conflict`) and left out. Statically, "same nodes"
//!   and "same Services" mean equal selectors or no selector on either side; the speaker
//!   resolves the remaining runtime cases;
//! - an aggregation length shorter than a pool's own blocks would announce addresses outside the
//!   pool: that pool is dropped from that advertisement and reported.

pub mod diagnostic;
mod objects;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
pub use kube::core::{Selector, SelectorExt};

pub use self::diagnostic::{Diagnostic, ObjectKind, Reason, Severity};
pub use self::objects::DEFAULT_CONNECT_TIME;
use crate::addresses::{AddressRange, AddressSet, Family};
use crate::community::CommunityValue;
use crate::crd;

/// Everything the snapshot is built from, as listed from the API server or read from files.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub pools: Vec<crd::IPAddressPool>,
    pub l2_advertisements: Vec<crd::L2Advertisement>,
    pub bgp_advertisements: Vec<crd::BGPAdvertisement>,
    pub peers: Vec<crd::BGPPeer>,
    pub bfd_profiles: Vec<crd::BFDProfile>,
    pub communities: Vec<crd::Community>,
    /// For `serviceAllocation.namespaceSelectors`.
    pub namespaces: Vec<Namespace>,
}

/// The validated configuration. Every map is keyed by object name, so iteration is sorted and
/// deterministic.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub pools: BTreeMap<String, Pool>,
    pub l2_advertisements: BTreeMap<String, L2Advertisement>,
    pub bgp_advertisements: BTreeMap<String, BgpAdvertisement>,
    pub peers: BTreeMap<String, Peer>,
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    /// Community aliases by alias name.
    pub communities: BTreeMap<String, CommunityValue>,
}

impl Config {
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.get(name)
    }

    /// Pools in the order allocation tries them among equals: priority (lower first, unset last),
    /// then name. The allocator puts matching restricted pools before unrestricted ones (SPEC §4).
    pub fn pools_by_priority(&self) -> Vec<&Pool> {
        let mut pools: Vec<&Pool> = self.pools.values().collect();
        pools.sort_by(|a, b| {
            (a.priority.unwrap_or(u32::MAX), &a.name)
                .cmp(&(b.priority.unwrap_or(u32::MAX), &b.name))
        });
        pools
    }

    /// The pool holding `ip`, if any (pools in the snapshot never overlap).
    pub fn pool_of(&self, ip: IpAddr) -> Option<&Pool> {
        self.pools.values().find(|p| p.addresses.contains(ip))
    }
}

/// A usable `IPAddressPool`.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The `spec.addresses` entries in the order written (for messages and status).
    pub entries: Vec<AddressRange>,
    pub addresses: AddressSet,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub priority: Option<u32>,
    /// `None`: any Service may use the pool.
    pub restriction: Option<PoolRestriction>,
}

impl Pool {
    /// Addresses the pool can hand out in `family`.
    pub fn capacity(&self, family: Family) -> u128 {
        self.addresses.capacity(family, self.avoid_buggy_ips)
    }

    /// Whether the pool may hand out `ip` (inside it and not excluded by `avoidBuggyIPs`).
    pub fn may_assign(&self, ip: IpAddr) -> bool {
        let buggy = match ip {
            IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
            IpAddr::V6(_) => false,
        };
        self.addresses.contains(ip) && !(self.avoid_buggy_ips && buggy)
    }

    /// Whether a Service in `namespace` with `service_labels` may use the pool.
    pub fn allows(&self, namespace: &str, service_labels: &BTreeMap<String, String>) -> bool {
        self.restriction
            .as_ref()
            .is_none_or(|r| r.allows(namespace, service_labels))
    }
}

/// `serviceAllocation` of a pool, resolved against the Namespaces.
#[derive(Debug, Clone)]
pub struct PoolRestriction {
    /// Namespaces allowed (listed or selected); `None` when only Service selectors restrict.
    pub namespaces: Option<BTreeSet<String>>,
    /// Any one must match the Service; empty means no restriction by Service labels.
    pub service_selectors: Vec<Selector>,
}

impl PoolRestriction {
    pub fn allows(&self, namespace: &str, service_labels: &BTreeMap<String, String>) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|n| n.contains(namespace))
            && (self.service_selectors.is_empty()
                || self
                    .service_selectors
                    .iter()
                    .any(|s| s.matches(service_labels)))
    }
}

/// A usable `L2Advertisement`.
#[derive(Debug, Clone)]
pub struct L2Advertisement {
    pub name: String,
    /// Pools announced, resolved from names and selectors.
    pub pools: BTreeSet<String>,
    /// Any one must match the node; empty means every node.
    pub node_selectors: Vec<Selector>,
    /// Empty: any interface whose subnet holds the address.
    pub interfaces: Vec<String>,
    /// Any one must match the Service; empty means every Service.
    pub service_selectors: Vec<Selector>,
    pub preferred_nodes: Vec<PreferredNode>,
}

/// A node preference of an `L2Advertisement`.
#[derive(Debug, Clone)]
pub struct PreferredNode {
    /// 1 to 100.
    pub weight: u8,
    pub selector: Selector,
}

/// A usable `BGPAdvertisement`.
#[derive(Debug, Clone)]
pub struct BgpAdvertisement {
    pub name: String,
    pub pools: BTreeSet<String>,
    pub aggregation_length: u8,
    pub aggregation_length_v6: u8,
    pub local_pref: Option<u32>,
    /// Aliases resolved to values.
    pub communities: BTreeSet<CommunityValue>,
    /// Peers announced to, resolved (every usable peer when the spec names none).
    pub peers: BTreeSet<String>,
    pub node_selectors: Vec<Selector>,
    pub service_selectors: Vec<Selector>,
}

impl BgpAdvertisement {
    /// Prefix length routes of `family` are announced with.
    pub fn aggregation_length(&self, family: Family) -> u8 {
        match family {
            Family::V4 => self.aggregation_length,
            Family::V6 => self.aggregation_length_v6,
        }
    }
}

/// A usable `BGPPeer`.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub name: String,
    pub my_asn: u32,
    pub peer_asn: PeerAsn,
    pub address: IpAddr,
    pub port: u16,
    pub source_address: Option<IpAddr>,
    pub hold_time: Duration,
    /// As written, or a third of the hold time.
    pub keepalive_time: Duration,
    pub connect_time: Duration,
    pub router_id: Option<Ipv4Addr>,
    pub node_selectors: Vec<Selector>,
    pub password_secret: Option<SecretRef>,
    /// Only names a profile present in [`Config::bfd_profiles`].
    pub bfd_profile: Option<String>,
    /// Restart time, when graceful restart is on.
    pub graceful_restart: Option<Duration>,
    pub ebgp_multi_hop: Option<u8>,
    pub dual_stack_address_family: bool,
    pub passive: bool,
}

/// The AS a peer must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAsn {
    Fixed(u32),
    /// Same AS as ours (iBGP).
    Internal,
    /// Any AS but ours (eBGP).
    External,
}

/// A Secret by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

/// A usable `BFDProfile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    pub name: String,
    pub receive_interval: Duration,
    pub transmit_interval: Duration,
    pub detect_multiplier: u8,
    pub passive_mode: bool,
    pub minimum_ttl: u8,
}

/// Pools as an advertisement names them, before resolution.
#[derive(Debug, Clone)]
enum PoolSelection {
    All,
    Some {
        names: Vec<String>,
        selectors: Vec<Selector>,
    },
}

/// A community in an advertisement, before aliases are resolved.
#[derive(Debug, Clone)]
enum CommunityRefValue {
    Value(CommunityValue),
    Alias(String),
}

#[derive(Debug, Clone)]
struct L2AdvertisementDraft {
    name: String,
    pools: PoolSelection,
    node_selectors: Vec<Selector>,
    interfaces: Vec<String>,
    service_selectors: Vec<Selector>,
    preferred_nodes: Vec<PreferredNode>,
}

#[derive(Debug, Clone)]
struct BgpAdvertisementDraft {
    name: String,
    pools: PoolSelection,
    aggregation_length: u8,
    aggregation_length_v6: u8,
    local_pref: Option<u32>,
    communities: Vec<CommunityRefValue>,
    peers: Vec<String>,
    node_selectors: Vec<Selector>,
    service_selectors: Vec<Selector>,
    raw_node_selectors: Vec<LabelSelector>,
    raw_service_selectors: Vec<LabelSelector>,
}

/// Orders objects oldest first: by `creationTimestamp` (objects without one, e.g. from files, after
/// those with one), then by name.
fn age_key(meta: &ObjectMeta) -> (bool, Option<&Time>, &str) {
    let created = meta.creation_timestamp.as_ref();
    (
        created.is_none(),
        created,
        meta.name.as_deref().unwrap_or(""),
    )
}

fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// Builds the snapshot. See the module docs for which object wins each conflict.
pub fn build(objects: &Objects) -> (Config, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut config = Config::default();

    // Pools: oldest first; a pool overlapping an already accepted pool is left out.
    let mut pools: Vec<&crd::IPAddressPool> = objects.pools.iter().collect();
    pools.sort_by(|a, b| age_key(&a.metadata).cmp(&age_key(&b.metadata)));
    let all_pool_names: BTreeSet<&str> = pools.iter().map(|p| name_of(&p.metadata)).collect();
    for object in pools {
        let Some(pool) = keep(objects::pool(object, &objects.namespaces), &mut diagnostics) else {
            continue;
        };
        if let Some(diagnostic) = pool_conflict(&pool, &config) {
            diagnostics.push(diagnostic);
            continue;
        }
        config.pools.insert(pool.name.clone(), pool);
    }

    for object in &objects.bfd_profiles {
        if let Some(profile) = keep(objects::bfd_profile(object), &mut diagnostics) {
            config.bfd_profiles.insert(profile.name.clone(), profile);
        }
    }

    let mut communities: Vec<&crd::Community> = objects.communities.iter().collect();
    communities.sort_by(|a, b| age_key(&a.metadata).cmp(&age_key(&b.metadata)));
    for object in communities {
        let Some(aliases) = keep(objects::community(object), &mut diagnostics) else {
            continue;
        };
        for (index, alias, value) in aliases {
            match config.communities.entry(alias) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(taken) => diagnostics.push(Diagnostic::error(
                    ObjectKind::Community,
                    name_of(&object.metadata),
                    format!("spec.communities[{index}].name"),
                    Reason::Conflict,
                    format!(
                        "spec.communities[{index}].name: alias {:?} is already defined (the older definition is used)",
                        taken.key()
                    ),
                )),
            }
        }
    }

    for object in &objects.peers {
        let Some(mut peer) = keep(objects::peer(object), &mut diagnostics) else {
            continue;
        };
        if let Some(profile) = &peer.bfd_profile
            && !config.bfd_profiles.contains_key(profile)
        {
            diagnostics.push(Diagnostic::error(
                ObjectKind::BGPPeer,
                &peer.name,
                "spec.bfdProfile",
                Reason::MissingReference,
                format!("spec.bfdProfile: BFDProfile {profile:?} does not exist or is invalid; the session runs without BFD"),
            ));
            peer.bfd_profile = None;
        }
        config.peers.insert(peer.name.clone(), peer);
    }

    for object in &objects.l2_advertisements {
        let Some(draft) = keep(objects::l2_advertisement(object), &mut diagnostics) else {
            continue;
        };
        let pools = resolve_pools(
            ObjectKind::L2Advertisement,
            &draft.name,
            &draft.pools,
            &config,
            &all_pool_names,
            &mut diagnostics,
        );
        config.l2_advertisements.insert(
            draft.name.clone(),
            L2Advertisement {
                name: draft.name,
                pools,
                node_selectors: draft.node_selectors,
                interfaces: draft.interfaces,
                service_selectors: draft.service_selectors,
                preferred_nodes: draft.preferred_nodes,
            },
        );
    }

    let mut bgp: Vec<(&crd::BGPAdvertisement, BgpAdvertisementDraft)> = objects
        .bgp_advertisements
        .iter()
        .filter_map(|o| keep(objects::bgp_advertisement(o), &mut diagnostics).map(|d| (o, d)))
        .collect();
    bgp.sort_by(|a, b| age_key(&a.0.metadata).cmp(&age_key(&b.0.metadata)));
    let mut accepted: Vec<BgpAdvertisementDraft> = Vec::new();
    for (_, draft) in bgp {
        let advertisement =
            resolve_bgp_advertisement(&draft, &config, &all_pool_names, &mut diagnostics);
        if let Some(diagnostic) = local_pref_conflict(&draft, &advertisement, &accepted, &config) {
            diagnostics.push(diagnostic);
            continue;
        }
        config
            .bgp_advertisements
            .insert(advertisement.name.clone(), advertisement);
        accepted.push(draft);
    }

    diagnostics.sort();
    (config, diagnostics)
}

/// The value of a per-object check; its diagnostics go to `diagnostics` when it failed.
fn keep<T>(result: Result<T, Vec<Diagnostic>>, diagnostics: &mut Vec<Diagnostic>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(found) => {
            diagnostics.extend(found);
            None
        }
    }
}

/// A `Conflict` diagnostic when `pool` overlaps a pool already in the snapshot.
fn pool_conflict(pool: &Pool, config: &Config) -> Option<Diagnostic> {
    config.pools.values().find_map(|older| {
        let shared = pool.addresses.first_overlap(&older.addresses)?;
        let index = pool
            .entries
            .iter()
            .position(|e| AddressSet::from_ranges([*e]).overlaps(&older.addresses))
            .unwrap_or(0);
        Some(Diagnostic::error(
            ObjectKind::IPAddressPool,
            &pool.name,
            format!("spec.addresses[{index}]"),
            Reason::Conflict,
            format!(
                "spec.addresses[{index}] overlaps IPAddressPool {:?} ({shared}), which is older; this pool is not used",
                older.name
            ),
        ))
    })
}

/// Pool names an advertisement applies to; missing or unusable named pools are reported.
fn resolve_pools(
    kind: ObjectKind,
    name: &str,
    selection: &PoolSelection,
    config: &Config,
    all_pool_names: &BTreeSet<&str>,
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeSet<String> {
    match selection {
        PoolSelection::All => config.pools.keys().cloned().collect(),
        PoolSelection::Some { names, selectors } => {
            let mut pools = BTreeSet::new();
            for (i, pool) in names.iter().enumerate() {
                if config.pools.contains_key(pool) {
                    pools.insert(pool.clone());
                } else {
                    let why = if all_pool_names.contains(pool.as_str()) {
                        "is invalid or in conflict and not used"
                    } else {
                        "does not exist"
                    };
                    diagnostics.push(Diagnostic::error(
                        kind,
                        name,
                        format!("spec.ipAddressPools[{i}]"),
                        Reason::MissingReference,
                        format!("spec.ipAddressPools[{i}]: IPAddressPool {pool:?} {why}"),
                    ));
                }
            }
            for pool in config.pools.values() {
                if selectors.iter().any(|s| s.matches(&pool.labels)) {
                    pools.insert(pool.name.clone());
                }
            }
            pools
        }
    }
}

fn resolve_bgp_advertisement(
    draft: &BgpAdvertisementDraft,
    config: &Config,
    all_pool_names: &BTreeSet<&str>,
    diagnostics: &mut Vec<Diagnostic>,
) -> BgpAdvertisement {
    let kind = ObjectKind::BGPAdvertisement;
    let name = draft.name.as_str();
    let mut pools = resolve_pools(
        kind,
        name,
        &draft.pools,
        config,
        all_pool_names,
        diagnostics,
    );
    pools.retain(|pool_name| {
        let Some(pool) = config.pools.get(pool_name) else {
            return false;
        };
        let mut fits = true;
        for (family, field, length) in [
            (Family::V4, "spec.aggregationLength", draft.aggregation_length),
            (Family::V6, "spec.aggregationLengthV6", draft.aggregation_length_v6),
        ] {
            let needed = pool
                .addresses
                .ranges(family)
                .iter()
                .map(AddressRange::longest_block_prefix)
                .max();
            if let Some(needed) = needed
                && length < needed
            {
                diagnostics.push(Diagnostic::error(
                    kind,
                    name,
                    field,
                    Reason::Conflict,
                    format!(
                        "{field} {length} is shorter than IPAddressPool {pool_name:?}'s own prefix /{needed}: \
                         the aggregate would cover addresses outside the pool; the pool is not announced by this advertisement"
                    ),
                ));
                fits = false;
            }
        }
        fits
    });

    let mut communities = BTreeSet::new();
    for (i, community) in draft.communities.iter().enumerate() {
        match community {
            CommunityRefValue::Value(value) => {
                communities.insert(*value);
            }
            CommunityRefValue::Alias(alias) => match config.communities.get(alias) {
                Some(value) => {
                    communities.insert(*value);
                }
                None => diagnostics.push(Diagnostic::error(
                    kind,
                    name,
                    format!("spec.communities[{i}]"),
                    Reason::MissingReference,
                    format!("spec.communities[{i}]: no Community defines the alias {alias:?}"),
                )),
            },
        }
    }

    let peers = if draft.peers.is_empty() {
        config.peers.keys().cloned().collect()
    } else {
        let mut peers = BTreeSet::new();
        for (i, peer) in draft.peers.iter().enumerate() {
            if config.peers.contains_key(peer) {
                peers.insert(peer.clone());
            } else {
                diagnostics.push(Diagnostic::error(
                    kind,
                    name,
                    format!("spec.peers[{i}]"),
                    Reason::MissingReference,
                    format!("spec.peers[{i}]: BGPPeer {peer:?} does not exist or is invalid"),
                ));
            }
        }
        peers
    };

    BgpAdvertisement {
        name: draft.name.clone(),
        pools,
        aggregation_length: draft.aggregation_length,
        aggregation_length_v6: draft.aggregation_length_v6,
        local_pref: draft.local_pref,
        communities,
        peers,
        node_selectors: draft.node_selectors.clone(),
        service_selectors: draft.service_selectors.clone(),
    }
}

/// Whether two selector lists may select a common object: either selects everything, or they are
/// the same selectors. Different non-empty selectors are assumed disjoint here.
fn selectors_may_overlap(a: &[LabelSelector], b: &[LabelSelector]) -> bool {
    a.is_empty() || b.is_empty() || a == b
}

/// A `Conflict` diagnostic when `advertisement` sets a LOCAL_PREF different from an older accepted
/// advertisement for the same pool, peer and nodes.
fn local_pref_conflict(
    draft: &BgpAdvertisementDraft,
    advertisement: &BgpAdvertisement,
    accepted: &[BgpAdvertisementDraft],
    config: &Config,
) -> Option<Diagnostic> {
    let local_pref = advertisement.local_pref?;
    accepted.iter().find_map(|older_draft| {
        let older = config.bgp_advertisements.get(&older_draft.name)?;
        let older_pref = older.local_pref?;
        let pool = advertisement.pools.intersection(&older.pools).next()?;
        let peer = advertisement.peers.intersection(&older.peers).next()?;
        let clash = older_pref != local_pref
            && selectors_may_overlap(&draft.raw_node_selectors, &older_draft.raw_node_selectors)
            && selectors_may_overlap(&draft.raw_service_selectors, &older_draft.raw_service_selectors);
        clash.then(|| {
            Diagnostic::error(
                ObjectKind::BGPAdvertisement,
                &advertisement.name,
                "spec.localPref",
                Reason::Conflict,
                format!(
                    "spec.localPref {local_pref} conflicts with BGPAdvertisement {:?} (localPref {older_pref}) \
                     for pool {pool:?} and peer {peer:?}; the older advertisement wins and this one is not used",
                    older.name
                ),
            )
        })
    })
}

#[cfg(test)]
mod tests;
