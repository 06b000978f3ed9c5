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

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::change::Change;

/// A batch waiting for its acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Batch id.
    pub id: u64,
    /// The changes, in order.
    pub changes: Vec<Change>,
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

    /// Changes waiting (not counting the batch in flight).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing waits (a batch may still be in flight).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether nothing waits and nothing is in flight.
    pub fn is_idle(&self) -> bool {
        self.order.is_empty() && self.in_flight.is_none()
    }

    /// The batch in flight.
    pub fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.as_ref()
    }

    /// Takes the next batch if none is in flight and something waits.
    pub fn next_batch(&mut self, id: u64, max: usize, now: Instant) -> Option<&InFlight> {
        if self.in_flight.is_some() || self.order.is_empty() {
            return None;
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
        for c in batch.changes.into_iter().rev() {
            if !self.waiting.contains_key(&c.key) {
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
        self.in_flight = None;
        self.retry_at = None;
        self.attempts = 0;
        n
    }
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
