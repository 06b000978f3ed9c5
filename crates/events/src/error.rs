//! The crate's error type.

use crate::listener::ListenerId;

/// Why a listener operation failed. The server answers every variant with an error frame (status
/// 0x85, reference §18.1 and §21.1) and keeps the connection open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventsError {
    /// ADD_CLIENT_LISTENER named a filter (or filter-converter) factory this server does not have.
    #[error("Listener filter factory '{name}' not found in server")]
    UnknownFilterFactory {
        /// The factory name the client sent.
        name: String,
    },
    /// ADD_CLIENT_LISTENER named a converter factory this server does not have.
    #[error("Listener converter factory '{name}' not found in server")]
    UnknownConverterFactory {
        /// The factory name the client sent.
        name: String,
    },
    /// A listener with this id is already registered on the cache.
    #[error("a client listener with id {id} is already registered")]
    DuplicateListener {
        /// The id.
        id: ListenerId,
    },
    /// The listener went away (removed, or its connection closed or overflowed) while its current
    /// state was being sent.
    #[error("client listener {id} was removed during its state transfer")]
    ListenerGone {
        /// The id.
        id: ListenerId,
    },
    /// The watermarks must satisfy `low <= high < max`, with `max > 0`.
    #[error("invalid event queue watermarks: low {low}, high {high}, max {max}")]
    InvalidWatermarks {
        /// The low watermark.
        low: usize,
        /// The high watermark.
        high: usize,
        /// The maximum.
        max: usize,
    },
}
