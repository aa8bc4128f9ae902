//! The control plane on its own, in one namespace with the management address on `lo`: starts, serves,
//! survives an API server restart over the same etcd data, and stops by pid.

use std::net::IpAddr;
use std::time::Instant;

use ferrolb_lab::control_plane::{ControlPlane, ControlPlaneConfig};
use ferrolb_lab::netns::{NetNs, RunPrefix, sweep};
use ferrolb_lab::versions::ControlPlaneBinaries;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_serves_restarts_over_same_data_and_stops_by_pid() {
    let prefix = RunPrefix::random();
    let run_dir = prefix.claim().expect("claim run dir");
    let sweeper = Sweeper(prefix.clone());
    scenario(&prefix, &run_dir).await.expect("scenario");
    drop(sweeper);
    assert!(!run_dir.exists(), "run dir removed");
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

async fn scenario(prefix: &RunPrefix, run_dir: &std::path::Path) -> Result<(), String> {
    let netns =
        NetNs::create(&prefix.name("cp").map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    netns
        .add_addr("lo", "198.51.100.1/32")
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut control_plane = ControlPlane::start(ControlPlaneConfig {
        netns,
        advertise: IpAddr::from([198, 51, 100, 1]),
        dir: run_dir.join("control-plane"),
        binaries: ControlPlaneBinaries::locate().map_err(|e| e.to_string())?,
    })
    .await
    .map_err(|e| e.to_string())?;
    println!("control plane ready in {:?}", started.elapsed());

    let client = control_plane.client().map_err(|e| e.to_string())?;
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(version.git_version, "v1.35.4");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some("survives-restart".into());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .map_err(|e| e.to_string())?;

    control_plane.stop_api_server();
    assert!(!control_plane.api_server_running());
    assert!(
        namespaces.list(&ListParams::default()).await.is_err(),
        "a stopped API server answers nothing"
    );
    control_plane
        .start_api_server()
        .await
        .map_err(|e| e.to_string())?;
    let client = control_plane.client().map_err(|e| e.to_string())?;
    let namespaces: Api<Namespace> = Api::all(client);
    namespaces
        .get("survives-restart")
        .await
        .map_err(|e| e.to_string())?;

    let pids = control_plane.pids();
    control_plane.stop();
    for pid in pids {
        assert!(!ferrolb_lab::netns::pid_alive(pid), "pid {pid} stopped");
    }
    Ok(())
}
