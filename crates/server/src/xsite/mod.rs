//! The site bridge wired into the server: one [`Bridge`] (the sans-I/O core of `ironrod-xsite`)
//! behind a short-held mutex, one [`VersionStore`] per replicated cache, the engine's prepare
//! hook for SYNC backups and the committed-change path for ASYNC ones ([`hook`]), applying
//! changes received from other sites ([`apply`]) and the task that owns the bridge's sockets and
//! timers ([`driver`]).
//!
//! Lock order, to stay deadlock-free: a key's engine lock, then [`Xsite::bridge`], then the
//! waiter table; a [`VersionStore`] mutex is taken alone for short calls and never while waiting
//! for a key lock or the network.

pub mod apply;
pub mod driver;
pub mod hook;
pub mod link_io;
pub mod tls;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ironrod_engine::CacheManager;
use ironrod_xsite::config::AuthConfig;
use ironrod_xsite::{
    Bridge, Change, ConfigError, ConnId, Entropy, Event, SyncVerdict, VersionStore, WriteId,
    XsiteConfig,
};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// The bridge and what every thread shares with its driver task.
pub struct Xsite {
    site: String,
    /// The sans-I/O bridge; held only for its short calls.
    pub bridge: Mutex<Bridge>,
    stores: Mutex<HashMap<String, Arc<Mutex<VersionStore>>>>,
    /// Writes waiting in their prepare hook for [`ironrod_xsite::Event::SyncDone`].
    waiters: Mutex<HashMap<WriteId, mpsc::SyncSender<SyncVerdict>>>,
    /// Changes prepared by the hook and not yet committed or rolled back, by (cache, key): the
    /// key's lock makes the pair unique while it is here.
    staged: Mutex<HashMap<(String, Vec<u8>), Change>>,
    /// Wakes the driver after a call that may have produced transmits or events.
    wake: Notify,
    /// Each link's writer, by connection: whoever drains the bridge writes its transmits.
    writers: Mutex<HashMap<ConnId, link_io::LinkWriter>>,
    /// Events only the driver carries out (dials, closes, pushes, logs).
    driver_tx: OnceLock<tokio::sync::mpsc::UnboundedSender<Event>>,
    /// When the driver next wakes by itself (`None`: never); read and written under
    /// [`Xsite::bridge`], so a new earlier deadline always wakes it.
    driver_deadline: Mutex<Option<Instant>>,
    /// Mutual TLS on the links (`auth.mode = "tls"`).
    tls: Option<tls::BridgeTls>,
    /// Counter seed for new version stores: above anything issued before a restart.
    counter_start: u64,
}

impl std::fmt::Debug for Xsite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xsite")
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

impl Xsite {
    /// A bridge for `cfg` (which must be enabled); installs the prepare hook on every
    /// configured cache with backups that exists in `caches`.
    pub fn start(cfg: XsiteConfig, caches: &CacheManager) -> Result<Arc<Xsite>, StartError> {
        check_transport(&cfg)?;
        let tls = match &cfg.auth {
            AuthConfig::Tls { cert, key, ca } => {
                Some(tls::BridgeTls::load(cert, key, ca).map_err(StartError::Transport)?)
            }
            _ => None,
        };
        let site = cfg.site.clone();
        let replicated: Vec<String> = cfg.caches.keys().cloned().collect();
        let bridge = Bridge::new(cfg, Instant::now(), Box::new(OsEntropy))?;
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let xs = Arc::new(Xsite {
            site,
            bridge: Mutex::new(bridge),
            stores: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            staged: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            writers: Mutex::new(HashMap::new()),
            driver_tx: OnceLock::new(),
            driver_deadline: Mutex::new(None),
            tls,
            counter_start: micros,
        });
        for name in replicated {
            if let Ok(cache) = caches.cache(&name) {
                let hook = Arc::new(hook::SyncHook::new(xs.clone(), &cache));
                if cache.set_prepare_hook(Some(hook)).is_err() {
                    tracing::warn!(cache = %name, "xsite: cache is not transactional; its writes are not replicated");
                }
            } else {
                tracing::warn!(cache = %name, "xsite: backups configured for a cache that does not exist");
            }
        }
        Ok(xs)
    }

    /// This site's name.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The version store of `cache`, created on first use.
    pub fn store(&self, cache: &str) -> Arc<Mutex<VersionStore>> {
        self.stores
            .lock()
            .entry(cache.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(VersionStore::new(
                    &self.site,
                    cache,
                    self.counter_start,
                )))
            })
            .clone()
    }

    /// Every store, for tombstone cleanup.
    fn stores(&self) -> Vec<Arc<Mutex<VersionStore>>> {
        self.stores.lock().values().cloned().collect()
    }

    /// Asks the driver to drain the bridge.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Writes every transmit the bridge has to its link and carries out its events, until it
    /// has none: completes waiting SYNC writes, applies received changes when `state` is given
    /// (a reader task or the driver) and hands the rest to the driver. Called right after each
    /// bridge call on the SYNC path, so no thread hand-off sits between the call and the socket.
    pub fn flush(self: &Arc<Self>, state: Option<&Arc<crate::state::State>>) {
        loop {
            let (events, wake) = {
                let mut b = self.bridge.lock();
                let mut transmits = Vec::new();
                while let Some(t) = b.poll_transmit() {
                    transmits.push(t);
                }
                let mut events = Vec::new();
                while let Some(e) = b.poll_event() {
                    events.push(e);
                }
                // A new deadline earlier than the driver's sleep wakes it.
                let wake = events.is_empty() && {
                    let next = b.poll_timeout();
                    let sleeping = *self.driver_deadline.lock();
                    match (next, sleeping) {
                        (Some(n), Some(s)) => n < s,
                        (Some(_), None) => true,
                        (None, _) => false,
                    }
                };
                // The writer table is taken before the bridge is released, so transmits keep
                // their order; the (possibly slow) socket writes then run without the bridge
                // lock, and a reader can feed an answer to the bridge meanwhile.
                let writers = self.writers.lock();
                drop(b);
                for t in transmits {
                    if let Some(w) = writers.get(&t.conn) {
                        w.send(t.bytes);
                    }
                }
                (events, wake)
            };
            if events.is_empty() {
                if wake {
                    self.wake();
                }
                return;
            }
            for e in events {
                match e {
                    Event::SyncDone { write, verdict } => {
                        if let Some(w) = self.waiters.lock().remove(&write) {
                            let _ = w.send(verdict);
                        }
                    }
                    Event::Apply {
                        ticket,
                        change,
                        mode,
                        ..
                    } if state.is_some() => {
                        if let Some(state) = state {
                            apply::run(self, state, ticket, change, mode);
                        }
                    }
                    Event::Clear {
                        ticket,
                        cache,
                        seen,
                        ..
                    } if state.is_some() => {
                        if let Some(state) = state {
                            apply::run_clear(self, state, ticket, cache, seen);
                        }
                    }
                    other => {
                        if let Some(tx) = self.driver_tx.get() {
                            let _ = tx.send(other);
                        }
                    }
                }
            }
        }
    }

    /// Runs `f` on the bridge and wakes the driver (for REST administration).
    pub fn with_bridge<R>(&self, f: impl FnOnce(&mut Bridge, Instant) -> R) -> R {
        let r = f(&mut self.bridge.lock(), Instant::now());
        self.wake();
        r
    }
}

/// Why the bridge cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("xsite: {0}")]
    Transport(String),
}

/// Refuses what the server cannot run safely: unauthenticated links are only allowed on a
/// loopback listener.
fn check_transport(cfg: &XsiteConfig) -> Result<(), StartError> {
    match &cfg.auth {
        AuthConfig::Tls { .. } => Ok(()),
        AuthConfig::None => {
            let loopback = cfg
                .listen
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(StartError::Transport(format!(
                    "auth mode \"none\" is only allowed on a loopback listener, not {}; use \"shared-secret\"",
                    cfg.listen
                )))
            }
        }
        AuthConfig::SharedSecret { .. } => Ok(()),
    }
}

/// Nonces and jitter from the operating system's generator.
struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        if getrandom::getrandom(buf).is_err() {
            // No OS randomness (should not happen on supported systems): fall back to hashing
            // the time with std's randomly keyed SipHash, so nonces still differ.
            use std::hash::BuildHasher;
            let state = std::collections::hash_map::RandomState::new();
            for (i, chunk) in buf.chunks_mut(8).enumerate() {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let b = state.hash_one((nanos, i)).to_be_bytes();
                for (d, s) in chunk.iter_mut().zip(b) {
                    *d = s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use ironrod_engine::TxMode;

    use crate::Config;

    const BASE: &str = "[xsite]\nsite = \"site1\"\n\
        auth = { mode = \"shared-secret\", secret = \"0123456789abcdef0123\" }\n\
        [xsite.remote_sites.site2]\naddress = \"127.0.0.1:7901\"\n";

    #[test]
    fn caches_with_backups_become_transactional() {
        let text = format!(
            "[caches.plain]\n[caches.chosen]\nacquire_timeout_ms = 0\n{BASE}\
             [xsite.caches.plain.backups.site2]\n[xsite.caches.chosen.backups.site2]\n\
             [xsite.caches.sessions.backups.site2]\nstrategy = \"SYNC\"\n"
        );
        let c = Config::from_toml(&text).unwrap();
        let configs = c.cache_configs();
        let get = |n: &str| {
            configs
                .iter()
                .find(|(name, _)| name == n)
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(get("plain").transaction.mode, TxMode::NonXa);
        assert_eq!(
            get("plain").transaction.acquire_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(get("chosen").transaction.acquire_timeout, Duration::ZERO);
        // Keycloak's caches keep their own transaction settings.
        assert_eq!(get("sessions").transaction.mode, TxMode::NonDurableXa);
        assert_eq!(get("default").transaction.mode, TxMode::None);
    }

    #[test]
    fn the_two_sites_example_parses_and_starts() {
        for f in ["site1.toml", "site2.toml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/two-sites")
                .join(f);
            let c = Config::from_file(&path).unwrap();
            assert!(c.xsite.enabled());
            let state = crate::State::new(c.clone()).unwrap();
            super::Xsite::start(c.xsite, &state.caches).unwrap();
        }
    }

    #[test]
    fn unsafe_transports_are_refused_at_start() {
        let state = crate::State::new(Config::default()).unwrap();
        let mut cfg = Config::from_toml(BASE).unwrap().xsite;
        cfg.auth = ironrod_xsite::config::AuthConfig::None;
        cfg.listen = "0.0.0.0:7900".into();
        assert!(super::Xsite::start(cfg.clone(), &state.caches).is_err());
        cfg.listen = "127.0.0.1:7900".into();
        assert!(super::Xsite::start(cfg.clone(), &state.caches).is_ok());
        // TLS mode is accepted, but its files must load.
        cfg.auth = ironrod_xsite::config::AuthConfig::Tls {
            cert: "/nonexistent/site.pem".into(),
            key: "/nonexistent/site-key.pem".into(),
            ca: "/nonexistent/ca.pem".into(),
        };
        let e = super::Xsite::start(cfg, &state.caches).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/site.pem"), "{e}");
    }

    #[test]
    fn invalid_xsite_tables_are_refused() {
        let bad = format!("{BASE}[xsite.caches.x.backups.nowhere]\n");
        assert!(Config::from_toml(&bad).is_err());
        let short = BASE.replace("0123456789abcdef0123", "short");
        assert!(Config::from_toml(&short).is_err());
        assert!(!Config::from_toml("").unwrap().xsite.enabled());
    }
}
