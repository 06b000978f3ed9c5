//! TLS on the Hot Rod port: required and optional modes told apart by the first byte, SNI,
//! client certificates with SASL EXTERNAL, PLAIN only inside TLS, and reloading certificates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ironrod_codec::{
    ClientCodec, Expiration, Op, OpCode, Request, RequestHeader, Response, ResponseBody,
    ServerMessage, Status, Version,
};
use ironrod_sasl::CredentialStore;
use ironrod_server::tls::{common_name, CertificatePair, ClientAuth, Tls, TlsConfig, TlsMode};
use ironrod_server::{Config, State};
use rcgen::SanType;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::{Decoder, Encoder};

mod common;

use common::TestServer;

const TIMEOUT: Duration = Duration::from_secs(10);
const V: Version = Version::V4_0;

// ------------------------------------------------------------------ certificates

/// The shared test CA, with what these tests need on top.
struct Ca(common::ca::TestCa);

impl Ca {
    fn new(name: &str) -> Ca {
        Ca(common::ca::TestCa::new(name))
    }

    /// Writes `<name>.pem` and `<name>-key.pem` for subject CN `cn` with DNS SAN `dns`.
    fn leaf(&self, dir: &Path, name: &str, cn: &str, dns: Option<&str>) -> CertificatePair {
        let sans = dns
            .map(|d| vec![SanType::DnsName(d.try_into().unwrap())])
            .unwrap_or_default();
        let (certificate, key) = self.0.leaf(dir, name, cn, sans);
        CertificatePair { certificate, key }
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        self.0.write(dir, name)
    }

    fn root(&self) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(self.0.pem.as_bytes()).unwrap()
    }
}

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ironrod-tls-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ------------------------------------------------------------------ server and client

/// Users: `alice`/`secret` (admin) and `certuser` (observer), for EXTERNAL.
async fn start(tls: TlsConfig) -> (TestServer, Arc<Tls>) {
    let mut store = CredentialStore::new();
    store.set_iterations(4096).unwrap();
    let realms = vec!["default".to_string()];
    store
        .set_user("alice", "secret", &["admin".into()], &realms)
        .unwrap();
    store
        .set_user("certuser", "unused", &["observer".into()], &realms)
        .unwrap();
    let mut config = Config {
        tls,
        ..Config::default()
    };
    config.security.failure_delay_ms = 0;
    config.validate().unwrap();
    let loaded = Arc::new(Tls::load(&config.tls).unwrap());
    let mut state = State::new(config).unwrap().with_credentials(store).unwrap();
    state.tls = Some(loaded.clone());
    (TestServer::start(state, TIMEOUT).await, loaded)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(
    roots: &[CertificateDer<'static>],
    client_cert: Option<&CertificatePair>,
) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store);
    match client_cert {
        Some(pair) => {
            let chain = CertificateDer::pem_file_iter(&pair.certificate)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&pair.key).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    }
}

/// A Hot Rod client over any stream.
struct Conn<S> {
    stream: S,
    codec: ClientCodec,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(stream: S) -> Self {
        Conn {
            stream,
            codec: ClientCodec::default(),
            buf: BytesMut::new(),
        }
    }

    async fn call(&mut self, op: Op) -> Response {
        let req = Request {
            header: RequestHeader::new(1, V, ""),
            op,
        };
        let mut out = BytesMut::new();
        self.codec.encode(&req, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
        self.stream.flush().await.unwrap();
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(m) = self.codec.decode(&mut self.buf).unwrap() {
                    match m {
                        ServerMessage::Response(r) => return r,
                        other => panic!("expected a response, got {other:?}"),
                    }
                }
                let n = self.stream.read_buf(&mut self.buf).await.unwrap();
                assert!(n > 0, "server closed the connection");
            }
        })
        .await
        .expect("answer within the timeout")
    }

    async fn mechanisms(&mut self) -> Vec<String> {
        match self.call(Op::AuthMechList).await.body {
            ResponseBody::Names(n) => n,
            other => panic!("not a mechanism list: {other:?}"),
        }
    }
}

type TlsConn = Conn<tokio_rustls::client::TlsStream<TcpStream>>;

async fn connect_tls(
    srv: &TestServer,
    config: rustls::ClientConfig,
    sni: &str,
) -> std::io::Result<TlsConn> {
    let tcp = TcpStream::connect(srv.addr).await?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(Conn::new(tls))
}

fn served_cn(c: &TlsConn) -> String {
    let (_, conn) = c.stream.get_ref();
    let leaf = conn.peer_certificates().unwrap().first().unwrap();
    common_name(leaf.as_ref()).unwrap()
}

fn put(key: &str) -> Op {
    Op::Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        expiration: Expiration::DEFAULT,
        value: Bytes::from_static(b"v"),
    }
}

fn plain(user: &str, password: &str) -> Op {
    Op::Auth {
        mechanism: "PLAIN".into(),
        response: Bytes::from(format!("\0{user}\0{password}")),
    }
}

fn tls_config(dir: &Path, ca: &Ca, mode: TlsMode) -> TlsConfig {
    let pair = ca.leaf(dir, "server", "localhost", Some("localhost"));
    TlsConfig {
        certificate: Some(pair.certificate),
        key: Some(pair.key),
        mode,
        ..TlsConfig::default()
    }
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn required_mode_serves_tls_and_closes_cleartext() {
    let dir = temp_dir();
    let ca = Ca::new("test CA");
    let (srv, _) = start(tls_config(&dir, &ca, TlsMode::Required)).await;

    let mut c = connect_tls(&srv, client_config(&[ca.root()], None), "localhost")
        .await
        .unwrap();
    assert_eq!(served_cn(&c), "localhost");
    let names = c.mechanisms().await;
    assert!(
        names.iter().any(|n| n == "PLAIN"),
        "PLAIN inside TLS: {names:?}"
    );
    assert!(!names.iter().any(|n| n == "EXTERNAL"), "{names:?}");
    let r = c.call(plain("alice", "secret")).await;
    assert_eq!(
        r.body,
        ResponseBody::Auth {
            completed: true,
            challenge: Bytes::new()
        }
    );
    assert_eq!(c.call(put("k")).await.status, Status::SUCCESS);

    // Cleartext Hot Rod is closed without an answer.
    let mut clear = common::Client::connect_with(srv.addr, TIMEOUT).await;
    clear
        .send(&[Request {
            header: RequestHeader::new(1, V, ""),
            op: Op::Ping,
        }])
        .await;
    assert!(clear.until_closed().await.is_empty());
    srv.stop().await;
}

#[tokio::test]
async fn optional_mode_serves_both_and_keeps_plain_inside_tls() {
    let dir = temp_dir();
    let ca = Ca::new("test CA");
    let (srv, _) = start(tls_config(&dir, &ca, TlsMode::Optional)).await;

    let mut clear = common::Client::connect_with(srv.addr, TIMEOUT).await;
    let r = clear
        .call(Request {
            header: RequestHeader::new(1, V, ""),
            op: Op::AuthMechList,
        })
        .await;
    let ResponseBody::Names(names) = r.body else {
        panic!("{r:?}")
    };
    assert!(
        !names.iter().any(|n| n == "PLAIN"),
        "no PLAIN in clear: {names:?}"
    );
    assert!(names.iter().any(|n| n == "SCRAM-SHA-512"), "{names:?}");

    let mut c = connect_tls(&srv, client_config(&[ca.root()], None), "localhost")
        .await
        .unwrap();
    assert_eq!(
        c.call(plain("alice", "secret")).await.status,
        Status::SUCCESS
    );
    assert_eq!(c.call(put("k")).await.status, Status::SUCCESS);
    srv.stop().await;
}

#[tokio::test]
async fn sni_chooses_the_certificate() {
    let dir = temp_dir();
    let ca = Ca::new("test CA");
    let mut config = tls_config(&dir, &ca, TlsMode::Required);
    let other = ca.leaf(&dir, "other", "other.test", Some("other.test"));
    config.sni.insert("Other.Test".into(), other);
    let (srv, _) = start(config).await;
    let roots = [ca.root()];
    let c = connect_tls(&srv, client_config(&roots, None), "other.test")
        .await
        .unwrap();
    assert_eq!(served_cn(&c), "other.test");
    let c = connect_tls(&srv, client_config(&roots, None), "localhost")
        .await
        .unwrap();
    assert_eq!(served_cn(&c), "localhost");
    // A name with no certificate of its own gets the default, which the client rejects.
    assert!(
        connect_tls(&srv, client_config(&roots, None), "nosuch.test")
            .await
            .is_err()
    );
    srv.stop().await;
}

#[tokio::test]
async fn client_certificates_authenticate_through_external() {
    let dir = temp_dir();
    let ca = Ca::new("test CA");
    let client_ca = Ca::new("client CA");
    let mut config = tls_config(&dir, &ca, TlsMode::Required);
    config.client_ca = Some(client_ca.write(&dir, "client-ca"));
    config.client_auth = ClientAuth::Need;
    let (srv, _) = start(config).await;
    let cert = client_ca.leaf(&dir, "client", "certuser", None);
    let roots = [ca.root()];

    let mut c = connect_tls(&srv, client_config(&roots, Some(&cert)), "localhost")
        .await
        .unwrap();
    let names = c.mechanisms().await;
    assert_eq!(
        names.first().map(String::as_str),
        Some("EXTERNAL"),
        "{names:?}"
    );
    let r = c
        .call(Op::Auth {
            mechanism: "EXTERNAL".into(),
            response: Bytes::new(),
        })
        .await;
    assert_eq!(
        r.body,
        ResponseBody::Auth {
            completed: true,
            challenge: Bytes::new()
        }
    );
    // certuser is an observer: reads pass, writes are refused.
    let r = c
        .call(Op::Get {
            key: Bytes::from_static(b"k"),
        })
        .await;
    assert_eq!(r.status, Status::KEY_DOES_NOT_EXIST);
    let r = c.call(put("k")).await;
    assert_eq!(r.opcode, OpCode::ERROR);
    let ResponseBody::Error(text) = r.body else {
        panic!()
    };
    assert!(
        text.contains("ISPN000287") && text.contains("'WRITE'"),
        "{text}"
    );

    // `need`: no certificate, no connection. With TLS 1.3 the refusal may only show on the
    // first read, so try a request too.
    let refused = match connect_tls(&srv, client_config(&roots, None), "localhost").await {
        Err(_) => true,
        Ok(mut c) => {
            let mut out = BytesMut::new();
            ClientCodec::default()
                .encode(
                    &Request {
                        header: RequestHeader::new(1, V, ""),
                        op: Op::Ping,
                    },
                    &mut out,
                )
                .unwrap();
            let _ = c.stream.write_all(&out).await;
            let mut buf = [0u8; 64];
            !matches!(c.stream.read(&mut buf).await, Ok(n) if n > 0)
        }
    };
    assert!(refused, "a client without a certificate got through");
    srv.stop().await;
}

#[tokio::test]
async fn reload_serves_new_certificates_and_keeps_the_old_on_a_bad_file() {
    let dir = temp_dir();
    let first = Ca::new("first CA");
    let config = tls_config(&dir, &first, TlsMode::Required);
    let (srv, tls) = start(config).await;
    connect_tls(&srv, client_config(&[first.root()], None), "localhost")
        .await
        .unwrap();

    // Same paths, new certificate from another CA.
    let second = Ca::new("second CA");
    second.leaf(&dir, "server", "localhost", Some("localhost"));
    tls.reload().unwrap();
    assert!(
        connect_tls(&srv, client_config(&[first.root()], None), "localhost")
            .await
            .is_err(),
        "the old certificate is still served"
    );
    connect_tls(&srv, client_config(&[second.root()], None), "localhost")
        .await
        .unwrap();

    // A broken file: the reload fails and the second certificate stays.
    std::fs::write(dir.join("server-key.pem"), "not a key").unwrap();
    assert!(tls.reload().is_err());
    connect_tls(&srv, client_config(&[second.root()], None), "localhost")
        .await
        .unwrap();
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn want_accepts_clients_without_a_certificate_and_offers_them_no_external() {
    let dir = temp_dir();
    let ca = Ca::new("test CA");
    let client_ca = Ca::new("client CA");
    let mut config = tls_config(&dir, &ca, TlsMode::Required);
    config.client_ca = Some(client_ca.write(&dir, "client-ca"));
    config.client_auth = ClientAuth::Want;
    let (srv, _) = start(config).await;
    let mut c = connect_tls(&srv, client_config(&[ca.root()], None), "localhost")
        .await
        .unwrap();
    let names = c.mechanisms().await;
    assert!(!names.iter().any(|n| n == "EXTERNAL"), "{names:?}");
    let r = c
        .call(Op::Auth {
            mechanism: "EXTERNAL".into(),
            response: Bytes::new(),
        })
        .await;
    assert_eq!(
        r.body,
        ResponseBody::Error(
            "java.lang.IllegalArgumentException: ISPN006025: Invalid mech 'EXTERNAL'".into()
        )
    );
    assert_eq!(
        c.call(plain("alice", "secret")).await.status,
        Status::SUCCESS
    );
    // A certificate from another CA is not trusted, so it does not authenticate anyone.
    let stranger = ca.leaf(&dir, "stranger", "alice", None);
    let refused = match connect_tls(
        &srv,
        client_config(&[ca.root()], Some(&stranger)),
        "localhost",
    )
    .await
    {
        Err(_) => true,
        Ok(mut c) => {
            let mut out = BytesMut::new();
            ClientCodec::default()
                .encode(
                    &Request {
                        header: RequestHeader::new(1, V, ""),
                        op: Op::AuthMechList,
                    },
                    &mut out,
                )
                .unwrap();
            let _ = c.stream.write_all(&out).await;
            let mut buf = [0u8; 64];
            !matches!(c.stream.read(&mut buf).await, Ok(n) if n > 0)
        }
    };
    assert!(refused, "a certificate from an untrusted CA was accepted");
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// HTTP shares the port inside TLS too: with ALPN `h2` the server agrees to HTTP/2, with no
/// ALPN (as Hot Rod clients connect) HTTP/1.1 is told apart by its first decrypted byte.
#[tokio::test]
async fn http_over_tls_by_alpn_or_first_byte() {
    let dir = temp_dir();
    let ca = Ca::new("test CA");
    let (srv, _) = start(tls_config(&dir, &ca, TlsMode::Required)).await;

    let mut h2 = client_config(&[ca.root()], None);
    h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let c = connect_tls(&srv, h2, "localhost").await.unwrap();
    let (_, conn) = c.stream.get_ref();
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));

    let mut c = connect_tls(&srv, client_config(&[ca.root()], None), "localhost")
        .await
        .unwrap();
    c.stream
        .write_all(
            b"GET /rest/v2/container/health/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, c.stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("HEALTHY"), "{text}");
    srv.stop().await;
}

/// The real binary re-reads its certificates when it gets SIGHUP.
#[tokio::test]
async fn the_binary_reloads_certificates_on_sighup() {
    let dir = temp_dir();
    let first = Ca::new("first CA");
    let pair = first.leaf(&dir, "server", "localhost", Some("localhost"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("ironrod.toml");
    std::fs::write(
        &config,
        format!(
            "bind = \"127.0.0.1:{port}\"\n[tls]\ncertificate = \"{}\"\nkey = \"{}\"\n",
            pair.certificate.display(),
            pair.key.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ironrod"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let connect = |roots: Vec<CertificateDer<'static>>| async move {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost".to_string()).unwrap();
        TlsConnector::from(Arc::new(client_config(&roots, None)))
            .connect(name, tcp)
            .await
            .map(|_| ())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while connect(vec![first.root()]).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = Ca::new("second CA");
    second.leaf(&dir, "server", "localhost", Some("localhost"));
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while connect(vec![second.root()]).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        connect(vec![first.root()]).await.is_err(),
        "the old certificate is still served"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
