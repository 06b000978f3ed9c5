//! The routing table: which neighbour link carries traffic for each remote site.
//!
//! As in JGroups RELAY2, every site has one *site master* (with single-node sites, the node
//! itself) and frames name their source and destination site; a site master forwards frames for
//! other sites to the next hop. The table is built from configuration (`via`) and is explicit so
//! that status can show it.

use std::collections::BTreeMap;

use crate::config::{ConfigError, XsiteConfig};

/// One route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    /// The destination site.
    pub site: String,
    /// The neighbour whose link carries the traffic (the destination itself when direct).
    pub next_hop: String,
    /// The site master addressed at the next hop (the node address configured for it).
    pub site_master: String,
}

/// Destination site → route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingTable {
    routes: BTreeMap<String, RouteEntry>,
}

impl RoutingTable {
    /// Builds the table for every remote site of `cfg`.
    pub fn from_config(cfg: &XsiteConfig) -> Result<Self, ConfigError> {
        let mut routes = BTreeMap::new();
        for (site, remote) in &cfg.remote_sites {
            let next_hop = cfg.resolve_next_hop(site)?;
            let master = cfg
                .remote_sites
                .get(&next_hop)
                .map(|r| r.address.clone())
                .unwrap_or_default();
            routes.insert(
                site.clone(),
                RouteEntry {
                    site: site.clone(),
                    next_hop,
                    site_master: if master.is_empty() {
                        remote.address.clone()
                    } else {
                        master
                    },
                },
            );
        }
        Ok(Self { routes })
    }

    /// The neighbour for `site`.
    pub fn next_hop(&self, site: &str) -> Option<&str> {
        self.routes.get(site).map(|r| r.next_hop.as_str())
    }

    /// Whether `site` is a configured remote site.
    pub fn knows(&self, site: &str) -> bool {
        self.routes.contains_key(site)
    }

    /// All routes, in site order.
    pub fn iter(&self) -> impl Iterator<Item = &RouteEntry> {
        self.routes.values()
    }

    /// The neighbours (sites with a direct link).
    pub fn neighbours(&self) -> impl Iterator<Item = &str> {
        self.routes
            .values()
            .filter(|r| r.next_hop == r.site)
            .map(|r| r.site.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RemoteSiteConfig;

    #[test]
    fn via_sites_route_through_their_master() {
        let mut cfg = XsiteConfig {
            site: "A".into(),
            ..XsiteConfig::default()
        };
        cfg.remote_sites.insert(
            "B".into(),
            RemoteSiteConfig {
                address: "b:7900".into(),
                via: None,
            },
        );
        cfg.remote_sites.insert(
            "C".into(),
            RemoteSiteConfig {
                address: String::new(),
                via: Some("B".into()),
            },
        );
        let t = RoutingTable::from_config(&cfg).unwrap();
        assert_eq!(t.next_hop("B"), Some("B"));
        assert_eq!(t.next_hop("C"), Some("B"));
        assert_eq!(t.next_hop("D"), None);
        assert_eq!(t.neighbours().collect::<Vec<_>>(), vec!["B"]);
        assert_eq!(t.iter().nth(1).unwrap().site_master, "b:7900");
    }
}
