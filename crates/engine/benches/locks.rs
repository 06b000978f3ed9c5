//! Uncontended lock-table costs: the single-write path (guard), the transactional path (lock,
//! then unlock_all) and a four-key `lock_all`. Run with `cargo bench -p ironrod-engine --bench
//! locks`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use ironrod_engine::{LockOwner, LockTable, SystemClock};

fn uncontended(c: &mut Criterion) {
    let table = LockTable::new(Arc::new(SystemClock));
    let key = Bytes::from_static(b"session:8f14e45f-ceea-467f-a8f5-0c9c1f2b7a11");
    let keys: Vec<Bytes> = (0..4).map(|i| Bytes::from(format!("key-{i}"))).collect();
    let owner = LockOwner(7);

    c.bench_function("lock_guard+drop", |b| {
        b.iter(|| {
            let guard = table.lock_guard(owner, black_box(&key), Duration::ZERO);
            black_box(&guard);
        });
    });
    c.bench_function("lock+unlock", |b| {
        b.iter(|| {
            let _ = table.lock(owner, black_box(&key), Duration::ZERO);
            table.unlock(owner, black_box(&key));
        });
    });
    c.bench_function("lock+unlock_all", |b| {
        b.iter(|| {
            let _ = table.lock(owner, black_box(&key), Duration::ZERO);
            table.unlock_all(owner);
        });
    });
    c.bench_function("lock_all(4)+unlock_all", |b| {
        b.iter(|| {
            let _ = table.lock_all(owner, black_box(&keys), Duration::ZERO);
            table.unlock_all(owner);
        });
    });
}

criterion_group!(benches, uncontended);
criterion_main!(benches);
