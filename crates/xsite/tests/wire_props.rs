//! Property tests of the bridge wire protocol: round trips at both versions, prefixes are
//! Incomplete, garbage is a typed error (never a panic), and any split of a byte stream decodes to
//! the same frames.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ironrod_xsite::wire::{self, AuthMode, Cause, DecodeError, Frame, Message, Route};
use ironrod_xsite::{Change, EntryValue, VersionVector};
use proptest::prelude::*;

const MAX: u32 = 1 << 20;

fn site() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,12}"
}

fn change(v2: bool) -> impl Strategy<Value = Change> {
    (
        "[a-z]{0,10}",
        proptest::collection::vec(any::<u8>(), 0..24),
        proptest::option::of((
            proptest::collection::vec(any::<u8>(), 0..48),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
        )),
        site(),
        proptest::collection::btree_map(site(), 1u64.., 0..4),
    )
        .prop_map(move |(cache, key, value, origin, vv)| Change {
            cache,
            key,
            value: value.map(|(bytes, lifespan_ms, max_idle_ms)| EntryValue {
                bytes,
                lifespan_ms,
                max_idle_ms: if v2 { max_idle_ms } else { None },
            }),
            origin,
            version: vv.into_iter().collect::<VersionVector>(),
        })
}

fn message(v2: bool) -> impl Strategy<Value = Message> {
    let text = "[ -~]{0,20}";
    prop_oneof![
        (any::<u8>(), any::<u8>(), 0u8..3, any::<[u8; 32]>()).prop_map(|(a, b, m, nonce)| {
            Message::Hello {
                min_version: a,
                max_version: b,
                auth: [AuthMode::None, AuthMode::SharedSecret, AuthMode::Tls][m as usize],
                nonce,
            }
        }),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(version, proof)| Message::Auth { version, proof }),
        Just(Message::Heartbeat),
        (any::<u16>(), text).prop_map(|(code, reason)| Message::Close { code, reason }),
        (any::<u64>(), change(v2)).prop_map(|(id, change)| Message::SyncApply { id, change }),
        any::<u64>().prop_map(|id| Message::SyncAck { id }),
        (any::<u64>(), any::<u8>(), text).prop_map(|(id, c, message)| Message::SyncNack {
            id,
            cause: Cause(c),
            message
        }),
        (any::<u64>(), proptest::collection::vec(change(v2), 0..4))
            .prop_map(|(id, changes)| Message::AsyncBatch { id, changes }),
        any::<u64>().prop_map(|id| Message::AsyncAck { id }),
        (any::<u64>(), any::<u8>(), text).prop_map(|(id, c, message)| Message::AsyncNack {
            id,
            cause: Cause(c),
            message
        }),
        (any::<u64>(), "[a-z]{0,10}").prop_map(|(push, cache)| Message::PushStart { push, cache }),
        (
            any::<u64>(),
            any::<u32>(),
            proptest::collection::vec(change(v2), 0..4)
        )
            .prop_map(|(push, seq, changes)| Message::PushChunk { push, seq, changes }),
        (any::<u64>(), any::<u32>()).prop_map(|(push, seq)| Message::PushAck { push, seq }),
        (any::<u64>(), any::<u32>(), any::<u8>(), text).prop_map(|(push, seq, c, message)| {
            Message::PushNack {
                push,
                seq,
                cause: Cause(c),
                message,
            }
        }),
        any::<u64>().prop_map(|push| Message::PushDone { push }),
        any::<u64>().prop_map(|push| Message::PushCancel { push }),
        ("[a-z]{0,10}", any::<bool>())
            .prop_map(|(cache, online)| Message::SiteNotice { cache, online }),
    ]
}

fn frame(v2: bool) -> impl Strategy<Value = Frame> {
    (site(), site(), message(v2)).prop_map(|(from, to, message)| Frame {
        route: Route { from, to },
        message,
    })
}

fn encoded(f: &Frame, version: u8) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode(f, version, &mut out);
    out
}

proptest! {
    #[test]
    fn round_trips_at_version_2(f in frame(true)) {
        let bytes = encoded(&f, 2);
        prop_assert_eq!(wire::decode(&bytes, 2, MAX), Ok((f, bytes.len())));
    }

    /// Version 3 only adds CLEAR: every version-2 frame is the same at version 3.
    #[test]
    fn round_trips_at_version_3(f in frame(true)) {
        let bytes = encoded(&f, 3);
        prop_assert_eq!(encoded(&f, 2), bytes.clone());
        prop_assert_eq!(wire::decode(&bytes, 3, MAX), Ok((f, bytes.len())));
    }

    #[test]
    fn round_trips_at_version_1(f in frame(false)) {
        let bytes = encoded(&f, 1);
        prop_assert_eq!(wire::decode(&bytes, 1, MAX), Ok((f, bytes.len())));
    }

    /// Version-1 frames (no max-idle) are also valid version-2 frames with the same meaning.
    #[test]
    fn version_1_frames_decode_the_same_at_version_2(f in frame(false)) {
        let bytes = encoded(&f, 1);
        prop_assert_eq!(encoded(&f, 2), bytes.clone());
        prop_assert_eq!(wire::decode(&bytes, 2, MAX), Ok((f, bytes.len())));
    }

    #[test]
    fn every_proper_prefix_is_incomplete(f in frame(true), cut in any::<proptest::sample::Index>()) {
        let bytes = encoded(&f, 2);
        let n = cut.index(bytes.len());
        let r = wire::decode(&bytes[..n], 2, MAX);
        let ok = matches!(r, Err(DecodeError::Incomplete { needed }) if needed > 0);
        prop_assert!(ok, "prefix of {} bytes: {:?}", n, r);
    }

    /// Arbitrary bytes never panic: they are a frame, a prefix, or a typed error.
    #[test]
    fn garbage_is_a_typed_error(bytes in proptest::collection::vec(any::<u8>(), 0..200), version in 0u8..4) {
        match wire::decode(&bytes, version, 4096) {
            Ok((_, used)) => prop_assert!(used <= bytes.len()),
            Err(DecodeError::Incomplete { needed }) => prop_assert!(needed > 0),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Garbage behind a valid length prefix (a complete frame) is never Incomplete.
    #[test]
    fn complete_garbage_frames_are_never_incomplete(body in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let r = wire::decode(&bytes, 2, MAX);
        let incomplete = matches!(r, Err(DecodeError::Incomplete { .. }));
        prop_assert!(!incomplete, "complete frame reported incomplete");
    }

    /// A stream of frames split anywhere decodes to the same frames.
    #[test]
    fn any_split_of_a_stream_decodes_the_same(frames in proptest::collection::vec(frame(true), 1..5), splits in proptest::collection::vec(1usize..40, 0..20)) {
        let mut stream = Vec::new();
        for f in &frames {
            wire::encode(f, 2, &mut stream);
        }
        let mut got = Vec::new();
        let mut buf = Vec::new();
        let mut pos = 0;
        let mut sizes = splits.into_iter().chain(std::iter::repeat(7));
        while pos < stream.len() {
            let n = sizes.next().unwrap().min(stream.len() - pos);
            buf.extend_from_slice(&stream[pos..pos + n]);
            pos += n;
            loop {
                match wire::decode(&buf, 2, MAX) {
                    Ok((f, used)) => {
                        got.push(f);
                        buf.drain(..used);
                    }
                    Err(DecodeError::Incomplete { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert!(buf.is_empty());
    }
}

#[test]
fn frames_after_the_handshake_need_a_negotiated_version() {
    let f = Frame {
        route: Route {
            from: "A".into(),
            to: "B".into(),
        },
        message: Message::SyncAck { id: 1 },
    };
    let bytes = encoded(&f, 1);
    assert_eq!(
        wire::decode(&bytes, 0, MAX),
        Err(DecodeError::UnsupportedVersion(0))
    );
    let next = wire::MAX_VERSION + 1;
    assert_eq!(
        wire::decode(&bytes, next, MAX),
        Err(DecodeError::UnsupportedVersion(next))
    );
}

#[test]
fn hello_without_magic_is_rejected() {
    let f = Frame {
        route: Route {
            from: "A".into(),
            to: "B".into(),
        },
        message: Message::Hello {
            min_version: 1,
            max_version: 2,
            auth: AuthMode::None,
            nonce: [0; 32],
        },
    };
    let mut bytes = encoded(&f, 0);
    bytes[9] ^= 0xff; // first magic byte: 4 (len) + 1 (type) + 2 ("A") + 2 ("B")
    assert_eq!(wire::decode(&bytes, 0, MAX), Err(DecodeError::BadMagic));
}
