//! `lab-backend --node NAME --listen ADDR:PORT [--listen …]`: the per-node HTTP backend of the lab
//! (see `ferrolb_lab::backend`). Started by the topology inside each node namespace.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;

/// The lab's stand-in for a Service endpoint: answers every HTTP request with the node's name.
#[derive(Debug, Parser)]
struct Args {
    /// Node name to answer with.
    #[arg(long, env = "LAB_BACKEND_NODE")]
    node: String,
    /// Address to listen on (repeatable).
    #[arg(long, required = true)]
    listen: Vec<SocketAddr>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ferrolb_lab::backend::serve(&args.node, &args.listen)
        .await
        .with_context(|| format!("lab-backend for {}", args.node))
}
