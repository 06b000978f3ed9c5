//! EXTERNAL server (RFC 4422 appendix A): the identity comes from outside SASL, here the
//! subject of the client certificate that TLS verified. The client's only message is an
//! optional authorization identity, which must be empty or equal the external identity.
//!
//! ```text
//!   Initial ──[authzid]──▶ Success { final_data: None }   or Err
//! ```
//! The user must exist in the credential store: its roles come from there, as they would for
//! a password login (a certificate proves who the client is, not what it may do).

use std::sync::Arc;

use crate::mechanism::{Context, Step};
use crate::{AuthError, MechanismName};

const MECH: MechanismName = MechanismName::External;

#[derive(Debug)]
pub(crate) struct ExternalServer {
    ctx: Arc<Context>,
    identity: String,
}

impl ExternalServer {
    pub(crate) fn new(ctx: Arc<Context>, identity: String) -> Self {
        Self { ctx, identity }
    }

    pub(crate) fn step(self, client: &[u8]) -> Result<Step, AuthError> {
        let authzid = std::str::from_utf8(client)
            .map_err(|_| AuthError::malformed(MECH, "authzid is not UTF-8"))?;
        if !authzid.is_empty() && authzid != self.identity {
            return Err(AuthError::AuthzidDenied {
                mechanism: MECH,
                user: self.identity,
                authzid: authzid.to_owned(),
            });
        }
        if self.ctx.store.user(&self.identity).is_none() {
            return Err(AuthError::UnknownUser {
                mechanism: MECH,
                user: self.identity,
            });
        }
        let roles = self.ctx.roles(&self.identity);
        Ok(Step::Success {
            user: self.identity,
            roles,
            final_data: None,
        })
    }
}
