//! Responses: the header every answer shares and a body whose layout follows the response
//! opcode, the status and the version of the request being answered.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codes::{Intelligence, OpCode, Status, Version};
use crate::error::{DecodeError, Problem};
use crate::header::RESPONSE_MAGIC;
use crate::limits::Limits;
use crate::media_type::MediaType;
use crate::metadata::{EntryMetadata, PreviousValue};
use crate::request::{CounterConfig, Xid};
use crate::topology::Topology;
use crate::wire::{len32, malformed, Reader, Result, Scratch, WireWrite};

/// What a client remembers of a request in flight so it can parse the answer: the response
/// header carries no version, and the topology layout depends on the client's intelligence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext {
    pub version: Version,
    pub intelligence: Intelligence,
}

/// A whole response frame (never an event; see [`crate::ServerMessage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub message_id: u64,
    /// The version of the request this answers. It is not on the wire: it selects the body's
    /// layout.
    pub version: Version,
    /// The response opcode, or [`OpCode::ERROR`].
    pub opcode: OpCode,
    pub status: Status,
    pub topology: Option<Topology>,
    pub body: ResponseBody,
}

/// The server's answer to PING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingInfo {
    /// From 2.9: the cache's key and value storage types.
    pub key_type: MediaType,
    pub value_type: MediaType,
    /// From 3.0: the server's highest version and the request opcodes it implements (two bytes
    /// each).
    pub server_version: Version,
    pub operations: Vec<u16>,
}

/// One entry of an ITERATION_NEXT batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IterationEntry {
    /// From 2.5, when the iteration asked for metadata.
    pub metadata: Option<EntryMetadata>,
    pub key: Bytes,
    /// One value, or one per projection.
    pub values: Vec<Bytes>,
}

/// An ITERATION_NEXT answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IterationBatch {
    /// BitSet bytes of the segments this batch completed.
    pub finished_segments: Bytes,
    /// From 2.4, written only when there are entries; 1 for plain values.
    pub projections: u32,
    pub entries: Vec<IterationEntry>,
}

/// A response body. Which variant a response carries is fixed by its opcode and status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseBody {
    /// Status only.
    Empty,
    /// GET, QUERY and EXEC results.
    Value(Bytes),
    /// After a "with previous" status of a cache write.
    Previous(PreviousValue),
    /// GET_WITH_VERSION.
    VersionedValue {
        version: i64,
        value: Bytes,
    },
    /// GET_WITH_METADATA and the legacy GET_STREAM.
    MetadataValue {
        metadata: EntryMetadata,
        value: Bytes,
    },
    Ping(PingInfo),
    Stats(Vec<(String, String)>),
    /// SIZE and MULTIMAP_SIZE.
    Size(u64),
    /// GET_ALL: a counted list of entries.
    Entries(Vec<(Bytes, Bytes)>),
    /// BULK_GET: entries each preceded by a 1 byte, ended by a 0 byte.
    BulkEntries(Vec<(Bytes, Bytes)>),
    /// BULK_GET_KEYS: keys each preceded by a 1 byte, ended by a 0 byte.
    BulkKeys(Vec<Bytes>),
    /// AUTH_MECH_LIST mechanisms and COUNTER_GET_NAMES names.
    Names(Vec<String>),
    Auth {
        completed: bool,
        challenge: Bytes,
    },
    IterationId(Bytes),
    IterationBatch(IterationBatch),
    /// PREPARE_TX, PREPARE_TX_2, COMMIT_TX and ROLLBACK_TX: an XA return code.
    XaCode(i32),
    /// FETCH_TX_RECOVERY: prepared transactions.
    Xids(Vec<Xid>),
    CounterConfig(CounterConfig),
    /// Counter values.
    Long(i64),
    /// Multimap predicates.
    Bool(bool),
    MultimapValues(Vec<Bytes>),
    MultimapMetadataValues {
        metadata: EntryMetadata,
        values: Vec<Bytes>,
    },
    /// PUT_STREAM_START.
    StreamId(i32),
    /// GET_STREAM_START (with metadata) and GET_STREAM_NEXT (without).
    StreamChunk {
        stream_id: i32,
        complete: bool,
        metadata: Option<EntryMetadata>,
        data: Bytes,
    },
    /// The message of an error frame.
    Error(String),
}

impl Response {
    /// An error frame.
    pub fn error(
        message_id: u64,
        version: Version,
        status: Status,
        message: impl Into<String>,
    ) -> Self {
        Response {
            message_id,
            version,
            opcode: OpCode::ERROR,
            status,
            topology: None,
            body: ResponseBody::Error(message.into()),
        }
    }

    /// A response to `request` with no body.
    pub fn status_only(message_id: u64, version: Version, request: OpCode, status: Status) -> Self {
        Response {
            message_id,
            version,
            opcode: request.response(),
            status,
            topology: None,
            body: ResponseBody::Empty,
        }
    }

    /// Appends the response's bytes to `dst` (the server's side).
    pub fn encode(&self, dst: &mut BytesMut) {
        encode_head(
            self.message_id,
            self.opcode,
            self.status,
            self.topology.as_ref(),
            dst,
        );
        self.body.encode(self.version, dst);
    }

    /// Appends a response whose body is one value (GET, QUERY, EXEC) from a borrowed value:
    /// the same bytes as a [`Response`] with [`ResponseBody::Value`], without owning the value,
    /// so that a server can encode a cached value straight from its storage.
    pub fn encode_value(
        message_id: u64,
        opcode: OpCode,
        status: Status,
        topology: Option<&Topology>,
        value: &[u8],
        dst: &mut BytesMut,
    ) {
        match topology {
            // The common case in one copy for the head and length, one for the value.
            None => {
                let mut head = Scratch::<HEAD_MAX>::new();
                head_bytes(&mut head, message_id, opcode, status, 0);
                head.vint(len32(value.len()));
                dst.reserve(head.as_slice().len() + value.len());
                dst.extend_from_slice(head.as_slice());
                dst.extend_from_slice(value);
            }
            Some(_) => {
                encode_head(message_id, opcode, status, topology, dst);
                dst.put_array(value);
            }
        }
    }

    /// Decodes a response whose header (magic, id, opcode) was already read.
    pub(crate) fn decode_after_opcode(
        r: &mut Reader<'_>,
        message_id: u64,
        opcode: OpCode,
        ctx: RequestContext,
        limits: &Limits,
    ) -> Result<Response> {
        let status = Status(r.u8()?);
        let topology = match r.u8()? {
            0 => None,
            1 => Some(Topology::decode(
                r,
                ctx.intelligence == Intelligence::HASH_DISTRIBUTION_AWARE,
                limits,
            )?),
            other => return Err(malformed("topology marker", Problem::TopologyMarker(other))),
        };
        let body = ResponseBody::decode(r, opcode, status, ctx.version, limits)?;
        Ok(Response {
            message_id,
            version: ctx.version,
            opcode,
            status,
            topology,
            body,
        })
    }
}

impl ResponseBody {
    fn decode(
        r: &mut Reader<'_>,
        op: OpCode,
        status: Status,
        v: Version,
        l: &Limits,
    ) -> Result<Self> {
        let ok = status.is_success();
        let value = |r: &mut Reader<'_>| r.bytes("value", l.max_value_len);
        let body = match op {
            OpCode::ERROR => ResponseBody::Error(r.string("error message", l.max_value_len)?),
            OpCode::PUT_RESPONSE
            | OpCode::PUT_IF_ABSENT_RESPONSE
            | OpCode::REPLACE_RESPONSE
            | OpCode::REPLACE_IF_UNMODIFIED_RESPONSE
            | OpCode::REMOVE_RESPONSE
            | OpCode::REMOVE_IF_UNMODIFIED_RESPONSE
            | OpCode::PUT_STREAM_RESPONSE
            | OpCode::PUT_STREAM_NEXT_RESPONSE
                if status.has_previous() =>
            {
                ResponseBody::Previous(PreviousValue::decode(r, v, l)?)
            }
            OpCode::GET_RESPONSE | OpCode::QUERY_RESPONSE | OpCode::EXEC_RESPONSE if ok => {
                ResponseBody::Value(value(r)?)
            }
            OpCode::GET_WITH_VERSION_RESPONSE if ok => ResponseBody::VersionedValue {
                version: r.i64()?,
                value: value(r)?,
            },
            OpCode::GET_WITH_METADATA_RESPONSE | OpCode::GET_STREAM_RESPONSE if ok => {
                ResponseBody::MetadataValue {
                    metadata: EntryMetadata::decode(r)?,
                    value: value(r)?,
                }
            }
            OpCode::PING_RESPONSE if ok => ResponseBody::Ping(PingInfo::decode(r, v, l)?),
            OpCode::STATS_RESPONSE if ok => {
                let n = r.count("statistics count", l.max_entries)?;
                let mut stats = Vec::new();
                for _ in 0..n {
                    let name = r.string("statistic name", l.max_string_len)?;
                    stats.push((name, r.string("statistic value", l.max_string_len)?));
                }
                ResponseBody::Stats(stats)
            }
            OpCode::SIZE_RESPONSE | OpCode::MULTIMAP_SIZE_RESPONSE if ok => {
                ResponseBody::Size(r.vlong("size")?)
            }
            OpCode::GET_ALL_RESPONSE if ok => {
                let n = r.count("entry count", l.max_entries)?;
                let mut entries = Vec::new();
                for _ in 0..n {
                    entries.push((r.bytes("key", l.max_key_len)?, value(r)?));
                }
                ResponseBody::Entries(entries)
            }
            OpCode::BULK_GET_RESPONSE if ok => {
                let mut entries = Vec::new();
                while r.u8()? != 0 {
                    if entries.len() >= l.max_entries {
                        return Err(too_many("bulk entries", l.max_entries));
                    }
                    entries.push((r.bytes("key", l.max_key_len)?, value(r)?));
                }
                ResponseBody::BulkEntries(entries)
            }
            OpCode::BULK_GET_KEYS_RESPONSE if ok => {
                let mut keys = Vec::new();
                while r.u8()? != 0 {
                    if keys.len() >= l.max_entries {
                        return Err(too_many("bulk keys", l.max_entries));
                    }
                    keys.push(r.bytes("key", l.max_key_len)?);
                }
                ResponseBody::BulkKeys(keys)
            }
            OpCode::AUTH_MECH_LIST_RESPONSE | OpCode::COUNTER_GET_NAMES_RESPONSE if ok => {
                let n = r.count("name count", l.max_entries)?;
                let mut names = Vec::new();
                for _ in 0..n {
                    names.push(r.string("name", l.max_string_len)?);
                }
                ResponseBody::Names(names)
            }
            OpCode::AUTH_RESPONSE if ok => ResponseBody::Auth {
                completed: r.bool()?,
                challenge: r.bytes("SASL challenge", l.max_string_len)?,
            },
            OpCode::ITERATION_START_RESPONSE if ok => {
                ResponseBody::IterationId(r.bytes("iteration id", l.max_string_len)?)
            }
            OpCode::ITERATION_NEXT_RESPONSE if ok || status == Status::INVALID_ITERATION => {
                ResponseBody::IterationBatch(IterationBatch::decode(r, v, l)?)
            }
            OpCode::PREPARE_TX_RESPONSE
            | OpCode::PREPARE_TX_2_RESPONSE
            | OpCode::COMMIT_TX_RESPONSE
            | OpCode::ROLLBACK_TX_RESPONSE
                if status == Status::SUCCESS =>
            {
                ResponseBody::XaCode(r.i32()?)
            }
            OpCode::FETCH_TX_RECOVERY_RESPONSE if ok => {
                let n = r.count("xid count", l.max_entries)?;
                let mut xids = Vec::new();
                for _ in 0..n {
                    xids.push(Xid::decode(r)?);
                }
                ResponseBody::Xids(xids)
            }
            OpCode::COUNTER_GET_CONFIGURATION_RESPONSE if ok => {
                ResponseBody::CounterConfig(CounterConfig::decode(r)?)
            }
            OpCode::COUNTER_ADD_AND_GET_RESPONSE
            | OpCode::COUNTER_GET_RESPONSE
            | OpCode::COUNTER_CAS_RESPONSE
            | OpCode::COUNTER_GET_AND_SET_RESPONSE
                if status == Status::SUCCESS =>
            {
                ResponseBody::Long(r.i64()?)
            }
            OpCode::MULTIMAP_GET_RESPONSE if ok => {
                ResponseBody::MultimapValues(Self::decode_values(r, l)?)
            }
            OpCode::MULTIMAP_GET_WITH_METADATA_RESPONSE if ok => {
                ResponseBody::MultimapMetadataValues {
                    metadata: EntryMetadata::decode(r)?,
                    values: Self::decode_values(r, l)?,
                }
            }
            OpCode::MULTIMAP_REMOVE_KEY_RESPONSE
            | OpCode::MULTIMAP_REMOVE_ENTRY_RESPONSE
            | OpCode::MULTIMAP_CONTAINS_ENTRY_RESPONSE
            | OpCode::MULTIMAP_CONTAINS_KEY_RESPONSE
            | OpCode::MULTIMAP_CONTAINS_VALUE_RESPONSE
                if ok =>
            {
                ResponseBody::Bool(r.bool()?)
            }
            OpCode::PUT_STREAM_START_RESPONSE if ok => ResponseBody::StreamId(r.i32()?),
            OpCode::GET_STREAM_START_RESPONSE | OpCode::GET_STREAM_NEXT_RESPONSE if ok => {
                let stream_id = r.i32()?;
                let complete = r.bool()?;
                let metadata = if op == OpCode::GET_STREAM_START_RESPONSE {
                    Some(EntryMetadata::decode(r)?)
                } else {
                    None
                };
                ResponseBody::StreamChunk {
                    stream_id,
                    complete,
                    metadata,
                    data: value(r)?,
                }
            }
            other if other.request().is_none() => {
                return Err(malformed("response opcode", Problem::UnknownResponse))
            }
            _ => ResponseBody::Empty,
        };
        Ok(body)
    }

    fn decode_values(r: &mut Reader<'_>, l: &Limits) -> Result<Vec<Bytes>> {
        let n = r.count("value count", l.max_entries)?;
        let mut values = Vec::new();
        for _ in 0..n {
            values.push(r.bytes("value", l.max_value_len)?);
        }
        Ok(values)
    }

    fn encode(&self, v: Version, dst: &mut BytesMut) {
        match self {
            ResponseBody::Empty => {}
            ResponseBody::Value(b) | ResponseBody::IterationId(b) => dst.put_array(b),
            ResponseBody::Previous(p) => p.encode(v, dst),
            ResponseBody::VersionedValue { version, value } => {
                dst.put_i64(*version);
                dst.put_array(value);
            }
            ResponseBody::MetadataValue { metadata, value } => {
                metadata.encode(dst);
                dst.put_array(value);
            }
            ResponseBody::Ping(p) => p.encode(v, dst),
            ResponseBody::Stats(stats) => {
                dst.put_vint(len32(stats.len()));
                for (name, value) in stats {
                    dst.put_string(name);
                    dst.put_string(value);
                }
            }
            ResponseBody::Size(n) => dst.put_vlong(*n),
            ResponseBody::Entries(entries) => {
                dst.put_vint(len32(entries.len()));
                for (k, val) in entries {
                    dst.put_array(k);
                    dst.put_array(val);
                }
            }
            ResponseBody::BulkEntries(entries) => {
                for (k, val) in entries {
                    dst.put_u8(1);
                    dst.put_array(k);
                    dst.put_array(val);
                }
                dst.put_u8(0);
            }
            ResponseBody::BulkKeys(keys) => {
                for k in keys {
                    dst.put_u8(1);
                    dst.put_array(k);
                }
                dst.put_u8(0);
            }
            ResponseBody::Names(names) => {
                dst.put_vint(len32(names.len()));
                for n in names {
                    dst.put_string(n);
                }
            }
            ResponseBody::Auth {
                completed,
                challenge,
            } => {
                dst.put_bool(*completed);
                dst.put_array(challenge);
            }
            ResponseBody::IterationBatch(b) => b.encode(v, dst),
            ResponseBody::XaCode(code) => dst.put_i32(*code),
            ResponseBody::Xids(xids) => {
                dst.put_vint(len32(xids.len()));
                for x in xids {
                    x.encode(dst);
                }
            }
            ResponseBody::CounterConfig(c) => c.encode(dst),
            ResponseBody::Long(n) => dst.put_i64(*n),
            ResponseBody::Bool(b) => dst.put_bool(*b),
            ResponseBody::MultimapValues(values) => encode_values(values, dst),
            ResponseBody::MultimapMetadataValues { metadata, values } => {
                metadata.encode(dst);
                encode_values(values, dst);
            }
            ResponseBody::StreamId(id) => dst.put_i32(*id),
            ResponseBody::StreamChunk {
                stream_id,
                complete,
                metadata,
                data,
            } => {
                dst.put_i32(*stream_id);
                dst.put_bool(*complete);
                if let Some(m) = metadata {
                    m.encode(dst);
                }
                dst.put_array(data);
            }
            ResponseBody::Error(message) => dst.put_string(message),
        }
    }
}

fn encode_head(
    message_id: u64,
    opcode: OpCode,
    status: Status,
    topology: Option<&Topology>,
    dst: &mut BytesMut,
) {
    let mut head = Scratch::<HEAD_MAX>::new();
    head_bytes(
        &mut head,
        message_id,
        opcode,
        status,
        u8::from(topology.is_some()),
    );
    dst.extend_from_slice(head.as_slice());
    if let Some(t) = topology {
        t.encode(dst);
    }
}

/// Magic, vLong id (at most 10 bytes), opcode, status, topology marker, and room for a vInt
/// length (5) after them.
const HEAD_MAX: usize = 24;

fn head_bytes(
    head: &mut Scratch<HEAD_MAX>,
    message_id: u64,
    opcode: OpCode,
    status: Status,
    topology_marker: u8,
) {
    head.u8(RESPONSE_MAGIC);
    head.vlong(message_id);
    head.u8(opcode.0);
    head.u8(status.0);
    head.u8(topology_marker);
}

fn encode_values(values: &[Bytes], dst: &mut BytesMut) {
    dst.put_vint(len32(values.len()));
    for v in values {
        dst.put_array(v);
    }
}

fn too_many(field: &'static str, limit: usize) -> DecodeError {
    DecodeError::TooLarge {
        message_id: None,
        version: None,
        opcode: None,
        field,
        declared: limit as u64 + 1,
        limit,
    }
}

impl PingInfo {
    fn decode(r: &mut Reader<'_>, v: Version, l: &Limits) -> Result<PingInfo> {
        let mut info = PingInfo {
            key_type: MediaType::None,
            value_type: MediaType::None,
            server_version: v,
            operations: Vec::new(),
        };
        if v >= Version::V2_9 {
            info.key_type = MediaType::decode(r, l)?;
            info.value_type = MediaType::decode(r, l)?;
        }
        if v >= Version::V3_0 {
            info.server_version = Version(r.u8()?);
            let n = r.count("operation count", l.max_params)?;
            for _ in 0..n {
                info.operations.push(r.u16()?);
            }
        }
        Ok(info)
    }

    fn encode(&self, v: Version, dst: &mut BytesMut) {
        if v >= Version::V2_9 {
            self.key_type.encode(dst);
            self.value_type.encode(dst);
        }
        if v >= Version::V3_0 {
            dst.put_u8(self.server_version.0);
            dst.put_vint(len32(self.operations.len()));
            for op in &self.operations {
                dst.put_u16(*op);
            }
        }
    }
}

impl IterationBatch {
    fn decode(r: &mut Reader<'_>, v: Version, l: &Limits) -> Result<IterationBatch> {
        let finished_segments = r.bytes("finished segments", l.max_string_len)?;
        let n = r.count("entry count", l.max_entries)?;
        let projections = if v >= Version::V2_4 && n > 0 {
            r.vint("projection count")?
        } else {
            1
        };
        let per_entry = (projections as usize).min(l.max_params.max(1));
        if per_entry != projections as usize {
            return Err(too_many("projection count", l.max_params));
        }
        let mut entries = Vec::new();
        for _ in 0..n {
            let metadata = if v >= Version::V2_5 {
                match r.u8()? {
                    0 => None,
                    1 => Some(EntryMetadata::decode(r)?),
                    other => {
                        return Err(malformed("metadata marker", Problem::MetadataMarker(other)))
                    }
                }
            } else {
                None
            };
            let key = r.bytes("key", l.max_key_len)?;
            let mut values = Vec::new();
            for _ in 0..per_entry {
                values.push(r.bytes("value", l.max_value_len)?);
            }
            entries.push(IterationEntry {
                metadata,
                key,
                values,
            });
        }
        Ok(IterationBatch {
            finished_segments,
            projections,
            entries,
        })
    }

    fn encode(&self, v: Version, dst: &mut BytesMut) {
        dst.put_array(&self.finished_segments);
        dst.put_vint(len32(self.entries.len()));
        if v >= Version::V2_4 && !self.entries.is_empty() {
            dst.put_vint(self.projections);
        }
        for e in &self.entries {
            if v >= Version::V2_5 {
                match &e.metadata {
                    None => dst.put_u8(0),
                    Some(m) => {
                        dst.put_u8(1);
                        m.encode(dst);
                    }
                }
            }
            dst.put_array(&e.key);
            for val in &e.values {
                dst.put_array(val);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::ServerAddress;

    #[test]
    fn borrowed_value_encodes_like_an_owned_one() {
        let topology = Topology {
            id: 1,
            servers: vec![ServerAddress {
                host: "h".into(),
                port: 11222,
            }],
            segments: None,
        };
        for t in [None, Some(topology)] {
            let owned = Response {
                message_id: 300,
                version: Version::V4_0,
                opcode: OpCode::GET_RESPONSE,
                status: Status::SUCCESS,
                topology: t.clone(),
                body: ResponseBody::Value(Bytes::from_static(b"value")),
            };
            let mut a = BytesMut::new();
            owned.encode(&mut a);
            let mut b = BytesMut::new();
            Response::encode_value(
                300,
                OpCode::GET_RESPONSE,
                Status::SUCCESS,
                t.as_ref(),
                b"value",
                &mut b,
            );
            assert_eq!(a, b);
        }
    }
}
