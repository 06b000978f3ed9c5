//! Linearizability of single-key registers: at least 8 concurrent clients (the third-party
//! `hotrod-protocol` client, one connection each) put, read and remove one key of an in-process
//! Ironrod; each operation's invocation and response times are recorded and the whole history
//! goes through the Wing–Gong checker in `ironrod_conformance_rust::linearizability`. Run on a
//! transactional cache (Keycloak's `sessions`: every write an implicit zero-timeout
//! transaction) and on the plain `default` cache. Zero violations allowed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hotrod_protocol::{Expiration, HotRodConnection};
use ironrod_conformance_rust::linearizability::{check, Kind, Operation};
use ironrod_server::{server, Config, State};
use tokio::sync::oneshot;

const TIMEOUT: Duration = Duration::from_secs(10);
const CLIENTS: u64 = 10;
const OPS_PER_CLIENT: u64 = 150;

/// Records one history of `CLIENTS` clients on `key` of `cache`.
async fn history(
    addr: std::net::SocketAddr,
    cache: &'static str,
    key: &'static [u8],
) -> Vec<Operation> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        tasks.push(tokio::spawn(async move {
            let mut conn = HotRodConnection::connect_with_timeout(addr, cache, TIMEOUT)
                .await
                .unwrap();
            let mut seed =
                0x9E37_79B9_7F4A_7C15u64 ^ (client + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let mut ops = Vec::new();
            for n in 0..OPS_PER_CLIENT {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let call = start.elapsed().as_nanos() as u64;
                let kind = match seed % 10 {
                    0..=3 => {
                        let v = format!("c{client}-{n}").into_bytes();
                        conn.put(key, &v, Expiration::Default, Expiration::Default)
                            .await
                            .unwrap();
                        Kind::Write(v)
                    }
                    4 => {
                        conn.remove(key).await.unwrap();
                        Kind::Remove
                    }
                    _ => Kind::Read(conn.get(key).await.unwrap()),
                };
                let ret = start.elapsed().as_nanos() as u64;
                ops.push(Operation { call, ret, kind });
            }
            ops
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_key_histories_are_linearizable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State::new(Config::default()).unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    for (cache, key) in [
        ("sessions", &b"register-tx"[..]),
        ("default", &b"register"[..]),
    ] {
        for round in 0..3 {
            let h = history(addr, cache, key).await;
            assert_eq!(h.len() as u64, CLIENTS * OPS_PER_CLIENT);
            // Each round starts from what the previous one left; remove it first.
            let mut conn = HotRodConnection::connect_with_timeout(addr, cache, TIMEOUT)
                .await
                .unwrap();
            if let Err(v) = check(&h, None) {
                panic!("{cache} round {round}: {v}");
            }
            conn.remove(key).await.unwrap();
        }
    }
    let _ = stop.send(());
    tokio::time::timeout(TIMEOUT, done).await.unwrap().unwrap();
}
