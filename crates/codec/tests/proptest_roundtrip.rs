//! Property tests of the codec: arbitrary values that are valid for their version survive
//! encode → decode unchanged, every strict prefix of a frame is "incomplete" (with a `needed`
//! length inside the frame), and pipelined frames decode one after another through the
//! tokio-util codecs, whether the bytes arrive all at once or one at a time.
//!
//! The generators only build values that the wire can carry at the version they are encoded
//! for: fields a version does not carry hold what the decoder fills in for them, and each
//! response body comes with an (opcode, status) pair for which `ResponseBody::decode` expects
//! exactly that variant (`body_kind` below mirrors its match).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use ironrod_codec::{
    CacheEvent, CacheNames, ClientCodec, CounterConfig, CounterEvent, DecodeError, EntryMetadata,
    EventKind, EventPayload, Expiration, Factory, Flags, Intelligence, IterationBatch,
    IterationEntry, Lifetime, Limits, ListenerRegistration, MediaType, MediaTypeId, Modification,
    Op, OpCode, PingInfo, PreviousValue, Request, RequestContext, RequestHeader, Response,
    ResponseBody, SegmentTable, ServerAddress, ServerCodec, ServerMessage, Status, TimeUnit,
    TimeValue, Topology, Version, Xid,
};
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::TestRunner;
use tokio_util::codec::{Decoder, Encoder};

const CASES: u32 = 256;

// ---------------------------------------------------------------------------------------------
// Primitive strategies
// ---------------------------------------------------------------------------------------------

fn bytes_s(max: usize) -> BoxedStrategy<Bytes> {
    prop::collection::vec(any::<u8>(), 0..=max)
        .prop_map(Bytes::from)
        .boxed()
}

fn nonempty_bytes_s(max: usize) -> BoxedStrategy<Bytes> {
    prop::collection::vec(any::<u8>(), 1..=max)
        .prop_map(Bytes::from)
        .boxed()
}

/// Arbitrary Unicode scalar values, so multi-byte UTF-8 is exercised.
fn string_s(min: usize, max: usize) -> BoxedStrategy<String> {
    prop::collection::vec(any::<char>(), min..=max)
        .prop_map(|cs| cs.into_iter().collect())
        .boxed()
}

fn key_s() -> BoxedStrategy<Bytes> {
    bytes_s(12)
}

fn value_s() -> BoxedStrategy<Bytes> {
    bytes_s(40)
}

fn name_s() -> BoxedStrategy<String> {
    string_s(0, 8)
}

/// `strategy` when the version carries the field, else the decoder's default.
fn gated<T: Clone + std::fmt::Debug + 'static>(
    present: bool,
    strategy: BoxedStrategy<T>,
    default: T,
) -> BoxedStrategy<T> {
    if present {
        strategy
    } else {
        Just(default).boxed()
    }
}

/// Every known version and a few unknown ones of 2.0 or above (parsed with the newest rules
/// they reach).
fn version_s() -> BoxedStrategy<Version> {
    let mut all: Vec<Version> = Version::KNOWN.to_vec();
    all.extend([Version(32), Version(35), Version(42)]);
    prop::sample::select(all).boxed()
}

fn intelligence_s() -> BoxedStrategy<Intelligence> {
    prop_oneof![
        4 => prop::sample::select(vec![
            Intelligence::BASIC,
            Intelligence::TOPOLOGY_AWARE,
            Intelligence::HASH_DISTRIBUTION_AWARE,
        ]),
        1 => any::<u8>().prop_map(Intelligence),
    ]
    .boxed()
}

fn media_type_s() -> BoxedStrategy<MediaType> {
    let params = || prop::collection::vec((string_s(0, 6), string_s(0, 6)), 0..3);
    prop_oneof![
        Just(MediaType::None),
        (
            prop_oneof![
                prop::sample::select(MediaTypeId::KNOWN.to_vec()),
                any::<u32>().prop_map(MediaTypeId)
            ],
            params()
        )
            .prop_map(|(id, params)| MediaType::Predefined {
                id,
                params: params.into(),
            }),
        (string_s(0, 12), params()).prop_map(|(name, params)| MediaType::custom(name, params)),
    ]
    .boxed()
}

fn time_value_s() -> BoxedStrategy<TimeValue> {
    prop_oneof![
        Just(TimeValue::Default),
        Just(TimeValue::Infinite),
        (0u8..=6, any::<u64>()).prop_map(|(u, amount)| TimeValue::Amount {
            unit: TimeUnit(u),
            amount
        }),
    ]
    .boxed()
}

/// `Seconds` below 2.2, `Units` from 2.2.
fn expiration_s(v: Version) -> BoxedStrategy<Expiration> {
    if v < Version::V2_2 {
        (any::<i32>(), any::<i32>())
            .prop_map(|(lifespan, max_idle)| Expiration::Seconds { lifespan, max_idle })
            .boxed()
    } else {
        (time_value_s(), time_value_s())
            .prop_map(|(lifespan, max_idle)| Expiration::Units { lifespan, max_idle })
            .boxed()
    }
}

fn lifetime_s() -> BoxedStrategy<Option<Lifetime>> {
    prop::option::of(
        (any::<i64>(), any::<i32>()).prop_map(|(since, seconds)| Lifetime { since, seconds }),
    )
    .boxed()
}

fn metadata_s() -> BoxedStrategy<EntryMetadata> {
    (lifetime_s(), lifetime_s(), any::<i64>())
        .prop_map(|(lifespan, max_idle, version)| EntryMetadata {
            lifespan,
            max_idle,
            version,
        })
        .boxed()
}

/// A listener factory: never an empty name (that means "no factory" on the wire).
fn factory_s() -> BoxedStrategy<Factory> {
    (string_s(1, 8), prop::collection::vec(bytes_s(8), 0..4))
        .prop_map(|(name, params)| Factory { name, params })
        .boxed()
}

fn xid_s() -> BoxedStrategy<Xid> {
    (any::<i32>(), bytes_s(64), bytes_s(64))
        .prop_map(|(format_id, global_id, branch_qualifier)| Xid {
            format_id,
            global_id,
            branch_qualifier,
        })
        .boxed()
}

/// Any control byte, with the optional parts present exactly when it says so.
fn modification_s(v: Version) -> BoxedStrategy<Modification> {
    (
        key_s(),
        any::<u8>(),
        any::<i64>(),
        expiration_s(v),
        value_s(),
    )
        .prop_map(|(key, control, read, exp, value)| Modification {
            key,
            control,
            version_read: (control & (Modification::NOT_READ | Modification::NON_EXISTING) == 0)
                .then_some(read),
            write: (control & Modification::REMOVE == 0).then_some((exp, value)),
        })
        .boxed()
}

fn counter_config_s() -> BoxedStrategy<CounterConfig> {
    (any::<u8>(), any::<u32>(), any::<(i64, i64)>(), any::<i64>())
        .prop_map(|(flags, level, bounds, initial_value)| CounterConfig {
            flags,
            concurrency_level: (flags & CounterConfig::WEAK != 0).then_some(level),
            bounds: (flags & CounterConfig::BOUNDED != 0).then_some(bounds),
            initial_value,
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

fn header_s(v: Version) -> BoxedStrategy<RequestHeader> {
    (
        any::<u64>(),
        string_s(0, 10),
        any::<u32>(),
        intelligence_s(),
        any::<i32>(),
        gated(v >= Version::V2_8, media_type_s(), MediaType::None),
        gated(v >= Version::V2_8, media_type_s(), MediaType::None),
        gated(
            v >= Version::V4_0,
            prop::collection::vec((string_s(0, 8), bytes_s(8)), 0..3).boxed(),
            Vec::new(),
        ),
    )
        .prop_map(
            move |(
                message_id,
                cache_name,
                flags,
                intelligence,
                topology_id,
                key_type,
                value_type,
                other_params,
            )| RequestHeader {
                message_id,
                version: v,
                cache_name: cache_name.into(),
                flags: Flags(flags),
                intelligence,
                topology_id,
                key_type,
                value_type,
                other_params,
            },
        )
        .boxed()
}

/// One strategy per `Op` variant, each valid for `v`.
fn op_arms(v: Version) -> Vec<BoxedStrategy<Op>> {
    let exp = move || expiration_s(v);
    let dup = move || gated(v >= Version::V4_0, any::<bool>().boxed(), false);
    let kev = move || (key_s(), exp(), value_s());
    let stream_id = || any::<i32>();
    vec![
        kev()
            .prop_map(|(key, expiration, value)| Op::Put {
                key,
                expiration,
                value,
            })
            .boxed(),
        key_s().prop_map(|key| Op::Get { key }).boxed(),
        kev()
            .prop_map(|(key, expiration, value)| Op::PutIfAbsent {
                key,
                expiration,
                value,
            })
            .boxed(),
        kev()
            .prop_map(|(key, expiration, value)| Op::Replace {
                key,
                expiration,
                value,
            })
            .boxed(),
        (kev(), any::<i64>())
            .prop_map(
                |((key, expiration, value), version)| Op::ReplaceIfUnmodified {
                    key,
                    expiration,
                    version,
                    value,
                },
            )
            .boxed(),
        key_s().prop_map(|key| Op::Remove { key }).boxed(),
        (key_s(), any::<i64>())
            .prop_map(|(key, version)| Op::RemoveIfUnmodified { key, version })
            .boxed(),
        key_s().prop_map(|key| Op::ContainsKey { key }).boxed(),
        key_s().prop_map(|key| Op::GetWithVersion { key }).boxed(),
        Just(Op::Clear).boxed(),
        Just(Op::Stats).boxed(),
        Just(Op::Ping).boxed(),
        any::<u32>().prop_map(|count| Op::BulkGet { count }).boxed(),
        key_s().prop_map(|key| Op::GetWithMetadata { key }).boxed(),
        any::<u32>()
            .prop_map(|scope| Op::BulkGetKeys { scope })
            .boxed(),
        value_s().prop_map(|query| Op::Query { query }).boxed(),
        Just(Op::AuthMechList).boxed(),
        (name_s(), bytes_s(20))
            .prop_map(|(mechanism, response)| Op::Auth {
                mechanism,
                response,
            })
            .boxed(),
        (
            bytes_s(16),
            any::<bool>(),
            prop::option::of(factory_s()),
            prop::option::of(factory_s()),
            gated(v >= Version::V2_1, any::<bool>().boxed(), false),
            gated(v >= Version::V2_6, any::<u32>().boxed(), 0),
        )
            .prop_map(
                |(listener_id, include_current_state, filter, converter, raw_data, interests)| {
                    Op::AddClientListener(Box::new(ListenerRegistration {
                        listener_id,
                        include_current_state,
                        filter,
                        converter,
                        raw_data,
                        interests,
                    }))
                },
            )
            .boxed(),
        bytes_s(16)
            .prop_map(|listener_id| Op::RemoveClientListener { listener_id })
            .boxed(),
        Just(Op::Size).boxed(),
        (
            name_s(),
            prop::collection::vec((name_s(), bytes_s(10)), 0..4),
        )
            .prop_map(|(task, params)| Op::Exec { task, params })
            .boxed(),
        (exp(), prop::collection::vec((key_s(), value_s()), 0..4))
            .prop_map(|(expiration, entries)| Op::PutAll {
                expiration,
                entries,
            })
            .boxed(),
        prop::collection::vec(key_s(), 0..5)
            .prop_map(|keys| Op::GetAll { keys })
            .boxed(),
        (
            prop::option::of(bytes_s(8)),
            prop::option::of((
                // The iteration filter name is an optional string: "" survives as Some("").
                string_s(0, 8),
                gated(
                    v >= Version::V2_4,
                    prop::collection::vec(bytes_s(8), 0..4).boxed(),
                    Vec::new(),
                ),
            )),
            any::<u32>(),
            gated(v >= Version::V2_4, any::<bool>().boxed(), false),
        )
            .prop_map(
                |(segments, filter, batch_size, include_metadata)| Op::IterationStart {
                    segments,
                    filter: filter.map(|(name, params)| Factory { name, params }),
                    batch_size,
                    include_metadata,
                },
            )
            .boxed(),
        bytes_s(16)
            .prop_map(|iteration_id| Op::IterationNext { iteration_id })
            .boxed(),
        bytes_s(16)
            .prop_map(|iteration_id| Op::IterationEnd { iteration_id })
            .boxed(),
        (key_s(), any::<u32>())
            .prop_map(|(key, offset)| Op::GetStream { key, offset })
            .boxed(),
        (
            key_s(),
            exp(),
            any::<i64>(),
            prop::collection::vec(nonempty_bytes_s(20), 0..4),
        )
            .prop_map(|(key, expiration, version, chunks)| Op::PutStream {
                key,
                expiration,
                version,
                chunks,
            })
            .boxed(),
        (
            xid_s(),
            any::<bool>(),
            prop::collection::vec(modification_s(v), 0..4),
        )
            .prop_map(|(xid, one_phase, modifications)| Op::PrepareTx {
                xid,
                one_phase,
                modifications,
            })
            .boxed(),
        xid_s().prop_map(|xid| Op::CommitTx { xid }).boxed(),
        xid_s().prop_map(|xid| Op::RollbackTx { xid }).boxed(),
        (bytes_s(16), any::<u32>())
            .prop_map(|(listener_id, bloom_bits)| Op::AddBloomFilterListener {
                listener_id,
                bloom_bits,
            })
            .boxed(),
        value_s()
            .prop_map(|bits| Op::UpdateBloomFilter { bits })
            .boxed(),
        (name_s(), counter_config_s())
            .prop_map(|(name, config)| Op::CounterCreate { name, config })
            .boxed(),
        name_s()
            .prop_map(|name| Op::CounterGetConfiguration { name })
            .boxed(),
        name_s()
            .prop_map(|name| Op::CounterIsDefined { name })
            .boxed(),
        (name_s(), any::<i64>())
            .prop_map(|(name, delta)| Op::CounterAddAndGet { name, delta })
            .boxed(),
        name_s().prop_map(|name| Op::CounterReset { name }).boxed(),
        name_s().prop_map(|name| Op::CounterGet { name }).boxed(),
        (name_s(), any::<i64>(), any::<i64>())
            .prop_map(|(name, expect, update)| Op::CounterCas {
                name,
                expect,
                update,
            })
            .boxed(),
        (name_s(), bytes_s(16))
            .prop_map(|(name, listener_id)| Op::CounterAddListener { name, listener_id })
            .boxed(),
        (name_s(), bytes_s(16))
            .prop_map(|(name, listener_id)| Op::CounterRemoveListener { name, listener_id })
            .boxed(),
        name_s().prop_map(|name| Op::CounterRemove { name }).boxed(),
        Just(Op::CounterGetNames).boxed(),
        (key_s(), dup())
            .prop_map(|(key, supports_duplicates)| Op::MultimapGet {
                key,
                supports_duplicates,
            })
            .boxed(),
        (key_s(), dup())
            .prop_map(|(key, supports_duplicates)| Op::MultimapGetWithMetadata {
                key,
                supports_duplicates,
            })
            .boxed(),
        (kev(), dup())
            .prop_map(
                |((key, expiration, value), supports_duplicates)| Op::MultimapPut {
                    key,
                    expiration,
                    value,
                    supports_duplicates,
                },
            )
            .boxed(),
        (key_s(), dup())
            .prop_map(|(key, supports_duplicates)| Op::MultimapRemoveKey {
                key,
                supports_duplicates,
            })
            .boxed(),
        (kev(), dup())
            .prop_map(
                |((key, expiration, value), supports_duplicates)| Op::MultimapRemoveEntry {
                    key,
                    expiration,
                    value,
                    supports_duplicates,
                },
            )
            .boxed(),
        dup()
            .prop_map(|supports_duplicates| Op::MultimapSize {
                supports_duplicates,
            })
            .boxed(),
        (kev(), dup())
            .prop_map(
                |((key, expiration, value), supports_duplicates)| Op::MultimapContainsEntry {
                    key,
                    expiration,
                    value,
                    supports_duplicates,
                },
            )
            .boxed(),
        (key_s(), dup())
            .prop_map(|(key, supports_duplicates)| Op::MultimapContainsKey {
                key,
                supports_duplicates,
            })
            .boxed(),
        (exp(), value_s(), dup())
            .prop_map(
                |(expiration, value, supports_duplicates)| Op::MultimapContainsValue {
                    expiration,
                    value,
                    supports_duplicates,
                },
            )
            .boxed(),
        xid_s().prop_map(|xid| Op::ForgetTx { xid }).boxed(),
        Just(Op::FetchTxRecovery).boxed(),
        (
            xid_s(),
            any::<bool>(),
            any::<bool>(),
            any::<i64>(),
            prop::collection::vec(modification_s(v), 0..4),
        )
            .prop_map(
                |(xid, one_phase, recoverable, timeout_ms, modifications)| Op::PrepareTx2 {
                    xid,
                    one_phase,
                    recoverable,
                    timeout_ms,
                    modifications,
                },
            )
            .boxed(),
        (name_s(), any::<i64>())
            .prop_map(|(name, value)| Op::CounterGetAndSet { name, value })
            .boxed(),
        (key_s(), exp(), any::<i64>())
            .prop_map(|(key, expiration, version)| Op::PutStreamStart {
                key,
                expiration,
                version,
            })
            .boxed(),
        (stream_id(), any::<bool>(), nonempty_bytes_s(40))
            .prop_map(|(stream_id, last, chunk)| Op::PutStreamNext {
                stream_id,
                last,
                chunk,
            })
            .boxed(),
        stream_id()
            .prop_map(|stream_id| Op::PutStreamEnd { stream_id })
            .boxed(),
        (key_s(), any::<u32>())
            .prop_map(|(key, batch_size)| Op::GetStreamStart { key, batch_size })
            .boxed(),
        stream_id()
            .prop_map(|stream_id| Op::GetStreamNext { stream_id })
            .boxed(),
        stream_id()
            .prop_map(|stream_id| Op::GetStreamEnd { stream_id })
            .boxed(),
    ]
}

fn op_s(v: Version) -> BoxedStrategy<Op> {
    Union::new(op_arms(v)).boxed()
}

fn request_s() -> BoxedStrategy<Request> {
    version_s()
        .prop_flat_map(|v| (header_s(v), op_s(v)))
        .prop_map(|(header, op)| Request { header, op })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Responses and events
// ---------------------------------------------------------------------------------------------

/// The response body variant that `ResponseBody::decode` produces for an (opcode, status).
/// Mirrors its match arm by arm; `StreamChunk` is split by whether it carries metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Empty,
    Value,
    Previous,
    VersionedValue,
    MetadataValue,
    Ping,
    Stats,
    Size,
    Entries,
    BulkEntries,
    BulkKeys,
    Names,
    Auth,
    IterationId,
    IterationBatch,
    XaCode,
    Xids,
    CounterConfig,
    Long,
    Bool,
    MultimapValues,
    MultimapMetadataValues,
    StreamId,
    StreamChunkWithMetadata,
    StreamChunk,
    Error,
}

const ALL_KINDS: [Kind; 26] = [
    Kind::Empty,
    Kind::Value,
    Kind::Previous,
    Kind::VersionedValue,
    Kind::MetadataValue,
    Kind::Ping,
    Kind::Stats,
    Kind::Size,
    Kind::Entries,
    Kind::BulkEntries,
    Kind::BulkKeys,
    Kind::Names,
    Kind::Auth,
    Kind::IterationId,
    Kind::IterationBatch,
    Kind::XaCode,
    Kind::Xids,
    Kind::CounterConfig,
    Kind::Long,
    Kind::Bool,
    Kind::MultimapValues,
    Kind::MultimapMetadataValues,
    Kind::StreamId,
    Kind::StreamChunkWithMetadata,
    Kind::StreamChunk,
    Kind::Error,
];

fn body_kind(op: OpCode, status: Status) -> Kind {
    let ok = status.is_success();
    let exact = status == Status::SUCCESS;
    match op {
        OpCode::ERROR => Kind::Error,
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
            Kind::Previous
        }
        OpCode::GET_RESPONSE | OpCode::QUERY_RESPONSE | OpCode::EXEC_RESPONSE if ok => Kind::Value,
        OpCode::GET_WITH_VERSION_RESPONSE if ok => Kind::VersionedValue,
        OpCode::GET_WITH_METADATA_RESPONSE | OpCode::GET_STREAM_RESPONSE if ok => {
            Kind::MetadataValue
        }
        OpCode::PING_RESPONSE if ok => Kind::Ping,
        OpCode::STATS_RESPONSE if ok => Kind::Stats,
        OpCode::SIZE_RESPONSE | OpCode::MULTIMAP_SIZE_RESPONSE if ok => Kind::Size,
        OpCode::GET_ALL_RESPONSE if ok => Kind::Entries,
        OpCode::BULK_GET_RESPONSE if ok => Kind::BulkEntries,
        OpCode::BULK_GET_KEYS_RESPONSE if ok => Kind::BulkKeys,
        OpCode::AUTH_MECH_LIST_RESPONSE | OpCode::COUNTER_GET_NAMES_RESPONSE if ok => Kind::Names,
        OpCode::AUTH_RESPONSE if ok => Kind::Auth,
        OpCode::ITERATION_START_RESPONSE if ok => Kind::IterationId,
        OpCode::ITERATION_NEXT_RESPONSE if ok || status == Status::INVALID_ITERATION => {
            Kind::IterationBatch
        }
        OpCode::PREPARE_TX_RESPONSE
        | OpCode::PREPARE_TX_2_RESPONSE
        | OpCode::COMMIT_TX_RESPONSE
        | OpCode::ROLLBACK_TX_RESPONSE
            if exact =>
        {
            Kind::XaCode
        }
        OpCode::FETCH_TX_RECOVERY_RESPONSE if ok => Kind::Xids,
        OpCode::COUNTER_GET_CONFIGURATION_RESPONSE if ok => Kind::CounterConfig,
        OpCode::COUNTER_ADD_AND_GET_RESPONSE
        | OpCode::COUNTER_GET_RESPONSE
        | OpCode::COUNTER_CAS_RESPONSE
        | OpCode::COUNTER_GET_AND_SET_RESPONSE
            if exact =>
        {
            Kind::Long
        }
        OpCode::MULTIMAP_GET_RESPONSE if ok => Kind::MultimapValues,
        OpCode::MULTIMAP_GET_WITH_METADATA_RESPONSE if ok => Kind::MultimapMetadataValues,
        OpCode::MULTIMAP_REMOVE_KEY_RESPONSE
        | OpCode::MULTIMAP_REMOVE_ENTRY_RESPONSE
        | OpCode::MULTIMAP_CONTAINS_ENTRY_RESPONSE
        | OpCode::MULTIMAP_CONTAINS_KEY_RESPONSE
        | OpCode::MULTIMAP_CONTAINS_VALUE_RESPONSE
            if ok =>
        {
            Kind::Bool
        }
        OpCode::PUT_STREAM_START_RESPONSE if ok => Kind::StreamId,
        OpCode::GET_STREAM_START_RESPONSE if ok => Kind::StreamChunkWithMetadata,
        OpCode::GET_STREAM_NEXT_RESPONSE if ok => Kind::StreamChunk,
        _ => Kind::Empty,
    }
}

/// Every response opcode (the answers to the request opcodes, and the error frame).
fn response_opcodes() -> Vec<OpCode> {
    let mut ops: Vec<OpCode> = OpCode::REQUESTS.iter().map(|op| op.response()).collect();
    ops.push(OpCode::ERROR);
    ops
}

/// The known statuses and a few unknown ones.
fn statuses() -> Vec<Status> {
    let mut st = Status::KNOWN.to_vec();
    st.extend([Status(0x09), Status(0x42), Status(0x80), Status(0xFF)]);
    st
}

/// For each body kind, every (opcode, status) pair the decoder maps to it.
fn pairs_by_kind() -> Vec<(Kind, Vec<(OpCode, Status)>)> {
    ALL_KINDS
        .iter()
        .map(|&k| {
            let pairs = response_opcodes()
                .into_iter()
                .flat_map(|op| statuses().into_iter().map(move |st| (op, st)))
                .filter(|&(op, st)| body_kind(op, st) == k)
                .collect();
            (k, pairs)
        })
        .collect()
}

/// A kind chosen uniformly, then one of its (opcode, status) pairs.
fn opcode_status_s() -> BoxedStrategy<(Kind, OpCode, Status)> {
    let arms: Vec<BoxedStrategy<(Kind, OpCode, Status)>> = pairs_by_kind()
        .into_iter()
        .filter(|(_, pairs)| !pairs.is_empty())
        .map(|(k, pairs)| {
            prop::sample::select(pairs)
                .prop_map(move |(op, st)| (k, op, st))
                .boxed()
        })
        .collect();
    Union::new(arms).boxed()
}

fn ping_s(v: Version) -> BoxedStrategy<PingInfo> {
    (
        gated(v >= Version::V2_9, media_type_s(), MediaType::None),
        gated(v >= Version::V2_9, media_type_s(), MediaType::None),
        gated(v >= Version::V3_0, any::<u8>().prop_map(Version).boxed(), v),
        gated(
            v >= Version::V3_0,
            prop::collection::vec(any::<u16>(), 0..8).boxed(),
            Vec::new(),
        ),
    )
        .prop_map(
            |(key_type, value_type, server_version, operations)| PingInfo {
                key_type,
                value_type,
                server_version,
                operations,
            },
        )
        .boxed()
}

fn iteration_batch_s(v: Version) -> BoxedStrategy<IterationBatch> {
    let projections = if v >= Version::V2_4 {
        (0u32..4).boxed()
    } else {
        Just(1u32).boxed()
    };
    (bytes_s(8), 0usize..4, projections)
        .prop_flat_map(move |(finished_segments, n, projections)| {
            // The projection count is on the wire only when there are entries.
            let projections = if n == 0 { 1 } else { projections };
            let entry = (
                gated(
                    v >= Version::V2_5,
                    prop::option::of(metadata_s()).boxed(),
                    None,
                ),
                key_s(),
                prop::collection::vec(value_s(), projections as usize),
            )
                .prop_map(|(metadata, key, values)| IterationEntry {
                    metadata,
                    key,
                    values,
                });
            prop::collection::vec(entry, n).prop_map(move |entries| IterationBatch {
                finished_segments: finished_segments.clone(),
                projections,
                entries,
            })
        })
        .boxed()
}

fn body_s(kind: Kind, v: Version) -> BoxedStrategy<ResponseBody> {
    let strings = || prop::collection::vec(name_s(), 0..4);
    let values = || prop::collection::vec(value_s(), 0..4);
    let entries = || prop::collection::vec((key_s(), value_s()), 0..4);
    match kind {
        Kind::Empty => Just(ResponseBody::Empty).boxed(),
        Kind::Value => value_s().prop_map(ResponseBody::Value).boxed(),
        Kind::Previous => (
            gated(
                v >= Version::V4_0,
                metadata_s().prop_map(Some).boxed(),
                None,
            ),
            value_s(),
        )
            .prop_map(|(metadata, value)| ResponseBody::Previous(PreviousValue { metadata, value }))
            .boxed(),
        Kind::VersionedValue => (any::<i64>(), value_s())
            .prop_map(|(version, value)| ResponseBody::VersionedValue { version, value })
            .boxed(),
        Kind::MetadataValue => (metadata_s(), value_s())
            .prop_map(|(metadata, value)| ResponseBody::MetadataValue { metadata, value })
            .boxed(),
        Kind::Ping => ping_s(v).prop_map(ResponseBody::Ping).boxed(),
        Kind::Stats => prop::collection::vec((name_s(), name_s()), 0..5)
            .prop_map(ResponseBody::Stats)
            .boxed(),
        Kind::Size => any::<u64>().prop_map(ResponseBody::Size).boxed(),
        Kind::Entries => entries().prop_map(ResponseBody::Entries).boxed(),
        Kind::BulkEntries => entries().prop_map(ResponseBody::BulkEntries).boxed(),
        Kind::BulkKeys => prop::collection::vec(key_s(), 0..5)
            .prop_map(ResponseBody::BulkKeys)
            .boxed(),
        Kind::Names => strings().prop_map(ResponseBody::Names).boxed(),
        Kind::Auth => (any::<bool>(), bytes_s(20))
            .prop_map(|(completed, challenge)| ResponseBody::Auth {
                completed,
                challenge,
            })
            .boxed(),
        Kind::IterationId => bytes_s(16).prop_map(ResponseBody::IterationId).boxed(),
        Kind::IterationBatch => iteration_batch_s(v)
            .prop_map(ResponseBody::IterationBatch)
            .boxed(),
        Kind::XaCode => any::<i32>().prop_map(ResponseBody::XaCode).boxed(),
        Kind::Xids => prop::collection::vec(xid_s(), 0..3)
            .prop_map(ResponseBody::Xids)
            .boxed(),
        Kind::CounterConfig => counter_config_s()
            .prop_map(ResponseBody::CounterConfig)
            .boxed(),
        Kind::Long => any::<i64>().prop_map(ResponseBody::Long).boxed(),
        Kind::Bool => any::<bool>().prop_map(ResponseBody::Bool).boxed(),
        Kind::MultimapValues => values().prop_map(ResponseBody::MultimapValues).boxed(),
        Kind::MultimapMetadataValues => (metadata_s(), values())
            .prop_map(|(metadata, values)| ResponseBody::MultimapMetadataValues {
                metadata,
                values,
            })
            .boxed(),
        Kind::StreamId => any::<i32>().prop_map(ResponseBody::StreamId).boxed(),
        Kind::StreamChunkWithMetadata | Kind::StreamChunk => (
            any::<i32>(),
            any::<bool>(),
            if kind == Kind::StreamChunkWithMetadata {
                metadata_s().prop_map(Some).boxed()
            } else {
                Just(None).boxed()
            },
            value_s(),
        )
            .prop_map(
                |(stream_id, complete, metadata, data)| ResponseBody::StreamChunk {
                    stream_id,
                    complete,
                    metadata,
                    data,
                },
            )
            .boxed(),
        Kind::Error => string_s(0, 30).prop_map(ResponseBody::Error).boxed(),
    }
}

/// Servers and, exactly for intelligence 3, a segment table whose owner lists match its
/// segment count (none when the hash function is 0).
fn topology_s(intelligence: Intelligence) -> BoxedStrategy<Topology> {
    let segments = if intelligence == Intelligence::HASH_DISTRIBUTION_AWARE {
        prop_oneof![
            1 => any::<u32>().prop_map(|num_segments| SegmentTable {
                hash_function: 0,
                num_segments,
                owners: Vec::new(),
            }),
            3 => (
                1u8..=255,
                prop::collection::vec(prop::collection::vec(any::<u32>(), 0..4), 0..8)
            )
                .prop_map(|(hash_function, owners)| SegmentTable {
                    hash_function,
                    num_segments: owners.len() as u32,
                    owners,
                }),
        ]
        .prop_map(Some)
        .boxed()
    } else {
        Just(None).boxed()
    };
    (
        any::<i32>(),
        prop::collection::vec(
            (string_s(0, 10), any::<u16>()).prop_map(|(host, port)| ServerAddress { host, port }),
            0..4,
        ),
        segments,
    )
        .prop_map(|(id, servers, segments)| Topology {
            id,
            servers,
            segments,
        })
        .boxed()
}

fn context_s() -> BoxedStrategy<RequestContext> {
    (version_s(), intelligence_s())
        .prop_map(|(version, intelligence)| RequestContext {
            version,
            intelligence,
        })
        .boxed()
}

/// A response to a request of context `ctx`.
fn response_for_s(ctx: RequestContext) -> BoxedStrategy<Response> {
    (opcode_status_s(), any::<u64>())
        .prop_flat_map(move |((kind, opcode, status), message_id)| {
            (
                prop::option::of(topology_s(ctx.intelligence)),
                body_s(kind, ctx.version),
            )
                .prop_map(move |(topology, body)| Response {
                    message_id,
                    version: ctx.version,
                    opcode,
                    status,
                    topology,
                    body,
                })
        })
        .boxed()
}

/// A response with the context of the request it answers.
fn response_s() -> BoxedStrategy<(RequestContext, Response)> {
    context_s()
        .prop_flat_map(|ctx| response_for_s(ctx).prop_map(move |r| (ctx, r)))
        .boxed()
}

fn cache_event_s() -> BoxedStrategy<CacheEvent> {
    (
        any::<u64>(),
        prop::sample::select(vec![
            EventKind::Created,
            EventKind::Modified,
            EventKind::Removed,
            EventKind::Expired,
        ]),
        bytes_s(16),
        any::<bool>(),
    )
        .prop_flat_map(|(message_id, kind, listener_id, retried)| {
            let has_version = matches!(kind, EventKind::Created | EventKind::Modified);
            let payload = prop_oneof![
                (key_s(), any::<i64>()).prop_map(move |(key, version)| EventPayload::Plain {
                    key,
                    version: has_version.then_some(version),
                }),
                (any::<bool>(), value_s())
                    .prop_map(|(raw, data)| EventPayload::Custom { raw, data }),
            ];
            payload.prop_map(move |payload| CacheEvent {
                message_id,
                kind,
                listener_id: listener_id.clone(),
                retried,
                payload,
            })
        })
        .boxed()
}

fn counter_event_s() -> BoxedStrategy<CounterEvent> {
    (
        any::<u64>(),
        name_s(),
        bytes_s(16),
        any::<u8>(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(message_id, counter_name, listener_id, state, old_value, new_value)| CounterEvent {
                message_id,
                counter_name,
                listener_id,
                state,
                old_value,
                new_value,
            },
        )
        .boxed()
}

/// Anything a server writes, with the context its decoder needs (ignored for events).
fn server_message_s() -> BoxedStrategy<(RequestContext, ServerMessage)> {
    prop_oneof![
        4 => response_s().prop_map(|(ctx, r)| (ctx, ServerMessage::Response(r))),
        1 => (context_s(), cache_event_s()).prop_map(|(ctx, e)| (ctx, ServerMessage::Event(e))),
        1 => (context_s(), counter_event_s())
            .prop_map(|(ctx, e)| (ctx, ServerMessage::CounterEvent(e))),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Every strict prefix of a frame must be "incomplete", needing a length past the prefix and no
/// further than the frame's end (else a codec waiting for `needed` bytes would stall on a
/// complete frame).
fn assert_prefixes_incomplete<T: std::fmt::Debug>(
    wire: &[u8],
    decode: impl Fn(&[u8]) -> Result<(T, usize), DecodeError>,
) -> Result<(), TestCaseError> {
    for i in 0..wire.len() {
        match decode(&wire[..i]) {
            Err(DecodeError::Incomplete { needed: Some(n) }) => {
                prop_assert!(
                    n > i && n <= wire.len(),
                    "prefix of {i} of {} bytes needs {n}: {}",
                    wire.len(),
                    hex::encode(wire)
                );
            }
            other => {
                return Err(TestCaseError::fail(format!(
                    "prefix of {i} of {} bytes ({}): expected incomplete, got {other:?}",
                    wire.len(),
                    hex::encode(wire)
                )))
            }
        }
    }
    Ok(())
}

fn encode_request(req: &Request) -> BytesMut {
    let mut buf = BytesMut::new();
    req.encode(&mut buf)
        .unwrap_or_else(|e| panic!("encode {req:?}: {e}"));
    buf
}

fn encode_message(msg: &ServerMessage) -> BytesMut {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf);
    buf
}

fn decode_message(
    wire: &[u8],
    ctx: RequestContext,
    id: u64,
) -> Result<(ServerMessage, usize), DecodeError> {
    ServerMessage::decode(wire, |m| (m == id).then_some(ctx), &Limits::DEFAULT)
}

/// Drains a decoder, failing on any error.
fn drain<D: Decoder>(codec: &mut D, buf: &mut BytesMut, out: &mut Vec<D::Item>)
where
    D::Error: std::fmt::Debug,
{
    while let Some(item) = codec.decode(buf).expect("decode") {
        out.push(item);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn request_round_trips(req in request_s()) {
        let wire = encode_request(&req);
        let (back, len) = Request::decode(&wire, &Limits::DEFAULT)
            .map_err(|e| TestCaseError::fail(format!("{e} decoding {}", hex::encode(&wire))))?;
        prop_assert_eq!(&back, &req);
        prop_assert_eq!(len, wire.len());
        // Trailing bytes (the next frame) are left alone.
        let mut longer = wire.clone();
        longer.put_slice(&[0xA0, 0x00]);
        let (again, len2) = Request::decode(&longer, &Limits::DEFAULT).unwrap();
        prop_assert_eq!(&again, &req);
        prop_assert_eq!(len2, wire.len());
        // Decoding without copies (fields sliced from a frozen buffer) gives the same request.
        let frozen = wire.clone().freeze();
        let (shared, len3) =
            Request::decode_shared(&frozen, &Limits::DEFAULT, &mut CacheNames::default()).unwrap();
        prop_assert_eq!(&shared, &req);
        prop_assert_eq!(len3, wire.len());
    }

    #[test]
    fn request_prefixes_are_incomplete(req in request_s()) {
        let wire = encode_request(&req);
        assert_prefixes_incomplete(&wire, |b| Request::decode(b, &Limits::DEFAULT))?;
    }

    #[test]
    fn server_message_round_trips((ctx, msg) in server_message_s()) {
        let wire = encode_message(&msg);
        let id = msg.message_id();
        let (back, len) = decode_message(&wire, ctx, id)
            .map_err(|e| TestCaseError::fail(format!("{e} decoding {}", hex::encode(&wire))))?;
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(len, wire.len());
        let mut longer = wire.clone();
        longer.put_slice(&[0xA1, 0x00]);
        let (again, len2) = decode_message(&longer, ctx, id).unwrap();
        prop_assert_eq!(&again, &msg);
        prop_assert_eq!(len2, wire.len());
    }

    #[test]
    fn server_message_prefixes_are_incomplete((ctx, msg) in server_message_s()) {
        let wire = encode_message(&msg);
        let id = msg.message_id();
        assert_prefixes_incomplete(&wire, |b| decode_message(b, ctx, id))?;
    }

    /// An error frame for an id with no request in flight decodes with the latest version.
    #[test]
    fn error_frame_without_context(
        message_id in any::<u64>(),
        status in prop::sample::select(statuses()),
        topology in prop::option::of(topology_s(Intelligence::BASIC)),
        message in string_s(0, 30),
    ) {
        let resp = Response {
            topology,
            status,
            ..Response::error(message_id, Version::LATEST, status, message)
        };
        let msg = ServerMessage::Response(resp);
        let wire = encode_message(&msg);
        let (back, len) = ServerMessage::decode(&wire, |_| None, &Limits::DEFAULT).unwrap();
        prop_assert_eq!(back, msg);
        prop_assert_eq!(len, wire.len());
    }

    #[test]
    fn server_codec_decodes_pipelined_requests(reqs in prop::collection::vec(request_s(), 1..6)) {
        let mut client = ClientCodec::default();
        let mut wire = BytesMut::new();
        for r in &reqs {
            client.encode(r, &mut wire).unwrap();
        }
        prop_assert_eq!(client.in_flight(), reqs.iter().map(|r| r.header.message_id).collect::<BTreeSet<_>>().len());

        // All at once.
        let mut server = ServerCodec::default();
        let mut buf = wire.clone();
        let mut got = Vec::new();
        drain(&mut server, &mut buf, &mut got);
        prop_assert_eq!(&got, &reqs);
        prop_assert!(buf.is_empty());

        // One byte at a time.
        let mut server = ServerCodec::new(Limits::DEFAULT);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            drain(&mut server, &mut buf, &mut got);
        }
        prop_assert_eq!(&got, &reqs);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn client_codec_decodes_pipelined_messages(
        msgs in prop::collection::vec(server_message_s(), 1..6),
    ) {
        // The client matches responses by id, so each response answers a distinct request.
        let msgs: Vec<(RequestContext, ServerMessage)> = msgs
            .into_iter()
            .enumerate()
            .map(|(i, (ctx, mut m))| {
                if let ServerMessage::Response(r) = &mut m {
                    r.message_id = 1000 + i as u64;
                }
                (ctx, m)
            })
            .collect();
        let expecting = |client: &mut ClientCodec| {
            for (ctx, m) in &msgs {
                if let ServerMessage::Response(r) = m {
                    client.expect(r.message_id, *ctx);
                }
            }
        };
        let want: Vec<ServerMessage> = msgs.iter().map(|(_, m)| m.clone()).collect();
        let responses = want.iter().filter(|m| matches!(m, ServerMessage::Response(_))).count();

        let mut server = ServerCodec::default();
        let mut wire = BytesMut::new();
        for m in &want {
            server.encode(m, &mut wire).unwrap();
        }

        // All at once.
        let mut client = ClientCodec::default();
        expecting(&mut client);
        prop_assert_eq!(client.in_flight(), responses);
        let mut buf = wire.clone();
        let mut got = Vec::new();
        drain(&mut client, &mut buf, &mut got);
        prop_assert_eq!(&got, &want);
        prop_assert!(buf.is_empty());
        prop_assert_eq!(client.in_flight(), 0);

        // One byte at a time.
        let mut client = ClientCodec::new(Limits::DEFAULT);
        expecting(&mut client);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            drain(&mut client, &mut buf, &mut got);
        }
        prop_assert_eq!(&got, &want);
        prop_assert!(buf.is_empty());
        prop_assert_eq!(client.in_flight(), 0);
    }

    /// A whole exchange: the client encodes, the server decodes and answers in the request's
    /// version and intelligence, the client decodes the answer.
    #[test]
    fn request_response_exchange(
        (req, resp) in request_s().prop_flat_map(|req| {
            let ctx = RequestContext {
                version: req.header.version,
                intelligence: req.header.intelligence,
            };
            (Just(req), response_for_s(ctx))
        }),
    ) {
        let mut client = ClientCodec::default();
        let mut server = ServerCodec::default();
        let mut wire = BytesMut::new();
        client.encode(&req, &mut wire).unwrap();
        let got = server.decode(&mut wire).unwrap();
        prop_assert_eq!(got.as_ref(), Some(&req));
        prop_assert!(wire.is_empty());

        let resp = Response { message_id: req.header.message_id, ..resp };
        let msg = ServerMessage::Response(resp);
        server.encode(&msg, &mut wire).unwrap();
        let back = client.decode(&mut wire).unwrap();
        prop_assert_eq!(back, Some(msg));
        prop_assert_eq!(client.in_flight(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Coverage of the generators themselves
// ---------------------------------------------------------------------------------------------

/// Every request opcode has an arm, at every version.
#[test]
fn op_arms_cover_every_request_opcode() {
    let mut runner = TestRunner::deterministic();
    let want: BTreeSet<OpCode> = OpCode::REQUESTS.iter().copied().collect();
    for v in Version::KNOWN {
        let got: BTreeSet<OpCode> = op_arms(v)
            .into_iter()
            .map(|s| s.new_tree(&mut runner).unwrap().current().opcode())
            .collect();
        assert_eq!(got, want, "at version {v}");
    }
}

/// Every body kind is reachable from some (opcode, status) pair, and every pair round-trips
/// with the body its kind generates at every version.
#[test]
fn every_body_kind_is_generated() {
    let mut runner = TestRunner::deterministic();
    for (kind, pairs) in pairs_by_kind() {
        assert!(!pairs.is_empty(), "no (opcode, status) gives {kind:?}");
        for v in Version::KNOWN {
            let body = body_s(kind, v).new_tree(&mut runner).unwrap().current();
            let (opcode, status) = pairs[0];
            let ctx = RequestContext {
                version: v,
                intelligence: Intelligence::BASIC,
            };
            let msg = ServerMessage::Response(Response {
                message_id: 7,
                version: v,
                opcode,
                status,
                topology: None,
                body,
            });
            let wire = encode_message(&msg);
            let (back, _) =
                decode_message(&wire, ctx, 7).unwrap_or_else(|e| panic!("{kind:?} at {v}: {e}"));
            assert_eq!(back, msg, "{kind:?} at {v}");
        }
    }
}
