//! Shared-secret challenge-response for bridge links, in both directions.
//!
//! Each end sends a fresh nonce in HELLO and proves knowledge of the secret in AUTH with
//! `HMAC-SHA-256(secret, label | prover | verifier | verifier's nonce | prover's nonce | version)`.
//! Binding both site names and both nonces stops reflection (a proof cannot be sent back to its
//! author) and replay (the verifier's nonce is fresh); binding the negotiated version stops a
//! man in the middle from downgrading the link.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::wire::NONCE_LEN;

const LABEL: &[u8] = b"ironrod-xsite-auth-v1";

/// The proof `prover` sends to `verifier`.
pub fn proof(
    secret: &[u8],
    prover: &str,
    verifier: &str,
    verifier_nonce: &[u8; NONCE_LEN],
    prover_nonce: &[u8; NONCE_LEN],
    version: u8,
) -> Vec<u8> {
    mac(
        secret,
        prover,
        verifier,
        verifier_nonce,
        prover_nonce,
        version,
    )
    .map(|m| m.finalize().into_bytes().to_vec())
    .unwrap_or_default()
}

/// Checks a received proof in constant time.
pub fn verify(
    secret: &[u8],
    prover: &str,
    verifier: &str,
    verifier_nonce: &[u8; NONCE_LEN],
    prover_nonce: &[u8; NONCE_LEN],
    version: u8,
    received: &[u8],
) -> bool {
    mac(
        secret,
        prover,
        verifier,
        verifier_nonce,
        prover_nonce,
        version,
    )
    .is_some_and(|m| m.verify_slice(received).is_ok())
}

fn mac(
    secret: &[u8],
    prover: &str,
    verifier: &str,
    verifier_nonce: &[u8; NONCE_LEN],
    prover_nonce: &[u8; NONCE_LEN],
    version: u8,
) -> Option<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
    m.update(LABEL);
    for name in [prover, verifier] {
        m.update(&[name.len() as u8]);
        m.update(name.as_bytes());
    }
    m.update(verifier_nonce);
    m.update(prover_nonce);
    m.update(&[version]);
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_with_the_same_inputs() {
        let (na, nb) = ([1u8; 32], [2u8; 32]);
        let p = proof(b"secret-secret-16", "A", "B", &nb, &na, 2);
        assert_eq!(p.len(), 32);
        assert!(verify(b"secret-secret-16", "A", "B", &nb, &na, 2, &p));
        assert!(!verify(b"other-secret-161", "A", "B", &nb, &na, 2, &p));
        // Reflected back as if B had made it.
        assert!(!verify(b"secret-secret-16", "B", "A", &na, &nb, 2, &p));
        // Downgraded version.
        assert!(!verify(b"secret-secret-16", "A", "B", &nb, &na, 1, &p));
        assert!(!verify(
            b"secret-secret-16",
            "A",
            "B",
            &nb,
            &na,
            2,
            &p[..31]
        ));
    }
}
