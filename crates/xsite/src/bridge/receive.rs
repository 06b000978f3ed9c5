//! Receiving side: frames for this site become apply events; frames for others are relayed.

use std::time::Instant;

use super::*;
use crate::change::Change;
use crate::config::MergePolicy;
use crate::push::PushStatus;
use crate::wire::{Cause, Frame, Message, Route};

impl Bridge {
    /// The server applied (or failed to apply) a change from [`Event::Apply`].
    pub fn complete_apply(
        &mut self,
        now: Instant,
        ticket: Ticket,
        result: Result<(), ApplyFailure>,
    ) {
        let Some(gid) = self.tickets.remove(&ticket) else {
            return;
        };
        let done = match self.groups.get_mut(&gid) {
            Some(g) => {
                g.remaining = g.remaining.saturating_sub(1);
                if let Err(f) = result {
                    g.failure.get_or_insert(f);
                }
                g.remaining == 0
            }
            None => false,
        };
        if done {
            if let Some(g) = self.groups.remove(&gid) {
                self.reply(now, g);
            }
        }
    }

    /// The server read its write sequence for a push start from [`Event::PushStarting`].
    pub fn complete_push_start(
        &mut self,
        now: Instant,
        ticket: Ticket,
        result: Result<u64, ApplyFailure>,
    ) {
        let Some((from, push, cache)) = self.push_starts.remove(&ticket) else {
            return;
        };
        match result {
            Ok(since) => {
                self.push_recv
                    .insert((from.clone(), push), PushRecv { cache, since });
                self.send_to_site(now, &from, Message::PushAck { push, seq: 0 });
            }
            Err(f) => {
                self.send_to_site(
                    now,
                    &from,
                    Message::PushNack {
                        push,
                        seq: 0,
                        cause: f.cause,
                        message: f.message,
                    },
                );
            }
        }
    }

    /// Forwards a frame for another site (this node is the site master on the path).
    pub(super) fn relay(&mut self, now: Instant, frame: Frame) {
        let origin = frame.route.from.clone();
        let dest = frame.route.to.clone();
        if self.send_frame(now, frame.clone()) {
            return;
        }
        let me = self.cfg.site.clone();
        let nack = |m: &Message| -> Option<Message> {
            let message = format!("site master {me} has no route to {dest}");
            match m {
                Message::SyncApply { id, .. } => Some(Message::SyncNack {
                    id: *id,
                    cause: Cause::UNREACHABLE,
                    message,
                }),
                Message::AsyncBatch { id, .. } => Some(Message::AsyncNack {
                    id: *id,
                    cause: Cause::UNREACHABLE,
                    message,
                }),
                Message::Clear { id, sync: true, .. } => Some(Message::SyncNack {
                    id: *id,
                    cause: Cause::UNREACHABLE,
                    message,
                }),
                Message::Clear {
                    id, sync: false, ..
                } => Some(Message::AsyncNack {
                    id: *id,
                    cause: Cause::UNREACHABLE,
                    message,
                }),
                Message::PushStart { push, .. } => Some(Message::PushNack {
                    push: *push,
                    seq: 0,
                    cause: Cause::UNREACHABLE,
                    message,
                }),
                Message::PushChunk { push, seq, .. } => Some(Message::PushNack {
                    push: *push,
                    seq: *seq,
                    cause: Cause::UNREACHABLE,
                    message,
                }),
                _ => None,
            }
        };
        if let Some(m) = nack(&frame.message) {
            // Answer on behalf of the unreachable destination so the origin matches it.
            self.send_frame(
                now,
                Frame {
                    route: Route {
                        from: dest.clone(),
                        to: origin,
                    },
                    message: m,
                },
            );
        }
    }

    pub(super) fn dispatch(&mut self, now: Instant, frame: Frame) {
        let from = frame.route.from;
        match frame.message {
            Message::Hello { .. }
            | Message::Auth { .. }
            | Message::Close { .. }
            | Message::Heartbeat => {}
            Message::SyncApply { id, change } => {
                self.apply_group(now, &from, Reply::Sync(id), vec![change], ApplyMode::Sync);
            }
            Message::SyncAck { id } => self.sync_answer(now, id, &from, None),
            Message::SyncNack { id, cause, message } => {
                self.sync_answer(
                    now,
                    id,
                    &from,
                    Some(FailureCause::Refused { cause, message }),
                );
            }
            Message::AsyncBatch { id, changes } => {
                let policy = changes
                    .first()
                    .map_or(MergePolicy::Default, |c| self.policy(&c.cache, &from));
                self.apply_group(
                    now,
                    &from,
                    Reply::Async(id),
                    changes,
                    ApplyMode::Async { policy },
                );
            }
            Message::AsyncAck { id } => self.async_answer(now, id, &from, true),
            Message::AsyncNack { id, .. } => self.async_answer(now, id, &from, false),
            Message::PushStart { push, cache } => {
                let ticket = Ticket(self.id());
                self.push_starts
                    .insert(ticket, (from.clone(), push, cache.clone()));
                self.events.push_back(Event::PushStarting {
                    ticket,
                    from,
                    cache,
                });
            }
            Message::PushChunk { push, seq, changes } => {
                match self.push_recv.get(&(from.clone(), push)) {
                    Some(p) => {
                        let since = p.since;
                        self.apply_group(
                            now,
                            &from,
                            Reply::Push { push, seq },
                            changes,
                            ApplyMode::Push { since },
                        );
                    }
                    None => {
                        self.send_to_site(
                            now,
                            &from,
                            Message::PushNack {
                                push,
                                seq,
                                cause: Cause::REFUSED,
                                message: "no such push".into(),
                            },
                        );
                    }
                }
            }
            Message::PushAck { push, seq } => self.push_acked(now, &from, push, seq),
            Message::PushNack {
                push,
                cause,
                message,
                ..
            } => {
                if let Some((cache, site)) = self.push_of(&from, push) {
                    self.finish_push(
                        &cache,
                        &site,
                        PushStatus::Error(format!("{}: {message}", cause.name())),
                        false,
                    );
                }
            }
            Message::PushDone { push } | Message::PushCancel { push } => {
                let completed = matches!(frame.message, Message::PushDone { .. });
                if let Some(p) = self.push_recv.remove(&(from.clone(), push)) {
                    self.events.push_back(Event::PushReceived {
                        cache: p.cache,
                        from,
                        completed,
                    });
                }
            }
            Message::Clear {
                id,
                cache,
                seen,
                sync,
            } => {
                let gid = self.id();
                let reply = if sync {
                    Reply::Sync(id)
                } else {
                    Reply::Async(id)
                };
                self.groups.insert(
                    gid,
                    Group {
                        to: from.clone(),
                        reply,
                        remaining: 1,
                        failure: None,
                    },
                );
                let ticket = Ticket(self.id());
                self.tickets.insert(ticket, gid);
                self.events.push_back(Event::Clear {
                    ticket,
                    from,
                    cache,
                    seen,
                });
            }
            Message::SiteNotice { cache, online } => self.events.push_back(Event::Notice {
                from,
                cache,
                online,
            }),
        }
    }

    pub(super) fn policy(&self, cache: &str, site: &str) -> MergePolicy {
        self.backups
            .get(&(cache.to_string(), site.to_string()))
            .map_or(MergePolicy::Default, |b| b.cfg.merge_policy)
    }

    pub(super) fn apply_group(
        &mut self,
        now: Instant,
        from: &str,
        reply: Reply,
        changes: Vec<Change>,
        mode: ApplyMode,
    ) {
        let gid = self.id();
        let group = Group {
            to: from.to_string(),
            reply,
            remaining: changes.len(),
            failure: None,
        };
        if changes.is_empty() {
            self.reply(now, group);
            return;
        }
        self.groups.insert(gid, group);
        for change in changes {
            let ticket = Ticket(self.id());
            self.tickets.insert(ticket, gid);
            self.events.push_back(Event::Apply {
                ticket,
                from: from.to_string(),
                change,
                mode,
            });
        }
    }

    pub(super) fn reply(&mut self, now: Instant, g: Group) {
        let message = match (g.reply, g.failure) {
            (Reply::Sync(id), None) => Message::SyncAck { id },
            (Reply::Sync(id), Some(f)) => Message::SyncNack {
                id,
                cause: f.cause,
                message: f.message,
            },
            (Reply::Async(id), None) => Message::AsyncAck { id },
            (Reply::Async(id), Some(f)) => Message::AsyncNack {
                id,
                cause: f.cause,
                message: f.message,
            },
            (Reply::Push { push, seq }, None) => Message::PushAck { push, seq },
            (Reply::Push { push, seq }, Some(f)) => Message::PushNack {
                push,
                seq,
                cause: f.cause,
                message: f.message,
            },
        };
        self.send_to_site(now, &g.to, message);
    }
}
