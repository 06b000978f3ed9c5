//! The bridge wire protocol (specified in `protocol-spec/xsite.md`).
//!
//! A frame is a 4-byte big-endian length, then the type byte, the routing header (source and
//! destination site names) and the type's body. The first two frame types, HELLO and AUTH, are
//! the same in every protocol version; everything after them is encoded at the version both ends
//! negotiated. [`decode`] never panics: a prefix of a frame is [`DecodeError::Incomplete`], and
//! anything else that is not a valid frame is a typed error.

mod reader;

use reader::{Reader, Writer};

use crate::change::{Change, EntryValue, VersionVector};

/// Oldest protocol version this build speaks.
pub const MIN_VERSION: u8 = 1;
/// Newest protocol version this build speaks.
pub const MAX_VERSION: u8 = 3;
/// `IRXS`: first field of HELLO, so a non-bridge peer is recognised at once.
pub const MAGIC: u32 = 0x4952_5853;
/// Length of a HELLO nonce.
pub const NONCE_LEN: usize = 32;

/// Bytes of the length prefix.
const LEN_PREFIX: usize = 4;

/// Why a SYNC apply, ASYNC batch or push chunk was refused. Unknown codes round-trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cause(pub u8);

impl Cause {
    /// The key's lock was not acquired within the acquisition timeout (a write conflict).
    pub const LOCK_TIMEOUT: Cause = Cause(1);
    /// The receiving site has no such cache.
    pub const NO_SUCH_CACHE: Cause = Cause(2);
    /// The write failed on the receiving site for another reason.
    pub const APPLY_FAILED: Cause = Cause(3);
    /// A relaying site has no route to the destination.
    pub const UNREACHABLE: Cause = Cause(4);
    /// The receiver refuses (shutting down, push cancelled).
    pub const REFUSED: Cause = Cause(5);

    /// A short name for messages and status.
    pub fn name(self) -> &'static str {
        match self {
            Cause::LOCK_TIMEOUT => "lock timeout",
            Cause::NO_SUCH_CACHE => "no such cache",
            Cause::APPLY_FAILED => "apply failed",
            Cause::UNREACHABLE => "unreachable",
            Cause::REFUSED => "refused",
            _ => "unknown cause",
        }
    }
}

/// How the HELLO sender authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// No proof.
    None = 0,
    /// HMAC-SHA-256 over the handshake.
    SharedSecret = 1,
    /// Mutual TLS underneath; no proof in AUTH.
    Tls = 2,
}

impl AuthMode {
    fn from_u8(b: u8) -> Option<AuthMode> {
        match b {
            0 => Some(AuthMode::None),
            1 => Some(AuthMode::SharedSecret),
            2 => Some(AuthMode::Tls),
            _ => None,
        }
    }
}

/// Source and destination site of a frame (RELAY2-style routing by site name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The site that created the frame.
    pub from: String,
    /// The site the frame is for; a site master forwards frames for other sites.
    pub to: String,
}

/// One bridge message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// First frame in each direction: who I am, which versions I speak, my challenge.
    Hello {
        /// Lowest version spoken.
        min_version: u8,
        /// Highest version spoken.
        max_version: u8,
        /// How this end authenticates.
        auth: AuthMode,
        /// Fresh random challenge.
        nonce: [u8; NONCE_LEN],
    },
    /// Second frame in each direction: the version chosen and the proof over the peer's nonce.
    Auth {
        /// The negotiated version (the highest both speak).
        version: u8,
        /// HMAC-SHA-256 proof, empty without shared-secret authentication.
        proof: Vec<u8>,
    },
    /// Keeps an idle link alive.
    Heartbeat,
    /// The sender is closing the link.
    Close {
        /// Machine-readable reason.
        code: u16,
        /// Human-readable reason.
        reason: String,
    },
    /// Apply this change under the receiver's lock and answer.
    SyncApply {
        /// Request id chosen by the sender.
        id: u64,
        /// The change.
        change: Change,
    },
    /// The change was applied.
    SyncAck {
        /// Request id.
        id: u64,
    },
    /// The change was not applied.
    SyncNack {
        /// Request id.
        id: u64,
        /// Why.
        cause: Cause,
        /// Details for the client's error message.
        message: String,
    },
    /// Committed changes of one cache, in commit order.
    AsyncBatch {
        /// Batch id chosen by the sender.
        id: u64,
        /// The changes.
        changes: Vec<Change>,
    },
    /// Every change of the batch was applied (or lost its conflict).
    AsyncAck {
        /// Batch id.
        id: u64,
    },
    /// The batch must be sent again later.
    AsyncNack {
        /// Batch id.
        id: u64,
        /// Why.
        cause: Cause,
        /// Details.
        message: String,
    },
    /// A state push of one cache begins; the receiver marks the time.
    PushStart {
        /// Push id chosen by the sender.
        push: u64,
        /// Cache name.
        cache: String,
    },
    /// A chunk of pushed entries.
    PushChunk {
        /// Push id.
        push: u64,
        /// Chunk number, from 1.
        seq: u32,
        /// Entries (never removals).
        changes: Vec<Change>,
    },
    /// PUSH_START (`seq` 0) or a chunk was applied.
    PushAck {
        /// Push id.
        push: u64,
        /// The chunk number acknowledged.
        seq: u32,
    },
    /// The receiver could not apply a chunk.
    PushNack {
        /// Push id.
        push: u64,
        /// Chunk number.
        seq: u32,
        /// Why.
        cause: Cause,
        /// Details.
        message: String,
    },
    /// Every chunk was sent and acknowledged.
    PushDone {
        /// Push id.
        push: u64,
    },
    /// The sender cancelled the push.
    PushCancel {
        /// Push id.
        push: u64,
    },
    /// Version 3: clear the cache, removing every entry whose version is at or below `seen`
    /// (what the clearing site had seen); answered with SYNC_ACK/NACK (`sync`) or
    /// ASYNC_ACK/NACK (queued in order with the cache's ASYNC batches).
    Clear {
        /// Request or batch id chosen by the sender.
        id: u64,
        /// Cache name.
        cache: String,
        /// Every version the clearing site had seen (merged).
        seen: VersionVector,
        /// SYNC (the origin waits) or ASYNC (queued).
        sync: bool,
    },
    /// The sender took the receiver offline or brought it online for a cache (informational).
    SiteNotice {
        /// Cache name; empty for all caches.
        cache: String,
        /// Whether the backup is now online.
        online: bool,
    },
}

/// A decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Routing header.
    pub route: Route,
    /// The message.
    pub message: Message,
}

/// Why bytes are not (yet) a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A prefix of a frame: read at least `needed` more bytes.
    #[error("incomplete frame: {needed} more bytes needed")]
    Incomplete {
        /// Bytes missing (at least).
        needed: usize,
    },
    /// The length prefix exceeds the bound.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Announced length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A field runs past the end of the frame.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Bytes left after the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// An unknown frame type.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A string that is not UTF-8.
    #[error("{0} is not UTF-8")]
    InvalidUtf8(&'static str),
    /// HELLO without the magic: not a bridge peer.
    #[error("bad magic: not an Ironrod bridge peer")]
    BadMagic,
    /// Reserved bits or an unknown enumeration value.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A frame only defined after the handshake, decoded at a version this build lacks.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
}

/// Frame type bytes.
mod kind {
    pub const HELLO: u8 = 0x01;
    pub const AUTH: u8 = 0x02;
    pub const HEARTBEAT: u8 = 0x03;
    pub const CLOSE: u8 = 0x04;
    pub const SYNC_APPLY: u8 = 0x10;
    pub const SYNC_ACK: u8 = 0x11;
    pub const SYNC_NACK: u8 = 0x12;
    pub const ASYNC_BATCH: u8 = 0x20;
    pub const ASYNC_ACK: u8 = 0x21;
    pub const ASYNC_NACK: u8 = 0x22;
    pub const PUSH_START: u8 = 0x30;
    pub const PUSH_CHUNK: u8 = 0x31;
    pub const PUSH_ACK: u8 = 0x32;
    pub const PUSH_NACK: u8 = 0x33;
    pub const PUSH_DONE: u8 = 0x34;
    pub const PUSH_CANCEL: u8 = 0x35;
    pub const SITE_NOTICE: u8 = 0x40;
    pub const CLEAR: u8 = 0x50;
}

/// Change flag bits.
const HAS_VALUE: u8 = 0x01;
const HAS_LIFESPAN: u8 = 0x02;
const HAS_MAX_IDLE: u8 = 0x04;

/// Smallest encoded change: cache(2) key(4) origin(1) vector count(2) flags(1).
const MIN_CHANGE: usize = 10;

/// Decodes one frame from the front of `buf` at protocol `version`; returns it and the bytes used.
pub fn decode(buf: &[u8], version: u8, max_len: u32) -> Result<(Frame, usize), DecodeError> {
    let Some(prefix) = buf.get(..LEN_PREFIX) else {
        return Err(DecodeError::Incomplete {
            needed: LEN_PREFIX - buf.len(),
        });
    };
    let mut len = [0u8; LEN_PREFIX];
    len.copy_from_slice(prefix);
    let len = u32::from_be_bytes(len);
    if len > max_len {
        return Err(DecodeError::TooLong { len, max: max_len });
    }
    let total = LEN_PREFIX + len as usize;
    let Some(body) = buf.get(LEN_PREFIX..total) else {
        return Err(DecodeError::Incomplete {
            needed: total - buf.len(),
        });
    };
    let mut r = Reader::new(body);
    let frame = decode_body(&mut r, version)?;
    r.finish()?;
    Ok((frame, total))
}

/// Appends `frame` to `out`, encoded at protocol `version`.
pub fn encode(frame: &Frame, version: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    let mut w = Writer { out };
    encode_body(frame, version, &mut w);
    let len = u32::try_from(out.len() - start - LEN_PREFIX).unwrap_or(u32::MAX);
    if let Some(prefix) = out.get_mut(start..start + LEN_PREFIX) {
        prefix.copy_from_slice(&len.to_be_bytes());
    }
}

/// The highest version both ranges contain.
pub fn negotiate(ours: (u8, u8), theirs: (u8, u8)) -> Option<u8> {
    let high = ours.1.min(theirs.1);
    let low = ours.0.max(theirs.0);
    (high >= low).then_some(high)
}

fn decode_body(r: &mut Reader<'_>, version: u8) -> Result<Frame, DecodeError> {
    let t = r.u8("frame type")?;
    let route = Route {
        from: r.str8("source site")?,
        to: r.str8("destination site")?,
    };
    let handshake = matches!(t, kind::HELLO | kind::AUTH | kind::CLOSE);
    if !handshake && !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let message = match t {
        kind::HELLO => {
            if r.u32("magic")? != MAGIC {
                return Err(DecodeError::BadMagic);
            }
            let min_version = r.u8("min version")?;
            let max_version = r.u8("max version")?;
            let auth =
                AuthMode::from_u8(r.u8("auth mode")?).ok_or(DecodeError::Invalid("auth mode"))?;
            let mut nonce = [0u8; NONCE_LEN];
            nonce.copy_from_slice(r.take(NONCE_LEN, "nonce")?);
            Message::Hello {
                min_version,
                max_version,
                auth,
                nonce,
            }
        }
        kind::AUTH => {
            let version = r.u8("version")?;
            let n = usize::from(r.u8("proof")?);
            Message::Auth {
                version,
                proof: r.take(n, "proof")?.to_vec(),
            }
        }
        kind::HEARTBEAT => Message::Heartbeat,
        kind::CLOSE => Message::Close {
            code: r.u16("close code")?,
            reason: r.str16("close reason")?,
        },
        kind::SYNC_APPLY => Message::SyncApply {
            id: r.u64("request id")?,
            change: decode_change(r, version)?,
        },
        kind::SYNC_ACK => Message::SyncAck {
            id: r.u64("request id")?,
        },
        kind::SYNC_NACK => Message::SyncNack {
            id: r.u64("request id")?,
            cause: Cause(r.u8("cause")?),
            message: r.str16("message")?,
        },
        kind::ASYNC_BATCH => Message::AsyncBatch {
            id: r.u64("batch id")?,
            changes: decode_changes(r, version)?,
        },
        kind::ASYNC_ACK => Message::AsyncAck {
            id: r.u64("batch id")?,
        },
        kind::ASYNC_NACK => Message::AsyncNack {
            id: r.u64("batch id")?,
            cause: Cause(r.u8("cause")?),
            message: r.str16("message")?,
        },
        kind::PUSH_START => Message::PushStart {
            push: r.u64("push id")?,
            cache: r.str16("cache")?,
        },
        kind::PUSH_CHUNK => Message::PushChunk {
            push: r.u64("push id")?,
            seq: r.u32("chunk number")?,
            changes: decode_changes(r, version)?,
        },
        kind::PUSH_ACK => Message::PushAck {
            push: r.u64("push id")?,
            seq: r.u32("chunk number")?,
        },
        kind::PUSH_NACK => Message::PushNack {
            push: r.u64("push id")?,
            seq: r.u32("chunk number")?,
            cause: Cause(r.u8("cause")?),
            message: r.str16("message")?,
        },
        kind::PUSH_DONE => Message::PushDone {
            push: r.u64("push id")?,
        },
        kind::PUSH_CANCEL => Message::PushCancel {
            push: r.u64("push id")?,
        },
        kind::SITE_NOTICE => Message::SiteNotice {
            cache: r.str16("cache")?,
            online: match r.u8("online")? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::Invalid("online flag")),
            },
        },
        kind::CLEAR if version >= 3 => Message::Clear {
            id: r.u64("request id")?,
            cache: r.str16("cache")?,
            seen: decode_vector(r)?,
            sync: match r.u8("sync flag")? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::Invalid("sync flag")),
            },
        },
        other => return Err(DecodeError::UnknownType(other)),
    };
    Ok(Frame { route, message })
}

fn decode_changes(r: &mut Reader<'_>, version: u8) -> Result<Vec<Change>, DecodeError> {
    let n = r.count(MIN_CHANGE, "change count")?;
    let mut changes = Vec::with_capacity(n);
    for _ in 0..n {
        changes.push(decode_change(r, version)?);
    }
    Ok(changes)
}

fn decode_vector(r: &mut Reader<'_>) -> Result<VersionVector, DecodeError> {
    let n = usize::from(r.u16("version vector")?);
    let mut vv = VersionVector::new();
    for _ in 0..n {
        let site = r.str8("version site")?;
        let counter = r.u64("version counter")?;
        if counter == 0 || vv.counter(&site) != 0 {
            return Err(DecodeError::Invalid("version vector"));
        }
        vv.set(&site, counter);
    }
    Ok(vv)
}

fn encode_vector(v: &VersionVector, w: &mut Writer<'_>) {
    w.u16(u16::try_from(v.len()).unwrap_or(u16::MAX));
    for (site, counter) in v.iter().take(usize::from(u16::MAX)) {
        w.str8(site);
        w.u64(counter);
    }
}

fn decode_change(r: &mut Reader<'_>, version: u8) -> Result<Change, DecodeError> {
    let cache = r.str16("cache")?;
    let key = r.bytes32("key")?;
    let origin = r.str8("origin site")?;
    let vv = decode_vector(r)?;
    let flags = r.u8("change flags")?;
    let allowed = if version >= 2 {
        HAS_VALUE | HAS_LIFESPAN | HAS_MAX_IDLE
    } else {
        HAS_VALUE | HAS_LIFESPAN
    };
    if flags & !allowed != 0 || (flags & HAS_VALUE == 0 && flags != 0) {
        return Err(DecodeError::Invalid("change flags"));
    }
    let value = if flags & HAS_VALUE != 0 {
        let bytes = r.bytes32("value")?;
        let lifespan_ms = (flags & HAS_LIFESPAN != 0)
            .then(|| r.u64("lifespan"))
            .transpose()?;
        let max_idle_ms = (flags & HAS_MAX_IDLE != 0)
            .then(|| r.u64("max idle"))
            .transpose()?;
        Some(EntryValue {
            bytes,
            lifespan_ms,
            max_idle_ms,
        })
    } else {
        None
    };
    Ok(Change {
        cache,
        key,
        value,
        origin,
        version: vv,
    })
}

fn encode_body(frame: &Frame, version: u8, w: &mut Writer<'_>) {
    let m = &frame.message;
    w.u8(type_of(m));
    w.str8(&frame.route.from);
    w.str8(&frame.route.to);
    match m {
        Message::Hello {
            min_version,
            max_version,
            auth,
            nonce,
        } => {
            w.u32(MAGIC);
            w.u8(*min_version);
            w.u8(*max_version);
            w.u8(*auth as u8);
            w.out.extend_from_slice(nonce);
        }
        Message::Auth { version, proof } => {
            w.u8(*version);
            let proof = proof.get(..usize::from(u8::MAX)).unwrap_or(proof);
            w.u8(proof.len() as u8);
            w.out.extend_from_slice(proof);
        }
        Message::Heartbeat => {}
        Message::Close { code, reason } => {
            w.u16(*code);
            w.str16(reason);
        }
        Message::SyncApply { id, change } => {
            w.u64(*id);
            encode_change(change, version, w);
        }
        Message::SyncAck { id } | Message::AsyncAck { id } => w.u64(*id),
        Message::SyncNack { id, cause, message } | Message::AsyncNack { id, cause, message } => {
            w.u64(*id);
            w.u8(cause.0);
            w.str16(message);
        }
        Message::AsyncBatch { id, changes } => {
            w.u64(*id);
            encode_changes(changes, version, w);
        }
        Message::PushStart { push, cache } => {
            w.u64(*push);
            w.str16(cache);
        }
        Message::PushChunk { push, seq, changes } => {
            w.u64(*push);
            w.u32(*seq);
            encode_changes(changes, version, w);
        }
        Message::PushAck { push, seq } => {
            w.u64(*push);
            w.u32(*seq);
        }
        Message::PushNack {
            push,
            seq,
            cause,
            message,
        } => {
            w.u64(*push);
            w.u32(*seq);
            w.u8(cause.0);
            w.str16(message);
        }
        Message::PushDone { push } | Message::PushCancel { push } => w.u64(*push),
        Message::Clear {
            id,
            cache,
            seen,
            sync,
        } => {
            w.u64(*id);
            w.str16(cache);
            encode_vector(seen, w);
            w.u8(u8::from(*sync));
        }
        Message::SiteNotice { cache, online } => {
            w.str16(cache);
            w.u8(u8::from(*online));
        }
    }
}

fn type_of(m: &Message) -> u8 {
    match m {
        Message::Hello { .. } => kind::HELLO,
        Message::Auth { .. } => kind::AUTH,
        Message::Heartbeat => kind::HEARTBEAT,
        Message::Close { .. } => kind::CLOSE,
        Message::SyncApply { .. } => kind::SYNC_APPLY,
        Message::SyncAck { .. } => kind::SYNC_ACK,
        Message::SyncNack { .. } => kind::SYNC_NACK,
        Message::AsyncBatch { .. } => kind::ASYNC_BATCH,
        Message::AsyncAck { .. } => kind::ASYNC_ACK,
        Message::AsyncNack { .. } => kind::ASYNC_NACK,
        Message::PushStart { .. } => kind::PUSH_START,
        Message::PushChunk { .. } => kind::PUSH_CHUNK,
        Message::PushAck { .. } => kind::PUSH_ACK,
        Message::PushNack { .. } => kind::PUSH_NACK,
        Message::PushDone { .. } => kind::PUSH_DONE,
        Message::PushCancel { .. } => kind::PUSH_CANCEL,
        Message::SiteNotice { .. } => kind::SITE_NOTICE,
        Message::Clear { .. } => kind::CLEAR,
    }
}

fn encode_changes(changes: &[Change], version: u8, w: &mut Writer<'_>) {
    w.u32(u32::try_from(changes.len()).unwrap_or(u32::MAX));
    for c in changes {
        encode_change(c, version, w);
    }
}

/// Encodes a change; at version 1 the max-idle is dropped (version 1 has no field for it).
fn encode_change(c: &Change, version: u8, w: &mut Writer<'_>) {
    w.str16(&c.cache);
    w.bytes32(&c.key);
    w.str8(&c.origin);
    encode_vector(&c.version, w);
    let Some(v) = &c.value else {
        w.u8(0);
        return;
    };
    let max_idle = if version >= 2 { v.max_idle_ms } else { None };
    let mut flags = HAS_VALUE;
    if v.lifespan_ms.is_some() {
        flags |= HAS_LIFESPAN;
    }
    if max_idle.is_some() {
        flags |= HAS_MAX_IDLE;
    }
    w.u8(flags);
    w.bytes32(&v.bytes);
    if let Some(l) = v.lifespan_ms {
        w.u64(l);
    }
    if let Some(m) = max_idle {
        w.u64(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(m: Message) -> Frame {
        Frame {
            route: Route {
                from: "LON".into(),
                to: "NYC".into(),
            },
            message: m,
        }
    }

    fn change(max_idle: Option<u64>) -> Change {
        Change {
            cache: "sessions".into(),
            key: b"k".to_vec(),
            value: Some(EntryValue {
                bytes: b"v".to_vec(),
                lifespan_ms: Some(60_000),
                max_idle_ms: max_idle,
            }),
            origin: "LON".into(),
            version: [("LON".to_string(), 3u64)].into_iter().collect(),
        }
    }

    #[test]
    fn heartbeat_bytes_are_as_specified() {
        let mut out = Vec::new();
        encode(&frame(Message::Heartbeat), 1, &mut out);
        assert_eq!(out, b"\x00\x00\x00\x09\x03\x03LON\x03NYC");
    }

    #[test]
    fn version_1_drops_max_idle_and_version_2_keeps_it() {
        let f = frame(Message::SyncApply {
            id: 7,
            change: change(Some(5)),
        });
        let mut v1 = Vec::new();
        encode(&f, 1, &mut v1);
        let (back, _) = decode(&v1, 1, 1 << 20).unwrap();
        let Message::SyncApply { change: c, .. } = back.message else {
            panic!()
        };
        assert_eq!(c.value.unwrap().max_idle_ms, None);
        let mut v2 = Vec::new();
        encode(&f, 2, &mut v2);
        assert_eq!(decode(&v2, 2, 1 << 20).unwrap().0, f);
        // A version-2 frame carrying max-idle is invalid at version 1.
        assert_eq!(
            decode(&v2, 1, 1 << 20),
            Err(DecodeError::Invalid("change flags"))
        );
    }

    #[test]
    fn clear_exists_from_version_3_only() {
        let f = frame(Message::Clear {
            id: 9,
            cache: "sessions".into(),
            seen: [("LON".to_string(), 3u64), ("NYC".to_string(), 8)]
                .into_iter()
                .collect(),
            sync: true,
        });
        let mut v3 = Vec::new();
        encode(&f, 3, &mut v3);
        assert_eq!(decode(&v3, 3, 1 << 20).unwrap(), (f, v3.len()));
        assert_eq!(decode(&v3, 2, 1 << 20), Err(DecodeError::UnknownType(0x50)));
        let last = v3.len() - 1;
        v3[last] = 2;
        assert_eq!(
            decode(&v3, 3, 1 << 20),
            Err(DecodeError::Invalid("sync flag"))
        );
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate((1, 2), (1, 1)), Some(1));
        assert_eq!(negotiate((1, 2), (1, 3)), Some(2));
        assert_eq!(negotiate((2, 2), (1, 1)), None);
    }

    #[test]
    fn oversized_and_unknown_frames_are_typed_errors() {
        assert_eq!(
            decode(&[0xff, 0, 0, 0], 1, 1024),
            Err(DecodeError::TooLong {
                len: 0xff00_0000,
                max: 1024
            })
        );
        assert_eq!(
            decode(b"\x00\x00\x00\x03\x7f\x00\x00", 1, 1024),
            Err(DecodeError::UnknownType(0x7f))
        );
        assert_eq!(
            decode(b"\x00\x00\x00\x04\x03\x00\x00\x00", 1, 1024),
            Err(DecodeError::TrailingBytes(1))
        );
        // A forged change count cannot allocate: it is checked against the frame's length.
        let mut b = b"\x00\x00\x00\x0f\x20\x00\x00".to_vec();
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&[0xff; 4]);
        assert_eq!(
            decode(&b, 1, 1024),
            Err(DecodeError::Truncated("change count"))
        );
    }
}
