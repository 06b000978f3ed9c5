//! RESP2: `GET key` and `SET key value` as arrays of bulk strings; answers `+OK`, `$n` bulk
//! strings and `$-1` nil. An error answer (`-ERR …`) or any other type is a protocol error.

use anyhow::{bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};

use crate::client::{Outcome, Reply, Wire};

/// Longest answer line (before its CRLF) accepted before the stream is declared broken.
const MAX_LINE: usize = 64 * 1024;

/// RESP has no message ids; answers come in request order.
#[derive(Debug, Default)]
pub struct RespWire {
    /// `$<len>\r\n` of the last key and value lengths, which stay the same in a run.
    key_len: Option<(usize, Vec<u8>)>,
    value_len: Option<(usize, Vec<u8>)>,
}

fn bulk_header(cache: &mut Option<(usize, Vec<u8>)>, len: usize) -> &[u8] {
    if !matches!(cache, Some((l, _)) if *l == len) {
        *cache = Some((len, format!("${len}\r\n").into_bytes()));
    }
    match cache {
        Some((_, h)) => h,
        None => b"",
    }
}

impl RespWire {
    pub fn new() -> RespWire {
        RespWire::default()
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl Wire for RespWire {
    fn get(&mut self, _id: u64, key: &Bytes, out: &mut BytesMut) -> Result<()> {
        out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
        out.extend_from_slice(bulk_header(&mut self.key_len, key.len()));
        out.extend_from_slice(key);
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    fn put(&mut self, _id: u64, key: &Bytes, value: &Bytes, out: &mut BytesMut) -> Result<()> {
        out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
        out.extend_from_slice(bulk_header(&mut self.key_len, key.len()));
        out.extend_from_slice(key);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(bulk_header(&mut self.value_len, value.len()));
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    fn reply(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>> {
        let Some(&kind) = buf.first() else {
            return Ok(None);
        };
        let rest = buf.get(1..).unwrap_or_default();
        let Some(eol) = find_crlf(rest) else {
            if rest.len() > MAX_LINE {
                bail!("RESP answer line longer than {MAX_LINE} bytes");
            }
            return Ok(None);
        };
        let line = rest.get(..eol).unwrap_or_default();
        let header_len = 1 + eol + 2;
        let outcome = match kind {
            b'+' => {
                if line != b"OK" {
                    bail!("unexpected status {:?}", String::from_utf8_lossy(line));
                }
                buf.advance(header_len);
                Outcome::Stored
            }
            b'-' => bail!("server error: {}", String::from_utf8_lossy(line)),
            b'$' => {
                let n: i64 = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .with_context(|| {
                        format!("bad bulk length {:?}", String::from_utf8_lossy(line))
                    })?;
                if n < 0 {
                    buf.advance(header_len);
                    Outcome::Miss
                } else {
                    let n = usize::try_from(n).context("bulk length out of range")?;
                    let total = header_len + n + 2;
                    if buf.len() < total {
                        buf.reserve(total - buf.len());
                        return Ok(None);
                    }
                    if buf.get(total - 2..total) != Some(b"\r\n".as_slice()) {
                        bail!("bulk string of {n} bytes not ended by CRLF");
                    }
                    buf.advance(total);
                    Outcome::Value(n)
                }
            }
            other => bail!("unexpected RESP answer type {:?}", char::from(other)),
        };
        Ok(Some(Reply { id: None, outcome }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode() {
        let mut w = RespWire::new();
        let mut out = BytesMut::new();
        w.get(0, &Bytes::from_static(b"ab"), &mut out).unwrap();
        w.put(
            0,
            &Bytes::from_static(b"ab"),
            &Bytes::from_static(b"xyz"),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            &out[..],
            b"*2\r\n$3\r\nGET\r\n$2\r\nab\r\n*3\r\n$3\r\nSET\r\n$2\r\nab\r\n$3\r\nxyz\r\n"
        );
    }

    #[test]
    fn answers_parse_incrementally() {
        let mut w = RespWire::new();
        let mut buf = BytesMut::from(&b"+OK\r\n$-1\r\n$3\r\nab"[..]);
        assert_eq!(w.reply(&mut buf).unwrap().unwrap().outcome, Outcome::Stored);
        assert_eq!(w.reply(&mut buf).unwrap().unwrap().outcome, Outcome::Miss);
        assert!(w.reply(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"c\r\n");
        assert_eq!(
            w.reply(&mut buf).unwrap().unwrap().outcome,
            Outcome::Value(3)
        );
        assert!(buf.is_empty());
        let mut err = BytesMut::from(&b"-ERR nope\r\n"[..]);
        assert!(w.reply(&mut err).is_err());
    }
}
