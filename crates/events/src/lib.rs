//! Ironrod's client-listener core (Hot Rod ADD/REMOVE_CLIENT_LISTENER and event frames).
//!
//! **Owns:** the per-cache listener [`Registry`]: listener registrations ([`ListenerSpec`]),
//! interest filtering, the translation of the engine's change feed into [`EventRecord`]s, the
//! per-listener bounded FIFO queues with back-pressure ([`Watermarks`]), the include-current-state
//! hand-over ([`StateTransfer`]), and the typed refusal of filter/converter factories it does not
//! know ([`EventsError`]).
//!
//! **Does not own:** sockets, timers, tasks and the wire format. The server crate subscribes a
//! registry to each cache (`Cache::subscribe`), encodes records into event frames (reference
//! §18.3, `protocol-spec/events.md` §3) with the listener's protocol version, writes them between
//! response frames, delays writers' responses while [`Registry::is_congested`], and closes the
//! connections this crate reports. It is sans-I/O: the server learns about work through the
//! [`Notify`] hooks it supplies, never through a future of this crate. It must not depend on
//! `ironrod-codec` or tokio.
//!
//! **Not yet:** filter, converter and filter-converter factories (every non-empty factory name is
//! refused with [`EventsError::UnknownFilterFactory`] / [`EventsError::UnknownConverterFactory`],
//! including the reference's built-in `key-value-with-previous-converter-factory` and
//! `___eager-key-value-version-converter`), hence custom (marker 1/2) events, and the `retried`
//! flag (always false: the engine does not report retried commands).

pub mod error;
pub mod listener;
pub mod registry;

pub use error::EventsError;
pub use listener::{
    ConnectionId, EventKind, EventRecord, FactoryRef, Interests, ListenerId, ListenerSpec,
};
pub use registry::{Added, NoNotify, Notify, Registry, StateTransfer, Watermarks};
