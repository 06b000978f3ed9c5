//! An in-process Ironrod on a loopback port, and client constructors for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hotrod_protocol::{Error, HotRodClient, HotRodConnection};
use ironrod_server::{server, Config, State};
use tokio::sync::oneshot;

/// Bound on every client operation and on server shutdown: nothing here should take long, and a
/// hang must fail the test instead of stalling the run.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

/// Starts an Ironrod with the default configuration (caches `default`, `work`, `sessions`, ...;
/// an empty cache name means `default`).
pub async fn start() -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State::new(Config::default()).unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(server::serve(listener, state, async {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        stop: Some(tx),
        done,
    }
}

impl TestServer {
    /// A single `HotRodConnection` bound to `cache` ("" is the default cache).
    pub async fn connection(&self, cache: &str) -> HotRodConnection {
        HotRodConnection::connect_with_timeout(self.addr, cache, TIMEOUT)
            .await
            .unwrap()
    }

    /// A topology-aware `HotRodClient` seeded with this server.
    pub async fn client(&self) -> HotRodClient {
        HotRodClient::connect_with_timeout(&[self.addr], TIMEOUT)
            .await
            .unwrap()
    }

    /// Stops the server and waits for it to drain; it must finish within `TIMEOUT` even with
    /// client connections still open.
    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(TIMEOUT, self.done)
            .await
            .expect("server shut down in time")
            .expect("server task did not panic");
    }
}

/// The message of a server-reported error (the Hot Rod error status frame); anything else, or
/// success, fails the test.
pub fn server_error<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Server { status, message }) => {
            assert!(
                (0x81..=0x87).contains(&status),
                "unexpected error status {status:#04x}: {message}"
            );
            message
        }
        other => panic!("expected a server error frame, got {other:?}"),
    }
}

/// `n` distinct keys with a common prefix.
pub fn keys(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i:04}").into_bytes())
        .collect()
}
