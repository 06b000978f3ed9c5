//! Paging through the entries of a set of segments (Hot Rod ITERATION_START/NEXT/END).
//!
//! An [`Iteration`] is a plain cursor the server keeps per iteration id; each
//! [`Cache::next_batch`] call fills one batch. Guarantee: every entry present for the whole
//! iteration is returned exactly once. How: segments are visited one at a time; on reaching a
//! segment the cursor copies that segment's keys (under its shared lock), then looks each key up
//! again when it is its turn. An entry present throughout is in the copy and still there when
//! looked up; a key appears once in the copy, so it is returned at most once. Entries created
//! after their segment's copy are not returned; entries removed before their turn are skipped.
//! Memory is bounded by one segment's keys, not the cache's.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::cache::Cache;
use crate::error::EngineError;
use crate::metadata::CacheEntry;
use crate::segment::table_hash_of;

/// The state of one iteration over a cache's segments.
#[derive(Debug, Clone, Default)]
pub struct Iteration {
    /// Segments not yet started, in ascending order.
    segments: VecDeque<u32>,
    /// The segment under way: its segment number and the keys (with table hash) still to visit.
    current: Option<(u32, VecDeque<(u64, Bytes)>)>,
    /// Segments completed since the last [`Iteration::take_finished`]: Hot Rod reports them with
    /// each batch so a client can resume elsewhere without repeating them.
    finished: Vec<u32>,
}

impl Iteration {
    /// Whether every segment has been visited; `next_batch` would return nothing.
    pub fn is_finished(&self) -> bool {
        self.segments.is_empty() && self.current.is_none()
    }

    /// The segments completed since the last call, in completion order.
    pub fn take_finished(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.finished)
    }
}

impl Cache {
    /// Starts an iteration over `segments` (all segments when `None`). Duplicates are ignored.
    pub fn iterate(&self, segments: Option<&[u32]>) -> Result<Iteration, EngineError> {
        let count = self.segments().count();
        let mut chosen: Vec<u32> = match segments {
            None => (0..count).collect(),
            Some(list) => list.to_vec(),
        };
        if let Some(&segment) = chosen.iter().find(|&&s| s >= count) {
            return Err(EngineError::InvalidSegment { segment, count });
        }
        chosen.sort_unstable();
        chosen.dedup();
        Ok(Iteration {
            segments: chosen.into(),
            current: None,
            finished: Vec::new(),
        })
    }

    /// The next up to `max` live entries of the iteration, with metadata; empty once finished.
    /// Does not refresh last-used (iteration is not a read of the entries by a user).
    pub fn next_batch(&self, iteration: &mut Iteration, max: usize) -> Vec<CacheEntry> {
        let now = self.now();
        let mut out = Vec::with_capacity(max.min(1024));
        while out.len() < max {
            let Some((segment, keys)) = &mut iteration.current else {
                let Some(segment) = iteration.segments.pop_front() else {
                    break;
                };
                iteration.current = Some((segment, self.segment_keys(segment)));
                continue;
            };
            let Some(shard) = self.shard_of_segment(*segment) else {
                iteration.finished.push(*segment);
                iteration.current = None;
                continue;
            };
            let slab = shard.slab.read();
            while out.len() < max {
                let Some((hash, key)) = keys.pop_front() else {
                    break;
                };
                if let Some(entry) = slab.find(hash, &key).filter(|e| !e.is_expired(now)) {
                    out.push(entry.to_cache_entry());
                }
            }
            if keys.is_empty() {
                iteration.finished.push(*segment);
                iteration.current = None;
            }
        }
        out
    }

    /// A copy of the keys stored in `segment`, with their table hashes.
    fn segment_keys(&self, segment: u32) -> VecDeque<(u64, Bytes)> {
        let Some(shard) = self.shard_of_segment(segment) else {
            return VecDeque::new();
        };
        let slab = shard.slab.read();
        slab.entries()
            .iter()
            .map(|e| (table_hash_of(e.key()), Bytes::copy_from_slice(e.key())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::CacheConfig;
    use crate::options::WriteOptions;

    fn cache(segments: u32) -> Cache {
        let config = CacheConfig {
            segments,
            ..CacheConfig::default()
        };
        Cache::new("it", config, Arc::new(ManualClock::new(0))).unwrap()
    }

    fn drain(cache: &Cache, it: &mut Iteration, batch: usize) -> Vec<CacheEntry> {
        let mut all = Vec::new();
        loop {
            let b = cache.next_batch(it, batch);
            assert!(b.len() <= batch);
            if b.is_empty() {
                assert!(it.is_finished());
                return all;
            }
            all.extend(b);
        }
    }

    #[test]
    fn every_entry_exactly_once_across_all_segments() {
        let c = cache(16);
        for i in 0..1000u32 {
            c.put(&i.to_be_bytes(), &i.to_le_bytes(), &WriteOptions::default())
                .unwrap();
        }
        for batch in [1, 7, 64, 5000] {
            let mut it = c.iterate(None).unwrap();
            let all = drain(&c, &mut it, batch);
            let mut seen: HashMap<Bytes, usize> = HashMap::new();
            for e in &all {
                *seen.entry(e.key.clone()).or_default() += 1;
                assert_eq!(
                    e.value.as_ref(),
                    &e.key.iter().rev().copied().collect::<Vec<_>>()[..]
                );
            }
            assert_eq!(seen.len(), 1000, "batch {batch}");
            assert!(seen.values().all(|&n| n == 1));
        }
    }

    #[test]
    fn segment_filter_and_concurrent_changes() {
        let c = cache(8);
        for i in 0..400u32 {
            c.put(&i.to_be_bytes(), b"v", &WriteOptions::default())
                .unwrap();
        }
        let segs = c.segments();
        let wanted = [1u32, 5, 5, 6];
        let mut it = c.iterate(Some(&wanted)).unwrap();
        let mut got = Vec::new();
        let mut next_new = 1000u32;
        loop {
            let b = c.next_batch(&mut it, 10);
            if b.is_empty() {
                break;
            }
            got.extend(b);
            // Churn during the iteration: add keys and remove keys >= 300.
            c.put(&next_new.to_be_bytes(), b"n", &WriteOptions::default())
                .unwrap();
            next_new += 1;
            let victim = 300 + (next_new % 100);
            c.remove(&victim.to_be_bytes(), &WriteOptions::default())
                .unwrap();
        }
        let mut count: HashMap<Vec<u8>, usize> = HashMap::new();
        for e in &got {
            assert!([1, 5, 6].contains(&segs.of(&e.key)));
            *count.entry(e.key.to_vec()).or_default() += 1;
        }
        assert!(count.values().all(|&n| n == 1), "no duplicates");
        // Keys below 300 were present for the whole iteration: all of them in the segments.
        for i in 0..300u32 {
            let k = i.to_be_bytes();
            if [1, 5, 6].contains(&segs.of(&k)) {
                assert_eq!(count.get(&k[..]), Some(&1), "key {i}");
            }
        }
    }

    #[test]
    fn bad_segments_are_refused() {
        let c = cache(4);
        assert_eq!(
            c.iterate(Some(&[0, 4])).unwrap_err(),
            EngineError::InvalidSegment {
                segment: 4,
                count: 4
            }
        );
        let mut it = c.iterate(Some(&[])).unwrap();
        assert!(it.is_finished());
        assert!(c.next_batch(&mut it, 10).is_empty());
    }

    #[test]
    fn every_segment_is_reported_finished_once() {
        let c = cache(16);
        for i in 0..100u32 {
            c.put(&i.to_be_bytes(), b"v", &WriteOptions::default())
                .unwrap();
        }
        let mut it = c.iterate(Some(&[3, 1, 7, 1])).unwrap();
        let mut finished = Vec::new();
        loop {
            let batch = c.next_batch(&mut it, 3);
            finished.extend(it.take_finished());
            if batch.is_empty() {
                break;
            }
        }
        assert_eq!(finished, vec![1, 3, 7]);
    }
}
