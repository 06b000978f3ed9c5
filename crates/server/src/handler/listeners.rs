//! Client listeners: ADD_CLIENT_LISTENER (0x25), REMOVE_CLIENT_LISTENER (0x27) and the wiring
//! between the sans-I/O registries of `ironrod-events` and the connection tasks.
//!
//! One [`Registry`] per cache, subscribed to the cache's change feed the first time a listener is
//! added to it (so caches created later through admin tasks get one too, and caches nobody
//! listens to pay nothing). The [`Hub`] is the registries' [`Notify`]: it wakes the connection
//! that owns queued events, wakes writers held back by congestion, and cancels the connection of
//! an overflowed listener. Connections drain their events through [`Hub::drain`] and encode
//! them with [`encode_events`] (`protocol-spec/events.md`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use ironrod_codec::{
    CacheEvent, EventKind as WireKind, EventPayload, ListenerRegistration, OpCode, RequestHeader,
    Response, ResponseBody, Status, Version,
};
use ironrod_engine::{Cache, SubscriptionId};
use ironrod_events::{
    Added, ConnectionId, EventKind, EventRecord, EventsError, FactoryRef, Interests, ListenerId,
    ListenerSpec, Notify, Registry, Watermarks,
};
use parking_lot::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::errors::Refusal;
use crate::session::Session;
use crate::state::State;

/// Entries read per batch while sending a listener's current state.
const STATE_BATCH: usize = 256;

/// What a connection task holds to hear from the registries.
#[derive(Debug)]
pub struct ConnectionSignal {
    /// Events for this connection became drainable.
    pub wake: tokio::sync::Notify,
    /// Cancelled when a listener of this connection overflowed: the connection must close.
    pub close: CancellationToken,
    /// Whether a listener was ever added on this connection (skips draining otherwise).
    has_listeners: AtomicBool,
}

impl ConnectionSignal {
    /// Whether a listener was ever registered on this connection.
    pub fn has_listeners(&self) -> bool {
        self.has_listeners.load(Ordering::Acquire)
    }
}

/// The server-wide listener state: a registry per cache and a signal per connection.
pub struct Hub {
    watermarks: Watermarks,
    signals: Arc<Signals>,
    /// Registries by cache name, with the cache they are subscribed to (a cache removed and
    /// created again under the same name gets a fresh registry).
    registries: RwLock<HashMap<String, Subscribed>>,
    /// Whether any registry exists: writers skip the congestion lookup until then.
    any: AtomicBool,
    /// The (connection, cache) pairs that registered a bloom-filter near-cache listener; an
    /// UPDATE_BLOOM_FILTER is only accepted there.
    bloom: Mutex<HashSet<(ConnectionId, String)>>,
    next_connection: AtomicU64,
}

struct Subscribed {
    cache: Arc<Cache>,
    registry: Arc<Registry>,
    subscription: SubscriptionId,
}

/// The [`Notify`] shared by every registry.
#[derive(Debug, Default)]
struct Signals {
    connections: Mutex<HashMap<ConnectionId, Arc<ConnectionSignal>>>,
    /// Woken whenever some registry stops being congested.
    cleared: tokio::sync::Notify,
}

impl Notify for Signals {
    fn events_ready(&self, connection: ConnectionId) {
        if let Some(signal) = self.connections.lock().get(&connection) {
            signal.wake.notify_one();
        }
    }

    fn congestion_cleared(&self) {
        self.cleared.notify_waiters();
    }

    fn close_connection(&self, connection: ConnectionId) {
        if let Some(signal) = self.connections.lock().get(&connection) {
            signal.close.cancel();
        }
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("watermarks", &self.watermarks)
            .field("caches", &self.registries.read().len())
            .finish()
    }
}

impl Hub {
    /// A hub whose registries use these bounds (checked by the configuration).
    pub fn new(watermarks: Watermarks) -> Self {
        Hub {
            watermarks,
            signals: Arc::new(Signals::default()),
            registries: RwLock::new(HashMap::new()),
            any: AtomicBool::new(false),
            bloom: Mutex::new(HashSet::new()),
            next_connection: AtomicU64::new(1),
        }
    }

    /// Registers a new connection; call [`Hub::disconnect`] when it ends.
    pub fn connect(&self) -> (ConnectionId, Arc<ConnectionSignal>) {
        let id = ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed));
        let signal = Arc::new(ConnectionSignal {
            wake: tokio::sync::Notify::new(),
            close: CancellationToken::new(),
            has_listeners: AtomicBool::new(false),
        });
        self.signals.connections.lock().insert(id, signal.clone());
        (id, signal)
    }

    /// Drops every listener of a connection that ended.
    pub fn disconnect(&self, connection: ConnectionId) {
        let had = self
            .signals
            .connections
            .lock()
            .remove(&connection)
            .is_some_and(|s| s.has_listeners());
        if had {
            self.bloom.lock().retain(|(c, _)| *c != connection);
            for registry in self.all() {
                registry.remove_connection(connection);
            }
        }
    }

    /// Takes up to `max` queued events of `connection` over all caches.
    pub fn drain(&self, connection: ConnectionId, max: usize) -> Vec<EventRecord> {
        let mut out = Vec::new();
        for registry in self.all() {
            if out.len() >= max {
                break;
            }
            out.extend(registry.drain(connection, max - out.len()));
        }
        out
    }

    /// The registry of `cache` if someone ever listened to it, for back-pressure checks.
    pub fn registry_of(&self, cache_name: &str) -> Option<Arc<Registry>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.registries
            .read()
            .get(cache_name)
            .map(|s| s.registry.clone())
    }

    /// Fires whenever some registry stops being congested. Arm it (`enable`) before checking
    /// [`Registry::is_congested`], so that no wake-up is missed.
    pub fn cleared(&self) -> tokio::sync::futures::Notified<'_> {
        self.signals.cleared.notified()
    }

    /// The registry of `cache`, created and subscribed on first use.
    fn registry(&self, name: &str, cache: &Arc<Cache>) -> Result<Arc<Registry>, EventsError> {
        let mut registries = self.registries.write();
        if let Some(s) = registries.get(name) {
            if Arc::ptr_eq(&s.cache, cache) {
                return Ok(s.registry.clone());
            }
        }
        let registry = Arc::new(Registry::new(self.watermarks, self.signals.clone())?);
        let subscription = cache.subscribe(registry.clone());
        let old = registries.insert(
            name.to_string(),
            Subscribed {
                cache: cache.clone(),
                registry: registry.clone(),
                subscription,
            },
        );
        if let Some(old) = old {
            old.cache.unsubscribe(old.subscription);
        }
        self.any.store(true, Ordering::Release);
        Ok(registry)
    }

    fn all(&self) -> Vec<Arc<Registry>> {
        self.registries
            .read()
            .values()
            .map(|s| s.registry.clone())
            .collect()
    }

    fn mark_listening(&self, connection: ConnectionId) {
        if let Some(signal) = self.signals.connections.lock().get(&connection) {
            signal.has_listeners.store(true, Ordering::Release);
        }
    }
}

/// Appends the event frames of `records` to `out`.
pub fn encode_events(records: &[EventRecord], out: &mut BytesMut) {
    for record in records {
        event_frame(record).encode(out);
    }
}

fn event_frame(record: &EventRecord) -> CacheEvent {
    let kind = match record.kind {
        EventKind::Created => WireKind::Created,
        EventKind::Modified => WireKind::Modified,
        EventKind::Removed => WireKind::Removed,
        _ => WireKind::Expired,
    };
    CacheEvent {
        message_id: record.message_id,
        kind,
        listener_id: record.listener.0.clone(),
        retried: record.retried,
        payload: EventPayload::Plain {
            key: record.key.clone(),
            version: kind_has_version(record.kind).then_some(record.version as i64),
        },
    }
}

fn kind_has_version(kind: EventKind) -> bool {
    kind.carries_version()
}

/// Whether a request writes to its cache (and so must wait while the cache's listeners are
/// congested, `protocol-spec/events.md` §7).
pub fn is_write(opcode: OpCode) -> bool {
    matches!(
        opcode,
        OpCode::PUT
            | OpCode::PUT_IF_ABSENT
            | OpCode::REPLACE
            | OpCode::REPLACE_IF_UNMODIFIED
            | OpCode::REMOVE
            | OpCode::REMOVE_IF_UNMODIFIED
            | OpCode::CLEAR
            | OpCode::PUT_ALL
            | OpCode::PUT_STREAM
            | OpCode::PUT_STREAM_END
    )
}

impl State {
    /// ADD_CLIENT_LISTENER: registers the listener on the cache's registry; with
    /// include-current-state, writes the current entries as created events (with this request's
    /// message id) before the response, as the reference does.
    pub(crate) fn add_listener(
        &self,
        h: &RequestHeader,
        reg: &ListenerRegistration,
        session: &mut Session,
        out: &mut BytesMut,
    ) -> Result<(), Refusal> {
        let cache = self.session_cache(h, session)?;
        let registry = self
            .listeners
            .registry(cache_key(self, h), &cache)
            .map_err(events_refusal)?;
        let spec = spec(h, reg, session.connection);
        let mark = out.len();
        match registry
            .add_listener(spec, h.message_id)
            .map_err(events_refusal)?
        {
            Added::Live => {}
            Added::CurrentState(mut transfer) => {
                let mut iteration = cache.iterate(None).map_err(super::engine_refusal)?;
                loop {
                    let batch = cache.next_batch(&mut iteration, STATE_BATCH);
                    if batch.is_empty() {
                        break;
                    }
                    match transfer.snapshot(&batch) {
                        Ok(records) => encode_events(&records, out),
                        Err(e) => {
                            out.truncate(mark);
                            return Err(events_refusal(e));
                        }
                    }
                }
                if let Err(e) = transfer.finish() {
                    out.truncate(mark);
                    return Err(events_refusal(e));
                }
            }
        }
        self.listeners
            .mark_listening(ConnectionId(session.connection));
        let topology = self.topology(h, &cache, session);
        Response {
            message_id: h.message_id,
            version: h.version,
            opcode: OpCode::ADD_CLIENT_LISTENER_RESPONSE,
            status: Status::SUCCESS,
            topology,
            body: ResponseBody::Empty,
        }
        .encode(out);
        Ok(())
    }

    /// ADD_BLOOM_FILTER_NEAR_CACHE_LISTENER (3.1+): a plain listener for invalidations
    /// (modified, removed, expired) on this connection. The client's bloom filter is not
    /// consulted: every invalidation is sent, which the protocol allows (extra events are false
    /// positives the near cache ignores), `protocol-spec/operations.md` §18.
    pub(crate) fn add_bloom_listener(
        &self,
        h: &RequestHeader,
        listener_id: &bytes::Bytes,
        session: &mut Session,
    ) -> super::Outcome {
        let cache = self.session_cache(h, session)?;
        let name = cache_key(self, h);
        let registry = self
            .listeners
            .registry(name, &cache)
            .map_err(events_refusal)?;
        let connection = ConnectionId(session.connection);
        let mut spec = ListenerSpec::plain(
            ListenerId::new(listener_id.clone()),
            connection,
            h.version.0,
        );
        spec.interests = Interests(0x0E);
        match registry.add_listener(spec, h.message_id) {
            Ok(Added::Live) => {}
            Ok(Added::CurrentState(transfer)) => transfer.abort(),
            Err(e) => return Err(events_refusal(e)),
        }
        self.listeners.mark_listening(connection);
        self.listeners
            .bloom
            .lock()
            .insert((connection, name.to_string()));
        Ok(super::Reply::status(Status::SUCCESS, &cache))
    }

    /// UPDATE_BLOOM_FILTER: accepted (`00`) where a bloom listener of the cache lives, else `01`;
    /// the bits are not used (see [`State::add_bloom_listener`]).
    pub(crate) fn update_bloom_filter(
        &self,
        h: &RequestHeader,
        session: &mut Session,
    ) -> super::Outcome {
        let cache = self.session_cache(h, session)?;
        let known = self.listeners.bloom.lock().contains(&(
            ConnectionId(session.connection),
            cache_key(self, h).to_string(),
        ));
        let status = if known {
            Status::SUCCESS
        } else {
            Status::NOT_EXECUTED
        };
        Ok(super::Reply::status(status, &cache))
    }

    /// REMOVE_CLIENT_LISTENER: from any connection; `01` when the id is unknown.
    pub(crate) fn remove_listener(
        &self,
        h: &RequestHeader,
        listener_id: &bytes::Bytes,
        session: &mut Session,
    ) -> super::Outcome {
        let cache = self.session_cache(h, session)?;
        let removed = self
            .listeners
            .registry_of(cache_key(self, h))
            .is_some_and(|r| r.remove_listener(&ListenerId::new(listener_id.clone())));
        let status = if removed {
            Status::SUCCESS
        } else {
            Status::NOT_EXECUTED
        };
        Ok(super::Reply::status(status, &cache))
    }
}

impl State {
    /// The listener registry of the cache a request names, if anyone ever listened to it; a
    /// write to it waits while it is congested.
    pub fn listened_registry(&self, h: &RequestHeader) -> Option<Arc<Registry>> {
        self.listeners.registry_of(cache_key(self, h))
    }
}

/// The registry key of a request's cache: the empty name is the default cache.
fn cache_key<'a>(state: &'a State, h: &'a RequestHeader) -> &'a str {
    if h.cache_name.is_empty() {
        state.config.default_cache.as_str()
    } else {
        &h.cache_name
    }
}

fn spec(h: &RequestHeader, reg: &ListenerRegistration, connection: u64) -> ListenerSpec {
    let factory = |f: &Option<ironrod_codec::Factory>| {
        f.as_ref().map(|f| FactoryRef {
            name: f.name.clone(),
            params: f.params.clone(),
        })
    };
    let interests = if h.version >= Version::V2_6 {
        Interests(u8::try_from(reg.interests & 0x0F).unwrap_or(0))
    } else {
        Interests::ALL
    };
    ListenerSpec {
        id: ListenerId::new(reg.listener_id.clone()),
        connection: ConnectionId(connection),
        protocol_version: h.version.0,
        include_current_state: reg.include_current_state,
        filter: factory(&reg.filter),
        converter: factory(&reg.converter),
        use_raw_data: reg.raw_data,
        interests,
    }
}

/// Listener failures are server errors (`85`) whose text names the problem (and the factory).
fn events_refusal(e: EventsError) -> Refusal {
    Refusal::server(format!("org.infinispan.commons.CacheException: {e}"))
}
