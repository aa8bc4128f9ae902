//! Benchmark (SPEC §9, "BGP withdrawal at the router after a node dies"): router-side time from
//! cutting node 1's link to node 1's prefix leaving the router's RIB, with BFD (100 ms x 3, RFC
//! 5880/5881) and without (BGP hold time 3 s, keepalive 1 s: RFC 4271 §4.4, kept short so the
//! run stays minutes, not hours; the default 90 s scales the same way).
//!
//! Each trial: the speaker engine in node 1 is Established (BFD Up) with the router, which holds
//! the prefix; the node's bridge port is set down from the segment namespace (the clock starts
//! just before that command); the router's RIB is polled about every 10 ms (one query per poll)
//! until the prefix is gone; the link comes back and the session re-establishes before the next
//! trial. Not part of `cargo test`: run as root with
//! `cargo bench -p ferrolb-lab --profile dev --bench bfd_failover -- [--trials N] [--routers frr,bird]`.

#[path = "../tests/bfd_lab/mod.rs"]
mod bfd_lab;
#[path = "measure/mod.rs"]
mod measure;
#[path = "../tests/node_runtime/mod.rs"]
mod node_runtime;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bfd_lab::{BfdNode, profile};
use ferrolb_lab::netns;
use ferrolb_lab::routers::RouterKind;
use ferrolb_lab::topology::Topology;

const POLL: Duration = Duration::from_millis(10);
const SETTLE: Duration = Duration::from_secs(60);
/// A withdrawal slower than this counts as a failed trial.
const GIVE_UP: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
enum Mode {
    Bfd,
    HoldTimer,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Bfd => "BFD 100 ms x 3 (hold 9 s)",
            Mode::HoldTimer => "no BFD, hold 3 s / keepalive 1 s",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut trials = 20usize;
    let mut routers = vec![RouterKind::Frr, RouterKind::Bird];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--trials" => {
                trials = args.next().context("--trials N")?.parse()?;
            }
            "--routers" => {
                routers = args
                    .next()
                    .context("--routers frr,bird")?
                    .split(',')
                    .map(|r| match r {
                        "frr" => Ok(RouterKind::Frr),
                        "bird" => Ok(RouterKind::Bird),
                        other => bail!("unknown router {other} (frr, bird)"),
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            // cargo bench passes --bench to harness=false targets.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    for kind in routers {
        for mode in [Mode::Bfd, Mode::HoldTimer] {
            let samples = run(kind, mode, trials)?;
            measure::report(&format!("{kind} | {}", mode.label()), &samples);
        }
    }
    Ok(())
}

fn run(kind: RouterKind, mode: Mode, trials: usize) -> anyhow::Result<Vec<Duration>> {
    let bfd = matches!(mode, Mode::Bfd);
    let backend = PathBuf::from(env!("CARGO_BIN_EXE_lab-backend"));
    let topo = Topology::up(bfd_lab::topology_options(&[kind], bfd, backend))?;
    let (bfd_profile, hold) = match mode {
        Mode::Bfd => (Some(profile(100)), 9),
        Mode::HoldTimer => (None, 3),
    };
    let node = BfdNode::start(&topo, &[kind], bfd_profile, hold);
    let mut samples = Vec::with_capacity(trials);
    for trial in 1..=trials {
        settle(&topo, &node, kind, bfd)?;
        let cut = Instant::now();
        topo.set_node_link(bfd_lab::NODE, false)?;
        let withdrawn = loop {
            let polled = Instant::now();
            if !bfd_lab::router_has_prefix(&topo, kind).map_err(anyhow::Error::msg)? {
                break cut.elapsed();
            }
            if cut.elapsed() > GIVE_UP {
                bail!("{kind}: prefix still there {GIVE_UP:?} after the cut");
            }
            thread::sleep(POLL.saturating_sub(polled.elapsed()));
        };
        topo.set_node_link(bfd_lab::NODE, true)?;
        eprintln!("{kind} {}: trial {trial}: {withdrawn:?}", mode.label());
        samples.push(withdrawn);
    }
    Ok(samples)
}

/// Session Established (BFD Up on both sides when used) and the prefix at the router.
fn settle(topo: &Topology, node: &BfdNode, kind: RouterKind, bfd: bool) -> anyhow::Result<()> {
    node.wait_up(bfd, SETTLE).map_err(anyhow::Error::msg)?;
    if bfd {
        netns::wait_for("router BFD Up", SETTLE, || {
            bfd_lab::router_bfd_up(topo, kind).ok()?.then_some(())
        })?;
    }
    netns::wait_for("prefix at the router", SETTLE, || {
        bfd_lab::router_has_prefix(topo, kind).ok()?.then_some(())
    })?;
    Ok(())
}
