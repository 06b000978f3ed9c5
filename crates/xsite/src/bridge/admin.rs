//! Administration: take-offline, bring-online, take-offline thresholds and status.

use std::time::Instant;

use super::*;
use crate::config::{StateTransferMode, TakeOfflineConfig};
use crate::link::LinkPhase;
use crate::offline::StatusChange;
use crate::wire::Message;

impl Bridge {
    /// Takes `site` offline for `cache` or, with `None`, for every cache backing up to it.
    pub fn take_offline(
        &mut self,
        now: Instant,
        cache: Option<&str>,
        site: &str,
    ) -> Result<Vec<(String, StatusChange)>, AdminError> {
        let caches = self.select(cache, site)?;
        let mut out = Vec::new();
        for c in caches {
            let changed = self
                .backups
                .get_mut(&(c.clone(), site.to_string()))
                .map_or(StatusChange::Unchanged, |b| b.status.take_offline());
            if changed == StatusChange::Changed {
                if let Some(b) = self.backups.get_mut(&(c.clone(), site.to_string())) {
                    b.queue.clear();
                }
                self.events.push_back(Event::BackupStatus {
                    cache: c.clone(),
                    site: site.to_string(),
                    online: false,
                    reason: "taken offline by an administrator".into(),
                });
                self.send_to_site(
                    now,
                    site,
                    Message::SiteNotice {
                        cache: c.clone(),
                        online: false,
                    },
                );
            }
            out.push((c, changed));
        }
        Ok(out)
    }

    /// Brings `site` online for `cache` or every cache; AUTO state transfer then pushes.
    pub fn bring_online(
        &mut self,
        now: Instant,
        cache: Option<&str>,
        site: &str,
    ) -> Result<Vec<(String, StatusChange)>, AdminError> {
        let caches = self.select(cache, site)?;
        let mut out = Vec::new();
        for c in caches {
            let key = (c.clone(), site.to_string());
            let (changed, auto) =
                self.backups
                    .get_mut(&key)
                    .map_or((StatusChange::Unchanged, false), |b| {
                        (
                            b.status.bring_online(),
                            b.cfg.state_transfer.mode == StateTransferMode::Auto,
                        )
                    });
            if changed == StatusChange::Changed {
                self.events.push_back(Event::BackupStatus {
                    cache: c.clone(),
                    site: site.to_string(),
                    online: true,
                    reason: "brought online by an administrator".into(),
                });
                self.send_to_site(
                    now,
                    site,
                    Message::SiteNotice {
                        cache: c.clone(),
                        online: true,
                    },
                );
                if auto {
                    // A failure to start is visible in the push status.
                    let _ = self.start_push(now, Some(&c), site);
                }
            }
            out.push((c, changed));
        }
        Ok(out)
    }

    /// The take-offline thresholds of a backup.
    pub fn take_offline_config(&self, cache: &str, site: &str) -> Option<TakeOfflineConfig> {
        self.backups
            .get(&(cache.to_string(), site.to_string()))
            .map(|b| b.status.config())
    }

    /// Changes the take-offline thresholds of a backup (resets its counters).
    pub fn amend_take_offline(
        &mut self,
        cache: &str,
        site: &str,
        cfg: TakeOfflineConfig,
    ) -> Result<(), AdminError> {
        let b = self
            .backups
            .get_mut(&(cache.to_string(), site.to_string()))
            .ok_or_else(|| AdminError::NoSuchBackup {
                cache: cache.to_string(),
                site: site.to_string(),
            })?;
        b.status.amend(cfg);
        Ok(())
    }

    /// This site and every remote site reachable now, sorted: REST `sites_view`.
    pub fn sites_view(&self) -> Vec<String> {
        let mut view: Vec<String> = self
            .routes
            .iter()
            .filter(|r| self.reachable(&r.site))
            .map(|r| r.site.clone())
            .collect();
        view.push(self.cfg.site.clone());
        view.sort();
        view
    }

    /// Everything `site status` shows.
    pub fn status(&self, now: Instant) -> BridgeStatus {
        let routes = self
            .routes
            .iter()
            .map(|r| {
                let link = self.links.get(&r.next_hop);
                RouteStatus {
                    route: r.clone(),
                    link: link.map_or(LinkPhase::Down, |l| l.phase()),
                    version: link.and_then(|l| l.up()).map(|(_, v)| v),
                }
            })
            .collect();
        let backups = self
            .backups
            .iter()
            .map(|((c, s), b)| BackupView {
                cache: c.clone(),
                site: s.clone(),
                strategy: b.cfg.strategy,
                online: !b.status.is_offline(),
                failures: b.status.failures(),
                millis_since_first_failure: b
                    .status
                    .since_first_failure(now)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                queued: b.queue.len() + b.queue.in_flight().map_or(0, |f| f.changes.len()),
                push: b.push.status(),
            })
            .collect();
        BridgeStatus {
            site: self.cfg.site.clone(),
            routes,
            backups,
        }
    }
}
