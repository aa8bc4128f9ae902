//! A set for the one or few elements a per-IP or per-Service decision holds: a sorted `Vec`.
//!
//! Why not `BTreeSet`: a B-tree allocates a node with room for eleven elements even for one
//! element, and the speaker keeps one such set per announced IP and per announced Service, in
//! several copies (the desired state, the condition writer's view). At 10,000 announced IPs those
//! one-element nodes were the largest part of the speaker's heap (docs/BENCHMARKS.md). Lookups
//! are binary searches, insertions shift the tail: fine for sets of a handful.

/// A sorted, duplicate-free `Vec` with the set operations the decisions use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SmallSet<T>(Vec<T>);

impl<T> Default for SmallSet<T> {
    fn default() -> Self {
        SmallSet(Vec::new())
    }
}

impl<T: Ord> SmallSet<T> {
    pub fn new() -> Self {
        SmallSet::default()
    }

    /// Adds `value`; says whether it was new.
    pub fn insert(&mut self, value: T) -> bool {
        match self.0.binary_search(&value) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, value);
                true
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In ascending order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<T: Ord> FromIterator<T> for SmallSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(values: I) -> Self {
        let mut values: Vec<T> = values.into_iter().collect();
        values.sort();
        values.dedup();
        values.shrink_to_fit();
        SmallSet(values)
    }
}

impl<T: Ord, const N: usize> From<[T; N]> for SmallSet<T> {
    fn from(values: [T; N]) -> Self {
        values.into_iter().collect()
    }
}

impl<T: Ord> Extend<T> for SmallSet<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, values: I) {
        for value in values {
            self.insert(value);
        }
    }
}

impl<'a, T> IntoIterator for &'a SmallSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_values_sorted_and_distinct_however_they_arrive() {
        let mut set: SmallSet<u8> = [3, 1, 3].into();
        assert!(set.insert(2));
        assert!(!set.insert(1));
        set.extend([5, 0, 5]);
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 5]);
        assert_eq!(set, [5, 3, 2, 1, 0].into_iter().collect());
        assert!(SmallSet::<u8>::new().is_empty());
    }
}
