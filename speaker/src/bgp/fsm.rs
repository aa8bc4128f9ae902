//! Per-peer BGP session state machine (RFC 4271 §8), sans-IO.
//!
//! Contract: pure logic, no async, no I/O, no clock. The driver calls
//! [`Fsm::handle`]`(now, input)` for every event (start/stop, TCP connection outcomes, decoded
//! messages or decoding errors, and [`Input::Tick`] when [`Fsm::next_deadline`] has passed) and
//! carries out the returned [`Action`]s in order: open or close TCP connections, write messages,
//! and tell the RIB layer that the session came up (with what was negotiated) or went down.
//! Every malformed input is answered with the NOTIFICATION RFC 4271 §6 requires, then the
//! connection is closed; nothing panics.
//!
//! Timers (§10): ConnectRetry with exponential backoff and RFC 4271 §10 jitter (a seeded
//! generator, so tests are reproducible), Hold (negotiated as the smaller of both proposals, 0
//! disables it and keepalives), Keepalive (a third of the hold time unless configured lower).
//! Connections are named by the driver ([`ConnectionId`]); a second connection from the same
//! peer is resolved by the collision rules of §6.8.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::packet::{
    Capability, CeaseSubcode, Codec, DecodeError, ErrorCode, Family, FsmSubcode, GracefulRestart,
    GracefulRestartFamily, Message, Notification, Open, OpenSubcode, PathAttribute, Update,
};

/// RFC 4271 §8.2.2 OpenSent: "sets the HoldTimer to a large value ... A HoldTimer value of 4
/// minutes is suggested."
const OPEN_HOLD: Duration = Duration::from_secs(240);

/// The session states of RFC 4271 §8.2.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Refuses connections; waits for a start or for the automatic restart after a failure.
    Idle,
    /// Waiting for our outbound TCP connection.
    Connect,
    /// Waiting for the peer to connect (or for the ConnectRetry timer to try again).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Routes may be exchanged.
    Established,
}

/// Which AS the peer must be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAs {
    /// Exactly this AS.
    Fixed(u32),
    /// Any AS equal to ours (dynamic iBGP).
    Internal,
    /// Any AS other than ours (dynamic eBGP).
    External,
}

/// Graceful restart as the restarting speaker (RFC 4724).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Seconds the peer keeps our routes after the session drops (at most 4095).
    pub restart_time: u16,
    /// Whether this process has just restarted: the first OPEN sets the R bit and claims the
    /// forwarding state was preserved (RFC 4724 §3).
    pub restarted: bool,
}

/// What the session is configured with; everything here is fixed at OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// Our AS.
    pub local_as: u32,
    /// The peer's AS.
    pub peer_as: PeerAs,
    /// Our BGP identifier.
    pub bgp_identifier: Ipv4Addr,
    /// Proposed hold time in seconds: 0, or at least 3.
    pub hold_time: u16,
    /// Keepalive interval in seconds; `None` for a third of the negotiated hold time.
    pub keepalive: Option<u16>,
    /// First ConnectRetry interval; doubled after each consecutive failure.
    pub connect_retry: Duration,
    /// Upper bound of the backoff.
    pub connect_retry_max: Duration,
    /// Never connect out; only accept the peer's connection.
    pub passive: bool,
    /// Families to advertise (MP-BGP capability, RFC 4760 §8).
    pub families: Vec<Family>,
    /// Graceful restart capability, if advertised.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Seed of the jitter generator (RFC 4271 §10); any value, distinct per peer.
    pub jitter_seed: u64,
}

/// A TCP connection, named by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We connected to the peer (RFC 4271 event 16, Tcp_CR_Acked).
    Outbound,
    /// The peer connected to us (event 17, TcpConnectionConfirmed).
    Inbound,
}

/// An event for the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Events 1/4, ManualStart (with passive TCP establishment when configured passive).
    Start,
    /// Event 2, ManualStop: the NOTIFICATION carries this Cease subcode (RFC 4486), e.g.
    /// AdministrativeShutdown, PeerDeconfigured or OtherConfigurationChange.
    Stop(CeaseSubcode),
    /// Events 16/17: a connection is up.
    Connected {
        /// The connection.
        connection: ConnectionId,
        /// Who opened it.
        direction: Direction,
    },
    /// Event 18 for the outbound attempt: it failed before connecting.
    ConnectFailed,
    /// Event 18: an established connection closed.
    Closed {
        /// The connection.
        connection: ConnectionId,
    },
    /// Events 19, 25-27 and ROUTE-REFRESH: a decoded message.
    Received {
        /// The connection.
        connection: ConnectionId,
        /// The message.
        message: Message,
    },
    /// Events 21, 22, 28: a message that failed to decode.
    Malformed {
        /// The connection.
        connection: ConnectionId,
        /// Why.
        error: DecodeError,
    },
    /// Events 9-11: the time passed to `handle` may have reached a deadline.
    Tick,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start an outbound connection attempt, abandoning any pending one.
    Connect,
    /// Abandon the pending outbound attempt.
    CancelConnect,
    /// Write a message on a connection.
    Send {
        /// The connection.
        connection: ConnectionId,
        /// The message.
        message: Message,
    },
    /// Close a connection once the queued messages are written.
    Close {
        /// The connection.
        connection: ConnectionId,
    },
    /// The session reached Established: the RIB layer sends its routes, then End-of-RIB.
    Established(Negotiated),
    /// The session left Established: the RIB layer forgets what it sent.
    Down(SessionError),
    /// The peer sent routes (a speaker that only announces may ignore them).
    UpdateReceived(Update),
    /// The peer asked for our routes of a family again (RFC 2918).
    RouteRefreshRequested(Family),
}

/// What both sides agreed at OPEN (RFC 4271 §4.2, RFC 5492).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS.
    pub peer_as: u32,
    /// The peer's BGP identifier.
    pub peer_identifier: Ipv4Addr,
    /// Whether the peer is in our AS (LOCAL_PREF is sent only then).
    pub internal: bool,
    /// Hold time in seconds (0: no hold timer, no keepalives).
    pub hold_time: u16,
    /// Keepalive interval in seconds (0 when the hold time is 0).
    pub keepalive: u16,
    /// Families both advertised (IPv4 unicast when the peer sent no MP capability, RFC 4760 §8).
    pub families: Vec<Family>,
    /// Both advertised the 4-octet AS capability (RFC 6793).
    pub four_octet_as: bool,
    /// The peer accepts ROUTE-REFRESH (RFC 2918).
    pub route_refresh: bool,
    /// The peer's graceful restart capability, when both advertised one (RFC 4724).
    pub peer_graceful_restart: Option<GracefulRestart>,
}

impl Negotiated {
    /// The wire format of this session.
    pub fn codec(&self) -> Codec {
        Codec {
            four_octet_as: self.four_octet_as,
        }
    }
}

/// Why a session attempt or session ended; the last one is kept for status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// We stopped it.
    #[error("stopped locally ({0:?})")]
    Stopped(CeaseSubcode),
    /// The peer sent a NOTIFICATION.
    #[error("peer sent NOTIFICATION {:?} with {} octets of data", .0.code, .0.data.len())]
    NotificationReceived(Notification),
    /// We sent a NOTIFICATION for a malformed message.
    #[error("malformed message from peer: {0}")]
    Malformed(DecodeError),
    /// We refused the peer's OPEN.
    #[error("peer OPEN refused: {0}")]
    Open(#[from] OpenError),
    /// A message not allowed in the state (RFC 6608).
    #[error("unexpected {message} in state {state:?}")]
    Unexpected {
        /// Message kind.
        message: &'static str,
        /// Our state.
        state: State,
    },
    /// No message from the peer within the hold time.
    #[error("hold timer expired")]
    HoldTimerExpired,
    /// The TCP connection closed.
    #[error("connection closed")]
    ConnectionClosed,
}

/// Reasons to refuse a peer's OPEN (RFC 4271 §6.2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// 2/2.
    #[error("peer AS {got} does not match the configured {expected:?}")]
    BadPeerAs {
        /// What the configuration allows.
        expected: PeerAs,
        /// What the peer sent.
        got: u32,
    },
    /// 2/3.
    #[error("bad BGP identifier {identifier}")]
    BadBgpIdentifier {
        /// What the peer sent.
        identifier: Ipv4Addr,
    },
    /// 2/6.
    #[error("unacceptable hold time {hold_time}")]
    UnacceptableHoldTime {
        /// What the peer sent.
        hold_time: u16,
    },
    /// 2/7: no address family in common.
    #[error("no address family in common: we offer {ours:?}, the peer {theirs:?}")]
    NoCommonFamily {
        /// Ours.
        ours: Vec<Family>,
        /// The peer's.
        theirs: Vec<Family>,
    },
}

impl OpenError {
    fn notification(&self) -> Notification {
        let subcode = match self {
            OpenError::BadPeerAs { .. } => OpenSubcode::BadPeerAs,
            OpenError::BadBgpIdentifier { .. } => OpenSubcode::BadBgpIdentifier,
            OpenError::UnacceptableHoldTime { .. } => OpenSubcode::UnacceptableHoldTime,
            OpenError::NoCommonFamily { .. } => OpenSubcode::UnsupportedCapability,
        };
        let data = match self {
            // RFC 5492 §5: the data field lists the capabilities that caused the refusal.
            OpenError::NoCommonFamily { ours, .. } => ours
                .iter()
                .flat_map(|f| {
                    let [a0, a1] = f.afi.to_be_bytes();
                    [1, 4, a0, a1, 0, f.safi]
                })
                .collect(),
            _ => Vec::new(),
        };
        Notification::with_data(ErrorCode::Open(subcode), data)
    }
}

/// The RFC 4271 §10 jitter source: a seeded xorshift generator, so runs are reproducible.
#[derive(Clone, Debug)]
struct Jitter(u64);

impl Jitter {
    /// "a random factor, which is uniformly distributed in the range from 0.75 to 1.0".
    fn apply(&mut self, base: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // 2^16 steps between 0.75 and 1.0.
        let step = self.0 >> 48;
        base.mul_f64(0.75 + 0.25 * (step as f64) / 65535.0)
    }
}

#[derive(Clone, Debug)]
struct Connection {
    id: ConnectionId,
    direction: Direction,
    /// The peer's OPEN, once received and accepted.
    peer_open: Option<Open>,
    hold_at: Option<Instant>,
}

/// One peer's session.
#[derive(Debug)]
pub struct Fsm {
    config: PeerConfig,
    state: State,
    /// Started and not stopped: failures lead to an automatic restart.
    started: bool,
    /// The session's connection (OpenSent onwards).
    main: Option<Connection>,
    /// A second connection from the same peer awaiting collision resolution (§6.8).
    candidate: Option<Connection>,
    /// ConnectRetry in Connect/Active; the automatic restart in Idle.
    retry_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    /// Consecutive attempts that did not reach Established.
    failures: u32,
    jitter: Jitter,
    negotiated: Option<Negotiated>,
    last_error: Option<SessionError>,
}

impl PeerConfig {
    /// Checks what the protocol cannot carry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime {
                hold_time: self.hold_time,
            });
        }
        if self.connect_retry.is_zero() {
            return Err(ConfigError::ConnectRetry);
        }
        if self.families.is_empty() {
            return Err(ConfigError::NoFamily);
        }
        if let Some(gr) = self.graceful_restart.filter(|gr| gr.restart_time > 0x0fff) {
            return Err(ConfigError::RestartTime {
                restart_time: gr.restart_time,
            });
        }
        Ok(())
    }

    /// Everything the OPEN fixes for the session's lifetime (RFC 4271 §4.2, RFC 5492): a change
    /// here needs a new session, anything else does not.
    pub(crate) fn fixed_at_open(&self) -> (u32, PeerAs, Ipv4Addr, u16, &[Family], Option<u16>) {
        (
            self.local_as,
            self.peer_as,
            self.bgp_identifier,
            self.hold_time,
            &self.families,
            self.graceful_restart.map(|gr| gr.restart_time),
        )
    }
}

/// A [`PeerConfig`] the protocol cannot carry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// RFC 4271 §4.2: "The Hold Time MUST be either zero or at least three seconds."
    #[error("hold time {hold_time} s: must be 0 or at least 3")]
    HoldTime {
        /// The configured value.
        hold_time: u16,
    },
    /// The backoff needs a positive first interval.
    #[error("connect retry interval must be positive")]
    ConnectRetry,
    /// Nothing to advertise.
    #[error("no address family configured")]
    NoFamily,
    /// RFC 4724 §3: the restart time is a 12-bit field.
    #[error("graceful restart time {restart_time} s exceeds 4095")]
    RestartTime {
        /// The configured value.
        restart_time: u16,
    },
}

impl Fsm {
    /// A stopped session (Idle), or the reason the configuration cannot be spoken.
    pub fn new(config: PeerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        // xorshift must not start at zero.
        let jitter = Jitter(config.jitter_seed | 1);
        Ok(Fsm {
            config,
            state: State::Idle,
            started: false,
            main: None,
            candidate: None,
            retry_at: None,
            keepalive_at: None,
            failures: 0,
            jitter,
            negotiated: None,
            last_error: None,
        })
    }

    /// Applies a new configuration. A change to what the OPEN fixed ends the session with Cease /
    /// Other Configuration Change (RFC 4486 §4) and starts a new one; other changes (timers,
    /// passive mode, keepalive) take effect without disturbing the session, keepalive from the
    /// next session on.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        mut config: PeerConfig,
    ) -> Result<Vec<Action>, ConfigError> {
        config.validate()?;
        // Whether this process restarted is runtime state, not configuration.
        if let (Some(new), Some(old)) = (
            config.graceful_restart.as_mut(),
            self.config.graceful_restart,
        ) {
            new.restarted = old.restarted;
        }
        let mut actions = Vec::new();
        let reset = config.fixed_at_open() != self.config.fixed_at_open();
        self.config = config;
        if reset && self.state != State::Idle {
            let started = self.started;
            self.stop(CeaseSubcode::OtherConfigurationChange, &mut actions);
            if started {
                self.start(now, &mut actions);
            }
        }
        Ok(actions)
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What was negotiated, while OpenConfirm or Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Why the last attempt or session ended.
    pub fn last_error(&self) -> Option<&SessionError> {
        self.last_error.as_ref()
    }

    /// The earliest time at which [`Input::Tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.retry_at,
            self.keepalive_at,
            self.main.as_ref().and_then(|c| c.hold_at),
            self.candidate.as_ref().and_then(|c| c.hold_at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The OPEN this speaker sends (RFC 4271 §4.2, capabilities per RFC 5492).
    pub fn local_open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .config
            .families
            .iter()
            .copied()
            .map(Capability::Multiprotocol)
            .collect();
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::FourOctetAs(self.config.local_as));
        if let Some(gr) = self.config.graceful_restart {
            capabilities.push(Capability::GracefulRestart(GracefulRestart {
                restarting: gr.restarted,
                notification: false,
                restart_time: gr.restart_time,
                families: self
                    .config
                    .families
                    .iter()
                    .map(|&family| GracefulRestartFamily {
                        family,
                        forwarding_preserved: gr.restarted,
                    })
                    .collect(),
            }));
        }
        Open::new(
            self.config.local_as,
            self.config.hold_time,
            self.config.bgp_identifier,
            capabilities,
        )
    }

    /// Processes one event at time `now`.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::Start => self.start(now, &mut actions),
            Input::Stop(subcode) => self.stop(subcode, &mut actions),
            Input::Connected {
                connection,
                direction,
            } => {
                self.connected(now, connection, direction, &mut actions);
            }
            Input::ConnectFailed => self.connect_failed(now),
            Input::Closed { connection } => self.closed(now, connection, &mut actions),
            Input::Received {
                connection,
                message,
            } => {
                self.received(now, connection, message, &mut actions);
            }
            Input::Malformed { connection, error } => {
                let notification = error.notification();
                self.fail_connection(
                    now,
                    connection,
                    Some(notification),
                    SessionError::Malformed(error),
                    &mut actions,
                );
            }
            Input::Tick => self.tick(now, &mut actions),
        }
        actions
    }

    fn start(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.state != State::Idle {
            return;
        }
        self.started = true;
        self.begin_attempt(now, actions);
    }

    /// RFC 4271 §8.2.2 Idle on ManualStart: "starts the ConnectRetryTimer with the initial value,
    /// initiates a TCP connection to the other BGP peer, listens for a connection ..., and changes
    /// its state to Connect"; with passive establishment it changes to Active instead.
    fn begin_attempt(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.config.passive {
            self.state = State::Active;
            self.retry_at = None;
        } else {
            self.state = State::Connect;
            self.retry_at = Some(now + self.backoff());
            actions.push(Action::Connect);
        }
    }

    /// ConnectRetry interval for the current number of consecutive failures, with jitter.
    fn backoff(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(16)).unwrap_or(u32::MAX);
        let base = self
            .config
            .connect_retry
            .saturating_mul(factor)
            .min(self.config.connect_retry_max.max(self.config.connect_retry));
        self.jitter.apply(base)
    }

    fn stop(&mut self, subcode: CeaseSubcode, actions: &mut Vec<Action>) {
        self.started = false;
        let notification = Notification::new(ErrorCode::Cease(subcode));
        if self.state == State::Connect {
            actions.push(Action::CancelConnect);
        }
        for connection in [self.main.take(), self.candidate.take()]
            .into_iter()
            .flatten()
        {
            // RFC 4271 §8.2.2: ManualStop in OpenSent, OpenConfirm or Established "sends the
            // NOTIFICATION with a Cease".
            actions.push(Action::Send {
                connection: connection.id,
                message: Message::Notification(notification.clone()),
            });
            actions.push(Action::Close {
                connection: connection.id,
            });
        }
        self.go_idle(SessionError::Stopped(subcode), actions);
        self.retry_at = None;
    }

    fn connected(
        &mut self,
        now: Instant,
        id: ConnectionId,
        direction: Direction,
        actions: &mut Vec<Action>,
    ) {
        let connection = Connection {
            id,
            direction,
            peer_open: None,
            hold_at: Some(now + OPEN_HOLD),
        };
        match self.state {
            // RFC 4271 §8.2.2 Idle: "any other event ... does not cause change in the state";
            // the connection is refused.
            State::Idle => actions.push(Action::Close { connection: id }),
            // A passive peer never dials out: a late outbound connection is not ours.
            State::Active if direction == Direction::Outbound && self.config.passive => {
                actions.push(Action::Close { connection: id });
            }
            // Connect/Active on Tcp_CR_Acked or TcpConnectionConfirmed: "stops the
            // ConnectRetryTimer ..., sends an OPEN message to its peer, sets the HoldTimer to a
            // large value, and changes its state to OpenSent."
            State::Connect | State::Active => {
                if self.state == State::Connect && direction == Direction::Inbound {
                    actions.push(Action::CancelConnect);
                }
                self.retry_at = None;
                self.send(id, Message::Open(self.local_open()), actions);
                self.main = Some(connection);
                self.state = State::OpenSent;
            }
            // §6.8: a second connection while OPENs are exchanged is kept until the peer's
            // identifier decides which one survives.
            State::OpenSent | State::OpenConfirm if self.candidate.is_none() => {
                self.send(id, Message::Open(self.local_open()), actions);
                self.candidate = Some(connection);
            }
            // §6.8: "collision with existing BGP connection that is in the Established state
            // causes closing of the newly created connection". RFC 4486: Connection Rejected.
            State::OpenSent | State::OpenConfirm | State::Established => {
                let cease = Notification::new(ErrorCode::Cease(CeaseSubcode::ConnectionRejected));
                self.send(id, Message::Notification(cease), actions);
                actions.push(Action::Close { connection: id });
            }
        }
    }

    /// RFC 4271 §8.2.2 Connect on TcpConnectionFails: with the ConnectRetryTimer kept running the
    /// speaker waits in Active, accepting the peer's connection, until the timer retries.
    fn connect_failed(&mut self, now: Instant) {
        if self.state == State::Connect {
            self.failures = self.failures.saturating_add(1);
            self.state = State::Active;
            self.retry_at = Some(now + self.backoff());
        }
    }

    fn closed(&mut self, now: Instant, id: ConnectionId, actions: &mut Vec<Action>) {
        if self.candidate.as_ref().is_some_and(|c| c.id == id) {
            self.candidate = None;
        } else if self.main.as_ref().is_some_and(|c| c.id == id) {
            self.main = None;
            if self.state == State::OpenSent && self.candidate.is_none() {
                // RFC 4271 §8.2.2 OpenSent, TcpConnectionFails: "closes the BGP connection,
                // restarts the ConnectRetryTimer, continues to listen for a connection that may
                // be initiated by the remote BGP peer, and changes its state to Active."
                self.failures = self.failures.saturating_add(1);
                self.last_error = Some(SessionError::ConnectionClosed);
                self.state = State::Active;
                self.retry_at = (!self.config.passive).then(|| now + self.backoff());
            } else {
                self.session_failed(now, SessionError::ConnectionClosed, actions);
            }
        }
    }

    fn tick(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if due(self.candidate.as_ref().and_then(|c| c.hold_at))
            && let Some(candidate) = self.candidate.take()
        {
            let expired = Notification::new(ErrorCode::HoldTimerExpired);
            self.send(candidate.id, Message::Notification(expired), actions);
            actions.push(Action::Close {
                connection: candidate.id,
            });
        }
        if due(self.main.as_ref().and_then(|c| c.hold_at)) {
            // Event 10, HoldTimer_Expires: "sends a NOTIFICATION message with the error code
            // Hold Timer Expired".
            let expired = Notification::new(ErrorCode::HoldTimerExpired);
            self.fail_main(now, Some(expired), SessionError::HoldTimerExpired, actions);
            return;
        }
        if due(self.keepalive_at)
            && let Some(id) = self.main.as_ref().map(|c| c.id)
        {
            // Event 11, KeepaliveTimer_Expires: "sends a KEEPALIVE message, and restarts its
            // KeepaliveTimer".
            self.send(id, Message::Keepalive, actions);
            self.keepalive_at = self
                .keepalive_interval()
                .map(|k| now + self.jitter.apply(k));
        }
        if due(self.retry_at) {
            match self.state {
                // Automatic restart after the backoff (RFC 4271 §8.1.1 IdleHoldTimer).
                State::Idle if self.started => self.begin_attempt(now, actions),
                // Event 9 in Connect: "drops the TCP connection, restarts the ConnectRetryTimer,
                // initiates a TCP connection"; in Active it also "changes its state to Connect".
                State::Connect | State::Active => {
                    if self.state == State::Connect {
                        // The attempt timed out; a failed one was counted when it failed.
                        self.failures = self.failures.saturating_add(1);
                    }
                    self.begin_attempt(now, actions);
                }
                _ => self.retry_at = None,
            }
        }
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        self.negotiated
            .as_ref()
            .filter(|n| n.keepalive > 0)
            .map(|n| Duration::from_secs(u64::from(n.keepalive)))
    }

    fn received(
        &mut self,
        now: Instant,
        id: ConnectionId,
        message: Message,
        actions: &mut Vec<Action>,
    ) {
        if self.candidate.as_ref().is_some_and(|c| c.id == id) {
            self.candidate_received(now, message, actions);
            return;
        }
        if !self.main.as_ref().is_some_and(|c| c.id == id) {
            // A connection this session does not own (already closed on our side).
            return;
        }
        // RFC 4271 §8.2.2: in OpenConfirm and Established the HoldTimer restarts on every
        // KEEPALIVE and UPDATE "if the negotiated HoldTime value is non-zero"; ROUTE-REFRESH is a
        // sign of life as well.
        if matches!(self.state, State::OpenConfirm | State::Established) {
            self.restart_hold(now);
        }
        match (self.state, message) {
            (_, Message::Notification(notification)) => {
                // Events 24/25: "drops the TCP connection ... changes its state to Idle".
                self.fail_main(
                    now,
                    None,
                    SessionError::NotificationReceived(notification),
                    actions,
                );
            }
            (State::OpenSent, Message::Open(open)) => self.open_received(now, open, actions),
            (State::OpenConfirm, Message::Keepalive) => {
                // Event 26 in OpenConfirm: "restarts the HoldTimer and changes its state to
                // Established".
                self.state = State::Established;
                self.failures = 0;
                if let Some(gr) = self.config.graceful_restart.as_mut() {
                    // RFC 4724 §3: the R bit is set only in the OPEN right after the restart.
                    gr.restarted = false;
                }
                if let Some(negotiated) = self.negotiated.clone() {
                    actions.push(Action::Established(negotiated));
                }
            }
            (State::Established, Message::Keepalive) => {}
            (State::Established, Message::Update(mut update)) => {
                // RFC 7606 §7.5: "If the LOCAL_PREF attribute is received from an external
                // neighbor, it SHALL be discarded using the approach of "attribute discard"".
                if self.negotiated.as_ref().is_some_and(|n| !n.internal) {
                    update
                        .attributes
                        .retain(|a| !matches!(a, PathAttribute::LocalPref(_)));
                }
                actions.push(Action::UpdateReceived(update));
            }
            (State::Established, Message::RouteRefresh(refresh)) => {
                // RFC 2918 §4: a request for a family not negotiated is ignored.
                if self
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| n.families.contains(&refresh.family))
                {
                    actions.push(Action::RouteRefreshRequested(refresh.family));
                }
            }
            (state, message) => {
                // RFC 6608 §3: an unexpected message gets an FSM Error whose subcode names the
                // state it arrived in.
                let subcode = match state {
                    State::OpenSent => FsmSubcode::UnexpectedMessageInOpenSent,
                    State::OpenConfirm => FsmSubcode::UnexpectedMessageInOpenConfirm,
                    State::Established => FsmSubcode::UnexpectedMessageInEstablished,
                    _ => FsmSubcode::Unspecified,
                };
                let notification = Notification::new(ErrorCode::FiniteStateMachine(subcode));
                let error = SessionError::Unexpected {
                    message: message_kind(&message),
                    state,
                };
                self.fail_main(now, Some(notification), error, actions);
            }
        }
    }

    /// Event 19 in OpenSent: validate, then "sends a KEEPALIVE message, sets a KeepaliveTimer,
    /// sets the HoldTimer according to the negotiated value, and changes its state to
    /// OpenConfirm".
    fn open_received(&mut self, now: Instant, open: Open, actions: &mut Vec<Action>) {
        let negotiated = match self.negotiate(&open) {
            Ok(negotiated) => negotiated,
            Err(error) => {
                let notification = error.notification();
                self.fail_main(now, Some(notification), error.into(), actions);
                return;
            }
        };
        if let Some(candidate) = self.candidate.as_ref().filter(|c| c.peer_open.is_some()) {
            // Both connections now carry an accepted OPEN: resolve as §6.8 requires. If the
            // other connection survives, it has taken over and this OPEN is moot.
            let candidate_id = candidate.id;
            if self.resolve_collision(now, candidate_id, open.bgp_identifier, actions) {
                return;
            }
        }
        let Some(main) = self.main.as_mut() else {
            return;
        };
        main.peer_open = Some(open);
        let id = main.id;
        self.negotiated = Some(negotiated);
        self.send(id, Message::Keepalive, actions);
        self.state = State::OpenConfirm;
        self.restart_hold(now);
        self.keepalive_at = self
            .keepalive_interval()
            .map(|k| now + self.jitter.apply(k));
    }

    /// RFC 4271 §6.2 checks and §4.2 / RFC 5492 negotiation.
    fn negotiate(&self, open: &Open) -> Result<Negotiated, OpenError> {
        // RFC 4271 §6.2: "An implementation MUST reject Hold Time values of one or two seconds."
        if matches!(open.hold_time, 1 | 2) {
            return Err(OpenError::UnacceptableHoldTime {
                hold_time: open.hold_time,
            });
        }
        let peer_as = open.asn();
        let internal = peer_as == self.config.local_as;
        // RFC 4271 §6.2: "If the Autonomous System field of the OPEN message is unacceptable,
        // then the Error Subcode MUST be set to Bad Peer AS."
        let acceptable = match self.config.peer_as {
            PeerAs::Fixed(asn) => peer_as == asn,
            PeerAs::Internal => internal,
            PeerAs::External => !internal,
        };
        if !acceptable {
            return Err(OpenError::BadPeerAs {
                expected: self.config.peer_as,
                got: peer_as,
            });
        }
        // RFC 6286 §2.2: "If the BGP Identifier field of the OPEN message is zero, or if it is the
        // same as the BGP Identifier of the local BGP speaker and the message is from an internal
        // peer, then the Error Subcode is set to "Bad BGP Identifier"."
        let identifier = open.bgp_identifier;
        if identifier.is_unspecified() || (internal && identifier == self.config.bgp_identifier) {
            return Err(OpenError::BadBgpIdentifier { identifier });
        }
        let mut theirs: Vec<Family> = open
            .capabilities()
            .filter_map(|c| match c {
                Capability::Multiprotocol(family) => Some(*family),
                _ => None,
            })
            .collect();
        // RFC 4760 §8: a peer without the capability speaks IPv4 unicast only.
        if theirs.is_empty() {
            theirs.push(Family::IPV4_UNICAST);
        }
        let families: Vec<Family> = self
            .config
            .families
            .iter()
            .copied()
            .filter(|f| theirs.contains(f))
            .collect();
        if families.is_empty() {
            return Err(OpenError::NoCommonFamily {
                ours: self.config.families.clone(),
                theirs,
            });
        }
        // RFC 4271 §4.2: "calculate the value of the Hold Timer by using the smaller of its
        // configured Hold Time and the Hold Time received in the OPEN message."
        let hold_time = self.config.hold_time.min(open.hold_time);
        let keepalive = if hold_time == 0 {
            0
        } else {
            // RFC 4271 §4.4: "A reasonable maximum time between KEEPALIVE messages would be one
            // third of the Hold Time interval."
            let third = (hold_time / 3).max(1);
            self.config.keepalive.map_or(third, |k| k.clamp(1, third))
        };
        let peer_graceful_restart = open.capabilities().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        });
        Ok(Negotiated {
            peer_as,
            peer_identifier: identifier,
            internal,
            hold_time,
            keepalive,
            families,
            four_octet_as: open.four_octet_as().is_some(),
            route_refresh: open.capabilities().any(|c| *c == Capability::RouteRefresh),
            peer_graceful_restart: peer_graceful_restart
                .filter(|_| self.config.graceful_restart.is_some()),
        })
    }

    fn candidate_received(&mut self, now: Instant, message: Message, actions: &mut Vec<Action>) {
        let Some(candidate) = self.candidate.as_ref() else {
            return;
        };
        let id = candidate.id;
        match message {
            Message::Open(open) if candidate.peer_open.is_none() => {
                if let Err(error) = self.negotiate(&open) {
                    self.send(id, Message::Notification(error.notification()), actions);
                    actions.push(Action::Close { connection: id });
                    self.candidate = None;
                    return;
                }
                let identifier = open.bgp_identifier;
                if let Some(candidate) = self.candidate.as_mut() {
                    candidate.peer_open = Some(open);
                }
                // The peer's identifier is now known, so the collision can be resolved even
                // while the existing connection is still in OpenSent (§6.8).
                self.resolve_collision(now, id, identifier, actions);
            }
            Message::Notification(_) => {
                actions.push(Action::Close { connection: id });
                self.candidate = None;
            }
            _ => {
                let subcode = FsmSubcode::UnexpectedMessageInOpenSent;
                let notification = Notification::new(ErrorCode::FiniteStateMachine(subcode));
                self.send(id, Message::Notification(notification), actions);
                actions.push(Action::Close { connection: id });
                self.candidate = None;
            }
        }
    }

    /// RFC 4271 §6.8: "If the value of the local BGP Identifier is less than the remote one, the
    /// local system closes the BGP connection that already exists ..., and accepts the BGP
    /// connection initiated by the remote system. Otherwise, the local system closes the newly
    /// created BGP connection". The loser gets Cease / Connection Collision Resolution
    /// (RFC 4486). Two connections opened by the same side (a peer reconnecting) leave the newer.
    /// Returns whether the candidate connection took over.
    fn resolve_collision(
        &mut self,
        now: Instant,
        candidate_id: ConnectionId,
        peer_identifier: Ipv4Addr,
        actions: &mut Vec<Action>,
    ) -> bool {
        let (Some(main), Some(candidate)) = (self.main.as_ref(), self.candidate.as_ref()) else {
            return false;
        };
        let remote_wins = u32::from(self.config.bgp_identifier) < u32::from(peer_identifier);
        let surviving_direction = if remote_wins {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        let keep_candidate = self.state != State::Established
            && (main.direction == candidate.direction
                || candidate.direction == surviving_direction);
        let cease = Message::Notification(Notification::new(ErrorCode::Cease(
            CeaseSubcode::ConnectionCollisionResolution,
        )));
        if !keep_candidate {
            self.send(candidate_id, cease, actions);
            actions.push(Action::Close {
                connection: candidate_id,
            });
            self.candidate = None;
            return false;
        }
        let (Some(old), Some(new)) = (self.main.take(), self.candidate.take()) else {
            return false;
        };
        self.send(old.id, cease, actions);
        actions.push(Action::Close { connection: old.id });
        // The survivor continues from OpenSent with its own OPEN, as if it had been the only one.
        self.state = State::OpenSent;
        self.negotiated = None;
        self.keepalive_at = None;
        let open = new.peer_open.clone();
        self.main = Some(Connection {
            peer_open: None,
            ..new
        });
        if let Some(open) = open {
            self.open_received(now, open, actions);
        }
        true
    }

    fn restart_hold(&mut self, now: Instant) {
        let hold = self.negotiated.as_ref().map(|n| n.hold_time);
        if let Some(main) = self.main.as_mut() {
            main.hold_at = match hold {
                Some(0) => None,
                Some(secs) => Some(now + Duration::from_secs(u64::from(secs))),
                None => main.hold_at,
            };
        }
    }

    fn fail_connection(
        &mut self,
        now: Instant,
        id: ConnectionId,
        notification: Option<Notification>,
        error: SessionError,
        actions: &mut Vec<Action>,
    ) {
        if self.candidate.as_ref().is_some_and(|c| c.id == id) {
            if let Some(notification) = notification {
                self.send(id, Message::Notification(notification), actions);
            }
            actions.push(Action::Close { connection: id });
            self.candidate = None;
        } else if self.main.as_ref().is_some_and(|c| c.id == id) {
            self.fail_main(now, notification, error, actions);
        }
    }

    /// Sends the NOTIFICATION (if any) on the session's connection, closes it, and goes Idle.
    fn fail_main(
        &mut self,
        now: Instant,
        notification: Option<Notification>,
        error: SessionError,
        actions: &mut Vec<Action>,
    ) {
        if let Some(main) = self.main.take() {
            if let Some(notification) = notification {
                self.send(main.id, Message::Notification(notification), actions);
            }
            actions.push(Action::Close {
                connection: main.id,
            });
        }
        self.session_failed(now, error, actions);
    }

    /// Every error in OpenSent, OpenConfirm and Established "changes its state to Idle"
    /// (RFC 4271 §8.2.2); a started session restarts itself after the backoff.
    fn session_failed(&mut self, now: Instant, error: SessionError, actions: &mut Vec<Action>) {
        if let Some(candidate) = self.candidate.take() {
            // The colliding connection, if still undecided, takes over (RFC 4271 §6.8 leaves
            // one connection per peer).
            if self.state == State::Established {
                actions.push(Action::Down(error.clone()));
            }
            self.main = Some(candidate);
            self.state = State::OpenSent;
            self.negotiated = None;
            self.keepalive_at = None;
            self.last_error = Some(error);
            if let Some(open) = self.main.as_mut().and_then(|c| c.peer_open.take()) {
                self.open_received(now, open, actions);
            }
            return;
        }
        self.failures = self.failures.saturating_add(1);
        self.go_idle(error, actions);
        if self.started {
            self.retry_at = Some(now + self.backoff());
        }
    }

    fn go_idle(&mut self, error: SessionError, actions: &mut Vec<Action>) {
        if self.state == State::Established {
            actions.push(Action::Down(error.clone()));
        }
        self.state = State::Idle;
        self.negotiated = None;
        self.keepalive_at = None;
        self.last_error = Some(error);
    }

    fn send(&self, connection: ConnectionId, message: Message, actions: &mut Vec<Action>) {
        actions.push(Action::Send {
            connection,
            message,
        });
    }
}

fn message_kind(message: &Message) -> &'static str {
    match message {
        Message::Open(_) => "OPEN",
        Message::Update(_) => "UPDATE",
        Message::Notification(_) => "NOTIFICATION",
        Message::Keepalive => "KEEPALIVE",
        Message::RouteRefresh(_) => "ROUTE-REFRESH",
    }
}

#[cfg(test)]
mod tests;
