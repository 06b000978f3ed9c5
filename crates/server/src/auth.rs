//! SASL authentication on a connection: the Hot Rod side of `ironrod-sasl`.
//!
//! `ironrod-sasl` runs the mechanisms; this module owns what Hot Rod adds around them
//! (hotrod-protocol.md §19): the per-connection state, the `completed` flag, the reference
//! server's error texts, the gate in front of every other operation, and loading the users.
//! TLS does not exist yet, so every connection is treated as cleartext.

use std::sync::Arc;

use bytes::Bytes;
use ironrod_codec::{OpCode, ResponseBody, Status};
use ironrod_sasl::{
    AuthError, CredentialStore, Mechanism, MechanismName, Mechanisms, RandomError, SaslConfig,
    Step, StoreError,
};
use tracing::{info, warn};

use crate::config::SecurityConfig;
use crate::errors::Refusal;
use crate::handler::{Outcome, Reply};
use crate::session::Session;
use crate::state::State;

/// Connections are plain TCP until TLS lands; PLAIN is then governed by `plain_in_clear`.
const TLS: bool = false;

/// Where one connection stands. A failed step drops back to `Unauthenticated`, so the client
/// may start over on the same connection, as the reference server allows.
#[derive(Debug, Default)]
pub enum AuthState {
    #[default]
    Unauthenticated,
    /// A challenge was sent; the next AUTH feeds this mechanism.
    InProgress(Mechanism),
    /// Roles are kept for the authorization work that comes later.
    Authenticated { user: String, roles: Vec<String> },
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

    /// The refusal for an operation that needs an authenticated connection and lacks one
    /// (§19.3): everything but PING, AUTH_MECH_LIST and AUTH.
    pub(crate) fn gate(&self, opcode: OpCode, session: &Session) -> Option<Refusal> {
        if self.auth.is_none()
            || session.auth.is_authenticated()
            || matches!(opcode, OpCode::PING | OpCode::AUTH_MECH_LIST | OpCode::AUTH)
        {
            return None;
        }
        let name = opcode.name().unwrap_or("UNKNOWN");
        Some(Refusal::server(format!(
            "java.lang.SecurityException: ISPN006017: Operation '{name}' requires authentication"
        )))
    }

    /// AUTH_MECH_LIST: the mechanisms this connection may use (none when authentication is off).
    pub(crate) fn auth_mech_list(&self) -> Outcome {
        let names = self
            .auth
            .as_ref()
            .map(|m| m.offered(TLS).iter().map(|n| n.to_string()).collect())
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
            AuthState::Unauthenticated => match mechanisms.start(mechanism, TLS) {
                Ok(m) => m,
                Err(e) => return Err(self.auth_failed(session, mechanism, &e)),
            },
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
                info!(peer = %session.peer, %user, mechanism = %name, "authenticated");
                session.auth = AuthState::Authenticated { user, roles };
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
        warn!(peer = %session.peer, user, mechanism, "authentication failed: {e}");
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
}
