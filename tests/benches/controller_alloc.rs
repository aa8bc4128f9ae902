//! Benchmark (SPEC §9, "Service created -> IP in status" and "10,000 Services: controller cold
//! start to all assigned", controller memory): the `ferrolb-controller` binary against the lab's
//! real kube-apiserver, as in the e2e suite (a process in the control-plane namespace, in-lab
//! kubeconfig).
//!
//! 1. One pool (198.19.0.0/16, the RFC 2544 benchmarking range; nothing is sent to it) and
//!    `--existing` LoadBalancer Services are created while no controller runs; the controller
//!    starts and assigns them all (a first cold-start figure).
//! 2. `--trials` more Services are created one at a time; each is timed from just before the
//!    create request to the moment a Service watch reports an IP in its status.
//! 3. The controller is stopped, Services are created up to `--cold` in total, and a fresh
//!    controller is timed from spawn to the watch reporting every Service assigned.
//! 4. The controller's VmRSS and VmHWM (peak) are read from `/proc/<pid>/status`.
//! 5. The floor: with the controller stopped, the benchmark itself writes one status
//!    server-side apply per Service (a condition of its own, `CREATE_CONCURRENCY` in flight, as
//!    the controller runs its reconciles) and reports the rate the API server sustains. A cold
//!    start needs one such write per new Service, so it cannot beat this figure on the same
//!    machine at the same moment.
//!
//! Not part of `cargo test`: run as root with
//! `cargo bench -p ferrolb-lab --profile dev --bench controller_alloc -- [--existing N]
//! [--trials N] [--cold N] [--controller PATH]`. `--controller` defaults to the
//! `ferrolb-controller` built next to this benchmark (`target/<profile>/`); the lab is removed on
//! every exit path (drop, and the reaper on interrupt).

#[path = "measure/mod.rs"]
mod measure;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrolb_lab::lab::Lab;
use ferrolb_lab::netns::{NetNs, NsProcess, RunPrefix};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Notify;

const NAMESPACE: &str = "default";
const LABEL: &str = "ferrolb.io/bench";
const CREATE_CONCURRENCY: usize = 32;
/// Waiting longer than this for an assignment counts as a failed run.
const GIVE_UP: Duration = Duration::from_secs(300);

struct Options {
    existing: usize,
    trials: usize,
    cold: usize,
    controller: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        existing: 1_000,
        trials: 200,
        cold: 10_000,
        controller: measure::binary_next_to_bench("ferrolb-controller")?,
    };
    for (name, value) in measure::named_args()? {
        match name.as_str() {
            "--existing" => options.existing = value.parse()?,
            "--trials" => options.trials = value.parse()?,
            "--cold" => options.cold = value.parse()?,
            "--controller" => options.controller = value.into(),
            other => bail!("unknown argument {other}"),
        }
    }
    if options.cold < options.existing + options.trials {
        bail!("--cold must be at least --existing + --trials");
    }
    Ok(options)
}

/// When the watch first saw each Service with an IP, by name.
#[derive(Default)]
struct Assigned {
    at: Mutex<HashMap<String, Instant>>,
    changed: Notify,
}

impl Assigned {
    fn record(&self, service: &Service) {
        let has_ip = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .is_some_and(|ingress| ingress.iter().any(|i| i.ip.is_some()));
        if let (true, Some(name)) = (has_ip, service.metadata.name.as_ref())
            && let Ok(mut at) = self.at.lock()
        {
            at.entry(name.clone()).or_insert_with(Instant::now);
            self.changed.notify_waiters();
        }
    }

    fn get(&self, name: &str) -> Option<Instant> {
        self.at.lock().ok()?.get(name).copied()
    }

    fn count(&self) -> usize {
        self.at.lock().map(|at| at.len()).unwrap_or(0)
    }

    fn latest(&self) -> Option<Instant> {
        self.at.lock().ok()?.values().max().copied()
    }

    /// Waits until `done` holds, woken by the watch.
    async fn wait(&self, what: &str, done: impl Fn(&Self) -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + GIVE_UP;
        loop {
            let changed = self.changed.notified();
            if done(self) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "{what}: not reached within {GIVE_UP:?} ({} assigned)",
                    self.count()
                );
            }
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), changed).await;
        }
    }
}

fn service(index: usize) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{index:05}"), "labels": {LABEL: "true"}},
        "spec": {
            "type": "LoadBalancer",
            // The node-port range (2,768 ports) would run out long before 10,000 Services.
            "allocateLoadBalancerNodePorts": false,
            "ports": [{"name": "p", "port": 80, "protocol": "TCP"}],
            "selector": {"app": "bench"},
        },
    }))?)
}

/// Applies a condition of the benchmark's own to the status of every Service in `indices`, as
/// a trivial client would, and returns the time taken.
async fn status_floor(
    api: &Api<Service>,
    indices: std::ops::Range<usize>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    futures::stream::iter(indices)
        .map(|index| async move {
            let name = format!("bench-{index:05}");
            let patch = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "status": {"conditions": [{
                    "type": "ferrolb.io/BenchFloor", "status": "True", "reason": "Floor",
                    "message": format!("status write {index}"),
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }]},
            });
            api.patch_status(
                &name,
                &PatchParams::apply("bench-floor").force(),
                &Patch::Apply(&patch),
            )
            .await
            .with_context(|| format!("status write to {name}"))?;
            anyhow::Ok(())
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

async fn create_services(
    api: &Api<Service>,
    indices: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    futures::stream::iter(indices)
        .map(|index| async move {
            api.create(&PostParams::default(), &service(index)?)
                .await
                .with_context(|| format!("creating Service bench-{index:05}"))?;
            anyhow::Ok(())
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

struct Controllers<'a> {
    lab: &'a mut Lab,
    options: &'a Options,
    starts: u32,
}

impl Controllers<'_> {
    fn start(&mut self) -> anyhow::Result<NsProcess> {
        self.starts += 1;
        let state = self.lab.state().clone();
        let prefix = RunPrefix::parse(&state.prefix)?;
        let log = prefix
            .run_dir()
            .join(format!("controller-bench-{}.log", self.starts));
        let argv = vec![
            self.options.controller.display().to_string(),
            "--kubeconfig".into(),
            state.lab_kubeconfig.display().to_string(),
            "--identity".into(),
            format!("bench-{}", self.starts),
            "--lease-namespace".into(),
            NAMESPACE.into(),
            "--admin-addr".into(),
            "127.0.0.1:0".into(),
            "--log-level".into(),
            "info".into(),
        ];
        let process = NetNs::adopt(&state.control_plane_namespace).spawn(&argv, &log)?;
        self.lab.record_process("controller bench", process.pid())?;
        Ok(process)
    }
}

/// Stops the Service watch on every exit path, before the lab goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    if !options.controller.exists() {
        bail!(
            "{} missing: build it with `cargo build -p ferrolb-controller`",
            options.controller.display()
        );
    }
    let mut lab = measure::start_lab().await?;
    let result = run(&mut lab, &options).await;
    lab.destroy().await?;
    result
}

async fn run(lab: &mut Lab, options: &Options) -> anyhow::Result<()> {
    let client = lab.client()?;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let pools: Api<ferrolb_config::crd::IPAddressPool> = Api::all(client.clone());
    pools
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "ferrolb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": {"name": "bench"},
                "spec": {"addresses": ["198.19.0.0/16"]},
            }))?,
        )
        .await?;
    let assigned = Arc::new(Assigned::default());
    let _watch = {
        let assigned = Arc::clone(&assigned);
        let services = services.clone();
        AbortOnDrop(tokio::spawn(async move {
            let config = watcher::Config::default().labels(LABEL);
            let mut events = watcher(services, config).boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                        assigned.record(&s);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        eprintln!("watch: {error}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }))
    };
    let mut controllers = Controllers {
        lab,
        options,
        starts: 0,
    };

    // 1. Existing Services, then the controller.
    let created = Instant::now();
    create_services(&services, 0..options.existing).await?;
    println!(
        "created {} Services in {:.1?} (no controller running)",
        options.existing,
        created.elapsed()
    );
    let started = Instant::now();
    let mut controller = controllers.start()?;
    assigned
        .wait("existing Services assigned", |a| {
            a.count() >= options.existing
        })
        .await?;
    let first = assigned
        .latest()
        .map(|t| t.duration_since(started))
        .unwrap_or_default();
    println!(
        "cold start, {} Services: spawn -> all assigned {first:.2?}",
        options.existing
    );

    // 2. One at a time.
    let mut latencies = Vec::with_capacity(options.trials);
    for index in options.existing..options.existing + options.trials {
        let name = format!("bench-{index:05}");
        let sent = Instant::now();
        services
            .create(&PostParams::default(), &service(index)?)
            .await?;
        assigned.wait(&name, |a| a.get(&name).is_some()).await?;
        let at = assigned.get(&name).context("recorded")?;
        latencies.push(at.duration_since(sent));
    }
    latencies.sort();
    println!(
        "Service created -> IP in status, {} existing, {} trials: p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        options.existing,
        options.trials,
        measure::percentile(&latencies, 50),
        measure::percentile(&latencies, 99),
        latencies.last().copied().unwrap_or_default()
    );
    let (rss, hwm) = measure::memory(controller.pid())?;
    println!(
        "controller at {} Services: VmRSS {} KiB, VmHWM {} KiB",
        options.existing + options.trials,
        rss,
        hwm
    );

    // 3. Cold start with `cold` Services.
    controller.stop();
    let total = options.cold;
    let created = Instant::now();
    create_services(&services, options.existing + options.trials..total).await?;
    println!(
        "created {} more Services in {:.1?} (no controller running)",
        total - options.existing - options.trials,
        created.elapsed()
    );
    let listed = services
        .list(&ListParams::default().labels(LABEL))
        .await?
        .items
        .len();
    if listed != total {
        bail!("{listed} bench Services listed, expected {total}");
    }
    let before = assigned.count();
    let started = Instant::now();
    let mut controller = controllers.start()?;
    assigned
        .wait("all Services assigned", |a| a.count() >= total)
        .await?;
    let cold = assigned
        .latest()
        .map(|t| t.duration_since(started))
        .unwrap_or_default();
    println!(
        "cold start, {total} Services ({before} already holding IPs): spawn -> all assigned {cold:.2?}"
    );
    // 4. Memory, after a moment for the pool status writes that follow.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, hwm) = measure::memory(controller.pid())?;
    println!("controller at {total} Services: VmRSS {rss} KiB, VmHWM {hwm} KiB");
    controller.stop();

    // 5. The API server's own write rate, the floor of any cold start.
    let new = total - before;
    let took = status_floor(&services, 0..new).await?;
    println!(
        "floor: {new} status applies by a trivial client ({CREATE_CONCURRENCY} in flight) took {took:.2?}, {:.0} writes/s",
        new as f64 / took.as_secs_f64()
    );
    Ok(())
}
