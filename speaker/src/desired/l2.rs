//! Layer-2 eligibility and owner election (SPEC §5); the rules are in the parent module's docs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::model::{L2Advertisement, SelectorExt};

use super::{Inputs, Interface, L2Ip, Node, Service, ServiceRef, SmallSet, distinct_ips, selected};
use crate::election::{Candidate, ElectionKey, elect};

/// Why a node may announce one IP: its preference weight and the interfaces to announce on.
#[derive(Debug, Clone, Default)]
struct Fit<'a> {
    weight: u32,
    interfaces: BTreeSet<&'a str>,
}

/// The eligible nodes of one IP, by name.
type Eligible<'a> = BTreeMap<&'a str, Fit<'a>>;

/// One IP of one election group: the Services holding it and the nodes eligible for it on behalf
/// of all of them.
struct GroupIp<'a> {
    services: SmallSet<ServiceRef>,
    eligible: Eligible<'a>,
}

pub(super) fn desired(inputs: &Inputs<'_>) -> BTreeMap<IpAddr, L2Ip> {
    // Per-node facts that do not depend on the IP, worked out once.
    let views: Vec<NodeView<'_>> = inputs
        .nodes
        .values()
        .filter(|node| node.may_announce())
        .filter_map(|node| {
            let interfaces = inputs
                .interfaces_of(node)?
                .iter()
                .filter(|i| i.up)
                .map(|i| (i, inputs.exclusions.excludes(&i.name)))
                .collect();
            Some(NodeView { node, interfaces })
        })
        .collect();
    // Every (Service, IP) that an L2Advertisement covers, with those advertisements.
    let mut covered: Vec<Covered<'_>> = Vec::new();
    for (index, service) in inputs.services.iter().enumerate() {
        for ip in distinct_ips(service) {
            let advertisements = advertisements_for(inputs, service, ip);
            if !advertisements.is_empty() {
                covered.push(Covered {
                    index,
                    ip,
                    advertisements,
                });
            }
        }
    }
    let mut covered_of: BTreeMap<usize, Vec<&Covered<'_>>> = BTreeMap::new();
    for entry in &covered {
        covered_of.entry(entry.index).or_default().push(entry);
    }

    // One group at a time, so only that group's eligibility maps are held in memory.
    let mut decisions = BTreeMap::new();
    for (key, members) in groups(inputs.services, &covered) {
        let mut ips: BTreeMap<IpAddr, GroupIp<'_>> = BTreeMap::new();
        let entries = members
            .iter()
            .filter_map(|member| covered_of.get(member))
            .flatten();
        for entry in entries {
            let Some(service) = inputs.services.get(entry.index) else {
                continue;
            };
            let eligible: Eligible<'_> = views
                .iter()
                .filter_map(|view| {
                    let fit = fit(inputs, view, service, entry.ip, &entry.advertisements)?;
                    Some((view.node.name.as_str(), fit))
                })
                .collect();
            match ips.get_mut(&entry.ip) {
                Some(group_ip) => {
                    group_ip.services.insert(service.reference());
                    group_ip.eligible = intersect(&group_ip.eligible, &eligible);
                }
                None => {
                    ips.insert(
                        entry.ip,
                        GroupIp {
                            services: SmallSet::from([service.reference()]),
                            eligible,
                        },
                    );
                }
            }
        }
        decide(inputs, &key, ips, &mut decisions);
    }
    decisions
}

/// A Service IP that L2Advertisements cover: the Service's index and the advertisements.
struct Covered<'c> {
    index: usize,
    ip: IpAddr,
    advertisements: Vec<&'c L2Advertisement>,
}

/// The L2Advertisements that cover `ip`'s pool and select `service`.
fn advertisements_for<'c>(
    inputs: &Inputs<'c>,
    service: &Service<'_>,
    ip: IpAddr,
) -> Vec<&'c L2Advertisement> {
    let Some(pool) = inputs.config.pool_of(ip) else {
        return Vec::new();
    };
    inputs
        .config
        .l2_advertisements
        .values()
        .filter(|a| a.pools.contains(&pool.name) && service.selected_by(&a.service_selectors))
        .collect()
}

/// A node that may announce (neither excluded nor `NetworkUnavailable`, interfaces known), with
/// its up interfaces and whether an exclusion pattern matches each.
struct NodeView<'a> {
    node: &'a Node,
    interfaces: Vec<(&'a Interface, bool)>,
}

/// Whether the node is eligible for `ip` of `service`, and with which weight and interfaces.
fn fit<'a>(
    inputs: &Inputs<'_>,
    view: &NodeView<'a>,
    service: &Service<'_>,
    ip: IpAddr,
    advertisements: &[&L2Advertisement],
) -> Option<Fit<'a>> {
    let node = view.node;
    if !service.served_at(&node.name) {
        return None;
    }
    let mut found: Option<Fit> = None;
    for advertisement in advertisements {
        if !selected(&advertisement.node_selectors, &node.labels) {
            continue;
        }
        let mut usable = announce_interfaces(advertisement, &view.interfaces, ip).peekable();
        if usable.peek().is_none() {
            continue;
        }
        let weight = advertisement
            .preferred_nodes
            .iter()
            .filter(|p| p.selector.matches(&node.labels))
            .map(|p| u32::from(p.weight))
            .max()
            .unwrap_or(0);
        let entry = found.get_or_insert_with(Fit::default);
        entry.weight = entry.weight.max(weight);
        // Only this node's interfaces end up in the output; for the others eligibility is enough.
        if node.name == inputs.node {
            entry.interfaces.extend(usable);
        }
    }
    found
}

/// The up interfaces of a node on which `advertisement` lets it announce `ip`.
fn announce_interfaces<'a, 'v>(
    advertisement: &'v L2Advertisement,
    interfaces: &'v [(&'a Interface, bool)],
    ip: IpAddr,
) -> impl Iterator<Item = &'a str> + 'v {
    interfaces
        .iter()
        .filter(move |(interface, excluded)| {
            if advertisement.interfaces.is_empty() {
                !excluded && interface.subnet_holds(ip)
            } else {
                advertisement.interfaces.contains(&interface.name)
            }
        })
        .map(|(interface, _)| interface.name.as_str())
}

/// Nodes eligible in both, with the higher weight and the interfaces of both.
fn intersect<'a>(a: &Eligible<'a>, b: &Eligible<'a>) -> Eligible<'a> {
    a.iter()
        .filter_map(|(node, fit_a)| {
            let fit_b = b.get(node)?;
            Some((
                *node,
                Fit {
                    weight: fit_a.weight.max(fit_b.weight),
                    interfaces: fit_a.interfaces.union(&fit_b.interfaces).copied().collect(),
                },
            ))
        })
        .collect()
}

/// Election groups: Services linked by a common IP or a common election key (the sharing key),
/// each group named by the smallest key among its Services, with its members' indexes.
fn groups(
    services: &[Service<'_>],
    covered: &[Covered<'_>],
) -> BTreeMap<ElectionKey, BTreeSet<usize>> {
    let claimed: BTreeSet<usize> = covered.iter().map(|c| c.index).collect();
    // Union-find over service indexes.
    let mut parent: BTreeMap<usize, usize> = claimed.iter().map(|i| (*i, *i)).collect();
    let mut first_by_ip: BTreeMap<IpAddr, usize> = BTreeMap::new();
    let mut first_by_key: BTreeMap<ElectionKey, usize> = BTreeMap::new();
    for entry in covered {
        let first = *first_by_ip.entry(entry.ip).or_insert(entry.index);
        union(&mut parent, first, entry.index);
    }
    for index in &claimed {
        if let Some(service) = services.get(*index) {
            let first = *first_by_key.entry(service.election_key()).or_insert(*index);
            union(&mut parent, first, *index);
        }
    }
    let mut by_root: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for index in &claimed {
        by_root
            .entry(root(&parent, *index))
            .or_default()
            .insert(*index);
    }
    by_root
        .into_values()
        .filter_map(|members| {
            let key = members
                .iter()
                .filter_map(|i| services.get(*i))
                .map(Service::election_key)
                .min()?;
            Some((key, members))
        })
        .collect()
}

/// The representative of `i`'s set.
fn root(parent: &BTreeMap<usize, usize>, mut i: usize) -> usize {
    while let Some(&p) = parent.get(&i) {
        if p == i {
            break;
        }
        i = p;
    }
    i
}

/// Merges the sets of `a` and `b`; the smaller root stays the representative.
fn union(parent: &mut BTreeMap<usize, usize>, a: usize, b: usize) {
    let (ra, rb) = (root(parent, a), root(parent, b));
    parent.insert(ra.max(rb), ra.min(rb));
}

/// Elects the owner of a group's IPs and records the decisions.
fn decide(
    inputs: &Inputs<'_>,
    key: &ElectionKey,
    ips: BTreeMap<IpAddr, GroupIp<'_>>,
    decisions: &mut BTreeMap<IpAddr, L2Ip>,
) {
    // Live nodes eligible for every IP of the group, with their highest weight.
    let mut common: Option<BTreeMap<&str, u32>> = None;
    for group_ip in ips.values() {
        let here: BTreeMap<&str, u32> = group_ip
            .eligible
            .iter()
            .filter(|(node, _)| inputs.is_live(node))
            .map(|(node, fit)| (*node, fit.weight))
            .collect();
        common = Some(match common {
            None => here,
            Some(before) => before
                .into_iter()
                .filter_map(|(node, weight)| Some((node, weight.max(*here.get(node)?))))
                .collect(),
        });
    }
    let group_owner = common.and_then(|nodes| {
        elect(
            key,
            nodes
                .into_iter()
                .map(|(node, weight)| Candidate { node, weight }),
        )
    });
    let several = ips.len() > 1;
    for (ip, group_ip) in ips {
        let owner = group_owner.or_else(|| {
            elect(
                key,
                group_ip
                    .eligible
                    .iter()
                    .filter(|(node, _)| inputs.is_live(node))
                    .map(|(node, fit)| Candidate {
                        node,
                        weight: fit.weight,
                    }),
            )
        });
        let interfaces = owner
            .filter(|owner| *owner == inputs.node)
            .and_then(|owner| group_ip.eligible.get(owner))
            .map(|fit| fit.interfaces.iter().map(|i| (*i).to_owned()).collect())
            .unwrap_or_default();
        decisions.insert(
            ip,
            L2Ip {
                services: group_ip.services,
                owner: owner.map(str::to_owned),
                interfaces,
                split: group_owner.is_none() && several && owner.is_some(),
            },
        );
    }
}
