//! A Service as the reconciler sees it ([`CachedService`]), as plain values: whether it is ours
//! (SPEC §3), what it asks the allocator for, what ferrolb last published on it, what it should
//! publish now, and which Events the difference deserves.
//!
//! Contract: pure, no I/O. Events come only from a difference between what the Service shows and
//! what it should show, so a resync that changes nothing emits nothing.

use std::net::IpAddr;

use ferrolb_runtime::class::ClassFilter;

use super::cached::CachedService;
use crate::allocator::{
    AliasUsed, AnnotationError, Assignment, RejectedIp, ServiceKey, ServiceRequest,
    parse_annotations,
};

/// Annotation naming the pool a Service's addresses come from.
pub const ALLOCATED_FROM_POOL: &str = "ferrolb.io/allocated-from-pool";
/// Service condition saying whether addresses are assigned.
pub const IP_ALLOCATED: &str = "ferrolb.io/IPAllocated";
/// Every address is published with `ipMode: VIP`: traffic arrives with the LoadBalancer IP as
/// destination and kube-proxy may short-circuit it inside the cluster.
pub const IP_MODE_VIP: &str = "VIP";

/// The namespace/name of a Service; `None` for an object without them (never from the API).
pub fn key_of(service: &CachedService) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        service.metadata.namespace.clone()?,
        service.metadata.name.clone()?,
    ))
}

/// Whether the Service is a LoadBalancer of our class that is not being deleted (SPEC §3).
pub fn serves(filter: &ClassFilter, service: &CachedService) -> bool {
    filter.serves_parts(
        service.spec.load_balancer,
        service.spec.load_balancer_class.as_deref(),
        service.metadata.deletion_timestamp.is_some(),
    )
}

/// What the Service asks the allocator for, and the MetalLB spellings it used.
pub fn request_of(
    key: &ServiceKey,
    service: &CachedService,
) -> Result<(ServiceRequest, Vec<AliasUsed>), AnnotationError> {
    let spec = &service.spec;
    let requests = parse_annotations(&service.annotations, spec.load_balancer_ip.as_deref())?;
    let request = ServiceRequest {
        key: key.clone(),
        labels: service.labels.iter().cloned().collect(),
        requested_ips: requests.requested_ips,
        requested_pool: requests.requested_pool,
        sharing_key: requests.sharing_key,
        family_policy: spec.family_policy,
        ip_families: spec.ip_families.to_vec(),
        traffic_policy: spec.traffic_policy,
        pod_selector: spec.local_selector.clone(),
        ports: spec.ports.to_vec(),
    };
    Ok((request, requests.aliases))
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

/// Reads back what the Service shows.
pub fn published(service: &CachedService) -> Published {
    let status = &service.status;
    Published {
        ips: status.ips.to_vec(),
        pool: status.pool.as_deref().map(str::to_owned),
        condition: status.condition.as_ref().map(|c| ConditionView {
            status: c.status,
            reason: c.reason.clone(),
            message: c.message.clone(),
            observed_generation: c.observed_generation,
        }),
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
    use crate::allocator::{AllocError, FamilyPolicy, Protocol, ServicePort, TrafficPolicy};
    use ferrolb_config::addresses::Family;
    use ferrolb_runtime::class::ClassArgs;
    use serde_json::json;

    /// A Service decoded as the cache decodes it, from the API server's JSON.
    fn cached(object: serde_json::Value) -> CachedService {
        serde_json::from_value(object).expect("service")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn request_carries_families_policy_ports_and_aliases() {
        let service = cached(json!({
            "metadata": {"namespace": "ns", "name": "web",
                         "annotations": {"metallb.universe.tf/allow-shared-ip": "k"}},
            "spec": {
                "type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                "ipFamilies": ["IPv6", "IPv4"], "externalTrafficPolicy": "Local",
                "ports": [{"port": 53, "protocol": "UDP"}],
            },
        }));
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
        let service = cached(json!({
            "metadata": {"namespace": "ns", "name": "web",
                         "annotations": {ALLOCATED_FROM_POOL: "p"}},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [
                {"ip": "192.0.2.1"}, {"hostname": "lb.example"},
            ]}},
        }));
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
    fn everything(traffic_policy: &str) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
                "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "web", "tier": "front"},
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
                           "nodePort": 30080, "appProtocol": "http"},
                          {"name": "dns", "protocol": "UDP", "port": 53}],
            },
            "status": {
                "loadBalancer": {"ingress": [{"ip": "192.0.2.7", "ipMode": "VIP"}]},
                "conditions": [
                    {"type": "ferrolb.io/L2Announced", "status": "True", "reason": "Announced",
                     "message": "n", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": IP_ALLOCATED, "status": "True", "reason": "Allocated",
                     "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z",
                     "observedGeneration": 3},
                ],
            },
        })
    }

    #[test]
    fn cached_service_keeps_everything_the_controller_reads() {
        let filter = ClassArgs {
            lb_class: "ferrolb.io/lb".into(),
            handle_classless: true,
        }
        .filter();
        for policy in ["Cluster", "Local"] {
            let full = everything(policy);
            let service = cached(full.clone());
            let key = key_of(&service).expect("key");
            assert_eq!(key, ServiceKey::new("shop", "web"));
            let k8s: k8s_openapi::api::core::v1::Service =
                serde_json::from_value(full).expect("k8s service");
            assert_eq!(serves(&filter, &service), filter.serves(&k8s));
            assert!(serves(&filter, &service));
            let (request, aliases) = request_of(&key, &service).expect("request");
            assert_eq!(
                request.labels,
                crate::allocator::Labels::from([
                    ("app".into(), "web".into()),
                    ("tier".into(), "front".into())
                ])
            );
            assert_eq!(request.requested_ips, vec![ip("192.0.2.7")]);
            assert_eq!(request.sharing_key.as_deref(), Some("k"));
            assert_eq!(aliases.len(), 1);
            assert_eq!(request.family_policy, FamilyPolicy::PreferDualStack);
            assert_eq!(request.ip_families, vec![Family::V4, Family::V6]);
            assert_eq!(
                request.ports,
                vec![
                    ServicePort {
                        protocol: Protocol::Tcp,
                        port: 80
                    },
                    ServicePort {
                        protocol: Protocol::Udp,
                        port: 53
                    }
                ]
            );
            let local = policy == "Local";
            assert_eq!(request.traffic_policy == TrafficPolicy::Local, local);
            // Only `Local` Services compare pod selectors (SPEC §4).
            assert_eq!(request.pod_selector.is_empty(), !local);
            assert_eq!(
                published(&service),
                Published {
                    ips: vec![ip("192.0.2.7")],
                    pool: Some("blue".into()),
                    condition: Some(ConditionView {
                        status: true,
                        reason: "Allocated".into(),
                        message: "m".into(),
                        observed_generation: Some(3),
                    }),
                }
            );
            let meta = &service.metadata;
            assert_eq!(meta.generation, Some(3));
            assert_eq!(meta.resource_version.as_deref(), Some("7"));
            assert_eq!(meta.uid.as_deref(), Some("u-1"));
            assert!(meta.creation_timestamp.is_some());
        }
    }

    #[test]
    fn cached_service_drops_what_the_controller_never_reads() {
        let service = cached(everything("Cluster"));
        assert!(service.metadata.managed_fields.is_none());
        assert!(service.metadata.finalizers.is_none());
        assert!(service.metadata.labels.is_none() && service.metadata.annotations.is_none());
        let kept: Vec<_> = service.annotations.keys().collect();
        assert_eq!(kept, ["metallb.universe.tf/allow-shared-ip"]);
        assert!(service.spec.local_selector.is_empty());
    }

    #[test]
    fn services_of_other_types_classes_or_being_deleted_are_not_served() {
        let filter = ClassArgs {
            lb_class: "ferrolb.io/lb".into(),
            handle_classless: true,
        }
        .filter();
        let service = |spec: serde_json::Value, deleting: bool| {
            let mut metadata = json!({"namespace": "ns", "name": "web"});
            if deleting {
                metadata["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            cached(json!({"metadata": metadata, "spec": spec}))
        };
        assert!(serves(
            &filter,
            &service(json!({"type": "LoadBalancer"}), false)
        ));
        assert!(!serves(
            &filter,
            &service(json!({"type": "LoadBalancer"}), true)
        ));
        assert!(!serves(
            &filter,
            &service(json!({"type": "ClusterIP"}), false)
        ));
        assert!(!serves(
            &filter,
            &service(
                json!({"type": "LoadBalancer", "loadBalancerClass": "other.io/lb"}),
                false
            )
        ));
    }
}
