//! Configuration of the site bridge: this site, the remote sites, and per cache its backups.
//!
//! The server embeds [`XsiteConfig`] as a `[xsite]` table of its TOML file; every field has a
//! default so an empty table is valid. Durations are integers with a `_ms` suffix, as in the rest
//! of Ironrod's configuration. Defaults follow Ironrod's issue 7 where it names one (bridge port
//! 7900, backup timeout 10 s, heartbeat 2 s, failure detection 8 s) and Infinispan's
//! `BackupConfiguration`, `TakeOfflineConfiguration` and `XSiteStateTransferConfiguration`
//! otherwise (take-offline disabled, state-transfer chunk 512, mode MANUAL, merge policy DEFAULT).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default TCP port of the bridge listener.
pub const DEFAULT_BRIDGE_PORT: u16 = 7900;

/// Longest site name; names travel as a one-byte length on the wire.
pub const MAX_SITE_NAME_LEN: usize = 64;

/// Shortest accepted shared secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The whole `[xsite]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XsiteConfig {
    /// This site's name; empty disables the bridge.
    pub site: String,
    /// `host:port` the bridge listens on.
    pub listen: String,
    /// How peers prove who they are.
    pub auth: AuthConfig,
    /// The other sites, by name.
    pub remote_sites: BTreeMap<String, RemoteSiteConfig>,
    /// Backups per cache name.
    pub caches: BTreeMap<String, CacheXsiteConfig>,
    /// Link timing.
    pub link: LinkConfig,
    /// ASYNC replication bounds.
    pub async_replication: AsyncConfig,
    /// Highest frame the decoder accepts, in bytes.
    pub max_frame_len: u32,
    /// Highest bridge protocol version to offer; pin it to the old version while a rolling
    /// upgrade is under way if desired (negotiation picks the highest common one anyway).
    pub max_protocol_version: u8,
}

impl Default for XsiteConfig {
    fn default() -> Self {
        Self {
            site: String::new(),
            listen: format!("0.0.0.0:{DEFAULT_BRIDGE_PORT}"),
            auth: AuthConfig::default(),
            remote_sites: BTreeMap::new(),
            caches: BTreeMap::new(),
            link: LinkConfig::default(),
            async_replication: AsyncConfig::default(),
            max_frame_len: 16 * 1024 * 1024,
            max_protocol_version: crate::wire::MAX_VERSION,
        }
    }
}

/// How the two ends of a link authenticate each other.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AuthConfig {
    /// No authentication: only for tests and trusted networks (validation warns nothing, but the
    /// server should refuse it on a non-loopback listener).
    #[default]
    None,
    /// HMAC-SHA-256 challenge-response over both nonces, in both directions.
    SharedSecret {
        /// The secret every site shares (at least [`MIN_SECRET_LEN`] bytes).
        secret: String,
    },
    /// Mutual TLS done by the transport (the server wraps links in rustls); the bridge handshake
    /// then carries no proof.
    Tls {
        /// PEM certificate chain of this site.
        cert: String,
        /// PEM private key of this site.
        key: String,
        /// PEM bundle of the CA that signs the other sites' certificates.
        ca: String,
    },
}

/// One remote site.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteSiteConfig {
    /// `host:port` of the site master's bridge listener; empty when the site is reached `via`
    /// another one or only dials in.
    pub address: String,
    /// Route through this site's master instead of a direct link (RELAY2-style relaying).
    pub via: Option<String>,
}

/// `[xsite.caches.NAME]`: the backups of one cache.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheXsiteConfig {
    /// Backups by remote site name.
    pub backups: BTreeMap<String, BackupConfig>,
}

/// One backup of one cache to one site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// SYNC waits for the site inside the write; ASYNC queues committed changes.
    pub strategy: Strategy,
    /// What a failed SYNC backup does to the write.
    pub failure_policy: FailurePolicy,
    /// How long a SYNC write waits for the site.
    pub timeout_ms: u64,
    /// When failures take the site offline for this cache.
    pub take_offline: TakeOfflineConfig,
    /// State push settings.
    pub state_transfer: StateTransferConfig,
    /// ASYNC conflict resolution.
    pub merge_policy: MergePolicy,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Async,
            failure_policy: FailurePolicy::Warn,
            timeout_ms: 10_000,
            take_offline: TakeOfflineConfig::default(),
            state_transfer: StateTransferConfig::default(),
            merge_policy: MergePolicy::Default,
        }
    }
}

impl BackupConfig {
    /// The SYNC wait bound.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Backup strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Strategy {
    /// Replicate after commit, in the background.
    Async,
    /// Replicate inside the write; the write waits for the outcome.
    Sync,
}

/// What a failed SYNC backup means for the write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailurePolicy {
    /// Roll the write back; the client gets an error naming the site and the cause.
    Fail,
    /// Commit and ignore silently.
    Ignore,
    /// Commit and log a warning.
    Warn,
}

/// `take-offline`: both thresholds must hold when both are set; 0 disables one; both 0 never
/// takes the site offline automatically (Infinispan `OfflineStatus`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TakeOfflineConfig {
    /// Consecutive communication failures.
    pub after_failures: u32,
    /// Time since the first of those failures, in milliseconds.
    pub min_wait_ms: u64,
}

impl TakeOfflineConfig {
    /// Whether automatic take-offline is on at all.
    pub fn enabled(&self) -> bool {
        self.after_failures > 0 || self.min_wait_ms > 0
    }
}

/// State push settings of one backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateTransferConfig {
    /// Entries per chunk.
    pub chunk_size: u32,
    /// MANUAL pushes only on request; AUTO pushes when the site is brought online.
    pub mode: StateTransferMode,
    /// How long one chunk may wait for its acknowledgement before the push fails.
    pub timeout_ms: u64,
}

impl Default for StateTransferConfig {
    fn default() -> Self {
        Self {
            chunk_size: 512,
            mode: StateTransferMode::Manual,
            timeout_ms: 20 * 60 * 1000,
        }
    }
}

/// When state is pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StateTransferMode {
    /// Push when the site is brought online (ASYNC backups only, as in Infinispan).
    Auto,
    /// Push only when asked.
    Manual,
}

/// ASYNC conflict resolution between concurrent writes (neither version vector dominates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MergePolicy {
    /// Removal wins over any value.
    AlwaysRemove,
    /// The write of the lexicographically smaller site name wins.
    Default,
    /// A value wins over a removal; otherwise DEFAULT.
    PreferNonNull,
    /// A removal wins over a value; otherwise DEFAULT.
    PreferNull,
}

/// Link timing (`[xsite.link]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// A heartbeat goes out after this long without sending anything.
    pub heartbeat_ms: u64,
    /// The peer is dead after this long without receiving anything (also bounds the handshake).
    pub failure_timeout_ms: u64,
    /// First reconnect delay.
    pub reconnect_min_ms: u64,
    /// Reconnect delay ceiling.
    pub reconnect_max_ms: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: 2_000,
            failure_timeout_ms: 8_000,
            reconnect_min_ms: 250,
            reconnect_max_ms: 30_000,
        }
    }
}

/// ASYNC replication bounds (`[xsite.async_replication]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsyncConfig {
    /// Changes per batch.
    pub batch_size: u32,
    /// Distinct keys a (cache, site) queue may hold; overflowing takes the backup offline.
    pub queue_capacity: u32,
    /// How long a batch waits for its acknowledgement before it is sent again.
    pub ack_timeout_ms: u64,
    /// How long a removal's tombstone is kept for conflict resolution.
    pub tombstone_cleanup_ms: u64,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        Self {
            batch_size: 128,
            queue_capacity: 100_000,
            ack_timeout_ms: 10_000,
            tombstone_cleanup_ms: 30_000,
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Site names must be 1..=64 bytes of ASCII letters, digits, `-`, `_`, `.`.
    #[error("xsite: invalid site name '{0}' (1-64 characters from A-Z a-z 0-9 - _ .)")]
    InvalidSiteName(String),
    /// A backup or route names this site itself.
    #[error("xsite: site '{0}' refers to itself")]
    SelfReference(String),
    /// A backup or `via` names a site not under `remote_sites`.
    #[error("xsite: unknown site '{site}' referenced by {by}")]
    UnknownSite {
        /// The missing site.
        site: String,
        /// Where it is referenced.
        by: String,
    },
    /// A remote site has neither an address nor a `via`... nor dials in: it has no route.
    #[error("xsite: remote site '{0}' has neither an address nor a via")]
    NoRoute(String),
    /// A `via` chain loops or goes through a site without an address.
    #[error("xsite: route to '{0}' does not end at a site with an address")]
    BadVia(String),
    /// An address that is not `host:port`.
    #[error("xsite: invalid address '{0}' (expected host:port)")]
    InvalidAddress(String),
    /// A zero or inconsistent duration or size.
    #[error("xsite: {0}")]
    InvalidValue(String),
    /// The shared secret is too short.
    #[error("xsite: shared secret must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    /// Automatic state transfer needs ASYNC.
    #[error(
        "xsite: cache '{cache}' backup to '{site}': state-transfer mode AUTO needs strategy ASYNC"
    )]
    AutoNeedsAsync {
        /// Cache name.
        cache: String,
        /// Site name.
        site: String,
    },
}

impl XsiteConfig {
    /// Whether the bridge runs at all.
    pub fn enabled(&self) -> bool {
        !self.site.is_empty()
    }

    /// Checks the whole table; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        check_site_name(&self.site)?;
        check_address(&self.listen)?;
        match &self.auth {
            AuthConfig::SharedSecret { secret } if secret.len() < MIN_SECRET_LEN => {
                return Err(ConfigError::WeakSecret);
            }
            AuthConfig::Tls { cert, key, ca }
                if cert.is_empty() || key.is_empty() || ca.is_empty() =>
            {
                return Err(ConfigError::InvalidValue(
                    "auth mode tls needs cert, key and ca".into(),
                ));
            }
            _ => {}
        }
        let l = &self.link;
        if l.heartbeat_ms == 0 || l.failure_timeout_ms <= l.heartbeat_ms {
            return Err(ConfigError::InvalidValue(
                "link.failure_timeout_ms must exceed link.heartbeat_ms > 0".into(),
            ));
        }
        if l.reconnect_min_ms == 0 || l.reconnect_max_ms < l.reconnect_min_ms {
            return Err(ConfigError::InvalidValue(
                "link.reconnect_max_ms must be >= link.reconnect_min_ms > 0".into(),
            ));
        }
        let a = &self.async_replication;
        if a.batch_size == 0 || a.queue_capacity == 0 || a.ack_timeout_ms == 0 {
            return Err(ConfigError::InvalidValue(
                "async_replication sizes and ack_timeout_ms must be > 0".into(),
            ));
        }
        if self.max_frame_len < 1024 {
            return Err(ConfigError::InvalidValue(
                "max_frame_len must be at least 1024".into(),
            ));
        }
        if !(crate::wire::MIN_VERSION..=crate::wire::MAX_VERSION)
            .contains(&self.max_protocol_version)
        {
            return Err(ConfigError::InvalidValue(format!(
                "max_protocol_version must be within {}..={}",
                crate::wire::MIN_VERSION,
                crate::wire::MAX_VERSION
            )));
        }
        for (name, remote) in &self.remote_sites {
            check_site_name(name)?;
            if name == &self.site {
                return Err(ConfigError::SelfReference(name.clone()));
            }
            if !remote.address.is_empty() {
                check_address(&remote.address)?;
            }
            if let Some(via) = &remote.via {
                if via == name || via == &self.site {
                    return Err(ConfigError::SelfReference(via.clone()));
                }
                if !self.remote_sites.contains_key(via) {
                    return Err(ConfigError::UnknownSite {
                        site: via.clone(),
                        by: format!("remote_sites.{name}.via"),
                    });
                }
            } else if remote.address.is_empty() && self.site.as_str() < name.as_str() {
                // The smaller name dials (see `link`), so a peer that sorts after us must be
                // reachable by address; a smaller one dials in.
                return Err(ConfigError::NoRoute(name.clone()));
            }
        }
        for name in self.remote_sites.keys() {
            self.resolve_next_hop(name)?;
        }
        for (cache, c) in &self.caches {
            for (site, b) in &c.backups {
                if site == &self.site {
                    return Err(ConfigError::SelfReference(site.clone()));
                }
                if !self.remote_sites.contains_key(site) {
                    return Err(ConfigError::UnknownSite {
                        site: site.clone(),
                        by: format!("caches.{cache}.backups"),
                    });
                }
                if b.timeout_ms == 0 {
                    return Err(ConfigError::InvalidValue(format!(
                        "caches.{cache}.backups.{site}.timeout_ms must be > 0"
                    )));
                }
                if b.state_transfer.chunk_size == 0 || b.state_transfer.timeout_ms == 0 {
                    return Err(ConfigError::InvalidValue(format!(
                        "caches.{cache}.backups.{site}.state_transfer chunk_size and timeout_ms must be > 0"
                    )));
                }
                if b.state_transfer.mode == StateTransferMode::Auto && b.strategy != Strategy::Async
                {
                    return Err(ConfigError::AutoNeedsAsync {
                        cache: cache.clone(),
                        site: site.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The site whose link carries traffic for `site`: follows `via` until a site without one.
    pub fn resolve_next_hop(&self, site: &str) -> Result<String, ConfigError> {
        let mut seen = BTreeSet::new();
        let mut current = site;
        loop {
            if !seen.insert(current) {
                return Err(ConfigError::BadVia(site.to_string()));
            }
            let Some(remote) = self.remote_sites.get(current) else {
                return Err(ConfigError::UnknownSite {
                    site: current.to_string(),
                    by: format!("the route to {site}"),
                });
            };
            match &remote.via {
                Some(via) => current = via,
                None => return Ok(current.to_string()),
            }
        }
    }

    /// The backup settings of `cache` towards `site`, if any.
    pub fn backup(&self, cache: &str, site: &str) -> Option<&BackupConfig> {
        self.caches.get(cache).and_then(|c| c.backups.get(site))
    }
}

/// Checks a site name's spelling.
pub fn check_site_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SITE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidSiteName(name.to_string()))
    }
}

fn check_address(addr: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::InvalidAddress(addr.to_string());
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_err(|_| bad())? == 0 {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_sites() -> XsiteConfig {
        let mut c = XsiteConfig {
            site: "LON".into(),
            ..XsiteConfig::default()
        };
        c.remote_sites.insert(
            "NYC".into(),
            RemoteSiteConfig {
                address: "127.0.0.1:7901".into(),
                via: None,
            },
        );
        c
    }

    #[test]
    fn defaults_match_the_issue_and_infinispan() {
        let b = BackupConfig::default();
        assert_eq!(b.timeout(), Duration::from_secs(10));
        assert_eq!(b.strategy, Strategy::Async);
        assert_eq!(b.failure_policy, FailurePolicy::Warn);
        assert!(!b.take_offline.enabled());
        assert_eq!(b.state_transfer.chunk_size, 512);
        assert_eq!(b.state_transfer.mode, StateTransferMode::Manual);
        assert_eq!(b.merge_policy, MergePolicy::Default);
        let c = XsiteConfig::default();
        assert!(c.listen.ends_with(":7900"));
        assert_eq!(c.link.heartbeat_ms, 2_000);
        assert_eq!(c.link.failure_timeout_ms, 8_000);
        assert!(!c.enabled());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn parses_keycloak_like_toml() {
        let text = r#"
            site = "site-a"
            listen = "0.0.0.0:7900"
            auth = { mode = "shared-secret", secret = "0123456789abcdef0123" }
            [remote_sites.site-b]
            address = "10.0.0.2:7900"
            [caches.sessions.backups.site-b]
            strategy = "SYNC"
            failure_policy = "FAIL"
            timeout_ms = 4500
            take_offline = { after_failures = 3, min_wait_ms = 60000 }
            state_transfer = { chunk_size = 16 }
            [caches.work.backups.site-b]
            strategy = "ASYNC"
            merge_policy = "ALWAYS_REMOVE"
            state_transfer = { mode = "AUTO" }
        "#;
        let c: XsiteConfig = toml::from_str(text).unwrap();
        assert_eq!(c.validate(), Ok(()));
        let s = c.backup("sessions", "site-b").unwrap();
        assert_eq!(s.strategy, Strategy::Sync);
        assert_eq!(s.failure_policy, FailurePolicy::Fail);
        assert_eq!(s.timeout_ms, 4500);
        assert_eq!(s.take_offline.after_failures, 3);
        assert_eq!(s.state_transfer.chunk_size, 16);
        let w = c.backup("work", "site-b").unwrap();
        assert_eq!(w.merge_policy, MergePolicy::AlwaysRemove);
        assert_eq!(w.state_transfer.mode, StateTransferMode::Auto);
        // Round trip through TOML keeps everything.
        let again: XsiteConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(toml::from_str::<XsiteConfig>("sitee = \"a\"").is_err());
        assert!(toml::from_str::<BackupConfig>("strategy = \"SOMETIMES\"").is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = two_sites();
        c.site = "bad name".into();
        assert!(matches!(c.validate(), Err(ConfigError::InvalidSiteName(_))));

        let mut c = two_sites();
        c.caches
            .entry("work".into())
            .or_default()
            .backups
            .insert("PAR".into(), BackupConfig::default());
        assert!(
            matches!(c.validate(), Err(ConfigError::UnknownSite { site, .. }) if site == "PAR")
        );

        let mut c = two_sites();
        c.caches
            .entry("work".into())
            .or_default()
            .backups
            .insert("LON".into(), BackupConfig::default());
        assert_eq!(c.validate(), Err(ConfigError::SelfReference("LON".into())));

        let mut c = two_sites();
        c.auth = AuthConfig::SharedSecret {
            secret: "short".into(),
        };
        assert_eq!(c.validate(), Err(ConfigError::WeakSecret));

        let mut c = two_sites();
        c.auth = AuthConfig::Tls {
            cert: "c.pem".into(),
            key: String::new(),
            ca: "ca.pem".into(),
        };
        assert!(matches!(c.validate(), Err(ConfigError::InvalidValue(_))));

        let mut c = two_sites();
        c.remote_sites.get_mut("NYC").unwrap().address = "nohost".into();
        assert!(matches!(c.validate(), Err(ConfigError::InvalidAddress(_))));

        let mut c = two_sites();
        let b = BackupConfig {
            strategy: Strategy::Sync,
            state_transfer: StateTransferConfig {
                mode: StateTransferMode::Auto,
                ..Default::default()
            },
            ..BackupConfig::default()
        };
        c.caches
            .entry("work".into())
            .or_default()
            .backups
            .insert("NYC".into(), b);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::AutoNeedsAsync { .. })
        ));

        let mut c = two_sites();
        c.link.failure_timeout_ms = c.link.heartbeat_ms;
        assert!(matches!(c.validate(), Err(ConfigError::InvalidValue(_))));
    }

    #[test]
    fn via_routes_resolve_and_loops_are_rejected() {
        let mut c = two_sites();
        c.remote_sites.insert(
            "PAR".into(),
            RemoteSiteConfig {
                address: String::new(),
                via: Some("NYC".into()),
            },
        );
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.resolve_next_hop("PAR").unwrap(), "NYC");
        c.remote_sites.insert(
            "AMS".into(),
            RemoteSiteConfig {
                address: String::new(),
                via: Some("BER".into()),
            },
        );
        c.remote_sites.insert(
            "BER".into(),
            RemoteSiteConfig {
                address: String::new(),
                via: Some("AMS".into()),
            },
        );
        assert_eq!(c.validate(), Err(ConfigError::BadVia("AMS".into())));
    }

    #[test]
    fn a_smaller_peer_without_address_has_no_route() {
        let mut c = two_sites();
        c.site = "AAA".into();
        c.remote_sites.get_mut("NYC").unwrap().address.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoRoute("NYC".into())));
        // A peer that sorts before us dials in, so no address is fine.
        c.site = "ZRH".into();
        assert_eq!(c.validate(), Ok(()));
    }
}
