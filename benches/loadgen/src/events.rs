//! `loadgen events`: client-listener throughput and delivery latency.
//!
//! `--listeners` connections each register one plain listener on the cache; `--writers`
//! connections keep `--pipeline` PUTs in flight. Every key starts with the nanoseconds since the
//! run started at which its PUT was sent, so a listener computes each event's delivery latency
//! (PUT sent → event decoded) on its own clock. Events delivered per second are counted over all
//! listeners in the measured window. The server's back-pressure (writers held while a listener is
//! congested) is part of what is measured: writers only go as fast as listeners keep up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use hdrhistogram::Histogram;
use ironrod_codec::{
    ClientCodec, EventPayload, Expiration, Limits, ListenerRegistration, Op, Request,
    RequestHeader, ServerMessage, Status, Version,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

use crate::EventsArgs;

const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// What one listener measured.
struct Heard {
    events: u64,
    latency_ns: Histogram<u64>,
}

pub async fn run(args: EventsArgs) -> Result<()> {
    let start = Instant::now();
    let mut listeners = Vec::new();
    for i in 0..args.listeners {
        let (stream, codec, buf) = listen(&args, i).await?;
        listeners.push((stream, codec, buf));
    }
    let window_start = args.warmup.as_nanos() as u64;
    let window_end = (args.warmup + args.duration).as_nanos() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let puts = Arc::new(AtomicU64::new(0));
    let mut heard = Vec::new();
    for (stream, codec, buf) in listeners {
        let stop = stop.clone();
        heard.push(tokio::spawn(hear(
            stream,
            codec,
            buf,
            start,
            window_start,
            window_end,
            stop,
        )));
    }
    let mut writers = Vec::new();
    for w in 0..args.writers {
        let stream = TcpStream::connect(args.addr)
            .await
            .with_context(|| format!("writer {w} cannot connect"))?;
        let _ = stream.set_nodelay(true);
        writers.push(tokio::spawn(write(
            stream,
            args.clone(),
            w as u64,
            start,
            window_start,
            window_end,
            puts.clone(),
        )));
    }
    for w in writers {
        w.await.context("writer task")??;
    }
    // Let the queues drain, then stop listening.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    let mut events = 0;
    let mut latency = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_NS, 3)?;
    for h in heard {
        let h = h.await.context("listener task")??;
        events += h.events;
        latency.add(&h.latency_ns)?;
    }
    let secs = args.duration.as_secs_f64();
    let us = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let puts = puts.load(Ordering::Acquire);
    if args.header {
        println!("| listeners | writers × pipeline | puts/s | events/s | p50 µs | p99 µs |");
        println!("|---:|---|---:|---:|---:|---:|");
    }
    println!(
        "| {} | {} × {} | {:.0} | {:.0} | {:.1} | {:.1} |",
        args.listeners,
        args.writers,
        args.pipeline,
        puts as f64 / secs,
        events as f64 / secs,
        us(0.5),
        us(0.99)
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "events",
            "listeners": args.listeners,
            "writers": args.writers,
            "pipeline": args.pipeline,
            "puts_per_s": puts as f64 / secs,
            "events_per_s": events as f64 / secs,
            "p50_us": us(0.5),
            "p99_us": us(0.99),
        })
    );
    Ok(())
}

/// Connects and registers listener `i`; returns the connection once the listener is live.
async fn listen(args: &EventsArgs, i: usize) -> Result<(TcpStream, ClientCodec, BytesMut)> {
    let mut stream = TcpStream::connect(args.addr)
        .await
        .with_context(|| format!("listener {i} cannot connect"))?;
    let _ = stream.set_nodelay(true);
    let mut codec = ClientCodec::new(Limits::DEFAULT);
    let req = Request {
        header: RequestHeader::new(1, args.version, args.cache.as_str()),
        op: Op::AddClientListener(Box::new(ListenerRegistration {
            listener_id: Bytes::from(format!("bench-listener-{i}")),
            include_current_state: false,
            filter: None,
            converter: None,
            raw_data: false,
            interests: 0,
        })),
    };
    let mut out = BytesMut::new();
    Encoder::<&Request>::encode(&mut codec, &req, &mut out)?;
    stream.write_all(&out).await?;
    let mut buf = BytesMut::new();
    loop {
        if let Some(msg) = codec.decode(&mut buf)? {
            match msg {
                ServerMessage::Response(r) if r.status == Status::SUCCESS => break,
                ServerMessage::Response(r) => bail!("listener {i} refused: {:?}", r.body),
                _ => {}
            }
            continue;
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("listener {i}: server closed the connection");
        }
    }
    Ok((stream, codec, buf))
}

async fn hear(
    mut stream: TcpStream,
    mut codec: ClientCodec,
    mut buf: BytesMut,
    start: Instant,
    window_start: u64,
    window_end: u64,
    stop: Arc<AtomicBool>,
) -> Result<Heard> {
    let mut heard = Heard {
        events: 0,
        latency_ns: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)?,
    };
    loop {
        while let Some(msg) = codec.decode(&mut buf)? {
            let ServerMessage::Event(e) = msg else {
                continue;
            };
            let EventPayload::Plain { key, .. } = e.payload else {
                continue;
            };
            let Some(mut stamp) = key.get(..8) else {
                continue;
            };
            let sent = stamp.get_u64();
            if sent >= window_start && sent < window_end {
                let now = start.elapsed().as_nanos() as u64;
                heard.events += 1;
                heard
                    .latency_ns
                    .saturating_record(now.saturating_sub(sent).max(1));
            }
        }
        if stop.load(Ordering::Acquire) {
            return Ok(heard);
        }
        match tokio::time::timeout(Duration::from_millis(100), stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) => bail!("a listener's connection was closed by the server"),
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}

/// Keeps `pipeline` PUTs in flight until the window ends; counts those sent in the window.
async fn write(
    mut stream: TcpStream,
    args: EventsArgs,
    writer: u64,
    start: Instant,
    window_start: u64,
    window_end: u64,
    puts: Arc<AtomicU64>,
) -> Result<()> {
    let mut codec = ClientCodec::new(Limits::DEFAULT);
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let expiration = if args.version < Version::V2_2 {
        Expiration::Seconds {
            lifespan: 0,
            max_idle: 0,
        }
    } else {
        Expiration::DEFAULT
    };
    let mut out = BytesMut::new();
    let mut buf = BytesMut::new();
    let mut seq = 0u64;
    let mut in_flight = 0usize;
    let mut counted = 0u64;
    loop {
        let now = start.elapsed().as_nanos() as u64;
        let sending = now < window_end;
        while sending && in_flight < args.pipeline {
            seq += 1;
            let sent = start.elapsed().as_nanos() as u64;
            let mut key = Vec::with_capacity(24);
            key.extend_from_slice(&sent.to_be_bytes());
            key.extend_from_slice(&writer.to_be_bytes());
            key.extend_from_slice(&(seq % 10_000).to_be_bytes());
            let req = Request {
                header: RequestHeader::new(seq, args.version, args.cache.as_str()),
                op: Op::Put {
                    key: Bytes::from(key),
                    expiration,
                    value: value.clone(),
                },
            };
            Encoder::<&Request>::encode(&mut codec, &req, &mut out)?;
            in_flight += 1;
            if sent >= window_start {
                counted += 1;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if in_flight == 0 {
            break;
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("writer {writer}: server closed the connection");
        }
        while let Some(msg) = codec.decode(&mut buf)? {
            if let ServerMessage::Response(r) = msg {
                if r.status.is_error() {
                    bail!("writer {writer}: PUT failed: {:?}", r.body);
                }
                in_flight -= 1;
            }
        }
    }
    puts.fetch_add(counted, Ordering::AcqRel);
    Ok(())
}
