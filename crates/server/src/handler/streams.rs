//! Streamed values: the legacy GET_STREAM / PUT_STREAM (2.6–4.0) and the chunked 4.1 stream
//! operations.

use bytes::{Bytes, BytesMut};
use ironrod_codec::{Flags, Op, RequestHeader, ResponseBody, Status};
use ironrod_engine::{PutIfAbsent, ReplaceIfUnmodified, Versioned, WriteOptions};

use super::cache_ops::write_answer;
use super::convert::{self, write_options};
use super::{engine_refusal, Outcome, Reply};
use crate::errors::Refusal;
use crate::session::{GetStream, PutStream, Session};
use crate::state::State;

/// 4.1 get streams send the value in chunks of at most this many bytes, whatever the client
/// asks.
const MAX_CHUNK: usize = 1 << 20;

impl State {
    pub(super) fn stream_op(&self, h: &RequestHeader, op: Op, session: &mut Session) -> Outcome {
        let cache = self.cache(h)?;
        match op {
            Op::GetStream { key, offset } => match cache.get_with_metadata(&key) {
                None => Ok(Reply::status(Status::KEY_DOES_NOT_EXIST, &cache)),
                Some(v) => {
                    // Only the bytes from `offset` travel (the reference writes the length of
                    // that tail but then the whole value; see compatibility.md C5).
                    let value = v.value.slice((offset as usize).min(v.value.len())..);
                    Ok(Reply::with(
                        Status::SUCCESS,
                        ResponseBody::MetadataValue {
                            metadata: convert::metadata(&v.metadata),
                            value,
                        },
                        &cache,
                    ))
                }
            },
            Op::PutStream {
                key,
                expiration,
                version,
                chunks,
            } => {
                let options = write_options(h, &expiration, &|| self.clock.now())?;
                let value: Vec<u8> = chunks.concat();
                let (status, body) =
                    self.versioned_put(h, &cache, &key, &value, version, &options)?;
                Ok(Reply::with(status, body, &cache))
            }
            Op::PutStreamStart {
                key,
                expiration,
                version,
            } => {
                if session.open_streams() >= Session::MAX_STREAMS {
                    return Err(Refusal::server(
                        "java.io.IOException: too many open streams on this connection",
                    ));
                }
                let options = write_options(h, &expiration, &|| self.clock.now())?;
                let id = session.next_stream_id();
                session.put_streams.insert(
                    id,
                    PutStream {
                        cache: cache.name().to_string(),
                        key,
                        options,
                        version,
                        value: BytesMut::new(),
                    },
                );
                Ok(Reply::with(
                    Status::SUCCESS,
                    ResponseBody::StreamId(id),
                    &cache,
                ))
            }
            Op::PutStreamNext {
                stream_id,
                last,
                chunk,
            } => {
                let Some(stream) = session.put_streams.get_mut(&stream_id) else {
                    return Err(unknown_stream(stream_id));
                };
                if stream.value.len() + chunk.len() > self.limits.max_value_len {
                    session.put_streams.remove(&stream_id);
                    return Err(Refusal::server(format!(
                        "java.io.IOException: streamed value exceeds the limit of {} bytes",
                        self.limits.max_value_len
                    )));
                }
                stream.value.extend_from_slice(&chunk);
                if !last {
                    return Ok(Reply::status(Status::SUCCESS, &cache));
                }
                let Some(stream) = session.put_streams.remove(&stream_id) else {
                    return Err(unknown_stream(stream_id));
                };
                let (status, body) = self.versioned_put(
                    h,
                    &cache,
                    &stream.key,
                    &stream.value,
                    stream.version,
                    &stream.options,
                )?;
                Ok(Reply::with(status, body, &cache))
            }
            Op::PutStreamEnd { stream_id } => {
                session.put_streams.remove(&stream_id);
                Ok(Reply::status(Status::SUCCESS, &cache))
            }
            Op::GetStreamStart { key, batch_size } => match cache.get_with_metadata(&key) {
                None => Ok(Reply::status(Status::KEY_DOES_NOT_EXIST, &cache)),
                Some(v) => {
                    if session.open_streams() >= Session::MAX_STREAMS {
                        return Err(Refusal::server(
                            "java.io.IOException: too many open streams on this connection",
                        ));
                    }
                    let id = session.next_stream_id();
                    let mut stream = GetStream {
                        value: v.value.clone(),
                        offset: 0,
                        chunk: (batch_size as usize).clamp(1, MAX_CHUNK),
                    };
                    let (data, complete) = next_chunk(&mut stream);
                    session.get_streams.insert(id, stream);
                    Ok(Reply::with(
                        Status::SUCCESS,
                        ResponseBody::StreamChunk {
                            stream_id: id,
                            complete,
                            metadata: Some(convert::metadata(&v.metadata)),
                            data,
                        },
                        &cache,
                    ))
                }
            },
            Op::GetStreamNext { stream_id } => {
                let Some(stream) = session.get_streams.get_mut(&stream_id) else {
                    return Err(unknown_stream(stream_id));
                };
                // The stream stays until GET_STREAM_END, as in the reference: a NEXT after the
                // last chunk gets an empty, complete chunk.
                let (data, complete) = next_chunk(stream);
                Ok(Reply::with(
                    Status::SUCCESS,
                    ResponseBody::StreamChunk {
                        stream_id,
                        complete,
                        metadata: None,
                        data,
                    },
                    &cache,
                ))
            }
            Op::GetStreamEnd { stream_id } => {
                session.get_streams.remove(&stream_id);
                Ok(Reply::status(Status::SUCCESS, &cache))
            }
            other => Err(Refusal::server(format!(
                "internal: {} routed to the stream handler",
                other.opcode()
            ))),
        }
    }

    /// A streamed put: version 0 is a put, below 0 put-if-absent, above 0 replace-if-unmodified;
    /// answered exactly as those operations are.
    fn versioned_put(
        &self,
        h: &RequestHeader,
        cache: &ironrod_engine::Cache,
        key: &[u8],
        value: &[u8],
        version: i64,
        options: &WriteOptions,
    ) -> Result<(Status, ResponseBody), Refusal> {
        let force = h.flags.contains(Flags::FORCE_RETURN_VALUE);
        let answer = |plain: Status, with: Status, prev: Option<&Versioned>| {
            write_answer(force, plain, with, prev)
        };
        Ok(match version {
            0 => {
                let prev = cache.put(key, value, options).map_err(engine_refusal)?;
                answer(
                    Status::SUCCESS,
                    Status::SUCCESS_WITH_PREVIOUS,
                    prev.as_ref(),
                )
            }
            v if v < 0 => match cache
                .put_if_absent(key, value, options)
                .map_err(engine_refusal)?
            {
                PutIfAbsent::Stored => (Status::SUCCESS, ResponseBody::Empty),
                PutIfAbsent::Existing(cur) => answer(
                    Status::NOT_EXECUTED,
                    Status::NOT_EXECUTED_WITH_PREVIOUS,
                    Some(&cur),
                ),
            },
            v => match cache
                .replace_if_unmodified(key, v.unsigned_abs(), value, options)
                .map_err(engine_refusal)?
            {
                ReplaceIfUnmodified::NotFound => (Status::KEY_DOES_NOT_EXIST, ResponseBody::Empty),
                ReplaceIfUnmodified::VersionMismatch { current } => answer(
                    Status::NOT_EXECUTED,
                    Status::NOT_EXECUTED_WITH_PREVIOUS,
                    Some(&current),
                ),
                ReplaceIfUnmodified::Replaced { previous } => answer(
                    Status::SUCCESS,
                    Status::SUCCESS_WITH_PREVIOUS,
                    Some(&previous),
                ),
            },
        })
    }
}

fn next_chunk(stream: &mut GetStream) -> (Bytes, bool) {
    let end = (stream.offset + stream.chunk).min(stream.value.len());
    let data = stream.value.slice(stream.offset..end);
    stream.offset = end;
    (data, end >= stream.value.len())
}

/// An unknown stream id: the reference raises a StreamCorruptedException, an IOException, which
/// it answers as a parse error.
fn unknown_stream(id: i32) -> Refusal {
    Refusal::new(
        Status::PARSE_ERROR,
        format!("java.io.StreamCorruptedException: Stream {id} is not present on the server"),
    )
}
