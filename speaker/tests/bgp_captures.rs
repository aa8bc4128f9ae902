//! Messages captured from BIRD, FRR and GoBGP (see `captures/README.md`) decode in our codec,
//! carry what the daemons were configured to send, and re-encode to the same bytes wherever the
//! sender chose the canonical encoding.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ferrolb_speaker::bgp::packet::{
    Capability, Codec, Community, ErrorCode, Family, LargeCommunity, Message, MpReach,
    PathAttribute, Update, decode,
};

const FOUR: Codec = Codec::FOUR_OCTET_AS;

/// Every fixture file and its messages as bytes.
fn captures() -> BTreeMap<String, Vec<Vec<u8>>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/captures");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("captures directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "hex") {
            let text = std::fs::read_to_string(&path).expect("readable fixture");
            let messages = text
                .lines()
                .map(|line| {
                    (0..line.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex"))
                        .collect()
                })
                .collect();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name")
                .to_owned();
            files.insert(name, messages);
        }
    }
    assert_eq!(
        files.len(),
        8,
        "two sessions in each direction for BIRD and GoBGP with FRR"
    );
    files
}

fn decoded(file: &str) -> Vec<Message> {
    captures()[file]
        .iter()
        .map(|wire| decode(wire, FOUR).expect("decodes"))
        .collect()
}

/// Whether the sender used the Extended Length flag on an attribute shorter than 256 octets,
/// which is allowed (RFC 4271 §4.3) but not the encoding this codec chooses.
fn has_needless_extended_length(wire: &[u8]) -> bool {
    let withdrawn = usize::from(u16::from_be_bytes([wire[19], wire[20]]));
    let start = 21 + withdrawn + 2;
    let length = usize::from(u16::from_be_bytes([wire[start - 2], wire[start - 1]]));
    let mut at = start;
    while at < start + length {
        let extended = wire[at] & 0x10 != 0;
        let value = if extended {
            usize::from(u16::from_be_bytes([wire[at + 2], wire[at + 3]]))
        } else {
            usize::from(wire[at + 2])
        };
        if extended && value <= 255 {
            return true;
        }
        at += 3 + usize::from(extended) + value;
    }
    false
}

#[test]
fn every_captured_message_decodes_and_re_encodes() {
    let mut byte_identical = 0;
    let mut total = 0;
    for (file, messages) in captures() {
        for wire in messages {
            total += 1;
            let message =
                decode(&wire, FOUR).unwrap_or_else(|e| panic!("{file}: {e} in {wire:02x?}"));
            if let Message::Update(update) = &message {
                assert!(update.malformed.is_empty(), "{file}: {update:?}");
            }
            let again = message.encode(FOUR).expect("re-encodes");
            let canonical =
                !matches!(message, Message::Update(_)) || !has_needless_extended_length(&wire);
            if canonical {
                assert_eq!(again.as_ref(), wire.as_slice(), "{file}: {message:?}");
                byte_identical += 1;
            } else {
                assert_eq!(
                    decode(&again, FOUR).expect("decodes again"),
                    message,
                    "{file}"
                );
            }
        }
    }
    assert!(total >= 55, "{total} messages");
    // Only FRR's and GoBGP's MP_REACH_NLRI with the Extended Length bit differ in bytes.
    assert!(
        byte_identical * 10 >= total * 7,
        "{byte_identical} of {total} byte-identical"
    );
}

fn open_of(file: &str) -> ferrolb_speaker::bgp::packet::Open {
    decoded(file)
        .into_iter()
        .find_map(|m| match m {
            Message::Open(open) => Some(open),
            _ => None,
        })
        .expect("an OPEN")
}

#[test]
fn each_daemon_opens_with_its_as_and_the_session_family() {
    for (file, asn, family) in [
        ("bird-to-frr-ipv4.hex", 65002, Family::IPV4_UNICAST),
        ("bird-to-frr-ipv6.hex", 65002, Family::IPV6_UNICAST),
        ("frr-to-bird-ipv4.hex", 65001, Family::IPV4_UNICAST),
        ("frr-to-gobgp-ipv6.hex", 65001, Family::IPV6_UNICAST),
        ("gobgp-to-frr-ipv4.hex", 65003, Family::IPV4_UNICAST),
        ("gobgp-to-frr-ipv6.hex", 65003, Family::IPV6_UNICAST),
    ] {
        let open = open_of(file);
        assert_eq!(open.asn(), asn, "{file}");
        assert_eq!(open.four_octet_as(), Some(asn), "{file}");
        assert!(
            open.capabilities()
                .any(|c| *c == Capability::Multiprotocol(family)),
            "{file}"
        );
        assert!(
            open.capabilities().any(|c| *c == Capability::RouteRefresh),
            "{file}"
        );
    }
    // FRR advertises graceful restart (helper mode) and more, each capability in its own
    // parameter.
    let frr = open_of("frr-to-bird-ipv4.hex");
    assert!(frr.parameters.len() > 1);
    assert!(
        frr.capabilities()
            .any(|c| matches!(c, Capability::GracefulRestart(_)))
    );
    assert!(
        frr.capabilities()
            .any(|c| matches!(c, Capability::Unknown { .. }))
    );
}

fn updates_of(file: &str) -> Vec<Update> {
    decoded(file)
        .into_iter()
        .filter_map(|m| match m {
            Message::Update(update) => Some(update),
            _ => None,
        })
        .collect()
}

/// The communities and large communities of the UPDATE that announces `prefix`.
fn announcement(file: &str, prefix: &str) -> (Vec<Community>, Vec<LargeCommunity>) {
    for update in updates_of(file) {
        let mut communities = Vec::new();
        let mut large = Vec::new();
        let mut prefixes: Vec<String> = update.nlri.iter().map(ToString::to_string).collect();
        for attribute in &update.attributes {
            match attribute {
                PathAttribute::Communities(c) => communities.clone_from(c),
                PathAttribute::LargeCommunities(l) => large.clone_from(l),
                PathAttribute::MpReach(MpReach::Ipv6Unicast { nlri, .. }) => {
                    prefixes.extend(nlri.iter().map(ToString::to_string));
                }
                _ => {}
            }
        }
        if prefixes.iter().any(|p| p == prefix) {
            return (communities, large);
        }
    }
    panic!("{file} does not announce {prefix}")
}

fn large(global_admin: u32, local_data_1: u32, local_data_2: u32) -> LargeCommunity {
    LargeCommunity {
        global_admin,
        local_data_1,
        local_data_2,
    }
}

#[test]
fn announcements_carry_the_configured_prefixes_and_communities() {
    let frr = (
        vec![Community::new(65001, 100), Community::new(65001, 101)],
        vec![large(65001, 1, 2)],
    );
    let bird = (vec![Community::new(65002, 200)], vec![large(65002, 3, 4)]);
    let gobgp = (vec![Community::new(65003, 300)], vec![large(65003, 5, 6)]);
    for (file, (communities, large), prefix) in [
        ("frr-to-bird-ipv4.hex", frr.clone(), "198.51.100.0/24"),
        ("frr-to-gobgp-ipv6.hex", frr, "2001:db8:f::/48"),
        ("bird-to-frr-ipv4.hex", bird.clone(), "203.0.113.0/24"),
        ("bird-to-frr-ipv6.hex", bird, "2001:db8:b::/48"),
        ("gobgp-to-frr-ipv4.hex", gobgp.clone(), "203.0.113.128/25"),
        ("gobgp-to-frr-ipv6.hex", gobgp, "2001:db8:c::/48"),
    ] {
        assert_eq!(announcement(file, prefix), (communities, large), "{file}");
    }
}

#[test]
fn bird_and_frr_mark_end_of_rib_for_each_family() {
    for (file, family) in [
        ("bird-to-frr-ipv4.hex", Family::IPV4_UNICAST),
        ("bird-to-frr-ipv6.hex", Family::IPV6_UNICAST),
        ("frr-to-bird-ipv4.hex", Family::IPV4_UNICAST),
        ("frr-to-bird-ipv6.hex", Family::IPV6_UNICAST),
    ] {
        assert!(
            updates_of(file)
                .iter()
                .any(|u| u.end_of_rib_family() == Some(family)),
            "{file}"
        );
    }
}

#[test]
fn route_refresh_and_cease_notifications_decode() {
    for file in [
        "bird-to-frr-ipv4.hex",
        "frr-to-bird-ipv4.hex",
        "frr-to-gobgp-ipv4.hex",
    ] {
        assert!(
            decoded(file)
                .iter()
                .any(|m| matches!(m, Message::RouteRefresh(r) if r.family == Family::IPV4_UNICAST)),
            "{file}"
        );
    }
    for file in [
        "bird-to-frr-ipv4.hex",
        "frr-to-bird-ipv6.hex",
        "gobgp-to-frr-ipv4.hex",
    ] {
        assert!(
            decoded(file).iter().any(
                |m| matches!(m, Message::Notification(n) if matches!(n.code, ErrorCode::Cease(_)))
            ),
            "{file}"
        );
    }
}
