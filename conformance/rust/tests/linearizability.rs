//! Linearizability of single-key registers: at least 8 concurrent clients (the third-party
//! `hotrod-protocol` client, one connection each) put, read and remove one key of an in-process
//! Ironrod; each operation's invocation and response times are recorded and the whole history
//! goes through the Wing–Gong checker in `ironrod_conformance_rust::linearizability`. Run on a
//! transactional cache (Keycloak's `sessions`: every write an implicit zero-timeout
//! transaction) and on the plain `default` cache; on `sessions` two more clients write the key
//! through two-phase Hot Rod remote transactions (PREPARE_TX_2, then COMMIT_TX), so plain writes
//! meet prepared locks. A write refused with ISPN000299 or a transaction rolled back (XA code
//! 100) certainly did not apply and is left out; a committed transaction is a write spanning
//! its PREPARE and COMMIT. Zero violations allowed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hotrod_protocol::{Error, Expiration, HotRodConnection};
use ironrod_codec::{
    ClientCodec, Expiration as WireExpiration, Limits, Modification, Op, Request, RequestHeader,
    Response, ResponseBody, ServerMessage, Version, Xid,
};
use ironrod_conformance_rust::linearizability::{check, Kind, Operation};
use ironrod_server::{server, Config, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::codec::{Decoder, Encoder};

const TIMEOUT: Duration = Duration::from_secs(10);
const CLIENTS: u64 = 10;
const OPS_PER_CLIENT: u64 = 150;
const TX_CLIENTS: u64 = 2;

/// Whether a plain write failed because a transaction held the key (it did not apply).
fn conflict<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Server { message, .. }) if message.contains("ISPN000299"))
}

/// A Hot Rod connection through Ironrod's own codec, for the transaction opcodes the
/// third-party client does not send.
struct TxConn {
    stream: TcpStream,
    codec: ClientCodec,
    buf: BytesMut,
    id: u64,
}

impl TxConn {
    async fn call(&mut self, cache: &str, op: Op) -> Response {
        self.id += 1;
        let req = Request {
            header: RequestHeader::new(self.id, Version::V4_0, cache),
            op,
        };
        let mut out = BytesMut::new();
        Encoder::<&Request>::encode(&mut self.codec, &req, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
        loop {
            if let Some(ServerMessage::Response(r)) = self.codec.decode(&mut self.buf).unwrap() {
                return r;
            }
            assert!(self.stream.read_buf(&mut self.buf).await.unwrap() > 0);
        }
    }
}

/// Two-phase transactions writing (or removing) `key`; committed ones become operations.
async fn transactions(
    addr: std::net::SocketAddr,
    cache: &'static str,
    key: &'static [u8],
    client: u64,
    start: Instant,
) -> Vec<Operation> {
    let mut conn = TxConn {
        stream: TcpStream::connect(addr).await.unwrap(),
        codec: ClientCodec::new(Limits::DEFAULT),
        buf: BytesMut::new(),
        id: 0,
    };
    let mut ops = Vec::new();
    for n in 0..OPS_PER_CLIENT {
        let value = format!("tx{client}-{n}").into_bytes();
        let remove = n % 5 == 4;
        let xid = Xid {
            format_id: 1,
            // Unique across rounds: the server remembers finished XIDs until FORGET_TX.
            global_id: Bytes::from(format!("lin-{client}-{n}-{}", start.elapsed().as_nanos())),
            branch_qualifier: Bytes::new(),
        };
        let modification = Modification {
            key: Bytes::from_static(key),
            control: Modification::NOT_READ | if remove { Modification::REMOVE } else { 0 },
            version_read: None,
            write: (!remove).then(|| (WireExpiration::DEFAULT, Bytes::from(value.clone()))),
        };
        let call = start.elapsed().as_nanos() as u64;
        let prepared = conn
            .call(
                cache,
                Op::PrepareTx2 {
                    xid: xid.clone(),
                    one_phase: false,
                    recoverable: false,
                    timeout_ms: 60_000,
                    modifications: vec![modification],
                },
            )
            .await;
        match prepared.body {
            ResponseBody::XaCode(0) => {}
            ResponseBody::XaCode(100) => continue,
            other => panic!("prepare: {other:?}"),
        }
        tokio::task::yield_now().await;
        let committed = conn.call("", Op::CommitTx { xid }).await;
        assert_eq!(committed.body, ResponseBody::XaCode(0));
        let ret = start.elapsed().as_nanos() as u64;
        let kind = if remove {
            Kind::Remove
        } else {
            Kind::Write(value)
        };
        ops.push(Operation { call, ret, kind });
    }
    ops
}

/// Records one history of `CLIENTS` clients (and `TX_CLIENTS` transactional ones) on `key` of
/// `cache`.
async fn history(
    addr: std::net::SocketAddr,
    cache: &'static str,
    key: &'static [u8],
    with_transactions: bool,
) -> Vec<Operation> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    if with_transactions {
        for client in 0..TX_CLIENTS {
            tasks.push(tokio::spawn(transactions(addr, cache, key, client, start)));
        }
    }
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
                        let r = conn
                            .put(key, &v, Expiration::Default, Expiration::Default)
                            .await;
                        if conflict(&r) {
                            // The client poisons a connection after any failed operation.
                            conn = HotRodConnection::connect_with_timeout(addr, cache, TIMEOUT)
                                .await
                                .unwrap();
                            continue;
                        }
                        r.unwrap();
                        Kind::Write(v)
                    }
                    4 => {
                        let r = conn.remove(key).await;
                        if conflict(&r) {
                            // The client poisons a connection after any failed operation.
                            conn = HotRodConnection::connect_with_timeout(addr, cache, TIMEOUT)
                                .await
                                .unwrap();
                            continue;
                        }
                        r.unwrap();
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
            let with_transactions = cache == "sessions";
            let h = history(addr, cache, key, with_transactions).await;
            let most = (CLIENTS + if with_transactions { TX_CLIENTS } else { 0 }) * OPS_PER_CLIENT;
            eprintln!("{cache} round {round}: {} ops of at most {most}", h.len());
            assert!(h.len() as u64 <= most);
            assert!(
                h.len() as u64 >= CLIENTS * OPS_PER_CLIENT / 4,
                "{} ops",
                h.len()
            );
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
