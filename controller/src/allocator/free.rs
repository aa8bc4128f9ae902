//! Free addresses of one pool and family as disjoint inclusive intervals keyed by start.
//!
//! Taking or returning one address and finding the lowest free one cost O(log n) in the number
//! of intervals, whatever the size of the pool: a /8 or a /64 is one interval until it is used.

use std::collections::BTreeMap;

use ferrolb_config::addresses::AddressRange;

/// Disjoint, non-adjacent inclusive intervals `start -> end` of free addresses (as integers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FreeIntervals(BTreeMap<u128, u128>);

impl FreeIntervals {
    /// All addresses of `ranges` (sorted, merged intervals of one family) free.
    pub(super) fn from_ranges(ranges: &[AddressRange]) -> Self {
        FreeIntervals(ranges.iter().map(|r| (r.start(), r.end())).collect())
    }

    /// Whether `value` is free.
    pub(super) fn contains(&self, value: u128) -> bool {
        self.0
            .range(..=value)
            .next_back()
            .is_some_and(|(_, &end)| value <= end)
    }

    /// Marks `value` as used; `false` when it was not free.
    pub(super) fn remove(&mut self, value: u128) -> bool {
        let Some((&start, &end)) = self.0.range(..=value).next_back() else {
            return false;
        };
        if value > end {
            return false;
        }
        self.0.remove(&start);
        if start < value {
            self.0.insert(start, value - 1);
        }
        if value < end {
            self.0.insert(value + 1, end);
        }
        true
    }

    /// Marks `value` as free again, merging with its neighbours. No effect when already free.
    pub(super) fn insert(&mut self, value: u128) {
        if self.contains(value) {
            return;
        }
        let mut start = value;
        let mut end = value;
        if let Some((&before_start, &before_end)) = self.0.range(..value).next_back()
            && before_end.checked_add(1) == Some(value)
        {
            self.0.remove(&before_start);
            start = before_start;
        }
        if let Some(next) = value.checked_add(1)
            && let Some(after_end) = self.0.remove(&next)
        {
            end = after_end;
        }
        self.0.insert(start, end);
    }

    /// The lowest free address; with `skip_buggy`, IPv4 addresses ending in `.0` or `.255` are
    /// passed over. Such addresses form at most two-address intervals between used ones, so the
    /// walk stays short.
    pub(super) fn lowest(&self, skip_buggy: bool) -> Option<u128> {
        self.0.iter().find_map(|(&start, &end)| {
            if !skip_buggy {
                return Some(start);
            }
            let mut candidate = start;
            while is_buggy(candidate) {
                candidate = candidate.checked_add(1)?;
                if candidate > end {
                    return None;
                }
            }
            Some(candidate)
        })
    }
}

/// Whether an IPv4 address (as integer) ends in `.0` or `.255`, which old client stacks take for
/// network or broadcast addresses.
pub(super) fn is_buggy(value: u128) -> bool {
    matches!(value & 0xff, 0 | 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(ranges: &[(u128, u128)]) -> FreeIntervals {
        FreeIntervals(ranges.iter().copied().collect())
    }

    #[test]
    fn remove_splits_and_insert_merges_back() {
        let mut f = free(&[(10, 20)]);
        assert!(f.remove(15));
        assert_eq!(f, free(&[(10, 14), (16, 20)]));
        assert!(!f.remove(15));
        assert!(f.remove(10));
        assert!(f.remove(20));
        assert_eq!(f, free(&[(11, 14), (16, 19)]));
        f.insert(15);
        f.insert(10);
        f.insert(20);
        assert_eq!(f, free(&[(10, 20)]));
    }

    #[test]
    fn lowest_is_first_interval_start() {
        let mut f = free(&[(5, 7), (100, 200)]);
        assert_eq!(f.lowest(false), Some(5));
        for v in 5..=7 {
            assert!(f.remove(v));
        }
        assert_eq!(f.lowest(false), Some(100));
    }

    #[test]
    fn lowest_skips_buggy_addresses() {
        // 255 and 256 (x.255 and x+1.0) are buggy; 257 is x+1.1.
        let f = free(&[(255, 256), (300, 300)]);
        assert_eq!(f.lowest(true), Some(300));
        assert_eq!(free(&[(255, 258)]).lowest(true), Some(257));
        assert_eq!(free(&[(255, 256)]).lowest(true), None);
    }

    #[test]
    fn extremes_of_the_ipv6_space_do_not_overflow() {
        let mut f = free(&[(0, u128::MAX)]);
        assert!(f.remove(u128::MAX));
        assert!(f.remove(0));
        f.insert(u128::MAX);
        f.insert(0);
        assert_eq!(f, free(&[(0, u128::MAX)]));
    }
}
