//! Keys, values and the random choices of the workload.

use anyhow::{bail, Result};
use bytes::Bytes;

/// Key `i`: its decimal digits left-padded with zeros to exactly `size` bytes, so every key of a
/// run has the same length and distinct indices give distinct keys.
pub fn key(i: u64, size: usize) -> Result<Bytes> {
    let digits = i.to_string();
    if digits.len() > size {
        bail!("key {i} does not fit in {size} bytes");
    }
    Ok(Bytes::from(format!("{digits:0>size$}")))
}

/// Every key of `0..count`.
pub fn key_space(count: u64, size: usize) -> Result<Vec<Bytes>> {
    if count == 0 {
        bail!("the key space is empty");
    }
    (0..count).map(|i| key(i, size)).collect()
}

/// A value of `size` bytes (printable, so a text-oriented server shows it sensibly).
pub fn value(size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// xorshift64*: cheap, good enough for picking keys and operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Splitmix the seed so nearby seeds give unrelated streams, and never zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width_and_distinct() {
        assert_eq!(
            key(42, 16).unwrap(),
            Bytes::from_static(b"0000000000000042")
        );
        assert_eq!(key(999_999, 6).unwrap().len(), 6);
        assert!(key(1_000_000, 6).is_err());
    }

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng::new(7);
        for _ in 0..10_000 {
            assert!(r.below(10) < 10);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
