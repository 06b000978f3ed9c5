//! HTTP authentication: Basic and Digest (RFC 7616, MD5, qop `auth`) against the same users
//! file as Hot Rod's SASL.
//!
//! The users file never holds a password. Basic is checked against the user's SCRAM verifier
//! (as PLAIN is in SASL); Digest against the DIGEST-MD5 secret `H(user:realm:password)` the file
//! keeps per realm, which is exactly HTTP Digest's `HA1`. An unauthenticated request gets both
//! challenges, Digest first: Infinispan's REST client in AUTO mode answers the first scheme it
//! knows, and Digest keeps the password off a cleartext connection.
//!
//! Digest nonces are issued by the server and remembered, bounded, for [`NONCE_LIFETIME`]; a
//! reused nonce must carry a higher nonce count (replay protection), an expired one gets a new
//! challenge with `stale=true` so clients retry without asking the user again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ironrod_sasl::{CredentialStore, User};
use md5::{Digest as _, Md5};
use parking_lot::Mutex;
use subtle::ConstantTimeEq;

/// How long a Digest nonce stays valid.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Nonces remembered at once; beyond it the oldest are forgotten (their clients get `stale`).
pub const MAX_NONCES: usize = 4096;

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub roles: Vec<String>,
}

/// The outcome of checking a request's `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Authenticated(Principal),
    /// No credentials, or credentials that do not verify; `stale` asks a Digest client to
    /// retry with a fresh nonce.
    Challenge {
        stale: bool,
        reason: String,
    },
}

/// The server's Digest nonces.
#[derive(Debug, Default)]
pub struct Nonces {
    issued: Mutex<HashMap<String, NonceState>>,
}

#[derive(Debug, Clone, Copy)]
struct NonceState {
    issued: Instant,
    /// The highest nonce count seen with this nonce.
    last_nc: u32,
}

impl Nonces {
    /// A fresh random nonce, remembered from `now`.
    pub fn issue(&self, now: Instant) -> String {
        let mut raw = [0u8; 18];
        if getrandom::getrandom(&mut raw).is_err() {
            // The OS RNG failing is a broken host; a time-derived nonce still works, it is
            // merely predictable, and replay protection (nc) still holds.
            let t = now.elapsed().as_nanos().to_le_bytes();
            for (d, s) in raw.iter_mut().zip(t.iter().cycle()) {
                *d ^= *s;
            }
        }
        let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let mut issued = self.issued.lock();
        if issued.len() >= MAX_NONCES {
            issued.retain(|_, s| now.duration_since(s.issued) < NONCE_LIFETIME);
            while issued.len() >= MAX_NONCES {
                let oldest = issued
                    .iter()
                    .min_by_key(|(_, s)| s.issued)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => issued.remove(&k),
                    None => break,
                };
            }
        }
        issued.insert(
            nonce.clone(),
            NonceState {
                issued: now,
                last_nc: 0,
            },
        );
        nonce
    }

    /// Accepts `nc` for `nonce` if the nonce is ours, fresh, and `nc` is higher than any seen.
    fn accept(&self, nonce: &str, nc: u32, now: Instant) -> Result<(), bool> {
        let mut issued = self.issued.lock();
        let Some(state) = issued.get_mut(nonce) else {
            return Err(true);
        };
        if now.duration_since(state.issued) >= NONCE_LIFETIME {
            issued.remove(nonce);
            return Err(true);
        }
        if nc <= state.last_nc {
            return Err(false);
        }
        state.last_nc = nc;
        Ok(())
    }
}

/// Checks the `Authorization` header of a request with `method` and request-target `target`.
/// `basic_allowed` is false on a cleartext connection unless `security.plain_in_clear`: Basic
/// sends the password itself, like SASL PLAIN, and follows the same rule.
pub fn verify(
    authorization: Option<&str>,
    method: &str,
    target: &str,
    basic_allowed: bool,
    store: &CredentialStore,
    nonces: &Nonces,
    now: Instant,
) -> Verdict {
    let Some(header) = authorization else {
        return challenge("no credentials");
    };
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        if !basic_allowed {
            return challenge("Basic is refused outside TLS (security.plain_in_clear is false)");
        }
        basic(rest.trim(), store)
    } else if scheme.eq_ignore_ascii_case("digest") {
        digest(rest, method, target, store, nonces, now)
    } else {
        challenge(&format!("unsupported authentication scheme {scheme}"))
    }
}

/// The `WWW-Authenticate` values for a 401: Digest, then Basic where it is allowed.
pub fn challenges(realm: &str, nonce: &str, stale: bool, basic_allowed: bool) -> Vec<String> {
    let stale = if stale { ", stale=true" } else { "" };
    let mut out = vec![format!(
        "Digest realm=\"{realm}\", domain=\"/\", nonce=\"{nonce}\", opaque=\"00\", algorithm=MD5, qop=\"auth\"{stale}"
    )];
    if basic_allowed {
        out.push(format!("Basic realm=\"{realm}\", charset=\"UTF-8\""));
    }
    out
}

fn challenge(reason: &str) -> Verdict {
    Verdict::Challenge {
        stale: false,
        reason: reason.to_string(),
    }
}

fn principal(name: &str, user: &User) -> Verdict {
    Verdict::Authenticated(Principal {
        user: name.to_string(),
        roles: user.roles().to_vec(),
    })
}

fn basic(token: &str, store: &CredentialStore) -> Verdict {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(token) else {
        return challenge("Basic credentials are not base64");
    };
    let Ok(text) = String::from_utf8(raw) else {
        return challenge("Basic credentials are not UTF-8");
    };
    let Some((name, password)) = text.split_once(':') else {
        return challenge("Basic credentials lack the ':' separator");
    };
    let Some(user) = store.user(name) else {
        return challenge(&format!("unknown user '{name}'"));
    };
    match user.strongest_scram() {
        Some((hash, verifier)) if verifier.verify_password(hash, password) => principal(name, user),
        Some(_) => challenge(&format!("wrong password for user '{name}'")),
        None => challenge(&format!("user '{name}' has no password verifier")),
    }
}

fn digest(
    params: &str,
    method: &str,
    target: &str,
    store: &CredentialStore,
    nonces: &Nonces,
    now: Instant,
) -> Verdict {
    let p = parse_params(params);
    let get = |k: &str| p.get(k).map(String::as_str);
    let (Some(name), Some(realm), Some(nonce), Some(uri), Some(response)) = (
        get("username"),
        get("realm"),
        get("nonce"),
        get("uri"),
        get("response"),
    ) else {
        return challenge("Digest credentials lack a required parameter");
    };
    if let Some(alg) = get("algorithm") {
        if !alg.eq_ignore_ascii_case("MD5") {
            return challenge(&format!("Digest algorithm {alg} is not supported"));
        }
    }
    if uri != target {
        return challenge(&format!(
            "Digest uri '{uri}' does not match the request target"
        ));
    }
    let (qop, nc, cnonce) = (get("qop"), get("nc"), get("cnonce"));
    let nc_value = match (qop, nc, cnonce) {
        (Some("auth"), Some(nc), Some(_)) => match u32::from_str_radix(nc, 16) {
            Ok(v) => v,
            Err(_) => return challenge("Digest nc is not hexadecimal"),
        },
        (Some(q), _, _) => return challenge(&format!("Digest qop '{q}' is not offered")),
        // RFC 2069 compatibility (no qop) is not offered: it has no replay protection.
        (None, _, _) => return challenge("Digest credentials without qop are not accepted"),
    };
    let Some(user) = store.user(name) else {
        return challenge(&format!("unknown user '{name}'"));
    };
    let Some(ha1) = user.digest_md5(realm) else {
        return challenge(&format!("user '{name}' has no secret for realm '{realm}'"));
    };
    let expected = response_for(
        ha1,
        nonce,
        nc.unwrap_or_default(),
        cnonce.unwrap_or_default(),
        method,
        uri,
    );
    if !bool::from(
        expected
            .as_bytes()
            .ct_eq(response.to_ascii_lowercase().as_bytes()),
    ) {
        return challenge(&format!("wrong password for user '{name}'"));
    }
    match nonces.accept(nonce, nc_value, now) {
        Ok(()) => principal(name, user),
        Err(stale) => Verdict::Challenge {
            stale,
            reason: if stale {
                "Digest nonce unknown or expired".to_string()
            } else {
                "Digest nonce count replayed".to_string()
            },
        },
    }
}

/// The RFC 7616 `response` for qop `auth` and algorithm MD5, from `ha1` = MD5(user:realm:password):
/// what the server expects and what a client sends (`crate::cli::rest_client`).
pub(crate) fn response_for(
    ha1: &[u8],
    nonce: &str,
    nc: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = hex(&Md5::digest(format!("{method}:{uri}").as_bytes()));
    hex(&Md5::digest(
        format!("{}:{nonce}:{nc}:{cnonce}:auth:{ha2}", hex(ha1)).as_bytes(),
    ))
}

/// `a="x, y", b=z` into a map; keys lower-cased.
pub(crate) fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest
            .get(..eq)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        rest = rest.get(eq + 1..).unwrap_or_default().trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = quoted.get(end..).unwrap_or_default();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest.get(..end).unwrap_or_default().trim().to_string();
            rest = rest.get(end..).unwrap_or_default();
        }
        out.insert(key, value);
        rest = rest.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn store() -> CredentialStore {
        let mut s = CredentialStore::new();
        s.set_iterations(4096).unwrap();
        s.set_user(
            "admin",
            "secret",
            &["admin".to_string()],
            &["default".to_string()],
        )
        .unwrap();
        s
    }

    fn digest_header(nonce: &str, nc: &str, password: &str, method: &str, uri: &str) -> String {
        let ha1 = Md5::digest(format!("admin:default:{password}").as_bytes());
        let resp = response_for(&ha1, nonce, nc, "abcd", method, uri);
        format!(
            "Digest username=\"admin\", realm=\"default\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc={nc}, cnonce=\"abcd\", response=\"{resp}\", algorithm=MD5"
        )
    }

    #[test]
    fn rfc_2617_worked_example_response() {
        // RFC 2617 §3.5: Mufasa / "Circle Of Life", realm testrealm@host.com.
        let ha1 = Md5::digest(b"Mufasa:testrealm@host.com:Circle Of Life");
        let resp = response_for(
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(resp, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn basic_verifies_against_the_scram_verifier() {
        let s = store();
        let nonces = Nonces::default();
        let ok = base64::engine::general_purpose::STANDARD.encode("admin:secret");
        let v = verify(
            Some(&format!("Basic {ok}")),
            "GET",
            "/",
            true,
            &s,
            &nonces,
            Instant::now(),
        );
        assert!(
            matches!(v, Verdict::Authenticated(ref p) if p.user == "admin" && p.roles == ["admin"])
        );
        let bad = base64::engine::general_purpose::STANDARD.encode("admin:nope");
        let v = verify(
            Some(&format!("Basic {bad}")),
            "GET",
            "/",
            true,
            &s,
            &nonces,
            Instant::now(),
        );
        assert!(
            matches!(v, Verdict::Challenge { ref reason, .. } if reason.contains("wrong password"))
        );
        let unknown = base64::engine::general_purpose::STANDARD.encode("eve:x");
        let v = verify(
            Some(&format!("Basic {unknown}")),
            "GET",
            "/",
            true,
            &s,
            &nonces,
            Instant::now(),
        );
        assert!(
            matches!(v, Verdict::Challenge { ref reason, .. } if reason.contains("unknown user"))
        );
    }

    #[test]
    fn digest_accepts_the_right_password_once_per_count() {
        let s = store();
        let nonces = Nonces::default();
        let now = Instant::now();
        let nonce = nonces.issue(now);
        let h = digest_header(&nonce, "00000001", "secret", "GET", "/rest/v2/caches");
        let v = verify(Some(&h), "GET", "/rest/v2/caches", true, &s, &nonces, now);
        assert!(matches!(v, Verdict::Authenticated(_)), "{v:?}");
        // Replaying the same count is refused, a higher one accepted.
        let v = verify(Some(&h), "GET", "/rest/v2/caches", true, &s, &nonces, now);
        assert!(
            matches!(v, Verdict::Challenge { stale: false, .. }),
            "{v:?}"
        );
        let h2 = digest_header(&nonce, "00000002", "secret", "GET", "/rest/v2/caches");
        assert!(matches!(
            verify(Some(&h2), "GET", "/rest/v2/caches", true, &s, &nonces, now),
            Verdict::Authenticated(_)
        ));
    }

    #[test]
    fn digest_refuses_wrong_password_other_uri_and_stale_nonces() {
        let s = store();
        let nonces = Nonces::default();
        let now = Instant::now();
        let nonce = nonces.issue(now);
        let h = digest_header(&nonce, "00000001", "wrong", "GET", "/x");
        assert!(matches!(
            verify(Some(&h), "GET", "/x", true, &s, &nonces, now),
            Verdict::Challenge { ref reason, .. } if reason.contains("wrong password")
        ));
        let h = digest_header(&nonce, "00000001", "secret", "GET", "/x");
        assert!(matches!(
            verify(Some(&h), "GET", "/y", true, &s, &nonces, now),
            Verdict::Challenge { ref reason, .. } if reason.contains("uri")
        ));
        let later = now + NONCE_LIFETIME + Duration::from_secs(1);
        assert!(matches!(
            verify(Some(&h), "GET", "/x", true, &s, &nonces, later),
            Verdict::Challenge { stale: true, .. }
        ));
        let h = digest_header("not-issued", "00000001", "secret", "GET", "/x");
        assert!(matches!(
            verify(Some(&h), "GET", "/x", true, &s, &nonces, now),
            Verdict::Challenge { stale: true, .. }
        ));
    }

    #[test]
    fn nonce_table_stays_bounded() {
        let nonces = Nonces::default();
        let now = Instant::now();
        for _ in 0..MAX_NONCES + 10 {
            nonces.issue(now);
        }
        assert!(nonces.issued.lock().len() <= MAX_NONCES);
    }

    #[test]
    fn params_parse_quoted_and_bare_values() {
        let p = parse_params(r#"username="a\"b", qop=auth, nc=00000001 , uri="/x?a=1,2""#);
        assert_eq!(p["username"], "a\"b");
        assert_eq!(p["qop"], "auth");
        assert_eq!(p["nc"], "00000001");
        assert_eq!(p["uri"], "/x?a=1,2");
    }
}
