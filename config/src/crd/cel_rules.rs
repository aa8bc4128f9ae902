//! Every CEL rule of the generated CRDs, evaluated client-side (kube's `cel` feature, which
//! implements the Kubernetes CEL libraries) against good and bad objects. The real API server runs
//! the same rules in the lab's tests over `config/tests/fixtures/`.

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};

use super::{BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement};

/// The (field path, message) of every CEL rule that `object` breaks, under `K`'s CRD schema.
fn cel_errors<K: CustomResourceExt>(object: Value) -> Vec<(String, String)> {
    let crd = K::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("schema serializes"))
        .expect("derived CRD has a schema");
    match Validator::new().validate(&schema, &object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| (e.field_path.clone(), e.message.clone()))
            .collect(),
    }
}

fn object(kind: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": kind,
        "metadata": { "name": "test" },
        "spec": spec,
    })
}

fn pool_errors(addresses: &[&str]) -> Vec<(String, String)> {
    cel_errors::<IPAddressPool>(object("IPAddressPool", json!({ "addresses": addresses })))
}

fn peer_errors(spec: Value) -> Vec<(String, String)> {
    let mut base = json!({ "myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1" });
    if let (Some(base), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                base.remove(k);
            } else {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    cel_errors::<BGPPeer>(object("BGPPeer", base))
}

/// Asserts exactly one error, at `path`, whose message contains `needle`.
fn assert_one_error(errors: &[(String, String)], path: &str, needle: &str) {
    assert_eq!(errors.len(), 1, "expected one error, got {errors:?}");
    assert_eq!(errors[0].0, path, "{errors:?}");
    assert!(errors[0].1.contains(needle), "{errors:?}");
}

#[test]
fn cel_accepts_cidrs_ranges_and_addresses_of_both_families() {
    assert_eq!(
        pool_errors(&[
            "198.51.100.0/26",
            "2001:db8::/120",
            "198.51.100.10-198.51.100.20",
            "2001:db8:1::1-2001:db8:1::ff",
            "192.0.2.7",
            "2001:db8::5-2001:db8::5",
        ]),
        vec![]
    );
}

#[test]
fn cel_refuses_address_garbage() {
    assert_one_error(
        &pool_errors(&["192.0.2.0/24", "pool-a"]),
        "spec.addresses[1]",
        "must be a CIDR",
    );
}

#[test]
fn cel_refuses_cidr_with_host_bits() {
    assert_one_error(
        &pool_errors(&["198.51.100.7/24"]),
        "spec.addresses[0]",
        "host bits",
    );
    assert_one_error(
        &pool_errors(&["2001:db8::1/64"]),
        "spec.addresses[0]",
        "host bits",
    );
}

#[test]
fn cel_refuses_range_of_mixed_families() {
    assert_one_error(
        &pool_errors(&["192.0.2.1-2001:db8::1"]),
        "spec.addresses[0]",
        "same IP family",
    );
}

#[test]
fn cel_refuses_ipv4_range_start_after_end() {
    assert_one_error(
        &pool_errors(&["192.0.2.20-192.0.2.10"]),
        "spec.addresses[0]",
        "not be after",
    );
    assert_one_error(
        &pool_errors(&["192.0.3.0-192.0.2.255"]),
        "spec.addresses[0]",
        "not be after",
    );
}

#[test]
fn cel_leaves_ipv6_range_order_to_the_config_model() {
    // The API server refuses any CEL ordering of IPv6 ranges as over its cost budget (see
    // `range_order_rule`); the config model rejects the reversed range instead.
    assert_eq!(
        pool_errors(&["2001:db8::1:0-2001:db8::ffff"]),
        Vec::<(String, String)>::new()
    );
    assert!(crate::addresses::AddressRange::parse("2001:db8::1:0-2001:db8::ffff").is_err());
}

#[test]
fn cel_range_order_agrees_with_rust_parser() {
    let cases = [
        "192.0.2.0-192.0.2.0",
        "192.0.2.1-192.0.2.0",
        "0.0.0.0-255.255.255.255",
        "255.255.255.255-0.0.0.0",
        "10.0.0.128-10.0.0.127",
    ];
    for case in cases.iter().filter(|case| !case.contains(':')) {
        let rust_ok = crate::addresses::AddressRange::parse(case).is_ok();
        assert_eq!(pool_errors(&[case]).is_empty(), rust_ok, "{case}");
    }
}

#[test]
fn cel_peer_accepts_a_full_valid_peer() {
    assert_eq!(
        peer_errors(json!({
            "sourceAddress": "192.0.2.10", "holdTime": "9s", "keepaliveTime": "3s",
            "connectTime": "5s", "routerID": "192.0.2.10",
            "gracefulRestart": { "restartTime": "120s" }
        })),
        vec![]
    );
}

#[test]
fn cel_refuses_peer_with_both_peer_asn_and_dynamic_asn() {
    assert_one_error(
        &peer_errors(json!({ "dynamicASN": "external" })),
        "spec.peerASN",
        "exactly one",
    );
}

#[test]
fn cel_refuses_peer_with_neither_peer_asn_nor_dynamic_asn() {
    assert_one_error(
        &peer_errors(json!({ "peerASN": null })),
        "spec.peerASN",
        "exactly one",
    );
    assert_eq!(
        peer_errors(json!({ "peerASN": null, "dynamicASN": "internal" })),
        vec![]
    );
}

#[test]
fn cel_hold_time_is_zero_or_at_least_three_seconds() {
    assert_eq!(peer_errors(json!({ "holdTime": "0s" })), vec![]);
    assert_eq!(peer_errors(json!({ "holdTime": "3s" })), vec![]);
    assert_eq!(peer_errors(json!({ "holdTime": "1m30s" })), vec![]);
    assert_one_error(
        &peer_errors(json!({ "holdTime": "2s" })),
        "spec.holdTime",
        "at least 3s",
    );
    assert_one_error(
        &peer_errors(json!({ "holdTime": "2500ms" })),
        "spec.holdTime",
        "at least 3s",
    );
}

#[test]
fn cel_refuses_duration_garbage() {
    assert_one_error(
        &peer_errors(json!({ "holdTime": "90" })),
        "spec.holdTime",
        "must be a duration",
    );
    assert_one_error(
        &peer_errors(json!({ "connectTime": "soon" })),
        "spec.connectTime",
        "must be a duration",
    );
}

#[test]
fn cel_keepalive_must_not_exceed_hold() {
    assert_eq!(
        peer_errors(json!({ "holdTime": "9s", "keepaliveTime": "9s" })),
        vec![]
    );
    assert_one_error(
        &peer_errors(json!({ "holdTime": "9s", "keepaliveTime": "10s" })),
        "spec.keepaliveTime",
        "must not exceed spec.holdTime",
    );
    // The default hold time (90s) applies when holdTime is unset.
    assert_one_error(
        &peer_errors(json!({ "keepaliveTime": "2m" })),
        "spec.keepaliveTime",
        "must not exceed",
    );
}

#[test]
fn cel_refuses_bad_peer_address() {
    assert_one_error(
        &peer_errors(json!({ "peerAddress": "router1" })),
        "spec.peerAddress",
        "IP address",
    );
}

#[test]
fn cel_source_address_family_matches_peer_address() {
    assert_eq!(
        peer_errors(json!({ "peerAddress": "2001:db8::1", "sourceAddress": "2001:db8::2" })),
        vec![]
    );
    assert_one_error(
        &peer_errors(json!({ "sourceAddress": "2001:db8::2" })),
        "spec.sourceAddress",
        "same IP family",
    );
}

#[test]
fn cel_router_id_is_ipv4() {
    assert_one_error(
        &peer_errors(json!({ "routerID": "2001:db8::1" })),
        "spec.routerID",
        "IPv4",
    );
}

#[test]
fn cel_connect_time_is_at_least_one_second() {
    assert_one_error(
        &peer_errors(json!({ "connectTime": "500ms" })),
        "spec.connectTime",
        "at least 1s",
    );
}

#[test]
fn cel_graceful_restart_time_fits_twelve_bits() {
    assert_eq!(
        peer_errors(json!({ "gracefulRestart": { "restartTime": "4095s" } })),
        vec![]
    );
    assert_one_error(
        &peer_errors(json!({ "gracefulRestart": { "restartTime": "4096s" } })),
        "spec.gracefulRestart.restartTime",
        "4095s",
    );
}

fn advertisement_errors(communities: &[&str]) -> Vec<(String, String)> {
    cel_errors::<BGPAdvertisement>(object(
        "BGPAdvertisement",
        json!({ "communities": communities }),
    ))
}

#[test]
fn cel_accepts_communities_large_communities_and_aliases() {
    assert_eq!(
        advertisement_errors(&[
            "65000:100",
            "0:0",
            "65535:65535",
            "large:65000:1:2",
            "large:4294967295:0:4294967295",
            "no-export-upstream"
        ]),
        vec![]
    );
}

#[test]
fn cel_refuses_community_parts_out_of_range() {
    assert_one_error(
        &advertisement_errors(&["65536:1"]),
        "spec.communities[0]",
        "65000:100",
    );
    assert_one_error(
        &advertisement_errors(&["1:65536"]),
        "spec.communities[0]",
        "65000:100",
    );
    assert_one_error(
        &advertisement_errors(&["large:4294967296:1:2"]),
        "spec.communities[0]",
        "large:",
    );
}

#[test]
fn cel_refuses_community_garbage() {
    assert_one_error(
        &advertisement_errors(&["65000:1:2"]),
        "spec.communities[0]",
        "community",
    );
    assert_one_error(
        &advertisement_errors(&["Bad_Alias"]),
        "spec.communities[0]",
        "alias",
    );
}

#[test]
fn cel_community_alias_values_must_be_literal_communities() {
    let ok = object(
        "Community",
        json!({ "communities": [{ "name": "edge", "value": "large:64512:1:1" }] }),
    );
    assert_eq!(cel_errors::<Community>(ok), vec![]);
    let bad = object(
        "Community",
        json!({ "communities": [{ "name": "edge", "value": "edge2" }] }),
    );
    assert_one_error(
        &cel_errors::<Community>(bad),
        "spec.communities[0].value",
        "community",
    );
}

#[test]
fn cel_kinds_without_rules_accept_their_objects() {
    let l2 = object(
        "L2Advertisement",
        json!({ "ipAddressPools": ["a"], "interfaces": ["eth0"] }),
    );
    assert_eq!(cel_errors::<L2Advertisement>(l2), vec![]);
    let bfd = object("BFDProfile", json!({ "receiveInterval": 100 }));
    assert_eq!(cel_errors::<BFDProfile>(bfd), vec![]);
}
