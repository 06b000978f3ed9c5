//! The third-party `hotrod-protocol` 0.8.0 client (a pure-Rust Hot Rod 4.1 client from
//! crates.io), unmodified, against an Ironrod started in-process on a loopback port.
//!
//! Every test starts its own server, so tests are independent of each other and of `clear`.
//! `connection` drives the single-connection `HotRodConnection` (BASIC intelligence);
//! `client` drives `HotRodClient`/`RemoteCache`, which asks for hash-distribution-aware
//! intelligence, gets Ironrod's one-node topology with 256 segments back and routes every keyed
//! operation by hash; `iteration` and `streaming` are only reachable through `RemoteCache`;
//! `errors` covers unknown caches and the features Ironrod refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod auth;
mod client;
mod common;
mod connection;
mod errors;
mod iteration;
mod streaming;
