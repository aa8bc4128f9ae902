//! Three membership drivers over 127.0.0.1 UDP: a clean stop is seen at once, a silent death within
//! the detection time. Bounds are generous (correctness, not a benchmark).

use std::time::Duration;

use ferrolb_speaker::membership::driver::{self, Command, Peer};
use ferrolb_speaker::membership::liveness::{DownReason, Liveness, LivenessConfig, MemberChange};
use ferrolb_speaker::membership::packet::HeartbeatKey;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
/// Far above the 300 ms detection time, so a loaded CI machine does not fail the test.
const GENEROUS: Duration = Duration::from_secs(5);

struct Member {
    commands: mpsc::Sender<Command>,
    changes: mpsc::UnboundedReceiver<MemberChange>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start_three() -> Vec<Member> {
    let key = HeartbeatKey::new(b"driver-test-secret").expect("non-empty");
    let mut sockets = Vec::new();
    for _ in NODES {
        sockets.push(UdpSocket::bind("127.0.0.1:0").await.expect("bind loopback"));
    }
    let peers: Vec<Peer> = NODES
        .iter()
        .zip(&sockets)
        .map(|(node, socket)| Peer {
            node: (*node).to_owned(),
            address: socket.local_addr().expect("bound"),
        })
        .collect();
    let mut members = Vec::new();
    for (node, socket) in NODES.iter().zip(sockets) {
        let liveness = Liveness::new(
            *node,
            driver::incarnation_now(),
            key.clone(),
            LivenessConfig::default(),
        )
        .expect("valid name and config");
        let (commands, command_rx) = mpsc::channel(4);
        let (change_tx, changes) = mpsc::unbounded_channel();
        let others: Vec<Peer> = peers.iter().filter(|p| p.node != *node).cloned().collect();
        commands
            .send(Command::SetPeers(others))
            .await
            .expect("driver not started yet, channel open");
        let (dropped, _) = tokio::sync::watch::channel(driver::DroppedCounts::new());
        let task = tokio::spawn(driver::run(
            socket, liveness, command_rx, change_tx, dropped,
        ));
        members.push(Member {
            commands,
            changes,
            task,
        });
    }
    members
}

/// Waits for `wanted`, skipping other changes; panics after [`GENEROUS`].
async fn expect_change(member: &mut Member, wanted: &MemberChange) {
    let found = timeout(GENEROUS, async {
        while let Some(change) = member.changes.recv().await {
            if change == *wanted {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "waiting for {wanted:?}");
}

fn up(node: &str) -> MemberChange {
    MemberChange::Up {
        node: node.to_owned(),
    }
}

fn down(node: &str, reason: DownReason) -> MemberChange {
    MemberChange::Down {
        node: node.to_owned(),
        reason,
    }
}

async fn all_see_each_other(members: &mut [Member]) {
    for (index, member) in members.iter_mut().enumerate() {
        for (other, node) in NODES.iter().enumerate() {
            if other != index {
                expect_change(member, &up(node)).await;
            }
        }
    }
}

#[tokio::test]
async fn cleanly_stopped_member_is_marked_down_as_leaving() {
    let mut members = start_three().await;
    all_see_each_other(&mut members).await;
    let leaver = members.pop().expect("three members");
    leaver
        .commands
        .send(Command::Leave)
        .await
        .expect("driver running");
    assert!(matches!(leaver.task.await, Ok(Ok(()))));
    for member in &mut members {
        expect_change(member, &down("node-c", DownReason::Leaving)).await;
    }
}

#[tokio::test]
async fn silently_dropped_member_is_marked_down_by_timeout() {
    let mut members = start_three().await;
    all_see_each_other(&mut members).await;
    let victim = members.remove(1);
    // Abort: no leaving heartbeat, as when a node loses power.
    victim.task.abort();
    for member in &mut members {
        expect_change(member, &down("node-b", DownReason::Timeout)).await;
    }
    // The survivors keep seeing each other: no further change for several detection times.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for member in &mut members {
        assert_eq!(member.changes.try_recv().ok(), None);
        assert!(!member.task.is_finished());
    }
}
