//! The config snapshot's pools as allocator input: the one place the allocator meets the config
//! model's selector type.

use std::sync::Arc;

use ferrolb_config::model::{Config, Pool, Selector, SelectorExt};

use super::pool::{LabelMatcher, PoolSpec, Restriction};
use super::service::Labels;

impl LabelMatcher for Selector {
    fn matches(&self, labels: &Labels) -> bool {
        SelectorExt::matches(self, labels)
    }
}

/// Every usable pool of the snapshot (conflicting and invalid pools are already left out).
pub fn pools_from_config(config: &Config) -> Vec<PoolSpec> {
    config.pools.values().map(PoolSpec::from).collect()
}

impl From<&Pool> for PoolSpec {
    fn from(pool: &Pool) -> Self {
        PoolSpec {
            name: pool.name.clone(),
            addresses: pool.addresses.clone(),
            auto_assign: pool.auto_assign,
            avoid_buggy_ips: pool.avoid_buggy_ips,
            priority: pool.priority,
            restriction: pool.restriction.as_ref().map(|r| Restriction {
                namespaces: r.namespaces.clone(),
                service_selectors: r
                    .service_selectors
                    .iter()
                    .map(|s| Arc::new(s.clone()) as Arc<dyn LabelMatcher>)
                    .collect(),
            }),
        }
    }
}
