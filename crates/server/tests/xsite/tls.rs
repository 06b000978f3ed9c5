//! Mutual TLS on bridge links: sites with certificates from the configured CA link and
//! replicate; a certificate from another CA and a plain TCP peer are refused, and the link stays
//! down with a log line saying why.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::SanType;

use crate::common::ca::TestCa;

use crate::backup;
use crate::sites::{eventually, sites_view_len, Grid};

/// The shared test CA, signing site certificates.
struct Ca(TestCa);

impl Ca {
    fn new(name: &str) -> Ca {
        Ca(TestCa::new(name))
    }

    /// Writes `<name>.pem` and `<name>-key.pem`: a leaf for `localhost` and 127.0.0.1 (where
    /// the other sites dial).
    fn leaf(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let sans = vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
        ];
        self.0.leaf(dir, name, name, sans)
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        self.0.write(dir, name)
    }
}

/// `auth = { mode = "tls", ... }` for a leaf of `signer` that trusts `trusted`.
fn tls_auth(dir: &Path, name: &str, signer: &Ca, trusted: &Ca) -> String {
    let (cert, key) = signer.leaf(dir, name);
    let ca = trusted.write(dir, &format!("{name}-trusts"));
    format!(
        "{{ mode = \"tls\", cert = \"{}\", key = \"{}\", ca = \"{}\" }}",
        cert.display(),
        key.display(),
        ca.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_links_replicate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bridge CA");
    let auths = [
        tls_auth(dir.path(), "site1", &ca, &ca),
        tls_auth(dir.path(), "site2", &ca, &ca),
    ];
    let g = Grid::launch(
        &["site1", "site2"],
        |i| auths[i].clone(),
        |i| {
            if i == 0 {
                backup(
                    "sessions",
                    "site2",
                    "strategy = \"SYNC\"\nfailure_policy = \"FAIL\"",
                )
            } else {
                backup("sessions", "site1", "strategy = \"ASYNC\"")
            }
        },
    )
    .await;
    g.wait_links().await;
    let mut c1 = g.sites[0].client().await;
    let mut c2 = g.sites[1].client().await;
    c1.put("sessions", "k1", "over-tls").await.unwrap();
    assert_eq!(c2.get("sessions", "k1").await.as_deref(), Some("over-tls"));
    c2.put("sessions", "k2", "back").await.unwrap();
    let back = eventually(Duration::from_secs(10), async || {
        c1.get("sessions", "k2").await.as_deref() == Some("back")
    })
    .await;
    assert!(back, "ASYNC change over TLS never arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_bridge_refuses_foreign_certificates_and_plain_peers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bridge CA");
    let other = Ca::new("some other CA");
    // site2's certificate comes from another CA (it trusts ours, so only site1 can refuse).
    let auths = [
        tls_auth(dir.path(), "site1", &ca, &ca),
        tls_auth(dir.path(), "site2", &other, &ca),
    ];
    let g = Grid::launch(&["site1", "site2"], |i| auths[i].clone(), |_| String::new()).await;

    // A plain TCP peer speaking to the TLS bridge port is closed.
    let mut plain = std::net::TcpStream::connect(g.sites[0].bridge).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain.write_all(b"IRBRIDGE plain hello\r\n\r\n").unwrap();
    let mut buf = [0u8; 256];
    let mut closed = false;
    for _ in 0..10 {
        match plain.read(&mut buf) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            // A TLS alert may come first.
            Ok(_) => {}
        }
    }
    assert!(closed, "the TLS bridge port kept a plain TCP peer");

    let logged = eventually(Duration::from_secs(15), async || {
        let log = g.sites[0].log();
        log.contains("invalid peer certificate") && log.matches("TLS handshake failed").count() >= 2
    })
    .await;
    assert!(logged, "no refusal logged:\n{}", g.sites[0].log());
    // Several reconnect rounds later the link is still down on both sides.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sites_view_len(&g.sites[0]), 1, "{}", g.sites[0].log());
    assert_eq!(sites_view_len(&g.sites[1]), 1, "{}", g.sites[1].log());
}
