//! Cache statistics, named as Infinispan's STATS operation reports them.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's statistics (Hot Rod STATS: `timeSinceStart`,
/// `currentNumberOfEntries`, `stores`, `retrievals`, `hits`, `misses`, `removeHits`,
/// `removeMisses`; `totalNumberOfEntries` is `stores`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Seconds since the cache started.
    pub time_since_start: u64,
    /// Live (unexpired) entries now.
    pub current_entries: u64,
    /// Writes that stored a value (put, put-if-absent that ran, replaces that ran, put-all per
    /// entry).
    pub stores: u64,
    /// Key reads: `hits + misses`.
    pub retrievals: u64,
    /// Key reads that found a live entry.
    pub hits: u64,
    /// Key reads that found nothing (or an expired entry).
    pub misses: u64,
    /// Removes that removed an entry.
    pub remove_hits: u64,
    /// Removes that found nothing to remove.
    pub remove_misses: u64,
    /// Entries removed because they expired (by the reaper, on access, or found by clear).
    pub expirations: u64,
    /// Writes refused because their key was locked past the acquire timeout (transactional
    /// caches only).
    pub lock_conflicts: u64,
}

/// The counters behind [`Stats`], one set per shard so that hot keys in different shards do not
/// contend on one cache line.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    stores: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    remove_hits: AtomicU64,
    remove_misses: AtomicU64,
}

impl Counters {
    pub(crate) fn store(&self) {
        self.stores.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn remove(&self, hit: bool) {
        let counter = if hit {
            &self.remove_hits
        } else {
            &self.remove_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds this shard's counts to `stats`.
    pub(crate) fn add_to(&self, stats: &mut Stats) {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        stats.stores += self.stores.load(Ordering::Relaxed);
        stats.hits += hits;
        stats.misses += misses;
        stats.retrievals += hits + misses;
        stats.remove_hits += self.remove_hits.load(Ordering::Relaxed);
        stats.remove_misses += self.remove_misses.load(Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let c = Counters::default();
        c.store();
        c.read(true);
        c.read(false);
        c.read(false);
        c.remove(true);
        c.remove(false);
        let mut s = Stats::default();
        c.add_to(&mut s);
        c.add_to(&mut s);
        assert_eq!(s.stores, 2);
        assert_eq!((s.hits, s.misses, s.retrievals), (2, 4, 6));
        assert_eq!((s.remove_hits, s.remove_misses), (2, 2));
    }
}
