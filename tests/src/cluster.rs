//! What the lab puts into its cluster: ferrolb's CustomResourceDefinitions, one `Node` object per node
//! namespace, and arbitrary manifests (examples, fixtures) applied through API discovery.
//!
//! There is no kubelet and no controller-manager in the lab, so the harness plays their part for Node
//! objects: it creates each Node with its labels and writes its status (InternalIP addresses, Ready)
//! through the status subresource, exactly as a kubelet would report it. Every write is a server-side
//! apply under the field manager [`FIELD_MANAGER`], so repeating a step is harmless.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::json;

/// The field manager of every object the lab writes.
pub const FIELD_MANAGER: &str = "ferrolb-lab";

/// How long a CRD may take to become Established (the API server names-checks it, then serves it).
pub const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Failures applying objects to the lab cluster; each names the file or object involved.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A manifest file or directory could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is not valid YAML or not the expected shape.
    #[error("parsing {}: {detail}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A directory that should hold CRDs holds none.
    #[error("no CRD manifests (*.yaml) in {}", dir.display())]
    NoCrds {
        /// The directory.
        dir: PathBuf,
    },
    /// The API server refused a request about an object.
    #[error("{action} {object}: {source}")]
    Api {
        /// What was attempted, e.g. "applying".
        action: &'static str,
        /// `Kind/name`.
        object: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A CRD did not become Established in time.
    #[error("CRD {name} not Established after {after:?}")]
    NotEstablished {
        /// The CRD name.
        name: String,
        /// How long the lab waited.
        after: Duration,
    },
}

/// One YAML document of a manifest file, kept with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The file it was read from.
    pub source: PathBuf,
    /// The object.
    pub object: serde_json::Value,
}

impl Manifest {
    /// `Kind/name` for messages.
    pub fn describe(&self) -> String {
        let kind = self.object["kind"].as_str().unwrap_or("<no kind>");
        let name = self.object["metadata"]["name"]
            .as_str()
            .unwrap_or("<no name>");
        format!("{kind}/{name}")
    }

    /// `metadata.name`, which every object applied by name needs.
    pub fn name(&self) -> Result<&str, ClusterError> {
        self.object["metadata"]["name"]
            .as_str()
            .ok_or_else(|| ClusterError::Parse {
                path: self.source.clone(),
                detail: format!("{}: no metadata.name", self.describe()),
            })
    }
}

/// Reads every document of a (multi-document) YAML file; empty documents are skipped.
pub fn read_manifests(path: &Path) -> Result<Vec<Manifest>, ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClusterError::Read {
        path: path.to_owned(),
        source,
    })?;
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&text).map_err(|error| ClusterError::Parse {
            path: path.to_owned(),
            detail: error.to_string(),
        })?;
    Ok(documents
        .into_iter()
        .filter(|document| !document.is_null())
        .map(|object| Manifest {
            source: path.to_owned(),
            object,
        })
        .collect())
}

/// The `*.yaml` files of a directory, sorted by name (so runs apply them in the same order).
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, ClusterError> {
    let read_error = |source| ClusterError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Applies every CRD in `dir` (server-side apply) and waits until each is Established. Returns the CRD
/// names.
pub async fn apply_crds(client: &kube::Client, dir: &Path) -> Result<Vec<String>, ClusterError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for path in yaml_files(dir)? {
        for manifest in read_manifests(&path)? {
            let crd: CustomResourceDefinition = serde_json::from_value(manifest.object.clone())
                .map_err(|error| ClusterError::Parse {
                    path: path.clone(),
                    detail: format!(
                        "{}: not a CustomResourceDefinition: {error}",
                        manifest.describe()
                    ),
                })?;
            let name = crd
                .metadata
                .name
                .clone()
                .ok_or_else(|| ClusterError::Parse {
                    path: path.clone(),
                    detail: "CustomResourceDefinition without metadata.name".into(),
                })?;
            api.patch(&name, &apply_params(), &Patch::Apply(&crd))
                .await
                .map_err(|source| ClusterError::Api {
                    action: "applying",
                    object: format!("CustomResourceDefinition/{name}"),
                    source,
                })?;
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(ClusterError::NoCrds {
            dir: dir.to_owned(),
        });
    }
    for name in &names {
        wait_established(&api, name, ESTABLISH_TIMEOUT).await?;
    }
    Ok(names)
}

/// True once the CRD's `Established` condition is `True`.
pub fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Established" && condition.status == "True")
        })
}

/// Waits until the CRD `name` is Established, so objects of its kind can be created.
pub async fn wait_established(
    api: &Api<CustomResourceDefinition>,
    name: &str,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let started = Instant::now();
    loop {
        let crd = api.get(name).await.map_err(|source| ClusterError::Api {
            action: "reading",
            object: format!("CustomResourceDefinition/{name}"),
            source,
        })?;
        if is_established(&crd) {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(ClusterError::NotEstablished {
                name: name.to_owned(),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// A node of the lab as the cluster should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRegistration {
    /// The Node name (also its `kubernetes.io/hostname` label).
    pub name: String,
    /// Its InternalIP addresses (IPv4 and IPv6 on the node segment).
    pub internal_ips: Vec<IpAddr>,
    /// Extra labels, e.g. `topology.kubernetes.io/zone`.
    pub labels: BTreeMap<String, String>,
}

impl NodeRegistration {
    /// The Node object: standard well-known labels plus the extra ones.
    pub fn node(&self) -> serde_json::Value {
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_owned(), self.name.clone()),
            ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ]);
        labels.extend(self.labels.clone());
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": { "name": self.name, "labels": labels },
        })
    }

    /// The status a kubelet would report: addresses and a Ready condition.
    pub fn status(&self) -> serde_json::Value {
        let mut addresses: Vec<serde_json::Value> = self
            .internal_ips
            .iter()
            .map(|ip| json!({ "type": "InternalIP", "address": ip.to_string() }))
            .collect();
        addresses.push(json!({ "type": "Hostname", "address": self.name }));
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": { "name": self.name },
            "status": {
                "addresses": addresses,
                "conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "reason": "FerrolbLabNode",
                    "message": "lab node namespace is up",
                }],
            },
        })
    }
}

/// Creates or updates the Node object and its status.
pub async fn register_node(
    client: &kube::Client,
    node: &NodeRegistration,
) -> Result<Node, ClusterError> {
    let api: Api<Node> = Api::all(client.clone());
    let api_error = |action| {
        let object = format!("Node/{}", node.name);
        move |source| ClusterError::Api {
            action,
            object,
            source,
        }
    };
    api.patch(&node.name, &apply_params(), &Patch::Apply(node.node()))
        .await
        .map_err(api_error("applying"))?;
    // A JSON merge patch (RFC 7386) replaces the address list whole. Server-side apply cannot write
    // it: the API declares `status.addresses` a map keyed by `type`, so two InternalIPs (IPv4 and
    // IPv6) are "duplicate entries" to it.
    api.patch_status(
        &node.name,
        &PatchParams::default(),
        &Patch::Merge(node.status()),
    )
    .await
    .map_err(api_error("writing status of"))
}

/// Whether [`apply_manifest`] only validates (server-side dry run) or also persists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// Server-side dry run: admission and validation run, nothing is stored.
    DryRun,
    /// The object is stored.
    Store,
}

/// The API for a manifest's kind (found through discovery) in its namespace (`default` for namespaced
/// kinds that name none).
async fn api_for(
    client: &kube::Client,
    manifest: &Manifest,
) -> Result<Api<DynamicObject>, ClusterError> {
    let parse_error = |detail: String| ClusterError::Parse {
        path: manifest.source.clone(),
        detail: format!("{}: {detail}", manifest.describe()),
    };
    let api_version = manifest.object["apiVersion"]
        .as_str()
        .ok_or_else(|| parse_error("no apiVersion".into()))?;
    let kind = manifest.object["kind"]
        .as_str()
        .ok_or_else(|| parse_error("no kind".into()))?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) =
        kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|source| ClusterError::Api {
                action: "discovering the kind of",
                object: manifest.describe(),
                source,
            })?;
    Ok(match capabilities.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => {
            let namespace = manifest.object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
    })
}

/// Creates a manifest's object (or, with [`Persist::DryRun`], asks the API server whether it would).
/// A rejection is returned as [`ClusterError::Api`] with the API server's message, which names the
/// invalid field.
pub async fn create_manifest(
    client: &kube::Client,
    manifest: &Manifest,
    persist: Persist,
) -> Result<DynamicObject, ClusterError> {
    let api = api_for(client, manifest).await?;
    let object: DynamicObject =
        serde_json::from_value(manifest.object.clone()).map_err(|error| ClusterError::Parse {
            path: manifest.source.clone(),
            detail: format!("{}: {error}", manifest.describe()),
        })?;
    let params = PostParams {
        dry_run: persist == Persist::DryRun,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    api.create(&params, &object)
        .await
        .map_err(|source| ClusterError::Api {
            action: "creating",
            object: manifest.describe(),
            source,
        })
}

/// Server-side applies a manifest's object (or dry-runs the apply).
pub async fn apply_manifest(
    client: &kube::Client,
    manifest: &Manifest,
    persist: Persist,
) -> Result<DynamicObject, ClusterError> {
    let api = api_for(client, manifest).await?;
    let name = manifest.name()?;
    let params = match persist {
        Persist::DryRun => apply_params().dry_run(),
        Persist::Store => apply_params(),
    };
    api.patch(name, &params, &Patch::Apply(&manifest.object))
        .await
        .map_err(|source| ClusterError::Api {
            action: "applying",
            object: manifest.describe(),
            source,
        })
}

/// What a delete left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The object is gone.
    Gone,
    /// The object is still there, marked for deletion: its finalizers wait for a controller the lab
    /// does not run (a Namespace waits for kube-controller-manager's namespace controller).
    Finalizing,
}

/// Deletes a manifest's object (absent counts as deleted) and reports whether it is gone.
pub async fn delete_manifest(
    client: &kube::Client,
    manifest: &Manifest,
) -> Result<Removal, ClusterError> {
    let api = api_for(client, manifest).await?;
    let name = manifest.name()?;
    let api_error = |action| {
        let object = manifest.describe();
        move |source| ClusterError::Api {
            action,
            object,
            source,
        }
    };
    match api.delete(name, &Default::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(response)) if response.code == 404 => return Ok(Removal::Gone),
        Err(source) => return Err(api_error("deleting")(source)),
    }
    Ok(
        match api.get_opt(name).await.map_err(api_error("reading"))? {
            None => Removal::Gone,
            Some(_) => Removal::Finalizing,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_manifest_yields_every_object_and_skips_empty_documents() {
        let path =
            std::env::temp_dir().join(format!("ferrolb-manifest-{}.yaml", std::process::id()));
        std::fs::write(
            &path,
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n",
        )
        .expect("write");
        let manifests = read_manifests(&path).expect("parse");
        std::fs::remove_file(&path).expect("cleanup");
        let names: Vec<String> = manifests.iter().map(Manifest::describe).collect();
        assert_eq!(names, ["Namespace/a", "Namespace/b"]);
    }

    #[test]
    fn invalid_yaml_is_reported_with_its_file() {
        let path = std::env::temp_dir().join(format!("ferrolb-bad-{}.yaml", std::process::id()));
        std::fs::write(&path, "kind: [unclosed\n").expect("write");
        let error = read_manifests(&path).expect_err("invalid YAML");
        std::fs::remove_file(&path).expect("cleanup");
        assert!(
            matches!(&error, ClusterError::Parse { path: p, .. } if p == &path),
            "{error}"
        );
    }

    #[test]
    fn node_status_reports_both_families_as_internal_ips_and_ready() {
        let registration = NodeRegistration {
            name: "flb0000n1".into(),
            internal_ips: vec![
                "192.0.2.11".parse().expect("ip"),
                "2001:db8::11".parse().expect("ip"),
            ],
            labels: BTreeMap::from([("topology.kubernetes.io/zone".into(), "zone-a".into())]),
        };
        let node = registration.node();
        assert_eq!(
            node["metadata"]["labels"]["kubernetes.io/hostname"],
            "flb0000n1"
        );
        assert_eq!(
            node["metadata"]["labels"]["topology.kubernetes.io/zone"],
            "zone-a"
        );
        let status = registration.status();
        let addresses = &status["status"]["addresses"];
        assert_eq!(
            addresses[0],
            json!({"type": "InternalIP", "address": "192.0.2.11"})
        );
        assert_eq!(
            addresses[1],
            json!({"type": "InternalIP", "address": "2001:db8::11"})
        );
        assert_eq!(status["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(status["status"]["conditions"][0]["status"], "True");
    }
}
