//! `HotRodConnection`: one connection, BASIC intelligence, bound to one cache.

use std::time::{Duration, SystemTime};

use hotrod_protocol::{Expiration, VersionedResult};

use crate::common::{keys, start};

const D: Expiration = Expiration::Default;

#[tokio::test]
async fn ping() {
    let server = start().await;
    let mut conn = server.connection("").await;
    conn.ping().await.unwrap();
    // A second ping on the same connection: the first response was read to its end.
    conn.ping().await.unwrap();
    let mut named = server.connection("work").await;
    named.ping().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn put_get_remove_contains_key() {
    let server = start().await;
    let mut conn = server.connection("").await;

    assert_eq!(conn.get(b"k").await.unwrap(), None);
    assert!(!conn.contains_key(b"k").await.unwrap());
    assert!(!conn.remove(b"k").await.unwrap(), "remove of an absent key");

    conn.put(b"k", b"v1", D, D).await.unwrap();
    assert_eq!(conn.get(b"k").await.unwrap(), Some(b"v1".to_vec()));
    assert!(conn.contains_key(b"k").await.unwrap());

    conn.put(b"k", b"v2", D, D).await.unwrap();
    assert_eq!(conn.get(b"k").await.unwrap(), Some(b"v2".to_vec()));

    // Keys and values are opaque bytes: empty and non-UTF-8 ones round-trip.
    conn.put(b"", b"", D, D).await.unwrap();
    assert_eq!(conn.get(b"").await.unwrap(), Some(Vec::new()));
    conn.put(&[0xff, 0x00, 0xfe], &[0x80; 300], D, D)
        .await
        .unwrap();
    assert_eq!(
        conn.get(&[0xff, 0x00, 0xfe]).await.unwrap(),
        Some(vec![0x80; 300])
    );

    assert!(conn.remove(b"k").await.unwrap(), "remove of a present key");
    assert_eq!(conn.get(b"k").await.unwrap(), None);
    assert!(!conn.contains_key(b"k").await.unwrap());
    assert!(!conn.remove(b"k").await.unwrap(), "second remove");
    server.stop().await;
}

#[tokio::test]
async fn put_if_absent_and_replace() {
    let server = start().await;
    let mut conn = server.connection("").await;

    assert!(
        !conn.replace(b"k", b"r0", D, D).await.unwrap(),
        "replace of an absent key must not write"
    );
    assert_eq!(conn.get(b"k").await.unwrap(), None);

    assert!(conn.put_if_absent(b"k", b"a", D, D).await.unwrap());
    assert_eq!(conn.get(b"k").await.unwrap(), Some(b"a".to_vec()));
    assert!(
        !conn.put_if_absent(b"k", b"b", D, D).await.unwrap(),
        "put_if_absent of a present key must not write"
    );
    assert_eq!(conn.get(b"k").await.unwrap(), Some(b"a".to_vec()));

    assert!(conn.replace(b"k", b"c", D, D).await.unwrap());
    assert_eq!(conn.get(b"k").await.unwrap(), Some(b"c".to_vec()));
    server.stop().await;
}

#[tokio::test]
async fn versioned_replace_and_remove() {
    let server = start().await;
    let mut conn = server.connection("").await;

    assert_eq!(conn.get_with_version(b"k").await.unwrap(), None);
    assert_eq!(
        conn.replace_if_unmodified(b"k", b"x", 1, D, D)
            .await
            .unwrap(),
        VersionedResult::NotFound
    );
    assert_eq!(
        conn.remove_if_unmodified(b"k", 1).await.unwrap(),
        VersionedResult::NotFound
    );

    conn.put(b"k", b"v1", D, D).await.unwrap();
    let v1 = conn.get_with_version(b"k").await.unwrap().unwrap();
    assert_eq!(v1.value, b"v1");
    // No lifespan or max-idle given and none configured: immortal, no timestamps.
    assert_eq!(v1.lifespan, Expiration::Immortal);
    assert_eq!(v1.max_idle, Expiration::Immortal);
    assert_eq!(v1.created, None);
    assert_eq!(v1.last_used, None);

    // Mismatch: nothing changes.
    assert_eq!(
        conn.replace_if_unmodified(b"k", b"bad", v1.version.wrapping_add(1), D, D)
            .await
            .unwrap(),
        VersionedResult::Stale
    );
    assert_eq!(
        conn.remove_if_unmodified(b"k", v1.version.wrapping_add(1))
            .await
            .unwrap(),
        VersionedResult::Stale
    );
    assert_eq!(conn.get(b"k").await.unwrap(), Some(b"v1".to_vec()));

    // Match: the write goes through and the version moves on.
    assert_eq!(
        conn.replace_if_unmodified(b"k", b"v2", v1.version, D, D)
            .await
            .unwrap(),
        VersionedResult::Success
    );
    let v2 = conn.get_with_version(b"k").await.unwrap().unwrap();
    assert_eq!(v2.value, b"v2");
    assert_ne!(v2.version, v1.version);

    // The old version is now stale for both operations.
    assert_eq!(
        conn.replace_if_unmodified(b"k", b"v3", v1.version, D, D)
            .await
            .unwrap(),
        VersionedResult::Stale
    );
    assert_eq!(
        conn.remove_if_unmodified(b"k", v1.version).await.unwrap(),
        VersionedResult::Stale
    );
    // A plain put also changes the version.
    conn.put(b"k", b"v3", D, D).await.unwrap();
    let v3 = conn.get_with_version(b"k").await.unwrap().unwrap();
    assert_ne!(v3.version, v2.version);
    assert_eq!(
        conn.remove_if_unmodified(b"k", v2.version).await.unwrap(),
        VersionedResult::Stale
    );
    assert_eq!(
        conn.remove_if_unmodified(b"k", v3.version).await.unwrap(),
        VersionedResult::Success
    );
    assert_eq!(conn.get(b"k").await.unwrap(), None);
    server.stop().await;
}

#[tokio::test]
async fn lifespan_and_max_idle_expire_immortal_stays() {
    let server = start().await;
    let mut conn = server.connection("").await;
    let before = SystemTime::now() - Duration::from_secs(5);

    conn.put(b"short", b"s", Expiration::Seconds(1), D)
        .await
        .unwrap();
    conn.put(b"idle", b"i", Expiration::Immortal, Expiration::Seconds(1))
        .await
        .unwrap();
    conn.put(b"forever", b"f", Expiration::Immortal, Expiration::Immortal)
        .await
        .unwrap();
    conn.put(b"long", b"l", Expiration::Seconds(3600), D)
        .await
        .unwrap();

    let short = conn.get_with_version(b"short").await.unwrap().unwrap();
    assert_eq!(short.lifespan, Expiration::Seconds(1));
    let created = short.created.expect("a mortal entry reports its creation");
    assert!(created > before && created < SystemTime::now() + Duration::from_secs(5));
    assert_eq!(short.max_idle, Expiration::Immortal);

    let idle = conn.get_with_version(b"idle").await.unwrap().unwrap();
    assert_eq!(idle.lifespan, Expiration::Immortal);
    assert_eq!(idle.max_idle, Expiration::Seconds(1));
    assert!(idle.last_used.is_some());

    let forever = conn.get_with_version(b"forever").await.unwrap().unwrap();
    assert_eq!(forever.lifespan, Expiration::Immortal);
    assert_eq!(forever.max_idle, Expiration::Immortal);

    tokio::time::sleep(Duration::from_millis(1600)).await;

    assert_eq!(conn.get(b"short").await.unwrap(), None, "lifespan 1 s");
    assert!(!conn.contains_key(b"short").await.unwrap());
    assert_eq!(conn.get(b"idle").await.unwrap(), None, "max-idle 1 s");
    assert_eq!(conn.get(b"forever").await.unwrap(), Some(b"f".to_vec()));
    assert_eq!(conn.get(b"long").await.unwrap(), Some(b"l".to_vec()));
    assert_eq!(conn.size().await.unwrap(), 2);
    server.stop().await;
}

#[tokio::test]
async fn put_all_get_all_size_clear() {
    let server = start().await;
    let mut conn = server.connection("").await;
    assert_eq!(conn.size().await.unwrap(), 0);

    let ks = keys("bulk", 50);
    conn.put_all(
        ks.iter()
            .map(|k| (k.clone(), [k.as_slice(), b"=v"].concat())),
        D,
        D,
    )
    .await
    .unwrap();
    assert_eq!(conn.size().await.unwrap(), 50);

    let mut wanted = ks.clone();
    wanted.push(b"missing-1".to_vec());
    wanted.push(b"missing-2".to_vec());
    let got = conn.get_all(&wanted).await.unwrap();
    assert_eq!(got.len(), 50, "absent keys are left out");
    for k in &ks {
        assert_eq!(got.get(k), Some(&[k.as_slice(), b"=v"].concat()));
    }
    assert!(conn
        .get_all(Vec::<Vec<u8>>::new())
        .await
        .unwrap()
        .is_empty());

    conn.put(b"one-more", b"x", D, D).await.unwrap();
    assert_eq!(conn.size().await.unwrap(), 51);
    conn.clear().await.unwrap();
    assert_eq!(conn.size().await.unwrap(), 0);
    assert_eq!(conn.get(&ks[0]).await.unwrap(), None);
    assert!(conn.get_all(&ks).await.unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn stats() {
    let server = start().await;
    let mut conn = server.connection("").await;
    for k in [b"a", b"b", b"c"] {
        conn.put(k, b"v", D, D).await.unwrap();
    }
    conn.get(b"a").await.unwrap().unwrap();
    conn.get(b"b").await.unwrap().unwrap();
    assert_eq!(conn.get(b"nope").await.unwrap(), None);
    assert!(conn.remove(b"c").await.unwrap());

    let stats = conn.stats().await.unwrap();
    let num = |name: &str| -> i64 {
        stats
            .get(name)
            .unwrap_or_else(|| panic!("stat {name} missing from {stats:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("stat {name}: {e}"))
    };
    // Infinispan reports -1 here unless accurate sizes are configured; Ironrod knows the count.
    assert!(
        [-1, 2].contains(&num("currentNumberOfEntries")),
        "{stats:?}"
    );
    assert_eq!(num("approximateEntries"), 2, "{stats:?}");
    assert!(num("stores") >= 3, "{stats:?}");
    assert!(num("hits") >= 2, "{stats:?}");
    assert!(num("misses") >= 1, "{stats:?}");
    assert!(num("removeHits") >= 1, "{stats:?}");
    assert!(stats.contains_key("timeSinceStart"));
    server.stop().await;
}

#[tokio::test]
async fn named_caches_are_separate_and_empty_name_is_default() {
    let server = start().await;
    let mut anon = server.connection("").await;
    let mut default = server.connection("default").await;
    let mut work = server.connection("work").await;

    anon.put(b"k", b"from-empty-name", D, D).await.unwrap();
    assert_eq!(
        default.get(b"k").await.unwrap(),
        Some(b"from-empty-name".to_vec())
    );
    assert_eq!(work.get(b"k").await.unwrap(), None);

    work.put(b"k", b"from-work", D, D).await.unwrap();
    assert_eq!(work.get(b"k").await.unwrap(), Some(b"from-work".to_vec()));
    assert_eq!(
        anon.get(b"k").await.unwrap(),
        Some(b"from-empty-name".to_vec())
    );
    work.clear().await.unwrap();
    assert_eq!(default.size().await.unwrap(), 1);
    server.stop().await;
}
