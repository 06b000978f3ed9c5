//! A transaction's private write set: the changes it will make, held outside the cache until
//! commit, each with what the writer expects to find (for the write-skew check of Hot Rod
//! remote transactions).

use bytes::Bytes;

use crate::options::WriteOptions;

/// What a transaction expects of a key's committed state when it prepares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: the key was not read (Hot Rod control bit NOT_READ).
    Any,
    /// The key has no live entry (NON_EXISTING).
    Absent,
    /// The live entry has exactly this version (the version read).
    Version(u64),
}

/// What a write does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store `value` (creating or replacing the entry) with these expiration options.
    Put {
        /// The new value.
        value: Bytes,
        /// Lifespan, max-idle and the skip-listener flag.
        options: WriteOptions,
    },
    /// Remove the live entry, if any.
    Remove {
        /// Only the skip-listener flag matters.
        options: WriteOptions,
    },
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxWrite {
    /// The key written.
    pub key: Bytes,
    /// What must hold at prepare for the transaction to go on.
    pub expect: Expect,
    /// The change.
    pub action: Action,
}

/// The writes of one transaction, in the order the client made them (the last write of a key
/// wins at commit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    writes: Vec<TxWrite>,
}

impl TxWrite {
    /// A put that expects nothing.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>, options: WriteOptions) -> Self {
        Self {
            key: key.into(),
            expect: Expect::Any,
            action: Action::Put {
                value: value.into(),
                options,
            },
        }
    }

    /// A removal that expects nothing.
    pub fn remove(key: impl Into<Bytes>, options: WriteOptions) -> Self {
        Self {
            key: key.into(),
            expect: Expect::Any,
            action: Action::Remove { options },
        }
    }

    /// The same write with an expectation.
    pub fn expecting(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }

    /// Whether the write removes its key.
    pub fn is_remove(&self) -> bool {
        matches!(self.action, Action::Remove { .. })
    }
}

impl WriteSet {
    /// A write set of these writes.
    pub fn new(writes: Vec<TxWrite>) -> Self {
        Self { writes }
    }

    /// The writes, in order.
    pub fn writes(&self) -> &[TxWrite] {
        &self.writes
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The keys written, with repeats.
    pub fn keys(&self) -> Vec<Bytes> {
        self.writes.iter().map(|w| w.key.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_and_accessors() {
        let set = WriteSet::new(vec![
            TxWrite::put(&b"a"[..], &b"1"[..], WriteOptions::default()).expecting(Expect::Absent),
            TxWrite::remove(&b"b"[..], WriteOptions::default()).expecting(Expect::Version(3)),
        ]);
        assert!(!set.is_empty());
        assert_eq!(
            set.keys(),
            [Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        assert_eq!(set.writes()[0].expect, Expect::Absent);
        assert!(!set.writes()[0].is_remove());
        assert!(set.writes()[1].is_remove());
        assert!(WriteSet::default().is_empty());
    }
}
