//! Primitive encodings: fixed-width big-endian integers, vInt/vLong, signed vInt, byte arrays
//! and strings.
//!
//! The [`Reader`] is a cursor over a borrowed buffer, in the manner of rustls' `Reader`: it never
//! panics, reports "incomplete" with the buffer length it needs, and checks every declared length
//! against a bound before touching the bytes. Byte fields are copied out only once they are
//! entirely in the buffer, so a declared length never causes an allocation by itself.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Problem};

pub(crate) type Result<T> = std::result::Result<T, DecodeError>;

/// A cursor over a buffer that holds one or more frames (or a prefix of one).
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// When the buffer is a [`Bytes`], byte fields are slices of it instead of copies.
    shared: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            shared: None,
        }
    }

    /// A reader whose byte fields share `buf`'s memory (a reference count, no copy).
    pub(crate) fn shared(buf: &'a Bytes) -> Self {
        Reader {
            buf,
            pos: 0,
            shared: Some(buf),
        }
    }

    /// The next `n` bytes as a [`Bytes`]: a slice of the shared buffer, or a copy.
    pub(crate) fn take_bytes(&mut self, n: usize) -> Result<Bytes> {
        let start = self.pos;
        let raw = self.take(n)?;
        Ok(match self.shared {
            Some(all) => all.slice(start..self.pos),
            None => Bytes::copy_from_slice(raw),
        })
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn incomplete(&self, extra: usize) -> DecodeError {
        DecodeError::Incomplete {
            needed: self.pos.checked_add(extra),
        }
    }

    /// The next byte, if there is one, without consuming it.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Consumes `n` bytes already seen with [`Reader::peek`].
    pub(crate) fn skip(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(self.incomplete(n))?;
        let out = self.buf.get(self.pos..end).ok_or(self.incomplete(n))?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    /// A boolean: any non-zero byte is true, as the reference reads it.
    pub(crate) fn bool(&mut self) -> Result<bool> {
        Ok(self.u8()? != 0)
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// An unsigned LEB128 integer of at most 5 bytes holding 32 bits.
    ///
    /// Inlined with a one-byte fast path: a request header and body are mostly small vInts
    /// (lengths, flags, counts), and the call showed in the per-request profile.
    #[inline]
    pub(crate) fn vint(&mut self, field: &'static str) -> Result<u32> {
        if let Some(b) = self.peek().filter(|b| b & 0x80 == 0) {
            self.pos += 1;
            return Ok(u32::from(b));
        }
        let v = self.varint(field, 5)?;
        u32::try_from(v).map_err(|_| malformed(field, Problem::VarIntTooLong))
    }

    /// An unsigned LEB128 integer of at most 10 bytes holding 64 bits.
    pub(crate) fn vlong(&mut self, field: &'static str) -> Result<u64> {
        self.varint(field, 10)
    }

    /// A zig-zag encoded signed vInt.
    pub(crate) fn svint(&mut self, field: &'static str) -> Result<i32> {
        let v = self.vint(field)?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    fn varint(&mut self, field: &'static str, max_bytes: u32) -> Result<u64> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let b = self.u8()?;
            let shift = 7 * i;
            let bits = u64::from(b & 0x7F);
            // The last permitted byte may only carry the bits that fit the type.
            if i == max_bytes - 1 && (b & 0x80 != 0 || (bits << shift) >> shift != bits) {
                return Err(malformed(field, Problem::VarIntTooLong));
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed(field, Problem::VarIntTooLong))
    }

    /// A vInt length or count, checked against `limit`.
    #[inline]
    pub(crate) fn count(&mut self, field: &'static str, limit: usize) -> Result<usize> {
        let n = self.vint(field)?;
        check(field, u64::from(n), limit)
    }

    /// A one-byte count, checked against `limit`.
    pub(crate) fn u8_count(&mut self, field: &'static str, limit: usize) -> Result<usize> {
        let n = self.u8()?;
        check(field, u64::from(n), limit)
    }

    /// A vInt-length-prefixed byte array.
    pub(crate) fn bytes(&mut self, field: &'static str, limit: usize) -> Result<Bytes> {
        let n = self.count(field, limit)?;
        self.take_bytes(n)
    }

    /// A vInt-length-prefixed UTF-8 string.
    pub(crate) fn string(&mut self, field: &'static str, limit: usize) -> Result<String> {
        let n = self.count(field, limit)?;
        let raw = self.take(n)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| malformed(field, Problem::InvalidUtf8))
    }

    /// A byte array whose signed vInt length is -1 when absent.
    pub(crate) fn opt_bytes(&mut self, field: &'static str, limit: usize) -> Result<Option<Bytes>> {
        let n = self.svint(field)?;
        if n == -1 {
            return Ok(None);
        }
        let n =
            usize::try_from(n).map_err(|_| malformed(field, Problem::NegativeLength(n.into())))?;
        check(field, n as u64, limit)?;
        Ok(Some(self.take_bytes(n)?))
    }

    /// A string whose signed vInt length is -1 when absent.
    pub(crate) fn opt_string(
        &mut self,
        field: &'static str,
        limit: usize,
    ) -> Result<Option<String>> {
        match self.opt_bytes(field, limit)? {
            None => Ok(None),
            Some(b) => String::from_utf8(b.to_vec())
                .map(Some)
                .map_err(|_| malformed(field, Problem::InvalidUtf8)),
        }
    }
}

pub(crate) fn malformed(field: &'static str, problem: Problem) -> DecodeError {
    DecodeError::Malformed {
        message_id: None,
        version: None,
        opcode: None,
        field,
        problem,
    }
}

fn check(field: &'static str, declared: u64, limit: usize) -> Result<usize> {
    match usize::try_from(declared) {
        Ok(n) if n <= limit => Ok(n),
        _ => Err(DecodeError::TooLarge {
            message_id: None,
            version: None,
            opcode: None,
            field,
            declared,
            limit,
        }),
    }
}

/// Writers for the primitive encodings.
pub(crate) trait WireWrite {
    fn put_vint(&mut self, v: u32);
    fn put_vlong(&mut self, v: u64);
    fn put_svint(&mut self, v: i32);
    fn put_bool(&mut self, v: bool);
    /// A vInt length then the bytes.
    fn put_array(&mut self, b: &[u8]);
    fn put_string(&mut self, s: &str);
    fn put_opt_array(&mut self, b: Option<&[u8]>);
}

/// A few bytes assembled on the stack and appended to a buffer in one copy.
///
/// `BytesMut` appends each byte through an out-of-line copy, which made a response head (five
/// or more single bytes and a vLong) cost more than the value after it. `N` must cover the
/// longest sequence a caller writes; bytes past it are dropped, so callers size it by the
/// fields' maximum encoded lengths.
#[derive(Debug)]
pub(crate) struct Scratch<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Scratch<N> {
    pub(crate) fn new() -> Self {
        Scratch {
            buf: [0; N],
            len: 0,
        }
    }

    pub(crate) fn u8(&mut self, b: u8) {
        debug_assert!(self.len < N, "scratch of {N} bytes overflowed");
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    pub(crate) fn vlong(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.u8((v as u8 & 0x7F) | 0x80);
            v >>= 7;
        }
        self.u8(v as u8);
    }

    pub(crate) fn vint(&mut self, v: u32) {
        self.vlong(u64::from(v));
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl WireWrite for BytesMut {
    fn put_vint(&mut self, v: u32) {
        self.put_vlong(u64::from(v));
    }

    fn put_vlong(&mut self, v: u64) {
        let mut s = Scratch::<10>::new();
        s.vlong(v);
        self.extend_from_slice(s.as_slice());
    }

    fn put_svint(&mut self, v: i32) {
        self.put_vint(((v << 1) ^ (v >> 31)) as u32);
    }

    fn put_bool(&mut self, v: bool) {
        self.put_u8(u8::from(v));
    }

    fn put_array(&mut self, b: &[u8]) {
        let mut s = Scratch::<5>::new();
        s.vint(len32(b.len()));
        self.reserve(s.as_slice().len() + b.len());
        self.extend_from_slice(s.as_slice());
        self.extend_from_slice(b);
    }

    fn put_string(&mut self, s: &str) {
        self.put_array(s.as_bytes());
    }

    fn put_opt_array(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.put_svint(-1),
            Some(b) => {
                self.put_svint(i32::try_from(b.len()).unwrap_or(i32::MAX));
                self.put_slice(b);
            }
        }
    }
}

/// Lengths on the wire are 32-bit; nothing this codec builds or decodes exceeds that (the
/// limits cap decoded lengths far below), so saturating is only a guard.
pub(crate) fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Reader<'_> {
    /// A count that was already read, checked against the entry limit.
    pub(crate) fn count_of(n: u32, field: &'static str, limits: &crate::Limits) -> Result<usize> {
        check(field, u64::from(n), limits.max_entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vint_bytes(v: u32) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_vint(v);
        b.to_vec()
    }

    #[test]
    fn worked_vints() {
        assert_eq!(vint_bytes(0), [0x00]);
        assert_eq!(vint_bytes(127), [0x7F]);
        assert_eq!(vint_bytes(128), [0x80, 0x01]);
        assert_eq!(vint_bytes(300), [0xAC, 0x02]);
        assert_eq!(vint_bytes(16384), [0x80, 0x80, 0x01]);
        assert_eq!(vint_bytes(30000), [0xB0, 0xEA, 0x01]);
        assert_eq!(vint_bytes(u32::MAX), [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
    }

    #[test]
    fn svint_zigzag() {
        for (v, wire) in [(-1, 0x01u8), (0, 0x00), (1, 0x02), (2, 0x04)] {
            let mut b = BytesMut::new();
            b.put_svint(v);
            assert_eq!(b.to_vec(), [wire]);
            assert_eq!(Reader::new(&[wire]).svint("x"), Ok(v));
        }
    }

    #[test]
    fn negative_vlong_takes_ten_bytes() {
        let mut b = BytesMut::new();
        b.put_vlong(u64::MAX);
        assert_eq!(b.len(), 10);
        assert_eq!(b.last(), Some(&0x01));
        assert_eq!(Reader::new(&b).vlong("x"), Ok(u64::MAX));
    }

    #[test]
    fn overlong_varints_are_malformed() {
        let six = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(matches!(
            Reader::new(&six).vint("x"),
            Err(DecodeError::Malformed {
                problem: Problem::VarIntTooLong,
                ..
            })
        ));
        // Fifth byte carrying more than 4 bits overflows 32 bits.
        let overflow = [0xFF, 0xFF, 0xFF, 0xFF, 0x1F];
        assert!(Reader::new(&overflow).vint("x").is_err());
        let eleven = [0xFF; 11];
        assert!(matches!(
            Reader::new(&eleven).vlong("x"),
            Err(DecodeError::Malformed { .. })
        ));
        let ten_overflow = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert!(Reader::new(&ten_overflow).vlong("x").is_err());
    }

    #[test]
    fn incomplete_reports_needed_length() {
        let mut r = Reader::new(&[0x05, b'a', b'b']);
        assert_eq!(
            r.bytes("key", 100),
            Err(DecodeError::Incomplete { needed: Some(6) })
        );
        assert_eq!(
            Reader::new(&[0x80]).vint("x"),
            Err(DecodeError::Incomplete { needed: Some(2) })
        );
    }

    #[test]
    fn declared_length_over_limit_is_refused_before_reading() {
        // Declares 2^31 bytes with nothing behind it: refused, nothing allocated.
        let mut r = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x08]);
        assert!(matches!(
            r.bytes("value", 1024),
            Err(DecodeError::TooLarge {
                declared: 2147483648,
                limit: 1024,
                ..
            })
        ));
    }

    #[test]
    fn optional_arrays() {
        let mut b = BytesMut::new();
        b.put_opt_array(None);
        b.put_opt_array(Some(b"xy"));
        let mut r = Reader::new(&b);
        assert_eq!(r.opt_bytes("a", 10), Ok(None));
        assert_eq!(r.opt_bytes("a", 10), Ok(Some(Bytes::from_static(b"xy"))));
        assert!(Reader::new(&[0x03]).opt_bytes("a", 10).is_err()); // -2
    }
}
