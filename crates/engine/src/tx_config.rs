//! Per-cache transaction settings: Infinispan's `<transaction mode locking>` and
//! `<locking acquire-timeout isolation>` elements, as far as a single-node server needs them.
//!
//! What each setting changes in Ironrod:
//! - [`TxMode::None`]: the cache is not transactional; writes take only the shard lock, as
//!   before; remote transactions are refused.
//! - [`TxMode::NonXa`], [`TxMode::NonDurableXa`]: every write is an implicit transaction (key
//!   lock, write set, prepare hook, commit or rollback; see [`crate::tx`]) and the cache accepts
//!   Hot Rod remote transactions. The two differ in Infinispan only in how a *server-side*
//!   transaction manager enlists the cache (synchronization vs XA resource without recovery
//!   log); no client sees the difference, so Ironrod treats them alike. `FULL_XA` (XA with a
//!   recovery log) is accepted and treated as `NON_DURABLE_XA`: Ironrod keeps no durable
//!   recovery log (`protocol-spec/compatibility.md` C30).
//! - [`LockingMode`]: both modes take the key locks before a change becomes visible and hold
//!   them until commit or rollback; Ironrod's implicit transactions hold one write each, so the
//!   acquisition point is the same. The mode matters for remote transactions, which the
//!   reference serves only on PESSIMISTIC caches (its `TransactionRequestProcessor`), and so
//!   does Ironrod.
//! - `acquire_timeout`: how long a write waits for a key another transaction holds; zero fails
//!   at once with `ISPN000299` (Keycloak's cross-site setting).
//! - [`Isolation`]: the reference serves remote transactions only at REPEATABLE_READ; reads never
//!   take locks in either level, since Hot Rod clients read outside the server's transaction.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The transaction mode of a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxMode {
    /// Not transactional.
    #[default]
    None,
    /// Transactional, enlisted as a synchronization.
    NonXa,
    /// Transactional, enlisted as an XA resource without recovery (`FULL_XA` maps here too).
    NonDurableXa,
}

/// When locks are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockingMode {
    /// At each write (Keycloak's setting).
    #[default]
    Pessimistic,
    /// At prepare.
    Optimistic,
}

/// The isolation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Reads see the latest committed value.
    ReadCommitted,
    /// Infinispan's default, and what remote transactions require.
    #[default]
    RepeatableRead,
}

/// A cache's transaction settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxConfig {
    /// Whether the cache is transactional.
    pub mode: TxMode,
    /// When locks are taken.
    pub locking: LockingMode,
    /// How long a write waits for a locked key; zero fails at once.
    pub acquire_timeout: Duration,
    /// The isolation level.
    pub isolation: Isolation,
}

/// A setting's text was not one of the accepted names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {found:?}; expected one of {expected}")]
pub struct ParseSettingError {
    what: &'static str,
    found: String,
    expected: &'static str,
}

impl TxConfig {
    /// What the seeds configure for Keycloak's cross-site caches:
    /// `transaction mode="NON_DURABLE_XA" locking="PESSIMISTIC"`, `locking acquire-timeout="0"`,
    /// Infinispan's default isolation (REPEATABLE_READ).
    pub const KEYCLOAK: TxConfig = TxConfig {
        mode: TxMode::NonDurableXa,
        locking: LockingMode::Pessimistic,
        acquire_timeout: Duration::ZERO,
        isolation: Isolation::RepeatableRead,
    };

    /// Whether writes run as transactions.
    pub fn is_transactional(&self) -> bool {
        self.mode != TxMode::None
    }

    /// Whether the cache can serve Hot Rod remote transactions (the reference's
    /// `TransactionRequestProcessor.validateConfiguration`): transactional, PESSIMISTIC,
    /// REPEATABLE_READ. The error says why not.
    pub fn remote_tx_refusal(&self) -> Option<&'static str> {
        if !self.is_transactional() {
            Some("the cache is not transactional")
        } else if self.isolation != Isolation::RepeatableRead {
            Some("remote transactions need isolation REPEATABLE_READ")
        } else if self.locking != LockingMode::Pessimistic {
            Some("remote transactions need PESSIMISTIC locking")
        } else {
            None
        }
    }

    /// Whether a write may wait for a lock (a positive timeout on a transactional cache); the
    /// server keeps such writes off its async worker threads.
    pub fn may_wait(&self) -> bool {
        self.is_transactional() && !self.acquire_timeout.is_zero()
    }
}

impl FromStr for TxMode {
    type Err = ParseSettingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "NONE" => Ok(Self::None),
            "NON_XA" => Ok(Self::NonXa),
            "NON_DURABLE_XA" | "FULL_XA" => Ok(Self::NonDurableXa),
            _ => Err(ParseSettingError {
                what: "transaction mode",
                found: s.to_owned(),
                expected: "NONE, NON_XA, NON_DURABLE_XA, FULL_XA",
            }),
        }
    }
}

impl FromStr for LockingMode {
    type Err = ParseSettingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PESSIMISTIC" => Ok(Self::Pessimistic),
            "OPTIMISTIC" => Ok(Self::Optimistic),
            _ => Err(ParseSettingError {
                what: "locking mode",
                found: s.to_owned(),
                expected: "PESSIMISTIC, OPTIMISTIC",
            }),
        }
    }
}

impl FromStr for Isolation {
    type Err = ParseSettingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "READ_COMMITTED" => Ok(Self::ReadCommitted),
            "REPEATABLE_READ" => Ok(Self::RepeatableRead),
            _ => Err(ParseSettingError {
                what: "isolation level",
                found: s.to_owned(),
                expected: "READ_COMMITTED, REPEATABLE_READ",
            }),
        }
    }
}

impl fmt::Display for TxMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "NONE",
            Self::NonXa => "NON_XA",
            Self::NonDurableXa => "NON_DURABLE_XA",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_insensitively_and_full_xa_is_non_durable() {
        assert_eq!("non_xa".parse::<TxMode>().unwrap(), TxMode::NonXa);
        assert_eq!("FULL_XA".parse::<TxMode>().unwrap(), TxMode::NonDurableXa);
        assert_eq!("NONE".parse::<TxMode>().unwrap(), TxMode::None);
        assert!("BATCH".parse::<TxMode>().is_err());
        assert_eq!(
            "optimistic".parse::<LockingMode>().unwrap(),
            LockingMode::Optimistic
        );
        assert_eq!(
            "READ_COMMITTED".parse::<Isolation>().unwrap(),
            Isolation::ReadCommitted
        );
        assert!("SERIALIZABLE".parse::<Isolation>().is_err());
        assert_eq!(TxMode::NonDurableXa.to_string(), "NON_DURABLE_XA");
    }

    #[test]
    fn remote_transactions_need_pessimistic_repeatable_read() {
        assert!(TxConfig::default().remote_tx_refusal().is_some());
        assert_eq!(TxConfig::KEYCLOAK.remote_tx_refusal(), None);
        let rc = TxConfig {
            isolation: Isolation::ReadCommitted,
            ..TxConfig::KEYCLOAK
        };
        assert!(rc.remote_tx_refusal().is_some());
        let opt = TxConfig {
            locking: LockingMode::Optimistic,
            ..TxConfig::KEYCLOAK
        };
        assert!(opt.remote_tx_refusal().is_some());
        assert!(!TxConfig::KEYCLOAK.may_wait());
        assert!(TxConfig {
            acquire_timeout: Duration::from_millis(5),
            ..TxConfig::KEYCLOAK
        }
        .may_wait());
    }
}
