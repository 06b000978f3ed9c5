//! The registry subscribed to a real `ironrod_engine::Cache`, with concurrent writers.

// The whole file is test code; clippy's in-test allowances do not reach its helper functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use ironrod_engine::{Cache, CacheConfig, SystemClock, WriteOptions};
use ironrod_events::{
    Added, ConnectionId, EventKind, EventRecord, ListenerId, ListenerSpec, NoNotify, Registry,
    Watermarks,
};

/// Bounds large enough that these tests never congest or overflow.
const ROOMY: Watermarks = Watermarks {
    high: 1_000_000,
    low: 500_000,
    max: 2_000_000,
};

fn setup() -> (Arc<Cache>, Arc<Registry>) {
    let cache =
        Arc::new(Cache::new("work", CacheConfig::default(), Arc::new(SystemClock)).unwrap());
    let registry = Arc::new(Registry::new(ROOMY, Arc::new(NoNotify)).unwrap());
    cache.subscribe(registry.clone());
    (cache, registry)
}

/// A deterministic mix of puts and removes over `keys` keys.
fn writer(cache: &Cache, seed: u64, ops: usize, keys: u64) {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    for i in 0..ops {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("key-{}", x % keys);
        let options = WriteOptions::default();
        if x % 5 == 0 {
            cache.remove(key.as_bytes(), &options).unwrap();
        } else {
            cache
                .set(key.as_bytes(), format!("{seed}-{i}").as_bytes(), &options)
                .unwrap();
        }
    }
}

/// Checks, per key, strictly increasing versions, no duplicate (key, version), and that the last
/// event matches the cache's final state.
fn check_against_cache(cache: &Cache, events: &[EventRecord]) {
    let mut last: HashMap<Vec<u8>, &EventRecord> = HashMap::new();
    let mut seen = HashSet::new();
    for e in events {
        assert!(seen.insert((e.key.to_vec(), e.version)), "duplicate {e:?}");
        if let Some(prev) = last.get(&e.key.to_vec()) {
            assert!(
                prev.version < e.version,
                "out of order: {prev:?} then {e:?}"
            );
        }
        last.insert(e.key.to_vec(), e);
    }
    for key in cache.bulk_keys() {
        let current = cache.get_with_metadata(&key).unwrap();
        let e = last.get(&key.to_vec()).expect("a live key was announced");
        assert!(matches!(e.kind, EventKind::Created | EventKind::Modified));
        assert_eq!(e.version, current.metadata.version);
    }
    for (key, e) in &last {
        if !cache.contains(key) {
            assert_eq!(e.kind, EventKind::Removed, "{e:?}");
        }
    }
}

fn drain_all(registry: &Registry, connection: ConnectionId) -> Vec<EventRecord> {
    let mut out = Vec::new();
    loop {
        let batch = registry.drain(connection, 1000);
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

#[test]
fn concurrent_writers_give_version_order_per_key() {
    let (cache, registry) = setup();
    let listener = ListenerSpec::plain(ListenerId::new(&b"L"[..]), ConnectionId(1), 40);
    assert!(matches!(
        registry.add_listener(listener, 3),
        Ok(Added::Live)
    ));

    let writers: Vec<_> = (0..4)
        .map(|t| {
            let cache = cache.clone();
            thread::spawn(move || writer(&cache, t + 1, 2000, 16))
        })
        .collect();
    // Drain while the writers run, as a connection task would.
    let mut events = Vec::new();
    while writers.iter().any(|w| !w.is_finished()) {
        events.extend(registry.drain(ConnectionId(1), 64));
    }
    for w in writers {
        w.join().unwrap();
    }
    events.extend(drain_all(&registry, ConnectionId(1)));
    assert!(events.iter().all(|e| e.message_id == 0));
    check_against_cache(&cache, &events);

    // Skipped writes reach no listener.
    cache
        .set(
            b"quiet",
            b"v",
            &WriteOptions::default().skipping_listeners(),
        )
        .unwrap();
    assert_eq!(registry.pending(ConnectionId(1)), 0);
}

#[test]
fn include_current_state_races_with_writers() {
    for round in 0..5u64 {
        let (cache, registry) = setup();
        for i in 0..500 {
            cache
                .set(
                    format!("key-{i}").as_bytes(),
                    b"initial",
                    &WriteOptions::default(),
                )
                .unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|t| {
                let cache = cache.clone();
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut seed = round * 10 + t + 1;
                    while !stop.load(Ordering::Relaxed) {
                        writer(&cache, seed, 50, 600);
                        seed += 100;
                    }
                })
            })
            .collect();

        let mut spec = ListenerSpec::plain(ListenerId::new(&b"S"[..]), ConnectionId(7), 40);
        spec.include_current_state = true;
        let Ok(Added::CurrentState(mut transfer)) = registry.add_listener(spec, 99) else {
            panic!("expected a state transfer");
        };
        let mut delivered = Vec::new();
        let mut iteration = cache.iterate(None).unwrap();
        while !iteration.is_finished() {
            let batch = cache.next_batch(&mut iteration, 32);
            let events = transfer.snapshot(&batch).unwrap();
            assert!(events
                .iter()
                .all(|e| e.message_id == 99 && e.kind == EventKind::Created));
            delivered.extend(events);
        }
        transfer.finish().unwrap();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        let live = drain_all(&registry, ConnectionId(7));
        assert!(live.iter().all(|e| e.message_id == 0));
        delivered.extend(live);
        check_against_cache(&cache, &delivered);
    }
}

#[test]
fn back_pressure_through_the_cache() {
    let cache =
        Arc::new(Cache::new("work", CacheConfig::default(), Arc::new(SystemClock)).unwrap());
    let registry = Arc::new(Registry::new(Watermarks::default(), Arc::new(NoNotify)).unwrap());
    cache.subscribe(registry.clone());
    let listener = ListenerSpec::plain(ListenerId::new(&b"L"[..]), ConnectionId(1), 40);
    assert!(matches!(
        registry.add_listener(listener, 3),
        Ok(Added::Live)
    ));
    for i in 0..101 {
        cache
            .set(format!("k{i}").as_bytes(), b"v", &WriteOptions::default())
            .unwrap();
    }
    assert!(registry.is_congested());
    assert_eq!(registry.drain(ConnectionId(1), 51).len(), 51);
    assert!(!registry.is_congested());
    for i in 0..462 {
        cache
            .set(format!("k{i}").as_bytes(), b"w", &WriteOptions::default())
            .unwrap();
    }
    assert_eq!(registry.take_closing(), [ConnectionId(1)]);
    assert!(registry.is_empty());
    assert!(!registry.is_congested());
}
