//! `L2Advertisement`: which pools are announced by ARP/NDP, from which nodes (SPEC §2, §5).

// Each `printcolumn(...)` repeats keys such as `type_`, which clippy takes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigStatus;

/// Announces addresses of the selected pools in layer-2 mode.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    plural = "l2advertisements",
    shortname = "l2adv",
    category = "ferrolb",
    status = "ConfigStatus",
    derive = "PartialEq",
    doc = "Announces the addresses of the selected pools with ARP/NDP from one elected node.",
    printcolumn(name = "Pools", type_ = "string", json_path = ".spec.ipAddressPools"),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
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
pub struct L2AdvertisementSpec {
    /// Pools by name. With no pools and no pool selectors, every pool is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub ip_address_pools: Vec<String>,
    /// Pools by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes allowed to announce. None means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to announce on. None means every interface whose subnet holds the address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub interfaces: Vec<String>,
    /// Services, by label, this advertisement applies to. None means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub service_selectors: Vec<LabelSelector>,
    /// Nodes preferred as owner, by weight (highest weight wins before the hash).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub preferred_nodes: Vec<PreferredNode>,
}

/// A preference for the nodes a selector matches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferredNode {
    /// 1 (weak) to 100 (strong).
    #[schemars(range(min = 1, max = 100))]
    pub weight: i64,
    /// Nodes this preference applies to.
    pub selector: LabelSelector,
}
