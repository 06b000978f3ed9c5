//! `/rest/v2/container` (and its older alias `/rest/v2/cache-managers/{name}`): what the server
//! is, and its health, with Infinispan's JSON field names, which probes and the
//! keycloak-benchmark scripts read (`cluster_health.health_status`, `cache_health[].status`,
//! `local_site`, `sites_view`).

use serde_json::{json, Value};

use super::reply::{self, Reply};
use crate::state::State;

/// The cluster name Infinispan reports by default.
const CLUSTER_NAME: &str = "ironrod";

/// `GET /rest/v2/container`.
pub fn info(state: &State) -> Reply {
    let mut names = state.caches.names();
    names.sort();
    let node = node_name();
    let address = state.config.bind.to_string();
    let defined: Vec<Value> = names
        .iter()
        .map(|n| json!({ "name": n, "started": true }))
        .collect();
    // Keycloak's site health check reads a null local site as "cross-site disabled".
    let (local_site, sites_view) = match &state.xsite {
        Some(xs) => (
            Value::from(xs.site()),
            Value::from(xs.with_bridge(|b, _| b.sites_view())),
        ),
        None => (Value::Null, json!([])),
    };
    reply::json(&json!({
        "version": version(),
        "name": "default",
        "coordinator": true,
        "cache_configuration_names": names,
        "cluster_name": CLUSTER_NAME,
        "physical_addresses": format!("[{address}]"),
        "coordinator_address": node,
        "cache_manager_status": "RUNNING",
        "created_cache_count": names.len().to_string(),
        "running_cache_count": names.len().to_string(),
        "node_address": node,
        "cluster_members": [node],
        "cluster_members_physical_addresses": [address],
        "cluster_size": 1,
        "defined_caches": defined,
        "local_site": local_site,
        "relay_node": state.xsite.is_some(),
        "relay_nodes_address": [],
        "sites_view": sites_view,
        "rebalancing_enabled": true,
    }))
}

/// `GET /rest/v2/container/health`: one node, every cache healthy once started (the engine
/// has no rebalancing or degraded states).
pub fn health(state: &State) -> Reply {
    let mut names = state.caches.names();
    names.sort();
    let caches: Vec<Value> = names
        .iter()
        .map(|n| json!({ "status": "HEALTHY", "cache_name": n }))
        .collect();
    reply::json(&json!({
        "cluster_health": {
            "cluster_name": CLUSTER_NAME,
            "health_status": "HEALTHY",
            "number_of_nodes": 1,
            "node_names": [node_name()],
        },
        "cache_health": caches,
    }))
}

/// `GET /rest/v2/container/health/status`: the bare word, as Infinispan answers.
pub fn health_status(_state: &State) -> Reply {
    reply::text("HEALTHY")
}

/// `GET /rest/v2/server`.
pub fn server() -> Reply {
    reply::json(&json!({ "version": version() }))
}

fn version() -> String {
    format!("Ironrod {} (Hot Rod 2.0-4.1)", env!("CARGO_PKG_VERSION"))
}

/// This node's name: the host name, as Infinispan's default node name starts with it.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "ironrod".to_string())
}
