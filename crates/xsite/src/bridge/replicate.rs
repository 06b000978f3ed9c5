//! Origin side of replication: SYNC writes and their verdicts, ASYNC queues and batches.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::async_queue::Enqueued;
use crate::change::Change;
use crate::config::{FailurePolicy, Strategy, XsiteConfig};
use crate::link::backoff;
use crate::wire::Message;

impl Bridge {
    /// Sends `change` (already applied locally under the key's lock, not yet committed) to every
    /// online SYNC backup of its cache.
    pub fn replicate_sync(&mut self, now: Instant, change: &Change) -> SyncStart {
        self.start_sync(now, &change.cache.clone(), |id, _| {
            Ok(Message::SyncApply {
                id,
                change: change.clone(),
            })
        })
    }

    /// Sends a clear of `cache` that had seen `seen` (from
    /// [`crate::VersionStore::clear_summary`]) to every online SYNC backup of the cache; the
    /// verdict comes as for a write. A site reached over a link older than version 3 (no CLEAR
    /// frame) counts as a failed backup.
    pub fn replicate_clear(
        &mut self,
        now: Instant,
        cache: &str,
        seen: &crate::change::VersionVector,
    ) -> SyncStart {
        self.start_sync(now, cache, |id, version| {
            if version.is_some_and(|v| v < CLEAR_VERSION) {
                return Err(FailureCause::Refused {
                    cause: crate::wire::Cause::REFUSED,
                    message: format!(
                        "the link speaks bridge protocol version {}, which cannot replicate a clear",
                        version.unwrap_or_default()
                    ),
                });
            }
            Ok(Message::Clear {
                id,
                cache: cache.to_string(),
                seen: seen.clone(),
                sync: true,
            })
        })
    }

    /// Sends what `message(request, link version)` builds to every online SYNC backup of
    /// `cache`; an `Err` is that site's failure.
    fn start_sync(
        &mut self,
        now: Instant,
        cache: &str,
        message: impl Fn(u64, Option<u8>) -> Result<Message, FailureCause>,
    ) -> SyncStart {
        let id = WriteId(self.id());
        let sites: Vec<String> = self
            .backups
            .iter()
            .filter(|((c, _), b)| c == cache && b.cfg.strategy == Strategy::Sync)
            .map(|((_, s), _)| s.clone())
            .collect();
        let mut pending = PendingWrite {
            cache: cache.to_string(),
            waiting: BTreeMap::new(),
            failures: Vec::new(),
        };
        for site in sites {
            if !self.usable(now, cache, &site) {
                continue;
            }
            let request = self.id();
            let built = message(request, self.hop_version(&site));
            let refused = built.as_ref().err().cloned();
            let sent = match built {
                Ok(m) => self.send_to_site(now, &site, m),
                Err(_) => false,
            };
            let Some(b) = self.backups.get_mut(&(cache.to_string(), site.clone())) else {
                continue;
            };
            if sent {
                pending.waiting.insert(
                    site,
                    Waiting {
                        request,
                        sent_at: now,
                        deadline: now + b.cfg.timeout(),
                    },
                );
                self.requests.insert(request, id);
            } else {
                let cause = match refused {
                    Some(cause) => cause,
                    None => {
                        b.status.communication_failure(now);
                        FailureCause::Unreachable("no link".into())
                    }
                };
                pending.failures.push(BackupFailure {
                    cache: cache.to_string(),
                    site: site.clone(),
                    policy: b.cfg.failure_policy,
                    cause,
                });
            }
        }
        if pending.waiting.is_empty() {
            return SyncStart::Done(verdict(pending.failures));
        }
        self.writes.insert(id, pending);
        SyncStart::Pending(id)
    }

    /// A clear of `cache` that had seen `seen` ran locally: queue it, in order with the cache's
    /// committed changes, for every online ASYNC backup.
    pub fn cleared(&mut self, now: Instant, cache: &str, seen: &crate::change::VersionVector) {
        let sites: Vec<String> = self
            .backups
            .iter()
            .filter(|((c, _), b)| c == cache && b.cfg.strategy == Strategy::Async)
            .map(|((_, s), _)| s.clone())
            .collect();
        for site in sites {
            if !self.usable(now, cache, &site) {
                continue;
            }
            if let Some(b) = self.backups.get_mut(&(cache.to_string(), site)) {
                b.queue.push_clear(seen);
            }
        }
        self.pump_async(now);
    }

    /// The server gives up waiting for a write (its own deadline); the write's pending requests
    /// are forgotten and late answers ignored.
    pub fn abandon(&mut self, write: WriteId) {
        if let Some(w) = self.writes.remove(&write) {
            for x in w.waiting.values() {
                self.requests.remove(&x.request);
            }
        }
    }

    /// A write committed locally: queue it for every online ASYNC backup of its cache.
    pub fn committed(&mut self, now: Instant, change: &Change) {
        let sites: Vec<String> = self
            .backups
            .iter()
            .filter(|((c, _), b)| c == &change.cache && b.cfg.strategy == Strategy::Async)
            .map(|((_, s), _)| s.clone())
            .collect();
        let capacity = self.cfg.async_replication.queue_capacity as usize;
        for site in sites {
            if !self.usable(now, &change.cache, &site) {
                continue;
            }
            let key = (change.cache.clone(), site.clone());
            let overflow = self
                .backups
                .get_mut(&key)
                .is_some_and(|b| b.queue.push(change.clone(), capacity) == Enqueued::Overflow);
            if overflow {
                self.set_offline(&change.cache, &site, "ASYNC queue full");
            }
        }
        self.pump_async(now);
    }

    pub(super) fn sync_answer(
        &mut self,
        now: Instant,
        request: u64,
        from: &str,
        failure: Option<FailureCause>,
    ) {
        let Some(id) = self.requests.get(&request).copied() else {
            return;
        };
        let matches = self
            .writes
            .get(&id)
            .and_then(|w| w.waiting.get(from))
            .is_some_and(|x| x.request == request);
        if matches {
            self.sync_outcome(now, id, from, failure);
        }
    }

    /// Records the outcome of one site for one write; emits the verdict when all are in.
    pub(super) fn sync_outcome(
        &mut self,
        _now: Instant,
        id: WriteId,
        site: &str,
        failure: Option<FailureCause>,
    ) {
        let Some(w) = self.writes.get_mut(&id) else {
            return;
        };
        let Some(x) = w.waiting.remove(site) else {
            return;
        };
        self.requests.remove(&x.request);
        if let Some(b) = self.backups.get_mut(&(w.cache.clone(), site.to_string())) {
            match &failure {
                Some(cause) if cause.is_communication() => {
                    b.status.communication_failure(x.sent_at)
                }
                _ => b.status.answered(),
            }
            if let Some(cause) = failure {
                w.failures.push(BackupFailure {
                    cache: w.cache.clone(),
                    site: site.to_string(),
                    policy: b.cfg.failure_policy,
                    cause,
                });
            }
        }
        if w.waiting.is_empty() {
            if let Some(w) = self.writes.remove(&id) {
                self.events.push_back(Event::SyncDone {
                    write: id,
                    verdict: verdict(w.failures),
                });
            }
        }
    }

    pub(super) fn async_answer(&mut self, now: Instant, batch: u64, from: &str, ok: bool) {
        let delay = |attempts| retry_delay(&self.cfg, attempts);
        for ((_, site), b) in self.backups.iter_mut() {
            if site != from || b.queue.in_flight().is_none_or(|f| f.id != batch) {
                continue;
            }
            b.status.answered();
            if ok {
                b.queue.acked(batch);
            } else {
                b.queue.failed();
                b.queue.retry_at = Some(now + delay(b.queue.attempts));
            }
        }
        self.pump_async(now);
    }

    /// Sends the next batch of every ASYNC queue that can send; counts a failure for queues
    /// whose site is unreachable at their retry time.
    pub(super) fn pump_async(&mut self, now: Instant) {
        let keys: Vec<(String, String)> = self
            .backups
            .iter()
            .filter(|(_, b)| {
                b.cfg.strategy == Strategy::Async
                    && b.queue.in_flight().is_none()
                    && !b.queue.is_empty()
                    && b.queue.retry_at.is_none_or(|r| r <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let max = self.cfg.async_replication.batch_size as usize;
        for (cache, site) in keys {
            if !self.usable(now, &cache, &site) {
                continue;
            }
            if self.reachable(&site) {
                let old_link = self.hop_version(&site).is_some_and(|v| v < CLEAR_VERSION);
                // At most a clear and then a batch of changes (when the clear cannot go).
                for _ in 0..2 {
                    let id = self.id();
                    let Some(batch) = self
                        .backups
                        .get_mut(&(cache.clone(), site.clone()))
                        .and_then(|b| b.queue.next_batch(id, max, now).cloned())
                    else {
                        break;
                    };
                    let message = match batch.clear {
                        Some(_) if old_link => {
                            if let Some(b) = self.backups.get_mut(&(cache.clone(), site.clone())) {
                                b.queue.acked(id);
                            }
                            self.events.push_back(Event::ClearNotReplicated {
                                cache: cache.clone(),
                                site: site.clone(),
                            });
                            continue;
                        }
                        Some(seen) => Message::Clear {
                            id,
                            cache: cache.clone(),
                            seen,
                            sync: false,
                        },
                        None => Message::AsyncBatch {
                            id,
                            changes: batch.changes,
                        },
                    };
                    self.send_to_site(now, &site, message);
                    break;
                }
            } else if let Some(b) = self.backups.get_mut(&(cache.clone(), site.clone())) {
                b.status.communication_failure(now);
                b.queue.attempts = b.queue.attempts.saturating_add(1);
                b.queue.retry_at = Some(now + retry_delay(&self.cfg, b.queue.attempts));
            }
        }
    }
}

/// Back-off between ASYNC retries: the reconnect curve, capped at the ack timeout.
pub(super) fn retry_delay(cfg: &XsiteConfig, attempts: u32) -> Duration {
    backoff(&cfg.link, attempts.max(1), 1.0)
        .min(Duration::from_millis(cfg.async_replication.ack_timeout_ms))
}

/// FAIL failures veto the write; WARN ones become warnings; IGNORE ones vanish.
pub(super) fn verdict(failures: Vec<BackupFailure>) -> SyncVerdict {
    let mut warnings = Vec::new();
    for f in failures {
        match f.policy {
            FailurePolicy::Fail => return SyncVerdict::Veto(f),
            FailurePolicy::Warn => warnings.push(f),
            FailurePolicy::Ignore => {}
        }
    }
    SyncVerdict::Commit { warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(site: &str, policy: FailurePolicy) -> BackupFailure {
        BackupFailure {
            cache: "sessions".into(),
            site: site.into(),
            policy,
            cause: FailureCause::Timeout(Duration::from_millis(4500)),
        }
    }

    #[test]
    fn verdict_applies_each_failure_policy() {
        assert_eq!(verdict(vec![]), SyncVerdict::Commit { warnings: vec![] });
        assert_eq!(
            verdict(vec![failure("B", FailurePolicy::Ignore)]),
            SyncVerdict::Commit { warnings: vec![] }
        );
        assert_eq!(
            verdict(vec![failure("B", FailurePolicy::Warn)]),
            SyncVerdict::Commit {
                warnings: vec![failure("B", FailurePolicy::Warn)]
            }
        );
        let SyncVerdict::Veto(f) = verdict(vec![
            failure("B", FailurePolicy::Warn),
            failure("C", FailurePolicy::Fail),
        ]) else {
            panic!("FAIL must veto");
        };
        assert_eq!(
            f.to_string(),
            "cross-site backup of cache 'sessions' to site 'C' failed: timed out after 4500 ms"
        );
    }
}
