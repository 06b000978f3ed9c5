//! Concurrent writers to the same keys: every subscriber sees each key's changes in strictly
//! increasing version order, and the last version it sees is the entry's.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;

use ironrod_engine::{
    Cache, CacheConfig, Change, ChangeKind, Expiration, ManualClock, RemoveIfUnmodified,
    Subscriber, WriteOptions,
};
use parking_lot::Mutex;

#[derive(Default)]
struct Log(Mutex<Vec<(Vec<u8>, ChangeKind, u64)>>);

impl Subscriber for Log {
    fn on_change(&self, c: &Change<'_>) {
        self.0.lock().push((c.key.to_vec(), c.kind, c.version));
    }
}

#[test]
fn per_key_versions_strictly_increase_for_every_subscriber() {
    let clock = Arc::new(ManualClock::new(0));
    let cache = Arc::new(Cache::new("c", CacheConfig::default(), clock.clone()).unwrap());
    let logs: Vec<Arc<Log>> = (0..3).map(|_| Arc::new(Log::default())).collect();
    for log in &logs {
        cache.subscribe(log.clone());
    }
    let keys: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'k', i]).collect();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let cache = cache.clone();
            let keys = keys.clone();
            let clock = clock.clone();
            thread::spawn(move || {
                let short = WriteOptions::expiring(Expiration::Millis(3), Expiration::Infinite);
                for i in 0..2000u64 {
                    let key = &keys[((i * 7 + t) % keys.len() as u64) as usize];
                    match (i + t) % 6 {
                        0 | 1 => {
                            cache
                                .put(key, &i.to_le_bytes(), &WriteOptions::default())
                                .unwrap();
                        }
                        2 => {
                            cache.put(key, b"short", &short).unwrap();
                        }
                        3 => {
                            cache.remove(key, &WriteOptions::default()).unwrap();
                        }
                        4 => {
                            if let Some(v) = cache.get_with_metadata(key) {
                                let _: RemoveIfUnmodified = cache
                                    .remove_if_unmodified(
                                        key,
                                        v.metadata.version,
                                        &WriteOptions::default(),
                                    )
                                    .unwrap();
                            }
                        }
                        _ => {
                            clock.advance(1);
                            cache.reap();
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let first: Vec<_> = logs[0].0.lock().clone();
    assert!(first.len() > 4000);
    for log in &logs {
        let log = log.0.lock();
        assert_eq!(log.len(), first.len());
        let mut last: HashMap<&[u8], u64> = HashMap::new();
        for (key, _, version) in log.iter() {
            let prev = last.insert(key, *version).unwrap_or(0);
            assert!(*version > prev, "key {key:?}: {version} after {prev}");
        }
        // The last created/modified version of a live key is the entry's version.
        for key in &keys {
            let Some(entry) = cache.get_with_metadata(key) else {
                continue;
            };
            let last_write = log
                .iter()
                .rev()
                .find(|(k, kind, _)| {
                    k == key && matches!(kind, ChangeKind::Created | ChangeKind::Modified)
                })
                .unwrap();
            assert_eq!(last_write.2, entry.metadata.version);
        }
    }
}
