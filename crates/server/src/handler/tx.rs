//! Hot Rod remote transactions (2.7+): PREPARE_TX, PREPARE_TX_2, COMMIT_TX, ROLLBACK_TX,
//! FORGET_TX and FETCH_TX_RECOVERY (`protocol-spec/transactions.md`).
//!
//! The client keeps a transaction's reads and writes to itself and sends them at commit time:
//! PREPARE carries the XID and the modification list, each write with the version it read (or
//! "not read", "did not exist"). The server locks the keys, checks the versions (write skew),
//! runs the engine's prepare hook and answers an XA code; COMMIT or ROLLBACK then finish the
//! transaction — on any connection, since the Java client's pool may use another one.
//!
//! The registry keys transactions by (cache, XID), as the reference's global transaction table
//! does, and keeps each finished transaction's outcome (bounded) so that a repeated COMMIT or
//! ROLLBACK gets a consistent answer until FORGET_TX. A prepared transaction holds its key
//! locks until it finishes, its timeout passes (PREPARE_TX_2's `timeout`, 60 s for PREPARE_TX;
//! expired ones are rolled back whenever the registry is next used, and before a write that
//! met a lock conflict is answered), or the connection that prepared it closes: Ironrod rolls
//! such transactions back at once (`protocol-spec/compatibility.md` C32).
//!
//! XA codes follow the reference's `TransactionRequestProcessor` and `PrepareCoordinator`:
//! prepare answers XA_OK, XA_RDONLY for an empty write set, XA_RBROLLBACK when a lock, a
//! version check, the entry bound or the prepare hook refuses; commit answers XA_OK,
//! XA_HEURRB for a rolled-back transaction and XAER_NOTA for an unknown one; rollback answers
//! XA_OK, XA_HEURCOM for a committed one and XAER_NOTA.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ironrod_codec::{Modification, Op, RequestHeader, ResponseBody, Status, Xid};
use ironrod_engine::{Cache, EngineError, Expect, PreparedTx, TxWrite};
use parking_lot::Mutex;

use super::{convert, Outcome, Reply};
use crate::errors::Refusal;
use crate::session::Session;
use crate::state::State;

/// XA return codes (`javax.transaction.xa.XAResource` / `XAException`).
pub mod xa {
    pub const XA_OK: i32 = 0;
    pub const XA_RDONLY: i32 = 3;
    pub const XA_HEURRB: i32 = 6;
    pub const XA_HEURCOM: i32 = 7;
    pub const XA_RBROLLBACK: i32 = 100;
    pub const XAER_RMERR: i32 = -3;
    pub const XAER_NOTA: i32 = -4;
}

/// The timeout PREPARE_TX (which carries none) gets, as in the reference.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Finished transactions whose outcome is remembered for repeated COMMIT/ROLLBACK.
const MAX_FINISHED: usize = 16_384;
/// Prepared transactions a connection may leave open before older finished ones are pruned
/// from its list.
const SESSION_PRUNE: usize = 64;

/// A transaction's identity: the cache it writes and its XID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxKey {
    cache: String,
    format_id: i32,
    global_id: Bytes,
    branch_qualifier: Bytes,
}

/// Every remote transaction the server knows of.
#[derive(Debug, Default)]
pub struct Transactions {
    inner: Mutex<Table>,
}

/// The transactions a connection prepared; dropping it (the connection closed) rolls back
/// those still prepared.
#[derive(Debug)]
pub struct SessionTransactions {
    registry: Arc<Transactions>,
    prepared: Vec<TxKey>,
}

#[derive(Debug, Default)]
struct Table {
    records: HashMap<TxKey, Record>,
    /// Finished transactions, oldest first, for the bound.
    finished: VecDeque<TxKey>,
}

#[derive(Debug)]
enum Record {
    Prepared {
        tx: PreparedTx,
        xid: Xid,
        /// Epoch milliseconds after which the transaction is rolled back.
        deadline: u64,
    },
    Committed,
    RolledBack,
}

/// What a prepared transaction became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    Commit,
    Rollback,
}

impl State {
    /// Serves the transaction opcodes.
    pub(crate) fn tx_op(&self, h: &RequestHeader, op: Op, session: &mut Session) -> Outcome {
        if let Op::FetchTxRecovery = op {
            let xids = self.transactions.prepared(self.clock.now());
            return Ok(Reply::bare(Status::SUCCESS, ResponseBody::Xids(xids)));
        }
        let cache = self.cache(h)?;
        let reply = |code: i32| {
            Ok(Reply::with(
                Status::SUCCESS,
                ResponseBody::XaCode(code),
                &cache,
            ))
        };
        match op {
            Op::PrepareTx {
                xid,
                one_phase,
                modifications,
            } => {
                let code = self.prepare(
                    h,
                    &cache,
                    xid,
                    one_phase,
                    DEFAULT_TIMEOUT,
                    &modifications,
                    session,
                )?;
                code.map_or_else(|| Ok(Reply::status(Status::NOT_EXECUTED, &cache)), reply)
            }
            Op::PrepareTx2 {
                xid,
                one_phase,
                timeout_ms,
                modifications,
                ..
            } => {
                let timeout = u64::try_from(timeout_ms)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
                let code =
                    self.prepare(h, &cache, xid, one_phase, timeout, &modifications, session)?;
                code.map_or_else(|| Ok(Reply::status(Status::NOT_EXECUTED, &cache)), reply)
            }
            Op::CommitTx { xid } => reply(self.transactions.finish(
                key(&cache, &xid),
                Finish::Commit,
                self.clock.now(),
            )),
            Op::RollbackTx { xid } => reply(self.transactions.finish(
                key(&cache, &xid),
                Finish::Rollback,
                self.clock.now(),
            )),
            Op::ForgetTx { xid } => {
                self.transactions.forget(&key(&cache, &xid));
                Ok(Reply::status(Status::SUCCESS, &cache))
            }
            _ => Err(Refusal::server("not a transaction operation")),
        }
    }

    /// Locks, validates and prepares (and, for one phase, commits); `None` when the XID is
    /// already known (the reference answers "not executed" and the client retries or rolls
    /// back).
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &self,
        h: &RequestHeader,
        cache: &Arc<Cache>,
        xid: Xid,
        one_phase: bool,
        timeout: Duration,
        modifications: &[Modification],
        session: &mut Session,
    ) -> Result<Option<i32>, Refusal> {
        if let Some(why) = cache.config().transaction.remote_tx_refusal() {
            return Err(Refusal::server(format!(
                "org.infinispan.commons.CacheConfigurationException: cache '{}' cannot serve Hot Rod transactions: {why}",
                cache.name()
            )));
        }
        let now = || self.clock.now();
        let writes = modifications
            .iter()
            .map(|m| write(h, m, &now))
            .collect::<Result<Vec<_>, _>>()?;
        if writes.is_empty() {
            return Ok(Some(xa::XA_RDONLY));
        }
        let key = key(cache, &xid);
        if self.transactions.knows(&key, self.clock.now()) {
            return Ok(None);
        }
        let code = match cache.prepare(writes) {
            Ok(tx) if one_phase => {
                tx.commit();
                self.transactions.record(key, Record::Committed);
                xa::XA_OK
            }
            Ok(tx) => {
                let deadline = self
                    .clock
                    .now()
                    .saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
                self.transactions
                    .record(key.clone(), Record::Prepared { tx, xid, deadline });
                session
                    .transactions
                    .get_or_insert_with(|| SessionTransactions {
                        registry: self.transactions.clone(),
                        prepared: Vec::new(),
                    })
                    .add(key);
                xa::XA_OK
            }
            Err(
                EngineError::Lock(_)
                | EngineError::WriteSkew { .. }
                | EngineError::Vetoed(_)
                | EngineError::EntryBoundReached { .. },
            ) => {
                self.transactions.record(key, Record::RolledBack);
                xa::XA_RBROLLBACK
            }
            Err(_) => xa::XAER_RMERR,
        };
        Ok(Some(code))
    }

    /// Rolls back prepared transactions whose timeout has passed (called before a lock
    /// conflict is answered, so that an abandoned transaction does not block writers longer
    /// than its timeout).
    pub(crate) fn expire_transactions(&self) {
        self.transactions.expire(self.clock.now());
    }
}

/// Runs `f` (a request's dispatch) off the async worker when the request's cache may make it
/// wait for a key lock (a positive acquire timeout), so that a waiting writer never stalls the
/// connections a lock holder needs to commit; a zero timeout never waits and runs in place.
/// After a lock conflict, expired transactions are rolled back so that the retry can pass.
pub(crate) fn guard_waits(
    state: &State,
    h: &RequestHeader,
    session: &mut Session,
    f: impl FnOnce(&mut Session) -> Outcome,
) -> Outcome {
    let may_wait = state
        .session_cache(h, session)
        .is_ok_and(|c| c.config().transaction.may_wait());
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let outcome = if may_wait && multi_thread {
        tokio::task::block_in_place(|| f(session))
    } else {
        f(session)
    };
    if let Err(refusal) = &outcome {
        if refusal.message.contains(LOCK_CONFLICT) {
            state.expire_transactions();
        }
    }
    outcome
}

/// The message id of a lock acquisition timeout (Infinispan's `ISPN000299`).
pub const LOCK_CONFLICT: &str = "ISPN000299";

/// The error text for an engine error caused by a lock conflict: the class the reference
/// throws, then its `ISPN000299` message.
pub(crate) fn lock_conflict_text(e: &ironrod_engine::LockError) -> String {
    format!("org.infinispan.util.concurrent.TimeoutException: {e}")
}

impl Transactions {
    /// The XIDs of prepared, unexpired transactions (FETCH_TX_RECOVERY).
    fn prepared(&self, now: u64) -> Vec<Xid> {
        self.expire(now);
        let table = self.inner.lock();
        let mut xids: Vec<Xid> = Vec::new();
        for record in table.records.values() {
            if let Record::Prepared { xid, .. } = record {
                if !xids.contains(xid) {
                    xids.push(xid.clone());
                }
            }
        }
        xids
    }

    fn knows(&self, key: &TxKey, now: u64) -> bool {
        self.expire(now);
        self.inner.lock().records.contains_key(key)
    }

    fn record(&self, key: TxKey, record: Record) {
        let mut table = self.inner.lock();
        let finished = !matches!(record, Record::Prepared { .. });
        table.records.insert(key.clone(), record);
        if finished {
            table.remember_finished(key);
        }
    }

    /// Commits or rolls back a transaction; the XA code for the client.
    fn finish(&self, key: TxKey, how: Finish, now: u64) -> i32 {
        self.expire(now);
        let prepared = {
            let mut table = self.inner.lock();
            match table.records.remove(&key) {
                None => return xa::XAER_NOTA,
                Some(Record::Prepared { tx, .. }) => tx,
                Some(done @ (Record::Committed | Record::RolledBack)) => {
                    let code = match (&done, how) {
                        (Record::Committed, Finish::Commit)
                        | (Record::RolledBack, Finish::Rollback) => xa::XA_OK,
                        (Record::RolledBack, Finish::Commit) => xa::XA_HEURRB,
                        _ => xa::XA_HEURCOM,
                    };
                    table.records.insert(key, done);
                    return code;
                }
            }
        };
        // Applied outside the registry's mutex: commits of different transactions run in
        // parallel.
        let record = match how {
            Finish::Commit => {
                prepared.commit();
                Record::Committed
            }
            Finish::Rollback => {
                prepared.rollback();
                Record::RolledBack
            }
        };
        self.record(key, record);
        xa::XA_OK
    }

    fn forget(&self, key: &TxKey) {
        let mut table = self.inner.lock();
        if matches!(
            table.records.get(key),
            Some(Record::Committed | Record::RolledBack)
        ) {
            table.records.remove(key);
        }
    }

    /// Rolls back the given transactions if they are still prepared (their connection closed).
    fn abandon(&self, keys: &[TxKey]) {
        for key in keys {
            let tx = {
                let mut table = self.inner.lock();
                match table.records.remove(key) {
                    Some(Record::Prepared { tx, .. }) => Some(tx),
                    Some(other) => {
                        table.records.insert(key.clone(), other);
                        None
                    }
                    None => None,
                }
            };
            if let Some(tx) = tx {
                tx.rollback();
                self.record(key.clone(), Record::RolledBack);
            }
        }
    }

    /// Rolls back prepared transactions past their deadline.
    fn expire(&self, now: u64) {
        let expired: Vec<TxKey> = {
            let table = self.inner.lock();
            table
                .records
                .iter()
                .filter(|(_, r)| matches!(r, Record::Prepared { deadline, .. } if *deadline <= now))
                .map(|(k, _)| k.clone())
                .collect()
        };
        if !expired.is_empty() {
            self.abandon(&expired);
        }
    }

    fn is_prepared(&self, key: &TxKey) -> bool {
        matches!(
            self.inner.lock().records.get(key),
            Some(Record::Prepared { .. })
        )
    }

    /// How many transactions are prepared (for tests).
    pub fn prepared_count(&self) -> usize {
        self.inner
            .lock()
            .records
            .values()
            .filter(|r| matches!(r, Record::Prepared { .. }))
            .count()
    }
}

impl Table {
    fn remember_finished(&mut self, key: TxKey) {
        self.finished.push_back(key);
        while self.finished.len() > MAX_FINISHED {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            if matches!(
                self.records.get(&old),
                Some(Record::Committed | Record::RolledBack)
            ) {
                self.records.remove(&old);
            }
        }
    }
}

impl SessionTransactions {
    fn add(&mut self, key: TxKey) {
        if self.prepared.len() >= SESSION_PRUNE {
            let registry = &self.registry;
            self.prepared.retain(|k| registry.is_prepared(k));
        }
        self.prepared.push(key);
    }
}

impl Drop for SessionTransactions {
    fn drop(&mut self) {
        self.registry.abandon(&self.prepared);
    }
}

fn key(cache: &Cache, xid: &Xid) -> TxKey {
    TxKey {
        cache: cache.name().to_owned(),
        format_id: xid.format_id,
        global_id: xid.global_id.clone(),
        branch_qualifier: xid.branch_qualifier.clone(),
    }
}

/// One modification as an engine write.
fn write(h: &RequestHeader, m: &Modification, now: &dyn Fn() -> u64) -> Result<TxWrite, Refusal> {
    let not_read = m.control & Modification::NOT_READ != 0;
    let non_existing = m.control & Modification::NON_EXISTING != 0;
    let expect = match (not_read, non_existing, m.version_read) {
        (true, true, _) => {
            return Err(Refusal::illegal_argument(
                "a modification cannot be both not read and non-existing",
            ))
        }
        (true, false, _) => Expect::Any,
        (false, true, _) => Expect::Absent,
        (false, false, Some(v)) => Expect::Version(u64::try_from(v).unwrap_or(u64::MAX)),
        (false, false, None) => Expect::Absent,
    };
    let w = match &m.write {
        Some((expiration, value)) if m.control & Modification::REMOVE == 0 => {
            let options = convert::write_options(h, expiration, now)?;
            TxWrite::put(m.key.clone(), value.clone(), options)
        }
        _ => TxWrite::remove(m.key.clone(), convert::plain_options(h)),
    };
    Ok(w.expecting(expect))
}
