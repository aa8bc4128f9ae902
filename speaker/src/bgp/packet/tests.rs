//! Golden-byte tests: each expected byte string is written out by hand from the RFC formats, so
//! a mistake in the codec cannot hide behind the same mistake in the expectation.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

const FOUR: Codec = Codec::FOUR_OCTET_AS;
const MARKER_HEX: &str = "ffffffff ffffffff ffffffff ffffffff";

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// A message: the marker followed by `rest` (length, type, body).
fn msg(rest: &str) -> Vec<u8> {
    hex(&format!("{MARKER_HEX} {rest}"))
}

fn assert_golden(message: &Message, wire: &[u8]) {
    assert_eq!(
        message.encode(FOUR).unwrap().as_ref(),
        wire,
        "encoding of {message:?}"
    );
    assert_eq!(
        &decode(wire, FOUR).unwrap(),
        message,
        "decoding of {wire:02x?}"
    );
}

fn decode_error(wire: &[u8]) -> DecodeError {
    decode(wire, FOUR).unwrap_err()
}

fn update_of(wire: &[u8]) -> Update {
    match decode(wire, FOUR).unwrap() {
        Message::Update(update) => update,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

/// Decodes an UPDATE that RFC 7606 keeps alive as treat-as-withdraw, returning the (code,
/// subcode) RFC 4271 would have sent for its first malformed attribute.
fn treat_as_withdraw_code(wire: &[u8]) -> (u8, u8) {
    let update = update_of(wire);
    assert!(update.treat_as_withdraw(), "{update:?}");
    update.malformed[0].error.notification().code.to_wire()
}

fn net4(s: &str) -> ipnet::Ipv4Net {
    s.parse().unwrap()
}

fn net6(s: &str) -> ipnet::Ipv6Net {
    s.parse().unwrap()
}

#[test]
fn keepalive_is_the_bare_header() {
    assert_golden(&Message::Keepalive, &msg("0013 04"));
}

#[test]
fn open_carries_every_capability_in_one_parameter() {
    let open = Open::new(
        65001,
        90,
        Ipv4Addr::new(192, 0, 2, 1),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001),
            Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                notification: false,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    family: Family::IPV4_UNICAST,
                    forwarding_preserved: true,
                }],
            }),
            Capability::Unknown {
                code: 70,
                value: vec![],
            },
        ],
    );
    let wire = msg("003d 01 \
         04 fde9 005a c0000201 20 \
         02 1e \
         01 04 0001 00 01 \
         01 04 0002 00 01 \
         02 00 \
         41 04 0000fde9 \
         40 06 0078 0001 01 80 \
         46 00");
    assert_golden(&Message::Open(open), &wire);
}

#[test]
fn open_with_four_octet_asn_sends_as_trans() {
    let open = Open::new(
        4_200_000_001,
        0,
        Ipv4Addr::new(192, 0, 2, 2),
        vec![
            Capability::FourOctetAs(4_200_000_001),
            Capability::GracefulRestart(GracefulRestart {
                restarting: true,
                notification: true,
                restart_time: 4095,
                families: vec![],
            }),
        ],
    );
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.asn(), 4_200_000_001);
    let wire = msg("0029 01 04 5ba0 0000 c0000202 0c 02 0a 41 04 fa56ea01 40 02 cfff");
    assert_golden(&Message::Open(open), &wire);
}

#[test]
fn open_keeps_one_parameter_per_capability_as_frr_sends_it() {
    let wire = msg("0025 01 04 fde9 00b4 c0000201 08 02 02 02 00 02 02 46 00");
    let Message::Open(open) = decode(&wire, FOUR).unwrap() else {
        panic!("not an OPEN")
    };
    assert_eq!(open.parameters.len(), 2);
    assert_eq!(
        open.capabilities().collect::<Vec<_>>(),
        vec![
            &Capability::RouteRefresh,
            &Capability::Unknown {
                code: 70,
                value: vec![]
            }
        ]
    );
    assert_eq!(
        Message::Open(open).encode(FOUR).unwrap().as_ref(),
        wire.as_slice()
    );
}

#[test]
fn ipv4_update_carries_every_attribute() {
    let update = Update {
        withdrawn: vec![net4("198.51.100.0/24")],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: vec![AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![65001, 4_200_000_001],
                }],
            }),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            PathAttribute::MultiExitDisc(10),
            PathAttribute::LocalPref(200),
            PathAttribute::Communities(vec![Community::new(65001, 100), Community(0xffff_ff01)]),
            PathAttribute::LargeCommunities(vec![LargeCommunity {
                global_admin: 65001,
                local_data_1: 1,
                local_data_2: 2,
            }]),
        ],
        nlri: vec![
            net4("203.0.113.0/24"),
            net4("203.0.113.128/25"),
            net4("192.0.2.10/32"),
        ],
        malformed: vec![],
    };
    let wire = msg("0069 02 \
         0004 18 c63364 \
         0040 \
         40 01 01 00 \
         40 02 0a 02 02 0000fde9 fa56ea01 \
         40 03 04 c0000201 \
         80 04 04 0000000a \
         40 05 04 000000c8 \
         c0 08 08 fde90064 ffffff01 \
         c0 20 0c 0000fde9 00000001 00000002 \
         18 cb0071 19 cb007180 20 c000020a");
    assert_golden(&Message::Update(update), &wire);
}

#[test]
fn ipv6_update_travels_in_mp_reach_with_link_local_next_hop() {
    let update = Update {
        attributes: vec![
            PathAttribute::Origin(Origin::Incomplete),
            PathAttribute::AsPath(AsPath {
                segments: vec![
                    AsSegment {
                        kind: AsSegmentKind::Sequence,
                        asns: vec![65001],
                    },
                    AsSegment {
                        kind: AsSegmentKind::Set,
                        asns: vec![65002, 65003],
                    },
                ],
            }),
            PathAttribute::MpReach(MpReach::Ipv6Unicast {
                next_hop: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
                nlri: vec![net6("2001:db8:1::/64"), net6("2001:db8::a/128")],
            }),
        ],
        ..Update::default()
    };
    let wire = msg("0070 02 0000 0059 \
         40 01 01 02 \
         40 02 10 02 01 0000fde9 01 02 0000fdea 0000fdeb \
         80 0e 3f 0002 01 20 \
         20010db8 00000000 00000000 00000001 \
         fe800000 00000000 00000000 00000001 \
         00 \
         40 20010db8 00010000 \
         80 20010db8 00000000 00000000 0000000a");
    assert_golden(&Message::Update(update), &wire);
}

#[test]
fn ipv4_routes_may_travel_in_mp_reach() {
    let update = Update {
        attributes: vec![
            PathAttribute::Origin(Origin::Egp),
            PathAttribute::AsPath(AsPath::default()),
            PathAttribute::MpReach(MpReach::Ipv4Unicast {
                next_hop: Ipv4Addr::new(192, 0, 2, 1),
                nlri: vec![net4("0.0.0.0/0"), net4("203.0.113.7/32")],
            }),
        ],
        ..Update::default()
    };
    let wire = msg("0030 02 0000 0019 \
         40 01 01 01 \
         40 02 00 \
         80 0e 0f 0001 01 04 c0000201 00 00 20 cb007107");
    assert_golden(&Message::Update(update), &wire);
}

#[test]
fn ipv6_withdrawal_travels_in_mp_unreach() {
    let update = Update {
        attributes: vec![PathAttribute::MpUnreach(MpUnreach::Ipv6Unicast(vec![
            net6("2001:db8:1::/64"),
        ]))],
        ..Update::default()
    };
    let wire = msg("0026 02 0000 000f 80 0f 0c 0002 01 40 20010db8 00010000");
    assert_golden(&Message::Update(update), &wire);
}

#[test]
fn end_of_rib_markers_for_both_families() {
    let v4 = Update::end_of_rib(Family::IPV4_UNICAST);
    assert_golden(&Message::Update(v4.clone()), &msg("0017 02 0000 0000"));
    assert_eq!(v4.end_of_rib_family(), Some(Family::IPV4_UNICAST));
    let v6 = Update::end_of_rib(Family::IPV6_UNICAST);
    assert_golden(
        &Message::Update(v6.clone()),
        &msg("001d 02 0000 0006 80 0f 03 0002 01"),
    );
    assert_eq!(v6.end_of_rib_family(), Some(Family::IPV6_UNICAST));
    let withdrawal = Update {
        withdrawn: vec![net4("192.0.2.0/24")],
        ..Update::default()
    };
    assert_eq!(withdrawal.end_of_rib_family(), None);
}

#[test]
fn unknown_optional_attribute_is_kept_with_its_flags() {
    let wire = msg("002f 02 0000 0014 \
         40 01 01 00 40 02 00 40 03 04 c0000201 \
         e0 63 03 010203 \
         18 cb0071");
    let update = update_of(&wire);
    assert_eq!(
        update.attributes[3],
        PathAttribute::Unknown(RawAttribute {
            flags: 0xe0,
            type_code: 99,
            value: vec![1, 2, 3]
        })
    );
    assert!(update.malformed.is_empty());
    assert_eq!(
        Message::Update(update).encode(FOUR).unwrap().as_ref(),
        wire.as_slice()
    );
}

#[test]
fn two_octet_session_encodes_as_path_with_two_octet_asns() {
    let two = Codec {
        four_octet_as: false,
    };
    let update = Update {
        attributes: vec![PathAttribute::AsPath(AsPath {
            segments: vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: vec![65001],
            }],
        })],
        ..Update::default()
    };
    let wire = msg("001e 02 0000 0007 40 02 04 02 01 fde9");
    assert_eq!(
        Message::Update(update.clone())
            .encode(two)
            .unwrap()
            .as_ref(),
        wire.as_slice()
    );
    assert_eq!(decode(&wire, two).unwrap(), Message::Update(update));
    let big = Update {
        attributes: vec![PathAttribute::Aggregator(Aggregator {
            asn: 4_200_000_001,
            address: Ipv4Addr::new(192, 0, 2, 1),
        })],
        ..Update::default()
    };
    assert_eq!(
        Message::Update(big).encode(two).unwrap_err(),
        EncodeError::AsnNeedsFourOctets { asn: 4_200_000_001 }
    );
}

#[test]
fn notification_cease_and_hold_timer_expired() {
    let shutdown = Notification::with_data(
        ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown),
        b"bye".to_vec(),
    );
    assert_golden(
        &Message::Notification(shutdown),
        &msg("0018 03 06 02 627965"),
    );
    assert_golden(
        &Message::Notification(Notification::new(ErrorCode::HoldTimerExpired)),
        &msg("0015 03 04 00"),
    );
    assert_golden(
        &Message::Notification(Notification::new(ErrorCode::Unassigned {
            code: 9,
            subcode: 1,
        })),
        &msg("0015 03 09 01"),
    );
}

#[test]
fn route_refresh_names_the_family() {
    assert_golden(
        &Message::RouteRefresh(RouteRefresh::request(Family::IPV6_UNICAST)),
        &msg("0017 05 0002 00 01"),
    );
}

#[test]
fn framing_waits_for_a_whole_header() {
    assert_eq!(frame_length(&msg("00")), Ok(None));
    assert_eq!(frame_length(&msg("0017 02 0000")), Ok(Some(23)));
}

#[test]
fn bad_marker_is_connection_not_synchronized() {
    let mut wire = msg("0013 04");
    wire[3] = 0xfe;
    let notification = decode_error(&wire).notification();
    assert_eq!(notification.code.to_wire(), (1, 1));
    assert!(notification.data.is_empty());
}

#[test]
fn bad_lengths_are_reported_with_the_length() {
    for (wire, length) in [
        (msg("0012 04"), 18u16),
        (msg("1001 02"), 4097),
        (msg("0014 04 00"), 20),
        (msg("001c 01 04"), 28),
        (msg("0018 05 0001 00 01 00"), 24),
    ] {
        let error = decode_error(&wire);
        assert_eq!(error, DecodeError::BadMessageLength { length });
        let notification = error.notification();
        assert_eq!(notification.code.to_wire(), (1, 2));
        assert_eq!(notification.data, length.to_be_bytes());
    }
}

#[test]
fn unknown_message_type_is_bad_message_type() {
    let notification = decode_error(&msg("0013 09")).notification();
    assert_eq!(notification.code.to_wire(), (1, 3));
    assert_eq!(notification.data, [9]);
}

#[test]
fn open_with_version_3_is_refused_naming_version_4() {
    let error = decode_error(&msg("001d 01 03 fde9 005a c0000201 00"));
    assert_eq!(error, DecodeError::UnsupportedVersion { version: 3 });
    let notification = error.notification();
    assert_eq!(notification.code.to_wire(), (2, 1));
    assert_eq!(notification.data, [0, 4]);
}

#[test]
fn open_with_authentication_parameter_is_unsupported_optional_parameter() {
    let error = decode_error(&msg("0020 01 04 fde9 005a c0000201 03 01 01 00"));
    assert_eq!(
        error,
        DecodeError::UnsupportedOptionalParameter { parameter_type: 1 }
    );
    assert_eq!(error.notification().code.to_wire(), (2, 4));
}

#[test]
fn open_with_inconsistent_parameter_lengths_is_unspecific_open_error() {
    for wire in [
        msg("001f 01 04 fde9 005a c0000201 05 02 00"),
        msg("001f 01 04 fde9 005a c0000201 02 02 05"),
        msg("0023 01 04 fde9 005a c0000201 06 02 04 01 03 0001"),
    ] {
        assert_eq!(
            decode_error(&wire).notification().code.to_wire(),
            (2, 0),
            "{wire:02x?}"
        );
    }
}

#[test]
fn update_lengths_beyond_the_message_are_malformed_attribute_list() {
    for wire in [
        msg("0017 02 0001 0000"),
        msg("0017 02 0000 0001"),
        msg("001a 02 0000 0003 40 01 05"),
    ] {
        let error = decode_error(&wire);
        assert!(
            matches!(
                error,
                DecodeError::Update(UpdateError::MalformedAttributeList { .. })
            ),
            "{error:?}"
        );
        assert_eq!(error.notification().code.to_wire(), (3, 1));
    }
}

#[test]
fn unrecognized_well_known_attribute_resets_with_the_attribute() {
    let error = decode_error(&msg("001b 02 0000 0004 40 63 01 07"));
    let notification = error.notification();
    assert_eq!(notification.code.to_wire(), (3, 2));
    assert_eq!(notification.data, [0x40, 0x63, 0x01, 0x07]);
}

/// A valid IPv4 announcement of 203.0.113.0/24 whose ORIGIN attribute is `origin` (flags,
/// type, length, value as hex, exactly 4 octets).
fn announcement_with_origin(origin: &str) -> Vec<u8> {
    msg(&format!(
        "002f 02 0000 0014 {origin} 40 02 06 02 01 0000fde9 40 03 04 c0000201 18 cb0071"
    ))
}

#[test]
fn origin_with_optional_flag_is_treated_as_withdraw_with_flags_error() {
    let update = update_of(&announcement_with_origin("c0 01 01 00"));
    assert!(update.treat_as_withdraw());
    let error = &update.malformed[0].error;
    assert_eq!(error.notification().code.to_wire(), (3, 4));
    assert_eq!(error.notification().data, [0xc0, 0x01, 0x01, 0x00]);
}

#[test]
fn undefined_origin_value_is_treated_as_withdraw() {
    let update = update_of(&announcement_with_origin("40 01 01 05"));
    assert!(update.treat_as_withdraw());
    assert_eq!(
        update.malformed[0].error.notification().code.to_wire(),
        (3, 6)
    );
    assert_eq!(update.nlri, vec![net4("203.0.113.0/24")]);
}

#[test]
fn missing_next_hop_with_ipv4_nlri_is_treated_as_withdraw() {
    let update = update_of(&msg(
        "0026 02 0000 000b 40 01 01 00 40 02 04 02 01 fde9 18 cb0071",
    ));
    // The AS_PATH decodes only on a 2-octet session; on this 4-octet one it is malformed too.
    let codes: Vec<_> = update
        .malformed
        .iter()
        .map(|m| m.error.notification().code.to_wire())
        .collect();
    assert_eq!(codes, vec![(3, 11), (3, 3)]);
    assert_eq!(update.malformed[1].error.notification().data, [3]);
    assert!(update.treat_as_withdraw());
}

#[test]
fn as_path_with_undefined_segment_type_is_treated_as_withdraw() {
    let wire =
        msg("002f 02 0000 0014 40 01 01 00 40 02 06 07 01 0000fde9 40 03 04 c0000201 18 cb0071");
    assert_eq!(treat_as_withdraw_code(&wire), (3, 11));
}

#[test]
fn communities_of_odd_length_are_treated_as_withdraw() {
    let wire = msg("001d 02 0000 0006 c0 08 03 010203");
    assert_eq!(treat_as_withdraw_code(&wire), (3, 5));
}

#[test]
fn atomic_aggregate_with_a_value_is_discarded_alone() {
    let update = update_of(&msg("001b 02 0000 0004 40 06 01 00"));
    assert!(update.attributes.is_empty());
    assert_eq!(update.malformed[0].recovery, Recovery::AttributeDiscard);
    assert!(!update.treat_as_withdraw());
}

#[test]
fn repeated_attribute_keeps_the_first_occurrence() {
    let update = update_of(&msg("001f 02 0000 0008 40 01 01 00 40 01 01 02"));
    assert_eq!(update.attributes, vec![PathAttribute::Origin(Origin::Igp)]);
    assert!(update.malformed.is_empty());
}

#[test]
fn repeated_mp_unreach_is_malformed_attribute_list() {
    let error = decode_error(&msg("0023 02 0000 000c 80 0f 03 0002 01 80 0f 03 0002 01"));
    assert_eq!(error.notification().code.to_wire(), (3, 1));
}

#[test]
fn mp_reach_with_wrong_next_hop_length_resets_with_optional_attribute_error() {
    let wire = msg("0025 02 0000 000e 80 0e 0b 0002 01 04 c0000201 00 08 20");
    let error = decode_error(&wire);
    let notification = error.notification();
    assert_eq!(notification.code.to_wire(), (3, 9));
    assert_eq!(
        notification.data,
        hex("80 0e 0b 0002 01 04 c0000201 00 08 20")
    );
}

#[test]
fn prefix_longer_than_32_bits_is_invalid_network_field() {
    let error = decode_error(&msg("001c 02 0000 0000 21 cb007101"));
    assert_eq!(error.notification().code.to_wire(), (3, 10));
}

#[test]
fn next_hop_zero_is_treated_as_withdraw() {
    let wire =
        msg("002f 02 0000 0014 40 01 01 00 40 02 06 02 01 0000fde9 40 03 04 00000000 18 cb0071");
    assert_eq!(treat_as_withdraw_code(&wire), (3, 8));
}

#[test]
fn host_bits_past_the_prefix_length_are_ignored() {
    let update = update_of(&msg("001b 02 0000 0000 17 cb0071"));
    assert_eq!(update.nlri, vec![net4("203.0.112.0/23")]);
}

#[test]
fn oversized_update_is_refused_by_the_encoder() {
    let nlri = (0..1100u32).map(|i| ipnet::Ipv4Net::new(Ipv4Addr::from(i << 8), 24).unwrap());
    let update = Update {
        nlri: nlri.collect(),
        ..Update::default()
    };
    assert!(matches!(
        Message::Update(update).encode(FOUR),
        Err(EncodeError::MessageTooLong {
            message_type: 2,
            length: 4423
        })
    ));
}

#[test]
fn mp_reach_without_origin_and_as_path_is_treated_as_withdraw() {
    let update = Update {
        attributes: vec![PathAttribute::MpReach(MpReach::Ipv6Unicast {
            next_hop: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
            link_local: None,
            nlri: vec![net6("::/0")],
        })],
        ..Update::default()
    };
    let wire =
        msg("0030 02 0000 0019 80 0e 16 0002 01 10 20010db8 00000000 00000000 00000002 00 00");
    assert_eq!(
        Message::Update(update.clone())
            .encode(FOUR)
            .unwrap()
            .as_ref(),
        wire.as_slice()
    );
    let decoded = update_of(&wire);
    assert_eq!(decoded.attributes, update.attributes);
    let missing: Vec<_> = decoded.malformed.iter().map(|m| m.error.clone()).collect();
    assert_eq!(
        missing,
        vec![
            UpdateError::MissingWellKnownAttribute { type_code: 1 },
            UpdateError::MissingWellKnownAttribute { type_code: 2 }
        ]
    );
    assert!(decoded.treat_as_withdraw());
}
