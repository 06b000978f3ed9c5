//! The bridge: one sans-I/O state machine per Ironrod site that ties links, backups, SYNC and
//! ASYNC replication and state push together.
//!
//! Inputs are `handle_*` calls and commands (`replicate_sync`, `committed`, `take_offline`, …);
//! outputs are [`Transmit`]s (bytes for a connection) from [`Bridge::poll_transmit`] and
//! [`Event`]s from [`Bridge::poll_event`]; [`Bridge::poll_timeout`] says when to call
//! [`Bridge::handle_timeout`]. Nothing here blocks, sleeps, reads a clock or touches a socket.
//!
//! The bridge is split by concern: this module holds the state, connections, links and timers;
//! `replicate` the origin side of SYNC and ASYNC, `receive` the receiving side and relaying,
//! `push` the state-push sender, `admin` administration and status; `types` the public
//! types.

mod admin;
mod push;
mod receive;
mod replicate;
mod types;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

pub use types::*;

use replicate::retry_delay;

use crate::async_queue::AsyncQueue;
use crate::config::{AuthConfig, BackupConfig, ConfigError, Strategy, XsiteConfig};
use crate::link::{close_code, ConnId, Link, LinkAction, LinkCtx};
use crate::offline::{OfflineStatus, StatusChange};
use crate::push::{PushState, PushStatus};
use crate::routing::RoutingTable;
use crate::wire::{self, AuthMode, DecodeError, Frame, Message, Route, NONCE_LEN};

/// First protocol version with the CLEAR frame.
const CLEAR_VERSION: u8 = 3;

struct Backup {
    cfg: BackupConfig,
    status: OfflineStatus,
    queue: AsyncQueue,
    push: PushState,
}

struct Conn {
    site: Option<String>,
    rx: Vec<u8>,
    /// When an accepted connection must have identified itself with HELLO.
    hello_deadline: Option<Instant>,
}

struct Waiting {
    request: u64,
    sent_at: Instant,
    deadline: Instant,
}

struct PendingWrite {
    cache: String,
    waiting: BTreeMap<String, Waiting>,
    failures: Vec<BackupFailure>,
}

enum Reply {
    Sync(u64),
    Async(u64),
    Push { push: u64, seq: u32 },
}

struct Group {
    to: String,
    reply: Reply,
    remaining: usize,
    failure: Option<ApplyFailure>,
}

struct PushRecv {
    cache: String,
    since: u64,
}

/// The site bridge.
pub struct Bridge {
    cfg: XsiteConfig,
    secret: Vec<u8>,
    auth: AuthMode,
    entropy: Box<dyn Entropy>,
    next_id: u64,
    routes: RoutingTable,
    links: BTreeMap<String, Link>,
    conns: BTreeMap<ConnId, Conn>,
    backups: BTreeMap<(String, String), Backup>,
    writes: BTreeMap<WriteId, PendingWrite>,
    requests: HashMap<u64, WriteId>,
    groups: HashMap<u64, Group>,
    tickets: HashMap<Ticket, u64>,
    push_starts: HashMap<Ticket, (String, u64, String)>,
    push_recv: BTreeMap<(String, u64), PushRecv>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("site", &self.cfg.site)
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// A bridge for a validated configuration. `entropy` supplies nonces and jitter.
    pub fn new(
        cfg: XsiteConfig,
        now: Instant,
        entropy: Box<dyn Entropy>,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let routes = RoutingTable::from_config(&cfg)?;
        let mut links = BTreeMap::new();
        for site in routes.neighbours() {
            let address = cfg
                .remote_sites
                .get(site)
                .map(|r| r.address.as_str())
                .unwrap_or_default();
            links.insert(site.to_string(), Link::new(site, address, &cfg.site, now));
        }
        let mut backups = BTreeMap::new();
        for (cache, c) in &cfg.caches {
            for (site, b) in &c.backups {
                backups.insert(
                    (cache.clone(), site.clone()),
                    Backup {
                        cfg: b.clone(),
                        status: OfflineStatus::new(b.take_offline),
                        queue: AsyncQueue::default(),
                        push: PushState::default(),
                    },
                );
            }
        }
        let (auth, secret) = match &cfg.auth {
            AuthConfig::None => (AuthMode::None, Vec::new()),
            AuthConfig::SharedSecret { secret } => {
                (AuthMode::SharedSecret, secret.as_bytes().to_vec())
            }
            AuthConfig::Tls { .. } => (AuthMode::Tls, Vec::new()),
        };
        Ok(Self {
            cfg,
            secret,
            auth,
            entropy,
            next_id: 1,
            routes,
            links,
            conns: BTreeMap::new(),
            backups,
            writes: BTreeMap::new(),
            requests: HashMap::new(),
            groups: HashMap::new(),
            tickets: HashMap::new(),
            push_starts: HashMap::new(),
            push_recv: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// This site's name.
    pub fn site(&self) -> &str {
        &self.cfg.site
    }

    /// The configuration the bridge runs with.
    pub fn config(&self) -> &XsiteConfig {
        &self.cfg
    }

    /// Whether `cache` has any backup (the server keeps a [`crate::VersionStore`] for it).
    pub fn replicates(&self, cache: &str) -> bool {
        self.cfg
            .caches
            .get(cache)
            .is_some_and(|c| !c.backups.is_empty())
    }

    /// Whether `cache` has a SYNC backup that is online (the write must call
    /// [`replicate_sync`](Self::replicate_sync) under its lock).
    pub fn has_sync_backups(&self, cache: &str) -> bool {
        self.backups.iter().any(|((c, _), b)| {
            c == cache && b.cfg.strategy == Strategy::Sync && !b.status.is_offline()
        })
    }

    /// Whether `cache` has an ASYNC backup that is online (its committed changes are queued).
    pub fn has_async_backups(&self, cache: &str) -> bool {
        self.backups.iter().any(|((c, _), b)| {
            c == cache && b.cfg.strategy == Strategy::Async && !b.status.is_offline()
        })
    }

    /// Next bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        for l in self.links.values() {
            if let Some(d) = l.next_deadline(&self.cfg.link) {
                at(d);
            }
        }
        for c in self.conns.values() {
            if let (None, Some(d)) = (&c.site, c.hello_deadline) {
                at(d);
            }
        }
        for w in self.writes.values() {
            for x in w.waiting.values() {
                at(x.deadline);
            }
        }
        let ack = Duration::from_millis(self.cfg.async_replication.ack_timeout_ms);
        for b in self.backups.values() {
            if let Some(f) = b.queue.in_flight() {
                at(f.sent_at + ack);
            } else if !b.queue.is_empty() {
                if let Some(r) = b.queue.retry_at {
                    at(r);
                }
            }
            if let Some(d) = b.push.deadline() {
                at(d);
            }
        }
        t
    }

    /// The server accepted a connection on the bridge listener. It must send HELLO within the
    /// failure timeout or it is closed.
    pub fn accept(&mut self, now: Instant) -> ConnId {
        let conn = ConnId(self.id());
        let deadline = now + Duration::from_millis(self.cfg.link.failure_timeout_ms);
        self.conns.insert(
            conn,
            Conn {
                site: None,
                rx: Vec::new(),
                hello_deadline: Some(deadline),
            },
        );
        conn
    }

    /// An outbound connection from [`Event::Connect`] is established.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        let Some(site) = self.conns.get(&conn).and_then(|c| c.site.clone()) else {
            self.events.push_back(Event::Close { conn });
            return;
        };
        let nonce = self.nonce();
        let mut out = Vec::new();
        if let Some(link) = self.links.get_mut(&site) {
            let ctx = link_ctx(&self.cfg, self.auth, &self.secret);
            link.connected(now, conn, &ctx, nonce, &mut out);
        }
        self.run_link_actions(now, &site, out);
    }

    /// A connection closed (or an outbound connect failed).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let Some(site) = c.site else {
            return;
        };
        let mut out = Vec::new();
        let mut jitter = [0u8; 8];
        self.entropy.fill(&mut jitter);
        let mut rng = crate::link::Rng::new(u64::from_be_bytes(jitter));
        if let Some(link) = self.links.get_mut(&site) {
            let ctx = link_ctx(&self.cfg, self.auth, &self.secret);
            link.closed(now, conn, &ctx, &mut rng, &mut out);
        }
        self.run_link_actions(now, &site, out);
    }

    /// Bytes arrived on a connection.
    pub fn handle_data(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.rx.extend_from_slice(bytes);
        loop {
            let Some(c) = self.conns.get(&conn) else {
                return;
            };
            let version = c
                .site
                .as_deref()
                .and_then(|s| self.links.get(s))
                .and_then(|l| l.up())
                .filter(|(up, _)| *up == conn)
                .map_or(0, |(_, v)| v);
            match wire::decode(&c.rx, version, self.cfg.max_frame_len) {
                Ok((frame, used)) => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.rx.drain(..used.min(c.rx.len()));
                    }
                    self.handle_frame(now, conn, frame);
                }
                Err(DecodeError::Incomplete { .. }) => return,
                Err(e) => {
                    self.protocol_error(now, conn, &e.to_string());
                    return;
                }
            }
        }
    }

    /// Timers: heartbeats, dead peers, reconnects, SYNC timeouts, ASYNC retries, push timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Accepted connections that never said HELLO.
        let silent: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.site.is_none() && c.hello_deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for conn in silent {
            self.conns.remove(&conn);
            self.events.push_back(Event::Close { conn });
        }
        let sites: Vec<String> = self.links.keys().cloned().collect();
        for site in sites {
            let mut out = Vec::new();
            let mut jitter = [0u8; 8];
            self.entropy.fill(&mut jitter);
            let mut rng = crate::link::Rng::new(u64::from_be_bytes(jitter));
            let dial = match self.links.get_mut(&site) {
                Some(link) => {
                    let ctx = link_ctx(&self.cfg, self.auth, &self.secret);
                    link.tick(now, &ctx, &mut rng, &mut out);
                    link.due_to_dial(now)
                }
                None => false,
            };
            if dial {
                let conn = ConnId(self.id());
                self.conns.insert(
                    conn,
                    Conn {
                        site: Some(site.clone()),
                        rx: Vec::new(),
                        hello_deadline: None,
                    },
                );
                if let Some(link) = self.links.get_mut(&site) {
                    link.dial(now, conn, &mut out);
                }
            }
            self.run_link_actions(now, &site, out);
        }
        // SYNC timeouts.
        let expired: Vec<(WriteId, String)> = self
            .writes
            .iter()
            .flat_map(|(id, w)| {
                w.waiting
                    .iter()
                    .filter(|(_, x)| x.deadline <= now)
                    .map(|(s, _)| (*id, s.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (id, site) in expired {
            let timeout = self
                .writes
                .get(&id)
                .and_then(|w| self.backups.get(&(w.cache.clone(), site.clone())))
                .map_or(Duration::ZERO, |b| b.cfg.timeout());
            self.sync_outcome(now, id, &site, Some(FailureCause::Timeout(timeout)));
        }
        // ASYNC batch timeouts.
        let ack = Duration::from_millis(self.cfg.async_replication.ack_timeout_ms);
        for b in self.backups.values_mut() {
            if b.queue.in_flight().is_some_and(|f| f.sent_at + ack <= now) {
                if let Some(sent) = b.queue.failed() {
                    b.status.communication_failure(sent);
                }
                b.queue.retry_at = Some(now + retry_delay(&self.cfg, b.queue.attempts));
            }
        }
        // Push timeouts.
        let stale: Vec<(String, String)> = self
            .backups
            .iter()
            .filter(|(_, b)| b.push.deadline().is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for (cache, site) in stale {
            self.finish_push(
                &cache,
                &site,
                PushStatus::Error("timed out waiting for the site".into()),
                true,
            );
        }
        self.pump_async(now);
    }

    pub(super) fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn nonce(&mut self) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        self.entropy.fill(&mut n);
        n
    }

    pub(super) fn select(
        &self,
        cache: Option<&str>,
        site: &str,
    ) -> Result<Vec<String>, AdminError> {
        if !self.routes.knows(site) {
            return Err(AdminError::NoSuchSite(site.to_string()));
        }
        match cache {
            Some(c) => {
                if self
                    .backups
                    .contains_key(&(c.to_string(), site.to_string()))
                {
                    Ok(vec![c.to_string()])
                } else {
                    Err(AdminError::NoSuchBackup {
                        cache: c.to_string(),
                        site: site.to_string(),
                    })
                }
            }
            None => Ok(self
                .backups
                .keys()
                .filter(|(_, s)| s == site)
                .map(|(c, _)| c.clone())
                .collect()),
        }
    }

    pub(super) fn reachable(&self, site: &str) -> bool {
        self.routes
            .next_hop(site)
            .and_then(|h| self.links.get(h))
            .is_some_and(|l| l.up().is_some())
    }

    /// Whether a backup is online; evaluates automatic take-offline (Infinispan checks on use).
    pub(super) fn usable(&mut self, now: Instant, cache: &str, site: &str) -> bool {
        let Some(b) = self.backups.get_mut(&(cache.to_string(), site.to_string())) else {
            return false;
        };
        let (offline, changed) = b.status.check(now);
        if changed {
            let dropped = b.queue.clear();
            let failures = b.status.failures();
            self.events.push_back(Event::BackupStatus {
                cache: cache.to_string(),
                site: site.to_string(),
                online: false,
                reason: format!("taken offline after {failures} consecutive failures ({dropped} queued changes dropped)"),
            });
        }
        !offline
    }

    pub(super) fn set_offline(&mut self, cache: &str, site: &str, reason: &str) {
        if let Some(b) = self.backups.get_mut(&(cache.to_string(), site.to_string())) {
            if b.status.take_offline() == StatusChange::Changed {
                b.queue.clear();
                self.events.push_back(Event::BackupStatus {
                    cache: cache.to_string(),
                    site: site.to_string(),
                    online: false,
                    reason: reason.to_string(),
                });
            }
        }
    }

    /// Encodes `message` for `site` on the next hop's link; false when that link is not up.
    pub(super) fn send_to_site(&mut self, now: Instant, site: &str, message: Message) -> bool {
        let route = Route {
            from: self.cfg.site.clone(),
            to: site.to_string(),
        };
        self.send_frame(now, Frame { route, message })
    }

    pub(super) fn send_frame(&mut self, now: Instant, frame: Frame) -> bool {
        let Some(hop) = self.routes.next_hop(&frame.route.to).map(str::to_string) else {
            return false;
        };
        let Some(link) = self.links.get_mut(&hop) else {
            return false;
        };
        let Some((conn, version)) = link.up() else {
            return false;
        };
        if matches!(frame.message, Message::Clear { .. }) && version < CLEAR_VERSION {
            // The link's version has no CLEAR frame: not sent (relay() answers for it).
            return false;
        }
        link.sent(now);
        self.push_bytes(conn, &frame, version);
        true
    }

    /// The negotiated version of the link that reaches `site`, when it is up.
    pub(super) fn hop_version(&self, site: &str) -> Option<u8> {
        self.routes
            .next_hop(site)
            .and_then(|h| self.links.get(h))
            .and_then(Link::up)
            .map(|(_, v)| v)
    }

    pub(super) fn push_bytes(&mut self, conn: ConnId, frame: &Frame, version: u8) {
        match self.transmits.back_mut() {
            Some(t) if t.conn == conn => wire::encode(frame, version, &mut t.bytes),
            _ => {
                let mut bytes = Vec::new();
                wire::encode(frame, version, &mut bytes);
                self.transmits.push_back(Transmit { conn, bytes });
            }
        }
    }

    pub(super) fn protocol_error(&mut self, now: Instant, conn: ConnId, why: &str) {
        let frame = Frame {
            route: Route {
                from: self.cfg.site.clone(),
                to: self
                    .conns
                    .get(&conn)
                    .and_then(|c| c.site.clone())
                    .unwrap_or_default(),
            },
            message: Message::Close {
                code: close_code::PROTOCOL,
                reason: why.to_string(),
            },
        };
        self.push_bytes(conn, &frame, 0);
        self.events.push_back(Event::Close { conn });
        self.handle_closed(now, conn);
    }

    pub(super) fn run_link_actions(&mut self, now: Instant, site: &str, actions: Vec<LinkAction>) {
        for a in actions {
            match a {
                LinkAction::Dial { conn, address } => self.events.push_back(Event::Connect {
                    conn,
                    site: site.to_string(),
                    address,
                }),
                LinkAction::Send { conn, message } => {
                    let frame = Frame {
                        route: Route {
                            from: self.cfg.site.clone(),
                            to: site.to_string(),
                        },
                        message,
                    };
                    let version = self
                        .links
                        .get(site)
                        .and_then(|l| l.up())
                        .map_or(0, |(_, v)| v);
                    self.push_bytes(conn, &frame, version);
                }
                LinkAction::Close { conn } => {
                    self.conns.remove(&conn);
                    self.events.push_back(Event::Close { conn });
                }
                LinkAction::Up { version, .. } => {
                    self.events.push_back(Event::LinkUp {
                        site: site.to_string(),
                        version,
                    });
                    self.pump_async(now);
                }
                LinkAction::Down { reason } => {
                    self.events.push_back(Event::LinkDown {
                        site: site.to_string(),
                        reason: reason.clone(),
                    });
                    self.link_lost(now, site, &reason);
                }
            }
        }
    }

    /// Fails everything that was travelling over the link to neighbour `hop`.
    pub(super) fn link_lost(&mut self, now: Instant, hop: &str, reason: &str) {
        let via: Vec<String> = self
            .routes
            .iter()
            .filter(|r| r.next_hop == hop)
            .map(|r| r.site.clone())
            .collect();
        let waiting: Vec<(WriteId, String)> = self
            .writes
            .iter()
            .flat_map(|(id, w)| {
                w.waiting
                    .keys()
                    .filter(|s| via.contains(s))
                    .map(|s| (*id, s.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (id, site) in waiting {
            self.sync_outcome(
                now,
                id,
                &site,
                Some(FailureCause::Unreachable(format!("link down: {reason}"))),
            );
        }
        for ((_, site), b) in self.backups.iter_mut() {
            if via.contains(site) {
                if let Some(sent) = b.queue.failed() {
                    b.status.communication_failure(sent);
                    b.queue.retry_at = Some(now);
                }
            }
        }
        let pushes: Vec<(String, String)> = self
            .backups
            .iter()
            .filter(|((_, s), b)| via.contains(s) && b.push.running.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for (cache, site) in pushes {
            self.finish_push(
                &cache,
                &site,
                PushStatus::Error(format!("link down: {reason}")),
                false,
            );
        }
        let received: Vec<(String, u64)> = self
            .push_recv
            .keys()
            .filter(|(s, _)| via.contains(s))
            .cloned()
            .collect();
        for key in received {
            if let Some(p) = self.push_recv.remove(&key) {
                self.events.push_back(Event::PushReceived {
                    cache: p.cache,
                    from: key.0,
                    completed: false,
                });
            }
        }
    }

    pub(super) fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Frame) {
        let known = self.conns.get(&conn).and_then(|c| c.site.clone());
        let site = match known {
            Some(s) => s,
            None => {
                // An accepted connection identifies itself with HELLO.
                let from = frame.route.from.clone();
                let ok = matches!(frame.message, Message::Hello { .. })
                    && frame.route.to == self.cfg.site
                    && self.routes.next_hop(&from) == Some(from.as_str());
                if !ok {
                    self.protocol_error(
                        now,
                        conn,
                        "expected HELLO from a configured neighbour site",
                    );
                    return;
                }
                // An established link is never displaced by an unauthenticated newcomer; a peer
                // that really restarted closed its old connection, or is detected as silent.
                if self.links.get(&from).is_some_and(|l| l.up().is_some()) {
                    let frame = Frame {
                        route: Route {
                            from: self.cfg.site.clone(),
                            to: from,
                        },
                        message: Message::Close {
                            code: close_code::UNEXPECTED,
                            reason: "already connected".into(),
                        },
                    };
                    self.push_bytes(conn, &frame, 0);
                    self.conns.remove(&conn);
                    self.events.push_back(Event::Close { conn });
                    return;
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.site = Some(from.clone());
                }
                let nonce = self.nonce();
                let mut out = Vec::new();
                if let Some(link) = self.links.get_mut(&from) {
                    let ctx = link_ctx(&self.cfg, self.auth, &self.secret);
                    link.adopt_inbound(now, conn, &ctx, nonce, &mut out);
                }
                self.run_link_actions(now, &from, out);
                from
            }
        };
        if let Message::Close { .. } = frame.message {
            self.events.push_back(Event::Close { conn });
            self.handle_closed(now, conn);
            return;
        }
        let was_up = self.links.get(&site).is_some_and(|l| l.up().is_some());
        let mut out = Vec::new();
        if let Some(link) = self.links.get_mut(&site) {
            let ctx = link_ctx(&self.cfg, self.auth, &self.secret);
            link.received(now, conn, &frame.message, &ctx, &mut out);
        }
        self.run_link_actions(now, &site, out);
        if !was_up || matches!(frame.message, Message::Hello { .. } | Message::Auth { .. }) {
            if was_up {
                self.protocol_error(now, conn, "handshake frame on an established link");
            }
            return;
        }
        if frame.route.to != self.cfg.site {
            self.relay(now, frame);
            return;
        }
        self.dispatch(now, frame);
    }
}

fn link_ctx<'a>(cfg: &'a XsiteConfig, auth: AuthMode, secret: &'a [u8]) -> LinkCtx<'a> {
    LinkCtx {
        site: &cfg.site,
        auth,
        secret,
        cfg: &cfg.link,
        max_version: cfg.max_protocol_version,
    }
}
