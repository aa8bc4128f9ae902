//! ferrolb in layer-2 mode on a running lab, as the L2 scenario tests and the L2 failover
//! benchmark drive it: the controller and one `ferrolb-speaker` per node as processes
//! ([`Install`]), pools, advertisements, Services and EndpointSlices written with server-side
//! apply, and the two views of "who owns this IP": the node whose `SpeakerStatus` announces it and
//! the node whose backend answers the L2 client.
//!
//! Contract: every object written here carries the caller's label, so [`clear`] removes what an
//! earlier test or run left; processes stop when the [`Install`] is dropped (and the lab's reaper
//! stops them by pid on any other exit path, as for every lab process).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::binaries::{self, BinaryError, SpeakerOptions};
use crate::lab::{Lab, LabError};
use crate::netns::NsProcess;
use crate::topology::{self, Client, TopologyError};
use crate::workload;

/// Where the Services, EndpointSlices and the membership Secret live.
pub const NAMESPACE: &str = "default";
/// The heartbeat key every speaker of an [`Install`] reads.
const MEMBERSHIP_KEY: &[u8] = b"ferrolb-lab-l2-mode-heartbeat-key-0123456789";
/// The field manager of every write.
const FIELD_MANAGER: &str = "ferrolb-lab-l2";

/// Failures of driving layer-2 mode in the lab.
#[derive(Debug, thiserror::Error)]
pub enum L2ModeError {
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what} not reached within {after:?} (last seen: {last})")]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },
    #[error("no speaker runs on node {index}")]
    NotRunning { index: usize },
    #[error("signalling pid {pid}: {source}")]
    Signal { pid: u32, source: nix::Error },
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> L2ModeError {
    let what = what.into();
    move |source| L2ModeError::Kube { what, source }
}

/// The controller and the speakers of one test or benchmark run.
#[derive(Debug)]
pub struct Install {
    _controller: NsProcess,
    speakers: BTreeMap<usize, NsProcess>,
    options: SpeakerOptions,
    label: String,
    starts: u32,
}

impl Install {
    /// Writes the membership Secret, then starts the controller (`controller`, or the one next
    /// to the running executable; its own Lease, named after `label`) and a speaker on every
    /// node of `nodes` with `options` (its namespace is set here).
    pub async fn start(
        lab: &mut Lab,
        label: &str,
        nodes: &[usize],
        controller: Option<&Path>,
        options: SpeakerOptions,
    ) -> Result<Install, L2ModeError> {
        let client = lab.client()?;
        binaries::write_membership_secret(
            &client,
            NAMESPACE,
            &options.membership_secret,
            MEMBERSHIP_KEY,
        )
        .await?;
        let (identity, lease) = (format!("l2-{label}"), format!("ferrolb-l2-{label}"));
        let controller = match controller {
            Some(program) => {
                binaries::start_controller_from(lab, program, &identity, NAMESPACE, &lease)?
            }
            None => binaries::start_controller(lab, &identity, NAMESPACE, &lease)?,
        };
        let mut install = Install {
            _controller: controller,
            speakers: BTreeMap::new(),
            options: SpeakerOptions {
                namespace: NAMESPACE.into(),
                ..options
            },
            label: label.to_owned(),
            starts: 0,
        };
        for index in nodes {
            install.start_speaker(lab, *index)?;
        }
        Ok(install)
    }

    /// Starts (or restarts) the speaker of node `index`.
    pub fn start_speaker(&mut self, lab: &mut Lab, index: usize) -> Result<(), L2ModeError> {
        self.starts += 1;
        let label = format!("{}-{}", self.label, self.starts);
        let process = binaries::start_speaker(lab, index, &label, &self.options)?;
        self.speakers.insert(index, process);
        Ok(())
    }

    /// Sends `signal` to node `index`'s speaker and forgets it (dropping reaps it).
    pub fn signal_speaker(&mut self, index: usize, signal: Signal) -> Result<(), L2ModeError> {
        let process = self
            .speakers
            .remove(&index)
            .ok_or(L2ModeError::NotRunning { index })?;
        let pid = process.pid();
        let raw = i32::try_from(pid).map_err(|_| L2ModeError::Signal {
            pid,
            source: nix::Error::EINVAL,
        })?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal)
            .map_err(|source| L2ModeError::Signal { pid, source })?;
        drop(process);
        Ok(())
    }

    /// The nodes whose speaker runs.
    pub fn running(&self) -> Vec<usize> {
        self.speakers.keys().copied().collect()
    }

    /// The pid of node `index`'s speaker.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.speakers.get(&index).map(NsProcess::pid)
    }

    /// The last `lines` lines of every running speaker's log, for failure messages.
    pub fn logs(&self, lines: usize) -> String {
        self.speakers
            .values()
            .map(|process| {
                let text = std::fs::read_to_string(process.log()).unwrap_or_default();
                let all: Vec<&str> = text.lines().collect();
                let tail = all[all.len().saturating_sub(lines)..].join("\n");
                format!("== {}\n{tail}", process.log().display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until every running speaker counts every other running one alive.
    pub async fn wait_members_alive(
        &self,
        lab: &Lab,
        timeout: Duration,
    ) -> Result<(), L2ModeError> {
        let others = self.speakers.len().saturating_sub(1) as f64;
        let deadline = Instant::now() + timeout;
        loop {
            let seen: Vec<(usize, Option<f64>)> = self
                .speakers
                .keys()
                .map(|index| {
                    let alive = binaries::speaker_metrics(lab, *index)
                        .ok()
                        .and_then(|text| metric(&text, "ferrolb_members_alive"));
                    (*index, alive)
                })
                .collect();
            if seen.iter().all(|(_, alive)| *alive == Some(others)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(L2ModeError::Timeout {
                    what: format!("every speaker seeing {others} others alive"),
                    after: timeout,
                    last: format!("members alive by node {seen:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits until every node in `nodes` has published its interfaces in its `SpeakerStatus`: before
/// that the others elect without it, and the owner of a new IP may still move once.
pub async fn wait_interfaces_published(
    client: &kube::Client,
    nodes: &[String],
    timeout: Duration,
) -> Result<(), L2ModeError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &speaker_status_resource());
    let deadline = Instant::now() + timeout;
    loop {
        let mut missing = Vec::new();
        for node in nodes {
            let published = api.get_opt(node).await.ok().flatten().is_some_and(|s| {
                s.data["status"]["interfaces"]
                    .as_array()
                    .is_some_and(|list| !list.is_empty())
            });
            if !published {
                missing.push(node.clone());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(L2ModeError::Timeout {
                what: "every speaker publishing its interfaces".into(),
                after: timeout,
                last: format!("not yet: {missing:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the first sample of `series` (name and labels, as printed) in Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Server-side apply of one object of `resource` (namespaced in [`NAMESPACE`] when
/// `namespaced`).
async fn apply(
    client: &kube::Client,
    resource: &ApiResource,
    namespaced: bool,
    object: &Value,
) -> Result<(), L2ModeError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), NAMESPACE, resource)
    } else {
        Api::all_with(client.clone(), resource)
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(kube_error(format!("applying {} {name}", resource.kind)))?;
    Ok(())
}

fn ferrolb_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "ferrolb.io".into(),
        version: "v1beta1".into(),
        api_version: "ferrolb.io/v1beta1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Applies an IPAddressPool `name` with `addresses`, labelled `label`.
pub async fn apply_pool(
    client: &kube::Client,
    label: &str,
    name: &str,
    addresses: &[&str],
) -> Result<(), L2ModeError> {
    let pool = json!({
        "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "labels": {label: "true"}},
        "spec": {"addresses": addresses},
    });
    let resource = ferrolb_resource("IPAddressPool", "ipaddresspools");
    apply(client, &resource, false, &pool).await
}

/// Applies an L2Advertisement `name` with `spec`, labelled `label`.
pub async fn apply_advertisement(
    client: &kube::Client,
    label: &str,
    name: &str,
    spec: Value,
) -> Result<(), L2ModeError> {
    let advertisement = json!({
        "apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": name, "labels": {label: "true"}},
        "spec": spec,
    });
    let resource = ferrolb_resource("L2Advertisement", "l2advertisements");
    apply(client, &resource, false, &advertisement).await
}

/// Applies a Service built by [`workload::load_balancer`] (labels included).
pub async fn apply_service(client: &kube::Client, service: &Value) -> Result<(), L2ModeError> {
    apply(client, &ApiResource::erase::<Service>(&()), true, service).await
}

/// Applies an EndpointSlice built by [`workload::endpoint_slice`].
pub async fn apply_endpoint_slice(client: &kube::Client, slice: &Value) -> Result<(), L2ModeError> {
    apply(
        client,
        &ApiResource::erase::<EndpointSlice>(&()),
        true,
        slice,
    )
    .await
}

/// Deletes every Service, EndpointSlice, L2Advertisement and IPAddressPool labelled `label`, and
/// every `SpeakerStatus` (they outlive their speakers, and a stale one would name an owner no
/// running speaker chose). Call it while no speaker runs.
pub async fn clear(client: &kube::Client, label: &str) -> Result<(), L2ModeError> {
    let labelled = ListParams::default().labels(label);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    // Services have no delete-collection endpoint.
    let listed = services
        .list(&labelled)
        .await
        .map_err(kube_error("listing Services"))?;
    for name in listed
        .items
        .iter()
        .filter_map(|s| s.metadata.name.as_deref())
    {
        services
            .delete(name, &DeleteParams::default())
            .await
            .map_err(kube_error(format!("deleting Service {name}")))?;
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    slices
        .delete_collection(&DeleteParams::default(), &labelled)
        .await
        .map_err(kube_error("deleting EndpointSlices"))?;
    for (kind, plural) in [
        ("L2Advertisement", "l2advertisements"),
        ("IPAddressPool", "ipaddresspools"),
    ] {
        let api: Api<DynamicObject> =
            Api::all_with(client.clone(), &ferrolb_resource(kind, plural));
        api.delete_collection(&DeleteParams::default(), &labelled)
            .await
            .map_err(kube_error(format!("deleting {kind}s")))?;
    }
    Api::<DynamicObject>::all_with(client.clone(), &speaker_status_resource())
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .map_err(kube_error("deleting SpeakerStatuses"))?;
    Ok(())
}

/// One layer-2 announcement as a node's `SpeakerStatus` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub node: String,
    pub ip: String,
    /// `namespace/name`.
    pub service: String,
    pub interface: String,
}

/// Every layer-2 announcement of every `SpeakerStatus`.
pub async fn announcements(client: &kube::Client) -> Result<Vec<Announcement>, L2ModeError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &speaker_status_resource());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(kube_error("listing SpeakerStatuses"))?;
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    Ok(list
        .items
        .iter()
        .flat_map(|status| {
            let node = text(&status.data["spec"]["nodeName"]);
            status.data["status"]["l2Announcements"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |a| Announcement {
                    node: node.clone(),
                    ip: text(&a["ip"]),
                    service: text(&a["service"]),
                    interface: text(&a["interface"]),
                })
        })
        .collect())
}

/// The nodes whose `SpeakerStatus` lists `ip` among its layer-2 announcements.
pub async fn status_owners(client: &kube::Client, ip: IpAddr) -> Result<Vec<String>, L2ModeError> {
    let wanted = ip.to_string();
    let mut owners: Vec<String> = announcements(client)
        .await?
        .into_iter()
        .filter(|a| a.ip == wanted)
        .map(|a| a.node)
        .collect();
    owners.sort();
    owners.dedup();
    Ok(owners)
}

fn speaker_status_resource() -> ApiResource {
    ferrolb_resource("SpeakerStatus", "speakerstatuses")
}

/// Waits until exactly one running node announces `ip` in its `SpeakerStatus` and the L2 client
/// reaches `ip` on that node; returns it.
pub async fn wait_owner(
    lab: &Lab,
    install: &Install,
    ip: IpAddr,
    timeout: Duration,
) -> Result<String, L2ModeError> {
    let client = lab.client()?;
    let topology = lab.topology()?;
    let running: Vec<String> = install
        .running()
        .into_iter()
        .filter_map(|index| Some(topology.node(index).ok()?.name.clone()))
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        let owners: Vec<String> = status_owners(&client, ip)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|node| running.contains(node))
            .collect();
        let answering = answering_node(lab, ip, "0.5");
        if let ([owner], Some(answering)) = (&owners[..], &answering)
            && owner == answering
        {
            return Ok(owner.clone());
        }
        if Instant::now() >= deadline {
            return Err(L2ModeError::Timeout {
                what: format!("one owner of {ip}, announcing and answering"),
                after: timeout,
                last: format!("SpeakerStatus owners {owners:?}, answered by {answering:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (VmRSS, VmHWM) of process `pid` in KiB, from `/proc/<pid>/status`.
pub fn memory_kib(pid: u32) -> std::io::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("{name} in /proc/{pid}/status")))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// One short request from the L2 client to `ip`: the answering node's name, or `None`.
pub fn answering_node(lab: &Lab, ip: IpAddr, max_time: &str) -> Option<String> {
    let topology = lab.topology().ok()?;
    let client = topology.client_ns(Client::L2).ok()?;
    topology::curl_within(client, &workload::url(ip), max_time)
        .ok()
        .map(|body| body.trim().to_owned())
        .filter(|body| !body.is_empty())
}
