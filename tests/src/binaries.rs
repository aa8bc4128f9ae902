//! ferrolb's own binaries as lab processes: `ferrolb-controller` in the control-plane namespace and
//! `ferrolb-speaker` inside a node namespace (the node's "host network"), both with the in-lab
//! kubeconfig, which reaches the API server over the management network from every lab namespace.
//!
//! Every process is recorded in the lab's state file as soon as it starts, so the reaper and
//! `lab down` stop it by pid on any exit path; dropping the returned [`NsProcess`] stops it too
//! (SIGTERM, then SIGKILL).
//!
//! The binaries are looked up next to the running executable's directory (`target/<profile>/`):
//! `cargo test --workspace` builds them, since their crates have integration tests of their own.

use std::path::PathBuf;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::cluster::FIELD_MANAGER;
use crate::lab::{Lab, LabError};
use crate::netns::{NetNs, NetnsError, NsProcess, RunPrefix};
use crate::topology::TopologyError;

/// The speaker's admin port inside each node namespace (the chart's default).
pub const SPEAKER_ADMIN_PORT: u16 = 7473;

/// A ferrolb process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{binary} not found at {path}: build it with `cargo build -p {package}`")]
    Missing {
        binary: &'static str,
        package: &'static str,
        path: PathBuf,
    },
    #[error("locating the target directory from the running executable: {0}")]
    TargetDir(std::io::Error),
    #[error("starting {what}: {source}")]
    Spawn { what: String, source: NetnsError },
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("writing Secret {name}: {source}")]
    Secret { name: String, source: kube::Error },
}

/// `target/<profile>/<binary>`: next to the running executable (the `lab` binary), or next to
/// its `deps/` directory (a test executable).
pub fn binary(binary: &'static str, package: &'static str) -> Result<PathBuf, BinaryError> {
    let exe = std::env::current_exe().map_err(BinaryError::TargetDir)?;
    let dir = exe
        .parent()
        .and_then(|dir| {
            if dir.file_name().is_some_and(|name| name == "deps") {
                dir.parent()
            } else {
                Some(dir)
            }
        })
        .ok_or_else(|| BinaryError::TargetDir(std::io::Error::other("no target directory")))?;
    let path = dir.join(binary);
    if !path.exists() {
        return Err(BinaryError::Missing {
            binary,
            package,
            path,
        });
    }
    Ok(path)
}

/// How to run one speaker.
#[derive(Debug, Clone)]
pub struct SpeakerOptions {
    /// ferrolb's namespace (the membership Secret lives there).
    pub namespace: String,
    pub membership_secret: String,
    pub membership_port: u16,
    /// `RUST_LOG`-style filter.
    pub log_level: String,
    /// Appended to the command line.
    pub extra_args: Vec<String>,
    /// The `ferrolb-speaker` executable; `None` runs the one built next to the running executable
    /// (a benchmark passes a release build here).
    pub program: Option<PathBuf>,
}

impl Default for SpeakerOptions {
    fn default() -> Self {
        SpeakerOptions {
            namespace: "default".into(),
            membership_secret: "ferrolb-membership".into(),
            membership_port: 7946,
            log_level: "info,ferrolb_speaker=debug".into(),
            extra_args: Vec::new(),
            program: None,
        }
    }
}

/// Creates or replaces the membership Secret (key `key`, `bytes` long at least 32).
pub async fn write_membership_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &[u8],
) -> Result<(), BinaryError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"key": ByteString(key.to_vec())},
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await
    .map_err(|source| BinaryError::Secret {
        name: name.to_owned(),
        source,
    })?;
    Ok(())
}

/// Starts `ferrolb-speaker` in node `index`'s namespace (as that Node), logging to the run
/// directory as `speaker-<node>-<label>.log`.
pub fn start_speaker(
    lab: &mut Lab,
    index: usize,
    label: &str,
    options: &SpeakerOptions,
) -> Result<NsProcess, BinaryError> {
    let program = match &options.program {
        Some(program) => program.clone(),
        None => binary("ferrolb-speaker", "ferrolb-speaker")?,
    };
    let state = lab.state().clone();
    let (node_name, ns_name) = {
        let node = lab.topology()?.node(index)?;
        (node.name.clone(), node.ns.name().to_owned())
    };
    let log = RunPrefix::parse(&state.prefix)?
        .run_dir()
        .join(format!("speaker-{node_name}-{label}.log"));
    let mut argv = vec![
        program.display().to_string(),
        "--kubeconfig".into(),
        state.lab_kubeconfig.display().to_string(),
        "--node-name".into(),
        node_name.clone(),
        "--namespace".into(),
        options.namespace.clone(),
        "--membership-secret".into(),
        options.membership_secret.clone(),
        "--membership-port".into(),
        options.membership_port.to_string(),
        "--admin-addr".into(),
        format!("127.0.0.1:{SPEAKER_ADMIN_PORT}"),
        "--bgp-listen".into(),
        String::new(),
        "--log-level".into(),
        options.log_level.clone(),
    ];
    argv.extend(options.extra_args.iter().cloned());
    let process = NetNs::adopt(&ns_name)
        .spawn(&argv, &log)
        .map_err(|source| BinaryError::Spawn {
            what: format!("the speaker of {node_name}"),
            source,
        })?;
    lab.record_process(&format!("speaker {node_name} {label}"), process.pid())?;
    Ok(process)
}

/// Starts `ferrolb-controller` in the control-plane namespace with its own Lease `lease` (so
/// several test binaries never share one), logging to `controller-<label>.log`.
pub fn start_controller(
    lab: &mut Lab,
    label: &str,
    lease_namespace: &str,
    lease: &str,
) -> Result<NsProcess, BinaryError> {
    let program = binary("ferrolb-controller", "ferrolb-controller")?;
    start_controller_from(lab, &program, label, lease_namespace, lease)
}

/// [`start_controller`] with another binary (a benchmark passes a release build).
pub fn start_controller_from(
    lab: &mut Lab,
    program: &std::path::Path,
    label: &str,
    lease_namespace: &str,
    lease: &str,
) -> Result<NsProcess, BinaryError> {
    let state = lab.state().clone();
    let log = RunPrefix::parse(&state.prefix)?
        .run_dir()
        .join(format!("controller-{label}.log"));
    let argv = vec![
        program.display().to_string(),
        "--kubeconfig".into(),
        state.lab_kubeconfig.display().to_string(),
        "--identity".into(),
        label.to_owned(),
        "--lease-namespace".into(),
        lease_namespace.to_owned(),
        "--lease-name".into(),
        lease.to_owned(),
        "--lease-duration".into(),
        "3s".into(),
        "--renew-deadline".into(),
        "2s".into(),
        "--retry-period".into(),
        "250ms".into(),
        "--admin-addr".into(),
        "127.0.0.1:0".into(),
        "--log-level".into(),
        "info,ferrolb_controller=debug".into(),
    ];
    let process = NetNs::adopt(&state.control_plane_namespace)
        .spawn(&argv, &log)
        .map_err(|source| BinaryError::Spawn {
            what: "the controller".into(),
            source,
        })?;
    lab.record_process(&format!("controller {label}"), process.pid())?;
    Ok(process)
}

/// The speaker's `/metrics` text, fetched inside node `index`'s namespace.
pub fn speaker_metrics(lab: &Lab, index: usize) -> Result<String, BinaryError> {
    speaker_admin_get(lab, index, "/metrics")
}

/// `Ok` once node `index`'s speaker answers `/readyz` with success (caches synced, first state
/// applied); an error while it is not ready or not listening.
pub fn speaker_ready(lab: &Lab, index: usize) -> Result<(), BinaryError> {
    speaker_admin_get(lab, index, "/readyz").map(drop)
}

/// GET `path` from the speaker's admin server inside node `index`'s namespace; an HTTP error
/// status is an error.
fn speaker_admin_get(lab: &Lab, index: usize, path: &str) -> Result<String, BinaryError> {
    let node = lab.topology()?.node(index)?;
    Ok(node.ns.exec(&[
        "curl",
        "-sSf",
        "--max-time",
        "5",
        &format!("http://127.0.0.1:{SPEAKER_ADMIN_PORT}{path}"),
    ])?)
}

/// The MAC address of `interface` in `ns` (`ip -j link show`).
pub fn mac_of(ns: &NetNs, interface: &str) -> Result<String, BinaryError> {
    let out = ns.ip(&["-j", "link", "show", "dev", interface])?;
    let links: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    Ok(links
        .first()
        .and_then(|link| link.get("address"))
        .and_then(|address| address.as_str())
        .unwrap_or_default()
        .to_owned())
}
