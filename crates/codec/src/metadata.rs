//! The entry metadata block and the previous-value block of responses.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codes::Version;
use crate::error::Problem;
use crate::limits::Limits;
use crate::wire::{malformed, Reader, Result, WireWrite};

/// A mortal lifespan or max-idle as the metadata block carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Created (for a lifespan) or last used (for max-idle), in ms since the epoch.
    pub since: i64,
    /// The duration in whole seconds (the entry's milliseconds divided by 1000).
    pub seconds: i32,
}

/// Entry metadata: lifespan and max-idle (absent when infinite) and the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMetadata {
    pub lifespan: Option<Lifetime>,
    pub max_idle: Option<Lifetime>,
    pub version: i64,
}

impl EntryMetadata {
    const INFINITE_LIFESPAN: u8 = 0x01;
    const INFINITE_MAX_IDLE: u8 = 0x02;

    /// The block written for "no entry" in a 4.0 previous value: both infinite, version -1.
    pub const ABSENT: EntryMetadata = EntryMetadata {
        lifespan: None,
        max_idle: None,
        version: -1,
    };

    /// An immortal entry of the given version.
    pub fn immortal(version: i64) -> EntryMetadata {
        EntryMetadata {
            lifespan: None,
            max_idle: None,
            version,
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<EntryMetadata> {
        let flags = r.u8()?;
        if flags & !(Self::INFINITE_LIFESPAN | Self::INFINITE_MAX_IDLE) != 0 {
            return Err(malformed("metadata flags", Problem::MetadataFlags(flags)));
        }
        let lifespan = if flags & Self::INFINITE_LIFESPAN == 0 {
            Some(Lifetime {
                since: r.i64()?,
                seconds: r.vint("lifespan")? as i32,
            })
        } else {
            None
        };
        let max_idle = if flags & Self::INFINITE_MAX_IDLE == 0 {
            Some(Lifetime {
                since: r.i64()?,
                seconds: r.vint("max idle")? as i32,
            })
        } else {
            None
        };
        Ok(EntryMetadata {
            lifespan,
            max_idle,
            version: r.i64()?,
        })
    }

    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        let mut flags = 0;
        if self.lifespan.is_none() {
            flags |= Self::INFINITE_LIFESPAN;
        }
        if self.max_idle.is_none() {
            flags |= Self::INFINITE_MAX_IDLE;
        }
        dst.put_u8(flags);
        for lt in [self.lifespan, self.max_idle].into_iter().flatten() {
            dst.put_i64(lt.since);
            dst.put_vint(lt.seconds as u32);
        }
        dst.put_i64(self.version);
    }
}

/// The previous value that a write's response carries after a "with previous" status.
///
/// Before 4.0 it is only the value bytes, empty meaning "none". From 4.0 the entry's metadata
/// comes first; a server with no previous entry writes [`EntryMetadata::ABSENT`], which is what
/// `metadata: None` encodes to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PreviousValue {
    pub metadata: Option<EntryMetadata>,
    pub value: Bytes,
}

impl PreviousValue {
    pub(crate) fn decode(r: &mut Reader<'_>, version: Version, limits: &Limits) -> Result<Self> {
        let metadata = if version >= Version::V4_0 {
            Some(EntryMetadata::decode(r)?)
        } else {
            None
        };
        Ok(PreviousValue {
            metadata,
            value: r.bytes("previous value", limits.max_value_len)?,
        })
    }

    pub(crate) fn encode(&self, version: Version, dst: &mut BytesMut) {
        if version >= Version::V4_0 {
            self.metadata.unwrap_or(EntryMetadata::ABSENT).encode(dst);
        }
        dst.put_array(&self.value);
    }
}
