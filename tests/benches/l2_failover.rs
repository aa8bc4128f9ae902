//! Benchmark (SPEC §9, layer 2; issue 5): client-measured failover, Service created → reachable,
//! and speaker memory with many announced IPs, against the lab's real kube-apiserver with the
//! controller and three `ferrolb-speaker` processes, as in the e2e suite.
//!
//! - **Failover series** (`--trials` each): owner's speaker SIGKILLed (IPv4, IPv6), owner's segment
//!   link down (IPv4, IPv6), owner's speaker SIGKILLed with the API server stopped (IPv4). The L2
//!   client probes the Service with a new HTTP request every 10 ms (each its own connection and
//!   300 ms timeout, [`ferrolb_lab::probe`]). Per trial: *takeover* = fault → the first probe sent
//!   after it that another node answered; *outage* = the longest time between two answered probes
//!   from the last one before the fault to that takeover (the probe period when nothing is lost:
//!   a SIGKILLed speaker's node still serves the clients that resolved it). After each trial the fault is undone (speaker restarted, link up, API
//!   server started) and the benchmark waits for every speaker to see the others alive and for
//!   one owner that the client reaches.
//! - **Service created → reachable** (`--trials`): an EndpointSlice is written first, then the
//!   clock starts and a Service requesting a known IP (`ferrolb.io/loadBalancerIPs`) is created
//!   while the client probes that IP every 10 ms; the figure is the first probe *answer*.
//! - **Memory** (`--scale N`, 0 skips): N IPv6 Services (each with an EndpointSlice) in a pool
//!   whose advertisement prefers node 1, created while the speakers are stopped; the speakers
//!   start, node 1 announces all N; VmRSS and VmHWM of every speaker 5, 30 and 60 s after
//!   node 1's `ferrolb_l2_announced_ips` reaches N (at 5 s node 1 is still writing the Services'
//!   conditions; at 30 s and 60 s every speaker idles).
//!
//! Not part of `cargo test`: run as root with
//! `cargo bench -p ferrolb-lab --profile dev --bench l2_failover -- [--trials N] [--scale N]
//! [--speaker PATH] [--controller PATH]`; the paths default to the binaries next to this
//! benchmark (`target/<profile>/`). The lab is removed on every exit path.

#[path = "measure/mod.rs"]
mod measure;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrolb_lab::binaries::SpeakerOptions;
use ferrolb_lab::l2_mode::{self, Install, NAMESPACE};
use ferrolb_lab::lab::{Lab, LabOptions};
use ferrolb_lab::probe::{self, Probe, Prober};
use ferrolb_lab::topology::{Client, plan};
use ferrolb_lab::workload;
use futures::{StreamExt, TryStreamExt};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const LABEL: &str = "ferrolb.io/bench-l2";
const POOL: &str = "bench-l2";
const SCALE_POOL: &str = "bench-l2-scale";
/// Inside the segment's /64, apart from the L2 pool: 65,536 addresses.
const SCALE_POOL_V6: &str = "2001:db8:2::4:0/112";
const NODES: [usize; 3] = [1, 2, 3];
const PERIOD: Duration = Duration::from_millis(10);
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// A trial without takeover after this long is a failed run.
const GIVE_UP: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(60);
/// Time a restarted speaker gets to settle before the next trial (its own settling waits at
/// least one detection time, 300 ms by default).
const REJOIN: Duration = Duration::from_secs(2);
const CREATE_CONCURRENCY: usize = 32;

struct Options {
    trials: usize,
    scale: usize,
    speaker: PathBuf,
    controller: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        trials: 20,
        scale: 10_000,
        speaker: measure::binary_next_to_bench("ferrolb-speaker")?,
        controller: measure::binary_next_to_bench("ferrolb-controller")?,
    };
    for (name, value) in measure::named_args()? {
        match name.as_str() {
            "--trials" => options.trials = value.parse()?,
            "--scale" => options.scale = value.parse()?,
            "--speaker" => options.speaker = value.into(),
            "--controller" => options.controller = value.into(),
            other => bail!("unknown argument {other}"),
        }
    }
    for binary in [&options.speaker, &options.controller] {
        if !binary.exists() {
            bail!("{} missing: build it first", binary.display());
        }
    }
    // The L2 pool's IPv4 /27 gives each creation trial its own address (.200 on).
    if options.trials == 0 || options.trials > 24 {
        bail!("--trials must be 1..=24");
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let mut lab = Lab::start(LabOptions::with_binaries(
        env!("CARGO_BIN_EXE_lab-backend").into(),
        env!("CARGO_BIN_EXE_lab").into(),
    ))
    .await?;
    let result = run(&mut lab, &options).await;
    lab.destroy().await?;
    result
}

/// The faults of the failover series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Sigkill,
    LinkDown,
    SigkillApiDown,
}

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::Sigkill => "owner SIGKILLed",
            Fault::LinkDown => "owner link down",
            Fault::SigkillApiDown => "owner SIGKILLed, API server down",
        }
    }
}

struct Bench<'a> {
    lab: &'a mut Lab,
    install: Install,
    client: kube::Client,
}

async fn run(lab: &mut Lab, options: &Options) -> anyhow::Result<()> {
    let client = lab.client()?;
    let speaker = SpeakerOptions {
        log_level: "info".into(),
        program: Some(options.speaker.clone()),
        ..SpeakerOptions::default()
    };
    let install = Install::start(lab, "bench", &NODES, Some(&options.controller), speaker).await?;
    l2_mode::apply_pool(&client, LABEL, POOL, &[plan::L2_POOL_V4, plan::L2_POOL_V6]).await?;
    l2_mode::apply_advertisement(&client, LABEL, POOL, json!({"ipAddressPools": [POOL]})).await?;
    let mut bench = Bench {
        lab,
        install,
        client,
    };
    println!(
        "speaker {}, controller {}",
        options.speaker.display(),
        options.controller.display()
    );
    let v4 = bench.service("bench-v4", "IPv4", json!({})).await?;
    let v6 = bench.service("bench-v6", "IPv6", json!({})).await?;
    let series = [
        (Fault::Sigkill, v4),
        (Fault::Sigkill, v6),
        (Fault::LinkDown, v4),
        (Fault::LinkDown, v6),
        (Fault::SigkillApiDown, v4),
    ];
    let mut results = Vec::new();
    for (fault, ip) in series {
        let mut takeovers = Vec::new();
        let mut outages = Vec::new();
        for trial in 1..=options.trials {
            let (takeover, outage) = bench.failover(fault, ip).await?;
            eprintln!(
                "{} {ip}: trial {trial}: takeover {takeover:.0?}, outage {outage:.0?}",
                fault.label()
            );
            takeovers.push(takeover);
            outages.push(outage);
        }
        results.push((format!("{} ({ip})", fault.label()), takeovers, outages));
    }
    let created = bench.created_to_reachable(options.trials).await?;
    println!("| series | n | takeover p50 / p99 / max | outage p50 / p99 / max |");
    println!("|---|---|---|---|");
    for (label, takeovers, outages) in &results {
        println!(
            "| {label} | {} | {} | {} |",
            takeovers.len(),
            summary(takeovers),
            summary(outages)
        );
    }
    println!(
        "Service created -> reachable from the L2 client, n={}: {}",
        created.len(),
        summary(&created)
    );
    if options.scale > 0 {
        bench.memory_at_scale(options.scale).await?;
    }
    Ok(())
}

/// `p50 / p99 / max` in milliseconds.
fn summary(samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    format!(
        "{} / {} / {}",
        ms(probe::percentile(&sorted, 50)),
        ms(probe::percentile(&sorted, 99)),
        ms(sorted.last().copied().unwrap_or_default())
    )
}

impl Bench<'_> {
    /// A single-stack Service with a ready endpoint on every node; returns its IP.
    async fn service(&self, name: &str, family: &str, metadata: Value) -> anyhow::Result<IpAddr> {
        self.endpoints(name, family).await?;
        let mut service = workload::load_balancer(
            NAMESPACE,
            name,
            json!({LABEL: "true"}),
            json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": [family]}),
        );
        if let (Some(base), Some(extra)) =
            (service["metadata"].as_object_mut(), metadata.as_object())
        {
            base.extend(extra.clone());
        }
        l2_mode::apply_service(&self.client, &service).await?;
        workload::wait_ingress_ip(&self.client, NAMESPACE, name, SETTLE)
            .await
            .with_context(|| format!("{name} got no IP"))
    }

    async fn endpoints(&self, name: &str, family: &str) -> anyhow::Result<()> {
        let topology = self.lab.topology()?;
        l2_mode::apply_endpoints(&self.client, topology, LABEL, name, family, &NODES).await?;
        Ok(())
    }

    fn prober(&self, ip: IpAddr) -> anyhow::Result<Prober> {
        let topology = self.lab.topology()?;
        Ok(Prober::start(
            topology.client_ns(Client::L2)?,
            SocketAddr::new(ip, workload::SERVICE_PORT),
            PERIOD,
            PROBE_TIMEOUT,
        )?)
    }

    /// One trial: settle, probe, fault, takeover, undo. Returns (takeover, outage).
    async fn failover(&mut self, fault: Fault, ip: IpAddr) -> anyhow::Result<(Duration, Duration)> {
        self.install.wait_members_alive(self.lab, SETTLE).await?;
        let owner = l2_mode::wait_owner(self.lab, &self.install, ip, SETTLE).await?;
        let index = self.lab.topology()?.node_named(&owner)?.index;
        let prober = self.prober(ip)?;
        wait_probes("baseline answered by the owner", &prober, |probes| {
            probes
                .iter()
                .any(|p| p.answer.as_deref() == Some(owner.as_str()))
        })
        .await?;
        if fault == Fault::SigkillApiDown {
            self.lab.control_plane_mut()?.stop_api_server();
        }
        let at = Instant::now();
        match fault {
            Fault::Sigkill | Fault::SigkillApiDown => {
                self.install.signal_speaker(index, Signal::SIGKILL)?;
            }
            Fault::LinkDown => self.lab.topology()?.set_node_link(index, false)?,
        }
        let moved = wait_probes("another node answering", &prober, |probes| {
            probe::takeover(probes, at, &owner).is_some()
        })
        .await;
        let probes = prober.stop();
        // Undo the fault whatever happened, then report.
        match fault {
            Fault::Sigkill => self.install.start_speaker(self.lab, index)?,
            Fault::LinkDown => self.lab.topology()?.set_node_link(index, true)?,
            Fault::SigkillApiDown => {
                self.lab.control_plane_mut()?.start_api_server().await?;
                self.install.start_speaker(self.lab, index)?;
            }
        }
        moved?;
        tokio::time::sleep(REJOIN).await;
        let takeover = probe::takeover(&probes, at, &owner).context("takeover")?;
        let outage = probe::outage(&probes, at, &owner).context("outage")?;
        Ok((takeover, outage))
    }

    /// Service created -> first answer at the client, `trials` times, each with its own IP.
    async fn created_to_reachable(&mut self, trials: usize) -> anyhow::Result<Vec<Duration>> {
        let mut samples = Vec::new();
        let client_ns = self.lab.topology()?.client_ns(Client::L2)?.clone();
        for trial in 0..trials {
            let name = format!("bench-new-{trial}");
            let ip: IpAddr = format!("192.0.2.{}", 200 + trial).parse()?;
            self.endpoints(&name, "IPv4").await?;
            client_ns.ip(&["neigh", "flush", "all"])?;
            let prober = self.prober(ip)?;
            let service = workload::load_balancer(
                NAMESPACE,
                &name,
                json!({LABEL: "true"}),
                json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
            );
            let mut service = service;
            service["metadata"]["annotations"] =
                json!({"ferrolb.io/loadBalancerIPs": ip.to_string()});
            let created = Instant::now();
            l2_mode::apply_service(&self.client, &service).await?;
            wait_probes("the new Service answering", &prober, |probes| {
                probes.iter().any(|p| p.answer.is_some())
            })
            .await?;
            let probes = prober.stop();
            let first = probe::first_answer(&probes).context("first answer")?;
            let reachable = first.saturating_duration_since(created);
            eprintln!("Service created -> reachable {ip}: {reachable:.0?}");
            samples.push(reachable);
        }
        Ok(samples)
    }

    /// `services` IPv6 Services that node 1 announces; prints every speaker's memory.
    async fn memory_at_scale(&mut self, services: usize) -> anyhow::Result<()> {
        for index in NODES {
            let pid = self.install.pid(index).context("speaker running")?;
            let (rss, hwm) = measure::memory(pid)?;
            println!("before: node {index} speaker VmRSS {rss} KiB, VmHWM {hwm} KiB");
        }
        l2_mode::apply_pool(&self.client, LABEL, SCALE_POOL, &[SCALE_POOL_V6]).await?;
        let node1 = self.lab.topology()?.node(1)?.name.clone();
        l2_mode::apply_advertisement(
            &self.client,
            LABEL,
            SCALE_POOL,
            json!({
                "ipAddressPools": [SCALE_POOL],
                "preferredNodes": [{"weight": 100, "selector": {"matchLabels": {"kubernetes.io/hostname": node1}}}],
            }),
        )
        .await?;
        // Steady state, as in the BGP benchmark: the objects are created with the speakers
        // stopped, so the figure is what a speaker holds with them, not the creation ramp's.
        for index in NODES {
            self.install.signal_speaker(index, Signal::SIGTERM)?;
        }
        let started = Instant::now();
        let this = &*self;
        futures::stream::iter(0..services)
            .map(|i| async move {
                let name = format!("scale-{i:05}");
                this.endpoints(&name, "IPv6").await?;
                let mut service = workload::load_balancer(
                    NAMESPACE,
                    &name,
                    json!({LABEL: "true"}),
                    json!({
                        "ipFamilyPolicy": "SingleStack",
                        "ipFamilies": ["IPv6"],
                        "allocateLoadBalancerNodePorts": false,
                    }),
                );
                service["metadata"]["annotations"] = json!({"ferrolb.io/address-pool": SCALE_POOL});
                l2_mode::apply_service(&this.client, &service).await?;
                anyhow::Ok(())
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        println!(
            "created {services} Services and EndpointSlices in {:.1?}",
            started.elapsed()
        );
        let started = Instant::now();
        for index in NODES {
            self.install.start_speaker(self.lab, index)?;
        }
        // Node 1 also announces the two failover Services of the L2 pool when it owns them.
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let announced = l2_mode::speaker_metric(self.lab, 1, "ferrolb_l2_announced_ips")
                .ok()
                .flatten()
                .unwrap_or(0.0);
            if announced >= services as f64 {
                println!(
                    "node 1 announces {announced} IPs, {:.1?} after the speakers started",
                    started.elapsed()
                );
                break;
            }
            if Instant::now() > deadline {
                bail!("node 1 announces {announced} IPs, not {services}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let announced_at = Instant::now();
        // 5 s: the takeover's writes (one condition per Service) are still under way; 30 s and
        // 60 s: they are done and the speakers idle.
        for after in [5, 30, 60] {
            tokio::time::sleep_until((announced_at + Duration::from_secs(after)).into()).await;
            for index in NODES {
                let pid = self.install.pid(index).context("speaker running")?;
                let (rss, hwm) = measure::memory(pid)?;
                println!(
                    "at {services} Services, {after} s after: node {index} speaker VmRSS {rss} KiB, VmHWM {hwm} KiB"
                );
            }
        }
        Ok(())
    }
}

/// Polls the prober until `done` holds, at most [`GIVE_UP`].
async fn wait_probes(
    what: &str,
    prober: &Prober,
    done: impl Fn(&[Probe]) -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !done(&prober.probes()) {
        if start.elapsed() > GIVE_UP {
            bail!("{what}: not within {GIVE_UP:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
