//! Tests of the desired state: one per rule of the module docs, plus the agreement property.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::model::{Objects, build};
use ipnet::IpNet;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::bgp::packet::{Community, LargeCommunity};

fn from_json<T: DeserializeOwned>(kind: &str, name: &str, labels: Value, spec: Value) -> T {
    serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": kind,
        "metadata": { "name": name, "labels": labels },
        "spec": spec,
    }))
    .expect("test object deserializes")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test IP")
}

fn net(text: &str) -> IpNet {
    text.parse().expect("test prefix")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A Service as a test writes it; [`compute`] sees it through [`TestService::view`], as the
/// speaker sees its caches.
#[derive(Clone)]
struct TestService {
    namespace: String,
    name: String,
    labels: Vec<(String, String)>,
    ips: Vec<IpAddr>,
    traffic_policy: TrafficPolicy,
    sharing_key: Option<String>,
    endpoints: Vec<Endpoint>,
}

impl TestService {
    fn view(&self) -> Service<'_> {
        Service {
            namespace: &self.namespace,
            name: &self.name,
            labels: &self.labels,
            ips: &self.ips,
            traffic_policy: self.traffic_policy,
            sharing_key: self.sharing_key.as_deref(),
            endpoints: self.endpoints.iter().collect(),
        }
    }
}

/// A cluster: ferrolb objects, Nodes, Services and the live members.
#[derive(Clone)]
struct World {
    objects: Objects,
    nodes: BTreeMap<String, Node>,
    services: Vec<TestService>,
    live: BTreeSet<String>,
    exclusions: InterfaceExclusions,
}

impl World {
    /// Pools `lan` (198.51.100.0/24, labelled `tier=lan`) and `lan6` (2001:db8:1::/64), no
    /// advertisements, no nodes.
    fn new() -> Self {
        World {
            objects: Objects {
                pools: vec![
                    from_json(
                        "IPAddressPool",
                        "lan",
                        json!({ "tier": "lan" }),
                        json!({ "addresses": ["198.51.100.0/24"] }),
                    ),
                    from_json(
                        "IPAddressPool",
                        "lan6",
                        json!({}),
                        json!({ "addresses": ["2001:db8:1::/64"] }),
                    ),
                    from_json(
                        "IPAddressPool",
                        "far",
                        json!({}),
                        json!({ "addresses": ["203.0.113.0/24"] }),
                    ),
                ],
                ..Objects::default()
            },
            nodes: BTreeMap::new(),
            services: Vec::new(),
            live: BTreeSet::new(),
            exclusions: InterfaceExclusions::default(),
        }
    }

    fn l2(mut self, name: &str, spec: Value) -> Self {
        self.objects
            .l2_advertisements
            .push(from_json("L2Advertisement", name, json!({}), spec));
        self
    }

    fn bgp(mut self, name: &str, spec: Value) -> Self {
        self.objects
            .bgp_advertisements
            .push(from_json("BGPAdvertisement", name, json!({}), spec));
        self
    }

    fn peer(mut self, name: &str, extra: Value) -> Self {
        let mut spec = json!({ "myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1" });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        self.objects
            .peers
            .push(from_json("BGPPeer", name, json!({}), spec));
        self
    }

    fn community(mut self, alias: &str, value: &str) -> Self {
        self.objects.communities.push(from_json(
            "Community",
            &format!("aliases-{alias}"),
            json!({}),
            json!({ "communities": [{ "name": alias, "value": value }] }),
        ));
        self
    }

    /// A live node with `eth0` up on 198.51.100.0/24 and 2001:db8:1::/64.
    fn node(self, name: &str, node_labels: &[(&str, &str)]) -> Self {
        let index = self.nodes.len() + 1;
        let eth0 = Interface {
            name: "eth0".into(),
            up: true,
            addresses: vec![
                net(&format!("198.51.100.{index}/24")),
                net(&format!("2001:db8:1::{index}/64")),
            ],
        };
        self.node_with(name, node_labels, vec![eth0])
    }

    fn node_with(
        mut self,
        name: &str,
        node_labels: &[(&str, &str)],
        interfaces: Vec<Interface>,
    ) -> Self {
        self.nodes.insert(
            name.into(),
            Node {
                name: name.into(),
                labels: labels(node_labels),
                network_unavailable: false,
                interfaces: Some(interfaces),
            },
        );
        self.live.insert(name.into());
        self
    }

    fn edit_node(mut self, name: &str, edit: impl FnOnce(&mut Node)) -> Self {
        if let Some(node) = self.nodes.get_mut(name) {
            edit(node);
        }
        self
    }

    /// A Cluster Service with one ready endpoint (on no particular node).
    fn service(self, name: &str, ips: &[&str]) -> Self {
        self.service_with(name, ips, |_| {})
    }

    fn service_with(
        mut self,
        name: &str,
        ips: &[&str],
        edit: impl FnOnce(&mut TestService),
    ) -> Self {
        let mut service = TestService {
            namespace: "default".into(),
            name: name.into(),
            labels: Vec::new(),
            ips: ips.iter().map(|i| ip(i)).collect(),
            traffic_policy: TrafficPolicy::Cluster,
            sharing_key: None,
            endpoints: vec![ready(None)],
        };
        edit(&mut service);
        self.services.push(service);
        self
    }

    fn views(&self) -> Vec<Service<'_>> {
        self.services.iter().map(TestService::view).collect()
    }

    fn config(&self) -> Config {
        let (config, diagnostics) = build(&self.objects);
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "test config is valid: {errors:?}");
        config
    }

    /// The desired state as `node` computes it.
    fn desired(&self, node: &str) -> Desired {
        let config = self.config();
        self.desired_with(&config, node)
    }

    fn desired_with(&self, config: &Config, node: &str) -> Desired {
        let interfaces = self
            .nodes
            .get(node)
            .and_then(|n| n.interfaces.clone())
            .unwrap_or_default();
        compute(&Inputs {
            config,
            node,
            nodes: &self.nodes,
            interfaces: &interfaces,
            exclusions: &self.exclusions,
            services: &self.views(),
            live: &self.live,
        })
    }

    /// An unlabelled node with interfaces written as in [`interfaces`].
    fn node_on(self, name: &str, spec: &str) -> Self {
        self.node_with(name, &[], interfaces(spec))
    }

    /// Asserts that every node computes `expected` as the owner of `ip`.
    fn assert_owner(&self, ip_text: &str, expected: Option<&str>) {
        assert_eq!(
            self.agreed_owner(ip_text).as_deref(),
            expected,
            "owner of {ip_text}"
        );
    }

    /// Asserts the interfaces on which `node` announces `ip`.
    fn assert_interfaces(&self, node: &str, ip_text: &str, expected: &[&str]) {
        let found = self
            .desired(node)
            .l2
            .get(&ip(ip_text))
            .map(|d| d.interfaces.clone())
            .unwrap_or_default();
        assert_eq!(
            found,
            set(expected).into_iter().collect(),
            "interfaces of {ip_text} on {node}"
        );
    }

    /// The owner of `ip` as `node` sees it.
    fn owner(&self, node: &str, ip_text: &str) -> Option<String> {
        self.desired(node)
            .l2
            .get(&ip(ip_text))
            .and_then(|d| d.owner.clone())
    }

    /// Owner of `ip` computed by every node; asserts that they agree.
    fn agreed_owner(&self, ip_text: &str) -> Option<String> {
        let config = self.config();
        let owners: BTreeSet<Option<String>> = self
            .nodes
            .keys()
            .map(|n| {
                self.desired_with(&config, n)
                    .l2
                    .get(&ip(ip_text))
                    .and_then(|d| d.owner.clone())
            })
            .collect();
        assert_eq!(
            owners.len(),
            1,
            "nodes disagree on the owner of {ip_text}: {owners:?}"
        );
        owners.into_iter().next().flatten()
    }
}

fn ready(node: Option<&str>) -> Endpoint {
    Endpoint {
        node: node.map(str::to_owned),
        ready: true,
        serving: true,
        terminating: false,
    }
}

fn serving_terminating(node: &str) -> Endpoint {
    Endpoint {
        node: Some(node.into()),
        ready: false,
        serving: true,
        terminating: true,
    }
}

fn local_with(endpoints: Vec<Endpoint>) -> impl FnOnce(&mut TestService) {
    move |s| {
        s.traffic_policy = TrafficPolicy::Local;
        s.endpoints = endpoints;
    }
}

fn interface(name: &str, up: bool, addresses: &[&str]) -> Interface {
    Interface {
        name: name.into(),
        up,
        addresses: addresses.iter().map(|a| net(a)).collect(),
    }
}

/// Interfaces written `name=addr/len,addr/len` separated by spaces; a `down:` prefix marks a
/// link that is down.
fn interfaces(spec: &str) -> Vec<Interface> {
    spec.split_whitespace()
        .map(|token| {
            let (up, token) = match token.strip_prefix("down:") {
                Some(rest) => (false, rest),
                None => (true, token),
            };
            let (name, addresses) = token.split_once('=').unwrap_or((token, ""));
            let addresses: Vec<&str> = addresses.split(',').filter(|a| !a.is_empty()).collect();
            interface(name, up, &addresses)
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---- layer 2: which IPs are covered -------------------------------------------------------------

#[test]
fn single_node_owns_ip_on_its_subnet_interface() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .service("web", &["198.51.100.10"]);
    let desired = world.desired("node-a");
    let decision = &desired.l2[&ip("198.51.100.10")];
    assert_eq!(decision.owner.as_deref(), Some("node-a"));
    assert_eq!(decision.interfaces, SmallSet::from(["eth0".to_owned()]));
    assert_eq!(
        decision.services,
        SmallSet::from([ServiceRef {
            namespace: "default".into(),
            name: "web".into()
        }])
    );
}

#[test]
fn ip_outside_every_pool_is_not_announced() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .service("web", &["192.0.2.10"]);
    assert!(world.desired("node-a").l2.is_empty());
}

#[test]
fn pool_without_l2_advertisement_is_not_announced() {
    let world = World::new()
        .l2("only-v6", json!({ "ipAddressPools": ["lan6"] }))
        .node("node-a", &[])
        .service("web", &["198.51.100.10", "2001:db8:1::10"]);
    let desired = world.desired("node-a");
    assert!(!desired.l2.contains_key(&ip("198.51.100.10")));
    assert!(desired.l2.contains_key(&ip("2001:db8:1::10")));
}

#[test]
fn advertisement_pool_selector_covers_labelled_pool() {
    let world = World::new()
        .l2(
            "lan-tier",
            json!({ "ipAddressPoolSelectors": [{ "matchLabels": { "tier": "lan" } }] }),
        )
        .node("node-a", &[])
        .service("web", &["198.51.100.10", "2001:db8:1::10"]);
    let desired = world.desired("node-a");
    assert!(desired.l2.contains_key(&ip("198.51.100.10")));
    assert!(!desired.l2.contains_key(&ip("2001:db8:1::10")));
}

#[test]
fn service_selector_must_match_service_labels() {
    let world = World::new()
        .l2(
            "public",
            json!({ "serviceSelectors": [{ "matchLabels": { "exposure": "public" } }] }),
        )
        .node("node-a", &[])
        .service("internal", &["198.51.100.10"])
        .service_with("public", &["198.51.100.11"], |s| {
            s.labels = labels(&[("exposure", "public")]).into_iter().collect();
        });
    let desired = world.desired("node-a");
    assert!(!desired.l2.contains_key(&ip("198.51.100.10")));
    assert_eq!(
        desired.l2[&ip("198.51.100.11")].owner.as_deref(),
        Some("node-a")
    );
}

// ---- layer 2: which nodes are eligible ----------------------------------------------------------

#[test]
fn node_selector_limits_eligible_nodes() {
    let world = World::new()
        .l2(
            "edge",
            json!({ "nodeSelectors": [{ "matchLabels": { "role": "edge" } }] }),
        )
        .node("node-a", &[])
        .node("node-b", &[("role", "edge")])
        .node("node-c", &[])
        .service("web", &["198.51.100.10"]);
    world.assert_owner("198.51.100.10", Some("node-b"));
}

#[test]
fn excluded_node_is_never_eligible() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[(EXCLUDE_FROM_LOAD_BALANCERS, "")])
        .service("web", &["198.51.100.10"]);
    world.assert_owner("198.51.100.10", None);
    let world = world.node("node-b", &[]);
    world.assert_owner("198.51.100.10", Some("node-b"));
}

#[test]
fn network_unavailable_node_is_never_eligible() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .node("node-b", &[])
        .service("web", &["198.51.100.10"]);
    let owner = world.agreed_owner("198.51.100.10").expect("an owner");
    let world = world.edit_node(&owner, |n| n.network_unavailable = true);
    let new_owner = world.agreed_owner("198.51.100.10").expect("the other node");
    assert_ne!(owner, new_owner);
}

#[test]
fn node_without_interface_on_the_subnet_is_not_eligible() {
    let world = World::new()
        .l2("all", json!({}))
        .node_on("node-a", "eth0=192.0.2.5/24")
        .node_on("node-b", "eth1=198.51.100.2/25")
        .service("low", &["198.51.100.10"])
        .service("high", &["198.51.100.200"]);
    world.assert_owner("198.51.100.10", Some("node-b"));
    // 198.51.100.200 lies outside node-b's /25.
    world.assert_owner("198.51.100.200", None);
    world.assert_interfaces("node-b", "198.51.100.10", &["eth1"]);
}

#[test]
fn down_interface_is_not_used() {
    let world = World::new()
        .l2("all", json!({}))
        .node_on("node-a", "down:eth0=198.51.100.1/24 eth1=198.51.100.2/24")
        .service("web", &["198.51.100.10"]);
    world.assert_interfaces("node-a", "198.51.100.10", &["eth1"]);
}

#[test]
fn excluded_interface_is_not_chosen_by_subnet() {
    let world = World::new()
        .l2("all", json!({}))
        .node_on("node-a", "cni0=198.51.100.1/24 eth0=198.51.100.2/24")
        .node_on("node-b", "docker0=198.51.100.3/24")
        .service("web", &["198.51.100.10"]);
    world.assert_owner("198.51.100.10", Some("node-a"));
    world.assert_interfaces("node-a", "198.51.100.10", &["eth0"]);
}

#[test]
fn exclusion_list_is_configurable() {
    let mut world = World::new()
        .l2("all", json!({}))
        .node_on("node-a", "eth0=198.51.100.1/24")
        .service("web", &["198.51.100.10"]);
    world.exclusions = InterfaceExclusions::new(["eth*".to_owned()]);
    world.assert_owner("198.51.100.10", None);
}

#[test]
fn interface_listed_in_advertisement_overrides_subnet_match() {
    let world = World::new()
        .l2("uplink", json!({ "interfaces": ["uplink0"] }))
        // uplink0 has no address in the pool's subnet.
        .node_on("node-a", "eth0=198.51.100.1/24 uplink0")
        .node_on("node-b", "eth0=198.51.100.2/24")
        .service("web", &["198.51.100.10"]);
    world.assert_owner("198.51.100.10", Some("node-a"));
    world.assert_interfaces("node-a", "198.51.100.10", &["uplink0"]);
}

#[test]
fn listed_interface_is_used_even_when_a_pattern_excludes_it() {
    let world = World::new()
        .l2("bridge", json!({ "interfaces": ["virbr0"] }))
        .node_on("node-a", "virbr0=198.51.100.1/24")
        .service("web", &["198.51.100.10"]);
    world.assert_interfaces("node-a", "198.51.100.10", &["virbr0"]);
}

#[test]
fn listed_interface_that_is_down_makes_node_ineligible() {
    let world = World::new()
        .l2("uplink", json!({ "interfaces": ["uplink0"] }))
        .node_on("node-a", "eth0=198.51.100.1/24 down:uplink0")
        .service("web", &["198.51.100.10"]);
    world.assert_owner("198.51.100.10", None);
}

#[test]
fn interfaces_of_two_advertisements_are_combined() {
    let world = World::new()
        .l2("subnet", json!({}))
        .l2("uplink", json!({ "interfaces": ["uplink0"] }))
        .node_on("node-a", "eth0=198.51.100.1/24 uplink0")
        .service("web", &["198.51.100.10"]);
    world.assert_interfaces("node-a", "198.51.100.10", &["eth0", "uplink0"]);
}

#[test]
fn node_with_unreported_interfaces_is_not_eligible() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .node("node-b", &[])
        .service("web", &["198.51.100.10"]);
    let owner = world.agreed_owner("198.51.100.10").expect("an owner");
    let other = if owner == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    let world = world.edit_node(&owner, |n| n.interfaces = None);
    // The other node no longer counts on the silent one; the silent one still trusts its own
    // netlink view until its report propagates.
    assert_eq!(world.owner(other, "198.51.100.10").as_deref(), Some(other));
}

#[test]
fn this_node_without_its_node_object_announces_nothing() {
    let world = World::new()
        .l2("all", json!({}))
        .bgp("all", json!({}))
        .peer("router", json!({}))
        .service("web", &["198.51.100.10"]);
    let config = world.config();
    let interfaces = [interface("eth0", true, &["198.51.100.1/24"])];
    let desired = compute(&Inputs {
        config: &config,
        node: "node-a",
        nodes: &world.nodes,
        interfaces: &interfaces,
        exclusions: &world.exclusions,
        services: &world.views(),
        live: &world.live,
    });
    assert_eq!(desired.l2[&ip("198.51.100.10")].owner, None);
    assert!(desired.bgp.is_empty());
}

// ---- layer 2: endpoints -------------------------------------------------------------------------

#[test]
fn etp_local_service_not_announced_from_node_without_endpoint() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .node("node-b", &[])
        .node("node-c", &[])
        .service_with(
            "web",
            &["198.51.100.10"],
            local_with(vec![ready(Some("node-c"))]),
        );
    world.assert_owner("198.51.100.10", Some("node-c"));
    assert!(world.desired("node-a").announced_here().is_empty());
}

#[test]
fn etp_local_without_any_endpoint_has_no_owner() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .service_with("web", &["198.51.100.10"], local_with(vec![]));
    world.assert_owner("198.51.100.10", None);
}

#[test]
fn etp_local_uses_serving_terminating_endpoints_when_none_is_ready() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .node("node-b", &[])
        .service_with(
            "web",
            &["198.51.100.10"],
            local_with(vec![serving_terminating("node-b")]),
        );
    world.assert_owner("198.51.100.10", Some("node-b"));
}

#[test]
fn terminating_endpoints_are_ignored_while_a_ready_one_exists() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .node("node-b", &[])
        .service_with(
            "web",
            &["198.51.100.10"],
            local_with(vec![serving_terminating("node-b"), ready(Some("node-a"))]),
        );
    world.assert_owner("198.51.100.10", Some("node-a"));
}

#[test]
fn terminating_endpoint_that_stopped_serving_is_not_usable() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .service_with(
            "web",
            &["198.51.100.10"],
            local_with(vec![Endpoint {
                serving: false,
                ..serving_terminating("node-a")
            }]),
        );
    world.assert_owner("198.51.100.10", None);
}

#[test]
fn unset_endpoint_conditions_follow_the_api_defaults() {
    let unknown = Endpoint::from_conditions(Some("node-a".into()), None, None, None);
    assert_eq!(unknown, ready(Some("node-a")));
    let draining = Endpoint::from_conditions(None, Some(false), Some(true), Some(true));
    assert!(!draining.ready && draining.serving && draining.terminating);
    let not_ready = Endpoint::from_conditions(None, Some(false), None, None);
    assert!(!not_ready.ready && not_ready.serving && !not_ready.terminating);
}

#[test]
fn etp_cluster_service_without_usable_endpoint_has_no_owner() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .service_with("web", &["198.51.100.10"], |s| s.endpoints.clear());
    let desired = world.desired("node-a");
    assert_eq!(desired.l2[&ip("198.51.100.10")].owner, None);
    assert!(desired.announced_here().is_empty());
}

#[test]
fn etp_cluster_service_may_be_announced_from_node_without_endpoint() {
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .service_with("web", &["198.51.100.10"], |s| {
            s.endpoints = vec![ready(Some("elsewhere"))];
        });
    world.assert_owner("198.51.100.10", Some("node-a"));
}

// ---- layer 2: election --------------------------------------------------------------------------

/// Four unlabelled nodes and one Service, for election tests.
fn four_nodes() -> World {
    World::new()
        .node("node-a", &[])
        .node("node-b", &[])
        .node("node-c", &[])
        .node("node-d", &[])
}

#[test]
fn exactly_the_owner_announces_and_everyone_names_it() {
    let world = four_nodes()
        .l2("all", json!({}))
        .service("web", &["198.51.100.10"]);
    let owner = world.agreed_owner("198.51.100.10").expect("an owner");
    for node in world.nodes.keys() {
        let desired = world.desired(node);
        assert_eq!(
            desired.l2[&ip("198.51.100.10")].owner.as_deref(),
            Some(owner.as_str())
        );
        assert_eq!(
            desired.announced_here().is_empty(),
            *node != owner,
            "{node}"
        );
    }
}

#[test]
fn preferred_node_weight_beats_hash() {
    for preferred in ["node-a", "node-b", "node-c", "node-d"] {
        let world = four_nodes()
            .edit_node(preferred, |n| {
                n.labels = labels(&[("preferred", "yes")]);
            })
            .l2(
                "all",
                json!({ "preferredNodes": [{ "weight": 10, "selector": { "matchLabels": { "preferred": "yes" } } }] }),
            )
            .service("web", &["198.51.100.10"]);
        world.assert_owner("198.51.100.10", Some(preferred));
    }
}

#[test]
fn highest_matching_preference_weight_counts() {
    // node-a matches a weight-50 entry listed after a weight-10 entry; node-b matches weight 30.
    let world = four_nodes()
        .edit_node("node-a", |n| {
            n.labels = labels(&[("rack", "r1"), ("ssd", "yes")])
        })
        .edit_node("node-b", |n| n.labels = labels(&[("rack", "r2")]))
        .l2(
            "all",
            json!({ "preferredNodes": [
                { "weight": 10, "selector": { "matchLabels": { "rack": "r1" } } },
                { "weight": 30, "selector": { "matchLabels": { "rack": "r2" } } },
                { "weight": 50, "selector": { "matchLabels": { "ssd": "yes" } } },
            ] }),
        )
        .service("web", &["198.51.100.10"]);
    world.assert_owner("198.51.100.10", Some("node-a"));
}

#[test]
fn preference_of_an_advertisement_that_does_not_select_the_node_is_ignored() {
    // "pref" would give node-b weight 100 but does not select node-b (nodeSelectors), so it cannot
    // make node-b eligible nor weigh it; the owner is whoever wins without weights.
    let base = four_nodes()
        .edit_node("node-b", |n| n.labels = labels(&[("preferred", "yes")]))
        .l2("all", json!({}))
        .service("web", &["198.51.100.10"]);
    let unweighted = base.agreed_owner("198.51.100.10");
    let world = base.l2(
        "pref",
        json!({
            "nodeSelectors": [{ "matchLabels": { "role": "none" } }],
            "preferredNodes": [{ "weight": 100, "selector": { "matchLabels": { "preferred": "yes" } } }],
        }),
    );
    assert_eq!(world.agreed_owner("198.51.100.10"), unweighted);
}

#[test]
fn dead_owner_is_replaced_by_a_live_node() {
    let world = four_nodes()
        .l2("all", json!({}))
        .service("web", &["198.51.100.10"]);
    let owner = world.agreed_owner("198.51.100.10").expect("an owner");
    let mut survivors = world.clone();
    survivors.live.remove(&owner);
    survivors.nodes.remove(&owner).expect("owner is a node");
    let new_owner = survivors
        .agreed_owner("198.51.100.10")
        .expect("a new owner");
    assert_ne!(new_owner, owner);
    // The dead node is still in the Node list of the survivors; only liveness changed.
    let mut stale = world.clone();
    stale.live.remove(&owner);
    assert_eq!(
        stale.owner(&new_owner, "198.51.100.10"),
        Some(new_owner.clone())
    );
}

#[test]
fn this_node_counts_as_live_even_when_not_listed() {
    let mut world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .service("web", &["198.51.100.10"]);
    world.live.clear();
    assert_eq!(
        world.owner("node-a", "198.51.100.10").as_deref(),
        Some("node-a")
    );
}

#[test]
fn all_ips_of_a_service_share_one_owner() {
    let mut world = four_nodes().l2("all", json!({}));
    for i in 0..32 {
        world = world.service(
            &format!("svc-{i}"),
            &[
                &format!("198.51.100.{}", 10 + i),
                &format!("2001:db8:1::{:x}", 0x10 + i),
            ],
        );
    }
    let desired = world.desired("node-a");
    let mut owners = BTreeSet::new();
    for i in 0..32 {
        let v4 = &desired.l2[&ip(&format!("198.51.100.{}", 10 + i))];
        let v6 = &desired.l2[&ip(&format!("2001:db8:1::{:x}", 0x10 + i))];
        assert_eq!(v4.owner, v6.owner);
        assert!(!v4.split && !v6.split);
        owners.insert(v4.owner.clone());
    }
    assert!(
        owners.len() > 1,
        "32 Services all landed on one node: {owners:?}"
    );
}

#[test]
fn service_ips_are_elected_separately_when_no_node_reaches_all() {
    let world = World::new()
        .l2("all", json!({}))
        .node_on("v4-only", "eth0=198.51.100.1/24")
        .node_on("v6-only", "eth0=2001:db8:1::1/64")
        .service("web", &["198.51.100.10", "2001:db8:1::10"]);
    world.assert_owner("198.51.100.10", Some("v4-only"));
    world.assert_owner("2001:db8:1::10", Some("v6-only"));
    assert!(world.desired("v4-only").l2[&ip("198.51.100.10")].split);
}

#[test]
fn node_reaching_all_ips_is_preferred_over_splitting() {
    let world = World::new()
        .l2("all", json!({}))
        .node_on("v4-only", "eth0=198.51.100.1/24")
        .node_on("v6-only", "eth0=2001:db8:1::1/64")
        .node("both", &[])
        .service("web", &["198.51.100.10", "2001:db8:1::10"]);
    world.assert_owner("198.51.100.10", Some("both"));
    world.assert_owner("2001:db8:1::10", Some("both"));
}

#[test]
fn sharing_services_have_the_same_owner() {
    let mut world = four_nodes().l2("all", json!({}));
    for i in 0..16 {
        let key = format!("key-{i}");
        let shared = format!("198.51.100.{}", 10 + i);
        let tcp_key = key.clone();
        world = world
            .service_with(&format!("dns-tcp-{i}"), &[&shared], |s| {
                s.sharing_key = Some(tcp_key);
            })
            .service_with(
                &format!("dns-udp-{i}"),
                &[&shared, &format!("2001:db8:1::{:x}", 0x10 + i)],
                |s| {
                    s.sharing_key = Some(key);
                },
            );
    }
    let desired = world.desired("node-b");
    for i in 0..16 {
        let v4 = &desired.l2[&ip(&format!("198.51.100.{}", 10 + i))];
        let v6 = &desired.l2[&ip(&format!("2001:db8:1::{:x}", 0x10 + i))];
        assert_eq!(v4.services.iter().count(), 2);
        assert!(v4.owner.is_some());
        assert_eq!(v4.owner, v6.owner, "dns-udp-{i} and dns-tcp-{i}");
    }
}

#[test]
fn shared_ip_owner_must_serve_every_service_on_it() {
    // Both ETP=Local: only node-c has endpoints of both Services. Several sharing keys, so that
    // the hash alone would pick another node for some of them.
    for key in ["dns", "ntp", "syslog", "ldap", "kerberos", "radius"] {
        let sharing = |endpoints: Vec<Endpoint>| {
            move |s: &mut TestService| {
                s.sharing_key = Some(key.into());
                local_with(endpoints)(s);
            }
        };
        let world = four_nodes()
            .l2("all", json!({}))
            .service_with(
                "tcp",
                &["198.51.100.53"],
                sharing(vec![ready(Some("node-a")), ready(Some("node-c"))]),
            )
            .service_with(
                "udp",
                &["198.51.100.53"],
                sharing(vec![ready(Some("node-b")), ready(Some("node-c"))]),
            );
        world.assert_owner("198.51.100.53", Some("node-c"));
    }
}

#[test]
fn not_ready_endpoint_that_is_not_terminating_is_not_usable() {
    // kube-proxy falls back only to endpoints that are serving *and* terminating.
    let world = World::new()
        .l2("all", json!({}))
        .node("node-a", &[])
        .service_with(
            "web",
            &["198.51.100.10"],
            local_with(vec![Endpoint {
                terminating: false,
                ..serving_terminating("node-a")
            }]),
        );
    world.assert_owner("198.51.100.10", None);
}

#[test]
fn services_on_one_ip_share_an_owner_even_with_mismatched_keys() {
    // Inconsistent input (the controller never shares without equal keys) must still not yield
    // two owners of one IP.
    let world = four_nodes()
        .l2("all", json!({}))
        .service_with("a", &["198.51.100.7", "2001:db8:1::a"], |s| {
            s.sharing_key = Some("x".into())
        })
        .service_with("b", &["198.51.100.7", "2001:db8:1::b"], |s| {
            s.sharing_key = Some("y".into())
        });
    let owner = world.agreed_owner("198.51.100.7");
    assert!(owner.is_some());
    assert_eq!(world.agreed_owner("2001:db8:1::a"), owner);
    assert_eq!(world.agreed_owner("2001:db8:1::b"), owner);
}

// ---- BGP ----------------------------------------------------------------------------------------

/// Three peers; `node-a` (zone a) and `node-b` (zone b) with endpoints everywhere.
fn bgp_world() -> World {
    World::new()
        .peer("tor-a", json!({ "nodeSelectors": [{ "matchLabels": { "zone": "a" } }] }))
        .peer("tor-b", json!({ "peerAddress": "192.0.2.2", "nodeSelectors": [{ "matchLabels": { "zone": "b" } }] }))
        .peer("core", json!({ "peerAddress": "192.0.2.3" }))
        .node("node-a", &[("zone", "a")])
        .node("node-b", &[("zone", "b")])
}

fn routes_to(desired: &Desired, peer: &str) -> BTreeSet<IpNet> {
    desired
        .bgp
        .get(peer)
        .map(|routes| routes.keys().copied().collect())
        .unwrap_or_default()
}

#[test]
fn bgp_sessions_exist_only_for_peers_selecting_this_node() {
    let desired = bgp_world().desired("node-a");
    assert_eq!(
        desired.bgp.keys().cloned().collect::<BTreeSet<_>>(),
        set(&["core", "tor-a"])
    );
}

#[test]
fn service_ip_is_announced_to_every_selected_peer() {
    let world = bgp_world()
        .bgp("all", json!({}))
        .service("web", &["198.51.100.10", "2001:db8:1::10"]);
    let desired = world.desired("node-b");
    let expected = BTreeSet::from([net("198.51.100.10/32"), net("2001:db8:1::10/128")]);
    assert_eq!(routes_to(&desired, "core"), expected);
    assert_eq!(routes_to(&desired, "tor-b"), expected);
    assert!(!desired.bgp.contains_key("tor-a"));
}

#[test]
fn advertisement_peers_limit_where_routes_go() {
    let world = bgp_world()
        .bgp("core-only", json!({ "peers": ["core"] }))
        .service("web", &["198.51.100.10"]);
    let desired = world.desired("node-a");
    assert_eq!(
        routes_to(&desired, "core"),
        BTreeSet::from([net("198.51.100.10/32")])
    );
    assert!(routes_to(&desired, "tor-a").is_empty());
}

#[test]
fn bgp_advertisement_node_selector_limits_announcing_nodes() {
    let world = bgp_world()
        .bgp(
            "zone-a",
            json!({ "nodeSelectors": [{ "matchLabels": { "zone": "a" } }] }),
        )
        .service("web", &["198.51.100.10"]);
    assert_eq!(routes_to(&world.desired("node-a"), "core").len(), 1);
    assert!(routes_to(&world.desired("node-b"), "core").is_empty());
}

#[test]
fn bgp_advertisement_service_selector_must_match() {
    let world = bgp_world()
        .bgp(
            "public",
            json!({ "serviceSelectors": [{ "matchLabels": { "exposure": "public" } }] }),
        )
        .service("internal", &["198.51.100.10"])
        .service_with("public", &["198.51.100.11"], |s| {
            s.labels = labels(&[("exposure", "public")]).into_iter().collect();
        });
    assert_eq!(
        routes_to(&world.desired("node-a"), "core"),
        BTreeSet::from([net("198.51.100.11/32")])
    );
}

#[test]
fn bgp_advertisement_pools_limit_announced_ips() {
    let world = bgp_world()
        .bgp("v6", json!({ "ipAddressPools": ["lan6"] }))
        .service("web", &["198.51.100.10", "2001:db8:1::10"]);
    assert_eq!(
        routes_to(&world.desired("node-a"), "core"),
        BTreeSet::from([net("2001:db8:1::10/128")])
    );
}

#[test]
fn aggregation_masks_the_ip_to_the_configured_length() {
    let world = bgp_world()
        .bgp(
            "agg",
            json!({ "aggregationLength": 24, "aggregationLengthV6": 64 }),
        )
        .service("web", &["198.51.100.10", "2001:db8:1::10"])
        .service("api", &["198.51.100.77"]);
    assert_eq!(
        routes_to(&world.desired("node-a"), "core"),
        BTreeSet::from([net("198.51.100.0/24"), net("2001:db8:1::/64")])
    );
}

#[test]
fn etp_cluster_route_needs_a_usable_endpoint_anywhere() {
    let world = bgp_world()
        .bgp("all", json!({}))
        .service_with("idle", &["198.51.100.10"], |s| s.endpoints.clear())
        .service_with("remote", &["198.51.100.11"], |s| {
            s.endpoints = vec![ready(Some("node-b"))];
        });
    assert_eq!(
        routes_to(&world.desired("node-a"), "core"),
        BTreeSet::from([net("198.51.100.11/32")])
    );
}

#[test]
fn etp_local_route_only_from_nodes_with_a_usable_endpoint() {
    let world = bgp_world().bgp("all", json!({})).service_with(
        "web",
        &["198.51.100.10"],
        local_with(vec![ready(Some("node-b"))]),
    );
    assert!(routes_to(&world.desired("node-a"), "core").is_empty());
    assert_eq!(routes_to(&world.desired("node-b"), "core").len(), 1);
}

#[test]
fn communities_from_two_advertisements_are_unioned() {
    let world = bgp_world()
        .community("no-export-up", "65000:666")
        .bgp(
            "one",
            json!({ "communities": ["65000:100", "no-export-up"] }),
        )
        .bgp(
            "two",
            json!({ "communities": ["65000:200", "large:65000:1:2"] }),
        )
        .service("web", &["198.51.100.10"]);
    let desired = world.desired("node-a");
    let attributes = &desired.bgp["core"][&net("198.51.100.10/32")];
    assert_eq!(
        attributes.communities,
        BTreeSet::from([
            Community::new(65000, 100),
            Community::new(65000, 200),
            Community::new(65000, 666),
        ])
    );
    assert_eq!(
        attributes.large_communities,
        BTreeSet::from([LargeCommunity {
            global_admin: 65000,
            local_data_1: 1,
            local_data_2: 2
        }])
    );
}

#[test]
fn community_alias_resolves_through_community_object() {
    let world = bgp_world()
        .community("blackhole-ish", "large:64512:7:9")
        .bgp("one", json!({ "communities": ["blackhole-ish"] }))
        .service("web", &["198.51.100.10"]);
    let desired = world.desired("node-a");
    let attributes = &desired.bgp["core"][&net("198.51.100.10/32")];
    assert!(attributes.communities.is_empty());
    assert_eq!(
        attributes.large_communities,
        BTreeSet::from([LargeCommunity {
            global_admin: 64512,
            local_data_1: 7,
            local_data_2: 9
        }])
    );
}

#[test]
fn local_pref_is_kept_and_the_highest_wins_when_prefixes_merge() {
    // Different node selectors keep the snapshot from rejecting the pair statically; node-a is
    // selected by both at runtime.
    let world = bgp_world()
        .edit_node("node-a", |n| {
            n.labels = labels(&[("zone", "a"), ("tier", "gold")]);
        })
        .bgp(
            "zone",
            json!({ "localPref": 100, "nodeSelectors": [{ "matchLabels": { "zone": "a" } }] }),
        )
        .bgp(
            "gold",
            json!({ "localPref": 300, "nodeSelectors": [{ "matchLabels": { "tier": "gold" } }] }),
        )
        .bgp("plain", json!({ "peers": ["core"] }))
        .service("web", &["198.51.100.10"]);
    let desired = world.desired("node-a");
    assert_eq!(
        desired.bgp["core"][&net("198.51.100.10/32")].local_pref,
        Some(300)
    );
    let world = world.edit_node("node-a", |n| n.labels = labels(&[("zone", "a")]));
    let desired = world.desired("node-a");
    assert_eq!(
        desired.bgp["tor-a"][&net("198.51.100.10/32")].local_pref,
        Some(100)
    );
}

#[test]
fn excluded_node_keeps_its_peers_but_announces_nothing() {
    let world = bgp_world()
        .bgp("all", json!({}))
        .service("web", &["198.51.100.10"])
        .edit_node("node-a", |n| {
            n.labels
                .insert(EXCLUDE_FROM_LOAD_BALANCERS.into(), "true".into());
        })
        .edit_node("node-b", |n| n.network_unavailable = true);
    for node in ["node-a", "node-b"] {
        let desired = world.desired(node);
        assert_eq!(desired.bgp.len(), 2, "{node} keeps its sessions");
        assert!(
            desired.bgp.values().all(|routes| routes.is_empty()),
            "{node} announces nothing"
        );
    }
}

// ---- changes ------------------------------------------------------------------------------------

fn announcement(ip_text: &str, interface: &str) -> Announcement {
    Announcement {
        ip: ip(ip_text),
        interface: interface.into(),
    }
}

#[test]
fn unchanged_state_has_no_changes() {
    let world = bgp_world()
        .l2("all", json!({}))
        .bgp("all", json!({}))
        .service("web", &["198.51.100.10"]);
    let desired = world.desired("node-a");
    assert!(changes(&desired, &desired).is_empty());
}

#[test]
fn changes_list_gained_and_lost_l2_announcements() {
    let world = World::new()
        .l2("all", json!({}))
        .node_on("node-a", "eth0=198.51.100.1/24 down:eth1=198.51.100.2/24")
        .service("web", &["198.51.100.10"]);
    let before = world.desired("node-a");
    let after = world
        .clone()
        .edit_node("node-a", |n| {
            n.interfaces = Some(interfaces("down:eth0=198.51.100.1/24 eth1=198.51.100.2/24"));
        })
        .service("api", &["198.51.100.11"])
        .desired("node-a");
    let changes = changes(&before, &after);
    assert_eq!(changes.lost, vec![announcement("198.51.100.10", "eth0")]);
    assert_eq!(
        changes.gained,
        vec![
            announcement("198.51.100.10", "eth1"),
            announcement("198.51.100.11", "eth1"),
        ]
    );
}

#[test]
fn losing_ownership_to_another_node_is_a_loss() {
    let world = four_nodes()
        .l2("all", json!({}))
        .service("web", &["198.51.100.10"]);
    let owner = world.agreed_owner("198.51.100.10").expect("an owner");
    let before = world.desired(&owner);
    let after = world
        .edit_node(&owner, |n| n.network_unavailable = true)
        .desired(&owner);
    let changes = changes(&before, &after);
    assert_eq!(changes.lost, vec![announcement("198.51.100.10", "eth0")]);
    assert!(changes.gained.is_empty());
}

#[test]
fn changes_list_only_peers_whose_routes_changed() {
    let world = bgp_world()
        .bgp("core", json!({ "peers": ["core"] }))
        .bgp(
            "tor",
            json!({ "peers": ["tor-a"], "communities": ["65000:1"] }),
        )
        .service("web", &["198.51.100.10"]);
    let before = world.desired("node-a");
    let after = world
        .service("api", &["198.51.100.11"])
        .bgp(
            "tor2",
            json!({ "peers": ["tor-a"], "communities": ["65000:2"] }),
        )
        .desired("node-a");
    let changed = changes(&before, &after);
    assert_eq!(
        changed.routes.keys().cloned().collect::<BTreeSet<_>>(),
        set(&["core", "tor-a"])
    );
    assert_eq!(changed.routes["core"], after.bgp["core"]);

    let only_communities = bgp_world()
        .bgp("core", json!({ "peers": ["core"] }))
        .bgp(
            "tor",
            json!({ "peers": ["tor-a"], "communities": ["65000:1"] }),
        )
        .bgp(
            "tor2",
            json!({ "peers": ["tor-a"], "communities": ["65000:2"] }),
        )
        .service("web", &["198.51.100.10"])
        .desired("node-a");
    let changed = changes(&before, &only_communities);
    assert_eq!(
        changed.routes.keys().cloned().collect::<BTreeSet<_>>(),
        set(&["tor-a"])
    );
}

#[test]
fn changes_report_peers_added_and_removed() {
    let world = bgp_world().bgp("all", json!({}));
    let before = world.desired("node-a");
    let after = world
        .edit_node("node-a", |n| n.labels = labels(&[("zone", "b")]))
        .desired("node-a");
    let changed = changes(&before, &after);
    assert_eq!(changed.peers_removed, set(&["tor-a"]));
    assert_eq!(changed.peers_added, set(&["tor-b"]));
    assert_eq!(
        changed.routes.keys().cloned().collect::<BTreeSet<_>>(),
        set(&["tor-b"])
    );
}

// ---- agreement property -------------------------------------------------------------------------

const V4_IPS: [&str; 4] = [
    "198.51.100.10",
    "198.51.100.11",
    "198.51.100.12",
    "198.51.100.200",
];
const V6_IPS: [&str; 3] = ["2001:db8:1::10", "2001:db8:1::11", "2001:db8:1::12"];

#[derive(Debug, Clone)]
struct NodeCase {
    zone_a: bool,
    rack_1: bool,
    v4: bool,
    v4_narrow: bool,
    v6: bool,
    excluded: bool,
    unavailable: bool,
    reported: bool,
}

#[derive(Debug, Clone)]
struct ServiceCase {
    v4: Option<usize>,
    v6: Option<usize>,
    key: Option<u8>,
    local: bool,
    /// Per node: none, ready, or serving-and-terminating.
    endpoints: Vec<u8>,
    public: bool,
}

fn node_case() -> impl Strategy<Value = NodeCase> {
    (any::<[bool; 8]>()).prop_map(|b| NodeCase {
        zone_a: b[0],
        rack_1: b[1],
        v4: b[2] || b[3],
        v4_narrow: b[2] && !b[3],
        v6: b[4],
        excluded: b[5] && b[6] && b[7],
        unavailable: b[5] && b[6] && !b[7],
        reported: !(b[5] && !b[6] && b[7]),
    })
}

fn service_case() -> impl Strategy<Value = ServiceCase> {
    (
        proptest::option::of(0..V4_IPS.len()),
        proptest::option::of(0..V6_IPS.len()),
        proptest::option::of(0u8..2),
        any::<bool>(),
        proptest::collection::vec(0u8..3, 6),
        any::<bool>(),
    )
        .prop_map(|(v4, v6, key, local, endpoints, public)| ServiceCase {
            v4,
            v6,
            key,
            local,
            endpoints,
            public,
        })
}

fn property_world(nodes: &[NodeCase], services: &[ServiceCase]) -> World {
    let mut world = World::new()
        .l2(
            "v4",
            json!({ "ipAddressPools": ["lan"], "preferredNodes": [
            { "weight": 20, "selector": { "matchLabels": { "rack": "r1" } } },
        ] }),
        )
        .l2(
            "v6",
            json!({
                "ipAddressPools": ["lan6"],
                "nodeSelectors": [{ "matchLabels": { "zone": "a" } }],
                "serviceSelectors": [{ "matchLabels": { "exposure": "public" } }],
            }),
        )
        .l2("v6-any", json!({ "ipAddressPools": ["lan6"] }));
    for (i, case) in nodes.iter().enumerate() {
        let mut addresses = Vec::new();
        if case.v4 {
            addresses.push(if case.v4_narrow {
                "198.51.100.1/25"
            } else {
                "198.51.100.1/24"
            });
        }
        if case.v6 {
            addresses.push("2001:db8:1::1/64");
        }
        let name = format!("node-{i}");
        let mut node_labels = vec![("zone", if case.zone_a { "a" } else { "b" })];
        if case.rack_1 {
            node_labels.push(("rack", "r1"));
        }
        if case.excluded {
            node_labels.push((EXCLUDE_FROM_LOAD_BALANCERS, ""));
        }
        world = world.node_with(
            &name,
            &node_labels,
            vec![interface("eth0", true, &addresses)],
        );
        world = world.edit_node(&name, |n| {
            n.network_unavailable = case.unavailable;
            if !case.reported {
                n.interfaces = None;
            }
        });
    }
    for (i, case) in services.iter().enumerate() {
        let ips: Vec<&str> = case
            .v4
            .iter()
            .filter_map(|i| V4_IPS.get(*i).copied())
            .chain(case.v6.iter().filter_map(|i| V6_IPS.get(*i).copied()))
            .collect();
        let endpoints = case
            .endpoints
            .iter()
            .take(nodes.len())
            .enumerate()
            .filter_map(|(n, kind)| {
                let node = format!("node-{n}");
                match kind {
                    1 => Some(ready(Some(&node))),
                    2 => Some(serving_terminating(&node)),
                    _ => None,
                }
            })
            .collect();
        world = world.service_with(&format!("svc-{i}"), &ips, |s| {
            s.sharing_key = case.key.map(|k| format!("key-{k}"));
            s.traffic_policy = if case.local {
                TrafficPolicy::Local
            } else {
                TrafficPolicy::Cluster
            };
            s.endpoints = endpoints;
            if case.public {
                s.labels = labels(&[("exposure", "public")]).into_iter().collect();
            }
        });
    }
    world
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn exactly_one_live_node_claims_each_announceable_ip(
        nodes in proptest::collection::vec(node_case(), 1..6),
        services in proptest::collection::vec(service_case(), 1..8),
        dead in proptest::collection::vec(any::<bool>(), 6),
    ) {
        let mut world = property_world(&nodes, &services);
        // A node with unreported interfaces gets an empty local view here (see `desired_with`),
        // so it agrees with the others, who cannot count on it.
        for (i, down) in dead.iter().take(nodes.len()).enumerate() {
            if *down {
                world.live.remove(&format!("node-{i}"));
            }
        }
        let config = world.config();
        let live: Vec<String> = world.live.iter().cloned().collect();
        let results: BTreeMap<&str, Desired> = live
            .iter()
            .map(|n| (n.as_str(), world.desired_with(&config, n)))
            .collect();
        let Some(first) = results.values().next() else {
            return Ok(());
        };
        for (node, desired) in &results {
            // Every live node sees the same IPs, owners and groups.
            let owners: BTreeMap<&IpAddr, &Option<String>> =
                desired.l2.iter().map(|(ip, d)| (ip, &d.owner)).collect();
            let first_owners: BTreeMap<&IpAddr, &Option<String>> =
                first.l2.iter().map(|(ip, d)| (ip, &d.owner)).collect();
            prop_assert_eq!(owners, first_owners, "{} disagrees", node);
        }
        for (ip, decision) in &first.l2 {
            let claimants: Vec<&str> = results
                .iter()
                .filter(|(_, d)| d.l2.get(ip).is_some_and(|x| !x.interfaces.is_empty()))
                .map(|(n, _)| *n)
                .collect();
            match &decision.owner {
                Some(owner) => {
                    prop_assert!(world.live.contains(owner), "{} owned by dead {}", ip, owner);
                    prop_assert_eq!(claimants, vec![owner.as_str()], "{}", ip);
                }
                None => prop_assert!(claimants.is_empty(), "{} claimed without owner", ip),
            }
        }
        // The owner of an IP serves every Service on it.
        for service in &world.services {
            for ip in &service.ips {
                if let Some(owner) = first.l2.get(ip).and_then(|d| d.owner.as_deref()) {
                    prop_assert!(service.view().served_at(owner), "{} cannot serve {} on {}", owner, service.name, ip);
                }
            }
        }
        // The order in which the watch caches list Services changes nothing.
        let mut reversed = world.clone();
        reversed.services.reverse();
        if let Some(node) = live.first() {
            prop_assert_eq!(&reversed.desired_with(&config, node), &results[node.as_str()]);
        }
        // All IPs of one Service share an owner unless the group had to split.
        for service in &world.services {
            let decisions: Vec<&L2Ip> = service.ips.iter().filter_map(|ip| first.l2.get(ip)).collect();
            if decisions.iter().all(|d| !d.split) {
                let owners: BTreeSet<&Option<String>> = decisions
                    .iter()
                    .filter(|d| d.owner.is_some())
                    .map(|d| &d.owner)
                    .collect();
                prop_assert!(owners.len() <= 1, "{} has owners {:?}", service.name, owners);
            }
        }
    }
}
