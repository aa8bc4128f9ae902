//! From two desired states to the work for the engines.
//!
//! Layer 2 needs explicit gains and losses: the announcer keeps per-(IP, interface) state and
//! bursts gratuitous ARP / unsolicited NA only on a gain (SPEC §5). BGP needs only the complete
//! route set of each peer whose set changed, since the Adj-RIB-Out computes its own UPDATEs from
//! the full desired set (see [`crate::bgp::rib_out::AdjRibOut::sync`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::Desired;
use crate::bgp::rib_out::Routes;

/// An IP this node announces on one interface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Announcement {
    pub ip: IpAddr,
    pub interface: String,
}

/// What changed between two desired states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Layer-2 announcements to stop. Apply before [`Changes::gained`], so an IP moving between
    /// interfaces of this node is released first.
    pub lost: Vec<Announcement>,
    /// Layer-2 announcements to start.
    pub gained: Vec<Announcement>,
    /// Peers (still selecting this node) whose route set changed, with their complete new set.
    pub routes: BTreeMap<String, Routes>,
    /// Peers that no longer select this node: their sessions end.
    pub peers_removed: BTreeSet<String>,
    /// Peers that newly select this node: their sessions start (their routes are in
    /// [`Changes::routes`]).
    pub peers_added: BTreeSet<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// The changes that take this node from `previous` to `next`.
pub fn changes(previous: &Desired, next: &Desired) -> Changes {
    let before = previous.announced_here();
    let after = next.announced_here();
    let routes = next
        .bgp
        .iter()
        .filter(|(peer, routes)| previous.bgp.get(*peer) != Some(*routes))
        .map(|(peer, routes)| (peer.clone(), routes.clone()))
        .collect();
    Changes {
        lost: before.difference(&after).cloned().collect(),
        gained: after.difference(&before).cloned().collect(),
        routes,
        peers_removed: previous
            .bgp
            .keys()
            .filter(|peer| !next.bgp.contains_key(*peer))
            .cloned()
            .collect(),
        peers_added: next
            .bgp
            .keys()
            .filter(|peer| !previous.bgp.contains_key(*peer))
            .cloned()
            .collect(),
    }
}
