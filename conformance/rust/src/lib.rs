//! Conformance tests for Ironrod driven by a real, unmodified third-party Rust Hot Rod client,
//! [`hotrod-protocol`](https://crates.io/crates/hotrod-protocol) 0.8.0.
//!
//! The library holds one helper, the [`linearizability`] checker that `tests/linearizability.rs`
//! runs over recorded histories; everything else lives in `tests/`, where each test starts an
//! Ironrod in-process on a loopback port and talks to it through the client's
//! `HotRodConnection` (one connection) and `HotRodClient` (topology-aware, hash routing).

pub mod linearizability;
