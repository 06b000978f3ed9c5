//! The texts of error responses.
//!
//! Clients match on some of them (the Java and JS clients both look for
//! `CacheNotFoundException`), so where the reference server's text matters it is mirrored;
//! elsewhere the text says exactly what was wrong.

use ironrod_codec::{DecodeError, OpCode, Status, Version};

/// A request that failed after it was parsed: the connection stays usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: Status,
    pub message: String,
}

impl Refusal {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    pub fn server(message: impl Into<String>) -> Self {
        Refusal::new(Status::SERVER_ERROR, message)
    }

    pub fn cache_not_found(name: &str) -> Self {
        Refusal::new(
            Status::PARSE_ERROR,
            format!(
                "org.infinispan.server.hotrod.CacheNotFoundException: Cache with name '{name}' not found amongst the configured caches"
            ),
        )
    }

    pub fn unknown_version(version: Version) -> Self {
        Refusal::new(
            Status::PARSE_ERROR,
            format!(
                "org.infinispan.server.hotrod.UnknownVersionException: Unknown version {version}: Ironrod speaks Hot Rod 2.0-2.9, 3.0, 3.1, 4.0 and 4.1"
            ),
        )
    }

    /// An operation Ironrod does not implement (yet); README lists them.
    pub fn unsupported(op: OpCode, what: &str) -> Self {
        Refusal::server(format!(
            "java.lang.UnsupportedOperationException: Ironrod does not implement {op} ({what}); see the README"
        ))
    }

    pub fn illegal_argument(message: impl std::fmt::Display) -> Self {
        Refusal::server(format!("java.lang.IllegalArgumentException: {message}"))
    }
}

/// The text of the error frame written before closing a connection whose stream cannot be
/// parsed any further.
pub fn decode_error_text(e: &DecodeError) -> String {
    match e {
        DecodeError::BadMagic { found } => format!(
            "org.infinispan.server.hotrod.InvalidMagicIdException: Error reading magic byte or message id: {found}"
        ),
        DecodeError::UnknownOpcode { opcode, .. } => format!(
            "org.infinispan.server.hotrod.HotRodUnknownOperationException: Unknown operation {}",
            opcode.0
        ),
        DecodeError::UnknownVersion { version, .. } => format!(
            "org.infinispan.server.hotrod.UnknownVersionException: Unknown version {}.{}: Ironrod speaks Hot Rod 2.0-4.1",
            version / 10,
            version % 10
        ),
        other => format!("org.infinispan.server.hotrod.RequestParsingException: {other}"),
    }
}
