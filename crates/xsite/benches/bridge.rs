//! CPU cost of the bridge core, without I/O: encoding and decoding an ASYNC batch, and one SYNC
//! replication round trip between two in-process bridges (origin sends, backup applies through
//! its `VersionStore`, origin receives the acknowledgement and the verdict).
//!
//! Run with `cargo bench -p ironrod-xsite --bench bridge` (add
//! `-- --warm-up-time 1 --measurement-time 3` for a quick run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ironrod_xsite::config::{BackupConfig, FailurePolicy, RemoteSiteConfig, Strategy};
use ironrod_xsite::wire::{self, Frame, Message, Route};
use ironrod_xsite::{
    ApplyMode, Bridge, Change, ConnId, EntryValue, Event, Rng, SyncStart, VersionStore, XsiteConfig,
};

fn change(i: u64, value_len: usize) -> Change {
    Change {
        cache: "sessions".into(),
        key: format!("key-{i:012}").into_bytes(),
        value: Some(EntryValue {
            bytes: vec![0x5a; value_len],
            lifespan_ms: Some(1_800_000),
            max_idle_ms: None,
        }),
        origin: "site-a".into(),
        version: [("site-a".to_string(), i + 1), ("site-b".to_string(), 7)]
            .into_iter()
            .collect(),
    }
}

fn wire_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    for value_len in [100usize, 1024] {
        let frame = Frame {
            route: Route {
                from: "site-a".into(),
                to: "site-b".into(),
            },
            message: Message::AsyncBatch {
                id: 1,
                changes: (0..128).map(|i| change(i, value_len)).collect(),
            },
        };
        let mut bytes = Vec::new();
        wire::encode(&frame, 2, &mut bytes);
        g.throughput(Throughput::Elements(128));
        g.bench_function(format!("encode_batch128_{value_len}B"), |b| {
            let mut out = Vec::with_capacity(bytes.len());
            b.iter(|| {
                out.clear();
                wire::encode(black_box(&frame), 2, &mut out);
                black_box(out.len())
            })
        });
        g.bench_function(format!("decode_batch128_{value_len}B"), |b| {
            b.iter(|| black_box(wire::decode(black_box(&bytes), 2, 1 << 24).unwrap()))
        });
    }
    g.finish();
}

fn config(site: &str, other: &str, port: u16) -> XsiteConfig {
    let mut c = XsiteConfig {
        site: site.into(),
        ..XsiteConfig::default()
    };
    c.remote_sites.insert(
        other.into(),
        RemoteSiteConfig {
            address: format!("127.0.0.1:{port}"),
            via: None,
        },
    );
    c.caches
        .entry("sessions".into())
        .or_default()
        .backups
        .insert(
            other.into(),
            BackupConfig {
                strategy: Strategy::Sync,
                failure_policy: FailurePolicy::Fail,
                ..BackupConfig::default()
            },
        );
    c
}

/// Moves bytes both ways until neither side has anything to send.
fn shuttle(a: &mut Bridge, ca: ConnId, b: &mut Bridge, cb: ConnId, now: Instant) {
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            b.handle_data(now, cb, &t.bytes);
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_data(now, ca, &t.bytes);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

fn sync_round_trip(c: &mut Criterion) {
    let now = Instant::now();
    let mut a = Bridge::new(config("site-a", "site-b", 7901), now, Box::new(Rng::new(1))).unwrap();
    let mut b = Bridge::new(config("site-b", "site-a", 7900), now, Box::new(Rng::new(2))).unwrap();
    a.handle_timeout(now);
    let ca = match a.poll_event() {
        Some(Event::Connect { conn, .. }) => conn,
        other => panic!("{other:?}"),
    };
    let cb = b.accept(now);
    a.handle_connected(now, ca);
    shuttle(&mut a, ca, &mut b, cb, now);
    while a.poll_event().is_some() {}
    while b.poll_event().is_some() {}
    assert!(a.has_sync_backups("sessions"));

    let mut sa = VersionStore::new("site-a", "sessions", 0);
    let mut sb = VersionStore::new("site-b", "sessions", 0);
    let mut i = 0u64;
    let mut g = c.benchmark_group("bridge");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sync_round_trip_100B", |bench| {
        bench.iter(|| {
            i += 1;
            let key = format!("key-{}", i % 10_000).into_bytes();
            let ch = sa.prepare_local(&key, change(i, 100).value);
            let SyncStart::Pending(id) = a.replicate_sync(now, &ch) else {
                panic!("not pending");
            };
            shuttle(&mut a, ca, &mut b, cb, now);
            while let Some(e) = b.poll_event() {
                if let Event::Apply {
                    ticket,
                    change,
                    mode: ApplyMode::Sync,
                    ..
                } = e
                {
                    black_box(sb.apply_sync(now, &change));
                    b.complete_apply(now, ticket, Ok(()));
                }
            }
            shuttle(&mut a, ca, &mut b, cb, now);
            match a.poll_event() {
                Some(Event::SyncDone { write, .. }) if write == id => {}
                other => panic!("{other:?}"),
            }
            sa.commit_local(now, &ch);
            a.committed(now, &ch);
        })
    });
    g.finish();
}

criterion_group!(benches, wire_batch, sync_round_trip);
criterion_main!(benches);
