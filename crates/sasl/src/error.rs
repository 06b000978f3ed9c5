//! Typed failures. Every variant names what went wrong precisely enough for the server to log it,
//! and none of them carries a secret (no password, proof, response hash or verifier).

use std::path::PathBuf;

use crate::MechanismName;

/// Why an authentication exchange failed.
///
/// The server maps all of these to the same Hot Rod error ("ISPN006024: Invalid credentials" or
/// "ISPN006025: Invalid mech") so a client learns nothing from the variant; the variant is for
/// the server's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The client asked for a mechanism this crate does not implement.
    #[error("unknown SASL mechanism '{name}'")]
    UnknownMechanism { name: String },
    /// The mechanism exists but the configuration does not enable it.
    #[error("SASL mechanism {mechanism} is not enabled")]
    MechanismNotEnabled { mechanism: MechanismName },
    /// A cleartext mechanism (PLAIN) was requested on a connection without TLS and the
    /// configuration does not allow that.
    #[error("SASL mechanism {mechanism} is not allowed without TLS")]
    CleartextNotAllowed { mechanism: MechanismName },
    /// No user of that name is in the credential store.
    #[error("{mechanism}: unknown user '{user}'")]
    UnknownUser {
        mechanism: MechanismName,
        user: String,
    },
    /// The user exists but the proof, response or password did not match.
    #[error("{mechanism}: wrong password for user '{user}'")]
    WrongPassword {
        mechanism: MechanismName,
        user: String,
    },
    /// The user exists but has no stored verifier this mechanism can use (for example no
    /// DIGEST-MD5 hash for the realm the client chose, or no SCRAM-SHA-384 verifier).
    #[error("{mechanism}: user '{user}' has no stored credential for {what}")]
    NoCredential {
        mechanism: MechanismName,
        user: String,
        what: String,
    },
    /// DIGEST-MD5: the client's realm is not one the server offered.
    #[error("DIGEST-MD5: realm '{realm}' was not offered")]
    RealmMismatch { realm: String },
    /// DIGEST-MD5: the digest-uri does not name this service and server.
    #[error("DIGEST-MD5: digest-uri '{got}' does not match '{expected}'")]
    DigestUriMismatch { expected: String, got: String },
    /// The client echoed a nonce that is not the one the server issued (DIGEST-MD5 `nonce`,
    /// SCRAM `r=`).
    #[error("{mechanism}: nonce mismatch")]
    NonceMismatch { mechanism: MechanismName },
    /// DIGEST-MD5: the nonce-count of the first response is not 00000001.
    #[error("DIGEST-MD5: nonce-count '{got}' is not 00000001")]
    NonceCountMismatch { got: String },
    /// DIGEST-MD5: the client chose a quality of protection other than `auth`, the only one
    /// offered (auth-int and auth-conf would need wrapping of all later traffic).
    #[error("DIGEST-MD5: quality of protection '{qop}' is not supported")]
    QopUnsupported { qop: String },
    /// SCRAM: the client asked for channel binding (`p=`), which this server does not offer.
    #[error("{mechanism}: channel binding '{requested}' is not supported")]
    ChannelBindingUnsupported {
        mechanism: MechanismName,
        requested: String,
    },
    /// The client asked to act as another identity; only authzid = authcid (or none) is allowed.
    #[error("{mechanism}: user '{user}' may not act as '{authzid}'")]
    AuthzidDenied {
        mechanism: MechanismName,
        user: String,
        authzid: String,
    },
    /// The operating system's random number generator failed while making a nonce.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// The client's message does not parse.
    #[error("{mechanism}: malformed message: {what}")]
    Malformed {
        mechanism: MechanismName,
        what: String,
    },
}

impl AuthError {
    pub(crate) fn malformed(mechanism: MechanismName, what: impl Into<String>) -> Self {
        Self::Malformed {
            mechanism,
            what: what.into(),
        }
    }

    /// True when the failure says the client's credentials were wrong (unknown user, wrong
    /// password, no usable credential), as opposed to a protocol or configuration problem.
    pub fn is_bad_credentials(&self) -> bool {
        matches!(
            self,
            Self::UnknownUser { .. } | Self::WrongPassword { .. } | Self::NoCredential { .. }
        )
    }
}

/// Why the credential store could not be read, written or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the users file failed.
    #[error("users file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The users file is not valid TOML or does not have the expected shape.
    #[error("users file does not parse: {0}")]
    Parse(String),
    /// Serialising the store to TOML failed.
    #[error("users file cannot be written: {0}")]
    Serialize(String),
    /// A stored verifier is malformed (bad hex or base64, wrong length, zero iterations).
    #[error("user '{user}': invalid verifier {what}")]
    InvalidVerifier { user: String, what: String },
    /// `add_user` for a name that is already present.
    #[error("user '{0}' already exists")]
    UserExists(String),
    /// User names and passwords may not be empty.
    #[error("empty {0}")]
    Empty(&'static str),
    /// Only one of user and password was supplied to `seed_from_env`.
    #[error("both a user and a password are needed to seed a user (only the {present} was given)")]
    IncompleteSeed { present: &'static str },
    /// Fewer than 4096 PBKDF2 iterations were requested (RFC 7677 §4 minimum).
    #[error("{0} iterations is below the minimum of 4096")]
    TooFewIterations(u32),
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
}

/// The operating system's random number generator failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("random number generator failed: {0}")]
pub struct RandomError(pub(crate) String);

impl From<getrandom::Error> for RandomError {
    fn from(e: getrandom::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<getrandom::Error> for AuthError {
    fn from(e: getrandom::Error) -> Self {
        Self::Random(e.to_string())
    }
}

impl From<getrandom::Error> for StoreError {
    fn from(e: getrandom::Error) -> Self {
        Self::Random(e.to_string())
    }
}
