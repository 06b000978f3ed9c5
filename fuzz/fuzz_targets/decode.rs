//! Decodes arbitrary bytes as requests (server side) and as responses and events (client side),
//! and checks that whatever decodes re-encodes to an equal value. The checks live in
//! `fuzz/common/check.rs`, which `crates/codec/tests/fuzz_corpus.rs` also runs on the seed
//! corpus under plain `cargo test`.
//!
//! Run from the repository root (stable works with `-s none`; the codec has no unsafe code, so
//! a sanitizer adds little; `-a` keeps overflow checks and debug assertions on):
//!
//! ```text
//! cargo install cargo-fuzz
//! mkdir -p /tmp/decode-corpus
//! cargo fuzz run -s none -a decode /tmp/decode-corpus fuzz/corpus/decode -- -max_total_time=600
//! ```
//!
//! The first corpus directory receives new inputs, so the committed seeds in
//! `fuzz/corpus/decode/` stay small. Input layout: byte 0 selects the client-side context,
//! the rest is the byte stream (see `fuzz/common/check.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../common/check.rs"]
mod check;

fuzz_target!(|data: &[u8]| {
    check::check(data);
});
