//! Expiration parameters of writes.
//!
//! 2.0 and 2.1 carry two vInt second counts whose 0 means "immortal" unless the header flags
//! DEFAULT_LIFESPAN / DEFAULT_MAX_IDLE say "cache default". From 2.2 one byte holds a time unit
//! per value (lifespan in the high nibble) and a vLong follows only for real units; the nibbles 7
//! (cache default) and 8 (infinite) carry no number. What the numbers mean (the 2.x rule that a
//! value above 30 days is an absolute time) is the server's business, not the codec's.

use bytes::{BufMut, BytesMut};

use crate::codes::{TimeUnit, Version};
use crate::error::EncodeError;
use crate::wire::{Reader, Result, WireWrite};

/// One expiration value of the 2.2+ encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeValue {
    /// Nibble 7: use the cache's configured value.
    Default,
    /// Nibble 8: never expire.
    Infinite,
    /// Nibbles 0–6: an amount of a unit. Other nibbles (9–15) decode here too, with a unit that
    /// [`TimeUnit::name`] does not know; a server refuses them.
    Amount { unit: TimeUnit, amount: u64 },
}

impl TimeValue {
    const DEFAULT_NIBBLE: u8 = 7;
    const INFINITE_NIBBLE: u8 = 8;

    fn nibble(self) -> u8 {
        match self {
            TimeValue::Default => Self::DEFAULT_NIBBLE,
            TimeValue::Infinite => Self::INFINITE_NIBBLE,
            TimeValue::Amount { unit, .. } => unit.0,
        }
    }

    fn decode(nibble: u8, r: &mut Reader<'_>, field: &'static str) -> Result<TimeValue> {
        match nibble {
            Self::DEFAULT_NIBBLE => Ok(TimeValue::Default),
            Self::INFINITE_NIBBLE => Ok(TimeValue::Infinite),
            // Nibbles 9-15 name no unit, but the reference still reads a number after them and
            // then refuses the request with a server error, keeping the stream in sync; the
            // codec does the same and leaves the refusal to the server.
            _ => Ok(TimeValue::Amount {
                unit: TimeUnit(nibble),
                amount: r.vlong(field)?,
            }),
        }
    }
}

/// The expiration parameters of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiration {
    /// Versions 2.0 and 2.1: whole seconds (the bit pattern of a Java int).
    Seconds { lifespan: i32, max_idle: i32 },
    /// Versions 2.2 and later.
    Units {
        lifespan: TimeValue,
        max_idle: TimeValue,
    },
}

impl Expiration {
    /// Both values left to the cache's defaults (`0x77` from 2.2 on).
    pub const DEFAULT: Expiration = Expiration::Units {
        lifespan: TimeValue::Default,
        max_idle: TimeValue::Default,
    };

    pub(crate) fn decode(r: &mut Reader<'_>, version: Version) -> Result<Expiration> {
        if version < Version::V2_2 {
            return Ok(Expiration::Seconds {
                lifespan: r.vint("lifespan")? as i32,
                max_idle: r.vint("max idle")? as i32,
            });
        }
        let units = r.u8()?;
        let lifespan = TimeValue::decode(units >> 4, r, "lifespan")?;
        let max_idle = TimeValue::decode(units & 0x0F, r, "max idle")?;
        Ok(Expiration::Units { lifespan, max_idle })
    }

    pub(crate) fn encode(
        &self,
        version: Version,
        dst: &mut BytesMut,
    ) -> std::result::Result<(), EncodeError> {
        match (self, version < Version::V2_2) {
            (Expiration::Seconds { lifespan, max_idle }, true) => {
                dst.put_vint(*lifespan as u32);
                dst.put_vint(*max_idle as u32);
            }
            (Expiration::Units { lifespan, max_idle }, false) => {
                dst.put_u8((lifespan.nibble() << 4) | max_idle.nibble());
                for value in [lifespan, max_idle] {
                    if let TimeValue::Amount { amount, .. } = value {
                        dst.put_vlong(*amount);
                    }
                }
            }
            _ => {
                return Err(EncodeError::Unrepresentable {
                    what: "this form of expiration",
                    version,
                })
            }
        }
        Ok(())
    }
}
