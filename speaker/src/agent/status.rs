//! What this speaker publishes, as plain values: its `SpeakerStatus` status (SPEC §2), the Service
//! condition `ferrolb.io/L2Announced` and when an `Announcing` Event is due (SPEC §3).
//!
//! Contract: pure. The writer tasks compare what these functions return with what they last
//! wrote, so a resync that changes nothing writes nothing and emits no Event.
//!
//! The condition belongs to the node that announces: the owner applies it (server-side apply,
//! forced, field manager `ferrolb-speaker`); a node that stops announcing applies an empty
//! condition list, which removes the entry only while that node still manages it. So after a
//! failover the new owner's condition stays, and when no node announces the condition goes away.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::crd::SpeakerStatusStatus;
use ferrolb_config::crd::speaker_status::{
    BfdState, BgpState, L2AnnouncementStatus, MemberStatus, SpeakerSummary,
};

use super::bgp::BgpStatus;
use super::objects::interfaces_to_status;
use crate::desired::{Desired, Interface, ServiceRef, SmallSet};

/// The Service condition type the layer-2 owner sets.
pub const L2_ANNOUNCED: &str = "ferrolb.io/L2Announced";
/// Reason of the condition and of the Event.
pub const REASON_ANNOUNCING: &str = "Announcing";
/// Reason of the Warning Event when a foreign station claims an announced IP.
pub const REASON_CONFLICT: &str = "AddressConflict";

/// The status of this node's `SpeakerStatus`. `members` maps every peer to whether it is alive;
/// `conflicts` the latest foreign MAC seen per owned IP; `bgp` the sessions of the peer set.
pub fn speaker_status(
    desired: &Desired,
    interfaces: &[Interface],
    members: &BTreeMap<String, bool>,
    conflicts: &BTreeMap<IpAddr, String>,
    bgp: &BgpStatus,
) -> SpeakerStatusStatus {
    let l2_announcements: Vec<L2AnnouncementStatus> = desired
        .l2
        .iter()
        .flat_map(|(ip, decision)| {
            decision.interfaces.iter().flat_map(move |interface| {
                decision
                    .services
                    .iter()
                    .map(move |service| L2AnnouncementStatus {
                        ip: ip.to_string(),
                        service: service.to_string(),
                        interface: interface.clone(),
                        conflicting_mac: conflicts.get(ip).cloned(),
                    })
            })
        })
        .collect();
    let members: Vec<MemberStatus> = members
        .iter()
        .map(|(node, alive)| MemberStatus {
            node: node.clone(),
            alive: *alive,
        })
        .collect();
    SpeakerStatusStatus {
        summary: SpeakerSummary {
            l2_announcements: count(l2_announcements.len()),
            members: count(members.len()),
            members_alive: count(members.iter().filter(|m| m.alive).count()),
            bgp_sessions: count(bgp.sessions.len()),
            bgp_sessions_up: count(
                bgp.sessions
                    .iter()
                    .filter(|s| s.state == BgpState::Established)
                    .count(),
            ),
            bfd_sessions_up: count(bgp.bfd.iter().filter(|s| s.state == BfdState::Up).count()),
        },
        l2_announcements,
        members,
        interfaces: interfaces_to_status(interfaces),
        bgp_sessions: bgp.sessions.clone(),
        bfd_sessions: bgp.bfd.clone(),
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What this node announces for one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub ips: SmallSet<IpAddr>,
    pub interfaces: SmallSet<String>,
    /// Foreign MACs seen claiming one of the IPs (SPEC §5 conflict detection).
    pub conflicts: BTreeMap<IpAddr, String>,
}

impl Announced {
    /// The condition message: names the node and the interface (SPEC §3), and any conflict.
    pub fn message(&self, node: &str) -> String {
        let ips: Vec<String> = self.ips.iter().map(ToString::to_string).collect();
        let interfaces: Vec<&str> = self.interfaces.iter().map(String::as_str).collect();
        let mut message = format!(
            "node {node} announces {} on {}",
            ips.join(", "),
            interfaces.join(", ")
        );
        if let Some(conflicts) = self.conflict_note() {
            message.push_str("; ");
            message.push_str(&conflicts);
        }
        message
    }

    /// `conflict: IP also claimed by MAC, …`, when there is any.
    pub fn conflict_note(&self) -> Option<String> {
        if self.conflicts.is_empty() {
            return None;
        }
        let claims: Vec<String> = self
            .conflicts
            .iter()
            .map(|(ip, mac)| format!("{ip} also claimed by {mac}"))
            .collect();
        Some(format!("conflict: {}", claims.join(", ")))
    }
}

/// The Services this node announces, with their IPs, interfaces and the conflicts seen on them.
pub fn announced(
    desired: &Desired,
    conflicts: &BTreeMap<IpAddr, String>,
) -> BTreeMap<ServiceRef, Announced> {
    let mut announced: BTreeMap<ServiceRef, Announced> = BTreeMap::new();
    for (ip, decision) in desired.l2.iter().filter(|(_, d)| !d.interfaces.is_empty()) {
        for service in &decision.services {
            let entry = announced
                .entry(service.clone())
                .or_insert_with(|| Announced {
                    ips: SmallSet::new(),
                    interfaces: SmallSet::new(),
                    conflicts: BTreeMap::new(),
                });
            entry.ips.insert(*ip);
            if let Some(mac) = conflicts.get(ip) {
                entry.conflicts.insert(*ip, mac.clone());
            }
            entry.interfaces.extend(decision.interfaces.iter().cloned());
        }
    }
    announced
}

/// One write to one Service, borrowed from the maps it was computed from (a takeover of 10,000
/// Services is 10,000 updates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceUpdate<'a> {
    /// Set the condition; `event` when this node just took the Service over (or its IPs changed),
    /// `conflict_event` when a foreign station newly claims one of its IPs.
    Announce {
        service: &'a ServiceRef,
        announced: &'a Announced,
        event: bool,
        conflict_event: bool,
    },
    /// Stop managing the condition (this node no longer announces the Service).
    Withdraw { service: &'a ServiceRef },
}

/// Whether a condition message was written by `node` (see [`Announced::message`]).
pub fn names_node(message: &str, node: &str) -> bool {
    message.starts_with(&format!("node {node} "))
}

/// The writes that take the Services from what they show (`shown`: the message of their
/// L2Announced condition, as the API server holds it) to `wanted`; `written` is what this node
/// last wrote, for telling an ownership change (Event) from an interface change.
///
/// All speakers share one field manager (the contract's `ferrolb-speaker`), so a withdrawal would
/// remove the condition whoever wrote it: a node withdraws only a condition that names itself, and
/// it compares with what the Service shows, not with what it once wrote, so a condition another
/// node overwrote in between is written again.
pub fn service_updates<'a, 's>(
    node: &str,
    written: &'a BTreeMap<ServiceRef, Announced>,
    wanted: &'a BTreeMap<ServiceRef, Announced>,
    shown: impl Fn(&ServiceRef) -> Option<&'s str>,
) -> Vec<ServiceUpdate<'a>> {
    let withdrawn = written
        .keys()
        .filter(|service| !wanted.contains_key(*service))
        .filter(|service| shown(service).is_some_and(|m| names_node(m, node)))
        .map(|service| ServiceUpdate::Withdraw { service });
    let announced = wanted
        .iter()
        .filter(|(service, announced)| {
            written.get(*service) != Some(*announced)
                || shown(service) != Some(announced.message(node).as_str())
        })
        .map(|(service, announced)| ServiceUpdate::Announce {
            service,
            announced,
            event: written
                .get(service)
                .is_none_or(|old| old.ips != announced.ips),
            conflict_event: announced.conflicts.iter().any(|(ip, mac)| {
                written.get(service).and_then(|old| old.conflicts.get(ip)) != Some(mac)
            }),
        });
    withdrawn.chain(announced).collect()
}

/// `written` after the `applied` updates succeeded (the others failed and are tried again).
pub fn after_updates(
    written: &BTreeMap<ServiceRef, Announced>,
    applied: &[&ServiceUpdate<'_>],
) -> BTreeMap<ServiceRef, Announced> {
    let mut next = written.clone();
    for update in applied {
        match update {
            ServiceUpdate::Announce {
                service, announced, ..
            } => {
                next.insert((*service).clone(), (*announced).clone());
            }
            ServiceUpdate::Withdraw { service } => {
                next.remove(*service);
            }
        }
    }
    next
}

/// How many IPs this node gained that another node owned before: failovers to this node.
pub fn failovers(previous: &Desired, next: &Desired, node: &str) -> u64 {
    let taken = next
        .l2
        .iter()
        .filter(|(_, decision)| decision.owner.as_deref() == Some(node))
        .filter(|(ip, _)| {
            previous
                .l2
                .get(*ip)
                .and_then(|before| before.owner.as_deref())
                .is_some_and(|owner| owner != node)
        })
        .count();
    u64::try_from(taken).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::L2Ip;

    fn service(name: &str) -> ServiceRef {
        ServiceRef {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn desired(entries: &[(&str, &str, Option<&str>, &[&str])]) -> Desired {
        Desired {
            l2: entries
                .iter()
                .map(|(address, name, owner, interfaces)| {
                    (
                        ip(address),
                        L2Ip {
                            services: SmallSet::from([service(name)]),
                            owner: owner.map(str::to_owned),
                            interfaces: interfaces.iter().map(|i| (*i).to_owned()).collect(),
                            split: false,
                        },
                    )
                })
                .collect(),
            bgp: BTreeMap::new(),
        }
    }

    #[test]
    fn status_lists_announcements_here_members_and_conflicts() {
        let state = desired(&[
            ("198.51.100.1", "web", Some("a"), &["eth0"]),
            ("198.51.100.2", "db", Some("b"), &[]),
        ]);
        let members = BTreeMap::from([("b".to_owned(), true), ("c".to_owned(), false)]);
        let conflicts = BTreeMap::from([(ip("198.51.100.1"), "02:00:00:00:00:09".to_owned())]);
        let status = speaker_status(&state, &[], &members, &conflicts, &BgpStatus::default());
        assert_eq!(
            status.l2_announcements,
            vec![L2AnnouncementStatus {
                ip: "198.51.100.1".into(),
                service: "ns/web".into(),
                interface: "eth0".into(),
                conflicting_mac: Some("02:00:00:00:00:09".into()),
            }]
        );
        assert_eq!(status.summary.l2_announcements, 1);
        assert_eq!(status.summary.members, 2);
        assert_eq!(status.summary.members_alive, 1);
        assert!(status.bgp_sessions.is_empty());
    }

    #[test]
    fn announced_groups_ips_of_a_service_and_skips_foreign_owners() {
        let state = desired(&[
            ("198.51.100.1", "web", Some("a"), &["eth0"]),
            ("2001:db8::1", "web", Some("a"), &["eth1"]),
            ("198.51.100.2", "db", Some("b"), &[]),
        ]);
        let announced = announced(&state, &BTreeMap::new());
        assert_eq!(announced.len(), 1);
        let web = &announced[&service("web")];
        assert_eq!(
            web.message("a"),
            "node a announces 198.51.100.1, 2001:db8::1 on eth0, eth1"
        );
    }

    fn announced_here(state: &Desired) -> BTreeMap<ServiceRef, Announced> {
        announced(state, &BTreeMap::new())
    }

    #[test]
    fn conflict_is_named_in_the_condition_and_raises_one_warning() {
        let state = desired(&[("198.51.100.1", "web", Some("a"), &["eth0"])]);
        let clean = announced_here(&state);
        let conflicts = BTreeMap::from([(ip("198.51.100.1"), "02:00:00:00:00:09".to_owned())]);
        let claimed = announced(&state, &conflicts);
        assert_eq!(
            claimed[&service("web")].message("a"),
            "node a announces 198.51.100.1 on eth0; conflict: 198.51.100.1 also claimed by 02:00:00:00:00:09"
        );
        let on_service = shown(&[("web", clean[&service("web")].message("a"))]);
        assert!(matches!(
            &service_updates("a", &clean, &claimed, on(&on_service))[..],
            [ServiceUpdate::Announce {
                event: false,
                conflict_event: true,
                ..
            }]
        ));
        let still = shown(&[("web", claimed[&service("web")].message("a"))]);
        assert!(service_updates("a", &claimed, &claimed, on(&still)).is_empty());
    }

    fn shown(entries: &[(&str, String)]) -> BTreeMap<ServiceRef, String> {
        entries
            .iter()
            .map(|(name, message)| (service(name), message.clone()))
            .collect()
    }

    /// The lookup [`service_updates`] takes, over a map of messages.
    fn on<'s>(shown: &'s BTreeMap<ServiceRef, String>) -> impl Fn(&ServiceRef) -> Option<&'s str> {
        |service| shown.get(service).map(String::as_str)
    }

    #[test]
    fn event_only_when_ownership_changes_not_on_resync() {
        let wanted = announced_here(&desired(&[("198.51.100.1", "web", Some("a"), &["eth0"])]));
        let none = BTreeMap::new();
        let first = service_updates("a", &none, &wanted, |_| None);
        assert!(matches!(
            &first[..],
            [ServiceUpdate::Announce { event: true, .. }]
        ));
        let on_service = shown(&[("web", wanted[&service("web")].message("a"))]);
        assert!(
            service_updates("a", &wanted, &wanted, on(&on_service)).is_empty(),
            "resync is silent"
        );
        let moved = announced_here(&desired(&[("198.51.100.1", "web", Some("a"), &["eth1"])]));
        assert!(matches!(
            &service_updates("a", &wanted, &moved, on(&on_service))[..],
            [ServiceUpdate::Announce { event: false, .. }]
        ));
        assert_eq!(
            service_updates("a", &wanted, &BTreeMap::new(), on(&on_service)),
            vec![ServiceUpdate::Withdraw {
                service: &service("web")
            }]
        );
    }

    #[test]
    fn condition_overwritten_by_another_node_is_written_again_without_event() {
        let wanted = announced_here(&desired(&[("198.51.100.1", "web", Some("a"), &["eth0"])]));
        let by_b = shown(&[("web", "node b announces 198.51.100.1 on eth0".into())]);
        assert!(matches!(
            &service_updates("a", &wanted, &wanted, on(&by_b))[..],
            [ServiceUpdate::Announce { event: false, .. }]
        ));
    }

    #[test]
    fn withdrawal_leaves_another_nodes_condition_alone() {
        let written = announced_here(&desired(&[("198.51.100.1", "web", Some("a"), &["eth0"])]));
        let by_b = shown(&[("web", "node b announces 198.51.100.1 on eth0".into())]);
        assert!(service_updates("a", &written, &BTreeMap::new(), on(&by_b)).is_empty());
        assert!(names_node("node a announces x on y", "a"));
        assert!(!names_node("node ab announces x on y", "a"));
    }

    #[test]
    fn only_the_updates_that_succeeded_count_as_written() {
        let written = announced_here(&desired(&[
            ("198.51.100.1", "web", Some("a"), &["eth0"]),
            ("198.51.100.2", "api", Some("a"), &["eth0"]),
        ]));
        let wanted = announced_here(&desired(&[
            ("198.51.100.1", "web", Some("a"), &["eth0"]),
            ("198.51.100.3", "db", Some("a"), &["eth0"]),
            ("198.51.100.4", "cache", Some("a"), &["eth0"]),
        ]));
        let on_service = shown(&[("api", written[&service("api")].message("a"))]);
        let updates = service_updates("a", &written, &wanted, on(&on_service));
        // Withdraw api, announce cache and db (web shows nothing, so it is written again).
        assert_eq!(updates.len(), 4);
        let succeeded: Vec<&ServiceUpdate<'_>> = updates
            .iter()
            .filter(|u| match u {
                ServiceUpdate::Withdraw { .. } => true,
                ServiceUpdate::Announce { service, .. } => service.name == "db",
            })
            .collect();
        let now = after_updates(&written, &succeeded);
        let names: Vec<&str> = now.keys().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["db", "web"]);
        assert_eq!(now[&service("db")], wanted[&service("db")]);
    }

    #[test]
    fn failover_counts_ips_taken_from_another_node_only() {
        let before = desired(&[
            ("198.51.100.1", "web", Some("b"), &[]),
            ("198.51.100.2", "db", None, &[]),
        ]);
        let after = desired(&[
            ("198.51.100.1", "web", Some("a"), &["eth0"]),
            ("198.51.100.2", "db", Some("a"), &["eth0"]),
        ]);
        assert_eq!(failovers(&before, &after, "a"), 1);
        assert_eq!(failovers(&after, &after, "a"), 0);
    }
}
