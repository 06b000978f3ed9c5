//! Per-write options: expiration and listener suppression.

/// How long an entry may live (lifespan) or stay unread (max-idle), as a write asks for it.
///
/// Hot Rod 2.2+ sends each duration with a unit that may be "default" (use the cache's
/// configuration) or "infinite"; the codec converts the rest to milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiration {
    /// Use the cache's configured default.
    #[default]
    Default,
    /// Never expire on this account.
    Infinite,
    /// Expire after this many milliseconds. As in Infinispan's `ExpiryHelper`, an entry is
    /// expired once `now > start + ms`, so `Millis(0)` expires as soon as the clock moves on.
    Millis(u64),
}

impl Expiration {
    /// The duration in milliseconds, `None` meaning infinite, given the cache's default.
    pub(crate) fn resolve(self, default: Option<u64>) -> Option<u64> {
        match self {
            Self::Default => default,
            Self::Infinite => None,
            Self::Millis(ms) => Some(ms),
        }
    }
}

/// Options of one write (put, replace, remove, clear…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Lifespan, counted from this write. Ignored by removals.
    pub lifespan: Expiration,
    /// Max-idle, counted from the last read or write. Ignored by removals.
    pub max_idle: Expiration,
    /// Hot Rod's SKIP_LISTENER_NOTIFICATION flag. The change is still published on the feed
    /// (the site bridge needs it) with the flag set, so the events layer can drop it.
    pub skip_listener_notification: bool,
}

impl WriteOptions {
    /// Options with the given lifespan and max-idle.
    pub fn expiring(lifespan: Expiration, max_idle: Expiration) -> Self {
        Self {
            lifespan,
            max_idle,
            skip_listener_notification: false,
        }
    }

    /// The same options with the skip-listener flag set.
    pub fn skipping_listeners(mut self) -> Self {
        self.skip_listener_notification = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_uses_the_default_only_when_asked() {
        assert_eq!(Expiration::Default.resolve(Some(5)), Some(5));
        assert_eq!(Expiration::Default.resolve(None), None);
        assert_eq!(Expiration::Infinite.resolve(Some(5)), None);
        assert_eq!(Expiration::Millis(7).resolve(Some(5)), Some(7));
    }

    #[test]
    fn builders() {
        let o = WriteOptions::expiring(Expiration::Millis(1), Expiration::Infinite)
            .skipping_listeners();
        assert_eq!(o.lifespan, Expiration::Millis(1));
        assert_eq!(o.max_idle, Expiration::Infinite);
        assert!(o.skip_listener_notification);
        assert!(!WriteOptions::default().skip_listener_notification);
    }
}
