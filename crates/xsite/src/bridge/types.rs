//! Public types of the bridge's API: outputs, events, verdicts, errors and status views.

use std::fmt;
use std::time::Duration;

use crate::change::Change;
use crate::config::{FailurePolicy, MergePolicy, Strategy};
use crate::link::{ConnId, LinkPhase};
use crate::push::PushStatus;
use crate::routing::RouteEntry;
use crate::wire::Cause;

/// Randomness for handshake nonces and reconnect jitter. The server implements it with the OS
/// generator; tests use the deterministic [`crate::Rng`].
pub trait Entropy: Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl Entropy for crate::link::Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let b = self.next_u64().to_be_bytes();
            chunk.copy_from_slice(b.get(..chunk.len()).unwrap_or(&b));
        }
    }
}

/// Bytes to write on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The connection.
    pub conn: ConnId,
    /// The bytes, one or more whole frames.
    pub bytes: Vec<u8>,
}

/// Identifies a local write waiting for its SYNC backups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteId(pub u64);

/// Identifies a received change the server must apply and then report with
/// [`Bridge::complete_apply`](crate::Bridge::complete_apply) (or a push start, reported with [`Bridge::complete_push_start`](crate::Bridge::complete_push_start)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// How the server must resolve a received change (see [`crate::VersionStore`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    /// SYNC backup: apply under the key's lock within the cache's acquisition timeout (a lock
    /// timeout is reported as [`Cause::LOCK_TIMEOUT`]) and resolve with
    /// [`crate::VersionStore::apply_sync`]: the write wins, as the origin holds its lock.
    Sync,
    /// ASYNC backup: resolve with [`crate::VersionStore::apply_remote`].
    Async {
        /// Conflict policy.
        policy: MergePolicy,
    },
    /// State push: resolve with [`crate::VersionStore::apply_push`] and this start sequence.
    /// Take the key's lock without waiting: a key locked now is being written locally, after the
    /// push began, so the push skips it (report success) instead of failing the chunk.
    Push {
        /// The receiver's write sequence when the push began.
        since: u64,
    },
}

/// Why a received change was not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyFailure {
    /// Wire cause.
    pub cause: Cause,
    /// Details for the origin's error message.
    pub message: String,
}

/// One page of a cache for a state push.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Live entries (tombstones are skipped by the bridge anyway).
    pub entries: Vec<Change>,
    /// Where to continue; `None` after the last page.
    pub next: Option<Vec<u8>>,
}

/// Why a SYNC backup of one write failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// No answer within the backup timeout.
    Timeout(Duration),
    /// The site could not be reached (no link, or the link went down).
    Unreachable(String),
    /// The site answered that it could not apply the change.
    Refused {
        /// Wire cause.
        cause: Cause,
        /// The site's message.
        message: String,
    },
}

impl FailureCause {
    /// Whether it counts towards automatic take-offline (Infinispan counts communication
    /// failures only).
    pub fn is_communication(&self) -> bool {
        !matches!(self, FailureCause::Refused { .. })
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::Timeout(t) => write!(f, "timed out after {} ms", t.as_millis()),
            FailureCause::Unreachable(why) => write!(f, "site unreachable ({why})"),
            FailureCause::Refused { cause, message } => write!(f, "{}: {message}", cause.name()),
        }
    }
}

/// A failed SYNC backup of one write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cross-site backup of cache '{cache}' to site '{site}' failed: {cause}")]
pub struct BackupFailure {
    /// Cache name.
    pub cache: String,
    /// Backup site.
    pub site: String,
    /// The backup's failure policy.
    pub policy: FailurePolicy,
    /// What went wrong.
    pub cause: FailureCause,
}

/// The outcome of a write's SYNC backups, per the failure policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncVerdict {
    /// Commit the write. `warnings` lists the failures of WARN backups (log them); IGNORE
    /// failures are not reported.
    Commit {
        /// Failures to log.
        warnings: Vec<BackupFailure>,
    },
    /// Roll the write back and answer the client with this error (a FAIL backup failed).
    Veto(BackupFailure),
}

/// The immediate answer of [`Bridge::replicate_sync`](crate::Bridge::replicate_sync).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncStart {
    /// Nothing to wait for.
    Done(SyncVerdict),
    /// Wait for [`Event::SyncDone`] with this id.
    Pending(WriteId),
}

/// Something the server must do or may log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Dial `address` for `site`; then report [`Bridge::handle_connected`](crate::Bridge::handle_connected) or
    /// [`Bridge::handle_closed`](crate::Bridge::handle_closed).
    Connect {
        /// The new connection.
        conn: ConnId,
        /// The site it is for.
        site: String,
        /// `host:port`.
        address: String,
    },
    /// Close this connection (after writing what was already transmitted for it).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// A link is authenticated and up.
    LinkUp {
        /// Neighbour site.
        site: String,
        /// Negotiated protocol version.
        version: u8,
    },
    /// A link went down.
    LinkDown {
        /// Neighbour site.
        site: String,
        /// Why.
        reason: String,
    },
    /// The SYNC backups of a write are settled.
    SyncDone {
        /// The write.
        write: WriteId,
        /// Commit or roll back.
        verdict: SyncVerdict,
    },
    /// Apply a change received from `from`, then call [`Bridge::complete_apply`](crate::Bridge::complete_apply).
    Apply {
        /// Completion handle.
        ticket: Ticket,
        /// Origin site of the frame.
        from: String,
        /// The change.
        change: Change,
        /// How to resolve it.
        mode: ApplyMode,
    },
    /// `from` starts pushing `cache`: report the cache's current write sequence with
    /// [`Bridge::complete_push_start`](crate::Bridge::complete_push_start).
    PushStarting {
        /// Completion handle.
        ticket: Ticket,
        /// Pushing site.
        from: String,
        /// Cache name.
        cache: String,
    },
    /// Read up to `max` entries of `cache` after `cursor` and hand them to
    /// [`Bridge::provide_chunk`](crate::Bridge::provide_chunk).
    ReadChunk {
        /// Cache name.
        cache: String,
        /// Receiving site.
        site: String,
        /// Continue after this point (`None`: from the start).
        cursor: Option<Vec<u8>>,
        /// Chunk size.
        max: usize,
    },
    /// A push this site sent finished.
    PushFinished {
        /// Cache name.
        cache: String,
        /// Receiving site.
        site: String,
        /// OK, ERROR or CANCELED.
        status: PushStatus,
    },
    /// A push this site received ended.
    PushReceived {
        /// Cache name.
        cache: String,
        /// Pushing site.
        from: String,
        /// Whether it completed (false: cancelled or the link dropped).
        completed: bool,
    },
    /// A backup went offline or online.
    BackupStatus {
        /// Cache name.
        cache: String,
        /// Backup site.
        site: String,
        /// New status.
        online: bool,
        /// Why.
        reason: String,
    },
    /// Clear `cache` as a clear made on `from` that had seen `seen` (see
    /// [`crate::VersionStore::clear`]), then call
    /// [`Bridge::complete_apply`](crate::Bridge::complete_apply).
    Clear {
        /// Completion handle.
        ticket: Ticket,
        /// The clearing site.
        from: String,
        /// Cache name.
        cache: String,
        /// What the clear had seen.
        seen: crate::change::VersionVector,
    },
    /// An ASYNC clear could not be sent to a site whose link speaks a protocol version without
    /// CLEAR (before 3); the site keeps its entries.
    ClearNotReplicated {
        /// Cache name.
        cache: String,
        /// Backup site.
        site: String,
    },
    /// A remote site announced it took this site offline or online for a cache.
    Notice {
        /// The announcing site.
        from: String,
        /// Cache name (empty: all).
        cache: String,
        /// Its new status for us.
        online: bool,
    },
}

/// An administrative request that cannot be done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No backup of that cache to that site is configured.
    #[error("cache '{cache}' has no backup to site '{site}'")]
    NoSuchBackup {
        /// Cache name.
        cache: String,
        /// Site name.
        site: String,
    },
    /// The site is not configured.
    #[error("unknown site '{0}'")]
    NoSuchSite(String),
    /// The site cannot be reached now.
    #[error("site '{0}' is unreachable")]
    Unreachable(String),
    /// A push of that cache to that site is already running.
    #[error("a state push of cache '{cache}' to site '{site}' is already running")]
    PushRunning {
        /// Cache name.
        cache: String,
        /// Site name.
        site: String,
    },
}

/// Status of one route, for `site status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteStatus {
    /// The route.
    pub route: RouteEntry,
    /// State of the next hop's link.
    pub link: LinkPhase,
    /// Negotiated version when up.
    pub version: Option<u8>,
}

/// Status of one backup, for `site status` and REST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupView {
    /// Cache name.
    pub cache: String,
    /// Site name.
    pub site: String,
    /// SYNC or ASYNC.
    pub strategy: Strategy,
    /// Whether the backup is online.
    pub online: bool,
    /// Consecutive communication failures.
    pub failures: u32,
    /// Milliseconds since the first of them.
    pub millis_since_first_failure: Option<u64>,
    /// ASYNC changes waiting (including a batch in flight).
    pub queued: usize,
    /// Last or running push status.
    pub push: Option<PushStatus>,
}

/// The whole bridge status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeStatus {
    /// This site.
    pub site: String,
    /// Routes to every remote site.
    pub routes: Vec<RouteStatus>,
    /// Every backup.
    pub backups: Vec<BackupView>,
}
