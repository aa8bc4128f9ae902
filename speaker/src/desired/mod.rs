//! What this node must announce: the speaker's desired state (SPEC §1, §5, §6).
//!
//! Contract: [`compute`] is a pure function of plain values — the validated [`Config`] snapshot,
//! the Nodes, this node's interfaces, the LoadBalancer Services of our class with their
//! endpoints, and the live members — to a [`Desired`] state. No kube client, no async, no clock.
//! The speaker's watch-fed indexes fill the inputs; [`changes`] turns two successive results into
//! what the layer-2 announcer must gain and lose and which BGP peers' route sets changed.
//!
//! Every speaker runs the same function on the same inputs, so the layer-2 owner of each IP is
//! agreed without coordination (see [`crate::election`]). Agreement therefore needs every input
//! that decides another node's eligibility to be visible to all speakers; that is why [`Node`]
//! carries the interfaces *that node* reports, not only this node's own. A node that has not
//! reported its interfaces yet is not eligible on any speaker; until a changed report has reached
//! everyone, speakers may briefly disagree, exactly as they do while membership converges.
//!
//! The pool of an IP is the pool that holds it ([`Config::pool_of`]); pools in a snapshot never
//! overlap, so this is the pool named by `ferrolb.io/allocated-from-pool` whenever that annotation is
//! current, and an IP that left every pool (about to be released, SPEC §4) is not announced.
//!
//! # Endpoints (both modes)
//! An endpoint is *usable* as kube-proxy treats it (KEP-1669): the ready endpoints of a Service;
//! when it has no ready endpoint anywhere, its serving-and-terminating ones. Judging readiness per
//! Service rather than per node lets an announcement leave a node whose pods are draining while
//! ready pods exist elsewhere.
//!
//! # Layer 2 (SPEC §5)
//! A node is *eligible* for a Service IP when all of these hold:
//! - the IP lies in a pool, and an `L2Advertisement` covers that pool and selects the Service
//!   (`serviceSelectors`) and the node (`nodeSelectors`);
//! - the node has no `node.kubernetes.io/exclude-from-external-load-balancers` label and is not
//!   `NetworkUnavailable`;
//! - the node has an interface for it: when the advertisement lists `interfaces`, one of those that
//!   is up (the operator's explicit choice overrides the subnet rule and the exclusion patterns);
//!   otherwise an up interface, not matched by [`InterfaceExclusions`], whose subnet holds the IP;
//! - the Service has a usable endpoint: on that node for `externalTrafficPolicy: Local`, anywhere
//!   for `Cluster` (as in BGP mode, SPEC §6, and as MetalLB users expect: an IP with no backend is
//!   not announced, so clients fail fast instead of reaching a node that drops the traffic).
//!
//! The owner is [`crate::election::elect`] among the eligible nodes that are live (this node counts
//! as live). The preference weight of a node is the **highest** weight among the `preferredNodes`
//! entries that select it, across every advertisement that makes it eligible (0 when none): the
//! entries are an unordered list, so no entry may win by position.
//!
//! One owner per group: all IPs of a Service, and all Services that share an IP or a sharing key,
//! form one election group keyed by the smallest [`ElectionKey`] of its Services. Candidates are the
//! nodes eligible for *every* IP of the group (for a shared IP: eligible for it on behalf of every
//! Service holding it). **Fallback**: when no live node is eligible for every IP (say IPv4 and IPv6
//! live on segments no single node reaches), each IP is elected on its own among the nodes eligible
//! for it, with the same key, and [`L2Ip::split`] says so; reachability wins over co-location.
//!
//! # BGP (SPEC §6)
//! For every `BGPPeer` whose `nodeSelectors` select this node, the prefixes to announce: each
//! Service IP of a pool that a `BGPAdvertisement` covers, selecting the Service and this node, with
//! a usable endpoint (anywhere for `Cluster`, on this node for `Local`), masked to the
//! advertisement's aggregation length and sent to the advertisement's peers. When several
//! advertisements produce the same prefix for one peer, their communities and large communities
//! are unioned and the highest LOCAL_PREF wins (the snapshot rejects statically visible clashes;
//! this resolves the rest deterministically). LOCAL_PREF is kept for every peer; the session layer
//! sends it to internal peers only (RFC 4271 §5.1.5). An excluded or `NetworkUnavailable` node keeps
//! its peers but announces nothing, as for layer 2.

mod bgp;
mod changes;
pub mod interfaces;
mod l2;
mod small_set;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::model::{Config, Selector, SelectorExt};

pub use self::changes::{Announcement, Changes, changes};
pub use self::interfaces::{DEFAULT_EXCLUDED_INTERFACES, Interface, InterfaceExclusions};
pub use self::small_set::SmallSet;
use crate::bgp::rib_out::Routes;
use crate::election::ElectionKey;

/// Kubernetes well-known label: a node carrying it (any value) must not serve external load
/// balancers.
pub const EXCLUDE_FROM_LOAD_BALANCERS: &str =
    "node.kubernetes.io/exclude-from-external-load-balancers";

/// A Node as the speaker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The `NetworkUnavailable` condition is `True`: the node's network is not configured.
    pub network_unavailable: bool,
    /// The interfaces that node's speaker reports; `None` until it has reported. A node whose
    /// interfaces are unknown is not eligible for layer 2, on every speaker alike. For this node the
    /// local view in [`Inputs::interfaces`] is used instead.
    pub interfaces: Option<Vec<Interface>>,
}

impl Node {
    /// Neither excluded by label nor `NetworkUnavailable`: may announce in either mode.
    fn may_announce(&self) -> bool {
        !self.network_unavailable && !self.labels.contains_key(EXCLUDE_FROM_LOAD_BALANCERS)
    }
}

/// `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// A Service by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One endpoint of an EndpointSlice, with its conditions resolved
/// ([`Endpoint::from_conditions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `nodeName`; `None` when the slice does not say.
    pub node: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

impl Endpoint {
    /// An endpoint from the optional conditions of `discovery.k8s.io/v1` EndpointConditions,
    /// reading unset fields as kube-proxy does: `ready` and `serving` unset mean true (the API:
    /// an unknown state "should be interpreted as ready"), `terminating` unset means false.
    pub fn from_conditions(
        node: Option<String>,
        ready: Option<bool>,
        serving: Option<bool>,
        terminating: Option<bool>,
    ) -> Endpoint {
        let ready = ready.unwrap_or(true);
        Endpoint {
            node,
            ready,
            serving: serving.unwrap_or(true),
            terminating: terminating.unwrap_or(false),
        }
    }
}

/// A LoadBalancer Service of our class with the IPs the controller gave it, borrowed from the
/// speaker's caches: [`compute`] runs on every change, and owned copies of 10,000 Services with
/// their labels and endpoints were the largest transient allocation of a recomputation
/// (docs/BENCHMARKS.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// Sorted by key, as the API server keeps them (see [`Service::selected_by`]).
    pub labels: &'a [(String, String)],
    /// `status.loadBalancer.ingress[].ip`.
    pub ips: &'a [IpAddr],
    pub traffic_policy: TrafficPolicy,
    /// `ferrolb.io/allow-shared-ip`.
    pub sharing_key: Option<&'a str>,
    /// Endpoints of all the Service's EndpointSlices.
    pub endpoints: Vec<&'a Endpoint>,
}

impl Service<'_> {
    pub fn reference(&self) -> ServiceRef {
        ServiceRef {
            namespace: self.namespace.to_owned(),
            name: self.name.to_owned(),
        }
    }

    fn election_key(&self) -> ElectionKey {
        ElectionKey::for_service(self.namespace, self.name, self.sharing_key)
    }

    /// Whether a selector list (`serviceSelectors`) selects the Service. Labels are cached as a
    /// sorted slice, not a map: a one-entry `BTreeMap` allocates a node for eleven, once per
    /// Service in every speaker's cache; the map the selectors match against is built only when
    /// there is a selector.
    fn selected_by(&self, selectors: &[Selector]) -> bool {
        selectors.is_empty() || {
            let labels: BTreeMap<String, String> = self.labels.iter().cloned().collect();
            selected(selectors, &labels)
        }
    }

    /// Usable endpoints (see the module docs): the ready ones, or the serving-and-terminating
    /// ones when none is ready.
    fn usable_endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        let any_ready = self.endpoints.iter().any(|e| e.ready);
        self.endpoints.iter().copied().filter(move |e| {
            if any_ready {
                e.ready
            } else {
                e.serving && e.terminating
            }
        })
    }

    /// Whether traffic for the Service reaches a backend when it enters at `node`.
    fn served_at(&self, node: &str) -> bool {
        match self.traffic_policy {
            TrafficPolicy::Cluster => self.usable_endpoints().next().is_some(),
            TrafficPolicy::Local => self
                .usable_endpoints()
                .any(|e| e.node.as_deref() == Some(node)),
        }
    }
}

/// Everything [`compute`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub config: &'a Config,
    /// This node's name.
    pub node: &'a str,
    /// All Nodes by name (this node included; without its Node object this node announces
    /// nothing, since its labels are unknown).
    pub nodes: &'a BTreeMap<String, Node>,
    /// This node's interfaces, from netlink.
    pub interfaces: &'a [Interface],
    pub exclusions: &'a InterfaceExclusions,
    /// LoadBalancer Services of our class.
    pub services: &'a [Service<'a>],
    /// Peers that membership judges alive; this node is live whether listed or not.
    pub live: &'a BTreeSet<String>,
}

impl Inputs<'_> {
    fn is_live(&self, node: &str) -> bool {
        node == self.node || self.live.contains(node)
    }

    /// The interfaces of `node`: the local view for this node, the reported ones for others.
    fn interfaces_of<'n>(&'n self, node: &'n Node) -> Option<&'n [Interface]> {
        if node.name == self.node {
            Some(self.interfaces)
        } else {
            node.interfaces.as_deref()
        }
    }
}

/// The layer-2 decision for one Service IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Ip {
    /// The Services holding the IP (several when it is shared).
    pub services: SmallSet<ServiceRef>,
    /// The elected node; `None` when no live node is eligible.
    pub owner: Option<String>,
    /// Where this node announces the IP: non-empty exactly when this node is the owner.
    pub interfaces: SmallSet<String>,
    /// The IP was elected on its own because no live node was eligible for every IP of its
    /// group (the fallback in the module docs).
    pub split: bool,
}

/// What this node must announce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Every Service IP that an `L2Advertisement` covers, owned here or elsewhere, so status and
    /// Events can name the owner.
    pub l2: BTreeMap<IpAddr, L2Ip>,
    /// Per `BGPPeer` that selects this node: the routes to announce (possibly none).
    pub bgp: BTreeMap<String, Routes>,
}

impl Desired {
    /// The (IP, interface) pairs this node announces in layer 2.
    pub fn announced_here(&self) -> BTreeSet<Announcement> {
        self.l2
            .iter()
            .flat_map(|(ip, decision)| {
                decision.interfaces.iter().map(|interface| Announcement {
                    ip: *ip,
                    interface: interface.clone(),
                })
            })
            .collect()
    }
}

/// The desired state of this node; see the module docs for every rule.
pub fn compute(inputs: &Inputs<'_>) -> Desired {
    Desired {
        l2: l2::desired(inputs),
        bgp: bgp::desired(inputs),
    }
}

/// Whether a selector list selects `labels`: any one matches, and an empty list selects all.
fn selected(selectors: &[Selector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// A Service's IPs without duplicates, in order.
fn distinct_ips(service: &Service<'_>) -> BTreeSet<IpAddr> {
    service.ips.iter().copied().collect()
}
