//! Leader election against the lab's real kube-apiserver: two candidates compete for one Lease;
//! exactly one leads; a killed leader is replaced after the lease expires; a leader that shuts
//! down cleanly hands over at once; a leader cut off from the API server steps down at its renew
//! deadline and leads again once the server is back.
//!
//! One control plane serves all scenarios (each on its own Lease) to keep the run short.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_lab::control_plane::{ControlPlane, ControlPlaneConfig};
use ferrolb_lab::netns::{NetNs, RunPrefix, sweep};
use ferrolb_lab::versions::ControlPlaneBinaries;
use ferrolb_runtime::args::KubeArgs;
use ferrolb_runtime::leader::{LeaderConfig, LeaderElector, Leadership, ReleaseError};
use ferrolb_runtime::lease::Timings;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::Api;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const NAMESPACE: &str = "default";
const LEASE_DURATION: Duration = Duration::from_secs(6);
const RENEW_DEADLINE: Duration = Duration::from_secs(4);
const RETRY_PERIOD: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_election_against_real_api_server() {
    let prefix = RunPrefix::random();
    let run_dir = prefix.claim().expect("claim run dir");
    let _sweeper = Sweeper(prefix.clone());
    let netns = NetNs::create(&prefix.name("cp").expect("namespace name")).expect("namespace");
    netns.add_addr("lo", "198.51.100.1/32").expect("address");
    let mut control_plane = ControlPlane::start(ControlPlaneConfig {
        netns,
        advertise: IpAddr::from([198, 51, 100, 1]),
        dir: run_dir.join("control-plane"),
        binaries: ControlPlaneBinaries::locate().expect("control-plane binaries built"),
    })
    .await
    .expect("control plane starts");

    two_candidates_exactly_one_leads(&control_plane).await;
    killed_leader_is_replaced_after_the_lease_expires(&control_plane).await;
    clean_shutdown_hands_over_at_once(&control_plane).await;
    leader_cut_off_from_api_server_steps_down_and_returns(&mut control_plane).await;
    control_plane.stop();
}

/// Removes the run's namespaces and directory on every exit path, a failed assertion included.
struct Sweeper(RunPrefix);

impl Drop for Sweeper {
    fn drop(&mut self) {
        if let Err(error) = sweep(&format!("{}*", self.0)) {
            eprintln!("sweeping {}: {error}", self.0);
        }
    }
}

/// A running candidate.
struct Candidate {
    identity: String,
    leadership: Leadership,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ReleaseError>>,
}

/// Each candidate builds its client the way the binaries do, from the `--kubeconfig` flag group.
async fn candidate(control_plane: &ControlPlane, lease: &str, identity: &str) -> Candidate {
    let kube = KubeArgs {
        kubeconfig: Some(control_plane.host_kubeconfig().to_owned()),
        context: None,
    };
    let client = kube.client().await.expect("client from --kubeconfig");
    let config = LeaderConfig {
        namespace: NAMESPACE.into(),
        lease_name: lease.into(),
        identity: identity.into(),
        timings: Timings::new(LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD).expect("timings"),
    };
    let (elector, leadership) = LeaderElector::new(client, config);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(elector.run(shutdown.clone()));
    Candidate {
        identity: identity.into(),
        leadership,
        shutdown,
        task,
    }
}

/// Polls until `condition` holds, returning how long it took; panics with `what` after `limit`.
async fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Waits until exactly one of the two leads and returns (leader, standby).
async fn elect(a: Candidate, b: Candidate) -> (Candidate, Candidate) {
    wait_until(LEASE_DURATION * 2, "a leader is elected", || {
        a.leadership.is_leader() || b.leadership.is_leader()
    })
    .await;
    assert!(
        !(a.leadership.is_leader() && b.leadership.is_leader()),
        "both lead"
    );
    if a.leadership.is_leader() {
        (a, b)
    } else {
        (b, a)
    }
}

async fn read_lease(control_plane: &ControlPlane, lease: &str) -> LeaseSpec {
    let leases: Api<Lease> = Api::namespaced(control_plane.client().expect("client"), NAMESPACE);
    leases
        .get(lease)
        .await
        .expect("read Lease")
        .spec
        .unwrap_or_default()
}

async fn holder(control_plane: &ControlPlane, lease: &str) -> Option<String> {
    read_lease(control_plane, lease).await.holder_identity
}

async fn two_candidates_exactly_one_leads(control_plane: &ControlPlane) {
    let lease = "one-leads";
    let (leader, standby) = elect(
        candidate(control_plane, lease, "alpha").await,
        candidate(control_plane, lease, "beta").await,
    )
    .await;
    assert_eq!(
        holder(control_plane, lease).await,
        Some(leader.identity.clone())
    );
    // Over several renewals the roles stay put and never overlap.
    let watch_until = Instant::now() + RENEW_DEADLINE * 2;
    while Instant::now() < watch_until {
        assert!(
            leader.leadership.is_leader(),
            "leader lost the Lease while renewing"
        );
        assert!(
            !standby.leadership.is_leader(),
            "standby leads beside the leader"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for candidate in [leader, standby] {
        candidate.shutdown.cancel();
        candidate.task.await.expect("no panic").expect("released");
    }
}

async fn killed_leader_is_replaced_after_the_lease_expires(control_plane: &ControlPlane) {
    let lease = "leader-killed";
    let (leader, standby) = elect(
        candidate(control_plane, lease, "alpha").await,
        candidate(control_plane, lease, "beta").await,
    )
    .await;
    // A crash: the task ends without releasing anything.
    leader.task.abort();
    assert!(leader.task.await.is_err_and(|error| error.is_cancelled()));
    assert!(
        !leader.leadership.is_leader(),
        "a dead task never reads as leading"
    );
    let takeover = wait_until(LEASE_DURATION * 2, "standby takes over", || {
        standby.leadership.is_leader()
    })
    .await;
    println!("takeover after a killed leader: {takeover:?} (lease {LEASE_DURATION:?})");
    // The standby waited for the lease to expire: the last renewal was at most one retry before
    // the kill, the standby saw it at most one retry after it, and acts on the first round after
    // the expiry; one more retry of slack for a loaded machine.
    assert!(
        takeover >= LEASE_DURATION - RETRY_PERIOD,
        "took over early: {takeover:?}"
    );
    assert!(
        takeover <= LEASE_DURATION + RETRY_PERIOD * 4,
        "took over late: {takeover:?}"
    );
    let taken = read_lease(control_plane, lease).await;
    assert_eq!(taken.holder_identity, Some(standby.identity.clone()));
    assert_eq!(taken.lease_transitions, Some(1), "one hand-over recorded");
    standby.shutdown.cancel();
    standby.task.await.expect("no panic").expect("released");
}

async fn clean_shutdown_hands_over_at_once(control_plane: &ControlPlane) {
    let lease = "leader-shuts-down";
    let (leader, standby) = elect(
        candidate(control_plane, lease, "alpha").await,
        candidate(control_plane, lease, "beta").await,
    )
    .await;
    leader.shutdown.cancel();
    leader.task.await.expect("no panic").expect("released");
    assert!(!leader.leadership.is_leader());
    let released = holder(control_plane, lease).await;
    assert!(
        released.is_none() || released.as_deref() == Some(standby.identity.as_str()),
        "Lease still names the old leader: {released:?}"
    );
    let takeover = wait_until(LEASE_DURATION, "standby takes over", || {
        standby.leadership.is_leader()
    })
    .await;
    println!("takeover after a clean shutdown: {takeover:?}");
    assert!(
        takeover <= RETRY_PERIOD * 3,
        "handover waited: {takeover:?}"
    );
    standby.shutdown.cancel();
    standby.task.await.expect("no panic").expect("released");
    assert_eq!(holder(control_plane, lease).await, None);
}

async fn leader_cut_off_from_api_server_steps_down_and_returns(control_plane: &mut ControlPlane) {
    let lease = "api-server-down";
    let leader = candidate(control_plane, lease, "alpha").await;
    wait_until(LEASE_DURATION, "sole candidate leads", || {
        leader.leadership.is_leader()
    })
    .await;
    control_plane.stop_api_server();
    let step_down = wait_until(RENEW_DEADLINE * 2, "leader steps down", || {
        !leader.leadership.is_leader()
    })
    .await;
    println!("stepped down {step_down:?} after the API server stopped");
    assert!(
        step_down <= RENEW_DEADLINE + RETRY_PERIOD,
        "stepped down late: {step_down:?}"
    );
    control_plane
        .start_api_server()
        .await
        .expect("API server restarts");
    wait_until(LEASE_DURATION * 2, "leader leads again", || {
        leader.leadership.is_leader()
    })
    .await;
    leader.shutdown.cancel();
    leader.task.await.expect("no panic").expect("released");
}
