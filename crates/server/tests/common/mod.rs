//! What the byte-level server tests share: an in-process server on loopback and a client that
//! speaks through the codec's client side. Each test binary uses part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod ca;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ironrod_codec::{ClientCodec, Request, Response, ServerMessage};
use ironrod_server::{server, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::codec::{Decoder, Encoder};

/// How long a test waits for an answer or a close unless it asks for longer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A server serving `State` on an ephemeral loopback port until `stop`.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    timeout: Duration,
}

impl TestServer {
    pub async fn start(state: State, timeout: Duration) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let done = tokio::spawn(server::serve(listener, Arc::new(state), async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            stop: Some(tx),
            done,
            timeout,
        }
    }

    /// Shuts the server down and waits, within the timeout, until it has.
    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(self.timeout, self.done)
            .await
            .unwrap()
            .unwrap();
    }
}

/// A client connection speaking through the codec's client side.
pub struct Client {
    pub stream: TcpStream,
    codec: ClientCodec,
    buf: BytesMut,
    timeout: Duration,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, TIMEOUT).await
    }

    pub async fn connect_with(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            codec: ClientCodec::default(),
            buf: BytesMut::new(),
            timeout,
        }
    }

    /// A client over a stream the test connected itself (e.g. with socket options).
    pub fn from_stream(stream: TcpStream) -> Client {
        Client {
            stream,
            codec: ClientCodec::default(),
            buf: BytesMut::new(),
            timeout: TIMEOUT,
        }
    }

    pub fn encode(&mut self, req: &Request) -> BytesMut {
        let mut out = BytesMut::new();
        self.codec.encode(req, &mut out).unwrap();
        out
    }

    /// Writes the requests in one go (pipelined).
    pub async fn send(&mut self, reqs: &[Request]) {
        let mut out = BytesMut::new();
        for r in reqs {
            out.extend_from_slice(&self.encode(r));
        }
        self.stream.write_all(&out).await.unwrap();
    }

    pub async fn recv(&mut self) -> ServerMessage {
        tokio::time::timeout(self.timeout, async {
            loop {
                if let Some(m) = self.codec.decode(&mut self.buf).unwrap() {
                    return m;
                }
                let n = self.stream.read_buf(&mut self.buf).await.unwrap();
                assert!(n > 0, "server closed the connection");
            }
        })
        .await
        .expect("response within the timeout")
    }

    pub async fn recv_response(&mut self) -> Response {
        match self.recv().await {
            ServerMessage::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// Sends one request and waits for its response.
    pub async fn call(&mut self, req: Request) -> Response {
        self.send(&[req]).await;
        self.recv_response().await
    }

    /// Reads until the server closes; returns what was read.
    pub async fn until_closed(&mut self) -> BytesMut {
        tokio::time::timeout(self.timeout, async {
            loop {
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return std::mem::take(&mut self.buf),
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("server closes the connection")
    }
}

/// A state with authentication on: each `(user, password, roles)` in the users file (realm
/// `default`, few PBKDF2 iterations so debug builds stay quick).
pub fn secured_state(config: ironrod_server::Config, users: &[(&str, &str, &[&str])]) -> State {
    let mut store = ironrod_sasl::CredentialStore::new();
    store.set_iterations(4096).unwrap();
    let realms = vec!["default".to_string()];
    for (user, password, roles) in users {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        store.set_user(user, password, &roles, &realms).unwrap();
    }
    State::new(config).unwrap().with_credentials(store).unwrap()
}
