//! What every connection shares: the caches, open iterations, counters and configuration.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironrod_codec::Limits;
use ironrod_engine::{CacheManager, Clock, EngineError, SystemClock};
use ironrod_sasl::Mechanisms;

use crate::config::Config;
use crate::handler::listeners::Hub;
use crate::iterations::Iterations;

/// Server-wide state.
#[derive(Debug)]
pub struct State {
    pub config: Config,
    pub limits: Limits,
    pub caches: CacheManager,
    pub clock: Arc<dyn Clock>,
    pub iterations: Iterations,
    pub started: Instant,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// The SASL mechanism factory; `None` while authentication is off (see
    /// [`State::with_credentials`]).
    pub auth: Option<Mechanisms>,
    /// Hot Rod remote transactions, by cache and XID.
    pub transactions: Arc<crate::handler::tx::Transactions>,
    /// Digest nonces issued to HTTP clients.
    pub http_nonces: crate::http::credentials::Nonces,
    /// TLS on the Hot Rod port; `None` when `[tls]` names no certificate.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// Slows down repeated authentication failures per address (`[security]`).
    pub auth_failures: crate::auth::FailureThrottle,
    /// Client listeners: a registry per listened-to cache and a signal per connection.
    pub listeners: Hub,
    /// The site bridge; `None` while `[xsite]` names no site.
    pub xsite: Option<Arc<crate::xsite::Xsite>>,
}

impl State {
    /// The topology id of this single-node server. Clients keep -1 and -2 for themselves and
    /// take any other id that differs from theirs as news, so one fixed positive id suffices.
    pub const TOPOLOGY_ID: i32 = 1;

    pub fn new(config: Config) -> Result<State, EngineError> {
        State::with_clock(config, Arc::new(SystemClock))
    }

    pub fn with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<State, EngineError> {
        let caches = CacheManager::new(clock.clone());
        for (name, cache) in config.cache_configs() {
            caches.create(&name, cache)?;
        }
        Ok(State {
            limits: config.limits.to_limits(),
            iterations: Iterations::new(
                config.max_iterations,
                Duration::from_millis(config.iteration_idle_ms),
            ),
            caches,
            clock,
            started: Instant::now(),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            auth: None,
            transactions: Arc::default(),
            http_nonces: Default::default(),
            tls: None,
            auth_failures: crate::auth::FailureThrottle::from_config(&config.security),
            listeners: Hub::new(config.event_watermarks()),
            xsite: None,
            config,
        })
    }

    /// The address clients are told to dial, given the local end of their connection.
    pub fn advertised(&self, local: SocketAddr) -> (String, u16) {
        let host = self
            .config
            .advertise_host
            .clone()
            .unwrap_or_else(|| local.ip().to_string());
        (host, self.config.advertise_port.unwrap_or(local.port()))
    }

    pub fn count_read(&self, n: usize) {
        self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn count_written(&self, n: usize) {
        self.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
    }
}
