//! Ironrod's cache engine.
//!
//! **Owns:** named caches ([`CacheManager`], [`Cache`]) and everything about an entry — value
//! bytes, versions (unique, strictly increasing per cache, starting at 1), expiration (lifespan,
//! max-idle, checked on access and by the sans-I/O reaper [`Cache::reap`]), the conditional
//! operations with outcomes rich enough for Hot Rod's statuses and previous values, iteration by
//! segment, statistics, the per-cache entry bound, the key → segment mapping Infinispan clients
//! use ([`murmur`], [`Segments`]), and the change feed ([`Subscriber`]) that client listeners and
//! the site bridge consume, in version order per key.
//!
//! **Does not own:** sockets, timers and the wire format (the server crate schedules the reaper
//! and the `ironrod-codec` crate encodes; this crate must not depend on it), listener queues and
//! filtering (`ironrod-events`), replication (`ironrod-xsite`). Time comes from a [`Clock`].
//!
//! **Transactions:** a cache configured transactional ([`TxConfig`]) runs every write as an
//! implicit transaction over the [`locks`] table (zero-timeout pessimistic locks), with a
//! private [`write_set`], a [`PrepareHook`] where the site bridge can veto, and commit or
//! rollback; Hot Rod remote transactions use [`Cache::prepare`] and [`PreparedTx`]. See [`tx`].
//!
//! Layout and memory per entry: see [`entry`]. Concurrency: one shard per segment, each with its
//! own lock; see [`shard`].

pub mod cache;
pub mod clock;
pub mod config;
pub mod entry;
pub mod error;
pub mod feed;
pub mod iteration;
pub mod locks;
pub mod manager;
pub mod metadata;
pub mod murmur;
pub mod options;
pub mod outcome;
pub mod segment;
pub mod shard;
pub mod stats;
pub mod tx;
pub mod tx_config;
pub mod write_set;

pub use cache::Cache;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::CacheConfig;
pub use error::EngineError;
pub use feed::{Change, ChangeKind, Subscriber, SubscriptionId};
pub use iteration::Iteration;
pub use locks::{LockError, LockGuard, LockOwner, LockTable};
pub use manager::CacheManager;
pub use metadata::{CacheEntry, Metadata, Versioned};
pub use options::{Expiration, WriteOptions};
pub use outcome::{PutIfAbsent, RemoveIfUnmodified, Replace, ReplaceIfUnmodified};
pub use segment::Segments;
pub use stats::Stats;
pub use tx::{PrepareHook, PreparedTx, Veto};
pub use tx_config::{Isolation, LockingMode, ParseSettingError, TxConfig, TxMode};
pub use write_set::{Action, Expect, TxWrite, WriteSet};
