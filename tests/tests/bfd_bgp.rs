//! BFD protecting ferrolb's BGP sessions against the lab's real routers (FRR bfdd and BIRD), run
//! as root: the speaker engine runs in node 1's namespace (as in `bgp_interop`) with BGP + BFD
//! (RFC 5880/5881, 100 ms x 3) to both routers. SPEC §6: "BFD Down takes the BGP session down at
//! once"; RFC 5880 §6.8.3: new timers go through a Poll Sequence without a reset.

mod bfd_lab;
mod node_runtime;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bfd_lab::{BfdNode, profile};
use ferrolb_lab::netns;
use ferrolb_lab::routers::RouterKind;
use ferrolb_lab::topology::Topology;
use ferrolb_speaker::bgp::driver::PeerError;
use ferrolb_speaker::bgp::fsm::State;

const ROUTERS: [RouterKind; 2] = [RouterKind::Frr, RouterKind::Bird];
const SESSION_UP: Duration = Duration::from_secs(30);
/// Hold time 9 s: a withdrawal well before it can only come from BFD.
const HOLD: u16 = 9;
/// Correctness bound, not a benchmark: detection is 300 ms, the hold time 9 s.
const WITHDRAWN_WITHIN: Duration = Duration::from_secs(3);

fn backend() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lab-backend"))
}

/// Both routers hold node 1's prefix and see BFD Up; so does the node.
fn protected_lab() -> (Topology, BfdNode) {
    let topo =
        Topology::up(bfd_lab::topology_options(&ROUTERS, true, backend())).expect("topology up");
    let node = BfdNode::start(&topo, &ROUTERS, Some(profile(100)), HOLD);
    node.wait_up(true, SESSION_UP)
        .unwrap_or_else(|e| panic!("{e}"));
    for kind in ROUTERS {
        netns::wait_for(&format!("{kind}: BFD Up with node 1"), SESSION_UP, || {
            bfd_lab::router_bfd_up(&topo, kind).ok()?.then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        netns::wait_for(&format!("{kind}: node 1's prefix"), SESSION_UP, || {
            bfd_lab::router_has_prefix(&topo, kind).ok()?.then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    (topo, node)
}

/// After `fault` isolates node 1, both routers withdraw its prefix within [`WITHDRAWN_WITHIN`],
/// and the node sees BFD Down and leaves Established because of it.
fn assert_withdrawn_after(fault: impl FnOnce(&Topology)) {
    let (topo, node) = protected_lab();

    let cut = Instant::now();
    fault(&topo);
    for kind in ROUTERS {
        netns::wait_for(
            &format!("{kind} withdrew node 1's prefix"),
            WITHDRAWN_WITHIN,
            || (!bfd_lab::router_has_prefix(&topo, kind).ok()?).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e} ({:?} after the fault)", cut.elapsed()));
    }
    for kind in ROUTERS {
        let status = netns::wait_for(&format!("node: {kind} session down"), SESSION_UP, || {
            let status = node.status(kind);
            (status.state != State::Established).then_some(status)
        })
        .unwrap_or_else(|e| panic!("{e}: {:?}", node.status(kind)));
        let bfd = status.bfd.clone().expect("BFD status");
        assert_eq!(bfd.state_name(), "Down", "{kind}: {status:?}");
        assert_eq!(bfd.path_failures, 1, "{kind}: {status:?}");
        assert!(
            matches!(status.last_error, Some(PeerError::BfdDown { .. })),
            "{kind}: {status:?}"
        );
    }
}

#[test]
fn cut_node_link_makes_frr_and_bird_withdraw_its_routes_within_bfd_detection() {
    assert_withdrawn_after(|topo| {
        topo.set_node_link(bfd_lab::NODE, false).expect("cut link");
    });
}

#[test]
fn frozen_node_is_withdrawn_by_frr_and_bird_within_bfd_detection() {
    assert_withdrawn_after(|topo| topo.freeze_node(bfd_lab::NODE).expect("freeze node"));
}

#[test]
fn bfd_profile_change_is_polled_through_without_resetting_bgp() {
    let (topo, node) = protected_lab();
    let established = bfd_lab::frr_connections_established(&topo).expect("FRR counter");
    let since: Vec<_> = ROUTERS.iter().map(|&k| node.status(k).since).collect();
    assert_eq!(bfd_lab::frr_remote_intervals(&topo), Ok((100, 100)));

    for (_, handle) in &node.sessions {
        handle
            .set_bfd_profile(Some(profile(300)))
            .expect("new profile");
    }
    // FRR reports the new intervals once the Poll Sequence completed (RFC 5880 §6.8.3).
    netns::wait_for("FRR sees 300 ms from node 1", SESSION_UP, || {
        (bfd_lab::frr_remote_intervals(&topo).ok()? == (300, 300)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", bfd_lab::frr_remote_intervals(&topo)));
    // A few slow intervals for anything that would reset to show.
    std::thread::sleep(Duration::from_secs(2));

    assert_eq!(
        bfd_lab::frr_connections_established(&topo),
        Ok(established),
        "FRR's session was reset"
    );
    for (kind, before) in ROUTERS.iter().zip(since) {
        let status = node.status(*kind);
        assert_eq!(status.state, State::Established, "{kind}: {status:?}");
        assert_eq!(status.since, before, "{kind}: the session was reset");
        assert_eq!(status.bfd.as_ref().map(|b| b.state_name()), Some("Up"));
        assert_eq!(
            bfd_lab::router_bfd_up(&topo, *kind),
            Ok(true),
            "{kind}: BFD went down"
        );
        assert_eq!(bfd_lab::router_has_prefix(&topo, *kind), Ok(true));
    }
}
