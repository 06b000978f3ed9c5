//! Replays the committed seed corpus of the `decode` fuzz target (`fuzz/corpus/decode/`)
//! through the fuzz target's own checks (`fuzz/common/check.rs`), so plain `cargo test` keeps
//! every seed, and every crash input added there as a regression seed, passing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../../../fuzz/common/check.rs"]
mod check;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/decode")
}

#[test]
fn seed_corpus_passes_the_fuzz_checks() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("fuzz/corpus/decode exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "only {} seeds", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).expect("readable seed");
            catch_unwind(AssertUnwindSafe(|| check::check(&data)))
                .err()
                .map(|e| {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    format!("{}: {msg}", path.display())
                })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} seeds fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// The selector byte reaches every version family and the hash-aware intelligence.
#[test]
fn selector_reaches_every_context() {
    use ironrod_codec::{Intelligence, Version};
    let contexts: Vec<_> = (0..=255u8)
        .filter_map(|s| check::Selector(s).context(0))
        .collect();
    for v in Version::KNOWN {
        assert!(contexts.iter().any(|c| c.version == v), "version {v}");
    }
    assert!(contexts
        .iter()
        .any(|c| c.intelligence == Intelligence::HASH_DISTRIBUTION_AWARE));
    assert!(check::Selector(0x80).context(0).is_none());
}
