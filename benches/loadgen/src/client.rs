//! The client model shared by both protocols: connections that each keep a fixed number of
//! requests in flight, writing every refill in one batch and reading every answer that arrived.
//!
//! Answers come back in request order on a connection (both Hot Rod servers and Redis answer a
//! connection's requests in order), so the oldest request in flight is the one answered; a Hot
//! Rod answer's message id is checked against it. Anything unexpected (an error status, a wrong
//! id, a wrong answer type, a value of the wrong size, a closed connection, ten seconds without
//! an answer) stops the run with an error.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::hotrod::HotRodWire;
use crate::keys::{self, Rng};
use crate::resp::RespWire;
use crate::{FillArgs, LoadArgs};

/// Longest wait for any answer before the run is declared stuck.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Free space kept in the read buffer before each read.
const READ_RESERVE: usize = 16 * 1024;
/// Latencies are recorded in nanoseconds up to a minute, to three significant figures.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Reads that brought answers, over all connections: the watchdog's sign of life.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

/// Ends the process when no answer has arrived for [`ANSWER_TIMEOUT`] while it is armed: a
/// server that stopped answering must not hang the benchmark.
struct Watchdog(tokio::task::JoinHandle<()>);

impl Watchdog {
    fn arm() -> Watchdog {
        Watchdog(tokio::spawn(async {
            let mut last = PROGRESS.load(Ordering::Relaxed);
            let mut quiet = Duration::ZERO;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = PROGRESS.load(Ordering::Relaxed);
                quiet = if now == last {
                    quiet + Duration::from_secs(1)
                } else {
                    Duration::ZERO
                };
                last = now;
                if quiet >= ANSWER_TIMEOUT {
                    eprintln!("loadgen: error: no answer for {ANSWER_TIMEOUT:?}");
                    std::process::exit(1);
                }
            }
        }))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    HotRod,
    Resp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::HotRod => "hotrod",
            Protocol::Resp => "resp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Get,
    Put,
}

/// What an answer said, as far as the load generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A GET hit with a value of this many bytes.
    Value(usize),
    /// A GET miss.
    Miss,
    /// A write succeeded.
    Stored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The message id, for protocols that carry one.
    pub id: Option<u64>,
    pub outcome: Outcome,
}

/// One protocol's requests and answers. Errors in `reply` are protocol errors: fatal.
pub trait Wire: Send + 'static {
    fn get(&mut self, id: u64, key: &Bytes, out: &mut BytesMut) -> Result<()>;
    fn put(&mut self, id: u64, key: &Bytes, value: &Bytes, out: &mut BytesMut) -> Result<()>;
    /// Takes one whole answer from the front of `buf`, or `None` when it is not all there yet.
    fn reply(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>>;
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    kind: Kind,
    sent: Instant,
}

struct Conn<W> {
    stream: TcpStream,
    wire: W,
    rbuf: BytesMut,
    wbuf: BytesMut,
    in_flight: VecDeque<Pending>,
    next_id: u64,
}

impl<W: Wire> Conn<W> {
    async fn connect(addr: SocketAddr, wire: W) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            wire,
            rbuf: BytesMut::with_capacity(4 * READ_RESERVE),
            wbuf: BytesMut::with_capacity(4 * READ_RESERVE),
            in_flight: VecDeque::new(),
            next_id: 1,
        })
    }

    /// Keeps `pipeline` requests in flight, drawing them from `next` (given the time of the
    /// refill) until it returns `None`, then waits for the rest. `done` sees every answered
    /// request with the time its answer was read.
    async fn drive(
        &mut self,
        pipeline: usize,
        value: &Bytes,
        mut next: impl FnMut(Instant) -> Result<Option<(Kind, Bytes)>>,
        mut done: impl FnMut(&Pending, Instant, Outcome),
    ) -> Result<()> {
        let mut exhausted = false;
        loop {
            if !exhausted {
                let now = Instant::now();
                let mut added = 0;
                while self.in_flight.len() < pipeline {
                    let Some((kind, key)) = next(now)? else {
                        exhausted = true;
                        break;
                    };
                    let id = self.next_id;
                    self.next_id += 1;
                    match kind {
                        Kind::Get => self.wire.get(id, &key, &mut self.wbuf)?,
                        Kind::Put => self.wire.put(id, &key, value, &mut self.wbuf)?,
                    }
                    self.in_flight.push_back(Pending {
                        id,
                        kind,
                        sent: now,
                    });
                    added += 1;
                }
                if added > 0 {
                    // The clock starts when the batch is handed to the kernel.
                    let sent = Instant::now();
                    for p in self.in_flight.iter_mut().rev().take(added) {
                        p.sent = sent;
                    }
                    self.stream
                        .write_all(&self.wbuf)
                        .await
                        .context("write failed")?;
                    self.wbuf.clear();
                }
            }
            if self.in_flight.is_empty() {
                return Ok(());
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_RESERVE {
                self.rbuf.reserve(4 * READ_RESERVE);
            }
            // No timer per read (arming one cost as much as parsing the answers): a stuck run
            // is caught by the `Watchdog`.
            let n = self
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .context("read failed")?;
            PROGRESS.fetch_add(1, Ordering::Relaxed);
            if n == 0 {
                bail!(
                    "the server closed the connection with {} requests in flight",
                    self.in_flight.len()
                );
            }
            let now = Instant::now();
            while let Some(reply) = self.wire.reply(&mut self.rbuf)? {
                let p = self
                    .in_flight
                    .pop_front()
                    .context("an answer with no request in flight")?;
                if let Some(id) = reply.id {
                    if id != p.id {
                        bail!("answer to message {id} where {} was expected", p.id);
                    }
                }
                match (p.kind, reply.outcome) {
                    (Kind::Get, Outcome::Value(n)) if n != value.len() => {
                        bail!("GET returned {n} bytes, expected {}", value.len())
                    }
                    (Kind::Get, Outcome::Value(_) | Outcome::Miss)
                    | (Kind::Put, Outcome::Stored) => {}
                    (kind, outcome) => bail!("{kind:?} answered with {outcome:?}"),
                }
                done(&p, now, reply.outcome);
            }
        }
    }
}

/// What one connection measured.
struct Stats {
    latency_ns: Histogram<u64>,
    gets: u64,
    puts: u64,
    misses: u64,
}

impl Stats {
    fn new() -> Result<Stats> {
        Ok(Stats {
            latency_ns: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .context("cannot create the histogram")?,
            gets: 0,
            puts: 0,
            misses: 0,
        })
    }

    fn merge(&mut self, other: &Stats) -> Result<()> {
        self.latency_ns
            .add(&other.latency_ns)
            .context("cannot merge histograms")?;
        self.gets += other.gets;
        self.puts += other.puts;
        self.misses += other.misses;
        Ok(())
    }
}

async fn connect_all<W: Wire>(
    addr: SocketAddr,
    n: usize,
    mut wire: impl FnMut() -> W,
) -> Result<Vec<Conn<W>>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::connect(addr, wire()).await?);
    }
    Ok(conns)
}

/// Stores keys `first, first + step, …` below `count` on one connection.
async fn put_stripe<W: Wire>(
    conn: &mut Conn<W>,
    pipeline: usize,
    value: &Bytes,
    first: u64,
    step: u64,
    count: u64,
    key: impl Fn(u64) -> Result<Bytes>,
) -> Result<u64> {
    let mut i = first;
    let mut stored = 0u64;
    conn.drive(
        pipeline,
        value,
        |_| {
            if i >= count {
                return Ok(None);
            }
            let k = key(i)?;
            i += step;
            Ok(Some((Kind::Put, k)))
        },
        |_, _, _| stored += 1,
    )
    .await?;
    Ok(stored)
}

/// Joins every task, failing with the first error.
async fn join_all<T: 'static>(mut set: JoinSet<Result<T>>) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(set.len());
    while let Some(joined) = set.join_next().await {
        match joined.context("a connection task failed")? {
            Ok(v) => out.push(v),
            Err(e) => {
                set.abort_all();
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// `loadgen hotrod` and `loadgen resp`.
pub async fn load(protocol: Protocol, args: LoadArgs) -> Result<()> {
    match protocol {
        Protocol::HotRod => {
            let (version, cache) = (args.version, args.cache.clone());
            load_with(protocol, args, move || HotRodWire::new(version, &cache)).await
        }
        Protocol::Resp => load_with(protocol, args, RespWire::new).await,
    }
}

async fn load_with<W: Wire>(
    protocol: Protocol,
    args: LoadArgs,
    wire: impl FnMut() -> W,
) -> Result<()> {
    if args.connections == 0 || args.pipeline == 0 {
        bail!("--connections and --pipeline must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.get_ratio) {
        bail!("--get-ratio must be between 0 and 1");
    }
    let keys = Arc::new(keys::key_space(args.keys, args.key_size)?);
    let value = keys::value(args.value_size);
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| protocol.name().to_string());
    let conns = connect_all(args.addr, args.connections, wire).await?;
    let _watchdog = Watchdog::arm();

    // Preload every key, striped over the connections, so GETs hit.
    let preload_started = Instant::now();
    let mut set = JoinSet::new();
    let step = args.connections as u64;
    for (c, mut conn) in conns.into_iter().enumerate() {
        let (keys, value, pipeline, skip) = (
            keys.clone(),
            value.clone(),
            args.pipeline.max(16),
            args.no_preload,
        );
        set.spawn(async move {
            if !skip {
                let count = keys.len() as u64;
                put_stripe(&mut conn, pipeline, &value, c as u64, step, count, |i| {
                    keys.get(i as usize)
                        .cloned()
                        .context("key index out of range")
                })
                .await?;
            }
            Ok(conn)
        });
    }
    let conns = join_all(set).await?;
    let preload_time = preload_started.elapsed();

    // The mix: warm-up, then the measured window.
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let server_pid = args.server_pid;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let before = (
            cpu_ticks("self"),
            server_pid.and_then(|p| cpu_ticks(&p.to_string())),
        );
        tokio::time::sleep_until(end.into()).await;
        let after = (
            cpu_ticks("self"),
            server_pid.and_then(|p| cpu_ticks(&p.to_string())),
        );
        (before, after)
    });
    let mut set = JoinSet::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        let (keys, value, pipeline, get_ratio) =
            (keys.clone(), value.clone(), args.pipeline, args.get_ratio);
        set.spawn(async move {
            let mut rng = Rng::new(0x1D0_0000 + c as u64);
            let mut stats = Stats::new()?;
            let n = keys.len() as u64;
            conn.drive(
                pipeline,
                &value,
                |now| {
                    if now >= end {
                        return Ok(None);
                    }
                    let kind = if rng.unit() < get_ratio {
                        Kind::Get
                    } else {
                        Kind::Put
                    };
                    let key = keys
                        .get(rng.below(n) as usize)
                        .cloned()
                        .context("key index out of range")?;
                    Ok(Some((kind, key)))
                },
                |p, now, outcome| {
                    if now < measure_from || now > end {
                        return;
                    }
                    let ns = now.saturating_duration_since(p.sent).as_nanos();
                    stats
                        .latency_ns
                        .saturating_record(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
                    match p.kind {
                        Kind::Get => stats.gets += 1,
                        Kind::Put => stats.puts += 1,
                    }
                    if outcome == Outcome::Miss {
                        stats.misses += 1;
                    }
                },
            )
            .await?;
            Ok(stats)
        });
    }
    let mut total = Stats::new()?;
    for s in join_all(set).await? {
        total.merge(&s)?;
    }
    let window = end.saturating_duration_since(measure_from).as_secs_f64();
    let ((client0, server0), (client1, server1)) = cpu.await.context("the CPU sampler failed")?;
    let pct = |a: Option<u64>, b: Option<u64>| -> Option<f64> {
        let ticks = b?.checked_sub(a?)?;
        Some(ticks as f64 / CLOCK_TICKS_PER_S / window * 100.0)
    };
    let (client_cpu, server_cpu) = (pct(client0, client1), pct(server0, server1));
    let ops = total.gets + total.puts;
    if ops == 0 {
        bail!("no request completed in the measured window");
    }
    let ops_per_s = ops as f64 / window;
    let us = |q: f64| total.latency_ns.value_at_quantile(q) as f64 / 1000.0;
    let (p50, p99, p999) = (us(0.5), us(0.99), us(0.999));
    let max = total.latency_ns.max() as f64 / 1000.0;
    let mean = total.latency_ns.mean() / 1000.0;
    let workload = workload_name(args.get_ratio, args.value_size, args.pipeline);
    if total.misses > 0 {
        eprintln!(
            "loadgen: warning: {} of {} GETs missed after the preload",
            total.misses, total.gets
        );
    }
    if args.header {
        println!("| server | workload | conns | ops/s | p50 µs | p99 µs | p99.9 µs |");
        println!("|---|---|---:|---:|---:|---:|---:|");
    }
    println!(
        "| {label} | {workload} | {} | {ops_per_s:.0} | {p50:.1} | {p99:.1} | {p999:.1} |",
        args.connections
    );
    let json = serde_json::json!({
        "server": label,
        "protocol": protocol.name(),
        "workload": workload,
        "addr": args.addr.to_string(),
        "connections": args.connections,
        "pipeline": args.pipeline,
        "get_ratio": args.get_ratio,
        "keys": args.keys,
        "key_size": args.key_size,
        "value_size": args.value_size,
        "warmup_s": args.warmup.as_secs_f64(),
        "duration_s": window,
        "preload_s": preload_time.as_secs_f64(),
        "ops": ops,
        "gets": total.gets,
        "puts": total.puts,
        "misses": total.misses,
        "ops_per_s": ops_per_s,
        "p50_us": p50,
        "p99_us": p99,
        "p999_us": p999,
        "max_us": max,
        "mean_us": mean,
        "client_cpu_pct": client_cpu,
        "server_cpu_pct": server_cpu,
    });
    println!("{json}");
    Ok(())
}

/// `USER_HZ`: the unit of the CPU times in `/proc/PID/stat`, 100 on every Linux architecture
/// the project builds for.
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// User + system CPU time of a process (`self` or a pid) in clock ticks, all threads included.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: the state is
    // field 3 of the line, utime field 14, stime field 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `GET 100B p1`, `PUT 1KB p16`, `GET 50%/PUT 100B p16`.
pub fn workload_name(get_ratio: f64, value_size: usize, pipeline: usize) -> String {
    let op = if get_ratio >= 1.0 {
        "GET".to_string()
    } else if get_ratio <= 0.0 {
        "PUT".to_string()
    } else {
        format!("GET {:.0}%/PUT", get_ratio * 100.0)
    };
    let size = if value_size >= 1024 && value_size % 1024 == 0 {
        format!("{}KB", value_size / 1024)
    } else {
        format!("{value_size}B")
    };
    format!("{op} {size} p{pipeline}")
}

/// `loadgen fill`.
pub async fn fill(args: FillArgs) -> Result<()> {
    if args.connections == 0 || args.pipeline == 0 || args.count == 0 {
        bail!("--connections, --pipeline and --count must be at least 1");
    }
    // Fail before connecting if the largest key does not fit.
    keys::key(args.count - 1, args.key_size)?;
    match args.protocol.as_str() {
        "hotrod" => {
            let (version, cache) = (args.version, args.cache.clone());
            fill_with(args, move || HotRodWire::new(version, &cache)).await
        }
        "resp" => fill_with(args, RespWire::new).await,
        other => bail!("unknown protocol {other:?} (hotrod or resp)"),
    }
}

async fn fill_with<W: Wire>(args: FillArgs, wire: impl FnMut() -> W) -> Result<()> {
    let conns = connect_all(args.addr, args.connections, wire).await?;
    let _watchdog = Watchdog::arm();
    let value = keys::value(args.value_size);
    let started = Instant::now();
    let mut set = JoinSet::new();
    let step = args.connections as u64;
    for (c, mut conn) in conns.into_iter().enumerate() {
        let (value, pipeline, count, key_size) =
            (value.clone(), args.pipeline, args.count, args.key_size);
        set.spawn(async move {
            put_stripe(&mut conn, pipeline, &value, c as u64, step, count, |i| {
                keys::key(i, key_size)
            })
            .await
        });
    }
    let stored: u64 = join_all(set).await?.into_iter().sum();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "fill": stored,
            "key_size": args.key_size,
            "value_size": args.value_size,
            "seconds": secs,
            "ops_per_s": stored as f64 / secs,
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names() {
        assert_eq!(workload_name(1.0, 100, 1), "GET 100B p1");
        assert_eq!(workload_name(0.0, 1024, 16), "PUT 1KB p16");
        assert_eq!(workload_name(0.5, 100, 16), "GET 50%/PUT 100B p16");
    }
}
