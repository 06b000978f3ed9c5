//! One client connection: read, decode every complete request, answer, write the answers in
//! one batch, repeat; and write the events of the connection's client listeners as they come.
//!
//! Requests on a connection are handled in arrival order, so the answers to a pipelined burst
//! go out together in one write. A request that cannot be parsed gets the protocol's error
//! frame and the connection is closed: Hot Rod frames carry no length, so nothing after it can
//! be trusted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ironrod_codec::{CodecError, OpCode, Response, ServerCodec, Version};
use ironrod_events::{ConnectionId, Registry};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::errors::decode_error_text;
use crate::handler::listeners::{encode_events, is_write, ConnectionSignal};
use crate::session::Session;
use crate::state::State;

/// Answers are written out once this much has accumulated, even mid-burst.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Free space kept in the read buffer before each read.
const READ_RESERVE: usize = 16 * 1024;

/// Events taken from the registries per drain call.
const DRAIN_BATCH: usize = 256;
/// How often a writer held back by a congested listener re-checks on its own (a safety net; it
/// is normally woken by the registry).
const HOLD_RECHECK: Duration = Duration::from_millis(100);
/// The longest a response is held for a congested listener. Past it the write is answered
/// anyway, so that a listener that stopped reading cannot stall a lone writer forever; its queue
/// then keeps growing to the maximum, where its connection is closed
/// (`protocol-spec/compatibility.md` C20).
const MAX_HOLD: Duration = Duration::from_secs(1);

/// Serves one connection until the peer closes it, it fails, `shutdown` fires (after the
/// requests already received are answered), or a listener of it overflowed.
///
/// Besides answering requests the task writes the event frames of the client listeners
/// registered on this connection (`protocol-spec/events.md`): it wakes when the registries
/// queue events for it, also while the client is idle, and only ever writes whole frames.
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
    let (id, signal) = state.listeners.connect();
    let _listeners = Disconnect {
        state: state.clone(),
        id,
    };
    let mut codec = ServerCodec::new(state.limits.clone());
    session.connection = id.0;
    let mut io = Io {
        wbuf: BytesMut::with_capacity(READ_RESERVE),
        id,
        signal,
    };
    let mut rbuf = BytesMut::with_capacity(READ_RESERVE);
    // Made once and kept pinned: re-created each time round, registering and unregistering a
    // waiter with the token cost more per unpipelined request than decoding it.
    let shutdown_wait = shutdown.cancelled();
    tokio::pin!(shutdown_wait);
    loop {
        // The requests' keys and values are slices of what was read (no copy per field); the
        // handlers copy what they keep beyond the request. Bytes of a frame still arriving are
        // put back into `rbuf`, and only once the codec says the frame may be complete is the
        // buffer handed over again.
        let mut chunk = if codec.ready(rbuf.len()) {
            rbuf.split().freeze()
        } else {
            Bytes::new()
        };
        let fatal = loop {
            match codec.decode_shared(&mut chunk, shares_request_bytes) {
                Ok(Some(req)) => {
                    let held = is_write(req.op.opcode())
                        .then(|| state.listened_registry(&req.header))
                        .flatten();
                    let mut mark = io.wbuf.len();
                    state.handle(req, &mut session, &mut io.wbuf);
                    if held.is_some() && io.signal.has_listeners() {
                        // The reference queues a write's events before answering it, so on the
                        // listener's own connection they precede the response.
                        let response = io.wbuf.split_off(mark);
                        mark = io.own_events_before(&state, response);
                    }
                    if let Some(registry) = held {
                        if registry.is_congested()
                            && !io.hold(&mut stream, &state, &registry, mark).await
                        {
                            return;
                        }
                    }
                    if io.wbuf.len() >= WRITE_HIGH_WATER && !io.flush(&mut stream, &state).await {
                        return;
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if !chunk.is_empty() {
            rbuf.extend_from_slice(&chunk);
        }
        drop(chunk);
        if let Some(e) = fatal {
            refuse_and_close(stream, io.wbuf, e, peer, &state).await;
            return;
        }
        if let Some(delay) = session.auth_delay.take() {
            // A failed authentication: hold the answer (see `auth::FailureThrottle`).
            tokio::time::sleep(delay).await;
        }
        if !io.flush(&mut stream, &state).await {
            return;
        }
        if rbuf.capacity() - rbuf.len() < READ_RESERVE {
            rbuf.reserve(READ_RESERVE);
        }
        // Events and the overflow close only concern connections that registered a listener;
        // the others skip waiting on them. (These two stay per-iteration: a waiter kept
        // registered here would take the wake-ups meant for `Io::hold`.)
        let listening = io.signal.has_listeners();
        tokio::select! {
            biased;
            _ = &mut shutdown_wait => break,
            _ = io.signal.close.cancelled(), if listening => {
                debug!(%peer, "closing connection: a client listener's event queue overflowed");
                break;
            }
            _ = io.signal.wake.notified(), if listening => {
                if !io.write_events(&mut stream, &state).await {
                    return;
                }
            }
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

/// The operations decoded without copying their keys and values: the key/value operations,
/// whose handlers pass the bytes to the engine (which copies what it stores) and keep nothing.
/// Transactions, streams, listeners and iterations keep parts of their request, so theirs are
/// copied, lest a kept slice hold a whole read buffer.
pub fn shares_request_bytes(op: OpCode) -> bool {
    matches!(
        op,
        OpCode::GET
            | OpCode::PUT
            | OpCode::PUT_IF_ABSENT
            | OpCode::REPLACE
            | OpCode::REPLACE_IF_UNMODIFIED
            | OpCode::REMOVE
            | OpCode::REMOVE_IF_UNMODIFIED
            | OpCode::CONTAINS_KEY
            | OpCode::GET_WITH_VERSION
            | OpCode::GET_WITH_METADATA
            | OpCode::PUT_ALL
            | OpCode::GET_ALL
    )
}

/// Drops the connection's listeners however the task ends.
struct Disconnect {
    state: Arc<State>,
    id: ConnectionId,
}

impl Drop for Disconnect {
    fn drop(&mut self) {
        self.state.listeners.disconnect(self.id);
    }
}

/// The write side of a connection: its buffer and its listener signal.
struct Io {
    wbuf: BytesMut,
    id: ConnectionId,
    signal: Arc<ConnectionSignal>,
}

impl Io {
    /// Writes out what has accumulated; false when the peer is gone or the connection must
    /// close because one of its listeners overflowed (a client that does not read must not
    /// keep the task stuck in a write).
    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S, state: &State) -> bool {
        if !self.signal.has_listeners() {
            // Only a listener's overflow closes a connection from the inside.
            return flush(stream, &mut self.wbuf, state).await;
        }
        let close = self.signal.close.clone();
        tokio::select! {
            ok = flush(stream, &mut self.wbuf, state) => ok,
            _ = close.cancelled() => false,
        }
    }

    /// Puts the connection's queued events before `response`, which was just split off the
    /// end of the buffer; returns where the response now starts.
    fn own_events_before(&mut self, state: &State, response: BytesMut) -> usize {
        loop {
            let records = state.listeners.drain(self.id, DRAIN_BATCH);
            if records.is_empty() {
                break;
            }
            encode_events(&records, &mut self.wbuf);
        }
        let mark = self.wbuf.len();
        self.wbuf.unsplit(response);
        mark
    }

    /// Writes every queued event of this connection; false when the connection must end.
    async fn write_events<S: AsyncWrite + Unpin>(&mut self, stream: &mut S, state: &State) -> bool {
        loop {
            let records = state.listeners.drain(self.id, DRAIN_BATCH);
            if records.is_empty() {
                return self.flush(stream, state).await;
            }
            encode_events(&records, &mut self.wbuf);
            if self.wbuf.len() >= WRITE_HIGH_WATER && !self.flush(stream, state).await {
                return false;
            }
        }
    }

    /// Holds the response that starts at `mark` while `registry` is congested (the reference
    /// makes the write wait for its listeners), writing what came before it and this
    /// connection's own events meanwhile. Awaits, never blocks a worker thread. False when the
    /// connection must end.
    async fn hold<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        state: &State,
        registry: &Registry,
        mark: usize,
    ) -> bool {
        let response = self.wbuf.split_off(mark);
        let deadline = tokio::time::Instant::now() + MAX_HOLD;
        while tokio::time::Instant::now() < deadline {
            let cleared = state.listeners.cleared();
            tokio::pin!(cleared);
            cleared.as_mut().enable();
            if !registry.is_congested() {
                break;
            }
            if !self.write_events(stream, state).await {
                return false;
            }
            tokio::select! {
                _ = &mut cleared => {}
                _ = self.signal.wake.notified() => {}
                _ = self.signal.close.cancelled() => return false,
                _ = tokio::time::sleep(HOLD_RECHECK.min(deadline.saturating_duration_since(tokio::time::Instant::now()))) => {}
            }
        }
        self.wbuf.unsplit(response);
        true
    }
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
