//! SASL authentication over raw sockets: the gate in front of data operations, PLAIN and its
//! `01 00`, the answer to a redundant AUTH, and failures that keep the connection usable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use bytes::Bytes;
use ironrod_codec::{
    Expiration, Op, OpCode, Request, RequestHeader, Response, ResponseBody, Status, Version,
};
use ironrod_sasl::CredentialStore;
use ironrod_server::{Config, State};

mod common;

use common::{Client, TestServer};

/// PBKDF2 in a debug build is slow: SCRAM and PLAIN exchanges get longer than the default.
const TIMEOUT: Duration = Duration::from_secs(10);
const V: Version = Version::V4_0;

/// A server with authentication on: user `alice`, password `secret`, role `admin`; PLAIN
/// allowed in clear (these tests speak plain TCP).
async fn start_secured() -> TestServer {
    let mut config = Config::default();
    config.security.plain_in_clear = true;
    start_with(config).await
}

async fn start_with(config: Config) -> TestServer {
    let mut store = CredentialStore::new();
    store.set_iterations(4096).unwrap();
    let realms = vec!["default".to_string()];
    store
        .set_user("alice", "secret", &["admin".to_string()], &realms)
        .unwrap();
    let state = State::new(config).unwrap().with_credentials(store).unwrap();
    TestServer::start(state, TIMEOUT).await
}

fn request(id: u64, op: Op) -> Request {
    Request {
        header: RequestHeader::new(id, V, ""),
        op,
    }
}

fn put(id: u64, key: &str, value: &str) -> Request {
    request(
        id,
        Op::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            expiration: Expiration::DEFAULT,
            value: Bytes::copy_from_slice(value.as_bytes()),
        },
    )
}

fn get(id: u64, key: &str) -> Request {
    request(
        id,
        Op::Get {
            key: Bytes::copy_from_slice(key.as_bytes()),
        },
    )
}

fn auth(id: u64, mechanism: &str, response: &[u8]) -> Request {
    request(
        id,
        Op::Auth {
            mechanism: mechanism.to_string(),
            response: Bytes::copy_from_slice(response),
        },
    )
}

fn assert_error(r: &Response, text: &str) {
    assert_eq!((r.opcode, r.status), (OpCode::ERROR, Status::SERVER_ERROR));
    assert_eq!(r.body, ResponseBody::Error(text.to_string()));
}

fn assert_auth(r: &Response, completed: bool, challenge: &[u8]) {
    assert_eq!(
        (r.opcode, r.status),
        (OpCode::AUTH_RESPONSE, Status::SUCCESS)
    );
    assert_eq!(
        r.body,
        ResponseBody::Auth {
            completed,
            challenge: Bytes::copy_from_slice(challenge),
        }
    );
}

#[tokio::test]
async fn unauthenticated_operations_are_refused_but_ping_and_mech_list_pass() {
    let srv = start_secured().await;
    let mut c = Client::connect_with(srv.addr, TIMEOUT).await;
    let r = c.call(put(1, "k", "v")).await;
    assert_error(
        &r,
        "java.lang.SecurityException: ISPN006017: Operation 'PUT' requires authentication",
    );
    // The GET fast path is gated too.
    let r = c.call(get(2, "k")).await;
    assert_error(
        &r,
        "java.lang.SecurityException: ISPN006017: Operation 'GET' requires authentication",
    );
    assert_eq!(c.call(request(3, Op::Ping)).await.status, Status::SUCCESS);
    let r = c.call(request(4, Op::AuthMechList)).await;
    let ResponseBody::Names(names) = r.body else {
        panic!("not a mechanism list: {r:?}");
    };
    assert_eq!(names.first().map(String::as_str), Some("SCRAM-SHA-512"));
    assert!(names.iter().any(|n| n == "PLAIN"), "{names:?}");
    assert!(names.iter().any(|n| n == "DIGEST-MD5"), "{names:?}");
    srv.stop().await;
}

#[tokio::test]
async fn plain_succeeds_with_01_00_and_a_redundant_auth_gets_01_00() {
    let srv = start_secured().await;
    let mut c = Client::connect_with(srv.addr, TIMEOUT).await;
    assert_auth(
        &c.call(auth(1, "PLAIN", b"\0alice\0secret")).await,
        true,
        b"",
    );
    assert_auth(
        &c.call(auth(2, "PLAIN", b"\0alice\0secret")).await,
        true,
        b"",
    );
    assert_eq!(c.call(put(3, "k", "v")).await.status, Status::SUCCESS);
    let r = c.call(get(4, "k")).await;
    assert_eq!(r.status, Status::SUCCESS);
    srv.stop().await;
}

#[tokio::test]
async fn wrong_password_is_refused_and_the_connection_stays_usable() {
    let srv = start_secured().await;
    let mut c = Client::connect_with(srv.addr, TIMEOUT).await;
    let r = c.call(auth(1, "PLAIN", b"\0alice\0wrong")).await;
    assert_error(
        &r,
        "java.lang.SecurityException: ISPN006024: Invalid credentials",
    );
    let r = c.call(auth(2, "PLAIN", b"\0mallory\0secret")).await;
    assert_error(
        &r,
        "java.lang.SecurityException: ISPN006024: Invalid credentials",
    );
    // Still gated, still open, and a new exchange succeeds.
    assert_eq!(c.call(put(3, "k", "v")).await.status, Status::SERVER_ERROR);
    assert_auth(
        &c.call(auth(4, "PLAIN", b"\0alice\0secret")).await,
        true,
        b"",
    );
    assert_eq!(c.call(put(5, "k", "v")).await.status, Status::SUCCESS);
    srv.stop().await;
}

#[tokio::test]
async fn unknown_mechanism_is_refused_by_name() {
    let srv = start_secured().await;
    let mut c = Client::connect_with(srv.addr, TIMEOUT).await;
    let r = c.call(auth(1, "GSSAPI", b"")).await;
    assert_error(
        &r,
        "java.lang.IllegalArgumentException: ISPN006025: Invalid mech 'GSSAPI'",
    );
    assert_auth(
        &c.call(auth(2, "PLAIN", b"\0alice\0secret")).await,
        true,
        b"",
    );
    srv.stop().await;
}

#[tokio::test]
async fn scram_continues_with_completed_0_and_a_bad_proof_resets() {
    let srv = start_secured().await;
    let mut c = Client::connect_with(srv.addr, TIMEOUT).await;
    let r = c
        .call(auth(1, "SCRAM-SHA-256", b"n,,n=alice,r=abcdefgh"))
        .await;
    let ResponseBody::Auth {
        completed,
        challenge,
    } = r.body
    else {
        panic!("not an AUTH answer: {r:?}");
    };
    assert!(!completed);
    assert!(challenge.starts_with(b"r=abcdefgh"), "{challenge:?}");
    // A bogus proof fails the exchange; the state resets.
    let nonce = String::from_utf8(challenge.to_vec()).unwrap();
    let nonce = nonce.split(',').next().unwrap();
    let fin = format!("c=biws,{nonce},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let r = c.call(auth(2, "SCRAM-SHA-256", fin.as_bytes())).await;
    assert_error(
        &r,
        "java.lang.SecurityException: ISPN006024: Invalid credentials",
    );
    assert_auth(
        &c.call(auth(3, "PLAIN", b"\0alice\0secret")).await,
        true,
        b"",
    );
    srv.stop().await;
}

#[tokio::test]
async fn without_users_auth_stays_off() {
    let srv = TestServer::start(State::new(Config::default()).unwrap(), TIMEOUT).await;
    let mut c = Client::connect_with(srv.addr, TIMEOUT).await;
    assert_eq!(
        c.call(request(1, Op::AuthMechList)).await.body,
        ResponseBody::Names(Vec::new())
    );
    assert_eq!(c.call(put(2, "k", "v")).await.status, Status::SUCCESS);
    assert_eq!(
        c.call(auth(3, "PLAIN", b"\0a\0b")).await.opcode,
        OpCode::ERROR
    );
    srv.stop().await;
}

#[tokio::test]
async fn plain_is_neither_offered_nor_accepted_in_clear_by_default() {
    let srv = start_with(Config::default()).await;
    let mut c = Client::connect_with(srv.addr, TIMEOUT).await;
    let r = c.call(request(1, Op::AuthMechList)).await;
    let ResponseBody::Names(names) = r.body else {
        panic!("not a mechanism list: {r:?}");
    };
    assert!(!names.iter().any(|n| n == "PLAIN"), "{names:?}");
    assert!(names.iter().any(|n| n == "SCRAM-SHA-512"), "{names:?}");
    let r = c.call(auth(2, "PLAIN", b"\0alice\0secret")).await;
    assert_error(
        &r,
        "java.lang.IllegalArgumentException: ISPN006025: Invalid mech 'PLAIN'",
    );
    srv.stop().await;
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_answered_ever_later() {
    let mut config = Config::default();
    config.security.plain_in_clear = true;
    config.security.failure_delay_ms = 150;
    config.security.failure_delay_max_ms = 10_000;
    let srv = start_with(config).await;
    let mut c = Client::connect_with(srv.addr, TIMEOUT).await;
    let mut took = Vec::new();
    for id in 1..=3 {
        let start = std::time::Instant::now();
        let r = c.call(auth(id, "PLAIN", b"\0alice\0wrong")).await;
        assert_error(
            &r,
            "java.lang.SecurityException: ISPN006024: Invalid credentials",
        );
        took.push(start.elapsed());
    }
    // 150, 300, 600 ms: each answer waits at least its delay.
    assert!(took[0] >= Duration::from_millis(150), "{took:?}");
    assert!(took[2] >= Duration::from_millis(600), "{took:?}");
    srv.stop().await;
}
