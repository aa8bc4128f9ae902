//! MetalLB's `metallb.io` objects as this converter reads them.
//!
//! Only the shape is modelled (MetalLB's webhooks hold the rules); every spec keeps the keys it
//! does not know in `unknown`, so a field added by a newer MetalLB is reported, never lost
//! silently. Both `BGPPeer` versions are read by one type: `v1beta2` is `v1beta1` plus fields, and
//! `v1beta1`'s own node selector type has the JSON shape of a `LabelSelector`. Empty strings and
//! zero numbers are how MetalLB's Go types write "unset" (`omitempty`), so they read as unset here.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde_json::Value;

use crate::model::ObjectKind;

/// Spec keys the converter does not know, with their values.
pub(super) type Unknown = BTreeMap<String, Value>;

/// The part of `metadata` that carries over.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub(super) struct Metadata {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// One MetalLB object: its metadata and spec (status is dropped).
#[derive(Debug, Clone)]
pub(super) struct Object {
    pub name: String,
    /// MetalLB reads its objects from its own namespace; `metallb-system` when the input omits it.
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub spec: Spec,
}

impl Object {
    /// The ferrolb kind it becomes (MetalLB's kinds map one to one).
    pub(super) fn kind(&self) -> ObjectKind {
        match self.spec {
            Spec::IPAddressPool(_) => ObjectKind::IPAddressPool,
            Spec::L2Advertisement(_) => ObjectKind::L2Advertisement,
            Spec::BGPAdvertisement(_) => ObjectKind::BGPAdvertisement,
            Spec::BGPPeer(_) => ObjectKind::BGPPeer,
            Spec::BFDProfile(_) => ObjectKind::BFDProfile,
            Spec::Community(_) => ObjectKind::Community,
        }
    }
}

/// MetalLB's default namespace, where its objects and Secrets live.
pub(super) const DEFAULT_NAMESPACE: &str = "metallb-system";

#[derive(Debug, Clone)]
pub(super) enum Spec {
    IPAddressPool(PoolSpec),
    L2Advertisement(L2Spec),
    BGPAdvertisement(BgpAdvertisementSpec),
    // Boxed: by far the largest spec.
    BGPPeer(Box<PeerSpec>),
    BFDProfile(BfdSpec),
    Community(CommunitySpec),
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct PoolSpec {
    pub addresses: Vec<String>,
    pub auto_assign: Option<bool>,
    #[serde(rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    pub service_allocation: Option<ServiceAllocation>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct ServiceAllocation {
    /// 0 is MetalLB's "no priority".
    pub priority: i64,
    pub namespaces: Vec<String>,
    pub namespace_selectors: Vec<LabelSelector>,
    pub service_selectors: Vec<LabelSelector>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct L2Spec {
    pub ip_address_pools: Vec<String>,
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    pub node_selectors: Vec<LabelSelector>,
    pub interfaces: Vec<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct BgpAdvertisementSpec {
    pub aggregation_length: Option<i64>,
    #[serde(rename = "aggregationLengthV6")]
    pub aggregation_length_v6: Option<i64>,
    /// 0 is MetalLB's "not set".
    pub local_pref: i64,
    pub communities: Vec<String>,
    pub ip_address_pools: Vec<String>,
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    pub node_selectors: Vec<LabelSelector>,
    pub peers: Vec<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct PeerSpec {
    #[serde(rename = "myASN")]
    pub my_asn: i64,
    /// 0 is MetalLB's "not set" (then `dynamicASN` is).
    #[serde(rename = "peerASN")]
    pub peer_asn: i64,
    #[serde(rename = "dynamicASN")]
    pub dynamic_asn: String,
    pub peer_address: String,
    pub source_address: String,
    /// 0 is MetalLB's "not set" (179).
    pub peer_port: i64,
    pub hold_time: String,
    pub keepalive_time: String,
    pub connect_time: String,
    #[serde(rename = "routerID")]
    pub router_id: String,
    pub node_selectors: Vec<LabelSelector>,
    pub password: String,
    pub password_secret: Option<SecretReference>,
    pub bfd_profile: String,
    pub enable_graceful_restart: bool,
    pub ebgp_multi_hop: bool,
    pub vrf: String,
    /// BGP unnumbered: the session runs over this interface instead of `peerAddress`.
    pub interface: String,
    #[serde(rename = "disableMP")]
    pub disable_mp: Option<bool>,
    pub dual_stack_address_family: bool,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `core/v1` `SecretReference`: the namespace defaults to MetalLB's own.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub(super) struct SecretReference {
    pub name: String,
    pub namespace: String,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct BfdSpec {
    pub receive_interval: Option<i64>,
    pub transmit_interval: Option<i64>,
    pub detect_multiplier: Option<i64>,
    pub echo_interval: Option<i64>,
    pub echo_mode: bool,
    pub passive_mode: bool,
    pub minimum_ttl: Option<i64>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct CommunitySpec {
    pub communities: Vec<CommunityAlias>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub(super) struct CommunityAlias {
    pub name: String,
    pub value: String,
}
