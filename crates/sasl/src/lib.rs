//! Server-side SASL for Ironrod: the mechanisms Hot Rod clients (Keycloak above all) use to
//! authenticate, and the credential store they check against.
//!
//! # What this crate owns
//! * DIGEST-MD5 (RFC 2831; `qop=auth` only), SCRAM-SHA-1/256/384/512 (RFC 5802, RFC 7677;
//!   no channel binding) and PLAIN (RFC 4616) as **sans-I/O state machines**: client bytes in,
//!   challenge bytes or an outcome out ([`Mechanism::step`] consumes the state and returns the
//!   next one inside [`Step::Challenge`]).
//! * The factory that creates one [`Mechanism`] per attempt from configuration
//!   ([`SaslConfig`]: server name, DIGEST-MD5 realms, enabled list, PLAIN-in-clear flag) and a
//!   [`CredentialStore`] snapshot, and the mechanism list to advertise ([`Mechanisms::offered`]).
//! * The users file (TOML): roles and stored verifiers per mechanism, never a plaintext
//!   password (see [`store`]).
//! * Typed failure reasons ([`AuthError`]) precise enough to log, with no secrets in them.
//!
//! # What it does not own
//! Hot Rod framing (the AUTH / AUTH_MECH_LIST opcodes, the `completed` flag, the ISPN error
//! strings), sockets, TLS and permission checks live in `ironrod-server`. This crate only says
//! whether a connection is authenticated, as whom, with which roles, and which final server
//! data (SCRAM `v=`, DIGEST-MD5 `rspauth=`) to send (hotrod-protocol.md §19.2 says how).
//!
//! # Why hand-written on RustCrypto rather than `rsasl` or `sasl`
//! * `rsasl` 2.3 (checked with `cargo info rsasl`; its docs list the mechanisms) dropped
//!   DIGEST-MD5 in version 2 and has SCRAM only for SHA-1 and SHA-256, while Keycloak hard-codes
//!   SCRAM-SHA-512 and its XML `<digest>` stores use DIGEST-MD5. It drives the exchange through
//!   its own session and callback framework, so the credential lookup and the precise failure
//!   reason would come back through callbacks instead of values we own, and its default
//!   features pull in `libgssapi` (a C library).
//! * The `sasl` crate 0.5 (xmpp-rs) describes itself as client-side ("Currently only does the
//!   client side"), with no DIGEST-MD5 either.
//! * We need: a server-side state machine per connection that we step ourselves (`self` by
//!   value, so a finished exchange cannot be reused), verifiers stored in our own file format
//!   (salt, iterations, StoredKey, ServerKey; H(user:realm:password) per realm), typed reasons,
//!   and no C dependencies. The protocol logic is small; the cryptography is not ours: `md-5`,
//!   `sha1`, `sha2`, `hmac`, `pbkdf2` (RustCrypto, all on the `digest` 0.10 generation so they
//!   compose), `base64`, `subtle` for constant-time comparison and `getrandom` for nonces and
//!   salts (the OS CSPRNG).
//!
//! # Conventions and limits
//! * User names and passwords are used as UTF-8 without SASLprep (RFC 4013); for ASCII that is
//!   the identity. DIGEST-MD5 hashes Latin-1 strings as ISO 8859-1 as RFC 2831 demands.
//! * authzid must be absent or equal to the authenticated user.
//! * PLAIN is checked against the user's strongest SCRAM verifier (one PBKDF2 per attempt).

mod crypto;
mod digest_md5;
mod error;
mod external;
mod mechanism;
mod plain;
mod scram;
pub mod store;

pub use error::{AuthError, RandomError, StoreError};
pub use mechanism::{Mechanism, MechanismName, Mechanisms, SaslConfig, Step};
pub use scram::ScramHash;
pub use store::{digest_md5_secret, CredentialStore, ScramVerifier, User, DEFAULT_ITERATIONS};
