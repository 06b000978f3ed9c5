//! Site bridge cost, with two real `ironrod` processes on loopback (release build):
//! - `put/local`: a Hot Rod PUT to a cache without backups (the baseline);
//! - `put/sync`: a PUT to a cache with a SYNC backup (one bridge round trip inside the write);
//! - `put/async`: a PUT to a cache with an ASYNC backup (queued after commit);
//! - `rtt/loopback_echo`: a 100-byte ping answered by an echo thread over loopback TCP: the
//!   network part of one bridge round trip (the target is SYNC ≤ local + this + 10 %);
//! - `async_throughput`: PUT n keys on site1 through an ASYNC backup and wait until the last one
//!   is readable on site2 (elements per second).
//!
//! `cargo bench -p ironrod-server --bench xsite`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ironrod_codec::{
    ClientCodec, Expiration, Op, Request, RequestHeader, ResponseBody, ServerMessage, Version,
};
use tokio_util::codec::{Decoder, Encoder};

const BIN: &str = env!("CARGO_BIN_EXE_ironrod");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A blocking Hot Rod client.
struct Hr {
    s: TcpStream,
    codec: ClientCodec,
    buf: BytesMut,
    id: u64,
}

impl Hr {
    fn connect(port: u16) -> Hr {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        Hr {
            s,
            codec: ClientCodec::default(),
            buf: BytesMut::new(),
            id: 0,
        }
    }

    fn call(&mut self, cache: &str, op: Op) -> ResponseBody {
        self.id += 1;
        let mut out = BytesMut::new();
        self.codec
            .encode(
                &Request {
                    header: RequestHeader::new(self.id, Version::V4_0, cache),
                    op,
                },
                &mut out,
            )
            .unwrap();
        self.s.write_all(&out).unwrap();
        loop {
            if let Some(m) = self.codec.decode(&mut self.buf).unwrap() {
                match m {
                    ServerMessage::Response(r) => return r.body,
                    _ => continue,
                }
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "server closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn put(&mut self, cache: &str, key: &str, value: &[u8]) {
        let body = self.call(
            cache,
            Op::Put {
                key: Bytes::copy_from_slice(key.as_bytes()),
                expiration: Expiration::DEFAULT,
                value: Bytes::copy_from_slice(value),
            },
        );
        if let ResponseBody::Error(e) = body {
            panic!("put failed: {e}");
        }
    }

    fn has(&mut self, cache: &str, key: &str) -> bool {
        matches!(
            self.call(
                cache,
                Op::Get {
                    key: Bytes::copy_from_slice(key.as_bytes())
                }
            ),
            ResponseBody::Value(_)
        )
    }
}

fn sites_view_len(port: u16) -> usize {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.write_all(b"GET /rest/v2/container HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let Some((_, body)) = out.split_once("\r\n\r\n") else {
        return 0;
    };
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["sites_view"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// Starts site1 (backing up `sessions` SYNC and `work` ASYNC to site2) and site2.
fn start() -> (Vec<Proc>, tempfile::TempDir, u16, u16) {
    let dir = tempfile::tempdir().unwrap();
    let (h1, h2, b1, b2) = (free_port(), free_port(), free_port(), free_port());
    let secret = "a-benchmark-secret-long-enough";
    let conf = |name: &str, other: &str, hot: u16, own: u16, peer: u16, backups: bool| {
        let mut t = format!(
            "bind = \"127.0.0.1:{hot}\"\nlog = \"warn\"\n[xsite]\nsite = \"{name}\"\nlisten = \"127.0.0.1:{own}\"\n\
             auth = {{ mode = \"shared-secret\", secret = \"{secret}\" }}\n\
             [xsite.remote_sites.{other}]\naddress = \"127.0.0.1:{peer}\"\n"
        );
        if backups {
            t.push_str(&format!(
                "[xsite.caches.sessions.backups.{other}]\nstrategy = \"SYNC\"\nfailure_policy = \"FAIL\"\n\
                 [xsite.caches.work.backups.{other}]\nstrategy = \"ASYNC\"\n"
            ));
        }
        t
    };
    let mut procs = Vec::new();
    for (name, text) in [
        ("site1", conf("site1", "site2", h1, b1, b2, true)),
        ("site2", conf("site2", "site1", h2, b2, b1, false)),
    ] {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        procs.push(Proc(
            Command::new(BIN)
                .arg("-c")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while sites_view_len(h1) < 2 || sites_view_len(h2) < 2 {
        assert!(Instant::now() < deadline, "sites never linked");
        std::thread::sleep(Duration::from_millis(50));
    }
    (procs, dir, h1, h2)
}

/// A client socket whose peer, on its own thread, echoes every byte.
fn echo_pair() -> TcpStream {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn bench(c: &mut Criterion) {
    let (_procs, _dir, h1, h2) = start();
    let mut c1 = Hr::connect(h1);
    let mut c2 = Hr::connect(h2);
    let value = vec![b'v'; 100];
    let mut g = c.benchmark_group("rtt");
    let mut echo = echo_pair();
    let ping = [b'p'; 100];
    g.bench_function("loopback_echo", |b| {
        b.iter(|| {
            echo.write_all(&ping).unwrap();
            let mut got = [0u8; 100];
            echo.read_exact(&mut got).unwrap();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("put");
    let mut n = 0u64;
    for (label, cache) in [
        ("local", "default"),
        ("sync", "sessions"),
        ("async", "work"),
    ] {
        g.bench_function(label, |b| {
            b.iter(|| {
                n += 1;
                c1.put(cache, &format!("k{}", n % 10_000), &value);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("async_throughput");
    let batch = 2_000u64;
    g.throughput(Throughput::Elements(batch));
    g.sample_size(10);
    let mut round = 0u64;
    g.bench_function("2000_puts_until_visible_on_site2", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let t = Instant::now();
                for i in 0..batch {
                    c1.put("work", &format!("t{round}-{i}"), &value);
                }
                let last = format!("t{round}-{}", batch - 1);
                while !c2.has("work", &last) {
                    std::thread::sleep(Duration::from_micros(200));
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
