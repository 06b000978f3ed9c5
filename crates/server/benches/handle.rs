//! The server's own work per request, without sockets: decode a pipelined burst of 16 Hot Rod
//! requests with `ServerCodec` (sharing the read buffer, as a connection does), handle each against the engine and encode the answers, as a
//! connection task does after a read. The network share of a request's cost is measured by
//! `benches/run.sh`; this one isolates what Ironrod's code adds to it.
//!
//! `cargo bench -p ironrod-server --bench handle`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ironrod_codec::{
    ClientCodec, Expiration, Limits, Op, Request, RequestHeader, ServerCodec, Version,
};
use ironrod_server::connection::shares_request_bytes;
use ironrod_server::session::Session;
use ironrod_server::{Config, State};
use tokio_util::codec::{Decoder, Encoder};

const KEYS: usize = 10_000;
const BURST: usize = 16;

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key-{i:012}"))
}

/// `BURST` requests per burst, over the whole key space, as one client would send them.
fn bursts(value_size: usize, get: bool) -> Vec<BytesMut> {
    let mut codec = ClientCodec::default();
    let value = Bytes::from(vec![7u8; value_size]);
    let mut out = Vec::new();
    let mut id = 0u64;
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(BURST) {
        let mut buf = BytesMut::new();
        for &i in chunk {
            id += 1;
            let op = if get {
                Op::Get {
                    key: key(i * 7919 % KEYS),
                }
            } else {
                Op::Put {
                    key: key(i * 7919 % KEYS),
                    expiration: Expiration::DEFAULT,
                    value: value.clone(),
                }
            };
            let header = RequestHeader::new(id, Version::V4_0, "default");
            codec.encode(&Request { header, op }, &mut buf).unwrap();
        }
        out.push(buf);
    }
    out
}

fn bench(c: &mut Criterion) {
    let state = State::new(Config::default()).unwrap();
    let addr = "127.0.0.1:11222".parse().unwrap();
    let mut session = Session::new(addr, addr);
    let mut group = c.benchmark_group("handle");
    group.throughput(Throughput::Elements(BURST as u64));
    for size in [100usize, 1024] {
        // Fill the key space once so GETs hit.
        let mut out = BytesMut::new();
        for burst in bursts(size, false) {
            let mut codec = ServerCodec::new(Limits::DEFAULT);
            let mut buf = burst;
            while let Some(req) = codec.decode(&mut buf).unwrap() {
                state.handle(req, &mut session, &mut out);
            }
            out.clear();
        }
        for (name, get) in [("get", true), ("put", false)] {
            let all = bursts(size, get);
            let mut next = 0usize;
            let mut codec = ServerCodec::new(Limits::DEFAULT);
            let mut wbuf = BytesMut::with_capacity(64 * 1024);
            group.bench_function(format!("{name}/{size}B/burst{BURST}"), |b| {
                b.iter_batched_ref(
                    || {
                        next = (next + 1) % all.len();
                        all[next].clone().freeze()
                    },
                    |chunk| {
                        // As a connection does: fields sliced from the frozen read.
                        while let Some(req) =
                            codec.decode_shared(chunk, shares_request_bytes).unwrap()
                        {
                            state.handle(req, &mut session, &mut wbuf);
                        }
                        wbuf.clear();
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
