//! Online/offline status of one backup (cache, site) and automatic take-offline.
//!
//! Follows Infinispan's `OfflineStatus` and `DefaultTakeOfflineManager` (core, read at
//! infinispan/infinispan `core/src/main/java/org/infinispan/xsite/`):
//! - only *communication* failures count (timeout, unreachable site, link down); any answer from
//!   the site, even a refusal such as a lock timeout there, resets the count while online;
//! - the time is measured from the first of the consecutive failures;
//! - the thresholds are checked when the backup is about to be used (on a write), so an idle cache
//!   never goes offline by itself;
//! - with both `after_failures` and `min_wait` set both must hold; with one of them 0 the other
//!   alone decides; both 0 disables automatic take-offline.
//! - manual take-offline and bring-online always work; bringing online resets the counters.

use std::time::{Duration, Instant};

use crate::config::TakeOfflineConfig;

/// Status of one backup.
#[derive(Clone, Debug)]
pub struct OfflineStatus {
    cfg: TakeOfflineConfig,
    offline: bool,
    failures: u32,
    first_failure: Option<Instant>,
}

/// The result of a manual status change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusChange {
    /// The status changed.
    Changed,
    /// It already had that status.
    Unchanged,
}

impl OfflineStatus {
    /// An online backup with these thresholds.
    pub fn new(cfg: TakeOfflineConfig) -> Self {
        Self {
            cfg,
            offline: false,
            failures: 0,
            first_failure: None,
        }
    }

    /// The thresholds.
    pub fn config(&self) -> TakeOfflineConfig {
        self.cfg
    }

    /// Changes the thresholds (REST `take-offline-config` PUT) and resets the counters, as
    /// Infinispan's `amend` does.
    pub fn amend(&mut self, cfg: TakeOfflineConfig) {
        self.cfg = cfg;
        self.failures = 0;
        self.first_failure = None;
    }

    /// Consecutive communication failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Time since the first of the consecutive failures.
    pub fn since_first_failure(&self, now: Instant) -> Option<Duration> {
        self.first_failure.map(|t| now.saturating_duration_since(t))
    }

    /// Whether the backup is offline now; takes it offline when the thresholds hold. Returns the
    /// status and whether this call changed it.
    pub fn check(&mut self, now: Instant) -> (bool, bool) {
        if self.offline {
            return (true, false);
        }
        let Some(first) = self.first_failure else {
            return (false, false);
        };
        if !self.cfg.enabled() {
            return (false, false);
        }
        let waited = now.saturating_duration_since(first);
        let time_ok =
            self.cfg.min_wait_ms == 0 || waited >= Duration::from_millis(self.cfg.min_wait_ms);
        let count_ok = self.cfg.after_failures == 0 || self.failures >= self.cfg.after_failures;
        if time_ok && count_ok {
            self.offline = true;
            return (true, true);
        }
        (false, false)
    }

    /// Whether the backup is offline, without evaluating the thresholds.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// A request to the site failed to get any answer; `sent_at` is when it was sent.
    pub fn communication_failure(&mut self, sent_at: Instant) {
        if !self.cfg.enabled() || self.offline {
            return;
        }
        if self.first_failure.is_none() {
            self.first_failure = Some(sent_at);
        }
        self.failures = self.failures.saturating_add(1);
    }

    /// The site answered (even with a refusal).
    pub fn answered(&mut self) {
        if !self.offline {
            self.failures = 0;
            self.first_failure = None;
        }
    }

    /// Manual take-offline.
    pub fn take_offline(&mut self) -> StatusChange {
        if self.offline {
            return StatusChange::Unchanged;
        }
        self.offline = true;
        StatusChange::Changed
    }

    /// Manual bring-online; resets the counters.
    pub fn bring_online(&mut self) -> StatusChange {
        let was = self.offline;
        self.offline = false;
        self.failures = 0;
        self.first_failure = None;
        if was {
            StatusChange::Changed
        } else {
            StatusChange::Unchanged
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status(after: u32, wait_ms: u64) -> OfflineStatus {
        OfflineStatus::new(TakeOfflineConfig {
            after_failures: after,
            min_wait_ms: wait_ms,
        })
    }

    #[test]
    fn both_thresholds_must_hold_when_both_are_set() {
        let t0 = Instant::now();
        let mut s = status(3, 1000);
        for i in 0..5 {
            s.communication_failure(t0 + Duration::from_millis(i));
        }
        assert_eq!(s.check(t0 + Duration::from_millis(999)), (false, false));
        assert_eq!(s.check(t0 + Duration::from_millis(1000)), (true, true));
        assert_eq!(s.check(t0 + Duration::from_millis(1001)), (true, false));

        let mut s = status(3, 1000);
        s.communication_failure(t0);
        s.communication_failure(t0);
        assert_eq!(s.check(t0 + Duration::from_secs(60)), (false, false));
    }

    #[test]
    fn either_alone_decides_when_the_other_is_zero() {
        let t0 = Instant::now();
        let mut s = status(2, 0);
        s.communication_failure(t0);
        assert!(!s.check(t0).0);
        s.communication_failure(t0);
        assert!(s.check(t0).0);

        let mut s = status(0, 500);
        s.communication_failure(t0);
        assert!(!s.check(t0 + Duration::from_millis(499)).0);
        assert!(s.check(t0 + Duration::from_millis(500)).0);
    }

    #[test]
    fn disabled_never_goes_offline_and_answers_reset() {
        let t0 = Instant::now();
        let mut s = status(0, 0);
        for _ in 0..100 {
            s.communication_failure(t0);
        }
        assert!(!s.check(t0 + Duration::from_secs(3600)).0);

        let mut s = status(2, 0);
        s.communication_failure(t0);
        s.answered();
        s.communication_failure(t0);
        assert!(!s.check(t0).0, "failures must be consecutive");
    }

    #[test]
    fn manual_changes_report_whether_they_changed_anything() {
        let mut s = status(0, 0);
        assert_eq!(s.take_offline(), StatusChange::Changed);
        assert_eq!(s.take_offline(), StatusChange::Unchanged);
        assert!(s.is_offline());
        assert_eq!(s.bring_online(), StatusChange::Changed);
        assert_eq!(s.bring_online(), StatusChange::Unchanged);
    }

    proptest! {
        /// Offline exactly when the Infinispan rule says so, for any thresholds and failure times.
        #[test]
        fn matches_the_reference_rule(after in 0u32..5, wait in 0u64..2000, n in 0u32..8, gap in 0u64..500, at in 0u64..5000) {
            let t0 = Instant::now();
            let mut s = status(after, wait);
            for i in 0..n {
                s.communication_failure(t0 + Duration::from_millis(u64::from(i) * gap));
            }
            let now = t0 + Duration::from_millis(at.max(u64::from(n) * gap));
            let waited = now.duration_since(t0).as_millis() as u64;
            let expected = n > 0 && (after > 0 || wait > 0)
                && (after == 0 || n >= after)
                && (wait == 0 || waited >= wait);
            prop_assert_eq!(s.check(now).0, expected);
        }
    }
}
