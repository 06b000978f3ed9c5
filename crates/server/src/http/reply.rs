//! Building responses: JSON, text, bytes and bare statuses, all with a full body.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// What every handler returns.
pub type Reply = Response<Full<Bytes>>;

/// A response with `status`, a body and its content type.
pub fn with_body(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

/// A status without a body.
pub fn empty(status: StatusCode) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A JSON document, 200.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => with_body(StatusCode::OK, "application/json", body),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}")),
    }
}

/// Plain text, 200.
pub fn text(body: impl Into<String>) -> Reply {
    with_body(StatusCode::OK, "text/plain; charset=utf-8", body.into())
}

/// An error with a one-line explanation, as Infinispan answers (plain text body).
pub fn error(status: StatusCode, message: &str) -> Reply {
    with_body(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

/// Adds a header, skipping values that are not valid header text.
pub fn header(mut r: Reply, name: &'static str, value: &str) -> Reply {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(name, v);
    }
    r
}
