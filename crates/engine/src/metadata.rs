//! What reads hand back: values with their metadata, as owned copies.
//!
//! These are views, copied out of the store under the shard lock, so that the caller holds no
//! lock while it encodes a response.

use bytes::Bytes;

/// An entry's metadata as Hot Rod reports it (GET_WITH_METADATA, iteration with metadata).
///
/// Immortal entries carry no timestamps: the Hot Rod metadata block omits created/last-used when
/// lifespan and max-idle are both infinite, so the engine does not store them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// The entry's version: unique within the cache, strictly positive, and strictly greater than
    /// every version the cache handed out before.
    pub version: u64,
    /// When the entry was last written, in epoch milliseconds; `None` for immortal entries.
    pub created: Option<u64>,
    /// When the entry was last read or written, in epoch milliseconds; `None` for immortal
    /// entries.
    pub last_used: Option<u64>,
    /// Lifespan in milliseconds, counted from `created`; `None` is infinite.
    pub lifespan: Option<u64>,
    /// Max-idle in milliseconds, counted from `last_used`; `None` is infinite.
    pub max_idle: Option<u64>,
}

impl Metadata {
    /// Whether the entry never expires.
    pub fn is_immortal(&self) -> bool {
        self.lifespan.is_none() && self.max_idle.is_none()
    }
}

/// A value with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value bytes, as the client sent them.
    pub value: Bytes,
    /// Version and expiration data.
    pub metadata: Metadata,
}

/// A key, its value and metadata; what bulk reads and iteration return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The key bytes, as the client sent them.
    pub key: Bytes,
    /// The value bytes, as the client sent them.
    pub value: Bytes,
    /// Version and expiration data.
    pub metadata: Metadata,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immortal_means_both_infinite() {
        let mut m = Metadata {
            version: 1,
            created: None,
            last_used: None,
            lifespan: None,
            max_idle: None,
        };
        assert!(m.is_immortal());
        m.max_idle = Some(1);
        assert!(!m.is_immortal());
    }
}
