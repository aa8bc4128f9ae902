//! The `ferrolb-controller` binary against the lab's real kube-apiserver (SPEC §3, §4): it runs as
//! a process in the control-plane namespace with the in-lab kubeconfig; the tests create pools and
//! Services through the API and assert on what the API server then holds.
//!
//! The binary is found next to the test executable's directory (`target/<profile>/`); `cargo test
//! --workspace` builds it because the controller crate has an integration test of its own.
//! Tests share one lab and hold its lock, so each starts from no pools and no test Services, runs
//! its own controller (own Lease) and stops it.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferrolb_config::crd::IPAddressPool;
use ferrolb_lab::binaries;
use ferrolb_lab::lab::Lab;
use ferrolb_lab::netns::NsProcess;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::MutexGuard;

/// Every Service a test creates carries this label, so the next test can clear leftovers.
const TEST_LABEL: &str = "ferrolb.io/e2e";
const NAMESPACE: &str = "default";
const WAIT: Duration = Duration::from_secs(20);

/// One test's view of the lab: the client and its running controller.
struct Harness {
    lab: MutexGuard<'static, Lab>,
    client: kube::Client,
    /// Running controllers by identity.
    controllers: Vec<(String, NsProcess)>,
    test: &'static str,
    starts: u32,
}

impl Harness {
    /// Clears what earlier tests may have left and starts a controller.
    async fn start(test: &'static str) -> Self {
        let lab = common::shared_lab().await;
        let client = lab.client().expect("client");
        let mut harness = Harness {
            lab,
            client,
            controllers: Vec::new(),
            test,
            starts: 0,
        };
        harness.clear().await;
        harness.start_controller();
        harness
    }

    async fn clear(&self) {
        // Test Services may live in other namespaces too.
        let services: Api<Service> = Api::all(self.client.clone());
        let listed = services
            .list(&ListParams::default().labels(TEST_LABEL))
            .await
            .expect("list services");
        for service in listed.items {
            if let (Some(name), Some(namespace)) =
                (service.metadata.name, service.metadata.namespace)
            {
                let _ = Api::<Service>::namespaced(self.client.clone(), &namespace)
                    .delete(&name, &DeleteParams::default())
                    .await;
            }
        }
        // Deletion is asynchronous; a leftover must not hold an address into the next test.
        let deadline = Instant::now() + WAIT;
        while !services
            .list(&ListParams::default().labels(TEST_LABEL))
            .await
            .expect("list services")
            .items
            .is_empty()
        {
            assert!(Instant::now() < deadline, "test Services not gone");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let pools: Api<IPAddressPool> = Api::all(self.client.clone());
        for pool in pools
            .list(&ListParams::default())
            .await
            .expect("list pools")
            .items
        {
            if let Some(name) = pool.metadata.name {
                let _ = pools.delete(&name, &DeleteParams::default()).await;
            }
        }
    }

    fn start_controller(&mut self) {
        self.starts += 1;
        let identity = format!("{}-{}", self.test, self.starts);
        let process = binaries::start_controller(
            &mut self.lab,
            &identity,
            NAMESPACE,
            &format!("ferrolb-{}", self.test),
        )
        .expect("controller starts");
        self.controllers.push((identity, process));
    }

    /// The identity holding the controllers' Lease, once one does.
    async fn leader(&self) -> String {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        let name = format!("ferrolb-{}", self.test);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(lease) = leases.get(&name).await
                && let Some(holder) = lease.spec.and_then(|s| s.holder_identity)
                && self.controllers.iter().any(|(id, _)| *id == holder)
            {
                return holder;
            }
            assert!(
                Instant::now() < deadline,
                "no controller leads within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL to the leading controller: no Lease release, no goodbye — a crash. Returns its
    /// identity.
    async fn kill_leader(&mut self) -> String {
        let leader = self.leader().await;
        if let Some(index) = self.controllers.iter().position(|(id, _)| *id == leader) {
            let (_, process) = self.controllers.remove(index);
            let pid = nix::unistd::Pid::from_raw(i32::try_from(process.pid()).expect("pid"));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            drop(process);
        }
        leader
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    fn pools(&self) -> Api<IPAddressPool> {
        Api::all(self.client.clone())
    }

    async fn create_pool(&self, name: &str, addresses: &[&str], extra: Value) {
        let mut spec = json!({ "addresses": addresses });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let pool: IPAddressPool = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("pool");
        self.pools()
            .create(&PostParams::default(), &pool)
            .await
            .expect("create pool");
    }

    /// Creates a LoadBalancer Service in the default namespace; `spec` and `annotations` are
    /// merged over a one-port TCP Service.
    async fn create_service(&self, name: &str, annotations: Value, spec: Value) {
        create_test_service(&self.services(), name, json!({}), annotations, spec).await;
    }

    /// A Namespace without labels (created, or its labels removed).
    async fn unlabelled_namespace(&self, name: &str) -> Api<Service> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces.get_opt(name).await.expect("get namespace") {
            None => {
                let object =
                    serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
                namespaces
                    .create(&PostParams::default(), &object)
                    .await
                    .expect("create namespace");
            }
            Some(_) => {
                namespaces
                    .patch(
                        name,
                        &PatchParams::default(),
                        &Patch::Json::<()>(
                            serde_json::from_value(json!([
                                {"op": "replace", "path": "/metadata/labels", "value": {}}
                            ]))
                            .expect("json patch"),
                        ),
                    )
                    .await
                    .expect("clear namespace labels");
            }
        }
        Api::namespaced(self.client.clone(), name)
    }

    /// Every test Service with its ingress IPs, across namespaces.
    async fn test_service_ips(&self) -> BTreeMap<String, Vec<String>> {
        Api::<Service>::all(self.client.clone())
            .list(&ListParams::default().labels(TEST_LABEL))
            .await
            .expect("list services")
            .items
            .iter()
            .filter_map(|s| Some((s.metadata.name.clone()?, ips(s))))
            .collect()
    }
}

/// Creates a test LoadBalancer Service through `services` (its namespace); `labels`, `spec` and
/// `annotations` are merged over a one-port TCP Service carrying the test label.
async fn create_test_service(
    services: &Api<Service>,
    name: &str,
    labels: Value,
    annotations: Value,
    spec: Value,
) {
    let mut base = json!({
        "type": "LoadBalancer",
        "ports": [{"name": "p", "port": 80, "protocol": "TCP"}],
        "selector": {"app": name},
    });
    if let (Some(base), Some(spec)) = (base.as_object_mut(), spec.as_object()) {
        base.extend(spec.clone());
    }
    let mut all_labels = json!({TEST_LABEL: "true"});
    if let (Some(all), Some(labels)) = (all_labels.as_object_mut(), labels.as_object()) {
        all.extend(labels.clone());
    }
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "labels": all_labels,
            "annotations": annotations,
        },
        "spec": base,
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &service)
        .await
        .expect("create service");
}

impl Harness {
    /// Polls the Service until `check` gives a value.
    async fn wait_service<T>(&self, name: &str, check: impl Fn(&Service) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(service) = self.services().get(name).await
                && let Some(value) = check(&service)
            {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "Service {name}: condition not reached within {WAIT:?}: {:#?}",
                self.services().get(name).await.ok().map(|s| s.status)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Turns the Service into a ClusterIP one and waits until nothing of ferrolb's is left on it.
    async fn stop_being_a_load_balancer(&self, name: &str) {
        self.services()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"type": "ClusterIP", "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": null}]}})),
            )
            .await
            .expect("to ClusterIP");
        self.wait_service(name, |s| {
            (ips(s).is_empty()
                && condition(s).is_none()
                && annotation(s, "ferrolb.io/allocated-from-pool").is_none())
            .then_some(())
        })
        .await;
    }

    /// The ingress IPs once the Service has some.
    async fn wait_ips(&self, name: &str) -> Vec<String> {
        self.wait_service(name, |s| Some(ips(s)).filter(|ips| !ips.is_empty()))
            .await
    }

    /// The `IPAllocated` condition once it is `False`: (reason, message).
    async fn wait_failed(&self, name: &str) -> (String, String) {
        self.wait_service(name, |s| {
            condition(s).filter(|c| c.0 == "False").map(|c| (c.1, c.2))
        })
        .await
    }

    /// Events about Service `name` with `reason`, waiting until at least one exists.
    async fn wait_events(&self, name: &str, reason: &str) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), NAMESPACE);
        let deadline = Instant::now() + WAIT;
        loop {
            let found: Vec<Event> = events
                .list(&ListParams::default())
                .await
                .expect("list events")
                .items
                .into_iter()
                .filter(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                        && e.reason.as_deref() == Some(reason)
                })
                .collect();
            if !found.is_empty() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {reason} Event for Service {name} within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until pool `name` shows condition `type_` with `status`; its message.
    async fn wait_pool_condition(&self, name: &str, type_: &str, status: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(pool) = self.pools().get(name).await
                && let Some(found) = pool.status.as_ref().and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|c| c.type_ == type_ && c.status == status)
                })
            {
                return found.message.clone();
            }
            assert!(
                Instant::now() < deadline,
                "pool {name}: {type_} not {status} within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn finish(mut self) {
        for (_, mut process) in self.controllers.drain(..) {
            process.stop();
        }
        self.clear().await;
    }
}

/// A failed test stops its controllers while it still holds the lab's lock (`Drop::drop` runs
/// before the guard in `lab` drops, which would let the next test start beside them), and shows
/// what they logged; the lab's run directory goes with the lab.
impl Drop for Harness {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (_, process) in &mut self.controllers {
            process.stop();
        }
        for (identity, process) in &self.controllers {
            let log = std::fs::read_to_string(process.log()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("controller {identity} log (last lines):");
            for line in tail.into_iter().rev() {
                eprintln!("  {line}");
            }
        }
    }
}

fn ips(service: &Service) -> Vec<String> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| ingress.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

/// (status, reason, message) of `ferrolb.io/IPAllocated`.
fn condition(service: &Service) -> Option<(String, String, String)> {
    service
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "ferrolb.io/IPAllocated")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn annotation(service: &Service, key: &str) -> Option<String> {
    service.metadata.annotations.as_ref()?.get(key).cloned()
}

fn no_annotations() -> Value {
    json!({})
}

fn no_spec() -> Value {
    json!({})
}

#[tokio::test]
async fn service_gets_lowest_free_ip_with_vip_mode_annotation_condition_and_event() {
    let lab = Harness::start("lowest").await;
    lab.create_pool("lowest", &["203.0.113.0/29"], json!({}))
        .await;
    lab.create_service("lowest-a", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("lowest-a").await, ["203.0.113.0"]);
    let service = lab.services().get("lowest-a").await.expect("get");
    let ingress = &service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.clone())
        .and_then(|l| l.ingress)
        .expect("ingress")[0];
    assert_eq!(ingress.ip_mode.as_deref(), Some("VIP"));
    assert_eq!(
        lab.wait_service("lowest-a", |s| annotation(
            s,
            "ferrolb.io/allocated-from-pool"
        ))
        .await,
        "lowest"
    );
    let (status, reason, message) = condition(&service).expect("condition");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "IPAllocated"));
    assert!(message.contains("203.0.113.0"), "{message}");
    // Ingress, condition and annotation arrive in one write: the API server keeps metadata
    // changes made through a Service's status subresource, and the controller writes no other.
    assert_eq!(
        annotation(&service, "ferrolb.io/allocated-from-pool").as_deref(),
        Some("lowest"),
        "the annotation came with the status"
    );
    let ours: Vec<_> = service
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.manager.as_deref() == Some("ferrolb-controller"))
        .collect();
    assert_eq!(ours.len(), 1, "one apply: {ours:#?}");
    assert_eq!(ours[0].subresource.as_deref(), Some("status"));
    let owned = ours[0].fields_v1.as_ref().map(|f| &f.0).expect("fieldsV1");
    assert!(
        owned["f:metadata"]["f:annotations"]
            .get("f:ferrolb.io/allocated-from-pool")
            .is_some(),
        "{owned:#}"
    );
    lab.wait_events("lowest-a", "IPAllocated").await;

    lab.create_service("lowest-b", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("lowest-b").await, ["203.0.113.1"]);
    // Pool status counts both.
    let deadline = Instant::now() + WAIT;
    loop {
        let pool = lab.pools().get("lowest").await.expect("pool");
        let status = pool.status.unwrap_or_default();
        if status.assigned_ipv4 == 2 && status.available_ipv4 == 6 {
            let ready = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .expect("Ready");
            assert_eq!(ready.status, "True");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pool status not updated: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A pool change reconciles every Service again; an unchanged Service gets no Event (the
    // recorder would count a repeat in `series`).
    lab.create_pool("lowest-extra", &["203.0.113.8/29"], json!({}))
        .await;
    lab.wait_pool_condition("lowest-extra", "Ready", "True")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = lab.wait_events("lowest-a", "IPAllocated").await;
    assert_eq!(events.len(), 1, "one IPAllocated Event");
    assert!(
        events[0].series.is_none(),
        "repeated: {:?}",
        events[0].series
    );
    lab.finish().await;
}

#[tokio::test]
async fn requested_ip_is_honoured_and_an_ip_already_taken_fails_with_event() {
    let lab = Harness::start("requested").await;
    lab.create_pool("requested", &["203.0.113.16/29"], json!({}))
        .await;
    let request = json!({"ferrolb.io/loadBalancerIPs": "203.0.113.20"});
    lab.create_service("requested-a", request.clone(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("requested-a").await, ["203.0.113.20"]);
    lab.create_service("requested-b", request, no_spec()).await;
    let (reason, message) = lab.wait_failed("requested-b").await;
    assert_eq!(reason, "AllocationFailed");
    assert!(
        message.contains("203.0.113.20") && message.contains("requested-a"),
        "{message}"
    );
    let events = lab.wait_events("requested-b", "AllocationFailed").await;
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert!(ips(&lab.services().get("requested-b").await.expect("get")).is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn sharing_key_shares_the_ip_unless_ports_clash() {
    let lab = Harness::start("sharing").await;
    lab.create_pool("sharing", &["203.0.113.32/29"], json!({}))
        .await;
    let key = json!({"ferrolb.io/allow-shared-ip": "k"});
    lab.create_service("sharing-a", key.clone(), no_spec())
        .await;
    let first = lab.wait_ips("sharing-a").await;
    lab.create_service(
        "sharing-b",
        key.clone(),
        json!({"ports": [{"name": "p", "port": 443, "protocol": "TCP"}]}),
    )
    .await;
    assert_eq!(lab.wait_ips("sharing-b").await, first);
    lab.create_service("sharing-c", key, no_spec()).await;
    let clash = lab.wait_ips("sharing-c").await;
    assert_ne!(clash, first, "port 80 clashes with sharing-a");
    lab.finish().await;
}

#[tokio::test]
async fn require_dual_stack_takes_both_families_from_one_pool() {
    let lab = Harness::start("dualstack").await;
    lab.create_pool("dualstack-v4", &["203.0.113.40/30"], json!({}))
        .await;
    lab.create_pool(
        "dualstack-both",
        &["203.0.113.44/30", "2001:db8:10::/126"],
        json!({}),
    )
    .await;
    lab.create_service(
        "dualstack-a",
        no_annotations(),
        json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
    )
    .await;
    assert_eq!(
        lab.wait_ips("dualstack-a").await,
        ["203.0.113.44", "2001:db8:10::"]
    );
    let service = lab.services().get("dualstack-a").await.expect("get");
    assert_eq!(
        annotation(&service, "ferrolb.io/allocated-from-pool").as_deref(),
        Some("dualstack-both")
    );
    lab.finish().await;
}

#[tokio::test]
async fn pool_without_auto_assign_serves_only_services_that_ask_for_it() {
    let lab = Harness::start("manual").await;
    lab.create_pool("manual", &["203.0.113.48/29"], json!({"autoAssign": false}))
        .await;
    lab.create_service("manual-a", no_annotations(), no_spec())
        .await;
    let (reason, _) = lab.wait_failed("manual-a").await;
    assert_eq!(reason, "AllocationFailed");
    lab.create_service(
        "manual-b",
        json!({"ferrolb.io/address-pool": "manual"}),
        no_spec(),
    )
    .await;
    assert_eq!(lab.wait_ips("manual-b").await, ["203.0.113.48"]);
    assert!(ips(&lab.services().get("manual-a").await.expect("get")).is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn deleted_pool_moves_its_services_to_another_pool_with_an_event() {
    let lab = Harness::start("moved").await;
    lab.create_pool(
        "moved-first",
        &["203.0.113.56/30"],
        json!({"serviceAllocation": {"priority": 1}}),
    )
    .await;
    lab.create_pool(
        "moved-second",
        &["203.0.113.60/30"],
        json!({"serviceAllocation": {"priority": 2}}),
    )
    .await;
    lab.create_service("moved-a", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("moved-a").await, ["203.0.113.56"]);
    lab.pools()
        .delete("moved-first", &DeleteParams::default())
        .await
        .expect("delete pool");
    let moved = lab
        .wait_service("moved-a", |s| {
            Some(ips(s)).filter(|ips| ips == &["203.0.113.60"])
        })
        .await;
    assert_eq!(moved, ["203.0.113.60"]);
    let released = lab.wait_events("moved-a", "IPReleased").await;
    let note = released[0].note.clone().unwrap_or_default();
    assert!(
        note.contains("203.0.113.56") && note.contains("no longer in any pool"),
        "{note}"
    );
    assert_eq!(
        annotation(
            &lab.services().get("moved-a").await.expect("get"),
            "ferrolb.io/allocated-from-pool"
        )
        .as_deref(),
        Some("moved-second")
    );
    lab.finish().await;
}

#[tokio::test]
async fn extending_a_pool_moves_no_ip_and_serves_a_waiting_service() {
    let lab = Harness::start("extend").await;
    lab.create_pool("extend", &["203.0.113.64/31"], json!({}))
        .await;
    for name in ["extend-a", "extend-b"] {
        lab.create_service(name, no_annotations(), no_spec()).await;
    }
    let a = lab.wait_ips("extend-a").await;
    let b = lab.wait_ips("extend-b").await;
    let mut both = [a[0].clone(), b[0].clone()];
    both.sort();
    assert_eq!(both, ["203.0.113.64", "203.0.113.65"]);
    lab.create_service("extend-c", no_annotations(), no_spec())
        .await;
    lab.wait_failed("extend-c").await;
    lab.pools()
        .patch(
            "extend",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"addresses": ["203.0.113.64/29"]}})),
        )
        .await
        .expect("extend pool");
    assert_eq!(lab.wait_ips("extend-c").await, ["203.0.113.66"]);
    assert_eq!(lab.wait_ips("extend-a").await, a);
    assert_eq!(lab.wait_ips("extend-b").await, b);
    lab.finish().await;
}

#[tokio::test]
async fn killed_and_restarted_controller_moves_no_ip() {
    let mut lab = Harness::start("restart").await;
    lab.create_pool("restart", &["203.0.113.72/29"], json!({}))
        .await;
    let mut held = BTreeMap::new();
    for name in ["restart-a", "restart-b", "restart-c"] {
        lab.create_service(name, no_annotations(), no_spec()).await;
        held.insert(name, lab.wait_ips(name).await);
    }
    lab.kill_leader().await;
    let versions = |services: Vec<Service>| -> Vec<Option<String>> {
        services
            .into_iter()
            .map(|s| s.metadata.resource_version)
            .collect()
    };
    let mut kept = Vec::new();
    for name in ["restart-b", "restart-c"] {
        kept.push(lab.services().get(name).await.expect("get"));
    }
    let kept = versions(kept);
    // While no controller runs: the lowest address is freed and a new Service waits.
    lab.services()
        .delete("restart-a", &DeleteParams::default())
        .await
        .expect("delete");
    lab.create_service("restart-d", no_annotations(), no_spec())
        .await;
    lab.start_controller();
    // restart-d may only take the address restart-a freed: b and c are re-claimed first.
    assert_eq!(lab.wait_ips("restart-d").await, held["restart-a"]);
    // Re-claimed Services cost no write: what they show is already what they should show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut after = Vec::new();
    for name in ["restart-b", "restart-c"] {
        let service = lab.services().get(name).await.expect("get");
        assert_eq!(ips(&service), held[name], "{name} kept its IP");
        after.push(service);
    }
    assert_eq!(versions(after), kept, "re-claimed Services were written");
    lab.finish().await;
}

#[tokio::test]
async fn service_of_another_load_balancer_class_is_left_alone() {
    let lab = Harness::start("class").await;
    lab.create_pool("class", &["203.0.113.80/29"], json!({}))
        .await;
    lab.create_service(
        "class-other",
        no_annotations(),
        json!({"loadBalancerClass": "example.com/other"}),
    )
    .await;
    lab.create_service(
        "class-ours",
        no_annotations(),
        json!({"loadBalancerClass": "ferrolb.io/lb"}),
    )
    .await;
    // Ours was handled after the other one was seen; the other got nothing, not even the
    // lowest address.
    assert_eq!(lab.wait_ips("class-ours").await, ["203.0.113.80"]);
    let other = lab.services().get("class-other").await.expect("get");
    assert!(ips(&other).is_empty());
    assert!(condition(&other).is_none());
    lab.finish().await;
}

#[tokio::test]
async fn service_that_stops_being_a_load_balancer_is_released_and_cleared() {
    let lab = Harness::start("retype").await;
    lab.create_pool("retype", &["203.0.113.88/29"], json!({}))
        .await;
    lab.create_service("retype-a", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("retype-a").await, ["203.0.113.88"]);
    lab.stop_being_a_load_balancer("retype-a").await;
    lab.wait_events("retype-a", "IPReleased").await;
    // The address is free again.
    lab.create_service("retype-b", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("retype-b").await, ["203.0.113.88"]);
    lab.finish().await;
}

#[tokio::test]
async fn annotation_applied_to_the_object_by_an_earlier_version_is_still_removed() {
    let mut lab = Harness::start("legacy").await;
    lab.create_pool("legacy", &["203.0.113.200/29"], json!({}))
        .await;
    lab.create_service("legacy-a", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("legacy-a").await, ["203.0.113.200"]);
    lab.kill_leader().await;
    // As versions before one-request writes left it: the annotation applied to the object.
    lab.services()
        .patch(
            "legacy-a",
            &PatchParams::apply("ferrolb-controller").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"annotations": {"ferrolb.io/allocated-from-pool": "legacy"}},
            })),
        )
        .await
        .expect("apply the annotation to the object");
    lab.start_controller();
    lab.stop_being_a_load_balancer("legacy-a").await;
    lab.finish().await;
}

#[tokio::test]
async fn sharing_needs_the_same_key() {
    let lab = Harness::start("keys").await;
    lab.create_pool("keys", &["203.0.113.96/29"], json!({}))
        .await;
    lab.create_service(
        "keys-a",
        json!({"ferrolb.io/allow-shared-ip": "one"}),
        no_spec(),
    )
    .await;
    let first = lab.wait_ips("keys-a").await;
    lab.create_service(
        "keys-b",
        json!({"ferrolb.io/allow-shared-ip": "two", "ferrolb.io/loadBalancerIPs": first[0]}),
        json!({"ports": [{"name": "p", "port": 443, "protocol": "TCP"}]}),
    )
    .await;
    let (_, message) = lab.wait_failed("keys-b").await;
    assert!(
        message.contains("\"one\"") && message.contains("\"two\""),
        "{message}"
    );
    lab.finish().await;
}

#[tokio::test]
async fn metallb_annotation_is_honoured_with_a_warning_event() {
    let lab = Harness::start("alias").await;
    lab.create_pool("alias-first", &["203.0.113.104/30"], json!({}))
        .await;
    lab.create_pool("alias-wanted", &["203.0.113.108/30"], json!({}))
        .await;
    lab.create_service(
        "alias-a",
        json!({"metallb.universe.tf/address-pool": "alias-wanted"}),
        no_spec(),
    )
    .await;
    assert_eq!(lab.wait_ips("alias-a").await, ["203.0.113.108"]);
    let warnings = lab.wait_events("alias-a", "DeprecatedAnnotation").await;
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    let note = warnings[0].note.clone().unwrap_or_default();
    assert!(note.contains("ferrolb.io/address-pool"), "{note}");
    lab.finish().await;
}

#[tokio::test]
async fn newer_overlapping_pool_is_marked_conflict_and_not_used() {
    let lab = Harness::start("overlap").await;
    // Creation times have one-second resolution; ties go to the lower name, which is also
    // the older pool here.
    lab.create_pool("overlap-first", &["203.0.113.112/30"], json!({}))
        .await;
    lab.wait_pool_condition("overlap-first", "Ready", "True")
        .await;
    lab.create_pool("overlap-second", &["203.0.113.112/29"], json!({}))
        .await;
    let message = lab
        .wait_pool_condition("overlap-second", "Conflict", "True")
        .await;
    assert!(message.contains("overlap-first"), "{message}");
    lab.wait_pool_condition("overlap-second", "Ready", "False")
        .await;
    lab.wait_pool_condition("overlap-first", "Conflict", "False")
        .await;
    // The older pool keeps working; the newer one hands out nothing.
    for name in ["overlap-a", "overlap-b", "overlap-c", "overlap-d"] {
        lab.create_service(name, no_annotations(), no_spec()).await;
        lab.wait_ips(name).await;
    }
    lab.create_service("overlap-e", no_annotations(), no_spec())
        .await;
    lab.wait_failed("overlap-e").await;
    lab.finish().await;
}

#[tokio::test]
async fn prefer_dual_stack_from_a_single_family_pool_gets_one_address() {
    let lab = Harness::start("prefer").await;
    lab.create_pool("prefer", &["203.0.113.120/30"], json!({}))
        .await;
    lab.create_service(
        "prefer-a",
        no_annotations(),
        json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
    )
    .await;
    assert_eq!(lab.wait_ips("prefer-a").await, ["203.0.113.120"]);
    lab.finish().await;
}

#[tokio::test]
async fn standby_takes_over_when_the_leader_dies_and_moves_no_ip() {
    let mut lab = Harness::start("failover").await;
    lab.start_controller();
    lab.create_pool("failover", &["203.0.113.128/29"], json!({}))
        .await;
    lab.create_service("failover-a", no_annotations(), no_spec())
        .await;
    let held = lab.wait_ips("failover-a").await;
    let dead = lab.kill_leader().await;
    lab.create_service("failover-b", no_annotations(), no_spec())
        .await;
    // The standby leads once the lease (3 s) expires, re-claims failover-a's address and
    // hands out the next one.
    assert_eq!(lab.wait_ips("failover-b").await, ["203.0.113.129"]);
    assert_ne!(lab.leader().await, dead);
    let a = lab.services().get("failover-a").await.expect("get");
    assert_eq!(ips(&a), held);
    lab.finish().await;
}

#[tokio::test]
async fn exhausted_pool_serves_a_waiting_service_once_an_ip_is_freed() {
    let lab = Harness::start("exhaust").await;
    lab.create_pool("exhaust", &["203.0.113.136/32"], json!({}))
        .await;
    lab.create_service("exhaust-a", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("exhaust-a").await, ["203.0.113.136"]);
    lab.create_service("exhaust-b", no_annotations(), no_spec())
        .await;
    let (_, message) = lab.wait_failed("exhaust-b").await;
    assert!(message.contains("no free"), "{message}");
    lab.services()
        .delete("exhaust-a", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(lab.wait_ips("exhaust-b").await, ["203.0.113.136"]);
    lab.finish().await;
}

#[tokio::test]
async fn requested_ip_outside_every_pool_or_of_the_wrong_family_fails() {
    let lab = Harness::start("badreq").await;
    lab.create_pool(
        "badreq",
        &["203.0.113.144/29", "2001:db8:20::/125"],
        json!({}),
    )
    .await;
    lab.create_service(
        "badreq-outside",
        json!({"ferrolb.io/loadBalancerIPs": "192.0.2.77"}),
        no_spec(),
    )
    .await;
    let (_, message) = lab.wait_failed("badreq-outside").await;
    assert!(
        message.contains("192.0.2.77") && message.contains("not in any pool"),
        "{message}"
    );
    lab.create_service(
        "badreq-family",
        json!({"ferrolb.io/loadBalancerIPs": "2001:db8:20::1"}),
        json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
    )
    .await;
    let (_, message) = lab.wait_failed("badreq-family").await;
    assert!(message.contains("2001:db8:20::1"), "{message}");
    lab.create_service(
        "badreq-garbage",
        json!({"ferrolb.io/loadBalancerIPs": "not-an-ip"}),
        no_spec(),
    )
    .await;
    let (reason, message) = lab.wait_failed("badreq-garbage").await;
    assert_eq!(reason, "InvalidRequest");
    assert!(message.contains("ferrolb.io/loadBalancerIPs"), "{message}");
    lab.finish().await;
}

#[tokio::test]
async fn local_traffic_policy_shares_only_with_the_same_pod_selector() {
    let lab = Harness::start("local").await;
    lab.create_pool("local", &["203.0.113.152/29"], json!({}))
        .await;
    let key = json!({"ferrolb.io/allow-shared-ip": "web"});
    let local = |app: &str, port: u16| {
        json!({
            "externalTrafficPolicy": "Local",
            "selector": {"app": app},
            "ports": [{"name": "p", "port": port, "protocol": "TCP"}],
        })
    };
    lab.create_service("local-a", key.clone(), local("web", 80))
        .await;
    let first = lab.wait_ips("local-a").await;
    lab.create_service("local-b", key.clone(), local("web", 443))
        .await;
    assert_eq!(lab.wait_ips("local-b").await, first, "same selector shares");
    lab.create_service("local-c", key, local("other", 8080))
        .await;
    let other = lab.wait_ips("local-c").await;
    assert_ne!(other, first, "another selector must not share under Local");
    lab.finish().await;
}

#[tokio::test]
async fn single_stack_ipv6_service_gets_an_ipv6_address() {
    let lab = Harness::start("six").await;
    lab.create_pool(
        "six",
        &["203.0.113.160/30", "2001:db8:30::10-2001:db8:30::1f"],
        json!({}),
    )
    .await;
    lab.create_service(
        "six-a",
        no_annotations(),
        json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv6"]}),
    )
    .await;
    assert_eq!(lab.wait_ips("six-a").await, ["2001:db8:30::10"]);
    lab.finish().await;
}

#[tokio::test]
async fn unrelated_spec_edit_keeps_the_ip_but_a_new_requested_pool_moves_it() {
    let lab = Harness::start("edit").await;
    lab.create_pool("edit-first", &["203.0.113.168/30"], json!({}))
        .await;
    lab.create_pool("edit-second", &["203.0.113.172/30"], json!({}))
        .await;
    lab.create_service("edit-a", no_annotations(), no_spec())
        .await;
    let held = lab.wait_ips("edit-a").await;
    assert_eq!(held, ["203.0.113.168"]);
    lab.services()
        .patch(
            "edit-a",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"labels": {"tier": "front"}},
                "spec": {"ports": [{"name": "p", "port": 80, "protocol": "TCP"}, {"name": "q", "port": 81, "protocol": "TCP"}]},
            })),
        )
        .await
        .expect("edit");
    // The condition's observedGeneration follows the edit while the address stays.
    let generation = lab
        .services()
        .get("edit-a")
        .await
        .expect("get")
        .metadata
        .generation;
    lab.wait_service("edit-a", |s| {
        let observed = s
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "ferrolb.io/IPAllocated")?
            .observed_generation;
        (observed == generation).then_some(())
    })
    .await;
    assert_eq!(ips(&lab.services().get("edit-a").await.expect("get")), held);
    lab.services()
        .patch(
            "edit-a",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"ferrolb.io/address-pool": "edit-second"}}}),
            ),
        )
        .await
        .expect("request pool");
    let moved = lab
        .wait_service("edit-a", |s| {
            Some(ips(s)).filter(|ips| ips == &["203.0.113.172"])
        })
        .await;
    assert_eq!(moved, ["203.0.113.172"]);
    lab.finish().await;
}

#[tokio::test]
async fn pool_restricted_to_a_namespace_is_preferred_there_and_unused_elsewhere() {
    let lab = Harness::start("scoped").await;
    let namespace = "ferrolb-e2e-scoped";
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(lab.client.clone());
    if namespaces
        .get_opt(namespace)
        .await
        .expect("get namespace")
        .is_none()
    {
        let object =
            serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .expect("create namespace");
    }
    // The restricted pool sorts after the open one by name and priority, yet is tried first for
    // Services of its namespace (SPEC §4: restricted pools that match come first).
    lab.create_pool("scoped-open", &["203.0.113.176/30"], json!({}))
        .await;
    lab.create_pool(
        "scoped-team",
        &["203.0.113.180/30"],
        json!({"serviceAllocation": {"namespaces": [namespace], "priority": 9}}),
    )
    .await;
    let scoped: Api<Service> = Api::namespaced(lab.client.clone(), namespace);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "scoped-a", "namespace": namespace},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "p", "port": 80, "protocol": "TCP"}]},
    }))
    .expect("service");
    let _ = scoped.delete("scoped-a", &DeleteParams::default()).await;
    let deadline = Instant::now() + WAIT;
    while scoped.get_opt("scoped-a").await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "old scoped-a not gone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scoped
        .create(&PostParams::default(), &service)
        .await
        .expect("create");
    lab.create_service("scoped-b", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("scoped-b").await, ["203.0.113.176"]);
    let deadline = Instant::now() + WAIT;
    let team = loop {
        let got = ips(&scoped.get("scoped-a").await.expect("get"));
        if !got.is_empty() {
            break got;
        }
        assert!(Instant::now() < deadline, "scoped-a got no address");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(team, ["203.0.113.180"]);
    scoped
        .delete("scoped-a", &DeleteParams::default())
        .await
        .expect("delete");
    lab.finish().await;
}

#[tokio::test]
async fn avoid_buggy_ips_pool_never_hands_out_dot_zero_or_dot_255() {
    let lab = Harness::start("buggy").await;
    // Lowest first would be .254, .255, then the next range's .0, .1.
    lab.create_pool(
        "buggy",
        &["198.51.100.254/31", "203.0.113.0/31"],
        json!({"avoidBuggyIPs": true}),
    )
    .await;
    lab.create_service("buggy-a", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("buggy-a").await, ["198.51.100.254"]);
    lab.create_service("buggy-b", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("buggy-b").await, ["203.0.113.1"]);
    // The two addresses left are both avoided: the pool is full.
    lab.create_service("buggy-c", no_annotations(), no_spec())
        .await;
    let (_, message) = lab.wait_failed("buggy-c").await;
    assert!(message.contains("no free"), "{message}");
    lab.create_service(
        "buggy-d",
        json!({"ferrolb.io/loadBalancerIPs": "198.51.100.255"}),
        no_spec(),
    )
    .await;
    let (_, message) = lab.wait_failed("buggy-d").await;
    assert!(message.contains("198.51.100.255"), "{message}");
    lab.finish().await;
}

#[tokio::test]
async fn service_selector_pool_with_better_priority_serves_matching_services_only() {
    let lab = Harness::start("label").await;
    // Unrestricted pools go by priority before name: "label-a-late" sorts first by name but has
    // the worse priority.
    lab.create_pool(
        "label-a-late",
        &["198.51.100.0/30"],
        json!({"serviceAllocation": {"priority": 9}}),
    )
    .await;
    lab.create_pool(
        "label-open",
        &["198.51.100.4/30"],
        json!({"serviceAllocation": {"priority": 5}}),
    )
    .await;
    lab.create_pool(
        "label-gold",
        &["198.51.100.8/30"],
        json!({"serviceAllocation": {
            "priority": 1,
            "serviceSelectors": [{"matchLabels": {"tier": "gold"}}],
        }}),
    )
    .await;
    // An allocation made before the controller knows every pool would stick (stability).
    for pool in ["label-a-late", "label-open", "label-gold"] {
        lab.wait_pool_condition(pool, "Ready", "True").await;
    }
    create_test_service(
        &lab.services(),
        "label-gold-a",
        json!({"tier": "gold"}),
        no_annotations(),
        no_spec(),
    )
    .await;
    create_test_service(
        &lab.services(),
        "label-silver-a",
        json!({"tier": "silver"}),
        no_annotations(),
        no_spec(),
    )
    .await;
    lab.create_service("label-plain-a", no_annotations(), no_spec())
        .await;
    assert_eq!(lab.wait_ips("label-gold-a").await, ["198.51.100.8"]);
    let open = [
        lab.wait_ips("label-silver-a").await,
        lab.wait_ips("label-plain-a").await,
    ];
    for ips in &open {
        assert_eq!(ips.len(), 1);
        assert!(
            ["198.51.100.4", "198.51.100.5"].contains(&ips[0].as_str()),
            "{ips:?} not from label-open"
        );
    }
    assert_ne!(open[0], open[1]);
    let gold = lab.services().get("label-gold-a").await.expect("get");
    assert_eq!(
        annotation(&gold, "ferrolb.io/allocated-from-pool").as_deref(),
        Some("label-gold")
    );
    lab.finish().await;
}

#[tokio::test]
async fn namespace_relabel_keeps_existing_ip_and_sends_new_services_to_the_matching_pool() {
    let lab = Harness::start("relabel").await;
    let namespace = "ferrolb-e2e-relabel";
    let services = lab.unlabelled_namespace(namespace).await;
    lab.create_pool("relabel-open", &["198.51.100.16/30"], json!({}))
        .await;
    lab.create_pool(
        "relabel-team",
        &["198.51.100.20/30"],
        json!({"serviceAllocation": {
            "namespaceSelectors": [{"matchLabels": {"team": "blue"}}],
        }}),
    )
    .await;
    for pool in ["relabel-open", "relabel-team"] {
        lab.wait_pool_condition(pool, "Ready", "True").await;
    }
    create_test_service(
        &services,
        "relabel-a",
        json!({}),
        no_annotations(),
        no_spec(),
    )
    .await;
    let wait_in_namespace = |name: &'static str| {
        let services = services.clone();
        async move {
            let deadline = Instant::now() + WAIT;
            loop {
                let got = ips(&services.get(name).await.expect("get"));
                if !got.is_empty() {
                    return got;
                }
                assert!(Instant::now() < deadline, "{name} got no address");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let held = wait_in_namespace("relabel-a").await;
    assert_eq!(held, ["198.51.100.16"]);
    let namespaces: Api<Namespace> = Api::all(lab.client.clone());
    namespaces
        .patch(
            namespace,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "blue"}}})),
        )
        .await
        .expect("label namespace");
    // The label change reaches the controller through its Namespace watch; nothing in the API
    // shows when it has, so give the watch a moment before creating the next Service.
    tokio::time::sleep(Duration::from_secs(1)).await;
    create_test_service(
        &services,
        "relabel-b",
        json!({}),
        no_annotations(),
        no_spec(),
    )
    .await;
    assert_eq!(wait_in_namespace("relabel-b").await, ["198.51.100.20"]);
    // relabel-a is allowed in the open pool still, so it stays put (SPEC §4 stability).
    assert_eq!(ips(&services.get("relabel-a").await.expect("get")), held);
    lab.finish().await;
}

#[tokio::test]
async fn metallb_sharing_key_alias_shares_the_ip_with_a_warning_event() {
    let lab = Harness::start("sharealias").await;
    lab.create_pool("sharealias", &["198.51.100.24/30"], json!({}))
        .await;
    let key = json!({"metallb.universe.tf/allow-shared-ip": "web"});
    lab.create_service("sharealias-a", key.clone(), no_spec())
        .await;
    let first = lab.wait_ips("sharealias-a").await;
    lab.create_service(
        "sharealias-b",
        key,
        json!({"ports": [{"name": "p", "port": 443, "protocol": "TCP"}]}),
    )
    .await;
    assert_eq!(lab.wait_ips("sharealias-b").await, first);
    let warnings = lab
        .wait_events("sharealias-b", "DeprecatedAnnotation")
        .await;
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    let note = warnings[0].note.clone().unwrap_or_default();
    assert!(note.contains("ferrolb.io/allow-shared-ip"), "{note}");
    lab.finish().await;
}

/// How many Services churn creates, and how many may be in flight at once.
const CHURN_SERVICES: usize = 200;
const CHURN_CONCURRENCY: usize = 16;

#[tokio::test]
async fn controller_killed_during_churn_restarts_without_moving_or_duplicating_an_ip() {
    use futures::StreamExt;

    let mut lab = Harness::start("churn").await;
    lab.create_pool("churn", &["198.51.100.0/24"], json!({}))
        .await;
    lab.wait_pool_condition("churn", "Ready", "True").await;
    let services = lab.services();
    let creating = tokio::spawn(async move {
        futures::stream::iter(0..CHURN_SERVICES)
            .for_each_concurrent(CHURN_CONCURRENCY, |index| {
                let services = services.clone();
                async move {
                    create_test_service(
                        &services,
                        &format!("churn-{index:03}"),
                        json!({}),
                        no_annotations(),
                        no_spec(),
                    )
                    .await;
                }
            })
            .await;
    });
    // Kill the controller once it is part-way through.
    let deadline = Instant::now() + WAIT;
    loop {
        let assigned = lab
            .test_service_ips()
            .await
            .values()
            .filter(|ips| !ips.is_empty())
            .count();
        if assigned >= CHURN_SERVICES / 5 {
            break;
        }
        assert!(Instant::now() < deadline, "only {assigned} assigned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lab.kill_leader().await;
    creating.await.expect("creating Services");
    // A write the dead controller had sent may still land; after that, nothing changes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = lab.test_service_ips().await;
    let held: BTreeMap<&String, &Vec<String>> =
        before.iter().filter(|(_, ips)| !ips.is_empty()).collect();
    assert!(
        held.len() < CHURN_SERVICES,
        "all {} assigned before the kill: the kill came too late to test a restart",
        held.len()
    );
    lab.start_controller();
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let now = lab.test_service_ips().await;
        if now.len() == CHURN_SERVICES && now.values().all(|ips| !ips.is_empty()) {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {CHURN_SERVICES} assigned after the restart",
            now.values().filter(|ips| !ips.is_empty()).count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (name, ips) in &held {
        assert_eq!(&&after[*name], ips, "{name} moved across the restart");
    }
    let mut owners: BTreeMap<&String, &String> = BTreeMap::new();
    for (name, ips) in &after {
        assert_eq!(ips.len(), 1, "{name}: {ips:?}");
        if let Some(other) = owners.insert(&ips[0], name) {
            panic!("{name} and {other} share {}", ips[0]);
        }
    }
    lab.finish().await;
}

#[tokio::test]
async fn address_written_by_another_implementation_is_kept_when_a_pool_allows_it() {
    let mut lab = Harness::start("adopt").await;
    lab.kill_leader().await;
    lab.create_pool("adopt", &["203.0.113.184/29"], json!({}))
        .await;
    // As MetalLB leaves them: ingress written, none of ferrolb's markers.
    for (name, ip) in [("adopt-in", "203.0.113.187"), ("adopt-out", "192.0.2.250")] {
        lab.create_service(name, no_annotations(), no_spec()).await;
        lab.services()
            .patch_status(
                name,
                &PatchParams::apply("metallb-controller"),
                &Patch::Apply(json!({
                    "apiVersion": "v1",
                    "kind": "Service",
                    "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
                })),
            )
            .await
            .expect("write foreign status");
    }
    lab.start_controller();
    let adopted = lab
        .wait_service("adopt-in", |s| {
            annotation(s, "ferrolb.io/allocated-from-pool").map(|_| ips(s))
        })
        .await;
    assert_eq!(
        adopted,
        ["203.0.113.187"],
        "an address the pool allows stays"
    );
    let replaced = lab
        .wait_service("adopt-out", |s| {
            annotation(s, "ferrolb.io/allocated-from-pool").map(|_| ips(s))
        })
        .await;
    assert_eq!(
        replaced,
        ["203.0.113.184"],
        "an address outside every pool is replaced"
    );
    lab.finish().await;
}
