//! Benchmark (SPEC §9, "10,000 prefixes to a BGP peer after session up", and the speaker's memory):
//! ferrolb's peer set in node 1 with IPv6 sessions to the lab's BIRD, FRR and GoBGP.
//!
//! 1. Time to BIRD: the session with BIRD is Established and holds nothing; the clock starts when
//!    `PeerSet::apply` is called with N /128 prefixes (from 2001:db8:3::/64, the only documentation
//!    space with room for 10,000 host routes) and stops when `birdc show route protocol
//!    node1_v6 count` reports all N (polled about every 20 ms). All are withdrawn before the next
//!    trial.
//!    A second series stops the BIRD peer and starts it again with the N prefixes wanted from the
//!    start: the time from the session's Established (its `since`) to all N at BIRD.
//! 2. Memory: the same N prefixes to all three routers; once each router's RIB holds all of them,
//!    the VmRSS / VmHWM of this process (`/proc/self/status`), next to the figure before the routes
//!    were applied. This process is more than a speaker: see `docs/BENCHMARKS.md` for what the
//!    figure includes.
//!
//! Not part of `cargo test`: run as root with
//! `cargo bench -p ferrolb-lab --profile dev --bench bgp_scale -- [--trials N] [--prefixes N]`.

#[path = "measure/mod.rs"]
mod measure;
#[path = "../tests/node_runtime/mod.rs"]
mod node_runtime;
#[path = "../tests/peer_set_lab/mod.rs"]
mod peer_set_lab;
#[path = "../tests/rib_wait/mod.rs"]
mod rib_wait;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use ferrolb_config::crd::speaker_status::BgpState;
use ferrolb_lab::netns;
use ferrolb_lab::routers::{Family as RibFamily, RouterKind, RouterOptions};
use ferrolb_lab::topology::{Topology, TopologyOptions, plan};
use ferrolb_speaker::bgp::packet::Community;
use ferrolb_speaker::bgp::rib_out::{RouteAttributes, Routes};
use ipnet::{IpNet, Ipv6Net};
use peer_set_lab::{NODE, NodePeerSet, config, peer_yaml, router_address};

const ROUTERS: [RouterKind; 3] = [RouterKind::Bird, RouterKind::Frr, RouterKind::Gobgp];
const POLL: Duration = Duration::from_millis(20);
const SESSION_UP: Duration = Duration::from_secs(60);
/// A trial slower than this fails the run.
const GIVE_UP: Duration = Duration::from_secs(120);

fn main() -> anyhow::Result<()> {
    let mut trials = 10usize;
    let mut prefixes = 10_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--trials" => trials = args.next().context("--trials N")?.parse()?,
            "--prefixes" => prefixes = args.next().context("--prefixes N")?.parse()?,
            // cargo bench passes --bench to harness=false targets.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    let defaults = TopologyOptions::default();
    let topo = Topology::up(TopologyOptions {
        nodes: 1,
        routers: ROUTERS.to_vec(),
        backend: Some(PathBuf::from(env!("CARGO_BIN_EXE_lab-backend"))),
        bird: RouterOptions {
            asn: plan::NODE_ASN,
            ..defaults.bird.clone()
        },
        ..defaults
    })?;
    let mut yaml = String::new();
    for kind in ROUTERS {
        let asn = topo.router(kind)?.config().options.asn;
        let name = peer(kind);
        yaml.push_str(&peer_yaml(
            &name,
            router_address(kind, false),
            Some(asn),
            "",
        ));
    }
    let cfg = config(&yaml);
    let none = BTreeMap::new();
    let empty: BTreeMap<String, Routes> =
        ROUTERS.iter().map(|&k| (peer(k), Routes::new())).collect();
    let mut node = NodePeerSet::start(&topo);
    let errors = node.apply(&cfg, &empty, &none);
    if !errors.is_empty() {
        bail!("apply: {errors:?}");
    }
    for kind in ROUTERS {
        let name = peer(kind);
        netns::wait_for(&format!("{name} Established"), SESSION_UP, || {
            (node.session(&name)?.state == BgpState::Established).then_some(())
        })?;
    }
    let announced = lb_routes(prefixes);

    // 1. Time until BIRD holds every prefix.
    let mut samples = Vec::with_capacity(trials);
    for trial in 1..=trials {
        let mut to_bird = empty.clone();
        to_bird.insert(peer(RouterKind::Bird), announced.clone());
        let start = Instant::now();
        node.apply(&cfg, &to_bird, &none);
        let took = wait_bird_count(&topo, prefixes, start)?;
        eprintln!("trial {trial}: {prefixes} prefixes at BIRD after {took:?}");
        samples.push(took);
        node.apply(&cfg, &empty, &none);
        wait_bird_count(&topo, 0, Instant::now())?;
    }
    measure::report(
        &format!("{prefixes} prefixes to BIRD on a running session"),
        &samples,
    );

    // 1b. The BIRD session starts with the prefixes already wanted: from Established to all.
    let bird = peer(RouterKind::Bird);
    let mut without_bird = empty.clone();
    without_bird.remove(&bird);
    let mut samples = Vec::with_capacity(trials);
    for trial in 1..=trials {
        node.apply(&cfg, &without_bird, &none);
        wait_bird_count(&topo, 0, Instant::now())?;
        let mut to_bird = without_bird.clone();
        to_bird.insert(bird.clone(), announced.clone());
        node.apply(&cfg, &to_bird, &none);
        // In-process status, read every 2 ms so BIRD polling starts right after Established.
        let asked = Instant::now();
        let since = loop {
            let session = node.session(&bird).context("BIRD peer listed")?;
            if let (BgpState::Established, Some(since)) = (session.state, &session.since) {
                break since.clone();
            }
            if asked.elapsed() > SESSION_UP {
                bail!("BIRD session not Established after {SESSION_UP:?}: {session:?}");
            }
            thread::sleep(Duration::from_millis(2));
        };
        wait_bird_count(&topo, prefixes, Instant::now())?;
        let took = SystemTime::now().duration_since(SystemTime::from(since.0))?;
        eprintln!("trial {trial}: {prefixes} prefixes at BIRD {took:?} after Established");
        samples.push(took);
    }
    measure::report(
        &format!("{prefixes} prefixes to BIRD from session Established"),
        &samples,
    );
    node.apply(&cfg, &empty, &none);
    wait_bird_count(&topo, 0, Instant::now())?;

    // 2. Memory with the prefixes sent to all three routers.
    let before = measure::memory(std::process::id())?;
    let to_all: BTreeMap<String, Routes> = ROUTERS
        .iter()
        .map(|&k| (peer(k), announced.clone()))
        .collect();
    drop(announced);
    node.apply(&cfg, &to_all, &none);
    drop(to_all);
    wait_bird_count(&topo, prefixes, Instant::now())?;
    for kind in ROUTERS {
        let name = peer(kind);
        netns::wait_for(
            &format!("{name}: {prefixes} prefixes sent"),
            GIVE_UP,
            || {
                let sent = node.session(&name)?.prefixes_sent;
                (usize::try_from(sent).ok()? >= prefixes).then_some(())
            },
        )?;
    }
    // Measured before reading the other routers' RIBs: their parsed tables live in this process.
    let after = measure::memory(std::process::id())?;
    for kind in [RouterKind::Frr, RouterKind::Gobgp] {
        netns::wait_for(&format!("{prefixes} prefixes at {kind}"), GIVE_UP, || {
            let routes = topo.router(kind).ok()?.routes(RibFamily::Ipv6).ok()?;
            let ours = routes
                .iter()
                .filter(|r| r.from_bgp && in_pool(r.prefix))
                .count();
            (ours >= prefixes).then_some(())
        })?;
    }
    let after_reading = measure::memory(std::process::id())?;
    println!(
        "VmRSS after parsing FRR's and GoBGP's tables: {} KiB",
        after_reading.0
    );
    let (bgp, _) = node.status();
    for session in &bgp {
        println!(
            "{}: {:?}, {} prefixes sent",
            session.peer, session.state, session.prefixes_sent
        );
    }
    println!(
        "process memory: VmRSS {} KiB before the routes (3 sessions up, nothing announced), \
         {} KiB with {prefixes} prefixes to 3 peers (+{} KiB); VmHWM {} KiB",
        before.0,
        after.0,
        after.0.saturating_sub(before.0),
        after.1
    );
    node.shutdown();
    Ok(())
}

fn peer(kind: RouterKind) -> String {
    format!("{kind}-v6")
}

/// `count` host routes from the BGP pool, with one community, as a BGPAdvertisement makes them.
fn lb_routes(count: usize) -> Routes {
    let pool: Ipv6Net = plan::BGP_POOL_V6.parse().expect("pool");
    let base = u128::from(pool.network());
    let attributes = RouteAttributes {
        communities: [Community::new(64500, 100)].into(),
        ..RouteAttributes::default()
    };
    (1..=count as u128)
        .map(|i| {
            let address = Ipv6Addr::from(base + i);
            let prefix = IpNet::new(IpAddr::V6(address), 128).expect("a /128");
            (prefix, attributes.clone())
        })
        .collect()
}

fn in_pool(prefix: IpNet) -> bool {
    let pool: IpNet = plan::BGP_POOL_V6.parse().expect("pool");
    pool.contains(&prefix)
}

/// Polls BIRD's count of routes from node 1 until it is `want`; the time since `start`.
fn wait_bird_count(topo: &Topology, want: usize, start: Instant) -> anyhow::Result<Duration> {
    let protocol = format!("node{NODE}_v6");
    loop {
        let polled = Instant::now();
        let out = rib_wait::birdc(topo, &["show", "route", "protocol", &protocol, "count"])?;
        let count = rib_wait::bird_route_count(&out).map_err(anyhow::Error::msg)?;
        if count == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > GIVE_UP {
            bail!("BIRD holds {count} of {want} prefixes after {GIVE_UP:?}");
        }
        thread::sleep(POLL.saturating_sub(polled.elapsed()));
    }
}
