//! SASL authentication on a connection: the Hot Rod side of `ironrod-sasl`.
//!
//! `ironrod-sasl` runs the mechanisms; this module owns what Hot Rod adds around them
//! (hotrod-protocol.md §19): the per-connection state, the `completed` flag, the reference
//! server's error texts, the gate in front of every other operation (authentication, then
//! authorization through `authz.rs`), the slow-down of repeated failures, and loading the
//! users. Whether a connection is TLS, and which client certificate it showed, comes from
//! its [`crate::tls::Transport`]: PLAIN runs in clear only with `plain_in_clear`, EXTERNAL
//! only with a verified client certificate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ironrod_codec::{Op, OpCode, RequestHeader, ResponseBody, Status};
use ironrod_sasl::{
    AuthError, CredentialStore, Mechanism, MechanismName, Mechanisms, RandomError, SaslConfig,
    Step, StoreError,
};
use parking_lot::Mutex;
use tracing::{info, warn};

use crate::authz::{self, Permissions, Subject};
use crate::config::SecurityConfig;
use crate::errors::Refusal;
use crate::handler::{Outcome, Reply};
use crate::session::Session;
use crate::state::State;

/// Where one connection stands. A failed step drops back to `Unauthenticated`, so the client
/// may start over on the same connection, as the reference server allows.
#[derive(Debug, Default)]
pub enum AuthState {
    #[default]
    Unauthenticated,
    /// A challenge was sent; the next AUTH feeds this mechanism.
    InProgress(Mechanism),
    /// `grants`: each role the user holds with what it grants (`authz::AuthorizationConfig::
    /// grants`), worked out once here rather than on every request.
    Authenticated {
        user: String,
        roles: Vec<String>,
        grants: Vec<(String, Permissions)>,
    },
}

impl AuthState {
    pub fn is_authenticated(&self) -> bool {
        matches!(self, AuthState::Authenticated { .. })
    }
}

/// The mechanism factory's settings from `[security]`; `iterations` is the store's PBKDF2
/// count, so unknown users get challenges that look like real ones.
pub fn sasl_config(security: &SecurityConfig, iterations: u32) -> SaslConfig {
    let mut config = SaslConfig::default();
    config.server_name = security.server_name.clone();
    config.realms = security.realms.clone();
    config.enabled = security
        .mechanisms
        .iter()
        .filter_map(|m| MechanismName::parse(m))
        // EXTERNAL depends on the connection's certificate, not on this list.
        .filter(|m| *m != MechanismName::External)
        .collect();
    config.plain_in_clear = security.plain_in_clear;
    config.mock_iterations = iterations;
    config
}

/// The users to authenticate against: the configured users file, plus the user seeded from
/// `IRONROD_USER`/`IRONROD_PASSWORD` (role `admin`, added or replaced in memory only).
/// `None` when neither exists: authentication stays off.
pub fn load_credentials(
    security: &SecurityConfig,
    env_user: Option<&str>,
    env_password: Option<&str>,
) -> Result<Option<CredentialStore>, StoreError> {
    let mut store = match &security.users_file {
        Some(path) => Some(CredentialStore::load(path)?),
        None => None,
    };
    if env_user.is_some() || env_password.is_some() {
        let s = store.get_or_insert_with(CredentialStore::new);
        s.seed_from_env(
            env_user,
            env_password,
            &["admin".to_string()],
            &security.realms,
        )?;
    }
    Ok(store)
}

impl State {
    /// Enables authentication against `store` with the `[security]` settings.
    pub fn with_credentials(mut self, store: CredentialStore) -> Result<State, RandomError> {
        let config = sasl_config(&self.config.security, store.iterations());
        self.auth = Some(Mechanisms::new(Arc::new(store), config)?);
        Ok(self)
    }

    /// The refusal for an operation the connection may not run: unauthenticated (§19.3:
    /// everything but PING, AUTH_MECH_LIST and AUTH), or authenticated without a role that
    /// grants the operation's permission on the cache it names (ISPN000287).
    pub(crate) fn gate(&self, h: &RequestHeader, op: &Op, session: &Session) -> Option<Refusal> {
        self.auth.as_ref()?;
        let opcode = op.opcode();
        let (user, grants) = match &session.auth {
            AuthState::Authenticated { user, grants, .. } => (user, grants),
            _ if matches!(opcode, OpCode::PING | OpCode::AUTH_MECH_LIST | OpCode::AUTH) => {
                return None
            }
            _ => {
                let name = opcode.name().unwrap_or("UNKNOWN");
                return Some(Refusal::server(format!(
                    "java.lang.SecurityException: ISPN006017: Operation '{name}' requires authentication"
                )));
            }
        };
        if !self.config.authorization.is_enabled() {
            return None;
        }
        let needed = authz::required(op)?;
        let cache = if h.cache_name.is_empty() {
            self.config.default_cache.as_str()
        } else {
            &*h.cache_name
        };
        let admitted = self
            .config
            .caches
            .get(cache)
            .and_then(|c| c.roles.as_deref());
        if authz::effective(grants, admitted).allows(needed) {
            return None;
        }
        let subject = Subject {
            user,
            roles: grants,
            peer: session.peer,
        };
        info!(peer = %session.peer, %user, cache, op = opcode.name().unwrap_or("UNKNOWN"),
            permission = needed.name(), "refused: the user's roles lack the permission");
        Some(authz::unauthorized(&subject, needed))
    }

    /// AUTH_MECH_LIST: the mechanisms this connection may use (none when authentication is
    /// off): EXTERNAL first when the client showed a verified certificate, PLAIN only inside
    /// TLS unless `plain_in_clear`.
    pub(crate) fn auth_mech_list(&self, session: &Session) -> Outcome {
        let names = self
            .auth
            .as_ref()
            .map(|m| {
                let external = session
                    .transport
                    .client_cn
                    .as_ref()
                    .map(|_| MechanismName::External.to_string());
                external
                    .into_iter()
                    .chain(
                        m.offered(session.transport.tls)
                            .iter()
                            .map(|n| n.to_string()),
                    )
                    .collect()
            })
            .unwrap_or_default();
        Ok(Reply::bare(Status::SUCCESS, ResponseBody::Names(names)))
    }

    /// AUTH: one step of the exchange. `completed = 1` only when the mechanism finished with no
    /// final data (PLAIN); final data (SCRAM `v=`, DIGEST-MD5 `rspauth=`) goes out with
    /// `completed = 0`, and the connection is authenticated already (§19.2).
    pub(crate) fn auth(&self, mechanism: &str, response: &[u8], session: &mut Session) -> Outcome {
        let Some(mechanisms) = &self.auth else {
            return Err(Refusal::server(
                "java.lang.SecurityException: ISPN006021: Authentication is not enabled on this server",
            ));
        };
        let current = match std::mem::take(&mut session.auth) {
            done @ AuthState::Authenticated { .. } => {
                // Redundant AUTH (pipelined, or an old client's extra round): `01 00`.
                session.auth = done;
                return Ok(auth_reply(true, Vec::new()));
            }
            // Clients repeat the mechanism name on every step; only the first one counts.
            AuthState::InProgress(m) => m,
            AuthState::Unauthenticated => {
                let started = match (
                    &session.transport.client_cn,
                    MechanismName::parse(mechanism),
                ) {
                    (Some(cn), Some(MechanismName::External)) => Ok(mechanisms.start_external(cn)),
                    _ => mechanisms.start(mechanism, session.transport.tls),
                };
                match started {
                    Ok(m) => m,
                    Err(e) => return Err(self.auth_failed(session, mechanism, &e)),
                }
            }
        };
        let name = current.name();
        match current.step(response) {
            Ok(Step::Challenge { challenge, next }) => {
                session.auth = AuthState::InProgress(next);
                Ok(auth_reply(false, challenge))
            }
            Ok(Step::Success {
                user,
                roles,
                final_data,
            }) => {
                info!(peer = %session.peer, %user, mechanism = %name, tls = session.transport.tls,
                    "authenticated");
                let grants = self.config.authorization.grants(&user, &roles);
                session.auth = AuthState::Authenticated {
                    user,
                    roles,
                    grants,
                };
                Ok(match final_data {
                    Some(data) => auth_reply(false, data),
                    None => auth_reply(true, Vec::new()),
                })
            }
            Err(e) => Err(self.auth_failed(session, name.as_str(), &e)),
        }
    }

    /// Logs the precise reason once (never a secret: `AuthError` carries none) and answers
    /// with the reference server's text, which tells the client nothing more.
    fn auth_failed(&self, session: &mut Session, mechanism: &str, e: &AuthError) -> Refusal {
        session.auth = AuthState::Unauthenticated;
        let user = match e {
            AuthError::UnknownUser { user, .. }
            | AuthError::WrongPassword { user, .. }
            | AuthError::NoCredential { user, .. }
            | AuthError::AuthzidDenied { user, .. } => user.as_str(),
            _ => "-",
        };
        let delay = self.auth_failures.failed(session.peer.ip(), Instant::now());
        session.auth_delay = Some(delay).filter(|d| !d.is_zero());
        warn!(peer = %session.peer, user, mechanism, tls = session.transport.tls,
            delay_ms = delay.as_millis() as u64, "authentication failed: {e}");
        match e {
            AuthError::UnknownMechanism { .. }
            | AuthError::MechanismNotEnabled { .. }
            | AuthError::CleartextNotAllowed { .. } => Refusal::server(format!(
                "java.lang.IllegalArgumentException: ISPN006025: Invalid mech '{mechanism}'"
            )),
            _ => Refusal::server("java.lang.SecurityException: ISPN006024: Invalid credentials"),
        }
    }
}

/// Slows down repeated authentication failures from one address: the answer to the n-th
/// failure within `window` waits `base * 2^(n-1)`, at most `max`. At most `capacity`
/// addresses are tracked; when full, the stalest entries go first, so memory stays bounded
/// whatever the number of addresses an attacker uses.
#[derive(Debug)]
pub struct FailureThrottle {
    base: Duration,
    max: Duration,
    window: Duration,
    capacity: usize,
    seen: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureThrottle {
    pub fn new(base: Duration, max: Duration, window: Duration, capacity: usize) -> Self {
        FailureThrottle {
            base,
            max,
            window,
            capacity: capacity.max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// From `[security]`.
    pub fn from_config(security: &SecurityConfig) -> Self {
        FailureThrottle::new(
            Duration::from_millis(security.failure_delay_ms),
            Duration::from_millis(security.failure_delay_max_ms),
            Duration::from_millis(security.failure_window_ms),
            security.failure_addresses,
        )
    }

    /// Records a failure from `ip` at `now` and says how long to hold the answer.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let mut seen = self.seen.lock();
        if !seen.contains_key(&ip) && seen.len() >= self.capacity {
            let window = self.window;
            seen.retain(|_, (_, last)| now.saturating_duration_since(*last) < window);
            if seen.len() >= self.capacity {
                let stalest = seen
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(k, _)| *k);
                if let Some(k) = stalest {
                    seen.remove(&k);
                }
            }
        }
        let entry = seen.entry(ip).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= self.window {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let factor = 1u32 << entry.0.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(self.max)
    }

    pub fn tracked(&self) -> usize {
        self.seen.lock().len()
    }
}

fn auth_reply(completed: bool, challenge: Vec<u8>) -> Reply {
    Reply::bare(
        Status::SUCCESS,
        ResponseBody::Auth {
            completed,
            challenge: Bytes::from(challenge),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_users_file_or_the_environment_or_nowhere() {
        let security = SecurityConfig::default();
        assert!(load_credentials(&security, None, None).unwrap().is_none());
        let store = load_credentials(&security, Some("admin"), Some("pw"))
            .unwrap()
            .unwrap();
        let user = store.user("admin").unwrap();
        assert_eq!(user.roles(), ["admin".to_string()]);
        assert!(user.digest_md5("default").is_some());
        assert!(load_credentials(&security, Some("admin"), None).is_err());
    }

    #[test]
    fn repeated_failures_wait_longer_up_to_the_cap() {
        let t = FailureThrottle::new(
            Duration::from_millis(100),
            Duration::from_millis(350),
            Duration::from_secs(60),
            2,
        );
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        let delays: Vec<u128> = (0..4).map(|_| t.failed(a, now).as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        // Past the window the count starts over.
        assert_eq!(t.failed(a, now + Duration::from_secs(61)).as_millis(), 100);
    }

    #[test]
    fn the_throttle_tracks_a_bounded_number_of_addresses() {
        let t = FailureThrottle::new(
            Duration::from_millis(10),
            Duration::from_secs(1),
            Duration::from_secs(60),
            3,
        );
        let now = Instant::now();
        for i in 0..100u8 {
            let ip = IpAddr::from([10, 0, 0, i]);
            t.failed(ip, now + Duration::from_millis(u64::from(i)));
            assert!(t.tracked() <= 3);
        }
        let off = FailureThrottle::new(Duration::ZERO, Duration::ZERO, Duration::ZERO, 1);
        assert_eq!(off.failed(IpAddr::from([1, 1, 1, 1]), now), Duration::ZERO);
    }
}
