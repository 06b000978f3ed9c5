//! Server-side iteration through `RemoteCache::iter`/`iter_with`: the client sends a segment
//! bitset covering the 256 segments the topology gives our one node, and expects every entry
//! exactly once, with metadata.

use std::collections::HashMap;

use hotrod_protocol::{Expiration, IterationEntry, IterationOptions, RemoteCache};

use crate::common::{keys, start};

const D: Expiration = Expiration::Default;

async fn drain(cache: &RemoteCache, options: Option<IterationOptions>) -> Vec<IterationEntry> {
    let mut it = match options {
        Some(options) => cache.iter_with(options).await.unwrap(),
        None => cache.iter().await.unwrap(),
    };
    let mut out = Vec::new();
    while let Some(entry) = it.next_entry().await.unwrap() {
        out.push(entry);
        assert!(out.len() <= 10_000, "iteration does not end");
    }
    // Exhausted stays exhausted.
    assert!(it.next_entry().await.unwrap().is_none());
    out
}

fn by_key(entries: Vec<IterationEntry>) -> HashMap<Vec<u8>, IterationEntry> {
    let n = entries.len();
    let map: HashMap<_, _> = entries.into_iter().map(|e| (e.key.clone(), e)).collect();
    assert_eq!(map.len(), n, "some entry was returned more than once");
    map
}

#[tokio::test]
async fn iterates_every_entry_exactly_once_with_metadata() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("");

    assert!(
        drain(&cache, None).await.is_empty(),
        "empty cache iterates nothing"
    );

    let ks = keys("it", 200);
    for (i, k) in ks.iter().enumerate() {
        let value = format!("value-{i}").into_bytes();
        if i % 2 == 0 {
            cache.put(k, &value, D, D).await.unwrap();
        } else {
            cache
                .put(
                    k,
                    &value,
                    Expiration::Seconds(3600),
                    Expiration::Seconds(1800),
                )
                .await
                .unwrap();
        }
    }
    // Something in another cache must not show up.
    client
        .cache("work")
        .put(b"elsewhere", b"x", D, D)
        .await
        .unwrap();

    let all = by_key(drain(&cache, None).await);
    assert_eq!(all.len(), 200);
    for (i, k) in ks.iter().enumerate() {
        let e = &all[k];
        assert_eq!(e.value, format!("value-{i}").into_bytes());
        if i % 2 == 0 {
            assert_eq!(e.lifespan, Expiration::Immortal, "{e:?}");
            assert_eq!(e.max_idle, Expiration::Immortal, "{e:?}");
            assert_eq!(e.created, None);
        } else {
            assert_eq!(e.lifespan, Expiration::Seconds(3600), "{e:?}");
            assert_eq!(e.max_idle, Expiration::Seconds(1800), "{e:?}");
            assert!(e.created.is_some() && e.last_used.is_some(), "{e:?}");
        }
    }
    // Small batches: many IterationNext round trips, same result. (Compared before the reads
    // below, which move the last-used time of the entries with a max-idle.)
    let batched = by_key(
        drain(
            &cache,
            Some(IterationOptions {
                batch_size: 7,
                ..IterationOptions::default()
            }),
        )
        .await,
    );
    assert!(batched == all, "batched iteration differs");

    // The version and metadata iteration reports are what get_with_version reports.
    for k in ks.iter().step_by(37) {
        let versioned = cache.get_with_version(k).await.unwrap().unwrap();
        assert_eq!(all[k].version, versioned.version);
        assert_eq!(all[k].created, versioned.created);
        assert_eq!(all[k].lifespan, versioned.lifespan);
    }

    // The pooled connections are usable afterwards (each iteration ended cleanly).
    cache.put(b"after", b"a", D, D).await.unwrap();
    assert_eq!(drain(&cache, None).await.len(), 201);
    server.stop().await;
}

#[tokio::test]
async fn abandoned_iteration_does_not_break_the_client() {
    let server = start().await;
    let client = server.client().await;
    let cache = client.cache("work");
    for k in keys("ab", 50) {
        cache.put(&k, b"v", D, D).await.unwrap();
    }
    let mut it = cache
        .iter_with(IterationOptions {
            batch_size: 5,
            ..IterationOptions::default()
        })
        .await
        .unwrap();
    assert!(it.next_entry().await.unwrap().is_some());
    drop(it);

    assert_eq!(cache.size().await.unwrap(), 50);
    assert_eq!(drain(&cache, None).await.len(), 50);
    server.stop().await;
}
