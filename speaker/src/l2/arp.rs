//! ARP for Ethernet and IPv4 (RFC 826), including the Ethernet header, as a pure codec.
//!
//! ```text
//! Ethernet: dst(6) src(6) ethertype 0x0806(2)
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Hardware type (ar$hrd)    |     Protocol type (ar$pro)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | HW len (ar$hln)| Proto len (ar$pln)|      Opcode (ar$op)      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |              Sender hardware address (ar$sha, 6)              |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               | Sender protocol address (spa) |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      spa (cont.)              | Target hardware address (tha) |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                  tha (cont.)                                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |              Target protocol address (ar$tpa, 4)              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Only hardware type 1 (Ethernet, hln 6) with protocol type 0x0800 (IPv4, pln 4) is accepted; every
//! other combination is an [`ArpError`]. Decoding never panics on any input. Encoding produces the
//! 42-octet frame without padding; the kernel pads short frames to the 60-octet minimum on send, and the
//! decoder ignores such trailing padding on receive.
//!
//! Gratuitous ARP: RFC 5227 §3 "ARP Announcement" is a broadcast *request* with sender and target
//! protocol address both set to the announced address and the target hardware address zero.
//! RFC 5944 §4.6 also allows a broadcast *reply*, where the target hardware address is set to the
//! sender's own link-layer address as well. ferrolb sends both kinds because hosts differ in which
//! one they honour.

use std::net::Ipv4Addr;

use thiserror::Error;

use super::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4, EthernetHeader, MacAddr};

/// ar$hrd value for Ethernet (RFC 826, IANA "Hardware Types").
const HARDWARE_ETHERNET: u16 = 1;
/// Length of the ARP body for Ethernet/IPv4: 8 fixed octets + 2 × (6 + 4).
const ARP_BODY_LEN: usize = 28;

/// What an ARP message asks or answers (ar$op, RFC 826).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
}

impl ArpOperation {
    const fn code(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        }
    }
}

/// Why a frame is not a well-formed Ethernet/IPv4 ARP frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArpError {
    #[error("ARP frame too short: {len} octets, need {needed}")]
    ShortFrame { len: usize, needed: usize },
    #[error("not an ARP frame: EtherType {ethertype:#06x}")]
    NotArp { ethertype: u16 },
    #[error("unsupported ARP hardware type {hardware_type} (only Ethernet = 1)")]
    HardwareType { hardware_type: u16 },
    #[error("unsupported ARP protocol type {protocol_type:#06x} (only IPv4 = 0x0800)")]
    ProtocolType { protocol_type: u16 },
    #[error("ARP hardware address length {len}, Ethernet needs 6")]
    HardwareLength { len: u8 },
    #[error("ARP protocol address length {len}, IPv4 needs 4")]
    ProtocolLength { len: u8 },
    #[error("unknown ARP operation {operation}")]
    Operation { operation: u16 },
}

/// One Ethernet/IPv4 ARP frame, Ethernet header included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFrame {
    /// Ethernet destination (broadcast for requests and announcements).
    pub eth_destination: MacAddr,
    /// Ethernet source; normally equal to `sender_mac`.
    pub eth_source: MacAddr,
    pub operation: ArpOperation,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpFrame {
    /// Octets of an encoded frame (Ethernet header + ARP body), before link-layer padding.
    pub const LEN: usize = EthernetHeader::LEN + ARP_BODY_LEN;

    /// RFC 5227 §3 ARP Announcement: a broadcast request whose sender and target protocol addresses
    /// are both `ip`, with target hardware address zero ("ignored").
    pub fn gratuitous_request(mac: MacAddr, ip: Ipv4Addr) -> ArpFrame {
        ArpFrame {
            eth_destination: MacAddr::BROADCAST,
            eth_source: mac,
            operation: ArpOperation::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::ZERO,
            target_ip: ip,
        }
    }

    /// RFC 5944 §4.6 gratuitous reply: broadcast, sender and target protocol addresses `ip`, and
    /// "the Target Hardware Address is also set to the link-layer address to which this cache entry
    /// should be updated".
    pub fn gratuitous_reply(mac: MacAddr, ip: Ipv4Addr) -> ArpFrame {
        ArpFrame {
            eth_destination: MacAddr::BROADCAST,
            eth_source: mac,
            operation: ArpOperation::Reply,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: mac,
            target_ip: ip,
        }
    }

    /// The reply to this request, sent from `our_mac`: RFC 826 swaps sender and target, fills in the
    /// sender hardware address and unicasts to the requester. For an RFC 5227 §2.1.1 probe (sender IP
    /// 0.0.0.0) the target protocol address is therefore 0.0.0.0, as the prober expects.
    pub fn reply_from(&self, our_mac: MacAddr) -> ArpFrame {
        ArpFrame {
            eth_destination: self.sender_mac,
            eth_source: our_mac,
            operation: ArpOperation::Reply,
            sender_mac: our_mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }

    /// RFC 5227 §1.1 ARP Probe: a request with an all-zero sender IP address.
    pub fn is_probe(&self) -> bool {
        self.operation == ArpOperation::Request && self.sender_ip.is_unspecified()
    }

    /// RFC 5227 §3 / RFC 5944 §4.6: sender and target protocol address equal (request or reply).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip && !self.sender_ip.is_unspecified()
    }

    /// The frame as it goes on the wire (42 octets, unpadded).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        EthernetHeader {
            destination: self.eth_destination,
            source: self.eth_source,
            ethertype: ETHERTYPE_ARP,
        }
        .encode_into(&mut out);
        out.extend_from_slice(&HARDWARE_ETHERNET.to_be_bytes());
        out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        out.push(6);
        out.push(4);
        out.extend_from_slice(&self.operation.code().to_be_bytes());
        out.extend_from_slice(&self.sender_mac.0);
        out.extend_from_slice(&self.sender_ip.octets());
        out.extend_from_slice(&self.target_mac.0);
        out.extend_from_slice(&self.target_ip.octets());
        out
    }

    /// Parses a received frame; trailing octets (link-layer padding) are ignored.
    pub fn decode(frame: &[u8]) -> Result<ArpFrame, ArpError> {
        let short = ArpError::ShortFrame {
            len: frame.len(),
            needed: Self::LEN,
        };
        let (eth, body) = EthernetHeader::split(frame).ok_or_else(|| short.clone())?;
        if eth.ethertype != ETHERTYPE_ARP {
            return Err(ArpError::NotArp {
                ethertype: eth.ethertype,
            });
        }
        let body: &[u8; ARP_BODY_LEN] = body.first_chunk::<ARP_BODY_LEN>().ok_or(short)?;
        let hardware_type = u16::from_be_bytes([body[0], body[1]]);
        if hardware_type != HARDWARE_ETHERNET {
            return Err(ArpError::HardwareType { hardware_type });
        }
        let protocol_type = u16::from_be_bytes([body[2], body[3]]);
        if protocol_type != ETHERTYPE_IPV4 {
            return Err(ArpError::ProtocolType { protocol_type });
        }
        if body[4] != 6 {
            return Err(ArpError::HardwareLength { len: body[4] });
        }
        if body[5] != 4 {
            return Err(ArpError::ProtocolLength { len: body[5] });
        }
        let operation = match u16::from_be_bytes([body[6], body[7]]) {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            operation => return Err(ArpError::Operation { operation }),
        };
        let mac_at = |at: usize| {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&body[at..at + 6]);
            MacAddr(mac)
        };
        let ip_at = |at: usize| Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]);
        Ok(ArpFrame {
            eth_destination: eth.destination,
            eth_source: eth.source,
            operation,
            sender_mac: mac_at(8),
            sender_ip: ip_at(14),
            target_mac: mac_at(18),
            target_ip: ip_at(24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        ArpEthIpv4Packet, ArpOperation as EpOp, EtherType, Ethernet2Header, NetSlice, SlicedPacket,
    };
    use proptest::prelude::*;

    const OUR_MAC: MacAddr = MacAddr([0x00, 0x00, 0x5e, 0x00, 0x53, 0x01]);
    const CLIENT_MAC: MacAddr = MacAddr([0x00, 0x00, 0x5e, 0x00, 0x53, 0x77]);
    const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);

    #[rustfmt::skip]
    const GRATUITOUS_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // eth dst: broadcast
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // eth src
        0x08, 0x06,                         // EtherType ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // Ethernet, IPv4, hln 6, pln 4
        0x00, 0x01,                         // request
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // sha
        0xc0, 0x00, 0x02, 0x0a,             // spa 192.0.2.10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha zero
        0xc0, 0x00, 0x02, 0x0a,             // tpa 192.0.2.10
    ];

    #[rustfmt::skip]
    const GRATUITOUS_REPLY: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x01,
        0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04,
        0x00, 0x02,                         // reply
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x01,
        0xc0, 0x00, 0x02, 0x0a,
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // tha = own MAC (RFC 5944 §4.6)
        0xc0, 0x00, 0x02, 0x0a,
    ];

    fn client_request() -> ArpFrame {
        ArpFrame {
            eth_destination: MacAddr::BROADCAST,
            eth_source: CLIENT_MAC,
            operation: ArpOperation::Request,
            sender_mac: CLIENT_MAC,
            sender_ip: CLIENT_IP,
            target_mac: MacAddr::ZERO,
            target_ip: SERVICE_IP,
        }
    }

    #[test]
    fn gratuitous_request_matches_golden_bytes() {
        let frame = ArpFrame::gratuitous_request(OUR_MAC, SERVICE_IP);
        assert_eq!(frame.encode(), GRATUITOUS_REQUEST);
        assert_eq!(ArpFrame::decode(&GRATUITOUS_REQUEST), Ok(frame));
        assert!(frame.is_gratuitous());
        assert!(!frame.is_probe());
    }

    #[test]
    fn gratuitous_reply_matches_golden_bytes() {
        let frame = ArpFrame::gratuitous_reply(OUR_MAC, SERVICE_IP);
        assert_eq!(frame.encode(), GRATUITOUS_REPLY);
        assert_eq!(ArpFrame::decode(&GRATUITOUS_REPLY), Ok(frame));
    }

    #[test]
    fn reply_swaps_sender_and_target_and_unicasts_to_requester() {
        let reply = client_request().reply_from(OUR_MAC);
        #[rustfmt::skip]
        let golden: [u8; 42] = [
            0x00, 0x00, 0x5e, 0x00, 0x53, 0x77, // eth dst: requester
            0x00, 0x00, 0x5e, 0x00, 0x53, 0x01,
            0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04,
            0x00, 0x02,
            0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // sha: us
            0xc0, 0x00, 0x02, 0x0a,             // spa: the owned IP
            0x00, 0x00, 0x5e, 0x00, 0x53, 0x77, // tha: requester
            0xc0, 0x00, 0x02, 0xc8,             // tpa: requester's IP
        ];
        assert_eq!(reply.encode(), golden);
    }

    #[test]
    fn reply_to_probe_targets_unspecified_address() {
        let probe = ArpFrame {
            sender_ip: Ipv4Addr::UNSPECIFIED,
            ..client_request()
        };
        assert!(probe.is_probe());
        assert!(!probe.is_gratuitous());
        let reply = probe.reply_from(OUR_MAC);
        assert_eq!(reply.target_ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(reply.sender_ip, SERVICE_IP);
        assert_eq!(reply.eth_destination, CLIENT_MAC);
    }

    #[test]
    fn padded_frame_decodes() {
        let mut padded = GRATUITOUS_REQUEST.to_vec();
        padded.resize(60, 0);
        assert_eq!(
            ArpFrame::decode(&padded),
            Ok(ArpFrame::gratuitous_request(OUR_MAC, SERVICE_IP))
        );
    }

    #[test]
    fn malformed_frames_are_rejected_with_their_reason() {
        let with = |at: usize, value: u8| {
            let mut bytes = GRATUITOUS_REQUEST;
            bytes[at] = value;
            ArpFrame::decode(&bytes)
        };
        assert_eq!(
            ArpFrame::decode(&GRATUITOUS_REQUEST[..41]),
            Err(ArpError::ShortFrame {
                len: 41,
                needed: 42
            })
        );
        assert_eq!(
            ArpFrame::decode(&GRATUITOUS_REQUEST[..10]),
            Err(ArpError::ShortFrame {
                len: 10,
                needed: 42
            })
        );
        assert_eq!(with(13, 0x00), Err(ArpError::NotArp { ethertype: 0x0800 }));
        assert_eq!(
            with(15, 6),
            Err(ArpError::HardwareType { hardware_type: 6 })
        );
        assert_eq!(
            with(16, 0x86),
            Err(ArpError::ProtocolType {
                protocol_type: 0x8600
            })
        );
        assert_eq!(with(18, 8), Err(ArpError::HardwareLength { len: 8 }));
        assert_eq!(with(19, 16), Err(ArpError::ProtocolLength { len: 16 }));
        assert_eq!(with(21, 3), Err(ArpError::Operation { operation: 3 }));
    }

    #[test]
    fn etherparse_reads_what_we_build() {
        let bytes = client_request().reply_from(OUR_MAC).encode();
        let sliced = SlicedPacket::from_ethernet(&bytes).expect("etherparse parses our frame");
        let Some(NetSlice::Arp(arp)) = sliced.net else {
            panic!("etherparse did not see ARP: {:?}", sliced.net);
        };
        let parsed = arp.to_packet().try_eth_ipv4().expect("Ethernet/IPv4 ARP");
        assert_eq!(parsed.operation, EpOp::REPLY);
        assert_eq!(parsed.sender_mac, OUR_MAC.0);
        assert_eq!(parsed.sender_ipv4, SERVICE_IP.octets());
        assert_eq!(parsed.target_mac, CLIENT_MAC.0);
        assert_eq!(parsed.target_ipv4, CLIENT_IP.octets());
    }

    #[test]
    fn we_read_what_etherparse_builds() {
        let eth = Ethernet2Header {
            source: CLIENT_MAC.0,
            destination: MacAddr::BROADCAST.0,
            ether_type: EtherType::ARP,
        };
        let arp = ArpEthIpv4Packet {
            operation: EpOp::REQUEST,
            sender_mac: CLIENT_MAC.0,
            sender_ipv4: CLIENT_IP.octets(),
            target_mac: [0; 6],
            target_ipv4: SERVICE_IP.octets(),
        };
        let mut bytes = eth.to_bytes().to_vec();
        bytes.extend_from_slice(&arp.to_bytes());
        assert_eq!(ArpFrame::decode(&bytes), Ok(client_request()));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = ArpFrame::decode(&bytes);
        }

        #[test]
        fn any_frame_round_trips(
            dst: [u8; 6], src: [u8; 6], reply: bool, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4],
        ) {
            let frame = ArpFrame {
                eth_destination: MacAddr(dst),
                eth_source: MacAddr(src),
                operation: if reply { ArpOperation::Reply } else { ArpOperation::Request },
                sender_mac: MacAddr(sha),
                sender_ip: Ipv4Addr::from(spa),
                target_mac: MacAddr(tha),
                target_ip: Ipv4Addr::from(tpa),
            };
            prop_assert_eq!(ArpFrame::decode(&frame.encode()), Ok(frame));
        }
    }
}
