//! Event frames the server pushes between responses: cache-entry events (0x60–0x63) and counter
//! events (0x66).

use bytes::{BufMut, Bytes, BytesMut};

use crate::codes::{OpCode, Status};
use crate::error::Problem;
use crate::header::RESPONSE_MAGIC;
use crate::limits::Limits;
use crate::wire::{malformed, Reader, Result, WireWrite};

/// Which cache-entry event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Created,
    Modified,
    Removed,
    Expired,
}

impl EventKind {
    pub fn opcode(self) -> OpCode {
        match self {
            EventKind::Created => OpCode::CACHE_ENTRY_CREATED_EVENT,
            EventKind::Modified => OpCode::CACHE_ENTRY_MODIFIED_EVENT,
            EventKind::Removed => OpCode::CACHE_ENTRY_REMOVED_EVENT,
            EventKind::Expired => OpCode::CACHE_ENTRY_EXPIRED_EVENT,
        }
    }

    pub fn from_opcode(op: OpCode) -> Option<EventKind> {
        match op {
            OpCode::CACHE_ENTRY_CREATED_EVENT => Some(EventKind::Created),
            OpCode::CACHE_ENTRY_MODIFIED_EVENT => Some(EventKind::Modified),
            OpCode::CACHE_ENTRY_REMOVED_EVENT => Some(EventKind::Removed),
            OpCode::CACHE_ENTRY_EXPIRED_EVENT => Some(EventKind::Expired),
            _ => None,
        }
    }

    /// The interest bit of ADD_CLIENT_LISTENER (2.6+) that selects this kind.
    pub fn interest_bit(self) -> u32 {
        match self {
            EventKind::Created => 0x01,
            EventKind::Modified => 0x02,
            EventKind::Removed => 0x04,
            EventKind::Expired => 0x08,
        }
    }

    /// Created and modified events carry the entry version.
    fn has_version(self) -> bool {
        matches!(self, EventKind::Created | EventKind::Modified)
    }
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPayload {
    /// Marker 0: the key, and for created/modified the entry's version (the key comes first).
    Plain { key: Bytes, version: Option<i64> },
    /// Marker 1 (marshalled) or 2 (raw, 2.1+ listeners that asked for raw data): converter
    /// output.
    Custom { raw: bool, data: Bytes },
}

/// A cache-entry event frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEvent {
    /// The add-listener request's id for include-current-state events, else 0.
    pub message_id: u64,
    pub kind: EventKind,
    pub listener_id: Bytes,
    /// Set when the event comes from a retried command (never for expired).
    pub retried: bool,
    pub payload: EventPayload,
}

/// A counter event frame (message id is always 0 from the reference server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterEvent {
    pub message_id: u64,
    pub counter_name: String,
    pub listener_id: Bytes,
    /// Bits 0–1 old state, bits 2–3 new state (valid, lower bound, upper bound reached).
    pub state: u8,
    pub old_value: i64,
    pub new_value: i64,
}

fn encode_event_header(message_id: u64, opcode: OpCode, dst: &mut BytesMut) {
    dst.put_u8(RESPONSE_MAGIC);
    dst.put_vlong(message_id);
    dst.put_u8(opcode.0);
    dst.put_u8(Status::SUCCESS.0);
    dst.put_u8(0);
}

/// Events always carry status 0 and no topology.
fn decode_event_header(r: &mut Reader<'_>) -> Result<()> {
    if r.u8()? != 0 || r.u8()? != 0 {
        return Err(malformed("event header", Problem::EventHeader));
    }
    Ok(())
}

impl CacheEvent {
    pub fn encode(&self, dst: &mut BytesMut) {
        encode_event_header(self.message_id, self.kind.opcode(), dst);
        dst.put_array(&self.listener_id);
        match &self.payload {
            EventPayload::Plain { key, version } => {
                dst.put_u8(0);
                dst.put_bool(self.retried);
                dst.put_array(key);
                if self.kind.has_version() {
                    dst.put_i64(version.unwrap_or(0));
                }
            }
            EventPayload::Custom { raw, data } => {
                dst.put_u8(if *raw { 2 } else { 1 });
                dst.put_bool(self.retried);
                dst.put_array(data);
            }
        }
    }

    pub(crate) fn decode_after_opcode(
        r: &mut Reader<'_>,
        message_id: u64,
        kind: EventKind,
        l: &Limits,
    ) -> Result<CacheEvent> {
        decode_event_header(r)?;
        let listener_id = r.bytes("listener id", l.max_string_len)?;
        let marker = r.u8()?;
        let retried = r.bool()?;
        let payload = match marker {
            0 => {
                let key = r.bytes("key", l.max_key_len)?;
                let version = if kind.has_version() {
                    Some(r.i64()?)
                } else {
                    None
                };
                EventPayload::Plain { key, version }
            }
            1 | 2 => EventPayload::Custom {
                raw: marker == 2,
                data: r.bytes("event data", l.max_value_len)?,
            },
            other => return Err(malformed("event marker", Problem::EventMarker(other))),
        };
        Ok(CacheEvent {
            message_id,
            kind,
            listener_id,
            retried,
            payload,
        })
    }
}

impl CounterEvent {
    pub fn encode(&self, dst: &mut BytesMut) {
        encode_event_header(self.message_id, OpCode::COUNTER_EVENT, dst);
        dst.put_string(&self.counter_name);
        dst.put_array(&self.listener_id);
        dst.put_u8(self.state);
        dst.put_i64(self.old_value);
        dst.put_i64(self.new_value);
    }

    pub(crate) fn decode_after_opcode(
        r: &mut Reader<'_>,
        message_id: u64,
        l: &Limits,
    ) -> Result<CounterEvent> {
        decode_event_header(r)?;
        Ok(CounterEvent {
            message_id,
            counter_name: r.string("counter name", l.max_string_len)?,
            listener_id: r.bytes("listener id", l.max_string_len)?,
            state: r.u8()?,
            old_value: r.i64()?,
            new_value: r.i64()?,
        })
    }
}
