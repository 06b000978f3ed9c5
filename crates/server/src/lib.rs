//! The Ironrod server: Hot Rod over TCP, wired to the cache engine.
//!
//! Owns sockets, the connection loop, the meaning of each request (dispatch to the engine and
//! the reference server's statuses), configuration and the command line. The wire format is the
//! codec's (`ironrod-codec`) and the data is the engine's (`ironrod-engine`).

pub mod auth;
pub mod authz;
pub mod cli;
pub mod config;
pub mod connection;
pub mod detect;
pub mod errors;
pub mod handler;
pub mod http;
pub mod iterations;
pub mod server;
pub mod session;
pub mod state;
pub mod tls;
pub mod xsite;

pub use config::Config;
pub use state::State;
