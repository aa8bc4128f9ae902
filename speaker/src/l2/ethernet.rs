//! Ethernet II framing (IEEE 802.3 clause 3.2.6 "Length/Type" used as EtherType) shared by the ARP and
//! NDP codecs, and the 48-bit MAC address type.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Destination MAC (6 octets)                   |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                     Source MAC (6 octets)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           EtherType           |  payload …
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! Frames arrive from an AF_PACKET socket with the VLAN tag (if any) already stripped by the kernel,
//! so 802.1Q tags are not parsed here. Trailing padding up to the 60-octet minimum is tolerated by the
//! payload decoders, which read their own lengths.

use std::fmt;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff, the Ethernet broadcast address.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00, used where a field is "unknown" (ARP request target hardware address).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six octets in transmission order.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Group bit (least significant bit of the first octet) set: multicast or broadcast.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// EtherType of ARP (RFC 826, IANA "ieee-802-numbers").
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6 (RFC 2464 §3).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The 14-octet Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetHeader {
    pub destination: MacAddr,
    pub source: MacAddr,
    pub ethertype: u16,
}

impl EthernetHeader {
    pub const LEN: usize = 14;

    /// Appends the header to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.destination.0);
        out.extend_from_slice(&self.source.0);
        out.extend_from_slice(&self.ethertype.to_be_bytes());
    }

    /// Splits a frame into its header and payload; `None` when shorter than a header.
    pub fn split(frame: &[u8]) -> Option<(EthernetHeader, &[u8])> {
        let (header, payload) = frame.split_first_chunk::<{ Self::LEN }>()?;
        let mut destination = [0u8; 6];
        let mut source = [0u8; 6];
        destination.copy_from_slice(&header[0..6]);
        source.copy_from_slice(&header[6..12]);
        let ethertype = u16::from_be_bytes([header[12], header[13]]);
        Some((
            EthernetHeader {
                destination: MacAddr(destination),
                source: MacAddr(source),
                ethertype,
            },
            payload,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_displays_as_lowercase_colon_hex() {
        let mac = MacAddr([0x02, 0xab, 0x00, 0x0c, 0xff, 0x01]);
        assert_eq!(mac.to_string(), "02:ab:00:0c:ff:01");
    }

    #[test]
    fn broadcast_is_multicast_and_unicast_is_not() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x02, 0, 0, 0, 0, 1]).is_multicast());
    }

    #[test]
    fn header_round_trips_and_short_frame_is_none() {
        let header = EthernetHeader {
            destination: MacAddr::BROADCAST,
            source: MacAddr([2, 0, 0, 0, 0, 1]),
            ethertype: ETHERTYPE_ARP,
        };
        let mut bytes = Vec::new();
        header.encode_into(&mut bytes);
        bytes.push(0xaa);
        assert_eq!(EthernetHeader::split(&bytes), Some((header, &[0xaa][..])));
        assert_eq!(EthernetHeader::split(&bytes[..13]), None);
    }
}
