//! Hot Rod GETs and PUTs, written and read straight from bytes.
//!
//! Requests are the codec's own encoding (a template made once with `Request::encode`) with only
//! the message id, key and value filled in per request, and answers are checked field by field
//! without building a `Response`: the load generator must cost as little per request as its
//! RESP side does, or Hot Rod servers would be measured against a slower client than Redis is.

use anyhow::{bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use ironrod_codec::{Expiration, Op, OpCode, Request, RequestHeader, Status, Version};

use crate::client::{Outcome, Reply, Wire};

/// One connection's Hot Rod templates.
pub struct HotRodWire {
    /// The header after the message id (version, opcode, cache, flags, …) of a GET and a PUT.
    get_header: Vec<u8>,
    put_header: Vec<u8>,
    /// A PUT's expiration bytes, between its key and its value.
    expiration: Vec<u8>,
}

impl HotRodWire {
    pub fn new(version: Version, cache: &str) -> HotRodWire {
        let expiration = immortal(version);
        let template = |op: Op| {
            let mut out = BytesMut::new();
            let req = Request {
                header: RequestHeader::new(0, version, cache),
                op,
            };
            // A request with empty fields encodes for every version the codec knows.
            let _ = req.encode(&mut out);
            out.to_vec()
        };
        // [magic][id 0][header][key length 0]
        let get = template(Op::Get { key: Bytes::new() });
        let header_len = get.len().saturating_sub(3);
        let get_header = get.get(2..2 + header_len).unwrap_or_default().to_vec();
        // [magic][id 0][header][key length 0][expiration][value length 0]
        let put = template(Op::Put {
            key: Bytes::new(),
            expiration,
            value: Bytes::new(),
        });
        let put_header = put.get(2..2 + header_len).unwrap_or_default().to_vec();
        let expiration = put
            .get(3 + header_len..put.len().saturating_sub(1))
            .unwrap_or_default()
            .to_vec();
        HotRodWire {
            get_header,
            put_header,
            expiration,
        }
    }
}

/// The expiration a PUT carries: 2.0 and 2.1 carry whole seconds, where 0 is "immortal"; later
/// versions carry "the cache's default" (immortal too for the caches measured here).
fn immortal(version: Version) -> Expiration {
    if version < Version::V2_2 {
        Expiration::Seconds {
            lifespan: 0,
            max_idle: 0,
        }
    } else {
        Expiration::DEFAULT
    }
}

/// A LEB128 number into a small stack buffer.
fn varint(mut v: u64, out: &mut [u8; 10]) -> &[u8] {
    let mut n = 0;
    for slot in out.iter_mut() {
        n += 1;
        if v < 0x80 {
            *slot = v as u8;
            break;
        }
        *slot = (v as u8 & 0x7F) | 0x80;
        v >>= 7;
    }
    out.get(..n).unwrap_or_default()
}

fn put_array(out: &mut BytesMut, bytes: &[u8]) {
    let mut len = [0u8; 10];
    out.extend_from_slice(varint(bytes.len() as u64, &mut len));
    out.extend_from_slice(bytes);
}

/// A cursor over a buffer that may end mid-answer: `None` means "not all there yet".
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn varint(&mut self) -> Option<Result<u64>> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Some(Ok(v));
            }
        }
        Some(Err(anyhow::anyhow!(
            "variable-length number longer than 10 bytes"
        )))
    }

    fn skip(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
}

/// Parses the answer at the front of `buf`: `Ok(None)` if it is not all there, else the answer
/// and its length.
fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>> {
    let mut c = Cursor { buf, pos: 0 };
    macro_rules! need {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return Ok(None),
            }
        };
    }
    let magic = need!(c.u8());
    if magic != 0xA1 {
        bail!("answer does not start with the response magic (0x{magic:02x})");
    }
    let id = need!(c.varint())?;
    let opcode = OpCode(need!(c.u8()));
    let status = Status(need!(c.u8()));
    if need!(c.u8()) != 0 {
        bail!("message {id}: unexpected topology update for a basic client");
    }
    let outcome = if opcode == OpCode::ERROR || status.is_error() {
        let n = usize::try_from(need!(c.varint())?).context("error text length")?;
        let text = need!(c.skip(n));
        bail!(
            "message {id}: server error {status} ({opcode:?}): {}",
            String::from_utf8_lossy(text)
        );
    } else if opcode == OpCode::GET_RESPONSE && status == Status::SUCCESS {
        let n = usize::try_from(need!(c.varint())?).context("value length")?;
        need!(c.skip(n));
        Outcome::Value(n)
    } else if opcode == OpCode::GET_RESPONSE && status == Status::KEY_DOES_NOT_EXIST {
        Outcome::Miss
    } else if opcode == OpCode::PUT_RESPONSE && status == Status::SUCCESS {
        Outcome::Stored
    } else {
        bail!("message {id}: unexpected answer {opcode:?} with status {status}");
    };
    Ok(Some((
        Reply {
            id: Some(id),
            outcome,
        },
        c.pos,
    )))
}

impl Wire for HotRodWire {
    fn get(&mut self, id: u64, key: &Bytes, out: &mut BytesMut) -> Result<()> {
        let mut idb = [0u8; 10];
        out.extend_from_slice(&[0xA0]);
        out.extend_from_slice(varint(id, &mut idb));
        out.extend_from_slice(&self.get_header);
        put_array(out, key);
        Ok(())
    }

    fn put(&mut self, id: u64, key: &Bytes, value: &Bytes, out: &mut BytesMut) -> Result<()> {
        let mut idb = [0u8; 10];
        out.extend_from_slice(&[0xA0]);
        out.extend_from_slice(varint(id, &mut idb));
        out.extend_from_slice(&self.put_header);
        put_array(out, key);
        out.extend_from_slice(&self.expiration);
        put_array(out, value);
        Ok(())
    }

    fn reply(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>> {
        Ok(parse(buf)?.map(|(reply, len)| {
            buf.advance(len);
            reply
        }))
    }
}

#[cfg(test)]
mod tests {
    use ironrod_codec::{Response, ResponseBody};

    use super::*;

    fn codec_bytes(version: Version, id: u64, op: Op) -> BytesMut {
        let mut out = BytesMut::new();
        Request {
            header: RequestHeader::new(id, version, "default"),
            op,
        }
        .encode(&mut out)
        .unwrap();
        out
    }

    #[test]
    fn requests_are_the_codec_s_bytes_at_every_version() {
        let key = Bytes::from_static(b"key-000000000042");
        let value = Bytes::from(vec![7u8; 1024]);
        for version in [
            Version::V2_0,
            Version::V2_2,
            Version::V2_8,
            Version::V3_1,
            Version::V4_0,
            Version::V4_1,
        ] {
            let mut wire = HotRodWire::new(version, "default");
            for id in [1u64, 127, 128, 1 << 40] {
                let mut ours = BytesMut::new();
                wire.get(id, &key, &mut ours).unwrap();
                assert_eq!(
                    ours,
                    codec_bytes(version, id, Op::Get { key: key.clone() }),
                    "GET {version:?} id {id}"
                );
                let expiration = immortal(version);
                let mut ours = BytesMut::new();
                wire.put(id, &key, &value, &mut ours).unwrap();
                assert_eq!(
                    ours,
                    codec_bytes(
                        version,
                        id,
                        Op::Put {
                            key: key.clone(),
                            expiration,
                            value: value.clone(),
                        }
                    ),
                    "PUT {version:?} id {id}"
                );
            }
        }
    }

    fn answers() -> BytesMut {
        let mut answers = BytesMut::new();
        Response {
            message_id: 300,
            version: Version::V4_0,
            opcode: OpCode::GET_RESPONSE,
            status: Status::SUCCESS,
            topology: None,
            body: ResponseBody::Value(Bytes::from(vec![1u8; 1024])),
        }
        .encode(&mut answers);
        Response::status_only(301, Version::V4_0, OpCode::PUT, Status::SUCCESS)
            .encode(&mut answers);
        Response::status_only(302, Version::V4_0, OpCode::GET, Status::KEY_DOES_NOT_EXIST)
            .encode(&mut answers);
        answers
    }

    #[test]
    fn get_and_put_answers_parse() {
        let mut wire = HotRodWire::new(Version::V4_0, "default");
        let mut buf = answers();
        let a = wire.reply(&mut buf).unwrap().unwrap();
        assert_eq!((a.id, a.outcome), (Some(300), Outcome::Value(1024)));
        let b = wire.reply(&mut buf).unwrap().unwrap();
        assert_eq!((b.id, b.outcome), (Some(301), Outcome::Stored));
        let c = wire.reply(&mut buf).unwrap().unwrap();
        assert_eq!((c.id, c.outcome), (Some(302), Outcome::Miss));
        assert!(wire.reply(&mut buf).unwrap().is_none());
        assert!(buf.is_empty());
    }

    #[test]
    fn answers_arriving_a_byte_at_a_time_parse_the_same() {
        let mut wire = HotRodWire::new(Version::V4_0, "default");
        let all = answers();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in all.iter() {
            buf.extend_from_slice(&[b]);
            while let Some(r) = wire.reply(&mut buf).unwrap() {
                got.push((r.id, r.outcome));
            }
        }
        assert_eq!(
            got,
            vec![
                (Some(300), Outcome::Value(1024)),
                (Some(301), Outcome::Stored),
                (Some(302), Outcome::Miss)
            ]
        );
    }

    #[test]
    fn error_frames_and_unexpected_answers_fail() {
        let mut wire = HotRodWire::new(Version::V4_0, "default");
        let mut buf = BytesMut::new();
        Response::error(1, Version::V4_0, Status::SERVER_ERROR, "boom").encode(&mut buf);
        let e = wire.reply(&mut buf).unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        let mut buf = BytesMut::new();
        Response::status_only(2, Version::V4_0, OpCode::REMOVE, Status::SUCCESS).encode(&mut buf);
        assert!(wire.reply(&mut buf).is_err());
        let mut buf = BytesMut::from(&[0x42u8][..]);
        assert!(wire.reply(&mut buf).is_err(), "bad magic");
    }
}
