//! The value types of the listener feature: ids, registrations, interests and event records.

use std::fmt;

use bytes::Bytes;
use ironrod_engine::ChangeKind;

/// The server's identifier of a client connection; events of a listener go to the connection
/// that registered it (`protocol-spec/events.md` §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// A listener id as the client chose it: opaque bytes (Java: 16 random bytes; JS: a UTF-8
/// string). Cheap to clone, since every event record carries it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub Bytes);

impl ListenerId {
    /// An id from its bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    /// The id's bytes, as the event frame carries them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ListenerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ListenerId({self})")
    }
}

impl fmt::Display for ListenerId {
    /// Hex, because Java ids are random bytes rather than text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// What an event reports; the event frame's opcode follows from it (0x60–0x63).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A key got an entry (0x60); the frame carries key and version.
    Created,
    /// A key's entry was replaced (0x61); the frame carries key and version.
    Modified,
    /// A key's entry was removed (0x62); the frame carries the key.
    Removed,
    /// A key's entry expired (0x63); the frame carries the key.
    Expired,
}

impl EventKind {
    /// The Hot Rod response opcode of the event frame.
    pub fn opcode(self) -> u8 {
        match self {
            Self::Created => 0x60,
            Self::Modified => 0x61,
            Self::Removed => 0x62,
            Self::Expired => 0x63,
        }
    }

    /// Whether the frame carries the entry version after the key (created and modified only).
    pub fn carries_version(self) -> bool {
        matches!(self, Self::Created | Self::Modified)
    }

    /// The event for an engine change; `None` for change kinds this crate does not know yet
    /// (the engine's enum is non-exhaustive), which are then not notified.
    pub fn from_change(kind: ChangeKind) -> Option<Self> {
        match kind {
            ChangeKind::Created => Some(Self::Created),
            ChangeKind::Modified => Some(Self::Modified),
            ChangeKind::Removed => Some(Self::Removed),
            ChangeKind::Expired => Some(Self::Expired),
            _ => None,
        }
    }
}

/// Which event kinds a listener wants (ADD_CLIENT_LISTENER `interests`, version >= 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interests(pub u8);

impl Interests {
    /// Created events.
    pub const CREATED: Self = Self(0x01);
    /// Modified events.
    pub const MODIFIED: Self = Self(0x02);
    /// Removed events.
    pub const REMOVED: Self = Self(0x04);
    /// Expired events.
    pub const EXPIRED: Self = Self(0x08);
    /// All four; the wire value 0 means the same, and so does a request from a version before 2.6
    /// that cannot carry interests.
    pub const ALL: Self = Self(0x0F);

    /// Whether events of `kind` are wanted. 0 counts as all (reference §18.1 and §18.3).
    pub fn includes(self, kind: EventKind) -> bool {
        if self.0 == 0 {
            return true;
        }
        let bit = match kind {
            EventKind::Created => Self::CREATED.0,
            EventKind::Modified => Self::MODIFIED.0,
            EventKind::Removed => Self::REMOVED.0,
            EventKind::Expired => Self::EXPIRED.0,
        };
        self.0 & bit != 0
    }
}

impl Default for Interests {
    fn default() -> Self {
        Self::ALL
    }
}

/// A filter or converter factory named by ADD_CLIENT_LISTENER, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FactoryRef {
    /// The factory name; never empty (an empty name on the wire means "none").
    pub name: String,
    /// The parameters, as opaque byte arrays.
    pub params: Vec<Bytes>,
}

/// Everything ADD_CLIENT_LISTENER registers, plus what the server knows about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The client's listener id.
    pub id: ListenerId,
    /// The connection the request came on; events go there and the listener ends with it.
    pub connection: ConnectionId,
    /// The Hot Rod version of the request (e.g. 40 for 4.0); events are encoded with it
    /// (`protocol-spec/events.md` §4), so every record carries it.
    pub protocol_version: u8,
    /// Whether the current entries are sent as created events first.
    pub include_current_state: bool,
    /// The filter factory; `None` for an empty name.
    pub filter: Option<FactoryRef>,
    /// The converter factory; `None` for an empty name.
    pub converter: Option<FactoryRef>,
    /// Whether custom events use the raw marker (2); only meaningful with a converter.
    pub use_raw_data: bool,
    /// The kinds of events wanted.
    pub interests: Interests,
}

impl ListenerSpec {
    /// A plain listener (no state, filter or converter, all interests).
    pub fn plain(id: ListenerId, connection: ConnectionId, protocol_version: u8) -> Self {
        Self {
            id,
            connection,
            protocol_version,
            include_current_state: false,
            filter: None,
            converter: None,
            use_raw_data: false,
            interests: Interests::ALL,
        }
    }
}

/// One event, owned and ready for the server to encode as an event frame (reference §18.3).
///
/// Small on purpose: key bytes and listener id are reference-counted, the value never leaves the
/// server for plain events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The listener the event is for.
    pub listener: ListenerId,
    /// What happened; gives the opcode.
    pub kind: EventKind,
    /// The key.
    pub key: Bytes,
    /// For created/modified the entry's version (written in the frame, compared by Keycloak with
    /// GET_WITH_METADATA's). For removed/expired the removal's version, which the frame does not
    /// carry but which orders the key's events.
    pub version: u64,
    /// The frame's message id: the ADD_CLIENT_LISTENER request's for include-current-state
    /// events, 0 for all others (reference §18.4).
    pub message_id: u64,
    /// The Hot Rod version to encode the frame with (the ADD_CLIENT_LISTENER request's).
    pub protocol_version: u8,
    /// Whether the change came from a retried command; always false for now.
    pub retried: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interests_zero_means_all() {
        for kind in [
            EventKind::Created,
            EventKind::Modified,
            EventKind::Removed,
            EventKind::Expired,
        ] {
            assert!(Interests(0).includes(kind));
            assert!(Interests::ALL.includes(kind));
        }
        let near_cache = Interests(0x0E);
        assert!(!near_cache.includes(EventKind::Created));
        assert!(near_cache.includes(EventKind::Modified));
        assert!(near_cache.includes(EventKind::Removed));
        assert!(near_cache.includes(EventKind::Expired));
        assert!(!Interests::EXPIRED.includes(EventKind::Removed));
    }

    #[test]
    fn opcodes_and_ids() {
        assert_eq!(EventKind::Created.opcode(), 0x60);
        assert_eq!(EventKind::Expired.opcode(), 0x63);
        assert!(EventKind::Modified.carries_version());
        assert!(!EventKind::Removed.carries_version());
        assert_eq!(ListenerId::new(&b"\x01\xab"[..]).to_string(), "01ab");
    }
}
