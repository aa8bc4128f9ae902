//! Benchmark (SPEC §9 and issue 6): BGP mode through ferrolb's real binaries — the
//! `ferrolb-controller` and one `ferrolb-speaker` per node, against the lab's real kube-apiserver and
//! its FRR, BIRD and GoBGP routers.
//!
//! 1. *Service created → prefix in the router's RIB*: each trial writes an EndpointSlice (a ready
//!    endpoint on node 1; the lab runs no kube-controller-manager) and then creates a single-stack
//!    IPv4 LoadBalancer Service asking for one address of 203.0.113.64/26 (annotation
//!    `ferrolb.io/loadBalancerIPs`, so the prefix is known before the create). The clock starts
//!    just before the create request; two threads poll FRR (`show bgp ipv4 unicast P json`) and
//!    BIRD (`show route where net = P count`) for that exact prefix and record when the first path
//!    and when all three nodes' paths (ECMP) are there. Every node announces (`Cluster` policy).
//! 2. *Speaker memory with 10,000 prefixes to 3 peers*: the speakers and the controller are
//!    stopped, `--services` single-stack IPv6 Services (and one EndpointSlice each) are created
//!    with 32 requests in flight, a new controller assigns them from 2001:db8:3::/112, then the
//!    speakers start again. Once BIRD holds every prefix from node 1 and node 1's SpeakerStatus
//!    reports that many prefixes sent to each of BIRD, FRR and GoBGP (IPv6 sessions), VmRSS and
//!    VmHWM of each speaker are read from `/proc/<pid>/status`.
//! 3. *10,000 prefixes to BIRD after session up*: `birdc disable`/`enable` of BIRD's session with
//!    node 1; the clock starts when `birdc show protocols` first reports it Established (polled
//!    every few ms) and stops when `show route protocol node1_v6 count` reports every prefix.
//!
//! Not part of `cargo test`: run as root with
//! `cargo bench -p ferrolb-lab --profile dev --bench bgp_service -- [--trials N] [--services N]
//! [--rounds N] [--speaker PATH]`. `--speaker` defaults to the `ferrolb-speaker` built next to
//! this benchmark (`target/<profile>/`); pass a release build for the memory figures. The lab is
//! removed on every exit path (drop, and the reaper on interrupt).

#[path = "measure/mod.rs"]
mod measure;
#[path = "../tests/rib_wait/mod.rs"]
mod rib_wait;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrolb_config::crd::SpeakerStatus;
use ferrolb_config::crd::speaker_status::BgpState;
use ferrolb_lab::binaries::{self, SpeakerOptions};
use ferrolb_lab::lab::Lab;
use ferrolb_lab::netns::NsProcess;
use ferrolb_lab::routers::RouterKind;
use ferrolb_lab::topology::{Topology, plan};
use ferrolb_lab::workload;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

const NAMESPACE: &str = "default";
const LABEL: &str = "ferrolb.io/bench";
const SECRET: &str = "ferrolb-membership";
const KEY: &[u8] = b"bgp-service-bench-heartbeat-key-0123456789";
const POOL_V4: &str = "bench-v4";
/// 62 usable addresses inside the lab's BGP range: the latency trials' Services.
const POOL_V4_ADDRESSES: &str = "203.0.113.64/26";
const POOL_V6: &str = "bench-v6";
/// Room for 65,536 Services inside the lab's IPv6 BGP range.
const POOL_V6_ADDRESSES: &str = "2001:db8:3::/112";
const V4_ROUTERS: [RouterKind; 2] = [RouterKind::Frr, RouterKind::Bird];
const V6_ROUTERS: [RouterKind; 3] = [RouterKind::Bird, RouterKind::Frr, RouterKind::Gobgp];
const NODES: [usize; 3] = [1, 2, 3];
const CREATE_CONCURRENCY: usize = 32;
const POLL: Duration = Duration::from_millis(5);
/// Waiting longer than this for anything counts as a failed run.
const GIVE_UP: Duration = Duration::from_secs(600);

struct Options {
    trials: usize,
    services: usize,
    rounds: usize,
    speaker: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        trials: 30,
        services: 10_000,
        rounds: 10,
        speaker: measure::binary_next_to_bench("ferrolb-speaker")?,
    };
    for (name, value) in measure::named_args()? {
        match name.as_str() {
            "--trials" => options.trials = value.parse()?,
            "--services" => options.services = value.parse()?,
            "--rounds" => options.rounds = value.parse()?,
            "--speaker" => options.speaker = value.into(),
            other => bail!("unknown argument {other}"),
        }
    }
    if options.trials == 0 || options.trials > 60 {
        bail!("--trials must be 1..=60 (the IPv4 pool has 62 addresses)");
    }
    Ok(options)
}

fn peer_name(kind: RouterKind, v6: bool) -> String {
    format!("{kind}-{}", if v6 { "v6" } else { "v4" })
}

/// Pools, one advertisement per family (IPv4 to FRR and BIRD, IPv6 to all three) and the peers.
fn objects(topology: &Topology) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for (pool, addresses, routers) in [
        (POOL_V4, POOL_V4_ADDRESSES, &V4_ROUTERS[..]),
        (POOL_V6, POOL_V6_ADDRESSES, &V6_ROUTERS[..]),
    ] {
        let v6 = pool == POOL_V6;
        let peers: Vec<String> = routers.iter().map(|&k| peer_name(k, v6)).collect();
        objects.push(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": pool},
            "spec": {"addresses": [addresses]},
        }));
        objects.push(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": pool},
            "spec": {"ipAddressPools": [pool], "peers": peers, "communities": ["64500:100"]},
        }));
        for &kind in routers {
            let asn = topology.router(kind)?.config().options.asn;
            let (v4, v6_address) = plan::router_addresses(kind);
            let address: IpAddr = if v6 { v6_address.into() } else { v4.into() };
            objects.push(json!({
                "apiVersion": "ferrolb.io/v1beta1", "kind": "BGPPeer",
                "metadata": {"name": peer_name(kind, v6)},
                "spec": {
                    "myASN": plan::NODE_ASN,
                    "peerASN": asn,
                    "peerAddress": address.to_string(),
                    "holdTime": "9s",
                    "connectTime": "1s",
                },
            }));
        }
    }
    Ok(objects)
}

async fn create(client: &kube::Client, object: &Value) -> anyhow::Result<()> {
    let manifest = ferrolb_lab::cluster::Manifest {
        source: PathBuf::from("tests/benches/bgp_service.rs"),
        object: object.clone(),
    };
    ferrolb_lab::cluster::apply_manifest(client, &manifest, ferrolb_lab::cluster::Persist::Store)
        .await
        .with_context(|| format!("applying {}", object["metadata"]["name"]))?;
    Ok(())
}

/// A Service `name` in `family` with a ready endpoint on node 1 (its EndpointSlice first, so the
/// speakers never see the Service without one), optionally asking for `ip`.
fn workload(
    topology: &Topology,
    name: &str,
    family: &str,
    ip: Option<IpAddr>,
) -> anyhow::Result<(Service, EndpointSlice)> {
    let mut service = workload::load_balancer(
        NAMESPACE,
        name,
        json!({LABEL: "true"}),
        json!({
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": [family],
            "externalTrafficPolicy": "Cluster",
            // The node-port range would run out long before 10,000 Services.
            "allocateLoadBalancerNodePorts": false,
        }),
    );
    if let Some(ip) = ip {
        service["metadata"]["annotations"] = json!({"ferrolb.io/loadBalancerIPs": ip.to_string()});
    }
    let node = topology.node(1)?;
    let slice = workload::endpoint_slice(
        NAMESPACE,
        name,
        "bench",
        family,
        &[node],
        json!({LABEL: "true"}),
    );
    Ok((
        serde_json::from_value(service)?,
        serde_json::from_value(slice)?,
    ))
}

fn start_speakers(
    lab: &mut Lab,
    options: &SpeakerOptions,
    label: &str,
) -> anyhow::Result<Vec<NsProcess>> {
    NODES
        .iter()
        .map(|&i| Ok(binaries::start_speaker(lab, i, label, options)?))
        .collect()
}

/// Waits until `kind` has an established session with every node over `v6` or IPv4.
fn wait_sessions(topology: &Topology, kind: RouterKind, v6: bool) -> anyhow::Result<()> {
    let nodes: BTreeSet<IpAddr> = NODES
        .iter()
        .map(|&i| -> IpAddr {
            if v6 {
                plan::node_v6(i).into()
            } else {
                plan::node_v4(i).into()
            }
        })
        .collect();
    ferrolb_lab::netns::wait_for(
        &format!("{kind}: sessions with {nodes:?} up"),
        Duration::from_secs(60),
        || {
            let sessions = topology.router(kind).ok()?.sessions().ok()?;
            let up: BTreeSet<IpAddr> = sessions
                .iter()
                .filter(|s| s.established)
                .map(|s| s.peer)
                .collect();
            nodes.is_subset(&up).then_some(())
        },
    )?;
    Ok(())
}

/// How many BGP paths `kind` holds for exactly `prefix` (FRR and BIRD).
fn paths(topology: &Topology, kind: RouterKind, prefix: &str) -> anyhow::Result<usize> {
    match kind {
        RouterKind::Frr => {
            let prefix: ipnet::IpNet = prefix.parse()?;
            Ok(rib_wait::frr_prefix_paths(topology, prefix).len())
        }
        RouterKind::Bird => {
            // A filter, not `show route PREFIX`: birdc fails on a network it does not hold.
            let out = rib_wait::birdc(
                topology,
                &["show", "route", "where", "net", "=", prefix, "count"],
            )?;
            rib_wait::bird_route_count(&out).map_err(anyhow::Error::msg)
        }
        other => bail!("no per-prefix reader for {other}"),
    }
}

/// Polls `kind` for `prefix` from `start`: (first path, all of `want` paths).
fn time_paths(
    topology: &Topology,
    kind: RouterKind,
    prefix: &str,
    want: usize,
    start: Instant,
) -> anyhow::Result<(Duration, Duration)> {
    let mut first = None;
    loop {
        let polled = Instant::now();
        let count = paths(topology, kind, prefix)?;
        let at = start.elapsed();
        if count > 0 && first.is_none() {
            first = Some(at);
        }
        if count >= want {
            return Ok((first.unwrap_or(at), at));
        }
        if at > GIVE_UP {
            bail!("{prefix} at {kind}: {count} of {want} paths after {GIVE_UP:?}");
        }
        thread::sleep(POLL.saturating_sub(polled.elapsed()));
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    if !options.speaker.exists() {
        bail!(
            "{} missing: build it with `cargo build --release -p ferrolb-speaker`",
            options.speaker.display()
        );
    }
    let mut lab = measure::start_lab().await?;
    let result = run(&mut lab, &options).await;
    lab.destroy().await?;
    result
}

async fn run(lab: &mut Lab, options: &Options) -> anyhow::Result<()> {
    let client = lab.client()?;
    binaries::write_membership_secret(&client, NAMESPACE, SECRET, KEY).await?;
    for object in objects(lab.topology()?)? {
        create(&client, &object).await?;
    }
    let mut controller = binaries::start_controller(lab, "bench-1", NAMESPACE, "ferrolb-bench")?;
    let speaker_options = SpeakerOptions {
        namespace: NAMESPACE.into(),
        membership_secret: SECRET.into(),
        log_level: "info".into(),
        program: Some(options.speaker.clone()),
        ..SpeakerOptions::default()
    };
    let mut speakers = start_speakers(lab, &speaker_options, "bench-1")?;
    println!("speaker: {}", options.speaker.display());
    let topology = lab.topology()?;
    for kind in V4_ROUTERS {
        wait_sessions(topology, kind, false)?;
    }
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);

    // 1. Service created -> prefix at FRR and BIRD.
    let mut frr = (Vec::new(), Vec::new());
    let mut bird = (Vec::new(), Vec::new());
    for trial in 0..options.trials {
        let ip = Ipv4Addr::new(203, 0, 113, 65 + trial as u8);
        let prefix = format!("{ip}/32");
        let (service, slice) = workload(
            topology,
            &format!("lat-{trial:02}"),
            "IPv4",
            Some(ip.into()),
        )?;
        slices.create(&PostParams::default(), &slice).await?;
        let start = Instant::now();
        services.create(&PostParams::default(), &service).await?;
        let (at_frr, at_bird) = thread::scope(|scope| {
            let frr =
                scope.spawn(|| time_paths(topology, RouterKind::Frr, &prefix, NODES.len(), start));
            let bird =
                scope.spawn(|| time_paths(topology, RouterKind::Bird, &prefix, NODES.len(), start));
            (frr.join(), bird.join())
        });
        let at_frr = at_frr.map_err(|_| anyhow::anyhow!("FRR poller panicked"))??;
        let at_bird = at_bird.map_err(|_| anyhow::anyhow!("BIRD poller panicked"))??;
        eprintln!(
            "trial {trial}: {prefix} at FRR {:?} (all {:?}), at BIRD {:?} (all {:?})",
            at_frr.0, at_frr.1, at_bird.0, at_bird.1
        );
        frr.0.push(at_frr.0);
        frr.1.push(at_frr.1);
        bird.0.push(at_bird.0);
        bird.1.push(at_bird.1);
    }
    // The pollers' resolution: how long one query of each router takes.
    for kind in V4_ROUTERS {
        let queried = Instant::now();
        for _ in 0..10 {
            paths(topology, kind, "203.0.113.65/32")?;
        }
        println!(
            "one {kind} query takes {:.1?} (mean of 10)",
            queried.elapsed() / 10
        );
    }
    measure::report("Service created -> first path at FRR", &frr.0);
    measure::report("Service created -> 3 nodes' paths at FRR", &frr.1);
    measure::report("Service created -> first path at BIRD", &bird.0);
    measure::report("Service created -> 3 nodes' paths at BIRD", &bird.1);

    // 2. Many IPv6 Services, created while no speaker runs; then the speakers' memory.
    for speaker in &mut speakers {
        speaker.stop();
    }
    // The API server is the bottleneck of the creates: the controller's writes wait too.
    controller.stop();
    let count = options.services;
    let created = Instant::now();
    futures::stream::iter(0..count)
        .map(|index| {
            let (services, slices) = (services.clone(), slices.clone());
            async move {
                let (service, slice) =
                    workload(topology, &format!("scale-{index:05}"), "IPv6", None)?;
                slices.create(&PostParams::default(), &slice).await?;
                services.create(&PostParams::default(), &service).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    println!(
        "created {count} IPv6 Services and EndpointSlices in {:.1?}",
        created.elapsed()
    );
    let _controller = binaries::start_controller(lab, "bench-2", NAMESPACE, "ferrolb-bench")?;
    let assigned = Instant::now();
    loop {
        let list = services.list(&ListParams::default().labels(LABEL)).await?;
        let with_ip = list
            .items
            .iter()
            .filter(|s| {
                s.spec
                    .as_ref()
                    .and_then(|s| s.ip_families.as_ref())
                    .is_some_and(|f| f.iter().any(|f| f == "IPv6"))
                    && s.status
                        .as_ref()
                        .and_then(|s| s.load_balancer.as_ref())
                        .and_then(|lb| lb.ingress.as_ref())
                        .is_some_and(|i| !i.is_empty())
            })
            .count();
        if with_ip >= count {
            break;
        }
        if assigned.elapsed() > GIVE_UP {
            bail!("{with_ip} of {count} IPv6 Services assigned after {GIVE_UP:?}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "controller started -> all {count} IPv6 Services assigned: {:.1?}",
        assigned.elapsed()
    );
    let started = Instant::now();
    let speakers = start_speakers(lab, &speaker_options, "bench-2")?;
    let topology = lab.topology()?;
    let statuses: Api<SpeakerStatus> = Api::all(client.clone());
    let node1 = topology.node(1)?.name.clone();
    let v6_peers: Vec<String> = V6_ROUTERS.iter().map(|&k| peer_name(k, true)).collect();
    loop {
        let sent = statuses
            .get(&node1)
            .await
            .ok()
            .and_then(|s| s.status)
            .map(|status| {
                status
                    .bgp_sessions
                    .iter()
                    .filter(|s| {
                        v6_peers.contains(&s.peer)
                            && s.state == BgpState::Established
                            && usize::try_from(s.prefixes_sent).unwrap_or(0) >= count
                    })
                    .count()
            })
            .unwrap_or(0);
        if sent == v6_peers.len() && bird_count(topology)? >= count {
            break;
        }
        if started.elapsed() > GIVE_UP {
            bail!("node 1 has not sent {count} prefixes to its 3 IPv6 peers after {GIVE_UP:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "speakers started -> node 1 reports {count} prefixes sent to 3 peers and BIRD holds them: {:.1?}",
        started.elapsed()
    );
    // A moment for the last status writes and allocator frees to settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (index, speaker) in NODES.iter().zip(&speakers) {
        let (rss, hwm) = measure::memory(speaker.pid())?;
        println!(
            "speaker of node {index} (pid {}), {count} IPv6 Services + EndpointSlices, \
             {} IPv4 Services: VmRSS {rss} KiB ({:.1} MiB), VmHWM {hwm} KiB ({:.1} MiB)",
            speaker.pid(),
            options.trials,
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }

    // 3. BIRD's session with node 1 restarted: Established -> every prefix at BIRD.
    let protocol = format!("node{}_v6", 1);
    let mut samples = Vec::with_capacity(options.rounds);
    for round in 1..=options.rounds {
        rib_wait::birdc(topology, &["disable", &protocol])?;
        ferrolb_lab::netns::wait_for(
            "BIRD dropped node 1's routes",
            Duration::from_secs(60),
            || (bird_count(topology).ok()? == 0).then_some(()),
        )?;
        rib_wait::birdc(topology, &["enable", &protocol])?;
        let asked = Instant::now();
        let up = loop {
            let out = rib_wait::birdc(topology, &["show", "protocols", &protocol])?;
            if out.contains("Established") {
                break Instant::now();
            }
            if asked.elapsed() > Duration::from_secs(60) {
                bail!("BIRD's {protocol} not Established after 60 s: {out}");
            }
            thread::sleep(Duration::from_millis(2));
        };
        loop {
            let polled = Instant::now();
            if bird_count(topology)? >= count {
                break;
            }
            if up.elapsed() > GIVE_UP {
                bail!("BIRD: fewer than {count} prefixes {GIVE_UP:?} after Established");
            }
            thread::sleep(Duration::from_millis(20).saturating_sub(polled.elapsed()));
        }
        let took = up.elapsed();
        eprintln!("round {round}: {count} prefixes at BIRD {took:?} after Established");
        samples.push(took);
    }
    measure::report(
        &format!("{count} prefixes at BIRD from Established (speaker binary)"),
        &samples,
    );
    drop(speakers);
    Ok(())
}

/// BIRD's count of routes from node 1's IPv6 session.
fn bird_count(topology: &Topology) -> anyhow::Result<usize> {
    let out = rib_wait::birdc(
        topology,
        &["show", "route", "protocol", "node1_v6", "count"],
    )?;
    rib_wait::bird_route_count(&out).map_err(anyhow::Error::msg)
}
