//! BFD protecting a BGP session: the peer's BFD session in the [`crate::bfd::driver`], its state
//! changes routed to the peer task, and what the peer task does with them.
//!
//! Contract (SPEC §6, RFC 5882):
//! - A peer configured with a [`BfdProfile`] runs one BFD session to the peer's address from the
//!   peer's local address: single-hop (RFC 5881, port 3784, TTL 255) for a directly connected
//!   peer, multihop (RFC 5883, port 4784, received TTL at least the profile's minimum) when the
//!   peer's TTL allows more than one hop.
//! - A state change that [`StateChange::signals_path_failure`] (Up → Down by detection timeout or
//!   because the peer said Down) takes the BGP session down at once: "the client protocol SHOULD
//!   treat the BFD session going down as a failure of the forwarding path" (RFC 5882 §3.2, §4.3).
//!   The path is dead, so nothing waits on it: a Cease NOTIFICATION with subcode BFD Down (RFC
//!   9384 §2) is offered to the socket without waiting (it gets through only if the path is in
//!   fact one-way broken), the connection is closed immediately and the FSM sees the connection
//!   fail (RFC 4271 event 18), so its ConnectRetry backoff reconnects when the path returns.
//! - The peer going AdminDown does not touch BGP: AdminDown says nothing about the path (RFC 5882
//!   §3.2), e.g. the peer's BFD is being reconfigured or maintained.
//! - A new profile for a running session is applied with a Poll Sequence (RFC 5880 §6.8.3); the
//!   BFD session and the BGP session both stay up. Only a changed minimum TTL of a multihop
//!   session replaces the BFD session, and BGP is still left alone.
//! - Stopping the peer first sets the BFD session AdminDown (RFC 5880 §6.8.16), so the peer does
//!   not mistake a deconfigured session for a failed path; aborting it (a crash) does not.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU8, NonZeroU32};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bfd::driver::{
    Counters, DriverConfig, DriverError as BfdDriverError, DriverHandle, HopMode, MULTIHOP_PORT,
    PeerSpec as BfdPeerSpec, SINGLE_HOP_PORT, SessionCounters, SessionEvent, SessionKey,
};
use crate::bfd::packet::{Diagnostic, SessionState};
use crate::bfd::session::{ConfigError as BfdConfigError, SessionConfig, StateChange};

/// BFD parameters of one BGP peer; the fields of the `BFDProfile` resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdProfile {
    /// Required Min RX Interval (RFC 5880 §4.1).
    pub receive_interval: Duration,
    /// Desired Min TX Interval (RFC 5880 §4.1).
    pub transmit_interval: Duration,
    /// Detect Mult (RFC 5880 §4.1).
    pub detect_multiplier: NonZeroU8,
    /// Wait for the peer's first packet (RFC 5880 §6.1 passive role).
    pub passive: bool,
    /// Lowest TTL / Hop Limit accepted on a multihop session (RFC 5883 §5); unused single-hop,
    /// where only 255 is accepted (RFC 5881 §5).
    pub minimum_ttl: u8,
}

impl BfdProfile {
    /// The same interval both ways, active role, and the `BFDProfile` default minimum TTL of
    /// 254 (one hop, RFC 5883 §5).
    pub fn symmetric(interval: Duration, detect_multiplier: NonZeroU8) -> Self {
        BfdProfile {
            receive_interval: interval,
            transmit_interval: interval,
            detect_multiplier,
            passive: false,
            minimum_ttl: 254,
        }
    }

    /// The timers as the BFD session takes them.
    pub fn session_config(&self) -> Result<SessionConfig, BfdConfigError> {
        SessionConfig::new(
            self.transmit_interval,
            self.receive_interval,
            self.detect_multiplier,
            self.passive,
        )
    }
}

/// Why a peer's BFD session cannot be set up; each names the peer.
#[derive(Debug, thiserror::Error)]
pub enum BfdLinkError {
    /// BFD was not started on the speaker ([`super::Speaker::start_bfd`]).
    #[error("peer {peer}: BFD is not running on this speaker")]
    NotStarted {
        /// The peer.
        peer: IpAddr,
    },
    /// BFD packets need a fixed source address (RFC 5881 §3 demultiplexes by address pair).
    #[error("peer {peer}: BFD needs the session's local address to be configured")]
    NoLocalAddress {
        /// The peer.
        peer: IpAddr,
    },
    /// The profile's timers cannot be carried on the wire.
    #[error("peer {peer}: BFD profile: {source}")]
    Profile {
        /// The peer.
        peer: IpAddr,
        /// Why.
        #[source]
        source: BfdConfigError,
    },
    /// The BFD driver refused the session or has stopped.
    #[error("peer {peer}: {source}")]
    Driver {
        /// The peer.
        peer: IpAddr,
        /// Why.
        #[source]
        source: BfdDriverError,
    },
}

/// A peer's BFD session as `SpeakerStatus.bfdSessions` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdPeerStatus {
    /// Local session state (RFC 5880 §6.2).
    pub state: SessionState,
    /// bfd.LocalDiag: why the session last changed state (RFC 5880 §4.1).
    pub diag: Diagnostic,
    /// When the session entered `state`.
    pub since: SystemTime,
    /// Times this session took the BGP session down.
    pub path_failures: u64,
}

impl BfdPeerStatus {
    /// The state's name as RFC 5880 §4.1 spells it.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            SessionState::AdminDown => "AdminDown",
            SessionState::Down => "Down",
            SessionState::Init => "Init",
            SessionState::Up => "Up",
        }
    }
}

/// The BFD driver's counters at one moment, for `SpeakerStatus.bfdSessions` and the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BfdCounters {
    /// Driver-wide: every datagram received, sent or dropped (by reason).
    pub driver: Counters,
    /// Each session's own counters, by the key a peer's session runs under
    /// ([`super::PeerHandle::bfd_session`]).
    pub sessions: HashMap<SessionKey, BfdSessionCounters>,
}

/// One BFD session's counters and which session they belong to: a session removed and added
/// again (BFD switched off and on, a new multihop minimum TTL) counts from zero under a new
/// discriminator, so a reader keeping running totals can tell a restart from a decrease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdSessionCounters {
    /// bfd.LocalDiscr (RFC 5880 §6.8.1), unique among the driver's live sessions.
    pub discriminator: NonZeroU32,
    pub counters: SessionCounters,
}

/// Peer tasks waiting for their BFD session's state changes.
type Subscribers = Arc<Mutex<HashMap<SessionKey, mpsc::UnboundedSender<StateChange>>>>;

/// The speaker's BFD driver and the task that hands each state change to its peer.
#[derive(Debug)]
pub(super) struct BfdHub {
    driver: DriverHandle,
    subscribers: Subscribers,
    dispatch: JoinHandle<()>,
}

impl BfdHub {
    /// Opens the BFD listeners; call inside the runtime (and namespace) of the speaker.
    pub(super) fn start(config: &DriverConfig) -> Result<Self, BfdDriverError> {
        let (driver, mut events) = DriverHandle::start(config)?;
        let subscribers: Subscribers = Arc::default();
        let routes = subscribers.clone();
        let dispatch = tokio::spawn(async move {
            while let Some(SessionEvent { key, change }) = events.recv().await {
                let subscriber = routes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .cloned();
                if let Some(subscriber) = subscriber {
                    let _ = subscriber.send(change);
                }
            }
        });
        Ok(Self {
            driver,
            subscribers,
            dispatch,
        })
    }

    /// The driver's counters and every session's.
    pub(super) async fn counters(&self) -> Result<BfdCounters, BfdDriverError> {
        let driver = self.driver.counters().await?;
        let sessions = self
            .driver
            .sessions()
            .await?
            .into_iter()
            .map(|session| {
                let counters = BfdSessionCounters {
                    discriminator: session.local_discriminator,
                    counters: session.counters,
                };
                (session.spec.key(), counters)
            })
            .collect();
        Ok(BfdCounters { driver, sessions })
    }

    /// The BFD side of one peer. Hop mode and addresses are fixed with the peer: multihop when
    /// the peer's TTL allows more than one hop (RFC 5883 §2), single-hop otherwise.
    pub(super) fn attach(
        &self,
        peer: IpAddr,
        local: Option<IpAddr>,
        ttl: Option<u8>,
    ) -> Result<PeerBfd, BfdLinkError> {
        let local = local.ok_or(BfdLinkError::NoLocalAddress { peer })?;
        let multihop = ttl.is_some_and(|ttl| ttl > 1);
        let port = if multihop {
            MULTIHOP_PORT
        } else {
            SINGLE_HOP_PORT
        };
        let key = SessionKey {
            peer,
            local,
            multihop,
        };
        let (changes_tx, changes) = mpsc::unbounded_channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, changes_tx);
        Ok(PeerBfd {
            driver: self.driver.clone(),
            subscribers: self.subscribers.clone(),
            peer: SocketAddr::new(peer, port),
            key,
            running: None,
            changes,
            status: None,
        })
    }
}

impl Drop for BfdHub {
    fn drop(&mut self) {
        self.dispatch.abort();
    }
}

/// One peer's BFD session, owned by the peer task.
#[derive(Debug)]
pub(super) struct PeerBfd {
    driver: DriverHandle,
    subscribers: Subscribers,
    peer: SocketAddr,
    key: SessionKey,
    /// The session in the driver and the profile it runs with.
    running: Option<(BfdPeerSpec, BfdProfile)>,
    changes: mpsc::UnboundedReceiver<StateChange>,
    status: Option<BfdPeerStatus>,
}

impl PeerBfd {
    /// Brings the driver's session in line with `profile`: added, removed, re-timed with a Poll
    /// Sequence (RFC 5880 §6.8.3) or, for a new multihop minimum TTL, replaced.
    pub(super) async fn apply(&mut self, profile: Option<BfdProfile>) -> Result<(), BfdLinkError> {
        let peer = self.key.peer;
        let driver_error = |source| BfdLinkError::Driver { peer, source };
        let Some(profile) = profile else {
            if self.running.take().is_some() {
                self.status = None;
                // Deconfigured on purpose: AdminDown tells the peer not to take its client
                // down (RFC 5882 §3.2).
                self.driver
                    .set_admin_up(self.key, false)
                    .await
                    .map_err(driver_error)?;
                self.driver
                    .remove_session(self.key)
                    .await
                    .map_err(driver_error)?;
            }
            return Ok(());
        };
        let config = profile
            .session_config()
            .map_err(|source| BfdLinkError::Profile { peer, source })?;
        let spec = BfdPeerSpec {
            peer: self.peer,
            local: self.key.local,
            hops: if self.key.multihop {
                HopMode::Multihop {
                    min_ttl: profile.minimum_ttl,
                }
            } else {
                HopMode::SingleHop
            },
        };
        match self.running {
            Some((running, _)) if running == spec => {
                self.driver
                    .reconfigure(self.key, config)
                    .await
                    .map_err(driver_error)?;
            }
            Some(_) => {
                self.driver
                    .remove_session(self.key)
                    .await
                    .map_err(driver_error)?;
                self.running = None;
                self.add(spec, config).await?;
            }
            None => self.add(spec, config).await?,
        }
        self.running = Some((spec, profile));
        Ok(())
    }

    async fn add(&mut self, spec: BfdPeerSpec, config: SessionConfig) -> Result<(), BfdLinkError> {
        let peer = self.key.peer;
        self.driver
            .add_session(spec, config)
            .await
            .map_err(|source| BfdLinkError::Driver { peer, source })?;
        self.status = Some(BfdPeerStatus {
            state: SessionState::Down,
            diag: Diagnostic::NoDiagnostic,
            since: SystemTime::now(),
            path_failures: self.status.as_ref().map_or(0, |s| s.path_failures),
        });
        Ok(())
    }

    /// The key the peer's session runs under in the driver, whether or not it runs now.
    pub(super) fn key(&self) -> SessionKey {
        self.key
    }

    /// The next state change of the session; pending forever while it has none to give.
    pub(super) async fn next_change(&mut self) -> StateChange {
        match self.changes.recv().await {
            Some(change) => change,
            None => std::future::pending().await,
        }
    }

    /// Records a state change and says whether the BGP session must go down for it.
    pub(super) fn on_change(&mut self, change: StateChange) -> bool {
        let path_failed = change.signals_path_failure();
        if let Some(status) = self.status.as_mut() {
            status.state = change.to;
            status.diag = change.diag;
            status.since = SystemTime::now();
            status.path_failures += u64::from(path_failed);
        }
        // A change from a session removed a moment ago is not this session's.
        path_failed && self.running.is_some()
    }

    pub(super) fn status(&self) -> Option<BfdPeerStatus> {
        self.status.clone()
    }

    /// Ends the session: AdminDown first when the peer is stopped on purpose (RFC 5880
    /// §6.8.16, RFC 5882 §3.2), silently when it is aborted.
    pub(super) async fn close(mut self, admin_down: bool) {
        if self.running.take().is_none() {
            return;
        }
        if admin_down {
            let _ = self.driver.set_admin_up(self.key, false).await;
        }
        let _ = self.driver.remove_session(self.key).await;
    }
}

impl Drop for PeerBfd {
    fn drop(&mut self) {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}
