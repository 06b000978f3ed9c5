//! Mutual TLS on bridge links (`auth = { mode = "tls", cert, key, ca }`).
//!
//! Both ends present this site's certificate and verify the peer's against `ca`: the listener
//! requires a client certificate that chains to it, the dialling side checks the listener's
//! certificate against it and against the host name (or IP address) it dialled. TLS alone
//! authenticates the link: the bridge handshake then runs inside TLS with auth mode TLS and
//! empty proofs (`protocol-spec/xsite.md`). Anything else on a TLS bridge port (a plain TCP
//! peer, a certificate from another CA) fails the TLS handshake and is closed, with a log line.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::tls::{certificates, provider};

/// How long either side may take for the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The rustls configurations of both sides of a bridge link.
#[derive(Clone)]
pub struct BridgeTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for BridgeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeTls").finish_non_exhaustive()
    }
}

/// A TLS stream of either side, as the driver's reader and writer see it.
pub trait LinkIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> LinkIo for T {}

impl BridgeTls {
    /// Loads this site's chain and key and the CA bundle; the error names the file and cause.
    pub fn load(cert: &str, key: &str, ca: &str) -> Result<BridgeTls, String> {
        let provider = provider();
        let chain = certificates(Path::new(cert)).map_err(|e| e.to_string())?;
        let key_der = || {
            PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls: cannot read {key}: {e}"))
        };
        let mut roots = RootCertStore::empty();
        for c in certificates(Path::new(ca)).map_err(|e| e.to_string())? {
            roots
                .add(c)
                .map_err(|e| format!("tls: CA certificate in {ca}: {e}"))?;
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| format!("tls: {e}"))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key_der()?)
            .map_err(|e| format!("tls: certificate {cert} and key {key}: {e}"))?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key_der()?)
            .map_err(|e| format!("tls: certificate {cert} and key {key}: {e}"))?;
        Ok(BridgeTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// The listener's side: requires a client certificate from the CA.
    pub async fn accept(&self, socket: TcpStream) -> Result<Box<dyn LinkIo>, String> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(socket)).await {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// The dialling side: verifies the listener's certificate for the host of `address`.
    pub async fn connect(
        &self,
        socket: TcpStream,
        address: &str,
    ) -> Result<Box<dyn LinkIo>, String> {
        let name = server_name(address)?;
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.connector.connect(name, socket)).await {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }
}

/// The name a listener's certificate must carry: the host part of `host:port` (a DNS name or an
/// IP address, brackets removed).
fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| format!("bad host name {host:?}: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        assert!(matches!(
            server_name("127.0.0.1:7900").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:7900").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert_eq!(
            server_name("site2.example.com:7900").unwrap(),
            ServerName::try_from("site2.example.com").unwrap()
        );
        assert!(server_name("bad name:1").is_err());
    }

    #[test]
    fn missing_files_are_named_in_the_error() {
        let e = BridgeTls::load(
            "/nonexistent/c.pem",
            "/nonexistent/k.pem",
            "/nonexistent/ca.pem",
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent/c.pem"), "{e}");
    }
}
