//! The credential store: parse, save/load round trip, seeding, validation.

// Test helpers outside #[test] functions fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use ironrod_sasl::{
    digest_md5_secret, CredentialStore, MechanismName, Mechanisms, SaslConfig, ScramHash,
    ScramVerifier, Step, StoreError,
};

fn v(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| (*x).to_owned()).collect()
}

fn plain_ok(store: CredentialStore, user: &str, pw: &str) -> bool {
    let m = Mechanisms::new(Arc::new(store), SaslConfig::default()).unwrap();
    let msg = format!("\0{user}\0{pw}");
    matches!(
        m.start("PLAIN", true).unwrap().step(msg.as_bytes()),
        Ok(Step::Success { .. })
    )
}

#[test]
fn add_user_computes_every_verifier() {
    let mut s = CredentialStore::new();
    s.add_user(
        "alice",
        "wonderland",
        &v(&["admin"]),
        &v(&["default", "other"]),
    )
    .unwrap();
    let u = s.user("alice").unwrap();
    assert_eq!(u.roles(), v(&["admin"]).as_slice());
    assert_eq!(
        u.digest_md5("default"),
        Some(&digest_md5_secret("alice", "default", "wonderland"))
    );
    assert!(u.digest_md5("other").is_some());
    assert!(u.digest_md5("third").is_none());
    for hash in ScramHash::ALL {
        let sv = u.scram(hash).unwrap();
        assert_eq!(sv.iterations(), 4096);
        assert_eq!(sv.salt().len(), 16);
        assert_eq!(sv.stored_key().len(), hash.output_len());
        assert!(sv.verify_password(hash, "wonderland"));
        assert!(!sv.verify_password(hash, "wonderlanD"));
        let again = ScramVerifier::derive(hash, "wonderland", sv.salt(), 4096);
        assert_eq!(&again, sv);
    }
    // Salts are random per hash and per user.
    assert_ne!(
        u.scram(ScramHash::Sha256).unwrap().salt(),
        u.scram(ScramHash::Sha512).unwrap().salt()
    );
    assert!(matches!(
        s.add_user("alice", "x", &[], &[]),
        Err(StoreError::UserExists(ref n)) if n == "alice"
    ));
    assert!(matches!(
        s.add_user("", "x", &[], &[]),
        Err(StoreError::Empty(_))
    ));
    assert!(matches!(
        s.add_user("zed", "", &[], &[]),
        Err(StoreError::Empty(_))
    ));
}

#[test]
fn save_load_verify_round_trip() {
    let mut s = CredentialStore::new();
    s.set_iterations(5000).unwrap();
    s.add_user(
        "alice",
        "wonderland",
        &v(&["admin", "reader"]),
        &v(&["default"]),
    )
    .unwrap();
    s.add_user("bob", "builder", &[], &v(&["default"])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    s.save(&path).unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("wonderland") && !text.contains("builder"),
        "plaintext stored"
    );
    assert!(text.contains("SCRAM-SHA-512") && text.contains("stored-key"));
    assert!(text.contains("iterations = 5000"));

    let loaded = CredentialStore::load(&path).unwrap();
    assert_eq!(loaded.user("alice"), s.user("alice"));
    assert_eq!(loaded.user("bob"), s.user("bob"));
    assert_eq!(
        loaded.user_names().collect::<Vec<_>>(),
        vec!["alice", "bob"]
    );
    assert!(plain_ok(loaded.clone(), "alice", "wonderland"));
    assert!(!plain_ok(loaded.clone(), "alice", "builder"));

    // And a SCRAM-SHA-512 exchange against the loaded store uses the saved verifier.
    let m = Mechanisms::new(Arc::new(loaded), SaslConfig::default()).unwrap();
    let mech = m
        .start(MechanismName::Scram(ScramHash::Sha512).as_str(), true)
        .unwrap();
    let Ok(Step::Challenge { challenge, .. }) = mech.step(b"n,,n=alice,r=abcdef") else {
        panic!()
    };
    let sf = String::from_utf8(challenge).unwrap();
    assert!(sf.ends_with(",i=5000"), "{sf}");
}

#[test]
fn parse_errors() {
    let bad = [
        ("[users.a]\nroles = 3\n", "parse"),
        ("[users.a]\nfoo = 1\n", "parse"),
        ("[users.a.digest-md5]\ndefault = \"zz\"\n", "verifier"),
        ("[users.a.digest-md5]\ndefault = \"00\"\n", "verifier"),
        (
            "[users.a.scram.SCRAM-MD4]\nsalt=\"AA==\"\niterations=1\nstored-key=\"AA==\"\nserver-key=\"AA==\"\n",
            "verifier",
        ),
        (
            "[users.a.scram.SCRAM-SHA-1]\nsalt=\"AA==\"\niterations=4096\nstored-key=\"AA==\"\nserver-key=\"AA==\"\n",
            "verifier",
        ),
        (
            "[users.a.scram.SCRAM-SHA-1]\nsalt=\"AA==\"\niterations=0\n\
             stored-key=\"AAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\nserver-key=\"AAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n",
            "verifier",
        ),
        ("[users.a.scram.SCRAM-SHA-1]\nsalt=\"AA==\"\n", "parse"),
        ("password = \"x\"\n", "parse"),
    ];
    for (text, kind) in bad {
        let e = CredentialStore::parse(text).unwrap_err();
        match kind {
            "parse" => assert!(matches!(e, StoreError::Parse(_)), "{text}: {e:?}"),
            _ => assert!(
                matches!(e, StoreError::InvalidVerifier { .. }),
                "{text}: {e:?}"
            ),
        }
    }
    assert!(CredentialStore::parse("").unwrap().is_empty());
    assert!(matches!(
        CredentialStore::load("/nonexistent/ironrod/users.toml"),
        Err(StoreError::Io { .. })
    ));
}

#[test]
fn seed_from_env_values() {
    let mut s = CredentialStore::new();
    let realms = v(&["default"]);
    assert!(!s.seed_from_env(None, None, &[], &realms).unwrap());
    assert!(s.is_empty());
    assert!(matches!(
        s.seed_from_env(Some("kc"), None, &[], &realms),
        Err(StoreError::IncompleteSeed { present: "user" })
    ));
    assert!(matches!(
        s.seed_from_env(None, Some("pw"), &[], &realms),
        Err(StoreError::IncompleteSeed {
            present: "password"
        })
    ));
    assert!(s
        .seed_from_env(Some("kc"), Some("one"), &v(&["admin"]), &realms)
        .unwrap());
    // Seeding again replaces (the environment wins over the file).
    assert!(s
        .seed_from_env(Some("kc"), Some("two"), &v(&["admin"]), &realms)
        .unwrap());
    assert!(plain_ok(s.clone(), "kc", "two"));
    assert!(!plain_ok(s.clone(), "kc", "one"));
    assert!(s.remove_user("kc"));
    assert!(!s.remove_user("kc"));
}

#[test]
fn iterations_have_a_floor() {
    let mut s = CredentialStore::new();
    assert!(matches!(
        s.set_iterations(1000),
        Err(StoreError::TooFewIterations(1000))
    ));
    assert_eq!(s.iterations(), 4096);
}

#[test]
fn digest_secret_encoding() {
    // ASCII: plain H(user:realm:password).
    let mut m = <md5::Md5 as md5::Digest>::new();
    md5::Digest::update(&mut m, b"chris:elwood.innosoft.com:secret");
    let want: [u8; 16] = md5::Digest::finalize(m).into();
    assert_eq!(
        digest_md5_secret("chris", "elwood.innosoft.com", "secret"),
        want
    );
    // Latin-1 user and password are hashed as ISO 8859-1 (RFC 2831 §2.1.2.1).
    let mut m = <md5::Md5 as md5::Digest>::new();
    md5::Digest::update(&mut m, b"j\xf6rg:default:p\xe4ss");
    let want: [u8; 16] = md5::Digest::finalize(m).into();
    assert_eq!(digest_md5_secret("jörg", "default", "päss"), want);
}

#[test]
fn debug_output_has_no_secrets() {
    let mut s = CredentialStore::new();
    s.add_user("alice", "wonderland", &v(&["admin"]), &v(&["default"]))
        .unwrap();
    let u = s.user("alice").unwrap();
    let secret: String = u
        .digest_md5("default")
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sv = u.scram(ScramHash::Sha256).unwrap();
    let debug = format!("{s:?}");
    assert!(
        debug.contains("alice") && debug.contains("default"),
        "{debug}"
    );
    assert!(!debug.contains(&secret), "{debug}");
    assert!(
        !debug.contains(&format!("{:?}", sv.stored_key())),
        "{debug}"
    );
    assert!(
        !debug.contains(&format!("{:?}", sv.server_key())),
        "{debug}"
    );
}
