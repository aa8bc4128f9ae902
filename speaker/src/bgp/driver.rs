//! The thin async driver around the pure BGP cores: TCP sockets, timers and channels.
//!
//! ```text
//!  listener task (per listening address) ──accepted TcpStream, by peer address──┐
//!                                                                                ▼
//!  PeerHandle ──Command (stop, abort, reconfigure)──►  peer task: Fsm::handle, AdjRibOut::sync,
//!             ──watch: desired Routes──────────────►   timers from Fsm::next_deadline,
//!             ◄─watch: PeerStatus───────────────────   outbound connect, writes
//!                                                        ▲
//!  reader task (per connection): header, length, frame ──┘
//! ```
//!
//! One task per peer owns its [`Fsm`], its [`AdjRibOut`] and the write halves of its connections,
//! so nothing is shared or locked except the listener's map from peer address to peer task. The
//! task waits on: the FSM's next deadline, commands, accepted connections, the pending outbound
//! connect, messages from its connections' readers, and changes of the desired routes. Every
//! event becomes an [`Input`]; the returned [`Action`]s are carried out in order.
//!
//! - Routes: the desired routes are a watch value; on Established the Adj-RIB-Out sends them,
//!   then End-of-RIB (RFC 4724 §2); every later change goes out as the minimal UPDATEs on the
//!   running session, which is never reset for it (SPEC §6, hitless).
//! - Sockets: source address, TCP-MD5 (RFC 2385) on the connecting socket and, per peer, on the
//!   listening sockets; TTL 1 for eBGP peers unless a TTL is configured (RFC 4271 §5.1.3: a
//!   directly connected external peer; eBGP multihop sets a larger one).
//! - BFD: a peer with a [`BfdProfile`] is protected by a BFD session; a path failure it reports
//!   closes the BGP connection at once (see [`bfd_link`], RFC 5882 §3.2/§4.3); a new profile
//!   re-times BFD with a Poll Sequence and never resets BGP.
//! - Stopping: [`PeerHandle::stop`] sends a Cease NOTIFICATION; [`PeerHandle::abort`] closes the
//!   connection without one, as a crashing or restarting speaker would, so a peer that negotiated
//!   graceful restart keeps our routes (RFC 4724 §4.2).

pub mod bfd_link;
mod socket;
mod status;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use socket2::SockRef;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use self::bfd_link::{
    BfdCounters, BfdLinkError, BfdPeerStatus, BfdProfile, BfdSessionCounters,
};
use self::bfd_link::{BfdHub, PeerBfd};
use self::socket::{ConnectSpec, ConnectionEvent};
pub use self::status::{PeerError, PeerStatus, notification_text};
use super::fsm::{Action, ConfigError, ConnectionId, Direction, Fsm, Input, PeerAs, PeerConfig};
use super::packet::{CeaseSubcode, Codec, ErrorCode, Message, Notification, decode};
use super::rib_out::{AdjRibOut, NextHops, Routes};
use crate::bfd::driver::{
    DriverConfig as BfdDriverConfig, DriverError as BfdDriverError, SessionKey as BfdSessionKey,
};
use crate::sys;

/// A write that takes longer than this means the peer stopped reading; the connection is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the driver needs to run one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// The peer's address and port (179 outside tests).
    pub address: SocketAddr,
    /// Source address of outbound connections; the kernel picks one when `None`.
    pub local_address: Option<IpAddr>,
    /// The session parameters, fixed at OPEN.
    pub session: PeerConfig,
    /// Next hops announced with our routes ("next hop self").
    pub next_hops: NextHops,
    /// TCP-MD5 password (RFC 2385), at most 80 octets.
    pub password: Option<String>,
    /// TTL / hop limit of our packets; `None` means 1 for external peers (directly connected)
    /// and the kernel default for internal ones. eBGP multihop sets the hop count here.
    pub ttl: Option<u8>,
    /// BFD protecting the session; needs [`Speaker::start_bfd`] and `local_address`. A TTL above
    /// 1 makes it a multihop session (RFC 5883), otherwise single-hop (RFC 5881).
    pub bfd: Option<BfdProfile>,
}

/// Failures of setting up listeners and peers; each names the address involved.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A listening socket could not be opened.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The session parameters cannot be spoken.
    #[error("peer {peer}: {source}")]
    Config {
        /// The peer.
        peer: IpAddr,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// A peer with this address already runs on this speaker.
    #[error("peer {peer} is already configured")]
    DuplicatePeer {
        /// The peer.
        peer: IpAddr,
    },
    /// The TCP-MD5 key could not be installed on a listening socket.
    #[error(
        "peer {peer}: cannot install the TCP-MD5 key on the socket listening on {listener}: {source}"
    )]
    Md5 {
        /// The peer.
        peer: IpAddr,
        /// The listening address.
        listener: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The BFD driver could not be started.
    #[error("cannot start BFD: {0}")]
    BfdStart(#[source] BfdDriverError),
    /// The BFD driver did not answer (it has stopped).
    #[error("cannot read the BFD counters: {0}")]
    BfdCounters(#[source] BfdDriverError),
    /// The peer's BFD session cannot be set up.
    #[error(transparent)]
    Bfd(#[from] BfdLinkError),
    /// The peer's task has ended.
    #[error("peer {peer}: the session task has stopped")]
    Stopped {
        /// The peer.
        peer: IpAddr,
    },
}

/// Accepted connections are handed to the peer task registered for the remote address.
type InboundMap = Arc<Mutex<HashMap<IpAddr, mpsc::UnboundedSender<TcpStream>>>>;

/// The listening sockets and the peers of one speaker. Must be created inside a tokio runtime;
/// all sockets belong to the network namespace of the thread that drives that runtime.
#[derive(Debug)]
pub struct Speaker {
    listeners: Vec<(SocketAddr, Arc<TcpListener>)>,
    inbound: InboundMap,
    accept_tasks: Vec<JoinHandle<()>>,
    bfd: Option<BfdHub>,
}

impl Speaker {
    /// Listens on `addresses` (e.g. `0.0.0.0:179` and `[::]:179`; none for a speaker that only
    /// connects out). Connections from addresses that are not configured peers are closed.
    pub fn listen(addresses: &[SocketAddr]) -> Result<Self, DriverError> {
        let inbound: InboundMap = Arc::default();
        let mut listeners = Vec::new();
        let mut accept_tasks = Vec::new();
        for &address in addresses {
            let listener = socket::listen(address)
                .map(Arc::new)
                .map_err(|source| DriverError::Listen { address, source })?;
            let bound = listener.local_addr().unwrap_or(address);
            accept_tasks.push(tokio::spawn(accept(listener.clone(), inbound.clone())));
            listeners.push((bound, listener));
        }
        Ok(Speaker {
            listeners,
            inbound,
            accept_tasks,
            bfd: None,
        })
    }

    /// Starts BFD (RFC 5880) on this speaker's runtime, listening as `config` says; peers added
    /// afterwards can be protected by it. Starting it again is a no-op.
    pub fn start_bfd(&mut self, config: &BfdDriverConfig) -> Result<(), DriverError> {
        if self.bfd.is_none() {
            self.bfd = Some(BfdHub::start(config).map_err(DriverError::BfdStart)?);
        }
        Ok(())
    }

    /// The BFD driver's counters, `None` while BFD is not started.
    pub async fn bfd_counters(&self) -> Result<Option<BfdCounters>, DriverError> {
        match &self.bfd {
            Some(hub) => hub
                .counters()
                .await
                .map(Some)
                .map_err(DriverError::BfdCounters),
            None => Ok(None),
        }
    }

    /// The addresses actually bound (a port 0 becomes the kernel's choice).
    pub fn local_addresses(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(address, _)| *address).collect()
    }

    /// Starts a session with a peer (ManualStart) that announces `routes` once Established; it
    /// runs until stopped, reconnecting after failures with the FSM's backoff. Passing the
    /// routes here rather than later matters after a restart: End-of-RIB follows the first sync,
    /// and a peer keeping our routes as stale drops those missing from it (RFC 4724 §4.2).
    pub fn add_peer(&self, spec: PeerSpec, routes: Routes) -> Result<PeerHandle, DriverError> {
        let peer = spec.address.ip();
        let fsm = Fsm::new(spec.session.clone())
            .map_err(|source| DriverError::Config { peer, source })?;
        if let Some(profile) = &spec.bfd {
            profile
                .session_config()
                .map_err(|source| BfdLinkError::Profile { peer, source })?;
        }
        let bfd = match &self.bfd {
            Some(hub) => hub.attach(peer, spec.local_address, spec.ttl),
            None => Err(BfdLinkError::NotStarted { peer }),
        };
        let bfd = match bfd {
            Ok(bfd) => Some(bfd),
            Err(error) if spec.bfd.is_some() => return Err(error.into()),
            Err(_) => None,
        };
        let (accepted_tx, accepted) = mpsc::unbounded_channel();
        {
            let mut inbound = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
            if inbound.contains_key(&peer) {
                return Err(DriverError::DuplicatePeer { peer });
            }
            if let Some(password) = &spec.password {
                for (listener, socket) in &self.listeners {
                    if listener.is_ipv4() == peer.is_ipv4() {
                        sys::set_tcp_md5(socket.as_ref(), peer, password.as_bytes()).map_err(
                            |source| DriverError::Md5 {
                                peer,
                                listener: *listener,
                                source,
                            },
                        )?;
                    }
                }
            }
            inbound.insert(peer, accepted_tx);
        }
        let external = match spec.session.peer_as {
            PeerAs::Fixed(asn) => asn != spec.session.local_as,
            PeerAs::External => true,
            PeerAs::Internal => false,
        };
        let connect = ConnectSpec {
            peer: spec.address,
            local: spec.local_address,
            password: spec.password.clone(),
            ttl: spec.ttl.or(external.then_some(1)),
        };
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (routes_tx, routes) = watch::channel(routes);
        let (status_tx, status) = watch::channel(PeerStatus::new());
        let (events_tx, events) = mpsc::unbounded_channel();
        let task = PeerTask {
            local_as: spec.session.local_as,
            next_hops: spec.next_hops,
            connect,
            fsm,
            rib: None,
            session_connection: None,
            end_of_rib_sent: false,
            updates_sent: 0,
            connections: HashMap::new(),
            next_connection: 0,
            connecting: None,
            events_tx,
            pending: VecDeque::new(),
            last_error: None,
            seen_fsm_error: None,
            status: status_tx,
            bfd,
        };
        let inbound = self.inbound.clone();
        let keyed_listeners: Vec<Arc<TcpListener>> = self
            .listeners
            .iter()
            .filter(|(listener, _)| spec.password.is_some() && listener.is_ipv4() == peer.is_ipv4())
            .map(|(_, socket)| socket.clone())
            .collect();
        let bfd_profile = spec.bfd;
        let bfd_session = task.bfd.as_ref().map(PeerBfd::key);
        let task = tokio::spawn(async move {
            task.run(commands, accepted, events, routes, bfd_profile)
                .await;
            inbound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&peer);
            for listener in keyed_listeners {
                // An empty key deletes the peer's key (tcp(7)); adding the peer again installs it.
                if let Err(error) = sys::set_tcp_md5(listener.as_ref(), peer, &[]) {
                    tracing::warn!(%peer, %error, "cannot remove the TCP-MD5 key");
                }
            }
        });
        Ok(PeerHandle {
            peer,
            bfd_session,
            commands: commands_tx,
            routes: routes_tx,
            status,
            task,
        })
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        for task in &self.accept_tasks {
            task.abort();
        }
    }
}

async fn accept(listener: Arc<TcpListener>, inbound: InboundMap) {
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            // Out of descriptors or similar: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let peer_task = inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&remote.ip())
            .cloned();
        // Unknown peers (and peers whose task ended) are refused by dropping the stream.
        if let Some(peer_task) = peer_task {
            let _ = peer_task.send(stream);
        }
    }
}

#[derive(Debug)]
enum Command {
    Stop(CeaseSubcode),
    Abort,
    Reconfigure(Box<PeerConfig>),
    SetBfd(Option<BfdProfile>),
}

/// Controls one running peer session.
#[derive(Debug)]
pub struct PeerHandle {
    peer: IpAddr,
    /// The key of the peer's BFD session, when the peer is bound to the speaker's BFD.
    bfd_session: Option<BfdSessionKey>,
    commands: mpsc::UnboundedSender<Command>,
    routes: watch::Sender<Routes>,
    status: watch::Receiver<PeerStatus>,
    task: JoinHandle<()>,
}

impl PeerHandle {
    /// Replaces the routes the peer should hold; the difference goes out as UPDATEs.
    pub fn set_routes(&self, routes: Routes) {
        self.routes.send_replace(routes);
    }

    /// The session's status, updated after every event.
    pub fn status(&self) -> watch::Receiver<PeerStatus> {
        self.status.clone()
    }

    /// The key of the peer's session in [`BfdCounters::sessions`]; `None` when the peer was added
    /// without BFD on the speaker or without a local address. The session itself runs only
    /// while a [`BfdProfile`] is set.
    pub fn bfd_session(&self) -> Option<BfdSessionKey> {
        self.bfd_session
    }

    /// Applies new session parameters: the session is reset (Cease, Other Configuration Change)
    /// only when something fixed at OPEN changed.
    /// The address, source, password, TTL and next hops belong to the [`PeerSpec`]: changing them
    /// means removing the peer and adding it again.
    pub fn reconfigure(&self, config: PeerConfig) -> Result<(), DriverError> {
        config.validate().map_err(|source| DriverError::Config {
            peer: self.peer,
            source,
        })?;
        self.commands
            .send(Command::Reconfigure(Box::new(config)))
            .map_err(|_| DriverError::Stopped { peer: self.peer })
    }

    /// Protects the session with BFD under `profile`, changes the running session's timers with a
    /// Poll Sequence (RFC 5880 §6.8.3), or (with `None`) ends BFD; the BGP session is never reset
    /// for it. Failures to apply it show in the status' `last_error`.
    pub fn set_bfd_profile(&self, profile: Option<BfdProfile>) -> Result<(), DriverError> {
        if let Some(profile) = &profile {
            profile
                .session_config()
                .map_err(|source| BfdLinkError::Profile {
                    peer: self.peer,
                    source,
                })?;
        }
        self.commands
            .send(Command::SetBfd(profile))
            .map_err(|_| DriverError::Stopped { peer: self.peer })
    }

    /// Ends the session with a Cease NOTIFICATION carrying `subcode` (RFC 4486) and waits for the
    /// task to finish.
    pub async fn stop(self, subcode: CeaseSubcode) {
        let _ = self.commands.send(Command::Stop(subcode));
        let _ = self.task.await;
    }

    /// Closes the connection without a NOTIFICATION, as a restarting speaker does (RFC 4724
    /// §4.2: the peer keeps our routes as stale until we are back), and waits for the task.
    pub async fn abort(self) {
        let _ = self.commands.send(Command::Abort);
        let _ = self.task.await;
    }
}

struct Connection {
    writer: OwnedWriteHalf,
    reader: JoinHandle<()>,
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

/// What woke the peer task.
enum Wake {
    Tick,
    Command(Option<Command>),
    Accepted(TcpStream),
    Connected(io::Result<TcpStream>),
    Connection(ConnectionEvent),
    RoutesChanged,
    RoutesClosed,
    Bfd(crate::bfd::session::StateChange),
}

struct PeerTask {
    local_as: u32,
    next_hops: NextHops,
    connect: ConnectSpec,
    fsm: Fsm,
    rib: Option<AdjRibOut>,
    /// The connection the session reached Established on.
    session_connection: Option<ConnectionId>,
    /// End-of-RIB was written on this session.
    end_of_rib_sent: bool,
    /// UPDATEs written since the peer was added.
    updates_sent: u64,
    connections: HashMap<ConnectionId, Connection>,
    next_connection: u64,
    /// The outbound attempt and when it started.
    connecting: Option<(Instant, ConnectFuture)>,
    events_tx: mpsc::UnboundedSender<ConnectionEvent>,
    /// Inputs produced while carrying out actions (a failed write closes its connection).
    pending: VecDeque<Input>,
    last_error: Option<PeerError>,
    seen_fsm_error: Option<super::fsm::SessionError>,
    status: watch::Sender<PeerStatus>,
    /// The BFD side, when the speaker runs BFD and the peer has a local address.
    bfd: Option<PeerBfd>,
}

impl PeerTask {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut accepted: mpsc::UnboundedReceiver<TcpStream>,
        mut events: mpsc::UnboundedReceiver<ConnectionEvent>,
        mut routes: watch::Receiver<Routes>,
        bfd_profile: Option<BfdProfile>,
    ) {
        let mut routes_open = true;
        if bfd_profile.is_some() {
            self.set_bfd(bfd_profile).await;
        }
        self.step(Input::Start, &mut routes).await;
        loop {
            let deadline = self.fsm.next_deadline();
            let wake = tokio::select! {
                () = sleep_until(deadline) => Wake::Tick,
                command = commands.recv() => Wake::Command(command),
                Some(stream) = accepted.recv() => Wake::Accepted(stream),
                result = pending_connect(&mut self.connecting) => Wake::Connected(result),
                Some(event) = events.recv() => Wake::Connection(event),
                changed = routes.changed(), if routes_open => match changed {
                    Ok(()) => Wake::RoutesChanged,
                    Err(_) => Wake::RoutesClosed,
                },
                change = next_bfd_change(&mut self.bfd) => Wake::Bfd(change),
            };
            match wake {
                Wake::Tick => self.step(Input::Tick, &mut routes).await,
                Wake::Command(Some(Command::Stop(subcode))) => {
                    self.step(Input::Stop(subcode), &mut routes).await;
                    self.close_bfd(true).await;
                    break;
                }
                // A dropped handle means the peer was removed from the configuration.
                Wake::Command(None) => {
                    let subcode = CeaseSubcode::PeerDeconfigured;
                    self.step(Input::Stop(subcode), &mut routes).await;
                    self.close_bfd(true).await;
                    break;
                }
                Wake::Command(Some(Command::Abort)) => {
                    self.close_bfd(false).await;
                    break;
                }
                Wake::Command(Some(Command::SetBfd(profile))) => {
                    self.set_bfd(profile).await;
                    self.publish();
                }
                Wake::Bfd(change) => {
                    let path_failed = self.bfd.as_mut().is_some_and(|bfd| bfd.on_change(change));
                    if path_failed {
                        self.bfd_path_failed(change, &mut routes).await;
                    }
                    self.publish();
                }
                Wake::Command(Some(Command::Reconfigure(config))) => {
                    match self.fsm.reconfigure(Instant::now(), *config) {
                        Ok(actions) => self.execute(actions, None, &mut routes).await,
                        Err(error) => {
                            tracing::warn!(peer = %self.connect.peer, %error, "reconfiguration refused");
                        }
                    }
                    self.drain(&mut routes).await;
                }
                Wake::Accepted(stream) => {
                    let connection = self.register(stream);
                    let direction = Direction::Inbound;
                    let input = Input::Connected {
                        connection,
                        direction,
                    };
                    self.step(input, &mut routes).await;
                }
                Wake::Connected(result) => {
                    self.connecting = None;
                    match result {
                        Ok(stream) => {
                            let connection = self.register(stream);
                            let direction = Direction::Outbound;
                            let input = Input::Connected {
                                connection,
                                direction,
                            };
                            self.step(input, &mut routes).await;
                        }
                        Err(error) => {
                            self.last_error = Some(PeerError::Connect {
                                peer: self.connect.peer,
                                kind: error.kind(),
                                detail: error.to_string(),
                            });
                            self.step(Input::ConnectFailed, &mut routes).await;
                        }
                    }
                }
                Wake::Connection(event) => {
                    let input = match event {
                        ConnectionEvent::Frame(connection, frame) => {
                            let codec = self.codec();
                            match decode(&frame, codec) {
                                Ok(message) => Input::Received {
                                    connection,
                                    message,
                                },
                                Err(error) => Input::Malformed { connection, error },
                            }
                        }
                        ConnectionEvent::BadHeader(connection, error) => {
                            Input::Malformed { connection, error }
                        }
                        ConnectionEvent::Closed(connection) => {
                            if self.connections.remove(&connection).is_none() {
                                // Already closed on our side; the FSM has forgotten it.
                                continue;
                            }
                            Input::Closed { connection }
                        }
                    };
                    self.step(input, &mut routes).await;
                }
                Wake::RoutesChanged => {
                    self.sync_routes(&mut routes).await;
                    self.drain(&mut routes).await;
                }
                Wake::RoutesClosed => routes_open = false,
            }
        }
        // Whatever is left closes without a NOTIFICATION (abort) or after the Cease (stop).
        for (_, connection) in self.connections.drain() {
            connection.reader.abort();
        }
        self.publish();
    }

    /// Applies a BFD profile to the peer's BFD session; failures go to the status.
    async fn set_bfd(&mut self, profile: Option<BfdProfile>) {
        let peer = self.connect.peer.ip();
        let result = match self.bfd.as_mut() {
            Some(bfd) => bfd.apply(profile).await,
            None if profile.is_some() => Err(BfdLinkError::NotStarted { peer }),
            None => Ok(()),
        };
        if let Err(error) = result {
            tracing::warn!(%peer, %error, "BFD profile not applied");
            self.last_error = Some(PeerError::Bfd {
                detail: error.to_string(),
            });
        }
    }

    async fn close_bfd(&mut self, admin_down: bool) {
        if let Some(bfd) = self.bfd.take() {
            bfd.close(admin_down).await;
        }
    }

    /// BFD saw the forwarding path fail: every connection to the peer closes now, without
    /// waiting on the dead path (RFC 5882 §3.2, §4.3). The Cease "BFD Down" NOTIFICATION (RFC
    /// 9384 §2) is only offered to the socket buffer; the FSM then takes each close as a
    /// connection failure (RFC 4271 event 18) and its ConnectRetry backoff takes over.
    async fn bfd_path_failed(
        &mut self,
        change: crate::bfd::session::StateChange,
        routes: &mut watch::Receiver<Routes>,
    ) {
        let codec = self.codec();
        let cease =
            Message::Notification(Notification::new(ErrorCode::Cease(CeaseSubcode::BfdDown)));
        let ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for id in ids {
            if let Some(closed) = self.connections.remove(&id) {
                if let Ok(bytes) = cease.encode(codec) {
                    let _ = closed.writer.try_write(&bytes);
                }
                closed.reader.abort();
            }
            self.pending.push_back(Input::Closed { connection: id });
        }
        tracing::warn!(peer = %self.connect.peer, diag = ?change.diag, "BFD session down: BGP session closed");
        self.drain(routes).await;
        self.last_error = Some(PeerError::BfdDown { diag: change.diag });
    }

    fn codec(&self) -> Codec {
        self.fsm
            .negotiated()
            .map_or(Codec::FOUR_OCTET_AS, |n| n.codec())
    }

    fn register(&mut self, stream: TcpStream) -> ConnectionId {
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        // Inbound connections answer with the same TTL as outbound ones; the TCP-MD5 key came
        // with the listening socket.
        let peer = self.connect.peer.ip();
        if let Err(error) = socket::set_ttl(&SockRef::from(&stream), peer, self.connect.ttl) {
            tracing::warn!(%peer, %error, "cannot set TTL on accepted connection");
        }
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let reader = tokio::spawn(socket::read_frames(id, reader, self.events_tx.clone()));
        self.connections.insert(id, Connection { writer, reader });
        id
    }

    async fn step(&mut self, input: Input, routes: &mut watch::Receiver<Routes>) {
        self.pending.push_back(input);
        self.drain(routes).await;
    }

    /// Feeds queued inputs to the FSM until none are left, then publishes the status.
    async fn drain(&mut self, routes: &mut watch::Receiver<Routes>) {
        while let Some(input) = self.pending.pop_front() {
            let connection = match &input {
                Input::Received { connection, .. } => Some(*connection),
                _ => None,
            };
            let actions = self.fsm.handle(Instant::now(), input);
            if self.fsm.last_error() != self.seen_fsm_error.as_ref() {
                self.seen_fsm_error = self.fsm.last_error().cloned();
                self.last_error = self.seen_fsm_error.as_ref().map(PeerError::from_session);
            }
            self.execute(actions, connection, routes).await;
        }
        self.publish();
    }

    /// Carries out the FSM's actions; `connection` is the one the input arrived on.
    async fn execute(
        &mut self,
        actions: Vec<Action>,
        connection: Option<ConnectionId>,
        routes: &mut watch::Receiver<Routes>,
    ) {
        for action in actions {
            match action {
                Action::Connect => {
                    if let Some((started, _)) = self.connecting.take() {
                        self.last_error = Some(PeerError::ConnectTimeout {
                            peer: self.connect.peer,
                            after: started.elapsed(),
                        });
                    }
                    let attempt = Box::pin(socket::connect(self.connect.clone()));
                    self.connecting = Some((Instant::now(), attempt));
                }
                Action::CancelConnect => self.connecting = None,
                Action::Send {
                    connection,
                    message,
                } => {
                    if let Message::Notification(notification) = &message {
                        self.last_error = Some(PeerError::NotificationSent {
                            text: notification_text(notification),
                        });
                    }
                    self.write(connection, &[message]).await;
                }
                Action::Close { connection } => {
                    if let Some(mut closed) = self.connections.remove(&connection) {
                        // Flushes what was queued (the NOTIFICATION), then FIN.
                        let _ = tokio::time::timeout(WRITE_TIMEOUT, closed.writer.shutdown()).await;
                        closed.reader.abort();
                    }
                    if self.session_connection == Some(connection) {
                        self.session_connection = None;
                    }
                }
                Action::Established(negotiated) => {
                    self.session_connection = connection;
                    self.end_of_rib_sent = false;
                    match AdjRibOut::new(self.local_as, &negotiated, self.next_hops) {
                        Ok(rib) => {
                            self.rib = Some(rib);
                            self.sync_routes(routes).await;
                        }
                        Err(error) => self.last_error = Some(PeerError::Routes(error)),
                    }
                }
                Action::Down(error) => {
                    self.rib = None;
                    self.session_connection = None;
                    self.end_of_rib_sent = false;
                    self.last_error = Some(PeerError::from_session(&error));
                }
                // This speaker only announces; what the peer sends is not used.
                Action::UpdateReceived(_) => {}
                Action::RouteRefreshRequested(family) => {
                    if let (Some(rib), Some(connection)) = (&self.rib, self.session_connection) {
                        let updates: Vec<Message> = rib
                            .refresh(family)
                            .into_iter()
                            .map(Message::Update)
                            .collect();
                        self.write(connection, &updates).await;
                    }
                }
            }
        }
    }

    /// Sends the UPDATEs that bring the peer to the desired routes.
    async fn sync_routes(&mut self, routes: &mut watch::Receiver<Routes>) {
        let desired = routes.borrow_and_update().clone();
        let (Some(rib), Some(connection)) = (self.rib.as_mut(), self.session_connection) else {
            return;
        };
        let updates = rib.sync(&desired);
        let end_of_rib = updates.iter().any(|u| u.end_of_rib_family().is_some());
        let messages: Vec<Message> = updates.into_iter().map(Message::Update).collect();
        if self.write(connection, &messages).await && end_of_rib {
            self.end_of_rib_sent = true;
        }
    }

    /// Writes messages and says whether they went out; a failed or stuck write closes the
    /// connection and tells the FSM.
    async fn write(&mut self, connection: ConnectionId, messages: &[Message]) -> bool {
        let codec = self.codec();
        let Some(open) = self.connections.get_mut(&connection) else {
            return false;
        };
        let mut bytes = Vec::new();
        for message in messages {
            match message.encode(codec) {
                Ok(encoded) => bytes.extend_from_slice(&encoded),
                Err(error) => {
                    tracing::error!(peer = %self.connect.peer, %error, "cannot encode message");
                }
            }
        }
        let detail = match tokio::time::timeout(WRITE_TIMEOUT, open.writer.write_all(&bytes)).await
        {
            Ok(Ok(())) => {
                let updates = messages
                    .iter()
                    .filter(|m| matches!(m, Message::Update(_)))
                    .count();
                self.updates_sent += u64::try_from(updates).unwrap_or(u64::MAX);
                return true;
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no progress for {WRITE_TIMEOUT:?}"),
        };
        if let Some(closed) = self.connections.remove(&connection) {
            closed.reader.abort();
        }
        self.last_error = Some(PeerError::Write {
            peer: self.connect.peer,
            detail,
        });
        self.pending.push_back(Input::Closed { connection });
        false
    }

    fn publish(&mut self) {
        let state = self.fsm.state();
        let prefixes_sent = self.rib.as_ref().map_or(0, |rib| rib.advertised().len());
        let end_of_rib_sent = self.end_of_rib_sent;
        let updates_sent = self.updates_sent;
        let last_error = self.last_error.clone();
        let bfd = self.bfd.as_ref().and_then(PeerBfd::status);
        self.status.send_if_modified(|status| {
            let before = status.clone();
            if status.state != state {
                status.state = state;
                status.since = SystemTime::now();
            }
            status.prefixes_sent = prefixes_sent;
            status.end_of_rib_sent = end_of_rib_sent;
            status.updates_sent = updates_sent;
            status.last_error = last_error;
            status.bfd = bfd;
            *status != before
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

async fn next_bfd_change(bfd: &mut Option<PeerBfd>) -> crate::bfd::session::StateChange {
    match bfd {
        Some(bfd) => bfd.next_change().await,
        None => std::future::pending().await,
    }
}

async fn pending_connect(
    connecting: &mut Option<(Instant, ConnectFuture)>,
) -> io::Result<TcpStream> {
    match connecting {
        Some((_, attempt)) => attempt.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
