//! The byte streams under bridge links: plain TCP or mutual TLS, and the writer every thread
//! may send a link's frames through.
//!
//! A SYNC write's latency is mostly thread hand-offs, so the writer of a plain TCP link lets
//! the sender write the socket itself ([`LinkWriter::send`] tries a non-blocking write first)
//! and only falls back to the link's writer task when the socket is full or earlier bytes are
//! still queued (order is kept: the direct path is taken only while nothing is queued). A TLS
//! link always goes through its writer task (the TLS session is not shareable).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::tls::LinkIo;

/// A connected link stream.
pub enum LinkStream {
    Plain(TcpStream),
    Tls(Box<dyn LinkIo>),
}

/// The read side of a link.
pub type LinkReader = Box<dyn AsyncRead + Send + Unpin>;

/// Sends a link's bytes, in order, from any thread. Dropping it ends the writer task after it
/// wrote what was queued, which closes the write side.
pub struct LinkWriter {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    direct: Option<Arc<OwnedWriteHalf>>,
    /// Buffers handed to the writer task and not yet fully written.
    queued: Arc<AtomicUsize>,
}

impl LinkWriter {
    /// Writes `bytes` after everything sent before. Callers serialize their calls (the
    /// server's writer table is locked around them).
    pub fn send(&self, mut bytes: Vec<u8>) {
        if let Some(w) = &self.direct {
            if self.queued.load(Ordering::Acquire) == 0 {
                match w.try_write(&bytes) {
                    Ok(n) if n >= bytes.len() => return,
                    Ok(n) => {
                        bytes.drain(..n);
                    }
                    // WouldBlock, or an error the writer task meets too.
                    Err(_) => {}
                }
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(bytes).is_err() {
            // The writer task ended (the socket failed); the reader reports the close.
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Splits a stream into its writer (the writer task is spawned) and reader.
pub fn open(stream: LinkStream) -> (LinkWriter, LinkReader) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    match stream {
        LinkStream::Plain(s) => {
            let _ = s.set_nodelay(true);
            let (r, w) = s.into_split();
            let w = Arc::new(w);
            tokio::spawn(write_plain(w.clone(), rx, queued.clone()));
            let writer = LinkWriter {
                tx,
                direct: Some(w),
                queued,
            };
            (writer, Box::new(r))
        }
        LinkStream::Tls(s) => {
            let (r, w) = tokio::io::split(s);
            tokio::spawn(write_stream(w, rx, queued.clone()));
            let writer = LinkWriter {
                tx,
                direct: None,
                queued,
            };
            (writer, Box::new(r))
        }
    }
}

async fn write_plain(
    w: Arc<OwnedWriteHalf>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(bytes) = rx.recv().await {
        let mut rest: &[u8] = &bytes;
        while !rest.is_empty() {
            if w.writable().await.is_err() {
                return;
            }
            match w.try_write(rest) {
                Ok(0) => return,
                Ok(n) => rest = rest.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        queued.fetch_sub(1, Ordering::AcqRel);
    }
    // Every sender is gone: the last handle's drop shuts the write side down.
}

async fn write_stream<W: tokio::io::AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(bytes) = rx.recv().await {
        if w.write_all(&bytes).await.is_err() {
            return;
        }
        queued.fetch_sub(1, Ordering::AcqRel);
    }
    let _ = w.shutdown().await;
}
