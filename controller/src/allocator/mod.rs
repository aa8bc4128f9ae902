//! IP address allocation for LoadBalancer Services (SPEC §3, §4).
//!
//! Contract: pure logic, no async, no I/O, no Kubernetes types. The reconciler feeds it pools
//! ([`PoolSpec`], converted from the config snapshot by [`pools_from_config`]) and Services ([`ServiceRequest`], built with
//! [`parse_annotations`]) and persists the resulting [`Assignment`]s in the Services only; after a
//! restart it rebuilds an allocator by [`Allocator::claim`]ing what every Service's status holds,
//! before any [`Allocator::assign`].
//!
//! Rules:
//! - **Candidates.** A requested IP (annotation or `spec.loadBalancerIP`) must lie in a pool that
//!   admits the Service (`serviceAllocation` namespaces and namespace selectors, resolved to names
//!   by the config model, and Service selectors),
//!   in the requested pool if one is named, be of a wanted family, not be avoided
//!   (`avoidBuggyIPs`), and be free or shareable. Without a requested IP, the requested pool is the
//!   only candidate; without either, every admitting pool with `autoAssign` is, in the order:
//!   restricted pools, then unrestricted; each by priority (lower first, unset last), then name.
//! - **Lowest free address first**, except that a Service with a sharing key first takes the
//!   lowest address of the pool already shared under that key that it can join.
//! - **Sharing** needs the same non-empty key on both Services, no common `(protocol, port)`, and
//!   the same pod selector when the traffic policy is `Local` (both `Local`, or both `Cluster`).
//! - **Families.** SingleStack: one address of the first of `ipFamilies`. PreferDualStack: the
//!   first pool (in order) with a free address of any family of `ipFamilies` gives every such
//!   family it can. RequireDualStack: one address of each family, both from one pool.
//! - **Stability** (SPEC §4). An assigned address is kept while the Service's spec still allows
//!   it: it lies in a pool that admits the Service, matches the requested pool and IPs, is of a
//!   wanted family, and its sharing is still compatible. `autoAssign` and `avoidBuggyIPs` govern
//!   only new hand-outs, so editing them never moves an address. A Service that keeps part of a
//!   dual-stack assignment keeps that part and completes it from the same pool when it can.
//! - **Pool changes.** [`Allocator::set_pools`] re-checks every held address against the new
//!   pools and reports, as [`Displaced`], the Services that lost an address and why; the
//!   reconciler then calls [`Allocator::assign`] for them and emits an Event.
//!
//! Cost: free addresses of each pool and family are disjoint intervals in a `BTreeMap`
//! ([`free`]), so taking, returning and finding the lowest free address are O(log n) in the number
//! of intervals, not in pool size or addresses taken. Pools are few; they are scanned linearly.

mod error;
mod free;
mod pool;
mod service;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::addresses::{Family, int_to_ip, ip_to_int};

pub use self::error::AllocError;
use self::free::{FreeIntervals, is_buggy};
pub use self::pool::{LabelMatcher, PoolSpec, Restriction};
pub use self::service::{
    FamilyPolicy, Labels, Protocol, ServiceKey, ServicePort, ServiceRequest, TrafficPolicy,
};
use self::service::{Holder, StoredRequest};
pub use self::snapshot::pools_from_config;
pub use ferrolb_config::annotations::{
    ADDRESS_POOL, ALLOW_SHARED_IP, AliasUsed, AnnotationError, LOAD_BALANCER_IPS,
    RequestAnnotations, parse_annotations,
};

/// The addresses a Service holds, all from one pool, in `ipFamilies` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub pool: String,
    pub ips: Vec<IpAddr>,
}

/// A held address that no longer fits, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedIp {
    pub ip: IpAddr,
    pub reason: AllocError,
}

/// Result of [`Allocator::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The addresses re-claimed; `None` when none fits.
    pub kept: Option<Assignment>,
    /// Addresses from the Service status that no longer fit.
    pub rejected: Vec<RejectedIp>,
    /// Whether `kept` satisfies the Service as it is; if not, call [`Allocator::assign`].
    pub complete: bool,
}

/// A Service that lost addresses in [`Allocator::set_pools`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Displaced {
    pub service: ServiceKey,
    pub rejected: Vec<RejectedIp>,
    /// What it still holds.
    pub kept: Option<Assignment>,
}

/// Address counts of one family of a pool, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FamilyUsage {
    /// Addresses held by at least one Service.
    pub assigned: u128,
    /// Addresses that could still be handed out.
    pub available: u128,
}

/// Pool status figures (SPEC §2: assigned/available per family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUsage {
    pub ipv4: FamilyUsage,
    pub ipv6: FamilyUsage,
}

#[derive(Debug, Clone)]
struct PoolState {
    spec: PoolSpec,
    /// Indexed by [`slot`].
    free: [FreeIntervals; 2],
    /// Addresses held, per family.
    assigned: [u128; 2],
    /// Addresses held that count against capacity (not avoided by `avoidBuggyIPs`).
    assigned_usable: [u128; 2],
}

impl PoolState {
    fn new(spec: PoolSpec) -> Self {
        let free = [Family::V4, Family::V6]
            .map(|family| FreeIntervals::from_ranges(spec.addresses.ranges(family)));
        PoolState {
            spec,
            free,
            assigned: [0; 2],
            assigned_usable: [0; 2],
        }
    }

    fn avoids(&self, ip: IpAddr) -> bool {
        self.spec.avoid_buggy_ips && Family::of(ip) == Family::V4 && is_buggy(ip_to_int(ip))
    }

    fn mark_used(&mut self, ip: IpAddr) {
        let slot = slot(Family::of(ip));
        self.free[slot].remove(ip_to_int(ip));
        self.assigned[slot] += 1;
        if !self.avoids(ip) {
            self.assigned_usable[slot] += 1;
        }
    }

    fn mark_free(&mut self, ip: IpAddr) {
        let slot = slot(Family::of(ip));
        self.free[slot].insert(ip_to_int(ip));
        self.assigned[slot] = self.assigned[slot].saturating_sub(1);
        if !self.avoids(ip) {
            self.assigned_usable[slot] = self.assigned_usable[slot].saturating_sub(1);
        }
    }

    fn has_family(&self, family: Family) -> bool {
        !self.spec.addresses.ranges(family).is_empty()
    }

    fn family_usage(&self, family: Family) -> FamilyUsage {
        let slot = slot(family);
        FamilyUsage {
            assigned: self.assigned[slot],
            available: self
                .spec
                .addresses
                .capacity(family, self.spec.avoid_buggy_ips)
                .saturating_sub(self.assigned_usable[slot]),
        }
    }
}

fn slot(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// One held address and the Services holding it, in key order. Their sharing terms are read
/// from [`Allocator::services`]: a copy per address cost more than a kilobyte per Service (a
/// map allocates room for eleven entries, and almost every address has one holder).
#[derive(Debug, Clone)]
struct IpRecord {
    pool: String,
    holders: Vec<ServiceKey>,
}

#[derive(Debug, Clone)]
struct Held {
    request: StoredRequest,
    assignment: Assignment,
}

/// The allocation state: pools, who holds which address, and every Service's assignment.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pools: BTreeMap<String, PoolState>,
    ips: BTreeMap<IpAddr, IpRecord>,
    /// Addresses held under each sharing key.
    by_sharing_key: BTreeMap<String, BTreeSet<IpAddr>>,
    services: BTreeMap<ServiceKey, Held>,
}

impl Allocator {
    /// An allocator over `pools`, holding nothing.
    pub fn new(pools: Vec<PoolSpec>) -> Result<Self, AllocError> {
        let mut allocator = Allocator::default();
        allocator.set_pools(pools)?;
        Ok(allocator)
    }

    /// The addresses `service` holds.
    pub fn assignment(&self, service: &ServiceKey) -> Option<&Assignment> {
        self.services.get(service).map(|held| &held.assignment)
    }

    /// Every Service's assignment, by Service key.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, &Assignment)> {
        self.services
            .iter()
            .map(|(key, held)| (key, &held.assignment))
    }

    /// The Services holding `ip`.
    pub fn holders(&self, ip: IpAddr) -> Vec<&ServiceKey> {
        self.ips
            .get(&ip)
            .map(|record| record.holders.iter().collect())
            .unwrap_or_default()
    }

    /// Assigned/available figures of a pool, or `None` for an unknown pool.
    pub fn usage(&self, pool: &str) -> Option<PoolUsage> {
        self.pools.get(pool).map(|state| PoolUsage {
            ipv4: state.family_usage(Family::V4),
            ipv6: state.family_usage(Family::V6),
        })
    }

    /// Gives `service` addresses, keeping those it holds while its spec still allows them.
    /// On error the Service holds nothing.
    pub fn assign(&mut self, service: &ServiceRequest) -> Result<Assignment, AllocError> {
        let wanted = service.wanted_families();
        let holder = Holder::of(service);
        if let Some(previous) = self.assignment(&service.key).map(|a| a.ips.clone()) {
            let claim = self.claim(service, &previous);
            if let Some(kept) = claim.kept {
                if claim.complete {
                    return Ok(kept);
                }
                if let Ok(completed) = self.complete_in_pool(service, &holder, &wanted, &kept) {
                    self.release(&service.key);
                    self.take(service, &holder, &completed);
                    return Ok(completed);
                }
            }
            self.release(&service.key);
        }
        let assignment = self.fresh(service, &holder, &wanted)?;
        self.take(service, &holder, &assignment);
        Ok(assignment)
    }

    /// Frees what `service` holds (Service deleted, or no longer ours). Shared addresses stay held
    /// by the other Services.
    pub fn release(&mut self, service: &ServiceKey) -> Option<Assignment> {
        let held = self.services.remove(service)?;
        for ip in &held.assignment.ips {
            let Some(record) = self.ips.get_mut(ip) else {
                continue;
            };
            record.holders.retain(|holder| holder != service);
            let services = &self.services;
            if let Some(key) = held.request.holder().sharing_key
                && !record.holders.iter().any(|other| {
                    services
                        .get(other)
                        .is_some_and(|h| h.request.holder().sharing_key == Some(key))
                })
                && let Some(ips) = self.by_sharing_key.get_mut(key)
            {
                ips.remove(ip);
                if ips.is_empty() {
                    self.by_sharing_key.remove(key);
                }
            }
            if record.holders.is_empty() {
                let pool = record.pool.clone();
                self.ips.remove(ip);
                if let Some(state) = self.pools.get_mut(&pool) {
                    state.mark_free(*ip);
                }
            }
        }
        Some(held.assignment)
    }

    /// Re-claims the addresses a Service's status holds (controller start, or re-validation).
    /// Addresses that still fit are held again; the others are returned with the reason. Replaces
    /// whatever `service` held before.
    pub fn claim(&mut self, service: &ServiceRequest, ips: &[IpAddr]) -> Claim {
        self.release(&service.key);
        let wanted = service.wanted_families();
        let holder = Holder::of(service);
        let mut rejected = Vec::new();
        let mut fitting: Vec<(IpAddr, String)> = Vec::new();
        for &ip in ips {
            if fitting.iter().any(|(held, _)| *held == ip) {
                continue;
            }
            match self.check_held(service, &holder, &wanted, ip) {
                Ok(pool) => fitting.push((ip, pool)),
                Err(reason) => rejected.push(RejectedIp { ip, reason }),
            }
        }
        let kept = select_kept(&wanted, &fitting, &mut rejected);
        if let Some(assignment) = &kept {
            self.take(service, &holder, assignment);
        }
        let complete = kept
            .as_ref()
            .is_some_and(|a| is_complete(service, &wanted, a));
        Claim {
            kept,
            rejected,
            complete,
        }
    }

    /// Replaces the pools. Every address still allowed stays where it is; the Services that lost
    /// an address are returned (in Service key order). Refuses overlapping or duplicate pools,
    /// changing nothing.
    pub fn set_pools(&mut self, pools: Vec<PoolSpec>) -> Result<Vec<Displaced>, AllocError> {
        validate_pools(&pools)?;
        let held = std::mem::take(&mut self.services);
        self.ips.clear();
        self.by_sharing_key.clear();
        self.pools = pools
            .into_iter()
            .map(|spec| (spec.name.clone(), PoolState::new(spec)))
            .collect();
        let mut displaced = Vec::new();
        for (key, held) in held {
            let claim = self.claim(&held.request.to_request(&key), &held.assignment.ips);
            if !claim.rejected.is_empty() {
                displaced.push(Displaced {
                    service: key,
                    rejected: claim.rejected,
                    kept: claim.kept,
                });
            }
        }
        Ok(displaced)
    }

    fn pool_of(&self, ip: IpAddr) -> Option<&PoolState> {
        self.pools
            .values()
            .find(|state| state.spec.addresses.contains(ip))
    }

    /// Whether a held `ip` is still allowed for `service` (rules of the module docs).
    fn check_held(
        &self,
        service: &ServiceRequest,
        holder: &Holder<'_>,
        wanted: &[Family],
        ip: IpAddr,
    ) -> Result<String, AllocError> {
        if !wanted.contains(&Family::of(ip)) {
            return Err(AllocError::WrongFamily {
                ip,
                wanted: wanted.to_vec(),
            });
        }
        if !service.requested_ips.is_empty() && !service.requested_ips.contains(&ip) {
            return Err(AllocError::IpNoLongerRequested { ip });
        }
        let pool = self.pool_of(ip).ok_or(AllocError::IpLeftEveryPool { ip })?;
        self.check_pool_allows(service, pool, ip)?;
        self.check_sharing(ip, &service.key, holder)?;
        Ok(pool.spec.name.clone())
    }

    /// Whether a requested `ip` may be handed to `service` now.
    fn check_requested(
        &self,
        service: &ServiceRequest,
        holder: &Holder<'_>,
        ip: IpAddr,
    ) -> Result<String, AllocError> {
        let pool = self
            .pool_of(ip)
            .ok_or(AllocError::RequestedIpNotInAnyPool { ip })?;
        self.check_pool_allows(service, pool, ip)?;
        if pool.avoids(ip) {
            return Err(AllocError::RequestedIpAvoided {
                ip,
                pool: pool.spec.name.clone(),
            });
        }
        self.check_sharing(ip, &service.key, holder)?;
        Ok(pool.spec.name.clone())
    }

    fn check_pool_allows(
        &self,
        service: &ServiceRequest,
        pool: &PoolState,
        ip: IpAddr,
    ) -> Result<(), AllocError> {
        if let Some(requested) = &service.requested_pool
            && *requested != pool.spec.name
        {
            return Err(AllocError::RequestedIpNotInRequestedPool {
                ip,
                pool: requested.clone(),
            });
        }
        if !pool.spec.admits(service) {
            return Err(AllocError::PoolNotAllowed {
                pool: pool.spec.name.clone(),
                service: service.key.clone(),
            });
        }
        Ok(())
    }

    /// Whether `service` may join the current holders of `ip` (SPEC §4 sharing rules).
    fn check_sharing(
        &self,
        ip: IpAddr,
        service: &ServiceKey,
        holder: &Holder<'_>,
    ) -> Result<(), AllocError> {
        let Some(record) = self.ips.get(&ip) else {
            return Ok(());
        };
        for other in &record.holders {
            let Some(theirs) = self
                .services
                .get(other)
                .filter(|_| other != service)
                .map(|held| held.request.holder())
            else {
                continue;
            };
            let (Some(ours), Some(their_key)) = (holder.sharing_key, theirs.sharing_key) else {
                return Err(AllocError::RequestedIpInUse {
                    ip,
                    by: other.clone(),
                });
            };
            if ours != their_key {
                return Err(AllocError::SharingKeyMismatch {
                    ip,
                    with: other.clone(),
                    ours: ours.to_owned(),
                    theirs: their_key.to_owned(),
                });
            }
            if let Some(port) = holder.port_clash(&theirs) {
                return Err(AllocError::PortClash {
                    ip,
                    with: other.clone(),
                    protocol: port.protocol,
                    port: port.port,
                });
            }
            if holder.local_selector != theirs.local_selector {
                return Err(AllocError::PodSelectorMismatch {
                    ip,
                    with: other.clone(),
                });
            }
        }
        Ok(())
    }

    /// A new assignment for a Service holding nothing.
    fn fresh(
        &self,
        service: &ServiceRequest,
        holder: &Holder<'_>,
        wanted: &[Family],
    ) -> Result<Assignment, AllocError> {
        if let Some(requested) = &service.requested_pool
            && !self.pools.contains_key(requested)
        {
            return Err(AllocError::UnknownPool {
                pool: requested.clone(),
            });
        }
        if !service.requested_ips.is_empty() {
            return self.fresh_requested(service, holder, wanted);
        }
        let mut candidates: Vec<&PoolState> = match &service.requested_pool {
            Some(name) => {
                let pool = self
                    .pools
                    .get(name)
                    .ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?;
                if !pool.spec.admits(service) {
                    return Err(AllocError::PoolNotAllowed {
                        pool: name.clone(),
                        service: service.key.clone(),
                    });
                }
                vec![pool]
            }
            None => {
                let mut pools: Vec<&PoolState> = self
                    .pools
                    .values()
                    .filter(|p| p.spec.auto_assign && p.spec.admits(service))
                    .collect();
                if pools.is_empty() {
                    return Err(AllocError::NoPoolForService {
                        service: service.key.clone(),
                    });
                }
                pools.sort_by(|a, b| a.spec.try_order(&b.spec));
                pools
            }
        };
        let dual_required = service.family_policy == FamilyPolicy::RequireDualStack;
        if dual_required {
            candidates.retain(|p| wanted.iter().all(|&f| p.has_family(f)));
            if candidates.is_empty() {
                return Err(AllocError::DualStackRequired {
                    service: service.key.clone(),
                    reason: "no pool it may use has both IPv4 and IPv6 addresses".to_owned(),
                });
            }
        } else {
            candidates.retain(|p| wanted.iter().any(|&f| p.has_family(f)));
            if candidates.is_empty() {
                return Err(AllocError::NoPoolWithFamily {
                    service: service.key.clone(),
                    families: wanted.to_vec(),
                });
            }
        }
        let mut exhausted_family = wanted[0];
        for pool in &candidates {
            let mut ips = Vec::with_capacity(wanted.len());
            for &family in wanted.iter().filter(|&&f| pool.has_family(f)) {
                match self.candidate(pool, family, &service.key, holder) {
                    Some(ip) => ips.push(ip),
                    None => exhausted_family = family,
                }
            }
            let enough = if dual_required {
                ips.len() == wanted.len()
            } else {
                !ips.is_empty()
            };
            if enough {
                return Ok(Assignment {
                    pool: pool.spec.name.clone(),
                    ips,
                });
            }
        }
        Err(match candidates.as_slice() {
            [only] => AllocError::PoolExhausted {
                pool: only.spec.name.clone(),
                family: exhausted_family,
            },
            _ => AllocError::AllPoolsExhausted {
                service: service.key.clone(),
                pools: candidates.iter().map(|p| p.spec.name.clone()).collect(),
            },
        })
    }

    fn fresh_requested(
        &self,
        service: &ServiceRequest,
        holder: &Holder<'_>,
        wanted: &[Family],
    ) -> Result<Assignment, AllocError> {
        let requested = &service.requested_ips;
        match service.family_policy {
            FamilyPolicy::SingleStack if requested.len() > 1 => {
                return Err(AllocError::TooManyRequestedIps {
                    service: service.key.clone(),
                    count: requested.len(),
                });
            }
            FamilyPolicy::RequireDualStack if requested.len() < 2 => {
                return Err(AllocError::DualStackRequired {
                    service: service.key.clone(),
                    reason: "only one IP requested".to_owned(),
                });
            }
            _ => {}
        }
        if let Some(&ip) = requested
            .iter()
            .find(|ip| !wanted.contains(&Family::of(**ip)))
        {
            return Err(AllocError::WrongFamily {
                ip,
                wanted: wanted.to_vec(),
            });
        }
        let mut pools = Vec::with_capacity(requested.len());
        for &ip in requested {
            pools.push(self.check_requested(service, holder, ip)?);
        }
        if pools.windows(2).any(|pair| pair[0] != pair[1]) {
            return Err(AllocError::RequestedIpsInDifferentPools {
                ips: requested.clone(),
                pools,
            });
        }
        let ips = wanted
            .iter()
            .filter_map(|&f| requested.iter().copied().find(|ip| Family::of(*ip) == f))
            .collect();
        Ok(Assignment {
            pool: pools.swap_remove(0),
            ips,
        })
    }

    /// Adds the missing families to a partial assignment, from its own pool.
    fn complete_in_pool(
        &self,
        service: &ServiceRequest,
        holder: &Holder<'_>,
        wanted: &[Family],
        kept: &Assignment,
    ) -> Result<Assignment, AllocError> {
        let pool = self
            .pools
            .get(&kept.pool)
            .ok_or_else(|| AllocError::UnknownPool {
                pool: kept.pool.clone(),
            })?;
        let mut ips = Vec::with_capacity(wanted.len());
        for &family in wanted {
            if let Some(&ip) = kept.ips.iter().find(|ip| Family::of(**ip) == family) {
                ips.push(ip);
                continue;
            }
            if service.requested_ips.is_empty() {
                let ip = self.candidate(pool, family, &service.key, holder).ok_or(
                    AllocError::PoolExhausted {
                        pool: kept.pool.clone(),
                        family,
                    },
                )?;
                ips.push(ip);
            } else if let Some(&ip) = service
                .requested_ips
                .iter()
                .find(|ip| Family::of(**ip) == family)
            {
                let in_pool = self.check_requested(service, holder, ip)?;
                if in_pool != kept.pool {
                    return Err(AllocError::RequestedIpsInDifferentPools {
                        ips: service.requested_ips.clone(),
                        pools: vec![kept.pool.clone(), in_pool],
                    });
                }
                ips.push(ip);
            }
        }
        let completed = Assignment {
            pool: kept.pool.clone(),
            ips,
        };
        if is_complete(service, wanted, &completed) {
            Ok(completed)
        } else {
            Err(AllocError::DualStackRequired {
                service: service.key.clone(),
                reason: format!("pool {:?} cannot complete the assignment", kept.pool),
            })
        }
    }

    /// The address `service` would get from `pool` in `family`: the lowest address shared under
    /// its key that it may join, else the lowest free one.
    fn candidate(
        &self,
        pool: &PoolState,
        family: Family,
        service: &ServiceKey,
        holder: &Holder<'_>,
    ) -> Option<IpAddr> {
        if let Some(key) = holder.sharing_key
            && let Some(shared) = self.by_sharing_key.get(key)
        {
            let joinable = shared.iter().copied().find(|&ip| {
                Family::of(ip) == family
                    && self
                        .ips
                        .get(&ip)
                        .is_some_and(|record| record.pool == pool.spec.name)
                    && self.check_sharing(ip, service, holder).is_ok()
            });
            if joinable.is_some() {
                return joinable;
            }
        }
        let skip_buggy = pool.spec.avoid_buggy_ips && family == Family::V4;
        let value = pool.free[slot(family)].lowest(skip_buggy)?;
        int_to_ip(family, value)
    }

    /// Records `assignment` as held by `service`.
    fn take(&mut self, service: &ServiceRequest, holder: &Holder<'_>, assignment: &Assignment) {
        for &ip in &assignment.ips {
            let record = self.ips.entry(ip).or_insert_with(|| IpRecord {
                pool: assignment.pool.clone(),
                holders: Vec::new(),
            });
            if record.holders.is_empty()
                && let Some(state) = self.pools.get_mut(&assignment.pool)
            {
                state.mark_used(ip);
            }
            if let Err(at) = record.holders.binary_search(&service.key) {
                record.holders.insert(at, service.key.clone());
            }
            if let Some(key) = holder.sharing_key {
                self.by_sharing_key
                    .entry(key.to_owned())
                    .or_default()
                    .insert(ip);
            }
        }
        self.services.insert(
            service.key.clone(),
            Held {
                request: StoredRequest::of(service),
                assignment: assignment.clone(),
            },
        );
    }
}

/// The part of the fitting addresses kept: those of the pool of the most preferred family held,
/// one per family, in `wanted` order. The others are rejected.
fn select_kept(
    wanted: &[Family],
    fitting: &[(IpAddr, String)],
    rejected: &mut Vec<RejectedIp>,
) -> Option<Assignment> {
    let pool = wanted.iter().find_map(|&family| {
        fitting
            .iter()
            .find(|(ip, _)| Family::of(*ip) == family)
            .map(|(_, pool)| pool.clone())
    })?;
    let ips: Vec<IpAddr> = wanted
        .iter()
        .filter_map(|&family| {
            fitting
                .iter()
                .find(|(ip, p)| Family::of(*ip) == family && *p == pool)
                .map(|(ip, _)| *ip)
        })
        .collect();
    for (ip, _) in fitting.iter().filter(|(ip, _)| !ips.contains(ip)) {
        rejected.push(RejectedIp {
            ip: *ip,
            reason: AllocError::IpNotNeeded {
                ip: *ip,
                pool: pool.clone(),
            },
        });
    }
    Some(Assignment { pool, ips })
}

/// Whether `assignment` is everything `service` asks for.
fn is_complete(service: &ServiceRequest, wanted: &[Family], assignment: &Assignment) -> bool {
    if !service.requested_ips.is_empty() {
        let requested: BTreeSet<&IpAddr> = service.requested_ips.iter().collect();
        return requested == assignment.ips.iter().collect();
    }
    match service.family_policy {
        FamilyPolicy::SingleStack | FamilyPolicy::PreferDualStack => !assignment.ips.is_empty(),
        FamilyPolicy::RequireDualStack => assignment.ips.len() == wanted.len(),
    }
}

/// Pools must be uniquely named and disjoint, so every address belongs to at most one pool.
fn validate_pools(pools: &[PoolSpec]) -> Result<(), AllocError> {
    let mut names = BTreeSet::new();
    for pool in pools {
        if !names.insert(pool.name.as_str()) {
            return Err(AllocError::DuplicatePool {
                pool: pool.name.clone(),
            });
        }
    }
    for (index, first) in pools.iter().enumerate() {
        for second in &pools[index + 1..] {
            if let Some(range) = first.addresses.first_overlap(&second.addresses) {
                return Err(AllocError::OverlappingPools {
                    first: first.name.clone(),
                    second: second.name.clone(),
                    range: range.to_string(),
                });
            }
        }
    }
    Ok(())
}
