//! The whole lab as one value: the network ([`Topology`]), the control plane ([`ControlPlane`]) in
//! its namespace, ferrolb's CRDs applied, and every node registered as a `Node` object.
//!
//! Lifecycle contract:
//! - [`Lab::start`] first removes stale runs (namespaces and run directories of earlier runs whose
//!   owning process is gone, see [`netns::sweep_stale`]), then builds everything under a fresh
//!   run-unique prefix. If any step fails, what was built is removed before the error is returned.
//! - [`Lab::destroy`] (and `Drop`) stops the control plane, then the topology removes every process by
//!   pid and every namespace by name. A lab that is never dropped — the one shared by a test binary
//!   lives in a `static` — is cleaned up by its *reaper*: a small child process (`lab reap <prefix>`,
//!   in its own process group so Ctrl-C does not reach it) that waits for end-of-file on a pipe from
//!   this process. The kernel closes the pipe however this process ends (normal exit, panic, signal,
//!   SIGKILL), and the reaper then runs [`down`] for the prefix.
//! - [`Lab::detach`] leaves everything running for `lab up`: the reaper is told to stand down, and the
//!   run's `state.json` records the prefix, namespaces and pids so that [`down`] (from `lab down`, a
//!   different process) removes them by name and pid.
//!
//! Extension points: [`Lab::record_process`] adds the pid of any process a later part of the harness
//! starts (controller, speakers) to the state file, so `lab down` and the reaper find it;
//! [`Lab::control_plane_mut`] stops and starts the API server.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cluster::{self, ClusterError, NodeRegistration};
use crate::control_plane::{ControlPlane, ControlPlaneConfig, ControlPlaneError};
use crate::netns::{self, NetnsError, RunPrefix};
use crate::topology::{Topology, TopologyError, TopologyOptions};
use crate::versions::{ControlPlaneBinaries, VersionsError};

/// The name of the state file in a run directory.
pub const STATE_FILE: &str = "state.json";

/// The line that tells a reaper the lab was detached on purpose and must be left running.
const REAPER_STAND_DOWN: &str = "detach";

/// Zones the nodes are spread over, round-robin (`topology.kubernetes.io/zone`), so that
/// topology-aware behaviour has something to work with.
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// Failures of the lab as a whole.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The network could not be built or removed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The control plane failed.
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    /// Applying CRDs or registering nodes failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The control-plane binaries are not built.
    #[error(transparent)]
    Versions(#[from] VersionsError),
    /// A namespace or process command failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The reaper process could not be started or told to stand down.
    #[error("reaper {}: {source}", program.display())]
    Reaper {
        /// The `lab` binary.
        program: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The state file could not be read or written.
    #[error("state file {}: {detail}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A part of the lab was used after `destroy` or `detach` handed it over.
    #[error("the lab's {what} was already destroyed or detached")]
    Gone {
        /// Which part.
        what: &'static str,
    },
    /// A blocking step panicked or was cancelled.
    #[error("{step} did not complete: {detail}")]
    Join {
        /// The step.
        step: &'static str,
        /// The join error.
        detail: String,
    },
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The network: node count, routers, prefix, backend binary.
    pub topology: TopologyOptions,
    /// Directory of ferrolb's CRD manifests (`deploy/crds` of the workspace).
    pub crds: PathBuf,
    /// The `lab` binary, started as the reaper (`lab reap <prefix>`). `None` starts no reaper: the
    /// caller then guarantees [`Lab::destroy`] or [`Lab::detach`] runs.
    pub reaper: Option<PathBuf>,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            topology: TopologyOptions::default(),
            crds: default_crds_dir(),
            reaper: None,
        }
    }
}

impl LabOptions {
    /// The default lab (3 nodes, every router) with this package's `lab-backend` and `lab` (the
    /// reaper) binaries, which tests and benchmarks name with `env!("CARGO_BIN_EXE_…")`.
    pub fn with_binaries(backend: PathBuf, reaper: PathBuf) -> Self {
        Self {
            topology: TopologyOptions {
                backend: Some(backend),
                ..TopologyOptions::default()
            },
            reaper: Some(reaper),
            ..Self::default()
        }
    }
}

/// `deploy/crds` of the workspace this crate was built in.
pub fn default_crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
}

/// A process of a run, recorded so that another process can stop it safely: the start time (in clock
/// ticks since boot, `/proc/<pid>/stat` field 22) tells a reused pid from the original process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// What it is (`etcd`, `kube-apiserver`, `speaker node-1`, …).
    pub role: String,
    /// Its pid.
    pub pid: u32,
    /// Its start time, if it could be read when recorded.
    pub start_ticks: Option<u64>,
}

impl ProcessRecord {
    /// Records `pid` with its current start time.
    pub fn new(role: &str, pid: u32) -> Self {
        Self {
            role: role.to_owned(),
            pid,
            start_ticks: process_start_ticks(pid),
        }
    }

    /// True while the recorded process (not a later one with the same pid) is alive.
    pub fn is_alive(&self) -> bool {
        netns::pid_alive(self.pid)
            && (self.start_ticks.is_none() || process_start_ticks(self.pid) == self.start_ticks)
    }
}

/// `/proc/<pid>/stat` field 22 (starttime). The command name (field 2) may contain spaces and
/// parentheses, so fields are counted after the last `)`.
fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

fn parse_start_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // After the name come field 3 (state) onwards: field 22 is the 20th of them.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Everything another process needs to find and remove a run: `<run dir>/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The run prefix.
    pub prefix: String,
    /// Every namespace of the run.
    pub namespaces: Vec<String>,
    /// Every process of the run.
    pub processes: Vec<ProcessRecord>,
    /// Node names (as registered in Kubernetes) and their namespaces.
    pub nodes: BTreeMap<String, String>,
    /// The API server URL inside the lab.
    pub api_url: String,
    /// The API server's address inside the lab.
    pub api_address: SocketAddr,
    /// Kubeconfig for processes inside lab namespaces.
    pub lab_kubeconfig: PathBuf,
    /// The CA certificate and the admin token file (for curl).
    pub ca_cert: PathBuf,
    /// The admin bearer token file.
    pub admin_token: PathBuf,
    /// The namespace the control plane runs in.
    pub control_plane_namespace: String,
}

impl LabState {
    /// The state file of `prefix`.
    pub fn path(prefix: &RunPrefix) -> PathBuf {
        prefix.run_dir().join(STATE_FILE)
    }

    /// Reads the state of `prefix`.
    pub fn read(prefix: &RunPrefix) -> Result<Self, LabError> {
        let path = Self::path(prefix);
        let state_error = |detail: String| LabError::State {
            path: path.clone(),
            detail,
        };
        let text = fs::read_to_string(&path).map_err(|error| state_error(error.to_string()))?;
        serde_json::from_str(&text).map_err(|error| state_error(error.to_string()))
    }

    fn write(&self) -> Result<(), LabError> {
        let prefix = RunPrefix::parse(&self.prefix)?;
        let path = Self::path(&prefix);
        let state_error = |detail: String| LabError::State {
            path: path.clone(),
            detail,
        };
        let text =
            serde_json::to_string_pretty(self).map_err(|error| state_error(error.to_string()))?;
        // Write-then-rename: a concurrent `lab status` never reads half a file.
        let temporary = path.with_extension("json.tmp");
        fs::write(&temporary, text)
            .and_then(|()| fs::rename(&temporary, &path))
            .map_err(|error| state_error(error.to_string()))
    }
}

/// How long each start-up phase took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabTimings {
    /// Namespaces, links, routers, backends.
    pub topology: Duration,
    /// etcd and kube-apiserver until `/readyz`.
    pub control_plane: Duration,
    /// CRDs Established and Nodes registered.
    pub cluster_objects: Duration,
    /// The whole [`Lab::start`].
    pub total: Duration,
}

/// A running lab; see the module documentation.
#[derive(Debug)]
pub struct Lab {
    // Field order is drop order: the control plane stops before the topology deletes its namespace.
    control_plane: Option<ControlPlane>,
    topology: Option<Topology>,
    reaper: Option<Reaper>,
    state: LabState,
    crds: Vec<String>,
    timings: LabTimings,
}

impl Lab {
    /// Builds a lab; see the module documentation.
    pub async fn start(options: LabOptions) -> Result<Self, LabError> {
        let started = Instant::now();
        let binaries = ControlPlaneBinaries::locate()?;
        // Housekeeping, not a precondition: a stale run may be being removed at this very moment by
        // its own reaper (the previous test binary just exited), and the two removals then trip over
        // each other's deletions. The new lab's names are its own either way.
        let swept = blocking("sweeping stale runs", || {
            netns::sweep_stale(&format!("{}*", netns::PREFIX_LEAD))
        })
        .await?;
        if let Err(error) = swept {
            tracing::warn!(%error, "sweeping stale lab runs failed; starting the new lab anyway");
        }

        let mut topology_options = options.topology.clone();
        let prefix = topology_options
            .prefix
            .get_or_insert_with(RunPrefix::random)
            .clone();
        // The reaper starts before the first namespace exists, so no exit path can leak one.
        let reaper = options
            .reaper
            .as_deref()
            .map(|program| Reaper::start(program, &prefix))
            .transpose()?;
        match Self::assemble(&options, topology_options, binaries, started).await {
            Ok(mut lab) => {
                lab.reaper = reaper;
                Ok(lab)
            }
            Err(error) => {
                // `assemble` removed what it built; the reaper's sweep finds nothing left.
                if let Some(reaper) = reaper {
                    reaper.finish();
                }
                Err(error)
            }
        }
    }

    /// The steps of [`Lab::start`] after the reaper: on failure, everything built is removed.
    async fn assemble(
        options: &LabOptions,
        topology_options: TopologyOptions,
        binaries: ControlPlaneBinaries,
        started: Instant,
    ) -> Result<Self, LabError> {
        let topology = blocking("building the topology", move || {
            Topology::up(topology_options)
        })
        .await??;
        let topology_done = started.elapsed();

        let control_plane = ControlPlane::start(ControlPlaneConfig {
            netns: topology.control_plane_ns()?.clone(),
            advertise: IpAddr::V4(topology.api_address()),
            dir: topology.dir().join("control-plane"),
            binaries,
        })
        .await;
        let control_plane = match control_plane {
            Ok(control_plane) => control_plane,
            Err(error) => {
                destroy_topology(topology).await?;
                return Err(error.into());
            }
        };
        let control_plane_done = started.elapsed();

        let mut lab = Self {
            state: initial_state(&topology, &control_plane)?,
            control_plane: Some(control_plane),
            topology: Some(topology),
            reaper: None,
            crds: Vec::new(),
            timings: LabTimings {
                topology: topology_done,
                control_plane: control_plane_done - topology_done,
                cluster_objects: Duration::ZERO,
                total: Duration::ZERO,
            },
        };
        lab.state.write()?;
        // From here on, a failure drops `lab`, which removes everything.
        let client = lab.client()?;
        lab.crds = cluster::apply_crds(&client, &options.crds).await?;
        for registration in lab.node_registrations()? {
            cluster::register_node(&client, &registration).await?;
        }
        lab.timings.cluster_objects = started.elapsed() - control_plane_done;
        lab.timings.total = started.elapsed();
        Ok(lab)
    }

    /// A fresh kube client (through the harness forwarder). Build one per tokio runtime.
    pub fn client(&self) -> Result<kube::Client, LabError> {
        Ok(self.control_plane()?.client()?)
    }

    /// The control plane.
    pub fn control_plane(&self) -> Result<&ControlPlane, LabError> {
        self.control_plane
            .as_ref()
            .ok_or_else(|| gone("control plane"))
    }

    /// The control plane, to stop or start the API server.
    pub fn control_plane_mut(&mut self) -> Result<&mut ControlPlane, LabError> {
        self.control_plane
            .as_mut()
            .ok_or_else(|| gone("control plane"))
    }

    /// The network: namespaces, nodes, routers, clients.
    pub fn topology(&self) -> Result<&Topology, LabError> {
        self.topology.as_ref().ok_or_else(|| gone("topology"))
    }

    /// The run prefix.
    pub fn prefix(&self) -> &str {
        &self.state.prefix
    }

    /// The run's recorded state (also in `<run dir>/state.json`).
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// Names of the CRDs applied at start.
    pub fn crds(&self) -> &[String] {
        &self.crds
    }

    /// How long start-up took.
    pub fn timings(&self) -> LabTimings {
        self.timings
    }

    /// How each node is registered in Kubernetes: InternalIPs on the segment (both families),
    /// hostname and zone labels.
    pub fn node_registrations(&self) -> Result<Vec<NodeRegistration>, LabError> {
        Ok(self
            .topology()?
            .nodes()
            .iter()
            .enumerate()
            .map(|(position, node)| NodeRegistration {
                name: node.name.clone(),
                internal_ips: vec![IpAddr::V4(node.v4), IpAddr::V6(node.v6)],
                labels: BTreeMap::from([(
                    "topology.kubernetes.io/zone".to_owned(),
                    ZONES[position % ZONES.len()].to_owned(),
                )]),
            })
            .collect())
    }

    /// Adds a process started by the harness to the state file, so `lab down` and the reaper stop it.
    pub fn record_process(&mut self, role: &str, pid: u32) -> Result<(), LabError> {
        self.state.processes.push(ProcessRecord::new(role, pid));
        self.state.write()
    }

    /// Stops everything and removes every namespace, link and directory of the run.
    pub async fn destroy(mut self) -> Result<(), LabError> {
        self.teardown().await
    }

    /// Leaves the lab running (for `lab up`) and returns its state; `lab down` removes it.
    pub fn detach(mut self) -> Result<LabState, LabError> {
        let mut processes = Vec::new();
        if let Some(control_plane) = self.control_plane.take() {
            let roles = ["etcd", "kube-apiserver"];
            for (role, pid) in roles.iter().zip(control_plane.detach()) {
                processes.push(ProcessRecord::new(role, pid));
            }
        }
        if let Some(topology) = self.topology.take() {
            for router in topology.routers() {
                for pid in router.pids() {
                    processes.push(ProcessRecord::new(
                        &format!("router {}", router.kind()),
                        pid,
                    ));
                }
            }
            topology.detach()?;
        }
        self.state.processes.retain(|record| record.is_alive());
        for record in processes {
            if !self
                .state
                .processes
                .iter()
                .any(|known| known.pid == record.pid)
            {
                self.state.processes.push(record);
            }
        }
        self.state.write()?;
        if let Some(reaper) = self.reaper.take() {
            reaper.stand_down()?;
        }
        // What is left of `self` is dropped next: it must not stop what was just handed over.
        let state = self.state.clone();
        self.state.processes.clear();
        Ok(state)
    }

    async fn teardown(&mut self) -> Result<(), LabError> {
        if let Some(control_plane) = self.control_plane.take() {
            blocking("stopping the control plane", move || control_plane.stop()).await?;
        }
        let result = match self.topology.take() {
            Some(topology) => destroy_topology(topology).await,
            None => Ok(()),
        };
        // Records of processes the topology did not own (added by `record_process`).
        let processes = std::mem::take(&mut self.state.processes);
        blocking("stopping recorded processes", move || {
            stop_recorded(&processes)
        })
        .await?;
        if let Some(reaper) = self.reaper.take() {
            reaper.finish();
        }
        result
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Synchronous fallback of `destroy` (drop cannot await): the same steps, in order. Errors
        // cannot be returned; the reaper and the next run's stale sweep are the safety net.
        if let Some(control_plane) = self.control_plane.take() {
            control_plane.stop();
        }
        if let Some(mut topology) = self.topology.take() {
            let _ = topology.destroy();
        }
        stop_recorded(&self.state.processes);
        if let Some(reaper) = self.reaper.take() {
            reaper.finish();
        }
    }
}

fn gone(what: &'static str) -> LabError {
    LabError::Gone { what }
}

/// The state right after the control plane is up.
fn initial_state(topology: &Topology, control_plane: &ControlPlane) -> Result<LabState, LabError> {
    let prefix = topology.prefix().to_string();
    let namespaces = netns::list_namespaces()?
        .into_iter()
        .filter(|name| name.starts_with(&prefix))
        .collect();
    let processes = ["etcd", "kube-apiserver"]
        .iter()
        .zip(control_plane.pids())
        .map(|(role, pid)| ProcessRecord::new(role, pid))
        .collect();
    Ok(LabState {
        prefix,
        namespaces,
        processes,
        nodes: topology
            .nodes()
            .iter()
            .map(|node| (node.name.clone(), node.ns.name().to_owned()))
            .collect(),
        api_url: control_plane.lab_url(),
        api_address: control_plane.lab_addr(),
        lab_kubeconfig: control_plane.lab_kubeconfig().to_owned(),
        ca_cert: control_plane.pki().ca_cert.clone(),
        admin_token: control_plane.pki().admin_token.clone(),
        control_plane_namespace: control_plane.netns().name().to_owned(),
    })
}

async fn destroy_topology(mut topology: Topology) -> Result<(), LabError> {
    blocking("removing the topology", move || topology.destroy()).await??;
    Ok(())
}

/// Runs a blocking step (commands, waits) off the async worker threads.
async fn blocking<T: Send + 'static>(
    step: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LabError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| LabError::Join {
            step,
            detail: error.to_string(),
        })
}

/// Stops recorded processes that are still the ones recorded.
fn stop_recorded(processes: &[ProcessRecord]) {
    let live: Vec<u32> = processes
        .iter()
        .filter(|record| record.is_alive())
        .map(|record| record.pid)
        .collect();
    netns::stop_pids(&live, netns::STOP_GRACE);
}

/// What [`down`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Processes stopped by recorded pid.
    pub stopped: Vec<ProcessRecord>,
    /// Namespaces and directories removed by the sweep.
    pub swept: netns::SweepReport,
}

/// Removes a run by its prefix from any process: stops the processes its state file records (checking
/// each is still the recorded process), then deletes every namespace carrying the prefix (which stops
/// anything left inside) and its run directories. A run without a state file is swept all the same.
pub fn down(prefix: &RunPrefix) -> Result<DownReport, LabError> {
    let stopped: Vec<ProcessRecord> = match LabState::read(prefix) {
        Ok(state) => state
            .processes
            .into_iter()
            .filter(ProcessRecord::is_alive)
            .collect(),
        Err(_) => Vec::new(),
    };
    stop_recorded(&stopped);
    let swept = netns::sweep(&format!("{prefix}*"))?;
    Ok(DownReport { stopped, swept })
}

/// A run on this machine with its lab state, if it is a whole lab (a network-only run of the
/// topology tests has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabRun {
    /// Prefix, owner and namespaces present.
    pub run: netns::Run,
    /// The state file's content, when readable.
    pub state: Option<LabState>,
}

/// Every run on this machine, with its lab state where there is one.
pub fn lab_runs() -> Result<Vec<LabRun>, LabError> {
    Ok(netns::runs()?
        .into_iter()
        .map(|run| LabRun {
            state: LabState::read(&run.prefix).ok(),
            run,
        })
        .collect())
}

/// True for the runs `lab down` without arguments removes: left up by `lab up`, or abandoned by an
/// owner that has exited. A run owned by a live process (a test in progress) or whose owner is not
/// recorded yet (being claimed right now) is not touched.
pub fn removable_by_default(run: &netns::Run) -> bool {
    match run.owner {
        Some(netns::Owner::Detached) => true,
        Some(netns::Owner::Process(pid)) => !netns::pid_alive(pid),
        None => false,
    }
}

/// The reaper child; see the module documentation.
///
/// Dropping a `Reaper` without [`Reaper::finish`] or [`Reaper::stand_down`] (a cancelled
/// [`Lab::start`] future) deliberately leaks the pipe's write end: closing it then would make the
/// reaper sweep while a blocking step of the cancelled start may still be creating namespaces. The
/// kernel closes it when this process exits, and only then does the reaper act.
#[derive(Debug)]
struct Reaper {
    child: Child,
    stdin: Option<ChildStdin>,
    program: PathBuf,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(stdin) = self.stdin.take() {
            std::mem::forget(stdin);
        }
    }
}

impl Reaper {
    fn start(program: &Path, prefix: &RunPrefix) -> Result<Self, LabError> {
        let reaper_error = |source| LabError::Reaper {
            program: program.to_owned(),
            source,
        };
        let mut child = Command::new(program)
            .args(["reap", prefix.as_str()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own process group: a Ctrl-C aimed at the test run must not kill the cleanup.
            .process_group(0)
            .spawn()
            .map_err(reaper_error)?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| reaper_error(std::io::Error::other("no stdin pipe")))?;
        Ok(Self {
            child,
            stdin: Some(stdin),
            program: program.to_owned(),
        })
    }

    /// Tells the reaper to exit without cleaning up, and reaps it.
    fn stand_down(mut self) -> Result<(), LabError> {
        let written = match self.stdin.take() {
            // Dropping the pipe right after the line: the reaper reads the line, then end-of-file.
            Some(mut stdin) => writeln!(stdin, "{REAPER_STAND_DOWN}"),
            None => Ok(()),
        };
        let reaper_error = |source| LabError::Reaper {
            program: self.program.clone(),
            source,
        };
        written.map_err(reaper_error)?;
        self.child.wait().map(drop).map_err(reaper_error)
    }

    /// Closes the pipe (the reaper then sweeps what is left, normally nothing) and reaps it.
    fn finish(mut self) {
        drop(self.stdin.take());
        // Waiting only collects the exit status; the sweep's outcome is the reaper's to report.
        let _ = self.child.wait();
    }
}

/// What a reaper does with its standard input: wait for end-of-file (the owner is gone: clean up) or
/// the stand-down line (the lab was detached: leave it). Returns true when the run must be removed.
pub fn reaper_should_clean_up(mut input: impl std::io::BufRead) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return true,
            Ok(_) if line.trim() == REAPER_STAND_DOWN => return false,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat =
            "4242 (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(987_654));
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    #[test]
    fn a_live_process_is_recognised_and_a_reused_pid_is_not() {
        let own = ProcessRecord::new("test", std::process::id());
        assert!(own.start_ticks.is_some());
        assert!(own.is_alive());
        let reused = ProcessRecord {
            start_ticks: own.start_ticks.map(|ticks| ticks + 1),
            ..own
        };
        assert!(!reused.is_alive(), "same pid, different start time");
    }

    #[test]
    fn down_without_arguments_takes_detached_and_abandoned_runs_only() {
        let run = |owner| netns::Run {
            prefix: RunPrefix::parse("flb0001").expect("prefix"),
            owner,
            namespaces: Vec::new(),
        };
        assert!(removable_by_default(&run(Some(netns::Owner::Detached))));
        // Above the kernel's pid_max (2^22): never a live process.
        assert!(removable_by_default(&run(Some(netns::Owner::Process(
            u32::MAX
        )))));
        assert!(!removable_by_default(&run(Some(netns::Owner::Process(
            std::process::id()
        )))));
        assert!(!removable_by_default(&run(None)), "being claimed right now");
    }

    #[test]
    fn reaper_cleans_up_on_end_of_file_and_stands_down_on_request() {
        assert!(reaper_should_clean_up(&b""[..]));
        assert!(reaper_should_clean_up(&b"noise\n"[..]));
        assert!(!reaper_should_clean_up(&b"detach\n"[..]));
    }
}
