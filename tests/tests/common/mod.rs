//! What every lab test binary shares: options naming this package's `lab` (the reaper) and
//! `lab-backend` binaries, and one lab per test binary.
//!
//! `mod common;` in a test binary; items a binary does not use are allowed to stay unused there.
#![allow(dead_code)]

use ferrolb_lab::lab::{Lab, LabOptions};
use ferrolb_lab::topology::TopologyOptions;
use tokio::sync::{Mutex, MutexGuard, OnceCell};

/// The `lab` binary of this package (the reaper, and the CLI under test).
pub const LAB_BIN: &str = env!("CARGO_BIN_EXE_lab");

/// Default lab options with this package's binaries: 3 nodes, every router, ferrolb's CRDs.
pub fn lab_options() -> LabOptions {
    LabOptions {
        topology: TopologyOptions {
            backend: Some(env!("CARGO_BIN_EXE_lab-backend").into()),
            ..TopologyOptions::default()
        },
        reaper: Some(LAB_BIN.into()),
        ..LabOptions::default()
    }
}

/// The shared lab, or why it could not start (kept, so the tests after the first fail fast with the
/// same reason instead of each building a lab again).
static LAB: OnceCell<Result<Mutex<Lab>, String>> = OnceCell::const_new();

/// The test binary's shared lab, started by the first test that needs it; its reaper removes it when
/// the binary exits. Tests hold the lock while they use it, so one test's writes never surprise
/// another.
pub async fn shared_lab() -> MutexGuard<'static, Lab> {
    shared_lab_with(lab_options).await
}

/// [`shared_lab`] built from other options (e.g. fewer nodes, no routers); the first caller's
/// options win, so a test binary uses one function for all its tests.
pub async fn shared_lab_with(options: fn() -> LabOptions) -> MutexGuard<'static, Lab> {
    let lab = LAB
        .get_or_init(|| async {
            let lab = Lab::start(options())
                .await
                .map_err(|error| format!("{error}"))?;
            let timings = lab.timings();
            println!(
                "lab {} up in {:?} (topology {:?}, control plane {:?}, CRDs and nodes {:?})",
                lab.prefix(),
                timings.total,
                timings.topology,
                timings.control_plane,
                timings.cluster_objects
            );
            Ok(Mutex::new(lab))
        })
        .await;
    match lab {
        Ok(lab) => lab.lock().await,
        Err(error) => {
            panic!("the lab did not start (root and tests/build-control-plane.sh needed): {error}")
        }
    }
}
