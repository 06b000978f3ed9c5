//! Hot Rod remote transactions and lock conflicts on transactional caches, byte-level over
//! loopback: XA codes, write-skew checks, recovery list, timeouts, connection death, and the
//! ISPN000299 answer a zero-timeout conflict gets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use ironrod_codec::{
    Expiration, Modification, Op, Request, RequestHeader, Response, ResponseBody, Status, Version,
    Xid,
};
use ironrod_server::{Config, State};

mod common;

use common::{Client, TestServer, TIMEOUT};

const CACHE: &str = "sessions";
const V: Version = Version::V4_0;

async fn start() -> TestServer {
    start_with(Config::default()).await
}

async fn start_with(config: Config) -> TestServer {
    TestServer::start(State::new(config).unwrap(), TIMEOUT).await
}

fn req(id: u64, cache: &str, op: Op) -> Request {
    Request {
        header: RequestHeader::new(id, V, cache),
        op,
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn xid(n: u8) -> Xid {
    Xid {
        format_id: 0x4852_5458,
        global_id: Bytes::from(vec![n; 16]),
        branch_qualifier: Bytes::from_static(&[1, 2, 3]),
    }
}

fn write(key: &str, value: &str, control: u8, version: Option<i64>) -> Modification {
    Modification {
        key: b(key),
        control,
        version_read: version,
        write: Some((Expiration::DEFAULT, b(value))),
    }
}

fn blind(key: &str, value: &str) -> Modification {
    write(key, value, Modification::NOT_READ, None)
}

fn prepare(id: u64, cache: &str, x: Xid, one_phase: bool, mods: Vec<Modification>) -> Request {
    prepare_timeout(id, cache, x, one_phase, 60_000, mods)
}

fn prepare_timeout(
    id: u64,
    cache: &str,
    x: Xid,
    one_phase: bool,
    timeout_ms: i64,
    mods: Vec<Modification>,
) -> Request {
    req(
        id,
        cache,
        Op::PrepareTx2 {
            xid: x,
            one_phase,
            recoverable: false,
            timeout_ms,
            modifications: mods,
        },
    )
}

fn put(id: u64, cache: &str, key: &str, value: &str) -> Request {
    req(
        id,
        cache,
        Op::Put {
            key: b(key),
            expiration: Expiration::DEFAULT,
            value: b(value),
        },
    )
}

fn get(id: u64, cache: &str, key: &str) -> Request {
    req(id, cache, Op::Get { key: b(key) })
}

fn xa(r: &Response) -> i32 {
    assert_eq!(r.status, Status::SUCCESS, "{r:?}");
    match r.body {
        ResponseBody::XaCode(code) => code,
        ref other => panic!("not an XA code: {other:?}"),
    }
}

fn error_text(r: &Response) -> String {
    match &r.body {
        ResponseBody::Error(text) => text.clone(),
        other => panic!("not an error: {other:?}"),
    }
}

async fn value(c: &mut Client, key: &str) -> Option<Bytes> {
    match c.call(get(99, CACHE, key)).await.body {
        ResponseBody::Value(v) => Some(v),
        _ => None,
    }
}

async fn version(c: &mut Client, key: &str) -> i64 {
    let r = c
        .call(req(98, CACHE, Op::GetWithMetadata { key: b(key) }))
        .await;
    match r.body {
        ResponseBody::MetadataValue { metadata, .. } => metadata.version,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_prepared_key_answers_writers_ispn000299_at_once_until_commit() {
    let srv = start().await;
    let mut a = Client::connect(srv.addr).await;
    let mut w = Client::connect(srv.addr).await;
    let r = a
        .call(prepare(
            1,
            CACHE,
            xid(1),
            false,
            vec![blind("k", "from-tx")],
        ))
        .await;
    assert_eq!(xa(&r), 0);
    assert_eq!(
        value(&mut w, "k").await,
        None,
        "prepared writes stay private"
    );

    let started = Instant::now();
    let r = w.call(put(2, CACHE, "k", "plain")).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    assert_eq!(r.status, Status::SERVER_ERROR);
    assert_eq!(r.message_id, 2);
    let text = error_text(&r);
    assert!(
        text.starts_with(
            "org.infinispan.util.concurrent.TimeoutException: ISPN000299: Unable to acquire lock after 0 milliseconds for key k and requestor "
        ),
        "{text}"
    );
    assert!(text.contains(". Lock is held by "), "{text}");

    // The commit may come on another connection (the Java client's pool).
    let r = w.call(req(3, CACHE, Op::CommitTx { xid: xid(1) })).await;
    assert_eq!(xa(&r), 0);
    assert_eq!(value(&mut w, "k").await, Some(b("from-tx")));
    assert_eq!(
        w.call(put(4, CACHE, "k", "plain")).await.status,
        Status::SUCCESS
    );
    assert_eq!(value(&mut a, "k").await, Some(b("plain")));
    // A repeated commit is answered consistently; a rollback of it is heuristic.
    assert_eq!(
        xa(&a.call(req(5, CACHE, Op::CommitTx { xid: xid(1) })).await),
        0
    );
    assert_eq!(
        xa(&a.call(req(6, CACHE, Op::RollbackTx { xid: xid(1) })).await),
        7
    );
    srv.stop().await;
}

#[tokio::test]
async fn one_phase_commit_checks_the_versions_read() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    c.call(put(1, CACHE, "n", "0")).await;
    let v = version(&mut c, "n").await;

    let stale = write("n", "stale", 0, Some(v + 1000));
    assert_eq!(
        xa(&c.call(prepare(2, CACHE, xid(2), true, vec![stale])).await),
        100
    );
    assert_eq!(value(&mut c, "n").await, Some(b("0")));

    let exists = write("n", "x", Modification::NON_EXISTING, None);
    assert_eq!(
        xa(&c.call(prepare(3, CACHE, xid(3), true, vec![exists])).await),
        100
    );

    let fresh = write("n", "1", 0, Some(v));
    let created = write("m", "new", Modification::NON_EXISTING, None);
    let r = c
        .call(prepare(4, CACHE, xid(4), true, vec![fresh, created]))
        .await;
    assert_eq!(xa(&r), 0);
    assert_eq!(value(&mut c, "n").await, Some(b("1")));
    assert_eq!(value(&mut c, "m").await, Some(b("new")));
    assert!(version(&mut c, "n").await > v);

    let removal = Modification {
        key: b("m"),
        control: Modification::NOT_READ | Modification::REMOVE,
        version_read: None,
        write: None,
    };
    assert_eq!(
        xa(&c.call(prepare(5, CACHE, xid(5), true, vec![removal])).await),
        0
    );
    assert_eq!(value(&mut c, "m").await, None);
    // The one-phase transaction is known as committed; a rolled-back one answers heuristics.
    assert_eq!(
        xa(&c.call(req(6, CACHE, Op::CommitTx { xid: xid(4) })).await),
        0
    );
    assert_eq!(
        xa(&c.call(req(7, CACHE, Op::CommitTx { xid: xid(2) })).await),
        6
    );
    srv.stop().await;
}

#[tokio::test]
async fn rollback_leaves_nothing_and_unknown_xids_are_xaer_nota() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    assert_eq!(
        xa(&c
            .call(prepare(1, CACHE, xid(1), false, vec![blind("r", "1")]))
            .await),
        0
    );
    assert_eq!(
        xa(&c.call(req(2, CACHE, Op::RollbackTx { xid: xid(1) })).await),
        0
    );
    assert_eq!(value(&mut c, "r").await, None);
    assert_eq!(
        c.call(put(3, CACHE, "r", "free")).await.status,
        Status::SUCCESS
    );
    assert_eq!(
        xa(&c.call(req(4, CACHE, Op::RollbackTx { xid: xid(1) })).await),
        0
    );
    assert_eq!(
        xa(&c.call(req(5, CACHE, Op::CommitTx { xid: xid(1) })).await),
        6
    );
    assert_eq!(
        xa(&c.call(req(6, CACHE, Op::CommitTx { xid: xid(9) })).await),
        -4
    );
    assert_eq!(
        xa(&c.call(req(7, CACHE, Op::RollbackTx { xid: xid(9) })).await),
        -4
    );
    // Empty write sets are read-only.
    assert_eq!(
        xa(&c.call(prepare(8, CACHE, xid(8), false, vec![])).await),
        3
    );
    srv.stop().await;
}

#[tokio::test]
async fn recovery_lists_prepared_transactions_and_forget_drops_finished_ones() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    let recovery = |id| req(id, "", Op::FetchTxRecovery);
    assert_eq!(c.call(recovery(1)).await.body, ResponseBody::Xids(vec![]));
    c.call(prepare(2, CACHE, xid(1), false, vec![blind("a", "1")]))
        .await;
    c.call(prepare(3, "work", xid(2), false, vec![blind("b", "1")]))
        .await;
    let ResponseBody::Xids(mut xids) = c.call(recovery(4)).await.body else {
        panic!()
    };
    xids.sort_by(|a, b| a.global_id.cmp(&b.global_id));
    assert_eq!(xids, [xid(1), xid(2)]);
    // A second prepare of a known transaction is not executed.
    let again = c
        .call(prepare(5, CACHE, xid(1), false, vec![blind("a", "2")]))
        .await;
    assert_eq!(again.status, Status::NOT_EXECUTED);
    assert_eq!(
        xa(&c.call(req(6, CACHE, Op::CommitTx { xid: xid(1) })).await),
        0
    );
    assert_eq!(
        xa(&c.call(req(7, "work", Op::RollbackTx { xid: xid(2) })).await),
        0
    );
    assert_eq!(c.call(recovery(8)).await.body, ResponseBody::Xids(vec![]));
    let r = c.call(req(9, CACHE, Op::ForgetTx { xid: xid(1) })).await;
    assert_eq!((r.status, r.body), (Status::SUCCESS, ResponseBody::Empty));
    assert_eq!(
        xa(&c.call(req(10, CACHE, Op::CommitTx { xid: xid(1) })).await),
        -4
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_closed_connection_rolls_back_what_it_prepared() {
    let srv = start().await;
    let mut a = Client::connect(srv.addr).await;
    assert_eq!(
        xa(&a
            .call(prepare(
                1,
                CACHE,
                xid(1),
                false,
                vec![blind("d", "tx"), blind("e", "tx")]
            ))
            .await),
        0
    );
    let mut c = Client::connect(srv.addr).await;
    assert_eq!(
        c.call(put(2, CACHE, "d", "x")).await.status,
        Status::SERVER_ERROR
    );
    drop(a);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = c.call(put(3, CACHE, "d", "x")).await;
        if r.status == Status::SUCCESS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead connection's locks were never released"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        c.call(put(4, CACHE, "e", "x")).await.status,
        Status::SUCCESS
    );
    assert_eq!(
        xa(&c.call(req(5, CACHE, Op::CommitTx { xid: xid(1) })).await),
        6
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_transaction_past_its_timeout_is_rolled_back() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    let r = c
        .call(prepare_timeout(
            1,
            CACHE,
            xid(1),
            false,
            30,
            vec![blind("t", "tx")],
        ))
        .await;
    assert_eq!(xa(&r), 0);
    tokio::time::sleep(Duration::from_millis(60)).await;
    // The conflict answer rolls the expired transaction back, so the retry passes.
    let first = c.call(put(2, CACHE, "t", "x")).await;
    if first.status != Status::SUCCESS {
        assert!(error_text(&first).contains("ISPN000299"));
        assert_eq!(
            c.call(put(3, CACHE, "t", "x")).await.status,
            Status::SUCCESS
        );
    }
    assert_eq!(
        c.call(req(4, "", Op::FetchTxRecovery)).await.body,
        ResponseBody::Xids(vec![])
    );
    assert_eq!(
        xa(&c.call(req(5, CACHE, Op::CommitTx { xid: xid(1) })).await),
        6
    );
    srv.stop().await;
}

#[tokio::test]
async fn refusals_keep_the_connection_usable() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    // The default cache is not transactional.
    let r = c
        .call(prepare(1, "", xid(1), true, vec![blind("k", "v")]))
        .await;
    assert_eq!(r.status, Status::SERVER_ERROR);
    assert!(error_text(&r).contains("not transactional"), "{r:?}");
    // NOT_READ and NON_EXISTING together are invalid.
    let bad = write(
        "k",
        "v",
        Modification::NOT_READ | Modification::NON_EXISTING,
        None,
    );
    let r = c.call(prepare(2, CACHE, xid(2), true, vec![bad])).await;
    assert_eq!(r.status, Status::SERVER_ERROR);
    // Plain writes on the non-transactional default cache never conflict.
    assert_eq!(c.call(put(3, "", "k", "v")).await.status, Status::SUCCESS);
    // PREPARE_TX (2.7) commits in one phase too.
    let r = c
        .call(req(
            4,
            CACHE,
            Op::PrepareTx {
                xid: xid(4),
                one_phase: true,
                modifications: vec![blind("old", "style")],
            },
        ))
        .await;
    assert_eq!(xa(&r), 0);
    assert_eq!(value(&mut c, "old").await, Some(b("style")));
    srv.stop().await;
}

#[tokio::test]
async fn optimistic_or_read_committed_caches_refuse_remote_transactions() {
    let config = Config::from_toml(
        r#"
[caches.opt]
transaction_mode = "NON_XA"
locking = "OPTIMISTIC"
[caches.rc]
transaction_mode = "FULL_XA"
isolation = "READ_COMMITTED"
"#,
    )
    .unwrap();
    let srv = start_with(config).await;
    let mut c = Client::connect(srv.addr).await;
    for cache in ["opt", "rc"] {
        let r = c
            .call(prepare(1, cache, xid(1), true, vec![blind("k", "v")]))
            .await;
        assert_eq!(r.status, Status::SERVER_ERROR, "{cache}");
        // Plain writes still run as implicit transactions.
        assert_eq!(
            c.call(put(2, cache, "k", "v")).await.status,
            Status::SUCCESS
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_positive_timeout_waits_without_stalling_the_server() {
    let config = Config::from_toml(
        r#"
[caches.waiting]
transaction_mode = "NON_XA"
acquire_timeout_ms = 10000
"#,
    )
    .unwrap();
    let srv = start_with(config).await;
    let mut a = Client::connect(srv.addr).await;
    let r = a
        .call(prepare(1, "waiting", xid(1), false, vec![blind("w", "tx")]))
        .await;
    assert_eq!(xa(&r), 0);
    // Two writers wait for the key (as many as the runtime has workers)...
    let mut writers = Vec::new();
    for i in 0..2 {
        let mut w = Client::connect(srv.addr).await;
        writers.push(tokio::spawn(async move {
            w.call(put(10 + i, "waiting", "w", "writer")).await.status
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...and the holder's commit still gets through.
    let started = Instant::now();
    assert_eq!(
        xa(&a
            .call(req(2, "waiting", Op::CommitTx { xid: xid(1) }))
            .await),
        0
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    for w in writers {
        assert_eq!(w.await.unwrap(), Status::SUCCESS);
    }
    assert_eq!(
        a.call(get(3, "waiting", "w")).await.body,
        ResponseBody::Value(b("writer"))
    );
    srv.stop().await;
}

/// Two clients hammer one key of a zero-timeout cache with two-phase transactions: every
/// attempt is answered (commit, or a rollback code for the loser), nothing hangs, and the
/// counter equals the number of commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_hammering_one_key_get_answers_and_lose_nothing() {
    let srv = start().await;
    let mut setup = Client::connect(srv.addr).await;
    setup.call(put(1, CACHE, "hot", "0")).await;
    let mut tasks = Vec::new();
    for client in 0..2u8 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let (mut committed, mut conflicts) = (0u32, 0u32);
            let mut id = 100;
            for round in 0..300u32 {
                id += 3;
                let r = c
                    .call(req(id, CACHE, Op::GetWithMetadata { key: b("hot") }))
                    .await;
                let ResponseBody::MetadataValue { metadata, value } = r.body else {
                    panic!("{r:?}")
                };
                let n: u64 = std::str::from_utf8(&value).unwrap().parse().unwrap();
                let x = Xid {
                    format_id: 1,
                    global_id: Bytes::from(format!("{client}-{round}")),
                    branch_qualifier: Bytes::new(),
                };
                let m = write("hot", &(n + 1).to_string(), 0, Some(metadata.version));
                let code = xa(&c
                    .call(prepare(id + 1, CACHE, x.clone(), false, vec![m]))
                    .await);
                if code == 0 {
                    assert_eq!(
                        xa(&c.call(req(id + 2, CACHE, Op::CommitTx { xid: x })).await),
                        0
                    );
                    committed += 1;
                } else {
                    assert_eq!(code, 100);
                    conflicts += 1;
                    let r = c.call(req(id + 2, CACHE, Op::RollbackTx { xid: x })).await;
                    assert_eq!(xa(&r), 0);
                }
            }
            (committed, conflicts)
        }));
    }
    let mut total = 0;
    for t in tasks {
        let (committed, _) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("no hang")
            .unwrap();
        total += committed;
    }
    assert_eq!(value(&mut setup, "hot").await, Some(b(&total.to_string())));
    srv.stop().await;
}

#[test]
fn unknown_transaction_settings_are_configuration_errors() {
    for bad in [
        "transaction_mode = \"BATCH\"",
        "locking = \"OPTIMISTICAL\"",
        "isolation = \"SERIALIZABLE\"",
    ] {
        let text = format!("[caches.x]\n{bad}\n");
        assert!(Config::from_toml(&text).is_err(), "{bad}");
    }
    let config = Config::default();
    let caches = config.cache_configs();
    let tx = |name: &str| {
        caches
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.transaction)
            .unwrap()
    };
    assert_eq!(tx("sessions"), ironrod_engine::TxConfig::KEYCLOAK);
    assert_eq!(tx("actionTokens"), ironrod_engine::TxConfig::KEYCLOAK);
    assert!(!tx("default").is_transactional());
    assert!(!tx("___protobuf_metadata").is_transactional());
}

#[tokio::test]
async fn commit_without_a_cache_name_finishes_every_cache_of_the_xid() {
    let srv = start().await;
    let mut c = Client::connect(srv.addr).await;
    for (id, cache) in [(1, "sessions"), (2, "clientSessions")] {
        let r = c
            .call(prepare(
                id,
                cache,
                xid(7),
                false,
                vec![blind("both", cache)],
            ))
            .await;
        assert_eq!(xa(&r), 0);
    }
    // As the Java client sends it: the default (empty) cache name.
    assert_eq!(
        xa(&c.call(req(3, "", Op::CommitTx { xid: xid(7) })).await),
        0
    );
    for cache in ["sessions", "clientSessions"] {
        assert_eq!(
            c.call(get(4, cache, "both")).await.body,
            ResponseBody::Value(b(cache))
        );
    }
    // One part rolled back by its own validation, the other prepared: a commit is mixed.
    assert_eq!(
        xa(&c
            .call(prepare(
                5,
                "sessions",
                xid(8),
                false,
                vec![blind("mix", "1")]
            ))
            .await),
        0
    );
    let stale = write("both", "x", 0, Some(9_999));
    assert_eq!(
        xa(&c
            .call(prepare(6, "clientSessions", xid(8), false, vec![stale]))
            .await),
        100
    );
    assert_eq!(
        xa(&c.call(req(7, "", Op::CommitTx { xid: xid(8) })).await),
        5
    );
    srv.stop().await;
}
