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
    pub const XA_HEURMIX: i32 = 5;
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

/// A transaction's identity: its XID (format, global id, branch qualifier). One transaction
/// may write several caches, each prepared by its own PREPARE; COMMIT and ROLLBACK carry no
/// cache name and finish every cache's part, as the reference's global transaction table does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct XidKey {
    format_id: i32,
    global_id: Bytes,
    branch_qualifier: Bytes,
}

/// One cache's part of a transaction, as a connection prepared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartKey {
    xid: XidKey,
    cache: String,
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
    prepared: Vec<PartKey>,
}

#[derive(Debug)]
struct Table {
    /// By XID, then by cache.
    records: HashMap<XidKey, Global>,
    /// Transactions with every part finished, oldest first, for the bound.
    finished: VecDeque<XidKey>,
    /// No prepared part has a deadline before this (epoch ms; `u64::MAX` when none is
    /// prepared), so the timeout sweep is skipped until then.
    earliest: u64,
}

#[derive(Debug)]
struct Global {
    xid: Xid,
    parts: HashMap<String, Record>,
}

#[derive(Debug)]
enum Record {
    Prepared {
        tx: PreparedTx,
        /// Epoch milliseconds after which the part is rolled back.
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
        let now = self.clock.now();
        let finished = |code: i32| Ok(Reply::bare(Status::SUCCESS, ResponseBody::XaCode(code)));
        match op {
            Op::CommitTx { xid } => {
                return finished(self.transactions.finish(&xid, Finish::Commit, now));
            }
            Op::RollbackTx { xid } => {
                return finished(self.transactions.finish(&xid, Finish::Rollback, now));
            }
            Op::ForgetTx { xid } => {
                self.transactions.forget(&xid_key(&xid));
                return Ok(Reply::bare(Status::SUCCESS, ResponseBody::Empty));
            }
            _ => {}
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
                "java.lang.IllegalStateException: cache '{}' cannot serve Hot Rod transactions: {why}",
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
        let part = PartKey {
            xid: xid_key(&xid),
            cache: cache.name().to_owned(),
        };
        if self.transactions.knows(&part, self.clock.now()) {
            return Ok(None);
        }
        let code = match cache.prepare(writes) {
            Ok(tx) if one_phase => {
                tx.commit();
                self.transactions.record(&xid, &part, Record::Committed);
                xa::XA_OK
            }
            Ok(tx) => {
                let deadline = self
                    .clock
                    .now()
                    .saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
                self.transactions
                    .record(&xid, &part, Record::Prepared { tx, deadline });
                session
                    .transactions
                    .get_or_insert_with(|| SessionTransactions {
                        registry: self.transactions.clone(),
                        prepared: Vec::new(),
                    })
                    .add(part);
                xa::XA_OK
            }
            Err(
                EngineError::Lock(_)
                | EngineError::WriteSkew { .. }
                | EngineError::Vetoed(_)
                | EngineError::EntryBoundReached { .. },
            ) => {
                self.transactions.record(&xid, &part, Record::RolledBack);
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
        .is_ok_and(|c| c.config().transaction.may_wait())
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let outcome = if may_wait {
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
    /// The XIDs with a prepared, unexpired part (FETCH_TX_RECOVERY).
    fn prepared(&self, now: u64) -> Vec<Xid> {
        self.expire(now);
        let table = self.inner.lock();
        table
            .records
            .values()
            .filter(|g| g.parts.values().any(Record::is_prepared))
            .map(|g| g.xid.clone())
            .collect()
    }

    fn knows(&self, part: &PartKey, now: u64) -> bool {
        self.expire(now);
        self.inner
            .lock()
            .records
            .get(&part.xid)
            .is_some_and(|g| g.parts.contains_key(&part.cache))
    }

    fn record(&self, xid: &Xid, part: &PartKey, record: Record) {
        let mut table = self.inner.lock();
        if let Record::Prepared { deadline, .. } = &record {
            table.earliest = table.earliest.min(*deadline);
        }
        let global = table
            .records
            .entry(part.xid.clone())
            .or_insert_with(|| Global {
                xid: xid.clone(),
                parts: HashMap::new(),
            });
        if global.parts.contains_key(&part.cache) {
            // A concurrent PREPARE of the same XID and cache got here first; this one's
            // transaction (if prepared) rolls back as it is dropped.
            return;
        }
        global.parts.insert(part.cache.clone(), record);
        if !global.parts.values().any(Record::is_prepared) {
            table.remember_finished(part.xid.clone());
        }
    }

    /// Commits or rolls back every part of a transaction; the XA code for the client.
    fn finish(&self, xid: &Xid, how: Finish, now: u64) -> i32 {
        self.expire(now);
        let key = xid_key(xid);
        let (prepared, mut committed, mut rolled_back) = {
            let mut table = self.inner.lock();
            let Some(global) = table.records.get_mut(&key) else {
                return xa::XAER_NOTA;
            };
            let mut prepared = Vec::new();
            let (mut committed, mut rolled_back) = (0, 0);
            for (cache, record) in global.parts.iter_mut() {
                match record {
                    Record::Committed => committed += 1,
                    Record::RolledBack => rolled_back += 1,
                    Record::Prepared { .. } => {
                        let done = match how {
                            Finish::Commit => Record::Committed,
                            Finish::Rollback => Record::RolledBack,
                        };
                        if let Record::Prepared { tx, .. } = std::mem::replace(record, done) {
                            prepared.push((cache.clone(), tx));
                        }
                    }
                }
            }
            if !prepared.is_empty() {
                table.remember_finished(key);
            }
            (prepared, committed, rolled_back)
        };
        // Applied outside the registry's mutex: commits of different transactions run in
        // parallel. The records already say how they end, so a concurrent COMMIT and
        // ROLLBACK of one XID cannot both apply it.
        for (_, tx) in prepared {
            match how {
                Finish::Commit => {
                    tx.commit();
                    committed += 1;
                }
                Finish::Rollback => {
                    tx.rollback();
                    rolled_back += 1;
                }
            }
        }
        match (how, committed, rolled_back) {
            (_, 0, 0) => xa::XAER_NOTA,
            (Finish::Commit, _, 0) | (Finish::Rollback, 0, _) => xa::XA_OK,
            (Finish::Commit, 0, _) => xa::XA_HEURRB,
            (Finish::Rollback, _, 0) => xa::XA_HEURCOM,
            _ => xa::XA_HEURMIX,
        }
    }

    /// Drops a transaction whose parts are all finished (FORGET_TX).
    fn forget(&self, key: &XidKey) {
        let mut table = self.inner.lock();
        if table
            .records
            .get(key)
            .is_some_and(|g| !g.parts.values().any(Record::is_prepared))
        {
            table.records.remove(key);
        }
    }

    /// Rolls back the given parts if they are still prepared (their connection closed, or
    /// their timeout passed).
    fn abandon(&self, parts: &[PartKey]) {
        for part in parts {
            let tx = {
                let mut table = self.inner.lock();
                let Some(global) = table.records.get_mut(&part.xid) else {
                    continue;
                };
                let Some(record) = global.parts.get_mut(&part.cache) else {
                    continue;
                };
                if !record.is_prepared() {
                    continue;
                }
                let Record::Prepared { tx, .. } = std::mem::replace(record, Record::RolledBack)
                else {
                    continue;
                };
                if !global.parts.values().any(Record::is_prepared) {
                    table.remember_finished(part.xid.clone());
                }
                tx
            };
            tx.rollback();
        }
    }

    /// Rolls back prepared parts past their deadline.
    fn expire(&self, now: u64) {
        let expired: Vec<PartKey> = {
            let mut table = self.inner.lock();
            if now < table.earliest {
                return;
            }
            table.earliest = table
                .records
                .values()
                .flat_map(|g| g.parts.values())
                .filter_map(|r| match r {
                    Record::Prepared { deadline, .. } if *deadline > now => Some(*deadline),
                    _ => None,
                })
                .min()
                .unwrap_or(u64::MAX);
            table
                .records
                .iter()
                .flat_map(|(xid, g)| {
                    g.parts.iter().filter_map(move |(cache, r)| match r {
                        Record::Prepared { deadline, .. } if *deadline <= now => Some(PartKey {
                            xid: xid.clone(),
                            cache: cache.clone(),
                        }),
                        _ => None,
                    })
                })
                .collect()
        };
        if !expired.is_empty() {
            self.abandon(&expired);
        }
    }

    fn is_prepared(&self, part: &PartKey) -> bool {
        self.inner
            .lock()
            .records
            .get(&part.xid)
            .and_then(|g| g.parts.get(&part.cache))
            .is_some_and(Record::is_prepared)
    }

    /// How many transaction parts are prepared (for tests and metrics).
    pub fn prepared_count(&self) -> usize {
        self.inner
            .lock()
            .records
            .values()
            .flat_map(|g| g.parts.values())
            .filter(|r| r.is_prepared())
            .count()
    }
}

impl Record {
    fn is_prepared(&self) -> bool {
        matches!(self, Record::Prepared { .. })
    }
}

impl Default for Table {
    fn default() -> Self {
        Table {
            records: HashMap::new(),
            finished: VecDeque::new(),
            earliest: u64::MAX,
        }
    }
}

impl Table {
    fn remember_finished(&mut self, key: XidKey) {
        self.finished.push_back(key);
        while self.finished.len() > MAX_FINISHED {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            if self
                .records
                .get(&old)
                .is_some_and(|g| !g.parts.values().any(Record::is_prepared))
            {
                self.records.remove(&old);
            }
        }
    }
}

impl SessionTransactions {
    fn add(&mut self, part: PartKey) {
        if self.prepared.len() >= SESSION_PRUNE {
            let registry = &self.registry;
            self.prepared.retain(|k| registry.is_prepared(k));
        }
        self.prepared.push(part);
    }
}

impl Drop for SessionTransactions {
    fn drop(&mut self) {
        self.registry.abandon(&self.prepared);
    }
}

fn xid_key(xid: &Xid) -> XidKey {
    XidKey {
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
