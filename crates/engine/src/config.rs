//! Per-cache configuration.

use std::time::Duration;

use crate::error::EngineError;
use crate::segment::{Segments, DEFAULT_SEGMENTS};
use crate::tx_config::TxConfig;

/// The configuration of one cache.
///
/// What happens at the entry bound: a write that would add a *new* key while the cache holds
/// `max_entries` entries fails with [`EngineError::EntryBoundReached`]; writes to existing keys and
/// removals still succeed. Ironrod never evicts, because an evicted session is an acknowledged
/// write lost (Infinispan's eviction would drop it silently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// The media type reported to clients for keys and values (PING, GET_WITH_METADATA…). Values
    /// are stored as sent; the engine never transcodes.
    pub media_type: String,
    /// Lifespan in milliseconds applied when a write asks for the default; `None` is infinite.
    pub lifespan: Option<u64>,
    /// Max-idle in milliseconds applied when a write asks for the default; `None` is infinite.
    pub max_idle: Option<u64>,
    /// How often the server should call [`crate::Cache::reap`]. The engine does not schedule it.
    pub reaper_interval: Duration,
    /// The segment count, a power of two (Infinispan's default is 256).
    pub segments: u32,
    /// The most entries the cache may hold; `None` is unbounded.
    pub max_entries: Option<u64>,
    /// Transaction mode, locking, acquire timeout and isolation; not transactional by default.
    pub transaction: TxConfig,
}

impl CacheConfig {
    /// Infinispan's default media type for caches without an encoding.
    pub const OCTET_STREAM: &'static str = "application/octet-stream";
    /// What Keycloak 26 configures for its caches.
    pub const PROTOSTREAM: &'static str = "application/x-protostream";

    /// Checks the configuration and yields the segment layout.
    pub(crate) fn validate(&self) -> Result<Segments, EngineError> {
        Segments::new(self.segments)
    }
}

impl Default for CacheConfig {
    /// Octet-stream values, no expiration, a 60 s reaper interval (Infinispan's
    /// `expiration.wake-up-interval` default), 256 segments, no bound.
    fn default() -> Self {
        Self {
            media_type: Self::OCTET_STREAM.to_owned(),
            lifespan: None,
            max_idle: None,
            reaper_interval: Duration::from_secs(60),
            segments: DEFAULT_SEGMENTS,
            max_entries: None,
            transaction: TxConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        let c = CacheConfig::default();
        assert_eq!(c.validate().unwrap().count(), 256);
        assert_eq!(c.media_type, "application/octet-stream");
    }

    #[test]
    fn bad_segment_count_is_rejected() {
        let c = CacheConfig {
            segments: 100,
            ..CacheConfig::default()
        };
        assert_eq!(c.validate(), Err(EngineError::InvalidSegmentCount(100)));
    }
}
