//! Bounded big-endian reader and writer for bridge frames.
//!
//! The reader works on one complete frame body: running out of bytes inside it is a malformed
//! frame ([`DecodeError::Truncated`]), never "need more input" (framing already said how long the
//! body is). Every length read is checked against what is left before anything is allocated.

use super::DecodeError;

/// Cursor over one frame body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let b = self.take(1, what)?;
        Ok(b.first().copied().unwrap_or_default())
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        let mut a = [0u8; 2];
        a.copy_from_slice(b);
        Ok(u16::from_be_bytes(a))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_be_bytes(a))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A string with a one-byte length (site names).
    pub(crate) fn str8(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let n = usize::from(self.u8(what)?);
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::InvalidUtf8(what))
    }

    /// A string with a two-byte length (cache names, messages).
    pub(crate) fn str16(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let n = usize::from(self.u16(what)?);
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::InvalidUtf8(what))
    }

    /// Bytes with a four-byte length.
    pub(crate) fn bytes32(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32(what)? as usize;
        Ok(self.take(n, what)?.to_vec())
    }

    /// A count of items each at least `min_item` bytes long, checked against what is left so a
    /// forged count cannot make the decoder reserve memory.
    pub(crate) fn count(
        &mut self,
        min_item: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated(what));
        }
        Ok(n)
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}

/// Appends big-endian fields to a frame under construction.
pub(crate) struct Writer<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    /// Strings longer than the length field are cut at a character boundary (site names are
    /// validated to 64 bytes; cache names and messages are bounded by the server).
    pub(crate) fn str8(&mut self, s: &str) {
        let s = clip(s, usize::from(u8::MAX));
        self.u8(s.len() as u8);
        self.out.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn str16(&mut self, s: &str) {
        let s = clip(s, usize::from(u16::MAX));
        self.u16(s.len() as u16);
        self.out.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn bytes32(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.out
            .extend_from_slice(b.get(..u32::MAX as usize).unwrap_or(b));
    }
}

fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}
