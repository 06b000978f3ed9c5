//! The topology-change payload of response headers.

use bytes::{BufMut, BytesMut};

use crate::limits::Limits;
use crate::wire::{len32, Reader, Result, WireWrite};

/// A server address as clients should dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    pub host: String,
    pub port: u16,
}

/// The segment table sent to hash-distribution-aware (intelligence 3) clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentTable {
    /// 3 for every 2.x+ server; 0 means no owners follow.
    pub hash_function: u8,
    pub num_segments: u32,
    /// Owners per segment, as indexes into the server list; empty when `hash_function` is 0.
    pub owners: Vec<Vec<u32>>,
}

/// A new topology for the client: an id, the servers, and for intelligence 3 the segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Clients reserve -1 and -2 for themselves, so a server never sends those.
    pub id: i32,
    pub servers: Vec<ServerAddress>,
    /// Present exactly when the request's intelligence was 3.
    pub segments: Option<SegmentTable>,
}

impl Topology {
    pub(crate) fn decode(r: &mut Reader<'_>, hash_aware: bool, limits: &Limits) -> Result<Self> {
        let id = r.vint("topology id")? as i32;
        let n = r.count("server count", limits.max_entries)?;
        let mut servers = Vec::new();
        for _ in 0..n {
            servers.push(ServerAddress {
                host: r.string("server host", limits.max_string_len)?,
                port: r.u16()?,
            });
        }
        let segments = if hash_aware {
            let hash_function = r.u8()?;
            let num_segments = r.vint("segment count")?;
            let mut owners = Vec::new();
            if hash_function != 0 {
                let count = super::wire::Reader::count_of(num_segments, "segment count", limits)?;
                for _ in 0..count {
                    let k = r.u8()?;
                    let mut seg = Vec::new();
                    for _ in 0..k {
                        seg.push(r.vint("segment owner")?);
                    }
                    owners.push(seg);
                }
            }
            Some(SegmentTable {
                hash_function,
                num_segments,
                owners,
            })
        } else {
            None
        };
        Ok(Topology {
            id,
            servers,
            segments,
        })
    }

    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_vint(self.id as u32);
        dst.put_vint(len32(self.servers.len()));
        for s in &self.servers {
            dst.put_string(&s.host);
            dst.put_u16(s.port);
        }
        if let Some(seg) = &self.segments {
            dst.put_u8(seg.hash_function);
            dst.put_vint(seg.num_segments);
            if seg.hash_function != 0 {
                for owners in &seg.owners {
                    dst.put_u8(u8::try_from(owners.len()).unwrap_or(u8::MAX));
                    for o in owners.iter().take(usize::from(u8::MAX)) {
                        dst.put_vint(*o);
                    }
                }
            }
        }
    }
}
