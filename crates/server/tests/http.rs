//! HTTP on the Hot Rod port: REST v2 entries and caches, container and health, metrics,
//! Basic and Digest authentication, spoken by a minimal HTTP/1.1 client over a raw socket so
//! that every byte the server sends is checked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use ironrod_codec::{Op, OpCode, Request, RequestHeader, Status, Version};
use ironrod_server::{Config, State};
use md5::{Digest as _, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{Client, TestServer};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "PUT" || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, s.read_to_end(&mut raw))
        .await
        .expect("the server did not finish the response")
        .unwrap();
    parse(&raw, method == "HEAD")
}

fn parse(raw: &[u8], head: bool) -> HttpResponse {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    let head_text = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked && !head {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

async fn open_server() -> TestServer {
    TestServer::start(State::new(Config::default()).unwrap(), TIMEOUT).await
}

async fn secured_server(config: Config) -> TestServer {
    let state = common::secured_state(config, &[("alice", "secret", &["admin"])]);
    TestServer::start(state, TIMEOUT).await
}

#[tokio::test]
async fn entries_round_trip_with_infinispan_statuses() {
    let server = open_server().await;
    let a = server.addr;
    let put = http(
        a,
        "PUT",
        "/rest/v2/caches/default/k1",
        &[("Content-Type", "text/plain")],
        b"v1",
    )
    .await;
    assert_eq!(put.status, 204);
    assert!(put.header("etag").is_some());
    let got = http(a, "GET", "/rest/v2/caches/default/k1", &[], b"").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"v1");
    assert_eq!(
        got.header("content-type"),
        Some("application/x-protostream")
    );
    assert_eq!(got.header("timeToLiveSeconds"), Some("-1"));
    let head = http(a, "HEAD", "/rest/v2/caches/default/k1", &[], b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // POST on an existing key conflicts, on a new one creates.
    let conflict = http(a, "POST", "/rest/v2/caches/default/k1", &[], b"v2").await;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        http(a, "POST", "/rest/v2/caches/default/k2", &[], b"v2")
            .await
            .status,
        204
    );
    // Percent-encoded keys are decoded.
    assert_eq!(
        http(a, "PUT", "/rest/v2/caches/default/a%20b", &[], b"sp")
            .await
            .status,
        204
    );
    assert_eq!(
        http(a, "GET", "/rest/v2/caches/default/a%20b", &[], b"")
            .await
            .body,
        b"sp"
    );
    assert_eq!(
        http(a, "DELETE", "/rest/v2/caches/default/k1", &[], b"")
            .await
            .status,
        204
    );
    assert_eq!(
        http(a, "GET", "/rest/v2/caches/default/k1", &[], b"")
            .await
            .status,
        404
    );
    assert_eq!(
        http(a, "DELETE", "/rest/v2/caches/default/k1", &[], b"")
            .await
            .status,
        404
    );
    assert_eq!(
        http(a, "GET", "/rest/v2/caches/nope/k1", &[], b"")
            .await
            .status,
        404
    );
    server.stop().await;
}

#[tokio::test]
async fn expiration_headers_are_honoured() {
    let server = open_server().await;
    let a = server.addr;
    let put = http(
        a,
        "PUT",
        "/rest/v2/caches/default/ttl",
        &[("timeToLiveSeconds", "60"), ("maxIdleTimeSeconds", "30")],
        b"x",
    )
    .await;
    assert_eq!(put.status, 204);
    let got = http(a, "GET", "/rest/v2/caches/default/ttl", &[], b"").await;
    assert_eq!(got.header("timeToLiveSeconds"), Some("60"));
    assert_eq!(got.header("maxIdleTimeSeconds"), Some("30"));
    assert!(got.header("expires").unwrap().ends_with("GMT"));
    let bad = http(
        a,
        "PUT",
        "/rest/v2/caches/default/ttl",
        &[("timeToLiveSeconds", "soon")],
        b"x",
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("timeToLiveSeconds"), "{}", bad.text());
    server.stop().await;
}

#[tokio::test]
async fn hot_rod_and_http_share_the_port_and_the_data() {
    let server = open_server().await;
    let a = server.addr;
    assert_eq!(
        http(
            a,
            "PUT",
            "/rest/v2/caches/default/shared",
            &[],
            b"from-rest"
        )
        .await
        .status,
        204
    );
    let mut hr = Client::connect(a).await;
    let resp = hr
        .call(Request {
            header: RequestHeader::new(1, Version::V4_0, "default"),
            op: Op::Get {
                key: Bytes::from_static(b"shared"),
            },
        })
        .await;
    assert_eq!(resp.status, Status::SUCCESS);
    assert_eq!(resp.opcode, OpCode::GET.response());
    let size = http(a, "GET", "/rest/v2/caches/default?action=size", &[], b"").await;
    assert_eq!(size.json(), serde_json::json!(1));
    server.stop().await;
}

#[tokio::test]
async fn cache_actions_list_config_stats_clear_create_delete() {
    let server = open_server().await;
    let a = server.addr;
    let names = http(a, "GET", "/rest/v2/caches", &[], b"").await.json();
    for n in ["work", "sessions", "actionTokens", "___protobuf_metadata"] {
        assert!(
            names.as_array().unwrap().iter().any(|v| v == n),
            "{n} missing: {names}"
        );
    }
    let config = http(a, "GET", "/rest/v2/caches/sessions?action=config", &[], b"")
        .await
        .json();
    assert_eq!(
        config["local-cache"]["encoding"]["media-type"],
        "application/x-protostream"
    );
    http(a, "PUT", "/rest/v2/caches/work/a", &[], b"1").await;
    http(a, "GET", "/rest/v2/caches/work/a", &[], b"").await;
    http(a, "GET", "/rest/v2/caches/work/missing", &[], b"").await;
    let stats = http(a, "GET", "/rest/v2/caches/work?action=stats", &[], b"")
        .await
        .json();
    assert_eq!(stats["current_number_of_entries"], 1);
    assert_eq!(stats["hits"], 1);
    assert_eq!(stats["misses"], 1);
    assert_eq!(stats["stores"], 1);
    assert_eq!(
        http(a, "POST", "/rest/v2/caches/work?action=clear", &[], b"")
            .await
            .status,
        204
    );
    assert_eq!(
        http(a, "GET", "/rest/v2/caches/work?action=size", &[], b"")
            .await
            .json(),
        0
    );
    // Create with an Infinispan JSON configuration, then remove.
    let body = br#"{"distributed-cache":{"mode":"SYNC","encoding":{"media-type":"text/plain"}}}"#;
    assert_eq!(
        http(a, "POST", "/rest/v2/caches/made", &[], body)
            .await
            .status,
        200
    );
    let config = http(a, "GET", "/rest/v2/caches/made?action=config", &[], b"")
        .await
        .json();
    assert_eq!(
        config["local-cache"]["encoding"]["media-type"],
        "text/plain"
    );
    assert_eq!(
        http(a, "POST", "/rest/v2/caches/made", &[], b"")
            .await
            .status,
        409
    );
    assert_eq!(
        http(a, "DELETE", "/rest/v2/caches/made", &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(
        http(a, "GET", "/rest/v2/caches/made?action=size", &[], b"")
            .await
            .status,
        404
    );
    let bad = http(a, "GET", "/rest/v2/caches/work?action=explode", &[], b"").await;
    assert_eq!(bad.status, 400);
    server.stop().await;
}

#[tokio::test]
async fn container_and_health_use_infinispan_field_names() {
    let server = open_server().await;
    let a = server.addr;
    let info = http(a, "GET", "/rest/v2/container", &[], b"").await.json();
    assert!(info["local_site"].is_null());
    assert_eq!(info["sites_view"], serde_json::json!([]));
    assert_eq!(info["cluster_size"], 1);
    assert_eq!(info["cache_manager_status"], "RUNNING");
    for path in [
        "/rest/v2/container/health",
        "/rest/v2/cache-managers/default/health",
    ] {
        let h = http(a, "GET", path, &[], b"").await.json();
        assert_eq!(h["cluster_health"]["health_status"], "HEALTHY", "{path}");
        assert_eq!(h["cluster_health"]["number_of_nodes"], 1);
        let caches = h["cache_health"].as_array().unwrap();
        assert!(caches
            .iter()
            .any(|c| c["cache_name"] == "sessions" && c["status"] == "HEALTHY"));
    }
    for path in [
        "/rest/v2/container/health/status",
        "/rest/v2/cache-managers/default/health/status",
    ] {
        let s = http(a, "GET", path, &[], b"").await;
        assert_eq!(s.status, 200);
        assert_eq!(s.text(), "HEALTHY");
    }
    assert_eq!(http(a, "GET", "/nowhere", &[], b"").await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_that_parses() {
    let server = open_server().await;
    let a = server.addr;
    http(a, "PUT", "/rest/v2/caches/sessions/x", &[], b"1").await;
    http(a, "GET", "/rest/v2/caches/sessions/x", &[], b"").await;
    let m = http(a, "GET", "/metrics", &[], b"").await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let mut samples: HashMap<String, f64> = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in m.text().lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        assert!(typed.contains(name), "sample before its TYPE: {line}");
        samples.insert(
            series.to_string(),
            value.parse().unwrap_or_else(|_| panic!("{line}")),
        );
    }
    let key = r#"infinispan_statistics_hits{cache_manager="default",cache="sessions"}"#;
    assert_eq!(samples.get(key), Some(&1.0), "{}", m.text());
    let key =
        r#"infinispan_statistics_approximate_entries{cache_manager="default",cache="sessions"}"#;
    assert_eq!(samples.get(key), Some(&1.0));
    assert!(samples.get("process_resident_memory_bytes").unwrap() > &0.0);
    server.stop().await;
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The Digest answer to `challenge` the way RFC 7616 clients compute it.
fn digest(challenge: &str, user: &str, password: &str, method: &str, uri: &str, nc: u32) -> String {
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let ha1 = hex(&Md5::digest(
        format!("{user}:default:{password}").as_bytes(),
    ));
    let ha2 = hex(&Md5::digest(format!("{method}:{uri}").as_bytes()));
    let nc = format!("{nc:08x}");
    let response = hex(&Md5::digest(
        format!("{ha1}:{nonce}:{nc}:0a4f113b:auth:{ha2}").as_bytes(),
    ));
    format!(
        "Digest username=\"{user}\", realm=\"default\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"0a4f113b\", response=\"{response}\", opaque=\"00\""
    )
}

#[tokio::test]
async fn basic_is_refused_in_clear_unless_plain_in_clear() {
    let server = secured_server(Config::default()).await;
    let a = server.addr;
    let denied = http(a, "GET", "/rest/v2/caches", &[], b"").await;
    let challenges = denied.headers_named("www-authenticate");
    assert_eq!(challenges.len(), 1, "only Digest in clear: {challenges:?}");
    assert!(challenges[0].starts_with("Digest "));
    let basic_in_clear = http(
        a,
        "GET",
        "/rest/v2/caches",
        &[("Authorization", &basic("alice", "secret"))],
        b"",
    )
    .await;
    assert_eq!(basic_in_clear.status, 401);
    server.stop().await;
}

fn plain_in_clear() -> Config {
    let mut c = Config::default();
    c.security.plain_in_clear = true;
    c
}

#[tokio::test]
async fn secured_server_challenges_then_accepts_basic_and_digest() {
    let server = secured_server(plain_in_clear()).await;
    let a = server.addr;
    let denied = http(a, "GET", "/rest/v2/caches", &[], b"").await;
    assert_eq!(denied.status, 401);
    let challenges = denied.headers_named("www-authenticate");
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(
        challenges[0].starts_with("Digest "),
        "Digest must come first: {challenges:?}"
    );
    assert!(challenges[0].contains("realm=\"default\"") && challenges[0].contains("qop=\"auth\""));
    assert!(challenges[1].starts_with("Basic "));

    let ok = http(
        a,
        "GET",
        "/rest/v2/caches",
        &[("Authorization", &basic("alice", "secret"))],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200);
    let wrong = http(
        a,
        "GET",
        "/rest/v2/caches",
        &[("Authorization", &basic("alice", "nope"))],
        b"",
    )
    .await;
    assert_eq!(wrong.status, 401);

    let target = "/rest/v2/caches/default?action=size";
    let answer = digest(challenges[0], "alice", "secret", "GET", target, 1);
    let ok = http(a, "GET", target, &[("Authorization", &answer)], b"").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    // The same nonce count again is a replay.
    assert_eq!(
        http(a, "GET", target, &[("Authorization", &answer)], b"")
            .await
            .status,
        401
    );
    let next = digest(challenges[0], "alice", "secret", "GET", target, 2);
    assert_eq!(
        http(a, "GET", target, &[("Authorization", &next)], b"")
            .await
            .status,
        200
    );
    let wrong = digest(challenges[0], "alice", "bad", "GET", target, 3);
    assert_eq!(
        http(a, "GET", target, &[("Authorization", &wrong)], b"")
            .await
            .status,
        401
    );
    server.stop().await;
}

#[tokio::test]
async fn probes_are_open_as_configured() {
    let server = secured_server(Config::default()).await;
    let a = server.addr;
    assert_eq!(
        http(a, "GET", "/rest/v2/container/health/status", &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(
        http(
            a,
            "GET",
            "/rest/v2/cache-managers/default/health/status",
            &[],
            b""
        )
        .await
        .status,
        200
    );
    assert_eq!(
        http(a, "GET", "/rest/v2/container/health", &[], b"")
            .await
            .status,
        401
    );
    assert_eq!(http(a, "GET", "/metrics", &[], b"").await.status, 401);
    server.stop().await;

    let mut config = Config::default();
    config.http.anonymous_health = true;
    config.http.anonymous_metrics = true;
    let server = secured_server(config).await;
    let a = server.addr;
    assert_eq!(
        http(a, "GET", "/rest/v2/container/health", &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(http(a, "GET", "/metrics", &[], b"").await.status, 200);
    assert_eq!(
        http(a, "GET", "/rest/v2/caches", &[], b"").await.status,
        401
    );
    server.stop().await;
}

#[tokio::test]
async fn bodies_above_the_value_limit_are_refused() {
    let mut config = Config::default();
    config.limits.max_value_len = 16;
    let server = TestServer::start(State::new(config).unwrap(), TIMEOUT).await;
    let r = http(
        server.addr,
        "PUT",
        "/rest/v2/caches/default/big",
        &[],
        &[b'x'; 64],
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        http(server.addr, "GET", "/rest/v2/caches/default/big", &[], b"")
            .await
            .status,
        404
    );
    server.stop().await;
}

#[tokio::test]
async fn roles_restrict_http_as_they_restrict_hot_rod() {
    let state = common::secured_state(plain_in_clear(), &[("olga", "pw", &["observer"])]);
    let server = TestServer::start(state, TIMEOUT).await;
    let a = server.addr;
    let olga = basic("olga", "pw");
    let auth = [("Authorization", olga.as_str())];
    let put = http(a, "PUT", "/rest/v2/caches/default/k", &auth, b"v").await;
    assert_eq!(put.status, 403);
    assert!(
        put.text().contains("ISPN000287") && put.text().contains("'WRITE'"),
        "{}",
        put.text()
    );
    assert_eq!(
        http(a, "GET", "/rest/v2/caches/default/k", &auth, b"")
            .await
            .status,
        404
    );
    assert_eq!(
        http(a, "GET", "/rest/v2/caches/default?action=stats", &auth, b"")
            .await
            .status,
        200
    );
    assert_eq!(
        http(
            a,
            "POST",
            "/rest/v2/caches/default?action=clear",
            &auth,
            b""
        )
        .await
        .status,
        403
    );
    assert_eq!(
        http(a, "POST", "/rest/v2/caches/newone", &auth, b"")
            .await
            .status,
        403
    );
    server.stop().await;
}
