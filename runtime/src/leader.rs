//! The leader-election driver: reads and writes the Lease through the Kubernetes API on every
//! retry period, lets [`crate::lease::Elector`] decide, and publishes "is leader" on a `watch`
//! channel. The binary does leader-only work (writing status) only while that value is `true`.
//!
//! On shutdown it first publishes `false`, so leader-only work stops, then clears
//! `holderIdentity` so a standby takes over on its next retry instead of waiting out the lease.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::args::LeaderElectionArgs;
use crate::lease::{Action, Elector, LeaseView, TimingError, Timings};

/// Which Lease to compete for, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub timings: Timings,
}

/// The election flags cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderConfigError {
    #[error(transparent)]
    Timing(#[from] TimingError),
    /// An empty `holderIdentity` means "released" to every candidate, so a candidate without a
    /// name could never be told apart from a free Lease.
    #[error("the candidate identity (--identity / POD_NAME) is empty")]
    EmptyIdentity,
    #[error("the Lease name (--lease-name) is empty")]
    EmptyLeaseName,
    #[error("the Lease namespace (--lease-namespace / POD_NAMESPACE) is empty")]
    EmptyNamespace,
}

impl TryFrom<&LeaderElectionArgs> for LeaderConfig {
    type Error = LeaderConfigError;

    fn try_from(args: &LeaderElectionArgs) -> Result<Self, Self::Error> {
        if args.identity.is_empty() {
            return Err(LeaderConfigError::EmptyIdentity);
        }
        if args.lease_name.is_empty() {
            return Err(LeaderConfigError::EmptyLeaseName);
        }
        if args.lease_namespace.is_empty() {
            return Err(LeaderConfigError::EmptyNamespace);
        }
        Ok(Self {
            namespace: args.lease_namespace.clone(),
            lease_name: args.lease_name.clone(),
            identity: args.identity.clone(),
            timings: Timings::new(args.lease_duration, args.renew_deadline, args.retry_period)?,
        })
    }
}

/// Whether this candidate leads, as published by its [`LeaderElector`].
///
/// A plain `watch::Receiver<bool>` keeps its last value when the sender is gone, so a crashed
/// election task would leave a stale `true` behind; this handle reads a closed channel as "not
/// leading", because nobody renews the Lease any more.
#[derive(Debug, Clone)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    /// Whether we lead now.
    pub fn is_leader(&self) -> bool {
        self.0.has_changed().is_ok() && *self.0.borrow()
    }

    /// Waits until leadership changes; `false` when the election task is gone (then
    /// [`is_leader`](Self::is_leader) stays `false`).
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
}

/// Releasing the Lease on shutdown failed; a standby takes over when the lease expires instead.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("releasing Lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("releasing Lease {namespace}/{name}: no answer within {after:?}")]
    TimedOut {
        namespace: String,
        name: String,
        after: Duration,
    },
}

/// One candidate in the election.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderConfig,
    elector: Elector,
    /// The Lease as last read; writes start from it so fields we do not own are kept.
    last_read: Option<Lease>,
    leading: watch::Sender<bool>,
}

impl LeaderElector {
    /// A candidate and the handle that tells whether it leads (initially not).
    pub fn new(client: kube::Client, config: LeaderConfig) -> (Self, Leadership) {
        let (leading, is_leader) = watch::channel(false);
        let elector = Elector::new(config.identity.clone(), config.timings);
        let api = Api::namespaced(client, &config.namespace);
        (
            Self {
                api,
                config,
                elector,
                last_read: None,
                leading,
            },
            Leadership(is_leader),
        )
    }

    /// Competes for the Lease until `shutdown` is cancelled, then releases it if held.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ReleaseError> {
        let mut ticks = tokio::time::interval(self.config.timings.retry_period());
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            // While we lead, the renew deadline is a timer of its own: leadership must end on
            // time even when no round completes (the API server hangs or is gone).
            let deadline = self.elector.deadline().filter(|_| *self.leading.borrow());
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = sleep_until(deadline) => self.publish(),
                _ = ticks.tick() => self.round(deadline).await,
            }
        }
        self.leading.send_replace(false);
        // Shutdown must not hang on an unreachable API server; past the renew deadline the
        // standby is close to taking over by expiry anyway.
        let after = self.config.timings.renew_deadline();
        tokio::time::timeout(after, self.release())
            .await
            .unwrap_or_else(|_| {
                Err(ReleaseError::TimedOut {
                    namespace: self.config.namespace.clone(),
                    name: self.config.lease_name.clone(),
                    after,
                })
            })
    }

    /// One read-decide-write round, given at most a retry period, and less when our leadership
    /// runs out sooner, so a hanging request never keeps a stale "leading" published.
    async fn round(&mut self, deadline: Option<Instant>) {
        let now = Instant::now();
        let retry = self.config.timings.retry_period();
        let budget = deadline.map_or(retry, |deadline| {
            retry.min(deadline.saturating_duration_since(now))
        });
        if tokio::time::timeout(budget, self.step()).await.is_err() {
            tracing::warn!(lease = %self.config.lease_name, ?budget, "Lease round timed out");
        }
        self.publish();
    }

    /// Reads the Lease, lets the rules decide, and writes if they say so.
    async fn step(&mut self) {
        match self.api.get_opt(&self.config.lease_name).await {
            // Every write is guarded by the version read; without one a replace would be
            // unconditional, so such an answer is not acted on.
            Ok(Some(lease)) if lease.metadata.resource_version.is_none() => {
                tracing::warn!(lease = %self.config.lease_name, "Lease read without a resourceVersion");
            }
            Ok(lease) => {
                self.elector
                    .observe(Instant::now(), lease.as_ref().map(lease_view));
                self.last_read = lease;
                self.act().await;
            }
            Err(error) => {
                tracing::warn!(%error, lease = %self.config.lease_name, "reading the Lease");
            }
        }
    }

    async fn act(&mut self) {
        let params = PostParams::default();
        let sent_at = Instant::now();
        let result = match self.elector.decide(sent_at) {
            Action::Wait { holder, expires_in } => {
                tracing::debug!(%holder, ?expires_in, "Lease held by another candidate");
                return;
            }
            Action::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.lease_name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.claim_spec(None, true, 0)),
                };
                self.api.create(&params, &lease).await
            }
            Action::Claim {
                resource_version,
                acquire,
                transitions,
            } => {
                let mut lease = self.last_read.clone().unwrap_or_default();
                lease.metadata.resource_version = Some(resource_version);
                lease.spec = Some(self.claim_spec(lease.spec.take(), acquire, transitions));
                self.api
                    .replace(&self.config.lease_name, &params, &lease)
                    .await
            }
        };
        match result {
            Ok(written) => {
                if !self.elector.is_leader(sent_at) {
                    tracing::info!(identity = %self.config.identity, lease = %self.config.lease_name, "acquired the Lease");
                }
                // Our own write is the newest version: a release must be guarded by it.
                self.elector
                    .observe(Instant::now(), Some(lease_view(&written)));
                self.last_read = Some(written);
                self.elector.claimed(sent_at);
            }
            // Another candidate wrote first (resourceVersion or create conflict): we lost this
            // round, the next read shows who won.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::debug!(lease = %self.config.lease_name, "lost a write race for the Lease");
            }
            Err(error) => {
                tracing::warn!(%error, lease = %self.config.lease_name, "writing the Lease");
            }
        }
    }

    /// The spec naming us, keeping `acquireTime` of the current term on renewal.
    fn claim_spec(&self, current: Option<LeaseSpec>, acquire: bool, transitions: i32) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let current = current.unwrap_or_default();
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(whole_seconds(self.config.timings.lease_duration())),
            renew_time: Some(now.clone()),
            acquire_time: if acquire {
                Some(now)
            } else {
                current.acquire_time
            },
            lease_transitions: Some(transitions),
            ..current
        }
    }

    /// Publishes whether we lead now; called after every round so a missed deadline shows even
    /// when the API server does not answer.
    fn publish(&self) {
        let leading = self.elector.is_leader(Instant::now());
        let was = self.leading.send_replace(leading);
        if was && !leading {
            tracing::warn!(identity = %self.config.identity, lease = %self.config.lease_name, "lost the Lease");
        }
    }

    /// Clears `holderIdentity` if the Lease still names us, guarded by the version we last saw.
    /// A conflict means the Lease changed since (e.g. a renewal that timed out here but was
    /// committed): re-read it once and release again if it still names us.
    async fn release(&mut self) -> Result<(), ReleaseError> {
        let error = |source| ReleaseError::Api {
            namespace: self.config.namespace.clone(),
            name: self.config.lease_name.clone(),
            source,
        };
        for attempt in 0..2 {
            let (Some(resource_version), Some(mut lease)) =
                (self.elector.release(), self.last_read.take())
            else {
                return Ok(());
            };
            lease.metadata.resource_version = Some(resource_version);
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = None;
            // Client-go convention: a released Lease says 1 s so any reader treats it as free.
            spec.lease_duration_seconds = Some(1);
            match self
                .api
                .replace(&self.config.lease_name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => {
                    self.elector.released();
                    tracing::info!(lease = %self.config.lease_name, "released the Lease");
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.code == 409 && attempt == 0 => {
                    let current = self
                        .api
                        .get_opt(&self.config.lease_name)
                        .await
                        .map_err(error)?;
                    self.elector
                        .observe(Instant::now(), current.as_ref().map(lease_view));
                    self.last_read = current;
                }
                Err(source) => return Err(error(source)),
            }
        }
        Ok(())
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// `leaseDurationSeconds` is whole seconds; rounding up makes standbys wait longer, never less.
fn whole_seconds(duration: Duration) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

/// The parts of a Lease the election rules read.
fn lease_view(lease: &Lease) -> LeaseView {
    let spec = lease.spec.as_ref();
    LeaseView {
        resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
        holder: spec
            .and_then(|s| s.holder_identity.clone())
            .filter(|holder| !holder.is_empty()),
        lease_duration: spec
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|seconds| u64::try_from(seconds).ok())
            .filter(|seconds| *seconds > 0)
            .map(Duration::from_secs),
        transitions: spec.and_then(|s| s.lease_transitions).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leadership_reads_a_gone_election_task_as_not_leading() {
        let (sender, receiver) = watch::channel(false);
        let mut leadership = Leadership(receiver);
        assert!(!leadership.is_leader());
        sender.send_replace(true);
        assert!(leadership.changed().await);
        assert!(leadership.is_leader());
        drop(sender);
        assert!(!leadership.is_leader());
        assert!(!leadership.changed().await);
    }

    #[test]
    fn lease_duration_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_secs(15)), 15);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(u64::MAX)), i32::MAX);
    }

    #[test]
    fn empty_holder_and_bad_duration_read_as_absent() {
        let lease = Lease {
            metadata: ObjectMeta {
                resource_version: Some("5".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(String::new()),
                lease_duration_seconds: Some(-3),
                lease_transitions: Some(4),
                ..LeaseSpec::default()
            }),
        };
        assert_eq!(
            lease_view(&lease),
            LeaseView {
                resource_version: "5".into(),
                holder: None,
                lease_duration: None,
                transitions: 4,
            }
        );
    }

    fn election_args() -> LeaderElectionArgs {
        LeaderElectionArgs {
            lease_name: "ferrolb-controller".into(),
            lease_namespace: "ferrolb-system".into(),
            identity: "ctl-0".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn config_from_args_keeps_names_and_timings() {
        let config = LeaderConfig::try_from(&election_args()).expect("valid");
        assert_eq!(config.identity, "ctl-0");
        assert_eq!(config.namespace, "ferrolb-system");
        assert_eq!(config.lease_name, "ferrolb-controller");
        assert_eq!(config.timings, Timings::default());
    }

    #[test]
    fn config_from_args_refuses_overlapping_timings() {
        let args = LeaderElectionArgs {
            lease_duration: Duration::from_secs(5),
            ..election_args()
        };
        assert!(matches!(
            LeaderConfig::try_from(&args),
            Err(LeaderConfigError::Timing(
                TimingError::DeadlineNotBelowDuration { .. }
            ))
        ));
    }

    #[test]
    fn config_from_args_refuses_empty_names() {
        let no_identity = LeaderElectionArgs {
            identity: String::new(),
            ..election_args()
        };
        assert_eq!(
            LeaderConfig::try_from(&no_identity),
            Err(LeaderConfigError::EmptyIdentity)
        );
        let no_lease = LeaderElectionArgs {
            lease_name: String::new(),
            ..election_args()
        };
        assert_eq!(
            LeaderConfig::try_from(&no_lease),
            Err(LeaderConfigError::EmptyLeaseName)
        );
        let no_namespace = LeaderElectionArgs {
            lease_namespace: String::new(),
            ..election_args()
        };
        assert_eq!(
            LeaderConfig::try_from(&no_namespace),
            Err(LeaderConfigError::EmptyNamespace)
        );
    }
}
