//! The speaker's layer-2, membership and config metrics (SPEC §7; names fixed by the speaker
//! contract), registered under the `ferrolb` prefix and served by the admin server's `/metrics`.
//!
//! The engines keep plain counters (the announcer's [`Counters`], the liveness table's drop
//! counts) and publish snapshots; [`SpeakerMetrics`] turns each new snapshot into counter
//! increments, so a series only ever grows and no engine depends on prometheus-client.

use std::collections::BTreeMap;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::l2::announcer::{Counters, FamilyCounters};
use crate::membership::liveness::DropReason;

/// The address family as Kubernetes spells it in `ipFamilies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum IpFamily {
    IPv4,
    IPv6,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FamilyLabels {
    pub family: IpFamily,
}

/// Why a heartbeat was dropped, in the contract's four classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DropClass {
    /// Authentication failed: a forged heartbeat or another cluster's key.
    bad_mac,
    /// An old incarnation, a duplicate or an out-of-order sequence number.
    replay,
    /// A timestamp too far from our clock.
    stale,
    /// Cannot be decoded, or not from a configured peer.
    malformed,
}

impl DropClass {
    pub fn of(reason: DropReason) -> DropClass {
        match reason {
            DropReason::BadMac => DropClass::bad_mac,
            DropReason::OldIncarnation | DropReason::Duplicate | DropReason::OutOfOrder => {
                DropClass::replay
            }
            DropReason::ClockSkew => DropClass::stale,
            DropReason::Truncated
            | DropReason::WrongVersion
            | DropReason::Malformed
            | DropReason::FromSelf
            | DropReason::UnknownPeer => DropClass::malformed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DropLabels {
    pub reason: DropClass,
}

/// Every speaker metric of this module; cloning shares the series.
#[derive(Debug, Clone)]
pub struct SpeakerMetrics {
    l2_requests: Family<FamilyLabels, Counter>,
    l2_responses: Family<FamilyLabels, Counter>,
    l2_gratuitous: Family<FamilyLabels, Counter>,
    l2_conflicts: Family<FamilyLabels, Counter>,
    l2_announced_ips: Gauge,
    l2_failovers: Counter,
    members_alive: Gauge,
    membership_dropped: Family<DropLabels, Counter>,
    config_valid: Gauge,
    events_dropped: Counter,
}

impl SpeakerMetrics {
    /// Creates the metrics and registers them in `registry` (which carries the `ferrolb` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = SpeakerMetrics {
            l2_requests: Family::default(),
            l2_responses: Family::default(),
            l2_gratuitous: Family::default(),
            l2_conflicts: Family::default(),
            l2_announced_ips: Gauge::default(),
            l2_failovers: Counter::default(),
            members_alive: Gauge::default(),
            membership_dropped: Family::default(),
            config_valid: Gauge::default(),
            events_dropped: Counter::default(),
        };
        registry.register(
            "l2_requests",
            "ARP requests and Neighbor Solicitations received for owned IPs, by family",
            metrics.l2_requests.clone(),
        );
        registry.register(
            "l2_responses",
            "ARP replies and solicited Neighbor Advertisements sent, by family",
            metrics.l2_responses.clone(),
        );
        registry.register(
            "l2_gratuitous",
            "Gratuitous ARP and unsolicited Neighbor Advertisements sent, by family",
            metrics.l2_gratuitous.clone(),
        );
        registry.register(
            "l2_conflicts",
            "Frames from a foreign MAC claiming an owned IP, by family",
            metrics.l2_conflicts.clone(),
        );
        registry.register(
            "l2_announced_ips",
            "IPs this node announces in layer 2",
            metrics.l2_announced_ips.clone(),
        );
        registry.register(
            "l2_failovers",
            "IPs this node took over from another node",
            metrics.l2_failovers.clone(),
        );
        registry.register(
            "members_alive",
            "Other speakers this node's heartbeats judge alive",
            metrics.members_alive.clone(),
        );
        registry.register(
            "membership_dropped",
            "Heartbeats dropped, by reason",
            metrics.membership_dropped.clone(),
        );
        registry.register(
            "speaker_config_valid",
            "1 when no ferrolb object is invalid in the speaker's last snapshot, else 0",
            metrics.config_valid.clone(),
        );
        registry.register(
            "events_dropped",
            "Events not published because the Event queue was full",
            metrics.events_dropped.clone(),
        );
        metrics
    }

    /// Adds what the announcer counted between the snapshots `before` and `now`.
    pub fn record_l2(&self, before: &Counters, now: &Counters) {
        for (family, before, now) in [
            (IpFamily::IPv4, &before.ipv4, &now.ipv4),
            (IpFamily::IPv6, &before.ipv6, &now.ipv6),
        ] {
            let labels = FamilyLabels { family };
            let grown =
                |field: fn(&FamilyCounters) -> u64| field(now).saturating_sub(field(before));
            self.l2_requests
                .get_or_create(&labels)
                .inc_by(grown(|c| c.requests_for_owned));
            self.l2_responses
                .get_or_create(&labels)
                .inc_by(grown(|c| c.requests_answered));
            self.l2_gratuitous
                .get_or_create(&labels)
                .inc_by(grown(|c| c.gratuitous_sent));
            self.l2_conflicts
                .get_or_create(&labels)
                .inc_by(grown(|c| c.conflicts));
        }
    }

    /// Adds the heartbeats dropped between the snapshots `before` and `now`.
    pub fn record_dropped(
        &self,
        before: &BTreeMap<DropReason, u64>,
        now: &BTreeMap<DropReason, u64>,
    ) {
        for (reason, count) in now {
            let grown = count.saturating_sub(before.get(reason).copied().unwrap_or(0));
            self.membership_dropped
                .get_or_create(&DropLabels {
                    reason: DropClass::of(*reason),
                })
                .inc_by(grown);
        }
    }

    pub fn set_announced_ips(&self, count: usize) {
        self.l2_announced_ips
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn failed_over(&self, ips: u64) {
        self.l2_failovers.inc_by(ips);
    }

    pub fn set_members_alive(&self, count: usize) {
        self.members_alive
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// An Event was dropped: the queue of Events waiting to be published was full.
    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    pub fn set_config_valid(&self, valid: bool) {
        self.config_valid.set(i64::from(valid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn exposition(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).expect("encodes");
        text
    }

    #[test]
    fn l2_counters_grow_by_the_difference_per_family() {
        let mut registry = Registry::with_prefix("ferrolb");
        let metrics = SpeakerMetrics::register(&mut registry);
        let mut now = Counters::default();
        now.ipv4.requests_for_owned = 3;
        now.ipv4.requests_answered = 2;
        now.ipv6.gratuitous_sent = 4;
        metrics.record_l2(&Counters::default(), &now);
        let mut later = now;
        later.ipv4.requests_for_owned = 5;
        metrics.record_l2(&now, &later);
        let text = exposition(&registry);
        assert!(
            text.contains("ferrolb_l2_requests_total{family=\"IPv4\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_l2_responses_total{family=\"IPv4\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_l2_gratuitous_total{family=\"IPv6\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_l2_conflicts_total{family=\"IPv6\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn dropped_heartbeats_are_classed_as_the_contract_names_them() {
        let mut registry = Registry::with_prefix("ferrolb");
        let metrics = SpeakerMetrics::register(&mut registry);
        let now = BTreeMap::from([
            (DropReason::BadMac, 2),
            (DropReason::Duplicate, 1),
            (DropReason::OutOfOrder, 1),
            (DropReason::ClockSkew, 1),
        ]);
        metrics.record_dropped(&BTreeMap::new(), &now);
        metrics.set_config_valid(true);
        metrics.set_members_alive(2);
        let text = exposition(&registry);
        assert!(
            text.contains("ferrolb_membership_dropped_total{reason=\"bad_mac\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_membership_dropped_total{reason=\"replay\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_membership_dropped_total{reason=\"stale\"} 1"),
            "{text}"
        );
        assert!(text.contains("ferrolb_speaker_config_valid 1"), "{text}");
        assert!(text.contains("ferrolb_members_alive 2"), "{text}");
    }
}
