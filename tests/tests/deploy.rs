//! ferrolb's deployment artefacts (`deploy/`) against the pinned Helm and the lab's real API server:
//! the chart lints; the committed manifests and the chart's copies of the CRDs and the dashboard match
//! a fresh `deploy/render.sh`; the rendered chart (defaults, and with every monitoring object) and
//! `deploy/manifests/ferrolb.yaml` are accepted by server-side dry run and then for real, and removed
//! again; `helm upgrade` keeps the membership key; and the RBAC grants each component what it calls
//! and nothing else, as the API server's own authorizer answers.
//!
//! No pod runs: the lab has no kubelet, so these tests prove the objects, not the workloads.
//! The lab here is the API server and one node namespace, without routers (see [`api_server_lab`]).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_lab::cluster::{self, Manifest, Persist, Removal, read_manifests};
use ferrolb_lab::lab::{Lab, LabOptions};
use ferrolb_lab::topology::TopologyOptions;
use ferrolb_lab::versions::locate_helm;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};

/// The Prometheus Operator kinds the monitoring values render, as stand-in CRDs for the lab only.
const MONITORING_STAND_IN_CRDS: &str = "tests/fixtures/prometheus-operator-stand-in-crds.yaml";

/// Every opt-in monitoring object on.
const MONITORING_VALUES: &[&str] = &[
    "metrics.serviceMonitor.enabled=true",
    "metrics.podMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "metrics.grafanaDashboard.enabled=true",
];

fn workspace_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn chart_dir() -> PathBuf {
    workspace_path("deploy/helm/ferrolb")
}

/// The API server and one node; the chart needs no routers.
fn api_server_lab() -> LabOptions {
    let options = common::lab_options();
    LabOptions {
        topology: TopologyOptions {
            nodes: 1,
            routers: Vec::new(),
            ..options.topology
        },
        ..options
    }
}

async fn lab() -> tokio::sync::MutexGuard<'static, Lab> {
    common::shared_lab_with(api_server_lab).await
}

/// A scratch directory of this test process, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("ferrolb-deploy-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pinned Helm, with its cache, config and data (and the Kubernetes discovery cache) under
/// `scratch`, never the user's own.
fn helm(scratch: &Scratch) -> Command {
    let binary = locate_helm().unwrap_or_else(|error| panic!("{error}"));
    let mut command = Command::new(binary);
    for (variable, dir) in [
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
        ("KUBECACHEDIR", "kube-cache"),
    ] {
        command.env(variable, scratch.0.join("helm").join(dir));
    }
    command
}

/// Runs a command, panicking with its output when it fails; returns its stdout.
fn run(mut command: Command) -> String {
    let output = command.output().expect("command starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `helm template` of the chart as release `release` in `namespace`, CRDs included, parsed.
fn render(scratch: &Scratch, release: &str, namespace: &str, values: &[&str]) -> Vec<Manifest> {
    let mut command = helm(scratch);
    command.args(["template", release]).arg(chart_dir()).args([
        "--namespace",
        namespace,
        "--include-crds",
    ]);
    for value in values {
        command.args(["--set", value]);
    }
    let path = scratch.0.join(format!("{release}.yaml"));
    std::fs::write(&path, run(command)).expect("write render");
    read_manifests(&path).expect("rendered chart parses")
}

fn namespace_manifest(name: &str) -> Manifest {
    Manifest {
        source: PathBuf::from("<test>"),
        object: serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name },
        }),
    }
}

/// Applies each object as a server-side dry run and then for real, in order; a CRD is waited for
/// until Established, so the objects of its kind that follow can be checked.
async fn apply_all(client: &kube::Client, manifests: &[Manifest]) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for manifest in manifests {
        for persist in [Persist::DryRun, Persist::Store] {
            if let Err(error) = cluster::apply_manifest(client, manifest, persist).await {
                panic!(
                    "{} from {} rejected ({persist:?}): {error}",
                    manifest.describe(),
                    manifest.source.display()
                );
            }
        }
        if manifest.object["kind"] == "CustomResourceDefinition" {
            let name = manifest.name().unwrap_or_else(|error| panic!("{error}"));
            cluster::wait_established(&crds, name, cluster::ESTABLISH_TIMEOUT)
                .await
                .unwrap_or_else(|error| panic!("{error}"));
        }
    }
}

/// Deletes the objects in reverse order. The lab's own ferrolb CRDs stay (the other tests of this
/// binary use them); Namespaces may stay Terminating (the lab runs no namespace controller); every
/// other object must be gone, CRDs once the API server has removed their objects.
async fn delete_all(client: &kube::Client, manifests: &[Manifest]) {
    let mut left = Vec::new();
    for manifest in manifests.iter().rev() {
        let kind = manifest.object["kind"].as_str().unwrap_or("");
        let name = manifest.name().unwrap_or_else(|error| panic!("{error}"));
        if kind == "CustomResourceDefinition" && name.ends_with(".ferrolb.io") {
            continue;
        }
        match cluster::delete_manifest(client, manifest).await {
            Ok(Removal::Gone) => {}
            Ok(Removal::Finalizing) if kind == "Namespace" => {}
            // The API server itself removes a CRD's objects, then the CRD: it goes soon.
            Ok(Removal::Finalizing) if kind == "CustomResourceDefinition" => {
                let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
                let started = Instant::now();
                while crds.get_opt(name).await.expect("read CRD").is_some() {
                    if started.elapsed() > cluster::ESTABLISH_TIMEOUT {
                        left.push(manifest.describe());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Ok(Removal::Finalizing) => left.push(manifest.describe()),
            Err(error) => panic!("{error}"),
        }
    }
    assert!(left.is_empty(), "still present after deletion: {left:?}");
}

fn kinds(manifests: &[Manifest]) -> Vec<&str> {
    manifests
        .iter()
        .filter_map(|manifest| manifest.object["kind"].as_str())
        .collect()
}

#[test]
fn chart_lints_clean_with_defaults_and_with_every_monitoring_object() {
    let scratch = Scratch::new("lint");
    for values in [&[][..], MONITORING_VALUES] {
        let mut command = helm(&scratch);
        command.args(["lint", "--strict"]).arg(chart_dir());
        for value in values {
            command.args(["--set", value]);
        }
        let out = run(command);
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn packaged_chart_carries_every_crd_and_the_dashboard() {
    let scratch = Scratch::new("package");
    let mut package = helm(&scratch);
    package
        .arg("package")
        .arg(chart_dir())
        .arg("--destination")
        .arg(&scratch.0);
    run(package);
    let version = std::fs::read_to_string(chart_dir().join("Chart.yaml"))
        .expect("Chart.yaml")
        .lines()
        .find_map(|line| line.strip_prefix("version: ").map(str::to_owned))
        .expect("chart version");
    let mut list = Command::new("tar");
    list.arg("tzf")
        .arg(scratch.0.join(format!("ferrolb-{version}.tgz")));
    let packaged = run(list);
    let crd_files = cluster::yaml_files(&workspace_path("deploy/crds")).expect("deploy/crds");
    assert!(!crd_files.is_empty());
    for crd in crd_files {
        let name = crd.file_name().expect("file name").to_string_lossy();
        assert!(
            packaged
                .lines()
                .any(|entry| entry == format!("ferrolb/crds/{name}")),
            "{name} packaged in crds/:\n{packaged}"
        );
    }
    assert!(
        packaged
            .lines()
            .any(|entry| entry == "ferrolb/dashboards/ferrolb.json")
    );
}

#[test]
fn committed_manifests_and_chart_copies_match_a_fresh_render() {
    let helm = locate_helm().unwrap_or_else(|error| panic!("{error}"));
    let mut command = Command::new(workspace_path("deploy/render.sh"));
    command.arg("--check").env("HELM", helm);
    run(command);
}

#[test]
fn rendered_chart_has_every_component_and_monitoring_only_when_asked() {
    let scratch = Scratch::new("kinds");
    let defaults = render(&scratch, "ferrolb", "ferrolb-system", &[]);
    let default_kinds = kinds(&defaults);
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Secret",
        "Deployment",
        "DaemonSet",
        "PodDisruptionBudget",
    ] {
        assert!(default_kinds.contains(&kind), "{kind} in {default_kinds:?}");
    }
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "ConfigMap",
    ] {
        assert!(!default_kinds.contains(&kind), "{kind} is opt-in");
    }
    let monitored = render(&scratch, "ferrolb", "ferrolb-system", MONITORING_VALUES);
    let monitored_kinds = kinds(&monitored);
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "ConfigMap",
    ] {
        assert!(monitored_kinds.contains(&kind), "{kind} when enabled");
    }
    let dashboard = monitored
        .iter()
        .find(|m| m.object["kind"] == "ConfigMap")
        .expect("dashboard ConfigMap");
    let shipped: serde_json::Value = serde_json::from_str(
        dashboard.object["data"]["ferrolb.json"]
            .as_str()
            .expect("dashboard data"),
    )
    .expect("dashboard is JSON");
    let source: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_path("deploy/dashboards/ferrolb.json"))
            .expect("dashboard source"),
    )
    .expect("dashboard source is JSON");
    assert_eq!(
        shipped, source,
        "the ConfigMap ships deploy/dashboards/ferrolb.json"
    );
}

#[test]
fn controller_runs_unprivileged_and_the_speaker_adds_only_the_contract_capabilities() {
    let scratch = Scratch::new("security");
    let manifests = render(&scratch, "ferrolb", "ferrolb-system", &[]);
    let pod_spec = |kind: &str| {
        manifests
            .iter()
            .find(|m| m.object["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} rendered"))
            .object["spec"]["template"]["spec"]
            .clone()
    };
    let controller = pod_spec("Deployment");
    assert_eq!(controller["securityContext"]["runAsNonRoot"], true);
    let container = &controller["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"],
        serde_json::json!({"drop": ["ALL"]})
    );
    let env_names: Vec<&str> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for name in ["POD_NAME", "POD_NAMESPACE"] {
        assert!(env_names.contains(&name), "controller env {name}");
    }

    let speaker = pod_spec("DaemonSet");
    assert_eq!(speaker["hostNetwork"], true);
    let container = &speaker["containers"][0];
    assert_eq!(
        container["securityContext"]["capabilities"],
        serde_json::json!({"drop": ["ALL"], "add": ["NET_RAW", "NET_BIND_SERVICE", "NET_ADMIN"]})
    );
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");
    let admin = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "ADMIN_ADDR")
        .expect("ADMIN_ADDR");
    assert_eq!(admin["value"], "0.0.0.0:7473");
    let tolerated: Vec<&str> = speaker["tolerations"]
        .as_array()
        .expect("tolerations")
        .iter()
        .filter_map(|t| t["key"].as_str())
        .collect();
    assert!(tolerated.contains(&"node-role.kubernetes.io/control-plane"));
}

#[tokio::test]
async fn chart_and_plain_manifests_are_accepted_by_the_api_server_then_removed() {
    let lab = lab().await;
    let client = lab.client().expect("client");
    let scratch = Scratch::new("apply");

    let stand_ins = read_manifests(&workspace_path(MONITORING_STAND_IN_CRDS)).expect("fixture");
    apply_all(&client, &stand_ins).await;

    let mut defaults = vec![namespace_manifest("ferrolb-defaults")];
    defaults.extend(render(
        &scratch,
        "ferrolb-defaults",
        "ferrolb-defaults",
        &[],
    ));
    let mut monitored = vec![namespace_manifest("ferrolb-monitoring")];
    monitored.extend(render(
        &scratch,
        "ferrolb-monitoring",
        "ferrolb-monitoring",
        MONITORING_VALUES,
    ));
    let plain =
        read_manifests(&workspace_path("deploy/manifests/ferrolb.yaml")).expect("manifests");
    assert_eq!(plain[0].object["kind"], "CustomResourceDefinition");
    assert!(
        plain
            .iter()
            .any(|m| m.describe() == "Namespace/ferrolb-system"),
        "the plain manifests create their namespace"
    );

    let mut accepted = 0;
    for manifests in [&defaults, &monitored, &plain] {
        apply_all(&client, manifests).await;
        accepted += manifests.len();
    }
    println!("{accepted} objects accepted by dry run and stored");

    for manifests in [&plain, &monitored, &defaults, &stand_ins] {
        delete_all(&client, manifests).await;
    }
}

#[tokio::test]
async fn helm_upgrade_keeps_the_generated_membership_key() {
    let lab = lab().await;
    let client = lab.client().expect("client");
    let kubeconfig = lab
        .control_plane()
        .expect("control plane")
        .host_kubeconfig()
        .to_owned();
    let scratch = Scratch::new("upgrade");
    let namespace = "ferrolb-helm";
    let helm_release = |verb: &str, values: &[&str]| {
        let mut command = helm(&scratch);
        command
            .args([verb, "ferrolb"])
            .arg(chart_dir())
            .args(["--namespace", namespace, "--kubeconfig"])
            .arg(&kubeconfig);
        for value in values {
            command.args(["--set", value]);
        }
        command
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let key = |secret: Secret| {
        secret
            .data
            .and_then(|data| data.get("key").cloned())
            .expect("membership Secret has a key")
            .0
    };

    let mut install = helm_release("install", &[]);
    install.arg("--create-namespace");
    run(install);
    let installed = key(secrets.get("ferrolb-membership").await.expect("Secret"));
    assert!(installed.len() >= 32, "key of {} bytes", installed.len());

    run(helm_release("upgrade", &["logging.level=debug"]));
    let upgraded = key(secrets.get("ferrolb-membership").await.expect("Secret"));
    assert_eq!(installed, upgraded, "helm upgrade kept the key");
    let deployment: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let controller = deployment
        .get("ferrolb-controller")
        .await
        .expect("Deployment");
    let env = serde_json::to_value(controller.spec.expect("spec").template.spec.expect("pod"))
        .expect("json")["containers"][0]["env"]
        .clone();
    assert!(
        env.as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "RUST_LOG" && e["value"] == "debug"),
        "the upgrade was applied: {env}"
    );

    let mut uninstall = helm(&scratch);
    uninstall
        .args([
            "uninstall",
            "ferrolb",
            "--namespace",
            namespace,
            "--kubeconfig",
        ])
        .arg(&kubeconfig);
    run(uninstall);
    assert!(
        secrets
            .get_opt("ferrolb-membership")
            .await
            .expect("read")
            .is_none(),
        "uninstall removed the Secret"
    );
}

/// One question to the API server's authorizer: may `user` do `verb` on `resource`?
struct Access {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    namespace: Option<&'static str>,
    name: Option<&'static str>,
}

const fn access(verb: &'static str, group: &'static str, resource: &'static str) -> Access {
    Access {
        verb,
        group,
        resource,
        subresource: None,
        namespace: None,
        name: None,
    }
}

impl Access {
    const fn status(self) -> Self {
        Self {
            subresource: Some("status"),
            ..self
        }
    }

    const fn within(self, namespace: &'static str) -> Self {
        Self {
            namespace: Some(namespace),
            ..self
        }
    }

    const fn named(self, name: &'static str) -> Self {
        Self {
            name: Some(name),
            ..self
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} {}{}{} in {} named {}",
            self.verb,
            if self.group.is_empty() {
                String::new()
            } else {
                format!("{}/", self.group)
            },
            self.resource,
            self.subresource
                .map(|s| format!("/{s}"))
                .unwrap_or_default(),
            self.namespace.unwrap_or("<cluster>"),
            self.name.unwrap_or("<any>")
        )
    }
}

/// Asks the authorizer about each access for the service account, and lists the answers that
/// differ from `expected`.
async fn review(
    client: &kube::Client,
    namespace: &str,
    service_account: &str,
    accesses: &[Access],
    expected: bool,
) -> Vec<String> {
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let mut wrong = Vec::new();
    for access in accesses {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(format!(
                    "system:serviceaccount:{namespace}:{service_account}"
                )),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{namespace}"),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(access.verb.into()),
                    group: Some(access.group.into()),
                    resource: Some(access.resource.into()),
                    subresource: access.subresource.map(Into::into),
                    namespace: access.namespace.map(Into::into),
                    name: access.name.map(Into::into),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .expect("SubjectAccessReview");
        let allowed = answer.status.is_some_and(|status| status.allowed);
        if allowed != expected {
            wrong.push(format!(
                "{service_account} {} {}",
                if allowed { "may" } else { "may not" },
                access.describe()
            ));
        }
    }
    wrong
}

#[tokio::test]
async fn rbac_grants_each_component_what_it_calls_and_nothing_else() {
    const NS: &str = "ferrolb-rbac";
    const SECRETS_NS: &str = "bgp-passwords";
    let lab = lab().await;
    let client = lab.client().expect("client");
    let scratch = Scratch::new("rbac");
    let mut manifests = vec![namespace_manifest(NS), namespace_manifest(SECRETS_NS)];
    manifests.extend(
        render(
            &scratch,
            "ferrolb",
            NS,
            &[
                "speaker.rbac.passwordSecretsClusterWide=false",
                "speaker.rbac.passwordSecretNamespaces={bgp-passwords}",
            ],
        )
        .into_iter()
        .filter(|m| m.object["kind"] != "CustomResourceDefinition"),
    );
    apply_all(&client, &manifests).await;

    // What controller/src/reconciler/ and runtime/src/leader.rs call.
    let controller_may = [
        access("list", "", "services"),
        access("watch", "", "services"),
        access("patch", "", "services").within("default"),
        access("patch", "", "services").status().within("default"),
        access("list", "", "namespaces"),
        access("watch", "", "namespaces"),
        access("list", "ferrolb.io", "ipaddresspools"),
        access("watch", "ferrolb.io", "ipaddresspools"),
        access("patch", "ferrolb.io", "ipaddresspools").status(),
        access("create", "events.k8s.io", "events").within("default"),
        access("patch", "events.k8s.io", "events").within("default"),
        access("create", "coordination.k8s.io", "leases").within(NS),
        access("get", "coordination.k8s.io", "leases")
            .within(NS)
            .named("ferrolb-controller"),
        access("update", "coordination.k8s.io", "leases")
            .within(NS)
            .named("ferrolb-controller"),
    ];
    let controller_may_not = [
        access("get", "", "secrets").within(NS),
        access("delete", "", "services").within("default"),
        access("update", "", "services").within("default"),
        access("list", "ferrolb.io", "l2advertisements"),
        access("create", "ferrolb.io", "speakerstatuses"),
        access("patch", "ferrolb.io", "ipaddresspools"),
        access("create", "coordination.k8s.io", "leases").within("default"),
        access("update", "coordination.k8s.io", "leases")
            .within(NS)
            .named("someone-else"),
        access("list", "discovery.k8s.io", "endpointslices"),
    ];
    // What the speaker calls (speaker/src/agent: watches, status and condition writes, Events,
    // Secrets by name).
    let speaker_may = [
        access("list", "", "services"),
        access("watch", "", "nodes"),
        access("list", "", "namespaces"),
        access("watch", "discovery.k8s.io", "endpointslices"),
        access("list", "ferrolb.io", "bgppeers"),
        access("watch", "ferrolb.io", "communities"),
        access("create", "ferrolb.io", "speakerstatuses"),
        access("patch", "ferrolb.io", "speakerstatuses")
            .status()
            .named("node-1"),
        access("patch", "", "services").status().within("default"),
        access("create", "events.k8s.io", "events").within("default"),
        access("get", "", "secrets")
            .within(NS)
            .named("ferrolb-membership"),
        access("get", "", "secrets")
            .within(SECRETS_NS)
            .named("peer-password"),
    ];
    let speaker_may_not = [
        access("patch", "", "services").within("default"),
        access("delete", "ferrolb.io", "speakerstatuses"),
        access("patch", "ferrolb.io", "ipaddresspools").status(),
        access("list", "", "secrets").within(NS),
        access("get", "", "secrets").within(NS).named("other"),
        access("get", "", "secrets")
            .within("default")
            .named("peer-password"),
        access("update", "coordination.k8s.io", "leases").within(NS),
    ];
    let mut wrong = Vec::new();
    wrong.extend(review(&client, NS, "ferrolb-controller", &controller_may, true).await);
    wrong.extend(
        review(
            &client,
            NS,
            "ferrolb-controller",
            &controller_may_not,
            false,
        )
        .await,
    );
    wrong.extend(review(&client, NS, "ferrolb-speaker", &speaker_may, true).await);
    wrong.extend(review(&client, NS, "ferrolb-speaker", &speaker_may_not, false).await);
    delete_all(&client, &manifests).await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The BGP peer set's series, labelled by peer (and the BFD drops, by reason): they appear only
/// once a peer runs, so they are named here; `speaker/src/bgp/peer_set/tests.rs` asserts these
/// exact lines (from a live session, and the BFD counters from recorded samples).
const BGP_SERIES: &[&str] = &[
    "ferrolb_bgp_session_up",
    "ferrolb_bgp_prefixes_announced",
    "ferrolb_bgp_updates_sent_total",
    "ferrolb_bfd_session_up",
    "ferrolb_bfd_packets_received_total",
    "ferrolb_bfd_packets_sent_total",
    "ferrolb_bfd_send_errors_total",
    "ferrolb_bfd_session_state_changes_total",
    "ferrolb_bfd_packets_dropped_total",
];

/// Every series name the speaker exposes: layer-2, membership and config ones read from its own
/// registry (each labelled family given a series), plus [`BGP_SERIES`].
fn speaker_series_names() -> Vec<String> {
    use ferrolb_speaker::l2::announcer::Counters;
    use ferrolb_speaker::membership::liveness::DropReason;

    let mut registry = prometheus_client::registry::Registry::with_prefix("ferrolb");
    let metrics = ferrolb_speaker::agent::metrics::SpeakerMetrics::register(&mut registry);
    metrics.record_l2(&Counters::default(), &Counters::default());
    metrics.record_dropped(
        &std::collections::BTreeMap::new(),
        &std::collections::BTreeMap::from([(DropReason::BadMac, 1)]),
    );
    let mut names = series_names(&registry);
    names.extend(BGP_SERIES.iter().map(|name| (*name).to_owned()));
    names
}

/// Every series name the controller exposes, read from its own registry's exposition: the
/// `# TYPE` line of each family, expanded to the names a query sees. A labelled family shows up
/// only once it has a series, so each gets one: two overlapping pools (one invalid), an
/// allocation, a failed allocation and a failed reconcile.
fn controller_series_names() -> Vec<String> {
    use ferrolb_config::addresses::Family;
    use ferrolb_config::model::{Objects, build};

    let mut registry = prometheus_client::registry::Registry::with_prefix("ferrolb");
    let metrics = ferrolb_controller::metrics::ControllerMetrics::register(&mut registry);
    let pool = |name: &str| {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": { "name": name },
            "spec": { "addresses": ["198.51.100.0/28"] },
        }))
        .expect("pool")
    };
    let (config, diagnostics) = build(&Objects {
        pools: vec![pool("a"), pool("b")],
        ..Objects::default()
    });
    metrics.record_config(&config, &diagnostics);
    metrics.record_pool_use([("a", Family::V4, 1)]);
    metrics.allocated("a", Family::V4);
    metrics.allocation_failed("PoolExhausted");
    metrics.reconcile_failed(Duration::from_millis(1), "Write");
    series_names(&registry)
}

/// The series names of a registry's exposition: the `# TYPE` line of each family, expanded to the
/// names a query sees.
fn series_names(registry: &prometheus_client::registry::Registry) -> Vec<String> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
    let mut names = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            match kind {
                "counter" => names.push(format!("{name}_total")),
                "histogram" => {
                    names.extend(["bucket", "sum", "count"].map(|s| format!("{name}_{s}")));
                }
                _ => names.push(name.to_owned()),
            }
        }
    }
    names
}

/// The `ferrolb_*` names a text mentions.
fn metric_names_in(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("ferrolb_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn alerts_and_dashboard_query_only_metrics_the_binaries_expose() {
    let controller = controller_series_names();
    for family in [
        "ferrolb_pool_addresses",
        "ferrolb_pool_addresses_in_use",
        "ferrolb_config_invalid_objects",
        "ferrolb_reconcile_errors_total",
        "ferrolb_allocation_failures_total",
    ] {
        assert!(
            controller.iter().any(|n| n == family),
            "{family} in {controller:?}"
        );
    }
    let speaker = speaker_series_names();
    for family in [
        "ferrolb_l2_conflicts_total",
        "ferrolb_members_alive",
        "ferrolb_bgp_session_up",
        "ferrolb_bfd_session_up",
    ] {
        assert!(
            speaker.iter().any(|n| n == family),
            "{family} in {speaker:?}"
        );
    }
    let known = |name: &String| controller.contains(name) || speaker.contains(name);
    for file in [
        "deploy/helm/ferrolb/templates/prometheusrule.yaml",
        "deploy/dashboards/ferrolb.json",
    ] {
        let text = std::fs::read_to_string(workspace_path(file)).expect("readable");
        let used = metric_names_in(&text);
        assert!(used.len() >= 5, "{file} queries ferrolb metrics: {used:?}");
        let unknown: Vec<&String> = used.iter().filter(|name| !known(name)).collect();
        assert!(
            unknown.is_empty(),
            "{file} queries unknown metrics {unknown:?}"
        );
    }
}
