//! `BGPAdvertisement`: which pools are announced over BGP, to which peers, with which attributes
//! (SPEC §2, §6).

// Each `printcolumn(...)` repeats keys such as `type_`, which clippy takes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommunityRef, ConfigStatus};

/// Announces addresses of the selected pools to BGP peers.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    shortname = "bgpadv",
    category = "ferrolb",
    status = "ConfigStatus",
    derive = "PartialEq",
    doc = "Announces the addresses of the selected pools to BGP peers.",
    printcolumn(name = "Pools", type_ = "string", json_path = ".spec.ipAddressPools"),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Aggregation",
        type_ = "integer",
        json_path = ".spec.aggregationLength"
    ),
    printcolumn(name = "Local Pref", type_ = "integer", json_path = ".spec.localPref"),
    printcolumn(
        name = "Communities",
        type_ = "string",
        json_path = ".spec.communities",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Pools by name. With no pools and no pool selectors, every pool is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub ip_address_pools: Vec<String>,
    /// Pools by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Prefix length IPv4 addresses are announced with (32 = each address on its own).
    #[serde(default = "default_aggregation_length")]
    #[schemars(range(min = 0, max = 32))]
    pub aggregation_length: i64,
    /// Prefix length IPv6 addresses are announced with.
    #[serde(
        default = "default_aggregation_length_v6",
        rename = "aggregationLengthV6"
    )]
    #[schemars(range(min = 0, max = 128))]
    pub aggregation_length_v6: i64,
    /// LOCAL_PREF sent to iBGP peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub local_pref: Option<i64>,
    /// Communities attached to the routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub communities: Vec<CommunityRef>,
    /// Peers by `BGPPeer` name. None means all peers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub peers: Vec<String>,
    /// Nodes that announce. None means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub node_selectors: Vec<LabelSelector>,
    /// Services, by label, this advertisement applies to. None means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub service_selectors: Vec<LabelSelector>,
}

/// Default IPv4 aggregation: each address as a /32.
pub const DEFAULT_AGGREGATION_LENGTH: i64 = 32;
/// Default IPv6 aggregation: each address as a /128.
pub const DEFAULT_AGGREGATION_LENGTH_V6: i64 = 128;

fn default_aggregation_length() -> i64 {
    DEFAULT_AGGREGATION_LENGTH
}

fn default_aggregation_length_v6() -> i64 {
    DEFAULT_AGGREGATION_LENGTH_V6
}
