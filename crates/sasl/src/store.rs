//! The credential store: users, their roles and per-mechanism verifiers, kept in a TOML file.
//!
//! No plaintext password is ever stored. Per user the file holds:
//! * `roles`: a list of strings the server maps to permissions;
//! * `digest-md5`: per realm, hex of `H(user:realm:password)` (RFC 2831 §2.1.2.1), the value
//!   DIGEST-MD5 needs and nothing more;
//! * `scram.<MECH>`: per SCRAM hash, the salt (base64), iteration count and the base64
//!   `StoredKey` and `ServerKey` of RFC 5802 §3.
//!
//! ```toml
//! [users.keycloak]
//! roles = ["admin"]
//!
//! [users.keycloak.digest-md5]
//! default = "3a6c…"
//!
//! [users.keycloak.scram.SCRAM-SHA-512]
//! salt = "…"
//! iterations = 4096
//! stored-key = "…"
//! server-key = "…"
//! ```
//!
//! The DIGEST-MD5 values are password-equivalent for DIGEST-MD5 (anyone holding one can log
//! in with that mechanism), so the file is written with mode 0600; an operator who does not
//! need DIGEST-MD5 can add users with no realms. The SCRAM values cannot be replayed as a login.
//!
//! PLAIN is verified against a SCRAM verifier (see [`ScramVerifier::verify_password`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::crypto::{b64_decode, b64_encode, ct_eq, hex, md5, random_bytes, unhex};
use crate::{ScramHash, StoreError};

/// PBKDF2 iterations used by [`CredentialStore::add_user`] unless changed (RFC 7677 §4 minimum).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Length of the random salt generated for each SCRAM verifier.
const SALT_LEN: usize = 16;

/// A SCRAM verifier (RFC 5802 §3): what the server needs to check a client proof and to prove
/// itself, without being able to log in as the user.
///
/// `Debug` shows the salt and iterations only: the keys are secrets (ServerKey lets its holder
/// impersonate the server).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl ScramVerifier {
    /// Derives the verifier for `password` with `salt` and `iterations` (the password is used
    /// as its UTF-8 bytes; SASLprep is not applied, which is the identity for ASCII).
    pub fn derive(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = hash.salted_password(password.as_bytes(), salt, iterations);
        let (stored_key, server_key) = keys_from_salted(hash, &salted);
        Self {
            salt: salt.to_vec(),
            iterations,
            stored_key,
            server_key,
        }
    }

    /// Builds a verifier from stored parts.
    pub fn from_parts(
        salt: Vec<u8>,
        iterations: u32,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
    ) -> Self {
        Self {
            salt,
            iterations,
            stored_key,
            server_key,
        }
    }

    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// `StoredKey = H(HMAC(SaltedPassword, "Client Key"))`.
    pub fn stored_key(&self) -> &[u8] {
        &self.stored_key
    }

    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    pub fn server_key(&self) -> &[u8] {
        &self.server_key
    }

    /// Checks a cleartext password (PLAIN) by re-deriving StoredKey and ServerKey with this
    /// verifier's salt and iterations and comparing both in constant time. This is how PLAIN
    /// works without a stored password; it costs one PBKDF2 run per attempt.
    pub fn verify_password(&self, hash: ScramHash, password: &str) -> bool {
        let salted = hash.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let (stored_key, server_key) = keys_from_salted(hash, &salted);
        // Both compared, no short-circuit, so timing does not tell which one differed.
        let a = ct_eq(&stored_key, &self.stored_key);
        let b = ct_eq(&server_key, &self.server_key);
        a & b
    }
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("salt", &b64_encode(&self.salt))
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

pub(crate) fn keys_from_salted(hash: ScramHash, salted: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let client_key = hash.hmac(salted, b"Client Key");
    let stored_key = hash.hash(&client_key);
    let server_key = hash.hmac(salted, b"Server Key");
    (stored_key, server_key)
}

/// `H({ username-value, ":", realm-value, ":", passwd })` of RFC 2831 §2.1.2.1: the secret a
/// DIGEST-MD5 server needs per realm.
///
/// Encoding follows RFC 2831 §2.1.2.1 as the JDK and WildFly Elytron implement it: when the user
/// name and the password are both representable in ISO 8859-1, all three strings are hashed as
/// ISO 8859-1; otherwise as UTF-8. For ASCII both are the same bytes.
pub fn digest_md5_secret(user: &str, realm: &str, password: &str) -> [u8; 16] {
    let latin1 = is_latin1(user) && is_latin1(password);
    let enc = |s: &str| -> Vec<u8> {
        if latin1 && is_latin1(s) {
            // Every char is <= U+00FF here, so the truncation is exact.
            s.chars().map(|c| u32::from(c) as u8).collect()
        } else {
            s.as_bytes().to_vec()
        }
    };
    md5(&[&enc(user), b":", &enc(realm), b":", &enc(password)])
}

fn is_latin1(s: &str) -> bool {
    s.chars().all(|c| u32::from(c) <= 0xff)
}

/// One user: roles and verifiers.
///
/// `Debug` omits the DIGEST-MD5 secrets, which are password-equivalent for DIGEST-MD5.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct User {
    roles: Vec<String>,
    digest_md5: BTreeMap<String, [u8; 16]>,
    scram: BTreeMap<ScramHash, ScramVerifier>,
}

impl User {
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The DIGEST-MD5 secret for `realm`, if one is stored.
    pub fn digest_md5(&self, realm: &str) -> Option<&[u8; 16]> {
        self.digest_md5.get(realm)
    }

    /// The SCRAM verifier for `hash`, if one is stored.
    pub fn scram(&self, hash: ScramHash) -> Option<&ScramVerifier> {
        self.scram.get(&hash)
    }

    /// The strongest SCRAM verifier stored; PLAIN checks passwords against it.
    pub fn strongest_scram(&self) -> Option<(ScramHash, &ScramVerifier)> {
        self.scram.iter().next_back().map(|(h, v)| (*h, v))
    }

    /// Realms that have a DIGEST-MD5 secret.
    pub fn digest_md5_realms(&self) -> impl Iterator<Item = &str> {
        self.digest_md5.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("roles", &self.roles)
            .field(
                "digest_md5_realms",
                &self.digest_md5.keys().collect::<Vec<_>>(),
            )
            .field("scram", &self.scram)
            .finish()
    }
}

/// Users by name. Load it from a TOML users file, or build it with [`CredentialStore::add_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialStore {
    users: BTreeMap<String, User>,
    iterations: u32,
}

impl Default for CredentialStore {
    fn default() -> Self {
        Self {
            users: BTreeMap::new(),
            iterations: DEFAULT_ITERATIONS,
        }
    }
}

impl CredentialStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a users file.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let file: UsersFile = toml::from_str(text).map_err(|e| StoreError::Parse(e.to_string()))?;
        let mut users = BTreeMap::new();
        for (name, record) in file.users {
            let user = record.into_user(&name)?;
            users.insert(name, user);
        }
        Ok(Self {
            users,
            iterations: DEFAULT_ITERATIONS,
        })
    }

    /// Reads and parses a users file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The users file text.
    pub fn to_toml(&self) -> Result<String, StoreError> {
        let file = UsersFile {
            users: self
                .users
                .iter()
                .map(|(n, u)| (n.clone(), UserRecord::from_user(u)))
                .collect(),
        };
        toml::to_string_pretty(&file).map_err(|e| StoreError::Serialize(e.to_string()))
    }

    /// Writes the users file: to a sibling temporary file first, then renamed over `path`, so
    /// a crash never leaves a half-written file. On Unix the file is created with mode 0600:
    /// the DIGEST-MD5 secrets are password-equivalent for that mechanism.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), StoreError> {
        let path = path.as_ref();
        let text = self.to_toml()?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        write_private(&tmp, text.as_bytes()).map_err(|source| StoreError::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// PBKDF2 iterations for verifiers computed from now on (at least 4096).
    pub fn set_iterations(&mut self, iterations: u32) -> Result<(), StoreError> {
        if iterations < DEFAULT_ITERATIONS {
            return Err(StoreError::TooFewIterations(iterations));
        }
        self.iterations = iterations;
        Ok(())
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Adds a user, computing a DIGEST-MD5 secret for each of `realms` and a SCRAM verifier for
    /// every SCRAM hash (fresh random salt each). Fails if the user exists.
    pub fn add_user(
        &mut self,
        name: &str,
        password: &str,
        roles: &[String],
        realms: &[String],
    ) -> Result<(), StoreError> {
        if self.users.contains_key(name) {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        self.set_user(name, password, roles, realms)
    }

    /// Adds or replaces a user (see [`CredentialStore::add_user`]).
    pub fn set_user(
        &mut self,
        name: &str,
        password: &str,
        roles: &[String],
        realms: &[String],
    ) -> Result<(), StoreError> {
        if name.is_empty() {
            return Err(StoreError::Empty("user name"));
        }
        if password.is_empty() {
            return Err(StoreError::Empty("password"));
        }
        let mut user = User {
            roles: roles.to_vec(),
            ..User::default()
        };
        for realm in realms {
            user.digest_md5
                .insert(realm.clone(), digest_md5_secret(name, realm, password));
        }
        for hash in ScramHash::ALL {
            let mut salt = [0u8; SALT_LEN];
            random_bytes(&mut salt)?;
            user.scram.insert(
                hash,
                ScramVerifier::derive(hash, password, &salt, self.iterations),
            );
        }
        self.users.insert(name.to_owned(), user);
        Ok(())
    }

    /// Seeds one user from environment-style values (the server passes, say,
    /// `IRONROD_USER` and `IRONROD_PASSWORD`). Neither given: nothing happens, `Ok(false)`.
    /// Both given: the user is added or replaced, `Ok(true)`. Only one: an error, since a
    /// half-configured seed is almost certainly a deployment mistake.
    pub fn seed_from_env(
        &mut self,
        user: Option<&str>,
        password: Option<&str>,
        roles: &[String],
        realms: &[String],
    ) -> Result<bool, StoreError> {
        match (user, password) {
            (None, None) => Ok(false),
            (Some(_), None) => Err(StoreError::IncompleteSeed { present: "user" }),
            (None, Some(_)) => Err(StoreError::IncompleteSeed {
                present: "password",
            }),
            (Some(u), Some(p)) => self.set_user(u, p, roles, realms).map(|()| true),
        }
    }

    /// Removes a user; true if it existed.
    pub fn remove_user(&mut self, name: &str) -> bool {
        self.users.remove(name).is_some()
    }

    /// Looks a user up.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// User names, sorted.
    pub fn user_names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn insert_verifier(&mut self, name: &str, hash: ScramHash, v: ScramVerifier) {
        self.users
            .entry(name.to_owned())
            .or_default()
            .scram
            .insert(hash, v);
    }

    #[cfg(test)]
    pub(crate) fn insert_digest_md5(&mut self, name: &str, realm: &str, password: &str) {
        let secret = digest_md5_secret(name, realm, password);
        self.users
            .entry(name.to_owned())
            .or_default()
            .digest_md5
            .insert(realm.to_owned(), secret);
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: BTreeMap<String, UserRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRecord {
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default, rename = "digest-md5")]
    digest_md5: BTreeMap<String, String>,
    #[serde(default)]
    scram: BTreeMap<String, ScramRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ScramRecord {
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

impl UserRecord {
    fn into_user(self, name: &str) -> Result<User, StoreError> {
        let invalid = |what: String| StoreError::InvalidVerifier {
            user: name.to_owned(),
            what,
        };
        let mut user = User {
            roles: self.roles,
            ..User::default()
        };
        for (realm, hexed) in self.digest_md5 {
            let bytes = unhex(&hexed)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| invalid(format!("digest-md5.{realm}: not 32 hex digits")))?;
            user.digest_md5.insert(realm, bytes);
        }
        for (mech, rec) in self.scram {
            let hash = ScramHash::from_mechanism_name(&mech)
                .ok_or_else(|| invalid(format!("scram.{mech}: unknown SCRAM mechanism")))?;
            let field = |what: &str, value: &str, len: Option<usize>| {
                b64_decode(value)
                    .filter(|b| len.is_none_or(|l| b.len() == l))
                    .ok_or_else(|| invalid(format!("scram.{mech}.{what}: bad base64 or length")))
            };
            let salt = field("salt", &rec.salt, None)?;
            let stored_key = field("stored-key", &rec.stored_key, Some(hash.output_len()))?;
            let server_key = field("server-key", &rec.server_key, Some(hash.output_len()))?;
            if rec.iterations == 0 || salt.is_empty() {
                return Err(invalid(format!(
                    "scram.{mech}: zero iterations or empty salt"
                )));
            }
            user.scram.insert(
                hash,
                ScramVerifier::from_parts(salt, rec.iterations, stored_key, server_key),
            );
        }
        Ok(user)
    }

    fn from_user(user: &User) -> Self {
        Self {
            roles: user.roles.clone(),
            digest_md5: user
                .digest_md5
                .iter()
                .map(|(r, h)| (r.clone(), hex(h)))
                .collect(),
            scram: user
                .scram
                .iter()
                .map(|(h, v)| {
                    let rec = ScramRecord {
                        salt: b64_encode(&v.salt),
                        iterations: v.iterations,
                        stored_key: b64_encode(&v.stored_key),
                        server_key: b64_encode(&v.server_key),
                    };
                    (h.mechanism_name().to_owned(), rec)
                })
                .collect(),
        }
    }
}
