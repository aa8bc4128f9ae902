//! Per-object rules: each CR on its own becomes a typed value or a list of diagnostics.
//!
//! These are the rules the CRD schema enforces with OpenAPI constraints and CEL (see
//! [`crate::crd`]), implemented again so `ferrolb check` works offline and the controller never
//! trusts that the API server ran them (objects created before a CRD upgrade, or a disabled rule).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::core::{Selector, SelectorExt};

use super::diagnostic::{Diagnostic, ObjectKind, Reason};
use super::{
    BfdProfile, BgpAdvertisementDraft, CommunityRefValue, L2AdvertisementDraft, Peer, PeerAsn,
    Pool, PoolRestriction, PoolSelection, PreferredNode, SecretRef,
};
use crate::addresses::{AddressRange, AddressSet, Family, parse_ip};
use crate::community::CommunityValue;
use crate::crd;
use crate::duration::parse_duration;

/// Collects the diagnostics of one object.
pub(super) struct Check<'a> {
    kind: ObjectKind,
    name: &'a str,
    pub(super) diagnostics: Vec<Diagnostic>,
}

impl<'a> Check<'a> {
    pub(super) fn new(kind: ObjectKind, meta: &'a ObjectMeta) -> Self {
        let mut check = Check {
            kind,
            name: meta.name.as_deref().unwrap_or(""),
            diagnostics: Vec::new(),
        };
        if check.name.is_empty() {
            check.invalid("metadata.name", "metadata.name is required");
        }
        check
    }

    pub(super) fn invalid(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::error(
            self.kind,
            self.name,
            field,
            Reason::Invalid,
            message,
        ));
    }

    fn ok(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// `value` as a `T` when it lies in `min..=max`, else a diagnostic naming the field and range.
    fn in_range<T: TryFrom<i64>>(
        &mut self,
        field: &str,
        value: i64,
        min: i64,
        max: i64,
    ) -> Option<T> {
        if (min..=max).contains(&value)
            && let Ok(v) = T::try_from(value)
        {
            return Some(v);
        }
        self.invalid(
            field,
            format!("{field} must be between {min} and {max}, got {value}"),
        );
        None
    }

    /// Typed selectors; a selector with a bad operator or values is reported and skipped.
    fn selectors(&mut self, field: &str, selectors: &[LabelSelector]) -> Vec<Selector> {
        selectors
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match Selector::try_from(s.clone()) {
                Ok(sel) => Some(sel),
                Err(err) => {
                    self.invalid(
                        format!("{field}[{i}]"),
                        format!("{field}[{i}] is not a valid label selector: {err}"),
                    );
                    None
                }
            })
            .collect()
    }

    fn duration(&mut self, field: &str, value: &str) -> Option<Duration> {
        parse_duration(value)
            .map_err(|err| self.invalid(field, format!("{field}: {err}")))
            .ok()
    }

    fn ip(&mut self, field: &str, value: &str) -> Option<IpAddr> {
        parse_ip(value)
            .map_err(|_| {
                self.invalid(field, format!("{field} must be an IP address such as 192.0.2.1 or 2001:db8::1, got {value:?}"))
            })
            .ok()
    }

    fn non_empty(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.invalid(field, format!("{field} must not be empty"));
        }
    }
}

fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

pub(super) fn pool(
    object: &crd::IPAddressPool,
    namespaces: &[Namespace],
) -> Result<Pool, Vec<Diagnostic>> {
    let mut check = Check::new(ObjectKind::IPAddressPool, &object.metadata);
    let spec = &object.spec;
    if spec.addresses.is_empty() {
        check.invalid(
            "spec.addresses",
            "spec.addresses must list at least one CIDR, range or address",
        );
    }
    let mut ranges = Vec::new();
    for (i, entry) in spec.addresses.iter().enumerate() {
        match AddressRange::parse(&entry.0) {
            Ok(range) => ranges.push(range),
            Err(err) => check.invalid(
                format!("spec.addresses[{i}]"),
                format!("spec.addresses[{i}]: {err}"),
            ),
        }
    }
    let mut priority = None;
    let mut restriction = None;
    if let Some(alloc) = &spec.service_allocation {
        if let Some(p) = alloc.priority {
            priority =
                check.in_range::<u32>("spec.serviceAllocation.priority", p, 0, i64::from(i32::MAX));
        }
        for (i, ns) in alloc.namespaces.iter().enumerate() {
            check.non_empty(&format!("spec.serviceAllocation.namespaces[{i}]"), ns);
        }
        let namespace_selectors = check.selectors(
            "spec.serviceAllocation.namespaceSelectors",
            &alloc.namespace_selectors,
        );
        let service_selectors = check.selectors(
            "spec.serviceAllocation.serviceSelectors",
            &alloc.service_selectors,
        );
        let restricts_namespaces =
            !alloc.namespaces.is_empty() || !alloc.namespace_selectors.is_empty();
        if restricts_namespaces || !service_selectors.is_empty() {
            let mut allowed: BTreeSet<String> = alloc.namespaces.iter().cloned().collect();
            for ns in namespaces {
                let ns_labels = labels(&ns.metadata);
                if namespace_selectors.iter().any(|s| s.matches(&ns_labels)) {
                    allowed.extend(ns.metadata.name.clone());
                }
            }
            restriction = Some(PoolRestriction {
                namespaces: restricts_namespaces.then_some(allowed),
                service_selectors,
            });
        }
    }
    if !check.ok() {
        return Err(check.diagnostics);
    }
    Ok(Pool {
        name: check.name.to_owned(),
        labels: labels(&object.metadata),
        entries: ranges.clone(),
        addresses: AddressSet::from_ranges(ranges),
        auto_assign: spec.auto_assign,
        avoid_buggy_ips: spec.avoid_buggy_ips,
        priority,
        restriction,
    })
}

/// Pools by name and pool selectors, as both advertisement kinds write them.
fn pool_selection(
    check: &mut Check<'_>,
    names: &[String],
    selectors: &[LabelSelector],
) -> PoolSelection {
    for (i, name) in names.iter().enumerate() {
        check.non_empty(&format!("spec.ipAddressPools[{i}]"), name);
    }
    let selectors = check.selectors("spec.ipAddressPoolSelectors", selectors);
    if names.is_empty() && selectors.is_empty() {
        PoolSelection::All
    } else {
        PoolSelection::Some {
            names: names.to_vec(),
            selectors,
        }
    }
}

pub(super) fn l2_advertisement(
    object: &crd::L2Advertisement,
) -> Result<L2AdvertisementDraft, Vec<Diagnostic>> {
    let mut check = Check::new(ObjectKind::L2Advertisement, &object.metadata);
    let spec = &object.spec;
    let pools = pool_selection(
        &mut check,
        &spec.ip_address_pools,
        &spec.ip_address_pool_selectors,
    );
    let node_selectors = check.selectors("spec.nodeSelectors", &spec.node_selectors);
    let service_selectors = check.selectors("spec.serviceSelectors", &spec.service_selectors);
    for (i, interface) in spec.interfaces.iter().enumerate() {
        check.non_empty(&format!("spec.interfaces[{i}]"), interface);
    }
    let mut preferred_nodes = Vec::new();
    for (i, preferred) in spec.preferred_nodes.iter().enumerate() {
        let weight = check.in_range::<u8>(
            &format!("spec.preferredNodes[{i}].weight"),
            preferred.weight,
            1,
            100,
        );
        let selector = check.selectors(
            &format!("spec.preferredNodes[{i}].selector"),
            std::slice::from_ref(&preferred.selector),
        );
        if let (Some(weight), Some(selector)) = (weight, selector.into_iter().next()) {
            preferred_nodes.push(PreferredNode { weight, selector });
        }
    }
    if !check.ok() {
        return Err(check.diagnostics);
    }
    Ok(L2AdvertisementDraft {
        name: check.name.to_owned(),
        pools,
        node_selectors,
        interfaces: spec.interfaces.clone(),
        service_selectors,
        preferred_nodes,
    })
}

pub(super) fn bgp_advertisement(
    object: &crd::BGPAdvertisement,
) -> Result<BgpAdvertisementDraft, Vec<Diagnostic>> {
    let mut check = Check::new(ObjectKind::BGPAdvertisement, &object.metadata);
    let spec = &object.spec;
    let pools = pool_selection(
        &mut check,
        &spec.ip_address_pools,
        &spec.ip_address_pool_selectors,
    );
    let aggregation_length =
        check.in_range::<u8>("spec.aggregationLength", spec.aggregation_length, 0, 32);
    let aggregation_length_v6 = check.in_range::<u8>(
        "spec.aggregationLengthV6",
        spec.aggregation_length_v6,
        0,
        128,
    );
    let local_pref = spec
        .local_pref
        .and_then(|lp| check.in_range::<u32>("spec.localPref", lp, 0, i64::from(u32::MAX)));
    let mut communities = Vec::new();
    for (i, community) in spec.communities.iter().enumerate() {
        let field = format!("spec.communities[{i}]");
        match CommunityValue::parse(&community.0) {
            Ok(value) => communities.push(CommunityRefValue::Value(value)),
            Err(_) if CommunityValue::is_alias_name(&community.0) => {
                communities.push(CommunityRefValue::Alias(community.0.clone()));
            }
            Err(err) => check.invalid(
                &field,
                format!("{field}: {err}, nor a Community alias name"),
            ),
        }
    }
    for (i, peer) in spec.peers.iter().enumerate() {
        check.non_empty(&format!("spec.peers[{i}]"), peer);
    }
    let node_selectors = check.selectors("spec.nodeSelectors", &spec.node_selectors);
    let service_selectors = check.selectors("spec.serviceSelectors", &spec.service_selectors);
    match (check.ok(), aggregation_length, aggregation_length_v6) {
        (true, Some(aggregation_length), Some(aggregation_length_v6)) => {
            Ok(BgpAdvertisementDraft {
                name: check.name.to_owned(),
                pools,
                aggregation_length,
                aggregation_length_v6,
                local_pref,
                communities,
                peers: spec.peers.clone(),
                node_selectors,
                service_selectors,
                raw_node_selectors: spec.node_selectors.clone(),
                raw_service_selectors: spec.service_selectors.clone(),
            })
        }
        _ => Err(check.diagnostics),
    }
}

/// Default ConnectRetryTime (RFC 4271 §10 suggests 120 seconds).
pub const DEFAULT_CONNECT_TIME: Duration = Duration::from_secs(120);
/// Smallest non-zero hold time (RFC 4271 §4.2: zero or at least three seconds).
const MIN_HOLD_TIME: Duration = Duration::from_secs(3);

pub(super) fn peer(object: &crd::BGPPeer) -> Result<Peer, Vec<Diagnostic>> {
    let mut check = Check::new(ObjectKind::BGPPeer, &object.metadata);
    let spec = &object.spec;
    let max_asn = i64::from(u32::MAX);
    let my_asn = check.in_range::<u32>("spec.myASN", spec.my_asn, 1, max_asn);
    let peer_asn = match (spec.peer_asn, spec.dynamic_asn) {
        (Some(asn), None) => check
            .in_range::<u32>("spec.peerASN", asn, 1, max_asn)
            .map(PeerAsn::Fixed),
        (None, Some(crd::DynamicAsn::Internal)) => Some(PeerAsn::Internal),
        (None, Some(crd::DynamicAsn::External)) => Some(PeerAsn::External),
        _ => {
            check.invalid(
                "spec.peerASN",
                "exactly one of spec.peerASN and spec.dynamicASN must be set",
            );
            None
        }
    };
    let address = check.ip("spec.peerAddress", &spec.peer_address.0);
    let source_address = spec
        .source_address
        .as_ref()
        .and_then(|s| check.ip("spec.sourceAddress", &s.0));
    if let (Some(peer), Some(source)) = (address, source_address)
        && Family::of(peer) != Family::of(source)
    {
        check.invalid(
            "spec.sourceAddress",
            "spec.sourceAddress must be of the same IP family as spec.peerAddress",
        );
    }
    let port = check.in_range::<u16>("spec.peerPort", spec.peer_port, 1, 65535);
    let hold_time = check.duration("spec.holdTime", &spec.hold_time.0);
    if let Some(hold) = hold_time
        && !hold.is_zero()
        && hold < MIN_HOLD_TIME
    {
        check.invalid(
            "spec.holdTime",
            "spec.holdTime must be 0s or at least 3s (RFC 4271 section 4.2)",
        );
    }
    let keepalive_time = spec
        .keepalive_time
        .as_ref()
        .and_then(|k| check.duration("spec.keepaliveTime", &k.0));
    if let (Some(hold), Some(keepalive)) = (hold_time, keepalive_time)
        && !hold.is_zero()
        && keepalive > hold
    {
        check.invalid(
            "spec.keepaliveTime",
            "spec.keepaliveTime must not exceed spec.holdTime",
        );
    }
    let connect_time = match &spec.connect_time {
        Some(c) => check.duration("spec.connectTime", &c.0),
        None => Some(DEFAULT_CONNECT_TIME),
    };
    if connect_time.is_some_and(|c| c < Duration::from_secs(1)) {
        check.invalid("spec.connectTime", "spec.connectTime must be at least 1s");
    }
    let router_id = match spec
        .router_id
        .as_ref()
        .and_then(|r| check.ip("spec.routerID", &r.0))
    {
        Some(IpAddr::V4(id)) => Some(id),
        Some(IpAddr::V6(_)) => {
            check.invalid(
                "spec.routerID",
                "spec.routerID must be an IPv4 address (RFC 4271 BGP Identifier)",
            );
            None
        }
        None => None,
    };
    let node_selectors = check.selectors("spec.nodeSelectors", &spec.node_selectors);
    if let Some(secret) = &spec.password_secret {
        check.non_empty("spec.passwordSecret.namespace", &secret.namespace);
        check.non_empty("spec.passwordSecret.name", &secret.name);
    }
    if let Some(profile) = &spec.bfd_profile {
        check.non_empty("spec.bfdProfile", profile);
    }
    let graceful_restart = spec
        .graceful_restart
        .as_ref()
        .and_then(|gr| check.duration("spec.gracefulRestart.restartTime", &gr.restart_time.0));
    if graceful_restart.is_some_and(|t| t < Duration::from_secs(1) || t > Duration::from_secs(4095))
    {
        check.invalid(
            "spec.gracefulRestart.restartTime",
            "spec.gracefulRestart.restartTime must be between 1s and 4095s (RFC 4724 section 3)",
        );
    }
    let ebgp_multi_hop = spec
        .ebgp_multi_hop
        .and_then(|ttl| check.in_range::<u8>("spec.ebgpMultiHop", ttl, 1, 255));
    match (
        check.ok(),
        my_asn,
        peer_asn,
        address,
        port,
        hold_time,
        connect_time,
    ) {
        (
            true,
            Some(my_asn),
            Some(peer_asn),
            Some(address),
            Some(port),
            Some(hold_time),
            Some(connect_time),
        ) => {
            Ok(Peer {
                name: check.name.to_owned(),
                my_asn,
                peer_asn,
                address,
                port,
                source_address,
                hold_time,
                // RFC 4271 §10: a reasonable KeepaliveTime is a third of the hold time.
                keepalive_time: keepalive_time.unwrap_or(hold_time / 3),
                connect_time,
                router_id,
                node_selectors,
                password_secret: spec.password_secret.as_ref().map(|s| SecretRef {
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                }),
                bfd_profile: spec.bfd_profile.clone(),
                graceful_restart,
                ebgp_multi_hop,
                dual_stack_address_family: spec.dual_stack_address_family,
                passive: spec.passive,
            })
        }
        _ => Err(check.diagnostics),
    }
}

pub(super) fn bfd_profile(object: &crd::BFDProfile) -> Result<BfdProfile, Vec<Diagnostic>> {
    let mut check = Check::new(ObjectKind::BFDProfile, &object.metadata);
    let spec = &object.spec;
    let receive = check.in_range::<u64>("spec.receiveInterval", spec.receive_interval, 10, 60_000);
    let transmit =
        check.in_range::<u64>("spec.transmitInterval", spec.transmit_interval, 10, 60_000);
    let multiplier = check.in_range::<u8>("spec.detectMultiplier", spec.detect_multiplier, 2, 255);
    let minimum_ttl = check.in_range::<u8>("spec.minimumTtl", spec.minimum_ttl, 1, 255);
    match (check.ok(), receive, transmit, multiplier, minimum_ttl) {
        (true, Some(receive), Some(transmit), Some(detect_multiplier), Some(minimum_ttl)) => {
            Ok(BfdProfile {
                name: check.name.to_owned(),
                receive_interval: Duration::from_millis(receive),
                transmit_interval: Duration::from_millis(transmit),
                detect_multiplier,
                passive_mode: spec.passive_mode,
                minimum_ttl,
            })
        }
        _ => Err(check.diagnostics),
    }
}

/// The aliases of one `Community` object, in order, with their field index.
pub(super) fn community(
    object: &crd::Community,
) -> Result<Vec<(usize, String, CommunityValue)>, Vec<Diagnostic>> {
    let mut check = Check::new(ObjectKind::Community, &object.metadata);
    let mut aliases = Vec::new();
    if object.spec.communities.is_empty() {
        check.invalid(
            "spec.communities",
            "spec.communities must define at least one alias",
        );
    }
    for (i, alias) in object.spec.communities.iter().enumerate() {
        let name_field = format!("spec.communities[{i}].name");
        if !CommunityValue::is_alias_name(&alias.name) {
            check.invalid(
                &name_field,
                format!("{name_field} must be a lowercase name of letters, digits, '-' and '.' (at most 63), got {:?}", alias.name),
            );
        }
        let value_field = format!("spec.communities[{i}].value");
        match CommunityValue::parse(&alias.value.0) {
            Ok(value) => aliases.push((i, alias.name.clone(), value)),
            Err(err) => check.invalid(&value_field, format!("{value_field}: {err}")),
        }
    }
    if check.ok() {
        Ok(aliases)
    } else {
        Err(check.diagnostics)
    }
}
