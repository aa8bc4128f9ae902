//! Tests of the snapshot: per-object rules (good and bad) and cross-object rules.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;

fn from_json<T: DeserializeOwned>(kind: &str, name: &str, spec: Value) -> T {
    serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": kind,
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("test object deserializes")
}

fn with_created<T: kube::Resource>(mut object: T, rfc3339: &str) -> T {
    object.meta_mut().creation_timestamp = Some(Time(rfc3339.parse().expect("timestamp")));
    object
}

fn pool(name: &str, addresses: &[&str]) -> crd::IPAddressPool {
    from_json("IPAddressPool", name, json!({ "addresses": addresses }))
}

fn peer(name: &str, extra: Value) -> crd::BGPPeer {
    let mut spec = json!({ "myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1" });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                spec.remove(k);
            } else {
                spec.insert(k.clone(), v.clone());
            }
        }
    }
    from_json("BGPPeer", name, spec)
}

fn bgp_adv(name: &str, spec: Value) -> crd::BGPAdvertisement {
    from_json("BGPAdvertisement", name, spec)
}

fn l2_adv(name: &str, spec: Value) -> crd::L2Advertisement {
    from_json("L2Advertisement", name, spec)
}

fn bfd(name: &str, spec: Value) -> crd::BFDProfile {
    from_json("BFDProfile", name, spec)
}

fn community(name: &str, aliases: &[(&str, &str)]) -> crd::Community {
    let aliases: Vec<Value> = aliases
        .iter()
        .map(|(n, v)| json!({ "name": n, "value": v }))
        .collect();
    from_json("Community", name, json!({ "communities": aliases }))
}

/// (kind/name, field, reason) of every error.
fn errors(diagnostics: &[Diagnostic]) -> Vec<(String, String, Reason)> {
    diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (format!("{}/{}", d.kind, d.name), d.field.clone(), d.reason))
        .collect()
}

fn error(kind_name: &str, field: &str, reason: Reason) -> (String, String, Reason) {
    (kind_name.to_owned(), field.to_owned(), reason)
}

fn build_peers(peers: Vec<crd::BGPPeer>) -> (Config, Vec<Diagnostic>) {
    build(&Objects {
        peers,
        ..Objects::default()
    })
}

// ---- pools ----

#[test]
fn valid_pool_is_parsed_into_interval_sets() {
    let (config, diagnostics) = build(&Objects {
        pools: vec![pool(
            "a",
            &[
                "198.51.100.0/26",
                "2001:db8::/120",
                "203.0.113.10-203.0.113.20",
            ],
        )],
        ..Objects::default()
    });
    assert_eq!(diagnostics, vec![]);
    let a = config.pool("a").expect("pool a");
    assert_eq!(a.capacity(Family::V4), 64 + 11);
    assert_eq!(a.capacity(Family::V6), 256);
    assert!(a.auto_assign);
    assert!(a.restriction.is_none());
}

#[test]
fn pool_with_bad_address_is_left_out_with_indexed_field() {
    let (config, diagnostics) = build(&Objects {
        pools: vec![
            pool("a", &["198.51.100.0/26", "198.51.100.7/24"]),
            pool("b", &["192.0.2.0/24"]),
        ],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "IPAddressPool/a",
            "spec.addresses[1]",
            Reason::Invalid
        )]
    );
    assert!(
        diagnostics[0].message.contains("host bits"),
        "{}",
        diagnostics[0].message
    );
    assert!(config.pool("a").is_none());
    assert!(
        config.pool("b").is_some(),
        "one bad pool never invalidates another"
    );
}

#[test]
fn pool_with_no_addresses_is_invalid() {
    let (_, diagnostics) = build(&Objects {
        pools: vec![pool("a", &[])],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error("IPAddressPool/a", "spec.addresses", Reason::Invalid)]
    );
}

#[test]
fn pool_with_negative_priority_is_invalid() {
    let p: crd::IPAddressPool = from_json(
        "IPAddressPool",
        "a",
        json!({ "addresses": ["192.0.2.0/24"], "serviceAllocation": { "priority": -1 } }),
    );
    let (_, diagnostics) = build(&Objects {
        pools: vec![p],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "IPAddressPool/a",
            "spec.serviceAllocation.priority",
            Reason::Invalid
        )]
    );
}

#[test]
fn pool_with_bad_selector_operator_is_invalid() {
    let p: crd::IPAddressPool = from_json(
        "IPAddressPool",
        "a",
        json!({ "addresses": ["192.0.2.0/24"], "serviceAllocation": {
            "serviceSelectors": [{ "matchExpressions": [{ "key": "app", "operator": "Near", "values": ["x"] }] }] } }),
    );
    let (_, diagnostics) = build(&Objects {
        pools: vec![p],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "IPAddressPool/a",
            "spec.serviceAllocation.serviceSelectors[0]",
            Reason::Invalid
        )]
    );
}

#[test]
fn older_pool_keeps_working_and_newer_overlapping_pool_is_in_conflict() {
    let older = with_created(pool("zeta", &["192.0.2.0/24"]), "2026-01-01T00:00:00Z");
    let newer = with_created(
        pool("alpha", &["198.51.100.0/24", "192.0.2.128/25"]),
        "2026-02-01T00:00:00Z",
    );
    let (config, diagnostics) = build(&Objects {
        pools: vec![newer, older],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "IPAddressPool/alpha",
            "spec.addresses[1]",
            Reason::Conflict
        )]
    );
    assert!(diagnostics[0].message.contains("\"zeta\""));
    assert!(config.pool("zeta").is_some());
    assert!(config.pool("alpha").is_none());
}

#[test]
fn overlapping_pools_without_timestamps_are_ordered_by_name() {
    let (config, diagnostics) = build(&Objects {
        pools: vec![pool("b", &["2001:db8::/64"]), pool("a", &["2001:db8::1"])],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "IPAddressPool/b",
            "spec.addresses[0]",
            Reason::Conflict
        )]
    );
    assert!(config.pool("a").is_some());
}

#[test]
fn adjacent_pools_do_not_conflict() {
    let (config, diagnostics) = build(&Objects {
        pools: vec![pool("a", &["192.0.2.0/25"]), pool("b", &["192.0.2.128/25"])],
        ..Objects::default()
    });
    assert_eq!(diagnostics, vec![]);
    assert_eq!(config.pools.len(), 2);
}

#[test]
fn pool_restriction_resolves_namespace_selectors() {
    let p: crd::IPAddressPool = from_json(
        "IPAddressPool",
        "a",
        json!({ "addresses": ["192.0.2.0/24"], "serviceAllocation": {
            "priority": 5, "namespaces": ["web"],
            "namespaceSelectors": [{ "matchLabels": { "team": "shop" } }],
            "serviceSelectors": [{ "matchLabels": { "expose": "public" } }] } }),
    );
    let ns = |name: &str, team: &str| -> Namespace {
        serde_json::from_value(json!({ "metadata": { "name": name, "labels": { "team": team } } }))
            .expect("ns")
    };
    let (config, _) = build(&Objects {
        pools: vec![p],
        namespaces: vec![ns("checkout", "shop"), ns("batch", "data")],
        ..Objects::default()
    });
    let a = config.pool("a").expect("pool");
    let public: BTreeMap<String, String> = [("expose".to_owned(), "public".to_owned())].into();
    assert_eq!(a.priority, Some(5));
    assert!(a.allows("web", &public));
    assert!(a.allows("checkout", &public));
    assert!(!a.allows("batch", &public));
    assert!(!a.allows("web", &BTreeMap::new()));
}

#[test]
fn pools_by_priority_is_deterministic() {
    let prio = |name: &str, cidr: &str, p: Option<i64>| -> crd::IPAddressPool {
        let alloc = p.map(|p| json!({ "priority": p })).unwrap_or(Value::Null);
        let mut spec = json!({ "addresses": [cidr] });
        if !alloc.is_null() {
            spec["serviceAllocation"] = alloc;
        }
        from_json("IPAddressPool", name, spec)
    };
    let (config, _) = build(&Objects {
        pools: vec![
            prio("c", "192.0.2.0/28", None),
            prio("b", "192.0.2.16/28", Some(10)),
            prio("a", "192.0.2.32/28", Some(10)),
            prio("d", "192.0.2.48/28", Some(1)),
        ],
        ..Objects::default()
    });
    let order: Vec<&str> = config
        .pools_by_priority()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(order, vec!["d", "a", "b", "c"]);
}

#[test]
fn avoid_buggy_ips_pool_never_assigns_dot_zero_or_dot_255() {
    let p: crd::IPAddressPool = from_json(
        "IPAddressPool",
        "a",
        json!({ "addresses": ["192.0.2.0/24"], "avoidBuggyIPs": true }),
    );
    let (config, _) = build(&Objects {
        pools: vec![p],
        ..Objects::default()
    });
    let a = config.pool("a").expect("pool");
    assert_eq!(a.capacity(Family::V4), 254);
    assert!(!a.may_assign("192.0.2.0".parse().expect("ip")));
    assert!(!a.may_assign("192.0.2.255".parse().expect("ip")));
    assert!(a.may_assign("192.0.2.1".parse().expect("ip")));
    assert_eq!(
        config
            .pool_of("192.0.2.9".parse().expect("ip"))
            .map(|p| p.name.as_str()),
        Some("a")
    );
}

// ---- peers ----

#[test]
fn valid_peer_gets_typed_timers_and_defaults() {
    let (config, diagnostics) = build_peers(vec![peer("tor", json!({}))]);
    assert_eq!(diagnostics, vec![]);
    let p = &config.peers["tor"];
    assert_eq!(p.peer_asn, PeerAsn::Fixed(64513));
    assert_eq!(p.port, 179);
    assert_eq!(p.hold_time, Duration::from_secs(90));
    assert_eq!(p.keepalive_time, Duration::from_secs(30));
    assert_eq!(p.connect_time, DEFAULT_CONNECT_TIME);
}

#[test]
fn peer_with_explicit_timers_and_options() {
    let (config, diagnostics) = build_peers(vec![peer(
        "tor",
        json!({ "holdTime": "9s", "keepaliveTime": "3s", "connectTime": "5s", "routerID": "192.0.2.9",
                "sourceAddress": "192.0.2.10", "ebgpMultiHop": 3, "gracefulRestart": { "restartTime": "2m" },
                "passwordSecret": { "namespace": "ferrolb-system", "name": "tor" }, "passive": true }),
    )]);
    assert_eq!(diagnostics, vec![]);
    let p = &config.peers["tor"];
    assert_eq!(p.keepalive_time, Duration::from_secs(3));
    assert_eq!(p.graceful_restart, Some(Duration::from_secs(120)));
    assert_eq!(p.ebgp_multi_hop, Some(3));
    assert_eq!(p.router_id, Some(Ipv4Addr::new(192, 0, 2, 9)));
    assert!(p.passive);
}

#[test]
fn dynamic_asn_peer_is_valid() {
    let (config, diagnostics) = build_peers(vec![peer(
        "tor",
        json!({ "peerASN": null, "dynamicASN": "external" }),
    )]);
    assert_eq!(diagnostics, vec![]);
    assert_eq!(config.peers["tor"].peer_asn, PeerAsn::External);
}

fn peer_error_field(extra: Value) -> Vec<(String, String, Reason)> {
    errors(&build_peers(vec![peer("p", extra)]).1)
}

#[test]
fn peer_with_both_asns_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "dynamicASN": "internal" })),
        vec![error("BGPPeer/p", "spec.peerASN", Reason::Invalid)]
    );
}

#[test]
fn peer_with_no_asn_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "peerASN": null })),
        vec![error("BGPPeer/p", "spec.peerASN", Reason::Invalid)]
    );
}

#[test]
fn asn_zero_and_above_32_bits_are_invalid() {
    assert_eq!(
        peer_error_field(json!({ "myASN": 0 })),
        vec![error("BGPPeer/p", "spec.myASN", Reason::Invalid)]
    );
    assert_eq!(
        peer_error_field(json!({ "peerASN": 4294967296i64 })),
        vec![error("BGPPeer/p", "spec.peerASN", Reason::Invalid)]
    );
    assert_eq!(
        peer_error_field(json!({ "peerASN": 4294967295i64 })),
        vec![]
    );
}

#[test]
fn hold_time_must_be_zero_or_at_least_three_seconds() {
    assert_eq!(peer_error_field(json!({ "holdTime": "0s" })), vec![]);
    assert_eq!(peer_error_field(json!({ "holdTime": "3s" })), vec![]);
    assert_eq!(
        peer_error_field(json!({ "holdTime": "2s" })),
        vec![error("BGPPeer/p", "spec.holdTime", Reason::Invalid)]
    );
}

#[test]
fn hold_time_garbage_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "holdTime": "90" })),
        vec![error("BGPPeer/p", "spec.holdTime", Reason::Invalid)]
    );
}

#[test]
fn keepalive_above_hold_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "holdTime": "9s", "keepaliveTime": "10s" })),
        vec![error("BGPPeer/p", "spec.keepaliveTime", Reason::Invalid)]
    );
    assert_eq!(
        peer_error_field(json!({ "holdTime": "0s", "keepaliveTime": "10s" })),
        vec![]
    );
}

#[test]
fn connect_time_below_one_second_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "connectTime": "100ms" })),
        vec![error("BGPPeer/p", "spec.connectTime", Reason::Invalid)]
    );
}

#[test]
fn peer_address_garbage_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "peerAddress": "tor1.example" })),
        vec![error("BGPPeer/p", "spec.peerAddress", Reason::Invalid)]
    );
}

#[test]
fn source_address_of_other_family_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "sourceAddress": "2001:db8::1" })),
        vec![error("BGPPeer/p", "spec.sourceAddress", Reason::Invalid)]
    );
}

#[test]
fn ipv6_router_id_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "routerID": "2001:db8::1" })),
        vec![error("BGPPeer/p", "spec.routerID", Reason::Invalid)]
    );
}

#[test]
fn peer_port_zero_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "peerPort": 0 })),
        vec![error("BGPPeer/p", "spec.peerPort", Reason::Invalid)]
    );
}

#[test]
fn multihop_ttl_zero_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "ebgpMultiHop": 0 })),
        vec![error("BGPPeer/p", "spec.ebgpMultiHop", Reason::Invalid)]
    );
}

#[test]
fn graceful_restart_time_above_4095s_is_invalid() {
    assert_eq!(
        peer_error_field(json!({ "gracefulRestart": { "restartTime": "4096s" } })),
        vec![error(
            "BGPPeer/p",
            "spec.gracefulRestart.restartTime",
            Reason::Invalid
        )]
    );
}

#[test]
fn peer_with_missing_bfd_profile_runs_without_bfd_and_is_reported() {
    let (config, diagnostics) = build_peers(vec![peer("p", json!({ "bfdProfile": "fast" }))]);
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "BGPPeer/p",
            "spec.bfdProfile",
            Reason::MissingReference
        )]
    );
    assert_eq!(config.peers["p"].bfd_profile, None);
}

#[test]
fn peer_with_existing_bfd_profile_keeps_it() {
    let (config, diagnostics) = build(&Objects {
        peers: vec![peer("p", json!({ "bfdProfile": "fast" }))],
        bfd_profiles: vec![bfd(
            "fast",
            json!({ "receiveInterval": 100, "transmitInterval": 100 }),
        )],
        ..Objects::default()
    });
    assert_eq!(diagnostics, vec![]);
    assert_eq!(config.peers["p"].bfd_profile.as_deref(), Some("fast"));
    assert_eq!(
        config.bfd_profiles["fast"].receive_interval,
        Duration::from_millis(100)
    );
    assert_eq!(config.bfd_profiles["fast"].detect_multiplier, 3);
}

// ---- BFD ----

fn bfd_errors(spec: Value) -> Vec<(String, String, Reason)> {
    errors(
        &build(&Objects {
            bfd_profiles: vec![bfd("b", spec)],
            ..Objects::default()
        })
        .1,
    )
}

#[test]
fn bfd_intervals_outside_10_to_60000_ms_are_invalid() {
    assert_eq!(
        bfd_errors(json!({ "receiveInterval": 10, "transmitInterval": 60000 })),
        vec![]
    );
    assert_eq!(
        bfd_errors(json!({ "receiveInterval": 9 })),
        vec![error(
            "BFDProfile/b",
            "spec.receiveInterval",
            Reason::Invalid
        )]
    );
    assert_eq!(
        bfd_errors(json!({ "transmitInterval": 60001 })),
        vec![error(
            "BFDProfile/b",
            "spec.transmitInterval",
            Reason::Invalid
        )]
    );
}

#[test]
fn bfd_detect_multiplier_outside_2_to_255_is_invalid() {
    assert_eq!(bfd_errors(json!({ "detectMultiplier": 2 })), vec![]);
    assert_eq!(
        bfd_errors(json!({ "detectMultiplier": 1 })),
        vec![error(
            "BFDProfile/b",
            "spec.detectMultiplier",
            Reason::Invalid
        )]
    );
    assert_eq!(
        bfd_errors(json!({ "detectMultiplier": 256 })),
        vec![error(
            "BFDProfile/b",
            "spec.detectMultiplier",
            Reason::Invalid
        )]
    );
}

#[test]
fn bfd_minimum_ttl_zero_is_invalid() {
    assert_eq!(
        bfd_errors(json!({ "minimumTtl": 0 })),
        vec![error("BFDProfile/b", "spec.minimumTtl", Reason::Invalid)]
    );
}

// ---- communities ----

#[test]
fn community_aliases_resolve_in_advertisements() {
    let (config, diagnostics) = build(&Objects {
        pools: vec![pool("a", &["192.0.2.0/24"])],
        communities: vec![community(
            "c",
            &[("edge", "65000:100"), ("big", "large:64512:1:2")],
        )],
        bgp_advertisements: vec![bgp_adv(
            "adv",
            json!({ "communities": ["edge", "big", "65000:7"] }),
        )],
        ..Objects::default()
    });
    assert_eq!(diagnostics, vec![]);
    let communities: Vec<CommunityValue> = config.bgp_advertisements["adv"]
        .communities
        .iter()
        .copied()
        .collect();
    assert_eq!(
        communities,
        vec![
            CommunityValue::Standard(65000, 7),
            CommunityValue::Standard(65000, 100),
            CommunityValue::Large(64512, 1, 2)
        ]
    );
}

#[test]
fn community_alias_value_garbage_is_invalid() {
    let (_, diagnostics) = build(&Objects {
        communities: vec![community("c", &[("edge", "65000")])],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "Community/c",
            "spec.communities[0].value",
            Reason::Invalid
        )]
    );
}

#[test]
fn community_alias_bad_name_is_invalid() {
    let (_, diagnostics) = build(&Objects {
        communities: vec![community("c", &[("Edge_1", "65000:1")])],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "Community/c",
            "spec.communities[0].name",
            Reason::Invalid
        )]
    );
}

#[test]
fn duplicate_community_alias_keeps_the_older_definition() {
    let older = with_created(
        community("z", &[("edge", "65000:1")]),
        "2026-01-01T00:00:00Z",
    );
    let newer = with_created(
        community("a", &[("other", "65000:3"), ("edge", "65000:2")]),
        "2026-03-01T00:00:00Z",
    );
    let (config, diagnostics) = build(&Objects {
        communities: vec![newer, older],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "Community/a",
            "spec.communities[1].name",
            Reason::Conflict
        )]
    );
    assert_eq!(
        config.communities["edge"],
        CommunityValue::Standard(65000, 1)
    );
    assert_eq!(
        config.communities["other"],
        CommunityValue::Standard(65000, 3)
    );
}

#[test]
fn missing_community_alias_is_reported() {
    let (config, diagnostics) = build(&Objects {
        bgp_advertisements: vec![bgp_adv(
            "adv",
            json!({ "communities": ["65000:1", "nowhere"] }),
        )],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "BGPAdvertisement/adv",
            "spec.communities[1]",
            Reason::MissingReference
        )]
    );
    assert_eq!(config.bgp_advertisements["adv"].communities.len(), 1);
}

#[test]
fn community_garbage_in_advertisement_is_invalid() {
    let (_, diagnostics) = build(&Objects {
        bgp_advertisements: vec![bgp_adv("adv", json!({ "communities": ["65536:1"] }))],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "BGPAdvertisement/adv",
            "spec.communities[0]",
            Reason::Invalid
        )]
    );
}

// ---- advertisements ----

#[test]
fn advertisement_without_pools_selects_every_usable_pool() {
    let (config, _) = build(&Objects {
        pools: vec![
            pool("a", &["192.0.2.0/24"]),
            pool("b", &["198.51.100.0/24"]),
            pool("c", &["192.0.2.7"]),
        ],
        l2_advertisements: vec![l2_adv("l2", json!({}))],
        ..Objects::default()
    });
    let pools: Vec<&str> = config.l2_advertisements["l2"]
        .pools
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        pools,
        vec!["a", "b"],
        "pool c is in conflict and not announced"
    );
}

#[test]
fn advertisement_pool_selectors_match_pool_labels() {
    let mut labelled = pool("a", &["192.0.2.0/24"]);
    labelled.metadata.labels = Some([("tier".to_owned(), "edge".to_owned())].into());
    let (config, diagnostics) = build(&Objects {
        pools: vec![labelled, pool("b", &["198.51.100.0/24"])],
        l2_advertisements: vec![l2_adv(
            "l2",
            json!({ "ipAddressPoolSelectors": [{ "matchLabels": { "tier": "edge" } }] }),
        )],
        ..Objects::default()
    });
    assert_eq!(diagnostics, vec![]);
    assert_eq!(config.l2_advertisements["l2"].pools.len(), 1);
    assert!(config.l2_advertisements["l2"].pools.contains("a"));
}

#[test]
fn missing_pool_reference_is_reported_and_the_rest_keeps_working() {
    let (config, diagnostics) = build(&Objects {
        pools: vec![pool("a", &["192.0.2.0/24"])],
        l2_advertisements: vec![l2_adv("l2", json!({ "ipAddressPools": ["gone", "a"] }))],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "L2Advertisement/l2",
            "spec.ipAddressPools[0]",
            Reason::MissingReference
        )]
    );
    assert!(diagnostics[0].message.contains("does not exist"));
    assert!(config.l2_advertisements["l2"].pools.contains("a"));
}

#[test]
fn reference_to_conflicting_pool_says_it_is_not_used() {
    let (_, diagnostics) = build(&Objects {
        pools: vec![pool("a", &["192.0.2.0/24"]), pool("b", &["192.0.2.0/24"])],
        bgp_advertisements: vec![bgp_adv("adv", json!({ "ipAddressPools": ["b"] }))],
        ..Objects::default()
    });
    let reference = diagnostics
        .iter()
        .find(|d| d.kind == ObjectKind::BGPAdvertisement)
        .expect("reference diagnostic");
    assert_eq!(reference.field, "spec.ipAddressPools[0]");
    assert!(
        reference.message.contains("in conflict"),
        "{}",
        reference.message
    );
}

#[test]
fn preferred_node_weight_outside_1_to_100_is_invalid() {
    let weighted = |w: i64| {
        l2_adv(
            "l2",
            json!({ "preferredNodes": [{ "weight": w, "selector": {} }] }),
        )
    };
    for (w, ok) in [(0, false), (1, true), (100, true), (101, false)] {
        let (_, diagnostics) = build(&Objects {
            l2_advertisements: vec![weighted(w)],
            ..Objects::default()
        });
        let expected = if ok {
            vec![]
        } else {
            vec![error(
                "L2Advertisement/l2",
                "spec.preferredNodes[0].weight",
                Reason::Invalid,
            )]
        };
        assert_eq!(errors(&diagnostics), expected, "weight {w}");
    }
}

#[test]
fn aggregation_length_out_of_range_is_invalid() {
    for (spec, field) in [
        (json!({ "aggregationLength": 33 }), "spec.aggregationLength"),
        (json!({ "aggregationLength": -1 }), "spec.aggregationLength"),
        (
            json!({ "aggregationLengthV6": 129 }),
            "spec.aggregationLengthV6",
        ),
    ] {
        let (config, diagnostics) = build(&Objects {
            bgp_advertisements: vec![bgp_adv("adv", spec)],
            ..Objects::default()
        });
        assert_eq!(
            errors(&diagnostics),
            vec![error("BGPAdvertisement/adv", field, Reason::Invalid)]
        );
        assert!(config.bgp_advertisements.is_empty());
    }
}

#[test]
fn local_pref_out_of_range_is_invalid() {
    let (_, diagnostics) = build(&Objects {
        bgp_advertisements: vec![bgp_adv("adv", json!({ "localPref": 4294967296i64 }))],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "BGPAdvertisement/adv",
            "spec.localPref",
            Reason::Invalid
        )]
    );
}

#[test]
fn aggregation_shorter_than_pool_prefix_drops_that_pool() {
    let (config, diagnostics) = build(&Objects {
        pools: vec![
            pool("small", &["198.51.100.0/26"]),
            pool("big", &["192.0.2.0/24"]),
        ],
        bgp_advertisements: vec![bgp_adv("adv", json!({ "aggregationLength": 24 }))],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "BGPAdvertisement/adv",
            "spec.aggregationLength",
            Reason::Conflict
        )]
    );
    assert!(diagnostics[0].message.contains("/26"));
    let pools: Vec<&str> = config.bgp_advertisements["adv"]
        .pools
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(pools, vec!["big"]);
}

#[test]
fn aggregation_v6_shorter_than_pool_prefix_is_reported() {
    let (_, diagnostics) = build(&Objects {
        pools: vec![pool("v6", &["2001:db8::/120"])],
        bgp_advertisements: vec![bgp_adv("adv", json!({ "aggregationLengthV6": 64 }))],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "BGPAdvertisement/adv",
            "spec.aggregationLengthV6",
            Reason::Conflict
        )]
    );
}

#[test]
fn aggregation_equal_to_pool_prefix_is_fine() {
    let (config, diagnostics) = build(&Objects {
        pools: vec![pool("a", &["198.51.100.0/26", "2001:db8::/120"])],
        bgp_advertisements: vec![bgp_adv(
            "adv",
            json!({ "aggregationLength": 26, "aggregationLengthV6": 120 }),
        )],
        ..Objects::default()
    });
    assert_eq!(diagnostics, vec![]);
    assert_eq!(
        config.bgp_advertisements["adv"].aggregation_length(Family::V4),
        26
    );
}

#[test]
fn missing_peer_reference_is_reported() {
    let (config, diagnostics) = build(&Objects {
        peers: vec![peer("tor-a", json!({}))],
        bgp_advertisements: vec![bgp_adv("adv", json!({ "peers": ["tor-a", "tor-z"] }))],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "BGPAdvertisement/adv",
            "spec.peers[1]",
            Reason::MissingReference
        )]
    );
    assert!(config.bgp_advertisements["adv"].peers.contains("tor-a"));
}

#[test]
fn advertisement_without_peers_goes_to_every_usable_peer() {
    let (config, _) = build(&Objects {
        peers: vec![peer("a", json!({})), peer("b", json!({ "myASN": 0 }))],
        bgp_advertisements: vec![bgp_adv("adv", json!({}))],
        ..Objects::default()
    });
    let peers: Vec<&str> = config.bgp_advertisements["adv"]
        .peers
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(peers, vec!["a"]);
}

#[test]
fn conflicting_local_pref_for_same_pool_and_peer_leaves_the_newer_out() {
    let older = with_created(
        bgp_adv("z-old", json!({ "localPref": 100 })),
        "2026-01-01T00:00:00Z",
    );
    let newer = with_created(
        bgp_adv("a-new", json!({ "localPref": 200 })),
        "2026-02-01T00:00:00Z",
    );
    let (config, diagnostics) = build(&Objects {
        pools: vec![pool("p", &["192.0.2.0/24"])],
        peers: vec![peer("tor", json!({}))],
        bgp_advertisements: vec![newer, older],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error(
            "BGPAdvertisement/a-new",
            "spec.localPref",
            Reason::Conflict
        )]
    );
    assert!(config.bgp_advertisements.contains_key("z-old"));
    assert!(!config.bgp_advertisements.contains_key("a-new"));
}

#[test]
fn same_local_pref_or_disjoint_scope_is_no_conflict() {
    let pools = vec![
        pool("p", &["192.0.2.0/24"]),
        pool("q", &["198.51.100.0/24"]),
    ];
    let peers = vec![
        peer("tor", json!({})),
        peer("tor2", json!({ "peerAddress": "192.0.2.2" })),
    ];
    let cases = [
        (json!({ "localPref": 100 }), json!({ "localPref": 100 })),
        (
            json!({ "localPref": 100, "ipAddressPools": ["p"] }),
            json!({ "localPref": 200, "ipAddressPools": ["q"] }),
        ),
        (
            json!({ "localPref": 100, "peers": ["tor"] }),
            json!({ "localPref": 200, "peers": ["tor2"] }),
        ),
        (
            json!({ "localPref": 100, "nodeSelectors": [{ "matchLabels": { "rack": "1" } }] }),
            json!({ "localPref": 200, "nodeSelectors": [{ "matchLabels": { "rack": "2" } }] }),
        ),
        (json!({ "localPref": 100 }), json!({})),
    ];
    for (a, b) in cases {
        let (config, diagnostics) = build(&Objects {
            pools: pools.clone(),
            peers: peers.clone(),
            bgp_advertisements: vec![bgp_adv("a", a.clone()), bgp_adv("b", b.clone())],
            ..Objects::default()
        });
        assert_eq!(errors(&diagnostics), vec![], "{a} vs {b}");
        assert_eq!(config.bgp_advertisements.len(), 2);
    }
}

#[test]
fn object_without_name_is_invalid() {
    let mut nameless = pool("x", &["192.0.2.0/24"]);
    nameless.metadata.name = None;
    let (_, diagnostics) = build(&Objects {
        pools: vec![nameless],
        ..Objects::default()
    });
    assert_eq!(
        errors(&diagnostics),
        vec![error("IPAddressPool/", "metadata.name", Reason::Invalid)]
    );
}

#[test]
fn diagnostic_display_names_kind_name_and_field() {
    let d = Diagnostic::error(
        ObjectKind::BGPPeer,
        "tor",
        "spec.holdTime",
        Reason::Invalid,
        "too short",
    );
    assert_eq!(d.to_string(), "BGPPeer/tor spec.holdTime: too short");
}

mod invariants {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever pools are written, the snapshot's pools never share an address, and every pool
        /// left out is reported.
        #[test]
        fn snapshot_pools_never_overlap(blocks in proptest::collection::vec((0u8..4, 26u8..=30), 1..8)) {
            let pools: Vec<crd::IPAddressPool> = blocks
                .iter()
                .enumerate()
                .map(|(i, (quarter, len))| {
                    let cidr = format!("192.0.2.{}/{len}", u32::from(*quarter) * 64);
                    pool(&format!("p{i}"), &[cidr.as_str()])
                })
                .collect();
            let (config, diagnostics) = build(&Objects { pools: pools.clone(), ..Objects::default() });
            let kept: Vec<&Pool> = config.pools.values().collect();
            for (i, a) in kept.iter().enumerate() {
                for b in &kept[i + 1..] {
                    prop_assert!(!a.addresses.overlaps(&b.addresses), "{} and {}", a.name, b.name);
                }
            }
            prop_assert_eq!(kept.len() + diagnostics.len(), pools.len());
        }
    }
}
