//! Kubernetes objects to the plain inputs of [`crate::desired::compute`].
//!
//! Contract: pure functions of the objects the reflectors hold; no client, no clock. The config
//! snapshot is built by [`ferrolb_config::model::build`], the same code the controller runs, and
//! [`LastValid`] adds one rule on top: an object that *becomes* invalid (an edit the API server
//! accepted but the model refuses) is replaced by its last valid version, so a typo never withdraws
//! an address that is announced (bad input loses nothing). Deleting an object is deliberate and
//! does withdraw.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ferrolb_config::annotations::parse_annotations;
use ferrolb_config::crd::SpeakerStatus;
use ferrolb_config::crd::speaker_status::InterfaceStatus;
use ferrolb_config::model::{self, Config, Diagnostic, ObjectKind, Objects, Reason};
use ferrolb_runtime::cache::ObjectKey;
use ferrolb_runtime::class::ClassFilter;
use ipnet::IpNet;
use k8s_openapi::ClusterResourceScope;
use k8s_openapi::api::core::v1::{Node as KubeNode, Service as KubeService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::status::L2_ANNOUNCED;
use crate::desired::{Endpoint, Interface, Node, Service, TrafficPolicy};
use crate::l2::driver::Interfaces;

/// The label an EndpointSlice carries naming its Service (KEP-752).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Node as [`crate::desired`] sees it, with the interfaces its speaker reported in its
/// `SpeakerStatus` (`None` when it has not reported).
pub fn node(node: &KubeNode, reported: Option<&[Interface]>) -> Node {
    let network_unavailable = node
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True")
        });
    Node {
        name: node.name_any(),
        labels: node.labels().clone(),
        network_unavailable,
        interfaces: reported.map(<[Interface]>::to_vec),
    }
}

/// A `SpeakerStatus` as a speaker reads it back: its name and the interfaces it reports, the only
/// part another node reads, decoded straight from the API server's JSON.
///
/// Why not [`SpeakerStatus`]: every speaker watches every node's status, and the announcements
/// listed there number thousands on a node that owns many IPs. Decoded into `SpeakerStatus`, each
/// write of that status cost every speaker a transient copy of all of them (megabytes at 10,000
/// IPs, docs/BENCHMARKS.md); here serde skips them without allocating. Contract: never written
/// back (writes are server-side applies of our own status), so nothing left out here can be lost.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(from = "wire::SpeakerStatus")]
pub struct ReportedInterfaces {
    /// Name and resourceVersion only (kube's watcher needs an `ObjectMeta`).
    pub metadata: ObjectMeta,
    /// `None` while the speaker has written no status.
    pub interfaces: Option<Vec<Interface>>,
}

impl Resource for ReportedInterfaces {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(dynamic: &()) -> Cow<'_, str> {
        SpeakerStatus::kind(dynamic)
    }

    fn group(dynamic: &()) -> Cow<'_, str> {
        SpeakerStatus::group(dynamic)
    }

    fn version(dynamic: &()) -> Cow<'_, str> {
        SpeakerStatus::version(dynamic)
    }

    fn plural(dynamic: &()) -> Cow<'_, str> {
        SpeakerStatus::plural(dynamic)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The API server's JSON of a `SpeakerStatus`, only the fields read; serde skips the others
/// without allocating.
mod wire {
    use ferrolb_config::crd::speaker_status::InterfaceStatus;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct SpeakerStatus {
        pub metadata: Metadata,
        pub status: Option<Status>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Metadata {
        pub name: Option<String>,
        pub resource_version: Option<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Status {
        pub interfaces: Vec<InterfaceStatus>,
    }
}

impl From<wire::SpeakerStatus> for ReportedInterfaces {
    fn from(status: wire::SpeakerStatus) -> Self {
        ReportedInterfaces {
            metadata: ObjectMeta {
                name: status.metadata.name,
                resource_version: status.metadata.resource_version,
                ..ObjectMeta::default()
            },
            interfaces: status
                .status
                .map(|status| interfaces_from_status(&status.interfaces)),
        }
    }
}

/// What the speaker's cache keeps of a Service: the inputs of [`crate::desired`] and what the
/// condition writer reads, nothing else (see [`ferrolb_runtime::cache::Projection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFacts {
    /// For the Events about the Service.
    pub uid: Option<String>,
    /// The message of the `ferrolb.io/L2Announced` condition, whichever node wrote it.
    pub l2_announced: Option<String>,
    /// Set while the Service is a LoadBalancer of our class holding addresses.
    pub announceable: Option<Announceable>,
}

impl ServiceFacts {
    /// Whether a change from `old` to `new` matters to the control loop: only what it announces
    /// does. The condition message alone changes on every condition write (thousands of them when
    /// a node takes many Services over), and only the condition writer reads it, from the cache.
    pub fn wakes_the_loop(old: &ServiceFacts, new: &ServiceFacts) -> bool {
        old.announceable != new.announceable
    }
}

/// A Service with addresses to announce, as [`crate::desired::Service`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announceable {
    /// Sorted by key.
    pub labels: Box<[(String, String)]>,
    /// `status.loadBalancer.ingress[].ip`.
    pub ips: Vec<IpAddr>,
    pub traffic_policy: TrafficPolicy,
    /// `ferrolb.io/allow-shared-ip`.
    pub sharing_key: Option<String>,
}

/// Reduces a Service to [`ServiceFacts`]; `None` (nothing cached) for a Service that is neither
/// ours to announce nor carries our condition, such as every ClusterIP Service.
pub fn service_facts(service: &KubeService, filter: &ClassFilter) -> Option<ServiceFacts> {
    let status = service.status.as_ref();
    let l2_announced = status
        .and_then(|status| status.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == L2_ANNOUNCED))
        .map(|condition| condition.message.clone());
    let ips: Vec<IpAddr> = status
        .and_then(|status| status.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ingress| ingress.ip.as_deref()?.parse().ok())
        .collect();
    let announceable = (filter.serves(service) && !ips.is_empty()).then(|| {
        let traffic_policy = match service
            .spec
            .as_ref()
            .and_then(|spec| spec.external_traffic_policy.as_deref())
        {
            Some("Local") => TrafficPolicy::Local,
            _ => TrafficPolicy::Cluster,
        };
        // A Service whose annotations are unusable got no address from the controller; its
        // sharing key only matters alongside an address, so an error reads as "no key".
        let sharing_key = parse_annotations(service.annotations(), None)
            .ok()
            .and_then(|requests| requests.sharing_key);
        Announceable {
            labels: service
                .labels()
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            ips,
            traffic_policy,
            sharing_key,
        }
    });
    (announceable.is_some() || l2_announced.is_some()).then(|| ServiceFacts {
        uid: service.uid(),
        l2_announced,
        announceable,
    })
}

/// What the speaker's cache keeps of an EndpointSlice: its Service and endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceFacts {
    /// The `kubernetes.io/service-name` label.
    pub service: String,
    pub endpoints: Vec<Endpoint>,
}

/// Reduces an EndpointSlice to [`SliceFacts`]; `None` for a slice that names no Service.
pub fn slice_facts(slice: &EndpointSlice) -> Option<SliceFacts> {
    let service = slice.labels().get(SERVICE_NAME_LABEL)?.clone();
    let endpoints = slice
        .endpoints
        .iter()
        .map(|endpoint| {
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            Endpoint::from_conditions(
                endpoint.node_name.clone(),
                conditions.ready,
                conditions.serving,
                conditions.terminating,
            )
        })
        .collect();
    Some(SliceFacts { service, endpoints })
}

/// The Services with addresses to announce, with the endpoints of their EndpointSlices, borrowed
/// from the caches.
pub fn services<'a>(
    services: &'a HashMap<ObjectKey, ServiceFacts>,
    slices: &'a HashMap<ObjectKey, SliceFacts>,
) -> Vec<Service<'a>> {
    let mut endpoints: HashMap<(&str, &str), Vec<&Endpoint>> = HashMap::new();
    for (key, slice) in slices {
        endpoints
            .entry((&key.namespace, &slice.service))
            .or_default()
            .extend(&slice.endpoints);
    }
    services
        .iter()
        .filter_map(|(key, facts)| {
            let announceable = facts.announceable.as_ref()?;
            Some(Service {
                namespace: &key.namespace,
                name: &key.name,
                labels: &announceable.labels,
                ips: &announceable.ips,
                traffic_policy: announceable.traffic_policy,
                sharing_key: announceable.sharing_key.as_deref(),
                endpoints: endpoints
                    .remove(&(key.namespace.as_str(), key.name.as_str()))
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// This node's interfaces as the layer-2 driver sees them through netlink.
pub fn local_interfaces(interfaces: &Interfaces) -> Vec<Interface> {
    interfaces
        .iter()
        .map(|(name, interface)| Interface {
            name: name.clone(),
            up: interface.running,
            addresses: interface.networks.clone(),
        })
        .collect()
}

/// Interfaces as published in `SpeakerStatus.status.interfaces`.
pub fn interfaces_to_status(interfaces: &[Interface]) -> Vec<InterfaceStatus> {
    interfaces
        .iter()
        .map(|interface| InterfaceStatus {
            name: interface.name.clone(),
            up: interface.up,
            addresses: interface
                .addresses
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
        .collect()
}

/// Interfaces read back from another node's `SpeakerStatus`; an address that does not parse
/// (written by a different version, or by hand) is skipped rather than failing the node.
pub fn interfaces_from_status(interfaces: &[InterfaceStatus]) -> Vec<Interface> {
    interfaces
        .iter()
        .map(|interface| Interface {
            name: interface.name.clone(),
            up: interface.up,
            addresses: interface
                .addresses
                .iter()
                .filter_map(|address| address.parse::<IpNet>().ok())
                .collect(),
        })
        .collect()
}

/// The last valid version of every ferrolb object, by kind and name (see the module docs).
#[derive(Debug, Default)]
pub struct LastValid {
    pools: BTreeMap<String, ferrolb_config::crd::IPAddressPool>,
    l2_advertisements: BTreeMap<String, ferrolb_config::crd::L2Advertisement>,
    bgp_advertisements: BTreeMap<String, ferrolb_config::crd::BGPAdvertisement>,
    peers: BTreeMap<String, ferrolb_config::crd::BGPPeer>,
    bfd_profiles: BTreeMap<String, ferrolb_config::crd::BFDProfile>,
    communities: BTreeMap<String, ferrolb_config::crd::Community>,
}

/// A snapshot built with [`LastValid::build`].
#[derive(Debug)]
pub struct Built {
    pub config: Config,
    /// The problems of the objects as they are now (what the user must fix).
    pub diagnostics: Vec<Diagnostic>,
    /// Invalid objects whose last valid version was used instead.
    pub kept: Vec<(ObjectKind, String)>,
}

impl Built {
    /// No object is invalid (conflicts and dangling references are the controller's to report and
    /// do not make the speaker's view wrong).
    pub fn is_valid(&self) -> bool {
        !self
            .diagnostics
            .iter()
            .any(|d| d.is_error() && d.reason == Reason::Invalid)
    }
}

impl LastValid {
    /// Builds the snapshot from `objects`, substituting the last valid version of every object that
    /// is invalid now, and remembers the valid ones.
    pub fn build(&mut self, mut objects: Objects) -> Built {
        let (config, diagnostics) = model::build(&objects);
        let invalid: BTreeSet<(ObjectKind, String)> = diagnostics
            .iter()
            .filter(|d| d.is_error() && d.reason == Reason::Invalid)
            .map(|d| (d.kind, d.name.clone()))
            .collect();
        let mut kept = Vec::new();
        kept.extend(substitute(
            &mut objects.pools,
            &mut self.pools,
            ObjectKind::IPAddressPool,
            &invalid,
        ));
        kept.extend(substitute(
            &mut objects.l2_advertisements,
            &mut self.l2_advertisements,
            ObjectKind::L2Advertisement,
            &invalid,
        ));
        kept.extend(substitute(
            &mut objects.bgp_advertisements,
            &mut self.bgp_advertisements,
            ObjectKind::BGPAdvertisement,
            &invalid,
        ));
        kept.extend(substitute(
            &mut objects.peers,
            &mut self.peers,
            ObjectKind::BGPPeer,
            &invalid,
        ));
        kept.extend(substitute(
            &mut objects.bfd_profiles,
            &mut self.bfd_profiles,
            ObjectKind::BFDProfile,
            &invalid,
        ));
        kept.extend(substitute(
            &mut objects.communities,
            &mut self.communities,
            ObjectKind::Community,
            &invalid,
        ));
        let config = if kept.is_empty() {
            config
        } else {
            model::build(&objects).0
        };
        Built {
            config,
            diagnostics,
            kept,
        }
    }
}

/// Replaces each object of `kind` that is `invalid` by its remembered version (when there is one) and
/// remembers every other object; forgets objects that no longer exist. Returns the names replaced.
fn substitute<T>(
    current: &mut [T],
    last: &mut BTreeMap<String, T>,
    kind: ObjectKind,
    invalid: &BTreeSet<(ObjectKind, String)>,
) -> Vec<(ObjectKind, String)>
where
    T: kube::Resource + Clone,
{
    let names: BTreeSet<String> = current.iter().map(ResourceExt::name_any).collect();
    last.retain(|name, _| names.contains(name));
    let mut kept = Vec::new();
    for object in current.iter_mut() {
        let name = object.name_any();
        if !invalid.contains(&(kind, name.clone())) {
            last.insert(name, object.clone());
        } else if let Some(previous) = last.get(&name) {
            *object = previous.clone();
            kept.push((kind, name));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_config::crd::{IPAddressPool, L2Advertisement};
    use ferrolb_runtime::class::ClassArgs;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeCondition, NodeStatus, ServiceSpec,
        ServiceStatus,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint as KubeEndpoint, EndpointConditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
    use serde_json::json;

    fn pool(name: &str, address: &str) -> IPAddressPool {
        serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"addresses": [address]}
        }))
        .expect("pool")
    }

    fn l2(name: &str) -> L2Advertisement {
        serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": name}, "spec": {}
        }))
        .expect("advertisement")
    }

    fn filter() -> ClassFilter {
        ClassArgs {
            lb_class: "ferrolb.io/lb".into(),
            handle_classless: true,
        }
        .filter()
    }

    fn service(name: &str, ips: &[&str], policy: Option<&str>) -> KubeService {
        KubeService {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                annotations: Some(BTreeMap::from([(
                    "metallb.io/allow-shared-ip".to_owned(),
                    "k".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                external_traffic_policy: policy.map(str::to_owned),
                ..ServiceSpec::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ips.iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some((*ip).to_owned()),
                                ..LoadBalancerIngress::default()
                            })
                            .collect(),
                    ),
                }),
                conditions: None,
            }),
        }
    }

    fn slice(service: &str, node: &str, ready: Option<bool>) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(format!("{service}-{node}")),
                labels: Some(BTreeMap::from([(
                    SERVICE_NAME_LABEL.to_owned(),
                    service.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            endpoints: vec![KubeEndpoint {
                addresses: vec!["10.0.0.1".into()],
                node_name: Some(node.into()),
                conditions: Some(EndpointConditions {
                    ready,
                    ..EndpointConditions::default()
                }),
                ..KubeEndpoint::default()
            }],
            ports: None,
        }
    }

    /// The caches as the speaker's projections would hold `services` and `slices`.
    fn cached(
        services: &[KubeService],
        slices: &[EndpointSlice],
    ) -> (
        HashMap<ObjectKey, ServiceFacts>,
        HashMap<ObjectKey, SliceFacts>,
    ) {
        let key = |meta: &ObjectMeta| {
            ObjectKey::new(
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
            )
        };
        (
            services
                .iter()
                .filter_map(|s| Some((key(&s.metadata), service_facts(s, &filter())?)))
                .collect(),
            slices
                .iter()
                .filter_map(|s| Some((key(&s.metadata), slice_facts(s)?)))
                .collect(),
        )
    }

    #[test]
    fn services_carry_addresses_policy_sharing_key_and_their_slices_endpoints() {
        let (services_cache, slices_cache) = cached(
            &[
                service("web", &["198.51.100.1"], Some("Local")),
                service("pending", &[], None),
            ],
            &[
                slice("web", "node-a", Some(false)),
                slice("web", "node-b", None),
                slice("other", "node-c", Some(true)),
            ],
        );
        assert_eq!(
            services_cache.len(),
            1,
            "a Service without address is not kept"
        );
        let services = services(&services_cache, &slices_cache);
        assert_eq!(services.len(), 1);
        let web = &services[0];
        assert_eq!(
            web.ips,
            vec!["198.51.100.1".parse::<std::net::IpAddr>().expect("ip")]
        );
        assert_eq!(web.traffic_policy, TrafficPolicy::Local);
        assert_eq!(web.sharing_key, Some("k"));
        let mut nodes: Vec<_> = web
            .endpoints
            .iter()
            .map(|e| (e.node.as_deref(), e.ready))
            .collect();
        nodes.sort();
        assert_eq!(nodes, vec![(Some("node-a"), false), (Some("node-b"), true)]);
    }

    #[test]
    fn services_of_another_class_are_not_kept() {
        let mut other = service("web", &["198.51.100.1"], None);
        if let Some(spec) = other.spec.as_mut() {
            spec.load_balancer_class = Some("example.com/other".into());
        }
        assert_eq!(service_facts(&other, &filter()), None);
    }

    #[test]
    fn a_service_no_longer_ours_is_kept_only_for_our_condition() {
        let mut other = service("web", &["198.51.100.1"], None);
        if let Some(spec) = other.spec.as_mut() {
            spec.type_ = Some("ClusterIP".into());
        }
        if let Some(status) = other.status.as_mut() {
            status.conditions = Some(vec![Condition {
                type_: L2_ANNOUNCED.into(),
                status: "True".into(),
                message: "announced by node-a".into(),
                reason: "Announcing".into(),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }]);
        }
        other.metadata.uid = Some("u1".into());
        assert_eq!(
            service_facts(&other, &filter()),
            Some(ServiceFacts {
                uid: Some("u1".into()),
                l2_announced: Some("announced by node-a".into()),
                announceable: None,
            })
        );
        let (services_cache, slices_cache) = cached(&[other], &[]);
        assert!(services(&services_cache, &slices_cache).is_empty());
    }

    #[test]
    fn only_a_change_of_what_is_announced_wakes_the_loop() {
        let facts = |message: &str, ip: &str| {
            let mut service = service("web", &[ip], None);
            if let Some(status) = service.status.as_mut() {
                status.conditions = Some(vec![Condition {
                    type_: L2_ANNOUNCED.into(),
                    status: "True".into(),
                    message: message.into(),
                    reason: "Announcing".into(),
                    last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                    observed_generation: None,
                }]);
            }
            service_facts(&service, &filter()).expect("ours")
        };
        let before = facts("announced by node-a", "198.51.100.1");
        let condition_only = facts("announced by node-b", "198.51.100.1");
        assert_ne!(before, condition_only, "the cache keeps the new message");
        assert!(!ServiceFacts::wakes_the_loop(&before, &condition_only));
        assert!(ServiceFacts::wakes_the_loop(
            &before,
            &facts("announced by node-a", "198.51.100.2")
        ));
    }

    #[test]
    fn node_reads_network_unavailable_and_reported_interfaces() {
        let kube_node = KubeNode {
            metadata: ObjectMeta {
                name: Some("node-a".into()),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "NetworkUnavailable".into(),
                    status: "True".into(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..KubeNode::default()
        };
        let unreported = node(&kube_node, None);
        assert!(unreported.network_unavailable);
        assert_eq!(unreported.interfaces, None);
        let status: ReportedInterfaces = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "SpeakerStatus",
            "metadata": {"name": "node-a", "resourceVersion": "7",
                         "managedFields": [{"manager": "ferrolb-speaker"}]},
            "spec": {"nodeName": "node-a"},
            "status": {
                "l2Announcements": [{"ip": "198.51.100.10", "service": "ns/a", "interface": "eth0"}],
                "interfaces": [{"name": "eth0", "up": true,
                                "addresses": ["198.51.100.4/24", "garbage"]}]
            }
        }))
        .expect("SpeakerStatus");
        assert_eq!(status.name_any(), "node-a");
        assert_eq!(status.resource_version().as_deref(), Some("7"));
        let interfaces = status.interfaces;
        let reported = node(&kube_node, interfaces.as_deref());
        assert_eq!(
            reported.interfaces,
            Some(vec![Interface {
                name: "eth0".into(),
                up: true,
                addresses: vec!["198.51.100.4/24".parse().expect("net")],
            }])
        );
    }

    #[test]
    fn a_speaker_status_without_status_reports_no_interfaces() {
        let status: ReportedInterfaces = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "SpeakerStatus",
            "metadata": {"name": "node-b"}, "spec": {"nodeName": "node-b"}
        }))
        .expect("SpeakerStatus");
        assert_eq!(status.interfaces, None);
        assert_eq!(ReportedInterfaces::plural(&()), "speakerstatuses");
    }

    #[test]
    fn interfaces_survive_the_round_trip_through_status() {
        let interfaces = vec![Interface {
            name: "eth0".into(),
            up: false,
            addresses: vec![
                "198.51.100.4/24".parse().expect("net"),
                "2001:db8::4/64".parse().expect("net"),
            ],
        }];
        assert_eq!(
            interfaces_from_status(&interfaces_to_status(&interfaces)),
            interfaces
        );
    }

    #[test]
    fn pool_made_invalid_keeps_its_last_valid_version() {
        let mut last = LastValid::default();
        let objects = |address: &str| Objects {
            pools: vec![pool("p", address)],
            l2_advertisements: vec![l2("all")],
            ..Objects::default()
        };
        let first = last.build(objects("198.51.100.0/24"));
        assert!(first.is_valid());
        assert!(first.config.pools.contains_key("p"));
        // Host bits set: invalid (SPEC §2); the last valid version stays in use.
        let broken = last.build(objects("198.51.100.7/24"));
        assert!(!broken.is_valid());
        assert_eq!(
            broken.kept,
            vec![(ObjectKind::IPAddressPool, "p".to_owned())]
        );
        let kept = broken.config.pools.get("p").expect("kept");
        assert!(kept.addresses.contains("198.51.100.1".parse().expect("ip")));
        // Fixed: the new version is used and remembered.
        let fixed = last.build(objects("203.0.113.0/24"));
        assert!(fixed.kept.is_empty());
        let used = fixed.config.pools.get("p").expect("pool");
        assert!(used.addresses.contains("203.0.113.1".parse().expect("ip")));
    }

    #[test]
    fn invalid_object_never_valid_is_left_out_and_deleted_object_is_forgotten() {
        let mut last = LastValid::default();
        let broken = last.build(Objects {
            pools: vec![pool("p", "198.51.100.7/24")],
            ..Objects::default()
        });
        assert!(broken.kept.is_empty());
        assert!(broken.config.pools.is_empty());
        last.build(Objects {
            pools: vec![pool("q", "198.51.100.0/24")],
            ..Objects::default()
        });
        last.build(Objects::default());
        let recreated_broken = last.build(Objects {
            pools: vec![pool("q", "198.51.100.7/24")],
            ..Objects::default()
        });
        assert!(
            recreated_broken.config.pools.is_empty(),
            "a deleted pool's old version must not come back"
        );
    }
}
