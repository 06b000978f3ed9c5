//! Keyed reads and writes, bulk operations and statistics.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ironrod_codec::{Flags, Op, PreviousValue, RequestHeader, ResponseBody, Status};
use ironrod_engine::{
    Cache, PutIfAbsent, RemoveIfUnmodified, Replace, ReplaceIfUnmodified, Versioned,
};

use super::convert::{self, plain_options, write_options};
use super::{engine_refusal, Outcome, Reply};
use crate::session::Session;
use crate::state::State;

/// The status and body of a write's answer, as the reference gives them: with
/// FORCE_RETURN_VALUE the "with previous" status and the previous value (empty, with the absent
/// metadata block from 4.0, when there was none); without it the plain status alone.
pub(super) fn write_answer(
    force: bool,
    plain: Status,
    with_previous: Status,
    prev: Option<&Versioned>,
) -> (Status, ResponseBody) {
    if !force {
        return (plain, ResponseBody::Empty);
    }
    let body = ResponseBody::Previous(PreviousValue {
        metadata: prev.map(|v| convert::metadata(&v.metadata)),
        value: prev.map(|v| v.value.clone()).unwrap_or_default(),
    });
    (with_previous, body)
}

/// The outcome of a version-conditional write (replace or remove if unmodified), which the
/// reference answers the same way for both.
enum Conditional {
    NotFound,
    Mismatch(Versioned),
    Done(Versioned),
}

impl Conditional {
    /// No entry ever has a negative version, so a request carrying one is compared against
    /// the current entry and can only find a mismatch or nothing.
    fn against_current(cache: &Cache, key: &[u8]) -> Conditional {
        match cache.get_with_metadata(key) {
            None => Conditional::NotFound,
            Some(current) => Conditional::Mismatch(current),
        }
    }

    fn reply(
        self,
        with_previous: impl Fn(Status, Status, Option<&Versioned>) -> Reply,
        cache: &Arc<Cache>,
    ) -> Reply {
        match self {
            Conditional::NotFound => Reply::status(Status::KEY_DOES_NOT_EXIST, cache),
            Conditional::Mismatch(current) => with_previous(
                Status::NOT_EXECUTED,
                Status::NOT_EXECUTED_WITH_PREVIOUS,
                Some(&current),
            ),
            Conditional::Done(previous) => with_previous(
                Status::SUCCESS,
                Status::SUCCESS_WITH_PREVIOUS,
                Some(&previous),
            ),
        }
    }
}

impl From<ReplaceIfUnmodified> for Conditional {
    fn from(o: ReplaceIfUnmodified) -> Self {
        match o {
            ReplaceIfUnmodified::NotFound => Conditional::NotFound,
            ReplaceIfUnmodified::VersionMismatch { current } => Conditional::Mismatch(current),
            ReplaceIfUnmodified::Replaced { previous } => Conditional::Done(previous),
        }
    }
}

impl From<RemoveIfUnmodified> for Conditional {
    fn from(o: RemoveIfUnmodified) -> Self {
        match o {
            RemoveIfUnmodified::NotFound => Conditional::NotFound,
            RemoveIfUnmodified::VersionMismatch { current } => Conditional::Mismatch(current),
            RemoveIfUnmodified::Removed { previous } => Conditional::Done(previous),
        }
    }
}

impl State {
    pub(super) fn cache_op(&self, h: &RequestHeader, op: &Op, session: &mut Session) -> Outcome {
        let cache = self.session_cache(h, session)?;
        let force = h.flags.contains(Flags::FORCE_RETURN_VALUE);
        let now = || self.clock.now();
        let with_previous = |plain: Status, with: Status, prev: Option<&Versioned>| {
            let (status, body) = write_answer(force, plain, with, prev);
            Reply::with(status, body, &cache)
        };
        let reply = match op {
            Op::Get { key } => match cache.get(key) {
                Some(v) => Reply::with(Status::SUCCESS, ResponseBody::Value(v), &cache),
                None => Reply::status(Status::KEY_DOES_NOT_EXIST, &cache),
            },
            Op::GetWithVersion { key } => match cache.get_with_metadata(key) {
                Some(v) => Reply::with(
                    Status::SUCCESS,
                    ResponseBody::VersionedValue {
                        version: convert::version(v.metadata.version),
                        value: v.value,
                    },
                    &cache,
                ),
                None => Reply::status(Status::KEY_DOES_NOT_EXIST, &cache),
            },
            Op::GetWithMetadata { key } => match cache.get_with_metadata(key) {
                Some(v) => Reply::with(
                    Status::SUCCESS,
                    ResponseBody::MetadataValue {
                        metadata: convert::metadata(&v.metadata),
                        value: v.value,
                    },
                    &cache,
                ),
                None => Reply::status(Status::KEY_DOES_NOT_EXIST, &cache),
            },
            Op::ContainsKey { key } => {
                let status = if cache.contains(key) {
                    Status::SUCCESS
                } else {
                    Status::KEY_DOES_NOT_EXIST
                };
                Reply::status(status, &cache)
            }
            Op::Put {
                key,
                expiration,
                value,
            } => {
                let options = write_options(h, expiration, &now)?;
                if !force {
                    // Nobody asked for the previous entry: do not copy it out.
                    cache.set(key, value, &options).map_err(engine_refusal)?;
                    return Ok(Reply::status(Status::SUCCESS, &cache));
                }
                let prev = cache.put(key, value, &options).map_err(engine_refusal)?;
                // With FORCE_RETURN_VALUE the reference answers "with previous" even for an
                // absent key, carrying an empty previous value.
                with_previous(
                    Status::SUCCESS,
                    Status::SUCCESS_WITH_PREVIOUS,
                    prev.as_ref(),
                )
            }
            Op::PutIfAbsent {
                key,
                expiration,
                value,
            } => {
                let options = write_options(h, expiration, &now)?;
                match cache
                    .put_if_absent(key, value, &options)
                    .map_err(engine_refusal)?
                {
                    PutIfAbsent::Stored => Reply::status(Status::SUCCESS, &cache),
                    PutIfAbsent::Existing(current) => with_previous(
                        Status::NOT_EXECUTED,
                        Status::NOT_EXECUTED_WITH_PREVIOUS,
                        Some(&current),
                    ),
                }
            }
            Op::Replace {
                key,
                expiration,
                value,
            } => {
                let options = write_options(h, expiration, &now)?;
                match cache
                    .replace(key, value, &options)
                    .map_err(engine_refusal)?
                {
                    Replace::NotFound => Reply::status(Status::NOT_EXECUTED, &cache),
                    Replace::Replaced { previous: p } => {
                        with_previous(Status::SUCCESS, Status::SUCCESS_WITH_PREVIOUS, Some(&p))
                    }
                }
            }
            Op::ReplaceIfUnmodified {
                key,
                expiration,
                version,
                value,
            } => {
                let options = write_options(h, expiration, &now)?;
                let outcome = match u64::try_from(*version) {
                    Ok(v) => cache
                        .replace_if_unmodified(key, v, value, &options)
                        .map_err(engine_refusal)?
                        .into(),
                    Err(_) => Conditional::against_current(&cache, key),
                };
                outcome.reply(with_previous, &cache)
            }
            Op::Remove { key } => match cache
                .remove(key, &plain_options(h))
                .map_err(engine_refusal)?
            {
                None => Reply::status(Status::KEY_DOES_NOT_EXIST, &cache),
                Some(p) => with_previous(Status::SUCCESS, Status::SUCCESS_WITH_PREVIOUS, Some(&p)),
            },
            Op::RemoveIfUnmodified { key, version } => {
                let outcome = match u64::try_from(*version) {
                    Ok(v) => cache
                        .remove_if_unmodified(key, v, &plain_options(h))
                        .map_err(engine_refusal)?
                        .into(),
                    Err(_) => Conditional::against_current(&cache, key),
                };
                outcome.reply(with_previous, &cache)
            }
            Op::Clear => {
                cache.clear(&plain_options(h)).map_err(engine_refusal)?;
                Reply::status(Status::SUCCESS, &cache)
            }
            Op::Size => {
                // The Java client reads a vInt: clamp to what it can hold.
                let size = cache.size().min(i32::MAX as u64);
                Reply::with(Status::SUCCESS, ResponseBody::Size(size), &cache)
            }
            Op::Stats => {
                let s = cache.stats();
                let local = [
                    ("timeSinceStart", s.time_since_start),
                    ("currentNumberOfEntries", s.current_entries),
                    ("stores", s.stores),
                    ("retrievals", s.retrievals),
                    ("hits", s.hits),
                    ("misses", s.misses),
                    ("removeHits", s.remove_hits),
                    ("removeMisses", s.remove_misses),
                    ("approximateEntries", s.current_entries),
                    ("approximateEntriesUnique", s.current_entries),
                    ("totalBytesRead", self.bytes_read.load(Ordering::Relaxed)),
                    (
                        "totalBytesWritten",
                        self.bytes_written.load(Ordering::Relaxed),
                    ),
                ];
                // From 2.4 the reference adds cluster-wide figures, even for a local cache; on
                // one node they are the local ones.
                let global = [
                    ("globalCurrentNumberOfEntries", s.current_entries),
                    ("globalStores", s.stores),
                    ("globalRetrievals", s.retrievals),
                    ("globalHits", s.hits),
                    ("globalMisses", s.misses),
                    ("globalRemoveHits", s.remove_hits),
                    ("globalRemoveMisses", s.remove_misses),
                    ("globalApproximateEntries", s.current_entries),
                    ("globalApproximateEntriesUnique", s.current_entries),
                ];
                let global = if h.version >= ironrod_codec::Version::V2_4 {
                    &global[..]
                } else {
                    &[]
                };
                let stats = local
                    .iter()
                    .chain(global)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                Reply::with(Status::SUCCESS, ResponseBody::Stats(stats), &cache)
            }
            Op::PutAll {
                expiration,
                entries,
            } => {
                let options = write_options(h, expiration, &now)?;
                cache
                    .put_all(
                        entries.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
                        &options,
                    )
                    .map_err(engine_refusal)?;
                Reply::status(Status::SUCCESS, &cache)
            }
            Op::GetAll { keys } => {
                let entries = cache.get_all(keys.iter().map(|k| k.as_ref()));
                Reply::with(Status::SUCCESS, ResponseBody::Entries(entries), &cache)
            }
            Op::BulkGet { count } => {
                let limit = (*count > 0).then_some(*count as usize);
                Reply::with(
                    Status::SUCCESS,
                    ResponseBody::BulkEntries(cache.bulk(limit)),
                    &cache,
                )
            }
            Op::BulkGetKeys { .. } => Reply::with(
                Status::SUCCESS,
                ResponseBody::BulkKeys(cache.bulk_keys()),
                &cache,
            ),
            other => {
                return Err(crate::errors::Refusal::server(format!(
                    "internal: {} routed to the cache handler",
                    other.opcode()
                )))
            }
        };
        Ok(reply)
    }
}
