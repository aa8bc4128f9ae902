//! `Community`: named aliases for BGP community values (SPEC §2).

// Each `printcolumn(...)` repeats keys such as `type_`, which clippy takes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{COMMUNITY_ALIAS_PATTERN, CommunityValue, ConfigStatus};

/// Names for community values, usable in `BGPAdvertisement.spec.communities`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "Community",
    plural = "communities",
    category = "ferrolb",
    status = "ConfigStatus",
    derive = "PartialEq",
    doc = "Named aliases for BGP community values.",
    printcolumn(
        name = "Aliases",
        type_ = "string",
        json_path = ".spec.communities[*].name"
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
pub struct CommunitySpec {
    /// The aliases this object defines.
    #[schemars(length(min = 1, max = 64))]
    pub communities: Vec<CommunityAlias>,
}

/// One alias: a name and the community value it stands for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommunityAlias {
    /// The alias, e.g. `no-export-upstream`.
    #[schemars(length(min = 1, max = 63), regex(pattern = COMMUNITY_ALIAS_PATTERN))]
    pub name: String,
    /// `65000:100` or `large:65000:1:2`.
    pub value: CommunityValue,
}
