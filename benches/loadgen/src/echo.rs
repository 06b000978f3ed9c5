//! The echo responder: the loopback bound for a Hot Rod server.
//!
//! It handles connections the way `ironrod` does (one task per connection; read, decode every
//! complete request with `ServerCodec::decode_shared` from the frozen read, append each answer,
//! write them in one batch) but does no work per request beyond decoding: a GET is answered with
//! the same fixed value every time, a PUT (and anything else) with a bare success, each under the
//! request's message id and version.

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use ironrod_codec::{
    Limits, Op, OpCode, Request, Response, ResponseBody, ServerCodec, Status, Version,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::keys;
use crate::EchoArgs;

/// As in `ironrod`: answers go out once this much has accumulated, even mid-burst.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// As in `ironrod`: free space kept in the read buffer before each read.
const READ_RESERVE: usize = 16 * 1024;

pub async fn serve(args: EchoArgs) -> Result<()> {
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let value = keys::value(args.value_size);
    eprintln!(
        "loadgen echo: answering Hot Rod on {} (GET values of {} bytes)",
        listener.local_addr().unwrap_or(args.bind),
        args.value_size
    );
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("loadgen echo: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let value = value.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(socket, value).await {
                eprintln!("loadgen echo: {peer}: {e:#}");
            }
        });
    }
}

/// The canned answer to `req`.
fn answer(req: &Request, value: &Bytes) -> Response {
    let (id, version) = (req.header.message_id, req.header.version);
    match &req.op {
        Op::Get { .. } => Response {
            message_id: id,
            version,
            opcode: OpCode::GET_RESPONSE,
            status: Status::SUCCESS,
            topology: None,
            body: ResponseBody::Value(value.clone()),
        },
        other => Response::status_only(id, version, other.opcode(), Status::SUCCESS),
    }
}

async fn connection(mut stream: TcpStream, value: Bytes) -> Result<()> {
    let mut codec = ServerCodec::new(Limits::DEFAULT);
    let mut rbuf = BytesMut::with_capacity(READ_RESERVE);
    let mut wbuf = BytesMut::with_capacity(READ_RESERVE);
    loop {
        // As `ironrod` does: decode from the frozen read, keys and values sliced from it.
        let mut chunk = if codec.ready(rbuf.len()) {
            rbuf.split().freeze()
        } else {
            Bytes::new()
        };
        loop {
            match codec.decode_shared(&mut chunk, |_| true) {
                Ok(Some(req)) => {
                    answer(&req, &value).encode(&mut wbuf);
                    if wbuf.len() >= WRITE_HIGH_WATER {
                        stream.write_all(&wbuf).await?;
                        wbuf.clear();
                    }
                }
                Ok(None) => {
                    if !chunk.is_empty() {
                        rbuf.extend_from_slice(&chunk);
                    }
                    break;
                }
                Err(e) => {
                    // As the server does: answer the unparseable frame with an error, then close.
                    if let ironrod_codec::CodecError::Decode(d) = &e {
                        Response::error(
                            d.message_id().unwrap_or(0),
                            d.version().unwrap_or(Version::LATEST),
                            d.status(),
                            d.to_string(),
                        )
                        .encode(&mut wbuf);
                        let _ = stream.write_all(&wbuf).await;
                    }
                    return Err(e).context("undecodable request");
                }
            }
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
        if rbuf.capacity() - rbuf.len() < READ_RESERVE {
            rbuf.reserve(READ_RESERVE);
        }
        if stream.read_buf(&mut rbuf).await? == 0 {
            return Ok(());
        }
    }
}
