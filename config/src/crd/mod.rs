//! The ferrolb custom resources (SPEC §2): group `ferrolb.io`, version `v1beta1`, all
//! cluster-scoped, one module per kind.
//!
//! The Rust types are the source of the CRDs in `deploy/crds/` (see the `crdgen` binary). Per-object
//! rules live in the schema as OpenAPI constraints and CEL `x-kubernetes-validations`, so the API
//! server refuses a bad object with a field path and no webhook is needed. The same rules are
//! implemented again in Rust by [`crate::model`] for `ferrolb check` and defence in depth; the
//! per-rule unit tests in [`cel_rules`] run every CEL rule against good and bad objects.
//!
//! Integer fields are deliberately wide (`i64`) with OpenAPI `minimum`/`maximum`: an out-of-range
//! value still deserializes, so offline validation can name the field instead of failing to parse.
//! String fields that carry addresses, durations or communities are newtypes whose schema holds the
//! CEL rules; CEL cost is bounded with `maxLength`/`maxItems` as the API server requires.

pub mod bfd_profile;
pub mod bgp_advertisement;
pub mod bgp_peer;
#[cfg(test)]
mod cel_rules;
pub mod community;
pub mod ip_address_pool;
pub mod l2_advertisement;
pub mod speaker_status;

use std::borrow::Cow;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResourceExt;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub use bfd_profile::{BFDProfile, BFDProfileSpec};
pub use bgp_advertisement::{BGPAdvertisement, BGPAdvertisementSpec};
pub use bgp_peer::{BGPPeer, BGPPeerSpec, DynamicAsn, GracefulRestart, SecretReference};
pub use community::{Community, CommunityAlias, CommunitySpec};
pub use ip_address_pool::{
    IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation,
};
pub use l2_advertisement::{L2Advertisement, L2AdvertisementSpec, PreferredNode};
pub use speaker_status::{SpeakerStatus, SpeakerStatusSpec, SpeakerStatusStatus};

/// API group of every ferrolb kind.
pub const GROUP: &str = "ferrolb.io";
/// API version of every ferrolb kind.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` as written in objects.
pub const API_VERSION: &str = "ferrolb.io/v1beta1";

/// Go-style duration accepted by the API server's CEL `duration()` (units h, m, s, ms, us, ns;
/// `0s` for zero). Kept in one place so CEL rules, schemas and the Rust parser agree.
pub const DURATION_PATTERN: &str = "^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$";

/// Every CRD, in the order `crdgen` writes them.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        IPAddressPool::crd(),
        L2Advertisement::crd(),
        BGPAdvertisement::crd(),
        BGPPeer::crd(),
        BFDProfile::crd(),
        Community::crd(),
        SpeakerStatus::crd(),
    ]
}

/// Status of the configuration kinds other than pools: whether the controller uses the object and,
/// if not, why (cross-object problems such as a missing pool or peer).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    /// Generation of the spec the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the controller uses the object) and, for problems, `Conflict` or `Invalid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub conditions: Vec<Condition>,
}

/// One CEL rule with the message the API server prints after the field path.
struct CelRule {
    rule: String,
    message: String,
}

impl CelRule {
    fn new(rule: impl Into<String>, message: impl Into<String>) -> Self {
        CelRule {
            rule: rule.into(),
            message: message.into(),
        }
    }
}

/// A string schema of bounded length carrying CEL rules.
fn string_schema(max_length: u32, description: &str, rules: &[CelRule]) -> Schema {
    let rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| serde_json::json!({ "rule": r.rule, "message": r.message }))
        .collect();
    json_schema!({
        "type": "string",
        "description": description,
        "maxLength": max_length,
        "x-kubernetes-validations": rules,
    })
}

/// Implements `JsonSchema` for a string newtype by delegating to a schema function.
macro_rules! string_newtype_schema {
    ($ty:ident, $name:literal, $schema:expr) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

/// One entry of `IPAddressPool.spec.addresses`: CIDR, `start-end` range or single address.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct AddressEntry(pub String);

/// An IP address written as a string (`peerAddress`, `sourceAddress`, `routerID`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct IpAddressString(pub String);

/// A Go-style duration string (`90s`, `1m30s`), as Kubernetes `metav1.Duration` writes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct DurationString(pub String);

/// A BGP community as written in a `BGPAdvertisement`: `65000:100`, `large:65000:1:2`, or the name
/// of an alias defined by a `Community` object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct CommunityRef(pub String);

/// A literal BGP community value (`65000:100` or `large:65000:1:2`), as a `Community` alias holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct CommunityValue(pub String);

/// CEL: the `a-b` halves of a range are both IP addresses.
const RANGE_IS_IPS: &str =
    "self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1])";

/// CEL rule "range start is not after range end", for IPv4 ranges.
///
/// The Kubernetes CEL IP library has no ordering on addresses, so the rule turns the four octets
/// into one integer and compares. IPv6 ranges are not ordered here: without integer access to an
/// address the only CEL formulations walk the 128 bit positions, and the API server refuses such
/// a rule as 100x over its cost budget. The config model checks the order of both families, so a
/// reversed IPv6 range is reported by `ferrolb check` and on the pool's status and never used.
fn range_order_rule() -> String {
    let as_int = |half: &str| {
        let octet = |i: usize| format!("int(self.split('-')[{half}].split('.')[{i}])");
        format!(
            "({} * 16777216 + {} * 65536 + {} * 256 + {})",
            octet(0),
            octet(1),
            octet(2),
            octet(3)
        )
    };
    format!(
        "!({RANGE_IS_IPS}) || ip(self.split('-')[0]).family() != 4 \
         || ip(self.split('-')[1]).family() != 4 || {} <= {}",
        as_int("0"),
        as_int("1"),
    )
}

string_newtype_schema!(
    AddressEntry,
    "AddressEntry",
    string_schema(
        100,
        "A CIDR (198.51.100.0/26), a range start-end of one family, or a single IP address.",
        &[
            CelRule::new(
                format!("isCIDR(self) || isIP(self) || ({RANGE_IS_IPS})"),
                "must be a CIDR (198.51.100.0/26), a range start-end (198.51.100.10-198.51.100.20) or an IP address",
            ),
            CelRule::new(
                "!isCIDR(self) || cidr(self) == cidr(self).masked()",
                "CIDR has host bits set (e.g. 198.51.100.7/24); write the network address (198.51.100.0/24)",
            ),
            CelRule::new(
                format!(
                    "!({RANGE_IS_IPS}) || ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family()"
                ),
                "range start and end must be of the same IP family",
            ),
            CelRule::new(
                range_order_rule(),
                "range start must not be after range end"
            ),
        ],
    )
);

string_newtype_schema!(
    IpAddressString,
    "IpAddressString",
    string_schema(
        64,
        "An IPv4 or IPv6 address.",
        &[CelRule::new(
            "isIP(self)",
            "must be an IP address such as 192.0.2.1 or 2001:db8::1",
        )],
    )
);

string_newtype_schema!(
    DurationString,
    "DurationString",
    string_schema(
        32,
        "A duration such as 90s or 1m30s (units h, m, s, ms, us, ns).",
        &[CelRule::new(
            format!("self.matches('{DURATION_PATTERN}')"),
            "must be a duration such as 90s or 1m30s (units h, m, s, ms, us, ns)",
        )],
    )
);

/// CEL: a standard community `AS:value`, both 16-bit (RFC 1997).
const STANDARD_COMMUNITY: &str = "(self.matches('^[0-9]{1,5}:[0-9]{1,5}$') \
    && int(self.split(':')[0]) <= 65535 && int(self.split(':')[1]) <= 65535)";
/// CEL: a large community `large:global:local1:local2`, each 32-bit (RFC 8092).
const LARGE_COMMUNITY: &str = "(self.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') \
    && int(self.split(':')[1]) <= 4294967295 && int(self.split(':')[2]) <= 4294967295 \
    && int(self.split(':')[3]) <= 4294967295)";
/// Regex of a `Community` alias name (a DNS-label-like name, never containing `:`).
pub const COMMUNITY_ALIAS_PATTERN: &str = "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";

string_newtype_schema!(
    CommunityRef,
    "CommunityRef",
    string_schema(
        64,
        "A community 65000:100, a large community large:65000:1:2, or the name of a Community alias.",
        &[CelRule::new(
            format!(
                "{STANDARD_COMMUNITY} || {LARGE_COMMUNITY} || self.matches('{COMMUNITY_ALIAS_PATTERN}')"
            ),
            "must be a community such as 65000:100 (each part 0-65535), a large community such as large:65000:1:2 (each part 0-4294967295), or a Community alias name",
        )],
    )
);

string_newtype_schema!(
    CommunityValue,
    "CommunityValue",
    string_schema(
        64,
        "A community 65000:100 or a large community large:65000:1:2.",
        &[CelRule::new(
            format!("{STANDARD_COMMUNITY} || {LARGE_COMMUNITY}"),
            "must be a community such as 65000:100 (each part 0-65535) or a large community such as large:65000:1:2 (each part 0-4294967295)",
        )],
    )
);

/// One generated CRD manifest: the file name under `deploy/crds/` and its YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdManifest {
    pub file_name: String,
    pub yaml: String,
}

/// Why a CRD could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("rendering CRD {name}: {source}")]
pub struct RenderError {
    name: String,
    #[source]
    source: serde_saphyr::SerializeError,
}

/// The CRD manifests as `crdgen` writes them: `<plural>.ferrolb.io.yaml`, one per kind.
pub fn crd_manifests() -> Result<Vec<CrdManifest>, RenderError> {
    all_crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let body = serde_saphyr::to_string(&crd).map_err(|source| RenderError {
                name: name.clone(),
                source,
            })?;
            Ok(CrdManifest {
                file_name: format!("{name}.yaml"),
                yaml: format!("# Generated by `cargo run -p ferrolb-config --bin crdgen`; do not edit.\n{body}"),
            })
        })
        .collect()
}
