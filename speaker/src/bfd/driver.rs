//! BFD over UDP: RFC 5881 single-hop (port 3784) and RFC 5883 multihop (port 4784) transport for
//! the pure [`Session`]s.
//!
//! ```text
//!  listener task per socket ──Datagram──┐
//!  (recvmsg: bytes, src, dst, TTL)      │
//!                                       ▼
//!  DriverHandle ──Command──►  driver task: decode, GTSM, demux, Session::handle, timers
//!                                       │            │
//!                    per-session socket ◄┘            └─► SessionEvent (state changes)
//!                    (src port 49152–65535, TTL 255)
//! ```
//!
//! One task owns every session, so sessions need no locks; its only suspension points are the
//! command channel, the datagram channel and the earliest session deadline. Sends never wait:
//! a full socket buffer counts as a send error, like a lost packet, which BFD tolerates.
//!
//! Receive rules: single-hop packets are dropped unless their TTL / Hop Limit is 255 (RFC 5881
//! §5, GTSM); multihop packets unless it is at least the session's configured minimum (RFC 5883
//! §5). Packets are demultiplexed by Your Discriminator when set, otherwise by (source address,
//! destination address, hop mode) (RFC 5880 §6.8.6, RFC 5881 §3); either way the source must be
//! the session's peer.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use rand::RngExt;
use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::packet::{ControlPacket, Diagnostic, SessionState};
use super::session::{Action, Event, Session, SessionConfig, StateChange};

/// RFC 5881 §4: "BFD Control packets MUST be transmitted in UDP packets with destination port
/// 3784".
pub const SINGLE_HOP_PORT: u16 = 3784;
/// RFC 5883 §5: multihop Control packets use destination port 4784.
pub const MULTIHOP_PORT: u16 = 4784;
/// RFC 5881 §4: "The source port MUST be in the range 49152 through 65535."
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 §5 / RFC 5883 §5: Control packets are sent with TTL / Hop Limit 255.
const SEND_TTL: u32 = 255;
/// Large enough for any Control packet, authentication included (Length is one byte).
const RECV_BUFFER: usize = 256;

/// Whether a session's peer is on the link (RFC 5881) or routed (RFC 5883).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HopMode {
    SingleHop,
    /// Received packets need at least this TTL / Hop Limit (255 minus the hops allowed).
    Multihop {
        min_ttl: u8,
    },
}

impl HopMode {
    fn is_multihop(self) -> bool {
        matches!(self, Self::Multihop { .. })
    }
}

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerSpec {
    /// The peer's address and BFD port (3784 / 4784 unless a test says otherwise).
    pub peer: SocketAddr,
    /// Our address on the path to the peer; packets are sent from it.
    pub local: IpAddr,
    pub hops: HopMode,
}

impl PeerSpec {
    pub fn key(&self) -> SessionKey {
        SessionKey {
            peer: self.peer.ip(),
            local: self.local,
            multihop: self.hops.is_multihop(),
        }
    }
}

/// Identifies a session for demultiplexing by address and for the driver's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub peer: IpAddr,
    pub local: IpAddr,
    pub multihop: bool,
}

/// Sockets the driver receives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    pub single_hop_listen: Vec<SocketAddr>,
    pub multihop_listen: Vec<SocketAddr>,
}

impl Default for DriverConfig {
    /// Both families on the RFC ports.
    fn default() -> Self {
        let any = |port| {
            vec![
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
            ]
        };
        Self {
            single_hop_listen: any(SINGLE_HOP_PORT),
            multihop_listen: any(MULTIHOP_PORT),
        }
    }
}

#[derive(Debug, Error)]
pub enum DriverError {
    #[error("cannot open BFD listener on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("cannot open BFD socket from {local} to peer {peer}: {source}")]
    SessionSocket {
        peer: SocketAddr,
        local: IpAddr,
        source: io::Error,
    },
    #[error("a BFD session to {peer} from {local} already exists")]
    DuplicateSession { peer: IpAddr, local: IpAddr },
    #[error("no BFD session to {peer} from {local}")]
    NoSuchSession { peer: IpAddr, local: IpAddr },
    #[error("the BFD driver has stopped")]
    Stopped,
}

/// Why a received datagram was not handed to a session; the label of the drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Single-hop packet whose TTL / Hop Limit is not 255 (RFC 5881 §5).
    TtlNot255,
    /// Multihop packet below the session's minimum TTL (RFC 5883 §5).
    TtlBelowMinimum,
    /// A discard rule of RFC 5880 §6.8.6, named by [`super::packet::DecodeError::reason`].
    Invalid(&'static str),
    /// "If no session is found, the packet MUST be discarded." (RFC 5880 §6.8.6)
    NoSession,
    /// Matched a session by discriminator, but came from another address.
    WrongPeerAddress,
    /// Matched a session by discriminator, but arrived on the other hop mode's port.
    WrongHopMode,
}

impl DropReason {
    /// A metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::TtlNot255 => "ttl_not_255",
            Self::TtlBelowMinimum => "ttl_below_minimum",
            Self::Invalid(reason) => reason,
            Self::NoSession => "no_session",
            Self::WrongPeerAddress => "wrong_peer_address",
            Self::WrongHopMode => "wrong_hop_mode",
        }
    }
}

/// Driver-wide counters, plain values for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets_in: u64,
    pub packets_out: u64,
    pub send_errors: u64,
    pub state_changes: u64,
    pub dropped: BTreeMap<DropReason, u64>,
}

/// A session's state for status reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStatus {
    pub spec: PeerSpec,
    pub state: SessionState,
    pub remote_state: SessionState,
    pub local_diag: Diagnostic,
    pub local_discriminator: NonZeroU32,
    pub remote_discriminator: Option<NonZeroU32>,
    pub counters: SessionCounters,
}

/// One session's counters, plain values for `SpeakerStatus` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Packets accepted for this session.
    pub packets_in: u64,
    pub packets_out: u64,
    pub send_errors: u64,
    pub state_changes: u64,
}

/// A state change of one session, for the session's client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEvent {
    pub key: SessionKey,
    pub change: StateChange,
}

#[derive(Debug)]
enum Command {
    Add {
        spec: PeerSpec,
        config: SessionConfig,
        reply: oneshot::Sender<Result<(), DriverError>>,
    },
    Remove {
        key: SessionKey,
        reply: oneshot::Sender<Result<(), DriverError>>,
    },
    Apply {
        key: SessionKey,
        event: Event,
        reply: oneshot::Sender<Result<(), DriverError>>,
    },
    Counters(oneshot::Sender<Counters>),
    Sessions(oneshot::Sender<Vec<SessionStatus>>),
}

/// Controls a running driver; dropping every handle stops it.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    commands: mpsc::Sender<Command>,
    listening: Vec<SocketAddr>,
}

impl DriverHandle {
    /// Opens the listeners and starts the driver task; call from within a Tokio runtime. State
    /// changes arrive on the returned receiver; it is unbounded because state changes are rare
    /// and must never stall BFD.
    pub fn start(
        config: &DriverConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<SessionEvent>), DriverError> {
        let (datagrams_tx, datagrams) = mpsc::channel(1024);
        let mut listeners = JoinSet::new();
        let mut listening = Vec::new();
        let all = [
            (false, &config.single_hop_listen),
            (true, &config.multihop_listen),
        ];
        for (multihop, addrs) in all {
            for addr in addrs {
                let socket = open_listener(*addr).map_err(|source| DriverError::Listen {
                    addr: *addr,
                    source,
                })?;
                let bound = socket.local_addr().map_err(|source| DriverError::Listen {
                    addr: *addr,
                    source,
                })?;
                listening.push(bound);
                listeners.spawn(listen(socket, bound, multihop, datagrams_tx.clone()));
            }
        }
        let (commands_tx, commands) = mpsc::channel(64);
        let (events_tx, events) = mpsc::unbounded_channel();
        let driver = Driver {
            sessions: HashMap::new(),
            by_discr: HashMap::new(),
            counters: Counters::default(),
            events: events_tx,
            _listeners: listeners,
        };
        tokio::spawn(driver.run(commands, datagrams));
        Ok((
            Self {
                commands: commands_tx,
                listening,
            },
            events,
        ))
    }

    /// The addresses actually bound (port 0 in the config resolves here).
    pub fn listening(&self) -> &[SocketAddr] {
        &self.listening
    }

    pub async fn add_session(
        &self,
        spec: PeerSpec,
        config: SessionConfig,
    ) -> Result<(), DriverError> {
        self.request(|reply| Command::Add {
            spec,
            config,
            reply,
        })
        .await?
    }

    pub async fn remove_session(&self, key: SessionKey) -> Result<(), DriverError> {
        self.request(|reply| Command::Remove { key, reply }).await?
    }

    /// Administrative control (RFC 5880 §6.8.16).
    pub async fn set_admin_up(&self, key: SessionKey, up: bool) -> Result<(), DriverError> {
        let event = if up { Event::AdminUp } else { Event::AdminDown };
        self.request(|reply| Command::Apply { key, event, reply })
            .await?
    }

    /// New timers, applied with a Poll Sequence without resetting the session (RFC 5880 §6.8.3).
    pub async fn reconfigure(
        &self,
        key: SessionKey,
        config: SessionConfig,
    ) -> Result<(), DriverError> {
        let event = Event::Reconfigure(config);
        self.request(|reply| Command::Apply { key, event, reply })
            .await?
    }

    pub async fn counters(&self) -> Result<Counters, DriverError> {
        self.request(Command::Counters).await
    }

    pub async fn sessions(&self) -> Result<Vec<SessionStatus>, DriverError> {
        self.request(Command::Sessions).await
    }

    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, DriverError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| DriverError::Stopped)?;
        answer.await.map_err(|_| DriverError::Stopped)
    }
}

/// A datagram as the listener saw it.
#[derive(Debug)]
struct Datagram {
    bytes: Vec<u8>,
    source: SocketAddr,
    destination: IpAddr,
    ttl: Option<u8>,
    multihop: bool,
}

struct Entry {
    spec: PeerSpec,
    session: Session,
    socket: UdpSocket,
    counters: SessionCounters,
}

struct Driver {
    sessions: HashMap<SessionKey, Entry>,
    by_discr: HashMap<NonZeroU32, SessionKey>,
    counters: Counters,
    events: mpsc::UnboundedSender<SessionEvent>,
    /// Aborted when the driver stops.
    _listeners: JoinSet<()>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut datagrams: mpsc::Receiver<Datagram>,
    ) {
        loop {
            let deadline = self.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(datagram) = datagrams.recv() => self.on_datagram(datagram),
                () = sleep => self.on_timers(),
            }
        }
        tracing::debug!("BFD driver stopped");
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .flat_map(|e| [e.session.next_tx_at(), e.session.detection_deadline()])
            .flatten()
            .min()
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Add {
                spec,
                config,
                reply,
            } => {
                let _ = reply.send(self.add(spec, config));
            }
            Command::Remove { key, reply } => {
                let result = match self.sessions.remove(&key) {
                    Some(entry) => {
                        self.by_discr.remove(&entry.session.local_discriminator());
                        Ok(())
                    }
                    None => Err(no_such_session(key)),
                };
                let _ = reply.send(result);
            }
            Command::Apply { key, event, reply } => {
                let result = if self.sessions.contains_key(&key) {
                    self.handle(key, event);
                    Ok(())
                } else {
                    Err(no_such_session(key))
                };
                let _ = reply.send(result);
            }
            Command::Counters(reply) => {
                let _ = reply.send(self.counters.clone());
            }
            Command::Sessions(reply) => {
                let status = self.sessions.values().map(status_of).collect();
                let _ = reply.send(status);
            }
        }
    }

    fn add(&mut self, spec: PeerSpec, config: SessionConfig) -> Result<(), DriverError> {
        let key = spec.key();
        if self.sessions.contains_key(&key) {
            return Err(DriverError::DuplicateSession {
                peer: key.peer,
                local: key.local,
            });
        }
        let socket = open_sender(spec.local).map_err(|source| DriverError::SessionSocket {
            peer: spec.peer,
            local: spec.local,
            source,
        })?;
        let mut rng = rand::rng();
        // "A unique, nonzero discriminator value generated by the transmitting system"
        // (RFC 5880 §4.1).
        let discr = loop {
            if let Some(d) = NonZeroU32::new(rng.random())
                && !self.by_discr.contains_key(&d)
            {
                break d;
            }
        };
        let session = Session::new(config, discr, rng.random(), Instant::now());
        self.by_discr.insert(discr, key);
        self.sessions.insert(
            key,
            Entry {
                spec,
                session,
                socket,
                counters: SessionCounters::default(),
            },
        );
        Ok(())
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, e)| {
                [e.session.next_tx_at(), e.session.detection_deadline()]
                    .into_iter()
                    .flatten()
                    .any(|at| at <= now)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            self.handle(key, Event::DetectionTimer);
            self.handle(key, Event::TxTimer);
        }
    }

    fn on_datagram(&mut self, datagram: Datagram) {
        self.counters.packets_in += 1;
        match self.accept(&datagram) {
            Ok((key, packet)) => {
                if let Some(entry) = self.sessions.get_mut(&key) {
                    entry.counters.packets_in += 1;
                }
                self.handle(key, Event::Packet(packet));
            }
            Err(reason) => {
                tracing::trace!(source = %datagram.source, reason = reason.label(), "BFD packet dropped");
                *self.counters.dropped.entry(reason).or_default() += 1;
            }
        }
    }

    /// The transport checks, decoding and demultiplexing of one datagram.
    fn accept(&self, datagram: &Datagram) -> Result<(SessionKey, ControlPacket), DropReason> {
        // "All received BFD Control packets that are demultiplexed to the session MUST be
        // discarded if the received TTL or Hop Limit is not equal to 255." (RFC 5881 §5) Checked
        // before demultiplexing: no single-hop session accepts anything else.
        if !datagram.multihop && datagram.ttl != Some(255) {
            return Err(DropReason::TtlNot255);
        }
        let packet =
            ControlPacket::decode(&datagram.bytes).map_err(|e| DropReason::Invalid(e.reason()))?;
        let key = match packet.your_discriminator {
            // "If the Your Discriminator field is nonzero, it MUST be used to select the session
            // with which this BFD packet is associated."
            Some(yours) => *self.by_discr.get(&yours).ok_or(DropReason::NoSession)?,
            None => SessionKey {
                peer: datagram.source.ip(),
                local: datagram.destination,
                multihop: datagram.multihop,
            },
        };
        let entry = self.sessions.get(&key).ok_or(DropReason::NoSession)?;
        if entry.spec.peer.ip() != datagram.source.ip() {
            return Err(DropReason::WrongPeerAddress);
        }
        if key.multihop != datagram.multihop {
            return Err(DropReason::WrongHopMode);
        }
        if let HopMode::Multihop { min_ttl } = entry.spec.hops
            && datagram.ttl.is_none_or(|ttl| ttl < min_ttl)
        {
            return Err(DropReason::TtlBelowMinimum);
        }
        Ok((key, packet))
    }

    fn handle(&mut self, key: SessionKey, event: Event) {
        let Some(entry) = self.sessions.get_mut(&key) else {
            return;
        };
        for action in entry.session.handle(Instant::now(), event) {
            match action {
                Action::Send(packet) => {
                    match entry.socket.try_send_to(&packet.encode(), entry.spec.peer) {
                        Ok(_) => {
                            self.counters.packets_out += 1;
                            entry.counters.packets_out += 1;
                        }
                        Err(error) => {
                            tracing::trace!(peer = %entry.spec.peer, %error, "BFD send failed");
                            self.counters.send_errors += 1;
                            entry.counters.send_errors += 1;
                        }
                    }
                }
                Action::StateChanged(change) => {
                    tracing::info!(
                        peer = %key.peer, local = %key.local,
                        from = ?change.from, to = ?change.to, diag = ?change.diag,
                        "BFD session state changed"
                    );
                    self.counters.state_changes += 1;
                    entry.counters.state_changes += 1;
                    // A client that went away no longer needs to know.
                    let _ = self.events.send(SessionEvent { key, change });
                }
            }
        }
    }
}

fn status_of(entry: &Entry) -> SessionStatus {
    SessionStatus {
        spec: entry.spec,
        state: entry.session.state(),
        remote_state: entry.session.remote_state(),
        local_diag: entry.session.local_diag(),
        local_discriminator: entry.session.local_discriminator(),
        remote_discriminator: entry.session.remote_discriminator(),
        counters: entry.counters,
    }
}

fn no_such_session(key: SessionKey) -> DriverError {
    DriverError::NoSuchSession {
        peer: key.peer,
        local: key.local,
    }
}

fn udp_socket(addr: &SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(*addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // One listener per family keeps IPv4 out of the IPv6 socket's mapped addresses.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A receiving socket that reports each datagram's TTL / Hop Limit and destination address.
fn open_listener(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = udp_socket(&addr)?;
    if addr.is_ipv4() {
        setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)?;
        setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?;
    } else {
        setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)?;
        setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?;
    }
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A session's sending socket: bound to `local` on a random port of 49152–65535, TTL 255.
/// "The same UDP source port number MUST be used for all BFD Control packets associated with a
/// particular session." (RFC 5881 §4)
fn open_sender(local: IpAddr) -> io::Result<UdpSocket> {
    let socket = udp_socket(&SocketAddr::new(local, 0))?;
    match local {
        IpAddr::V4(_) => socket.set_ttl_v4(SEND_TTL)?,
        IpAddr::V6(_) => socket.set_unicast_hops_v6(SEND_TTL)?,
    }
    let mut rng = rand::rng();
    let mut last_error = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..64 {
        let port = rng.random_range(SOURCE_PORTS);
        match socket.bind(&SocketAddr::new(local, port).into()) {
            Ok(()) => return UdpSocket::from_std(socket.into()),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = error,
            Err(error) => return Err(error),
        }
    }
    Err(last_error)
}

/// Forwards every datagram of one listener to the driver until the driver goes away.
async fn listen(
    socket: UdpSocket,
    bound: SocketAddr,
    multihop: bool,
    datagrams: mpsc::Sender<Datagram>,
) {
    loop {
        let received = socket
            .async_io(Interest::READABLE, || receive(&socket, bound, multihop))
            .await;
        match received {
            Ok(datagram) => {
                if datagrams.send(datagram).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%bound, %error, "BFD receive failed");
                // Errors such as ICMP-induced ECONNREFUSED are per datagram; keep listening, but
                // never spin on a persistent one.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One non-blocking `recvmsg` with its TTL / Hop Limit and packet-info control messages.
fn receive(socket: &UdpSocket, bound: SocketAddr, multihop: bool) -> io::Result<Datagram> {
    let mut buffer = [0u8; RECV_BUFFER];
    let mut control = nix::cmsg_space!(nix::libc::c_int, nix::libc::in6_pktinfo);
    let (length, source, destination, ttl) = {
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_DONTWAIT,
        )?;
        let mut ttl = None;
        let mut destination = bound.ip();
        for cmsg in message.cmsgs()? {
            match cmsg {
                ControlMessageOwned::Ipv4Ttl(value) | ControlMessageOwned::Ipv6HopLimit(value) => {
                    ttl = u8::try_from(value).ok();
                }
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    destination = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)).into();
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    destination = Ipv6Addr::from(info.ipi6_addr.s6_addr).into();
                }
                _ => {}
            }
        }
        let source = message
            .address
            .and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::V4(SocketAddrV4::from(*v4)))
                    .or_else(|| {
                        a.as_sockaddr_in6()
                            .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
                    })
            })
            .ok_or_else(|| io::Error::other("datagram without an IP source address"))?;
        (message.bytes, source, destination, ttl)
    };
    Ok(Datagram {
        bytes: buffer[..length.min(RECV_BUFFER)].to_vec(),
        source,
        destination,
        ttl,
        multihop,
    })
}
