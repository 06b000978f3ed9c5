//! State push, sender side: one state machine per (cache, site).
//!
//! ```text
//!                 start                PUSH_ACK 0           chunk read       PUSH_ACK n
//!   Idle/OK/… ──────────► Starting ───────────────► Reading ─────────► Sending(n) ────┐
//!                           │                         ▲                                │
//!                           │                         └────── more entries ◄──────────┘
//!                           │                                        │ last chunk acked
//!                           │ nack / timeout / link down             ▼
//!                           └──────────────► ERROR            PUSH_DONE → OK
//!   cancel (any running state) → PUSH_CANCEL → CANCELED;  clear-status: OK/ERROR/CANCELED → none
//! ```
//!
//! The status names are Infinispan's (`OK`, `SENDING`, `ERROR`, `CANCELED`); every running state
//! reports `SENDING`. One chunk is in flight at a time.

use std::time::Instant;

/// The status reported for a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushStatus {
    /// The last push completed.
    Ok,
    /// A push is running.
    Sending,
    /// The last push failed, with the reason.
    Error(String),
    /// The last push was cancelled.
    Canceled,
}

impl PushStatus {
    /// The REST/CLI spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            PushStatus::Ok => "OK",
            PushStatus::Sending => "SENDING",
            PushStatus::Error(_) => "ERROR",
            PushStatus::Canceled => "CANCELED",
        }
    }
}

/// Where a running push is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// PUSH_START sent, waiting for its acknowledgement.
    Starting { deadline: Instant },
    /// Waiting for the server to read the chunk after `cursor`.
    Reading {
        cursor: Option<Vec<u8>>,
        next_seq: u32,
    },
    /// Chunk `seq` sent; `next` is the cursor after it (`None`: it was the last).
    Sending {
        seq: u32,
        next: Option<Vec<u8>>,
        deadline: Instant,
    },
}

/// The push state of one (cache, site).
#[derive(Clone, Debug, Default)]
pub(crate) struct PushState {
    /// Running push: its id and phase.
    pub(crate) running: Option<(u64, Phase)>,
    /// The status of the last finished push, if not cleared.
    pub(crate) last: Option<PushStatus>,
    /// Entries sent by the running or last push.
    pub(crate) sent_entries: u64,
}

impl PushState {
    pub(crate) fn status(&self) -> Option<PushStatus> {
        if self.running.is_some() {
            Some(PushStatus::Sending)
        } else {
            self.last.clone()
        }
    }

    pub(crate) fn start(&mut self, id: u64, deadline: Instant) {
        self.running = Some((id, Phase::Starting { deadline }));
        self.last = None;
        self.sent_entries = 0;
    }

    pub(crate) fn finish(&mut self, status: PushStatus) -> Option<u64> {
        let id = self.running.take().map(|(id, _)| id);
        self.last = Some(status);
        id
    }

    /// Clears a finished status; a running push cannot be cleared.
    pub(crate) fn clear(&mut self) -> bool {
        if self.running.is_some() {
            return false;
        }
        self.last = None;
        true
    }

    pub(crate) fn id(&self) -> Option<u64> {
        self.running.as_ref().map(|(id, _)| *id)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.running {
            Some((_, Phase::Starting { deadline }))
            | Some((_, Phase::Sending { deadline, .. })) => Some(*deadline),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_lifecycle() {
        let now = Instant::now();
        let mut p = PushState::default();
        assert_eq!(p.status(), None);
        p.start(1, now);
        assert_eq!(p.status(), Some(PushStatus::Sending));
        assert!(!p.clear(), "a running push cannot be cleared");
        assert_eq!(p.finish(PushStatus::Error("x".into())), Some(1));
        assert_eq!(p.status().unwrap().as_str(), "ERROR");
        assert!(p.clear());
        assert_eq!(p.status(), None);
    }
}
