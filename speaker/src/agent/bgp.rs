//! The BGP side of the speaker (SPEC §6): follows the loop's [`BgpView`] and keeps the
//! [`PeerSet`] in step with it, reads the peers' TCP-MD5 passwords, and reports session state to
//! the status writer and the metrics.
//!
//! Contract:
//! - **Follows, never blocks the loop.** The layer-2 loop publishes each new view on a `watch`
//!   channel and moves on; a slow API call here (a password Secret) delays only BGP.
//! - **Applies on change.** The peer set is applied when the view changes or a password changed;
//!   applying is hitless (the peer set resets a session only for parameters fixed at OPEN).
//! - **Passwords by `get`.** Each Secret a peer references is read by name (key `password`) when
//!   the set of references changes and every [`PASSWORD_REFRESH`] for rotation; a Secret never
//!   read leaves its peer down with an error naming the peer and the Secret, while a failed
//!   re-read keeps the password already in use.
//! - **Status every [`STATUS_INTERVAL`].** Session states change without a view change (a
//!   session comes up), so they are sampled on a timer; the writer downstream writes on change.
//!   BFD packet counters change all the time: a change of the counters alone is published at
//!   most every [`BFD_COUNTERS_INTERVAL`] (any other change is published at once, with fresh
//!   counters). Every `SpeakerStatus` write wakes every speaker's loop (each follows all of them
//!   for the interfaces), so counters must not rewrite it every second on every node; the
//!   metrics carry them live.
//! - **Listening.** `--bgp-listen [::]:port` accepts both families: the driver's IPv6 listener
//!   is IPv6-only, so an IPv4 listener on the same port is added. When the port is taken (another
//!   BGP daemon on the host), the speaker still opens its own sessions and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferrolb_config::crd::speaker_status::{BfdSessionStatus, BfdState, BgpSessionStatus};
use ferrolb_config::model::{Config, SecretRef};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::args::Listen;
use crate::bgp::driver::Speaker;
use crate::bgp::peer_set::{BgpMetrics, PeerSet, PeerSetInputs};
use crate::bgp::rib_out::Routes;

/// How often session state is copied to the status and the metrics.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// Least time between two status publications that change nothing but BFD counters.
pub const BFD_COUNTERS_INTERVAL: Duration = Duration::from_secs(30);
/// How often referenced password Secrets are read again.
pub const PASSWORD_REFRESH: Duration = Duration::from_secs(60);
/// Key of the password in a `passwordSecret` (SPEC §2).
pub const PASSWORD_KEY: &str = "password";

/// What the BGP side needs from one computation of the loop.
#[derive(Debug, Clone, Default)]
pub struct BgpView {
    /// The validated snapshot the routes were computed from.
    pub config: Arc<Config>,
    /// `Desired::bgp`: per BGPPeer that selects this node, its routes.
    pub routes: BTreeMap<String, Routes>,
    /// This node's `InternalIP`s, in order (router id, source addresses, next hops).
    pub node_addresses: Vec<IpAddr>,
}

/// The BGP and BFD sessions for `SpeakerStatus`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BgpStatus {
    pub sessions: Vec<BgpSessionStatus>,
    pub bfd: Vec<BfdSessionStatus>,
}

impl BgpStatus {
    /// Whether `next` should replace this, the status last published `published_ago`: at once
    /// when anything but the BFD counters changed, otherwise once [`BFD_COUNTERS_INTERVAL`] has
    /// passed.
    pub fn replaced_by(&self, next: &BgpStatus, published_ago: Duration) -> bool {
        let without_counters = |status: &BgpStatus| -> Vec<(String, BfdState)> {
            status
                .bfd
                .iter()
                .map(|session| (session.peer.clone(), session.state))
                .collect()
        };
        if self == next {
            return false;
        }
        published_ago >= BFD_COUNTERS_INTERVAL
            || self.sessions != next.sessions
            || without_counters(self) != without_counters(next)
    }
}

/// The listening addresses for `--bgp-listen`.
fn listen_addresses(listen: Listen) -> Vec<SocketAddr> {
    match listen.0 {
        None => Vec::new(),
        Some(address) if address.ip().is_unspecified() && address.is_ipv6() => vec![
            address,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), address.port()),
        ],
        Some(address) => vec![address],
    }
}

/// Runs until `shutdown`, then ends every session (see [`PeerSet::shutdown`]).
pub async fn run(
    client: Client,
    listen: Listen,
    mut view: watch::Receiver<Arc<BgpView>>,
    status: watch::Sender<BgpStatus>,
    metrics: BgpMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addresses = listen_addresses(listen);
    let speaker = match Speaker::listen(&addresses) {
        Ok(speaker) => speaker,
        Err(error) => {
            // Often another BGP daemon on the host holds the port. Sessions we open still work;
            // only peers that connect to us (passive on our side) cannot reach us.
            tracing::warn!(%error, "BGP: not accepting connections; outbound sessions only");
            Speaker::listen(&[]).context("BGP speaker without listeners")?
        }
    };
    let mut peers = PeerSet::new(speaker);
    let mut passwords = Passwords::default();
    let mut reported: Vec<String> = Vec::new();
    let mut counters_failed = false;
    let mut published_at = Instant::now();
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let view_changed = tokio::select! {
            () = shutdown.cancelled() => break,
            changed = view.changed() => {
                if changed.is_err() {
                    break;
                }
                true
            }
            _ = tick.tick() => false,
        };
        let current = view.borrow_and_update().clone();
        let passwords_changed = passwords.refresh(&client, &current).await;
        if view_changed || passwords_changed {
            let errors = peers
                .apply(&PeerSetInputs {
                    config: &current.config,
                    routes: &current.routes,
                    passwords: &passwords.values,
                    node_addresses: &current.node_addresses,
                })
                .await;
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            if errors != reported {
                for error in &errors {
                    tracing::warn!(%error, "BGP peer not running as configured");
                }
                reported = errors;
            }
        }
        match peers.refresh_bfd_counters().await {
            Ok(()) => counters_failed = false,
            Err(error) => {
                if !counters_failed {
                    tracing::warn!(%error, "BFD counters unavailable");
                }
                counters_failed = true;
            }
        }
        peers.record_metrics(&metrics);
        let (sessions, bfd) = peers.status();
        let next = BgpStatus { sessions, bfd };
        let published = status.send_if_modified(|current| {
            let replace = current.replaced_by(&next, published_at.elapsed());
            if replace {
                *current = next;
            }
            replace
        });
        if published {
            published_at = Instant::now();
        }
    }
    peers.shutdown().await;
    Ok(())
}

/// The passwords read so far, and when.
#[derive(Default)]
struct Passwords {
    values: BTreeMap<SecretRef, String>,
    wanted: BTreeSet<SecretRef>,
    read_at: Option<Instant>,
}

impl Passwords {
    /// Reads the referenced Secrets when the references changed or the refresh is due; returns
    /// whether any password changed.
    async fn refresh(&mut self, client: &Client, view: &BgpView) -> bool {
        let wanted = PeerSet::referenced_secrets(&view.config, &view.routes);
        let due = self
            .read_at
            .is_none_or(|at| at.elapsed() >= PASSWORD_REFRESH);
        if wanted == self.wanted && !due {
            return false;
        }
        let mut values = BTreeMap::new();
        for secret in &wanted {
            match read_password(client, secret).await {
                Ok(password) => {
                    values.insert(secret.clone(), password);
                }
                Err(error) => {
                    tracing::warn!(
                        secret = %format!("{}/{}", secret.namespace, secret.name),
                        %error,
                        "BGP password unavailable"
                    );
                    // A failed re-read (API server away) keeps the password in use: dropping it
                    // would take a running session down for nothing.
                    if let Some(known) = self.values.get(secret) {
                        values.insert(secret.clone(), known.clone());
                    }
                }
            }
        }
        self.wanted = wanted;
        self.read_at = Some(Instant::now());
        let changed = values != self.values;
        self.values = values;
        changed
    }
}

/// A password Secret could not be used.
#[derive(Debug, thiserror::Error)]
enum PasswordError {
    #[error("reading the Secret: {0}")]
    Read(#[source] Box<kube::Error>),
    #[error("the Secret has no key {PASSWORD_KEY:?}")]
    Missing,
    #[error("key {PASSWORD_KEY:?} is not UTF-8 text")]
    NotText,
}

async fn read_password(client: &Client, secret: &SecretRef) -> Result<String, PasswordError> {
    let object = Api::<Secret>::namespaced(client.clone(), &secret.namespace)
        .get(&secret.name)
        .await
        .map_err(|error| PasswordError::Read(Box::new(error)))?;
    let bytes = object
        .data
        .and_then(|mut data| data.remove(PASSWORD_KEY))
        .ok_or(PasswordError::Missing)?;
    String::from_utf8(bytes.0).map_err(|_| PasswordError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(text: &str) -> Listen {
        Listen(Some(text.parse().expect("address")))
    }

    #[test]
    fn unspecified_ipv6_listen_adds_the_ipv4_wildcard() {
        assert_eq!(
            listen_addresses(listen("[::]:179")),
            vec![
                "[::]:179".parse().expect("v6"),
                "0.0.0.0:179".parse().expect("v4")
            ]
        );
    }

    #[test]
    fn specific_or_ipv4_listen_is_taken_as_written() {
        assert_eq!(
            listen_addresses(listen("192.0.2.4:1179")),
            vec!["192.0.2.4:1179".parse().expect("v4")]
        );
        assert_eq!(
            listen_addresses(listen("[2001:db8::4]:179")),
            vec!["[2001:db8::4]:179".parse().expect("v6")]
        );
        assert_eq!(
            listen_addresses(listen("0.0.0.0:179")),
            vec!["0.0.0.0:179".parse().expect("v4")]
        );
    }

    fn with_bfd(state: BfdState, packets_received: i64) -> BgpStatus {
        BgpStatus {
            sessions: Vec::new(),
            bfd: vec![BfdSessionStatus {
                peer: "tor".into(),
                state,
                packets_received,
                packets_sent: packets_received,
                state_changes: 2,
            }],
        }
    }

    #[test]
    fn counter_only_changes_wait_for_the_counters_interval_other_changes_do_not() {
        let published = with_bfd(BfdState::Up, 10);
        let soon = Duration::from_secs(1);
        assert!(!published.replaced_by(&published.clone(), BFD_COUNTERS_INTERVAL));
        let counted = with_bfd(BfdState::Up, 40);
        assert!(!published.replaced_by(&counted, soon));
        assert!(published.replaced_by(&counted, BFD_COUNTERS_INTERVAL));
        assert!(published.replaced_by(&with_bfd(BfdState::Down, 40), soon));
        assert!(published.replaced_by(&BgpStatus::default(), soon));
        let mut with_session = published.clone();
        with_session.sessions.push(BgpSessionStatus {
            peer: "tor".into(),
            state: ferrolb_config::crd::speaker_status::BgpState::Established,
            since: None,
            prefixes_sent: 1,
            last_error: None,
        });
        assert!(published.replaced_by(&with_session, soon));
    }

    #[test]
    fn no_listen_means_no_listener() {
        assert!(listen_addresses(Listen(None)).is_empty());
    }
}
