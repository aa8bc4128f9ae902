//! `BFDProfile`: BFD timers for BGP peers (SPEC §2; RFC 5880 §6.8.1, RFC 5883 for multihop).

// Each `printcolumn(...)` repeats keys such as `type_`, which clippy takes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigStatus;

/// BFD session parameters, referenced by `BGPPeer.spec.bfdProfile`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    plural = "bfdprofiles",
    shortname = "bfd",
    category = "ferrolb",
    status = "ConfigStatus",
    derive = "PartialEq",
    doc = "BFD timers for BGP peers.",
    printcolumn(
        name = "Receive ms",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(
        name = "Transmit ms",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    ),
    printcolumn(name = "Passive", type_ = "boolean", json_path = ".spec.passiveMode"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// Required Min RX Interval, milliseconds (RFC 5880 §4.1).
    #[serde(default = "default_interval_ms")]
    #[schemars(range(min = 10, max = 60000))]
    pub receive_interval: i64,
    /// Desired Min TX Interval, milliseconds (RFC 5880 §4.1).
    #[serde(default = "default_interval_ms")]
    #[schemars(range(min = 10, max = 60000))]
    pub transmit_interval: i64,
    /// Detect Mult: missed packets before the session goes Down (RFC 5880 §4.1).
    #[serde(default = "default_detect_multiplier")]
    #[schemars(range(min = 2, max = 255))]
    pub detect_multiplier: i64,
    /// Wait for the peer to send first (RFC 5880 §6.1 passive role).
    #[serde(default)]
    pub passive_mode: bool,
    /// Lowest TTL accepted on multihop sessions (RFC 5883 §2).
    #[serde(default = "default_minimum_ttl")]
    #[schemars(range(min = 1, max = 255))]
    pub minimum_ttl: i64,
}

/// Default transmit and receive interval, milliseconds.
pub const DEFAULT_INTERVAL_MS: i64 = 300;
/// Default detect multiplier.
pub const DEFAULT_DETECT_MULTIPLIER: i64 = 3;
/// Default minimum TTL for multihop sessions.
pub const DEFAULT_MINIMUM_TTL: i64 = 254;

fn default_interval_ms() -> i64 {
    DEFAULT_INTERVAL_MS
}

fn default_detect_multiplier() -> i64 {
    DEFAULT_DETECT_MULTIPLIER
}

fn default_minimum_ttl() -> i64 {
    DEFAULT_MINIMUM_TTL
}
