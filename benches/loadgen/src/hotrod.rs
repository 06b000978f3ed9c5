//! Hot Rod over the codec's client side.

use anyhow::{bail, Result};
use bytes::{Bytes, BytesMut};
use ironrod_codec::{
    ClientCodec, Expiration, Limits, Op, OpCode, Request, RequestHeader, Response, ResponseBody,
    ServerMessage, Status, Version,
};
use tokio_util::codec::{Decoder, Encoder};

use crate::client::{Outcome, Reply, Wire};

/// One connection's Hot Rod state: the codec (which remembers each request in flight so its
/// answer can be parsed) and a request reused for every send.
pub struct HotRodWire {
    codec: ClientCodec,
    req: Request,
    expiration: Expiration,
}

impl HotRodWire {
    pub fn new(version: Version, cache: &str) -> HotRodWire {
        HotRodWire {
            codec: ClientCodec::new(Limits::DEFAULT),
            req: Request {
                header: RequestHeader::new(0, version, cache),
                op: Op::Ping,
            },
            // 2.0 and 2.1 carry whole seconds, where 0 is "immortal"; later versions carry "the
            // cache's default" (immortal too for the caches measured here).
            expiration: if version < Version::V2_2 {
                Expiration::Seconds {
                    lifespan: 0,
                    max_idle: 0,
                }
            } else {
                Expiration::DEFAULT
            },
        }
    }

    fn send(&mut self, id: u64, op: Op, out: &mut BytesMut) -> Result<()> {
        self.req.header.message_id = id;
        self.req.op = op;
        Encoder::<&Request>::encode(&mut self.codec, &self.req, out)?;
        Ok(())
    }
}

/// What a response means for a GET or a PUT; anything else is a protocol error.
pub fn outcome(r: &Response) -> Result<Outcome> {
    if r.opcode == OpCode::ERROR || r.status.is_error() {
        let text = match &r.body {
            ResponseBody::Error(t) => t.as_str(),
            _ => "",
        };
        bail!(
            "message {}: server error {} ({:?}): {text}",
            r.message_id,
            r.status,
            r.opcode
        );
    }
    match (r.opcode, r.status, &r.body) {
        (OpCode::GET_RESPONSE, Status::SUCCESS, ResponseBody::Value(v)) => {
            Ok(Outcome::Value(v.len()))
        }
        (OpCode::GET_RESPONSE, Status::KEY_DOES_NOT_EXIST, _) => Ok(Outcome::Miss),
        (OpCode::PUT_RESPONSE, s, _) if s.is_success() => Ok(Outcome::Stored),
        (op, status, _) => bail!(
            "message {}: unexpected answer {op:?} with status {status}",
            r.message_id
        ),
    }
}

impl Wire for HotRodWire {
    fn get(&mut self, id: u64, key: &Bytes, out: &mut BytesMut) -> Result<()> {
        self.send(id, Op::Get { key: key.clone() }, out)
    }

    fn put(&mut self, id: u64, key: &Bytes, value: &Bytes, out: &mut BytesMut) -> Result<()> {
        self.send(
            id,
            Op::Put {
                key: key.clone(),
                expiration: self.expiration,
                value: value.clone(),
            },
            out,
        )
    }

    fn reply(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>> {
        match self.codec.decode(buf)? {
            None => Ok(None),
            Some(ServerMessage::Response(r)) => Ok(Some(Reply {
                id: Some(r.message_id),
                outcome: outcome(&r)?,
            })),
            Some(other) => bail!("unexpected event frame for message {}", other.message_id()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_put_answers_parse() {
        let mut wire = HotRodWire::new(Version::V4_0, "default");
        let mut out = BytesMut::new();
        wire.get(1, &Bytes::from_static(b"k"), &mut out).unwrap();
        wire.put(
            2,
            &Bytes::from_static(b"k"),
            &Bytes::from_static(b"v"),
            &mut out,
        )
        .unwrap();
        let mut answers = BytesMut::new();
        Response {
            message_id: 1,
            version: Version::V4_0,
            opcode: OpCode::GET_RESPONSE,
            status: Status::SUCCESS,
            topology: None,
            body: ResponseBody::Value(Bytes::from_static(b"vv")),
        }
        .encode(&mut answers);
        Response::status_only(2, Version::V4_0, OpCode::PUT, Status::SUCCESS).encode(&mut answers);
        let a = wire.reply(&mut answers).unwrap().unwrap();
        assert_eq!(a.id, Some(1));
        assert_eq!(a.outcome, Outcome::Value(2));
        let b = wire.reply(&mut answers).unwrap().unwrap();
        assert_eq!(b.outcome, Outcome::Stored);
        assert!(wire.reply(&mut answers).unwrap().is_none());
    }

    #[test]
    fn error_frames_fail() {
        let mut wire = HotRodWire::new(Version::V4_0, "default");
        let mut out = BytesMut::new();
        wire.get(1, &Bytes::from_static(b"k"), &mut out).unwrap();
        let mut answers = BytesMut::new();
        Response::error(1, Version::V4_0, Status::SERVER_ERROR, "boom").encode(&mut answers);
        assert!(wire.reply(&mut answers).is_err());
    }
}
