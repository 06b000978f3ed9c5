//! One named cache: the read and write paths.
//!
//! Every keyed operation hashes the key once (segment and table hash), then works on that
//! segment's shard alone: reads under the shard's shared lock (refreshing last-used through an
//! atomic), writes under its exclusive lock. A write is split into *decide* (look at the live
//! entry, choose a [`Plan`] and the outcome) and *apply* (version, store, publish), both under the
//! lock. On a transactional cache the write runs as an implicit transaction around the two
//! steps (key lock, write set, prepare hook; see [`crate::tx`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Clock;
use crate::config::CacheConfig;
use crate::entry::Entry;
use crate::error::EngineError;
use crate::feed::{Change, ChangeFeed, ChangeKind, Subscriber, SubscriptionId};
use crate::metadata::Versioned;
use crate::options::WriteOptions;
use crate::outcome::{PutIfAbsent, RemoveIfUnmodified, Replace, ReplaceIfUnmodified};
use crate::segment::{KeyHash, Segments};
use crate::shard::{Shard, Shards, Slab};
use crate::stats::Stats;
use crate::tx::TxState;

/// A named cache. Shared between connections as `Arc<Cache>`; every method takes `&self`.
pub struct Cache {
    name: String,
    config: CacheConfig,
    segments: Segments,
    /// One shard per segment, indexed by segment.
    shards: Shards,
    clock: Arc<dyn Clock>,
    /// The next version to hand out; starts at 1 so that versions are strictly positive.
    next_version: AtomicU64,
    /// Entries stored, live or expired-but-not-yet-removed; enforces the entry bound.
    stored: AtomicU64,
    /// Entries that expired (see [`Stats::expirations`]).
    expired: AtomicU64,
    started: u64,
    feed: ChangeFeed,
    /// Lock table and prepare hook; `Some` for a transactional cache (see [`crate::tx`]).
    tx: Option<TxState>,
}

/// What a write decided to do to its key.
pub(crate) enum Plan<'v> {
    /// Leave the key alone.
    Keep,
    /// Store this value (creating or replacing the entry).
    Put(&'v [u8]),
    /// Remove the live entry.
    Remove,
}

impl Cache {
    /// A new, empty cache.
    pub fn new(
        name: impl Into<String>,
        config: CacheConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EngineError> {
        let segments = config.validate()?;
        let shards = Shards::new(segments.count());
        let started = clock.now();
        let tx = config
            .transaction
            .is_transactional()
            .then(|| TxState::new(clock.clone()));
        Ok(Self {
            name: name.into(),
            config,
            segments,
            shards,
            clock,
            next_version: AtomicU64::new(1),
            stored: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            started,
            feed: ChangeFeed::default(),
            tx,
        })
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cache's configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The media type reported to clients for keys and values.
    pub fn media_type(&self) -> &str {
        &self.config.media_type
    }

    /// The segment layout (the server reports the count in topology and iteration replies).
    pub fn segments(&self) -> Segments {
        self.segments
    }

    /// The value of `key`; refreshes last-used.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.read(key, |e| Bytes::copy_from_slice(e.value()))
    }

    /// The value of `key` with its metadata; refreshes last-used (the metadata shows the refresh).
    pub fn get_with_metadata(&self, key: &[u8]) -> Option<Versioned> {
        self.read(key, Entry::versioned)
    }

    /// Whether `key` has a live entry; counts as a read (Infinispan's `containsKey` is a get).
    pub fn contains(&self, key: &[u8]) -> bool {
        self.read(key, |_| ()).is_some()
    }

    /// The live entries of `keys` (Hot Rod GET_ALL); missing keys are left out.
    pub fn get_all<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Vec<(Bytes, Bytes)> {
        keys.into_iter()
            .filter_map(|k| {
                self.read(k, |e| {
                    (
                        Bytes::copy_from_slice(e.key()),
                        Bytes::copy_from_slice(e.value()),
                    )
                })
            })
            .collect()
    }

    /// Stores `value` under `key`; returns the previous live entry.
    pub fn put(
        &self,
        key: &[u8],
        value: &[u8],
        options: &WriteOptions,
    ) -> Result<Option<Versioned>, EngineError> {
        self.write(key, options, |current| {
            (Plan::Put(value), current.map(Entry::versioned))
        })
    }

    /// Stores `value` under `key` without copying out the previous entry (a put whose client
    /// did not ask for the previous value).
    pub fn set(&self, key: &[u8], value: &[u8], options: &WriteOptions) -> Result<(), EngineError> {
        self.write(key, options, |_| (Plan::Put(value), ()))
    }

    /// Calls `f` with the value of `key` while holding the shard's read lock, so a caller can
    /// encode it straight from storage without a copy; refreshes last-used. `f` must be quick:
    /// writers of the shard wait for it.
    pub fn read_value<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.read(key, |e| f(e.value()))
    }

    /// Stores every pair (Hot Rod PUT_ALL). Not atomic, like Infinispan's: if the entry bound
    /// stops it, the pairs before the failing one stay stored.
    pub fn put_all<'k>(
        &self,
        entries: impl IntoIterator<Item = (&'k [u8], &'k [u8])>,
        options: &WriteOptions,
    ) -> Result<(), EngineError> {
        if self.tx.is_some() {
            return self.put_all_in_tx(entries, options);
        }
        for (key, value) in entries {
            self.set(key, value, options)?;
        }
        Ok(())
    }

    /// Stores `value` only if `key` has no live entry.
    pub fn put_if_absent(
        &self,
        key: &[u8],
        value: &[u8],
        options: &WriteOptions,
    ) -> Result<PutIfAbsent, EngineError> {
        self.write(key, options, |current| match current {
            Some(e) => (Plan::Keep, PutIfAbsent::Existing(e.versioned())),
            None => (Plan::Put(value), PutIfAbsent::Stored),
        })
    }

    /// Stores `value` only if `key` has a live entry.
    pub fn replace(
        &self,
        key: &[u8],
        value: &[u8],
        options: &WriteOptions,
    ) -> Result<Replace, EngineError> {
        self.write(key, options, |current| match current {
            Some(e) => (
                Plan::Put(value),
                Replace::Replaced {
                    previous: e.versioned(),
                },
            ),
            None => (Plan::Keep, Replace::NotFound),
        })
    }

    /// Stores `value` only if the live entry has version `version`.
    pub fn replace_if_unmodified(
        &self,
        key: &[u8],
        version: u64,
        value: &[u8],
        options: &WriteOptions,
    ) -> Result<ReplaceIfUnmodified, EngineError> {
        self.write(key, options, |current| match current {
            None => (Plan::Keep, ReplaceIfUnmodified::NotFound),
            Some(e) if e.version() == version => (
                Plan::Put(value),
                ReplaceIfUnmodified::Replaced {
                    previous: e.versioned(),
                },
            ),
            Some(e) => (
                Plan::Keep,
                ReplaceIfUnmodified::VersionMismatch {
                    current: e.versioned(),
                },
            ),
        })
    }

    /// Removes `key`; returns the removed live entry. Only the skip-listener flag of `options`
    /// matters.
    pub fn remove(
        &self,
        key: &[u8],
        options: &WriteOptions,
    ) -> Result<Option<Versioned>, EngineError> {
        let kh = self.segments.key_hash(key);
        let previous = self.write_hashed(kh, key, options, |current| match current {
            Some(e) => (Plan::Remove, Some(e.versioned())),
            None => (Plan::Keep, None),
        })?;
        self.shard(kh).counters.remove(previous.is_some());
        Ok(previous)
    }

    /// Removes `key` only if the live entry has version `version`.
    pub fn remove_if_unmodified(
        &self,
        key: &[u8],
        version: u64,
        options: &WriteOptions,
    ) -> Result<RemoveIfUnmodified, EngineError> {
        let kh = self.segments.key_hash(key);
        let outcome = self.write_hashed(kh, key, options, |current| match current {
            None => (Plan::Keep, RemoveIfUnmodified::NotFound),
            Some(e) if e.version() == version => (
                Plan::Remove,
                RemoveIfUnmodified::Removed {
                    previous: e.versioned(),
                },
            ),
            Some(e) => (
                Plan::Keep,
                RemoveIfUnmodified::VersionMismatch {
                    current: e.versioned(),
                },
            ),
        })?;
        match outcome {
            RemoveIfUnmodified::Removed { .. } => self.shard(kh).counters.remove(true),
            RemoveIfUnmodified::NotFound => self.shard(kh).counters.remove(false),
            RemoveIfUnmodified::VersionMismatch { .. } => {}
        }
        Ok(outcome)
    }

    /// Removes every entry, publishing a `Removed` change for each (as Infinispan fires a removed
    /// event per entry on clear), or `Expired` for entries that had already expired. Shard by
    /// shard: a write racing with the clear may survive it. Returns how many entries went away.
    pub fn clear(&self, options: &WriteOptions) -> Result<usize, EngineError> {
        let hook = self.prepare_hook();
        if let Some(h) = &hook {
            h.prepare_clear(self.name())
                .map_err(|crate::tx::Veto(reason)| EngineError::Vetoed(reason))?;
        }
        let now = self.clock.now();
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut slab = shard.slab.write();
            let entries = slab.take_all();
            self.stored
                .fetch_sub(entries.len() as u64, Ordering::Relaxed);
            removed += entries.len();
            for entry in &entries {
                let kind = if entry.is_expired(now) {
                    ChangeKind::Expired
                } else {
                    ChangeKind::Removed
                };
                self.publish_removal(kind, entry, options.skip_listener_notification);
            }
        }
        if let Some(h) = &hook {
            h.cleared(self.name());
        }
        Ok(removed)
    }

    /// Removes every expired entry and publishes an `Expired` change for each; returns how many.
    ///
    /// Sans-I/O: the server calls it every [`CacheConfig::reaper_interval`]. A shard is only
    /// locked exclusively if a shared-lock scan found something to remove.
    pub fn reap(&self) -> usize {
        let now = self.clock.now();
        let mut reaped = 0;
        for shard in self.shards.iter() {
            if !shard
                .slab
                .read()
                .entries()
                .iter()
                .any(|e| e.is_expired(now))
            {
                continue;
            }
            let mut slab = shard.slab.write();
            let expired: Vec<usize> = slab
                .entries()
                .iter()
                .enumerate()
                .filter(|(_, e)| e.is_expired(now))
                .map(|(pos, _)| pos)
                .collect();
            // Highest first: `Slab::remove` moves the last entry into the gap, which is then
            // never one of the positions still to remove.
            for &pos in expired.iter().rev() {
                let Some(hash) = slab
                    .get(pos)
                    .map(|e| crate::segment::table_hash_of(e.key()))
                else {
                    continue;
                };
                if let Some(entry) = self.remove_at(&mut slab, hash, pos) {
                    self.publish_removal(ChangeKind::Expired, &entry, false);
                    reaped += 1;
                }
            }
        }
        reaped
    }

    /// The number of live entries (Hot Rod SIZE). Counts under each shard's shared lock in turn,
    /// so it is exact when no write runs concurrently.
    pub fn size(&self) -> u64 {
        let now = self.clock.now();
        self.shards
            .iter()
            .map(|s| {
                let slab = s.slab.read();
                slab.entries().iter().filter(|e| !e.is_expired(now)).count() as u64
            })
            .sum()
    }

    /// Up to `limit` live entries (all when `None`), as (key, value) (Hot Rod BULK_GET).
    /// Does not refresh last-used.
    pub fn bulk(&self, limit: Option<usize>) -> Vec<(Bytes, Bytes)> {
        let mut out = Vec::new();
        self.scan(limit, |e| {
            out.push((
                Bytes::copy_from_slice(e.key()),
                Bytes::copy_from_slice(e.value()),
            ));
        });
        out
    }

    /// The keys of all live entries (Hot Rod BULK_GET_KEYS).
    pub fn bulk_keys(&self) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.scan(None, |e| out.push(Bytes::copy_from_slice(e.key())));
        out
    }

    /// The cache's statistics.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats {
            time_since_start: self.clock.now().saturating_sub(self.started) / 1000,
            current_entries: self.size(),
            expirations: self.expired.load(Ordering::Relaxed),
            lock_conflicts: self
                .tx
                .as_ref()
                .map_or(0, |t| t.conflicts.load(Ordering::Relaxed)),
            ..Stats::default()
        };
        for shard in self.shards.iter() {
            shard.counters.add_to(&mut stats);
        }
        stats
    }

    /// Adds a subscriber to the change feed; see [`crate::feed`] for what it may do.
    pub fn subscribe(&self, subscriber: Arc<dyn Subscriber>) -> SubscriptionId {
        self.feed.subscribe(subscriber)
    }

    /// Removes a subscriber; false if it was not subscribed.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.feed.unsubscribe(id)
    }

    pub(crate) fn shard_of_segment(&self, segment: u32) -> Option<&Shard> {
        self.shards.get(segment)
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Stores `entry` at `pos` (replacing) or as a new entry, counts the store and publishes
    /// it on the change feed with the version it got.
    pub(crate) fn install(
        &self,
        slab: &mut Slab,
        shard: &Shard,
        kh: KeyHash,
        pos: Option<usize>,
        entry: Entry,
        skip_listeners: bool,
    ) {
        let (kind, at) = match pos {
            Some(p) => {
                slab.replace(p, entry);
                (ChangeKind::Modified, p)
            }
            None => (ChangeKind::Created, slab.insert(kh.table, entry)),
        };
        shard.counters.store();
        if let Some(stored) = slab.get(at) {
            self.publish(kind, stored, stored.version(), skip_listeners);
        }
    }

    pub(crate) fn shard(&self, kh: KeyHash) -> &Shard {
        self.shards.of(kh.segment)
    }

    /// Runs `f` on the live entry of `key` under the shared lock, refreshing last-used. An
    /// expired entry found here is removed (and published as expired) under the exclusive lock.
    /// The read path. The clock is read only for mortal entries: most of Keycloak's entries
    /// have a lifespan, but an immortal hit costs no system call.
    fn read<R>(&self, key: &[u8], f: impl FnOnce(&Entry) -> R) -> Option<R> {
        let kh = self.segments.key_hash(key);
        let shard = self.shard(kh);
        let now = {
            let slab = shard.slab.read();
            match slab.find(kh.table, key) {
                None => {
                    shard.counters.read(false);
                    return None;
                }
                Some(entry) if !entry.is_mortal() => {
                    shard.counters.read(true);
                    return Some(f(entry));
                }
                Some(entry) => {
                    let now = self.clock.now();
                    if !entry.is_expired(now) {
                        entry.touch(now);
                        shard.counters.read(true);
                        return Some(f(entry));
                    }
                    now
                }
            }
        };
        let mut slab = shard.slab.write();
        self.expire_if_dead(&mut slab, kh, key, now);
        shard.counters.read(false);
        None
    }

    fn write<'v, R>(
        &self,
        key: &[u8],
        options: &WriteOptions,
        decide: impl FnOnce(Option<&Entry>) -> (Plan<'v>, R),
    ) -> Result<R, EngineError> {
        self.write_hashed(self.segments.key_hash(key), key, options, decide)
    }

    /// The write path; on a transactional cache the write is an implicit transaction
    /// ([`crate::tx`]).
    fn write_hashed<'v, R>(
        &self,
        kh: KeyHash,
        key: &[u8],
        options: &WriteOptions,
        decide: impl FnOnce(Option<&Entry>) -> (Plan<'v>, R),
    ) -> Result<R, EngineError> {
        match &self.tx {
            Some(tx) => self.write_in_tx(tx, kh, key, options, decide),
            None => self.write_plain(kh, key, options, || Ok(()), decide),
        }
    }

    /// The plain write path: under the shard's exclusive lock, pass `gate` (a transaction's
    /// key lock, held until the write is done), drop an expired entry, let `decide` look at the
    /// live one, then apply its plan with a fresh version and publish the change before the
    /// lock is released.
    pub(crate) fn write_plain<'v, R, G>(
        &self,
        kh: KeyHash,
        key: &[u8],
        options: &WriteOptions,
        gate: impl FnOnce() -> Result<G, EngineError>,
        decide: impl FnOnce(Option<&Entry>) -> (Plan<'v>, R),
    ) -> Result<R, EngineError> {
        let shard = self.shard(kh);
        let lifespan = options.lifespan.resolve(self.config.lifespan);
        let max_idle = options.max_idle.resolve(self.config.max_idle);
        let mut slab = shard.slab.write();
        let _gate = gate()?;
        let found = slab.position(kh.table, key);
        // The clock is read only when an entry involved can expire.
        let now = match found.and_then(|p| slab.get(p)) {
            Some(e) if e.is_mortal() => self.clock.now(),
            _ if lifespan.is_some() || max_idle.is_some() => self.clock.now(),
            _ => 0,
        };
        let pos = self.expire_at(&mut slab, kh, found, now);
        let (plan, outcome) = decide(pos.and_then(|p| slab.get(p)));
        match plan {
            Plan::Keep => {}
            Plan::Put(value) => {
                if pos.is_none() {
                    self.reserve_slot()?;
                }
                let entry = Entry::new(key, value, self.next_version(), lifespan, max_idle, now);
                self.install(
                    &mut slab,
                    shard,
                    kh,
                    pos,
                    entry,
                    options.skip_listener_notification,
                );
            }
            Plan::Remove => {
                if let Some(entry) = pos.and_then(|p| self.remove_at(&mut slab, kh.table, p)) {
                    self.publish_removal(
                        ChangeKind::Removed,
                        &entry,
                        options.skip_listener_notification,
                    );
                }
            }
        }
        Ok(outcome)
    }

    /// The position of `key`'s live entry; an expired one is removed and published as expired.
    pub(crate) fn expire_if_dead(
        &self,
        slab: &mut Slab,
        kh: KeyHash,
        key: &[u8],
        now: u64,
    ) -> Option<usize> {
        let found = slab.position(kh.table, key);
        self.expire_at(slab, kh, found, now)
    }

    /// [`Cache::expire_if_dead`] for a position already looked up.
    fn expire_at(
        &self,
        slab: &mut Slab,
        kh: KeyHash,
        found: Option<usize>,
        now: u64,
    ) -> Option<usize> {
        let pos = found?;
        if !slab.get(pos).is_some_and(|e| e.is_expired(now)) {
            return Some(pos);
        }
        if let Some(entry) = self.remove_at(slab, kh.table, pos) {
            self.publish_removal(ChangeKind::Expired, &entry, false);
        }
        None
    }

    pub(crate) fn remove_at(&self, slab: &mut Slab, hash: u64, pos: usize) -> Option<Entry> {
        let entry = slab.remove(hash, pos)?;
        self.stored.fetch_sub(1, Ordering::Relaxed);
        Some(entry)
    }

    /// Counts one more stored entry, unless the cache is at its bound.
    pub(crate) fn reserve_slot(&self) -> Result<(), EngineError> {
        let Some(bound) = self.config.max_entries else {
            self.stored.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        self.stored
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < bound).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| EngineError::EntryBoundReached {
                cache: self.name.clone(),
                bound,
            })
    }

    /// The transactional state, if the cache is transactional.
    pub(crate) fn tx(&self) -> Option<&TxState> {
        self.tx.as_ref()
    }

    /// Counts `n` more stored entries without checking the bound.
    pub(crate) fn count_stored(&self, n: u64) {
        self.stored.fetch_add(n, Ordering::Relaxed);
    }

    /// Returns `n` slots counted but not used.
    pub(crate) fn count_stored_release(&self, n: u64) {
        self.stored.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn next_version(&self) -> u64 {
        self.next_version.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn publish(&self, kind: ChangeKind, entry: &Entry, version: u64, skip: bool) {
        self.feed.publish(&Change {
            kind,
            key: entry.key(),
            value: entry.value(),
            version,
            metadata: entry.metadata(),
            skip_listener_notification: skip,
        });
    }

    /// Publishes the removal of `entry` under a fresh version (see [`Change::version`]).
    pub(crate) fn publish_removal(&self, kind: ChangeKind, entry: &Entry, skip: bool) {
        if kind == ChangeKind::Expired {
            self.expired.fetch_add(1, Ordering::Relaxed);
        }
        self.publish(kind, entry, self.next_version(), skip);
    }

    /// Calls `f` on up to `limit` live entries, shard by shard under shared locks.
    fn scan(&self, limit: Option<usize>, mut f: impl FnMut(&Entry)) {
        let now = self.clock.now();
        let mut left = limit.unwrap_or(usize::MAX);
        for shard in self.shards.iter() {
            let slab = shard.slab.read();
            for entry in slab.entries().iter().filter(|e| !e.is_expired(now)) {
                if left == 0 {
                    return;
                }
                left -= 1;
                f(entry);
            }
        }
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("stored", &self.stored.load(Ordering::Relaxed))
            .field("feed", &self.feed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::options::Expiration;
    use parking_lot::Mutex;

    /// One change as recorded: (kind, key, value, version, metadata version, skip).
    type Recorded = (ChangeKind, Vec<u8>, Vec<u8>, u64, u64, bool);

    /// Records every change.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Recorded>>);

    impl Subscriber for Recorder {
        fn on_change(&self, c: &Change<'_>) {
            self.0.lock().push((
                c.kind,
                c.key.to_vec(),
                c.value.to_vec(),
                c.version,
                c.metadata.version,
                c.skip_listener_notification,
            ));
        }
    }

    impl Recorder {
        fn kinds(&self) -> Vec<(ChangeKind, Vec<u8>)> {
            self.0.lock().iter().map(|c| (c.0, c.1.clone())).collect()
        }
    }

    struct Fixture {
        clock: Arc<ManualClock>,
        cache: Cache,
        feed: Arc<Recorder>,
    }

    fn fixture(config: CacheConfig) -> Fixture {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let cache = Cache::new("test", config, clock.clone()).unwrap();
        let feed = Arc::new(Recorder::default());
        cache.subscribe(feed.clone());
        Fixture { clock, cache, feed }
    }

    fn plain() -> Fixture {
        fixture(CacheConfig::default())
    }

    const W: WriteOptions = WriteOptions {
        lifespan: Expiration::Default,
        max_idle: Expiration::Default,
        skip_listener_notification: false,
    };

    fn lifespan(ms: u64) -> WriteOptions {
        WriteOptions::expiring(Expiration::Millis(ms), Expiration::Default)
    }

    fn max_idle(ms: u64) -> WriteOptions {
        WriteOptions::expiring(Expiration::Default, Expiration::Millis(ms))
    }

    fn version(f: &Fixture, key: &[u8]) -> u64 {
        f.cache.get_with_metadata(key).unwrap().metadata.version
    }

    #[test]
    fn versions_start_at_one_and_strictly_increase() {
        let f = plain();
        f.cache.put(b"a", b"1", &W).unwrap();
        assert_eq!(version(&f, b"a"), 1);
        let mut last = 1;
        for i in 0..50u32 {
            let key = (i % 7).to_le_bytes();
            f.cache.put(&key, b"x", &W).unwrap();
            let v = version(&f, &key);
            assert!(v > last, "{v} after {last}");
            last = v;
        }
    }

    #[test]
    fn get_and_contains() {
        let f = plain();
        assert_eq!(f.cache.get(b"k"), None);
        assert!(!f.cache.contains(b"k"));
        assert_eq!(f.cache.get_with_metadata(b"k"), None);
        f.cache.put(b"k", b"v", &W).unwrap();
        assert_eq!(f.cache.get(b"k").unwrap(), &b"v"[..]);
        assert!(f.cache.contains(b"k"));
        let got = f.cache.get_with_metadata(b"k").unwrap();
        assert_eq!(got.value, &b"v"[..]);
        assert!(got.metadata.is_immortal());
        assert_eq!(got.metadata.created, None);
    }

    #[test]
    fn put_returns_the_previous_entry() {
        let f = plain();
        assert_eq!(f.cache.put(b"k", b"1", &W).unwrap(), None);
        let prev = f.cache.put(b"k", b"2", &W).unwrap().unwrap();
        assert_eq!(prev.value, &b"1"[..]);
        assert_eq!(prev.metadata.version, 1);
        assert_eq!(f.cache.get(b"k").unwrap(), &b"2"[..]);
        assert_eq!(
            f.feed.kinds(),
            [
                (ChangeKind::Created, b"k".to_vec()),
                (ChangeKind::Modified, b"k".to_vec())
            ]
        );
    }

    #[test]
    fn put_if_absent_outcomes() {
        let f = plain();
        assert_eq!(
            f.cache.put_if_absent(b"k", b"1", &W).unwrap(),
            PutIfAbsent::Stored
        );
        match f.cache.put_if_absent(b"k", b"2", &W).unwrap() {
            PutIfAbsent::Existing(e) => assert_eq!(e.value, &b"1"[..]),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.cache.get(b"k").unwrap(), &b"1"[..]);
        assert_eq!(f.feed.kinds().len(), 1, "not executed publishes nothing");
    }

    #[test]
    fn replace_outcomes() {
        let f = plain();
        assert_eq!(f.cache.replace(b"k", b"1", &W).unwrap(), Replace::NotFound);
        assert_eq!(f.cache.get(b"k"), None);
        f.cache.put(b"k", b"1", &W).unwrap();
        match f.cache.replace(b"k", b"2", &W).unwrap() {
            Replace::Replaced { previous } => assert_eq!(previous.value, &b"1"[..]),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.cache.get(b"k").unwrap(), &b"2"[..]);
    }

    #[test]
    fn replace_if_unmodified_outcomes() {
        let f = plain();
        assert_eq!(
            f.cache.replace_if_unmodified(b"k", 1, b"x", &W).unwrap(),
            ReplaceIfUnmodified::NotFound
        );
        f.cache.put(b"k", b"1", &W).unwrap();
        let v = version(&f, b"k");
        match f
            .cache
            .replace_if_unmodified(b"k", v + 5, b"x", &W)
            .unwrap()
        {
            ReplaceIfUnmodified::VersionMismatch { current } => {
                assert_eq!(current.metadata.version, v);
                assert_eq!(current.value, &b"1"[..]);
            }
            other => panic!("{other:?}"),
        }
        match f.cache.replace_if_unmodified(b"k", v, b"2", &W).unwrap() {
            ReplaceIfUnmodified::Replaced { previous } => assert_eq!(previous.metadata.version, v),
            other => panic!("{other:?}"),
        }
        assert!(version(&f, b"k") > v);
        assert_eq!(f.cache.get(b"k").unwrap(), &b"2"[..]);
    }

    #[test]
    fn remove_outcomes() {
        let f = plain();
        assert_eq!(f.cache.remove(b"k", &W).unwrap(), None);
        f.cache.put(b"k", b"1", &W).unwrap();
        assert_eq!(f.cache.remove(b"k", &W).unwrap().unwrap().value, &b"1"[..]);
        assert_eq!(f.cache.get(b"k"), None);
        let s = f.cache.stats();
        assert_eq!((s.remove_hits, s.remove_misses), (1, 1));
    }

    #[test]
    fn remove_if_unmodified_outcomes() {
        let f = plain();
        assert_eq!(
            f.cache.remove_if_unmodified(b"k", 1, &W).unwrap(),
            RemoveIfUnmodified::NotFound
        );
        f.cache.put(b"k", b"1", &W).unwrap();
        let v = version(&f, b"k");
        assert!(matches!(
            f.cache.remove_if_unmodified(b"k", v + 1, &W).unwrap(),
            RemoveIfUnmodified::VersionMismatch { current } if current.metadata.version == v
        ));
        assert!(f.cache.contains(b"k"));
        assert!(matches!(
            f.cache.remove_if_unmodified(b"k", v, &W).unwrap(),
            RemoveIfUnmodified::Removed { previous } if previous.value == b"1"[..]
        ));
        assert!(!f.cache.contains(b"k"));
        let s = f.cache.stats();
        assert_eq!((s.remove_hits, s.remove_misses), (1, 1));
    }

    #[test]
    fn change_versions_match_entries_and_removals_take_fresh_ones() {
        let f = plain();
        f.cache.put(b"k", b"1", &W).unwrap();
        let v1 = version(&f, b"k");
        f.cache.put(b"k", b"2", &W).unwrap();
        let v2 = version(&f, b"k");
        f.cache.remove(b"k", &W.skipping_listeners()).unwrap();
        let log = f.feed.0.lock().clone();
        assert_eq!(log.len(), 3);
        assert_eq!(
            (log[0].3, log[0].4, log[0].2.as_slice()),
            (v1, v1, &b"1"[..])
        );
        assert_eq!(
            (log[1].3, log[1].4, log[1].2.as_slice()),
            (v2, v2, &b"2"[..])
        );
        assert_eq!(log[2].0, ChangeKind::Removed);
        assert!(log[2].3 > v2, "removal takes a fresh version");
        assert_eq!(log[2].4, v2, "metadata is the removed entry's");
        assert!(log[2].5, "skip flag carried");
        assert!(!log[0].5);
    }

    #[test]
    fn clear_publishes_a_removal_per_entry() {
        let f = plain();
        for i in 0..20u8 {
            f.cache.put(&[i], b"v", &W).unwrap();
        }
        assert_eq!(f.cache.size(), 20);
        assert_eq!(f.cache.clear(&W).unwrap(), 20);
        assert_eq!(f.cache.size(), 0);
        let removed: Vec<_> = f
            .feed
            .kinds()
            .into_iter()
            .filter(|(k, _)| *k == ChangeKind::Removed)
            .map(|(_, key)| key)
            .collect();
        assert_eq!(removed.len(), 20);
        assert_eq!(f.cache.get(&[3]), None);
        f.cache.put(&[3], b"w", &W).unwrap();
        assert_eq!(f.cache.size(), 1);
    }

    #[test]
    fn put_all_get_all_bulk() {
        let f = plain();
        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
            (0..10u8).map(|i| (vec![b'k', i], vec![b'v', i])).collect();
        f.cache
            .put_all(pairs.iter().map(|(k, v)| (&k[..], &v[..])), &W)
            .unwrap();
        assert_eq!(f.cache.size(), 10);
        let got = f.cache.get_all([&b"k\x01"[..], b"missing", b"k\x09"]);
        assert_eq!(got.len(), 2);
        assert!(got.contains(&(Bytes::from_static(b"k\x09"), Bytes::from_static(b"v\x09"))));
        assert_eq!(f.cache.bulk(None).len(), 10);
        assert_eq!(f.cache.bulk(Some(3)).len(), 3);
        assert_eq!(f.cache.bulk(Some(0)).len(), 0);
        let mut keys = f.cache.bulk_keys();
        keys.sort();
        let mut expected: Vec<Bytes> = pairs.iter().map(|(k, _)| Bytes::from(k.clone())).collect();
        expected.sort();
        assert_eq!(keys, expected);
    }

    #[test]
    fn statistics() {
        let f = plain();
        f.cache.put(b"a", b"1", &W).unwrap();
        f.cache.put(b"a", b"2", &W).unwrap();
        let _ = f.cache.put_if_absent(b"a", b"3", &W).unwrap();
        f.cache.get(b"a");
        f.cache.get(b"b");
        f.cache.get_with_metadata(b"a");
        f.clock.advance(5_500);
        let s = f.cache.stats();
        assert_eq!(s.time_since_start, 5);
        assert_eq!(s.current_entries, 1);
        assert_eq!(s.stores, 2);
        assert_eq!((s.hits, s.misses, s.retrievals), (2, 1, 3));
    }

    #[test]
    fn lifespan_expires_on_access_exactly_once() {
        let f = plain();
        f.cache.put(b"k", b"v", &lifespan(100)).unwrap();
        let m = f.cache.get_with_metadata(b"k").unwrap().metadata;
        assert_eq!(
            (m.created, m.lifespan, m.max_idle),
            (Some(1_000_000), Some(100), None)
        );
        f.clock.advance(100);
        assert!(
            f.cache.contains(b"k"),
            "expires after, not at, the lifespan"
        );
        f.clock.advance(1);
        assert_eq!(f.cache.get(b"k"), None);
        assert_eq!(f.cache.get(b"k"), None);
        assert_eq!(f.cache.reap(), 0);
        let expired = f
            .feed
            .kinds()
            .into_iter()
            .filter(|(k, _)| *k == ChangeKind::Expired)
            .count();
        assert_eq!(expired, 1);
        assert_eq!(f.cache.size(), 0);
    }

    #[test]
    fn reads_do_not_extend_a_lifespan() {
        let f = plain();
        f.cache.put(b"k", b"v", &lifespan(100)).unwrap();
        for _ in 0..10 {
            f.clock.advance(10);
            assert!(f.cache.contains(b"k"));
        }
        f.clock.advance(1);
        assert!(!f.cache.contains(b"k"));
    }

    #[test]
    fn max_idle_is_refreshed_by_reads() {
        let f = plain();
        f.cache.put(b"k", b"v", &max_idle(100)).unwrap();
        for _ in 0..10 {
            f.clock.advance(90);
            assert!(f.cache.get(b"k").is_some());
        }
        let m = f.cache.get_with_metadata(b"k").unwrap().metadata;
        assert_eq!(m.last_used, Some(1_000_900));
        assert_eq!(m.created, Some(1_000_000));
        f.clock.advance(101);
        assert_eq!(f.cache.reap(), 1);
        assert_eq!(f.cache.get(b"k"), None);
        assert_eq!(f.cache.reap(), 0);
        let kinds = f.feed.kinds();
        assert_eq!(kinds.last().unwrap().0, ChangeKind::Expired);
        assert_eq!(
            kinds
                .iter()
                .filter(|(k, _)| *k == ChangeKind::Expired)
                .count(),
            1
        );
    }

    #[test]
    fn reaper_removes_only_expired_entries() {
        let f = plain();
        for i in 0..100u8 {
            let opts = if i % 2 == 0 { lifespan(10) } else { W };
            f.cache.put(&[i], b"v", &opts).unwrap();
        }
        f.clock.advance(11);
        assert_eq!(f.cache.reap(), 50);
        assert_eq!(f.cache.size(), 50);
        assert_eq!(f.cache.stats().expirations, 50);
        for i in 0..100u8 {
            assert_eq!(f.cache.contains(&[i]), i % 2 == 1);
        }
        assert_eq!(f.cache.reap(), 0);
    }

    #[test]
    fn writes_over_an_expired_entry_see_it_as_absent() {
        let f = plain();
        f.cache.put(b"k", b"1", &lifespan(10)).unwrap();
        f.clock.advance(11);
        assert_eq!(f.cache.put(b"k", b"2", &W).unwrap(), None);
        assert_eq!(f.cache.stats().expirations, 1);
        assert_eq!(
            f.feed.kinds(),
            [
                (ChangeKind::Created, b"k".to_vec()),
                (ChangeKind::Expired, b"k".to_vec()),
                (ChangeKind::Created, b"k".to_vec())
            ]
        );
        f.cache.put(b"j", b"1", &lifespan(10)).unwrap();
        f.clock.advance(11);
        assert_eq!(f.cache.replace(b"j", b"2", &W).unwrap(), Replace::NotFound);
        assert_eq!(
            f.cache.put_if_absent(b"j", b"3", &W).unwrap(),
            PutIfAbsent::Stored
        );
    }

    #[test]
    fn configured_defaults_apply_unless_overridden() {
        let f = fixture(CacheConfig {
            lifespan: Some(50),
            max_idle: Some(20),
            ..CacheConfig::default()
        });
        f.cache.put(b"d", b"v", &W).unwrap();
        f.cache
            .put(
                b"i",
                b"v",
                &WriteOptions::expiring(Expiration::Infinite, Expiration::Infinite),
            )
            .unwrap();
        let m = f.cache.get_with_metadata(b"d").unwrap().metadata;
        assert_eq!((m.lifespan, m.max_idle), (Some(50), Some(20)));
        assert!(f
            .cache
            .get_with_metadata(b"i")
            .unwrap()
            .metadata
            .is_immortal());
        f.clock.advance(21);
        assert!(!f.cache.contains(b"d"));
        assert!(f.cache.contains(b"i"));
    }

    #[test]
    fn each_write_restarts_the_lifespan() {
        let f = plain();
        f.cache.put(b"k", b"1", &lifespan(10)).unwrap();
        f.clock.advance(8);
        f.cache.put(b"k", b"2", &lifespan(10)).unwrap();
        f.clock.advance(8);
        assert!(f.cache.contains(b"k"));
    }

    #[test]
    fn entry_bound_refuses_new_keys_only() {
        let f = fixture(CacheConfig {
            max_entries: Some(2),
            ..CacheConfig::default()
        });
        f.cache.put(b"a", b"1", &W).unwrap();
        f.cache.put(b"b", b"1", &W).unwrap();
        let full = EngineError::EntryBoundReached {
            cache: "test".into(),
            bound: 2,
        };
        assert_eq!(f.cache.put(b"c", b"1", &W).unwrap_err(), full);
        assert_eq!(f.cache.put_if_absent(b"c", b"1", &W).unwrap_err(), full);
        assert_eq!(f.cache.get(b"c"), None);
        assert!(
            f.cache.put(b"a", b"2", &W).unwrap().is_some(),
            "updates still succeed"
        );
        assert!(matches!(
            f.cache.replace(b"b", b"2", &W).unwrap(),
            Replace::Replaced { .. }
        ));
        f.cache.remove(b"a", &W).unwrap();
        f.cache.put(b"c", b"1", &W).unwrap();
        assert_eq!(f.cache.size(), 2);
        assert_eq!(f.feed.kinds().len(), 6);
    }

    #[test]
    fn unsubscribed_subscribers_hear_nothing() {
        let clock = Arc::new(ManualClock::new(0));
        let cache = Cache::new("c", CacheConfig::default(), clock).unwrap();
        let rec = Arc::new(Recorder::default());
        let id = cache.subscribe(rec.clone());
        cache.put(b"a", b"1", &W).unwrap();
        assert!(cache.unsubscribe(id));
        cache.put(b"b", b"1", &W).unwrap();
        assert_eq!(rec.kinds().len(), 1);
        assert_eq!(cache.media_type(), "application/octet-stream");
        assert_eq!(cache.segments().count(), 256);
        assert!(format!("{cache:?}").contains("\"c\""));
    }
}
