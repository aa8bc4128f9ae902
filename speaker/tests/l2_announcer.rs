//! Behaviour of the sans-IO layer-2 responder/announcer, driven with plain frames and instants.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use std::time::{Duration, Instant};

use ferrolb_speaker::l2::MacAddr;
use ferrolb_speaker::l2::announcer::{
    Announcer, AnnouncerConfig, Counters, FamilyCounters, Input, Output,
};
use ferrolb_speaker::l2::arp::{ArpFrame, ArpOperation};
use ferrolb_speaker::l2::ndp::{ALL_NODES, NdpFrame, NdpMessage, solicited_node};

const ETH0: &str = "eth0";
const ETH1: &str = "eth1";
const OUR_MAC: MacAddr = MacAddr([0x00, 0x00, 0x5e, 0x00, 0x53, 0x01]);
const CLIENT_MAC: MacAddr = MacAddr([0x00, 0x00, 0x5e, 0x00, 0x53, 0x77]);
const INTRUDER_MAC: MacAddr = MacAddr([0x00, 0x00, 0x5e, 0x00, 0x53, 0x99]);
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xc8);

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn gained(ip: impl Into<IpAddr>, interface: &str) -> Input<'_> {
    Input::Gained {
        ip: ip.into(),
        interface,
        mac: OUR_MAC,
    }
}

fn sent_frames(outputs: &[Output]) -> Vec<(&str, &[u8])> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send { interface, frame } => Some((interface.as_str(), frame.as_slice())),
            _ => None,
        })
        .collect()
}

fn send(interface: &str, frame: Vec<u8>) -> Output {
    Output::Send {
        interface: interface.to_owned(),
        frame,
    }
}

fn receive(announcer: &mut Announcer, now: Instant, interface: &str, frame: &[u8]) -> Vec<Output> {
    announcer.handle(now, Input::Frame { interface, frame })
}

fn client_request(target: Ipv4Addr) -> ArpFrame {
    ArpFrame {
        eth_destination: MacAddr::BROADCAST,
        eth_source: CLIENT_MAC,
        operation: ArpOperation::Request,
        sender_mac: CLIENT_MAC,
        sender_ip: CLIENT4,
        target_mac: MacAddr::ZERO,
        target_ip: target,
    }
}

fn owning_vip4() -> (Announcer, Instant) {
    let t0 = Instant::now();
    let mut announcer = Announcer::new(AnnouncerConfig::default());
    announcer.handle(t0, gained(VIP4, ETH0));
    (announcer, t0)
}

#[test]
fn gaining_ipv4_sends_gratuitous_request_and_reply_at_once() {
    let t0 = Instant::now();
    let mut announcer = Announcer::new(AnnouncerConfig::default());
    let out = announcer.handle(t0, gained(VIP4, ETH0));
    assert_eq!(
        out,
        vec![
            send(ETH0, ArpFrame::gratuitous_request(OUR_MAC, VIP4).encode()),
            send(ETH0, ArpFrame::gratuitous_reply(OUR_MAC, VIP4).encode()),
        ]
    );
    assert_eq!(announcer.counters().total().gratuitous_sent, 2);
    assert_eq!(
        announcer.owned().collect::<Vec<_>>(),
        vec![(IpAddr::V4(VIP4), ETH0)]
    );
}

#[test]
fn burst_follows_configured_offsets_then_stops_without_refresh() {
    let (mut announcer, t0) = owning_vip4();
    assert_eq!(announcer.next_wakeup(), Some(t0 + ms(200)));
    assert!(announcer.handle(t0 + ms(199), Input::Tick).is_empty());
    assert_eq!(
        sent_frames(&announcer.handle(t0 + ms(200), Input::Tick)).len(),
        2
    );
    assert_eq!(announcer.next_wakeup(), Some(t0 + ms(500)));
    assert_eq!(
        sent_frames(&announcer.handle(t0 + ms(500), Input::Tick)).len(),
        2
    );
    assert_eq!(
        sent_frames(&announcer.handle(t0 + ms(1000), Input::Tick)).len(),
        2
    );
    assert_eq!(announcer.next_wakeup(), None);
    assert!(announcer.handle(t0 + ms(60_000), Input::Tick).is_empty());
    assert_eq!(announcer.counters().total().gratuitous_sent, 8);
}

#[test]
fn late_tick_sends_one_announcement_not_a_backlog() {
    let (mut announcer, t0) = owning_vip4();
    assert_eq!(
        sent_frames(&announcer.handle(t0 + ms(700), Input::Tick)).len(),
        2
    );
    assert_eq!(announcer.next_wakeup(), Some(t0 + ms(1000)));
}

#[test]
fn refresh_repeats_announcement_after_burst_when_enabled() {
    let t0 = Instant::now();
    let mut announcer = Announcer::new(AnnouncerConfig {
        announce_at: vec![Duration::ZERO],
        refresh_every: Some(Duration::from_secs(30)),
        ..AnnouncerConfig::default()
    });
    assert_eq!(
        sent_frames(&announcer.handle(t0, gained(VIP4, ETH0))).len(),
        2
    );
    assert_eq!(announcer.next_wakeup(), Some(t0 + Duration::from_secs(30)));
    assert!(announcer.handle(t0 + ms(29_999), Input::Tick).is_empty());
    assert_eq!(
        sent_frames(&announcer.handle(t0 + ms(30_000), Input::Tick)).len(),
        2
    );
    assert_eq!(announcer.next_wakeup(), Some(t0 + Duration::from_secs(60)));
}

#[test]
fn refresh_alone_starts_at_gain_and_offsets_may_come_unsorted() {
    let t0 = Instant::now();
    let mut refresh_only = Announcer::new(AnnouncerConfig {
        announce_at: Vec::new(),
        refresh_every: Some(Duration::from_secs(10)),
        ..AnnouncerConfig::default()
    });
    assert!(refresh_only.handle(t0, gained(VIP4, ETH0)).is_empty());
    assert_eq!(
        refresh_only.next_wakeup(),
        Some(t0 + Duration::from_secs(10))
    );
    assert_eq!(
        sent_frames(&refresh_only.handle(t0 + ms(10_000), Input::Tick)).len(),
        2
    );

    let mut unsorted = Announcer::new(AnnouncerConfig {
        announce_at: vec![ms(300), Duration::ZERO, ms(100)],
        ..AnnouncerConfig::default()
    });
    assert_eq!(
        sent_frames(&unsorted.handle(t0, gained(VIP4, ETH0))).len(),
        2
    );
    assert_eq!(unsorted.next_wakeup(), Some(t0 + ms(100)));
}

#[test]
fn zero_refresh_period_disables_refresh_instead_of_flooding() {
    let t0 = Instant::now();
    let mut announcer = Announcer::new(AnnouncerConfig {
        announce_at: vec![Duration::ZERO],
        refresh_every: Some(Duration::ZERO),
        ..AnnouncerConfig::default()
    });
    announcer.handle(t0, gained(VIP4, ETH0));
    assert_eq!(announcer.next_wakeup(), None);
    assert!(announcer.handle(t0 + ms(1), Input::Tick).is_empty());
}

#[test]
fn regaining_with_same_mac_does_not_reburst_but_new_mac_does() {
    let (mut announcer, t0) = owning_vip4();
    assert!(announcer.handle(t0 + ms(50), gained(VIP4, ETH0)).is_empty());
    let new_mac = MacAddr([0x00, 0x00, 0x5e, 0x00, 0x53, 0x02]);
    let out = announcer.handle(
        t0 + ms(60),
        Input::Gained {
            ip: VIP4.into(),
            interface: ETH0,
            mac: new_mac,
        },
    );
    assert_eq!(
        out[0],
        send(ETH0, ArpFrame::gratuitous_request(new_mac, VIP4).encode())
    );
}

#[test]
fn reannounce_bursts_again_for_an_owned_ip_and_ignores_others() {
    let (mut announcer, t0) = owning_vip4();
    for tick in [200, 500, 1000] {
        announcer.handle(t0 + ms(tick), Input::Tick);
    }
    assert_eq!(announcer.next_wakeup(), None, "burst over");
    let t1 = t0 + ms(5_000);
    let out = announcer.handle(
        t1,
        Input::Reannounce {
            ip: VIP4.into(),
            interface: ETH0,
        },
    );
    assert_eq!(
        out,
        vec![
            send(ETH0, ArpFrame::gratuitous_request(OUR_MAC, VIP4).encode()),
            send(ETH0, ArpFrame::gratuitous_reply(OUR_MAC, VIP4).encode()),
        ]
    );
    assert_eq!(
        announcer.next_wakeup(),
        Some(t1 + ms(200)),
        "a whole burst again"
    );
    let elsewhere = announcer.handle(
        t1,
        Input::Reannounce {
            ip: VIP4.into(),
            interface: ETH1,
        },
    );
    assert!(elsewhere.is_empty(), "not owned on eth1");
    let not_owned = announcer.handle(
        t1,
        Input::Reannounce {
            ip: VIP6.into(),
            interface: ETH0,
        },
    );
    assert!(not_owned.is_empty());
}

#[test]
fn arp_request_for_owned_ip_is_answered_from_interface_mac() {
    let (mut announcer, t0) = owning_vip4();
    let request = client_request(VIP4);
    let out = receive(&mut announcer, t0, ETH0, &request.encode());
    assert_eq!(out, vec![send(ETH0, request.reply_from(OUR_MAC).encode())]);
    let counters = announcer.counters();
    assert_eq!(
        (
            counters.total().requests_seen,
            counters.total().requests_answered
        ),
        (1, 1)
    );
}

#[test]
fn arp_request_on_another_interface_or_for_another_ip_is_ignored() {
    let (mut announcer, t0) = owning_vip4();
    let other_interface = client_request(VIP4).encode();
    let other_ip = client_request(Ipv4Addr::new(192, 0, 2, 11)).encode();
    for (interface, frame) in [(ETH1, &other_interface), (ETH0, &other_ip)] {
        assert!(receive(&mut announcer, t0, interface, frame).is_empty());
    }
    let counters = announcer.counters();
    assert_eq!(
        (
            counters.total().requests_seen,
            counters.total().requests_answered
        ),
        (2, 0)
    );
}

#[test]
fn arp_probe_for_owned_ip_is_answered() {
    let (mut announcer, t0) = owning_vip4();
    let probe = ArpFrame {
        sender_ip: Ipv4Addr::UNSPECIFIED,
        ..client_request(VIP4)
    };
    let out = receive(&mut announcer, t0, ETH0, &probe.encode());
    let reply = probe.reply_from(OUR_MAC);
    assert_eq!(reply.target_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(out, vec![send(ETH0, reply.encode())]);
    assert_eq!(announcer.counters().total().conflicts, 0);
}

#[test]
fn own_announcements_seen_on_the_socket_are_ignored() {
    let (mut announcer, t0) = owning_vip4();
    for frame in [
        ArpFrame::gratuitous_request(OUR_MAC, VIP4).encode(),
        ArpFrame::gratuitous_reply(OUR_MAC, VIP4).encode(),
    ] {
        assert!(receive(&mut announcer, t0, ETH0, &frame).is_empty());
    }
    assert_eq!(announcer.counters().total().conflicts, 0);
    assert_eq!(announcer.counters().total().requests_answered, 0);
}

#[test]
fn lost_ip_is_neither_answered_nor_announced() {
    let (mut announcer, t0) = owning_vip4();
    let lost = Input::Lost {
        ip: VIP4.into(),
        interface: ETH0,
    };
    assert!(announcer.handle(t0 + ms(10), lost).is_empty());
    assert_eq!(announcer.next_wakeup(), None);
    assert!(announcer.handle(t0 + ms(200), Input::Tick).is_empty());
    let request = client_request(VIP4).encode();
    assert!(receive(&mut announcer, t0 + ms(20), ETH0, &request).is_empty());
    assert_eq!(announcer.owned().count(), 0);
}

#[test]
fn foreign_arp_reply_for_owned_ip_is_a_conflict_defended_once_per_interval() {
    let (mut announcer, t0) = owning_vip4();
    let intruder = ArpFrame::gratuitous_reply(INTRUDER_MAC, VIP4).encode();
    let conflict = Output::Conflict {
        ip: VIP4.into(),
        foreign_mac: INTRUDER_MAC,
        interface: ETH0.to_owned(),
    };
    let first = receive(&mut announcer, t0 + ms(100), ETH0, &intruder);
    assert_eq!(first[0], conflict);
    assert_eq!(
        sent_frames(&first[1..]),
        vec![
            (
                ETH0,
                ArpFrame::gratuitous_request(OUR_MAC, VIP4)
                    .encode()
                    .as_slice()
            ),
            (
                ETH0,
                ArpFrame::gratuitous_reply(OUR_MAC, VIP4)
                    .encode()
                    .as_slice()
            ),
        ]
    );
    // Within DEFEND_INTERVAL: reported and counted, not defended again.
    assert_eq!(
        receive(&mut announcer, t0 + ms(5_000), ETH0, &intruder),
        vec![conflict.clone()]
    );
    // After it: defended again.
    assert_eq!(
        receive(&mut announcer, t0 + ms(10_100), ETH0, &intruder).len(),
        3
    );
    assert_eq!(announcer.counters().total().conflicts, 3);
}

#[test]
fn foreign_arp_request_using_owned_ip_as_sender_is_a_conflict() {
    let (mut announcer, t0) = owning_vip4();
    let request = ArpFrame {
        eth_source: INTRUDER_MAC,
        sender_mac: INTRUDER_MAC,
        sender_ip: VIP4,
        ..client_request(CLIENT4)
    };
    let out = receive(&mut announcer, t0, ETH0, &request.encode());
    assert!(matches!(
        out[0],
        Output::Conflict {
            foreign_mac: INTRUDER_MAC,
            ..
        }
    ));
}

#[test]
fn gaining_ipv6_joins_solicited_node_group_and_sends_unsolicited_na() {
    let t0 = Instant::now();
    let mut announcer = Announcer::new(AnnouncerConfig::default());
    let out = announcer.handle(t0, gained(VIP6, ETH0));
    assert_eq!(
        out,
        vec![
            Output::JoinGroup {
                interface: ETH0.to_owned(),
                group: solicited_node(VIP6),
            },
            send(
                ETH0,
                NdpFrame::unsolicited_advertisement(OUR_MAC, VIP6).encode()
            ),
        ]
    );
    let na = NdpFrame::decode(&NdpFrame::unsolicited_advertisement(OUR_MAC, VIP6).encode())
        .expect("valid NA");
    assert_eq!(na.ip_destination, ALL_NODES);
    assert_eq!(announcer.counters().total().gratuitous_sent, 1);
}

#[test]
fn solicited_node_group_is_left_only_when_its_last_address_goes() {
    let t0 = Instant::now();
    let mut announcer = Announcer::new(AnnouncerConfig::default());
    // Same low 24 bits, hence the same solicited-node group.
    let sibling = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
    announcer.handle(t0, gained(VIP6, ETH0));
    let out = announcer.handle(t0, gained(sibling, ETH0));
    assert!(!out.iter().any(|o| matches!(o, Output::JoinGroup { .. })));
    let lose = |ip: Ipv6Addr| Input::Lost {
        ip: ip.into(),
        interface: ETH0,
    };
    assert!(announcer.handle(t0, lose(VIP6)).is_empty());
    assert_eq!(
        announcer.handle(t0, lose(sibling)),
        vec![Output::LeaveGroup {
            interface: ETH0.to_owned(),
            group: solicited_node(VIP6),
        }]
    );
}

#[test]
fn neighbor_solicitation_for_owned_ip_is_answered() {
    let t0 = Instant::now();
    let mut announcer = Announcer::new(AnnouncerConfig::default());
    announcer.handle(t0, gained(VIP6, ETH0));
    let ns = NdpFrame::solicitation(CLIENT_MAC, CLIENT6, VIP6);
    let out = receive(&mut announcer, t0, ETH0, &ns.encode());
    let reply = ns.advertisement_reply(OUR_MAC).expect("NS has a reply");
    assert_eq!(out, vec![send(ETH0, reply.encode())]);
    let other = NdpFrame::solicitation(CLIENT_MAC, CLIENT6, CLIENT6).encode();
    assert!(receive(&mut announcer, t0, ETH0, &other).is_empty());
    let counters = announcer.counters();
    assert_eq!(
        (
            counters.total().requests_seen,
            counters.total().requests_answered
        ),
        (2, 1)
    );
}

#[test]
fn foreign_neighbor_advertisement_for_owned_ip_is_a_conflict_but_own_is_not() {
    let t0 = Instant::now();
    let mut announcer = Announcer::new(AnnouncerConfig::default());
    announcer.handle(t0, gained(VIP6, ETH0));
    let own = NdpFrame::unsolicited_advertisement(OUR_MAC, VIP6).encode();
    assert!(receive(&mut announcer, t0, ETH0, &own).is_empty());
    let foreign = NdpFrame::unsolicited_advertisement(INTRUDER_MAC, VIP6).encode();
    let out = receive(&mut announcer, t0, ETH0, &foreign);
    assert_eq!(
        out[0],
        Output::Conflict {
            ip: VIP6.into(),
            foreign_mac: INTRUDER_MAC,
            interface: ETH0.to_owned(),
        }
    );
    assert_eq!(
        sent_frames(&out[1..]),
        vec![(ETH0, own.as_slice())],
        "defended with an unsolicited NA"
    );
    assert_eq!(announcer.counters().total().conflicts, 1);
}

#[test]
fn malformed_frames_are_counted_and_ignored() {
    let (mut announcer, t0) = owning_vip4();
    let mut truncated = client_request(VIP4).encode();
    truncated.truncate(30);
    let mut bad_hop_limit = NdpFrame::solicitation(CLIENT_MAC, CLIENT6, VIP6).encode();
    bad_hop_limit[21] = 64;
    for frame in [&truncated[..], &bad_hop_limit[..], &[0u8; 5][..]] {
        assert!(receive(&mut announcer, t0, ETH0, frame).is_empty());
    }
    assert_eq!(
        announcer.counters(),
        Counters {
            ipv4: FamilyCounters {
                gratuitous_sent: 2,
                ..FamilyCounters::default()
            },
            malformed: 3,
            ..Counters::default()
        }
    );
}

#[test]
fn frames_that_are_not_arp_or_neighbor_discovery_are_ignored_not_malformed() {
    let (mut announcer, t0) = owning_vip4();
    let mut ipv4 = client_request(VIP4).encode();
    ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
    // An ICMPv6 echo request is valid IPv6 but not Neighbor Discovery.
    let mut echo = NdpFrame::solicitation(CLIENT_MAC, CLIENT6, VIP6).encode();
    echo[54] = 128;
    for frame in [&ipv4[..], &echo[..]] {
        assert!(receive(&mut announcer, t0, ETH0, frame).is_empty());
    }
    let counters = announcer.counters();
    assert_eq!((counters.ignored, counters.malformed), (2, 0));
}

proptest! {
    #[test]
    fn arbitrary_frames_never_panic_nor_answer_unowned_addresses(
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        arp_ethertype: bool,
    ) {
        let (mut announcer, t0) = owning_vip4();
        let mut frame = bytes;
        if frame.len() >= 14 {
            let ethertype: [u8; 2] = if arp_ethertype { [0x08, 0x06] } else { [0x86, 0xdd] };
            frame[12..14].copy_from_slice(&ethertype);
        }
        let out = receive(&mut announcer, t0, ETH0, &frame);
        for (_, sent) in sent_frames(&out) {
            // Only a reply about the owned address (or its defence) can come out.
            let arp = ArpFrame::decode(sent).expect("we only send ARP here");
            prop_assert_eq!(arp.sender_ip, VIP4);
            prop_assert_eq!(arp.sender_mac, OUR_MAC);
        }
    }

    #[test]
    fn solicited_node_groups_are_joined_exactly_while_used(
        ops in proptest::collection::vec((any::<bool>(), 0usize..4, 0usize..2, any::<bool>()), 0..40),
    ) {
        // Addresses 0 and 1 share a solicited-node group; 2 and 3 have their own.
        let ips = [
            VIP6,
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x12),
        ];
        let interfaces = [ETH0, ETH1];
        let t0 = Instant::now();
        let mut announcer = Announcer::new(AnnouncerConfig::default());
        let mut joined = std::collections::BTreeSet::new();
        for (gain, ip, interface, other_mac) in ops {
            let (ip, interface) = (ips[ip], interfaces[interface]);
            let input = if gain {
                let mac = if other_mac { CLIENT_MAC } else { OUR_MAC };
                Input::Gained { ip: ip.into(), interface, mac }
            } else {
                Input::Lost { ip: ip.into(), interface }
            };
            for output in announcer.handle(t0, input) {
                match output {
                    Output::JoinGroup { interface, group } => {
                        prop_assert!(joined.insert((interface, group)), "joined twice");
                    }
                    Output::LeaveGroup { interface, group } => {
                        prop_assert!(joined.remove(&(interface, group)), "left unjoined group");
                    }
                    _ => {}
                }
            }
        }
        let used: std::collections::BTreeSet<(String, Ipv6Addr)> = announcer
            .owned()
            .filter_map(|(ip, interface)| match ip {
                IpAddr::V6(v6) => Some((interface.to_owned(), solicited_node(v6))),
                IpAddr::V4(_) => None,
            })
            .collect();
        prop_assert_eq!(joined, used);
    }

    #[test]
    fn arp_answers_and_conflicts_concern_only_the_owned_address(
        op_reply in any::<bool>(),
        sender_mac in prop::sample::select(vec![OUR_MAC, CLIENT_MAC, INTRUDER_MAC]),
        sender_ip in prop::sample::select(vec![VIP4, CLIENT4, Ipv4Addr::UNSPECIFIED]),
        target_ip in prop::sample::select(vec![VIP4, CLIENT4, Ipv4Addr::new(192, 0, 2, 11)]),
        interface in prop::sample::select(vec![ETH0, ETH1]),
    ) {
        let (mut announcer, t0) = owning_vip4();
        let frame = ArpFrame {
            eth_source: sender_mac,
            sender_mac,
            sender_ip,
            target_ip,
            operation: if op_reply { ArpOperation::Reply } else { ArpOperation::Request },
            ..client_request(target_ip)
        };
        let out = receive(&mut announcer, t0, interface, &frame.encode());
        let on_owned_interface = interface == ETH0;
        let foreign_claim = on_owned_interface && sender_ip == VIP4 && sender_mac != OUR_MAC;
        let question = on_owned_interface
            && !op_reply
            && target_ip == VIP4
            && sender_ip != VIP4
            && sender_mac != OUR_MAC;
        prop_assert_eq!(
            out.iter().any(|o| matches!(o, Output::Conflict { .. })),
            foreign_claim
        );
        if !foreign_claim {
            let expected = question.then(|| send(ETH0, frame.reply_from(OUR_MAC).encode()));
            prop_assert_eq!(out.first().cloned(), expected);
            prop_assert!(out.len() <= 1);
        }
    }
}

#[test]
fn ndp_solicitation_after_gain_is_answered_with_solicited_flag() {
    let t0 = Instant::now();
    let mut announcer = Announcer::new(AnnouncerConfig::default());
    announcer.handle(t0, gained(VIP6, ETH0));
    let ns = NdpFrame::solicitation(CLIENT_MAC, CLIENT6, VIP6).encode();
    let out = receive(&mut announcer, t0, ETH0, &ns);
    let (_, frame) = sent_frames(&out)[0];
    let na = NdpFrame::decode(frame).expect("our NA decodes");
    assert_eq!(na.ip_destination, CLIENT6);
    assert_eq!(na.eth_destination, CLIENT_MAC);
    let NdpMessage::Advertisement { flags, .. } = na.message else {
        panic!("not an NA: {na:?}");
    };
    assert!(flags.solicited && flags.override_entry && !flags.router);
}
