//! Allocation rules of SPEC §3/§4, one behaviour per test.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_config::addresses::{AddressSet, Family};
use ferrolb_controller::allocator::*;

mod match_labels;

use match_labels::MatchLabels;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn selector(pairs: &[(&str, &str)]) -> Arc<dyn LabelMatcher> {
    Arc::new(MatchLabels(labels(pairs)))
}

fn pool(name: &str, addresses: &[&str]) -> PoolSpec {
    PoolSpec {
        name: name.to_owned(),
        addresses: AddressSet::parse(addresses.iter().copied()).expect("valid addresses"),
        auto_assign: true,
        avoid_buggy_ips: false,
        priority: None,
        restriction: None,
    }
}

fn prio(mut p: PoolSpec, priority: u32) -> PoolSpec {
    p.priority = Some(priority);
    p
}

fn for_namespaces(mut p: PoolSpec, names: &[&str]) -> PoolSpec {
    p.restriction = Some(Restriction {
        namespaces: Some(names.iter().map(|n| (*n).to_owned()).collect()),
        service_selectors: Vec::new(),
    });
    p
}

fn for_services(mut p: PoolSpec, pairs: &[(&str, &str)]) -> PoolSpec {
    p.restriction = Some(Restriction {
        namespaces: None,
        service_selectors: vec![selector(pairs)],
    });
    p
}

fn svc(name: &str) -> ServiceRequest {
    ServiceRequest {
        key: ServiceKey::new("default", name),
        ports: vec![tcp(80)],
        ..Default::default()
    }
}

fn in_ns(mut s: ServiceRequest, namespace: &str) -> ServiceRequest {
    s.key.namespace = namespace.to_owned();
    s
}

fn requesting(mut s: ServiceRequest, ips: &[&str]) -> ServiceRequest {
    s.requested_ips = ips.iter().map(|i| ip(i)).collect();
    s
}

fn from_pool(mut s: ServiceRequest, pool: &str) -> ServiceRequest {
    s.requested_pool = Some(pool.to_owned());
    s
}

fn sharing(mut s: ServiceRequest, key: &str, ports: &[ServicePort]) -> ServiceRequest {
    s.sharing_key = Some(key.to_owned());
    s.ports = ports.to_vec();
    s
}

fn dual(mut s: ServiceRequest, policy: FamilyPolicy, families: &[Family]) -> ServiceRequest {
    s.family_policy = policy;
    s.ip_families = families.to_vec();
    s
}

fn local(mut s: ServiceRequest, pods: &[(&str, &str)]) -> ServiceRequest {
    s.traffic_policy = TrafficPolicy::Local;
    s.pod_selector = labels(pods);
    s
}

fn tcp(port: u16) -> ServicePort {
    ServicePort {
        protocol: Protocol::Tcp,
        port,
    }
}

fn udp(port: u16) -> ServicePort {
    ServicePort {
        protocol: Protocol::Udp,
        port,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("valid ip in test")
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

fn alloc(pools: Vec<PoolSpec>) -> Allocator {
    Allocator::new(pools).expect("valid pools")
}

fn assigned(a: &mut Allocator, s: &ServiceRequest) -> Vec<IpAddr> {
    a.assign(s).expect("assignment succeeds").ips
}

fn assert_ips(a: &mut Allocator, s: &ServiceRequest, expected: &[&str]) {
    assert_eq!(assigned(a, s), ips(expected), "{}", s.key);
}

const V4: &[Family] = &[Family::V4];
const V6: &[Family] = &[Family::V6];
const V4V6: &[Family] = &[Family::V4, Family::V6];
const V6V4: &[Family] = &[Family::V6, Family::V4];

// --- lowest free first ---------------------------------------------------------------------

#[test]
fn first_service_gets_lowest_address_of_pool() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/28"])]);
    let got = a.assign(&svc("a")).expect("assigned");
    assert_eq!(got.pool, "p");
    assert_eq!(got.ips, ips(&["192.0.2.0"]));
}

#[test]
fn second_service_gets_next_free_address() {
    let mut a = alloc(vec![pool("p", &["192.0.2.10-192.0.2.20"])]);
    assert_ips(&mut a, &svc("a"), &["192.0.2.10"]);
    assert_ips(&mut a, &svc("b"), &["192.0.2.11"]);
}

#[test]
fn released_address_is_reused_lowest_first() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/28"])]);
    for name in ["a", "b", "c"] {
        a.assign(&svc(name)).expect("assigned");
    }
    assert_eq!(
        a.release(&svc("a").key).map(|x| x.ips),
        Some(ips(&["192.0.2.0"]))
    );
    assert_ips(&mut a, &svc("d"), &["192.0.2.0"]);
    assert_ips(&mut a, &svc("e"), &["192.0.2.3"]);
}

#[test]
fn assigning_again_keeps_the_same_address() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/28"])]);
    assert_ips(&mut a, &svc("a"), &["192.0.2.0"]);
    a.assign(&svc("b")).expect("assigned");
    a.release(&svc("b").key);
    assert_ips(&mut a, &svc("a"), &["192.0.2.0"]);
}

#[test]
fn pool_exhausted_error_names_pool_and_family() {
    let mut a = alloc(vec![pool("small", &["192.0.2.1-192.0.2.2"])]);
    a.assign(&svc("a")).expect("assigned");
    a.assign(&svc("b")).expect("assigned");
    assert_eq!(
        a.assign(&svc("c")),
        Err(AllocError::PoolExhausted {
            pool: "small".into(),
            family: Family::V4
        })
    );
    assert_eq!(a.assignment(&svc("c").key), None);
}

#[test]
fn exhausted_pool_serves_again_after_release() {
    let mut a = alloc(vec![pool("p", &["192.0.2.1"])]);
    a.assign(&svc("a")).expect("assigned");
    assert!(a.assign(&svc("b")).is_err());
    a.release(&svc("a").key);
    assert_ips(&mut a, &svc("b"), &["192.0.2.1"]);
}

#[test]
fn no_pools_means_no_pool_for_service() {
    let mut a = alloc(vec![]);
    assert_eq!(
        a.assign(&svc("a")),
        Err(AllocError::NoPoolForService {
            service: svc("a").key
        })
    );
}

#[test]
fn lowest_address_walks_across_pool_entries() {
    let mut a = alloc(vec![pool(
        "p",
        &["198.51.100.7", "192.0.2.200-192.0.2.201"],
    )]);
    assert_ips(&mut a, &svc("a"), &["192.0.2.200"]);
    assert_ips(&mut a, &svc("b"), &["192.0.2.201"]);
    assert_ips(&mut a, &svc("c"), &["198.51.100.7"]);
}

#[test]
fn ipv6_slash_64_pool_hands_out_lowest_addresses() {
    let mut a = alloc(vec![pool("v6", &["2001:db8::/64"])]);
    let s = |n: &str| dual(svc(n), FamilyPolicy::SingleStack, V6);
    assert_ips(&mut a, &s("a"), &["2001:db8::"]);
    assert_ips(&mut a, &s("b"), &["2001:db8::1"]);
    let usage = a.usage("v6").expect("pool");
    assert_eq!(usage.ipv6.assigned, 2);
    assert_eq!(usage.ipv6.available, (1u128 << 64) - 2);
}

#[test]
fn ipv4_slash_8_pool_hands_out_thousands_in_order() {
    let mut a = alloc(vec![pool("big", &["10.0.0.0/8"])]);
    for n in 0u32..5000 {
        let got = assigned(&mut a, &svc(&format!("s{n}")));
        assert_eq!(
            got,
            vec![IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))]
        );
    }
}

// --- requested IPs -------------------------------------------------------------------------

#[test]
fn requested_ip_is_assigned() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    assert_ips(
        &mut a,
        &requesting(svc("a"), &["192.0.2.77"]),
        &["192.0.2.77"],
    );
    assert_ips(&mut a, &svc("b"), &["192.0.2.0"]);
}

#[test]
fn requested_ip_outside_every_pool_is_refused() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    assert_eq!(
        a.assign(&requesting(svc("a"), &["203.0.113.5"])),
        Err(AllocError::RequestedIpNotInAnyPool {
            ip: ip("203.0.113.5")
        })
    );
}

#[test]
fn requested_ip_in_use_is_refused_naming_the_holder() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&requesting(svc("a"), &["192.0.2.9"]))
        .expect("assigned");
    assert_eq!(
        a.assign(&requesting(svc("b"), &["192.0.2.9"])),
        Err(AllocError::RequestedIpInUse {
            ip: ip("192.0.2.9"),
            by: svc("a").key
        })
    );
}

#[test]
fn requested_ip_of_wrong_family_is_refused() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    assert_eq!(
        a.assign(&requesting(svc("a"), &["2001:db8::5"])),
        Err(AllocError::WrongFamily {
            ip: ip("2001:db8::5"),
            wanted: vec![Family::V4]
        })
    );
}

#[test]
fn requested_ip_may_come_from_auto_assign_false_pool() {
    let mut manual = pool("manual", &["198.51.100.0/24"]);
    manual.auto_assign = false;
    let mut a = alloc(vec![manual]);
    assert_ips(
        &mut a,
        &requesting(svc("a"), &["198.51.100.3"]),
        &["198.51.100.3"],
    );
}

#[test]
fn requested_ip_outside_requested_pool_is_refused() {
    let mut a = alloc(vec![
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["198.51.100.0/24"]),
    ]);
    assert_eq!(
        a.assign(&from_pool(requesting(svc("s"), &["192.0.2.1"]), "b")),
        Err(AllocError::RequestedIpNotInRequestedPool {
            ip: ip("192.0.2.1"),
            pool: "b".into()
        })
    );
}

#[test]
fn requested_ip_in_pool_not_allowing_the_namespace_is_refused() {
    let mut a = alloc(vec![for_namespaces(
        pool("team", &["192.0.2.0/24"]),
        &["team"],
    )]);
    assert_eq!(
        a.assign(&requesting(svc("s"), &["192.0.2.1"])),
        Err(AllocError::PoolNotAllowed {
            pool: "team".into(),
            service: svc("s").key
        })
    );
}

#[test]
fn requested_buggy_ip_is_refused_by_avoiding_pool() {
    let mut p = pool("p", &["192.0.2.0/24"]);
    p.avoid_buggy_ips = true;
    let mut a = alloc(vec![p]);
    for bad in ["192.0.2.0", "192.0.2.255"] {
        assert_eq!(
            a.assign(&requesting(svc("s"), &[bad])),
            Err(AllocError::RequestedIpAvoided {
                ip: ip(bad),
                pool: "p".into()
            })
        );
    }
}

#[test]
fn requested_buggy_ip_is_granted_by_pool_not_avoiding() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    assert_ips(
        &mut a,
        &requesting(svc("s"), &["192.0.2.255"]),
        &["192.0.2.255"],
    );
}

#[test]
fn changing_requested_ip_moves_the_service() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    assert_ips(
        &mut a,
        &requesting(svc("s"), &["192.0.2.5"]),
        &["192.0.2.5"],
    );
    assert_ips(
        &mut a,
        &requesting(svc("s"), &["192.0.2.6"]),
        &["192.0.2.6"],
    );
    assert!(a.holders(ip("192.0.2.5")).is_empty());
}

#[test]
fn dropping_the_ip_request_keeps_the_address() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    assert_ips(
        &mut a,
        &requesting(svc("s"), &["192.0.2.5"]),
        &["192.0.2.5"],
    );
    assert_ips(&mut a, &svc("s"), &["192.0.2.5"]);
}

#[test]
fn failed_request_change_leaves_the_service_without_address() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&svc("s")).expect("assigned");
    assert!(a.assign(&requesting(svc("s"), &["203.0.113.1"])).is_err());
    assert_eq!(a.assignment(&svc("s").key), None);
    assert!(a.holders(ip("192.0.2.0")).is_empty());
}

#[test]
fn single_stack_with_two_requested_ips_is_refused() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    assert_eq!(
        a.assign(&requesting(svc("s"), &["192.0.2.1", "2001:db8::1"])),
        Err(AllocError::TooManyRequestedIps {
            service: svc("s").key,
            count: 2
        })
    );
}

#[test]
fn require_dual_stack_with_one_requested_ip_is_refused() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    let s = dual(
        requesting(svc("s"), &["192.0.2.1"]),
        FamilyPolicy::RequireDualStack,
        V4V6,
    );
    assert!(matches!(
        a.assign(&s),
        Err(AllocError::DualStackRequired { .. })
    ));
}

#[test]
fn requested_ips_of_both_families_come_in_ip_families_order() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    let s = dual(
        requesting(svc("s"), &["192.0.2.1", "2001:db8::1"]),
        FamilyPolicy::RequireDualStack,
        V6V4,
    );
    assert_ips(&mut a, &s, &["2001:db8::1", "192.0.2.1"]);
}

#[test]
fn requested_ips_from_different_pools_are_refused() {
    let mut a = alloc(vec![
        pool("four", &["192.0.2.0/24"]),
        pool("six", &["2001:db8::/120"]),
    ]);
    let s = dual(
        requesting(svc("s"), &["192.0.2.1", "2001:db8::1"]),
        FamilyPolicy::RequireDualStack,
        V4V6,
    );
    assert_eq!(
        a.assign(&s),
        Err(AllocError::RequestedIpsInDifferentPools {
            ips: ips(&["192.0.2.1", "2001:db8::1"]),
            pools: vec!["four".into(), "six".into()]
        })
    );
}

#[test]
fn prefer_dual_stack_with_one_requested_ip_takes_only_it() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    let s = dual(
        requesting(svc("s"), &["2001:db8::9"]),
        FamilyPolicy::PreferDualStack,
        V4V6,
    );
    assert_ips(&mut a, &s, &["2001:db8::9"]);
}

// --- pool annotation and autoAssign ----------------------------------------------------------

#[test]
fn requested_pool_is_used_even_when_tried_last_otherwise() {
    let mut a = alloc(vec![
        prio(pool("first", &["192.0.2.0/24"]), 1),
        prio(pool("last", &["198.51.100.0/24"]), 9),
    ]);
    assert_ips(&mut a, &from_pool(svc("s"), "last"), &["198.51.100.0"]);
}

#[test]
fn unknown_requested_pool_is_refused() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    assert_eq!(
        a.assign(&from_pool(svc("s"), "nope")),
        Err(AllocError::UnknownPool {
            pool: "nope".into()
        })
    );
}

#[test]
fn auto_assign_false_pool_is_skipped_without_request() {
    let mut manual = prio(pool("manual", &["198.51.100.0/24"]), 0);
    manual.auto_assign = false;
    let mut a = alloc(vec![manual, prio(pool("auto", &["192.0.2.0/24"]), 5)]);
    assert_eq!(a.assign(&svc("s")).map(|x| x.pool), Ok("auto".to_owned()));
}

#[test]
fn auto_assign_false_pool_is_used_when_requested_by_name() {
    let mut manual = pool("manual", &["198.51.100.0/24"]);
    manual.auto_assign = false;
    let mut a = alloc(vec![manual]);
    assert_ips(&mut a, &from_pool(svc("s"), "manual"), &["198.51.100.0"]);
}

#[test]
fn only_auto_assign_false_pools_leave_service_without_pool() {
    let mut manual = pool("manual", &["198.51.100.0/24"]);
    manual.auto_assign = false;
    let mut a = alloc(vec![manual]);
    assert_eq!(
        a.assign(&svc("s")),
        Err(AllocError::NoPoolForService {
            service: svc("s").key
        })
    );
}

#[test]
fn requested_pool_not_admitting_the_service_is_refused() {
    let mut a = alloc(vec![for_namespaces(
        pool("team", &["192.0.2.0/24"]),
        &["team"],
    )]);
    assert_eq!(
        a.assign(&from_pool(svc("s"), "team")),
        Err(AllocError::PoolNotAllowed {
            pool: "team".into(),
            service: svc("s").key
        })
    );
}

#[test]
fn changing_requested_pool_moves_the_service() {
    let mut a = alloc(vec![
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["198.51.100.0/24"]),
    ]);
    assert_ips(&mut a, &svc("s"), &["192.0.2.0"]);
    assert_ips(&mut a, &from_pool(svc("s"), "b"), &["198.51.100.0"]);
}

#[test]
fn turning_auto_assign_off_keeps_assigned_addresses() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    assert_ips(&mut a, &svc("s"), &["192.0.2.0"]);
    let mut edited = pool("p", &["192.0.2.0/24"]);
    edited.auto_assign = false;
    assert_eq!(a.set_pools(vec![edited]), Ok(vec![]));
    assert_ips(&mut a, &svc("s"), &["192.0.2.0"]);
    assert!(a.assign(&svc("t")).is_err());
}

// --- avoidBuggyIPs ---------------------------------------------------------------------------

#[test]
fn avoid_buggy_ips_skips_dot_zero() {
    let mut p = pool("p", &["192.0.2.0/24"]);
    p.avoid_buggy_ips = true;
    let mut a = alloc(vec![p]);
    assert_ips(&mut a, &svc("s"), &["192.0.2.1"]);
}

#[test]
fn avoid_buggy_ips_skips_dot_255_and_the_next_dot_zero() {
    let mut p = pool("p", &["192.0.2.254-192.0.3.2"]);
    p.avoid_buggy_ips = true;
    let mut a = alloc(vec![p]);
    assert_ips(&mut a, &svc("a"), &["192.0.2.254"]);
    assert_ips(&mut a, &svc("b"), &["192.0.3.1"]);
}

#[test]
fn avoid_buggy_ips_leaves_ipv6_alone() {
    let mut p = pool("p", &["2001:db8::/120"]);
    p.avoid_buggy_ips = true;
    let mut a = alloc(vec![p]);
    assert_ips(
        &mut a,
        &dual(svc("s"), FamilyPolicy::SingleStack, V6),
        &["2001:db8::"],
    );
}

#[test]
fn avoid_buggy_ips_pool_of_only_buggy_addresses_is_exhausted() {
    let mut p = pool("p", &["192.0.2.255-192.0.3.0"]);
    p.avoid_buggy_ips = true;
    let mut a = alloc(vec![p]);
    assert!(matches!(
        a.assign(&svc("s")),
        Err(AllocError::PoolExhausted { .. })
    ));
}

#[test]
fn avoid_buggy_ips_usage_counts_only_usable_addresses() {
    let mut p = pool("p", &["192.0.2.0/24"]);
    p.avoid_buggy_ips = true;
    let mut a = alloc(vec![p]);
    a.assign(&svc("s")).expect("assigned");
    let usage = a.usage("p").expect("pool");
    assert_eq!(
        usage.ipv4,
        FamilyUsage {
            assigned: 1,
            available: 253
        }
    );
}

// --- restrictions and pool order -------------------------------------------------------------

#[test]
fn namespace_restricted_pool_is_preferred_over_unrestricted() {
    let mut a = alloc(vec![
        prio(pool("shared", &["192.0.2.0/24"]), 0),
        prio(
            for_namespaces(pool("team", &["198.51.100.0/24"]), &["team"]),
            50,
        ),
    ]);
    assert_eq!(
        a.assign(&in_ns(svc("s"), "team")).map(|x| x.pool),
        Ok("team".into())
    );
}

#[test]
fn namespace_restricted_pool_is_not_used_by_other_namespaces() {
    let mut a = alloc(vec![
        for_namespaces(pool("team", &["198.51.100.0/24"]), &["team"]),
        pool("shared", &["192.0.2.0/24"]),
    ]);
    assert_eq!(
        a.assign(&in_ns(svc("s"), "other")).map(|x| x.pool),
        Ok("shared".into())
    );
}

#[test]
fn service_selector_admits_by_service_labels() {
    let mut a = alloc(vec![
        for_services(pool("web", &["198.51.100.0/24"]), &[("tier", "web")]),
        pool("rest", &["192.0.2.0/24"]),
    ]);
    let mut web = svc("web");
    web.labels = labels(&[("tier", "web"), ("app", "x")]);
    assert_eq!(a.assign(&web).map(|x| x.pool), Ok("web".into()));
    assert_eq!(a.assign(&svc("db")).map(|x| x.pool), Ok("rest".into()));
}

#[test]
fn namespace_and_service_restrictions_must_both_hold() {
    let mut p = pool("p", &["198.51.100.0/24"]);
    p.restriction = Some(Restriction {
        namespaces: Some(["team".to_owned()].into()),
        service_selectors: vec![selector(&[("tier", "web")])],
    });
    let mut a = alloc(vec![p]);
    let mut s = in_ns(svc("s"), "team");
    assert!(a.assign(&s).is_err());
    s.labels = labels(&[("tier", "web")]);
    assert!(a.assign(&in_ns(s.clone(), "other")).is_err());
    assert_ips(&mut a, &s, &["198.51.100.0"]);
}

#[test]
fn lower_priority_value_is_tried_first() {
    let mut a = alloc(vec![
        prio(pool("a", &["192.0.2.0/24"]), 20),
        prio(pool("b", &["198.51.100.0/24"]), 10),
    ]);
    assert_eq!(a.assign(&svc("s")).map(|x| x.pool), Ok("b".into()));
}

#[test]
fn pools_without_priority_come_after_prioritised_ones() {
    let mut a = alloc(vec![
        pool("a", &["192.0.2.0/24"]),
        prio(pool("z", &["198.51.100.0/24"]), 100),
    ]);
    assert_eq!(a.assign(&svc("s")).map(|x| x.pool), Ok("z".into()));
}

#[test]
fn equal_priorities_are_ordered_by_name() {
    let mut a = alloc(vec![
        prio(pool("zeta", &["192.0.2.0/24"]), 5),
        prio(pool("alpha", &["198.51.100.0/24"]), 5),
    ]);
    assert_eq!(a.assign(&svc("s")).map(|x| x.pool), Ok("alpha".into()));
}

#[test]
fn matching_restricted_pools_come_before_unrestricted_whatever_their_priority() {
    let mut a = alloc(vec![
        prio(pool("open", &["192.0.2.0/24"]), 0),
        prio(
            for_services(pool("web", &["198.51.100.0/24"]), &[("tier", "web")]),
            99,
        ),
        for_services(pool("web2", &["203.0.113.0/24"]), &[("tier", "web")]),
    ]);
    let mut s = svc("s");
    s.labels = labels(&[("tier", "web")]);
    assert_eq!(a.assign(&s).map(|x| x.pool), Ok("web".into()));
}

#[test]
fn exhausted_pool_falls_through_to_the_next_in_order() {
    let mut a = alloc(vec![
        prio(pool("a", &["192.0.2.1"]), 1),
        prio(pool("b", &["198.51.100.0/24"]), 2),
    ]);
    assert_ips(&mut a, &svc("s"), &["192.0.2.1"]);
    assert_ips(&mut a, &svc("t"), &["198.51.100.0"]);
}

#[test]
fn all_pools_exhausted_names_every_pool_tried() {
    let mut a = alloc(vec![
        prio(pool("a", &["192.0.2.1"]), 1),
        prio(pool("b", &["192.0.2.2"]), 2),
    ]);
    a.assign(&svc("s")).expect("assigned");
    a.assign(&svc("t")).expect("assigned");
    assert_eq!(
        a.assign(&svc("u")),
        Err(AllocError::AllPoolsExhausted {
            service: svc("u").key,
            pools: vec!["a".into(), "b".into()]
        })
    );
}

#[test]
fn pool_of_other_family_only_gives_no_pool_with_family() {
    let mut a = alloc(vec![pool("six", &["2001:db8::/120"])]);
    assert_eq!(
        a.assign(&svc("s")),
        Err(AllocError::NoPoolWithFamily {
            service: svc("s").key,
            families: vec![Family::V4]
        })
    );
}

// --- sharing ---------------------------------------------------------------------------------

#[test]
fn shared_ip_allowed_with_same_key_and_distinct_ports() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    let one = sharing(requesting(svc("one"), &["192.0.2.7"]), "k", &[tcp(80)]);
    let two = sharing(requesting(svc("two"), &["192.0.2.7"]), "k", &[tcp(443)]);
    assert_ips(&mut a, &one, &["192.0.2.7"]);
    assert_ips(&mut a, &two, &["192.0.2.7"]);
    assert_eq!(a.holders(ip("192.0.2.7")).len(), 2);
}

#[test]
fn shared_ip_refused_when_ports_clash() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    let one = sharing(
        requesting(svc("one"), &["192.0.2.7"]),
        "k",
        &[tcp(80), tcp(443)],
    );
    let two = sharing(requesting(svc("two"), &["192.0.2.7"]), "k", &[tcp(443)]);
    a.assign(&one).expect("assigned");
    assert_eq!(
        a.assign(&two),
        Err(AllocError::PortClash {
            ip: ip("192.0.2.7"),
            with: one.key.clone(),
            protocol: Protocol::Tcp,
            port: 443
        })
    );
}

#[test]
fn same_port_number_with_other_protocol_may_share() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    let dns_tcp = sharing(svc("dns-tcp"), "dns", &[tcp(53)]);
    let dns_udp = sharing(svc("dns-udp"), "dns", &[udp(53)]);
    assert_ips(&mut a, &dns_tcp, &["192.0.2.0"]);
    assert_ips(&mut a, &dns_udp, &["192.0.2.0"]);
}

#[test]
fn shared_ip_refused_when_keys_differ() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&sharing(
        requesting(svc("one"), &["192.0.2.7"]),
        "a",
        &[tcp(80)],
    ))
    .expect("assigned");
    assert_eq!(
        a.assign(&sharing(
            requesting(svc("two"), &["192.0.2.7"]),
            "b",
            &[tcp(81)]
        )),
        Err(AllocError::SharingKeyMismatch {
            ip: ip("192.0.2.7"),
            with: svc("one").key,
            ours: "b".into(),
            theirs: "a".into()
        })
    );
}

#[test]
fn shared_ip_refused_when_newcomer_has_no_key() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&sharing(
        requesting(svc("one"), &["192.0.2.7"]),
        "a",
        &[tcp(80)],
    ))
    .expect("assigned");
    assert!(matches!(
        a.assign(&requesting(svc("two"), &["192.0.2.7"])),
        Err(AllocError::RequestedIpInUse { .. })
    ));
}

#[test]
fn shared_ip_refused_when_holder_has_no_key() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&requesting(svc("one"), &["192.0.2.7"]))
        .expect("assigned");
    assert!(matches!(
        a.assign(&sharing(
            requesting(svc("two"), &["192.0.2.7"]),
            "a",
            &[tcp(81)]
        )),
        Err(AllocError::RequestedIpInUse { .. })
    ));
}

#[test]
fn empty_sharing_key_does_not_share() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&sharing(svc("one"), "", &[tcp(80)]))
        .expect("assigned");
    assert_ips(&mut a, &sharing(svc("two"), "", &[tcp(81)]), &["192.0.2.1"]);
}

#[test]
fn etp_local_sharing_refused_with_different_pod_selectors() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    let one = local(sharing(svc("one"), "k", &[tcp(80)]), &[("app", "a")]);
    let two = local(
        sharing(requesting(svc("two"), &["192.0.2.0"]), "k", &[tcp(81)]),
        &[("app", "b")],
    );
    a.assign(&one).expect("assigned");
    assert_eq!(
        a.assign(&two),
        Err(AllocError::PodSelectorMismatch {
            ip: ip("192.0.2.0"),
            with: one.key.clone()
        })
    );
}

#[test]
fn etp_local_sharing_allowed_with_same_pod_selector() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    let one = local(sharing(svc("one"), "k", &[tcp(80)]), &[("app", "a")]);
    let two = local(sharing(svc("two"), "k", &[tcp(81)]), &[("app", "a")]);
    assert_ips(&mut a, &one, &["192.0.2.0"]);
    assert_ips(&mut a, &two, &["192.0.2.0"]);
}

#[test]
fn etp_local_and_cluster_services_do_not_share() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&local(
        sharing(svc("one"), "k", &[tcp(80)]),
        &[("app", "a")],
    ))
    .expect("assigned");
    let mut cluster = sharing(svc("two"), "k", &[tcp(81)]);
    cluster.pod_selector = labels(&[("app", "a")]);
    assert_ips(&mut a, &cluster, &["192.0.2.1"]);
}

#[test]
fn auto_assignment_with_key_joins_the_shared_ip() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&svc("first")).expect("assigned");
    assert_ips(
        &mut a,
        &sharing(svc("one"), "k", &[tcp(80)]),
        &["192.0.2.1"],
    );
    a.release(&svc("first").key);
    // Joining the shared address wins over a lower free one.
    assert_ips(
        &mut a,
        &sharing(svc("two"), "k", &[tcp(443)]),
        &["192.0.2.1"],
    );
}

#[test]
fn auto_assignment_with_key_skips_shared_ip_with_clashing_ports() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    assert_ips(
        &mut a,
        &sharing(svc("one"), "k", &[tcp(80)]),
        &["192.0.2.0"],
    );
    assert_ips(
        &mut a,
        &sharing(svc("two"), "k", &[tcp(80)]),
        &["192.0.2.1"],
    );
    assert_ips(
        &mut a,
        &sharing(svc("three"), "k", &[tcp(81)]),
        &["192.0.2.0"],
    );
}

#[test]
fn shared_ip_outlives_one_sharer() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&sharing(svc("one"), "k", &[tcp(80)]))
        .expect("assigned");
    a.assign(&sharing(svc("two"), "k", &[tcp(81)]))
        .expect("assigned");
    a.release(&svc("one").key);
    assert_eq!(a.holders(ip("192.0.2.0")), vec![&svc("two").key]);
    assert_ips(&mut a, &svc("three"), &["192.0.2.1"]);
}

#[test]
fn shared_ip_is_freed_with_its_last_sharer() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&sharing(svc("one"), "k", &[tcp(80)]))
        .expect("assigned");
    a.assign(&sharing(svc("two"), "k", &[tcp(81)]))
        .expect("assigned");
    a.release(&svc("one").key);
    a.release(&svc("two").key);
    assert_ips(&mut a, &svc("three"), &["192.0.2.0"]);
    assert_eq!(a.usage("p").map(|u| u.ipv4.assigned), Some(1));
}

#[test]
fn changing_the_sharing_key_moves_only_the_changed_service() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&sharing(svc("one"), "k", &[tcp(80)]))
        .expect("assigned");
    a.assign(&sharing(svc("two"), "k", &[tcp(81)]))
        .expect("assigned");
    assert_ips(
        &mut a,
        &sharing(svc("two"), "other", &[tcp(81)]),
        &["192.0.2.1"],
    );
    assert_ips(
        &mut a,
        &sharing(svc("one"), "k", &[tcp(80)]),
        &["192.0.2.0"],
    );
}

#[test]
fn port_change_that_clashes_moves_the_changed_service() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&sharing(svc("one"), "k", &[tcp(80)]))
        .expect("assigned");
    a.assign(&sharing(svc("two"), "k", &[tcp(81)]))
        .expect("assigned");
    assert_ips(
        &mut a,
        &sharing(svc("two"), "k", &[tcp(80)]),
        &["192.0.2.1"],
    );
    assert_eq!(a.holders(ip("192.0.2.0")), vec![&svc("one").key]);
}

// --- families --------------------------------------------------------------------------------

#[test]
fn single_stack_takes_the_first_listed_family() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    assert_ips(
        &mut a,
        &dual(svc("s"), FamilyPolicy::SingleStack, V6V4),
        &["2001:db8::"],
    );
    assert_ips(&mut a, &svc("t"), &["192.0.2.0"]);
}

#[test]
fn require_dual_stack_takes_both_families_from_one_pool() {
    let mut a = alloc(vec![
        prio(pool("four", &["192.0.2.0/24"]), 1),
        prio(pool("six", &["2001:db8:1::/120"]), 2),
        prio(pool("both", &["198.51.100.0/24", "2001:db8::/120"]), 3),
    ]);
    let got = a
        .assign(&dual(svc("s"), FamilyPolicy::RequireDualStack, V4V6))
        .expect("assigned");
    assert_eq!(got.pool, "both");
    assert_eq!(got.ips, ips(&["198.51.100.0", "2001:db8::"]));
}

#[test]
fn require_dual_stack_refused_without_a_dual_stack_pool() {
    let mut a = alloc(vec![
        pool("four", &["192.0.2.0/24"]),
        pool("six", &["2001:db8::/120"]),
    ]);
    assert!(matches!(
        a.assign(&dual(svc("s"), FamilyPolicy::RequireDualStack, V4V6)),
        Err(AllocError::DualStackRequired { .. })
    ));
}

#[test]
fn require_dual_stack_fails_when_one_family_is_exhausted() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::1"])]);
    a.assign(&dual(svc("s"), FamilyPolicy::SingleStack, V6))
        .expect("assigned");
    assert_eq!(
        a.assign(&dual(svc("t"), FamilyPolicy::RequireDualStack, V4V6)),
        Err(AllocError::PoolExhausted {
            pool: "p".into(),
            family: Family::V6
        })
    );
    assert_eq!(a.usage("p").map(|u| u.ipv4.assigned), Some(0));
}

#[test]
fn require_dual_stack_with_single_family_list_still_takes_both() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    assert_ips(
        &mut a,
        &dual(svc("s"), FamilyPolicy::RequireDualStack, V6),
        &["2001:db8::", "192.0.2.0"],
    );
}

#[test]
fn prefer_dual_stack_takes_both_when_the_pool_has_both() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    assert_ips(
        &mut a,
        &dual(svc("s"), FamilyPolicy::PreferDualStack, V6V4),
        &["2001:db8::", "192.0.2.0"],
    );
}

#[test]
fn prefer_dual_stack_takes_one_family_from_a_single_family_pool() {
    let mut a = alloc(vec![pool("four", &["192.0.2.0/24"])]);
    assert_ips(
        &mut a,
        &dual(svc("s"), FamilyPolicy::PreferDualStack, V4V6),
        &["192.0.2.0"],
    );
}

#[test]
fn prefer_dual_stack_follows_pool_order_not_family_coverage() {
    let mut a = alloc(vec![
        prio(pool("six", &["2001:db8:1::/120"]), 1),
        prio(pool("both", &["192.0.2.0/24", "2001:db8::/120"]), 2),
    ]);
    let got = a
        .assign(&dual(svc("s"), FamilyPolicy::PreferDualStack, V4V6))
        .expect("assigned");
    assert_eq!(
        (got.pool.as_str(), got.ips),
        ("six", ips(&["2001:db8:1::"]))
    );
}

#[test]
fn prefer_dual_stack_in_single_stack_cluster_takes_one_family() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    assert_ips(
        &mut a,
        &dual(svc("s"), FamilyPolicy::PreferDualStack, V4),
        &["192.0.2.0"],
    );
}

#[test]
fn changing_family_policy_to_single_stack_drops_the_other_family() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    assert_ips(
        &mut a,
        &dual(svc("s"), FamilyPolicy::RequireDualStack, V4V6),
        &["192.0.2.0", "2001:db8::"],
    );
    assert_ips(
        &mut a,
        &dual(svc("s"), FamilyPolicy::SingleStack, V4),
        &["192.0.2.0"],
    );
    assert!(a.holders(ip("2001:db8::")).is_empty());
}

#[test]
fn upgrading_to_require_dual_stack_keeps_the_ipv4_address() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    a.assign(&svc("first")).expect("assigned");
    assert_ips(&mut a, &svc("s"), &["192.0.2.1"]);
    a.release(&svc("first").key);
    assert_ips(
        &mut a,
        &dual(svc("s"), FamilyPolicy::RequireDualStack, V4V6),
        &["192.0.2.1", "2001:db8::"],
    );
}

// --- pool changes and stability --------------------------------------------------------------

#[test]
fn adding_a_preferred_pool_moves_no_ip() {
    let mut a = alloc(vec![pool("old", &["192.0.2.0/24"])]);
    assert_ips(&mut a, &svc("s"), &["192.0.2.0"]);
    let displaced = a
        .set_pools(vec![
            pool("old", &["192.0.2.0/24"]),
            prio(pool("new", &["198.51.100.0/24"]), 0),
        ])
        .expect("valid pools");
    assert_eq!(displaced, vec![]);
    assert_ips(&mut a, &svc("s"), &["192.0.2.0"]);
    assert_ips(&mut a, &svc("t"), &["198.51.100.0"]);
}

#[test]
fn editing_a_pool_that_still_holds_the_ip_moves_nothing() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&requesting(svc("s"), &["192.0.2.200"]))
        .expect("assigned");
    let displaced = a
        .set_pools(vec![prio(
            pool("p", &["192.0.2.128/25", "2001:db8::/64"]),
            3,
        )])
        .expect("valid pools");
    assert_eq!(displaced, vec![]);
    assert_eq!(
        a.assignment(&svc("s").key).map(|x| x.ips.clone()),
        Some(ips(&["192.0.2.200"]))
    );
}

#[test]
fn ip_that_left_every_pool_is_reported_and_reassigned() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&svc("s")).expect("assigned");
    let displaced = a
        .set_pools(vec![pool("p", &["192.0.2.128/25"])])
        .expect("valid pools");
    assert_eq!(
        displaced,
        vec![Displaced {
            service: svc("s").key,
            rejected: vec![RejectedIp {
                ip: ip("192.0.2.0"),
                reason: AllocError::IpLeftEveryPool {
                    ip: ip("192.0.2.0")
                }
            }],
            kept: None
        }]
    );
    assert_ips(&mut a, &svc("s"), &["192.0.2.128"]);
}

#[test]
fn deleting_a_pool_moves_its_services_to_the_next_pool() {
    let mut a = alloc(vec![
        prio(pool("a", &["192.0.2.0/24"]), 1),
        prio(pool("b", &["198.51.100.0/24"]), 2),
    ]);
    assert_ips(&mut a, &svc("s"), &["192.0.2.0"]);
    let displaced = a
        .set_pools(vec![prio(pool("b", &["198.51.100.0/24"]), 2)])
        .expect("valid pools");
    assert_eq!(displaced.len(), 1);
    assert_ips(&mut a, &svc("s"), &["198.51.100.0"]);
    assert_eq!(a.usage("a"), None);
}

#[test]
fn renaming_a_pool_with_the_same_addresses_keeps_ips() {
    let mut a = alloc(vec![pool("old", &["192.0.2.0/24"])]);
    a.assign(&svc("s")).expect("assigned");
    assert_eq!(
        a.set_pools(vec![pool("new", &["192.0.2.0/24"])]),
        Ok(vec![])
    );
    assert_eq!(
        a.assignment(&svc("s").key).cloned(),
        Some(Assignment {
            pool: "new".into(),
            ips: ips(&["192.0.2.0"])
        })
    );
}

#[test]
fn restricting_a_pool_away_from_a_namespace_displaces_its_services() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&in_ns(svc("s"), "dev")).expect("assigned");
    a.assign(&in_ns(svc("t"), "prod")).expect("assigned");
    let displaced = a
        .set_pools(vec![for_namespaces(
            pool("p", &["192.0.2.0/24"]),
            &["prod"],
        )])
        .expect("valid pools");
    assert_eq!(
        displaced
            .iter()
            .map(|d| d.service.clone())
            .collect::<Vec<_>>(),
        vec![in_ns(svc("s"), "dev").key]
    );
    assert_ips(&mut a, &in_ns(svc("t"), "prod"), &["192.0.2.1"]);
}

#[test]
fn deleting_another_service_moves_no_ip() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    for name in ["a", "b", "c"] {
        a.assign(&svc(name)).expect("assigned");
    }
    a.release(&svc("a").key);
    assert_ips(&mut a, &svc("b"), &["192.0.2.1"]);
    assert_ips(&mut a, &svc("c"), &["192.0.2.2"]);
}

#[test]
fn overlapping_pools_are_refused_without_change() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    a.assign(&svc("s")).expect("assigned");
    assert!(matches!(
        a.set_pools(vec![
            pool("p", &["192.0.2.0/24"]),
            pool("q", &["192.0.2.128/25"])
        ]),
        Err(AllocError::OverlappingPools { .. })
    ));
    assert_eq!(
        a.assignment(&svc("s").key).map(|x| x.pool.as_str()),
        Some("p")
    );
}

#[test]
fn duplicate_pool_names_are_refused() {
    assert_eq!(
        Allocator::new(vec![
            pool("p", &["192.0.2.0/24"]),
            pool("p", &["198.51.100.0/24"])
        ])
        .map(|_| ()),
        Err(AllocError::DuplicatePool { pool: "p".into() })
    );
}

#[test]
fn require_dual_stack_losing_ipv6_is_completed_from_the_same_pool() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    let s = dual(svc("s"), FamilyPolicy::RequireDualStack, V4V6);
    assert_ips(&mut a, &s, &["192.0.2.0", "2001:db8::"]);
    let displaced = a
        .set_pools(vec![pool("p", &["192.0.2.0/24", "2001:db8:1::/120"])])
        .expect("valid pools");
    assert_eq!(displaced.len(), 1);
    assert_ips(&mut a, &s, &["192.0.2.0", "2001:db8:1::"]);
}

#[test]
fn prefer_dual_stack_losing_ipv6_keeps_ipv4_alone() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    let s = dual(svc("s"), FamilyPolicy::PreferDualStack, V4V6);
    assert_ips(&mut a, &s, &["192.0.2.0", "2001:db8::"]);
    a.set_pools(vec![pool("p", &["192.0.2.0/24"])])
        .expect("valid pools");
    assert_ips(&mut a, &s, &["192.0.2.0"]);
}

// --- restart ---------------------------------------------------------------------------------

#[test]
fn claim_restores_assignments_after_restart() {
    let pools = || vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])];
    let mut before = alloc(pools());
    let services = [
        svc("a"),
        dual(svc("b"), FamilyPolicy::RequireDualStack, V4V6),
        sharing(svc("c"), "k", &[tcp(1)]),
        sharing(svc("d"), "k", &[tcp(2)]),
    ];
    for s in &services {
        before.assign(s).expect("assigned");
    }
    let mut after = alloc(pools());
    for s in &services {
        let held = before.assignment(&s.key).expect("held").ips.clone();
        let claim = after.claim(s, &held);
        assert!(claim.complete && claim.rejected.is_empty(), "{claim:?}");
    }
    assert_eq!(
        before.assignments().collect::<Vec<_>>(),
        after.assignments().collect::<Vec<_>>()
    );
    assert_ips(&mut after, &svc("e"), &["192.0.2.3"]);
}

#[test]
fn claim_rejects_an_ip_outside_every_pool() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    let claim = a.claim(&svc("s"), &ips(&["203.0.113.9"]));
    assert_eq!(claim.kept, None);
    assert!(!claim.complete);
    assert_eq!(
        claim.rejected,
        vec![RejectedIp {
            ip: ip("203.0.113.9"),
            reason: AllocError::IpLeftEveryPool {
                ip: ip("203.0.113.9")
            }
        }]
    );
}

#[test]
fn claim_rejects_a_second_holder_without_sharing_key() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24"])]);
    assert!(a.claim(&svc("s"), &ips(&["192.0.2.4"])).complete);
    let claim = a.claim(&svc("t"), &ips(&["192.0.2.4"]));
    assert_eq!(
        claim.rejected,
        vec![RejectedIp {
            ip: ip("192.0.2.4"),
            reason: AllocError::RequestedIpInUse {
                ip: ip("192.0.2.4"),
                by: svc("s").key
            }
        }]
    );
}

#[test]
fn claimed_addresses_are_not_handed_out_again() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/30"])]);
    a.claim(&svc("x"), &ips(&["192.0.2.0"]));
    a.claim(&svc("y"), &ips(&["192.0.2.2"]));
    assert_ips(&mut a, &svc("s"), &["192.0.2.1"]);
    assert_ips(&mut a, &svc("t"), &["192.0.2.3"]);
}

#[test]
fn claim_rejects_an_address_of_an_unwanted_family() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    let claim = a.claim(&svc("s"), &ips(&["192.0.2.1", "2001:db8::1"]));
    assert_eq!(claim.kept.map(|k| k.ips), Some(ips(&["192.0.2.1"])));
    assert!(claim.complete);
    assert!(matches!(
        claim.rejected.as_slice(),
        [RejectedIp {
            reason: AllocError::WrongFamily { .. },
            ..
        }]
    ));
}

#[test]
fn claim_of_half_a_require_dual_stack_pair_asks_for_assign() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/24", "2001:db8::/120"])]);
    let s = dual(svc("s"), FamilyPolicy::RequireDualStack, V4V6);
    let claim = a.claim(&s, &ips(&["192.0.2.5"]));
    assert!(!claim.complete);
    assert_ips(&mut a, &s, &["192.0.2.5", "2001:db8::"]);
}

// --- usage -----------------------------------------------------------------------------------

#[test]
fn usage_counts_assigned_and_available_per_family() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/28", "2001:db8::/124"])]);
    a.assign(&dual(svc("s"), FamilyPolicy::RequireDualStack, V4V6))
        .expect("assigned");
    a.assign(&svc("t")).expect("assigned");
    assert_eq!(
        a.usage("p"),
        Some(PoolUsage {
            ipv4: FamilyUsage {
                assigned: 2,
                available: 14
            },
            ipv6: FamilyUsage {
                assigned: 1,
                available: 15
            }
        })
    );
}

#[test]
fn usage_counts_a_shared_address_once() {
    let mut a = alloc(vec![pool("p", &["192.0.2.0/28"])]);
    a.assign(&sharing(svc("one"), "k", &[tcp(1)]))
        .expect("assigned");
    a.assign(&sharing(svc("two"), "k", &[tcp(2)]))
        .expect("assigned");
    assert_eq!(a.usage("p").map(|u| u.ipv4.assigned), Some(1));
}

#[test]
fn usage_of_the_whole_ipv6_space_saturates() {
    let mut a = alloc(vec![pool("all", &["::/0"])]);
    a.assign(&dual(svc("s"), FamilyPolicy::SingleStack, V6))
        .expect("assigned");
    assert_eq!(
        a.usage("all").map(|u| u.ipv6),
        Some(FamilyUsage {
            assigned: 1,
            available: u128::MAX - 1
        })
    );
}

// --- annotations -----------------------------------------------------------------------------

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels(pairs)
}

#[test]
fn annotations_give_ips_pool_and_sharing_key() {
    let parsed = parse_annotations(
        &annotations(&[
            (LOAD_BALANCER_IPS, "192.0.2.1, 2001:db8::1"),
            (ADDRESS_POOL, "gold"),
            (ALLOW_SHARED_IP, "k"),
        ]),
        None,
    )
    .expect("valid");
    assert_eq!(
        parsed,
        RequestAnnotations {
            requested_ips: ips(&["192.0.2.1", "2001:db8::1"]),
            requested_pool: Some("gold".into()),
            sharing_key: Some("k".into()),
            aliases: vec![]
        }
    );
}

#[test]
fn metallb_spellings_are_accepted_and_reported() {
    let parsed = parse_annotations(
        &annotations(&[
            ("metallb.universe.tf/loadBalancerIPs", "192.0.2.1"),
            ("metallb.io/address-pool", "gold"),
            ("metallb.universe.tf/allow-shared-ip", "k"),
        ]),
        None,
    )
    .expect("valid");
    assert_eq!(parsed.requested_ips, ips(&["192.0.2.1"]));
    assert_eq!(parsed.requested_pool.as_deref(), Some("gold"));
    assert_eq!(parsed.sharing_key.as_deref(), Some("k"));
    assert_eq!(
        parsed.aliases,
        vec![
            AliasUsed {
                annotation: "metallb.universe.tf/loadBalancerIPs".into(),
                preferred: LOAD_BALANCER_IPS
            },
            AliasUsed {
                annotation: "metallb.io/address-pool".into(),
                preferred: ADDRESS_POOL
            },
            AliasUsed {
                annotation: "metallb.universe.tf/allow-shared-ip".into(),
                preferred: ALLOW_SHARED_IP
            },
        ]
    );
}

#[test]
fn disagreeing_spellings_are_refused() {
    assert_eq!(
        parse_annotations(
            &annotations(&[
                (ADDRESS_POOL, "gold"),
                ("metallb.io/address-pool", "silver")
            ]),
            None
        ),
        Err(AnnotationError::ConflictingSpellings {
            first: ADDRESS_POOL.into(),
            first_value: "gold".into(),
            second: "metallb.io/address-pool".into(),
            second_value: "silver".into()
        })
    );
}

#[test]
fn load_balancer_ip_field_is_honoured() {
    let parsed = parse_annotations(&annotations(&[]), Some("192.0.2.9")).expect("valid");
    assert_eq!(parsed.requested_ips, ips(&["192.0.2.9"]));
    assert_eq!(
        parse_annotations(&annotations(&[]), Some("")),
        Ok(RequestAnnotations::default())
    );
}

#[test]
fn malformed_load_balancer_ip_field_is_refused_naming_the_field() {
    assert_eq!(
        parse_annotations(&annotations(&[]), Some("192.0.2.1/32")),
        Err(AnnotationError::BadIp {
            annotation: "spec.loadBalancerIP".into(),
            value: "192.0.2.1/32".into()
        })
    );
}

#[test]
fn load_balancer_ip_field_disagreeing_with_annotation_is_refused() {
    assert!(matches!(
        parse_annotations(
            &annotations(&[(LOAD_BALANCER_IPS, "192.0.2.1")]),
            Some("192.0.2.2")
        ),
        Err(AnnotationError::ConflictingIpRequests { .. })
    ));
    assert!(
        parse_annotations(
            &annotations(&[(LOAD_BALANCER_IPS, "192.0.2.1")]),
            Some("192.0.2.1")
        )
        .is_ok()
    );
}

#[test]
fn malformed_ip_lists_are_refused_naming_the_annotation() {
    let parse = |v: &str| parse_annotations(&annotations(&[(LOAD_BALANCER_IPS, v)]), None);
    assert_eq!(
        parse("192.0.2.1,192.0.2.2"),
        Err(AnnotationError::SameFamilyTwice {
            annotation: LOAD_BALANCER_IPS.into(),
            family: Family::V4
        })
    );
    assert_eq!(
        parse("192.0.2.1,2001:db8::1,198.51.100.1"),
        Err(AnnotationError::TooManyIps {
            annotation: LOAD_BALANCER_IPS.into(),
            count: 3
        })
    );
    assert_eq!(
        parse("192.0.2.300"),
        Err(AnnotationError::BadIp {
            annotation: LOAD_BALANCER_IPS.into(),
            value: "192.0.2.300".into()
        })
    );
    assert_eq!(
        parse(" "),
        Err(AnnotationError::Empty {
            annotation: LOAD_BALANCER_IPS.into()
        })
    );
}

#[test]
fn empty_pool_annotation_is_refused_and_empty_key_means_none() {
    assert!(matches!(
        parse_annotations(&annotations(&[(ADDRESS_POOL, "")]), None),
        Err(AnnotationError::Empty { .. })
    ));
    let parsed = parse_annotations(&annotations(&[(ALLOW_SHARED_IP, "")]), None).expect("valid");
    assert_eq!(parsed.sharing_key, None);
}
