//! Vectors produced by Infinispan's own `MurmurHash3` class (see the header of
//! `tests/data/murmur3_java.txt` and the generator `tests/data/Murmur3JavaVectors.java`).

use ironrod_engine::{murmur, Segments};

#[test]
fn matches_the_java_class() {
    let text = include_str!("data/murmur3_java.txt");
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.contains("infinispan-commons"), "{header}");
    let segments = Segments::new(256).unwrap();
    let mut checked = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let (hex, int) = line.split_once(' ').unwrap();
        let key = if hex == "-" {
            Vec::new()
        } else {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect()
        };
        let expected: i32 = int.parse().unwrap();
        assert_eq!(murmur::hash(&key), expected, "key {hex}");
        assert_eq!(
            segments.of(&key),
            (expected & 0x7FFF_FFFF) as u32 / 8_388_608,
            "key {hex}"
        );
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} vectors");
}
