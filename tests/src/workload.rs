//! Workloads in the lab's cluster as the e2e tests, the benchmarks and `lab up` create them:
//! LoadBalancer Services, the EndpointSlices a kube-controller-manager would write (the lab runs
//! none), and waiting for the external IP the controller assigns.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use serde_json::{Value, json};

use crate::topology::Node;

/// The port every lab Service exposes; the node backends listen on [`BACKEND_PORT`].
pub const SERVICE_PORT: u16 = 80;
/// Where the lab backend listens in each node namespace.
pub const BACKEND_PORT: u16 = 8080;

/// A one-port TCP LoadBalancer Service (`spec` entries given override the defaults).
pub fn load_balancer(namespace: &str, name: &str, labels: Value, spec: Value) -> Value {
    let mut service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "http", "port": SERVICE_PORT, "protocol": "TCP"}],
            "selector": {"app": name},
        },
    });
    if let (Some(base), Some(extra)) = (service["spec"].as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    service
}

/// An EndpointSlice of `service` with one ready endpoint per node of `nodes`, in `family`
/// (`IPv4` or `IPv6`), named `<service>-<suffix>`.
pub fn endpoint_slice(
    namespace: &str,
    service: &str,
    suffix: &str,
    family: &str,
    nodes: &[&Node],
    labels: Value,
) -> Value {
    let endpoints: Vec<Value> = nodes
        .iter()
        .map(|node| {
            let address = if family == "IPv6" {
                node.v6.to_string()
            } else {
                node.v4.to_string()
            };
            json!({
                "addresses": [address],
                "nodeName": node.name,
                "conditions": {"ready": true, "serving": true, "terminating": false},
            })
        })
        .collect();
    let mut labels = labels;
    if let Some(labels) = labels.as_object_mut() {
        labels.insert("kubernetes.io/service-name".into(), service.into());
    }
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service}-{suffix}"),
            "namespace": namespace,
            "labels": labels,
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": BACKEND_PORT, "protocol": "TCP"}],
    })
}

/// The Service's first external IP once it has one, or `None` after `timeout`.
pub async fn wait_ingress_ip(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Option<IpAddr> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    loop {
        let ip = api
            .get(name)
            .await
            .ok()
            .and_then(|s| s.status?.load_balancer?.ingress?.first()?.ip.clone())
            .and_then(|ip| ip.parse().ok());
        if ip.is_some() || Instant::now() >= deadline {
            return ip;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `http://<ip>/` with IPv6 bracketed.
pub fn url(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("http://{v4}/"),
        IpAddr::V6(v6) => format!("http://[{v6}]/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_entries_override_the_defaults() {
        let service = load_balancer(
            "demo",
            "web",
            json!({"a": "b"}),
            json!({"externalTrafficPolicy": "Local", "ipFamilies": ["IPv6"]}),
        );
        assert_eq!(service["spec"]["type"], "LoadBalancer");
        assert_eq!(service["spec"]["externalTrafficPolicy"], "Local");
        assert_eq!(service["spec"]["ipFamilies"][0], "IPv6");
        assert_eq!(service["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn urls_bracket_ipv6() {
        assert_eq!(url("192.0.2.1".parse().expect("v4")), "http://192.0.2.1/");
        assert_eq!(
            url("2001:db8::1".parse().expect("v6")),
            "http://[2001:db8::1]/"
        );
    }
}
