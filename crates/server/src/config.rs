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
use ironrod_engine::CacheConfig;
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
    /// Client-listener event queues, per listener: above `high` queued events writers of the
    /// cache wait until it drains to `low`; at `max` the listener's connection is closed.
    pub event_queue_high: usize,
    pub event_queue_low: usize,
    pub event_queue_max: usize,
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
    /// Whether PLAIN may run on a connection without TLS. True by default only because
    /// Ironrod has no TLS yet, and Keycloak setups that use PLAIN would otherwise break; turn
    /// it off to offer challenge-response mechanisms only. The default flips once TLS exists.
    pub plain_in_clear: bool,
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
            plain_in_clear: true,
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
            event_queue_high: 100,
            event_queue_low: 50,
            event_queue_max: 512,
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

impl Config {
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
        if let Err(e) = self.event_watermarks().validate() {
            return Err(ConfigError::Invalid(e.to_string()));
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
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(c.security.plain_in_clear);
        assert_eq!(c.security.mechanisms.len(), 2);
    }
}
