//! Transactions on a transactional cache ([`crate::TxConfig`]): implicit ones around every
//! write, and the explicit ones Hot Rod remote transactions prepare and later commit.
//!
//! # Life of a transaction
//! ```text
//!  lock keys ──▶ validate ──▶ prepare hook ──▶ PREPARED ──commit──▶ apply (versions, feed)
//!  (canonical     (expected     (may veto)         │                    unlock
//!   order,         versions)                       └──rollback/drop──▶ nothing visible,
//!   timeout)                                                            no events, unlock
//! ```
//! - **Lock**: every key of the write set, in byte order ([`crate::LockTable::lock_all`]), each
//!   waiting at most the cache's acquire timeout; zero fails at once with
//!   [`crate::LockError::Timeout`] (`ISPN000299`). Locks are held until commit or rollback.
//! - **Write set**: the changes live in a private [`WriteSet`] until commit; readers see the
//!   committed state only (no dirty reads in either isolation level).
//! - **Validate**: each write's [`Expect`] against the committed entry (Hot Rod's version read;
//!   a mismatch is a write skew and the transaction rolls back).
//! - **Prepare hook**: [`PrepareHook::prepare`] runs with the locks held and the write set
//!   fixed; it is where the site bridge's SYNC backup will run, and it may veto. The default
//!   is no hook.
//! - **Commit**: each write gets a fresh version, is stored and published on the change feed,
//!   then the locks go. Commit cannot fail: the slots a new key needs under the cache's entry
//!   bound are reserved at prepare.
//! - **Rollback**: nothing was applied, so nothing is published; reserved slots and locks are
//!   released. [`PreparedTx`] rolls back on drop, so no path (error, panic, a connection that
//!   dies and drops its transactions) leaks a lock.
//!
//! Single writes (put, replace, remove, the conditional ones) are implicit transactions of
//! one key: the key lock is a guard, the decision (e.g. "replace only if version v") is made
//! on the committed entry under that lock, and without a hook the change is applied in the same
//! shard critical section, so an uncontended transactional write costs one lock-table round
//! trip more than a plain one. PUT_ALL is one transaction over all its keys.
//!
//! Not covered by key locks: CLEAR and expiry (reaper or on access) remove entries without
//! taking them, as Infinispan's non-transactional clear and expiration do; a commit that finds
//! its entry gone stores it anew.
//!
//! # Waiting and threads
//! A positive acquire timeout blocks the calling thread for at most that long; the server
//! keeps such calls off its async workers. A zero timeout never blocks.

use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::cache::{Cache, Plan};
use crate::clock::Clock;
use crate::entry::Entry;
use crate::error::EngineError;
use crate::feed::ChangeKind;
use crate::locks::{LockOwner, LockTable};
use crate::options::WriteOptions;
use crate::segment::KeyHash;
use crate::write_set::{Action, Expect, TxWrite, WriteSet};

/// Runs between a transaction's validation and its commit, with the keys locked.
///
/// The site bridge's SYNC backup implements it: `prepare` sends the write set to the backup
/// sites and vetoes if the failure policy says so; `commit` and `rollback` tell them the
/// outcome. Calls for one transaction come in order on one thread; different transactions
/// call concurrently. `prepare` may block (it runs off the async workers only if the cache's
/// acquire timeout is positive, so a hook that does network I/O should keep its own bound).
pub trait PrepareHook: Send + Sync + 'static {
    /// Whether the transaction may commit; an error vetoes it (the writer sees
    /// [`EngineError::Vetoed`] and nothing is applied).
    fn prepare(&self, cache: &str, writes: &WriteSet) -> Result<(), Veto>;

    /// The transaction committed (after its changes are visible, before its locks go).
    fn commit(&self, _cache: &str, _writes: &WriteSet) {}

    /// The transaction rolled back after a successful `prepare`.
    fn rollback(&self, _cache: &str, _writes: &WriteSet) {}

    /// [`Cache::clear`] is about to run (it takes no key locks); an error vetoes it (the caller
    /// sees [`EngineError::Vetoed`] and nothing is cleared).
    fn prepare_clear(&self, _cache: &str) -> Result<(), Veto> {
        Ok(())
    }

    /// [`Cache::clear`] ran after `prepare_clear` agreed.
    fn cleared(&self, _cache: &str) {}
}

/// Why a prepare hook refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veto(pub String);

/// A transaction whose keys are locked, whose expectations held and whose prepare hook agreed;
/// it waits for [`PreparedTx::commit`] or [`PreparedTx::rollback`]. Dropping it rolls back.
///
/// `C` is how it reaches its cache: `Arc<Cache>` for the remote transactions the server
/// keeps between requests, `&Cache` inside one engine call.
pub struct PreparedTx<C: Deref<Target = Cache> = Arc<Cache>> {
    cache: C,
    owner: LockOwner,
    set: WriteSet,
    /// Entry-bound slots reserved for keys the commit will create.
    reserved: u64,
    /// Whether the hook's `prepare` ran and agreed (so `rollback` must tell it).
    hooked: bool,
    done: bool,
}

/// The transactional parts of a cache: its lock table, its prepare hook, its owner ids.
pub(crate) struct TxState {
    pub(crate) locks: LockTable,
    hook: RwLock<Option<Arc<dyn PrepareHook>>>,
    next_owner: AtomicU64,
    /// Lock acquisitions that failed (ISPN000299 answers), for statistics and metrics.
    pub(crate) conflicts: AtomicU64,
}

impl Cache {
    /// Locks the keys of `writes`, checks their expectations and runs the prepare hook; the
    /// returned transaction holds the locks until it commits or rolls back.
    ///
    /// Errors: [`EngineError::NotTransactional`], [`EngineError::Lock`] (a key stayed locked
    /// for the acquire timeout), [`EngineError::WriteSkew`], [`EngineError::Vetoed`],
    /// [`EngineError::EntryBoundReached`]; on every error nothing stays locked.
    pub fn prepare(self: &Arc<Self>, writes: Vec<TxWrite>) -> Result<PreparedTx, EngineError> {
        prepare_on(Arc::clone(self), writes)
    }

    /// The prepare hook, if any (for [`Cache::clear`]).
    pub(crate) fn prepare_hook(&self) -> Option<Arc<dyn PrepareHook>> {
        self.tx().and_then(TxState::hook)
    }

    /// Installs (or, with `None`, removes) the cache's prepare hook.
    pub fn set_prepare_hook(&self, hook: Option<Arc<dyn PrepareHook>>) -> Result<(), EngineError> {
        let tx = self.tx_state()?;
        *tx.hook.write() = hook;
        Ok(())
    }

    /// How many keys are locked right now (0 for a non-transactional cache); for tests and
    /// metrics.
    pub fn locked_keys(&self) -> usize {
        self.tx_state().map_or(0, |tx| tx.locks.locked())
    }

    /// A single write as an implicit transaction (see the module docs).
    pub(crate) fn write_in_tx<'v, R>(
        &self,
        tx: &TxState,
        kh: KeyHash,
        key: &[u8],
        options: &WriteOptions,
        decide: impl FnOnce(Option<&Entry>) -> (Plan<'v>, R),
    ) -> Result<R, EngineError> {
        let owner = tx.owner();
        let locked = Bytes::copy_from_slice(key);
        let timeout = self.config().transaction.acquire_timeout;
        let hook = tx.hook();
        if hook.is_none() && timeout.is_zero() {
            // Lock, (no-op) prepare and commit inside one shard critical section: the key lock
            // is tried, never waited for, so single writes serialise on the shard lock and
            // only conflict with transactions that hold keys across it.
            let gate = || Ok(tx.counted(tx.locks.lock_guard(owner, &locked, timeout))?);
            return self.write_plain(kh, key, options, gate, decide);
        }
        let _guard = tx.counted(tx.locks.lock_guard(owner, &locked, timeout))?;
        let Some(hook) = hook else {
            return self.write_plain(kh, key, options, || Ok(()), decide);
        };
        let (plan, outcome, exists) = {
            let mut slab = self.shard(kh).slab.write();
            let pos = self.expire_if_dead(&mut slab, kh, key, self.now());
            let (plan, outcome) = decide(pos.and_then(|p| slab.get(p)));
            (plan, outcome, pos.is_some())
        };
        let write = match plan {
            Plan::Keep => return Ok(outcome),
            Plan::Put(value) => TxWrite::put(locked, Bytes::copy_from_slice(value), *options),
            Plan::Remove => TxWrite::remove(locked, *options),
        };
        let reserved = if !exists && !write.is_remove() {
            self.reserve_slot()?;
            1
        } else {
            0
        };
        let mut prepared = PreparedTx {
            cache: self,
            owner,
            set: WriteSet::new(vec![write]),
            reserved,
            hooked: false,
            done: false,
        };
        hook.prepare(self.name(), &prepared.set)
            .map_err(|Veto(reason)| EngineError::Vetoed(reason))?;
        prepared.hooked = true;
        prepared.commit();
        Ok(outcome)
    }

    /// PUT_ALL on a transactional cache: one transaction over every key.
    pub(crate) fn put_all_in_tx<'k>(
        &self,
        entries: impl IntoIterator<Item = (&'k [u8], &'k [u8])>,
        options: &WriteOptions,
    ) -> Result<(), EngineError> {
        let writes = entries
            .into_iter()
            .map(|(k, v)| {
                TxWrite::put(
                    Bytes::copy_from_slice(k),
                    Bytes::copy_from_slice(v),
                    *options,
                )
            })
            .collect();
        prepare_on(self, writes)?.commit();
        Ok(())
    }

    fn tx_state(&self) -> Result<&TxState, EngineError> {
        self.tx().ok_or_else(|| EngineError::NotTransactional {
            cache: self.name().to_owned(),
        })
    }

    /// The version of `key`'s live entry, without touching statistics or last-used.
    fn committed_version(&self, key: &[u8]) -> Option<u64> {
        let kh = self.segments().key_hash(key);
        let slab = self.shard(kh).slab.read();
        let entry = slab.find(kh.table, key)?;
        (!entry.is_mortal() || !entry.is_expired(self.now())).then(|| entry.version())
    }

    /// Applies one committed write; `reserved` counts the slots prepare set aside for new keys.
    fn apply(&self, write: &TxWrite, reserved: &mut u64) {
        let kh = self.segments().key_hash(&write.key);
        let shard = self.shard(kh);
        let now = self.now();
        let mut slab = shard.slab.write();
        let pos = self.expire_if_dead(&mut slab, kh, &write.key, now);
        match &write.action {
            Action::Put { value, options } => {
                if pos.is_none() {
                    match reserved.checked_sub(1) {
                        Some(left) => *reserved = left,
                        // The entry expired or was cleared since prepare: store it anyway (the
                        // bound may be passed by the few such races; a commit never fails).
                        None => self.count_stored(1),
                    }
                }
                let lifespan = options.lifespan.resolve(self.config().lifespan);
                let max_idle = options.max_idle.resolve(self.config().max_idle);
                let entry = Entry::new(
                    &write.key,
                    value,
                    self.next_version(),
                    lifespan,
                    max_idle,
                    now,
                );
                self.install(
                    &mut slab,
                    shard,
                    kh,
                    pos,
                    entry,
                    options.skip_listener_notification,
                );
            }
            Action::Remove { options } => {
                // Removal statistics are counted by the caller (as for plain removals).
                if let Some(entry) = pos.and_then(|p| self.remove_at(&mut slab, kh.table, p)) {
                    self.publish_removal(
                        ChangeKind::Removed,
                        &entry,
                        options.skip_listener_notification,
                    );
                }
            }
        }
    }
}

impl<C: Deref<Target = Cache>> PreparedTx<C> {
    /// Applies the write set (fresh versions, change feed), tells the hook, releases the locks.
    pub fn commit(mut self) {
        let mut reserved = self.reserved;
        for write in self.set.writes() {
            self.cache.apply(write, &mut reserved);
        }
        self.cache.count_stored_release(reserved);
        self.reserved = 0;
        if self.hooked {
            if let Some(hook) = self.cache.tx().and_then(TxState::hook) {
                hook.commit(self.cache.name(), &self.set);
            }
        }
        self.hooked = false;
        self.finish();
    }

    /// Discards the write set: nothing becomes visible, nothing is published.
    pub fn rollback(mut self) {
        self.abort();
    }

    /// The writes the transaction will make.
    pub fn writes(&self) -> &WriteSet {
        &self.set
    }

    /// The lock owner the transaction holds its keys as.
    pub fn owner(&self) -> LockOwner {
        self.owner
    }

    fn abort(&mut self) {
        if self.done {
            return;
        }
        self.cache.count_stored_release(self.reserved);
        self.reserved = 0;
        if self.hooked {
            if let Some(hook) = self.cache.tx().and_then(TxState::hook) {
                hook.rollback(self.cache.name(), &self.set);
            }
            self.hooked = false;
        }
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(tx) = self.cache.tx() {
            tx.locks.unlock_all(self.owner);
        }
        self.done = true;
    }
}

impl<C: Deref<Target = Cache>> Drop for PreparedTx<C> {
    fn drop(&mut self) {
        self.abort();
    }
}

impl<C: Deref<Target = Cache>> fmt::Debug for PreparedTx<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedTx")
            .field("cache", &self.cache.name())
            .field("owner", &self.owner)
            .field("writes", &self.set.writes().len())
            .finish_non_exhaustive()
    }
}

impl TxState {
    /// Counts a failed lock acquisition and passes the result on.
    fn counted<T>(&self, r: Result<T, crate::LockError>) -> Result<T, crate::LockError> {
        if r.is_err() {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            locks: LockTable::new(clock),
            hook: RwLock::new(None),
            next_owner: AtomicU64::new(1),
            conflicts: AtomicU64::new(0),
        }
    }

    /// A fresh lock owner for one transaction.
    fn owner(&self) -> LockOwner {
        LockOwner(self.next_owner.fetch_add(1, Ordering::Relaxed))
    }

    fn hook(&self) -> Option<Arc<dyn PrepareHook>> {
        self.hook.read().clone()
    }
}

impl fmt::Debug for TxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxState")
            .field("locked", &self.locks.locked())
            .field("hook", &self.hook.read().is_some())
            .finish()
    }
}

/// [`Cache::prepare`] for any handle on the cache.
fn prepare_on<C: Deref<Target = Cache>>(
    cache: C,
    writes: Vec<TxWrite>,
) -> Result<PreparedTx<C>, EngineError> {
    let tx = cache.tx_state()?;
    let owner = tx.owner();
    let set = WriteSet::new(writes);
    tx.counted(tx.locks.lock_all(
        owner,
        &set.keys(),
        cache.config().transaction.acquire_timeout,
    ))?;
    let hook = tx.hook();
    let mut prepared = PreparedTx {
        cache,
        owner,
        set,
        reserved: 0,
        hooked: false,
        done: false,
    };
    let mut created: HashSet<&[u8]> = HashSet::new();
    for write in prepared.set.writes() {
        let current = prepared.cache.committed_version(&write.key);
        let holds = match write.expect {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        };
        if !holds {
            return Err(EngineError::WriteSkew {
                key: write.key.clone(),
            });
        }
        if current.is_none() && !write.is_remove() {
            created.insert(&write.key);
        }
    }
    for _ in 0..created.len() {
        prepared.cache.reserve_slot()?;
        prepared.reserved += 1;
    }
    if let Some(hook) = hook {
        hook.prepare(prepared.cache.name(), &prepared.set)
            .map_err(|Veto(reason)| EngineError::Vetoed(reason))?;
        prepared.hooked = true;
    }
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use std::time::Duration;

    use parking_lot::Mutex;

    use super::*;
    use crate::clock::{ManualClock, SystemClock};
    use crate::config::CacheConfig;
    use crate::feed::{Change, Subscriber};
    use crate::locks::LockError;
    use crate::outcome::ReplaceIfUnmodified;
    use crate::tx_config::TxConfig;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(ChangeKind, Vec<u8>, u64)>>);

    impl Subscriber for Recorder {
        fn on_change(&self, c: &Change<'_>) {
            self.0.lock().push((c.kind, c.key.to_vec(), c.version));
        }
    }

    /// Records hook calls and vetoes keys starting with `!`.
    #[derive(Default)]
    struct Hook(Mutex<Vec<String>>);

    impl PrepareHook for Hook {
        fn prepare(&self, cache: &str, writes: &WriteSet) -> Result<(), Veto> {
            self.0
                .lock()
                .push(format!("prepare {cache} {}", writes.writes().len()));
            if writes.writes().iter().any(|w| w.key.starts_with(b"!")) {
                return Err(Veto("backup site refused".into()));
            }
            Ok(())
        }
        fn commit(&self, _: &str, _: &WriteSet) {
            self.0.lock().push("commit".into());
        }
        fn rollback(&self, _: &str, _: &WriteSet) {
            self.0.lock().push("rollback".into());
        }
        fn prepare_clear(&self, cache: &str) -> Result<(), Veto> {
            let mut log = self.0.lock();
            log.push(format!("prepare_clear {cache}"));
            if log
                .iter()
                .filter(|l| l.starts_with("prepare_clear"))
                .count()
                == 1
            {
                return Err(Veto("backup site refused the clear".into()));
            }
            Ok(())
        }
        fn cleared(&self, _: &str) {
            self.0.lock().push("cleared".into());
        }
    }

    #[test]
    fn the_prepare_hook_can_veto_a_clear_and_hears_of_it() {
        let (cache, _) = keycloak();
        let hook = Arc::new(Hook::default());
        cache.set_prepare_hook(Some(hook.clone())).unwrap();
        cache.put(b"a", b"1", &W).unwrap();
        assert_eq!(
            cache.clear(&W).unwrap_err(),
            EngineError::Vetoed("backup site refused the clear".into())
        );
        assert_eq!(cache.get(b"a").unwrap(), &b"1"[..]);
        assert_eq!(cache.clear(&W).unwrap(), 1);
        assert_eq!(cache.get(b"a"), None);
        assert_eq!(
            hook.0.lock()[2..],
            ["prepare_clear t", "prepare_clear t", "cleared"]
        );
    }

    const W: WriteOptions = WriteOptions {
        lifespan: crate::options::Expiration::Default,
        max_idle: crate::options::Expiration::Default,
        skip_listener_notification: false,
    };

    fn tx_cache(config: TxConfig) -> (Arc<Cache>, Arc<Recorder>) {
        let cache = Cache::new(
            "t",
            CacheConfig {
                transaction: config,
                ..CacheConfig::default()
            },
            Arc::new(ManualClock::new(1_000)),
        )
        .unwrap();
        let rec = Arc::new(Recorder::default());
        cache.subscribe(rec.clone());
        (Arc::new(cache), rec)
    }

    fn keycloak() -> (Arc<Cache>, Arc<Recorder>) {
        tx_cache(TxConfig::KEYCLOAK)
    }

    fn put(k: &str, v: &str) -> TxWrite {
        TxWrite::put(
            Bytes::copy_from_slice(k.as_bytes()),
            Bytes::copy_from_slice(v.as_bytes()),
            W,
        )
    }

    #[test]
    fn a_locked_key_fails_a_zero_timeout_write_at_once_with_ispn000299() {
        let (cache, rec) = keycloak();
        let held = cache.prepare(vec![put("k", "1")]).unwrap();
        let err = cache.put(b"k", b"2", &W).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "ISPN000299: Unable to acquire lock after 0 milliseconds for key k and requestor "
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!("Lock is held by {}", held.owner())),
            "{text}"
        );
        assert!(matches!(err, EngineError::Lock(LockError::Timeout { .. })));
        assert_eq!(cache.stats().lock_conflicts, 1);
        assert_eq!(cache.get(b"k"), None, "prepared writes are private");
        assert!(rec.0.lock().is_empty());
        held.commit();
        assert_eq!(cache.get(b"k").unwrap(), &b"1"[..]);
        assert_eq!(cache.locked_keys(), 0);
        cache.put(b"k", b"2", &W).unwrap();
        assert_eq!(cache.get(b"k").unwrap(), &b"2"[..]);
    }

    #[test]
    fn rollback_and_drop_leave_nothing_visible_and_nothing_locked() {
        let (cache, rec) = keycloak();
        cache.put(b"a", b"0", &W).unwrap();
        let events = rec.0.lock().len();
        let tx = cache
            .prepare(vec![
                put("a", "1"),
                put("b", "1"),
                TxWrite::remove(&b"a"[..], W),
            ])
            .unwrap();
        assert_eq!(cache.locked_keys(), 2);
        tx.rollback();
        assert_eq!(cache.locked_keys(), 0);
        drop(cache.prepare(vec![put("c", "1")]).unwrap());
        assert_eq!(cache.locked_keys(), 0);
        assert_eq!(cache.get(b"a").unwrap(), &b"0"[..]);
        assert_eq!(cache.get(b"b"), None);
        assert_eq!(cache.get(b"c"), None);
        assert_eq!(
            rec.0.lock().len(),
            events,
            "no events for rolled-back writes"
        );
    }

    #[test]
    fn commit_applies_in_order_with_fresh_versions_and_events() {
        let (cache, rec) = keycloak();
        cache.put(b"x", b"0", &W).unwrap();
        let before = cache.get_with_metadata(b"x").unwrap().metadata.version;
        cache
            .prepare(vec![put("y", "1"), put("x", "1"), put("y", "2")])
            .unwrap()
            .commit();
        assert_eq!(cache.get(b"y").unwrap(), &b"2"[..]);
        let after = cache.get_with_metadata(b"x").unwrap().metadata.version;
        assert!(after > before);
        let kinds: Vec<_> = rec.0.lock().iter().map(|c| (c.0, c.1.clone())).collect();
        assert_eq!(
            kinds,
            [
                (ChangeKind::Created, b"x".to_vec()),
                (ChangeKind::Created, b"y".to_vec()),
                (ChangeKind::Modified, b"x".to_vec()),
                (ChangeKind::Modified, b"y".to_vec()),
            ]
        );
        cache
            .prepare(vec![TxWrite::remove(&b"x"[..], W)])
            .unwrap()
            .commit();
        assert_eq!(cache.get(b"x"), None);
        assert_eq!(rec.0.lock().last().unwrap().0, ChangeKind::Removed);
        assert_eq!(cache.size(), 1);
    }

    #[test]
    fn expectations_are_checked_at_prepare() {
        let (cache, _) = keycloak();
        cache.put(b"k", b"1", &W).unwrap();
        let v = cache.get_with_metadata(b"k").unwrap().metadata.version;
        let stale = put("k", "2").expecting(Expect::Version(v + 1));
        assert_eq!(
            cache.prepare(vec![put("other", "x"), stale]).unwrap_err(),
            EngineError::WriteSkew {
                key: Bytes::from_static(b"k")
            }
        );
        assert_eq!(cache.locked_keys(), 0);
        assert_eq!(cache.get(b"other"), None);
        let absent = put("k", "2").expecting(Expect::Absent);
        assert!(matches!(
            cache.prepare(vec![absent]),
            Err(EngineError::WriteSkew { .. })
        ));
        cache
            .prepare(vec![put("k", "2").expecting(Expect::Version(v))])
            .unwrap()
            .commit();
        cache
            .prepare(vec![put("new", "1").expecting(Expect::Absent)])
            .unwrap()
            .commit();
        assert_eq!(cache.get(b"k").unwrap(), &b"2"[..]);
        assert_eq!(cache.get(b"new").unwrap(), &b"1"[..]);
    }

    #[test]
    fn the_prepare_hook_sees_every_transaction_and_can_veto() {
        let (cache, rec) = keycloak();
        let hook = Arc::new(Hook::default());
        cache.set_prepare_hook(Some(hook.clone())).unwrap();
        cache.put(b"a", b"1", &W).unwrap();
        assert_eq!(
            cache.put(b"!a", b"1", &W).unwrap_err(),
            EngineError::Vetoed("backup site refused".into())
        );
        assert_eq!(cache.get(b"!a"), None);
        let tx = cache.prepare(vec![put("b", "1"), put("c", "1")]).unwrap();
        tx.rollback();
        assert!(cache.prepare(vec![put("!b", "1")]).is_err());
        assert_eq!(
            *hook.0.lock(),
            [
                "prepare t 1",
                "commit",
                "prepare t 1",
                "prepare t 2",
                "rollback",
                "prepare t 1"
            ]
        );
        assert_eq!(rec.0.lock().len(), 1, "only the committed put is published");
        assert_eq!(cache.locked_keys(), 0);
        // A conditional write that decides to do nothing does not reach the hook.
        assert!(matches!(
            cache.replace_if_unmodified(b"a", 999, b"x", &W).unwrap(),
            ReplaceIfUnmodified::VersionMismatch { .. }
        ));
        assert_eq!(hook.0.lock().len(), 6);
        cache.remove(b"a", &W).unwrap();
        assert_eq!(cache.get(b"a"), None);
        assert_eq!(cache.stats().remove_hits, 1);
        cache.set_prepare_hook(None).unwrap();
    }

    #[test]
    fn put_all_is_one_transaction() {
        let (cache, _) = keycloak();
        let held = cache.prepare(vec![put("m", "held")]).unwrap();
        let pairs: Vec<(&[u8], &[u8])> = vec![(b"z", b"1"), (b"m", b"1"), (b"a", b"1")];
        assert!(matches!(
            cache.put_all(pairs.clone(), &W),
            Err(EngineError::Lock(_))
        ));
        assert_eq!(cache.size(), 0, "none of the keys was written");
        held.rollback();
        cache.put_all(pairs, &W).unwrap();
        assert_eq!(cache.size(), 3);
        assert_eq!(cache.locked_keys(), 0);
    }

    #[test]
    fn entry_bound_slots_are_reserved_at_prepare() {
        let cache = Arc::new(
            Cache::new(
                "b",
                CacheConfig {
                    max_entries: Some(2),
                    transaction: TxConfig::KEYCLOAK,
                    ..CacheConfig::default()
                },
                Arc::new(ManualClock::new(0)),
            )
            .unwrap(),
        );
        let tx = cache.prepare(vec![put("a", "1"), put("b", "1")]).unwrap();
        assert!(matches!(
            cache.put(b"c", b"1", &W),
            Err(EngineError::EntryBoundReached { .. })
        ));
        tx.rollback();
        cache.put(b"c", b"1", &W).unwrap();
        assert!(matches!(
            cache.prepare(vec![put("d", "1"), put("e", "1")]),
            Err(EngineError::EntryBoundReached { .. })
        ));
        cache.put(b"d", b"1", &W).unwrap();
        assert_eq!(cache.size(), 2);
    }

    #[test]
    fn non_transactional_caches_refuse_transactions() {
        let (cache, _) = tx_cache(TxConfig::default());
        assert_eq!(
            cache.prepare(vec![put("k", "1")]).unwrap_err(),
            EngineError::NotTransactional { cache: "t".into() }
        );
        assert!(cache.set_prepare_hook(None).is_err());
        cache.put(b"k", b"1", &W).unwrap();
        assert_eq!(cache.locked_keys(), 0);
    }

    #[test]
    fn single_writes_serialise_instead_of_failing_each_other() {
        let (cache, _) = keycloak();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000u32 {
                        cache.put(b"hot", &i.to_be_bytes(), &W).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(cache.locked_keys(), 0);
    }

    #[test]
    fn a_positive_timeout_waits_for_the_holder_to_commit() {
        let cache = Arc::new(
            Cache::new(
                "w",
                CacheConfig {
                    transaction: TxConfig {
                        acquire_timeout: Duration::from_secs(5),
                        ..TxConfig::KEYCLOAK
                    },
                    ..CacheConfig::default()
                },
                Arc::new(SystemClock),
            )
            .unwrap(),
        );
        let held = cache.prepare(vec![put("k", "first")]).unwrap();
        let writer = {
            let cache = cache.clone();
            std::thread::spawn(move || cache.put(b"k", b"second", &W).map(|_| ()))
        };
        while cache.tx().unwrap().locks.waiting(b"k") == 0 {
            std::thread::yield_now();
        }
        held.commit();
        writer.join().unwrap().unwrap();
        assert_eq!(cache.get(b"k").unwrap(), &b"second"[..]);
        assert_eq!(cache.locked_keys(), 0);
    }

    /// Real threads increment one counter through versioned replaces and through prepared
    /// transactions, retrying on conflicts; no increment is lost and nothing stays locked.
    #[test]
    fn concurrent_increments_lose_no_update() {
        for timeout in [0, 50] {
            let cache = Arc::new(
                Cache::new(
                    "c",
                    CacheConfig {
                        transaction: TxConfig {
                            acquire_timeout: Duration::from_millis(timeout),
                            ..TxConfig::KEYCLOAK
                        },
                        ..CacheConfig::default()
                    },
                    Arc::new(SystemClock),
                )
                .unwrap(),
            );
            cache.put(b"n", &0u64.to_be_bytes(), &W).unwrap();
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let cache = cache.clone();
                    std::thread::spawn(move || {
                        let mut done = 0;
                        while done < 200 {
                            let cur = cache.get_with_metadata(b"n").unwrap();
                            let n = u64::from_be_bytes(cur.value[..].try_into().unwrap());
                            let next = (n + 1).to_be_bytes();
                            let ok = if t % 2 == 0 {
                                matches!(
                                    cache.replace_if_unmodified(
                                        b"n",
                                        cur.metadata.version,
                                        &next,
                                        &W
                                    ),
                                    Ok(ReplaceIfUnmodified::Replaced { .. })
                                )
                            } else {
                                let w = TxWrite::put(&b"n"[..], next.to_vec(), W)
                                    .expecting(Expect::Version(cur.metadata.version));
                                match cache.prepare(vec![w]) {
                                    Ok(tx) => {
                                        tx.commit();
                                        true
                                    }
                                    Err(_) => false,
                                }
                            };
                            if ok {
                                done += 1;
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let n = cache.get(b"n").unwrap();
            assert_eq!(u64::from_be_bytes(n[..].try_into().unwrap()), 800);
            assert_eq!(cache.locked_keys(), 0);
        }
    }
}
