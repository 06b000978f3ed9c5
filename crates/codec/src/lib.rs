//! The Hot Rod wire codec of Ironrod, versions 2.0 to 4.1.
//!
//! This crate owns the bytes: primitives (vInt, vLong, arrays, strings), the request header of
//! every version, a typed request body for every opcode a client may send, every response body,
//! the event frames, and tokio-util codecs for both sides of a connection. It knows nothing of
//! sockets or caches: the server crate decides what a request means, and tests and the load
//! generator use the client side to talk to a server.
//!
//! Layouts follow `protocol-spec/` in this repository; where the public protocol document and
//! the reference implementation disagree, the implementation wins (`protocol-spec/
//! discrepancies.md`).
//!
//! # Why a hand-written reader and not `nom`
//!
//! Every Hot Rod field is read the same way, one after another, with version gates in between,
//! and the two things the server needs from a failure are "which field of which opcode" and
//! "how many bytes would let me continue". A small cursor in the manner of rustls' `Reader`
//! gives both directly: each read names its field, and an incomplete read reports the buffer
//! length it needs, which keeps re-parsing of large frames linear. `nom`'s streaming parsers
//! report `Needed` too, but threading field names, limits and version gates through combinators
//! made the grammar longer and its errors vaguer than plain sequential code, with no gain in
//! safety: the cursor never indexes, never panics and allocates only for bytes already present.
//!
//! # Decoding model
//!
//! * [`Request::decode`] and [`ServerMessage::decode`] parse one frame from the front of a
//!   buffer and return it with its length, or [`DecodeError::Incomplete`].
//! * [`ServerCodec`] and [`ClientCodec`] wrap them as tokio-util `Decoder`/`Encoder`s.
//! * Every other [`DecodeError`] means the frame cannot be parsed; frames carry no length, so
//!   the stream cannot be resynchronised after it. The error carries the message id when it was
//!   read and the status to answer with.
//! * A request with an unknown version of 2.0 or above is parsed with the rules of the newest
//!   version it reaches, as the reference does; the server then refuses it and keeps the
//!   connection. Below 2.0 the header itself differs, which is an error.

mod codes;
mod error;
mod event;
mod expiration;
mod frame;
mod header;
mod limits;
mod media_type;
mod metadata;
mod request;
mod response;
mod topology;
mod wire;

pub use codes::{Flags, Intelligence, MediaTypeId, OpCode, Status, TimeUnit, Version};
pub use error::{CodecError, DecodeError, EncodeError, Problem};
pub use event::{CacheEvent, CounterEvent, EventKind, EventPayload};
pub use expiration::{Expiration, TimeValue};
pub use frame::{ClientCodec, ServerCodec, ServerMessage};
pub use header::{CacheNames, RequestHeader, REQUEST_MAGIC, RESPONSE_MAGIC};
pub use limits::Limits;
pub use media_type::{CustomMediaType, MediaType, Params};
pub use metadata::{EntryMetadata, Lifetime, PreviousValue};
pub use request::{CounterConfig, Factory, ListenerRegistration, Modification, Op, Request, Xid};
pub use response::{
    IterationBatch, IterationEntry, PingInfo, RequestContext, Response, ResponseBody,
};
pub use topology::{SegmentTable, ServerAddress, Topology};
