//! `loadgen conflict`: the latency of a lock-conflict answer. One connection prepares a
//! two-phase remote transaction (PREPARE_TX_2) on a key of a transactional cache and so holds
//! its lock; a second connection then sends unpipelined PUTs to that key, each of which must be
//! answered at once with the server-error status and Infinispan's `ISPN000299` text. Prints the
//! answer latency (p50/p99/p99.9/max, µs, HDR histogram) as a Markdown row and a JSON line; the
//! transaction is rolled back at the end.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use ironrod_codec::{
    ClientCodec, Expiration, Limits, Modification, Op, Request, RequestHeader, Response,
    ResponseBody, ServerMessage, Status, Version, Xid,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

use crate::ConflictArgs;

/// A connection that sends one request and waits for its answer.
struct Conn {
    stream: TcpStream,
    codec: ClientCodec,
    buf: BytesMut,
    out: BytesMut,
    next_id: u64,
    version: Version,
    cache: String,
}

impl Conn {
    async fn connect(addr: SocketAddr, version: Version, cache: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            codec: ClientCodec::new(Limits::DEFAULT),
            buf: BytesMut::new(),
            out: BytesMut::new(),
            next_id: 1,
            version,
            cache: cache.to_owned(),
        })
    }

    async fn call(&mut self, op: Op) -> Result<Response> {
        let req = Request {
            header: RequestHeader::new(self.next_id, self.version, self.cache.as_str()),
            op,
        };
        self.next_id += 1;
        self.out.clear();
        Encoder::<&Request>::encode(&mut self.codec, &req, &mut self.out)?;
        self.stream.write_all(&self.out).await?;
        loop {
            if let Some(msg) = self.codec.decode(&mut self.buf)? {
                return match msg {
                    ServerMessage::Response(r) => Ok(r),
                    other => bail!("unexpected message {other:?}"),
                };
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("the server closed the connection");
            }
        }
    }
}

pub async fn run(args: ConflictArgs) -> Result<()> {
    let key = Bytes::from_static(b"loadgen-conflict-key");
    let xid = Xid {
        format_id: 0x4852_5458,
        // Unique per run: the server remembers finished XIDs until FORGET_TX.
        global_id: Bytes::from(format!(
            "loadgen-conflict-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        )),
        branch_qualifier: Bytes::from_static(b"1"),
    };
    let mut holder = Conn::connect(args.addr, args.version, &args.cache).await?;
    let prepared = holder
        .call(Op::PrepareTx2 {
            xid: xid.clone(),
            one_phase: false,
            recoverable: false,
            timeout_ms: 600_000,
            modifications: vec![Modification {
                key: key.clone(),
                control: Modification::NOT_READ,
                version_read: None,
                write: Some((Expiration::DEFAULT, Bytes::from_static(b"held"))),
            }],
        })
        .await?;
    if prepared.body != ResponseBody::XaCode(0) {
        bail!(
            "PREPARE_TX_2 on cache {:?} was not XA_OK: {prepared:?} (is the cache transactional?)",
            args.cache
        );
    }
    let mut writer = Conn::connect(args.addr, args.version, &args.cache).await?;
    let mut hist = Histogram::<u64>::new(3)?;
    let total = args.warmup + args.count;
    for i in 0..total {
        let started = Instant::now();
        let r = writer
            .call(Op::Put {
                key: key.clone(),
                expiration: Expiration::DEFAULT,
                value: Bytes::from_static(b"intruder"),
            })
            .await?;
        let took = started.elapsed();
        match &r.body {
            ResponseBody::Error(text)
                if r.status == Status::SERVER_ERROR && text.contains("ISPN000299") => {}
            _ => bail!("expected an ISPN000299 conflict answer, got {r:?}"),
        }
        if i >= args.warmup {
            hist.record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX))?;
        }
    }
    let rolled_back = holder.call(Op::RollbackTx { xid }).await?;
    if rolled_back.body != ResponseBody::XaCode(0) {
        bail!("ROLLBACK_TX was not XA_OK: {rolled_back:?}");
    }
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!("| workload | answers | p50 µs | p99 µs | p99.9 µs | max µs |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| conflict answer ({}) | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        args.cache,
        hist.len(),
        us(0.5),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    println!(
        "{{\"workload\":\"conflict\",\"cache\":\"{}\",\"answers\":{},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1}}}",
        args.cache,
        hist.len(),
        us(0.5),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}
