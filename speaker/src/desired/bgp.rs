//! Per-peer routes of this node (SPEC §6); the rules are in the parent module's docs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::addresses::Family;
use ferrolb_config::community::CommunityValue;
use ferrolb_config::model::BgpAdvertisement;
use ipnet::IpNet;

use super::{Inputs, distinct_ips, selected};
use crate::bgp::packet::{Community, LargeCommunity};
use crate::bgp::rib_out::{RouteAttributes, Routes};

pub(super) fn desired(inputs: &Inputs<'_>) -> BTreeMap<String, Routes> {
    let Some(node) = inputs.nodes.get(inputs.node) else {
        return BTreeMap::new();
    };
    let mut routes: BTreeMap<String, BTreeMap<IpNet, RouteAttributes>> = inputs
        .config
        .peers
        .values()
        .filter(|peer| selected(&peer.node_selectors, &node.labels))
        .map(|peer| (peer.name.clone(), BTreeMap::new()))
        .collect();
    if !node.may_announce() {
        return shared(routes);
    }
    for service in inputs.services {
        if !service.served_at(inputs.node) {
            continue;
        }
        for ip in distinct_ips(service) {
            let Some(pool) = inputs.config.pool_of(ip) else {
                continue;
            };
            let advertisements = inputs.config.bgp_advertisements.values().filter(|a| {
                a.pools.contains(&pool.name)
                    && service.selected_by(&a.service_selectors)
                    && selected(&a.node_selectors, &node.labels)
            });
            for advertisement in advertisements {
                let Some(prefix) = aggregate(ip, advertisement) else {
                    continue;
                };
                let attributes = attributes(advertisement);
                for peer in &advertisement.peers {
                    if let Some(peer_routes) = routes.get_mut(peer) {
                        merge(peer_routes.entry(prefix).or_default(), &attributes);
                    }
                }
            }
        }
    }
    shared(routes)
}

fn shared(routes: BTreeMap<String, BTreeMap<IpNet, RouteAttributes>>) -> BTreeMap<String, Routes> {
    routes
        .into_iter()
        .map(|(peer, routes)| (peer, Routes::from(routes)))
        .collect()
}

/// `ip` masked to the advertisement's aggregation length for its family.
fn aggregate(ip: IpAddr, advertisement: &BgpAdvertisement) -> Option<IpNet> {
    IpNet::new(ip, advertisement.aggregation_length(Family::of(ip)))
        .ok()
        .map(|net| net.trunc())
}

/// The path attributes an advertisement asks for.
fn attributes(advertisement: &BgpAdvertisement) -> RouteAttributes {
    let mut attributes = RouteAttributes {
        local_pref: advertisement.local_pref,
        ..RouteAttributes::default()
    };
    for value in &advertisement.communities {
        match *value {
            CommunityValue::Standard(asn, value) => {
                attributes.communities.insert(Community::new(asn, value));
            }
            CommunityValue::Large(global_admin, local_data_1, local_data_2) => {
                attributes.large_communities.insert(LargeCommunity {
                    global_admin,
                    local_data_1,
                    local_data_2,
                });
            }
        }
    }
    attributes
}

/// Adds `more` to a prefix's attributes: communities unioned, the highest LOCAL_PREF kept.
fn merge(into: &mut RouteAttributes, more: &RouteAttributes) {
    into.communities.extend(more.communities.iter().copied());
    into.large_communities
        .extend(more.large_communities.iter().copied());
    into.local_pref = into.local_pref.max(more.local_pref);
}
