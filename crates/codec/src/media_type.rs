//! Media types as they appear in 2.8+ request headers and 2.9+ PING responses.

use bytes::{BufMut, BytesMut};

use crate::codes::MediaTypeId;
use crate::error::Problem;
use crate::limits::Limits;
use crate::wire::{malformed, Reader, Result, WireWrite};

/// A media type on the wire: kind 0 (none), 1 (predefined id) or 2 (custom name), the latter two
/// followed by parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MediaType {
    /// Kind 0: nothing follows, not even a parameter count.
    #[default]
    None,
    /// Kind 1: a predefined id.
    Predefined {
        id: MediaTypeId,
        params: Vec<(String, String)>,
    },
    /// Kind 2: a `type/subtype` string.
    Custom {
        name: String,
        params: Vec<(String, String)>,
    },
}

impl MediaType {
    /// A predefined media type without parameters, as clients usually send it.
    pub fn id(id: MediaTypeId) -> MediaType {
        MediaType::Predefined {
            id,
            params: Vec::new(),
        }
    }

    /// The `type/subtype` name, when the type is known.
    pub fn name(&self) -> Option<&str> {
        match self {
            MediaType::None => None,
            MediaType::Predefined { id, .. } => id.name(),
            MediaType::Custom { name, .. } => Some(name),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<MediaType> {
        let kind = r.u8()?;
        let mt = match kind {
            0 => return Ok(MediaType::None),
            1 => MediaType::Predefined {
                id: MediaTypeId(r.vint("media type id")?),
                params: Self::decode_params(r, limits)?,
            },
            2 => MediaType::Custom {
                name: r.string("media type name", limits.max_string_len)?,
                params: Self::decode_params(r, limits)?,
            },
            other => return Err(malformed("media type kind", Problem::MediaTypeKind(other))),
        };
        Ok(mt)
    }

    fn decode_params(r: &mut Reader<'_>, limits: &Limits) -> Result<Vec<(String, String)>> {
        let n = r.count("media type parameter count", limits.max_params)?;
        let mut params = Vec::new();
        for _ in 0..n {
            let name = r.string("media type parameter name", limits.max_string_len)?;
            let value = r.string("media type parameter value", limits.max_string_len)?;
            params.push((name, value));
        }
        Ok(params)
    }

    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        let params = match self {
            MediaType::None => {
                dst.put_u8(0);
                return;
            }
            MediaType::Predefined { id, params } => {
                dst.put_u8(1);
                dst.put_vint(id.0);
                params
            }
            MediaType::Custom { name, params } => {
                dst.put_u8(2);
                dst.put_string(name);
                params
            }
        };
        dst.put_vint(crate::wire::len32(params.len()));
        for (k, v) in params {
            dst.put_string(k);
            dst.put_string(v);
        }
    }
}
