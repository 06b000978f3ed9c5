//! The stored form of an entry, laid out for memory.
//!
//! One entry is a 32-byte [`Entry`] in its segment's slab plus one heap allocation holding the key
//! and value (`[key length as LEB128][key][value]`), plus, only for entries that can expire, a
//! 32-byte [`Mortal`] block. Immortal entries need no timestamps because the Hot Rod metadata
//! block omits them when lifespan and max-idle are infinite; max-idle-only entries are mortal
//! because they need last-used.
//!
//! Estimated overhead per immortal entry at 1 M entries of 100-byte values (256 segments, so about
//! 3 900 entries per segment), beyond the key and value bytes:
//!
//! | part | bytes |
//! |---|---|
//! | `Entry` in the slab (`Vec`, ≤ 2× growth; 4 096 slots for 3 906 entries) | 32 × 1.05 ≈ 34 |
//! | index slot in `hashbrown::HashTable<u32>` (4 B + 1 control byte; 8 192 buckets at that size) | 5 × 2.1 ≈ 10.5 |
//! | key-length prefix | 1 |
//! | allocator header and rounding of the key+value block (glibc: 8 B + round to 16) | ≈ 8–15 |
//! | total | ≈ 54–61 |
//!
//! A `HashTable<Entry>` holding the 32-byte entries directly would cost 33 B × 2.1 ≈ 69 B per
//! entry at exactly this size, because 1 M entries sit just above the 7/8 load limit of a
//! power-of-two table; indexing a dense slab with 4-byte positions avoids that. A mortal entry
//! adds its 32-byte `Mortal` plus 16 bytes of allocator overhead.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::metadata::{CacheEntry, Metadata, Versioned};

/// Marks an infinite lifespan or max-idle inside [`Mortal`], which keeps the block at 32 bytes
/// (an `Option<u64>` would take 16).
const NEVER: u64 = u64::MAX;

/// One stored entry.
#[derive(Debug)]
pub(crate) struct Entry {
    /// `[key length as LEB128][key][value]`.
    bytes: Box<[u8]>,
    version: u64,
    mortal: Option<Box<Mortal>>,
}

/// Timestamps and durations of an entry that can expire.
#[derive(Debug)]
pub(crate) struct Mortal {
    created: u64,
    /// Refreshed by reads under the shard's *shared* lock, hence atomic.
    last_used: AtomicU64,
    lifespan: u64,
    max_idle: u64,
}

impl Entry {
    /// A new entry written at `now`; `lifespan`/`max_idle` are milliseconds, `None` infinite.
    pub(crate) fn new(
        key: &[u8],
        value: &[u8],
        version: u64,
        lifespan: Option<u64>,
        max_idle: Option<u64>,
        now: u64,
    ) -> Self {
        // Exactly sized, so that turning it into a boxed slice does not reallocate.
        let prefix = (usize::BITS - key.len().leading_zeros()).div_ceil(7).max(1) as usize;
        let mut bytes = Vec::with_capacity(prefix + key.len() + value.len());
        let mut len = key.len();
        loop {
            let low = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                bytes.push(low);
                break;
            }
            bytes.push(low | 0x80);
        }
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        let mortal = (lifespan.is_some() || max_idle.is_some()).then(|| {
            Box::new(Mortal {
                created: now,
                last_used: AtomicU64::new(now),
                lifespan: lifespan.unwrap_or(NEVER),
                max_idle: max_idle.unwrap_or(NEVER),
            })
        });
        Self {
            bytes: bytes.into_boxed_slice(),
            version,
            mortal,
        }
    }

    /// The key bytes.
    pub(crate) fn key(&self) -> &[u8] {
        self.split().0
    }

    /// The value bytes.
    pub(crate) fn value(&self) -> &[u8] {
        self.split().1
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Whether the entry has expired at `now` (Infinispan `ExpiryHelper`: expired once
    /// `now > created + lifespan` or `now > lastUsed + maxIdle`).
    /// Whether the entry can expire at all; immortal entries need no clock reading.
    pub(crate) fn is_mortal(&self) -> bool {
        self.mortal.is_some()
    }

    pub(crate) fn is_expired(&self, now: u64) -> bool {
        let Some(m) = &self.mortal else {
            return false;
        };
        let past =
            |start: u64, duration: u64| duration != NEVER && now > start.saturating_add(duration);
        past(m.created, m.lifespan) || past(m.last_used.load(Ordering::Relaxed), m.max_idle)
    }

    /// Records a read at `now`. Never moves last-used backwards, as concurrent readers may
    /// arrive out of order.
    pub(crate) fn touch(&self, now: u64) {
        if let Some(m) = &self.mortal {
            m.last_used.fetch_max(now, Ordering::Relaxed);
        }
    }

    pub(crate) fn metadata(&self) -> Metadata {
        let finite = |d: u64| (d != NEVER).then_some(d);
        match &self.mortal {
            None => Metadata {
                version: self.version,
                created: None,
                last_used: None,
                lifespan: None,
                max_idle: None,
            },
            Some(m) => Metadata {
                version: self.version,
                created: Some(m.created),
                last_used: Some(m.last_used.load(Ordering::Relaxed)),
                lifespan: finite(m.lifespan),
                max_idle: finite(m.max_idle),
            },
        }
    }

    /// A copy of the value with its metadata.
    pub(crate) fn versioned(&self) -> Versioned {
        Versioned {
            value: Bytes::copy_from_slice(self.value()),
            metadata: self.metadata(),
        }
    }

    /// A copy of key, value and metadata.
    pub(crate) fn to_cache_entry(&self) -> CacheEntry {
        let (key, value) = self.split();
        CacheEntry {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            metadata: self.metadata(),
        }
    }

    /// Splits the block into key and value.
    fn split(&self) -> (&[u8], &[u8]) {
        let mut len = 0usize;
        let mut prefix = 0usize;
        for (i, &b) in self.bytes.iter().enumerate() {
            len |= usize::from(b & 0x7f).checked_shl(7 * i as u32).unwrap_or(0);
            if b & 0x80 == 0 {
                prefix = i + 1;
                break;
            }
        }
        // `new` wrote the prefix, so both splits succeed; the fallbacks only keep this total.
        let rest = self.bytes.get(prefix..).unwrap_or_default();
        rest.split_at_checked(len).unwrap_or((rest, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_layout_sizes() {
        let entry = std::mem::size_of::<Entry>();
        let mortal = std::mem::size_of::<Mortal>();
        println!("size_of::<Entry>() = {entry}, size_of::<Mortal>() = {mortal}");
        assert_eq!(entry, 32);
        assert_eq!(mortal, 32);
    }

    #[test]
    fn key_and_value_round_trip() {
        for key_len in [0usize, 1, 127, 128, 300, 20_000] {
            let key: Vec<u8> = (0..key_len).map(|i| i as u8).collect();
            let e = Entry::new(&key, b"value", 1, None, None, 0);
            assert_eq!(e.key(), &key[..]);
            assert_eq!(e.value(), b"value");
        }
        let e = Entry::new(b"k", b"", 1, None, None, 0);
        assert_eq!((e.key(), e.value()), (&b"k"[..], &b""[..]));
    }

    #[test]
    fn immortal_entries_have_no_timestamps() {
        let e = Entry::new(b"k", b"v", 3, None, None, 100);
        assert!(e.mortal.is_none());
        assert!(e.metadata().is_immortal());
        assert_eq!(e.metadata().created, None);
        assert!(!e.is_expired(u64::MAX));
    }

    #[test]
    fn lifespan_expires_after_not_at() {
        let e = Entry::new(b"k", b"v", 1, Some(10), None, 100);
        assert!(!e.is_expired(110));
        assert!(e.is_expired(111));
        e.touch(110);
        assert!(e.is_expired(111), "reads do not extend a lifespan");
    }

    #[test]
    fn max_idle_is_refreshed_by_touch() {
        let e = Entry::new(b"k", b"v", 1, None, Some(10), 100);
        assert_eq!(e.metadata().lifespan, None);
        assert_eq!(e.metadata().created, Some(100));
        e.touch(109);
        assert!(!e.is_expired(119));
        assert!(e.is_expired(120));
        e.touch(50);
        assert_eq!(e.metadata().last_used, Some(109), "never moves backwards");
    }
}
