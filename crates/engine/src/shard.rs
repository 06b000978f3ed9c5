//! One segment's entries: a dense slab indexed by a hash table of positions.
//!
//! The engine keeps one shard per segment, each behind its own `parking_lot` lock, so there is
//! no global lock on the read/write path and iterating a segment reads one shard. See
//! [`crate::entry`] for why the slab and index are separate.

use hashbrown::HashTable;
use parking_lot::RwLock;

use crate::entry::Entry;
use crate::segment::table_hash_of;
use crate::stats::Counters;

/// A segment's lock-protected entries and its statistics.
///
/// Aligned to 128 bytes so that neighbouring shards' locks and counters do not share cache
/// lines (two lines, for adjacent-line prefetch).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Shard {
    pub(crate) slab: RwLock<Slab>,
    pub(crate) counters: Counters,
}

/// One shard per segment; never empty, so looking one up needs no failure path.
#[derive(Debug)]
pub(crate) struct Shards {
    first: Shard,
    rest: Box<[Shard]>,
}

impl Shards {
    /// `count` shards, at least one.
    pub(crate) fn new(count: u32) -> Self {
        Self {
            first: Shard::default(),
            rest: (1..count).map(|_| Shard::default()).collect(),
        }
    }

    /// The shard of `segment`, if the cache has that segment.
    pub(crate) fn get(&self, segment: u32) -> Option<&Shard> {
        match segment.checked_sub(1) {
            None => Some(&self.first),
            Some(i) => self.rest.get(i as usize),
        }
    }

    /// The shard of a segment computed by [`crate::Segments`], which is always below the count;
    /// the fallback to the first shard is never taken.
    pub(crate) fn of(&self, segment: u32) -> &Shard {
        self.get(segment).unwrap_or(&self.first)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Shard> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }
}

/// Entries stored densely, and an index from key hash to position.
///
/// Positions are `u32`: a shard of more than 4 G entries is far beyond any memory this runs in.
#[derive(Debug, Default)]
pub(crate) struct Slab {
    entries: Vec<Entry>,
    index: HashTable<u32>,
}

impl Slab {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn get(&self, pos: usize) -> Option<&Entry> {
        self.entries.get(pos)
    }

    /// The position of `key`, whose table hash is `hash`.
    pub(crate) fn position(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |&pos| {
                entries.get(pos as usize).is_some_and(|e| e.key() == key)
            })
            .map(|&pos| pos as usize)
    }

    /// The entry of `key`, whose table hash is `hash`.
    pub(crate) fn find(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        self.position(hash, key)
            .and_then(|pos| self.entries.get(pos))
    }

    /// Adds an entry whose key is not present; returns its position.
    pub(crate) fn insert(&mut self, hash: u64, entry: Entry) -> usize {
        let pos = self.entries.len();
        self.entries.push(entry);
        let entries = &self.entries;
        self.index.insert_unique(hash, pos as u32, |&p| {
            entries
                .get(p as usize)
                .map_or(0, |e| table_hash_of(e.key()))
        });
        pos
    }

    /// Puts `entry` (same key) at `pos`; returns what was there.
    pub(crate) fn replace(&mut self, pos: usize, entry: Entry) -> Option<Entry> {
        self.entries
            .get_mut(pos)
            .map(|slot| std::mem::replace(slot, entry))
    }

    /// Removes the entry at `pos` (its key hashes to `hash`), moving the last entry into the gap.
    pub(crate) fn remove(&mut self, hash: u64, pos: usize) -> Option<Entry> {
        let last = self.entries.len().checked_sub(1)?;
        if pos > last {
            return None;
        }
        if let Ok(slot) = self.index.find_entry(hash, |&p| p as usize == pos) {
            slot.remove();
        }
        let removed = self.entries.swap_remove(pos);
        if pos != last {
            if let Some(moved) = self.entries.get(pos) {
                let moved_hash = table_hash_of(moved.key());
                if let Some(p) = self.index.find_mut(moved_hash, |&p| p as usize == last) {
                    *p = pos as u32;
                }
            }
        }
        Some(removed)
    }

    /// Removes every entry.
    pub(crate) fn take_all(&mut self) -> Vec<Entry> {
        self.index = HashTable::new();
        std::mem::take(&mut self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &[u8]) -> Entry {
        Entry::new(key, b"v", 1, None, None, 0)
    }

    fn hash(key: &[u8]) -> u64 {
        table_hash_of(key)
    }

    #[test]
    fn insert_find_remove_keeps_the_index_right() {
        let mut slab = Slab::default();
        let keys: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_le_bytes().to_vec()).collect();
        for k in &keys {
            slab.insert(hash(k), entry(k));
        }
        assert_eq!(slab.len(), 100);
        // Remove every third key, from the front so that moves happen.
        for k in keys.iter().step_by(3) {
            let pos = slab.position(hash(k), k).unwrap();
            let removed = slab.remove(hash(k), pos).unwrap();
            assert_eq!(removed.key(), &k[..]);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(slab.find(hash(k), k).is_some(), i % 3 != 0, "key {i}");
        }
        assert_eq!(slab.len(), 66);
        assert_eq!(slab.take_all().len(), 66);
        assert!(slab.find(hash(&keys[1]), &keys[1]).is_none());
    }

    #[test]
    fn replace_and_out_of_range() {
        let mut slab = Slab::default();
        let pos = slab.insert(hash(b"a"), entry(b"a"));
        let old = slab
            .replace(pos, Entry::new(b"a", b"w", 2, None, None, 0))
            .unwrap();
        assert_eq!(old.value(), b"v");
        assert_eq!(slab.get(pos).unwrap().value(), b"w");
        assert!(slab.replace(5, entry(b"a")).is_none());
        assert!(slab.remove(hash(b"a"), 5).is_none());
        assert!(Slab::default().remove(0, 0).is_none());
    }

    #[test]
    fn shards_lookup() {
        let shards = Shards::new(4);
        assert_eq!(shards.iter().count(), 4);
        assert!(shards.get(3).is_some());
        assert!(shards.get(4).is_none());
        assert!(std::ptr::eq(shards.of(0), shards.get(0).unwrap()));
        assert_eq!(Shards::new(1).iter().count(), 1);
    }

    #[test]
    fn shards_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<Shard>(), 128);
    }
}
