//! Model test: random operation sequences, with a manual clock moving, against a plain `HashMap`.

use std::collections::HashMap;
use std::sync::Arc;

use ironrod_engine::{
    Cache, CacheConfig, Expiration, ManualClock, Metadata, PutIfAbsent, RemoveIfUnmodified,
    Replace, ReplaceIfUnmodified, Versioned, WriteOptions,
};
use proptest::prelude::*;

/// The configured default lifespan, used when an op asks for `Expiration::Default`.
const DEFAULT_LIFESPAN: u64 = 25;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8, Exp),
    PutIfAbsent(u8, u8, Exp),
    Replace(u8, u8, Exp),
    ReplaceIfUnmodified(u8, u8, Exp, bool),
    Remove(u8),
    RemoveIfUnmodified(u8, bool),
    Get(u8),
    GetWithMetadata(u8),
    Contains(u8),
    Advance(u64),
    Reap,
    Clear,
    Size,
}

#[derive(Debug, Clone, Copy)]
struct Exp(Expiration, Expiration);

#[derive(Debug, Clone)]
struct ModelEntry {
    value: Vec<u8>,
    version: u64,
    created: u64,
    last_used: u64,
    lifespan: Option<u64>,
    max_idle: Option<u64>,
}

impl ModelEntry {
    fn expired(&self, now: u64) -> bool {
        self.lifespan.is_some_and(|l| now > self.created + l)
            || self.max_idle.is_some_and(|m| now > self.last_used + m)
    }

    fn metadata(&self) -> Metadata {
        let mortal = self.lifespan.is_some() || self.max_idle.is_some();
        Metadata {
            version: self.version,
            created: mortal.then_some(self.created),
            last_used: mortal.then_some(self.last_used),
            lifespan: self.lifespan,
            max_idle: self.max_idle,
        }
    }

    fn versioned(&self) -> Versioned {
        Versioned {
            value: self.value.clone().into(),
            metadata: self.metadata(),
        }
    }
}

struct Model {
    entries: HashMap<Vec<u8>, ModelEntry>,
    last_version: u64,
}

impl Model {
    /// The live entry of `key`, dropping an expired one.
    fn live(&mut self, key: &[u8], now: u64) -> Option<&mut ModelEntry> {
        if self.entries.get(key).is_some_and(|e| e.expired(now)) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    /// Records a write; learns its version from the cache, which must be fresh and larger.
    fn store(
        &mut self,
        cache: &Cache,
        key: &[u8],
        value: u8,
        exp: Exp,
        now: u64,
    ) -> Result<(), TestCaseError> {
        let got = cache
            .get_with_metadata(key)
            .ok_or_else(|| TestCaseError::fail("just written, yet absent"))?;
        prop_assert!(got.metadata.version > self.last_version);
        self.last_version = got.metadata.version;
        let lifespan = resolve(exp.0, Some(DEFAULT_LIFESPAN));
        let max_idle = resolve(exp.1, None);
        let entry = ModelEntry {
            value: vec![value],
            version: got.metadata.version,
            created: now,
            last_used: now,
            lifespan,
            max_idle,
        };
        prop_assert_eq!(got, entry.versioned());
        self.entries.insert(key.to_vec(), entry);
        Ok(())
    }
}

fn resolve(e: Expiration, default: Option<u64>) -> Option<u64> {
    match e {
        Expiration::Default => default,
        Expiration::Millis(ms) => Some(ms),
        _ => None,
    }
}

fn expiration() -> impl Strategy<Value = Expiration> {
    prop_oneof![
        Just(Expiration::Default),
        Just(Expiration::Infinite),
        (0u64..40).prop_map(Expiration::Millis),
    ]
}

fn exp() -> impl Strategy<Value = Exp> {
    (expiration(), expiration()).prop_map(|(l, m)| Exp(l, m))
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..5;
    let value = any::<u8>();
    prop_oneof![
        3 => (key.clone(), value, exp()).prop_map(|(k, v, e)| Op::Put(k, v, e)),
        2 => (key.clone(), value, exp()).prop_map(|(k, v, e)| Op::PutIfAbsent(k, v, e)),
        2 => (key.clone(), value, exp()).prop_map(|(k, v, e)| Op::Replace(k, v, e)),
        2 => (key.clone(), value, exp(), any::<bool>())
            .prop_map(|(k, v, e, r)| Op::ReplaceIfUnmodified(k, v, e, r)),
        2 => key.clone().prop_map(Op::Remove),
        2 => (key.clone(), any::<bool>()).prop_map(|(k, r)| Op::RemoveIfUnmodified(k, r)),
        2 => key.clone().prop_map(Op::Get),
        2 => key.clone().prop_map(Op::GetWithMetadata),
        1 => key.prop_map(Op::Contains),
        3 => (0u64..30).prop_map(Op::Advance),
        1 => Just(Op::Reap),
        1 => Just(Op::Clear),
        1 => Just(Op::Size),
    ]
}

fn options(exp: Exp) -> WriteOptions {
    WriteOptions::expiring(exp.0, exp.1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cache_behaves_like_a_map(ops in proptest::collection::vec(op(), 1..80)) {
        let clock = Arc::new(ManualClock::new(10_000));
        let config = CacheConfig {
            lifespan: Some(DEFAULT_LIFESPAN),
            segments: 4,
            ..CacheConfig::default()
        };
        let cache = Cache::new("model", config, clock.clone()).unwrap();
        let mut model = Model { entries: HashMap::new(), last_version: 0 };
        for op in ops {
            let now = ironrod_engine::Clock::now(&*clock);
            match op {
                Op::Put(k, v, e) => {
                    let expected = model.live(&[k], now).map(|e| e.versioned());
                    prop_assert_eq!(cache.put(&[k], &[v], &options(e)).unwrap(), expected);
                    model.store(&cache, &[k], v, e, now)?;
                }
                Op::PutIfAbsent(k, v, e) => {
                    let expected = model.live(&[k], now).map(|e| e.versioned());
                    let got = cache.put_if_absent(&[k], &[v], &options(e)).unwrap();
                    match expected {
                        Some(existing) => prop_assert_eq!(got, PutIfAbsent::Existing(existing)),
                        None => {
                            prop_assert_eq!(got, PutIfAbsent::Stored);
                            model.store(&cache, &[k], v, e, now)?;
                        }
                    }
                }
                Op::Replace(k, v, e) => {
                    let expected = model.live(&[k], now).map(|e| e.versioned());
                    let got = cache.replace(&[k], &[v], &options(e)).unwrap();
                    match expected {
                        Some(previous) => {
                            prop_assert_eq!(got, Replace::Replaced { previous });
                            model.store(&cache, &[k], v, e, now)?;
                        }
                        None => prop_assert_eq!(got, Replace::NotFound),
                    }
                }
                Op::ReplaceIfUnmodified(k, v, e, right) => {
                    let current = model.live(&[k], now).map(|e| e.versioned());
                    let version = match (&current, right) {
                        (Some(c), true) => c.metadata.version,
                        _ => 999_999,
                    };
                    let got = cache.replace_if_unmodified(&[k], version, &[v], &options(e)).unwrap();
                    match current {
                        None => prop_assert_eq!(got, ReplaceIfUnmodified::NotFound),
                        Some(previous) if right => {
                            prop_assert_eq!(got, ReplaceIfUnmodified::Replaced { previous });
                            model.store(&cache, &[k], v, e, now)?;
                        }
                        Some(current) => {
                            prop_assert_eq!(got, ReplaceIfUnmodified::VersionMismatch { current });
                        }
                    }
                }
                Op::Remove(k) => {
                    let expected = model.live(&[k], now).map(|e| e.versioned());
                    model.entries.remove(&[k][..]);
                    prop_assert_eq!(cache.remove(&[k], &WriteOptions::default()).unwrap(), expected);
                }
                Op::RemoveIfUnmodified(k, right) => {
                    let current = model.live(&[k], now).map(|e| e.versioned());
                    let version = match (&current, right) {
                        (Some(c), true) => c.metadata.version,
                        _ => 999_999,
                    };
                    let got = cache.remove_if_unmodified(&[k], version, &WriteOptions::default()).unwrap();
                    match current {
                        None => prop_assert_eq!(got, RemoveIfUnmodified::NotFound),
                        Some(previous) if right => {
                            model.entries.remove(&[k][..]);
                            prop_assert_eq!(got, RemoveIfUnmodified::Removed { previous });
                        }
                        Some(current) => {
                            prop_assert_eq!(got, RemoveIfUnmodified::VersionMismatch { current });
                        }
                    }
                }
                Op::Get(k) => {
                    let expected = model.live(&[k], now).map(|e| {
                        e.last_used = now;
                        e.value.clone()
                    });
                    prop_assert_eq!(cache.get(&[k]).map(|b| b.to_vec()), expected);
                }
                Op::GetWithMetadata(k) => {
                    let expected = model.live(&[k], now).map(|e| {
                        e.last_used = now;
                        e.versioned()
                    });
                    prop_assert_eq!(cache.get_with_metadata(&[k]), expected);
                }
                Op::Contains(k) => {
                    let expected = model.live(&[k], now).map(|e| e.last_used = now).is_some();
                    prop_assert_eq!(cache.contains(&[k]), expected);
                }
                Op::Advance(ms) => clock.advance(ms),
                Op::Reap => {
                    let before = model.entries.len();
                    model.entries.retain(|_, e| !e.expired(now));
                    prop_assert_eq!(cache.reap(), before - model.entries.len());
                }
                Op::Clear => {
                    let n = model.entries.len();
                    model.entries.clear();
                    prop_assert_eq!(cache.clear(&WriteOptions::default()).unwrap(), n);
                }
                Op::Size => {
                    let live = model.entries.values().filter(|e| !e.expired(now)).count();
                    prop_assert_eq!(cache.size(), live as u64);
                }
            }
        }
        // Finally, iteration sees exactly the model's live entries.
        let now = ironrod_engine::Clock::now(&*clock);
        let mut it = cache.iterate(None).unwrap();
        let mut seen = HashMap::new();
        loop {
            let batch = cache.next_batch(&mut it, 3);
            if batch.is_empty() {
                break;
            }
            for e in batch {
                prop_assert!(seen.insert(e.key.to_vec(), e).is_none());
            }
        }
        let live: HashMap<_, _> = model.entries.iter().filter(|(_, e)| !e.expired(now)).collect();
        prop_assert_eq!(seen.len(), live.len());
        for (k, e) in live {
            let got = &seen[k];
            prop_assert_eq!(&got.value[..], &e.value[..]);
            prop_assert_eq!(got.metadata, e.metadata());
        }
    }
}
