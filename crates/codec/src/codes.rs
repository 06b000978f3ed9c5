//! Wire codes as open newtypes: every byte value round-trips, and the known ones have names.
//!
//! Hot Rod peers of different releases disagree on which codes exist (a 15.1 client sends the 4.1
//! stream opcodes to a 4.0 server), so a closed enum would turn an unknown code into a decode
//! failure before the server could answer it properly.

use std::fmt;

macro_rules! wire_code {
    ($(#[$doc:meta])* $name:ident($repr:ty) { $($(#[$cdoc:meta])* $konst:ident = $val:expr, $text:expr;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $repr);

        impl $name {
            $($(#[$cdoc])* pub const $konst: $name = $name($val);)*

            /// The name the protocol gives this code, if it is a known one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some($text),)*
                    _ => None,
                }
            }

            /// Every known code.
            pub const KNOWN: &'static [$name] = &[$($name($val)),*];
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{}({:#x})", n, self.0),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{:#x}", self.0),
                }
            }
        }
    };
}

/// A protocol version byte, `major * 10 + minor`.
///
/// Layouts are chosen by threshold comparisons (`>= 2.2`, `>= 2.8`, ...) exactly as the reference
/// server's grammar does, so an unknown version such as 3.5 or 4.2 is still parsed with the
/// newest rules it passes; [`Version::is_known`] tells the server whether to serve or refuse it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u8);

impl Version {
    pub const V2_0: Version = Version(20);
    pub const V2_1: Version = Version(21);
    pub const V2_2: Version = Version(22);
    pub const V2_3: Version = Version(23);
    pub const V2_4: Version = Version(24);
    pub const V2_5: Version = Version(25);
    pub const V2_6: Version = Version(26);
    pub const V2_7: Version = Version(27);
    pub const V2_8: Version = Version(28);
    pub const V2_9: Version = Version(29);
    pub const V3_0: Version = Version(30);
    pub const V3_1: Version = Version(31);
    pub const V4_0: Version = Version(40);
    pub const V4_1: Version = Version(41);

    /// Every version this codec implements, oldest first.
    pub const KNOWN: [Version; 14] = [
        Version(20),
        Version(21),
        Version(22),
        Version(23),
        Version(24),
        Version(25),
        Version(26),
        Version(27),
        Version(28),
        Version(29),
        Version(30),
        Version(31),
        Version(40),
        Version(41),
    ];

    /// The newest version this codec implements.
    pub const LATEST: Version = Version::V4_1;

    pub const fn new(byte: u8) -> Version {
        Version(byte)
    }

    pub const fn byte(self) -> u8 {
        self.0
    }

    pub fn is_known(self) -> bool {
        Version::KNOWN.contains(&self)
    }

    /// True for the 2.x versions, whose expiration values above 30 days are absolute times.
    pub fn is_2x(self) -> bool {
        self.0 < 30
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

wire_code! {
    /// An operation code: request opcodes, response opcodes and the event and error frames.
    OpCode(u8) {
        PUT = 0x01, "PUT";
        PUT_RESPONSE = 0x02, "PUT_RESPONSE";
        GET = 0x03, "GET";
        GET_RESPONSE = 0x04, "GET_RESPONSE";
        PUT_IF_ABSENT = 0x05, "PUT_IF_ABSENT";
        PUT_IF_ABSENT_RESPONSE = 0x06, "PUT_IF_ABSENT_RESPONSE";
        REPLACE = 0x07, "REPLACE";
        REPLACE_RESPONSE = 0x08, "REPLACE_RESPONSE";
        REPLACE_IF_UNMODIFIED = 0x09, "REPLACE_IF_UNMODIFIED";
        REPLACE_IF_UNMODIFIED_RESPONSE = 0x0A, "REPLACE_IF_UNMODIFIED_RESPONSE";
        REMOVE = 0x0B, "REMOVE";
        REMOVE_RESPONSE = 0x0C, "REMOVE_RESPONSE";
        REMOVE_IF_UNMODIFIED = 0x0D, "REMOVE_IF_UNMODIFIED";
        REMOVE_IF_UNMODIFIED_RESPONSE = 0x0E, "REMOVE_IF_UNMODIFIED_RESPONSE";
        CONTAINS_KEY = 0x0F, "CONTAINS_KEY";
        CONTAINS_KEY_RESPONSE = 0x10, "CONTAINS_KEY_RESPONSE";
        GET_WITH_VERSION = 0x11, "GET_WITH_VERSION";
        GET_WITH_VERSION_RESPONSE = 0x12, "GET_WITH_VERSION_RESPONSE";
        CLEAR = 0x13, "CLEAR";
        CLEAR_RESPONSE = 0x14, "CLEAR_RESPONSE";
        STATS = 0x15, "STATS";
        STATS_RESPONSE = 0x16, "STATS_RESPONSE";
        PING = 0x17, "PING";
        PING_RESPONSE = 0x18, "PING_RESPONSE";
        BULK_GET = 0x19, "BULK_GET";
        BULK_GET_RESPONSE = 0x1A, "BULK_GET_RESPONSE";
        GET_WITH_METADATA = 0x1B, "GET_WITH_METADATA";
        GET_WITH_METADATA_RESPONSE = 0x1C, "GET_WITH_METADATA_RESPONSE";
        BULK_GET_KEYS = 0x1D, "BULK_GET_KEYS";
        BULK_GET_KEYS_RESPONSE = 0x1E, "BULK_GET_KEYS_RESPONSE";
        QUERY = 0x1F, "QUERY";
        QUERY_RESPONSE = 0x20, "QUERY_RESPONSE";
        AUTH_MECH_LIST = 0x21, "AUTH_MECH_LIST";
        AUTH_MECH_LIST_RESPONSE = 0x22, "AUTH_MECH_LIST_RESPONSE";
        AUTH = 0x23, "AUTH";
        AUTH_RESPONSE = 0x24, "AUTH_RESPONSE";
        ADD_CLIENT_LISTENER = 0x25, "ADD_CLIENT_LISTENER";
        ADD_CLIENT_LISTENER_RESPONSE = 0x26, "ADD_CLIENT_LISTENER_RESPONSE";
        REMOVE_CLIENT_LISTENER = 0x27, "REMOVE_CLIENT_LISTENER";
        REMOVE_CLIENT_LISTENER_RESPONSE = 0x28, "REMOVE_CLIENT_LISTENER_RESPONSE";
        SIZE = 0x29, "SIZE";
        SIZE_RESPONSE = 0x2A, "SIZE_RESPONSE";
        EXEC = 0x2B, "EXEC";
        EXEC_RESPONSE = 0x2C, "EXEC_RESPONSE";
        PUT_ALL = 0x2D, "PUT_ALL";
        PUT_ALL_RESPONSE = 0x2E, "PUT_ALL_RESPONSE";
        GET_ALL = 0x2F, "GET_ALL";
        GET_ALL_RESPONSE = 0x30, "GET_ALL_RESPONSE";
        ITERATION_START = 0x31, "ITERATION_START";
        ITERATION_START_RESPONSE = 0x32, "ITERATION_START_RESPONSE";
        ITERATION_NEXT = 0x33, "ITERATION_NEXT";
        ITERATION_NEXT_RESPONSE = 0x34, "ITERATION_NEXT_RESPONSE";
        ITERATION_END = 0x35, "ITERATION_END";
        ITERATION_END_RESPONSE = 0x36, "ITERATION_END_RESPONSE";
        GET_STREAM = 0x37, "GET_STREAM";
        GET_STREAM_RESPONSE = 0x38, "GET_STREAM_RESPONSE";
        PUT_STREAM = 0x39, "PUT_STREAM";
        PUT_STREAM_RESPONSE = 0x3A, "PUT_STREAM_RESPONSE";
        PREPARE_TX = 0x3B, "PREPARE_TX";
        PREPARE_TX_RESPONSE = 0x3C, "PREPARE_TX_RESPONSE";
        COMMIT_TX = 0x3D, "COMMIT_TX";
        COMMIT_TX_RESPONSE = 0x3E, "COMMIT_TX_RESPONSE";
        ROLLBACK_TX = 0x3F, "ROLLBACK_TX";
        ROLLBACK_TX_RESPONSE = 0x40, "ROLLBACK_TX_RESPONSE";
        ADD_BLOOM_FILTER_LISTENER = 0x41, "ADD_BLOOM_FILTER_NEAR_CACHE_LISTENER";
        ADD_BLOOM_FILTER_LISTENER_RESPONSE = 0x42, "ADD_BLOOM_FILTER_NEAR_CACHE_LISTENER_RESPONSE";
        UPDATE_BLOOM_FILTER = 0x43, "UPDATE_BLOOM_FILTER";
        UPDATE_BLOOM_FILTER_RESPONSE = 0x44, "UPDATE_BLOOM_FILTER_RESPONSE";
        COUNTER_CREATE = 0x4B, "COUNTER_CREATE";
        COUNTER_CREATE_RESPONSE = 0x4C, "COUNTER_CREATE_RESPONSE";
        COUNTER_GET_CONFIGURATION = 0x4D, "COUNTER_GET_CONFIGURATION";
        COUNTER_GET_CONFIGURATION_RESPONSE = 0x4E, "COUNTER_GET_CONFIGURATION_RESPONSE";
        COUNTER_IS_DEFINED = 0x4F, "COUNTER_IS_DEFINED";
        /// The error frame. It is also why COUNTER_IS_DEFINED answers with 0x51.
        ERROR = 0x50, "ERROR";
        COUNTER_IS_DEFINED_RESPONSE = 0x51, "COUNTER_IS_DEFINED_RESPONSE";
        COUNTER_ADD_AND_GET = 0x52, "COUNTER_ADD_AND_GET";
        COUNTER_ADD_AND_GET_RESPONSE = 0x53, "COUNTER_ADD_AND_GET_RESPONSE";
        COUNTER_RESET = 0x54, "COUNTER_RESET";
        COUNTER_RESET_RESPONSE = 0x55, "COUNTER_RESET_RESPONSE";
        COUNTER_GET = 0x56, "COUNTER_GET";
        COUNTER_GET_RESPONSE = 0x57, "COUNTER_GET_RESPONSE";
        COUNTER_CAS = 0x58, "COUNTER_CAS";
        COUNTER_CAS_RESPONSE = 0x59, "COUNTER_CAS_RESPONSE";
        COUNTER_ADD_LISTENER = 0x5A, "COUNTER_ADD_LISTENER";
        COUNTER_ADD_LISTENER_RESPONSE = 0x5B, "COUNTER_ADD_LISTENER_RESPONSE";
        COUNTER_REMOVE_LISTENER = 0x5C, "COUNTER_REMOVE_LISTENER";
        COUNTER_REMOVE_LISTENER_RESPONSE = 0x5D, "COUNTER_REMOVE_LISTENER_RESPONSE";
        COUNTER_REMOVE = 0x5E, "COUNTER_REMOVE";
        COUNTER_REMOVE_RESPONSE = 0x5F, "COUNTER_REMOVE_RESPONSE";
        CACHE_ENTRY_CREATED_EVENT = 0x60, "CACHE_ENTRY_CREATED_EVENT";
        CACHE_ENTRY_MODIFIED_EVENT = 0x61, "CACHE_ENTRY_MODIFIED_EVENT";
        CACHE_ENTRY_REMOVED_EVENT = 0x62, "CACHE_ENTRY_REMOVED_EVENT";
        CACHE_ENTRY_EXPIRED_EVENT = 0x63, "CACHE_ENTRY_EXPIRED_EVENT";
        COUNTER_GET_NAMES = 0x64, "COUNTER_GET_NAMES";
        COUNTER_GET_NAMES_RESPONSE = 0x65, "COUNTER_GET_NAMES_RESPONSE";
        COUNTER_EVENT = 0x66, "COUNTER_EVENT";
        MULTIMAP_GET = 0x67, "MULTIMAP_GET";
        MULTIMAP_GET_RESPONSE = 0x68, "MULTIMAP_GET_RESPONSE";
        MULTIMAP_GET_WITH_METADATA = 0x69, "MULTIMAP_GET_WITH_METADATA";
        MULTIMAP_GET_WITH_METADATA_RESPONSE = 0x6A, "MULTIMAP_GET_WITH_METADATA_RESPONSE";
        MULTIMAP_PUT = 0x6B, "MULTIMAP_PUT";
        MULTIMAP_PUT_RESPONSE = 0x6C, "MULTIMAP_PUT_RESPONSE";
        MULTIMAP_REMOVE_KEY = 0x6D, "MULTIMAP_REMOVE_KEY";
        MULTIMAP_REMOVE_KEY_RESPONSE = 0x6E, "MULTIMAP_REMOVE_KEY_RESPONSE";
        MULTIMAP_REMOVE_ENTRY = 0x6F, "MULTIMAP_REMOVE_ENTRY";
        MULTIMAP_REMOVE_ENTRY_RESPONSE = 0x70, "MULTIMAP_REMOVE_ENTRY_RESPONSE";
        MULTIMAP_SIZE = 0x71, "MULTIMAP_SIZE";
        MULTIMAP_SIZE_RESPONSE = 0x72, "MULTIMAP_SIZE_RESPONSE";
        MULTIMAP_CONTAINS_ENTRY = 0x73, "MULTIMAP_CONTAINS_ENTRY";
        MULTIMAP_CONTAINS_ENTRY_RESPONSE = 0x74, "MULTIMAP_CONTAINS_ENTRY_RESPONSE";
        MULTIMAP_CONTAINS_KEY = 0x75, "MULTIMAP_CONTAINS_KEY";
        MULTIMAP_CONTAINS_KEY_RESPONSE = 0x76, "MULTIMAP_CONTAINS_KEY_RESPONSE";
        MULTIMAP_CONTAINS_VALUE = 0x77, "MULTIMAP_CONTAINS_VALUE";
        MULTIMAP_CONTAINS_VALUE_RESPONSE = 0x78, "MULTIMAP_CONTAINS_VALUE_RESPONSE";
        FORGET_TX = 0x79, "FORGET_TX";
        FORGET_TX_RESPONSE = 0x7A, "FORGET_TX_RESPONSE";
        FETCH_TX_RECOVERY = 0x7B, "FETCH_TX_RECOVERY";
        FETCH_TX_RECOVERY_RESPONSE = 0x7C, "FETCH_TX_RECOVERY_RESPONSE";
        PREPARE_TX_2 = 0x7D, "PREPARE_TX_2";
        PREPARE_TX_2_RESPONSE = 0x7E, "PREPARE_TX_2_RESPONSE";
        COUNTER_GET_AND_SET = 0x7F, "COUNTER_GET_AND_SET";
        COUNTER_GET_AND_SET_RESPONSE = 0x80, "COUNTER_GET_AND_SET_RESPONSE";
        GET_STREAM_END_RESPONSE = 0xE4, "GET_STREAM_END_RESPONSE";
        GET_STREAM_END = 0xE5, "GET_STREAM_END";
        GET_STREAM_NEXT_RESPONSE = 0xE6, "GET_STREAM_NEXT_RESPONSE";
        GET_STREAM_NEXT = 0xE7, "GET_STREAM_NEXT";
        GET_STREAM_START_RESPONSE = 0xE8, "GET_STREAM_START_RESPONSE";
        GET_STREAM_START = 0xE9, "GET_STREAM_START";
        PUT_STREAM_END_RESPONSE = 0xEA, "PUT_STREAM_END_RESPONSE";
        PUT_STREAM_END = 0xEB, "PUT_STREAM_END";
        PUT_STREAM_NEXT_RESPONSE = 0xEC, "PUT_STREAM_NEXT_RESPONSE";
        PUT_STREAM_NEXT = 0xED, "PUT_STREAM_NEXT";
        PUT_STREAM_START_RESPONSE = 0xEE, "PUT_STREAM_START_RESPONSE";
        PUT_STREAM_START = 0xEF, "PUT_STREAM_START";
    }
}

impl OpCode {
    /// The opcode of the response to this request opcode.
    ///
    /// Requests are odd and answered by the next code, except COUNTER_IS_DEFINED (0x4F → 0x51,
    /// 0x50 being the error frame) and the 4.1 stream operations, which count downwards.
    pub fn response(self) -> OpCode {
        match self.0 {
            0x4F => OpCode(0x51),
            0xE4..=0xEF => OpCode(self.0.wrapping_sub(1)),
            other => OpCode(other.wrapping_add(1)),
        }
    }

    /// Every request opcode a client may send.
    pub const REQUESTS: &'static [OpCode] = &[
        OpCode::PUT,
        OpCode::GET,
        OpCode::PUT_IF_ABSENT,
        OpCode::REPLACE,
        OpCode::REPLACE_IF_UNMODIFIED,
        OpCode::REMOVE,
        OpCode::REMOVE_IF_UNMODIFIED,
        OpCode::CONTAINS_KEY,
        OpCode::GET_WITH_VERSION,
        OpCode::CLEAR,
        OpCode::STATS,
        OpCode::PING,
        OpCode::BULK_GET,
        OpCode::GET_WITH_METADATA,
        OpCode::BULK_GET_KEYS,
        OpCode::QUERY,
        OpCode::AUTH_MECH_LIST,
        OpCode::AUTH,
        OpCode::ADD_CLIENT_LISTENER,
        OpCode::REMOVE_CLIENT_LISTENER,
        OpCode::SIZE,
        OpCode::EXEC,
        OpCode::PUT_ALL,
        OpCode::GET_ALL,
        OpCode::ITERATION_START,
        OpCode::ITERATION_NEXT,
        OpCode::ITERATION_END,
        OpCode::GET_STREAM,
        OpCode::PUT_STREAM,
        OpCode::PREPARE_TX,
        OpCode::COMMIT_TX,
        OpCode::ROLLBACK_TX,
        OpCode::ADD_BLOOM_FILTER_LISTENER,
        OpCode::UPDATE_BLOOM_FILTER,
        OpCode::COUNTER_CREATE,
        OpCode::COUNTER_GET_CONFIGURATION,
        OpCode::COUNTER_IS_DEFINED,
        OpCode::COUNTER_ADD_AND_GET,
        OpCode::COUNTER_RESET,
        OpCode::COUNTER_GET,
        OpCode::COUNTER_CAS,
        OpCode::COUNTER_ADD_LISTENER,
        OpCode::COUNTER_REMOVE_LISTENER,
        OpCode::COUNTER_REMOVE,
        OpCode::COUNTER_GET_NAMES,
        OpCode::MULTIMAP_GET,
        OpCode::MULTIMAP_GET_WITH_METADATA,
        OpCode::MULTIMAP_PUT,
        OpCode::MULTIMAP_REMOVE_KEY,
        OpCode::MULTIMAP_REMOVE_ENTRY,
        OpCode::MULTIMAP_SIZE,
        OpCode::MULTIMAP_CONTAINS_ENTRY,
        OpCode::MULTIMAP_CONTAINS_KEY,
        OpCode::MULTIMAP_CONTAINS_VALUE,
        OpCode::FORGET_TX,
        OpCode::FETCH_TX_RECOVERY,
        OpCode::PREPARE_TX_2,
        OpCode::COUNTER_GET_AND_SET,
        OpCode::PUT_STREAM_START,
        OpCode::PUT_STREAM_NEXT,
        OpCode::PUT_STREAM_END,
        OpCode::GET_STREAM_START,
        OpCode::GET_STREAM_NEXT,
        OpCode::GET_STREAM_END,
    ];

    /// True for an opcode a client may send.
    pub fn is_request(self) -> bool {
        OpCode::REQUESTS.contains(&self)
    }

    /// The request opcode that this response opcode answers, if it is a response opcode.
    pub fn request(self) -> Option<OpCode> {
        OpCode::REQUESTS
            .iter()
            .copied()
            .find(|req| req.response() == self)
    }

    /// True for the cache-event opcodes 0x60–0x63.
    pub fn is_cache_event(self) -> bool {
        (0x60..=0x63).contains(&self.0)
    }
}

wire_code! {
    /// A response status.
    Status(u8) {
        SUCCESS = 0x00, "SUCCESS";
        NOT_EXECUTED = 0x01, "OPERATION_NOT_EXECUTED";
        KEY_DOES_NOT_EXIST = 0x02, "KEY_DOES_NOT_EXIST";
        SUCCESS_WITH_PREVIOUS = 0x03, "SUCCESS_WITH_PREVIOUS";
        NOT_EXECUTED_WITH_PREVIOUS = 0x04, "NOT_EXECUTED_WITH_PREVIOUS";
        INVALID_ITERATION = 0x05, "INVALID_ITERATION";
        SUCCESS_OBJ_STORAGE = 0x06, "SUCCESS_OBJ_STORAGE";
        SUCCESS_WITH_PREVIOUS_OBJ_STORAGE = 0x07, "SUCCESS_WITH_PREVIOUS_OBJ_STORAGE";
        NOT_EXECUTED_WITH_PREVIOUS_OBJ_STORAGE = 0x08, "NOT_EXECUTED_WITH_PREVIOUS_OBJ_STORAGE";
        INVALID_MAGIC_OR_MESSAGE_ID = 0x81, "INVALID_MAGIC_OR_MESSAGE_ID";
        UNKNOWN_OPERATION = 0x82, "UNKNOWN_OPERATION";
        UNKNOWN_VERSION = 0x83, "UNKNOWN_VERSION";
        PARSE_ERROR = 0x84, "PARSE_ERROR";
        SERVER_ERROR = 0x85, "SERVER_ERROR";
        OPERATION_TIMED_OUT = 0x86, "OPERATION_TIMED_OUT";
        NODE_SUSPECTED = 0x87, "NODE_SUSPECTED";
        ILLEGAL_LIFECYCLE_STATE = 0x88, "ILLEGAL_LIFECYCLE_STATE";
    }
}

impl Status {
    /// Success statuses, as clients group them.
    pub fn is_success(self) -> bool {
        matches!(self.0, 0x00 | 0x03 | 0x06 | 0x07)
    }

    /// Statuses after which a cache write's response carries a previous value.
    pub fn has_previous(self) -> bool {
        matches!(self.0, 0x03 | 0x04 | 0x07 | 0x08)
    }

    /// Error statuses (the 0x8x range).
    pub fn is_error(self) -> bool {
        self.0 >= 0x81
    }
}

wire_code! {
    /// A predefined media type id (`MediaTypeIds` of the reference implementation).
    MediaTypeId(u32) {
        JAVA_OBJECT = 1, "application/x-java-object";
        JSON = 2, "application/json";
        OCTET_STREAM = 3, "application/octet-stream";
        PDF = 4, "application/pdf";
        RTF = 5, "application/rtf";
        ZIP = 6, "application/zip";
        GIF = 7, "image/gif";
        JPEG = 8, "image/jpeg";
        PNG = 9, "image/png";
        CSS = 10, "text/css";
        CSV = 11, "text/csv";
        PROTOSTREAM = 12, "application/x-protostream";
        TEXT_PLAIN = 13, "text/plain";
        HTML = 14, "text/html";
        JBOSS_MARSHALLING = 15, "application/x-jboss-marshalling";
        INFINISPAN_MARSHALLING = 16, "application/x-infinispan-marshalling";
        UNKNOWN = 17, "application/unknown";
    }
}

impl MediaTypeId {
    /// The predefined id of a `type/subtype` name, if it has one.
    pub fn for_name(name: &str) -> Option<MediaTypeId> {
        MediaTypeId::KNOWN
            .iter()
            .copied()
            .find(|id| id.name().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }
}

/// The request flags bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u32);

impl Flags {
    pub const FORCE_RETURN_VALUE: Flags = Flags(0x01);
    /// Before 2.2: a lifespan of 0 means the cache default rather than immortal.
    pub const DEFAULT_LIFESPAN: Flags = Flags(0x02);
    /// Before 2.2: a max-idle of 0 means the cache default rather than immortal.
    pub const DEFAULT_MAX_IDLE: Flags = Flags(0x04);
    pub const SKIP_CACHE_LOAD: Flags = Flags(0x08);
    pub const SKIP_INDEXING: Flags = Flags(0x10);
    pub const SKIP_LISTENER_NOTIFICATION: Flags = Flags(0x20);

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({:#x})", self.0)
    }
}

wire_code! {
    /// How much of the cluster topology a client wants to hear about.
    Intelligence(u8) {
        BASIC = 1, "BASIC";
        TOPOLOGY_AWARE = 2, "TOPOLOGY_AWARE";
        HASH_DISTRIBUTION_AWARE = 3, "HASH_DISTRIBUTION_AWARE";
    }
}

wire_code! {
    /// A time unit of the 2.2+ expiration parameters (one nibble on the wire).
    TimeUnit(u8) {
        SECONDS = 0, "SECONDS";
        MILLISECONDS = 1, "MILLISECONDS";
        NANOSECONDS = 2, "NANOSECONDS";
        MICROSECONDS = 3, "MICROSECONDS";
        MINUTES = 4, "MINUTES";
        HOURS = 5, "HOURS";
        DAYS = 6, "DAYS";
    }
}

impl TimeUnit {
    /// The duration `amount` of this unit in milliseconds, saturating; sub-millisecond units
    /// truncate.
    pub fn to_millis(self, amount: u64) -> u64 {
        match self.0 {
            0 => amount.saturating_mul(1_000),
            1 => amount,
            2 => amount / 1_000_000,
            3 => amount / 1_000,
            4 => amount.saturating_mul(60_000),
            5 => amount.saturating_mul(3_600_000),
            _ => amount.saturating_mul(86_400_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_opcodes_pair_with_requests() {
        assert_eq!(OpCode::PUT.response(), OpCode::PUT_RESPONSE);
        assert_eq!(OpCode::COUNTER_IS_DEFINED.response(), OpCode(0x51));
        assert_eq!(OpCode::PUT_STREAM_START.response(), OpCode(0xEE));
        assert_eq!(OpCode::GET_STREAM_END.response(), OpCode(0xE4));
        assert_eq!(OpCode(0x51).request(), Some(OpCode::COUNTER_IS_DEFINED));
        assert_eq!(OpCode(0x50).request(), None);
        assert_eq!(OpCode(0x60).request(), None);
        assert_eq!(OpCode(0xE4).request(), Some(OpCode::GET_STREAM_END));
        for op in OpCode::KNOWN {
            if let Some(req) = op.request() {
                assert_eq!(req.response(), *op);
            }
        }
    }

    #[test]
    fn versions_display() {
        assert_eq!(Version::V2_9.to_string(), "2.9");
        assert_eq!(Version::V4_1.to_string(), "4.1");
        assert!(!Version(32).is_known());
        assert!(Version::V3_1.is_known());
    }

    #[test]
    fn media_type_names() {
        assert_eq!(
            MediaTypeId::for_name("text/plain"),
            Some(MediaTypeId::TEXT_PLAIN)
        );
        assert_eq!(MediaTypeId::for_name("foo/bar"), None);
    }
}
