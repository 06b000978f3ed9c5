//! The cache manager: the named caches of one server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::CacheConfig;
use crate::error::EngineError;

/// Named caches sharing one clock.
///
/// The map is only locked to look a cache up or to create/remove one; the server is expected to
/// keep the `Arc<Cache>` it got for a request rather than look it up per key.
#[derive(Debug)]
pub struct CacheManager {
    clock: Arc<dyn Clock>,
    caches: RwLock<HashMap<String, Arc<Cache>>>,
    /// Bumped whenever a cache is created or removed, so callers may memoise lookups.
    generation: AtomicU64,
}

impl CacheManager {
    /// An empty manager whose caches take time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            caches: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Creates a cache; fails if the name is taken or the configuration is invalid.
    pub fn create(&self, name: &str, config: CacheConfig) -> Result<Arc<Cache>, EngineError> {
        let mut caches = self.caches.write();
        if caches.contains_key(name) {
            return Err(EngineError::CacheExists(name.to_owned()));
        }
        let cache = Arc::new(Cache::new(name, config, self.clock.clone())?);
        caches.insert(name.to_owned(), cache.clone());
        self.generation.fetch_add(1, Ordering::Release);
        Ok(cache)
    }

    /// The cache called `name`, creating it with `config` if there is none (Infinispan's
    /// `@@cache@getorcreate` admin task).
    pub fn get_or_create(
        &self,
        name: &str,
        config: CacheConfig,
    ) -> Result<Arc<Cache>, EngineError> {
        if let Some(cache) = self.caches.read().get(name) {
            return Ok(cache.clone());
        }
        match self.create(name, config) {
            Err(EngineError::CacheExists(_)) => self.cache(name),
            other => other,
        }
    }

    /// The cache called `name`.
    pub fn cache(&self, name: &str) -> Result<Arc<Cache>, EngineError> {
        self.caches
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::CacheNotFound(name.to_owned()))
    }

    /// Removes the cache called `name` and returns it; holders of its `Arc` may still use it.
    /// Changes whenever a cache is created or removed: a lookup memoised under one generation
    /// is valid while the generation is the same.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn remove(&self, name: &str) -> Result<Arc<Cache>, EngineError> {
        let removed = self
            .caches
            .write()
            .remove(name)
            .ok_or_else(|| EngineError::CacheNotFound(name.to_owned()))?;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(removed)
    }

    /// The names of all caches, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.caches.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// All caches, e.g. for the server to schedule each one's reaper.
    pub fn caches(&self) -> Vec<Arc<Cache>> {
        self.caches.read().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn manager() -> CacheManager {
        CacheManager::new(Arc::new(ManualClock::new(0)))
    }

    #[test]
    fn create_look_up_remove() {
        let m = manager();
        let c = m.create("sessions", CacheConfig::default()).unwrap();
        assert_eq!(c.name(), "sessions");
        assert_eq!(
            m.create("sessions", CacheConfig::default()).unwrap_err(),
            EngineError::CacheExists("sessions".into())
        );
        assert!(Arc::ptr_eq(&m.cache("sessions").unwrap(), &c));
        assert_eq!(
            m.cache("work").unwrap_err(),
            EngineError::CacheNotFound("work".into())
        );
        m.create("work", CacheConfig::default()).unwrap();
        assert_eq!(m.names(), ["sessions", "work"]);
        assert_eq!(m.caches().len(), 2);
        m.remove("work").unwrap();
        assert!(m.remove("work").is_err());
        assert_eq!(m.names(), ["sessions"]);
    }

    #[test]
    fn get_or_create_reuses() {
        let m = manager();
        let a = m.get_or_create("a", CacheConfig::default()).unwrap();
        let b = m.get_or_create("a", CacheConfig::default()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn invalid_config_is_refused() {
        let m = manager();
        let config = CacheConfig {
            segments: 3,
            ..CacheConfig::default()
        };
        assert_eq!(
            m.create("x", config).unwrap_err(),
            EngineError::InvalidSegmentCount(3)
        );
        assert!(m.names().is_empty());
    }
}
