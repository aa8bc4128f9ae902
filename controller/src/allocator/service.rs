//! What the allocator needs to know about a Service (SPEC §3), as plain values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::addresses::Family;

/// Labels of a Service, or a pod selector.
pub type Labels = BTreeMap<String, String>;

/// `namespace/name` of a Service; orders by namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FamilyPolicy {
    /// One address, of the first of `ipFamilies`.
    #[default]
    SingleStack,
    /// Every family of `ipFamilies` the chosen pool has; at least one.
    PreferDualStack,
    /// One address of each family, both from one pool.
    RequireDualStack,
}

/// `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// `spec.ports[].protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One `(protocol, port)` of `spec.ports`; two Services sharing an IP must not both use one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePort {
    pub protocol: Protocol,
    pub port: u16,
}

/// A LoadBalancer Service as the allocator sees it. Requests come from
/// [`ferrolb_config::annotations::parse_annotations`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceRequest {
    pub key: ServiceKey,
    pub labels: Labels,
    /// Explicitly requested addresses: one, or two of different families.
    pub requested_ips: Vec<IpAddr>,
    /// Explicitly requested pool.
    pub requested_pool: Option<String>,
    /// Sharing key; empty means none.
    pub sharing_key: Option<String>,
    pub family_policy: FamilyPolicy,
    /// `spec.ipFamilies` in order; empty means IPv4.
    pub ip_families: Vec<Family>,
    pub traffic_policy: TrafficPolicy,
    /// `spec.selector`; compared between sharing Services when the traffic policy is `Local`.
    pub pod_selector: Labels,
    pub ports: Vec<ServicePort>,
}

impl Default for ServiceKey {
    fn default() -> Self {
        ServiceKey::new("default", "")
    }
}

impl ServiceRequest {
    /// Families the Service wants, in `ipFamilies` order (primary first).
    pub fn wanted_families(&self) -> Vec<Family> {
        let mut families: Vec<Family> = Vec::with_capacity(2);
        for &family in &self.ip_families {
            if !families.contains(&family) {
                families.push(family);
            }
        }
        if families.is_empty() {
            families.push(Family::V4);
        }
        match self.family_policy {
            FamilyPolicy::SingleStack => families.truncate(1),
            FamilyPolicy::PreferDualStack => {}
            FamilyPolicy::RequireDualStack => {
                let other = match families[0] {
                    Family::V4 => Family::V6,
                    Family::V6 => Family::V4,
                };
                if !families.contains(&other) {
                    families.push(other);
                }
            }
        }
        families
    }

    /// The sharing key, when set and non-empty.
    pub fn sharing_key(&self) -> Option<&str> {
        self.sharing_key.as_deref().filter(|k| !k.is_empty())
    }
}

/// What a Service holding an IP contributes to sharing decisions (SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holder {
    pub(super) sharing_key: Option<String>,
    pub(super) ports: BTreeSet<ServicePort>,
    /// `Some(pod selector)` when the traffic policy is `Local`.
    pub(super) local_selector: Option<Labels>,
}

impl Holder {
    pub(super) fn of(service: &ServiceRequest) -> Self {
        Holder {
            sharing_key: service.sharing_key().map(str::to_owned),
            ports: service.ports.iter().copied().collect(),
            local_selector: (service.traffic_policy == TrafficPolicy::Local)
                .then(|| service.pod_selector.clone()),
        }
    }
}
