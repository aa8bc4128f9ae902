//! `ferrolb-speaker`: parses flags, starts the admin server, the BGP side and the agent, and runs
//! them until SIGTERM (see `ferrolb_speaker::agent` for what they do).

use std::sync::Arc;

use anyhow::Context as _;
use ferrolb_runtime::admin::AdminServer;
use ferrolb_runtime::{logging, shutdown};
use ferrolb_speaker::agent::args::SpeakerArgs;
use ferrolb_speaker::agent::bgp::{self, BgpStatus};
use ferrolb_speaker::agent::metrics::SpeakerMetrics;
use ferrolb_speaker::agent::{self, AgentConfig};
use ferrolb_speaker::bgp::peer_set::BgpMetrics;
use prometheus_client::registry::Registry;

/// Worker threads of the runtime. The speaker's work is I/O and small computations; two workers
/// keep packets (ARP/NDP, heartbeats, BGP, BFD) answered while the other recomputes the desired
/// state, and more would only cost memory on a large node.
const WORKER_THREADS: usize = 2;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = SpeakerArgs::from_env();
    logging::init(&args.log).context("logging")?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        allocator = ferrolb_speaker::sys::allocator_options(),
        "ferrolb-speaker starting"
    );
    let shutdown = shutdown::on_signals().context("signal handlers")?;
    let client = args.kube.client().await.context("Kubernetes client")?;
    let mut registry = Registry::with_prefix("ferrolb");
    let metrics = SpeakerMetrics::register(&mut registry);
    let bgp_metrics = BgpMetrics::register(&mut registry);
    let (ready, ready_rx) = tokio::sync::watch::channel(false);
    let admin = AdminServer::bind(args.admin.admin_addr).await?;
    let admin = tokio::spawn(admin.serve(ready_rx, Arc::new(registry), shutdown.clone()));
    let (bgp_view, bgp_view_rx) = tokio::sync::watch::channel(Arc::default());
    let (bgp_status_tx, bgp_status) = tokio::sync::watch::channel(BgpStatus::default());
    let bgp = tokio::spawn(bgp::run(
        client.clone(),
        args.bgp_listen,
        bgp_view_rx,
        bgp_status_tx,
        bgp_metrics,
        shutdown.clone(),
    ));
    let config = AgentConfig {
        node: args.node_name.clone(),
        namespace: args.namespace.clone(),
        membership_secret: args.membership_secret.clone(),
        membership_port: args.membership_port,
        liveness: args.liveness(),
        exclusions: args.exclusions(),
        filter: args.class.filter(),
        metrics,
        ready,
        bgp_view,
        bgp_status,
    };
    let result = agent::run(client, config, shutdown.clone()).await;
    shutdown.cancel();
    bgp.await?.context("BGP")?;
    admin.await?.context("admin server")?;
    result
}
