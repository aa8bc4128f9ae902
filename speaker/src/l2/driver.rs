//! The layer-2 driver: the thin tokio edge around the sans-IO [`Announcer`].
//!
//! ```text
//!  control plane ──Command (Gained/Lost)──┐
//!                                         ▼
//!  reader task per packet socket ──frame──▶ driver loop ──▶ Announcer::handle(now, input)
//!  (ARP, NDP of each interface)            │  ▲                   │
//!                                          │  └── sleep until next_wakeup() → Tick
//!                                          ▼
//!              Output::Send → packet socket of the interface
//!              Output::JoinGroup/LeaveGroup → IPV6_JOIN_GROUP / IPV6_LEAVE_GROUP
//!              Output::Conflict → log + Event::Conflict
//!              counters → watch channel after every step
//! ```
//!
//! Contract:
//! - An interface's sockets (module `link`) are opened when the first IP is gained on it and
//!   stay open until the driver stops or the interface changes (below); they belong to the
//!   network namespace of the thread that runs the driver. A gain on an interface that cannot be
//!   opened is reported as [`Event::LinkUnavailable`] and forgotten: the control plane's next
//!   resync retries it.
//! - A loss takes effect at once: it is applied before any frame still queued is answered, and
//!   nothing more is announced for the IP.
//! - The driver stops when every [`Command`] sender is dropped; its sockets close with it, which
//!   also leaves every multicast group.
//! - Nothing that arrives from the wire can stop the driver: malformed frames are counted by the
//!   announcer, socket errors are counted and logged here.
//! - Links are followed through rtnetlink notifications (module `netlink`), not polling: when an
//!   interface in use is deleted, re-created (new index) or changes its MAC, its sockets are
//!   closed, re-opened if it exists, and every IP owned on it is gained again — with a new MAC that
//!   restarts the announcement burst, so neighbours learn the new address at once. When the
//!   carrier comes back (`IFF_RUNNING` set again) the owned IPs are announced again, since a
//!   burst sent while the link was down reached no one.
//! - Addresses are followed the same way: on every link or address notification the driver takes
//!   a new [`Interfaces`] snapshot and publishes it on [`DriverHandle::interfaces`] when it
//!   changed. Which interface may carry which IP (its subnets) is the control plane's decision.

mod interfaces;
mod link;
mod netlink;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, warn};

pub use self::interfaces::{Interface, Interfaces};
pub use self::link::LinkError;
use self::link::{Link, LinkState, PacketSocket};
use super::MacAddr;
use super::announcer::{Announcer, AnnouncerConfig, Counters, Input, Output};

/// What the control plane tells the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// This node now owns `ip` on `interface`.
    Gained { ip: IpAddr, interface: String },
    /// This node no longer owns `ip` on `interface`.
    Lost { ip: IpAddr, interface: String },
    /// Announce an owned `ip` on `interface` again (see [`Input::Reannounce`]).
    Reannounce { ip: IpAddr, interface: String },
}

/// What the driver reports back.
#[derive(Debug)]
pub enum Event {
    /// Another station claims an owned IP (RFC 5227 §2.4).
    Conflict {
        ip: IpAddr,
        foreign_mac: MacAddr,
        interface: String,
    },
    /// `ip` could not be taken on `interface` because its sockets could not be opened.
    LinkUnavailable { ip: IpAddr, error: LinkError },
}

/// The announcer's counters plus the driver's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DriverCounters {
    pub announcer: Counters,
    /// Frames handed to the kernel.
    pub frames_sent: u64,
    /// Frames the kernel refused (link down, queue full, …).
    pub send_errors: u64,
    /// Errors reading a packet socket.
    pub receive_errors: u64,
    /// Multicast joins or leaves the kernel refused.
    pub group_errors: u64,
    /// Link notifications missed (socket buffer overflow), the link monitor failing, or the
    /// interfaces not listable; each overflow triggers a re-check of every interface in use.
    pub link_monitor_errors: u64,
}

/// The control plane's side of a running driver.
#[derive(Debug)]
pub struct DriverHandle {
    /// Ownership changes; dropping every sender stops the driver. Unbounded, so the control loop
    /// never waits for the driver: a takeover of 10,000 IPs is 10,000 commands, applied at the
    /// driver's pace (a burst of announcements each) while the loop goes on following membership
    /// and the API. What is queued is bounded by the IPs the node may announce.
    pub commands: mpsc::UnboundedSender<Command>,
    /// Conflicts and unavailable links; events are dropped when this is full (the counters and
    /// the log still show them).
    pub events: mpsc::Receiver<Event>,
    /// The latest counters.
    pub counters: watch::Receiver<DriverCounters>,
    /// The node's interfaces and their networks, as of the last link or address change.
    pub interfaces: watch::Receiver<Interfaces>,
}

/// Depth of the frame and event queues.
const QUEUE: usize = 1024;
/// Pause after a socket read error, so an error that repeats cannot spin the CPU.
const RECEIVE_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// One frame (or read error) from a reader task.
struct Received {
    interface: Arc<str>,
    frame: std::io::Result<Vec<u8>>,
}

/// What the link monitor task reports.
enum LinkChange {
    /// These interfaces were created, changed or deleted.
    Links(Vec<String>),
    /// Notifications were lost or the monitor failed: re-check every interface in use.
    Missed(std::io::Error),
}

/// An open link and its two reader tasks, which end when it is dropped (closing the sockets).
#[derive(Debug)]
struct OpenLink {
    link: Link,
    readers: [AbortHandle; 2],
}

impl Drop for OpenLink {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

/// The driver; [`Driver::run`] it on a tokio runtime inside the node's network namespace.
#[derive(Debug)]
pub struct Driver {
    announcer: Announcer,
    links: BTreeMap<String, OpenLink>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<Event>,
    counters: watch::Sender<DriverCounters>,
    own_counters: DriverCounters,
    interfaces: watch::Sender<Interfaces>,
}

impl Driver {
    pub fn new(config: AnnouncerConfig) -> (Driver, DriverHandle) {
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::channel(QUEUE);
        let (counters, counters_rx) = watch::channel(DriverCounters::default());
        let (interfaces, interfaces_rx) = watch::channel(Interfaces::new());
        let driver = Driver {
            announcer: Announcer::new(config),
            links: BTreeMap::new(),
            commands,
            events,
            counters,
            own_counters: DriverCounters::default(),
            interfaces,
        };
        let handle = DriverHandle {
            commands: commands_tx,
            events: events_rx,
            counters: counters_rx,
            interfaces: interfaces_rx,
        };
        (driver, handle)
    }

    /// Runs until every command sender is dropped.
    pub async fn run(mut self) {
        let (received_tx, mut received) = mpsc::channel::<Received>(QUEUE);
        let (link_changes_tx, mut link_changes) = mpsc::channel::<LinkChange>(QUEUE);
        let mut readers = JoinSet::new();
        readers.spawn(follow_links(link_changes_tx));
        self.refresh_interfaces();
        loop {
            let wakeup = self.announcer.next_wakeup();
            // Biased, in this order: a queued loss is applied before any queued frame is answered,
            // and a flood of frames cannot hold back commands or due announcements.
            tokio::select! {
                biased;
                command = self.commands.recv() => {
                    let Some(command) = command else { break };
                    self.apply(command, &received_tx, &mut readers).await;
                }
                Some(change) = link_changes.recv() => {
                    let names: BTreeSet<String> = match change {
                        LinkChange::Links(names) => names.into_iter().collect(),
                        LinkChange::Missed(error) => {
                            self.own_counters.link_monitor_errors += 1;
                            warn!(%error, "link notifications missed, re-checking every interface");
                            self.interfaces_in_use()
                        }
                    };
                    if let Some(snapshot) = self.refresh_interfaces() {
                        for name in names {
                            let current = snapshot.get(&name);
                            self.recheck(&name, current, &received_tx, &mut readers).await;
                        }
                    }
                    // Reap the reader tasks of closed links.
                    while readers.try_join_next().is_some() {}
                }
                () = sleep_until(wakeup) => {
                    let outputs = self.announcer.handle(Instant::now(), Input::Tick);
                    self.carry_out(outputs).await;
                }
                Some(Received { interface, frame }) = received.recv() => match frame {
                    Ok(frame) => {
                        let input = Input::Frame { interface: &interface, frame: &frame };
                        let outputs = self.announcer.handle(Instant::now(), input);
                        self.carry_out(outputs).await;
                    }
                    Err(error) => {
                        self.own_counters.receive_errors += 1;
                        warn!(%interface, %error, "reading ARP/NDP frames failed");
                    }
                },
            }
            self.publish_counters();
        }
        readers.shutdown().await;
    }

    async fn apply(
        &mut self,
        command: Command,
        received: &mpsc::Sender<Received>,
        readers: &mut JoinSet<()>,
    ) {
        let outputs = match command {
            Command::Gained { ip, interface } => {
                let mac = match self.link(&interface, received, readers) {
                    Ok(link) => link.state.mac,
                    Err(error) => {
                        warn!(%ip, %error, "cannot announce");
                        let _ = self.events.try_send(Event::LinkUnavailable { ip, error });
                        return;
                    }
                };
                debug!(%ip, %interface, %mac, "gained");
                self.announcer.handle(
                    Instant::now(),
                    Input::Gained {
                        ip,
                        interface: &interface,
                        mac,
                    },
                )
            }
            Command::Lost { ip, interface } => {
                debug!(%ip, %interface, "lost");
                self.announcer.handle(
                    Instant::now(),
                    Input::Lost {
                        ip,
                        interface: &interface,
                    },
                )
            }
            Command::Reannounce { ip, interface } => {
                debug!(%ip, %interface, "announcing again");
                self.announcer.handle(
                    Instant::now(),
                    Input::Reannounce {
                        ip,
                        interface: &interface,
                    },
                )
            }
        };
        self.carry_out(outputs).await;
    }

    /// The open link named `interface`, opening it (and starting its readers) on first use.
    fn link(
        &mut self,
        interface: &str,
        received: &mpsc::Sender<Received>,
        readers: &mut JoinSet<()>,
    ) -> Result<&Link, LinkError> {
        if !self.links.contains_key(interface) {
            let link = Link::open(interface)?;
            debug!(interface, state = ?link.state, "opened ARP/NDP sockets");
            let name: Arc<str> = Arc::from(interface);
            let readers = [&link.arp, &link.ndp].map(|socket| {
                readers.spawn(read_frames(name.clone(), socket.clone(), received.clone()))
            });
            self.links
                .insert(interface.to_owned(), OpenLink { link, readers });
        }
        self.links
            .get(interface)
            .map(|open| &open.link)
            .ok_or_else(|| LinkError::NotFound {
                interface: interface.to_owned(),
            })
    }

    async fn carry_out(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send { interface, frame } => {
                    let Some(open) = self.links.get(&interface) else {
                        self.own_counters.send_errors += 1;
                        continue;
                    };
                    match open.link.send(&frame).await {
                        Ok(()) => self.own_counters.frames_sent += 1,
                        Err(error) => {
                            self.own_counters.send_errors += 1;
                            warn!(%interface, %error, "sending an ARP/NDP frame failed");
                        }
                    }
                }
                Output::JoinGroup { interface, group } => {
                    let result = self
                        .links
                        .get_mut(&interface)
                        .map(|open| open.link.join(group));
                    self.count_group_result(&interface, group, "join", result);
                }
                // Without an open link there is nothing to leave: closing its sockets left every
                // group.
                Output::LeaveGroup { interface, group } => {
                    if let Some(open) = self.links.get_mut(&interface) {
                        let result = open.link.leave(group);
                        self.count_group_result(&interface, group, "leave", Some(result));
                    }
                }
                Output::Conflict {
                    ip,
                    foreign_mac,
                    interface,
                } => {
                    warn!(%ip, %foreign_mac, %interface, "another station claims an owned address");
                    let _ = self.events.try_send(Event::Conflict {
                        ip,
                        foreign_mac,
                        interface,
                    });
                }
            }
        }
    }

    fn count_group_result(
        &mut self,
        interface: &str,
        group: Ipv6Addr,
        operation: &str,
        result: Option<std::io::Result<()>>,
    ) {
        match result {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                self.own_counters.group_errors += 1;
                warn!(interface, %group, %error, "multicast {operation} failed");
            }
            None => self.own_counters.group_errors += 1,
        }
    }

    /// Interfaces with open sockets or owned IPs.
    fn interfaces_in_use(&self) -> BTreeSet<String> {
        let owned = self
            .announcer
            .owned()
            .map(|(_, interface)| interface.to_owned());
        self.links.keys().cloned().chain(owned).collect()
    }

    /// Brings `interface`'s sockets in line with the kernel's view of it after a link change.
    async fn recheck(
        &mut self,
        interface: &str,
        current: Option<&Interface>,
        received: &mpsc::Sender<Received>,
        readers: &mut JoinSet<()>,
    ) {
        let owned: Vec<IpAddr> = self
            .announcer
            .owned()
            .filter(|(_, on)| *on == interface)
            .map(|(ip, _)| ip)
            .collect();
        let open = self.links.get(interface).map(|open| open.link.state);
        if open.is_none() && owned.is_empty() {
            return;
        }
        let current = LinkState::of(interface, current).ok();
        let Some(current) = current else {
            // Gone: close its sockets but keep its IPs, so that they are announced again when the
            // interface comes back (unless the control plane moves them elsewhere first).
            if self.links.remove(interface).is_some() {
                warn!(interface, "interface gone, its addresses are unreachable");
                for ip in owned {
                    let error = LinkError::NotFound {
                        interface: interface.to_owned(),
                    };
                    let _ = self.events.try_send(Event::LinkUnavailable { ip, error });
                }
            }
            return;
        };
        let reopen = !open.is_some_and(|open| open.same_identity(&current));
        let carrier_back = open.is_some_and(|open| !open.running) && current.running;
        if let Some(open) = self.links.get_mut(interface) {
            open.link.state = current;
        }
        if !reopen && !carrier_back {
            return;
        }
        debug!(interface, ?open, ?current, "link changed, announcing again");
        // Lose and gain again: leaves the groups (on the old sockets when re-opening), joins them
        // on the sockets in use and restarts the announcements.
        let now = Instant::now();
        let mut outputs = Vec::new();
        for ip in &owned {
            outputs.extend(
                self.announcer
                    .handle(now, Input::Lost { ip: *ip, interface }),
            );
        }
        self.carry_out(outputs).await;
        if reopen {
            self.links.remove(interface);
        }
        for ip in owned {
            let command = Command::Gained {
                ip,
                interface: interface.to_owned(),
            };
            self.apply(command, received, readers).await;
        }
    }

    /// Takes a new snapshot of the interfaces and publishes it if it changed; `None` (counted and
    /// logged) when the kernel could not be asked.
    fn refresh_interfaces(&mut self) -> Option<Interfaces> {
        match interfaces::snapshot() {
            Ok(snapshot) => {
                self.interfaces.send_if_modified(|current| {
                    let changed = *current != snapshot;
                    if changed {
                        current.clone_from(&snapshot);
                    }
                    changed
                });
                Some(snapshot)
            }
            Err(error) => {
                self.own_counters.link_monitor_errors += 1;
                warn!(%error, "cannot list interfaces");
                None
            }
        }
    }

    fn publish_counters(&self) {
        let counters = DriverCounters {
            announcer: self.announcer.counters(),
            ..self.own_counters
        };
        self.counters.send_if_modified(|current| {
            let changed = *current != counters;
            *current = counters;
            changed
        });
    }
}

/// Forwards every frame of `socket` to the driver loop until the loop is gone.
async fn read_frames(interface: Arc<str>, socket: PacketSocket, to_driver: mpsc::Sender<Received>) {
    let mut buffer = link::receive_buffer();
    loop {
        let result = link::receive(&socket, &mut buffer).await;
        let failed = result.is_err();
        let frame = result.map(|len| buffer.get(..len).unwrap_or(&buffer).to_vec());
        let received = Received {
            interface: interface.clone(),
            frame,
        };
        if to_driver.send(received).await.is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(RECEIVE_ERROR_BACKOFF).await;
        }
    }
}

/// Forwards rtnetlink link notifications to the driver loop until the loop is gone.
async fn follow_links(to_driver: mpsc::Sender<LinkChange>) {
    let socket = match netlink::link_monitor() {
        Ok(socket) => socket,
        Err(error) => {
            let _ = to_driver.send(LinkChange::Missed(error)).await;
            return;
        }
    };
    let mut buffer = link::receive_buffer();
    loop {
        let change = match netlink::receive(&socket, &mut buffer).await {
            Ok(len) => LinkChange::Links(netlink::changed_links(
                buffer.get(..len).unwrap_or_default(),
            )),
            Err(error) => LinkChange::Missed(error),
        };
        let failed = matches!(change, LinkChange::Missed(_));
        if to_driver.send(change).await.is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(RECEIVE_ERROR_BACKOFF).await;
        }
    }
}

async fn sleep_until(wakeup: Option<Instant>) {
    match wakeup {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
