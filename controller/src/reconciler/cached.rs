//! The Service as the controller caches it: a projection that holds only what the reconciler
//! reads, decoded straight from the API server's JSON.
//!
//! Why not `k8s_openapi::api::core::v1::Service`: the cache holds every Service of the cluster
//! (ClusterIP ones too, so a type change is seen), and at 10,000 Services even slimmed
//! `k8s-openapi` objects — a few hundred bytes of `Option` fields each in spec and metadata,
//! every enum-like value a `String`, labels and annotations in maps that allocate room for
//! eleven entries — were the largest part of the controller's memory (SPEC §9: 64 MiB,
//! docs/BENCHMARKS.md). Here enum-like fields are decoded into the allocator's types, lists are
//! boxed slices, and unread fields (managedFields above all) are skipped while decoding, never
//! allocated.
//!
//! Contract: writes are server-side applies of our own fields, never built from this type, so
//! nothing left out here can be written back or lost.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::addresses::{Family, parse_ip};
use ferrolb_config::annotations::is_ferrolb_annotation;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use serde::Deserialize;

use super::service::{ALLOCATED_FROM_POOL, IP_ALLOCATED};
use crate::allocator::{FamilyPolicy, Labels, Protocol, ServicePort, TrafficPolicy};

/// A Service, reduced to what the reconciler reads.
///
/// `metadata` keeps name, namespace, uid, resourceVersion, generation, creation and deletion
/// timestamps (kube's store and `Resource` need an `ObjectMeta`); labels, the request
/// annotations and the pool annotation live in [`CachedService::labels`],
/// [`CachedService::annotations`] and [`CachedStatus::pool`] instead.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "wire::Service")]
pub struct CachedService {
    pub metadata: ObjectMeta,
    /// Sorted by key, as the API server keeps them.
    pub labels: Box<[(String, String)]>,
    /// ferrolb's (and MetalLB's) request annotations; the pool annotation is not among them.
    pub annotations: BTreeMap<String, String>,
    pub spec: CachedSpec,
    pub status: CachedStatus,
}

/// The spec fields the reconciler reads, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachedSpec {
    /// `type: LoadBalancer`.
    pub load_balancer: bool,
    pub load_balancer_class: Option<Box<str>>,
    /// `spec.loadBalancerIP`, as written (the annotation parser validates it).
    pub load_balancer_ip: Option<Box<str>>,
    pub family_policy: FamilyPolicy,
    /// `ipFamilies` in order; unknown families are left out.
    pub ip_families: Box<[Family]>,
    pub traffic_policy: TrafficPolicy,
    /// The pod selector, kept only for `Local` Services: only they compare it (SPEC §4).
    pub local_selector: Labels,
    /// `(protocol, port)` of each port; ports with a protocol or number the API server would
    /// refuse are left out.
    pub ports: Box<[ServicePort]>,
}

/// What ferrolb's writes put on the Service, as read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachedStatus {
    /// Ingress addresses; hostnames and entries that are not addresses are left out (we never
    /// write them).
    pub ips: Box<[IpAddr]>,
    /// Annotation `ferrolb.io/allocated-from-pool`.
    pub pool: Option<Box<str>>,
    /// Condition `ferrolb.io/IPAllocated`; other conditions are left out.
    pub condition: Option<Box<CachedCondition>>,
}

/// The `ferrolb.io/IPAllocated` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCondition {
    pub status: bool,
    pub reason: String,
    pub message: String,
    pub observed_generation: Option<i64>,
    pub last_transition_time: Option<Time>,
}

impl Resource for CachedService {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Service")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("services")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The API server's JSON, only the fields read; serde skips the others without allocating.
mod wire {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Service {
        pub metadata: Metadata,
        pub spec: Spec,
        pub status: Status,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Metadata {
        pub name: Option<String>,
        pub namespace: Option<String>,
        pub uid: Option<String>,
        pub resource_version: Option<String>,
        pub generation: Option<i64>,
        pub creation_timestamp: Option<Time>,
        pub deletion_timestamp: Option<Time>,
        pub labels: Option<BTreeMap<String, String>>,
        pub annotations: Option<BTreeMap<String, String>>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Spec {
        #[serde(rename = "type")]
        pub type_: Option<String>,
        pub load_balancer_class: Option<String>,
        #[serde(rename = "loadBalancerIP")]
        pub load_balancer_ip: Option<String>,
        pub ip_family_policy: Option<String>,
        pub ip_families: Option<Vec<String>>,
        pub external_traffic_policy: Option<String>,
        pub selector: Option<BTreeMap<String, String>>,
        pub ports: Option<Vec<Port>>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Port {
        pub protocol: Option<String>,
        pub port: i32,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Status {
        pub load_balancer: Option<LoadBalancer>,
        pub conditions: Option<Vec<Condition>>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct LoadBalancer {
        pub ingress: Option<Vec<Ingress>>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Ingress {
        pub ip: Option<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Condition {
        #[serde(rename = "type")]
        pub type_: String,
        pub status: String,
        pub reason: String,
        pub message: String,
        pub observed_generation: Option<i64>,
        pub last_transition_time: Option<Time>,
    }
}

impl From<wire::Service> for CachedService {
    fn from(service: wire::Service) -> Self {
        let wire::Service {
            metadata,
            spec,
            status,
        } = service;
        let mut annotations = metadata.annotations.unwrap_or_default();
        annotations.retain(|key, _| is_ferrolb_annotation(key));
        let pool = annotations.remove(ALLOCATED_FROM_POOL).map(Box::from);
        let traffic_policy = match spec.external_traffic_policy.as_deref() {
            Some("Local") => TrafficPolicy::Local,
            _ => TrafficPolicy::Cluster,
        };
        CachedService {
            metadata: ObjectMeta {
                name: metadata.name,
                namespace: metadata.namespace,
                uid: metadata.uid,
                resource_version: metadata.resource_version,
                generation: metadata.generation,
                creation_timestamp: metadata.creation_timestamp,
                deletion_timestamp: metadata.deletion_timestamp,
                ..ObjectMeta::default()
            },
            labels: metadata.labels.unwrap_or_default().into_iter().collect(),
            annotations,
            spec: CachedSpec {
                load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
                load_balancer_class: spec.load_balancer_class.map(Box::from),
                load_balancer_ip: spec.load_balancer_ip.map(Box::from),
                family_policy: match spec.ip_family_policy.as_deref() {
                    Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
                    Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
                    _ => FamilyPolicy::SingleStack,
                },
                ip_families: spec
                    .ip_families
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|family| match family.as_str() {
                        "IPv4" => Some(Family::V4),
                        "IPv6" => Some(Family::V6),
                        _ => None,
                    })
                    .collect(),
                traffic_policy,
                local_selector: match traffic_policy {
                    TrafficPolicy::Local => spec.selector.unwrap_or_default(),
                    TrafficPolicy::Cluster => Labels::new(),
                },
                ports: spec
                    .ports
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|port| {
                        // The API server defaults the protocol to TCP; anything else it refuses.
                        let protocol = match port.protocol.as_deref() {
                            None | Some("TCP") => Protocol::Tcp,
                            Some("UDP") => Protocol::Udp,
                            Some("SCTP") => Protocol::Sctp,
                            Some(_) => return None,
                        };
                        Some(ServicePort {
                            protocol,
                            port: u16::try_from(port.port).ok()?,
                        })
                    })
                    .collect(),
            },
            status: CachedStatus {
                ips: status
                    .load_balancer
                    .and_then(|lb| lb.ingress)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|entry| entry.ip.as_deref().and_then(|ip| parse_ip(ip).ok()))
                    .collect(),
                pool,
                condition: status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .find(|c| c.type_ == IP_ALLOCATED)
                    .map(|c| {
                        Box::new(CachedCondition {
                            status: c.status == "True",
                            reason: c.reason,
                            message: c.message,
                            observed_generation: c.observed_generation,
                            last_transition_time: c.last_transition_time,
                        })
                    }),
            },
        }
    }
}
