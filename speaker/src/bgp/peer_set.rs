//! The BGP sessions a node's desired state asks for (SPEC §2 `BGPPeer`/`BFDProfile`, §6).
//!
//! Contract: [`PeerSet::apply`] makes exactly the peers named in [`PeerSetInputs::routes`]
//! (`Desired::bgp`: the BGPPeers that select this node) run on the [`Speaker`], each holding its
//! routes; every peer it cannot run, or runs in a reduced form, comes back as a [`PeerSetError`]
//! naming the BGPPeer and the field. The decision is a pure plan ([`plan`]) from the running
//! peers and the wanted ones ([`wanted`]); `apply` only carries it out.
//!
//! How a change reaches a running session (SPEC §6, hitless):
//! - routes: UPDATEs and withdrawals on the running session (the Adj-RIB-Out diff);
//! - a parameter fixed at OPEN — ASNs (`myASN`, `peerASN`/`dynamicASN`), router id, hold time,
//!   address families (`dualStackAddressFamily`), graceful restart time (RFC 4271 §4.2, RFC 4760
//!   §8, RFC 4724 §3): the FSM ends the session with Cease / Other Configuration Change (RFC 4486)
//!   and opens a new one;
//! - what the driver binds to the peer when it starts — address and port, source address,
//!   password (RFC 2385), TTL (`ebgpMultiHop`), next hops: the peer is stopped (Cease / Other
//!   Configuration Change) and started again;
//! - keepalive, connect time and `passive` are not negotiated: the running session keeps going;
//! - the BFD profile, and adding or removing BFD: the BFD session is added, re-timed with a Poll
//!   Sequence (RFC 5880 §6.8.3) or set AdminDown and removed; BGP is never reset for it. (One
//!   exception: a peer started while BFD could not be started on the speaker is restarted once
//!   BFD runs, as the driver binds a peer to BFD when the peer is added.)
//! - a BGPPeer that no longer selects this node: Cease / Peer De-configured.
//!
//! Mapping of a BGPPeer (see [`wanted::peer_spec`]):
//! - router id: `routerID`, else the node's first IPv4 address; neither is an error and the peer
//!   does not start;
//! - families: the peer address's family, and the other one with `dualStackAddressFamily`;
//! - next hop self per family: `sourceAddress` for its family, else the node's first address of
//!   the family. The peer's own family without a next hop is an error (not started); the other
//!   family of a dual-stack peer is left out of the session, with an error saying so;
//! - source address: `sourceAddress`, else the node's first address of the peer's family (BFD
//!   needs a fixed source, RFC 5881 §3; and TCP, BFD and the next hop then agree);
//! - `ebgpMultiHop` is the TTL (RFC 4271 §5.1.3 eBGP peers otherwise get TTL 1); the BFD session
//!   is then multihop (RFC 5883);
//! - `passwordSecret`: the password the caller resolved for it; a missing one (or longer than the
//!   kernel's 80-octet TCP-MD5 key) is an error naming the Secret, and the peer is not started
//!   without it;
//! - connect retry: the first retry after 1 s, doubling up to `connectTime`;
//! - graceful restart: the R bit is set on the sessions started by the first `apply` of the
//!   process (RFC 4724 §3: a speaker that has just restarted);
//! - a wanted peer whose new configuration cannot be built keeps its running session as it is
//!   (routes still flow): a Secret that cannot be read for a moment does not drop traffic.
//!
//! [`PeerSet::shutdown`] ends every session: Cease / Administrative Shutdown, except for peers with
//! graceful restart, whose connections close without a NOTIFICATION so the peer keeps our routes
//! as stale until the restarted speaker is back or the restart time ends (RFC 4724 §4.2).

mod metrics;
mod plan;
#[cfg(test)]
mod tests;
mod wanted;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_config::crd::speaker_status::{BfdSessionStatus, BfdState, BgpSessionStatus, BgpState};
use ferrolb_config::model::{Config, SecretRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use self::metrics::bfd_session_growth;
pub use self::metrics::{BgpMetrics, PeerLabels};
use self::plan::{Running, Step};
use self::wanted::Wanted;
use super::driver::{BfdSessionCounters, DriverError, PeerHandle, PeerSpec, PeerStatus, Speaker};
use super::fsm::State;
use super::packet::CeaseSubcode;
use super::rib_out::Routes;
use crate::bfd::driver::{DriverConfig as BfdDriverConfig, DropReason, SessionCounters};
use crate::bfd::packet::SessionState;

/// What [`PeerSet::apply`] works from; the caller gathers it from the watches.
#[derive(Debug, Clone, Copy)]
pub struct PeerSetInputs<'a> {
    /// The validated snapshot: peers and BFD profiles.
    pub config: &'a Config,
    /// `Desired::bgp`: the peers that run on this node, with their routes.
    pub routes: &'a BTreeMap<String, Routes>,
    /// The passwords of [`PeerSet::referenced_secrets`] that could be read (key `password`).
    pub passwords: &'a BTreeMap<SecretRef, String>,
    /// This node's addresses (the Node's InternalIPs, in order), for router id, source address
    /// and next hops.
    pub node_addresses: &'a [IpAddr],
}

/// Why a wanted peer does not run, or runs in a reduced form. Each names the BGPPeer and the
/// field of it (or of its `BFDProfile`) involved.
#[derive(Debug, thiserror::Error)]
pub enum PeerSetError {
    /// The desired state names a peer the snapshot does not have.
    #[error("BGPPeer {peer}: not in the configuration snapshot; not started")]
    UnknownPeer {
        /// The BGPPeer.
        peer: String,
    },
    /// Two BGPPeers selecting this node have the same `spec.peerAddress`.
    #[error(
        "BGPPeer {peer}: spec.peerAddress {address} is already used by BGPPeer {other} on this node; not started"
    )]
    DuplicateAddress {
        /// The BGPPeer left out (the later by name).
        peer: String,
        /// The BGPPeer that runs.
        other: String,
        /// The address.
        address: IpAddr,
    },
    /// No `spec.routerID` and no IPv4 address on the node to use instead (RFC 4271 §4.2).
    #[error(
        "BGPPeer {peer}: spec.routerID is unset and the node has no IPv4 address to use as BGP identifier; not started"
    )]
    NoRouterId {
        /// The BGPPeer.
        peer: String,
    },
    /// The password Secret could not be read or has no key `password`.
    #[error(
        "BGPPeer {peer}: spec.passwordSecret: Secret {}/{} is missing or has no key `password`; not started without its password",
        secret.namespace, secret.name
    )]
    MissingPassword {
        /// The BGPPeer.
        peer: String,
        /// The Secret.
        secret: SecretRef,
    },
    /// The password is empty or longer than a TCP-MD5 key may be.
    #[error(
        "BGPPeer {peer}: spec.passwordSecret: the password in Secret {}/{} has {len} octets, a TCP-MD5 key needs 1 to 80; not started",
        secret.namespace, secret.name
    )]
    BadPassword {
        /// The BGPPeer.
        peer: String,
        /// The Secret.
        secret: SecretRef,
        /// Its length in octets.
        len: usize,
    },
    /// `spec.holdTime` does not fit the 2-octet OPEN field.
    #[error(
        "BGPPeer {peer}: spec.holdTime {hold_time:?} exceeds 65535 s (RFC 4271 section 4.2); not started"
    )]
    HoldTimeTooLong {
        /// The BGPPeer.
        peer: String,
        /// The configured value.
        hold_time: Duration,
    },
    /// A family of the session has no address to announce as next hop.
    #[error(
        "BGPPeer {peer}: spec.sourceAddress is not {family} and the node has no {family} address to announce as next hop; {family} left out of the session (not started when it is the session's own family)"
    )]
    NoNextHop {
        /// The BGPPeer.
        peer: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// The BFD profile cannot be run; the peer runs without BFD.
    #[error("BGPPeer {peer}: spec.bfdProfile: BFDProfile {profile}: {reason}; running without BFD")]
    BadBfdProfile {
        /// The BGPPeer.
        peer: String,
        /// The BFDProfile.
        profile: String,
        /// Why.
        reason: String,
    },
    /// BFD needs a source address and there is none.
    #[error(
        "BGPPeer {peer}: spec.bfdProfile needs a source address (spec.sourceAddress or a node address of the peer's family); running without BFD"
    )]
    BfdWithoutLocalAddress {
        /// The BGPPeer.
        peer: String,
    },
    /// BFD could not be started on this speaker; the peer runs without it for now.
    #[error(
        "BGPPeer {peer}: spec.bfdProfile: BFD is not running on this node ({detail}); running without BFD"
    )]
    BfdUnavailable {
        /// The BGPPeer.
        peer: String,
        /// Why BFD did not start.
        detail: String,
    },
    /// The driver refused the peer or a change to it.
    #[error("BGPPeer {peer}: {source}")]
    Driver {
        /// The BGPPeer.
        peer: String,
        /// Why.
        #[source]
        source: DriverError,
    },
}

impl PeerSetError {
    /// The BGPPeer the error is about.
    pub fn peer(&self) -> &str {
        match self {
            PeerSetError::UnknownPeer { peer }
            | PeerSetError::DuplicateAddress { peer, .. }
            | PeerSetError::NoRouterId { peer }
            | PeerSetError::MissingPassword { peer, .. }
            | PeerSetError::BadPassword { peer, .. }
            | PeerSetError::HoldTimeTooLong { peer, .. }
            | PeerSetError::NoNextHop { peer, .. }
            | PeerSetError::BadBfdProfile { peer, .. }
            | PeerSetError::BfdWithoutLocalAddress { peer }
            | PeerSetError::BfdUnavailable { peer, .. }
            | PeerSetError::Driver { peer, .. } => peer,
        }
    }
}

/// A peer running on the speaker.
#[derive(Debug)]
struct RunningPeer {
    handle: PeerHandle,
    /// The spec it runs with (BFD as wanted, even while BFD is unavailable).
    spec: PeerSpec,
    routes: Routes,
    bfd_attached: bool,
    /// The peer's `updates_sent` already added to the metrics counter.
    updates_recorded: u64,
    /// Its BFD session's counters as last read from the driver ([`PeerSet::refresh_bfd_counters`]).
    bfd_counters: Option<BfdSessionCounters>,
    /// Its BFD session's counters already added to the metrics counters.
    bfd_recorded: Option<BfdSessionCounters>,
}

/// The speaker and the peers it runs, by BGPPeer name. Must be used inside the speaker's tokio
/// runtime (sockets belong to that runtime's network namespace).
#[derive(Debug)]
pub struct PeerSet {
    speaker: Speaker,
    running: BTreeMap<String, RunningPeer>,
    /// Wanted peers that do not run, with why; reported as Idle sessions.
    refused: BTreeMap<String, String>,
    /// BFD runs on the speaker.
    bfd_available: bool,
    /// Sessions have been started by this process before (graceful restart R bit).
    started_before: bool,
    /// Peers whose metric series exist.
    recorded: BTreeSet<String>,
    /// The BFD driver's drops by reason as last read from it.
    bfd_dropped: BTreeMap<DropReason, u64>,
    /// The drops already added to the metrics counters.
    bfd_dropped_recorded: BTreeMap<DropReason, u64>,
}

impl PeerSet {
    /// A peer set on `speaker`. BFD is started on the default ports (UDP 3784 and 4784, both
    /// families) when the first peer starts, unless the caller started it already.
    pub fn new(speaker: Speaker) -> Self {
        PeerSet {
            speaker,
            running: BTreeMap::new(),
            refused: BTreeMap::new(),
            bfd_available: false,
            started_before: false,
            recorded: BTreeSet::new(),
            bfd_dropped: BTreeMap::new(),
            bfd_dropped_recorded: BTreeMap::new(),
        }
    }

    /// The Secrets the peers of `routes` need; the caller reads them (key `password`) into
    /// [`PeerSetInputs::passwords`].
    pub fn referenced_secrets(
        config: &Config,
        routes: &BTreeMap<String, Routes>,
    ) -> BTreeSet<SecretRef> {
        wanted::referenced_secrets(config, routes)
    }

    /// Starts, stops and updates peers so that exactly the peers of `inputs.routes` run, each
    /// with its routes; returns what could not be done as asked (see the module docs).
    pub async fn apply(&mut self, inputs: &PeerSetInputs<'_>) -> Vec<PeerSetError> {
        let (wanted, mut errors) = wanted::wanted_peers(
            inputs.config,
            inputs.routes,
            inputs.passwords,
            inputs.node_addresses,
            !self.started_before,
        );
        let mut bfd_problem = None;
        if !self.bfd_available && wanted.values().any(|w| w.spec.is_some()) {
            match self.speaker.start_bfd(&BfdDriverConfig::default()) {
                Ok(()) => self.bfd_available = true,
                Err(error) => bfd_problem = Some(error.to_string()),
            }
        }
        let running: BTreeMap<String, Running<'_>> = self
            .running
            .iter()
            .map(|(name, peer)| {
                let view = Running {
                    spec: &peer.spec,
                    routes: &peer.routes,
                    bfd_attached: peer.bfd_attached,
                };
                (name.clone(), view)
            })
            .collect();
        let steps = plan::plan(&running, &wanted, self.bfd_available);
        for step in steps {
            self.execute(step, &wanted, bfd_problem.as_deref(), &mut errors)
                .await;
        }
        if !self.running.is_empty() {
            self.started_before = true;
        }
        // Every peer the desired state names that does not run, even one refused before
        // mapping (an address another BGPPeer has, a name the snapshot lacks).
        self.refused = inputs
            .routes
            .keys()
            .filter(|name| !self.running.contains_key(*name))
            .map(|name| {
                let why: Vec<String> = errors
                    .iter()
                    .filter(|e| e.peer() == name)
                    .map(ToString::to_string)
                    .collect();
                (name.clone(), why.join("; "))
            })
            .collect();
        errors
    }

    async fn execute(
        &mut self,
        step: Step,
        wanted: &BTreeMap<String, Wanted>,
        bfd_problem: Option<&str>,
        errors: &mut Vec<PeerSetError>,
    ) {
        let driver_error = |peer: &str, source| PeerSetError::Driver {
            peer: peer.to_owned(),
            source,
        };
        match step {
            Step::Stop { peer, subcode } => {
                if let Some(running) = self.running.remove(&peer) {
                    tracing::info!(%peer, ?subcode, "stopping BGP session");
                    running.handle.stop(subcode).await;
                }
            }
            Step::Start { peer } => {
                let Some((spec, want)) = wanted.get(&peer).and_then(|w| Some((w.spec.clone()?, w)))
                else {
                    return;
                };
                let mut driver_spec = spec.clone();
                if !self.bfd_available && driver_spec.bfd.take().is_some() {
                    errors.push(PeerSetError::BfdUnavailable {
                        peer: peer.clone(),
                        detail: bfd_problem.unwrap_or("not started").to_owned(),
                    });
                }
                match self.speaker.add_peer(driver_spec, want.routes.clone()) {
                    Ok(handle) => {
                        tracing::info!(%peer, address = %spec.address, "starting BGP session");
                        let bfd_attached = self.bfd_available && spec.local_address.is_some();
                        let running = RunningPeer {
                            handle,
                            spec,
                            routes: want.routes.clone(),
                            bfd_attached,
                            updates_recorded: 0,
                            bfd_counters: None,
                            bfd_recorded: None,
                        };
                        self.running.insert(peer, running);
                    }
                    Err(source) => errors.push(driver_error(&peer, source)),
                }
            }
            Step::Reconfigure { peer, resets } => {
                let (Some(running), Some(spec)) = (
                    self.running.get_mut(&peer),
                    wanted.get(&peer).and_then(|w| w.spec.as_ref()),
                ) else {
                    return;
                };
                if resets {
                    tracing::info!(%peer, "OPEN parameters changed: resetting BGP session");
                }
                match running.handle.reconfigure(spec.session.clone()) {
                    Ok(()) => running.spec.session = spec.session.clone(),
                    Err(source) => errors.push(driver_error(&peer, source)),
                }
            }
            Step::SetBfd { peer } => {
                let (Some(running), Some(spec)) = (
                    self.running.get_mut(&peer),
                    wanted.get(&peer).and_then(|w| w.spec.as_ref()),
                ) else {
                    return;
                };
                if !running.bfd_attached {
                    // Started while BFD could not run: the restart once it runs brings it.
                    running.spec.bfd = spec.bfd;
                    if spec.bfd.is_some() {
                        errors.push(PeerSetError::BfdUnavailable {
                            peer: peer.clone(),
                            detail: bfd_problem.unwrap_or("not started").to_owned(),
                        });
                    }
                    return;
                }
                match running.handle.set_bfd_profile(spec.bfd) {
                    Ok(()) => running.spec.bfd = spec.bfd,
                    Err(source) => errors.push(driver_error(&peer, source)),
                }
            }
            Step::SetRoutes { peer } => {
                let (Some(running), Some(want)) = (self.running.get_mut(&peer), wanted.get(&peer))
                else {
                    return;
                };
                running.handle.set_routes(want.routes.clone());
                running.routes = want.routes.clone();
            }
        }
    }

    /// Reads the BFD driver's counters, which [`PeerSet::status`] and
    /// [`PeerSet::record_metrics`] report from then on. The driver keeps them (it counts every
    /// packet; the peer tasks never see them), so they are read on the caller's schedule.
    pub async fn refresh_bfd_counters(&mut self) -> Result<(), DriverError> {
        let Some(counters) = self.speaker.bfd_counters().await? else {
            return Ok(());
        };
        for running in self.running.values_mut() {
            running.bfd_counters = running
                .handle
                .bfd_session()
                .and_then(|key| counters.sessions.get(&key))
                .copied();
        }
        self.bfd_dropped = counters.driver.dropped;
        Ok(())
    }

    /// The sessions for `SpeakerStatus.status.bgpSessions` and `.bfdSessions`, by peer name.
    /// Wanted peers that do not run show as `Idle` with the reason as `lastError`. BFD counters
    /// are those of the last [`PeerSet::refresh_bfd_counters`].
    pub fn status(&self) -> (Vec<BgpSessionStatus>, Vec<BfdSessionStatus>) {
        let mut bgp = Vec::new();
        let mut bfd = Vec::new();
        for (name, running) in &self.running {
            let status = running.handle.status().borrow().clone();
            if let Some(session) = &status.bfd {
                let counters = running.bfd_counters.map(|c| c.counters);
                bfd.push(bfd_session(
                    name,
                    session.state,
                    &counters.unwrap_or_default(),
                ));
            }
            bgp.push(bgp_session(name, &status));
        }
        for (name, why) in &self.refused {
            bgp.push(BgpSessionStatus {
                peer: name.clone(),
                state: BgpState::Idle,
                since: None,
                prefixes_sent: 0,
                last_error: (!why.is_empty()).then(|| why.clone()),
            });
        }
        bgp.sort_by(|a, b| a.peer.cmp(&b.peer));
        (bgp, bfd)
    }

    /// Copies the sessions' state into `metrics`, adds what the BFD counters grew by since the
    /// last call (as of the last [`PeerSet::refresh_bfd_counters`]), and removes the series of
    /// peers that no longer run.
    pub fn record_metrics(&mut self, metrics: &BgpMetrics) {
        let mut recorded = BTreeSet::new();
        for (name, running) in &mut self.running {
            let status = running.handle.status().borrow().clone();
            let labels = PeerLabels { peer: name.clone() };
            let up = status.state == State::Established;
            metrics.session_up.get_or_create(&labels).set(i64::from(up));
            metrics
                .prefixes_announced
                .get_or_create(&labels)
                .set(i64::try_from(status.prefixes_sent).unwrap_or(i64::MAX));
            let new_updates = status.updates_sent.saturating_sub(running.updates_recorded);
            metrics
                .updates_sent
                .get_or_create(&labels)
                .inc_by(new_updates);
            running.updates_recorded = status.updates_sent;
            let bfd_up = status
                .bfd
                .as_ref()
                .is_some_and(|b| b.state == SessionState::Up);
            if status.bfd.is_some() {
                metrics
                    .bfd_session_up
                    .get_or_create(&labels)
                    .set(i64::from(bfd_up));
                let grown = running
                    .bfd_counters
                    .map(|now| bfd_session_growth(running.bfd_recorded.as_ref(), &now));
                metrics.record_bfd_session(&labels, &grown.unwrap_or_default());
            } else {
                metrics.forget_bfd(&labels);
            }
            running.bfd_recorded = running.bfd_counters;
            recorded.insert(name.clone());
        }
        for gone in self.recorded.difference(&recorded) {
            metrics.forget(gone);
        }
        self.recorded = recorded;
        metrics.record_bfd_dropped(&self.bfd_dropped_recorded, &self.bfd_dropped);
        self.bfd_dropped_recorded.clone_from(&self.bfd_dropped);
    }

    /// Ends every session (see the module docs for graceful restart) and waits for them.
    pub async fn shutdown(self) {
        let stopping: Vec<_> = self
            .running
            .into_values()
            .map(|running| {
                let graceful = running.spec.session.graceful_restart.is_some();
                tokio::spawn(async move {
                    if graceful {
                        running.handle.abort().await;
                    } else {
                        running
                            .handle
                            .stop(CeaseSubcode::AdministrativeShutdown)
                            .await;
                    }
                })
            })
            .collect();
        for task in stopping {
            let _ = task.await;
        }
    }
}

fn bgp_session(name: &str, status: &PeerStatus) -> BgpSessionStatus {
    BgpSessionStatus {
        peer: name.to_owned(),
        state: bgp_state(status.state),
        since: Timestamp::try_from(status.since).ok().map(Time),
        prefixes_sent: i64::try_from(status.prefixes_sent).unwrap_or(i64::MAX),
        last_error: status.last_error.as_ref().map(ToString::to_string),
    }
}

fn bgp_state(state: State) -> BgpState {
    match state {
        State::Idle => BgpState::Idle,
        State::Connect => BgpState::Connect,
        State::Active => BgpState::Active,
        State::OpenSent => BgpState::OpenSent,
        State::OpenConfirm => BgpState::OpenConfirm,
        State::Established => BgpState::Established,
    }
}

fn bfd_session(name: &str, state: SessionState, counters: &SessionCounters) -> BfdSessionStatus {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    BfdSessionStatus {
        peer: name.to_owned(),
        state: bfd_state(state),
        packets_received: count(counters.packets_in),
        packets_sent: count(counters.packets_out),
        state_changes: count(counters.state_changes),
    }
}

fn bfd_state(state: SessionState) -> BfdState {
    match state {
        SessionState::AdminDown => BfdState::AdminDown,
        SessionState::Down => BfdState::Down,
        SessionState::Init => BfdState::Init,
        SessionState::Up => BfdState::Up,
    }
}
