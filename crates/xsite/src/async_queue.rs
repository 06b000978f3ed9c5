//! The ASYNC replication queue of one backup (cache, site).
//!
//! Committed changes are queued in commit order and sent in batches, one batch in flight at a
//! time, so the receiver applies them in order. The queue *coalesces by key*: a key already
//! waiting keeps its place and takes the newer change (whose version dominates the older one, so
//! the receiver would discard the older one anyway). Memory is therefore bounded by the number of
//! distinct keys waiting; when that exceeds the capacity the queue reports overflow and the bridge
//! takes the backup offline (documented in `protocol-spec/xsite.md`: a state push repairs it).
//! A failed batch goes back to the front of the queue, except keys that meanwhile got a newer
//! change, and is retried until the backup goes offline.
//!
//! A clear of the cache is queued too: it drops the waiting changes it had seen (their versions
//! are at or below its summary, so the receiver would drop them anyway) and goes out alone, as
//! the next batch, before everything queued after it.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::change::{Causality, Change, VersionVector};

/// A batch waiting for its acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Batch id.
    pub id: u64,
    /// The changes, in order.
    pub changes: Vec<Change>,
    /// A clear (with what it had seen) instead of changes.
    pub clear: Option<VersionVector>,
    /// When it was sent.
    pub sent_at: Instant,
}

/// What enqueueing did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Added at the back.
    Added,
    /// Replaced a waiting change of the same key.
    Coalesced,
    /// The queue is full of distinct keys.
    Overflow,
}

/// The queue.
#[derive(Clone, Debug, Default)]
pub struct AsyncQueue {
    order: VecDeque<Vec<u8>>,
    waiting: HashMap<Vec<u8>, Change>,
    in_flight: Option<InFlight>,
    /// A clear waiting to go before every waiting change.
    clear: Option<VersionVector>,
    /// Earliest time of the next send after a failure.
    pub retry_at: Option<Instant>,
    /// Consecutive failed batches (drives the retry back-off).
    pub attempts: u32,
}

impl AsyncQueue {
    /// Queues a committed change.
    pub fn push(&mut self, change: Change, capacity: usize) -> Enqueued {
        if let Some(slot) = self.waiting.get_mut(&change.key) {
            *slot = change;
            return Enqueued::Coalesced;
        }
        if self.order.len() >= capacity {
            return Enqueued::Overflow;
        }
        self.order.push_back(change.key.clone());
        self.waiting.insert(change.key.clone(), change);
        Enqueued::Added
    }

    /// Queues a clear that had seen `seen`: waiting changes it covers are dropped, and it goes
    /// out before the others. Two waiting clears merge.
    pub fn push_clear(&mut self, seen: &VersionVector) {
        let mut merged = self.clear.take().unwrap_or_default();
        merged.merge(seen);
        let waiting = &mut self.waiting;
        self.order.retain(|k| {
            let keep = waiting
                .get(k)
                .is_some_and(|c| !covered(&c.version, &merged));
            if !keep {
                waiting.remove(k);
            }
            keep
        });
        self.clear = Some(merged);
    }

    /// Changes waiting (not counting the batch in flight), a waiting clear counting as one.
    pub fn len(&self) -> usize {
        self.order.len() + usize::from(self.clear.is_some())
    }

    /// Whether nothing waits (a batch may still be in flight).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty() && self.clear.is_none()
    }

    /// Whether nothing waits and nothing is in flight.
    pub fn is_idle(&self) -> bool {
        self.is_empty() && self.in_flight.is_none()
    }

    /// The batch in flight.
    pub fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.as_ref()
    }

    /// Takes the next batch if none is in flight and something waits.
    pub fn next_batch(&mut self, id: u64, max: usize, now: Instant) -> Option<&InFlight> {
        if self.in_flight.is_some() || self.is_empty() {
            return None;
        }
        if let Some(seen) = self.clear.take() {
            self.in_flight = Some(InFlight {
                id,
                changes: Vec::new(),
                clear: Some(seen),
                sent_at: now,
            });
            return self.in_flight.as_ref();
        }
        let mut changes = Vec::with_capacity(max.min(self.order.len()));
        while changes.len() < max {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if let Some(c) = self.waiting.remove(&key) {
                changes.push(c);
            }
        }
        self.in_flight = Some(InFlight {
            id,
            changes,
            clear: None,
            sent_at: now,
        });
        self.in_flight.as_ref()
    }

    /// The batch `id` was acknowledged.
    pub fn acked(&mut self, id: u64) -> bool {
        if self.in_flight.as_ref().is_some_and(|b| b.id == id) {
            self.in_flight = None;
            self.attempts = 0;
            self.retry_at = None;
            return true;
        }
        false
    }

    /// The batch in flight failed: its changes go back to the front, unless a newer change of the
    /// same key waits already. Returns when it had been sent.
    pub fn failed(&mut self) -> Option<Instant> {
        let batch = self.in_flight.take()?;
        self.attempts = self.attempts.saturating_add(1);
        if let Some(seen) = &batch.clear {
            // The clear goes first again (merged with any newer one).
            let mut merged = seen.clone();
            if let Some(newer) = self.clear.take() {
                merged.merge(&newer);
            }
            self.clear = Some(merged);
        }
        for c in batch.changes.into_iter().rev() {
            let superseded = self.clear.as_ref().is_some_and(|s| covered(&c.version, s));
            if !superseded && !self.waiting.contains_key(&c.key) {
                self.order.push_front(c.key.clone());
                self.waiting.insert(c.key.clone(), c);
            }
        }
        Some(batch.sent_at)
    }

    /// Drops everything (the backup went offline). Returns how many changes were dropped.
    pub fn clear(&mut self) -> usize {
        let n = self.order.len() + self.in_flight.as_ref().map_or(0, |b| b.changes.len());
        self.order.clear();
        self.waiting.clear();
        self.clear = None;
        self.in_flight = None;
        self.retry_at = None;
        self.attempts = 0;
        n
    }
}

/// Whether a change at `version` happened before a clear that had seen `seen`.
fn covered(version: &VersionVector, seen: &VersionVector) -> bool {
    matches!(
        version.compare(seen),
        Causality::DominatedBy | Causality::Equal
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{EntryValue, VersionVector};
    use proptest::prelude::*;

    fn ch(key: u8, v: u8) -> Change {
        Change {
            cache: "c".into(),
            key: vec![key],
            value: Some(EntryValue {
                bytes: vec![v],
                ..Default::default()
            }),
            origin: "A".into(),
            version: VersionVector::new(),
        }
    }

    #[test]
    fn batches_preserve_order_and_coalesce() {
        let now = Instant::now();
        let mut q = AsyncQueue::default();
        assert_eq!(q.push(ch(1, 1), 10), Enqueued::Added);
        assert_eq!(q.push(ch(2, 1), 10), Enqueued::Added);
        assert_eq!(q.push(ch(1, 2), 10), Enqueued::Coalesced);
        let b = q.next_batch(9, 10, now).unwrap().clone();
        assert_eq!(b.changes, vec![ch(1, 2), ch(2, 1)]);
        assert!(q.next_batch(10, 10, now).is_none(), "one batch in flight");
        assert!(q.acked(9));
        assert!(q.is_idle());
    }

    #[test]
    fn a_failed_batch_returns_to_the_front_without_undoing_newer_changes() {
        let now = Instant::now();
        let mut q = AsyncQueue::default();
        q.push(ch(1, 1), 10);
        q.push(ch(2, 1), 10);
        q.next_batch(1, 10, now);
        q.push(ch(3, 1), 10);
        q.push(ch(2, 2), 10);
        assert_eq!(q.failed(), Some(now));
        let b = q.next_batch(2, 10, now).unwrap();
        let keys: Vec<_> = b
            .changes
            .iter()
            .map(|c| (c.key[0], c.value.as_ref().unwrap().bytes[0]))
            .collect();
        assert_eq!(keys, vec![(1, 1), (3, 1), (2, 2)]);
    }

    fn versioned(key: u8, site: &str, n: u64) -> Change {
        let mut c = ch(key, n as u8);
        c.version.set(site, n);
        c
    }

    #[test]
    fn a_clear_drops_what_it_saw_and_goes_before_later_changes() {
        let now = Instant::now();
        let mut q = AsyncQueue::default();
        q.push(versioned(1, "A", 1), 10);
        q.next_batch(1, 10, now);
        q.push(versioned(2, "A", 2), 10);
        q.push(versioned(3, "A", 4), 10);
        let seen: VersionVector = [("A".to_string(), 3)].into_iter().collect();
        q.push_clear(&seen);
        assert_eq!(q.len(), 2, "key 2 was seen by the clear, key 3 was not");
        // The batch in flight fails: its change is older than the clear and is dropped.
        q.failed();
        let b = q.next_batch(2, 10, now).unwrap().clone();
        assert_eq!(b.clear, Some(seen.clone()));
        assert!(b.changes.is_empty());
        // The clear fails too: it goes out again, still first.
        q.failed();
        assert_eq!(q.next_batch(3, 10, now).unwrap().clear, Some(seen));
        q.acked(3);
        let b = q.next_batch(4, 10, now).unwrap();
        assert_eq!(b.changes, vec![versioned(3, "A", 4)]);
        assert!(q.acked(4));
        assert!(q.is_idle());
    }

    #[test]
    fn overflow_is_reported_for_new_keys_only() {
        let mut q = AsyncQueue::default();
        q.push(ch(1, 1), 1);
        assert_eq!(q.push(ch(2, 1), 1), Enqueued::Overflow);
        assert_eq!(q.push(ch(1, 2), 1), Enqueued::Coalesced);
        assert_eq!(q.clear(), 1);
    }

    proptest! {
        /// Whatever the pushes, batch sizes and failures, the receiver ends with the last change
        /// of every key, and the queue never holds more distinct keys than its capacity.
        #[test]
        fn delivers_the_latest_change_of_every_key(ops in proptest::collection::vec((0u8..6, any::<bool>(), any::<bool>()), 1..80)) {
            let now = Instant::now();
            let mut q = AsyncQueue::default();
            let mut latest = std::collections::BTreeMap::new();
            let mut received = std::collections::BTreeMap::new();
            for (i, (key, send, fail)) in ops.into_iter().enumerate() {
                let c = ch(key, i as u8);
                if q.push(c.clone(), 4) != Enqueued::Overflow {
                    latest.insert(key, c);
                }
                prop_assert!(q.len() <= 4);
                if send {
                    if let Some(b) = q.next_batch(i as u64, 3, now).cloned() {
                        if fail { q.failed(); } else {
                            for c in b.changes { received.insert(c.key[0], c); }
                            q.acked(b.id);
                        }
                    }
                }
            }
            let mut id = 1000;
            while let Some(b) = q.next_batch(id, 3, now).cloned() {
                for c in b.changes { received.insert(c.key[0], c); }
                q.acked(id);
                id += 1;
            }
            prop_assert_eq!(received, latest);
        }
    }
}
