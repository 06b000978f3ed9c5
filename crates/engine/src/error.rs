//! The engine's error type.

use bytes::Bytes;

use crate::locks::LockError;

/// Why an engine operation failed.
///
/// Each variant maps to a Hot Rod error response in the server; none is caused by a bug the
/// client could not see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No cache of that name exists. The server's error message must contain
    /// `CacheNotFoundException`, which Keycloak looks for.
    #[error("cache not found: {0}")]
    CacheNotFound(String),
    /// A cache of that name already exists.
    #[error("cache already exists: {0}")]
    CacheExists(String),
    /// The write would add a new key to a cache that already holds its configured bound.
    /// Ironrod never evicts to make room: acknowledged writes are never lost.
    #[error("cache {cache} is full: it holds its bound of {bound} entries")]
    EntryBoundReached {
        /// The cache's name.
        cache: String,
        /// The configured bound.
        bound: u64,
    },
    /// Segment counts must be powers of two between 1 and 65 536.
    #[error("segment count {0} is not a power of two between 1 and 65536")]
    InvalidSegmentCount(u32),
    /// An iteration asked for a segment the cache does not have.
    #[error("segment {segment} is out of range: the cache has {count} segments")]
    InvalidSegment {
        /// The segment asked for.
        segment: u32,
        /// The cache's segment count.
        count: u32,
    },
    /// A key stayed locked by another transaction for the whole acquire timeout (at once, for
    /// a zero timeout); the text is Infinispan's `ISPN000299`.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A transaction's expectation about a key (absent, or the version it read) no longer held
    /// at prepare.
    #[error("write skew detected on key {}", .key.escape_ascii())]
    WriteSkew {
        /// The key whose committed state changed.
        key: Bytes,
    },
    /// The prepare hook (the site bridge) refused the transaction.
    #[error("transaction vetoed at prepare: {0}")]
    Vetoed(String),
    /// A transactional operation on a cache that is not transactional.
    #[error("cache {cache} is not transactional")]
    NotTransactional {
        /// The cache's name.
        cache: String,
    },
}
