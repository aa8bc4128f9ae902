//! IPv6 Neighbor Discovery (RFC 4861) Neighbor Solicitation and Neighbor Advertisement, carried in
//! Ethernet + IPv6 + ICMPv6, as a pure codec.
//!
//! ```text
//! Ethernet: dst(6) src(6) ethertype 0x86dd(2)
//! IPv6 (RFC 8200 §3): version 6 | traffic class | flow label | payload length | next header 58 |
//!                     hop limit 255 | source (16) | destination (16)      — no extension headers
//! ICMPv6, RFC 4861 §4.3 Neighbor Solicitation / §4.4 Neighbor Advertisement:
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Type 135/136 |     Code 0    |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|S|O|                     Reserved (NS: all 32 bits reserved) |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Target Address (16)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Options ...  §4.6.1: Type 1 (Source) / 2 (Target) Link-Layer Address,
//! |                Length 1 (units of 8 octets), 6-octet MAC
//! +-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Decoding applies the validity checks of RFC 4861 §7.1.1 (NS) and §7.1.2 (NA): hop limit 255, valid
//! ICMPv6 checksum (RFC 4443 §2.3), code 0, ICMP length ≥ 24, every option length non-zero, target
//! not multicast, no source link-layer option and a solicited-node destination when the source is
//! unspecified, Solicited clear when the destination is multicast. Frames whose IPv6 header is
//! followed by extension headers are rejected ([`NdpError::NextHeader`]); Linux never puts any in
//! front of NS/NA. Unknown options are skipped as §4.3/§4.4 require. Decoding never panics on any
//! input.

use std::net::Ipv6Addr;

use thiserror::Error;

use super::ethernet::{ETHERTYPE_IPV6, EthernetHeader, MacAddr};

/// IPv6 next-header value of ICMPv6.
const NEXT_HEADER_ICMPV6: u8 = 58;
/// RFC 4861 §7.1.1: "The IP Hop Limit field has a value of 255".
pub const NDP_HOP_LIMIT: u8 = 255;
const IPV6_HEADER_LEN: usize = 40;
/// ICMPv6 type, code, checksum, flags/reserved and target address.
const NDP_FIXED_LEN: usize = 24;
const TYPE_NEIGHBOR_SOLICITATION: u8 = 135;
const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// RFC 4861 §4.6.1 option types.
const OPTION_SOURCE_LINK_LAYER: u8 = 1;
const OPTION_TARGET_LINK_LAYER: u8 = 2;

/// ff02::1, the link-local all-nodes multicast address (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Solicited-node multicast address of `ip`: ff02::1:ff00:0/104 with the low 24 bits of `ip`
/// (RFC 4291 §2.7.1). A node must join this group to hear solicitations for `ip`.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// Ethernet address of an IPv6 multicast group: 33:33 followed by the last four octets of the
/// group address (RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Flags of a Neighbor Advertisement (RFC 4861 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdvertisementFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a solicitation.
    pub solicited: bool,
    /// O: the advertisement should override an existing cache entry.
    pub override_entry: bool,
}

impl AdvertisementFlags {
    fn to_byte(self) -> u8 {
        (u8::from(self.router) << 7)
            | (u8::from(self.solicited) << 6)
            | (u8::from(self.override_entry) << 5)
    }

    fn from_byte(byte: u8) -> AdvertisementFlags {
        AdvertisementFlags {
            router: byte & 0x80 != 0,
            solicited: byte & 0x40 != 0,
            override_entry: byte & 0x20 != 0,
        }
    }
}

/// The two Neighbor Discovery messages ferrolb speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpMessage {
    /// RFC 4861 §4.3, with the Source Link-Layer Address option if present.
    Solicitation {
        target: Ipv6Addr,
        source_link_layer: Option<MacAddr>,
    },
    /// RFC 4861 §4.4, with the Target Link-Layer Address option if present.
    Advertisement {
        flags: AdvertisementFlags,
        target: Ipv6Addr,
        target_link_layer: Option<MacAddr>,
    },
}

impl NdpMessage {
    /// The address being resolved or advertised.
    pub fn target(&self) -> Ipv6Addr {
        match *self {
            NdpMessage::Solicitation { target, .. } | NdpMessage::Advertisement { target, .. } => {
                target
            }
        }
    }
}

/// Why a frame is not a valid NS or NA.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NdpError {
    #[error("NDP frame too short: {len} octets, need {needed}")]
    ShortFrame { len: usize, needed: usize },
    #[error("not an IPv6 frame: EtherType {ethertype:#06x}")]
    NotIpv6 { ethertype: u16 },
    #[error("IP version {version}, expected 6")]
    IpVersion { version: u8 },
    #[error("IPv6 next header {next_header}, expected ICMPv6 (58) directly")]
    NextHeader { next_header: u8 },
    #[error("IPv6 payload length {payload_len} exceeds the {available} octets received")]
    PayloadLength {
        payload_len: usize,
        available: usize,
    },
    #[error("hop limit {hop_limit}, RFC 4861 §7.1.1 requires 255")]
    HopLimit { hop_limit: u8 },
    #[error("ICMPv6 type {icmp_type} is neither NS (135) nor NA (136)")]
    NotNeighborDiscovery { icmp_type: u8 },
    #[error("ICMPv6 code {code}, RFC 4861 §7.1 requires 0")]
    Code { code: u8 },
    #[error("ICMPv6 checksum {received:#06x}, computed {computed:#06x}")]
    Checksum { received: u16, computed: u16 },
    #[error("NDP option of length zero")]
    ZeroLengthOption,
    #[error("NDP option runs past the end of the message")]
    TruncatedOption,
    #[error("link-layer address option of {len} octets, Ethernet needs 8")]
    LinkLayerOptionLength { len: usize },
    #[error("target address {target} is multicast")]
    MulticastTarget { target: Ipv6Addr },
    #[error("solicitation from the unspecified address carries a source link-layer option")]
    UnspecifiedSourceWithLinkLayer,
    #[error(
        "solicitation from the unspecified address sent to {destination}, not a solicited-node group"
    )]
    UnspecifiedSourceNotToSolicitedNode { destination: Ipv6Addr },
    #[error("solicited advertisement sent to multicast destination {destination}")]
    SolicitedToMulticast { destination: Ipv6Addr },
}

/// One NS or NA frame: Ethernet header, the IPv6 fields that matter, and the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdpFrame {
    pub eth_destination: MacAddr,
    pub eth_source: MacAddr,
    pub ip_source: Ipv6Addr,
    pub ip_destination: Ipv6Addr,
    pub message: NdpMessage,
}

impl NdpFrame {
    /// Neighbor Solicitation for `target` sent to its solicited-node group (address resolution,
    /// RFC 4861 §7.2.2), with the Source Link-Layer Address option.
    pub fn solicitation(mac: MacAddr, source: Ipv6Addr, target: Ipv6Addr) -> NdpFrame {
        let group = solicited_node(target);
        NdpFrame {
            eth_destination: multicast_mac(group),
            eth_source: mac,
            ip_source: source,
            ip_destination: group,
            message: NdpMessage::Solicitation {
                target,
                source_link_layer: Some(mac),
            },
        }
    }

    /// Unsolicited Neighbor Advertisement (RFC 4861 §7.2.6): to all-nodes ff02::1, Override set so
    /// that neighbours replace a cached MAC, Solicited clear, Target Link-Layer Address included.
    pub fn unsolicited_advertisement(mac: MacAddr, ip: Ipv6Addr) -> NdpFrame {
        NdpFrame {
            eth_destination: multicast_mac(ALL_NODES),
            eth_source: mac,
            ip_source: ip,
            ip_destination: ALL_NODES,
            message: NdpMessage::Advertisement {
                flags: AdvertisementFlags {
                    router: false,
                    solicited: false,
                    override_entry: true,
                },
                target: ip,
                target_link_layer: Some(mac),
            },
        }
    }

    /// The advertisement answering this solicitation from `our_mac` (RFC 4861 §7.2.4): "If the
    /// source of the solicitation is the unspecified address, the node MUST set the Solicited flag
    /// to zero and multicast the advertisement to the all-nodes address. Otherwise, the node MUST
    /// set the Solicited flag to one and unicast the advertisement to the Source Address of the
    /// solicitation." Override is set (the target is a unicast VIP, not anycast) and the Target
    /// Link-Layer Address option is always included. `None` when this frame is not an NS.
    pub fn advertisement_reply(&self, our_mac: MacAddr) -> Option<NdpFrame> {
        let NdpMessage::Solicitation {
            target,
            source_link_layer,
        } = self.message
        else {
            return None;
        };
        let from_unspecified = self.ip_source.is_unspecified();
        let (ip_destination, eth_destination) = if from_unspecified {
            (ALL_NODES, multicast_mac(ALL_NODES))
        } else {
            (self.ip_source, source_link_layer.unwrap_or(self.eth_source))
        };
        Some(NdpFrame {
            eth_destination,
            eth_source: our_mac,
            ip_source: target,
            ip_destination,
            message: NdpMessage::Advertisement {
                flags: AdvertisementFlags {
                    router: false,
                    solicited: !from_unspecified,
                    override_entry: true,
                },
                target,
                target_link_layer: Some(our_mac),
            },
        })
    }

    /// The frame as it goes on the wire, hop limit 255 and checksum filled in.
    pub fn encode(&self) -> Vec<u8> {
        let (icmp_type, flags_byte, target, option) = match self.message {
            NdpMessage::Solicitation {
                target,
                source_link_layer,
            } => (
                TYPE_NEIGHBOR_SOLICITATION,
                0,
                target,
                source_link_layer.map(|mac| (OPTION_SOURCE_LINK_LAYER, mac)),
            ),
            NdpMessage::Advertisement {
                flags,
                target,
                target_link_layer,
            } => (
                TYPE_NEIGHBOR_ADVERTISEMENT,
                flags.to_byte(),
                target,
                target_link_layer.map(|mac| (OPTION_TARGET_LINK_LAYER, mac)),
            ),
        };
        let mut icmp = Vec::with_capacity(NDP_FIXED_LEN + 8);
        icmp.extend_from_slice(&[icmp_type, 0, 0, 0, flags_byte, 0, 0, 0]);
        icmp.extend_from_slice(&target.octets());
        if let Some((option_type, mac)) = option {
            icmp.extend_from_slice(&[option_type, 1]);
            icmp.extend_from_slice(&mac.0);
        }
        let checksum = icmpv6_checksum(self.ip_source, self.ip_destination, &icmp);
        icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

        let mut out = Vec::with_capacity(EthernetHeader::LEN + IPV6_HEADER_LEN + icmp.len());
        EthernetHeader {
            destination: self.eth_destination,
            source: self.eth_source,
            ethertype: ETHERTYPE_IPV6,
        }
        .encode_into(&mut out);
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        // At most 32 octets: the cast cannot truncate.
        out.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        out.push(NEXT_HEADER_ICMPV6);
        out.push(NDP_HOP_LIMIT);
        out.extend_from_slice(&self.ip_source.octets());
        out.extend_from_slice(&self.ip_destination.octets());
        out.extend_from_slice(&icmp);
        out
    }

    /// Parses and validates a received frame (RFC 4861 §7.1.1 / §7.1.2); trailing link-layer
    /// padding beyond the IPv6 payload length is ignored.
    pub fn decode(frame: &[u8]) -> Result<NdpFrame, NdpError> {
        let needed = EthernetHeader::LEN + IPV6_HEADER_LEN + NDP_FIXED_LEN;
        let short = || NdpError::ShortFrame {
            len: frame.len(),
            needed,
        };
        let (eth, packet) = EthernetHeader::split(frame).ok_or_else(short)?;
        if eth.ethertype != ETHERTYPE_IPV6 {
            return Err(NdpError::NotIpv6 {
                ethertype: eth.ethertype,
            });
        }
        let (ip_header, after_header) = packet
            .split_first_chunk::<IPV6_HEADER_LEN>()
            .ok_or_else(short)?;
        let version = ip_header[0] >> 4;
        if version != 6 {
            return Err(NdpError::IpVersion { version });
        }
        let next_header = ip_header[6];
        if next_header != NEXT_HEADER_ICMPV6 {
            return Err(NdpError::NextHeader { next_header });
        }
        let payload_len = usize::from(u16::from_be_bytes([ip_header[4], ip_header[5]]));
        let icmp = after_header
            .get(..payload_len)
            .ok_or(NdpError::PayloadLength {
                payload_len,
                available: after_header.len(),
            })?;
        if icmp.len() < NDP_FIXED_LEN {
            return Err(short());
        }
        let hop_limit = ip_header[7];
        let ip_source = ipv6_at(ip_header, 8);
        let ip_destination = ipv6_at(ip_header, 24);

        let icmp_type = icmp[0];
        if icmp_type != TYPE_NEIGHBOR_SOLICITATION && icmp_type != TYPE_NEIGHBOR_ADVERTISEMENT {
            return Err(NdpError::NotNeighborDiscovery { icmp_type });
        }
        // §7.1.1/§7.1.2: "The IP Hop Limit field has a value of 255, i.e., the packet could not
        // possibly have been forwarded by a router."
        if hop_limit != NDP_HOP_LIMIT {
            return Err(NdpError::HopLimit { hop_limit });
        }
        // §7.1.1: "ICMP Checksum is valid."
        let received = u16::from_be_bytes([icmp[2], icmp[3]]);
        if icmpv6_checksum(ip_source, ip_destination, icmp) != 0 {
            let mut zeroed = icmp.to_vec();
            zeroed[2..4].fill(0);
            return Err(NdpError::Checksum {
                received,
                computed: icmpv6_checksum(ip_source, ip_destination, &zeroed),
            });
        }
        // §7.1.1: "ICMP Code is 0."
        if icmp[1] != 0 {
            return Err(NdpError::Code { code: icmp[1] });
        }
        let target = ipv6_at(icmp, 8);
        // §7.1.1/§7.1.2: "Target Address is not a multicast address."
        if target.is_multicast() {
            return Err(NdpError::MulticastTarget { target });
        }
        let wanted_option = if icmp_type == TYPE_NEIGHBOR_SOLICITATION {
            OPTION_SOURCE_LINK_LAYER
        } else {
            OPTION_TARGET_LINK_LAYER
        };
        let link_layer = link_layer_option(&icmp[NDP_FIXED_LEN..], wanted_option)?;
        let message = if icmp_type == TYPE_NEIGHBOR_SOLICITATION {
            // §7.1.1: "If the IP source address is the unspecified address, there is no source
            // link-layer address option in the message."
            if ip_source.is_unspecified() && link_layer.is_some() {
                return Err(NdpError::UnspecifiedSourceWithLinkLayer);
            }
            // §7.1.1: "If the IP source address is the unspecified address, the IP destination
            // address is a solicited-node multicast address."
            if ip_source.is_unspecified() && ip_destination != solicited_node(ip_destination) {
                return Err(NdpError::UnspecifiedSourceNotToSolicitedNode {
                    destination: ip_destination,
                });
            }
            NdpMessage::Solicitation {
                target,
                source_link_layer: link_layer,
            }
        } else {
            let flags = AdvertisementFlags::from_byte(icmp[4]);
            // §7.1.2: "If the IP Destination Address is a multicast address the Solicited flag is
            // zero."
            if ip_destination.is_multicast() && flags.solicited {
                return Err(NdpError::SolicitedToMulticast {
                    destination: ip_destination,
                });
            }
            NdpMessage::Advertisement {
                flags,
                target,
                target_link_layer: link_layer,
            }
        };
        Ok(NdpFrame {
            eth_destination: eth.destination,
            eth_source: eth.source,
            ip_source,
            ip_destination,
            message,
        })
    }
}

fn ipv6_at(bytes: &[u8], at: usize) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[at..at + 16]);
    Ipv6Addr::from(octets)
}

/// Walks the options (RFC 4861 §4.6) and returns the MAC of the first option of `wanted` type.
/// Every option's length must be non-zero (§7.1.1) and fit in the message; other types are skipped.
fn link_layer_option(mut options: &[u8], wanted: u8) -> Result<Option<MacAddr>, NdpError> {
    let mut found = None;
    while let [option_type, length, ..] = *options {
        if length == 0 {
            return Err(NdpError::ZeroLengthOption);
        }
        let len = usize::from(length) * 8;
        let option = options.get(..len).ok_or(NdpError::TruncatedOption)?;
        if option_type == wanted && found.is_none() {
            // §4.6.1: for Ethernet the option is 8 octets, a 6-octet MAC after type and length.
            let mac = option
                .get(2..8)
                .filter(|_| len == 8)
                .ok_or(NdpError::LinkLayerOptionLength { len })?;
            let mut octets = [0u8; 6];
            octets.copy_from_slice(mac);
            found = Some(MacAddr(octets));
        }
        options = &options[len..];
    }
    if options.is_empty() {
        Ok(found)
    } else {
        Err(NdpError::TruncatedOption)
    }
}

/// Internet checksum (RFC 1071) over the IPv6 pseudo-header (RFC 8200 §8.1: source, destination,
/// upper-layer length, next header 58) and `icmp`, as RFC 4443 §2.3 specifies. Computed over a
/// message whose checksum field is zero it gives the value to store; over a received message with
/// its checksum in place it gives zero when the checksum is valid.
pub fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for pair in &mut chunks {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        if let [last] = *chunks.remainder() {
            sum += u32::from(u16::from_be_bytes([last, 0]));
        }
    };
    add(&source.octets());
    add(&destination.octets());
    // Upper-layer length as 32 bits; NDP messages are far below 2^32 octets.
    add(&u32::try_from(icmp.len()).unwrap_or(u32::MAX).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // After folding `sum` fits in 16 bits.
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice,
        icmpv6::NeighborAdvertisementHeader,
    };
    use proptest::prelude::*;

    const OUR_MAC: MacAddr = MacAddr([0x00, 0x00, 0x5e, 0x00, 0x53, 0x01]);
    const CLIENT_MAC: MacAddr = MacAddr([0x00, 0x00, 0x5e, 0x00, 0x53, 0x77]);
    const SERVICE_IP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    const CLIENT_IP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xc8);

    // Checksums computed independently of this module (Python, RFC 1071 one's-complement sum).
    #[rustfmt::skip]
    const UNSOLICITED_NA: [u8; 86] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01,             // eth dst: all-nodes multicast MAC
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x01,             // eth src
        0x86, 0xdd,                                     // IPv6
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, // v6, payload 32, ICMPv6, hop limit 255
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // src 2001:db8::10
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,       // dst ff02::1
        0x88, 0x00, 0x4a, 0x0c,                         // NA, code 0, checksum
        0x20, 0x00, 0x00, 0x00,                         // R=0 S=0 O=1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // target
        0x02, 0x01, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // Target Link-Layer Address
    ];

    #[rustfmt::skip]
    const CLIENT_NS: [u8; 86] = [
        0x33, 0x33, 0xff, 0x00, 0x00, 0x10,             // eth dst: solicited-node MAC
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x77,
        0x86, 0xdd,
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc8, // src 2001:db8::c8
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x10, // ff02::1:ff00:10
        0x87, 0x00, 0x6b, 0xcd,                         // NS, checksum
        0x00, 0x00, 0x00, 0x00,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        0x01, 0x01, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x77, // Source Link-Layer Address
    ];

    #[rustfmt::skip]
    const SOLICITED_NA: [u8; 86] = [
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x77,             // eth dst: the solicitor
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x01,
        0x86, 0xdd,
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc8,
        0x88, 0x00, 0xda, 0x8e,
        0x60, 0x00, 0x00, 0x00,                         // S=1 O=1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        0x02, 0x01, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x01,
    ];

    #[test]
    fn unsolicited_advertisement_matches_golden_bytes() {
        let frame = NdpFrame::unsolicited_advertisement(OUR_MAC, SERVICE_IP);
        assert_eq!(frame.encode(), UNSOLICITED_NA);
        assert_eq!(NdpFrame::decode(&UNSOLICITED_NA), Ok(frame));
    }

    #[test]
    fn solicitation_matches_golden_bytes() {
        let frame = NdpFrame::solicitation(CLIENT_MAC, CLIENT_IP, SERVICE_IP);
        assert_eq!(frame.encode(), CLIENT_NS);
        assert_eq!(NdpFrame::decode(&CLIENT_NS), Ok(frame));
    }

    #[test]
    fn reply_to_solicitation_is_solicited_override_unicast() {
        let ns = NdpFrame::decode(&CLIENT_NS).expect("valid NS");
        let na = ns.advertisement_reply(OUR_MAC).expect("NS gets an NA");
        assert_eq!(na.encode(), SOLICITED_NA);
    }

    #[test]
    fn reply_to_dad_solicitation_goes_to_all_nodes_unsolicited() {
        let dad = NdpFrame {
            ip_source: Ipv6Addr::UNSPECIFIED,
            message: NdpMessage::Solicitation {
                target: SERVICE_IP,
                source_link_layer: None,
            },
            ..NdpFrame::solicitation(CLIENT_MAC, CLIENT_IP, SERVICE_IP)
        };
        let na = dad.advertisement_reply(OUR_MAC).expect("NS gets an NA");
        assert_eq!(na.ip_destination, ALL_NODES);
        assert_eq!(na.eth_destination, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        let NdpMessage::Advertisement { flags, .. } = na.message else {
            panic!("not an NA: {na:?}");
        };
        assert!(!flags.solicited && flags.override_entry);
        assert_eq!(NdpFrame::decode(&na.encode()), Ok(na));
    }

    #[test]
    fn advertisement_gets_no_reply() {
        let na = NdpFrame::unsolicited_advertisement(OUR_MAC, SERVICE_IP);
        assert_eq!(na.advertisement_reply(CLIENT_MAC), None);
    }

    #[test]
    fn solicited_node_address_and_mac_follow_rfc_4291_and_2464() {
        let ip: Ipv6Addr = "2001:db8::abcd:1234:5678".parse().expect("literal");
        let group = solicited_node(ip);
        assert_eq!(
            group,
            "ff02::1:ff34:5678".parse::<Ipv6Addr>().expect("literal")
        );
        assert_eq!(
            multicast_mac(group),
            MacAddr([0x33, 0x33, 0xff, 0x34, 0x56, 0x78])
        );
    }

    fn corrupt(at: usize, value: u8) -> Vec<u8> {
        let mut bytes = UNSOLICITED_NA.to_vec();
        bytes[at] = value;
        bytes
    }

    /// Re-seals the ICMPv6 checksum after a deliberate change, so that a later check is reached.
    fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes[56] = 0;
        bytes[57] = 0;
        let source = ipv6_at(&bytes, 22);
        let destination = ipv6_at(&bytes, 38);
        let checksum = icmpv6_checksum(source, destination, &bytes[54..]);
        bytes[56..58].copy_from_slice(&checksum.to_be_bytes());
        bytes
    }

    #[test]
    fn hop_limit_below_255_is_rejected() {
        assert_eq!(
            NdpFrame::decode(&corrupt(21, 254)),
            Err(NdpError::HopLimit { hop_limit: 254 })
        );
    }

    #[test]
    fn bad_checksum_is_rejected() {
        assert_eq!(
            NdpFrame::decode(&corrupt(57, 0x0d)),
            Err(NdpError::Checksum {
                received: 0x4a0d,
                computed: 0x4a0c
            })
        );
        // A flipped payload bit is caught too.
        assert!(matches!(
            NdpFrame::decode(&corrupt(85, 0x02)),
            Err(NdpError::Checksum { .. })
        ));
    }

    #[test]
    fn malformed_frames_are_rejected_with_their_reason() {
        assert_eq!(
            NdpFrame::decode(&UNSOLICITED_NA[..70]),
            Err(NdpError::PayloadLength {
                payload_len: 32,
                available: 16
            })
        );
        assert_eq!(
            NdpFrame::decode(&UNSOLICITED_NA[..30]),
            Err(NdpError::ShortFrame {
                len: 30,
                needed: 78
            })
        );
        assert_eq!(
            NdpFrame::decode(&corrupt(12, 0x08)),
            Err(NdpError::NotIpv6 { ethertype: 0x08dd })
        );
        assert_eq!(
            NdpFrame::decode(&corrupt(14, 0x40)),
            Err(NdpError::IpVersion { version: 4 })
        );
        assert_eq!(
            NdpFrame::decode(&corrupt(20, 0)),
            Err(NdpError::NextHeader { next_header: 0 })
        );
        assert_eq!(
            NdpFrame::decode(&resealed(corrupt(54, 128))),
            Err(NdpError::NotNeighborDiscovery { icmp_type: 128 })
        );
        assert_eq!(
            NdpFrame::decode(&resealed(corrupt(55, 1))),
            Err(NdpError::Code { code: 1 })
        );
        assert_eq!(
            NdpFrame::decode(&resealed(corrupt(79, 0))),
            Err(NdpError::ZeroLengthOption)
        );
        assert_eq!(
            NdpFrame::decode(&resealed(corrupt(79, 2))),
            Err(NdpError::TruncatedOption)
        );
        assert_eq!(
            NdpFrame::decode(&resealed(corrupt(62, 0xff))),
            Err(NdpError::MulticastTarget {
                target: "ff01:db8::10".parse().expect("literal")
            })
        );
        assert_eq!(
            NdpFrame::decode(&resealed(corrupt(58, 0x60))),
            Err(NdpError::SolicitedToMulticast {
                destination: ALL_NODES
            })
        );
    }

    #[test]
    fn solicitation_from_unspecified_with_link_layer_option_is_rejected() {
        let ns = NdpFrame {
            ip_source: Ipv6Addr::UNSPECIFIED,
            ..NdpFrame::solicitation(CLIENT_MAC, CLIENT_IP, SERVICE_IP)
        };
        assert_eq!(
            NdpFrame::decode(&ns.encode()),
            Err(NdpError::UnspecifiedSourceWithLinkLayer)
        );
    }

    #[test]
    fn solicitation_from_unspecified_to_unicast_is_rejected() {
        let ns = NdpFrame {
            ip_source: Ipv6Addr::UNSPECIFIED,
            ip_destination: SERVICE_IP,
            message: NdpMessage::Solicitation {
                target: SERVICE_IP,
                source_link_layer: None,
            },
            ..NdpFrame::solicitation(CLIENT_MAC, CLIENT_IP, SERVICE_IP)
        };
        assert_eq!(
            NdpFrame::decode(&ns.encode()),
            Err(NdpError::UnspecifiedSourceNotToSolicitedNode {
                destination: SERVICE_IP
            })
        );
    }

    #[test]
    fn unknown_options_are_skipped() {
        // Append a nonce option (type 14, RFC 3971) of 8 octets after the link-layer option.
        let mut bytes = UNSOLICITED_NA.to_vec();
        bytes.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        bytes[19] = 40;
        assert_eq!(
            NdpFrame::decode(&resealed(bytes)),
            Ok(NdpFrame::unsolicited_advertisement(OUR_MAC, SERVICE_IP))
        );
    }

    #[test]
    fn etherparse_reads_what_we_build_and_accepts_our_checksum() {
        let bytes = NdpFrame::unsolicited_advertisement(OUR_MAC, SERVICE_IP).encode();
        let sliced = SlicedPacket::from_ethernet(&bytes).expect("etherparse parses our frame");
        let Some(NetSlice::Ipv6(ip)) = &sliced.net else {
            panic!("not IPv6: {:?}", sliced.net);
        };
        assert_eq!(ip.header().hop_limit(), 255);
        let Some(TransportSlice::Icmpv6(icmp)) = &sliced.transport else {
            panic!("not ICMPv6: {:?}", sliced.transport);
        };
        assert!(icmp.is_checksum_valid(SERVICE_IP.octets(), ALL_NODES.octets()));
        assert_eq!(
            icmp.icmp_type(),
            Icmpv6Type::NeighborAdvertisement(NeighborAdvertisementHeader {
                router: false,
                solicited: false,
                r#override: true,
            })
        );
        assert_eq!(&icmp.payload()[..16], &SERVICE_IP.octets());
    }

    #[test]
    fn we_read_what_etherparse_builds() {
        let mut payload = SERVICE_IP.octets().to_vec();
        payload.extend_from_slice(&[OPTION_SOURCE_LINK_LAYER, 1]);
        payload.extend_from_slice(&CLIENT_MAC.0);
        let group = solicited_node(SERVICE_IP);
        let builder = PacketBuilder::ethernet2(CLIENT_MAC.0, multicast_mac(group).0)
            .ipv6(CLIENT_IP.octets(), group.octets(), 255)
            .icmpv6(Icmpv6Type::NeighborSolicitation);
        let mut bytes = Vec::new();
        builder
            .write(&mut bytes, &payload)
            .expect("etherparse writes the frame");
        assert_eq!(
            NdpFrame::decode(&bytes),
            Ok(NdpFrame::solicitation(CLIENT_MAC, CLIENT_IP, SERVICE_IP))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..140)) {
            let _ = NdpFrame::decode(&bytes);
        }

        #[test]
        fn corrupted_valid_frames_never_panic(at in 0usize..86, value: u8, cut in 0usize..=86) {
            let mut bytes = UNSOLICITED_NA.to_vec();
            bytes[at] = value;
            bytes.truncate(cut);
            let _ = NdpFrame::decode(&bytes);
            let _ = NdpFrame::decode(&resealed_if_long(bytes));
        }

        #[test]
        fn advertisements_round_trip(mac: [u8; 6], ip: [u8; 16]) {
            let ip = Ipv6Addr::from(ip);
            prop_assume!(!ip.is_multicast());
            let frame = NdpFrame::unsolicited_advertisement(MacAddr(mac), ip);
            prop_assert_eq!(NdpFrame::decode(&frame.encode()), Ok(frame));
        }
    }

    fn resealed_if_long(bytes: Vec<u8>) -> Vec<u8> {
        if bytes.len() >= 58 {
            resealed(bytes)
        } else {
            bytes
        }
    }
}
