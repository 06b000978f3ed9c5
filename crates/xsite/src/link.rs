//! The link to one directly connected remote site: connection, handshake, liveness, reconnect.
//!
//! ```text
//!              dial (we sort first)            HELLO+AUTH both ways verified
//!   Down ───────────────────────► Connecting ──connected──► Handshaking ─────────────► Up
//!    ▲  ▲  inbound HELLO from peer                              │   heartbeat when idle 2 s
//!    │  └──────────────────────────────────────────────────────►│   dead after 8 s silence
//!    │        connect failed / handshake timeout or refused     │         │
//!    └──────────────── back-off (exponential, jittered) ◄───────┴─────────┘
//! ```
//!
//! Exactly one end dials: the site whose name sorts first (the other end only accepts), so two
//! sites never race two connections. The link never touches sockets; it returns link actions
//! that the bridge turns into transmits and events for the server.

use std::time::{Duration, Instant};

use crate::auth;
use crate::config::LinkConfig;
use crate::wire::{negotiate, AuthMode, Message, MIN_VERSION, NONCE_LEN};

/// Identifies one connection the server owns (outbound or accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Close codes sent in CLOSE frames.
pub mod close_code {
    /// No common protocol version.
    pub const VERSION: u16 = 1;
    /// Authentication failed or modes differ.
    pub const AUTH: u16 = 2;
    /// A malformed frame.
    pub const PROTOCOL: u16 = 3;
    /// The peer is unknown or a newer connection replaced this one.
    pub const UNEXPECTED: u16 = 4;
    /// The peer went silent.
    pub const TIMEOUT: u16 = 5;
}

/// Public view of a link's state, for status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPhase {
    /// No connection; waiting to dial or for the peer to dial.
    Down,
    /// Dialling.
    Connecting,
    /// Connected, exchanging HELLO and AUTH.
    Handshaking,
    /// Authenticated and live.
    Up,
}

impl LinkPhase {
    /// Lower-case name for status output.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPhase::Down => "down",
            LinkPhase::Connecting => "connecting",
            LinkPhase::Handshaking => "handshaking",
            LinkPhase::Up => "up",
        }
    }
}

/// What the link asks the bridge to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LinkAction {
    Dial { conn: ConnId, address: String },
    Send { conn: ConnId, message: Message },
    Close { conn: ConnId },
    Up { conn: ConnId, version: u8 },
    Down { reason: String },
}

/// Fixed facts the link needs about this site.
pub(crate) struct LinkCtx<'a> {
    pub site: &'a str,
    pub auth: AuthMode,
    pub secret: &'a [u8],
    pub cfg: &'a LinkConfig,
    /// The highest version to offer (tests lower it to play an old peer).
    pub max_version: u8,
}

#[derive(Clone, Debug)]
enum State {
    Down {
        retry_at: Option<Instant>,
    },
    Connecting {
        conn: ConnId,
        since: Instant,
    },
    Handshaking {
        conn: ConnId,
        since: Instant,
        our_nonce: [u8; NONCE_LEN],
        peer_nonce: Option<[u8; NONCE_LEN]>,
        version: Option<u8>,
        peer_proven: bool,
    },
    Up {
        conn: ConnId,
        version: u8,
        last_rx: Instant,
        last_tx: Instant,
    },
}

/// The link to one neighbour site.
#[derive(Debug)]
pub(crate) struct Link {
    peer: String,
    address: String,
    dials: bool,
    attempt: u32,
    state: State,
}

impl Link {
    pub(crate) fn new(peer: &str, address: &str, our_site: &str, now: Instant) -> Self {
        let dials = !address.is_empty() && our_site < peer;
        Self {
            peer: peer.to_string(),
            address: address.to_string(),
            dials,
            attempt: 0,
            state: State::Down {
                retry_at: dials.then_some(now),
            },
        }
    }

    pub(crate) fn phase(&self) -> LinkPhase {
        match self.state {
            State::Down { .. } => LinkPhase::Down,
            State::Connecting { .. } => LinkPhase::Connecting,
            State::Handshaking { .. } => LinkPhase::Handshaking,
            State::Up { .. } => LinkPhase::Up,
        }
    }

    /// The connection and version when up.
    pub(crate) fn up(&self) -> Option<(ConnId, u8)> {
        match self.state {
            State::Up { conn, version, .. } => Some((conn, version)),
            _ => None,
        }
    }

    pub(crate) fn conn(&self) -> Option<ConnId> {
        match self.state {
            State::Down { .. } => None,
            State::Connecting { conn, .. }
            | State::Handshaking { conn, .. }
            | State::Up { conn, .. } => Some(conn),
        }
    }

    #[cfg(test)]
    pub(crate) fn dials(&self) -> bool {
        self.dials
    }

    /// Whether this end dials and it is time to.
    pub(crate) fn due_to_dial(&self, now: Instant) -> bool {
        matches!(self.state, State::Down { retry_at: Some(t) } if t <= now)
    }

    pub(crate) fn dial(&mut self, now: Instant, conn: ConnId, out: &mut Vec<LinkAction>) {
        self.state = State::Connecting { conn, since: now };
        out.push(LinkAction::Dial {
            conn,
            address: self.address.clone(),
        });
    }

    /// The outbound connection is established: say HELLO.
    pub(crate) fn connected(
        &mut self,
        now: Instant,
        conn: ConnId,
        ctx: &LinkCtx<'_>,
        nonce: [u8; NONCE_LEN],
        out: &mut Vec<LinkAction>,
    ) {
        if !matches!(self.state, State::Connecting { conn: c, .. } if c == conn) {
            out.push(LinkAction::Close { conn });
            return;
        }
        self.start_handshake(now, conn, ctx, nonce, out);
    }

    /// A peer dialled in and sent HELLO on `conn`: adopt the connection (a newer one replaces an
    /// older one: the peer restarted or lost its side).
    pub(crate) fn adopt_inbound(
        &mut self,
        now: Instant,
        conn: ConnId,
        ctx: &LinkCtx<'_>,
        nonce: [u8; NONCE_LEN],
        out: &mut Vec<LinkAction>,
    ) {
        if let Some(old) = self.conn() {
            if old != conn {
                out.push(LinkAction::Close { conn: old });
                if matches!(self.state, State::Up { .. }) {
                    out.push(LinkAction::Down {
                        reason: "replaced by a new connection".into(),
                    });
                }
            }
        }
        self.start_handshake(now, conn, ctx, nonce, out);
    }

    fn start_handshake(
        &mut self,
        now: Instant,
        conn: ConnId,
        ctx: &LinkCtx<'_>,
        nonce: [u8; NONCE_LEN],
        out: &mut Vec<LinkAction>,
    ) {
        self.state = State::Handshaking {
            conn,
            since: now,
            our_nonce: nonce,
            peer_nonce: None,
            version: None,
            peer_proven: false,
        };
        out.push(LinkAction::Send {
            conn,
            message: Message::Hello {
                min_version: MIN_VERSION,
                max_version: ctx.max_version,
                auth: ctx.auth,
                nonce,
            },
        });
    }

    /// A handshake message (HELLO, AUTH) or any frame (for liveness) arrived on our connection.
    pub(crate) fn received(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: &Message,
        ctx: &LinkCtx<'_>,
        out: &mut Vec<LinkAction>,
    ) {
        if self.conn() != Some(conn) {
            return;
        }
        match (&mut self.state, message) {
            (State::Up { last_rx, .. }, _) => *last_rx = now,
            (
                State::Handshaking {
                    our_nonce,
                    peer_nonce,
                    version,
                    ..
                },
                Message::Hello {
                    min_version,
                    max_version,
                    auth,
                    nonce,
                },
            ) if peer_nonce.is_none() => {
                if *auth != ctx.auth {
                    return self.fail(
                        now,
                        conn,
                        close_code::AUTH,
                        "authentication modes differ",
                        ctx,
                        out,
                    );
                }
                let Some(v) =
                    negotiate((MIN_VERSION, ctx.max_version), (*min_version, *max_version))
                else {
                    return self.fail(
                        now,
                        conn,
                        close_code::VERSION,
                        "no common protocol version",
                        ctx,
                        out,
                    );
                };
                *peer_nonce = Some(*nonce);
                *version = Some(v);
                let proof = match ctx.auth {
                    AuthMode::SharedSecret => {
                        auth::proof(ctx.secret, ctx.site, &self.peer, nonce, our_nonce, v)
                    }
                    AuthMode::None | AuthMode::Tls => Vec::new(),
                };
                out.push(LinkAction::Send {
                    conn,
                    message: Message::Auth { version: v, proof },
                });
                self.maybe_up(now, out);
            }
            (
                State::Handshaking {
                    our_nonce,
                    peer_nonce: Some(peer_nonce),
                    version: Some(v),
                    peer_proven,
                    ..
                },
                Message::Auth { version, proof },
            ) => {
                let ok = *version == *v
                    && match ctx.auth {
                        AuthMode::SharedSecret => auth::verify(
                            ctx.secret, &self.peer, ctx.site, our_nonce, peer_nonce, *v, proof,
                        ),
                        AuthMode::None | AuthMode::Tls => proof.is_empty(),
                    };
                if !ok {
                    return self.fail(
                        now,
                        conn,
                        close_code::AUTH,
                        "authentication failed",
                        ctx,
                        out,
                    );
                }
                *peer_proven = true;
                self.maybe_up(now, out);
            }
            (State::Handshaking { .. }, _) => {
                self.fail(
                    now,
                    conn,
                    close_code::PROTOCOL,
                    "unexpected frame during handshake",
                    ctx,
                    out,
                );
            }
            _ => {}
        }
    }

    fn maybe_up(&mut self, now: Instant, out: &mut Vec<LinkAction>) {
        if let State::Handshaking {
            conn,
            version: Some(version),
            peer_proven: true,
            ..
        } = self.state
        {
            self.attempt = 0;
            self.state = State::Up {
                conn,
                version,
                last_rx: now,
                last_tx: now,
            };
            out.push(LinkAction::Up { conn, version });
        }
    }

    /// Something was sent on the link (resets the heartbeat timer).
    pub(crate) fn sent(&mut self, now: Instant) {
        if let State::Up { last_tx, .. } = &mut self.state {
            *last_tx = now;
        }
    }

    /// The connection closed or failed to connect.
    pub(crate) fn closed(
        &mut self,
        now: Instant,
        conn: ConnId,
        ctx: &LinkCtx<'_>,
        rng: &mut Rng,
        out: &mut Vec<LinkAction>,
    ) {
        if self.conn() != Some(conn) {
            return;
        }
        let was_up = matches!(self.state, State::Up { .. });
        self.go_down(now, ctx, rng);
        out.push(LinkAction::Down {
            reason: if was_up {
                "connection closed".into()
            } else {
                "connection failed".into()
            },
        });
    }

    /// Timers: heartbeat, silence, handshake timeout.
    pub(crate) fn tick(
        &mut self,
        now: Instant,
        ctx: &LinkCtx<'_>,
        rng: &mut Rng,
        out: &mut Vec<LinkAction>,
    ) {
        let fail_after = Duration::from_millis(ctx.cfg.failure_timeout_ms);
        let beat = Duration::from_millis(ctx.cfg.heartbeat_ms);
        match self.state {
            State::Connecting { conn, since } | State::Handshaking { conn, since, .. }
                if now.saturating_duration_since(since) >= fail_after =>
            {
                out.push(LinkAction::Close { conn });
                self.go_down(now, ctx, rng);
                out.push(LinkAction::Down {
                    reason: "handshake timed out".into(),
                });
            }
            State::Up {
                conn,
                last_rx,
                last_tx,
                ..
            } => {
                if now.saturating_duration_since(last_rx) >= fail_after {
                    out.push(LinkAction::Send {
                        conn,
                        message: Message::Close {
                            code: close_code::TIMEOUT,
                            reason: "no frame received in time".into(),
                        },
                    });
                    out.push(LinkAction::Close { conn });
                    self.go_down(now, ctx, rng);
                    out.push(LinkAction::Down {
                        reason: format!("peer silent for {} ms", fail_after.as_millis()),
                    });
                } else if now.saturating_duration_since(last_tx) >= beat {
                    out.push(LinkAction::Send {
                        conn,
                        message: Message::Heartbeat,
                    });
                    self.sent(now);
                }
            }
            _ => {}
        }
    }

    /// The next instant `tick` has something to do.
    pub(crate) fn next_deadline(&self, cfg: &LinkConfig) -> Option<Instant> {
        let fail_after = Duration::from_millis(cfg.failure_timeout_ms);
        match self.state {
            State::Down { retry_at } => retry_at,
            State::Connecting { since, .. } | State::Handshaking { since, .. } => {
                Some(since + fail_after)
            }
            State::Up {
                last_rx, last_tx, ..
            } => {
                Some((last_rx + fail_after).min(last_tx + Duration::from_millis(cfg.heartbeat_ms)))
            }
        }
    }

    fn fail(
        &mut self,
        now: Instant,
        conn: ConnId,
        code: u16,
        reason: &str,
        ctx: &LinkCtx<'_>,
        out: &mut Vec<LinkAction>,
    ) {
        out.push(LinkAction::Send {
            conn,
            message: Message::Close {
                code,
                reason: reason.to_string(),
            },
        });
        out.push(LinkAction::Close { conn });
        // A refused handshake backs off like a failed connect; no RNG needed for a fixed delay
        // here, the next tick's dial uses the jittered one.
        self.attempt = self.attempt.saturating_add(1);
        let delay = backoff(ctx.cfg, self.attempt, 0.5);
        self.state = State::Down {
            retry_at: self.dials.then_some(now + delay),
        };
        out.push(LinkAction::Down {
            reason: reason.to_string(),
        });
    }

    fn go_down(&mut self, now: Instant, ctx: &LinkCtx<'_>, rng: &mut Rng) {
        self.attempt = self.attempt.saturating_add(1);
        let delay = backoff(ctx.cfg, self.attempt, rng.unit());
        self.state = State::Down {
            retry_at: self.dials.then_some(now + delay),
        };
    }
}

/// Reconnect delay before attempt `attempt` (1-based): `min · 2^(attempt-1)` capped at `max`,
/// then "equal jitter": half fixed, half scaled by `unit` ∈ [0, 1).
pub fn backoff(cfg: &LinkConfig, attempt: u32, unit: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let base = cfg
        .reconnect_min_ms
        .saturating_mul(1u64 << exp)
        .min(cfg.reconnect_max_ms);
    let half = base / 2;
    let jitter = (half as f64 * unit.clamp(0.0, 1.0)) as u64;
    Duration::from_millis(half + jitter)
}

/// SplitMix64: a tiny deterministic generator for nonces in tests and for jitter. The server
/// seeds it from the OS; nonces then come from [`crate::Bridge`]'s caller-supplied entropy too.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fills a nonce.
    pub fn nonce(&mut self) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        for chunk in n.chunks_mut(8) {
            let b = self.next_u64().to_be_bytes();
            chunk.copy_from_slice(b.get(..chunk.len()).unwrap_or(&b));
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MAX_VERSION;

    fn ctx<'a>(site: &'a str, cfg: &'a LinkConfig, secret: &'a [u8]) -> LinkCtx<'a> {
        LinkCtx {
            site,
            auth: AuthMode::SharedSecret,
            secret,
            cfg,
            max_version: MAX_VERSION,
        }
    }

    #[test]
    fn backoff_grows_exponentially_and_is_bounded() {
        let cfg = LinkConfig::default();
        assert_eq!(backoff(&cfg, 1, 0.0), Duration::from_millis(125));
        assert_eq!(backoff(&cfg, 1, 0.999_999), Duration::from_millis(249));
        assert_eq!(backoff(&cfg, 3, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(&cfg, 40, 0.999), Duration::from_millis(29_985));
        assert!(backoff(&cfg, u32::MAX, 1.0) <= Duration::from_millis(30_000));
    }

    /// Runs a handshake between two links, shuttling Send actions, and returns both action logs.
    fn handshake(
        secret_a: &[u8],
        secret_b: &[u8],
        max_b: u8,
    ) -> (Link, Link, Vec<LinkAction>, Vec<LinkAction>) {
        let now = Instant::now();
        let cfg = LinkConfig::default();
        let ca = ctx("A", &cfg, secret_a);
        let cb = LinkCtx {
            max_version: max_b,
            ..ctx("B", &cfg, secret_b)
        };
        let mut rng = Rng::new(1);
        let mut a = Link::new("B", "b:1", "A", now);
        let mut b = Link::new("A", "", "B", now);
        assert!(a.dials() && !b.dials());
        let (mut la, mut lb) = (Vec::new(), Vec::new());
        a.dial(now, ConnId(1), &mut la);
        a.connected(now, ConnId(1), &ca, rng.nonce(), &mut la);
        b.adopt_inbound(now, ConnId(2), &cb, rng.nonce(), &mut lb);
        let (mut ia, mut ib) = (0, 0);
        for _ in 0..6 {
            while ia < la.len() {
                if let LinkAction::Send { message, .. } = la[ia].clone() {
                    b.received(now, ConnId(2), &message, &cb, &mut lb);
                }
                ia += 1;
            }
            while ib < lb.len() {
                if let LinkAction::Send { message, .. } = lb[ib].clone() {
                    a.received(now, ConnId(1), &message, &ca, &mut la);
                }
                ib += 1;
            }
        }
        let _ = &mut rng;
        (a, b, la, lb)
    }

    #[test]
    fn matching_secrets_bring_both_ends_up_at_the_common_version() {
        let (a, b, la, lb) = handshake(b"0123456789abcdef", b"0123456789abcdef", 1);
        assert_eq!(a.phase(), LinkPhase::Up);
        assert_eq!(b.phase(), LinkPhase::Up);
        assert!(la.contains(&LinkAction::Up {
            conn: ConnId(1),
            version: 1
        }));
        assert!(lb.contains(&LinkAction::Up {
            conn: ConnId(2),
            version: 1
        }));
    }

    #[test]
    fn a_wrong_secret_closes_both_ends() {
        let (a, b, _, _) = handshake(b"0123456789abcdef", b"fedcba9876543210", 2);
        assert_eq!(a.phase(), LinkPhase::Down);
        assert_eq!(b.phase(), LinkPhase::Down);
    }

    #[test]
    fn no_common_version_closes_with_code_1() {
        let now = Instant::now();
        let cfg = LinkConfig::default();
        let c = ctx("B", &cfg, b"0123456789abcdef");
        let mut b = Link::new("A", "", "B", now);
        let mut out = Vec::new();
        b.adopt_inbound(now, ConnId(5), &c, [0; NONCE_LEN], &mut out);
        let hello = Message::Hello {
            min_version: MAX_VERSION + 1,
            max_version: MAX_VERSION + 2,
            auth: AuthMode::SharedSecret,
            nonce: [1; NONCE_LEN],
        };
        b.received(now, ConnId(5), &hello, &c, &mut out);
        assert!(out.iter().any(|a| matches!(
            a,
            LinkAction::Send {
                message: Message::Close {
                    code: close_code::VERSION,
                    ..
                },
                ..
            }
        )));
        assert!(out.contains(&LinkAction::Close { conn: ConnId(5) }));
        assert_eq!(b.phase(), LinkPhase::Down);
        // The accepting side never dials.
        assert_eq!(b.next_deadline(&cfg), None);
    }

    #[test]
    fn differing_auth_modes_close_with_code_2() {
        let now = Instant::now();
        let cfg = LinkConfig::default();
        let c = ctx("B", &cfg, b"0123456789abcdef");
        let mut b = Link::new("A", "", "B", now);
        let mut out = Vec::new();
        b.adopt_inbound(now, ConnId(5), &c, [0; NONCE_LEN], &mut out);
        let hello = Message::Hello {
            min_version: 1,
            max_version: 2,
            auth: AuthMode::None,
            nonce: [1; NONCE_LEN],
        };
        b.received(now, ConnId(5), &hello, &c, &mut out);
        assert!(out.iter().any(|a| matches!(
            a,
            LinkAction::Send {
                message: Message::Close {
                    code: close_code::AUTH,
                    ..
                },
                ..
            }
        )));
    }

    #[test]
    fn a_dialler_backs_off_longer_after_each_failed_connect() {
        let t0 = Instant::now();
        let cfg = LinkConfig::default();
        let c = ctx("A", &cfg, b"0123456789abcdef");
        let mut rng = Rng::new(3);
        let mut a = Link::new("B", "b:1", "A", t0);
        let mut now = t0;
        let mut delays = Vec::new();
        for i in 0..12 {
            assert!(a.due_to_dial(now));
            let mut out = Vec::new();
            a.dial(now, ConnId(i), &mut out);
            a.closed(now, ConnId(i), &c, &mut rng, &mut out);
            let next = a.next_deadline(&cfg).unwrap();
            delays.push(next - now);
            now = next;
        }
        // Each delay lies in [base/2, base) with base doubling from 250 ms up to the 30 s cap.
        for (i, d) in delays.iter().enumerate() {
            let base = (250u64 << i).min(30_000);
            assert!(
                *d >= Duration::from_millis(base / 2) && *d <= Duration::from_millis(base),
                "{i}: {d:?}"
            );
        }
    }

    #[test]
    fn silence_kills_an_up_link_and_idleness_sends_heartbeats() {
        let (mut a, _, _, _) = handshake(b"0123456789abcdef", b"0123456789abcdef", 2);
        let cfg = LinkConfig::default();
        let c = ctx("A", &cfg, b"0123456789abcdef");
        let mut rng = Rng::new(7);
        let t0 = Instant::now();
        let mut out = Vec::new();
        a.tick(t0 + Duration::from_millis(2_100), &c, &mut rng, &mut out);
        assert!(out.iter().any(|x| matches!(
            x,
            LinkAction::Send {
                message: Message::Heartbeat,
                ..
            }
        )));
        assert_eq!(a.phase(), LinkPhase::Up);
        out.clear();
        a.tick(t0 + Duration::from_millis(8_100), &c, &mut rng, &mut out);
        assert_eq!(a.phase(), LinkPhase::Down);
        assert!(out.iter().any(|x| matches!(x, LinkAction::Down { .. })));
        // It dials again after the back-off, not before.
        let retry = a.next_deadline(&cfg).unwrap();
        assert!(retry > t0 + Duration::from_millis(8_100));
        assert!(retry <= t0 + Duration::from_millis(8_100 + 250));
    }
}
