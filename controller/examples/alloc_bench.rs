//! Allocator micro-benchmark: time per `assign` with many Services already holding addresses.
//!
//! `cargo run --release -p ferrolb-controller --example alloc_bench`
//!
//! Scenarios: one IPv4 /16 or one IPv6 /64 pool with 1,000 or 10,000 existing Services, every third
//! of them then deleted so the free addresses are fragmented; then 1,000 new Services are assigned
//! one by one and each `assign` is timed. Last, 100,000 assignments over 64 pools with priorities
//! and namespace restrictions. Figures go to `docs/`, never into a timed test.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_config::addresses::{AddressSet, Family};
use ferrolb_controller::allocator::{
    AllocError, Allocator, FamilyPolicy, PoolSpec, Restriction, ServiceKey, ServiceRequest,
};

fn pool(name: &str, addresses: &str, priority: Option<u32>) -> Result<PoolSpec, String> {
    Ok(PoolSpec {
        name: name.to_owned(),
        addresses: AddressSet::parse([addresses]).map_err(|e| format!("{e:?}"))?,
        auto_assign: true,
        avoid_buggy_ips: false,
        priority,
        restriction: None,
    })
}

fn service(namespace: &str, index: usize, family: Family) -> ServiceRequest {
    ServiceRequest {
        key: ServiceKey::new(namespace, format!("svc-{index}")),
        family_policy: FamilyPolicy::SingleStack,
        ip_families: vec![family],
        ..Default::default()
    }
}

/// p50, p99 and max of the samples.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(index).copied().unwrap_or_default()
    };
    (at(0.50), at(0.99), at(1.0))
}

fn single_pool(label: &str, cidr: &str, family: Family, existing: usize) -> Result<(), String> {
    let mut allocator =
        Allocator::new(vec![pool("bench", cidr, None)?]).map_err(|e| e.to_string())?;
    for index in 0..existing {
        allocator
            .assign(&service("existing", index, family))
            .map_err(|e| e.to_string())?;
    }
    for index in (0..existing).step_by(3) {
        allocator.release(&service("existing", index, family).key);
    }
    let mut samples = Vec::with_capacity(1000);
    for index in 0..1000 {
        let new = service("new", index, family);
        let start = Instant::now();
        let result: Result<_, AllocError> = allocator.assign(&new);
        samples.push(start.elapsed());
        result.map_err(|e| e.to_string())?;
    }
    let (p50, p99, max) = percentiles(samples);
    println!(
        "{label:<5} {existing:>6} existing (1/3 deleted): assign p50 {p50:>9.2?}  p99 {p99:>9.2?}  max {max:>9.2?}"
    );
    Ok(())
}

fn many_pools() -> Result<(), String> {
    let mut pools = Vec::new();
    for index in 0..64u32 {
        // 198.18.0.0/15 (RFC 2544 benchmarking) cut into 64 blocks of 2,048.
        let base = 0xc612_0000u32 + index * 2048;
        let first = IpAddr::from(std::net::Ipv4Addr::from(base));
        let mut spec = pool(
            &format!("pool-{index:02}"),
            &format!("{first}/21"),
            Some(index % 8),
        )?;
        if index % 4 == 0 {
            spec.restriction = Some(Restriction {
                namespaces: Some([format!("ns-{}", index % 16)].into()),
                service_selectors: Vec::new(),
            });
        }
        pools.push(spec);
    }
    let mut allocator = Allocator::new(pools).map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(100_000);
    let total = Instant::now();
    for index in 0..100_000 {
        let namespace = format!("ns-{}", index % 16);
        let new = service(&namespace, index, Family::V4);
        let start = Instant::now();
        let result = allocator.assign(&new);
        samples.push(start.elapsed());
        result.map_err(|e| e.to_string())?;
    }
    let elapsed = total.elapsed();
    let (p50, p99, max) = percentiles(samples);
    println!(
        "64 pools, 100000 assignments in {elapsed:.2?}: p50 {p50:.2?}  p99 {p99:.2?}  max {max:.2?}"
    );
    Ok(())
}

fn main() -> Result<(), String> {
    for existing in [1_000, 10_000] {
        single_pool("/16", "198.18.0.0/16", Family::V4, existing)?;
        single_pool("/64", "2001:db8::/64", Family::V6, existing)?;
    }
    many_pools()
}
