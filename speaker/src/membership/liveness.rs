//! The liveness table: which peer speakers are alive, judged only by their authenticated heartbeats
//! (SPEC §5), so failover keeps working while the API server is down.
//!
//! Contract: pure logic, no async, no I/O. The driver passes received datagrams and ticks with the
//! monotonic time (`Instant`, for timeouts) and the wall clock (Unix ms, for the freshness check),
//! calls [`Liveness::heartbeat`] every [`LivenessConfig::interval`] and sends the bytes to every
//! peer, and calls `handle(now, Event::Tick)` no later than [`Liveness::next_deadline`].
//!
//! Rules, in the order they are applied to a datagram (each rejection is counted by
//! [`DropReason`]):
//! 1. It must decode and authenticate ([`Heartbeat::decode`]).
//! 2. It must not claim to come from this node, and must come from a configured peer
//!    ([`Liveness::set_peers`], learnt from the API).
//! 3. Its timestamp must be within [`LivenessConfig::max_clock_skew`] of our wall clock, so that a
//!    recorded packet cannot be replayed to a receiver that has since forgotten the sender's state.
//! 4. Replay protection per sender: an older incarnation is dropped; in the current incarnation the
//!    sequence number must grow (an equal one is a duplicate, a smaller one arrived out of order —
//!    heartbeats are idempotent, so a late one carries nothing and is dropped). A newer incarnation
//!    (the peer restarted) is accepted and resets the sequence.
//!
//! An accepted heartbeat marks the sender up; one with the leaving flag marks it down at once. A peer
//! not heard for `interval × detect_multiplier` is marked down. The default 100 ms × 3 detects a
//! dead speaker in 300 ms plus one tick.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::packet::{Heartbeat, HeartbeatKey, MAX_NAME_LEN, PacketError};

/// Timing of heartbeats and detection. Defaults are written once, here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivenessConfig {
    /// How often this speaker sends a heartbeat.
    pub interval: Duration,
    /// A peer missing this many intervals is down.
    pub detect_multiplier: u32,
    /// Largest accepted difference between a heartbeat's timestamp and our wall clock. Generous:
    /// clocks of cluster nodes are NTP-synchronised, and a too tight bound would stop failover.
    pub max_clock_skew: Duration,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            interval: Duration::from_millis(100),
            detect_multiplier: 3,
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

impl LivenessConfig {
    /// How long a peer may stay silent before it is down.
    pub fn detect_time(&self) -> Duration {
        self.interval * self.detect_multiplier
    }
}

/// Why a liveness table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LivenessError {
    #[error("heartbeat interval must be greater than zero")]
    ZeroInterval,
    #[error("detect multiplier must be at least 1")]
    ZeroMultiplier,
    #[error("node name of {len} octets, must be 1 to {MAX_NAME_LEN}")]
    NodeName { len: usize },
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    Truncated,
    WrongVersion,
    BadMac,
    Malformed,
    FromSelf,
    UnknownPeer,
    ClockSkew,
    OldIncarnation,
    Duplicate,
    OutOfOrder,
}

impl DropReason {
    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::WrongVersion => "wrong_version",
            DropReason::BadMac => "bad_mac",
            DropReason::Malformed => "malformed",
            DropReason::FromSelf => "from_self",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::ClockSkew => "clock_skew",
            DropReason::OldIncarnation => "old_incarnation",
            DropReason::Duplicate => "duplicate",
            DropReason::OutOfOrder => "out_of_order",
        }
    }

    fn of(error: &PacketError) -> DropReason {
        match error {
            PacketError::Truncated { .. } => DropReason::Truncated,
            PacketError::WrongVersion { .. } => DropReason::WrongVersion,
            PacketError::BadMac => DropReason::BadMac,
            PacketError::NameLength { .. } | PacketError::NameNotUtf8 | PacketError::EmptyKey => {
                DropReason::Malformed
            }
        }
    }
}

/// Why a member went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// It said so (leaving flag).
    Leaving,
    /// No heartbeat within the detection time.
    Timeout,
    /// It is no longer a configured peer.
    Removed,
}

/// A liveness transition, for the election and for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Up { node: String },
    Down { node: String, reason: DownReason },
}

/// What happens to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A UDP datagram arrived; `wall_clock_ms` is our Unix time in milliseconds.
    Datagram { bytes: &'a [u8], wall_clock_ms: u64 },
    /// Time passed; expire silent peers.
    Tick,
}

#[derive(Debug, Clone, Default)]
struct Peer {
    /// Highest (incarnation, sequence) accepted so far.
    last: Option<(u64, u64)>,
    /// `Some(last heard)` while up.
    alive_since: Option<Instant>,
}

/// The liveness table of one speaker.
#[derive(Debug)]
pub struct Liveness {
    config: LivenessConfig,
    key: HeartbeatKey,
    node: String,
    incarnation: u64,
    sequence: u64,
    peers: BTreeMap<String, Peer>,
    accepted: u64,
    dropped: BTreeMap<DropReason, u64>,
}

impl Liveness {
    /// A table for `node`, whose current run is `incarnation` (the driver uses its start time in
    /// Unix nanoseconds, so a restart always yields a larger one). Refuses a zero interval or
    /// multiplier (every peer would be down at once) and a name that cannot go in a heartbeat.
    pub fn new(
        node: impl Into<String>,
        incarnation: u64,
        key: HeartbeatKey,
        config: LivenessConfig,
    ) -> Result<Liveness, LivenessError> {
        let node = node.into();
        if config.interval.is_zero() {
            return Err(LivenessError::ZeroInterval);
        }
        if config.detect_multiplier == 0 {
            return Err(LivenessError::ZeroMultiplier);
        }
        if node.is_empty() || node.len() > MAX_NAME_LEN {
            return Err(LivenessError::NodeName { len: node.len() });
        }
        Ok(Liveness {
            config,
            key,
            node,
            incarnation,
            sequence: 0,
            peers: BTreeMap::new(),
            accepted: 0,
            dropped: BTreeMap::new(),
        })
    }

    pub fn config(&self) -> &LivenessConfig {
        &self.config
    }

    /// This node's next heartbeat, authenticated, ready to send to every peer.
    pub fn heartbeat(&mut self, wall_clock_ms: u64, leaving: bool) -> Result<Vec<u8>, PacketError> {
        self.sequence += 1;
        Heartbeat {
            node: self.node.clone(),
            incarnation: self.incarnation,
            sequence: self.sequence,
            leaving,
            timestamp_ms: wall_clock_ms,
        }
        .encode(&self.key)
    }

    /// Replaces the set of peers (other speakers, as listed by the API; this node is skipped).
    /// New peers start down until heard; removed peers that were up go down.
    pub fn set_peers<'a>(&mut self, peers: impl IntoIterator<Item = &'a str>) -> Vec<MemberChange> {
        let mut next: BTreeMap<String, Peer> = BTreeMap::new();
        for name in peers {
            if name == self.node {
                continue;
            }
            let state = self.peers.remove(name).unwrap_or_default();
            next.insert(name.to_owned(), state);
        }
        let removed = std::mem::replace(&mut self.peers, next);
        removed
            .into_iter()
            .filter(|(_, peer)| peer.alive_since.is_some())
            .map(|(node, _)| MemberChange::Down {
                node,
                reason: DownReason::Removed,
            })
            .collect()
    }

    /// Peers currently alive.
    pub fn alive(&self) -> impl Iterator<Item = &str> {
        self.peers
            .iter()
            .filter(|(_, peer)| peer.alive_since.is_some())
            .map(|(name, _)| name.as_str())
    }

    /// Datagrams accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Datagrams dropped so far for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }

    /// Datagrams dropped so far, by reason (reasons never seen are absent).
    pub fn dropped_by_reason(&self) -> &BTreeMap<DropReason, u64> {
        &self.dropped
    }

    /// Replaces the shared secret (rotated in its Secret). Heartbeats are sent and checked with the
    /// new key from now on; peers still on the old one are dropped as `BadMac` until they rotate
    /// too, so rotate on every node within the detection time or accept a brief failover.
    pub fn set_key(&mut self, key: HeartbeatKey) {
        self.key = key;
    }

    /// When the next peer would time out, if any is up.
    pub fn next_deadline(&self) -> Option<Instant> {
        let detect = self.config.detect_time();
        self.peers
            .values()
            .filter_map(|peer| peer.alive_since.map(|heard| heard + detect))
            .min()
    }

    pub fn handle(&mut self, now: Instant, event: Event<'_>) -> Vec<MemberChange> {
        let mut changes = self.expire(now);
        if let Event::Datagram {
            bytes,
            wall_clock_ms,
        } = event
        {
            match self.accept(bytes, wall_clock_ms) {
                Ok(beat) => {
                    self.accepted += 1;
                    changes.extend(self.apply(now, beat));
                }
                Err(reason) => *self.dropped.entry(reason).or_default() += 1,
            }
        }
        changes
    }

    fn expire(&mut self, now: Instant) -> Vec<MemberChange> {
        let detect = self.config.detect_time();
        let mut changes = Vec::new();
        for (node, peer) in &mut self.peers {
            if peer.alive_since.is_some_and(|heard| now >= heard + detect) {
                peer.alive_since = None;
                changes.push(MemberChange::Down {
                    node: node.clone(),
                    reason: DownReason::Timeout,
                });
            }
        }
        changes
    }

    /// Applies rules 1–4 of the module docs and records the accepted (incarnation, sequence).
    fn accept(&mut self, bytes: &[u8], wall_clock_ms: u64) -> Result<Heartbeat, DropReason> {
        let beat = Heartbeat::decode(bytes, &self.key).map_err(|error| DropReason::of(&error))?;
        if beat.node == self.node {
            return Err(DropReason::FromSelf);
        }
        let skew_ms = u64::try_from(self.config.max_clock_skew.as_millis()).unwrap_or(u64::MAX);
        if beat.timestamp_ms.abs_diff(wall_clock_ms) > skew_ms {
            return Err(DropReason::ClockSkew);
        }
        let peer = self
            .peers
            .get_mut(&beat.node)
            .ok_or(DropReason::UnknownPeer)?;
        if let Some((incarnation, sequence)) = peer.last {
            if beat.incarnation < incarnation {
                return Err(DropReason::OldIncarnation);
            }
            if beat.incarnation == incarnation && beat.sequence == sequence {
                return Err(DropReason::Duplicate);
            }
            if beat.incarnation == incarnation && beat.sequence < sequence {
                return Err(DropReason::OutOfOrder);
            }
        }
        peer.last = Some((beat.incarnation, beat.sequence));
        Ok(beat)
    }

    fn apply(&mut self, now: Instant, beat: Heartbeat) -> Option<MemberChange> {
        let peer = self.peers.get_mut(&beat.node)?;
        let was_alive = peer.alive_since.is_some();
        if beat.leaving {
            peer.alive_since = None;
            return was_alive.then_some(MemberChange::Down {
                node: beat.node,
                reason: DownReason::Leaving,
            });
        }
        peer.alive_since = Some(now);
        (!was_alive).then_some(MemberChange::Up { node: beat.node })
    }
}
