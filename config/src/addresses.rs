//! Address ranges of an `IPAddressPool` (SPEC §2): parsing and interval arithmetic.
//!
//! Contract: pure functions, no I/O. An entry of `spec.addresses` is one of
//! - a CIDR (`198.51.100.0/26`, `2001:db8::/120`); host bits set (`198.51.100.7/24`) is an error,
//!   never silently widened;
//! - a range `start-end` of one family with `start <= end` (both ends inclusive);
//! - a single address.
//!
//! Addresses are held as integers (`u128` for both families, an IPv4 address being its `u32` value)
//! in sorted, merged, inclusive intervals per family, so the allocator can walk "lowest free
//! address first" and overlap checks are a linear merge.
//!
//! Parsing is as strict as the API server's CEL `ip()`/`cidr()` library, so `ferrolb check` and the
//! API server agree: no surrounding whitespace, no leading zeros in IPv4 octets, no zone
//! (`%eth0`), and no IPv4-mapped IPv6 address (`::ffff:192.0.2.1`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why one entry of `spec.addresses` was refused. Every variant carries the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not an address, a CIDR nor a range.
    #[error("{input:?} is not an IP address, a CIDR or a range start-end")]
    Syntax { input: String },
    /// The prefix length after `/` is not a number within the family's width.
    #[error("{input:?} has an invalid prefix length (IPv4: 0-32, IPv6: 0-128)")]
    PrefixLength { input: String },
    /// A CIDR whose address has bits set beyond the prefix.
    #[error("{input:?} has host bits set; did you mean {network}?")]
    HostBitsSet { input: String, network: String },
    /// A range whose start is above its end.
    #[error("{input:?}: range start is after range end")]
    StartAfterEnd { input: String },
    /// A range whose ends are of different families.
    #[error("{input:?}: range start and end are of different IP families")]
    MixedFamilies { input: String },
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), which the API server refuses too.
    #[error("{input:?}: IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address")]
    Ipv4Mapped { input: String },
}

/// IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Address width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The largest address of the family as an integer.
    fn max(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// An address as an integer (an IPv4 address is its `u32` value).
pub fn ip_to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `family` with integer value `value`; `None` when it does not fit the family.
pub fn int_to_ip(family: Family, value: u128) -> Option<IpAddr> {
    match family {
        Family::V4 => u32::try_from(value)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(value))),
    }
}

/// Parses one address as strictly as the API server's CEL `ip()`.
pub fn parse_ip(input: &str) -> Result<IpAddr, AddressError> {
    let ip: IpAddr = input.parse().map_err(|_| AddressError::Syntax {
        input: input.to_owned(),
    })?;
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(AddressError::Ipv4Mapped {
            input: input.to_owned(),
        });
    }
    Ok(ip)
}

/// An inclusive interval of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressRange {
    family: Family,
    start: u128,
    end: u128,
}

impl AddressRange {
    /// The range `start..=end`; `None` when the families differ or `start > end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Option<Self> {
        let family = Family::of(start);
        let same_family = family == Family::of(end);
        let (start, end) = (ip_to_int(start), ip_to_int(end));
        (same_family && start <= end).then_some(AddressRange { family, start, end })
    }

    /// Parses one entry of `spec.addresses`: CIDR, `start-end` range or single address.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        if let Some((addr, prefix)) = input.split_once('/') {
            return Self::parse_cidr(input, addr, prefix);
        }
        if let Some((start, end)) = input.split_once('-') {
            let start = parse_ip(start).map_err(|e| rebind_input(e, input))?;
            let end = parse_ip(end).map_err(|e| rebind_input(e, input))?;
            if Family::of(start) != Family::of(end) {
                return Err(AddressError::MixedFamilies {
                    input: input.to_owned(),
                });
            }
            return AddressRange::new(start, end).ok_or_else(|| AddressError::StartAfterEnd {
                input: input.to_owned(),
            });
        }
        let ip = parse_ip(input)?;
        let value = ip_to_int(ip);
        Ok(AddressRange {
            family: Family::of(ip),
            start: value,
            end: value,
        })
    }

    fn parse_cidr(input: &str, addr: &str, prefix: &str) -> Result<Self, AddressError> {
        let ip = parse_ip(addr).map_err(|e| rebind_input(e, input))?;
        let family = Family::of(ip);
        let bad_prefix = || AddressError::PrefixLength {
            input: input.to_owned(),
        };
        // Digits only: `u8::from_str` would accept a leading `+`, the API server does not.
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_prefix());
        }
        let len: u8 = prefix.parse().map_err(|_| bad_prefix())?;
        if len > family.bits() || (prefix.len() > 1 && prefix.starts_with('0')) {
            return Err(bad_prefix());
        }
        let host_mask = host_mask(family, len);
        let value = ip_to_int(ip);
        let network = value & !host_mask;
        if network != value {
            let shown = int_to_ip(family, network).map_or_else(String::new, |ip| ip.to_string());
            return Err(AddressError::HostBitsSet {
                input: input.to_owned(),
                network: format!("{shown}/{len}"),
            });
        }
        Ok(AddressRange {
            family,
            start: network,
            end: network | host_mask,
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// First address, as an integer.
    pub fn start(&self) -> u128 {
        self.start
    }

    /// Last address (inclusive), as an integer.
    pub fn end(&self) -> u128 {
        self.end
    }

    /// First address.
    pub fn first(&self) -> IpAddr {
        int_to_ip(self.family, self.start).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// Last address.
    pub fn last(&self) -> IpAddr {
        int_to_ip(self.family, self.end).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// Whether the range holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family && (self.start..=self.end).contains(&ip_to_int(ip))
    }

    /// Number of addresses; saturates at `u128::MAX` for the whole IPv6 space (2^128 addresses).
    pub fn size(&self) -> u128 {
        (self.end - self.start).saturating_add(1)
    }

    /// Number of addresses excluding IPv4 addresses ending in `.0` or `.255` when `avoid_buggy_ips`
    /// is set (those confuse old client stacks that take them for network/broadcast addresses).
    pub fn usable_size(&self, avoid_buggy_ips: bool) -> u128 {
        let size = self.size();
        if !avoid_buggy_ips || self.family != Family::V4 {
            return size;
        }
        size - count_with_low_octet(self.start, self.end, 0)
            - count_with_low_octet(self.start, self.end, 255)
    }

    /// The shortest prefix length of a CIDR that covers this range exactly, if the range is one.
    pub fn prefix_len(&self) -> Option<u8> {
        let span = self.end - self.start;
        // A CIDR spans 2^k - 1 (all ones) and starts aligned on its size.
        if span.count_ones() != 128 - span.leading_zeros() || self.start & span != 0 {
            return None;
        }
        let host_bits = u8::try_from(128 - span.leading_zeros()).ok()?;
        Some(self.family.bits() - host_bits)
    }

    /// The longest prefix length among the CIDR blocks that exactly tile this range. A route
    /// aggregate of that length or longer never covers an address outside the range
    /// (e.g. `198.51.100.0/26` gives 26; `203.0.113.10-203.0.113.20` gives 32).
    pub fn longest_block_prefix(&self) -> u8 {
        let bits = u32::from(self.family.bits());
        let mut start = self.start;
        let mut longest = 0;
        loop {
            let span = self.end - start;
            // Host bits of the largest block that fits the remaining span...
            let fits = if span == u128::MAX {
                128
            } else {
                127 - (span + 1).leading_zeros()
            };
            // ...and that starts aligned on its size.
            let aligned = if start == 0 {
                bits
            } else {
                start.trailing_zeros()
            };
            let host_bits = fits.min(aligned).min(bits);
            let prefix = u8::try_from(bits - host_bits).unwrap_or(0);
            longest = longest.max(prefix);
            let block_last = if host_bits >= 128 {
                u128::MAX
            } else {
                start + ((1u128 << host_bits) - 1)
            };
            if block_last >= self.end {
                return longest;
            }
            start = block_last + 1;
        }
    }

    /// Whether the two ranges share at least one address.
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.family == other.family && self.start <= other.end && other.start <= self.end
    }
}

/// Canonical text: a CIDR when the range is one (a single address as itself), else `start-end`.
/// Parsing the text gives the same range back.
impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len() {
            Some(len) if len == self.family.bits() => write!(f, "{}", self.first()),
            Some(len) => write!(f, "{}/{len}", self.first()),
            None => write!(f, "{}-{}", self.first(), self.last()),
        }
    }
}

/// Mask of the host bits of a prefix of `len` bits in `family`.
fn host_mask(family: Family, len: u8) -> u128 {
    let host_bits = u32::from(family.bits() - len);
    if host_bits == 128 {
        u128::MAX
    } else {
        ((1u128 << host_bits) - 1) & family.max()
    }
}

/// How many integers in `start..=end` have `low_octet` as their last byte.
fn count_with_low_octet(start: u128, end: u128, low_octet: u128) -> u128 {
    let upto = |n: u128| {
        if n < low_octet {
            0
        } else {
            (n - low_octet) / 256 + 1
        }
    };
    upto(end) - if start == 0 { 0 } else { upto(start - 1) }
}

/// An error from parsing one end of a range or CIDR, re-labelled with the whole entry.
fn rebind_input(err: AddressError, input: &str) -> AddressError {
    let input = input.to_owned();
    match err {
        AddressError::Ipv4Mapped { .. } => AddressError::Ipv4Mapped { input },
        _ => AddressError::Syntax { input },
    }
}

/// A set of addresses of both families: sorted, merged, inclusive intervals per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressSet {
    v4: Vec<AddressRange>,
    v6: Vec<AddressRange>,
}

impl AddressSet {
    /// The set holding exactly the given ranges (overlapping or adjacent ranges merge).
    pub fn from_ranges(ranges: impl IntoIterator<Item = AddressRange>) -> Self {
        let mut set = AddressSet::default();
        for range in ranges {
            match range.family {
                Family::V4 => set.v4.push(range),
                Family::V6 => set.v6.push(range),
            }
        }
        set.v4 = merge(std::mem::take(&mut set.v4));
        set.v6 = merge(std::mem::take(&mut set.v6));
        set
    }

    /// Parses every entry; on failure returns each bad entry's index and error.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Vec<(usize, AddressError)>> {
        let mut ranges = Vec::new();
        let mut errors = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            match AddressRange::parse(entry) {
                Ok(range) => ranges.push(range),
                Err(err) => errors.push((index, err)),
            }
        }
        if errors.is_empty() {
            Ok(Self::from_ranges(ranges))
        } else {
            Err(errors)
        }
    }

    /// The merged intervals of one family, in ascending order.
    pub fn ranges(&self, family: Family) -> &[AddressRange] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// Whether the set holds no address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether the set holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ranges = self.ranges(Family::of(ip));
        let value = ip_to_int(ip);
        // Intervals are sorted and disjoint: the candidate is the last one starting at or before ip.
        let index = ranges.partition_point(|r| r.start <= value);
        index > 0 && ranges[index - 1].contains(ip)
    }

    /// Number of addresses of `family`, exact, saturating at `u128::MAX` (only reachable by the
    /// whole IPv6 space, 2^128 addresses). With `avoid_buggy_ips`, IPv4 `.0`/`.255` are not counted.
    pub fn capacity(&self, family: Family, avoid_buggy_ips: bool) -> u128 {
        self.ranges(family).iter().fold(0u128, |sum, r| {
            sum.saturating_add(r.usable_size(avoid_buggy_ips))
        })
    }

    /// The first range where the two sets overlap, if any.
    pub fn first_overlap(&self, other: &AddressSet) -> Option<AddressRange> {
        [Family::V4, Family::V6].into_iter().find_map(|family| {
            let (a, b) = (self.ranges(family), other.ranges(family));
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                if a[i].overlaps(&b[j]) {
                    return Some(AddressRange {
                        family,
                        start: a[i].start.max(b[j].start),
                        end: a[i].end.min(b[j].end),
                    });
                }
                if a[i].end < b[j].end {
                    i += 1;
                } else {
                    j += 1;
                }
            }
            None
        })
    }

    /// Whether the two sets share at least one address.
    pub fn overlaps(&self, other: &AddressSet) -> bool {
        self.first_overlap(other).is_some()
    }
}

/// Sorts and merges overlapping or adjacent intervals of one family.
fn merge(mut ranges: Vec<AddressRange>) -> Vec<AddressRange> {
    ranges.sort();
    let mut merged: Vec<AddressRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end.saturating_add(1) => {
                last.end = last.end.max(range.end);
            }
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(s: &str) -> AddressRange {
        AddressRange::parse(s).expect("valid range in test")
    }

    fn set(entries: &[&str]) -> AddressSet {
        AddressSet::parse(entries.iter().copied()).expect("valid set in test")
    }

    #[test]
    fn ipv4_cidr_covers_its_block() {
        let r = range("198.51.100.0/26");
        assert_eq!(r.first().to_string(), "198.51.100.0");
        assert_eq!(r.last().to_string(), "198.51.100.63");
        assert_eq!(r.size(), 64);
    }

    #[test]
    fn ipv6_cidr_covers_its_block() {
        let r = range("2001:db8::/120");
        assert_eq!(r.family(), Family::V6);
        assert_eq!(r.last().to_string(), "2001:db8::ff");
        assert_eq!(r.size(), 256);
    }

    #[test]
    fn range_and_single_address_parse() {
        assert_eq!(range("198.51.100.10-198.51.100.20").size(), 11);
        assert_eq!(range("2001:db8::1").size(), 1);
        assert_eq!(range("192.0.2.5-192.0.2.5").size(), 1);
    }

    #[test]
    fn host_bits_set_is_refused_with_suggestion() {
        assert_eq!(
            AddressRange::parse("198.51.100.7/24"),
            Err(AddressError::HostBitsSet {
                input: "198.51.100.7/24".into(),
                network: "198.51.100.0/24".into()
            })
        );
        assert!(matches!(
            AddressRange::parse("2001:db8::1/64"),
            Err(AddressError::HostBitsSet { .. })
        ));
    }

    #[test]
    fn range_start_after_end_is_refused() {
        assert_eq!(
            AddressRange::parse("192.0.2.20-192.0.2.10"),
            Err(AddressError::StartAfterEnd {
                input: "192.0.2.20-192.0.2.10".into()
            })
        );
        assert!(matches!(
            AddressRange::parse("2001:db8::9-2001:db8::1"),
            Err(AddressError::StartAfterEnd { .. })
        ));
    }

    #[test]
    fn range_of_mixed_families_is_refused() {
        assert_eq!(
            AddressRange::parse("192.0.2.1-2001:db8::1"),
            Err(AddressError::MixedFamilies {
                input: "192.0.2.1-2001:db8::1".into()
            })
        );
    }

    #[test]
    fn garbage_is_a_syntax_error_carrying_the_input() {
        for bad in [
            "",
            "pool",
            "192.0.2",
            "192.0.2.256",
            " 192.0.2.1",
            "192.0.2.01",
            "192.0.2.1-",
            "-192.0.2.1",
            "2001:db8::1%eth0",
        ] {
            assert_eq!(
                AddressRange::parse(bad),
                Err(AddressError::Syntax { input: bad.into() }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_prefix_length_is_refused() {
        for bad in [
            "192.0.2.0/33",
            "192.0.2.0/",
            "192.0.2.0/+8",
            "192.0.2.0/08",
            "192.0.2.0/24/1",
            "2001:db8::/129",
        ] {
            assert_eq!(
                AddressRange::parse(bad),
                Err(AddressError::PrefixLength { input: bad.into() }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_is_refused() {
        assert!(matches!(
            AddressRange::parse("::ffff:192.0.2.1"),
            Err(AddressError::Ipv4Mapped { .. })
        ));
    }

    #[test]
    fn whole_ipv6_space_capacity_saturates() {
        let s = set(&["::/0"]);
        assert_eq!(s.capacity(Family::V6, false), u128::MAX);
        assert_eq!(s.capacity(Family::V4, false), 0);
        assert_eq!(
            set(&["::/1", "8000::/1"]).capacity(Family::V6, false),
            u128::MAX
        );
    }

    #[test]
    fn whole_ipv4_space_capacity_is_exact() {
        assert_eq!(set(&["0.0.0.0/0"]).capacity(Family::V4, false), 1 << 32);
    }

    #[test]
    fn avoid_buggy_ips_excludes_dot_zero_and_dot_255() {
        let s = set(&["192.0.2.0/24"]);
        assert_eq!(s.capacity(Family::V4, false), 256);
        assert_eq!(s.capacity(Family::V4, true), 254);
        assert_eq!(set(&["198.51.100.0/23"]).capacity(Family::V4, true), 508);
        assert_eq!(
            set(&["192.0.2.1-192.0.2.254"]).capacity(Family::V4, true),
            254
        );
        assert_eq!(
            set(&["192.0.2.255-192.0.3.0"]).capacity(Family::V4, true),
            0
        );
        assert_eq!(
            set(&["0.0.0.0/0"]).capacity(Family::V4, true),
            (1 << 32) - 2 * (1 << 24)
        );
    }

    #[test]
    fn avoid_buggy_ips_leaves_ipv6_alone() {
        assert_eq!(set(&["2001:db8::/120"]).capacity(Family::V6, true), 256);
    }

    #[test]
    fn capacity_is_counted_per_family() {
        let s = set(&["192.0.2.0/28", "2001:db8::/124", "203.0.113.1"]);
        assert_eq!(s.capacity(Family::V4, false), 17);
        assert_eq!(s.capacity(Family::V6, false), 16);
    }

    #[test]
    fn overlapping_and_adjacent_entries_merge() {
        let s = set(&["192.0.2.0/25", "192.0.2.128/25", "192.0.2.10-192.0.2.20"]);
        assert_eq!(s.ranges(Family::V4), &[range("192.0.2.0/24")]);
        assert_eq!(s.capacity(Family::V4, false), 256);
    }

    #[test]
    fn overlap_between_sets_is_found() {
        let a = set(&["192.0.2.0/24", "2001:db8::/64"]);
        let b = set(&["192.0.2.200-192.0.3.5"]);
        assert_eq!(a.first_overlap(&b), Some(range("192.0.2.200-192.0.2.255")));
        assert!(a.overlaps(&set(&["2001:db8::ffff"])));
        assert!(!a.overlaps(&set(&["198.51.100.0/24", "2001:db8:1::/64"])));
    }

    #[test]
    fn same_integers_in_different_families_do_not_overlap() {
        assert!(!set(&["0.0.0.0/24"]).overlaps(&set(&["::/120"])));
    }

    #[test]
    fn contains_finds_addresses_in_any_interval() {
        let s = set(&["192.0.2.0/28", "192.0.2.100", "2001:db8::/126"]);
        for ip in ["192.0.2.15", "192.0.2.100", "2001:db8::3"] {
            assert!(s.contains(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["192.0.2.16", "192.0.2.99", "2001:db8::4", "10.0.0.1"] {
            assert!(!s.contains(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn parse_set_reports_every_bad_entry_with_its_index() {
        let errors = AddressSet::parse(["192.0.2.0/24", "x", "198.51.100.7/24"])
            .expect_err("two bad entries");
        assert_eq!(
            errors.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn longest_block_prefix_of_cidrs_and_ranges() {
        assert_eq!(range("198.51.100.0/26").longest_block_prefix(), 26);
        assert_eq!(
            range("203.0.113.10-203.0.113.20").longest_block_prefix(),
            32
        );
        assert_eq!(range("192.0.2.0-192.0.2.127").longest_block_prefix(), 25);
        assert_eq!(range("192.0.2.0-192.0.2.191").longest_block_prefix(), 26);
        assert_eq!(range("0.0.0.0/0").longest_block_prefix(), 0);
        assert_eq!(range("::/0").longest_block_prefix(), 0);
        assert_eq!(range("2001:db8::/120").longest_block_prefix(), 120);
        assert_eq!(range("2001:db8::1").longest_block_prefix(), 128);
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(range("192.0.2.0/24").to_string(), "192.0.2.0/24");
        assert_eq!(range("192.0.2.0-192.0.2.255").to_string(), "192.0.2.0/24");
        assert_eq!(
            range("192.0.2.1-192.0.2.2").to_string(),
            "192.0.2.1-192.0.2.2"
        );
        assert_eq!(range("2001:db8::7").to_string(), "2001:db8::7");
        assert_eq!(range("::/0").to_string(), "::/0");
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC*") {
            let _ = AddressRange::parse(&s);
        }

        #[test]
        fn address_like_strings_never_panic(s in "[0-9a-f:./-]{0,48}") {
            if let Ok(r) = AddressRange::parse(&s) {
                prop_assert!(r.start() <= r.end());
            }
        }

        #[test]
        fn ipv4_ranges_round_trip(a: u32, b: u32) {
            let (lo, hi) = (a.min(b), a.max(b));
            let text = format!("{}-{}", Ipv4Addr::from(lo), Ipv4Addr::from(hi));
            let r = AddressRange::parse(&text).expect("valid");
            prop_assert_eq!((r.start(), r.end()), (u128::from(lo), u128::from(hi)));
            prop_assert_eq!(AddressRange::parse(&r.to_string()), Ok(r));
        }

        #[test]
        fn ipv6_cidrs_round_trip(a: u128, len in 0u8..=128) {
            let network = a & !host_mask(Family::V6, len);
            let text = format!("{}/{len}", Ipv6Addr::from(network));
            let r = AddressRange::parse(&text).expect("valid");
            prop_assert_eq!(r.prefix_len(), Some(len));
            prop_assert_eq!(AddressRange::parse(&r.to_string()), Ok(r));
        }

        #[test]
        fn overlap_agrees_with_membership(a: u8, b: u8, c: u8, d: u8) {
            let mk = |x: u8, y: u8| AddressRange::new(
                IpAddr::V4(Ipv4Addr::from(u32::from(x.min(y)))),
                IpAddr::V4(Ipv4Addr::from(u32::from(x.max(y)))),
            ).expect("ordered");
            let (r1, r2) = (mk(a, b), mk(c, d));
            let shared = (r1.start()..=r1.end()).any(|v| (r2.start()..=r2.end()).contains(&v));
            prop_assert_eq!(
                AddressSet::from_ranges([r1]).overlaps(&AddressSet::from_ranges([r2])),
                shared
            );
        }
    }
}
