//! Reaching the lab's API server: kubeconfigs, and a loopback forwarder into the control-plane
//! namespace for code that runs in the machine's own (root) network namespace.
//!
//! The API server listens only inside the lab's control-plane namespace. Speakers in node namespaces
//! reach it over the management link; the harness and the `lab` binary run in the root namespace, and
//! must not add an address, route or link there. So the forwarder listens on `127.0.0.1:<ephemeral>`
//! (loopback is always allowed) and opens each upstream connection from a thread that has entered the
//! control-plane namespace with `setns(2)`: a socket belongs to the network namespace of the thread
//! that creates it, so the connection is made inside the lab while the bytes are copied by ordinary
//! threads in the root namespace.
//!
//! The forwarder uses plain threads, not tasks, so that it outlives any one tokio runtime: a lab
//! shared by many `#[tokio::test]`s (each with its own runtime) keeps one forwarder.

use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use nix::sched::CloneFlags;

/// How long one upstream connection attempt may take; the lab's links are local, so anything slower
/// means the API server is not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Failures reaching the API server.
#[derive(Debug, thiserror::Error)]
pub enum KubeAccessError {
    /// The namespace file could not be opened or entered.
    #[error("entering network namespace {}: {source}", path.display())]
    EnterNamespace {
        /// `/var/run/netns/<name>`.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The loopback listener could not be set up.
    #[error("forwarder listener on 127.0.0.1: {0}")]
    Listen(#[source] io::Error),
    /// The connector thread could not be started.
    #[error("starting the forwarder's connector thread: {0}")]
    Thread(#[source] io::Error),
    /// A kubeconfig could not be written.
    #[error("writing kubeconfig {}: {source}", path.display())]
    WriteKubeconfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A kubeconfig could not be serialised (a bug, kept as data rather than a panic).
    #[error("serialising kubeconfig: {0}")]
    Serialize(#[source] serde_json::Error),
    /// kube refused the kubeconfig or could not build a client from it.
    #[error("kube client from kubeconfig: {0}")]
    Client(String),
}

/// The path `ip netns` gives a named namespace.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/var/run/netns").join(name)
}

/// What a kubeconfig for the lab says: where the API server is, which CA to trust, which token to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigSpec {
    /// `https://host:port`.
    pub server: String,
    /// The lab CA certificate file.
    pub ca_file: PathBuf,
    /// A file holding the bearer token.
    pub token_file: PathBuf,
}

/// The context, cluster and user name in every lab kubeconfig.
pub const CONTEXT_NAME: &str = "ferrolb-lab";

impl KubeconfigSpec {
    /// The kubeconfig, referring to the CA and token by path (`certificate-authority`, `tokenFile`) so
    /// that no secret is copied into it and kubectl, curl and kube-rs read the same files.
    pub fn kubeconfig(&self) -> Kubeconfig {
        Kubeconfig {
            clusters: vec![NamedCluster {
                name: CONTEXT_NAME.into(),
                cluster: Some(Cluster {
                    server: Some(self.server.clone()),
                    certificate_authority: Some(self.ca_file.display().to_string()),
                    ..Cluster::default()
                }),
                ..NamedCluster::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: CONTEXT_NAME.into(),
                auth_info: Some(AuthInfo {
                    token_file: Some(self.token_file.display().to_string()),
                    ..AuthInfo::default()
                }),
                ..NamedAuthInfo::default()
            }],
            contexts: vec![NamedContext {
                name: CONTEXT_NAME.into(),
                context: Some(Context {
                    cluster: CONTEXT_NAME.into(),
                    user: Some(CONTEXT_NAME.into()),
                    ..Context::default()
                }),
                ..NamedContext::default()
            }],
            current_context: Some(CONTEXT_NAME.into()),
            kind: Some("Config".into()),
            api_version: Some("v1".into()),
            ..Kubeconfig::default()
        }
    }

    /// Writes the kubeconfig to `path`. The format is JSON, which is valid YAML, so kubectl and every
    /// client library read it.
    pub fn write(&self, path: &Path) -> Result<(), KubeAccessError> {
        let text =
            serde_json::to_string_pretty(&self.kubeconfig()).map_err(KubeAccessError::Serialize)?;
        std::fs::write(path, text).map_err(|source| KubeAccessError::WriteKubeconfig {
            path: path.to_owned(),
            source,
        })
    }

    /// A kube client configuration for this kubeconfig. Build a fresh [`kube::Client`] from it in each
    /// tokio runtime: a client's background worker lives on the runtime it was created on.
    pub async fn client_config(&self) -> Result<kube::Config, KubeAccessError> {
        kube::Config::from_custom_kubeconfig(self.kubeconfig(), &KubeConfigOptions::default())
            .await
            .map_err(|error| KubeAccessError::Client(error.to_string()))
    }
}

/// A TCP forwarder from `127.0.0.1:<port>` in the root namespace to an address inside a lab namespace.
/// Stops accepting when dropped; connections already open run until either side closes.
#[derive(Debug)]
pub struct NamespaceForwarder {
    local: SocketAddr,
    upstream: SocketAddr,
    stopping: Arc<AtomicBool>,
}

/// A request to the connector thread: connect, and send the stream back.
type ConnectRequest = mpsc::Sender<io::Result<TcpStream>>;

impl NamespaceForwarder {
    /// Starts forwarding to `upstream` as seen from inside the namespace `netns_name`.
    pub fn start(netns_name: &str, upstream: SocketAddr) -> Result<Self, KubeAccessError> {
        let connect = spawn_connector(&netns_path(netns_name), upstream)?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(KubeAccessError::Listen)?;
        let local = listener.local_addr().map_err(KubeAccessError::Listen)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let accept_stopping = Arc::clone(&stopping);
        thread::Builder::new()
            .name(format!("forward-accept-{netns_name}"))
            .spawn(move || accept_loop(&listener, &connect, &accept_stopping))
            .map_err(KubeAccessError::Thread)?;
        Ok(Self {
            local,
            upstream,
            stopping,
        })
    }

    /// The loopback address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address inside the namespace that connections are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }
}

impl Drop for NamespaceForwarder {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag and exits, dropping the listener.
        drop(TcpStream::connect_timeout(&self.local, CONNECT_TIMEOUT));
    }
}

/// Starts the thread that lives inside the namespace and makes every upstream connection. It enters
/// the namespace once, before reporting ready, so a missing namespace is an error of `start`.
fn spawn_connector(
    netns: &Path,
    upstream: SocketAddr,
) -> Result<mpsc::Sender<ConnectRequest>, KubeAccessError> {
    let enter_error = |source| KubeAccessError::EnterNamespace {
        path: netns.to_owned(),
        source,
    };
    let namespace_file = File::open(netns).map_err(enter_error)?;
    let (requests, incoming) = mpsc::channel::<ConnectRequest>();
    let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
    thread::Builder::new()
        .name("forward-connect".into())
        .spawn(move || {
            let entered = nix::sched::setns(&namespace_file, CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from);
            let ok = entered.is_ok();
            // The receiver waits for exactly this message; if it is gone, nobody needs the thread.
            if ready_tx.send(entered).is_err() || !ok {
                return;
            }
            for reply in incoming {
                // A requester that gave up is not an error of the connector.
                let _ = reply.send(TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT));
            }
        })
        .map_err(KubeAccessError::Thread)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(requests),
        Ok(Err(source)) => Err(enter_error(source)),
        Err(_) => Err(enter_error(io::Error::other("connector thread exited"))),
    }
}

fn accept_loop(
    listener: &TcpListener,
    connect: &mpsc::Sender<ConnectRequest>,
    stopping: &AtomicBool,
) {
    for accepted in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(downstream) = accepted else { continue };
        let (reply_tx, reply_rx) = mpsc::channel();
        if connect.send(reply_tx).is_err() {
            return;
        }
        match reply_rx.recv() {
            Ok(Ok(upstream)) => splice(downstream, upstream),
            // Upstream refused (API server stopped) or unreachable: closing the client's connection
            // is exactly what a client of a stopped API server would see.
            Ok(Err(_)) | Err(_) => drop(downstream.shutdown(Shutdown::Both)),
        }
    }
}

/// Copies both directions on two threads; each half-closes its write side at EOF so the peer sees the
/// end of the stream, as it would on a direct connection.
fn splice(downstream: TcpStream, upstream: TcpStream) {
    let pairs = [
        (downstream.try_clone(), upstream.try_clone()),
        (upstream.try_clone(), downstream.try_clone()),
    ];
    for pair in pairs {
        let (Ok(mut from), Ok(mut to)) = pair else {
            drop(downstream.shutdown(Shutdown::Both));
            drop(upstream.shutdown(Shutdown::Both));
            return;
        };
        let spawned = thread::Builder::new()
            .name("forward-copy".into())
            .spawn(move || {
                // Either side resetting the connection ends the copy; there is no one to report to.
                let _ = io::copy(&mut from, &mut to);
                let _ = to.shutdown(Shutdown::Write);
            });
        if spawned.is_err() {
            drop(downstream.shutdown(Shutdown::Both));
            drop(upstream.shutdown(Shutdown::Both));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn kubeconfig_names_server_ca_and_token_file_and_selects_its_context() {
        let spec = KubeconfigSpec {
            server: "https://198.51.100.1:6443".into(),
            ca_file: "/run/ferrolb-lab/x/ca.crt".into(),
            token_file: "/run/ferrolb-lab/x/admin.token".into(),
        };
        let value = serde_json::to_value(spec.kubeconfig()).expect("serialises");
        assert_eq!(value["current-context"], CONTEXT_NAME);
        assert_eq!(
            value["clusters"][0]["cluster"]["server"],
            "https://198.51.100.1:6443"
        );
        assert_eq!(
            value["clusters"][0]["cluster"]["certificate-authority"],
            "/run/ferrolb-lab/x/ca.crt"
        );
        assert_eq!(
            value["users"][0]["user"]["tokenFile"],
            "/run/ferrolb-lab/x/admin.token"
        );
        assert_eq!(value["contexts"][0]["context"]["user"], CONTEXT_NAME);
    }

    #[test]
    fn missing_namespace_is_an_error_naming_its_path() {
        let upstream = SocketAddr::from(([127, 0, 0, 1], 9));
        let error = NamespaceForwarder::start("flb-no-such-namespace", upstream)
            .expect_err("no such namespace");
        assert!(
            error
                .to_string()
                .contains("/var/run/netns/flb-no-such-namespace"),
            "{error}"
        );
    }

    /// The connector enters the process's own namespace (`/proc/self/ns/net`), so this exercises the
    /// setns, connect and copy paths without creating a namespace.
    #[test]
    fn bytes_cross_the_forwarder_both_ways_and_eof_propagates() {
        let echo = TcpListener::bind(("127.0.0.1", 0)).expect("bind echo");
        let echo_addr = echo.local_addr().expect("addr");
        thread::spawn(move || {
            if let Ok((mut stream, _)) = echo.accept() {
                let mut received = Vec::new();
                let _ = stream.read_to_end(&mut received);
                let _ = stream.write_all(&received);
            }
        });
        let connect = spawn_connector(Path::new("/proc/self/ns/net"), echo_addr)
            .expect("entering our own namespace needs CAP_SYS_ADMIN; tests run as root");
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let local = listener.local_addr().expect("addr");
        let stopping = Arc::new(AtomicBool::new(false));
        thread::spawn(move || accept_loop(&listener, &connect, &stopping));

        let mut client = TcpStream::connect(local).expect("connect forwarder");
        client.write_all(b"ping through the lab").expect("write");
        client.shutdown(Shutdown::Write).expect("half-close");
        let mut answer = String::new();
        client.read_to_string(&mut answer).expect("read");
        assert_eq!(answer, "ping through the lab");
    }
}
