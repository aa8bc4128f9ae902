//! The layer-2 driver on the wire (run as root): ferrolb's ARP/NDP driver runs inside lab node
//! namespaces, and the L2 client reaches LoadBalancer IPs through it. No Kubernetes: ownership is
//! handed to the drivers directly, as the election will later.
//!
//! Each driver runs on its own thread, which first enters the node's network namespace
//! (`setns(CLONE_NEWNET)` affects only the calling thread) and then runs a current-thread tokio
//! runtime there, so every socket the driver opens belongs to the node. Each test builds its own
//! topology (run-unique prefix); dropping it removes everything even when an assertion fails.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb_lab::capture::{Frame, FrameKind, Mac};
use ferrolb_lab::netns::NetNs;
use ferrolb_lab::topology::{self, Client, Node, Topology, TopologyOptions};
use ferrolb_speaker::l2::MacAddr;
use ferrolb_speaker::l2::announcer::AnnouncerConfig;
use ferrolb_speaker::l2::arp::ArpFrame;
use ferrolb_speaker::l2::driver::{
    Command, Driver, DriverCounters, DriverHandle, Event, Interfaces,
};
use ferrolb_speaker::l2::ndp::{NdpFrame, icmpv6_checksum};
use ferrolb_speaker::sys::packet_bind_address;
use nix::net::if_::if_nametoindex;
use nix::sched::{CloneFlags, setns};
use socket2::{Domain, Socket, Type};

/// From the lab's L2 LoadBalancer pool (192.0.2.192/27, 2001:db8:2::1:0/112).
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 1, 0x10);

fn url(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("http://{v4}/"),
        IpAddr::V6(v6) => format!("http://[{v6}]/"),
    }
}

fn lab(nodes: usize) -> Topology {
    Topology::up(TopologyOptions {
        nodes,
        routers: Vec::new(),
        backend: Some(PathBuf::from(env!("CARGO_BIN_EXE_lab-backend"))),
        ..TopologyOptions::default()
    })
    .expect("topology up")
}

fn namespace_path(ns: &NetNs) -> PathBuf {
    PathBuf::from("/run/netns").join(ns.name())
}

/// Moves the calling thread into the network namespace at `netns` (only this thread: setns(2)
/// with `CLONE_NEWNET` leaves the rest of the process where it is).
fn enter_namespace(netns: &Path) -> Result<(), String> {
    let ns = File::open(netns).map_err(|e| format!("open {}: {e}", netns.display()))?;
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {}: {e}", netns.display()))
}

/// A layer-2 driver running inside one node's namespace.
struct Speaker {
    interface: String,
    handle: Option<DriverHandle>,
    thread: Option<JoinHandle<()>>,
}

impl Speaker {
    fn start(node: &Node) -> Speaker {
        let (driver, handle) = Driver::new(AnnouncerConfig::default());
        let netns = namespace_path(&node.ns);
        let (entered_tx, entered) = std_mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = enter_namespace(&netns).and_then(|()| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("tokio runtime: {e}"))
            });
            match runtime {
                Ok(runtime) => {
                    let _ = entered_tx.send(Ok(()));
                    runtime.block_on(driver.run());
                }
                // The driver is dropped unrun: it must never open sockets outside the node.
                Err(error) => {
                    let _ = entered_tx.send(Err(error));
                }
            }
        });
        entered
            .recv()
            .expect("driver thread reports")
            .expect("driver thread entered the node namespace");
        Speaker {
            interface: node.segment_if.clone(),
            handle: Some(handle),
            thread: Some(thread),
        }
    }

    fn handle(&mut self) -> &mut DriverHandle {
        self.handle.as_mut().expect("speaker running")
    }

    fn command(&mut self, command: Command) {
        self.handle()
            .commands
            .send(command)
            .expect("driver running");
    }

    fn gain(&mut self, ip: impl Into<IpAddr>) {
        let interface = self.interface.clone();
        self.command(Command::Gained {
            ip: ip.into(),
            interface,
        });
    }

    fn lose(&mut self, ip: impl Into<IpAddr>) {
        let interface = self.interface.clone();
        self.command(Command::Lost {
            ip: ip.into(),
            interface,
        });
    }

    fn counters(&mut self) -> DriverCounters {
        *self.handle().counters.borrow()
    }

    /// Events until `done` holds for what was collected, or `timeout`.
    fn events_until(&mut self, timeout: Duration, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        while !done(&events) && Instant::now() < deadline {
            match self.handle().events.try_recv() {
                Ok(event) => events.push(event),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        events
    }

    /// Whether the published interface inventory satisfies `done` within `timeout`.
    fn interfaces_within(&mut self, timeout: Duration, done: impl Fn(&Interfaces) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.handle().interfaces.borrow()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the driver (its command channel closes) and waits for its thread.
    fn stop(&mut self) {
        self.handle = None;
        if let Some(thread) = self.thread.take() {
            thread.join().expect("driver thread did not panic");
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn mac_of(node: &Node) -> Mac {
    link_mac(&node.ns, &node.segment_if)
}

fn link_mac(ns: &NetNs, interface: &str) -> Mac {
    let out = ns
        .ip(&["-j", "link", "show", "dev", interface])
        .expect("ip link show");
    let links: serde_json::Value = serde_json::from_str(&out).expect("ip -j link output");
    let text = links[0]["address"].as_str().expect("link has an address");
    let mut mac = [0u8; 6];
    for (octet, hex) in mac.iter_mut().zip(text.split(':')) {
        *octet = u8::from_str_radix(hex, 16).expect("hex octet");
    }
    mac
}

fn mac_text(mac: Mac) -> String {
    MacAddr(mac).to_string()
}

/// The client's neighbour-table MAC for `ip`, if it has one.
fn client_neighbour(topo: &Topology, ip: IpAddr) -> Option<String> {
    let cl2 = topo.client_ns(Client::L2).expect("L2 client");
    topology::neighbours(cl2)
        .expect("client neighbours")
        .into_iter()
        .find(|n| n.dst == ip)
        .and_then(|n| n.lladdr)
}

/// Waits until the client's entries for both addresses hold `mac`, or `timeout`.
fn wait_client_neighbours(topo: &Topology, mac: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let moved = |ip| client_neighbour(topo, ip).as_deref() == Some(mac);
    while !(moved(IpAddr::V4(VIP4)) && moved(IpAddr::V6(VIP6))) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn curl_body(topo: &Topology, ip: IpAddr) -> String {
    topo.curl(Client::L2, &url(ip))
        .unwrap_or_else(|e| panic!("curl {}: {e}", url(ip)))
        .trim()
        .to_owned()
}

/// Source MACs of every answer (ARP reply, NA) for `ip` in a capture.
fn answerers(frames: &[Frame], ip: IpAddr) -> Vec<Mac> {
    frames
        .iter()
        .filter(|f| match (&f.kind, ip) {
            (
                FrameKind::Arp {
                    op: 2, sender_ip, ..
                },
                IpAddr::V4(v4),
            ) => *sender_ip == v4,
            (FrameKind::NeighborAdvertisement { target, .. }, IpAddr::V6(v6)) => *target == v6,
            _ => false,
        })
        .map(|f| f.eth_src)
        .collect()
}

/// Node 1 of `topo` with a speaker owning both addresses, and the L2 client with its segment
/// interface.
fn single_owner(topo: &Topology) -> (&Node, &NetNs, String, Speaker) {
    let n1 = topo.node(1).expect("n1");
    let cl2 = topo.client_ns(Client::L2).expect("L2 client");
    let client_if = topo.prefix().name("seg").expect("segment interface name");
    let mut speaker = Speaker::start(n1);
    speaker.gain(VIP4);
    speaker.gain(VIP6);
    (n1, cl2, client_if, speaker)
}

/// Nodes 1 and 2 of `topo` with a speaker each; node 1's owns both addresses.
fn two_speakers(topo: &Topology) -> (&Node, &Node, Speaker, Speaker) {
    let (n1, n2) = (topo.node(1).expect("n1"), topo.node(2).expect("n2"));
    let mut first = Speaker::start(n1);
    let second = Speaker::start(n2);
    first.gain(VIP4);
    first.gain(VIP6);
    (n1, n2, first, second)
}

/// Curls both addresses from the L2 client and expects `node`'s backend to answer.
fn assert_client_reaches(topo: &Topology, node: &Node, when: &str) {
    for ip in [IpAddr::V4(VIP4), IpAddr::V6(VIP6)] {
        assert_eq!(curl_body(topo, ip), node.name, "{when}, {ip}");
    }
}

#[test]
fn owner_alone_answers_and_client_reaches_its_backend_over_ipv4_and_ipv6() {
    let topo = lab(2);
    // The second speaker owns nothing: it must stay silent.
    let (n1, n2, mut owner, _bystander) = two_speakers(&topo);
    let (mac1, mac2) = (mac_of(n1), mac_of(n2));

    let capture = topo.capture_segment("steady").expect("capture");
    for ip in [IpAddr::V4(VIP4), IpAddr::V6(VIP6)] {
        assert_eq!(curl_body(&topo, ip), n1.name, "answer through {ip}");
        assert_eq!(
            client_neighbour(&topo, ip),
            Some(mac_text(mac1)),
            "client resolved {ip} to node 1"
        );
    }
    let frames = capture.stop().expect("capture frames");
    for ip in [IpAddr::V4(VIP4), IpAddr::V6(VIP6)] {
        let macs = answerers(&frames, ip);
        assert!(!macs.is_empty(), "someone answered for {ip}: {frames:?}");
        assert!(
            macs.iter().all(|mac| *mac == mac1),
            "only node 1 ({}) answered for {ip}, node 2 is {}: {macs:?}",
            mac_text(mac1),
            mac_text(mac2)
        );
    }
    let counters = owner.counters();
    assert!(
        counters.announcer.total().requests_answered >= 2,
        "ARP request and NS answered: {counters:?}"
    );
    assert_eq!(counters.send_errors, 0, "{counters:?}");
    assert_eq!(counters.announcer.total().conflicts, 0, "{counters:?}");
}

#[test]
fn lost_address_is_no_longer_answered() {
    let topo = lab(1);
    let (_, cl2, client_if, mut speaker) = single_owner(&topo);
    let arping = [
        "arping",
        "-c",
        "1",
        "-w",
        "1",
        "-I",
        &client_if,
        "192.0.2.200",
    ];
    let vip6 = VIP6.to_string();
    let ndisc = ["ndisc6", "-1", "-r", "1", "-w", "500", &vip6, &client_if];
    cl2.exec(&arping).expect("owned IPv4 address answered");
    cl2.exec(&ndisc).expect("owned IPv6 address answered");

    speaker.lose(VIP4);
    speaker.lose(VIP6);
    // The loss is processed before the next frame is read; wait until the driver has taken it.
    std::thread::sleep(Duration::from_millis(100));
    assert!(cl2.exec(&arping).is_err(), "no ARP reply after the loss");
    assert!(cl2.exec(&ndisc).is_err(), "no NA after the loss");
}

#[test]
fn announcements_move_the_client_to_the_new_owner_on_failover() {
    let topo = lab(2);
    let (n1, n2, mut old_owner, mut new_owner) = two_speakers(&topo);
    let mac2 = mac_of(n2);
    // LAB-NOTES: announcements only update existing entries, so the client resolves first.
    assert_client_reaches(&topo, n1, "before failover");

    let capture = topo.capture_segment("failover").expect("capture");
    old_owner.stop();
    let gained = Instant::now();
    new_owner.gain(VIP4);
    new_owner.gain(VIP6);
    let mut pending = vec![IpAddr::V4(VIP4), IpAddr::V6(VIP6)];
    let deadline = gained + Duration::from_secs(10);
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|ip| {
            let reached = topo
                .curl(Client::L2, &url(*ip))
                .is_ok_and(|body| body.trim() == n2.name);
            if reached {
                // A measurement, not a target: the benchmark proper measures outages.
                println!(
                    "failover gap {ip}: {} ms from gain to the client reaching node 2",
                    gained.elapsed().as_millis()
                );
            }
            !reached
        });
    }
    assert!(
        pending.is_empty(),
        "client never reached node 2 via {pending:?}"
    );
    for ip in [IpAddr::V4(VIP4), IpAddr::V6(VIP6)] {
        assert_eq!(
            client_neighbour(&topo, ip),
            Some(mac_text(mac2)),
            "client's entry for {ip} moved to node 2"
        );
    }
    let frames = capture.stop().expect("capture frames");
    assert!(
        frames.iter().any(|f| f.eth_src == mac2
            && f.is_gratuitous_arp()
            && matches!(f.kind, FrameKind::Arp { sender_ip, .. } if sender_ip == VIP4)),
        "node 2 sent a gratuitous ARP for {VIP4}"
    );
    assert!(
        frames.iter().any(|f| f.eth_src == mac2
            && f.is_unsolicited_na()
            && matches!(
                f.kind,
                FrameKind::NeighborAdvertisement { target, override_: true, .. } if target == VIP6
            )),
        "node 2 sent an unsolicited NA with Override for {VIP6}"
    );
}

#[test]
fn foreign_claim_on_an_owned_address_is_reported_as_conflict() {
    let topo = lab(2);
    let (n1, n2, mut owner, mut intruder) = two_speakers(&topo);
    let mac2 = MacAddr(mac_of(n2));
    // The intruder's gratuitous ARP and unsolicited NA claim both addresses from its own MAC.
    intruder.gain(VIP4);
    intruder.gain(VIP6);

    let claimed = |events: &[Event], ip: IpAddr| {
        events.iter().any(|event| {
            matches!(event, Event::Conflict { ip: got, foreign_mac, interface }
                if *got == ip && *foreign_mac == mac2 && *interface == n1.segment_if)
        })
    };
    let events = owner.events_until(Duration::from_secs(5), |events| {
        claimed(events, IpAddr::V4(VIP4)) && claimed(events, IpAddr::V6(VIP6))
    });
    assert!(
        claimed(&events, IpAddr::V4(VIP4)),
        "IPv4 conflict reported: {events:?}"
    );
    assert!(
        claimed(&events, IpAddr::V6(VIP6)),
        "IPv6 conflict reported: {events:?}"
    );
    assert!(owner.counters().announcer.total().conflicts >= 2);
}

#[test]
fn changed_interface_mac_is_followed_and_announced_to_the_client() {
    let topo = lab(1);
    let (n1, _, _, _speaker) = single_owner(&topo);
    assert_client_reaches(&topo, n1, "before the change");

    // A locally administered MAC the lab never assigns. Nothing tells the driver but the kernel's
    // link notification; the client's REACHABLE entries would otherwise point at the old MAC for
    // 15-45 s (base_reachable_time) and then take seconds of probing.
    let new_mac = "02:00:00:00:0f:01";
    n1.ns
        .ip(&["link", "set", "dev", &n1.segment_if, "address", new_mac])
        .expect("change the node's MAC");
    assert_eq!(mac_text(mac_of(n1)), new_mac);
    wait_client_neighbours(&topo, new_mac, Duration::from_secs(3));
    for ip in [IpAddr::V4(VIP4), IpAddr::V6(VIP6)] {
        assert_eq!(
            client_neighbour(&topo, ip).as_deref(),
            Some(new_mac),
            "client's entry for {ip} follows the new MAC"
        );
        assert_eq!(curl_body(&topo, ip), n1.name, "after the change, {ip}");
    }
}

/// Sends raw Ethernet frames out of `interface` in `ns`, from a thread inside that namespace,
/// through an AF_PACKET socket bound with the speaker's own `sockaddr_ll`.
fn inject_frames(ns: &NetNs, interface: &str, frames: &[Vec<u8>]) {
    let netns = namespace_path(ns);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter_namespace(&netns).expect("enter the namespace");
                let index = if_nametoindex(interface).expect("interface index");
                for frame in frames {
                    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
                    let socket = Socket::new(Domain::PACKET, Type::RAW, None).expect("socket");
                    let address = packet_bind_address(index, ethertype).expect("address");
                    socket.bind(&address).expect("bind");
                    socket.send(frame).expect("send");
                }
            })
            .join()
            .expect("injecting thread");
    });
}

/// `frame` (Ethernet + IPv6 + ICMPv6) with its ICMPv6 checksum recomputed.
fn with_icmpv6_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    let address = |at: usize| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&frame[at..at + 16]);
        Ipv6Addr::from(octets)
    };
    let (source, destination) = (address(22), address(38));
    frame[56..58].fill(0);
    let checksum = icmpv6_checksum(source, destination, &frame[54..]);
    frame[56..58].copy_from_slice(&checksum.to_be_bytes());
    frame
}

#[test]
fn malformed_frames_are_counted_unanswered_and_do_not_stop_the_driver() {
    let topo = lab(1);
    let (n1, cl2, client_if, mut speaker) = single_owner(&topo);
    let client_mac = MacAddr(link_mac(cl2, &client_if));

    let arp = ArpFrame::gratuitous_request(client_mac, Ipv4Addr::new(192, 0, 2, 100)).encode();
    let ns =
        NdpFrame::solicitation(client_mac, "2001:db8:2::100".parse().expect("v6"), VIP6).encode();
    assert_eq!(
        with_icmpv6_checksum(ns.clone()),
        ns,
        "checksum helper agrees"
    );
    let patched = |frame: &[u8], at: usize, value: u8| {
        let mut frame = frame.to_vec();
        frame[at] = value;
        frame
    };
    let malformed = [
        ("truncated ARP", arp[..30].to_vec()),
        // Hardware type 6 (IEEE 802), not Ethernet.
        ("ARP hardware type", patched(&arp, 15, 6)),
        ("ARP operation", patched(&arp, 21, 9)),
        // RFC 4861 §7.1.1: the hop limit must be 255.
        ("NS hop limit", patched(&ns, 21, 64)),
        ("NS checksum", patched(&ns, 56, ns[56] ^ 0xff)),
        // RFC 4861 §7.1.1: the code must be 0 (checksum recomputed, so only the code is wrong).
        ("NS code", with_icmpv6_checksum(patched(&ns, 55, 1))),
    ];
    for (what, frame) in malformed {
        let before = speaker.counters();
        inject_frames(cl2, &client_if, &[frame]);
        let deadline = Instant::now() + Duration::from_secs(2);
        while speaker.counters().announcer.malformed == before.announcer.malformed
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = speaker.counters();
        assert_eq!(
            after.announcer.malformed,
            before.announcer.malformed + 1,
            "{what}: counted as malformed: {after:?}"
        );
        assert_eq!(
            after.announcer.total().requests_answered,
            before.announcer.total().requests_answered,
            "{what}: not answered"
        );
    }
    assert_client_reaches(&topo, n1, "still answering");
}

#[test]
fn owner_announces_again_when_its_carrier_returns() {
    let topo = lab(2);
    let (n1, n2, mut old_owner, mut new_owner) = two_speakers(&topo);
    let mac2 = mac_text(mac_of(n2));
    assert_client_reaches(&topo, n1, "before failover");

    // Node 2 gains while its link has no carrier: its whole burst (0 to 1 s) reaches no one.
    topo.set_node_link(2, false).expect("node 2 link down");
    old_owner.stop();
    new_owner.gain(VIP4);
    new_owner.gain(VIP6);
    std::thread::sleep(Duration::from_millis(1500));
    assert_client_reaches(&topo, n1, "the client still uses node 1's MAC");

    topo.set_node_link(2, true).expect("node 2 link up");
    wait_client_neighbours(&topo, &mac2, Duration::from_secs(3));
    assert_client_reaches(&topo, n2, "after the carrier returns");
}

#[test]
fn thousands_of_ipv6_addresses_each_get_their_solicited_node_group() {
    // More groups than one socket's option memory holds (about 2,300 with the default optmem_max).
    const COUNT: u16 = 3000;
    let topo = lab(1);
    let (n1, cl2, client_if, mut speaker) = single_owner(&topo);
    let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 1, 0x1000));
    let addresses: Vec<Ipv6Addr> = (0..COUNT)
        .map(|i| Ipv6Addr::from(base + u128::from(i)))
        .collect();
    for ip in &addresses {
        speaker.gain(*ip);
    }
    let joined_groups = || {
        let groups = n1
            .ns
            .ip(&["-6", "maddr", "show", "dev", &n1.segment_if])
            .expect("ip maddr");
        groups
            .lines()
            .filter(|line| line.trim().starts_with("inet6 ff02::1:ff01:"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while joined_groups() < usize::from(COUNT) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let joined = joined_groups();
    let counters = speaker.counters();
    assert!(
        joined >= usize::from(COUNT),
        "{joined} of {COUNT} solicited-node groups joined on the interface: {counters:?}"
    );
    assert_eq!(counters.group_errors, 0, "{counters:?}");
    let last = addresses.last().expect("addresses").to_string();
    cl2.exec(&["ndisc6", "-1", "-r", "1", "-w", "1000", &last, &client_if])
        .expect("the last address is answered");
}

#[test]
fn address_changes_reach_the_published_interface_inventory() {
    let topo = lab(1);
    let (n1, _, _, mut speaker) = single_owner(&topo);
    let segment = n1.segment_if.clone();
    let node_net: ipnet::IpNet = format!("{}/24", n1.v4).parse().expect("net");
    // A documentation prefix the lab plan leaves unused.
    let extra: ipnet::IpNet = "2001:db8:7::1/64".parse().expect("net");
    let has = |net: ipnet::IpNet| {
        let segment = segment.clone();
        move |interfaces: &Interfaces| {
            interfaces
                .get(&segment)
                .is_some_and(|i| i.running && i.networks.contains(&net))
        }
    };
    assert!(
        speaker.interfaces_within(Duration::from_secs(2), has(node_net)),
        "the segment interface is listed with {node_net}"
    );

    n1.ns
        .add_addr(&segment, &extra.to_string())
        .expect("add address");
    assert!(
        speaker.interfaces_within(Duration::from_secs(2), has(extra)),
        "{extra} published after it was added"
    );
    n1.ns
        .ip(&["addr", "del", &extra.to_string(), "dev", &segment])
        .expect("delete address");
    assert!(
        speaker.interfaces_within(Duration::from_secs(2), |i| !has(extra)(i)),
        "{extra} gone after it was deleted"
    );
}
