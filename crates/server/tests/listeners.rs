//! Client listeners over real sockets: ADD/REMOVE_CLIENT_LISTENER, event frames interleaved with
//! responses, include-current-state, the skip flag, expiry, unknown factories, connection end,
//! and the queue bounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ironrod_codec::{
    CacheEvent, EventKind, EventPayload, Expiration, Factory, Flags, ListenerRegistration, Op,
    OpCode, Request, RequestHeader, ResponseBody, ServerMessage, Status, TimeUnit, TimeValue,
    Version,
};
use ironrod_engine::ManualClock;
use ironrod_server::{Config, State};

mod common;

use common::{Client, TestServer, TIMEOUT};

async fn start_with(config: Config) -> TestServer {
    TestServer::start(State::new(config).unwrap(), TIMEOUT).await
}

fn req(id: u64, version: Version, op: Op) -> Request {
    Request {
        header: RequestHeader::new(id, version, ""),
        op,
    }
}

fn put(id: u64, key: &str, value: &str) -> Request {
    req(
        id,
        Version::V4_0,
        Op::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            expiration: Expiration::DEFAULT,
            value: Bytes::copy_from_slice(value.as_bytes()),
        },
    )
}

fn add(id: u64, version: Version, listener: &str, include_state: bool) -> Request {
    req(
        id,
        version,
        Op::AddClientListener(Box::new(ListenerRegistration {
            listener_id: Bytes::copy_from_slice(listener.as_bytes()),
            include_current_state: include_state,
            filter: None,
            converter: None,
            raw_data: false,
            interests: 0,
        })),
    )
}

fn remove_listener(id: u64, listener: &str) -> Request {
    req(
        id,
        Version::V4_0,
        Op::RemoveClientListener {
            listener_id: Bytes::copy_from_slice(listener.as_bytes()),
        },
    )
}

async fn event(c: &mut Client) -> CacheEvent {
    match c.recv().await {
        ServerMessage::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn plain(e: &CacheEvent) -> (EventKind, Vec<u8>, Option<i64>) {
    match &e.payload {
        EventPayload::Plain { key, version } => (e.kind, key.to_vec(), *version),
        other => panic!("plain event expected, got {other:?}"),
    }
}

async fn version_of(c: &mut Client, key: &str) -> i64 {
    let r = c
        .call(req(
            99,
            Version::V4_0,
            Op::GetWithMetadata {
                key: Bytes::copy_from_slice(key.as_bytes()),
            },
        ))
        .await;
    match r.body {
        ResponseBody::MetadataValue { metadata, .. } => metadata.version,
        other => panic!("metadata expected, got {other:?}"),
    }
}

#[tokio::test]
async fn events_reach_an_idle_listener_at_every_version() {
    let server = start_with(Config::default()).await;
    let mut writer = Client::connect(server.addr).await;
    for (n, version) in [Version::V2_0, Version::V2_5, Version::V2_8, Version::V4_0]
        .into_iter()
        .enumerate()
    {
        let mut listener = Client::connect(server.addr).await;
        let name = format!("L{n}");
        let r = listener.call(add(1, version, &name, false)).await;
        assert_eq!(r.opcode, OpCode::ADD_CLIENT_LISTENER_RESPONSE);
        assert_eq!(r.status, Status::SUCCESS, "{version:?}");
        let key = format!("k{n}");
        writer.call(put(2, &key, "a")).await;
        let v1 = version_of(&mut writer, &key).await;
        writer.call(put(3, &key, "b")).await;
        let v2 = version_of(&mut writer, &key).await;
        writer
            .call(req(
                4,
                Version::V4_0,
                Op::Remove {
                    key: Bytes::copy_from_slice(key.as_bytes()),
                },
            ))
            .await;
        let created = event(&mut listener).await;
        assert_eq!(created.listener_id, name.as_bytes());
        assert_eq!(created.message_id, 0);
        assert_eq!(
            plain(&created),
            (EventKind::Created, key.clone().into_bytes(), Some(v1))
        );
        assert_eq!(
            plain(&event(&mut listener).await),
            (EventKind::Modified, key.clone().into_bytes(), Some(v2))
        );
        assert_eq!(
            plain(&event(&mut listener).await),
            (EventKind::Removed, key.clone().into_bytes(), None)
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn own_writes_notify_before_their_response_and_skip_flag_suppresses() {
    let server = start_with(Config::default()).await;
    let mut c = Client::connect(server.addr).await;
    assert_eq!(
        c.call(add(1, Version::V4_0, "me", false)).await.status,
        Status::SUCCESS
    );
    let mut skipped = put(2, "quiet", "v");
    skipped.header.flags = Flags::SKIP_LISTENER_NOTIFICATION;
    assert_eq!(c.call(skipped).await.status, Status::SUCCESS);
    c.send(&[put(3, "loud", "v")]).await;
    // The reference queues the event before answering the write.
    let e = event(&mut c).await;
    assert_eq!(plain(&e).1, b"loud");
    let r = c.recv_response().await;
    assert_eq!(r.message_id, 3);
    server.stop().await;
}

#[tokio::test]
async fn include_current_state_precedes_the_response() {
    let server = start_with(Config::default()).await;
    let mut writer = Client::connect(server.addr).await;
    for k in ["a", "b", "c"] {
        writer.call(put(1, k, "v")).await;
    }
    let mut listener = Client::connect(server.addr).await;
    listener.send(&[add(77, Version::V4_0, "S", true)]).await;
    let mut keys = Vec::new();
    loop {
        match listener.recv().await {
            ServerMessage::Event(e) => {
                assert_eq!(e.message_id, 77);
                assert_eq!(e.kind, EventKind::Created);
                keys.push(plain(&e).1);
            }
            ServerMessage::Response(r) => {
                assert_eq!(r.message_id, 77);
                assert_eq!(r.status, Status::SUCCESS);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    keys.sort();
    assert_eq!(keys, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    writer.call(put(2, "d", "v")).await;
    let e = event(&mut listener).await;
    assert_eq!((e.message_id, plain(&e).1), (0, b"d".to_vec()));
    server.stop().await;
}

#[tokio::test]
async fn removal_unknown_factories_and_connection_end() {
    let server = start_with(Config::default()).await;
    let mut listener = Client::connect(server.addr).await;
    let mut other = Client::connect(server.addr).await;
    let mut filtered = add(1, Version::V4_0, "F", false);
    if let Op::AddClientListener(reg) = &mut filtered.op {
        reg.filter = Some(Factory {
            name: "my-filter-factory".into(),
            params: vec![],
        });
    }
    let r = listener.call(filtered).await;
    assert_eq!(r.status, Status::SERVER_ERROR);
    match r.body {
        ResponseBody::Error(text) => assert!(text.contains("my-filter-factory"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        listener
            .call(add(2, Version::V4_0, "A", false))
            .await
            .status,
        Status::SUCCESS
    );
    assert_eq!(
        listener
            .call(add(3, Version::V4_0, "A", false))
            .await
            .status,
        Status::SERVER_ERROR,
        "duplicate id"
    );
    // Removal works from any connection.
    assert_eq!(
        other.call(remove_listener(4, "A")).await.status,
        Status::SUCCESS
    );
    assert_eq!(
        other.call(remove_listener(5, "A")).await.status,
        Status::NOT_EXECUTED
    );
    other.call(put(6, "x", "v")).await;
    // No event: the next message on the listener's connection is the PING answer.
    let r = listener.call(req(7, Version::V4_0, Op::Ping)).await;
    assert_eq!(r.message_id, 7);

    // Listeners end with their connection: the id is free again.
    assert_eq!(
        listener
            .call(add(8, Version::V4_0, "B", false))
            .await
            .status,
        Status::SUCCESS
    );
    drop(listener);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        other.call(add(9, Version::V4_0, "B", false)).await.status,
        Status::SUCCESS
    );
    server.stop().await;
}

#[tokio::test]
async fn expiry_on_access_and_by_the_reaper_is_notified() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let state = State::with_clock(Config::default(), clock.clone()).unwrap();
    let server = TestServer::start(state, TIMEOUT).await;
    let mut listener = Client::connect(server.addr).await;
    let mut writer = Client::connect(server.addr).await;
    listener.call(add(1, Version::V4_0, "E", false)).await;
    for k in ["short", "reaped"] {
        writer
            .call(req(
                2,
                Version::V4_0,
                Op::Put {
                    key: Bytes::copy_from_slice(k.as_bytes()),
                    expiration: Expiration::Units {
                        lifespan: TimeValue::Amount {
                            unit: TimeUnit::SECONDS,
                            amount: 1,
                        },
                        max_idle: TimeValue::Default,
                    },
                    value: Bytes::from_static(b"v"),
                },
            ))
            .await;
        assert_eq!(plain(&event(&mut listener).await).0, EventKind::Created);
    }
    clock.advance(2_000);
    let r = writer
        .call(req(
            3,
            Version::V4_0,
            Op::Get {
                key: Bytes::from_static(b"short"),
            },
        ))
        .await;
    assert_eq!(r.status, Status::KEY_DOES_NOT_EXIST);
    let e = event(&mut listener).await;
    assert_eq!(
        (e.kind, plain(&e).1),
        (EventKind::Expired, b"short".to_vec())
    );
    // The reaper runs at least every second.
    let e = event(&mut listener).await;
    assert_eq!(
        (e.kind, plain(&e).1),
        (EventKind::Expired, b"reaped".to_vec())
    );
    server.stop().await;
}

#[tokio::test]
async fn an_overflowing_listener_is_closed_and_writers_stay_healthy() {
    let config = Config {
        event_queue_high: 2,
        event_queue_low: 1,
        event_queue_max: 6,
        ..Config::default()
    };
    let server = start_with(config).await;
    // A listener that never reads, with a tiny receive window, so its socket fills.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let mut slow = Client::from_stream(stream);
    assert_eq!(
        slow.call(add(1, Version::V4_0, "slow", false)).await.status,
        Status::SUCCESS
    );
    // Big keys: a few events fill the socket buffers.
    let big = "k".repeat(60_000);
    let mut writers = Vec::new();
    for w in 0..4 {
        let addr = server.addr;
        let big = big.clone();
        writers.push(tokio::spawn(async move {
            let mut c = Client::connect_with(addr, Duration::from_secs(30)).await;
            for i in 0..200 {
                let r = c.call(put(i, &format!("{big}{w}-{i}"), "v")).await;
                assert_eq!(r.status, Status::SUCCESS);
            }
        }));
    }
    for w in writers {
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("writers finish")
            .unwrap();
    }
    // The slow listener's connection was closed by the server.
    let rest = slow.until_closed().await;
    let _ = rest;
    let mut check = Client::connect(server.addr).await;
    assert_eq!(
        check
            .call(add(2, Version::V4_0, "slow", false))
            .await
            .status,
        Status::SUCCESS,
        "the overflowed listener was dropped"
    );
    server.stop().await;
}

#[tokio::test]
async fn bloom_filter_listener_gets_invalidations_only() {
    let server = start_with(Config::default()).await;
    let mut near = Client::connect(server.addr).await;
    let mut other = Client::connect(server.addr).await;
    let update = |id| {
        req(
            id,
            Version::V3_1,
            Op::UpdateBloomFilter {
                bits: Bytes::from_static(&[0xFF, 0x01]),
            },
        )
    };
    assert_eq!(near.call(update(1)).await.status, Status::NOT_EXECUTED);
    let r = near
        .call(req(
            2,
            Version::V3_1,
            Op::AddBloomFilterListener {
                listener_id: Bytes::from_static(b"near"),
                bloom_bits: 64,
            },
        ))
        .await;
    assert_eq!(r.opcode, OpCode::ADD_BLOOM_FILTER_LISTENER_RESPONSE);
    assert_eq!(r.status, Status::SUCCESS);
    let r = near.call(update(3)).await;
    assert_eq!(
        (r.opcode, r.status),
        (OpCode::UPDATE_BLOOM_FILTER_RESPONSE, Status::SUCCESS)
    );
    assert_eq!(
        other.call(update(4)).await.status,
        Status::NOT_EXECUTED,
        "only on the listener's connection"
    );
    other.call(put(5, "nk", "a")).await;
    other.call(put(6, "nk", "b")).await;
    // No created event: the first event is the modification.
    let e = event(&mut near).await;
    assert_eq!(e.listener_id, &b"near"[..]);
    assert_eq!(plain(&e).0, EventKind::Modified);
    server.stop().await;
}

#[tokio::test]
async fn put_all_and_clear_notify_each_entry() {
    let server = start_with(Config::default()).await;
    let mut listener = Client::connect(server.addr).await;
    let mut writer = Client::connect(server.addr).await;
    listener.call(add(1, Version::V4_0, "PC", false)).await;
    let entries: Vec<(Bytes, Bytes)> = ["p1", "p2", "p3"]
        .iter()
        .map(|k| (Bytes::from(k.to_string()), Bytes::from_static(b"v")))
        .collect();
    let r = writer
        .call(req(
            2,
            Version::V4_0,
            Op::PutAll {
                expiration: Expiration::DEFAULT,
                entries,
            },
        ))
        .await;
    assert_eq!(r.status, Status::SUCCESS);
    let mut created = Vec::new();
    for _ in 0..3 {
        let e = event(&mut listener).await;
        assert_eq!(e.kind, EventKind::Created);
        created.push(plain(&e).1);
    }
    created.sort();
    assert_eq!(created, [b"p1".to_vec(), b"p2".to_vec(), b"p3".to_vec()]);
    assert_eq!(
        writer.call(req(3, Version::V4_0, Op::Clear)).await.status,
        Status::SUCCESS
    );
    let mut removed = Vec::new();
    for _ in 0..3 {
        let e = event(&mut listener).await;
        assert_eq!(e.kind, EventKind::Removed);
        removed.push(plain(&e).1);
    }
    removed.sort();
    assert_eq!(removed, created);
    server.stop().await;
}

/// A listener registering with include-current-state while writers keep modifying keys sees each
/// (key, version) at most once, each key's versions in increasing order, and ends on the key's
/// current version: the racing writes are neither lost nor duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_state_races_with_writers_without_loss_or_duplicates() {
    let server = start_with(Config::default()).await;
    let mut setup = Client::connect(server.addr).await;
    for i in 0..200 {
        setup.call(put(i, &format!("r{i}"), "0")).await;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let addr = server.addr;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let key = format!("r{}", (n * 7 + w * 13) % 200);
                c.call(put(n, &key, &n.to_string())).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut listener = Client::connect(server.addr).await;
    listener
        .send(&[add(500, Version::V4_0, "race", true)])
        .await;
    let mut seen: std::collections::HashMap<Vec<u8>, Vec<i64>> = Default::default();
    let mut answered = false;
    let mut record = |e: CacheEvent| {
        let (_, key, version) = plain(&e);
        seen.entry(key).or_default().push(version.unwrap());
    };
    while !answered {
        match listener.recv().await {
            ServerMessage::Event(e) => record(e),
            ServerMessage::Response(r) => {
                assert_eq!((r.message_id, r.status), (500, Status::SUCCESS));
                answered = true;
            }
            other => panic!("{other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    // A marker write: once its event arrives, every earlier event has.
    setup.call(put(9_999, "marker", "m")).await;
    loop {
        let e = event(&mut listener).await;
        if plain(&e).1 == b"marker" {
            break;
        }
        record(e);
    }
    assert_eq!(
        seen.len(),
        200,
        "every key is in the state or the live events"
    );
    for i in 0..200 {
        let key = format!("r{i}");
        let versions = &seen[key.as_bytes()];
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{key}: versions strictly increase (no duplicate): {versions:?}"
        );
        assert_eq!(
            *versions.last().unwrap(),
            version_of(&mut setup, &key).await,
            "{key}: ends on the current version"
        );
    }
    server.stop().await;
}

#[test]
fn queue_bounds_are_configurable_and_checked() {
    let ok =
        Config::from_toml("event_queue_high = 10\nevent_queue_low = 5\nevent_queue_max = 20\n")
            .unwrap();
    assert_eq!(
        (ok.event_queue_high, ok.event_queue_low, ok.event_queue_max),
        (10, 5, 20)
    );
    for bad in [
        "event_queue_high = 10\nevent_queue_low = 20\n",
        "event_queue_high = 600\n",
        "event_queue_max = 0\nevent_queue_high = 0\nevent_queue_low = 0\n",
    ] {
        let e = Config::from_toml(bad).unwrap_err().to_string();
        assert!(e.contains("watermarks"), "{bad}: {e}");
    }
}

/// Operators see listeners and their queues in `/metrics`.
#[tokio::test]
async fn metrics_count_listeners_and_their_queues() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_with(Config::default()).await;
    let mut listener = Client::connect(server.addr).await;
    let r = listener.call(add(1, Version::V4_0, "M1", false)).await;
    assert_eq!(r.status, Status::SUCCESS);
    let mut http = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(TIMEOUT, http.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    assert!(
        text.contains("ironrod_cache_listeners{cache=\"default\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("ironrod_cache_listener_queue_depth{cache=\"default\"} "),
        "{text}"
    );
    assert!(
        text.contains("ironrod_cache_listener_queue_max{cache=\"default\"} "),
        "{text}"
    );
    server.stop().await;
}
