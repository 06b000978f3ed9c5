//! The change feed: every committed change, in version order per key.
//!
//! The events layer (client listeners) and the site bridge consume it. A change is delivered
//! synchronously while the writer still holds the key's shard lock, so two changes of one key
//! reach each subscriber in the order of their versions without any buffering here. The price is
//! that [`Subscriber::on_change`] runs on the writer's thread inside the lock: it must be quick
//! (copy what it needs into its own queue) and must not call back into the same cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::metadata::Metadata;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// The key had no (live) entry and now has one.
    Created,
    /// The key's entry was replaced by a new value.
    Modified,
    /// The entry was removed by a remove or a clear.
    Removed,
    /// The entry expired and was removed, on access or by the reaper.
    Expired,
}

/// One committed change, borrowed from the store for the duration of the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change<'a> {
    /// What happened.
    pub kind: ChangeKind,
    /// The key.
    pub key: &'a [u8],
    /// For `Created`/`Modified` the new value; for `Removed`/`Expired` the value the entry had
    /// (the bridge and Infinispan-style removed events may want it).
    pub value: &'a [u8],
    /// The change's version. For `Created`/`Modified` it is the version the new entry has (the one
    /// GET_WITH_METADATA returns, which Keycloak compares with the event's). For
    /// `Removed`/`Expired` it is a fresh version taken for the removal, so that a key's changes
    /// are strictly increasing on the feed; the removed entry's own version is in `metadata`.
    pub version: u64,
    /// For `Created`/`Modified` the new entry's metadata (`metadata.version == version`); for
    /// `Removed`/`Expired` the metadata of the entry that went away.
    pub metadata: Metadata,
    /// Hot Rod's SKIP_LISTENER_NOTIFICATION: the events layer should not notify client listeners.
    /// Always false for `Expired`.
    pub skip_listener_notification: bool,
}

/// Something that wants every change of a cache.
pub trait Subscriber: Send + Sync {
    /// Called once per committed change, under the key's shard lock (see the module doc).
    fn on_change(&self, change: &Change<'_>);
}

/// Identifies a subscription, to remove it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

/// The subscribers of one cache.
#[derive(Default)]
pub(crate) struct ChangeFeed {
    subscribers: RwLock<Vec<(SubscriptionId, Arc<dyn Subscriber>)>>,
    next_id: AtomicU64,
}

impl ChangeFeed {
    pub(crate) fn subscribe(&self, subscriber: Arc<dyn Subscriber>) -> SubscriptionId {
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.subscribers.write().push((id, subscriber));
        id
    }

    /// Removes a subscription; false if it was not there.
    pub(crate) fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let mut subscribers = self.subscribers.write();
        let before = subscribers.len();
        subscribers.retain(|(sid, _)| *sid != id);
        subscribers.len() != before
    }

    /// Delivers `change` to every subscriber. The caller holds the key's shard lock.
    pub(crate) fn publish(&self, change: &Change<'_>) {
        for (_, subscriber) in self.subscribers.read().iter() {
            subscriber.on_change(change);
        }
    }
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("subscribers", &self.subscribers.read().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(ChangeKind, Vec<u8>, u64)>>);

    impl Subscriber for Recorder {
        fn on_change(&self, change: &Change<'_>) {
            self.0
                .lock()
                .push((change.kind, change.key.to_vec(), change.version));
        }
    }

    fn change(version: u64) -> Change<'static> {
        Change {
            kind: ChangeKind::Created,
            key: b"k",
            value: b"v",
            version,
            metadata: Metadata {
                version,
                created: None,
                last_used: None,
                lifespan: None,
                max_idle: None,
            },
            skip_listener_notification: false,
        }
    }

    #[test]
    fn subscribers_come_and_go() {
        let feed = ChangeFeed::default();
        let a = Arc::new(Recorder::default());
        let b = Arc::new(Recorder::default());
        let ia = feed.subscribe(a.clone());
        let ib = feed.subscribe(b.clone());
        assert_ne!(ia, ib);
        feed.publish(&change(1));
        assert!(feed.unsubscribe(ia));
        assert!(!feed.unsubscribe(ia));
        feed.publish(&change(2));
        assert_eq!(a.0.lock().len(), 1);
        assert_eq!(b.0.lock().len(), 2);
        assert!(format!("{feed:?}").contains("subscribers: 1"));
    }
}
