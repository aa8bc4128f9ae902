//! `ferrolb-controller`: parses flags, starts the admin server and leader election, and runs the
//! reconciler until SIGTERM (see `ferrolb_controller::reconciler` for what it does).

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use ferrolb_controller::args::ControllerArgs;
use ferrolb_controller::metrics::ControllerMetrics;
use ferrolb_controller::reconciler::{self, ReconcilerConfig};
use ferrolb_runtime::admin::AdminServer;
use ferrolb_runtime::leader::{LeaderConfig, LeaderElector};
use ferrolb_runtime::{logging, shutdown};
use prometheus_client::registry::Registry;

// One thread: the controller waits on the API server, never on the CPU, and a single-threaded
// runtime keeps the allocator's memory in one malloc arena (resident memory is a SPEC §9 target).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = ControllerArgs::parse();
    logging::init(&args.log).context("logging")?;
    let shutdown = shutdown::on_signals().context("signal handlers")?;
    let client = args.kube.client().await.context("Kubernetes client")?;
    let mut registry = Registry::with_prefix("ferrolb");
    let metrics = ControllerMetrics::register(&mut registry);
    let (ready, ready_rx) = tokio::sync::watch::channel(false);
    let admin = AdminServer::bind(args.admin.admin_addr).await?;
    let admin = tokio::spawn(admin.serve(ready_rx, Arc::new(registry), shutdown.clone()));
    let (elector, leadership) =
        LeaderElector::new(client.clone(), LeaderConfig::try_from(&args.leader)?);
    let election = tokio::spawn(elector.run(shutdown.clone()));
    let config = ReconcilerConfig {
        filter: args.class.filter(),
        leadership,
        metrics,
        identity: args.leader.identity.clone(),
        ready,
    };
    reconciler::run(client, config, shutdown.clone()).await;
    shutdown.cancel();
    election.await?.context("releasing the Lease")?;
    admin.await?.context("admin server")?;
    Ok(())
}
