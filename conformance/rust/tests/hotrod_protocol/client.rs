//! `HotRodClient`/`RemoteCache`: pooled, topology-aware, routes every keyed operation by hash
//! over the one-node, 256-segment topology Ironrod sends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hotrod_protocol::{Expiration, VersionedResult};

use crate::common::{keys, start};

const D: Expiration = Expiration::Default;

#[tokio::test]
async fn ping_and_topology_routes_to_the_advertised_address() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("");
    cache.ping().await.unwrap();

    // Enough keys to land in many of the 256 segments: every one must route to the address the
    // topology advertises, which has to be this very server.
    for k in keys("route", 64) {
        cache.put(&k, &k, D, D).await.unwrap();
        assert_eq!(cache.get(&k).await.unwrap(), Some(k));
    }
    let pools = client.pool_statistics();
    assert!(!pools.is_empty());
    for pool in &pools {
        assert_eq!(pool.address, server.addr, "{pools:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn put_get_remove_contains_key() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("default");

    assert_eq!(cache.get(b"k").await.unwrap(), None);
    assert!(!cache.contains_key(b"k").await.unwrap());
    assert!(!cache.remove(b"k").await.unwrap());

    cache.put(b"k", b"v", D, D).await.unwrap();
    assert_eq!(cache.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    assert!(cache.contains_key(b"k").await.unwrap());
    // The empty name is the same cache.
    assert_eq!(
        client.cache("").get(b"k").await.unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(client.cache("work").get(b"k").await.unwrap(), None);

    assert!(cache.remove(b"k").await.unwrap());
    assert_eq!(cache.get(b"k").await.unwrap(), None);
    assert!(!cache.contains_key(b"k").await.unwrap());
    server.stop().await;
}

#[tokio::test]
async fn put_if_absent_and_replace() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("work");

    assert!(!cache.replace(b"k", b"r", D, D).await.unwrap());
    assert_eq!(cache.get(b"k").await.unwrap(), None);
    assert!(cache.put_if_absent(b"k", b"a", D, D).await.unwrap());
    assert!(!cache.put_if_absent(b"k", b"b", D, D).await.unwrap());
    assert_eq!(cache.get(b"k").await.unwrap(), Some(b"a".to_vec()));
    assert!(cache.replace(b"k", b"c", D, D).await.unwrap());
    assert_eq!(cache.get(b"k").await.unwrap(), Some(b"c".to_vec()));
    server.stop().await;
}

#[tokio::test]
async fn versioned_replace_and_remove() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("");

    assert_eq!(cache.get_with_version(b"k").await.unwrap(), None);
    assert_eq!(
        cache.remove_if_unmodified(b"k", 7).await.unwrap(),
        VersionedResult::NotFound
    );
    cache.put(b"k", b"v1", D, D).await.unwrap();
    let v1 = cache.get_with_version(b"k").await.unwrap().unwrap();
    assert_eq!(v1.value, b"v1");

    assert_eq!(
        cache
            .replace_if_unmodified(b"k", b"bad", v1.version ^ 0x5555, D, D)
            .await
            .unwrap(),
        VersionedResult::Stale
    );
    assert_eq!(cache.get(b"k").await.unwrap(), Some(b"v1".to_vec()));
    assert_eq!(
        cache
            .replace_if_unmodified(b"k", b"v2", v1.version, D, D)
            .await
            .unwrap(),
        VersionedResult::Success
    );
    let v2 = cache.get_with_version(b"k").await.unwrap().unwrap();
    assert_eq!(v2.value, b"v2");
    assert_ne!(v2.version, v1.version);

    assert_eq!(
        cache.remove_if_unmodified(b"k", v1.version).await.unwrap(),
        VersionedResult::Stale
    );
    assert!(cache.contains_key(b"k").await.unwrap());
    assert_eq!(
        cache.remove_if_unmodified(b"k", v2.version).await.unwrap(),
        VersionedResult::Success
    );
    assert!(!cache.contains_key(b"k").await.unwrap());
    server.stop().await;
}

#[tokio::test]
async fn lifespan_expires_immortal_stays() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("");

    cache
        .put(b"short", b"s", Expiration::Seconds(1), D)
        .await
        .unwrap();
    cache
        .put(b"forever", b"f", Expiration::Immortal, Expiration::Immortal)
        .await
        .unwrap();
    // put_if_absent and replace carry expiration too.
    assert!(cache
        .put_if_absent(b"pia", b"p", Expiration::Seconds(1), D)
        .await
        .unwrap());
    cache.put(b"rep", b"r0", D, D).await.unwrap();
    assert!(cache
        .replace(b"rep", b"r1", Expiration::Seconds(1), D)
        .await
        .unwrap());

    let short = cache.get_with_version(b"short").await.unwrap().unwrap();
    assert_eq!(short.lifespan, Expiration::Seconds(1));
    assert!(short.created.is_some());
    let rep = cache.get_with_version(b"rep").await.unwrap().unwrap();
    assert_eq!(rep.lifespan, Expiration::Seconds(1));
    assert_eq!(cache.size().await.unwrap(), 4);

    tokio::time::sleep(Duration::from_millis(1600)).await;

    for k in [&b"short"[..], b"pia", b"rep"] {
        assert_eq!(cache.get(k).await.unwrap(), None, "{k:?} should be gone");
    }
    assert_eq!(cache.get(b"forever").await.unwrap(), Some(b"f".to_vec()));
    assert_eq!(cache.size().await.unwrap(), 1);
    server.stop().await;
}

#[tokio::test]
async fn put_all_get_all_size_clear_across_segments() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("sessions");

    let ks = keys("bulk", 300);
    let entries: HashMap<Vec<u8>, Vec<u8>> = ks
        .iter()
        .map(|k| (k.clone(), [b"value-".as_slice(), k].concat()))
        .collect();
    cache.put_all(entries.clone(), D, D).await.unwrap();
    assert_eq!(cache.size().await.unwrap(), 300);

    let mut wanted = ks.clone();
    wanted.push(b"absent".to_vec());
    let got = cache.get_all(wanted).await.unwrap();
    assert_eq!(got, entries);

    // Other caches are untouched.
    assert_eq!(client.cache("").size().await.unwrap(), 0);

    cache.clear().await.unwrap();
    assert_eq!(cache.size().await.unwrap(), 0);
    assert!(cache.get_all(ks).await.unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn server_stats_and_client_statistics() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("");

    for k in keys("s", 5) {
        cache.put(&k, b"v", D, D).await.unwrap();
    }
    for k in keys("s", 3) {
        assert!(cache.get(&k).await.unwrap().is_some());
    }
    assert_eq!(cache.get(b"miss").await.unwrap(), None);

    let stats = cache.stats().await.unwrap();
    assert_eq!(
        stats.get("approximateEntries").map(String::as_str),
        Some("5"),
        "{stats:?}"
    );
    let hits: u64 = stats["hits"].parse().unwrap();
    let misses: u64 = stats["misses"].parse().unwrap();
    assert!(hits >= 3 && misses >= 1, "{stats:?}");

    let local = cache.statistics();
    assert_eq!(local.remote_stores, 5);
    assert_eq!(local.remote_hits, 3);
    assert_eq!(local.remote_misses, 1);
    server.stop().await;
}

/// 8 tasks × 100 operations on one shared client, then a contended compare-and-set counter and
/// a contended put-if-absent: the server must serialize conditional writes on one key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_share_one_client() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("");

    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u32 {
                let key = format!("t{t}-k{i}").into_bytes();
                let v1 = format!("t{t}-v{i}").into_bytes();
                cache.put(&key, &v1, D, D).await.unwrap();
                assert_eq!(cache.get(&key).await.unwrap(), Some(v1));
                let v2 = format!("t{t}-w{i}").into_bytes();
                assert!(cache.replace(&key, &v2, D, D).await.unwrap());
                if i % 5 == 0 {
                    assert!(cache.remove(&key).await.unwrap());
                } else {
                    assert_eq!(cache.get(&key).await.unwrap(), Some(v2));
                }
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(cache.size().await.unwrap(), 8 * 20);

    // Contended put_if_absent: exactly one task wins.
    let winners = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let cache = cache.clone();
        let winners = winners.clone();
        tasks.push(tokio::spawn(async move {
            if cache
                .put_if_absent(b"race", format!("{t}").as_bytes(), D, D)
                .await
                .unwrap()
            {
                winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(winners.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A counter incremented with replace_if_unmodified retries: no increment may be lost.
    cache.put(b"counter", b"0", D, D).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let cur = cache.get_with_version(b"counter").await.unwrap().unwrap();
                    let n: u64 = String::from_utf8(cur.value).unwrap().parse().unwrap();
                    let next = (n + 1).to_string();
                    match cache
                        .replace_if_unmodified(b"counter", next.as_bytes(), cur.version, D, D)
                        .await
                        .unwrap()
                    {
                        VersionedResult::Success => break,
                        VersionedResult::Stale => continue,
                        VersionedResult::NotFound => panic!("counter vanished"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(cache.get(b"counter").await.unwrap(), Some(b"80".to_vec()));
    server.stop().await;
}
