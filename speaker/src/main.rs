//! `ferrolb-speaker`: parses flags, starts the admin server and runs the agent until SIGTERM (see
//! `ferrolb_speaker::agent` for what it does).

use std::sync::Arc;

use anyhow::Context as _;
use ferrolb_runtime::admin::AdminServer;
use ferrolb_runtime::{logging, shutdown};
use ferrolb_speaker::agent::args::SpeakerArgs;
use ferrolb_speaker::agent::metrics::SpeakerMetrics;
use ferrolb_speaker::agent::{self, AgentConfig};
use prometheus_client::registry::Registry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = SpeakerArgs::from_env();
    logging::init(&args.log).context("logging")?;
    let shutdown = shutdown::on_signals().context("signal handlers")?;
    let client = args.kube.client().await.context("Kubernetes client")?;
    let mut registry = Registry::with_prefix("ferrolb");
    let metrics = SpeakerMetrics::register(&mut registry);
    let (ready, ready_rx) = tokio::sync::watch::channel(false);
    let admin = AdminServer::bind(args.admin.admin_addr).await?;
    let admin = tokio::spawn(admin.serve(ready_rx, Arc::new(registry), shutdown.clone()));
    let (desired, _) = tokio::sync::watch::channel(Arc::default());
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
        desired,
    };
    let result = agent::run(client, config, shutdown.clone()).await;
    shutdown.cancel();
    admin.await?.context("admin server")?;
    result
}
