//! Per-connection state the protocol needs besides the bytes: the addresses, the SASL state,
//! and the 4.1 streams, which the reference ties to the connection that opened them.

use std::collections::HashMap;
use std::net::SocketAddr;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ironrod_engine::{Cache, WriteOptions};

use crate::auth::AuthState;

/// A 4.1 put stream being received.
#[derive(Debug)]
pub struct PutStream {
    pub cache: String,
    pub key: Bytes,
    pub options: WriteOptions,
    /// 0 put, < 0 put-if-absent, > 0 replace-if-unmodified.
    pub version: i64,
    pub value: BytesMut,
}

/// A 4.1 get stream being sent.
#[derive(Debug)]
pub struct GetStream {
    pub value: Bytes,
    pub offset: usize,
    pub chunk: usize,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    next_stream_id: i32,
    pub put_streams: HashMap<i32, PutStream>,
    pub get_streams: HashMap<i32, GetStream>,
    /// The cache the last request named, with the cache manager's generation when it was
    /// looked up: pipelined requests mostly name the same cache.
    pub last_cache: Option<(Arc<str>, u64, Arc<Cache>)>,
    /// Authentication belongs to the connection, as in the reference server.
    pub auth: AuthState,
    /// Remote transactions this connection prepared; rolled back if it closes first.
    pub transactions: Option<crate::handler::tx::SessionTransactions>,
    /// Plain TCP or TLS, and what TLS learnt about the client.
    pub transport: crate::tls::Transport,
    /// Set by a failed authentication: the connection holds its answers this long.
    pub auth_delay: Option<std::time::Duration>,
    /// The connection's id for client listeners (`handler::listeners::Hub::connect`); 0 when
    /// the session is not served by a connection task.
    pub connection: u64,
}

impl Session {
    /// Streams open at once on one connection; more is refused.
    pub const MAX_STREAMS: usize = 64;

    pub fn new(peer: SocketAddr, local: SocketAddr) -> Self {
        Session {
            peer,
            local,
            next_stream_id: 0,
            put_streams: HashMap::new(),
            get_streams: HashMap::new(),
            last_cache: None,
            auth: AuthState::Unauthenticated,
            transactions: None,
            transport: crate::tls::Transport::default(),
            auth_delay: None,
            connection: 0,
        }
    }

    pub fn next_stream_id(&mut self) -> i32 {
        self.next_stream_id = self.next_stream_id.wrapping_add(1);
        self.next_stream_id
    }

    pub fn open_streams(&self) -> usize {
        self.put_streams.len() + self.get_streams.len()
    }
}
