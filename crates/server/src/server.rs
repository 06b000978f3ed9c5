//! The listener: accepts connections up to the configured limit, serves each on its own task,
//! runs the expiration reapers, and shuts down gracefully.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::state::State;
use crate::tls;

/// Serves Hot Rod on `listener` until `shutdown` completes, then stops accepting, lets
/// connections answer what they already received (up to the grace period) and returns.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(state.config.max_connections));
    spawn_reapers(&state, &stop, &tasks);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%peer, limit = state.config.max_connections, "refusing connection: too many connections");
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let local = socket.local_addr().unwrap_or_else(|_| state.config.bind);
        let state = state.clone();
        let stop = stop.child_token();
        tasks.spawn(async move {
            tls::serve(socket, peer, local, state, stop).await;
            drop(permit);
        });
    }
    info!("shutting down: no longer accepting connections");
    stop.cancel();
    tasks.close();
    if tokio::time::timeout(state.config.shutdown_grace(), tasks.wait())
        .await
        .is_err()
    {
        warn!("shutdown grace period over; closing the remaining connections");
    }
}

/// Removes expired entries of every cache at that cache's reaper interval, including caches
/// created after start (admin tasks), from one task that wakes at the shortest interval (at
/// least every second).
fn spawn_reapers(state: &Arc<State>, stop: &CancellationToken, tasks: &TaskTracker) {
    let state = state.clone();
    let stop = stop.clone();
    tasks.spawn(async move {
        let mut last: HashMap<String, Instant> = HashMap::new();
        loop {
            let caches = state.caches.caches();
            let wake = caches
                .iter()
                .map(|c| c.config().reaper_interval)
                .min()
                .unwrap_or(MAX_REAPER_SLEEP)
                .min(MAX_REAPER_SLEEP);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wake) => {}
            }
            let now = Instant::now();
            for cache in caches {
                let due = last
                    .get(cache.name())
                    .is_none_or(|t| now.duration_since(*t) >= cache.config().reaper_interval);
                if due {
                    cache.reap();
                    last.insert(cache.name().to_string(), now);
                }
            }
        }
    });
}

/// The reaper task checks for new caches at least this often.
const MAX_REAPER_SLEEP: Duration = Duration::from_secs(1);
