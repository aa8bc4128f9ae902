//! What the allocator needs to know about a Service (SPEC §3), as plain values.

use std::collections::BTreeMap;
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

/// What a Service holding an IP contributes to sharing decisions (SPEC §4), borrowed from its
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Holder<'a> {
    pub(super) sharing_key: Option<&'a str>,
    pub(super) ports: &'a [ServicePort],
    /// `Some(pod selector)` when the traffic policy is `Local`.
    pub(super) local_selector: Option<&'a Labels>,
}

impl<'a> Holder<'a> {
    pub(super) fn of(service: &'a ServiceRequest) -> Self {
        Holder {
            sharing_key: service.sharing_key(),
            ports: &service.ports,
            local_selector: (service.traffic_policy == TrafficPolicy::Local)
                .then_some(&service.pod_selector),
        }
    }

    /// The lowest `(protocol, port)` both use, if any.
    pub(super) fn port_clash(&self, other: &Holder<'_>) -> Option<ServicePort> {
        self.ports
            .iter()
            .filter(|port| other.ports.contains(port))
            .min()
            .copied()
    }
}

/// The request of a Service the allocator holds addresses for, kept to re-check them when pools
/// change. One per Service, so it is kept compact (SPEC §9 memory): labels as a sorted slice
/// instead of a map (a map allocates room for eleven entries even for one label), no key (the
/// allocator's map has it), the pod selector only where sharing compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredRequest {
    labels: Box<[(String, String)]>,
    requested_ips: Box<[IpAddr]>,
    requested_pool: Option<Box<str>>,
    sharing_key: Option<Box<str>>,
    family_policy: FamilyPolicy,
    ip_families: Box<[Family]>,
    traffic_policy: TrafficPolicy,
    /// Empty unless the traffic policy is `Local`.
    pod_selector: Labels,
    ports: Box<[ServicePort]>,
}

impl StoredRequest {
    pub(super) fn of(service: &ServiceRequest) -> Self {
        StoredRequest {
            labels: service
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            requested_ips: service.requested_ips.clone().into_boxed_slice(),
            requested_pool: service.requested_pool.as_deref().map(Box::from),
            sharing_key: service.sharing_key.as_deref().map(Box::from),
            family_policy: service.family_policy,
            ip_families: service.ip_families.clone().into_boxed_slice(),
            traffic_policy: service.traffic_policy,
            pod_selector: if service.traffic_policy == TrafficPolicy::Local {
                service.pod_selector.clone()
            } else {
                Labels::new()
            },
            ports: service.ports.clone().into_boxed_slice(),
        }
    }

    /// The request again, for `key`.
    pub(super) fn to_request(&self, key: &ServiceKey) -> ServiceRequest {
        ServiceRequest {
            key: key.clone(),
            labels: self.labels.iter().cloned().collect(),
            requested_ips: self.requested_ips.to_vec(),
            requested_pool: self.requested_pool.as_deref().map(str::to_owned),
            sharing_key: self.sharing_key.as_deref().map(str::to_owned),
            family_policy: self.family_policy,
            ip_families: self.ip_families.to_vec(),
            traffic_policy: self.traffic_policy,
            pod_selector: self.pod_selector.clone(),
            ports: self.ports.to_vec(),
        }
    }

    /// The sharing view, as [`Holder::of`] gives it for the full request.
    pub(super) fn holder(&self) -> Holder<'_> {
        Holder {
            sharing_key: self.sharing_key.as_deref().filter(|k| !k.is_empty()),
            ports: &self.ports,
            local_selector: (self.traffic_policy == TrafficPolicy::Local)
                .then_some(&self.pod_selector),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_request_gives_back_the_request_and_its_sharing_view() {
        let local = ServiceRequest {
            key: ServiceKey::new("shop", "web"),
            labels: Labels::from([("app".into(), "web".into()), ("tier".into(), "a".into())]),
            requested_ips: vec!["192.0.2.1".parse().expect("ip")],
            requested_pool: Some("blue".into()),
            sharing_key: Some("k".into()),
            family_policy: FamilyPolicy::PreferDualStack,
            ip_families: vec![Family::V6, Family::V4],
            traffic_policy: TrafficPolicy::Local,
            pod_selector: Labels::from([("app".into(), "web".into())]),
            ports: vec![ServicePort {
                protocol: Protocol::Udp,
                port: 53,
            }],
        };
        let cluster = ServiceRequest {
            traffic_policy: TrafficPolicy::Cluster,
            pod_selector: Labels::new(),
            sharing_key: Some(String::new()),
            ..local.clone()
        };
        for request in [&local, &cluster] {
            let stored = StoredRequest::of(request);
            assert_eq!(&stored.to_request(&request.key), request);
            assert_eq!(stored.holder(), Holder::of(request));
        }
        assert_eq!(StoredRequest::of(&cluster).holder().sharing_key, None);
    }

    #[test]
    fn port_clash_names_the_lowest_common_port() {
        let port = |port| ServicePort {
            protocol: Protocol::Tcp,
            port,
        };
        let ours = [port(443), port(80), port(22)];
        let theirs = [port(22), port(443)];
        let holder = |ports| Holder {
            sharing_key: None,
            ports,
            local_selector: None,
        };
        assert_eq!(holder(&ours).port_clash(&holder(&theirs)), Some(port(22)));
        assert_eq!(holder(&ours[..2]).port_clash(&holder(&theirs[..1])), None);
    }
}
