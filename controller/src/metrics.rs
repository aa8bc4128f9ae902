//! The controller's Prometheus metrics (SPEC §7), registered once under the `ferrolb` prefix
//! and served by the admin server's `/metrics`.
//!
//! Label sets are types, so a series cannot be recorded with a misspelt or missing label. Pool
//! gauges are rebuilt from each config snapshot, so a deleted pool's series disappears instead of
//! reporting its last value forever.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use ferrolb_config::addresses::Family as IpFamily;
use ferrolb_config::model::{Config, Diagnostic, ObjectKind, Severity};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The address family as Kubernetes spells it in `ipFamilies` (`IPv4`, `IPv6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FamilyLabel(pub IpFamily);

impl EncodeLabelValue for FamilyLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self.0 {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// A ferrolb kind as written in `kind:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KindLabel(pub ObjectKind);

impl EncodeLabelValue for KindLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.0.as_str())
    }
}

/// One pool in one family.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    pub family: FamilyLabel,
}

/// Why something failed: the name of the error variant (`PoolExhausted`, `Conflict`, …), a
/// small fixed set, never a message (which would make one series per Service).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// One ferrolb kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: KindLabel,
}

/// Pool sizes reach 2^64 and more for IPv6, beyond an `i64` gauge; a float gauge keeps the
/// magnitude (exact up to 2^53, which is what matters for alerts on use).
type AddressGauge = Gauge<f64, AtomicU64>;

/// Every controller metric; cloning shares the underlying series.
#[derive(Debug, Clone)]
pub struct ControllerMetrics {
    reconciliations: Counter,
    reconcile_errors: Family<ReasonLabels, Counter>,
    reconcile_duration: Histogram,
    allocations: Family<PoolLabels, Counter>,
    allocation_failures: Family<ReasonLabels, Counter>,
    events_dropped: Counter,
    pool_addresses: Family<PoolLabels, AddressGauge>,
    pool_addresses_in_use: Family<PoolLabels, AddressGauge>,
    config_valid: Gauge,
    config_invalid_objects: Family<KindLabels, Gauge>,
}

impl ControllerMetrics {
    /// Creates the metrics and registers them in `registry` (expected to carry the `ferrolb`
    /// prefix, as the binary creates it).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciliations: Counter::default(),
            reconcile_errors: Family::default(),
            // 1 ms .. ~2 s: a reconcile is one allocation plus one status write.
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 12)),
            allocations: Family::default(),
            allocation_failures: Family::default(),
            events_dropped: Counter::default(),
            pool_addresses: Family::default(),
            pool_addresses_in_use: Family::default(),
            config_valid: Gauge::default(),
            config_invalid_objects: Family::default(),
        };
        registry.register(
            "reconciliations",
            "Service reconciliations run",
            metrics.reconciliations.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Service reconciliations that failed, by error",
            metrics.reconcile_errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time one Service reconciliation took",
            prometheus_client::registry::Unit::Seconds,
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "allocations",
            "Addresses assigned to Services, by pool and family",
            metrics.allocations.clone(),
        );
        registry.register(
            "allocation_failures",
            "Services that could not get an address, by reason",
            metrics.allocation_failures.clone(),
        );
        registry.register(
            "events_dropped",
            "Events not published because the Event queue was full",
            metrics.events_dropped.clone(),
        );
        registry.register(
            "pool_addresses",
            "Addresses a pool can hand out, by family",
            metrics.pool_addresses.clone(),
        );
        registry.register(
            "pool_addresses_in_use",
            "Addresses of a pool assigned to Services, by family",
            metrics.pool_addresses_in_use.clone(),
        );
        registry.register(
            "config_valid",
            "1 when the last config snapshot had no errors, else 0",
            metrics.config_valid.clone(),
        );
        registry.register(
            "config_invalid_objects",
            "ferrolb objects left out of the config snapshot because of an error, by kind",
            metrics.config_invalid_objects.clone(),
        );
        metrics
    }

    /// A reconciliation finished successfully after `took`.
    pub fn reconcile_succeeded(&self, took: Duration) {
        self.reconciliations.inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// A reconciliation failed with the error variant `reason` after `took`.
    pub fn reconcile_failed(&self, took: Duration, reason: &str) {
        self.reconcile_succeeded(took);
        self.reconcile_errors
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// An address of `family` from `pool` was assigned to a Service.
    pub fn allocated(&self, pool: &str, family: IpFamily) {
        self.allocations
            .get_or_create(&pool_labels(pool, family))
            .inc();
    }

    /// A Service could not get an address, for the allocator error variant `reason`.
    pub fn allocation_failed(&self, reason: &str) {
        self.allocation_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// An Event was dropped: the queue of Events waiting to be published was full.
    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    /// Records a new config snapshot: pool sizes per family, whether it was free of errors, and
    /// how many objects of each kind were left out. Pools no longer in the snapshot lose their
    /// size and use series.
    pub fn record_config(&self, config: &Config, diagnostics: &[Diagnostic]) {
        self.pool_addresses.clear();
        for (name, pool) in &config.pools {
            for family in [IpFamily::V4, IpFamily::V6] {
                let capacity = pool.capacity(family);
                if capacity > 0 {
                    // Precision loss above 2^53 is accepted, see `AddressGauge`.
                    let size = capacity as f64;
                    self.pool_addresses
                        .get_or_create(&pool_labels(name, family))
                        .set(size);
                }
            }
        }
        // One object may have several errors; it is left out once.
        let invalid: BTreeSet<(ObjectKind, &str)> = diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.severity == Severity::Error)
            .map(|diagnostic| (diagnostic.kind, diagnostic.name.as_str()))
            .collect();
        self.config_invalid_objects.clear();
        for (kind, _) in &invalid {
            self.config_invalid_objects
                .get_or_create(&KindLabels {
                    kind: KindLabel(*kind),
                })
                .inc();
        }
        self.config_valid.set(i64::from(invalid.is_empty()));
    }

    /// Records how many addresses of each pool and family are assigned, after an allocation
    /// pass; pools absent from `in_use` lose their series.
    pub fn record_pool_use<'a>(&self, in_use: impl IntoIterator<Item = (&'a str, IpFamily, u64)>) {
        self.pool_addresses_in_use.clear();
        for (pool, family, count) in in_use {
            let count = count as f64;
            self.pool_addresses_in_use
                .get_or_create(&pool_labels(pool, family))
                .set(count);
        }
    }
}

fn pool_labels(pool: &str, family: IpFamily) -> PoolLabels {
    PoolLabels {
        pool: pool.to_owned(),
        family: FamilyLabel(family),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_config::crd::IPAddressPool;
    use ferrolb_config::model::{Objects, build};
    use serde_json::json;

    fn pool(name: &str, addresses: &[&str]) -> IPAddressPool {
        serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": { "name": name },
            "spec": { "addresses": addresses },
        }))
        .expect("test pool deserializes")
    }

    fn snapshot(pools: Vec<IPAddressPool>) -> (Config, Vec<Diagnostic>) {
        build(&Objects {
            pools,
            ..Objects::default()
        })
    }

    fn exposition(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
        text
    }

    fn setup() -> (Registry, ControllerMetrics) {
        let mut registry = Registry::with_prefix("ferrolb");
        let metrics = ControllerMetrics::register(&mut registry);
        (registry, metrics)
    }

    #[test]
    fn pool_sizes_are_reported_per_family() {
        let (registry, metrics) = setup();
        let (config, diagnostics) =
            snapshot(vec![pool("blue", &["198.51.100.0/30", "2001:db8::/64"])]);
        metrics.record_config(&config, &diagnostics);
        let text = exposition(&registry);
        assert!(
            text.contains("ferrolb_pool_addresses{pool=\"blue\",family=\"IPv4\"} 4.0"),
            "{text}"
        );
        // The exact text of a float this size is the encoder's business; its value is ours.
        let v6 = text
            .lines()
            .find_map(|line| {
                line.strip_prefix("ferrolb_pool_addresses{pool=\"blue\",family=\"IPv6\"} ")
            })
            .and_then(|value| value.parse::<f64>().ok());
        assert_eq!(v6, Some(2f64.powi(64)), "{text}");
        assert!(text.contains("ferrolb_config_valid 1"), "{text}");
    }

    #[test]
    fn deleted_pool_loses_its_series() {
        let (registry, metrics) = setup();
        let (config, diagnostics) = snapshot(vec![
            pool("blue", &["198.51.100.0/30"]),
            pool("green", &["203.0.113.0/29"]),
        ]);
        metrics.record_config(&config, &diagnostics);
        metrics.record_pool_use([("blue", IpFamily::V4, 2), ("green", IpFamily::V4, 1)]);
        let (config, diagnostics) = snapshot(vec![pool("blue", &["198.51.100.0/30"])]);
        metrics.record_config(&config, &diagnostics);
        metrics.record_pool_use([("blue", IpFamily::V4, 3)]);
        let text = exposition(&registry);
        assert!(!text.contains("green"), "{text}");
        assert!(
            text.contains("ferrolb_pool_addresses_in_use{pool=\"blue\",family=\"IPv4\"} 3.0"),
            "{text}"
        );
    }

    #[test]
    fn invalid_pool_makes_config_invalid_and_is_counted_once() {
        let (registry, metrics) = setup();
        let (config, diagnostics) = snapshot(vec![
            pool("good", &["198.51.100.0/30"]),
            pool("host-bits", &["203.0.113.7/24", "203.0.113.9/24"]),
        ]);
        let errors = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error && d.name == "host-bits")
            .count();
        assert!(errors >= 1, "the fixture must be invalid: {diagnostics:?}");
        metrics.record_config(&config, &diagnostics);
        let text = exposition(&registry);
        assert!(text.contains("ferrolb_config_valid 0"), "{text}");
        assert!(
            text.contains("ferrolb_config_invalid_objects{kind=\"IPAddressPool\"} 1"),
            "{text}"
        );
        // A later valid snapshot clears both.
        let (config, diagnostics) = snapshot(vec![pool("good", &["198.51.100.0/30"])]);
        metrics.record_config(&config, &diagnostics);
        let text = exposition(&registry);
        assert!(text.contains("ferrolb_config_valid 1"), "{text}");
        assert!(!text.contains("ferrolb_config_invalid_objects{"), "{text}");
    }

    #[test]
    fn reconciles_count_errors_by_reason_and_time_every_run() {
        let (registry, metrics) = setup();
        metrics.reconcile_succeeded(Duration::from_millis(3));
        metrics.reconcile_failed(Duration::from_millis(40), "Conflict");
        metrics.reconcile_failed(Duration::from_millis(50), "Conflict");
        let text = exposition(&registry);
        assert!(text.contains("ferrolb_reconciliations_total 3"), "{text}");
        assert!(
            text.contains("ferrolb_reconcile_errors_total{reason=\"Conflict\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_reconcile_duration_seconds_count 3"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_reconcile_duration_seconds_bucket{le=\"0.004\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn allocations_by_pool_and_family_and_failures_by_reason() {
        let (registry, metrics) = setup();
        metrics.allocated("blue", IpFamily::V4);
        metrics.allocated("blue", IpFamily::V6);
        metrics.allocated("blue", IpFamily::V6);
        metrics.allocation_failed("PoolExhausted");
        metrics.event_dropped();
        let text = exposition(&registry);
        assert!(
            text.contains("ferrolb_allocations_total{pool=\"blue\",family=\"IPv4\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_allocations_total{pool=\"blue\",family=\"IPv6\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_allocation_failures_total{reason=\"PoolExhausted\"} 1"),
            "{text}"
        );
        assert!(text.contains("ferrolb_events_dropped_total 1"), "{text}");
    }
}
