//! The mechanism factory and the per-connection mechanism state machine.

use std::fmt;
use std::sync::Arc;

use crate::digest_md5::DigestMd5Server;
use crate::external::ExternalServer;
use crate::plain::PlainServer;
use crate::scram::{ScramHash, ScramServer};
use crate::{AuthError, CredentialStore, RandomError};

/// A SASL mechanism this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MechanismName {
    /// RFC 4616.
    Plain,
    /// RFC 2831 (historic, but what Keycloak's XML `<digest>` remote stores use).
    DigestMd5,
    /// RFC 5802 with the given hash (RFC 7677 for SHA-256; SHA-384/512 by the same pattern).
    Scram(ScramHash),
    /// RFC 4422 appendix A: the TLS client certificate names the user. Not in
    /// [`MechanismName::ALL`]: it is offered only on connections that presented a verified
    /// certificate (see [`Mechanisms::start_external`]).
    External,
}

impl MechanismName {
    /// Every implemented mechanism, strongest first (the order `AUTH_MECH_LIST` should use).
    pub const ALL: [MechanismName; 6] = [
        Self::Scram(ScramHash::Sha512),
        Self::Scram(ScramHash::Sha384),
        Self::Scram(ScramHash::Sha256),
        Self::Scram(ScramHash::Sha1),
        Self::DigestMd5,
        Self::Plain,
    ];

    /// The IANA name, as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::DigestMd5 => "DIGEST-MD5",
            Self::Scram(h) => h.mechanism_name(),
            Self::External => "EXTERNAL",
        }
    }

    /// Parses an IANA mechanism name (SASL names are case-sensitive upper case; this accepts
    /// any case because some clients lower-case configuration values).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Self::External])
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
    }

    /// True for mechanisms that send the password itself (PLAIN), which should only run
    /// inside TLS unless the operator says otherwise.
    pub fn is_cleartext(self) -> bool {
        matches!(self, Self::Plain)
    }
}

impl fmt::Display for MechanismName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings for the mechanism factory.
///
/// `#[non_exhaustive]`: start from [`SaslConfig::default`] and assign fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaslConfig {
    /// The server name of the SASL service (`serverName` in Java). DIGEST-MD5 requires the
    /// client's digest-uri to be `hotrod/<server_name>`. Keycloak and the Java client default to
    /// `infinispan`.
    pub server_name: String,
    /// DIGEST-MD5 realms offered in the challenge, in order. Keycloak uses `default`.
    pub realms: Vec<String>,
    /// Mechanisms the server is willing to run, in the order to advertise them.
    pub enabled: Vec<MechanismName>,
    /// Whether PLAIN may be offered and run on a connection without TLS.
    pub plain_in_clear: bool,
    /// PBKDF2 iterations announced for unknown users (so that their challenge looks like a
    /// real user's; see [`Mechanisms`]). Should match the store's iteration count.
    pub mock_iterations: u32,
}

impl Default for SaslConfig {
    fn default() -> Self {
        Self {
            server_name: "infinispan".to_owned(),
            realms: vec!["default".to_owned()],
            enabled: MechanismName::ALL.to_vec(),
            plain_in_clear: false,
            mock_iterations: crate::store::DEFAULT_ITERATIONS,
        }
    }
}

/// What the mechanisms of one factory share: the store snapshot, the configuration and the key
/// that derives fake salts for unknown users.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) store: Arc<CredentialStore>,
    pub(crate) config: SaslConfig,
    /// SASL service name; `hotrod` in production, settable in unit tests for RFC vectors.
    pub(crate) protocol: String,
    mock_key: [u8; 32],
}

impl Context {
    /// A salt for a user that does not exist, stable per (factory, user) so repeated attempts
    /// for the same name see the same salt, as they would for a real user.
    pub(crate) fn mock_salt(&self, user: &str) -> Vec<u8> {
        let mut salt = ScramHash::Sha256.hmac(&self.mock_key, user.as_bytes());
        salt.truncate(16);
        salt
    }

    pub(crate) fn roles(&self, user: &str) -> Vec<String> {
        self.store
            .user(user)
            .map(|u| u.roles().to_vec())
            .unwrap_or_default()
    }
}

/// Creates one [`Mechanism`] per authentication attempt.
///
/// Built once from a credential store snapshot and the configuration; cheap to share
/// (`Arc` inside). To reload users, build a new factory.
///
/// For SCRAM, an unknown user gets a normal-looking server-first message (a salt derived from
/// a per-factory random key and the user name), and the failure is reported as
/// [`AuthError::UnknownUser`] only after the client's proof; this keeps user names from being
/// probed through the exchange while the server still logs the exact reason.
#[derive(Debug, Clone)]
pub struct Mechanisms {
    ctx: Arc<Context>,
}

impl Mechanisms {
    /// A factory over `store` with `config`. Fails only if the OS random generator fails.
    pub fn new(store: Arc<CredentialStore>, config: SaslConfig) -> Result<Self, RandomError> {
        let mut mock_key = [0u8; 32];
        crate::crypto::random_bytes(&mut mock_key)?;
        Ok(Self {
            ctx: Arc::new(Context {
                store,
                config,
                protocol: "hotrod".to_owned(),
                mock_key,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SaslConfig {
        &self.ctx.config
    }

    /// The credential store in use.
    pub fn store(&self) -> &Arc<CredentialStore> {
        &self.ctx.store
    }

    /// Mechanisms to list in `AUTH_MECH_LIST` for a connection; `tls` says whether the
    /// connection is encrypted (PLAIN is left out in clear unless `plain_in_clear`).
    pub fn offered(&self, tls: bool) -> Vec<MechanismName> {
        self.ctx
            .config
            .enabled
            .iter()
            .copied()
            .filter(|m| tls || !m.is_cleartext() || self.ctx.config.plain_in_clear)
            .collect()
    }

    /// Starts an exchange for the mechanism the client named.
    pub fn start(&self, name: &str, tls: bool) -> Result<Mechanism, AuthError> {
        let mechanism = MechanismName::parse(name).ok_or_else(|| AuthError::UnknownMechanism {
            name: name.to_owned(),
        })?;
        if !self.ctx.config.enabled.contains(&mechanism) {
            return Err(AuthError::MechanismNotEnabled { mechanism });
        }
        if mechanism.is_cleartext() && !tls && !self.ctx.config.plain_in_clear {
            return Err(AuthError::CleartextNotAllowed { mechanism });
        }
        let ctx = Arc::clone(&self.ctx);
        let state = match mechanism {
            MechanismName::External => {
                // Only `start_external` knows the certificate's identity.
                return Err(AuthError::MechanismNotEnabled { mechanism });
            }
            MechanismName::Plain => State::Plain(PlainServer::new(ctx)),
            MechanismName::DigestMd5 => State::DigestMd5(DigestMd5Server::new(ctx, None)),
            MechanismName::Scram(hash) => State::Scram(ScramServer::new(ctx, hash, None)),
        };
        Ok(Mechanism { state })
    }

    /// Starts EXTERNAL for a connection whose TLS client certificate was verified and names
    /// `identity` (the subject's common name). The caller decides whether the certificate
    /// counts; this only maps the identity to a stored user and its roles.
    pub fn start_external(&self, identity: &str) -> Mechanism {
        Mechanism {
            state: State::External(ExternalServer::new(
                Arc::clone(&self.ctx),
                identity.to_owned(),
            )),
        }
    }

    #[cfg(test)]
    pub(crate) fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    #[cfg(test)]
    pub(crate) fn with_protocol(
        store: Arc<CredentialStore>,
        config: SaslConfig,
        protocol: &str,
    ) -> Self {
        let ctx = Context {
            store,
            config,
            protocol: protocol.to_owned(),
            mock_key: [7; 32],
        };
        Self { ctx: Arc::new(ctx) }
    }
}

/// One server-side exchange in progress. Each [`Mechanism::step`] consumes it and yields the
/// next state inside [`Step::Challenge`], or the outcome; a finished or failed exchange cannot
/// be stepped again by construction.
///
/// ```text
/// PLAIN       start ─authzid␀authcid␀passwd─▶ Success { final_data: None }
/// SCRAM-*     start ─client-first─▶ Challenge(server-first) ─client-final─▶ Success { v=… }
/// DIGEST-MD5  start ─empty─▶ Challenge(digest-challenge) ─digest-response─▶ Success { rspauth=… }
/// ```
/// An empty first message to PLAIN or SCRAM (no initial response) gets one empty challenge
/// (RFC 4422 §5); any failing step returns `Err` and the exchange is over.
#[derive(Debug)]
pub struct Mechanism {
    state: State,
}

#[derive(Debug)]
enum State {
    Plain(PlainServer),
    DigestMd5(DigestMd5Server),
    Scram(ScramServer),
    External(ExternalServer),
}

/// The result of one successful step.
#[derive(Debug)]
#[must_use]
pub enum Step {
    /// Send `challenge` to the client and feed its answer to `next`.
    Challenge { challenge: Vec<u8>, next: Mechanism },
    /// Authenticated as `user`. `final_data` is the mechanism's additional data with success
    /// (SCRAM `v=…`, DIGEST-MD5 `rspauth=…`), which Hot Rod sends with `completed = 0`
    /// (hotrod-protocol.md §19.2); `None` for PLAIN (`completed = 1`, empty challenge).
    Success {
        user: String,
        roles: Vec<String>,
        final_data: Option<Vec<u8>>,
    },
}

impl Mechanism {
    /// Which mechanism this exchange runs.
    pub fn name(&self) -> MechanismName {
        match &self.state {
            State::Plain(_) => MechanismName::Plain,
            State::DigestMd5(_) => MechanismName::DigestMd5,
            State::Scram(s) => MechanismName::Scram(s.hash()),
            State::External(_) => MechanismName::External,
        }
    }

    /// Feeds the client's next message (the initial response first, possibly empty).
    pub fn step(self, client: &[u8]) -> Result<Step, AuthError> {
        match self.state {
            State::Plain(s) => s.step(client),
            State::DigestMd5(s) => s.step(client),
            State::Scram(s) => s.step(client),
            State::External(s) => s.step(client),
        }
    }

    pub(crate) fn plain(s: PlainServer) -> Self {
        Self {
            state: State::Plain(s),
        }
    }

    pub(crate) fn digest_md5(s: DigestMd5Server) -> Self {
        Self {
            state: State::DigestMd5(s),
        }
    }

    pub(crate) fn scram(s: ScramServer) -> Self {
        Self {
            state: State::Scram(s),
        }
    }
}
