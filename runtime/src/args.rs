//! Flag groups that every ferrolb binary flattens into its own `clap::Parser`
//! (`#[command(flatten)]`), so the flags, their environment fallbacks and their defaults are
//! written once.
//!
//! Each flag can also be set through the environment variable named in its help, which is how a
//! Deployment or DaemonSet passes the pod's own name and namespace (downward API).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// How to reach the Kubernetes API server.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeArgs {
    /// Kubeconfig file. Without it: the pod's service account when running in a cluster, else
    /// the user's default kubeconfig.
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Context to use from the kubeconfig; defaults to its current context.
    #[arg(long = "kube-context", env = "KUBE_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
}

/// A Kubernetes client could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading kubeconfig {path}: {source}")]
    ReadKubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("using kubeconfig {path}: {source}")]
    UseKubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("inferring the Kubernetes client configuration (no --kubeconfig given): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Build(#[from] kube::Error),
}

impl KubeArgs {
    /// The client configuration these flags select.
    pub async fn config(&self) -> Result<kube::Config, ClientError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        match &self.kubeconfig {
            Some(path) => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|source| ClientError::ReadKubeconfig {
                        path: path.clone(),
                        source,
                    })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|source| ClientError::UseKubeconfig {
                        path: path.clone(),
                        source,
                    })
            }
            // In a pod the service account is the intended identity, even if an image happens
            // to carry a kubeconfig; outside one, fall back to the usual kubeconfig lookup.
            None => match kube::Config::incluster() {
                Ok(config) => Ok(config),
                Err(_) => Ok(kube::Config::infer().await?),
            },
        }
    }

    /// A client for the API server these flags select.
    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        Ok(kube::Client::try_from(self.config().await?)?)
    }
}

/// Where the admin HTTP server listens.
///
/// The default is the controller's; a binary that needs another port (the speaker shares the
/// host network with other agents) overrides it with [`with_admin_default`].
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// Address of the admin server (`/livez`, `/readyz`, `/metrics`).
    #[arg(
        long,
        env = "ADMIN_ADDR",
        default_value = "0.0.0.0:9090",
        value_name = "ADDR"
    )]
    pub admin_addr: SocketAddr,
}

/// Replaces the default of `--admin-addr` in a binary's command, so each binary states its own
/// default once, in its own help text.
pub fn with_admin_default(command: clap::Command, addr: &'static str) -> clap::Command {
    command.mut_arg("admin_addr", |arg| arg.default_value(addr))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for terminals.
    Plain,
}

/// Logging flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "plain")]
    pub log_format: LogFormat,
    /// Which events to log, in `RUST_LOG` syntax (`info`, `ferrolb_runtime=debug,kube=warn`).
    #[arg(long, env = "RUST_LOG", default_value = "info", value_name = "FILTER")]
    pub log_level: String,
}

/// Leader election on a `coordination.k8s.io/v1` Lease (see [`crate::leader`]).
#[derive(Debug, Clone, clap::Args)]
pub struct LeaderElectionArgs {
    /// Name of the Lease object the replicas compete for.
    #[arg(
        long,
        env = "LEASE_NAME",
        default_value = "ferrolb-controller",
        value_name = "NAME"
    )]
    pub lease_name: String,
    /// Namespace of the Lease; the pod's own namespace in a Deployment.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub lease_namespace: String,
    /// This candidate's identity in the Lease; the pod name in a Deployment, so `kubectl get
    /// lease` names the active pod.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: String,
    /// How long a holder's claim stays valid without renewal; a standby takes over after this.
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long the leader keeps leading while renewals fail; must be shorter than the lease
    /// duration so the old leader stops before a standby may start.
    #[arg(long, env = "LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// Interval between attempts to acquire or renew the Lease.
    #[arg(long, env = "LEASE_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
}

/// A duration flag could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration {0:?} needs a unit: ms, s or m (e.g. 15s)")]
    MissingUnit(String),
    #[error("duration {0:?} is not a whole number followed by ms, s or m")]
    Malformed(String),
}

/// Parses `500ms`, `15s` or `2m`: the units that lease timings are written in.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError::MissingUnit(text.to_owned()))?;
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| DurationError::Malformed(text.to_owned()))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => value
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| DurationError::Malformed(text.to_owned())),
        _ => Err(DurationError::Malformed(text.to_owned())),
    }
}

/// `command` with its environment fallbacks read from `env` instead of the process
/// environment: each env-backed argument loses its env binding and gets the value from `env`, if
/// any, as its default. Lets every binary test its flags and their fallbacks without mutating the
/// process environment, which parallel tests would race on.
pub fn command_with_env(command: clap::Command, env: &[(&str, &'static str)]) -> clap::Command {
    let ids: Vec<(String, Option<String>)> = command
        .get_arguments()
        .map(|arg| {
            (
                arg.get_id().to_string(),
                arg.get_env()
                    .map(|name| name.to_string_lossy().into_owned()),
            )
        })
        .collect();
    ids.into_iter().fold(command, |command, (id, env_name)| {
        let value = env_name.and_then(|name| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| *value)
        });
        command.mut_arg(id, |arg| {
            let arg = arg.env(None::<&str>);
            match value {
                // As with a real environment variable, a value satisfies `required`.
                Some(value) => arg.default_value(value).required(false),
                None => arg,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct TestArgs {
        #[command(flatten)]
        kube: KubeArgs,
        #[command(flatten)]
        admin: AdminArgs,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        leader: LeaderElectionArgs,
    }

    /// Parses with an explicit environment, so tests never read or race on the process's own.
    fn parse(args: &[&str], env: &[(&str, &'static str)]) -> Result<TestArgs, clap::Error> {
        parse_command(TestArgs::command(), args, env)
    }

    fn parse_command(
        command: clap::Command,
        args: &[&str],
        env: &[(&str, &'static str)],
    ) -> Result<TestArgs, clap::Error> {
        let command = command_with_env(command, env);
        let matches =
            command.try_get_matches_from(std::iter::once("test").chain(args.iter().copied()))?;
        TestArgs::from_arg_matches(&matches)
    }

    const POD_ENV: &[(&str, &str)] = &[("POD_NAME", "ctl-0"), ("POD_NAMESPACE", "ferrolb-system")];

    #[test]
    fn defaults_apply_when_only_the_pod_identity_is_given() {
        let args = parse(&[], POD_ENV).expect("parses");
        assert_eq!(args.kube.kubeconfig, None);
        assert_eq!(args.admin.admin_addr, "0.0.0.0:9090".parse().expect("addr"));
        assert_eq!(args.log.log_format, LogFormat::Plain);
        assert_eq!(args.log.log_level, "info");
        assert_eq!(args.leader.lease_name, "ferrolb-controller");
        assert_eq!(args.leader.lease_namespace, "ferrolb-system");
        assert_eq!(args.leader.identity, "ctl-0");
        assert_eq!(args.leader.lease_duration, Duration::from_secs(15));
        assert_eq!(args.leader.renew_deadline, Duration::from_secs(10));
        assert_eq!(args.leader.retry_period, Duration::from_secs(2));
    }

    #[test]
    fn environment_fills_every_flag_group() {
        let env = [
            ("KUBECONFIG", "/etc/kube/config"),
            ("KUBE_CONTEXT", "lab"),
            ("ADMIN_ADDR", "127.0.0.1:9999"),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "debug,kube=warn"),
            ("POD_NAME", "ctl-1"),
            ("POD_NAMESPACE", "infra"),
            ("LEASE_DURATION", "30s"),
        ];
        let args = parse(&[], &env).expect("parses");
        assert_eq!(
            args.kube.kubeconfig,
            Some(PathBuf::from("/etc/kube/config"))
        );
        assert_eq!(args.kube.context.as_deref(), Some("lab"));
        assert_eq!(
            args.admin.admin_addr,
            "127.0.0.1:9999".parse().expect("addr")
        );
        assert_eq!(args.log.log_format, LogFormat::Json);
        assert_eq!(args.log.log_level, "debug,kube=warn");
        assert_eq!(args.leader.identity, "ctl-1");
        assert_eq!(args.leader.lease_namespace, "infra");
        assert_eq!(args.leader.lease_duration, Duration::from_secs(30));
    }

    #[test]
    fn flags_win_over_environment() {
        let args = parse(
            &[
                "--log-format",
                "plain",
                "--identity",
                "flag-name",
                "--retry-period",
                "500ms",
            ],
            &[
                ("LOG_FORMAT", "json"),
                ("POD_NAME", "env-name"),
                ("POD_NAMESPACE", "ns"),
            ],
        )
        .expect("parses");
        assert_eq!(args.log.log_format, LogFormat::Plain);
        assert_eq!(args.leader.identity, "flag-name");
        assert_eq!(args.leader.retry_period, Duration::from_millis(500));
    }

    #[test]
    fn missing_pod_identity_is_refused() {
        let error = parse(&[], &[("POD_NAMESPACE", "ns")]).expect_err("identity is required");
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn unknown_log_format_is_refused() {
        let error = parse(&["--log-format", "xml"], POD_ENV).expect_err("xml is no format");
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
    }

    #[test]
    fn binary_can_choose_its_own_admin_default() {
        let command = with_admin_default(TestArgs::command(), "0.0.0.0:7473");
        let args = parse_command(command, &[], POD_ENV).expect("parses");
        assert_eq!(args.admin.admin_addr, "0.0.0.0:7473".parse().expect("addr"));
    }

    #[test]
    fn durations_accept_ms_s_and_m() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn durations_without_unit_or_number_are_refused() {
        assert_eq!(
            parse_duration("15"),
            Err(DurationError::MissingUnit("15".into()))
        );
        assert_eq!(
            parse_duration("s"),
            Err(DurationError::Malformed("s".into()))
        );
        assert_eq!(
            parse_duration("1h"),
            Err(DurationError::Malformed("1h".into()))
        );
        assert_eq!(
            parse_duration("-1s"),
            Err(DurationError::Malformed("-1s".into()))
        );
    }

    #[tokio::test]
    async fn kubeconfig_flag_names_the_unreadable_file() {
        let args = KubeArgs {
            kubeconfig: Some(PathBuf::from("/nonexistent/ferrolb-test/kubeconfig")),
            context: None,
        };
        match args.config().await {
            Err(ClientError::ReadKubeconfig { path, .. }) => {
                assert_eq!(path, PathBuf::from("/nonexistent/ferrolb-test/kubeconfig"));
            }
            other => panic!("expected ReadKubeconfig, got {other:?}"),
        }
    }
}
