//! Between wire values and engine values: expiration parameters, entry metadata, media types.

use ironrod_codec::{
    EntryMetadata, Expiration, Flags, Lifetime, MediaType, MediaTypeId, RequestHeader, TimeValue,
    Version,
};
use ironrod_engine::{Expiration as Expiry, Metadata, WriteOptions};

use crate::errors::Refusal;

/// 30 days in milliseconds: in 2.x, a duration above this is an absolute Unix time.
const THIRTY_DAYS_MS: u64 = 30 * 24 * 3600 * 1000;

/// The write options a request asks for: expiration (per its version's rules) and the
/// skip-listener flag.
/// `now_ms` is called only for a 2.x duration long enough to be an absolute time.
pub fn write_options(
    h: &RequestHeader,
    exp: &Expiration,
    now_ms: &dyn Fn() -> u64,
) -> Result<WriteOptions, Refusal> {
    let (lifespan, max_idle) = match exp {
        Expiration::Seconds { lifespan, max_idle } => (
            seconds(
                *lifespan,
                h.flags.contains(Flags::DEFAULT_LIFESPAN),
                h.version,
                now_ms,
            ),
            seconds(
                *max_idle,
                h.flags.contains(Flags::DEFAULT_MAX_IDLE),
                h.version,
                now_ms,
            ),
        ),
        Expiration::Units { lifespan, max_idle } => (
            units(lifespan, h.version, now_ms)?,
            units(max_idle, h.version, now_ms)?,
        ),
    };
    let mut options = WriteOptions::expiring(lifespan, max_idle);
    if h.flags.contains(Flags::SKIP_LISTENER_NOTIFICATION) {
        options = options.skipping_listeners();
    }
    Ok(options)
}

/// Options of a write that carries no expiration (removals, clear).
pub fn plain_options(h: &RequestHeader) -> WriteOptions {
    let options = WriteOptions::default();
    if h.flags.contains(Flags::SKIP_LISTENER_NOTIFICATION) {
        options.skipping_listeners()
    } else {
        options
    }
}

/// 2.0/2.1: whole seconds; zero or less is immortal unless the DEFAULT flag asks for the
/// cache's value.
fn seconds(value: i32, default_flag: bool, version: Version, now_ms: &dyn Fn() -> u64) -> Expiry {
    match u64::try_from(value) {
        Ok(s) if s > 0 => millis(s.saturating_mul(1000), version, now_ms),
        _ if default_flag => Expiry::Default,
        _ => Expiry::Infinite,
    }
}

fn units(value: &TimeValue, version: Version, now_ms: &dyn Fn() -> u64) -> Result<Expiry, Refusal> {
    Ok(match value {
        TimeValue::Default => Expiry::Default,
        TimeValue::Infinite => Expiry::Infinite,
        TimeValue::Amount { unit, amount } => {
            if unit.name().is_none() {
                return Err(Refusal::illegal_argument(format!(
                    "unknown time unit {} in the expiration parameters",
                    unit.0
                )));
            }
            millis(unit.to_millis(*amount), version, now_ms)
        }
    })
}

/// Applies the 2.x rule: a value above 30 days is an absolute time, of which what remains
/// counts. From 3.0 every value is a duration.
fn millis(ms: u64, version: Version, now_ms: &dyn Fn() -> u64) -> Expiry {
    if version.is_2x() && ms > THIRTY_DAYS_MS {
        Expiry::Millis(ms.saturating_sub(now_ms()))
    } else {
        Expiry::Millis(ms)
    }
}

/// The wire form of an entry's metadata: durations in whole seconds, timestamps in ms.
pub fn metadata(m: &Metadata) -> EntryMetadata {
    let seconds = |ms: u64| i32::try_from(ms / 1000).unwrap_or(i32::MAX);
    let stamp = |t: Option<u64>| t.map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX));
    EntryMetadata {
        lifespan: m.lifespan.map(|ms| Lifetime {
            since: stamp(m.created),
            seconds: seconds(ms),
        }),
        max_idle: m.max_idle.map(|ms| Lifetime {
            since: stamp(m.last_used),
            seconds: seconds(ms),
        }),
        version: version(m.version),
    }
}

pub fn version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A media type name as the wire carries it: a predefined id when it has one.
pub fn media_type(name: &str) -> MediaType {
    match MediaTypeId::for_name(name) {
        Some(id) => MediaType::id(id),
        None => MediaType::custom(name, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use ironrod_codec::TimeUnit;

    use super::*;

    fn header(v: Version, flags: Flags) -> RequestHeader {
        let mut h = RequestHeader::new(1, v, "c");
        h.flags = flags;
        h
    }

    #[test]
    fn legacy_seconds_follow_the_default_flags() {
        let exp = Expiration::Seconds {
            lifespan: 0,
            max_idle: 5,
        };
        let o =
            write_options(&header(Version::V2_0, Flags::DEFAULT_LIFESPAN), &exp, &|| 0).unwrap();
        assert_eq!(o.lifespan, Expiry::Default);
        assert_eq!(o.max_idle, Expiry::Millis(5000));
        let o = write_options(&header(Version::V2_1, Flags::default()), &exp, &|| 0).unwrap();
        assert_eq!(o.lifespan, Expiry::Infinite);
    }

    #[test]
    fn thirty_day_rule_applies_to_2x_only() {
        let now = 1_700_000_000_000;
        let abs_seconds = now / 1000 + 60; // one minute from now, as a Unix time
        let exp = Expiration::Units {
            lifespan: TimeValue::Amount {
                unit: TimeUnit::SECONDS,
                amount: abs_seconds,
            },
            max_idle: TimeValue::Default,
        };
        let o = write_options(&header(Version::V2_9, Flags::default()), &exp, &|| now).unwrap();
        assert_eq!(o.lifespan, Expiry::Millis(60_000));
        let o = write_options(&header(Version::V3_0, Flags::default()), &exp, &|| now).unwrap();
        assert_eq!(o.lifespan, Expiry::Millis(abs_seconds * 1000));
        // 2.x legacy seconds too.
        let exp = Expiration::Seconds {
            lifespan: i32::try_from(abs_seconds).unwrap(),
            max_idle: 0,
        };
        let o = write_options(&header(Version::V2_0, Flags::default()), &exp, &|| now).unwrap();
        assert_eq!(o.lifespan, Expiry::Millis(60_000));
    }

    #[test]
    fn unknown_units_are_refused() {
        let exp = Expiration::Units {
            lifespan: TimeValue::Amount {
                unit: TimeUnit(9),
                amount: 1,
            },
            max_idle: TimeValue::Infinite,
        };
        assert!(write_options(&header(Version::V4_0, Flags::default()), &exp, &|| 0).is_err());
    }

    #[test]
    fn skip_listener_flag_is_carried() {
        let h = header(Version::V4_0, Flags::SKIP_LISTENER_NOTIFICATION);
        assert!(
            write_options(&h, &Expiration::DEFAULT, &|| 0)
                .unwrap()
                .skip_listener_notification
        );
        assert!(plain_options(&h).skip_listener_notification);
    }

    #[test]
    fn metadata_in_seconds() {
        let m = Metadata {
            version: 7,
            created: Some(1000),
            last_used: Some(2000),
            lifespan: Some(10_500),
            max_idle: None,
        };
        let w = metadata(&m);
        assert_eq!(
            w.lifespan,
            Some(Lifetime {
                since: 1000,
                seconds: 10
            })
        );
        assert_eq!(w.max_idle, None);
        assert_eq!(w.version, 7);
    }
}
