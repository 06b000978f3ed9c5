//! SCRAM-SHA-1/256/384/512 server (RFC 5802, RFC 7677), without channel binding.
//!
//! ```text
//!            empty initial response
//!           ┌──────────────────────┐ (once; the server answers with an empty challenge)
//!           ▼                      │
//!   Initial ──client-first──▶ AwaitingFinal ──client-final, proof ok──▶ Success { v=… }
//!      │                           │
//!      └── malformed / p= ─▶ Err   └── nonce, c= or proof wrong ─▶ Err
//! ```

use std::sync::Arc;

use crate::crypto::{b64_decode, b64_encode, ct_eq, random_nonce, xor};
use crate::mechanism::{Context, Mechanism, MechanismName, Step};
use crate::store::ScramVerifier;
use crate::AuthError;

/// The hash function of a SCRAM mechanism. Ordered weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ScramHash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl ScramHash {
    /// Every supported hash, weakest first.
    pub const ALL: [ScramHash; 4] = [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512];

    /// The SASL mechanism name, `SCRAM-SHA-256` and so on.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SCRAM-SHA-1",
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha384 => "SCRAM-SHA-384",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The inverse of [`ScramHash::mechanism_name`].
    pub fn from_mechanism_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.mechanism_name() == name)
    }

    /// Output length of the hash in bytes (also the length of StoredKey, ServerKey, proofs).
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// Server side of one SCRAM exchange.
#[derive(Debug)]
pub(crate) struct ScramServer {
    ctx: Arc<Context>,
    hash: ScramHash,
    /// The server's part of the nonce; injected by unit tests for the RFC vectors.
    fixed_nonce: Option<String>,
    state: State,
}

#[derive(Debug)]
enum State {
    Initial { prompted: bool },
    AwaitingFinal(Box<Pending>),
}

#[derive(Debug)]
struct Pending {
    user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    verifier: ScramVerifier,
    /// Why the proof will fail regardless, when the user or its verifier is missing; the
    /// exchange is nevertheless carried to the end so it looks like a wrong password.
    missing: Option<AuthError>,
}

impl ScramServer {
    pub(crate) fn new(ctx: Arc<Context>, hash: ScramHash, fixed_nonce: Option<String>) -> Self {
        Self {
            ctx,
            hash,
            fixed_nonce,
            state: State::Initial { prompted: false },
        }
    }

    pub(crate) fn hash(&self) -> ScramHash {
        self.hash
    }

    fn mech(&self) -> MechanismName {
        MechanismName::Scram(self.hash)
    }

    pub(crate) fn step(self, client: &[u8]) -> Result<Step, AuthError> {
        let mech = self.mech();
        let text = std::str::from_utf8(client)
            .map_err(|_| AuthError::malformed(mech, "message is not UTF-8"))?;
        match self.state {
            State::Initial { prompted } => {
                if text.is_empty() {
                    if prompted {
                        return Err(AuthError::malformed(mech, "empty client-first-message"));
                    }
                    let next = Self {
                        state: State::Initial { prompted: true },
                        ..self
                    };
                    return Ok(Step::Challenge {
                        challenge: Vec::new(),
                        next: Mechanism::scram(next),
                    });
                }
                let ctx = Arc::clone(&self.ctx);
                let pending = client_first(&ctx, self.hash, text, self.fixed_nonce.as_deref())?;
                let challenge = pending.server_first.clone().into_bytes();
                let next = Self {
                    state: State::AwaitingFinal(Box::new(pending)),
                    ..self
                };
                Ok(Step::Challenge {
                    challenge,
                    next: Mechanism::scram(next),
                })
            }
            State::AwaitingFinal(pending) => {
                let final_data = client_final(self.hash, &pending, text)?;
                Ok(Step::Success {
                    roles: self.ctx.roles(&pending.user),
                    user: pending.user,
                    final_data: Some(final_data.into_bytes()),
                })
            }
        }
    }
}

/// Parses the client-first-message (RFC 5802 §7) and builds the server-first-message.
fn client_first(
    ctx: &Context,
    hash: ScramHash,
    text: &str,
    fixed_nonce: Option<&str>,
) -> Result<Pending, AuthError> {
    let mech = MechanismName::Scram(hash);
    let bad = |what: &str| AuthError::malformed(mech, what);

    let (cbind, rest) = text.split_once(',').ok_or_else(|| bad("no GS2 header"))?;
    match cbind {
        // "y": the client supports channel binding but thinks we do not; we advertise no
        // -PLUS mechanism, so that is true and there is no downgrade to detect (RFC 5802 §6).
        "n" | "y" => {}
        p if p.starts_with("p=") => {
            return Err(AuthError::ChannelBindingUnsupported {
                mechanism: mech,
                requested: p.get(2..).unwrap_or_default().to_owned(),
            })
        }
        _ => return Err(bad("invalid gs2-cbind-flag")),
    }
    let (authzid_raw, bare) = rest
        .split_once(',')
        .ok_or_else(|| bad("incomplete GS2 header"))?;
    let authzid = match authzid_raw {
        "" => None,
        a => Some(
            a.strip_prefix("a=")
                .and_then(decode_saslname)
                .ok_or_else(|| bad("invalid authzid in GS2 header"))?,
        ),
    };
    let header_len = cbind.len() + authzid_raw.len() + 2;
    let gs2_header = text
        .get(..header_len)
        .ok_or_else(|| bad("GS2 header"))?
        .to_owned();

    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(bad("mandatory extension (m=) is not supported"));
    }
    let user = first
        .strip_prefix("n=")
        .and_then(decode_saslname)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| bad("missing or invalid username (n=)"))?;
    let cnonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| is_valid_nonce(n))
        .ok_or_else(|| bad("missing or invalid client nonce (r=)"))?;
    if let Some(a) = authzid.filter(|a| *a != user) {
        return Err(AuthError::AuthzidDenied {
            mechanism: mech,
            user,
            authzid: a,
        });
    }

    let (verifier, missing) = match ctx.store.user(&user) {
        Some(u) => match u.scram(hash) {
            Some(v) => (v.clone(), None),
            None => (
                mock_verifier(ctx, hash, &user)?,
                Some(AuthError::NoCredential {
                    mechanism: mech,
                    user: user.clone(),
                    what: hash.mechanism_name().to_owned(),
                }),
            ),
        },
        None => (
            mock_verifier(ctx, hash, &user)?,
            Some(AuthError::UnknownUser {
                mechanism: mech,
                user: user.clone(),
            }),
        ),
    };

    let snonce = match fixed_nonce {
        Some(n) => n.to_owned(),
        None => random_nonce()?,
    };
    let nonce = format!("{cnonce}{snonce}");
    let server_first = format!(
        "r={nonce},s={},i={}",
        b64_encode(verifier.salt()),
        verifier.iterations()
    );
    Ok(Pending {
        user,
        gs2_header,
        client_first_bare: bare.to_owned(),
        server_first,
        nonce,
        verifier,
        missing,
    })
}

/// Checks the client-final-message (RFC 5802 §7) and returns the server-final-message.
fn client_final(hash: ScramHash, p: &Pending, text: &str) -> Result<String, AuthError> {
    let mech = MechanismName::Scram(hash);
    let bad = |what: &str| AuthError::malformed(mech, what);

    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or_else(|| bad("missing proof (p=)"))?;
    let mut attrs = without_proof.split(',');
    let cbind = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .and_then(b64_decode)
        .ok_or_else(|| bad("missing or invalid channel binding (c=)"))?;
    if cbind != p.gs2_header.as_bytes() {
        return Err(bad("channel binding (c=) does not repeat the GS2 header"));
    }
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| bad("missing nonce (r=)"))?;
    if nonce != p.nonce {
        return Err(AuthError::NonceMismatch { mechanism: mech });
    }
    let proof = b64_decode(proof)
        .filter(|b| b.len() == hash.output_len())
        .ok_or_else(|| bad("invalid proof (p=)"))?;

    let auth_message = format!(
        "{},{},{}",
        p.client_first_bare, p.server_first, without_proof
    );
    let client_signature = hash.hmac(p.verifier.stored_key(), auth_message.as_bytes());
    let client_key = xor(&proof, &client_signature);
    let ok = ct_eq(&hash.hash(&client_key), p.verifier.stored_key());
    if let Some(missing) = &p.missing {
        return Err(missing.clone());
    }
    if !ok {
        return Err(AuthError::WrongPassword {
            mechanism: mech,
            user: p.user.clone(),
        });
    }
    let server_signature = hash.hmac(p.verifier.server_key(), auth_message.as_bytes());
    Ok(format!("v={}", b64_encode(&server_signature)))
}

/// A verifier nobody can pass: a stable fake salt and random keys.
fn mock_verifier(ctx: &Context, hash: ScramHash, user: &str) -> Result<ScramVerifier, AuthError> {
    let mut stored_key = vec![0u8; hash.output_len()];
    let mut server_key = vec![0u8; hash.output_len()];
    crate::crypto::random_bytes(&mut stored_key)?;
    crate::crypto::random_bytes(&mut server_key)?;
    Ok(ScramVerifier::from_parts(
        ctx.mock_salt(user),
        ctx.config.mock_iterations.max(1),
        stored_key,
        server_key,
    ))
}

/// RFC 5802 §5.1 saslname: `=2C` is `,`, `=3D` is `=`, any other `=` is invalid.
pub(crate) fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(rest.get(..i)?);
        let esc = rest.get(i..i + 3)?;
        out.push(match esc {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = rest.get(i + 3..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E (visible ASCII except `,`).
fn is_valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::Mechanisms;
    use crate::{CredentialStore, SaslConfig};

    fn server(hash: ScramHash, salt_b64: &str, snonce: &str) -> ScramServer {
        let salt = b64_decode(salt_b64).unwrap_or_default();
        let mut store = CredentialStore::new();
        store.insert_verifier(
            "user",
            hash,
            ScramVerifier::derive(hash, "pencil", &salt, 4096),
        );
        let m = Mechanisms::with_protocol(Arc::new(store), SaslConfig::default(), "hotrod");
        ScramServer::new(Arc::clone(m.context()), hash, Some(snonce.to_owned()))
    }

    fn run(s: ScramServer, first: &str, final_: &str) -> (String, Result<Step, AuthError>) {
        let Ok(Step::Challenge { challenge, next }) = s.step(first.as_bytes()) else {
            panic!("no server-first");
        };
        (
            String::from_utf8(challenge).unwrap_or_default(),
            next.step(final_.as_bytes()),
        )
    }

    #[test]
    fn rfc5802_sha1_vector() {
        let s = server(ScramHash::Sha1, "QSXCR+Q6sek8bf92", "3rfcNHYJY1ZVvWVs7j");
        let (sf, out) = run(
            s,
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        );
        assert_eq!(
            sf,
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
        );
        match out {
            Ok(Step::Success {
                user, final_data, ..
            }) => {
                assert_eq!(user, "user");
                assert_eq!(
                    final_data.as_deref(),
                    Some(&b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="[..])
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rfc7677_sha256_vector() {
        let s = server(
            ScramHash::Sha256,
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        let (sf, out) = run(
            s,
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        assert_eq!(
            sf,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        match out {
            Ok(Step::Success { final_data, .. }) => assert_eq!(
                final_data.as_deref(),
                Some(&b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="[..])
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rfc5802_wrong_proof_is_wrong_password() {
        let s = server(ScramHash::Sha1, "QSXCR+Q6sek8bf92", "3rfcNHYJY1ZVvWVs7j");
        let (_, out) = run(
            s,
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        );
        assert!(
            matches!(out, Err(AuthError::WrongPassword { .. })),
            "{out:?}"
        );
    }

    #[test]
    fn saslname_decoding() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(decode_saslname("plain").as_deref(), Some("plain"));
        assert_eq!(decode_saslname("bad=2"), None);
        assert_eq!(decode_saslname("bad=41"), None);
    }
}
