//! Applying changes received from other sites, and reading pages of a cache for a state push.
//!
//! A received change is written through the engine, so it takes the key's lock (within the
//! cache's acquire timeout), gets a fresh engine version and is published on the change feed
//! (client listeners see it); the hook is switched off for it ([`applying_remote`]), so it is
//! never replicated back.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ironrod_engine::{Cache, EngineError, Expiration, Iteration, TxWrite, WriteOptions};
use ironrod_xsite::wire::Cause;
use ironrod_xsite::{
    ApplyFailure, ApplyMode, Change, Chunk, EntryValue, Resolution, Ticket, VersionVector,
};

use super::hook::applying_remote;
use super::Xsite;

/// Carries out an [`ironrod_xsite::Event::Apply`]: applies the change and completes the
/// ticket. An apply that cannot wait for a key lock (acquire timeout 0, or a cache without
/// locks) runs right here, on the link's reader task, saving thread hops on the SYNC path; one
/// that may wait goes to a blocking thread so the links keep moving meanwhile.
pub fn run(
    xs: &Arc<Xsite>,
    state: &Arc<crate::state::State>,
    ticket: Ticket,
    change: Change,
    mode: ApplyMode,
) {
    let name = change.cache.clone();
    run_on(xs, state, ticket, &name, move |xs, cache| {
        apply(xs, cache, &change, mode)
    });
}

/// Carries out an [`ironrod_xsite::Event::Clear`] like [`run`] does a change: inline unless the
/// cache's key locks may wait.
pub fn run_clear(
    xs: &Arc<Xsite>,
    state: &Arc<crate::state::State>,
    ticket: Ticket,
    name: String,
    seen: VersionVector,
) {
    run_on(xs, state, ticket, &name, move |xs, cache| {
        clear(xs, cache, &seen)
    });
}

/// Runs `work` on the cache `name` and completes `ticket` with its result (a missing cache is
/// a failure): right here, or on a blocking thread (then flushing the links) when the cache's
/// key locks may wait.
fn run_on(
    xs: &Arc<Xsite>,
    state: &Arc<crate::state::State>,
    ticket: Ticket,
    name: &str,
    work: impl FnOnce(&Xsite, &Arc<Cache>) -> Result<(), ApplyFailure> + Send + 'static,
) {
    let Ok(cache) = state.caches.cache(name) else {
        let failure = ApplyFailure {
            cause: Cause::NO_SUCH_CACHE,
            message: format!("no cache '{name}' on site '{}'", xs.site()),
        };
        xs.bridge
            .lock()
            .complete_apply(Instant::now(), ticket, Err(failure));
        return;
    };
    let may_wait = cache.config().transaction.may_wait();
    let go = {
        let xs = xs.clone();
        move || {
            let result = work(&xs, &cache);
            xs.bridge
                .lock()
                .complete_apply(Instant::now(), ticket, result);
        }
    };
    if may_wait {
        let xs = xs.clone();
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            go();
            xs.flush(Some(&state));
        });
    } else {
        go();
    }
}

/// Applies a clear received from another site that had seen `seen`: raises the version store's
/// clear floor, then removes every entry whose key kept no metadata (written before the clear,
/// or never replicated), each under its key lock and firing its listener event. An entry
/// written after or concurrently with the clear stays; so does a key locked right now by a
/// local write (which comes after the clear).
pub fn clear(xs: &Xsite, cache: &Arc<Cache>, seen: &VersionVector) -> Result<(), ApplyFailure> {
    applying_remote(|| {
        let store = xs.store(cache.name());
        store.lock().clear(seen);
        let mut it = cache.iterate(None).map_err(|e| failed(&e))?;
        let mut doomed = Vec::new();
        while !it.is_finished() {
            let page = cache.next_batch(&mut it, 1024);
            let store = store.lock();
            doomed.extend(
                page.into_iter()
                    .filter(|e| !store.survives_clear(&e.key))
                    .map(|e| e.key),
            );
        }
        let transactional = cache.config().transaction.is_transactional();
        for key in doomed {
            if !transactional {
                cache
                    .remove(&key, &WriteOptions::default())
                    .map_err(|e| failed(&e))?;
                continue;
            }
            match cache.prepare(vec![TxWrite::remove(key.clone(), WriteOptions::default())]) {
                Ok(p) => {
                    if store.lock().survives_clear(&key) {
                        p.rollback();
                    } else {
                        p.commit();
                    }
                }
                Err(EngineError::Lock(_)) => {}
                Err(e) => return Err(failed(&e)),
            }
        }
        Ok(())
    })
}

/// Applies one received change to `cache`.
pub fn apply(
    xs: &Xsite,
    cache: &Arc<Cache>,
    change: &Change,
    mode: ApplyMode,
) -> Result<(), ApplyFailure> {
    applying_remote(|| {
        if cache.config().transaction.is_transactional() {
            apply_locked(xs, cache, change, mode)
        } else {
            match resolve(xs, cache, change, mode) {
                Resolution::Keep => Ok(()),
                Resolution::Write(v) => write_plain(cache, &change.key, v.as_ref()),
            }
        }
    })
}

/// Under the key's lock: prepare a transaction writing the change, decide with the version
/// store, then commit (or write what the decision says instead).
fn apply_locked(
    xs: &Xsite,
    cache: &Arc<Cache>,
    change: &Change,
    mode: ApplyMode,
) -> Result<(), ApplyFailure> {
    let planned = change.value.clone();
    let prepared = match cache.prepare(vec![tx_write(&change.key, planned.as_ref())]) {
        Ok(p) => p,
        Err(EngineError::Lock(e)) => {
            if let ApplyMode::Push { .. } = mode {
                // A local write holds the key: it is newer than the push, which skips it.
                return Ok(());
            }
            return Err(ApplyFailure {
                cause: Cause::LOCK_TIMEOUT,
                message: e.to_string(),
            });
        }
        Err(e) => return Err(failed(&e)),
    };
    match resolve(xs, cache, change, mode) {
        Resolution::Keep => {
            prepared.rollback();
            Ok(())
        }
        Resolution::Write(v) if v == planned => {
            prepared.commit();
            Ok(())
        }
        Resolution::Write(other) => {
            // The merge policy picked another sibling: write that one instead.
            prepared.rollback();
            cache
                .prepare(vec![tx_write(&change.key, other.as_ref())])
                .map_err(|e| failed(&e))?
                .commit();
            Ok(())
        }
    }
}

/// What the version store says to write for `change` (the key is locked by the caller).
fn resolve(xs: &Xsite, cache: &Cache, change: &Change, mode: ApplyMode) -> Resolution {
    let store = xs.store(cache.name());
    let mut store = store.lock();
    let now = Instant::now();
    match mode {
        ApplyMode::Sync => store.apply_sync(now, change),
        ApplyMode::Async { policy } => store.apply_remote(now, change, policy, || {
            cache.get_with_metadata(&change.key).map(|v| EntryValue {
                bytes: v.value.to_vec(),
                lifespan_ms: v.metadata.lifespan,
                max_idle_ms: v.metadata.max_idle,
            })
        }),
        ApplyMode::Push { since } => store.apply_push(now, change, since),
    }
}

fn options(v: &EntryValue) -> WriteOptions {
    let e = |ms: Option<u64>| ms.map_or(Expiration::Infinite, Expiration::Millis);
    WriteOptions::expiring(e(v.lifespan_ms), e(v.max_idle_ms))
}

fn tx_write(key: &[u8], value: Option<&EntryValue>) -> TxWrite {
    let key = Bytes::copy_from_slice(key);
    match value {
        Some(v) => TxWrite::put(key, Bytes::copy_from_slice(&v.bytes), options(v)),
        None => TxWrite::remove(key, WriteOptions::default()),
    }
}

fn write_plain(cache: &Cache, key: &[u8], value: Option<&EntryValue>) -> Result<(), ApplyFailure> {
    let r = match value {
        Some(v) => cache.set(key, &v.bytes, &options(v)),
        None => cache.remove(key, &WriteOptions::default()).map(|_| ()),
    };
    r.map_err(|e| failed(&e))
}

fn failed(e: &EngineError) -> ApplyFailure {
    ApplyFailure {
        cause: match e {
            EngineError::Lock(_) => Cause::LOCK_TIMEOUT,
            _ => Cause::APPLY_FAILED,
        },
        message: e.to_string(),
    }
}

/// One page of `cache` for a push; `iteration` continues where the previous page stopped.
pub fn read_chunk(xs: &Xsite, cache: &Cache, iteration: &mut Iteration, max: usize) -> Vec<Change> {
    let entries = cache.next_batch(iteration, max.max(1));
    let store = xs.store(cache.name());
    let store = store.lock();
    entries
        .into_iter()
        .map(|e| {
            let (version, origin) = store
                .meta(&e.key)
                .unwrap_or_else(|| (Default::default(), xs.site().to_string()));
            Change {
                cache: cache.name().to_string(),
                key: e.key.to_vec(),
                value: Some(EntryValue {
                    bytes: e.value.to_vec(),
                    lifespan_ms: e.metadata.lifespan,
                    max_idle_ms: e.metadata.max_idle,
                }),
                origin,
                version,
            }
        })
        .collect()
}

/// A [`Chunk`] from a page and whether the iteration is over; `token` names the iteration.
pub fn chunk(entries: Vec<Change>, finished: bool, token: u64) -> Chunk {
    Chunk {
        entries,
        next: (!finished).then(|| token.to_be_bytes().to_vec()),
    }
}
