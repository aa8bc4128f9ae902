use proptest::prelude::*;

use super::convert::{UNCONVERTED_SELECTOR_KEY, alias_name};
use super::*;
use crate::community::CommunityValue;

fn run(text: &str) -> Conversion {
    try_run(text).expect("converts")
}

fn try_run(text: &str) -> Result<Conversion, ImportError> {
    convert(
        &[Source {
            file: "in.yaml".to_owned(),
            text: text.to_owned(),
        }],
        &Options::default(),
    )
}

fn notes(conversion: &Conversion) -> Vec<String> {
    conversion.notes.iter().map(ToString::to_string).collect()
}

/// The converted objects of one kind: `of!(conversion, BGPPeer)`.
macro_rules! of {
    ($conversion:expr, $variant:ident) => {
        $conversion
            .objects
            .iter()
            .filter_map(|o| match o {
                Converted::$variant(object) => Some(object),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
}

fn name<K: kube::Resource>(object: &K) -> &str {
    object.meta().name.as_deref().unwrap_or("")
}

fn object(kind: &str, name: &str, spec: &str) -> String {
    let version = if kind == "BGPPeer" {
        "v1beta2"
    } else {
        "v1beta1"
    };
    format!(
        "apiVersion: metallb.io/{version}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: metallb-system\nspec:\n{spec}"
    )
}

const PEER_SPEC: &str = "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.1\n";

fn legacy(config: &str) -> String {
    let indented: String = config.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: metallb-system\ndata:\n  config: |\n{indented}"
    )
}

#[test]
fn pool_fields_carry_over_and_priority_zero_means_unset() {
    let c = run(&object(
        "IPAddressPool",
        "a",
        "  addresses: [198.51.100.0/24]\n  autoAssign: false\n  avoidBuggyIPs: true\n  serviceAllocation:\n    priority: 0\n    namespaces: [web]\n",
    ));
    let pool = &of!(c, IPAddressPool)[0].spec;
    assert!(!pool.auto_assign);
    assert!(pool.avoid_buggy_ips);
    let allocation = pool.service_allocation.as_ref().expect("allocation");
    assert_eq!(allocation.priority, None);
    assert_eq!(allocation.namespaces, vec!["web".to_owned()]);
    assert_eq!(notes(&c), Vec::<String>::new());
    assert!(c.findings.is_empty(), "{:?}", c.findings);
}

#[test]
fn auto_assign_defaults_to_true_as_in_metallb() {
    let c = run(&object(
        "IPAddressPool",
        "a",
        "  addresses: [198.51.100.0/24]\n",
    ));
    assert!(of!(c, IPAddressPool)[0].spec.auto_assign);
    assert_eq!(of!(c, IPAddressPool)[0].spec.service_allocation, None);
}

#[test]
fn cidr_with_host_bits_is_written_as_its_network_with_a_note() {
    let c = run(&object(
        "IPAddressPool",
        "a",
        "  addresses: [198.51.100.7/24, 192.0.2.10 - 192.0.2.20]\n",
    ));
    let addresses: Vec<&str> = of!(c, IPAddressPool)[0]
        .spec
        .addresses
        .iter()
        .map(|a| a.0.as_str())
        .collect();
    assert_eq!(addresses, vec!["198.51.100.0/24", "192.0.2.10-192.0.2.20"]);
    assert_eq!(c.notes.len(), 1, "{:?}", notes(&c));
    assert_eq!(c.notes[0].field, "spec.addresses[0]");
}

#[test]
fn plain_password_becomes_a_secret_the_peer_references() {
    let c = run(&object(
        "BGPPeer",
        "tor",
        &format!("{PEER_SPEC}  password: hunter2\n"),
    ));
    let Converted::Secret(secret) = &c.objects[0] else {
        panic!("Secret first: {:?}", c.objects);
    };
    assert_eq!(secret.metadata.name.as_deref(), Some("tor-bgp-password"));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("ferrolb-system"));
    let data = secret.string_data.as_ref().expect("string data");
    assert_eq!(data.get("password").map(String::as_str), Some("hunter2"));
    let reference = of!(c, BGPPeer)[0]
        .spec
        .password_secret
        .clone()
        .expect("reference");
    assert_eq!(
        (reference.namespace.as_str(), reference.name.as_str()),
        ("ferrolb-system", "tor-bgp-password")
    );
    assert_eq!(notes(&c), Vec::<String>::new());
}

#[test]
fn password_secret_namespace_defaults_to_metallbs_and_the_copy_is_noted() {
    let c = run(&object(
        "BGPPeer",
        "tor",
        &format!("{PEER_SPEC}  passwordSecret:\n    name: md5\n"),
    ));
    let reference = of!(c, BGPPeer)[0]
        .spec
        .password_secret
        .clone()
        .expect("reference");
    assert_eq!(reference.namespace, "metallb-system");
    assert_eq!(reference.name, "md5");
    assert_eq!(c.notes.len(), 1);
    assert_eq!(c.notes[0].field, "spec.passwordSecret");
}

#[test]
fn password_secret_already_in_the_secret_namespace_needs_no_note() {
    let c = run(&object(
        "BGPPeer",
        "tor",
        &format!("{PEER_SPEC}  passwordSecret:\n    name: md5\n    namespace: ferrolb-system\n"),
    ));
    assert_eq!(notes(&c), Vec::<String>::new());
}

#[test]
fn ebgp_multihop_true_becomes_ttl_255_with_a_note() {
    let c = run(&object(
        "BGPPeer",
        "tor",
        &format!("{PEER_SPEC}  ebgpMultiHop: true\n"),
    ));
    assert_eq!(of!(c, BGPPeer)[0].spec.ebgp_multi_hop, Some(255));
    assert_eq!(c.notes[0].field, "spec.ebgpMultiHop");
    let single_hop = run(&object("BGPPeer", "tor", PEER_SPEC));
    assert_eq!(of!(single_hop, BGPPeer)[0].spec.ebgp_multi_hop, None);
}

#[test]
fn peer_defaults_match_metallb() {
    let c = run(&object("BGPPeer", "tor", PEER_SPEC));
    let spec = &of!(c, BGPPeer)[0].spec;
    assert_eq!(spec.peer_port, 179);
    assert_eq!(spec.hold_time.0, "90s");
    assert_eq!(spec.keepalive_time, None);
    assert!(!spec.dual_stack_address_family);
    assert_eq!(spec.graceful_restart, None);
}

#[test]
fn dynamic_asn_carries_over() {
    let c = run(&object(
        "BGPPeer",
        "rr",
        "  myASN: 64512\n  dynamicASN: internal\n  peerAddress: 192.0.2.1\n",
    ));
    assert_eq!(of!(c, BGPPeer)[0].spec.peer_asn, None);
    assert_eq!(
        of!(c, BGPPeer)[0].spec.dynamic_asn,
        Some(crd::DynamicAsn::Internal)
    );
    assert!(c.findings.is_empty(), "{:?}", c.findings);
}

#[test]
fn peer_in_a_vrf_is_left_out_and_removed_from_advertisements() {
    let text = [
        object("BGPPeer", "red", &format!("{PEER_SPEC}  vrf: red\n")),
        object(
            "BGPPeer",
            "plain",
            "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.2\n",
        ),
        object("IPAddressPool", "a", "  addresses: [198.51.100.0/24]\n"),
        object("BGPAdvertisement", "both", "  peers: [red, plain]\n"),
        object("BGPAdvertisement", "only-red", "  peers: [red]\n"),
    ]
    .join("---\n");
    let c = run(&text);
    let peer_names: Vec<&str> = of!(c, BGPPeer).into_iter().map(name).collect();
    assert_eq!(peer_names, vec!["plain"]);
    let advertisements = of!(c, BGPAdvertisement);
    assert_eq!(advertisements.len(), 1, "only-red is left out");
    assert_eq!(name(advertisements[0]), "both");
    assert_eq!(advertisements[0].spec.peers, vec!["plain".to_owned()]);
    assert!(!c.has_errors, "{:?}", c.findings);
    let fields: Vec<(&str, &str)> = c
        .notes
        .iter()
        .map(|n| (n.object.as_str(), n.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("BGPPeer/red", "spec.vrf"),
            ("BGPAdvertisement/both", "spec.peers[0]"),
            ("BGPAdvertisement/only-red", "spec.peers[0]"),
            ("BGPAdvertisement/only-red", "spec.peers"),
        ]
    );
}

#[test]
fn peer_left_out_does_not_take_its_name() {
    let text = [
        object("BGPPeer", "tor", &format!("{PEER_SPEC}  vrf: red\n")),
        object("BGPPeer", "tor", PEER_SPEC)
            .replace("namespace: metallb-system", "namespace: other"),
    ]
    .join("---\n");
    let c = run(&text);
    let names: Vec<&str> = of!(c, BGPPeer).into_iter().map(name).collect();
    assert_eq!(names, vec!["tor"]);
}

#[test]
fn same_name_in_two_namespaces_is_renamed_and_references_follow() {
    let other = |text: String| text.replace("namespace: metallb-system", "namespace: tenant");
    let text = [
        object("IPAddressPool", "web", "  addresses: [198.51.100.0/24]\n"),
        other(object(
            "IPAddressPool",
            "web",
            "  addresses: [203.0.113.0/24]\n",
        )),
        other(object(
            "L2Advertisement",
            "web",
            "  ipAddressPools: [web]\n  interfaces: [eth0]\n",
        )),
        object(
            "L2Advertisement",
            "web",
            "  ipAddressPools: [web]\n  interfaces: [eth0]\n",
        ),
    ]
    .join("---\n");
    let c = run(&text);
    let pool_names: Vec<&str> = of!(c, IPAddressPool).into_iter().map(name).collect();
    assert_eq!(pool_names, vec!["web", "tenant-web"]);
    let l2: Vec<(&str, Vec<String>)> = of!(c, L2Advertisement)
        .into_iter()
        .map(|a| (name(a), a.spec.ip_address_pools.clone()))
        .collect();
    assert_eq!(
        l2,
        vec![
            ("web", vec!["tenant-web".to_owned()]),
            ("metallb-system-web", vec!["web".to_owned()]),
        ]
    );
    assert_eq!(
        c.notes
            .iter()
            .filter(|n| n.field == "metadata.name")
            .count(),
        2
    );
    assert!(!c.has_errors, "{:?}", c.findings);
}

#[test]
fn selector_ferrolb_cannot_evaluate_matches_nothing() {
    let c = run(&object(
        "L2Advertisement",
        "a",
        "  interfaces: [eth0]\n  nodeSelectors:\n    - matchLabels: {zone: a}\n    - matchExpressions:\n        - {key: rank, operator: Gt, values: ['3']}\n",
    ));
    let selectors = &of!(c, L2Advertisement)[0].spec.node_selectors;
    assert_eq!(
        selectors[0]
            .match_labels
            .as_ref()
            .and_then(|l| l.get("zone"))
            .map(String::as_str),
        Some("a")
    );
    let replaced = crate::model::Selector::try_from(selectors[1].clone()).expect("valid");
    let node_labels = [("rank".to_owned(), "5".to_owned())].into();
    assert!(!crate::model::SelectorExt::matches(&replaced, &node_labels));
    let expressions = selectors[1].match_expressions.clone().expect("expressions");
    assert_eq!(expressions[0].key, UNCONVERTED_SELECTOR_KEY);
    assert_eq!(c.notes[0].field, "spec.nodeSelectors[1]");
}

#[test]
fn alias_name_ferrolb_refuses_is_renamed_in_advertisements_too() {
    let text = [
        object(
            "Community",
            "c",
            "  communities:\n    - {name: NO_EXPORT, value: '65535:65281'}\n",
        ),
        object("IPAddressPool", "a", "  addresses: [198.51.100.0/24]\n"),
        object(
            "BGPAdvertisement",
            "adv",
            "  communities: [NO_EXPORT, '64512:1', 'large:1:2:3']\n",
        ),
    ]
    .join("---\n");
    let c = run(&text);
    let communities: Vec<&str> = of!(c, BGPAdvertisement)[0]
        .spec
        .communities
        .iter()
        .map(|r| r.0.as_str())
        .collect();
    assert_eq!(communities, vec!["no-export", "64512:1", "large:1:2:3"]);
    assert!(!c.has_errors, "{:?}", c.findings);
}

#[test]
fn bgp_advertisement_defaults_and_local_pref_zero_means_unset() {
    let c = run(&object("BGPAdvertisement", "adv", "  localPref: 0\n"));
    let spec = &of!(c, BGPAdvertisement)[0].spec;
    assert_eq!(
        (spec.aggregation_length, spec.aggregation_length_v6),
        (32, 128)
    );
    assert_eq!(spec.local_pref, None);
}

#[test]
fn bfd_echo_mode_is_noted_and_timers_carry_over() {
    let c = run(&object(
        "BFDProfile",
        "b",
        "  receiveInterval: 50\n  transmitInterval: 60\n  detectMultiplier: 5\n  echoMode: true\n  passiveMode: true\n",
    ));
    let Converted::BFDProfile(profile) = &c.objects[0] else {
        panic!("{:?}", c.objects)
    };
    assert_eq!(
        (
            profile.spec.receive_interval,
            profile.spec.transmit_interval,
            profile.spec.detect_multiplier,
            profile.spec.minimum_ttl
        ),
        (50, 60, 5, 254)
    );
    assert!(profile.spec.passive_mode);
    assert_eq!(c.notes[0].field, "spec.echoMode");
}

#[test]
fn unknown_spec_field_is_noted_not_lost_silently() {
    let c = run(&object(
        "IPAddressPool",
        "a",
        "  addresses: [198.51.100.0/24]\n  shinyNewThing: 1\n",
    ));
    assert_eq!(c.notes[0].field, "spec.shinyNewThing");
}

#[test]
fn kubectl_list_items_are_read() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: metallb.io/v1beta1\n  kind: IPAddressPool\n  metadata: {name: a}\n  spec: {addresses: [198.51.100.0/24]}\n- apiVersion: metallb.io/v1beta1\n  kind: IPAddressPool\n  metadata: {name: b}\n  spec: {addresses: [203.0.113.0/24]}\n";
    let c = run(text);
    let names: Vec<&str> = of!(c, IPAddressPool).into_iter().map(name).collect();
    assert_eq!(names, vec!["a", "b"]);
}

#[test]
fn foreign_objects_and_other_metallb_kinds_are_skipped_with_a_note() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: controller}\n---\napiVersion: metallb.io/v1beta1\nkind: AddressPool\nmetadata: {name: old}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {foo: bar}\n";
    let c = run(text);
    assert!(c.objects.is_empty());
    assert_eq!(c.notes.len(), 3, "{:?}", notes(&c));
}

#[test]
fn document_without_kind_is_an_error() {
    let err = try_run("foo: bar\n").expect_err("not an object");
    assert!(matches!(err, ImportError::Document { ref field, .. } if field == "apiVersion"));
}

#[test]
fn wrong_type_is_an_error_naming_the_field() {
    let err = try_run(&object("BGPPeer", "tor", "  myASN: many\n")).expect_err("type error");
    let ImportError::Document {
        file,
        doc,
        object,
        field,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (file.as_str(), doc, object.as_str(), field.as_str()),
        ("in.yaml", 1, "BGPPeer/tor", "spec.myASN")
    );
}

#[test]
fn broken_yaml_is_an_error() {
    assert!(matches!(
        try_run("apiVersion: [unclosed\n"),
        Err(ImportError::Yaml { .. })
    ));
}

#[test]
fn result_is_checked_and_findings_point_at_the_input() {
    let text = [
        object("IPAddressPool", "a", "  addresses: [198.51.100.0/24]\n"),
        object("IPAddressPool", "b", "  addresses: [198.51.100.128/25]\n"),
    ]
    .join("---\n");
    let c = run(&text);
    assert!(c.has_errors);
    assert_eq!(c.findings.len(), 1, "{:?}", c.findings);
    assert_eq!(
        (c.findings[0].doc, c.findings[0].object.as_str()),
        (2, "IPAddressPool/b")
    );
}

#[test]
fn finding_on_a_legacy_object_names_the_legacy_key() {
    let c = run(&legacy(
        "address-pools:\n- {name: a, protocol: layer2, addresses: [198.51.100.0/24]}\n- {name: b, protocol: layer2, addresses: [198.51.100.0/25]}\n",
    ));
    assert!(c.has_errors);
    let located: Vec<(&str, &str)> = c
        .findings
        .iter()
        .map(|f| (f.object.as_str(), f.field.as_str()))
        .collect();
    assert!(
        located.contains(&("ConfigMap/config", "config.address-pools[1].addresses[0]")),
        "{located:?}"
    );
}

#[test]
fn legacy_layer2_pool_becomes_a_pool_and_an_l2_advertisement() {
    let c = run(&legacy(
        "address-pools:\n- name: office\n  protocol: layer2\n  addresses: [192.0.2.0/27]\n",
    ));
    assert_eq!(name(of!(c, IPAddressPool)[0]), "office");
    let l2 = of!(c, L2Advertisement);
    assert_eq!(l2[0].spec.ip_address_pools, vec!["office".to_owned()]);
    assert!(l2[0].spec.node_selectors.is_empty());
    // The one note: MetalLB answered on every interface.
    assert_eq!(c.notes.len(), 1, "{:?}", notes(&c));
    assert_eq!(c.notes[0].field, "config.address-pools[0].protocol");
}

#[test]
fn legacy_bgp_pool_without_advertisements_gets_the_default_one_to_every_peer() {
    let c = run(&legacy(
        "peers:\n- {my-asn: 64500, peer-asn: 64501, peer-address: 192.0.2.1}\naddress-pools:\n- name: public\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n",
    ));
    let advertisements = of!(c, BGPAdvertisement);
    assert_eq!(advertisements.len(), 1);
    assert_eq!(name(advertisements[0]), "public");
    assert!(advertisements[0].spec.peers.is_empty());
    assert_eq!(advertisements[0].spec.aggregation_length, 32);
    assert_eq!(name(of!(c, BGPPeer)[0]), "peer-192-0-2-1");
    assert_eq!(notes(&c), Vec::<String>::new());
    assert!(!c.has_errors, "{:?}", c.findings);
}

#[test]
fn legacy_notes_name_the_legacy_keys() {
    let c = run(&legacy(
        "peers:\n- {my-asn: 64500, peer-asn: 64501, peer-address: 192.0.2.1, ebgp-multihop: true, frobnicate: 1}\n",
    ));
    let fields: Vec<&str> = c.notes.iter().map(|n| n.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "config.peers[0].frobnicate",
            "config.peers[0].ebgp-multihop"
        ]
    );
    assert!(c.notes.iter().all(|n| n.object == "ConfigMap/config"));
}

#[test]
fn legacy_pool_name_that_is_not_a_kubernetes_name_is_rewritten() {
    let c = run(&legacy(
        "address-pools:\n- name: My_Pool\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n",
    ));
    assert_eq!(name(of!(c, IPAddressPool)[0]), "my-pool");
    assert_eq!(
        of!(c, BGPAdvertisement)[0].spec.ip_address_pools,
        vec!["my-pool".to_owned()]
    );
    assert_eq!(c.notes[0].field, "config.address-pools[0].name");
}

#[test]
fn legacy_config_type_error_names_the_key() {
    let err = try_run(&legacy("peers:\n- my-asn: lots\n")).expect_err("type error");
    assert!(
        matches!(err, ImportError::Document { ref field, .. } if field == "config.peers[0].my-asn"),
        "{err:?}"
    );
}

#[test]
fn rendered_yaml_is_one_document_per_object() {
    let c = run(&object(
        "BGPPeer",
        "tor",
        &format!("{PEER_SPEC}  password: x\n"),
    ));
    assert_eq!(c.yaml.matches("---\n").count(), 2);
    assert!(
        c.yaml.starts_with("---\napiVersion: v1\nkind: Secret\n"),
        "{}",
        c.yaml
    );
}

proptest! {
    #[test]
    fn alias_names_are_always_valid(input in "\\PC{0,80}") {
        prop_assert!(CommunityValue::is_alias_name(&alias_name(&input)));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = try_run(&text);
    }

    #[test]
    fn arbitrary_legacy_config_never_panics(config in "[a-z:\\- \\n0-9.\\[\\]{}]{0,200}") {
        let _ = try_run(&legacy(&config));
    }
}
