//! A Service as the reconciler sees it, as plain values (whether it is ours is
//! `ferrolb_runtime::class::ClassFilter::serves`, SPEC §3): what it
//! asks the allocator for, what ferrolb last published on it, what it should publish now, and
//! which Events the difference deserves.
//!
//! Contract: pure, no I/O. Events come only from a difference between what the Service shows and
//! what it should show, so a resync that changes nothing emits nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::addresses::{Family, parse_ip};
use ferrolb_config::annotations::is_ferrolb_annotation;
use ferrolb_runtime::cache::drop_managed_fields;
use k8s_openapi::api::core::v1::Service;

use crate::allocator::{
    AliasUsed, AnnotationError, Assignment, FamilyPolicy, Protocol, RejectedIp, ServiceKey,
    ServicePort, ServiceRequest, TrafficPolicy, parse_annotations,
};

/// Annotation naming the pool a Service's addresses come from.
pub const ALLOCATED_FROM_POOL: &str = "ferrolb.io/allocated-from-pool";
/// Service condition saying whether addresses are assigned.
pub const IP_ALLOCATED: &str = "ferrolb.io/IPAllocated";
/// Every address is published with `ipMode: VIP`: traffic arrives with the LoadBalancer IP as
/// destination and kube-proxy may short-circuit it inside the cluster.
pub const IP_MODE_VIP: &str = "VIP";

/// The namespace/name of a Service; `None` for an object without them (never from the API).
pub fn key_of(service: &Service) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        service.metadata.namespace.clone()?,
        service.metadata.name.clone()?,
    ))
}

/// What the Service asks the allocator for, and the MetalLB spellings it used.
pub fn request_of(
    key: &ServiceKey,
    service: &Service,
) -> Result<(ServiceRequest, Vec<AliasUsed>), AnnotationError> {
    let empty = BTreeMap::new();
    let annotations = service.metadata.annotations.as_ref().unwrap_or(&empty);
    let spec = service.spec.clone().unwrap_or_default();
    let requests = parse_annotations(annotations, spec.load_balancer_ip.as_deref())?;
    let family_policy = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
        _ => FamilyPolicy::SingleStack,
    };
    let ip_families = spec
        .ip_families
        .unwrap_or_default()
        .iter()
        .filter_map(|family| match family.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect();
    let traffic_policy = match spec.external_traffic_policy.as_deref() {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    };
    let ports = spec
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
        .collect();
    let request = ServiceRequest {
        key: key.clone(),
        labels: service.metadata.labels.clone().unwrap_or_default(),
        requested_ips: requests.requested_ips,
        requested_pool: requests.requested_pool,
        sharing_key: requests.sharing_key,
        family_policy,
        ip_families,
        traffic_policy,
        // Only `Local` Services compare selectors (SPEC §4); the allocator keeps every held
        // request, so an unused copy would cost memory per Service for nothing.
        pod_selector: if traffic_policy == TrafficPolicy::Local {
            spec.selector.unwrap_or_default()
        } else {
            BTreeMap::new()
        },
        ports,
    };
    Ok((request, requests.aliases))
}

/// Reduces a Service to what `ClassFilter::serves`, [`request_of`], [`published`] and the
/// reconciler read,
/// before it enters the cache. The cache holds every Service of the cluster (ClusterIP ones
/// too, so a type change is seen); at 10,000 Services the full objects were most of the
/// controller's memory (SPEC §9: 64 MiB). Writes are server-side applies of our own fields,
/// never built from the cached object, so nothing dropped here can be written back.
pub fn slim(service: &mut Service) {
    drop_managed_fields(service);
    let meta = &mut service.metadata;
    meta.owner_references = None;
    meta.finalizers = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|key, _| is_ferrolb_annotation(key));
    }
    let Some(spec) = service.spec.as_mut() else {
        return;
    };
    spec.cluster_ip = None;
    spec.cluster_ips = None;
    spec.external_ips = None;
    spec.external_name = None;
    spec.health_check_node_port = None;
    spec.internal_traffic_policy = None;
    spec.load_balancer_source_ranges = None;
    spec.publish_not_ready_addresses = None;
    spec.session_affinity = None;
    spec.session_affinity_config = None;
    spec.traffic_distribution = None;
    if spec.external_traffic_policy.as_deref() != Some("Local") {
        spec.selector = None;
    }
    for port in spec.ports.iter_mut().flatten() {
        port.name = None;
        port.app_protocol = None;
        port.node_port = None;
        port.target_port = None;
    }
    if let Some(conditions) = service
        .status
        .as_mut()
        .and_then(|status| status.conditions.as_mut())
    {
        conditions.retain(|condition| condition.type_ == IP_ALLOCATED);
    }
}

/// The `IPAllocated` condition without its transition time, which is kept, not compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionView {
    pub status: bool,
    pub reason: String,
    pub message: String,
    pub observed_generation: Option<i64>,
}

/// What ferrolb shows on a Service: the ingress addresses, the pool annotation and the condition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Published {
    pub ips: Vec<IpAddr>,
    pub pool: Option<String>,
    pub condition: Option<ConditionView>,
}

impl Published {
    /// Whether anything of ours is on the Service. Ingress alone may have been written by another
    /// implementation (before a class change), so it counts only together with our condition or
    /// annotation.
    pub fn is_ours(&self) -> bool {
        self.pool.is_some() || self.condition.is_some()
    }
}

/// Reads back what the Service shows. Ingress entries that are hostnames or not addresses are
/// skipped: we never write them.
pub fn published(service: &Service) -> Published {
    let status = service.status.as_ref();
    let ips = status
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|entry| entry.ip.as_deref().and_then(|ip| parse_ip(ip).ok()))
                .collect()
        })
        .unwrap_or_default();
    let condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == IP_ALLOCATED))
        .map(|c| ConditionView {
            status: c.status == "True",
            reason: c.reason.clone(),
            message: c.message.clone(),
            observed_generation: c.observed_generation,
        });
    let pool = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ALLOCATED_FROM_POOL).cloned());
    Published {
        ips,
        pool,
        condition,
    }
}

/// What the reconciler decided for one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Assigned(Assignment),
    /// Ours, but it gets no address; the message names the object and field at fault.
    Failed {
        reason: &'static str,
        message: String,
    },
    /// Not ours (any more): nothing of ours may stay on it.
    NotOurs,
}

/// The condition reason for a failed allocation.
pub const REASON_ALLOCATION_FAILED: &str = "AllocationFailed";
/// The condition reason for annotations that cannot be honoured.
pub const REASON_INVALID_REQUEST: &str = "InvalidRequest";
const REASON_ALLOCATED: &str = "IPAllocated";

/// What the Service should show after `outcome`, for spec generation `generation`.
pub fn desired(outcome: &Outcome, generation: Option<i64>) -> Published {
    match outcome {
        Outcome::Assigned(assignment) => Published {
            ips: assignment.ips.clone(),
            pool: Some(assignment.pool.clone()),
            condition: Some(ConditionView {
                status: true,
                reason: REASON_ALLOCATED.to_owned(),
                message: format!(
                    "assigned {} from pool {}",
                    list(&assignment.ips),
                    assignment.pool
                ),
                observed_generation: generation,
            }),
        },
        Outcome::Failed { reason, message } => Published {
            ips: Vec::new(),
            pool: None,
            condition: Some(ConditionView {
                status: false,
                reason: (*reason).to_owned(),
                message: message.clone(),
                observed_generation: generation,
            }),
        },
        Outcome::NotOurs => Published::default(),
    }
}

/// An Event to publish about the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The Events the change from `before` to `after` deserves. `freed` are addresses the allocator
/// released although the Service may no longer show them (the API server clears
/// `status.loadBalancer` itself when the type changes away from LoadBalancer). `displaced` are
/// addresses that a pool change took away (with the reason); `aliases` are MetalLB spellings on
/// the Service, reported whenever something else changes so that they are seen without
/// repeating on resync.
pub fn events(
    change: (&Published, &Published),
    outcome: &Outcome,
    freed: &[IpAddr],
    displaced: &[RejectedIp],
    aliases: &[AliasUsed],
) -> Vec<ServiceEvent> {
    let (before, after) = change;
    let mut events = Vec::new();
    let mut released: Vec<IpAddr> = Vec::new();
    let shown = before.ips.iter().filter(|_| before.is_ours());
    for ip in shown.chain(freed) {
        if !after.ips.contains(ip) && !released.contains(ip) {
            released.push(*ip);
        }
    }
    if !released.is_empty() {
        let why = displaced
            .iter()
            .filter(|d| released.contains(&d.ip))
            .map(|d| d.reason.to_string())
            .collect::<Vec<_>>();
        let note = if why.is_empty() {
            format!("released {}", list(&released))
        } else {
            format!("released {}: {}", list(&released), why.join("; "))
        };
        events.push(ServiceEvent {
            warning: false,
            reason: "IPReleased",
            note,
        });
    }
    match outcome {
        Outcome::Assigned(assignment) if before.ips != after.ips || !before.is_ours() => {
            events.push(ServiceEvent {
                warning: false,
                reason: "IPAllocated",
                note: format!(
                    "assigned {} from pool {}",
                    list(&assignment.ips),
                    assignment.pool
                ),
            });
        }
        Outcome::Failed { message, .. } if before.condition != after.condition => {
            events.push(ServiceEvent {
                warning: true,
                reason: "AllocationFailed",
                note: message.clone(),
            });
        }
        _ => {}
    }
    if !events.is_empty() {
        for alias in aliases {
            events.push(ServiceEvent {
                warning: true,
                reason: "DeprecatedAnnotation",
                note: format!(
                    "annotation {} is a MetalLB spelling; use {}",
                    alias.annotation, alias.preferred
                ),
            });
        }
    }
    events
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::AllocError;
    use ferrolb_runtime::class::ClassArgs;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort as K8sPort, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn lb(class: Option<&str>) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("web".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: class.map(str::to_owned),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn request_carries_families_policy_ports_and_aliases() {
        let mut service = lb(None);
        service.metadata.annotations = Some(BTreeMap::from([(
            "metallb.universe.tf/allow-shared-ip".to_owned(),
            "k".to_owned(),
        )]));
        if let Some(spec) = service.spec.as_mut() {
            spec.ip_family_policy = Some("RequireDualStack".into());
            spec.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
            spec.external_traffic_policy = Some("Local".into());
            spec.ports = Some(vec![K8sPort {
                port: 53,
                protocol: Some("UDP".into()),
                ..K8sPort::default()
            }]);
        }
        let key = key_of(&service).expect("key");
        let (request, aliases) = request_of(&key, &service).expect("request");
        assert_eq!(request.family_policy, FamilyPolicy::RequireDualStack);
        assert_eq!(request.ip_families, vec![Family::V6, Family::V4]);
        assert_eq!(request.traffic_policy, TrafficPolicy::Local);
        assert_eq!(request.sharing_key.as_deref(), Some("k"));
        assert_eq!(
            request.ports,
            vec![ServicePort {
                protocol: Protocol::Udp,
                port: 53
            }]
        );
        assert_eq!(aliases.len(), 1);
    }

    #[test]
    fn published_reads_ingress_condition_and_pool_annotation() {
        let mut service = lb(None);
        service.metadata.annotations = Some(BTreeMap::from([(
            ALLOCATED_FROM_POOL.to_owned(),
            "p".to_owned(),
        )]));
        service.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![
                    LoadBalancerIngress {
                        ip: Some("192.0.2.1".into()),
                        ..LoadBalancerIngress::default()
                    },
                    LoadBalancerIngress {
                        hostname: Some("lb.example".into()),
                        ..LoadBalancerIngress::default()
                    },
                ]),
            }),
            conditions: None,
        });
        let seen = published(&service);
        assert_eq!(seen.ips, vec![ip("192.0.2.1")]);
        assert_eq!(seen.pool.as_deref(), Some("p"));
        assert!(seen.is_ours());
    }

    #[test]
    fn foreign_ingress_alone_is_not_ours() {
        let seen = Published {
            ips: vec![ip("192.0.2.1")],
            ..Published::default()
        };
        assert!(!seen.is_ours());
    }

    fn assigned(ips: &[&str]) -> Outcome {
        Outcome::Assigned(Assignment {
            pool: "p".into(),
            ips: ips.iter().map(|t| ip(t)).collect(),
        })
    }

    #[test]
    fn unchanged_assignment_emits_no_event() {
        let outcome = assigned(&["192.0.2.1"]);
        let now = desired(&outcome, Some(1));
        assert!(events((&now, &now), &outcome, &[], &[], &[]).is_empty());
    }

    #[test]
    fn first_assignment_emits_ip_allocated_and_alias_warning() {
        let outcome = assigned(&["192.0.2.1"]);
        let after = desired(&outcome, Some(1));
        let alias = AliasUsed {
            annotation: "metallb.io/address-pool".into(),
            preferred: "ferrolb.io/address-pool",
        };
        let got = events(
            (&Published::default(), &after),
            &outcome,
            &[],
            &[],
            &[alias],
        );
        let reasons: Vec<_> = got.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, ["IPAllocated", "DeprecatedAnnotation"]);
        assert!(got[1].warning);
    }

    #[test]
    fn moved_address_emits_release_with_reason_then_allocation() {
        let old = desired(&assigned(&["192.0.2.1"]), Some(1));
        let outcome = assigned(&["203.0.113.1"]);
        let new = desired(&outcome, Some(1));
        let displaced = [RejectedIp {
            ip: ip("192.0.2.1"),
            reason: AllocError::IpLeftEveryPool {
                ip: ip("192.0.2.1"),
            },
        }];
        let got = events((&old, &new), &outcome, &[], &displaced, &[]);
        assert_eq!(got[0].reason, "IPReleased");
        assert!(
            got[0].note.contains("no longer in any pool"),
            "{}",
            got[0].note
        );
        assert_eq!(got[1].reason, "IPAllocated");
    }

    #[test]
    fn repeated_failure_emits_one_event() {
        let outcome = Outcome::Failed {
            reason: REASON_ALLOCATION_FAILED,
            message: "pool \"p\" has no free IPv4 address".into(),
        };
        let after = desired(&outcome, Some(2));
        assert_eq!(
            events((&Published::default(), &after), &outcome, &[], &[], &[]).len(),
            1
        );
        assert!(events((&after, &after), &outcome, &[], &[], &[]).is_empty());
    }

    #[test]
    fn service_no_longer_ours_releases_and_clears_everything() {
        let old = desired(&assigned(&["192.0.2.1"]), Some(1));
        let after = desired(&Outcome::NotOurs, Some(1));
        assert_eq!(after, Published::default());
        let got = events((&old, &after), &Outcome::NotOurs, &[], &[], &[]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].reason, "IPReleased");
    }

    #[test]
    fn release_is_announced_even_when_the_api_server_already_cleared_the_status() {
        let mut cleared = desired(&assigned(&["192.0.2.1"]), Some(1));
        cleared.ips.clear();
        let after = desired(&Outcome::NotOurs, Some(2));
        let got = events(
            (&cleared, &after),
            &Outcome::NotOurs,
            &[ip("192.0.2.1")],
            &[],
            &[],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].note, "released 192.0.2.1");
    }

    /// A Service as a cluster holds it: every field the controller reads, and many it does not.
    fn everything(traffic_policy: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
                "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "web"},
                "annotations": {
                    "ferrolb.io/allocated-from-pool": "blue",
                    "metallb.universe.tf/allow-shared-ip": "k",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                "finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
            },
            "spec": {
                "type": "LoadBalancer", "loadBalancerClass": "ferrolb.io/lb",
                "loadBalancerIP": "192.0.2.7", "ipFamilyPolicy": "PreferDualStack",
                "ipFamilies": ["IPv4", "IPv6"], "externalTrafficPolicy": traffic_policy,
                "selector": {"app": "web"}, "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "healthCheckNodePort": 30100,
                "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080,
                           "nodePort": 30080, "appProtocol": "http"}],
            },
            "status": {
                "loadBalancer": {"ingress": [{"ip": "192.0.2.7", "ipMode": "VIP"}]},
                "conditions": [
                    {"type": IP_ALLOCATED, "status": "True", "reason": "Allocated",
                     "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z",
                     "observedGeneration": 3},
                    {"type": "ferrolb.io/L2Announced", "status": "True", "reason": "Announced",
                     "message": "n", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                ],
            },
        }))
        .expect("service")
    }

    #[test]
    fn slimming_keeps_everything_the_controller_reads() {
        for policy in ["Cluster", "Local"] {
            let full = everything(policy);
            let mut slimmed = full.clone();
            slim(&mut slimmed);
            let key = key_of(&full).expect("key");
            assert_eq!(key_of(&slimmed), Some(key.clone()));
            let filter = ClassArgs {
                lb_class: "ferrolb.io/lb".into(),
                handle_classless: true,
            }
            .filter();
            assert_eq!(filter.serves(&slimmed), filter.serves(&full));
            assert!(filter.serves(&slimmed));
            assert_eq!(
                request_of(&key, &slimmed).expect("slimmed request"),
                request_of(&key, &full).expect("full request")
            );
            assert_eq!(published(&slimmed), published(&full));
            assert_eq!(slimmed.metadata.generation, full.metadata.generation);
            assert_eq!(
                slimmed.metadata.creation_timestamp,
                full.metadata.creation_timestamp
            );
            assert_eq!(
                slimmed.metadata.resource_version,
                full.metadata.resource_version
            );
        }
    }

    #[test]
    fn slimming_drops_what_the_controller_never_reads() {
        let mut service = everything("Cluster");
        slim(&mut service);
        assert!(service.metadata.managed_fields.is_none());
        let annotations = service.metadata.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        let spec = service.spec.clone().unwrap_or_default();
        assert!(spec.cluster_ip.is_none() && spec.selector.is_none());
        let ports = spec.ports.unwrap_or_default();
        assert!(
            ports
                .iter()
                .all(|p| p.node_port.is_none() && p.name.is_none())
        );
        let conditions = service
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default();
        assert_eq!(conditions.len(), 1);
    }
}
