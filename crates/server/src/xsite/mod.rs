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

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ironrod_engine::CacheManager;
use ironrod_xsite::config::AuthConfig;
use ironrod_xsite::{
    Bridge, Change, ConfigError, Entropy, SyncVerdict, VersionStore, WriteId, XsiteConfig,
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

/// Refuses what the server cannot run safely: links over mutual TLS are not implemented yet, and
/// unauthenticated links are only allowed on a loopback listener.
fn check_transport(cfg: &XsiteConfig) -> Result<(), StartError> {
    match &cfg.auth {
        AuthConfig::Tls { .. } => Err(StartError::Transport(
            "auth mode \"tls\" (mutual TLS links) is not implemented yet; use \"shared-secret\""
                .into(),
        )),
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
        assert!(super::Xsite::start(cfg, &state.caches).is_ok());
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
