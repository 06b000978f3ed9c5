//! PLAIN server (RFC 4616): `[authzid] NUL authcid NUL passwd`.
//!
//! ```text
//!   Initial ──empty (once)──▶ Initial (empty challenge)
//!      └──message──▶ Success { final_data: None }   or Err
//! ```
//!
//! Passwords are not stored, so the password is checked by deriving the user's strongest SCRAM
//! verifier from it (same salt and iterations) and comparing StoredKey and ServerKey; see
//! [`crate::ScramVerifier::verify_password`].

use std::sync::Arc;

use crate::mechanism::{Context, Mechanism, MechanismName, Step};
use crate::{AuthError, ScramHash, ScramVerifier};

const MECH: MechanismName = MechanismName::Plain;

/// RFC 4616 §2: each of authzid, authcid and passwd is at most 255 octets.
const MAX_FIELD: usize = 255;

#[derive(Debug)]
pub(crate) struct PlainServer {
    ctx: Arc<Context>,
    prompted: bool,
}

impl PlainServer {
    pub(crate) fn new(ctx: Arc<Context>) -> Self {
        Self {
            ctx,
            prompted: false,
        }
    }

    pub(crate) fn step(self, client: &[u8]) -> Result<Step, AuthError> {
        if client.is_empty() {
            if self.prompted {
                return Err(AuthError::malformed(MECH, "empty message"));
            }
            let next = Self {
                prompted: true,
                ..self
            };
            return Ok(Step::Challenge {
                challenge: Vec::new(),
                next: Mechanism::plain(next),
            });
        }
        let mut parts = client.split(|b| *b == 0);
        let (Some(authzid), Some(authcid), Some(passwd), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::malformed(
                MECH,
                "expected authzid NUL authcid NUL passwd",
            ));
        };
        if authcid.is_empty() || passwd.is_empty() {
            return Err(AuthError::malformed(MECH, "empty authcid or password"));
        }
        if [authzid, authcid, passwd]
            .iter()
            .any(|f| f.len() > MAX_FIELD)
        {
            return Err(AuthError::malformed(MECH, "field longer than 255 octets"));
        }
        let utf8 = |f: &[u8], what: &str| {
            String::from_utf8(f.to_vec())
                .map_err(|_| AuthError::malformed(MECH, format!("{what} is not UTF-8")))
        };
        let user = utf8(authcid, "authcid")?;
        let authzid = utf8(authzid, "authzid")?;
        let password = utf8(passwd, "password")?;

        let Some(stored) = self.ctx.store.user(&user) else {
            // Spend the same PBKDF2 work as for a real user, so response time does not tell
            // whether the name exists.
            let salt = self.ctx.mock_salt(&user);
            let iterations = self.ctx.config.mock_iterations.max(1);
            let _ = ScramVerifier::derive(ScramHash::Sha512, &password, &salt, iterations);
            return Err(AuthError::UnknownUser {
                mechanism: MECH,
                user,
            });
        };
        let (hash, verifier) = stored
            .strongest_scram()
            .ok_or_else(|| AuthError::NoCredential {
                mechanism: MECH,
                user: user.clone(),
                what: "any SCRAM verifier (PLAIN is checked against one)".to_owned(),
            })?;
        if !verifier.verify_password(hash, &password) {
            return Err(AuthError::WrongPassword {
                mechanism: MECH,
                user,
            });
        }
        if !authzid.is_empty() && authzid != user {
            return Err(AuthError::AuthzidDenied {
                mechanism: MECH,
                user,
                authzid,
            });
        }
        Ok(Step::Success {
            roles: self.ctx.roles(&user),
            user,
            final_data: None,
        })
    }
}
