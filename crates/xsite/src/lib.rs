//! `ironrod-xsite`: the site bridge that backs Ironrod caches up to other Ironrod sites, the job
//! JGroups RELAY2 and the `<backup>` element do for Infinispan, with a protocol of our own.
//!
//! # What this crate owns
//! - the `[xsite]` configuration and its validation ([`config`]);
//! - the bridge wire protocol, versions 1 to 3, with a bounded decoder ([`wire`];
//!   specification in `protocol-spec/xsite.md`);
//! - per remote site, the link state machine: handshake with version negotiation and
//!   shared-secret authentication, heartbeats, failure detection, reconnect with back-off
//!   ([`link`]); and the explicit routing table through site masters ([`routing`]);
//! - per (cache, site), the backup state: online/offline and automatic take-offline
//!   ([`offline`]), the SYNC outcome per failure policy, the ASYNC queue ([`async_queue`]) and the
//!   state-push state machine ([`push`]);
//! - replication metadata: version vectors, conflict resolution by merge policy, tombstones, and
//!   the rule that a state push never deletes nor overwrites newer writes ([`versions`]).
//!
//! # What it does not own
//! Sockets, TLS, timers, threads, the clock, the caches and their locks, Hot Rod, REST and the
//! CLI. It depends on neither the engine, the codec nor tokio: a change travels as this crate's
//! own [`Change`] (cache, key bytes, optional value with lifespan/max-idle, origin site, version
//! vector; no value = tombstone).
//!
//! # How the server drives it (quinn-proto style)
//! The server owns one [`Bridge`] (behind a mutex held only for these short calls, never while
//! waiting for a lock) and one [`VersionStore`] per replicated cache (locked together with the
//! key's lock), and runs one task that:
//! - listens on the bridge port and calls [`Bridge::accept`], dials on [`Event::Connect`], and
//!   reports [`Bridge::handle_connected`], [`Bridge::handle_data`] and [`Bridge::handle_closed`];
//! - writes every [`Bridge::poll_transmit`] to its connection, and on [`Event::Close`] closes the
//!   connection after writing what was transmitted for it before (drain transmits, then events);
//! - sleeps until [`Bridge::poll_timeout`] and then calls [`Bridge::handle_timeout`];
//! - every few seconds calls [`VersionStore::purge_tombstones`] with
//!   `async_replication.tombstone_cleanup_ms`.
//!
//! A client write to a cache with backups takes the key's lock, gets its change from
//! [`VersionStore::prepare_local`], applies it, and when the cache has SYNC backups calls
//! [`Bridge::replicate_sync`]; it waits (lock still held) for [`Event::SyncDone`] and commits or
//! rolls back per the [`SyncVerdict`]. After commit it calls [`VersionStore::commit_local`] and
//! [`Bridge::committed`] (which queues ASYNC backups), then releases the lock.
//!
//! Received work comes out as events: [`Event::Apply`] (take the key's lock within the cache's
//! acquisition timeout, resolve with [`VersionStore::apply_remote`] or
//! [`VersionStore::apply_push`], write, fire listener events, then
//! [`Bridge::complete_apply`]; a change applied from a remote site is never passed to
//! [`Bridge::committed`], which would echo it back), [`Event::PushStarting`] ([`Bridge::complete_push_start`] with
//! [`VersionStore::write_seq`]) and [`Event::ReadChunk`] ([`Bridge::provide_chunk`]). REST and
//! CLI administration map onto [`Bridge::take_offline`], [`Bridge::bring_online`],
//! [`Bridge::start_push`], [`Bridge::cancel_push`], [`Bridge::push_status`],
//! [`Bridge::clear_push_status`], [`Bridge::amend_take_offline`] and [`Bridge::status`].
//!
//! The wire protocol and the behaviour are specified in `protocol-spec/xsite.md`; departures from
//! Infinispan are listed in `protocol-spec/compatibility.md` (C50–C54). The crate's
//! `tests/harness` is a deterministic simulation of several sites wired exactly this way.

pub mod async_queue;
pub mod auth;
pub mod bridge;
pub mod change;
pub mod config;
pub mod link;
pub mod offline;
pub mod push;
pub mod routing;
pub mod versions;
pub mod wire;

pub use bridge::{
    AdminError, ApplyFailure, ApplyMode, BackupFailure, BackupView, Bridge, BridgeStatus, Chunk,
    Entropy, Event, FailureCause, RouteStatus, SyncStart, SyncVerdict, Ticket, Transmit, WriteId,
};
pub use change::{Causality, Change, EntryValue, VersionVector};
pub use config::{ConfigError, XsiteConfig};
pub use link::{ConnId, LinkPhase, Rng};
pub use push::PushStatus;
pub use versions::{Resolution, VersionStore};
