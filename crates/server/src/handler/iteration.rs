//! ITERATION_START / NEXT / END.

use bytes::Bytes;
use ironrod_codec::{
    IterationBatch, IterationEntry, Op, RequestHeader, ResponseBody, Status, Version,
};

use super::{convert, engine_refusal, Outcome, Reply};
use crate::errors::Refusal;
use crate::iterations::OpenIteration;
use crate::state::State;

/// The converter the Java client's key-only iteration (and remote stores) ask for: entries come
/// back with empty values.
pub const KEY_ONLY_CONVERTER: &str =
    "org.infinispan.server.hotrod.HotRodServer$ToEmptyBytesKeyValueFilterConverter";

/// The largest batch a client may ask for; larger requests get this many.
const MAX_BATCH: usize = 10_000;

impl State {
    pub(super) fn iteration_op(&self, h: &RequestHeader, op: Op) -> Outcome {
        let cache = self.cache(h)?;
        match op {
            Op::IterationStart {
                segments,
                filter,
                batch_size,
                include_metadata,
            } => {
                let keys_only = match &filter {
                    None => false,
                    Some(f) if f.name == KEY_ONLY_CONVERTER => true,
                    Some(f) => {
                        return Err(Refusal::server(format!(
                            "java.lang.IllegalStateException: ISPN005060: Factory '{}' not found in server",
                            f.name
                        )))
                    }
                };
                let chosen = segments.as_deref().map(segments_of_bitset);
                let cursor = cache.iterate(chosen.as_deref()).map_err(engine_refusal)?;
                let batch = (batch_size as usize).clamp(1, MAX_BATCH);
                let mut it =
                    OpenIteration::new(cache.clone(), cursor, batch, include_metadata, keys_only);
                if !same_key_type(h, cache.media_type()) {
                    it.defer_finished = Some(Vec::new());
                }
                let id = self.iterations.open(it).ok_or_else(|| {
                    Refusal::server(format!(
                        "org.infinispan.commons.CacheException: too many open iterations (the limit is {})",
                        self.config.max_iterations
                    ))
                })?;
                Ok(Reply::with(
                    Status::SUCCESS,
                    ResponseBody::IterationId(id),
                    &cache,
                ))
            }
            Op::IterationNext { iteration_id } => {
                let Some(mut it) = self.iterations.take(&iteration_id) else {
                    let empty = IterationBatch {
                        finished_segments: Bytes::new(),
                        projections: 1,
                        entries: Vec::new(),
                    };
                    return Ok(Reply::with(
                        Status::INVALID_ITERATION,
                        ResponseBody::IterationBatch(empty),
                        &cache,
                    ));
                };
                let entries = it.cache.next_batch(&mut it.cursor, it.batch_size);
                let mut finished = it.cursor.take_finished();
                if let Some(held) = &mut it.defer_finished {
                    held.append(&mut finished);
                    if it.cursor.is_finished() {
                        finished = std::mem::take(held);
                    }
                }
                let finished = bitset_of_segments(&finished);
                let with_meta = it.include_metadata && h.version >= Version::V2_5;
                let entries = entries
                    .into_iter()
                    .map(|e| IterationEntry {
                        metadata: with_meta.then(|| convert::metadata(&e.metadata)),
                        key: e.key,
                        values: vec![if it.keys_only { Bytes::new() } else { e.value }],
                    })
                    .collect();
                self.iterations.put_back(iteration_id, it);
                let batch = IterationBatch {
                    finished_segments: finished,
                    projections: 1,
                    entries,
                };
                Ok(Reply::with(
                    Status::SUCCESS,
                    ResponseBody::IterationBatch(batch),
                    &cache,
                ))
            }
            Op::IterationEnd { iteration_id } => {
                let status = if self.iterations.close(&iteration_id) {
                    Status::SUCCESS
                } else {
                    Status::INVALID_ITERATION
                };
                Ok(Reply::status(status, &cache))
            }
            other => Err(Refusal::server(format!(
                "internal: {} routed to the iteration handler",
                other.opcode()
            ))),
        }
    }
}

/// Whether the client's keys are in the cache's storage type, so that it hashes them to the same
/// segments as the server.
///
/// Ironrod stores keys as sent and never transcodes (protocol-spec/compatibility.md C19). A
/// hash-aware Java client hashes each key converted to the storage type the server reported; when
/// its own key type differs, its segments and the server's disagree, and a segment reported
/// finished may still deliver keys the client places in it, which the client rejects. Such
/// iterations report every finished segment at the end instead, after the last entry.
fn same_key_type(h: &RequestHeader, storage: &str) -> bool {
    h.key_type
        .name()
        .is_none_or(|name| name.eq_ignore_ascii_case(storage))
}

/// The segments set in a `java.util.BitSet` byte array (byte i holds segments 8i..8i+7, lowest
/// bit first).
pub fn segments_of_bitset(bits: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, byte) in bits.iter().enumerate() {
        for bit in 0..8u32 {
            if byte & (1 << bit) != 0 {
                out.push(i as u32 * 8 + bit);
            }
        }
    }
    out
}

/// The `java.util.BitSet` byte array of a set of segments (no trailing zero bytes, as
/// `BitSet.toByteArray` writes it).
pub fn bitset_of_segments(segments: &[u32]) -> Bytes {
    let Some(max) = segments.iter().max() else {
        return Bytes::new();
    };
    let mut bytes = vec![0u8; *max as usize / 8 + 1];
    for s in segments {
        if let Some(b) = bytes.get_mut(*s as usize / 8) {
            *b |= 1 << (s % 8);
        }
    }
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitsets_match_the_java_layout() {
        // Segments {1,3,12,13} are 0A 30.
        assert_eq!(segments_of_bitset(&[0x0A, 0x30]), vec![1, 3, 12, 13]);
        assert_eq!(bitset_of_segments(&[1, 3, 12, 13]).as_ref(), &[0x0A, 0x30]);
        assert!(bitset_of_segments(&[]).is_empty());
        assert_eq!(bitset_of_segments(&[255]).len(), 32);
    }
}
