//! One BFD session in Asynchronous mode: the RFC 5880 §6 state machine and its timers.
//!
//! Contract: pure logic, no async, no I/O. Time comes in as `now: Instant` with every [`Event`];
//! [`Session::handle`] returns the [`Action`]s to carry out (packets to send, state changes to
//! report). The caller arms its timers from [`Session::next_tx_at`] and
//! [`Session::detection_deadline`] and delivers [`Event::TxTimer`] / [`Event::DetectionTimer`]
//! when they pass; early or stale timer events are ignored, so the caller may over-deliver.
//! Transmit jitter (§6.8.7) comes from a seeded RNG handed in at construction, so tests are
//! deterministic.
//!
//! Implemented: §6.2 state machine (AdminDown/Down/Init/Up), the §6.8.1 state variables, timer
//! negotiation (§6.8.2) with the 1 s floor while not Up (§6.8.3), detection time (§6.8.4), the
//! reception procedure after the packet-only checks of [`super::packet`] (§6.8.6), transmission
//! rules and jitter (§6.8.7), Poll/Final sequences for parameter changes (§6.5, §6.8.3), passive
//! role (§6.1), administrative control (§6.8.16). Not implemented: Echo (we advertise Required
//! Min Echo RX 0), Demand mode of our own (we never set D, but honour a peer's), authentication.
//!
//! Beyond the RFC's periodic packets, a packet is sent at once when the local state changes or a
//! Poll Sequence starts, so a handshake takes round trips rather than (1 s) transmit intervals.

use std::num::{NonZeroU8, NonZeroU32};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use thiserror::Error;

use super::packet::{ControlPacket, Diagnostic, SessionState};

/// "When bfd.SessionState is not Up, the system MUST set bfd.DesiredMinTxInterval to a value of
/// not less than one second" (RFC 5880 §6.8.3).
const SLOW_TX_FLOOR: Duration = Duration::from_secs(1);

/// bfd.RemoteMinRxInterval "MUST be initialized to 1" microsecond (RFC 5880 §6.8.1).
const INITIAL_REMOTE_MIN_RX: Duration = Duration::from_micros(1);

/// Largest interval the 32-bit microsecond fields can carry.
const MAX_INTERVAL: Duration = Duration::from_micros(u32::MAX as u64);

/// Timer parameters of one session, validated once (the `BFDProfile` maps onto this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    desired_min_tx: Duration,
    required_min_rx: Duration,
    detect_mult: NonZeroU8,
    passive: bool,
}

/// A [`SessionConfig`] the wire cannot carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("{field} of {value:?} is outside 1 µs..={MAX_INTERVAL:?}")]
    IntervalOutOfRange {
        field: &'static str,
        value: Duration,
    },
}

impl SessionConfig {
    /// `passive`: wait for the peer's first packet before sending any (RFC 5880 §6.1).
    pub fn new(
        desired_min_tx: Duration,
        required_min_rx: Duration,
        detect_mult: NonZeroU8,
        passive: bool,
    ) -> Result<Self, ConfigError> {
        for (field, value) in [
            ("desired minimum TX interval", desired_min_tx),
            ("required minimum RX interval", required_min_rx),
        ] {
            // Zero Desired Min TX is reserved (§4.1); zero Required Min RX would ask the peer to
            // send nothing, leaving nothing to detect with.
            if value < Duration::from_micros(1) || value > MAX_INTERVAL {
                return Err(ConfigError::IntervalOutOfRange { field, value });
            }
        }
        Ok(Self {
            desired_min_tx,
            required_min_rx,
            detect_mult,
            passive,
        })
    }

    pub fn desired_min_tx(&self) -> Duration {
        self.desired_min_tx
    }

    pub fn required_min_rx(&self) -> Duration {
        self.required_min_rx
    }

    pub fn detect_mult(&self) -> NonZeroU8 {
        self.detect_mult
    }

    pub fn passive(&self) -> bool {
        self.passive
    }
}

/// An input to [`Session::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A packet that passed [`ControlPacket::decode`] and was demultiplexed to this session.
    Packet(ControlPacket),
    /// [`Session::next_tx_at`] has passed.
    TxTimer,
    /// [`Session::detection_deadline`] has passed.
    DetectionTimer,
    /// Administratively enable the session (§6.8.16).
    AdminUp,
    /// Administratively disable the session (§6.8.16), diagnostic Administratively Down.
    AdminDown,
    /// New timer parameters, applied with a Poll Sequence while the session is up (§6.8.3).
    Reconfigure(SessionConfig),
}

/// Why the local state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The three-way handshake advanced (§6.2).
    Handshake,
    /// No packet for a Detection Time (§6.8.4).
    DetectionTimeExpired,
    /// The peer reported Down (§6.8.6).
    PeerSignaledDown,
    /// The peer reported AdminDown (§6.8.6).
    PeerAdminDown,
    /// [`Event::AdminDown`].
    AdminDown,
    /// [`Event::AdminUp`].
    AdminUp,
}

/// A local state transition, reported to the session's client (BGP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    pub from: SessionState,
    pub to: SessionState,
    /// bfd.LocalDiag after the change, as the peer will see it.
    pub diag: Diagnostic,
    pub cause: Cause,
}

impl StateChange {
    /// Whether the client must treat the forwarding path as failed and drop its session now.
    ///
    /// True when an Up session goes Down because packets stopped or the peer said Down. False
    /// when the peer went AdminDown: "the receiving system SHOULD NOT [...] take down the client
    /// session" since AdminDown says nothing about the path (RFC 5882 §3.2); false too for our
    /// own AdminDown, which the client asked for.
    pub fn signals_path_failure(&self) -> bool {
        self.from == SessionState::Up
            && self.to == SessionState::Down
            && matches!(
                self.cause,
                Cause::DetectionTimeExpired | Cause::PeerSignaledDown
            )
    }
}

/// An output of [`Session::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send this packet to the peer now.
    Send(ControlPacket),
    StateChanged(StateChange),
}

/// The interval parameters in force in one direction of a negotiation (§6.8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Intervals {
    desired_min_tx: Duration,
    required_min_rx: Duration,
}

/// The RFC 5880 §6.8.1 state variables plus timers.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    rng: SmallRng,
    // §6.8.1 variables.
    state: SessionState,
    remote_state: SessionState,
    local_discr: NonZeroU32,
    remote_discr: Option<NonZeroU32>,
    local_diag: Diagnostic,
    remote_min_rx: Duration,
    remote_demand: bool,
    // Last values received from the peer, for the detection time (§6.8.4).
    remote_desired_min_tx: Duration,
    remote_detect_mult: u8,
    /// bfd.DesiredMinTxInterval / bfd.RequiredMinRxInterval as sent in packets.
    advertised: Intervals,
    /// The values in force locally; they lag `advertised` while a Poll Sequence confirms an
    /// increase of TX or a decrease of RX (§6.8.3).
    in_force: Intervals,
    polling: bool,
    /// When the session entered AdminDown, to bound the AdminDown notice (§6.8.16).
    admin_down_at: Option<Instant>,
    last_tx_at: Option<Instant>,
    next_tx_at: Option<Instant>,
    detection_deadline: Option<Instant>,
}

impl Session {
    /// A new session in Down state (§6.8.1). `jitter_seed` seeds the §6.8.7 jitter.
    pub fn new(
        config: SessionConfig,
        local_discr: NonZeroU32,
        jitter_seed: u64,
        now: Instant,
    ) -> Self {
        let advertised = Intervals {
            desired_min_tx: config.desired_min_tx.max(SLOW_TX_FLOOR),
            required_min_rx: config.required_min_rx,
        };
        Self {
            config,
            rng: SmallRng::seed_from_u64(jitter_seed),
            state: SessionState::Down,
            remote_state: SessionState::Down,
            local_discr,
            remote_discr: None,
            local_diag: Diagnostic::NoDiagnostic,
            remote_min_rx: INITIAL_REMOTE_MIN_RX,
            remote_demand: false,
            remote_desired_min_tx: Duration::ZERO,
            remote_detect_mult: 0,
            advertised,
            in_force: advertised,
            polling: false,
            admin_down_at: None,
            last_tx_at: None,
            next_tx_at: Some(now),
            detection_deadline: None,
        }
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    pub fn remote_state(&self) -> SessionState {
        self.remote_state
    }

    pub fn local_discriminator(&self) -> NonZeroU32 {
        self.local_discr
    }

    pub fn remote_discriminator(&self) -> Option<NonZeroU32> {
        self.remote_discr
    }

    pub fn local_diag(&self) -> Diagnostic {
        self.local_diag
    }

    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Whether a Poll Sequence is in progress (§6.5).
    pub fn polling(&self) -> bool {
        self.polling
    }

    /// When the next periodic packet is due; `None` once an AdminDown session has stopped.
    pub fn next_tx_at(&self) -> Option<Instant> {
        self.next_tx_at
    }

    /// When a Detection Time will have passed without a packet; `None` before the first packet.
    pub fn detection_deadline(&self) -> Option<Instant> {
        self.detection_deadline
    }

    /// The negotiated transmit interval before jitter: "the greater of bfd.DesiredMinTxInterval
    /// and bfd.RemoteMinRxInterval" (§6.8.7), using the value in force during a Poll Sequence.
    pub fn tx_interval(&self) -> Duration {
        self.in_force.desired_min_tx.max(self.remote_min_rx)
    }

    /// Detection Time in Asynchronous mode: "the value of Detect Mult received from the remote
    /// system, multiplied by the agreed transmit interval of the remote system (the greater of
    /// bfd.RequiredMinRxInterval and the last received Desired Min TX Interval)" (§6.8.4).
    pub fn detection_time(&self) -> Duration {
        self.in_force
            .required_min_rx
            .max(self.remote_desired_min_tx)
            .saturating_mul(u32::from(self.remote_detect_mult))
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Packet(packet) => self.receive(now, &packet, &mut actions),
            Event::TxTimer => self.on_tx_timer(now, &mut actions),
            Event::DetectionTimer => self.on_detection_timer(now, &mut actions),
            Event::AdminUp => {
                if self.state == SessionState::AdminDown {
                    // "If enabling session: Set bfd.SessionState to Down" (§6.8.16).
                    self.transition(SessionState::Down, self.local_diag, Cause::AdminUp, now);
                    actions.push(self.state_change_action(SessionState::AdminDown, Cause::AdminUp));
                    self.send_now(now, &mut actions);
                }
            }
            Event::AdminDown => {
                if self.state != SessionState::AdminDown {
                    let from = self.state;
                    // "Set bfd.SessionState to AdminDown, Set bfd.LocalDiag to an appropriate
                    // value" (§6.8.16).
                    self.transition(
                        SessionState::AdminDown,
                        Diagnostic::AdministrativelyDown,
                        Cause::AdminDown,
                        now,
                    );
                    actions.push(self.state_change_action(from, Cause::AdminDown));
                    self.send_now(now, &mut actions);
                }
            }
            Event::Reconfigure(config) => {
                let tx_interval_before = self.tx_interval();
                self.config = config;
                let poll_started = self.refresh_intervals();
                self.honour_shorter_tx_interval(tx_interval_before);
                if poll_started {
                    self.send_now(now, &mut actions);
                }
            }
        }
        actions
    }

    /// The reception procedure of RFC 5880 §6.8.6 from "Set bfd.RemoteDiscr" on; the earlier,
    /// session-independent discard rules ran in [`ControlPacket::decode`].
    fn receive(&mut self, now: Instant, packet: &ControlPacket, actions: &mut Vec<Action>) {
        if packet
            .your_discriminator
            .is_some_and(|yours| yours != self.local_discr)
        {
            // The caller demultiplexes by Your Discriminator; a mismatch is not ours to process.
            return;
        }
        let tx_interval_before = self.tx_interval();
        self.remote_discr = Some(packet.my_discriminator);
        self.remote_state = packet.state;
        self.remote_demand = packet.demand;
        self.remote_min_rx = Duration::from_micros(u64::from(packet.required_min_rx_us));
        self.remote_desired_min_tx = Duration::from_micros(u64::from(packet.desired_min_tx_us));
        self.remote_detect_mult = packet.detect_mult.get();
        // "If a Poll Sequence is being transmitted by the local system and the Final (F) bit in
        // the received packet is set, the Poll Sequence MUST be terminated."
        let mut send_now = false;
        if self.polling && packet.final_ {
            self.polling = false;
            self.in_force = self.advertised;
            // Changes made while the sequence ran are polled for now.
            send_now |= self.refresh_intervals();
        }
        // "Update the transmit interval as described in section 6.8.2."
        self.honour_shorter_tx_interval(tx_interval_before);
        // "Update the Detection Time as described in section 6.8.4." It restarts from this
        // packet: "it has been received for purposes of the Detection Time expiration rules".
        self.detection_deadline = Some(now + self.detection_time());

        // "If bfd.SessionState is AdminDown: Discard the packet."
        if self.state == SessionState::AdminDown {
            return;
        }
        let from = self.state;
        let next = match (self.state, packet.state) {
            // "If received state is AdminDown: If bfd.SessionState is not Down: Set
            // bfd.LocalDiag to 3 (Neighbor signaled session down), Set bfd.SessionState to Down"
            (SessionState::Down, SessionState::AdminDown) => None,
            (_, SessionState::AdminDown) => Some((SessionState::Down, Cause::PeerAdminDown)),
            (SessionState::Down, SessionState::Down) => {
                Some((SessionState::Init, Cause::Handshake))
            }
            (SessionState::Down, SessionState::Init)
            | (SessionState::Init, SessionState::Init | SessionState::Up) => {
                Some((SessionState::Up, Cause::Handshake))
            }
            (SessionState::Up, SessionState::Down) => {
                Some((SessionState::Down, Cause::PeerSignaledDown))
            }
            _ => None,
        };
        if let Some((to, cause)) = next {
            let diag = match (cause, to) {
                // The reason for the last failure stays visible to the peer until the session
                // is back Up.
                (Cause::Handshake, SessionState::Up) => Diagnostic::NoDiagnostic,
                (Cause::Handshake, _) => self.local_diag,
                _ => Diagnostic::NeighborSignaledSessionDown,
            };
            self.transition(to, diag, cause, now);
            actions.push(self.state_change_action(from, cause));
            send_now = true;
        }
        // "If the Poll (P) bit is set, send a BFD Control packet to the remote system with the
        // Poll (P) bit clear, and the Final (F) bit set" — "without respect to the transmission
        // timer or any other transmission limitations". It also carries any new state.
        if packet.poll {
            let mut answer = self.control_packet();
            answer.poll = false;
            answer.final_ = true;
            self.record_tx(now);
            actions.push(Action::Send(answer));
        } else if send_now {
            self.send_now(now, actions);
        }
    }

    fn on_tx_timer(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let Some(due) = self.next_tx_at else { return };
        if now < due {
            return;
        }
        if self.state == SessionState::AdminDown && self.admin_down_notice_over(now) {
            // Sent for a Detection Time after AdminDown; "MAY be transmitted indefinitely" but
            // there is nobody left who needs to hear it.
            self.next_tx_at = None;
            return;
        }
        if self.may_transmit_periodically() {
            actions.push(Action::Send(self.control_packet()));
            self.last_tx_at = Some(now);
        }
        self.next_tx_at = Some(now + self.jittered(self.tx_interval()));
    }

    fn on_detection_timer(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let Some(deadline) = self.detection_deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        self.detection_deadline = None;
        // bfd.RemoteDiscr: "If a period of a Detection Time passes without the receipt of a
        // valid, authenticated BFD packet from the remote system, this variable MUST be set to
        // zero." (§6.8.1); the remote's timing state may be forgotten too (§6.8.18).
        self.remote_discr = None;
        self.remote_state = SessionState::Down;
        self.remote_demand = false;
        self.remote_min_rx = INITIAL_REMOTE_MIN_RX;
        // "If Demand mode is not active, and a period of time equal to the Detection Time passes
        // without receiving a BFD Control packet from the remote system, and bfd.SessionState is
        // Init or Up, the session has gone down" (§6.8.4).
        if matches!(self.state, SessionState::Init | SessionState::Up) {
            let from = self.state;
            self.transition(
                SessionState::Down,
                Diagnostic::ControlDetectionTimeExpired,
                Cause::DetectionTimeExpired,
                now,
            );
            actions.push(self.state_change_action(from, Cause::DetectionTimeExpired));
            self.send_now(now, actions);
        }
    }

    /// Sets the state and diagnostic and re-derives the intervals the new state implies.
    fn transition(&mut self, to: SessionState, diag: Diagnostic, cause: Cause, now: Instant) {
        let leaving_up = self.state == SessionState::Up;
        self.state = to;
        self.local_diag = diag;
        if leaving_up {
            // A Poll Sequence confirms timing of an Up session only; once down, the 1 s floor
            // applies at once and the peer is down too (or about to be).
            self.polling = false;
        }
        match cause {
            Cause::AdminUp => {
                self.admin_down_at = None;
                self.next_tx_at = Some(now);
            }
            Cause::AdminDown => self.admin_down_at = Some(now),
            _ => {}
        }
        let tx_interval_before = self.tx_interval();
        self.refresh_intervals();
        self.honour_shorter_tx_interval(tx_interval_before);
    }

    fn state_change_action(&self, from: SessionState, cause: Cause) -> Action {
        Action::StateChanged(StateChange {
            from,
            to: self.state,
            diag: self.local_diag,
            cause,
        })
    }

    /// Recomputes the advertised intervals from the configuration and state, starting a Poll
    /// Sequence when an Up session changes them (§6.8.3). Returns whether a Poll began.
    fn refresh_intervals(&mut self) -> bool {
        if self.polling {
            // One sequence at a time; the Final that ends it triggers another refresh.
            return false;
        }
        let target = Intervals {
            desired_min_tx: if self.state == SessionState::Up {
                self.config.desired_min_tx
            } else {
                self.config.desired_min_tx.max(SLOW_TX_FLOOR)
            },
            required_min_rx: self.config.required_min_rx,
        };
        if target == self.advertised {
            return false;
        }
        self.advertised = target;
        if self.state != SessionState::Up {
            self.in_force = target;
            return false;
        }
        // "If bfd.DesiredMinTxInterval is increased and bfd.SessionState is Up, the actual
        // transmission interval used MUST NOT change until the Poll Sequence described above has
        // terminated."
        if target.desired_min_tx < self.in_force.desired_min_tx {
            self.in_force.desired_min_tx = target.desired_min_tx;
        }
        // "If bfd.RequiredMinRxInterval is reduced and bfd.SessionState is Up, the previous
        // value of bfd.RequiredMinRxInterval MUST be used when calculating the Detection Time
        // for the remote system until the Poll Sequence described above has terminated."
        if target.required_min_rx > self.in_force.required_min_rx {
            self.in_force.required_min_rx = target.required_min_rx;
        }
        // "If either bfd.DesiredMinTxInterval is changed or bfd.RequiredMinRxInterval is
        // changed, a Poll Sequence MUST be initiated."
        self.polling = true;
        true
    }

    /// "If the local system reduces its transmit interval [...] the local system cannot wait
    /// longer than the new interval between the previous packet transmission and the next one"
    /// (§6.8.3).
    fn honour_shorter_tx_interval(&mut self, before: Duration) {
        let interval = self.tx_interval();
        if interval >= before {
            return;
        }
        if let (Some(last), Some(next)) = (self.last_tx_at, self.next_tx_at) {
            let jittered = self.jittered(interval);
            self.next_tx_at = Some(next.min(last + jittered));
        }
    }

    /// Sends a packet outside the periodic schedule (state change, Poll start) when allowed.
    fn send_now(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.passive_and_unheard() {
            return;
        }
        actions.push(Action::Send(self.control_packet()));
        self.record_tx(now);
    }

    fn record_tx(&mut self, now: Instant) {
        self.last_tx_at = Some(now);
        self.next_tx_at = Some(now + self.jittered(self.tx_interval()));
    }

    /// "A system MUST NOT transmit BFD Control packets if bfd.RemoteDiscr is zero and the system
    /// is taking the Passive role." (§6.8.7)
    fn passive_and_unheard(&self) -> bool {
        self.config.passive && self.remote_discr.is_none()
    }

    fn may_transmit_periodically(&self) -> bool {
        // "A system MUST NOT periodically transmit BFD Control packets if
        // bfd.RemoteMinRxInterval is zero."
        let peer_wants_none = self.remote_min_rx.is_zero();
        // "[...] if Demand mode is active on the remote system (bfd.RemoteDemandMode is 1,
        // bfd.SessionState is Up, and bfd.RemoteSessionState is Up) and a Poll Sequence is not
        // being transmitted."
        let remote_demand_active = self.remote_demand
            && self.state == SessionState::Up
            && self.remote_state == SessionState::Up
            && !self.polling;
        !(self.passive_and_unheard() || peer_wants_none || remote_demand_active)
    }

    /// "BFD Control packets SHOULD be transmitted for at least a Detection Time after
    /// transitioning to AdminDown state" (§6.8.16): the peer's Detection Time for us is our
    /// Detect Mult times our transmit interval.
    fn admin_down_notice_over(&self, now: Instant) -> bool {
        let notice = self
            .tx_interval()
            .saturating_mul(u32::from(self.config.detect_mult.get()));
        self.admin_down_at
            .is_some_and(|since| now.saturating_duration_since(since) >= notice)
    }

    /// The packet contents of §6.8.7.
    fn control_packet(&self) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll: self.polling,
            final_: false,
            // We share fate with the control plane (a userspace daemon).
            control_plane_independent: false,
            // "A system MUST NOT set the Demand (D) bit unless bfd.DemandMode is 1"; ours is 0.
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx_us: micros(self.advertised.desired_min_tx),
            required_min_rx_us: micros(self.advertised.required_min_rx),
            // Zero: "the transmitting system does not support the receipt of BFD Echo packets".
            required_min_echo_rx_us: 0,
        }
    }

    /// "The periodic transmission of BFD Control packets MUST be jittered on a per-packet basis
    /// by up to 25% [...] If bfd.DetectMult is equal to 1, the interval between transmitted BFD
    /// Control packets MUST be no more than 90% of the negotiated transmission interval, and MUST
    /// be no less than 75%" (§6.8.7).
    fn jittered(&mut self, interval: Duration) -> Duration {
        let upper = if self.config.detect_mult.get() == 1 {
            0.90
        } else {
            1.0
        };
        interval.mul_f64(self.rng.random_range(0.75..=upper))
    }
}

/// Intervals are validated to fit 32-bit microseconds at configuration time.
fn micros(interval: Duration) -> u32 {
    u32::try_from(interval.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn config(tx_ms: u32, rx_ms: u32, mult: u8) -> SessionConfig {
        SessionConfig::new(tx_ms * MS, rx_ms * MS, NonZeroU8::new(mult).unwrap(), false).unwrap()
    }

    fn discr(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap()
    }

    /// Splits actions into the packets sent and the state changes reported.
    fn split(actions: &[Action]) -> (Vec<ControlPacket>, Vec<StateChange>) {
        let (mut packets, mut changes) = (Vec::new(), Vec::new());
        for action in actions {
            match action {
                Action::Send(p) => packets.push(*p),
                Action::StateChanged(c) => changes.push(*c),
            }
        }
        (packets, changes)
    }

    fn sent(actions: &[Action]) -> Vec<ControlPacket> {
        split(actions).0
    }

    fn changes(actions: &[Action]) -> Vec<StateChange> {
        split(actions).1
    }

    /// Two sessions joined by a lossless, instant link; `now` advances only when told.
    struct Link {
        now: Instant,
        a: Session,
        b: Session,
        a_changes: Vec<StateChange>,
        b_changes: Vec<StateChange>,
    }

    impl Link {
        fn new(a: SessionConfig, b: SessionConfig) -> Self {
            let now = Instant::now();
            Self {
                now,
                a: Session::new(a, discr(1), 1, now),
                b: Session::new(b, discr(2), 2, now),
                a_changes: Vec::new(),
                b_changes: Vec::new(),
            }
        }

        /// Delivers `actions` from one side, and everything they provoke, until quiet.
        fn deliver(&mut self, from_a: bool, actions: Vec<Action>) {
            let mut queue: Vec<(bool, Action)> = actions.into_iter().map(|a| (from_a, a)).collect();
            while let Some((from_a, action)) = queue.pop() {
                match action {
                    Action::StateChanged(c) if from_a => self.a_changes.push(c),
                    Action::StateChanged(c) => self.b_changes.push(c),
                    Action::Send(p) => {
                        let to = if from_a { &mut self.b } else { &mut self.a };
                        let out = to.handle(self.now, Event::Packet(p));
                        queue.extend(out.into_iter().map(|a| (!from_a, a)));
                    }
                }
            }
        }

        /// Runs both sessions' timers until `until`, in time order.
        fn run_until(&mut self, until: Instant) {
            loop {
                let next = [
                    self.a.next_tx_at(),
                    self.a.detection_deadline(),
                    self.b.next_tx_at(),
                    self.b.detection_deadline(),
                ]
                .into_iter()
                .flatten()
                .min();
                let Some(next) = next.filter(|n| *n <= until) else {
                    self.now = until;
                    return;
                };
                self.now = self.now.max(next);
                for from_a in [true, false] {
                    for event in [Event::TxTimer, Event::DetectionTimer] {
                        let side = if from_a { &mut self.a } else { &mut self.b };
                        let out = side.handle(self.now, event);
                        self.deliver(from_a, out);
                    }
                }
            }
        }

        fn run_for(&mut self, d: Duration) {
            self.run_until(self.now + d);
        }
    }

    fn up_link(a: SessionConfig, b: SessionConfig) -> Link {
        let mut link = Link::new(a, b);
        link.run_for(3 * Duration::from_secs(1));
        assert_eq!(
            (link.a.state(), link.b.state()),
            (SessionState::Up, SessionState::Up)
        );
        link
    }

    #[test]
    fn two_sessions_come_up_through_down_init_up() {
        let link = up_link(config(100, 100, 3), config(100, 100, 3));
        let path: Vec<_> = link.a_changes.iter().map(|c| (c.from, c.to)).collect();
        assert!(
            path == [(SessionState::Down, SessionState::Up)]
                || path
                    == [
                        (SessionState::Down, SessionState::Init),
                        (SessionState::Init, SessionState::Up)
                    ],
            "{path:?}"
        );
        assert!(link.b_changes.iter().all(|c| c.cause == Cause::Handshake));
        assert_eq!(link.a.remote_discriminator(), Some(discr(2)));
        assert_eq!(link.a.local_diag(), Diagnostic::NoDiagnostic);
    }

    #[test]
    fn up_sessions_settle_on_the_configured_fast_interval_after_poll() {
        let mut link = up_link(config(100, 100, 3), config(50, 200, 3));
        link.run_for(Duration::from_secs(1));
        assert!(!link.a.polling() && !link.b.polling());
        // a: max(own 100 ms, b's required 200 ms); b: max(own 50 ms, a's required 100 ms).
        assert_eq!(link.a.tx_interval(), 200 * MS);
        assert_eq!(link.b.tx_interval(), 100 * MS);
        // a detects with b's mult x max(a's required 100 ms, b's desired 50 ms).
        assert_eq!(link.a.detection_time(), 300 * MS);
        assert_eq!(link.b.detection_time(), 600 * MS);
    }

    #[test]
    fn down_session_sends_at_most_once_a_second_even_when_configured_faster() {
        let now = Instant::now();
        let mut s = Session::new(config(10, 10, 3), discr(7), 9, now);
        let first = sent(&s.handle(now, Event::TxTimer));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].state, SessionState::Down);
        assert_eq!(first[0].desired_min_tx_us, 1_000_000);
        assert_eq!(first[0].required_min_rx_us, 10_000);
        assert_eq!(first[0].your_discriminator, None);
        let gap = s.next_tx_at().unwrap() - now;
        assert!(gap >= 750 * MS && gap <= Duration::from_secs(1), "{gap:?}");
    }

    #[test]
    fn early_or_stale_timers_do_nothing() {
        let now = Instant::now();
        let mut s = Session::new(config(100, 100, 3), discr(7), 9, now);
        assert_eq!(sent(&s.handle(now, Event::TxTimer)).len(), 1);
        assert!(s.handle(now + 10 * MS, Event::TxTimer).is_empty());
        assert!(s.handle(now + 10 * MS, Event::DetectionTimer).is_empty());
    }

    #[test]
    fn silence_for_a_detection_time_takes_an_up_session_down() {
        let mut link = up_link(config(100, 100, 3), config(100, 100, 3));
        link.run_for(Duration::from_secs(1));
        let deadline = link.a.detection_deadline().unwrap();
        assert!(deadline <= link.now + 300 * MS);
        // b falls silent: only a's timers run from now on.
        assert!(
            link.a
                .handle(deadline - MS, Event::DetectionTimer)
                .is_empty()
        );
        let out = link.a.handle(deadline, Event::DetectionTimer);
        let change = changes(&out)[0];
        assert_eq!(
            change,
            StateChange {
                from: SessionState::Up,
                to: SessionState::Down,
                diag: Diagnostic::ControlDetectionTimeExpired,
                cause: Cause::DetectionTimeExpired,
            }
        );
        assert!(change.signals_path_failure());
        assert_eq!(link.a.remote_discriminator(), None);
        let down = sent(&out);
        assert_eq!(down[0].state, SessionState::Down);
        assert_eq!(down[0].diag, Diagnostic::ControlDetectionTimeExpired);
        assert_eq!(down[0].desired_min_tx_us, 1_000_000);
    }

    #[test]
    fn peer_signalling_down_takes_the_session_down_as_a_path_failure() {
        let mut link = up_link(config(100, 100, 3), config(100, 100, 3));
        let mut packet = link.b.control_packet();
        packet.state = SessionState::Down;
        let out = link.a.handle(link.now, Event::Packet(packet));
        let change = changes(&out)[0];
        assert_eq!(change.diag, Diagnostic::NeighborSignaledSessionDown);
        assert_eq!(change.cause, Cause::PeerSignaledDown);
        assert!(change.signals_path_failure());
    }

    #[test]
    fn peer_admin_down_takes_the_session_down_without_a_path_failure() {
        let mut link = up_link(config(100, 100, 3), config(100, 100, 3));
        let out = link.b.handle(link.now, Event::AdminDown);
        assert_eq!(changes(&out)[0].to, SessionState::AdminDown);
        assert!(!changes(&out)[0].signals_path_failure());
        link.deliver(false, out);
        let change = link.a_changes.last().copied().unwrap();
        assert_eq!(
            change,
            StateChange {
                from: SessionState::Up,
                to: SessionState::Down,
                diag: Diagnostic::NeighborSignaledSessionDown,
                cause: Cause::PeerAdminDown,
            }
        );
        assert!(!change.signals_path_failure());
        // a stays Down while b is AdminDown.
        link.run_for(Duration::from_secs(2));
        assert_eq!(link.a.state(), SessionState::Down);
    }

    #[test]
    fn admin_down_announces_for_a_detection_time_then_stops_and_admin_up_restarts() {
        let mut link = up_link(config(100, 100, 3), config(100, 100, 3));
        let start = link.now;
        let out = link.b.handle(start, Event::AdminDown);
        let notice = sent(&out);
        assert_eq!(notice[0].state, SessionState::AdminDown);
        assert_eq!(notice[0].diag, Diagnostic::AdministrativelyDown);
        link.deliver(false, out);
        link.run_for(Duration::from_secs(10));
        assert_eq!(link.b.next_tx_at(), None);
        assert_eq!(link.b.state(), SessionState::AdminDown);

        let out = link.b.handle(link.now, Event::AdminUp);
        assert_eq!(
            changes(&out)[0],
            StateChange {
                from: SessionState::AdminDown,
                to: SessionState::Down,
                diag: Diagnostic::AdministrativelyDown,
                cause: Cause::AdminUp,
            }
        );
        link.deliver(false, out);
        link.run_for(Duration::from_secs(3));
        assert_eq!(
            (link.a.state(), link.b.state()),
            (SessionState::Up, SessionState::Up)
        );
        assert_eq!(link.b.local_diag(), Diagnostic::NoDiagnostic);
    }

    #[test]
    fn admin_down_session_ignores_the_peer() {
        let now = Instant::now();
        let mut s = Session::new(config(100, 100, 3), discr(1), 1, now);
        s.handle(now, Event::AdminDown);
        let mut peer = Session::new(config(100, 100, 3), discr(2), 2, now).control_packet();
        peer.poll = true;
        assert!(s.handle(now, Event::Packet(peer)).is_empty());
        assert_eq!(s.state(), SessionState::AdminDown);
    }

    #[test]
    fn poll_is_answered_at_once_with_final_and_no_poll() {
        let mut link = up_link(config(100, 100, 3), config(100, 100, 3));
        let mut packet = link.b.control_packet();
        packet.poll = true;
        let answer = sent(&link.a.handle(link.now, Event::Packet(packet)));
        assert_eq!(answer.len(), 1);
        assert!(answer[0].final_ && !answer[0].poll);
        assert_eq!(answer[0].state, SessionState::Up);
    }

    #[test]
    fn slower_tx_takes_effect_only_after_final() {
        let mut link = up_link(config(100, 100, 3), config(100, 100, 3));
        link.run_for(Duration::from_secs(1));
        let out = link
            .a
            .handle(link.now, Event::Reconfigure(config(500, 100, 3)));
        let poll = sent(&out);
        assert!(poll[0].poll);
        assert_eq!(poll[0].desired_min_tx_us, 500_000);
        assert_eq!(link.a.tx_interval(), 100 * MS, "old interval until Final");

        let mut final_ = link.b.control_packet();
        final_.final_ = true;
        link.a.handle(link.now, Event::Packet(final_));
        assert!(!link.a.polling());
        assert_eq!(link.a.tx_interval(), 500 * MS);
    }

    #[test]
    fn lower_required_rx_shortens_detection_only_after_final() {
        let mut link = up_link(config(100, 300, 3), config(100, 100, 3));
        link.run_for(Duration::from_secs(1));
        assert_eq!(link.a.detection_time(), 900 * MS);
        link.a
            .handle(link.now, Event::Reconfigure(config(100, 100, 3)));
        let b_packet = link.b.control_packet();
        link.a.handle(link.now, Event::Packet(b_packet));
        assert_eq!(link.a.detection_time(), 900 * MS, "old value until Final");
        let mut final_ = b_packet;
        final_.final_ = true;
        link.a.handle(link.now, Event::Packet(final_));
        assert_eq!(link.a.detection_time(), 300 * MS);
    }

    #[test]
    fn reconfigured_link_stays_up_through_the_poll() {
        let mut link = up_link(config(100, 100, 3), config(100, 100, 3));
        let changes_before = link.a_changes.len() + link.b_changes.len();
        let out = link
            .a
            .handle(link.now, Event::Reconfigure(config(300, 20, 5)));
        link.deliver(true, out);
        link.run_for(Duration::from_secs(2));
        assert_eq!(
            (link.a.state(), link.b.state()),
            (SessionState::Up, SessionState::Up)
        );
        assert!(!link.a.polling());
        assert_eq!(link.b.tx_interval(), 100 * MS);
        assert_eq!(link.a.tx_interval(), 300 * MS);
        assert_eq!(link.b.detection_time(), 1500 * MS);
        let changes_after = link.a_changes.len() + link.b_changes.len();
        assert_eq!(changes_after, changes_before, "no flap");
    }

    #[test]
    fn shorter_peer_rx_is_honoured_before_the_old_interval_runs_out() {
        let mut link = up_link(config(100, 100, 3), config(100, 1000, 3));
        link.run_for(Duration::from_secs(2));
        assert_eq!(link.a.tx_interval(), Duration::from_secs(1));
        let last_tx = link.now;
        link.a.handle(last_tx, Event::TxTimer);
        let scheduled = link.a.next_tx_at().unwrap();
        let mut faster = link.b.control_packet();
        faster.required_min_rx_us = 100_000;
        link.a.handle(last_tx + 10 * MS, Event::Packet(faster));
        let next = link.a.next_tx_at().unwrap();
        assert!(
            next <= scheduled && next <= last_tx + 100 * MS,
            "{:?}",
            next - last_tx
        );
    }

    #[test]
    fn passive_session_waits_for_the_peer_before_sending() {
        let now = Instant::now();
        let passive =
            SessionConfig::new(100 * MS, 100 * MS, NonZeroU8::new(3).unwrap(), true).unwrap();
        let mut s = Session::new(passive, discr(1), 1, now);
        assert!(sent(&s.handle(now, Event::TxTimer)).is_empty());
        let later = now + Duration::from_secs(5);
        assert!(sent(&s.handle(later, Event::TxTimer)).is_empty());
        let peer = Session::new(config(100, 100, 3), discr(2), 2, now).control_packet();
        let out = s.handle(later, Event::Packet(peer));
        assert_eq!(sent(&out)[0].state, SessionState::Init);
        assert_eq!(sent(&out)[0].your_discriminator, Some(discr(2)));
    }

    #[test]
    fn peer_asking_for_no_packets_gets_no_periodic_ones() {
        let now = Instant::now();
        let mut s = Session::new(config(100, 100, 3), discr(1), 1, now);
        let mut peer = Session::new(config(100, 100, 3), discr(2), 2, now).control_packet();
        peer.state = SessionState::AdminDown;
        peer.required_min_rx_us = 0;
        s.handle(now, Event::Packet(peer));
        let later = now + Duration::from_secs(5);
        assert!(sent(&s.handle(later, Event::TxTimer)).is_empty());
    }

    #[test]
    fn remote_demand_mode_stops_periodic_packets_once_both_are_up() {
        let mut link = up_link(config(100, 100, 3), config(100, 100, 3));
        link.run_for(Duration::from_secs(1));
        let mut demand = link.b.control_packet();
        demand.demand = true;
        link.a.handle(link.now, Event::Packet(demand));
        let due = link.a.next_tx_at().unwrap();
        assert!(sent(&link.a.handle(due, Event::TxTimer)).is_empty());
    }

    #[test]
    fn silent_peer_is_forgotten_after_a_detection_time_while_down() {
        let now = Instant::now();
        let mut s = Session::new(config(100, 100, 3), discr(1), 1, now);
        let mut peer = Session::new(config(100, 100, 3), discr(2), 2, now).control_packet();
        peer.state = SessionState::AdminDown;
        s.handle(now, Event::Packet(peer));
        assert_eq!(s.remote_discriminator(), Some(discr(2)));
        let deadline = s.detection_deadline().unwrap();
        assert!(changes(&s.handle(deadline, Event::DetectionTimer)).is_empty());
        assert_eq!(s.remote_discriminator(), None);
    }

    #[test]
    fn packet_for_another_discriminator_is_ignored() {
        let mut link = up_link(config(100, 100, 3), config(100, 100, 3));
        let mut stray = link.b.control_packet();
        stray.state = SessionState::Down;
        stray.your_discriminator = Some(discr(99));
        assert!(link.a.handle(link.now, Event::Packet(stray)).is_empty());
        assert_eq!(link.a.state(), SessionState::Up);
    }

    #[test]
    fn zero_or_oversized_intervals_are_refused() {
        let mult = NonZeroU8::new(3).unwrap();
        assert_eq!(
            SessionConfig::new(Duration::ZERO, 100 * MS, mult, false),
            Err(ConfigError::IntervalOutOfRange {
                field: "desired minimum TX interval",
                value: Duration::ZERO
            })
        );
        let huge = Duration::from_secs(5000);
        assert_eq!(
            SessionConfig::new(100 * MS, huge, mult, false),
            Err(ConfigError::IntervalOutOfRange {
                field: "required minimum RX interval",
                value: huge
            })
        );
    }

    fn any_state() -> impl Strategy<Value = SessionState> {
        prop_oneof![
            Just(SessionState::AdminDown),
            Just(SessionState::Down),
            Just(SessionState::Init),
            Just(SessionState::Up),
        ]
    }

    /// Any event a driver could deliver, `u16` milliseconds after the previous one.
    fn any_step() -> impl Strategy<Value = (u16, Event)> {
        let packet = (
            any_state(),
            any::<[bool; 3]>(),
            prop_oneof![Just(None), Just(Some(discr(1))), Just(Some(discr(2)))],
            prop_oneof![Just(0u32), 1u32..2_000_000],
            1u32..2_000_000,
            1u8..=5,
        )
            .prop_map(|(state, [poll, final_, demand], your, rx, tx, mult)| {
                Event::Packet(ControlPacket {
                    diag: Diagnostic::NoDiagnostic,
                    state,
                    poll,
                    final_,
                    control_plane_independent: false,
                    demand,
                    detect_mult: NonZeroU8::new(mult).unwrap(),
                    my_discriminator: discr(99),
                    your_discriminator: your,
                    desired_min_tx_us: tx,
                    required_min_rx_us: rx,
                    required_min_echo_rx_us: 0,
                })
            });
        let event = prop_oneof![
            4 => packet,
            3 => Just(Event::TxTimer),
            2 => Just(Event::DetectionTimer),
            1 => Just(Event::AdminDown),
            1 => Just(Event::AdminUp),
            1 => (1u32..2000, 1u32..2000, 1u8..=5, any::<bool>())
                .prop_map(|(tx, rx, mult, passive)| Event::Reconfigure(
                    SessionConfig::new(tx * MS, rx * MS, NonZeroU8::new(mult).unwrap(), passive)
                        .unwrap()
                )),
        ];
        (0u16..1500, event)
    }

    proptest! {
        /// Whatever arrives in whatever order: no panic, well-formed packets, timers that move.
        #[test]
        fn any_event_sequence_keeps_the_rfc_invariants(
            passive in any::<bool>(),
            steps in proptest::collection::vec(any_step(), 1..80),
        ) {
            let start = Instant::now();
            let first = SessionConfig::new(100 * MS, 100 * MS, NonZeroU8::new(3).unwrap(), passive)
                .unwrap();
            let mut s = Session::new(first, discr(1), 5, start);
            let mut now = start;
            let mut heard = false;
            for (gap_ms, event) in steps {
                now += u32::from(gap_ms) * MS;
                if let Event::Packet(p) = event {
                    heard |= p.your_discriminator.is_none_or(|d| d == discr(1));
                }
                let (packets, _) = split(&s.handle(now, event));
                for p in packets {
                    prop_assert!(!(p.poll && p.final_), "P and F together: {p:?}");
                    prop_assert_eq!(p.my_discriminator, discr(1));
                    prop_assert_eq!(p.state, s.state());
                    prop_assert_eq!(p.detect_mult, s.config().detect_mult());
                    prop_assert!(!p.demand);
                    if p.state != SessionState::Up {
                        prop_assert!(p.desired_min_tx_us >= 1_000_000, "{p:?}");
                    }
                    prop_assert!(heard || !s.config().passive(), "passive sent unprompted");
                }
                if event == Event::TxTimer {
                    prop_assert!(s.next_tx_at().is_none_or(|next| next > now));
                }
                if event == Event::DetectionTimer {
                    prop_assert!(s.detection_deadline().is_none_or(|d| d > now));
                }
            }
        }

        #[test]
        fn periodic_gaps_are_jittered_within_rfc_bounds(seed in any::<u64>(), mult in 1u8..=5) {
            let now = Instant::now();
            let mut s = Session::new(config(1000, 1000, mult), discr(1), seed, now);
            let upper = if mult == 1 { 0.90 } else { 1.0 };
            let mut at = now;
            for _ in 0..20 {
                s.handle(at, Event::TxTimer);
                let next = s.next_tx_at().unwrap();
                let fraction = (next - at).as_secs_f64() / 1.0;
                prop_assert!((0.75..=upper).contains(&fraction), "{fraction}");
                at = next;
            }
        }
    }
}
