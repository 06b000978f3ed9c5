//! The request header, decoded per request: its layout depends on the version byte it carries.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codes::{Flags, Intelligence, OpCode, Version};
use crate::error::{DecodeError, Problem};
use crate::limits::Limits;
use crate::media_type::MediaType;
use crate::wire::{len32, malformed, Reader, Result, WireWrite};

/// The request magic byte.
pub const REQUEST_MAGIC: u8 = 0xA0;
/// The response magic byte.
pub const RESPONSE_MAGIC: u8 = 0xA1;

/// Everything before a request's body.
///
/// The opcode is not stored here: it is implied by the [`crate::Op`] the header travels with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub message_id: u64,
    pub version: Version,
    /// Empty for the server's default cache. Shared: a connection names the same cache in
    /// request after request, and [`CacheNames`] hands out the same allocation each time.
    pub cache_name: Arc<str>,
    pub flags: Flags,
    pub intelligence: Intelligence,
    /// The last topology id the client saw (-1 or 0 when none).
    pub topology_id: i32,
    /// From 2.8; [`MediaType::None`] before.
    pub key_type: MediaType,
    /// From 2.8; [`MediaType::None`] before.
    pub value_type: MediaType,
    /// From 4.0: name → value pairs (W3C trace context, in practice).
    pub other_params: Vec<(String, Bytes)>,
}

impl RequestHeader {
    /// A header for `version` with no flags, basic intelligence and topology 0.
    pub fn new(message_id: u64, version: Version, cache_name: impl Into<Arc<str>>) -> Self {
        RequestHeader {
            message_id,
            version,
            cache_name: cache_name.into(),
            flags: Flags::default(),
            intelligence: Intelligence::BASIC,
            topology_id: 0,
            key_type: MediaType::None,
            value_type: MediaType::None,
            other_params: Vec::new(),
        }
    }

    /// The opcode of the request at the front of `buf`, if enough of it is there to tell.
    pub(crate) fn peek_opcode(buf: &[u8]) -> Option<OpCode> {
        let mut r = Reader::new(buf);
        if r.u8().ok()? != REQUEST_MAGIC {
            return None;
        }
        r.vlong("message id").ok()?;
        r.u8().ok()?;
        r.u8().ok().map(OpCode)
    }

    /// Decodes a header and returns it with the opcode that follows it.
    ///
    /// Inlined into the request decoder so that the header is built in place: returned through
    /// a call, the 96-byte value was copied with partial-width stores and reloads that stalled.
    #[inline(always)]
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        limits: &Limits,
        names: &mut CacheNames,
    ) -> Result<(RequestHeader, OpCode)> {
        let magic = r.u8()?;
        if magic != REQUEST_MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        let message_id = r.vlong("message id")?;
        let version = Version(r.u8()?);
        let opcode = OpCode(r.u8()?);
        if version < Version::V2_0 {
            return Err(DecodeError::UnknownVersion {
                message_id,
                version: version.0,
            });
        }
        Self::decode_rest(r, limits, names, message_id, version)
            .map(|h| (h, opcode))
            .map_err(|e| e.with_context(message_id, version, Some(opcode)))
    }

    #[inline(always)]
    fn decode_rest(
        r: &mut Reader<'_>,
        limits: &Limits,
        names: &mut CacheNames,
        message_id: u64,
        version: Version,
    ) -> Result<RequestHeader> {
        let n = r.count("cache name", limits.max_cache_name_len)?;
        let cache_name = names.intern(r.take(n)?)?;
        let flags = Flags(r.vint("flags")?);
        let intelligence = Intelligence(r.u8()?);
        let topology_id = r.vint("topology id")? as i32;
        let (key_type, value_type) = if version >= Version::V2_8 {
            (
                MediaType::decode_or_none(r, limits)?,
                MediaType::decode_or_none(r, limits)?,
            )
        } else {
            (MediaType::None, MediaType::None)
        };
        let mut other_params = Vec::new();
        if version >= Version::V4_0 {
            let n = r.count("other parameter count", limits.max_params)?;
            if n > 0 {
                other_params.reserve(n.min(4));
            }
            for _ in 0..n {
                let name = r.string("other parameter name", limits.max_string_len)?;
                let value = r.bytes("other parameter value", limits.max_string_len)?;
                other_params.push((name, value));
            }
        }
        Ok(RequestHeader {
            message_id,
            version,
            cache_name,
            flags,
            intelligence,
            topology_id,
            key_type,
            value_type,
            other_params,
        })
    }

    pub(crate) fn encode(&self, opcode: OpCode, dst: &mut BytesMut) {
        dst.put_u8(REQUEST_MAGIC);
        dst.put_vlong(self.message_id);
        dst.put_u8(self.version.0);
        dst.put_u8(opcode.0);
        dst.put_string(&self.cache_name);
        dst.put_vint(self.flags.0);
        dst.put_u8(self.intelligence.0);
        dst.put_vint(self.topology_id as u32);
        if self.version >= Version::V2_8 {
            self.key_type.encode(dst);
            self.value_type.encode(dst);
        }
        if self.version >= Version::V4_0 {
            dst.put_vint(len32(self.other_params.len()));
            for (name, value) in &self.other_params {
                dst.put_string(name);
                dst.put_array(value);
            }
        }
    }
}

/// The cache name a connection used last, so that the next request naming it shares the same
/// string instead of allocating and validating a new one.
#[derive(Debug, Clone)]
pub struct CacheNames {
    last: Arc<str>,
}

impl Default for CacheNames {
    fn default() -> Self {
        CacheNames {
            last: Arc::from(""),
        }
    }
}

impl CacheNames {
    #[inline(always)]
    fn intern(&mut self, raw: &[u8]) -> Result<Arc<str>> {
        if raw == self.last.as_bytes() {
            return Ok(self.last.clone());
        }
        self.intern_new(raw)
    }

    #[inline(never)]
    fn intern_new(&mut self, raw: &[u8]) -> Result<Arc<str>> {
        let name =
            std::str::from_utf8(raw).map_err(|_| malformed("cache name", Problem::InvalidUtf8))?;
        self.last = Arc::from(name);
        Ok(self.last.clone())
    }
}
