//! Infinispan's MurmurHash3: the hash that places a key in a segment.
//!
//! Infinispan clients route every keyed operation by this hash of the marshalled key bytes, and
//! the server places the key by the same hash, so Ironrod must reproduce it bit for bit
//! [src: infinispan/infinispan: commons/all/.../hash/MurmurHash3.java]. It is Infinispan's
//! 2010-era draft of MurmurHash3 x64, *not* the canonical algorithm:
//!
//! * h1 and h2 start from constants xored with the seed 9001;
//! * the multipliers c1 and c2 change after every 16-byte block;
//! * tail bytes are Java signed bytes, sign-extended to 64 bits before they are shifted, which
//!   changes the result for any tail byte ≥ 0x80;
//! * the 32-bit result is the upper half of h1.
//!
//! The shared research note (`clustering-durability-queries.md` §1.1) describes the algorithm;
//! `tests/data/murmur3_java.txt` holds vectors produced by the Java class itself.

/// The seed Infinispan passes to MurmurHash3 for `hash(byte[])`.
pub const SEED: u64 = 9001;

/// Infinispan's `MurmurHash3.hash(byte[])`: the 32-bit hash clients and servers use to place a
/// key, as a Java `int`.
pub fn hash(key: &[u8]) -> i32 {
    // Java: `(int) (MurmurHash3_x64_64(payload, 9001) >>> 32)`.
    (x64_64(key, SEED) >> 32) as u32 as i32
}

/// Infinispan's `MurmurHash3_x64_64(byte[], seed)`: the 64-bit h1 of the draft algorithm.
///
/// The engine uses the full 64 bits for its own hash tables, so one pass over the key yields both
/// the segment and the table hash.
pub fn x64_64(key: &[u8], seed: u64) -> u64 {
    let mut state = State {
        h1: 0x9368_e53c_2f6a_f274 ^ seed,
        h2: 0x586d_cd20_8f7c_d3fd ^ seed,
        c1: 0x87c3_7b91_1142_53d5,
        c2: 0x4cf5_ad43_2745_937f,
    };
    let mut blocks = key.chunks_exact(16);
    for block in blocks.by_ref() {
        let (lo, hi) = block.split_at(8);
        state.mix(le_u64(lo), le_u64(hi));
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let (mut k1, mut k2) = (0u64, 0u64);
        for (i, &b) in tail.iter().enumerate() {
            // Java reads `byte`, which is signed: sign-extend before shifting.
            let widened = b as i8 as i64 as u64;
            let shift = 8 * (i % 8) as u32;
            if i < 8 {
                k1 ^= widened << shift;
            } else {
                k2 ^= widened << shift;
            }
        }
        state.mix(k1, k2);
    }
    state.h2 ^= key.len() as u64;
    state.h1 = state.h1.wrapping_add(state.h2);
    state.h2 = state.h2.wrapping_add(state.h1);
    state.h1 = fmix(state.h1);
    state.h2 = fmix(state.h2);
    state.h1.wrapping_add(state.h2)
}

/// The running state of the draft algorithm (Java `MurmurHash3.State`).
struct State {
    h1: u64,
    h2: u64,
    c1: u64,
    c2: u64,
}

impl State {
    /// Java `bmix64`: mixes one block and advances the per-block multipliers.
    fn mix(&mut self, k1: u64, k2: u64) {
        let k1 = k1
            .wrapping_mul(self.c1)
            .rotate_left(23)
            .wrapping_mul(self.c2);
        self.h1 ^= k1;
        self.h1 = self.h1.wrapping_add(self.h2);
        self.h2 = self.h2.rotate_left(41);
        let k2 = k2
            .wrapping_mul(self.c2)
            .rotate_left(23)
            .wrapping_mul(self.c1);
        self.h2 ^= k2;
        self.h2 = self.h2.wrapping_add(self.h1);
        self.h1 = self.h1.wrapping_mul(3).wrapping_add(0x52dc_e729);
        self.h2 = self.h2.wrapping_mul(3).wrapping_add(0x3849_5ab5);
        self.c1 = self.c1.wrapping_mul(5).wrapping_add(0x7b7d_159c);
        self.c2 = self.c2.wrapping_mul(5).wrapping_add(0x6bce_6396);
    }
}

/// Standard MurmurHash3 finaliser.
fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Little-endian u64 from an 8-byte slice (the caller passes exactly 8 bytes).
fn le_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    for (dst, src) in buf.iter_mut().zip(bytes) {
        *dst = *src;
    }
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The table of §1.1 of the shared research note: hex key, x64_64, int, segment of 256.
    const NOTE_VECTORS: &[(&str, u64, i32, u32)] = &[
        ("", 0x054ff222ebaafefc, 89125410, 10),
        ("61", 0xbd49b31c9b40b607, -1119243492, 122),
        ("616263", 0x6bde877cd0add655, 1809745788, 215),
        (
            "68656c6c6f20776f726c64",
            0x9f871b89d5ab2567,
            -1618535543,
            63,
        ),
        (
            "30313233343536373839616263646566",
            0x019a6fd32c091514,
            26898387,
            3,
        ),
        (
            "3031323334353637383961626364656630",
            0x8fa8f76bb6ccdd8d,
            -1884752021,
            31,
        ),
        ("80", 0x93c138d42954fcd5, -1816053548, 39),
        ("fffe808190a0b0", 0x70b85182d63f7550, 1891127682, 225),
        (
            "f0f1f2f3f4f5f6f7f8f9fafbfcfdfe",
            0x0e4074baf47fd7b5,
            239105210,
            28,
        ),
        (
            "808182838485868788898a8b8c8d8e8f",
            0x851a5599ab7c3bb1,
            -2061871719,
            10,
        ),
        (
            "00112233445566778899aabbccddeeff10",
            0xcaa2c1d4f05bc5eb,
            -895303212,
            149,
        ),
        ("0a03666f6f", 0x1dda1e1e11013386, 500833822, 59),
    ];

    #[test]
    fn matches_the_research_note_vectors() {
        let segments = crate::Segments::new(256).unwrap();
        for &(key, x64, int, segment) in NOTE_VECTORS {
            let key = unhex(key);
            assert_eq!(x64_64(&key, SEED), x64, "x64_64 of {key:02x?}");
            assert_eq!(hash(&key), int, "hash of {key:02x?}");
            assert_eq!(segments.of(&key), segment, "segment of {key:02x?}");
        }
    }

    #[test]
    fn tail_bytes_are_sign_extended() {
        // A port that widens tail bytes as unsigned gets these wrong (§1.1 of the note).
        assert_eq!(hash(&[0x80]), -1816053548);
        assert_eq!(hash(&unhex("fffe808190a0b0")), 1891127682);
    }

    #[test]
    fn le_u64_reads_little_endian() {
        assert_eq!(le_u64(&[1, 0, 0, 0, 0, 0, 0, 0x80]), 0x8000_0000_0000_0001);
    }
}
