//! Pools built by the config model, converted for the allocator: restrictions, priorities and
//! flags survive the conversion, namespace selectors arrive resolved.

use std::collections::BTreeMap;

use ferrolb_config::model::{self, Objects};
use ferrolb_controller::allocator::*;
use serde_json::{Value, json};

fn pool(name: &str, spec: Value) -> ferrolb_config::crd::IPAddressPool {
    serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("test pool deserializes")
}

fn allocator(objects: &Objects) -> Allocator {
    let (config, diagnostics) = model::build(objects);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Allocator::new(pools_from_config(&config)).expect("snapshot pools are disjoint")
}

fn service(namespace: &str, name: &str, labels: &[(&str, &str)]) -> ServiceRequest {
    ServiceRequest {
        key: ServiceKey::new(namespace, name),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

fn pool_of(a: &mut Allocator, s: &ServiceRequest) -> Result<String, AllocError> {
    a.assign(s).map(|x| x.pool)
}

#[test]
fn namespace_selector_of_a_config_pool_admits_labelled_namespaces() {
    let objects = Objects {
        pools: vec![
            pool(
                "prod",
                json!({
                    "addresses": ["198.51.100.0/24"],
                    "serviceAllocation": {
                        "namespaceSelectors": [{ "matchLabels": { "env": "prod" } }]
                    }
                }),
            ),
            pool("rest", json!({ "addresses": ["192.0.2.0/24"] })),
        ],
        namespaces: vec![
            serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": { "name": "shop", "labels": { "env": "prod" } }
            }))
            .expect("namespace"),
        ],
        ..Default::default()
    };
    let mut a = allocator(&objects);
    assert_eq!(
        pool_of(&mut a, &service("shop", "s", &[])),
        Ok("prod".into())
    );
    assert_eq!(
        pool_of(&mut a, &service("lab", "s", &[])),
        Ok("rest".into())
    );
}

#[test]
fn service_selector_expressions_of_a_config_pool_are_honoured() {
    let objects = Objects {
        pools: vec![
            pool(
                "web",
                json!({
                    "addresses": ["198.51.100.0/24"],
                    "serviceAllocation": {
                        "priority": 5,
                        "serviceSelectors": [{ "matchExpressions": [
                            { "key": "tier", "operator": "In", "values": ["web", "edge"] }
                        ] }]
                    }
                }),
            ),
            pool("rest", json!({ "addresses": ["192.0.2.0/24"] })),
        ],
        ..Default::default()
    };
    let mut a = allocator(&objects);
    assert_eq!(
        pool_of(&mut a, &service("x", "edge", &[("tier", "edge")])),
        Ok("web".into())
    );
    assert_eq!(
        pool_of(&mut a, &service("x", "db", &[("tier", "db")])),
        Ok("rest".into())
    );
}

#[test]
fn auto_assign_and_avoid_buggy_ips_of_a_config_pool_are_honoured() {
    let objects = Objects {
        pools: vec![
            pool(
                "manual",
                json!({ "addresses": ["198.51.100.0/24"], "autoAssign": false }),
            ),
            pool(
                "auto",
                json!({ "addresses": ["192.0.2.0/24"], "avoidBuggyIPs": true }),
            ),
        ],
        ..Default::default()
    };
    let mut a = allocator(&objects);
    let got = a.assign(&service("x", "s", &[])).expect("assigned");
    assert_eq!(
        (got.pool.as_str(), got.ips),
        ("auto", vec!["192.0.2.1".parse().expect("ip")])
    );
    let mut requesting = service("x", "t", &[]);
    requesting.requested_pool = Some("manual".into());
    assert_eq!(pool_of(&mut a, &requesting), Ok("manual".into()));
}
