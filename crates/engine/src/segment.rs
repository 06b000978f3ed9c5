//! Key → segment mapping, computed exactly as Infinispan servers and clients compute it.
//!
//! `HashFunctionPartitioner` and the client's `SegmentConsistentHash` take
//! `MurmurHash3.hash(keyBytes) & 0x7FFFFFFF` and divide it by
//! `segmentSize = ceil(2^31 / numSegments)` [src: infinispan/infinispan:
//! core/.../distribution/ch/impl/HashFunctionPartitioner.java, commons/.../util/Util.java
//! `getSegmentSize`]. Ironrod requires a power-of-two count (the JS client computes the segment
//! size differently for other counts).

use crate::error::EngineError;
use crate::murmur;

/// Infinispan's default segment count.
pub const DEFAULT_SEGMENTS: u32 = 256;

/// The segment layout of one cache: how many segments, and how a key maps to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    count: u32,
    size: u32,
}

/// A key's hashes, computed once per operation: the segment it lives in and the hash the engine's
/// own tables use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyHash {
    pub(crate) segment: u32,
    pub(crate) table: u64,
}

impl Segments {
    /// The most segments a cache may have. The engine keeps one shard per segment, so the
    /// count is also the number of shard locks.
    pub const MAX: u32 = 1 << 16;

    /// A layout of `count` segments; `count` must be a power of two between 1 and [`Self::MAX`].
    pub fn new(count: u32) -> Result<Self, EngineError> {
        if !count.is_power_of_two() || count > Self::MAX {
            return Err(EngineError::InvalidSegmentCount(count));
        }
        // ceil(2^31 / count); exact because count is a power of two.
        let size = ((1u64 << 31) / u64::from(count)) as u32;
        Ok(Self { count, size })
    }

    /// How many segments there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// `ceil(2^31 / count)`, the width of one segment in hash space.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The segment of `key`, as an Infinispan client computes it from the key bytes.
    pub fn of(&self, key: &[u8]) -> u32 {
        self.segment_of_hash(murmur::hash(key))
    }

    /// The segment for an Infinispan 32-bit hash.
    pub fn segment_of_hash(&self, hash: i32) -> u32 {
        (hash as u32 & 0x7FFF_FFFF) / self.size
    }

    /// Segment and table hash of `key` in one pass over its bytes.
    pub(crate) fn key_hash(&self, key: &[u8]) -> KeyHash {
        let h1 = murmur::x64_64(key, murmur::SEED);
        KeyHash {
            segment: self.segment_of_hash((h1 >> 32) as u32 as i32),
            table: table_hash(h1),
        }
    }
}

impl Default for Segments {
    fn default() -> Self {
        Self {
            count: DEFAULT_SEGMENTS,
            size: ((1u64 << 31) / u64::from(DEFAULT_SEGMENTS)) as u32,
        }
    }
}

/// The hash the per-segment tables use.
///
/// Within one segment the top bits of the Infinispan hash are all equal, and `hashbrown` takes its
/// control byte from the top 7 bits; multiplying by an odd constant spreads the low, well-mixed
/// bits of h1 into the top ones.
pub(crate) fn table_hash(h1: u64) -> u64 {
    h1.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The table hash of `key`, for rehashing stored keys.
pub(crate) fn table_hash_of(key: &[u8]) -> u64 {
    table_hash(murmur::x64_64(key, murmur::SEED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_counts_that_are_not_powers_of_two() {
        assert!(Segments::new(0).is_err());
        assert!(Segments::new(20).is_err());
        assert!(Segments::new(255).is_err());
        assert!(Segments::new(1 << 17).is_err());
        assert_eq!(Segments::new(1).unwrap().size(), 1 << 31);
        assert_eq!(Segments::new(256).unwrap().size(), 8_388_608);
    }

    #[test]
    fn segments_cover_the_hash_space() {
        let s = Segments::new(256).unwrap();
        assert_eq!(s.segment_of_hash(0), 0);
        assert_eq!(s.segment_of_hash(i32::MAX), 255);
        assert_eq!(s.segment_of_hash(-1), 255);
        assert_eq!(s.segment_of_hash(i32::MIN), 0);
    }

    #[test]
    fn key_hash_agrees_with_of() {
        let s = Segments::new(64).unwrap();
        for key in [&b""[..], b"a", b"0123456789abcdef0", &[0xff; 33]] {
            assert_eq!(s.key_hash(key).segment, s.of(key));
            assert_eq!(s.key_hash(key).table, table_hash_of(key));
        }
    }

    #[test]
    fn default_is_256() {
        assert_eq!(Segments::default(), Segments::new(256).unwrap());
    }
}
