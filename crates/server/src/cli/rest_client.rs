//! A small REST client for the command line: one HTTP/1.1 request per connection, answering
//! a 401 challenge with Digest (preferred) or Basic, as Infinispan's CLI does against its
//! server.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest as _, Md5};

use crate::http::credentials;
use tokio::net::TcpStream;

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("HTTP exchange with {0} failed: {1}")]
    Http(String, String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim_end().to_string()
    }
}

/// Where the server is and who to be.
#[derive(Debug, Clone)]
pub struct RestClient {
    /// `host:port`.
    pub server: String,
    pub credentials: Option<(String, String)>,
    pub timeout: Duration,
}

impl RestClient {
    /// Sends one request; on a 401 with credentials configured, answers the challenge once.
    pub async fn call(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let first = self
            .send(method.clone(), target, headers, body.clone(), None)
            .await?;
        if first.status != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let Some((user, password)) = &self.credentials else {
            return Ok(first);
        };
        let challenges: Vec<&str> = first
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let authorization = if let Some(d) = challenges.iter().find(|c| c.starts_with("Digest ")) {
            digest_answer(d, user, password, method.as_str(), target)?
        } else {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        };
        self.send(method, target, headers, body, Some(authorization))
            .await
    }

    async fn send(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, String)],
        body: Bytes,
        authorization: Option<String>,
    ) -> Result<Answer, ClientError> {
        let exchange = async {
            let stream = TcpStream::connect(&self.server)
                .await
                .map_err(|e| ClientError::Connect(self.server.clone(), e))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| ClientError::Http(self.server.clone(), e.to_string()))?;
            tokio::spawn(conn);
            let mut req = Request::builder()
                .method(method)
                .uri(target)
                .header(HOST, &self.server);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some(a) = authorization {
                let v =
                    HeaderValue::from_str(&a).map_err(|e| ClientError::Invalid(e.to_string()))?;
                req = req.header(AUTHORIZATION, v);
            }
            let req = req
                .body(Full::new(body))
                .map_err(|e| ClientError::Invalid(e.to_string()))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| ClientError::Http(self.server.clone(), e.to_string()))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| ClientError::Http(self.server.clone(), e.to_string()))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.server.clone(), self.timeout))?
    }
}

/// RFC 7616 MD5 with qop `auth`, the only variant Ironrod's server offers.
fn digest_answer(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> Result<String, ClientError> {
    let params = credentials::parse_params(challenge.trim_start_matches("Digest "));
    let nonce = params
        .get("nonce")
        .ok_or_else(|| ClientError::Invalid("challenge without nonce".into()))?;
    let realm = params.get("realm").map_or("default", String::as_str);
    let mut raw = [0u8; 8];
    getrandom::getrandom(&mut raw).map_err(|e| ClientError::Invalid(e.to_string()))?;
    let cnonce = credentials::hex(&raw);
    let nc = "00000001";
    let ha1 = Md5::digest(format!("{user}:{realm}:{password}").as_bytes());
    let response = credentials::response_for(&ha1, nonce, nc, &cnonce, method, uri);
    let opaque = params
        .get("opaque")
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    Ok(format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\"{opaque}"
    ))
}
