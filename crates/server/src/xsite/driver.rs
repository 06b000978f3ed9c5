//! The task that owns the bridge's listener and timers: it accepts links on the bridge port
//! (through mutual TLS when configured), dials on [`Event::Connect`], sleeps until the bridge's
//! next timeout, and carries out the events only it handles (dials, closes, state-push reads,
//! logs).
//!
//! The SYNC path does not pass through it: each link's reader task feeds received bytes to the
//! bridge and drains it itself ([`Xsite::flush`]): it writes the answers straight to the links,
//! applies received changes inline and wakes waiting writes; a write's prepare hook writes its
//! frame straight to the link the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironrod_engine::Iteration;
use ironrod_xsite::{ConnId, Event};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::link_io::{self, LinkReader, LinkStream};
use super::{apply, Xsite};
use crate::state::State;

/// What socket tasks tell the driver.
enum Io {
    /// A dialled connection is established (and its TLS handshake done).
    Connected(ConnId, LinkStream),
    /// A connection accepted on the listener (after its TLS handshake).
    Accepted(LinkStream),
    Closed(ConnId),
}

/// Per-connection reader tasks and push iterations.
struct Driver {
    xs: Arc<Xsite>,
    state: Arc<State>,
    io_tx: mpsc::UnboundedSender<Io>,
    /// Per connection the reader task (aborted on close, so a peer that never answers does not
    /// keep the socket open); the writers live in [`Xsite`].
    readers: HashMap<ConnId, tokio::task::AbortHandle>,
    /// Push iterations by (cache, site): token and engine cursor.
    pushes: HashMap<(String, String), (u64, Iteration)>,
    next_token: u64,
}

/// Binds the bridge port and spawns the driver, which runs until `stop` fires.
pub async fn spawn(
    xs: Arc<Xsite>,
    state: Arc<State>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listen = xs.bridge.lock().config().listen.clone();
    let listener = TcpListener::bind(&listen).await?;
    info!(
        site = %xs.site(),
        tls = xs.tls.is_some(),
        "site bridge listening on {}",
        listener.local_addr().map_or(listen, |a| a.to_string())
    );
    tokio::spawn(run(xs, state, listener, stop));
    Ok(())
}

async fn run(xs: Arc<Xsite>, state: Arc<State>, listener: TcpListener, stop: CancellationToken) {
    let (io_tx, mut io_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let _ = xs.driver_tx.set(ev_tx);
    let mut d = Driver {
        xs: xs.clone(),
        state,
        io_tx,
        readers: HashMap::new(),
        pushes: HashMap::new(),
        next_token: 1,
    };
    let cleanup_every = Duration::from_millis(
        xs.bridge
            .lock()
            .config()
            .async_replication
            .tombstone_cleanup_ms
            .clamp(100, 5_000),
    );
    let mut cleanup = tokio::time::interval(cleanup_every);
    loop {
        xs.flush(Some(&d.state));
        let deadline = {
            let b = xs.bridge.lock();
            let t = b.poll_timeout();
            *xs.driver_deadline.lock() = t;
            t
        };
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    debug!(%peer, "bridge connection accepted");
                    let _ = socket.set_nodelay(true);
                    match &xs.tls {
                        None => d.on_io(Io::Accepted(LinkStream::Plain(socket))),
                        Some(tls) => {
                            let tls = tls.clone();
                            let io_tx = d.io_tx.clone();
                            tokio::spawn(async move {
                                match tls.accept(socket).await {
                                    Ok(s) => {
                                        let _ = io_tx.send(Io::Accepted(LinkStream::Tls(s)));
                                    }
                                    Err(e) => warn!(
                                        %peer,
                                        "bridge connection refused: TLS handshake failed: {e}"
                                    ),
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    warn!("bridge accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(io) = io_rx.recv() => d.on_io(io),
            Some(e) = ev_rx.recv() => d.on_event(e),
            _ = xs.wake.notified() => {}
            _ = sleep => xs.bridge.lock().handle_timeout(Instant::now()),
            _ = cleanup.tick() => {
                let delay = Duration::from_millis(
                    xs.bridge.lock().config().async_replication.tombstone_cleanup_ms,
                );
                let now = Instant::now();
                for s in xs.stores() {
                    s.lock().purge_tombstones(now, delay);
                }
            }
        }
    }
}

impl Driver {
    fn on_io(&mut self, io: Io) {
        let now = Instant::now();
        match io {
            Io::Connected(conn, stream) => {
                let reader = self.attach(conn, stream);
                self.xs.bridge.lock().handle_connected(now, conn);
                self.spawn_reader(conn, reader);
            }
            Io::Accepted(stream) => {
                let conn = self.xs.bridge.lock().accept(now);
                let reader = self.attach(conn, stream);
                self.spawn_reader(conn, reader);
            }
            Io::Closed(conn) => {
                self.xs.writers.lock().remove(&conn);
                self.readers.remove(&conn);
                self.xs.bridge.lock().handle_closed(now, conn);
            }
        }
    }

    /// Registers the connection's writer; the reader is started after the bridge knows the
    /// connection.
    fn attach(&mut self, conn: ConnId, stream: LinkStream) -> LinkReader {
        let (writer, reader) = link_io::open(stream);
        self.xs.writers.lock().insert(conn, writer);
        reader
    }

    /// The reader task: feeds the bridge and drains it right away (see the module docs).
    fn spawn_reader(&mut self, conn: ConnId, mut rd: LinkReader) {
        let io_tx = self.io_tx.clone();
        let xs = self.xs.clone();
        let state = self.state.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = buf.get(..n).unwrap_or_default();
                        xs.bridge.lock().handle_data(Instant::now(), conn, data);
                        xs.flush(Some(&state));
                    }
                }
            }
            let _ = io_tx.send(Io::Closed(conn));
        });
        if let Some(old) = self.readers.insert(conn, reader.abort_handle()) {
            old.abort();
        }
    }

    fn on_event(&mut self, e: Event) {
        let now = Instant::now();
        match e {
            Event::Connect {
                conn,
                site,
                address,
            } => {
                let io_tx = self.io_tx.clone();
                let tls = self.xs.tls.clone();
                let limit = Duration::from_millis(
                    self.xs
                        .bridge
                        .lock()
                        .config()
                        .link
                        .failure_timeout_ms
                        .max(100),
                );
                tokio::spawn(async move {
                    let socket =
                        match tokio::time::timeout(limit, TcpStream::connect(&address)).await {
                            Ok(Ok(s)) => s,
                            _ => {
                                debug!(%site, %address, "bridge dial failed");
                                let _ = io_tx.send(Io::Closed(conn));
                                return;
                            }
                        };
                    let _ = socket.set_nodelay(true);
                    let stream = match tls {
                        None => LinkStream::Plain(socket),
                        Some(tls) => match tls.connect(socket, &address).await {
                            Ok(s) => LinkStream::Tls(s),
                            Err(e) => {
                                warn!(%site, %address, "bridge link refused: TLS handshake failed: {e}");
                                let _ = io_tx.send(Io::Closed(conn));
                                return;
                            }
                        },
                    };
                    debug!(%site, %address, "bridge link dialled");
                    let _ = io_tx.send(Io::Connected(conn, stream));
                });
            }
            Event::Close { conn } => {
                self.xs.writers.lock().remove(&conn);
                if let Some(reader) = self.readers.remove(&conn) {
                    reader.abort();
                }
            }
            Event::LinkUp { site, version } => info!(%site, version, "site link up"),
            Event::LinkDown { site, reason } => warn!(%site, "site link down: {reason}"),
            Event::SyncDone { write, verdict } => {
                if let Some(w) = self.xs.waiters.lock().remove(&write) {
                    let _ = w.send(verdict);
                }
            }
            Event::Apply {
                ticket,
                change,
                mode,
                ..
            } => apply::run(&self.xs, &self.state, ticket, change, mode),
            Event::Clear {
                ticket,
                from,
                cache,
                seen,
            } => {
                info!(%cache, %from, "clearing on behalf of a remote site");
                apply::run_clear(&self.xs, &self.state, ticket, cache, seen);
            }
            Event::ClearNotReplicated { cache, site } => warn!(
                %cache,
                %site,
                "clear not replicated: the link to the site speaks a bridge protocol without CLEAR (before 3)"
            ),
            Event::PushStarting {
                ticket,
                cache,
                from,
            } => {
                info!(%cache, %from, "receiving a state push");
                let seq = self.xs.store(&cache).lock().write_seq();
                self.xs
                    .bridge
                    .lock()
                    .complete_push_start(now, ticket, Ok(seq));
            }
            Event::ReadChunk {
                cache,
                site,
                cursor,
                max,
            } => {
                let result = self.read_chunk(&cache, &site, cursor.as_deref(), max);
                self.xs
                    .bridge
                    .lock()
                    .provide_chunk(now, &cache, &site, result);
            }
            Event::PushFinished {
                cache,
                site,
                status,
            } => {
                self.pushes.remove(&(cache.clone(), site.clone()));
                info!(%cache, %site, status = status.as_str(), "state push finished");
            }
            Event::PushReceived {
                cache,
                from,
                completed,
            } => info!(%cache, %from, completed, "state push received"),
            Event::BackupStatus {
                cache,
                site,
                online,
                reason,
            } => warn!(%cache, %site, online, "backup status changed: {reason}"),
            Event::Notice {
                from,
                cache,
                online,
            } => info!(%from, %cache, online, "remote site changed our status"),
        }
    }

    fn read_chunk(
        &mut self,
        cache: &str,
        site: &str,
        cursor: Option<&[u8]>,
        max: usize,
    ) -> Result<ironrod_xsite::Chunk, String> {
        let c = self.state.caches.cache(cache).map_err(|e| e.to_string())?;
        let key = (cache.to_string(), site.to_string());
        if cursor.is_none() {
            let it = c.iterate(None).map_err(|e| e.to_string())?;
            let token = self.next_token;
            self.next_token += 1;
            self.pushes.insert(key.clone(), (token, it));
        }
        let Some((token, it)) = self.pushes.get_mut(&key) else {
            return Err("push cursor lost".into());
        };
        if let Some(cur) = cursor {
            if cur != token.to_be_bytes() {
                return Err("unknown push cursor".into());
            }
        }
        let entries = apply::read_chunk(&self.xs, &c, it, max);
        let finished = it.is_finished();
        let token = *token;
        if finished {
            self.pushes.remove(&key);
        }
        Ok(apply::chunk(entries, finished, token))
    }
}
