//! The checks of the `decode` fuzz target, shared with `crates/codec/tests/fuzz_corpus.rs`,
//! which replays the seed corpus through them under plain `cargo test`.
//!
//! Input layout: byte 0 selects the context the client side uses for responses (see
//! [`Selector`]); the remaining bytes are one byte stream that is decoded twice, as requests
//! (the server's side) and as responses and events (the client's side).
//!
//! For each side: frames are decoded one after another until the stream ends or a decode fails;
//! every decoded frame must re-encode, decode again to an equal value (the bytes may differ:
//! non-canonical vInts, booleans other than 0 and 1) and consume exactly the re-encoded bytes,
//! whose own encoding is then canonical; every strict prefix of a short re-encoded frame must
//! be "incomplete"; an "incomplete" result must ask for more bytes than it was given; and the
//! tokio-util codec fed the same stream must agree with the plain decoder.

use bytes::{BufMut, BytesMut};
use ironrod_codec::{
    ClientCodec, CodecError, DecodeError, Intelligence, Limits, Request, RequestContext,
    ServerCodec, ServerMessage, Version,
};
use tokio_util::codec::Decoder;

/// Re-encoded frames up to this length also have every strict prefix decoded.
const PREFIX_CHECK_MAX: usize = 160;
/// Streams up to this length are also fed to the codecs one byte at a time.
const BYTEWISE_MAX: usize = 512;

/// The client-side context chosen by the first input byte.
///
/// Bits 0–3 pick the version (the 14 known ones, then 3.5 and 4.2, which decode with the rules
/// of 3.1 and 4.1); bits 4–5 the intelligence (basic, topology-aware, hash-aware, or the
/// invalid 0); bit 6 makes the version also depend on the message id, so frames of one stream
/// can differ; bit 7 means no request is in flight at all (only error frames and events then
/// decode).
#[derive(Debug, Clone, Copy)]
pub struct Selector(pub u8);

const VERSIONS: [u8; 16] = [
    20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 40, 41, 35, 42,
];

impl Selector {
    pub fn context(self, message_id: u64) -> Option<RequestContext> {
        let s = self.0;
        if s & 0x80 != 0 {
            return None;
        }
        let mut index = usize::from(s & 0x0F);
        if s & 0x40 != 0 {
            index = (index + (message_id as usize & 0x0F)) & 0x0F;
        }
        let version = Version(VERSIONS.get(index).copied().unwrap_or(41));
        let intelligence = match (s >> 4) & 0x03 {
            0 => Intelligence::BASIC,
            1 => Intelligence::TOPOLOGY_AWARE,
            2 => Intelligence::HASH_DISTRIBUTION_AWARE,
            _ => Intelligence(0),
        };
        Some(RequestContext {
            version,
            intelligence,
        })
    }
}

/// Runs every check on one fuzz input.
pub fn check(data: &[u8]) {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    check_requests(stream);
    check_server_messages(stream, Selector(selector));
}

/// How a stream of frames ended.
#[derive(Debug)]
enum End {
    /// Every byte belonged to a decoded frame.
    Clean,
    /// The last frame is incomplete.
    Incomplete(Option<usize>),
    /// The last frame cannot be decoded.
    Failed(DecodeError),
}

/// Decodes frames one after another; checks each with `each` and the "incomplete" contract.
fn decode_all<T>(
    stream: &[u8],
    decode: impl Fn(&[u8]) -> Result<(T, usize), DecodeError>,
    each: impl Fn(&T),
) -> (Vec<T>, End) {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        if rest.is_empty() {
            return (frames, End::Clean);
        }
        match decode(rest) {
            Ok((frame, len)) => {
                assert!(
                    len > 0 && len <= rest.len(),
                    "decoded a frame of {len} bytes from {}",
                    rest.len()
                );
                each(&frame);
                frames.push(frame);
                rest = rest.get(len..).unwrap_or_default();
            }
            Err(DecodeError::Incomplete { needed }) => {
                if let Some(n) = needed {
                    assert!(
                        n > rest.len(),
                        "incomplete with {} bytes but needs only {n}",
                        rest.len()
                    );
                }
                return (frames, End::Incomplete(needed));
            }
            Err(e) => return (frames, End::Failed(e)),
        }
    }
}

/// Every strict prefix of `wire` must be incomplete, needing a length within `wire`.
fn check_prefixes<T: std::fmt::Debug>(
    wire: &[u8],
    decode: impl Fn(&[u8]) -> Result<(T, usize), DecodeError>,
) {
    if wire.len() > PREFIX_CHECK_MAX {
        return;
    }
    for i in 0..wire.len() {
        let prefix = wire.get(..i).unwrap_or_default();
        match decode(prefix) {
            Err(DecodeError::Incomplete { needed: Some(n) }) if n > i && n <= wire.len() => {}
            other => panic!(
                "prefix of {i} of the {} bytes {:02x?}: expected incomplete, got {other:?}",
                wire.len(),
                wire
            ),
        }
    }
}

fn limits() -> Limits {
    Limits::DEFAULT
}

// ---------------------------------------------------------------------------------------------
// Server side: requests
// ---------------------------------------------------------------------------------------------

fn decode_request(buf: &[u8]) -> Result<(Request, usize), DecodeError> {
    Request::decode(buf, &limits())
}

fn round_trip_request(req: &Request) {
    let mut wire = BytesMut::new();
    if let Err(e) = req.encode(&mut wire) {
        panic!("a decoded request does not encode ({e}): {req:?}");
    }
    match decode_request(&wire) {
        Ok((again, len)) => {
            assert_eq!(&again, req, "request changed through encode/decode");
            assert_eq!(len, wire.len(), "re-encoded request not consumed exactly");
            let mut canonical = BytesMut::new();
            assert!(again.encode(&mut canonical).is_ok());
            assert_eq!(canonical, wire, "request encoding not canonical");
        }
        Err(e) => panic!(
            "re-encoded request does not decode ({e}): {req:?}\n  bytes {:02x?}",
            wire.as_ref()
        ),
    }
    check_prefixes(&wire, decode_request);
}

fn check_requests(stream: &[u8]) {
    let (frames, end) = decode_all(stream, decode_request, round_trip_request);

    // The codec, given everything at once, yields the same frames and ends the same way.
    let mut codec = ServerCodec::new(limits());
    let mut buf = BytesMut::from(stream);
    for want in &frames {
        match codec.decode(&mut buf) {
            Ok(Some(got)) => assert_eq!(&got, want, "ServerCodec disagrees with Request::decode"),
            other => panic!("ServerCodec: expected {want:?}, got {other:?}"),
        }
    }
    let last = codec.decode(&mut buf);
    check_codec_end(&end, last.map(|r| r.is_some()), buf.len());

    // Decoding without copies (as the server does, sharing every other opcode) agrees too.
    let mut codec = ServerCodec::new(limits());
    let mut chunk = bytes::Bytes::copy_from_slice(stream);
    for want in &frames {
        match codec.decode_shared(&mut chunk, |op| op.0 % 2 == 0) {
            Ok(Some(got)) => assert_eq!(&got, want, "shared decoding disagrees"),
            other => panic!("ServerCodec::decode_shared: expected {want:?}, got {other:?}"),
        }
    }
    let last = codec.decode_shared(&mut chunk, |op| op.0 % 2 == 0);
    check_codec_end(&end, last.map(|r| r.is_some()), chunk.len());

    // And fed one byte at a time, the same frames.
    if stream.len() <= BYTEWISE_MAX {
        let mut codec = ServerCodec::new(limits());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        'feed: for &b in stream {
            buf.put_u8(b);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(req)) => got.push(req),
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        assert_eq!(got, frames, "ServerCodec fed bytewise disagrees");
    }
}

/// The codec's last answer must match how the plain decoder ended.
fn check_codec_end(end: &End, last: Result<bool, CodecError>, left: usize) {
    match (end, last) {
        (End::Clean, Ok(false)) => assert_eq!(left, 0),
        (End::Incomplete(_), Ok(false)) => {}
        // A frame that declares more than the frame limit is refused early.
        (End::Incomplete(needed), Err(CodecError::Decode(DecodeError::TooLarge { .. })))
            if needed.is_none_or(|n| n > limits().max_frame_len) => {}
        (End::Failed(e), Err(CodecError::Decode(got))) => {
            assert_eq!(&got, e, "codec error differs from the decoder's")
        }
        (end, last) => panic!("decoder ended with {end:?}, codec with {last:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Client side: responses and events
// ---------------------------------------------------------------------------------------------

fn round_trip_message(msg: &ServerMessage, selector: Selector) {
    let decode = |b: &[u8]| ServerMessage::decode(b, |id| selector.context(id), &limits());
    let mut wire = BytesMut::new();
    msg.encode(&mut wire);
    match decode(&wire) {
        Ok((again, len)) => {
            assert_eq!(&again, msg, "message changed through encode/decode");
            assert_eq!(len, wire.len(), "re-encoded message not consumed exactly");
            let mut canonical = BytesMut::new();
            again.encode(&mut canonical);
            assert_eq!(canonical, wire, "message encoding not canonical");
        }
        Err(e) => panic!(
            "re-encoded message does not decode ({e}): {msg:?}\n  bytes {:02x?}",
            wire.as_ref()
        ),
    }
    check_prefixes(&wire, decode);
}

fn check_server_messages(stream: &[u8], selector: Selector) {
    let (frames, end) = decode_all(
        stream,
        |b| ServerMessage::decode(b, |id| selector.context(id), &limits()),
        |m| round_trip_message(m, selector),
    );

    // The client codec forgets a request once answered, so it is compared only when every
    // response id is distinct; the frame that stopped the decoder may lack a registered
    // context there, so only a clean end is compared.
    let mut ids: Vec<u64> = frames
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Response(r) => Some(r.message_id),
            _ => None,
        })
        .collect();
    let responses = ids.len();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != responses {
        return;
    }
    let new_codec = || {
        let mut codec = ClientCodec::new(limits());
        for &id in &ids {
            if let Some(ctx) = selector.context(id) {
                codec.expect(id, ctx);
            }
        }
        codec
    };
    let mut codec = new_codec();
    let mut buf = BytesMut::from(stream);
    for want in &frames {
        match codec.decode(&mut buf) {
            Ok(Some(got)) => assert_eq!(&got, want, "ClientCodec disagrees"),
            other => panic!("ClientCodec: expected {want:?}, got {other:?}"),
        }
    }
    if let End::Clean = end {
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        assert!(buf.is_empty());
        // Answered requests are forgotten (error frames for unknown ids never were known).
        assert_eq!(codec.in_flight(), 0);
    }

    if stream.len() <= BYTEWISE_MAX {
        let mut codec = new_codec();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        'feed: for &b in stream {
            buf.put_u8(b);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(m)) => got.push(m),
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        // Past the decoded frames the codec may know no context for an error frame's id
        // where the selector gives one (a different layout), so only a clean end compares
        // whole.
        if !matches!(end, End::Clean) {
            got.truncate(frames.len());
        }
        assert_eq!(got, frames, "ClientCodec fed bytewise disagrees");
    }
}
