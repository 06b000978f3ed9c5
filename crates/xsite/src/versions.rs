//! Replication metadata of one cache's keys: version vectors, concurrent siblings, tombstones.
//!
//! The server keeps one [`VersionStore`] per replicated cache and calls it **while it holds the
//! key's lock**, so that deciding and writing are one step:
//! - a local write asks [`VersionStore::prepare_local`] for the [`Change`] to replicate and, once
//!   the write commits, records it with [`VersionStore::commit_local`] (a vetoed SYNC write simply
//!   never commits);
//! - a change received by ASYNC or SYNC replication goes through [`VersionStore::apply_remote`],
//!   which answers what to write to the cache ([`Resolution`]);
//! - a state-push entry goes through [`VersionStore::apply_push`].
//!
//! ## Conflict resolution
//! For each key the store keeps the *maximal* writes seen so far (no other write seen dominates
//! them), at most one per origin site since a site's own writes dominate each other. Usually there
//! is one; after concurrent writes from several sites there are several ("siblings"), and the
//! visible value is the merge policy's pick among them. Because the sibling set is the set of
//! maximal elements of every write delivered, it is the same on every site once all writes have
//! been delivered, whatever the order; the pick is a function of the set, so sites converge. A
//! new local write dominates every sibling and ends the conflict. Values of siblings are kept only
//! while there are several; a single sibling's value is the cache's.
//!
//! Local counters come from one monotonic counter per store (like Infinispan's per-site version
//! generator), not per key, so a key whose tombstone was purged cannot restart at a version some
//! other site already saw. The server seeds the counter above anything issued before a restart
//! (e.g. from the wall clock in microseconds).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::change::{Causality, Change, EntryValue, VersionVector};
use crate::config::MergePolicy;

/// What the server writes to its cache for a received change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Leave the cache as it is (the change is older, equal, or loses the conflict).
    Keep,
    /// Write this value; `None` removes the key.
    Write(Option<EntryValue>),
}

/// One maximal write of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sibling {
    origin: String,
    version: VersionVector,
    value: SiblingValue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SiblingValue {
    /// The value is whatever the cache holds (only while this is the single sibling).
    InCache,
    /// Kept here because several siblings coexist.
    Held(Option<EntryValue>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyMeta {
    siblings: Vec<Sibling>,
    /// Store-wide write sequence of the last change to this key's visible state.
    seq: u64,
    /// When the visible state became a removal, for tombstone cleanup.
    removed_at: Option<Instant>,
}

/// What the visible state of a key is, compared before and after a change.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Visible {
    Removed,
    Sibling(usize),
}

/// Replication metadata of one cache.
#[derive(Debug)]
pub struct VersionStore {
    site: String,
    cache: String,
    counter: u64,
    seq: u64,
    keys: HashMap<Vec<u8>, KeyMeta>,
    tombstones: VecDeque<(Instant, Vec<u8>)>,
    /// What every clear of the cache had seen (merged): a write whose version is at or below
    /// it happened before a clear and is gone on every site (see [`VersionStore::clear`]).
    floor: VersionVector,
}

impl VersionStore {
    /// A store for `cache` on `site` whose local counters start above `counter_start`.
    pub fn new(site: &str, cache: &str, counter_start: u64) -> Self {
        Self {
            site: site.to_string(),
            cache: cache.to_string(),
            counter: counter_start,
            seq: 0,
            keys: HashMap::new(),
            tombstones: VecDeque::new(),
            floor: VersionVector::new(),
        }
    }

    /// What a clear issued here now has seen: every version of every key this site knows, and
    /// every counter it issued. Sent with the clear; [`clear`](Self::clear) it once the local
    /// clear ran.
    pub fn clear_summary(&self) -> VersionVector {
        let mut seen = self.floor.clone();
        for meta in self.keys.values() {
            for s in &meta.siblings {
                seen.merge(&s.version);
            }
        }
        let own = seen.counter(&self.site).max(self.counter);
        if own > 0 {
            seen.set(&self.site, own);
        }
        seen
    }

    /// A clear that had seen `seen` (this site's own, or one received from another site): the
    /// writes it had seen are gone, the writes it had not seen (made concurrently on other
    /// sites) survive. Raises the floor to `seen` and forgets every key whose versions are all
    /// at or below it; from now on a received change at or below the floor is dropped (it
    /// happened before the clear), so every site removes exactly the clear's causal past. The
    /// receiver of a clear then removes each cache entry whose key has no metadata left
    /// ([`survives_clear`](Self::survives_clear)).
    pub fn clear(&mut self, seen: &VersionVector) {
        self.floor.merge(seen);
        self.counter = self.counter.max(self.floor.counter(&self.site));
        let floor = &self.floor;
        self.keys.retain(|_, meta| {
            meta.siblings
                .iter()
                .any(|s| !at_or_below(&s.version, floor))
        });
        self.seq += 1;
    }

    /// Whether the cache entry of `key` outlives the clears seen so far: only a key written
    /// after (or concurrently with) them has metadata left.
    pub fn survives_clear(&self, key: &[u8]) -> bool {
        self.keys.get(key).is_some_and(|m| m.removed_at.is_none())
    }

    /// Whether `version` happened before a clear already applied here.
    fn cleared(&self, version: &VersionVector) -> bool {
        !self.floor.is_empty() && at_or_below(version, &self.floor)
    }

    /// The current write sequence; a state push received from now on keeps every entry written
    /// after this point.
    pub fn write_seq(&self) -> u64 {
        self.seq
    }

    /// Keys with metadata (live entries and tombstones).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key has metadata.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The change a local write of `key` makes: its version dominates everything seen for the key.
    pub fn prepare_local(&self, key: &[u8], value: Option<EntryValue>) -> Change {
        let mut version = VersionVector::new();
        if let Some(meta) = self.keys.get(key) {
            for s in &meta.siblings {
                version.merge(&s.version);
            }
        }
        let next = self
            .counter
            .saturating_add(1)
            .max(version.counter(&self.site).saturating_add(1));
        version.set(&self.site, next);
        Change {
            cache: self.cache.clone(),
            key: key.to_vec(),
            value,
            origin: self.site.clone(),
            version,
        }
    }

    /// Records a committed local write prepared by [`prepare_local`](Self::prepare_local).
    pub fn commit_local(&mut self, now: Instant, change: &Change) {
        self.counter = self.counter.max(change.version.counter(&self.site));
        let removed = change.is_tombstone();
        self.replace(now, change, removed);
    }

    /// Decides what a change received from another site does here. `current` reads the cache's
    /// value of the key and is called only when a conflict starts.
    pub fn apply_remote(
        &mut self,
        now: Instant,
        change: &Change,
        policy: MergePolicy,
        current: impl FnOnce() -> Option<EntryValue>,
    ) -> Resolution {
        if self.cleared(&change.version) {
            return Resolution::Keep;
        }
        let Some(meta) = self.keys.get_mut(&change.key) else {
            self.replace(now, change, change.is_tombstone());
            return Resolution::Write(change.value.clone());
        };
        if meta.siblings.iter().any(|s| {
            matches!(
                s.version.compare(&change.version),
                Causality::Dominates | Causality::Equal
            )
        }) {
            return Resolution::Keep;
        }
        let before = visible(&meta.siblings, policy);
        let before_id = before.as_ref().map(|v| identity(&meta.siblings, v));
        meta.siblings
            .retain(|s| s.version.compare(&change.version) != Causality::DominatedBy);
        if !meta.siblings.is_empty() {
            // A conflict (or a continuing one): every sibling's value is held from now on.
            if let Some(single) = meta.siblings.first_mut() {
                if single.value == SiblingValue::InCache {
                    single.value = SiblingValue::Held(current());
                }
            }
        }
        meta.siblings.push(Sibling {
            origin: change.origin.clone(),
            version: change.version.clone(),
            value: SiblingValue::Held(change.value.clone()),
        });
        let after = visible(&meta.siblings, policy);
        let after_id = after.as_ref().map(|v| identity(&meta.siblings, v));
        let value = match &after {
            Some(Visible::Sibling(i)) => match meta.siblings.get(*i).map(|s| &s.value) {
                Some(SiblingValue::Held(v)) => v.clone(),
                _ => None,
            },
            _ => None,
        };
        if meta.siblings.len() == 1 {
            if let Some(s) = meta.siblings.first_mut() {
                s.value = SiblingValue::InCache;
            }
        }
        if before_id == after_id {
            return Resolution::Keep;
        }
        self.seq += 1;
        meta.seq = self.seq;
        if value.is_none() {
            meta.removed_at = Some(now);
            self.tombstones.push_back((now, change.key.clone()));
        } else {
            meta.removed_at = None;
        }
        Resolution::Write(value)
    }

    /// Decides what a SYNC backup write does here: unless this site already saw it (or a write
    /// that includes it), the write wins, since its origin holds the key's lock for the whole
    /// replication (Infinispan applies SYNC backups without conflict resolution too). The entry's
    /// version becomes the merge of both, so it dominates everything either site had seen.
    pub fn apply_sync(&mut self, now: Instant, change: &Change) -> Resolution {
        if self.cleared(&change.version) {
            return Resolution::Keep;
        }
        if let Some(meta) = self.keys.get(&change.key) {
            if meta.siblings.iter().any(|s| {
                matches!(
                    s.version.compare(&change.version),
                    Causality::Dominates | Causality::Equal
                )
            }) {
                return Resolution::Keep;
            }
        }
        self.adopt(now, change, change.is_tombstone())
    }

    /// Decides what a state-push entry does here: it never deletes, and it never overwrites a key
    /// written (or removed) after `push_started_seq` (see [`write_seq`](Self::write_seq)).
    pub fn apply_push(
        &mut self,
        now: Instant,
        change: &Change,
        push_started_seq: u64,
    ) -> Resolution {
        if change.is_tombstone() || self.cleared(&change.version) {
            return Resolution::Keep;
        }
        if self
            .keys
            .get(&change.key)
            .is_some_and(|meta| meta.seq > push_started_seq)
        {
            return Resolution::Keep;
        }
        self.adopt(now, change, false)
    }

    /// Stores `change` under a version that also covers every write of its key seen here (so
    /// it supersedes them all), and says to write its value.
    fn adopt(&mut self, now: Instant, change: &Change, tombstone: bool) -> Resolution {
        let mut version = change.version.clone();
        if let Some(meta) = self.keys.get(&change.key) {
            for s in &meta.siblings {
                version.merge(&s.version);
            }
        }
        let adopted = Change {
            version,
            ..change.clone()
        };
        self.replace(now, &adopted, tombstone);
        Resolution::Write(change.value.clone())
    }

    /// The version and origin of the visible write of `key`, for state-push chunks.
    pub fn meta(&self, key: &[u8]) -> Option<(VersionVector, String)> {
        let meta = self.keys.get(key)?;
        let mut version = VersionVector::new();
        for s in &meta.siblings {
            version.merge(&s.version);
        }
        let origin = meta
            .siblings
            .iter()
            .map(|s| s.origin.as_str())
            .min()
            .unwrap_or(self.site.as_str())
            .to_string();
        Some((version, origin))
    }

    /// Whether `key` is currently a removal kept for conflict resolution.
    pub fn is_tombstone(&self, key: &[u8]) -> bool {
        self.keys.get(key).is_some_and(|m| m.removed_at.is_some())
    }

    /// Forgets tombstones older than `delay`; returns how many were dropped.
    pub fn purge_tombstones(&mut self, now: Instant, delay: Duration) -> usize {
        let mut purged = 0;
        while let Some((at, _)) = self.tombstones.front() {
            if now.saturating_duration_since(*at) < delay {
                break;
            }
            let Some((at, key)) = self.tombstones.pop_front() else {
                break;
            };
            if self
                .keys
                .get(&key)
                .is_some_and(|m| m.removed_at == Some(at))
            {
                self.keys.remove(&key);
                purged += 1;
            }
        }
        purged
    }

    fn replace(&mut self, now: Instant, change: &Change, removed: bool) {
        self.seq += 1;
        let removed_at = removed.then_some(now);
        if removed {
            self.tombstones.push_back((now, change.key.clone()));
        }
        self.keys.insert(
            change.key.clone(),
            KeyMeta {
                siblings: vec![Sibling {
                    origin: change.origin.clone(),
                    version: change.version.clone(),
                    value: SiblingValue::InCache,
                }],
                seq: self.seq,
                removed_at,
            },
        );
    }
}

/// `v` ≤ `floor` in every component.
fn at_or_below(v: &VersionVector, floor: &VersionVector) -> bool {
    matches!(v.compare(floor), Causality::DominatedBy | Causality::Equal)
}

/// The merge policy's pick among siblings (`None` when there are none).
fn visible(siblings: &[Sibling], policy: MergePolicy) -> Option<Visible> {
    if siblings.len() > 1 && policy == MergePolicy::AlwaysRemove {
        return Some(Visible::Removed);
    }
    let is_null = |s: &Sibling| matches!(s.value, SiblingValue::Held(None));
    let preferred: Option<bool> = match policy {
        MergePolicy::PreferNonNull => Some(false),
        MergePolicy::PreferNull => Some(true),
        _ => None,
    };
    let candidates = |want: Option<bool>| {
        siblings
            .iter()
            .enumerate()
            .filter(move |(_, s)| want.is_none_or(|w| is_null(s) == w))
    };
    let pool_has = preferred.is_some_and(|w| candidates(Some(w)).next().is_some());
    let want = if pool_has { preferred } else { None };
    candidates(want)
        .min_by(|(_, a), (_, b)| {
            a.origin
                .cmp(&b.origin)
                .then_with(|| a.version.iter().cmp(b.version.iter()))
        })
        .map(|(i, _)| Visible::Sibling(i))
}

/// A comparable identity of a visible state.
fn identity(siblings: &[Sibling], v: &Visible) -> Option<(String, VersionVector)> {
    match v {
        Visible::Removed => None,
        Visible::Sibling(i) => siblings
            .get(*i)
            .map(|s| (s.origin.clone(), s.version.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str) -> Option<EntryValue> {
        Some(EntryValue {
            bytes: s.as_bytes().to_vec(),
            ..EntryValue::default()
        })
    }

    /// A minimal site: cache contents plus the store, applying resolutions.
    struct Site {
        store: VersionStore,
        cache: HashMap<Vec<u8>, EntryValue>,
        policy: MergePolicy,
    }

    impl Site {
        fn new(name: &str, policy: MergePolicy) -> Self {
            Self {
                store: VersionStore::new(name, "c", 0),
                cache: HashMap::new(),
                policy,
            }
        }
        fn write(&mut self, now: Instant, key: &str, v: Option<EntryValue>) -> Change {
            let ch = self.store.prepare_local(key.as_bytes(), v.clone());
            self.store.commit_local(now, &ch);
            match v {
                Some(v) => self.cache.insert(key.as_bytes().to_vec(), v),
                None => self.cache.remove(key.as_bytes()),
            };
            ch
        }
        fn receive(&mut self, now: Instant, ch: &Change) {
            let cur = self.cache.get(&ch.key).cloned();
            if let Resolution::Write(v) = self.store.apply_remote(now, ch, self.policy, || cur) {
                match v {
                    Some(v) => self.cache.insert(ch.key.clone(), v),
                    None => self.cache.remove(&ch.key),
                };
            }
        }
    }

    impl Site {
        /// Applies a clear that had seen `seen`, as the server does.
        fn clear(&mut self, seen: &VersionVector) {
            self.store.clear(seen);
            let store = &self.store;
            self.cache.retain(|k, _| store.survives_clear(k));
        }
    }

    #[test]
    fn a_clear_removes_its_causal_past_and_keeps_concurrent_writes_everywhere() {
        let now = Instant::now();
        let mut a = Site::new("A", MergePolicy::Default);
        let mut b = Site::new("B", MergePolicy::Default);
        let old_a = a.write(now, "x", val("1"));
        b.receive(now, &old_a);
        let old_b = b.write(now, "y", val("1"));
        a.receive(now, &old_b);
        // B writes z; before it reaches A, A clears; a late retransmission of y follows.
        let concurrent = b.write(now, "z", val("2"));
        let seen = a.store.clear_summary();
        a.clear(&seen);
        assert!(a.cache.is_empty());
        b.clear(&seen);
        assert_eq!(b.cache.keys().count(), 1, "only z survives on B");
        a.receive(now, &concurrent);
        a.receive(now, &old_b);
        b.receive(now, &old_a);
        assert_eq!(a.cache, b.cache);
        assert_eq!(a.cache.get(b"z".as_slice()), val("2").as_ref());
        // Writes after the clear replicate as usual, also of cleared keys.
        let again = a.write(now, "x", val("3"));
        b.receive(now, &again);
        assert_eq!(b.cache.get(b"x".as_slice()), val("3").as_ref());
        assert_eq!(b.store.apply_sync(now, &old_a), Resolution::Keep);
    }

    #[test]
    fn newer_remote_write_applies_and_older_is_ignored() {
        let now = Instant::now();
        let mut a = Site::new("A", MergePolicy::Default);
        let mut b = Site::new("B", MergePolicy::Default);
        let c1 = a.write(now, "k", val("1"));
        let c2 = a.write(now, "k", val("2"));
        b.receive(now, &c2);
        b.receive(now, &c1);
        assert_eq!(b.cache.get(b"k".as_slice()), val("2").as_ref());
    }

    #[test]
    fn default_policy_prefers_the_smaller_site_name_on_both_sides() {
        let now = Instant::now();
        for policy in [
            MergePolicy::Default,
            MergePolicy::PreferNonNull,
            MergePolicy::PreferNull,
            MergePolicy::AlwaysRemove,
        ] {
            let mut a = Site::new("A", policy);
            let mut b = Site::new("B", policy);
            let ca = a.write(now, "k", val("a"));
            let cb = b.write(now, "k", None);
            a.receive(now, &cb);
            b.receive(now, &ca);
            let expected = match policy {
                MergePolicy::Default | MergePolicy::PreferNonNull => val("a"),
                MergePolicy::PreferNull | MergePolicy::AlwaysRemove => None,
            };
            assert_eq!(
                a.cache.get(b"k".as_slice()).cloned(),
                expected,
                "{policy:?}"
            );
            assert_eq!(
                b.cache.get(b"k".as_slice()).cloned(),
                expected,
                "{policy:?}"
            );
        }
    }

    #[test]
    fn a_local_write_after_a_conflict_wins_everywhere() {
        let now = Instant::now();
        let mut a = Site::new("A", MergePolicy::Default);
        let mut b = Site::new("B", MergePolicy::Default);
        let ca = a.write(now, "k", val("a"));
        let cb = b.write(now, "k", val("b"));
        a.receive(now, &cb);
        b.receive(now, &ca);
        let cb2 = b.write(now, "k", val("b2"));
        a.receive(now, &cb2);
        assert_eq!(a.cache.get(b"k".as_slice()), val("b2").as_ref());
        assert_eq!(b.cache.get(b"k".as_slice()), val("b2").as_ref());
    }

    #[test]
    fn a_sync_write_wins_over_a_concurrent_local_one_and_duplicates_are_ignored() {
        let now = Instant::now();
        let mut a = Site::new("A", MergePolicy::Default);
        let mut b = Site::new("B", MergePolicy::Default);
        // A wrote k while B was unreachable (WARN); now B writes k with SYNC to A.
        a.write(now, "k", val("a-offline"));
        let cb = b.write(now, "k", val("b-sync"));
        assert_eq!(
            a.store.apply_sync(now, &cb),
            Resolution::Write(val("b-sync"))
        );
        assert_eq!(a.store.apply_sync(now, &cb), Resolution::Keep);
        // A's next write dominates what B has.
        let ca = a.store.prepare_local(b"k", val("a2"));
        assert_eq!(ca.version.compare(&cb.version), Causality::Dominates);
    }

    #[test]
    fn push_never_deletes_nor_overwrites_newer_writes() {
        let now = Instant::now();
        let mut a = Site::new("A", MergePolicy::Default);
        let mut b = Site::new("B", MergePolicy::Default);
        let old = a.write(now, "old", val("a"));
        let fresh = a.write(now, "fresh", val("a"));
        b.write(now, "old", val("stale"));
        let started = b.store.write_seq();
        b.write(now, "fresh", val("newer-on-b"));
        assert_eq!(
            b.store.apply_push(now, &old, started),
            Resolution::Write(val("a"))
        );
        assert_eq!(b.store.apply_push(now, &fresh, started), Resolution::Keep);
        let mut gone = old.clone();
        gone.value = None;
        assert_eq!(b.store.apply_push(now, &gone, started), Resolution::Keep);
    }

    #[test]
    fn tombstones_are_purged_after_the_delay_only() {
        let t0 = Instant::now();
        let mut a = Site::new("A", MergePolicy::Default);
        a.write(t0, "k", val("1"));
        a.write(t0, "k", None);
        assert!(a.store.is_tombstone(b"k"));
        assert_eq!(
            a.store
                .purge_tombstones(t0 + Duration::from_secs(1), Duration::from_secs(30)),
            0
        );
        assert_eq!(
            a.store
                .purge_tombstones(t0 + Duration::from_secs(30), Duration::from_secs(30)),
            1
        );
        assert!(a.store.is_empty());
        // A later write still gets a version above the purged one.
        let c = a.store.prepare_local(b"k", val("2"));
        assert!(c.version.counter("A") > 2);
    }

    #[test]
    fn a_rewritten_key_keeps_its_tombstone_record_out_of_the_purge() {
        let t0 = Instant::now();
        let mut a = Site::new("A", MergePolicy::Default);
        a.write(t0, "k", None);
        a.write(t0, "k", val("back"));
        assert_eq!(
            a.store
                .purge_tombstones(t0 + Duration::from_secs(60), Duration::from_secs(30)),
            0
        );
        assert_eq!(a.store.len(), 1);
    }

    #[allow(clippy::needless_range_loop)]
    mod convergence {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Write {
                site: usize,
                key: u8,
                value: Option<u8>,
            },
            Deliver {
                from: usize,
                to: usize,
            },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..3usize, 0..3u8, proptest::option::of(0..4u8))
                    .prop_map(|(site, key, value)| Op::Write { site, key, value }),
                (0..3usize, 0..3usize).prop_map(|(from, to)| Op::Deliver { from, to }),
            ]
        }

        fn policy() -> impl Strategy<Value = MergePolicy> {
            prop_oneof![
                Just(MergePolicy::Default),
                Just(MergePolicy::PreferNonNull),
                Just(MergePolicy::PreferNull),
                Just(MergePolicy::AlwaysRemove),
            ]
        }

        proptest! {
            /// Three sites write concurrently and exchange changes in arbitrary interleavings
            /// (FIFO per link, like the bridge); after every change is delivered they agree.
            #[test]
            fn three_sites_converge(ops in proptest::collection::vec(op(), 0..60), policy in policy()) {
                let now = Instant::now();
                let names = ["A", "B", "C"];
                let mut sites: Vec<Site> = names.iter().map(|n| Site::new(n, policy)).collect();
                // queues[from][to]
                let mut queues: Vec<Vec<VecDeque<Change>>> = vec![vec![VecDeque::new(); 3]; 3];
                let run = |op: &Op, sites: &mut Vec<Site>, queues: &mut Vec<Vec<VecDeque<Change>>>| match *op {
                    Op::Write { site, key, value } => {
                        let ch = sites[site].write(now, &format!("k{key}"), value.map(|v| EntryValue { bytes: vec![v], ..Default::default() }));
                        for to in 0..3 {
                            if to != site {
                                queues[site][to].push_back(ch.clone());
                            }
                        }
                    }
                    Op::Deliver { from, to } => {
                        if let Some(ch) = queues[from][to].pop_front() {
                            sites[to].receive(now, &ch);
                        }
                    }
                };
                for o in &ops {
                    run(o, &mut sites, &mut queues);
                }
                for from in 0..3 {
                    for to in 0..3 {
                        while let Some(ch) = queues[from][to].pop_front() {
                            sites[to].receive(now, &ch);
                        }
                    }
                }
                prop_assert_eq!(&sites[0].cache, &sites[1].cache);
                prop_assert_eq!(&sites[1].cache, &sites[2].cache);
            }
        }
    }
}
