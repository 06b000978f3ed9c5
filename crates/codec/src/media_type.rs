//! Media types as they appear in 2.8+ request headers and 2.9+ PING responses.

use bytes::{BufMut, BytesMut};

use crate::codes::MediaTypeId;
use crate::error::Problem;
use crate::limits::Limits;
use crate::wire::{malformed, Reader, Result, WireWrite};

/// A media type on the wire: kind 0 (none), 1 (predefined id) or 2 (custom name), the latter two
/// followed by parameters.
///
/// Every 2.8+ request header carries two of these and nearly always without parameters, so the
/// rare parts (parameters, a custom name) are boxed: the header stays small enough to move
/// cheaply on the per-request path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MediaType {
    /// Kind 0: nothing follows, not even a parameter count.
    #[default]
    None,
    /// Kind 1: a predefined id.
    Predefined { id: MediaTypeId, params: Params },
    /// Kind 2: a `type/subtype` string.
    Custom(Box<CustomMediaType>),
}

/// A media type named by a `type/subtype` string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomMediaType {
    pub name: String,
    pub params: Vec<(String, String)>,
}

/// A media type's name → value parameters; no allocation when there are none.
///
/// A boxed `Vec` rather than a `Vec` or boxed slice: one thin pointer (8 bytes, null when
/// empty) instead of 24 or 16, which is what keeps [`MediaType`] at 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(clippy::box_collection)]
pub struct Params(Option<Box<Vec<(String, String)>>>);

impl Params {
    pub fn as_slice(&self) -> &[(String, String)] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl From<Vec<(String, String)>> for Params {
    fn from(params: Vec<(String, String)>) -> Self {
        Params((!params.is_empty()).then(|| Box::new(params)))
    }
}

impl MediaType {
    /// A predefined media type without parameters, as clients usually send it.
    pub fn id(id: MediaTypeId) -> MediaType {
        MediaType::Predefined {
            id,
            params: Params::default(),
        }
    }

    /// A custom media type.
    pub fn custom(name: impl Into<String>, params: Vec<(String, String)>) -> MediaType {
        MediaType::Custom(Box::new(CustomMediaType {
            name: name.into(),
            params,
        }))
    }

    /// The `type/subtype` name, when the type is known.
    pub fn name(&self) -> Option<&str> {
        match self {
            MediaType::None => None,
            MediaType::Predefined { id, .. } => id.name(),
            MediaType::Custom(custom) => Some(&custom.name),
        }
    }

    /// [`MediaType::decode`] with the usual kind 0 (no media type) read inline: a header
    /// carries two media types, and most clients send neither.
    #[inline(always)]
    pub(crate) fn decode_or_none(r: &mut Reader<'_>, limits: &Limits) -> Result<MediaType> {
        if r.peek() == Some(0) {
            r.skip(1);
            return Ok(MediaType::None);
        }
        Self::decode(r, limits)
    }

    pub(crate) fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<MediaType> {
        let kind = r.u8()?;
        let mt = match kind {
            0 => return Ok(MediaType::None),
            1 => MediaType::Predefined {
                id: MediaTypeId(r.vint("media type id")?),
                params: Self::decode_params(r, limits)?.into(),
            },
            2 => MediaType::custom(
                r.string("media type name", limits.max_string_len)?,
                Self::decode_params(r, limits)?,
            ),
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
                params.as_slice()
            }
            MediaType::Custom(custom) => {
                dst.put_u8(2);
                dst.put_string(&custom.name);
                &custom.params
            }
        };
        dst.put_vint(crate::wire::len32(params.len()));
        for (k, v) in params {
            dst.put_string(k);
            dst.put_string(v);
        }
    }
}
