//! `SpeakerStatus`: what one node's speaker announces and how its sessions are (SPEC §2).
//! One object per node, named after the node, written only by that node's speaker.

// Each `printcolumn(...)` repeats keys such as `type_`, which clippy takes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Per-node speaker state.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "SpeakerStatus",
    plural = "speakerstatuses",
    shortname = "spst",
    category = "ferrolb",
    status = "SpeakerStatusStatus",
    derive = "PartialEq",
    doc = "What one node's speaker announces and the state of its BGP and BFD sessions.",
    printcolumn(
        name = "BGP Up",
        type_ = "integer",
        json_path = ".status.summary.bgpSessionsUp"
    ),
    printcolumn(
        name = "BGP",
        type_ = "integer",
        json_path = ".status.summary.bgpSessions"
    ),
    printcolumn(
        name = "L2 Announcements",
        type_ = "integer",
        json_path = ".status.summary.l2Announcements"
    ),
    printcolumn(
        name = "Announcing",
        type_ = "string",
        json_path = ".status.l2Announcements[*].ip"
    ),
    printcolumn(
        name = "Members Alive",
        type_ = "integer",
        json_path = ".status.summary.membersAlive"
    ),
    printcolumn(
        name = "BFD Up",
        type_ = "integer",
        json_path = ".status.summary.bfdSessionsUp",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerStatusSpec {
    /// The node this speaker runs on (equal to the object's name).
    #[schemars(length(max = 253))]
    pub node_name: String,
}

/// The speaker's view of its node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerStatusStatus {
    /// Counts for the printer columns.
    #[serde(default)]
    pub summary: SpeakerSummary,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_sessions: Vec<BgpSessionStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub l2_announcements: Vec<L2AnnouncementStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bfd_sessions: Vec<BfdSessionStatus>,
    /// This node's network interfaces as its speaker sees them. Every speaker reads the others'
    /// from here: layer-2 eligibility depends on them (SPEC §5, "has an interface whose subnet
    /// holds the IP"), and every speaker must decide it alike to agree on one owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceStatus>,
}

/// Counts derived from the lists, so `kubectl get speakerstatus` answers at a glance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerSummary {
    pub bgp_sessions: i64,
    pub bgp_sessions_up: i64,
    pub l2_announcements: i64,
    pub members: i64,
    pub members_alive: i64,
    pub bfd_sessions_up: i64,
}

/// One BGP session of the node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpSessionStatus {
    /// `BGPPeer` name.
    pub peer: String,
    pub state: BgpState,
    /// When the session entered `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    #[serde(default)]
    pub prefixes_sent: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// BGP FSM states (RFC 4271 §8.2.2).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BgpState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// One address announced by layer 2 from this node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2AnnouncementStatus {
    pub ip: String,
    /// `namespace/name` of the Service.
    pub service: String,
    pub interface: String,
    /// MAC address of another station that claimed this IP (ARP reply or Neighbor Advertisement),
    /// the latest one seen while this node announced it (SPEC §5 conflict detection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicting_mac: Option<String>,
}

/// Another speaker as this node's membership sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub node: String,
    pub alive: bool,
}

/// One network interface of the node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStatus {
    #[schemars(length(max = 15))]
    pub name: String,
    /// Up with carrier: frames can flow.
    pub up: bool,
    /// Its addresses with prefix length (`198.51.100.4/24`, `2001:db8::4/64`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// One BFD session of the node.
///
/// The counters are those of the current BFD session (since the peer started or BFD was enabled
/// on it). A change of the counters alone is written at most every 30 s, so that packets flowing
/// do not rewrite the object every second; the `ferrolb_bfd_*_total` metrics are the live,
/// cumulative view.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BfdSessionStatus {
    /// `BGPPeer` name.
    pub peer: String,
    pub state: BfdState,
    /// Control packets accepted for this session.
    #[serde(default)]
    pub packets_received: i64,
    /// Control packets sent on this session.
    #[serde(default)]
    pub packets_sent: i64,
    /// Times the session changed state (RFC 5880 §6.2).
    #[serde(default)]
    pub state_changes: i64,
}

/// BFD session states (RFC 5880 §4.1).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BfdState {
    AdminDown,
    Down,
    Init,
    Up,
}
