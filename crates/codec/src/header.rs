//! The request header, decoded per request: its layout depends on the version byte it carries.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codes::{Flags, Intelligence, OpCode, Version};
use crate::error::DecodeError;
use crate::limits::Limits;
use crate::media_type::MediaType;
use crate::wire::{len32, Reader, Result, WireWrite};

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
    /// Empty for the server's default cache.
    pub cache_name: String,
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
    pub fn new(message_id: u64, version: Version, cache_name: impl Into<String>) -> Self {
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

    /// Decodes a header and returns it with the opcode that follows it.
    pub(crate) fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<(RequestHeader, OpCode)> {
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
        Self::decode_rest(r, limits, message_id, version)
            .map(|h| (h, opcode))
            .map_err(|e| e.with_context(message_id, version, Some(opcode)))
    }

    fn decode_rest(
        r: &mut Reader<'_>,
        limits: &Limits,
        message_id: u64,
        version: Version,
    ) -> Result<RequestHeader> {
        let cache_name = r.string("cache name", limits.max_cache_name_len)?;
        let flags = Flags(r.vint("flags")?);
        let intelligence = Intelligence(r.u8()?);
        let topology_id = r.vint("topology id")? as i32;
        let (key_type, value_type) = if version >= Version::V2_8 {
            (MediaType::decode(r, limits)?, MediaType::decode(r, limits)?)
        } else {
            (MediaType::None, MediaType::None)
        };
        let mut other_params = Vec::new();
        if version >= Version::V4_0 {
            let n = r.count("other parameter count", limits.max_params)?;
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
