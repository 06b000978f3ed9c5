//! Whole frames in both directions and the tokio-util codecs over them.
//!
//! Hot Rod frames carry no length, so a frame is known to be complete only once it parses. The
//! decoders parse from the start of the buffer and consume nothing until a whole frame is there;
//! on "incomplete" they remember the buffer length the parse needs next, so a large value
//! arriving in many reads is parsed twice, not once per read.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::codes::{Intelligence, OpCode, Version};
use crate::error::{CodecError, DecodeError, Problem};
use crate::event::{CacheEvent, CounterEvent, EventKind};
use crate::header::{CacheNames, RequestHeader, RESPONSE_MAGIC};
use crate::limits::Limits;
use crate::request::Request;
use crate::response::{RequestContext, Response};
use crate::wire::{malformed, Reader};

/// Anything a server writes: a response or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    Response(Response),
    Event(CacheEvent),
    CounterEvent(CounterEvent),
}

impl ServerMessage {
    pub fn message_id(&self) -> u64 {
        match self {
            ServerMessage::Response(r) => r.message_id,
            ServerMessage::Event(e) => e.message_id,
            ServerMessage::CounterEvent(e) => e.message_id,
        }
    }

    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            ServerMessage::Response(r) => r.encode(dst),
            ServerMessage::Event(e) => e.encode(dst),
            ServerMessage::CounterEvent(e) => e.encode(dst),
        }
    }

    /// Decodes one frame from the front of `buf` (the client's side). `context` gives, for a
    /// response's message id, the request it answers; events need none. An error frame for an
    /// id with no request in flight (id 0 after a bad magic, say) is still decoded.
    pub fn decode(
        buf: &[u8],
        context: impl Fn(u64) -> Option<RequestContext>,
        limits: &Limits,
    ) -> Result<(ServerMessage, usize), DecodeError> {
        let mut r = Reader::new(buf);
        let magic = r.u8()?;
        if magic != RESPONSE_MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        let message_id = r.vlong("message id")?;
        let opcode = OpCode(r.u8()?);
        let msg = if let Some(kind) = EventKind::from_opcode(opcode) {
            CacheEvent::decode_after_opcode(&mut r, message_id, kind, limits)
                .map(ServerMessage::Event)
        } else if opcode == OpCode::COUNTER_EVENT {
            CounterEvent::decode_after_opcode(&mut r, message_id, limits)
                .map(ServerMessage::CounterEvent)
        } else {
            let ctx = match context(message_id) {
                Some(ctx) => ctx,
                None if opcode == OpCode::ERROR => RequestContext {
                    version: Version::LATEST,
                    intelligence: Intelligence::BASIC,
                },
                None => return Err(malformed("message id", Problem::UnexpectedMessageId)),
            };
            Response::decode_after_opcode(&mut r, message_id, opcode, ctx, limits)
                .map(ServerMessage::Response)
        };
        let msg = msg.map_err(|e| attach_id(e, message_id, opcode))?;
        Ok((msg, r.position()))
    }
}

fn attach_id(e: DecodeError, id: u64, op: OpCode) -> DecodeError {
    match e {
        DecodeError::Malformed {
            message_id,
            version,
            opcode,
            field,
            problem,
        } => DecodeError::Malformed {
            message_id: message_id.or(Some(id)),
            version,
            opcode: opcode.or(Some(op)),
            field,
            problem,
        },
        other => other,
    }
}

/// Remembers how many bytes the last incomplete parse needed and refuses frames over the limit.
#[derive(Debug, Default)]
struct FrameProgress {
    needed: usize,
}

impl FrameProgress {
    /// False while the buffer is still shorter than what the last parse needed.
    fn worth_parsing(&self, available: usize) -> bool {
        available >= self.needed
    }

    /// Turns a parse result into the codec's answer, consuming the frame on success.
    fn settle<T>(
        &mut self,
        buf: &mut impl Buf,
        parsed: Result<(T, usize), DecodeError>,
        limits: &Limits,
    ) -> Result<Option<T>, CodecError> {
        match parsed {
            // A frame that arrived whole is held to the same bound as one still arriving, so
            // the limit does not depend on how the peer's bytes were split.
            Ok((_, len)) if len > limits.max_frame_len => Err(frame_too_large(len, limits).into()),
            Ok((item, len)) => {
                buf.advance(len);
                self.needed = 0;
                Ok(Some(item))
            }
            Err(DecodeError::Incomplete { needed }) => {
                let needed = needed.unwrap_or(usize::MAX);
                if needed > limits.max_frame_len {
                    return Err(frame_too_large(needed, limits).into());
                }
                self.needed = needed;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn frame_too_large(declared: usize, limits: &Limits) -> DecodeError {
    DecodeError::TooLarge {
        message_id: None,
        version: None,
        opcode: None,
        field: "frame",
        declared: declared as u64,
        limit: limits.max_frame_len,
    }
}

/// The server's side: decodes requests, encodes responses and events.
#[derive(Debug, Default)]
pub struct ServerCodec {
    limits: Limits,
    progress: FrameProgress,
    names: CacheNames,
}

impl ServerCodec {
    pub fn new(limits: Limits) -> Self {
        ServerCodec {
            limits,
            progress: FrameProgress::default(),
            names: CacheNames::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether `available` buffered bytes may hold the next whole request: false while the
    /// frame under way is known to need more. A server checks this before handing its buffer
    /// to [`ServerCodec::decode_shared`], so that a large frame arriving in many reads is not
    /// handed over (and its start copied back) after each of them.
    pub fn ready(&self, available: usize) -> bool {
        available > 0 && self.progress.worth_parsing(available)
    }

    /// Like [`Decoder::decode`], but takes the request from the front of a frozen buffer. For
    /// the operations `share` accepts, the byte fields are slices of that buffer (see
    /// [`Request::decode_shared`]): no allocation or copy per key and value. The others are
    /// copied as usual, for a server to pick the operations whose handlers keep nothing from
    /// the request (a kept slice would keep the whole buffer alive).
    pub fn decode_shared(
        &mut self,
        buf: &mut Bytes,
        share: impl Fn(OpCode) -> bool,
    ) -> Result<Option<Request>, CodecError> {
        if !self.ready(buf.len()) {
            return Ok(None);
        }
        let parsed = if RequestHeader::peek_opcode(buf).is_some_and(share) {
            Request::decode_shared(buf, &self.limits, &mut self.names)
        } else {
            Request::decode_with(buf, &self.limits, &mut self.names)
        };
        self.progress.settle(buf, parsed, &self.limits)
    }
}

impl Decoder for ServerCodec {
    type Item = Request;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        if buf.is_empty() || !self.progress.worth_parsing(buf.len()) {
            return Ok(None);
        }
        let parsed = Request::decode_with(buf, &self.limits, &mut self.names);
        self.progress.settle(buf, parsed, &self.limits)
    }
}

impl Encoder<&ServerMessage> for ServerCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &ServerMessage, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst);
        Ok(())
    }
}

impl Encoder<ServerMessage> for ServerCodec {
    type Error = CodecError;

    fn encode(&mut self, item: ServerMessage, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst);
        Ok(())
    }
}

/// The client's side: encodes requests, remembering each one's context until its response
/// arrives, and decodes responses and events.
#[derive(Debug, Default)]
pub struct ClientCodec {
    limits: Limits,
    progress: FrameProgress,
    in_flight: HashMap<u64, RequestContext>,
}

impl ClientCodec {
    pub fn new(limits: Limits) -> Self {
        ClientCodec {
            limits,
            ..ClientCodec::default()
        }
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Records a request sent by other means, so its response can be decoded.
    pub fn expect(&mut self, message_id: u64, ctx: RequestContext) {
        self.in_flight.insert(message_id, ctx);
    }
}

impl Encoder<&Request> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, req: &Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        req.encode(dst).map_err(CodecError::from)?;
        self.in_flight.insert(
            req.header.message_id,
            RequestContext {
                version: req.header.version,
                intelligence: req.header.intelligence,
            },
        );
        Ok(())
    }
}

impl Encoder<Request> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, req: Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        Encoder::<&Request>::encode(self, &req, dst)
    }
}

impl Decoder for ClientCodec {
    type Item = ServerMessage;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ServerMessage>, CodecError> {
        if buf.is_empty() || !self.progress.worth_parsing(buf.len()) {
            return Ok(None);
        }
        let in_flight = &self.in_flight;
        let parsed = ServerMessage::decode(buf, |id| in_flight.get(&id).copied(), &self.limits);
        let msg = self.progress.settle(buf, parsed, &self.limits)?;
        if let Some(ServerMessage::Response(r)) = &msg {
            self.in_flight.remove(&r.message_id);
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{Expiration, Op, RequestHeader};

    fn put_frame(value_len: usize) -> BytesMut {
        let req = Request {
            header: RequestHeader::new(1, Version::V4_0, "c"),
            op: Op::Put {
                key: Bytes::from_static(b"k"),
                expiration: Expiration::DEFAULT,
                value: Bytes::from(vec![b'v'; value_len]),
            },
        };
        let mut buf = BytesMut::new();
        req.encode(&mut buf).unwrap();
        buf
    }

    #[test]
    fn frame_limit_holds_whether_the_frame_is_whole_or_partial() {
        let limits = Limits {
            max_frame_len: 64,
            ..Limits::DEFAULT
        };
        // Whole.
        let mut whole = put_frame(100);
        let mut codec = ServerCodec::new(limits.clone());
        assert!(matches!(
            codec.decode(&mut whole),
            Err(CodecError::Decode(DecodeError::TooLarge {
                field: "frame",
                ..
            }))
        ));
        // Partial: refused as soon as the declared value length shows the frame cannot fit.
        let full = put_frame(100);
        let mut partial = BytesMut::from(&full[..20]);
        let mut codec = ServerCodec::new(limits.clone());
        assert!(codec.decode(&mut partial).is_err());
        // Within the limit: decoded.
        let mut small = put_frame(10);
        let mut codec = ServerCodec::new(limits);
        assert!(matches!(codec.decode(&mut small), Ok(Some(_))));
        assert!(small.is_empty());
    }

    #[test]
    fn shared_decoding_slices_the_buffer_for_chosen_operations_only() {
        let mut wire = put_frame(50);
        let get = Request {
            header: RequestHeader::new(2, Version::V4_0, "c"),
            op: Op::Get {
                key: Bytes::from_static(b"key"),
            },
        };
        get.encode(&mut wire).unwrap();
        let copied: Vec<Request> = {
            let mut codec = ServerCodec::default();
            let mut buf = wire.clone();
            std::iter::from_fn(|| codec.decode(&mut buf).unwrap()).collect()
        };
        let mut codec = ServerCodec::default();
        let mut chunk = wire.freeze();
        let range = chunk.as_ptr_range();
        let inside = |b: &Bytes| range.contains(&b.as_ptr());
        let only_puts = |op: OpCode| op == OpCode::PUT;
        let put = codec.decode_shared(&mut chunk, only_puts).unwrap().unwrap();
        let get = codec.decode_shared(&mut chunk, only_puts).unwrap().unwrap();
        assert!(chunk.is_empty());
        assert_eq!(vec![put.clone(), get.clone()], copied);
        let Op::Put { key, value, .. } = &put.op else {
            panic!("not a put: {put:?}")
        };
        assert!(
            inside(key) && inside(value),
            "a shared op's fields are slices"
        );
        let Op::Get { key } = &get.op else {
            panic!("not a get: {get:?}")
        };
        assert!(!inside(key), "an op left out is copied");
    }

    #[test]
    fn shared_decoding_waits_for_the_rest_of_a_frame() {
        let full = put_frame(1000).freeze();
        let mut codec = ServerCodec::default();
        let mut head = full.slice(..30);
        assert!(matches!(codec.decode_shared(&mut head, |_| true), Ok(None)));
        assert_eq!(head.len(), 30, "nothing is consumed from a partial frame");
        assert!(!codec.ready(full.len() - 1));
        assert!(codec.ready(full.len()));
        let mut whole = full.clone();
        assert!(matches!(
            codec.decode_shared(&mut whole, |_| true),
            Ok(Some(_))
        ));
        assert!(whole.is_empty());
    }

    #[test]
    fn incomplete_frames_are_not_reparsed_until_enough_bytes_arrive() {
        let full = put_frame(1000);
        let mut codec = ServerCodec::default();
        let mut buf = BytesMut::from(&full[..30]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        assert!(codec.progress.needed > 30);
        buf.extend_from_slice(&full[30..]);
        assert!(matches!(codec.decode(&mut buf), Ok(Some(_))));
        assert_eq!(codec.progress.needed, 0);
    }
}
