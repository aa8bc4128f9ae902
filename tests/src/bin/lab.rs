//! `lab up | status | down`: the ferrolb lab from the command line (run as root, via `tests/lab.sh`).
//!
//! `up` builds a lab, leaves it running and exits; `status` reports every run on the machine; `down`
//! removes runs by name and pid. `reap` is the cleanup helper the library starts next to a lab (see
//! `ferrolb_lab::lab`).

use std::io::BufReader;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferrolb_lab::lab::{self, Lab, LabOptions};
use ferrolb_lab::netns::{self, RunPrefix};
use ferrolb_lab::routers::RouterKind;
use ferrolb_lab::topology::{Client, TopologyOptions};
use ferrolb_lab::{control_plane, demo, workload};

#[derive(Debug, Parser)]
#[command(
    name = "lab",
    about = "The ferrolb lab: real kube-apiserver, nodes in namespaces, BGP routers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a lab, leave it running, print how to reach it.
    Up(UpArgs),
    /// Report every lab run on this machine.
    Status,
    /// Remove lab runs: the given prefixes, or every run left up by `lab up` or abandoned by a dead
    /// process (runs owned by a live process, such as a test in progress, are left alone).
    Down {
        /// Run prefixes (`flb` + 4 hex digits).
        prefixes: Vec<String>,
    },
    /// Internal: wait for end-of-file on stdin, then remove the run (started by the library).
    #[command(hide = true)]
    Reap {
        /// The run prefix.
        prefix: String,
    },
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Number of node namespaces.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Routers to start (comma-separated): bird, frr, gobgp, mh (the multihop BIRD behind FRR).
    #[arg(long, value_delimiter = ',', default_value = "bird,frr,gobgp,mh")]
    routers: Vec<String>,
    /// Directory of ferrolb's CRD manifests.
    #[arg(long)]
    crds: Option<PathBuf>,
    /// Run prefix (`flb` + 4 hex digits); a fresh random one by default.
    #[arg(long)]
    prefix: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Library logs (kube's retries while the API server starts are expected) only on request.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match Cli::parse().command {
        Command::Up(args) => up(args).await,
        Command::Status => status().await,
        Command::Down { prefixes } => down(&prefixes),
        Command::Reap { prefix } => reap(&prefix),
    }
}

fn router_kind(name: &str) -> anyhow::Result<RouterKind> {
    RouterKind::ALL
        .into_iter()
        .find(|kind| kind.to_string() == name)
        .with_context(|| {
            let known: Vec<String> = RouterKind::ALL.iter().map(ToString::to_string).collect();
            format!("unknown router {name:?}; known: {}", known.join(", "))
        })
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let UpArgs {
        nodes,
        routers,
        crds,
        prefix,
    } = args;
    let prefix = prefix.map(|prefix| RunPrefix::parse(&prefix)).transpose()?;
    let routers = routers
        .iter()
        .filter(|name| !name.is_empty())
        .map(|name| router_kind(name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = LabOptions {
        topology: TopologyOptions {
            nodes,
            routers,
            prefix,
            ..TopologyOptions::default()
        },
        crds: crds.unwrap_or_else(lab::default_crds_dir),
        // This same binary is the reaper: if `up` is interrupted or fails, it removes the partial run.
        reaper: Some(std::env::current_exe().context("locating the lab binary")?),
    };
    eprintln!("starting the lab ({nodes} nodes) …");
    let mut lab = tokio::select! {
        lab = Lab::start(options) => lab.context("starting the lab")?,
        _ = tokio::signal::ctrl_c() => {
            // Exit at once, with the start-up steps frozen where they are: the kernel closes the
            // reaper's pipe only now, so the reaper removes the partial lab with nobody still
            // building it.
            eprintln!("interrupted: the partial lab is being removed by its reaper");
            std::process::exit(130);
        }
    };
    eprintln!("starting ferrolb (controller and speakers) and the demo Services …");
    let reached = tokio::select! {
        reached = demo::deploy(&mut lab) => reached.context("the demo Services")?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: the lab is being removed by its reaper");
            std::process::exit(130);
        }
    };
    let timings = lab.timings();
    let topology = lab.topology()?;
    let client_l2 = topology.client_ns(Client::L2)?.name().to_owned();
    let client_routed = topology.client_ns(Client::Routed)?.name().to_owned();
    let first_node = topology.nodes().first().map(|node| node.v4);
    let routers: Vec<String> = topology
        .routers()
        .iter()
        .map(|router| {
            format!(
                "{} (namespace {})",
                router.kind(),
                router.namespace().name()
            )
        })
        .collect();
    let crd_count = lab.crds().len();
    let state = lab.detach()?;

    println!(
        "ferrolb lab {} is up in {:.1} s (network {:.1} s, control plane {:.1} s, CRDs and nodes {:.1} s)",
        state.prefix,
        timings.total.as_secs_f64(),
        timings.topology.as_secs_f64(),
        timings.control_plane.as_secs_f64(),
        timings.cluster_objects.as_secs_f64(),
    );
    println!();
    println!(
        "API server     {} (namespace {})",
        state.api_url, state.control_plane_namespace
    );
    println!("kubeconfig     {}", state.lab_kubeconfig.display());
    println!(
        "               for programs run inside the lab, e.g. `ip netns exec {} <program>`",
        state.control_plane_namespace
    );
    println!("CRDs           {crd_count} ferrolb CRDs Established");
    for (node, namespace) in &state.nodes {
        println!("node           {node} (namespace {namespace}), registered as a Node object");
    }
    for router in &routers {
        println!("router         {router}");
    }
    println!(
        "clients        {client_l2} (on the node segment), {client_routed} (behind the routers)"
    );
    println!();
    println!("Try:");
    println!(
        "  ip netns exec {} curl -s --cacert {} -H \"Authorization: Bearer $(cat {})\" {}/api/v1/nodes",
        state.control_plane_namespace,
        state.ca_cert.display(),
        state.admin_token.display(),
        state.api_url
    );
    if let Some(node_ip) = first_node {
        println!(
            "  ip netns exec {client_l2} curl -s http://{node_ip}:8080/    # a node's backend answers its name"
        );
    }
    println!("  tests/lab.sh status");
    println!("  tests/lab.sh down");
    println!();
    println!(
        "ferrolb runs: the controller in {} and a speaker in every node namespace (logs in {}).",
        state.control_plane_namespace,
        RunPrefix::parse(&state.prefix)?.run_dir().display()
    );
    for service in &reached {
        let url = workload::url(service.ip);
        println!(
            "Service {}/{} ({}) at {}: reached from {}, answered by {}",
            demo::NAMESPACE,
            service.service,
            service.mode,
            service.ip,
            service.client,
            service.answered_by
        );
        println!("  ip netns exec {} curl -s {url}", service.client);
    }
    Ok(())
}

async fn status() -> anyhow::Result<()> {
    let runs = lab::lab_runs()?;
    if runs.is_empty() {
        println!("no lab runs on this machine");
    }
    for lab_run in runs {
        let run = &lab_run.run;
        let owner = describe_owner(run.owner);
        let Some(state) = lab_run.state else {
            println!(
                "lab {} — {owner}; no state file (partial, or a network-only run of another \
                 harness); {} namespaces; `lab down {}` removes it",
                run.prefix,
                run.namespaces.len(),
                run.prefix
            );
            continue;
        };
        println!("lab {} — {owner}", run.prefix);
        let missing: Vec<&String> = state
            .namespaces
            .iter()
            .filter(|name| !run.namespaces.contains(name))
            .collect();
        println!(
            "  namespaces   {} recorded, {} missing{}",
            state.namespaces.len(),
            missing.len(),
            if missing.is_empty() {
                String::new()
            } else {
                format!(": {missing:?}")
            }
        );
        for process in &state.processes {
            let alive = if process.is_alive() {
                "running"
            } else {
                "gone"
            };
            println!(
                "  process      {:<24} pid {:<8} {alive}",
                process.role, process.pid
            );
        }
        let ready = control_plane::probe_readyz(
            &state.control_plane_namespace,
            state.api_address,
            &state.ca_cert,
            &state.admin_token,
            Duration::from_secs(5),
        )
        .await;
        match ready {
            Ok(answer) => println!("  API server   {} /readyz: {answer}", state.api_url),
            Err(error) => println!("  API server   {} not answering: {error}", state.api_url),
        }
    }
    Ok(())
}

/// Who owns a run, in words.
fn describe_owner(owner: Option<netns::Owner>) -> String {
    match owner {
        Some(netns::Owner::Detached) => "left up by `lab up`".to_owned(),
        Some(netns::Owner::Process(pid)) if netns::pid_alive(pid) => {
            format!("owned by running pid {pid}")
        }
        Some(netns::Owner::Process(pid)) => format!("abandoned (owner pid {pid} is gone)"),
        None => "no owner recorded".to_owned(),
    }
}

fn down(prefixes: &[String]) -> anyhow::Result<()> {
    let targets: Vec<RunPrefix> = if prefixes.is_empty() {
        lab::lab_runs()?
            .into_iter()
            .map(|lab_run| lab_run.run)
            .filter(lab::removable_by_default)
            .map(|run| run.prefix)
            .collect()
    } else {
        prefixes
            .iter()
            .map(|prefix| RunPrefix::parse(prefix))
            .collect::<Result<_, _>>()?
    };
    if targets.is_empty() {
        println!("no lab run to remove");
    }
    for prefix in targets {
        let report = lab::down(&prefix).with_context(|| format!("removing lab {prefix}"))?;
        println!(
            "removed lab {prefix}: {} processes stopped by pid, {} namespaces deleted",
            report.stopped.len(),
            report.swept.namespaces.len()
        );
    }
    Ok(())
}

fn reap(prefix: &str) -> anyhow::Result<()> {
    let prefix = RunPrefix::parse(prefix)?;
    if lab::reaper_should_clean_up(BufReader::new(std::io::stdin().lock())) {
        let report = lab::down(&prefix).with_context(|| format!("reaping lab {prefix}"))?;
        if !report.swept.namespaces.is_empty() || !report.stopped.is_empty() {
            eprintln!(
                "lab reaper: removed {} namespaces and {} processes of {prefix}",
                report.swept.namespaces.len(),
                report.stopped.len()
            );
        }
    }
    Ok(())
}
