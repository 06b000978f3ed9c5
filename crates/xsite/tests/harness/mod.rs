//! Deterministic simulation of several Ironrod sites connected by a fake network.
//!
//! Each site is a [`Bridge`] plus an in-memory cache per name, a [`VersionStore`] per cache and a
//! lock table, driven the way the server will drive it. The network carries bytes between
//! connections with a per-pair delay; a pair can be *cut* (bytes silently vanish, connects fail:
//! the failure detector has to notice) and *healed*, and its connections can be *reset*. Time is
//! virtual: [`Net::run_for`] jumps from one due action to the next.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use ironrod_xsite::config::{BackupConfig, RemoteSiteConfig};
use ironrod_xsite::wire::Cause;
use ironrod_xsite::{
    ApplyFailure, ApplyMode, BackupFailure, Bridge, Change, Chunk, ConnId, EntryValue, Event,
    Resolution, Rng, SyncStart, SyncVerdict, VersionStore, WriteId, XsiteConfig,
};

pub const SECRET: &str = "a-shared-secret-of-some-length";

/// What a client write ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok { warnings: Vec<BackupFailure> },
    Failed(String),
}

pub struct Site {
    pub name: String,
    pub bridge: Bridge,
    pub caches: BTreeMap<String, BTreeMap<Vec<u8>, EntryValue>>,
    pub stores: BTreeMap<String, VersionStore>,
    /// Keys whose lock a local write holds (acquire timeout 0 for everyone else).
    pub locked: BTreeSet<(String, Vec<u8>)>,
    /// Remote writes applied here (what a client listener would be told).
    pub listener: Vec<(String, Vec<u8>)>,
    /// Every event not handled by the harness, for assertions.
    pub log: Vec<Event>,
    /// Applying received changes fails while set.
    pub refuse_applies: bool,
    pending: HashMap<WriteId, Pending>,
}

struct Pending {
    handle: usize,
    change: Change,
    previous: Option<EntryValue>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Deliver {
        site: usize,
        conn: ConnId,
        bytes: Vec<u8>,
    },
    Connected {
        site: usize,
        conn: ConnId,
    },
    Closed {
        site: usize,
        conn: ConnId,
    },
}

pub struct Net {
    pub t0: Instant,
    pub now: Instant,
    pub sites: Vec<Site>,
    /// (site, conn) → (peer site, peer conn)
    wires: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    queue: BinaryHeap<Reverse<(Instant, u64, Action)>>,
    seq: u64,
    delay: HashMap<(usize, usize), Duration>,
    cut: BTreeSet<(usize, usize)>,
    down: BTreeSet<usize>,
    outcomes: Vec<Option<Outcome>>,
}

/// A site configuration with the others as remote sites (full mesh) and no backups yet.
pub fn site_config(name: &str, all: &[&str]) -> XsiteConfig {
    let mut c = XsiteConfig {
        site: name.into(),
        listen: "127.0.0.1:7900".into(),
        auth: ironrod_xsite::config::AuthConfig::SharedSecret {
            secret: SECRET.into(),
        },
        ..XsiteConfig::default()
    };
    for (i, other) in all.iter().enumerate() {
        if *other != name {
            c.remote_sites.insert(
                other.to_string(),
                RemoteSiteConfig {
                    address: format!("127.0.0.1:{}", 7900 + i),
                    via: None,
                },
            );
        }
    }
    c
}

/// Adds a backup of `cache` from `cfg`'s site to every remote site.
pub fn backup_all(cfg: &mut XsiteConfig, cache: &str, backup: BackupConfig) {
    let sites: Vec<String> = cfg.remote_sites.keys().cloned().collect();
    let entry = cfg.caches.entry(cache.into()).or_default();
    for s in sites {
        entry.backups.insert(s, backup.clone());
    }
}

pub fn val(s: &str) -> EntryValue {
    EntryValue {
        bytes: s.as_bytes().to_vec(),
        ..EntryValue::default()
    }
}

impl Net {
    pub fn new(configs: Vec<XsiteConfig>) -> Self {
        let t0 = Instant::now();
        let sites = configs
            .into_iter()
            .enumerate()
            .map(|(i, cfg)| Site {
                name: cfg.site.clone(),
                bridge: Bridge::new(cfg, t0, Box::new(Rng::new(1000 + i as u64)))
                    .expect("valid config"),
                caches: BTreeMap::new(),
                stores: BTreeMap::new(),
                locked: BTreeSet::new(),
                listener: Vec::new(),
                log: Vec::new(),
                refuse_applies: false,
                pending: HashMap::new(),
            })
            .collect();
        Self {
            t0,
            now: t0,
            sites,
            wires: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            delay: HashMap::new(),
            cut: BTreeSet::new(),
            down: BTreeSet::new(),
            outcomes: Vec::new(),
        }
    }

    pub fn idx(&self, name: &str) -> usize {
        self.sites
            .iter()
            .position(|s| s.name == name)
            .expect("site")
    }

    fn pair(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    pub fn set_delay(&mut self, a: &str, b: &str, d: Duration) {
        let p = Self::pair(self.idx(a), self.idx(b));
        self.delay.insert(p, d);
    }

    fn delay_of(&self, a: usize, b: usize) -> Duration {
        self.delay
            .get(&Self::pair(a, b))
            .copied()
            .unwrap_or(Duration::from_millis(1))
    }

    /// Partition: bytes between the two sites vanish and connects fail; nobody is told.
    pub fn cut(&mut self, a: &str, b: &str) {
        let p = Self::pair(self.idx(a), self.idx(b));
        self.cut.insert(p);
    }

    pub fn heal(&mut self, a: &str, b: &str) {
        let p = Self::pair(self.idx(a), self.idx(b));
        self.cut.remove(&p);
    }

    /// Resets every connection between the two sites (both ends learn at once).
    pub fn reset(&mut self, a: &str, b: &str) {
        let (ia, ib) = (self.idx(a), self.idx(b));
        let conns: Vec<_> = self
            .wires
            .iter()
            .filter(|((s, _), (p, _))| (*s == ia && *p == ib) || (*s == ib && *p == ia))
            .map(|(k, _)| *k)
            .collect();
        for (s, c) in conns {
            self.wires.remove(&(s, c));
            self.sites[s].bridge.handle_closed(self.now, c);
        }
    }

    fn schedule(&mut self, at: Instant, a: Action) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, a)));
    }

    /// Starts a client write; returns a handle for [`Net::outcome`].
    pub fn write(
        &mut self,
        site: &str,
        cache: &str,
        key: &str,
        value: Option<EntryValue>,
    ) -> usize {
        let i = self.idx(site);
        let handle = self.outcomes.len();
        self.outcomes.push(None);
        let now = self.now;
        let s = &mut self.sites[i];
        let lock = (cache.to_string(), key.as_bytes().to_vec());
        if s.locked.contains(&lock) {
            self.outcomes[handle] = Some(Outcome::Failed("lock timeout".into()));
            return handle;
        }
        let store = s
            .stores
            .entry(cache.to_string())
            .or_insert_with(|| VersionStore::new(&s.name, cache, 0));
        let change = store.prepare_local(key.as_bytes(), value.clone());
        let data = s.caches.entry(cache.to_string()).or_default();
        let previous = match &value {
            Some(v) => data.insert(key.as_bytes().to_vec(), v.clone()),
            None => data.remove(key.as_bytes()),
        };
        let start = if s.bridge.has_sync_backups(cache) {
            s.bridge.replicate_sync(now, &change)
        } else {
            SyncStart::Done(SyncVerdict::Commit { warnings: vec![] })
        };
        match start {
            SyncStart::Done(verdict) => {
                let outcome = finish(s, now, &change, previous, verdict);
                self.outcomes[handle] = Some(outcome);
            }
            SyncStart::Pending(id) => {
                s.locked.insert(lock);
                s.pending.insert(
                    id,
                    Pending {
                        handle,
                        change,
                        previous,
                    },
                );
            }
        }
        self.pump();
        handle
    }

    /// Clears `cache` on `site` and queues the clear for its ASYNC backups (as the server's
    /// hook does after the engine's clear).
    pub fn clear_async(&mut self, site: &str, cache: &str) {
        let i = self.idx(site);
        let now = self.now;
        let s = &mut self.sites[i];
        let store = s
            .stores
            .entry(cache.to_string())
            .or_insert_with(|| VersionStore::new(&s.name, cache, 0));
        let seen = store.clear_summary();
        store.clear(&seen);
        s.caches.remove(cache);
        s.bridge.cleared(now, cache, &seen);
        self.pump();
    }

    /// Events of `site` the harness does not act on.
    pub fn log(&self, site: &str) -> &[Event] {
        &self.sites[self.idx(site)].log
    }

    pub fn outcome(&self, handle: usize) -> Option<&Outcome> {
        self.outcomes[handle].as_ref()
    }

    /// Writes and runs the simulation until the write settles (bounded).
    pub fn write_wait(
        &mut self,
        site: &str,
        cache: &str,
        key: &str,
        value: Option<EntryValue>,
    ) -> Outcome {
        let h = self.write(site, cache, key, value);
        let limit = self.now + Duration::from_secs(120);
        while self.outcome(h).is_none() {
            assert!(self.now < limit, "write never settled");
            if !self.step(limit) {
                break;
            }
        }
        self.outcome(h).cloned().expect("settled")
    }

    pub fn get(&self, site: &str, cache: &str, key: &str) -> Option<EntryValue> {
        self.sites[self.idx(site)]
            .caches
            .get(cache)
            .and_then(|c| c.get(key.as_bytes()))
            .cloned()
    }

    pub fn cache(&self, site: &str, cache: &str) -> BTreeMap<Vec<u8>, EntryValue> {
        self.sites[self.idx(site)]
            .caches
            .get(cache)
            .cloned()
            .unwrap_or_default()
    }

    pub fn site(&mut self, name: &str) -> &mut Site {
        let i = self.idx(name);
        &mut self.sites[i]
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.step(until) {}
        self.now = until;
        self.pump();
    }

    /// Runs until `cond` holds (checked after every step) or `max` elapses; returns whether it held.
    pub fn run_until(&mut self, max: Duration, mut cond: impl FnMut(&Net) -> bool) -> bool {
        let until = self.now + max;
        loop {
            if cond(self) {
                return true;
            }
            if !self.step(until) {
                self.now = until;
                return cond(self);
            }
        }
    }

    /// Does the next due thing before `until`; false when nothing is due.
    fn step(&mut self, until: Instant) -> bool {
        self.pump();
        let next_action = self.queue.peek().map(|Reverse((t, _, _))| *t);
        let next_timer = self
            .sites
            .iter()
            .filter_map(|s| s.bridge.poll_timeout())
            .min();
        let next = match (next_action, next_timer) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return false,
        };
        if next > until {
            return false;
        }
        self.now = self.now.max(next);
        while let Some(Reverse((t, _, _))) = self.queue.peek() {
            if *t > self.now {
                break;
            }
            let Reverse((_, _, action)) = self.queue.pop().unwrap();
            self.perform(action);
            self.pump();
        }
        let now = self.now;
        for s in &mut self.sites {
            if s.bridge.poll_timeout().is_some_and(|t| t <= now) {
                s.bridge.handle_timeout(now);
            }
        }
        self.pump();
        true
    }

    fn perform(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Deliver { site, conn, bytes } => {
                if self.wires.contains_key(&(site, conn)) {
                    self.sites[site].bridge.handle_data(now, conn, &bytes);
                }
            }
            Action::Connected { site, conn } => self.sites[site].bridge.handle_connected(now, conn),
            Action::Closed { site, conn } => {
                self.wires.remove(&(site, conn));
                self.sites[site].bridge.handle_closed(now, conn);
            }
        }
    }

    /// Drains every site's transmits and events until nothing is left.
    fn pump(&mut self) {
        loop {
            let mut progress = false;
            for i in 0..self.sites.len() {
                while let Some(t) = self.sites[i].bridge.poll_transmit() {
                    progress = true;
                    if let Some(&(peer, pconn)) = self.wires.get(&(i, t.conn)) {
                        if !self.cut.contains(&Self::pair(i, peer)) {
                            let at = self.now + self.delay_of(i, peer);
                            self.schedule(
                                at,
                                Action::Deliver {
                                    site: peer,
                                    conn: pconn,
                                    bytes: t.bytes,
                                },
                            );
                        }
                    }
                }
                while let Some(e) = self.sites[i].bridge.poll_event() {
                    progress = true;
                    self.handle_event(i, e);
                }
            }
            if !progress {
                return;
            }
        }
    }

    fn handle_event(&mut self, i: usize, e: Event) {
        let now = self.now;
        match e {
            Event::Connect { conn, site, .. } => {
                let peer = self.idx(&site);
                let d = self.delay_of(i, peer);
                if self.cut.contains(&Self::pair(i, peer)) || self.down.contains(&peer) {
                    self.schedule(now + d * 2, Action::Closed { site: i, conn });
                    return;
                }
                let pconn = self.sites[peer].bridge.accept(now);
                self.wires.insert((i, conn), (peer, pconn));
                self.wires.insert((peer, pconn), (i, conn));
                self.schedule(now + d, Action::Connected { site: i, conn });
            }
            Event::Close { conn } => {
                self.sites[i].log.push(Event::Close { conn });
                if let Some((peer, pconn)) = self.wires.remove(&(i, conn)) {
                    self.wires.remove(&(peer, pconn));
                    if !self.cut.contains(&Self::pair(i, peer)) {
                        let d = self.delay_of(i, peer);
                        self.schedule(
                            now + d,
                            Action::Closed {
                                site: peer,
                                conn: pconn,
                            },
                        );
                    }
                }
            }
            Event::Apply {
                ticket,
                change,
                mode,
                ..
            } => {
                let s = &mut self.sites[i];
                let result = apply(s, now, &change, mode);
                s.bridge.complete_apply(now, ticket, result);
            }
            Event::Clear {
                ticket,
                cache,
                seen,
                ..
            } => {
                let s = &mut self.sites[i];
                let store = s
                    .stores
                    .entry(cache.clone())
                    .or_insert_with(|| VersionStore::new(&s.name, &cache, 0));
                store.clear(&seen);
                if let Some(data) = s.caches.get_mut(&cache) {
                    data.retain(|k, _| store.survives_clear(k));
                }
                s.bridge.complete_apply(now, ticket, Ok(()));
            }
            Event::PushStarting { ticket, cache, .. } => {
                let s = &mut self.sites[i];
                let store = s
                    .stores
                    .entry(cache.clone())
                    .or_insert_with(|| VersionStore::new(&s.name, &cache, 0));
                let seq = store.write_seq();
                s.bridge.complete_push_start(now, ticket, Ok(seq));
            }
            Event::ReadChunk {
                cache,
                site,
                cursor,
                max,
            } => {
                let s = &mut self.sites[i];
                let data = s.caches.get(&cache).cloned().unwrap_or_default();
                let mut entries = Vec::new();
                let mut next = None;
                let range = data
                    .iter()
                    .filter(|(k, _)| cursor.as_ref().is_none_or(|c| *k > c));
                for (k, v) in range {
                    if entries.len() == max {
                        next = entries.last().map(|c: &Change| c.key.clone());
                        break;
                    }
                    let (version, origin) = s
                        .stores
                        .get(&cache)
                        .and_then(|st| st.meta(k))
                        .unwrap_or_else(|| (Default::default(), s.name.clone()));
                    entries.push(Change {
                        cache: cache.clone(),
                        key: k.clone(),
                        value: Some(v.clone()),
                        origin,
                        version,
                    });
                }
                s.bridge
                    .provide_chunk(now, &cache, &site, Ok(Chunk { entries, next }));
            }
            Event::SyncDone { write, verdict } => {
                let s = &mut self.sites[i];
                if let Some(p) = s.pending.remove(&write) {
                    s.locked
                        .remove(&(p.change.cache.clone(), p.change.key.clone()));
                    let outcome = finish(s, now, &p.change, p.previous, verdict);
                    self.outcomes[p.handle] = Some(outcome);
                }
            }
            other => self.sites[i].log.push(other),
        }
    }

    /// Whether every site's caches hold the same entries for `cache`.
    pub fn divergent_keys(&self, cache: &str) -> usize {
        let maps: Vec<_> = self
            .sites
            .iter()
            .map(|s| s.caches.get(cache).cloned().unwrap_or_default())
            .collect();
        let mut keys = BTreeSet::new();
        for m in &maps {
            keys.extend(m.keys().cloned());
        }
        keys.iter()
            .filter(|k| maps.iter().any(|m| m.get(*k) != maps[0].get(*k)))
            .count()
    }

    /// The connections `site` holds towards `peer`.
    pub fn conns_towards(&self, site: &str, peer: &str) -> Vec<ConnId> {
        let (i, p) = (self.idx(site), self.idx(peer));
        self.wires
            .iter()
            .filter(|((s, _), (q, _))| *s == i && *q == p)
            .map(|((_, c), _)| *c)
            .collect()
    }

    /// Feeds raw bytes to `site` as if they came from `peer` over their live connection.
    pub fn inject(&mut self, site: &str, peer: &str, bytes: &[u8]) {
        let now = self.now;
        for conn in self.conns_towards(site, peer) {
            let i = self.idx(site);
            self.sites[i].bridge.handle_data(now, conn, bytes);
        }
        self.pump();
    }

    pub fn sites_view(&mut self, site: &str) -> Vec<String> {
        self.site(site).bridge.sites_view()
    }

    pub fn link_version(&mut self, site: &str, peer: &str) -> Option<u8> {
        let now = self.now;
        let st = self.site(site).bridge.status(now);
        st.routes
            .iter()
            .find(|r| r.route.site == peer)
            .and_then(|r| r.version)
    }
}

/// Commits or rolls back a local write per the verdict.
fn finish(
    s: &mut Site,
    now: Instant,
    change: &Change,
    previous: Option<EntryValue>,
    verdict: SyncVerdict,
) -> Outcome {
    match verdict {
        SyncVerdict::Commit { warnings } => {
            if let Some(store) = s.stores.get_mut(&change.cache) {
                store.commit_local(now, change);
            }
            s.bridge.committed(now, change);
            Outcome::Ok { warnings }
        }
        SyncVerdict::Veto(f) => {
            let data = s.caches.entry(change.cache.clone()).or_default();
            match previous {
                Some(v) => data.insert(change.key.clone(), v),
                None => data.remove(&change.key),
            };
            Outcome::Failed(f.to_string())
        }
    }
}

/// Applies a received change under the (simulated) key lock with acquire timeout 0.
fn apply(s: &mut Site, now: Instant, change: &Change, mode: ApplyMode) -> Result<(), ApplyFailure> {
    if s.refuse_applies {
        return Err(ApplyFailure {
            cause: Cause::APPLY_FAILED,
            message: "injected failure".into(),
        });
    }
    if s.locked
        .contains(&(change.cache.clone(), change.key.clone()))
    {
        if let ApplyMode::Push { .. } = mode {
            // A local write holds the key: it is newer than the push, which skips the key.
            return Ok(());
        }
        return Err(ApplyFailure {
            cause: Cause::LOCK_TIMEOUT,
            message: "lock held by a local write".into(),
        });
    }
    let store = s
        .stores
        .entry(change.cache.clone())
        .or_insert_with(|| VersionStore::new(&s.name, &change.cache, 0));
    let data = s.caches.entry(change.cache.clone()).or_default();
    let current = data.get(&change.key).cloned();
    let resolution = match mode {
        ApplyMode::Sync => store.apply_sync(now, change),
        ApplyMode::Async { policy } => store.apply_remote(now, change, policy, || current),
        ApplyMode::Push { since } => store.apply_push(now, change, since),
    };
    if let Resolution::Write(v) = resolution {
        match v {
            Some(v) => data.insert(change.key.clone(), v),
            None => data.remove(&change.key),
        };
        s.listener.push((change.cache.clone(), change.key.clone()));
    }
    Ok(())
}
