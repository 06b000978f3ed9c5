//! DIGEST-MD5 server (RFC 2831), authentication only (`qop=auth`).
//!
//! ```text
//!   Initial ──empty──▶ AwaitingResponse ──digest-response ok──▶ Success { rspauth=… }
//!      │   (challenge: realm…, nonce,        │
//!      │    qop="auth", charset, algorithm)  └── any check fails ─▶ Err
//!      └── non-empty initial response ─▶ Err (subsequent authentication unsupported)
//! ```
//!
//! Only `auth` is offered: `auth-int`/`auth-conf` would oblige the server to wrap every later
//! Hot Rod frame (hotrod-protocol.md §19.2, QOP), which Ironrod does not do.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::crypto::{ct_eq, hex, md5, random_nonce};
use crate::mechanism::{Context, Mechanism, MechanismName, Step};
use crate::AuthError;

const MECH: MechanismName = MechanismName::DigestMd5;

/// Server side of one DIGEST-MD5 exchange.
#[derive(Debug)]
pub(crate) struct DigestMd5Server {
    ctx: Arc<Context>,
    /// Injected by unit tests for the RFC 2831 §4 vector.
    fixed_nonce: Option<String>,
    state: State,
}

#[derive(Debug)]
enum State {
    Initial,
    AwaitingResponse { nonce: String },
}

impl DigestMd5Server {
    pub(crate) fn new(ctx: Arc<Context>, fixed_nonce: Option<String>) -> Self {
        Self {
            ctx,
            fixed_nonce,
            state: State::Initial,
        }
    }

    pub(crate) fn step(self, client: &[u8]) -> Result<Step, AuthError> {
        match self.state {
            State::Initial => {
                if !client.is_empty() {
                    return Err(AuthError::malformed(
                        MECH,
                        "initial response given, but subsequent authentication is not supported",
                    ));
                }
                let nonce = match &self.fixed_nonce {
                    Some(n) => n.clone(),
                    None => random_nonce()?,
                };
                let challenge = self.challenge(&nonce).into_bytes();
                let next = Self {
                    state: State::AwaitingResponse { nonce },
                    ..self
                };
                Ok(Step::Challenge {
                    challenge,
                    next: Mechanism::digest_md5(next),
                })
            }
            State::AwaitingResponse { nonce } => {
                let (user, rspauth) = verify(&self.ctx, &nonce, client)?;
                Ok(Step::Success {
                    roles: self.ctx.roles(&user),
                    user,
                    final_data: Some(rspauth.into_bytes()),
                })
            }
        }
    }

    /// The digest-challenge (RFC 2831 §2.1.1).
    fn challenge(&self, nonce: &str) -> String {
        let mut out = String::new();
        for realm in &self.ctx.config.realms {
            out.push_str(&format!("realm={},", quote(realm)));
        }
        out.push_str(&format!(
            "nonce={},qop=\"auth\",charset=utf-8,algorithm=md5-sess",
            quote(nonce)
        ));
        out
    }
}

/// Checks the digest-response (RFC 2831 §2.1.2) and returns the user and `rspauth=…`.
fn verify(ctx: &Context, nonce: &str, client: &[u8]) -> Result<(String, String), AuthError> {
    let text = std::str::from_utf8(client)
        .map_err(|_| AuthError::malformed(MECH, "response is not UTF-8"))?;
    let d = Directives::parse(text).map_err(|what| AuthError::malformed(MECH, what))?;

    let user = d.required("username")?;
    let realm = d.optional("realm").unwrap_or("");
    let cnonce = d.required("cnonce")?;
    let nc = d.required("nc")?;
    let qop = d.optional("qop").unwrap_or("auth");
    let uri = d.required("digest-uri")?;
    let response = d.required("response")?;
    let authzid = d.optional("authzid").filter(|a| !a.is_empty());
    if let Some(cs) = d.optional("charset").filter(|cs| *cs != "utf-8") {
        return Err(AuthError::malformed(
            MECH,
            format!("charset '{cs}' was not offered"),
        ));
    }

    if !ct_eq(d.required("nonce")?.as_bytes(), nonce.as_bytes()) {
        return Err(AuthError::NonceMismatch { mechanism: MECH });
    }
    if nc != "00000001" {
        return Err(AuthError::NonceCountMismatch { got: nc.to_owned() });
    }
    if qop != "auth" {
        return Err(AuthError::QopUnsupported {
            qop: qop.to_owned(),
        });
    }
    let expected_uri = format!("{}/{}", ctx.protocol, ctx.config.server_name);
    if !uri_matches(uri, &ctx.protocol, &ctx.config.server_name) {
        return Err(AuthError::DigestUriMismatch {
            expected: expected_uri,
            got: uri.to_owned(),
        });
    }
    let realms = &ctx.config.realms;
    let offered = realms.iter().any(|r| r == realm) || (realms.is_empty() && realm.is_empty());
    if !offered {
        return Err(AuthError::RealmMismatch {
            realm: realm.to_owned(),
        });
    }
    let stored = ctx.store.user(user).ok_or_else(|| AuthError::UnknownUser {
        mechanism: MECH,
        user: user.to_owned(),
    })?;
    let secret = stored
        .digest_md5(realm)
        .ok_or_else(|| AuthError::NoCredential {
            mechanism: MECH,
            user: user.to_owned(),
            what: format!("realm '{realm}'"),
        })?;

    let ha1 = ha1(secret, nonce, cnonce, authzid);
    let expected = kd(&ha1, nonce, nc, cnonce, qop, &format!("AUTHENTICATE:{uri}"));
    if !ct_eq(
        expected.as_bytes(),
        response.to_ascii_lowercase().as_bytes(),
    ) {
        return Err(AuthError::WrongPassword {
            mechanism: MECH,
            user: user.to_owned(),
        });
    }
    if let Some(a) = authzid.filter(|a| *a != user) {
        return Err(AuthError::AuthzidDenied {
            mechanism: MECH,
            user: user.to_owned(),
            authzid: a.to_owned(),
        });
    }
    let rspauth = kd(&ha1, nonce, nc, cnonce, qop, &format!(":{uri}"));
    Ok((user.to_owned(), format!("rspauth={rspauth}")))
}

/// `HEX(H(A1))` with `A1 = { H(user:realm:passwd), ":", nonce, ":", cnonce [, ":", authzid] }`.
fn ha1(secret: &[u8; 16], nonce: &str, cnonce: &str, authzid: Option<&str>) -> String {
    let mut parts: Vec<&[u8]> = vec![secret, b":", nonce.as_bytes(), b":", cnonce.as_bytes()];
    if let Some(a) = authzid {
        parts.push(b":");
        parts.push(a.as_bytes());
    }
    hex(&md5(&parts))
}

/// `HEX(KD(HA1, nonce:nc:cnonce:qop:HEX(H(A2))))`, KD(k, s) = H(k:s).
fn kd(ha1: &str, nonce: &str, nc: &str, cnonce: &str, qop: &str, a2: &str) -> String {
    let ha2 = hex(&md5(&[a2.as_bytes()]));
    let data = format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}");
    hex(&md5(&[data.as_bytes()]))
}

/// `serv-type "/" host`, host compared without regard to ASCII case (host names are).
fn uri_matches(uri: &str, protocol: &str, server_name: &str) -> bool {
    uri.split_once('/')
        .is_some_and(|(p, host)| p == protocol && host.eq_ignore_ascii_case(server_name))
}

/// A quoted-string with `"` and `\` escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The directives of a digest-response, each name at most once (RFC 2831 §2.1.2: a directive
/// appearing more than once makes the authentication fail).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Directives(BTreeMap<String, String>);

impl Directives {
    /// Parses `name=value` pairs separated by commas (RFC 2831 §7.1 `#rule`: empty elements and
    /// linear white space allowed). Values are tokens or quoted-strings with `\` escapes. Names
    /// are compared without regard to case.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for (name, value) in parse_list(s)? {
            if map.contains_key(&name) {
                return Err(format!("duplicate directive '{name}'"));
            }
            map.insert(name, value);
        }
        Ok(Self(map))
    }

    fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str, AuthError> {
        self.optional(name)
            .ok_or_else(|| AuthError::malformed(MECH, format!("missing directive '{name}'")))
    }
}

/// The raw list, duplicates kept (a challenge legitimately repeats `realm`).
pub(crate) fn parse_list(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        skip_lws(&mut it);
        match it.peek() {
            None => break,
            Some(',') => {
                it.next();
                continue;
            }
            Some(_) => {}
        }
        let mut name = String::new();
        while let Some(c) = it.next_if(|c| is_token_char(*c)) {
            name.push(c.to_ascii_lowercase());
        }
        if name.is_empty() {
            return Err("expected a directive name".to_owned());
        }
        skip_lws(&mut it);
        if it.next() != Some('=') {
            return Err(format!("expected '=' after '{name}'"));
        }
        skip_lws(&mut it);
        let mut value = String::new();
        if it.next_if_eq(&'"').is_some() {
            loop {
                match it.next() {
                    None => return Err(format!("unterminated quoted string in '{name}'")),
                    Some('\\') => match it.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated quoted string in '{name}'")),
                    },
                    Some('"') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            // Lenient: any visible character but `,` and `"` (some clients leave `/` unquoted).
            while let Some(c) = it.next_if(|c| !c.is_control() && !matches!(c, ' ' | ',' | '"')) {
                value.push(c);
            }
            if value.is_empty() {
                return Err(format!("empty value for '{name}'"));
            }
        }
        skip_lws(&mut it);
        match it.next() {
            None => {
                out.push((name, value));
                break;
            }
            Some(',') => out.push((name, value)),
            Some(c) => return Err(format!("unexpected '{c}' after '{name}'")),
        }
    }
    Ok(out)
}

fn skip_lws(it: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while it
        .next_if(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
        .is_some()
    {}
}

/// RFC 2616 token character: a CHAR that is not a control or a separator.
fn is_token_char(c: char) -> bool {
    c.is_ascii() && !c.is_ascii_control() && !"()<>@,;:\\\"/[]?={} \t".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::Mechanisms;
    use crate::{CredentialStore, SaslConfig};
    use proptest::prelude::*;

    fn rfc_server() -> DigestMd5Server {
        let mut store = CredentialStore::new();
        store.insert_digest_md5("chris", "elwood.innosoft.com", "secret");
        let config = SaslConfig {
            server_name: "elwood.innosoft.com".to_owned(),
            realms: vec!["elwood.innosoft.com".to_owned()],
            ..SaslConfig::default()
        };
        let m = Mechanisms::with_protocol(Arc::new(store), config, "imap");
        DigestMd5Server::new(Arc::clone(m.context()), Some("OA6MG9tEQGm2hh".to_owned()))
    }

    #[test]
    fn rfc2831_section4_vector() {
        let Ok(Step::Challenge { challenge, next }) = rfc_server().step(b"") else {
            panic!("no challenge");
        };
        assert_eq!(
            String::from_utf8(challenge).unwrap_or_default(),
            "realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\",\
             charset=utf-8,algorithm=md5-sess"
        );
        let response = "charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",\
            nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",\
            digest-uri=\"imap/elwood.innosoft.com\",\
            response=d388dad90d4bbd760a152321f2143af7,qop=auth";
        match next.step(response.as_bytes()) {
            Ok(Step::Success {
                user, final_data, ..
            }) => {
                assert_eq!(user, "chris");
                assert_eq!(
                    final_data.as_deref(),
                    Some(&b"rspauth=ea40f60335c427b5527b84dbabcdfffd"[..])
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rfc2831_vector_with_wrong_response_fails() {
        let Ok(Step::Challenge { next, .. }) = rfc_server().step(b"") else {
            panic!("no challenge");
        };
        let response = "charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",\
            nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",\
            digest-uri=\"imap/elwood.innosoft.com\",\
            response=d388dad90d4bbd760a152321f2143af8,qop=auth";
        assert!(matches!(
            next.step(response.as_bytes()),
            Err(AuthError::WrongPassword { .. })
        ));
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn directive_list_table() {
        let ok: &[(&str, &[(&str, &str)])] = &[
            ("a=b", &[("a", "b")]),
            ("A=b", &[("a", "b")]),
            (" a = b , c = \"d\" ", &[("a", "b"), ("c", "d")]),
            ("a=\"x,y\",b=z", &[("a", "x,y"), ("b", "z")]),
            (
                r#"a="say \"hi\"",b="back\\slash""#,
                &[("a", "say \"hi\""), ("b", "back\\slash")],
            ),
            (r#"a="\q""#, &[("a", "q")]),
            ("a=b,,c=d,", &[("a", "b"), ("c", "d")]),
            (",,a=b", &[("a", "b")]),
            (
                "digest-uri=hotrod/infinispan",
                &[("digest-uri", "hotrod/infinispan")],
            ),
            ("a=\"\"", &[("a", "")]),
            ("u=\"j\u{f6}rg\"", &[("u", "j\u{f6}rg")]),
            ("a=b,\r\n\tc=d", &[("a", "b"), ("c", "d")]),
            ("", &[]),
            ("a=b;c=d", &[("a", "b;c=d")]),
        ];
        for (input, want) in ok {
            assert_eq!(parse_list(input), Ok(pairs(want)), "input {input:?}");
        }
        let bad = [
            "a",
            "=b",
            "a=",
            "a=\"unterminated",
            "a=\"x\\",
            "a=b c=d",
            "a=\"x\"y",
            "a b=c",
        ];
        for input in bad {
            assert!(parse_list(input).is_err(), "input {input:?} should fail");
        }
    }

    #[test]
    fn duplicate_directives_refused() {
        assert!(Directives::parse("nonce=a,nonce=a").is_err());
        assert!(Directives::parse("Nonce=a,nONCE=b").is_err());
        assert!(Directives::parse("nonce=a,cnonce=a").is_ok());
    }

    proptest! {
        #[test]
        fn quoted_values_round_trip(
            values in proptest::collection::vec("[ -~\u{a0}-\u{17f}]{0,16}", 1..6)
        ) {
            let text: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("k{i}={}", quote(v)))
                .collect();
            let parsed = parse_list(&text.join(" , "));
            let want: Vec<(String, String)> =
                values.iter().enumerate().map(|(i, v)| (format!("k{i}"), v.clone())).collect();
            prop_assert_eq!(parsed, Ok(want));
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,64}") {
            let _ = parse_list(&s);
        }
    }
}
