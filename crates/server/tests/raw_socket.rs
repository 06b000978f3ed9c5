//! Byte-level tests against a running server on loopback: pipelining, split frames, mixed
//! versions, and bad input of every kind. The server must answer what it can, close what it
//! cannot parse, never hang, and keep serving other connections.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use ironrod_codec::{
    Expiration, Flags, Intelligence, Op, OpCode, Request, RequestHeader, ResponseBody,
    ServerMessage, Status, Version,
};
use ironrod_server::{Config, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::{Client, TestServer, TIMEOUT};

async fn start() -> TestServer {
    start_with(Config::default()).await
}

async fn start_with(config: Config) -> TestServer {
    TestServer::start(State::new(config).unwrap(), TIMEOUT).await
}

fn header(id: u64, version: Version, cache: &str) -> RequestHeader {
    RequestHeader::new(id, version, cache)
}

fn put(id: u64, version: Version, key: &str, value: &str) -> Request {
    let expiration = if version < Version::V2_2 {
        Expiration::Seconds {
            lifespan: 0,
            max_idle: 0,
        }
    } else {
        Expiration::DEFAULT
    };
    Request {
        header: header(id, version, ""),
        op: Op::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            expiration,
            value: Bytes::copy_from_slice(value.as_bytes()),
        },
    }
}

fn get(id: u64, version: Version, key: &str) -> Request {
    Request {
        header: header(id, version, ""),
        op: Op::Get {
            key: Bytes::copy_from_slice(key.as_bytes()),
        },
    }
}

fn ping(id: u64, version: Version, cache: &str) -> Request {
    Request {
        header: header(id, version, cache),
        op: Op::Ping,
    }
}

async fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(TIMEOUT, s.read_to_end(&mut out))
        .await
        .expect("server closes")
        .unwrap();
    out
}

fn decode_error(bytes: &[u8]) -> (u64, Status, String) {
    let (msg, _) = ServerMessage::decode(bytes, |_| None, &Default::default()).unwrap();
    match msg {
        ServerMessage::Response(r) => match r.body {
            ResponseBody::Error(text) => {
                assert_eq!(r.opcode, OpCode::ERROR);
                (r.message_id, r.status, text)
            }
            other => panic!("not an error frame: {other:?}"),
        },
        other => panic!("not a response: {other:?}"),
    }
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_by_id() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    let mut reqs = Vec::new();
    for i in 0..200u64 {
        reqs.push(put(
            2 * i + 1,
            Version::V4_0,
            &format!("k{i}"),
            &format!("v{i}"),
        ));
        reqs.push(get(2 * i + 2, Version::V4_0, &format!("k{i}")));
    }
    c.send(&reqs).await;
    for i in 0..200u64 {
        let p = c.recv_response().await;
        assert_eq!((p.message_id, p.status), (2 * i + 1, Status::SUCCESS));
        let g = c.recv_response().await;
        assert_eq!(g.message_id, 2 * i + 2);
        assert_eq!(g.body, ResponseBody::Value(Bytes::from(format!("v{i}"))));
    }
    srv.stop().await;
}

#[tokio::test]
async fn requests_split_one_byte_at_a_time() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    let mut bytes = c.encode(&put(7, Version::V4_1, "key", &"x".repeat(300)));
    bytes.extend_from_slice(&c.encode(&get(8, Version::V3_1, "key")));
    for b in bytes.iter() {
        c.stream.write_all(&[*b]).await.unwrap();
        c.stream.flush().await.unwrap();
    }
    assert_eq!(c.recv_response().await.message_id, 7);
    let g = c.recv_response().await;
    assert_eq!(g.body, ResponseBody::Value(Bytes::from("x".repeat(300))));
    srv.stop().await;
}

#[tokio::test]
async fn versions_mix_on_one_connection() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    let versions = [
        Version::V3_1,
        Version::V4_0,
        Version::V2_0,
        Version::V2_9,
        Version::V4_1,
        Version::V2_5,
        Version::V3_0,
    ];
    for (i, v) in versions.iter().enumerate() {
        let id = 10 * i as u64;
        c.send(&[
            ping(id, *v, ""),
            put(id + 1, *v, "mixed", &v.to_string()),
            get(id + 2, *v, "mixed"),
        ])
        .await;
        let p = c.recv_response().await;
        assert_eq!((p.message_id, p.status), (id, Status::SUCCESS));
        if let ResponseBody::Ping(info) = &p.body {
            if *v >= Version::V3_0 {
                assert_eq!(info.server_version, Version::V4_1);
                assert!(info.operations.contains(&u16::from(OpCode::GET.0)));
            }
        } else {
            panic!("no ping body: {p:?}");
        }
        assert_eq!(c.recv_response().await.status, Status::SUCCESS);
        let g = c.recv_response().await;
        assert_eq!(g.body, ResponseBody::Value(Bytes::from(v.to_string())));
    }
    srv.stop().await;
}

#[tokio::test]
async fn unknown_versions_get_an_error_and_the_connection_stays() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    for (i, v) in [Version(42), Version(35), Version(50)]
        .into_iter()
        .enumerate()
    {
        c.send(&[ping(i as u64 + 1, v, "")]).await;
        let r = c.recv_response().await;
        assert_eq!(r.opcode, OpCode::ERROR);
        assert_eq!(r.status, Status::PARSE_ERROR);
        match r.body {
            ResponseBody::Error(t) => assert!(t.contains("Unknown version"), "{t}"),
            other => panic!("{other:?}"),
        }
    }
    c.send(&[ping(9, Version::V4_1, "")]).await;
    assert_eq!(c.recv_response().await.status, Status::SUCCESS);
    srv.stop().await;
}

#[tokio::test]
async fn below_2_0_is_refused_and_closed() {
    let srv = start().await;
    let out = raw(
        srv.addr,
        &[0xA0, 0x05, 0x0A, 0x17, 0x00, 0x00, 0x01, 0x00, 0x00],
    )
    .await;
    let (id, status, text) = decode_error(&out);
    assert_eq!((id, status), (5, Status::PARSE_ERROR));
    assert!(text.contains("Unknown version"), "{text}");
    srv.stop().await;
}

#[tokio::test]
async fn unknown_opcode_is_answered_then_closed() {
    let srv = start().await;
    // Opcode 0x60 (an event code) at 4.0, id 3.
    let out = raw(
        srv.addr,
        &[
            0xA0, 0x03, 0x28, 0x60, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        ],
    )
    .await;
    let (id, status, text) = decode_error(&out);
    assert_eq!((id, status), (3, Status::UNKNOWN_OPERATION));
    assert!(text.contains("Unknown operation 96"), "{text}");
    srv.stop().await;
}

#[tokio::test]
async fn bad_magic_is_answered_then_closed() {
    let srv = start().await;
    // Not an HTTP method (an upper-case first byte is served as HTTP on the same port).
    let out = raw(srv.addr, b"get / HTTP/1.1\r\n\r\n").await;
    let (id, status, _) = decode_error(&out);
    assert_eq!((id, status), (0, Status::INVALID_MAGIC_OR_MESSAGE_ID));
    srv.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_fields_are_answered_then_closed() {
    let srv = start().await;
    // Media type kind 7 in a 4.0 header.
    let out = raw(
        srv.addr,
        &[0xA0, 0x04, 0x28, 0x17, 0x00, 0x00, 0x01, 0x00, 0x07],
    )
    .await;
    let (id, status, text) = decode_error(&out);
    assert_eq!((id, status), (4, Status::PARSE_ERROR));
    assert!(text.contains("media type kind"), "{text}");
    // A key that claims 2 GiB: refused at once, nothing buffered for it.
    let mut claim = vec![
        0xA0, 0x06, 0x28, 0x03, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    ];
    claim.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
    let out = raw(srv.addr, &claim).await;
    let (id, status, text) = decode_error(&out);
    assert_eq!((id, status), (6, Status::PARSE_ERROR));
    assert!(text.contains("limit"), "{text}");
    // Flags as a vInt of 6 bytes.
    let out = raw(
        srv.addr,
        &[
            0xA0, 0x09, 0x28, 0x17, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ],
    )
    .await;
    let (id, status, text) = decode_error(&out);
    assert_eq!((id, status), (9, Status::PARSE_ERROR));
    assert!(text.contains("flags"), "{text}");
    srv.stop().await;
}

#[tokio::test]
async fn frames_over_the_limit_are_refused() {
    let mut config = Config::default();
    config.limits.max_frame_len = 4096;
    let srv = start_with(config).await;
    let mut c = Client::connect(srv.addr).await;
    c.send(&[put(1, Version::V4_0, "big", &"y".repeat(5000))])
        .await;
    let out = c.until_closed().await;
    let (id, status, _) = decode_error(&out);
    assert_eq!((id, status), (0, Status::PARSE_ERROR));
    srv.stop().await;
}

#[tokio::test]
async fn truncated_frames_do_not_hang_the_server_or_others() {
    let srv = start().await;
    let mut half = TcpStream::connect(srv.addr).await.unwrap();
    half.write_all(&[0xA0, 0x01, 0x28, 0x01, 0x00])
        .await
        .unwrap();
    let mut other = Client::connect(srv.addr).await;
    other
        .send(&[put(1, Version::V4_0, "a", "b"), get(2, Version::V4_0, "a")])
        .await;
    other.recv_response().await;
    assert_eq!(
        other.recv_response().await.body,
        ResponseBody::Value(Bytes::from("b"))
    );
    drop(half);
    // The server notices the close and keeps serving.
    let mut again = Client::connect(srv.addr).await;
    again.send(&[ping(5, Version::V4_0, "")]).await;
    assert_eq!(again.recv_response().await.status, Status::SUCCESS);
    srv.stop().await;
}

#[tokio::test]
async fn unknown_cache_keeps_the_connection() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    c.send(&[
        ping(1, Version::V4_0, "nope"),
        ping(2, Version::V4_0, "sessions"),
    ])
    .await;
    let r = c.recv_response().await;
    assert_eq!((r.opcode, r.status), (OpCode::ERROR, Status::PARSE_ERROR));
    assert_eq!(
        r.body,
        ResponseBody::Error(
            "org.infinispan.server.hotrod.CacheNotFoundException: Cache with name 'nope' not found amongst the configured caches"
                .into()
        )
    );
    assert_eq!(c.recv_response().await.status, Status::SUCCESS);
    // The script cache is not a cache here.
    c.send(&[ping(3, Version::V4_0, "___script_cache")]).await;
    assert_eq!(c.recv_response().await.opcode, OpCode::ERROR);
    srv.stop().await;
}

#[tokio::test]
async fn topology_goes_to_aware_clients_that_lack_it() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    let mut req = ping(1, Version::V4_0, "");
    req.header.intelligence = Intelligence::HASH_DISTRIBUTION_AWARE;
    req.header.topology_id = -1;
    c.send(&[req.clone()]).await;
    let r = c.recv_response().await;
    let t = r.topology.expect("a topology for a client with none");
    assert_eq!(t.id, State::TOPOLOGY_ID);
    assert_eq!(t.servers.len(), 1);
    assert_eq!(t.servers[0].host, "127.0.0.1");
    assert_eq!(t.servers[0].port, srv.addr.port());
    let seg = t.segments.expect("segments for intelligence 3");
    assert_eq!(
        (seg.hash_function, seg.num_segments, seg.owners.len()),
        (3, 256, 256)
    );
    // Up to date: no topology.
    req.header.message_id = 2;
    req.header.topology_id = State::TOPOLOGY_ID;
    c.send(&[req.clone()]).await;
    assert!(c.recv_response().await.topology.is_none());
    // Topology-aware: servers without segments.
    req.header.message_id = 3;
    req.header.topology_id = 0;
    req.header.intelligence = Intelligence::TOPOLOGY_AWARE;
    c.send(&[req.clone()]).await;
    let t = c.recv_response().await.topology.expect("topology");
    assert!(t.segments.is_none());
    // Basic: never.
    req.header.message_id = 4;
    req.header.intelligence = Intelligence::BASIC;
    c.send(&[req]).await;
    assert!(c.recv_response().await.topology.is_none());
    srv.stop().await;
}

#[tokio::test]
async fn force_return_value_statuses_match_the_reference() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    let mut p = put(1, Version::V4_0, "frv", "one");
    p.header.flags = Flags::FORCE_RETURN_VALUE;
    c.send(&[p.clone()]).await;
    let r = c.recv_response().await;
    // Absent key: "with previous" and an empty previous value with the absent metadata block.
    assert_eq!(r.status, Status::SUCCESS_WITH_PREVIOUS);
    let mut wire = BytesMut::new();
    r.encode(&mut wire);
    assert!(wire.ends_with(&[0x03, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]));
    p.header.message_id = 2;
    c.send(&[p]).await;
    match c.recv_response().await.body {
        ResponseBody::Previous(prev) => assert_eq!(prev.value, Bytes::from("one")),
        other => panic!("{other:?}"),
    }
    srv.stop().await;
}

#[tokio::test]
async fn shutdown_answers_what_was_received() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    c.send(&[put(1, Version::V4_0, "s", "t")]).await;
    assert_eq!(c.recv_response().await.status, Status::SUCCESS);
    let addr = srv.addr;
    srv.stop().await;
    // Closed and no longer accepting.
    c.until_closed().await;
    assert!(TcpStream::connect(addr).await.is_err());
}
