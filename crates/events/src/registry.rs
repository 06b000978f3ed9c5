//! The listener registry of one cache: registrations, fan-out of the change feed, per-listener
//! queues with back-pressure, draining and the include-current-state hand-over.
//!
//! Concurrency: [`Registry::on_change`] runs on writer threads under the engine's shard lock, so
//! the lock order is always *shard → registry map → listener queue*. No method of the registry
//! calls into the engine, and [`StateTransfer::snapshot`] collects its input before locking, so
//! that order is never reversed. The [`Notify`] hooks are called after the registry's own locks
//! are released (but possibly still under the engine's shard lock).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ironrod_engine::{CacheEntry, Change, Subscriber};
use parking_lot::{Mutex, RwLock};

use crate::error::EventsError;
use crate::listener::{ConnectionId, EventKind, EventRecord, Interests, ListenerId, ListenerSpec};

/// The bounds of every listener's queue (`protocol-spec/events.md` §7; the reference's
/// `ClientListenerRegistry` uses a per-listener queue with a high-water mark and a maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// Above this many queued events the listener is congested: the server delays responses to
    /// the cache's writers (the reference makes the originating write wait).
    pub high: usize,
    /// A congested listener stops being congested once drained to this many or fewer.
    pub low: usize,
    /// When a queue reaches this many events the listener's connection is marked for closing and
    /// all its listeners are dropped; memory per listener is bounded by it.
    pub max: usize,
}

impl Default for Watermarks {
    /// High 100, low 50, maximum 512.
    fn default() -> Self {
        Self {
            high: 100,
            low: 50,
            max: 512,
        }
    }
}

impl Watermarks {
    /// Checks `low <= high < max`.
    pub fn validate(&self) -> Result<(), EventsError> {
        if self.low <= self.high && self.high < self.max {
            return Ok(());
        }
        Err(EventsError::InvalidWatermarks {
            low: self.low,
            high: self.high,
            max: self.max,
        })
    }
}

/// How the registry tells the server that something needs doing; the server supplies it (for
/// example by waking a connection task's `tokio::sync::Notify`). Every hook may run on a writer's
/// thread while the engine holds a shard lock: it must be quick and must not call into the cache
/// or block on the registry's owner.
pub trait Notify: Send + Sync {
    /// Events for `connection` became drainable (a listener's queue went from empty to non-empty,
    /// or a state transfer finished with buffered events). Drain until empty after this.
    fn events_ready(&self, _connection: ConnectionId) {}

    /// The registry stopped being congested: responses to writers held back may go out.
    /// Fires after [`Registry::is_congested`] turned false, so a waiter armed before checking the
    /// flag never misses it.
    fn congestion_cleared(&self) {}

    /// A listener of `connection` overflowed: the connection must be closed (the client
    /// re-registers). Its listeners are already dropped; the connection is also listed by
    /// [`Registry::take_closing`].
    fn close_connection(&self, _connection: ConnectionId) {}
}

/// A [`Notify`] that ignores everything; for tests and for servers that poll.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotify;

impl Notify for NoNotify {}

/// What [`Registry::add_listener`] did.
#[must_use = "a current-state transfer must be run and finished, or the listener stays buffering"]
#[derive(Debug)]
pub enum Added<'r> {
    /// The listener is live; answer the request.
    Live,
    /// The listener is buffering live events; send its current state through the transfer, then
    /// finish it, then answer the request.
    CurrentState(StateTransfer<'r>),
}

/// The client listeners of one cache. Subscribe it to the cache's change feed
/// (`cache.subscribe(registry.clone())`).
pub struct Registry {
    watermarks: Watermarks,
    notify: Arc<dyn Notify>,
    inner: RwLock<Inner>,
    /// How many listeners are congested; the registry is congested while it is not zero.
    congested: AtomicUsize,
    /// Connections marked for closing because a listener overflowed, not yet taken.
    closing: Mutex<Vec<ConnectionId>>,
}

impl Registry {
    /// An empty registry with these bounds, reporting to `notify`.
    pub fn new(watermarks: Watermarks, notify: Arc<dyn Notify>) -> Result<Self, EventsError> {
        watermarks.validate()?;
        Ok(Self {
            watermarks,
            notify,
            inner: RwLock::new(Inner::default()),
            congested: AtomicUsize::new(0),
            closing: Mutex::new(Vec::new()),
        })
    }

    /// The queue bounds.
    pub fn watermarks(&self) -> Watermarks {
        self.watermarks
    }

    /// Registers a listener (ADD_CLIENT_LISTENER with message id `message_id`).
    ///
    /// Fails, registering nothing, if a filter or converter factory is named (none is known yet)
    /// or the id is taken. Without include-current-state the listener is live at once; with it,
    /// it buffers live events until the returned [`StateTransfer`] finishes.
    pub fn add_listener(
        &self,
        spec: ListenerSpec,
        message_id: u64,
    ) -> Result<Added<'_>, EventsError> {
        check_factories(&spec)?;
        let phase = if spec.include_current_state {
            Phase::Buffering {
                keys: HashMap::new(),
            }
        } else {
            Phase::Live
        };
        let slot = Arc::new(Slot {
            id: spec.id.clone(),
            connection: spec.connection,
            protocol_version: spec.protocol_version,
            interests: spec.interests,
            queue: Mutex::new(Queue {
                phase,
                records: VecDeque::new(),
                congested: false,
            }),
        });
        {
            let mut inner = self.inner.write();
            if inner.listeners.contains_key(&spec.id) {
                return Err(EventsError::DuplicateListener { id: spec.id });
            }
            inner.listeners.insert(spec.id.clone(), slot.clone());
            inner
                .by_connection
                .entry(spec.connection)
                .or_default()
                .push(slot.clone());
        }
        if !spec.include_current_state {
            return Ok(Added::Live);
        }
        Ok(Added::CurrentState(StateTransfer {
            registry: self,
            slot,
            message_id,
            done: false,
        }))
    }

    /// Removes a listener (REMOVE_CLIENT_LISTENER, from any connection); false if unknown.
    pub fn remove_listener(&self, id: &ListenerId) -> bool {
        let cleared = {
            let mut inner = self.inner.write();
            let Some(slot) = inner.listeners.get(id).cloned() else {
                return false;
            };
            inner.remove_slot(&slot);
            self.close_slot(&slot)
        };
        self.after_clear(cleared);
        true
    }

    /// Drops every listener of a closed connection; returns how many there were.
    pub fn remove_connection(&self, connection: ConnectionId) -> usize {
        let (removed, cleared) = self.remove_connection_locked(connection);
        self.closing.lock().retain(|c| *c != connection);
        self.after_clear(cleared);
        removed
    }

    /// Takes up to `max` pending records of `connection`'s live listeners, each listener's in
    /// FIFO order, sharing `max` among the listeners so none starves. Buffering listeners (state
    /// transfer under way) give nothing yet.
    pub fn drain(&self, connection: ConnectionId, max: usize) -> Vec<EventRecord> {
        let mut out = Vec::new();
        let mut cleared = false;
        {
            let inner = self.inner.read();
            let Some(slots) = inner.by_connection.get(&connection) else {
                return out;
            };
            let count = slots.len().max(1);
            loop {
                let before = out.len();
                let quota = (max.saturating_sub(out.len())).div_ceil(count).max(1);
                for slot in slots {
                    if out.len() >= max {
                        break;
                    }
                    let mut queue = slot.queue.lock();
                    if !matches!(queue.phase, Phase::Live) {
                        continue;
                    }
                    let take = quota.min(max - out.len()).min(queue.records.len());
                    out.extend(queue.records.drain(..take));
                    cleared |= self.relieve(&mut queue);
                }
                if out.len() >= max || out.len() == before {
                    break;
                }
            }
        }
        self.after_clear(cleared);
        out
    }

    /// How many records `connection`'s listeners hold (buffering ones included).
    pub fn pending(&self, connection: ConnectionId) -> usize {
        let inner = self.inner.read();
        inner.by_connection.get(&connection).map_or(0, |slots| {
            slots.iter().map(|s| s.queue.lock().records.len()).sum()
        })
    }

    /// Events queued for all listeners of the cache, and the longest single queue: what
    /// operators watch to see a slow listener before it is closed.
    pub fn queue_depth(&self) -> (usize, usize) {
        let inner = self.inner.read();
        inner
            .listeners
            .values()
            .map(|s| s.queue.lock().records.len())
            .fold((0, 0), |(total, max), n| (total + n, max.max(n)))
    }

    /// Whether some listener holds more than the high watermark: the server should delay its
    /// responses to this cache's writers until it is false again ([`Notify::congestion_cleared`]).
    pub fn is_congested(&self) -> bool {
        self.congested.load(Ordering::Acquire) > 0
    }

    /// The connections marked for closing because a listener overflowed, since the last call.
    pub fn take_closing(&self) -> Vec<ConnectionId> {
        std::mem::take(&mut *self.closing.lock())
    }

    /// Whether a listener with this id is registered.
    pub fn contains(&self, id: &ListenerId) -> bool {
        self.inner.read().listeners.contains_key(id)
    }

    /// How many listeners are registered.
    pub fn len(&self) -> usize {
        self.inner.read().listeners.len()
    }

    /// Whether no listener is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Subscriber for Registry {
    /// Turns a committed change into one record per interested listener. Runs under the key's
    /// shard lock, so a key's records enter every queue in version order.
    fn on_change(&self, change: &Change<'_>) {
        if change.skip_listener_notification {
            return;
        }
        let Some(kind) = EventKind::from_change(change.kind) else {
            return;
        };
        let mut ready: Vec<ConnectionId> = Vec::new();
        let mut overflow: Vec<ConnectionId> = Vec::new();
        {
            let inner = self.inner.read();
            if inner.listeners.is_empty() {
                return;
            }
            let key = Bytes::copy_from_slice(change.key);
            for slot in inner.listeners.values() {
                if !slot.interests.includes(kind) {
                    continue;
                }
                let record = slot.record(kind, key.clone(), change.version, 0);
                match self.push(slot, record) {
                    Pushed::Queued => {}
                    Pushed::Ready if !ready.contains(&slot.connection) => {
                        ready.push(slot.connection);
                    }
                    Pushed::Ready => {}
                    Pushed::Overflow if !overflow.contains(&slot.connection) => {
                        overflow.push(slot.connection);
                    }
                    Pushed::Overflow => {}
                }
            }
        }
        if !overflow.is_empty() {
            self.close_overflowed(&overflow);
        }
        for connection in ready.into_iter().filter(|c| !overflow.contains(c)) {
            self.notify.events_ready(connection);
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("watermarks", &self.watermarks)
            .field("listeners", &self.len())
            .field("congested", &self.congested.load(Ordering::Relaxed))
            .finish()
    }
}

/// The include-current-state hand-over of one listener.
///
/// The race it solves: a write may commit while the server walks the cache. Design:
/// 1. [`Registry::add_listener`] registers the listener *buffering* before any entry is read, so
///    every change committed from then on is queued (not yet drainable).
/// 2. The server reads the cache in batches (`Cache::iterate`/`next_batch`) and passes each batch
///    to [`StateTransfer::snapshot`], which returns a created event per entry with the
///    ADD_CLIENT_LISTENER message id, and drops from the buffer the key's events whose version is
///    not newer than the snapshot's. Those changes were committed before the entry was read
///    (the read and the feed both happen under the key's shard lock, and versions only grow),
///    so the snapshot already shows their result; every change committed after the read has a
///    newer version and stays buffered.
/// 3. [`StateTransfer::finish`] makes the listener live: the surviving buffered events become
///    drainable, after the snapshot events the server has already written.
///
/// Result: each key's final state reaches the client exactly once per (key, version), and a key's
/// events stay in version order. Buffered events count against the watermarks like any others, so
/// a long walk under heavy writes congests and, at worst, overflows and closes the connection
/// rather than growing without bound. Dropping an unfinished transfer removes the listener.
///
/// State events honour the listener's interests: a listener without "created" gets none.
#[derive(Debug)]
pub struct StateTransfer<'r> {
    registry: &'r Registry,
    slot: Arc<Slot>,
    message_id: u64,
    done: bool,
}

impl StateTransfer<'_> {
    /// The created events for a batch of current entries, in the batch's order; call once per
    /// batch and write them before finishing. Fails if the listener went away meanwhile.
    pub fn snapshot<'e>(
        &mut self,
        entries: impl IntoIterator<Item = &'e CacheEntry>,
    ) -> Result<Vec<EventRecord>, EventsError> {
        // Collected before locking: the iterator is the caller's and might touch the cache,
        // whose locks rank before ours.
        let entries: Vec<&CacheEntry> = entries.into_iter().collect();
        let wants_created = self.slot.interests.includes(EventKind::Created);
        let mut out = Vec::with_capacity(if wants_created { entries.len() } else { 0 });
        let mut queue = self.slot.queue.lock();
        let Queue { phase, records, .. } = &mut *queue;
        let Phase::Buffering { keys } = phase else {
            return Err(self.gone());
        };
        for entry in entries {
            let version = entry.metadata.version;
            if keys.remove(&entry.key).is_some() {
                records.retain(|r| r.key != entry.key || r.version > version);
                let left = records.iter().filter(|r| r.key == entry.key).count();
                if left > 0 {
                    keys.insert(entry.key.clone(), left);
                }
            }
            if wants_created {
                out.push(self.slot.record(
                    EventKind::Created,
                    entry.key.clone(),
                    version,
                    self.message_id,
                ));
            }
        }
        Ok(out)
    }

    /// Ends the transfer: the listener goes live and its buffered events become drainable.
    /// Fails if the listener went away meanwhile.
    pub fn finish(mut self) -> Result<(), EventsError> {
        self.done = true;
        let (ready, cleared) = {
            let mut queue = self.slot.queue.lock();
            if !matches!(queue.phase, Phase::Buffering { .. }) {
                return Err(self.gone());
            }
            queue.phase = Phase::Live;
            let cleared = self.registry.relieve(&mut queue);
            (!queue.records.is_empty(), cleared)
        };
        self.registry.after_clear(cleared);
        if ready {
            self.registry.notify.events_ready(self.slot.connection);
        }
        Ok(())
    }

    /// Gives up (e.g. the walk failed): the listener is removed.
    pub fn abort(mut self) {
        self.done = true;
        self.registry.remove_exact(&self.slot);
    }

    fn gone(&self) -> EventsError {
        EventsError::ListenerGone {
            id: self.slot.id.clone(),
        }
    }
}

impl Drop for StateTransfer<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.registry.remove_exact(&self.slot);
        }
    }
}

// ---- private ----

/// One registered listener.
#[derive(Debug)]
struct Slot {
    id: ListenerId,
    connection: ConnectionId,
    protocol_version: u8,
    interests: Interests,
    queue: Mutex<Queue>,
}

impl Slot {
    fn record(&self, kind: EventKind, key: Bytes, version: u64, message_id: u64) -> EventRecord {
        EventRecord {
            listener: self.id.clone(),
            kind,
            key,
            version,
            message_id,
            protocol_version: self.protocol_version,
            retried: false,
        }
    }
}

/// A listener's queue and phase.
#[derive(Debug)]
struct Queue {
    phase: Phase,
    records: VecDeque<EventRecord>,
    /// Whether this listener counts in [`Registry::congested`].
    congested: bool,
}

/// The phase of a listener.
///
/// ```text
/// add_listener(include_current_state) ──► Buffering ──StateTransfer::finish──► Live
/// add_listener(plain) ───────────────────────────────────────────────────────► Live
/// Buffering | Live ──remove_listener / remove_connection / overflow / abort──► Closed
/// ```
///
/// Buffering queues events but does not let them be drained; Closed ignores everything (a state
/// transfer holding the slot then reports the listener gone).
#[derive(Debug)]
enum Phase {
    /// Current state being sent; `keys` counts the buffered records per key, so that a snapshot
    /// entry only scans the buffer when it has something to prune.
    Buffering {
        keys: HashMap<Bytes, usize>,
    },
    Live,
    Closed,
}

/// What pushing one record did.
enum Pushed {
    Queued,
    /// The queue of a live listener went from empty to non-empty.
    Ready,
    /// The queue reached the maximum.
    Overflow,
}

#[derive(Debug, Default)]
struct Inner {
    listeners: HashMap<ListenerId, Arc<Slot>>,
    by_connection: HashMap<ConnectionId, Vec<Arc<Slot>>>,
}

impl Inner {
    fn remove_slot(&mut self, slot: &Arc<Slot>) {
        self.listeners.remove(&slot.id);
        if let Some(slots) = self.by_connection.get_mut(&slot.connection) {
            slots.retain(|s| !Arc::ptr_eq(s, slot));
            if slots.is_empty() {
                self.by_connection.remove(&slot.connection);
            }
        }
    }
}

impl Registry {
    /// Removes the connection's listeners; returns how many and whether congestion cleared.
    fn remove_connection_locked(&self, connection: ConnectionId) -> (usize, bool) {
        let mut inner = self.inner.write();
        let Some(slots) = inner.by_connection.remove(&connection) else {
            return (0, false);
        };
        let mut cleared = false;
        for slot in &slots {
            inner.listeners.remove(&slot.id);
            cleared |= self.close_slot(slot);
        }
        (slots.len(), cleared)
    }

    /// Queues `record` on `slot`, updating congestion.
    fn push(&self, slot: &Slot, record: EventRecord) -> Pushed {
        let mut queue = slot.queue.lock();
        let live = match &mut queue.phase {
            Phase::Closed => return Pushed::Queued,
            Phase::Live => true,
            Phase::Buffering { keys } => {
                *keys.entry(record.key.clone()).or_insert(0) += 1;
                false
            }
        };
        queue.records.push_back(record);
        let len = queue.records.len();
        if len > self.watermarks.high && !queue.congested {
            queue.congested = true;
            self.congested.fetch_add(1, Ordering::AcqRel);
        }
        if len >= self.watermarks.max {
            return Pushed::Overflow;
        }
        if live && len == 1 {
            return Pushed::Ready;
        }
        Pushed::Queued
    }

    /// Clears the listener's congestion if it is at or below the low watermark; true if that
    /// cleared the registry's.
    fn relieve(&self, queue: &mut Queue) -> bool {
        if queue.congested && queue.records.len() <= self.watermarks.low {
            queue.congested = false;
            return self.congested.fetch_sub(1, Ordering::AcqRel) == 1;
        }
        false
    }

    /// Closes a slot removed from the maps; true if that cleared the registry's congestion.
    fn close_slot(&self, slot: &Slot) -> bool {
        let mut queue = slot.queue.lock();
        queue.phase = Phase::Closed;
        queue.records = VecDeque::new();
        if queue.congested {
            queue.congested = false;
            return self.congested.fetch_sub(1, Ordering::AcqRel) == 1;
        }
        false
    }

    /// Removes `slot` if it is still the registered one (its id may have been reused).
    fn remove_exact(&self, slot: &Arc<Slot>) {
        let cleared = {
            let mut inner = self.inner.write();
            match inner.listeners.get(&slot.id) {
                Some(current) if Arc::ptr_eq(current, slot) => {
                    inner.remove_slot(slot);
                    self.close_slot(slot)
                }
                _ => false,
            }
        };
        self.after_clear(cleared);
    }

    /// Drops the listeners of overflowed connections, marks them for closing and tells the server.
    fn close_overflowed(&self, connections: &[ConnectionId]) {
        let mut cleared = false;
        for &connection in connections {
            let (_, c) = self.remove_connection_locked(connection);
            cleared |= c;
            let mut closing = self.closing.lock();
            if !closing.contains(&connection) {
                closing.push(connection);
            }
        }
        for &connection in connections {
            self.notify.close_connection(connection);
        }
        self.after_clear(cleared);
    }

    fn after_clear(&self, cleared: bool) {
        if cleared {
            self.notify.congestion_cleared();
        }
    }
}

/// Refuses every filter and converter factory: none is implemented yet (see the crate doc). When
/// both names are equal the reference uses one filter-converter factory, reported as a filter.
fn check_factories(spec: &ListenerSpec) -> Result<(), EventsError> {
    if let Some(filter) = &spec.filter {
        return Err(EventsError::UnknownFilterFactory {
            name: filter.name.clone(),
        });
    }
    if let Some(converter) = &spec.converter {
        return Err(EventsError::UnknownConverterFactory {
            name: converter.name.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::FactoryRef;
    use ironrod_engine::{ChangeKind, Metadata};

    #[derive(Default)]
    struct Recorder {
        ready: Mutex<Vec<ConnectionId>>,
        cleared: AtomicUsize,
        closed: Mutex<Vec<ConnectionId>>,
    }

    impl Notify for Recorder {
        fn events_ready(&self, connection: ConnectionId) {
            self.ready.lock().push(connection);
        }
        fn congestion_cleared(&self) {
            self.cleared.fetch_add(1, Ordering::SeqCst);
        }
        fn close_connection(&self, connection: ConnectionId) {
            self.closed.lock().push(connection);
        }
    }

    fn registry() -> (Registry, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let registry = Registry::new(Watermarks::default(), recorder.clone()).unwrap();
        (registry, recorder)
    }

    fn id(s: &str) -> ListenerId {
        ListenerId::new(s.as_bytes().to_vec())
    }

    fn spec(name: &str, conn: u64) -> ListenerSpec {
        ListenerSpec::plain(id(name), ConnectionId(conn), 40)
    }

    fn add(registry: &Registry, spec: ListenerSpec) {
        assert!(matches!(
            registry.add_listener(spec, 7).unwrap(),
            Added::Live
        ));
    }

    fn publish(registry: &Registry, kind: ChangeKind, key: &[u8], version: u64, skip: bool) {
        registry.on_change(&Change {
            kind,
            key,
            value: b"value",
            version,
            metadata: Metadata {
                version,
                created: None,
                last_used: None,
                lifespan: None,
                max_idle: None,
            },
            skip_listener_notification: skip,
        });
    }

    fn entry(key: &str, version: u64) -> CacheEntry {
        CacheEntry {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            metadata: Metadata {
                version,
                created: None,
                last_used: None,
                lifespan: None,
                max_idle: None,
            },
        }
    }

    #[test]
    fn interests_select_kinds_and_records_carry_key_and_version() {
        let (registry, _) = registry();
        add(&registry, spec("all", 1));
        let mut near = spec("near", 1);
        near.interests = Interests(0x0E);
        add(&registry, near);
        let mut expired_only = spec("exp", 2);
        expired_only.interests = Interests::EXPIRED;
        add(&registry, expired_only);

        publish(&registry, ChangeKind::Created, b"k", 1, false);
        publish(&registry, ChangeKind::Modified, b"k", 2, false);
        publish(&registry, ChangeKind::Removed, b"k", 3, false);
        publish(&registry, ChangeKind::Expired, b"j", 4, false);

        let records = registry.drain(ConnectionId(1), 100);
        let of = |l: &str| -> Vec<(EventKind, u64)> {
            records
                .iter()
                .filter(|r| r.listener == id(l))
                .map(|r| (r.kind, r.version))
                .collect()
        };
        assert_eq!(
            of("all"),
            [
                (EventKind::Created, 1),
                (EventKind::Modified, 2),
                (EventKind::Removed, 3),
                (EventKind::Expired, 4)
            ]
        );
        assert_eq!(
            of("near"),
            [
                (EventKind::Modified, 2),
                (EventKind::Removed, 3),
                (EventKind::Expired, 4)
            ]
        );
        let first = records.first().unwrap();
        assert_eq!(&first.key[..], b"k");
        assert_eq!(first.message_id, 0);
        assert_eq!(first.protocol_version, 40);
        assert!(!first.retried);
        let exp = registry.drain(ConnectionId(2), 100);
        assert_eq!(exp.len(), 1);
        assert_eq!(exp[0].kind, EventKind::Expired);
        assert_eq!(&exp[0].key[..], b"j");
    }

    #[test]
    fn skip_flag_suppresses_events() {
        let (registry, recorder) = registry();
        add(&registry, spec("a", 1));
        publish(&registry, ChangeKind::Created, b"k", 1, true);
        assert_eq!(registry.pending(ConnectionId(1)), 0);
        assert!(recorder.ready.lock().is_empty());
        publish(&registry, ChangeKind::Modified, b"k", 2, false);
        assert_eq!(registry.pending(ConnectionId(1)), 1);
    }

    #[test]
    fn ready_fires_when_a_queue_becomes_non_empty() {
        let (registry, recorder) = registry();
        add(&registry, spec("a", 1));
        publish(&registry, ChangeKind::Created, b"k", 1, false);
        publish(&registry, ChangeKind::Modified, b"k", 2, false);
        assert_eq!(*recorder.ready.lock(), [ConnectionId(1)]);
        assert_eq!(registry.drain(ConnectionId(1), 10).len(), 2);
        publish(&registry, ChangeKind::Removed, b"k", 3, false);
        assert_eq!(*recorder.ready.lock(), [ConnectionId(1), ConnectionId(1)]);
    }

    #[test]
    fn watermarks_congest_relieve_and_close() {
        let (registry, recorder) = registry();
        add(&registry, spec("a", 1));
        add(&registry, spec("b", 1));
        let mut other = spec("c", 2);
        other.interests = Interests::EXPIRED;
        add(&registry, other);
        let mut version = 0;
        let mut write = |n: usize| {
            for _ in 0..n {
                version += 1;
                publish(&registry, ChangeKind::Modified, b"k", version, false);
            }
        };
        write(100);
        assert!(!registry.is_congested(), "100 is not above the high mark");
        write(1);
        assert!(registry.is_congested());
        // Draining one listener to 50 is not enough while the other is still above.
        let drained = registry.drain(ConnectionId(1), 102);
        assert_eq!(drained.len(), 102);
        assert_eq!(registry.pending(ConnectionId(1)), 100);
        assert!(!registry.is_congested(), "both at 50");
        assert_eq!(recorder.cleared.load(Ordering::SeqCst), 1);

        write(51);
        assert!(registry.is_congested());
        assert_eq!(registry.drain(ConnectionId(1), 100).len(), 100);
        assert!(registry.is_congested(), "51 is above the low mark");
        assert_eq!(registry.drain(ConnectionId(1), 2).len(), 2);
        assert!(!registry.is_congested());
        assert_eq!(recorder.cleared.load(Ordering::SeqCst), 2);

        // 50 queued; 461 more is 511, one below the maximum.
        write(461);
        assert!(recorder.closed.lock().is_empty());
        assert!(registry.contains(&id("a")));
        write(1);
        assert_eq!(*recorder.closed.lock(), [ConnectionId(1)]);
        assert_eq!(registry.take_closing(), [ConnectionId(1)]);
        assert!(registry.take_closing().is_empty());
        assert!(!registry.contains(&id("a")));
        assert!(!registry.contains(&id("b")));
        assert!(registry.contains(&id("c")));
        assert_eq!(registry.pending(ConnectionId(1)), 0);
        assert!(
            !registry.is_congested(),
            "dropped listeners no longer congest"
        );
        assert_eq!(recorder.cleared.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn watermarks_are_configurable_and_checked() {
        let wm = Watermarks {
            high: 3,
            low: 1,
            max: 5,
        };
        let registry = Registry::new(wm, Arc::new(NoNotify)).unwrap();
        add(&registry, spec("a", 1));
        for v in 1..=4 {
            publish(&registry, ChangeKind::Modified, b"k", v, false);
        }
        assert!(registry.is_congested());
        publish(&registry, ChangeKind::Modified, b"k", 5, false);
        assert_eq!(registry.take_closing(), [ConnectionId(1)]);
        for (low, high, max) in [(2, 1, 5), (1, 5, 5), (0, 0, 0)] {
            assert!(matches!(
                Registry::new(Watermarks { high, low, max }, Arc::new(NoNotify)),
                Err(EventsError::InvalidWatermarks { .. })
            ));
        }
    }

    #[test]
    fn drain_shares_max_between_listeners_fifo() {
        let (registry, _) = registry();
        add(&registry, spec("a", 1));
        add(&registry, spec("b", 1));
        for v in 1..=10 {
            publish(&registry, ChangeKind::Modified, b"k", v, false);
        }
        let batch = registry.drain(ConnectionId(1), 6);
        assert_eq!(batch.len(), 6);
        for l in ["a", "b"] {
            let versions: Vec<u64> = batch
                .iter()
                .filter(|r| r.listener == id(l))
                .map(|r| r.version)
                .collect();
            assert_eq!(versions, [1, 2, 3], "listener {l}");
        }
        assert_eq!(registry.drain(ConnectionId(1), 100).len(), 14);
        assert!(registry.drain(ConnectionId(9), 100).is_empty());
    }

    #[test]
    fn listeners_end_with_their_connection_or_on_request() {
        let (registry, _) = registry();
        add(&registry, spec("a", 1));
        add(&registry, spec("b", 1));
        add(&registry, spec("c", 2));
        publish(&registry, ChangeKind::Created, b"k", 1, false);
        assert_eq!(registry.remove_connection(ConnectionId(1)), 2);
        assert_eq!(registry.remove_connection(ConnectionId(1)), 0);
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.pending(ConnectionId(1)), 0);
        assert!(registry.remove_listener(&id("c")));
        assert!(!registry.remove_listener(&id("c")));
        assert!(registry.is_empty());
        // The id may be used again.
        add(&registry, spec("a", 3));
    }

    #[test]
    fn unknown_factories_and_duplicates_are_refused() {
        let (registry, _) = registry();
        let factory = |name: &str| {
            Some(FactoryRef {
                name: name.to_owned(),
                params: vec![Bytes::from_static(b"p")],
            })
        };
        let mut s = spec("a", 1);
        s.filter = factory("my-filter");
        assert_eq!(
            registry.add_listener(s, 1).unwrap_err(),
            EventsError::UnknownFilterFactory {
                name: "my-filter".into()
            }
        );
        for name in [
            "key-value-with-previous-converter-factory",
            "___eager-key-value-version-converter",
        ] {
            let mut s = spec("a", 1);
            s.converter = factory(name);
            let err = registry.add_listener(s, 1).unwrap_err();
            assert_eq!(
                err,
                EventsError::UnknownConverterFactory { name: name.into() }
            );
            assert!(err.to_string().contains(name));
        }
        assert!(registry.is_empty());
        add(&registry, spec("a", 1));
        assert!(matches!(
            registry.add_listener(spec("a", 2), 1),
            Err(EventsError::DuplicateListener { .. })
        ));
    }

    #[test]
    fn state_transfer_buffers_then_prunes_what_the_snapshot_shows() {
        let (registry, recorder) = registry();
        let mut s = spec("a", 1);
        s.include_current_state = true;
        let Added::CurrentState(mut transfer) = registry.add_listener(s, 42).unwrap() else {
            panic!("expected a state transfer");
        };
        // Committed before the walk reads "x" (v5) and "y" (v6); "z" is created after its
        // segment was read, and "x" changes again after its read.
        publish(&registry, ChangeKind::Modified, b"x", 5, false);
        publish(&registry, ChangeKind::Created, b"z", 7, false);
        publish(&registry, ChangeKind::Modified, b"x", 8, false);
        assert!(
            registry.drain(ConnectionId(1), 100).is_empty(),
            "buffered, not drainable"
        );
        assert!(recorder.ready.lock().is_empty());
        let state = transfer.snapshot([&entry("x", 5), &entry("y", 6)]).unwrap();
        let got: Vec<(&[u8], u64, u64)> = state
            .iter()
            .map(|r| (&r.key[..], r.version, r.message_id))
            .collect();
        assert_eq!(got, [(&b"x"[..], 5, 42), (&b"y"[..], 6, 42)]);
        assert!(state.iter().all(|r| r.kind == EventKind::Created));
        transfer.finish().unwrap();
        assert_eq!(*recorder.ready.lock(), [ConnectionId(1)]);
        let live: Vec<(Vec<u8>, u64, u64)> = registry
            .drain(ConnectionId(1), 100)
            .iter()
            .map(|r| (r.key.to_vec(), r.version, r.message_id))
            .collect();
        assert_eq!(live, [(b"z".to_vec(), 7, 0), (b"x".to_vec(), 8, 0)]);
    }

    #[test]
    fn state_transfer_respects_interests_and_ends_cleanly() {
        let (registry, _) = registry();
        let mut s = spec("a", 1);
        s.include_current_state = true;
        s.interests = Interests::REMOVED;
        let Added::CurrentState(mut transfer) = registry.add_listener(s.clone(), 1).unwrap() else {
            panic!("expected a state transfer");
        };
        assert!(transfer.snapshot([&entry("x", 1)]).unwrap().is_empty());
        // Dropping an unfinished transfer removes the listener.
        drop(transfer);
        assert!(registry.is_empty());

        let Added::CurrentState(mut transfer) = registry.add_listener(s.clone(), 1).unwrap() else {
            panic!("expected a state transfer");
        };
        assert_eq!(registry.remove_connection(ConnectionId(1)), 1);
        assert!(matches!(
            transfer.snapshot([&entry("x", 1)]),
            Err(EventsError::ListenerGone { .. })
        ));
        // Re-registered under the same id: the old transfer must not remove the new listener.
        add(&registry, spec("a", 2));
        assert!(matches!(
            transfer.finish(),
            Err(EventsError::ListenerGone { .. })
        ));
        assert!(registry.contains(&id("a")));

        let Added::CurrentState(transfer) = registry
            .add_listener(ListenerSpec { id: id("b"), ..s }, 1)
            .unwrap()
        else {
            panic!("expected a state transfer");
        };
        transfer.abort();
        assert!(!registry.contains(&id("b")));
    }
}
