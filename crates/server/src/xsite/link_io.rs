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

/// A link whose reader is not started yet.
pub struct Opened {
    reader: LinkReader,
    /// A plain link's own runtime (see [`open`]); `None`: the shared runtime.
    own: Option<(tokio::runtime::Runtime, tokio::task::JoinHandle<()>)>,
}

/// A reader loop over a link's read side.
pub type ReaderLoop = Box<dyn FnOnce(LinkReader) -> BoxFuture + Send>;
type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Splits a stream into its writer (the writer task is spawned) and its not yet started reader.
///
/// A plain TCP link gets a thread of its own running a current-thread runtime: a frame arriving
/// wakes that thread, which feeds the bridge and answers at once, instead of waking a worker of
/// the shared runtime that then schedules the reader (the hops a SYNC write pays for twice, once
/// on each site). A TLS link stays on the shared runtime.
/// `None` when the socket could not be moved (it is closed then).
pub fn open(stream: LinkStream) -> Option<(LinkWriter, Opened)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    Some(match stream {
        LinkStream::Plain(s) => {
            let _ = s.set_nodelay(true);
            let (s, rt) = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let std = s.into_std().ok()?;
                    let moved = {
                        let _enter = rt.enter();
                        TcpStream::from_std(std).ok()?
                    };
                    (moved, Some(rt))
                }
                Err(_) => (s, None),
            };
            let (r, w) = s.into_split();
            let w = Arc::new(w);
            let task = write_plain(w.clone(), rx, queued.clone());
            let own = match rt {
                Some(rt) => {
                    let h = rt.spawn(task);
                    Some((rt, h))
                }
                None => {
                    tokio::spawn(task);
                    None
                }
            };
            let writer = LinkWriter {
                tx,
                direct: Some(w),
                queued,
            };
            let reader: LinkReader = Box::new(r);
            (writer, Opened { reader, own })
        }
        LinkStream::Tls(s) => {
            let (r, w) = tokio::io::split(s);
            tokio::spawn(write_stream(w, rx, queued.clone()));
            let writer = LinkWriter {
                tx,
                direct: None,
                queued,
            };
            let reader: LinkReader = Box::new(r);
            (writer, Opened { reader, own: None })
        }
    })
}

/// Starts the reader loop; returns its abort handle.
pub fn start(opened: Opened, run: ReaderLoop) -> std::io::Result<tokio::task::AbortHandle> {
    match opened.own {
        None => Ok(tokio::spawn(run(opened.reader)).abort_handle()),
        Some((rt, writer)) => {
            let reader = rt.spawn(run(opened.reader));
            let abort = reader.abort_handle();
            std::thread::Builder::new()
                .name("ironrod-bridge-link".into())
                .spawn(move || {
                    rt.block_on(async {
                        let _ = reader.await;
                        // Closed: the writer ends once its sender is dropped (after writing
                        // what was queued).
                        let _ = writer.await;
                    });
                })?;
            Ok(abort)
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
