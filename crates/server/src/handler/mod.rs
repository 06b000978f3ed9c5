//! What each request means: the dispatch from a decoded request to the engine and back to a
//! response, following the reference server's statuses and previous-value rules
//! (`protocol-spec/operations.md`).
//!
//! Handlers are synchronous: the engine never blocks on I/O, so a connection processes its
//! pipelined requests in order and writes the answers in one batch.

mod admin;
mod cache_ops;
pub mod convert;
mod iteration;
pub mod listeners;
mod streams;
pub mod tx;

use std::sync::Arc;

use bytes::BytesMut;
use ironrod_codec::{
    Intelligence, Op, OpCode, Request, RequestHeader, Response, ResponseBody, SegmentTable,
    ServerAddress, Status, Topology,
};
use ironrod_engine::{Cache, EngineError};

use crate::errors::Refusal;
use crate::session::Session;
use crate::state::State;

/// A successful answer before it is framed.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: Status,
    pub body: ResponseBody,
    /// The cache whose topology the client may need.
    pub cache: Option<Arc<Cache>>,
}

impl Reply {
    pub fn status(status: Status, cache: &Arc<Cache>) -> Reply {
        Reply {
            status,
            body: ResponseBody::Empty,
            cache: Some(cache.clone()),
        }
    }

    pub fn with(status: Status, body: ResponseBody, cache: &Arc<Cache>) -> Reply {
        Reply {
            status,
            body,
            cache: Some(cache.clone()),
        }
    }

    /// An answer that concerns no cache (and so carries no topology).
    pub fn bare(status: Status, body: ResponseBody) -> Reply {
        Reply {
            status,
            body,
            cache: None,
        }
    }
}

pub(crate) type Outcome = Result<Reply, Refusal>;

impl State {
    /// Handles one request and appends its response to `out`.
    pub fn handle(&self, req: Request, session: &mut Session, out: &mut BytesMut) {
        let Request { header, op } = req;
        let opcode = op.opcode();
        if let Some(refusal) = self.gate(&header, &op, session) {
            Response::error(
                header.message_id,
                header.version,
                refusal.status,
                refusal.message,
            )
            .encode(out);
            return;
        }
        if let Op::AddClientListener(reg) = &op {
            if header.version.is_known() {
                if let Err(refusal) = self.add_listener(&header, reg, session, out) {
                    Response::error(
                        header.message_id,
                        header.version,
                        refusal.status,
                        refusal.message,
                    )
                    .encode(out);
                }
                return;
            }
        }
        if let Op::Get { key } = &op {
            if header.version.is_known() {
                match self.get(&header, key, session, out) {
                    Ok(()) => return,
                    Err(refusal) => {
                        let error = Response::error(
                            header.message_id,
                            header.version,
                            refusal.status,
                            refusal.message,
                        );
                        error.encode(out);
                        return;
                    }
                }
            }
        }
        let outcome = tx::guard_waits(self, &header, session, |s| self.dispatch(&header, &op, s));
        let response = match outcome {
            Ok(reply) => Response {
                message_id: header.message_id,
                version: header.version,
                opcode: opcode.response(),
                status: reply.status,
                topology: reply
                    .cache
                    .as_deref()
                    .and_then(|c| self.topology(&header, c, session)),
                body: reply.body,
            },
            Err(refusal) => Response::error(
                header.message_id,
                header.version,
                refusal.status,
                refusal.message,
            ),
        };
        response.encode(out);
    }

    /// A one-node topology for clients that want one and do not have it yet.
    fn topology(&self, h: &RequestHeader, cache: &Cache, session: &Session) -> Option<Topology> {
        let aware = h.intelligence == Intelligence::TOPOLOGY_AWARE
            || h.intelligence == Intelligence::HASH_DISTRIBUTION_AWARE;
        if !aware || h.topology_id == State::TOPOLOGY_ID {
            return None;
        }
        let (host, port) = self.advertised(session.local);
        let segments = (h.intelligence == Intelligence::HASH_DISTRIBUTION_AWARE).then(|| {
            let n = cache.segments().count();
            SegmentTable {
                hash_function: 3,
                num_segments: n,
                owners: vec![vec![0]; n as usize],
            }
        });
        Some(Topology {
            id: State::TOPOLOGY_ID,
            servers: vec![ServerAddress { host, port }],
            segments,
        })
    }

    /// GET, the hottest operation, encoded straight from the cache's storage: no copy of the
    /// value between the engine and the write buffer.
    fn get(
        &self,
        h: &RequestHeader,
        key: &[u8],
        session: &mut Session,
        out: &mut BytesMut,
    ) -> Result<(), Refusal> {
        let cache = self.session_cache(h, session)?;
        let topology = self.topology(h, &cache, session);
        let opcode = OpCode::GET_RESPONSE;
        let hit = cache.read_value(key, |value| {
            Response::encode_value(
                h.message_id,
                opcode,
                Status::SUCCESS,
                topology.as_ref(),
                value,
                out,
            )
        });
        if hit.is_none() {
            Response {
                message_id: h.message_id,
                version: h.version,
                opcode,
                status: Status::KEY_DOES_NOT_EXIST,
                topology,
                body: ResponseBody::Empty,
            }
            .encode(out);
        }
        Ok(())
    }

    /// [`State::cache`], memoised per connection while no cache is created or removed.
    pub(crate) fn session_cache(
        &self,
        h: &RequestHeader,
        session: &mut Session,
    ) -> Result<Arc<Cache>, Refusal> {
        let generation = self.caches.generation();
        if let Some((name, gen, cache)) = &session.last_cache {
            if *gen == generation && (Arc::ptr_eq(name, &h.cache_name) || *name == h.cache_name) {
                return Ok(cache.clone());
            }
        }
        let cache = self.cache(h)?;
        session.last_cache = Some((h.cache_name.clone(), generation, cache.clone()));
        Ok(cache)
    }

    /// The cache a request names; the empty name is the default cache.
    pub(crate) fn cache(&self, h: &RequestHeader) -> Result<Arc<Cache>, Refusal> {
        let name = if h.cache_name.is_empty() {
            self.config.default_cache.as_str()
        } else {
            &*h.cache_name
        };
        self.caches
            .cache(name)
            .map_err(|_| Refusal::cache_not_found(&h.cache_name))
    }

    /// Takes the operation by reference: moving the 112-byte `Op` through each layer showed
    /// up as copies in the per-request profile. The rarer handlers that keep parts of it
    /// get a clone.
    fn dispatch(&self, h: &RequestHeader, op: &Op, session: &mut Session) -> Outcome {
        if !h.version.is_known() {
            return Err(Refusal::unknown_version(h.version));
        }
        let opcode = op.opcode();
        match op {
            Op::Ping => self.ping(h),
            Op::AuthMechList => self.auth_mech_list(session),
            Op::Auth {
                mechanism,
                response,
            } => self.auth(mechanism, response, session),
            Op::Put { .. }
            | Op::Get { .. }
            | Op::PutIfAbsent { .. }
            | Op::Replace { .. }
            | Op::ReplaceIfUnmodified { .. }
            | Op::Remove { .. }
            | Op::RemoveIfUnmodified { .. }
            | Op::ContainsKey { .. }
            | Op::GetWithVersion { .. }
            | Op::GetWithMetadata { .. }
            | Op::Clear
            | Op::Stats
            | Op::Size
            | Op::BulkGet { .. }
            | Op::BulkGetKeys { .. }
            | Op::PutAll { .. }
            | Op::GetAll { .. } => self.cache_op(h, op, session),
            Op::IterationStart { .. } | Op::IterationNext { .. } | Op::IterationEnd { .. } => {
                self.iteration_op(h, op.clone())
            }
            Op::GetStream { .. }
            | Op::PutStream { .. }
            | Op::PutStreamStart { .. }
            | Op::PutStreamNext { .. }
            | Op::PutStreamEnd { .. }
            | Op::GetStreamStart { .. }
            | Op::GetStreamNext { .. }
            | Op::GetStreamEnd { .. } => self.stream_op(h, op.clone(), session),
            Op::Exec { task, params } => self.exec(h, task, params),
            Op::RemoveClientListener { listener_id } => {
                self.remove_listener(h, listener_id, session)
            }
            Op::AddBloomFilterListener { listener_id, .. } => {
                self.add_bloom_listener(h, listener_id, session)
            }
            Op::UpdateBloomFilter { .. } => self.update_bloom_filter(h, session),
            // Served by `handle` at every known version; an unknown one was refused above.
            Op::AddClientListener(_) => Err(Refusal::unknown_version(h.version)),
            Op::PrepareTx { .. }
            | Op::PrepareTx2 { .. }
            | Op::CommitTx { .. }
            | Op::RollbackTx { .. }
            | Op::ForgetTx { .. }
            | Op::FetchTxRecovery => self.tx_op(h, op.clone(), session),
            Op::Query { .. } => {
                self.cache(h)?;
                Err(Refusal::unsupported(opcode, "queries are not implemented"))
            }
            _ if is_counter(opcode) => Err(Refusal::unsupported(
                opcode,
                "clustered counters are not implemented",
            )),
            _ => {
                self.cache(h)?;
                Err(Refusal::unsupported(
                    opcode,
                    "multimaps are not implemented",
                ))
            }
        }
    }

    fn ping(&self, h: &RequestHeader) -> Outcome {
        let cache = self.cache(h)?;
        let media = convert::media_type(cache.media_type());
        let info = ironrod_codec::PingInfo {
            key_type: media.clone(),
            value_type: media,
            server_version: ironrod_codec::Version::LATEST,
            operations: SUPPORTED.iter().map(|op| u16::from(op.0)).collect(),
        };
        Ok(Reply::with(
            Status::SUCCESS,
            ResponseBody::Ping(info),
            &cache,
        ))
    }
}

fn is_counter(op: OpCode) -> bool {
    matches!(op.0, 0x4B..=0x5E | 0x64 | 0x7F)
}

/// The request opcodes Ironrod serves, as PING advertises them.
pub const SUPPORTED: &[OpCode] = &[
    OpCode::PUT,
    OpCode::GET,
    OpCode::PUT_IF_ABSENT,
    OpCode::REPLACE,
    OpCode::REPLACE_IF_UNMODIFIED,
    OpCode::REMOVE,
    OpCode::REMOVE_IF_UNMODIFIED,
    OpCode::CONTAINS_KEY,
    OpCode::GET_WITH_VERSION,
    OpCode::CLEAR,
    OpCode::STATS,
    OpCode::PING,
    OpCode::BULK_GET,
    OpCode::GET_WITH_METADATA,
    OpCode::BULK_GET_KEYS,
    OpCode::AUTH_MECH_LIST,
    OpCode::SIZE,
    OpCode::EXEC,
    OpCode::PUT_ALL,
    OpCode::GET_ALL,
    OpCode::ITERATION_START,
    OpCode::ITERATION_NEXT,
    OpCode::ITERATION_END,
    OpCode::GET_STREAM,
    OpCode::PUT_STREAM,
    OpCode::PUT_STREAM_START,
    OpCode::PUT_STREAM_NEXT,
    OpCode::PUT_STREAM_END,
    OpCode::GET_STREAM_START,
    OpCode::GET_STREAM_NEXT,
    OpCode::GET_STREAM_END,
    OpCode::PREPARE_TX,
    OpCode::COMMIT_TX,
    OpCode::ROLLBACK_TX,
    OpCode::FORGET_TX,
    OpCode::FETCH_TX_RECOVERY,
    OpCode::PREPARE_TX_2,
    OpCode::ADD_CLIENT_LISTENER,
    OpCode::REMOVE_CLIENT_LISTENER,
    OpCode::ADD_BLOOM_FILTER_LISTENER,
    OpCode::UPDATE_BLOOM_FILTER,
];

/// An engine failure as the client sees it.
pub(crate) fn engine_refusal(e: EngineError) -> Refusal {
    match e {
        EngineError::CacheNotFound(name) => Refusal::cache_not_found(&name),
        EngineError::Lock(lock) => Refusal::server(tx::lock_conflict_text(&lock)),
        other => Refusal::server(format!("org.infinispan.commons.CacheException: {other}")),
    }
}
