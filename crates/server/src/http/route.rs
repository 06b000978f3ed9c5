//! From a request to its handler: reading the body, authentication, then the path.

use std::net::SocketAddr;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use tracing::info;

use super::credentials::{self, Principal, Verdict};
use super::reply::{self, Reply};
use super::request::{Call, ReadError};
use super::{caches, container, metrics, xsite};
use crate::authz::{self, Permission, Subject};
use crate::state::State;

/// Answers one HTTP request.
pub async fn handle(
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
    state: &State,
) -> Reply {
    let max_body = state.limits.max_value_len;
    let call = match Call::read(req, max_body).await {
        Ok(c) => c,
        Err(e @ ReadError::TooLarge(_)) => {
            return reply::error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string())
        }
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let principal = match authenticate(&call, peer, tls, state) {
        Ok(p) => p,
        Err(challenge) => return *challenge,
    };
    if let (Some(p), Some(needed)) = (&principal, permission(&call)) {
        if let Some(refusal) = authorize(p, needed, &call, peer, state) {
            return refusal;
        }
    }
    route(&call, state)
}

/// The permission a request needs, as Infinispan's REST resources declare them; `None` for
/// what any authenticated user may read (container info, health, server version).
fn permission(call: &Call) -> Option<Permission> {
    let read = is_read(&call.method);
    Some(match call.path().as_slice() {
        ["rest", "v2", "caches"] => return None,
        ["rest", "v2", "caches", _, "x-site", ..]
        | ["rest", "v2", "container", "x-site", ..]
        | ["rest", "v2", "cache-managers", _, "x-site", ..] => Permission::Admin,
        ["rest", "v2", "caches", _] => match (read, call.action()) {
            (true, Some("stats")) => Permission::Monitor,
            (true, Some("size")) => Permission::BulkRead,
            (true, _) => return None,
            (false, Some("clear")) => Permission::BulkWrite,
            (false, _) => Permission::Create,
        },
        ["rest", "v2", "caches", _, _] if read => Permission::Read,
        ["rest", "v2", "caches", _, _] => Permission::Write,
        ["metrics", ..] => Permission::Monitor,
        _ => return None,
    })
}

/// The 403 to send when the user's roles (limited to the cache's admitted roles, if it names
/// a cache) lack `needed`.
fn authorize(
    p: &Principal,
    needed: Permission,
    call: &Call,
    peer: SocketAddr,
    state: &State,
) -> Option<Reply> {
    let authorization = &state.config.authorization;
    if !authorization.is_enabled() {
        return None;
    }
    let grants = authorization.grants(&p.user, &p.roles);
    let cache = match call.path().as_slice() {
        ["rest", "v2", "caches", cache, ..] => Some(cache.to_string()),
        _ => None,
    };
    let admitted = cache
        .as_deref()
        .and_then(|c| state.config.caches.get(c))
        .and_then(|c| c.roles.as_deref());
    if authz::effective(&grants, admitted).allows(needed) {
        return None;
    }
    info!(%peer, user = %p.user, target = %call.raw_target, permission = needed.name(),
        "HTTP request refused: the user's roles lack the permission");
    let subject = Subject {
        user: &p.user,
        roles: &grants,
        peer,
    };
    Some(reply::error(
        StatusCode::FORBIDDEN,
        &authz::unauthorized(&subject, needed).message,
    ))
}

/// What a path needs: most need a user when authentication is on; probes may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Open,
    Health,
    Metrics,
    User,
}

fn access(path: &[&str]) -> Access {
    match path {
        // Infinispan serves the status probes anonymously (ContainerResource).
        ["rest", "v2", "container", "health", "status"]
        | ["rest", "v2", "cache-managers", _, "health", "status"] => Access::Open,
        ["rest", "v2", "container", "health"] | ["rest", "v2", "cache-managers", _, "health"] => {
            Access::Health
        }
        ["metrics", ..] => Access::Metrics,
        _ => Access::User,
    }
}

/// `Ok(None)` when the request may go on without a user; `Err` is the 401 to send.
fn authenticate(
    call: &Call,
    peer: SocketAddr,
    tls: bool,
    state: &State,
) -> Result<Option<Principal>, Box<Reply>> {
    let Some(mechanisms) = &state.auth else {
        return Ok(None);
    };
    let open = match access(&call.path()) {
        Access::Open => true,
        Access::Health => state.config.http.anonymous_health,
        Access::Metrics => state.config.http.anonymous_metrics,
        Access::User => false,
    };
    if open && call.header("authorization").is_none() {
        return Ok(None);
    }
    let now = Instant::now();
    let basic_allowed = tls || state.config.security.plain_in_clear;
    let verdict = credentials::verify(
        call.header("authorization"),
        call.method.as_str(),
        &call.raw_target,
        basic_allowed,
        mechanisms.store(),
        &state.http_nonces,
        now,
    );
    match verdict {
        Verdict::Authenticated(p) => Ok(Some(p)),
        Verdict::Challenge { stale, reason } => {
            if call.header("authorization").is_some() {
                info!(%peer, method = %call.method, target = %call.raw_target, "HTTP authentication failed: {reason}");
            }
            let realm = state
                .config
                .security
                .realms
                .first()
                .map(String::as_str)
                .unwrap_or("default");
            let nonce = state.http_nonces.issue(now);
            let mut r = reply::error(StatusCode::UNAUTHORIZED, "authentication required");
            for value in credentials::challenges(realm, &nonce, stale, basic_allowed) {
                r = reply::header(r, "www-authenticate", &value);
            }
            Err(Box::new(r))
        }
    }
}

fn route(call: &Call, state: &State) -> Reply {
    let path = call.path();
    let m = &call.method;
    match path.as_slice() {
        ["rest", "v2", "caches"] if is_read(m) => caches::list(state),
        ["rest", "v2", "caches", cache] => caches::cache(call, cache, state),
        ["rest", "v2", "caches", cache, "x-site", rest @ ..] => {
            xsite::cache(call, cache, rest, state)
        }
        ["rest", "v2", "container", "x-site", "backups", rest @ ..]
        | ["rest", "v2", "cache-managers", _, "x-site", "backups", rest @ ..] => {
            xsite::container(call, rest, state)
        }
        ["rest", "v2", "caches", cache, key] => caches::entry(call, cache, key, state),
        ["rest", "v2", "container"] | ["rest", "v2", "cache-managers", _] if is_read(m) => {
            container::info(state)
        }
        ["rest", "v2", "container", "health"] | ["rest", "v2", "cache-managers", _, "health"]
            if is_read(m) =>
        {
            container::health(state)
        }
        ["rest", "v2", "container", "health", "status"]
        | ["rest", "v2", "cache-managers", _, "health", "status"]
            if is_read(m) =>
        {
            container::health_status(state)
        }
        ["rest", "v2", "server"] if is_read(m) => container::server(),
        ["metrics"] if is_read(m) => metrics::scrape(state),
        ["rest", "v2", ..] | ["metrics"] => reply::error(
            StatusCode::NOT_FOUND,
            &format!("no {m} handler for {}", call.raw_target),
        ),
        _ => reply::error(
            StatusCode::NOT_FOUND,
            &format!(
                "{} is not served here; Ironrod serves /rest/v2/... and /metrics",
                call.raw_target
            ),
        ),
    }
}

fn is_read(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_classified() {
        assert_eq!(
            access(&[
                "rest",
                "v2",
                "cache-managers",
                "default",
                "health",
                "status"
            ]),
            Access::Open
        );
        assert_eq!(
            access(&["rest", "v2", "container", "health"]),
            Access::Health
        );
        assert_eq!(access(&["metrics"]), Access::Metrics);
        assert_eq!(access(&["rest", "v2", "caches"]), Access::User);
    }
}
