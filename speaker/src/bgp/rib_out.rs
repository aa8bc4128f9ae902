//! Per-peer Adj-RIB-Out (RFC 4271 §3.2, §9.2), pure.
//!
//! Contract: [`AdjRibOut::sync`] takes the complete set of routes this speaker wants the peer to
//! have and returns the UPDATE messages that move the peer from what was last sent to exactly
//! that set: withdrawals for routes that went away, announcements for new routes and for routes
//! whose attributes changed (an announcement implicitly replaces the previous one, RFC 4271
//! §3.1), and nothing for the rest. Prefixes with identical attributes share a message; every
//! message fits in 4096 octets. The first sync of a session ends with End-of-RIB for each
//! negotiated family (RFC 4724 §2). IPv4 routes travel in the classic NLRI field, IPv6 routes in
//! MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760); LOCAL_PREF goes to internal peers only
//! (RFC 4271 §5.1.5). Routes of a family the session did not negotiate are not sent.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::fsm::Negotiated;
use super::packet::{
    AsPath, AsSegment, AsSegmentKind, Codec, Community, EncodeError, Family, HEADER_LEN,
    LargeCommunity, MAX_MESSAGE_LEN, MpReach, MpUnreach, Origin, PathAttribute, Update, WirePrefix,
};

/// RFC 4271 §5.1.5: "LOCAL_PREF is a well-known attribute that SHALL be included in all UPDATE
/// messages that a given BGP speaker sends to other internal peers"; this value is used when the
/// route sets none.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Octets of an UPDATE besides attributes and NLRI: header, Withdrawn Routes Length, Total Path
/// Attribute Length.
const UPDATE_OVERHEAD: usize = HEADER_LEN + 2 + 2;
/// An attribute header with the extended (2-octet) length, the worst case.
const ATTRIBUTE_HEADER: usize = 4;

/// The routes a peer should hold: prefix → attributes.
///
/// Shared, never copied: one map travels from the desired state through the peer set into the
/// session's driver (with 10,000 prefixes a copy per stage and per change was most of the BGP
/// part of the speaker's memory). Equality is cheap when both sides hold the same map.
#[derive(Clone, Debug, Default, Eq)]
pub struct Routes(Arc<BTreeMap<IpNet, RouteAttributes>>);

impl Routes {
    pub fn new() -> Routes {
        Routes::default()
    }
}

impl PartialEq for Routes {
    fn eq(&self, other: &Routes) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl std::ops::Deref for Routes {
    type Target = BTreeMap<IpNet, RouteAttributes>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<BTreeMap<IpNet, RouteAttributes>> for Routes {
    fn from(routes: BTreeMap<IpNet, RouteAttributes>) -> Routes {
        Routes(Arc::new(routes))
    }
}

impl<const N: usize> From<[(IpNet, RouteAttributes); N]> for Routes {
    fn from(routes: [(IpNet, RouteAttributes); N]) -> Routes {
        Routes(Arc::new(BTreeMap::from(routes)))
    }
}

impl FromIterator<(IpNet, RouteAttributes)> for Routes {
    fn from_iter<I: IntoIterator<Item = (IpNet, RouteAttributes)>>(routes: I) -> Routes {
        Routes(Arc::new(routes.into_iter().collect()))
    }
}

/// What the speaker attaches to one announced prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteAttributes {
    /// RFC 1997 communities (a set: order and duplicates carry no meaning).
    pub communities: BTreeSet<Community>,
    /// RFC 8092 large communities.
    pub large_communities: BTreeSet<LargeCommunity>,
    /// LOCAL_PREF for internal peers; [`DEFAULT_LOCAL_PREF`] when `None`.
    pub local_pref: Option<u32>,
}

/// The next hops this speaker announces, per family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHops {
    /// NEXT_HOP for IPv4 routes.
    pub ipv4: Option<Ipv4Addr>,
    /// Global IPv6 next hop.
    pub ipv6: Option<Ipv6Addr>,
    /// Link-local IPv6 next hop, sent beside the global one on a shared segment (RFC 2545 §3).
    pub ipv6_link_local: Option<Ipv6Addr>,
}

/// Why an Adj-RIB-Out cannot be built for a session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RibOutError {
    /// A negotiated family has no next hop to announce.
    #[error("no next hop configured for negotiated family {family:?}")]
    NoNextHop {
        /// The family.
        family: Family,
    },
    /// An UPDATE could not be encoded (an AS that needs 4 octets on a 2-octet session).
    #[error("cannot encode UPDATE: {0}")]
    Encode(#[from] EncodeError),
}

/// The routes sent to one peer during one session.
#[derive(Debug)]
pub struct AdjRibOut {
    local_as: u32,
    internal: bool,
    families: Vec<Family>,
    next_hops: NextHops,
    codec: Codec,
    /// What the peer holds: the last synced [`Routes`] itself when all of it could be sent.
    sent: Routes,
    end_of_rib_sent: bool,
}

impl AdjRibOut {
    /// An empty Adj-RIB-Out for a session that just reached Established.
    pub fn new(
        local_as: u32,
        negotiated: &Negotiated,
        next_hops: NextHops,
    ) -> Result<Self, RibOutError> {
        for family in &negotiated.families {
            let missing = match *family {
                Family::IPV4_UNICAST => next_hops.ipv4.is_none(),
                Family::IPV6_UNICAST => next_hops.ipv6.is_none(),
                _ => false,
            };
            if missing {
                return Err(RibOutError::NoNextHop { family: *family });
            }
        }
        // AS_PATH of eBGP routes carries our AS; it must be encodable on this session.
        if !negotiated.four_octet_as && !negotiated.internal && local_as > u32::from(u16::MAX) {
            return Err(EncodeError::AsnNeedsFourOctets { asn: local_as }.into());
        }
        Ok(AdjRibOut {
            local_as,
            internal: negotiated.internal,
            families: negotiated.families.clone(),
            next_hops,
            codec: negotiated.codec(),
            sent: Routes::new(),
            end_of_rib_sent: false,
        })
    }

    /// What the peer has been sent.
    pub fn advertised(&self) -> &Routes {
        &self.sent
    }

    /// The UPDATEs that bring the peer to `desired`; afterwards `desired` (less the routes of
    /// families not negotiated) counts as sent.
    pub fn sync(&mut self, desired: &Routes) -> Vec<Update> {
        let negotiated = |prefix: &IpNet| self.families.contains(&family_of(prefix));
        let desired: Routes = if desired.keys().all(negotiated) {
            desired.clone()
        } else {
            desired
                .iter()
                .filter(|(prefix, _)| negotiated(prefix))
                .map(|(prefix, attributes)| (*prefix, attributes.clone()))
                .collect()
        };
        let withdrawn: Vec<IpNet> = self
            .sent
            .keys()
            .filter(|p| !desired.contains_key(p))
            .copied()
            .collect();
        let announced: BTreeMap<IpNet, RouteAttributes> = desired
            .iter()
            .filter(|(prefix, attributes)| self.sent.get(prefix) != Some(attributes))
            .map(|(prefix, attributes)| (*prefix, attributes.clone()))
            .collect();

        let mut updates = self.withdrawals(&withdrawn);
        updates.extend(self.announcements(&announced));
        if !self.end_of_rib_sent {
            updates.extend(self.families.iter().map(|f| Update::end_of_rib(*f)));
            self.end_of_rib_sent = true;
        }
        self.sent = desired;
        updates
    }

    /// RFC 2918 §4: on a ROUTE-REFRESH the speaker shall "re-advertise to that peer the
    /// Adj-RIB-Out of the <AFI, SAFI> carried in the message". No End-of-RIB follows.
    pub fn refresh(&self, family: Family) -> Vec<Update> {
        let routes: BTreeMap<IpNet, RouteAttributes> = self
            .sent
            .iter()
            .filter(|(prefix, _)| family_of(prefix) == family)
            .map(|(prefix, attributes)| (*prefix, attributes.clone()))
            .collect();
        self.announcements(&routes)
    }

    fn withdrawals(&self, prefixes: &[IpNet]) -> Vec<Update> {
        let (v4, v6) = split_families(prefixes.iter());
        let mut updates: Vec<Update> = pack(&v4, MAX_MESSAGE_LEN - UPDATE_OVERHEAD)
            .into_iter()
            .map(|withdrawn| Update {
                withdrawn,
                ..Update::default()
            })
            .collect();
        // MP_UNREACH_NLRI header and AFI/SAFI.
        let budget = MAX_MESSAGE_LEN - UPDATE_OVERHEAD - ATTRIBUTE_HEADER - 3;
        updates.extend(pack(&v6, budget).into_iter().map(|prefixes| Update {
            attributes: vec![PathAttribute::MpUnreach(MpUnreach::Ipv6Unicast(prefixes))],
            ..Update::default()
        }));
        updates
    }

    fn announcements(&self, routes: &BTreeMap<IpNet, RouteAttributes>) -> Vec<Update> {
        let mut groups: BTreeMap<&RouteAttributes, Vec<IpNet>> = BTreeMap::new();
        for (prefix, attributes) in routes {
            groups.entry(attributes).or_default().push(*prefix);
        }
        let mut updates = Vec::new();
        for (attributes, prefixes) in groups {
            let (v4, v6) = split_families(prefixes.iter());
            if let (false, Some(next_hop)) = (v4.is_empty(), self.next_hops.ipv4) {
                let mut common = self.path_attributes(attributes);
                common.insert(2, PathAttribute::NextHop(next_hop));
                let budget =
                    (MAX_MESSAGE_LEN - UPDATE_OVERHEAD).saturating_sub(self.encoded_len(&common));
                updates.extend(pack(&v4, budget).into_iter().map(|nlri| Update {
                    attributes: common.clone(),
                    nlri,
                    ..Update::default()
                }));
            }
            if let (false, Some(next_hop)) = (v6.is_empty(), self.next_hops.ipv6) {
                let common = self.path_attributes(attributes);
                let link_local = self.next_hops.ipv6_link_local;
                // MP_REACH_NLRI header, AFI/SAFI, next hop length, next hop(s), reserved.
                let reach =
                    ATTRIBUTE_HEADER + 3 + 1 + 16 * (1 + usize::from(link_local.is_some())) + 1;
                let budget = (MAX_MESSAGE_LEN - UPDATE_OVERHEAD)
                    .saturating_sub(self.encoded_len(&common) + reach);
                updates.extend(pack(&v6, budget).into_iter().map(|nlri| {
                    let mut attributes = common.clone();
                    // Type 14 goes after COMMUNITIES (8) and before LARGE_COMMUNITIES (32),
                    // keeping the ascending order RFC 4271 §5 asks senders for.
                    let at = attributes
                        .iter()
                        .position(|a| a.type_code() > 14)
                        .unwrap_or(attributes.len());
                    attributes.insert(
                        at,
                        PathAttribute::MpReach(MpReach::Ipv6Unicast {
                            next_hop,
                            link_local,
                            nlri,
                        }),
                    );
                    Update {
                        attributes,
                        ..Update::default()
                    }
                }));
            }
        }
        updates
    }

    /// ORIGIN, AS_PATH, LOCAL_PREF (internal peers), COMMUNITIES and LARGE_COMMUNITIES, in type
    /// order; the family's next hop is added by the caller.
    fn path_attributes(&self, attributes: &RouteAttributes) -> Vec<PathAttribute> {
        // RFC 4271 §5.1.2: towards an external peer the speaker "shall prepend its own AS
        // number"; to an internal peer it originates an empty AS_PATH.
        let as_path = if self.internal {
            AsPath::default()
        } else {
            AsPath {
                segments: vec![AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![self.local_as],
                }],
            }
        };
        let mut path = vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(as_path),
        ];
        if self.internal {
            path.push(PathAttribute::LocalPref(
                attributes.local_pref.unwrap_or(DEFAULT_LOCAL_PREF),
            ));
        }
        if !attributes.communities.is_empty() {
            path.push(PathAttribute::Communities(
                attributes.communities.iter().copied().collect(),
            ));
        }
        if !attributes.large_communities.is_empty() {
            path.push(PathAttribute::LargeCommunities(
                attributes.large_communities.iter().copied().collect(),
            ));
        }
        path
    }

    /// Encoded length of `attributes`. Encoding cannot fail here: `new` checked the AS and the
    /// attribute values are far below the length limits; a failure counts as the whole budget.
    fn encoded_len(&self, attributes: &[PathAttribute]) -> usize {
        let mut out = Vec::new();
        for attribute in attributes {
            if attribute.encode(&mut out, self.codec).is_err() {
                return MAX_MESSAGE_LEN;
            }
        }
        out.len()
    }
}

fn family_of(prefix: &IpNet) -> Family {
    match prefix {
        IpNet::V4(_) => Family::IPV4_UNICAST,
        IpNet::V6(_) => Family::IPV6_UNICAST,
    }
}

fn split_families<'a>(prefixes: impl Iterator<Item = &'a IpNet>) -> (Vec<Ipv4Net>, Vec<Ipv6Net>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for prefix in prefixes {
        match prefix {
            IpNet::V4(net) => v4.push(*net),
            IpNet::V6(net) => v6.push(*net),
        }
    }
    (v4, v6)
}

/// Splits `prefixes` into runs whose wire size fits `budget` octets each.
fn pack<P: WirePrefix + Copy>(prefixes: &[P], budget: usize) -> Vec<Vec<P>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut used = 0;
    for prefix in prefixes {
        let size = prefix.wire_len();
        if used + size > budget && !chunk.is_empty() {
            chunks.push(std::mem::take(&mut chunk));
            used = 0;
        }
        chunk.push(*prefix);
        used += size;
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

#[cfg(test)]
mod tests;
