use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU8;
use std::time::Duration;

use ferrolb_config::model::{BfdProfile as ModelBfdProfile, Config, Peer, PeerAsn, SecretRef};
use ipnet::IpNet;

use super::plan::{Running, Step, plan};
use super::wanted::{Wanted, peer_spec, referenced_secrets, wanted_peers};
use super::*;
use crate::bgp::driver::BfdProfile;
use crate::bgp::fsm::{GracefulRestartConfig, PeerAs};
use crate::bgp::packet::Family;
use crate::bgp::rib_out::{NextHops, RouteAttributes};

const NODE_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const NODE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x11);

fn node() -> Vec<IpAddr> {
    vec![NODE_V4.into(), NODE_V6.into()]
}

fn model_peer(name: &str, address: &str) -> Peer {
    Peer {
        name: name.to_owned(),
        my_asn: 64500,
        peer_asn: PeerAsn::Fixed(64501),
        address: address.parse().expect("address"),
        port: 179,
        source_address: None,
        hold_time: Duration::from_secs(90),
        keepalive_time: Duration::from_secs(30),
        connect_time: Duration::from_secs(120),
        router_id: None,
        node_selectors: Vec::new(),
        password_secret: None,
        bfd_profile: None,
        graceful_restart: None,
        ebgp_multi_hop: None,
        dual_stack_address_family: false,
        passive: false,
    }
}

fn model_bfd(name: &str, interval_ms: u64) -> ModelBfdProfile {
    ModelBfdProfile {
        name: name.to_owned(),
        receive_interval: Duration::from_millis(interval_ms),
        transmit_interval: Duration::from_millis(interval_ms),
        detect_multiplier: 3,
        passive_mode: false,
        minimum_ttl: 254,
    }
}

fn config(peers: &[Peer]) -> Config {
    let mut config = Config::default();
    for peer in peers {
        config.peers.insert(peer.name.clone(), peer.clone());
    }
    config
        .bfd_profiles
        .insert("fast".into(), model_bfd("fast", 100));
    config
        .bfd_profiles
        .insert("slow".into(), model_bfd("slow", 300));
    config
}

fn secret(name: &str) -> SecretRef {
    SecretRef {
        namespace: "ferrolb".into(),
        name: name.into(),
    }
}

fn spec(peer: &Peer) -> PeerSpec {
    spec_with(peer, &config(std::slice::from_ref(peer)), &BTreeMap::new())
}

fn spec_with(peer: &Peer, config: &Config, passwords: &BTreeMap<SecretRef, String>) -> PeerSpec {
    let (spec, warnings) =
        peer_spec(peer, config, passwords, &node(), false).expect("peer maps to a spec");
    assert!(warnings.is_empty(), "{warnings:?}");
    spec
}

fn refusals(peer: &Peer, passwords: &BTreeMap<SecretRef, String>, node: &[IpAddr]) -> Vec<String> {
    match peer_spec(
        peer,
        &config(std::slice::from_ref(peer)),
        passwords,
        node,
        false,
    ) {
        Ok(spec) => panic!("expected a refusal, got {spec:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn routes(prefixes: &[&str]) -> Routes {
    prefixes
        .iter()
        .map(|p| {
            (
                p.parse::<IpNet>().expect("prefix"),
                RouteAttributes::default(),
            )
        })
        .collect()
}

// ---- mapping ---------------------------------------------------------------------------------

#[test]
fn peer_maps_asns_node_router_id_timers_family_next_hops_and_source() {
    let spec = spec(&model_peer("tor", "192.0.2.1"));
    assert_eq!(spec.address, "192.0.2.1:179".parse().expect("socket"));
    assert_eq!(spec.local_address, Some(NODE_V4.into()));
    assert_eq!(spec.session.local_as, 64500);
    assert_eq!(spec.session.peer_as, PeerAs::Fixed(64501));
    assert_eq!(spec.session.bgp_identifier, NODE_V4);
    assert_eq!(spec.session.hold_time, 90);
    assert_eq!(spec.session.keepalive, Some(30));
    assert_eq!(spec.session.connect_retry, Duration::from_secs(1));
    assert_eq!(spec.session.connect_retry_max, Duration::from_secs(120));
    assert_eq!(spec.session.families, vec![Family::IPV4_UNICAST]);
    assert!(!spec.session.passive);
    assert_eq!(spec.session.graceful_restart, None);
    assert_eq!(
        spec.next_hops,
        NextHops {
            ipv4: Some(NODE_V4),
            ipv6: Some(NODE_V6),
            ipv6_link_local: None
        }
    );
    assert_eq!((spec.password, spec.ttl, spec.bfd), (None, None, None));
}

#[test]
fn router_id_source_address_multihop_passive_and_port_are_taken_from_the_peer() {
    let mut peer = model_peer("tor", "2001:db8:9::1");
    peer.router_id = Some(Ipv4Addr::new(10, 0, 0, 1));
    peer.source_address = Some("2001:db8:2::99".parse().expect("v6"));
    peer.ebgp_multi_hop = Some(4);
    peer.passive = true;
    peer.port = 1179;
    peer.hold_time = Duration::ZERO;
    let spec = spec(&peer);
    assert_eq!(spec.session.bgp_identifier, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(spec.local_address, peer.source_address);
    assert_eq!(
        spec.next_hops.ipv6,
        Some("2001:db8:2::99".parse().expect("v6"))
    );
    assert_eq!(
        spec.next_hops.ipv4,
        Some(NODE_V4),
        "other family: node address"
    );
    assert_eq!(spec.session.families, vec![Family::IPV6_UNICAST]);
    assert_eq!(spec.ttl, Some(4));
    assert!(spec.session.passive);
    assert_eq!(spec.address.port(), 1179);
    assert_eq!(spec.session.hold_time, 0);
    assert_eq!(
        spec.session.keepalive, None,
        "no keepalives with hold time 0"
    );
}

#[test]
fn dynamic_asn_maps_to_internal_or_external_peer_as() {
    let mut peer = model_peer("tor", "192.0.2.1");
    peer.peer_asn = PeerAsn::Internal;
    assert_eq!(spec(&peer).session.peer_as, PeerAs::Internal);
    peer.peer_asn = PeerAsn::External;
    assert_eq!(spec(&peer).session.peer_as, PeerAs::External);
}

#[test]
fn dual_stack_peer_carries_both_families_with_node_next_hops() {
    let mut peer = model_peer("tor", "192.0.2.1");
    peer.dual_stack_address_family = true;
    assert_eq!(
        spec(&peer).session.families,
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
}

#[test]
fn dual_stack_on_an_ipv4_only_node_leaves_ipv6_out_and_says_so() {
    let mut peer = model_peer("tor", "192.0.2.1");
    peer.dual_stack_address_family = true;
    let (spec, warnings) = peer_spec(
        &peer,
        &config(std::slice::from_ref(&peer)),
        &BTreeMap::new(),
        &[NODE_V4.into()],
        false,
    )
    .expect("runs with IPv4");
    assert_eq!(spec.session.families, vec![Family::IPV4_UNICAST]);
    assert_eq!(warnings.len(), 1);
    let text = warnings[0].to_string();
    assert!(
        text.contains("BGPPeer tor") && text.contains("IPv6 left out"),
        "{text}"
    );
}

#[test]
fn ipv6_peer_without_node_ipv6_or_router_id_without_node_ipv4_is_refused_naming_the_field() {
    let cases: [(IpAddr, &str); 2] = [
        (
            NODE_V4.into(),
            "BGPPeer tor6: spec.sourceAddress is not IPv6 and the node has no IPv6",
        ),
        (NODE_V6.into(), "BGPPeer tor6: spec.routerID is unset"),
    ];
    for (only_address, expected) in cases {
        let peer = model_peer("tor6", "2001:db8::1");
        let errors = refusals(&peer, &BTreeMap::new(), &[only_address]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with(expected), "{errors:?}");
    }
}

#[test]
fn missing_password_secret_is_refused_naming_the_peer_and_the_secret() {
    let mut peer = model_peer("tor", "192.0.2.1");
    peer.password_secret = Some(secret("tor-md5"));
    let errors = refusals(&peer, &BTreeMap::new(), &node());
    assert_eq!(
        errors,
        vec![
            "BGPPeer tor: spec.passwordSecret: Secret ferrolb/tor-md5 is missing or has no key \
             `password`; not started without its password"
        ]
    );
}

#[test]
fn resolved_password_is_used_and_an_overlong_one_refused() {
    let mut peer = model_peer("tor", "192.0.2.1");
    peer.password_secret = Some(secret("tor-md5"));
    let passwords = BTreeMap::from([(secret("tor-md5"), "s3cret".to_owned())]);
    let spec = spec_with(&peer, &config(std::slice::from_ref(&peer)), &passwords);
    assert_eq!(spec.password.as_deref(), Some("s3cret"));

    let long = BTreeMap::from([(secret("tor-md5"), "x".repeat(81))]);
    let errors = refusals(&peer, &long, &node());
    assert!(
        errors.len() == 1 && errors[0].contains("81 octets"),
        "{errors:?}"
    );
}

#[test]
fn bfd_profile_maps_intervals_multiplier_passive_mode_and_minimum_ttl() {
    let mut peer = model_peer("tor", "192.0.2.1");
    peer.bfd_profile = Some("custom".into());
    let mut config = config(std::slice::from_ref(&peer));
    config.bfd_profiles.insert(
        "custom".into(),
        ModelBfdProfile {
            name: "custom".into(),
            receive_interval: Duration::from_millis(150),
            transmit_interval: Duration::from_millis(200),
            detect_multiplier: 5,
            passive_mode: true,
            minimum_ttl: 250,
        },
    );
    let spec = spec_with(&peer, &config, &BTreeMap::new());
    assert_eq!(
        spec.bfd,
        Some(BfdProfile {
            receive_interval: Duration::from_millis(150),
            transmit_interval: Duration::from_millis(200),
            detect_multiplier: NonZeroU8::new(5).expect("nonzero"),
            passive: true,
            minimum_ttl: 250,
        })
    );
}

#[test]
fn bfd_profile_that_cannot_run_leaves_the_peer_running_without_bfd() {
    let mut peer = model_peer("tor", "192.0.2.1");
    peer.bfd_profile = Some("broken".into());
    let mut config = config(std::slice::from_ref(&peer));
    let mut broken = model_bfd("broken", 100);
    broken.detect_multiplier = 0;
    config.bfd_profiles.insert("broken".into(), broken);
    let (spec, warnings) =
        peer_spec(&peer, &config, &BTreeMap::new(), &node(), false).expect("runs");
    assert_eq!(spec.bfd, None);
    let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1);
    assert!(
        text[0]
            .starts_with("BGPPeer tor: spec.bfdProfile: BFDProfile broken: spec.detectMultiplier"),
        "{text:?}"
    );
}

#[test]
fn graceful_restart_sets_restart_time_and_the_r_bit_only_when_asked() {
    let mut peer = model_peer("tor", "192.0.2.1");
    peer.graceful_restart = Some(Duration::from_secs(120));
    let config = config(std::slice::from_ref(&peer));
    for restarted in [true, false] {
        let (spec, _) =
            peer_spec(&peer, &config, &BTreeMap::new(), &node(), restarted).expect("maps");
        assert_eq!(
            spec.session.graceful_restart,
            Some(GracefulRestartConfig {
                restart_time: 120,
                restarted
            })
        );
    }
}

#[test]
fn wanted_peers_refuse_an_unknown_peer_and_a_second_peer_on_the_same_address() {
    let a = model_peer("a", "192.0.2.1");
    let b = model_peer("b", "192.0.2.1");
    let config = config(&[a, b]);
    let desired = BTreeMap::from([
        ("a".to_owned(), routes(&["203.0.113.10/32"])),
        ("b".to_owned(), Routes::new()),
        ("ghost".to_owned(), Routes::new()),
    ]);
    let (wanted, errors) = wanted_peers(&config, &desired, &BTreeMap::new(), &node(), false);
    assert_eq!(wanted.keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(wanted["a"].routes, desired["a"]);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        vec![
            "BGPPeer b: spec.peerAddress 192.0.2.1 is already used by BGPPeer a on this node; not started",
            "BGPPeer ghost: not in the configuration snapshot; not started",
        ]
    );
}

#[test]
fn referenced_secrets_are_those_of_the_peers_of_this_node() {
    let mut a = model_peer("a", "192.0.2.1");
    a.password_secret = Some(secret("a-md5"));
    let mut b = model_peer("b", "192.0.2.2");
    b.password_secret = Some(secret("b-md5"));
    let config = config(&[a, b]);
    let desired = BTreeMap::from([("a".to_owned(), Routes::new())]);
    assert_eq!(
        PeerSet::referenced_secrets(&config, &desired),
        BTreeSet::from([secret("a-md5")])
    );
    assert_eq!(
        referenced_secrets(&config, &BTreeMap::new()),
        BTreeSet::new()
    );
}

// ---- planning --------------------------------------------------------------------------------

/// A named edit of a BGPPeer.
type Change = (&'static str, fn(&mut Peer));

/// Plans from `running` (peer, spec, routes) to `wanted`, with BFD attached everywhere.
fn plan_of(running: &[(&str, &PeerSpec, &Routes)], wanted: &[(&str, Wanted)]) -> Vec<Step> {
    let running: BTreeMap<String, Running<'_>> = running
        .iter()
        .map(|(name, spec, routes)| {
            let view = Running {
                spec,
                routes,
                bfd_attached: true,
            };
            ((*name).to_owned(), view)
        })
        .collect();
    let wanted: BTreeMap<String, Wanted> = wanted
        .iter()
        .map(|(name, w)| ((*name).to_owned(), w.clone()))
        .collect();
    plan(&running, &wanted, true)
}

fn want(spec: &PeerSpec, routes: &Routes) -> Wanted {
    Wanted {
        spec: Some(spec.clone()),
        routes: routes.clone(),
    }
}

fn p(name: &str) -> String {
    name.to_owned()
}

/// The plan from `base` running (no routes) to `base` edited by `change`.
fn plan_after(base: &Peer, change: fn(&mut Peer)) -> Vec<Step> {
    let mut peer = base.clone();
    change(&mut peer);
    let r = Routes::new();
    plan_of(
        &[("tor", &spec(base), &r)],
        &[("tor", want(&spec(&peer), &r))],
    )
}

/// Stop (Cease, Other Configuration Change) and start again.
fn restart(name: &str) -> Vec<Step> {
    vec![
        Step::Stop {
            peer: p(name),
            subcode: CeaseSubcode::OtherConfigurationChange,
        },
        Step::Start { peer: p(name) },
    ]
}

#[test]
fn unchanged_peer_needs_nothing_even_when_only_the_restart_bit_differs() {
    let mut peer = model_peer("tor", "192.0.2.1");
    peer.graceful_restart = Some(Duration::from_secs(120));
    let config = config(std::slice::from_ref(&peer));
    let first = peer_spec(&peer, &config, &BTreeMap::new(), &node(), true)
        .expect("maps")
        .0;
    let later = peer_spec(&peer, &config, &BTreeMap::new(), &node(), false)
        .expect("maps")
        .0;
    let r = routes(&["203.0.113.10/32"]);
    assert_eq!(
        plan_of(&[("tor", &first, &r)], &[("tor", want(&later, &r))]),
        vec![]
    );
}

#[test]
fn new_peer_starts_and_a_peer_no_longer_wanted_stops_as_deconfigured_first() {
    let old = spec(&model_peer("old", "192.0.2.1"));
    let new = spec(&model_peer("new", "192.0.2.2"));
    let r = routes(&["203.0.113.10/32"]);
    assert_eq!(
        plan_of(&[("old", &old, &r)], &[("new", want(&new, &r))]),
        vec![
            Step::Stop {
                peer: p("old"),
                subcode: CeaseSubcode::PeerDeconfigured
            },
            Step::Start { peer: p("new") },
        ]
    );
}

#[test]
fn route_changes_only_update_the_running_session() {
    let spec = spec(&model_peer("tor", "192.0.2.1"));
    let before = routes(&["203.0.113.10/32"]);
    let after = routes(&["203.0.113.10/32", "2001:db8:3::10/128"]);
    assert_eq!(
        plan_of(&[("tor", &spec, &before)], &[("tor", want(&spec, &after))]),
        vec![Step::SetRoutes { peer: p("tor") }]
    );
}

#[test]
fn open_parameter_changes_reconfigure_with_a_reset() {
    let base = model_peer("tor", "192.0.2.1");
    let changes: Vec<Change> = vec![
        ("hold time", |p| p.hold_time = Duration::from_secs(9)),
        ("my ASN", |p| p.my_asn = 64510),
        ("peer ASN", |p| p.peer_asn = PeerAsn::External),
        ("router id", |p| {
            p.router_id = Some(Ipv4Addr::new(10, 0, 0, 1))
        }),
        ("families", |p| p.dual_stack_address_family = true),
        ("graceful restart", |p| {
            p.graceful_restart = Some(Duration::from_secs(60))
        }),
    ];
    for (what, change) in changes {
        assert_eq!(
            plan_after(&base, change),
            vec![Step::Reconfigure {
                peer: p("tor"),
                resets: true
            }],
            "{what}"
        );
    }
}

#[test]
fn keepalive_connect_time_and_passive_changes_reconfigure_without_a_reset() {
    let base = model_peer("tor", "192.0.2.1");
    let changes: Vec<fn(&mut Peer)> = vec![
        |p| p.keepalive_time = Duration::from_secs(10),
        |p| p.connect_time = Duration::from_secs(5),
        |p| p.passive = true,
    ];
    for change in changes {
        assert_eq!(
            plan_after(&base, change),
            vec![Step::Reconfigure {
                peer: p("tor"),
                resets: false
            }]
        );
    }
}

#[test]
fn changes_bound_to_the_connection_restart_the_peer() {
    let base = model_peer("tor", "192.0.2.1");
    let running = spec(&base);
    let r = Routes::new();
    let changes: Vec<Change> = vec![
        ("port", |p| p.port = 1179),
        ("multihop", |p| p.ebgp_multi_hop = Some(3)),
        ("source address", |p| {
            p.source_address = Some("192.0.2.99".parse().expect("v4"))
        }),
    ];
    for (what, change) in changes {
        assert_eq!(plan_after(&base, change), restart("tor"), "{what}");
    }
    let mut with_password = running.clone();
    with_password.password = Some("s3cret".into());
    assert_eq!(
        plan_of(
            &[("tor", &running, &r)],
            &[("tor", want(&with_password, &r))]
        ),
        restart("tor"),
        "password"
    );
}

#[test]
fn bfd_added_changed_or_removed_never_touches_the_bgp_session() {
    let mut fast = model_peer("tor", "192.0.2.1");
    fast.bfd_profile = Some("fast".into());
    let mut slow = fast.clone();
    slow.bfd_profile = Some("slow".into());
    let none = model_peer("tor", "192.0.2.1");
    let r = Routes::new();
    let set_bfd = vec![Step::SetBfd { peer: p("tor") }];
    for (from, to) in [(&none, &fast), (&fast, &slow), (&slow, &none)] {
        assert_eq!(
            plan_of(&[("tor", &spec(from), &r)], &[("tor", want(&spec(to), &r))]),
            set_bfd,
            "{:?} -> {:?}",
            from.bfd_profile,
            to.bfd_profile
        );
    }
}

#[test]
fn peer_started_before_bfd_ran_restarts_once_bfd_is_available() {
    let mut peer = model_peer("tor", "192.0.2.1");
    peer.bfd_profile = Some("fast".into());
    let spec = spec(&peer);
    let r = Routes::new();
    let running = BTreeMap::from([(
        p("tor"),
        Running {
            spec: &spec,
            routes: &r,
            bfd_attached: false,
        },
    )]);
    let wanted = BTreeMap::from([(p("tor"), want(&spec, &r))]);
    assert_eq!(
        plan(&running, &wanted, false),
        vec![],
        "BFD still unavailable"
    );
    assert_eq!(plan(&running, &wanted, true), restart("tor"));
}

#[test]
fn broken_configuration_keeps_the_running_session_and_its_routes_flowing() {
    let spec = spec(&model_peer("tor", "192.0.2.1"));
    let before = routes(&["203.0.113.10/32"]);
    let after = routes(&["203.0.113.11/32"]);
    let broken = |routes: &Routes| Wanted {
        spec: None,
        routes: routes.clone(),
    };
    assert_eq!(
        plan_of(&[("tor", &spec, &before)], &[("tor", broken(&before))]),
        vec![]
    );
    assert_eq!(
        plan_of(&[("tor", &spec, &before)], &[("tor", broken(&after))]),
        vec![Step::SetRoutes { peer: p("tor") }]
    );
    assert_eq!(
        plan_of(&[], &[("tor", broken(&after))]),
        vec![],
        "not started"
    );
}

#[test]
fn address_moved_to_another_peer_is_freed_before_the_new_peer_starts() {
    let a = spec(&model_peer("a", "192.0.2.1"));
    let b = spec(&model_peer("b", "192.0.2.1"));
    let mut a_moved = model_peer("a", "192.0.2.2");
    a_moved.hold_time = Duration::from_secs(30);
    let a_moved = spec(&a_moved);
    let r = Routes::new();
    let steps = plan_of(
        &[("a", &a, &r)],
        &[("a", want(&a_moved, &r)), ("b", want(&b, &r))],
    );
    assert_eq!(
        steps,
        [restart("a"), vec![Step::Start { peer: p("b") }]].concat()
    );
}

// ---- status ----------------------------------------------------------------------------------

#[test]
fn session_status_carries_state_since_prefixes_and_error_text() {
    let mut status = PeerStatus::new();
    status.state = State::Established;
    status.prefixes_sent = 7;
    let session = bgp_session("tor", &status);
    assert_eq!(session.peer, "tor");
    assert_eq!(session.state, BgpState::Established);
    assert_eq!(session.prefixes_sent, 7);
    assert!(session.since.is_some());
    assert_eq!(session.last_error, None);
    assert_eq!(bfd_state(SessionState::Up), BfdState::Up);
    assert_eq!(bfd_state(SessionState::AdminDown), BfdState::AdminDown);
}

#[test]
fn bfd_session_status_carries_the_session_counters() {
    let counters = SessionCounters {
        packets_in: 40,
        packets_out: 41,
        send_errors: 2,
        state_changes: 3,
    };
    assert_eq!(
        bfd_session("tor", SessionState::Up, &counters),
        BfdSessionStatus {
            peer: "tor".into(),
            state: BfdState::Up,
            packets_received: 40,
            packets_sent: 41,
            state_changes: 3,
        }
    );
    let huge = SessionCounters {
        packets_in: u64::MAX,
        ..counters
    };
    assert_eq!(
        bfd_session("tor", SessionState::Down, &huge).packets_received,
        i64::MAX
    );
}

// ---- BFD counters to metrics -----------------------------------------------------------------

fn bfd_sample(
    discriminator: u32,
    packets_in: u64,
    packets_out: u64,
    send_errors: u64,
    state_changes: u64,
) -> BfdSessionCounters {
    BfdSessionCounters {
        discriminator: std::num::NonZeroU32::new(discriminator).expect("nonzero"),
        counters: SessionCounters {
            packets_in,
            packets_out,
            send_errors,
            state_changes,
        },
    }
}

#[test]
fn bfd_counters_grow_by_the_difference_and_count_a_replaced_session_from_zero() {
    let mut registry = prometheus_client::registry::Registry::with_prefix("ferrolb");
    let metrics = BgpMetrics::register(&mut registry);
    let tor = PeerLabels { peer: "tor".into() };
    let first = bfd_sample(7, 10, 12, 0, 2);
    let later = bfd_sample(7, 15, 18, 1, 2);
    // BFD switched off and on: a new discriminator, counting from zero.
    let replaced = bfd_sample(9, 4, 5, 0, 1);
    let mut recorded = None;
    for sample in [first, later, later, replaced] {
        metrics.record_bfd_session(&tor, &bfd_session_growth(recorded.as_ref(), &sample));
        recorded = Some(sample);
    }
    assert_exposes(
        &registry,
        &[
            "ferrolb_bfd_packets_received_total{peer=\"tor\"} 19",
            "ferrolb_bfd_packets_sent_total{peer=\"tor\"} 23",
            "ferrolb_bfd_send_errors_total{peer=\"tor\"} 1",
            "ferrolb_bfd_session_state_changes_total{peer=\"tor\"} 3",
        ],
    );

    metrics.forget_bfd(&tor);
    let text = metrics_text(&registry);
    assert!(!text.contains("peer=\"tor\""), "BFD series left:\n{text}");
}

#[test]
fn bfd_drops_are_counted_by_reason_label() {
    let mut registry = prometheus_client::registry::Registry::with_prefix("ferrolb");
    let metrics = BgpMetrics::register(&mut registry);
    let first = BTreeMap::from([
        (DropReason::TtlNot255, 3),
        (DropReason::Invalid("truncated"), 1),
    ]);
    metrics.record_bfd_dropped(&BTreeMap::new(), &first);
    let later = BTreeMap::from([
        (DropReason::TtlNot255, 5),
        (DropReason::Invalid("truncated"), 1),
        (DropReason::NoSession, 2),
    ]);
    metrics.record_bfd_dropped(&first, &later);
    assert_exposes(
        &registry,
        &[
            "ferrolb_bfd_packets_dropped_total{reason=\"ttl_not_255\"} 5",
            "ferrolb_bfd_packets_dropped_total{reason=\"truncated\"} 1",
            "ferrolb_bfd_packets_dropped_total{reason=\"no_session\"} 2",
        ],
    );
}

// ---- driven on loopback ----------------------------------------------------------------------

/// Polls `done` every 50 ms for up to 10 s.
async fn eventually<T>(what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(value) = done() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

fn metrics_text(registry: &prometheus_client::registry::Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text
}

/// The registry's exposition, once it is known to hold each of `lines`.
fn assert_exposes(registry: &prometheus_client::registry::Registry, lines: &[&str]) -> String {
    let text = metrics_text(registry);
    for line in lines {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    text
}

#[tokio::test]
async fn peer_set_runs_a_session_reports_status_refusals_and_metrics_and_stops_a_removed_peer() {
    use std::net::SocketAddr;

    use crate::bfd::driver::DriverConfig;
    use crate::bgp::fsm::PeerConfig;

    let node_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let router_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    // The "router": a passive speaker on 127.0.0.2 waiting for the node.
    let router = Speaker::listen(&[SocketAddr::new(router_ip, 0)]).expect("router listens");
    let router_port = router.local_addresses()[0].port();
    let to_node = router
        .add_peer(
            PeerSpec {
                address: SocketAddr::new(node_ip, 179),
                local_address: Some(router_ip),
                session: PeerConfig {
                    local_as: 64501,
                    peer_as: PeerAs::Fixed(64500),
                    bgp_identifier: Ipv4Addr::new(192, 0, 2, 2),
                    hold_time: 9,
                    keepalive: None,
                    connect_retry: Duration::from_millis(200),
                    connect_retry_max: Duration::from_secs(1),
                    passive: true,
                    families: vec![Family::IPV4_UNICAST],
                    graceful_restart: None,
                    jitter_seed: 7,
                },
                next_hops: NextHops::default(),
                password: None,
                ttl: None,
                bfd: None,
            },
            Routes::new(),
        )
        .expect("router's peer");

    // The node: connects out only; BFD on loopback so the set does not open the RFC ports.
    let mut speaker = Speaker::listen(&[]).expect("node speaker");
    let loopback_any = vec![SocketAddr::new(node_ip, 0)];
    speaker
        .start_bfd(&DriverConfig {
            single_hop_listen: loopback_any.clone(),
            multihop_listen: loopback_any,
        })
        .expect("BFD on loopback");
    let mut set = PeerSet::new(speaker);
    let mut peer = model_peer("tor", "127.0.0.2");
    peer.port = router_port;
    let mut duplicate = peer.clone();
    duplicate.name = "tor-again".into();
    let config = config(&[peer, duplicate]);
    let desired = BTreeMap::from([
        ("tor".to_owned(), routes(&["203.0.113.10/32"])),
        ("tor-again".to_owned(), Routes::new()),
    ]);
    let addresses = [node_ip];
    let inputs = PeerSetInputs {
        config: &config,
        routes: &desired,
        passwords: &BTreeMap::new(),
        node_addresses: &addresses,
    };
    let errors: Vec<String> = set
        .apply(&inputs)
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    let refused = "BGPPeer tor-again: spec.peerAddress 127.0.0.2 is already used by BGPPeer tor on \
                   this node; not started";
    assert_eq!(errors, vec![refused]);

    let session = eventually("Established with one prefix sent", || {
        let (bgp, _) = set.status();
        bgp.into_iter()
            .find(|s| s.state == BgpState::Established && s.prefixes_sent == 1)
    })
    .await;
    assert_eq!(session.peer, "tor");
    let (bgp, _) = set.status();
    assert_eq!(bgp.len(), 2, "{bgp:?}");
    assert_eq!(
        (
            bgp[1].peer.as_str(),
            bgp[1].state,
            bgp[1].last_error.as_deref()
        ),
        ("tor-again", BgpState::Idle, Some(refused)),
        "a refused peer is listed with why"
    );
    assert_eq!(
        to_node.status().borrow().state,
        State::Established,
        "the router's side"
    );
    let mut registry = prometheus_client::registry::Registry::with_prefix("ferrolb");
    let metrics = BgpMetrics::register(&mut registry);
    set.record_metrics(&metrics);
    let text = assert_exposes(
        &registry,
        &[
            "ferrolb_bgp_session_up{peer=\"tor\"} 1",
            "ferrolb_bgp_prefixes_announced{peer=\"tor\"} 1",
            // The route, then End-of-RIB (RFC 4724 §2).
            "ferrolb_bgp_updates_sent_total{peer=\"tor\"} 2",
        ],
    );
    for bfd_series in ["bfd_session_up{", "bfd_packets_received_total{"] {
        assert!(
            !text.contains(&format!("ferrolb_{bfd_series}")),
            "no BFD configured:\n{text}"
        );
    }

    // The BGPPeer no longer selects the node: Cease / Peer De-configured, and its series go.
    let nothing = BTreeMap::new();
    let errors = set
        .apply(&PeerSetInputs {
            routes: &nothing,
            ..inputs
        })
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(set.status(), (vec![], vec![]));
    let mut router_status = to_node.status();
    let closed = eventually("the router sees the Cease", || {
        let status = router_status.borrow_and_update().clone();
        status
            .last_error
            .filter(|_| status.state != State::Established)
    })
    .await;
    assert!(closed.to_string().contains("PeerDeconfigured"), "{closed}");
    set.record_metrics(&metrics);
    let text = metrics_text(&registry);
    assert!(!text.contains("peer=\"tor\""), "stale series:\n{text}");
    set.shutdown().await;
}
