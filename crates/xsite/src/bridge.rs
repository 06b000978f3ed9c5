//! The bridge: one sans-I/O state machine per Ironrod site that ties links, backups, SYNC and
//! ASYNC replication and state push together.
//!
//! Inputs are `handle_*` calls and commands (`replicate_sync`, `committed`, `take_offline`, …);
//! outputs are [`Transmit`]s (bytes for a connection) from [`Bridge::poll_transmit`] and
//! [`Event`]s from [`Bridge::poll_event`]; [`Bridge::poll_timeout`] says when to call
//! [`Bridge::handle_timeout`]. Nothing here blocks, sleeps, reads a clock or touches a socket.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::async_queue::{AsyncQueue, Enqueued};
use crate::change::Change;
use crate::config::{
    AuthConfig, BackupConfig, ConfigError, FailurePolicy, MergePolicy, StateTransferMode, Strategy,
    TakeOfflineConfig, XsiteConfig,
};
use crate::link::{backoff, close_code, ConnId, Link, LinkAction, LinkCtx, LinkPhase};
use crate::offline::{OfflineStatus, StatusChange};
use crate::push::{Phase, PushState, PushStatus};
use crate::routing::{RouteEntry, RoutingTable};
use crate::wire::{self, AuthMode, Cause, DecodeError, Frame, Message, Route, NONCE_LEN};

/// Randomness for handshake nonces and reconnect jitter. The server implements it with the OS
/// generator; tests use the deterministic [`crate::Rng`].
pub trait Entropy: Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl Entropy for crate::link::Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let b = self.next_u64().to_be_bytes();
            chunk.copy_from_slice(b.get(..chunk.len()).unwrap_or(&b));
        }
    }
}

/// Bytes to write on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The connection.
    pub conn: ConnId,
    /// The bytes, one or more whole frames.
    pub bytes: Vec<u8>,
}

/// Identifies a local write waiting for its SYNC backups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteId(pub u64);

/// Identifies a received change the server must apply and then report with
/// [`Bridge::complete_apply`] (or a push start, reported with [`Bridge::complete_push_start`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// How the server must resolve a received change (see [`crate::VersionStore`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    /// SYNC backup: apply under the key's lock within the cache's acquisition timeout (a lock
    /// timeout is reported as [`Cause::LOCK_TIMEOUT`]) and resolve with
    /// [`crate::VersionStore::apply_sync`]: the write wins, as the origin holds its lock.
    Sync,
    /// ASYNC backup: resolve with [`crate::VersionStore::apply_remote`].
    Async {
        /// Conflict policy.
        policy: MergePolicy,
    },
    /// State push: resolve with [`crate::VersionStore::apply_push`] and this start sequence.
    Push {
        /// The receiver's write sequence when the push began.
        since: u64,
    },
}

/// Why a received change was not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyFailure {
    /// Wire cause.
    pub cause: Cause,
    /// Details for the origin's error message.
    pub message: String,
}

/// One page of a cache for a state push.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Live entries (tombstones are skipped by the bridge anyway).
    pub entries: Vec<Change>,
    /// Where to continue; `None` after the last page.
    pub next: Option<Vec<u8>>,
}

/// Why a SYNC backup of one write failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// No answer within the backup timeout.
    Timeout(Duration),
    /// The site could not be reached (no link, or the link went down).
    Unreachable(String),
    /// The site answered that it could not apply the change.
    Refused {
        /// Wire cause.
        cause: Cause,
        /// The site's message.
        message: String,
    },
}

impl FailureCause {
    /// Whether it counts towards automatic take-offline (Infinispan counts communication
    /// failures only).
    pub fn is_communication(&self) -> bool {
        !matches!(self, FailureCause::Refused { .. })
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::Timeout(t) => write!(f, "timed out after {} ms", t.as_millis()),
            FailureCause::Unreachable(why) => write!(f, "site unreachable ({why})"),
            FailureCause::Refused { cause, message } => write!(f, "{}: {message}", cause.name()),
        }
    }
}

/// A failed SYNC backup of one write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cross-site backup of cache '{cache}' to site '{site}' failed: {cause}")]
pub struct BackupFailure {
    /// Cache name.
    pub cache: String,
    /// Backup site.
    pub site: String,
    /// The backup's failure policy.
    pub policy: FailurePolicy,
    /// What went wrong.
    pub cause: FailureCause,
}

/// The outcome of a write's SYNC backups, per the failure policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncVerdict {
    /// Commit the write. `warnings` lists the failures of WARN backups (log them); IGNORE
    /// failures are not reported.
    Commit {
        /// Failures to log.
        warnings: Vec<BackupFailure>,
    },
    /// Roll the write back and answer the client with this error (a FAIL backup failed).
    Veto(BackupFailure),
}

/// The immediate answer of [`Bridge::replicate_sync`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncStart {
    /// Nothing to wait for.
    Done(SyncVerdict),
    /// Wait for [`Event::SyncDone`] with this id.
    Pending(WriteId),
}

/// Something the server must do or may log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Dial `address` for `site`; then report [`Bridge::handle_connected`] or
    /// [`Bridge::handle_closed`].
    Connect {
        /// The new connection.
        conn: ConnId,
        /// The site it is for.
        site: String,
        /// `host:port`.
        address: String,
    },
    /// Close this connection (after writing what was already transmitted for it).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// A link is authenticated and up.
    LinkUp {
        /// Neighbour site.
        site: String,
        /// Negotiated protocol version.
        version: u8,
    },
    /// A link went down.
    LinkDown {
        /// Neighbour site.
        site: String,
        /// Why.
        reason: String,
    },
    /// The SYNC backups of a write are settled.
    SyncDone {
        /// The write.
        write: WriteId,
        /// Commit or roll back.
        verdict: SyncVerdict,
    },
    /// Apply a change received from `from`, then call [`Bridge::complete_apply`].
    Apply {
        /// Completion handle.
        ticket: Ticket,
        /// Origin site of the frame.
        from: String,
        /// The change.
        change: Change,
        /// How to resolve it.
        mode: ApplyMode,
    },
    /// `from` starts pushing `cache`: report the cache's current write sequence with
    /// [`Bridge::complete_push_start`].
    PushStarting {
        /// Completion handle.
        ticket: Ticket,
        /// Pushing site.
        from: String,
        /// Cache name.
        cache: String,
    },
    /// Read up to `max` entries of `cache` after `cursor` and hand them to
    /// [`Bridge::provide_chunk`].
    ReadChunk {
        /// Cache name.
        cache: String,
        /// Receiving site.
        site: String,
        /// Continue after this point (`None`: from the start).
        cursor: Option<Vec<u8>>,
        /// Chunk size.
        max: usize,
    },
    /// A push this site sent finished.
    PushFinished {
        /// Cache name.
        cache: String,
        /// Receiving site.
        site: String,
        /// OK, ERROR or CANCELED.
        status: PushStatus,
    },
    /// A push this site received ended.
    PushReceived {
        /// Cache name.
        cache: String,
        /// Pushing site.
        from: String,
        /// Whether it completed (false: cancelled or the link dropped).
        completed: bool,
    },
    /// A backup went offline or online.
    BackupStatus {
        /// Cache name.
        cache: String,
        /// Backup site.
        site: String,
        /// New status.
        online: bool,
        /// Why.
        reason: String,
    },
    /// A remote site announced it took this site offline or online for a cache.
    Notice {
        /// The announcing site.
        from: String,
        /// Cache name (empty: all).
        cache: String,
        /// Its new status for us.
        online: bool,
    },
}

/// An administrative request that cannot be done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No backup of that cache to that site is configured.
    #[error("cache '{cache}' has no backup to site '{site}'")]
    NoSuchBackup {
        /// Cache name.
        cache: String,
        /// Site name.
        site: String,
    },
    /// The site is not configured.
    #[error("unknown site '{0}'")]
    NoSuchSite(String),
    /// The site cannot be reached now.
    #[error("site '{0}' is unreachable")]
    Unreachable(String),
    /// A push of that cache to that site is already running.
    #[error("a state push of cache '{cache}' to site '{site}' is already running")]
    PushRunning {
        /// Cache name.
        cache: String,
        /// Site name.
        site: String,
    },
}

/// Status of one route, for `site status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteStatus {
    /// The route.
    pub route: RouteEntry,
    /// State of the next hop's link.
    pub link: LinkPhase,
    /// Negotiated version when up.
    pub version: Option<u8>,
}

/// Status of one backup, for `site status` and REST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupView {
    /// Cache name.
    pub cache: String,
    /// Site name.
    pub site: String,
    /// SYNC or ASYNC.
    pub strategy: Strategy,
    /// Whether the backup is online.
    pub online: bool,
    /// Consecutive communication failures.
    pub failures: u32,
    /// Milliseconds since the first of them.
    pub millis_since_first_failure: Option<u64>,
    /// ASYNC changes waiting (including a batch in flight).
    pub queued: usize,
    /// Last or running push status.
    pub push: Option<PushStatus>,
}

/// The whole bridge status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeStatus {
    /// This site.
    pub site: String,
    /// Routes to every remote site.
    pub routes: Vec<RouteStatus>,
    /// Every backup.
    pub backups: Vec<BackupView>,
}

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
    push_recv: HashMap<(String, u64), PushRecv>,
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
            push_recv: HashMap::new(),
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

    // ---- outputs ----

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

    // ---- connections ----

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

    // ---- SYNC ----

    /// Sends `change` (already applied locally under the key's lock, not yet committed) to every
    /// online SYNC backup of its cache.
    pub fn replicate_sync(&mut self, now: Instant, change: &Change) -> SyncStart {
        let id = WriteId(self.id());
        let sites: Vec<String> = self
            .backups
            .iter()
            .filter(|((c, _), b)| c == &change.cache && b.cfg.strategy == Strategy::Sync)
            .map(|((_, s), _)| s.clone())
            .collect();
        let mut pending = PendingWrite {
            cache: change.cache.clone(),
            waiting: BTreeMap::new(),
            failures: Vec::new(),
        };
        for site in sites {
            if !self.usable(now, &change.cache, &site) {
                continue;
            }
            let request = self.id();
            let sent = self.send_to_site(
                now,
                &site,
                Message::SyncApply {
                    id: request,
                    change: change.clone(),
                },
            );
            let Some(b) = self.backups.get_mut(&(change.cache.clone(), site.clone())) else {
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
                b.status.communication_failure(now);
                pending.failures.push(BackupFailure {
                    cache: change.cache.clone(),
                    site: site.clone(),
                    policy: b.cfg.failure_policy,
                    cause: FailureCause::Unreachable("no link".into()),
                });
            }
        }
        if pending.waiting.is_empty() {
            return SyncStart::Done(verdict(pending.failures));
        }
        self.writes.insert(id, pending);
        SyncStart::Pending(id)
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

    // ---- ASYNC ----

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

    // ---- receiving ----

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

    // ---- state push ----

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

    // ---- administration ----

    /// Takes `site` offline for `cache` or, with `None`, for every cache backing up to it.
    pub fn take_offline(
        &mut self,
        now: Instant,
        cache: Option<&str>,
        site: &str,
    ) -> Result<Vec<(String, StatusChange)>, AdminError> {
        let caches = self.select(cache, site)?;
        let mut out = Vec::new();
        for c in caches {
            let changed = self
                .backups
                .get_mut(&(c.clone(), site.to_string()))
                .map_or(StatusChange::Unchanged, |b| b.status.take_offline());
            if changed == StatusChange::Changed {
                if let Some(b) = self.backups.get_mut(&(c.clone(), site.to_string())) {
                    b.queue.clear();
                }
                self.events.push_back(Event::BackupStatus {
                    cache: c.clone(),
                    site: site.to_string(),
                    online: false,
                    reason: "taken offline by an administrator".into(),
                });
                self.send_to_site(
                    now,
                    site,
                    Message::SiteNotice {
                        cache: c.clone(),
                        online: false,
                    },
                );
            }
            out.push((c, changed));
        }
        Ok(out)
    }

    /// Brings `site` online for `cache` or every cache; AUTO state transfer then pushes.
    pub fn bring_online(
        &mut self,
        now: Instant,
        cache: Option<&str>,
        site: &str,
    ) -> Result<Vec<(String, StatusChange)>, AdminError> {
        let caches = self.select(cache, site)?;
        let mut out = Vec::new();
        for c in caches {
            let key = (c.clone(), site.to_string());
            let (changed, auto) =
                self.backups
                    .get_mut(&key)
                    .map_or((StatusChange::Unchanged, false), |b| {
                        (
                            b.status.bring_online(),
                            b.cfg.state_transfer.mode == StateTransferMode::Auto,
                        )
                    });
            if changed == StatusChange::Changed {
                self.events.push_back(Event::BackupStatus {
                    cache: c.clone(),
                    site: site.to_string(),
                    online: true,
                    reason: "brought online by an administrator".into(),
                });
                self.send_to_site(
                    now,
                    site,
                    Message::SiteNotice {
                        cache: c.clone(),
                        online: true,
                    },
                );
                if auto {
                    // A failure to start is visible in the push status.
                    let _ = self.start_push(now, Some(&c), site);
                }
            }
            out.push((c, changed));
        }
        Ok(out)
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
            if b.status.bring_online() == StatusChange::Changed {
                self.events.push_back(Event::BackupStatus {
                    cache: c.clone(),
                    site: site.to_string(),
                    online: true,
                    reason: "state push started".into(),
                });
            }
            let timeout = Duration::from_millis(b.cfg.state_transfer.timeout_ms);
            b.push.start(push, now + timeout);
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

    /// The take-offline thresholds of a backup.
    pub fn take_offline_config(&self, cache: &str, site: &str) -> Option<TakeOfflineConfig> {
        self.backups
            .get(&(cache.to_string(), site.to_string()))
            .map(|b| b.status.config())
    }

    /// Changes the take-offline thresholds of a backup (resets its counters).
    pub fn amend_take_offline(
        &mut self,
        cache: &str,
        site: &str,
        cfg: TakeOfflineConfig,
    ) -> Result<(), AdminError> {
        let b = self
            .backups
            .get_mut(&(cache.to_string(), site.to_string()))
            .ok_or_else(|| AdminError::NoSuchBackup {
                cache: cache.to_string(),
                site: site.to_string(),
            })?;
        b.status.amend(cfg);
        Ok(())
    }

    /// This site and every remote site reachable now, sorted: REST `sites_view`.
    pub fn sites_view(&self) -> Vec<String> {
        let mut view: Vec<String> = self
            .routes
            .iter()
            .filter(|r| self.reachable(&r.site))
            .map(|r| r.site.clone())
            .collect();
        view.push(self.cfg.site.clone());
        view.sort();
        view
    }

    /// Everything `site status` shows.
    pub fn status(&self, now: Instant) -> BridgeStatus {
        let routes = self
            .routes
            .iter()
            .map(|r| {
                let link = self.links.get(&r.next_hop);
                RouteStatus {
                    route: r.clone(),
                    link: link.map_or(LinkPhase::Down, |l| l.phase()),
                    version: link.and_then(|l| l.up()).map(|(_, v)| v),
                }
            })
            .collect();
        let backups = self
            .backups
            .iter()
            .map(|((c, s), b)| BackupView {
                cache: c.clone(),
                site: s.clone(),
                strategy: b.cfg.strategy,
                online: !b.status.is_offline(),
                failures: b.status.failures(),
                millis_since_first_failure: b
                    .status
                    .since_first_failure(now)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                queued: b.queue.len() + b.queue.in_flight().map_or(0, |f| f.changes.len()),
                push: b.push.status(),
            })
            .collect();
        BridgeStatus {
            site: self.cfg.site.clone(),
            routes,
            backups,
        }
    }

    // ---- internals ----

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn nonce(&mut self) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        self.entropy.fill(&mut n);
        n
    }

    fn select(&self, cache: Option<&str>, site: &str) -> Result<Vec<String>, AdminError> {
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

    fn reachable(&self, site: &str) -> bool {
        self.routes
            .next_hop(site)
            .and_then(|h| self.links.get(h))
            .is_some_and(|l| l.up().is_some())
    }

    /// Whether a backup is online; evaluates automatic take-offline (Infinispan checks on use).
    fn usable(&mut self, now: Instant, cache: &str, site: &str) -> bool {
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

    fn set_offline(&mut self, cache: &str, site: &str, reason: &str) {
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
    fn send_to_site(&mut self, now: Instant, site: &str, message: Message) -> bool {
        let route = Route {
            from: self.cfg.site.clone(),
            to: site.to_string(),
        };
        self.send_frame(now, Frame { route, message })
    }

    fn send_frame(&mut self, now: Instant, frame: Frame) -> bool {
        let Some(hop) = self.routes.next_hop(&frame.route.to).map(str::to_string) else {
            return false;
        };
        let Some(link) = self.links.get_mut(&hop) else {
            return false;
        };
        let Some((conn, version)) = link.up() else {
            return false;
        };
        link.sent(now);
        self.push_bytes(conn, &frame, version);
        true
    }

    fn push_bytes(&mut self, conn: ConnId, frame: &Frame, version: u8) {
        match self.transmits.back_mut() {
            Some(t) if t.conn == conn => wire::encode(frame, version, &mut t.bytes),
            _ => {
                let mut bytes = Vec::new();
                wire::encode(frame, version, &mut bytes);
                self.transmits.push_back(Transmit { conn, bytes });
            }
        }
    }

    fn protocol_error(&mut self, now: Instant, conn: ConnId, why: &str) {
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

    fn run_link_actions(&mut self, now: Instant, site: &str, actions: Vec<LinkAction>) {
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
    fn link_lost(&mut self, now: Instant, hop: &str, reason: &str) {
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

    fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Frame) {
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

    /// Forwards a frame for another site (this node is the site master on the path).
    fn relay(&mut self, now: Instant, frame: Frame) {
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

    fn dispatch(&mut self, now: Instant, frame: Frame) {
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
            Message::SiteNotice { cache, online } => self.events.push_back(Event::Notice {
                from,
                cache,
                online,
            }),
        }
    }

    fn policy(&self, cache: &str, site: &str) -> MergePolicy {
        self.backups
            .get(&(cache.to_string(), site.to_string()))
            .map_or(MergePolicy::Default, |b| b.cfg.merge_policy)
    }

    fn apply_group(
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

    fn reply(&mut self, now: Instant, g: Group) {
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

    fn sync_answer(
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
    fn sync_outcome(
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

    fn async_answer(&mut self, now: Instant, batch: u64, from: &str, ok: bool) {
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
    fn pump_async(&mut self, now: Instant) {
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
                let id = self.id();
                let changes = self
                    .backups
                    .get_mut(&(cache.clone(), site.clone()))
                    .and_then(|b| b.queue.next_batch(id, max, now).map(|f| f.changes.clone()));
                if let Some(changes) = changes {
                    self.send_to_site(now, &site, Message::AsyncBatch { id, changes });
                }
            } else if let Some(b) = self.backups.get_mut(&(cache.clone(), site.clone())) {
                b.status.communication_failure(now);
                b.queue.attempts = b.queue.attempts.saturating_add(1);
                b.queue.retry_at = Some(now + retry_delay(&self.cfg, b.queue.attempts));
            }
        }
    }

    fn push_of(&self, site: &str, push: u64) -> Option<(String, String)> {
        self.backups
            .iter()
            .find(|((_, s), b)| s == site && b.push.id() == Some(push))
            .map(|(k, _)| k.clone())
    }

    fn push_acked(&mut self, now: Instant, from: &str, push: u64, seq: u32) {
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

    fn ask_chunk(
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

    fn finish_push(&mut self, cache: &str, site: &str, status: PushStatus, tell_peer: bool) {
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

fn link_ctx<'a>(cfg: &'a XsiteConfig, auth: AuthMode, secret: &'a [u8]) -> LinkCtx<'a> {
    LinkCtx {
        site: &cfg.site,
        auth,
        secret,
        cfg: &cfg.link,
        max_version: cfg.max_protocol_version,
    }
}

/// Back-off between ASYNC retries: the reconnect curve, capped at the ack timeout.
fn retry_delay(cfg: &XsiteConfig, attempts: u32) -> Duration {
    backoff(&cfg.link, attempts.max(1), 1.0)
        .min(Duration::from_millis(cfg.async_replication.ack_timeout_ms))
}

/// FAIL failures veto the write; WARN ones become warnings; IGNORE ones vanish.
fn verdict(failures: Vec<BackupFailure>) -> SyncVerdict {
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
