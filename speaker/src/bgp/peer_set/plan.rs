//! What to do to the running peers so that exactly the wanted ones run, as they are wanted: pure,
//! no I/O. The rules are in the parent module's docs.

use std::collections::BTreeMap;

use super::wanted::Wanted;
use crate::bgp::driver::PeerSpec;
use crate::bgp::fsm::PeerConfig;
use crate::bgp::packet::CeaseSubcode;
use crate::bgp::rib_out::Routes;

/// A running peer as the planner sees it.
#[derive(Clone, Debug)]
pub(super) struct Running<'a> {
    /// The spec it was started (or last reconfigured) with.
    pub(super) spec: &'a PeerSpec,
    /// The routes it was last given.
    pub(super) routes: &'a Routes,
    /// It was started while BFD ran on the speaker, so its BFD session can be added later
    /// without a restart (the driver binds a peer to the BFD driver when it is added).
    pub(super) bfd_attached: bool,
}

/// One step; the plan lists every stop before every start, so an address handed from one
/// BGPPeer to another is free again when the second starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// End the session with a Cease NOTIFICATION carrying `subcode` (RFC 4486) and forget it.
    Stop { peer: String, subcode: CeaseSubcode },
    /// Start the peer from its wanted spec and routes.
    Start { peer: String },
    /// Give the running session its new [`PeerConfig`]; `resets` says whether something fixed at
    /// OPEN changed, so the FSM ends the session (Cease, Other Configuration Change) and opens a
    /// new one.
    Reconfigure { peer: String, resets: bool },
    /// Add, change (Poll Sequence, RFC 5880 §6.8.3) or remove the peer's BFD session; BGP stays.
    SetBfd { peer: String },
    /// Send the difference of the routes as UPDATEs / withdrawals on the running session.
    SetRoutes { peer: String },
}

/// The steps from `running` to `wanted`. `bfd_available`: BFD runs on the speaker now.
pub(super) fn plan(
    running: &BTreeMap<String, Running<'_>>,
    wanted: &BTreeMap<String, Wanted>,
    bfd_available: bool,
) -> Vec<Step> {
    let mut stops = Vec::new();
    let mut starts = Vec::new();
    let mut updates = Vec::new();
    for name in running.keys().filter(|name| !wanted.contains_key(*name)) {
        stops.push(Step::Stop {
            peer: name.clone(),
            subcode: CeaseSubcode::PeerDeconfigured,
        });
    }
    for (name, wanted) in wanted {
        let peer = || name.clone();
        let Some(current) = running.get(name) else {
            if wanted.spec.is_some() {
                starts.push(Step::Start { peer: peer() });
            }
            continue;
        };
        // A configuration that cannot be built leaves the session as it runs; routes still flow.
        let Some(spec) = &wanted.spec else {
            if *current.routes != wanted.routes {
                updates.push(Step::SetRoutes { peer: peer() });
            }
            continue;
        };
        let bfd_needs_attach = spec.bfd.is_some() && !current.bfd_attached && bfd_available;
        if fixed_with_the_peer(current.spec) != fixed_with_the_peer(spec) || bfd_needs_attach {
            stops.push(Step::Stop {
                peer: peer(),
                subcode: CeaseSubcode::OtherConfigurationChange,
            });
            starts.push(Step::Start { peer: peer() });
            continue;
        }
        if !same_session(&current.spec.session, &spec.session) {
            updates.push(Step::Reconfigure {
                peer: peer(),
                resets: current.spec.session.fixed_at_open() != spec.session.fixed_at_open(),
            });
        }
        if current.spec.bfd != spec.bfd {
            updates.push(Step::SetBfd { peer: peer() });
        }
        if *current.routes != wanted.routes {
            updates.push(Step::SetRoutes { peer: peer() });
        }
    }
    stops.extend(starts);
    stops.extend(updates);
    stops
}

/// What the driver binds to the peer when it is added (the TCP endpoints and their options, the
/// next hops of its Adj-RIB-Out): a change means a new session.
fn fixed_with_the_peer(spec: &PeerSpec) -> impl PartialEq + '_ {
    (
        spec.address,
        spec.local_address,
        spec.password.as_deref(),
        spec.ttl,
        spec.next_hops,
    )
}

/// Equal configurations, except for whether this process has just restarted: that is runtime
/// state (RFC 4724 §3 R bit), which the FSM keeps across reconfigurations.
fn same_session(running: &PeerConfig, wanted: &PeerConfig) -> bool {
    let mut wanted = wanted.clone();
    if let (Some(new), Some(old)) = (wanted.graceful_restart.as_mut(), running.graceful_restart) {
        new.restarted = old.restarted;
    }
    *running == wanted
}
