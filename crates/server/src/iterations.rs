//! Open iterations, server-wide.
//!
//! The Java client sends ITERATION_NEXT to the same server but not necessarily on the connection
//! that started the iteration, so iterations cannot live in a connection. They are bounded in
//! number and dropped after a period without use, so abandoned ones cost nothing for long.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ironrod_engine::{Cache, Iteration};
use parking_lot::Mutex;

/// One iteration's cursor and options.
#[derive(Debug)]
pub struct OpenIteration {
    pub cache: Arc<Cache>,
    pub cursor: Iteration,
    pub batch_size: usize,
    pub include_metadata: bool,
    /// The key-only converter: values are sent empty.
    pub keys_only: bool,
    /// Report finished segments only when the whole iteration is done (see
    /// `handler::iteration`), accumulating them here meanwhile.
    pub defer_finished: Option<Vec<u32>>,
    last_used: Instant,
}

impl OpenIteration {
    pub fn new(
        cache: Arc<Cache>,
        cursor: Iteration,
        batch_size: usize,
        include_metadata: bool,
        keys_only: bool,
    ) -> Self {
        OpenIteration {
            cache,
            cursor,
            batch_size,
            include_metadata,
            keys_only,
            defer_finished: None,
            last_used: Instant::now(),
        }
    }
}

/// The registry of open iterations.
#[derive(Debug)]
pub struct Iterations {
    inner: Mutex<Registry>,
    max_open: usize,
    idle: Duration,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    open: HashMap<Bytes, OpenIteration>,
}

impl Iterations {
    pub fn new(max_open: usize, idle: Duration) -> Self {
        Iterations {
            inner: Mutex::new(Registry::default()),
            max_open,
            idle,
        }
    }

    /// Registers an iteration and returns its id, or `None` when the registry is full of
    /// iterations that are still in use.
    pub fn open(&self, iteration: OpenIteration) -> Option<Bytes> {
        let mut reg = self.inner.lock();
        if reg.open.len() >= self.max_open {
            let idle = self.idle;
            reg.open.retain(|_, it| it.last_used.elapsed() < idle);
            if reg.open.len() >= self.max_open {
                return None;
            }
        }
        reg.next_id += 1;
        let id = Bytes::from(reg.next_id.to_string());
        reg.open.insert(id.clone(), iteration);
        Some(id)
    }

    /// Takes an iteration out for one batch; [`Iterations::put_back`] returns it. Holding it
    /// outside the lock keeps one slow batch from stalling every other iteration.
    pub fn take(&self, id: &[u8]) -> Option<OpenIteration> {
        self.inner.lock().open.remove(id)
    }

    pub fn put_back(&self, id: Bytes, mut iteration: OpenIteration) {
        iteration.last_used = Instant::now();
        self.inner.lock().open.insert(id, iteration);
    }

    /// Ends an iteration; false if the id was unknown.
    pub fn close(&self, id: &[u8]) -> bool {
        self.inner.lock().open.remove(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
