//! Layer-2 mode end to end, the scenarios of issue 5's acceptance beyond reach and SIGKILL (those
//! are in `speaker_l2.rs`): against the lab's real kube-apiserver, the controller and three
//! `ferrolb-speaker` processes (one per node namespace), observed from the L2 client and on the
//! wire (SPEC §5).
//!
//! - exactly one node answers ARP and NDP for a Service IP in steady state (packet capture);
//! - the IP moves when the owner's segment link goes down, and when the owner is cut off entirely
//!   (segment and management frames dropped while its speaker keeps running), IPv4 and IPv6,
//!   measured by a client-side prober (a request every 10 ms);
//! - Services sharing an IP have one owner;
//! - an L2Advertisement's `nodeSelectors`, `preferredNodes` and `interfaces` decide the owner.
//!
//! Tests share one lab and hold its lock, each with its own controller and speakers ([`l2_lab`]).

mod common;
mod l2_lab;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_lab::binaries::SpeakerOptions;
use ferrolb_lab::capture::{FrameKind, Mac};
use ferrolb_lab::l2_mode::{self, NAMESPACE};
use ferrolb_lab::probe::{self, Prober};
use ferrolb_lab::topology::Client;
use ferrolb_lab::workload;
use l2_lab::{L2Test, NODES, WAIT};
use serde_json::{Value, json};

/// Every object a test creates carries this label.
const LABEL: &str = "ferrolb.io/e2e-l2-scenarios";
const POOL: &str = "l2-scenarios";
const ADVERTISEMENT: &str = "l2-scenarios";
/// Issue 5: the client reaches the new owner within a second of the fault.
const FAILOVER_BOUND: Duration = Duration::from_secs(1);
const PROBE_PERIOD: Duration = Duration::from_millis(10);
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Starts the controller and the speakers with the L2 pool and an advertisement of
/// `advertisement` spec.
async fn start(test: &str, advertisement: Value) -> L2Test {
    let scenario = L2Test::start(
        &format!("scn-{test}"),
        LABEL,
        POOL,
        SpeakerOptions::default(),
    )
    .await;
    scenario.advertise(ADVERTISEMENT, advertisement).await;
    scenario
}

impl L2Test {
    /// A Service of one family with a ready endpoint on every node; returns its IP.
    async fn service(&self, name: &str, family: &str, extra: Value) -> IpAddr {
        let mut spec = json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": [family]});
        let mut metadata = json!({});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                if key == "metadata" {
                    metadata = value.clone();
                } else {
                    spec.insert(key.clone(), value.clone());
                }
            }
        }
        let families: Vec<String> = spec["ipFamilies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        for family in families {
            self.set_endpoints(name, &family, &NODES).await;
        }
        self.create_service(name, spec, metadata).await
    }

    /// Waits until `node` is the one owner of `ip`.
    async fn wait_owner_is(&self, ip: IpAddr, node: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let owner = self.owner(ip).await;
            if owner == node {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ip} is owned by {owner}, not {node}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The lab nodes other than `name`, by index.
    fn others(&self, name: &str) -> Vec<usize> {
        NODES
            .into_iter()
            .filter(|i| self.node_name(*i) != name)
            .collect()
    }

    /// Applies `fault` to the owner of `ip` while probing it from the L2 client every 10 ms;
    /// asserts the client reaches another node within [`FAILOVER_BOUND`] and returns it.
    async fn fail_owner(&self, ip: IpAddr, fault: impl FnOnce(&L2Test, usize)) -> String {
        let owner = self.owner(ip).await;
        self.wait_members_alive().await;
        let topology = self.lab.topology().expect("topology");
        let prober = Prober::start(
            topology.client_ns(Client::L2).expect("client"),
            SocketAddr::new(ip, workload::SERVICE_PORT),
            PROBE_PERIOD,
            PROBE_TIMEOUT,
        )
        .expect("prober");
        let baseline = Instant::now();
        while !prober
            .probes()
            .iter()
            .any(|p| p.answer.as_deref() == Some(owner.as_str()))
        {
            assert!(
                baseline.elapsed() < WAIT,
                "{owner} never answered the prober"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let at = Instant::now();
        fault(self, self.node_index(&owner));
        let moved = loop {
            if let Some(moved) = probe::takeover(&prober.probes(), at, &owner) {
                break Some(moved);
            }
            if at.elapsed() > FAILOVER_BOUND + PROBE_TIMEOUT {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let probes = prober.stop();
        let new = probes
            .iter()
            .filter(|p| p.sent >= at)
            .find_map(|p| p.answer.clone().filter(|node| *node != owner));
        println!(
            "{ip}: {owner} -> {new:?}, takeover {moved:?}, outage {:?}",
            probe::outage(&probes, at, &owner)
        );
        let moved = moved.unwrap_or_else(|| {
            panic!(
                "{ip}: no node but {owner} answered within {:?} of the fault",
                FAILOVER_BOUND + PROBE_TIMEOUT
            )
        });
        assert!(
            moved <= FAILOVER_BOUND,
            "{ip}: the client reached another node {moved:?} after the fault"
        );
        new.expect("a new node answered")
    }
}

fn parse_mac(text: &str) -> Mac {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|part| u8::from_str_radix(part, 16).expect("MAC octet"))
        .collect();
    bytes.try_into().expect("six octets")
}

fn default_advertisement() -> Value {
    json!({"ipAddressPools": [POOL]})
}

fn hostname_selector(node: &str) -> Value {
    json!({"matchLabels": {"kubernetes.io/hostname": node}})
}

#[tokio::test]
async fn only_the_owner_answers_arp_and_ndp_in_steady_state() {
    let scenario = start("capture", default_advertisement()).await;
    let v4 = scenario.service("cap-v4", "IPv4", json!({})).await;
    let v6 = scenario.service("cap-v6", "IPv6", json!({})).await;
    let owner_v4 = scenario.node_index(&scenario.owner(v4).await);
    let owner_v6 = scenario.node_index(&scenario.owner(v6).await);
    let interface = scenario.segment_interface();
    let topology = scenario.lab.topology().expect("topology");
    let capture = topology.capture_segment("steady-state").expect("capture");
    let client = topology.client_ns(Client::L2).expect("client");
    client
        .exec(&["arping", "-c", "3", "-I", &interface, &v4.to_string()])
        .expect("every ARP request answered");
    // Three solicitations, each waiting for every answer (ndisc6 stops soliciting once answered).
    for _ in 0..3 {
        client
            .exec(&[
                "ndisc6",
                "-n",
                "-m",
                "-r",
                "1",
                "-w",
                "300",
                &v6.to_string(),
                &interface,
            ])
            .expect("Neighbor Solicitation answered");
    }
    let frames = capture.stop().expect("capture read");

    let mut arp_answerers = Vec::new();
    let mut arp_replies = 0;
    let mut na_answerers = Vec::new();
    let mut nas = 0;
    for frame in &frames {
        match &frame.kind {
            FrameKind::Arp { op, sender_ip, .. } if IpAddr::V4(*sender_ip) == v4 => {
                arp_answerers.push(frame.eth_src);
                arp_replies += usize::from(*op == 2);
            }
            FrameKind::NeighborAdvertisement { target, .. } if IpAddr::V6(*target) == v6 => {
                na_answerers.push(frame.eth_src);
                nas += 1;
            }
            _ => {}
        }
    }
    arp_answerers.dedup();
    na_answerers.dedup();
    assert!(arp_replies >= 3, "{arp_replies} ARP replies for {v4}");
    assert_eq!(
        arp_answerers,
        [parse_mac(&scenario.segment_mac(owner_v4))],
        "only the owner (node {owner_v4}) claims {v4}"
    );
    assert!(nas >= 3, "{nas} Neighbor Advertisements for {v6}");
    assert_eq!(
        na_answerers,
        [parse_mac(&scenario.segment_mac(owner_v6))],
        "only the owner (node {owner_v6}) claims {v6}"
    );
}

/// Link-down failover for one family; the link comes back and one owner remains.
async fn link_down_moves_the_ip(test: &str, family: &str) {
    let scenario = start(test, default_advertisement()).await;
    let ip = scenario
        .service(&format!("{test}-web"), family, json!({}))
        .await;
    let old = scenario.owner(ip).await;
    let old_index = scenario.node_index(&old);
    let new = scenario
        .fail_owner(ip, |s, index| {
            s.lab
                .topology()
                .expect("topology")
                .set_node_link(index, false)
                .expect("link down");
        })
        .await;
    assert_ne!(new, old);
    scenario
        .lab
        .topology()
        .expect("topology")
        .set_node_link(old_index, true)
        .expect("link up");
    // Back together, the speakers agree on one owner again.
    scenario.owner(ip).await;
}

#[tokio::test]
async fn ipv4_owner_link_down_moves_the_ip_within_a_second() {
    link_down_moves_the_ip("link-v4", "IPv4").await;
}

#[tokio::test]
async fn ipv6_owner_link_down_moves_the_ip_within_a_second() {
    link_down_moves_the_ip("link-v6", "IPv6").await;
}

#[tokio::test]
async fn owner_cut_off_entirely_loses_both_families_and_one_owner_remains_after_it_returns() {
    let scenario = start("cutoff", default_advertisement()).await;
    // One dual-stack Service: both IPs have one owner, so cutting it moves both.
    let v4 = scenario
        .service(
            "cut-web",
            "IPv4",
            json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
        )
        .await;
    let api: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(scenario.client.clone(), NAMESPACE);
    let deadline = Instant::now() + WAIT;
    let v6: IpAddr = loop {
        let ips: Vec<IpAddr> = api
            .get("cut-web")
            .await
            .ok()
            .and_then(|s| s.status?.load_balancer?.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip?.parse().ok())
            .collect();
        if let Some(v6) = ips.into_iter().find(IpAddr::is_ipv6) {
            break v6;
        }
        assert!(Instant::now() < deadline, "cut-web got no IPv6 address");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let old = scenario.owner(v4).await;
    assert_eq!(scenario.owner(v6).await, old, "one owner for both families");
    let old_index = scenario.node_index(&old);
    let new = scenario
        .fail_owner(v4, |s, index| {
            s.lab
                .topology()
                .expect("topology")
                .isolate_node(index)
                .expect("isolate");
        })
        .await;
    assert_ne!(new, old);
    // The IPv6 address went with it (both are one group).
    let deadline = Instant::now() + WAIT;
    while l2_mode::answering_node(&scenario.lab, v6, "0.5").as_deref() != Some(new.as_str()) {
        assert!(
            Instant::now() < deadline,
            "{v6} did not follow {v4} to {new}: announced by {:?}, client neighbours {:?}",
            l2_mode::status_owners(&scenario.client, v6).await,
            ferrolb_lab::topology::neighbours(
                scenario
                    .lab
                    .topology()
                    .expect("topology")
                    .client_ns(Client::L2)
                    .expect("client")
            )
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scenario
        .lab
        .topology()
        .expect("topology")
        .reconnect_node(old_index)
        .expect("reconnect");
    // The returning node believed it still owned both: after it hears the others again, exactly
    // one node announces each IP, and the client follows it without re-resolving: when the
    // returning node wins the election again it never lost the IPs in its own view, so it is its
    // re-announcement on hearing the others (docs/layer2-decisions.md) that moves the client's
    // neighbour entry off the interim owner.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut seen = Vec::new();
        for ip in [v4, v6] {
            let owners = l2_mode::status_owners(&scenario.client, ip)
                .await
                .unwrap_or_default();
            seen.push((owners, l2_mode::answering_node(&scenario.lab, ip, "1")));
        }
        let agreed = |(owners, answering): &(Vec<String>, Option<String>)| matches!(&owners[..], [one] if Some(one) == answering.as_ref());
        if seen.iter().all(agreed) && seen[0].1 == seen[1].1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the return, (SpeakerStatus owners, answering) of {v4} and {v6}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn services_sharing_an_ip_have_one_owner() {
    let scenario = start("shared", default_advertisement()).await;
    // Four pairs: were the owner chosen per Service, some pair would almost surely split.
    for (pair, last_octet) in (200..204).enumerate() {
        let ip = format!("192.0.2.{last_octet}");
        let annotations = json!({"annotations": {
            "ferrolb.io/allow-shared-ip": format!("pair-{pair}"),
            "ferrolb.io/loadBalancerIPs": ip,
        }});
        let first = scenario
            .service(
                &format!("share-{pair}-a"),
                "IPv4",
                json!({"metadata": annotations}),
            )
            .await;
        let second = scenario
            .service(
                &format!("share-{pair}-b"),
                "IPv4",
                json!({
                    "metadata": annotations,
                    "ports": [{"name": "alt", "port": 8081, "protocol": "TCP"}],
                }),
            )
            .await;
        assert_eq!(first.to_string(), ip);
        assert_eq!(second, first, "the pair shares {ip}");
    }
    for last_octet in 200..204 {
        let ip: IpAddr = format!("192.0.2.{last_octet}").parse().expect("ip");
        let owner = scenario.owner(ip).await;
        let pair = last_octet - 200;
        // Both Services of the pair are announced, by the owner only.
        let deadline = Instant::now() + WAIT;
        loop {
            let mut seen: Vec<(String, String)> = l2_mode::announcements(&scenario.client)
                .await
                .expect("SpeakerStatuses")
                .into_iter()
                .filter(|a| a.ip == ip.to_string())
                .map(|a| (a.node, a.service))
                .collect();
            seen.sort();
            seen.dedup();
            let wanted = vec![
                (owner.clone(), format!("{NAMESPACE}/share-{pair}-a")),
                (owner.clone(), format!("{NAMESPACE}/share-{pair}-b")),
            ];
            if seen == wanted {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{ip}: announced as {seen:?}, wanted {wanted:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn node_selectors_decide_which_nodes_may_own_the_ip() {
    let scenario = start("nodesel", default_advertisement()).await;
    let ip = scenario.service("sel-web", "IPv4", json!({})).await;
    let free = scenario.owner(ip).await;
    // Each step selects only a node that does not own the IP yet: it must move there.
    let mut current = free;
    for _ in 0..2 {
        let target = scenario.node_name(scenario.others(&current)[0]);
        scenario
            .advertise(
                ADVERTISEMENT,
                json!({
                    "ipAddressPools": [POOL],
                    "nodeSelectors": [hostname_selector(&target)],
                }),
            )
            .await;
        scenario.wait_owner_is(ip, &target).await;
        current = target;
    }
}

#[tokio::test]
async fn preferred_nodes_win_over_the_hash_and_the_highest_weight_wins() {
    let scenario = start("preferred", default_advertisement()).await;
    let ip = scenario.service("pref-web", "IPv4", json!({})).await;
    let free = scenario.owner(ip).await;
    let others = scenario.others(&free);
    let (first, second) = (scenario.node_name(others[0]), scenario.node_name(others[1]));
    scenario
        .advertise(
            ADVERTISEMENT,
            json!({
                "ipAddressPools": [POOL],
                "preferredNodes": [{"weight": 10, "selector": hostname_selector(&first)}],
            }),
        )
        .await;
    scenario.wait_owner_is(ip, &first).await;
    // A stronger preference elsewhere wins, wherever it stands in the list.
    scenario
        .advertise(
            ADVERTISEMENT,
            json!({
                "ipAddressPools": [POOL],
                "preferredNodes": [
                    {"weight": 90, "selector": hostname_selector(&second)},
                    {"weight": 10, "selector": hostname_selector(&first)},
                ],
            }),
        )
        .await;
    scenario.wait_owner_is(ip, &second).await;
}

#[tokio::test]
async fn advertisement_interfaces_replace_the_subnet_rule() {
    // An IP outside every node's subnet (the lab's kube-proxy stand-in serves the BGP range
    // too): only an advertisement that names an interface makes a node eligible for it.
    const OUTSIDE: &str = "203.0.113.77";
    const POOL_OUTSIDE: &str = "l2-scenarios-outside";
    let scenario = start("interfaces", json!({"ipAddressPools": [POOL_OUTSIDE]})).await;
    l2_mode::apply_pool(&scenario.client, LABEL, POOL_OUTSIDE, &[OUTSIDE])
        .await
        .expect("pool");
    let segment = scenario.segment_interface();
    let topology = scenario.lab.topology().expect("topology");
    let client = topology.client_ns(Client::L2).expect("client");
    // The client reaches the address on the segment, as on-link.
    client
        .ip(&[
            "route",
            "replace",
            &format!("{OUTSIDE}/32"),
            "dev",
            &segment,
        ])
        .expect("client route");
    let ip = scenario
        .service(
            "if-web",
            "IPv4",
            json!({"metadata": {"annotations": {"ferrolb.io/address-pool": POOL_OUTSIDE}}}),
        )
        .await;
    assert_eq!(ip.to_string(), OUTSIDE);
    scenario
        .install
        .wait_members_alive(&scenario.lab, WAIT)
        .await
        .expect("members");
    // Without `interfaces`, no node has a subnet that holds it: nobody announces.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        l2_mode::status_owners(&scenario.client, ip)
            .await
            .expect("statuses"),
        Vec::<String>::new()
    );
    assert_eq!(l2_mode::answering_node(&scenario.lab, ip, "1"), None);

    let mgmt = topology.node(1).expect("node").mgmt_if.clone();
    for (interface, reachable) in [(&segment, true), (&mgmt, false)] {
        scenario
            .advertise(
                ADVERTISEMENT,
                json!({"ipAddressPools": [POOL_OUTSIDE], "interfaces": [interface]}),
            )
            .await;
        let deadline = Instant::now() + WAIT;
        let owner = loop {
            let on: Vec<_> = l2_mode::announcements(&scenario.client)
                .await
                .expect("SpeakerStatuses")
                .into_iter()
                .filter(|a| a.ip == OUTSIDE)
                .collect();
            if let [one] = &on[..]
                && &one.interface == interface
            {
                break one.node.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{OUTSIDE} announced as {on:?}, wanted on {interface}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        client.ip(&["neigh", "flush", "all"]).expect("flush");
        if reachable {
            assert_eq!(scenario.owner(ip).await, owner);
        } else {
            // Announced on the management network only: nobody answers on the segment.
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(l2_mode::answering_node(&scenario.lab, ip, "1"), None);
        }
    }
    client
        .ip(&["route", "del", &format!("{OUTSIDE}/32"), "dev", &segment])
        .expect("client route removed");
}
