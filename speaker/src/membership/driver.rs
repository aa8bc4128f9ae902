//! The UDP edge of membership: a tokio task that sends this node's heartbeats to every peer,
//! feeds received datagrams and timer ticks to the pure [`Liveness`] table, and reports its
//! [`MemberChange`]s on a channel.
//!
//! ```text
//!  commands (SetPeers, Leave) ──┐
//!  interval timer ──────────────┤        ┌──────────┐
//!  UDP socket (recv) ───────────┼──────▶ │ Liveness │ ──▶ MemberChange channel
//!  next_deadline timer ─────────┘        └──────────┘
//!            │ heartbeat bytes
//!            ▼
//!  UDP socket (send to every peer)
//! ```
//!
//! A clean stop ([`Command::Leave`], the command channel closing, or nobody receiving the changes any
//! more) sends one heartbeat with the
//! leaving flag to every peer before the task ends, so the others fail over at once instead of after
//! the detection time. Datagrams are judged only by their authentication and replay checks, not by
//! their source address, so NAT between nodes does not matter. Send and receive errors are logged
//! and the loop goes on: one unreachable peer must not stop the heartbeats to the others.

use std::io;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{self, Instant, MissedTickBehavior};

use std::collections::BTreeMap;

use tokio::sync::watch;

use super::liveness::{DropReason, Event, Liveness, MemberChange};
use super::packet::HeartbeatKey;

/// Largest heartbeat: 28 fixed octets, a 253-octet name and a 32-octet tag, rounded up.
const MAX_DATAGRAM: usize = 512;

/// Another speaker and where its heartbeats go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    pub address: SocketAddr,
}

/// What the rest of the speaker asks of the driver.
#[derive(Debug, Clone)]
pub enum Command {
    /// Replace the peer list (learnt from the API).
    SetPeers(Vec<Peer>),
    /// Use a new shared secret (rotated in its Secret).
    SetKey(HeartbeatKey),
    /// Announce departure to every peer and stop.
    Leave,
}

/// Datagrams dropped so far, by reason; published after every datagram that changed it.
pub type DroppedCounts = BTreeMap<DropReason, u64>;

/// Wall clock in Unix milliseconds, for heartbeat timestamps and the freshness check.
pub fn wall_clock_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// An incarnation number for a process starting now: Unix time in nanoseconds, so that a restart
/// yields a larger one than the run before (given a clock that does not jump back).
pub fn incarnation_now() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs membership on `socket` until [`Command::Leave`] or until `commands` closes; drop counts go
/// to `dropped`.
pub async fn run(
    socket: UdpSocket,
    mut liveness: Liveness,
    mut commands: mpsc::Receiver<Command>,
    changes: mpsc::UnboundedSender<MemberChange>,
    dropped: watch::Sender<DroppedCounts>,
) -> io::Result<()> {
    let mut peers: Vec<Peer> = Vec::new();
    let mut heartbeat = time::interval(liveness.config().interval);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut buffer = [0u8; MAX_DATAGRAM];
    loop {
        let deadline = liveness.next_deadline();
        let produced = tokio::select! {
            command = commands.recv() => match command {
                Some(Command::SetPeers(next)) => {
                    let produced = liveness.set_peers(next.iter().map(|peer| peer.node.as_str()));
                    peers = next;
                    produced
                }
                Some(Command::SetKey(key)) => {
                    liveness.set_key(key);
                    Vec::new()
                }
                Some(Command::Leave) | None => {
                    send_to_all(&socket, &peers, &mut liveness, true).await;
                    return Ok(());
                }
            },
            _ = heartbeat.tick() => {
                send_to_all(&socket, &peers, &mut liveness, false).await;
                Vec::new()
            }
            received = socket.recv_from(&mut buffer) => match received {
                Ok((len, _)) => {
                    let event = Event::Datagram { bytes: &buffer[..len], wall_clock_ms: wall_clock_ms() };
                    let produced = liveness.handle(Instant::now().into_std(), event);
                    dropped.send_if_modified(|counts| {
                        let changed = counts != liveness.dropped_by_reason();
                        if changed {
                            counts.clone_from(liveness.dropped_by_reason());
                        }
                        changed
                    });
                    produced
                }
                Err(error) => {
                    tracing::warn!(%error, "membership: receive failed");
                    Vec::new()
                }
            },
            () = sleep_until(deadline) => liveness.handle(Instant::now().into_std(), Event::Tick),
        };
        for change in produced {
            if changes.send(change).is_err() {
                // Nobody listens any more: the speaker is shutting down.
                send_to_all(&socket, &peers, &mut liveness, true).await;
                return Ok(());
            }
        }
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => time::sleep_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

async fn send_to_all(socket: &UdpSocket, peers: &[Peer], liveness: &mut Liveness, leaving: bool) {
    let bytes = match liveness.heartbeat(wall_clock_ms(), leaving) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, "membership: cannot build heartbeat");
            return;
        }
    };
    for peer in peers {
        if let Err(error) = socket.send_to(&bytes, peer.address).await {
            tracing::warn!(%error, peer = %peer.node, address = %peer.address, "membership: send failed");
        }
    }
}
