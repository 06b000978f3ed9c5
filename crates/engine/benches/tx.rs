//! Uncontended transactional put against plain put, in process: the same 10,000 keys of 16 B
//! and 100 B values on a non-transactional cache and on one configured as Keycloak's
//! (NON_DURABLE_XA, PESSIMISTIC, acquire timeout 0), plus a one-key prepared transaction
//! (lock_all, validate, commit) and PUT_ALL of 4 keys. Run with `cargo bench -p ironrod-engine
//! --bench tx`; the ratio of the first two is the cost of the implicit transaction.

#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use ironrod_engine::{Cache, CacheConfig, SystemClock, TxConfig, TxWrite, WriteOptions};

const KEYS: usize = 10_000;

fn make_cache(transaction: TxConfig) -> Arc<Cache> {
    let config = CacheConfig {
        transaction,
        ..CacheConfig::default()
    };
    Arc::new(Cache::new("bench", config, Arc::new(SystemClock)).expect("valid config"))
}

fn keys() -> Vec<Bytes> {
    (0..KEYS)
        .map(|i| Bytes::from(format!("key-{i:012}")))
        .collect()
}

fn puts(c: &mut Criterion) {
    let keys = keys();
    let value = vec![7u8; 100];
    let options = WriteOptions::default();
    for (name, tx) in [
        ("put/plain", TxConfig::default()),
        ("put/tx", TxConfig::KEYCLOAK),
    ] {
        let cache = make_cache(tx);
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % KEYS;
                let key = keys.get(i).map_or(&b""[..], |k| &k[..]);
                black_box(cache.set(black_box(key), &value, &options)).ok();
            });
        });
    }
    let cache = make_cache(TxConfig::KEYCLOAK);
    let value = Bytes::from(value);
    let mut i = 0;
    c.bench_function("prepare+commit/1 key", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let key = keys.get(i).cloned().unwrap_or_default();
            if let Ok(tx) = cache.prepare(vec![TxWrite::put(key, value.clone(), options)]) {
                tx.commit();
            }
        });
    });
    for (name, tx) in [
        ("put_all(4)/plain", TxConfig::default()),
        ("put_all(4)/tx", TxConfig::KEYCLOAK),
    ] {
        let cache = make_cache(tx);
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 4) % (KEYS - 4);
                let pairs = keys
                    .get(i..i + 4)
                    .unwrap_or_default()
                    .iter()
                    .map(|k| (&k[..], &value[..]));
                black_box(cache.put_all(pairs, &options)).ok();
            });
        });
    }
}

criterion_group!(benches, puts);
criterion_main!(benches);
