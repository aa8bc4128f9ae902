//! ferrolb in layer-2 mode on a running lab, as the L2 end-to-end tests and the L2 failover
//! benchmark drive it: the controller and one `ferrolb-speaker` per node as processes
//! ([`Install`]), pools, advertisements, Services and EndpointSlices written with server-side
//! apply, the two views of "who owns this IP" (the node whose `SpeakerStatus` announces it and
//! the node whose backend answers the L2 client), and waits for what the speakers report: the
//! Service's `L2Announced` condition, their Events and metrics.
//!
//! Contract: every object written here carries the caller's label, so [`clear`] removes what an
//! earlier test or run left; processes stop when the [`Install`] is dropped (and the lab's reaper
//! stops them by pid on any other exit path, as for every lab process). A test that shares a lab
//! behind a lock declares its [`Install`] before the lock's guard, so the processes stop before
//! the next test takes the lock.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::binaries::{self, BinaryError, SpeakerOptions};
use crate::lab::{Lab, LabError};
use crate::netns::NsProcess;
use crate::topology::{self, Client, Topology, TopologyError};
use crate::workload;

/// Where the Services, EndpointSlices and the membership Secret live.
pub const NAMESPACE: &str = "default";
/// The heartbeat key every speaker of an [`Install`] reads.
const MEMBERSHIP_KEY: &[u8] = b"ferrolb-lab-l2-mode-heartbeat-key-0123456789";
/// The field manager of every write.
const FIELD_MANAGER: &str = "ferrolb-lab-l2";
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);
/// Lines of each process log printed when a test panics.
const LOG_TAIL: usize = 80;

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
    #[error("the speaker of node {index} exited (log {})", log.display())]
    Exited { index: usize, log: PathBuf },
    /// The processes did not settle; carries the tail of their logs, since they stop with the
    /// [`Install`] that the error replaces.
    #[error("{source}\n{logs}")]
    Unsettled {
        source: Box<L2ModeError>,
        logs: String,
    },
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
    controller: NsProcess,
    speakers: BTreeMap<usize, NsProcess>,
    /// The log of every process started, stopped and killed ones included.
    logs: Vec<PathBuf>,
    options: SpeakerOptions,
    label: String,
    starts: u32,
}

/// Stops the speakers, then the controller, before returning: a new speaker finding its node's
/// admin or membership port still taken would exit at once. When the thread panics (a failed
/// test), prints the tail of every process's log, since the lab's run directory goes with the lab.
impl Drop for Install {
    fn drop(&mut self) {
        for process in self.speakers.values_mut() {
            process.stop();
        }
        self.controller.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.logs(LOG_TAIL));
        }
    }
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
            logs: vec![controller.log().to_owned()],
            controller,
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
        self.logs.push(process.log().to_owned());
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

    /// The pid of node `index`'s speaker.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.speakers.get(&index).map(NsProcess::pid)
    }

    /// The membership port the speakers listen on.
    pub fn membership_port(&self) -> u16 {
        self.options.membership_port
    }

    /// The last `lines` lines of the log of every process this install started.
    fn logs(&self, lines: usize) -> String {
        self.logs
            .iter()
            .map(|log| {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let all: Vec<&str> = text.lines().collect();
                let tail = all[all.len().saturating_sub(lines)..].join("\n");
                format!("== {} (last lines)\n{tail}", log.display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The names of the nodes whose speaker runs.
    fn running_names(&self, lab: &Lab) -> Result<Vec<String>, L2ModeError> {
        let topology = lab.topology()?;
        self.speakers
            .keys()
            .map(|index| Ok(topology.node(*index)?.name.clone()))
            .collect()
    }

    /// Waits until every running speaker answers `/readyz`; fails at once when one exited.
    async fn wait_ready(&mut self, lab: &Lab, timeout: Duration) -> Result<(), L2ModeError> {
        let since = Instant::now();
        for (index, process) in &mut self.speakers {
            let what = format!("the speaker of node {index} ready");
            // Done when ready, or when it exited, which no wait undoes.
            let ready = poll(&what, since, timeout, POLL, async || {
                if !process.is_running() {
                    let log = process.log().to_owned();
                    return Ok(Err(L2ModeError::Exited { index: *index, log }));
                }
                binaries::speaker_ready(lab, *index)
                    .map(Ok)
                    .map_err(|error| error.to_string())
            });
            ready.await??;
        }
        Ok(())
    }

    /// Waits for a settled cluster: every running speaker ready, counting every other alive, and
    /// its interfaces published. Until a speaker is heard and has published its interfaces the
    /// others elect without it, and an owner seen then moves once it is known.
    pub async fn wait_settled(&mut self, lab: &Lab, timeout: Duration) -> Result<(), L2ModeError> {
        self.wait_ready(lab, timeout).await?;
        self.wait_members_alive(lab, timeout).await?;
        let running = self.running_names(lab)?;
        wait_interfaces_published(&lab.client()?, &running, timeout).await
    }

    /// Waits until every running speaker counts every other running one alive.
    pub async fn wait_members_alive(
        &self,
        lab: &Lab,
        timeout: Duration,
    ) -> Result<(), L2ModeError> {
        let others = self.speakers.len().saturating_sub(1) as f64;
        let what = format!("every speaker seeing {others} others alive");
        poll(&what, Instant::now(), timeout, POLL, async || {
            let seen: Vec<(usize, Option<f64>)> = self
                .speakers
                .keys()
                .map(|index| {
                    let alive = speaker_metric(lab, *index, "ferrolb_members_alive")
                        .ok()
                        .flatten();
                    (*index, alive)
                })
                .collect();
            if seen.iter().all(|(_, alive)| *alive == Some(others)) {
                Ok(())
            } else {
                Err(format!("members alive by node {seen:?}"))
            }
        })
        .await
    }
}

/// Waits until every node in `nodes` has published its interfaces in its `SpeakerStatus`: before
/// that the others elect without it, and the owner of a new IP may still move once.
async fn wait_interfaces_published(
    client: &kube::Client,
    nodes: &[String],
    timeout: Duration,
) -> Result<(), L2ModeError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &speaker_status_resource());
    let what = "every speaker publishing its interfaces";
    poll(what, Instant::now(), timeout, POLL, async || {
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
            Ok(())
        } else {
            Err(format!("not yet: {missing:?}"))
        }
    })
    .await
}

/// Calls `look` every `period` until it returns `Ok`, and returns that. Once `within` of `since`
/// has passed, fails with [`L2ModeError::Timeout`] for `what`, carrying what `look` last saw (its
/// `Err`).
async fn poll<T>(
    what: &str,
    since: Instant,
    within: Duration,
    period: Duration,
    mut look: impl AsyncFnMut() -> Result<T, String>,
) -> Result<T, L2ModeError> {
    loop {
        match look().await {
            Ok(value) => return Ok(value),
            Err(last) if since.elapsed() >= within => {
                return Err(L2ModeError::Timeout {
                    what: what.to_owned(),
                    after: within,
                    last,
                });
            }
            Err(_) => tokio::time::sleep(period).await,
        }
    }
}

/// Prepares the shared lab for a test and starts ferrolb on it, settled: clears what an earlier
/// test left (objects labelled `objects_label`, every SpeakerStatus), undoes the faults a failed
/// one may have left ([`reset_faults`]), then [`Install::start`]s the controller and a speaker on
/// every node of `nodes` and waits until they have settled ([`Install::wait_settled`]).
pub async fn start_afresh(
    lab: &mut Lab,
    label: &str,
    objects_label: &str,
    nodes: &[usize],
    options: SpeakerOptions,
    timeout: Duration,
) -> Result<Install, L2ModeError> {
    reset_faults(lab).await?;
    clear(&lab.client()?, objects_label).await?;
    let mut install = Install::start(lab, label, nodes, None, options).await?;
    match install.wait_settled(lab, timeout).await {
        Ok(()) => Ok(install),
        Err(source) => Err(L2ModeError::Unsettled {
            source: Box::new(source),
            logs: install.logs(LOG_TAIL),
        }),
    }
}

/// Undoes what a test that failed mid-fault may have left: the API server stopped, a node's
/// segment link down, a node cut off. Flushes the L2 client's neighbour table too: the next test
/// uses the same IPs, and the client must resolve them afresh.
pub async fn reset_faults(lab: &mut Lab) -> Result<(), L2ModeError> {
    lab.control_plane_mut()?
        .start_api_server()
        .await
        .map_err(LabError::from)?;
    let topology = lab.topology()?;
    for node in topology.nodes() {
        topology.set_node_link(node.index, true)?;
        if topology.is_isolated(node.index)? {
            topology.reconnect_node(node.index)?;
        }
    }
    topology
        .client_ns(Client::L2)?
        .ip(&["neigh", "flush", "all"])
        .map_err(TopologyError::from)?;
    Ok(())
}

/// The value of the first sample of `series` (name and labels, as printed) in Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// The value of `series` in node `index`'s speaker metrics; `None` while it has no sample.
pub fn speaker_metric(lab: &Lab, index: usize, series: &str) -> Result<Option<f64>, L2ModeError> {
    Ok(metric(&binaries::speaker_metrics(lab, index)?, series))
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

/// Applies the EndpointSlice `<service>-<family, lowercase>` of `family`: a ready endpoint on each
/// node of `nodes` (by index in `topology`), labelled `label`. Applying it again replaces the
/// endpoints.
pub async fn apply_endpoints(
    client: &kube::Client,
    topology: &Topology,
    label: &str,
    service: &str,
    family: &str,
    nodes: &[usize],
) -> Result<(), L2ModeError> {
    let nodes = nodes
        .iter()
        .map(|index| topology.node(*index))
        .collect::<Result<Vec<_>, _>>()?;
    let slice = workload::endpoint_slice(
        NAMESPACE,
        service,
        &family.to_lowercase(),
        family,
        &nodes,
        json!({label: "true"}),
    );
    let resource = ApiResource::erase::<EndpointSlice>(&());
    apply(client, &resource, true, &slice).await
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
    /// The MAC of another station that claimed `ip` while this node announced it, the latest seen.
    pub conflicting_mac: Option<String>,
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
                    conflicting_mac: a["conflictingMac"].as_str().map(str::to_owned),
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
    let running = install.running_names(lab)?;
    let what = format!("one owner of {ip}, announcing and answering");
    poll(&what, Instant::now(), timeout, POLL, async || {
        let owners: Vec<String> = status_owners(&client, ip)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|node| running.contains(node))
            .collect();
        let answering = answering_node(lab, ip, "0.5");
        match (&owners[..], answering) {
            ([owner], Some(answering)) if *owner == answering => Ok(answering),
            (_, answering) => Err(format!(
                "SpeakerStatus owners {owners:?}, answered by {answering:?}"
            )),
        }
    })
    .await
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

/// Polls the L2 client every 20 ms until a node other than `old` answers `ip`; returns it and the
/// time since `since` (when the fault happened). Fails when `within` of `since` has passed.
pub async fn wait_moved(
    lab: &Lab,
    ip: IpAddr,
    old: &str,
    since: Instant,
    within: Duration,
) -> Result<(String, Duration), L2ModeError> {
    let what = format!("another node than {old} answering {ip}");
    // A short period: the time it returns is the measured failover.
    poll(
        &what,
        since,
        within,
        Duration::from_millis(20),
        async || match answering_node(lab, ip, "0.3") {
            Some(node) if node != old => Ok((node, since.elapsed())),
            answering => Err(format!("answered by {answering:?}")),
        },
    )
    .await
}

/// The client's neighbour entry for `ip`, as a MAC.
pub fn client_neighbour_mac(lab: &Lab, ip: IpAddr) -> Result<Option<String>, L2ModeError> {
    let client = lab.topology()?.client_ns(Client::L2)?;
    Ok(topology::neighbours(client)?
        .into_iter()
        .find(|n| n.dst == ip)
        .and_then(|n| n.lladdr))
}

/// The MAC of node `index`'s segment interface.
pub fn segment_mac(lab: &Lab, index: usize) -> Result<String, L2ModeError> {
    let node = lab.topology()?.node(index)?;
    Ok(binaries::mac_of(&node.ns, &node.segment_if)?)
}

/// Waits until the Service's `ferrolb.io/L2Announced` condition is true and names `node`
/// (`node <name> ` in its message, as the speaker writes it); returns the message.
pub async fn wait_announced_condition(
    client: &kube::Client,
    service: &str,
    node: &str,
    timeout: Duration,
) -> Result<String, L2ModeError> {
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let what = format!("L2Announced of {service} naming {node}");
    poll(&what, Instant::now(), timeout, POLL, async || {
        let message = api
            .get(service)
            .await
            .ok()
            .and_then(|s| s.status?.conditions)
            .and_then(|conditions| {
                conditions
                    .into_iter()
                    .find(|c| c.type_ == "ferrolb.io/L2Announced" && c.status == "True")
            })
            .map(|c| c.message)
            .unwrap_or_default();
        if message.contains(&format!("node {node} ")) {
            Ok(message)
        } else {
            Err(format!("{message:?}"))
        }
    })
    .await
}

/// Waits for an Event the speaker reported with `reason` on Service `service`, whose note starts
/// with `note_start`.
pub async fn wait_speaker_event(
    client: &kube::Client,
    service: &str,
    reason: &str,
    note_start: &str,
    timeout: Duration,
) -> Result<(), L2ModeError> {
    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let matches = |event: &Event| {
        event.reporting_controller.as_deref() == Some("ferrolb-speaker")
            && event.reason.as_deref() == Some(reason)
            && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(service)
            && event
                .note
                .as_deref()
                .is_some_and(|note| note.starts_with(note_start))
    };
    let what = format!("a {reason} Event {note_start:?}… for {service}");
    poll(&what, Instant::now(), timeout, POLL, async || {
        match api.list(&ListParams::default()).await {
            Ok(list) if list.items.iter().any(matches) => Ok(()),
            Ok(list) => Err(format!("{} Events, none matching", list.items.len())),
            Err(error) => Err(error.to_string()),
        }
    })
    .await
}
