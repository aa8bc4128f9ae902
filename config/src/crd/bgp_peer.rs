//! `BGPPeer`: a BGP session from the selected nodes to one router (SPEC §2, §6).

// Each `printcolumn(...)` repeats keys such as `type_`, which clippy takes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::Rule;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ConfigStatus, DURATION_PATTERN, DurationString, IpAddressString};

/// A BGP peer of the selected nodes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    plural = "bgppeers",
    shortname = "bgppeer",
    category = "ferrolb",
    status = "ConfigStatus",
    derive = "PartialEq",
    doc = "A BGP session from the selected nodes to one router.",
    printcolumn(
        name = "Peer Address",
        type_ = "string",
        json_path = ".spec.peerAddress"
    ),
    printcolumn(name = "My ASN", type_ = "integer", json_path = ".spec.myASN"),
    printcolumn(name = "Peer ASN", type_ = "integer", json_path = ".spec.peerASN"),
    printcolumn(
        name = "Dynamic ASN",
        type_ = "string",
        json_path = ".spec.dynamicASN",
        priority = 1
    ),
    printcolumn(name = "Hold", type_ = "string", json_path = ".spec.holdTime"),
    printcolumn(name = "BFD", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multihop",
        type_ = "integer",
        json_path = ".spec.ebgpMultiHop",
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
#[x_kube(validation = Rule::new("has(self.peerASN) != has(self.dynamicASN)")
    .message("exactly one of spec.peerASN and spec.dynamicASN must be set")
    .field_path(".peerASN"))]
#[x_kube(validation = keepalive_within_hold_rule())]
#[x_kube(validation = Rule::new("!has(self.sourceAddress) || !isIP(self.sourceAddress) || !isIP(self.peerAddress) \
    || ip(self.sourceAddress).family() == ip(self.peerAddress).family()")
    .message("spec.sourceAddress must be of the same IP family as spec.peerAddress")
    .field_path(".sourceAddress"))]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// Our AS number (4-octet, RFC 6793).
    #[serde(rename = "myASN")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub my_asn: i64,
    /// The peer's AS number. Exactly one of `peerASN` and `dynamicASN`.
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub peer_asn: Option<i64>,
    /// Accept whatever AS the peer announces, as long as it is internal (= myASN) or external.
    #[serde(
        default,
        rename = "dynamicASN",
        skip_serializing_if = "Option::is_none"
    )]
    pub dynamic_asn: Option<DynamicAsn>,
    /// Address of the router.
    pub peer_address: IpAddressString,
    /// Local address of the session; the node's address towards the peer when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<IpAddressString>,
    /// TCP port of the router.
    #[serde(default = "default_peer_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub peer_port: i64,
    /// Hold time offered in OPEN: 0s (no keepalives) or at least 3s (RFC 4271 §4.2).
    #[serde(default = "default_hold_time")]
    #[x_kube(validation = Rule::new(format!("!self.matches('{DURATION_PATTERN}') || duration(self) == duration('0s') || duration(self) >= duration('3s')"))
        .message("spec.holdTime must be 0s or at least 3s (RFC 4271 section 4.2)"))]
    pub hold_time: DurationString,
    /// Keepalive interval; a third of the negotiated hold time when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<DurationString>,
    /// Wait between connection attempts (RFC 4271 ConnectRetryTimer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("!self.matches('{DURATION_PATTERN}') || duration(self) >= duration('1s')"))
        .message("spec.connectTime must be at least 1s"))]
    pub connect_time: Option<DurationString>,
    /// BGP identifier (an IPv4 address); the node's IPv4 address when unset.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!isIP(self) || ip(self).family() == 4")
        .message("spec.routerID must be an IPv4 address (RFC 4271 BGP Identifier)"))]
    pub router_id: Option<IpAddressString>,
    /// Nodes that peer. None means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub node_selectors: Vec<LabelSelector>,
    /// Secret holding the TCP-MD5 password under key `password` (RFC 2385).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,
    /// Name of a `BFDProfile`; BFD is off when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub bfd_profile: Option<String>,
    /// Act as restarting speaker (RFC 4724).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestart>,
    /// TTL of an eBGP multihop session; single hop when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub ebgp_multi_hop: Option<i64>,
    /// Carry IPv4 and IPv6 unicast on this one session (RFC 4760).
    #[serde(default)]
    pub dual_stack_address_family: bool,
    /// Never connect; wait for the router to connect.
    #[serde(default)]
    pub passive: bool,
}

/// keepaliveTime must not exceed holdTime (RFC 4271 §10 suggests a third of it).
fn keepalive_within_hold_rule() -> Rule {
    Rule::new(format!(
        "!has(self.keepaliveTime) || !has(self.holdTime) \
         || !self.keepaliveTime.matches('{DURATION_PATTERN}') || !self.holdTime.matches('{DURATION_PATTERN}') \
         || duration(self.holdTime) == duration('0s') || duration(self.keepaliveTime) <= duration(self.holdTime)"
    ))
    .message("spec.keepaliveTime must not exceed spec.holdTime")
    .field_path(".keepaliveTime")
}

/// Default TCP port of BGP (RFC 4271 §8.2.1).
pub const DEFAULT_PEER_PORT: i64 = 179;
/// Default hold time.
pub const DEFAULT_HOLD_TIME: &str = "90s";

fn default_peer_port() -> i64 {
    DEFAULT_PEER_PORT
}

fn default_hold_time() -> DurationString {
    DurationString(DEFAULT_HOLD_TIME.to_owned())
}

/// Which peer AS numbers a dynamic peer may have.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DynamicAsn {
    /// The peer's AS equals `myASN` (iBGP).
    Internal,
    /// The peer's AS differs from `myASN` (eBGP).
    External,
}

/// A Secret by namespace and name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Graceful restart as restarting speaker.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestart {
    /// Restart Time advertised in the capability: 1s to 4095s (12 bits, RFC 4724 §3).
    #[x_kube(validation = Rule::new(format!("!self.matches('{DURATION_PATTERN}') || (duration(self) >= duration('1s') && duration(self) <= duration('4095s'))"))
        .message("spec.gracefulRestart.restartTime must be between 1s and 4095s (RFC 4724 section 3)"))]
    pub restart_time: DurationString,
}
