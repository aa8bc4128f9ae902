//! The BGP and BFD metrics of the speaker contract (`ferrolb_bgp_session_up{peer}`,
//! `ferrolb_bgp_prefixes_announced{peer}`, `ferrolb_bgp_updates_sent_total{peer}`,
//! `ferrolb_bfd_session_up{peer}`), labelled with the BGPPeer name. Registered under the caller's
//! `ferrolb` prefix; [`super::PeerSet::record_metrics`] fills them from the sessions, and removes
//! the series of peers that stopped running so a deleted BGPPeer does not report forever.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One BGPPeer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PeerLabels {
    /// The BGPPeer name.
    pub peer: String,
}

/// The BGP metrics; cloning shares the underlying series.
#[derive(Debug, Clone, Default)]
pub struct BgpMetrics {
    pub(super) session_up: Family<PeerLabels, Gauge>,
    pub(super) prefixes_announced: Family<PeerLabels, Gauge>,
    pub(super) updates_sent: Family<PeerLabels, Counter>,
    pub(super) bfd_session_up: Family<PeerLabels, Gauge>,
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
        metrics
    }

    /// Drops every series of `peer`.
    pub(super) fn forget(&self, peer: &str) {
        let labels = PeerLabels {
            peer: peer.to_owned(),
        };
        self.session_up.remove(&labels);
        self.prefixes_announced.remove(&labels);
        self.updates_sent.remove(&labels);
        self.bfd_session_up.remove(&labels);
    }
}
