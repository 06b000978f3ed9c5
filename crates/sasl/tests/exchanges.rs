//! Full exchanges against the server mechanisms, driven by a small test-only client written
//! from the RFCs (RFC 5802/7677 SCRAM, RFC 2831 DIGEST-MD5, RFC 4616 PLAIN).

// Test helpers outside #[test] functions fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use ironrod_sasl::{
    AuthError, CredentialStore, MechanismName, Mechanisms, SaslConfig, ScramHash, ScramVerifier,
    Step,
};
use md5::{Digest, Md5};

// ---------------------------------------------------------------- fixtures

/// Says whether an error is the expected one.
type Check = fn(&AuthError) -> bool;

fn roles(r: &[&str]) -> Vec<String> {
    r.iter().map(|s| (*s).to_owned()).collect()
}

/// alice: all verifiers, realm `default`. bob: realm `other` only. carol: only SCRAM-SHA-256,
/// no DIGEST-MD5 (written as TOML by hand, as an operator might).
fn store() -> Arc<CredentialStore> {
    static STORE: OnceLock<Arc<CredentialStore>> = OnceLock::new();
    Arc::clone(STORE.get_or_init(|| {
        let v = ScramVerifier::derive(ScramHash::Sha256, "carolpw", b"carol-salt-16byt", 4096);
        let toml = format!(
            "[users.carol]\nroles = [\"reader\"]\n[users.carol.scram.SCRAM-SHA-256]\n\
             salt = \"{}\"\niterations = 4096\nstored-key = \"{}\"\nserver-key = \"{}\"\n",
            B64.encode(v.salt()),
            B64.encode(v.stored_key()),
            B64.encode(v.server_key())
        );
        let mut s = CredentialStore::parse(&toml).unwrap();
        s.add_user(
            "alice",
            "wonderland",
            &roles(&["admin", "reader"]),
            &roles(&["default"]),
        )
        .unwrap();
        s.add_user("bob", "builder", &roles(&[]), &roles(&["other"]))
            .unwrap();
        Arc::new(s)
    }))
}

fn config() -> SaslConfig {
    let mut c = SaslConfig::default();
    c.realms = roles(&["default", "other"]);
    c
}

fn mechanisms() -> Mechanisms {
    Mechanisms::new(store(), config()).unwrap()
}

// ---------------------------------------------------------------- SCRAM client

fn hmac(hash: ScramHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn go<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
    match hash {
        ScramHash::Sha1 => go::<Hmac<sha1::Sha1>>(key, data),
        ScramHash::Sha256 => go::<Hmac<sha2::Sha256>>(key, data),
        ScramHash::Sha384 => go::<Hmac<sha2::Sha384>>(key, data),
        ScramHash::Sha512 => go::<Hmac<sha2::Sha512>>(key, data),
        _ => unreachable!(),
    }
}

fn h(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => sha1::Sha1::digest(data).to_vec(),
        ScramHash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        ScramHash::Sha384 => sha2::Sha384::digest(data).to_vec(),
        ScramHash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        _ => unreachable!(),
    }
}

fn hi(hash: ScramHash, password: &[u8], salt: &[u8], i: u32) -> Vec<u8> {
    let mut out = vec![0u8; hash.output_len()];
    match hash {
        ScramHash::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, i, &mut out),
        ScramHash::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, i, &mut out),
        ScramHash::Sha384 => pbkdf2::pbkdf2_hmac::<sha2::Sha384>(password, salt, i, &mut out),
        ScramHash::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, i, &mut out),
        _ => unreachable!(),
    }
    out
}

/// Knobs to make the client misbehave.
#[derive(Clone)]
struct ScramOpts {
    gs2: &'static str,
    /// Override the `c=` value of client-final.
    cbind: Option<&'static str>,
    /// Replace the combined nonce in client-final.
    nonce: Option<&'static str>,
    /// Send an empty initial response first (no initial response).
    empty_first: bool,
}

impl Default for ScramOpts {
    fn default() -> Self {
        Self {
            gs2: "n,,",
            cbind: None,
            nonce: None,
            empty_first: false,
        }
    }
}

/// Runs a whole SCRAM exchange; on success checks the server signature and returns the user
/// and roles.
fn scram(
    hash: ScramHash,
    user: &str,
    password: &str,
    o: ScramOpts,
) -> Result<(String, Vec<String>), AuthError> {
    let mut mech = mechanisms().start(MechanismName::Scram(hash).as_str(), false)?;
    if o.empty_first {
        match mech.step(b"")? {
            Step::Challenge { challenge, next } => {
                assert!(challenge.is_empty());
                mech = next;
            }
            s => panic!("unexpected {s:?}"),
        }
    }
    let bare = format!("n={user},r=Cl1entN0nce+abc");
    let first = format!("{}{bare}", o.gs2);
    let Step::Challenge { challenge, next } = mech.step(first.as_bytes())? else {
        panic!("server completed after client-first");
    };
    let server_first = String::from_utf8(challenge).unwrap();
    let mut nonce = "";
    let mut salt = Vec::new();
    let mut iterations = 0;
    for attr in server_first.split(',') {
        match attr.split_at(2) {
            ("r=", v) => nonce = v,
            ("s=", v) => salt = B64.decode(v).unwrap(),
            ("i=", v) => iterations = v.parse().unwrap(),
            _ => panic!("unexpected attribute {attr}"),
        }
    }
    assert!(nonce.starts_with("Cl1entN0nce+abc") && nonce.len() > 20);
    let salted = hi(hash, password.as_bytes(), &salt, iterations);
    let client_key = hmac(hash, &salted, b"Client Key");
    let stored_key = h(hash, &client_key);
    let cbind = o
        .cbind
        .map(str::to_owned)
        .unwrap_or_else(|| B64.encode(o.gs2));
    let without_proof = format!("c={cbind},r={}", o.nonce.unwrap_or(nonce));
    let auth = format!("{bare},{server_first},{without_proof}");
    let sig = hmac(hash, &stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    let final_msg = format!("{without_proof},p={}", B64.encode(proof));
    match next.step(final_msg.as_bytes())? {
        Step::Success {
            user,
            roles,
            final_data,
        } => {
            let server_key = hmac(hash, &salted, b"Server Key");
            let expected = format!("v={}", B64.encode(hmac(hash, &server_key, auth.as_bytes())));
            assert_eq!(
                final_data.as_deref(),
                Some(expected.as_bytes()),
                "server signature"
            );
            Ok((user, roles))
        }
        s => panic!("unexpected {s:?}"),
    }
}

fn first_only(hash: ScramHash, msg: &str) -> Result<Step, AuthError> {
    mechanisms()
        .start(MechanismName::Scram(hash).as_str(), false)?
        .step(msg.as_bytes())
}

#[test]
fn scram_success_every_hash() {
    for hash in ScramHash::ALL {
        let (user, r) = scram(hash, "alice", "wonderland", ScramOpts::default()).unwrap();
        assert_eq!(user, "alice");
        assert_eq!(r, roles(&["admin", "reader"]));
    }
}

#[test]
fn scram_y_flag_and_no_initial_response_accepted() {
    let o = ScramOpts {
        gs2: "y,,",
        empty_first: true,
        ..ScramOpts::default()
    };
    assert!(scram(ScramHash::Sha512, "alice", "wonderland", o).is_ok());
    let o = ScramOpts {
        gs2: "n,a=alice,",
        ..ScramOpts::default()
    };
    assert!(scram(ScramHash::Sha256, "alice", "wonderland", o).is_ok());
}

#[test]
fn scram_wrong_password() {
    let e = scram(
        ScramHash::Sha512,
        "alice",
        "s3cr3t-guess",
        ScramOpts::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, AuthError::WrongPassword { ref user, .. } if user == "alice"),
        "{e:?}"
    );
    assert!(e.is_bad_credentials());
    assert!(!e.to_string().contains("s3cr3t"), "no secret in {e}");
}

#[test]
fn scram_unknown_user_fails_only_after_proof() {
    // The server-first for an unknown user looks normal; the reason comes at the end.
    let e = scram(ScramHash::Sha256, "mallory", "x", ScramOpts::default()).unwrap_err();
    assert!(
        matches!(e, AuthError::UnknownUser { ref user, .. } if user == "mallory"),
        "{e:?}"
    );
}

#[test]
fn scram_missing_verifier() {
    assert!(scram(ScramHash::Sha256, "carol", "carolpw", ScramOpts::default()).is_ok());
    let e = scram(ScramHash::Sha384, "carol", "carolpw", ScramOpts::default()).unwrap_err();
    assert!(matches!(e, AuthError::NoCredential { .. }), "{e:?}");
}

#[test]
fn scram_nonce_mismatch() {
    let o = ScramOpts {
        nonce: Some("Cl1entN0nce+abcFORGED"),
        ..ScramOpts::default()
    };
    let e = scram(ScramHash::Sha1, "alice", "wonderland", o).unwrap_err();
    assert!(matches!(e, AuthError::NonceMismatch { .. }), "{e:?}");
}

#[test]
fn scram_channel_binding_refused() {
    let e = first_only(ScramHash::Sha512, "p=tls-unique,,n=alice,r=abc").unwrap_err();
    assert!(
        matches!(e, AuthError::ChannelBindingUnsupported { ref requested, .. } if requested == "tls-unique"),
        "{e:?}"
    );
    // c= must repeat the GS2 header.
    let o = ScramOpts {
        cbind: Some("eSws"),
        ..ScramOpts::default()
    };
    let e = scram(ScramHash::Sha256, "alice", "wonderland", o).unwrap_err();
    assert!(matches!(e, AuthError::Malformed { .. }), "{e:?}");
}

#[test]
fn scram_authzid_denied() {
    let e = first_only(ScramHash::Sha256, "n,a=bob,n=alice,r=abc").unwrap_err();
    assert!(matches!(e, AuthError::AuthzidDenied { .. }), "{e:?}");
}

#[test]
fn scram_malformed_messages() {
    for msg in [
        "x,,n=alice,r=abc",
        "n,,r=abc",
        "n,,n=alice",
        "n,,n=alice,r=",
        "n,,m=ext,n=alice,r=abc",
        "n,,n=al=ice,r=abc",
        "n,,n=,r=abc",
        "n",
        "n,",
    ] {
        let e = first_only(ScramHash::Sha256, msg).unwrap_err();
        assert!(matches!(e, AuthError::Malformed { .. }), "{msg}: {e:?}");
    }
    let e = first_only(ScramHash::Sha256, "\u{0}\u{ff}").unwrap_err();
    assert!(matches!(e, AuthError::Malformed { .. }));
    // Invalid UTF-8.
    let mech = mechanisms().start("SCRAM-SHA-256", false).unwrap();
    assert!(matches!(
        mech.step(&[0xff, 0xfe]),
        Err(AuthError::Malformed { .. })
    ));
    // Client-final without a proof.
    let Step::Challenge { next, .. } = first_only(ScramHash::Sha256, "n,,n=alice,r=abc").unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        next.step(b"c=biws,r=abc"),
        Err(AuthError::Malformed { .. })
    ));
    // Two empty messages in a row.
    let mech = mechanisms().start("SCRAM-SHA-1", false).unwrap();
    let Ok(Step::Challenge { next, .. }) = mech.step(b"") else {
        panic!()
    };
    assert!(matches!(next.step(b""), Err(AuthError::Malformed { .. })));
}

// ---------------------------------------------------------------- DIGEST-MD5 client

#[derive(Clone)]
struct DigestOpts {
    realm: Option<&'static str>,
    uri: &'static str,
    nc: &'static str,
    qop: &'static str,
    nonce: Option<&'static str>,
    authzid: Option<&'static str>,
    extra: &'static str,
}

impl Default for DigestOpts {
    fn default() -> Self {
        Self {
            realm: Some("default"),
            uri: "hotrod/infinispan",
            nc: "00000001",
            qop: "auth",
            nonce: None,
            authzid: None,
            extra: "",
        }
    }
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut m = Md5::new();
    for p in parts {
        m.update(p);
    }
    m.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Minimal challenge parser for the client: splits on commas outside quotes.
fn parse_challenge(c: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in c.chars().chain(std::iter::once(',')) {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                let (k, v) = cur.split_once('=').unwrap();
                out.push((k.to_owned(), v.to_owned()));
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    out
}

fn digest(user: &str, password: &str, o: DigestOpts) -> Result<(String, Vec<String>), AuthError> {
    let mech = mechanisms().start("DIGEST-MD5", false)?;
    let Step::Challenge { challenge, next } = mech.step(b"")? else {
        panic!()
    };
    let challenge = parse_challenge(std::str::from_utf8(&challenge).unwrap());
    let get = |k: &str| {
        challenge
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let realms: Vec<String> = challenge
        .iter()
        .filter(|(n, _)| n == "realm")
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(realms, roles(&["default", "other"]));
    assert_eq!(get("qop").as_deref(), Some("auth"));
    assert_eq!(get("charset").as_deref(), Some("utf-8"));
    assert_eq!(get("algorithm").as_deref(), Some("md5-sess"));
    let server_nonce = get("nonce").unwrap();
    assert!(server_nonce.len() >= 16);
    let nonce = o.nonce.map(str::to_owned).unwrap_or(server_nonce);
    let cnonce = "cl1entCn0nce";
    let realm = o.realm.unwrap_or("");

    let mut m = Md5::new();
    m.update(format!("{user}:{realm}:{password}"));
    let secret = m.finalize();
    let mut a1: Vec<u8> = secret.to_vec();
    a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
    if let Some(a) = o.authzid {
        a1.extend_from_slice(format!(":{a}").as_bytes());
    }
    let ha1 = md5_hex(&[&a1]);
    let kd = |a2: &str| {
        let ha2 = md5_hex(&[a2.as_bytes()]);
        md5_hex(&[format!("{ha1}:{nonce}:{}:{cnonce}:{}:{ha2}", o.nc, o.qop).as_bytes()])
    };
    let response = kd(&format!("AUTHENTICATE:{}", o.uri));
    let mut msg = format!(
        "charset=utf-8,username=\"{user}\",nonce=\"{nonce}\",nc={},cnonce=\"{cnonce}\",\
         digest-uri=\"{}\",maxbuf=65536,response={response},qop={}",
        o.nc, o.uri, o.qop
    );
    if let Some(r) = o.realm {
        msg.push_str(&format!(",realm=\"{r}\""));
    }
    if let Some(a) = o.authzid {
        msg.push_str(&format!(",authzid=\"{a}\""));
    }
    msg.push_str(o.extra);
    match next.step(msg.as_bytes())? {
        Step::Success {
            user,
            roles,
            final_data,
        } => {
            let expected = format!("rspauth={}", kd(&format!(":{}", o.uri)));
            assert_eq!(final_data.as_deref(), Some(expected.as_bytes()));
            Ok((user, roles))
        }
        s => panic!("unexpected {s:?}"),
    }
}

#[test]
fn digest_success() {
    let (user, r) = digest("alice", "wonderland", DigestOpts::default()).unwrap();
    assert_eq!((user.as_str(), r), ("alice", roles(&["admin", "reader"])));
    let o = DigestOpts {
        realm: Some("other"),
        ..DigestOpts::default()
    };
    assert!(digest("bob", "builder", o).is_ok());
    let o = DigestOpts {
        uri: "hotrod/INFINISPAN",
        authzid: Some("alice"),
        ..DigestOpts::default()
    };
    assert!(digest("alice", "wonderland", o).is_ok());
}

#[test]
fn digest_failures() {
    let d = DigestOpts::default;
    let cases: Vec<(&str, &str, DigestOpts, Check)> = vec![
        ("alice", "nope", d(), |e| {
            matches!(e, AuthError::WrongPassword { .. })
        }),
        ("mallory", "x", d(), |e| {
            matches!(e, AuthError::UnknownUser { .. })
        }),
        (
            "alice",
            "wonderland",
            DigestOpts {
                realm: Some("evil"),
                ..d()
            },
            |e| matches!(e, AuthError::RealmMismatch { realm } if realm == "evil"),
        ),
        (
            "alice",
            "wonderland",
            DigestOpts { realm: None, ..d() },
            |e| matches!(e, AuthError::RealmMismatch { .. }),
        ),
        // bob has no secret for realm `default`.
        ("bob", "builder", d(), |e| {
            matches!(e, AuthError::NoCredential { .. })
        }),
        (
            "alice",
            "wonderland",
            DigestOpts {
                uri: "hotrod/elsewhere",
                ..d()
            },
            |e| {
                matches!(e, AuthError::DigestUriMismatch { expected, got }
                if expected == "hotrod/infinispan" && got == "hotrod/elsewhere")
            },
        ),
        (
            "alice",
            "wonderland",
            DigestOpts {
                uri: "imap/infinispan",
                ..d()
            },
            |e| matches!(e, AuthError::DigestUriMismatch { .. }),
        ),
        (
            "alice",
            "wonderland",
            DigestOpts {
                nc: "00000002",
                ..d()
            },
            |e| matches!(e, AuthError::NonceCountMismatch { got } if got == "00000002"),
        ),
        (
            "alice",
            "wonderland",
            DigestOpts {
                qop: "auth-conf",
                ..d()
            },
            |e| matches!(e, AuthError::QopUnsupported { .. }),
        ),
        (
            "alice",
            "wonderland",
            DigestOpts {
                nonce: Some("forged"),
                ..d()
            },
            |e| matches!(e, AuthError::NonceMismatch { .. }),
        ),
        (
            "alice",
            "wonderland",
            DigestOpts {
                authzid: Some("bob"),
                ..d()
            },
            |e| matches!(e, AuthError::AuthzidDenied { .. }),
        ),
        (
            "alice",
            "wonderland",
            DigestOpts {
                extra: ",nc=00000001",
                ..d()
            },
            |e| matches!(e, AuthError::Malformed { what, .. } if what.contains("duplicate")),
        ),
        (
            "alice",
            "wonderland",
            DigestOpts {
                extra: ",charset=iso-8859-1",
                ..d()
            },
            |e| matches!(e, AuthError::Malformed { .. }),
        ),
        (
            "alice",
            "wonderland",
            DigestOpts {
                extra: ",broken=\"",
                ..d()
            },
            |e| matches!(e, AuthError::Malformed { .. }),
        ),
    ];
    for (i, (user, pw, o, check)) in cases.into_iter().enumerate() {
        let e = digest(user, pw, o).unwrap_err();
        assert!(check(&e), "case {i}: {e:?}");
    }
}

#[test]
fn digest_missing_directive_and_initial_response() {
    let mech = mechanisms().start("DIGEST-MD5", false).unwrap();
    let e = mech.step(b"username=\"alice\"").unwrap_err();
    assert!(matches!(e, AuthError::Malformed { .. }), "{e:?}");
    let mech = mechanisms().start("DIGEST-MD5", false).unwrap();
    let Ok(Step::Challenge { next, .. }) = mech.step(b"") else {
        panic!()
    };
    let e = next.step(b"username=\"alice\",nonce=\"x\"").unwrap_err();
    assert!(
        matches!(e, AuthError::Malformed { ref what, .. } if what.contains("missing")),
        "{e:?}"
    );
}

// ---------------------------------------------------------------- PLAIN

fn plain(msg: &[u8], tls: bool) -> Result<Step, AuthError> {
    mechanisms().start("PLAIN", tls)?.step(msg)
}

#[test]
fn plain_success_and_failures() {
    match plain(b"\0alice\0wonderland", true).unwrap() {
        Step::Success {
            user,
            roles: r,
            final_data,
        } => {
            assert_eq!(user, "alice");
            assert_eq!(r, roles(&["admin", "reader"]));
            assert_eq!(final_data, None);
        }
        s => panic!("{s:?}"),
    }
    assert!(matches!(
        plain(b"alice\0alice\0wonderland", true),
        Ok(Step::Success { .. })
    ));
    // carol has only SCRAM-SHA-256; PLAIN uses whatever is strongest.
    assert!(matches!(
        plain(b"\0carol\0carolpw", true),
        Ok(Step::Success { .. })
    ));
    let cases: &[(&[u8], Check)] = &[
        (b"\0alice\0wrong", |e| {
            matches!(e, AuthError::WrongPassword { .. })
        }),
        (b"\0mallory\0x", |e| {
            matches!(e, AuthError::UnknownUser { .. })
        }),
        (b"bob\0alice\0wonderland", |e| {
            matches!(e, AuthError::AuthzidDenied { .. })
        }),
        (b"alice-wonderland", |e| {
            matches!(e, AuthError::Malformed { .. })
        }),
        (b"\0alice\0wonder\0land", |e| {
            matches!(e, AuthError::Malformed { .. })
        }),
        (b"\0\0pw", |e| matches!(e, AuthError::Malformed { .. })),
        (b"\0alice\0\xff", |e| {
            matches!(e, AuthError::Malformed { .. })
        }),
    ];
    for (msg, check) in cases {
        let e = plain(msg, true).unwrap_err();
        assert!(check(&e), "{msg:?}: {e:?}");
    }
}

#[test]
fn plain_without_initial_response() {
    let Ok(Step::Challenge { challenge, next }) = plain(b"", true) else {
        panic!()
    };
    assert!(challenge.is_empty());
    assert!(matches!(
        next.step(b"\0alice\0wonderland"),
        Ok(Step::Success { .. })
    ));
}

#[test]
fn plain_in_clear_needs_the_flag() {
    let e = plain(b"\0alice\0wonderland", false).unwrap_err();
    assert!(matches!(e, AuthError::CleartextNotAllowed { .. }), "{e:?}");
    let m = mechanisms();
    assert!(!m.offered(false).contains(&MechanismName::Plain));
    assert!(m.offered(true).contains(&MechanismName::Plain));

    let mut c = config();
    c.plain_in_clear = true;
    let m = Mechanisms::new(store(), c).unwrap();
    assert!(m.offered(false).contains(&MechanismName::Plain));
    let mech = m.start("PLAIN", false).unwrap();
    assert!(matches!(
        mech.step(b"\0alice\0wonderland"),
        Ok(Step::Success { .. })
    ));
}

// ---------------------------------------------------------------- factory

#[test]
fn factory_refuses_unknown_and_disabled_mechanisms() {
    let m = mechanisms();
    let e = m.start("GSSAPI", true).unwrap_err();
    assert!(matches!(e, AuthError::UnknownMechanism { ref name } if name == "GSSAPI"));

    let mut c = config();
    c.enabled = vec![
        MechanismName::Scram(ScramHash::Sha512),
        MechanismName::DigestMd5,
    ];
    let m = Mechanisms::new(store(), c).unwrap();
    assert_eq!(
        m.offered(true),
        vec![
            MechanismName::Scram(ScramHash::Sha512),
            MechanismName::DigestMd5
        ]
    );
    let e = m.start("SCRAM-SHA-1", true).unwrap_err();
    assert!(matches!(
        e,
        AuthError::MechanismNotEnabled {
            mechanism: MechanismName::Scram(ScramHash::Sha1)
        }
    ));
    let e = m.start("PLAIN", true).unwrap_err();
    assert!(matches!(e, AuthError::MechanismNotEnabled { .. }));
    let mech = m.start("scram-sha-512", false).unwrap();
    assert_eq!(mech.name(), MechanismName::Scram(ScramHash::Sha512));
}

#[test]
fn mechanism_names_round_trip() {
    for m in MechanismName::ALL {
        assert_eq!(MechanismName::parse(m.as_str()), Some(m));
        assert_eq!(m.to_string(), m.as_str());
    }
    assert_eq!(MechanismName::parse("GSSAPI"), None);
}

// ---------------------------------------------------------------- EXTERNAL

#[test]
fn external_maps_the_certificate_identity_to_a_stored_user() {
    let m = mechanisms();
    match m.start_external("alice").step(b"").unwrap() {
        Step::Success {
            user,
            roles: r,
            final_data,
        } => {
            assert_eq!(user, "alice");
            assert_eq!(r, roles(&["admin", "reader"]));
            assert!(final_data.is_none());
        }
        other => panic!("expected success, got {other:?}"),
    }
    assert!(matches!(
        m.start_external("alice").step(b"alice").unwrap(),
        Step::Success { .. }
    ));
}

#[test]
fn external_refuses_unknown_identities_and_other_authzids() {
    let m = mechanisms();
    let e = m.start_external("mallory").step(b"").unwrap_err();
    assert!(
        matches!(e, AuthError::UnknownUser { ref user, .. } if user == "mallory"),
        "{e}"
    );
    let e = m.start_external("alice").step(b"bob").unwrap_err();
    assert!(matches!(e, AuthError::AuthzidDenied { .. }), "{e}");
    assert!(
        m.start("EXTERNAL", true).is_err(),
        "EXTERNAL needs a certificate identity"
    );
    assert_eq!(
        MechanismName::parse("external"),
        Some(MechanismName::External)
    );
    assert!(!MechanismName::ALL.contains(&MechanismName::External));
}
