//! SASL: the client's own PLAIN and SCRAM-SHA-512 against an Ironrod with authentication on
//! (user `alice`, password `secret`), then data operations on the authenticated connection.

use std::sync::Arc;

use hotrod_protocol::{Error, Expiration, HotRodClient, HotRodConnection};
use ironrod_sasl::CredentialStore;
use ironrod_server::{server, Config, State};
use tokio::sync::oneshot;

use crate::common::TIMEOUT;

const D: Expiration = Expiration::Default;

struct Secured {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

async fn start_secured() -> Secured {
    let mut store = CredentialStore::new();
    store.set_iterations(4096).unwrap();
    store
        .set_user(
            "alice",
            "secret",
            &["admin".to_string()],
            &["default".to_string()],
        )
        .unwrap();
    // The client speaks plain TCP here, so PLAIN must be allowed in clear explicitly.
    let mut config = Config::default();
    config.security.plain_in_clear = true;
    config.security.failure_delay_ms = 0;
    let state = State::new(config).unwrap().with_credentials(store).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(server::serve(listener, Arc::new(state), async {
        let _ = rx.await;
    }));
    Secured { addr, stop, done }
}

impl Secured {
    async fn connection(&self) -> HotRodConnection {
        HotRodConnection::connect_with_timeout(self.addr, "", TIMEOUT)
            .await
            .unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(TIMEOUT, self.done)
            .await
            .expect("server shut down in time")
            .expect("server task did not panic");
    }
}

#[tokio::test]
async fn plain_then_put_get() {
    let server = start_secured().await;
    let mut conn = server.connection().await;
    conn.authenticate_plain("", "alice", "secret")
        .await
        .unwrap();
    conn.put(b"k", b"v", D, D).await.unwrap();
    assert_eq!(conn.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    server.stop().await;
}

#[tokio::test]
async fn scram_sha_512_then_put_get() {
    let server = start_secured().await;
    let mut conn = server.connection().await;
    conn.authenticate_scram("alice", "secret").await.unwrap();
    conn.put(b"k", b"v", D, D).await.unwrap();
    assert_eq!(conn.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    server.stop().await;
}

#[tokio::test]
async fn client_scram_authenticates_its_pooled_connections() {
    let server = start_secured().await;
    let client = HotRodClient::connect_with_timeout(&[server.addr], TIMEOUT)
        .await
        .unwrap();
    client.authenticate_scram("alice", "secret").await.unwrap();
    let cache = client.cache("");
    cache.put(b"k", b"v", D, D).await.unwrap();
    assert_eq!(cache.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    server.stop().await;
}

#[tokio::test]
async fn wrong_password_fails_cleanly() {
    let server = start_secured().await;
    for scram in [false, true] {
        let mut conn = server.connection().await;
        let result = if scram {
            conn.authenticate_scram("alice", "wrong").await
        } else {
            conn.authenticate_plain("", "alice", "wrong").await
        };
        match result {
            Err(Error::Server { status, message }) => {
                assert_eq!(status, 0x85);
                assert!(
                    message.contains("ISPN006024: Invalid credentials"),
                    "{message}"
                );
            }
            other => panic!("expected a server error, got {other:?}"),
        }
        // Without authentication, data operations stay refused.
        let mut other = server.connection().await;
        let message = crate::common::server_error(other.put(b"k", b"v", D, D).await);
        assert!(message.contains("ISPN006017"), "{message}");
    }
    server.stop().await;
}
