//! The lab's real control plane: etcd and kube-apiserver, built from pinned Go modules
//! ([`crate::versions`]), running as processes inside the lab's control-plane namespace.
//!
//! Contract:
//! - [`ControlPlane::start`] generates fresh credentials ([`crate::pki`]), starts etcd (client URL
//!   `http://127.0.0.1:2379`, reachable only inside the namespace) and kube-apiserver (`:6443` on every
//!   address of the namespace, advertising the management address), and returns once `/readyz` answers
//!   `ok`. Two kubeconfigs are written: [`ControlPlane::lab_kubeconfig`] (server
//!   `https://<management address>:6443`, for processes inside lab namespaces) and
//!   [`ControlPlane::host_kubeconfig`] (server `https://127.0.0.1:<port>` through a
//!   [`NamespaceForwarder`], valid while this process lives).
//! - Processes are known by pid and stopped by pid (SIGTERM, then SIGKILL); dropping the control plane
//!   stops them. [`ControlPlane::stop_api_server`] and [`ControlPlane::start_api_server`] take the API
//!   server down and bring it back over the same etcd data, as failure tests need.
//! - Services get ClusterIPs from `198.18.0.0/16` and `2001:db8:ffff::/108`: dual-stack, large enough
//!   for benchmark scale (10,000 Services), and in test space that no packet in the lab is routed to
//!   (there is no kube-proxy).

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kube_access::{KubeAccessError, KubeconfigSpec, NamespaceForwarder};
use crate::netns::{NetNs, NetnsError, NsProcess};
use crate::pki::{LabPki, PkiError, PkiFiles, ServingNames};
use crate::versions::ControlPlaneBinaries;

/// The API server's secure port inside the control-plane namespace.
pub const API_SERVER_PORT: u16 = 6443;

/// Service ClusterIP ranges (RFC 2544 benchmarking space and a documentation /108).
pub const SERVICE_CLUSTER_IP_RANGES: &str = "198.18.0.0/16,2001:db8:ffff::/108";

/// The first IPv4 ClusterIP, which the API server gives the `kubernetes` Service.
const KUBERNETES_SERVICE_IP: [u8; 4] = [198, 18, 0, 1];

/// etcd's client and peer URLs: loopback of the control-plane namespace only.
const ETCD_CLIENT_URL: &str = "http://127.0.0.1:2379";
const ETCD_PEER_URL: &str = "http://127.0.0.1:2380";

/// How long a cold API server may take to become ready (it installs its built-in objects and RBAC
/// roles on first start; a few seconds on the lab machines).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Lines of a process log quoted in an error.
const LOG_TAIL_LINES: usize = 25;

/// Failures of the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// Credentials could not be generated or written.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A namespace command or process start failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The forwarder, kubeconfig or client failed.
    #[error(transparent)]
    KubeAccess(#[from] KubeAccessError),
    /// A directory under the run directory could not be created.
    #[error("creating {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A control-plane process exited while the lab waited for it.
    #[error("{process} exited during start-up; last lines of {}:\n{tail}", log.display())]
    Exited {
        /// `etcd` or `kube-apiserver`.
        process: &'static str,
        /// Its log file.
        log: PathBuf,
        /// The end of the log.
        tail: String,
    },
    /// The API server did not report ready in time.
    #[error("kube-apiserver not ready after {after:?} (last answer: {last}); last lines of {}:\n{tail}", log.display())]
    NotReady {
        /// How long the lab waited.
        after: Duration,
        /// The last `/readyz` answer or error.
        last: String,
        /// The API server's log file.
        log: PathBuf,
        /// The end of the log.
        tail: String,
    },
    /// The API server did not answer a probe in time.
    #[error("no answer from the API server within {after:?}")]
    NoAnswer {
        /// The probe's timeout.
        after: Duration,
    },
    /// A kube client could not be built or a request failed.
    #[error("kube client: {0}")]
    Client(#[source] kube::Error),
}

/// Where and what to run.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// The control-plane namespace (joined to every node by the management link).
    pub netns: NetNs,
    /// The API server's address on the management link, advertised to the cluster.
    pub advertise: IpAddr,
    /// The directory for credentials, etcd data, kubeconfigs and logs (inside the run directory).
    pub dir: PathBuf,
    /// The cached binaries.
    pub binaries: ControlPlaneBinaries,
}

/// A running control plane; see the module documentation.
#[derive(Debug)]
pub struct ControlPlane {
    config: ControlPlaneConfig,
    pki: PkiFiles,
    etcd: NsProcess,
    api_server: Option<NsProcess>,
    forwarder: NamespaceForwarder,
    lab_kubeconfig: PathBuf,
    host_kubeconfig: PathBuf,
    client_config: kube::Config,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver in `config.netns` and waits until the API server is ready.
    /// Everything started so far is stopped again if a later step fails (the processes are dropped).
    pub async fn start(config: ControlPlaneConfig) -> Result<Self, ControlPlaneError> {
        let pki_dir = config.dir.join("pki");
        for dir in [&config.dir, &pki_dir, &config.dir.join("etcd")] {
            fs::create_dir_all(dir).map_err(|source| ControlPlaneError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        let names =
            ServingNames::for_api_server(config.advertise, IpAddr::from(KUBERNETES_SERVICE_IP));
        let pki = LabPki::generate(&names)?.write_to(&pki_dir)?;

        let lab_kubeconfig = config.dir.join("kubeconfig");
        KubeconfigSpec {
            server: https_url(SocketAddr::new(config.advertise, API_SERVER_PORT)),
            ca_file: pki.ca_cert.clone(),
            token_file: pki.admin_token.clone(),
        }
        .write(&lab_kubeconfig)?;

        let etcd = config
            .netns
            .spawn(&etcd_args(&config), &config.dir.join("etcd.log"))?;
        let forwarder = NamespaceForwarder::start(
            config.netns.name(),
            SocketAddr::new(config.advertise, API_SERVER_PORT),
        )?;
        let host_spec = KubeconfigSpec {
            server: https_url(forwarder.local_addr()),
            ca_file: pki.ca_cert.clone(),
            token_file: pki.admin_token.clone(),
        };
        let host_kubeconfig = config.dir.join("kubeconfig-host");
        host_spec.write(&host_kubeconfig)?;
        let client_config = host_spec.client_config().await?;

        let mut control_plane = Self {
            config,
            pki,
            etcd,
            api_server: None,
            forwarder,
            lab_kubeconfig,
            host_kubeconfig,
            client_config,
        };
        control_plane.start_api_server().await?;
        Ok(control_plane)
    }

    /// Starts kube-apiserver (again) and waits for `/readyz`. Does nothing if it is running.
    pub async fn start_api_server(&mut self) -> Result<(), ControlPlaneError> {
        if self.api_server_running() {
            return Ok(());
        }
        let log = self.api_server_log();
        let process = self
            .config
            .netns
            .spawn(&api_server_args(&self.config, &self.pki), &log)?;
        self.api_server = Some(process);
        self.wait_ready(READY_TIMEOUT).await
    }

    /// Stops kube-apiserver (SIGTERM, then SIGKILL); etcd and its data stay.
    pub fn stop_api_server(&mut self) {
        if let Some(mut process) = self.api_server.take() {
            process.stop();
        }
    }

    /// True while the kube-apiserver process runs.
    pub fn api_server_running(&mut self) -> bool {
        self.api_server.as_mut().is_some_and(NsProcess::is_running)
    }

    /// A kube client for the harness (through the forwarder). Build one per tokio runtime.
    pub fn client(&self) -> Result<kube::Client, ControlPlaneError> {
        kube::Client::try_from(self.client_config.clone()).map_err(ControlPlaneError::Client)
    }

    /// The kube client configuration behind [`ControlPlane::client`].
    pub fn client_config(&self) -> &kube::Config {
        &self.client_config
    }

    /// Kubeconfig for processes inside lab namespaces (server on the management address).
    pub fn lab_kubeconfig(&self) -> &Path {
        &self.lab_kubeconfig
    }

    /// Kubeconfig for the root namespace, through this process's forwarder.
    pub fn host_kubeconfig(&self) -> &Path {
        &self.host_kubeconfig
    }

    /// The credential files (CA for `curl --cacert`, admin token file).
    pub fn pki(&self) -> &PkiFiles {
        &self.pki
    }

    /// The API server URL inside the lab.
    pub fn lab_url(&self) -> String {
        https_url(self.lab_addr())
    }

    /// The API server's address inside the lab.
    pub fn lab_addr(&self) -> SocketAddr {
        SocketAddr::new(self.config.advertise, API_SERVER_PORT)
    }

    /// The forwarder's loopback address in the root namespace.
    pub fn host_addr(&self) -> SocketAddr {
        self.forwarder.local_addr()
    }

    /// The control-plane namespace.
    pub fn netns(&self) -> &NetNs {
        &self.config.netns
    }

    /// Pids of the running control-plane processes, for the lab's state file.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.etcd.pid())
            .chain(self.api_server.as_ref().map(NsProcess::pid))
            .collect()
    }

    /// Stops the API server, then etcd.
    pub fn stop(mut self) {
        self.stop_api_server();
        self.etcd.stop();
    }

    /// Leaves etcd and the API server running after this handle is gone (for a lab left up by `lab
    /// up`; `lab down` stops them by pid and by deleting the namespace). Returns their pids.
    pub fn detach(self) -> Vec<u32> {
        let Self {
            etcd,
            api_server,
            host_kubeconfig,
            ..
        } = self;
        // Its forwarder ends with this process: a kubeconfig pointing at it would only mislead.
        // Failing to remove it leaves a stale file, nothing worse.
        let _ = fs::remove_file(host_kubeconfig);
        std::iter::once(etcd.detach())
            .chain(api_server.map(NsProcess::detach))
            .collect()
    }

    fn api_server_log(&self) -> PathBuf {
        self.config.dir.join("kube-apiserver.log")
    }

    /// Polls `/readyz` until it answers `ok`; fails early if etcd or the API server exits.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), ControlPlaneError> {
        let client = self.client()?;
        let started = Instant::now();
        loop {
            if !self.etcd.is_running() {
                return Err(exited("etcd", &self.config.dir.join("etcd.log")));
            }
            if !self.api_server_running() {
                return Err(exited("kube-apiserver", &self.api_server_log()));
            }
            let last = match readyz(&client).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => body,
                Err(error) => error.to_string(),
            };
            if started.elapsed() >= timeout {
                let log = self.api_server_log();
                return Err(ControlPlaneError::NotReady {
                    after: timeout,
                    last,
                    tail: log_tail(&log),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Asks a running API server (started by any process) for `/readyz`, from the root namespace: a
/// short-lived forwarder into `netns_name`, the lab CA and the admin token file.
pub async fn probe_readyz(
    netns_name: &str,
    api_address: SocketAddr,
    ca_file: &Path,
    token_file: &Path,
    timeout: Duration,
) -> Result<String, ControlPlaneError> {
    let forwarder = NamespaceForwarder::start(netns_name, api_address)?;
    let config = KubeconfigSpec {
        server: https_url(forwarder.local_addr()),
        ca_file: ca_file.to_owned(),
        token_file: token_file.to_owned(),
    }
    .client_config()
    .await?;
    let client = kube::Client::try_from(config).map_err(ControlPlaneError::Client)?;
    match tokio::time::timeout(timeout, readyz(&client)).await {
        Ok(answer) => answer.map_err(ControlPlaneError::Client),
        Err(_) => Err(ControlPlaneError::NoAnswer { after: timeout }),
    }
}

/// GET `/readyz`: "ok" once every readiness check (etcd, informers, RBAC bootstrap, …) passes.
async fn readyz(client: &kube::Client) -> Result<String, kube::Error> {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    client.request_text(request).await
}

fn https_url(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

fn exited(process: &'static str, log: &Path) -> ControlPlaneError {
    ControlPlaneError::Exited {
        process,
        log: log.to_owned(),
        tail: log_tail(log),
    }
}

/// The last lines of a log file, for error messages; an unreadable log says so.
fn log_tail(log: &Path) -> String {
    match fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(error) => format!("(log unreadable: {error})"),
    }
}

/// etcd: a single member on the namespace's loopback. `--unsafe-no-fsync` because the data is a
/// throwaway lab's and the lab must start fast.
fn etcd_args(config: &ControlPlaneConfig) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    vec![
        path(&config.binaries.etcd),
        "--name=lab".into(),
        format!("--data-dir={}", path(&config.dir.join("etcd"))),
        format!("--listen-client-urls={ETCD_CLIENT_URL}"),
        format!("--advertise-client-urls={ETCD_CLIENT_URL}"),
        format!("--listen-peer-urls={ETCD_PEER_URL}"),
        format!("--initial-advertise-peer-urls={ETCD_PEER_URL}"),
        format!("--initial-cluster=lab={ETCD_PEER_URL}"),
        "--unsafe-no-fsync=true".into(),
        "--log-level=warn".into(),
    ]
}

/// kube-apiserver: TLS with the lab CA, static-token authentication (the admin is in
/// `system:masters`), Node and RBAC authorization as in a real cluster, dual-stack Service ranges.
fn api_server_args(config: &ControlPlaneConfig, pki: &PkiFiles) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    vec![
        path(&config.binaries.kube_apiserver),
        format!("--etcd-servers={ETCD_CLIENT_URL}"),
        format!("--advertise-address={}", config.advertise),
        "--bind-address=0.0.0.0".into(),
        format!("--secure-port={API_SERVER_PORT}"),
        format!("--cert-dir={}", path(&config.dir.join("pki"))),
        format!("--tls-cert-file={}", path(&pki.serving_cert)),
        format!("--tls-private-key-file={}", path(&pki.serving_key)),
        format!("--client-ca-file={}", path(&pki.ca_cert)),
        format!("--token-auth-file={}", path(&pki.token_file)),
        "--authorization-mode=Node,RBAC".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!(
            "--service-account-key-file={}",
            path(&pki.service_account_public)
        ),
        format!(
            "--service-account-signing-key-file={}",
            path(&pki.service_account_key)
        ),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGES}"),
        "--profiling=false".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ControlPlaneConfig {
        ControlPlaneConfig {
            netns: NetNs::adopt("flb0000cp"),
            advertise: IpAddr::from([198, 51, 100, 1]),
            dir: PathBuf::from("/run/ferrolb-lab/flb0000/control-plane"),
            binaries: ControlPlaneBinaries {
                kube_apiserver: "/cache/bin/kube-apiserver-v1.35.4".into(),
                etcd: "/cache/bin/etcd-v3.6.16".into(),
            },
        }
    }

    fn pki() -> PkiFiles {
        PkiFiles::in_dir(Path::new("/pki"))
    }

    #[test]
    fn api_server_is_dual_stack_with_room_for_ten_thousand_services() {
        let args = api_server_args(&config(), &pki());
        assert!(
            args.contains(&"--service-cluster-ip-range=198.18.0.0/16,2001:db8:ffff::/108".into())
        );
        // A /16 holds 65,534 addresses; a /108 holds 2^20.
        assert!(args.contains(&"--advertise-address=198.51.100.1".into()));
        assert!(args.contains(&"--authorization-mode=Node,RBAC".into()));
        assert!(args.contains(&"--token-auth-file=/pki/tokens.csv".into()));
        assert_eq!(args[0], "/cache/bin/kube-apiserver-v1.35.4");
    }

    #[test]
    fn etcd_listens_only_on_the_namespace_loopback() {
        let args = etcd_args(&config());
        let urls: Vec<&String> = args.iter().filter(|arg| arg.contains("-urls=")).collect();
        assert_eq!(urls.len(), 4);
        assert!(urls.iter().all(|arg| arg.contains("http://127.0.0.1:")));
        assert!(args.contains(&"--data-dir=/run/ferrolb-lab/flb0000/control-plane/etcd".into()));
    }

    #[test]
    fn log_tail_keeps_the_last_lines_and_reports_unreadable_logs() {
        let path = std::env::temp_dir().join(format!("ferrolb-log-tail-{}", std::process::id()));
        let text: String = (1..=40).map(|n| format!("line {n}\n")).collect();
        fs::write(&path, text).expect("write");
        let tail = log_tail(&path);
        assert!(tail.starts_with("line 16\n"), "{tail}");
        assert!(tail.ends_with("line 40"), "{tail}");
        fs::remove_file(&path).expect("cleanup");
        assert!(log_tail(&path).starts_with("(log unreadable:"));
    }
}
