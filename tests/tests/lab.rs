//! The lab's cluster against the real API server: it serves, ferrolb's CRDs are Established, the valid
//! examples are accepted and invalid objects are rejected naming the field, and every node is a
//! registered, Ready Node. One lab is shared by the tests of this binary; its reaper removes it when
//! the binary exits.

mod common;

use std::path::{Path, PathBuf};

use ferrolb_lab::cluster::{
    self, ClusterError, Persist, is_established, read_manifests, yaml_files,
};
use ferrolb_lab::versions::ControlPlaneVersions;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};

fn workspace_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

#[tokio::test]
async fn api_server_serves_its_pinned_version_and_builtin_namespaces() {
    let lab = common::shared_lab().await;
    let client = lab.client().expect("client");
    let version = client.apiserver_version().await.expect("/version");
    let pinned = ControlPlaneVersions::pinned().expect("versions.env");
    assert_eq!(version.git_version, pinned.kubernetes);
    let namespaces: Api<Namespace> = Api::all(client);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("list namespaces")
        .items
        .into_iter()
        .filter_map(|namespace| namespace.metadata.name)
        .collect();
    for builtin in ["default", "kube-system", "kube-public"] {
        assert!(
            names.iter().any(|name| name == builtin),
            "{builtin} in {names:?}"
        );
    }
}

#[tokio::test]
async fn every_ferrolb_crd_is_established() {
    let lab = common::shared_lab().await;
    let crd_files = yaml_files(&workspace_path("deploy/crds")).expect("deploy/crds");
    assert!(!crd_files.is_empty(), "deploy/crds holds the CRDs");
    assert_eq!(lab.crds().len(), crd_files.len(), "one CRD per file");
    let api: Api<CustomResourceDefinition> = Api::all(lab.client().expect("client"));
    for name in lab.crds() {
        assert!(name.ends_with(".ferrolb.io"), "{name}");
        let crd = api.get(name).await.expect("CRD exists");
        assert!(is_established(&crd), "{name} Established");
    }
}

#[tokio::test]
async fn valid_examples_are_accepted_by_dry_run_and_for_real() {
    let lab = common::shared_lab().await;
    let client = lab.client().expect("client");
    let files = yaml_files(&workspace_path("deploy/examples")).expect("deploy/examples");
    assert!(!files.is_empty(), "deploy/examples holds examples");
    let mut applied = 0;
    for file in files {
        for manifest in read_manifests(&file).expect("example parses") {
            for persist in [Persist::DryRun, Persist::Store] {
                if let Err(error) = cluster::apply_manifest(&client, &manifest, persist).await {
                    panic!("{} ({persist:?}) rejected: {error}", file.display());
                }
            }
            applied += 1;
        }
    }
    println!("{applied} example objects accepted");
}

/// The field path a fixture declares on its first line: `# field: spec.addresses[0]`.
fn declared_field(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("fixture readable");
    let first = text.lines().next().unwrap_or_default();
    first
        .strip_prefix("# field:")
        .map(|field| field.trim().to_owned())
        .unwrap_or_else(|| panic!("{} lacks a first line `# field: <path>`", file.display()))
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_a_message_naming_the_field() {
    let lab = common::shared_lab().await;
    let client = lab.client().expect("client");
    let files = yaml_files(&workspace_path("config/tests/fixtures/invalid-per-object"))
        .expect("invalid fixtures");
    assert!(
        files.len() >= 15,
        "at least 15 invalid fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let field = declared_field(file);
        let manifests = read_manifests(file).expect("fixture parses as YAML");
        assert_eq!(
            manifests.len(),
            1,
            "{}: one object per fixture",
            file.display()
        );
        match cluster::create_manifest(&client, &manifests[0], Persist::DryRun).await {
            Ok(_) => failures.push(format!("{}: accepted", file.display())),
            Err(ClusterError::Api {
                source: kube::Error::Api(response),
                ..
            }) => {
                if !response.message.contains(&field) {
                    failures.push(format!(
                        "{}: message does not name {field}: {}",
                        file.display(),
                        response.message
                    ));
                }
            }
            Err(other) => failures.push(format!("{}: {other}", file.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{} invalid objects rejected naming their field",
        files.len()
    );
}

#[tokio::test]
async fn every_node_namespace_is_a_ready_node_with_both_internal_ips_and_a_zone() {
    let lab = common::shared_lab().await;
    let nodes: Api<Node> = Api::all(lab.client().expect("client"));
    let registrations = lab.node_registrations().expect("registrations");
    assert_eq!(registrations.len(), 3);
    for registration in registrations {
        let node = nodes.get(&registration.name).await.expect("Node exists");
        let labels = node.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get("kubernetes.io/hostname"),
            Some(&registration.name)
        );
        assert!(labels.contains_key("topology.kubernetes.io/zone"));
        let status = node.status.unwrap_or_default();
        let internal: Vec<String> = status
            .addresses
            .unwrap_or_default()
            .into_iter()
            .filter(|address| address.type_ == "InternalIP")
            .map(|address| address.address)
            .collect();
        let expected: Vec<String> = registration
            .internal_ips
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(internal, expected);
        assert_eq!(expected.len(), 2);
        assert!(
            status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True"),
            "{} Ready",
            registration.name
        );
    }
}
