//! The BGP and BFD metrics of the speaker contract (`ferrolb_bgp_session_up{peer}`,
//! `ferrolb_bgp_prefixes_announced{peer}`, `ferrolb_bgp_updates_sent_total{peer}`,
//! `ferrolb_bfd_session_up{peer}`), labelled with the BGPPeer name, and the BFD counters
//! (`ferrolb_bfd_packets_received_total{peer}`, `ferrolb_bfd_packets_sent_total{peer}`,
//! `ferrolb_bfd_send_errors_total{peer}`, `ferrolb_bfd_session_state_changes_total{peer}`,
//! `ferrolb_bfd_packets_dropped_total{reason}`). Registered under the caller's `ferrolb` prefix;
//! [`super::PeerSet::record_metrics`] fills them from the sessions, and removes the series of
//! peers that stopped running so a deleted BGPPeer does not report forever.
//!
//! The BFD driver keeps plain cumulative counters per session; a Prometheus counter only grows,
//! so each record adds what a session counted since the previous one ([`bfd_session_growth`]).
//! A session that was replaced (same peer, new discriminator) counts from zero, so all of its
//! counts are new: nothing is counted twice and the series never decreases.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::bfd::driver::{DropReason, SessionCounters};
use crate::bgp::driver::BfdSessionCounters;

/// One BGPPeer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PeerLabels {
    /// The BGPPeer name.
    pub peer: String,
}

/// Why the BFD driver dropped a datagram ([`DropReason::label`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BfdDropLabels {
    pub reason: &'static str,
}

/// The BGP metrics; cloning shares the underlying series.
#[derive(Debug, Clone, Default)]
pub struct BgpMetrics {
    pub(super) session_up: Family<PeerLabels, Gauge>,
    pub(super) prefixes_announced: Family<PeerLabels, Gauge>,
    pub(super) updates_sent: Family<PeerLabels, Counter>,
    pub(super) bfd_session_up: Family<PeerLabels, Gauge>,
    bfd_packets_received: Family<PeerLabels, Counter>,
    bfd_packets_sent: Family<PeerLabels, Counter>,
    bfd_send_errors: Family<PeerLabels, Counter>,
    bfd_state_changes: Family<PeerLabels, Counter>,
    bfd_packets_dropped: Family<BfdDropLabels, Counter>,
}

impl BgpMetrics {
    /// Registers every series in `registry` (created with the `ferrolb` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "bgp_session_up",
            "Whether the BGP session with the peer is Established (1) or not (0)",
            metrics.session_up.clone(),
        );
        registry.register(
            "bgp_prefixes_announced",
            "Prefixes the peer holds from this node on the current session",
            metrics.prefixes_announced.clone(),
        );
        registry.register(
            "bgp_updates_sent",
            "BGP UPDATE messages sent to the peer",
            metrics.updates_sent.clone(),
        );
        registry.register(
            "bfd_session_up",
            "Whether the BFD session protecting the peer's BGP session is Up (1) or not (0)",
            metrics.bfd_session_up.clone(),
        );
        registry.register(
            "bfd_packets_received",
            "BFD Control packets accepted for the peer's session",
            metrics.bfd_packets_received.clone(),
        );
        registry.register(
            "bfd_packets_sent",
            "BFD Control packets sent on the peer's session",
            metrics.bfd_packets_sent.clone(),
        );
        registry.register(
            "bfd_send_errors",
            "BFD Control packets of the peer's session the socket refused",
            metrics.bfd_send_errors.clone(),
        );
        registry.register(
            "bfd_session_state_changes",
            "State changes of the peer's BFD session",
            metrics.bfd_state_changes.clone(),
        );
        registry.register(
            "bfd_packets_dropped",
            "BFD datagrams dropped before reaching a session, by reason",
            metrics.bfd_packets_dropped.clone(),
        );
        metrics
    }

    /// Adds what one peer's BFD session counted since the last record.
    pub(super) fn record_bfd_session(&self, labels: &PeerLabels, grown: &SessionCounters) {
        self.bfd_packets_received
            .get_or_create(labels)
            .inc_by(grown.packets_in);
        self.bfd_packets_sent
            .get_or_create(labels)
            .inc_by(grown.packets_out);
        self.bfd_send_errors
            .get_or_create(labels)
            .inc_by(grown.send_errors);
        self.bfd_state_changes
            .get_or_create(labels)
            .inc_by(grown.state_changes);
    }

    /// Adds the drops between the driver's snapshots `before` and `now`.
    pub(super) fn record_bfd_dropped(
        &self,
        before: &BTreeMap<DropReason, u64>,
        now: &BTreeMap<DropReason, u64>,
    ) {
        for (reason, count) in now {
            let grown = count.saturating_sub(before.get(reason).copied().unwrap_or(0));
            self.bfd_packets_dropped
                .get_or_create(&BfdDropLabels {
                    reason: reason.label(),
                })
                .inc_by(grown);
        }
    }

    /// Drops every series of `peer`.
    pub(super) fn forget(&self, peer: &str) {
        let labels = PeerLabels {
            peer: peer.to_owned(),
        };
        self.session_up.remove(&labels);
        self.prefixes_announced.remove(&labels);
        self.updates_sent.remove(&labels);
        self.forget_bfd(&labels);
    }

    /// Drops the BFD series of a peer that no longer has BFD.
    pub(super) fn forget_bfd(&self, labels: &PeerLabels) {
        self.bfd_session_up.remove(labels);
        self.bfd_packets_received.remove(labels);
        self.bfd_packets_sent.remove(labels);
        self.bfd_send_errors.remove(labels);
        self.bfd_state_changes.remove(labels);
    }
}

/// What a peer's BFD session counted between the sample `recorded` (what the metrics hold) and
/// `now`: the difference for the same session, everything for a new one.
pub(super) fn bfd_session_growth(
    recorded: Option<&BfdSessionCounters>,
    now: &BfdSessionCounters,
) -> SessionCounters {
    let Some(before) = recorded.filter(|r| r.discriminator == now.discriminator) else {
        return now.counters;
    };
    let (before, now) = (&before.counters, &now.counters);
    SessionCounters {
        packets_in: now.packets_in.saturating_sub(before.packets_in),
        packets_out: now.packets_out.saturating_sub(before.packets_out),
        send_errors: now.send_errors.saturating_sub(before.send_errors),
        state_changes: now.state_changes.saturating_sub(before.state_changes),
    }
}
