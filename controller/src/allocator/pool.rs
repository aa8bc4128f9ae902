//! Pools as the allocator sees them, and the order in which a Service tries them (SPEC §4).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use ferrolb_config::addresses::AddressSet;

use super::service::{Labels, ServiceRequest};

/// A label selector; the config model's typed selectors implement it, so the allocator needs no
/// Kubernetes types.
pub trait LabelMatcher: fmt::Debug + Send + Sync {
    fn matches(&self, labels: &Labels) -> bool;
}

/// One usable pool. Pools given to one allocator never overlap (the config model leaves the newer
/// of two overlapping pools out).
#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub name: String,
    pub addresses: AddressSet,
    /// `false`: only Services that request the pool or one of its addresses get addresses from it.
    pub auto_assign: bool,
    /// Never hand out IPv4 addresses ending in `.0` or `.255`.
    pub avoid_buggy_ips: bool,
    /// Lower is tried first; unset comes after every set priority.
    pub priority: Option<u32>,
    /// `None`: any Service may use the pool.
    pub restriction: Option<Restriction>,
}

/// `serviceAllocation` restrictions: a Service may use the pool when its namespace is allowed and
/// its labels are selected.
#[derive(Debug, Clone, Default)]
pub struct Restriction {
    /// Namespaces allowed, listed or selected by label (the config model resolves namespace
    /// selectors against the Namespaces, so a relabelled Namespace arrives as a pool change);
    /// `None`: any namespace.
    pub namespaces: Option<BTreeSet<String>>,
    /// Any one must match the Service's labels; empty means any Service.
    pub service_selectors: Vec<Arc<dyn LabelMatcher>>,
}

impl PoolSpec {
    /// Whether the pool's restrictions admit `service` (regardless of `autoAssign`).
    pub fn admits(&self, service: &ServiceRequest) -> bool {
        let Some(restriction) = &self.restriction else {
            return true;
        };
        let namespace_ok = restriction
            .namespaces
            .as_ref()
            .is_none_or(|names| names.contains(&service.key.namespace));
        let service_ok = restriction.service_selectors.is_empty()
            || restriction
                .service_selectors
                .iter()
                .any(|s| s.matches(&service.labels));
        namespace_ok && service_ok
    }

    /// Order among pools that admit one Service: restricted before unrestricted, then priority
    /// (unset last), then name.
    pub(super) fn try_order(&self, other: &PoolSpec) -> Ordering {
        order_key(self).cmp(&order_key(other))
    }
}

fn order_key(pool: &PoolSpec) -> (bool, bool, Option<u32>, &str) {
    (
        pool.restriction.is_none(),
        pool.priority.is_none(),
        pool.priority,
        &pool.name,
    )
}
