//! Outcomes of the conditional writes, rich enough for every Hot Rod status and the
//! FORCE_RETURN_VALUE previous value.

use crate::metadata::Versioned;

/// What [`crate::Cache::put_if_absent`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutIfAbsent {
    /// The key had no live entry; the value was stored (Hot Rod: success).
    Stored,
    /// A live entry exists and was left alone (Hot Rod: not executed, with it as the previous
    /// value when the client forces return values).
    Existing(Versioned),
}

/// What [`crate::Cache::replace`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replace {
    /// The entry was replaced; this is what it held before.
    Replaced {
        /// The replaced value and metadata.
        previous: Versioned,
    },
    /// No live entry: nothing stored (Hot Rod: not executed).
    NotFound,
}

/// What [`crate::Cache::replace_if_unmodified`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceIfUnmodified {
    /// The version matched; the entry was replaced.
    Replaced {
        /// The replaced value and metadata.
        previous: Versioned,
    },
    /// The entry has another version; nothing changed (Hot Rod: not executed).
    VersionMismatch {
        /// The entry as it is.
        current: Versioned,
    },
    /// No live entry (Hot Rod: key does not exist).
    NotFound,
}

/// What [`crate::Cache::remove_if_unmodified`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveIfUnmodified {
    /// The version matched; the entry was removed.
    Removed {
        /// The removed value and metadata.
        previous: Versioned,
    },
    /// The entry has another version; nothing changed (Hot Rod: not executed).
    VersionMismatch {
        /// The entry as it is.
        current: Versioned,
    },
    /// No live entry (Hot Rod: key does not exist).
    NotFound,
}
