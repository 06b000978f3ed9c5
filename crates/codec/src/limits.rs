//! Bounds on what a peer may declare.
//!
//! Every length and count read from the wire is checked against these before anything is
//! reserved for it, and the decoder never buffers a frame larger than `max_frame_len`: a hostile
//! or broken peer costs at most that much memory per connection.

/// Configurable maximums applied while decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in bytes.
    pub max_key_len: usize,
    /// Longest value (including stream chunks and query or task payloads), in bytes.
    pub max_value_len: usize,
    /// Longest cache name, in bytes.
    pub max_cache_name_len: usize,
    /// Longest other string or opaque identifier (mechanism, task and factory names, listener and
    /// iteration ids, media type parameters, SASL payloads), in bytes.
    pub max_string_len: usize,
    /// Most entries or keys in one PUT_ALL, GET_ALL, transaction or bulk answer.
    pub max_entries: usize,
    /// Most parameters of an EXEC, listener factory, iteration filter, media type or the 4.0
    /// header map.
    pub max_params: usize,
    /// Largest frame the decoder buffers before refusing it.
    pub max_frame_len: usize,
}

impl Limits {
    /// Infinispan's default `max-content-length` is 10 MiB; keys are rarely more than a few
    /// hundred bytes.
    pub const DEFAULT: Limits = Limits {
        max_key_len: 1 << 20,
        max_value_len: 10 << 20,
        max_cache_name_len: 1024,
        max_string_len: 64 << 10,
        max_entries: 100_000,
        max_params: 1024,
        max_frame_len: 16 << 20,
    };

    /// No bounds but the address space: for decoding trusted captures.
    pub const UNBOUNDED: Limits = Limits {
        max_key_len: usize::MAX,
        max_value_len: usize::MAX,
        max_cache_name_len: usize::MAX,
        max_string_len: usize::MAX,
        max_entries: usize::MAX,
        max_params: usize::MAX,
        max_frame_len: usize::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
