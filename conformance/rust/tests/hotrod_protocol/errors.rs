//! Unknown caches and features Ironrod does not implement: each must come back as a clean Hot Rod
//! error frame, and the client (and the server) must keep working afterwards.

use hotrod_protocol::{CounterConfiguration, CounterType, Error, Expiration, Storage};

use crate::common::{server_error, start, TIMEOUT};

const D: Expiration = Expiration::Default;

#[tokio::test]
async fn unknown_cache_on_a_connection() {
    let server = start().await;
    let mut conn = server.connection("nope").await;
    let message = server_error(conn.get(b"k").await);
    assert!(message.contains("CacheNotFoundException"), "{message}");
    assert!(message.contains("nope"), "{message}");

    // The client itself refuses to reuse a connection after any failed operation
    // (`PoisonedConnection`), so the server's health is checked on a fresh one.
    assert!(matches!(conn.ping().await, Err(Error::PoisonedConnection)));
    let mut conn = server.connection("").await;
    conn.put(b"k", b"v", D, D).await.unwrap();
    assert_eq!(conn.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    server.stop().await;
}

#[tokio::test]
async fn unknown_cache_on_a_client() {
    let server = start().await;
    let client = server.client().await;
    let nope = client.cache("nope");

    let message = server_error(nope.get(b"k").await);
    assert!(message.contains("CacheNotFoundException"), "{message}");
    let message = server_error(nope.put(b"k", b"v", D, D).await);
    assert!(message.contains("CacheNotFoundException"), "{message}");
    let message = server_error(nope.size().await);
    assert!(message.contains("CacheNotFoundException"), "{message}");
    match nope.iter().await {
        Err(Error::Server { message, .. }) => {
            assert!(message.contains("CacheNotFoundException"), "{message}")
        }
        Err(other) => panic!("expected a server error, got {other:?}"),
        Ok(_) => panic!("iteration over an unknown cache started"),
    }

    // Same client, real cache: fine.
    let cache = client.cache("");
    cache.put(b"k", b"v", D, D).await.unwrap();
    assert_eq!(cache.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    // And the unknown cache still answers the same way, not with a broken connection.
    let message = server_error(nope.get(b"k").await);
    assert!(message.contains("CacheNotFoundException"), "{message}");
    server.stop().await;
}

#[tokio::test]
async fn unimplemented_multimap_on_a_connection() {
    let server = start().await;
    let mut conn = server.connection("").await;
    conn.put(b"k", b"v", D, D).await.unwrap();

    let message = server_error(conn.multimap_get(b"k", false).await);
    assert!(message.contains("Ironrod does not implement"), "{message}");

    // Client-side poisoning, as above; a fresh connection sees the data untouched.
    assert!(matches!(conn.ping().await, Err(Error::PoisonedConnection)));
    let mut conn = server.connection("").await;
    assert_eq!(conn.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    server.stop().await;
}

#[tokio::test]
async fn unimplemented_features_on_a_client() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("");
    cache.put(b"k", b"v", D, D).await.unwrap();

    // Counters (sent against the `org.infinispan.COUNTER` cache name).
    let counters = client.counters();
    let message = server_error(
        counters
            .define(
                "c",
                CounterConfiguration {
                    counter_type: CounterType::UnboundedStrong,
                    initial_value: 0,
                    storage: Storage::Volatile,
                },
            )
            .await,
    );
    assert!(message.contains("Ironrod does not implement"), "{message}");
    let message = server_error(counters.strong_counter("c").increment_and_get().await);
    assert!(message.contains("Ironrod does not implement"), "{message}");
    cache.ping().await.unwrap();

    // Multimap.
    let multimap = client.multimap_cache("", false);
    let message = server_error(multimap.put(b"mk", b"mv", D, D).await);
    assert!(message.contains("Ironrod does not implement"), "{message}");

    // Remote query.
    let message = server_error(cache.query("FROM demo.Book").execute().await);
    assert!(message.contains("Ironrod does not implement"), "{message}");

    // Client listeners are served: registration succeeds and a write is notified.
    let mut listener = tokio::time::timeout(TIMEOUT, cache.listen())
        .await
        .expect("listener registration answered")
        .expect("listener registration succeeded");
    cache.put(b"lk", b"lv", D, D).await.unwrap();
    match tokio::time::timeout(TIMEOUT, listener.next()).await {
        Ok(Some(Ok(hotrod_protocol::CacheEvent::Created { key, .. }))) => assert_eq!(key, b"lk"),
        other => panic!("expected a created event, got {other:?}"),
    }
    cache.remove(b"lk").await.unwrap();

    // Everything else still works on the same client, and the data is intact.
    assert_eq!(cache.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    cache.put(b"k2", b"v2", D, D).await.unwrap();
    assert_eq!(cache.size().await.unwrap(), 2);
    server.stop().await;
}
