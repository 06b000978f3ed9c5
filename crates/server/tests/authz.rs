//! Authorization over raw sockets: the built-in roles grant what Infinispan's grant, per-cache
//! role lists restrict further, and a refusal carries the reference's ISPN000287 text.
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
use ironrod_server::config::CacheSettings;
use ironrod_server::{Config, State};

mod common;

use common::{Client, TestServer};

const TIMEOUT: Duration = Duration::from_secs(10);
const V: Version = Version::V4_0;

/// Users named for their role (password `pw`), plus `nobody` without roles and `admin`,
/// whose name alone makes it an admin. Cache `secret` admits only the `admin` role.
async fn start(config_edit: impl FnOnce(&mut Config)) -> TestServer {
    let mut store = CredentialStore::new();
    store.set_iterations(4096).unwrap();
    let realms = vec!["default".to_string()];
    for (user, roles) in [
        ("reader", vec!["observer"]),
        ("app", vec!["application"]),
        ("dep", vec!["deployer"]),
        ("mon", vec!["monitor"]),
        ("nobody", vec![]),
        ("admin", vec![]),
    ] {
        let roles: Vec<String> = roles.into_iter().map(String::from).collect();
        store.set_user(user, "pw", &roles, &realms).unwrap();
    }
    let mut config = Config::default();
    config.security.plain_in_clear = true;
    config.security.failure_delay_ms = 0;
    config.caches.insert(
        "secret".into(),
        CacheSettings {
            roles: Some(vec!["admin".into()]),
            ..CacheSettings::default()
        },
    );
    config_edit(&mut config);
    config.validate().unwrap();
    let state = State::new(config).unwrap().with_credentials(store).unwrap();
    TestServer::start(state, TIMEOUT).await
}

fn request(id: u64, cache: &str, op: Op) -> Request {
    Request {
        header: RequestHeader::new(id, V, cache),
        op,
    }
}

fn put(key: &str) -> Op {
    Op::Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        expiration: Expiration::DEFAULT,
        value: Bytes::from_static(b"v"),
    }
}

fn get(key: &str) -> Op {
    Op::Get {
        key: Bytes::copy_from_slice(key.as_bytes()),
    }
}

async fn login(srv: &TestServer, user: &str) -> Client {
    let mut c = Client::connect_with(srv.addr, TIMEOUT).await;
    let msg = format!("\0{user}\0pw");
    let r = c
        .call(request(
            1,
            "",
            Op::Auth {
                mechanism: "PLAIN".into(),
                response: Bytes::from(msg),
            },
        ))
        .await;
    assert_eq!(r.status, Status::SUCCESS, "{user} logs in: {r:?}");
    c
}

fn refused(r: &Response, user: &str, role: Option<&str>, permission: &str) {
    assert_eq!(
        (r.opcode, r.status),
        (OpCode::ERROR, Status::SERVER_ERROR),
        "{r:?}"
    );
    let roles = role
        .map(|r| format!(", RolePrincipal{{name='{r}'}}"))
        .unwrap_or_default();
    let text = format!(
        "java.lang.SecurityException: ISPN000287: Unauthorized access: subject 'Subject with principal(s): [{user}{roles}, InetAddressPrincipal [address=127.0.0.1/127.0.0.1]]' lacks '{permission}' permission"
    );
    assert_eq!(r.body, ResponseBody::Error(text));
}

fn ok(r: &Response) {
    assert!(
        r.status == Status::SUCCESS || r.status == Status::KEY_DOES_NOT_EXIST,
        "{r:?}"
    );
}

#[tokio::test]
async fn observer_reads_but_may_not_write() {
    let srv = start(|_| {}).await;
    let mut c = login(&srv, "reader").await;
    ok(&c.call(request(2, "", get("k"))).await);
    ok(&c.call(request(3, "", Op::Size)).await);
    refused(
        &c.call(request(4, "", put("k"))).await,
        "reader",
        Some("observer"),
        "WRITE",
    );
    refused(
        &c.call(request(5, "", Op::Clear)).await,
        "reader",
        Some("observer"),
        "BULK_WRITE",
    );
    // The connection stays usable after a refusal.
    ok(&c.call(request(6, "", get("k"))).await);
    srv.stop().await;
}

#[tokio::test]
async fn application_reads_and_writes_but_may_not_create_caches() {
    let srv = start(|_| {}).await;
    let mut c = login(&srv, "app").await;
    ok(&c.call(request(2, "", put("k"))).await);
    let r = c.call(request(3, "", get("k"))).await;
    assert_eq!(r.status, Status::SUCCESS);
    ok(&c.call(request(4, "", Op::Clear)).await);
    let create = |id| {
        request(
            id,
            "",
            Op::Exec {
                task: "@@cache@getorcreate".into(),
                params: vec![("name".into(), Bytes::from_static(b"made"))],
            },
        )
    };
    refused(
        &c.call(create(5)).await,
        "app",
        Some("application"),
        "CREATE",
    );
    let mut d = login(&srv, "dep").await;
    ok(&d.call(create(6)).await);
    srv.stop().await;
}

#[tokio::test]
async fn monitor_sees_stats_only_and_a_user_without_roles_nothing() {
    let srv = start(|_| {}).await;
    let mut m = login(&srv, "mon").await;
    ok(&m.call(request(2, "", Op::Stats)).await);
    refused(
        &m.call(request(3, "", get("k"))).await,
        "mon",
        Some("monitor"),
        "READ",
    );
    let mut n = login(&srv, "nobody").await;
    refused(
        &n.call(request(2, "", get("k"))).await,
        "nobody",
        None,
        "READ",
    );
    // PING needs no permission.
    ok(&n.call(request(3, "", Op::Ping)).await);
    srv.stop().await;
}

#[tokio::test]
async fn a_cache_admits_only_its_roles() {
    let srv = start(|_| {}).await;
    let mut c = login(&srv, "app").await;
    refused(
        &c.call(request(2, "secret", get("k"))).await,
        "app",
        Some("application"),
        "READ",
    );
    // The user named admin holds the admin role by name, as with the reference's mapper.
    let mut a = login(&srv, "admin").await;
    ok(&a.call(request(2, "secret", put("k"))).await);
    ok(&a.call(request(3, "secret", get("k"))).await);
    srv.stop().await;
}

#[tokio::test]
async fn custom_roles_and_turning_authorization_off() {
    let srv = start(|c| {
        c.authorization
            .roles
            .insert("observer".into(), vec!["ALL_READ".into(), "WRITE".into()]);
    })
    .await;
    let mut c = login(&srv, "reader").await;
    ok(&c.call(request(2, "", put("k"))).await);
    srv.stop().await;

    let srv = start(|c| c.authorization.enabled = Some(false)).await;
    let mut c = login(&srv, "nobody").await;
    ok(&c.call(request(2, "secret", put("k"))).await);
    srv.stop().await;
}
