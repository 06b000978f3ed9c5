//! A replicated change and its version vector.
//!
//! These are the bridge's own types: the server converts its engine's write into a [`Change`]
//! and a received [`Change`] back into an engine write. They carry no Hot Rod encoding.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A per-entry version vector: site name → count of writes that site made to the entry.
///
/// Each site increments its own component when it writes the entry; a site that applies a remote
/// change adopts the pointwise maximum. Vector A dominates B when every component of A is ≥ the
/// same component of B and A ≠ B; neither dominating means the writes were concurrent (a conflict).
/// Infinispan keeps the same shape in `IracEntryVersion` (site → topology id and counter); a
/// single node per site needs no topology id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionVector(BTreeMap<String, u64>);

/// How two version vectors relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    /// Both are equal.
    Equal,
    /// The left one saw everything the right one did, and more.
    Dominates,
    /// The right one saw everything the left one did, and more.
    DominatedBy,
    /// Each saw a write the other did not.
    Concurrent,
}

impl VersionVector {
    /// The empty vector (an entry nobody wrote through the bridge).
    pub fn new() -> Self {
        Self(BTreeMap::new())
    }

    /// The component of `site` (0 when absent).
    pub fn counter(&self, site: &str) -> u64 {
        self.0.get(site).copied().unwrap_or(0)
    }

    /// Sets a component; 0 removes it so that equal vectors have one representation.
    pub fn set(&mut self, site: &str, counter: u64) {
        if counter == 0 {
            self.0.remove(site);
        } else {
            self.0.insert(site.to_string(), counter);
        }
    }

    /// Increments `site`'s component (saturating; 2^64 writes never happen).
    pub fn increment(&mut self, site: &str) {
        let next = self.counter(site).saturating_add(1);
        self.set(site, next);
    }

    /// Pointwise maximum with `other`.
    pub fn merge(&mut self, other: &VersionVector) {
        for (site, &c) in &other.0 {
            if c > self.counter(site) {
                self.0.insert(site.clone(), c);
            }
        }
    }

    /// How `self` relates to `other`.
    pub fn compare(&self, other: &VersionVector) -> Causality {
        let mut greater = false;
        let mut less = false;
        for site in self.0.keys().chain(other.0.keys()) {
            match self.counter(site).cmp(&other.counter(site)) {
                Ordering::Greater => greater = true,
                Ordering::Less => less = true,
                Ordering::Equal => {}
            }
        }
        match (greater, less) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Dominates,
            (false, true) => Causality::DominatedBy,
            (true, true) => Causality::Concurrent,
        }
    }

    /// The components, in site-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(s, &c)| (s.as_str(), c))
    }

    /// Number of non-zero components.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no site wrote the entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (String, u64)>>(iter: I) -> Self {
        let mut v = VersionVector::new();
        for (site, c) in iter {
            v.set(&site, c);
        }
        v
    }
}

/// A value with its expiration metadata. Lifespan counts on each site from when that site applies
/// the change (expiration is per site, as in Infinispan).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EntryValue {
    /// The value bytes exactly as the client sent them.
    pub bytes: Vec<u8>,
    /// Lifespan in milliseconds, if any.
    pub lifespan_ms: Option<u64>,
    /// Max-idle in milliseconds, if any (carried from bridge protocol version 2 on).
    pub max_idle_ms: Option<u64>,
}

/// One replicated change of one key.
///
/// A removal is a change without a value: a *tombstone*. Keeping the value optional (instead of a
/// separate flag beside it) makes "tombstone with a value" unrepresentable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    /// Cache name.
    pub cache: String,
    /// Key bytes as the client sent them.
    pub key: Vec<u8>,
    /// The new value, or `None` for a removal.
    pub value: Option<EntryValue>,
    /// The site where the write happened.
    pub origin: String,
    /// The entry's version after this write.
    pub version: VersionVector,
}

impl Change {
    /// Whether this change removes the key.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vv(parts: &[(&str, u64)]) -> VersionVector {
        parts.iter().map(|(s, c)| (s.to_string(), *c)).collect()
    }

    #[test]
    fn compare_covers_all_four_relations() {
        assert_eq!(vv(&[("A", 1)]).compare(&vv(&[("A", 1)])), Causality::Equal);
        assert_eq!(
            vv(&[("A", 2)]).compare(&vv(&[("A", 1)])),
            Causality::Dominates
        );
        assert_eq!(
            vv(&[("A", 1)]).compare(&vv(&[("A", 1), ("B", 1)])),
            Causality::DominatedBy
        );
        assert_eq!(
            vv(&[("A", 1)]).compare(&vv(&[("B", 1)])),
            Causality::Concurrent
        );
        assert_eq!(
            VersionVector::new().compare(&vv(&[("A", 0)])),
            Causality::Equal
        );
    }

    #[test]
    fn merge_dominates_both_inputs() {
        let mut m = vv(&[("A", 3), ("B", 1)]);
        m.merge(&vv(&[("B", 2), ("C", 1)]));
        assert_eq!(m, vv(&[("A", 3), ("B", 2), ("C", 1)]));
        m.increment("A");
        assert_eq!(m.counter("A"), 4);
    }

    fn arb_vv() -> impl Strategy<Value = VersionVector> {
        proptest::collection::btree_map("[ABC]", 0u64..4, 0..3)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn compare_is_antisymmetric(a in arb_vv(), b in arb_vv()) {
            let expected = match a.compare(&b) {
                Causality::Equal => Causality::Equal,
                Causality::Dominates => Causality::DominatedBy,
                Causality::DominatedBy => Causality::Dominates,
                Causality::Concurrent => Causality::Concurrent,
            };
            prop_assert_eq!(b.compare(&a), expected);
        }

        #[test]
        fn merge_is_an_upper_bound(a in arb_vv(), b in arb_vv()) {
            let mut m = a.clone();
            m.merge(&b);
            prop_assert!(matches!(m.compare(&a), Causality::Equal | Causality::Dominates));
            prop_assert!(matches!(m.compare(&b), Causality::Equal | Causality::Dominates));
        }
    }
}
