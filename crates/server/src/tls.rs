//! TLS on the Hot Rod port itself (rustls through tokio-rustls).
//!
//! Infinispan serves TLS and cleartext on the same port 11222; so does this. The first byte a
//! client sends tells them apart (`crate::detect`): a TLS record starts with 0x16 (handshake).
//! In `mode = "required"` anything but TLS is closed. Inside TLS the first decrypted byte
//! tells Hot Rod from HTTP again, so Hot Rod over TLS needs no ALPN, as in Infinispan.
//!
//! What the operator configures (`[tls]`): a PEM certificate chain and key (the default), more
//! pairs chosen by SNI host name, and optionally a CA that client certificates must chain to
//! (`client_auth = "want"` or `"need"`). The subject CN of a verified client certificate is the
//! identity SASL EXTERNAL maps to a user. Certificates are re-read on SIGHUP: connections
//! accepted after it use the new ones; a file that fails to load keeps the old configuration
//! and is logged.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `[tls]` table. TLS is on when `certificate` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first: served when no SNI entry matches.
    pub certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `certificate`.
    pub key: Option<PathBuf>,
    /// `required` (the default once TLS is configured) or `optional`.
    pub mode: TlsMode,
    /// Per-host certificates chosen by the SNI name the client sends (case-insensitive).
    pub sni: BTreeMap<String, CertificatePair>,
    /// PEM CA certificates that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// Whether to ask for a client certificate: `none` (default), `want` or `need`.
    pub client_auth: ClientAuth,
}

/// A certificate chain and its key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePair {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Only TLS; a cleartext client is disconnected.
    #[default]
    Required,
    /// TLS and cleartext Hot Rod on the same port.
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    None,
    /// Ask for a certificate; connections without one are still accepted.
    Want,
    /// Refuse the handshake without a certificate that chains to `client_ca`.
    Need,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.certificate.is_some()
    }

    /// What serde cannot check; called from `Config::validate`.
    pub fn validate(&self) -> Result<(), String> {
        if self.certificate.is_some() != self.key.is_some() {
            return Err("tls.certificate and tls.key must be set together".into());
        }
        if !self.enabled() && (!self.sni.is_empty() || self.client_ca.is_some()) {
            return Err("tls.sni and tls.client_ca need tls.certificate and tls.key".into());
        }
        if self.client_auth != ClientAuth::None && self.client_ca.is_none() {
            return Err("tls.client_auth needs tls.client_ca".into());
        }
        Ok(())
    }
}

/// Why certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("tls: cannot read {path}: {reason}")]
    File { path: String, reason: String },
    #[error("tls: {path} holds no certificate")]
    NoCertificate { path: String },
    #[error("tls: certificate and key do not go together ({path}): {reason}")]
    KeyMismatch { path: String, reason: String },
    #[error("tls: {0}")]
    Rustls(String),
    #[error("tls: not configured (no tls.certificate)")]
    NotConfigured,
}

/// How one connection reached us: what SASL and the logs need to know about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    pub tls: bool,
    /// The SNI host name the client sent.
    pub sni: Option<String>,
    /// The subject CN of the client certificate, present only when the certificate was
    /// verified against `client_ca`.
    pub client_cn: Option<String>,
}

/// The server's TLS side: the configuration and the current rustls configuration, replaced
/// whole on reload.
pub struct Tls {
    config: TlsConfig,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads every certificate, key and CA the configuration names.
    pub fn load(config: &TlsConfig) -> Result<Tls, TlsError> {
        let server = build(config)?;
        Ok(Tls {
            config: config.clone(),
            current: RwLock::new(Arc::new(server)),
        })
    }

    pub fn mode(&self) -> TlsMode {
        self.config.mode
    }

    /// Re-reads the files. On failure the configuration in use stays, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let server = build(&self.config)?;
        *self.current.write() = Arc::new(server);
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }
}

/// Reloads the certificates whenever the process gets SIGHUP, until `stop`.
pub async fn reload_on_sighup(tls: Arc<Tls>, stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                warn!("tls: cannot listen for SIGHUP, certificates will not reload: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            match tls.reload() {
                Ok(()) => info!("tls: certificates reloaded"),
                Err(e) => warn!("tls: reload failed, keeping the previous certificates: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tls;
        stop.cancelled().await;
    }
}

impl Tls {
    /// Runs the server side of the handshake on a connection whose first byte was a TLS
    /// record; `None` (after logging why) when it fails or takes longer than
    /// [`HANDSHAKE_TIMEOUT`].
    pub(crate) async fn handshake(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, Transport)> {
        let accepted =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor().accept(socket)).await;
        let stream = match accepted {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                warn!(%peer, "TLS handshake failed: {e}");
                return None;
            }
            Err(_) => {
                warn!(%peer, "TLS handshake timed out");
                return None;
            }
        };
        let (_, conn) = stream.get_ref();
        let transport = Transport {
            tls: true,
            sni: conn.server_name().map(str::to_owned),
            client_cn: conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| common_name(leaf.as_ref())),
        };
        debug!(%peer, sni = ?transport.sni, client = ?transport.client_cn, "TLS established");
        Some((stream, transport))
    }
}

/// The first common name of a DER certificate's subject.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The whole rustls configuration from the files.
fn build(config: &TlsConfig) -> Result<rustls::ServerConfig, TlsError> {
    let (Some(cert), Some(key)) = (&config.certificate, &config.key) else {
        return Err(TlsError::NotConfigured);
    };
    let provider = provider();
    let default = certified_key(cert, key, &provider)?;
    let mut by_name = BTreeMap::new();
    for (name, pair) in &config.sni {
        let ck = certified_key(&pair.certificate, &pair.key, &provider)?;
        by_name.insert(name.to_ascii_lowercase(), ck);
    }
    let resolver = Arc::new(SniResolver { default, by_name });
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match (&config.client_ca, config.client_auth) {
        (Some(ca), mode) if mode != ClientAuth::None => {
            let mut roots = RootCertStore::empty();
            for c in certificates(ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError::Rustls(format!("client_ca {}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == ClientAuth::Want {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut server = builder.with_cert_resolver(resolver);
    // HTTP clients pick HTTP/2 or HTTP/1.1 by ALPN, as with Infinispan's single port. Hot Rod
    // clients send no ALPN extension, so nothing is negotiated for them and the first
    // decrypted byte tells the protocol (`crate::detect`).
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(server)
}

pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |reason: String| TlsError::File {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certificates(cert)?;
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let ck = CertifiedKey::from_der(chain, der, provider).map_err(|e| TlsError::KeyMismatch {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(ck))
}

/// Picks the certificate by the SNI name the client sent; the default for none or no match.
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    by_name: BTreeMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()))
            .unwrap_or(&self.default);
        Some(chosen.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_needs_certificate_and_key_together() {
        let mut c = TlsConfig {
            certificate: Some("c.pem".into()),
            ..TlsConfig::default()
        };
        assert!(c.validate().is_err());
        c.key = Some("k.pem".into());
        assert!(c.validate().is_ok());
        c.client_auth = ClientAuth::Need;
        assert!(c.validate().unwrap_err().contains("client_ca"));
        assert!(TlsConfig::default().validate().is_ok());
    }

    #[test]
    fn the_tls_and_authorization_tables_parse_from_toml() {
        let c = crate::Config::from_toml(
            r#"
            [tls]
            certificate = "s.pem"
            key = "s-key.pem"
            mode = "optional"
            client_ca = "ca.pem"
            client_auth = "want"
            [tls.sni."cache.example.com"]
            certificate = "c.pem"
            key = "c-key.pem"
            [authorization.roles]
            reader = ["READ", "MONITOR"]
            [caches.sessions]
            roles = ["deployer"]
            "#,
        )
        .unwrap();
        assert_eq!(c.tls.mode, TlsMode::Optional);
        assert_eq!(c.tls.client_auth, ClientAuth::Want);
        assert_eq!(
            c.tls.sni["cache.example.com"].certificate,
            PathBuf::from("c.pem")
        );
        assert!(c.authorization.is_enabled());
        assert!(c.authorization.role("reader").is_some());
        assert_eq!(
            c.caches["sessions"].roles.as_deref(),
            Some(&["deployer".to_string()][..])
        );
        let e = crate::Config::from_toml("[tls]\nmode = \"sometimes\"\n").unwrap_err();
        assert!(e.to_string().contains("sometimes"), "{e}");
        let e = crate::Config::from_toml("[authorization.roles]\nx = [\"FLY\"]\n").unwrap_err();
        assert!(e.to_string().contains("FLY"), "{e}");
    }

    #[test]
    fn missing_files_are_reported_with_their_path() {
        let c = TlsConfig {
            certificate: Some("/nonexistent/c.pem".into()),
            key: Some("/nonexistent/k.pem".into()),
            ..TlsConfig::default()
        };
        let e = Tls::load(&c).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/c.pem"), "{e}");
    }
}
