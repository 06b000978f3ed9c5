//! Which protocol a new connection speaks, from its first byte.
//!
//! Infinispan serves Hot Rod, REST and more on one port and tells them apart by the first
//! bytes (`SinglePortChannelInitializer`, `HotRodDetector`). Ironrod does the same for the
//! protocols it speaks: a Hot Rod request starts with the magic byte `0xA0`, a TLS record with
//! the handshake content type `0x16`, and an HTTP/1.1 request line (or the HTTP/2 preface
//! `PRI * HTTP/2.0`) with an upper-case ASCII method name. Anything else is not ours; it is
//! handed to the Hot Rod side, whose decoder answers a bad magic byte with the protocol's error
//! frame, as the reference server does.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::session::Session;
use crate::state::State;
use crate::tls::TlsMode;
use crate::{connection, http};

/// Waits for the client's first byte, then serves the connection with the protocol it
/// speaks: TLS first when it opens with a handshake (then the protocol inside is told apart the
/// same way), Hot Rod or HTTP otherwise. Cleartext bytes are only peeked, so each protocol
/// reads the stream from its start; decrypted ones are replayed through [`Prefixed`].
pub async fn serve_socket(
    socket: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    state: Arc<State>,
    stop: CancellationToken,
) {
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        _ = stop.cancelled() => return,
        peeked = socket.peek(&mut first) => peeked,
    };
    match peeked {
        Ok(0) => return,
        Ok(_) => {}
        Err(e) => {
            debug!(%peer, "connection failed before its first byte: {e}");
            return;
        }
    }
    let [byte] = first;
    let protocol = Protocol::classify(byte);
    let session = Session::new(peer, local);
    match (protocol, state.tls.clone()) {
        (Protocol::Tls, None) => warn!(%peer, "closing a TLS connection: TLS is not configured"),
        (Protocol::Tls, Some(tls)) => {
            let Some((mut stream, transport)) = tls.handshake(socket, peer).await else {
                return;
            };
            let mut first = [0u8; 1];
            let read = tokio::select! {
                _ = stop.cancelled() => return,
                read = stream.read(&mut first) => read,
            };
            match read {
                Ok(1) => {}
                Ok(_) => return,
                Err(e) => {
                    debug!(%peer, "TLS connection failed before its first byte: {e}");
                    return;
                }
            }
            let [byte] = first;
            let stream = Prefixed::new(Bytes::copy_from_slice(&first), stream);
            let mut session = session;
            session.transport = transport;
            serve_cleartext(Protocol::classify(byte), stream, session, state, stop).await;
        }
        (_, Some(tls)) if tls.mode() == TlsMode::Required => {
            warn!(%peer, "closing connection: TLS is required and the client spoke cleartext");
        }
        (protocol, _) => serve_cleartext(protocol, socket, session, state, stop).await,
    }
}

/// Serves Hot Rod or HTTP on a stream that is cleartext (or already decrypted).
async fn serve_cleartext<S>(
    protocol: Protocol,
    stream: S,
    session: Session,
    state: Arc<State>,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = session.peer;
    match protocol {
        Protocol::Http if state.config.http.enabled => {
            http::serve(stream, session, state, stop).await
        }
        Protocol::Http => debug!(%peer, "closing an HTTP connection: http.enabled is false"),
        Protocol::Tls => warn!(%peer, "closing connection: a TLS handshake inside TLS"),
        Protocol::HotRod => connection::serve_session(stream, session, state, stop).await,
    }
}

/// The protocol a connection opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    HotRod,
    Http,
    Tls,
}

impl Protocol {
    /// Classifies a connection by the first byte the client sent.
    pub fn classify(first: u8) -> Protocol {
        match first {
            0x16 => Protocol::Tls,
            // GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT, and the HTTP/2
            // client preface "PRI * HTTP/2.0".
            b'A'..=b'Z' => Protocol::Http,
            _ => Protocol::HotRod,
        }
    }
}

/// A stream whose first bytes were already read (to tell the protocol apart on a TLS stream,
/// which cannot be peeked): reads return those bytes first, then the stream's.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: bytes::Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: bytes::Bytes, inner: S) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefixed_stream_replays_the_prefix_then_the_rest() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"llo").await.unwrap_or_default();
        drop(a);
        let mut p = Prefixed::new(bytes::Bytes::from_static(b"he"), b);
        let mut out = String::new();
        p.read_to_string(&mut out).await.unwrap_or_default();
        assert_eq!(out, "hello");
    }

    #[test]
    fn hot_rod_magic_is_hot_rod() {
        assert_eq!(Protocol::classify(0xA0), Protocol::HotRod);
    }

    #[test]
    fn methods_and_the_http2_preface_are_http() {
        for line in [
            "GET /",
            "POST /",
            "PUT /",
            "DELETE /",
            "HEAD /",
            "OPTIONS *",
            "PRI *",
        ] {
            assert_eq!(
                Protocol::classify(line.as_bytes()[0]),
                Protocol::Http,
                "{line}"
            );
        }
    }

    #[test]
    fn tls_handshake_is_tls() {
        assert_eq!(Protocol::classify(0x16), Protocol::Tls);
    }

    #[test]
    fn anything_else_goes_to_hot_rod_for_its_error_frame() {
        assert_eq!(Protocol::classify(0x00), Protocol::HotRod);
        assert_eq!(Protocol::classify(b'g'), Protocol::HotRod);
        assert_eq!(Protocol::classify(0xA1), Protocol::HotRod);
    }
}
