//! The task that owns the bridge's sockets and timers: it accepts links on the bridge port,
//! dials on [`Event::Connect`], feeds received bytes to the bridge, writes what it transmits,
//! sleeps until its next timeout, and carries out its events (completing SYNC writes, applying
//! received changes off the async workers, reading push chunks).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironrod_engine::Iteration;
use ironrod_xsite::{ApplyFailure, ConnId, Event, Transmit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{apply, Xsite};
use crate::state::State;

/// What socket tasks tell the driver.
enum Io {
    Connected(ConnId, TcpStream),
    Data(ConnId, Vec<u8>),
    Closed(ConnId),
}

/// Per-connection writer handles and push iterations.
struct Driver {
    xs: Arc<Xsite>,
    state: Arc<State>,
    io_tx: mpsc::UnboundedSender<Io>,
    /// Per connection: the writer's queue and the reader task (aborted on close, so a peer that
    /// never answers does not keep the socket open).
    writers: HashMap<ConnId, (mpsc::UnboundedSender<Vec<u8>>, tokio::task::AbortHandle)>,
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
        "site bridge listening on {}",
        listener.local_addr().map_or(listen, |a| a.to_string())
    );
    tokio::spawn(run(xs, state, listener, stop));
    Ok(())
}

async fn run(xs: Arc<Xsite>, state: Arc<State>, listener: TcpListener, stop: CancellationToken) {
    let (io_tx, mut io_rx) = mpsc::unbounded_channel();
    let mut d = Driver {
        xs: xs.clone(),
        state,
        io_tx,
        writers: HashMap::new(),
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
        d.drain();
        let deadline = xs.bridge.lock().poll_timeout();
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
                    let conn = xs.bridge.lock().accept(Instant::now());
                    d.attach(conn, socket);
                }
                Err(e) => {
                    warn!("bridge accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(io) = io_rx.recv() => d.on_io(io),
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
            Io::Connected(conn, socket) => {
                self.attach(conn, socket);
                self.xs.bridge.lock().handle_connected(now, conn);
            }
            Io::Data(conn, bytes) => {
                if self.writers.contains_key(&conn) {
                    self.xs.bridge.lock().handle_data(now, conn, &bytes);
                }
            }
            Io::Closed(conn) => {
                self.writers.remove(&conn);
                self.xs.bridge.lock().handle_closed(now, conn);
            }
        }
    }

    /// Starts the reader and writer tasks of a connection.
    fn attach(&mut self, conn: ConnId, socket: TcpStream) {
        let _ = socket.set_nodelay(true);
        let (mut rd, mut wr) = socket.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let io_tx = self.io_tx.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = buf.get(..n).map(<[u8]>::to_vec).unwrap_or_default();
                        if io_tx.send(Io::Data(conn, data)).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = io_tx.send(Io::Closed(conn));
        });
        if let Some((_, old)) = self.writers.insert(conn, (tx, reader.abort_handle())) {
            old.abort();
        }
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            // The driver dropped the sender (Close): what was queued is written; end the stream.
            let _ = wr.shutdown().await;
        });
    }

    /// Writes every transmit and carries out every event, until the bridge has none.
    fn drain(&mut self) {
        loop {
            let (transmits, events) = {
                let mut b = self.xs.bridge.lock();
                let mut t: Vec<Transmit> = Vec::new();
                while let Some(x) = b.poll_transmit() {
                    t.push(x);
                }
                let mut e = Vec::new();
                while let Some(x) = b.poll_event() {
                    e.push(x);
                }
                (t, e)
            };
            if transmits.is_empty() && events.is_empty() {
                return;
            }
            for t in transmits {
                if let Some((w, _)) = self.writers.get(&t.conn) {
                    let _ = w.send(t.bytes);
                }
            }
            for e in events {
                self.on_event(e);
            }
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
                    match tokio::time::timeout(limit, TcpStream::connect(&address)).await {
                        Ok(Ok(s)) => {
                            debug!(%site, %address, "bridge link dialled");
                            let _ = io_tx.send(Io::Connected(conn, s));
                        }
                        _ => {
                            debug!(%site, %address, "bridge dial failed");
                            let _ = io_tx.send(Io::Closed(conn));
                        }
                    }
                });
            }
            Event::Close { conn } => {
                if let Some((_, reader)) = self.writers.remove(&conn) {
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
            } => {
                let xs = self.xs.clone();
                let change_cache = change.cache.clone();
                let cache = self.state.caches.cache(&change.cache);
                let run = move || {
                    let result = match &cache {
                        Ok(cache) => apply::apply(&xs, cache, &change, mode),
                        Err(_) => Err(ApplyFailure {
                            cause: ironrod_xsite::wire::Cause::NO_SUCH_CACHE,
                            message: format!("no cache '{}' on site '{}'", change.cache, xs.site()),
                        }),
                    };
                    xs.bridge
                        .lock()
                        .complete_apply(Instant::now(), ticket, result);
                };
                // An apply that cannot wait for a key lock (acquire timeout 0, or a cache
                // without locks) runs right here, saving a thread hop on the SYNC path; one that
                // may wait goes to a blocking thread so the links keep moving meanwhile.
                let may_wait = self
                    .state
                    .caches
                    .cache(&change_cache)
                    .is_ok_and(|c| c.config().transaction.may_wait());
                if may_wait {
                    let xs = self.xs.clone();
                    tokio::task::spawn_blocking(move || {
                        run();
                        xs.wake();
                    });
                } else {
                    run();
                }
            }
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
