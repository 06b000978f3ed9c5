//! Requests: a header and a typed body for every opcode a client may send.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codes::{OpCode, Version};
use crate::error::{DecodeError, EncodeError, Problem};
use crate::expiration::Expiration;
use crate::header::{CacheNames, RequestHeader};
use crate::limits::Limits;
use crate::wire::{len32, malformed, Reader, Result, WireWrite};

/// A whole request frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub header: RequestHeader,
    pub op: Op,
}

/// A client-listener or iteration filter/converter factory and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factory {
    /// Never empty: an empty name on the wire means "no factory".
    pub name: String,
    pub params: Vec<Bytes>,
}

/// The body of ADD_CLIENT_LISTENER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerRegistration {
    pub listener_id: Bytes,
    pub include_current_state: bool,
    pub filter: Option<Factory>,
    pub converter: Option<Factory>,
    /// From 2.1.
    pub raw_data: bool,
    /// From 2.6: 0x01 created, 0x02 modified, 0x04 removed, 0x08 expired; 0 means all.
    pub interests: u32,
}

/// A transaction id as XA defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xid {
    pub format_id: i32,
    /// At most 64 bytes.
    pub global_id: Bytes,
    /// At most 64 bytes.
    pub branch_qualifier: Bytes,
}

/// One write of a remote transaction, with what the client read before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modification {
    pub key: Bytes,
    /// Bits: 0x01 not read, 0x02 did not exist, 0x04 remove.
    pub control: u8,
    /// Present unless the control byte says "not read" or "did not exist".
    pub version_read: Option<i64>,
    /// The new value and its expiration; absent for a removal.
    pub write: Option<(Expiration, Bytes)>,
}

impl Modification {
    pub const NOT_READ: u8 = 0x01;
    pub const NON_EXISTING: u8 = 0x02;
    pub const REMOVE: u8 = 0x04;
}

/// A counter's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterConfig {
    /// Bits: 0x01 weak (else strong), 0x02 bounded, 0x04 persistent (else volatile).
    pub flags: u8,
    /// Weak counters only.
    pub concurrency_level: Option<u32>,
    /// Bounded counters only: lower, upper.
    pub bounds: Option<(i64, i64)>,
    pub initial_value: i64,
}

impl CounterConfig {
    pub const WEAK: u8 = 0x01;
    pub const BOUNDED: u8 = 0x02;
    pub const PERSISTENT: u8 = 0x04;
}

/// A request body, one variant per opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    Put {
        key: Bytes,
        expiration: Expiration,
        value: Bytes,
    },
    Get {
        key: Bytes,
    },
    PutIfAbsent {
        key: Bytes,
        expiration: Expiration,
        value: Bytes,
    },
    Replace {
        key: Bytes,
        expiration: Expiration,
        value: Bytes,
    },
    ReplaceIfUnmodified {
        key: Bytes,
        expiration: Expiration,
        version: i64,
        value: Bytes,
    },
    Remove {
        key: Bytes,
    },
    RemoveIfUnmodified {
        key: Bytes,
        version: i64,
    },
    ContainsKey {
        key: Bytes,
    },
    GetWithVersion {
        key: Bytes,
    },
    Clear,
    Stats,
    Ping,
    /// 0 means every entry.
    BulkGet {
        count: u32,
    },
    GetWithMetadata {
        key: Bytes,
    },
    BulkGetKeys {
        scope: u32,
    },
    Query {
        query: Bytes,
    },
    AuthMechList,
    Auth {
        mechanism: String,
        response: Bytes,
    },
    AddClientListener(Box<ListenerRegistration>),
    RemoveClientListener {
        listener_id: Bytes,
    },
    Size,
    Exec {
        task: String,
        params: Vec<(String, Bytes)>,
    },
    PutAll {
        expiration: Expiration,
        entries: Vec<(Bytes, Bytes)>,
    },
    GetAll {
        keys: Vec<Bytes>,
    },
    IterationStart {
        /// A `java.util.BitSet` byte array; `None` means every segment.
        segments: Option<Bytes>,
        /// Parameters travel from 2.4 on.
        filter: Option<Factory>,
        batch_size: u32,
        /// From 2.4.
        include_metadata: bool,
    },
    IterationNext {
        iteration_id: Bytes,
    },
    IterationEnd {
        iteration_id: Bytes,
    },
    GetStream {
        key: Bytes,
        offset: u32,
    },
    /// The value arrives in chunks ended by an empty one; they are kept so the frame re-encodes
    /// byte for byte. `version`: 0 put, < 0 put-if-absent, > 0 replace-if-unmodified.
    PutStream {
        key: Bytes,
        expiration: Expiration,
        version: i64,
        chunks: Vec<Bytes>,
    },
    PrepareTx {
        xid: Xid,
        one_phase: bool,
        modifications: Vec<Modification>,
    },
    CommitTx {
        xid: Xid,
    },
    RollbackTx {
        xid: Xid,
    },
    AddBloomFilterListener {
        listener_id: Bytes,
        bloom_bits: u32,
    },
    UpdateBloomFilter {
        bits: Bytes,
    },
    CounterCreate {
        name: String,
        config: CounterConfig,
    },
    CounterGetConfiguration {
        name: String,
    },
    CounterIsDefined {
        name: String,
    },
    CounterAddAndGet {
        name: String,
        delta: i64,
    },
    CounterReset {
        name: String,
    },
    CounterGet {
        name: String,
    },
    CounterCas {
        name: String,
        expect: i64,
        update: i64,
    },
    CounterAddListener {
        name: String,
        listener_id: Bytes,
    },
    CounterRemoveListener {
        name: String,
        listener_id: Bytes,
    },
    CounterRemove {
        name: String,
    },
    CounterGetNames,
    /// `supports_duplicates` travels from 4.0 on.
    MultimapGet {
        key: Bytes,
        supports_duplicates: bool,
    },
    MultimapGetWithMetadata {
        key: Bytes,
        supports_duplicates: bool,
    },
    MultimapPut {
        key: Bytes,
        expiration: Expiration,
        value: Bytes,
        supports_duplicates: bool,
    },
    MultimapRemoveKey {
        key: Bytes,
        supports_duplicates: bool,
    },
    MultimapRemoveEntry {
        key: Bytes,
        expiration: Expiration,
        value: Bytes,
        supports_duplicates: bool,
    },
    MultimapSize {
        supports_duplicates: bool,
    },
    MultimapContainsEntry {
        key: Bytes,
        expiration: Expiration,
        value: Bytes,
        supports_duplicates: bool,
    },
    MultimapContainsKey {
        key: Bytes,
        supports_duplicates: bool,
    },
    MultimapContainsValue {
        expiration: Expiration,
        value: Bytes,
        supports_duplicates: bool,
    },
    ForgetTx {
        xid: Xid,
    },
    FetchTxRecovery,
    PrepareTx2 {
        xid: Xid,
        one_phase: bool,
        recoverable: bool,
        timeout_ms: i64,
        modifications: Vec<Modification>,
    },
    CounterGetAndSet {
        name: String,
        value: i64,
    },
    PutStreamStart {
        key: Bytes,
        expiration: Expiration,
        version: i64,
    },
    PutStreamNext {
        stream_id: i32,
        last: bool,
        chunk: Bytes,
    },
    PutStreamEnd {
        stream_id: i32,
    },
    GetStreamStart {
        key: Bytes,
        batch_size: u32,
    },
    GetStreamNext {
        stream_id: i32,
    },
    GetStreamEnd {
        stream_id: i32,
    },
}

impl Request {
    /// Decodes one request from the front of `buf`, returning it and the bytes it took.
    ///
    /// Fails with [`DecodeError::Incomplete`] when `buf` holds only part of a frame.
    pub fn decode(
        buf: &[u8],
        limits: &Limits,
    ) -> std::result::Result<(Request, usize), DecodeError> {
        Self::decode_with(buf, limits, &mut CacheNames::default())
    }

    /// [`Request::decode`], sharing the cache name with earlier requests of the connection
    /// through `names`.
    pub fn decode_with(
        buf: &[u8],
        limits: &Limits,
        names: &mut CacheNames,
    ) -> std::result::Result<(Request, usize), DecodeError> {
        Self::decode_from(Reader::new(buf), limits, names)
    }

    /// [`Request::decode_with`] where the request's byte fields (keys, values, ids) are slices
    /// of `buf` rather than copies. They keep `buf`'s whole allocation alive: whoever stores
    /// one beyond the request copies it out.
    pub fn decode_shared(
        buf: &Bytes,
        limits: &Limits,
        names: &mut CacheNames,
    ) -> std::result::Result<(Request, usize), DecodeError> {
        Self::decode_from(Reader::shared(buf), limits, names)
    }

    #[inline(always)]
    fn decode_from(
        mut r: Reader<'_>,
        limits: &Limits,
        names: &mut CacheNames,
    ) -> std::result::Result<(Request, usize), DecodeError> {
        let (header, opcode) = RequestHeader::decode(&mut r, limits, names)?;
        let op = Op::decode(opcode, &mut r, header.version, limits)
            .map_err(|e| e.with_context(header.message_id, header.version, Some(opcode)))?;
        Ok((Request { header, op }, r.position()))
    }

    /// Appends the request's bytes to `dst` (the client's side).
    pub fn encode(&self, dst: &mut BytesMut) -> std::result::Result<(), EncodeError> {
        let start = dst.len();
        self.header.encode(self.op.opcode(), dst);
        let res = self.op.encode(self.header.version, dst);
        if res.is_err() {
            dst.truncate(start);
        }
        res
    }

    pub fn opcode(&self) -> OpCode {
        self.op.opcode()
    }
}

fn dup(r: &mut Reader<'_>, version: Version) -> Result<bool> {
    if version >= Version::V4_0 {
        r.bool()
    } else {
        Ok(false)
    }
}

impl Op {
    pub fn opcode(&self) -> OpCode {
        match self {
            Op::Put { .. } => OpCode::PUT,
            Op::Get { .. } => OpCode::GET,
            Op::PutIfAbsent { .. } => OpCode::PUT_IF_ABSENT,
            Op::Replace { .. } => OpCode::REPLACE,
            Op::ReplaceIfUnmodified { .. } => OpCode::REPLACE_IF_UNMODIFIED,
            Op::Remove { .. } => OpCode::REMOVE,
            Op::RemoveIfUnmodified { .. } => OpCode::REMOVE_IF_UNMODIFIED,
            Op::ContainsKey { .. } => OpCode::CONTAINS_KEY,
            Op::GetWithVersion { .. } => OpCode::GET_WITH_VERSION,
            Op::Clear => OpCode::CLEAR,
            Op::Stats => OpCode::STATS,
            Op::Ping => OpCode::PING,
            Op::BulkGet { .. } => OpCode::BULK_GET,
            Op::GetWithMetadata { .. } => OpCode::GET_WITH_METADATA,
            Op::BulkGetKeys { .. } => OpCode::BULK_GET_KEYS,
            Op::Query { .. } => OpCode::QUERY,
            Op::AuthMechList => OpCode::AUTH_MECH_LIST,
            Op::Auth { .. } => OpCode::AUTH,
            Op::AddClientListener(_) => OpCode::ADD_CLIENT_LISTENER,
            Op::RemoveClientListener { .. } => OpCode::REMOVE_CLIENT_LISTENER,
            Op::Size => OpCode::SIZE,
            Op::Exec { .. } => OpCode::EXEC,
            Op::PutAll { .. } => OpCode::PUT_ALL,
            Op::GetAll { .. } => OpCode::GET_ALL,
            Op::IterationStart { .. } => OpCode::ITERATION_START,
            Op::IterationNext { .. } => OpCode::ITERATION_NEXT,
            Op::IterationEnd { .. } => OpCode::ITERATION_END,
            Op::GetStream { .. } => OpCode::GET_STREAM,
            Op::PutStream { .. } => OpCode::PUT_STREAM,
            Op::PrepareTx { .. } => OpCode::PREPARE_TX,
            Op::CommitTx { .. } => OpCode::COMMIT_TX,
            Op::RollbackTx { .. } => OpCode::ROLLBACK_TX,
            Op::AddBloomFilterListener { .. } => OpCode::ADD_BLOOM_FILTER_LISTENER,
            Op::UpdateBloomFilter { .. } => OpCode::UPDATE_BLOOM_FILTER,
            Op::CounterCreate { .. } => OpCode::COUNTER_CREATE,
            Op::CounterGetConfiguration { .. } => OpCode::COUNTER_GET_CONFIGURATION,
            Op::CounterIsDefined { .. } => OpCode::COUNTER_IS_DEFINED,
            Op::CounterAddAndGet { .. } => OpCode::COUNTER_ADD_AND_GET,
            Op::CounterReset { .. } => OpCode::COUNTER_RESET,
            Op::CounterGet { .. } => OpCode::COUNTER_GET,
            Op::CounterCas { .. } => OpCode::COUNTER_CAS,
            Op::CounterAddListener { .. } => OpCode::COUNTER_ADD_LISTENER,
            Op::CounterRemoveListener { .. } => OpCode::COUNTER_REMOVE_LISTENER,
            Op::CounterRemove { .. } => OpCode::COUNTER_REMOVE,
            Op::CounterGetNames => OpCode::COUNTER_GET_NAMES,
            Op::MultimapGet { .. } => OpCode::MULTIMAP_GET,
            Op::MultimapGetWithMetadata { .. } => OpCode::MULTIMAP_GET_WITH_METADATA,
            Op::MultimapPut { .. } => OpCode::MULTIMAP_PUT,
            Op::MultimapRemoveKey { .. } => OpCode::MULTIMAP_REMOVE_KEY,
            Op::MultimapRemoveEntry { .. } => OpCode::MULTIMAP_REMOVE_ENTRY,
            Op::MultimapSize { .. } => OpCode::MULTIMAP_SIZE,
            Op::MultimapContainsEntry { .. } => OpCode::MULTIMAP_CONTAINS_ENTRY,
            Op::MultimapContainsKey { .. } => OpCode::MULTIMAP_CONTAINS_KEY,
            Op::MultimapContainsValue { .. } => OpCode::MULTIMAP_CONTAINS_VALUE,
            Op::ForgetTx { .. } => OpCode::FORGET_TX,
            Op::FetchTxRecovery => OpCode::FETCH_TX_RECOVERY,
            Op::PrepareTx2 { .. } => OpCode::PREPARE_TX_2,
            Op::CounterGetAndSet { .. } => OpCode::COUNTER_GET_AND_SET,
            Op::PutStreamStart { .. } => OpCode::PUT_STREAM_START,
            Op::PutStreamNext { .. } => OpCode::PUT_STREAM_NEXT,
            Op::PutStreamEnd { .. } => OpCode::PUT_STREAM_END,
            Op::GetStreamStart { .. } => OpCode::GET_STREAM_START,
            Op::GetStreamNext { .. } => OpCode::GET_STREAM_NEXT,
            Op::GetStreamEnd { .. } => OpCode::GET_STREAM_END,
        }
    }

    /// The key this operation addresses, for hash routing and access checks.
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Op::Put { key, .. }
            | Op::Get { key }
            | Op::PutIfAbsent { key, .. }
            | Op::Replace { key, .. }
            | Op::ReplaceIfUnmodified { key, .. }
            | Op::Remove { key }
            | Op::RemoveIfUnmodified { key, .. }
            | Op::ContainsKey { key }
            | Op::GetWithVersion { key }
            | Op::GetWithMetadata { key }
            | Op::GetStream { key, .. }
            | Op::PutStream { key, .. }
            | Op::MultimapGet { key, .. }
            | Op::MultimapGetWithMetadata { key, .. }
            | Op::MultimapPut { key, .. }
            | Op::MultimapRemoveKey { key, .. }
            | Op::MultimapRemoveEntry { key, .. }
            | Op::MultimapContainsEntry { key, .. }
            | Op::MultimapContainsKey { key, .. }
            | Op::PutStreamStart { key, .. }
            | Op::GetStreamStart { key, .. } => Some(key),
            _ => None,
        }
    }

    fn decode(opcode: OpCode, r: &mut Reader<'_>, v: Version, l: &Limits) -> Result<Op> {
        let key = |r: &mut Reader<'_>| r.bytes("key", l.max_key_len);
        let value = |r: &mut Reader<'_>| r.bytes("value", l.max_value_len);
        let exp = |r: &mut Reader<'_>| Expiration::decode(r, v);
        let name = |r: &mut Reader<'_>| r.string("counter name", l.max_string_len);
        let listener_id = |r: &mut Reader<'_>| r.bytes("listener id", l.max_string_len);
        let op = match opcode {
            OpCode::PUT => Op::Put {
                key: key(r)?,
                expiration: exp(r)?,
                value: value(r)?,
            },
            OpCode::GET => Op::Get { key: key(r)? },
            OpCode::PUT_IF_ABSENT => Op::PutIfAbsent {
                key: key(r)?,
                expiration: exp(r)?,
                value: value(r)?,
            },
            OpCode::REPLACE => Op::Replace {
                key: key(r)?,
                expiration: exp(r)?,
                value: value(r)?,
            },
            OpCode::REPLACE_IF_UNMODIFIED => Op::ReplaceIfUnmodified {
                key: key(r)?,
                expiration: exp(r)?,
                version: r.i64()?,
                value: value(r)?,
            },
            OpCode::REMOVE => Op::Remove { key: key(r)? },
            OpCode::REMOVE_IF_UNMODIFIED => Op::RemoveIfUnmodified {
                key: key(r)?,
                version: r.i64()?,
            },
            OpCode::CONTAINS_KEY => Op::ContainsKey { key: key(r)? },
            OpCode::GET_WITH_VERSION => Op::GetWithVersion { key: key(r)? },
            OpCode::CLEAR => Op::Clear,
            OpCode::STATS => Op::Stats,
            OpCode::PING => Op::Ping,
            OpCode::BULK_GET => Op::BulkGet {
                count: r.vint("entry count")?,
            },
            OpCode::GET_WITH_METADATA => Op::GetWithMetadata { key: key(r)? },
            OpCode::BULK_GET_KEYS => Op::BulkGetKeys {
                scope: r.vint("scope")?,
            },
            OpCode::QUERY => Op::Query {
                query: r.bytes("query", l.max_value_len)?,
            },
            OpCode::AUTH_MECH_LIST => Op::AuthMechList,
            OpCode::AUTH => Op::Auth {
                mechanism: r.string("mechanism", l.max_string_len)?,
                response: r.bytes("SASL response", l.max_string_len)?,
            },
            OpCode::ADD_CLIENT_LISTENER => {
                Op::AddClientListener(Box::new(ListenerRegistration::decode(r, v, l)?))
            }
            OpCode::REMOVE_CLIENT_LISTENER => Op::RemoveClientListener {
                listener_id: listener_id(r)?,
            },
            OpCode::SIZE => Op::Size,
            OpCode::EXEC => {
                let task = r.string("task name", l.max_string_len)?;
                // Clients write a vInt; the reference reads a byte. They agree below 128.
                let n = r.count("task parameter count", l.max_params)?;
                let mut params = Vec::new();
                for _ in 0..n {
                    let pname = r.string("task parameter name", l.max_string_len)?;
                    params.push((pname, r.bytes("task parameter value", l.max_value_len)?));
                }
                Op::Exec { task, params }
            }
            OpCode::PUT_ALL => {
                let expiration = exp(r)?;
                let n = r.count("entry count", l.max_entries)?;
                let mut entries = Vec::new();
                for _ in 0..n {
                    entries.push((key(r)?, value(r)?));
                }
                Op::PutAll {
                    expiration,
                    entries,
                }
            }
            OpCode::GET_ALL => {
                let n = r.count("key count", l.max_entries)?;
                let mut keys = Vec::new();
                for _ in 0..n {
                    keys.push(key(r)?);
                }
                Op::GetAll { keys }
            }
            OpCode::ITERATION_START => {
                let segments = r.opt_bytes("segments", l.max_string_len)?;
                let filter = match r.opt_string("filter converter factory", l.max_string_len)? {
                    None => None,
                    Some(name) => {
                        let mut params = Vec::new();
                        if v >= Version::V2_4 {
                            let n = r.u8_count("filter parameter count", l.max_params)?;
                            for _ in 0..n {
                                params.push(r.bytes("filter parameter", l.max_value_len)?);
                            }
                        }
                        Some(Factory { name, params })
                    }
                };
                let batch_size = r.vint("batch size")?;
                let include_metadata = if v >= Version::V2_4 { r.bool()? } else { false };
                Op::IterationStart {
                    segments,
                    filter,
                    batch_size,
                    include_metadata,
                }
            }
            OpCode::ITERATION_NEXT => Op::IterationNext {
                iteration_id: r.bytes("iteration id", l.max_string_len)?,
            },
            OpCode::ITERATION_END => Op::IterationEnd {
                iteration_id: r.bytes("iteration id", l.max_string_len)?,
            },
            OpCode::GET_STREAM => Op::GetStream {
                key: key(r)?,
                offset: r.vint("offset")?,
            },
            OpCode::PUT_STREAM => {
                let (key, expiration, version) = (key(r)?, exp(r)?, r.i64()?);
                let mut chunks = Vec::new();
                let mut total = 0usize;
                loop {
                    let n = r.count("chunk length", l.max_value_len.saturating_sub(total))?;
                    if n == 0 {
                        break;
                    }
                    total += n;
                    chunks.push(r.take_bytes(n)?);
                }
                Op::PutStream {
                    key,
                    expiration,
                    version,
                    chunks,
                }
            }
            OpCode::PREPARE_TX => Op::PrepareTx {
                xid: Xid::decode(r)?,
                one_phase: r.bool()?,
                modifications: Modification::decode_list(r, v, l)?,
            },
            OpCode::COMMIT_TX => Op::CommitTx {
                xid: Xid::decode(r)?,
            },
            OpCode::ROLLBACK_TX => Op::RollbackTx {
                xid: Xid::decode(r)?,
            },
            OpCode::ADD_BLOOM_FILTER_LISTENER => Op::AddBloomFilterListener {
                listener_id: listener_id(r)?,
                bloom_bits: r.vint("bloom bits")?,
            },
            OpCode::UPDATE_BLOOM_FILTER => Op::UpdateBloomFilter {
                bits: r.bytes("bloom filter", l.max_value_len)?,
            },
            OpCode::COUNTER_CREATE => Op::CounterCreate {
                name: name(r)?,
                config: CounterConfig::decode(r)?,
            },
            OpCode::COUNTER_GET_CONFIGURATION => Op::CounterGetConfiguration { name: name(r)? },
            OpCode::COUNTER_IS_DEFINED => Op::CounterIsDefined { name: name(r)? },
            OpCode::COUNTER_ADD_AND_GET => Op::CounterAddAndGet {
                name: name(r)?,
                delta: r.i64()?,
            },
            OpCode::COUNTER_RESET => Op::CounterReset { name: name(r)? },
            OpCode::COUNTER_GET => Op::CounterGet { name: name(r)? },
            OpCode::COUNTER_CAS => Op::CounterCas {
                name: name(r)?,
                expect: r.i64()?,
                update: r.i64()?,
            },
            OpCode::COUNTER_ADD_LISTENER => Op::CounterAddListener {
                name: name(r)?,
                listener_id: listener_id(r)?,
            },
            OpCode::COUNTER_REMOVE_LISTENER => Op::CounterRemoveListener {
                name: name(r)?,
                listener_id: listener_id(r)?,
            },
            OpCode::COUNTER_REMOVE => Op::CounterRemove { name: name(r)? },
            OpCode::COUNTER_GET_NAMES => Op::CounterGetNames,
            OpCode::COUNTER_GET_AND_SET => Op::CounterGetAndSet {
                name: name(r)?,
                value: r.i64()?,
            },
            OpCode::MULTIMAP_GET => Op::MultimapGet {
                key: key(r)?,
                supports_duplicates: dup(r, v)?,
            },
            OpCode::MULTIMAP_GET_WITH_METADATA => Op::MultimapGetWithMetadata {
                key: key(r)?,
                supports_duplicates: dup(r, v)?,
            },
            OpCode::MULTIMAP_PUT => Op::MultimapPut {
                key: key(r)?,
                expiration: exp(r)?,
                value: value(r)?,
                supports_duplicates: dup(r, v)?,
            },
            OpCode::MULTIMAP_REMOVE_KEY => Op::MultimapRemoveKey {
                key: key(r)?,
                supports_duplicates: dup(r, v)?,
            },
            OpCode::MULTIMAP_REMOVE_ENTRY => Op::MultimapRemoveEntry {
                key: key(r)?,
                expiration: exp(r)?,
                value: value(r)?,
                supports_duplicates: dup(r, v)?,
            },
            OpCode::MULTIMAP_SIZE => Op::MultimapSize {
                supports_duplicates: dup(r, v)?,
            },
            OpCode::MULTIMAP_CONTAINS_ENTRY => Op::MultimapContainsEntry {
                key: key(r)?,
                expiration: exp(r)?,
                value: value(r)?,
                supports_duplicates: dup(r, v)?,
            },
            OpCode::MULTIMAP_CONTAINS_KEY => Op::MultimapContainsKey {
                key: key(r)?,
                supports_duplicates: dup(r, v)?,
            },
            OpCode::MULTIMAP_CONTAINS_VALUE => Op::MultimapContainsValue {
                expiration: exp(r)?,
                value: value(r)?,
                supports_duplicates: dup(r, v)?,
            },
            OpCode::FORGET_TX => Op::ForgetTx {
                xid: Xid::decode(r)?,
            },
            OpCode::FETCH_TX_RECOVERY => Op::FetchTxRecovery,
            OpCode::PREPARE_TX_2 => Op::PrepareTx2 {
                xid: Xid::decode(r)?,
                one_phase: r.bool()?,
                recoverable: r.bool()?,
                timeout_ms: r.i64()?,
                modifications: Modification::decode_list(r, v, l)?,
            },
            OpCode::PUT_STREAM_START => Op::PutStreamStart {
                key: key(r)?,
                expiration: exp(r)?,
                version: r.i64()?,
            },
            OpCode::PUT_STREAM_NEXT => {
                let stream_id = r.i32()?;
                let last = r.bool()?;
                let chunk = r.bytes("chunk", l.max_value_len)?;
                if chunk.is_empty() {
                    return Err(malformed("chunk length", Problem::EmptyChunk));
                }
                Op::PutStreamNext {
                    stream_id,
                    last,
                    chunk,
                }
            }
            OpCode::PUT_STREAM_END => Op::PutStreamEnd {
                stream_id: r.i32()?,
            },
            OpCode::GET_STREAM_START => Op::GetStreamStart {
                key: key(r)?,
                batch_size: r.vint("batch size")?,
            },
            OpCode::GET_STREAM_NEXT => Op::GetStreamNext {
                stream_id: r.i32()?,
            },
            OpCode::GET_STREAM_END => Op::GetStreamEnd {
                stream_id: r.i32()?,
            },
            other => {
                return Err(DecodeError::UnknownOpcode {
                    message_id: 0,
                    version: v,
                    opcode: other,
                })
            }
        };
        Ok(op)
    }

    fn encode(&self, v: Version, dst: &mut BytesMut) -> std::result::Result<(), EncodeError> {
        match self {
            Op::Put {
                key,
                expiration,
                value,
            }
            | Op::PutIfAbsent {
                key,
                expiration,
                value,
            }
            | Op::Replace {
                key,
                expiration,
                value,
            } => {
                dst.put_array(key);
                expiration.encode(v, dst)?;
                dst.put_array(value);
            }
            Op::ReplaceIfUnmodified {
                key,
                expiration,
                version,
                value,
            } => {
                dst.put_array(key);
                expiration.encode(v, dst)?;
                dst.put_i64(*version);
                dst.put_array(value);
            }
            Op::Get { key }
            | Op::Remove { key }
            | Op::ContainsKey { key }
            | Op::GetWithVersion { key }
            | Op::GetWithMetadata { key } => dst.put_array(key),
            Op::RemoveIfUnmodified { key, version } => {
                dst.put_array(key);
                dst.put_i64(*version);
            }
            Op::Clear
            | Op::Stats
            | Op::Ping
            | Op::AuthMechList
            | Op::Size
            | Op::CounterGetNames
            | Op::FetchTxRecovery => {}
            Op::BulkGet { count } => dst.put_vint(*count),
            Op::BulkGetKeys { scope } => dst.put_vint(*scope),
            Op::Query { query } => dst.put_array(query),
            Op::Auth {
                mechanism,
                response,
            } => {
                dst.put_string(mechanism);
                dst.put_array(response);
            }
            Op::AddClientListener(reg) => reg.encode(v, dst)?,
            Op::RemoveClientListener { listener_id } => dst.put_array(listener_id),
            Op::Exec { task, params } => {
                dst.put_string(task);
                dst.put_vint(len32(params.len()));
                for (name, value) in params {
                    dst.put_string(name);
                    dst.put_array(value);
                }
            }
            Op::PutAll {
                expiration,
                entries,
            } => {
                expiration.encode(v, dst)?;
                dst.put_vint(len32(entries.len()));
                for (k, val) in entries {
                    dst.put_array(k);
                    dst.put_array(val);
                }
            }
            Op::GetAll { keys } => {
                dst.put_vint(len32(keys.len()));
                for k in keys {
                    dst.put_array(k);
                }
            }
            Op::IterationStart {
                segments,
                filter,
                batch_size,
                include_metadata,
            } => {
                dst.put_opt_array(segments.as_deref());
                dst.put_opt_array(filter.as_ref().map(|f| f.name.as_bytes()));
                if let (Some(f), true) = (filter, v >= Version::V2_4) {
                    put_u8_count(dst, f.params.len(), "iteration filter parameters", v)?;
                    for p in &f.params {
                        dst.put_array(p);
                    }
                }
                dst.put_vint(*batch_size);
                if v >= Version::V2_4 {
                    dst.put_bool(*include_metadata);
                }
            }
            Op::IterationNext { iteration_id } | Op::IterationEnd { iteration_id } => {
                dst.put_array(iteration_id)
            }
            Op::GetStream { key, offset } => {
                dst.put_array(key);
                dst.put_vint(*offset);
            }
            Op::PutStream {
                key,
                expiration,
                version,
                chunks,
            } => {
                dst.put_array(key);
                expiration.encode(v, dst)?;
                dst.put_i64(*version);
                for c in chunks.iter().filter(|c| !c.is_empty()) {
                    dst.put_array(c);
                }
                dst.put_vint(0);
            }
            Op::PrepareTx {
                xid,
                one_phase,
                modifications,
            } => {
                xid.encode(dst);
                dst.put_bool(*one_phase);
                Modification::encode_list(modifications, v, dst)?;
            }
            Op::PrepareTx2 {
                xid,
                one_phase,
                recoverable,
                timeout_ms,
                modifications,
            } => {
                xid.encode(dst);
                dst.put_bool(*one_phase);
                dst.put_bool(*recoverable);
                dst.put_i64(*timeout_ms);
                Modification::encode_list(modifications, v, dst)?;
            }
            Op::CommitTx { xid } | Op::RollbackTx { xid } | Op::ForgetTx { xid } => xid.encode(dst),
            Op::AddBloomFilterListener {
                listener_id,
                bloom_bits,
            } => {
                dst.put_array(listener_id);
                dst.put_vint(*bloom_bits);
            }
            Op::UpdateBloomFilter { bits } => dst.put_array(bits),
            Op::CounterCreate { name, config } => {
                dst.put_string(name);
                config.encode(dst);
            }
            Op::CounterGetConfiguration { name }
            | Op::CounterIsDefined { name }
            | Op::CounterReset { name }
            | Op::CounterGet { name }
            | Op::CounterRemove { name } => dst.put_string(name),
            Op::CounterAddAndGet { name, delta: n } | Op::CounterGetAndSet { name, value: n } => {
                dst.put_string(name);
                dst.put_i64(*n);
            }
            Op::CounterCas {
                name,
                expect,
                update,
            } => {
                dst.put_string(name);
                dst.put_i64(*expect);
                dst.put_i64(*update);
            }
            Op::CounterAddListener { name, listener_id }
            | Op::CounterRemoveListener { name, listener_id } => {
                dst.put_string(name);
                dst.put_array(listener_id);
            }
            Op::MultimapGet {
                key,
                supports_duplicates,
            }
            | Op::MultimapGetWithMetadata {
                key,
                supports_duplicates,
            }
            | Op::MultimapRemoveKey {
                key,
                supports_duplicates,
            }
            | Op::MultimapContainsKey {
                key,
                supports_duplicates,
            } => {
                dst.put_array(key);
                put_dup(dst, v, *supports_duplicates);
            }
            Op::MultimapPut {
                key,
                expiration,
                value,
                supports_duplicates,
            }
            | Op::MultimapRemoveEntry {
                key,
                expiration,
                value,
                supports_duplicates,
            }
            | Op::MultimapContainsEntry {
                key,
                expiration,
                value,
                supports_duplicates,
            } => {
                dst.put_array(key);
                expiration.encode(v, dst)?;
                dst.put_array(value);
                put_dup(dst, v, *supports_duplicates);
            }
            Op::MultimapSize {
                supports_duplicates,
            } => put_dup(dst, v, *supports_duplicates),
            Op::MultimapContainsValue {
                expiration,
                value,
                supports_duplicates,
            } => {
                expiration.encode(v, dst)?;
                dst.put_array(value);
                put_dup(dst, v, *supports_duplicates);
            }
            Op::PutStreamStart {
                key,
                expiration,
                version,
            } => {
                dst.put_array(key);
                expiration.encode(v, dst)?;
                dst.put_i64(*version);
            }
            Op::PutStreamNext {
                stream_id,
                last,
                chunk,
            } => {
                dst.put_i32(*stream_id);
                dst.put_bool(*last);
                dst.put_array(chunk);
            }
            Op::PutStreamEnd { stream_id }
            | Op::GetStreamNext { stream_id }
            | Op::GetStreamEnd { stream_id } => dst.put_i32(*stream_id),
            Op::GetStreamStart { key, batch_size } => {
                dst.put_array(key);
                dst.put_vint(*batch_size);
            }
        }
        Ok(())
    }
}

fn put_dup(dst: &mut BytesMut, v: Version, dup: bool) {
    if v >= Version::V4_0 {
        dst.put_bool(dup);
    }
}

fn put_u8_count(
    dst: &mut BytesMut,
    n: usize,
    what: &'static str,
    version: Version,
) -> std::result::Result<(), EncodeError> {
    let n = u8::try_from(n).map_err(|_| EncodeError::Unrepresentable { what, version })?;
    dst.put_u8(n);
    Ok(())
}

impl Factory {
    /// An optional factory: a name (empty for none) then, for a named one, a one-byte count of
    /// parameters.
    fn decode(r: &mut Reader<'_>, what: &'static str, l: &Limits) -> Result<Option<Factory>> {
        let name = r.string(what, l.max_string_len)?;
        if name.is_empty() {
            return Ok(None);
        }
        let n = r.u8_count("factory parameter count", l.max_params)?;
        let mut params = Vec::new();
        for _ in 0..n {
            params.push(r.bytes("factory parameter", l.max_value_len)?);
        }
        Ok(Some(Factory { name, params }))
    }

    fn encode(
        f: Option<&Factory>,
        v: Version,
        dst: &mut BytesMut,
    ) -> std::result::Result<(), EncodeError> {
        match f {
            Some(f) if !f.name.is_empty() => {
                dst.put_string(&f.name);
                put_u8_count(dst, f.params.len(), "listener factory parameters", v)?;
                for p in &f.params {
                    dst.put_array(p);
                }
            }
            _ => dst.put_vint(0),
        }
        Ok(())
    }
}

impl ListenerRegistration {
    fn decode(r: &mut Reader<'_>, v: Version, l: &Limits) -> Result<Self> {
        let listener_id = r.bytes("listener id", l.max_string_len)?;
        let include_current_state = r.bool()?;
        let filter = Factory::decode(r, "filter factory", l)?;
        let converter = Factory::decode(r, "converter factory", l)?;
        let raw_data = if v >= Version::V2_1 { r.bool()? } else { false };
        let interests = if v >= Version::V2_6 {
            r.vint("listener interests")?
        } else {
            0
        };
        Ok(ListenerRegistration {
            listener_id,
            include_current_state,
            filter,
            converter,
            raw_data,
            interests,
        })
    }

    fn encode(&self, v: Version, dst: &mut BytesMut) -> std::result::Result<(), EncodeError> {
        dst.put_array(&self.listener_id);
        dst.put_bool(self.include_current_state);
        Factory::encode(self.filter.as_ref(), v, dst)?;
        Factory::encode(self.converter.as_ref(), v, dst)?;
        if v >= Version::V2_1 {
            dst.put_bool(self.raw_data);
        }
        if v >= Version::V2_6 {
            dst.put_vint(self.interests);
        }
        Ok(())
    }
}

impl Xid {
    const MAX_PART: u32 = 64;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Xid> {
        let format_id = r.svint("xid format")?;
        let global_id = Self::part(r, "xid global id")?;
        let branch_qualifier = Self::part(r, "xid branch qualifier")?;
        Ok(Xid {
            format_id,
            global_id,
            branch_qualifier,
        })
    }

    /// Clients write the part lengths as vInts and the reference reads single bytes; both agree
    /// on the 0..=64 that XA allows, which is all this accepts.
    fn part(r: &mut Reader<'_>, field: &'static str) -> Result<Bytes> {
        let n = r.vint(field)?;
        if n > Self::MAX_PART {
            return Err(malformed(field, Problem::XidTooLong(n)));
        }
        r.take_bytes(n as usize)
    }

    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_svint(self.format_id);
        dst.put_array(&self.global_id);
        dst.put_array(&self.branch_qualifier);
    }
}

impl Modification {
    fn decode_list(r: &mut Reader<'_>, v: Version, l: &Limits) -> Result<Vec<Modification>> {
        let n = r.count("modification count", l.max_entries)?;
        let mut mods = Vec::new();
        for _ in 0..n {
            let key = r.bytes("key", l.max_key_len)?;
            let control = r.u8()?;
            let version_read = if control & (Self::NOT_READ | Self::NON_EXISTING) == 0 {
                Some(r.i64()?)
            } else {
                None
            };
            let write = if control & Self::REMOVE == 0 {
                Some((
                    Expiration::decode(r, v)?,
                    r.bytes("value", l.max_value_len)?,
                ))
            } else {
                None
            };
            mods.push(Modification {
                key,
                control,
                version_read,
                write,
            });
        }
        Ok(mods)
    }

    fn encode_list(
        mods: &[Modification],
        v: Version,
        dst: &mut BytesMut,
    ) -> std::result::Result<(), EncodeError> {
        dst.put_vint(len32(mods.len()));
        for m in mods {
            dst.put_array(&m.key);
            dst.put_u8(m.control);
            if m.control & (Self::NOT_READ | Self::NON_EXISTING) == 0 {
                dst.put_i64(m.version_read.unwrap_or(0));
            }
            if m.control & Self::REMOVE == 0 {
                let (exp, value) = m
                    .write
                    .as_ref()
                    .map(|(e, val)| (*e, val.clone()))
                    .unwrap_or((default_expiration(v), Bytes::new()));
                exp.encode(v, dst)?;
                dst.put_array(&value);
            }
        }
        Ok(())
    }
}

fn default_expiration(v: Version) -> Expiration {
    if v < Version::V2_2 {
        Expiration::Seconds {
            lifespan: 0,
            max_idle: 0,
        }
    } else {
        Expiration::DEFAULT
    }
}

impl CounterConfig {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<CounterConfig> {
        let flags = r.u8()?;
        let concurrency_level = if flags & Self::WEAK != 0 {
            Some(r.vint("concurrency level")?)
        } else {
            None
        };
        let bounds = if flags & Self::BOUNDED != 0 {
            Some((r.i64()?, r.i64()?))
        } else {
            None
        };
        Ok(CounterConfig {
            flags,
            concurrency_level,
            bounds,
            initial_value: r.i64()?,
        })
    }

    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(self.flags);
        if self.flags & Self::WEAK != 0 {
            dst.put_vint(self.concurrency_level.unwrap_or(1));
        }
        if self.flags & Self::BOUNDED != 0 {
            let (lo, hi) = self.bounds.unwrap_or((i64::MIN, i64::MAX));
            dst.put_i64(lo);
            dst.put_i64(hi);
        }
        dst.put_i64(self.initial_value);
    }
}
