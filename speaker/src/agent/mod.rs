//! The speaker's control loop: Kubernetes state and membership in, layer-2 driver commands and
//! status out (SPEC §1, §5).
//!
//! ```text
//!  caches (ferrolb CRDs, Services, EndpointSlices, Nodes, Namespaces, SpeakerStatuses) ─────┐
//!  membership driver (MemberChange: who is alive, by UDP heartbeats) ───────────────────────┤ changed
//!  L2 driver (this node's interfaces, via netlink) ──────────────────────────────────────────┘   │
//!                                    debounce (DEBOUNCE) ◀────────────────────────────────────────┘
//!                                    objects → desired::Inputs → compute → changes
//!       ┌─────────────────┬──────────────────────┼──────────────────────┬───────────────────┐
//!  L2 Command (Lost,   membership SetPeers   watch<BgpView>          watch<SpeakerStatus> watch<announced
//!  then Gained)                              → bgp::run (peer set;   → publish (rate-     Services> →
//!                                            sessions → status)        limited SSA)         conditions/Events
//! ```
//!
//! Contract:
//! - **Caches first.** Nothing is computed before every cache has listed once, so a node never
//!   withdraws an IP merely because the Services were not listed yet.
//! - **Debounced, never busy.** Every input only marks the state dirty; the state is recomputed
//!   once, [`DEBOUNCE`] after the first mark (a burst of watch events — a whole initial list, a
//!   Service with its EndpointSlice — costs one computation; a failover waits at most this long).
//! - **Bad input loses nothing.** The snapshot comes from [`objects::LastValid`]: an object edited
//!   into an invalid state keeps its last valid version, so a typo withdraws nothing.
//! - **One view for the election.** Every speaker must elect from the same inputs, so this node's
//!   own eligibility is judged from the interfaces it *published* in its `SpeakerStatus` (as the
//!   others see them), not from its live netlink view; the live view is what it publishes.
//! - **Settle before announcing.** After start, nothing is announced until every live peer's
//!   interfaces and this node's own published ones are known (at least one detection time, so the
//!   peers alive have been heard; at most [`SETTLE_MAX`]). Otherwise a restarting speaker would
//!   briefly see itself as the only candidate and pull every IP to itself with gratuitous ARP.
//! - **Liveness without the API server.** Heartbeats, the live set, the election and the driver
//!   commands need no API call once running: with the API server down the cached objects stay and
//!   a dead owner's IPs still move. Writes (status, conditions, Events, key refresh) run in their
//!   own tasks and retry.
//! - **BGP beside, not inside.** Each computation publishes a [`bgp::BgpView`] (snapshot,
//!   `desired.bgp`, this node's addresses) on [`AgentConfig::bgp_view`]; [`bgp::run`] follows it
//!   in its own task, so a slow session or Secret read never delays layer 2. Session states come
//!   back on [`AgentConfig::bgp_status`] and join this node's `SpeakerStatus`.
//! - **Clean stop.** On shutdown the membership driver sends its leaving heartbeat before the
//!   process exits, so the other speakers take over at once instead of after the detection time.

pub mod args;
pub mod bgp;
pub mod metrics;
pub mod objects;
pub mod peers;
pub mod publish;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferrolb_config::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
    SpeakerStatusStatus,
};
use ferrolb_config::model::Objects;
use ferrolb_runtime::cache::{self, ObjectKey, Projection, drop_managed_fields};
use ferrolb_runtime::class::ClassFilter;
use ferrolb_runtime::events::{EventPublisher, EventQueue};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node as KubeNode, Secret, Service as KubeService};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::metrics::SpeakerMetrics;
use self::objects::{LastValid, ReportedInterfaces};
use self::status::Announced;
use crate::desired::{self, Desired, InterfaceExclusions, ServiceRef};
use crate::l2::announcer::{AnnouncerConfig, Counters};
use crate::l2::driver::{Command as L2Command, Driver, DriverHandle, Event as L2Event};
use crate::membership::driver::{
    self as membership, Command as MemberCommand, DroppedCounts, Peer,
};
use crate::membership::liveness::{Liveness, LivenessConfig, MemberChange};
use crate::membership::packet::HeartbeatKey;

/// The field manager of every write, so server-side apply removes what we stop publishing.
pub const FIELD_MANAGER: &str = "ferrolb-speaker";
/// Time from the first change to the recomputation that covers it (see the module docs).
pub const DEBOUNCE: Duration = Duration::from_millis(5);
/// See [`log_changes`].
const LOG_EACH_MAX: usize = 16;
/// Longest wait after start before announcing with some peers' interfaces still unknown.
pub const SETTLE_MAX: Duration = Duration::from_secs(5);
/// How often the settling condition is checked again while peers' interfaces are unknown.
const SETTLE_POLL: Duration = Duration::from_millis(100);
/// Key in the membership Secret.
pub const MEMBERSHIP_KEY: &str = "key";
/// Shortest accepted membership key (HMAC-SHA256 wants at least its output length, RFC 2104 §3).
pub const MIN_KEY_LEN: usize = 32;
/// Events waiting to be published at most. Taking over thousands of Services at once (a node
/// failing, or every speaker starting together) makes one `Announcing` Event each, faster than they
/// can be sent without holding up the conditions; those beyond this are dropped and counted
/// (`ferrolb_events_dropped_total`).
const EVENT_QUEUE_CAPACITY: usize = 1024;
/// Event creates in flight.
const EVENTS_IN_FLIGHT: usize = 4;
/// How often the membership Secret is read again, for key rotation.
pub const KEY_REFRESH: Duration = Duration::from_secs(60);

/// Everything the agent needs besides the client.
#[derive(Debug)]
pub struct AgentConfig {
    pub node: String,
    pub namespace: String,
    pub membership_secret: String,
    pub membership_port: u16,
    pub liveness: LivenessConfig,
    pub exclusions: InterfaceExclusions,
    pub filter: ClassFilter,
    pub metrics: SpeakerMetrics,
    /// Set to `true` once the caches are synced and the first state is applied.
    pub ready: watch::Sender<bool>,
    /// What BGP must announce, after every computation (see [`bgp::run`]).
    pub bgp_view: watch::Sender<Arc<bgp::BgpView>>,
    /// The BGP and BFD sessions, from [`bgp::run`].
    pub bgp_status: watch::Receiver<bgp::BgpStatus>,
}

/// The membership Secret is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading Secret {namespace}/{name}: {source}")]
    Read {
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("Secret {namespace}/{name} has no key {MEMBERSHIP_KEY:?}")]
    Missing { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name} key {MEMBERSHIP_KEY:?} has {len} bytes, at least {MIN_KEY_LEN} are required"
    )]
    TooShort {
        namespace: String,
        name: String,
        len: usize,
    },
}

/// Reads the heartbeat key (`get` only, as the RBAC allows).
async fn read_key(api: &Api<Secret>, name: &str) -> Result<Vec<u8>, KeyError> {
    let namespace = api.namespace().unwrap_or_default().to_owned();
    let secret = api.get(name).await.map_err(|source| KeyError::Read {
        namespace: namespace.clone(),
        name: name.to_owned(),
        source: Box::new(source),
    })?;
    let bytes = secret
        .data
        .and_then(|mut data| data.remove(MEMBERSHIP_KEY))
        .ok_or_else(|| KeyError::Missing {
            namespace: namespace.clone(),
            name: name.to_owned(),
        })?
        .0;
    if bytes.len() < MIN_KEY_LEN {
        return Err(KeyError::TooShort {
            namespace,
            name: name.to_owned(),
            len: bytes.len(),
        });
    }
    Ok(bytes)
}

/// The caches the loop reads.
struct Stores {
    pools: Store<IPAddressPool>,
    l2_advertisements: Store<L2Advertisement>,
    bgp_advertisements: Store<BGPAdvertisement>,
    peers: Store<BGPPeer>,
    bfd_profiles: Store<BFDProfile>,
    communities: Store<Community>,
    namespaces: Store<Namespace>,
    nodes: Store<KubeNode>,
    /// The many: compact projections, not objects (see [`ferrolb_runtime::cache`]).
    services: Projection<objects::ServiceFacts>,
    slices: Projection<objects::SliceFacts>,
    /// The interfaces each node's speaker reports.
    reported: Projection<Vec<desired::Interface>>,
}

fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .map(|object| (**object).clone())
        .collect()
}

impl Stores {
    fn start(client: &Client, changed: &Arc<Notify>, filter: &ClassFilter) -> Stores {
        let filter = filter.clone();
        Stores {
            pools: follow(Api::all(client.clone()), changed),
            l2_advertisements: follow(Api::all(client.clone()), changed),
            bgp_advertisements: follow(Api::all(client.clone()), changed),
            peers: follow(Api::all(client.clone()), changed),
            bfd_profiles: follow(Api::all(client.clone()), changed),
            communities: follow(Api::all(client.clone()), changed),
            namespaces: follow(Api::all(client.clone()), changed),
            nodes: follow(Api::all(client.clone()), changed),
            services: cache::project(
                Api::all(client.clone()),
                move |service: &KubeService| objects::service_facts(service, &filter),
                objects::ServiceFacts::wakes_the_loop,
                changed.clone(),
            ),
            slices: cache::project(
                Api::all(client.clone()),
                objects::slice_facts,
                PartialEq::ne,
                changed.clone(),
            ),
            reported: cache::project(
                Api::<ReportedInterfaces>::all(client.clone()),
                |status: &ReportedInterfaces| status.interfaces.clone(),
                PartialEq::ne,
                changed.clone(),
            ),
        }
    }

    async fn synced(&self) {
        let _ = tokio::join!(
            self.pools.wait_until_ready(),
            self.l2_advertisements.wait_until_ready(),
            self.bgp_advertisements.wait_until_ready(),
            self.peers.wait_until_ready(),
            self.bfd_profiles.wait_until_ready(),
            self.communities.wait_until_ready(),
            self.namespaces.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.services.wait_until_ready(),
            self.slices.wait_until_ready(),
            self.reported.wait_until_ready(),
        );
    }

    fn objects(&self) -> Objects {
        Objects {
            pools: cloned(&self.pools),
            l2_advertisements: cloned(&self.l2_advertisements),
            bgp_advertisements: cloned(&self.bgp_advertisements),
            peers: cloned(&self.peers),
            bfd_profiles: cloned(&self.bfd_profiles),
            communities: cloned(&self.communities),
            namespaces: cloned(&self.namespaces),
        }
    }
}

/// Watches one kind into a store, in a task of its own, and wakes the loop on every event.
fn follow<K>(api: Api<K>, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
    K: serde::de::DeserializeOwned,
{
    let (reader, writer) = reflector::store();
    let changed = changed.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(
            reflector(
                writer,
                watcher(api, watcher::Config::default()).modify(drop_managed_fields),
            )
            .default_backoff()
        );
        while let Some(event) = events.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(error) => {
                    tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying")
                }
            }
        }
    });
    reader
}

/// The membership UDP socket: dual-stack `[::]:port` where IPv6 exists, else `0.0.0.0:port`.
/// Returns whether it is an IPv6 socket (IPv4 peers are then addressed as v4-mapped).
fn membership_socket(port: u16) -> anyhow::Result<(UdpSocket, bool)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (socket, v6) = match dual_stack_socket(port) {
        Ok(socket) => (socket, true),
        Err(error) => {
            tracing::info!(%error, "no IPv6 membership socket, using IPv4 only");
            let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            socket.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
            (socket, false)
        }
    };
    socket.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(socket.into())
        .with_context(|| format!("membership socket on UDP port {port}"))?;
    Ok((socket, v6))
}

fn dual_stack_socket(port: u16) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(false)?;
    socket.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
    Ok(socket)
}

/// Addresses IPv4 peers through a dual-stack IPv6 socket.
fn for_socket(mut peers: Vec<Peer>, v6_socket: bool) -> Vec<Peer> {
    if v6_socket {
        for peer in &mut peers {
            if let IpAddr::V4(v4) = peer.address.ip() {
                peer.address.set_ip(IpAddr::V6(v4.to_ipv6_mapped()));
            }
        }
    }
    peers
}

/// The loop's state between two computations.
struct Loop {
    config: AgentConfig,
    stores: Stores,
    last_valid: LastValid,
    config_problems: Vec<String>,
    desired: Arc<Desired>,
    peers: Vec<Peer>,
    live: BTreeSet<String>,
    conflicts: BTreeMap<IpAddr, String>,
    l2: mpsc::UnboundedSender<L2Command>,
    interfaces: watch::Receiver<crate::l2::driver::Interfaces>,
    members: mpsc::Sender<MemberCommand>,
    v6_socket: bool,
    /// Shared with the status writer, not copied: it lists every announced IP.
    status_tx: watch::Sender<Arc<SpeakerStatusStatus>>,
    /// Shared with the condition writer, not copied: one entry per announced Service.
    announced_tx: watch::Sender<Arc<BTreeMap<ServiceRef, Announced>>>,
    /// `None` once settled; else (earliest, latest) time to start announcing.
    settling: Option<(Instant, Instant)>,
    /// A member came (back) up since the last computation: announce what this node keeps again.
    /// After a partition heals, clients may still hold the MAC of the node that took over on the
    /// other side; that node stops answering, and without a fresh announcement from the owner the
    /// clients would keep sending to it until their neighbour entries expire.
    reannounce: bool,
}

impl Loop {
    /// Recomputes and applies the desired state; returns when to look again while settling.
    async fn recompute(&mut self) -> Option<Instant> {
        let built = self.last_valid.build(self.stores.objects());
        self.config.metrics.set_config_valid(built.is_valid());
        let problems: Vec<String> = built.diagnostics.iter().map(ToString::to_string).collect();
        if problems != self.config_problems {
            for problem in &problems {
                tracing::warn!(%problem, "config object not used as written");
            }
            for (kind, name) in &built.kept {
                tracing::warn!(%kind, name, "invalid edit: keeping the last valid version");
            }
            self.config_problems = problems;
        }
        let kube_nodes = self.stores.nodes.state();
        let nodes: BTreeMap<String, desired::Node> = {
            let reported = self.stores.reported.read();
            kube_nodes
                .iter()
                .map(|node| {
                    let interfaces = reported.get(&ObjectKey::new("", &node.name_any()));
                    let node = objects::node(node, interfaces.map(Vec::as_slice));
                    (node.name.clone(), node)
                })
                .collect()
        };
        let peers = for_socket(
            peers::peers(&self.config.node, &kube_nodes, self.config.membership_port),
            self.v6_socket,
        );
        if peers != self.peers {
            tracing::info!(?peers, "membership peers");
            if self
                .members
                .send(MemberCommand::SetPeers(peers.clone()))
                .await
                .is_ok()
            {
                self.peers = peers;
            }
        }
        let local = objects::local_interfaces(&self.interfaces.borrow());
        let published = nodes
            .get(&self.config.node)
            .and_then(|node| node.interfaces.clone());
        if let Some((earliest, latest)) = self.settling {
            let unknown = unknown_interfaces(
                &self.config.node,
                &self.live,
                &nodes,
                published.as_deref(),
                &local,
            );
            if let Some(again) = settle_again(Instant::now(), earliest, latest, &unknown) {
                tracing::debug!(?unknown, "settling: interfaces not known yet");
                self.publish_status(&local);
                return Some(again);
            }
            tracing::info!(?unknown, "settled; announcing");
            self.settling = None;
        }
        let next = {
            // The caches stay locked for the computation only (it borrows from them; no await).
            let service_facts = self.stores.services.read();
            let slice_facts = self.stores.slices.read();
            desired::compute(&desired::Inputs {
                config: &built.config,
                node: &self.config.node,
                nodes: &nodes,
                interfaces: published.as_deref().unwrap_or_default(),
                exclusions: &self.config.exclusions,
                services: &objects::services(&service_facts, &slice_facts),
                live: &self.live,
            })
        };
        let changes = desired::changes(&self.desired, &next);
        log_changes("no longer announcing", &changes.lost);
        log_changes("announcing", &changes.gained);
        for lost in changes.lost {
            self.conflicts.remove(&lost.ip);
            let _ = self.l2.send(L2Command::Lost {
                ip: lost.ip,
                interface: lost.interface,
            });
        }
        for gained in changes.gained {
            let _ = self.l2.send(L2Command::Gained {
                ip: gained.ip,
                interface: gained.interface,
            });
        }
        if std::mem::take(&mut self.reannounce) {
            for kept in self
                .desired
                .announced_here()
                .intersection(&next.announced_here())
            {
                tracing::debug!(ip = %kept.ip, interface = %kept.interface, "a member is back: announcing again");
                let _ = self.l2.send(L2Command::Reannounce {
                    ip: kept.ip,
                    interface: kept.interface.clone(),
                });
            }
        }
        let metrics = &self.config.metrics;
        metrics.failed_over(status::failovers(&self.desired, &next, &self.config.node));
        metrics.set_announced_ips(
            next.l2
                .values()
                .filter(|d| !d.interfaces.is_empty())
                .count(),
        );
        self.config.bgp_view.send_replace(Arc::new(bgp::BgpView {
            config: Arc::new(built.config.clone()),
            routes: next.bgp.clone(),
            node_addresses: kube_nodes
                .iter()
                .find(|node| node.name_any() == self.config.node)
                .map(|node| peers::internal_ips(node).collect())
                .unwrap_or_default(),
        }));
        self.desired = Arc::new(next);
        self.publish(&local);
        None
    }

    /// Hands the status and the announced Services to their writers (which write on change).
    fn publish(&self, interfaces: &[desired::Interface]) {
        self.publish_status(interfaces);
        let announced = status::announced(&self.desired, &self.conflicts);
        self.announced_tx.send_if_modified(|current| {
            let changed = **current != announced;
            if changed {
                *current = Arc::new(announced);
            }
            changed
        });
    }

    fn publish_status(&self, interfaces: &[desired::Interface]) {
        let members: BTreeMap<String, bool> = self
            .peers
            .iter()
            .map(|peer| (peer.node.clone(), self.live.contains(&peer.node)))
            .collect();
        let status = status::speaker_status(
            &self.desired,
            interfaces,
            &members,
            &self.conflicts,
            &self.config.bgp_status.borrow(),
        );
        self.status_tx.send_if_modified(|current| {
            let changed = **current != status;
            if changed {
                *current = Arc::new(status);
            }
            changed
        });
    }
}

/// The nodes whose interfaces the election cannot use yet: live peers that have not reported, and
/// this node while what it published differs from what netlink shows (the others would elect from
/// an older view than this node does).
fn unknown_interfaces<'a>(
    node: &'a str,
    live: &'a BTreeSet<String>,
    nodes: &BTreeMap<String, desired::Node>,
    published: Option<&[desired::Interface]>,
    local: &[desired::Interface],
) -> Vec<&'a str> {
    live.iter()
        .filter(|peer| nodes.get(*peer).is_none_or(|n| n.interfaces.is_none()))
        .map(String::as_str)
        .chain((published != Some(local)).then_some(node))
        .collect()
}

/// Logs the announcements a computation starts or stops: one line each at `info` for up to
/// [`LOG_EACH_MAX`], else (a takeover of a whole node's IPs) one summary at `info` and the lines
/// at `debug`, so that a failover of 10,000 IPs does not bury the log.
fn log_changes(what: &str, announcements: &[desired::Announcement]) {
    let each_at_info = announcements.len() <= LOG_EACH_MAX;
    for announcement in announcements {
        let (ip, interface) = (&announcement.ip, &announcement.interface);
        if each_at_info {
            tracing::info!(%ip, %interface, "{what}");
        } else {
            tracing::debug!(%ip, %interface, "{what}");
        }
    }
    if !each_at_info {
        tracing::info!(
            count = announcements.len(),
            "{what} (each IP is logged at debug level)"
        );
    }
}

/// While settling (see the module docs): `Some(when to look again)`, or `None` to start
/// announcing.
fn settle_again(
    now: Instant,
    earliest: Instant,
    latest: Instant,
    unknown: &[&str],
) -> Option<Instant> {
    if now < earliest {
        Some(earliest)
    } else if !unknown.is_empty() && now < latest {
        Some(now + SETTLE_POLL)
    } else {
        None
    }
}

/// Runs the speaker until `shutdown` is cancelled; see the module docs.
pub async fn run(
    client: Client,
    config: AgentConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let stores = Stores::start(&client, &changed, &config.filter);
    tokio::select! {
        () = stores.synced() => {}
        () = shutdown.cancelled() => return Ok(()),
    }
    tracing::info!("caches synced");

    // The key first: without it no heartbeat could be trusted.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let key = loop {
        match read_key(&secrets, &config.membership_secret).await {
            Ok(key) => break key,
            Err(error) => tracing::warn!(%error, "membership key unavailable; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(publish::RETRY) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    };
    let liveness = Liveness::new(
        config.node.clone(),
        membership::incarnation_now(),
        HeartbeatKey::new(&key).context("membership key")?,
        config.liveness.clone(),
    )
    .context("membership settings")?;
    let (socket, v6_socket) = membership_socket(config.membership_port)?;
    let (members, member_commands) = mpsc::channel(16);
    let (member_changes_tx, mut member_changes) = mpsc::unbounded_channel();
    let (dropped_tx, mut dropped) = watch::channel(DroppedCounts::new());
    let membership_task = tokio::spawn(membership::run(
        socket,
        liveness,
        member_commands,
        member_changes_tx,
        dropped_tx,
    ));
    tokio::spawn(refresh_key(
        secrets,
        config.membership_secret.clone(),
        key,
        members.clone(),
        shutdown.clone(),
    ));

    let (driver, handle) = Driver::new(AnnouncerConfig::default());
    let DriverHandle {
        commands: l2,
        events: mut l2_events,
        counters: mut l2_counters,
        interfaces,
    } = handle;
    let driver_task = tokio::spawn(driver.run());
    // The driver lists the interfaces as it starts: publish nothing before that list, or the
    // others would read "no interfaces" and elect without this node.
    let mut interfaces = interfaces;
    if tokio::time::timeout(Duration::from_secs(2), interfaces.changed())
        .await
        .is_err()
    {
        tracing::warn!("no interface list from the layer-2 driver yet");
    }

    let (status_tx, status_rx) = watch::channel(Arc::new(SpeakerStatusStatus::default()));
    let (announced_tx, announced_rx) = watch::channel(Arc::default());
    tokio::spawn(publish::speaker_status(
        client.clone(),
        config.node.clone(),
        status_rx,
        shutdown.clone(),
    ));
    let events = EventQueue::new(EVENT_QUEUE_CAPACITY);
    tokio::spawn(events.clone().run(
        EventPublisher::new(client.clone(), FIELD_MANAGER, config.node.clone()),
        EVENTS_IN_FLIGHT,
        shutdown.clone(),
    ));
    tokio::spawn(publish::service_conditions(
        client.clone(),
        config.node.clone(),
        events,
        config.metrics.clone(),
        stores.services.clone(),
        announced_rx,
        shutdown.clone(),
    ));

    let mut state = Loop {
        config,
        stores,
        last_valid: LastValid::default(),
        config_problems: Vec::new(),
        desired: Arc::new(Desired::default()),
        peers: Vec::new(),
        live: BTreeSet::new(),
        conflicts: BTreeMap::new(),
        l2,
        interfaces: interfaces.clone(),
        members: members.clone(),
        v6_socket,
        status_tx,
        announced_tx,
        settling: None,
        reannounce: false,
    };
    let started = Instant::now();
    state.settling = Some((
        started + state.config.liveness.detect_time(),
        started + SETTLE_MAX,
    ));
    let mut due: Option<Instant> = state.recompute().await;
    let _ = state.config.ready.send(true);

    let mut bgp_status = state.config.bgp_status.clone();
    let mut counted = Counters::default();
    let mut dropped_counted = DroppedCounts::new();
    // When newly seen conflicts are to be published (see the Conflict arm).
    let mut publish_due: Option<Instant> = None;
    loop {
        let mark = tokio::select! {
            () = shutdown.cancelled() => break,
            () = changed.notified() => true,
            Some(change) = member_changes.recv() => {
                match change {
                    MemberChange::Up { node } => {
                        tracing::info!(node, "member up");
                        state.live.insert(node);
                        state.reannounce = true;
                    }
                    MemberChange::Down { node, reason } => {
                        tracing::info!(node, ?reason, "member down");
                        state.live.remove(&node);
                    }
                }
                state.config.metrics.set_members_alive(state.live.len());
                true
            }
            Ok(()) = interfaces.changed() => true,
            Some(event) = l2_events.recv() => {
                match event {
                    L2Event::Conflict { ip, foreign_mac, interface } => {
                        tracing::warn!(%ip, %foreign_mac, interface, "address conflict");
                        state.conflicts.insert(ip, foreign_mac.to_string());
                        // A burst of conflicts (another node still announcing a range this
                        // one took over) is published once, not once per IP.
                        publish_due.get_or_insert_with(|| Instant::now() + DEBOUNCE);
                    }
                    L2Event::LinkUnavailable { ip, error } => {
                        tracing::warn!(%ip, %error, "cannot announce; retried on the next change");
                    }
                }
                false
            }
            Ok(()) = bgp_status.changed() => {
                state.publish_status(&objects::local_interfaces(&state.interfaces.borrow()));
                false
            }
            Ok(()) = l2_counters.changed() => {
                let now = *l2_counters.borrow_and_update();
                state.config.metrics.record_l2(&counted, &now.announcer);
                counted = now.announcer;
                false
            }
            Ok(()) = dropped.changed() => {
                let now = dropped.borrow_and_update().clone();
                state.config.metrics.record_dropped(&dropped_counted, &now);
                dropped_counted = now;
                false
            }
            () = sleep_until(due) => {
                due = state.recompute().await;
                false
            }
            () = sleep_until(publish_due) => {
                publish_due = None;
                state.publish(&objects::local_interfaces(&state.interfaces.borrow()));
                false
            }
        };
        if mark && due.is_none() {
            due = Some(Instant::now() + DEBOUNCE);
        }
    }

    // Clean stop: tell the others first, so they take over at once.
    let _ = members.send(MemberCommand::Leave).await;
    drop(state);
    match tokio::time::timeout(Duration::from_secs(2), membership_task).await {
        Ok(Ok(Ok(()))) => tracing::info!("left the membership"),
        Ok(Ok(Err(error))) => tracing::warn!(%error, "membership stopped with an error"),
        Ok(Err(error)) => tracing::warn!(%error, "membership task failed"),
        Err(_) => tracing::warn!("membership did not stop in time"),
    }
    driver_task.abort();
    Ok(())
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Re-reads the membership Secret every [`KEY_REFRESH`] and hands a changed key to membership.
async fn refresh_key(
    secrets: Api<Secret>,
    name: String,
    mut current: Vec<u8>,
    members: mpsc::Sender<MemberCommand>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(KEY_REFRESH) => {}
            () = shutdown.cancelled() => return,
        }
        match read_key(&secrets, &name).await {
            Ok(key) if key != current => match HeartbeatKey::new(&key) {
                Ok(heartbeat_key) => {
                    tracing::info!("membership key rotated");
                    if members
                        .send(MemberCommand::SetKey(heartbeat_key))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    current = key;
                }
                Err(error) => tracing::warn!(%error, "membership key refused"),
            },
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "re-reading the membership key; keeping the current one")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(address: &str) -> desired::Interface {
        desired::Interface {
            name: "eth0".into(),
            up: true,
            addresses: vec![address.parse().expect("net")],
        }
    }

    fn node(name: &str, interfaces: Option<Vec<desired::Interface>>) -> (String, desired::Node) {
        (
            name.to_owned(),
            desired::Node {
                name: name.to_owned(),
                labels: BTreeMap::new(),
                network_unavailable: false,
                interfaces,
            },
        )
    }

    #[test]
    fn live_peers_without_report_and_a_stale_own_report_are_unknown() {
        let local = vec![interface("192.0.2.11/24")];
        let live = BTreeSet::from(["b".to_owned(), "c".to_owned()]);
        let nodes = BTreeMap::from([
            node("a", Some(local.clone())),
            node("b", Some(vec![interface("192.0.2.12/24")])),
            node("c", None),
        ]);
        assert_eq!(
            unknown_interfaces("a", &live, &nodes, Some(&local), &local),
            vec!["c"]
        );
        let stale = vec![interface("192.0.2.99/24")];
        assert_eq!(
            unknown_interfaces("a", &live, &nodes, Some(&stale), &local),
            vec!["c", "a"]
        );
        assert_eq!(
            unknown_interfaces("a", &BTreeSet::new(), &nodes, Some(&local), &local),
            Vec::<&str>::new(),
            "a peer not heard from is not waited for"
        );
    }

    #[test]
    fn settling_waits_one_detection_time_then_for_unknown_interfaces_until_the_limit() {
        let start = Instant::now();
        let earliest = start + Duration::from_millis(300);
        let latest = start + SETTLE_MAX;
        assert_eq!(settle_again(start, earliest, latest, &[]), Some(earliest));
        assert_eq!(settle_again(earliest, earliest, latest, &[]), None);
        assert_eq!(
            settle_again(earliest, earliest, latest, &["b"]),
            Some(earliest + SETTLE_POLL)
        );
        assert_eq!(settle_again(latest, earliest, latest, &["b"]), None);
    }

    #[test]
    fn ipv4_peers_are_v4_mapped_on_a_dual_stack_socket() {
        let peers = vec![
            Peer {
                node: "b".into(),
                address: "192.0.2.2:7946".parse().expect("addr"),
            },
            Peer {
                node: "c".into(),
                address: "[2001:db8::3]:7946".parse().expect("addr"),
            },
        ];
        let mapped = for_socket(peers.clone(), true);
        assert_eq!(
            mapped[0].address,
            "[::ffff:192.0.2.2]:7946".parse().expect("addr")
        );
        assert_eq!(mapped[1].address, peers[1].address);
        assert_eq!(for_socket(peers.clone(), false), peers);
    }
}
