//! `/rest/v2/caches/{cache}/x-site/...` and `/rest/v2/container/x-site/...`: cross-site
//! administration with the paths, actions, status codes and JSON shapes of Infinispan's
//! `XSiteResource` (one node per site here, so a status is never `mixed` across nodes).

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use ironrod_xsite::config::TakeOfflineConfig;
use ironrod_xsite::{AdminError, BackupView, PushStatus};
use serde_json::{json, Map, Value};

use super::container::node_name;
use super::reply::{self, Reply};
use super::request::Call;
use crate::state::State;
use crate::xsite::Xsite;

fn bridge(state: &State) -> Option<&Xsite> {
    state.xsite.as_deref()
}

fn not_configured() -> Reply {
    reply::error(
        StatusCode::NOT_FOUND,
        "cross-site replication is not configured ([xsite] site is empty)",
    )
}

fn backups_of(xs: &Xsite, cache: &str) -> Vec<BackupView> {
    xs.with_bridge(|b, now| b.status(now))
        .backups
        .into_iter()
        .filter(|v| v.cache == cache)
        .collect()
}

fn online_word(online: bool) -> &'static str {
    if online {
        "online"
    } else {
        "offline"
    }
}

fn admin_error(e: &AdminError) -> Reply {
    let status = match e {
        AdminError::NoSuchBackup { .. } | AdminError::NoSuchSite(_) => StatusCode::NOT_FOUND,
        AdminError::PushRunning { .. } => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    reply::error(status, &e.to_string())
}

/// `/rest/v2/caches/{cache}/x-site/{rest..}`.
pub fn cache(call: &Call, cache: &str, rest: &[&str], state: &State) -> Reply {
    let Some(xs) = bridge(state) else {
        return not_configured();
    };
    if state.caches.cache(cache).is_err() {
        return reply::error(StatusCode::NOT_FOUND, &format!("cache '{cache}' not found"));
    }
    let backups = backups_of(xs, cache);
    let m = &call.method;
    let read = *m == Method::GET || *m == Method::HEAD;
    match (rest, call.action()) {
        (["local"], Some("clear-push-state-status")) if *m == Method::POST => {
            xs.with_bridge(|b, _| b.clear_push_status(cache));
            reply::empty(StatusCode::OK)
        }
        _ if backups.is_empty() => reply::error(
            StatusCode::NOT_FOUND,
            &format!("Cache '{cache}' does not have backup sites."),
        ),
        (["backups"], Some("push-state-status")) if read => push_status(xs, cache, None),
        (["backups"], _) if read => {
            let map: Map<String, Value> = backups
                .iter()
                .map(|v| (v.site.clone(), json!({ "status": online_word(v.online) })))
                .collect();
            reply::json(&map)
        }
        (["backups", site, ..], _) if !backups.iter().any(|v| v.site == *site) => reply::error(
            StatusCode::NOT_FOUND,
            &format!("Cache '{cache}' does not backup to site '{site}'"),
        ),
        (["backups", site], None) if read => {
            let online = backups.iter().any(|v| v.site == *site && v.online);
            reply::json(&json!({ node_name(): online_word(online) }))
        }
        (["backups", site], Some(action)) if *m == Method::POST => {
            let site = *site;
            let r = xs.with_bridge(|b, now| match action {
                "take-offline" => Some(b.take_offline(now, Some(cache), site).map(|_| ())),
                "bring-online" => Some(b.bring_online(now, Some(cache), site).map(|_| ())),
                "start-push-state" => Some(b.start_push(now, Some(cache), site).map(|_| ())),
                "cancel-push-state" => Some(b.cancel_push(now, Some(cache), site).map(|_| ())),
                _ => None,
            });
            match r {
                Some(Ok(())) => reply::empty(StatusCode::OK),
                Some(Err(e)) => admin_error(&e),
                None => reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown x-site action '{action}'"),
                ),
            }
        }
        (["backups", site, "push-state-status"], _) if read => push_status(xs, cache, Some(site)),
        (["backups", site, "take-offline-config"], _) if read => {
            let cfg = xs.with_bridge(|b, _| b.take_offline_config(cache, site));
            let cfg = cfg.unwrap_or_default();
            reply::json(&json!({
                "after_failures": cfg.after_failures,
                "min_wait": cfg.min_wait_ms,
            }))
        }
        (["backups", site, "take-offline-config"], _) if *m == Method::PUT => {
            take_offline_update(call, xs, cache, site)
        }
        _ => reply::error(
            StatusCode::NOT_FOUND,
            &format!("no {m} handler for {}", call.raw_target),
        ),
    }
}

fn push_status(xs: &Xsite, cache: &str, only: Option<&str>) -> Reply {
    let list = xs.with_bridge(|b, _| b.push_status(cache));
    let map: Map<String, Value> = list
        .into_iter()
        .filter(|(s, _)| only.is_none_or(|o| o == s))
        .filter_map(|(s, st)| st.map(|st| (s, Value::from(push_word(&st)))))
        .collect();
    reply::json(&map)
}

fn push_word(s: &PushStatus) -> &'static str {
    s.as_str()
}

fn take_offline_update(call: &Call, xs: &Xsite, cache: &str, site: &str) -> Reply {
    let body: Value = match serde_json::from_slice(&call.body) {
        Ok(v) => v,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    let (Some(after), Some(wait)) = (
        body.get("after_failures").and_then(Value::as_u64),
        body.get("min_wait").and_then(Value::as_u64),
    ) else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "both 'after_failures' and 'min_wait' are required",
        );
    };
    let cfg = TakeOfflineConfig {
        after_failures: u32::try_from(after).unwrap_or(u32::MAX),
        min_wait_ms: wait,
    };
    let r = xs.with_bridge(|b, _| {
        if b.take_offline_config(cache, site) == Some(cfg) {
            return Ok(false);
        }
        b.amend_take_offline(cache, site, cfg).map(|()| true)
    });
    match r {
        Ok(true) => reply::empty(StatusCode::NO_CONTENT),
        Ok(false) => reply::empty(StatusCode::NOT_MODIFIED),
        Err(e) => admin_error(&e),
    }
}

/// `/rest/v2/container/x-site/backups[/{site}]`.
pub fn container(call: &Call, rest: &[&str], state: &State) -> Reply {
    let Some(xs) = bridge(state) else {
        return not_configured();
    };
    let m = &call.method;
    let read = *m == Method::GET || *m == Method::HEAD;
    let backups = xs.with_bridge(|b, now| b.status(now)).backups;
    match (rest, call.action()) {
        ([], None) if read => {
            let mut by_site: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
            for v in &backups {
                let e = by_site.entry(v.site.clone()).or_default();
                if v.online {
                    e.0.push(v.cache.clone());
                } else {
                    e.1.push(v.cache.clone());
                }
            }
            let map: Map<String, Value> = by_site
                .into_iter()
                .map(|(site, (on, off))| {
                    let v = match (on.is_empty(), off.is_empty()) {
                        (_, true) => json!({ "status": "online" }),
                        (true, false) => json!({ "status": "offline" }),
                        _ => json!({ "status": "mixed", "online": on, "offline": off }),
                    };
                    (site, v)
                })
                .collect();
            reply::json(&map)
        }
        ([site], None) if read => {
            let map: Map<String, Value> = backups
                .iter()
                .filter(|v| v.site == *site)
                .map(|v| (v.cache.clone(), Value::from(online_word(v.online))))
                .collect();
            if map.is_empty() {
                return reply::error(StatusCode::NOT_FOUND, &format!("unknown site '{site}'"));
            }
            reply::json(&map)
        }
        ([site], Some(action)) if *m == Method::POST => {
            let site = *site;
            let caches: Vec<String> = backups
                .iter()
                .filter(|v| v.site == site)
                .map(|v| v.cache.clone())
                .collect();
            if caches.is_empty() {
                return reply::error(StatusCode::NOT_FOUND, &format!("unknown site '{site}'"));
            }
            if !matches!(
                action,
                "take-offline" | "bring-online" | "start-push-state" | "cancel-push-state"
            ) {
                return reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown x-site action '{action}'"),
                );
            }
            let map: Map<String, Value> = xs.with_bridge(|b, now| {
                caches
                    .iter()
                    .map(|c| {
                        let r = match action {
                            "take-offline" => b.take_offline(now, Some(c), site).map(|_| ()),
                            "bring-online" => b.bring_online(now, Some(c), site).map(|_| ()),
                            "start-push-state" => b.start_push(now, Some(c), site).map(|_| ()),
                            _ => b.cancel_push(now, Some(c), site).map(|_| ()),
                        };
                        let word = match r {
                            Ok(()) => "ok".to_string(),
                            Err(e) => e.to_string(),
                        };
                        (c.clone(), Value::from(word))
                    })
                    .collect()
            });
            reply::json(&map)
        }
        _ => reply::error(
            StatusCode::NOT_FOUND,
            &format!("no {m} handler for {}", call.raw_target),
        ),
    }
}
