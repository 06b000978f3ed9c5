//! `ironrod-test-certs DIR`: writes a throw-away certificate authority and certificates signed
//! by it, for the TLS conformance tests (JS and Java) to start Ironrod with. Nothing it writes
//! is meant to outlive a test run; keys are made fresh each time.
//!
//! Files (PEM): `ca.pem`; `server.pem` + `server-key.pem` (DNS `localhost`, IP 127.0.0.1);
//! `other.pem` + `other-key.pem` (DNS `other.test`, served for that SNI name); `client.pem` +
//! `client-key.pem` (subject CN `certuser`, for EXTERNAL).

use std::path::Path;
use std::process::ExitCode;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: ironrod-test-certs DIR");
        return ExitCode::from(2);
    };
    match write_all(Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ironrod-test-certs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Ironrod test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf = |name: &str,
                cn: &str,
                sans: Vec<SanType>,
                client: bool|
     -> Result<(), Box<dyn std::error::Error>> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names = sans;
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &issuer)?;
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem())?;
        std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem())?;
        Ok(())
    };
    leaf(
        "server",
        "localhost",
        vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress([127, 0, 0, 1].into()),
        ],
        false,
    )?;
    leaf(
        "other",
        "other.test",
        vec![SanType::DnsName("other.test".try_into()?)],
        false,
    )?;
    leaf("client", "certuser", Vec::new(), true)?;
    Ok(())
}
