//! One client connection: read, decode every complete request, answer, write the answers in
//! one batch, repeat.
//!
//! Requests on a connection are handled in arrival order, so the answers to a pipelined burst
//! go out together in one write. A request that cannot be parsed gets the protocol's error
//! frame and the connection is closed: Hot Rod frames carry no length, so nothing after it can
//! be trusted.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use ironrod_codec::{CodecError, Response, ServerCodec, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::errors::decode_error_text;
use crate::session::Session;
use crate::state::State;

/// Answers are written out once this much has accumulated, even mid-burst.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Free space kept in the read buffer before each read.
const READ_RESERVE: usize = 16 * 1024;

/// Serves one connection until the peer closes it, it fails, or `shutdown` fires (after the
/// requests already received are answered).
pub async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    serve_session(stream, Session::new(peer, local), state, shutdown).await;
}

/// [`serve`] with a session made by the caller (TLS fills in what the handshake learnt).
pub async fn serve_session<S>(
    mut stream: S,
    mut session: Session,
    state: Arc<State>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let peer = session.peer;
    let mut codec = ServerCodec::new(state.limits.clone());
    let mut rbuf = BytesMut::with_capacity(READ_RESERVE);
    let mut wbuf = BytesMut::with_capacity(READ_RESERVE);
    loop {
        let fatal = loop {
            match codec.decode(&mut rbuf) {
                Ok(Some(req)) => {
                    state.handle(req, &mut session, &mut wbuf);
                    if wbuf.len() >= WRITE_HIGH_WATER
                        && !flush(&mut stream, &mut wbuf, &state).await
                    {
                        return;
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if let Some(e) = fatal {
            refuse_and_close(stream, wbuf, e, peer, &state).await;
            return;
        }
        if let Some(delay) = session.auth_delay.take() {
            // A failed authentication: hold the answer (see `auth::FailureThrottle`).
            tokio::time::sleep(delay).await;
        }
        if !flush(&mut stream, &mut wbuf, &state).await {
            return;
        }
        if rbuf.capacity() - rbuf.len() < READ_RESERVE {
            rbuf.reserve(READ_RESERVE);
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            read = stream.read_buf(&mut rbuf) => match read {
                Ok(0) => {
                    if !rbuf.is_empty() {
                        debug!(%peer, pending = rbuf.len(), "peer closed the connection mid-request");
                    }
                    break;
                }
                Ok(n) => state.count_read(n),
                Err(e) => {
                    debug!(%peer, "read failed: {e}");
                    break;
                }
            },
        }
    }
    let _ = stream.shutdown().await;
}

/// Writes out what has accumulated; false when the peer is gone.
async fn flush<S: AsyncWrite + Unpin>(stream: &mut S, wbuf: &mut BytesMut, state: &State) -> bool {
    if wbuf.is_empty() {
        return true;
    }
    match stream.write_all(wbuf).await {
        Ok(()) => {
            state.count_written(wbuf.len());
            wbuf.clear();
            true
        }
        Err(e) => {
            debug!("write failed: {e}");
            false
        }
    }
}

/// Answers an unparseable request with its error frame (after the answers before it), then
/// closes the connection.
async fn refuse_and_close<S: AsyncWrite + Unpin>(
    mut stream: S,
    mut wbuf: BytesMut,
    e: CodecError,
    peer: SocketAddr,
    state: &State,
) {
    match &e {
        CodecError::Decode(d) => {
            warn!(%peer, "closing connection: {d}");
            let message_id = d.message_id().unwrap_or(0);
            let version = d.version().unwrap_or(Version::LATEST);
            Response::error(message_id, version, d.status(), decode_error_text(d))
                .encode(&mut wbuf);
        }
        other => warn!(%peer, "closing connection: {other}"),
    }
    if flush(&mut stream, &mut wbuf, state).await {
        let _ = stream.shutdown().await;
    }
}
