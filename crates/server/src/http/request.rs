//! A request as the handlers see it: method, decoded path segments, query parameters, headers
//! and the whole body.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

/// One HTTP request, read whole.
#[derive(Debug)]
pub struct Call {
    pub method: Method,
    /// The path and query exactly as sent: Digest authentication signs this string.
    pub raw_target: String,
    /// Path segments after percent-decoding; empty segments are dropped, so `/a//b/` is
    /// `["a", "b"]`.
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request body could not be read: {0}")]
    Body(String),
    #[error("the request path is not valid UTF-8 after percent-decoding")]
    BadPath,
}

impl Call {
    /// Reads `req` with its body, refusing bodies above `max_body`.
    pub async fn read(req: hyper::Request<Incoming>, max_body: usize) -> Result<Call, ReadError> {
        let (parts, body) = req.into_parts();
        let body = Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ReadError::TooLarge(max_body)
                } else {
                    ReadError::Body(e.to_string())
                }
            })?
            .to_bytes();
        let raw_target = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        let segments = parts
            .uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| ReadError::BadPath)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let query = parts.uri.query().map(parse_query).unwrap_or_default();
        Ok(Call {
            method: parts.method,
            raw_target,
            segments,
            query,
            headers: parts.headers,
            body,
        })
    }

    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `action` query parameter Infinispan's REST API uses for verbs on a resource.
    pub fn action(&self) -> Option<&str> {
        self.param("action")
    }

    /// A header's value, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path segments as string slices, for matching.
    pub fn path(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }
}

/// `a=1&b=x%20y` into pairs, `+` meaning space as in HTML forms.
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded() {
        let q = parse_query("action=take-offline&x=a%20b+c&flag");
        assert_eq!(
            q,
            vec![
                ("action".to_string(), "take-offline".to_string()),
                ("x".to_string(), "a b c".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
    }
}
