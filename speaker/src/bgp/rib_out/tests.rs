//! Adj-RIB-Out behaviour: minimal incremental UPDATEs, grouping, splitting at 4096 octets,
//! End-of-RIB, per-family next hops, LOCAL_PREF to internal peers only.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::bgp::packet::{Message, decode};

const LOCAL_AS: u32 = 65000;

fn negotiated(internal: bool, families: Vec<Family>) -> Negotiated {
    Negotiated {
        peer_as: if internal { LOCAL_AS } else { 65001 },
        peer_identifier: Ipv4Addr::new(192, 0, 2, 20),
        internal,
        hold_time: 90,
        keepalive: 30,
        families,
        four_octet_as: true,
        route_refresh: true,
        peer_graceful_restart: None,
    }
}

fn next_hops() -> NextHops {
    NextHops {
        ipv4: Some(Ipv4Addr::new(192, 0, 2, 10)),
        ipv6: Some("2001:db8::10".parse().unwrap()),
        ipv6_link_local: None,
    }
}

fn both() -> Vec<Family> {
    vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
}

fn rib(internal: bool) -> AdjRibOut {
    AdjRibOut::new(LOCAL_AS, &negotiated(internal, both()), next_hops()).unwrap()
}

/// `rib.sync` with routes built as a plain map.
fn sync(rib: &mut AdjRibOut, routes: &BTreeMap<IpNet, RouteAttributes>) -> Vec<Update> {
    rib.sync(&Routes::from(routes.clone()))
}

/// A RIB whose initial sync (and End-of-RIB) is done with `routes`.
fn synced(routes: &BTreeMap<IpNet, RouteAttributes>) -> AdjRibOut {
    let mut rib = rib(false);
    sync(&mut rib, routes);
    rib
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn routes(prefixes: &[&str]) -> BTreeMap<IpNet, RouteAttributes> {
    prefixes
        .iter()
        .map(|p| (net(p), RouteAttributes::default()))
        .collect()
}

fn with_communities(values: &[u32]) -> RouteAttributes {
    RouteAttributes {
        communities: values.iter().copied().map(Community).collect(),
        ..RouteAttributes::default()
    }
}

/// Every prefix an UPDATE announces, either family.
fn announced(update: &Update) -> Vec<IpNet> {
    let mut prefixes: Vec<IpNet> = update.nlri.iter().copied().map(IpNet::V4).collect();
    for attribute in &update.attributes {
        if let PathAttribute::MpReach(MpReach::Ipv6Unicast { nlri, .. }) = attribute {
            prefixes.extend(nlri.iter().copied().map(IpNet::V6));
        }
    }
    prefixes
}

fn withdrawn(update: &Update) -> Vec<IpNet> {
    let mut prefixes: Vec<IpNet> = update.withdrawn.iter().copied().map(IpNet::V4).collect();
    for attribute in &update.attributes {
        if let PathAttribute::MpUnreach(MpUnreach::Ipv6Unicast(w)) = attribute {
            prefixes.extend(w.iter().copied().map(IpNet::V6));
        }
    }
    prefixes
}

/// Encodes and decodes each UPDATE: all fit in 4096 octets and decode cleanly.
fn on_the_wire(updates: &[Update]) -> Vec<Update> {
    updates
        .iter()
        .map(|u| {
            let wire = Message::Update(u.clone())
                .encode(Codec::FOUR_OCTET_AS)
                .unwrap();
            assert!(wire.len() <= MAX_MESSAGE_LEN);
            match decode(&wire, Codec::FOUR_OCTET_AS).unwrap() {
                Message::Update(decoded) => {
                    assert!(decoded.malformed.is_empty(), "{decoded:?}");
                    decoded
                }
                other => panic!("{other:?}"),
            }
        })
        .collect()
}

#[test]
fn initial_sync_sends_routes_then_end_of_rib_for_each_family() {
    let mut rib = rib(false);
    let updates = sync(&mut rib, &routes(&["203.0.113.1/32", "2001:db8:1::1/128"]));
    assert_eq!(updates.len(), 4);
    assert_eq!(announced(&updates[0]), vec![net("203.0.113.1/32")]);
    assert_eq!(announced(&updates[1]), vec![net("2001:db8:1::1/128")]);
    assert_eq!(updates[2].end_of_rib_family(), Some(Family::IPV4_UNICAST));
    assert_eq!(updates[3].end_of_rib_family(), Some(Family::IPV6_UNICAST));
    on_the_wire(&updates);
}

#[test]
fn initial_sync_with_nothing_to_send_still_marks_end_of_rib() {
    let updates = sync(&mut rib(false), &BTreeMap::new());
    let families: Vec<_> = updates.iter().map(Update::end_of_rib_family).collect();
    assert_eq!(
        families,
        vec![Some(Family::IPV4_UNICAST), Some(Family::IPV6_UNICAST)]
    );
}

#[test]
fn unchanged_routes_send_nothing() {
    let desired = routes(&["203.0.113.1/32", "2001:db8:1::1/128"]);
    let mut rib = synced(&desired);
    assert_eq!(sync(&mut rib, &desired), vec![]);
}

#[test]
fn adding_one_prefix_emits_exactly_one_update_with_it() {
    let mut desired = routes(&["203.0.113.1/32", "203.0.113.2/32"]);
    let mut rib = synced(&desired);
    desired.insert(net("203.0.113.3/32"), RouteAttributes::default());
    let updates = sync(&mut rib, &desired);
    assert_eq!(updates.len(), 1);
    assert_eq!(announced(&updates[0]), vec![net("203.0.113.3/32")]);
    assert!(withdrawn(&updates[0]).is_empty());
}

#[test]
fn removing_one_prefix_emits_exactly_one_withdrawal_per_family() {
    let mut desired = routes(&[
        "203.0.113.1/32",
        "203.0.113.2/32",
        "2001:db8:1::1/128",
        "2001:db8:1::2/128",
    ]);
    let mut rib = synced(&desired);
    desired.remove(&net("203.0.113.2/32"));
    let updates = sync(&mut rib, &desired);
    assert_eq!(updates.len(), 1);
    assert_eq!(withdrawn(&updates[0]), vec![net("203.0.113.2/32")]);
    assert!(announced(&updates[0]).is_empty());

    desired.remove(&net("2001:db8:1::1/128"));
    let updates = sync(&mut rib, &desired);
    assert_eq!(updates.len(), 1);
    assert_eq!(withdrawn(&updates[0]), vec![net("2001:db8:1::1/128")]);
    on_the_wire(&updates);
}

#[test]
fn changed_communities_reannounce_without_withdrawal() {
    let mut desired = routes(&["203.0.113.1/32", "203.0.113.2/32"]);
    let mut rib = synced(&desired);
    desired.insert(net("203.0.113.2/32"), with_communities(&[65000 << 16 | 7]));
    let updates = on_the_wire(&sync(&mut rib, &desired));
    assert_eq!(updates.len(), 1);
    assert_eq!(announced(&updates[0]), vec![net("203.0.113.2/32")]);
    assert!(
        updates[0]
            .attributes
            .contains(&PathAttribute::Communities(vec![Community(
                65000 << 16 | 7
            )]))
    );
    assert_eq!(
        rib.advertised().get(&net("203.0.113.2/32")),
        Some(&with_communities(&[65000 << 16 | 7]))
    );
}

#[test]
fn prefixes_with_identical_attributes_share_an_update() {
    let mut desired = routes(&["203.0.113.1/32", "203.0.113.2/32"]);
    desired.insert(net("203.0.113.3/32"), with_communities(&[1]));
    desired.insert(net("203.0.113.4/32"), with_communities(&[1]));
    let updates = sync(&mut rib(false), &desired);
    let groups: Vec<Vec<IpNet>> = updates
        .iter()
        .map(announced)
        .filter(|a| !a.is_empty())
        .collect();
    assert_eq!(
        groups,
        vec![
            vec![net("203.0.113.1/32"), net("203.0.113.2/32")],
            vec![net("203.0.113.3/32"), net("203.0.113.4/32")],
        ]
    );
}

#[test]
fn local_pref_goes_to_internal_peers_only_and_as_path_to_external_only() {
    let desired: BTreeMap<IpNet, RouteAttributes> = [(
        net("203.0.113.1/32"),
        RouteAttributes {
            local_pref: Some(250),
            ..RouteAttributes::default()
        },
    )]
    .into();
    let external = on_the_wire(&sync(&mut rib(false), &desired));
    assert!(
        !external[0]
            .attributes
            .iter()
            .any(|a| matches!(a, PathAttribute::LocalPref(_)))
    );
    assert!(
        external[0]
            .attributes
            .contains(&PathAttribute::AsPath(AsPath {
                segments: vec![AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![LOCAL_AS]
                }]
            }))
    );
    let internal = on_the_wire(&sync(&mut rib(true), &desired));
    assert!(
        internal[0]
            .attributes
            .contains(&PathAttribute::LocalPref(250))
    );
    assert!(
        internal[0]
            .attributes
            .contains(&PathAttribute::AsPath(AsPath::default()))
    );
    let default = on_the_wire(&sync(&mut rib(true), &routes(&["2001:db8::1/128"])));
    assert!(
        default[0]
            .attributes
            .contains(&PathAttribute::LocalPref(DEFAULT_LOCAL_PREF))
    );
}

#[test]
fn each_family_carries_its_own_next_hop() {
    let hops = NextHops {
        ipv6_link_local: Some("fe80::10".parse().unwrap()),
        ..next_hops()
    };
    let mut rib = AdjRibOut::new(LOCAL_AS, &negotiated(false, both()), hops).unwrap();
    let updates = on_the_wire(&sync(
        &mut rib,
        &routes(&["203.0.113.1/32", "2001:db8:1::/64"]),
    ));
    assert!(
        updates[0]
            .attributes
            .contains(&PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 10)))
    );
    assert!(updates[1].attributes.iter().any(|a| matches!(
        a,
        PathAttribute::MpReach(MpReach::Ipv6Unicast { next_hop, link_local: Some(ll), .. })
            if *next_hop == hops.ipv6.unwrap() && *ll == hops.ipv6_link_local.unwrap()
    )));
    assert!(
        !updates[1]
            .attributes
            .iter()
            .any(|a| matches!(a, PathAttribute::NextHop(_)))
    );
}

#[test]
fn routes_of_a_family_not_negotiated_are_not_sent() {
    let mut rib = AdjRibOut::new(
        LOCAL_AS,
        &negotiated(false, vec![Family::IPV4_UNICAST]),
        next_hops(),
    )
    .unwrap();
    let updates = sync(&mut rib, &routes(&["203.0.113.1/32", "2001:db8:1::1/128"]));
    assert_eq!(updates.len(), 2);
    assert_eq!(announced(&updates[0]), vec![net("203.0.113.1/32")]);
    assert_eq!(updates[1].end_of_rib_family(), Some(Family::IPV4_UNICAST));
    assert_eq!(rib.advertised().len(), 1);
}

#[test]
fn negotiated_family_without_next_hop_is_refused() {
    let hops = NextHops {
        ipv6: None,
        ..next_hops()
    };
    assert_eq!(
        AdjRibOut::new(LOCAL_AS, &negotiated(false, both()), hops).unwrap_err(),
        RibOutError::NoNextHop {
            family: Family::IPV6_UNICAST
        }
    );
}

fn many_v4(count: u32) -> BTreeMap<IpNet, RouteAttributes> {
    (0..count)
        .map(|i| {
            (
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap()),
                RouteAttributes::default(),
            )
        })
        .collect()
}

fn many_v6(count: u32) -> BTreeMap<IpNet, RouteAttributes> {
    (0..count)
        .map(|i| {
            let address =
                Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i));
            (
                IpNet::V6(Ipv6Net::new(address, 128).unwrap()),
                RouteAttributes::default(),
            )
        })
        .collect()
}

#[test]
fn ten_thousand_ipv4_prefixes_pack_into_few_full_messages() {
    let desired = many_v4(10_000);
    let updates = sync(&mut rib(false), &desired);
    let routes = &updates[..updates.len() - 2];
    // 5 octets per /32 and about 4040 octets of room: 808 per message, so 13 messages.
    assert_eq!(routes.len(), 13);
    let decoded = on_the_wire(routes);
    let all: Vec<IpNet> = decoded.iter().flat_map(announced).collect();
    assert_eq!(all, desired.keys().copied().collect::<Vec<_>>());
}

#[test]
fn ten_thousand_ipv6_prefixes_pack_into_few_full_messages() {
    let desired = many_v6(10_000);
    let updates = sync(&mut rib(false), &desired);
    let routes = &updates[..updates.len() - 2];
    // 17 octets per /128 and about 4010 octets of room: 235 per message, so 43 messages.
    assert_eq!(routes.len(), 43);
    let all: Vec<IpNet> = on_the_wire(routes).iter().flat_map(announced).collect();
    assert_eq!(all, desired.keys().copied().collect::<Vec<_>>());
}

#[test]
fn withdrawing_ten_thousand_prefixes_packs_too() {
    let mut desired = many_v4(10_000);
    desired.extend(many_v6(10_000));
    let mut rib = synced(&desired);
    let updates = sync(&mut rib, &BTreeMap::new());
    // IPv4: 50,000 octets in 4073-octet withdrawn fields (13); IPv6: 170,000 octets in
    // 4066-octet MP_UNREACH_NLRI attributes (42).
    assert_eq!(updates.len(), 13 + 42);
    let all: Vec<IpNet> = on_the_wire(&updates).iter().flat_map(withdrawn).collect();
    assert_eq!(all.len(), 20_000);
    assert!(rib.advertised().is_empty());
}

#[test]
fn route_refresh_resends_the_family() {
    let desired = routes(&["203.0.113.1/32", "2001:db8:1::1/128"]);
    let rib = synced(&desired);
    let updates = rib.refresh(Family::IPV6_UNICAST);
    assert_eq!(updates.len(), 1);
    assert_eq!(announced(&updates[0]), vec![net("2001:db8:1::1/128")]);
}

#[test]
fn two_octet_session_with_a_four_octet_local_as_is_refused() {
    let negotiated = Negotiated {
        four_octet_as: false,
        ..negotiated(false, both())
    };
    assert!(matches!(
        AdjRibOut::new(4_200_000_001, &negotiated, next_hops()),
        Err(RibOutError::Encode(EncodeError::AsnNeedsFourOctets {
            asn: 4_200_000_001
        }))
    ));
}

/// Applies UPDATEs to a model of the peer's Adj-RIB-In, as a receiver would.
fn apply(peer: &mut BTreeMap<IpNet, Vec<PathAttribute>>, updates: &[Update]) {
    for update in on_the_wire(updates) {
        for prefix in withdrawn(&update) {
            peer.remove(&prefix);
        }
        let common: Vec<PathAttribute> = update
            .attributes
            .iter()
            .filter(|a| !matches!(a, PathAttribute::MpReach(_) | PathAttribute::MpUnreach(_)))
            .cloned()
            .collect();
        for prefix in announced(&update) {
            peer.insert(prefix, common.clone());
        }
    }
}

fn communities_of(attributes: &[PathAttribute]) -> Vec<Community> {
    attributes
        .iter()
        .find_map(|a| match a {
            PathAttribute::Communities(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

proptest! {
    #[test]
    fn peer_ends_up_with_exactly_the_desired_routes(
        rounds in proptest::collection::vec(
            proptest::collection::btree_map(
                (any::<bool>(), 0u32..300).prop_map(|(v6, i)| if v6 {
                    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)), 128).unwrap())
                } else {
                    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0xcb00_7100 + i), 32).unwrap())
                }),
                (0u32..3).prop_map(|c| if c == 0 { RouteAttributes::default() } else { with_communities(&[c]) }),
                0..200,
            ),
            1..5,
        ),
    ) {
        let mut rib = rib(false);
        let mut peer = BTreeMap::new();
        for desired in rounds {
            apply(&mut peer, &sync(&mut rib, &desired));
            prop_assert_eq!(peer.keys().collect::<Vec<_>>(), desired.keys().collect::<Vec<_>>());
            for (prefix, attributes) in &desired {
                let sent: Vec<Community> = attributes.communities.iter().copied().collect();
                prop_assert_eq!(&communities_of(&peer[prefix]), &sent);
            }
        }
    }
}
