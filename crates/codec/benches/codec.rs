//! Server-side codec cost per operation: decoding a GET or PUT request from a `BytesMut` with
//! `ServerCodec` and encoding its response, for 100 B and 1 KiB values at version 4.0 (and 3.1).
//!
//! Run with `cargo bench -p ironrod-codec` (add `-- --warm-up-time 1 --measurement-time 3` for a
//! quick run).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ironrod_codec::{
    EntryMetadata, Expiration, Flags, Intelligence, Op, OpCode, PreviousValue, Request,
    RequestHeader, Response, ResponseBody, ServerCodec, ServerMessage, Status, TimeUnit, TimeValue,
    Version,
};
use tokio_util::codec::{Decoder, Encoder};

struct Case {
    name: String,
    request: BytesMut,
    response: ServerMessage,
}

fn header(version: Version) -> RequestHeader {
    RequestHeader {
        flags: Flags::FORCE_RETURN_VALUE,
        intelligence: Intelligence::HASH_DISTRIBUTION_AWARE,
        topology_id: 7,
        ..RequestHeader::new(0x1234, version, "default")
    }
}

fn key() -> Bytes {
    Bytes::from_static(b"user:0000000042")
}

fn value(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

fn encode(req: &Request) -> BytesMut {
    let mut buf = BytesMut::new();
    req.encode(&mut buf).expect("encodable request");
    buf
}

fn get_case(version: Version, len: usize, label: &str) -> Case {
    let req = Request {
        header: header(version),
        op: Op::Get { key: key() },
    };
    Case {
        name: format!("get/{version}/{label}"),
        request: encode(&req),
        response: ServerMessage::Response(Response {
            message_id: req.header.message_id,
            version,
            opcode: OpCode::GET_RESPONSE,
            status: Status::SUCCESS,
            topology: None,
            body: ResponseBody::Value(value(len)),
        }),
    }
}

/// A PUT with a lifespan, answered with its previous value (force-return-value).
fn put_case(version: Version, len: usize, label: &str) -> Case {
    let req = Request {
        header: header(version),
        op: Op::Put {
            key: key(),
            expiration: Expiration::Units {
                lifespan: TimeValue::Amount {
                    unit: TimeUnit::SECONDS,
                    amount: 3600,
                },
                max_idle: TimeValue::Default,
            },
            value: value(len),
        },
    };
    let metadata = (version >= Version::V4_0).then_some(EntryMetadata::immortal(41));
    Case {
        name: format!("put/{version}/{label}"),
        request: encode(&req),
        response: ServerMessage::Response(Response {
            message_id: req.header.message_id,
            version,
            opcode: OpCode::PUT_RESPONSE,
            status: Status::SUCCESS_WITH_PREVIOUS,
            topology: None,
            body: ResponseBody::Previous(PreviousValue {
                metadata,
                value: value(len),
            }),
        }),
    }
}

fn cases() -> Vec<Case> {
    vec![
        get_case(Version::V4_0, 100, "100B"),
        get_case(Version::V4_0, 1024, "1KiB"),
        put_case(Version::V4_0, 100, "100B"),
        put_case(Version::V4_0, 1024, "1KiB"),
        get_case(Version::V3_1, 1024, "1KiB"),
        put_case(Version::V3_1, 1024, "1KiB"),
    ]
}

fn server_codec(c: &mut Criterion) {
    for case in cases() {
        let mut group = c.benchmark_group(format!("server/{}", case.name));
        let mut out = BytesMut::with_capacity(4096);
        let mut codec = ServerCodec::default();
        codec.encode(&case.response, &mut out).unwrap();
        let response_len = out.len();

        group.throughput(Throughput::Bytes(case.request.len() as u64));
        group.bench_function("decode_request", |b| {
            let mut codec = ServerCodec::default();
            b.iter_batched_ref(
                || case.request.clone(),
                |buf| black_box(codec.decode(buf).unwrap()),
                BatchSize::SmallInput,
            )
        });

        group.throughput(Throughput::Bytes(response_len as u64));
        group.bench_function("encode_response", |b| {
            let mut codec = ServerCodec::default();
            b.iter(|| {
                out.clear();
                codec.encode(black_box(&case.response), &mut out).unwrap();
                black_box(out.len())
            })
        });

        group.throughput(Throughput::Bytes(
            (case.request.len() + response_len) as u64,
        ));
        group.bench_function("decode_request+encode_response", |b| {
            let mut codec = ServerCodec::default();
            b.iter_batched_ref(
                || case.request.clone(),
                |buf| {
                    let req = codec.decode(buf).unwrap();
                    black_box(&req);
                    out.clear();
                    codec.encode(&case.response, &mut out).unwrap();
                    black_box(out.len())
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, server_codec);
criterion_main!(benches);
