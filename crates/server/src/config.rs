//! Configuration: built-in defaults, then an optional TOML file, then `IRONROD_*` environment
//! variables and command-line flags (see `cli.rs`), each overriding the one before.
//!
//! The embedded default needs no file: it listens on 0.0.0.0:11222 with Keycloak's caches
//! predefined.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ironrod_codec::Limits;
use ironrod_engine::{CacheConfig, Isolation, LockingMode, TxConfig, TxMode};
use serde::Deserialize;

/// The caches every Ironrod has, with the media type each reports.
///
/// Keycloak 26 stores ProtoStream in its caches and creates them with that encoding; the
/// protobuf schema cache holds schema text.
pub const PREDEFINED_CACHES: &[(&str, &str)] = &[
    ("default", CacheConfig::PROTOSTREAM),
    ("work", CacheConfig::PROTOSTREAM),
    ("sessions", CacheConfig::PROTOSTREAM),
    ("clientSessions", CacheConfig::PROTOSTREAM),
    ("offlineSessions", CacheConfig::PROTOSTREAM),
    ("offlineClientSessions", CacheConfig::PROTOSTREAM),
    ("loginFailures", CacheConfig::PROTOSTREAM),
    ("actionTokens", CacheConfig::PROTOSTREAM),
    ("authenticationSessions", CacheConfig::PROTOSTREAM),
    ("___protobuf_metadata", "text/plain"),
];

/// Keycloak's caches are transactional as the cross-site seeds configure them
/// (`NON_DURABLE_XA`, `PESSIMISTIC`, acquire timeout 0; `../shared/reference/keycloak-needs.md`
/// §5); `default` and the protobuf schema cache are not.
fn predefined_transaction(name: &str) -> TxConfig {
    match name {
        "default" | "___protobuf_metadata" => TxConfig::default(),
        _ => TxConfig::KEYCLOAK,
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where Hot Rod listens.
    pub bind: SocketAddr,
    /// The host clients are told to dial in topology updates; by default the local address of
    /// the connection the client made, which it can always reach.
    pub advertise_host: Option<String>,
    /// The port clients are told to dial; by default the local port of the connection.
    pub advertise_port: Option<u16>,
    /// Connections beyond this are refused at accept.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace_ms: u64,
    /// Bounds on what a request may declare.
    pub limits: LimitsConfig,
    /// Open iterations, server-wide, and how long an untouched one lives.
    pub max_iterations: usize,
    pub iteration_idle_ms: u64,
    /// The cache named by an empty cache name in a request.
    pub default_cache: String,
    /// Caches to create in addition to, or to reconfigure, the predefined ones.
    pub caches: BTreeMap<String, CacheSettings>,
    /// A `tracing` filter such as `info` or `ironrod_server=debug`.
    pub log: String,
    /// SASL authentication (`[security]`); off unless a users file or a seeded user exists.
    pub security: SecurityConfig,
    /// The REST, health and metrics surface on the Hot Rod port (`[http]`).
    pub http: HttpConfig,
    /// TLS on the Hot Rod port (`[tls]`); off unless a certificate is configured.
    pub tls: crate::tls::TlsConfig,
    /// Role-based access control (`[authorization]`); see `authz.rs`.
    pub authorization: crate::authz::AuthorizationConfig,
    /// Client-listener event queues, per listener: above `high` queued events writers of the
    /// cache wait until it drains to `low`; at `max` the listener's connection is closed.
    pub event_queue_high: usize,
    pub event_queue_low: usize,
    pub event_queue_max: usize,
    /// The site bridge (`[xsite]`, `ironrod_xsite::XsiteConfig`); off while `site` is empty.
    pub xsite: ironrod_xsite::XsiteConfig,
}

/// The `[http]` table: HTTP on the Hot Rod port.
///
/// With authentication on (see [`SecurityConfig`]), every HTTP request needs Basic or Digest
/// credentials of a user in the users file, except what is opened here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Whether HTTP requests are served at all; when off, a connection that opens with HTTP
    /// is closed.
    pub enabled: bool,
    /// Whether the health endpoints answer without credentials. The `.../health/status`
    /// endpoints are always open, as in Infinispan, where probes call them anonymously.
    pub anonymous_health: bool,
    /// Whether `/metrics` answers without credentials (Prometheus scrapers often have none).
    pub anonymous_metrics: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            anonymous_health: false,
            anonymous_metrics: false,
        }
    }
}

/// The `[security]` table: where users come from and which SASL mechanisms run.
///
/// Authentication is enabled when `users_file` is set or `IRONROD_USER`/`IRONROD_PASSWORD`
/// seed a user; without either the server stays open, as it always was.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// The users file written by `ironrod user create` (TOML, verifiers only).
    pub users_file: Option<PathBuf>,
    /// The SASL server name; DIGEST-MD5 clients send `hotrod/<server_name>` as digest-uri.
    /// Keycloak and the Java client default to `infinispan`.
    pub server_name: String,
    /// DIGEST-MD5 realms, in the order offered; users get a secret for each.
    pub realms: Vec<String>,
    /// Mechanisms to offer, in order (IANA names; default: every implemented one, strongest
    /// first).
    pub mechanisms: Vec<String>,
    /// Whether PLAIN may run on a connection without TLS (default false: PLAIN sends the
    /// password itself, so it is offered only inside TLS unless the operator says otherwise).
    pub plain_in_clear: bool,
    /// Failed authentications from one address are answered after `failure_delay_ms`,
    /// doubling per further failure within `failure_window_ms` up to `failure_delay_max_ms`
    /// (0 turns the slow-down off); at most `failure_addresses` addresses are remembered.
    pub failure_delay_ms: u64,
    pub failure_delay_max_ms: u64,
    pub failure_window_ms: u64,
    pub failure_addresses: usize,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            users_file: None,
            server_name: "infinispan".to_string(),
            realms: vec!["default".to_string()],
            mechanisms: ironrod_sasl::MechanismName::ALL
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
            plain_in_clear: false,
            failure_delay_ms: 100,
            failure_delay_max_ms: 5_000,
            failure_window_ms: 60_000,
            failure_addresses: 10_000,
        }
    }
}

/// Frame and field bounds; see `ironrod_codec::Limits`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_key_len: usize,
    pub max_value_len: usize,
    pub max_cache_name_len: usize,
    pub max_string_len: usize,
    pub max_entries: usize,
    pub max_params: usize,
    pub max_frame_len: usize,
}

/// One cache's settings; absent fields take the predefined or built-in default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    pub media_type: Option<String>,
    /// Default lifespan in milliseconds (absent: immortal).
    pub lifespan_ms: Option<u64>,
    /// Default max-idle in milliseconds (absent: none).
    pub max_idle_ms: Option<u64>,
    pub reaper_interval_ms: Option<u64>,
    pub segments: Option<u32>,
    pub max_entries: Option<u64>,
    /// `NONE`, `NON_XA`, `NON_DURABLE_XA` or `FULL_XA` (treated as `NON_DURABLE_XA`).
    pub transaction_mode: Option<String>,
    /// `PESSIMISTIC` or `OPTIMISTIC`.
    pub locking: Option<String>,
    /// How long a write waits for a locked key; 0 fails at once.
    pub acquire_timeout_ms: Option<u64>,
    /// `READ_COMMITTED` or `REPEATABLE_READ`.
    pub isolation: Option<String>,
    /// With authorization on: the only roles that may use this cache (absent: every role).
    pub roles: Option<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([0, 0, 0, 0], 11222)),
            advertise_host: None,
            advertise_port: None,
            max_connections: 10_000,
            shutdown_grace_ms: 10_000,
            limits: LimitsConfig::default(),
            max_iterations: 10_000,
            iteration_idle_ms: 300_000,
            default_cache: "default".to_string(),
            caches: BTreeMap::new(),
            log: "info".to_string(),
            security: SecurityConfig::default(),
            http: HttpConfig::default(),
            tls: crate::tls::TlsConfig::default(),
            authorization: crate::authz::AuthorizationConfig::default(),
            event_queue_high: 100,
            event_queue_low: 50,
            event_queue_max: 512,
            xsite: ironrod_xsite::XsiteConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::DEFAULT;
        LimitsConfig {
            max_key_len: l.max_key_len,
            max_value_len: l.max_value_len,
            max_cache_name_len: l.max_cache_name_len,
            max_string_len: l.max_string_len,
            max_entries: l.max_entries,
            max_params: l.max_params,
            max_frame_len: l.max_frame_len,
        }
    }
}

impl LimitsConfig {
    pub fn to_limits(&self) -> Limits {
        Limits {
            max_key_len: self.max_key_len,
            max_value_len: self.max_value_len,
            max_cache_name_len: self.max_cache_name_len,
            max_string_len: self.max_string_len,
            max_entries: self.max_entries,
            max_params: self.max_params,
            max_frame_len: self.max_frame_len,
        }
    }
}

/// How an environment variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    Text,
    Integer,
    Bool,
    /// Comma-separated.
    List,
}

/// Every key an environment variable can set, with its variable. Cache sections are file-only
/// (cache names are case-sensitive, variable names are not). Flags, where they exist, override
/// these, as these override the file.
pub const ENVIRONMENT: &[(&str, &str, EnvKind)] = &[
    ("IRONROD_BIND", "bind", EnvKind::Text),
    ("IRONROD_ADVERTISE_HOST", "advertise_host", EnvKind::Text),
    ("IRONROD_ADVERTISE_PORT", "advertise_port", EnvKind::Integer),
    (
        "IRONROD_MAX_CONNECTIONS",
        "max_connections",
        EnvKind::Integer,
    ),
    (
        "IRONROD_SHUTDOWN_GRACE_MS",
        "shutdown_grace_ms",
        EnvKind::Integer,
    ),
    ("IRONROD_MAX_ITERATIONS", "max_iterations", EnvKind::Integer),
    (
        "IRONROD_ITERATION_IDLE_MS",
        "iteration_idle_ms",
        EnvKind::Integer,
    ),
    ("IRONROD_DEFAULT_CACHE", "default_cache", EnvKind::Text),
    ("IRONROD_LOG", "log", EnvKind::Text),
    (
        "IRONROD_EVENT_QUEUE_HIGH",
        "event_queue_high",
        EnvKind::Integer,
    ),
    (
        "IRONROD_EVENT_QUEUE_LOW",
        "event_queue_low",
        EnvKind::Integer,
    ),
    (
        "IRONROD_EVENT_QUEUE_MAX",
        "event_queue_max",
        EnvKind::Integer,
    ),
    (
        "IRONROD_MAX_KEY_LEN",
        "limits.max_key_len",
        EnvKind::Integer,
    ),
    (
        "IRONROD_MAX_VALUE_LEN",
        "limits.max_value_len",
        EnvKind::Integer,
    ),
    (
        "IRONROD_MAX_CACHE_NAME_LEN",
        "limits.max_cache_name_len",
        EnvKind::Integer,
    ),
    (
        "IRONROD_MAX_STRING_LEN",
        "limits.max_string_len",
        EnvKind::Integer,
    ),
    (
        "IRONROD_MAX_ENTRIES",
        "limits.max_entries",
        EnvKind::Integer,
    ),
    ("IRONROD_MAX_PARAMS", "limits.max_params", EnvKind::Integer),
    (
        "IRONROD_MAX_FRAME_LEN",
        "limits.max_frame_len",
        EnvKind::Integer,
    ),
    ("IRONROD_USERS_FILE", "security.users_file", EnvKind::Text),
    ("IRONROD_SERVER_NAME", "security.server_name", EnvKind::Text),
    ("IRONROD_REALMS", "security.realms", EnvKind::List),
    ("IRONROD_MECHANISMS", "security.mechanisms", EnvKind::List),
    (
        "IRONROD_PLAIN_IN_CLEAR",
        "security.plain_in_clear",
        EnvKind::Bool,
    ),
    ("IRONROD_HTTP_ENABLED", "http.enabled", EnvKind::Bool),
    (
        "IRONROD_HTTP_ANONYMOUS_HEALTH",
        "http.anonymous_health",
        EnvKind::Bool,
    ),
    (
        "IRONROD_HTTP_ANONYMOUS_METRICS",
        "http.anonymous_metrics",
        EnvKind::Bool,
    ),
    ("IRONROD_SITE", "xsite.site", EnvKind::Text),
    ("IRONROD_XSITE_LISTEN", "xsite.listen", EnvKind::Text),
];

impl Config {
    /// The defaults, then the TOML file if any, then the variables of [`ENVIRONMENT`] that
    /// `env` yields.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (text, origin) = match file {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?,
                path.display().to_string(),
            ),
            None => (String::new(), String::new()),
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: origin.clone(),
            source: Box::new(e),
        })?;
        for (var, key, kind) in ENVIRONMENT {
            let Some(raw) = env(var) else { continue };
            let value = env_value(&raw, *kind)
                .ok_or_else(|| ConfigError::Invalid(format!("{var}={raw}: not a {kind:?}")))?;
            let mut node = &mut table;
            let mut parts = key.split('.').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    node.insert(part.to_string(), value.clone());
                    break;
                }
                let child = node
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                node = match child {
                    toml::Value::Table(t) => t,
                    _ => return Err(ConfigError::Invalid(format!("{key} is not a table"))),
                };
            }
        }
        let config: Config = table.try_into().map_err(|e| ConfigError::Parse {
            path: origin,
            source: Box::new(e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::new(),
            source: Box::new(e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max_connections must be at least 1".into(),
            ));
        }
        for (name, s) in &self.caches {
            let bad = [
                s.transaction_mode
                    .as_deref()
                    .and_then(|m| m.parse::<TxMode>().err()),
                s.locking
                    .as_deref()
                    .and_then(|m| m.parse::<LockingMode>().err()),
                s.isolation
                    .as_deref()
                    .and_then(|m| m.parse::<Isolation>().err()),
            ];
            if let Some(e) = bad.into_iter().flatten().next() {
                return Err(ConfigError::Invalid(format!("cache '{name}': {e}")));
            }
        }
        for (name, cache) in self.cache_configs() {
            if !cache.segments.is_power_of_two() {
                return Err(ConfigError::Invalid(format!(
                    "cache '{name}': segments must be a power of two, not {}",
                    cache.segments
                )));
            }
        }
        if !self
            .cache_configs()
            .iter()
            .any(|(n, _)| *n == self.default_cache)
        {
            return Err(ConfigError::Invalid(format!(
                "default_cache '{}' is not a configured cache",
                self.default_cache
            )));
        }
        for m in &self.security.mechanisms {
            if ironrod_sasl::MechanismName::parse(m).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "security.mechanisms: unknown SASL mechanism '{m}'"
                )));
            }
        }
        self.tls.validate().map_err(ConfigError::Invalid)?;
        self.authorization
            .validate()
            .map_err(ConfigError::Invalid)?;
        if let Err(e) = self.event_watermarks().validate() {
            return Err(ConfigError::Invalid(e.to_string()));
        }
        if self.xsite.enabled() {
            self.xsite
                .validate()
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        if self.security.server_name.is_empty() {
            return Err(ConfigError::Invalid(
                "security.server_name must not be empty".into(),
            ));
        }
        Ok(())
    }

    /// The client-listener queue bounds.
    pub fn event_watermarks(&self) -> ironrod_events::Watermarks {
        ironrod_events::Watermarks {
            high: self.event_queue_high,
            low: self.event_queue_low,
            max: self.event_queue_max,
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// Every cache to create: the predefined ones, then the configured ones, with settings
    /// applied.
    pub fn cache_configs(&self) -> Vec<(String, CacheConfig)> {
        let mut out: BTreeMap<String, CacheConfig> = PREDEFINED_CACHES
            .iter()
            .map(|(name, media)| {
                let config = CacheConfig {
                    media_type: (*media).to_string(),
                    transaction: predefined_transaction(name),
                    ..CacheConfig::default()
                };
                ((*name).to_string(), config)
            })
            .collect();
        for (name, s) in &self.caches {
            let c = out.entry(name.clone()).or_default();
            if let Some(m) = &s.media_type {
                c.media_type = m.clone();
            }
            if s.lifespan_ms.is_some() {
                c.lifespan = s.lifespan_ms;
            }
            if s.max_idle_ms.is_some() {
                c.max_idle = s.max_idle_ms;
            }
            if let Some(ms) = s.reaper_interval_ms {
                c.reaper_interval = Duration::from_millis(ms.max(1));
            }
            if let Some(n) = s.segments {
                c.segments = n;
            }
            if s.max_entries.is_some() {
                c.max_entries = s.max_entries;
            }
            // Invalid names are reported by `validate`.
            let tx = &mut c.transaction;
            if let Some(Ok(mode)) = s.transaction_mode.as_deref().map(str::parse) {
                tx.mode = mode;
            }
            if let Some(Ok(locking)) = s.locking.as_deref().map(str::parse) {
                tx.locking = locking;
            }
            if let Some(ms) = s.acquire_timeout_ms {
                tx.acquire_timeout = Duration::from_millis(ms);
            }
            if let Some(Ok(isolation)) = s.isolation.as_deref().map(str::parse) {
                tx.isolation = isolation;
            }
        }
        // A cache with backups runs its writes as implicit transactions: the bridge's SYNC
        // backup is the transactions' prepare hook (compatibility C70).
        if self.xsite.enabled() {
            for (name, c) in &mut out {
                if self.xsite.caches.contains_key(name) && c.transaction.mode == TxMode::None {
                    c.transaction.mode = TxMode::NonXa;
                    // Infinispan's default lock acquisition timeout for a cache that did not
                    // choose one: writes wait for a remote change being applied.
                    let chosen = self.caches.get(name).and_then(|s| s.acquire_timeout_ms);
                    if chosen.is_none() {
                        c.transaction.acquire_timeout = Duration::from_secs(10);
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

fn env_value(raw: &str, kind: EnvKind) -> Option<toml::Value> {
    Some(match kind {
        EnvKind::Text => toml::Value::String(raw.to_string()),
        EnvKind::Integer => toml::Value::Integer(raw.trim().parse().ok()?),
        EnvKind::Bool => toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return None,
        }),
        EnvKind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_files_parse_and_the_full_example_is_the_default() {
        let full = Config::from_toml(include_str!("../../../examples/ironrod.toml")).unwrap();
        assert_eq!(full, Config::default());
        Config::from_toml(include_str!("../../../examples/keycloak/ironrod.toml")).unwrap();
    }

    #[test]
    fn readme_documents_every_environment_variable() {
        let readme = include_str!("../../../README.md");
        for (var, key, _) in ENVIRONMENT {
            assert!(readme.contains(var), "README lacks {var} ({key})");
        }
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_variables_are_ignored() {
        let dir = std::env::temp_dir().join(format!("ironrod-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "max_connections = 5\n[limits]\nmax_key_len = 10\n").unwrap();
        let vars: BTreeMap<&str, &str> = [
            ("IRONROD_MAX_CONNECTIONS", "7"),
            ("IRONROD_MAX_VALUE_LEN", "99"),
            ("IRONROD_REALMS", "a, b"),
            ("IRONROD_HTTP_ANONYMOUS_HEALTH", "yes"),
            ("IRONROD_BIND", "127.0.0.1:1234"),
            ("IRONROD_PORT", "nonsense"),
        ]
        .into_iter()
        .collect();
        let c = Config::load(Some(&file), |k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.limits.max_key_len, 10);
        assert_eq!(c.limits.max_value_len, 99);
        assert_eq!(c.security.realms, vec!["a".to_string(), "b".to_string()]);
        assert!(c.http.anonymous_health);
        assert_eq!(c.bind.port(), 1234);
        let e = Config::load(None, |k| {
            (k == "IRONROD_MAX_CONNECTIONS").then(|| "many".into())
        })
        .unwrap_err();
        assert!(e.to_string().contains("IRONROD_MAX_CONNECTIONS"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_environment_key_exists_in_the_configuration() {
        let vars: BTreeMap<&str, &str> = ENVIRONMENT
            .iter()
            .map(|(v, _, kind)| {
                let sample = match kind {
                    EnvKind::Text => "x",
                    EnvKind::Integer => "1",
                    EnvKind::Bool => "true",
                    EnvKind::List => "PLAIN",
                };
                (*v, sample)
            })
            .filter(|(v, _)| {
                ![
                    "IRONROD_BIND",
                    "IRONROD_DEFAULT_CACHE",
                    "IRONROD_SERVER_NAME",
                    // 1 for all three breaks low <= high < max.
                    "IRONROD_EVENT_QUEUE_MAX",
                    "IRONROD_XSITE_LISTEN",
                ]
                .contains(v)
            })
            .collect();
        // deny_unknown_fields turns a misspelt key into an error.
        Config::load(None, |k| vars.get(k).map(|v| v.to_string())).unwrap();
    }

    #[test]
    fn empty_file_is_the_embedded_default() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.bind.port(), 11222);
        let names: Vec<String> = c.cache_configs().into_iter().map(|(n, _)| n).collect();
        for (n, _) in PREDEFINED_CACHES {
            assert!(names.iter().any(|x| x == n), "{n} missing");
        }
        assert!(!names.iter().any(|n| n == "___script_cache"));
    }

    #[test]
    fn file_overrides_and_adds_caches() {
        let c = Config::from_toml(
            r#"
            bind = "127.0.0.1:12000"
            [caches.sessions]
            lifespan_ms = 1000
            [caches.extra]
            media_type = "application/octet-stream"
            segments = 64
            max_entries = 10
            "#,
        )
        .unwrap();
        assert_eq!(c.bind.port(), 12000);
        let caches: BTreeMap<_, _> = c.cache_configs().into_iter().collect();
        assert_eq!(caches["sessions"].lifespan, Some(1000));
        assert_eq!(caches["sessions"].media_type, CacheConfig::PROTOSTREAM);
        assert_eq!(caches["extra"].segments, 64);
        assert_eq!(caches["extra"].max_entries, Some(10));
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let e = Config::from_toml("[caches.x]\nsegments = 100\n").unwrap_err();
        assert!(e.to_string().contains("power of two"), "{e}");
        let e = Config::from_toml("unknown_key = 1\n").unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");
        let e = Config::from_toml("default_cache = \"nope\"\n").unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = Config::from_toml("[security]\nmechanisms = [\"GSSAPI\"]\n").unwrap_err();
        assert!(e.to_string().contains("GSSAPI"), "{e}");
    }

    #[test]
    fn security_table_parses_over_defaults() {
        let c = Config::from_toml(
            "[security]\nusers_file = \"u.toml\"\nmechanisms = [\"SCRAM-SHA-512\", \"PLAIN\"]\n",
        )
        .unwrap();
        assert_eq!(c.security.users_file, Some(PathBuf::from("u.toml")));
        assert_eq!(c.security.server_name, "infinispan");
        assert_eq!(c.security.realms, vec!["default".to_string()]);
        assert!(!c.security.plain_in_clear);
        assert_eq!(c.security.mechanisms.len(), 2);
    }
}
