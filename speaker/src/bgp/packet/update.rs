//! UPDATE message (RFC 4271 §4.3) with its path attributes (RFC 4271 §5, RFC 4760, RFC 1997,
//! RFC 8092) and the error handling of RFC 4271 §6.3 as revised by RFC 7606.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};

use super::reader::Reader;
use super::{AttributeError, Codec, DecodeError, EncodeError, Family, Recovery, UpdateError};

/// Attribute flag bits (RFC 4271 §4.3).
const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_PARTIAL: u8 = 0x20;
const FLAG_EXTENDED_LENGTH: u8 = 0x10;

const ORIGIN: u8 = 1;
const AS_PATH: u8 = 2;
const NEXT_HOP: u8 = 3;
const MULTI_EXIT_DISC: u8 = 4;
const LOCAL_PREF: u8 = 5;
const ATOMIC_AGGREGATE: u8 = 6;
const AGGREGATOR: u8 = 7;
const COMMUNITIES: u8 = 8;
const MP_REACH_NLRI: u8 = 14;
const MP_UNREACH_NLRI: u8 = 15;
const LARGE_COMMUNITIES: u8 = 32;

/// Reachability information: withdrawn IPv4 routes, path attributes, announced IPv4 routes.
///
/// ```text
/// +-----------------------------------------------------+
/// |   Withdrawn Routes Length (2 octets)                |
/// +-----------------------------------------------------+
/// |   Withdrawn Routes (variable)                       |
/// +-----------------------------------------------------+
/// |   Total Path Attribute Length (2 octets)            |
/// +-----------------------------------------------------+
/// |   Path Attributes (variable)                        |
/// +-----------------------------------------------------+
/// |   Network Layer Reachability Information (variable) |
/// +-----------------------------------------------------+
/// ```
/// IPv6 routes travel in [`MpReach`] / [`MpUnreach`] attributes (RFC 4760).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// IPv4 prefixes withdrawn.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes in wire order.
    pub attributes: Vec<PathAttribute>,
    /// IPv4 prefixes announced with `attributes`.
    pub nlri: Vec<Ipv4Net>,
    /// Attributes dropped while decoding under RFC 7606; never encoded. If any has
    /// [`Recovery::TreatAsWithdraw`], every route this UPDATE announces must be handled as
    /// withdrawn ([`Update::treat_as_withdraw`]).
    pub malformed: Vec<AttributeError>,
}

/// One path attribute (RFC 4271 §4.3 "Path Attributes").
///
/// ```text
///  0                   1
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Attr. Flags  |Attr. Type Code|  Attr. Length (1 or 2 octets), Value
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// Known attributes are encoded with the flags their RFC fixes; the Extended Length bit is set
/// only when the value exceeds 255 octets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathAttribute {
    /// Type 1, well-known mandatory.
    Origin(Origin),
    /// Type 2, well-known mandatory.
    AsPath(AsPath),
    /// Type 3, well-known mandatory for IPv4 NLRI.
    NextHop(Ipv4Addr),
    /// Type 4, optional non-transitive.
    MultiExitDisc(u32),
    /// Type 5, well-known, iBGP only.
    LocalPref(u32),
    /// Type 6, well-known discretionary.
    AtomicAggregate,
    /// Type 7, optional transitive.
    Aggregator(Aggregator),
    /// Type 8, optional transitive (RFC 1997).
    Communities(Vec<Community>),
    /// Type 14, optional non-transitive (RFC 4760 §3).
    MpReach(MpReach),
    /// Type 15, optional non-transitive (RFC 4760 §4).
    MpUnreach(MpUnreach),
    /// Type 32, optional transitive (RFC 8092).
    LargeCommunities(Vec<LargeCommunity>),
    /// An unrecognised optional attribute, kept as received.
    Unknown(RawAttribute),
}

/// An attribute this implementation does not interpret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAttribute {
    /// Flags as received less Extended Length, which the encoder sets from the value length
    /// (the Optional bit is always set: unknown well-known attributes are an error).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// ORIGIN values (RFC 4271 §5.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// 0: interior to the originating AS.
    Igp,
    /// 1: learned by EGP.
    Egp,
    /// 2: learned some other way.
    Incomplete,
}

/// AS_PATH (RFC 4271 §4.3 type 2, RFC 6793 for 4-octet ASNs, RFC 5065 confederation segments).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsPath {
    /// Segments in order.
    pub segments: Vec<AsSegment>,
}

/// One AS_PATH segment (RFC 4271 §4.3 type 2; 4-octet ASNs per RFC 6793 §3).
///
/// ```text
/// +-----------------+-------------------+-------------------------------+
/// | segment type (1)| segment length (1)| segment value (2 or 4 each)   |
/// +-----------------+-------------------+-------------------------------+
/// ```
/// The segment length counts ASNs, not octets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsSegment {
    /// Segment type.
    pub kind: AsSegmentKind,
    /// 1..=255 ASNs.
    pub asns: Vec<u32>,
}

/// AS_PATH segment types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AsSegmentKind {
    /// 1: unordered.
    Set,
    /// 2: ordered.
    Sequence,
    /// 3: RFC 5065.
    ConfedSequence,
    /// 4: RFC 5065.
    ConfedSet,
}

/// AGGREGATOR (RFC 4271 §5.1.7): last AS and BGP speaker that aggregated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aggregator {
    /// AS of the aggregating speaker.
    pub asn: u32,
    /// Its address.
    pub address: Ipv4Addr,
}

/// An RFC 1997 community: a 4-octet value, by convention AS (high 16 bits) and value (low 16
/// bits); the COMMUNITIES attribute is a sequence of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// `asn:value`.
    pub fn new(asn: u16, value: u16) -> Self {
        Community(u32::from(asn) << 16 | u32::from(value))
    }
}

/// An RFC 8092 large community (§3), 12 octets; LARGE_COMMUNITIES is a sequence of them.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                      Global Administrator                     |
/// |                       Local Data Part 1                       |
/// |                       Local Data Part 2                       |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global Administrator (an ASN).
    pub global_admin: u32,
    /// Local Data Part 1.
    pub local_data_1: u32,
    /// Local Data Part 2.
    pub local_data_2: u32,
}

/// MP_REACH_NLRI (RFC 4760 §3).
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Length of Next Hop Network Address (1 octet)            |
/// +---------------------------------------------------------+
/// | Network Address of Next Hop (variable)                  |
/// +---------------------------------------------------------+
/// | Reserved (1 octet)                                      |
/// +---------------------------------------------------------+
/// | Network Layer Reachability Information (variable)       |
/// +---------------------------------------------------------+
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MpReach {
    /// AFI 1 / SAFI 1 with a 4-octet next hop.
    Ipv4Unicast {
        /// Next hop.
        next_hop: Ipv4Addr,
        /// Announced prefixes.
        nlri: Vec<Ipv4Net>,
    },
    /// AFI 2 / SAFI 1 with a global and optionally a link-local next hop (RFC 2545 §3).
    Ipv6Unicast {
        /// Global next hop.
        next_hop: Ipv6Addr,
        /// Link-local next hop (32-octet form).
        link_local: Option<Ipv6Addr>,
        /// Announced prefixes.
        nlri: Vec<Ipv6Net>,
    },
    /// Any other family, kept as received.
    Other {
        /// The family (never IPv4 or IPv6 unicast).
        family: Family,
        /// Next hop octets.
        next_hop: Vec<u8>,
        /// NLRI octets.
        nlri: Vec<u8>,
    },
}

/// MP_UNREACH_NLRI (RFC 4760 §4): AFI (2), SAFI (1), Withdrawn Routes (variable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MpUnreach {
    /// AFI 1 / SAFI 1.
    Ipv4Unicast(Vec<Ipv4Net>),
    /// AFI 2 / SAFI 1.
    Ipv6Unicast(Vec<Ipv6Net>),
    /// Any other family, kept as received.
    Other {
        /// The family (never IPv4 or IPv6 unicast).
        family: Family,
        /// Withdrawn routes octets.
        withdrawn: Vec<u8>,
    },
}

impl Update {
    /// The End-of-RIB marker for `family` (RFC 4724 §2): "For the IPv4 unicast address family,
    /// the End-of-RIB marker is an UPDATE message with the minimum length. For any other address
    /// family, it is an UPDATE message that contains only the MP_UNREACH_NLRI attribute with no
    /// withdrawn routes for that <AFI, SAFI>."
    pub fn end_of_rib(family: Family) -> Update {
        let attributes = match family {
            Family::IPV4_UNICAST => Vec::new(),
            Family::IPV6_UNICAST => vec![PathAttribute::MpUnreach(MpUnreach::Ipv6Unicast(vec![]))],
            family => vec![PathAttribute::MpUnreach(MpUnreach::Other {
                family,
                withdrawn: Vec::new(),
            })],
        };
        Update {
            attributes,
            ..Update::default()
        }
    }

    /// The family this UPDATE marks the End-of-RIB of, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [PathAttribute::MpUnreach(unreach)] => match unreach {
                MpUnreach::Ipv4Unicast(w) if w.is_empty() => Some(Family::IPV4_UNICAST),
                MpUnreach::Ipv6Unicast(w) if w.is_empty() => Some(Family::IPV6_UNICAST),
                MpUnreach::Other { family, withdrawn } if withdrawn.is_empty() => Some(*family),
                _ => None,
            },
            _ => None,
        }
    }

    /// RFC 7606 §2: whether the routes this UPDATE announces must be handled as withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        self.malformed
            .iter()
            .any(|m| m.recovery == Recovery::TreatAsWithdraw)
    }

    pub(super) fn encode_body(&self, out: &mut BytesMut, codec: Codec) -> Result<(), EncodeError> {
        let mut withdrawn =
            Vec::with_capacity(self.withdrawn.iter().map(WirePrefix::wire_len).sum());
        for prefix in &self.withdrawn {
            prefix.put(&mut withdrawn);
        }
        let mut attributes = Vec::new();
        for attribute in &self.attributes {
            attribute.encode(&mut attributes, codec)?;
        }
        let too_long = |length| EncodeError::MessageTooLong {
            message_type: 2,
            length,
        };
        out.put_u16(u16::try_from(withdrawn.len()).map_err(|_| too_long(withdrawn.len()))?);
        out.put_slice(&withdrawn);
        out.put_u16(u16::try_from(attributes.len()).map_err(|_| too_long(attributes.len()))?);
        out.put_slice(&attributes);
        for prefix in &self.nlri {
            prefix.put(out);
        }
        Ok(())
    }
}

impl PathAttribute {
    /// The attribute type code.
    pub fn type_code(&self) -> u8 {
        match self {
            PathAttribute::Origin(_) => ORIGIN,
            PathAttribute::AsPath(_) => AS_PATH,
            PathAttribute::NextHop(_) => NEXT_HOP,
            PathAttribute::MultiExitDisc(_) => MULTI_EXIT_DISC,
            PathAttribute::LocalPref(_) => LOCAL_PREF,
            PathAttribute::AtomicAggregate => ATOMIC_AGGREGATE,
            PathAttribute::Aggregator(_) => AGGREGATOR,
            PathAttribute::Communities(_) => COMMUNITIES,
            PathAttribute::MpReach(_) => MP_REACH_NLRI,
            PathAttribute::MpUnreach(_) => MP_UNREACH_NLRI,
            PathAttribute::LargeCommunities(_) => LARGE_COMMUNITIES,
            PathAttribute::Unknown(raw) => raw.type_code,
        }
    }

    /// Appends the attribute (flags, type, length, value) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>, codec: Codec) -> Result<(), EncodeError> {
        let type_code = self.type_code();
        let mut value = Vec::new();
        let flags = match self {
            PathAttribute::Unknown(raw) => {
                value.extend_from_slice(&raw.value);
                raw.flags & !FLAG_EXTENDED_LENGTH
            }
            known => {
                known.encode_value(&mut value, codec)?;
                expected_flags(type_code).map_or(FLAG_OPTIONAL, |(o, t)| {
                    (if o { FLAG_OPTIONAL } else { 0 }) | if t { FLAG_TRANSITIVE } else { 0 }
                })
            }
        };
        let length = value.len();
        if length > 255 {
            let length = u16::try_from(length)
                .map_err(|_| EncodeError::AttributeTooLong { type_code, length })?;
            out.push(flags | FLAG_EXTENDED_LENGTH);
            out.push(type_code);
            out.extend_from_slice(&length.to_be_bytes());
        } else {
            out.push(flags);
            out.push(type_code);
            out.push(u8::try_from(length).unwrap_or(u8::MAX));
        }
        out.extend_from_slice(&value);
        Ok(())
    }

    fn encode_value(&self, out: &mut Vec<u8>, codec: Codec) -> Result<(), EncodeError> {
        match self {
            PathAttribute::Origin(origin) => out.push(match origin {
                Origin::Igp => 0,
                Origin::Egp => 1,
                Origin::Incomplete => 2,
            }),
            PathAttribute::AsPath(path) => {
                for segment in &path.segments {
                    let count = u8::try_from(segment.asns.len())
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(EncodeError::AsSegmentLength {
                            length: segment.asns.len(),
                        })?;
                    out.push(match segment.kind {
                        AsSegmentKind::Set => 1,
                        AsSegmentKind::Sequence => 2,
                        AsSegmentKind::ConfedSequence => 3,
                        AsSegmentKind::ConfedSet => 4,
                    });
                    out.push(count);
                    for asn in &segment.asns {
                        put_asn(out, *asn, codec)?;
                    }
                }
            }
            PathAttribute::NextHop(address) => out.extend_from_slice(&address.octets()),
            PathAttribute::MultiExitDisc(value) | PathAttribute::LocalPref(value) => {
                out.extend_from_slice(&value.to_be_bytes());
            }
            PathAttribute::AtomicAggregate => {}
            PathAttribute::Aggregator(aggregator) => {
                put_asn(out, aggregator.asn, codec)?;
                out.extend_from_slice(&aggregator.address.octets());
            }
            PathAttribute::Communities(communities) => {
                for community in communities {
                    out.extend_from_slice(&community.0.to_be_bytes());
                }
            }
            PathAttribute::LargeCommunities(communities) => {
                for c in communities {
                    out.extend_from_slice(&c.global_admin.to_be_bytes());
                    out.extend_from_slice(&c.local_data_1.to_be_bytes());
                    out.extend_from_slice(&c.local_data_2.to_be_bytes());
                }
            }
            PathAttribute::MpReach(reach) => reach.encode_value(out)?,
            PathAttribute::MpUnreach(unreach) => unreach.encode_value(out),
            PathAttribute::Unknown(raw) => out.extend_from_slice(&raw.value),
        }
        Ok(())
    }
}

impl MpReach {
    /// The family of this attribute.
    pub fn family(&self) -> Family {
        match self {
            MpReach::Ipv4Unicast { .. } => Family::IPV4_UNICAST,
            MpReach::Ipv6Unicast { .. } => Family::IPV6_UNICAST,
            MpReach::Other { family, .. } => *family,
        }
    }

    fn encode_value(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let family = self.family();
        out.extend_from_slice(&family.afi.to_be_bytes());
        out.push(family.safi);
        match self {
            MpReach::Ipv4Unicast { next_hop, nlri } => {
                out.push(4);
                out.extend_from_slice(&next_hop.octets());
                // RFC 4760 §3: "Reserved: A 1 octet field that MUST be set to 0".
                out.push(0);
                for prefix in nlri {
                    prefix.put(out);
                }
            }
            MpReach::Ipv6Unicast {
                next_hop,
                link_local,
                nlri,
            } => {
                out.push(if link_local.is_some() { 32 } else { 16 });
                out.extend_from_slice(&next_hop.octets());
                if let Some(link_local) = link_local {
                    out.extend_from_slice(&link_local.octets());
                }
                out.push(0);
                for prefix in nlri {
                    prefix.put(out);
                }
            }
            MpReach::Other { next_hop, nlri, .. } => {
                let length =
                    u8::try_from(next_hop.len()).map_err(|_| EncodeError::AttributeTooLong {
                        type_code: MP_REACH_NLRI,
                        length: next_hop.len(),
                    })?;
                out.push(length);
                out.extend_from_slice(next_hop);
                out.push(0);
                out.extend_from_slice(nlri);
            }
        }
        Ok(())
    }
}

impl MpUnreach {
    /// The family of this attribute.
    pub fn family(&self) -> Family {
        match self {
            MpUnreach::Ipv4Unicast(_) => Family::IPV4_UNICAST,
            MpUnreach::Ipv6Unicast(_) => Family::IPV6_UNICAST,
            MpUnreach::Other { family, .. } => *family,
        }
    }

    fn encode_value(&self, out: &mut Vec<u8>) {
        let family = self.family();
        out.extend_from_slice(&family.afi.to_be_bytes());
        out.push(family.safi);
        match self {
            MpUnreach::Ipv4Unicast(prefixes) => {
                prefixes.iter().for_each(|p| p.put(out));
            }
            MpUnreach::Ipv6Unicast(prefixes) => {
                prefixes.iter().for_each(|p| p.put(out));
            }
            MpUnreach::Other { withdrawn, .. } => out.extend_from_slice(withdrawn),
        }
    }
}

fn put_asn(out: &mut Vec<u8>, asn: u32, codec: Codec) -> Result<(), EncodeError> {
    if codec.four_octet_as {
        out.extend_from_slice(&asn.to_be_bytes());
    } else {
        let asn16 = u16::try_from(asn).map_err(|_| EncodeError::AsnNeedsFourOctets { asn })?;
        out.extend_from_slice(&asn16.to_be_bytes());
    }
    Ok(())
}

/// An IP prefix as NLRI carries it (RFC 4271 §4.3, RFC 4760 §5): its length in bits followed by
/// "enough trailing bits to make the end of the field fall on an octet boundary".
pub(crate) trait WirePrefix: Sized {
    /// Octets of the full address.
    const ADDRESS_OCTETS: usize;
    /// Length in bits.
    fn bits(&self) -> u8;
    /// The network address octets (host bits cleared).
    fn network_octets(&self) -> Vec<u8>;
    /// The prefix of `bits` bits over `octets` (`ADDRESS_OCTETS` long), host bits cleared.
    fn from_octets(octets: &[u8], bits: u8) -> Option<Self>;

    /// Octets the prefix takes on the wire.
    fn wire_len(&self) -> usize {
        1 + usize::from(self.bits()).div_ceil(8)
    }

    /// Appends the prefix to `out`.
    fn put<B: BufMut>(&self, out: &mut B) {
        let octets = usize::from(self.bits()).div_ceil(8);
        out.put_u8(self.bits());
        out.put_slice(&self.network_octets()[..octets]);
    }
}

/// Both address families share one implementation; only the address type differs.
macro_rules! wire_prefix {
    ($net:ty, $addr:ty, $octets:literal) => {
        impl WirePrefix for $net {
            const ADDRESS_OCTETS: usize = $octets;
            fn bits(&self) -> u8 {
                self.prefix_len()
            }
            fn network_octets(&self) -> Vec<u8> {
                self.network().octets().to_vec()
            }
            fn from_octets(octets: &[u8], bits: u8) -> Option<Self> {
                let octets: [u8; $octets] = octets.try_into().ok()?;
                Some(<$net>::new(<$addr>::from(octets), bits).ok()?.trunc())
            }
        }
    };
}

wire_prefix!(Ipv4Net, Ipv4Addr, 4);
wire_prefix!(Ipv6Net, Ipv6Addr, 16);

/// Reads a sequence of prefixes; `None` on a length beyond the address size or a truncation.
/// The bits past each length are "irrelevant" (RFC 4271 §4.3) and cleared.
fn read_prefixes<P: WirePrefix>(buf: &[u8]) -> Option<Vec<P>> {
    let mut r = Reader::new(buf);
    let mut prefixes = Vec::new();
    while !r.is_empty() {
        let bits = r.u8()?;
        if usize::from(bits) > P::ADDRESS_OCTETS * 8 {
            return None;
        }
        let significant = r.take(usize::from(bits).div_ceil(8))?;
        let mut octets = vec![0u8; P::ADDRESS_OCTETS];
        octets[..significant.len()].copy_from_slice(significant);
        prefixes.push(P::from_octets(&octets, bits)?);
    }
    Some(prefixes)
}

/// The (Optional, Transitive) flag bits RFC 4271 §5 and the attribute RFCs fix per type.
fn expected_flags(type_code: u8) -> Option<(bool, bool)> {
    match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => Some((false, true)),
        MULTI_EXIT_DISC | MP_REACH_NLRI | MP_UNREACH_NLRI => Some((true, false)),
        AGGREGATOR | COMMUNITIES | LARGE_COMMUNITIES => Some((true, true)),
        _ => None,
    }
}

/// An attribute that could not be accepted, and how the UPDATE survives it (if it does).
type Rejection = (UpdateError, Option<Recovery>);

pub(super) fn decode(body: &[u8], codec: Codec) -> Result<Update, DecodeError> {
    let malformed_list =
        |reason| DecodeError::Update(UpdateError::MalformedAttributeList { reason });
    let mut r = Reader::new(body);
    // RFC 4271 §6.3: "If the Withdrawn Routes Length or Total Attribute Length is too large
    // (i.e., if Withdrawn Routes Length + Total Attribute Length + 23 exceeds the message
    // Length), then the Error Subcode MUST be set to Malformed Attribute List."
    let withdrawn_len = r.u16().ok_or_else(|| malformed_list("truncated"))?;
    let withdrawn = r
        .take(usize::from(withdrawn_len))
        .ok_or_else(|| malformed_list("Withdrawn Routes Length too large"))?;
    let attributes_len = r
        .u16()
        .ok_or_else(|| malformed_list("Withdrawn Routes Length too large"))?;
    let attributes = r
        .take(usize::from(attributes_len))
        .ok_or_else(|| malformed_list("Total Path Attribute Length too large"))?;
    let nlri = r.rest();

    // RFC 7606 §5.3: an NLRI field that cannot be parsed leaves no route to treat as withdrawn,
    // so the session is reset (RFC 4271 §6.3: "the Error Subcode MUST be set to Invalid Network
    // Field").
    let withdrawn = read_prefixes::<Ipv4Net>(withdrawn).ok_or(DecodeError::Update(
        UpdateError::InvalidNetworkField {
            reason: "Withdrawn Routes",
        },
    ))?;
    let nlri = read_prefixes::<Ipv4Net>(nlri).ok_or(DecodeError::Update(
        UpdateError::InvalidNetworkField { reason: "NLRI" },
    ))?;

    let mut update = Update {
        withdrawn,
        nlri,
        ..Update::default()
    };
    let mut seen = BTreeSet::new();
    let mut r = Reader::new(attributes);
    while !r.is_empty() {
        let start = attributes.len() - r.remaining();
        let header = (r.u8(), r.u8());
        let (Some(flags), Some(type_code)) = header else {
            return Err(malformed_list("attribute header truncated"));
        };
        let length = if flags & FLAG_EXTENDED_LENGTH != 0 {
            r.u16().map(usize::from)
        } else {
            r.u8().map(usize::from)
        };
        let value = length
            .and_then(|length| r.take(length))
            .ok_or_else(|| malformed_list("attribute overruns Total Path Attribute Length"))?;
        let whole = attributes[start..attributes.len() - r.remaining()].to_vec();

        // RFC 7606 §3 (g): "If the MP_REACH_NLRI attribute or the MP_UNREACH_NLRI attribute
        // appears more than once in the UPDATE message, then a NOTIFICATION message MUST be sent
        // with the Error Subcode "Malformed Attribute List". If any other attribute ... appears
        // more than once in an UPDATE message, then all the occurrences of the attribute other
        // than the first one SHALL be discarded".
        if !seen.insert(type_code) {
            if matches!(type_code, MP_REACH_NLRI | MP_UNREACH_NLRI) {
                return Err(malformed_list("MP_REACH_NLRI or MP_UNREACH_NLRI repeated"));
            }
            continue;
        }
        match decode_attribute(flags, type_code, value, whole, codec) {
            Ok(attribute) => update.attributes.push(attribute),
            Err((error, Some(recovery))) => {
                update.malformed.push(AttributeError { error, recovery })
            }
            Err((error, None)) => return Err(DecodeError::Update(error)),
        }
    }

    // RFC 7606 §3 (d): "If any of the well-known mandatory attributes are not present in an
    // UPDATE message, then "treat-as-withdraw" MUST be used." NEXT_HOP is mandatory only with
    // IPv4 NLRI (RFC 4760 §3); an UPDATE that announces nothing needs none of them.
    let mut mandatory = Vec::new();
    if !update.nlri.is_empty() {
        mandatory.extend([ORIGIN, AS_PATH, NEXT_HOP]);
    } else if seen.contains(&MP_REACH_NLRI) {
        mandatory.extend([ORIGIN, AS_PATH]);
    }
    for type_code in mandatory {
        if !seen.contains(&type_code) {
            update.malformed.push(AttributeError {
                error: UpdateError::MissingWellKnownAttribute { type_code },
                recovery: Recovery::TreatAsWithdraw,
            });
        }
    }
    Ok(update)
}

fn decode_attribute(
    flags: u8,
    type_code: u8,
    value: &[u8],
    whole: Vec<u8>,
    codec: Codec,
) -> Result<PathAttribute, Rejection> {
    let taw = Some(Recovery::TreatAsWithdraw);
    let discard = Some(Recovery::AttributeDiscard);
    let Some((optional, transitive)) = expected_flags(type_code) else {
        // RFC 4271 §6.3: "If any of the well-known mandatory attributes are not recognized, then
        // the Error Subcode MUST be set to Unrecognized Well-known Attribute."
        if flags & FLAG_OPTIONAL == 0 {
            return Err((
                UpdateError::UnrecognizedWellKnownAttribute {
                    type_code,
                    attribute: whole,
                },
                None,
            ));
        }
        return Ok(PathAttribute::Unknown(RawAttribute {
            flags: flags & !FLAG_EXTENDED_LENGTH,
            type_code,
            value: value.to_vec(),
        }));
    };
    let mp = matches!(type_code, MP_REACH_NLRI | MP_UNREACH_NLRI);
    // RFC 7606 §3 (c): "If the value of either the Optional or Transitive bits in the Attribute
    // Flags is in conflict with their specified values, then the attribute MUST be treated as
    // malformed and the "treat-as-withdraw" approach used, unless the specification for the
    // attribute mandates different handling". For MP_REACH/MP_UNREACH (§5.3) no route can be
    // located reliably, so the session is reset.
    if (flags & FLAG_OPTIONAL != 0) != optional || (flags & FLAG_TRANSITIVE != 0) != transitive {
        let error = UpdateError::AttributeFlags {
            type_code,
            attribute: whole,
        };
        return Err((error, if mp { None } else { taw }));
    }
    // RFC 4271 §4.3: the Partial bit "MUST be set to 0" for well-known and optional
    // non-transitive attributes; only optional transitive ones may carry it.
    if flags & FLAG_PARTIAL != 0 && !(optional && transitive) {
        let error = UpdateError::AttributeFlags {
            type_code,
            attribute: whole,
        };
        return Err((error, if mp { None } else { taw }));
    }
    let length_error = |recovery| {
        Err((
            UpdateError::AttributeLength {
                type_code,
                attribute: whole.clone(),
            },
            recovery,
        ))
    };
    match type_code {
        ORIGIN => match value {
            [0] => Ok(PathAttribute::Origin(Origin::Igp)),
            [1] => Ok(PathAttribute::Origin(Origin::Egp)),
            [2] => Ok(PathAttribute::Origin(Origin::Incomplete)),
            // RFC 7606 §7.1: a wrong length or an undefined value is treat-as-withdraw.
            [_] => Err((UpdateError::InvalidOrigin { attribute: whole }, taw)),
            _ => length_error(taw),
        },
        AS_PATH => decode_as_path(value, codec)
            .map(PathAttribute::AsPath)
            // RFC 7606 §7.2: a malformed AS_PATH is treat-as-withdraw.
            .ok_or((UpdateError::MalformedAsPath { attribute: whole }, taw)),
        NEXT_HOP => match *value {
            [a, b, c, d] => {
                let address = Ipv4Addr::new(a, b, c, d);
                // RFC 4271 §6.3: a NEXT_HOP that is not a valid IP host address is an Invalid
                // NEXT_HOP; RFC 7606 §7.3 makes it treat-as-withdraw.
                if address.is_unspecified() || address.is_broadcast() || address.is_multicast() {
                    Err((UpdateError::InvalidNextHop { attribute: whole }, taw))
                } else {
                    Ok(PathAttribute::NextHop(address))
                }
            }
            _ => length_error(taw),
        },
        // RFC 7606 §7.4 (MED) and §7.5 (LOCAL_PREF): wrong length is treat-as-withdraw.
        MULTI_EXIT_DISC | LOCAL_PREF => match *value {
            [a, b, c, d] => {
                let v = u32::from_be_bytes([a, b, c, d]);
                Ok(if type_code == LOCAL_PREF {
                    PathAttribute::LocalPref(v)
                } else {
                    PathAttribute::MultiExitDisc(v)
                })
            }
            _ => length_error(taw),
        },
        // RFC 7606 §7.6: ATOMIC_AGGREGATE of a length other than 0 is discarded.
        ATOMIC_AGGREGATE if value.is_empty() => Ok(PathAttribute::AtomicAggregate),
        ATOMIC_AGGREGATE => length_error(discard),
        // RFC 7606 §7.7: AGGREGATOR of the wrong length (6, or 8 with 4-octet AS) is discarded.
        AGGREGATOR => {
            let mut r = Reader::new(value);
            let asn = if codec.four_octet_as {
                r.u32()
            } else {
                r.u16().map(u32::from)
            };
            match (asn, r.ipv4(), r.is_empty()) {
                (Some(asn), Some(address), true) => {
                    Ok(PathAttribute::Aggregator(Aggregator { asn, address }))
                }
                _ => length_error(discard),
            }
        }
        // RFC 7606 §7.8: "The error handling of [RFC1997] is revised as follows. A COMMUNITIES
        // attribute will be considered malformed if its length is not a non-zero multiple of 4 ...
        // treat-as-withdraw".
        COMMUNITIES if !value.is_empty() && value.len().is_multiple_of(4) => {
            Ok(PathAttribute::Communities(
                value
                    .chunks_exact(4)
                    .map(|c| Community(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            ))
        }
        COMMUNITIES => length_error(taw),
        // RFC 8092 §5: "A Large Communities attribute SHALL be considered malformed if the
        // length of the Large Communities Attribute value, expressed in octets, is not a non-zero
        // multiple of 12" ... treat-as-withdraw.
        LARGE_COMMUNITIES if !value.is_empty() && value.len().is_multiple_of(12) => {
            Ok(PathAttribute::LargeCommunities(
                value
                    .chunks_exact(12)
                    .map(|c| LargeCommunity {
                        global_admin: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                        local_data_1: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                        local_data_2: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                    })
                    .collect(),
            ))
        }
        LARGE_COMMUNITIES => length_error(taw),
        // RFC 4271 §6.3: "If an optional attribute is recognized, then the value of this
        // attribute MUST be checked. If an error is detected, the attribute MUST be discarded,
        // and the Error Subcode MUST be set to Optional Attribute Error." RFC 7606 §7.11 keeps
        // the session reset for MP_REACH_NLRI / MP_UNREACH_NLRI.
        _ => {
            let decoded = if type_code == MP_REACH_NLRI {
                decode_mp_reach(value).map(PathAttribute::MpReach)
            } else {
                decode_mp_unreach(value).map(PathAttribute::MpUnreach)
            };
            decoded.map_err(|reason| {
                let error = UpdateError::OptionalAttribute {
                    type_code,
                    reason,
                    attribute: whole,
                };
                (error, None)
            })
        }
    }
}

/// RFC 7606 §7.2: a segment with an undefined type, a zero count, or one that overruns the
/// attribute makes the AS_PATH malformed.
fn decode_as_path(value: &[u8], codec: Codec) -> Option<AsPath> {
    let mut r = Reader::new(value);
    let mut segments = Vec::new();
    while !r.is_empty() {
        let kind = match r.u8()? {
            1 => AsSegmentKind::Set,
            2 => AsSegmentKind::Sequence,
            3 => AsSegmentKind::ConfedSequence,
            4 => AsSegmentKind::ConfedSet,
            _ => return None,
        };
        let count = r.u8().filter(|n| *n > 0)?;
        let asns = (0..count)
            .map(|_| {
                if codec.four_octet_as {
                    r.u32()
                } else {
                    r.u16().map(u32::from)
                }
            })
            .collect::<Option<Vec<u32>>>()?;
        segments.push(AsSegment { kind, asns });
    }
    Some(AsPath { segments })
}

fn decode_family(r: &mut Reader<'_>) -> Result<Family, &'static str> {
    let afi = r.u16().ok_or("AFI/SAFI truncated")?;
    let safi = r.u8().ok_or("AFI/SAFI truncated")?;
    Ok(Family { afi, safi })
}

fn decode_mp_reach(value: &[u8]) -> Result<MpReach, &'static str> {
    let mut r = Reader::new(value);
    let family = decode_family(&mut r)?;
    let next_hop_len = r.u8().ok_or("next hop length missing")?;
    let next_hop = r
        .take(usize::from(next_hop_len))
        .ok_or("next hop truncated")?;
    // RFC 4760 §3: "Reserved: A 1 octet field that MUST be set to 0, and SHOULD be ignored upon
    // receipt."
    r.u8().ok_or("reserved octet missing")?;
    let nlri = r.rest();
    let mut nh = Reader::new(next_hop);
    match family {
        Family::IPV4_UNICAST => {
            let next_hop = match next_hop_len {
                4 => nh.ipv4().ok_or("next hop truncated")?,
                // RFC 7606 §7.11: a next hop length the family does not allow is malformed.
                _ => return Err("IPv4 next hop length is not 4"),
            };
            let nlri = read_prefixes::<Ipv4Net>(nlri).ok_or("invalid IPv4 NLRI")?;
            Ok(MpReach::Ipv4Unicast { next_hop, nlri })
        }
        Family::IPV6_UNICAST => {
            // RFC 2545 §3: "the length of the next hop address field is 32 octets" when a
            // link-local address follows the global one, 16 otherwise.
            let (next_hop, link_local) = match next_hop_len {
                16 => (nh.ipv6().ok_or("next hop truncated")?, None),
                32 => (nh.ipv6().ok_or("next hop truncated")?, nh.ipv6()),
                _ => return Err("IPv6 next hop length is neither 16 nor 32"),
            };
            let nlri = read_prefixes::<Ipv6Net>(nlri).ok_or("invalid IPv6 NLRI")?;
            Ok(MpReach::Ipv6Unicast {
                next_hop,
                link_local,
                nlri,
            })
        }
        family => Ok(MpReach::Other {
            family,
            next_hop: next_hop.to_vec(),
            nlri: nlri.to_vec(),
        }),
    }
}

fn decode_mp_unreach(value: &[u8]) -> Result<MpUnreach, &'static str> {
    let mut r = Reader::new(value);
    let family = decode_family(&mut r)?;
    let withdrawn = r.rest();
    match family {
        Family::IPV4_UNICAST => read_prefixes::<Ipv4Net>(withdrawn)
            .map(MpUnreach::Ipv4Unicast)
            .ok_or("invalid IPv4 routes"),
        Family::IPV6_UNICAST => read_prefixes::<Ipv6Net>(withdrawn)
            .map(MpUnreach::Ipv6Unicast)
            .ok_or("invalid IPv6 routes"),
        family => Ok(MpUnreach::Other {
            family,
            withdrawn: withdrawn.to_vec(),
        }),
    }
}
