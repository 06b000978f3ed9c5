//! `/rest/v2/caches`: cache names, per-cache actions (config, stats, size, clear), creating and
//! removing caches, and entries by key.
//!
//! Keys in the path are stored as their UTF-8 bytes and values as the request body, whatever
//! the cache's media type: Ironrod never transcodes (compatibility C60). Status codes follow
//! Infinispan's `BaseCacheResource`: 404 for a missing entry, 409 when POST finds the key
//! present, 204 for successful writes.

use std::time::{SystemTime, UNIX_EPOCH};

use hyper::{Method, StatusCode};
use ironrod_engine::{Cache, CacheConfig, EngineError, Expiration, Versioned, WriteOptions};
use serde_json::{json, Value};

use super::reply::{self, Reply};
use super::request::Call;
use crate::state::State;

/// `GET /rest/v2/caches`: the names, as a JSON array.
pub fn list(state: &State) -> Reply {
    let mut names = state.caches.names();
    names.sort();
    reply::json(&names)
}

/// `/rest/v2/caches/{cache}` with or without an action.
pub fn cache(call: &Call, name: &str, state: &State) -> Reply {
    let m = &call.method;
    if *m == Method::POST && call.action().is_none() {
        return create(call, name, state);
    }
    let cache = match state.caches.cache(name) {
        Ok(c) => c,
        Err(_) => return not_found(name),
    };
    match (m.clone(), call.action()) {
        (Method::GET, Some("config")) => reply::json(&config_json(&cache)),
        (Method::GET, Some("stats")) => reply::json(&stats_json(&cache)),
        (Method::GET, Some("size")) => reply::json(&cache.size()),
        (Method::POST, Some("clear")) => match cache.clear(&WriteOptions::default()) {
            Ok(_) => reply::empty(StatusCode::NO_CONTENT),
            Err(e) => engine_error(&e),
        },
        (Method::GET, None) => reply::json(&json!({
            "name": cache.name(),
            "stats": stats_json(&cache),
            "size": cache.size(),
            "configuration": config_json(&cache),
            "bounded": cache.config().max_entries.is_some(),
            "indexed": false,
            "persistent": false,
            "transactional": false,
            "secured": state.auth.is_some(),
            "has_remote_backup": state
                .xsite
                .as_ref()
                .is_some_and(|x| x.bridge.lock().replicates(name)),
        })),
        (Method::HEAD, None) => reply::empty(StatusCode::OK),
        (Method::DELETE, None) => match state.caches.remove(name) {
            Ok(_) => reply::empty(StatusCode::OK),
            Err(e) => engine_error(&e),
        },
        (m, Some(a)) => reply::error(
            StatusCode::BAD_REQUEST,
            &format!("action '{a}' is not supported with {m} on a cache"),
        ),
        (m, None) => reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{m} is not supported on a cache"),
        ),
    }
}

/// `/rest/v2/caches/{cache}/{key}`.
pub fn entry(call: &Call, name: &str, key: &str, state: &State) -> Reply {
    let cache = match state.caches.cache(name) {
        Ok(c) => c,
        Err(_) => return not_found(name),
    };
    let key = key.as_bytes();
    match call.method {
        Method::GET | Method::HEAD => match cache.get_with_metadata(key) {
            Some(v) => entry_reply(&cache, &v, call.method == Method::GET),
            None => reply::empty(StatusCode::NOT_FOUND),
        },
        Method::PUT | Method::POST => {
            let options = match expiration(call) {
                Ok(o) => o,
                Err(why) => return reply::error(StatusCode::BAD_REQUEST, &why),
            };
            let outcome = if call.method == Method::POST {
                match cache.put_if_absent(key, &call.body, &options) {
                    Ok(ironrod_engine::PutIfAbsent::Stored) => Ok(()),
                    Ok(ironrod_engine::PutIfAbsent::Existing(_)) => {
                        return reply::error(StatusCode::CONFLICT, "An entry already exists")
                    }
                    Err(e) => Err(e),
                }
            } else {
                cache.set(key, &call.body, &options)
            };
            match outcome {
                Ok(()) => reply::header(
                    reply::empty(StatusCode::NO_CONTENT),
                    "etag",
                    &etag(&call.body),
                ),
                Err(e) => engine_error(&e),
            }
        }
        Method::DELETE => match cache.remove(key, &WriteOptions::default()) {
            Ok(Some(_)) => reply::empty(StatusCode::NO_CONTENT),
            Ok(None) => reply::empty(StatusCode::NOT_FOUND),
            Err(e) => engine_error(&e),
        },
        ref m => reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{m} is not supported on an entry"),
        ),
    }
}

/// `POST /rest/v2/caches/{cache}`: creates a cache with the default settings, taking the
/// media type from an Infinispan JSON configuration body if it names one
/// (`{"local-cache": {"encoding": {"media-type": "..."}}}` or any cache kind).
fn create(call: &Call, name: &str, state: &State) -> Reply {
    let mut config = CacheConfig::default();
    if !call.body.is_empty() {
        let parsed: Value = match serde_json::from_slice(&call.body) {
            Ok(v) => v,
            Err(e) => {
                return reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("the cache configuration is not JSON: {e}"),
                )
            }
        };
        if let Some(media) = media_type_in(&parsed) {
            config.media_type = media;
        }
    }
    match state.caches.create(name, config) {
        Ok(_) => reply::empty(StatusCode::OK),
        Err(e) => engine_error(&e),
    }
}

fn media_type_in(config: &Value) -> Option<String> {
    let kind = config.as_object()?.values().next()?;
    let encoding = kind.get("encoding")?;
    encoding
        .get("media-type")
        .or_else(|| encoding.get("value").and_then(|v| v.get("media-type")))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The `timeToLiveSeconds` and `maxIdleTimeSeconds` headers: absent means the cache's
/// default, a negative number means never, as in Infinispan's `CacheOperationsHelper`.
fn expiration(call: &Call) -> Result<WriteOptions, String> {
    let read = |name: &str| -> Result<Expiration, String> {
        match call.header(name) {
            None => Ok(Expiration::Default),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(s) if s < 0 => Ok(Expiration::Infinite),
                Ok(0) => Ok(Expiration::Default),
                Ok(s) => Ok(Expiration::Millis((s as u64).saturating_mul(1000))),
                Err(_) => Err(format!("header {name} is not a number of seconds: {v}")),
            },
        }
    };
    Ok(WriteOptions::expiring(
        read("timeToLiveSeconds")?,
        read("maxIdleTimeSeconds")?,
    ))
}

fn entry_reply(cache: &Cache, v: &Versioned, with_body: bool) -> Reply {
    let body = if with_body {
        v.value.clone()
    } else {
        bytes::Bytes::new()
    };
    let mut r = reply::with_body(StatusCode::OK, cache.media_type(), body);
    r = reply::header(r, "etag", &etag(&v.value));
    r = reply::header(r, "cache-control", "no-cache");
    let md = &v.metadata;
    let secs = |ms: Option<u64>| ms.map_or(-1, |m| (m / 1000) as i64).to_string();
    r = reply::header(r, "timeToLiveSeconds", &secs(md.lifespan));
    r = reply::header(r, "maxIdleTimeSeconds", &secs(md.max_idle));
    if let Some(created) = md.created {
        r = reply::header(r, "created", &created.to_string());
        if let Some(lifespan) = md.lifespan {
            r = reply::header(r, "expires", &http_date(created.saturating_add(lifespan)));
        }
    }
    if let Some(used) = md.last_used {
        r = reply::header(r, "lastUsed", &used.to_string());
    }
    r
}

/// A strong validator from the value bytes (Infinispan hashes the value likewise).
fn etag(value: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// RFC 7231 IMF-fixdate for epoch milliseconds.
fn http_date(epoch_ms: u64) -> String {
    let secs = epoch_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        .get((days % 7) as usize)
        .copied()
        .unwrap_or("Thu");
    let (y, m, d) = civil_from_days(days as i64);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .get((m - 1) as usize)
    .copied()
    .unwrap_or("Jan");
    format!("{weekday}, {d:02} {month} {y} {h:02}:{mi:02}:{s:02} GMT")
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's civil calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The cache's configuration in Infinispan's JSON form (a local cache).
pub fn config_json(cache: &Cache) -> Value {
    let c = cache.config();
    let mut expiration = serde_json::Map::new();
    if let Some(l) = c.lifespan {
        expiration.insert("lifespan".into(), json!(l));
    }
    if let Some(m) = c.max_idle {
        expiration.insert("max-idle".into(), json!(m));
    }
    expiration.insert(
        "interval".into(),
        json!(c.reaper_interval.as_millis() as u64),
    );
    let mut body = json!({
        "encoding": { "media-type": c.media_type },
        "expiration": expiration,
        "segments": c.segments,
    });
    if let (Some(obj), Some(max)) = (body.as_object_mut(), c.max_entries) {
        obj.insert(
            "memory".into(),
            json!({ "max-count": max, "when-full": "EXCEPTION" }),
        );
    }
    json!({ "local-cache": body })
}

/// Statistics with the field names of Infinispan's `?action=stats`.
pub fn stats_json(cache: &Cache) -> Value {
    let s = cache.stats();
    json!({
        "time_since_start": s.time_since_start,
        "time_since_reset": s.time_since_start,
        "current_number_of_entries": s.current_entries,
        "current_number_of_entries_in_memory": s.current_entries,
        "approximate_entries": s.current_entries,
        "approximate_entries_in_memory": s.current_entries,
        "stores": s.stores,
        "retrievals": s.retrievals,
        "hits": s.hits,
        "misses": s.misses,
        "remove_hits": s.remove_hits,
        "remove_misses": s.remove_misses,
        "evictions": 0,
        "expirations": s.expirations,
        "lock_conflicts": s.lock_conflicts,
        "hit_ratio": if s.retrievals == 0 { 0.0 } else { s.hits as f64 / s.retrievals as f64 },
        "read_write_ratio": if s.stores == 0 { 0.0 } else { s.retrievals as f64 / s.stores as f64 },
        "required_minimum_number_of_nodes": 1,
    })
}

fn not_found(name: &str) -> Reply {
    reply::error(
        StatusCode::NOT_FOUND,
        &format!("ISPN012010: Cache with name '{name}' not found amongst the configured caches"),
    )
}

fn engine_error(e: &EngineError) -> Reply {
    let status = match e {
        EngineError::CacheNotFound(_) => StatusCode::NOT_FOUND,
        EngineError::CacheExists(_) => StatusCode::CONFLICT,
        EngineError::EntryBoundReached { .. } => StatusCode::INSUFFICIENT_STORAGE,
        // A zero-timeout lock found held: the caller retries, as Keycloak does over Hot Rod.
        EngineError::Lock(_) | EngineError::WriteSkew { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    reply::error(status, &e.to_string())
}

/// Milliseconds since the epoch, for the container's answers.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            http_date(1_709_210_096_000),
            "Thu, 29 Feb 2024 12:34:56 GMT"
        );
    }

    #[test]
    fn media_type_comes_from_any_cache_kind() {
        let v: Value = serde_json::from_str(
            r#"{"distributed-cache":{"mode":"SYNC","encoding":{"media-type":"application/x-protostream"}}}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            media_type_in(&v).as_deref(),
            Some("application/x-protostream")
        );
        let v: Value = serde_json::from_str(r#"{"local-cache":{}}"#).unwrap_or_default();
        assert_eq!(media_type_in(&v), None);
    }

    #[test]
    fn etags_differ_by_value() {
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a"), etag(b"a"));
    }
}
