//! Codec properties and the cross-check against an independent implementation.
//!
//! - Arbitrary bytes, and arbitrary corruptions of valid messages, never make the decoder panic.
//! - Every typed message round-trips encode → decode unchanged.
//! - Everything we encode is understood by NetGauze (`netgauze-bgp-pkt`) with the same meaning:
//!   NetGauze parses our bytes into its own typed model and writes them back from that model, and
//!   our decoder reads NetGauze's bytes as the message we started from. Explicit field checks on
//!   NetGauze's model back this up for the messages the speaker sends.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ferrolb_speaker::bgp::fsm::{Fsm, GracefulRestartConfig, PeerAs, PeerConfig};
use ferrolb_speaker::bgp::packet::{
    Aggregator, AsPath, AsSegment, AsSegmentKind, Capability, Codec, Community, ErrorCode, Family,
    GracefulRestart, GracefulRestartFamily, LargeCommunity, Message, MpReach, MpUnreach,
    Notification, Open, OptionalParameter, Origin, PathAttribute, RawAttribute, RouteRefresh,
    Update, decode,
};
use ipnet::{Ipv4Net, Ipv6Net};
use netgauze_bgp_pkt::BgpMessage as NgMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

const FOUR: Codec = Codec::FOUR_OCTET_AS;

// ---------------------------------------------------------------------------------------------
// Strategies. `opaque` admits the values only we keep verbatim (unknown families, unassigned
// codes); NetGauze types those strictly, so the cross-check leaves them out.

/// Multicast networks in unicast NLRI only when `opaque`: NetGauze refuses them.
fn ipv4_net(opaque: bool) -> impl Strategy<Value = Ipv4Net> + Clone {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| {
            Ipv4Net::new(Ipv4Addr::from(a), l)
                .expect("length <= 32")
                .trunc()
        })
        .prop_filter("unicast", move |n| opaque || !n.network().is_multicast())
}

fn ipv6_net(opaque: bool) -> impl Strategy<Value = Ipv6Net> + Clone {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| {
            Ipv6Net::new(Ipv6Addr::from(a), l)
                .expect("length <= 128")
                .trunc()
        })
        .prop_filter("unicast", move |n| opaque || !n.network().is_multicast())
}

fn host_ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>()
        .prop_map(Ipv4Addr::from)
        .prop_filter("a host address", |a| {
            !(a.is_unspecified() || a.is_broadcast() || a.is_multicast())
        })
}

fn other_family() -> impl Strategy<Value = Family> {
    (3u16..=1000, any::<u8>()).prop_map(|(afi, safi)| Family { afi, safi })
}

/// Confederation segments (RFC 5065) only when `opaque`: NetGauze refuses them.
fn as_path(opaque: bool) -> impl Strategy<Value = AsPath> {
    let kind = if opaque {
        prop_oneof![
            Just(AsSegmentKind::Sequence),
            Just(AsSegmentKind::Set),
            Just(AsSegmentKind::ConfedSequence),
            Just(AsSegmentKind::ConfedSet),
        ]
        .boxed()
    } else {
        prop_oneof![Just(AsSegmentKind::Sequence), Just(AsSegmentKind::Set)].boxed()
    };
    vec(
        (kind, vec(any::<u32>(), 1..6)).prop_map(|(kind, asns)| AsSegment { kind, asns }),
        0..4,
    )
    .prop_map(|segments| AsPath { segments })
}

fn mp_reach(opaque: bool) -> BoxedStrategy<MpReach> {
    let v4 = (host_ipv4(), vec(ipv4_net(opaque), 0..10))
        .prop_map(|(next_hop, nlri)| MpReach::Ipv4Unicast { next_hop, nlri });
    let v6 = (
        any::<u128>(),
        option::of(any::<u128>()),
        vec(ipv6_net(opaque), 0..10),
    )
        .prop_map(|(nh, ll, nlri)| MpReach::Ipv6Unicast {
            next_hop: Ipv6Addr::from(nh),
            link_local: ll.map(Ipv6Addr::from),
            nlri,
        });
    let other = (
        other_family(),
        vec(any::<u8>(), 0..20),
        vec(any::<u8>(), 0..40),
    )
        .prop_map(|(family, next_hop, nlri)| MpReach::Other {
            family,
            next_hop,
            nlri,
        });
    if opaque {
        prop_oneof![v4, v6, other].boxed()
    } else {
        prop_oneof![v4, v6].boxed()
    }
}

fn mp_unreach(opaque: bool) -> BoxedStrategy<MpUnreach> {
    let v4 = vec(ipv4_net(opaque), 0..10).prop_map(MpUnreach::Ipv4Unicast);
    let v6 = vec(ipv6_net(opaque), 0..10).prop_map(MpUnreach::Ipv6Unicast);
    let other = (other_family(), vec(any::<u8>(), 0..40))
        .prop_map(|(family, withdrawn)| MpUnreach::Other { family, withdrawn });
    if opaque {
        prop_oneof![v4, v6, other].boxed()
    } else {
        prop_oneof![v4, v6].boxed()
    }
}

fn unknown_attribute() -> impl Strategy<Value = RawAttribute> {
    // Optional (0x80) always; Transitive and Partial bits free. The codec owns Extended Length.
    (any::<u8>(), 100u8..=127, vec(any::<u8>(), 0..300)).prop_map(|(bits, type_code, value)| {
        RawAttribute {
            flags: 0x80 | (bits & 0x60),
            type_code,
            value,
        }
    })
}

/// A valid UPDATE: attributes in type-code order, each at most once, the well-known mandatory
/// ones present whenever routes are announced.
fn update(opaque: bool) -> impl Strategy<Value = Update> {
    let origin = prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ];
    let first = (
        option::of(origin),
        option::of(as_path(opaque)),
        option::of(host_ipv4()),
        option::of(any::<u32>()),
        option::of(any::<u32>()),
        any::<bool>(),
        option::of(
            (any::<u32>(), any::<u32>()).prop_map(|(asn, a)| Aggregator {
                asn,
                address: Ipv4Addr::from(a),
            }),
        ),
    );
    let second = (
        option::of(vec(any::<u32>().prop_map(Community), 1..6)),
        option::of(mp_reach(opaque)),
        option::of(mp_unreach(opaque)),
        option::of(vec(
            any::<(u32, u32, u32)>().prop_map(|(g, a, b)| LargeCommunity {
                global_admin: g,
                local_data_1: a,
                local_data_2: b,
            }),
            1..4,
        )),
        option::of(unknown_attribute()),
        vec(ipv4_net(opaque), 0..15),
        vec(ipv4_net(opaque), 0..15),
    );
    (first, second).prop_map(
        |(
            (origin, path, next_hop, med, local_pref, atomic, aggregator),
            (communities, reach, unreach, large, unknown, withdrawn, nlri),
        )| {
            let announces = !nlri.is_empty() || reach.is_some();
            let origin = origin.or(announces.then_some(Origin::Igp));
            let path = path.or(announces.then(AsPath::default));
            let next_hop = next_hop.or((!nlri.is_empty()).then_some(Ipv4Addr::new(192, 0, 2, 1)));
            let attributes = [
                origin.map(PathAttribute::Origin),
                path.map(PathAttribute::AsPath),
                next_hop.map(PathAttribute::NextHop),
                med.map(PathAttribute::MultiExitDisc),
                local_pref.map(PathAttribute::LocalPref),
                atomic.then_some(PathAttribute::AtomicAggregate),
                aggregator.map(PathAttribute::Aggregator),
                communities.map(PathAttribute::Communities),
                reach.map(PathAttribute::MpReach),
                unreach.map(PathAttribute::MpUnreach),
                large.map(PathAttribute::LargeCommunities),
                unknown.map(PathAttribute::Unknown),
            ]
            .into_iter()
            .flatten()
            .collect();
            Update {
                withdrawn,
                attributes,
                nlri,
                malformed: vec![],
            }
        },
    )
}

fn capability(opaque: bool) -> BoxedStrategy<Capability> {
    let family = prop_oneof![Just(Family::IPV4_UNICAST), Just(Family::IPV6_UNICAST)];
    let gr_family = (family.clone(), any::<bool>()).prop_map(|(family, forwarding_preserved)| {
        GracefulRestartFamily {
            family,
            forwarding_preserved,
        }
    });
    let gr = (
        any::<bool>(),
        any::<bool>(),
        0u16..=4095,
        vec(gr_family, 0..3),
    )
        .prop_map(|(restarting, notification, restart_time, families)| {
            Capability::GracefulRestart(GracefulRestart {
                restarting,
                notification,
                restart_time,
                families,
            })
        });
    // Codes 239..=254 are reserved for experimental use (RFC 8810): nobody types them.
    let unknown_code = if opaque {
        (66u8..=255).boxed()
    } else {
        (239u8..=254).boxed()
    };
    let unknown = (unknown_code, vec(any::<u8>(), 0..8))
        .prop_map(|(code, value)| Capability::Unknown { code, value });
    let families = if opaque {
        prop_oneof![family, other_family()].boxed()
    } else {
        family.boxed()
    };
    prop_oneof![
        families.prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        gr,
        any::<u32>().prop_map(Capability::FourOctetAs),
        unknown,
    ]
    .boxed()
}

fn open(opaque: bool) -> impl Strategy<Value = Open> {
    let parameter =
        vec(capability(opaque), 0..4).prop_map(|capabilities| OptionalParameter { capabilities });
    // NetGauze holds the identifier to RFC 4271's "valid unicast IP host address".
    let identifier = if opaque {
        any::<u32>().prop_map(Ipv4Addr::from).boxed()
    } else {
        host_ipv4().boxed()
    };
    (any::<u16>(), any::<u16>(), identifier, vec(parameter, 0..3)).prop_map(
        |(my_as, hold_time, bgp_identifier, parameters)| Open {
            my_as,
            hold_time,
            bgp_identifier,
            parameters,
        },
    )
}

fn notification(opaque: bool) -> BoxedStrategy<Notification> {
    let code = if opaque {
        any::<(u8, u8)>().boxed()
    } else {
        // Codes and subcodes NetGauze names: header 1-3, OPEN 1-7 without 5, UPDATE 1-11
        // without 7, Cease 1-8.
        prop_oneof![
            (Just(1u8), 1u8..=3),
            (Just(2u8), prop_oneof![1u8..=4, 6u8..=7]),
            (Just(3u8), prop_oneof![1u8..=6, 8u8..=11]),
            (Just(6u8), 1u8..=8),
        ]
        .boxed()
    };
    (code, vec(any::<u8>(), 0..16))
        .prop_map(|((code, subcode), data)| Notification {
            code: ErrorCode::from_wire(code, subcode),
            data,
        })
        .boxed()
}

fn message(opaque: bool) -> impl Strategy<Value = Message> {
    let refresh = (
        prop_oneof![Just(Family::IPV4_UNICAST), Just(Family::IPV6_UNICAST)],
        0u8..=2,
    )
        .prop_map(|(family, subtype)| Message::RouteRefresh(RouteRefresh { family, subtype }));
    prop_oneof![
        open(opaque).prop_map(Message::Open),
        update(opaque).prop_map(Message::Update),
        notification(opaque).prop_map(Message::Notification),
        Just(Message::Keepalive),
        refresh,
    ]
}

// ---------------------------------------------------------------------------------------------
// NetGauze.

fn netgauze_context() -> BgpParsingContext {
    BgpParsingContext::new(true, HashMap::new(), HashMap::new(), true, true, true, true)
}

fn netgauze_parse(wire: &[u8]) -> NgMessage {
    let mut reader = SliceReader::new(wire);
    let parsed = NgMessage::parse(&mut reader, &mut netgauze_context());
    let message = parsed.unwrap_or_else(|e| panic!("NetGauze refused: {e:?} in {wire:02x?}"));
    assert_eq!(reader.remaining(), 0, "NetGauze left octets of {wire:02x?}");
    message
}

fn netgauze_write(message: &NgMessage) -> Vec<u8> {
    let mut out = Vec::new();
    message
        .write(&mut out)
        .expect("NetGauze writes what it parsed");
    out
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// A valid header in front of arbitrary body bytes, so decoding gets past framing.
fn framed_garbage() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=5, vec(any::<u8>(), 0..200)).prop_map(|(message_type, body)| {
        let mut wire = vec![0xff; 16];
        wire.extend_from_slice(
            &u16::try_from(19 + body.len())
                .expect("short body")
                .to_be_bytes(),
        );
        wire.push(message_type);
        wire.extend_from_slice(&body);
        wire
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..300), four in any::<bool>()) {
        let codec = Codec { four_octet_as: four };
        let _ = ferrolb_speaker::bgp::packet::frame_length(&bytes);
        let _ = decode(&bytes, codec);
    }

    #[test]
    fn decoder_never_panics_on_framed_garbage(wire in framed_garbage(), four in any::<bool>()) {
        let _ = decode(&wire, Codec { four_octet_as: four });
    }

    #[test]
    fn decoder_never_panics_on_corrupted_messages(
        message in message(true),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        four in any::<bool>(),
    ) {
        let mut wire = message.encode(FOUR).unwrap().to_vec();
        for (at, value) in flips {
            let i = at.index(wire.len());
            wire[i] = value;
        }
        if let Err(error) = decode(&wire, Codec { four_octet_as: four }) {
            // Every refusal names a NOTIFICATION.
            let _ = error.notification();
        }
    }

    #[test]
    fn every_message_round_trips(message in message(true)) {
        let wire = message.encode(FOUR).unwrap();
        prop_assert_eq!(decode(&wire, FOUR).unwrap(), message);
    }

    #[test]
    fn netgauze_reads_what_we_write_with_the_same_meaning(message in message(false)) {
        let wire = message.encode(FOUR).unwrap();
        let theirs = netgauze_parse(&wire);
        let rewritten = netgauze_write(&theirs);
        prop_assert_eq!(decode(&rewritten, FOUR).unwrap(), message);
    }
}

// ---------------------------------------------------------------------------------------------
// Field-level checks in NetGauze's model for what the speaker sends.

#[test]
fn netgauze_sees_our_open_capabilities() {
    use netgauze_bgp_pkt::capabilities::BgpCapability;
    // The OPEN the session state machine sends, restarting under graceful restart.
    let open = Fsm::new(PeerConfig {
        local_as: 4_200_000_001,
        peer_as: PeerAs::External,
        bgp_identifier: Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 90,
        keepalive: None,
        connect_retry: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(30),
        passive: false,
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        graceful_restart: Some(GracefulRestartConfig {
            restart_time: 120,
            restarted: true,
        }),
        jitter_seed: 1,
    })
    .unwrap()
    .local_open();
    let NgMessage::Open(theirs) = netgauze_parse(&Message::Open(open).encode(FOUR).unwrap()) else {
        panic!("not an OPEN")
    };
    assert_eq!(theirs.my_as(), 23456);
    assert_eq!(theirs.my_asn4(), 4_200_000_001);
    assert_eq!(theirs.hold_time(), 90);
    assert_eq!(theirs.bgp_id(), Ipv4Addr::new(192, 0, 2, 1));
    let caps = theirs.capabilities();
    assert_eq!(caps.len(), 5);
    assert!(matches!(caps[2], BgpCapability::RouteRefresh));
    match caps[4] {
        BgpCapability::GracefulRestartCapability(gr) => {
            assert!(gr.restart());
            assert_eq!(gr.time(), 120);
        }
        other => panic!("expected graceful restart, got {other:?}"),
    }
}

#[test]
fn netgauze_sees_our_ipv6_announcement_and_end_of_rib() {
    use netgauze_bgp_pkt::path_attribute::PathAttributeValue;
    use netgauze_iana::address_family::AddressType;
    let update = Update {
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: vec![AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![65001],
                }],
            }),
            PathAttribute::Communities(vec![Community::new(65001, 100)]),
            PathAttribute::MpReach(MpReach::Ipv6Unicast {
                next_hop: "2001:db8::1".parse().unwrap(),
                link_local: None,
                nlri: vec!["2001:db8:1::/64".parse().unwrap()],
            }),
            PathAttribute::LargeCommunities(vec![LargeCommunity {
                global_admin: 65001,
                local_data_1: 7,
                local_data_2: 9,
            }]),
        ],
        ..Update::default()
    };
    let NgMessage::Update(theirs) = netgauze_parse(&Message::Update(update).encode(FOUR).unwrap())
    else {
        panic!("not an UPDATE")
    };
    let values: Vec<_> = theirs.path_attributes().iter().map(|a| a.value()).collect();
    assert!(matches!(values[0], PathAttributeValue::Origin(_)));
    match values[2] {
        PathAttributeValue::Communities(c) => {
            assert_eq!(c.communities()[0].value(), 65001 << 16 | 100);
        }
        other => panic!("expected communities, got {other:?}"),
    }
    match values[4] {
        PathAttributeValue::LargeCommunities(c) => {
            let first = &c.communities()[0];
            assert_eq!(
                (
                    first.global_admin(),
                    first.local_data1(),
                    first.local_data2()
                ),
                (65001, 7, 9)
            );
        }
        other => panic!("expected large communities, got {other:?}"),
    }
    assert_eq!(theirs.end_of_rib(), None);

    for (family, expected) in [
        (Family::IPV4_UNICAST, AddressType::Ipv4Unicast),
        (Family::IPV6_UNICAST, AddressType::Ipv6Unicast),
    ] {
        let eor = Message::Update(Update::end_of_rib(family))
            .encode(FOUR)
            .unwrap();
        let NgMessage::Update(theirs) = netgauze_parse(&eor) else {
            panic!("not an UPDATE")
        };
        assert_eq!(theirs.end_of_rib(), Some(expected));
    }
}

#[test]
fn netgauze_sees_our_keepalive_notification_and_route_refresh() {
    assert!(matches!(
        netgauze_parse(&Message::Keepalive.encode(FOUR).unwrap()),
        NgMessage::KeepAlive
    ));
    let cease = Notification::new(ErrorCode::Cease(
        ferrolb_speaker::bgp::packet::CeaseSubcode::AdministrativeShutdown,
    ));
    assert!(matches!(
        netgauze_parse(&Message::Notification(cease).encode(FOUR).unwrap()),
        NgMessage::Notification(
            netgauze_bgp_pkt::notification::BgpNotificationMessage::CeaseError(_)
        )
    ));
    let refresh = Message::RouteRefresh(RouteRefresh::request(Family::IPV6_UNICAST));
    let NgMessage::RouteRefresh(theirs) = netgauze_parse(&refresh.encode(FOUR).unwrap()) else {
        panic!("not a ROUTE-REFRESH")
    };
    assert_eq!(
        theirs.address_type(),
        netgauze_iana::address_family::AddressType::Ipv6Unicast
    );
}
