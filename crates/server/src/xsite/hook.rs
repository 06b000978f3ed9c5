//! The engine's prepare hook on each cache with backups: SYNC backups run inside the write's
//! transaction (key locked, write set fixed) and may veto it; after commit the change is recorded
//! in the cache's version store and handed to the bridge, which queues ASYNC backups.
//!
//! A clear of the cache goes the same way: `prepare_clear` sends it to the SYNC backups with
//! what this site had seen (the version store's summary) and may veto it; `cleared` raises the
//! store's clear floor and queues it for the ASYNC backups. Expiry is not replicated.
//!
//! Changes applied from another site go through the same engine writes (so listeners see them
//! on the change feed) but with [`applying_remote`] set on the applying thread: the hook then
//! does nothing, so a received change is never replicated back (echoed).

use std::cell::Cell;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironrod_engine::{Action, Cache, Expiration, PrepareHook, Veto, WriteSet};
use ironrod_xsite::{Bridge, Change, EntryValue, SyncStart, SyncVerdict, VersionVector};
use tracing::warn;

use super::Xsite;

thread_local! {
    static APPLYING: Cell<bool> = const { Cell::new(false) };
    /// What the clear running on this thread had seen, from `prepare_clear` to `cleared`.
    static CLEARING: std::cell::RefCell<Option<VersionVector>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with the hook switched off on this thread (a remote change being applied).
pub fn applying_remote<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            APPLYING.with(|a| a.set(self.0));
        }
    }
    let _reset = Reset(APPLYING.with(|a| a.replace(true)));
    f()
}

fn is_applying() -> bool {
    APPLYING.with(Cell::get)
}

/// The hook of one cache.
pub struct SyncHook {
    xs: Arc<Xsite>,
    /// The cache's default lifespan and max-idle, to send explicit durations.
    lifespan: Option<u64>,
    max_idle: Option<u64>,
}

impl SyncHook {
    pub fn new(xs: Arc<Xsite>, cache: &Cache) -> Self {
        SyncHook {
            xs,
            lifespan: cache.config().lifespan,
            max_idle: cache.config().max_idle,
        }
    }

    fn value(&self, action: &Action) -> Option<EntryValue> {
        match action {
            Action::Put { value, options } => Some(EntryValue {
                bytes: value.to_vec(),
                lifespan_ms: resolve(options.lifespan, self.lifespan),
                max_idle_ms: resolve(options.max_idle, self.max_idle),
            }),
            Action::Remove { .. } => None,
        }
    }

    fn unstage(&self, cache: &str, writes: &WriteSet) -> Vec<Change> {
        let mut staged = self.xs.staged.lock();
        writes
            .writes()
            .iter()
            .filter_map(|w| staged.remove(&(cache.to_string(), w.key.to_vec())))
            .collect()
    }
}

impl SyncHook {
    /// Runs `start` on the bridge when `cache` has online SYNC backups, writes the frames and
    /// waits for every verdict; `Err` is the veto's text (FAIL), warnings are logged (WARN).
    fn replicate(
        &self,
        cache: &str,
        start: impl FnOnce(&mut Bridge, Instant) -> Vec<SyncStart>,
    ) -> Result<(), String> {
        let mut waits = Vec::new();
        let mut verdicts = Vec::new();
        let bound;
        {
            let mut bridge = self.xs.bridge.lock();
            if !bridge.has_sync_backups(cache) {
                return Ok(());
            }
            bound = bridge
                .config()
                .caches
                .get(cache)
                .map(|c| c.backups.values().map(|b| b.timeout()).max())
                .unwrap_or_default()
                .unwrap_or_default();
            for started in start(&mut bridge, Instant::now()) {
                match started {
                    SyncStart::Done(v) => verdicts.push(v),
                    SyncStart::Pending(id) => {
                        let (tx, rx) = mpsc::sync_channel(1);
                        self.xs.waiters.lock().insert(id, tx);
                        waits.push((id, rx));
                    }
                }
            }
        }
        // Write the frames to the links from this thread: no hand-off before the socket.
        self.xs.flush(None);
        // The bridge answers within the backup timeout; the margin covers a stalled driver.
        let limit = bound + Duration::from_secs(5);
        let wait_all = || {
            for (id, rx) in waits {
                match rx.recv_timeout(limit) {
                    Ok(v) => verdicts.push(v),
                    Err(_) => {
                        self.xs.waiters.lock().remove(&id);
                        self.xs.bridge.lock().abandon(id);
                        verdicts.push(SyncVerdict::Veto(ironrod_xsite::BackupFailure {
                            cache: cache.to_string(),
                            site: String::new(),
                            policy: ironrod_xsite::config::FailurePolicy::Fail,
                            cause: ironrod_xsite::FailureCause::Timeout(limit),
                        }));
                    }
                }
            }
            verdicts
        };
        for v in block(wait_all) {
            match v {
                SyncVerdict::Commit { warnings } => {
                    for w in warnings {
                        warn!("{w}");
                    }
                }
                SyncVerdict::Veto(failure) => return Err(failure.to_string()),
            }
        }
        Ok(())
    }
}

/// An expiration as the explicit duration the other site must apply (`None`: immortal).
pub fn resolve(e: Expiration, default: Option<u64>) -> Option<u64> {
    match e {
        Expiration::Default => default,
        Expiration::Infinite => None,
        Expiration::Millis(ms) => Some(ms),
    }
}

impl PrepareHook for SyncHook {
    fn prepare(&self, cache: &str, writes: &WriteSet) -> Result<(), Veto> {
        if is_applying() {
            return Ok(());
        }
        let store = self.xs.store(cache);
        let changes: Vec<Change> = {
            let store = store.lock();
            writes
                .writes()
                .iter()
                .map(|w| store.prepare_local(&w.key, self.value(&w.action)))
                .collect()
        };
        {
            let mut staged = self.xs.staged.lock();
            for c in &changes {
                staged.insert((c.cache.clone(), c.key.clone()), c.clone());
            }
        }
        let replicated = self.replicate(cache, |bridge, now| {
            changes
                .iter()
                .map(|c| bridge.replicate_sync(now, c))
                .collect()
        });
        if let Err(reason) = replicated {
            self.unstage(cache, writes);
            return Err(Veto(reason));
        }
        Ok(())
    }

    fn prepare_clear(&self, cache: &str) -> Result<(), Veto> {
        if is_applying() {
            return Ok(());
        }
        let seen = self.xs.store(cache).lock().clear_summary();
        self.replicate(cache, |bridge, now| {
            vec![bridge.replicate_clear(now, cache, &seen)]
        })
        .map_err(Veto)?;
        CLEARING.with(|c| *c.borrow_mut() = Some(seen));
        Ok(())
    }

    fn cleared(&self, cache: &str) {
        if is_applying() {
            return;
        }
        let store = self.xs.store(cache);
        let seen = CLEARING
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| store.lock().clear_summary());
        store.lock().clear(&seen);
        self.xs.bridge.lock().cleared(Instant::now(), cache, &seen);
        self.xs.flush(None);
    }

    fn commit(&self, cache: &str, writes: &WriteSet) {
        if is_applying() {
            return;
        }
        let changes = self.unstage(cache, writes);
        if changes.is_empty() {
            return;
        }
        let now = Instant::now();
        {
            let store = self.xs.store(cache);
            let mut store = store.lock();
            for c in &changes {
                store.commit_local(now, c);
            }
        }
        let queued = {
            let mut bridge = self.xs.bridge.lock();
            for c in &changes {
                bridge.committed(now, c);
            }
            bridge.has_async_backups(cache)
        };
        // The driver sends ASYNC batches (off the client's path, and batching what commits
        // meanwhile); a cache with SYNC backups only has nothing for it.
        if queued {
            self.xs.wake();
        }
    }

    fn rollback(&self, cache: &str, writes: &WriteSet) {
        if is_applying() {
            return;
        }
        self.unstage(cache, writes);
    }
}

/// Runs a blocking wait, moving this async worker's other tasks elsewhere first when called on
/// the multi-threaded runtime (a SYNC write waits for the network inside the engine call).
fn block<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
