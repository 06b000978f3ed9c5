//! Decode and encode errors.
//!
//! A decode error says how far the stream can be trusted: [`DecodeError::Incomplete`] is not a
//! failure at all (wait for more bytes), every other variant means the current frame cannot be
//! parsed and, because Hot Rod frames carry no length, the stream cannot be resynchronised. The
//! server answers with [`DecodeError::status`] under [`DecodeError::message_id`] and then closes.

use crate::codes::{OpCode, Status, Version};

/// Why a request or response could not be decoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ends inside a frame. `needed` is the smallest buffer length at which decoding
    /// can make progress, when it is known, so a caller can avoid re-parsing a large frame on
    /// every small read.
    #[error("incomplete frame")]
    Incomplete { needed: Option<usize> },

    /// The first byte of a frame is not the magic byte of its direction.
    #[error("invalid magic byte {found:#04x}")]
    BadMagic { found: u8 },

    /// A protocol version whose header this codec cannot parse (below 2.0: 1.x headers carry a
    /// transaction field).
    #[error("unknown protocol version {version}")]
    UnknownVersion { message_id: u64, version: u8 },

    /// An opcode whose body layout is unknown, so the rest of the frame cannot be skipped.
    #[error("unknown operation {opcode} (version {version})")]
    UnknownOpcode {
        message_id: u64,
        version: Version,
        opcode: OpCode,
    },

    /// A field could not be parsed.
    #[error("malformed {field}{}: {problem}", Context(*.message_id, *.version, *.opcode))]
    Malformed {
        message_id: Option<u64>,
        version: Option<Version>,
        opcode: Option<OpCode>,
        field: &'static str,
        problem: Problem,
    },

    /// A declared length or count exceeds its configured bound; nothing was allocated for it.
    #[error("{field}{} declares {declared}, over the limit of {limit}", Context(*.message_id, *.version, *.opcode))]
    TooLarge {
        message_id: Option<u64>,
        version: Option<Version>,
        opcode: Option<OpCode>,
        field: &'static str,
        declared: u64,
        limit: usize,
    },
}

/// What exactly was wrong with a malformed field.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    #[error("variable-length integer longer than its type allows")]
    VarIntTooLong,
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("unknown media type kind {0}")]
    MediaTypeKind(u8),
    #[error("unknown metadata flags {0:#04x}")]
    MetadataFlags(u8),
    #[error("topology marker {0} is neither 0 nor 1")]
    TopologyMarker(u8),
    #[error("a chunk of length 0 where a non-empty chunk is required")]
    EmptyChunk,
    #[error("XID part of {0} bytes exceeds 64")]
    XidTooLong(u32),
    #[error("response to a message id with no request in flight")]
    UnexpectedMessageId,
    #[error("unknown response opcode")]
    UnknownResponse,
    #[error("event frame with a non-zero status or topology")]
    EventHeader,
    #[error("unknown event marker {0}")]
    EventMarker(u8),
    #[error("metadata marker {0} is neither 0 nor 1")]
    MetadataMarker(u8),
}

impl DecodeError {
    /// The message id of the failing frame, when it was read.
    pub fn message_id(&self) -> Option<u64> {
        match self {
            DecodeError::Incomplete { .. } | DecodeError::BadMagic { .. } => None,
            DecodeError::UnknownVersion { message_id, .. }
            | DecodeError::UnknownOpcode { message_id, .. } => Some(*message_id),
            DecodeError::Malformed { message_id, .. }
            | DecodeError::TooLarge { message_id, .. } => *message_id,
        }
    }

    /// The version of the failing frame, when it was read.
    pub fn version(&self) -> Option<Version> {
        match self {
            DecodeError::UnknownOpcode { version, .. } => Some(*version),
            DecodeError::UnknownVersion { version, .. } => Some(Version::new(*version)),
            DecodeError::Malformed { version, .. } | DecodeError::TooLarge { version, .. } => {
                *version
            }
            _ => None,
        }
    }

    /// The error status a server answers this error with (protocol-spec `errors.md`).
    pub fn status(&self) -> Status {
        match self {
            DecodeError::BadMagic { .. } => Status::INVALID_MAGIC_OR_MESSAGE_ID,
            DecodeError::UnknownOpcode { .. } => Status::UNKNOWN_OPERATION,
            // The reference has not sent 0x83 since 9.4; clients treat any 0x8x alike.
            DecodeError::UnknownVersion { .. }
            | DecodeError::Incomplete { .. }
            | DecodeError::Malformed { .. }
            | DecodeError::TooLarge { .. } => Status::PARSE_ERROR,
        }
    }

    /// True when more bytes may complete the frame.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, DecodeError::Incomplete { .. })
    }

    pub(crate) fn with_context(mut self, id: u64, v: Version, op: Option<OpCode>) -> Self {
        if let DecodeError::UnknownOpcode { message_id, .. } = &mut self {
            *message_id = id;
        }
        if let DecodeError::Malformed {
            message_id,
            version,
            opcode,
            ..
        }
        | DecodeError::TooLarge {
            message_id,
            version,
            opcode,
            ..
        } = &mut self
        {
            *message_id = message_id.or(Some(id));
            *version = version.or(Some(v));
            *opcode = opcode.or(op);
        }
        self
    }
}

/// Errors of the encoders. Encoding only fails when a value cannot be represented in the version
/// it is encoded for, or on an I/O error of the sink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("{what} cannot be encoded at protocol version {version}")]
    Unrepresentable {
        what: &'static str,
        version: Version,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Errors of the tokio-util codecs: a decode or encode failure, or the transport's I/O error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(EncodeError),
    #[error(transparent)]
    Io(std::io::Error),
}

impl From<std::io::Error> for CodecError {
    fn from(e: std::io::Error) -> Self {
        CodecError::Io(e)
    }
}

impl From<EncodeError> for CodecError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::Io(io) => CodecError::Io(io),
            other => CodecError::Encode(other),
        }
    }
}

struct Context(Option<u64>, Option<Version>, Option<OpCode>);

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(op) = self.2 {
            write!(f, " of {op}")?;
        }
        if let Some(v) = self.1 {
            write!(f, " (version {v})")?;
        }
        if let Some(id) = self.0 {
            write!(f, " in message {id}")?;
        }
        Ok(())
    }
}
