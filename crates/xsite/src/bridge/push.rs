//! State push, sender side: start, chunks, acknowledgements, cancel and status.

use std::time::{Duration, Instant};

use super::*;
use crate::change::Change;
use crate::offline::StatusChange;
use crate::push::{Phase, PushStatus};
use crate::wire::{Frame, Message, Route};

impl Bridge {
    /// The server read a chunk asked for by [`Event::ReadChunk`].
    pub fn provide_chunk(
        &mut self,
        now: Instant,
        cache: &str,
        site: &str,
        chunk: Result<Chunk, String>,
    ) {
        let key = (cache.to_string(), site.to_string());
        let Some(b) = self.backups.get_mut(&key) else {
            return;
        };
        let Some((push, Phase::Reading { next_seq, .. })) = b.push.running.clone() else {
            return;
        };
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                self.finish_push(
                    cache,
                    site,
                    PushStatus::Error(format!("reading the cache failed: {e}")),
                    true,
                );
                return;
            }
        };
        let entries: Vec<Change> = chunk
            .entries
            .into_iter()
            .filter(|c| !c.is_tombstone())
            .collect();
        if entries.is_empty() {
            match chunk.next {
                None => {
                    self.send_to_site(now, site, Message::PushDone { push });
                    self.finish_push(cache, site, PushStatus::Ok, false);
                }
                Some(cursor) => {
                    self.ask_chunk(cache, site, push, Some(cursor), next_seq);
                }
            }
            return;
        }
        let n = entries.len() as u64;
        let timeout = Duration::from_millis(b.cfg.state_transfer.timeout_ms);
        b.push.running = Some((
            push,
            Phase::Sending {
                seq: next_seq,
                next: chunk.next,
                deadline: now + timeout,
            },
        ));
        b.push.sent_entries += n;
        if !self.send_to_site(
            now,
            site,
            Message::PushChunk {
                push,
                seq: next_seq,
                changes: entries,
            },
        ) {
            self.finish_push(
                cache,
                site,
                PushStatus::Error("site unreachable".into()),
                false,
            );
        }
    }

    /// Starts pushing `cache` (or every cache backing up to `site`) to `site`; brings the backup
    /// online as Infinispan does.
    pub fn start_push(
        &mut self,
        now: Instant,
        cache: Option<&str>,
        site: &str,
    ) -> Result<Vec<String>, AdminError> {
        let caches = self.select(cache, site)?;
        if !self.reachable(site) {
            return Err(AdminError::Unreachable(site.to_string()));
        }
        for c in &caches {
            if self
                .backups
                .get(&(c.clone(), site.to_string()))
                .is_some_and(|b| b.push.running.is_some())
            {
                return Err(AdminError::PushRunning {
                    cache: c.clone(),
                    site: site.to_string(),
                });
            }
        }
        for c in &caches {
            let push = self.id();
            let key = (c.clone(), site.to_string());
            let Some(b) = self.backups.get_mut(&key) else {
                continue;
            };
            let brought_online = b.status.bring_online() == StatusChange::Changed;
            let timeout = Duration::from_millis(b.cfg.state_transfer.timeout_ms);
            b.push.start(push, now + timeout);
            if brought_online {
                self.events.push_back(Event::BackupStatus {
                    cache: c.clone(),
                    site: site.to_string(),
                    online: true,
                    reason: "state push started".into(),
                });
                self.send_to_site(
                    now,
                    site,
                    Message::SiteNotice {
                        cache: c.clone(),
                        online: true,
                    },
                );
            }
            self.send_to_site(
                now,
                site,
                Message::PushStart {
                    push,
                    cache: c.clone(),
                },
            );
        }
        Ok(caches)
    }

    /// Cancels a running push.
    pub fn cancel_push(
        &mut self,
        now: Instant,
        cache: Option<&str>,
        site: &str,
    ) -> Result<Vec<String>, AdminError> {
        let caches = self.select(cache, site)?;
        let mut cancelled = Vec::new();
        for c in caches {
            let id = self
                .backups
                .get(&(c.clone(), site.to_string()))
                .and_then(|b| b.push.id());
            if let Some(push) = id {
                self.send_to_site(now, site, Message::PushCancel { push });
                self.finish_push(&c, site, PushStatus::Canceled, false);
                cancelled.push(c);
            }
        }
        Ok(cancelled)
    }

    /// Push status of `cache` per site.
    pub fn push_status(&self, cache: &str) -> Vec<(String, Option<PushStatus>)> {
        self.backups
            .iter()
            .filter(|((c, _), _)| c == cache)
            .map(|((_, s), b)| (s.clone(), b.push.status()))
            .collect()
    }

    /// Clears finished push statuses of `cache` (every site); a running push stays.
    pub fn clear_push_status(&mut self, cache: &str) -> usize {
        self.backups
            .iter_mut()
            .filter(|((c, _), _)| c == cache)
            .filter(|(_, b)| b.push.status().is_some())
            .map(|(_, b)| usize::from(b.push.clear()))
            .sum()
    }

    pub(super) fn push_of(&self, site: &str, push: u64) -> Option<(String, String)> {
        self.backups
            .iter()
            .find(|((_, s), b)| s == site && b.push.id() == Some(push))
            .map(|(k, _)| k.clone())
    }

    pub(super) fn push_acked(&mut self, now: Instant, from: &str, push: u64, seq: u32) {
        let Some((cache, site)) = self.push_of(from, push) else {
            return;
        };
        let Some(b) = self.backups.get_mut(&(cache.clone(), site.clone())) else {
            return;
        };
        match b.push.running.clone() {
            Some((_, Phase::Starting { .. })) if seq == 0 => {
                self.ask_chunk(&cache, &site, push, None, 1);
            }
            Some((_, Phase::Sending { seq: s, next, .. })) if s == seq => match next {
                None => {
                    self.send_to_site(now, &site, Message::PushDone { push });
                    self.finish_push(&cache, &site, PushStatus::Ok, false);
                }
                Some(cursor) => self.ask_chunk(&cache, &site, push, Some(cursor), seq + 1),
            },
            _ => {}
        }
    }

    pub(super) fn ask_chunk(
        &mut self,
        cache: &str,
        site: &str,
        push: u64,
        cursor: Option<Vec<u8>>,
        next_seq: u32,
    ) {
        let Some(b) = self.backups.get_mut(&(cache.to_string(), site.to_string())) else {
            return;
        };
        b.push.running = Some((
            push,
            Phase::Reading {
                cursor: cursor.clone(),
                next_seq,
            },
        ));
        self.events.push_back(Event::ReadChunk {
            cache: cache.to_string(),
            site: site.to_string(),
            cursor,
            max: b.cfg.state_transfer.chunk_size as usize,
        });
    }

    pub(super) fn finish_push(
        &mut self,
        cache: &str,
        site: &str,
        status: PushStatus,
        tell_peer: bool,
    ) {
        let Some(b) = self.backups.get_mut(&(cache.to_string(), site.to_string())) else {
            return;
        };
        if b.push.running.is_none() {
            return;
        }
        let id = b.push.finish(status.clone());
        if let (true, Some(push)) = (tell_peer, id) {
            let frame = Frame {
                route: Route {
                    from: self.cfg.site.clone(),
                    to: site.to_string(),
                },
                message: Message::PushCancel { push },
            };
            // Best effort; `now` only refreshes the heartbeat timer, which a later tick does.
            if let Some(hop) = self.routes.next_hop(site).map(str::to_string) {
                if let Some((conn, version)) = self.links.get(&hop).and_then(|l| l.up()) {
                    self.push_bytes(conn, &frame, version);
                }
            }
        }
        self.events.push_back(Event::PushFinished {
            cache: cache.to_string(),
            site: site.to_string(),
            status,
        });
    }
}
