//! Invariants of SPEC §4 under random churn: Services created, updated and deleted, pools added,
//! edited, renamed, restricted and deleted, namespaces relabelled, and controller restarts that
//! rebuild the allocator from what the Services' status holds.
//!
//! After every step:
//! - the allocator and the "Service status" the driver writes agree;
//! - no two Services share an IP without the same non-empty key, disjoint ports and (for
//!   `externalTrafficPolicy: Local`) the same pod selector;
//! - every assigned IP lies in a pool that allows its Service, all of a Service's IPs in one pool,
//!   one per wanted family;
//! - stability: a Service's IPs change only when its own spec changed so that they no longer fit,
//!   or a pool change took one of them away from it. Restarts change nothing.
//!
//! The oracles here re-state the rules from the generated inputs, independently of the allocator.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ferrolb_config::addresses::{AddressRange, AddressSet, Family};
use ferrolb_controller::allocator::*;
use proptest::prelude::*;

mod match_labels;

use match_labels::MatchLabels;

const POOL_SLOTS: usize = 4;
const SERVICES: usize = 10;
const NAMESPACES: usize = 3;
/// Each pool slot owns 16 addresses per family; slot 0's IPv4 block straddles `.255`/`.0`.
const BLOCK: u32 = 16;
const V4_BASE: u32 = 0xc000_02f8; // 192.0.2.248
const V6_BASE: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0000;

fn v4(offset: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(V4_BASE + offset))
}

fn v6(offset: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(V6_BASE + u128::from(offset)))
}

#[derive(Debug, Clone, PartialEq)]
enum RestrictionGen {
    Namespaces(BTreeSet<usize>),
    NamespaceEnv(&'static str),
    Tier(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
struct PoolGen {
    renamed: bool,
    /// Offsets within the slot's block, inclusive.
    v4: Option<(u32, u32)>,
    v6: Option<(u32, u32)>,
    auto_assign: bool,
    avoid_buggy_ips: bool,
    priority: Option<u32>,
    restriction: Option<RestrictionGen>,
}

impl PoolGen {
    fn name(&self, slot: usize) -> String {
        format!("{}{slot}", if self.renamed { "q" } else { "p" })
    }

    /// The pool as the config model gives it: namespace selectors resolved against the
    /// Namespaces' current `env` labels.
    fn spec(&self, slot: usize, namespace_env: &[Option<&'static str>]) -> PoolSpec {
        let base = BLOCK * u32::try_from(slot).expect("few slots");
        let mut ranges = Vec::new();
        if let Some((a, b)) = self.v4 {
            ranges.extend(AddressRange::new(v4(base + a), v4(base + b)));
        }
        if let Some((a, b)) = self.v6 {
            ranges.extend(AddressRange::new(v6(base + a), v6(base + b)));
        }
        let restriction = self.restriction.as_ref().map(|r| match r {
            RestrictionGen::Namespaces(set) => Restriction {
                namespaces: Some(set.iter().map(|n| format!("n{n}")).collect()),
                service_selectors: vec![],
            },
            RestrictionGen::NamespaceEnv(env) => Restriction {
                namespaces: Some(
                    (0..NAMESPACES)
                        .filter(|&n| namespace_env[n] == Some(*env))
                        .map(|n| format!("n{n}"))
                        .collect(),
                ),
                service_selectors: vec![],
            },
            RestrictionGen::Tier(tier) => Restriction {
                namespaces: None,
                service_selectors: vec![matcher("tier", tier)],
            },
        });
        PoolSpec {
            name: self.name(slot),
            addresses: AddressSet::from_ranges(ranges),
            auto_assign: self.auto_assign,
            avoid_buggy_ips: self.avoid_buggy_ips,
            priority: self.priority,
            restriction,
        }
    }

    /// Oracle: whether the pool admits `service`, from the generated restriction.
    fn admits(&self, service: &ServiceRequest, namespace_env: &[Option<&'static str>]) -> bool {
        match &self.restriction {
            None => true,
            Some(RestrictionGen::Namespaces(set)) => {
                set.iter().any(|n| service.key.namespace == format!("n{n}"))
            }
            Some(RestrictionGen::NamespaceEnv(env)) => (0..NAMESPACES).any(|n| {
                service.key.namespace == format!("n{n}") && namespace_env[n] == Some(*env)
            }),
            Some(RestrictionGen::Tier(tier)) => {
                service.labels.get("tier").map(String::as_str) == Some(*tier)
            }
        }
    }
}

fn matcher(key: &str, value: &str) -> Arc<dyn LabelMatcher> {
    Arc::new(MatchLabels([(key.to_owned(), value.to_owned())].into()))
}

#[derive(Debug, Clone, PartialEq)]
enum RequestGen {
    None,
    One(IpAddr),
    Two(IpAddr, IpAddr),
}

#[derive(Debug, Clone, PartialEq)]
struct ServiceGen {
    tier: Option<&'static str>,
    request: RequestGen,
    pool: Option<String>,
    key: Option<&'static str>,
    ports: BTreeSet<ServicePort>,
    local_app: Option<&'static str>,
    policy: FamilyPolicy,
    families: Vec<Family>,
}

#[derive(Debug, Clone)]
enum Step {
    Upsert(usize, ServiceGen),
    Delete(usize),
    SetPool(usize, Option<PoolGen>),
    RelabelNamespace(usize, Option<&'static str>),
    Restart,
}

fn pool_gen() -> impl Strategy<Value = PoolGen> {
    let span = || {
        prop::option::weighted(
            0.8,
            (0..BLOCK, 0..BLOCK).prop_map(|(a, b)| (a.min(b), a.max(b))),
        )
    };
    let restriction = prop_oneof![
        6 => Just(None),
        1 => prop::collection::btree_set(0..NAMESPACES, 1..=2).prop_map(|s| Some(RestrictionGen::Namespaces(s))),
        1 => prop::sample::select(vec!["prod", "dev"]).prop_map(|e| Some(RestrictionGen::NamespaceEnv(e))),
        1 => prop::sample::select(vec!["web", "db"]).prop_map(|t| Some(RestrictionGen::Tier(t))),
    ];
    (
        prop::bool::weighted(0.2),
        span(),
        span(),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.3),
        prop::option::of(0u32..3),
        restriction,
    )
        .prop_map(
            |(renamed, v4, v6, auto_assign, avoid_buggy_ips, priority, restriction)| PoolGen {
                renamed,
                v4,
                v6,
                auto_assign,
                avoid_buggy_ips,
                priority,
                restriction,
            },
        )
}

fn service_gen() -> impl Strategy<Value = ServiceGen> {
    let universe = u32::try_from(POOL_SLOTS).expect("few slots") * BLOCK;
    let request = prop_oneof![
        6 => Just(RequestGen::None),
        2 => (0..universe, any::<bool>()).prop_map(|(o, six)| RequestGen::One(if six { v6(o) } else { v4(o) })),
        1 => (0..universe, 0..universe).prop_map(|(a, b)| RequestGen::Two(v4(a), v6(b))),
    ];
    let pool = prop::option::weighted(
        0.2,
        (0..POOL_SLOTS, any::<bool>())
            .prop_map(|(s, q)| format!("{}{s}", if q { "q" } else { "p" })),
    );
    let port = (
        prop::sample::select(vec![Protocol::Tcp, Protocol::Udp]),
        1u16..5,
    )
        .prop_map(|(protocol, port)| ServicePort { protocol, port });
    let families = prop_oneof![
        Just(vec![Family::V4]),
        Just(vec![Family::V6]),
        Just(vec![Family::V4, Family::V6]),
        Just(vec![Family::V6, Family::V4]),
    ];
    let policy = prop::sample::select(vec![
        FamilyPolicy::SingleStack,
        FamilyPolicy::SingleStack,
        FamilyPolicy::PreferDualStack,
        FamilyPolicy::RequireDualStack,
    ]);
    (
        prop::option::of(prop::sample::select(vec!["web", "db"])),
        request,
        pool,
        prop::option::weighted(0.6, prop::sample::select(vec!["a", "b", ""])),
        prop::collection::btree_set(port, 1..=3),
        prop::option::weighted(0.3, prop::sample::select(vec!["x", "y"])),
        policy,
        families,
    )
        .prop_map(
            |(tier, request, pool, key, ports, local_app, policy, families)| ServiceGen {
                tier,
                request,
                pool,
                key,
                ports,
                local_app,
                policy,
                families,
            },
        )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..SERVICES, service_gen()).prop_map(|(i, s)| Step::Upsert(i, s)),
        2 => (0..SERVICES).prop_map(Step::Delete),
        3 => (0..POOL_SLOTS, prop::option::weighted(0.85, pool_gen())).prop_map(|(i, p)| Step::SetPool(i, p)),
        1 => (0..NAMESPACES, prop::option::of(prop::sample::select(vec!["prod", "dev"])))
            .prop_map(|(n, e)| Step::RelabelNamespace(n, e)),
        1 => Just(Step::Restart),
    ]
}

/// The cluster as the reconciler would see it, and the allocator it drives.
struct World {
    pools: Vec<Option<PoolGen>>,
    namespace_env: Vec<Option<&'static str>>,
    services: BTreeMap<usize, ServiceGen>,
    /// What each Service's status holds.
    status: BTreeMap<ServiceKey, Vec<IpAddr>>,
    allocator: Allocator,
}

fn key_of(index: usize) -> ServiceKey {
    ServiceKey::new(format!("n{}", index % NAMESPACES), format!("s{index}"))
}

impl World {
    fn new(pools: Vec<Option<PoolGen>>) -> Self {
        let namespace_env = vec![None; NAMESPACES];
        let allocator = Allocator::new(Self::specs(&pools, &namespace_env))
            .expect("generated pools are disjoint");
        World {
            pools,
            namespace_env,
            services: BTreeMap::new(),
            status: BTreeMap::new(),
            allocator,
        }
    }

    fn specs(pools: &[Option<PoolGen>], namespace_env: &[Option<&'static str>]) -> Vec<PoolSpec> {
        pools
            .iter()
            .enumerate()
            .filter_map(|(slot, p)| p.as_ref().map(|p| p.spec(slot, namespace_env)))
            .collect()
    }

    fn request(&self, index: usize) -> Option<ServiceRequest> {
        let wanted = self.services.get(&index)?;
        let key = key_of(index);
        Some(ServiceRequest {
            key,
            labels: wanted
                .tier
                .map(|t| [("tier".to_owned(), t.to_owned())].into())
                .unwrap_or_default(),
            requested_ips: match wanted.request {
                RequestGen::None => vec![],
                RequestGen::One(ip) => vec![ip],
                RequestGen::Two(a, b) => vec![a, b],
            },
            requested_pool: wanted.pool.clone(),
            sharing_key: wanted.key.map(str::to_owned),
            family_policy: wanted.policy,
            ip_families: wanted.families.clone(),
            traffic_policy: if wanted.local_app.is_some() {
                TrafficPolicy::Local
            } else {
                TrafficPolicy::Cluster
            },
            pod_selector: [("app".to_owned(), wanted.local_app.unwrap_or("z").to_owned())].into(),
            ports: wanted.ports.iter().copied().collect(),
        })
    }

    fn requests(&self) -> Vec<ServiceRequest> {
        self.services
            .keys()
            .filter_map(|&i| self.request(i))
            .collect()
    }

    /// The reconciler's reaction to a Service event.
    fn reconcile(&mut self, service: &ServiceRequest) {
        match self.allocator.assign(service) {
            Ok(assignment) => self.status.insert(service.key.clone(), assignment.ips),
            Err(_) => self.status.remove(&service.key),
        };
    }

    /// Services without an address are retried (the reconciler's backoff), in key order.
    fn retry_unassigned(&mut self) {
        for service in self.requests() {
            if !self.status.contains_key(&service.key) {
                self.reconcile(&service);
            }
        }
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Upsert(index, wanted) => {
                self.services.insert(*index, wanted.clone());
                if let Some(service) = self.request(*index) {
                    self.reconcile(&service);
                }
            }
            Step::Delete(index) => {
                self.services.remove(index);
                self.allocator.release(&key_of(*index));
                self.status.remove(&key_of(*index));
            }
            Step::SetPool(slot, wanted) => {
                self.pools[*slot] = wanted.clone();
                self.update_pools();
            }
            Step::RelabelNamespace(namespace, env) => {
                // The config model re-resolves namespace selectors: a pool change.
                self.namespace_env[*namespace] = *env;
                self.update_pools();
            }
            Step::Restart => {
                let mut fresh = Allocator::new(Self::specs(&self.pools, &self.namespace_env))
                    .expect("generated pools are disjoint");
                let requests = self.requests();
                // Re-claim every address in status before allocating anything (SPEC §4).
                for service in &requests {
                    if let Some(held) = self.status.get(&service.key) {
                        let claim = fresh.claim(service, held);
                        assert!(
                            claim.complete && claim.rejected.is_empty(),
                            "restart lost {}: {claim:?}",
                            service.key
                        );
                    }
                }
                self.allocator = fresh;
            }
        }
        self.retry_unassigned();
    }

    /// Hands the current pools to the allocator and re-assigns the Services it displaced.
    fn update_pools(&mut self) {
        let displaced = self
            .allocator
            .set_pools(Self::specs(&self.pools, &self.namespace_env))
            .expect("generated pools are disjoint");
        let requests = self.requests();
        for moved in displaced {
            let service = requests
                .iter()
                .find(|s| s.key == moved.service)
                .expect("displaced Service exists");
            self.reconcile(service);
        }
    }

    /// The pool (slot, generator) holding `ip`.
    fn pool_of(&self, ip: IpAddr) -> Option<(usize, &PoolGen)> {
        self.pools.iter().enumerate().find_map(|(slot, p)| {
            let p = p.as_ref()?;
            p.spec(slot, &self.namespace_env)
                .addresses
                .contains(ip)
                .then_some((slot, p))
        })
    }

    /// Oracle: whether `ip` may be held by `service` as far as pools and requests go.
    fn pool_allows(&self, service: &ServiceRequest, ip: IpAddr) -> Option<usize> {
        let (slot, pool) = self.pool_of(ip)?;
        let requested_ok = service.requested_ips.is_empty() || service.requested_ips.contains(&ip);
        let pool_ok = service
            .requested_pool
            .as_ref()
            .is_none_or(|name| *name == pool.name(slot));
        let family_ok = service.wanted_families().contains(&Family::of(ip));
        (requested_ok && pool_ok && family_ok && pool.admits(service, &self.namespace_env))
            .then_some(slot)
    }

    /// Oracle: whether `ips` is a whole assignment for `service` under the current pools.
    fn fits(&self, service: &ServiceRequest, ips: &[IpAddr]) -> bool {
        let slots: Option<BTreeSet<usize>> = ips
            .iter()
            .map(|&ip| self.pool_allows(service, ip))
            .collect();
        let families: BTreeSet<Family> = ips.iter().map(|&ip| Family::of(ip)).collect();
        let complete = if service.requested_ips.is_empty() {
            match service.family_policy {
                FamilyPolicy::SingleStack | FamilyPolicy::PreferDualStack => !ips.is_empty(),
                FamilyPolicy::RequireDualStack => ips.len() == 2,
            }
        } else {
            service.requested_ips.iter().collect::<BTreeSet<_>>() == ips.iter().collect()
        };
        slots.is_some_and(|s| s.len() == 1) && families.len() == ips.len() && complete
    }

    fn check_invariants(&self) {
        let held: BTreeMap<ServiceKey, Vec<IpAddr>> = self
            .allocator
            .assignments()
            .map(|(k, a)| (k.clone(), a.ips.clone()))
            .collect();
        assert_eq!(held, self.status, "allocator and Service status disagree");
        let requests = self.requests();
        for service in &requests {
            if let Some(ips) = self.status.get(&service.key) {
                assert!(
                    self.fits(service, ips),
                    "{} holds {ips:?}, which its pools and spec do not allow",
                    service.key
                );
            }
        }
        self.check_usage();
        for (i, a) in requests.iter().enumerate() {
            for b in &requests[i + 1..] {
                let (Some(ips_a), Some(ips_b)) = (self.status.get(&a.key), self.status.get(&b.key))
                else {
                    continue;
                };
                if ips_a.iter().any(|ip| ips_b.contains(ip)) {
                    assert!(
                        may_share(a, b),
                        "{} and {} share an IP without a matching key and free ports",
                        a.key,
                        b.key
                    );
                }
            }
        }
    }

    /// Pool status figures agree with the addresses held.
    fn check_usage(&self) {
        let held: BTreeSet<IpAddr> = self.status.values().flatten().copied().collect();
        for (slot, pool) in self.pools.iter().enumerate() {
            let Some(pool) = pool else { continue };
            let spec = pool.spec(slot, &self.namespace_env);
            let usage = self.allocator.usage(&spec.name).expect("pool is known");
            for (family, figures) in [(Family::V4, usage.ipv4), (Family::V6, usage.ipv6)] {
                let in_pool: Vec<&IpAddr> = held
                    .iter()
                    .filter(|ip| Family::of(**ip) == family && spec.addresses.contains(**ip))
                    .collect();
                let usable = in_pool
                    .iter()
                    .filter(|ip| !(spec.avoid_buggy_ips && is_dot_zero_or_255(***ip)))
                    .count();
                assert_eq!(
                    figures.assigned,
                    in_pool.len() as u128,
                    "{} {family}",
                    spec.name
                );
                assert_eq!(
                    figures.available,
                    spec.addresses.capacity(family, spec.avoid_buggy_ips) - usable as u128,
                    "{} {family}",
                    spec.name
                );
            }
        }
    }

    /// Oracle: whether `service` could keep `ips` alongside everybody else's current holdings.
    fn still_allowed(&self, service: &ServiceRequest, ips: &[IpAddr]) -> bool {
        self.fits(service, ips)
            && self.requests().iter().all(|other| {
                other.key == service.key
                    || self
                        .status
                        .get(&other.key)
                        .is_none_or(|theirs| !ips.iter().any(|ip| theirs.contains(ip)))
                    || may_share(service, other)
            })
    }
}

/// Oracle: SPEC §4 sharing rule.
fn may_share(a: &ServiceRequest, b: &ServiceRequest) -> bool {
    let key = |s: &ServiceRequest| s.sharing_key.clone().filter(|k| !k.is_empty());
    let ports = |s: &ServiceRequest| s.ports.iter().copied().collect::<BTreeSet<_>>();
    let local = |s: &ServiceRequest| {
        (s.traffic_policy == TrafficPolicy::Local).then(|| s.pod_selector.clone())
    };
    key(a).is_some() && key(a) == key(b) && ports(a).is_disjoint(&ports(b)) && local(a) == local(b)
}

fn is_dot_zero_or_255(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255))
}

fn run(initial: Vec<Option<PoolGen>>, steps: Vec<Step>) {
    let mut world = World::new(initial);
    for step in &steps {
        let before = world.status.clone();
        world.apply(step);
        world.check_invariants();
        for (key, old_ips) in &before {
            let Some(service) = world.requests().into_iter().find(|s| s.key == *key) else {
                continue;
            };
            let subject = match step {
                Step::Upsert(i, _) | Step::Delete(i) => key_of(*i) == *key,
                _ => false,
            };
            let must_stay = match step {
                Step::Restart => true,
                Step::Upsert(..) | Step::Delete(_) if !subject => true,
                _ => {
                    // Pool change, relabel, or the subject's own update: it stays if what it held
                    // still fits its (new) spec and the (new) pools beside everybody else.
                    let mut others = world.status.clone();
                    others.remove(key);
                    let view = World {
                        pools: world.pools.clone(),
                        namespace_env: world.namespace_env.clone(),
                        services: world.services.clone(),
                        status: others,
                        allocator: Allocator::default(),
                    };
                    view.still_allowed(&service, old_ips)
                }
            };
            if must_stay {
                // The order follows `ipFamilies`, which the user may change; the set must stay.
                let now: Option<BTreeSet<&IpAddr>> =
                    world.status.get(key).map(|ips| ips.iter().collect());
                assert_eq!(
                    now,
                    Some(old_ips.iter().collect()),
                    "{key} moved on {step:?} although still allowed"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn allocation_invariants_hold_under_churn(
        initial in prop::collection::vec(prop::option::weighted(0.8, pool_gen()), POOL_SLOTS),
        steps in prop::collection::vec(step(), 20..80),
    ) {
        run(initial, steps);
    }

    /// The interval index hands out exactly what a naive scan of the pool would: the lowest
    /// address not held (and not `.0`/`.255` when avoided), under any order of assign/release.
    #[test]
    fn lowest_free_address_matches_a_naive_scan(
        avoid_buggy_ips in any::<bool>(),
        ops in prop::collection::vec((any::<bool>(), 0usize..40), 1..300),
    ) {
        // 192.0.2.240 - 192.0.3.16: 33 addresses straddling .255/.0.
        let first = u32::from(Ipv4Addr::new(192, 0, 2, 240));
        let last = u32::from(Ipv4Addr::new(192, 0, 3, 16));
        let spec = PoolSpec {
            name: "p".into(),
            addresses: AddressSet::from_ranges(AddressRange::new(
                IpAddr::V4(Ipv4Addr::from(first)),
                IpAddr::V4(Ipv4Addr::from(last)),
            )),
            auto_assign: true,
            avoid_buggy_ips,
            priority: None,
            restriction: None,
        };
        let mut allocator = Allocator::new(vec![spec]).expect("one pool");
        let mut held: BTreeMap<usize, IpAddr> = BTreeMap::new();
        for (create, index) in ops {
            let key = ServiceKey::new("n", format!("s{index}"));
            if create && !held.contains_key(&index) {
                let taken: BTreeSet<IpAddr> = held.values().copied().collect();
                let expected = (first..=last)
                    .map(|v| IpAddr::V4(Ipv4Addr::from(v)))
                    .find(|ip| !(taken.contains(ip) || avoid_buggy_ips && is_dot_zero_or_255(*ip)));
                let service = ServiceRequest { key, ..Default::default() };
                let got = allocator.assign(&service).ok().and_then(|a| a.ips.first().copied());
                prop_assert_eq!(got, expected);
                if let Some(ip) = got {
                    held.insert(index, ip);
                }
            } else if !create {
                allocator.release(&key);
                held.remove(&index);
            }
        }
    }
}
